/*
 * Building a schema in code, finishing it (type references resolved, the spec's "Type
 * Validation" checked) and type-reference helpers.
 */
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_internal.h"

const char *const gq_dirloc_names[GQ_LOC_COUNT] = {
    "QUERY",
    "MUTATION",
    "SUBSCRIPTION",
    "FIELD",
    "FRAGMENT_DEFINITION",
    "FRAGMENT_SPREAD",
    "INLINE_FRAGMENT",
    "VARIABLE_DEFINITION",
    "FRAGMENT_VARIABLE_DEFINITION",
    "SCHEMA",
    "SCALAR",
    "OBJECT",
    "FIELD_DEFINITION",
    "ARGUMENT_DEFINITION",
    "INTERFACE",
    "UNION",
    "ENUM",
    "ENUM_VALUE",
    "INPUT_OBJECT",
    "INPUT_FIELD_DEFINITION",
    "DIRECTIVE_DEFINITION",
};

/* Records the first builder error (finish reports it). */
static int gq_build_fail(struct graphql_schema *s, int rc, const char *fmt, const char *arg)
{
    if (s->build_err == NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), fmt, arg);
        s->build_err = gq_strndup(&s->arena, msg, strlen(msg));
    }
    return rc;
}

static char *gq_sdup(struct graphql_schema *s, const char *str)
{
    return str == NULL ? NULL : gq_strndup(&s->arena, str, strlen(str));
}

static bool gq_valid_name(const char *n)
{
    if (n == NULL ||
        !((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= 'A' && n[0] <= 'Z') || n[0] == '_')) {
        return false;
    }
    for (size_t i = 1; n[i] != '\0'; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (c >= '0' && c <= '9'))) {
            return false;
        }
        if (i > 128) {
            return false;
        }
    }
    return true;
}

static int gq_add_type(struct graphql_schema *s, int kind, const char *name, const char *desc,
                       struct graphql_object **out)
{
    LMQ_ASSERT(s != NULL);
    if (s->finished) {
        return LMQ_EINVAL;
    }
    if (!gq_valid_name(name)) {
        return gq_build_fail(s, LMQ_EINVAL,
                             "Names must match /^[_a-zA-Z][_a-zA-Z0-9]*$/ but \"%s\" does not.",
                             name != NULL ? name : "(null)");
    }
    if (s->types_count == s->types_cap) {
        if (s->types_cap >= GRAPHQL_TYPES_MAX) {
            return gq_build_fail(s, LMQ_ELIMIT, "Too many types (adding \"%s\").", name);
        }
        size_t cap = s->types_cap == 0 ? 32 : s->types_cap * 2;
        struct graphql_object **t = realloc(s->types, cap * sizeof(*t));
        if (t == NULL) {
            return LMQ_ENOMEM;
        }
        s->types = t;
        s->types_cap = cap;
    }
    struct graphql_object *o = gq_alloc(&s->arena, sizeof(*o));
    if (o == NULL || (o->name = gq_sdup(s, name)) == NULL ||
        (desc != NULL && (o->desc = gq_sdup(s, desc)) == NULL)) {
        return LMQ_ENOMEM;
    }
    o->kind = kind;
    o->schema = s;
    o->builtin = s->building_builtins;
    s->types[s->types_count++] = o;
    if (out != NULL) {
        *out = o;
    }
    return 0;
}

int graphql_schema_object(struct graphql_schema *s, const char *name, const char *description,
                          struct graphql_object **out)
{
    return gq_add_type(s, GQ_K_OBJECT, name, description, out);
}

int graphql_schema_input(struct graphql_schema *s, const char *name, const char *description,
                         struct graphql_object **out)
{
    return gq_add_type(s, GQ_K_INPUT, name, description, out);
}

int graphql_schema_scalar(struct graphql_schema *s, const char *name, const char *description)
{
    return gq_add_type(s, GQ_K_SCALAR, name, description, NULL);
}

