/* Unit tests for the subscription tree (src/mqtt/sub_tree.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/lmq.h"
#include "mqtt/sub_tree.h"

/* ---- helpers ---- */

#define HITS_MAX 4096
#define GROUP_NAME_MAX 16

struct hit {
    void *owner;
    uint8_t options;
    uint32_t sub_id;
    bool shared;
    char group[GROUP_NAME_MAX];
};

struct collector {
    struct hit hits[HITS_MAX];
    size_t count;
    void *ineligible[4]; /* owners eligible() rejects */
    size_t ineligible_count;
    bool none_eligible;
};

static void collect_cb(void *ctx, const struct sub_tree_entry *e)
{
    struct collector *c = ctx;
    assert_true(c->count < HITS_MAX);
    struct hit *h = &c->hits[c->count++];
    memset(h, 0, sizeof *h);
    h->owner = e->owner;
    h->options = e->options;
    h->sub_id = e->sub_id;
    h->shared = e->share_group != NULL;
    if (h->shared) {
        assert_true(e->share_group_len > 0 && e->share_group_len < GROUP_NAME_MAX);
        memcpy(h->group, e->share_group, e->share_group_len);
    }
}

static bool eligible_cb(void *ctx, void *owner)
{
    const struct collector *c = ctx;
    if (c->none_eligible) {
        return false;
    }
    for (size_t i = 0; i < c->ineligible_count; i++) {
        if (c->ineligible[i] == owner) {
            return false;
        }
    }
    return true;
}

static void count_cb(void *ctx, const struct sub_tree_entry *e)
{
    (void)e;
    (*(size_t *)ctx)++;
}

static struct collector g_col; /* large: kept out of the stack */
static char g_owners[64];      /* owner identities: &g_owners[i] */

static void *owner(size_t i)
{
    assert_true(i < sizeof g_owners);
    return &g_owners[i];
}

static int add(struct sub_tree *t, const char *filter, const char *group, void *who,
               uint8_t options, uint32_t sub_id, bool *existed)
{
    return sub_tree_add(t, (const uint8_t *)filter, strlen(filter), (const uint8_t *)group,
                        group != NULL ? strlen(group) : 0, who, options, sub_id, existed);
}

static void add_new(struct sub_tree *t, const char *filter, const char *group, void *who)
{
    bool existed = true;
    assert_int_equal(add(t, filter, group, who, 1, 0, &existed), 0);
    assert_false(existed);
}

static int rm(struct sub_tree *t, const char *filter, const char *group, void *who)
{
    return sub_tree_remove(t, (const uint8_t *)filter, strlen(filter), (const uint8_t *)group,
                           group != NULL ? strlen(group) : 0, who);
}

/* Matches topic, collecting into g_col (reset first); returns the number of hits. */
static size_t collect(struct sub_tree *t, const char *topic, sub_tree_eligible_cb eligible)
{
    g_col.count = 0;
    sub_tree_match(t, (const uint8_t *)topic, strlen(topic), collect_cb, eligible, &g_col);
    return g_col.count;
}

static size_t match_count(struct sub_tree *t, const char *topic)
{
    size_t n = 0;
    sub_tree_match(t, (const uint8_t *)topic, strlen(topic), count_cb, NULL, &n);
    return n;
}

static struct sub_tree *new_tree(void)
{
    struct sub_tree *t = NULL;
    assert_int_equal(sub_tree_create(&t), 0);
    assert_non_null(t);
    assert_int_equal(sub_tree_node_count(t), 1);
    return t;
}

/*
 * Brute-force reference matcher for the property test, written independently
 * of the tree. It stands in for mqtt_topic_matches() (mqtt_topic.h), which at
 * the time of writing asserts on all-'/' filters such as "/" (its round bound
 * is one short); switch ref_matches to it once that is fixed.
 */
