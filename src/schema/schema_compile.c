/*
 * Compiling a schema: a pre-pass over each document (resources by $id, anchors, dynamic
 * anchors, which resource every subschema belongs to), then a worklist that turns each reachable
 * subschema into a node of keywords, resolving $ref/$dynamicRef to node indices. The worklist
 * (not recursion) follows references, so a chain of $refs costs no C stack; the pre-pass
 * recursion is bounded by SCHEMA_DEPTH_MAX.
 */
#include <math.h>
#include <string.h>

#include "schema/schema_internal.h"

#define CC_KW_PER_NODE_MAX 64u
#define CC_FRAG_MAX_BYTES 2048u
#define CC_NO_VALIDATION 1u
#define CC_ASSERT_FORMATS 2u

static const char cc__uri_2020[] = "https://json-schema.org/draft/2020-12/schema";
static const char cc__uri_7[] = "http://json-schema.org/draft-07/schema";
static const char cc__vocab_validation[] = "https://json-schema.org/draft/2020-12/vocab/validation";
static const char cc__vocab_format[] =
    "https://json-schema.org/draft/2020-12/vocab/format-assertion";

struct schema_registry {
    char *uris[SCHEMA_REGISTRY_MAX];
    json_t *docs[SCHEMA_REGISTRY_MAX];
    size_t count;
    json_t *builtins[16];   /* parsed on first use */
    struct schema *meta[3]; /* compiled meta-schemas by draft, on first use */
};

/* What the pre-pass knows of one subschema (a json_t in a schema position). */
struct cc_slot {
    const json_t *json;
    uint32_t resource;
    uint32_t node;
};

struct cc_anchor {
    uint32_t resource;
    const char *name;
    const json_t *json;
    bool dynamic;
};

struct cc {
    struct schema *s;
    struct schema_registry *reg;
    const struct schema_options *opt;
    struct cc_slot *slots; /* open addressing by json_t pointer */
    size_t slot_cap, slot_count;
    struct cc_anchor *anchors;
    size_t anchor_count, anchor_cap;
    struct lmq_map *res_map;    /* resource URI -> index + 1 (the first one wins) */
    struct lmq_map *anchor_map; /* schema__anchor_key -> anchors index + 1 (the first wins) */
    uint32_t *work;
    size_t work_count, work_cap;
    uint8_t *res_flags; /* per resource: CC_NO_VALIDATION, CC_ASSERT_FORMATS (its meta-schema's
                           vocabularies) */
    bool registry_walked;
    char *err;
    size_t err_len;
};

static int cc__grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap == 0 ? 16 : *cap * 2;
    while (n < need) {
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (q == NULL) {
        return LMQ_ENOMEM;
    }
    memset((char *)q + *cap * elem, 0, (n - *cap) * elem);
    *p = q;
    *cap = n;
    return 0;
}

static size_t cc__hash_ptr(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)(x & (cap - 1));
}

static struct cc_slot *cc__slot_find(struct cc *cc, const json_t *j)
{
    if (cc->slot_cap == 0) {
        return NULL;
    }
    size_t i = cc__hash_ptr(j, cc->slot_cap);
    /* Probing ends at an empty slot: the table is at most half full. */
    while (cc->slots[i].json != NULL) {
        if (cc->slots[i].json == j) {
            return &cc->slots[i];
        }
        i = (i + 1) & (cc->slot_cap - 1);
    }
    return NULL;
}

/* The slot of j, created with resource when new. */
static int cc__slot_put(struct cc *cc, const json_t *j, uint32_t resource, struct cc_slot **out)
{
    struct cc_slot *found = cc__slot_find(cc, j);
    if (found != NULL) {
        *out = found;
        return 0;
    }
    if (cc->slot_count >= SCHEMA_NODES_MAX) {
        lmq_errf(cc->err, cc->err_len, "more than %u subschemas", SCHEMA_NODES_MAX);
        return LMQ_ELIMIT;
    }
    if ((cc->slot_count + 1) * 2 > cc->slot_cap) {
        size_t old_cap = cc->slot_cap;
        struct cc_slot *old = cc->slots;
        size_t cap = old_cap == 0 ? 256 : old_cap * 2;
        cc->slots = calloc(cap, sizeof(*cc->slots));
        if (cc->slots == NULL) {
            cc->slots = old;
            return LMQ_ENOMEM;
        }
        cc->slot_cap = cap;
        for (size_t k = 0; k < old_cap; k++) {
            if (old[k].json != NULL) {
                size_t i = cc__hash_ptr(old[k].json, cap);
                while (cc->slots[i].json != NULL) {
                    i = (i + 1) & (cap - 1);
                }
                cc->slots[i] = old[k];
            }
        }
        free(old);
    }
    size_t i = cc__hash_ptr(j, cc->slot_cap);
    while (cc->slots[i].json != NULL) {
        i = (i + 1) & (cc->slot_cap - 1);
    }
    cc->slots[i] = (struct cc_slot){.json = j, .resource = resource, .node = SCHEMA__NONE};
    cc->slot_count++;
    *out = &cc->slots[i];
    return 0;
}

static int cc__add_resource(struct cc *cc, const char *uri, size_t uri_len, const json_t *root,
                            int draft, uint32_t *out)
{
    struct schema *s = cc->s;
    if (s->resource_count >= SCHEMA_NODES_MAX) {
        return LMQ_ELIMIT;
    }
    /* Capacity: the next power of two above the count (grown when the count is one). */
    if ((s->resource_count & (s->resource_count - 1)) == 0) {
        size_t n = s->resource_count == 0 ? 8 : s->resource_count * 2;
        void *p = realloc(s->resources, n * sizeof(*s->resources));
        void *q = p != NULL ? realloc(cc->res_flags, n) : NULL;
        if (p == NULL || q == NULL) {
            if (p != NULL) {
                s->resources = p;
            }
            return LMQ_ENOMEM;
        }
        s->resources = p;
        cc->res_flags = q;
    }
    char *copy = strndup(uri, uri_len);
    if (copy == NULL) {
        return LMQ_ENOMEM;
    }
    if (lmq_map_get(cc->res_map, (const uint8_t *)uri, uri_len) == NULL &&
        lmq_map_put(cc->res_map, (const uint8_t *)uri, uri_len,
                    (void *)(uintptr_t)(s->resource_count + 1)) != 0) {
        free(copy);
        return LMQ_ENOMEM;
    }
    s->resources[s->resource_count] =
        (struct schema__resource){.uri = copy, .root = root, .draft = draft};
    cc->res_flags[s->resource_count] = 0;
    *out = (uint32_t)s->resource_count++;
    return 0;
}

static int cc__add_anchor(struct cc *cc, uint32_t res, const char *name, const json_t *j,
                          bool dynamic)
{
    if (strlen(name) > SCHEMA_ANCHOR_MAX_BYTES) {
        lmq_errf(cc->err, cc->err_len, "anchor name of %zu bytes (at most %u)", strlen(name),
                 SCHEMA_ANCHOR_MAX_BYTES);
        return LMQ_ELIMIT;
    }
    if (cc__grow((void **)&cc->anchors, &cc->anchor_cap, cc->anchor_count + 1,
                 sizeof(*cc->anchors)) != 0) {
        return LMQ_ENOMEM;
    }
    uint8_t key[4 + SCHEMA_ANCHOR_MAX_BYTES];
    size_t key_len = schema__anchor_key(res, name, key);
    if (lmq_map_get(cc->anchor_map, key, key_len) == NULL &&
        lmq_map_put(cc->anchor_map, key, key_len, (void *)(uintptr_t)(cc->anchor_count + 1)) != 0) {
        return LMQ_ENOMEM;
    }
    cc->anchors[cc->anchor_count++] =
        (struct cc_anchor){.resource = res, .name = name, .json = j, .dynamic = dynamic};
    return 0;
}

