/* Unit tests for src/mqtt/mqtt_acl.c: ACL file syntax, sections, deny, patterns, covering and
 * overlapping filters, and the checks against a reference model of mosquitto's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lmq.h"
#include "mqtt/mqtt_acl.h"
#include "mqtt/mqtt_topic.h"

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

static struct mqtt_acl *parse_ok(const char *text)
{
    struct mqtt_acl *acl = NULL;
    char err[256] = "";
    int rc = mqtt_acl_parse(text, strlen(text), &acl, err, sizeof(err));
    if (rc != LMQ_OK)
        fail_msg("parse failed: %s", err);
    assert_non_null(acl);
    return acl;
}

static struct mqtt_acl_client who(const char *user, const char *client_id)
{
    struct mqtt_acl_client w = {u8(user), strlen(user), u8(client_id), strlen(client_id)};
    return w;
}

static bool pub(const struct mqtt_acl *acl, const char *user, const char *cid, const char *topic)
{
    struct mqtt_acl_client w = who(user, cid);
    return mqtt_acl_may_publish(acl, &w, u8(topic), strlen(topic));
}

static bool rd(const struct mqtt_acl *acl, const char *user, const char *cid, const char *topic)
{
    struct mqtt_acl_client w = who(user, cid);
    return mqtt_acl_may_read(acl, &w, u8(topic), strlen(topic));
}

static bool all(const struct mqtt_acl *acl, const char *user, const char *cid, const char *filter)
{
    struct mqtt_acl_client w = who(user, cid);
    return mqtt_acl_reads_all(acl, &w, u8(filter), strlen(filter));
}

static void test_access_words_comments_and_whitespace(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("# comment\n"
                                    "\n"
                                    "   # indented comment\n"
                                    "topic read public/#\n"
                                    "topic write inbox/+\r\n"
                                    "  topic   readwrite   both/x  \n"
                                    "topic\tbare/one\t\n"
                                    "topic read $SYS/#\n"
                                    "topic read with space/x\n"
                                    "topic deny public/secret\n");
    assert_int_equal(mqtt_acl_rule_count(acl), 7);
    /* Rules before any "user" line are the anonymous client's (user name ""). */
    assert_true(rd(acl, "", "c1", "public/news"));
    assert_false(pub(acl, "", "c1", "public/news")); /* read only */
    assert_true(pub(acl, "", "c1", "inbox/x"));
    assert_false(rd(acl, "", "c1", "inbox/x")); /* write only */
    assert_false(pub(acl, "", "c1", "inbox/x/y"));
    assert_true(pub(acl, "", "c1", "both/x") && rd(acl, "", "c1", "both/x"));
    assert_true(pub(acl, "", "c1", "bare/one") && rd(acl, "", "c1", "bare/one")); /* readwrite */
    assert_true(rd(acl, "", "c1", "$SYS/broker/uptime"));
    assert_true(rd(acl, "", "c1", "with space/x"));
    assert_false(rd(acl, "", "c1", "public/secret")); /* deny, after the allow in the file */
    assert_false(pub(acl, "", "c1", "other"));
    /* ... and not an authenticated user's. */
    assert_false(rd(acl, "alice", "c1", "public/news"));
    assert_false(pub(acl, "alice", "c1", "inbox/x"));
    mqtt_acl_free(acl);
}

static void test_user_sections_apply_to_their_user_only_and_merge(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("topic read all/#\n"
                                    "user alice\n"
                                    "topic readwrite alice/#\n"
                                    "user bob smith\n"
                                    "topic write bob/out\n"
                                    "user alice  \n"
                                    "topic read more/alice\n");
    assert_true(pub(acl, "alice", "c", "alice/x"));
    assert_true(rd(acl, "alice", "c", "more/alice")); /* the second alice section adds */
    assert_false(pub(acl, "bob smith", "c", "alice/x"));
    assert_true(pub(acl, "bob smith", "c", "bob/out"));
    assert_false(pub(acl, "alice", "c", "bob/out"));
    assert_false(pub(acl, "bob", "c", "bob/out")); /* the section's name is the whole rest */
    assert_false(rd(acl, "alice", "c", "all/x"));  /* the anonymous section is not theirs */
    assert_true(rd(acl, "", "c", "all/x"));
    assert_false(pub(acl, "alicex", "c", "alice/x"));
    assert_false(rd(acl, "carol", "c", "all/x")); /* no section, no pattern: nothing */
    mqtt_acl_free(acl);
}

