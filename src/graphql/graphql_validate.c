/*
 * Validation (spec section 5) of an executable document against a query-only schema without
 * interfaces or unions, with graphql-js 17's messages. Also binds what execution needs: each
 * field node's definition, each spread's fragment. Afterwards the expanded depth and field
 * count are checked against the limits (only when the fragments have no cycle).
 */
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_internal.h"

#define GQ_NODES(...) ((const struct gq_node *const[]){__VA_ARGS__, NULL})

struct gq_val {
    struct gq_ctx *c;
    struct gq_doc *doc;
    struct gq_node *op; /* operation being checked (NULL: a fragment's body) */
};

static void gq_v_unknown_type(struct gq_val *v, const char *name, uint32_t line, uint32_t col)
{
    const struct graphql_schema *s = v->c->schema;
    const char **names = calloc(s->order_visible + 1, sizeof(*names));
    char buf[1024];
    snprintf(buf, sizeof(buf), "Unknown type \"%s\".", name);
    for (size_t i = 0; names != NULL && i < s->order_visible; i++) {
        names[i] = s->order[i]->name;
    }
    if (names != NULL) {
        gq_did_you_mean(buf, sizeof(buf), name, names, s->order_visible, "");
    }
    free(names);
    gq_error_at(v->c, line, col, "%s", buf);
}

static struct gq_node *gq_find_fragment(struct gq_doc *doc, const char *name)
{
    return gq_doc_fragment(doc, name);
}

static void gq_v_directives(struct gq_val *v, struct gq_node *dirs, uint32_t loc);
static void gq_v_value(struct gq_val *v, const struct gq_tref *t, struct gq_node *value);

static void gq_v_args(struct gq_val *v, struct gq_node *node, const struct graphql_field *f,
                      const char *what)
{
    LMQ_ASSERT(node != NULL && f != NULL);
    for (struct gq_node *a = node->args; a != NULL; a = a->next) {
        for (struct gq_node *b = node->args; b != a; b = b->next) {
            if (strcmp(a->name, b->name) == 0) {
                gq_error(v->c, GQ_NODES(b, a), "There can be only one argument named \"%s\".",
                         a->name);
            }
        }
        const struct gq_arg *def = gq_field_arg(f, a->name);
        if (def == NULL) {
            char buf[1024];
            const char *names[GRAPHQL_ARGS_MAX];
            for (size_t i = 0; i < f->args_count; i++) {
                names[i] = f->args[i].name;
            }
            if (f->owner == NULL && strcmp(what, "directive") == 0) {
                snprintf(buf, sizeof(buf), "Unknown argument \"%s\" on directive \"@%s\".", a->name,
                         f->name);
            } else {
                snprintf(buf, sizeof(buf), "Unknown argument \"%s\" on field \"%s.%s\".", a->name,
                         f->owner != NULL && node->ptype != NULL ? node->ptype->name : "<meta>",
                         f->name);
            }
            gq_did_you_mean(buf, sizeof(buf), a->name, names, f->args_count, "");
            gq_error(v->c, GQ_NODES(a), "%s", buf);
            continue;
        }
        gq_v_value(v, def->type, a->value);
    }
    for (size_t i = 0; i < f->args_count; i++) {
        const struct gq_arg *def = &f->args[i];
        if (def->type->kind != GQ_TR_NONNULL || def->def != NULL) {
            continue;
        }
        bool given = false;
        for (struct gq_node *a = node->args; a != NULL; a = a->next) {
            given = given || strcmp(a->name, def->name) == 0;
        }
        if (!given) {
            char *tn = gq_tref_str(&v->c->arena, def->type);
            if (strcmp(what, "directive") == 0) {
                gq_error(
                    v->c, GQ_NODES(node),
                    "Argument \"@%s(%s:)\" of type \"%s\" is required, but it was not provided.",
                    f->name, def->name, tn);
            } else {
                gq_error(
                    v->c, GQ_NODES(node),
                    "Argument \"%s.%s(%s:)\" of type \"%s\" is required, but it was not provided.",
                    f->owner != NULL ? node->ptype->name : "<meta>", f->name, def->name, tn);
            }
        }
    }
}