static int cc__walk(struct cc *cc, const json_t *j, uint32_t res, unsigned depth);

static int cc__walk_kids(struct cc *cc, const json_t *j, uint32_t res, unsigned depth)
{
    static const char *const single[] = {"additionalProperties",
                                         "additionalItems",
                                         "items",
                                         "not",
                                         "if",
                                         "then",
                                         "else",
                                         "contains",
                                         "propertyNames",
                                         "unevaluatedItems",
                                         "unevaluatedProperties"};
    static const char *const lists[] = {"allOf", "anyOf", "oneOf", "prefixItems", "items"};
    static const char *const maps[] = {"properties",  "patternProperties", "$defs",
                                       "definitions", "dependentSchemas",  "dependencies"};
    int rc = 0;
    for (size_t k = 0; k < LMQ_ARRAY_LEN(single) && rc == 0; k++) {
        const json_t *v = json_object_get(j, single[k]);
        if (v != NULL && (json_is_object(v) || json_is_boolean(v))) {
            rc = cc__walk(cc, v, res, depth + 1);
        }
    }
    for (size_t k = 0; k < LMQ_ARRAY_LEN(lists) && rc == 0; k++) {
        const json_t *v = json_object_get(j, lists[k]);
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v) && rc == 0; i++) {
            rc = cc__walk(cc, json_array_get(v, i), res, depth + 1);
        }
    }
    for (size_t k = 0; k < LMQ_ARRAY_LEN(maps) && rc == 0; k++) {
        const json_t *v = json_object_get(j, maps[k]);
        const char *key;
        json_t *m;
        if (!json_is_object(v)) {
            continue;
        }
        json_object_foreach((json_t *)v, key, m)
        {
            if (json_is_object(m) || json_is_boolean(m)) {
                rc = cc__walk(cc, m, res, depth + 1);
                if (rc != 0) {
                    break;
                }
            }
        }
    }
    return rc;
}

static int cc__find_resource(struct cc *cc, const char *uri, size_t len)
{
    uintptr_t v = (uintptr_t)lmq_map_get(cc->res_map, (const uint8_t *)uri, len);
    return v == 0 ? -1 : (int)(v - 1);
}

static int cc__draft_of_meta(const char *uri, int fallback)
{
    size_t n = schema__uri_nofrag_len(uri);
    if (n == strlen(cc__uri_2020) && strncmp(uri, cc__uri_2020, n) == 0) {
        return SCHEMA_DRAFT_2020_12;
    }
    if (n == strlen(cc__uri_7) && strncmp(uri, cc__uri_7, n) == 0) {
        return SCHEMA_DRAFT_7;
    }
    return fallback;
}

/* $id of j (a schema object of resource res): a new resource, or (draft 7) an anchor. */
static int cc__walk_id(struct cc *cc, const json_t *j, uint32_t *res)
{
    const json_t *id = json_object_get(j, "$id");
    int draft = cc->s->resources[*res].draft;
    if (!json_is_string(id) || (draft == SCHEMA_DRAFT_7 && json_object_get(j, "$ref") != NULL)) {
        return 0;
    }
    char *abs = schema__uri_resolve(cc->s->resources[*res].uri, json_string_value(id));
    if (abs == NULL) {
        lmq_errf(cc->err, cc->err_len, "$id \"%.100s\" is not a usable URI", json_string_value(id));
        return LMQ_EINVAL;
    }
    int rc = 0;
    size_t n = schema__uri_nofrag_len(abs);
    const char *frag = abs[n] == '#' ? abs + n + 1 : "";
    if (frag[0] != '\0' && draft != SCHEMA_DRAFT_7) {
        lmq_errf(cc->err, cc->err_len, "$id \"%.100s\" has a fragment", json_string_value(id));
        rc = LMQ_EINVAL;
        goto out;
    }
    bool same =
        strlen(cc->s->resources[*res].uri) == n && memcmp(cc->s->resources[*res].uri, abs, n) == 0;
    if (!same) {
        /* A new resource; at a document's root the retrieval URI stays as an alias. */
        uint32_t parent = *res;
        rc = cc__add_resource(cc, abs, n, j, draft, res);
        if (rc == 0) {
            /* An embedded resource may name its own dialect. */
            const json_t *sch = json_object_get(j, "$schema");
            cc->res_flags[*res] = cc->res_flags[parent];
            if (json_is_string(sch)) {
                cc->s->resources[*res].draft = cc__draft_of_meta(json_string_value(sch), draft);
            }
        }
    }
    if (rc == 0 && frag[0] != '\0') {
        /* draft 7: "#name" is a plain-name anchor; the name lives in the document ($id's
         * string), after its '#'. */
        const char *name = strchr(json_string_value(id), '#');
        if (name != NULL && name[1] != '/' && name[1] != '\0') {
            rc = cc__add_anchor(cc, *res, name + 1, j, false);
        }
    }
out:
    free(abs);
    return rc;
}

static int cc__walk(struct cc *cc, const json_t *j, uint32_t res, unsigned depth)
{
    if (depth > SCHEMA_DEPTH_MAX) {
        lmq_errf(cc->err, cc->err_len, "schema nested deeper than %u levels", SCHEMA_DEPTH_MAX);
        return LMQ_ELIMIT;
    }
    if (!json_is_object(j)) {
        struct cc_slot *slot = NULL;
        return json_is_boolean(j) ? cc__slot_put(cc, j, res, &slot) : 0;
    }
    int rc = cc__walk_id(cc, j, &res);
    if (rc != 0) {
        return rc;
    }
    int draft = cc->s->resources[res].draft;
    if (draft != SCHEMA_DRAFT_7) {
        const json_t *a = json_object_get(j, "$anchor");
        const json_t *d = json_object_get(j, "$dynamicAnchor");
        if (json_is_string(a)) {
            rc = cc__add_anchor(cc, res, json_string_value(a), j, false);
        }
        if (rc == 0 && json_is_string(d)) {
            rc = cc__add_anchor(cc, res, json_string_value(d), j, true);
        }
        if (rc != 0) {
            return rc;
        }
    }
    struct cc_slot *slot = NULL;
    rc = cc__slot_put(cc, j, res, &slot);
    return rc != 0 ? rc : cc__walk_kids(cc, j, res, depth);
}

static const json_t *cc__lookup_doc(struct cc *cc, const char *uri, size_t len);

/* Pre-pass of one document whose retrieval URI is uri. */
static int cc__add_document(struct cc *cc, const json_t *doc, const char *uri, size_t len,
                            int draft, uint32_t *out_res)
{
    const json_t *sch = json_is_object(doc) ? json_object_get(doc, "$schema") : NULL;
    uint8_t flags = 0;
    if (json_is_string(sch)) {
        draft = cc__draft_of_meta(json_string_value(sch), draft);
        /* A custom meta-schema: its $vocabulary says which vocabularies apply. */
        const char *m = json_string_value(sch);
        const json_t *meta = cc__lookup_doc(cc, m, schema__uri_nofrag_len(m));
        const json_t *vocab = meta != NULL ? json_object_get(meta, "$vocabulary") : NULL;
        if (json_is_object(vocab) && json_object_get(vocab, cc__vocab_validation) == NULL) {
            flags |= CC_NO_VALIDATION;
        }
        if (json_is_object(vocab) && json_object_get(vocab, cc__vocab_format) != NULL) {
            flags |= CC_ASSERT_FORMATS; /* known to us, so asserted even when optional */
        }
    }
    uint32_t res = 0;
    int rc = cc__add_resource(cc, uri, len, doc, draft, &res);
    if (rc == 0) {
        cc->res_flags[res] = flags;
        rc = cc__walk(cc, doc, res, 0);
    }
    *out_res = res;
    return rc;
}

