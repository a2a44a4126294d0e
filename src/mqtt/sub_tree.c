/*
 * Subscription tree.
 *
 * - A node is one filter level. Its literal children sit in an array that
 *   gets a hash index (struct sub_index) once it holds more than
 *   SUB_INDEX_MIN_COUNT of them; the '+' child has its own slot (plus).
 *   Subscriptions whose filter ends at the node live in exact, those whose
 *   filter is "<path to node>/#" (or "#" at the root) in multi.
 * - A sub_set holds plain subscriptions (members: owner, options, sub_id)
 *   and shared groups (one per group name, each with its own members and a
 *   round-robin cursor). Members are indexed by owner, groups by name.
 * - Arrays are swap-removed and their indexes kept in step, so add and
 *   remove are O(1) average whatever the number of owners on a filter.
 * - Invariant: every node but the root has a set or a child. sub__prune
 *   restores it after a remove and after a failed add, which is how an
 *   allocation failure leaves the tree as it was.
 * - Matching is an explicit depth-first walk over a stack owned by the tree,
 *   sized at add time by the deepest filter: match never allocates and never
 *   recurses (a 65535-byte filter can have 65536 levels).
 */
#include "mqtt/sub_tree.h"

#include <string.h>
#include <sys/random.h>

#include "core/lmq.h"

#define SUB_FILTER_MAX_BYTES 65535u                /* MQTT strings are at most this long */
#define SUB_LEVELS_MAX (SUB_FILTER_MAX_BYTES + 1u) /* "/" * 65535 has 65536 levels */
#define SUB_INDEX_MIN_COUNT 8u  /* arrays up to this size are scanned, larger ones hashed */
#define SUB_INDEX_DROP_COUNT 4u /* an index is dropped when its array shrinks to this */
#define SUB_INDEX_MIN_CAP 32u   /* slots in a new index (a power of two) */
#define SUB_ARRAY_MIN_CAP 2u
/* One array never holds more items; reaching it is reported as LMQ_ENOMEM. */
#define SUB_ARRAY_MAX_COUNT (UINT32_MAX / 4u)
#define SUB_STACK_MIN_CAP 8u
#define SUB_POS_PLUS UINT32_MAX /* pos_in_parent of a '+' child */

struct sub_slot {
    uint32_t hash;
    uint32_t pos1; /* position in the array + 1; 0 = empty slot */
};

/* Open-addressing (linear probing) index from hash to array position. */
struct sub_index {
    struct sub_slot *slots; /* NULL while the array is small enough to scan */
    uint32_t cap;           /* power of two, or 0 */
};

struct sub_member {
    void *owner;
    uint32_t sub_id;
    uint8_t options;
};

struct sub_members {
    struct sub_member *items;
    uint32_t count;
    uint32_t cap;
    struct sub_index index; /* by owner */
};

struct sub_group {
    struct sub_members members;
    uint32_t cursor; /* next member in the round robin, < members.count */
    uint32_t hash;
    uint32_t name_len;
    uint8_t name[];
};

struct sub_set {
    struct sub_members plain;
    struct sub_group **groups;
    uint32_t group_count;
    uint32_t group_cap;
    struct sub_index group_index; /* by name */
};

struct sub_node {
    struct sub_node *parent; /* NULL for the root */
    struct sub_node *plus;   /* the '+' child */
    struct sub_node **children;
    uint32_t child_count;
    uint32_t child_cap;
    struct sub_index child_index; /* by level */
    struct sub_set *exact;        /* NULL when empty */
    struct sub_set *multi;        /* "/#" subscriptions; NULL when empty */
    uint32_t pos_in_parent;       /* index in parent->children, or SUB_POS_PLUS */
    uint32_t hash;
    uint32_t level_len;
    uint8_t level[];
};

struct sub_frame {
    struct sub_node *node;
    size_t pos; /* where the node's next topic level starts; > topic_len when none is left */
};

struct sub_tree {
    struct sub_node *root;
    struct sub_frame *stack; /* match work stack, >= deepest filter's levels + 2 */
    size_t stack_cap;
    size_t sub_count;
    size_t node_count;
    uint64_t seed;           /* keys the level hash so clients can't aim at one bucket */
    uint32_t fail_countdown; /* fault injection: 0 = off */
    bool matching;           /* set during sub_tree_match: the tree must not change */
};

/* A level or group name with its hash. */
struct sub_key {
    const uint8_t *bytes;
    size_t len;
    uint32_t hash;
};

typedef uint32_t (*sub_hash_of_fn)(const void *items, uint32_t pos);
typedef bool (*sub_eq_fn)(const void *items, uint32_t pos, const void *key);

/* ---- allocation (with fault injection) ---- */

static bool sub__fail_now(struct sub_tree *tree)
{
    if (tree->fail_countdown == 0) {
        return false;
    }
    tree->fail_countdown--;
    return tree->fail_countdown == 0;
}

static void *sub__calloc(struct sub_tree *tree, size_t count, size_t size_bytes)
{
    return sub__fail_now(tree) ? NULL : calloc(count, size_bytes);
}

