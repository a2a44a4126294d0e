/*
 * OverlappingFieldsCanBeMerged (spec 5.3.2), walked as graphql-js 17 walks it so that the same
 * conflicts are reported with the same words and locations: every selection set of the
 * document is checked within itself, against the fragments it spreads and between those
 * fragments; two fields of one response name are compared (names, arguments, types) and their
 * sub-selections compared in turn. Without abstract types, fields are mutually exclusive only
 * when their parent object types differ. The work is bounded (GQ_OVERLAP_WORK_MAX
 * comparisons): a hostile document gets the conflicts found until then.
 */
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_internal.h"

#define GQ_OVERLAP_WORK_MAX 200000
/* Nested selections compared at once. A document within the limits nests far less; a fragment
 * that spreads itself inside a field (a cycle, reported by its own rule) would otherwise recurse
 * until the stack runs out. */
#define GQ_OVERLAP_DEPTH_MAX 64
#define GQ_OVERLAP_FIELDS_MAX 4096
#define GQ_OVERLAP_LOCS_MAX 64

struct gq_ofield {
    const char *key; /* response name */
    struct gq_node *node;
    struct graphql_object *ptype;
};

struct gq_fmap {
    struct gq_ofield *f;
    size_t n, cap;
    size_t *by_key;     /* indexes of f sorted by (response name, index) */
    const char **frags; /* fragment names spread, first occurrence order */
    size_t frags_n, frags_cap;
    bool failed;
};

struct gq_conflict {
    const char *key; /* the response name */
    char *reason;
    uint32_t l1[GQ_OVERLAP_LOCS_MAX][2];
    size_t n1;
    uint32_t l2[GQ_OVERLAP_LOCS_MAX][2];
    size_t n2;
};

struct gq_clist {
    struct gq_conflict *c;
    size_t n, cap;
};

struct gq_pairs { /* fragment pairs compared (name1, name2, mutually exclusive) */
    const char **a, **b;
    bool *mutex;
    size_t n, cap;
};

struct gq_ov {
    struct gq_ctx *c;
    struct gq_doc *doc;
    struct gq_pairs pairs;
    uint64_t work;
    unsigned depth; /* nested selections being compared (gq_ov_pair within gq_ov_pair) */
};

static struct gq_node *gq_ov_frag(struct gq_ov *o, const char *name)
{
    return gq_doc_fragment(o->doc, name);
}

static void gq_fmap_free(struct gq_fmap *m)
{
    free(m->f);
    free(m->by_key);
    free(m->frags);
    memset(m, 0, sizeof(*m));
}

/* Makes room for one more entry in an array of *cap (bounded by GQ_OVERLAP_FIELDS_MAX). */
static bool gq_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return true;
    }
    if (*cap >= GQ_OVERLAP_FIELDS_MAX) {
        return false;
    }
    size_t ncap = *cap == 0 ? 16 : *cap * 2;
    void *p = realloc(*arr, ncap * size);
    if (p == NULL) {
        return false;
    }
    *arr = p;
    *cap = ncap;
    return true;
}

static void gq_fmap_collect(struct gq_ov *o, struct gq_node *set, struct graphql_object *ptype,
                            struct gq_fmap *m, int depth)
{
    LMQ_ASSERT(set != NULL && m != NULL);
    if (depth > GRAPHQL_VALUE_DEPTH_MAX * 2) {
        return;
    }
    for (struct gq_node *s = set->sel; s != NULL; s = s->next) {
        if (s->kind == GQ_N_FIELD) {
            if (gq_grow((void **)&m->f, &m->cap, m->n, sizeof(*m->f))) {
                m->f[m->n].key = s->alias != NULL ? s->alias : s->name;
                m->f[m->n].node = s;
                m->f[m->n].ptype = ptype;
                m->n++;
            }
        } else if (s->kind == GQ_N_SPREAD) {
            bool seen = false;
            for (size_t i = 0; i < m->frags_n; i++) {
                seen = seen || strcmp(m->frags[i], s->name) == 0;
            }
            if (!seen &&
                gq_grow((void **)&m->frags, &m->frags_cap, m->frags_n, sizeof(*m->frags))) {
                m->frags[m->frags_n++] = s->name;
            }
        } else {
            struct graphql_object *t = ptype;
            if (s->type != NULL) {
                t = gq_schema_type(o->c->schema, s->type->name);
            }
            gq_fmap_collect(o, s, t, m, depth + 1);
        }
    }
}

