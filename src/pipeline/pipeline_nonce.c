/*
 * Outstanding login challenges (POST /auth/challenge): in memory only (a restart invalidates
 * them, which only makes a client ask again), bounded three ways so that no one client can take
 * logins away from the others.
 *
 * - per address (login_challenges_per_address; IPv4 address, IPv6 /64): an address at its cap
 *   that asks again loses its own oldest challenge. One host can hold only a few, however fast
 *   it asks.
 * - per key (login_challenges_per_key, the "pub" of the request): at the cap the requesting
 *   address's oldest challenge for that key goes; only when it holds none, the key's oldest.
 *   So an attacker asking for a victim's key churns its own challenges, not the victim's.
 * - in all (PIPELINE_NONCES_MAX): when full, the oldest challenge of the address holding the most
 *   goes (ties: any of them). A client holding one or two is never the one evicted while
 *   anyone holds more.
 *
 * A challenge is never refused for want of room: the price of a flood is paid by the flooder's
 * own older challenges. Every challenge expires PIPELINE_NONCE_TTL_MS after it was issued and is
 * consumed by the one /auth/token that presents it.
 *
 * MQTT 5 enhanced authentication (enhanced_auth.c) takes its in-band challenges from the same
 * table, counted under the connection's address, so that they share the caps above with the
 * HTTP ones; a challenge remembers which way it was issued and is only taken that way.
 *
 * Each challenge sits on three lists (all, its address's, its key's; each oldest first) and
 * each address in a bucket by how many it holds, so every operation is O(1) except finding the
 * heaviest address (at most login_challenges_per_address buckets) and the per-key eviction (a
 * scan of at most login_challenges_per_key entries).
 */
#include "pipeline/pipeline_internal.h"

#include <netinet/in.h>
#include <string.h>

#include "crypto/encoding.h"
#include "net/forwarded.h"

#define PIPELINE_NONCE_RANDOM_BYTES 32
/* Bytes of an owner key: an address (4, or 8 for an IPv6 /64) or a public key. */
#define LOGIN_OWNER_KEY_MAX_BYTES 32
/* At most one "login_challenge_evicted" line per second. */
#define PIPELINE_NONCE_LOG_MS 1000

/* An address or a public key that holds challenges. */
struct login_owner {
    uint8_t key[LOGIN_OWNER_KEY_MAX_BYTES];
    uint8_t key_len;
    uint32_t count;
    struct list_node nonces; /* struct pipeline_nonce, oldest first */
    struct list_node bucket; /* addresses: in buckets[count] */
};

struct pipeline_nonce {
    char nonce[PIPELINE_NONCE_CHARS + 1];
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    uint64_t expires_ms;
    enum pipeline_nonce_use use;
    struct list_node link;         /* all, oldest first */
    struct list_node address_link; /* address->nonces */
    struct list_node key_link;     /* key->nonces */
    struct login_owner *address;
    struct login_owner *key;
};

struct pipeline_nonces {
    struct lmq_map *by_nonce;  /* nonce text -> struct pipeline_nonce */
    struct lmq_map *addresses; /* address key -> struct login_owner */
    struct lmq_map *keys;      /* public key -> struct login_owner */
    struct list_node all;      /* struct pipeline_nonce, oldest first */
    struct list_node *buckets; /* [0..per_address]: addresses by how many they hold */
    uint32_t per_address;
    uint32_t per_key;
    uint64_t logged_ms;
};

int pipeline_nonce_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->pipeline->nonces == NULL);
    const struct lmq_limits *l = &b->cfg.limits;
    LMQ_ASSERT(l->login_challenges_per_address > 0 && l->login_challenges_per_key > 0);
    struct pipeline_nonces *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return LMQ_ENOMEM;
    b->pipeline->nonces = t; /* pipeline_nonce_destroy frees what was made on failure */
    list_init(&t->all);
    t->per_address = l->login_challenges_per_address;
    t->per_key = l->login_challenges_per_key;
    t->buckets = calloc((size_t)t->per_address + 1, sizeof(*t->buckets));
    if (t->buckets == NULL || lmq_map_create(&t->by_nonce) != LMQ_OK ||
        lmq_map_create(&t->addresses) != LMQ_OK || lmq_map_create(&t->keys) != LMQ_OK)
        return LMQ_ENOMEM;
    for (uint32_t i = 0; i <= t->per_address; i++)
        list_init(&t->buckets[i]);
    return LMQ_OK;
}