static void *sub__realloc(struct sub_tree *tree, void *p, size_t size_bytes)
{
    return sub__fail_now(tree) ? NULL : realloc(p, size_bytes);
}

/* ---- hashing ---- */

static uint64_t sub__mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Seeded, fast, not cryptographic: the seed is secret per tree and random per process. */
static uint32_t sub__hash_bytes(uint64_t seed, const uint8_t *p, size_t len)
{
    uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    uint64_t tail = 0;
    if (len > i) {
        memcpy(&tail, p + i, len - i);
    }
    return (uint32_t)sub__mix64(h ^ tail);
}

static uint32_t sub__hash_owner(const void *owner)
{
    return (uint32_t)sub__mix64((uint64_t)(uintptr_t)owner);
}

/* ---- index ---- */

/* Finds the item equal to key, through the index or by scanning a small array. */
static bool sub__index_find(const struct sub_index *ix, const void *items, uint32_t count,
                            uint32_t hash, sub_eq_fn eq, const void *key, uint32_t *pos_out)
{
    LMQ_ASSERT(eq != NULL && pos_out != NULL);
    if (ix->slots == NULL) {
        LMQ_ASSERT(count <= SUB_INDEX_MIN_COUNT);
        for (uint32_t i = 0; i < count; i++) {
            if (eq(items, i, key)) {
                *pos_out = i;
                return true;
            }
        }
        return false;
    }
    LMQ_ASSERT(count < ix->cap);
    uint32_t mask = ix->cap - 1;
    uint32_t s = hash & mask;
    for (uint32_t n = 0; n < ix->cap; n++, s = (s + 1) & mask) {
        const struct sub_slot *slot = &ix->slots[s];
        if (slot->pos1 == 0) {
            return false;
        }
        if (slot->hash == hash && eq(items, slot->pos1 - 1, key)) {
            *pos_out = slot->pos1 - 1;
            return true;
        }
    }
    LMQ_ASSERT(false); /* an index always has an empty slot: load <= 3/4 */
    return false;
}

static void sub__index_insert(struct sub_index *ix, uint32_t hash, uint32_t pos)
{
    if (ix->slots == NULL) {
        return;
    }
    LMQ_ASSERT(pos < ix->cap);
    uint32_t mask = ix->cap - 1;
    uint32_t s = hash & mask;
    for (uint32_t n = 0; n < ix->cap; n++, s = (s + 1) & mask) {
        if (ix->slots[s].pos1 == 0) {
            ix->slots[s].hash = hash;
            ix->slots[s].pos1 = pos + 1;
            return;
        }
    }
    LMQ_ASSERT(false); /* index full: the caller skipped sub__index_reserve */
}

/* Returns the slot holding pos, which must be indexed. */
static uint32_t sub__index_slot_of(const struct sub_index *ix, uint32_t hash, uint32_t pos)
{
    LMQ_ASSERT(ix->slots != NULL);
    uint32_t mask = ix->cap - 1;
    uint32_t s = hash & mask;
    for (uint32_t n = 0; n < ix->cap; n++, s = (s + 1) & mask) {
        if (ix->slots[s].pos1 == pos + 1) {
            return s;
        }
        LMQ_ASSERT(ix->slots[s].pos1 != 0);
    }
    LMQ_ASSERT(false); /* every position of an indexed array has a slot */
    return 0;
}

/* Deletes pos's slot, shifting later slots of the probe run back (no tombstones). */
static void sub__index_remove(struct sub_index *ix, uint32_t hash, uint32_t pos)
{
    if (ix->slots == NULL) {
        return;
    }
    uint32_t mask = ix->cap - 1;
    uint32_t hole = sub__index_slot_of(ix, hash, pos);
    uint32_t j = hole;
    for (uint32_t n = 1; n < ix->cap; n++) {
        j = (j + 1) & mask;
        if (ix->slots[j].pos1 == 0) {
            break;
        }
        uint32_t home = ix->slots[j].hash & mask;
        /* slots[j] must stay if its home lies cyclically in (hole, j]. */
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            ix->slots[hole] = ix->slots[j];
            hole = j;
        }
    }
    ix->slots[hole].pos1 = 0;
    ix->slots[hole].hash = 0;
    LMQ_ASSERT(hole < ix->cap);
}

static int sub__index_rebuild(struct sub_tree *tree, struct sub_index *ix, uint32_t new_cap,
                              const void *items, uint32_t count, sub_hash_of_fn hash_of)
{
    LMQ_ASSERT(new_cap >= SUB_INDEX_MIN_CAP && (new_cap & (new_cap - 1)) == 0);
    LMQ_ASSERT(count < new_cap);
    struct sub_slot *slots = sub__calloc(tree, new_cap, sizeof *slots);
    if (slots == NULL) {
        return LMQ_ENOMEM;
    }
    free(ix->slots);
    ix->slots = slots;
    ix->cap = new_cap;
    for (uint32_t i = 0; i < count; i++) {
        sub__index_insert(ix, hash_of(items, i), i);
    }
    return 0;
}

