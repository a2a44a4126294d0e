/*
 * The GraphQL schema of the typed objects (docs/PROTOCOL.md "Objects over GraphQL"), built from
 * the loaded models each time the model set changes and kept beside it (struct data's gql).
 *
 * Per model T (GraphQL name: the type name with '.' as '_'): an object type T with the model's
 * top-level properties and the _-fields of a resource, T_Edge and T_Connection for pages, a
 * T_Filter input over the indexed properties (one T_P_Ops input each), T_OrderBy and
 * T_OrderField, and the query fields r_T, rl_T and versions_T. A property that names another
 * model with "x-link" is a field of that model's type, resolved in batches (data_graphql.c); a
 * "$ref" to another model embeds that model's value type T_Value (its properties only). What
 * has no GraphQL type of its own is the JSON scalar.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_graphql.h"

/* The checkpoint argument's description (docs/PROTOCOL.md "Reading as of a checkpoint"). */
#define GQL_CHECKPOINT_DOC                                                                         \
    "Read as of a ledger checkpoint: a signed note of this server (GET /ledger/checkpoint, a "     \
    "receipt) or a tree size in decimal, at most the latest checkpoint's size."

/* Nested object properties mapped to object types, deeper ones are JSON. */
#define GQL_DEPTH_MAX 8
/* Values of a string enum mapped to a GraphQL enum (more: String). */
#define GQL_ENUM_VALUES_MAX 256
/* A GraphQL type reference or type name being built. */
#define GQL_TYPE_MAX_BYTES 400
/* GraphQL Int is 32-bit. */
#define GQL_INT_MIN (-2147483648.0)
#define GQL_INT_MAX 2147483647.0

struct gql_build {
    const struct data_models *set;
    struct graphql_schema *s;
    struct data_gql *g;
    bool *want_value; /* per model: some $ref embeds its value type */
    bool *made_value;
};

bool data_gql_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 64 || (name[0] >= '0' && name[0] <= '9') || strncmp(name, "__", 2) == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok =
            c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!ok)
            return false;
    }
    return true;
}

static int gql_entry_add(struct data_gql *g, enum data_gql_kind kind, const char *model,
                         const char *field)
{
    LMQ_ASSERT(g != NULL && model != NULL);
    if (g->count == g->cap) {
        size_t cap = g->cap == 0 ? 16 : g->cap * 2;
        struct data_gql_entry *e = realloc(g->entries, cap * sizeof(*e));
        if (e == NULL)
            return LMQ_ENOMEM;
        g->entries = e;
        g->cap = cap;
    }
    struct data_gql_entry *e = &g->entries[g->count++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    snprintf(e->model, sizeof(e->model), "%s", model);
    snprintf(e->field, sizeof(e->field), "%s", field != NULL ? field : "");
    LMQ_ASSERT(g->count <= INT32_MAX);
    return (int)g->count; /* the resolver tag: index + 1 */
}

/* The model a "$ref" names (relative to DATA_MODEL_BASE_URI, or absolute), or NULL. */
static const struct data_model *gql_ref_model(const struct data_models *set, const char *ref)
{
    size_t base = strlen(DATA_MODEL_BASE_URI);
    if (strncmp(ref, DATA_MODEL_BASE_URI, base) == 0)
        ref += base;
    return data_models_find(set, ref, strlen(ref));
}

static size_t gql_model_index(const struct data_models *set, const struct data_model *m)
{
    for (size_t i = 0; i < set->count; i++) {
        if (set->models[i] == m)
            return i;
    }
    LMQ_UNREACHABLE("a model that is not in its set");
    return 0;
}

/* Properties of schema o that become fields (top: the _-names are the resource's own). */
static size_t gql_mappable(const json_t *o, bool top)
{
    const char *name;
    json_t *p;
    size_t n = 0;
    json_object_foreach((json_t *)json_object_get(o, "properties"), name, p)
    {
        if (data_gql_name_valid(name) && !(top && name[0] == '_'))
            n++;
    }
    return n;
}

static bool gql_int32(const json_t *p)
{
    const json_t *lo = json_object_get(p, "minimum"), *hi = json_object_get(p, "maximum");
    const json_t *xlo = json_object_get(p, "exclusiveMinimum");
    const json_t *xhi = json_object_get(p, "exclusiveMaximum");
    bool low = (json_is_number(lo) && json_number_value(lo) >= GQL_INT_MIN) ||
               (json_is_number(xlo) && json_number_value(xlo) >= GQL_INT_MIN - 1);
    bool high = (json_is_number(hi) && json_number_value(hi) <= GQL_INT_MAX) ||
                (json_is_number(xhi) && json_number_value(xhi) <= GQL_INT_MAX + 1);
    return low && high;
}

static int gql_fields(struct gql_build *b, struct graphql_object *o, const char *tname,
                      const json_t *schema, int depth, struct data_gql_model *gm);

/* A string enum whose values are GraphQL names: the enum type name; else 0 with *ok false. */
static int gql_enum(struct gql_build *b, const json_t *values, const char *tname, bool *ok)
{
    *ok = false;
    size_t n = json_array_size(values);
    if (n == 0 || n > GQL_ENUM_VALUES_MAX)
        return 0;
    const char *names[GQL_ENUM_VALUES_MAX];
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_array_get(values, i));
        if (names[i] == NULL || !data_gql_name_valid(names[i]) || strcmp(names[i], "true") == 0 ||
            strcmp(names[i], "false") == 0 || strcmp(names[i], "null") == 0)
            return 0;
    }
    *ok = true;
    return graphql_schema_enum(b->s, tname, NULL, names, n);
}

