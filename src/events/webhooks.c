/*
 * Webhook deliveries (webhooks.h). Per endpoint: a queue of at most max_in_flight events read
 * from the store after its cursor (events it does not take are skipped), each POSTed until a
 * 2xx answers or max_attempts fail; the position (every event up to it delivered, skipped or
 * dead-lettered) moves over the queue's done prefix and is written to the store, so a restart
 * resumes after it. The POSTs go through the shared outbound HTTP client (net/http_client.h:
 * libcurl's multi interface on the broker's loop); one uv_timer_t here for retries and the
 * breaker.
 */
#include "events/webhooks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "broker/broker_internal.h"
#include "crypto/encoding.h"
#include "events/events.h"
#include "net/http.h"
#include "net/http_client.h"

/* A response body larger than this fails the attempt (the body is not read otherwise). */
#define WEBHOOK_RESPONSE_MAX_BYTES (64u * 1024u)
/* Events read from the store per round while skipping those an endpoint does not take. */
#define WEBHOOK_READ_PAGE 64
/* Most header bytes we send (the signature, the ids, the type). */
#define WEBHOOK_HEADER_MAX_BYTES 256
_Static_assert(WEBHOOKS_REDELIVER_MAX >= 1, "room for one redelivery");
_Static_assert(WEBHOOK_RESPONSE_MAX_BYTES == 64u * 1024u, "the error text says 64 KiB");
/* Every endpoint's attempts fit in the shared client at once (max_in_flight is at most 64,
 * src/core/config_webhooks.c; redeliveries count within it). */
_Static_assert(LMQ_WEBHOOKS_MAX * 64 <= HTTP_CLIENT_REQUESTS_MAX, "room for every attempt");

struct webhook;

struct webhook_delivery {
    struct webhook *w;
    uint64_t id;
    char type[LMQ_EVENT_TYPE_MAX_CHARS + 1];
    char *body;
    size_t len;
    uint32_t attempts;
    uint64_t next_try_ms; /* loop time of the next attempt */
    bool done;            /* delivered or dead-lettered */
    bool ok;              /* delivered (a 2xx answered) */
    bool redo;            /* a redelivery of a dead event (webhooks_redeliver), not in queue */
    struct http_client_req *req; /* while an attempt runs */
};

struct webhook {
    struct webhooks *hooks;
    struct lmq_webhook_config cfg;
    uint64_t position; /* every event up to it is delivered, skipped or dead */
    uint64_t stored_position;
    uint64_t cursor;                 /* the last event read from the store */
    struct webhook_delivery **queue; /* in id order, at most cfg.max_in_flight */
    size_t count;
    uint32_t failures;      /* consecutive failed attempts */
    uint64_t open_until_ms; /* the circuit is open (no attempts) until then */
    uint64_t delivered, failed, dead;
    /* Dead events asked for again (webhooks_redeliver): sent ahead of the queue, each removed
     * from the dead-letter list once delivered; not kept across a restart. */
    struct webhook_delivery *redo[WEBHOOKS_REDELIVER_MAX];
    size_t redo_count;
};

struct webhooks {
    struct broker *broker;
    struct http_client *http;
    EVP_MAC *hmac; /* fetched once: a fetch per signature costs more than the HMAC */
    uv_timer_t pump_timer;
    bool timers_open;
    bool stopping;
    uint64_t rng;
    struct webhook endpoints[LMQ_WEBHOOKS_MAX];
    size_t count;
};

static void webhooks_pump_all(struct webhooks *h);

/* ---- the event filter ---- */

static bool webhook_takes(const struct webhook *w, const char *type, size_t len)
{
    if (w->cfg.event_count == 0)
        return true;
    for (uint32_t i = 0; i < w->cfg.event_count; i++) {
        const char *p = w->cfg.events[i];
        size_t n = strlen(p);
        if (n == 1 && p[0] == '*')
            return true;
        if (n >= 2 && p[n - 1] == '*' && len >= n - 1 && memcmp(type, p, n - 1) == 0)
            return true; /* "security.*" takes "security.<anything>" */
        if (n == len && memcmp(type, p, n) == 0)
            return true;
    }
    return false;
}

