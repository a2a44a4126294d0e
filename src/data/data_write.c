/*
 * Objects written over HTTP (docs/PROTOCOL.md "Writing objects over HTTP"):
 *
 *   POST   /api/v1/T              a new resource
 *   PUT    /api/v1/T/PERMALINK    a new version (If-Match or "_prevlink" names the one replaced)
 *   DELETE /api/v1/T/PERMALINK    a tombstone (If-Match names the version replaced)
 *
 * Each becomes an envelope the server signs on its own chain for the caller (the body names the
 * caller in "_on_behalf_of"), sent through the pipeline like any envelope: the same object
 * checks (a refusal is the HTTP error, nothing appended), the caller's envelope rate and daily
 * ledger bytes. The answer waits for the commit: the envelope, its ack with the ledger receipt
 * (what `ledgermq send` prints) and the resource as GET shows it. The connection reads nothing
 * further meanwhile (http_request_defer), so answers stay in request order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "net/http.h"

/* The envelope type of an object written over HTTP. */
#define DATA_WRITE_ENVELOPE_TYPE "object"

/* One write waiting for its commit. Freed by data_write_sent, which the pipeline calls exactly
 * once; the connection may go first (deferred is then NULL). */
struct data_write {
    struct broker *broker;
    struct http_deferred *deferred;
    struct lmq_buf envelope; /* the signed envelope, canonical JSON */
    char reader[DATA_HEX64_CHARS + 1];
    int status; /* 201 for a new resource, else 200 */
};

static void data_write_abandoned(void *ctx)
{
    struct data_write *w = ctx;
    w->deferred = NULL; /* the ack still comes: data_write_sent frees w */
}

/* The version just committed, as GET shows it (NULL: not readable, which can't happen for the
 * caller's own write but is answered without it all the same). */
static int data_write_row(void *ctx, const struct store_data_row *r)
{
    json_t **out = ctx;
    *out = data_http_resource(r);
    return *out != NULL ? 0 : -1;
}

static json_t *data_write_resource(struct broker *b, const char *link, const char *reader)
{
    json_t *value = NULL;
    bool found = false;
    int rc =
        store_data_version(b->store, (struct lmq_bytes){(const uint8_t *)link, DATA_HEX64_CHARS},
                           (struct lmq_bytes){(const uint8_t *)reader, DATA_HEX64_CHARS},
                           data_write_row, &value, &found);
    if (rc == LMQ_EIO)
        broker_fail_stop(b, "data read", rc);
    return value;
}