int graphql_schema_enum(struct graphql_schema *s, const char *name, const char *description,
                        const char *const *values, size_t count)
{
    LMQ_ASSERT(s != NULL && (values != NULL || count == 0));
    struct graphql_object *o = NULL;
    if (count > GRAPHQL_ENUM_VALUES_MAX) {
        return gq_build_fail(s, LMQ_ELIMIT, "Enum \"%s\" has too many values.", name);
    }
    int rc = gq_add_type(s, GQ_K_ENUM, name, description, &o);
    if (rc != 0) {
        return rc;
    }
    o->values = gq_alloc(&s->arena, (count + 1) * sizeof(char *));
    if (o->values == NULL) {
        return LMQ_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (!gq_valid_name(values[i])) {
            return gq_build_fail(s, LMQ_EINVAL, "Enum \"%s\" has a value that is not a name.",
                                 name);
        }
        if ((o->values[i] = gq_sdup(s, values[i])) == NULL) {
            return LMQ_ENOMEM;
        }
    }
    o->values_count = count;
    return 0;
}

int graphql_object_field(struct graphql_object *o, const char *name, const char *type,
                         const char *description, int resolver_tag, struct graphql_field **out)
{
    LMQ_ASSERT(o != NULL && o->schema != NULL);
    struct graphql_schema *s = o->schema;
    if (s->finished || (o->kind != GQ_K_OBJECT && o->kind != GQ_K_INPUT)) {
        return LMQ_EINVAL;
    }
    if (!gq_valid_name(name) || type == NULL) {
        return gq_build_fail(s, LMQ_EINVAL, "Type \"%s\" has a field with a bad name or no type.",
                             o->name);
    }
    if (o->fields_count == o->fields_cap) {
        if (o->fields_cap >= GRAPHQL_FIELDS_MAX) {
            return gq_build_fail(s, LMQ_ELIMIT, "Type \"%s\" has too many fields.", o->name);
        }
        size_t cap = o->fields_cap == 0 ? 8 : o->fields_cap * 2;
        struct graphql_field **f = gq_alloc(&s->arena, cap * sizeof(*f));
        if (f == NULL) {
            return LMQ_ENOMEM;
        }
        if (o->fields_count > 0) {
            memcpy(f, o->fields, o->fields_count * sizeof(*f));
        }
        o->fields = f;
        o->fields_cap = cap;
    }
    struct graphql_field *f = gq_alloc(&s->arena, sizeof(*f));
    if (f == NULL || (f->name = gq_sdup(s, name)) == NULL ||
        (f->type_src = gq_sdup(s, type)) == NULL ||
        (description != NULL && (f->desc = gq_sdup(s, description)) == NULL)) {
        return LMQ_ENOMEM;
    }
    f->tag = resolver_tag;
    f->owner = o;
    o->fields[o->fields_count++] = f;
    if (out != NULL) {
        *out = f;
    }
    return 0;
}

/* Adds an argument to f (also a directive's); the schema's arena holds it. */
static int gq_field_arg_add(struct graphql_schema *s, struct graphql_field *f, const char *name,
                            const char *type, const char *default_json, const char *description)
{
    LMQ_ASSERT(s != NULL && f != NULL);
    if (s->finished) {
        return LMQ_EINVAL;
    }
    if (!gq_valid_name(name) || type == NULL) {
        return gq_build_fail(s, LMQ_EINVAL,
                             "Field \"%s\" has an argument with a bad name or no type.", f->name);
    }
    if (f->args_count >= GRAPHQL_ARGS_MAX) {
        return gq_build_fail(s, LMQ_ELIMIT, "Field \"%s\" has too many arguments.", f->name);
    }
    if (f->args == NULL) {
        f->args = gq_alloc(&s->arena, GRAPHQL_ARGS_MAX * sizeof(*f->args));
        if (f->args == NULL) {
            return LMQ_ENOMEM;
        }
    }
    struct gq_arg *a = &f->args[f->args_count];
    if ((a->name = gq_sdup(s, name)) == NULL || (a->type_src = gq_sdup(s, type)) == NULL ||
        (description != NULL && (a->desc = gq_sdup(s, description)) == NULL)) {
        return LMQ_ENOMEM;
    }
    if (default_json != NULL) {
        a->def = json_loads(default_json, JSON_DECODE_ANY, NULL);
        if (a->def == NULL) {
            return gq_build_fail(s, LMQ_EINVAL, "Argument \"%s\" has a default that is not JSON.",
                                 name);
        }
    }
    f->args_count++;
    return 0;
}

