/*
 * Fair shares and back-off for password checks, per source address.
 *
 * A password check is an scrypt hash on the thread pool, and at most ACCESS_PASSWORD_CHECKS_MAX
 * are queued or running at once. Without more, one address sending bad passwords fast enough
 * held every slot and the real user was told "server busy". So, per address (IPv4 address,
 * IPv6 /64, the same grouping as login challenges):
 *
 * - share: at most password_checks_per_address of its checks run at once. A CONNECT over its
 *   address's share, or arriving while every slot is taken, waits (its input paused, bounded
 *   by connect_timeout_ms like any CONNECT) instead of being refused; waiting CONNECTs are
 *   started round-robin over the addresses that have any, so a busy address can't push ahead
 *   of the others. Only past ACCESS_GUARD_WAITING_PER_ADDRESS_MAX waiting from one address, or
 *   ACCESS_GUARD_WAITING_MAX in all, is a CONNECT refused "server busy".
 * - back-off: after password_failures_before_backoff failed checks, each further failure
 *   starts a back-off of 1 s doubling per failure up to password_backoff_max_ms, during which
 *   the address's password CONNECTs are refused at once with "connection rate exceeded"
 *   (0x9F; 3.1.1: server unavailable) without a hash. Failures are forgotten after
 *   ACCESS_GUARD_FORGET_MS without one; a success does not reset them (an attacker with one
 *   valid account must not be able to wipe its record).
 *
 * The table is bounded (ACCESS_GUARD_ENTRIES_MAX); entries with nothing running, nothing
 * waiting and nothing remembered are freed, the least recently used first.
 */
#include "broker/broker_internal.h"

#include <netinet/in.h>
#include <string.h>

#include "net/forwarded.h"

/* Addresses remembered; past it the least recently used idle one is forgotten. */
#define ACCESS_GUARD_ENTRIES_MAX 65536
/* CONNECTs waiting for a slot, from one address and in all; more -> "server busy". */
#define ACCESS_GUARD_WAITING_PER_ADDRESS_MAX 16
#define ACCESS_GUARD_WAITING_MAX 1024
/* The first back-off; each further failure doubles it (up to password_backoff_max_ms). */
#define ACCESS_GUARD_BACKOFF_BASE_MS 1000
/* Failures are forgotten after this long without one. */
#define ACCESS_GUARD_FORGET_MS (15u * 60u * 1000u)
/* Idle entries looked at (and freed when stale) per lookup. */
#define ACCESS_GUARD_SWEEP_PER_CALL 4
/* At most one line per second for refusals a flood causes. */
#define ACCESS_GUARD_LOG_MS 1000

struct access_guard_entry {
    uint8_t key[8];
    uint8_t key_len;
    uint32_t running;       /* checks of this address queued or running */
    uint32_t waiting_count; /* length of waiting */
    uint32_t failures;      /* failed checks, forgotten after ACCESS_GUARD_FORGET_MS */
    uint64_t last_failure_ms;
    uint64_t backoff_until_ms;
    struct list_node waiting;    /* struct access_waiter, oldest first */
    struct list_node ready_link; /* in guard->ready while waiting_count > 0 */
    struct list_node lru;        /* guard->lru, least recently used first */
};

struct access_waiter {
    struct list_node link;
    struct conn *conn; /* holds a reference */
};

struct access_guard {
    struct lmq_map *entries; /* address key -> struct access_guard_entry */
    struct list_node lru;
    struct list_node ready; /* entries with waiters, in round-robin order */
    uint32_t waiting_total;
    struct conn *granted; /* being resumed by dispatch: its slot is reserved */
    uint64_t logged_ms;
    uint64_t unlogged;
};

int access_guard_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->access_guard == NULL);
    struct access_guard *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return LMQ_ENOMEM;
    list_init(&g->lru);
    list_init(&g->ready);
    if (lmq_map_create(&g->entries) != LMQ_OK) {
        free(g);
        return LMQ_ENOMEM;
    }
    b->access_guard = g;
    return LMQ_OK;
}

