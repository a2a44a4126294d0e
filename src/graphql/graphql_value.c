/*
 * Input coercion (spec 3.5 scalars, 3.9 enums, 3.10 input objects, 3.11 lists) of variable
 * values (JSON) and of literals in a document, with graphql-js's messages; printing of values
 * in messages (graphql-js inspect() and printForError()).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "graphql/graphql_introspect.h"

#define GQ_MSG_MAX_BYTES 2048

static void gq_inspect_into(struct gq_out *b, const json_t *v, int depth)
{
    LMQ_ASSERT(b != NULL && v != NULL);
    char num[64];
    if (json_is_null(v)) {
        gq_outf(b, "null");
    } else if (json_is_string(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        gq_outf(b, "%s", s != NULL ? s : "\"\"");
        free(s);
    } else if (json_is_boolean(v)) {
        gq_outf(b, "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_integer(v)) {
        gq_outf(b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        gq_print_number(num, sizeof(num), json_real_value(v));
        gq_outf(b, "%s", num);
    } else if (json_is_array(v)) {
        if (depth >= 2) {
            gq_outf(b, "[Array]");
            return;
        }
        gq_outf(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            gq_outf(b, "%s", i > 0 ? ", " : "");
            gq_inspect_into(b, json_array_get(v, i), depth + 1);
        }
        gq_outf(b, "]");
    } else {
        if (json_object_size(v) == 0) {
            gq_outf(b, "{}");
            return;
        }
        if (depth >= 2) {
            gq_outf(b, "[Object]");
            return;
        }
        const char *k;
        json_t *fv;
        bool first = true;
        gq_outf(b, "{ ");
        json_object_foreach((json_t *)v, k, fv)
        {
            gq_outf(b, "%s%s: ", first ? "" : ", ", k);
            gq_inspect_into(b, fv, depth + 1);
            first = false;
        }
        gq_outf(b, " }");
    }
}

static char *gq_buf_str(struct gq_out *b)
{
    char *r = gq_out_take(b);
    return r != NULL ? r : strdup("...");
}

char *gq_inspect(const json_t *v)
{
    struct gq_out b = {0};
    gq_inspect_into(&b, v, 0);
    return gq_buf_str(&b);
}

static void gq_print_value_into(struct gq_out *b, const struct gq_node *v, int depth)
{
    LMQ_ASSERT(b != NULL && v != NULL);
    json_t *s;
    char *dump;
    switch (v->kind) {
    case GQ_N_VAR:
        gq_outf(b, "$%s", v->name);
        break;
    case GQ_N_STRING:
        s = json_string(v->str);
        dump = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        gq_outf(b, "%s", dump != NULL ? dump : "\"\"");
        free(dump);
        json_decref(s);
        break;
    case GQ_N_NULL:
        gq_outf(b, "null");
        break;
    case GQ_N_BOOL:
        gq_outf(b, "%s", v->op ? "true" : "false");
        break;
    case GQ_N_LIST:
        gq_outf(b, "[");
        for (const struct gq_node *i = v->args; i != NULL && depth < GRAPHQL_VALUE_DEPTH_MAX;
             i = i->next) {
            gq_outf(b, "%s", i != v->args ? ", " : "");
            gq_print_value_into(b, i, depth + 1);
        }
        gq_outf(b, "]");
        break;
    case GQ_N_OBJECT:
        if (v->args == NULL) {
            gq_outf(b, "{  }");
            break;
        }
        gq_outf(b, "{ ");
        for (const struct gq_node *i = v->args; i != NULL && depth < GRAPHQL_VALUE_DEPTH_MAX;
             i = i->next) {
            gq_outf(b, "%s%s: ", i != v->args ? ", " : "", i->name);
            gq_print_value_into(b, i->value, depth + 1);
        }
        gq_outf(b, " }");
        break;
    default: /* Int, Float, enum: their text */
        gq_outf(b, "%s", v->str);
        break;
    }
}

char *gq_print_value(const struct gq_node *v)
{
    struct gq_out b = {0};
    gq_print_value_into(&b, v, 0);
    return gq_buf_str(&b);
}

