/*
 * The data reads' time budget ([data] read_budget_ms_per_s, docs/SECURITY.md "Data reads under
 * load"). GraphQL and REST reads run on the loop that serves MQTT, each up to graphql_max_ms, so
 * one client pipelining them on many connections held the loop for seconds at a time (measured
 * by tests/integration/test_data_flood.py). Each client address (the one the per-address limits
 * use: the client a trusted proxy names, IPv6 by /64) has a bucket of loop time: it fills at
 * read_budget_ms_per_s per second up to one second's worth, every data route's request is charged
 * the time it actually ran (uv_hrtime around the route), and a request arriving while the bucket
 * is empty or in debt is answered 429 with Retry-After without running. A request is admitted
 * with any positive balance, so one request can overdraw by at most its own cost (bounded by
 * graphql_max_ms and the REST page bounds); the debt is then paid back before the next.
 */
#include "broker/broker_internal.h"
#include "data/data.h"

#include <stdio.h>
#include <string.h>

#include "net/address.h"
#include "net/forwarded.h"
#include "net/http.h"

/* Clients tracked at most. At the bound, clients whose bucket is full again are forgotten (up
 * to READ_BUDGET_SWEEP_MAX in one pass over the table, so a pass serves that many new clients);
 * if none is, new clients share one overflow bucket (they are charged and refused together). */
#define READ_BUDGET_CLIENTS_MAX 65536u
#define READ_BUDGET_SWEEP_MAX 4096u
/* The deepest debt, in seconds of refill: bounds Retry-After and keeps the arithmetic small. */
#define READ_BUDGET_DEBT_MAX_S 60
/* Longest key: an IPv6 /64 (8 bytes); 1 for the unknown client and the overflow bucket. */
#define READ_BUDGET_KEY_MAX_BYTES 8u
/* At most one read_budget_exceeded log line a second. */
#define READ_BUDGET_LOG_MS 1000u

struct read_budget_client {
    int64_t balance_us;  /* loop time left; negative: debt */
    uint64_t updated_us; /* uv_hrtime of the last refill */
};

struct read_budget {
    struct lmq_map *clients; /* key -> struct read_budget_client */
    uint64_t refused;        /* requests answered 429 */
    uint64_t spent_us;       /* loop time charged to data reads */
    uint64_t swept;          /* clients forgotten at the bound */
    uint64_t log_ms;         /* when the last log line was written */
    uint64_t unlogged;       /* refusals since that line */
    char retry_after[40];    /* "Retry-After: N\r\n" of the 429 being answered */
    /* A sweep's finds: keys of full buckets (pointing into the map until removed). */
    const uint8_t *sweep_keys[READ_BUDGET_SWEEP_MAX];
    uint8_t sweep_lens[READ_BUDGET_SWEEP_MAX];
    size_t sweep_count;
    uint32_t sweep_ms_per_s;
    uint64_t sweep_now_us;
};

int read_budget_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->read_budget == NULL);
    struct read_budget *rb = calloc(1, sizeof(*rb));
    if (rb == NULL)
        return LMQ_ENOMEM;
    if (lmq_map_create(&rb->clients) != LMQ_OK) {
        free(rb);
        return LMQ_ENOMEM;
    }
    b->read_budget = rb;
    return LMQ_OK;
}

static bool read_budget_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg), LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    free(value);
    return true;
}

void read_budget_destroy(struct broker *b)
{
    struct read_budget *rb = b->read_budget;
    if (rb == NULL)
        return;
    lmq_map_visit(rb->clients, read_budget_free_one, NULL);
    lmq_map_destroy(rb->clients);
    free(rb);
    b->read_budget = NULL;
}

void read_budget_counts(const struct broker *b, struct read_budget_stats *out)
{
    LMQ_ASSERT(b != NULL && out != NULL);
    const struct read_budget *rb = b->read_budget;
    *out = (struct read_budget_stats){0};
    if (rb == NULL)
        return;
    out->refused = rb->refused;
    out->spent_us = rb->spent_us;
    out->clients = lmq_map_count(rb->clients);
    out->swept = rb->swept;
}

/* One second's worth: the most a bucket holds. */
static int64_t read_budget_capacity_us(uint32_t ms_per_s)
{
    return (int64_t)ms_per_s * 1000;
}