/* A document by URI: the registry's, else a built-in meta-schema (parsed once). */
static const json_t *cc__lookup_doc(struct cc *cc, const char *uri, size_t len)
{
    struct schema_registry *reg = cc->reg;
    for (size_t i = 0; reg != NULL && i < reg->count; i++) {
        if (strlen(reg->uris[i]) == len && memcmp(reg->uris[i], uri, len) == 0) {
            return reg->docs[i];
        }
    }
    for (size_t i = 0; i < schema__builtin_count; i++) {
        const char *b = schema__builtins[i].uri;
        if (strlen(b) != len || memcmp(b, uri, len) != 0) {
            continue;
        }
        if (reg == NULL) {
            return NULL;
        }
        if (reg->builtins[i] == NULL) {
            json_error_t jerr;
            reg->builtins[i] = json_loads(schema__builtins[i].text, 0, &jerr);
            LMQ_ASSERT(reg->builtins[i] != NULL); /* built-in text is valid JSON */
        }
        return reg->builtins[i];
    }
    return NULL;
}

static int cc__hold(struct cc *cc, const json_t *doc)
{
    struct schema *s = cc->s;
    for (size_t i = 0; i < s->doc_count; i++) {
        if (s->docs[i] == doc) {
            return 0;
        }
    }
    json_t **d = realloc(s->docs, (s->doc_count + 1) * sizeof(*d));
    if (d == NULL) {
        return LMQ_ENOMEM;
    }
    s->docs = d;
    s->docs[s->doc_count++] = json_incref((json_t *)doc);
    return 0;
}

/* The resource for an absolute URI (no fragment), loading its document when needed. */
static int cc__resource(struct cc *cc, const char *uri, size_t len, int *out)
{
    *out = cc__find_resource(cc, uri, len);
    if (*out >= 0) {
        return 0;
    }
    const json_t *doc = cc__lookup_doc(cc, uri, len);
    if (doc != NULL) {
        uint32_t res = 0;
        int rc = cc__hold(cc, doc);
        rc = rc ? rc : cc__add_document(cc, doc, uri, len, cc->s->draft, &res);
        if (rc != 0) {
            return rc;
        }
        *out = cc__find_resource(cc, uri, len);
        return 0;
    }
    if (!cc->registry_walked && cc->reg != NULL) {
        /* An $id embedded in some registered document: walk them all once. */
        cc->registry_walked = true;
        for (size_t i = 0; i < cc->reg->count; i++) {
            const char *u = cc->reg->uris[i];
            if (cc__find_resource(cc, u, strlen(u)) >= 0) {
                continue;
            }
            uint32_t res = 0;
            int rc = cc__hold(cc, cc->reg->docs[i]);
            rc = rc ? rc : cc__add_document(cc, cc->reg->docs[i], u, strlen(u), cc->s->draft, &res);
            if (rc != 0) {
                return rc;
            }
        }
        *out = cc__find_resource(cc, uri, len);
    }
    return 0;
}

/* The node for subschema j (compiled later by the worklist). */
static int cc__node(struct cc *cc, const json_t *j, uint32_t res, uint32_t *out)
{
    struct cc_slot *slot = cc__slot_find(cc, j);
    if (slot == NULL) {
        /* Reached only by a JSON Pointer (e.g. into an unknown keyword): walk it now. */
        int rc = cc__walk(cc, j, res, 0);
        if (rc != 0) {
            return rc;
        }
        slot = cc__slot_find(cc, j);
        if (slot == NULL) {
            lmq_errf(cc->err, cc->err_len, "a subschema is neither an object nor a boolean");
            return LMQ_EINVAL;
        }
    }
    if (slot->node != SCHEMA__NONE) {
        *out = slot->node;
        return 0;
    }
    struct schema *s = cc->s;
    if (s->node_count >= SCHEMA_NODES_MAX) {
        lmq_errf(cc->err, cc->err_len, "more than %u subschemas", SCHEMA_NODES_MAX);
        return LMQ_ELIMIT;
    }
    size_t cap = s->node_count;
    size_t wcap = cc->work_cap;
    if ((cap & (cap - 1)) == 0) {
        struct schema__node *n = realloc(s->nodes, (cap == 0 ? 16 : cap * 2) * sizeof(*n));
        if (n == NULL) {
            return LMQ_ENOMEM;
        }
        s->nodes = n;
    }
    if (cc__grow((void **)&cc->work, &wcap, cc->work_count + 1, sizeof(*cc->work)) != 0) {
        return LMQ_ENOMEM;
    }
    cc->work_cap = wcap;
    uint32_t idx = (uint32_t)s->node_count++;
    s->nodes[idx] = (struct schema__node){
        .json = j, .resource = slot->resource, .boolean = -1, .compiled = false};
    slot->node = idx;
    cc->work[cc->work_count++] = idx;
    *out = idx;
    return 0;
}

/* Resolves a $ref value against resource res into a node (and, for $dynamicRef, whether the
 * target carries a $dynamicAnchor of the fragment's name). */
static int cc__ref(struct cc *cc, uint32_t res, const char *ref, uint32_t *out,
                   const char **dyn_name)
{
    char *abs = schema__uri_resolve(cc->s->resources[res].uri, ref);
    if (abs == NULL) {
        lmq_errf(cc->err, cc->err_len, "$ref \"%.100s\" is not a usable URI", ref);
        return LMQ_EINVAL;
    }
    int rc = 0;
    int r = -1;
    size_t n = schema__uri_nofrag_len(abs);
    char frag[CC_FRAG_MAX_BYTES];
    const char *f = abs[n] == '#' ? abs + n + 1 : "";
    const json_t *target = NULL;
    if (schema__pct_decode(f, strlen(f), frag, sizeof(frag)) != 0) {
        lmq_errf(cc->err, cc->err_len, "$ref \"%.100s\": bad fragment", ref);
        rc = LMQ_EINVAL;
        goto out;
    }
    rc = cc__resource(cc, abs, n, &r);
    if (rc != 0) {
        goto out;
    }
    if (r >= 0 && frag[0] == '\0') {
        target = cc->s->resources[r].root;
    } else if (r >= 0 && frag[0] == '/') {
        target = schema__pointer_get(cc->s->resources[r].root, frag);
    } else if (r >= 0) {
        uint8_t key[4 + SCHEMA_ANCHOR_MAX_BYTES];
        size_t key_len = schema__anchor_key((uint32_t)r, frag, key);
        uintptr_t a = strlen(frag) > SCHEMA_ANCHOR_MAX_BYTES
                          ? 0
                          : (uintptr_t)lmq_map_get(cc->anchor_map, key, key_len);
        if (a != 0) {
            target = cc->anchors[a - 1].json;
            if (dyn_name != NULL && cc->anchors[a - 1].dynamic) {
                *dyn_name = cc->anchors[a - 1].name;
            }
        }
    }
    if (target == NULL) {
        lmq_errf(cc->err, cc->err_len, "unresolvable $ref \"%.100s\" (%.200s)", ref, abs);
        rc = LMQ_EINVAL;
        goto out;
    }
    rc = cc__node(cc, target, (uint32_t)r, out);
out:
    free(abs);
    return rc;
}