/* ---- positions ---- */

static void webhook_store_position(struct webhook *w)
{
    if (w->position == w->stored_position)
        return;
    struct store_record rec = {.type = STORE_CONSUMER_POSITION};
    char consumer[8 + LMQ_WEBHOOK_NAME_MAX_CHARS + 1];
    int n = snprintf(consumer, sizeof(consumer), "webhook:%s", w->cfg.name);
    rec.u.consumer_position = (struct store_rec_consumer_position){
        .consumer = {(const uint8_t *)consumer, (size_t)n}, .position = w->position};
    commit_store_write(w->hooks->broker, &rec);
    w->stored_position = w->position;
}

static void webhook_delivery_free(struct webhook_delivery *d)
{
    LMQ_ASSERT(d->req == NULL);
    free(d->body);
    free(d);
}

/* Drops the queue's done prefix; the position follows. */
static void webhook_advance(struct webhook *w)
{
    size_t done = 0;
    while (done < w->count && w->queue[done]->done) {
        w->position = w->queue[done]->id;
        webhook_delivery_free(w->queue[done]);
        done++;
    }
    memmove(w->queue, w->queue + done, (w->count - done) * sizeof(w->queue[0]));
    w->count -= done;
    if (w->count == 0)
        w->position = w->cursor; /* what was skipped after the last delivery */
    webhook_store_position(w);
}

/* ---- one attempt ---- */

/* "t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" */
static bool webhook_signature(const struct webhook *w, const struct webhook_delivery *d,
                              int64_t now_s, char *out, size_t cap)
{
    char prefix[32];
    int n = snprintf(prefix, sizeof(prefix), "%" PRId64 ".", now_s);
    uint8_t mac[32];
    unsigned int mac_len = 0;
    EVP_MAC_CTX *ctx = w->hooks->hmac != NULL ? EVP_MAC_CTX_new(w->hooks->hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t got = 0;
    bool ok = ctx != NULL &&
              EVP_MAC_init(ctx, (const unsigned char *)w->cfg.secret, strlen(w->cfg.secret),
                           params) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)n) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)d->body, d->len) == 1 &&
              EVP_MAC_final(ctx, mac, &got, sizeof(mac)) == 1 && got == sizeof(mac);
    EVP_MAC_CTX_free(ctx);
    mac_len = (unsigned int)got;
    char hex[65];
    if (!ok || crypto_hex_encode(mac, mac_len, hex, sizeof(hex)) != LMQ_OK)
        return false;
    n = snprintf(out, cap, "X-LedgerMQ-Signature: t=%" PRId64 ",v1=%s", now_s, hex);
    return n > 0 && (size_t)n < cap;
}

/* The header lines of an attempt (HTTP_CLIENT_HEADERS_MAX at most), in lines[]. */
#define WEBHOOK_HEADER_LINES 5
static bool webhook_headers(const struct webhook_delivery *d, int64_t now_s,
                            char lines[WEBHOOK_HEADER_LINES][WEBHOOK_HEADER_MAX_BYTES],
                            struct http_client_request *q)
{
    const struct webhook *w = d->w;
    if (!webhook_signature(w, d, now_s, lines[0], WEBHOOK_HEADER_MAX_BYTES))
        return false;
    snprintf(lines[1], WEBHOOK_HEADER_MAX_BYTES, "X-LedgerMQ-Event: %s", d->type);
    snprintf(lines[2], WEBHOOK_HEADER_MAX_BYTES, "X-LedgerMQ-Webhook: %s", w->cfg.name);
    snprintf(lines[3], WEBHOOK_HEADER_MAX_BYTES, "X-LedgerMQ-Delivery: %" PRIu64, d->id);
    snprintf(lines[4], WEBHOOK_HEADER_MAX_BYTES, "X-LedgerMQ-Attempt: %" PRIu32, d->attempts + 1);
    const char *all[] = {"Content-Type: application/json",
                         "Expect:",
                         lines[0],
                         lines[1],
                         lines[2],
                         lines[3],
                         lines[4]};
    _Static_assert(LMQ_ARRAY_LEN(all) <= HTTP_CLIENT_HEADERS_MAX, "room for the headers");
    for (size_t i = 0; i < LMQ_ARRAY_LEN(all); i++)
        q->headers[i] = all[i];
    q->header_count = LMQ_ARRAY_LEN(all);
    return true;
}