static bool ref_matches(const char *f, const char *t)
{
    size_t fl = strlen(f), tl = strlen(t), fp = 0, tp = 0;
    if (tl > 0 && t[0] == '$' && (f[0] == '+' || f[0] == '#')) {
        return false;
    }
    for (size_t i = 0; i <= fl; i++) { /* one level per round, at most fl + 1 levels */
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
    fail_msg("filter %s has more levels than bytes", f);
    return false;
}

/* ---- matching semantics ---- */

struct match_case {
    const char *filter;
    const char *topic;
    bool matches;
};

static const struct match_case k_cases[] = {
    {"#", "a", true},         {"#", "a/b/c", true},       {"#", "/", true},
    {"#", "a//", true},       {"#", "$SYS/x", false},     {"#", "$", false},
    {"+", "a", true},         {"+", "/", false},          {"+", "$SYS", false},
    {"+/+", "/", true},       {"+/+", "//", false},       {"+/x", "$SYS/x", false},
    {"+/#", "a", true},       {"+/#", "$x", false},       {"$SYS/#", "$SYS/x", true},
    {"$SYS/#", "$SYS", true}, {"$SYS/+", "$SYS/x", true}, {"$SYS/x", "$SYS/x", true},
    {"a/#", "a", true},       {"a/#", "a/b", true},       {"a/#", "a/b/c", true},
    {"a/#", "a/", true},      {"a/#", "ab", false},       {"a/#", "b/a", false},
    {"a/+", "a/b", true},     {"a/+", "a", false},        {"a/+", "a/", true},
    {"a/+", "a/b/c", false},  {"a//b", "a//b", true},     {"a//b", "a/b", false},
    {"a/+/b", "a//b", true},  {"/a", "/a", true},         {"/a", "a", false},
    {"+/a", "/a", true},      {"/#", "/a", true},         {"/#", "a", false},
    {"a/b", "a/b", true},     {"a/b", "a/b/", false},     {"a/b/", "a/b/", true},
    {"a/b/+", "a/b/", true},  {"+/+/+", "a/b", false},    {"a/b/#", "a/b", true},
    {"a/b/#", "a", false},    {"/", "/", true},           {"//", "/", false},
    {"a/b", "a/c", false},    {"A", "a", false},          {"a/+/c/#", "a/x/c", true},
};

static void test_match_table_wildcards_dollar_and_empty_levels(void **state)
{
    (void)state;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(k_cases); i++) {
        const struct match_case *c = &k_cases[i];
        struct sub_tree *t = new_tree();
        add_new(t, c->filter, NULL, owner(0));
        size_t hits = match_count(t, c->topic);
        if (hits != (c->matches ? 1u : 0u)) {
            fail_msg("filter '%s' topic '%s': %zu hits, want %d", c->filter, c->topic, hits,
                     c->matches);
        }
        /* The reference matcher used by the property test agrees with the table. */
        assert_int_equal(ref_matches(c->filter, c->topic), c->matches);
        sub_tree_destroy(t);
    }
}

static void test_one_owner_two_matching_filters_gets_two_callbacks(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    bool existed = false;
    assert_int_equal(add(t, "a/+", NULL, owner(0), 0, 1, &existed), 0);
    assert_int_equal(add(t, "a/#", NULL, owner(0), 1, 2, &existed), 0);
    assert_int_equal(add(t, "a/b", NULL, owner(1), 2, 3, &existed), 0);
    assert_int_equal(sub_tree_count(t), 3);
    assert_int_equal(collect(t, "a/b", NULL), 3);
    uint32_t ids = 0;
    for (size_t i = 0; i < g_col.count; i++) {
        ids |= 1u << g_col.hits[i].sub_id;
        assert_false(g_col.hits[i].shared);
        assert_int_equal(g_col.hits[i].options, g_col.hits[i].sub_id - 1);
    }
    assert_int_equal(ids, 0xE);                 /* sub ids 1, 2, 3 each once */
    assert_int_equal(collect(t, "a", NULL), 1); /* only a/# */
    assert_int_equal(g_col.hits[0].sub_id, 2);
    sub_tree_destroy(t);
}

/* ---- add / remove ---- */