/* ---- node bodies ---- */

struct cc_kwdef {
    const char *name;
    enum schema__kind kind;
    unsigned drafts; /* 1: 2020-12, 2: draft 7 */
    bool validation; /* in the validation vocabulary */
};

static const struct cc_kwdef cc__kwdefs[] = {
    {"type", SK_TYPE, 3, true},
    {"enum", SK_ENUM, 3, true},
    {"const", SK_CONST, 3, true},
    {"multipleOf", SK_MULTIPLE_OF, 3, true},
    {"maximum", SK_MAXIMUM, 3, true},
    {"exclusiveMaximum", SK_EXCL_MAXIMUM, 3, true},
    {"minimum", SK_MINIMUM, 3, true},
    {"exclusiveMinimum", SK_EXCL_MINIMUM, 3, true},
    {"maxLength", SK_MAX_LENGTH, 3, true},
    {"minLength", SK_MIN_LENGTH, 3, true},
    {"pattern", SK_PATTERN, 3, true},
    {"maxItems", SK_MAX_ITEMS, 3, true},
    {"minItems", SK_MIN_ITEMS, 3, true},
    {"uniqueItems", SK_UNIQUE_ITEMS, 3, true},
    {"maxProperties", SK_MAX_PROPERTIES, 3, true},
    {"minProperties", SK_MIN_PROPERTIES, 3, true},
    {"required", SK_REQUIRED, 3, true},
    {"dependentRequired", SK_DEPENDENT_REQUIRED, 1, true},
    {"format", SK_FORMAT, 3, false},
    {"$ref", SK_REF, 3, false},
    {"$dynamicRef", SK_DYNAMIC_REF, 1, false},
    {"allOf", SK_ALL_OF, 3, false},
    {"anyOf", SK_ANY_OF, 3, false},
    {"oneOf", SK_ONE_OF, 3, false},
    {"not", SK_NOT, 3, false},
    {"if", SK_IF, 3, false},
    {"dependentSchemas", SK_DEPENDENT_SCHEMAS, 1, false},
    {"dependencies", SK_DEPENDENT_SCHEMAS, 3, false}, /* 2020-12: kept for compatibility */
    {"prefixItems", SK_PREFIX_ITEMS, 1, false},
    {"items", SK_ITEMS, 3, false},
    {"additionalItems", SK_ITEMS, 2, false},
    {"contains", SK_CONTAINS, 3, false},
    {"properties", SK_PROPERTIES, 3, false},
    {"patternProperties", SK_PATTERN_PROPERTIES, 3, false},
    {"additionalProperties", SK_ADDITIONAL_PROPERTIES, 3, false},
    {"propertyNames", SK_PROPERTY_NAMES, 3, false},
    {"unevaluatedItems", SK_UNEVALUATED_ITEMS, 1, false},
    {"unevaluatedProperties", SK_UNEVALUATED_PROPERTIES, 1, false},
};

static int cc__bad(struct cc *cc, const char *kw, const char *why)
{
    lmq_errf(cc->err, cc->err_len, "\"%s\" %s", kw, why);
    return LMQ_EINVAL;
}

static int cc__item(struct cc *cc, struct schema__item it)
{
    struct schema *s = cc->s;
    size_t cap = s->item_count;
    if ((cap & (cap - 1)) == 0) {
        void *p = realloc(s->items, (cap == 0 ? 16 : cap * 2) * sizeof(*s->items));
        if (p == NULL) {
            return LMQ_ENOMEM;
        }
        s->items = p;
    }
    s->items[s->item_count++] = it;
    return 0;
}

/* A child subschema of node res at value v (object or boolean). */
static int cc__child(struct cc *cc, const char *kw, const json_t *v, uint32_t res, uint32_t *out)
{
    if (!json_is_object(v) && !json_is_boolean(v)) {
        return cc__bad(cc, kw, "must be a schema (object or boolean)");
    }
    return cc__node(cc, v, res, out);
}

static int cc__list(struct cc *cc, struct schema__kw *kw, const json_t *v, uint32_t res)
{
    if (!json_is_array(v) || (json_array_size(v) == 0 && kw->kind != SK_PREFIX_ITEMS)) {
        return cc__bad(cc, kw->name, "must be a non-empty array of schemas");
    }
    kw->item_start = (uint32_t)cc->s->item_count;
    for (size_t i = 0; i < json_array_size(v); i++) {
        struct schema__item it = {0};
        int rc = cc__child(cc, kw->name, json_array_get(v, i), res, &it.node);
        rc = rc ? rc : cc__item(cc, it);
        if (rc != 0) {
            return rc;
        }
    }
    kw->item_count = (uint32_t)json_array_size(v);
    return 0;
}

static int cc__count(struct cc *cc, struct schema__kw *kw, const json_t *v)
{
    if (!json_is_number(v) || !schema__is_integer(v) || schema__number(v) < 0) {
        return cc__bad(cc, kw->name, "must be a non-negative integer");
    }
    double d = schema__number(v);
    kw->i = d > 9e18 ? (json_int_t)9e18 : (json_int_t)d;
    return 0;
}

static int cc__type(struct cc *cc, struct schema__kw *kw, const json_t *v)
{
    static const char *const names[] = {"null",   "boolean", "object", "array",
                                        "number", "string",  "integer"};
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        size_t k = 0;
        while (k < LMQ_ARRAY_LEN(names) &&
               !(json_is_string(t) && strcmp(json_string_value(t), names[k]) == 0)) {
            k++;
        }
        if (k == LMQ_ARRAY_LEN(names)) {
            return cc__bad(cc, "type", "names an unknown type");
        }
        kw->types |= 1u << k;
    }
    return 0;
}

/* The lookup table of a compiled "properties" keyword (its items are in place). */
static int cc__ptab(struct cc *cc, struct schema__kw *kw)
{
    LMQ_ASSERT(kw->kind == SK_PROPERTIES && kw->ptab == NULL);
    size_t cap = 4;
    while (cap < (size_t)kw->item_count * 2) {
        cap *= 2;
    }
    kw->ptab = calloc(cap, sizeof(*kw->ptab));
    if (kw->ptab == NULL) {
        return LMQ_ENOMEM;
    }
    kw->ptab_mask = (uint32_t)(cap - 1);
    for (uint32_t i = 0; i < kw->item_count; i++) {
        uint32_t at = cc->s->items[kw->item_start + i].hash & kw->ptab_mask;
        while (kw->ptab[at] != 0) { /* at most half full: an empty slot is near */
            at = (at + 1) & kw->ptab_mask;
        }
        kw->ptab[at] = (uint64_t)cc->s->items[kw->item_start + i].hash << 32 | (i + 1);
    }
    LMQ_ASSERT(kw->item_count * 2u <= cap);
    return 0;
}