/* Makes room for need items (load <= 3/4), building the index when the array gets large. */
static int sub__index_reserve(struct sub_tree *tree, struct sub_index *ix, const void *items,
                              uint32_t count, uint32_t need, sub_hash_of_fn hash_of)
{
    LMQ_ASSERT(need <= SUB_ARRAY_MAX_COUNT);
    LMQ_ASSERT(count <= need);
    if (ix->slots == NULL && need <= SUB_INDEX_MIN_COUNT) {
        return 0;
    }
    if ((uint64_t)need * 4u <= (uint64_t)ix->cap * 3u) {
        return 0;
    }
    uint64_t cap = LMQ_MAX(ix->cap, SUB_INDEX_MIN_CAP);
    for (int i = 0; i < 32 && (uint64_t)need * 4u > cap * 3u; i++) {
        cap *= 2u;
    }
    LMQ_ASSERT(cap <= UINT32_MAX);
    return sub__index_rebuild(tree, ix, (uint32_t)cap, items, count, hash_of);
}

/* After a removal: drops or halves a sparse index; a failed rebuild keeps the old one. */
static void sub__index_shrink(struct sub_tree *tree, struct sub_index *ix, const void *items,
                              uint32_t count, sub_hash_of_fn hash_of)
{
    if (ix->slots == NULL) {
        return;
    }
    if (count <= SUB_INDEX_DROP_COUNT) {
        free(ix->slots);
        ix->slots = NULL;
        ix->cap = 0;
        return;
    }
    if (ix->cap > SUB_INDEX_MIN_CAP && (uint64_t)count * 8u < ix->cap) {
        (void)sub__index_rebuild(tree, ix, ix->cap / 2u, items, count, hash_of);
    }
}

/* ---- arrays ---- */

/* Ensures room for one more item; *out gets the (maybe moved) array. */
static int sub__array_reserve(struct sub_tree *tree, void *items, uint32_t *cap, uint32_t count,
                              size_t elem_size, void **out)
{
    LMQ_ASSERT(count <= *cap && elem_size > 0);
    *out = items;
    if (count < *cap) {
        return 0;
    }
    if (count >= SUB_ARRAY_MAX_COUNT) {
        return LMQ_ENOMEM;
    }
    uint32_t new_cap = *cap < SUB_ARRAY_MIN_CAP ? SUB_ARRAY_MIN_CAP : *cap * 2u;
    void *p = sub__realloc(tree, items, (size_t)new_cap * elem_size);
    if (p == NULL) {
        return LMQ_ENOMEM;
    }
    LMQ_ASSERT(new_cap > count);
    *out = p;
    *cap = new_cap;
    return 0;
}

/* After a removal: frees an empty array or halves a sparse one (keeping it if that fails). */
static void *sub__array_shrink(struct sub_tree *tree, void *items, uint32_t *cap, uint32_t count,
                               size_t elem_size)
{
    LMQ_ASSERT(count <= *cap);
    if (count == 0) {
        free(items);
        *cap = 0;
        return NULL;
    }
    if (*cap <= SUB_ARRAY_MIN_CAP * 4u || (uint64_t)count * 4u >= *cap) {
        return items;
    }
    uint32_t new_cap = *cap / 2u;
    void *p = sub__realloc(tree, items, (size_t)new_cap * elem_size);
    if (p == NULL) {
        return items;
    }
    *cap = new_cap;
    return p;
}

/* Removes items[pos] by moving the last item into its place. Returns the new count. */
static uint32_t sub__array_swap_remove(void *items, uint32_t count, uint32_t pos, size_t elem_size,
                                       struct sub_index *ix, sub_hash_of_fn hash_of)
{
    LMQ_ASSERT(pos < count);
    LMQ_ASSERT(items != NULL);
    uint32_t last = count - 1;
    if (ix->slots != NULL) {
        sub__index_remove(ix, hash_of(items, pos), pos);
    }
    if (pos != last) {
        if (ix->slots != NULL) {
            uint32_t s = sub__index_slot_of(ix, hash_of(items, last), last);
            ix->slots[s].pos1 = pos + 1;
        }
        uint8_t *bytes = items;
        memcpy(bytes + (size_t)pos * elem_size, bytes + (size_t)last * elem_size, elem_size);
    }
    return last;
}

/* ---- members ---- */

static uint32_t sub__member_hash_of(const void *items, uint32_t pos)
{
    const struct sub_member *m = items;
    return sub__hash_owner(m[pos].owner);
}

static bool sub__member_eq(const void *items, uint32_t pos, const void *key)
{
    const struct sub_member *m = items;
    return m[pos].owner == key;
}

static bool sub__members_find(const struct sub_members *ms, const void *owner, uint32_t *pos)
{
    return sub__index_find(&ms->index, ms->items, ms->count, sub__hash_owner(owner), sub__member_eq,
                           owner, pos);
}

