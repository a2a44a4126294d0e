/*
 * The parser of executable documents (October 2021 spec, section 2): a recursive descent over
 * the lexer's tokens into arena nodes. Recursion is bounded: selection sets by
 * limits->max_depth (plus GRAPHQL_VALUE_DEPTH_MAX for inline fragments), values and type
 * references by GRAPHQL_VALUE_DEPTH_MAX. Type-system definitions are recognised (so that
 * validation can refuse them as graphql-js does) and skipped by balancing brackets.
 */
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_lex.h"

struct gq_parser {
    struct gq_lexer lex;
    struct gq_ctx *ctx;
    uint32_t sel_depth;
    uint32_t sel_depth_max;
    uint32_t value_depth;
};

#define GQ_TRY(x)                                                                                  \
    do {                                                                                           \
        if ((x) < 0) {                                                                             \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int gq_p_fail(struct gq_parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int gq_p_fail(struct gq_parser *p, uint32_t line, uint32_t col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->lex.err, sizeof(p->lex.err), fmt, ap);
    va_end(ap);
    p->lex.err_line = line;
    p->lex.err_col = col;
    return -1;
}

static int gq_p_unexpected(struct gq_parser *p)
{
    char d[300];
    gq_lex_desc(&p->lex, d, sizeof(d));
    return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Unexpected %s.", d);
}

static int gq_p_advance(struct gq_parser *p)
{
    return gq_lex_next(&p->lex);
}

static bool gq_p_peek(const struct gq_parser *p, int kind)
{
    return p->lex.kind == kind;
}

/* Expected-punctuator messages quote the punctuator: "Expected \"{\", found ...". */
static int gq_p_expect_tok(struct gq_parser *p, int kind)
{
    if (p->lex.kind == kind) {
        return gq_p_advance(p);
    }
    char d[300];
    gq_lex_desc(&p->lex, d, sizeof(d));
    if (kind == GQ_T_NAME || kind == GQ_T_EOF) {
        return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Expected %s, found %s.",
                         gq_tok_kind_desc(kind), d);
    }
    return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Expected \"%s\", found %s.",
                     gq_tok_kind_desc(kind), d);
}

static bool gq_p_keyword(const struct gq_parser *p, const char *kw)
{
    return p->lex.kind == GQ_T_NAME && strcmp(p->lex.value, kw) == 0;
}

static int gq_p_expect_keyword(struct gq_parser *p, const char *kw)
{
    if (gq_p_keyword(p, kw)) {
        return gq_p_advance(p);
    }
    char d[300];
    gq_lex_desc(&p->lex, d, sizeof(d));
    return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Expected \"%s\", found %s.", kw, d);
}

static struct gq_node *gq_p_node(struct gq_parser *p, int kind)
{
    struct gq_node *n = gq_alloc(&p->ctx->arena, sizeof(*n));
    if (n == NULL) {
        gq_p_fail(p, p->lex.tline, p->lex.tcol, "Out of memory.");
        return NULL;
    }
    n->kind = kind;
    n->line = p->lex.tline;
    n->col = p->lex.tcol;
    return n;
}

/* Name: *out = its text; advances. */
static int gq_p_name(struct gq_parser *p, const char **out)
{
    if (!gq_p_peek(p, GQ_T_NAME)) {
        return gq_p_expect_tok(p, GQ_T_NAME);
    }
    *out = p->lex.value;
    return gq_p_advance(p);
}

/* A node's name, remembering where it is. */
static int gq_p_node_name(struct gq_parser *p, struct gq_node *n)
{
    n->name_line = p->lex.tline;
    n->name_col = p->lex.tcol;
    return gq_p_name(p, &n->name);
}

static int gq_p_value(struct gq_parser *p, bool is_const, struct gq_node **out);