static void test_add_same_subscription_replaces_options_and_sub_id(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    bool existed = true;
    assert_int_equal(add(t, "a/b", NULL, owner(0), 1, 7, &existed), 0);
    assert_false(existed);
    assert_int_equal(add(t, "a/b", NULL, owner(0), 2, 9, &existed), 0);
    assert_true(existed);
    assert_int_equal(sub_tree_count(t), 1);
    assert_int_equal(collect(t, "a/b", NULL), 1);
    assert_int_equal(g_col.hits[0].options, 2);
    assert_int_equal(g_col.hits[0].sub_id, 9);

    /* Same owner and filter in a share group is a different subscription... */
    assert_int_equal(add(t, "a/b", "g", owner(0), 1, 11, &existed), 0);
    assert_false(existed);
    /* ...which is replaced in its turn. */
    assert_int_equal(add(t, "a/b", "g", owner(0), 0, 12, &existed), 0);
    assert_true(existed);
    assert_int_equal(sub_tree_count(t), 2);
    assert_int_equal(collect(t, "a/b", NULL), 2);
    for (size_t i = 0; i < 2; i++) {
        const struct hit *h = &g_col.hits[i];
        assert_int_equal(h->sub_id, h->shared ? 12 : 9);
        assert_int_equal(h->options, h->shared ? 0 : 2);
    }
    sub_tree_destroy(t);
}

static void test_remove_unknown_returns_notfound_and_changes_nothing(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    assert_int_equal(rm(t, "a/b", NULL, owner(0)), LMQ_ENOTFOUND);
    add_new(t, "a/b", NULL, owner(0));
    add_new(t, "a/b", "g", owner(1));
    size_t nodes = sub_tree_node_count(t);
    assert_int_equal(rm(t, "a/b", NULL, owner(1)), LMQ_ENOTFOUND);   /* other owner */
    assert_int_equal(rm(t, "a/b", "g", owner(0)), LMQ_ENOTFOUND);    /* not in group */
    assert_int_equal(rm(t, "a/b", "h", owner(1)), LMQ_ENOTFOUND);    /* other group */
    assert_int_equal(rm(t, "a/b", NULL, owner(1)), LMQ_ENOTFOUND);   /* shared != plain */
    assert_int_equal(rm(t, "a", NULL, owner(0)), LMQ_ENOTFOUND);     /* inner node */
    assert_int_equal(rm(t, "a/#", NULL, owner(0)), LMQ_ENOTFOUND);   /* '#' set */
    assert_int_equal(rm(t, "a/+", NULL, owner(0)), LMQ_ENOTFOUND);   /* '+' child */
    assert_int_equal(rm(t, "a/b/c", NULL, owner(0)), LMQ_ENOTFOUND); /* deeper */
    assert_int_equal(sub_tree_count(t), 2);
    assert_int_equal(sub_tree_node_count(t), nodes);
    assert_int_equal(rm(t, "a/b", NULL, owner(0)), 0);
    assert_int_equal(rm(t, "a/b", NULL, owner(0)), LMQ_ENOTFOUND); /* twice */
    assert_int_equal(rm(t, "a/b", "g", owner(1)), 0);
    assert_int_equal(sub_tree_count(t), 0);
    assert_int_equal(sub_tree_node_count(t), 1);
    sub_tree_destroy(t);
}

static void test_remove_prunes_empty_nodes_up_to_root(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    add_new(t, "a/b/c", NULL, owner(0));
    add_new(t, "a/b/d", NULL, owner(0));
    add_new(t, "a/+/#", NULL, owner(1));
    add_new(t, "#", NULL, owner(2));
    assert_int_equal(sub_tree_node_count(t), 6); /* root a b c d + */
    assert_int_equal(sub_tree_count(t), 4);
    assert_int_equal(rm(t, "a/b/c", NULL, owner(0)), 0);
    assert_int_equal(sub_tree_node_count(t), 5);
    assert_int_equal(rm(t, "a/+/#", NULL, owner(1)), 0);
    assert_int_equal(sub_tree_node_count(t), 4); /* root a b d */
    assert_int_equal(rm(t, "a/b/d", NULL, owner(0)), 0);
    assert_int_equal(sub_tree_node_count(t), 1); /* "#" lives in the root's multi set */
    assert_int_equal(match_count(t, "x"), 1);
    assert_int_equal(rm(t, "#", NULL, owner(2)), 0);
    assert_int_equal(sub_tree_node_count(t), 1);
    assert_int_equal(sub_tree_count(t), 0);
    assert_int_equal(match_count(t, "a/b/c"), 0);
    sub_tree_destroy(t);
}