int graphql_field_arg(struct graphql_field *f, const char *name, const char *type,
                      const char *default_json, const char *description)
{
    LMQ_ASSERT(f != NULL && f->owner != NULL);
    if (f->owner->kind != GQ_K_OBJECT) {
        return gq_build_fail(f->owner->schema, LMQ_EINVAL,
                             "Input field \"%s\" cannot take arguments.", f->name);
    }
    return gq_field_arg_add(f->owner->schema, f, name, type, default_json, description);
}

int graphql_schema_query(struct graphql_schema *s, const char *type_name)
{
    LMQ_ASSERT(s != NULL);
    if (s->finished || type_name == NULL) {
        return LMQ_EINVAL;
    }
    s->query_name = gq_sdup(s, type_name);
    return s->query_name == NULL ? LMQ_ENOMEM : 0;
}

/* A directive: name, locations, one optional argument. */
static int gq_directive_add(struct graphql_schema *s, size_t i, const char *name, const char *desc,
                            uint32_t locs, const char *arg, const char *arg_type,
                            const char *arg_def, const char *arg_desc)
{
    struct graphql_field *d = gq_alloc(&s->arena, sizeof(*d));
    if (d == NULL || (d->name = gq_sdup(s, name)) == NULL || (d->desc = gq_sdup(s, desc)) == NULL) {
        return LMQ_ENOMEM;
    }
    d->locations = locs;
    /* declared order: the order the bits are listed below (deprecated's is not numeric) */
    static const uint8_t deprecated_order[] = {12, 13, 19, 17, 20};
    if (strcmp(name, "deprecated") == 0) {
        memcpy(d->loc_order, deprecated_order, sizeof(deprecated_order));
        d->loc_count = sizeof(deprecated_order);
    } else {
        for (uint8_t b = 0; b < GQ_LOC_COUNT && d->loc_count < sizeof(d->loc_order); b++) {
            if ((locs & (1u << b)) != 0) {
                d->loc_order[d->loc_count++] = b;
            }
        }
    }
    s->directives[i] = d;
    return arg == NULL ? 0 : gq_field_arg_add(s, d, arg, arg_type, arg_def, arg_desc);
}

