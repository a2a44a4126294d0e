/*
 * libFuzzer target for the subscription tree: the input is a program of
 * add / remove / match operations over a small alphabet. A brute-force model
 * (a list of subscriptions and a plain matcher) checks every result: existed,
 * LMQ_ENOTFOUND, sub_tree_count, the number of callbacks per match, and that
 * removing everything prunes the tree back to its root.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/lmq.h"
#include "mqtt/sub_tree.h"

#define FZ_NAME_MAX 24
#define FZ_SUBS_MAX 64

struct fz_sub {
    char filter[FZ_NAME_MAX + 1];
    uint8_t group; /* 0 = none */
    uint8_t owner;
};

struct fz_state {
    const uint8_t *in;
    size_t len;
    size_t pos;
    struct fz_sub subs[FZ_SUBS_MAX];
    size_t count;
};

static char fz_owners[4];
static const char *const fz_groups[3] = {NULL, "g1", "g2"};

static uint8_t fz_byte(struct fz_state *s)
{
    return s->pos < s->len ? s->in[s->pos++] : 0;
}

/* Reads a short name over an alphabet rich in separators and wildcards. */
static size_t fz_name(struct fz_state *s, char *out, bool filter)
{
    static const char alpha[] = "ab/+#$";
    size_t n = 1 + fz_byte(s) % FZ_NAME_MAX;
    for (size_t i = 0; i < n; i++) {
        out[i] = alpha[fz_byte(s) % (filter ? 6 : 3 + (i == 0))];
        out[i] = !filter && out[i] == '+' ? '$' : out[i];
    }
    out[n] = '\0';
    return n;
}

/* '+' and '#' only as whole levels, '#' only last. */
static bool fz_filter_valid(const char *f, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        bool alone = (i == 0 || f[i - 1] == '/') && (i + 1 == len || f[i + 1] == '/');
        if ((f[i] == '+' || f[i] == '#') && !alone) {
            return false;
        }
        if (f[i] == '#' && i + 1 != len) {
            return false;
        }
    }
    return true;
}

static bool fz_matches(const char *f, const char *t)
{
    size_t fl = strlen(f), tl = strlen(t), fp = 0, tp = 0;
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) {
        return false;
    }
    for (size_t i = 0; i <= fl; i++) {
        const char *fs = memchr(f + fp, '/', fl - fp);
        size_t fe = fs != NULL ? (size_t)(fs - f) : fl;
        if (fe - fp == 1 && f[fp] == '#') {
            return true;
        }
        if (tp > tl) {
            return false;
        }
        const char *ts = memchr(t + tp, '/', tl - tp);
        size_t te = ts != NULL ? (size_t)(ts - t) : tl;
        bool plus = fe - fp == 1 && f[fp] == '+';
        if (!plus && (fe - fp != te - tp || memcmp(f + fp, t + tp, fe - fp) != 0)) {
            return false;
        }
        fp = fe + 1;
        tp = te + 1;
        if (fp > fl) {
            return tp > tl;
        }
    }
    return false;
}

static size_t fz_find(const struct fz_state *s, const char *f, uint8_t g, uint8_t o)
{
    for (size_t i = 0; i < s->count; i++) {
        const struct fz_sub *x = &s->subs[i];
        if (x->group == g && x->owner == o && strcmp(x->filter, f) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

static void fz_count_cb(void *ctx, const struct sub_tree_entry *e)
{
    LMQ_ASSERT(e->owner >= (void *)&fz_owners[0] && e->owner <= (void *)&fz_owners[3]);
    (*(size_t *)ctx)++;
}

/* Expected callbacks: one per plain subscription, one per (filter, group) unit. */
static size_t fz_expected(const struct fz_state *s, const char *topic)
{
    size_t want = 0;
    for (size_t i = 0; i < s->count; i++) {
        const struct fz_sub *x = &s->subs[i];
        bool first_of_unit = true;
        for (size_t j = 0; j < i && x->group != 0; j++) {
            first_of_unit = first_of_unit && !(s->subs[j].group == x->group &&
                                               strcmp(s->subs[j].filter, x->filter) == 0);
        }
        want += first_of_unit && fz_matches(x->filter, topic);
    }
    return want;
}

static void fz_step(struct sub_tree *tree, struct fz_state *s)
{
    uint8_t op = fz_byte(s) % 3, g = fz_byte(s) % 3, o = fz_byte(s) % 4;
    char name[FZ_NAME_MAX + 1];
    size_t len = fz_name(s, name, op != 2);
    const char *group = fz_groups[g];
    size_t group_len = group != NULL ? strlen(group) : 0;
    if (op == 2) {
        size_t hits = 0;
        sub_tree_match(tree, (const uint8_t *)name, len, fz_count_cb, NULL, &hits);
        LMQ_ASSERT(hits == fz_expected(s, name));
        return;
    }
    if (!fz_filter_valid(name, len)) {
        return;
    }
    size_t at = fz_find(s, name, g, o);
    if (op == 0 && (at != SIZE_MAX || s->count < FZ_SUBS_MAX)) {
        bool existed = false;
        int rc = sub_tree_add(tree, (const uint8_t *)name, len, (const uint8_t *)group, group_len,
                              &fz_owners[o], 0, 0, &existed);
        LMQ_ASSERT(rc == 0 && existed == (at != SIZE_MAX));
        if (at == SIZE_MAX) {
            memcpy(s->subs[s->count].filter, name, len + 1);
            s->subs[s->count].group = g;
            s->subs[s->count++].owner = o;
        }
    } else if (op == 1) {
        int rc = sub_tree_remove(tree, (const uint8_t *)name, len, (const uint8_t *)group,
                                 group_len, &fz_owners[o]);
        LMQ_ASSERT(rc == (at != SIZE_MAX ? 0 : LMQ_ENOTFOUND));
        if (at != SIZE_MAX) {
            s->subs[at] = s->subs[--s->count];
        }
    }
    LMQ_ASSERT(sub_tree_count(tree) == s->count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fz_state s;
    memset(&s, 0, sizeof s);
    s.in = data;
    s.len = size;
    struct sub_tree *tree = NULL;
    if (sub_tree_create(&tree) != 0) {
        return 0;
    }
    for (size_t steps = 0; s.pos < s.len && steps < size; steps++) {
        fz_step(tree, &s);
    }
    for (size_t i = s.count; i > 0; i--) { /* remove everything: the tree prunes to its root */
        const struct fz_sub *x = &s.subs[i - 1];
        const char *group = fz_groups[x->group];
        int rc = sub_tree_remove(tree, (const uint8_t *)x->filter, strlen(x->filter),
                                 (const uint8_t *)group, group != NULL ? strlen(group) : 0,
                                 &fz_owners[x->owner]);
        LMQ_ASSERT(rc == 0);
    }
    LMQ_ASSERT(sub_tree_count(tree) == 0 && sub_tree_node_count(tree) == 1);
    sub_tree_destroy(tree);
    return 0;
}
