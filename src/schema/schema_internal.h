/* Internal structures of the schema module (compile and validate share them). */
#ifndef LMQ_SCHEMA_INTERNAL_H
#define LMQ_SCHEMA_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/map.h"
#include "schema/schema.h"

#define SCHEMA__NONE UINT32_MAX

enum schema__kind {
    SK_TYPE,
    SK_ENUM,
    SK_CONST,
    SK_MULTIPLE_OF,
    SK_MAXIMUM,
    SK_EXCL_MAXIMUM,
    SK_MINIMUM,
    SK_EXCL_MINIMUM,
    SK_MAX_LENGTH,
    SK_MIN_LENGTH,
    SK_PATTERN,
    SK_MAX_ITEMS,
    SK_MIN_ITEMS,
    SK_UNIQUE_ITEMS,
    SK_MAX_PROPERTIES,
    SK_MIN_PROPERTIES,
    SK_REQUIRED,
    SK_DEPENDENT_REQUIRED, /* items: key + list (value: array of names) */
    SK_FORMAT,
    SK_REF,
    SK_DYNAMIC_REF,
    SK_ALL_OF,
    SK_ANY_OF,
    SK_ONE_OF,
    SK_NOT,
    SK_IF, /* a = if, b = then, c = else (SCHEMA__NONE when absent) */
    SK_DEPENDENT_SCHEMAS,
    SK_PREFIX_ITEMS, /* also draft-7 array "items" */
    SK_ITEMS,        /* also draft-7 "additionalItems" (b = number of prefix items) */
    SK_CONTAINS,     /* a = node, min/max contains in n1/n2 */
    SK_PROPERTIES,
    SK_PATTERN_PROPERTIES,
    SK_ADDITIONAL_PROPERTIES,
    SK_PROPERTY_NAMES,
    SK_UNEVALUATED_ITEMS,
    SK_UNEVALUATED_PROPERTIES,
};

/* One entry of a keyword's list: a property name, a regex or just a node. */
struct schema__item {
    const char *key; /* property name or regex source (in the schema document) */
    size_t key_len;
    uint32_t node;
    pcre2_code *re;      /* patternProperties */
    const json_t *value; /* dependentRequired: the array of names */
    uint32_t hash;       /* properties: schema__key_hash(key) */
    bool required;       /* properties: the node's "required" names this property */
};

struct schema__kw {
    enum schema__kind kind;
    /* The instance types (schema__type bits; ST_NUMBER for every number) on which the fast path
     * has work to do for this keyword: 0 for "type" (the node checks it) and for properties,
     * patternProperties and additionalProperties (one walk of the members does them). */
    uint8_t applies;
    const char *name; /* the keyword as written: the keyword location's last segment */
    size_t name_len;
    const json_t *value;
    uint32_t a, b, c; /* child nodes or counts, by kind */
    uint32_t item_start, item_count;
    double n;     /* numeric bound */
    json_int_t i; /* integer bound (lengths, counts) */
    json_int_t i2;
    uint32_t types; /* SK_TYPE: bit set of schema__type */
    pcre2_code *re; /* SK_PATTERN */
    int format;     /* SK_FORMAT: schema__format */
    /* SK_PROPERTIES: open-addressing table by schema__key_hash, ptab_mask + 1 slots, at most
     * half full (owned); a slot is the hash << 32 | item offset + 1, 0 when empty, so a probe
     * reads one word before it reads an item. */
    uint64_t *ptab;
    uint32_t ptab_mask;
};

struct schema__node {
    const json_t *json;
    uint32_t kw_start, kw_count;
    uint32_t resource; /* index into resources: the dynamic scope */
    int8_t boolean;    /* -1: an object schema; 0/1: false/true */
    bool compiled;
    bool has_unevaluated; /* needs annotations of in-place children */
    bool has_additional;  /* additionalProperties: needs the properties it does not cover */
    /* The node's properties / patternProperties / additionalProperties keywords (index into kws,
     * SCHEMA__NONE when absent): the fast path walks an object's members once for all three. */
    uint32_t kw_props, kw_pprops, kw_addl;
    uint32_t types; /* has_type: the "type" keyword's schema__type bits */
    bool has_type;
    bool has_members; /* one of kw_props, kw_pprops, kw_addl */
    uint8_t applies;  /* the union of its keywords' schema__kw.applies */
    uint32_t ref_to;  /* the node is only a "$ref" to this node; else SCHEMA__NONE */
};

struct schema__resource {
    char *uri; /* absolute, no fragment */
    const json_t *root;
    int draft; /* enum schema_draft */
};

struct schema {
    json_t **docs; /* references held */
    size_t doc_count;
    struct schema__node *nodes;
    size_t node_count;
    struct schema__kw *kws;
    size_t kw_count;
    struct schema__item *items;
    size_t item_count;
    struct schema__resource *resources;
    size_t resource_count;
    struct lmq_map *dyn_map; /* schema__anchor_key(resource, name) -> node + 1 */
    uint32_t root;
    int draft;
    bool assert_formats;
};

enum schema__type {
    ST_NULL = 1u << 0,
    ST_BOOLEAN = 1u << 1,
    ST_OBJECT = 1u << 2,
    ST_ARRAY = 1u << 3,
    ST_NUMBER = 1u << 4,
    ST_STRING = 1u << 5,
    ST_INTEGER = 1u << 6,
};

enum schema__format {
    SF_NONE = 0,
    SF_DATE_TIME,
    SF_DATE,
    SF_TIME,
    SF_EMAIL,
    SF_HOSTNAME,
    SF_IPV4,
    SF_IPV6,
    SF_URI,
    SF_URI_REFERENCE,
    SF_UUID,
    SF_JSON_POINTER,
    SF_RELATIVE_JSON_POINTER,
    SF_REGEX,
    SF_DURATION,
    SF_IRI,
    SF_IRI_REFERENCE,
    SF_URI_TEMPLATE,
    SF_IDN_EMAIL,
};