static int gq_by_key_cmp(const void *a, const void *b, void *arg)
{
    const struct gq_ofield *f = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(f[x].key, f[y].key);
    return c != 0 ? c : (x < y ? -1 : x > y ? 1 : 0);
}

/* The fields with response name key: [*lo, *hi) of m->by_key (binary search). */
static void gq_fmap_range(const struct gq_fmap *m, const char *key, size_t *lo, size_t *hi)
{
    size_t a = 0, b = m->n;
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (strcmp(m->f[m->by_key[mid]].key, key) < 0) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    *lo = a;
    while (a < m->n && strcmp(m->f[m->by_key[a]].key, key) == 0) {
        a++;
    }
    *hi = a;
}

/* The fields (by response name, in order) and fragment names of a selection set. */
static int gq_fmap_get(struct gq_ov *o, struct gq_node *set, struct graphql_object *ptype,
                       struct gq_fmap *m)
{
    memset(m, 0, sizeof(*m));
    gq_fmap_collect(o, set, ptype, m, 0);
    o->work += m->n + m->frags_n; /* building a map is work too */
    m->by_key = malloc((m->n + 1) * sizeof(*m->by_key));
    if (m->by_key == NULL) {
        gq_fmap_free(m);
        o->c->oom = true;
        return LMQ_ENOMEM;
    }
    for (size_t i = 0; i < m->n; i++) {
        m->by_key[i] = i;
    }
    qsort_r(m->by_key, m->n, sizeof(*m->by_key), gq_by_key_cmp, m->f);
    return 0;
}

static void gq_clist_free(struct gq_clist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->c[i].reason);
    }
    free(l->c);
    memset(l, 0, sizeof(*l));
}

static struct gq_conflict *gq_clist_add(struct gq_ov *o, struct gq_clist *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap == 0 ? 4 : l->cap * 2;
        struct gq_conflict *c = realloc(l->c, cap * sizeof(*c));
        if (c == NULL) {
            o->c->oom = true;
            return NULL;
        }
        l->c = c;
        l->cap = cap;
    }
    struct gq_conflict *c = &l->c[l->n++];
    memset(c, 0, sizeof(*c));
    return c;
}

static bool gq_ov_value_equal(const struct gq_node *a, const struct gq_node *b, int depth)
{
    LMQ_ASSERT(a != NULL && b != NULL);
    if (a->kind != b->kind || depth > GRAPHQL_VALUE_DEPTH_MAX) {
        return false;
    }
    switch (a->kind) {
    case GQ_N_VAR:
        return strcmp(a->name, b->name) == 0;
    case GQ_N_NULL:
        return true;
    case GQ_N_BOOL:
        return a->op == b->op;
    case GQ_N_LIST: {
        const struct gq_node *x = a->args, *y = b->args;
        for (; x != NULL && y != NULL; x = x->next, y = y->next) {
            if (!gq_ov_value_equal(x, y, depth + 1)) {
                return false;
            }
        }
        return x == NULL && y == NULL;
    }
    case GQ_N_OBJECT: {
        size_t na = 0, nb = 0;
        for (const struct gq_node *x = a->args; x != NULL; x = x->next) {
            na++;
        }
        for (const struct gq_node *y = b->args; y != NULL; y = y->next) {
            nb++;
        }
        if (na != nb) {
            return false;
        }
        for (const struct gq_node *x = a->args; x != NULL; x = x->next) {
            const struct gq_node *y = b->args;
            while (y != NULL && strcmp(y->name, x->name) != 0) {
                y = y->next;
            }
            if (y == NULL || !gq_ov_value_equal(x->value, y->value, depth + 1)) {
                return false;
            }
        }
        return true;
    }
    default:
        return strcmp(a->str, b->str) == 0;
    }
}

static bool gq_ov_same_args(const struct gq_node *a, const struct gq_node *b)
{
    size_t na = 0, nb = 0;
    for (const struct gq_node *x = a->args; x != NULL; x = x->next) {
        na++;
    }
    for (const struct gq_node *y = b->args; y != NULL; y = y->next) {
        nb++;
    }
    if (na != nb) {
        return false;
    }
    for (const struct gq_node *x = a->args; x != NULL; x = x->next) {
        const struct gq_node *y = b->args;
        while (y != NULL && strcmp(y->name, x->name) != 0) {
            y = y->next;
        }
        if (y == NULL || !gq_ov_value_equal(x->value, y->value, 0)) {
            return false;
        }
    }
    return true;
}