static int gq_p_list_or_object(struct gq_parser *p, bool is_const, struct gq_node *n)
{
    LMQ_ASSERT(n->kind == GQ_N_LIST || n->kind == GQ_N_OBJECT);
    int close = n->kind == GQ_N_LIST ? GQ_T_BRACKET_R : GQ_T_BRACE_R;
    struct gq_node **tail = &n->args;
    if (++p->value_depth > GRAPHQL_VALUE_DEPTH_MAX) {
        return gq_p_fail(p, n->line, n->col, "Value nesting exceeds the limit of %d.",
                         GRAPHQL_VALUE_DEPTH_MAX);
    }
    GQ_TRY(gq_p_advance(p));
    while (!gq_p_peek(p, close)) {
        struct gq_node *item;
        if (n->kind == GQ_N_LIST) {
            GQ_TRY(gq_p_value(p, is_const, &item));
        } else {
            item = gq_p_node(p, GQ_N_OBJFIELD);
            if (item == NULL) {
                return -1;
            }
            GQ_TRY(gq_p_name(p, &item->name));
            GQ_TRY(gq_p_expect_tok(p, GQ_T_COLON));
            GQ_TRY(gq_p_value(p, is_const, &item->value));
        }
        *tail = item;
        tail = &item->next;
    }
    p->value_depth--;
    return gq_p_advance(p);
}

static int gq_p_value(struct gq_parser *p, bool is_const, struct gq_node **out)
{
    LMQ_ASSERT(p != NULL && out != NULL);
    static const int kinds[] = {[GQ_T_INT] = GQ_N_INT,
                                [GQ_T_FLOAT] = GQ_N_FLOAT,
                                [GQ_T_STRING] = GQ_N_STRING,
                                [GQ_T_BLOCK_STRING] = GQ_N_STRING};
    int k = p->lex.kind;
    struct gq_node *n = NULL;
    if (k == GQ_T_BRACKET_L || k == GQ_T_BRACE_L) {
        n = gq_p_node(p, k == GQ_T_BRACKET_L ? GQ_N_LIST : GQ_N_OBJECT);
        if (n == NULL) {
            return -1;
        }
        *out = n;
        return gq_p_list_or_object(p, is_const, n);
    }
    if (k == GQ_T_INT || k == GQ_T_FLOAT || k == GQ_T_STRING || k == GQ_T_BLOCK_STRING ||
        k == GQ_T_NAME) {
        n = gq_p_node(p, k == GQ_T_NAME ? GQ_N_ENUM : kinds[k]);
        if (n == NULL) {
            return -1;
        }
        n->str = p->lex.value;
        n->str_len = p->lex.value_len;
        n->op = k == GQ_T_BLOCK_STRING;
        if (k == GQ_T_NAME) {
            if (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0) {
                n->kind = GQ_N_BOOL;
                n->op = n->str[0] == 't';
            } else if (strcmp(n->str, "null") == 0) {
                n->kind = GQ_N_NULL;
            }
        }
        *out = n;
        return gq_p_advance(p);
    }
    if (k == GQ_T_DOLLAR) {
        n = gq_p_node(p, GQ_N_VAR);
        if (n == NULL) {
            return -1;
        }
        if (is_const) {
            GQ_TRY(gq_p_advance(p));
            if (gq_p_peek(p, GQ_T_NAME)) {
                return gq_p_fail(p, n->line, n->col,
                                 "Unexpected variable \"$%s\" in constant value.", p->lex.value);
            }
            return gq_p_unexpected(p);
        }
        GQ_TRY(gq_p_advance(p));
        GQ_TRY(gq_p_name(p, &n->name));
        *out = n;
        return 0;
    }
    return gq_p_unexpected(p);
}

static int gq_p_type(struct gq_parser *p, struct gq_tref **out)
{
    LMQ_ASSERT(p != NULL && out != NULL);
    struct gq_tref *t = gq_alloc(&p->ctx->arena, sizeof(*t));
    if (t == NULL) {
        return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Out of memory.");
    }
    if (gq_p_peek(p, GQ_T_BRACKET_L)) {
        if (++p->value_depth > GRAPHQL_VALUE_DEPTH_MAX) {
            return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Type nesting exceeds the limit of %d.",
                             GRAPHQL_VALUE_DEPTH_MAX);
        }
        GQ_TRY(gq_p_advance(p));
        t->kind = GQ_TR_LIST;
        GQ_TRY(gq_p_type(p, &t->of));
        GQ_TRY(gq_p_expect_tok(p, GQ_T_BRACKET_R));
        p->value_depth--;
    } else {
        t->kind = GQ_TR_NAMED;
        GQ_TRY(gq_p_name(p, &t->name));
    }
    if (gq_p_peek(p, GQ_T_BANG)) {
        struct gq_tref *nn = gq_alloc(&p->ctx->arena, sizeof(*nn));
        if (nn == NULL) {
            return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Out of memory.");
        }
        nn->kind = GQ_TR_NONNULL;
        nn->of = t;
        t = nn;
        GQ_TRY(gq_p_advance(p));
    }
    *out = t;
    return 0;
}