static void test_million_distinct_filters_added_and_removed_leave_only_root(void **state)
{
    (void)state;
    enum { FILTERS = 1000000, FAN = 1000 };
    struct sub_tree *t = new_tree();
    char f[32];
    for (unsigned i = 0; i < FILTERS; i++) {
        int n = snprintf(f, sizeof f, "l%u/%u", i / FAN, i % FAN);
        assert_true(n > 0 && (size_t)n < sizeof f);
        add_new(t, f, NULL, owner(i % 8));
    }
    assert_int_equal(sub_tree_count(t), FILTERS);
    assert_int_equal(sub_tree_node_count(t), 1 + FILTERS / FAN + FILTERS);
    assert_int_equal(collect(t, "l999/999", NULL), 1);
    assert_ptr_equal(g_col.hits[0].owner, owner(999999 % 8));
    /* Remove in a different order than added (7919 is coprime with FILTERS). */
    for (unsigned k = 0; k < FILTERS; k++) {
        unsigned i = (unsigned)(((uint64_t)k * 7919u) % FILTERS);
        int n = snprintf(f, sizeof f, "l%u/%u", i / FAN, i % FAN);
        assert_true(n > 0 && (size_t)n < sizeof f);
        assert_int_equal(rm(t, f, NULL, owner(i % 8)), 0);
    }
    assert_int_equal(sub_tree_count(t), 0);
    assert_int_equal(sub_tree_node_count(t), 1);
    sub_tree_destroy(t);
}

static void test_hundred_thousand_owners_on_one_filter_add_then_remove(void **state)
{
    (void)state;
    enum { OWNERS = 100000 };
    char *who = calloc(OWNERS, 1);
    assert_non_null(who);
    struct sub_tree *t = new_tree();
    bool existed = true;
    for (uint32_t i = 0; i < OWNERS; i++) {
        assert_int_equal(add(t, "a/b", NULL, &who[i], 0, i + 1, &existed), 0);
        assert_false(existed);
        assert_int_equal(add(t, "a/+", "g", &who[i], 0, i + 1, &existed), 0);
        assert_false(existed);
    }
    assert_int_equal(sub_tree_count(t), 2 * OWNERS);
    for (uint32_t i = 0; i < OWNERS; i += 997) {
        assert_int_equal(add(t, "a/b", NULL, &who[i], 1, i + 1, &existed), 0);
        assert_true(existed);
    }
    size_t hits = match_count(t, "a/b");
    assert_int_equal(hits, OWNERS + 1); /* every plain owner plus one group member */
    for (uint32_t k = 0; k < OWNERS; k++) {
        uint32_t i = (uint32_t)(((uint64_t)k * 7919u) % OWNERS);
        assert_int_equal(rm(t, "a/b", NULL, &who[i]), 0);
        assert_int_equal(rm(t, "a/+", "g", &who[OWNERS - 1 - i]), 0);
        if (k % 10007 == 0) {
            assert_int_equal(match_count(t, "a/b"), OWNERS - 1 - k + 1);
        }
    }
    assert_int_equal(rm(t, "a/b", NULL, &who[0]), LMQ_ENOTFOUND);
    assert_int_equal(sub_tree_count(t), 0);
    assert_int_equal(sub_tree_node_count(t), 1);
    sub_tree_destroy(t);
    free(who);
}

static void test_thousand_share_groups_on_one_filter_each_deliver_once(void **state)
{
    (void)state;
    enum { GROUPS = 1000 };
    struct sub_tree *t = new_tree();
    char g[16];
    for (unsigned i = 0; i < GROUPS; i++) {
        assert_true(snprintf(g, sizeof g, "g%u", i) > 0);
        add_new(t, "x", g, owner(0));
        add_new(t, "x", g, owner(1));
    }
    assert_int_equal(match_count(t, "x"), GROUPS);
    for (unsigned i = 0; i < GROUPS; i++) {
        assert_true(snprintf(g, sizeof g, "g%u", i) > 0);
        assert_int_equal(rm(t, "x", g, owner(i % 2)), 0);
    }
    assert_int_equal(match_count(t, "x"), GROUPS);
    for (unsigned i = 0; i < GROUPS; i++) {
        assert_true(snprintf(g, sizeof g, "g%u", i) > 0);
        assert_int_equal(rm(t, "x", g, owner(1 - i % 2)), 0);
    }
    assert_int_equal(match_count(t, "x"), 0);
    assert_int_equal(sub_tree_node_count(t), 1);
    sub_tree_destroy(t);
}