static void test_deny_order_is_mosquittos(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("user alice\n"
                                    "topic readwrite a/#\n"
                                    "topic deny a/secret/#\n"
                                    "topic write w/x\n"
                                    "topic read w/x\n"
                                    "topic readwrite p/alice/open\n"
                                    "topic deny q/#\n"
                                    "pattern readwrite p/%u/#\n"
                                    "pattern deny p/%u/closed\n"
                                    "pattern deny p/%u/open\n"
                                    "pattern readwrite q/%u\n");
    /* A deny wins over every allow of its list, before or after it in the file. */
    assert_true(rd(acl, "alice", "c", "a/x") && pub(acl, "alice", "c", "a/x"));
    assert_false(rd(acl, "alice", "c", "a/secret"));
    assert_false(pub(acl, "alice", "c", "a/secret/deeper"));
    /* A matching rule without the access asked for does not stop the search. */
    assert_true(rd(acl, "alice", "c", "w/x") && pub(acl, "alice", "c", "w/x"));
    /* The same for patterns. */
    assert_true(pub(acl, "alice", "c", "p/alice/x"));
    assert_false(pub(acl, "alice", "c", "p/alice/closed"));
    assert_false(rd(acl, "bob", "c", "p/bob/closed"));
    assert_false(rd(acl, "bob", "c", "p/bob/open"));
    assert_true(rd(acl, "bob", "c", "p/bob/other"));
    /* The user's topic rules come before every pattern: their allow beats a pattern deny, and
     * their deny beats a pattern allow. */
    assert_true(rd(acl, "alice", "c", "p/alice/open"));
    assert_false(pub(acl, "alice", "c", "q/alice"));
    assert_true(pub(acl, "bob", "c", "q/bob"));
    mqtt_acl_free(acl);
}

static void test_patterns_apply_to_everyone_with_substitution(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("pattern readwrite users/%u/#\n"
                                    "pattern write clients/%c\n"
                                    "user carol\n"
                                    "topic read carol/#\n"
                                    "pattern read everyone/%u\n"
                                    "pattern read plain/#\n"
                                    "pattern deny users/%u/locked/#\n"
                                    "pattern read d/#\n"
                                    "pattern deny d/%c/locked/#\n");
    assert_true(pub(acl, "alice", "c1", "users/alice/x"));
    assert_false(pub(acl, "alice", "c1", "users/bob/x"));
    assert_true(pub(acl, "alice", "c1", "clients/c1"));
    assert_false(pub(acl, "alice", "c1", "clients/c2"));
    /* A pattern inside a user section still applies to everyone. */
    assert_true(rd(acl, "alice", "c", "everyone/alice"));
    assert_true(rd(acl, "carol", "c", "everyone/carol"));
    assert_true(rd(acl, "carol", "c", "plain/x")); /* after carol's own rules */
    /* Anonymous: no %u pattern applies; %c and plain ones do. */
    assert_false(rd(acl, "", "c1", "users//x"));
    assert_false(rd(acl, "", "c1", "everyone/"));
    assert_true(pub(acl, "", "c1", "clients/c1"));
    assert_true(rd(acl, "", "c1", "plain/x"));
    /* A user name or client id with '+' or '#': no pattern at all (mosquitto), the user's own
     * topic rules still. */
    assert_false(rd(acl, "a+b", "c1", "plain/x"));
    assert_false(rd(acl, "alice", "c#", "plain/x"));
    assert_false(pub(acl, "+", "c1", "users/+/x"));
    /* A value with '/': an allow pattern does not apply (ours), a deny pattern does. */
    assert_false(pub(acl, "a/b", "c1", "users/a/b/x"));
    assert_false(pub(acl, "alice", "c/1", "clients/c/1"));
    assert_true(pub(acl, "alice", "c/1", "users/alice/x")); /* %u only: the client id is moot */
    assert_false(rd(acl, "alice", "x", "d/x/locked/z"));
    assert_true(rd(acl, "alice", "x/y", "d/x/locked/z"));
    assert_false(rd(acl, "alice", "x/y", "d/x/y/locked/z")); /* deny: the text substituted */
    assert_true(rd(acl, "a/b", "c1", "plain/x"));
    mqtt_acl_free(acl);
}

