/* graphql_execute (parse → validate → execute) and graphql_schema_sdl (printSchema). */
#include <string.h>

#include "core/buf.h"
#include "graphql/graphql_introspect.h"

#define GQ_SDL_MAX_BYTES (16u * 1024u * 1024u)

/* The limits of a request that names none (docs/SECURITY.md "GraphQL requests"). */
static const struct graphql_limits gq_default_limits = {.max_depth = 15,
                                                        .max_fields = 1000,
                                                        .max_list_items = 1000,
                                                        .max_result_items = 100000,
                                                        .max_ms = 5000,
                                                        .max_query_bytes = 65536};

int graphql_execute(const struct graphql_schema *s, const char *query, size_t len,
                    const char *operation_name, const json_t *variables,
                    const struct graphql_limits *limits, const struct graphql_resolvers *r,
                    json_t **response)
{
    LMQ_ASSERT(s != NULL && s->finished && response != NULL);
    /* a limit left 0 takes the default */
    struct graphql_limits lim = limits != NULL ? *limits : gq_default_limits;
    lim.max_depth = lim.max_depth != 0 ? lim.max_depth : gq_default_limits.max_depth;
    lim.max_fields = lim.max_fields != 0 ? lim.max_fields : gq_default_limits.max_fields;
    lim.max_list_items =
        lim.max_list_items != 0 ? lim.max_list_items : gq_default_limits.max_list_items;
    lim.max_result_items =
        lim.max_result_items != 0 ? lim.max_result_items : gq_default_limits.max_result_items;
    lim.max_ms = lim.max_ms != 0 ? lim.max_ms : gq_default_limits.max_ms;
    lim.max_query_bytes =
        lim.max_query_bytes != 0 ? lim.max_query_bytes : gq_default_limits.max_query_bytes;
    struct gq_ctx c = {.schema = s, .limits = &lim};
    struct gq_doc doc;
    json_t *data = NULL;
    int rc = 0;
    *response = NULL;
    c.errors = json_array();
    if (c.errors == NULL) {
        return LMQ_ENOMEM;
    }
    if (query == NULL || (c.limits->max_query_bytes != 0 && len > c.limits->max_query_bytes)) {
        gq_error_at(&c, 0, 0, "The query is larger than the limit of %u bytes.",
                    c.limits->max_query_bytes);
    } else if (variables != NULL && !json_is_object(variables)) {
        gq_error_at(
            &c, 0, 0,
            "Variables must be provided as an Object where each property is a variable value.");
    } else if (gq_parse(&c, query, len, &doc) == 0 && gq_validate(&c, &doc) == 0) {
        rc = gq_exec(&c, &doc, operation_name, variables, r, &data);
        LMQ_ASSERT(rc == 0 || rc == LMQ_ENOMEM);
    }
    if (rc == 0 && !c.oom) {
        *response = json_object();
        if (*response == NULL ||
            (json_array_size(c.errors) > 0 &&
             json_object_set(*response, "errors", c.errors) != 0) ||
            (data != NULL && json_object_set(*response, "data", data) != 0)) {
            rc = LMQ_ENOMEM;
        }
    } else if (rc == 0) {
        rc = LMQ_ENOMEM;
    }
    if (rc != 0) {
        json_decref(*response);
        *response = NULL;
    }
    json_decref(data);
    json_decref(c.errors);
    gq_arena_free(&c.arena);
    return rc;
}

/* ---- printSchema ---- */

static bool gq_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* graphql-js isPrintableAsBlockString */
static bool gq_block_printable(const char *v)
{
    bool empty_line = true, has_indent = false, common = true, seen = false;
    if (*v == '\0') {
        return true;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x0d) {
            return false;
        }
        if (*p == '\n') {
            if (empty_line && !seen) {
                return false;
            }
            seen = true;
            empty_line = true;
            has_indent = false;
        } else if (gq_ws((char)*p)) {
            has_indent = has_indent || empty_line;
        } else {
            common = common && has_indent;
            empty_line = false;
        }
    }
    return !empty_line && !(common && seen);
}

