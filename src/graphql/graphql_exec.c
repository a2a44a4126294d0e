/*
 * Execution (spec section 6), breadth-first: every object of one level of the response is
 * filled before the next level starts, so a field of the same definition and arguments is
 * resolved for every parent of a level in one resolver batch (no N+1). Non-null violations
 * null the nearest nullable position above them; everything queued below it is dropped.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "graphql/graphql_introspect.h"

/* Where a position comes in graphql-js's depth-first execution: field ordinals and list
 * indexes from the root, compared lexicographically (a prefix first). */
struct gq_key {
    const uint32_t *v;
    uint32_t n;
};

/* A position in the response: member key of an object or index of a list. */
struct gq_pos {
    json_t *container;
    const char *key; /* NULL: index */
    size_t index;
    bool nonnull;
    bool nulled;
    struct gq_key k;      /* this position's place in depth-first order */
    struct gq_key null_k; /* when nulled: the earliest error that nulled it */
    struct gq_pos *up;    /* the position containing container (NULL: data) */
};

/* A field error, kept until the end: graphql-js never executes what comes after an error
 * that nulled a common ancestor, so such later errors are dropped then. */
struct gq_pending {
    json_t *error;
    struct gq_pos *pos;
};

/* One object of the response waiting for its fields. */
struct gq_res {
    json_t *obj;
    json_t *value; /* the resolved value (reference held) */
    const struct graphql_object *type;
    struct gq_pos *pos; /* NULL: the root object */
    struct gq_key k;
    json_t *path;          /* path to obj (reference held) */
    struct gq_node **sels; /* selection-set owners to collect from */
    size_t sels_count;
    struct gq_res *next;
};

/* One field of one object. */
struct gq_slot {
    struct gq_res *res;
    const char *key;
    const struct graphql_field *def;
    struct gq_node **nodes; /* the merged field nodes (same response key), in the arena */
    size_t nodes_count;
    size_t nodes_cap;
    json_t *args;
    json_t *result;
    char *error;
    bool done;
    uint32_t ordinal; /* among its object's fields */
};

struct gq_exec {
    struct gq_ctx *c;
    const struct graphql_resolvers *r;
    json_t *vars;
    json_t *data;
    bool data_null;
    struct gq_key data_null_k;
    json_t *keep; /* every object and list of the response, alive until the end */
    struct gq_pending *pending;
    size_t pending_count;
    size_t pending_cap;
    struct gq_res *next_head, **next_tail;
    uint64_t result_items;
    struct timespec start;
    bool timed_out;
};

static bool gq_key_less(struct gq_key a, struct gq_key b)
{
    for (uint32_t i = 0; i < a.n && i < b.n; i++) {
        if (a.v[i] != b.v[i]) {
            return a.v[i] < b.v[i];
        }
    }
    return a.n < b.n;
}

static struct gq_key gq_key_child(struct gq_exec *x, struct gq_key parent, uint32_t i)
{
    struct gq_key k = {0};
    uint32_t *v = gq_alloc(&x->c->arena, (parent.n + 1) * sizeof(*v));
    if (v == NULL) {
        x->c->oom = true;
        return parent;
    }
    if (parent.n > 0) {
        memcpy(v, parent.v, parent.n * sizeof(*v));
    }
    v[parent.n] = i;
    k.v = v;
    k.n = parent.n + 1;
    return k;
}

/* Whether graphql-js would never reach what is at key k under p: an earlier error nulled a
 * position above it. */
static bool gq_dead(const struct gq_exec *x, const struct gq_pos *p, struct gq_key k)
{
    if (x->data_null && gq_key_less(x->data_null_k, k)) {
        return true;
    }
    for (; p != NULL; p = p->up) {
        if (p->nulled && gq_key_less(p->null_k, k)) {
            return true;
        }
    }
    return false;
}

/* A null (error) at p: nulls p or the nearest nullable position above it. */
static void gq_null_at(struct gq_exec *x, struct gq_pos *p, struct gq_key k)
{
    while (p != NULL && p->nonnull) {
        p = p->up;
    }
    if (p == NULL) {
        if (!x->data_null || gq_key_less(k, x->data_null_k)) {
            x->data_null_k = k;
        }
        x->data_null = true;
        return;
    }
    if (!p->nulled || gq_key_less(k, p->null_k)) {
        p->null_k = k;
    }
    p->nulled = true;
    int rc = p->key != NULL ? json_object_set_new(p->container, p->key, json_null())
                            : json_array_set_new(p->container, p->index, json_null());
    if (rc != 0) {
        x->c->oom = true; /* the response would be wrong: out of memory instead */
    }
}