static char *gq_msgf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *gq_msgf(const char *fmt, ...)
{
    char buf[GQ_MSG_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return strdup(buf);
}

static char *gq_type_name(const struct gq_tref *t)
{
    struct gq_arena a = {0};
    char *s = gq_tref_str(&a, t);
    char *r = strdup(s != NULL ? s : "?");
    gq_arena_free(&a);
    return r;
}

/* ---- scalars and enums from JSON ---- */

/* An enum value from JSON: one of the type's values, as a string. */
static json_t *gq_coerce_enum(const struct graphql_object *t, const json_t *v, char **msg)
{
    const char *n = t->name;
    LMQ_ASSERT(t->kind == GQ_K_ENUM && msg != NULL);
    if (json_is_string(v)) {
        for (size_t i = 0; i < t->values_count; i++) {
            if (strcmp(t->values[i], json_string_value(v)) == 0) {
                return json_incref((json_t *)v);
            }
        }
    }
    char buf[GQ_MSG_MAX_BYTES];
    char *shown = gq_inspect(v);
    snprintf(buf, sizeof(buf),
             json_is_string(v) ? "Value %s does not exist in \"%s\" enum."
                               : "Enum \"%s\" cannot represent non-string value: %s.",
             json_is_string(v) ? shown : n, json_is_string(v) ? n : shown);
    gq_did_you_mean(buf, sizeof(buf), json_is_string(v) ? json_string_value(v) : shown,
                    (const char *const *)t->values, t->values_count, "the enum value ");
    free(shown);
    *msg = strdup(buf);
    return NULL;
}

static json_t *gq_coerce_scalar(const struct graphql_object *t, const json_t *v, char **msg)
{
    const char *n = t->name;
    char *shown = NULL;
    json_t *r = NULL;
    if (t->kind == GQ_K_ENUM) {
        return gq_coerce_enum(t, v, msg);
    }
    if (!t->builtin || strncmp(n, "__", 2) == 0) {
        return json_incref((json_t *)v); /* a custom scalar takes any value */
    }
    if (strcmp(n, "Int") == 0) {
        double d = json_is_number(v) ? json_number_value(v) : 0.5;
        if (json_is_integer(v) || (json_is_real(v) && d == floor(d))) {
            if (d >= -2147483648.0 && d <= 2147483647.0) {
                return json_integer((json_int_t)d);
            }
            shown = gq_inspect(v);
            *msg = gq_msgf("Int cannot represent non 32-bit signed integer value: %s", shown);
        } else {
            shown = gq_inspect(v);
            *msg = gq_msgf("Int cannot represent non-integer value: %s", shown);
        }
    } else if (strcmp(n, "Float") == 0) {
        if (json_is_number(v) && isfinite(json_number_value(v))) {
            return json_incref((json_t *)v);
        }
        shown = gq_inspect(v);
        *msg = gq_msgf("Float cannot represent non numeric value: %s", shown);
    } else if (strcmp(n, "String") == 0) {
        if (json_is_string(v)) {
            return json_incref((json_t *)v);
        }
        shown = gq_inspect(v);
        *msg = gq_msgf("String cannot represent a non string value: %s", shown);
    } else if (strcmp(n, "Boolean") == 0) {
        if (json_is_boolean(v)) {
            return json_incref((json_t *)v);
        }
        shown = gq_inspect(v);
        *msg = gq_msgf("Boolean cannot represent a non boolean value: %s", shown);
    } else {
        LMQ_ASSERT(strcmp(n, "ID") == 0);
        if (json_is_string(v)) {
            return json_incref((json_t *)v);
        }
        double d = json_is_number(v) ? json_number_value(v) : 0.5;
        if (json_is_number(v) && d == floor(d) && fabs(d) < 9007199254740992.0) {
            char num[32];
            snprintf(num, sizeof(num), "%lld", (long long)d); /* JSON has one number type */
            return json_string(num);
        }
        shown = gq_inspect(v);
        *msg = gq_msgf("ID cannot represent value: %s", shown);
    }
    free(shown);
    return r;
}

void gq_cerr_free(struct gq_cerr *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->msg[i]);
        free(e->path[i]);
    }
    memset(e, 0, sizeof(*e));
}