/* UniqueInputFieldNames in a literal. */
static void gq_v_unique_fields(struct gq_val *v, const struct gq_node *value, int depth)
{
    if (depth > GRAPHQL_VALUE_DEPTH_MAX) {
        return;
    }
    for (const struct gq_node *i = value->args; i != NULL; i = i->next) {
        if (value->kind == GQ_N_OBJECT) {
            for (const struct gq_node *o = value->args; o != i; o = o->next) {
                if (strcmp(o->name, i->name) == 0) {
                    gq_error(v->c, GQ_NODES(o, i),
                             "There can be only one input field named \"%s\".", i->name);
                    break;
                }
            }
            gq_v_unique_fields(v, i->value, depth + 1);
        } else if (value->kind == GQ_N_LIST) {
            gq_v_unique_fields(v, i, depth + 1);
        }
    }
}

/* ValuesOfCorrectType on one literal (variables inside are checked by their own rules). */
static void gq_v_value(struct gq_val *v, const struct gq_tref *t, struct gq_node *value)
{
    size_t before = json_array_size(v->c->errors);
    gq_v_unique_fields(v, value, 0);
    if (json_array_size(v->c->errors) != before) {
        return;
    }
    struct gq_cerr e;
    json_t *r = gq_coerce_literal(t, value, NULL, &e);
    for (size_t i = 0; i < e.n; i++) {
        gq_error(v->c, GQ_NODES(e.at[i] != NULL ? e.at[i] : value), "%s", e.msg[i]);
    }
    json_decref(r);
    gq_cerr_free(&e);
}

static void gq_v_directives(struct gq_val *v, struct gq_node *dirs, uint32_t loc)
{
    LMQ_ASSERT(v != NULL && loc != 0);
    for (struct gq_node *d = dirs; d != NULL; d = d->next) {
        struct graphql_field *def = gq_schema_directive(v->c->schema, d->name);
        if (def == NULL) {
            gq_error(v->c, GQ_NODES(d), "Unknown directive \"@%s\".", d->name);
            continue;
        }
        if ((def->locations & loc) == 0) {
            const char *ln = "?";
            for (int i = 0; i < GQ_LOC_COUNT; i++) {
                if (loc == (1u << i)) {
                    ln = gq_dirloc_names[i];
                }
            }
            gq_error(v->c, GQ_NODES(d), "Directive \"@%s\" may not be used on %s.", d->name, ln);
        }
        for (struct gq_node *e = dirs; e != d; e = e->next) {
            if (strcmp(e->name, d->name) == 0) {
                gq_error(v->c, GQ_NODES(e, d),
                         "The directive \"@%s\" can only be used once at this location.", d->name);
                break;
            }
        }
        gq_v_args(v, d, def, "directive");
    }
}

static void gq_v_selections(struct gq_val *v, struct gq_node *owner, struct graphql_object *t);