/* Arguments "(a: 1, ...)" when present. */
static int gq_p_args(struct gq_parser *p, bool is_const, struct gq_node **out)
{
    struct gq_node **tail = out;
    if (!gq_p_peek(p, GQ_T_PAREN_L)) {
        return 0;
    }
    GQ_TRY(gq_p_advance(p));
    do {
        struct gq_node *a = gq_p_node(p, GQ_N_ARG);
        if (a == NULL) {
            return -1;
        }
        GQ_TRY(gq_p_name(p, &a->name));
        GQ_TRY(gq_p_expect_tok(p, GQ_T_COLON));
        GQ_TRY(gq_p_value(p, is_const, &a->value));
        *tail = a;
        tail = &a->next;
    } while (!gq_p_peek(p, GQ_T_PAREN_R));
    return gq_p_advance(p);
}

static int gq_p_directives(struct gq_parser *p, bool is_const, struct gq_node **out)
{
    struct gq_node **tail = out;
    while (gq_p_peek(p, GQ_T_AT)) {
        struct gq_node *d = gq_p_node(p, GQ_N_DIRECTIVE);
        if (d == NULL) {
            return -1;
        }
        GQ_TRY(gq_p_advance(p));
        GQ_TRY(gq_p_name(p, &d->name));
        GQ_TRY(gq_p_args(p, is_const, &d->args));
        *tail = d;
        tail = &d->next;
    }
    return 0;
}

static int gq_p_selection_set(struct gq_parser *p, struct gq_node *owner);

static int gq_p_selection(struct gq_parser *p, struct gq_node **out)
{
    LMQ_ASSERT(p != NULL && out != NULL);
    struct gq_node *n;
    if (gq_p_peek(p, GQ_T_SPREAD)) {
        n = gq_p_node(p, GQ_N_INLINE);
        if (n == NULL) {
            return -1;
        }
        GQ_TRY(gq_p_advance(p));
        bool has_cond = gq_p_keyword(p, "on");
        if (has_cond) {
            GQ_TRY(gq_p_advance(p));
        }
        if (!has_cond && gq_p_peek(p, GQ_T_NAME)) {
            n->kind = GQ_N_SPREAD;
            GQ_TRY(gq_p_node_name(p, n));
            GQ_TRY(gq_p_directives(p, false, &n->dirs));
            *out = n;
            return 0;
        }
        if (has_cond) {
            n->type_line = p->lex.tline;
            n->type_col = p->lex.tcol;
            n->type = gq_alloc(&p->ctx->arena, sizeof(*n->type));
            if (n->type == NULL) {
                return gq_p_fail(p, n->line, n->col, "Out of memory.");
            }
            n->type->kind = GQ_TR_NAMED;
            GQ_TRY(gq_p_name(p, &n->type->name));
        }
        GQ_TRY(gq_p_directives(p, false, &n->dirs));
        *out = n;
        return gq_p_selection_set(p, n);
    }
    n = gq_p_node(p, GQ_N_FIELD);
    if (n == NULL) {
        return -1;
    }
    GQ_TRY(gq_p_name(p, &n->name));
    if (gq_p_peek(p, GQ_T_COLON)) {
        GQ_TRY(gq_p_advance(p));
        n->alias = n->name;
        GQ_TRY(gq_p_name(p, &n->name));
    }
    GQ_TRY(gq_p_args(p, false, &n->args));
    GQ_TRY(gq_p_directives(p, false, &n->dirs));
    *out = n;
    if (gq_p_peek(p, GQ_T_BRACE_L)) {
        return gq_p_selection_set(p, n);
    }
    return 0;
}

