/* Unit tests for src/mqtt/mqtt_topic.c: UTF-8 rules, name/filter validity, $share split, matching.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/lmq.h"
#include "mqtt/mqtt_topic.h"

/* A string literal with its length (sizeof - 1), so embedded NULs count. */
struct bytes_case {
    const char *s;
    size_t len;
    bool ok;
};
#define CASE(lit, ok)                                                                              \
    {                                                                                              \
        lit, sizeof(lit) - 1, ok                                                                   \
    }

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

static void check_table(const struct bytes_case *cases, size_t n,
                        bool (*fn)(const uint8_t *, size_t), const char *what)
{
    for (size_t i = 0; i < n; i++) {
        bool got = fn(u8(cases[i].s), cases[i].len);
        if (got != cases[i].ok) {
            print_error("%s: case %zu (len %zu) expected %d got %d\n", what, i, cases[i].len,
                        cases[i].ok, got);
        }
        assert_int_equal(got, cases[i].ok);
    }
}

static void test_utf8_accepts_well_formed_and_edges(void **state)
{
    (void)state;
    static const struct bytes_case cases[] = {
        CASE("", true),
        CASE("plain ascii/topic", true),
        CASE("\x7F", true),              /* DEL is discouraged, not forbidden */
        CASE("\xC2\x80", true),          /* U+0080, smallest 2-byte */
        CASE("\xC3\xA9t\xC3\xA9", true), /* été */
        CASE("\xDF\xBF", true),          /* U+07FF */
        CASE("\xE0\xA0\x80", true),      /* U+0800, smallest 3-byte */
        CASE("\xE2\x82\xAC", true),      /* euro sign */
        CASE("\xED\x9F\xBF", true),      /* U+D7FF, just below the surrogates */
        CASE("\xEE\x80\x80", true),      /* U+E000, just above them */
        CASE("\xEF\xBF\xBF", true),      /* U+FFFF noncharacter: allowed */
        CASE("\xF0\x90\x80\x80", true),  /* U+10000, smallest 4-byte */
        CASE("\xF0\x9F\x98\x80", true),  /* emoji */
        CASE("\xF4\x8F\xBF\xBF", true),  /* U+10FFFF, the largest code point */
    };
    check_table(cases, LMQ_ARRAY_LEN(cases), mqtt_utf8_valid, "utf8 ok");
}

static void test_utf8_rejects_overlong_surrogate_nul_and_truncation(void **state)
{
    (void)state;
    static const struct bytes_case cases[] = {
        CASE("\x00", false),             /* U+0000 */
        CASE("a\x00z", false),           /* NUL inside */
        CASE("\xC0\x80", false),         /* overlong NUL */
        CASE("\xC1\xBF", false),         /* overlong 2-byte */
        CASE("\xE0\x80\x80", false),     /* overlong 3-byte */
        CASE("\xE0\x9F\xBF", false),     /* overlong U+07FF */
        CASE("\xF0\x8F\xBF\xBF", false), /* overlong U+FFFF */
        CASE("\xED\xA0\x80", false),     /* U+D800 surrogate */
        CASE("\xED\xBF\xBF", false),     /* U+DFFF surrogate */
        CASE("\xF4\x90\x80\x80", false), /* U+110000 */
        CASE("\xF5\x80\x80\x80", false), /* lead byte beyond range */
        CASE("\xFF", false),
        CASE("\xFE", false),
        CASE("\x80", false), /* lone continuation */
        CASE("a\xBF", false),
        CASE("\xC3", false),         /* truncated 2-byte */
        CASE("\xE2\x82", false),     /* truncated 3-byte */
        CASE("\xF0\x9F\x98", false), /* truncated 4-byte */
        CASE("\xC3\x28", false),     /* bad continuation */
        CASE("\xE2\x28\xA1", false),
        CASE("\xF0\x9F\x28\x80", false),
    };
    check_table(cases, LMQ_ARRAY_LEN(cases), mqtt_utf8_valid, "utf8 bad");
}