static void gq_v_field(struct gq_val *v, struct gq_node *f, struct graphql_object *t)
{
    LMQ_ASSERT(f != NULL && f->kind == GQ_N_FIELD && t != NULL);
    const struct graphql_schema *s = v->c->schema;
    struct graphql_field *def = NULL;
    if (strcmp(f->name, "__typename") == 0) {
        def = s->f_typename;
    } else if (t == s->query && strcmp(f->name, "__schema") == 0) {
        def = s->f_schema;
    } else if (t == s->query && strcmp(f->name, "__type") == 0) {
        def = s->f_type;
    } else {
        def = gq_type_field(t, f->name);
    }
    f->ptype = t;
    gq_v_directives(v, f->dirs, GQ_LOC_FIELD);
    if (def == NULL) {
        char buf[1024];
        const char *names[GRAPHQL_FIELDS_MAX];
        for (size_t i = 0; i < t->fields_count; i++) {
            names[i] = t->fields[i]->name;
        }
        snprintf(buf, sizeof(buf), "Cannot query field \"%s\" on type \"%s\".", f->name, t->name);
        gq_did_you_mean(buf, sizeof(buf), f->name, names, t->fields_count, "");
        gq_error(v->c, GQ_NODES(f), "%s", buf);
        return;
    }
    f->def = def;
    gq_v_args(v, f, def, "field");
    struct graphql_object *ft = gq_tref_named(def->type);
    char *tn = gq_tref_str(&v->c->arena, def->type);
    if (gq_is_leaf(ft) && f->has_sel) {
        gq_error_at(v->c, f->sel_line, f->sel_col,
                    "Field \"%s\" must not have a selection since type \"%s\" has no subfields.",
                    f->name, tn);
    } else if (!gq_is_leaf(ft) && !f->has_sel) {
        gq_error(v->c, GQ_NODES(f),
                 "Field \"%s\" of type \"%s\" must have a selection of subfields. Did you mean "
                 "\"%s { ... }\"?",
                 f->name, tn, f->name);
    } else if (f->has_sel) {
        gq_v_selections(v, f, ft);
    }
}

static void gq_v_selections(struct gq_val *v, struct gq_node *owner, struct graphql_object *t)
{
    LMQ_ASSERT(owner != NULL && t != NULL);
    for (struct gq_node *s = owner->sel; s != NULL; s = s->next) {
        if (s->kind == GQ_N_FIELD) {
            gq_v_field(v, s, t);
        } else if (s->kind == GQ_N_SPREAD) {
            gq_v_directives(v, s->dirs, GQ_LOC_FRAGMENT_SPREAD);
            s->frag = gq_find_fragment(v->doc, s->name);
            if (s->frag == NULL) {
                gq_error_at(v->c, s->name_line, s->name_col, "Unknown fragment \"%s\".", s->name);
            } else if (s->frag->type->t != NULL && gq_is_leaf(s->frag->type->t) == false &&
                       s->frag->type->t->kind == GQ_K_OBJECT && s->frag->type->t != t) {
                gq_error(v->c, GQ_NODES(s),
                         "Fragment \"%s\" cannot be spread here as objects of type \"%s\" can "
                         "never be of type \"%s\".",
                         s->name, t->name, s->frag->type->t->name);
            }
        } else {
            gq_v_directives(v, s->dirs, GQ_LOC_INLINE_FRAGMENT);
            struct graphql_object *ct = t;
            if (s->type != NULL) {
                ct = s->type->t = gq_schema_type(v->c->schema, s->type->name);
                if (ct == NULL) {
                    gq_v_unknown_type(v, s->type->name, s->type_line, s->type_col);
                    continue;
                }
                if (ct->kind != GQ_K_OBJECT) {
                    gq_error_at(v->c, s->type_line, s->type_col,
                                "Fragment cannot condition on non composite type \"%s\".",
                                ct->name);
                    continue;
                }
                if (ct != t) {
                    gq_error(v->c, GQ_NODES(s),
                             "Fragment cannot be spread here as objects of type \"%s\" can never "
                             "be of type \"%s\".",
                             t->name, ct->name);
                    continue;
                }
            }
            gq_v_selections(v, s, ct);
        }
    }
}

/* isTypeSubTypeOf for input types without abstract types. */
static bool gq_subtype(const struct gq_tref *a, const struct gq_tref *b)
{
    if (b->kind == GQ_TR_NONNULL) {
        return a->kind == GQ_TR_NONNULL && gq_subtype(a->of, b->of);
    }
    if (a->kind == GQ_TR_NONNULL) {
        return gq_subtype(a->of, b);
    }
    if (b->kind == GQ_TR_LIST) {
        return a->kind == GQ_TR_LIST && gq_subtype(a->of, b->of);
    }
    return a->kind == GQ_TR_NAMED && strcmp(a->name, b->name) == 0;
}