static int gq_p_selection_set(struct gq_parser *p, struct gq_node *owner)
{
    struct gq_node **tail = &owner->sel;
    if (!gq_p_peek(p, GQ_T_BRACE_L)) {
        return gq_p_expect_tok(p, GQ_T_BRACE_L);
    }
    if (++p->sel_depth > p->sel_depth_max) {
        return gq_p_fail(p, p->lex.tline, p->lex.tcol, "Document nesting exceeds the limit of %u.",
                         p->sel_depth_max);
    }
    owner->has_sel = true;
    owner->sel_line = p->lex.tline;
    owner->sel_col = p->lex.tcol;
    GQ_TRY(gq_p_advance(p));
    do {
        struct gq_node *s = NULL;
        GQ_TRY(gq_p_selection(p, &s));
        *tail = s;
        tail = &s->next;
    } while (!gq_p_peek(p, GQ_T_BRACE_R));
    p->sel_depth--;
    return gq_p_advance(p);
}

static int gq_p_vardefs(struct gq_parser *p, struct gq_node *op)
{
    LMQ_ASSERT(op != NULL && op->kind == GQ_N_OPERATION);
    struct gq_node **tail = &op->vars;
    if (!gq_p_peek(p, GQ_T_PAREN_L)) {
        return 0;
    }
    GQ_TRY(gq_p_advance(p));
    do {
        struct gq_node *v = gq_p_node(p, GQ_N_VARDEF);
        if (v == NULL) {
            return -1;
        }
        GQ_TRY(gq_p_expect_tok(p, GQ_T_DOLLAR));
        GQ_TRY(gq_p_node_name(p, v));
        GQ_TRY(gq_p_expect_tok(p, GQ_T_COLON));
        v->type_line = p->lex.tline;
        v->type_col = p->lex.tcol;
        GQ_TRY(gq_p_type(p, &v->type));
        if (gq_p_peek(p, GQ_T_EQUALS)) {
            GQ_TRY(gq_p_advance(p));
            GQ_TRY(gq_p_value(p, true, &v->value));
        }
        GQ_TRY(gq_p_directives(p, true, &v->dirs));
        *tail = v;
        tail = &v->next;
    } while (!gq_p_peek(p, GQ_T_PAREN_R));
    return gq_p_advance(p);
}

static int gq_p_operation(struct gq_parser *p, struct gq_node **out)
{
    LMQ_ASSERT(p != NULL && out != NULL);
    struct gq_node *n = gq_p_node(p, GQ_N_OPERATION);
    if (n == NULL) {
        return -1;
    }
    *out = n;
    if (gq_p_peek(p, GQ_T_BRACE_L)) {
        n->op = GQ_OP_QUERY;
        return gq_p_selection_set(p, n);
    }
    static const char *const ops[] = {"query", "mutation", "subscription"};
    n->op = -1;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(ops); i++) {
        if (gq_p_keyword(p, ops[i])) {
            n->op = (int)i;
        }
    }
    if (n->op < 0) {
        return gq_p_unexpected(p);
    }
    GQ_TRY(gq_p_advance(p));
    if (gq_p_peek(p, GQ_T_NAME)) {
        GQ_TRY(gq_p_node_name(p, n));
    }
    GQ_TRY(gq_p_vardefs(p, n));
    GQ_TRY(gq_p_directives(p, false, &n->dirs));
    return gq_p_selection_set(p, n);
}

static int gq_p_fragment(struct gq_parser *p, struct gq_node **out)
{
    struct gq_node *n = gq_p_node(p, GQ_N_FRAGMENT);
    if (n == NULL) {
        return -1;
    }
    *out = n;
    GQ_TRY(gq_p_advance(p));
    if (gq_p_keyword(p, "on")) {
        return gq_p_unexpected(p);
    }
    GQ_TRY(gq_p_node_name(p, n));
    GQ_TRY(gq_p_expect_keyword(p, "on"));
    n->type_line = p->lex.tline;
    n->type_col = p->lex.tcol;
    n->type = gq_alloc(&p->ctx->arena, sizeof(*n->type));
    if (n->type == NULL) {
        return gq_p_fail(p, n->line, n->col, "Out of memory.");
    }
    n->type->kind = GQ_TR_NAMED;
    GQ_TRY(gq_p_name(p, &n->type->name));
    GQ_TRY(gq_p_directives(p, false, &n->dirs));
    return gq_p_selection_set(p, n);
}