/* Frees an owner with nothing left (and its bucket link). */
static void login_owner_forget(struct lmq_map *map, struct login_owner *o)
{
    LMQ_ASSERT(o->count == 0 && list_empty(&o->nonces));
    if (list_linked(&o->bucket))
        list_unlink(&o->bucket);
    void *removed = lmq_map_remove(map, o->key, o->key_len);
    LMQ_ASSERT(removed == o);
    free(o);
}

/* Unlinks e everywhere and frees it (and owners left with nothing). */
static void pipeline_nonce_drop(struct pipeline_nonces *t, struct pipeline_nonce *e)
{
    void *removed = lmq_map_remove(t->by_nonce, (const uint8_t *)e->nonce, PIPELINE_NONCE_CHARS);
    LMQ_ASSERT(removed == e);
    list_unlink(&e->link);
    list_unlink(&e->address_link);
    list_unlink(&e->key_link);
    struct login_owner *a = e->address;
    struct login_owner *k = e->key;
    LMQ_ASSERT(a->count > 0 && a->count <= t->per_address && k->count > 0);
    a->count--;
    list_unlink(&a->bucket);
    if (a->count == 0)
        login_owner_forget(t->addresses, a);
    else
        list_push_back(&t->buckets[a->count], &a->bucket);
    if (--k->count == 0)
        login_owner_forget(t->keys, k);
    free(e);
}

void pipeline_nonce_destroy(struct broker *b)
{
    struct pipeline_nonces *t = b->pipeline->nonces;
    if (t == NULL)
        return;
    for (size_t guard = t->by_nonce ? lmq_map_count(t->by_nonce) : 0; !list_empty(&t->all);
         guard--) {
        LMQ_ASSERT(guard > 0);
        pipeline_nonce_drop(t, list_entry(t->all.next, struct pipeline_nonce, link));
    }
    LMQ_ASSERT(t->addresses == NULL || lmq_map_count(t->addresses) == 0);
    lmq_map_destroy(t->by_nonce);
    lmq_map_destroy(t->addresses);
    lmq_map_destroy(t->keys);
    free(t->buckets);
    free(t);
    b->pipeline->nonces = NULL;
}

static void pipeline_nonce_expire(struct pipeline_nonces *t, uint64_t now)
{
    for (size_t i = 0; i < PIPELINE_NONCES_MAX && !list_empty(&t->all); i++) {
        struct pipeline_nonce *e = list_entry(t->all.next, struct pipeline_nonce, link);
        if (e->expires_ms > now)
            break;
        pipeline_nonce_drop(t, e);
    }
}

/* The accounting key of an address (net_address_group: IPv4 whole, IPv6 by its /64). */
static void login_address_key(const struct sockaddr *sa, uint8_t key[LOGIN_OWNER_KEY_MAX_BYTES],
                              uint8_t *len)
{
    uint8_t raw[16];
    uint8_t raw_len = 0;
    *len = 0;
    /* sa points into a sockaddr_storage (the request's peer or forwarded client). */
    if (sa != NULL && net_sockaddr_raw((const struct sockaddr_storage *)sa, raw, &raw_len))
        *len = net_address_group(raw, raw_len, key);
    if (*len == 0) {
        key[0] = 0; /* unknown: all such requests share one entry */
        *len = 1;
    }
}

static struct login_owner *login_owner_get(struct lmq_map *map, const uint8_t *key, uint8_t len)
{
    LMQ_ASSERT(len > 0 && len <= LOGIN_OWNER_KEY_MAX_BYTES);
    struct login_owner *o = lmq_map_get(map, key, len);
    if (o != NULL)
        return o;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    memcpy(o->key, key, len);
    o->key_len = len;
    list_init(&o->nonces);
    if (lmq_map_put(map, o->key, len, o) != LMQ_OK) {
        free(o);
        return NULL;
    }
    return o;
}