/* A variable used where a value of type loc (NULL: unknown) goes. */
static void gq_v_var_at(struct gq_val *v, const struct gq_node *var, const struct gq_tref *loc,
                        bool loc_default, int gen)
{
    LMQ_ASSERT(var != NULL && var->kind == GQ_N_VAR && v->op != NULL);
    struct gq_node *def = NULL;
    for (struct gq_node *d = v->op->vars; d != NULL; d = d->next) {
        if (strcmp(d->name, var->name) == 0) {
            d->mark = gen;
            def = def != NULL ? def : d;
        }
    }
    if (def == NULL) {
        if (v->op->name != NULL) {
            gq_error(v->c, GQ_NODES(var, v->op),
                     "Variable \"$%s\" is not defined by operation \"%s\".", var->name,
                     v->op->name);
        } else {
            gq_error(v->c, GQ_NODES(var, v->op), "Variable \"$%s\" is not defined.", var->name);
        }
        return;
    }
    if (loc == NULL || gq_tref_named(def->type) == NULL) {
        return;
    }
    bool ok;
    if (loc->kind == GQ_TR_NONNULL && def->type->kind != GQ_TR_NONNULL) {
        bool has_default = (def->value != NULL && def->value->kind != GQ_N_NULL) || loc_default;
        ok = has_default && gq_subtype(def->type, loc->of);
    } else {
        ok = gq_subtype(def->type, loc);
    }
    if (!ok) {
        char *vt = gq_tref_str(&v->c->arena, def->type), *lt = gq_tref_str(&v->c->arena, loc);
        gq_error(v->c, GQ_NODES(def, var),
                 "Variable \"$%s\" of type \"%s\" used in position expecting type \"%s\".",
                 var->name, vt, lt);
    }
}

static void gq_v_value_uses(struct gq_val *v, const struct gq_node *value,
                            const struct gq_tref *loc, bool loc_default, int gen, int depth)
{
    if (value == NULL || depth > GRAPHQL_VALUE_DEPTH_MAX) {
        return;
    }
    const struct gq_tref *bare = loc != NULL && loc->kind == GQ_TR_NONNULL ? loc->of : loc;
    if (value->kind == GQ_N_VAR) {
        gq_v_var_at(v, value, loc, loc_default, gen);
    } else if (value->kind == GQ_N_LIST) {
        const struct gq_tref *item = bare != NULL && bare->kind == GQ_TR_LIST ? bare->of : NULL;
        for (const struct gq_node *i = value->args; i != NULL; i = i->next) {
            gq_v_value_uses(v, i, item, false, gen, depth + 1);
        }
    } else if (value->kind == GQ_N_OBJECT) {
        const struct graphql_object *t = bare != NULL && bare->kind == GQ_TR_NAMED ? bare->t : NULL;
        for (const struct gq_node *i = value->args; i != NULL; i = i->next) {
            const struct graphql_field *f =
                t != NULL && t->kind == GQ_K_INPUT ? gq_type_field(t, i->name) : NULL;
            gq_v_value_uses(v, i->value, f != NULL ? f->type : NULL, false, gen, depth + 1);
        }
    }
}

static void gq_v_arg_uses(struct gq_val *v, const struct gq_node *n,
                          const struct graphql_field *def, int gen)
{
    for (const struct gq_node *a = n->args; a != NULL; a = a->next) {
        const struct gq_arg *ad = def != NULL ? gq_field_arg(def, a->name) : NULL;
        gq_v_value_uses(v, a->value, ad != NULL ? ad->type : NULL, ad != NULL && ad->def != NULL,
                        gen, 0);
    }
}