static bool gq_p_typesystem_keyword(const struct gq_parser *p)
{
    static const char *const kws[] = {"schema", "scalar", "type",      "interface", "union",
                                      "enum",   "input",  "directive", "extend"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(kws); i++) {
        if (gq_p_keyword(p, kws[i])) {
            return true;
        }
    }
    return false;
}

/* A type-system definition, skipped: tokens up to the end of its top-level body (a balanced
 * "{...}") or to the next definition keyword at depth 0. Its name is kept for the message. */
static int gq_p_typesystem(struct gq_parser *p, struct gq_node **out)
{
    LMQ_ASSERT(p != NULL && out != NULL);
    struct gq_node *n = gq_p_node(p, GQ_N_TYPESYSTEM);
    if (n == NULL) {
        return -1;
    }
    *out = n;
    if (gq_p_peek(p, GQ_T_STRING) || gq_p_peek(p, GQ_T_BLOCK_STRING)) {
        GQ_TRY(gq_p_advance(p));
    }
    bool extend = gq_p_keyword(p, "extend");
    if (extend) {
        GQ_TRY(gq_p_advance(p));
    }
    bool schema = gq_p_keyword(p, "schema"), directive = gq_p_keyword(p, "directive");
    GQ_TRY(gq_p_advance(p));
    if (directive && gq_p_peek(p, GQ_T_AT)) {
        GQ_TRY(gq_p_advance(p));
    }
    if (!schema && gq_p_peek(p, GQ_T_NAME)) {
        n->name = p->lex.value;
        GQ_TRY(gq_p_advance(p));
    }
    n->op = extend;
    uint32_t depth = 0;
    for (;;) {
        int k = p->lex.kind;
        if (k == GQ_T_EOF) {
            return depth == 0 ? 0 : gq_p_unexpected(p);
        }
        if (depth == 0 && (k == GQ_T_STRING || k == GQ_T_BLOCK_STRING || gq_p_keyword(p, "query") ||
                           gq_p_keyword(p, "fragment") || gq_p_typesystem_keyword(p))) {
            return 0;
        }
        if (k == GQ_T_BRACE_L || k == GQ_T_PAREN_L || k == GQ_T_BRACKET_L) {
            if (++depth > GRAPHQL_VALUE_DEPTH_MAX) {
                return gq_p_unexpected(p);
            }
        } else if (k == GQ_T_BRACE_R || k == GQ_T_PAREN_R || k == GQ_T_BRACKET_R) {
            if (depth == 0) {
                return gq_p_unexpected(p);
            }
            depth--;
            if (depth == 0 && k == GQ_T_BRACE_R) {
                return gq_p_advance(p);
            }
        }
        GQ_TRY(gq_p_advance(p));
    }
}

