#include "core/map.h"

#include <string.h>

#include "core/lmq.h"

#define MAP_INITIAL_BUCKETS 16
#define MAP_MAX_BUCKETS (SIZE_MAX / 4 / sizeof(void *))

struct map_node {
    struct map_node *next;
    uint64_t hash;
    void *value;
    size_t key_len;
    uint8_t key[];
};

struct lmq_map {
    struct map_node **buckets;
    size_t bucket_count; /* power of two */
    size_t count;
};

static uint64_t map_hash(const uint8_t *key, size_t len)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

int lmq_map_create(struct lmq_map **out)
{
    LMQ_ASSERT(out != NULL);
    struct lmq_map *map = calloc(1, sizeof(*map));
    if (map == NULL)
        return LMQ_ENOMEM;
    map->buckets = calloc(MAP_INITIAL_BUCKETS, sizeof(*map->buckets));
    if (map->buckets == NULL) {
        free(map);
        return LMQ_ENOMEM;
    }
    map->bucket_count = MAP_INITIAL_BUCKETS;
    *out = map;
    return LMQ_OK;
}

void lmq_map_destroy(struct lmq_map *map)
{
    if (map == NULL)
        return;
    for (size_t i = 0; i < map->bucket_count; i++) {
        struct map_node *node = map->buckets[i];
        while (node != NULL) {
            struct map_node *next = node->next;
            free(node);
            node = next;
        }
    }
    free(map->buckets);
    free(map);
}

static struct map_node **map_find(const struct lmq_map *map, const uint8_t *key, size_t key_len,
                                  uint64_t hash)
{
    struct map_node **slot = &map->buckets[hash & (map->bucket_count - 1)];
    while (*slot != NULL) {
        struct map_node *node = *slot;
        if (node->hash == hash && node->key_len == key_len &&
            (key_len == 0 || memcmp(node->key, key, key_len) == 0))
            return slot;
        slot = &node->next;
    }
    return slot;
}

void *lmq_map_get(const struct lmq_map *map, const uint8_t *key, size_t key_len)
{
    LMQ_ASSERT(map != NULL);
    struct map_node **slot = map_find(map, key, key_len, map_hash(key, key_len));
    return *slot != NULL ? (*slot)->value : NULL;
}

/* Doubles the bucket array; on allocation failure the map just stays denser. */
static void map_grow(struct lmq_map *map)
{
    if (map->bucket_count >= MAP_MAX_BUCKETS)
        return;
    size_t new_count = map->bucket_count * 2;
    struct map_node **buckets = calloc(new_count, sizeof(*buckets));
    if (buckets == NULL)
        return;
    for (size_t i = 0; i < map->bucket_count; i++) {
        struct map_node *node = map->buckets[i];
        while (node != NULL) {
            struct map_node *next = node->next;
            size_t b = node->hash & (new_count - 1);
            node->next = buckets[b];
            buckets[b] = node;
            node = next;
        }
    }
    free(map->buckets);
    map->buckets = buckets;
    map->bucket_count = new_count;
}

int lmq_map_put(struct lmq_map *map, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_ASSERT(map != NULL);
    LMQ_ASSERT(key != NULL || key_len == 0);
    uint64_t hash = map_hash(key, key_len);
    struct map_node **slot = map_find(map, key, key_len, hash);
    if (*slot != NULL) {
        (*slot)->value = value;
        return LMQ_OK;
    }
    struct map_node *node = malloc(sizeof(*node) + key_len);
    if (node == NULL)
        return LMQ_ENOMEM;
    node->next = NULL;
    node->hash = hash;
    node->value = value;
    node->key_len = key_len;
    if (key_len > 0)
        memcpy(node->key, key, key_len);
    *slot = node;
    map->count++;
    if (map->count > map->bucket_count)
        map_grow(map);
    return LMQ_OK;
}

void *lmq_map_remove(struct lmq_map *map, const uint8_t *key, size_t key_len)
{
    LMQ_ASSERT(map != NULL);
    struct map_node **slot = map_find(map, key, key_len, map_hash(key, key_len));
    struct map_node *node = *slot;
    if (node == NULL)
        return NULL;
    *slot = node->next;
    void *value = node->value;
    free(node);
    LMQ_ASSERT(map->count > 0);
    map->count--;
    return value;
}

size_t lmq_map_count(const struct lmq_map *map)
{
    LMQ_ASSERT(map != NULL);
    return map->count;
}

void lmq_map_visit(const struct lmq_map *map, lmq_map_visit_fn fn, void *ctx)
{
    LMQ_ASSERT(map != NULL);
    LMQ_ASSERT(fn != NULL);
    for (size_t i = 0; i < map->bucket_count; i++) {
        for (struct map_node *node = map->buckets[i]; node != NULL; node = node->next) {
            if (!fn(ctx, node->key, node->key_len, node->value))
                return;
        }
    }
}