static void test_dollar_topics(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("topic readwrite #\n"
                                    "topic readwrite $SYS/#\n"
                                    "topic readwrite $share\n"
                                    "topic readwrite $other/#\n");
    assert_true(rd(acl, "", "c", "a/b"));
    assert_true(rd(acl, "", "c", "$SYS/x"));
    assert_false(pub(acl, "", "c", "$SYS/x")); /* no client writes $SYS, whatever the rules */
    assert_true(pub(acl, "", "c", "$SYS/broker/connection/c/state")); /* but a bridge's state */
    assert_false(rd(acl, "", "c", "$share")); /* nor reads or writes $share... */
    assert_false(pub(acl, "", "c", "$share"));
    assert_true(pub(acl, "", "c", "$other/x"));
    mqtt_acl_free(acl);
    acl = parse_ok("topic readwrite #\ntopic readwrite +/x\n");
    assert_false(rd(acl, "", "c", "$SYS/x")); /* a first-level wildcard never matches '$' */
    assert_false(pub(acl, "", "c", "$other/x"));
    mqtt_acl_free(acl);
    acl = parse_ok("");
    assert_false(rd(acl, "", "c", "a")); /* an empty file denies everything */
    assert_false(all(acl, "", "c", "a"));
    mqtt_acl_free(acl);
}

static void test_pattern_literal_percent_in_topic_rule(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("user alice\ntopic read literal/%u\n");
    assert_true(rd(acl, "alice", "c", "literal/%u"));
    assert_false(rd(acl, "alice", "c", "literal/alice"));
    mqtt_acl_free(acl);
}

static void test_reads_all_table(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("topic read anon/#\n"
                                    "topic deny anon/secret\n"
                                    "user alice\n"
                                    "topic readwrite a/#\n"
                                    "topic deny a/+/secret\n"
                                    "topic write w/#\n"
                                    "pattern read u/%u/#\n"
                                    "pattern deny u/%u/hidden\n"
                                    "pattern read c/%c/#\n");
    static const struct {
        const char *user, *filter;
        bool all;
    } cases[] = {
        {"", "anon/x", true},           {"", "anon/#", false},       {"", "anon/+", false},
        {"", "anon/x/#", true},         {"", "other", false},        {"alice", "a/b", true},
        {"alice", "a/#", false},        {"alice", "a/x/#", false},   {"alice", "a/x/y", true},
        {"alice", "a/x/secret", false}, {"alice", "w/x", false},     {"alice", "u/alice/#", false},
        {"alice", "u/alice/x", true},   {"alice", "c/cid/#", true},  {"bob", "u/bob/+", false},
        {"bob", "u/bob/x/#", true},     {"bob", "u/alice/x", false}, {"", "c/cid/x", true},
        {"", "u/+/x", false},           {"alice", "#", false},       {"alice", "$SYS/#", false},
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        if (all(acl, cases[i].user, "cid", cases[i].filter) != cases[i].all)
            fail_msg("reads_all(%s, %s) != %d", cases[i].user, cases[i].filter, cases[i].all);
    }
    mqtt_acl_free(acl);
}

