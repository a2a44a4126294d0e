/*
 * Introspection (spec 4.2 and 4.5): the __ types built with the schema builder, answered by
 * the engine (resolver tag GQ_TAG_INTRO). Introspection parent values are small JSON handles:
 * a type reference {"name"} or {"kind","of"}, a field {"t","f"}, an argument {"t","f","a"} or
 * {"d","a"}, an input field {"t","i"}, an enum value {"t","v"}, a directive {"d"}.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_introspect.h"

#define GQ_TRY_ADD(x)                                                                              \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ != 0) {                                                                            \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

static int gq_intro_fields(struct graphql_object *o, const char *const (*fields)[2], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct graphql_field *f = NULL;
        GQ_TRY_ADD(graphql_object_field(o, fields[i][0], fields[i][1], NULL, GQ_TAG_INTRO, &f));
        if (strcmp(fields[i][0], "fields") == 0 || strcmp(fields[i][0], "enumValues") == 0 ||
            strcmp(fields[i][0], "args") == 0 || strcmp(fields[i][0], "inputFields") == 0 ||
            strcmp(fields[i][0], "directives") == 0) {
            GQ_TRY_ADD(graphql_field_arg(f, "includeDeprecated", "Boolean!", "false", NULL));
        }
    }
    return 0;
}

int gq_introspection_add(struct graphql_schema *s)
{
    LMQ_ASSERT(s != NULL && s->building_builtins);
    static const char *const schema_f[][2] = {
        {"description", "String"},      {"types", "[__Type!]!"},
        {"queryType", "__Type!"},       {"mutationType", "__Type"},
        {"subscriptionType", "__Type"}, {"directives", "[__Directive!]!"}};
    static const char *const type_f[][2] = {{"kind", "__TypeKind!"},
                                            {"name", "String"},
                                            {"description", "String"},
                                            {"specifiedByURL", "String"},
                                            {"fields", "[__Field!]"},
                                            {"interfaces", "[__Type!]"},
                                            {"possibleTypes", "[__Type!]"},
                                            {"enumValues", "[__EnumValue!]"},
                                            {"inputFields", "[__InputValue!]"},
                                            {"ofType", "__Type"},
                                            {"isOneOf", "Boolean"}};
    static const char *const field_f[][2] = {
        {"name", "String!"}, {"description", "String"},    {"args", "[__InputValue!]!"},
        {"type", "__Type!"}, {"isDeprecated", "Boolean!"}, {"deprecationReason", "String"}};
    static const char *const input_f[][2] = {
        {"name", "String!"},        {"description", "String"},    {"type", "__Type!"},
        {"defaultValue", "String"}, {"isDeprecated", "Boolean!"}, {"deprecationReason", "String"}};
    static const char *const enum_f[][2] = {{"name", "String!"},
                                            {"description", "String"},
                                            {"isDeprecated", "Boolean!"},
                                            {"deprecationReason", "String"}};
    static const char *const dir_f[][2] = {{"name", "String!"},
                                           {"description", "String"},
                                           {"isRepeatable", "Boolean!"},
                                           {"locations", "[__DirectiveLocation!]!"},
                                           {"args", "[__InputValue!]!"},
                                           {"isDeprecated", "Boolean!"},
                                           {"deprecationReason", "String"}};
    static const char *const kinds[] = {"SCALAR", "OBJECT",       "INTERFACE", "UNION",
                                        "ENUM",   "INPUT_OBJECT", "LIST",      "NON_NULL"};
    struct graphql_object *o = NULL;
    GQ_TRY_ADD(graphql_schema_object(s, "__Schema", NULL, &o));
    GQ_TRY_ADD(gq_intro_fields(o, schema_f, LMQ_ARRAY_LEN(schema_f)));
    GQ_TRY_ADD(graphql_schema_object(s, "__Type", NULL, &o));
    GQ_TRY_ADD(gq_intro_fields(o, type_f, LMQ_ARRAY_LEN(type_f)));
    GQ_TRY_ADD(graphql_schema_enum(s, "__TypeKind", NULL, kinds, LMQ_ARRAY_LEN(kinds)));
    GQ_TRY_ADD(graphql_schema_object(s, "__Field", NULL, &o));
    GQ_TRY_ADD(gq_intro_fields(o, field_f, LMQ_ARRAY_LEN(field_f)));
    GQ_TRY_ADD(graphql_schema_object(s, "__InputValue", NULL, &o));
    GQ_TRY_ADD(gq_intro_fields(o, input_f, LMQ_ARRAY_LEN(input_f)));
    GQ_TRY_ADD(graphql_schema_object(s, "__EnumValue", NULL, &o));
    GQ_TRY_ADD(gq_intro_fields(o, enum_f, LMQ_ARRAY_LEN(enum_f)));
    GQ_TRY_ADD(graphql_schema_object(s, "__Directive", NULL, &o));
    GQ_TRY_ADD(gq_intro_fields(o, dir_f, LMQ_ARRAY_LEN(dir_f)));
    GQ_TRY_ADD(graphql_schema_enum(s, "__DirectiveLocation", NULL, gq_dirloc_names, GQ_LOC_COUNT));
    /* the meta fields, owned by a hidden holder object */
    struct graphql_object holder = {.kind = GQ_K_OBJECT, .schema = s};
    GQ_TRY_ADD(graphql_object_field(&holder, "__schema", "__Schema!",
                                    "Access the current type schema of this server.", GQ_TAG_SCHEMA,
                                    &s->f_schema));
    GQ_TRY_ADD(graphql_object_field(&holder, "__type", "__Type",
                                    "Request the type information of a single type.", GQ_TAG_TYPE,
                                    &s->f_type));
    GQ_TRY_ADD(graphql_field_arg(s->f_type, "name", "String!", NULL, NULL));
    GQ_TRY_ADD(graphql_object_field(&holder, "__typename", "String!",
                                    "The name of the current Object type at runtime.",
                                    GQ_TAG_TYPENAME, &s->f_typename));
    s->f_schema->owner = s->f_type->owner = s->f_typename->owner = NULL;
    return 0;
}