/* Records an error (msg is taken; NULL means out of memory). */
static void gq_cerr_add(struct gq_cerr *e, char *msg, const struct gq_out *path,
                        const struct gq_node *at)
{
    if (e->n >= GQ_CERR_MAX) {
        free(msg);
        return;
    }
    e->msg[e->n] = msg != NULL ? msg : strdup("Out of memory.");
    e->path[e->n] = path != NULL && path->len > 0 ? gq_msgf(" at %.*s", (int)path->len, path->data)
                                                  : strdup("");
    e->at[e->n] = at;
    e->n++;
}

/* ---- input values (variables) ---- */

static json_t *gq_coerce_in(const struct gq_tref *t, const json_t *v, struct gq_cerr *e,
                            struct gq_out *path, int depth);

static void gq_unknown_field_msg(char *buf, size_t cap, const struct graphql_object *n,
                                 const char *field, const char *shown)
{
    const char *names[GRAPHQL_FIELDS_MAX];
    char dym[1024] = "";
    for (size_t i = 0; i < n->fields_count; i++) {
        names[i] = n->fields[i]->name;
    }
    gq_did_you_mean(dym, sizeof(dym), field, names, n->fields_count, "");
    if (dym[0] != '\0') {
        snprintf(buf, cap,
                 "Expected value of type \"%s\" not to include unknown field \"%s\".%s Found: %s.",
                 n->name, field, dym, shown);
    } else {
        snprintf(buf, cap,
                 "Expected value of type \"%s\" not to include unknown field \"%s\", found: %s.",
                 n->name, field, shown);
    }
}

static json_t *gq_coerce_object(const struct graphql_object *n, const json_t *v, struct gq_cerr *e,
                                struct gq_out *path, int depth)
{
    LMQ_ASSERT(n != NULL && n->kind == GQ_K_INPUT);
    char buf[GQ_MSG_MAX_BYTES];
    size_t before = e->n;
    if (!json_is_object(v)) {
        char *shown = gq_inspect(v);
        gq_cerr_add(
            e, gq_msgf("Expected value of type \"%s\" to be an object, found: %s.", n->name, shown),
            path, NULL);
        free(shown);
        return NULL;
    }
    json_t *out = json_object();
    for (size_t i = 0; i < n->fields_count; i++) {
        const struct graphql_field *f = n->fields[i];
        json_t *item = json_object_get(v, f->name);
        if (item == NULL) {
            if (f->type->kind == GQ_TR_NONNULL) {
                char *shown = gq_inspect(v);
                gq_cerr_add(e,
                            gq_msgf("Expected value of type \"%s\" to include required field "
                                    "\"%s\", found: %s.",
                                    n->name, f->name, shown),
                            path, NULL);
                free(shown);
            }
            continue;
        }
        size_t plen = path->len;
        gq_outf(path, ".%s", f->name);
        json_t *c = gq_coerce_in(f->type, item, e, path, depth + 1);
        path->len = plen;
        if (c != NULL && (out == NULL || json_object_set_new(out, f->name, c) != 0)) {
            gq_cerr_add(e, NULL, path, NULL);
        }
    }
    const char *k;
    json_t *fv;
    json_object_foreach((json_t *)v, k, fv)
    {
        if (gq_type_field(n, k) == NULL) {
            char *shown = gq_inspect(v);
            gq_unknown_field_msg(buf, sizeof(buf), n, k, shown);
            free(shown);
            gq_cerr_add(e, strdup(buf), path, NULL);
        }
    }
    if (e->n != before || out == NULL) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static json_t *gq_coerce_in(const struct gq_tref *t, const json_t *v, struct gq_cerr *e,
                            struct gq_out *path, int depth)
{
    if (depth > GRAPHQL_VALUE_DEPTH_MAX) {
        gq_cerr_add(e, strdup("Value nesting exceeds the limit."), path, NULL);
        return NULL;
    }
    if (t->kind == GQ_TR_NONNULL) {
        if (json_is_null(v)) {
            char *tn = gq_type_name(t);
            gq_cerr_add(e, gq_msgf("Expected value of non-null type \"%s\" not to be null.", tn),
                        path, NULL);
            free(tn);
            return NULL;
        }
        return gq_coerce_in(t->of, v, e, path, depth);
    }
    if (json_is_null(v)) {
        return json_null();
    }
    if (t->kind == GQ_TR_LIST) {
        json_t *out = json_array();
        size_t before = e->n;
        if (!json_is_array(v)) {
            json_t *c = gq_coerce_in(t->of, v, e, path, depth + 1);
            if (c != NULL && json_array_append_new(out, c) != 0) {
                gq_cerr_add(e, NULL, path, NULL);
            }
        }
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
            size_t plen = path->len;
            gq_outf(path, "[%zu]", i);
            json_t *c = gq_coerce_in(t->of, json_array_get(v, i), e, path, depth + 1);
            path->len = plen;
            if (c != NULL && (out == NULL || json_array_append_new(out, c) != 0)) {
                gq_cerr_add(e, NULL, path, NULL);
            }
        }
        if (e->n != before || out == NULL) {
            json_decref(out);
            return NULL;
        }
        return out;
    }
    LMQ_ASSERT(t->t != NULL);
    if (t->t->kind == GQ_K_INPUT) {
        return gq_coerce_object(t->t, v, e, path, depth);
    }
    char *msg = NULL;
    json_t *r = gq_coerce_scalar(t->t, v, &msg);
    if (r == NULL) {
        gq_cerr_add(e, msg, path, NULL);
    }
    return r;
}