static void webhook_on_answer(void *ctx, const struct http_client_result *r);

/* Starts an attempt; false (and nothing started) without memory. */
static bool webhook_start(struct webhook_delivery *d)
{
    struct webhooks *h = d->w->hooks;
    const struct lmq_webhook_config *c = &d->w->cfg;
    LMQ_ASSERT(d->req == NULL && h->http != NULL);
    char lines[WEBHOOK_HEADER_LINES][WEBHOOK_HEADER_MAX_BYTES];
    struct http_client_request q = {
        .method = "POST",
        .url = c->url,
        .body = (const uint8_t *)d->body,
        .body_len = d->len,
        .timeout_ms = c->timeout_ms,
        .answer_max_bytes = WEBHOOK_RESPONSE_MAX_BYTES,
        .keep_answer = false, /* counted and bounded, not read */
    };
    if (!webhook_headers(d, clock_unix_ms(h->broker) / 1000, lines, &q))
        return false;
    return http_client_submit(h->http, &q, webhook_on_answer, d, &d->req) == LMQ_OK;
}

/* retry_base_ms * 2^(attempts-1), at most retry_max_ms, times a jitter in [0.5, 1.5). */
static uint64_t webhook_backoff_ms(struct webhook *w, uint32_t attempts)
{
    return lmq_backoff_ms(&w->hooks->rng, w->cfg.retry_base_ms, w->cfg.retry_max_ms, attempts);
}

static void webhook_log(const struct webhook *w, enum lmq_log_level level, const char *event,
                        const struct webhook_delivery *d, long status, const char *error)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, level, event))
        return;
    lmq_log_str(&line, "webhook", w->cfg.name);
    if (d != NULL) {
        lmq_log_uint(&line, "event_id", d->id);
        lmq_log_uint(&line, "attempt", d->attempts);
    }
    if (status > 0)
        lmq_log_uint(&line, "status", (uint64_t)status);
    if (error != NULL && error[0] != '\0')
        lmq_log_str(&line, "error", error);
    lmq_log_end(&line);
}

static void webhook_dead_letter(struct webhook *w, struct webhook_delivery *d, const char *error)
{
    char consumer[8 + LMQ_WEBHOOK_NAME_MAX_CHARS + 1];
    int n = snprintf(consumer, sizeof(consumer), "webhook:%s", w->cfg.name);
    struct store_record rec = {.type = STORE_CONSUMER_DEAD_PUT};
    rec.u.consumer_dead = (struct store_rec_consumer_dead){
        .consumer = {(const uint8_t *)consumer, (size_t)n},
        .event_id = d->id,
        .attempts = d->attempts,
        .error = {(const uint8_t *)error, strlen(error)},
        .time_ms = clock_unix_ms(w->hooks->broker),
    };
    commit_store_write(w->hooks->broker, &rec);
    w->dead++;
    d->done = true;
    webhook_log(w, LMQ_LOG_WARN, "webhook_dead_letter", d, 0, error);
}

static void webhook_consumer_name(const struct webhook *w, char *out, size_t cap, size_t *len)
{
    int n = snprintf(out, cap, "webhook:%s", w->cfg.name);
    LMQ_ASSERT(n > 0 && (size_t)n < cap);
    *len = (size_t)n;
}

/* A redelivery that is done leaves redo: delivered, its event leaves the dead-letter list;
 * given up again, the dead-letter row has its new attempts and error (webhook_dead_letter). */
