/*
 * Validation: two walks over the compiled nodes, a fast path that only proves an instance valid
 * (see "the fast path" below) and the full walk that gives the verdict and errors otherwise. Paths
 * (instance and keyword location) are stacks of segments that point into the instance and the
 * schema documents; they become JSON Pointer text only when an error is kept. Bitsets for
 * unevaluated* come from the validator's arena, released by mark/reset in stack order, so a
 * validation allocates nothing once the arena has grown to the largest instance it has seen.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "schema/schema_internal.h"

/* Arena blocks, in 64-bit words. A request larger than a block gets a block of its own size. */
#define V_BLOCK_WORDS 8192u
#define V_BLOCKS_MAX 64u
/* Blocks larger than this (a huge array's uniqueItems table) are freed after the validation
 * that needed them, so one big instance does not pin its memory in a long-lived validator. */
#define V_BLOCK_KEEP_WORDS (1024u * 1024u)
/* Keyword-location segments: a node evaluation pushes at most two (keyword, index or key). */
#define V_KPATH_MAX (SCHEMA_EVAL_DEPTH_MAX * 2u + 8u)
#define V_IPATH_MAX (SCHEMA_INSTANCE_DEPTH_MAX + 2u)
/* The fast path gives up after this many subschema evaluations and lets the full walk (with the
 * whole SCHEMA_EVAL_STEPS_MAX) decide: a hostile instance then costs at most 1/16 more than one
 * walk to the budget, not two. */
#define V_FAST_STEPS_MAX (SCHEMA_EVAL_STEPS_MAX / 16u)

struct v_seg {
    const char *key; /* NULL: an array index */
    size_t len;
    size_t index;
};

struct v_block {
    uint64_t *words;
    size_t cap;
};

struct schema_validator {
    const struct schema *s;
    struct v_block blocks[V_BLOCKS_MAX];
    size_t block_count;
    size_t cur, top; /* the arena's position: block, word */
    size_t alloc_count;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    /* one validation's state */
    struct schema_result *out;
    struct v_seg ipath[V_IPATH_MAX];
    size_t idepth;
    struct v_seg kpath[V_KPATH_MAX];
    size_t kdepth;
    uint32_t scope[SCHEMA_EVAL_DEPTH_MAX + 1];
    size_t scope_depth;
    size_t eval_depth;
    size_t steps; /* subschema evaluations so far, bounded by SCHEMA_EVAL_STEPS_MAX */
    int quiet;
    int fatal; /* 0, LMQ_ELIMIT or LMQ_ENOMEM: stop everything */
    bool bail; /* the fast path gives up: the full walk decides */
};

/* A property name validated as a string (propertyNames). */
struct v_name {
    const char *s;
    size_t len;
};

/* A value under validation: a jansson value, or (j == NULL) a property name. Two pointers, so it
 * travels in registers (a 24-byte struct went through memory with a store-forwarding stall per
 * keyword: perf). */
struct v_inst {
    const json_t *j;
    const struct v_name *name;
};

struct v_mark {
    size_t cur, top;
};

int schema_validator_new(const struct schema *s, struct schema_validator **out)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    struct schema_validator *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        return LMQ_ENOMEM;
    }
    v->s = s;
    v->md = pcre2_match_data_create(1, NULL);
    v->mc = pcre2_match_context_create(NULL);
    if (v->md == NULL || v->mc == NULL) {
        schema_validator_free(v);
        return LMQ_ENOMEM;
    }
    pcre2_set_match_limit(v->mc, SCHEMA_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(v->mc, SCHEMA_REGEX_DEPTH_LIMIT);
    *out = v;
    return 0;
}

void schema_validator_free(struct schema_validator *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->block_count; i++) {
        free(v->blocks[i].words);
    }
    pcre2_match_data_free(v->md);
    pcre2_match_context_free(v->mc);
    free(v);
}

size_t schema_validator_alloc_count(const struct schema_validator *v)
{
    return v->alloc_count;
}

static struct v_mark v__mark(const struct schema_validator *v)
{
    return (struct v_mark){v->cur, v->top};
}

static void v__reset(struct schema_validator *v, struct v_mark m)
{
    v->cur = m.cur;
    v->top = m.top;
}

/* A zeroed bitset of bits bits, or NULL (v->fatal set) when the arena cannot grow. */
static uint64_t *v__bits(struct schema_validator *v, size_t bits)
{
    size_t words = (bits + 63) / 64;
    words = words == 0 ? 1 : words;
    /* Each round either fits, moves past a partly used block, or (re)allocates the empty
     * block at cur (nothing live in it: the arena is a stack); bounded by V_BLOCKS_MAX. */
    for (;;) {
        if (v->cur < v->block_count && v->top + words <= v->blocks[v->cur].cap) {
            break;
        }
        if (v->cur < v->block_count && v->top > 0) {
            v->cur++;
            v->top = 0;
            continue;
        }
        if (v->cur == v->block_count) {
            if (v->block_count >= V_BLOCKS_MAX) {
                v->fatal = LMQ_ENOMEM;
                return NULL;
            }
            v->blocks[v->block_count++] = (struct v_block){0};
        }
        size_t cap = LMQ_MAX(words, (size_t)V_BLOCK_WORDS);
        free(v->blocks[v->cur].words);
        v->blocks[v->cur].words = malloc(cap * sizeof(uint64_t));
        v->blocks[v->cur].cap = v->blocks[v->cur].words != NULL ? cap : 0;
        v->alloc_count++;
        if (v->blocks[v->cur].words == NULL) {
            v->fatal = LMQ_ENOMEM;
            return NULL;
        }
    }
    uint64_t *p = v->blocks[v->cur].words + v->top;
    v->top += words;
    memset(p, 0, words * sizeof(uint64_t));
    return p;
}

static void v__set(uint64_t *bits, size_t i)
{
    if (bits != NULL) {
        bits[i / 64] |= 1ull << (i % 64);
    }
}

static bool v__get(const uint64_t *bits, size_t i)
{
    return (bits[i / 64] >> (i % 64)) & 1u;
}

/* True when bits [0, n) are all set (a NULL bitset has none set). */
static bool v__all_set(const uint64_t *bits, size_t n)
{
    if (bits == NULL) {
        return n == 0;
    }
    for (size_t w = 0; w < n / 64; w++) {
        if (bits[w] != UINT64_MAX) {
            return false;
        }
    }
    if (n % 64 == 0) {
        return true;
    }
    uint64_t tail = (1ull << (n % 64)) - 1;
    return (bits[n / 64] & tail) == tail;
}