/* ---- values as GraphQL literals (defaults in SDL and __InputValue.defaultValue) ---- */

static void gq_lit_string(struct gq_out *b, const char *str)
{
    gq_outn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)str; *p != '\0'; p++) {
        static const char *const esc[32] = {
            "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
            "\\b",     "\\t",     "\\n",     "\\u000B", "\\f",     "\\r",     "\\u000E", "\\u000F",
            "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
            "\\u0018", "\\u0019", "\\u001A", "\\u001B", "\\u001C", "\\u001D", "\\u001E", "\\u001F"};
        if (*p < 32) {
            gq_outn(b, esc[*p], strlen(esc[*p]));
        } else if (*p == '"' || *p == '\\') {
            gq_outf(b, "\\%c", *p);
        } else if (*p == 0x7f) {
            gq_outn(b, "\\u007F", 6);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            gq_outf(b, "\\u%04X", (unsigned)p[1]);
            p++;
        } else {
            gq_outn(b, p, 1);
        }
    }
    gq_outn(b, "\"", 1);
}

/* A double as JavaScript's String(n) prints it (shortest round trip). */
void gq_print_number(char *buf, size_t cap, double d)
{
    if (d == floor(d) && fabs(d) < 1e21) {
        snprintf(buf, cap, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    /* JS writes exponents as e+21 / e-7, C as e+21 / e-07 */
    char *e = strchr(buf, 'e');
    if (e != NULL && (e[1] == '-' || e[1] == '+') && e[2] == '0') {
        memmove(e + 2, e + 3, strlen(e + 3) + 1);
    }
}

void gq_print_literal(struct gq_out *b, const json_t *v, const struct gq_tref *t, int depth)
{
    LMQ_ASSERT(b != NULL && v != NULL);
    char num[64];
    if (t != NULL && t->kind == GQ_TR_NONNULL) {
        t = t->of;
    }
    const struct graphql_object *n = t != NULL && t->kind == GQ_TR_NAMED ? t->t : NULL;
    if (depth > GRAPHQL_VALUE_DEPTH_MAX || json_is_null(v)) {
        gq_outn(b, "null", 4);
    } else if (json_is_array(v) || (t != NULL && t->kind == GQ_TR_LIST)) {
        const struct gq_tref *item = t != NULL && t->kind == GQ_TR_LIST ? t->of : NULL;
        if (!json_is_array(v)) {
            gq_print_literal(b, v, item, depth + 1);
            return;
        }
        gq_outn(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                gq_outn(b, ", ", 2);
            }
            gq_print_literal(b, json_array_get(v, i), item, depth + 1);
        }
        gq_outn(b, "]", 1);
    } else if (json_is_object(v)) {
        bool first = true;
        if (json_object_size(v) == 0) {
            gq_outn(b, "{}", 2);
            return;
        }
        gq_outn(b, "{ ", 2);
        /* in the input type's field order when known */
        for (size_t i = 0; n != NULL && i < n->fields_count; i++) {
            json_t *fv = json_object_get(v, n->fields[i]->name);
            if (fv != NULL) {
                gq_outf(b, "%s%s: ", first ? "" : ", ", n->fields[i]->name);
                gq_print_literal(b, fv, n->fields[i]->type, depth + 1);
                first = false;
            }
        }
        const char *k;
        json_t *fv;
        json_object_foreach((json_t *)v, k, fv)
        {
            if (n == NULL) {
                gq_outf(b, "%s%s: ", first ? "" : ", ", k);
                gq_print_literal(b, fv, NULL, depth + 1);
                first = false;
            }
        }
        gq_outn(b, " }", 2);
    } else if (json_is_string(v) && n != NULL && n->kind == GQ_K_ENUM) {
        gq_outf(b, "%s", json_string_value(v));
    } else if (json_is_string(v)) {
        gq_lit_string(b, json_string_value(v));
    } else if (json_is_boolean(v)) {
        gq_outf(b, "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_integer(v)) {
        gq_outf(b, "%lld", (long long)json_integer_value(v));
    } else {
        gq_print_number(num, sizeof(num), json_number_value(v));
        gq_outf(b, "%s", num);
    }
}

/* ---- resolving introspection fields ---- */

static json_t *gq_i_tref(const struct gq_tref *t)
{
    if (t->kind == GQ_TR_NAMED) {
        return json_pack("{s:s}", "name", t->name);
    }
    return json_pack("{s:s,s:o}", "kind", t->kind == GQ_TR_LIST ? "LIST" : "NON_NULL", "of",
                     gq_i_tref(t->of));
}

static json_t *gq_i_named(const char *name)
{
    return json_pack("{s:s}", "name", name);
}

static const char *gq_kind_name(int kind)
{
    static const char *const names[] = {"SCALAR", "OBJECT", "INPUT_OBJECT", "ENUM"};
    return names[kind];
}

static json_t *gq_str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *gq_i_args(const struct graphql_field *f, const char *owner_key, const char *owner)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && f != NULL && i < f->args_count; i++) {
        json_t *o =
            json_pack("{s:s,s:s,s:s}", owner_key, owner, "f", f->name, "a", f->args[i].name);
        if (json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *gq_i_schema(const struct graphql_schema *s, const char *field)
{
    LMQ_ASSERT(s != NULL && s->query != NULL);
    if (strcmp(field, "types") == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < s->order_visible; i++) {
            if (json_array_append_new(arr, gq_i_named(s->order[i]->name)) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    if (strcmp(field, "queryType") == 0) {
        return gq_i_named(s->query->name);
    }
    if (strcmp(field, "directives") == 0) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < GRAPHQL_DIRECTIVES_COUNT; i++) {
            if (json_array_append_new(arr, json_pack("{s:s}", "d", s->directives[i]->name)) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    return json_null(); /* description, mutationType, subscriptionType */
}

static json_t *gq_i_type(const struct graphql_schema *s, const char *field, const json_t *p)
{
    const char *wrap = json_string_value(json_object_get(p, "kind"));
    if (wrap != NULL) {
        if (strcmp(field, "kind") == 0) {
            return json_string(wrap);
        }
        if (strcmp(field, "ofType") == 0) {
            return json_deep_copy(json_object_get(p, "of"));
        }
        return json_null();
    }
    const struct graphql_object *t =
        gq_schema_type(s, json_string_value(json_object_get(p, "name")));
    LMQ_ASSERT(t != NULL);
    if (strcmp(field, "kind") == 0) {
        return json_string(gq_kind_name(t->kind));
    }
    if (strcmp(field, "name") == 0) {
        return json_string(t->name);
    }
    if (strcmp(field, "description") == 0) {
        return gq_str_or_null(t->desc);
    }
    if (strcmp(field, "specifiedByURL") == 0) {
        return gq_str_or_null(t->specified_by);
    }
    if (strcmp(field, "isOneOf") == 0) {
        return t->kind == GQ_K_INPUT ? json_false() : json_null();
    }
    if (strcmp(field, "interfaces") == 0) {
        return t->kind == GQ_K_OBJECT ? json_array() : json_null();
    }
    bool fields = strcmp(field, "fields") == 0, inputs = strcmp(field, "inputFields") == 0;
    if ((fields && t->kind == GQ_K_OBJECT) || (inputs && t->kind == GQ_K_INPUT)) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < t->fields_count; i++) {
            json_t *o =
                json_pack("{s:s,s:s}", "t", t->name, fields ? "f" : "i", t->fields[i]->name);
            if (json_array_append_new(arr, o) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    if (strcmp(field, "enumValues") == 0 && t->kind == GQ_K_ENUM) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < t->values_count; i++) {
            if (json_array_append_new(
                    arr, json_pack("{s:s,s:s}", "t", t->name, "v", t->values[i])) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    return json_null(); /* possibleTypes, ofType, and lists on the wrong kind */
}

static json_t *gq_i_default(const struct gq_arg *a)
{
    if (a->def == NULL) {
        return json_null();
    }
    struct gq_out b = {0};
    gq_print_literal(&b, a->def, a->type, 0);
    json_t *r = b.data != NULL ? json_stringn((const char *)b.data, b.len) : NULL;
    gq_out_free(&b);
    return r;
}

static json_t *gq_i_value(const struct graphql_schema *s, const char *ptype, const char *field,
                          const json_t *p)
{
    const char *tn = json_string_value(json_object_get(p, "t"));
    const char *dn = json_string_value(json_object_get(p, "d"));
    const char *fn = json_string_value(json_object_get(p, "f"));
    const char *an = json_string_value(json_object_get(p, "a"));
    const char *in = json_string_value(json_object_get(p, "i"));
    const char *vn = json_string_value(json_object_get(p, "v"));
    const struct graphql_object *t = tn != NULL ? gq_schema_type(s, tn) : NULL;
    const struct graphql_field *f = dn != NULL   ? gq_schema_directive(s, dn)
                                    : fn != NULL ? gq_type_field(t, fn)
                                    : in != NULL ? gq_type_field(t, in)
                                                 : NULL;
    if (strcmp(field, "isDeprecated") == 0 || strcmp(field, "isRepeatable") == 0) {
        return json_false();
    }
    if (strcmp(field, "deprecationReason") == 0) {
        return json_null();
    }
    if (strcmp(ptype, "__EnumValue") == 0) {
        return strcmp(field, "name") == 0 ? json_string(vn) : json_null();
    }
    if (strcmp(ptype, "__Directive") == 0) {
        LMQ_ASSERT(f != NULL);
        if (strcmp(field, "locations") == 0) {
            json_t *arr = json_array();
            for (size_t i = 0; arr != NULL && i < f->loc_count; i++) {
                if (json_array_append_new(arr, json_string(gq_dirloc_names[f->loc_order[i]])) !=
                    0) {
                    json_decref(arr);
                    return NULL;
                }
            }
            return arr;
        }
        if (strcmp(field, "args") == 0) {
            return gq_i_args(f, "d", dn);
        }
        return strcmp(field, "name") == 0 ? json_string(f->name) : gq_str_or_null(f->desc);
    }
    LMQ_ASSERT(f != NULL);
    if (an != NULL) { /* an argument */
        const struct gq_arg *a = gq_field_arg(f, an);
        LMQ_ASSERT(a != NULL);
        if (strcmp(field, "name") == 0) {
            return json_string(a->name);
        }
        if (strcmp(field, "type") == 0) {
            return gq_i_tref(a->type);
        }
        return strcmp(field, "defaultValue") == 0 ? gq_i_default(a) : gq_str_or_null(a->desc);
    }
    if (strcmp(field, "name") == 0) {
        return json_string(f->name);
    }
    if (strcmp(field, "type") == 0) {
        return gq_i_tref(f->type);
    }
    if (strcmp(field, "args") == 0) {
        return gq_i_args(f, "t", tn);
    }
    return strcmp(field, "description") == 0 ? gq_str_or_null(f->desc) : json_null();
}

json_t *gq_introspect_resolve(const struct graphql_schema *s, const struct graphql_field *f,
                              const char *ptype, const json_t *args, const json_t *parent)
{
    LMQ_ASSERT(s != NULL && f != NULL);
    if (f->tag == GQ_TAG_SCHEMA) {
        return json_object();
    }
    if (f->tag == GQ_TAG_TYPE) {
        const char *name = json_string_value(json_object_get(args, "name"));
        const struct graphql_object *t = gq_schema_type(s, name);
        return t != NULL && !t->hidden ? gq_i_named(name) : json_null();
    }
    if (f->tag == GQ_TAG_TYPENAME) {
        return json_string(ptype);
    }
    LMQ_ASSERT(f->tag == GQ_TAG_INTRO);
    if (strcmp(ptype, "__Schema") == 0) {
        return gq_i_schema(s, f->name);
    }
    if (strcmp(ptype, "__Type") == 0) {
        return gq_i_type(s, f->name, parent);
    }
    return gq_i_value(s, ptype, f->name, parent);
}
