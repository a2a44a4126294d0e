/*
 * Webhook deliveries (webhooks.h). Per endpoint: a queue of at most max_in_flight events read
 * from the store after its cursor (events it does not take are skipped), each POSTed until a
 * 2xx answers or max_attempts fail; the position (every event up to it delivered, skipped or
 * dead-lettered) moves over the queue's done prefix and is written to the store, so a restart
 * resumes after it. libcurl's multi interface runs on the broker's loop: a uv_poll_t per
 * socket curl asks to watch, one uv_timer_t for curl's timeouts, one for retries and the
 * breaker.
 */
#include "events/webhooks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "broker/broker_internal.h"
#include "crypto/encoding.h"
#include "events/events.h"
#include "net/http.h"

/* A response body larger than this fails the attempt (the body is not read otherwise). */
#define WEBHOOK_RESPONSE_MAX_BYTES (64u * 1024u)
/* Events read from the store per round while skipping those an endpoint does not take. */
#define WEBHOOK_READ_PAGE 64
/* The longest connect, within timeout_ms. */
#define WEBHOOK_CONNECT_MAX_MS 10000
/* Most header bytes we send (the signature, the ids, the type). */
#define WEBHOOK_HEADER_MAX_BYTES 256
_Static_assert(WEBHOOKS_REDELIVER_MAX >= 1, "room for one redelivery");

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
    CURL *easy;           /* while an attempt runs */
    struct curl_slist *headers;
    size_t response_bytes;
    char error[CURL_ERROR_SIZE];
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
    CURLM *multi;
    EVP_MAC *hmac; /* fetched once: a fetch per signature costs more than the HMAC */
    uv_timer_t curl_timer;
    uv_timer_t pump_timer;
    bool timers_open;
    bool stopping;
    uint64_t rng;
    struct webhook endpoints[LMQ_WEBHOOKS_MAX];
    size_t count;
};

struct webhook_socket {
    uv_poll_t poll;
    curl_socket_t fd;
    struct webhooks *hooks;
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
    LMQ_ASSERT(d->easy == NULL);
    curl_slist_free_all(d->headers);
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

static size_t webhook_on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    LMQ_UNUSED(data);
    struct webhook_delivery *d = ctx;
    d->response_bytes += size * nmemb;
    return d->response_bytes > WEBHOOK_RESPONSE_MAX_BYTES ? 0 : size * nmemb; /* 0 aborts */
}

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

static bool webhook_headers(struct webhook_delivery *d, int64_t now_s)
{
    const struct webhook *w = d->w;
    char sig[WEBHOOK_HEADER_MAX_BYTES], line[WEBHOOK_HEADER_MAX_BYTES];
    curl_slist_free_all(d->headers);
    d->headers = NULL;
    if (!webhook_signature(w, d, now_s, sig, sizeof(sig)))
        return false;
    const char *fixed[] = {"Content-Type: application/json", "Expect:", sig};
    for (size_t i = 0; i < 3; i++) {
        struct curl_slist *l = curl_slist_append(d->headers, fixed[i]);
        if (l == NULL)
            return false;
        d->headers = l;
    }
    const char *fmt[] = {"X-LedgerMQ-Event: %s", "X-LedgerMQ-Webhook: %s"};
    const char *val[] = {d->type, w->cfg.name};
    for (size_t i = 0; i < 2; i++) {
        snprintf(line, sizeof(line), fmt[i], val[i]);
        struct curl_slist *l = curl_slist_append(d->headers, line);
        if (l == NULL)
            return false;
        d->headers = l;
    }
    snprintf(line, sizeof(line), "X-LedgerMQ-Delivery: %" PRIu64, d->id);
    struct curl_slist *l = curl_slist_append(d->headers, line);
    if (l == NULL)
        return false;
    d->headers = l;
    snprintf(line, sizeof(line), "X-LedgerMQ-Attempt: %" PRIu32, d->attempts + 1);
    l = curl_slist_append(d->headers, line);
    if (l == NULL)
        return false;
    d->headers = l;
    return true;
}

/* Starts an attempt; false (and nothing started) without memory. */
static bool webhook_start(struct webhook_delivery *d)
{
    struct webhooks *h = d->w->hooks;
    const struct lmq_webhook_config *c = &d->w->cfg;
    if (!webhook_headers(d, clock_unix_ms(h->broker) / 1000) ||
        (d->easy = curl_easy_init()) == NULL)
        return false;
    CURL *e = d->easy;
    d->response_bytes = 0;
    d->error[0] = '\0';
    long timeout = (long)c->timeout_ms;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, c->url) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->len) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                               LMQ_MIN(timeout, (long)WEBHOOK_CONNECT_MAX_MS)) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_USERAGENT, "ledgermq/" LMQ_VERSION) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, webhook_on_body) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, d) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->error) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PRIVATE, d) == CURLE_OK &&
              curl_multi_add_handle(h->multi, e) == CURLM_OK;
    if (!ok) {
        curl_easy_cleanup(e);
        d->easy = NULL;
    }
    return ok;
}

