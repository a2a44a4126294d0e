/*
 * The admin API (docs/PROTOCOL.md "Admin API"): /admin/v1/... on the HTTP listeners, for the
 * identities in [admin] ids only, with a login token as for the other HTTP routes. Without a
 * token (or with a bad one): 401; another identity: 403; both are security events
 * (admin_denied; a bad token is bad_token etc. as everywhere). Every call, allowed or not, is
 * one "admin_call" log line (identity, method, path, status) and, while the event stream is on,
 * one admin.call event.
 *
 * JSON in (POST bodies) and out; errors in the project's shape {"error":N,"reason":"..."}.
 * Routes are one table (admin__routes): a new command is one entry and its handler. What each
 * costs: see docs/SECURITY.md "Admin API" (lists are pages of at most ADMIN_PAGE_MAX; the
 * in-memory ones walk the sessions or identities once, the stored one is an index range).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jobs/jobs.h"
#include "plugins/plugins.h"
#include "broker/broker_internal.h"
#include "events/events.h"
#include "events/webhooks.h"
#include "net/http.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

/* Entries one list page returns at most, and when the request does not say. */
#define ADMIN_PAGE_MAX 1000
#define ADMIN_PAGE_DEFAULT 100
/* A decoded query value (a client id is at most 65535 bytes; a cursor longer is refused). */
#define ADMIN_QUERY_VALUE_MAX_BYTES 1024
/* The longest path the admin_call line quotes. */
#define ADMIN_LOG_PATH_MAX_BYTES 256

#define ADMIN_CHALLENGE "WWW-Authenticate: Bearer realm=\"ledgermq\"\r\nCache-Control: no-store\r\n"
#define ADMIN_NO_STORE "Cache-Control: no-store\r\n"

/* One call: what a handler gets. */
struct admin_call {
    struct broker *b;
    const struct http_request *req;
    struct http_response *resp;
    struct lmq_buf *out;
    const char *identity; /* the caller, in [admin] ids */
};

typedef int (*admin_handler_fn)(struct admin_call *call);

struct admin_route_entry {
    const char *method; /* "GET" (HEAD too) or "POST" */
    const char *path;   /* exact, after /admin/v1 */
    admin_handler_fn handler;
};

/* ---- helpers ---- */

static int admin__error(struct admin_call *call, int status, const char *reason)
{
    return http_error_json(call->resp, call->out, status, reason);
}

/* Writes root (taking the reference) as the answer's body. */
static int admin__json(struct admin_call *call, json_t *root)
{
    if (root == NULL)
        return LMQ_ENOMEM;
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (text == NULL)
        return LMQ_ENOMEM;
    call->resp->content_type = "application/json";
    int rc = lmq_buf_append(call->out, text, strlen(text), HTTP_RESPONSE_BODY_MAX_BYTES);
    free(text);
    return rc;
}

enum admin_query { ADMIN_QUERY_ABSENT, ADMIN_QUERY_OK, ADMIN_QUERY_BAD };

/* The decoded value of name in the query string. */
static enum admin_query admin__query(const struct http_request *req, const char *name, char *out,
                                     size_t cap, size_t *out_len)
{
    const char *v;
    size_t v_len;
    if (!http_query_value(req, name, &v, &v_len))
        return ADMIN_QUERY_ABSENT;
    return http_percent_decode(v, v_len, out, cap, out_len) ? ADMIN_QUERY_OK : ADMIN_QUERY_BAD;
}

/* ?limit=1..ADMIN_PAGE_MAX (default ADMIN_PAGE_DEFAULT). False when malformed. */
static bool admin__limit(const struct http_request *req, size_t *limit)
{
    char v[24];
    size_t n = 0;
    enum admin_query q = admin__query(req, "limit", v, sizeof(v), &n);
    *limit = ADMIN_PAGE_DEFAULT;
    if (q == ADMIN_QUERY_ABSENT)
        return true;
    if (q == ADMIN_QUERY_BAD || n == 0 || n > 4)
        return false;
    size_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    if (x == 0 || x > ADMIN_PAGE_MAX)
        return false;
    *limit = x;
    return true;
}