/* Adds what the time since the last refill earned, up to the capacity. */
static void read_budget_refill(struct read_budget_client *c, uint32_t ms_per_s, uint64_t now_us)
{
    LMQ_ASSERT(ms_per_s > 0 && ms_per_s <= LMQ_DATA_READ_BUDGET_MAX_MS);
    uint64_t elapsed_us = now_us > c->updated_us ? now_us - c->updated_us : 0;
    int64_t cap_us = read_budget_capacity_us(ms_per_s);
    /* Past READ_BUDGET_DEBT_MAX_S + 1 s any bucket is full: no overflow in the product. */
    uint64_t horizon_us = (uint64_t)(READ_BUDGET_DEBT_MAX_S + 1) * 1000000u;
    uint64_t earned_us = LMQ_MIN(elapsed_us, horizon_us) * ms_per_s / 1000u;
    /* The floor again: a SIGHUP may have lowered the rate below the one the debt was made at. */
    int64_t floor_us = -(int64_t)READ_BUDGET_DEBT_MAX_S * cap_us;
    c->balance_us = LMQ_MAX(floor_us, LMQ_MIN(cap_us, c->balance_us + (int64_t)earned_us));
    c->updated_us = now_us;
    LMQ_ASSERT(c->balance_us >= floor_us && c->balance_us <= cap_us);
}

static bool read_budget_sweep_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    struct read_budget *rb = arg;
    struct read_budget_client *c = value;
    read_budget_refill(c, rb->sweep_ms_per_s, rb->sweep_now_us);
    if (c->balance_us < read_budget_capacity_us(rb->sweep_ms_per_s) ||
        key_len > READ_BUDGET_KEY_MAX_BYTES)
        return true;
    rb->sweep_keys[rb->sweep_count] = key;
    rb->sweep_lens[rb->sweep_count] = (uint8_t)key_len;
    rb->sweep_count++;
    return rb->sweep_count < READ_BUDGET_SWEEP_MAX;
}

/* At the bound: one pass over the table forgets up to READ_BUDGET_SWEEP_MAX clients whose bucket
 * is full (they would start full anyway). Returns how many it forgot. */
static size_t read_budget_sweep(struct read_budget *rb, uint32_t ms_per_s, uint64_t now_us)
{
    rb->sweep_count = 0;
    rb->sweep_ms_per_s = ms_per_s;
    rb->sweep_now_us = now_us;
    lmq_map_visit(rb->clients, read_budget_sweep_one, rb);
    LMQ_ASSERT(rb->sweep_count <= READ_BUDGET_SWEEP_MAX);
    for (size_t i = 0; i < rb->sweep_count; i++) {
        uint8_t key[READ_BUDGET_KEY_MAX_BYTES];
        size_t len = rb->sweep_lens[i];
        memcpy(key, rb->sweep_keys[i], len); /* the map frees its copy on removal */
        void *c = lmq_map_remove(rb->clients, key, len);
        LMQ_ASSERT(c != NULL);
        free(c);
    }
    return rb->sweep_count;
}

