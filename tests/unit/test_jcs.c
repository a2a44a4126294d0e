/* RFC 8785 canonical JSON: the RFC's own examples, escaping, UTF-16 member order, I-JSON
 * rejections, bounds, and a bitwise round trip of random doubles. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "crypto/jcs.h"

#define TEST_OUT_MAX_BYTES (1024u * 1024u)
#define TEST_RANDOM_DOUBLES 100000

/* Canonicalizes text; returns the result code, the output (NUL-terminated) in *out. */
static int canon(const char *text, struct lmq_buf *out)
{
    out->len = 0;
    int rc = crypto_jcs_canonicalize((const uint8_t *)text, strlen(text), out, TEST_OUT_MAX_BYTES);
    if (rc == LMQ_OK) {
        assert_int_equal(lmq_buf_append(out, "", 1, TEST_OUT_MAX_BYTES + 1), LMQ_OK);
        out->len--;
    }
    return rc;
}

static void assert_canon(const char *text, const char *expected)
{
    struct lmq_buf out = {0};
    assert_int_equal(canon(text, &out), LMQ_OK);
    assert_int_equal(out.len, strlen(expected));
    assert_memory_equal(out.data, expected, out.len);
    lmq_buf_release(&out);
}

static void assert_refused(const char *text, size_t len, int expected_rc)
{
    struct lmq_buf out = {0};
    assert_int_equal(crypto_jcs_canonicalize((const uint8_t *)text, len, &out, TEST_OUT_MAX_BYTES),
                     expected_rc);
    assert_int_equal(out.len, 0);
    lmq_buf_release(&out);
}

static double from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static void test_rfc8785_sample_3_2_2(void **state)
{
    (void)state;
    const char *in = "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50,\n"
                     "              2e-3, 0.000000000000000000000000001],\n"
                     "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
                     "  \"literals\": [null, true, false]\n}";
    const char *want = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,"
                       "0.002,1e-27],\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
    assert_canon(in, want);
}