static void test_bad_lines_name_the_line(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"topic read\n", "line 1: expected a topic filter after \"read\""},
        {"\npattern deny\n", "line 2: expected a topic filter after \"deny\""},
        {"topic read a/#/b\n", "line 1: expected a topic filter"},
        {"topic read $share/g/a\n", "not shared"},
        {"frobnicate a\n", "unknown keyword"},
        {"user\n", "expected user <name>"},
        {"pattern read a/x%u\n", "whole topic level"},
        {"pattern read a/%c-%u\n", "whole topic level"},
        {"topic read id/+/inbox\n", "fixed permissions"},
        {"topic sometimes a b\n", "expected read, write, readwrite or deny"},
        {"topic\n", "expected topic <access> <filter>"},
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        struct mqtt_acl *acl = (struct mqtt_acl *)1;
        char err[256] = "";
        int rc = mqtt_acl_parse(cases[i].text, strlen(cases[i].text), &acl, err, sizeof(err));
        assert_int_equal(rc, LMQ_EINVAL);
        assert_null(acl);
        if (strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].needle);
    }
    char nul[] = "topic read a\0b\n";
    struct mqtt_acl *acl = NULL;
    char err[256];
    assert_int_equal(mqtt_acl_parse(nul, sizeof(nul) - 1, &acl, err, sizeof(err)), LMQ_EINVAL);
}

static void test_overlong_line_is_refused(void **state)
{
    (void)state;
    size_t len = MQTT_ACL_LINE_MAX_BYTES + 20;
    char *text = malloc(len + 1);
    assert_non_null(text);
    memcpy(text, "topic read ", 11);
    memset(text + 11, 'a', len - 11);
    text[len] = '\0';
    struct mqtt_acl *acl = NULL;
    char err[256];
    assert_int_equal(mqtt_acl_parse(text, len, &acl, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "longer than"));
    free(text);
}

static void test_covering_table(void **state)
{
    (void)state;
    static const struct {
        const char *acl, *filter;
        bool covers;
    } cases[] = {
        {"a/b", "a/b", true},     {"a/b", "a/c", false},      {"a/+", "a/b", true},
        {"a/+", "a/+", true},     {"a/+", "a/#", false},      {"a/+", "a/b/c", false},
        {"a/#", "a", true},       {"a/#", "a/#", true},       {"a/#", "a/+/c", true},
        {"a/#", "b", false},      {"#", "#", true},           {"#", "$SYS/x", false},
        {"+/x", "$SYS/x", false}, {"$SYS/#", "$SYS/x", true}, {"+/x", "+/x", true},
        {"a/b", "a/+", false},    {"a/b", "a/#", false},      {"a", "a/b", false},
        {"a/b", "a", false},      {"a//b", "a//b", true},     {"a/+/b", "a//b", true},
        {"+", "", false},         {"a/+/#", "a/#", false},    {"+/+", "#", false},
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        bool got = mqtt_acl_filter_covers(u8(cases[i].acl), strlen(cases[i].acl),
                                          u8(cases[i].filter), strlen(cases[i].filter));
        if (got != cases[i].covers)
            fail_msg("covers(%s, %s) = %d", cases[i].acl, cases[i].filter, got);
    }
}

/* Every filter over a small alphabet, for the exhaustive checks below. */
#define UNIVERSE_MAX 2000
static const char *const levels[] = {"a", "b", "", "$s", "+", "#"};

static size_t build_filters(char (*out)[16], size_t cap, bool names_only)
{
    size_t n = 0;
    size_t lc = names_only ? 4 : LMQ_ARRAY_LEN(levels);
    for (size_t depth = 1; depth <= 3; depth++) {
        size_t combos = 1;
        for (size_t d = 0; d < depth; d++)
            combos *= lc;
        for (size_t k = 0; k < combos && n < cap; k++) {
            char buf[16] = "";
            size_t v = k;
            for (size_t d = 0; d < depth; d++) {
                if (d > 0)
                    strcat(buf, "/");
                strcat(buf, levels[v % lc]);
                v /= lc;
            }
            size_t len = strlen(buf);
            bool ok = len > 0 && (names_only ? mqtt_topic_name_valid(u8(buf), len)
                                             : mqtt_topic_filter_valid(u8(buf), len));
            if (ok)
                memcpy(out[n++], buf, len + 1);
        }
    }
    return n;
}

/* Soundness: when A covers F, every topic F matches is matched by A; and on topic names,
 * covering is exactly matching. */