static bool gq_ov_types_conflict(const struct gq_tref *a, const struct gq_tref *b)
{
    if (a->kind == GQ_TR_LIST || b->kind == GQ_TR_LIST) {
        return a->kind != b->kind || gq_ov_types_conflict(a->of, b->of);
    }
    if (a->kind == GQ_TR_NONNULL || b->kind == GQ_TR_NONNULL) {
        return a->kind != b->kind || gq_ov_types_conflict(a->of, b->of);
    }
    if (gq_is_leaf(a->t) || gq_is_leaf(b->t)) {
        return a->t != b->t;
    }
    return false;
}

static void gq_ov_between(struct gq_ov *o, struct gq_clist *out, bool mutex,
                          const struct gq_fmap *m1, const struct gq_fmap *m2);
static void gq_ov_fields_fragment(struct gq_ov *o, struct gq_clist *out, bool mutex,
                                  const struct gq_fmap *m, const char *frag, const char **visited,
                                  size_t *visited_n);
static void gq_ov_fragments(struct gq_ov *o, struct gq_clist *out, bool mutex, const char *n1,
                            const char *n2, int depth);

static void gq_ov_loc(uint32_t (*l)[2], size_t *n, const struct gq_node *node)
{
    LMQ_ASSERT(l != NULL && n != NULL && node != NULL);
    if (*n < GQ_OVERLAP_LOCS_MAX) {
        l[*n][0] = node->line;
        l[*n][1] = node->col;
        (*n)++;
    }
}

static void gq_ov_reason(struct gq_ov *o, struct gq_clist *out, const struct gq_ofield *a,
                         const struct gq_ofield *b, char *reason)
{
    struct gq_conflict *c = reason != NULL ? gq_clist_add(o, out) : NULL;
    if (c == NULL) {
        free(reason);
        return;
    }
    c->key = a->key;
    c->reason = reason;
    gq_ov_loc(c->l1, &c->n1, a->node);
    gq_ov_loc(c->l2, &c->n2, b->node);
}

static struct graphql_field *gq_ov_def(const struct gq_ofield *f)
{
    return f->node->def;
}

/* subfieldConflicts: the pair's conflict made of its sub-selections' conflicts. */
static void gq_ov_subfields(struct gq_ov *o, struct gq_clist *out, const struct gq_ofield *a,
                            const struct gq_ofield *b, const struct gq_clist *sub)
{
    struct gq_out r = {0};
    LMQ_ASSERT(sub->n > 0 && a != NULL && b != NULL);
    for (size_t i = 0; i < sub->n; i++) {
        gq_outf(&r, "%ssubfields \"%s\" conflict because %s", i > 0 ? " and " : "", sub->c[i].key,
                sub->c[i].reason != NULL ? sub->c[i].reason : "");
    }
    struct gq_conflict *c = gq_clist_add(o, out);
    if (c == NULL) {
        gq_out_free(&r);
        return;
    }
    c->key = a->key;
    c->reason = gq_out_take(&r);
    gq_ov_loc(c->l1, &c->n1, a->node);
    gq_ov_loc(c->l2, &c->n2, b->node);
    for (size_t i = 0; i < sub->n; i++) {
        for (size_t k = 0; k < sub->c[i].n1 && c->n1 < GQ_OVERLAP_LOCS_MAX; k++) {
            memcpy(c->l1[c->n1++], sub->c[i].l1[k], sizeof(c->l1[0]));
        }
        for (size_t k = 0; k < sub->c[i].n2 && c->n2 < GQ_OVERLAP_LOCS_MAX; k++) {
            memcpy(c->l2[c->n2++], sub->c[i].l2[k], sizeof(c->l2[0]));
        }
    }
    LMQ_ASSERT(c->n1 >= 1 && c->n2 >= 1);
}