/*
 * The GraphQL type of property schema p (without an outer '!') into out, creating the enum and
 * object types it needs under the name owner_prop; *link: the model an "x-link" names; *kind:
 * what filters may compare it as.
 */
static int gql_map(struct gql_build *b, const char *owner, const char *prop, const json_t *p,
                   int depth, char *out, size_t cap, const struct data_model **link,
                   enum data_gql_scalar *kind)
{
    char tname[GQL_TYPE_MAX_BYTES];
    snprintf(tname, sizeof(tname), "%s_%s", owner, prop);
    snprintf(out, cap, "JSON");
    *kind = DATA_GQL_OTHER;
    if (!json_is_object(p))
        return LMQ_OK;
    const char *ref = json_string_value(json_object_get(p, "$ref"));
    if (ref != NULL) {
        const struct data_model *m = gql_ref_model(b->set, ref);
        if (m != NULL && gql_mappable(m->doc, true) > 0) {
            b->want_value[gql_model_index(b->set, m)] = true;
            snprintf(out, cap, "%s_Value", m->graphql);
        }
        return LMQ_OK;
    }
    const json_t *values = json_object_get(p, "enum");
    if (values != NULL) {
        bool ok = false;
        int rc = gql_enum(b, values, tname, &ok);
        bool strings = json_array_size(values) > 0;
        for (size_t i = 0; i < json_array_size(values); i++)
            strings = strings && json_is_string(json_array_get(values, i));
        if (ok && rc == LMQ_OK) {
            snprintf(out, cap, "%s", tname);
            *kind = DATA_GQL_ENUM;
        } else if (!ok && strings) { /* strings that are not all GraphQL names */
            snprintf(out, cap, "String");
            *kind = DATA_GQL_STRING;
        }
        return rc;
    }
    const json_t *type = json_object_get(p, "type");
    if (json_is_array(type) && json_array_size(type) == 2) { /* ["T", "null"]: a nullable T */
        const char *t0 = json_string_value(json_array_get(type, 0));
        const char *t1 = json_string_value(json_array_get(type, 1));
        if (t0 != NULL && t1 != NULL && (strcmp(t0, "null") == 0 || strcmp(t1, "null") == 0))
            type = json_array_get(type, strcmp(t0, "null") == 0 ? 1 : 0);
    }
    const char *t = json_string_value(type);
    if (t == NULL && json_object_get(p, "properties") != NULL)
        t = "object";
    if (t == NULL)
        return LMQ_OK;
    if (strcmp(t, "string") == 0) {
        const char *target = json_string_value(json_object_get(p, "x-link"));
        const struct data_model *m =
            target != NULL ? data_models_find(b->set, target, strlen(target)) : NULL;
        *link = m;
        *kind = m != NULL ? DATA_GQL_ID : DATA_GQL_STRING;
        snprintf(out, cap, "%s", m != NULL ? m->graphql : "String");
    } else if (strcmp(t, "integer") == 0) {
        *kind = gql_int32(p) ? DATA_GQL_INT : DATA_GQL_FLOAT;
        snprintf(out, cap, "%s", *kind == DATA_GQL_INT ? "Int" : "Float");
    } else if (strcmp(t, "number") == 0) {
        *kind = DATA_GQL_FLOAT;
        snprintf(out, cap, "Float");
    } else if (strcmp(t, "boolean") == 0) {
        *kind = DATA_GQL_BOOLEAN;
        snprintf(out, cap, "Boolean");
    } else if (strcmp(t, "object") == 0 && depth < GQL_DEPTH_MAX && gql_mappable(p, false) > 0) {
        struct graphql_object *o = NULL;
        int rc = graphql_schema_object(b->s, tname, NULL, &o);
        if (rc == LMQ_OK)
            rc = gql_fields(b, o, tname, p, depth + 1, NULL);
        if (rc == LMQ_OK)
            snprintf(out, cap, "%s", tname);
        return rc;
    } else if (strcmp(t, "array") == 0 && depth < GQL_DEPTH_MAX) {
        char inner[GQL_TYPE_MAX_BYTES];
        enum data_gql_scalar ignored;
        int rc = gql_map(b, owner, prop, json_object_get(p, "items"), depth + 1, inner,
                         sizeof(inner), link, &ignored);
        size_t n = strlen(inner);
        if (n + 3 <= cap) { /* "[inner]" fits: else JSON (as set above) */
            out[0] = '[';
            memcpy(out + 1, inner, n);
            memcpy(out + 1 + n, "]", 2);
        }
        return rc;
    }
    return LMQ_OK;
}

