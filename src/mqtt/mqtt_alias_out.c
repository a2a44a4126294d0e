/*
 * The outbound topic alias table of one connection; the policy is described in the header.
 *
 * Layout (one allocation): the struct, slots[0..max] (slot 0 unused: aliases start at 1), the
 * hash buckets (heads of chains through slot.chain) and the frequency sketch, which counts the
 * sends of topics that have no alias: one entry per hash bucket, a 24-bit fingerprint of the
 * topic's hash and a saturating count. A topic whose fingerprint is not in its entry takes the
 * entry over, so a topic counts as seen before only if it (or, once in 2^24, a look-alike) was.
 * Aliases in use form a recency list (lru_head = most recently sent).
 */
#include "mqtt/mqtt_alias_out.h"

#include <stdlib.h>
#include <string.h>

/* Sketch entries per alias, and their bounds (4 bytes each). Two topics on one entry push each
 * other out: neither is counted, which can only cost an alias, never bytes. */
#define ALIAS_SKETCH_PER_ALIAS 16u
#define ALIAS_SKETCH_MIN 256u
#define ALIAS_SKETCH_MAX 16384u
/* Counts halve every this many sketch sizes of sends: recent sends weigh more. */
#define ALIAS_AGE_SKETCHES 8u
#define ALIAS_BUCKETS_MIN 16u
#define ALIAS_COUNT_MAX 255u

struct alias_slot {
    uint8_t *topic; /* owned copy; NULL while the alias is free */
    uint64_t hash;
    uint16_t len;
    uint16_t prev, next; /* recency list, by alias; 0 = none */
    uint16_t chain;      /* next alias in the same bucket; 0 = none */
    uint8_t count;       /* sends of the topic (aged), as the sketch counts them */
};

struct mqtt_alias_out {
    uint16_t max;  /* aliases 1..max */
    uint16_t used; /* aliases 1..used have a topic (they are handed out in order) */
    uint16_t lru_head, lru_tail;
    uint32_t bucket_mask;
    uint32_t sketch_mask;
    uint32_t sends_until_age;
    uint16_t *buckets;
    uint32_t *sketch; /* fingerprint << 8 | count */
    struct mqtt_alias_out_stats stats;
    struct alias_slot slots[]; /* [max + 1] */
};

static uint32_t alias__pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* 8 bytes at a time (multiply and fold): a long topic costs a few ns per PUBLISH. Not keyed: a
 * crafted collision only lengthens a chain (<= max) or shares a sketch entry. */
static uint64_t alias__hash(const uint8_t *s, size_t len)
{
    const uint64_t k = UINT64_C(0x9E3779B97F4A7C15);
    uint64_t h = (uint64_t)len * k;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    for (size_t j = 0; i + j < len; j++)
        tail |= (uint64_t)s[i + j] << (8 * j);
    h = (h ^ tail) * k;
    h ^= h >> 32;
    return h * k;
}

int mqtt_alias_out_create(uint16_t alias_max, struct mqtt_alias_out **out)
{
    LMQ_ASSERT(out != NULL && alias_max >= 1);
    uint32_t buckets = alias__pow2_at_least(LMQ_MAX((uint32_t)alias_max, ALIAS_BUCKETS_MIN));
    uint32_t sketch = alias__pow2_at_least((uint32_t)alias_max * ALIAS_SKETCH_PER_ALIAS);
    sketch = LMQ_MIN(LMQ_MAX(sketch, ALIAS_SKETCH_MIN), ALIAS_SKETCH_MAX);
    size_t slots_bytes = ((size_t)alias_max + 1) * sizeof(struct alias_slot);
    size_t buckets_bytes = buckets * sizeof(uint16_t);
    size_t total =
        sizeof(struct mqtt_alias_out) + slots_bytes + buckets_bytes + sketch * sizeof(uint32_t);
    struct mqtt_alias_out *t = calloc(1, total);
    if (t == NULL)
        return LMQ_ENOMEM;
    t->max = alias_max;
    t->bucket_mask = buckets - 1;
    t->sketch_mask = sketch - 1;
    t->sends_until_age = sketch * ALIAS_AGE_SKETCHES;
    t->buckets = (uint16_t *)((uint8_t *)t->slots + slots_bytes);
    /* buckets_bytes is a multiple of 4 (at least 16 buckets of 2 bytes): aligned for uint32_t. */
    t->sketch = (uint32_t *)((uint8_t *)t->buckets + buckets_bytes);
    LMQ_ASSERT((uint8_t *)(t->sketch + sketch) == (uint8_t *)t + total);
    *out = t;
    return LMQ_OK;
}