static json_t *gq_path_with(const json_t *path, json_t *item)
{
    json_t *p = json_copy((json_t *)path);
    if (p == NULL || item == NULL) {
        json_decref(p);
        json_decref(item);
        return NULL;
    }
    if (json_array_append_new(p, item) != 0) { /* item is released either way */
        json_decref(p);
        return NULL;
    }
    return p;
}

/* A field error at pos: kept (see gq_pending) and the null propagated. */
static void gq_fail(struct gq_exec *x, const struct gq_slot *s, struct gq_pos *pos, json_t *path,
                    const char *msg)
{
    LMQ_ASSERT(x != NULL && s != NULL && pos != NULL && msg != NULL);
    const struct gq_node *at = s->nodes[0];
    gq_null_at(x, pos, pos->k);
    if (x->pending_count >= GRAPHQL_ERRORS_MAX * 4) {
        return;
    }
    if (x->pending_count == x->pending_cap) {
        size_t cap = x->pending_cap == 0 ? 16 : x->pending_cap * 2;
        struct gq_pending *p = realloc(x->pending, cap * sizeof(*p));
        if (p == NULL) {
            x->c->oom = true;
            return;
        }
        x->pending = p;
        x->pending_cap = cap;
    }
    /* a resolver's message or a serialized value need not be UTF-8 */
    size_t cap = 3 * strlen(msg) + 1;
    char *clean = malloc(cap);
    if (clean == NULL) {
        x->c->oom = true;
        return;
    }
    gq_utf8_clean(msg, clean, cap);
    json_t *e = json_pack("{s:s,s:[{s:I,s:I}],s:O}", "message", clean, "locations", "line",
                          (json_int_t)at->line, "column", (json_int_t)at->col, "path", path);
    free(clean);
    if (e == NULL) {
        x->c->oom = true;
        return;
    }
    x->pending[x->pending_count].error = e;
    x->pending[x->pending_count].pos = pos;
    x->pending_count++;
}

static int gq_pending_cmp(const void *a, const void *b)
{
    const struct gq_pending *pa = a, *pb = b;
    return gq_key_less(pa->pos->k, pb->pos->k) ? -1 : gq_key_less(pb->pos->k, pa->pos->k) ? 1 : 0;
}

/* The errors graphql-js would have met, in its depth-first order. */
static void gq_pending_flush(struct gq_exec *x)
{
    if (x->pending_count > 1) {
        qsort(x->pending, x->pending_count, sizeof(*x->pending), gq_pending_cmp);
    }
    for (size_t i = 0; i < x->pending_count; i++) {
        struct gq_pending *p = &x->pending[i];
        if (!gq_dead(x, p->pos, p->pos->k) && json_array_size(x->c->errors) < GRAPHQL_ERRORS_MAX) {
            if (json_array_append(x->c->errors, p->error) != 0) {
                x->c->oom = true;
            }
        }
        json_decref(p->error);
    }
    free(x->pending);
    x->pending = NULL;
    x->pending_count = x->pending_cap = 0;
}

/* @skip / @include on a selection: true when it is to be left out. */
static bool gq_skipped(struct gq_exec *x, const struct gq_node *sel)
{
    for (const struct gq_node *d = sel->dirs; d != NULL; d = d->next) {
        bool skip = strcmp(d->name, "skip") == 0, include = strcmp(d->name, "include") == 0;
        if ((!skip && !include) || d->args == NULL) {
            continue;
        }
        const struct gq_node *v = d->args->value;
        bool val =
            v->kind == GQ_N_BOOL ? v->op != 0 : json_is_true(json_object_get(x->vars, v->name));
        if ((skip && val) || (include && !val)) {
            return true;
        }
    }
    return false;
}