/* ---- shared subscriptions ---- */

static void test_shared_group_round_robin_delivers_to_three_members_in_turn(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    for (size_t i = 0; i < 3; i++) {
        add_new(t, "t/+", "g", owner(i));
    }
    add_new(t, "t/x", NULL, owner(9)); /* plain subscriber: always delivered */
    void *order[6];
    for (size_t m = 0; m < 6; m++) {
        assert_int_equal(collect(t, "t/x", NULL), 2);
        size_t shared = g_col.hits[0].shared ? 0 : 1;
        assert_true(g_col.hits[shared].shared);
        assert_false(g_col.hits[1 - shared].shared);
        assert_string_equal(g_col.hits[shared].group, "g");
        order[m] = g_col.hits[shared].owner;
    }
    assert_ptr_not_equal(order[0], order[1]);
    assert_ptr_not_equal(order[1], order[2]);
    assert_ptr_not_equal(order[0], order[2]);
    for (size_t m = 0; m < 3; m++) {
        assert_ptr_equal(order[m], order[m + 3]); /* the same rotation again */
        assert_true(order[m] == owner(0) || order[m] == owner(1) || order[m] == owner(2));
    }
    sub_tree_destroy(t);
}

static void test_shared_group_skips_ineligible_members(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    for (size_t i = 0; i < 3; i++) {
        add_new(t, "t/#", "g", owner(i));
    }
    g_col.ineligible[0] = owner(1);
    g_col.ineligible_count = 1;
    g_col.none_eligible = false;
    void *seen[6];
    for (size_t m = 0; m < 6; m++) {
        assert_int_equal(collect(t, "t/x", eligible_cb), 1);
        seen[m] = g_col.hits[0].owner;
        assert_ptr_not_equal(seen[m], owner(1));
        if (m > 0) {
            assert_ptr_not_equal(seen[m], seen[m - 1]); /* alternates between 0 and 2 */
        }
    }
    /* Nobody eligible: the rotation goes on anyway, over all three. */
    g_col.none_eligible = true;
    void *any[3];
    for (size_t m = 0; m < 3; m++) {
        assert_int_equal(collect(t, "t/x", eligible_cb), 1);
        any[m] = g_col.hits[0].owner;
    }
    assert_true(any[0] != any[1] && any[1] != any[2] && any[0] != any[2]);
    g_col.none_eligible = false;
    g_col.ineligible_count = 0;
    sub_tree_destroy(t);
}

static void test_shared_groups_on_overlapping_filters_deliver_once_per_filter(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    add_new(t, "a/+", "g", owner(0));
    add_new(t, "a/+", "g", owner(1));
    add_new(t, "a/#", "g", owner(0)); /* same group name, other filter: another unit */
    add_new(t, "a/+", "h", owner(2));
    assert_int_equal(collect(t, "a/b", NULL), 3);
    assert_int_equal(collect(t, "a", NULL), 1);
    assert_ptr_equal(g_col.hits[0].owner, owner(0));
    assert_int_equal(rm(t, "a/+", "g", owner(0)), 0);
    assert_int_equal(rm(t, "a/+", "g", owner(1)), 0);
    assert_int_equal(collect(t, "a/b", NULL), 2);
    sub_tree_destroy(t);
}

/* ---- randomized comparison with a brute-force list ---- */

enum { PF = 48, PG = 3, PO = 6 }; /* filters, groups (0 = none), owners */

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

static const char *const k_group_names[PG] = {NULL, "g1", "g2"};