static int gq_builtins(struct graphql_schema *s)
{
    LMQ_ASSERT(s != NULL && s->types_count == 0);
    static const char *const scalars[][2] = {
        {"Int", "The `Int` scalar type represents non-fractional signed whole numeric values. Int "
                "can represent values between -(2^31) and 2^31 - 1."},
        {"Float", "The `Float` scalar type represents signed double-precision fractional values as "
                  "specified by [IEEE 754](https://en.wikipedia.org/wiki/IEEE_floating_point)."},
        {"String", "The `String` scalar type represents textual data, represented as UTF-8 "
                   "character sequences. The String type is most often used by GraphQL to "
                   "represent free-form human-readable text."},
        {"Boolean", "The `Boolean` scalar type represents `true` or `false`."},
        {"ID",
         "The `ID` scalar type represents a unique identifier, often used to refetch an object or "
         "as key for a cache. The ID type appears in a JSON response as a String; however, it is "
         "not intended to be human-readable. When expected as an input type, any string (such as "
         "`\"4\"`) or integer (such as `4`) input value will be accepted as an ID."},
    };
    struct graphql_object *t[5] = {0};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(scalars); i++) {
        int rc = gq_add_type(s, GQ_K_SCALAR, scalars[i][0], scalars[i][1], &t[i]);
        if (rc != 0) {
            return rc;
        }
        t[i]->builtin = true;
    }
    s->t_int = t[0];
    s->t_float = t[1];
    s->t_string = t[2];
    s->t_boolean = t[3];
    s->t_id = t[4];
    int rc = gq_directive_add(s, 0, "include",
                              "Directs the executor to include this field or fragment only when "
                              "the `if` argument is true.",
                              GQ_LOC_FIELD | GQ_LOC_FRAGMENT_SPREAD | GQ_LOC_INLINE_FRAGMENT, "if",
                              "Boolean!", NULL, "Included when true.");
    if (rc == 0) {
        rc = gq_directive_add(
            s, 1, "skip",
            "Directs the executor to skip this field or fragment when the `if` argument is true.",
            GQ_LOC_FIELD | GQ_LOC_FRAGMENT_SPREAD | GQ_LOC_INLINE_FRAGMENT, "if", "Boolean!", NULL,
            "Skipped when true.");
    }
    if (rc == 0) {
        rc = gq_directive_add(
            s, 2, "deprecated", "Marks an element of a GraphQL schema as no longer supported.",
            GQ_LOC_FIELD_DEFINITION | GQ_LOC_ARGUMENT_DEFINITION | GQ_LOC_INPUT_FIELD_DEFINITION |
                GQ_LOC_ENUM_VALUE | GQ_LOC_DIRECTIVE_DEFINITION,
            "reason", "String!", "\"No longer supported\"",
            "Explains why this element was deprecated, usually also including a suggestion for how "
            "to access supported similar data. Formatted using the Markdown syntax, as specified "
            "by [CommonMark](https://commonmark.org/).");
    }
    if (rc == 0) {
        rc = gq_directive_add(s, 3, "specifiedBy",
                              "Exposes a URL that specifies the behavior of this scalar.",
                              GQ_LOC_SCALAR, "url", "String!", NULL,
                              "The URL that specifies the behavior of this scalar.");
    }
    if (rc == 0) {
        rc = gq_directive_add(
            s, 4, "oneOf",
            "Indicates exactly one field must be supplied and this field must not be `null`.",
            GQ_LOC_INPUT_OBJECT, NULL, NULL, NULL, NULL);
    }
    return rc;
}

int graphql_schema_new(struct graphql_schema **out)
{
    LMQ_ASSERT(out != NULL);
    struct graphql_schema *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return LMQ_ENOMEM;
    }
    s->building_builtins = true;
    int rc = gq_builtins(s);
    if (rc == 0) {
        rc = gq_introspection_add(s);
    }
    s->building_builtins = false;
    if (rc != 0) {
        graphql_schema_free(s);
        *out = NULL;
        return rc == LMQ_ENOMEM ? LMQ_ENOMEM : rc;
    }
    *out = s;
    return 0;
}

static void gq_field_free_defaults(struct graphql_field *f)
{
    for (size_t k = 0; f != NULL && k < f->args_count; k++) {
        json_decref(f->args[k].def);
    }
}

void graphql_schema_free(struct graphql_schema *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->types_count; i++) {
        for (size_t j = 0; j < s->types[i]->fields_count; j++) {
            gq_field_free_defaults(s->types[i]->fields[j]);
        }
    }
    for (size_t i = 0; i < GRAPHQL_DIRECTIVES_COUNT; i++) {
        gq_field_free_defaults(s->directives[i]);
    }
    gq_field_free_defaults(s->f_type);
    free(s->types);
    gq_arena_free(&s->arena);
    free(s);
}

/* ---- lookups and type references ---- */

struct graphql_object *gq_schema_type(const struct graphql_schema *s, const char *name)
{
    for (size_t i = 0; name != NULL && i < s->types_count; i++) {
        if (strcmp(s->types[i]->name, name) == 0) {
            return s->types[i];
        }
    }
    return NULL;
}

struct graphql_field *gq_type_field(const struct graphql_object *t, const char *name)
{
    for (size_t i = 0; t != NULL && i < t->fields_count; i++) {
        if (strcmp(t->fields[i]->name, name) == 0) {
            return t->fields[i];
        }
    }
    return NULL;
}