static void test_covering_never_allows_more_than_the_acl_filter(void **state)
{
    (void)state;
    static char filters[UNIVERSE_MAX][16], topics[UNIVERSE_MAX][16];
    size_t nf = build_filters(filters, UNIVERSE_MAX, false);
    size_t nt = build_filters(topics, UNIVERSE_MAX, true);
    assert_true(nf > 100 && nt > 20);
    size_t covered = 0;
    for (size_t i = 0; i < nf; i++) {
        const char *a = filters[i];
        for (size_t j = 0; j < nf; j++) {
            const char *f = filters[j];
            if (!mqtt_acl_filter_covers(u8(a), strlen(a), u8(f), strlen(f)))
                continue;
            covered++;
            for (size_t t = 0; t < nt; t++) {
                const char *tp = topics[t];
                if (mqtt_topic_matches(u8(f), strlen(f), u8(tp), strlen(tp)) &&
                    !mqtt_topic_matches(u8(a), strlen(a), u8(tp), strlen(tp)))
                    fail_msg("%s covers %s but %s matches %s only", a, f, f, tp);
            }
        }
        for (size_t t = 0; t < nt; t++) {
            const char *tp = topics[t];
            bool m = mqtt_topic_matches(u8(a), strlen(a), u8(tp), strlen(tp));
            if (m != mqtt_acl_filter_covers(u8(a), strlen(a), u8(tp), strlen(tp)))
                fail_msg("covers(%s, topic %s) differs from matches", a, tp);
        }
    }
    assert_true(covered > nf); /* not vacuous: more than the identities */
}

/*
 * A reference model of mosquitto 2.0's acl_file check, written the way mosquitto does it: the
 * client's list (the anonymous one, or its user's), then, unless the user name or client id
 * holds '+' or '#', the patterns with %u/%c replaced as text; in each list the denies first;
 * the first match that denies or grants the access decides. One difference is modelled: an
 * allow pattern whose substituted value holds '/' does not apply (mqtt_acl.h).
 */
struct ref_rule {
    char user[8]; /* "" for the anonymous section */
    bool pattern, deny;
    int access;
    char filter[32];
};

static size_t ref_parse(const char *text, struct ref_rule *out, size_t cap)
{
    char user[8] = "";
    size_t n = 0;
    for (const char *line = text; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        char buf[64], kw[16], access[16], filter[32];
        size_t len = (size_t)(nl - line);
        assert_true(nl != NULL && len < sizeof(buf));
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = nl + 1;
        if (sscanf(buf, "user %7s", user) == 1)
            continue;
        assert_int_equal(sscanf(buf, "%15s %15s %31s", kw, access, filter), 3);
        assert_true(n < cap);
        struct ref_rule *r = &out[n++];
        snprintf(r->user, sizeof(r->user), "%s", user);
        r->pattern = strcmp(kw, "pattern") == 0;
        r->deny = strcmp(access, "deny") == 0;
        r->access = strcmp(access, "read") == 0 ? 1 : strcmp(access, "write") == 0 ? 2 : 3;
        snprintf(r->filter, sizeof(r->filter), "%s", filter);
    }
    return n;
}

/* Replaces %u and %c in f as text; false when an allow would substitute a value with '/'. */
static bool ref_subst(const struct ref_rule *r, const char *user, const char *cid, char *out,
                      size_t cap)
{
    size_t o = 0;
    for (const char *p = r->filter; *p != '\0'; p++) {
        const char *v = NULL;
        if (p[0] == '%' && (p[1] == 'u' || p[1] == 'c'))
            v = p[1] == 'u' ? user : cid;
        if (v != NULL && !r->deny && strchr(v, '/') != NULL)
            return false;
        if (v != NULL) {
            size_t vl = strlen(v);
            assert_true(o + vl < cap);
            memcpy(out + o, v, vl);
            o += vl;
            p++;
        } else {
            assert_true(o + 1 < cap);
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return true;
}

/* 1 allowed, 0 denied, -1 undecided: one list, denies first. */
static int ref_list(const struct ref_rule *rules, size_t n, bool pattern, const char *user,
                    const char *cid, int access, const char *topic)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct ref_rule *r = &rules[i];
            if (r->pattern != pattern || r->deny != (pass == 0))
                continue;
            if (!pattern && strcmp(r->user, user) != 0)
                continue;
            if (pattern && user[0] == '\0' && strstr(r->filter, "%u") != NULL)
                continue;
            char f[96];
            if (!ref_subst(r, user, cid, f, sizeof(f)))
                continue;
            if (!mqtt_topic_matches(u8(f), strlen(f), u8(topic), strlen(topic)))
                continue;
            if (r->deny)
                return 0;
            if (r->access & access)
                return 1;
        }
    }
    return -1;
}