/* The bucket of the request's client, created full; NULL only without memory. */
static struct read_budget_client *
read_budget_client(struct broker *b, const struct http_request *req, uint64_t now_us)
{
    struct read_budget *rb = b->read_budget;
    struct sockaddr_storage storage;
    const struct sockaddr *sa = broker_http_client(b, req, &storage);
    uint8_t raw[16], raw_len = 0, key[READ_BUDGET_KEY_MAX_BYTES];
    size_t len = 0;
    if (sa != NULL && net_sockaddr_raw((const struct sockaddr_storage *)sa, raw, &raw_len))
        len = net_address_group(raw, raw_len, key);
    if (len == 0) {
        key[0] = 0; /* unknown: all such requests share one bucket */
        len = 1;
    }
    struct read_budget_client *c = lmq_map_get(rb->clients, key, len);
    if (c != NULL)
        return c;
    if (lmq_map_count(rb->clients) >= READ_BUDGET_CLIENTS_MAX) {
        rb->swept += read_budget_sweep(rb, b->cfg.data.read_budget_ms_per_s, now_us);
        if (lmq_map_count(rb->clients) >= READ_BUDGET_CLIENTS_MAX) {
            key[0] = 1; /* the overflow bucket (with the unknown one, beyond the bound) */
            len = 1;
            c = lmq_map_get(rb->clients, key, len);
            if (c != NULL)
                return c;
        }
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->balance_us = read_budget_capacity_us(b->cfg.data.read_budget_ms_per_s);
    c->updated_us = now_us;
    if (lmq_map_put(rb->clients, key, len, c) != LMQ_OK) {
        free(c);
        return NULL;
    }
    return c;
}

static void read_budget_log(struct broker *b, const struct http_request *req, uint64_t wait_s)
{
    struct read_budget *rb = b->read_budget;
    uint64_t now_ms = clock_now_ms(b);
    rb->unlogged++;
    if (rb->log_ms != 0 && now_ms - rb->log_ms < READ_BUDGET_LOG_MS)
        return;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "read_budget_exceeded")) {
        char remote[NET_ADDRESS_TEXT_MAX_BYTES] = "unknown";
        struct sockaddr_storage storage;
        const struct sockaddr *sa = broker_http_client(b, req, &storage);
        if (sa != NULL)
            (void)net_address_format((const struct sockaddr_storage *)sa, NET_ADDRESS_BARE, remote,
                                     sizeof(remote));
        lmq_log_str(&line, "remote", remote);
        lmq_log_uint(&line, "retry_after_s", wait_s);
        lmq_log_uint(&line, "refused", rb->unlogged);
        lmq_log_end(&line);
    }
    rb->log_ms = now_ms;
    rb->unlogged = 0;
}

/* The 429: the route's error shape (GraphQL's "errors" on /graphql, the project's elsewhere). */
static int read_budget_refuse(struct broker *b, const struct http_request *req,
                              struct http_response *resp, struct lmq_buf *out, int64_t debt_us)
{
    struct read_budget *rb = b->read_budget;
    uint32_t ms_per_s = b->cfg.data.read_budget_ms_per_s;
    /* Seconds until the balance is positive again: debt / rate, rounded up, at least 1. */
    uint64_t wait_us = (uint64_t)debt_us * 1000u / ms_per_s + 1u;
    uint64_t wait_s = LMQ_MAX((wait_us + 999999u) / 1000000u, 1u);
    LMQ_ASSERT(wait_s <= (uint64_t)READ_BUDGET_DEBT_MAX_S * 1000u + 1u);
    rb->refused++;
    read_budget_log(b, req, wait_s);
    (void)snprintf(rb->retry_after, sizeof(rb->retry_after), "Retry-After: %llu\r\n",
                   (unsigned long long)wait_s);
    /* Copied into the response before another request runs (http_session_respond). */
    resp->extra_headers = rb->retry_after;
    resp->status = 429;
    resp->content_type = "application/json";
    if (data_graphql_path(req))
        return http_body_printf(out,
                                "{\"errors\":[{\"message\":\"read budget exceeded: retry after "
                                "%llu s\"}]}",
                                (unsigned long long)wait_s);
    return http_body_printf(out,
                            "{\"error\":429,\"reason\":\"read budget exceeded: retry after %llu "
                            "s\"}",
                            (unsigned long long)wait_s);
}

int read_budget_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                      struct lmq_buf *out, read_budget_route_fn route)
{
    LMQ_ASSERT(b != NULL && req != NULL && route != NULL);
    uint32_t ms_per_s = b->cfg.data.read_budget_ms_per_s;
    if (ms_per_s == 0 || b->read_budget == NULL)
        return route(b, req, resp, out);
    uint64_t start_us = uv_hrtime() / 1000u;
    struct read_budget_client *c = read_budget_client(b, req, start_us);
    if (c == NULL)
        return LMQ_ENOMEM;
    read_budget_refill(c, ms_per_s, start_us);
    if (c->balance_us <= 0)
        return read_budget_refuse(b, req, resp, out, -c->balance_us);
    int rc = route(b, req, resp, out);
    uint64_t end_us = uv_hrtime() / 1000u;
    uint64_t spent_us = end_us > start_us ? end_us - start_us : 0;
    b->read_budget->spent_us += spent_us;
    int64_t floor_us = -(int64_t)READ_BUDGET_DEBT_MAX_S * read_budget_capacity_us(ms_per_s);
    c->balance_us = LMQ_MAX(floor_us, c->balance_us - (int64_t)LMQ_MIN(spent_us, INT64_MAX / 2));
    return rc;
}