/* The POST body as a JSON object (NULL: the 400 is answered, *rc is its result). */
static json_t *admin__body(struct admin_call *call, int *rc)
{
    json_error_t err;
    json_t *root = call->req->body_len > 0
                       ? json_loadb((const char *)call->req->body, call->req->body_len, 0, &err)
                       : json_object();
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        *rc = admin__error(call, 400, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

/* Loop time (ms) as Unix time (ms). */
static int64_t admin__unix_ms(struct broker *b, uint64_t loop_ms)
{
    return clock_unix_ms(b) - (int64_t)clock_now_ms(b) + (int64_t)loop_ms;
}

/* ---- status ---- */

static int admin__status(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    struct broker *b = call->b;
    struct store_stats st;
    store_get_stats(b->store, &st);
    json_t *root = json_pack(
        "{s:s,s:I,s:s,s:{s:I,s:I},s:{s:I,s:I},s:{s:I,s:I},s:I,s:{s:b,s:I,s:I},s:I,s:{s:I,s:I,"
        "s:I,s:I}}",
        "version", LMQ_VERSION, "uptime_s", (json_int_t)((clock_now_ms(b) - b->start_ms) / 1000),
        "log_level", lmq_log_level_name(lmq_log_get_level()), "connections", "open",
        (json_int_t)b->conn_count, "connected", (json_int_t)b->connected_count, "sessions", "total",
        (json_int_t)b->session_count, "stored", (json_int_t)b->stored_session_count, "ledger",
        "size", (json_int_t)pipeline_ledger_size(b), "checkpoint_size",
        (json_int_t)pipeline_checkpoint_entries(b), "identities",
        (json_int_t)pipeline_identity_count(b), "events", "on", events_on(b), "durable_id",
        (json_int_t)events_durable_id(b), "emitted", (json_int_t)events_emitted(b), "webhooks",
        (json_int_t)webhooks_count(b), "store", "records_written", (json_int_t)st.records_written,
        "batches", (json_int_t)st.batches, "commits", (json_int_t)st.commits, "commit_us_max",
        (json_int_t)st.commit_us_max);
    return admin__json(call, root);
}

/* ---- sessions ---- */

/* The first `limit` entries after a cursor, in byte order, chosen in one walk: a sorted array
 * of at most limit keys (the cost is O(n log limit) compares and, rarely, a move of limit
 * pointers). */
struct admin_page {
    const uint8_t *after; /* NULL: from the start */
    size_t after_len;
    size_t limit;
    size_t n;
    void **items;
    const uint8_t **keys;
    size_t *key_lens;
};

static int admin__key_cmp(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    int c = memcmp(a, b, LMQ_MIN(a_len, b_len));
    return c != 0 ? c : a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

static int admin__page_init(struct admin_page *p, const char *after, size_t after_len, size_t limit)
{
    LMQ_ASSERT(limit >= 1 && limit <= ADMIN_PAGE_MAX);
    *p = (struct admin_page){.after = after != NULL ? (const uint8_t *)after : NULL,
                             .after_len = after_len,
                             .limit = limit};
    p->items = calloc(limit, sizeof(*p->items));
    p->keys = calloc(limit, sizeof(*p->keys));
    p->key_lens = calloc(limit, sizeof(*p->key_lens));
    return p->items != NULL && p->keys != NULL && p->key_lens != NULL ? LMQ_OK : LMQ_ENOMEM;
}

static void admin__page_free(struct admin_page *p)
{
    free(p->items);
    free(p->keys);
    free(p->key_lens);
}

static void admin__page_offer(struct admin_page *p, const uint8_t *key, size_t len, void *item)
{
    if (p->after != NULL && admin__key_cmp(key, len, p->after, p->after_len) <= 0)
        return;
    if (p->n == p->limit && admin__key_cmp(key, len, p->keys[p->n - 1], p->key_lens[p->n - 1]) >= 0)
        return;
    size_t lo = 0, hi = p->n; /* binary search: the first key above this one */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (admin__key_cmp(p->keys[mid], p->key_lens[mid], key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t keep = p->n == p->limit ? p->n - 1 : p->n;
    memmove(p->items + lo + 1, p->items + lo, (keep - lo) * sizeof(*p->items));
    memmove(p->keys + lo + 1, p->keys + lo, (keep - lo) * sizeof(*p->keys));
    memmove(p->key_lens + lo + 1, p->key_lens + lo, (keep - lo) * sizeof(*p->key_lens));
    p->items[lo] = item;
    p->keys[lo] = key;
    p->key_lens[lo] = len;
    p->n = keep + 1;
    LMQ_ASSERT(p->n <= p->limit);
}

static bool admin__session_offer(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    struct session *s = value;
    LMQ_ASSERT(key != NULL && key_len == s->client_id_len);
    if (!s->closing)
        admin__page_offer(ctx, s->client_id, s->client_id_len, s);
    return true;
}

static json_t *admin__session_json(struct broker *b, const struct session *s)
{
    const struct conn *c = s->conn;
    uint64_t active_ms = c != NULL ? LMQ_MAX(c->last_rx_ms, s->progress_ms) : s->progress_ms;
    json_t *o = json_pack(
        "{s:s%,s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "client_id", (const char *)s->client_id,
        s->client_id_len, "owner", s->owner, "connected", c != NULL, "persistent", s->persistent,
        "expiry_s", (json_int_t)(s->expiry_s == UINT32_MAX ? -1 : (json_int_t)s->expiry_s),
        "queued", (json_int_t)s->queued_count, "queued_bytes", (json_int_t)s->queued_bytes,
        "inflight", (json_int_t)s->inflight_count, "subscriptions", (json_int_t)s->sub_count,
        "last_activity_ms", (json_int_t)(active_ms != 0 ? admin__unix_ms(b, active_ms) : 0));
    if (o != NULL && c != NULL) {
        json_object_set_new(o, "remote", json_string(c->remote));
        json_object_set_new(o, "identity",
                            c->identity[0] != '\0' ? json_string(c->identity) : json_null());
        json_object_set_new(o, "protocol", json_integer(c->version));
    }
    return o;
}

/* A page's "next": the last key, when the page is full (more may follow). */
static json_t *admin__next(const struct admin_page *p)
{
    if (p->n < p->limit)
        return json_null();
    return json_stringn((const char *)p->keys[p->n - 1], p->key_lens[p->n - 1]);
}

static int admin__sessions(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    size_t limit = 0, after_len = 0;
    char after[ADMIN_QUERY_VALUE_MAX_BYTES];
    enum admin_query q = admin__query(call->req, "after", after, sizeof(after), &after_len);
    if (!admin__limit(call->req, &limit) || q == ADMIN_QUERY_BAD)
        return admin__error(call, 400, "limit: 1..1000; after: a client id (percent-encoded)");
    struct admin_page p;
    int rc = admin__page_init(&p, q == ADMIN_QUERY_OK ? after : NULL, after_len, limit);
    json_t *list = rc == LMQ_OK ? json_array() : NULL;
    if (list != NULL) {
        lmq_map_visit(call->b->sessions, admin__session_offer, &p);
        for (size_t i = 0; i < p.n; i++)
            json_array_append_new(list, admin__session_json(call->b, p.items[i]));
        rc = admin__json(call, json_pack("{s:o,s:o,s:I}", "sessions", list, "next", admin__next(&p),
                                         "total", (json_int_t)call->b->session_count));
    } else {
        rc = LMQ_ENOMEM;
    }
    admin__page_free(&p);
    return rc;
}

static int admin__kick(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    int rc = LMQ_OK;
    json_t *body = admin__body(call, &rc);
    if (body == NULL)
        return rc;
    json_t *id = json_object_get(body, "client_id");
    json_t *end = json_object_get(body, "end");
    if (!json_is_string(id) || (end != NULL && !json_is_boolean(end))) {
        json_decref(body);
        return admin__error(call, 400,
                            "need client_id (a string) and optionally end (true or false)");
    }
    struct session *s = lmq_map_get(call->b->sessions, (const uint8_t *)json_string_value(id),
                                    json_string_length(id));
    bool ending = json_is_true(end);
    if (s == NULL || s->closing) {
        json_decref(body);
        return admin__error(call, 404, "no such session");
    }
    bool was_connected = s->conn != NULL;
    json_t *answer =
        json_pack("{s:O,s:b,s:b}", "client_id", id, "disconnected", was_connected, "ended", ending);
    json_decref(body);
    if (ending)
        session_admin_end(s); /* s may be freed */
    else if (was_connected)
        conn_disconnect(s->conn, MQTT_RC_ADMINISTRATIVE_ACTION);
    return admin__json(call, answer);
}

/* ---- identities ---- */

static void admin__identity_offer(void *ctx, const char *id, uint64_t last_seq, uint64_t inbox_last)
{
    LMQ_UNUSED(last_seq);
    LMQ_UNUSED(inbox_last);
    /* id is the pipeline's own copy: it stays put while this request runs. */
    admin__page_offer(ctx, (const uint8_t *)id, strlen(id), (void *)(uintptr_t)id);
}

static int admin__identities(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    size_t limit = 0, after_len = 0;
    char after[ADMIN_QUERY_VALUE_MAX_BYTES];
    enum admin_query q = admin__query(call->req, "after", after, sizeof(after), &after_len);
    if (!admin__limit(call->req, &limit) || q == ADMIN_QUERY_BAD)
        return admin__error(call, 400, "limit: 1..1000; after: an identity id");
    struct admin_page p;
    int rc = admin__page_init(&p, q == ADMIN_QUERY_OK ? after : NULL, after_len, limit);
    json_t *list = rc == LMQ_OK ? json_array() : NULL;
    if (list == NULL) {
        admin__page_free(&p);
        return LMQ_ENOMEM;
    }
    pipeline_identities_visit(call->b, admin__identity_offer, &p);
    for (size_t i = 0; i < p.n; i++) {
        uint64_t seq = 0, inbox = 0;
        const char *id = p.items[i];
        if (pipeline_identity_state(call->b, id, &seq, &inbox) != LMQ_OK)
            continue; /* cannot happen: nothing changes during the request */
        json_array_append_new(list,
                              json_pack("{s:s,s:I,s:I}", "id", id, "last_seq", (json_int_t)seq,
                                        "inbox_position", (json_int_t)inbox));
    }
    rc = admin__json(call, json_pack("{s:o,s:o,s:I}", "identities", list, "next", admin__next(&p),
                                     "total", (json_int_t)pipeline_identity_count(call->b)));
    admin__page_free(&p);
    return rc;
}

/* ---- webhooks ---- */

static int admin__webhooks(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    json_t *list = json_array();
    /* At most LMQ_WEBHOOKS_MAX endpoints. */
    for (size_t i = 0; list != NULL && i < webhooks_count(call->b); i++) {
        struct webhooks_info w;
        webhooks_info(call->b, i, &w);
        json_array_append_new(
            list, json_pack("{s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "name", w.name, "url",
                            w.url, "position", (json_int_t)w.position, "lag", (json_int_t)w.lag,
                            "circuit", w.circuit_open ? "open" : "closed", "failures",
                            (json_int_t)w.failures, "delivered", (json_int_t)w.delivered, "failed",
                            (json_int_t)w.failed, "dead", (json_int_t)w.dead, "queued",
                            (json_int_t)w.queued, "redeliveries", (json_int_t)w.redeliveries));
    }
    return admin__json(call, json_pack("{s:o,s:I}", "webhooks", list, "durable_id",
                                       (json_int_t)events_durable_id(call->b)));
}

/* The ?webhook=NAME of a request: its index, or a 404/400 answered (*rc its result). */
static bool admin__webhook_param(struct admin_call *call, const char *name, size_t *i, int *rc)
{
    if (name == NULL) {
        *rc = admin__error(call, 400, "name the webhook");
        return false;
    }
    if (webhooks_find(call->b, name, i) != LMQ_OK) {
        *rc = admin__error(call, 404, "no such webhook");
        return false;
    }
    return true;
}

static int admin__dead_row(void *ctx, const struct store_rec_consumer_dead *d)
{
    json_t *list = ctx;
    json_array_append_new(list, json_pack("{s:I,s:I,s:s%,s:I}", "event_id", (json_int_t)d->event_id,
                                          "attempts", (json_int_t)d->attempts, "error",
                                          d->error.data != NULL ? (const char *)d->error.data : "",
                                          d->error.len, "time_ms", (json_int_t)d->time_ms));
    return 0;
}

static int admin__webhook_dead(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    char name[LMQ_WEBHOOK_NAME_MAX_CHARS + 1], after[24];
    size_t name_len = 0, after_len = 0, limit = 0, i = 0, count = 0;
    enum admin_query qn = admin__query(call->req, "webhook", name, sizeof(name), &name_len);
    enum admin_query qa = admin__query(call->req, "after", after, sizeof(after), &after_len);
    uint64_t after_id = 0;
    bool after_ok =
        qa == ADMIN_QUERY_ABSENT || (qa == ADMIN_QUERY_OK && after_len > 0 && after_len <= 19 &&
                                     strspn(after, "0123456789") == after_len);
    if (!admin__limit(call->req, &limit) || qn == ADMIN_QUERY_BAD || !after_ok)
        return admin__error(call, 400, "webhook: a name; after: an event id; limit: 1..1000");
    if (qa == ADMIN_QUERY_OK)
        after_id = strtoull(after, NULL, 10);
    int rc = LMQ_OK;
    if (!admin__webhook_param(call, qn == ADMIN_QUERY_OK ? name : NULL, &i, &rc))
        return rc;
    json_t *list = json_array();
    if (list == NULL)
        return LMQ_ENOMEM;
    rc = webhooks_dead(call->b, i, after_id, limit, admin__dead_row, list, &count);
    if (rc != LMQ_OK) {
        json_decref(list);
        return admin__error(call, 500, "cannot read the dead-letter list");
    }
    json_t *last = json_array_get(list, json_array_size(list) - 1);
    json_t *next = count == limit && last != NULL ? json_incref(json_object_get(last, "event_id"))
                                                  : json_null();
    return admin__json(call,
                       json_pack("{s:s,s:o,s:o}", "webhook", name, "dead", list, "next", next));
}

static int admin__redeliver(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    int rc = LMQ_OK;
    json_t *body = admin__body(call, &rc);
    if (body == NULL)
        return rc;
    const char *name = json_string_value(json_object_get(body, "webhook"));
    json_t *id = json_object_get(body, "event_id");
    size_t i = 0;
    if (name == NULL || !json_is_integer(id) || json_integer_value(id) <= 0) {
        rc = admin__error(call, 400, "need webhook (a name) and event_id (a positive integer)");
    } else if (admin__webhook_param(call, name, &i, &rc)) {
        uint64_t event_id = (uint64_t)json_integer_value(id);
        int r = webhooks_redeliver(call->b, name, event_id);
        if (r == LMQ_OK)
            rc = admin__json(call, json_pack("{s:s,s:I,s:b}", "webhook", name, "event_id",
                                             (json_int_t)event_id, "queued", 1));
        else
            rc = admin__error(call,
                              r == LMQ_ENOTFOUND ? 404
                              : r == LMQ_EEXIST  ? 409
                              : r == LMQ_ELIMIT  ? 429
                                                 : 500,
                              r == LMQ_ENOTFOUND ? "the event is not in the dead-letter list"
                              : r == LMQ_EEXIST  ? "already queued for redelivery"
                              : r == LMQ_ELIMIT  ? "too many redeliveries waiting (16)"
                                                 : "cannot queue the redelivery");
    }
    json_decref(body);
    return rc;
}

/* ---- log level, reload ---- */

static int admin__log_level(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    int rc = LMQ_OK;
    json_t *body = admin__body(call, &rc);
    if (body == NULL)
        return rc;
    const char *name = json_string_value(json_object_get(body, "level"));
    enum lmq_log_level level;
    if (name == NULL || lmq_log_level_parse(name, &level) != LMQ_OK) {
        json_decref(body);
        return admin__error(call, 400, "need level: debug, info, warn or error");
    }
    json_decref(body);
    enum lmq_log_level before = lmq_log_get_level();
    lmq_log_set_level(level);
    call->b->cfg.log_level = level;
    return admin__json(call, json_pack("{s:s,s:s}", "level", lmq_log_level_name(level), "before",
                                       lmq_log_level_name(before)));
}

static int admin__reload(struct admin_call *call)
{
    LMQ_ASSERT(call->b != NULL && call->identity[0] != '\0'); /* authorized */
    char err[256];
    if (broker_reload(call->b, err, sizeof(err)) != LMQ_OK) {
        /* The file's message (file, line, key) may quote anything: a JSON string, not reason. */
        call->resp->status = 422;
        return admin__json(call, json_pack("{s:i,s:s,s:s}", "error", 422, "reason",
                                           "the config file did not load", "detail", err));
    }
    return admin__json(call, json_pack("{s:b,s:s,s:I}", "reloaded", 1, "log_level",
                                       lmq_log_level_name(lmq_log_get_level()), "admins",
                                       (json_int_t)call->b->cfg.admin.id_count));
}

/* ---- jobs and plugins ---- */

static int admin__jobs(struct admin_call *call)
{
    struct jobs_info jobs[LMQ_JOBS_MAX + 8];
    size_t count = 0;
    jobs_list(call->b, jobs, LMQ_ARRAY_LEN(jobs), &count);
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < LMQ_MIN(count, LMQ_ARRAY_LEN(jobs)); i++) {
        const struct jobs_info *j = &jobs[i];
        json_array_append_new(
            list, json_pack("{s:s,s:s,s:I,s:b,s:I,s:I,s:I,s:I,s:I}", "name", j->name, "schedule",
                            j->schedule, "next_tick_ms", (json_int_t)j->next_tick_ms, "running",
                            j->running, "ok", (json_int_t)j->runs_total[JOBS_OK], "failed",
                            (json_int_t)j->runs_total[JOBS_FAILED], "timeout",
                            (json_int_t)j->runs_total[JOBS_TIMEOUT], "interrupted",
                            (json_int_t)j->runs_total[JOBS_INTERRUPTED], "last_success_ms",
                            (json_int_t)j->last_success_unix_ms));
    }
    return admin__json(call, json_pack("{s:o}", "jobs", list != NULL ? list : json_array()));
}

static int admin__job_row(void *ctx, const struct jobs_run *r)
{
    json_array_append_new(
        ctx, json_pack("{s:s,s:I,s:b,s:I,s:s,s:I,s:I,s:s}", "job", r->job, "tick_ms",
                       (json_int_t)r->tick_ms, "manual", r->manual, "skipped",
                       (json_int_t)r->skipped, "state", jobs_state_name(r->state), "started_ms",
                       (json_int_t)r->started_unix_ms, "ended_ms", (json_int_t)r->ended_unix_ms,
                       "detail", r->detail != NULL ? r->detail : ""));
    return 0;
}

static int admin__job_history(struct admin_call *call)
{
    char name[LMQ_JOB_NAME_MAX_CHARS + 1];
    size_t name_len = 0, limit = 0;
    if (admin__query(call->req, "job", name, sizeof(name), &name_len) != ADMIN_QUERY_OK ||
        !admin__limit(call->req, &limit))
        return admin__error(call, 400, "job: a job name; limit: 1..1000");
    json_t *list = json_array();
    if (list == NULL)
        return LMQ_ENOMEM;
    int rc = jobs_history(call->b, name, limit, admin__job_row, list);
    if (rc != LMQ_OK) {
        json_decref(list);
        return rc == LMQ_ENOTFOUND ? admin__error(call, 404, "no such job")
                                   : admin__error(call, 500, "cannot read the runs");
    }
    return admin__json(call, json_pack("{s:s,s:o}", "job", name, "runs", list));
}

static int admin__job_run(struct admin_call *call)
{
    int rc = LMQ_OK;
    json_t *body = admin__body(call, &rc);
    if (body == NULL)
        return rc;
    const char *name = json_string_value(json_object_get(body, "job"));
    int r = name != NULL ? jobs_run_now(call->b, name) : LMQ_EINVAL;
    if (r == LMQ_OK)
        rc = admin__json(call, json_pack("{s:s,s:b}", "job", name, "started", 1));
    else
        rc = admin__error(call,
                          r == LMQ_EINVAL      ? 400
                          : r == LMQ_ENOTFOUND ? 404
                          : r == LMQ_EEXIST    ? 409
                                               : 500,
                          r == LMQ_EINVAL      ? "need job (a name)"
                          : r == LMQ_ENOTFOUND ? "no such job"
                          : r == LMQ_EEXIST    ? "a run of it is in progress"
                                               : "cannot start the run");
    json_decref(body);
    return rc;
}

static int admin__plugins(struct admin_call *call)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < plugins_count(call->b); i++) {
        struct plugins_info p;
        plugins_info(call->b, i, &p);
        char hooks[40];
        snprintf(hooks, sizeof(hooks), "%s%s%s", p.validate ? "validate " : "",
                 p.on_event ? "on_event " : "", p.will_send ? "will_send" : "");
        json_array_append_new(list,
                              json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "name", p.name, "path",
                                        p.path, "hooks", hooks, "position", (json_int_t)p.position,
                                        "validate_calls", (json_int_t)p.validate_calls, "refused",
                                        (json_int_t)p.validate_refused, "slow_calls",
                                        (json_int_t)p.slow_calls, "events", (json_int_t)p.events));
    }
    return admin__json(call, json_pack("{s:o}", "plugins", list != NULL ? list : json_array()));
}

/* ---- the routes ---- */

/* One entry per command: jobs and plugins are added here the same way. */
static const struct admin_route_entry admin__routes[] = {
    {"GET", "/status", admin__status},
    {"GET", "/sessions", admin__sessions},
    {"POST", "/sessions/kick", admin__kick},
    {"GET", "/identities", admin__identities},
    {"GET", "/webhooks", admin__webhooks},
    {"GET", "/webhooks/dead", admin__webhook_dead},
    {"POST", "/webhooks/redeliver", admin__redeliver},
    {"POST", "/log-level", admin__log_level},
    {"POST", "/reload", admin__reload},
    {"GET", "/jobs", admin__jobs},
    {"GET", "/jobs/history", admin__job_history},
    {"POST", "/jobs/run", admin__job_run},
    {"GET", "/plugins", admin__plugins},
};

#define ADMIN_PREFIX "/admin/"
#define ADMIN_V1 "/admin/v1"

bool admin_path(const struct http_request *req)
{
    size_t n = strlen(ADMIN_PREFIX);
    return req->path_len >= n - 1 && memcmp(req->path, ADMIN_PREFIX, n - 1) == 0 &&
           (req->path_len == n - 1 || req->path[n - 1] == '/');
}

/* The admin_call log line, and the admin.call event when the stream is on (a path that is not
 * UTF-8 is null there). */
static void admin__log(struct broker *b, const struct http_request *req, const char *identity,
                       int status)
{
    size_t path_len = LMQ_MIN(req->path_len, (size_t)ADMIN_LOG_PATH_MAX_BYTES);
    /* A refused call is anyone's to make: it is recorded within [events] security_per_s. */
    bool refused = status == 401 || status == 403;
    if (events_on(b) && (!refused || security_event_record_allowed(b))) {
        json_t *path = json_stringn(req->path, path_len);
        events_emit(b, "admin.call",
                    json_pack("{s:o,s:s,s:o,s:i}", "identity",
                              identity != NULL ? json_string(identity) : json_null(), "method",
                              req->method, "path", path != NULL ? path : json_null(), "status",
                              status));
    }
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_WARN, "admin_call")) /* at warn: security-relevant */
        return;
    if (identity != NULL)
        lmq_log_str(&line, "identity", identity);
    lmq_log_str(&line, "method", req->method);
    lmq_log_strn(&line, "path", (const uint8_t *)req->path, path_len);
    lmq_log_uint(&line, "status", (uint64_t)status);
    lmq_log_end(&line);
}