static bool ref_check(const struct ref_rule *rules, size_t n, const char *user, const char *cid,
                      int access, const char *topic)
{
    if (strncmp(topic, "$share", 6) == 0)
        return false;
    if (access == 2 && strncmp(topic, "$SYS", 4) == 0)
        return false; /* (the bridge state topic is not in this universe) */
    int v = ref_list(rules, n, false, user, cid, access, topic);
    if (v >= 0)
        return v == 1;
    bool any_pattern = false;
    for (size_t i = 0; i < n; i++)
        any_pattern |= rules[i].pattern;
    if (!any_pattern || strpbrk(user, "+#") != NULL || strpbrk(cid, "+#") != NULL)
        return false;
    return ref_list(rules, n, true, user, cid, access, topic) == 1;
}

/* Random ACL files from a pool of lines over the universe's levels; many clients; every topic:
 * the checks equal the model's, and reads_all is never wrong. */
static void test_checks_equal_a_model_of_mosquittos_on_random_files(void **state)
{
    (void)state;
    static const char *const pool[] = {
        "user a\n",
        "user b\n",
        "topic read a/#\n",
        "topic deny a/b\n",
        "topic write +/b\n",
        "topic readwrite #\n",
        "topic deny $s/#\n",
        "topic read $s/+\n",
        "topic readwrite b\n",
        "topic deny +/+/a\n",
        "pattern readwrite %u/#\n",
        "pattern deny a/%c\n",
        "pattern read %c/+/#\n",
        "pattern deny %u\n",
        "pattern write +/%u\n",
        "pattern read b/#\n",
        "pattern deny %u/%c/#\n",
    };
    static const char *const clients[][2] = {
        {"", "a"},    {"", "b"},   {"a", "b"}, {"b", "a"},  {"a", "a/b"},
        {"a/b", "b"}, {"a+", "a"}, {"b", "#"}, {"$s", "a"}, {"", ""},
    };
    static char topics[UNIVERSE_MAX][16], filters[UNIVERSE_MAX][16];
    size_t nt = build_filters(topics, UNIVERSE_MAX, true);
    size_t nf = build_filters(filters, UNIVERSE_MAX, false);
    uint32_t seed = 12345;
    size_t allowed = 0, denied = 0, all_true = 0;
    for (int file = 0; file < 60; file++) {
        char text[1024] = "";
        size_t lines = 1 + (seed >> 8) % 9;
        for (size_t l = 0; l < lines; l++) {
            seed = seed * 1103515245u + 12345u;
            strcat(text, pool[(seed >> 8) % LMQ_ARRAY_LEN(pool)]);
        }
        struct ref_rule rules[16];
        size_t n = ref_parse(text, rules, LMQ_ARRAY_LEN(rules));
        struct mqtt_acl *acl = parse_ok(text);
        for (size_t c = 0; c < LMQ_ARRAY_LEN(clients); c++) {
            const char *user = clients[c][0], *cid = clients[c][1];
            for (size_t t = 0; t < nt; t++) {
                for (int access = 1; access <= 2; access++) {
                    bool want = ref_check(rules, n, user, cid, access, topics[t]);
                    bool got = access == 1 ? rd(acl, user, cid, topics[t])
                                           : pub(acl, user, cid, topics[t]);
                    if (got != want)
                        fail_msg("file:\n%suser \"%s\" client \"%s\" %s %s: got %d, want %d", text,
                                 user, cid, access == 1 ? "read" : "write", topics[t], got, want);
                    want ? allowed++ : denied++;
                }
            }
            for (size_t f = 0; f < nf; f++) {
                if (!all(acl, user, cid, filters[f]))
                    continue;
                all_true++;
                for (size_t t = 0; t < nt; t++) {
                    const char *tp = topics[t], *fl = filters[f];
                    if (mqtt_topic_matches(u8(fl), strlen(fl), u8(tp), strlen(tp)) &&
                        !ref_check(rules, n, user, cid, 1, tp))
                        fail_msg("file:\n%suser \"%s\" client \"%s\": reads_all(%s) but not %s",
                                 text, user, cid, fl, tp);
                }
            }
        }
        mqtt_acl_free(acl);
    }
    assert_true(allowed > 1000 && denied > 1000 && all_true > 1000); /* not vacuous */
}