/* findConflict: appends at most one conflict for the pair. */
static void gq_ov_pair(struct gq_ov *o, struct gq_clist *out, bool parent_mutex,
                       const struct gq_ofield *a, const struct gq_ofield *b)
{
    LMQ_ASSERT(a != NULL && b != NULL && strcmp(a->key, b->key) == 0);
    char buf[512];
    if (++o->work > GQ_OVERLAP_WORK_MAX) {
        return;
    }
    bool mutex = parent_mutex || (a->ptype != b->ptype && a->ptype != NULL && b->ptype != NULL &&
                                  a->ptype->kind == GQ_K_OBJECT && b->ptype->kind == GQ_K_OBJECT);
    if (!mutex) {
        if (strcmp(a->node->name, b->node->name) != 0) {
            snprintf(buf, sizeof(buf), "\"%s\" and \"%s\" are different fields", a->node->name,
                     b->node->name);
            gq_ov_reason(o, out, a, b, strdup(buf));
            return;
        }
        if (!gq_ov_same_args(a->node, b->node)) {
            gq_ov_reason(o, out, a, b, strdup("they have differing arguments"));
            return;
        }
    }
    const struct graphql_field *d1 = gq_ov_def(a), *d2 = gq_ov_def(b);
    if (d1 != NULL && d2 != NULL && gq_ov_types_conflict(d1->type, d2->type)) {
        struct gq_arena tmp = {0};
        char *t1 = gq_tref_str(&tmp, d1->type), *t2 = gq_tref_str(&tmp, d2->type);
        snprintf(buf, sizeof(buf), "they return conflicting types \"%s\" and \"%s\"",
                 t1 != NULL ? t1 : "?", t2 != NULL ? t2 : "?");
        gq_arena_free(&tmp);
        gq_ov_reason(o, out, a, b, strdup(buf));
        return;
    }
    if (!a->node->has_sel || !b->node->has_sel) {
        return;
    }
    struct gq_fmap m1, m2;
    struct gq_clist sub = {0};
    if (gq_fmap_get(o, a->node, d1 != NULL ? gq_tref_named(d1->type) : NULL, &m1) != 0) {
        return;
    }
    if (gq_fmap_get(o, b->node, d2 != NULL ? gq_tref_named(d2->type) : NULL, &m2) != 0) {
        gq_fmap_free(&m1);
        return;
    }
    if (o->depth >= GQ_OVERLAP_DEPTH_MAX) {
        gq_fmap_free(&m1);
        gq_fmap_free(&m2);
        return;
    }
    o->depth++;
    gq_ov_between(o, &sub, mutex, &m1, &m2);
    for (size_t i = 0; i < m2.frags_n; i++) {
        const char *visited[GRAPHQL_VALUE_DEPTH_MAX * 4] = {0};
        size_t vn = 0;
        gq_ov_fields_fragment(o, &sub, mutex, &m1, m2.frags[i], visited, &vn);
    }
    for (size_t i = 0; i < m1.frags_n; i++) {
        const char *visited[GRAPHQL_VALUE_DEPTH_MAX * 4] = {0};
        size_t vn = 0;
        gq_ov_fields_fragment(o, &sub, mutex, &m2, m1.frags[i], visited, &vn);
    }
    for (size_t i = 0; i < m1.frags_n; i++) {
        for (size_t j = 0; j < m2.frags_n; j++) {
            gq_ov_fragments(o, &sub, mutex, m1.frags[i], m2.frags[j], 0);
        }
    }
    o->depth--;
    if (sub.n > 0) {
        gq_ov_subfields(o, out, a, b, &sub);
    }
    gq_clist_free(&sub);
    gq_fmap_free(&m1);
    gq_fmap_free(&m2);
}

/* Whether f[i] is the first field of its response name (graphql-js iterates names in order
 * of first occurrence). */
static bool gq_fmap_first(const struct gq_fmap *m, size_t i, size_t *lo, size_t *hi)
{
    gq_fmap_range(m, m->f[i].key, lo, hi);
    return m->by_key[*lo] == i;
}