static void random_name(char *out, size_t cap, bool filter)
{
    static const char *const flevels[] = {"a", "b", "", "$x", "+", "#"};
    static const char *const tlevels[] = {"a", "b", "", "$x", "c"};
    size_t depth = 1 + rnd(4), len = 0;
    out[0] = '\0';
    for (size_t d = 0; d < depth; d++) {
        const char *lv = filter ? flevels[rnd(6)] : tlevels[rnd(5)];
        if (lv[0] == '#' && d + 1 < depth) {
            lv = "+";
        }
        int n = snprintf(out + len, cap - len, "%s%s", d > 0 ? "/" : "", lv);
        assert_true(n >= 0 && (size_t)n < cap - len);
        len += (size_t)n;
    }
    if (len == 0) { /* a lone empty level is not a valid filter or topic name */
        assert_true(snprintf(out, cap, "%s", filter ? "+" : "c") == 1);
    }
}

struct model {
    char filters[PF][24];
    bool present[PF][PG][PO];
    uint8_t options[PF][PG][PO];
    size_t count;
};

static uint32_t key_id(size_t f, size_t g, size_t o)
{
    return (uint32_t)(((f * PG) + g) * PO + o + 1);
}

static void model_check_topic(struct sub_tree *t, const struct model *m, const char *topic)
{
    static unsigned hits[PF][PG][PO];
    memset(hits, 0, sizeof hits);
    size_t n = collect(t, topic, NULL);
    for (size_t i = 0; i < n; i++) {
        const struct hit *h = &g_col.hits[i];
        uint32_t id = h->sub_id - 1;
        size_t o = id % PO, g = (id / PO) % PG, f = id / PO / PG;
        assert_true(f < PF && m->present[f][g][o]);
        assert_ptr_equal(h->owner, owner(o));
        assert_int_equal(h->options, m->options[f][g][o]);
        assert_int_equal(h->shared, g != 0);
        if (g != 0) {
            assert_string_equal(h->group, k_group_names[g]);
        }
        if (!ref_matches(m->filters[f], topic)) {
            fail_msg("filter '%s' delivered for topic '%s'", m->filters[f], topic);
        }
        hits[f][g][g == 0 ? o : 0]++;
    }
    size_t want = 0;
    for (size_t f = 0; f < PF; f++) {
        bool match = ref_matches(m->filters[f], topic);
        for (size_t g = 0; g < PG; g++) {
            size_t members = 0;
            for (size_t o = 0; o < PO; o++) {
                members += m->present[f][g][o];
                if (g == 0 && match && m->present[f][g][o]) {
                    assert_int_equal(hits[f][g][o], 1);
                }
            }
            if (g != 0 && match && members > 0) {
                assert_int_equal(hits[f][g][0], 1); /* one member per group */
            }
            want += match ? (g == 0 ? members : members > 0) : 0;
        }
    }
    assert_int_equal(n, want);
}

static void model_step(struct sub_tree *t, struct model *m)
{
    size_t f = rnd(PF), g = rnd(PG), o = rnd(PO);
    const char *filter = m->filters[f];
    if (rnd(10) < 6) {
        bool existed = false;
        uint8_t options = (uint8_t)rnd(256);
        assert_int_equal(
            add(t, filter, k_group_names[g], owner(o), options, key_id(f, g, o), &existed), 0);
        assert_int_equal(existed, m->present[f][g][o]);
        m->count += !m->present[f][g][o];
        m->present[f][g][o] = true;
        m->options[f][g][o] = options;
    } else {
        int rc = rm(t, filter, k_group_names[g], owner(o));
        assert_int_equal(rc, m->present[f][g][o] ? 0 : LMQ_ENOTFOUND);
        m->count -= m->present[f][g][o];
        m->present[f][g][o] = false;
    }
}