static void webhook_redo_settle(struct webhook *w, struct webhook_delivery *d)
{
    LMQ_ASSERT(d->redo && w->redo_count > 0);
    if (!d->done)
        return;
    if (d->ok) {
        char consumer[8 + LMQ_WEBHOOK_NAME_MAX_CHARS + 1];
        size_t n = 0;
        webhook_consumer_name(w, consumer, sizeof(consumer), &n);
        struct store_record rec = {.type = STORE_CONSUMER_DEAD_DELETE};
        rec.u.consumer_dead = (struct store_rec_consumer_dead){
            .consumer = {(const uint8_t *)consumer, n}, .event_id = d->id};
        commit_store_write(w->hooks->broker, &rec);
        webhook_log(w, LMQ_LOG_INFO, "webhook_redelivered", d, 0, NULL);
    }
    size_t i = 0;
    while (i < w->redo_count && w->redo[i] != d)
        i++;
    LMQ_ASSERT(i < w->redo_count);
    memmove(w->redo + i, w->redo + i + 1, (w->redo_count - i - 1) * sizeof(w->redo[0]));
    w->redo_count--;
    webhook_delivery_free(d);
}

/* An attempt ended: delivered, or retried later, or given up. */
static void webhook_finished(struct webhook_delivery *d, const struct http_client_result *r)
{
    struct webhook *w = d->w;
    struct webhooks *h = w->hooks;
    long status = r->status;
    d->req = NULL; /* the request is gone */
    d->attempts++;
    bool answered = r->outcome == HTTP_CLIENT_ANSWERED;
    if (answered && status >= 200 && status < 300) {
        d->done = true;
        d->ok = true;
        w->delivered++;
        if (w->failures >= w->cfg.breaker_failures)
            webhook_log(w, LMQ_LOG_INFO, "webhook_circuit_closed", NULL, 0, NULL);
        w->failures = 0;
        webhook_log(w, LMQ_LOG_DEBUG, "webhook_delivered", d, status, NULL);
    } else {
        char error[HTTP_CLIENT_ERROR_MAX_CHARS + 64];
        if (r->outcome == HTTP_CLIENT_TOO_BIG)
            snprintf(error, sizeof(error), "response body over 64 KiB");
        else if (!answered)
            snprintf(error, sizeof(error), "%s", r->error);
        else
            snprintf(error, sizeof(error), "HTTP status %ld", status);
        w->failed++;
        w->failures++;
        uint64_t now = uv_now(&h->broker->loop);
        webhook_log(w, LMQ_LOG_WARN, "webhook_failed", d, status, error);
        if (d->attempts >= w->cfg.max_attempts)
            webhook_dead_letter(w, d, error);
        else
            d->next_try_ms = now + webhook_backoff_ms(w, d->attempts);
        if (w->failures == w->cfg.breaker_failures) {
            w->open_until_ms = now + w->cfg.breaker_open_ms;
            webhook_log(w, LMQ_LOG_WARN, "webhook_circuit_open", NULL, 0, error);
        } else if (w->failures > w->cfg.breaker_failures) {
            w->open_until_ms = now + w->cfg.breaker_open_ms; /* the trial failed too */
        }
    }
    if (d->redo)
        webhook_redo_settle(w, d);
    else
        webhook_advance(w);
}

/* The shared HTTP client's callback: the attempt ended; what may start now starts. */
static void webhook_on_answer(void *ctx, const struct http_client_result *r)
{
    struct webhook_delivery *d = ctx;
    struct webhooks *h = d->w->hooks;
    webhook_finished(d, r); /* may free d */
    webhooks_pump_all(h);
}

/* ---- filling the queue and starting attempts ---- */

struct webhook_fill {
    struct webhook *w;
    bool full;
    bool failed;
};