static void gq_sdl_desc(struct gq_out *b, const char *desc, const char *indent, bool first)
{
    LMQ_ASSERT(b != NULL && indent != NULL);
    struct gq_out t = {0};
    if (desc == NULL) {
        return;
    }
    if (gq_block_printable(desc)) {
        size_t len = strlen(desc);
        bool single = strchr(desc, '\n') == NULL, lead = false;
        const char *nl = strchr(desc, '\n');
        if (nl != NULL) {
            lead = true;
            for (const char *l = nl; l != NULL; l = strchr(l + 1, '\n')) {
                lead = lead && (l[1] == '\n' || l[1] == '\0' || gq_ws(l[1]));
            }
        }
        bool tq = len >= 3 && strcmp(desc + len - 3, "\"\"\"") == 0;
        bool tquote = len > 0 && desc[len - 1] == '"' && !tq,
             tslash = len > 0 && desc[len - 1] == '\\';
        bool multi = !single || len > 70 || tquote || tslash || lead || tq;
        gq_outf(&t, "\"\"\"%s", (multi && !(single && gq_ws(desc[0]))) || lead ? "\n" : "");
        for (const char *p = desc; *p != '\0'; p++) {
            if (strncmp(p, "\"\"\"", 3) == 0) {
                gq_outf(&t, "\\\"\"\"");
                p += 2;
            } else {
                gq_outn(&t, p, 1);
            }
        }
        gq_outf(&t, "%s\"\"\"", multi || tquote || tslash ? "\n" : "");
    } else {
        json_t *js = json_string(desc);
        gq_print_literal(&t, js, NULL, 0);
        json_decref(js);
    }
    gq_outf(b, "%s%s", *indent != '\0' && !first ? "\n" : "", indent);
    for (size_t i = 0; i < t.len; i++) {
        gq_outn(b, &t.data[i], 1);
        if (t.data[i] == '\n') {
            gq_outf(b, "%s", indent);
        }
    }
    gq_outf(b, "\n");
    gq_out_free(&t);
}

static void gq_sdl_arg(struct gq_out *b, const struct gq_arg *a)
{
    gq_outf(b, "%s: %s", a->name, a->type_src);
    if (a->def != NULL) {
        gq_outf(b, " = ");
        gq_print_literal(b, a->def, a->type, 0);
    }
}

static void gq_sdl_args(struct gq_out *b, const struct graphql_field *f)
{
    bool described = false;
    if (f->args_count == 0) {
        return;
    }
    for (size_t i = 0; i < f->args_count; i++) {
        described = described || f->args[i].desc != NULL;
    }
    gq_outf(b, "(");
    for (size_t i = 0; i < f->args_count; i++) {
        if (described) {
            gq_outf(b, "\n");
            gq_sdl_desc(b, f->args[i].desc, "    ", i == 0);
            gq_outf(b, "    ");
        } else if (i > 0) {
            gq_outf(b, ", ");
        }
        gq_sdl_arg(b, &f->args[i]);
    }
    gq_outf(b, "%s)", described ? "\n  " : "");
}

static void gq_sdl_type(struct gq_out *b, const struct graphql_object *t)
{
    static const char *const kw[] = {"scalar", "type", "input", "enum"};
    gq_sdl_desc(b, t->desc, "", true);
    gq_outf(b, "%s %s", kw[t->kind], t->name);
    if (t->kind == GQ_K_SCALAR) {
        return;
    }
    gq_outf(b, " {\n");
    for (size_t i = 0; i < t->values_count; i++) {
        gq_outf(b, "  %s\n", t->values[i]);
    }
    for (size_t i = 0; i < t->fields_count; i++) {
        const struct graphql_field *f = t->fields[i];
        gq_sdl_desc(b, f->desc, "  ", i == 0);
        gq_outf(b, "  %s", f->name);
        gq_sdl_args(b, f);
        gq_outf(b, ": %s\n", f->type_src);
    }
    gq_outf(b, "}");
}

char *graphql_schema_sdl(const struct graphql_schema *s)
{
    struct gq_out b = {0};
    bool first = true;
    LMQ_ASSERT(s != NULL);
    if (!s->finished) {
        return NULL;
    }
    if (strcmp(s->query->name, "Query") != 0) {
        gq_outf(&b, "schema {\n  query: %s\n}", s->query->name);
        first = false;
    }
    for (size_t i = 0; i < s->types_count; i++) {
        if (s->types[i]->builtin) {
            continue;
        }
        gq_outf(&b, "%s", first ? "" : "\n\n");
        gq_sdl_type(&b, s->types[i]);
        first = false;
    }
    return gq_out_take(&b);
}