/* collectConflictsBetween: every pair of same-named fields across the two maps. */
static void gq_ov_between(struct gq_ov *o, struct gq_clist *out, bool mutex,
                          const struct gq_fmap *m1, const struct gq_fmap *m2)
{
    for (size_t i = 0; i < m1->n && o->work <= GQ_OVERLAP_WORK_MAX; i++) {
        size_t lo1, hi1, lo2, hi2;
        if (!gq_fmap_first(m1, i, &lo1, &hi1)) {
            continue;
        }
        gq_fmap_range(m2, m1->f[i].key, &lo2, &hi2);
        for (size_t a = lo1; a < hi1; a++) {
            for (size_t b = lo2; b < hi2; b++) {
                gq_ov_pair(o, out, mutex, &m1->f[m1->by_key[a]], &m2->f[m2->by_key[b]]);
            }
        }
    }
}

/* collectConflictsWithin: pairs of same-named fields of one map. */
static void gq_ov_within(struct gq_ov *o, struct gq_clist *out, const struct gq_fmap *m)
{
    for (size_t i = 0; i < m->n && o->work <= GQ_OVERLAP_WORK_MAX; i++) {
        size_t lo, hi;
        if (!gq_fmap_first(m, i, &lo, &hi)) {
            continue;
        }
        for (size_t a = lo; a < hi; a++) {
            for (size_t b = a + 1; b < hi; b++) {
                gq_ov_pair(o, out, false, &m->f[m->by_key[a]], &m->f[m->by_key[b]]);
            }
        }
    }
}

static void gq_ov_fields_fragment(struct gq_ov *o, struct gq_clist *out, bool mutex,
                                  const struct gq_fmap *m, const char *frag, const char **visited,
                                  size_t *visited_n)
{
    for (size_t i = 0; i < *visited_n; i++) {
        if (strcmp(visited[i], frag) == 0) {
            return;
        }
    }
    if (*visited_n >= GRAPHQL_VALUE_DEPTH_MAX * 4 || o->work > GQ_OVERLAP_WORK_MAX) {
        return;
    }
    visited[(*visited_n)++] = frag;
    struct gq_node *f = gq_ov_frag(o, frag);
    struct gq_fmap m2;
    if (f == NULL || gq_fmap_get(o, f, gq_schema_type(o->c->schema, f->type->name), &m2) != 0) {
        return;
    }
    gq_ov_between(o, out, mutex, m, &m2);
    for (size_t i = 0; i < m2.frags_n; i++) {
        gq_ov_fields_fragment(o, out, mutex, m, m2.frags[i], visited, visited_n);
    }
    gq_fmap_free(&m2);
}

static bool gq_ov_pair_seen(struct gq_ov *o, const char *a, const char *b, bool mutex)
{
    LMQ_ASSERT(a != NULL && b != NULL);
    struct gq_pairs *p = &o->pairs;
    for (size_t i = 0; i < p->n; i++) {
        bool same = (strcmp(p->a[i], a) == 0 && strcmp(p->b[i], b) == 0) ||
                    (strcmp(p->a[i], b) == 0 && strcmp(p->b[i], a) == 0);
        /* a pair compared as not exclusive covers the exclusive comparison too */
        if (same && (!p->mutex[i] || mutex)) {
            return true;
        }
    }
    if (p->n == p->cap) {
        size_t cap = p->cap == 0 ? 16 : p->cap * 2;
        const char **na = realloc(p->a, cap * sizeof(*na));
        if (na != NULL) {
            p->a = na;
        }
        const char **nb = realloc(p->b, cap * sizeof(*nb));
        if (nb != NULL) {
            p->b = nb;
        }
        bool *nm = realloc(p->mutex, cap * sizeof(*nm));
        if (nm != NULL) {
            p->mutex = nm;
        }
        if (na == NULL || nb == NULL || nm == NULL) {
            o->c->oom = true;
            return true;
        }
        p->cap = cap;
    }
    p->a[p->n] = a;
    p->b[p->n] = b;
    p->mutex[p->n] = mutex;
    p->n++;
    return false;
}