/* properties / patternProperties / dependentSchemas / dependentRequired / dependencies. */
static int cc__map(struct cc *cc, struct schema__kw *kw, const json_t *v, uint32_t res,
                   int only_arrays)
{
    if (!json_is_object(v)) {
        return cc__bad(cc, kw->name, "must be an object");
    }
    kw->item_start = (uint32_t)cc->s->item_count;
    const char *key;
    size_t key_len;
    json_t *m;
    int rc = 0;
    json_object_keylen_foreach((json_t *)v, key, key_len, m)
    {
        struct schema__item it = {.key = key, .key_len = key_len, .node = SCHEMA__NONE};
        if (only_arrays >= 0 && (json_is_array(m) != (only_arrays == 1))) {
            continue; /* draft-7 "dependencies": arrays and schemas go to two keywords */
        }
        if (json_is_array(m) && only_arrays != 1) {
            return cc__bad(cc, kw->name, "values must be schemas");
        }
        if (json_is_array(m)) {
            for (size_t i = 0; i < json_array_size(m); i++) {
                if (!json_is_string(json_array_get(m, i))) {
                    return cc__bad(cc, kw->name, "lists must hold strings");
                }
            }
            it.value = m;
        } else {
            rc = cc__child(cc, kw->name, m, res, &it.node);
        }
        if (rc == 0 && kw->kind == SK_PATTERN_PROPERTIES) {
            it.re = schema__regex_compile(key, key_len, cc->err, cc->err_len);
            rc = it.re == NULL ? LMQ_EINVAL : 0;
        }
        it.hash = schema__key_hash(key, key_len);
        rc = rc ? rc : cc__item(cc, it);
        if (rc != 0) {
            if (it.re != NULL && cc->s->items[cc->s->item_count - 1].re != it.re) {
                pcre2_code_free(it.re);
            }
            return rc;
        }
        kw->item_count++;
    }
    return kw->kind == SK_PROPERTIES ? cc__ptab(cc, kw) : 0;
}

/* The keyword k of node j into kw; *skip when it compiles to nothing. */
static int cc__keyword(struct cc *cc, const json_t *j, uint32_t res, const struct cc_kwdef *d,
                       const json_t *v, struct schema__kw *kw, bool *skip)
{
    int draft = cc->s->resources[res].draft;
    kw->kind = d->kind;
    kw->name = d->name;
    kw->name_len = strlen(d->name);
    kw->value = v;
    kw->a = kw->b = kw->c = SCHEMA__NONE;
    switch (d->kind) {
    case SK_TYPE:
        return cc__type(cc, kw, v);
    case SK_ENUM:
        if (!json_is_array(v)) {
            return cc__bad(cc, "enum", "must be an array");
        }
        if (json_array_size(v) > SCHEMA_ENUM_MAX) {
            lmq_errf(cc->err, cc->err_len, "\"enum\" of %zu values (at most %u)",
                     json_array_size(v), SCHEMA_ENUM_MAX);
            return LMQ_ELIMIT;
        }
        return 0;
    case SK_CONST:
        return 0;
    case SK_MULTIPLE_OF:
        if (!json_is_number(v) || !(schema__number(v) > 0)) {
            return cc__bad(cc, d->name, "must be a number greater than 0");
        }
        kw->n = schema__number(v);
        return 0;
    case SK_MAXIMUM:
    case SK_EXCL_MAXIMUM:
    case SK_MINIMUM:
    case SK_EXCL_MINIMUM:
        if (!json_is_number(v)) {
            return cc__bad(cc, d->name, "must be a number");
        }
        kw->n = schema__number(v);
        return 0;
    case SK_MAX_LENGTH:
    case SK_MIN_LENGTH:
    case SK_MAX_ITEMS:
    case SK_MIN_ITEMS:
    case SK_MAX_PROPERTIES:
    case SK_MIN_PROPERTIES:
        return cc__count(cc, kw, v);
    case SK_PATTERN:
        if (!json_is_string(v)) {
            return cc__bad(cc, d->name, "must be a string");
        }
        kw->re = schema__regex_compile(json_string_value(v), json_string_length(v), cc->err,
                                       cc->err_len);
        return kw->re == NULL ? LMQ_EINVAL : 0;
    case SK_UNIQUE_ITEMS:
        if (!json_is_boolean(v)) {
            return cc__bad(cc, d->name, "must be a boolean");
        }
        *skip = !json_is_true(v);
        return 0;
    case SK_REQUIRED:
        if (!json_is_array(v)) {
            return cc__bad(cc, d->name, "must be an array of strings");
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (!json_is_string(json_array_get(v, i))) {
                return cc__bad(cc, d->name, "must be an array of strings");
            }
        }
        return 0;
    case SK_DEPENDENT_REQUIRED:
        return cc__map(cc, kw, v, res, 1);
    case SK_FORMAT:
        kw->format = json_is_string(v) ? schema__format_lookup(json_string_value(v)) : SF_NONE;
        *skip = kw->format == SF_NONE ||
                !(cc->s->assert_formats || (cc->res_flags[res] & CC_ASSERT_FORMATS));
        return 0;
    case SK_REF:
    case SK_DYNAMIC_REF: {
        if (!json_is_string(v)) {
            return cc__bad(cc, d->name, "must be a string");
        }
        const char *dyn = NULL;
        int rc =
            cc__ref(cc, res, json_string_value(v), &kw->a, d->kind == SK_DYNAMIC_REF ? &dyn : NULL);
        if (rc == 0 && dyn != NULL) {
            kw->item_start = (uint32_t)cc->s->item_count;
            kw->item_count = 1;
            rc = cc__item(cc, (struct schema__item){.key = dyn, .key_len = strlen(dyn)});
        }
        return rc;
    }
    case SK_ALL_OF:
    case SK_ANY_OF:
    case SK_ONE_OF:
    case SK_PREFIX_ITEMS:
        return cc__list(cc, kw, v, res);
    case SK_NOT:
    case SK_PROPERTY_NAMES:
    case SK_ADDITIONAL_PROPERTIES:
    case SK_UNEVALUATED_ITEMS:
    case SK_UNEVALUATED_PROPERTIES:
        return cc__child(cc, d->name, v, res, &kw->a);
    case SK_IF: {
        const json_t *t = json_object_get(j, "then");
        const json_t *e = json_object_get(j, "else");
        int rc = cc__child(cc, "if", v, res, &kw->a);
        rc = rc == 0 && t != NULL ? cc__child(cc, "then", t, res, &kw->b) : rc;
        rc = rc == 0 && e != NULL ? cc__child(cc, "else", e, res, &kw->c) : rc;
        return rc;
    }
    case SK_DEPENDENT_SCHEMAS:
        return cc__map(cc, kw, v, res, strcmp(d->name, "dependencies") == 0 ? 0 : -1);
    case SK_CONTAINS: {
        const json_t *mn = draft == SCHEMA_DRAFT_7 ? NULL : json_object_get(j, "minContains");
        const json_t *mx = draft == SCHEMA_DRAFT_7 ? NULL : json_object_get(j, "maxContains");
        kw->i = 1;
        kw->i2 = -1;
        int rc = mn != NULL ? cc__count(cc, kw, mn) : 0;
        if (rc == 0 && mx != NULL) {
            json_int_t min = kw->i;
            rc = cc__count(cc, kw, mx);
            kw->i2 = kw->i;
            kw->i = min;
        }
        return rc ? rc : cc__child(cc, d->name, v, res, &kw->a);
    }
    case SK_ITEMS: {
        if (strcmp(d->name, "additionalItems") == 0) {
            const json_t *items = json_object_get(j, "items");
            *skip = !json_is_array(items);
            kw->b = (uint32_t)json_array_size(items);
            return *skip ? 0 : cc__child(cc, d->name, v, res, &kw->a);
        }
        if (draft == SCHEMA_DRAFT_7 && json_is_array(v)) {
            kw->kind = SK_PREFIX_ITEMS;
            return cc__list(cc, kw, v, res);
        }
        const json_t *prefix = draft == SCHEMA_DRAFT_7 ? NULL : json_object_get(j, "prefixItems");
        kw->b = (uint32_t)json_array_size(prefix);
        return cc__child(cc, d->name, v, res, &kw->a);
    }
    case SK_PROPERTIES:
        return cc__map(cc, kw, v, res, -1);
    case SK_PATTERN_PROPERTIES:
        return cc__map(cc, kw, v, res, -1);
    default:
        LMQ_UNREACHABLE("keyword kind without a compiler");
    }
}