static int webhook_fill_row(void *ctx, const struct events_event *e)
{
    struct webhook_fill *f = ctx;
    struct webhook *w = f->w;
    if (w->count == w->cfg.max_in_flight) {
        f->full = true;
        return 1; /* stop: the queue is full; this event is read again later */
    }
    w->cursor = e->id;
    if (!webhook_takes(w, e->type, e->type_len))
        return 0;
    struct webhook_delivery *d = calloc(1, sizeof(*d));
    char *body = d != NULL ? malloc(e->json_len + 1) : NULL;
    if (body == NULL) {
        free(d);
        w->cursor = e->id - 1;
        f->failed = true;
        return 1;
    }
    memcpy(body, e->json, e->json_len);
    body[e->json_len] = '\0';
    *d = (struct webhook_delivery){.w = w, .id = e->id, .body = body, .len = e->json_len};
    snprintf(d->type, sizeof(d->type), "%.*s", (int)LMQ_MIN(e->type_len, sizeof(d->type) - 1),
             e->type);
    w->queue[w->count++] = d;
    return 0;
}

static void webhook_fill(struct webhook *w)
{
    struct broker *b = w->hooks->broker;
    uint64_t durable = events_durable_id(b);
    while (w->count < w->cfg.max_in_flight && w->cursor < durable) {
        struct webhook_fill f = {.w = w};
        size_t count = 0;
        int rc = events_read(b, w->cursor, WEBHOOK_READ_PAGE, webhook_fill_row, &f, &count);
        if (rc == LMQ_EIO)
            broker_fail_stop(b, "event read", rc);
        if (f.full || f.failed || count == 0 || rc != LMQ_OK)
            break;
    }
    if (w->count == 0)
        webhook_advance(w); /* skipped events move the position too */
}

/* Starts what may start now; returns the loop time of the next wake-up needed (0: none). */
static uint64_t webhook_pump(struct webhook *w)
{
    uint64_t now = uv_now(&w->hooks->broker->loop);
    webhook_fill(w);
    if (w->open_until_ms > now)
        return w->open_until_ms;
    uint64_t wake = 0;
    size_t running = 0;
    for (size_t i = 0; i < w->redo_count + w->count; i++) {
        struct webhook_delivery *d = i < w->redo_count ? w->redo[i] : w->queue[i - w->redo_count];
        running += d->req != NULL ? 1 : 0;
    }
    /* Redeliveries first; at most max_in_flight attempts at once in all. */
    for (size_t i = 0; i < w->redo_count + w->count && running < w->cfg.max_in_flight; i++) {
        struct webhook_delivery *d = i < w->redo_count ? w->redo[i] : w->queue[i - w->redo_count];
        if (d->done || d->req != NULL)
            continue;
        if (d->next_try_ms > now) {
            wake = wake == 0 ? d->next_try_ms : LMQ_MIN(wake, d->next_try_ms);
            continue;
        }
        /* An open circuit's trial: one attempt at a time. */
        bool trial = w->failures >= w->cfg.breaker_failures;
        if (!webhook_start(d)) {
            wake = now + 1000; /* no memory now: try again in a second */
            break;
        }
        running++;
        if (trial)
            break;
    }
    return wake;
}

static void webhooks_on_pump_timer(uv_timer_t *t)
{
    webhooks_pump_all(t->data);
}

static void webhooks_pump_all(struct webhooks *h)
{
    if (h->stopping)
        return;
    uint64_t wake = 0;
    for (size_t i = 0; i < h->count; i++) {
        uint64_t at = webhook_pump(&h->endpoints[i]);
        if (at != 0)
            wake = wake == 0 ? at : LMQ_MIN(wake, at);
    }
    if (wake != 0) {
        uint64_t now = uv_now(&h->broker->loop);
        uv_timer_start(&h->pump_timer, webhooks_on_pump_timer, wake > now ? wake - now : 0, 0);
    }
}

static void webhooks_on_events(void *ctx, uint64_t durable_id)
{
    LMQ_UNUSED(durable_id);
    webhooks_pump_all(ctx);
}

/* ---- lifecycle ---- */