static uint64_t webhooks_random(struct webhooks *h)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    return h->rng;
}

/* retry_base_ms * 2^(attempts-1), at most retry_max_ms, times a jitter in [0.5, 1.5). */
static uint64_t webhook_backoff_ms(struct webhook *w, uint32_t attempts)
{
    uint64_t ms = w->cfg.retry_base_ms;
    for (uint32_t i = 1; i < attempts && ms < w->cfg.retry_max_ms; i++)
        ms *= 2;
    ms = LMQ_MIN(ms, (uint64_t)w->cfg.retry_max_ms);
    return ms / 2 + webhooks_random(w->hooks) % (ms > 0 ? ms : 1);
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
static void webhook_finished(struct webhook_delivery *d, CURLcode result)
{
    struct webhook *w = d->w;
    struct webhooks *h = w->hooks;
    long status = 0;
    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(h->multi, d->easy);
    curl_easy_cleanup(d->easy);
    d->easy = NULL;
    d->attempts++;
    if (result == CURLE_OK && status >= 200 && status < 300) {
        d->done = true;
        d->ok = true;
        w->delivered++;
        if (w->failures >= w->cfg.breaker_failures)
            webhook_log(w, LMQ_LOG_INFO, "webhook_circuit_closed", NULL, 0, NULL);
        w->failures = 0;
        webhook_log(w, LMQ_LOG_DEBUG, "webhook_delivered", d, status, NULL);
    } else {
        char error[CURL_ERROR_SIZE + 64];
        if (result != CURLE_OK)
            snprintf(error, sizeof(error), "%s",
                     result == CURLE_WRITE_ERROR ? "response body over 64 KiB"
                     : d->error[0] != '\0'       ? d->error
                                                 : curl_easy_strerror(result));
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

static void webhooks_check_done(struct webhooks *h)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct webhook_delivery *d = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        LMQ_ASSERT(d != NULL && d->easy == msg->easy_handle);
        webhook_finished(d, msg->data.result);
    }
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
        running += d->easy != NULL ? 1 : 0;
    }
    /* Redeliveries first; at most max_in_flight attempts at once in all. */
    for (size_t i = 0; i < w->redo_count + w->count && running < w->cfg.max_in_flight; i++) {
        struct webhook_delivery *d = i < w->redo_count ? w->redo[i] : w->queue[i - w->redo_count];
        if (d->done || d->easy != NULL)
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

/* ---- libcurl on the loop ---- */

static void webhooks_socket_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void webhooks_on_poll(uv_poll_t *poll, int status, int events)
{
    struct webhook_socket *s = poll->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running = 0;
    struct webhooks *h = s->hooks;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    webhooks_check_done(h);
}

static int webhooks_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    LMQ_UNUSED(easy);
    struct webhooks *h = userp;
    struct webhook_socket *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(h->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, webhooks_socket_closed);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL || uv_poll_init_socket(&h->broker->loop, &s->poll, fd) != 0) {
            free(s);
            return -1; /* curl fails the transfer */
        }
        s->fd = fd;
        s->hooks = h;
        s->poll.data = s;
        curl_multi_assign(h->multi, fd, s);
    }
    int events =
        ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, webhooks_on_poll);
    return 0;
}

static void webhooks_on_curl_timer(uv_timer_t *t)
{
    struct webhooks *h = t->data;
    int running = 0;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    webhooks_check_done(h);
}

static int webhooks_on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    LMQ_UNUSED(multi);
    struct webhooks *h = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&h->curl_timer);
    else
        uv_timer_start(&h->curl_timer, webhooks_on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
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
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return LMQ_ENOMEM;
    struct webhooks *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return LMQ_ENOMEM;
    b->webhooks = h;
    h->broker = b;
    h->rng = uv_hrtime() | 1;
    h->multi = curl_multi_init();
    h->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (h->multi == NULL || h->hmac == NULL)
        return LMQ_ENOMEM;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, webhooks_on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, webhooks_on_timeout);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    uv_timer_init(&b->loop, &h->curl_timer);
    uv_timer_init(&b->loop, &h->pump_timer);
    h->curl_timer.data = h->pump_timer.data = h;
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
            if (d->easy != NULL) { /* not delivered: sent again after a restart */
                curl_multi_remove_handle(h->multi, d->easy);
                curl_easy_cleanup(d->easy);
                d->easy = NULL;
            }
        }
    }
    /* Closes the connections curl keeps for reuse: their sockets' polls close with them. */
    if (h->multi != NULL) {
        curl_multi_cleanup(h->multi);
        h->multi = NULL;
    }
    if (h->timers_open) {
        uv_close((uv_handle_t *)&h->curl_timer, NULL);
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
    curl_global_cleanup();
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