/* The fields of schema's properties on o (gm: the model's own type, which records the
 * indexed properties' filter types). */
static int gql_fields(struct gql_build *b, struct graphql_object *o, const char *tname,
                      const json_t *schema, int depth, struct data_gql_model *gm)
{
    LMQ_ASSERT(b != NULL && o != NULL && tname != NULL);
    const json_t *required = json_object_get(schema, "required");
    const char *name;
    json_t *p;
    json_object_foreach((json_t *)json_object_get(schema, "properties"), name, p)
    {
        if (!data_gql_name_valid(name) || (depth == 0 && name[0] == '_'))
            continue;
        char type[GQL_TYPE_MAX_BYTES + 2];
        const struct data_model *link = NULL;
        enum data_gql_scalar kind = DATA_GQL_OTHER;
        int rc = gql_map(b, tname, name, p, depth, type, GQL_TYPE_MAX_BYTES, &link, &kind);
        if (rc != LMQ_OK)
            return rc;
        bool req = false;
        for (size_t i = 0; i < json_array_size(required); i++)
            req = req || strcmp(gql_str(json_array_get(required, i), ""), name) == 0;
        /* A reference the caller may not read is null: never non-null. */
        if (req && link == NULL) /* type holds < GQL_TYPE_MAX_BYTES: room for "!" */
            memcpy(type + strlen(type), "!", 2);
        int tag = 0;
        if (link != NULL && (tag = gql_entry_add(b->g, DATA_GQL_LINK, link->name, name)) < 0)
            return tag;
        char desc[512];
        const char *d = json_string_value(json_object_get(p, "description"));
        snprintf(desc, sizeof(desc), "%s%s%s", d != NULL ? d : "",
                 d != NULL && kind == DATA_GQL_FLOAT ? " " : "",
                 kind == DATA_GQL_FLOAT &&
                         strcmp(gql_str(json_object_get(p, "type"), ""), "integer") == 0
                     ? "(an integer the model does not bound to 32 bits: Float, as GraphQL Int "
                       "is 32-bit)"
                     : "");
        rc = graphql_object_field(o, name, type, desc[0] ? desc : NULL, tag, NULL);
        if (rc != LMQ_OK)
            return rc;
        for (size_t i = 0; gm != NULL && i < gm->model->indexed_count; i++) {
            if (strcmp(gm->model->indexed[i], name) == 0 && kind != DATA_GQL_OTHER) {
                gm->filter_kind[i] = kind;
                snprintf(gm->filter_type[i], sizeof(gm->filter_type[i]), "%s",
                         kind == DATA_GQL_ID ? "ID" : type);
                char *bang = strchr(gm->filter_type[i], '!');
                if (bang != NULL)
                    *bang = '\0';
            }
        }
    }
    return LMQ_OK;
}

static const char *const gql_meta[][3] = {
    {"_permalink", "ID!", "The link of the resource's first version: its name."},
    {"_link", "ID!", "This version's envelope link."},
    {"_prevlink", "ID", "The version this one follows (null for a first version)."},
    {"_author", "ID!", "The identity that sent this version."},
    {"_owner", "ID!", "The author of the resource's first version."},
    {"_time", "String!", "When this version was accepted (RFC 3339 UTC)."},
    {"_ledgerIndex", "Float!", "This version's ledger index (64-bit: Float, GraphQL Int is 32)."},
    {"_deleted", "Boolean!", "Whether this version is a tombstone."},
};