static int webhooks_position_row(void *ctx, struct lmq_bytes consumer, uint64_t position)
{
    struct webhooks *h = ctx;
    for (size_t i = 0; i < h->count; i++) {
        struct webhook *w = &h->endpoints[i];
        char name[8 + LMQ_WEBHOOK_NAME_MAX_CHARS + 1];
        int n = snprintf(name, sizeof(name), "webhook:%s", w->cfg.name);
        if ((size_t)n == consumer.len && memcmp(name, consumer.data, consumer.len) == 0)
            w->position = w->stored_position = w->cursor = position;
    }
    return 0;
}

int webhooks_init(struct broker *b)
{
    LMQ_ASSERT(b->webhooks == NULL);
    if (b->cfg.webhook_count == 0)
        return LMQ_OK;
    LMQ_ASSERT(b->events != NULL); /* a webhook turns the stream on */
    struct webhooks *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return LMQ_ENOMEM;
    b->webhooks = h;
    h->broker = b;
    h->rng = uv_hrtime() | 1;
    h->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (h->hmac == NULL || http_client_create(&b->loop, &h->http) != LMQ_OK)
        return LMQ_ENOMEM;
    uv_timer_init(&b->loop, &h->pump_timer);
    h->pump_timer.data = h;
    h->timers_open = true;
    uint64_t durable = events_durable_id(b);
    for (size_t i = 0; i < b->cfg.webhook_count; i++) {
        struct webhook *w = &h->endpoints[h->count++];
        w->hooks = h;
        w->cfg = b->cfg.webhooks[i];
        /* A new endpoint starts with the events after now. */
        w->position = w->cursor = durable;
        w->stored_position = UINT64_MAX; /* written below unless the store has it */
        w->queue = calloc(w->cfg.max_in_flight, sizeof(w->queue[0]));
        if (w->queue == NULL)
            return LMQ_ENOMEM;
    }
    if (store_consumer_positions(b->store, webhooks_position_row, h) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot read the webhook positions");
        return LMQ_EIO;
    }
    int rc = events_listen(b, webhooks_on_events, h);
    for (size_t i = 0; i < h->count; i++) {
        struct webhook *w = &h->endpoints[i];
        struct lmq_log_line line;
        if (lmq_log_begin(&line, LMQ_LOG_INFO, "webhook_started")) {
            lmq_log_str(&line, "webhook", w->cfg.name);
            lmq_log_str(&line, "url", w->cfg.url);
            lmq_log_uint(&line, "position", w->position);
            lmq_log_uint(&line, "behind", durable - LMQ_MIN(durable, w->position));
            lmq_log_end(&line);
        }
    }
    return rc;
}

/* After recovery the loop starts: new endpoints' positions are written, backlogs resume. */
static void webhooks_first_pump(struct webhooks *h)
{
    for (size_t i = 0; i < h->count; i++) {
        struct webhook *w = &h->endpoints[i];
        if (w->stored_position == UINT64_MAX) {
            w->stored_position = w->position + 1; /* differs: written */
            webhook_store_position(w);
        }
    }
    webhooks_pump_all(h);
}

void webhooks_stop(struct broker *b)
{
    struct webhooks *h = b->webhooks;
    if (h == NULL || h->stopping)
        return;
    h->stopping = true;
    for (size_t i = 0; i < h->count; i++) {
        struct webhook *w = &h->endpoints[i];
        for (size_t k = 0; k < w->redo_count + w->count; k++) {
            struct webhook_delivery *d =
                k < w->redo_count ? w->redo[k] : w->queue[k - w->redo_count];
            if (d->req != NULL) { /* not delivered: sent again after a restart */
                http_client_cancel(d->req);
                d->req = NULL;
            }
        }
    }
    /* Closes the connections kept for reuse and the client's handles. */
    http_client_close(h->http);
    h->http = NULL;
    if (h->timers_open) {
        uv_close((uv_handle_t *)&h->pump_timer, NULL);
        h->timers_open = false;
    }
}