void mqtt_alias_out_destroy(struct mqtt_alias_out *t)
{
    if (t == NULL)
        return;
    for (uint32_t a = 1; a <= t->used; a++)
        free(t->slots[a].topic);
    free(t);
}

void mqtt_alias_out_get_stats(const struct mqtt_alias_out *t, struct mqtt_alias_out_stats *out)
{
    LMQ_ASSERT(t != NULL && out != NULL);
    *out = t->stats;
}

static uint16_t *alias__bucket(struct mqtt_alias_out *t, uint64_t hash)
{
    return &t->buckets[(hash >> 32) & t->bucket_mask];
}

static uint32_t alias__fingerprint(uint64_t hash)
{
    return (uint32_t)(hash >> 40) << 8;
}

/* Counts one more send of the topic with this hash; returns its count. */
static uint8_t alias__sketch_bump(struct mqtt_alias_out *t, uint64_t hash)
{
    uint32_t *e = &t->sketch[hash & t->sketch_mask];
    uint32_t fp = alias__fingerprint(hash);
    uint32_t count = (*e & ~UINT32_C(0xFF)) == fp ? (*e & 0xFF) : 0;
    if (count < ALIAS_COUNT_MAX)
        count++;
    *e = fp | count;
    return (uint8_t)count;
}

static void alias__sketch_set(struct mqtt_alias_out *t, uint64_t hash, uint8_t count)
{
    t->sketch[hash & t->sketch_mask] = alias__fingerprint(hash) | count;
}

/* The alias of topic, or 0. Bounded by the aliases in use. */
static uint16_t alias__find(struct mqtt_alias_out *t, const uint8_t *topic, size_t len,
                            uint64_t hash)
{
    uint16_t a = *alias__bucket(t, hash);
    for (uint32_t guard = 0; a != 0 && guard <= t->used; guard++) {
        const struct alias_slot *s = &t->slots[a];
        if (s->hash == hash && s->len == len && memcmp(s->topic, topic, len) == 0)
            return a;
        a = s->chain;
    }
    return 0;
}

static void alias__lru_unlink(struct mqtt_alias_out *t, uint16_t a)
{
    struct alias_slot *s = &t->slots[a];
    if (s->prev != 0)
        t->slots[s->prev].next = s->next;
    else
        t->lru_head = s->next;
    if (s->next != 0)
        t->slots[s->next].prev = s->prev;
    else
        t->lru_tail = s->prev;
    s->prev = s->next = 0;
}

static void alias__lru_push_head(struct mqtt_alias_out *t, uint16_t a)
{
    struct alias_slot *s = &t->slots[a];
    s->prev = 0;
    s->next = t->lru_head;
    if (t->lru_head != 0)
        t->slots[t->lru_head].prev = a;
    t->lru_head = a;
    if (t->lru_tail == 0)
        t->lru_tail = a;
}

static void alias__bucket_unlink(struct mqtt_alias_out *t, uint16_t a)
{
    uint16_t *link = alias__bucket(t, t->slots[a].hash);
    for (uint32_t guard = 0; *link != 0 && guard <= t->used; guard++) {
        if (*link == a) {
            *link = t->slots[a].chain;
            t->slots[a].chain = 0;
            return;
        }
        link = &t->slots[*link].chain;
    }
    LMQ_UNREACHABLE("alias not in its bucket");
}

/* Halves every count: what was sent long ago weighs less than what is sent now. */
static void alias__age(struct mqtt_alias_out *t)
{
    for (uint32_t i = 0; i <= t->sketch_mask; i++) {
        uint32_t e = t->sketch[i];
        t->sketch[i] = (e & ~UINT32_C(0xFF)) | ((e & 0xFF) >> 1);
    }
    for (uint32_t a = 1; a <= t->used; a++)
        t->slots[a].count >>= 1;
    t->sends_until_age = (t->sketch_mask + 1) * ALIAS_AGE_SKETCHES;
}

static void alias__set_prop(struct mqtt_publish *p, uint16_t alias)
{
    p->props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    p->props.topic_alias = alias;
}

static void alias__clear_prop(struct mqtt_publish *p)
{
    p->props.present &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    p->props.topic_alias = 0;
}