/* T_P_Ops for each filterable indexed property, T_Filter, T_OrderField and T_OrderBy. */
static int gql_filters(struct gql_build *b, struct data_gql_model *gm, bool *has_filter)
{
    const struct data_model *m = gm->model;
    const char *T = m->graphql;
    char name[GQL_TYPE_MAX_BYTES], type[sizeof(gm->filter_type[0]) + 4];
    struct graphql_object *filter = NULL, *ops = NULL;
    int rc = LMQ_OK;
    *has_filter = false;
    const char *order[DATA_INDEXED_MAX + 1] = {"_created"};
    size_t order_count = 1;
    for (size_t i = 0; rc == LMQ_OK && i < m->indexed_count; i++) {
        if (!data_gql_name_valid(m->indexed[i]))
            continue;
        order[order_count++] = m->indexed[i];
        if (gm->filter_kind[i] == DATA_GQL_OTHER)
            continue;
        if (filter == NULL) {
            snprintf(name, sizeof(name), "%s_Filter", T);
            rc = graphql_schema_input(b->s, name, "Filters on indexed properties (all must hold).",
                                      &filter);
        }
        snprintf(name, sizeof(name), "%s_%s_Ops", T, m->indexed[i]);
        if (rc == LMQ_OK)
            rc = graphql_object_field(filter, m->indexed[i], name, NULL, 0, NULL);
        if (rc == LMQ_OK)
            rc = graphql_schema_input(b->s, name, NULL, &ops);
        const char *s = gm->filter_type[i];
        static const char *const cmp[] = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE"};
        for (size_t k = 0; rc == LMQ_OK && k < sizeof(cmp) / sizeof(cmp[0]); k++)
            rc = graphql_object_field(ops, cmp[k], s, NULL, 0, NULL);
        snprintf(type, sizeof(type), "[%s!]", s);
        if (rc == LMQ_OK)
            rc = graphql_object_field(ops, "IN", type, "At most 100 values.", 0, NULL);
        if (rc == LMQ_OK)
            rc = graphql_object_field(ops, "NOT_IN", type, "At most 100 values.", 0, NULL);
        bool text = gm->filter_kind[i] == DATA_GQL_STRING || gm->filter_kind[i] == DATA_GQL_ID;
        if (rc == LMQ_OK && text)
            rc = graphql_object_field(ops, "STARTS_WITH", "String", "Byte-wise prefix.", 0, NULL);
        if (rc == LMQ_OK && text)
            rc = graphql_object_field(ops, "CONTAINS", "String", "Byte-wise substring.", 0, NULL);
        if (rc == LMQ_OK)
            rc = graphql_object_field(ops, "NULL", "Boolean",
                                      "true: absent or null; false: present.", 0, NULL);
        *has_filter = true;
    }
    snprintf(name, sizeof(name), "%s_OrderField", T);
    if (rc == LMQ_OK)
        rc = graphql_schema_enum(b->s, name, "_created: creation order; else an indexed property.",
                                 order, order_count);
    struct graphql_object *by = NULL;
    snprintf(name, sizeof(name), "%s_OrderBy", T);
    if (rc == LMQ_OK)
        rc = graphql_schema_input(b->s, name, NULL, &by);
    snprintf(type, sizeof(type), "%s_OrderField!", T);
    if (rc == LMQ_OK)
        rc = graphql_object_field(by, "field", type, NULL, 0, NULL);
    /* The engine has no input-field defaults: absent or null is ASC (the resolver's). */
    if (rc == LMQ_OK)
        rc = graphql_object_field(by, "direction", "Direction", "Absent or null: ASC.", 0, NULL);
    return rc;
}