const struct gq_arg *gq_field_arg(const struct graphql_field *f, const char *name)
{
    for (size_t i = 0; f != NULL && i < f->args_count; i++) {
        if (strcmp(f->args[i].name, name) == 0) {
            return &f->args[i];
        }
    }
    return NULL;
}

struct graphql_field *gq_schema_directive(const struct graphql_schema *s, const char *name)
{
    for (size_t i = 0; i < GRAPHQL_DIRECTIVES_COUNT; i++) {
        if (strcmp(s->directives[i]->name, name) == 0) {
            return s->directives[i];
        }
    }
    return NULL;
}

struct graphql_object *gq_tref_named(const struct gq_tref *t)
{
    while (t != NULL && t->kind != GQ_TR_NAMED) {
        t = t->of;
    }
    return t != NULL ? t->t : NULL;
}

static size_t gq_tref_print(const struct gq_tref *t, char *buf, size_t cap)
{
    if (t->kind == GQ_TR_NAMED) {
        return (size_t)snprintf(buf, cap, "%s", t->name);
    }
    size_t n = 0;
    if (t->kind == GQ_TR_LIST && n < cap) {
        buf[n++] = '[';
    }
    n += gq_tref_print(t->of, buf + LMQ_MIN(n, cap), n < cap ? cap - n : 0);
    if (n < cap) {
        buf[n++] = t->kind == GQ_TR_LIST ? ']' : '!';
    }
    if (n < cap) {
        buf[n] = '\0';
    }
    return n;
}

char *gq_tref_str(struct gq_arena *a, const struct gq_tref *t)
{
    char buf[512];
    buf[0] = '\0';
    size_t n = gq_tref_print(t, buf, sizeof(buf) - 1);
    buf[LMQ_MIN(n, sizeof(buf) - 1)] = '\0';
    return gq_strndup(a, buf, strlen(buf));
}

static struct gq_tref *gq_tref_parse_at(struct gq_arena *a, const char **p, int depth)
{
    LMQ_ASSERT(a != NULL && p != NULL && *p != NULL);
    while (**p == ' ') {
        (*p)++;
    }
    struct gq_tref *t = gq_alloc(a, sizeof(*t));
    if (t == NULL || depth > GRAPHQL_VALUE_DEPTH_MAX) {
        return NULL;
    }
    if (**p == '[') {
        (*p)++;
        t->kind = GQ_TR_LIST;
        t->of = gq_tref_parse_at(a, p, depth + 1);
        while (**p == ' ') {
            (*p)++;
        }
        if (t->of == NULL || **p != ']') {
            return NULL;
        }
        (*p)++;
    } else {
        const char *st = *p;
        while ((**p >= 'a' && **p <= 'z') || (**p >= 'A' && **p <= 'Z') || **p == '_' ||
               (*p > st && **p >= '0' && **p <= '9')) {
            (*p)++;
        }
        if (*p == st) {
            return NULL;
        }
        t->kind = GQ_TR_NAMED;
        t->name = gq_strndup(a, st, (size_t)(*p - st));
    }
    while (**p == ' ') {
        (*p)++;
    }
    if (**p == '!') {
        (*p)++;
        struct gq_tref *nn = gq_alloc(a, sizeof(*nn));
        if (nn == NULL) {
            return NULL;
        }
        nn->kind = GQ_TR_NONNULL;
        nn->of = t;
        return nn;
    }
    return t;
}

struct gq_tref *gq_tref_parse(struct gq_arena *a, const char *src)
{
    const char *p = src;
    struct gq_tref *t = gq_tref_parse_at(a, &p, 0);
    while (*p == ' ') {
        p++;
    }
    return (t == NULL || *p != '\0') ? NULL : t;
}

bool gq_tref_equal(const struct gq_tref *a, const struct gq_tref *b)
{
    while (a != NULL && b != NULL && a->kind == b->kind && a->kind != GQ_TR_NAMED) {
        a = a->of;
        b = b->of;
    }
    return a != NULL && b != NULL && a->kind == b->kind && strcmp(a->name, b->name) == 0;
}