void webhooks_destroy(struct broker *b)
{
    struct webhooks *h = b->webhooks;
    if (h == NULL)
        return;
    webhooks_stop(b);
    for (size_t i = 0; i < h->count; i++) {
        struct webhook *w = &h->endpoints[i];
        for (size_t k = 0; k < w->count; k++)
            webhook_delivery_free(w->queue[k]);
        for (size_t k = 0; k < w->redo_count; k++)
            webhook_delivery_free(w->redo[k]);
        free(w->queue);
    }
    EVP_MAC_free(h->hmac);
    free(h);
    b->webhooks = NULL;
}

int webhooks_metrics(struct broker *b, struct lmq_buf *out)
{
    struct webhooks *h = b->webhooks;
    int rc = http_body_printf(
        out,
        "# HELP ledgermq_events_total Events written to the event stream since start.\n"
        "# TYPE ledgermq_events_total counter\nledgermq_events_total %" PRIu64 "\n",
        events_emitted(b));
    if (h == NULL)
        return rc;
    rc |= http_body_printf(
        out, "# HELP ledgermq_webhook_deliveries_total Webhook attempts since start: delivered "
             "(2xx), failed (retried or dead-lettered), dead (given up after max_attempts).\n"
             "# TYPE ledgermq_webhook_deliveries_total counter\n");
    for (size_t i = 0; i < h->count; i++) {
        const struct webhook *w = &h->endpoints[i];
        rc |= http_body_printf(out,
                               "ledgermq_webhook_deliveries_total{webhook=\"%s\",result=\"ok\"} "
                               "%" PRIu64 "\n"
                               "ledgermq_webhook_deliveries_total{webhook=\"%s\",result="
                               "\"failed\"} %" PRIu64 "\n"
                               "ledgermq_webhook_deliveries_total{webhook=\"%s\",result=\"dead\"} "
                               "%" PRIu64 "\n",
                               w->cfg.name, w->delivered, w->cfg.name, w->failed, w->cfg.name,
                               w->dead);
    }
    rc |= http_body_printf(out, "# HELP ledgermq_webhook_lag_events Durable events the endpoint "
                                "has not yet had (delivered, skipped or dead-lettered).\n"
                                "# TYPE ledgermq_webhook_lag_events gauge\n");
    uint64_t durable = events_durable_id(b);
    for (size_t i = 0; i < h->count; i++) {
        const struct webhook *w = &h->endpoints[i];
        rc |= http_body_printf(out, "ledgermq_webhook_lag_events{webhook=\"%s\"} %" PRIu64 "\n",
                               w->cfg.name, durable - LMQ_MIN(durable, w->position));
    }
    rc |= http_body_printf(out, "# HELP ledgermq_webhook_circuit_open 1 while the endpoint's "
                                "circuit breaker holds deliveries back.\n"
                                "# TYPE ledgermq_webhook_circuit_open gauge\n");
    uint64_t now = uv_now(&b->loop);
    for (size_t i = 0; i < h->count; i++) {
        const struct webhook *w = &h->endpoints[i];
        rc |= http_body_printf(out, "ledgermq_webhook_circuit_open{webhook=\"%s\"} %d\n",
                               w->cfg.name, w->open_until_ms > now ? 1 : 0);
    }
    return rc;
}

void webhooks_start(struct broker *b)
{
    if (b->webhooks != NULL)
        webhooks_first_pump(b->webhooks);
}

/* ---- the admin API ---- */

size_t webhooks_count(const struct broker *b)
{
    return b->webhooks != NULL ? b->webhooks->count : 0;
}

void webhooks_info(struct broker *b, size_t i, struct webhooks_info *out)
{
    const struct webhooks *h = b->webhooks;
    LMQ_ASSERT(h != NULL && i < h->count && out != NULL);
    const struct webhook *w = &h->endpoints[i];
    uint64_t durable = events_durable_id(b);
    *out = (struct webhooks_info){
        .name = w->cfg.name,
        .url = w->cfg.url,
        .position = w->position,
        .lag = durable - LMQ_MIN(durable, w->position),
        .delivered = w->delivered,
        .failed = w->failed,
        .dead = w->dead,
        .circuit_open = w->open_until_ms > uv_now(&b->loop),
        .failures = w->failures,
        .queued = w->count,
        .redeliveries = w->redo_count,
    };
}