/* The object type T, its page types and its three query fields. */
static int gql_model(struct gql_build *b, struct graphql_object *query, struct data_gql_model *gm)
{
    const struct data_model *m = gm->model;
    const char *T = m->graphql;
    char name[GQL_TYPE_MAX_BYTES], type[GQL_TYPE_MAX_BYTES];
    struct graphql_object *o = NULL;
    const char *title = json_string_value(json_object_get(m->doc, "title"));
    int rc = graphql_schema_object(b->s, T, title, &o);
    if (rc == LMQ_OK)
        rc = gql_fields(b, o, T, m->doc, 0, gm);
    for (size_t i = 0; rc == LMQ_OK && i < sizeof(gql_meta) / sizeof(gql_meta[0]); i++)
        rc = graphql_object_field(o, gql_meta[i][0], gql_meta[i][1], gql_meta[i][2], 0, NULL);
    snprintf(name, sizeof(name), "%s_Edge", T);
    if (rc == LMQ_OK)
        rc = graphql_schema_object(b->s, name, NULL, &o);
    snprintf(type, sizeof(type), "%s!", T);
    if (rc == LMQ_OK)
        rc = graphql_object_field(o, "node", type, NULL, 0, NULL);
    if (rc == LMQ_OK)
        rc =
            graphql_object_field(o, "cursor", "String!", "Opaque: after: continues here.", 0, NULL);
    snprintf(name, sizeof(name), "%s_Connection", T);
    if (rc == LMQ_OK)
        rc = graphql_schema_object(b->s, name, NULL, &o);
    snprintf(type, sizeof(type), "[%s_Edge!]!", T);
    if (rc == LMQ_OK)
        rc = graphql_object_field(o, "edges", type, NULL, 0, NULL);
    if (rc == LMQ_OK)
        rc = graphql_object_field(o, "pageInfo", "PageInfo!", NULL, 0, NULL);
    bool has_filter = false;
    if (rc == LMQ_OK)
        rc = gql_filters(b, gm, &has_filter);
    if (rc != LMQ_OK)
        return rc;
    /* r_T */
    struct graphql_field *f = NULL;
    int tag = gql_entry_add(b->g, DATA_GQL_R, m->name, NULL);
    snprintf(name, sizeof(name), "r_%s", T);
    rc = tag < 0 ? tag
                 : graphql_object_field(query, name, T,
                                        "A resource by _permalink (its latest version) or a "
                                        "version by _link: give one.",
                                        tag, &f);
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "_permalink", "ID", NULL, NULL);
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "_link", "ID", NULL, NULL);
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "checkpoint", "String", NULL, GQL_CHECKPOINT_DOC);
    /* rl_T */
    tag = rc == LMQ_OK ? gql_entry_add(b->g, DATA_GQL_RL, m->name, NULL) : rc;
    snprintf(name, sizeof(name), "rl_%s", T);
    snprintf(type, sizeof(type), "%s_Connection!", T);
    rc = tag < 0 ? tag
                 : graphql_object_field(query, name, type,
                                        "A page of resources (latest versions, deleted ones left "
                                        "out) the caller may read.",
                                        tag, &f);
    snprintf(type, sizeof(type), "%s_Filter", T);
    if (rc == LMQ_OK && has_filter)
        rc = graphql_field_arg(f, "filter", type, NULL, NULL);
    snprintf(type, sizeof(type), "%s_OrderBy", T);
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "orderBy", type, NULL, "Default: creation order, ascending.");
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "limit", "Int", "20", "1..100.");
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "after", "String", NULL, "The previous page's endCursor.");
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "checkpoint", "String", NULL, GQL_CHECKPOINT_DOC);
    /* versions_T */
    tag = rc == LMQ_OK ? gql_entry_add(b->g, DATA_GQL_VERSIONS, m->name, NULL) : rc;
    snprintf(name, sizeof(name), "versions_%s", T);
    snprintf(type, sizeof(type), "%s_Connection!", T);
    rc = tag < 0 ? tag
                 : graphql_object_field(query, name, type,
                                        "The versions of a resource, oldest first.", tag, &f);
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "_permalink", "ID!", NULL, NULL);
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "limit", "Int", "20", "1..100.");
    if (rc == LMQ_OK)
        rc = graphql_field_arg(f, "after", "String", NULL, "The previous page's endCursor.");
    return rc;
}

/* The fixed types every schema has: JSON, Direction, PageInfo. */
static int gql_fixed(struct gql_build *b)
{
    static const char *const dirs[] = {"ASC", "DESC"};
    int rc = graphql_schema_scalar(b->s, "JSON", "Any JSON value (what has no GraphQL type).");
    if (rc == LMQ_OK)
        rc = graphql_schema_enum(b->s, "Direction", NULL, dirs, 2);
    struct graphql_object *o = NULL;
    if (rc == LMQ_OK)
        rc = graphql_schema_object(b->s, "PageInfo", NULL, &o);
    if (rc == LMQ_OK)
        rc = graphql_object_field(o, "endCursor", "String", NULL, 0, NULL);
    if (rc == LMQ_OK)
        rc = graphql_object_field(o, "hasNextPage", "Boolean!", NULL, 0, NULL);
    return rc;
}