bool gq_is_leaf(const struct graphql_object *t)
{
    return t != NULL && (t->kind == GQ_K_SCALAR || t->kind == GQ_K_ENUM);
}

bool gq_is_input_type(const struct gq_tref *t)
{
    const struct graphql_object *n = gq_tref_named(t);
    return n != NULL && n->kind != GQ_K_OBJECT;
}

/* ---- finish ---- */

static int gq_resolve(struct graphql_schema *s, const char *src, struct gq_tref **out, bool input,
                      const char *where, char *err, size_t err_len)
{
    *out = gq_tref_parse(&s->arena, src);
    if (*out == NULL) {
        return lmq_errf(err, err_len, "%s: bad type reference \"%s\".", where, src), LMQ_EINVAL;
    }
    struct gq_tref *n = *out;
    while (n->kind != GQ_TR_NAMED) {
        n = n->of;
    }
    n->t = gq_schema_type(s, n->name);
    if (n->t == NULL) {
        return lmq_errf(err, err_len, "Unknown type \"%s\" (%s).", n->name, where), LMQ_EINVAL;
    }
    if (input && n->t->kind == GQ_K_OBJECT) {
        return lmq_errf(err, err_len, "The type of %s must be Input Type but got: %s.", where, src),
               LMQ_EINVAL;
    }
    if (!input && n->t->kind == GQ_K_INPUT) {
        return lmq_errf(err, err_len, "The type of %s must be Output Type but got: %s.", where,
                        src),
               LMQ_EINVAL;
    }
    return 0;
}

static int gq_finish_args(struct graphql_schema *s, struct graphql_field *f, const char *owner,
                          char *err, size_t err_len)
{
    char where[300];
    for (size_t k = 0; k < f->args_count; k++) {
        struct gq_arg *a = &f->args[k];
        snprintf(where, sizeof(where), "%s%s(%s:)", owner, f->name, a->name);
        int rc = gq_resolve(s, a->type_src, &a->type, true, where, err, err_len);
        if (rc != 0) {
            return rc;
        }
        for (size_t j = 0; j < k; j++) {
            if (strcmp(f->args[j].name, a->name) == 0) {
                return lmq_errf(err, err_len, "Argument %s can only be defined once.", where),
                       LMQ_EINVAL;
            }
        }
    }
    return 0;
}

/* Default values are checked once every type reference is resolved. */
static int gq_check_defaults(const struct graphql_field *f, const char *owner, char *err,
                             size_t err_len)
{
    for (size_t k = 0; f != NULL && k < f->args_count; k++) {
        const struct gq_arg *a = &f->args[k];
        char where[300];
        snprintf(where, sizeof(where), "%s%s(%s:)", owner, f->name, a->name);
        if (a->def != NULL) {
            struct gq_cerr e;
            json_t *v = gq_coerce_input(a->type, a->def, &e);
            if (v == NULL) {
                lmq_errf(err, err_len, "%s has invalid default value%s: %s", where, e.path[0],
                         e.msg[0]);
                gq_cerr_free(&e);
                return LMQ_EINVAL;
            }
            json_decref(v);
        }
    }
    return 0;
}