/* CollectFields (spec 6.3.2) into slots (response keys in order). */
static int gq_collect(struct gq_exec *x, struct gq_res *res, const struct gq_node *owner,
                      struct gq_slot **slots, size_t *count, size_t first, size_t cap, int depth)
{
    LMQ_ASSERT(res != NULL && owner != NULL && *count >= first);
    /* fragments within fragments and inline fragments within inline fragments (both bounded
     * by validation and the parser) */
    if (depth > GRAPHQL_FRAGMENT_DEPTH_MAX + GRAPHQL_VALUE_DEPTH_MAX + 8) {
        return 0;
    }
    for (struct gq_node *s = owner->sel; s != NULL; s = s->next) {
        if (gq_skipped(x, s)) {
            continue;
        }
        if (s->kind == GQ_N_FIELD) {
            const char *key = s->alias != NULL ? s->alias : s->name;
            struct gq_slot *slot = NULL;
            for (size_t i = first; i < *count && slot == NULL; i++) {
                if (strcmp((*slots)[i].key, key) == 0) {
                    slot = &(*slots)[i];
                }
            }
            if (slot == NULL) {
                if (*count >= cap) {
                    return LMQ_ELIMIT;
                }
                slot = &(*slots)[(*count)++];
                memset(slot, 0, sizeof(*slot));
                slot->res = res;
                slot->key = key;
                slot->def = s->def;
            }
            if (slot->nodes_count == slot->nodes_cap) {
                /* the document's size bounds how many nodes merge into one key */
                size_t ncap = slot->nodes_cap == 0 ? 4 : slot->nodes_cap * 2;
                struct gq_node **n = gq_alloc(&x->c->arena, ncap * sizeof(*n));
                if (n == NULL) {
                    return LMQ_ENOMEM;
                }
                if (slot->nodes_count > 0) {
                    memcpy(n, slot->nodes, slot->nodes_count * sizeof(*n));
                }
                slot->nodes = n;
                slot->nodes_cap = ncap;
            }
            slot->nodes[slot->nodes_count++] = s;
        } else {
            const struct gq_node *body = s->kind == GQ_N_SPREAD ? s->frag : s;
            if (body == NULL || (body->type != NULL && body->type->t != res->type)) {
                continue; /* no abstract types: a condition holds only on its own type */
            }
            int rc = gq_collect(x, res, body, slots, count, first, cap, depth + 1);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* Coerced arguments of a field (or NULL with *msg on a bad value). */
static json_t *gq_args(struct gq_exec *x, const struct graphql_field *f, const struct gq_node *node,
                       char **msg)
{
    LMQ_ASSERT(f != NULL && node != NULL && msg != NULL);
    json_t *out = json_object();
    for (size_t i = 0; out != NULL && i < f->args_count; i++) {
        const struct gq_arg *a = &f->args[i];
        const struct gq_node *an = NULL;
        for (const struct gq_node *n = node->args; n != NULL; n = n->next) {
            if (strcmp(n->name, a->name) == 0) {
                an = n;
            }
        }
        bool absent = an == NULL || (an->value->kind == GQ_N_VAR &&
                                     json_object_get(x->vars, an->value->name) == NULL);
        json_t *v = NULL;
        if (absent) {
            if (a->def != NULL) {
                v = json_deep_copy(a->def);
            } else if (a->type->kind == GQ_TR_NONNULL) {
                char *tn = gq_tref_str(&x->c->arena, a->type);
                char buf[512];
                snprintf(buf, sizeof(buf),
                         "Argument \"%s\" of required type \"%s\" was not provided.", a->name,
                         tn != NULL ? tn : "?");
                *msg = strdup(buf);
                json_decref(out);
                return NULL;
            } else {
                continue;
            }
        } else {
            struct gq_cerr e;
            v = gq_coerce_literal(a->type, an->value, x->vars, &e);
            if (v == NULL) {
                *msg = e.msg[0];
                e.msg[0] = NULL;
                gq_cerr_free(&e);
                json_decref(out);
                return NULL;
            }
        }
        if (json_object_set_new(out, a->name, v) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static bool gq_out_of_time(struct gq_exec *x)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms =
        (int64_t)(now.tv_sec - x->start.tv_sec) * 1000 + (now.tv_nsec - x->start.tv_nsec) / 1000000;
    if (x->c->limits->max_ms != 0 && ms > (int64_t)x->c->limits->max_ms) {
        x->timed_out = true;
    }
    return x->timed_out;
}

/* Runs one batch: slots[idx[0..n)] share the field definition and arguments. */
static void gq_run_batch(struct gq_exec *x, struct gq_slot *slots, const size_t *idx, size_t n)
{
    LMQ_ASSERT(n > 0 && idx != NULL);
    const struct graphql_field *f = slots[idx[0]].def;
    const char *ptype = slots[idx[0]].res->type->name;
    if (f->tag <= 0 || x->r == NULL || x->r->resolve == NULL) {
        for (size_t i = 0; i < n; i++) {
            struct gq_slot *s = &slots[idx[i]];
            if (f->tag < 0) {
                s->result = gq_introspect_resolve(x->c->schema, f, ptype, s->args, s->res->value);
                if (s->result == NULL) {
                    x->c->oom = true;
                }
            } else {
                json_t *v =
                    json_is_object(s->res->value) ? json_object_get(s->res->value, f->name) : NULL;
                s->result = v != NULL ? json_incref(v) : NULL;
            }
        }
        return;
    }
    const json_t **parents = calloc(n, sizeof(*parents));
    json_t **results = calloc(n, sizeof(*results));
    char **errors = calloc(n, sizeof(*errors));
    if (parents == NULL || results == NULL || errors == NULL) {
        x->c->oom = true;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        parents[i] = slots[idx[i]].res->value;
    }
    struct graphql_batch b = {.resolver_tag = f->tag,
                              .parent_type = ptype,
                              .field = f->name,
                              .args = slots[idx[0]].args,
                              .parents = (const json_t *const *)parents,
                              .count = n,
                              .results = results,
                              .errors = errors};
    int rc = x->r->resolve(x->r->ctx, &b);
    for (size_t i = 0; i < n; i++) {
        struct gq_slot *s = &slots[idx[i]];
        if (rc != 0) {
            json_decref(results[i]);
            free(errors[i]);
            s->error = strdup(lmq_strerror(rc));
        } else {
            s->result = results[i];
            s->error = errors[i];
        }
    }
out:
    free(parents);
    free(results);
    free(errors);
}

static int gq_complete(struct gq_exec *x, struct gq_slot *s, const struct gq_tref *t, json_t *v,
                       struct gq_pos *pos, json_t *path, int depth);

static char *gq_serialize_error(const char *fmt, const json_t *v)
{
    LMQ_ASSERT(fmt != NULL && v != NULL);
    char *shown = gq_inspect(v), buf[2048];
    snprintf(buf, sizeof(buf), fmt, shown);
    free(shown);
    return strdup(buf);
}

/* Serializes a leaf value; NULL with *msg when it cannot be. */
static json_t *gq_serialize(const struct graphql_object *t, json_t *v, char **msg)
{
    LMQ_ASSERT(t != NULL && v != NULL && t->kind != GQ_K_OBJECT);
    const char *n = t->name;
    if (t->kind == GQ_K_ENUM) {
        for (size_t i = 0; json_is_string(v) && i < t->values_count; i++) {
            if (strcmp(t->values[i], json_string_value(v)) == 0) {
                return json_incref(v);
            }
        }
        char fmt[300];
        snprintf(fmt, sizeof(fmt), "Enum \"%s\" cannot represent value: %%s", n);
        *msg = gq_serialize_error(fmt, v);
        return NULL;
    }
    if (!t->builtin) {
        return json_incref(v);
    }
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (json_is_boolean(v)) {
        d = json_is_true(v) ? 1 : 0;
    }
    if (strcmp(n, "Int") == 0) {
        if (!isnan(d) && d == floor(d) && d >= -2147483648.0 && d <= 2147483647.0) {
            return json_integer((json_int_t)d);
        }
        *msg = gq_serialize_error(!isnan(d) && d == floor(d)
                                      ? "Int cannot represent non 32-bit signed integer value: %s"
                                      : "Int cannot represent non-integer value: %s",
                                  v);
    } else if (strcmp(n, "Float") == 0) {
        if (isfinite(d)) {
            return json_is_boolean(v) ? json_integer((json_int_t)d) : json_incref(v);
        }
        *msg = gq_serialize_error("Float cannot represent non numeric value: %s", v);
    } else if (strcmp(n, "Boolean") == 0) {
        if (json_is_boolean(v)) {
            return json_incref(v);
        }
        if (isfinite(d)) {
            return json_boolean(d != 0);
        }
        *msg = gq_serialize_error("Boolean cannot represent a non boolean value: %s", v);
    } else if (json_is_string(v)) {
        return json_incref(v);
    } else if (json_is_integer(v) ||
               (strcmp(n, "String") == 0 && (json_is_number(v) || json_is_boolean(v)))) {
        char num[64];
        if (json_is_boolean(v)) {
            snprintf(num, sizeof(num), "%s", json_is_true(v) ? "true" : "false");
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        } else {
            gq_print_number(num, sizeof(num), d);
        }
        return json_string(num);
    } else {
        *msg = gq_serialize_error(strcmp(n, "String") == 0 ? "String cannot represent value: %s"
                                                           : "ID cannot represent value: %s",
                                  v);
    }
    return NULL;
}

static int gq_complete_list(struct gq_exec *x, struct gq_slot *s, const struct gq_tref *t,
                            json_t *v, struct gq_pos *pos, json_t *path, int depth)
{
    LMQ_ASSERT(t->kind == GQ_TR_LIST && pos != NULL);
    char buf[256];
    if (!json_is_array(v)) {
        snprintf(buf, sizeof(buf), "Expected Iterable, but did not find one for field \"%s.%s\".",
                 s->res->type->name, s->def->name);
        gq_fail(x, s, pos, path, buf);
        return 0;
    }
    if (x->c->limits->max_list_items != 0 && json_array_size(v) > x->c->limits->max_list_items) {
        snprintf(buf, sizeof(buf), "The list has more than the limit of %u items.",
                 x->c->limits->max_list_items);
        gq_fail(x, s, pos, path, buf);
        return 0;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < json_array_size(v); i++) {
        if (json_array_append_new(arr, json_null()) != 0) {
            json_decref(arr);
            return LMQ_ENOMEM;
        }
    }
    if (arr == NULL ||
        (pos->key != NULL ? json_object_set_new(pos->container, pos->key, arr)
                          : json_array_set_new(pos->container, pos->index, arr)) != 0) {
        return LMQ_ENOMEM;
    }
    if (json_array_append(x->keep, arr) != 0) {
        return LMQ_ENOMEM;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        struct gq_pos *ip = gq_alloc(&x->c->arena, sizeof(*ip));
        json_t *ipath = gq_path_with(path, json_integer((json_int_t)i));
        if (ip == NULL || ipath == NULL) {
            json_decref(ipath);
            return LMQ_ENOMEM;
        }
        ip->container = arr;
        ip->index = i;
        ip->nonnull = t->of->kind == GQ_TR_NONNULL;
        ip->up = pos;
        ip->k = gq_key_child(x, pos->k, (uint32_t)i);
        if (gq_dead(x, pos, ip->k)) {
            json_decref(ipath);
            break;
        }
        int rc = gq_complete(x, s, t->of, json_array_get(v, i), ip, ipath, depth + 1);
        json_decref(ipath);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* CompleteValue (spec 6.4.3) of v at pos. */
static int gq_complete(struct gq_exec *x, struct gq_slot *s, const struct gq_tref *t, json_t *v,
                       struct gq_pos *pos, json_t *path, int depth)
{
    LMQ_ASSERT(s != NULL && t != NULL && pos != NULL);
    char buf[512];
    if (depth > GRAPHQL_VALUE_DEPTH_MAX) {
        return 0;
    }
    if (t->kind == GQ_TR_NONNULL) {
        if (v == NULL || json_is_null(v)) {
            snprintf(buf, sizeof(buf), "Cannot return null for non-nullable field %s.%s.",
                     s->res->type->name, s->def->name);
            gq_fail(x, s, pos, path, buf);
            return 0;
        }
        return gq_complete(x, s, t->of, v, pos, path, depth);
    }
    if (v == NULL || json_is_null(v)) {
        return 0; /* the position already holds null */
    }
    if (t->kind == GQ_TR_LIST) {
        return gq_complete_list(x, s, t, v, pos, path, depth);
    }
    const struct graphql_object *n = t->t;
    json_t *out = NULL;
    if (n->kind != GQ_K_OBJECT) {
        char *msg = NULL;
        out = gq_serialize(n, v, &msg);
        if (out == NULL) {
            gq_fail(x, s, pos, path, msg != NULL ? msg : "Out of memory.");
            free(msg);
            return 0;
        }
    } else {
        if (x->c->limits->max_result_items != 0 &&
            ++x->result_items > x->c->limits->max_result_items) {
            snprintf(buf, sizeof(buf), "The response has more than the limit of %u objects.",
                     x->c->limits->max_result_items);
            gq_fail(x, s, pos, path, buf);
            return 0;
        }
        out = json_object();
        struct gq_res *r = gq_alloc(&x->c->arena, sizeof(*r));
        struct gq_node **sels = s->nodes; /* shared by the objects of this field (arena) */
        if (out == NULL || r == NULL || sels == NULL || json_array_append(x->keep, out) != 0) {
            json_decref(out);
            return LMQ_ENOMEM;
        }
        r->k = pos->k;
        r->obj = out;
        r->value = json_incref(v);
        r->type = n;
        r->pos = pos;
        r->path = json_incref(path);
        r->sels = sels;
        r->sels_count = s->nodes_count;
        *x->next_tail = r;
        x->next_tail = &r->next;
    }
    if ((pos->key != NULL ? json_object_set_new(pos->container, pos->key, out)
                          : json_array_set_new(pos->container, pos->index, out)) != 0) {
        return LMQ_ENOMEM;
    }
    return 0;
}

static void gq_res_free(struct gq_res *r)
{
    while (r != NULL) {
        json_decref(r->value);
        json_decref(r->path);
        r = r->next;
    }
}

/* Collects the fields of every object of the level into slots. */
static int gq_level_collect(struct gq_exec *x, struct gq_res *level, struct gq_slot **slots,
                            size_t *count, size_t *cap)
{
    LMQ_ASSERT(level != NULL && *count == 0);
    const struct gq_res *prev = NULL;
    size_t prev_first = 0, prev_n = 0;
    for (struct gq_res *r = level; r != NULL; r = r->next) {
        if (gq_dead(x, r->pos, r->k)) {
            continue;
        }
        /* an object collects at most the document's fields, which validation bounded */
        size_t room = (size_t)x->c->limits->max_fields + 1;
        if (*cap - *count < room) {
            size_t ncap = *cap + room * 2;
            struct gq_slot *ns = realloc(*slots, ncap * sizeof(*ns));
            if (ns == NULL) {
                return LMQ_ENOMEM;
            }
            *slots = ns;
            *cap = ncap;
        }
        size_t before = *count;
        if (prev != NULL && prev->sels == r->sels && prev->type == r->type) {
            /* objects completed from one field share its selections: collected once */
            for (size_t i = 0; i < prev_n; i++) {
                struct gq_slot *sl = &(*slots)[(*count)++];
                *sl = (*slots)[prev_first + i];
                sl->res = r;
            }
        } else {
            for (size_t i = 0; i < r->sels_count; i++) {
                int rc = gq_collect(x, r, r->sels[i], slots, count, before, before + room, 0);
                if (rc != 0) {
                    return rc;
                }
            }
            prev = r;
            prev_first = before;
            prev_n = *count - before;
        }
        for (size_t i = before; i < *count; i++) {
            (*slots)[i].ordinal = (uint32_t)(i - before);
            /* keep the response's key order: placeholders now, values later */
            if (json_object_set_new(r->obj, (*slots)[i].key, json_null()) != 0) {
                return LMQ_ENOMEM;
            }
        }
    }
    return 0;
}

/* Orders slots by field definition, parent type and first field node: the slots one batch
 * may hold are then next to each other. */
static int gq_slot_cmp(const void *a, const void *b, void *arg)
{
    const struct gq_slot *slots = arg;
    const struct gq_slot *x = &slots[*(const size_t *)a], *y = &slots[*(const size_t *)b];
    uintptr_t kx[3] = {(uintptr_t)x->def, (uintptr_t)x->res->type, (uintptr_t)x->nodes[0]};
    uintptr_t ky[3] = {(uintptr_t)y->def, (uintptr_t)y->res->type, (uintptr_t)y->nodes[0]};
    for (size_t i = 0; i < 3; i++) {
        if (kx[i] != ky[i]) {
            return kx[i] < ky[i] ? -1 : 1;
        }
    }
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int gq_index_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* One resolver call per (field definition, parent type, arguments) of the level. Slots of one
 * field node have equal arguments, so arguments are compared once per node, not per parent:
 * O(slots log slots + nodes^2) for a level. */
static int gq_level_batches(struct gq_exec *x, struct gq_slot *slots, size_t count, size_t *idx)
{
    LMQ_ASSERT(slots != NULL && idx != NULL);
    size_t *order = malloc(count * sizeof(*order)), n_order = 0;
    if (order == NULL) {
        return LMQ_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (!slots[i].done) {
            order[n_order++] = i;
        }
    }
    qsort_r(order, n_order, sizeof(*order), gq_slot_cmp, slots);
    for (size_t i = 0; i < n_order && !gq_out_of_time(x); i++) {
        struct gq_slot *first = &slots[order[i]];
        if (first->done) {
            continue;
        }
        size_t n = 0;
        for (size_t j = i; j < n_order;) {
            struct gq_slot *s = &slots[order[j]];
            if (s->def != first->def || s->res->type != first->res->type) {
                break;
            }
            /* a run of one field node: equal arguments by construction, compared once */
            size_t end = j + 1;
            while (end < n_order && slots[order[end]].nodes[0] == s->nodes[0] &&
                   slots[order[end]].def == s->def && slots[order[end]].res->type == s->res->type) {
                end++;
            }
            bool match = !s->done && json_equal(s->args, first->args);
            for (; j < end; j++) {
                if (match && !slots[order[j]].done) {
                    idx[n++] = order[j];
                    slots[order[j]].done = true;
                }
            }
        }
        qsort(idx, n, sizeof(*idx), gq_index_cmp); /* parents in response order */
        gq_run_batch(x, slots, idx, n);
    }
    free(order);
    return 0;
}

static int gq_level(struct gq_exec *x, struct gq_res *level)
{
    LMQ_ASSERT(x != NULL && level != NULL);
    struct gq_slot *slots = NULL;
    size_t count = 0, cap = 0, *idx = NULL;
    int rc = gq_level_collect(x, level, &slots, &count, &cap);
    if (rc != 0 || count == 0) {
        goto out;
    }
    idx = malloc(count * sizeof(*idx));
    if (idx == NULL) {
        rc = LMQ_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        char *msg = NULL;
        slots[i].args = gq_args(x, slots[i].def, slots[i].nodes[0], &msg);
        if (slots[i].args == NULL) {
            slots[i].error = msg != NULL ? msg : strdup("Out of memory.");
            slots[i].done = true;
        }
    }
    rc = gq_level_batches(x, slots, count, idx);
    for (size_t i = 0; i < count && rc == 0 && !x->timed_out; i++) {
        struct gq_slot *s = &slots[i];
        struct gq_key k = gq_key_child(x, s->res->k, s->ordinal);
        if (gq_dead(x, s->res->pos, k)) {
            continue;
        }
        struct gq_pos *p = gq_alloc(&x->c->arena, sizeof(*p));
        json_t *path = gq_path_with(s->res->path, json_string(s->key));
        if (p == NULL || path == NULL) {
            json_decref(path);
            rc = LMQ_ENOMEM;
            break;
        }
        p->container = s->res->obj;
        p->key = s->key;
        p->nonnull = s->def->type->kind == GQ_TR_NONNULL;
        p->up = s->res->pos;
        p->k = k;
        if (s->error != NULL) {
            gq_fail(x, s, p, path, s->error);
        } else {
            rc = gq_complete(x, s, s->def->type, s->result, p, path, 0);
        }
        json_decref(path);
    }
out:
    for (size_t i = 0; i < count; i++) {
        json_decref(slots[i].args);
        json_decref(slots[i].result);
        free(slots[i].error);
    }
    free(slots);
    free(idx);
    return rc;
}

/* CoerceVariableValues (spec 6.1.2): NULL with every error appended when a value is bad. */
static json_t *gq_vars(struct gq_ctx *c, const struct gq_node *op, const json_t *given)
{
    LMQ_ASSERT(c != NULL && op != NULL && op->kind == GQ_N_OPERATION);
    json_t *out = json_object();
    bool bad = out == NULL;
    for (const struct gq_node *v = op->vars; out != NULL && v != NULL; v = v->next) {
        json_t *val = given != NULL ? json_object_get(given, v->name) : NULL, *cv = NULL;
        struct gq_cerr e = {0};
        if (val == NULL && v->value == NULL) {
            if (v->type->kind == GQ_TR_NONNULL) {
                char *tn = gq_tref_str(&c->arena, v->type);
                gq_error_at(c, v->line, v->col,
                            "Variable \"$%s\" has invalid value: Expected a value of non-null type "
                            "\"%s\" to be provided.",
                            v->name, tn != NULL ? tn : "?");
                bad = true;
            }
            continue;
        }
        cv = val == NULL ? gq_coerce_literal(v->type, v->value, NULL, &e)
                         : gq_coerce_input(v->type, val, &e);
        for (size_t i = 0; i < e.n; i++) {
            gq_error_at(c, v->line, v->col, "Variable \"$%s\" has invalid %s%s: %s", v->name,
                        val == NULL ? "default value" : "value", e.path[i], e.msg[i]);
        }
        bad = bad || cv == NULL;
        gq_cerr_free(&e);
        if (cv != NULL && json_object_set_new(out, v->name, cv) != 0) {
            c->oom = true;
        }
    }
    if (bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* GetOperation (spec 6.1): the operation to run, or NULL with the request error appended. */
static struct gq_node *gq_operation(struct gq_ctx *c, struct gq_doc *doc,
                                    const char *operation_name)
{
    struct gq_node *op = NULL;
    size_t ops = 0;
    LMQ_ASSERT(c != NULL && doc != NULL);
    for (struct gq_node *d = doc->defs; d != NULL; d = d->next) {
        if (d->kind == GQ_N_OPERATION) {
            ops++;
            if (operation_name == NULL
                    ? op == NULL
                    : (d->name != NULL && strcmp(d->name, operation_name) == 0)) {
                op = d;
            }
        }
    }
    if (operation_name == NULL && ops > 1) {
        gq_error_at(c, 0, 0, "Must provide operation name if query contains multiple operations.");
        return NULL;
    }
    if (op == NULL) {
        gq_error_at(c, 0, 0,
                    operation_name != NULL ? "Unknown operation named \"%s\"."
                                           : "Must provide an operation.",
                    operation_name);
    }
    LMQ_ASSERT(op == NULL || op->kind == GQ_N_OPERATION);
    return op;
}

int gq_exec(struct gq_ctx *c, struct gq_doc *doc, const char *operation_name,
            const json_t *variables, const struct graphql_resolvers *r, json_t **data)
{
    LMQ_ASSERT(c != NULL && doc != NULL && data != NULL);
    *data = NULL;
    struct gq_node *op = gq_operation(c, doc, operation_name);
    if (op == NULL) {
        return 0;
    }
    struct gq_exec x = {.c = c, .r = r};
    x.next_tail = &x.next_head;
    clock_gettime(CLOCK_MONOTONIC, &x.start);
    x.vars = gq_vars(c, op, variables);
    if (x.vars == NULL) {
        return c->oom ? LMQ_ENOMEM : 0;
    }
    x.keep = json_array();
    struct gq_res *root = gq_alloc(&c->arena, sizeof(*root));
    struct gq_node **sels = gq_alloc(&c->arena, sizeof(*sels));
    x.data = json_object();
    int rc = 0;
    if (root == NULL || sels == NULL || x.data == NULL || x.keep == NULL) {
        rc = LMQ_ENOMEM;
        goto out;
    }
    sels[0] = op;
    root->obj = x.data;
    root->value = json_object();
    root->type = c->schema->query;
    root->path = json_array();
    root->sels = sels;
    root->sels_count = 1;
    struct gq_res *level = root;
    /* one level per loop; the response's depth bounds it */
    for (uint32_t depth = 0; level != NULL && rc == 0 && !x.timed_out; depth++) {
        x.next_head = NULL;
        x.next_tail = &x.next_head;
        rc = gq_level(&x, level);
        if (level != root) {
            gq_res_free(level);
        }
        level = x.next_head;
        if (x.timed_out) {
            gq_error_at(c, 0, 0, "The request took longer than the limit of %u ms.",
                        c->limits->max_ms);
        }
        LMQ_ASSERT(depth <= c->limits->max_depth * (GRAPHQL_VALUE_DEPTH_MAX + 1) + 8);
    }
    gq_res_free(level);
    gq_res_free(root);
out:
    gq_pending_flush(&x);
    json_decref(x.vars);
    json_decref(x.keep);
    if (rc != 0 || x.data_null || x.timed_out) {
        json_decref(x.data);
        x.data = rc == 0 ? json_null() : NULL;
    }
    *data = x.data;
    return rc;
}