static int gql_build_all(struct gql_build *b, char *err, size_t err_len)
{
    int rc = gql_fixed(b);
    struct graphql_object *query = NULL;
    if (rc == LMQ_OK)
        rc = graphql_schema_object(b->s, "Query", "Typed objects, read-only.", &query);
    int tag = rc == LMQ_OK ? gql_entry_add(b->g, DATA_GQL_TYPES, "", NULL) : rc;
    rc = tag < 0 ? tag
                 : graphql_object_field(query, "_types", "[String!]!",
                                        "The type names of the loaded models.", tag, NULL);
    for (size_t i = 0; rc == LMQ_OK && i < b->set->count; i++) {
        b->g->models[i].model = b->set->models[i];
        rc = gql_model(b, query, &b->g->models[i]);
    }
    /* The value types $refs embed; each may ask for more (at most every model once). */
    for (size_t round = 0; rc == LMQ_OK && round <= b->set->count; round++) {
        for (size_t i = 0; rc == LMQ_OK && i < b->set->count; i++) {
            if (!b->want_value[i] || b->made_value[i])
                continue;
            b->made_value[i] = true;
            const struct data_model *m = b->set->models[i];
            char name[GQL_TYPE_MAX_BYTES];
            snprintf(name, sizeof(name), "%s_Value", m->graphql);
            struct graphql_object *o = NULL;
            rc = graphql_schema_object(b->s, name, "The model's value, embedded by a $ref.", &o);
            if (rc == LMQ_OK)
                rc = gql_fields(b, o, name, m->doc, 0, NULL);
        }
    }
    if (rc == LMQ_OK)
        rc = graphql_schema_query(b->s, "Query");
    if (rc == LMQ_OK)
        return graphql_schema_finish(b->s, err, err_len);
    /* A builder call refused (a bad name): finish reports the engine's reason for it. */
    if (rc != LMQ_ENOMEM && graphql_schema_finish(b->s, err, err_len) == LMQ_OK)
        snprintf(err, err_len, "the GraphQL mapping was refused");
    return rc;
}

int data_gql_build(const struct data_models *set, struct data_gql **out, char *err, size_t err_len)
{
    LMQ_ASSERT(set != NULL && out != NULL && err != NULL);
    *out = NULL;
    snprintf(err, err_len, "out of memory");
    struct data_gql *g = calloc(1, sizeof(*g));
    struct gql_build b = {.set = set, .g = g};
    b.want_value = calloc(set->count + 1, sizeof(bool));
    b.made_value = calloc(set->count + 1, sizeof(bool));
    int rc = LMQ_ENOMEM;
    if (g == NULL || b.want_value == NULL || b.made_value == NULL)
        goto out;
    g->models = calloc(set->count + 1, sizeof(*g->models));
    g->model_count = set->count;
    if (g->models == NULL || (rc = graphql_schema_new(&g->schema)) != LMQ_OK)
        goto out;
    b.s = g->schema;
    rc = gql_build_all(&b, err, err_len);
    if (rc == LMQ_OK && (g->sdl = graphql_schema_sdl(g->schema)) == NULL)
        rc = LMQ_ENOMEM;
out:
    free(b.want_value);
    free(b.made_value);
    if (rc != LMQ_OK) {
        data_gql_free(g);
        return rc;
    }
    LMQ_ASSERT(g->schema != NULL && g->sdl != NULL);
    *out = g;
    return LMQ_OK;
}

int data_gql_check(const struct data_models *set, struct data_model *m, char *err, size_t err_len)
{
    LMQ_ASSERT(set != NULL && m != NULL && err != NULL);
    /* The set as it would be with m: the same pointers, m in place of its namesake. */
    struct data_models trial = {.models = calloc(set->count + 1, sizeof(*trial.models))};
    if (trial.models == NULL)
        return LMQ_ENOMEM;
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->models[i]->name, m->name) != 0)
            trial.models[trial.count++] = set->models[i];
    }
    trial.models[trial.count++] = m;
    trial.cap = trial.count;
    struct data_gql *g = NULL;
    int rc = data_gql_build(&trial, &g, err, err_len);
    data_gql_free(g);
    free(trial.models); /* not the models: they stay the set's and m */
    return rc;
}

void data_gql_free(struct data_gql *g)
{
    if (g == NULL)
        return;
    graphql_schema_free(g->schema);
    free(g->sdl);
    free(g->entries);
    free(g->models);
    free(g);
}