/* Variables used under n, through fragments (each fragment once per operation: mark gen). */
static void gq_v_var_uses(struct gq_val *v, struct gq_node *n, int gen, int depth)
{
    /* selections nest at most max_depth + GRAPHQL_VALUE_DEPTH_MAX deep in one definition and
     * fragments GRAPHQL_FRAGMENT_DEPTH_MAX deep (or validation fails anyway) */
    if (n == NULL || depth > (int)((v->c->limits->max_depth + GRAPHQL_VALUE_DEPTH_MAX + 1) *
                                   (GRAPHQL_FRAGMENT_DEPTH_MAX + 1))) {
        return;
    }
    for (struct gq_node *d = n->dirs; d != NULL; d = d->next) {
        gq_v_arg_uses(v, d, gq_schema_directive(v->c->schema, d->name), gen);
    }
    if (n->kind == GQ_N_FIELD) {
        gq_v_arg_uses(v, n, n->def, gen);
    }
    if (n->kind == GQ_N_SPREAD && n->frag != NULL && n->frag->mark != gen) {
        n->frag->mark = gen;
        n->frag->op = 1; /* used (NoUnusedFragments) */
        gq_v_var_uses(v, n->frag, gen, depth + 1);
    }
    for (struct gq_node *s = n->sel; s != NULL; s = s->next) {
        gq_v_var_uses(v, s, gen, depth + 1);
    }
}

static void gq_v_operation(struct gq_val *v, struct gq_node *op, int gen)
{
    LMQ_ASSERT(op != NULL && op->kind == GQ_N_OPERATION);
    const struct graphql_schema *s = v->c->schema;
    static const char *const opn[] = {"query", "mutation", "subscription"};
    static const uint32_t locs[] = {GQ_LOC_QUERY, GQ_LOC_MUTATION, GQ_LOC_SUBSCRIPTION};
    v->op = op;
    gq_v_directives(v, op->dirs, locs[op->op]);
    for (struct gq_node *var = op->vars; var != NULL; var = var->next) {
        for (struct gq_node *o = op->vars; o != var; o = o->next) {
            if (strcmp(o->name, var->name) == 0) {
                const uint32_t pos[2][2] = {{o->name_line, o->name_col},
                                            {var->name_line, var->name_col}};
                gq_error_pos(v->c, pos, 2, "There can be only one variable named \"$%s\".",
                             var->name);
            }
        }
        gq_v_directives(v, var->dirs, GQ_LOC_VARIABLE_DEFINITION);
        struct gq_tref *n = var->type;
        while (n->kind != GQ_TR_NAMED) {
            n = n->of;
        }
        n->t = gq_schema_type(s, n->name);
        if (n->t == NULL) {
            gq_v_unknown_type(v, n->name, var->type_line, var->type_col);
        } else if (n->t->kind == GQ_K_OBJECT) {
            char *tn = gq_tref_str(&v->c->arena, var->type);
            gq_error_at(v->c, var->type_line, var->type_col,
                        "Variable \"$%s\" cannot be non-input type \"%s\".", var->name, tn);
            n->t = NULL;
        } else if (var->value != NULL) {
            gq_v_value(v, var->type, var->value);
        }
    }
    if (op->op != GQ_OP_QUERY) {
        gq_error(v->c, GQ_NODES(op), "The %s operation is not supported by the schema.",
                 opn[op->op]);
        return;
    }
    gq_v_selections(v, op, s->query);
    for (struct gq_node *var = op->vars; var != NULL; var = var->next) {
        var->mark = 0;
    }
    for (struct gq_node *d = op->dirs; d != NULL; d = d->next) {
        gq_v_arg_uses(v, d, gq_schema_directive(s, d->name), gen);
    }
    for (struct gq_node *sel = op->sel; sel != NULL; sel = sel->next) {
        gq_v_var_uses(v, sel, gen, 0);
    }
    for (struct gq_node *var = op->vars; var != NULL; var = var->next) {
        if (var->mark != gen) {
            if (op->name != NULL) {
                gq_error(v->c, GQ_NODES(var), "Variable \"$%s\" is never used in operation \"%s\".",
                         var->name, op->name);
            } else {
                gq_error(v->c, GQ_NODES(var), "Variable \"$%s\" is never used.", var->name);
            }
        }
    }
}