static int gq_p_definition(struct gq_parser *p, struct gq_node **out)
{
    LMQ_ASSERT(p != NULL && out != NULL);
    if (gq_p_peek(p, GQ_T_BRACE_L)) {
        return gq_p_operation(p, out);
    }
    bool desc = gq_p_peek(p, GQ_T_STRING) || gq_p_peek(p, GQ_T_BLOCK_STRING);
    if (desc) {
        /* a description belongs to a type-system definition: look at the next token */
        struct gq_lexer save = p->lex;
        GQ_TRY(gq_p_advance(p));
        bool ts = gq_p_typesystem_keyword(p);
        p->lex = save;
        if (ts) {
            return gq_p_typesystem(p, out);
        }
        /* graphql-js 17 takes descriptions on operations and fragments too */
        GQ_TRY(gq_p_advance(p));
        struct gq_node *d = NULL;
        if (gq_p_keyword(p, "query") || gq_p_keyword(p, "mutation") ||
            gq_p_keyword(p, "subscription")) {
            GQ_TRY(gq_p_operation(p, &d));
        } else if (gq_p_keyword(p, "fragment")) {
            GQ_TRY(gq_p_fragment(p, &d));
        } else if (gq_p_peek(p, GQ_T_BRACE_L)) {
            return gq_p_fail(p, save.tline, save.tcol,
                             "Unexpected description, descriptions are not supported on "
                             "shorthand queries.");
        } else {
            return gq_p_unexpected(p);
        }
        d->line = save.tline;
        d->col = save.tcol;
        *out = d;
        return 0;
    }
    if (gq_p_typesystem_keyword(p)) {
        return gq_p_typesystem(p, out);
    }
    if (gq_p_keyword(p, "query") || gq_p_keyword(p, "mutation") ||
        gq_p_keyword(p, "subscription")) {
        return gq_p_operation(p, out);
    }
    if (gq_p_keyword(p, "fragment")) {
        return gq_p_fragment(p, out);
    }
    return gq_p_unexpected(p);
}

static int gq_frag_cmp(const void *a, const void *b)
{
    const struct gq_node *x = *(const struct gq_node *const *)a,
                         *y = *(const struct gq_node *const *)b;
    int cmp = strcmp(x->name, y->name);
    if (cmp != 0) {
        return cmp;
    }
    return x->line != y->line ? (x->line < y->line ? -1 : 1)
                              : (x->col < y->col ? -1 : x->col > y->col);
}

/* The fragment index: sorted by name, ties in document order (line, column). */
static int gq_index_fragments(struct gq_ctx *c, struct gq_doc *doc)
{
    size_t n = 0;
    for (struct gq_node *d = doc->defs; d != NULL; d = d->next) {
        n += d->kind == GQ_N_FRAGMENT;
    }
    doc->frags = gq_alloc(&c->arena, (n + 1) * sizeof(*doc->frags));
    if (doc->frags == NULL) {
        c->oom = true;
        return LMQ_ENOMEM;
    }
    for (struct gq_node *d = doc->defs; d != NULL; d = d->next) {
        if (d->kind == GQ_N_FRAGMENT) {
            doc->frags[doc->frags_count++] = d;
        }
    }
    qsort(doc->frags, doc->frags_count, sizeof(*doc->frags), gq_frag_cmp);
    return 0;
}

struct gq_node *gq_doc_fragment(const struct gq_doc *doc, const char *name)
{
    size_t a = 0, b = doc->frags_count;
    LMQ_ASSERT(name != NULL);
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (strcmp(doc->frags[mid]->name, name) < 0) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    return a < doc->frags_count && strcmp(doc->frags[a]->name, name) == 0 ? doc->frags[a] : NULL;
}

int gq_parse(struct gq_ctx *c, const char *src, size_t len, struct gq_doc *out)
{
    struct gq_parser p;
    LMQ_ASSERT(c != NULL && out != NULL);
    memset(&p, 0, sizeof(p));
    p.ctx = c;
    p.sel_depth_max = c->limits->max_depth + GRAPHQL_VALUE_DEPTH_MAX;
    gq_lex_init(&p.lex, &c->arena, src, len);
    memset(out, 0, sizeof(*out));
    struct gq_node **tail = &out->defs;
    int rc = gq_lex_next(&p.lex);
    /* a document has at least one definition */
    if (rc == 0 && gq_p_peek(&p, GQ_T_EOF)) {
        rc = gq_p_unexpected(&p);
    }
    while (rc == 0 && !gq_p_peek(&p, GQ_T_EOF)) {
        struct gq_node *d = NULL;
        rc = gq_p_definition(&p, &d);
        if (d != NULL) {
            *tail = d;
            tail = &d->next;
        }
    }
    if (rc < 0) {
        gq_error_at(c, p.lex.err_line, p.lex.err_col, "Syntax Error: %s", p.lex.err);
        return LMQ_EPROTO;
    }
    return gq_index_fragments(c, out);
}