/* Adds owner, or replaces its options and sub_id. */
static int sub__members_put(struct sub_tree *tree, struct sub_members *ms, void *owner,
                            uint8_t options, uint32_t sub_id, bool *existed)
{
    LMQ_ASSERT(owner != NULL && existed != NULL);
    uint32_t pos = 0;
    if (sub__members_find(ms, owner, &pos)) {
        ms->items[pos].options = options;
        ms->items[pos].sub_id = sub_id;
        *existed = true;
        return 0;
    }
    void *p = NULL;
    int rc = sub__array_reserve(tree, ms->items, &ms->cap, ms->count, sizeof *ms->items, &p);
    if (rc != 0) {
        return rc;
    }
    ms->items = p;
    rc = sub__index_reserve(tree, &ms->index, ms->items, ms->count, ms->count + 1,
                            sub__member_hash_of);
    if (rc != 0) {
        return rc;
    }
    pos = ms->count++;
    ms->items[pos] = (struct sub_member){.owner = owner, .sub_id = sub_id, .options = options};
    sub__index_insert(&ms->index, sub__hash_owner(owner), pos);
    LMQ_ASSERT(ms->count <= ms->cap);
    *existed = false;
    return 0;
}

static void sub__members_remove_at(struct sub_tree *tree, struct sub_members *ms, uint32_t pos)
{
    LMQ_ASSERT(pos < ms->count);
    ms->count = sub__array_swap_remove(ms->items, ms->count, pos, sizeof *ms->items, &ms->index,
                                       sub__member_hash_of);
    sub__index_shrink(tree, &ms->index, ms->items, ms->count, sub__member_hash_of);
    ms->items = sub__array_shrink(tree, ms->items, &ms->cap, ms->count, sizeof *ms->items);
    LMQ_ASSERT(ms->count <= ms->cap);
}

static void sub__members_release(struct sub_members *ms)
{
    free(ms->items);
    free(ms->index.slots);
    *ms = (struct sub_members){0};
}

/* ---- sets and shared groups ---- */

static uint32_t sub__group_hash_of(const void *items, uint32_t pos)
{
    struct sub_group *const *groups = items;
    return groups[pos]->hash;
}

static bool sub__group_eq(const void *items, uint32_t pos, const void *key)
{
    const struct sub_group *g = ((struct sub_group *const *)items)[pos];
    const struct sub_key *k = key;
    return g->hash == k->hash && g->name_len == k->len && memcmp(g->name, k->bytes, k->len) == 0;
}

static bool sub__set_empty(const struct sub_set *set)
{
    return set->plain.count == 0 && set->group_count == 0;
}

static void sub__group_free(struct sub_group *g)
{
    sub__members_release(&g->members);
    free(g);
}

static void sub__set_free(struct sub_set *set)
{
    if (set == NULL) {
        return;
    }
    sub__members_release(&set->plain);
    for (uint32_t i = 0; i < set->group_count; i++) {
        sub__group_free(set->groups[i]);
    }
    free(set->groups);
    free(set->group_index.slots);
    free(set);
}

/* Creates group gk in set with owner as its first member; all or nothing. */
static int sub__set_new_group(struct sub_tree *tree, struct sub_set *set, const struct sub_key *gk,
                              void *owner, uint8_t options, uint32_t sub_id, bool *existed)
{
    LMQ_ASSERT(gk->len >= 1 && gk->len <= SUB_FILTER_MAX_BYTES);
    struct sub_group *g = NULL;
    void *p = NULL;
    int rc = sub__array_reserve(tree, set->groups, &set->group_cap, set->group_count,
                                sizeof *set->groups, &p);
    if (rc != 0) {
        goto out;
    }
    set->groups = p;
    rc = sub__index_reserve(tree, &set->group_index, set->groups, set->group_count,
                            set->group_count + 1, sub__group_hash_of);
    if (rc != 0) {
        goto out;
    }
    g = sub__calloc(tree, 1, sizeof *g + gk->len);
    if (g == NULL) {
        rc = LMQ_ENOMEM;
        goto out;
    }
    g->hash = gk->hash;
    g->name_len = (uint32_t)gk->len;
    memcpy(g->name, gk->bytes, gk->len);
    rc = sub__members_put(tree, &g->members, owner, options, sub_id, existed);
    if (rc != 0) {
        goto out;
    }
    LMQ_ASSERT(!*existed);
    uint32_t pos = set->group_count++;
    set->groups[pos] = g;
    sub__index_insert(&set->group_index, g->hash, pos);
    g = NULL;
out:
    if (g != NULL) {
        sub__group_free(g);
    }
    return rc;
}

static int sub__set_put(struct sub_tree *tree, struct sub_set *set, const struct sub_key *gk,
                        void *owner, uint8_t options, uint32_t sub_id, bool *existed)
{
    if (gk == NULL) {
        return sub__members_put(tree, &set->plain, owner, options, sub_id, existed);
    }
    uint32_t pos = 0;
    if (sub__index_find(&set->group_index, set->groups, set->group_count, gk->hash, sub__group_eq,
                        gk, &pos)) {
        return sub__members_put(tree, &set->groups[pos]->members, owner, options, sub_id, existed);
    }
    return sub__set_new_group(tree, set, gk, owner, options, sub_id, existed);
}