/* Counts and logs (at most once a second) a challenge evicted to make room. */
static void pipeline_nonce_evict(struct broker *b, struct pipeline_nonce *e,
                                 enum pipeline_nonce_evict why)
{
    static const char *const names[PIPELINE_NONCE_EVICT_COUNT] = {"address", "key", "all"};
    struct pipeline_nonces *t = b->pipeline->nonces;
    LMQ_ASSERT(why < PIPELINE_NONCE_EVICT_COUNT);
    b->stats.login_evicted[why]++;
    pipeline_nonce_drop(t, e);
    uint64_t now = clock_now_ms(b);
    if (t->logged_ms != 0 && now - t->logged_ms < PIPELINE_NONCE_LOG_MS)
        return;
    t->logged_ms = now;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "login_challenge_evicted")) {
        lmq_log_str(&line, "cap", names[why]);
        lmq_log_uint(&line, "total", b->stats.login_evicted[why]);
        lmq_log_end(&line);
    }
}

/*
 * Makes room for one more challenge from the address with this key for pub. Owners are looked
 * up again after each eviction: an eviction frees an owner left with nothing.
 */
static void pipeline_nonce_make_room(struct broker *b, const uint8_t *akey, uint8_t alen,
                                     const uint8_t *pub)
{
    struct pipeline_nonces *t = b->pipeline->nonces;
    struct login_owner *a = lmq_map_get(t->addresses, akey, alen);
    if (a != NULL && a->count >= t->per_address) {
        LMQ_ASSERT(!list_empty(&a->nonces));
        pipeline_nonce_evict(b, list_entry(a->nonces.next, struct pipeline_nonce, address_link),
                             PIPELINE_NONCE_EVICT_ADDRESS);
        a = lmq_map_get(t->addresses, akey, alen);
    }
    struct login_owner *k = lmq_map_get(t->keys, pub, CRYPTO_ED25519_PUB_BYTES);
    if (k != NULL && k->count >= t->per_key) {
        struct pipeline_nonce *victim = list_entry(k->nonces.next, struct pipeline_nonce, key_link);
        struct list_node *n = k->nonces.next;
        for (uint32_t i = 0; i < t->per_key && n != &k->nonces; i++, n = n->next) {
            struct pipeline_nonce *e = list_entry(n, struct pipeline_nonce, key_link);
            if (a != NULL && e->address == a) { /* the requester's own first */
                victim = e;
                break;
            }
        }
        pipeline_nonce_evict(b, victim, PIPELINE_NONCE_EVICT_KEY);
    }
    if (lmq_map_count(t->by_nonce) >= PIPELINE_NONCES_MAX) {
        struct list_node *heaviest = NULL;
        for (uint32_t c = t->per_address; c > 0 && heaviest == NULL; c--)
            if (!list_empty(&t->buckets[c]))
                heaviest = t->buckets[c].next;
        LMQ_ASSERT(heaviest != NULL);
        struct login_owner *h = list_entry(heaviest, struct login_owner, bucket);
        pipeline_nonce_evict(b, list_entry(h->nonces.next, struct pipeline_nonce, address_link),
                             PIPELINE_NONCE_EVICT_ALL);
    }
    LMQ_ASSERT(lmq_map_count(t->by_nonce) < PIPELINE_NONCES_MAX);
}