static void test_match_agrees_with_brute_force_on_random_trees(void **state)
{
    (void)state;
    static struct model m;
    memset(&m, 0, sizeof m);
    for (size_t f = 0; f < PF; f++) {
        bool dup = true;
        for (int tries = 0; dup && tries < 1000; tries++) {
            random_name(m.filters[f], sizeof m.filters[f], true);
            dup = false;
            for (size_t p = 0; p < f; p++) {
                dup = dup || strcmp(m.filters[p], m.filters[f]) == 0;
            }
        }
        assert_false(dup);
    }
    struct sub_tree *t = new_tree();
    char topic[24];
    for (int step = 0; step < 20000; step++) {
        model_step(t, &m);
        if (step % 25 == 0) {
            assert_int_equal(sub_tree_count(t), m.count);
            for (int k = 0; k < 8; k++) {
                random_name(topic, sizeof topic, false);
                model_check_topic(t, &m, topic);
            }
        }
    }
    for (size_t f = 0; f < PF; f++) {
        for (size_t g = 0; g < PG; g++) {
            for (size_t o = 0; o < PO; o++) {
                if (m.present[f][g][o]) {
                    assert_int_equal(rm(t, m.filters[f], k_group_names[g], owner(o)), 0);
                }
            }
        }
    }
    assert_int_equal(sub_tree_count(t), 0);
    assert_int_equal(sub_tree_node_count(t), 1);
    sub_tree_destroy(t);
}

/* ---- limits: long levels, deep filters ---- */

static void test_long_level_and_65536_level_filter(void **state)
{
    (void)state;
    enum { MAX = 65535 };
    char *s = malloc(MAX + 1);
    assert_non_null(s);
    struct sub_tree *t = new_tree();

    memset(s, 'x', MAX); /* one 65535-byte level */
    s[MAX] = '\0';
    add_new(t, s, NULL, owner(0));
    assert_int_equal(match_count(t, s), 1);
    s[MAX - 1] = 'y';
    assert_int_equal(match_count(t, s), 0);
    s[MAX - 1] = 'x';
    assert_int_equal(rm(t, s, NULL, owner(0)), 0);

    memset(s, '/', MAX); /* 65536 empty levels */
    add_new(t, s, NULL, owner(1));
    assert_int_equal(sub_tree_node_count(t), 1 + 65536);
    assert_int_equal(match_count(t, s), 1);
    s[MAX - 1] = '\0';
    assert_int_equal(match_count(t, s), 0);
    s[MAX - 1] = '/';
    assert_int_equal(rm(t, s, NULL, owner(1)), 0);
    assert_int_equal(sub_tree_node_count(t), 1);

    /* "+/" x 32767 then "#": needs at least 32767 topic levels. */
    for (size_t i = 0; i + 1 < MAX; i += 2) {
        s[i] = '+';
        s[i + 1] = '/';
    }
    s[MAX - 1] = '#';
    add_new(t, s, NULL, owner(2));
    char *topic = malloc(MAX + 1);
    assert_non_null(topic);
    memset(topic, '/', 32766); /* 32767 empty levels: '#' matches zero more */
    topic[32766] = '\0';
    assert_int_equal(match_count(t, topic), 1);
    topic[32765] = '\0';
    assert_int_equal(match_count(t, topic), 0);
    sub_tree_destroy(t); /* a deep tree is freed without recursion */
    free(topic);
    free(s);
}

/* ---- allocation failures ---- */

/*
 * Adds with the nth allocation failing, n = 1, 2, ... until it succeeds;
 * checks each failure changed nothing. Returns how many failures it saw.
 */
static uint32_t add_under_faults(struct sub_tree *t, const char *filter, const char *group,
                                 void *who, const char *probe_topic)
{
    uint32_t nth = 1;
    for (; nth < 200; nth++) {
        size_t count = sub_tree_count(t), nodes = sub_tree_node_count(t);
        size_t hits = match_count(t, probe_topic);
        bool existed = true;
        sub_tree_test_fail_alloc(t, nth);
        int rc = add(t, filter, group, who, 1, 5, &existed);
        sub_tree_test_fail_alloc(t, 0);
        if (rc == 0) {
            assert_false(existed);
            assert_int_equal(sub_tree_count(t), count + 1);
            assert_int_equal(match_count(t, probe_topic), hits + 1); /* a new plain sub or group */
            break;
        }
        assert_int_equal(rc, LMQ_ENOMEM);
        assert_false(existed);
        assert_int_equal(sub_tree_count(t), count);
        assert_int_equal(sub_tree_node_count(t), nodes);
        assert_int_equal(match_count(t, probe_topic), hits);
    }
    assert_true(nth < 200);
    return nth - 1;
}

