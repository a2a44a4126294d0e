/* Unit tests for src/mqtt/mqtt_acl.c: ACL file syntax, sections, patterns, covering filters. */
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

static bool sub(const struct mqtt_acl *acl, const char *user, const char *cid, const char *filter)
{
    struct mqtt_acl_client w = who(user, cid);
    return mqtt_acl_may_subscribe(acl, &w, u8(filter), strlen(filter));
}

static void test_global_rules_apply_to_every_user_and_access_is_respected(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("# comment\n"
                                    "\n"
                                    "topic read public/#\n"
                                    "topic write inbox/+\r\n"
                                    "  topic   readwrite   both/x  \n"
                                    "topic bare/one\n");
    assert_int_equal(mqtt_acl_rule_count(acl), 4);
    assert_true(sub(acl, "alice", "c1", "public/#"));
    assert_true(sub(acl, "bob", "c2", "public/news"));
    assert_false(pub(acl, "alice", "c1", "public/news")); /* read only */
    assert_true(pub(acl, "alice", "c1", "inbox/x"));
    assert_false(sub(acl, "alice", "c1", "inbox/x")); /* write only */
    assert_false(pub(acl, "alice", "c1", "inbox/x/y"));
    assert_true(pub(acl, "alice", "c1", "both/x"));
    assert_true(sub(acl, "alice", "c1", "both/x"));
    assert_true(pub(acl, "alice", "c1", "bare/one")); /* no access word: readwrite */
    assert_true(sub(acl, "alice", "c1", "bare/one"));
    assert_false(pub(acl, "alice", "c1", "other"));
    /* No user name: no rule applies. */
    assert_false(sub(acl, "", "c1", "public/news"));
    mqtt_acl_free(acl);
}

static void test_user_sections_apply_to_their_user_only(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("topic read all/#\n"
                                    "user alice\n"
                                    "topic readwrite alice/#\n"
                                    "user bob smith\n"
                                    "topic write bob/out\n");
    assert_true(pub(acl, "alice", "c", "alice/x"));
    assert_false(pub(acl, "bob smith", "c", "alice/x"));
    assert_true(pub(acl, "bob smith", "c", "bob/out"));
    assert_false(pub(acl, "alice", "c", "bob/out"));
    assert_false(pub(acl, "bob", "c", "bob/out")); /* the section's name is the whole rest */
    assert_true(sub(acl, "alice", "c", "all/x"));  /* global lines still apply */
    assert_true(sub(acl, "bob smith", "c", "all/x"));
    assert_false(pub(acl, "alicex", "c", "alice/x"));
    mqtt_acl_free(acl);
}

static void test_patterns_substitute_user_and_client_id(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("pattern readwrite users/%u/#\n"
                                    "pattern write clients/%c\n"
                                    "user carol\n"
                                    "pattern read only-carol/%u\n");
    assert_true(pub(acl, "alice", "c1", "users/alice/x"));
    assert_true(sub(acl, "alice", "c1", "users/alice/#"));
    assert_true(sub(acl, "alice", "c1", "users/alice"));
    assert_false(pub(acl, "alice", "c1", "users/bob/x"));
    assert_false(sub(acl, "alice", "c1", "users/+/x"));
    assert_true(pub(acl, "alice", "c1", "clients/c1"));
    assert_false(pub(acl, "alice", "c1", "clients/c2"));
    assert_true(sub(acl, "carol", "c", "only-carol/carol"));
    assert_false(sub(acl, "alice", "c", "only-carol/alice"));
    /* A value that is not one plain level never substitutes. */
    assert_false(pub(acl, "a/b", "c1", "users/a/b/x"));
    assert_false(pub(acl, "#", "c1", "users/#/x"));
    assert_false(pub(acl, "+", "c1", "users/+/x"));
    assert_false(pub(acl, "alice", "c/1", "clients/c/1"));
    assert_true(pub(acl, "alice", "c/1", "users/alice/x")); /* %u only: the client id is moot */
    assert_false(pub(acl, "alice", "", "clients/"));
    mqtt_acl_free(acl);
}

static void test_pattern_literal_percent_in_topic_rule(void **state)
{
    (void)state;
    struct mqtt_acl *acl = parse_ok("topic read literal/%u\n");
    assert_true(sub(acl, "alice", "c", "literal/%u"));
    assert_false(sub(acl, "alice", "c", "literal/alice"));
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
        {"\ntopic deny a\n", "deny rules are not supported"},
        {"topic read a/#/b\n", "line 1: expected a topic filter"},
        {"topic read $share/g/a\n", "not shared"},
        {"frobnicate a\n", "unknown keyword"},
        {"user\n", "expected user <name>"},
        {"pattern read a/x%u\n", "whole topic level"},
        {"topic read id/+/inbox\n", "fixed permissions"},
        {"topic sometimes a b\n", "expected read, write or readwrite"},
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
    assert_true(sub(acl, "u", "c", "x"));
    mqtt_acl_free(acl);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_global_rules_apply_to_every_user_and_access_is_respected),
        cmocka_unit_test(test_user_sections_apply_to_their_user_only),
        cmocka_unit_test(test_patterns_substitute_user_and_client_id),
        cmocka_unit_test(test_pattern_literal_percent_in_topic_rule),
        cmocka_unit_test(test_bad_lines_name_the_line),
        cmocka_unit_test(test_overlong_line_is_refused),
        cmocka_unit_test(test_covering_table),
        cmocka_unit_test(test_covering_never_allows_more_than_the_acl_filter),
        cmocka_unit_test(test_load_reports_missing_file_and_reads_a_real_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