static void access_guard_free_entry(struct access_guard *g, struct access_guard_entry *e)
{
    LMQ_ASSERT(e->running == 0 && e->waiting_count == 0 && list_empty(&e->waiting));
    LMQ_ASSERT(!list_linked(&e->ready_link));
    list_unlink(&e->lru);
    void *removed = lmq_map_remove(g->entries, e->key, e->key_len);
    LMQ_ASSERT(removed == e);
    free(e);
}

void access_guard_destroy(struct broker *b)
{
    struct access_guard *g = b->access_guard;
    if (g == NULL)
        return;
    /* The loop ran until every check came back; waiters still hold their connections. */
    for (size_t guard = lmq_map_count(g->entries); !list_empty(&g->lru); guard--) {
        LMQ_ASSERT(guard > 0);
        struct access_guard_entry *e = list_entry(g->lru.next, struct access_guard_entry, lru);
        LMQ_ASSERT(e->running == 0);
        while (!list_empty(&e->waiting)) {
            struct access_waiter *w = list_entry(e->waiting.next, struct access_waiter, link);
            list_unlink(&w->link);
            conn_unref(w->conn);
            free(w);
            e->waiting_count--;
        }
        if (list_linked(&e->ready_link))
            list_unlink(&e->ready_link);
        access_guard_free_entry(g, e);
    }
    lmq_map_destroy(g->entries);
    free(g);
    b->access_guard = NULL;
}

/* True when nothing of e needs keeping at now. */
static bool access_guard_stale(const struct access_guard_entry *e, uint64_t now)
{
    return e->running == 0 && e->waiting_count == 0 && now >= e->backoff_until_ms &&
           (e->failures == 0 || now - e->last_failure_ms >= ACCESS_GUARD_FORGET_MS);
}

/* The accounting key of c's client: the address it is counted under (the client a trusted
 * proxy or PROXY header named, when there is one), else its socket's peer; false when it is
 * not an IP socket. */
static bool access_guard_key(struct conn *c, uint8_t key[8], uint8_t *len)
{
    *len = conn_address_group(c, key);
    if (*len > 0)
        return true;
    struct sockaddr_storage ss;
    int ss_len = sizeof(ss);
    uint8_t raw[16];
    uint8_t raw_len = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &ss_len) != 0 ||
        !net_sockaddr_raw(&ss, raw, &raw_len))
        return false;
    *len = net_address_group(raw, raw_len, key);
    return *len > 0;
}

/* Finds or makes c's entry (most recently used now); NULL when the table is full of entries
 * in use, or no memory. */
static struct access_guard_entry *access_guard_get(struct broker *b, struct conn *c)
{
    struct access_guard *g = b->access_guard;
    uint64_t now = clock_now_ms(b);
    for (int i = 0; i < ACCESS_GUARD_SWEEP_PER_CALL && !list_empty(&g->lru); i++) {
        struct access_guard_entry *old = list_entry(g->lru.next, struct access_guard_entry, lru);
        if (!access_guard_stale(old, now) && lmq_map_count(g->entries) < ACCESS_GUARD_ENTRIES_MAX)
            break;
        if (old->running > 0 || old->waiting_count > 0) {
            /* In use (at most 64 running and 1,024 waiting in all): its turn comes later. */
            list_unlink(&old->lru);
            list_push_back(&g->lru, &old->lru);
            continue;
        }
        access_guard_free_entry(g, old);
    }
    uint8_t key[8];
    uint8_t len = 1;
    if (!access_guard_key(c, key, &len))
        key[0] = 0; /* unknown: all such connections share one entry */
    struct access_guard_entry *e = lmq_map_get(g->entries, key, len);
    if (e != NULL) {
        list_unlink(&e->lru);
        list_push_back(&g->lru, &e->lru);
        return e;
    }
    if (lmq_map_count(g->entries) >= ACCESS_GUARD_ENTRIES_MAX ||
        (e = calloc(1, sizeof(*e))) == NULL)
        return NULL;
    memcpy(e->key, key, len);
    e->key_len = len;
    list_init(&e->waiting);
    if (lmq_map_put(g->entries, e->key, len, e) != LMQ_OK) {
        free(e);
        return NULL;
    }
    list_push_back(&g->lru, &e->lru);
    return e;
}