int webhooks_find(const struct broker *b, const char *name, size_t *i)
{
    LMQ_ASSERT(name != NULL && i != NULL);
    for (size_t k = 0; k < webhooks_count(b); k++) {
        if (strcmp(b->webhooks->endpoints[k].cfg.name, name) == 0) {
            *i = k;
            return LMQ_OK;
        }
    }
    return LMQ_ENOTFOUND;
}

int webhooks_dead(struct broker *b, size_t i, uint64_t after_id, size_t limit,
                  int (*each)(void *ctx, const struct store_rec_consumer_dead *d), void *ctx,
                  size_t *count)
{
    LMQ_ASSERT(i < webhooks_count(b) && each != NULL && count != NULL);
    char consumer[8 + LMQ_WEBHOOK_NAME_MAX_CHARS + 1];
    size_t n = 0;
    webhook_consumer_name(&b->webhooks->endpoints[i], consumer, sizeof(consumer), &n);
    return store_consumer_dead(b->store, (struct lmq_bytes){(const uint8_t *)consumer, n}, after_id,
                               limit, each, ctx, count);
}

static int webhooks_dead_found(void *ctx, const struct store_rec_consumer_dead *d)
{
    *(uint64_t *)ctx = d->event_id;
    return 0;
}

/* Reads the event of a redelivery into its delivery. */
struct webhooks_redo_read {
    struct webhook_delivery *d;
    bool no_memory;
};

static int webhooks_redo_event(void *ctx, const struct events_event *e)
{
    struct webhooks_redo_read *r = ctx;
    struct webhook_delivery *d = r->d;
    if (e->id != d->id)
        return 1; /* gap-free ids: not stored (cannot happen for a dead event) */
    d->body = malloc(e->json_len + 1);
    if (d->body == NULL) {
        r->no_memory = true;
        return 1;
    }
    memcpy(d->body, e->json, e->json_len);
    d->body[e->json_len] = '\0';
    d->len = e->json_len;
    snprintf(d->type, sizeof(d->type), "%.*s", (int)LMQ_MIN(e->type_len, sizeof(d->type) - 1),
             e->type);
    return 0;
}

int webhooks_redeliver(struct broker *b, const char *name, uint64_t event_id)
{
    size_t i = 0;
    if (event_id == 0 || webhooks_find(b, name, &i) != LMQ_OK)
        return LMQ_ENOTFOUND;
    struct webhook *w = &b->webhooks->endpoints[i];
    for (size_t k = 0; k < w->redo_count; k++) {
        if (w->redo[k]->id == event_id)
            return LMQ_EEXIST;
    }
    if (w->redo_count == WEBHOOKS_REDELIVER_MAX)
        return LMQ_ELIMIT;
    uint64_t found = 0;
    size_t count = 0;
    int rc = webhooks_dead(b, i, event_id - 1, 1, webhooks_dead_found, &found, &count);
    if (rc != LMQ_OK)
        return rc;
    if (found != event_id)
        return LMQ_ENOTFOUND;
    struct webhook_delivery *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return LMQ_ENOMEM;
    *d = (struct webhook_delivery){.w = w, .id = event_id, .redo = true};
    struct webhooks_redo_read r = {.d = d};
    rc = events_read(b, event_id - 1, 1, webhooks_redo_event, &r, &count);
    if (rc != LMQ_OK || d->body == NULL) {
        free(d->body);
        free(d);
        return rc == LMQ_EIO ? LMQ_EIO : r.no_memory ? LMQ_ENOMEM : LMQ_ENOTFOUND;
    }
    w->redo[w->redo_count++] = d;
    webhook_log(w, LMQ_LOG_INFO, "webhook_redeliver", d, 0, NULL);
    webhooks_pump_all(b->webhooks);
    return LMQ_OK;
}