/* Appends p to a malloc'd array of pointers; false when out of memory. */
static bool gq_push(struct gq_node ***arr, size_t *n, size_t *cap, struct gq_node *p)
{
    if (*n == *cap) {
        size_t ncap = *cap == 0 ? 16 : *cap * 2;
        struct gq_node **a = realloc(*arr, ncap * sizeof(*a));
        if (a == NULL) {
            return false;
        }
        *arr = a;
        *cap = ncap;
    }
    (*arr)[(*n)++] = p;
    return true;
}

/* A fragment's spreads in graphql-js's getFragmentSpreads order (selection sets visited from a
 * stack): a malloc'd array in *out, its length returned (the document bounds both arrays). */
static size_t gq_v_spreads(struct gq_ctx *c, struct gq_node *frag, struct gq_node ***out)
{
    struct gq_node **stack = NULL;
    size_t top = 0, stack_cap = 0, n = 0, cap = 0;
    LMQ_ASSERT(frag != NULL && out != NULL);
    *out = NULL;
    bool ok = gq_push(&stack, &top, &stack_cap, frag);
    while (ok && top > 0) {
        struct gq_node *set = stack[--top];
        for (struct gq_node *s = set->sel; ok && s != NULL; s = s->next) {
            if (s->kind == GQ_N_SPREAD) {
                ok = gq_push(out, &n, &cap, s);
            } else if (s->has_sel) {
                ok = gq_push(&stack, &top, &stack_cap, s);
            }
        }
    }
    free(stack);
    if (!ok) {
        c->oom = true;
    }
    return n;
}

struct gq_cycles {
    struct gq_node *path[GRAPHQL_FRAGMENT_DEPTH_MAX + 1]; /* the spreads being followed */
    size_t path_len;
    bool found;
};

/* NoFragmentCycles as graphql-js walks it: mark 1 = visited; path_index while on the path. */
static void gq_v_cycle(struct gq_val *v, struct gq_node *frag, struct gq_cycles *cy, int depth)
{
    LMQ_ASSERT(frag != NULL && frag->kind == GQ_N_FRAGMENT);
    struct gq_node **spreads = NULL;
    frag->mark = 1;
    if (depth >= GRAPHQL_FRAGMENT_DEPTH_MAX) {
        gq_error(v->c, GQ_NODES(frag),
                 "Fragment \"%s\" is spread within fragments nested deeper than the limit of %d.",
                 frag->name, GRAPHQL_FRAGMENT_DEPTH_MAX);
        cy->found = true;
        return;
    }
    size_t n = gq_v_spreads(v->c, frag, &spreads);
    size_t on_path = cy->path_len + 1;
    frag->path_index = on_path;
    LMQ_ASSERT(cy->path_len < LMQ_ARRAY_LEN(cy->path)); /* depth < GRAPHQL_FRAGMENT_DEPTH_MAX */
    for (size_t i = 0; i < n; i++) {
        struct gq_node *target = gq_find_fragment(v->doc, spreads[i]->name);
        cy->path[cy->path_len++] = spreads[i];
        size_t idx = target != NULL ? target->path_index : 0;
        if (idx == 0) {
            if (target != NULL && target->mark == 0) {
                gq_v_cycle(v, target, cy, depth + 1);
            }
        } else {
            char via[1024] = "";
            uint32_t pos[32][2];
            size_t np = 0;
            for (size_t k = idx - 1; k < cy->path_len; k++) {
                if (k + 1 < cy->path_len) {
                    size_t len = strlen(via);
                    snprintf(via + len, sizeof(via) - len, "%s\"%s\"", len > 0 ? ", " : "",
                             cy->path[k]->name);
                }
                if (np < 32) {
                    pos[np][0] = cy->path[k]->line;
                    pos[np][1] = cy->path[k]->col;
                    np++;
                }
            }
            if (via[0] != '\0') {
                gq_error_pos(v->c, (const uint32_t(*)[2])pos, np,
                             "Cannot spread fragment \"%s\" within itself via %s.",
                             spreads[i]->name, via);
            } else {
                gq_error_pos(v->c, (const uint32_t(*)[2])pos, np,
                             "Cannot spread fragment \"%s\" within itself.", spreads[i]->name);
            }
            cy->found = true;
        }
        cy->path_len--;
    }
    free(spreads);
    frag->path_index = 0;
}

