/*
 * Limits per source address: open MQTT connections and new connections per second from one IP
 * address, so one host can't take every connection slot or flood the accept path.
 *
 * One entry per address (the raw 4- or 16-byte IP) that has connections open or connected
 * during the current one-second window. Entries with nothing open wait on an idle list in the
 * order they became idle and are freed by the tick once their window is over, so the map holds
 * at most the open connections' addresses plus those seen in the last second.
 */
#include "broker/broker_internal.h"

#include <string.h>

#include "net/forwarded.h"

/* The rate window: at most max_connection_rate_per_address accepts per address per window. */
#define CONN_ADDRESS_WINDOW_MS 1000
/* Idle entries freed per tick; the rest wait for the next one. */
#define CONN_ADDRESS_SWEEP_MAX 4096

struct conn_address {
    uint8_t key[16];
    uint8_t key_len;
    uint32_t open_count;
    uint32_t window_accepts;
    uint64_t window_start_ms;
    uint64_t idle_since_ms;
    struct list_node idle; /* linked while open_count == 0 */
};

static struct conn_address *conn_address_find(struct broker *b, const uint8_t *key, uint8_t len)
{
    struct conn_address *a = lmq_map_get(b->addresses, key, len);
    if (a != NULL)
        return a;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    memcpy(a->key, key, len);
    a->key_len = len;
    if (lmq_map_put(b->addresses, a->key, len, a) != LMQ_OK) {
        free(a);
        return NULL;
    }
    return a;
}

int conn_address_admit(struct broker *b, struct conn *c, const struct sockaddr_storage *ss,
                       const char **why)
{
    LMQ_ASSERT(b != NULL && c != NULL && c->address == NULL);
    uint8_t key[16];
    uint8_t len = 0;
    *why = NULL;
    if (!net_sockaddr_raw(ss, key, &len))
        return LMQ_OK; /* not an IP socket: nothing to count */
    struct conn_address *a = conn_address_find(b, key, len);
    if (a == NULL) {
        *why = "out of memory";
        return LMQ_ENOMEM;
    }
    uint64_t now = clock_now_ms(b);
    if (now - a->window_start_ms >= CONN_ADDRESS_WINDOW_MS) {
        a->window_start_ms = now;
        a->window_accepts = 0;
    }
    const struct lmq_limits *l = &b->cfg.limits;
    if (a->window_accepts >= l->max_connection_rate_per_address)
        *why = "max_connection_rate_per_address";
    else if (a->open_count >= l->max_connections_per_address)
        *why = "max_connections_per_address";
    a->window_accepts += a->window_accepts < UINT32_MAX;
    if (*why != NULL) {
        /* A new entry refused at once still remembers the attempt until the window ends. */
        if (a->open_count == 0 && !list_linked(&a->idle))
            list_push_back(&b->idle_addresses, &a->idle);
        return LMQ_ELIMIT;
    }
    if (list_linked(&a->idle))
        list_unlink(&a->idle);
    a->open_count++;
    c->address = a;
    return LMQ_OK;
}

void conn_address_release(struct broker *b, struct conn *c)
{
    struct conn_address *a = c->address;
    if (a == NULL)
        return;
    LMQ_ASSERT(a->open_count > 0 && !list_linked(&a->idle));
    c->address = NULL;
    if (--a->open_count == 0) {
        a->idle_since_ms = clock_now_ms(b);
        list_push_back(&b->idle_addresses, &a->idle);
    }
}

void conn_address_sweep(struct broker *b, bool all)
{
    uint64_t now = clock_now_ms(b);
    size_t max = all ? lmq_map_count(b->addresses) : CONN_ADDRESS_SWEEP_MAX;
    for (size_t i = 0; i < max && !list_empty(&b->idle_addresses); i++) {
        struct conn_address *a = list_entry(b->idle_addresses.next, struct conn_address, idle);
        LMQ_ASSERT(a->open_count == 0);
        /* Kept until its rate window is over, or its accepts would be forgotten early. */
        if (!all && now - a->window_start_ms < CONN_ADDRESS_WINDOW_MS)
            break;
        list_unlink(&a->idle);
        void *removed = lmq_map_remove(b->addresses, a->key, a->key_len);
        LMQ_ASSERT(removed == a);
        free(a);
    }
}

uint8_t conn_address_raw(const struct conn *c, uint8_t key[16])
{
    LMQ_ASSERT(c != NULL && key != NULL);
    if (c->address == NULL)
        return 0;
    LMQ_ASSERT(c->address->key_len == 4 || c->address->key_len == 16);
    memcpy(key, c->address->key, c->address->key_len);
    return c->address->key_len;
}

uint8_t conn_address_group(const struct conn *c, uint8_t key[8])
{
    uint8_t raw[16];
    uint8_t len = conn_address_raw(c, raw);
    return len == 0 ? 0 : net_address_group(raw, len, key);
}