/* Issues a challenge for pub to the address with this key (see pipeline_nonce_issue). */
static int pipeline_nonce_issue_key(struct broker *b, const uint8_t *akey, uint8_t alen,
                                    enum pipeline_nonce_use use,
                                    const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                                    char nonce[PIPELINE_NONCE_CHARS + 1])
{
    struct pipeline_nonces *t = b->pipeline->nonces;
    LMQ_ASSERT(t != NULL && pub != NULL && nonce != NULL);
    LMQ_ASSERT(alen > 0 && alen <= LOGIN_OWNER_KEY_MAX_BYTES);
    uint64_t now = clock_now_ms(b);
    pipeline_nonce_expire(t, now);
    /* Owners are made after making room: an eviction may free them. */
    pipeline_nonce_make_room(b, akey, alen, pub);
    struct login_owner *a = NULL;
    struct pipeline_nonce *e = calloc(1, sizeof(*e));
    uint8_t rnd[PIPELINE_NONCE_RANDOM_BYTES];
    if (e == NULL || uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) != 0 ||
        crypto_b64url_encode(rnd, sizeof(rnd), e->nonce, sizeof(e->nonce)) != LMQ_OK)
        goto fail;
    a = login_owner_get(t->addresses, akey, alen);
    struct login_owner *k = login_owner_get(t->keys, pub, CRYPTO_ED25519_PUB_BYTES);
    if (a == NULL || k == NULL ||
        lmq_map_put(t->by_nonce, (const uint8_t *)e->nonce, PIPELINE_NONCE_CHARS, e) != LMQ_OK) {
        /* Owners made for this request and left empty are freed. */
        if (a != NULL && a->count == 0)
            login_owner_forget(t->addresses, a);
        if (k != NULL && k->count == 0)
            login_owner_forget(t->keys, k);
        goto fail;
    }
    memcpy(e->pub, pub, CRYPTO_ED25519_PUB_BYTES);
    e->expires_ms = now + PIPELINE_NONCE_TTL_MS;
    e->use = use;
    e->address = a;
    e->key = k;
    list_push_back(&t->all, &e->link);
    list_push_back(&a->nonces, &e->address_link);
    list_push_back(&k->nonces, &e->key_link);
    if (list_linked(&a->bucket))
        list_unlink(&a->bucket);
    a->count++;
    k->count++;
    LMQ_ASSERT(a->count <= t->per_address && k->count <= t->per_key);
    list_push_back(&t->buckets[a->count], &a->bucket);
    memcpy(nonce, e->nonce, sizeof(e->nonce));
    return LMQ_OK;
fail:
    free(e);
    return LMQ_ENOMEM;
}

int pipeline_nonce_issue(struct broker *b, const struct sockaddr *remote,
                         const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                         char nonce[PIPELINE_NONCE_CHARS + 1])
{
    uint8_t akey[LOGIN_OWNER_KEY_MAX_BYTES];
    uint8_t alen = 0;
    login_address_key(remote, akey, &alen);
    return pipeline_nonce_issue_key(b, akey, alen, PIPELINE_NONCE_HTTP, pub, nonce);
}

int pipeline_nonce_issue_conn(struct broker *b, const struct conn *c,
                              const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                              char nonce[PIPELINE_NONCE_CHARS + 1])
{
    LMQ_ASSERT(c != NULL && c->broker == b);
    uint8_t akey[LOGIN_OWNER_KEY_MAX_BYTES];
    /* The same grouping as login_address_key (net_address_group), of the address the
     * connection is counted under: the client a trusted proxy named, else the socket's peer. */
    uint8_t alen = conn_address_group(c, akey);
    LMQ_ASSERT(alen <= 8);
    if (alen == 0) {
        akey[0] = 0; /* unknown: shared with the HTTP requests of no known address */
        alen = 1;
    }
    return pipeline_nonce_issue_key(b, akey, alen, PIPELINE_NONCE_MQTT, pub, nonce);
}

bool pipeline_nonce_take(struct broker *b, const char *nonce, size_t len,
                         enum pipeline_nonce_use use, uint8_t pub[CRYPTO_ED25519_PUB_BYTES])
{
    LMQ_ASSERT(nonce != NULL && pub != NULL);
    if (b->pipeline == NULL || b->pipeline->nonces == NULL)
        return false; /* torn down (a connection freed late) or never made */
    struct pipeline_nonces *t = b->pipeline->nonces;
    pipeline_nonce_expire(t, clock_now_ms(b));
    if (len != PIPELINE_NONCE_CHARS)
        return false;
    struct pipeline_nonce *e = lmq_map_get(t->by_nonce, (const uint8_t *)nonce, len);
    if (e == NULL)
        return false;
    /* Consumed either way: a challenge presented the wrong way is not tried again. */
    bool same_use = e->use == use;
    memcpy(pub, e->pub, CRYPTO_ED25519_PUB_BYTES);
    pipeline_nonce_drop(t, e);
    return same_use;
}

size_t pipeline_nonce_count(const struct broker *b)
{
    LMQ_ASSERT(b != NULL);
    return b->pipeline->nonces == NULL ? 0 : lmq_map_count(b->pipeline->nonces->by_nonce);
}