static const struct {
    uint64_t bits;
    const char *text;
} number_table[] = {
    /* RFC 8785 Appendix B (NaN and Infinity rows are in test_number_non_finite_refused). */
    {0x0000000000000000, "0"},
    {0x8000000000000000, "0"},
    {0x0000000000000001, "5e-324"},
    {0x8000000000000001, "-5e-324"},
    {0x7fefffffffffffff, "1.7976931348623157e+308"},
    {0xffefffffffffffff, "-1.7976931348623157e+308"},
    {0x4340000000000000, "9007199254740992"},
    {0xc340000000000000, "-9007199254740992"},
    {0x4430000000000000, "295147905179352830000"},
    {0x44b52d02c7e14af5, "9.999999999999997e+22"},
    {0x44b52d02c7e14af6, "1e+23"},
    {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
    {0x444b1ae4d6e2ef4e, "999999999999999700000"},
    {0x444b1ae4d6e2ef4f, "999999999999999900000"},
    {0x444b1ae4d6e2ef50, "1e+21"},
    {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
    {0x3eb0c6f7a0b5ed8d, "0.000001"},
    {0x41b3de4355555553, "333333333.3333332"},
    {0x41b3de4355555554, "333333333.33333325"},
    {0x41b3de4355555555, "333333333.3333333"},
    {0x41b3de4355555556, "333333333.3333334"},
    {0x41b3de4355555557, "333333333.33333343"},
    {0xbecbf647612f3696, "-0.0000033333333333333333"},
    {0x43143ff3c1cb0959, "1424953923781206.2"},
    /* Layout edges of ECMAScript Number::toString. */
    {0x4340000000000001, "9007199254740994"},
    {0x3ff0000000000000, "1"},
    {0x3fb999999999999a, "0.1"},
    {0x3e7ad7f29abcaf48, "1e-7"},
    {0x0010000000000000, "2.2250738585072014e-308"},
    {0x4415af1d78b58c40, "100000000000000000000"},
    {0xc000000000000000, "-2"},
    /* Powers of two whose nearest 16-digit decimal falls outside the (lopsided) interval that
     * reads back, while its upper neighbour is inside: the shortest form needs that neighbour. */
    {0x0060000000000000, "7.120236347223045e-307"},
    {0x0100000000000000, "7.291122019556398e-304"},
    {0x4580000000000000, "6.189700196426902e+26"},
    {0xc790000000000000, "-5.316911983139664e+36"},
    {0x7cf0000000000000, "6.386688990511104e+293"},
};

static void test_rfc8785_appendix_b_numbers(void **state)
{
    (void)state;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(number_table); i++) {
        char text[CRYPTO_JCS_NUMBER_MAX_BYTES];
        size_t len = 0;
        assert_int_equal(crypto_jcs_format_number(from_bits(number_table[i].bits), text, &len),
                         LMQ_OK);
        if (strcmp(text, number_table[i].text) != 0)
            fail_msg("%016llx: got %s, want %s", (unsigned long long)number_table[i].bits, text,
                     number_table[i].text);
        assert_int_equal(len, strlen(number_table[i].text));
    }
}

static void test_number_non_finite_refused(void **state)
{
    (void)state;
    char text[CRYPTO_JCS_NUMBER_MAX_BYTES];
    size_t len = 99;
    assert_int_equal(crypto_jcs_format_number(from_bits(0x7fffffffffffffff), text, &len),
                     LMQ_EINVAL);
    assert_int_equal(crypto_jcs_format_number(from_bits(0x7ff0000000000000), text, &len),
                     LMQ_EINVAL);
    assert_int_equal(crypto_jcs_format_number(-INFINITY, text, &len), LMQ_EINVAL);
    assert_int_equal(len, 0);
    json_t *nan = json_real(0.0);
    assert_non_null(nan);
    /* jansson refuses to store NaN, so an infinite value cannot get in through json_real. */
    assert_int_equal(json_real_set(nan, NAN), -1);
    json_decref(nan);
    assert_refused("1e400", 5, LMQ_EPROTO);
}

static void test_rfc8785_utf16_member_order(void **state)
{
    (void)state;
    const char *in = "{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\","
                     "\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\","
                     "\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\","
                     "\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}";
    const char *want =
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
        "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
        "\"\xe2\x82\xac\":\"Euro Sign\",\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
        "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}";
    assert_canon(in, want);
}

static void test_astral_sorts_before_private_use_unlike_utf8(void **state)
{
    (void)state;
    /* UTF-8 bytes would put U+E000 (ee 80 80) before U+1F600 (f0 9f 98 80); UTF-16 units put
     * the surrogate 0xD83D before 0xE000. */
    assert_canon("{\"\\ue000\":1,\"\\ud83d\\ude00\":2}",
                 "{\"\xf0\x9f\x98\x80\":2,\"\xee\x80\x80\":1}");
    /* Same lead surrogate: the trail decides. Prefix sorts first. */
    assert_canon("{\"\\ud83d\\ude01\":1,\"\\ud83d\\ude00\":2,\"\":3,\"a\":4,\"ab\":5,\"B\":6}",
                 "{\"\":3,\"B\":6,\"a\":4,\"ab\":5,\"\xf0\x9f\x98\x80\":2,\"\xf0\x9f\x98\x81\":1}");
}

static void test_string_escaping(void **state)
{
    (void)state;
    assert_canon("\"\\b\\t\\n\\f\\r\\\"\\\\\\/\"", "\"\\b\\t\\n\\f\\r\\\"\\\\/\"");
    assert_canon("\"\\u0000\\u0001\\u001F\\u007f\\u00e9\"",
                 "\"\\u0000\\u0001\\u001f\x7f\xc3\xa9\"");
    assert_canon("\"\\u2028\\uD834\\uDD1E\"", "\"\xe2\x80\xa8\xf0\x9d\x84\x9e\"");
    assert_canon(" [ 1 , \"x\" , { } , [ ] ] ", "[1,\"x\",{},[]]");
    assert_canon("-0", "0");
    assert_canon("1.0E+2", "100");
}

static void test_ijson_violations_refused(void **state)
{
    (void)state;
    assert_refused("{\"a\":1,\"a\":2}", 13, LMQ_EPROTO);
    assert_refused("{\"a\":{\"b\":1,\"b\":1}}", 19, LMQ_EPROTO);
    assert_refused("\"\\ud800\"", 8, LMQ_EPROTO);         /* lone high surrogate */
    assert_refused("\"\\udc00\"", 8, LMQ_EPROTO);         /* lone low surrogate */
    assert_refused("\"\\ud800\\u0041\"", 14, LMQ_EPROTO); /* high then not a low */
    assert_refused("\"\xff\"", 3, LMQ_EPROTO);
    assert_refused("\"\xc0\xaf\"", 4, LMQ_EPROTO);         /* overlong '/' */
    assert_refused("\"\xed\xa0\x80\"", 5, LMQ_EPROTO);     /* encoded surrogate */
    assert_refused("\"\xf4\x90\x80\x80\"", 6, LMQ_EPROTO); /* above U+10FFFF */
    assert_refused("\"\xe2\x82\"", 4, LMQ_EPROTO);         /* truncated */
    assert_refused("[1,]", 4, LMQ_EPROTO);
    assert_refused("NaN", 3, LMQ_EPROTO);
    assert_refused("", 0, LMQ_EPROTO);
    assert_refused("1 2", 3, LMQ_EPROTO);
    assert_refused("{\"a\\u0000\":1}", 13, LMQ_EPROTO); /* NUL in a name: documented limit */
}

static void test_depth_bomb_refused(void **state)
{
    (void)state;
    char text[2 * 100000 + 1];
    for (size_t depth = CRYPTO_JCS_DEPTH_MAX; depth <= CRYPTO_JCS_DEPTH_MAX + 1; depth++) {
        memset(text, '[', depth);
        memset(text + depth, ']', depth);
        struct lmq_buf out = {0};
        int rc =
            crypto_jcs_canonicalize((const uint8_t *)text, 2 * depth, &out, TEST_OUT_MAX_BYTES);
        assert_int_equal(rc, depth == CRYPTO_JCS_DEPTH_MAX ? LMQ_OK : LMQ_ELIMIT);
        lmq_buf_release(&out);
    }
    memset(text, '[', 100000);
    memset(text + 100000, ']', 100000);
    assert_refused(text, 200000, LMQ_ELIMIT);
    /* Brackets inside strings are not nesting. */
    char deep_string[CRYPTO_JCS_DEPTH_MAX * 2 + 3];
    deep_string[0] = '"';
    memset(deep_string + 1, '[', CRYPTO_JCS_DEPTH_MAX * 2);
    deep_string[CRYPTO_JCS_DEPTH_MAX * 2 + 1] = '"';
    deep_string[CRYPTO_JCS_DEPTH_MAX * 2 + 2] = '\0';
    assert_canon(deep_string, deep_string);
}

static void test_json_value_depth_and_integers(void **state)
{
    (void)state;
    json_t *root = json_array();
    json_t *cur = root;
    for (int i = 1; i < CRYPTO_JCS_DEPTH_MAX + 1; i++) {
        json_t *next = json_array();
        assert_int_equal(json_array_append_new(cur, next), 0);
        cur = next;
    }
    struct lmq_buf out = {0};
    assert_int_equal(crypto_jcs_canonicalize_json(root, &out, TEST_OUT_MAX_BYTES), LMQ_ELIMIT);
    assert_int_equal(out.len, 0);
    json_decref(root);

    json_t *obj = json_pack("{s:I,s:I}", "max", (json_int_t)CRYPTO_JCS_EXACT_INT_MAX, "neg",
                            (json_int_t)-CRYPTO_JCS_EXACT_INT_MAX);
    assert_int_equal(crypto_jcs_canonicalize_json(obj, &out, TEST_OUT_MAX_BYTES), LMQ_OK);
    assert_int_equal(out.len, strlen("{\"max\":9007199254740992,\"neg\":-9007199254740992}"));
    assert_memory_equal(out.data, "{\"max\":9007199254740992,\"neg\":-9007199254740992}", out.len);
    json_decref(obj);
    out.len = 0;
    json_t *big = json_integer(CRYPTO_JCS_EXACT_INT_MAX + 1);
    assert_int_equal(crypto_jcs_canonicalize_json(big, &out, TEST_OUT_MAX_BYTES), LMQ_EINVAL);
    json_decref(big);
    lmq_buf_release(&out);
}

static void test_output_bound_and_append(void **state)
{
    (void)state;
    const char *text = "{\"b\":[1,2,3],\"a\":\"xyz\"}";
    const char *want = "{\"a\":\"xyz\",\"b\":[1,2,3]}";
    size_t want_len = strlen(want);
    struct lmq_buf out = {0};
    assert_int_equal(lmq_buf_append(&out, "P", 1, 1), LMQ_OK);
    assert_int_equal(crypto_jcs_canonicalize((const uint8_t *)text, strlen(text), &out, want_len),
                     LMQ_ETOOBIG);
    assert_int_equal(out.len, 1); /* unchanged on failure */
    assert_int_equal(
        crypto_jcs_canonicalize((const uint8_t *)text, strlen(text), &out, want_len + 1), LMQ_OK);
    assert_int_equal(out.len, want_len + 1);
    assert_memory_equal(out.data + 1, want, want_len);
    lmq_buf_release(&out);
}

/* xorshift64*: fixed seed, so a failure names a reproducible value. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void test_random_doubles_round_trip_bitwise(void **state)
{
    (void)state;
    uint64_t seed = 0x1ed9e4a11ce5eedULL;
    for (int i = 0; i < TEST_RANDOM_DOUBLES; i++) {
        uint64_t bits = next_random(&seed);
        if (i % 4 == 0)
            bits &= 0xfff0000000000000ULL | (next_random(&seed) & 0xf); /* near powers of two */
        double d = from_bits(bits);
        if (!isfinite(d))
            continue;
        char text[CRYPTO_JCS_NUMBER_MAX_BYTES];
        size_t len = 0;
        assert_int_equal(crypto_jcs_format_number(d, text, &len), LMQ_OK);
        assert_int_equal(len, strlen(text));
        json_t *back = NULL;
        assert_int_equal(crypto_jcs_parse((const uint8_t *)text, len, &back), LMQ_OK);
        double r = json_real_value(back);
        json_decref(back);
        uint64_t rbits;
        memcpy(&rbits, &r, sizeof(r));
        if (d == 0)
            rbits &= ~0x8000000000000000ULL, bits &= ~0x8000000000000000ULL; /* -0 prints "0" */
        if (rbits != bits)
            fail_msg("%016llx -> %s -> %016llx", (unsigned long long)bits, text,
                     (unsigned long long)rbits);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8785_sample_3_2_2),
        cmocka_unit_test(test_rfc8785_appendix_b_numbers),
        cmocka_unit_test(test_number_non_finite_refused),
        cmocka_unit_test(test_rfc8785_utf16_member_order),
        cmocka_unit_test(test_astral_sorts_before_private_use_unlike_utf8),
        cmocka_unit_test(test_string_escaping),
        cmocka_unit_test(test_ijson_violations_refused),
        cmocka_unit_test(test_depth_bomb_refused),
        cmocka_unit_test(test_json_value_depth_and_integers),
        cmocka_unit_test(test_output_bound_and_append),
        cmocka_unit_test(test_random_doubles_round_trip_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