static void gq_ov_fragments(struct gq_ov *o, struct gq_clist *out, bool mutex, const char *n1,
                            const char *n2, int depth)
{
    LMQ_ASSERT(n1 != NULL && n2 != NULL);
    if (strcmp(n1, n2) == 0 || depth > GRAPHQL_VALUE_DEPTH_MAX * 4 ||
        o->work > GQ_OVERLAP_WORK_MAX || gq_ov_pair_seen(o, n1, n2, mutex)) {
        return;
    }
    struct gq_node *f1 = gq_ov_frag(o, n1), *f2 = gq_ov_frag(o, n2);
    struct gq_fmap m1, m2;
    if (f1 == NULL || f2 == NULL) {
        return;
    }
    if (gq_fmap_get(o, f1, gq_schema_type(o->c->schema, f1->type->name), &m1) != 0) {
        return;
    }
    if (gq_fmap_get(o, f2, gq_schema_type(o->c->schema, f2->type->name), &m2) != 0) {
        gq_fmap_free(&m1);
        return;
    }
    gq_ov_between(o, out, mutex, &m1, &m2);
    for (size_t i = 0; i < m2.frags_n; i++) {
        gq_ov_fragments(o, out, mutex, n1, m2.frags[i], depth + 1);
    }
    for (size_t i = 0; i < m1.frags_n; i++) {
        gq_ov_fragments(o, out, mutex, m1.frags[i], n2, depth + 1);
    }
    gq_fmap_free(&m1);
    gq_fmap_free(&m2);
}

static void gq_ov_report(struct gq_ov *o, struct gq_clist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct gq_conflict *c = &l->c[i];
        uint32_t pos[GQ_OVERLAP_LOCS_MAX * 2][2];
        size_t n = 0;
        for (size_t k = 0; k < c->n1; k++) {
            memcpy(pos[n++], c->l1[k], sizeof(pos[0]));
        }
        for (size_t k = 0; k < c->n2; k++) {
            memcpy(pos[n++], c->l2[k], sizeof(pos[0]));
        }
        gq_error_pos(o->c, (const uint32_t(*)[2])pos, n,
                     "Fields \"%s\" conflict because %s. Use different aliases on the fields to "
                     "fetch both if this was intentional.",
                     c->key, c->reason != NULL ? c->reason : "");
    }
}

/* findConflictsWithinSelectionSet for one selection set. */
static void gq_ov_set(struct gq_ov *o, struct gq_node *set, struct graphql_object *ptype)
{
    struct gq_fmap m;
    struct gq_clist out = {0};
    if (gq_fmap_get(o, set, ptype, &m) != 0) {
        return;
    }
    gq_ov_within(o, &out, &m);
    for (size_t i = 0; i < m.frags_n; i++) {
        const char *visited[GRAPHQL_VALUE_DEPTH_MAX * 4] = {0};
        size_t vn = 0;
        gq_ov_fields_fragment(o, &out, false, &m, m.frags[i], visited, &vn);
        for (size_t j = i + 1; j < m.frags_n; j++) {
            gq_ov_fragments(o, &out, false, m.frags[i], m.frags[j], 0);
        }
    }
    gq_ov_report(o, &out);
    gq_clist_free(&out);
    gq_fmap_free(&m);
}

/* Every selection set in document order (the visitor's SelectionSet enter). */
static void gq_ov_walk(struct gq_ov *o, struct gq_node *n, struct graphql_object *ptype, int depth)
{
    if (!n->has_sel || depth > (int)o->c->limits->max_depth + GRAPHQL_VALUE_DEPTH_MAX) {
        return;
    }
    gq_ov_set(o, n, ptype);
    for (struct gq_node *s = n->sel; s != NULL; s = s->next) {
        if (s->kind == GQ_N_FIELD) {
            gq_ov_walk(o, s, s->def != NULL ? gq_tref_named(s->def->type) : NULL, depth + 1);
        } else if (s->kind == GQ_N_INLINE) {
            gq_ov_walk(o, s, s->type != NULL ? gq_schema_type(o->c->schema, s->type->name) : ptype,
                       depth + 1);
        }
    }
}

void gq_validate_overlaps(struct gq_ctx *c, struct gq_doc *doc)
{
    struct gq_ov o = {.c = c, .doc = doc};
    LMQ_ASSERT(c != NULL && doc != NULL);
    for (struct gq_node *d = doc->defs; d != NULL; d = d->next) {
        if (d->kind == GQ_N_OPERATION) {
            gq_ov_walk(&o, d, d->op == GQ_OP_QUERY ? c->schema->query : NULL, 0);
        } else if (d->kind == GQ_N_FRAGMENT) {
            gq_ov_walk(&o, d, gq_schema_type(c->schema, d->type->name), 0);
        }
    }
    free(o.pairs.a);
    free(o.pairs.b);
    free(o.pairs.mutex);
}