static void sub__set_drop_group(struct sub_tree *tree, struct sub_set *set, uint32_t pos)
{
    struct sub_group *g = set->groups[pos];
    LMQ_ASSERT(g->members.count == 0);
    set->group_count =
        sub__array_swap_remove(set->groups, set->group_count, pos, sizeof *set->groups,
                               &set->group_index, sub__group_hash_of);
    sub__index_shrink(tree, &set->group_index, set->groups, set->group_count, sub__group_hash_of);
    void *p = sub__array_shrink(tree, set->groups, &set->group_cap, set->group_count,
                                sizeof *set->groups);
    set->groups = p;
    sub__group_free(g);
    LMQ_ASSERT(set->group_count <= set->group_cap);
}

static int sub__set_remove(struct sub_tree *tree, struct sub_set *set, const struct sub_key *gk,
                           const void *owner)
{
    LMQ_ASSERT(set != NULL && !sub__set_empty(set));
    struct sub_members *ms = &set->plain;
    uint32_t gpos = 0;
    uint32_t pos = 0;
    if (gk != NULL) {
        if (!sub__index_find(&set->group_index, set->groups, set->group_count, gk->hash,
                             sub__group_eq, gk, &gpos)) {
            return LMQ_ENOTFOUND;
        }
        ms = &set->groups[gpos]->members;
    }
    if (!sub__members_find(ms, owner, &pos)) {
        return LMQ_ENOTFOUND;
    }
    sub__members_remove_at(tree, ms, pos);
    if (gk != NULL) {
        struct sub_group *g = set->groups[gpos];
        if (g->cursor >= g->members.count) {
            g->cursor = 0;
        }
        if (g->members.count == 0) {
            sub__set_drop_group(tree, set, gpos);
        }
    }
    return 0;
}

/* ---- nodes ---- */

static uint32_t sub__child_hash_of(const void *items, uint32_t pos)
{
    struct sub_node *const *children = items;
    return children[pos]->hash;
}

static bool sub__child_eq(const void *items, uint32_t pos, const void *key)
{
    const struct sub_node *c = ((struct sub_node *const *)items)[pos];
    const struct sub_key *k = key;
    return c->hash == k->hash && c->level_len == k->len &&
           (k->len == 0 || memcmp(c->level, k->bytes, k->len) == 0);
}

static struct sub_node *sub__child_find(const struct sub_node *n, const struct sub_key *k)
{
    uint32_t pos = 0;
    if (!sub__index_find(&n->child_index, n->children, n->child_count, k->hash, sub__child_eq, k,
                         &pos)) {
        return NULL;
    }
    return n->children[pos];
}

static bool sub__node_empty(const struct sub_node *n)
{
    return n->exact == NULL && n->multi == NULL && n->plus == NULL && n->child_count == 0;
}

/* Frees n's own memory (sets, children array), not its children. */
static void sub__node_free_shallow(struct sub_node *n)
{
    sub__set_free(n->exact);
    sub__set_free(n->multi);
    free(n->children);
    free(n->child_index.slots);
    free(n);
}

/* Creates and links an empty child of parent for level k ('+' child when plus). */
static int sub__child_create(struct sub_tree *tree, struct sub_node *parent,
                             const struct sub_key *k, bool plus, struct sub_node **out)
{
    LMQ_ASSERT(k->len <= SUB_FILTER_MAX_BYTES);
    LMQ_ASSERT(!plus || parent->plus == NULL);
    void *p = NULL;
    if (!plus) {
        int rc = sub__array_reserve(tree, parent->children, &parent->child_cap, parent->child_count,
                                    sizeof *parent->children, &p);
        if (rc != 0) {
            return rc;
        }
        parent->children = p;
        rc = sub__index_reserve(tree, &parent->child_index, parent->children, parent->child_count,
                                parent->child_count + 1, sub__child_hash_of);
        if (rc != 0) {
            return rc;
        }
    }
    struct sub_node *c = sub__calloc(tree, 1, sizeof *c + k->len);
    if (c == NULL) {
        return LMQ_ENOMEM;
    }
    c->parent = parent;
    c->hash = k->hash;
    c->level_len = (uint32_t)k->len;
    if (k->len > 0) {
        memcpy(c->level, k->bytes, k->len);
    }
    if (plus) {
        c->pos_in_parent = SUB_POS_PLUS;
        parent->plus = c;
    } else {
        c->pos_in_parent = parent->child_count++;
        parent->children[c->pos_in_parent] = c;
        sub__index_insert(&parent->child_index, c->hash, c->pos_in_parent);
    }
    tree->node_count++;
    *out = c;
    return 0;
}

/* Unlinks the empty non-root node n from its parent and frees it. */
static void sub__node_unlink(struct sub_tree *tree, struct sub_node *n)
{
    struct sub_node *parent = n->parent;
    LMQ_ASSERT(parent != NULL && sub__node_empty(n));
    if (n->pos_in_parent == SUB_POS_PLUS) {
        LMQ_ASSERT(parent->plus == n);
        parent->plus = NULL;
    } else {
        uint32_t pos = n->pos_in_parent;
        LMQ_ASSERT(pos < parent->child_count && parent->children[pos] == n);
        parent->child_count = sub__array_swap_remove(parent->children, parent->child_count, pos,
                                                     sizeof *parent->children, &parent->child_index,
                                                     sub__child_hash_of);
        if (pos < parent->child_count) {
            parent->children[pos]->pos_in_parent = pos;
        }
        sub__index_shrink(tree, &parent->child_index, parent->children, parent->child_count,
                          sub__child_hash_of);
        void *p = sub__array_shrink(tree, parent->children, &parent->child_cap, parent->child_count,
                                    sizeof *parent->children);
        parent->children = p;
    }
    sub__node_free_shallow(n);
    LMQ_ASSERT(tree->node_count > 1);
    tree->node_count--;
}