static void v__or(uint64_t *dst, const uint64_t *src, size_t bits)
{
    if (dst == NULL || src == NULL) {
        return;
    }
    for (size_t w = 0; w < (bits + 63) / 64; w++) {
        dst[w] |= src[w];
    }
}

/* ---- paths and errors ---- */

static void v__ptr_append(char *out, size_t cap, size_t *o, const struct v_seg *seg)
{
    char num[32];
    const char *s = seg->key;
    size_t n = seg->len;
    if (s == NULL) {
        n = (size_t)snprintf(num, sizeof(num), "%zu", seg->index);
        s = num;
    }
    if (*o + 1 < cap) {
        out[(*o)++] = '/';
    }
    for (size_t i = 0; i < n && *o + 2 < cap; i++) {
        if (s[i] == '~' || s[i] == '/') {
            out[(*o)++] = '~';
            out[(*o)++] = s[i] == '~' ? '0' : '1';
        } else {
            out[(*o)++] = s[i];
        }
    }
}

static void v__ptr(char *out, size_t cap, const struct v_seg *segs, size_t n,
                   const struct v_seg *last)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        v__ptr_append(out, cap, &o, &segs[i]);
    }
    if (last != NULL) {
        v__ptr_append(out, cap, &o, last);
    }
    if (o + 1 >= cap && cap > 4) {
        memcpy(out + cap - 4, "...", 3);
        o = cap - 1;
    }
    out[o] = '\0';
}

/* Keeps an error for the keyword kw (NULL: the false schema) at the current paths (the keyword
 * path already ends in kw: v__node pushes it). */