/* Expanded depth and field count (fragments have no cycle). */
static void gq_v_measure(struct gq_val *v, const struct gq_node *n, uint32_t depth,
                         uint64_t *fields, uint32_t *max_depth)
{
    for (const struct gq_node *s = n->sel; s != NULL && *fields <= v->c->limits->max_fields;
         s = s->next) {
        if (s->kind == GQ_N_FIELD) {
            (*fields)++;
            *max_depth = LMQ_MAX(*max_depth, depth + 1);
            if (*max_depth > v->c->limits->max_depth) {
                return;
            }
            gq_v_measure(v, s, depth + 1, fields, max_depth);
        } else {
            (*fields)++; /* spreads cost too: bounds the walk of fragments without fields */
            const struct gq_node *body =
                s->kind == GQ_N_SPREAD ? gq_find_fragment(v->doc, s->name) : s;
            if (body != NULL) {
                gq_v_measure(v, body, depth, fields, max_depth);
            }
        }
    }
}

static void gq_v_fragments(struct gq_val *v, bool *cycles)
{
    LMQ_ASSERT(v != NULL && cycles != NULL);
    for (struct gq_node *d = v->doc->defs; d != NULL; d = d->next) {
        if (d->kind != GQ_N_FRAGMENT) {
            continue;
        }
        for (struct gq_node *o = v->doc->defs; o != d; o = o->next) {
            if (o->kind == GQ_N_FRAGMENT && strcmp(o->name, d->name) == 0) {
                const uint32_t pos[2][2] = {{o->name_line, o->name_col},
                                            {d->name_line, d->name_col}};
                gq_error_pos(v->c, pos, 2, "There can be only one fragment named \"%s\".", d->name);
            }
        }
        v->op = NULL;
        gq_v_directives(v, d->dirs, GQ_LOC_FRAGMENT_DEFINITION);
        d->type->t = gq_schema_type(v->c->schema, d->type->name);
        if (d->type->t == NULL) {
            gq_v_unknown_type(v, d->type->name, d->type_line, d->type_col);
        } else if (d->type->t->kind != GQ_K_OBJECT) {
            gq_error_at(v->c, d->type_line, d->type_col,
                        "Fragment \"%s\" cannot condition on non composite type \"%s\".", d->name,
                        d->type->name);
            d->type->t = NULL;
        } else {
            gq_v_selections(v, d, d->type->t);
        }
    }
    struct gq_cycles *cy = calloc(1, sizeof(*cy));
    if (cy == NULL) {
        v->c->oom = true;
        *cycles = true;
        return;
    }
    for (struct gq_node *o = v->doc->defs; o != NULL; o = o->next) {
        o->mark = 0;
    }
    for (struct gq_node *d = v->doc->defs; d != NULL; d = d->next) {
        if (d->kind == GQ_N_FRAGMENT && d->mark == 0) {
            gq_v_cycle(v, d, cy, 0);
        }
    }
    *cycles = cy->found;
    free(cy);
}