/* The topic has an alias: send alias-only. */
static void alias__use(struct mqtt_alias_out *t, uint16_t a, struct mqtt_packet *pkt,
                       size_t *size_bytes)
{
    struct mqtt_publish *p = &pkt->u.publish;
    struct alias_slot *s = &t->slots[a];
    size_t full = *size_bytes, size = 0;
    alias__set_prop(p, a);
    p->topic.len = 0;
    int rc = mqtt_encoded_size(pkt, MQTT_V5, &size);
    LMQ_ASSERT(rc == LMQ_OK && size < full); /* the topic is longer than the property */
    if (s->count < ALIAS_COUNT_MAX)
        s->count++;
    alias__lru_unlink(t, a);
    alias__lru_push_head(t, a);
    t->stats.used++;
    t->stats.saved_bytes += (int64_t)(full - size);
    *size_bytes = size;
}

/*
 * The topic has no alias and was sent count times (this one included): gives it alias a (free,
 * or the least recently used one when victim) if the packet still fits and, for a reassignment,
 * the bytes saved so far pay for it. Returns true when pkt was rewritten.
 */
static bool alias__assign(struct mqtt_alias_out *t, uint16_t a, bool victim, uint8_t count,
                          uint64_t hash, struct mqtt_packet *pkt, uint32_t max_packet_bytes,
                          size_t *size_bytes)
{
    struct mqtt_publish *p = &pkt->u.publish;
    size_t full = *size_bytes, size = 0;
    alias__set_prop(p, a);
    int rc = mqtt_encoded_size(pkt, MQTT_V5, &size);
    LMQ_ASSERT(rc == LMQ_OK && size > full && size - full <= MQTT_ALIAS_OUT_ASSIGN_COST_MAX);
    int64_t cost = (int64_t)(size - full);
    uint8_t *copy = NULL;
    if (size > max_packet_bytes || (victim && t->stats.saved_bytes < cost) ||
        (copy = malloc(p->topic.len)) == NULL) {
        alias__clear_prop(p); /* sent in full; an alias is only ever an optimisation */
        return false;
    }
    memcpy(copy, p->topic.data, p->topic.len);
    struct alias_slot *s = &t->slots[a];
    if (victim) {
        /* The topic it had goes back to the sketch with its count: it may earn an alias again. */
        alias__sketch_set(t, s->hash, s->count);
        alias__bucket_unlink(t, a);
        alias__lru_unlink(t, a);
        free(s->topic);
        t->stats.reassigned++;
    } else {
        LMQ_ASSERT(a == t->used + 1);
        t->used++;
        t->stats.assigned++;
    }
    s->topic = copy;
    s->len = (uint16_t)p->topic.len;
    s->hash = hash;
    s->count = count;
    uint16_t *head = alias__bucket(t, hash);
    s->chain = *head;
    *head = a;
    alias__lru_push_head(t, a);
    alias__sketch_set(t, hash, 0); /* counted in the slot from now on */
    t->stats.saved_bytes -= cost;
    *size_bytes = size;
    return true;
}

void mqtt_alias_out_apply(struct mqtt_alias_out *t, struct mqtt_packet *pkt,
                          uint32_t max_packet_bytes, size_t *size_bytes)
{
    LMQ_ASSERT(t != NULL && pkt != NULL && pkt->type == MQTT_PUBLISH && size_bytes != NULL);
    struct mqtt_publish *p = &pkt->u.publish;
    LMQ_ASSERT(!(p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)));
    size_t len = p->topic.len;
    if (len < MQTT_ALIAS_OUT_TOPIC_MIN_BYTES || len > MQTT_ALIAS_OUT_TOPIC_MAX_BYTES)
        return;
    if (--t->sends_until_age == 0)
        alias__age(t);
    uint64_t hash = alias__hash(p->topic.data, len);
    uint16_t a = alias__find(t, p->topic.data, len, hash);
    if (a != 0) {
        alias__use(t, a, pkt, size_bytes);
        return;
    }
    uint8_t count = alias__sketch_bump(t, hash);
    if (t->used < t->max) { /* a free alias would go unused: the first send takes it */
        (void)alias__assign(t, (uint16_t)(t->used + 1), false, count, hash, pkt, max_packet_bytes,
                            size_bytes);
        return;
    }
    if (count < 2)
        return; /* sent once: it may never come again, so it takes no alias from another */
    uint16_t lru = t->lru_tail;
    LMQ_ASSERT(lru != 0);
    if (count <= t->slots[lru].count)
        return; /* not sent more often than the alias it would take is used */
    (void)alias__assign(t, lru, true, count, hash, pkt, max_packet_bytes, size_bytes);
}