/* The key of (resource, anchor name) in dyn_map and the compiler's anchor map: the resource's
 * 4 bytes then the name, into key (4 + SCHEMA_ANCHOR_MAX_BYTES); returns its length. */
static inline size_t schema__anchor_key(uint32_t resource, const char *name, uint8_t *key)
{
    size_t n = strnlen(name, SCHEMA_ANCHOR_MAX_BYTES);
    memcpy(key, &resource, 4);
    memcpy(key + 4, name, n);
    return 4 + n;
}

/* The bytes [p, p + n), n <= 8, in one word that differs when they differ (overlapping loads,
 * no byte loop; the positions depend only on n). */
static inline uint64_t schema__tail_word(const char *p, size_t n)
{
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return ((uint64_t)hi << 32) | lo;
    }
    if (n > 0) {
        return (uint64_t)(uint8_t)p[0] | (uint64_t)(uint8_t)p[n / 2] << 8 |
               (uint64_t)(uint8_t)p[n - 1] << 16;
    }
    return 0;
}

/* A property name's hash for the properties table, eight bytes per multiply (a byte-at-a-time
 * hash was a tenth of the small bench model's time). The table is built at compile time and
 * probed with the instance's names: a collision costs a probe, never a wrong answer. */
static inline uint32_t schema__key_hash(const char *key, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len;
    size_t i = 0;
    for (; i + 8 < len; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 29;
    }
    h = (h ^ schema__tail_word(key + i, len - i)) * 0xFF51AFD7ED558CCDull;
    return (uint32_t)(h >> 32); /* a product's high bits are its well-mixed ones */
}

/* memcmp(a, b, len) == 0 without a library call (property names are short). */
static inline bool schema__bytes_equal(const char *a, const char *b, size_t len)
{
    size_t i = 0;
    for (; i + 8 < len; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) {
            return false;
        }
    }
    return schema__tail_word(a + i, len - i) == schema__tail_word(b + i, len - i);
}

/* The item of properties keyword kw named key, or NULL. Inlined: as a call, its register
 * saves and restores were a fifth of its cost. */
__attribute__((always_inline)) static inline const struct schema__item *
schema__prop_find(const struct schema *s, const struct schema__kw *kw, const char *key, size_t len)
{
    uint32_t h = schema__key_hash(key, len);
    /* The table is at most half full: the probe ends at an empty slot within mask + 1 steps. */
    for (uint32_t k = 0, at = h & kw->ptab_mask; k <= kw->ptab_mask;
         k++, at = (at + 1) & kw->ptab_mask) {
        uint64_t slot = kw->ptab[at];
        if (slot == 0) {
            return NULL;
        }
        if ((uint32_t)(slot >> 32) != h) {
            continue;
        }
        const struct schema__item *it = &s->items[kw->item_start + (uint32_t)slot - 1];
        if (it->key_len == len && schema__bytes_equal(it->key, key, len)) {
            return it;
        }
    }
    return NULL;
}

/* schema_validate.c: the two walks schema_validate() combines, each alone, so tests and the
 * fuzz target can hold one against the other. */
#define SCHEMA__FAST_GAVE_UP (-1)
/* The fast path: 1 when it proves instance valid, 0 when not (invalid), SCHEMA__FAST_GAVE_UP
 * when it gave up ($dynamicRef, a bound, a regex error): it never returns 1 for an instance the
 * full walk finds invalid, and returns 0 only for one it finds invalid. */
int schema__validate_fast(struct schema_validator *v, const json_t *instance);
/* The full walk alone: what schema_validate() returns when the fast path does not prove the
 * instance valid. */
int schema__validate_full(struct schema_validator *v, const json_t *instance,
                          struct schema_result *out);

/* schema_uri.c */
/* Resolves ref against base (RFC 3986 section 5.2) into a new string. NULL on ENOMEM. */
char *schema__uri_resolve(const char *base, const char *ref);
/* Length of uri without its fragment. */
size_t schema__uri_nofrag_len(const char *uri);
/* Percent-decodes [s, s+len) into out (cap bytes, NUL-terminated). -1 when invalid/too long. */
int schema__pct_decode(const char *s, size_t len, char *out, size_t cap);
/* Follows a JSON Pointer (already percent-decoded) from root; NULL when it does not resolve. */
const json_t *schema__pointer_get(const json_t *root, const char *ptr);

/* schema_json.c */
bool schema__is_integer(const json_t *v);
double schema__number(const json_t *v);
uint64_t schema__hash(const json_t *v);
size_t schema__utf8_len(const char *s, size_t len);

/* schema_regex.c */
/* Compiles an ECMA-262 pattern; NULL with err filled when PCRE2 refuses it. */
pcre2_code *schema__regex_compile(const char *src, size_t len, char *err, size_t err_len);
/* 1 match, 0 no match, LMQ_ELIMIT the match/depth limit, LMQ_EINVAL other errors. */
int schema__regex_match(const pcre2_code *re, pcre2_match_data *md, pcre2_match_context *mc,
                        const char *s, size_t len);

/* schema_format.c */
int schema__format_lookup(const char *name);
bool schema__format_check(int format, const char *s, size_t len);

/* schema_meta.c (generated): the built-in meta-schemas. */
struct schema__builtin {
    const char *uri;
    const char *text;
};
extern const struct schema__builtin schema__builtins[];
extern const size_t schema__builtin_count;

#endif