/* Logs a refusal a flood can cause: at most one line per second, with the count skipped. */
static void access_guard_log(struct broker *b, struct conn *c, const char *event, const char *why)
{
    struct access_guard *g = b->access_guard;
    uint64_t now = clock_now_ms(b);
    if (g->logged_ms != 0 && now - g->logged_ms < ACCESS_GUARD_LOG_MS) {
        g->unlogged++;
        return;
    }
    g->logged_ms = now;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, event)) {
        lmq_log_uint(&line, "conn", c->id);
        lmq_log_str(&line, "remote", c->remote);
        lmq_log_str(&line, "detail", why);
        lmq_log_uint(&line, "unlogged_before", g->unlogged);
        lmq_log_end(&line);
    }
    g->unlogged = 0;
}

/* Sets *reason to reason_code and returns ACCESS_GUARD_REFUSE. */
static enum access_guard_verdict access_guard_refuse(uint8_t *reason, uint8_t reason_code)
{
    LMQ_ASSERT(reason_code >= 0x80);
    *reason = reason_code;
    return ACCESS_GUARD_REFUSE;
}

enum access_guard_verdict access_guard_enter(struct broker *b, struct conn *c,
                                             struct access_guard_entry **out, uint8_t *reason)
{
    LMQ_ASSERT(b != NULL && c != NULL && out != NULL && reason != NULL);
    struct access_guard *g = b->access_guard;
    *out = NULL;
    struct access_guard_entry *e = access_guard_get(b, c);
    if (e == NULL) {
        b->stats.password_busy++;
        access_guard_log(b, c, "password_checks_busy", "address table full");
        return access_guard_refuse(reason, MQTT_RC_SERVER_BUSY);
    }
    if (clock_now_ms(b) < e->backoff_until_ms) {
        b->stats.password_backoff_refused++;
        access_guard_log(b, c, "password_backoff", "refused during back-off");
        return access_guard_refuse(reason, MQTT_RC_CONNECTION_RATE_EXCEEDED);
    }
    uint32_t share = b->cfg.limits.password_checks_per_address;
    /* Newcomers queue behind their address's waiters; the one dispatch resumes goes first. */
    bool granted = g->granted == c;
    g->granted = NULL;
    if (e->running < share && b->password_checks < ACCESS_PASSWORD_CHECKS_MAX &&
        (e->waiting_count == 0 || granted)) {
        e->running++;
        *out = e;
        return ACCESS_GUARD_RUN;
    }
    if (e->waiting_count >= ACCESS_GUARD_WAITING_PER_ADDRESS_MAX ||
        g->waiting_total >= ACCESS_GUARD_WAITING_MAX) {
        b->stats.password_busy++;
        access_guard_log(b, c, "password_checks_busy",
                         e->waiting_count >= ACCESS_GUARD_WAITING_PER_ADDRESS_MAX
                             ? "too many waiting from this address"
                             : "too many waiting");
        return access_guard_refuse(reason, MQTT_RC_SERVER_BUSY);
    }
    struct access_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return access_guard_refuse(reason, MQTT_RC_SERVER_UNAVAILABLE);
    conn_ref(c);
    w->conn = c;
    list_push_back(&e->waiting, &w->link);
    if (e->waiting_count++ == 0)
        list_push_back(&g->ready, &e->ready_link);
    g->waiting_total++;
    b->stats.password_waited++;
    return ACCESS_GUARD_WAIT;
}