/* Frees n and its ancestors while they are empty, restoring the "no empty node" invariant. */
static void sub__prune(struct sub_tree *tree, struct sub_node *n)
{
    LMQ_ASSERT(n != NULL);
    for (uint32_t i = 0; i <= SUB_LEVELS_MAX && n != tree->root && sub__node_empty(n); i++) {
        struct sub_node *parent = n->parent;
        sub__node_unlink(tree, n);
        n = parent;
    }
    LMQ_ASSERT(n == tree->root || !sub__node_empty(n));
}

/*
 * Walks filter from the root, creating missing nodes when create is set.
 * *node_out is the deepest node reached (even on error), *multi_out says
 * the filter ends in '#'. Returns 0, LMQ_ENOTFOUND (!create) or LMQ_ENOMEM.
 */
static int sub__walk(struct sub_tree *tree, const uint8_t *filter, size_t filter_len, bool create,
                     struct sub_node **node_out, bool *multi_out)
{
    struct sub_node *n = tree->root;
    size_t pos = 0;
    int rc = 0;
    *multi_out = false;
    for (uint32_t depth = 0; pos <= filter_len; depth++) {
        LMQ_ASSERT(depth < SUB_LEVELS_MAX);
        const uint8_t *slash =
            pos < filter_len ? memchr(filter + pos, '/', filter_len - pos) : NULL;
        size_t end = slash != NULL ? (size_t)(slash - filter) : filter_len;
        struct sub_key k = {.bytes = filter + pos, .len = end - pos, .hash = 0};
        pos = end + 1;
        if (k.len == 1 && k.bytes[0] == '#') {
            LMQ_ASSERT(pos > filter_len); /* '#' is only ever the last level */
            *multi_out = true;
            break;
        }
        bool plus = k.len == 1 && k.bytes[0] == '+';
        LMQ_ASSERT(plus || k.len == 0 ||
                   (memchr(k.bytes, '+', k.len) == NULL && memchr(k.bytes, '#', k.len) == NULL));
        struct sub_node *next = plus ? n->plus : NULL;
        if (!plus) {
            k.hash = sub__hash_bytes(tree->seed, k.bytes, k.len);
            next = sub__child_find(n, &k);
        }
        if (next == NULL && !create) {
            rc = LMQ_ENOTFOUND;
            break;
        }
        if (next == NULL) {
            rc = sub__child_create(tree, n, &k, plus, &next);
            if (rc != 0) {
                break;
            }
        }
        n = next;
    }
    *node_out = n;
    return rc;
}

/* Grows the match stack for a filter's depth (one frame per level, plus slack). */
static int sub__stack_reserve(struct sub_tree *tree, const uint8_t *filter, size_t filter_len)
{
    size_t levels = 1;
    for (size_t i = 0; i < filter_len; i++) {
        levels += filter[i] == '/';
    }
    LMQ_ASSERT(levels <= SUB_LEVELS_MAX);
    size_t need = levels + 2;
    if (need <= tree->stack_cap) {
        return 0;
    }
    size_t cap = LMQ_MIN(LMQ_MAX(need, tree->stack_cap * 2), (size_t)SUB_LEVELS_MAX + 2);
    struct sub_frame *p = sub__realloc(tree, tree->stack, cap * sizeof *p);
    if (p == NULL) {
        return LMQ_ENOMEM;
    }
    tree->stack = p;
    tree->stack_cap = cap;
    LMQ_ASSERT(tree->stack_cap >= need);
    return 0;
}

/* ---- public: life cycle, add, remove ---- */

int sub_tree_create(struct sub_tree **out)
{
    LMQ_ASSERT(out != NULL);
    int rc = LMQ_ENOMEM;
    struct sub_tree *tree = calloc(1, sizeof *tree);
    if (tree == NULL) {
        goto out;
    }
    tree->root = calloc(1, sizeof *tree->root);
    tree->stack = calloc(SUB_STACK_MIN_CAP, sizeof *tree->stack);
    if (tree->root == NULL || tree->stack == NULL) {
        goto out;
    }
    tree->stack_cap = SUB_STACK_MIN_CAP;
    tree->node_count = 1;
    tree->root->pos_in_parent = SUB_POS_PLUS;
    if (getrandom(&tree->seed, sizeof tree->seed, GRND_NONBLOCK) != (ssize_t)sizeof tree->seed) {
        /* No entropy yet: still a per-tree seed, just a guessable one. */
        tree->seed = sub__mix64((uint64_t)(uintptr_t)tree);
    }
    *out = tree;
    tree = NULL;
    rc = 0;
out:
    if (tree != NULL) {
        free(tree->stack);
        free(tree->root);
        free(tree);
    }
    return rc;
}