static int gq_finish_type(struct graphql_schema *s, struct graphql_object *t, char *err,
                          size_t err_len)
{
    LMQ_ASSERT(s != NULL && t != NULL && t->schema == s);
    char where[300];
    if (!t->builtin && t->name[0] == '_' && t->name[1] == '_') {
        return lmq_errf(err, err_len,
                        "Name \"%s\" must not begin with \"__\", which is reserved by GraphQL "
                        "introspection.",
                        t->name),
               LMQ_EINVAL;
    }
    if ((t->kind == GQ_K_OBJECT || t->kind == GQ_K_INPUT) && t->fields_count == 0) {
        return lmq_errf(err, err_len, "Type %s must define one or more fields.", t->name),
               LMQ_EINVAL;
    }
    if (t->kind == GQ_K_ENUM && t->values_count == 0) {
        return lmq_errf(err, err_len, "Enum type %s must define one or more values.", t->name),
               LMQ_EINVAL;
    }
    for (size_t i = 0; i < t->values_count; i++) {
        const char *v = t->values[i];
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0 || strcmp(v, "null") == 0) {
            return lmq_errf(err, err_len, "Enum type %s cannot include value: %s.", t->name, v),
                   LMQ_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t->values[j], v) == 0) {
                return lmq_errf(err, err_len, "Enum value \"%s.%s\" can only be defined once.",
                                t->name, v),
                       LMQ_EINVAL;
            }
        }
    }
    for (size_t i = 0; i < t->fields_count; i++) {
        struct graphql_field *f = t->fields[i];
        snprintf(where, sizeof(where), "%s.%s", t->name, f->name);
        if (!t->builtin && f->name[0] == '_' && f->name[1] == '_') {
            return lmq_errf(err, err_len,
                            "Name \"%s\" must not begin with \"__\", which is reserved by GraphQL "
                            "introspection.",
                            f->name),
                   LMQ_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t->fields[j]->name, f->name) == 0) {
                return lmq_errf(err, err_len, "Field \"%s\" can only be defined once.", where),
                       LMQ_EINVAL;
            }
        }
        int rc = gq_resolve(s, f->type_src, &f->type, t->kind == GQ_K_INPUT, where, err, err_len);
        if (rc == 0) {
            snprintf(where, sizeof(where), "%s.", t->name);
            rc = gq_finish_args(s, f, where, err, err_len);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* An input object must not reach itself through non-null (not list) fields only. */
static bool gq_input_cycle(struct graphql_object *t, struct graphql_object *start, int depth)
{
    if (depth > GRAPHQL_VALUE_DEPTH_MAX * 4) {
        return false;
    }
    for (size_t i = 0; i < t->fields_count; i++) {
        const struct gq_tref *r = t->fields[i]->type;
        if (r->kind == GQ_TR_NONNULL && r->of->kind == GQ_TR_NAMED &&
            r->of->t->kind == GQ_K_INPUT) {
            if (r->of->t == start || gq_input_cycle(r->of->t, start, depth + 1)) {
                return true;
            }
        }
    }
    return false;
}

/* graphql-js's type map order: the defined types in order, each followed by the built-in
 * types first reached from it (depth first, a field's type before its arguments'), then those
 * of the directives and the introspection types reached from __Schema. */
static void gq_order_add(struct graphql_schema *s, struct graphql_object *t, size_t *n, bool *seen,
                         int depth)
{
    size_t i = 0;
    while (s->types[i] != t) {
        i++;
    }
    if (seen[i] || depth > 64) {
        return;
    }
    seen[i] = true;
    s->order[(*n)++] = t;
    for (size_t j = 0; j < t->fields_count; j++) {
        gq_order_add(s, gq_tref_named(t->fields[j]->type), n, seen, depth + 1);
        for (size_t k = 0; k < t->fields[j]->args_count; k++) {
            gq_order_add(s, gq_tref_named(t->fields[j]->args[k].type), n, seen, depth + 1);
        }
    }
}

static int gq_order(struct graphql_schema *s)
{
    bool *seen = calloc(s->types_count, sizeof(*seen));
    size_t n = 0;
    s->order = gq_alloc(&s->arena, s->types_count * sizeof(*s->order));
    if (seen == NULL || s->order == NULL) {
        free(seen);
        return LMQ_ENOMEM;
    }
    for (size_t i = 0; i < s->types_count; i++) {
        seen[i] = !s->types[i]->builtin;
    }
    for (size_t i = 0; i < s->types_count; i++) {
        if (!s->types[i]->builtin) {
            seen[i] = false;
            gq_order_add(s, s->types[i], &n, seen, 0);
        }
    }
    for (size_t i = 0; i < GRAPHQL_DIRECTIVES_COUNT; i++) {
        for (size_t k = 0; k < s->directives[i]->args_count; k++) {
            gq_order_add(s, gq_tref_named(s->directives[i]->args[k].type), &n, seen, 0);
        }
    }
    gq_order_add(s, gq_schema_type(s, "__Schema"), &n, seen, 0);
    s->order_visible = n;
    for (size_t i = 0; i < s->types_count; i++) {
        if (!seen[i]) { /* unreferenced built-ins are not in graphql-js's map either */
            seen[i] = true;
            s->types[i]->hidden = true;
            s->order[n++] = s->types[i];
        }
    }
    LMQ_ASSERT(n == s->types_count);
    free(seen);
    return 0;
}

/* Names, type references and arguments of every type and directive. */
static int gq_finish_types(struct graphql_schema *s, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && !s->finished);
    for (size_t i = 0; i < s->types_count; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->types[i]->name, s->types[j]->name) == 0) {
                return lmq_errf(err, err_len,
                                "Schema must contain uniquely named types but contains multiple "
                                "types named \"%s\".",
                                s->types[i]->name),
                       LMQ_EINVAL;
            }
        }
        int rc = gq_finish_type(s, s->types[i], err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < GRAPHQL_DIRECTIVES_COUNT; i++) {
        int rc = gq_finish_args(s, s->directives[i], "@", err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    return gq_finish_args(s, s->f_type, "Query.", err, err_len);
}

/* Input objects that can be built and default values that coerce (references resolved). */
static int gq_finish_values(struct graphql_schema *s, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && !s->finished);
    for (size_t i = 0; i < s->types_count; i++) {
        if (s->types[i]->kind == GQ_K_INPUT && gq_input_cycle(s->types[i], s->types[i], 0)) {
            return lmq_errf(err, err_len,
                            "Cannot reference Input Object \"%s\" within itself through a series "
                            "of non-null fields.",
                            s->types[i]->name),
                   LMQ_EINVAL;
        }
    }
    for (size_t i = 0; i < s->types_count; i++) {
        char owner[300];
        snprintf(owner, sizeof(owner), "%s.", s->types[i]->name);
        for (size_t j = 0; j < s->types[i]->fields_count; j++) {
            int rc = gq_check_defaults(s->types[i]->fields[j], owner, err, err_len);
            if (rc != 0) {
                return rc;
            }
        }
    }
    for (size_t i = 0; i < GRAPHQL_DIRECTIVES_COUNT; i++) {
        int rc = gq_check_defaults(s->directives[i], "@", err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The query root, the meta fields and the type map's order. */
static int gq_finish_roots(struct graphql_schema *s, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && !s->finished);
    s->query = gq_schema_type(s, s->query_name);
    if (s->query == NULL) {
        return lmq_errf(err, err_len, "Query root type must be provided."), LMQ_EINVAL;
    }
    if (s->query->kind != GQ_K_OBJECT) {
        return lmq_errf(err, err_len, "Query root type must be Object type, it cannot be %s.",
                        s->query->name),
               LMQ_EINVAL;
    }
    int rc = gq_resolve(s, "__Schema!", &s->f_schema->type, false, "__schema", err, err_len);
    if (rc == 0) {
        rc = gq_resolve(s, "__Type", &s->f_type->type, false, "__type", err, err_len);
    }
    if (rc == 0) {
        rc = gq_resolve(s, "String!", &s->f_typename->type, false, "__typename", err, err_len);
    }
    return rc == 0 ? gq_order(s) : rc;
}

int graphql_schema_finish(struct graphql_schema *s, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL);
    if (s->finished) {
        return lmq_errf(err, err_len, "The schema is already finished."), LMQ_EINVAL;
    }
    if (s->build_err != NULL) {
        return lmq_errf(err, err_len, "%s", s->build_err), LMQ_EINVAL;
    }
    int rc = gq_finish_types(s, err, err_len);
    if (rc == 0) {
        rc = gq_finish_values(s, err, err_len);
    }
    if (rc == 0) {
        rc = gq_finish_roots(s, err, err_len);
    }
    if (rc != 0) {
        return rc;
    }
    LMQ_ASSERT(s->query != NULL && s->order != NULL);
    s->finished = true;
    return 0;
}