/* Keywords that read what others left (additional*, items after prefixItems, unevaluated*)
 * run after them. */
static int cc__phase(enum schema__kind k)
{
    switch (k) {
    case SK_ADDITIONAL_PROPERTIES:
    case SK_ITEMS:
        return 1;
    case SK_UNEVALUATED_ITEMS:
    case SK_UNEVALUATED_PROPERTIES:
        return 2;
    default:
        return 0;
    }
}

static void cc__kws_release(struct schema__kw *kws, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pcre2_code_free(kws[i].re);
        free(kws[i].ptab);
        kws[i].re = NULL;
        kws[i].ptab = NULL;
    }
}

/* What the validator's fast path wants to know of a node: which keywords walk an object's
 * members, and whether "required" names only properties the walk sees anyway. */
static uint8_t cc__applies(enum schema__kind kind)
{
    switch (kind) {
    case SK_TYPE:
    case SK_PROPERTIES:
    case SK_PATTERN_PROPERTIES:
    case SK_ADDITIONAL_PROPERTIES:
        return 0;
    case SK_MULTIPLE_OF:
    case SK_MAXIMUM:
    case SK_EXCL_MAXIMUM:
    case SK_MINIMUM:
    case SK_EXCL_MINIMUM:
        return ST_NUMBER;
    case SK_MAX_LENGTH:
    case SK_MIN_LENGTH:
    case SK_PATTERN:
    case SK_FORMAT:
        return ST_STRING;
    case SK_PREFIX_ITEMS:
    case SK_ITEMS:
    case SK_CONTAINS:
    case SK_MAX_ITEMS:
    case SK_MIN_ITEMS:
    case SK_UNIQUE_ITEMS:
    case SK_UNEVALUATED_ITEMS:
        return ST_ARRAY;
    case SK_MAX_PROPERTIES:
    case SK_MIN_PROPERTIES:
    case SK_REQUIRED:
    case SK_DEPENDENT_REQUIRED:
    case SK_DEPENDENT_SCHEMAS:
    case SK_PROPERTY_NAMES:
    case SK_UNEVALUATED_PROPERTIES:
        return ST_OBJECT;
    default:
        return ST_NULL | ST_BOOLEAN | ST_OBJECT | ST_ARRAY | ST_NUMBER | ST_STRING;
    }
}

static void cc__node_flags(struct schema *s, uint32_t idx)
{
    struct schema__node *node = &s->nodes[idx];
    node->kw_props = node->kw_pprops = node->kw_addl = SCHEMA__NONE;
    node->types = 0;
    node->applies = 0;
    node->ref_to = node->kw_count == 1 && s->kws[node->kw_start].kind == SK_REF
                       ? s->kws[node->kw_start].a
                       : SCHEMA__NONE;
    for (uint32_t k = node->kw_start; k < node->kw_start + node->kw_count; k++) {
        enum schema__kind kind = s->kws[k].kind;
        s->kws[k].applies = cc__applies(kind);
        node->types = kind == SK_TYPE ? s->kws[k].types : node->types;
        node->has_type |= kind == SK_TYPE;
        node->applies |= s->kws[k].applies;
        node->has_unevaluated |= kind == SK_UNEVALUATED_ITEMS || kind == SK_UNEVALUATED_PROPERTIES;
        node->has_additional |= kind == SK_ADDITIONAL_PROPERTIES;
        node->kw_props = kind == SK_PROPERTIES ? k : node->kw_props;
        node->kw_pprops = kind == SK_PATTERN_PROPERTIES ? k : node->kw_pprops;
        node->kw_addl = kind == SK_ADDITIONAL_PROPERTIES ? k : node->kw_addl;
    }
    node->has_members = node->kw_props != SCHEMA__NONE || node->kw_pprops != SCHEMA__NONE ||
                        node->kw_addl != SCHEMA__NONE;
    for (uint32_t k = node->kw_start; k < node->kw_start + node->kw_count; k++) {
        struct schema__kw *req = &s->kws[k];
        if (req->kind != SK_REQUIRED || node->kw_props == SCHEMA__NONE) {
            continue;
        }
        const struct schema__kw *props = &s->kws[node->kw_props];
        req->b = 1; /* every name is a property: the walk counts them */
        req->i = 0; /* distinct names */
        for (size_t i = 0; i < json_array_size(req->value); i++) {
            const json_t *name = json_array_get(req->value, i);
            const struct schema__item *it =
                schema__prop_find(s, props, json_string_value(name), json_string_length(name));
            if (it == NULL) {
                req->b = 0;
            } else if (!it->required) {
                s->items[it - s->items].required = true;
                req->i++;
            }
        }
    }
}

static int cc__compile_node(struct cc *cc, uint32_t idx)
{
    struct schema *s = cc->s;
    const json_t *j = s->nodes[idx].json;
    uint32_t res = s->nodes[idx].resource;
    if (json_is_boolean(j)) {
        s->nodes[idx].boolean = json_is_true(j) ? 1 : 0;
        s->nodes[idx].compiled = true;
        return 0;
    }
    if (!json_is_object(j)) {
        lmq_errf(cc->err, cc->err_len, "a subschema is neither an object nor a boolean");
        return LMQ_EINVAL;
    }
    int draft = s->resources[res].draft;
    unsigned mask = draft == SCHEMA_DRAFT_7 ? 2u : 1u;
    bool ref_only = draft == SCHEMA_DRAFT_7 && json_object_get(j, "$ref") != NULL;
    struct schema__kw kws[CC_KW_PER_NODE_MAX];
    size_t n = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        for (size_t d = 0; d < LMQ_ARRAY_LEN(cc__kwdefs); d++) {
            const struct cc_kwdef *def = &cc__kwdefs[d];
            if ((def->drafts & mask) == 0 || strcmp(def->name, key) != 0 ||
                (ref_only && def->kind != SK_REF) ||
                (def->validation && (cc->res_flags[res] & CC_NO_VALIDATION))) {
                continue;
            }
            LMQ_ASSERT(n + 2 <= CC_KW_PER_NODE_MAX); /* each name once, at most 2 kws each */
            bool skip = false;
            memset(&kws[n], 0, sizeof(kws[n]));
            int rc = cc__keyword(cc, j, res, def, v, &kws[n], &skip);
            if (rc != 0) {
                cc__kws_release(kws, n + 1);
                return rc;
            }
            n += skip ? 0 : 1;
            if (strcmp(def->name, "dependencies") == 0) {
                /* "dependencies": the arrays half, beside the schemas half. */
                memset(&kws[n], 0, sizeof(kws[n]));
                kws[n].kind = SK_DEPENDENT_REQUIRED;
                kws[n].name = def->name;
                kws[n].name_len = strlen(def->name);
                kws[n].value = v;
                rc = cc__map(cc, &kws[n], v, res, 1);
                if (rc != 0) {
                    cc__kws_release(kws, n + 1);
                    return rc;
                }
                n++;
            }
        }
    }
    /* Stable by phase (insertion sort of at most CC_KW_PER_NODE_MAX entries). */
    for (size_t i = 1; i < n; i++) {
        struct schema__kw k = kws[i];
        size_t p = i;
        while (p > 0 && cc__phase(kws[p - 1].kind) > cc__phase(k.kind)) {
            kws[p] = kws[p - 1];
            p--;
        }
        kws[p] = k;
    }
    size_t need = s->kw_count + n;
    size_t cap = 16;
    while (cap < need) {
        cap *= 2;
    }
    size_t old_cap = 16;
    while (old_cap < s->kw_count) {
        old_cap *= 2;
    }
    if (s->kws == NULL || cap != old_cap) {
        void *p = realloc(s->kws, cap * sizeof(*s->kws));
        if (p == NULL) {
            cc__kws_release(kws, n);
            return LMQ_ENOMEM;
        }
        s->kws = p;
    }
    memcpy(s->kws + s->kw_count, kws, n * sizeof(*kws));
    s->nodes[idx].kw_start = (uint32_t)s->kw_count;
    s->nodes[idx].kw_count = (uint32_t)n;
    s->kw_count = need;
    s->nodes[idx].compiled = true;
    cc__node_flags(s, idx);
    return 0;
}

