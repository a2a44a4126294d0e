/*
 * A hash map from byte-string keys to pointers (separate chaining, FNV-1a,
 * doubling). Keys are copied into the map; values are owned by the caller.
 */
#ifndef LMQ_MAP_H
#define LMQ_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lmq_map;

/* Creates an empty map. Returns 0 or LMQ_ENOMEM. */
int lmq_map_create(struct lmq_map **out);
/* Frees the map and its keys (not the values). NULL is a no-op. */
void lmq_map_destroy(struct lmq_map *map);
/* Returns the value stored under key, or NULL. */
void *lmq_map_get(const struct lmq_map *map, const uint8_t *key, size_t key_len);
/* Stores value under key, replacing any previous value. Returns 0 or LMQ_ENOMEM. */
int lmq_map_put(struct lmq_map *map, const uint8_t *key, size_t key_len, void *value);
/* Removes key; returns the value it had, or NULL. */
void *lmq_map_remove(struct lmq_map *map, const uint8_t *key, size_t key_len);
/* Number of keys. */
size_t lmq_map_count(const struct lmq_map *map);

/* Calls fn for every entry; fn must not modify the map. Stops early when fn returns false. */
typedef bool (*lmq_map_visit_fn)(void *ctx, const uint8_t *key, size_t key_len, void *value);
void lmq_map_visit(const struct lmq_map *map, lmq_map_visit_fn fn, void *ctx);

#endif