/* ExecutableDefinitions, UniqueOperationNames, LoneAnonymousOperation. */
static void gq_v_definitions(struct gq_ctx *c, struct gq_doc *doc)
{
    size_t anon = 0, ops = 0;
    LMQ_ASSERT(c != NULL && doc != NULL);
    for (struct gq_node *d = doc->defs; d != NULL; d = d->next) {
        if (d->kind == GQ_N_TYPESYSTEM) {
            if (d->name != NULL) {
                gq_error(c, GQ_NODES(d), "The \"%s\" definition is not executable.", d->name);
            } else {
                gq_error(c, GQ_NODES(d), "The schema definition is not executable.");
            }
        } else if (d->kind == GQ_N_OPERATION) {
            ops++;
            anon += d->name == NULL;
            for (struct gq_node *o = doc->defs; o != d && d->name != NULL; o = o->next) {
                if (o->kind == GQ_N_OPERATION && o->name != NULL && strcmp(o->name, d->name) == 0) {
                    const uint32_t pos[2][2] = {{o->name_line, o->name_col},
                                                {d->name_line, d->name_col}};
                    gq_error_pos(c, pos, 2, "There can be only one operation named \"%s\".",
                                 d->name);
                }
            }
        }
    }
    for (struct gq_node *d = doc->defs; d != NULL && anon > 0 && ops > 1; d = d->next) {
        if (d->kind == GQ_N_OPERATION && d->name == NULL) {
            gq_error(c, GQ_NODES(d),
                     "This anonymous operation must be the only defined operation.");
        }
    }
}

/* NoUnusedFragments: a fragment is used when an operation reaches its name. */
static void gq_v_unused_fragments(struct gq_ctx *c, struct gq_doc *doc)
{
    LMQ_ASSERT(c != NULL && doc != NULL);
    for (struct gq_node *d = doc->defs; d != NULL; d = d->next) {
        if (d->kind == GQ_N_FRAGMENT && gq_doc_fragment(doc, d->name)->op == 0) {
            gq_error(c, GQ_NODES(d), "Fragment \"%s\" is never used.", d->name);
        }
    }
}

/* The limits on the document with fragments expanded (only when they have no cycle). */
static void gq_v_limits(struct gq_val *v)
{
    const struct graphql_limits *lim = v->c->limits;
    LMQ_ASSERT(v != NULL && lim != NULL);
    for (struct gq_node *d = v->doc->defs; d != NULL; d = d->next) {
        uint64_t fields = 0;
        uint32_t depth = 0;
        if (d->kind != GQ_N_OPERATION) {
            continue;
        }
        gq_v_measure(v, d, 0, &fields, &depth);
        if (depth > lim->max_depth) {
            gq_error(v->c, GQ_NODES(d), "The query is nested deeper than the limit of %u.",
                     lim->max_depth);
        } else if (fields > lim->max_fields) {
            gq_error(v->c, GQ_NODES(d), "The query selects more than the limit of %u fields.",
                     lim->max_fields);
        }
    }
}

int gq_validate(struct gq_ctx *c, struct gq_doc *doc)
{
    struct gq_val v = {.c = c, .doc = doc};
    size_t before = json_array_size(c->errors);
    bool cycles = false;
    LMQ_ASSERT(c != NULL && doc != NULL);
    gq_v_definitions(c, doc);
    gq_v_fragments(&v, &cycles);
    int gen = 100; /* marks of one operation's walk: never reset, each operation has its own */
    for (struct gq_node *d = doc->defs; d != NULL; d = d->next) {
        if (d->kind == GQ_N_OPERATION) {
            gq_v_operation(&v, d, ++gen);
        }
    }
    gq_v_unused_fragments(c, doc);
    gq_validate_overlaps(c, doc);
    if (json_array_size(c->errors) == before && !cycles) {
        gq_v_limits(&v);
    }
    return json_array_size(c->errors) == before && !cycles ? 0 : LMQ_EINVAL;
}