/* Every dynamic anchor becomes a node (a $dynamicRef may land on any of them); then the
 * table the validator searches. */
static int cc__dynamic_nodes(struct cc *cc)
{
    for (size_t i = 0; i < cc->anchor_count; i++) {
        uint32_t node = 0;
        if (cc->anchors[i].dynamic) {
            int rc = cc__node(cc, cc->anchors[i].json, cc->anchors[i].resource, &node);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int cc__dynamic_table(struct cc *cc)
{
    struct schema *s = cc->s;
    if (lmq_map_create(&s->dyn_map) != 0) {
        return LMQ_ENOMEM;
    }
    for (size_t i = 0; i < cc->anchor_count; i++) {
        if (cc->anchors[i].dynamic) {
            const struct cc_slot *slot = cc__slot_find(cc, cc->anchors[i].json);
            LMQ_ASSERT(slot != NULL && slot->node != SCHEMA__NONE);
            uint8_t key[4 + SCHEMA_ANCHOR_MAX_BYTES];
            size_t key_len = schema__anchor_key(cc->anchors[i].resource, cc->anchors[i].name, key);
            if (lmq_map_get(s->dyn_map, key, key_len) == NULL &&
                lmq_map_put(s->dyn_map, key, key_len, (void *)(uintptr_t)(slot->node + 1)) != 0) {
                return LMQ_ENOMEM;
            }
        }
    }
    return 0;
}

static int cc__drain(struct cc *cc)
{
    /* Each node enters the worklist once (slot->node memoizes): bounded by SCHEMA_NODES_MAX. */
    while (cc->work_count > 0) {
        uint32_t idx = cc->work[--cc->work_count];
        int rc = cc__compile_node(cc, idx);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- in-place cycles ---- */

/* The k-th child of node that applies to the same instance location, or SCHEMA__NONE. */
static uint32_t cc__inplace_child(const struct schema *s, uint32_t node, size_t k)
{
    const struct schema__node *n = &s->nodes[node];
    for (uint32_t i = 0; i < n->kw_count; i++) {
        const struct schema__kw *kw = &s->kws[n->kw_start + i];
        switch (kw->kind) {
        case SK_REF:
        case SK_DYNAMIC_REF:
        case SK_NOT:
            if (k-- == 0) {
                return kw->a;
            }
            break;
        case SK_IF: {
            uint32_t three[3] = {kw->a, kw->b, kw->c};
            for (size_t t = 0; t < 3; t++) {
                if (three[t] != SCHEMA__NONE && k-- == 0) {
                    return three[t];
                }
            }
            break;
        }
        case SK_ALL_OF:
        case SK_ANY_OF:
        case SK_ONE_OF:
        case SK_DEPENDENT_SCHEMAS:
            if (k < kw->item_count) {
                return s->items[kw->item_start + k].node;
            }
            k -= kw->item_count;
            break;
        default:
            break;
        }
    }
    return SCHEMA__NONE;
}

/* Refuses a cycle of in-place applicators ({"$ref":"#"}, {"allOf":[{"$ref":"#"}]}): evaluating
 * it would never reach a deeper instance location. Iterative DFS (no C stack per node). */
static int cc__check_cycles(struct cc *cc)
{
    struct schema *s = cc->s;
    int rc = 0;
    uint8_t *color = calloc(s->node_count, 1);
    uint32_t *stack = calloc(s->node_count, sizeof(uint32_t));
    size_t *next = calloc(s->node_count, sizeof(size_t));
    if (color == NULL || stack == NULL || next == NULL) {
        rc = LMQ_ENOMEM;
        goto out;
    }
    for (uint32_t start = 0; start < s->node_count && rc == 0; start++) {
        if (color[start] != 0) {
            continue;
        }
        size_t top = 0;
        stack[top++] = start;
        color[start] = 1;
        next[start] = 0;
        /* Every node is pushed at most once (color): bounded by node_count pushes. */
        while (top > 0) {
            uint32_t cur = stack[top - 1];
            uint32_t kid = cc__inplace_child(s, cur, next[cur]++);
            if (kid == SCHEMA__NONE) {
                color[cur] = 2;
                top--;
            } else if (color[kid] == 1) {
                lmq_errf(cc->err, cc->err_len,
                         "a $ref cycle that makes no progress in the instance (in %.200s)",
                         s->resources[s->nodes[kid].resource].uri[0] != '\0'
                             ? s->resources[s->nodes[kid].resource].uri
                             : "the schema document");
                rc = LMQ_EINVAL;
                break;
            } else if (color[kid] == 0) {
                color[kid] = 1;
                next[kid] = 0;
                stack[top++] = kid;
            }
        }
    }
out:
    free(color);
    free(stack);
    free(next);
    return rc;
}

/* ---- public ---- */

int schema_registry_new(struct schema_registry **out)
{
    LMQ_ASSERT(out != NULL);
    *out = calloc(1, sizeof(**out));
    return *out == NULL ? LMQ_ENOMEM : 0;
}

void schema_registry_free(struct schema_registry *reg)
{
    if (reg == NULL) {
        return;
    }
    for (size_t i = 0; i < reg->count; i++) {
        free(reg->uris[i]);
        json_decref(reg->docs[i]);
    }
    for (size_t i = 0; i < LMQ_ARRAY_LEN(reg->builtins); i++) {
        json_decref(reg->builtins[i]);
    }
    for (size_t i = 0; i < LMQ_ARRAY_LEN(reg->meta); i++) {
        schema_free(reg->meta[i]);
    }
    free(reg);
}

int schema_registry_add(struct schema_registry *reg, const char *uri, json_t *doc)
{
    LMQ_ASSERT(reg != NULL && uri != NULL && doc != NULL);
    size_t n = schema__uri_nofrag_len(uri);
    for (size_t i = 0; i < reg->count; i++) {
        if (strlen(reg->uris[i]) == n && strncmp(reg->uris[i], uri, n) == 0) {
            return LMQ_EEXIST;
        }
    }
    if (reg->count >= SCHEMA_REGISTRY_MAX) {
        return LMQ_ELIMIT;
    }
    reg->uris[reg->count] = strndup(uri, n);
    if (reg->uris[reg->count] == NULL) {
        return LMQ_ENOMEM;
    }
    reg->docs[reg->count++] = json_incref(doc);
    return 0;
}

void schema_free(struct schema *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->kw_count; i++) {
        pcre2_code_free(s->kws[i].re);
        free(s->kws[i].ptab);
    }
    for (size_t i = 0; i < s->item_count; i++) {
        pcre2_code_free(s->items[i].re);
    }
    for (size_t i = 0; i < s->resource_count; i++) {
        free(s->resources[i].uri);
    }
    for (size_t i = 0; i < s->doc_count; i++) {
        json_decref(s->docs[i]);
    }
    free(s->docs);
    free(s->nodes);
    free(s->kws);
    free(s->items);
    free(s->resources);
    lmq_map_destroy(s->dyn_map);
    free(s);
}

enum schema_draft schema_draft_of(const struct schema *s)
{
    return (enum schema_draft)s->draft;
}

static int cc__run(struct cc *cc, json_t *doc, const char *base, int draft, bool forced)
{
    uint32_t res = 0;
    uint32_t root = 0;
    int rc = cc__hold(cc, doc);
    rc = rc ? rc : cc__add_document(cc, doc, base, strlen(base), draft, &res);
    if (rc == 0 && forced) {
        cc->s->resources[res].draft = draft;
    }
    cc->s->draft = cc->s->resources[res].draft;
    rc = rc ? rc : cc__node(cc, doc, res, &root);
    cc->s->root = root;
    /* New documents bring new dynamic anchors: repeat until nothing is left to compile.
     * Bounded: every round compiles at least one new node or ends. */
    size_t seen = SIZE_MAX;
    while (rc == 0 && seen != cc->s->node_count) {
        rc = cc__drain(cc);
        seen = cc->s->node_count;
        rc = rc ? rc : cc__dynamic_nodes(cc);
    }
    rc = rc ? rc : cc__dynamic_table(cc);
    rc = rc ? rc : cc__check_cycles(cc);
    return rc;
}

static int cc__meta_check(struct schema_registry *reg, json_t *doc, int draft, char *err,
                          size_t err_len);

/* The reason quotes the schema's own strings ($ref, $id, patterns, keys): their control
 * characters become '?' so the reason stays one line (a CLI prints it as one stderr line). */
static void cc__one_line(char *err, size_t err_len)
{
    LMQ_ASSERT(err != NULL || err_len == 0);
    for (size_t i = 0; i < err_len && err[i] != '\0'; i++) {
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f) {
            err[i] = '?';
        }
    }
}

int schema_compile(struct schema_registry *reg, json_t *doc, const char *base_uri,
                   const struct schema_options *opt, struct schema **out, char *err, size_t err_len)
{
    LMQ_ASSERT(doc != NULL && out != NULL);
    static const struct schema_options defaults = {0};
    opt = opt != NULL ? opt : &defaults;
    *out = NULL;
    struct schema_registry *tmp = NULL;
    int rc = 0;
    if (reg == NULL) {
        rc = schema_registry_new(&tmp);
        if (rc != 0) {
            return rc;
        }
        reg = tmp;
    }
    int draft = opt->draft;
    const json_t *sch = json_is_object(doc) ? json_object_get(doc, "$schema") : NULL;
    if (draft == SCHEMA_DRAFT_AUTO) {
        draft = json_is_string(sch)
                    ? cc__draft_of_meta(json_string_value(sch), SCHEMA_DRAFT_2020_12)
                    : SCHEMA_DRAFT_2020_12;
    }
    if (!json_is_object(doc) && !json_is_boolean(doc)) {
        lmq_errf(err, err_len, "a schema is an object or a boolean");
        rc = LMQ_EINVAL;
        goto out;
    }
    if (!opt->skip_meta_check) {
        rc = cc__meta_check(reg, doc, draft, err, err_len);
        if (rc != 0) {
            goto out;
        }
    }
    struct cc cc = {.reg = reg, .opt = opt, .err = err, .err_len = err_len};
    cc.s = calloc(1, sizeof(*cc.s));
    if (cc.s == NULL) {
        rc = LMQ_ENOMEM;
        goto out;
    }
    cc.s->assert_formats = opt->assert_formats;
    cc.s->draft = draft;
    rc = lmq_map_create(&cc.res_map);
    rc = rc ? rc : lmq_map_create(&cc.anchor_map);
    rc = rc ? rc
            : cc__run(&cc, doc, base_uri != NULL ? base_uri : "", draft,
                      opt->draft != SCHEMA_DRAFT_AUTO);
    free(cc.slots);
    free(cc.anchors);
    free(cc.work);
    free(cc.res_flags);
    lmq_map_destroy(cc.res_map);
    lmq_map_destroy(cc.anchor_map);
    if (rc != 0) {
        schema_free(cc.s);
        goto out;
    }
    *out = cc.s;
out:
    if (rc != 0) {
        cc__one_line(err, err_len);
    }
    schema_registry_free(tmp);
    return rc;
}

/* The compiled meta-schema at uri: the registry's cached one for a built-in (*owned false),
 * else a new one the caller frees. */
static int cc__meta_schema(struct schema_registry *reg, const char *uri, int draft,
                           struct schema **meta, bool *owned, char *err, size_t err_len)
{
    size_t n = schema__uri_nofrag_len(uri);
    struct cc probe = {.reg = reg}; /* only cc__lookup_doc's registry part is used */
    const json_t *doc = cc__lookup_doc(&probe, uri, n);
    if (doc == NULL) {
        lmq_errf(err, err_len, "$schema \"%.200s\" is not a known meta-schema", uri);
        return LMQ_EINVAL;
    }
    int which = cc__draft_of_meta(uri, 0);
    *owned = which == 0;
    if (!*owned && reg->meta[which] != NULL) {
        *meta = reg->meta[which];
        return 0;
    }
    char base[512];
    lmq_errf(base, sizeof(base), "%.*s", (int)LMQ_MIN(n, sizeof(base) - 1), uri);
    LMQ_UNUSED(draft); /* a meta-schema names its own draft in its $schema */
    struct schema_options mo = {.draft = SCHEMA_DRAFT_AUTO, .skip_meta_check = true};
    int rc = schema_compile(reg, (json_t *)doc, base, &mo, meta, err, err_len);
    if (rc == 0 && !*owned) {
        reg->meta[which] = *meta;
    }
    return rc;
}

static int cc__meta_check(struct schema_registry *reg, json_t *doc, int draft, char *err,
                          size_t err_len)
{
    const json_t *sch = json_is_object(doc) ? json_object_get(doc, "$schema") : NULL;
    const char *uri = json_is_string(sch)       ? json_string_value(sch)
                      : draft == SCHEMA_DRAFT_7 ? cc__uri_7
                                                : cc__uri_2020;
    struct schema *meta = NULL;
    bool owned = false;
    struct schema_validator *v = NULL;
    struct schema_result *res = NULL;
    int rc = cc__meta_schema(reg, uri, draft, &meta, &owned, err, err_len);
    if (rc != 0) {
        return rc;
    }
    res = malloc(sizeof(*res));
    rc = res == NULL ? LMQ_ENOMEM : schema_validator_new(meta, &v);
    if (rc == 0) {
        rc = schema_validate(v, doc, res);
        if (rc == 0 && !res->valid) {
            const struct schema_error *e = &res->errors[0];
            lmq_errf(err, err_len, "not a valid schema: at \"%s\": %s (meta-schema %s)",
                     e->instance, e->message, e->schema);
            rc = LMQ_EINVAL;
        } else if (rc != 0) {
            lmq_errf(err, err_len, "not a valid schema: %s",
                     res->error_count > 0 ? res->errors[res->error_count - 1].message
                                          : "meta-schema check failed");
            rc = LMQ_EINVAL;
        }
    }
    schema_validator_free(v);
    free(res);
    if (owned) {
        schema_free(meta);
    }
    return rc;
}
