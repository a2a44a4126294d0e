/*
 * [auth] ledger_bytes_per_day: what one identity may append to the permanent ledger per UTC
 * day, counted in bytes of its canonical envelopes as stored. An envelope that would go over is
 * refused before anything is appended (pipeline_accept.c: reject "quota_exceeded"); nothing else
 * (resends, rejected envelopes) counts.
 *
 * The counters are not stored: a restart recomputes each identity's bytes of the current UTC
 * day from the ledger's own rows (index ledger_by_time), so a restart never resets a quota
 * and the count can't drift from what the ledger holds. Only identities that appended today
 * have an entry: when the UTC day turns, the first envelope of the new day drops the others
 * (so the map is bounded by the identities that append in one day).
 */
#include "pipeline/pipeline_internal.h"

#include <string.h>

#define PIPELINE_QUOTA_DAY_MS (86400 * 1000LL)
/* A refused identity is logged (security event) at most this often; each refusal counts. */
#define PIPELINE_QUOTA_LOG_INTERVAL_MS 60000

struct pipeline_quota {
    char id[CRYPTO_IDENTITY_ID_BYTES];
    int64_t day;        /* unix ms / PIPELINE_QUOTA_DAY_MS of bytes */
    uint64_t bytes;     /* appended that day (uncommitted appends included) */
    uint64_t logged_ms; /* loop time of the last logged refusal; 0 = none */
};

static int64_t pipeline_quota_today(struct broker *b)
{
    int64_t now = clock_unix_ms(b);
    return now >= 0 ? now / PIPELINE_QUOTA_DAY_MS : 0;
}

struct pipeline_quota_prune {
    int64_t today;
    struct pipeline_quota **stale;
    size_t count, cap;
};

static bool pipeline_quota_collect_stale(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    struct pipeline_quota_prune *p = arg;
    struct pipeline_quota *q = value;
    if (q->day != p->today && p->count < p->cap)
        p->stale[p->count++] = q;
    return true;
}

/* The day turned: forgets the entries of earlier days (their identities start from 0). */
static void pipeline_quota_new_day(struct broker *b, int64_t today)
{
    LMQ_ASSERT(today != b->pipeline->ledger_quota_day);
    size_t cap = lmq_map_count(b->pipeline->ledger_quota);
    struct pipeline_quota_prune p = {.today = today, .cap = cap};
    p.stale = cap > 0 ? calloc(cap, sizeof(*p.stale)) : NULL;
    if (cap > 0 && p.stale == NULL)
        return; /* no memory: kept, reset one by one as their identities send */
    lmq_map_visit(b->pipeline->ledger_quota, pipeline_quota_collect_stale, &p);
    for (size_t i = 0; i < p.count; i++) {
        void *removed = lmq_map_remove(b->pipeline->ledger_quota, (const uint8_t *)p.stale[i]->id,
                                       CRYPTO_IDENTITY_ID_CHARS);
        LMQ_ASSERT(removed == p.stale[i]);
        free(p.stale[i]);
    }
    free(p.stale);
    b->pipeline->ledger_quota_day = today;
}

static struct pipeline_quota *pipeline_quota_get(struct broker *b, const char *id)
{
    struct pipeline_quota *q =
        lmq_map_get(b->pipeline->ledger_quota, (const uint8_t *)id, CRYPTO_IDENTITY_ID_CHARS);
    if (q != NULL)
        return q;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    memcpy(q->id, id, CRYPTO_IDENTITY_ID_CHARS);
    if (lmq_map_put(b->pipeline->ledger_quota, (const uint8_t *)q->id, CRYPTO_IDENTITY_ID_CHARS,
                    q) != LMQ_OK) {
        free(q);
        return NULL;
    }
    return q;
}

struct pipeline_quota_load {
    struct broker *broker;
    int64_t day;
    size_t identities;
};

static int pipeline_quota_row(void *ctx, struct lmq_bytes sender, uint64_t bytes)
{
    struct pipeline_quota_load *load = ctx;
    LMQ_ASSERT(load != NULL && load->broker != NULL);
    char id[CRYPTO_IDENTITY_ID_BYTES];
    if (sender.len != CRYPTO_IDENTITY_ID_CHARS)
        return -1;
    memcpy(id, sender.data, sender.len);
    id[sender.len] = '\0';
    struct pipeline_quota *q = pipeline_quota_get(load->broker, id);
    if (q == NULL)
        return -1;
    q->day = load->day;
    q->bytes = bytes;
    load->identities++;
    return 0;
}

int pipeline_quota_recover(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    LMQ_ASSERT(p->ledger_quota == NULL);
    if (lmq_map_create(&p->ledger_quota) != LMQ_OK)
        return LMQ_ENOMEM;
    struct pipeline_quota_load load = {.broker = b, .day = pipeline_quota_today(b)};
    p->ledger_quota_day = load.day;
    int rc = store_ledger_bytes_since(b->store, load.day * PIPELINE_QUOTA_DAY_MS,
                                      pipeline_quota_row, &load);
    if (rc != LMQ_OK)
        return rc;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_DEBUG, "ledger_quota_recovered")) {
        lmq_log_uint(&line, "identities_today", load.identities);
        lmq_log_end(&line);
    }
    return LMQ_OK;
}

static bool pipeline_quota_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg), LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    free(value);
    return true;
}

void pipeline_quota_destroy(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    if (p->ledger_quota == NULL)
        return;
    lmq_map_visit(p->ledger_quota, pipeline_quota_free_one, NULL);
    lmq_map_destroy(p->ledger_quota);
    p->ledger_quota = NULL;
}

bool pipeline_quota_take(struct broker *b, struct conn *c, const char *identity, uint64_t bytes)
{
    uint64_t limit = b->cfg.auth.ledger_bytes_per_day;
    LMQ_ASSERT(identity[0] != '\0' && b->pipeline->ledger_quota != NULL);
    if (limit == 0)
        return true;
    int64_t today = pipeline_quota_today(b);
    if (today != b->pipeline->ledger_quota_day)
        pipeline_quota_new_day(b, today);
    struct pipeline_quota *q = pipeline_quota_get(b, identity);
    if (q == NULL)
        return false; /* no memory: refuse rather than append uncounted */
    LMQ_ASSERT(memcmp(q->id, identity, CRYPTO_IDENTITY_ID_CHARS) == 0);
    if (q->day != today) {
        q->day = today;
        q->bytes = 0;
    }
    if (bytes <= limit && q->bytes <= limit - bytes) {
        q->bytes += bytes;
        LMQ_ASSERT(q->bytes <= limit);
        return true;
    }
    b->stats.ledger_quota_refused++;
    uint64_t now = clock_now_ms(b);
    if (q->logged_ms == 0 || now - q->logged_ms >= PIPELINE_QUOTA_LOG_INTERVAL_MS) {
        q->logged_ms = now;
        security_event(b, c, SECURITY_EVENT_LEDGER_QUOTA,
                       c != NULL ? "ledger_bytes_per_day" : "ledger_bytes_per_day (server-sent)");
    }
    return false;
}