static void test_allocation_failures_leave_tree_unchanged(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    add_new(t, "a/b", NULL, owner(0));
    /* 10 nodes with a child array each, a set, a member array, a bigger match stack */
    assert_true(add_under_faults(t, "x/y/z/w/v/u/t/s/r/q", NULL, owner(1), "x/y/z/w/v/u/t/s/r/q") >=
                20);
    assert_true(add_under_faults(t, "a/+/c/#", NULL, owner(1), "a/b/c/d") >= 4);
    /* A new group: its array slot, the group, its member array (capacity kept from earlier tries).
     */
    assert_true(add_under_faults(t, "a/+/c/#", "grp", owner(1), "a/q/c") >= 2);
    char f[16];
    for (size_t i = 0; i < 12; i++) { /* crosses the child index threshold at the root */
        assert_true(snprintf(f, sizeof f, "r%zu/x", i) > 0);
        add_under_faults(t, f, NULL, owner(i), f);
    }
    for (size_t i = 0; i < 12; i++) { /* crosses the member index threshold */
        add_under_faults(t, "m", NULL, owner(i), "m");
    }
    assert_int_equal(match_count(t, "m"), 12);
    /* Removals never fail, even when every shrink allocation does. */
    for (size_t i = 0; i < 12; i++) {
        sub_tree_test_fail_alloc(t, 1);
        assert_int_equal(rm(t, "m", NULL, owner(i)), 0);
        assert_int_equal(match_count(t, "m"), 11 - i);
    }
    sub_tree_test_fail_alloc(t, 0);
    sub_tree_destroy(t);
}

static void test_create_destroy_empty_and_null(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    assert_int_equal(sub_tree_count(t), 0);
    assert_int_equal(match_count(t, "a"), 0);
    sub_tree_destroy(t);
    sub_tree_destroy(NULL);
}

/* ---- the callback must not modify the tree ---- */

static struct sub_tree *g_reentrant_tree;

static void modifying_cb(void *ctx, const struct sub_tree_entry *e)
{
    (void)ctx;
    (void)rm(g_reentrant_tree, "a", NULL, e->owner);
}

static void test_modifying_tree_from_match_callback_aborts(void **state)
{
    (void)state;
    struct sub_tree *t = new_tree();
    add_new(t, "a", NULL, owner(0));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)freopen("/dev/null", "w", stderr); /* the assert's report is expected */
        g_reentrant_tree = t;
        sub_tree_match(t, (const uint8_t *)"a", 1, modifying_cb, NULL, NULL);
        _exit(0); /* not reached when the assert fires */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_int_equal(sub_tree_count(t), 1); /* the parent's tree is untouched */
    sub_tree_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_destroy_empty_and_null),
        cmocka_unit_test(test_match_table_wildcards_dollar_and_empty_levels),
        cmocka_unit_test(test_one_owner_two_matching_filters_gets_two_callbacks),
        cmocka_unit_test(test_add_same_subscription_replaces_options_and_sub_id),
        cmocka_unit_test(test_remove_unknown_returns_notfound_and_changes_nothing),
        cmocka_unit_test(test_remove_prunes_empty_nodes_up_to_root),
        cmocka_unit_test(test_shared_group_round_robin_delivers_to_three_members_in_turn),
        cmocka_unit_test(test_shared_group_skips_ineligible_members),
        cmocka_unit_test(test_shared_groups_on_overlapping_filters_deliver_once_per_filter),
        cmocka_unit_test(test_match_agrees_with_brute_force_on_random_trees),
        cmocka_unit_test(test_hundred_thousand_owners_on_one_filter_add_then_remove),
        cmocka_unit_test(test_thousand_share_groups_on_one_filter_each_deliver_once),
        cmocka_unit_test(test_million_distinct_filters_added_and_removed_leave_only_root),
        cmocka_unit_test(test_long_level_and_65536_level_filter),
        cmocka_unit_test(test_allocation_failures_leave_tree_unchanged),
        cmocka_unit_test(test_modifying_tree_from_match_callback_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