static void test_utf8_null_pointer_with_zero_length_is_valid(void **state)
{
    (void)state;
    assert_true(mqtt_utf8_valid(NULL, 0));
}

static void test_topic_name_validity_table(void **state)
{
    (void)state;
    static const struct bytes_case cases[] = {
        CASE("a", true),           CASE("a/b/c", true),  CASE("/", true),    CASE("//", true),
        CASE("$SYS/broker", true), CASE("a b", true),    CASE("", false),    CASE("+", false),
        CASE("#", false),          CASE("a/+/b", false), CASE("a/#", false), CASE("a+b", false),
        CASE("$share/g/t", true), /* a name: "$share" is only special in filters */
    };
    check_table(cases, LMQ_ARRAY_LEN(cases), mqtt_topic_name_valid, "name");
}

static void test_topic_name_length_limits(void **state)
{
    (void)state;
    static uint8_t big[65536];
    memset(big, 'a', sizeof(big));
    assert_true(mqtt_topic_name_valid(big, 65535));
    assert_false(mqtt_topic_name_valid(big, 65536));
    assert_true(mqtt_topic_filter_valid(big, 65535));
    assert_false(mqtt_topic_filter_valid(big, 65536));
}

static void test_topic_filter_validity_table(void **state)
{
    (void)state;
    static const struct bytes_case cases[] = {
        CASE("a", true),
        CASE("a/b", true),
        CASE("+", true),
        CASE("#", true),
        CASE("+/+", true),
        CASE("a/+/c", true),
        CASE("a/#", true),
        CASE("+/#", true),
        CASE("/+", true),
        CASE("/#", true),
        CASE("a//b", true),
        CASE("$SYS/#", true),
        CASE("$share", true), /* no slash: an ordinary filter */
        CASE("$shared/x", true),
        CASE("$share/g/a/b", true),
        CASE("$share/g/#", true),
        CASE("$share/g/+/x", true),
        CASE("$share/g//", true), /* filter "/" is valid */
        CASE("", false),
        CASE("a+", false),
        CASE("+a", false),
        CASE("a/b+/c", false),
        CASE("a#", false),
        CASE("#/a", false),
        CASE("a/#/b", false),
        CASE("##", false),
        CASE("a/##", false),
        CASE("++", false),
        CASE("$share/", false),       /* empty group, no filter */
        CASE("$share/group", false),  /* nothing after the group */
        CASE("$share/group/", false), /* empty filter */
        CASE("$share//a", false),     /* empty group */
        CASE("$share/g+/a", false),   /* wildcard in group */
        CASE("$share/+/a", false),
        CASE("$share/#/a", false),
        CASE("$share/g/a/#/b", false), /* bad filter after the group */
        CASE("$share/g/a+", false),
    };
    check_table(cases, LMQ_ARRAY_LEN(cases), mqtt_topic_filter_valid, "filter");
}

static void test_shared_split_returns_group_and_rest(void **state)
{
    (void)state;
    const uint8_t *group = NULL, *rest = NULL;
    size_t group_len = 0, rest_len = 0;
    const char *f = "$share/workers/jobs/+/run";

    assert_true(mqtt_topic_shared_split(u8(f), strlen(f), &group, &group_len, &rest, &rest_len));
    assert_int_equal(group_len, 7);
    assert_memory_equal(group, "workers", 7);
    assert_int_equal(rest_len, strlen("jobs/+/run"));
    assert_memory_equal(rest, "jobs/+/run", rest_len);

    /* Does not validate: an empty group still splits. */
    f = "$share//x";
    assert_true(mqtt_topic_shared_split(u8(f), strlen(f), &group, &group_len, &rest, &rest_len));
    assert_int_equal(group_len, 0);
    assert_int_equal(rest_len, 1);
}