/* The answer: {"envelope":{...}, <the ack's members>, "resource":{...}}. */
static json_t *data_write_answer(struct data_write *w, const char *ack, size_t ack_len)
{
    json_error_t jerr;
    json_t *body = json_loadb(ack, ack_len, 0, &jerr);
    json_t *env = json_loadb((const char *)w->envelope.data, w->envelope.len, 0, &jerr);
    const char *link = json_string_value(json_object_get(body, "link"));
    json_t *resource = link != NULL ? data_write_resource(w->broker, link, w->reader) : NULL;
    if (!json_is_object(body) || env == NULL || resource == NULL ||
        json_object_set_new(body, "envelope", env) != 0 ||
        json_object_set_new(body, "resource", resource) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

static void data_write_sent(void *ctx, const char *ack, size_t ack_len)
{
    struct data_write *w = ctx;
    if (w->deferred != NULL) {
        struct http_response resp = {.status = w->status, .extra_headers = DATA_HTTP_NO_STORE};
        struct lmq_buf out = {0};
        json_t *answer = ack != NULL ? data_write_answer(w, ack, ack_len) : NULL;
        if (answer != NULL)
            (void)data_http_json(&resp, &out, answer);
        else if (ack != NULL)
            (void)http_error_json(&resp, &out, 500, "committed: the answer could not be built");
        else /* the server stopped before the commit: whether it was kept is unknown */
            (void)http_error_json(&resp, &out, 503, "not_committed");
        http_deferred_answer(w->deferred, &resp, &out);
        lmq_buf_release(&out);
    }
    lmq_buf_release(&w->envelope);
    free(w);
}

/* A refusal as the HTTP error: {"error":S,"reason":...,"detail":...,<members>}. */
static int data_write_refused(struct http_response *resp, struct lmq_buf *out,
                              struct pipeline_refusal *r)
{
    static const struct {
        const char *reason;
        int status;
    } statuses[] = {
        {"invalid_object", 422}, {"stale_version", 409},  {"not_author", 403},
        {"rate_limited", 429},   {"quota_exceeded", 429}, {"too_large", 413},
    };
    int status = 400;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(statuses); i++) {
        if (strcmp(statuses[i].reason, r->reason) == 0)
            status = statuses[i].status;
    }
    json_t *o = r->members != NULL ? r->members : json_object();
    r->members = NULL;
    if (o == NULL || json_object_set_new(o, "error", json_integer(status)) != 0 ||
        json_object_set_new(o, "reason", json_string(r->reason)) != 0 ||
        (r->detail != NULL && json_object_set_new(o, "detail", json_string(r->detail)) != 0)) {
        json_decref(o);
        return http_error_json(resp, out, 500, "out_of_memory");
    }
    resp->status = status;
    if (status == 429)
        resp->extra_headers = "Retry-After: 1\r\nCache-Control: no-store\r\n";
    return data_http_json(resp, out, o);
}

/* What the request says besides its body: ?to=ID (the recipient; the caller by default). */
struct data_write_params {
    char to[DATA_HEX64_CHARS + 1];
    bool bad;
};

static bool data_write_param(void *ctx, const struct data_http_param *p)
{
    struct data_write_params *wp = ctx;
    if (strcmp(p->name, "to") == 0 && data_hex64(p->value))
        memcpy(wp->to, p->value, DATA_HEX64_CHARS + 1);
    else
        wp->bad = true;
    return !wp->bad;
}

/* The version an update replaces: If-Match ("LINK", W/ not accepted) or the body's _prevlink.
 * False when If-Match is malformed or disagrees with _prevlink. */
static bool data_write_prevlink(const struct http_request *req, json_t *body,
                                char prevlink[DATA_HEX64_CHARS + 1])
{
    const char *v = NULL;
    size_t len = 0;
    const char *in_body = json_string_value(json_object_get(body, "_prevlink"));
    prevlink[0] = '\0';
    if (http_request_header(req, "If-Match", &v, &len)) {
        if (len == DATA_HEX64_CHARS + 2 && v[0] == '"' && v[len - 1] == '"') {
            v++;
            len -= 2;
        }
        if (len != DATA_HEX64_CHARS)
            return false;
        memcpy(prevlink, v, DATA_HEX64_CHARS);
        prevlink[DATA_HEX64_CHARS] = '\0';
        if (!data_hex64(prevlink) || (in_body != NULL && strcmp(in_body, prevlink) != 0))
            return false;
    } else if (in_body != NULL) {
        snprintf(prevlink, DATA_HEX64_CHARS + 1, "%s", in_body);
    }
    return true;
}

/* The envelope body for the request, or NULL with the 4xx answered. */
static json_t *data_write_body(const struct data_model *m, const char *caller,
                               const char *permalink, const struct http_request *req,
                               struct http_response *resp, struct lmq_buf *out, int *rc)
{
    bool del = strcmp(req->method, "DELETE") == 0;
    json_error_t jerr;
    json_t *body = NULL;
    if (del)
        body = json_object();
    else if (req->body_len > 0) /* json_is_object() evaluates its argument twice */
        body = schema_json_loadb((const char *)req->body, req->body_len, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        *rc = http_error_json(resp, out, 400, "bad_json: the body is one JSON object");
        return NULL;
    }
    const char *t = json_string_value(json_object_get(body, "_t"));
    char prevlink[DATA_HEX64_CHARS + 1];
    const char *why = NULL;
    if (json_object_get(body, "_t") != NULL && (t == NULL || strcmp(t, m->name) != 0))
        why = "bad_t: _t must name the type of the path";
    else if (json_object_get(body, "_on_behalf_of") != NULL || json_object_get(body, "_deleted"))
        why = "reserved_member: _on_behalf_of and _deleted are the server's";
    else if (permalink == NULL && (json_object_get(body, "_prevlink") != NULL ||
                                   json_object_get(body, "_permalink") != NULL))
        why = "reserved_member: POST creates a resource; PUT /api/v1/T/PERMALINK updates one";
    else if (!data_write_prevlink(req, body, prevlink))
        why = "bad_if_match: If-Match is the quoted link of the latest version, as _prevlink";
    if (why != NULL) {
        json_decref(body);
        *rc = http_error_json(resp, out, 400, why);
        return NULL;
    }
    if (permalink != NULL && prevlink[0] == '\0') {
        json_decref(body);
        *rc = http_error_json(resp, out, 428,
                              "precondition_required: If-Match names the version replaced");
        return NULL;
    }
    if (json_object_set_new(body, "_t", json_string(m->name)) != 0 ||
        json_object_set_new(body, "_on_behalf_of", json_string(caller)) != 0 ||
        (permalink != NULL &&
         (json_object_set_new(body, "_permalink", json_string(permalink)) != 0 ||
          json_object_set_new(body, "_prevlink", json_string(prevlink)) != 0)) ||
        (del && json_object_set_new(body, "_deleted", json_true()) != 0)) {
        json_decref(body);
        *rc = http_error_json(resp, out, 500, "out_of_memory");
        return NULL;
    }
    return body;
}

int data_write_route(struct broker *b, const struct data_model *m, const char *caller,
                     const char *permalink, const struct http_request *req,
                     struct http_response *resp, struct lmq_buf *out)
{
    struct data_write_params wp = {0};
    if (!data_http_params(req, data_write_param, &wp))
        return http_error_json(resp, out, 400, "bad_query: only to=<identity id>");
    int rc = LMQ_OK;
    json_t *body = data_write_body(m, caller, permalink, req, resp, out, &rc);
    if (body == NULL)
        return rc;
    struct data_write *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        json_decref(body);
        return http_error_json(resp, out, 500, "out_of_memory");
    }
    w->broker = b;
    w->status = permalink == NULL ? 201 : 200;
    memcpy(w->reader, caller, DATA_HEX64_CHARS + 1);
    struct pipeline_server_envelope e = {
        .to = wp.to[0] != '\0' ? wp.to : caller,
        .type = DATA_WRITE_ENVELOPE_TYPE,
        .body = body,
        .charged_to = caller,
        .sent = data_write_sent,
        .ctx = w,
    };
    struct pipeline_refusal refusal = {0};
    rc = pipeline_server_send(b, &e, &refusal, &w->envelope);
    json_decref(body);
    if (rc != LMQ_OK) {
        lmq_buf_release(&w->envelope);
        free(w);
        if (rc != LMQ_EPROTO)
            return http_error_json(resp, out, 500, "out_of_memory");
        rc = data_write_refused(resp, out, &refusal);
        json_decref(refusal.members);
        return rc;
    }
    /* Appended: the answer waits for the commit. */
    w->deferred = http_request_defer(req, data_write_abandoned, w);
    if (w->deferred != NULL)
        return LMQ_OK;
    /* It can't wait (no memory): accepted, not yet durable; the envelope says what to check. */
    resp->status = 202;
    resp->extra_headers = DATA_HTTP_NO_STORE;
    json_error_t jerr;
    json_t *env = json_loadb((const char *)w->envelope.data, w->envelope.len, 0, &jerr);
    return data_http_json(resp, out,
                          json_pack("{so}", "envelope", env != NULL ? env : json_null()));
}