void sub_tree_destroy(struct sub_tree *tree)
{
    if (tree == NULL) {
        return;
    }
    LMQ_ASSERT(!tree->matching);
    /* Iterative post-order walk: filters can be 65536 levels deep. */
    size_t steps_max = tree->node_count * 2 + 1;
    struct sub_node *n = tree->root;
    for (size_t steps = 0; n != NULL; steps++) {
        LMQ_ASSERT(steps < steps_max);
        struct sub_node *next = n->plus;
        if (next != NULL) {
            n->plus = NULL;
        } else if (n->child_count > 0) {
            next = n->children[--n->child_count];
        } else {
            next = n->parent;
            sub__node_free_shallow(n);
        }
        n = next;
    }
    free(tree->stack);
    free(tree);
}

/* Puts the subscription into node's exact or multi set; on failure frees a set it created. */
static int sub__node_put(struct sub_tree *tree, struct sub_node *node, bool multi,
                         const struct sub_key *gk, void *owner, uint8_t options, uint32_t sub_id,
                         bool *existed)
{
    struct sub_set **slot = multi ? &node->multi : &node->exact;
    if (*slot == NULL) {
        *slot = sub__calloc(tree, 1, sizeof **slot);
        if (*slot == NULL) {
            return LMQ_ENOMEM;
        }
    }
    int rc = sub__set_put(tree, *slot, gk, owner, options, sub_id, existed);
    if (rc != 0 && sub__set_empty(*slot)) {
        sub__set_free(*slot);
        *slot = NULL;
    }
    LMQ_ASSERT(rc != 0 || (*slot != NULL && !sub__set_empty(*slot)));
    return rc;
}

int sub_tree_add(struct sub_tree *tree, const uint8_t *filter, size_t filter_len,
                 const uint8_t *group, size_t group_len, void *owner, uint8_t options,
                 uint32_t sub_id, bool *existed)
{
    LMQ_ASSERT(tree != NULL && owner != NULL && existed != NULL);
    LMQ_ASSERT(!tree->matching); /* the match callback must not modify the tree */
    LMQ_ASSERT(filter != NULL && filter_len >= 1 && filter_len <= SUB_FILTER_MAX_BYTES);
    LMQ_ASSERT(group == NULL || (group_len >= 1 && group_len <= SUB_FILTER_MAX_BYTES));
    struct sub_key gk = {.bytes = group, .len = group_len, .hash = 0};
    struct sub_node *node = NULL;
    bool multi = false;
    *existed = false;
    int rc = sub__stack_reserve(tree, filter, filter_len);
    if (rc != 0) {
        goto out;
    }
    if (group != NULL) {
        gk.hash = sub__hash_bytes(tree->seed, group, group_len);
    }
    rc = sub__walk(tree, filter, filter_len, true, &node, &multi);
    if (rc == 0) {
        rc = sub__node_put(tree, node, multi, group != NULL ? &gk : NULL, owner, options, sub_id,
                           existed);
    }
    if (rc != 0) {
        *existed = false;
        sub__prune(tree, node); /* drops the nodes this call created */
        goto out;
    }
    if (!*existed) {
        tree->sub_count++;
    }
out:
    return rc;
}

int sub_tree_remove(struct sub_tree *tree, const uint8_t *filter, size_t filter_len,
                    const uint8_t *group, size_t group_len, void *owner)
{
    LMQ_ASSERT(tree != NULL && owner != NULL);
    LMQ_ASSERT(!tree->matching); /* the match callback must not modify the tree */
    LMQ_ASSERT(filter != NULL && filter_len >= 1 && filter_len <= SUB_FILTER_MAX_BYTES);
    LMQ_ASSERT(group == NULL || (group_len >= 1 && group_len <= SUB_FILTER_MAX_BYTES));
    struct sub_key gk = {.bytes = group, .len = group_len, .hash = 0};
    struct sub_node *node = NULL;
    bool multi = false;
    int rc = sub__walk(tree, filter, filter_len, false, &node, &multi);
    if (rc != 0) {
        goto out;
    }
    struct sub_set **slot = multi ? &node->multi : &node->exact;
    if (*slot == NULL) {
        rc = LMQ_ENOTFOUND;
        goto out;
    }
    if (group != NULL) {
        gk.hash = sub__hash_bytes(tree->seed, group, group_len);
    }
    rc = sub__set_remove(tree, *slot, group != NULL ? &gk : NULL, owner);
    if (rc != 0) {
        goto out;
    }
    if (sub__set_empty(*slot)) {
        sub__set_free(*slot);
        *slot = NULL;
    }
    LMQ_ASSERT(tree->sub_count > 0);
    tree->sub_count--;
    sub__prune(tree, node);
out:
    return rc;
}

/* ---- public: match ---- */