/* Takes e's oldest waiter; e leaves the ready ring when it has none left, else goes last. */
static struct conn *access_guard_pop(struct access_guard *g, struct access_guard_entry *e)
{
    LMQ_ASSERT(e->waiting_count > 0 && !list_empty(&e->waiting));
    struct access_waiter *w = list_entry(e->waiting.next, struct access_waiter, link);
    list_unlink(&w->link);
    struct conn *c = w->conn;
    free(w);
    e->waiting_count--;
    g->waiting_total--;
    list_unlink(&e->ready_link);
    if (e->waiting_count > 0)
        list_push_back(&g->ready, &e->ready_link);
    return c;
}

/*
 * Hands free slots to waiting CONNECTs, one address after the other. A resumed CONNECT is
 * handled again at once and takes its slot then (or is refused, or finds its connection
 * closed meanwhile: it is just released).
 */
static void access_guard_dispatch(struct broker *b)
{
    struct access_guard *g = b->access_guard;
    uint32_t share = b->cfg.limits.password_checks_per_address;
    struct list_node full; /* entries with waiters but no share left: back in the ring after */
    list_init(&full);
    for (uint32_t round = 0; round <= ACCESS_GUARD_WAITING_MAX && !list_empty(&g->ready) &&
                             b->password_checks < ACCESS_PASSWORD_CHECKS_MAX;
         round++) {
        struct access_guard_entry *e =
            list_entry(g->ready.next, struct access_guard_entry, ready_link);
        if (e->running >= share) {
            list_unlink(&e->ready_link);
            list_push_back(&full, &e->ready_link);
            continue;
        }
        struct conn *c = access_guard_pop(g, e);
        if (c->state == CONN_AWAIT_CONNECT && !uv_is_closing((uv_handle_t *)&c->tcp)) {
            g->granted = c;
            conn_resume(c); /* handles the CONNECT again at once: access_guard_enter */
            g->granted = NULL;
        }
        conn_unref(c);
    }
    while (!list_empty(&full)) {
        struct list_node *n = full.next;
        list_unlink(n);
        list_push_back(&g->ready, n);
    }
}

/* Counts a failure; from the threshold on, starts (or lengthens) the address's back-off. */
static void access_guard_failed(struct broker *b, struct access_guard_entry *e, struct conn *c)
{
    uint64_t now = clock_now_ms(b);
    if (now - e->last_failure_ms >= ACCESS_GUARD_FORGET_MS)
        e->failures = 0;
    e->failures += e->failures < UINT32_MAX;
    e->last_failure_ms = now;
    uint32_t threshold = b->cfg.limits.password_failures_before_backoff;
    if (e->failures < threshold)
        return;
    uint32_t shift = LMQ_MIN(e->failures - threshold, 30u);
    uint64_t backoff_ms = LMQ_MIN((uint64_t)ACCESS_GUARD_BACKOFF_BASE_MS << shift,
                                  (uint64_t)b->cfg.limits.password_backoff_max_ms);
    e->backoff_until_ms = LMQ_MAX(e->backoff_until_ms, now + backoff_ms);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "password_backoff_started")) {
        lmq_log_uint(&line, "conn", c->id);
        lmq_log_str(&line, "remote", c->remote);
        lmq_log_uint(&line, "failures", e->failures);
        lmq_log_uint(&line, "backoff_ms", backoff_ms);
        lmq_log_end(&line);
    }
}

void access_guard_done(struct broker *b, struct access_guard_entry *e, struct conn *c, bool passed)
{
    LMQ_ASSERT(b != NULL && e != NULL && c != NULL);
    LMQ_ASSERT(e->running > 0);
    e->running--;
    if (!passed)
        access_guard_failed(b, e, c);
    access_guard_dispatch(b);
}

void access_guard_cancel(struct broker *b, struct access_guard_entry *e)
{
    LMQ_ASSERT(b != NULL && e != NULL);
    LMQ_ASSERT(e->running > 0);
    e->running--; /* waiters are resumed by the next check that ends */
}

void access_guard_tick(struct broker *b)
{
    LMQ_ASSERT(b != NULL);
    if (b->access_guard != NULL && b->access_guard->waiting_total > 0 && !b->stopping)
        access_guard_dispatch(b);
}