/* Soundness of the overlap test: when it says no, no topic matches both; on topics it is
 * exactly matching. */
static void test_overlap_never_misses_a_common_topic(void **state)
{
    (void)state;
    static char filters[UNIVERSE_MAX][16], topics[UNIVERSE_MAX][16];
    size_t nf = build_filters(filters, UNIVERSE_MAX, false);
    size_t nt = build_filters(topics, UNIVERSE_MAX, true);
    size_t disjoint = 0;
    for (size_t i = 0; i < nf; i++) {
        const char *a = filters[i];
        for (size_t j = 0; j < nf; j++) {
            const char *b = filters[j];
            bool o = mqtt_acl_filters_overlap(u8(a), strlen(a), u8(b), strlen(b));
            assert_int_equal(o, mqtt_acl_filters_overlap(u8(b), strlen(b), u8(a), strlen(a)));
            if (o)
                continue;
            disjoint++;
            for (size_t t = 0; t < nt; t++) {
                const char *tp = topics[t];
                if (mqtt_topic_matches(u8(a), strlen(a), u8(tp), strlen(tp)) &&
                    mqtt_topic_matches(u8(b), strlen(b), u8(tp), strlen(tp)))
                    fail_msg("%s and %s both match %s", a, b, tp);
            }
        }
        for (size_t t = 0; t < nt; t++) {
            const char *tp = topics[t];
            if (mqtt_acl_filters_overlap(u8(a), strlen(a), u8(tp), strlen(tp)) !=
                mqtt_topic_matches(u8(a), strlen(a), u8(tp), strlen(tp)))
                fail_msg("overlap(%s, topic %s) differs from matches", a, tp);
        }
    }
    assert_true(disjoint > nf); /* not vacuous */
}

static void test_load_reports_missing_file_and_reads_a_real_one(void **state)
{
    (void)state;
    struct mqtt_acl *acl = NULL;
    char err[512] = "";
    assert_int_equal(mqtt_acl_load("/nonexistent/acl", &acl, err, sizeof(err)), LMQ_EIO);
    assert_non_null(strstr(err, "/nonexistent/acl: cannot read"));
    char path[] = "/tmp/test_mqtt_acl_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "user u\ntopic read x\nbogus\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    assert_int_equal(mqtt_acl_load(path, &acl, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "line 3"));
    assert_non_null(strstr(err, path));
    assert_int_equal(truncate(path, 20), 0);
    assert_int_equal(mqtt_acl_load(path, &acl, err, sizeof(err)), LMQ_OK);
    assert_true(rd(acl, "u", "c", "x"));
    mqtt_acl_free(acl);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_words_comments_and_whitespace),
        cmocka_unit_test(test_user_sections_apply_to_their_user_only_and_merge),
        cmocka_unit_test(test_deny_order_is_mosquittos),
        cmocka_unit_test(test_patterns_apply_to_everyone_with_substitution),
        cmocka_unit_test(test_dollar_topics),
        cmocka_unit_test(test_pattern_literal_percent_in_topic_rule),
        cmocka_unit_test(test_reads_all_table),
        cmocka_unit_test(test_bad_lines_name_the_line),
        cmocka_unit_test(test_overlong_line_is_refused),
        cmocka_unit_test(test_covering_table),
        cmocka_unit_test(test_covering_never_allows_more_than_the_acl_filter),
        cmocka_unit_test(test_checks_equal_a_model_of_mosquittos_on_random_files),
        cmocka_unit_test(test_overlap_never_misses_a_common_topic),
        cmocka_unit_test(test_load_reports_missing_file_and_reads_a_real_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