static bool admin__allowed(const struct broker *b, const char *id)
{
    for (uint32_t i = 0; i < b->cfg.admin.id_count && i < LMQ_ADMIN_IDS_MAX; i++) {
        if (strcmp(b->cfg.admin.ids[i], id) == 0)
            return true;
    }
    return false;
}

/* The bearer's identity when it may call admin routes; else the 401/403 is answered. */
static bool admin__authorize(struct admin_call *call, char id[CRYPTO_IDENTITY_ID_BYTES], int *rc)
{
    const char *reason = NULL;
    const char *auth = NULL;
    size_t auth_len = 0;
    bool presented = http_request_header(call->req, "Authorization", &auth, &auth_len);
    if (pipeline_tokens_http_bearer(call->b, call->req, id, &reason) != LMQ_OK) {
        /* A bad token is its own security event (bad_token, ...); none at all is ours. */
        if (!presented)
            security_event(call->b, NULL, SECURITY_EVENT_ADMIN_DENIED, "admin: no token");
        call->resp->extra_headers = ADMIN_CHALLENGE;
        *rc = admin__error(call, 401, reason);
        id[0] = '\0';
        return false;
    }
    if (!admin__allowed(call->b, id)) {
        char detail[128];
        snprintf(detail, sizeof(detail), "admin: %s is not in [admin] ids", id);
        security_event(call->b, NULL, SECURITY_EVENT_ADMIN_DENIED, detail);
        *rc = admin__error(call, 403, "not an admin");
        return false;
    }
    return true;
}