__attribute__((format(printf, 3, 4))) static void v__error(struct schema_validator *v,
                                                           const char *kw, const char *fmt, ...)
{
    struct schema_result *r = v->out;
    /* After a bound was hit, the last error stays the one that says which. */
    if (v->quiet > 0 || r->error_count >= SCHEMA_ERRORS_MAX || v->fatal != 0) {
        return;
    }
    struct schema_error *e = &r->errors[r->error_count++];
    v__ptr(e->instance, sizeof(e->instance), v->ipath, v->idepth, NULL);
    v__ptr(e->schema, sizeof(e->schema), v->kpath, v->kdepth, NULL);
    lmq_errf(e->keyword, sizeof(e->keyword), "%s", kw != NULL ? kw : "false");
    va_list ap;
    va_start(ap, fmt);
    lmq_verrf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

static void v__fatal(struct schema_validator *v, int rc, const char *kw, const char *msg)
{
    if (v->fatal != 0) {
        return;
    }
    int quiet = v->quiet;
    v->quiet = 0;
    if (v->out->error_count >= SCHEMA_ERRORS_MAX) {
        v->out->error_count = SCHEMA_ERRORS_MAX - 1; /* the last slot says why it stopped */
    }
    v__error(v, kw, "%s", msg);
    v->quiet = quiet;
    v->fatal = rc;
}

static void v__kpush(struct schema_validator *v, const char *key, size_t len, size_t index)
{
    LMQ_ASSERT(v->kdepth < V_KPATH_MAX);
    v->kpath[v->kdepth++] = (struct v_seg){.key = key, .len = len, .index = index};
}

static bool v__ipush(struct schema_validator *v, const char *key, size_t len, size_t index)
{
    if (v->idepth >= SCHEMA_INSTANCE_DEPTH_MAX) {
        v__fatal(v, LMQ_ELIMIT, NULL, "instance nested too deeply");
        return false;
    }
    v->ipath[v->idepth++] = (struct v_seg){.key = key, .len = len, .index = index};
    return true;
}

/* ---- instance values ---- */

static uint32_t v__type(struct v_inst in)
{
    if (in.j == NULL) {
        return ST_STRING;
    }
    switch (json_typeof(in.j)) {
    case JSON_OBJECT:
        return ST_OBJECT;
    case JSON_ARRAY:
        return ST_ARRAY;
    case JSON_STRING:
        return ST_STRING;
    case JSON_INTEGER:
        return ST_NUMBER | ST_INTEGER;
    case JSON_REAL:
        return ST_NUMBER | (schema__is_integer(in.j) ? ST_INTEGER : 0);
    case JSON_TRUE:
    case JSON_FALSE:
        return ST_BOOLEAN;
    default:
        return ST_NULL;
    }
}

static bool v__str(struct v_inst in, const char **s, size_t *len)
{
    if (in.j == NULL) {
        *s = in.name->s;
        *len = in.name->len;
        return true;
    }
    if (!json_is_string(in.j)) {
        return false;
    }
    *s = json_string_value(in.j);
    *len = json_string_length(in.j);
    return true;
}

static bool v__equal(struct v_inst in, const json_t *b)
{
    if (in.j != NULL) {
        return schema_json_equal(in.j, b);
    }
    return json_is_string(b) && json_string_length(b) == in.name->len &&
           memcmp(json_string_value(b), in.name->s, in.name->len) == 0;
}

static const char *v__type_name(struct v_inst in)
{
    static const char *const names[] = {"null",   "boolean", "object", "array",
                                        "number", "string",  "integer"};
    uint32_t t = v__type(in);
    if (t & ST_INTEGER) {
        return "integer";
    }
    for (size_t i = 0; i < LMQ_ARRAY_LEN(names); i++) {
        if (t & (1u << i)) {
            return names[i];
        }
    }
    return "?";
}

static int v__cmp_num(const json_t *a, const struct schema__kw *kw)
{
    if (json_is_integer(a) && json_is_integer(kw->value)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(kw->value);
        return x < y ? -1 : x > y;
    }
    double x = schema__number(a);
    return x < kw->n ? -1 : x > kw->n;
}

static bool v__multiple(const json_t *a, const struct schema__kw *kw)
{
    if (json_is_integer(a) && json_is_integer(kw->value)) {
        return json_integer_value(a) % json_integer_value(kw->value) == 0;
    }
    double q = schema__number(a) / kw->n;
    if (!isfinite(q)) {
        /* Overflow: an integer is still a multiple of 1/k (0.5, 0.25, ...). */
        double r = 1.0 / kw->n;
        return schema__is_integer(a) && isfinite(r) && floor(r) == r;
    }
    return fabs(q - nearbyint(q)) <= 4.0 * DBL_EPSILON * fmax(1.0, fabs(q));
}

static bool v__node(struct schema_validator *v, uint32_t node, struct v_inst in, uint64_t *eval);

/* ---- applicators ---- */

static size_t v__members(struct v_inst in)
{
    if (in.j == NULL) {
        return 0;
    }
    return json_is_object(in.j)  ? json_object_size(in.j)
           : json_is_array(in.j) ? json_array_size(in.j)
                                 : 0;
}

/* A child at the same instance location (segment seg_key/seg_index of the keyword path):
 * its annotations join eval only when it succeeds. */
static bool v__inplace(struct schema_validator *v, uint32_t node, struct v_inst in, uint64_t *eval,
                       const char *seg_key, size_t seg_index)
{
    size_t kd = v->kdepth;
    if (seg_key != NULL || seg_index != SIZE_MAX) {
        v__kpush(v, seg_key, seg_key != NULL ? strlen(seg_key) : 0, seg_index);
    }
    struct v_mark m = v__mark(v);
    size_t n = v__members(in);
    uint64_t *mine = eval != NULL ? v__bits(v, n) : NULL;
    bool ok = v->fatal == 0 && v__node(v, node, in, mine);
    if (ok) {
        v__or(eval, mine, n);
    }
    v__reset(v, m);
    v->kdepth = kd;
    return ok;
}

/* A child at a member of the instance (key, or index when key is NULL). */
static bool v__member(struct schema_validator *v, uint32_t node, const json_t *child,
                      const char *key, size_t key_len, size_t index, const char *seg_key,
                      size_t seg_key_len, size_t seg_index)
{
    size_t kd = v->kdepth;
    size_t id = v->idepth;
    if (seg_key != NULL || seg_index != SIZE_MAX) {
        v__kpush(v, seg_key, seg_key_len, seg_index);
    }
    bool ok =
        v__ipush(v, key, key_len, index) && v__node(v, node, (struct v_inst){.j = child}, NULL);
    v->kdepth = kd;
    v->idepth = id;
    return ok;
}

static uint32_t v__dynamic_target(struct schema_validator *v, const struct schema__kw *kw)
{
    if (kw->item_count == 0) {
        return kw->a;
    }
    const char *name = v->s->items[kw->item_start].key;
    uint8_t key[4 + SCHEMA_ANCHOR_MAX_BYTES];
    /* The outermost resource of the dynamic scope with this dynamic anchor wins: one hash
     * lookup per scope entry (bounded by SCHEMA_EVAL_DEPTH_MAX). */
    for (size_t i = 0; i < v->scope_depth; i++) {
        size_t key_len = schema__anchor_key(v->scope[i], name, key);
        uintptr_t node = (uintptr_t)lmq_map_get(v->s->dyn_map, key, key_len);
        if (node != 0) {
            return (uint32_t)(node - 1);
        }
    }
    return kw->a;
}

static bool v__any_one(struct schema_validator *v, const struct schema__kw *kw, struct v_inst in,
                       uint64_t *eval)
{
    size_t passed = 0;
    size_t first = SIZE_MAX;
    v->quiet++;
    for (uint32_t i = 0; i < kw->item_count && v->fatal == 0; i++) {
        if (v__inplace(v, v->s->items[kw->item_start + i].node, in, eval, NULL, i)) {
            passed++;
            first = first == SIZE_MAX ? i : first;
            if (kw->kind == SK_ANY_OF && eval == NULL) {
                break; /* no annotations wanted: the first success decides */
            }
        }
    }
    v->quiet--;
    if (kw->kind == SK_ANY_OF ? passed > 0 : passed == 1) {
        return true;
    }
    if (passed == 0 && v->quiet == 0 && v->fatal == 0) {
        /* Fail path only: again, keeping the branches' errors. */
        for (uint32_t i = 0; i < kw->item_count; i++) {
            (void)v__inplace(v, v->s->items[kw->item_start + i].node, in, NULL, NULL, i);
        }
    }
    if (passed == 0) {
        v__error(v, kw->name, "the value matches none of the %u subschemas", kw->item_count);
    } else {
        v__error(v, kw->name, "the value matches subschemas %zu and more (exactly one wanted)",
                 first);
    }
    return false;
}

static bool v__if(struct schema_validator *v, const struct schema__kw *kw, struct v_inst in,
                  uint64_t *eval)
{
    v->quiet++;
    bool cond = v__inplace(v, kw->a, in, eval, NULL, SIZE_MAX);
    v->quiet--;
    uint32_t next = cond ? kw->b : kw->c;
    if (next == SCHEMA__NONE || v->fatal != 0) {
        return v->fatal == 0;
    }
    /* then/else sit beside "if" in the schema: their location replaces the last segment. */
    size_t kd = v->kdepth;
    LMQ_ASSERT(kd > 0);
    v->kdepth--;
    bool ok = v__inplace(v, next, in, eval, cond ? "then" : "else", SIZE_MAX);
    v->kdepth = kd;
    return ok;
}

/* ---- arrays ---- */

static bool v__unique(struct schema_validator *v, const json_t *a)
{
    size_t n = json_array_size(a);
    if (n < 2) {
        return true;
    }
    if (n <= 16) {
        for (size_t i = 0; i < n; i++) {
            for (size_t k = i + 1; k < n; k++) {
                if (schema_json_equal(json_array_get(a, i), json_array_get(a, k))) {
                    return false;
                }
            }
        }
        return true;
    }
    /* Larger arrays: an open-addressing table of hashes (item index + 1) in the arena, so the
     * cost is linear, not quadratic. */
    struct v_mark m = v__mark(v);
    size_t cap = 64;
    while (cap < n * 2) {
        cap *= 2;
    }
    uint64_t *slots = v__bits(v, cap * 64);
    bool unique = true;
    for (size_t i = 0; slots != NULL && i < n && unique; i++) {
        const json_t *item = json_array_get(a, i);
        size_t h = (size_t)schema__hash(item) & (cap - 1);
        while (slots[h] != 0) {
            if (schema_json_equal(json_array_get(a, slots[h] - 1), item)) {
                unique = false;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        slots[h] = i + 1;
    }
    v__reset(v, m);
    return unique;
}

static bool v__array_kw(struct schema_validator *v, const struct schema__kw *kw, const json_t *a,
                        uint64_t *eval)
{
    size_t n = json_array_size(a);
    bool ok = true;
    switch (kw->kind) {
    case SK_PREFIX_ITEMS:
        for (size_t i = 0; i < n && i < kw->item_count && (ok || v->quiet == 0); i++) {
            ok &= v__member(v, v->s->items[kw->item_start + i].node, json_array_get(a, i), NULL, 0,
                            i, NULL, 0, i);
            v__set(eval, i);
        }
        return ok;
    case SK_ITEMS:
    case SK_UNEVALUATED_ITEMS:
        for (size_t i = kw->kind == SK_ITEMS ? kw->b : 0; i < n && (ok || v->quiet == 0); i++) {
            if (kw->kind == SK_UNEVALUATED_ITEMS && v__get(eval, i)) {
                continue;
            }
            ok &= v__member(v, kw->a, json_array_get(a, i), NULL, 0, i, NULL, 0, SIZE_MAX);
            v__set(eval, i);
        }
        return ok;
    case SK_CONTAINS: {
        json_int_t count = 0;
        v->quiet++;
        for (size_t i = 0; i < n && v->fatal == 0; i++) {
            if (v__member(v, kw->a, json_array_get(a, i), NULL, 0, i, NULL, 0, SIZE_MAX)) {
                count++;
                v__set(eval, i);
            }
        }
        v->quiet--;
        if (count < kw->i) {
            v__error(v, kw->name, "%lld item(s) match, at least %lld wanted", (long long)count,
                     (long long)kw->i);
            return false;
        }
        if (kw->i2 >= 0 && count > kw->i2) {
            v__error(v, kw->name, "%lld items match, at most %lld wanted (maxContains)",
                     (long long)count, (long long)kw->i2);
            return false;
        }
        return true;
    }
    case SK_MAX_ITEMS:
    case SK_MIN_ITEMS:
        if (kw->kind == SK_MAX_ITEMS ? (json_int_t)n > kw->i : (json_int_t)n < kw->i) {
            v__error(v, kw->name, "%zu items, %s %lld", n,
                     kw->kind == SK_MAX_ITEMS ? "at most" : "at least", (long long)kw->i);
            return false;
        }
        return true;
    case SK_UNIQUE_ITEMS:
        if (!v__unique(v, a)) {
            v__error(v, kw->name, "the items are not unique");
            return false;
        }
        return true;
    default:
        return true;
    }
}

/* ---- objects ---- */

static bool v__props(struct schema_validator *v, const struct schema__kw *kw, const json_t *o,
                     uint64_t *eval, uint64_t *local)
{
    bool ok = true;
    size_t i = 0;
    const char *key;
    size_t key_len;
    json_t *m;
    json_object_keylen_foreach((json_t *)o, key, key_len, m)
    {
        if (!ok && v->quiet > 0) {
            break;
        }
        if (kw->kind == SK_PROPERTIES) {
            const struct schema__item *it = schema__prop_find(v->s, kw, key, key_len);
            if (it != NULL) {
                ok &= v__member(v, it->node, m, key, key_len, 0, it->key, it->key_len, SIZE_MAX);
                v__set(eval, i);
                v__set(local, i);
            }
        } else if (kw->kind == SK_PATTERN_PROPERTIES) {
            for (uint32_t p = 0; p < kw->item_count; p++) {
                const struct schema__item *it = &v->s->items[kw->item_start + p];
                int r = schema__regex_match(it->re, v->md, v->mc, key, key_len);
                if (r < 0) {
                    v__fatal(v, LMQ_ELIMIT, kw->name, "regex match limit reached");
                    return false;
                }
                if (r == 1) {
                    ok &=
                        v__member(v, it->node, m, key, key_len, 0, it->key, it->key_len, SIZE_MAX);
                    v__set(eval, i);
                    v__set(local, i);
                }
            }
        } else if (kw->kind == SK_ADDITIONAL_PROPERTIES || kw->kind == SK_UNEVALUATED_PROPERTIES) {
            const uint64_t *seen = kw->kind == SK_ADDITIONAL_PROPERTIES ? local : eval;
            if (seen == NULL || !v__get(seen, i)) {
                ok &= v__member(v, kw->a, m, key, key_len, 0, NULL, 0, SIZE_MAX);
                v__set(eval, i);
            }
        } else if (kw->kind == SK_PROPERTY_NAMES) {
            /* A name has no JSON Pointer of its own: its errors name the object. */
            struct v_name name = {.s = key, .len = key_len};
            ok &= v__node(v, kw->a, (struct v_inst){.name = &name}, NULL);
        }
        i++;
    }
    return ok;
}

static bool v__object_kw(struct schema_validator *v, const struct schema__kw *kw, const json_t *o,
                         uint64_t *eval, uint64_t *local)
{
    size_t n = json_object_size(o);
    switch (kw->kind) {
    case SK_PROPERTIES:
    case SK_PATTERN_PROPERTIES:
    case SK_ADDITIONAL_PROPERTIES:
    case SK_UNEVALUATED_PROPERTIES:
    case SK_PROPERTY_NAMES:
        return v__props(v, kw, o, eval, local);
    case SK_MAX_PROPERTIES:
    case SK_MIN_PROPERTIES:
        if (kw->kind == SK_MAX_PROPERTIES ? (json_int_t)n > kw->i : (json_int_t)n < kw->i) {
            v__error(v, kw->name, "%zu properties, %s %lld", n,
                     kw->kind == SK_MAX_PROPERTIES ? "at most" : "at least", (long long)kw->i);
            return false;
        }
        return true;
    case SK_REQUIRED: {
        bool ok = true;
        for (size_t i = 0; i < json_array_size(kw->value); i++) {
            const json_t *name = json_array_get(kw->value, i);
            if (json_object_getn(o, json_string_value(name), json_string_length(name)) == NULL) {
                v__error(v, kw->name, "required property \"%.100s\" is missing",
                         json_string_value(name));
                ok = false;
            }
        }
        return ok;
    }
    case SK_DEPENDENT_REQUIRED: {
        bool ok = true;
        for (uint32_t p = 0; p < kw->item_count; p++) {
            const struct schema__item *it = &v->s->items[kw->item_start + p];
            if (json_object_getn(o, it->key, it->key_len) == NULL) {
                continue;
            }
            for (size_t i = 0; i < json_array_size(it->value); i++) {
                const json_t *name = json_array_get(it->value, i);
                if (json_object_getn(o, json_string_value(name), json_string_length(name)) ==
                    NULL) {
                    v__error(v, kw->name, "property \"%.100s\" requires \"%.100s\"", it->key,
                             json_string_value(name));
                    ok = false;
                }
            }
        }
        return ok;
    }
    default:
        return true;
    }
}

/* ---- scalars ---- */

static bool v__scalar_kw(struct schema_validator *v, const struct schema__kw *kw, struct v_inst in)
{
    const char *s = NULL;
    size_t len = 0;
    switch (kw->kind) {
    case SK_MULTIPLE_OF:
        if (in.j != NULL && json_is_number(in.j) && !v__multiple(in.j, kw)) {
            v__error(v, kw->name, "not a multiple of %g", kw->n);
            return false;
        }
        return true;
    case SK_MAXIMUM:
    case SK_EXCL_MAXIMUM:
    case SK_MINIMUM:
    case SK_EXCL_MINIMUM: {
        if (in.j == NULL || !json_is_number(in.j)) {
            return true;
        }
        int c = v__cmp_num(in.j, kw);
        bool ok = kw->kind == SK_MAXIMUM        ? c <= 0
                  : kw->kind == SK_EXCL_MAXIMUM ? c < 0
                  : kw->kind == SK_MINIMUM      ? c >= 0
                                                : c > 0;
        if (!ok) {
            v__error(v, kw->name, "%g is out of bounds (%s %g)", schema__number(in.j), kw->name,
                     kw->n);
        }
        return ok;
    }
    case SK_MAX_LENGTH:
    case SK_MIN_LENGTH: {
        if (!v__str(in, &s, &len)) {
            return true;
        }
        /* A code point is 1 to 4 bytes: the byte length often decides without counting. */
        if (kw->kind == SK_MAX_LENGTH ? (json_int_t)len <= kw->i
                                      : (json_int_t)((len + 3) / 4) >= kw->i) {
            return true;
        }
        json_int_t n = (json_int_t)schema__utf8_len(s, len);
        if (kw->kind == SK_MAX_LENGTH ? n > kw->i : n < kw->i) {
            v__error(v, kw->name, "%lld characters, %s %lld", (long long)n,
                     kw->kind == SK_MAX_LENGTH ? "at most" : "at least", (long long)kw->i);
            return false;
        }
        return true;
    }
    case SK_PATTERN: {
        if (!v__str(in, &s, &len)) {
            return true;
        }
        int r = schema__regex_match(kw->re, v->md, v->mc, s, len);
        if (r < 0) {
            v__fatal(v, LMQ_ELIMIT, kw->name,
                     r == LMQ_ELIMIT ? "regex match limit reached" : "regex match failed");
            return false;
        }
        if (r == 0) {
            v__error(v, kw->name, "does not match the pattern \"%.100s\"",
                     json_string_value(kw->value));
        }
        return r == 1;
    }
    case SK_FORMAT:
        if (v__str(in, &s, &len) && !schema__format_check(kw->format, s, len)) {
            v__error(v, kw->name, "not a valid %s", json_string_value(kw->value));
            return false;
        }
        return true;
    default:
        return true;
    }
}

/* ---- nodes ---- */

static bool v__kw(struct schema_validator *v, const struct schema__kw *kw, struct v_inst in,
                  uint64_t *eval, uint64_t *local)
{
    const json_t *j = in.j;
    switch (kw->kind) {
    case SK_TYPE:
        if ((v__type(in) & kw->types) == 0 &&
            !((kw->types & ST_NUMBER) && (v__type(in) & ST_NUMBER))) {
            v__error(v, kw->name, "%s is not of the allowed type(s)", v__type_name(in));
            return false;
        }
        return true;
    case SK_ENUM:
        for (size_t i = 0; i < json_array_size(kw->value); i++) {
            if (v__equal(in, json_array_get(kw->value, i))) {
                return true;
            }
        }
        v__error(v, kw->name, "not one of the %zu allowed values", json_array_size(kw->value));
        return false;
    case SK_CONST:
        if (!v__equal(in, kw->value)) {
            v__error(v, kw->name, "not the constant value");
            return false;
        }
        return true;
    case SK_REF:
        return v__inplace(v, kw->a, in, eval, NULL, SIZE_MAX);
    case SK_DYNAMIC_REF:
        return v__inplace(v, v__dynamic_target(v, kw), in, eval, NULL, SIZE_MAX);
    case SK_ALL_OF: {
        bool ok = true;
        for (uint32_t i = 0; i < kw->item_count && (ok || v->quiet == 0); i++) {
            ok &= v__inplace(v, v->s->items[kw->item_start + i].node, in, eval, NULL, i);
        }
        return ok;
    }
    case SK_ANY_OF:
    case SK_ONE_OF:
        return v__any_one(v, kw, in, eval);
    case SK_NOT: {
        v->quiet++;
        bool inner = v__inplace(v, kw->a, in, NULL, NULL, SIZE_MAX);
        v->quiet--;
        if (inner && v->fatal == 0) {
            v__error(v, kw->name, "the value matches the subschema it must not match");
        }
        return !inner;
    }
    case SK_IF:
        return v__if(v, kw, in, eval);
    case SK_DEPENDENT_SCHEMAS: {
        bool ok = true;
        for (uint32_t p = 0; j != NULL && json_is_object(j) && p < kw->item_count; p++) {
            const struct schema__item *it = &v->s->items[kw->item_start + p];
            if (json_object_getn(j, it->key, it->key_len) != NULL) {
                v__kpush(v, it->key, it->key_len, 0);
                ok &= v__inplace(v, it->node, in, eval, NULL, SIZE_MAX);
                v->kdepth--;
            }
        }
        return ok;
    }
    default:
        break;
    }
    if (j != NULL && json_is_array(j)) {
        return v__array_kw(v, kw, j, eval);
    }
    if (j != NULL && json_is_object(j)) {
        return v__object_kw(v, kw, j, eval, local);
    }
    return v__scalar_kw(v, kw, in);
}

static bool v__node(struct schema_validator *v, uint32_t node, struct v_inst in, uint64_t *eval)
{
    const struct schema *s = v->s;
    const struct schema__node *n = &s->nodes[node];
    if (n->boolean >= 0) {
        if (n->boolean == 0) {
            v__error(v, NULL, "no value is allowed here (false schema)");
        }
        return n->boolean == 1;
    }
    if (++v->steps > SCHEMA_EVAL_STEPS_MAX) {
        v__fatal(v, LMQ_ELIMIT, NULL,
                 "evaluation budget exceeded (too many subschema evaluations)");
        return false;
    }
    if (v->eval_depth >= SCHEMA_EVAL_DEPTH_MAX) {
        v__fatal(v, LMQ_ELIMIT, NULL, "schema evaluation nested too deeply ($ref recursion)");
        return false;
    }
    v->eval_depth++;
    size_t scope = v->scope_depth;
    if (scope == 0 || v->scope[scope - 1] != n->resource) {
        v->scope[v->scope_depth++] = n->resource;
    }
    struct v_mark m = v__mark(v);
    size_t members = v__members(in);
    if (eval == NULL && n->has_unevaluated && members > 0) {
        eval = v__bits(v, members);
    }
    uint64_t *local =
        n->has_additional && in.j != NULL && json_is_object(in.j) ? v__bits(v, members) : NULL;
    bool ok = v->fatal == 0;
    size_t kd = v->kdepth;
    for (uint32_t i = 0; i < n->kw_count && v->fatal == 0 && (ok || v->quiet == 0); i++) {
        const struct schema__kw *kw = &s->kws[n->kw_start + i];
        v__kpush(v, kw->name, kw->name_len, 0);
        ok &= v__kw(v, kw, in, eval, local);
        v->kdepth = kd;
    }
    v__reset(v, m);
    v->scope_depth = scope;
    v->eval_depth--;
    return ok && v->fatal == 0;
}

/* ---- the fast path ----
 *
 * Most instances are valid, and a valid instance needs no error, no path and no annotation
 * beyond those unevaluated* reads. So schema_validate() first runs this walk, which only proves
 * an instance valid: it stops at the first failing keyword, keeps no keyword or instance path,
 * walks an object's members once for properties, patternProperties, additionalProperties and
 * the "required" names among the properties, and follows a node that is only a $ref without a
 * frame of its own. When it returns false (the instance is invalid, or it gave up: $dynamicRef,
 * a bound, a regex error), the full walk above runs from the start and alone decides the verdict
 * and the errors. Hence: the fast path may say "not proven" wrongly at the cost of time, never
 * "valid" wrongly; the test suites check the second on every invalid case. Shared helpers
 * (scalar keywords, uniqueItems) run under v->quiet, so they keep no error. */

static bool f__node(struct schema_validator *v, uint32_t node, struct v_inst in, uint64_t *eval);

static bool f__stop(const struct schema_validator *v)
{
    return v->bail || v->fatal != 0;
}

static bool f__give_up(struct schema_validator *v)
{
    v->bail = true;
    return false;
}

/* A child at a member of the instance (its own annotations: eval is not passed down). */
static bool f__member(struct schema_validator *v, uint32_t node, const json_t *child)
{
    if (v->idepth >= SCHEMA_INSTANCE_DEPTH_MAX) {
        return f__give_up(v);
    }
    v->idepth++;
    bool ok = f__node(v, node, (struct v_inst){.j = child}, NULL);
    v->idepth--;
    return ok;
}

/* A child at the same location whose annotations count only when it succeeds (anyOf, oneOf,
 * the "if" condition): its own bitset, ORed into eval on success. */
static bool f__branch(struct schema_validator *v, uint32_t node, struct v_inst in, uint64_t *eval)
{
    if (eval == NULL) {
        return f__node(v, node, in, NULL);
    }
    struct v_mark m = v__mark(v);
    size_t n = v__members(in);
    uint64_t *mine = v__bits(v, n);
    bool ok = mine != NULL && f__node(v, node, in, mine);
    if (ok) {
        v__or(eval, mine, n);
    }
    v__reset(v, m);
    return ok;
}

/* properties, patternProperties and additionalProperties in one walk over the members;
 * *req_found counts the members that are names of the node's "required". */
static bool f__members(struct schema_validator *v, const struct schema__node *n, const json_t *o,
                       uint64_t *eval, size_t *req_found)
{
    const struct schema *s = v->s;
    const struct schema__kw *props = n->kw_props != SCHEMA__NONE ? &s->kws[n->kw_props] : NULL;
    const struct schema__kw *pp = n->kw_pprops != SCHEMA__NONE ? &s->kws[n->kw_pprops] : NULL;
    const struct schema__kw *addl = n->kw_addl != SCHEMA__NONE ? &s->kws[n->kw_addl] : NULL;
    size_t i = 0;
    /* jansson's members are separate allocations: an object much larger than the cache waits
     * for each one, so the next member is fetched while this one is validated (perf: half the
     * time of the large bench model went to that load). */
    void *at = json_object_iter((json_t *)o);
    void *next = at != NULL ? json_object_iter_next((json_t *)o, at) : NULL;
    for (; at != NULL; i++) {
        void *after = NULL;
        if (next != NULL) { /* fetched one member ago: its value and the member after it */
            __builtin_prefetch(json_object_iter_value(next));
            __builtin_prefetch(json_object_iter_key(next)); /* may be the member's next line */
            after = json_object_iter_next((json_t *)o, next);
            if (after != NULL) {
                __builtin_prefetch(after);
            }
        }
        const char *key = json_object_iter_key(at);
        size_t key_len = json_object_iter_key_len(at);
        json_t *m = json_object_iter_value(at);
        at = next;
        next = after;
        bool seen = false;
        const struct schema__item *it =
            props != NULL ? schema__prop_find(s, props, key, key_len) : NULL;
        if (it != NULL) {
            seen = true;
            *req_found += it->required ? 1u : 0u;
            if (!f__member(v, it->node, m)) {
                return false;
            }
        }
        for (uint32_t p = 0; pp != NULL && p < pp->item_count; p++) {
            const struct schema__item *pit = &s->items[pp->item_start + p];
            int r = schema__regex_match(pit->re, v->md, v->mc, key, key_len);
            if (r < 0) {
                return f__give_up(v);
            }
            if (r == 1) {
                seen = true;
                if (!f__member(v, pit->node, m)) {
                    return false;
                }
            }
        }
        if (!seen && addl != NULL) {
            seen = true;
            if (!f__member(v, addl->a, m)) {
                return false;
            }
        }
        if (seen) {
            v__set(eval, i);
        }
    }
    return true;
}

static bool f__object_kw(struct schema_validator *v, const struct schema__kw *kw, const json_t *o,
                         uint64_t *eval, size_t req_found)
{
    switch (kw->kind) {
    case SK_PROPERTIES:
    case SK_PATTERN_PROPERTIES:
    case SK_ADDITIONAL_PROPERTIES:
        return true; /* f__members did them */
    case SK_REQUIRED:
        if (kw->b == 1) {
            return req_found == (size_t)kw->i;
        }
        return v__object_kw(v, kw, o, eval, NULL);
    case SK_UNEVALUATED_PROPERTIES:
    case SK_PROPERTY_NAMES: {
        if (kw->kind == SK_UNEVALUATED_PROPERTIES && v__all_set(eval, json_object_size(o))) {
            return true; /* every member was evaluated: no second walk over them */
        }
        size_t i = 0;
        for (void *at = json_object_iter((json_t *)o); at != NULL;
             at = json_object_iter_next((json_t *)o, at), i++) {
            if (kw->kind == SK_PROPERTY_NAMES) {
                struct v_name name = {.s = json_object_iter_key(at),
                                      .len = json_object_iter_key_len(at)};
                if (!f__node(v, kw->a, (struct v_inst){.name = &name}, NULL)) {
                    return false;
                }
            } else if (eval == NULL || !v__get(eval, i)) {
                if (!f__member(v, kw->a, json_object_iter_value(at))) {
                    return false;
                }
                v__set(eval, i);
            }
        }
        return true;
    }
    default:
        return v__object_kw(v, kw, o, eval, NULL); /* counts, dependentRequired */
    }
}

static bool f__array_kw(struct schema_validator *v, const struct schema__kw *kw, const json_t *a,
                        uint64_t *eval)
{
    size_t n = json_array_size(a);
    switch (kw->kind) {
    case SK_PREFIX_ITEMS:
        for (size_t i = 0; i < n && i < kw->item_count; i++) {
            if (!f__member(v, v->s->items[kw->item_start + i].node, json_array_get(a, i))) {
                return false;
            }
            v__set(eval, i);
        }
        return true;
    case SK_ITEMS:
    case SK_UNEVALUATED_ITEMS:
        for (size_t i = kw->kind == SK_ITEMS ? kw->b : 0; i < n; i++) {
            if (kw->kind == SK_UNEVALUATED_ITEMS && eval != NULL && v__get(eval, i)) {
                continue;
            }
            if (!f__member(v, kw->a, json_array_get(a, i))) {
                return false;
            }
            v__set(eval, i);
        }
        return true;
    case SK_CONTAINS: {
        json_int_t count = 0;
        for (size_t i = 0; i < n && !f__stop(v); i++) {
            if (f__member(v, kw->a, json_array_get(a, i))) {
                count++;
                v__set(eval, i);
            }
        }
        return count >= kw->i && (kw->i2 < 0 || count <= kw->i2);
    }
    default:
        return v__array_kw(v, kw, a, eval); /* counts, uniqueItems */
    }
}

static bool f__any_one(struct schema_validator *v, const struct schema__kw *kw, struct v_inst in,
                       uint64_t *eval)
{
    size_t passed = 0;
    for (uint32_t i = 0; i < kw->item_count && !f__stop(v); i++) {
        if (f__branch(v, v->s->items[kw->item_start + i].node, in, eval)) {
            passed++;
            if (kw->kind == SK_ANY_OF && eval == NULL) {
                return true; /* no annotations wanted: the first success decides */
            }
            if (kw->kind == SK_ONE_OF && passed > 1) {
                return false;
            }
        }
    }
    return passed > 0 && (kw->kind == SK_ANY_OF || passed == 1);
}

/* Bounds and lengths without v__scalar_kw's call and error text; the rest through it. The
 * caller's "applies" check makes the instance a number for the bounds. */
static bool f__scalar_kw(struct schema_validator *v, const struct schema__kw *kw, struct v_inst in)
{
    const char *s = NULL;
    size_t len = 0;
    switch (kw->kind) {
    case SK_MAXIMUM:
        return v__cmp_num(in.j, kw) <= 0;
    case SK_EXCL_MAXIMUM:
        return v__cmp_num(in.j, kw) < 0;
    case SK_MINIMUM:
        return v__cmp_num(in.j, kw) >= 0;
    case SK_EXCL_MINIMUM:
        return v__cmp_num(in.j, kw) > 0;
    case SK_MAX_LENGTH:
        return !v__str(in, &s, &len) || (json_int_t)len <= kw->i ||
               (json_int_t)schema__utf8_len(s, len) <= kw->i;
    case SK_MIN_LENGTH:
        return !v__str(in, &s, &len) || (json_int_t)((len + 3) / 4) >= kw->i ||
               (json_int_t)schema__utf8_len(s, len) >= kw->i;
    default:
        return v__scalar_kw(v, kw, in);
    }
}

/* The in-place applicators pass eval straight down: a child that fails makes this node fail,
 * and a failed node's annotations are dropped by whoever evaluated it (f__branch), so they never
 * need a bitset of their own. */
static bool f__kw(struct schema_validator *v, const struct schema__kw *kw, struct v_inst in,
                  uint64_t *eval, size_t req_found)
{
    const json_t *j = in.j;
    switch (kw->kind) {
    case SK_TYPE:
    case SK_ENUM:
    case SK_CONST:
        return v__kw(v, kw, in, NULL, NULL);
    case SK_REF:
        return f__node(v, kw->a, in, eval);
    case SK_DYNAMIC_REF:
        return f__give_up(v); /* the dynamic scope is the full walk's */
    case SK_ALL_OF:
        for (uint32_t i = 0; i < kw->item_count; i++) {
            if (!f__node(v, v->s->items[kw->item_start + i].node, in, eval)) {
                return false;
            }
        }
        return true;
    case SK_ANY_OF:
    case SK_ONE_OF:
        return f__any_one(v, kw, in, eval);
    case SK_NOT:
        return !f__node(v, kw->a, in, NULL) && !f__stop(v);
    case SK_IF: {
        bool cond = f__branch(v, kw->a, in, eval);
        uint32_t next = cond ? kw->b : kw->c;
        return !f__stop(v) && (next == SCHEMA__NONE || f__node(v, next, in, eval));
    }
    case SK_DEPENDENT_SCHEMAS:
        for (uint32_t p = 0; j != NULL && json_is_object(j) && p < kw->item_count; p++) {
            const struct schema__item *it = &v->s->items[kw->item_start + p];
            if (json_object_getn(j, it->key, it->key_len) != NULL &&
                !f__node(v, it->node, in, eval)) {
                return false;
            }
        }
        return true;
    default:
        break;
    }
    if (j != NULL && json_is_array(j)) {
        return f__array_kw(v, kw, j, eval);
    }
    if (j != NULL && json_is_object(j)) {
        return f__object_kw(v, kw, j, eval, req_found);
    }
    return f__scalar_kw(v, kw, in);
}

/* The instance's type as schema__kw.applies counts it (every number is ST_NUMBER). */
static uint32_t f__itype(struct v_inst in)
{
    if (in.j == NULL) {
        return ST_STRING;
    }
    switch (json_typeof(in.j)) {
    case JSON_OBJECT:
        return ST_OBJECT;
    case JSON_ARRAY:
        return ST_ARRAY;
    case JSON_STRING:
        return ST_STRING;
    case JSON_INTEGER:
    case JSON_REAL:
        return ST_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return ST_BOOLEAN;
    default:
        return ST_NULL;
    }
}

/* The "type" keyword of a node (as v__kw's SK_TYPE), without a call for the common cases. */
static bool f__type_ok(uint32_t types, uint32_t itype, struct v_inst in)
{
    if ((types & itype) != 0) {
        return true;
    }
    return itype == ST_NUMBER && (types & ST_INTEGER) != 0 && schema__is_integer(in.j);
}

/* The keywords of node n (its "type" passed) on in. */
static bool f__keywords(struct schema_validator *v, const struct schema__node *n, struct v_inst in,
                        uint32_t itype, uint64_t *eval)
{
    /* A give-up (v->bail, v->fatal) need not stop the walk at once: every later node gives up
     * too (the step count stays over its bound) and v__fast turns the verdict into "not proven",
     * so a wrong "true" on the way (a branch that gave up counted as failed) never escapes. */
    bool ok = true;
    size_t req_found = 0;
    if (n->has_members && itype == ST_OBJECT) {
        ok = f__members(v, n, in.j, eval, &req_found);
    }
    for (uint32_t i = 0; i < n->kw_count && ok; i++) {
        const struct schema__kw *kw = &v->s->kws[n->kw_start + i];
        if ((kw->applies & itype) != 0) {
            ok = f__kw(v, kw, in, eval, req_found);
        }
    }
    return ok;
}

/* A node with unevaluated*: it sees only its own subschema's annotations, so a bitset of its
 * own, ORed into the caller's on success. */
static bool f__node_annotated(struct schema_validator *v, const struct schema__node *n,
                              struct v_inst in, uint32_t itype, uint64_t *outer)
{
    LMQ_ASSERT(n->has_unevaluated);
    struct v_mark m = v__mark(v);
    size_t members = v__members(in);
    uint64_t *eval = members > 0 ? v__bits(v, members) : NULL;
    bool ok = f__keywords(v, n, in, itype, eval);
    if (ok && outer != NULL) {
        v__or(outer, eval, members);
    }
    v__reset(v, m);
    return ok;
}

static bool f__node(struct schema_validator *v, uint32_t node, struct v_inst in, uint64_t *eval)
{
    const struct schema *s = v->s;
    const struct schema__node *n = &s->nodes[node];
    /* A node that is only a $ref: on to its target without a frame (each hop still counts as a
     * step and as a level of depth, as in the full walk). */
    size_t hops = 0;
    for (;;) {
        if (n->boolean >= 0) {
            return n->boolean == 1;
        }
        if (++v->steps > V_FAST_STEPS_MAX || v->eval_depth + hops >= SCHEMA_EVAL_DEPTH_MAX) {
            return f__give_up(v);
        }
        if (n->ref_to == SCHEMA__NONE) {
            break;
        }
        n = &s->nodes[n->ref_to];
        hops++;
    }
    uint32_t itype = f__itype(in);
    if (n->has_type && !f__type_ok(n->types, itype, in)) {
        return false;
    }
    if ((n->applies & itype) == 0 && !(n->has_members && itype == ST_OBJECT)) {
        return true; /* e.g. {"type": "string"} on a string: nothing else to do */
    }
    v->eval_depth++;
    bool ok = n->has_unevaluated ? f__node_annotated(v, n, in, itype, eval)
                                 : f__keywords(v, n, in, itype, eval);
    v->eval_depth--;
    return ok;
}

/* One validation: the fast path, then (when it did not prove the instance valid) the full walk
 * from a clean state. */
static void v__begin(struct schema_validator *v)
{
    v->idepth = 0;
    v->kdepth = 0;
    v->scope_depth = 0;
    v->eval_depth = 0;
    v->steps = 0;
    v->quiet = 0;
    v->fatal = 0;
    v->bail = false;
    v->cur = 0;
    v->top = 0;
    v->out->error_count = 0;
}

/* The fast path on instance: 1 proven valid, 0 not proven (invalid, or the full walk must say
 * why), SCHEMA__FAST_GAVE_UP when it gave up ($dynamicRef, a bound, a regex error). */
static int v__fast(struct schema_validator *v, const json_t *instance, struct schema_result *out)
{
    v->out = out;
    v__begin(v);
    v->quiet = 1;
    bool ok = f__node(v, v->s->root, (struct v_inst){.j = instance}, NULL);
    LMQ_ASSERT(v->quiet == 1 && v->idepth == 0);
    return f__stop(v) ? SCHEMA__FAST_GAVE_UP : ok ? 1 : 0;
}

/* The full walk from a clean state: the verdict, the errors, and what schema_validate returns. */
static int v__full(struct schema_validator *v, const json_t *instance, struct schema_result *out)
{
    v->out = out;
    v__begin(v);
    bool ok = v__node(v, v->s->root, (struct v_inst){.j = instance}, NULL);
    LMQ_ASSERT(v->quiet == 0 && v->idepth == 0);
    out->valid = ok && v->fatal == 0;
    if (!out->valid && out->error_count == 0 && v->fatal == 0) {
        v__error(v, NULL, "invalid");
    }
    return v->fatal;
}

/* After a validation: a huge instance's blocks are not kept. */
static void v__end(struct schema_validator *v)
{
    v->out = NULL;
    for (size_t i = 0; i < v->block_count; i++) {
        if (v->blocks[i].cap > V_BLOCK_KEEP_WORDS) {
            free(v->blocks[i].words);
            v->blocks[i] = (struct v_block){0};
        }
    }
}

int schema__validate_fast(struct schema_validator *v, const json_t *instance)
{
    LMQ_ASSERT(v != NULL && instance != NULL);
    struct schema_result scratch;
    int rc = v__fast(v, instance, &scratch);
    v__end(v);
    return rc;
}

int schema__validate_full(struct schema_validator *v, const json_t *instance,
                          struct schema_result *out)
{
    LMQ_ASSERT(v != NULL && instance != NULL && out != NULL);
    out->valid = false;
    int rc = v__full(v, instance, out);
    v__end(v);
    return rc;
}

int schema_validate(struct schema_validator *v, const json_t *instance, struct schema_result *out)
{
    LMQ_ASSERT(v != NULL && instance != NULL && out != NULL);
    out->valid = false;
    int rc = 0;
    if (v__fast(v, instance, out) == 1) {
        out->valid = true;
        out->error_count = 0;
    } else {
        rc = v__full(v, instance, out);
    }
    v__end(v);
    LMQ_ASSERT(rc != 0 || out->valid == (out->error_count == 0));
    return rc;
}
