/*
 * Session quotas: how many persistent sessions (sessions with stored state, which outlive their
 * connection) one principal and one source address may hold, so that one client can't fill
 * max_sessions for everyone (docs/SECURITY.md, "Sessions").
 *
 * The principal is the session's owner: an identity id, "user:<name>" for a password-file user,
 * "cn:<cn>" for a client certificate that is not an identity, "anonymous" otherwise. Anonymous
 * clients share one principal, so they are held by the per-address quota alone (every
 * authenticated principal is held by both); an IPv6 address counts by its /64. Per-principal counts
 * are rebuilt by recovery; the per-address counts cover the sessions created since the process
 * started (the store does not record addresses).
 */
#include "broker/broker_internal.h"

#include <stdio.h>
#include <string.h>

struct session_quota_entry {
    uint32_t count;
    size_t key_len;
    uint8_t key[]; /* owner text or raw IP */
};

int session_quota_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->session_principals == NULL);
    if (lmq_map_create(&b->session_principals) != LMQ_OK ||
        lmq_map_create(&b->session_addresses) != LMQ_OK)
        return LMQ_ENOMEM;
    return LMQ_OK;
}

static bool session_quota_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg), LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    free(value);
    return true;
}

void session_quota_destroy(struct broker *b)
{
    struct lmq_map **maps[] = {&b->session_principals, &b->session_addresses};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(maps); i++) {
        if (*maps[i] == NULL)
            continue;
        lmq_map_visit(*maps[i], session_quota_free_one, NULL);
        lmq_map_destroy(*maps[i]);
        *maps[i] = NULL;
    }
}

/* Principals held by the per-principal quota: all but the shared anonymous one (and the
 * unrecorded owner of rows from older versions). */
static bool session_quota_per_principal(const char *owner)
{
    return owner[0] != '\0' && strcmp(owner, SESSION_OWNER_ANONYMOUS) != 0;
}

static uint32_t session_quota_get(struct lmq_map *map, const uint8_t *key, size_t len)
{
    const struct session_quota_entry *e = lmq_map_get(map, key, len);
    return e != NULL ? e->count : 0;
}

/* Adds delta (+1 or -1) to key's count; an entry goes when its count reaches 0. */
static void session_quota_add(struct broker *b, struct lmq_map *map, const uint8_t *key, size_t len,
                              int delta)
{
    LMQ_ASSERT(delta == 1 || delta == -1);
    struct session_quota_entry *e = lmq_map_get(map, key, len);
    if (e == NULL) {
        LMQ_ASSERT(delta == 1);
        e = calloc(1, sizeof(*e) + len);
        if (e == NULL)
            broker_fail_stop(b, "session quota (out of memory)", LMQ_ENOMEM);
        memcpy(e->key, key, len);
        e->key_len = len;
        /* Out of memory for a count we must keep: stop rather than let the quota drift. */
        if (lmq_map_put(map, e->key, len, e) != LMQ_OK)
            broker_fail_stop(b, "session quota (out of memory)", LMQ_ENOMEM);
    }
    LMQ_ASSERT(delta == 1 || e->count > 0);
    e->count = (uint32_t)((int64_t)e->count + delta);
    if (e->count == 0) {
        void *was = lmq_map_remove(map, key, len);
        LMQ_ASSERT(was == e);
        free(e);
    }
}

static bool session_quota_refuse(struct conn *c, const char *limit, uint8_t *reason_code)
{
    security_event(c->broker, c, SECURITY_EVENT_SESSION_QUOTA, limit);
    *reason_code = MQTT_RC_QUOTA_EXCEEDED;
    return false;
}

bool session_quota_admit_principal(struct conn *c, const char *principal, uint8_t *reason_code)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(principal != NULL && reason_code != NULL);
    if (session_quota_per_principal(principal) &&
        session_quota_get(b->session_principals, (const uint8_t *)principal, strlen(principal)) >=
            b->cfg.limits.max_sessions_per_principal)
        return session_quota_refuse(c, "max_sessions_per_principal", reason_code);
    return true;
}

bool session_quota_admit(struct conn *c, const char *principal, uint8_t *reason_code)
{
    struct broker *b = c->broker;
    const struct lmq_limits *lim = &b->cfg.limits;
    if (!session_quota_admit_principal(c, principal, reason_code))
        return false;
    uint8_t addr[8];
    uint8_t addr_len = conn_address_group(c, addr);
    if (addr_len > 0 &&
        session_quota_get(b->session_addresses, addr, addr_len) >= lim->max_sessions_per_address)
        return session_quota_refuse(c, "max_sessions_per_address", reason_code);
    if (b->stored_session_count >= lim->max_sessions)
        return session_quota_refuse(c, "max_sessions", reason_code);
    return true;
}

void session_quota_count(struct session *s, const struct conn *c)
{
    struct broker *b = s->broker;
    LMQ_ASSERT(s->stored);
    if (s->quota_counted)
        return;
    s->quota_counted = true;
    b->stored_session_count++;
    if (session_quota_per_principal(s->owner))
        session_quota_add(b, b->session_principals, (const uint8_t *)s->owner, strlen(s->owner), 1);
    s->quota_addr_len = c != NULL ? conn_address_group(c, s->quota_addr) : 0;
    if (s->quota_addr_len > 0)
        session_quota_add(b, b->session_addresses, s->quota_addr, s->quota_addr_len, 1);
}

void session_quota_release(struct session *s)
{
    struct broker *b = s->broker;
    if (!s->quota_counted)
        return;
    s->quota_counted = false;
    LMQ_ASSERT(b->stored_session_count > 0);
    b->stored_session_count--;
    if (session_quota_per_principal(s->owner))
        session_quota_add(b, b->session_principals, (const uint8_t *)s->owner, strlen(s->owner),
                          -1);
    if (s->quota_addr_len > 0)
        session_quota_add(b, b->session_addresses, s->quota_addr, s->quota_addr_len, -1);
    s->quota_addr_len = 0;
}