json_t *gq_coerce_input(const struct gq_tref *t, const json_t *v, struct gq_cerr *e)
{
    struct gq_out p = {0};
    LMQ_ASSERT(t != NULL && v != NULL && e != NULL);
    memset(e, 0, sizeof(*e));
    json_t *r = gq_coerce_in(t, v, e, &p, 0);
    if (r == NULL && e->n == 0) {
        gq_cerr_add(e, NULL, NULL, NULL);
    }
    gq_out_free(&p);
    return r;
}

/* ---- literals ---- */

static bool gq_missing_var(const struct gq_node *v, const json_t *vars)
{
    return v->kind == GQ_N_VAR && (vars == NULL || json_object_get(vars, v->name) == NULL);
}

/* A literal without a type (custom scalars): JSON as graphql-js valueFromASTUntyped (a variable
 * without a value is left out of an object and null in a list). */
static json_t *gq_untyped(const struct gq_node *v, const json_t *vars, int depth)
{
    LMQ_ASSERT(v != NULL && depth >= 0);
    if (depth > GRAPHQL_VALUE_DEPTH_MAX) {
        return NULL;
    }
    switch (v->kind) {
    case GQ_N_NULL:
        return json_null();
    case GQ_N_BOOL:
        return json_boolean(v->op);
    case GQ_N_INT:
    case GQ_N_FLOAT: {
        double d = strtod(v->str, NULL);
        if (v->kind == GQ_N_INT && fabs(d) < 9007199254740992.0) {
            return json_integer(strtoll(v->str, NULL, 10));
        }
        return isfinite(d) ? json_real(d) : json_null(); /* JSON has no Infinity */
    }
    case GQ_N_STRING:
        return json_stringn(v->str, v->str_len);
    case GQ_N_ENUM:
        return json_string(v->str);
    case GQ_N_VAR: {
        json_t *x = vars != NULL ? json_object_get(vars, v->name) : NULL;
        return x != NULL ? json_incref(x) : json_null();
    }
    case GQ_N_LIST: {
        json_t *a = json_array();
        for (const struct gq_node *i = v->args; a != NULL && i != NULL; i = i->next) {
            if (json_array_append_new(a, gq_untyped(i, vars, depth + 1)) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    default: {
        json_t *o = json_object();
        for (const struct gq_node *i = v->args; o != NULL && i != NULL; i = i->next) {
            if (gq_missing_var(i->value, vars)) {
                continue;
            }
            if (json_object_set_new(o, i->name, gq_untyped(i->value, vars, depth + 1)) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    }
}

static json_t *gq_lit(const struct gq_tref *t, const struct gq_node *v, const json_t *vars,
                      struct gq_cerr *e, int depth);

static json_t *gq_lit_object(const struct graphql_object *n, const struct gq_node *v,
                             const json_t *vars, struct gq_cerr *e, int depth)
{
    LMQ_ASSERT(n != NULL && n->kind == GQ_K_INPUT);
    char buf[GQ_MSG_MAX_BYTES];
    size_t before = e->n;
    if (v->kind != GQ_N_OBJECT) {
        char *shown = gq_print_value(v);
        gq_cerr_add(
            e, gq_msgf("Expected value of type \"%s\" to be an object, found: %s.", n->name, shown),
            NULL, v);
        free(shown);
        return NULL;
    }
    json_t *out = json_object();
    for (size_t k = 0; k < n->fields_count; k++) {
        const struct graphql_field *f = n->fields[k];
        const struct gq_node *item = NULL;
        for (const struct gq_node *i = v->args; i != NULL; i = i->next) {
            if (item == NULL && strcmp(i->name, f->name) == 0) {
                item = i;
            }
        }
        if (item == NULL || gq_missing_var(item->value, vars)) {
            if (f->type->kind == GQ_TR_NONNULL && item == NULL) {
                char *shown = gq_print_value(v);
                gq_cerr_add(e,
                            gq_msgf("Expected value of type \"%s\" to include required field "
                                    "\"%s\", found: %s.",
                                    n->name, f->name, shown),
                            NULL, v);
                free(shown);
            }
            continue;
        }
        json_t *c = gq_lit(f->type, item->value, vars, e, depth + 1);
        if (c != NULL && (out == NULL || json_object_set_new(out, f->name, c) != 0)) {
            gq_cerr_add(e, NULL, NULL, v);
        }
    }
    for (const struct gq_node *i = v->args; i != NULL; i = i->next) {
        if (gq_type_field(n, i->name) == NULL) {
            char *shown = gq_print_value(v);
            gq_unknown_field_msg(buf, sizeof(buf), n, i->name, shown);
            free(shown);
            gq_cerr_add(e, strdup(buf), NULL, i);
        }
    }
    if (e->n != before || out == NULL) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* An enum literal: a name among the type's values. */
static json_t *gq_lit_enum(const struct graphql_object *n, const struct gq_node *v,
                           struct gq_cerr *e)
{
    char buf[GQ_MSG_MAX_BYTES];
    char *msg = NULL;
    LMQ_ASSERT(n->kind == GQ_K_ENUM && v != NULL);
    if (v->kind == GQ_N_ENUM) {
        json_t *str = json_string(v->str);
        json_t *r = str != NULL ? gq_coerce_enum(n, str, &msg) : NULL;
        json_decref(str);
        if (r == NULL) {
            gq_cerr_add(e, msg, NULL, v);
        }
        return r;
    }
    char *shown = gq_print_value(v);
    snprintf(buf, sizeof(buf), "Enum \"%s\" cannot represent non-enum value: %s.", n->name, shown);
    gq_did_you_mean(buf, sizeof(buf), shown, (const char *const *)n->values, n->values_count,
                    "the enum value ");
    free(shown);
    gq_cerr_add(e, strdup(buf), NULL, v);
    return NULL;
}

static json_t *gq_lit_scalar(const struct graphql_object *n, const struct gq_node *v,
                             const json_t *vars, struct gq_cerr *e)
{
    char buf[GQ_MSG_MAX_BYTES];
    LMQ_ASSERT(n != NULL && v != NULL);
    if (n->kind == GQ_K_ENUM) {
        return gq_lit_enum(n, v, e);
    }
    if (!n->builtin || strncmp(n->name, "__", 2) == 0) {
        json_t *r = gq_untyped(v, vars, 0);
        if (r == NULL) {
            gq_cerr_add(e, NULL, NULL, v);
        }
        return r;
    }
    const char *tn = n->name;
    if (strcmp(tn, "Int") == 0 && v->kind == GQ_N_INT) {
        errno = 0;
        long long x = strtoll(v->str, NULL, 10);
        if (errno == 0 && x >= INT32_MIN && x <= INT32_MAX) {
            return json_integer(x);
        }
        gq_cerr_add(e, gq_msgf("Int cannot represent non 32-bit signed integer value: %s", v->str),
                    NULL, v);
        return NULL;
    }
    if (strcmp(tn, "Float") == 0 && (v->kind == GQ_N_INT || v->kind == GQ_N_FLOAT)) {
        double d = strtod(v->str, NULL);
        if (!isfinite(d)) {
            return json_null(); /* graphql-js takes it as Infinity, which JSON writes as null */
        }
        return v->kind == GQ_N_INT && fabs(d) < 9007199254740992.0 ? json_integer((json_int_t)d)
                                                                   : json_real(d);
    }
    if (strcmp(tn, "String") == 0 && v->kind == GQ_N_STRING) {
        return json_stringn(v->str, v->str_len);
    }
    if (strcmp(tn, "Boolean") == 0 && v->kind == GQ_N_BOOL) {
        return json_boolean(v->op);
    }
    if (strcmp(tn, "ID") == 0 && (v->kind == GQ_N_STRING || v->kind == GQ_N_INT)) {
        return json_stringn(v->str, v->kind == GQ_N_STRING ? v->str_len : strlen(v->str));
    }
    static const char *const fmts[][2] = {
        {"Int", "Int cannot represent non-integer value: %s"},
        {"Float", "Float cannot represent non numeric value: %s"},
        {"String", "String cannot represent a non string value: %s"},
        {"Boolean", "Boolean cannot represent a non boolean value: %s"},
        {"ID", "ID cannot represent a non-string and non-integer value: %s"}};
    char *shown = gq_print_value(v);
    for (size_t i = 0; i < LMQ_ARRAY_LEN(fmts); i++) {
        if (strcmp(fmts[i][0], tn) == 0) {
            snprintf(buf, sizeof(buf), fmts[i][1], shown);
            gq_cerr_add(e, strdup(buf), NULL, v);
        }
    }
    free(shown);
    return NULL;
}

static json_t *gq_lit(const struct gq_tref *t, const struct gq_node *v, const json_t *vars,
                      struct gq_cerr *e, int depth)
{
    if (depth > GRAPHQL_VALUE_DEPTH_MAX) {
        gq_cerr_add(e, strdup("Value nesting exceeds the limit."), NULL, v);
        return NULL;
    }
    if (v->kind == GQ_N_VAR) {
        /* validation checks variables by their own rules (vars NULL); execution takes the
         * coerced value */
        json_t *x = vars != NULL ? json_object_get(vars, v->name) : NULL;
        if (x == NULL && t->kind == GQ_TR_NONNULL && vars != NULL) {
            char *tn = gq_type_name(t);
            gq_cerr_add(e,
                        gq_msgf("Argument of required type \"%s\" was provided the variable "
                                "\"$%s\" which was not provided a runtime value.",
                                tn, v->name),
                        NULL, v);
            free(tn);
            return NULL;
        }
        return x != NULL ? json_incref(x) : json_null();
    }
    if (t->kind == GQ_TR_NONNULL) {
        if (v->kind == GQ_N_NULL) {
            char *tn = gq_type_name(t);
            gq_cerr_add(e, gq_msgf("Expected value of non-null type \"%s\" not to be null.", tn),
                        NULL, v);
            free(tn);
            return NULL;
        }
        return gq_lit(t->of, v, vars, e, depth);
    }
    if (v->kind == GQ_N_NULL) {
        return json_null();
    }
    if (t->kind == GQ_TR_LIST) {
        json_t *out = json_array();
        size_t before = e->n;
        if (v->kind != GQ_N_LIST) {
            json_t *c = gq_lit(t->of, v, vars, e, depth + 1);
            if (c != NULL && json_array_append_new(out, c) != 0) {
                gq_cerr_add(e, NULL, NULL, v);
            }
        }
        for (const struct gq_node *i = v->kind == GQ_N_LIST ? v->args : NULL; i != NULL;
             i = i->next) {
            json_t *c = gq_missing_var(i, vars) && vars != NULL
                            ? json_null()
                            : gq_lit(t->of, i, vars, e, depth + 1);
            if (c != NULL && (out == NULL || json_array_append_new(out, c) != 0)) {
                gq_cerr_add(e, NULL, NULL, v);
            }
        }
        if (e->n != before || out == NULL) {
            json_decref(out);
            return NULL;
        }
        return out;
    }
    LMQ_ASSERT(t->t != NULL);
    if (t->t->kind == GQ_K_INPUT) {
        return gq_lit_object(t->t, v, vars, e, depth);
    }
    return gq_lit_scalar(t->t, v, vars, e);
}

json_t *gq_coerce_literal(const struct gq_tref *t, const struct gq_node *v, const json_t *vars,
                          struct gq_cerr *e)
{
    LMQ_ASSERT(t != NULL && v != NULL && e != NULL);
    memset(e, 0, sizeof(*e));
    json_t *r = gq_lit(t, v, vars, e, 0);
    if (r == NULL && e->n == 0) {
        gq_cerr_add(e, NULL, NULL, v);
    }
    return r;
}