/* The table entry for the path after /admin/v1; *path_known: the Allow of a path that is in the
 * table with another method (NULL: not in it). */
static const struct admin_route_entry *admin__find(const struct http_request *req,
                                                   const char **path_known)
{
    size_t v1 = strlen(ADMIN_V1);
    *path_known = NULL;
    if (req->path_len <= v1 || memcmp(req->path, ADMIN_V1, v1) != 0)
        return NULL;
    const char *rest = req->path + v1;
    size_t rest_len = req->path_len - v1;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(admin__routes); i++) {
        const struct admin_route_entry *e = &admin__routes[i];
        if (strlen(e->path) != rest_len || memcmp(e->path, rest, rest_len) != 0)
            continue;
        *path_known = strcmp(e->method, "GET") == 0 ? "GET, HEAD" : "POST";
        if ((get && strcmp(e->method, "GET") == 0) || strcmp(e->method, req->method) == 0)
            return e;
    }
    return NULL;
}

int admin_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL && resp != NULL && out != NULL);
    LMQ_ASSERT(admin_path(req));
    char id[CRYPTO_IDENTITY_ID_BYTES];
    struct admin_call call = {.b = b, .req = req, .resp = resp, .out = out, .identity = id};
    int rc = LMQ_OK;
    id[0] = '\0';
    if (b->store == NULL || b->pipeline == NULL) {
        rc = admin__error(&call, 503, "Service Unavailable");
    } else if (admin__authorize(&call, id, &rc)) {
        resp->extra_headers = ADMIN_NO_STORE;
        const char *allow = NULL;
        const struct admin_route_entry *e = admin__find(req, &allow);
        if (e != NULL) {
            rc = e->handler(&call);
        } else if (allow != NULL) {
            resp->allow = allow;
            rc = admin__error(&call, 405, "Method Not Allowed");
        } else {
            rc = admin__error(&call, 404, "no such admin route");
        }
    }
    admin__log(b, req, id[0] != '\0' ? id : NULL, rc != LMQ_OK ? 500 : resp->status);
    return rc;
}