struct sub_match {
    struct sub_tree *tree;
    const uint8_t *topic;
    size_t topic_len;
    bool dollar; /* topic starts with '$': no wildcard matches its first level */
    sub_tree_match_cb cb;
    sub_tree_eligible_cb eligible;
    void *ctx;
    size_t depth; /* frames on tree->stack */
};

/* Picks a group member round robin, preferring the next eligible one. */
static uint32_t sub__group_pick(struct sub_group *g, sub_tree_eligible_cb eligible, void *ctx)
{
    uint32_t n = g->members.count;
    LMQ_ASSERT(n > 0);
    LMQ_ASSERT(g->cursor < n);
    uint32_t pick = g->cursor;
    for (uint32_t i = 0; eligible != NULL && i < n; i++) {
        uint32_t k = (g->cursor + i) % n;
        if (eligible(ctx, g->members.items[k].owner)) {
            pick = k;
            break;
        }
    }
    g->cursor = (pick + 1) % n;
    return pick;
}

static void sub__deliver_set(const struct sub_match *m, struct sub_set *set)
{
    if (set == NULL) {
        return;
    }
    LMQ_ASSERT(!sub__set_empty(set));
    for (uint32_t i = 0; i < set->plain.count; i++) {
        const struct sub_member *mb = &set->plain.items[i];
        struct sub_tree_entry e = {
            .owner = mb->owner, .options = mb->options, .sub_id = mb->sub_id};
        m->cb(m->ctx, &e);
    }
    for (uint32_t i = 0; i < set->group_count; i++) {
        struct sub_group *g = set->groups[i];
        const struct sub_member *mb = &g->members.items[sub__group_pick(g, m->eligible, m->ctx)];
        struct sub_tree_entry e = {.owner = mb->owner,
                                   .options = mb->options,
                                   .sub_id = mb->sub_id,
                                   .share_group = g->name,
                                   .share_group_len = g->name_len};
        m->cb(m->ctx, &e);
    }
    LMQ_ASSERT(m->tree->matching);
}

static void sub__push(struct sub_match *m, struct sub_node *n, size_t pos)
{
    LMQ_ASSERT(m->depth < m->tree->stack_cap); /* sized by the deepest filter at add time */
    m->tree->stack[m->depth++] = (struct sub_frame){.node = n, .pos = pos};
}

static void sub__match_frame(struct sub_match *m, struct sub_frame f)
{
    bool wild = !(m->dollar && f.node == m->tree->root);
    if (wild) {
        sub__deliver_set(m, f.node->multi); /* '#' also matches zero levels */
    }
    if (f.pos > m->topic_len) {
        sub__deliver_set(m, f.node->exact);
        return;
    }
    const uint8_t *t = m->topic;
    const uint8_t *slash =
        f.pos < m->topic_len ? memchr(t + f.pos, '/', m->topic_len - f.pos) : NULL;
    size_t end = slash != NULL ? (size_t)(slash - t) : m->topic_len;
    LMQ_ASSERT(end >= f.pos && end <= m->topic_len);
    if (f.node->child_count > 0) {
        struct sub_key k = {.bytes = t + f.pos, .len = end - f.pos};
        k.hash = sub__hash_bytes(m->tree->seed, k.bytes, k.len);
        struct sub_node *child = sub__child_find(f.node, &k);
        if (child != NULL) {
            sub__push(m, child, end + 1);
        }
    }
    if (wild && f.node->plus != NULL) {
        sub__push(m, f.node->plus, end + 1);
    }
}

void sub_tree_match(struct sub_tree *tree, const uint8_t *topic, size_t topic_len,
                    sub_tree_match_cb cb, sub_tree_eligible_cb eligible, void *ctx)
{
    LMQ_ASSERT(tree != NULL && cb != NULL);
    LMQ_ASSERT(topic != NULL || topic_len == 0);
    LMQ_ASSERT(topic_len <= SUB_FILTER_MAX_BYTES);
    LMQ_ASSERT(!tree->matching); /* no nested match from a callback: the stack is shared */
    struct sub_match m = {.tree = tree,
                          .topic = topic,
                          .topic_len = topic_len,
                          .dollar = topic_len > 0 && topic[0] == '$',
                          .cb = cb,
                          .eligible = eligible,
                          .ctx = ctx};
    tree->matching = true;
    sub__push(&m, tree->root, 0);
    /* Each node is reached by at most one path for a given topic, so visits <= nodes. */
    for (size_t visits = 0; m.depth > 0; visits++) {
        LMQ_ASSERT(visits < tree->node_count);
        m.depth--;
        sub__match_frame(&m, tree->stack[m.depth]);
    }
    tree->matching = false;
}

size_t sub_tree_count(const struct sub_tree *tree)
{
    LMQ_ASSERT(tree != NULL);
    return tree->sub_count;
}

size_t sub_tree_node_count(const struct sub_tree *tree)
{
    LMQ_ASSERT(tree != NULL);
    LMQ_ASSERT(tree->node_count >= 1);
    return tree->node_count;
}

void sub_tree_test_fail_alloc(struct sub_tree *tree, uint32_t nth)
{
    LMQ_ASSERT(tree != NULL);
    LMQ_ASSERT(!tree->matching);
    tree->fail_countdown = nth;
}