static void test_shared_split_refuses_non_shared_and_leaves_outputs(void **state)
{
    (void)state;
    const uint8_t sentinel[1] = {0};
    const uint8_t *group = sentinel, *rest = sentinel;
    size_t group_len = 99, rest_len = 99;
    const char *cases[] = {"a/b", "$share", "$share/group", "$SHARE/g/a", "$shar/g/a", ""};

    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        assert_false(mqtt_topic_shared_split(u8(cases[i]), strlen(cases[i]), &group, &group_len,
                                             &rest, &rest_len));
        assert_ptr_equal(group, sentinel);
        assert_ptr_equal(rest, sentinel);
        assert_int_equal(group_len, 99);
        assert_int_equal(rest_len, 99);
    }
}

struct match_case {
    const char *filter;
    const char *topic;
    bool match;
};

static void test_topic_matching_table(void **state)
{
    (void)state;
    static const struct match_case cases[] = {
        {"a/b", "a/b", true},
        {"a/b", "a/c", false},
        {"a/b", "a/b/c", false},
        {"a/b/c", "a/b", false},
        {"a/b", "A/b", false},
        {"#", "a", true},
        {"#", "a/b/c", true},
        {"#", "/", true},
        {"a/#", "a", true}, /* '#' includes the parent level */
        {"a/#", "a/", true},
        {"a/#", "a/b", true},
        {"a/#", "a/b/c", true},
        {"a/#", "b", false},
        {"a/#", "ab", false},
        {"+", "a", true},
        {"+", "a/b", false},
        {"+", "/", false},
        {"+/+", "/", true}, /* '+' matches an empty level */
        {"+/x", "/x", true},
        {"/+", "/", true},
        {"a/+", "a/", true},
        {"a/+", "a", false},
        {"a/+/c", "a/b/c", true},
        {"a/+/c", "a/b/d", false},
        {"a/+/#", "a/b", true},
        {"+/#", "a", true},
        {"a//b", "a//b", true},
        {"/", "/", true}, /* found by fuzzing: two empty levels from one byte */
        {"//", "//", true},
        {"a/", "a/", true},
        {"/", "a", false},
        {"a//b", "a/b", false},
        /* '$' topics: first-level wildcards do not match them [MQTT-4.7.2-1] */
        {"#", "$SYS/x", false},
        {"+/x", "$SYS/x", false},
        {"+", "$SYS", false},
        {"+/#", "$SYS/x", false},
        {"$SYS/#", "$SYS/x", true},
        {"$SYS/#", "$SYS", true},
        {"$SYS/+", "$SYS/broker", true},
        {"$SYS/x", "$SYS/x", true},
        {"a/$x", "a/$x", true},
        {"a/+", "a/$x", true}, /* only the first level is special */
    };

    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        const struct match_case *c = &cases[i];
        bool got =
            mqtt_topic_matches(u8(c->filter), strlen(c->filter), u8(c->topic), strlen(c->topic));
        if (got != c->match) {
            print_error("filter '%s' topic '%s': expected %d\n", c->filter, c->topic, c->match);
        }
        assert_int_equal(got, c->match);
    }
}

static void test_topic_matching_refuses_empty_inputs(void **state)
{
    (void)state;
    assert_false(mqtt_topic_matches(u8("#"), 1, u8(""), 0));
    assert_false(mqtt_topic_matches(u8(""), 0, u8("a"), 1));
    assert_false(mqtt_topic_matches(NULL, 0, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_accepts_well_formed_and_edges),
        cmocka_unit_test(test_utf8_rejects_overlong_surrogate_nul_and_truncation),
        cmocka_unit_test(test_utf8_null_pointer_with_zero_length_is_valid),
        cmocka_unit_test(test_topic_name_validity_table),
        cmocka_unit_test(test_topic_name_length_limits),
        cmocka_unit_test(test_topic_filter_validity_table),
        cmocka_unit_test(test_shared_split_returns_group_and_rest),
        cmocka_unit_test(test_shared_split_refuses_non_shared_and_leaves_outputs),
        cmocka_unit_test(test_topic_matching_table),
        cmocka_unit_test(test_topic_matching_refuses_empty_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
