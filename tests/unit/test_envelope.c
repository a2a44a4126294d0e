/* Signed envelopes: build/open round trip, every refusal reason, signature coverage of each
 * field, and canonicalization (member order, whitespace, escapes do not change the link). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/keyfile.h"
#include "ledger/envelope.h"

#define TEST_TIME "2026-11-25T03:04:05.123456789Z"
#define TEST_TIME_S 1795575845
#define TEST_BODY "{\"text\":\"hi\",\"n\":[1,2.5,1e21],\"u\":\"\\u00e9\\ud83d\\ude00\"}"
#define TEST_OUT_MAX_BYTES (2u * LEDGER_ENVELOPE_MAX_BYTES)

static const char *seed1_hex = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char *seed2_hex = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

struct fixture {
    struct crypto_identity alice;
    struct crypto_identity bob;
};

static void identity(const char *hex, struct crypto_identity *out)
{
    size_t n = 0;
    assert_int_equal(crypto_hex_decode(hex, 64, out->seed, 32, &n), LMQ_OK);
    assert_int_equal(crypto_identity_from_seed(out->seed, out), LMQ_OK);
}

/* Builds alice -> bob with the given seq/prev, returning NUL-terminated text (caller frees). */
static char *build(const struct fixture *f, uint64_t seq, const char *prev, const char *body_text)
{
    json_t *body = json_loads(body_text, 0, NULL);
    assert_non_null(body);
    struct ledger_envelope_draft d = {f->bob.id, seq, prev, TEST_TIME, "chat.message", body};
    struct lmq_buf out = {0};
    const char *reason = "unset";
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_OK);
    assert_null(reason);
    json_decref(body);
    char *text = calloc(1, out.len + 1);
    assert_non_null(text);
    memcpy(text, out.data, out.len);
    lmq_buf_release(&out);
    return text;
}

/* The reason ledger_envelope_open gives for text, or "ok". */
static const char *open_reason(const char *text)
{
    struct ledger_envelope env;
    const char *reason = NULL;
    int rc = ledger_envelope_open((const uint8_t *)text, strlen(text), &env, &reason);
    if (rc == LMQ_OK) {
        assert_null(reason);
        ledger_envelope_release(&env);
        return "ok";
    }
    assert_non_null(reason);
    return reason;
}

/* text with member set to value (jansson-owned, stolen) or deleted when value is NULL. */
static char *mutate(const char *text, const char *member, json_t *value)
{
    json_t *root = json_loads(text, JSON_DECODE_INT_AS_REAL, NULL);
    assert_non_null(root);
    if (value == NULL)
        assert_int_equal(json_object_del(root, member), 0);
    else
        assert_int_equal(json_object_set_new(root, member, value), 0);
    char *out = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    assert_non_null(out);
    json_decref(root);
    return out;
}

static void expect_reason(const char *text, const char *member, json_t *value, const char *want)
{
    char *m = mutate(text, member, value);
    const char *got = open_reason(m);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got %s, want %s: %s", member, got, want, m);
    free(m);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    identity(seed1_hex, &f->alice);
    identity(seed2_hex, &f->bob);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static void test_build_open_round_trip_and_link(void **state)
{
    struct fixture *f = *state;
    char *text = build(f, 1, "", TEST_BODY);
    struct ledger_envelope env;
    const char *reason = NULL;
    assert_int_equal(ledger_envelope_open((const uint8_t *)text, strlen(text), &env, &reason), 0);
    assert_string_equal(env.from, f->alice.id);
    assert_memory_equal(env.key, f->alice.pub, 32);
    assert_string_equal(env.to, f->bob.id);
    assert_int_equal(env.seq, 1);
    assert_string_equal(env.prev, "");
    assert_string_equal(env.time, TEST_TIME);
    assert_int_equal(env.time_s, TEST_TIME_S);
    assert_int_equal(env.time_ns, 123456789);
    assert_string_equal(env.type, "chat.message");
    const char *body = "{\"n\":[1,2.5,1e+21],\"text\":\"hi\",\"u\":\"\xc3\xa9\xf0\x9f\x98\x80\"}";
    assert_int_equal(env.body.len, strlen(body));
    assert_memory_equal(env.body.data, body, env.body.len);
    /* What was built is the canonical form itself. */
    assert_int_equal(env.canonical.len, strlen(text));
    assert_memory_equal(env.canonical.data, text, env.canonical.len);
    /* The link is the SHA-256 of the canonical form with sig, and stable. */
    char link[LEDGER_ENVELOPE_LINK_BYTES], link2[LEDGER_ENVELOPE_LINK_BYTES];
    assert_int_equal(ledger_envelope_link(&env, link), LMQ_OK);
    uint8_t digest[32];
    char hex[65];
    assert_int_equal(crypto_sha256((const uint8_t *)text, strlen(text), digest), LMQ_OK);
    assert_int_equal(crypto_hex_encode(digest, 32, hex, sizeof(hex)), LMQ_OK);
    assert_string_equal(link, hex);
    assert_int_equal(ledger_envelope_link(&env, link2), LMQ_OK);
    assert_string_equal(link, link2);
    /* Ed25519 is deterministic: building again gives the same bytes, so the same link. */
    char *again = build(f, 1, "", TEST_BODY);
    assert_string_equal(again, text);
    /* The next envelope chains to this one. */
    char *next = build(f, 2, link, "{}");
    assert_string_equal(open_reason(next), "ok");
    ledger_envelope_release(&env);
    free(next);
    free(again);
    free(text);
}

static void test_structure_reasons(void **state)
{
    struct fixture *f = *state;
    char *text = build(f, 1, "", TEST_BODY);
    assert_string_equal(open_reason("{"), "bad_json");
    assert_string_equal(open_reason("[]"), "bad_json");
    assert_string_equal(open_reason("{\"a\":1,\"a\":1}"), "bad_json");
    assert_string_equal(open_reason(""), "bad_json");
    char *big = malloc(LEDGER_ENVELOPE_MAX_BYTES + 2);
    assert_non_null(big);
    memset(big, ' ', LEDGER_ENVELOPE_MAX_BYTES + 1);
    big[0] = '{';
    big[LEDGER_ENVELOPE_MAX_BYTES] = '}';
    big[LEDGER_ENVELOPE_MAX_BYTES + 1] = '\0';
    assert_string_equal(open_reason(big), "too_large");
    free(big);
    expect_reason(text, "extra", json_true(), "unknown_field");
    static const char *members[] = {"from", "key",  "to",   "seq", "prev",
                                    "time", "type", "body", "sig"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(members); i++)
        expect_reason(text, members[i], NULL, "missing_field");
    free(text);
}

static void test_sender_reasons(void **state)
{
    struct fixture *f = *state;
    char *text = build(f, 1, "", TEST_BODY);
    char upper[65];
    snprintf(upper, sizeof(upper), "%s", f->alice.id);
    for (size_t i = 0; i < 64; i++)
        upper[i] = (char)(upper[i] >= 'a' ? upper[i] - 32 : upper[i]);
    expect_reason(text, "from", json_string(upper), "bad_from");
    expect_reason(text, "from", json_string("abc"), "bad_from");
    expect_reason(text, "from", json_integer(1), "bad_from");
    expect_reason(text, "from", json_string(f->bob.id), "key_mismatch");
    char key[44];
    assert_int_equal(crypto_b64url_encode(f->bob.pub, 32, key, sizeof(key)), LMQ_OK);
    expect_reason(text, "key", json_string(key), "key_mismatch");
    key[42] = '\0';
    expect_reason(text, "key", json_string(key), "bad_key");
    key[10] = '+';
    key[42] = 'A';
    expect_reason(text, "key", json_string(key), "bad_key");
    free(text);
}

static void test_field_reasons(void **state)
{
    struct fixture *f = *state;
    char *text = build(f, 1, "", TEST_BODY);
    expect_reason(text, "to", json_string("x"), "bad_to");
    expect_reason(text, "to", json_null(), "bad_to");
    static const double bad_seqs[] = {0, -1, 1.5, 9007199254740992.0};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_seqs); i++)
        expect_reason(text, "seq", json_real(bad_seqs[i]), "bad_seq");
    expect_reason(text, "seq", json_string("1"), "bad_seq");
    expect_reason(text, "prev", json_string(f->bob.id), "bad_prev"); /* seq 1 has no prev */
    expect_reason(text, "prev", json_integer(0), "bad_prev");
    char *seq2 = build(f, 2, f->bob.id, "{}");
    expect_reason(seq2, "prev", json_string(""), "bad_prev"); /* seq 2 needs one */
    expect_reason(seq2, "prev", json_string("ABC"), "bad_prev");
    free(seq2);
    static const char *bad_times[] = {
        "2026-11-25T03:04:05.123456789",   "2026-11-25T03:04:05.12345678Z",
        "2026-11-25T03:04:05.1234567890Z", "2026-11-25t03:04:05.123456789Z",
        "2026-13-25T03:04:05.123456789Z",  "2026-00-25T03:04:05.123456789Z",
        "2026-02-29T03:04:05.123456789Z",  "2026-04-31T03:04:05.123456789Z",
        "2026-11-25T24:04:05.123456789Z",  "2026-11-25T03:60:05.123456789Z",
        "2026-11-25T03:04:60.123456789Z",  "2026-11-25T03:04:05.123456789+00:00",
        "1969-12-31T23:59:59.999999999Z",  "2026-11-25 03:04:05.123456789Z",
        "2026-11-25T03:04:05.12345678aZ",  "2026-1a-25T03:04:05.123456789Z",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_times); i++)
        expect_reason(text, "time", json_string(bad_times[i]), "bad_time");
    expect_reason(text, "time", json_string("2024-02-29T23:59:59.999999999Z"), "bad_signature");
    static const char *bad_types[] = {
        "", "a b", "a/b", "\xc3\xa9",
        "12345678901234567890123456789012345678901234567890123456789012345"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_types); i++)
        expect_reason(text, "type", json_string(bad_types[i]), "bad_type");
    expect_reason(text, "type", json_string("A-z_0.9:x"), "bad_signature");
    expect_reason(text, "body", json_array(), "bad_body");
    expect_reason(text, "body", json_string("{}"), "bad_body");
    expect_reason(text, "body", json_null(), "bad_body");
    free(text);
}

static void test_signature_reasons(void **state)
{
    struct fixture *f = *state;
    char *text = build(f, 1, "", TEST_BODY);
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    char sig[90];
    snprintf(sig, sizeof(sig), "%s", json_string_value(json_object_get(root, "sig")));
    json_decref(root);
    assert_int_equal(strlen(sig), 86);
    char s[92];
    snprintf(s, sizeof(s), "%.85s", sig);
    expect_reason(text, "sig", json_string(s), "bad_sig_encoding");
    snprintf(s, sizeof(s), "%s==", sig);
    expect_reason(text, "sig", json_string(s), "bad_sig_encoding");
    snprintf(s, sizeof(s), "%s", sig);
    s[3] = '/';
    expect_reason(text, "sig", json_string(s), "bad_sig_encoding");
    expect_reason(text, "sig", json_integer(5), "bad_sig_encoding");
    snprintf(s, sizeof(s), "%s", sig);
    s[20] = s[20] == 'A' ? 'B' : 'A';
    expect_reason(text, "sig", json_string(s), "bad_signature");
    free(text);
}

/* A one-character change to any signed field, still valid on its own, breaks the signature. */
static void test_one_character_changes_break_signature(void **state)
{
    struct fixture *f = *state;
    char *text = build(f, 2, f->bob.id, TEST_BODY);
    assert_string_equal(open_reason(text), "ok");
    char other[65];
    snprintf(other, sizeof(other), "%s", f->bob.id);
    other[63] = other[63] == '0' ? '1' : '0';
    expect_reason(text, "to", json_string(other), "bad_signature");
    expect_reason(text, "prev", json_string(other), "bad_signature");
    expect_reason(text, "seq", json_real(3), "bad_signature");
    expect_reason(text, "time", json_string("2026-11-25T03:04:05.123456788Z"), "bad_signature");
    expect_reason(text, "type", json_string("chat.messagf"), "bad_signature");
    expect_reason(text, "body", json_loads("{\"text\":\"hj\",\"n\":[1,2.5,1e21]}", 0, NULL),
                  "bad_signature");
    /* The same change made in the raw text, not through a re-serialization. */
    char *raw = strdup(text);
    assert_non_null(raw);
    char *hi = strstr(raw, "\"hi\"");
    assert_non_null(hi);
    hi[2] = 'j';
    assert_string_equal(open_reason(raw), "bad_signature");
    free(raw);
    free(text);
}

/* Reordered members, whitespace and escapes are the same envelope: it verifies, same link. */
static void test_noncanonical_form_verifies_with_same_link(void **state)
{
    struct fixture *f = *state;
    char *text = build(f, 1, "", TEST_BODY);
    json_t *root = json_loads(text, JSON_DECODE_INT_AS_REAL, NULL);
    assert_non_null(root);
    /* Insert the members in reverse order; jansson keeps insertion order when dumping. */
    static const char *order[] = {"type", "to",  "time", "sig", "seq",
                                  "prev", "key", "from", "body"};
    json_t *rev = json_object();
    for (size_t i = 0; i < LMQ_ARRAY_LEN(order); i++)
        assert_int_equal(json_object_set(rev, order[i], json_object_get(root, order[i])), 0);
    char *pretty = json_dumps(rev, JSON_INDENT(3) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17));
    assert_non_null(pretty);
    assert_true(strncmp(pretty, "{\n   \"type\"", 11) == 0);
    assert_non_null(strstr(pretty, "\\u00")); /* escaped, unlike the canonical form */
    struct ledger_envelope a, b;
    const char *reason;
    assert_int_equal(ledger_envelope_open((const uint8_t *)text, strlen(text), &a, &reason), 0);
    assert_int_equal(ledger_envelope_open((const uint8_t *)pretty, strlen(pretty), &b, &reason), 0);
    char la[LEDGER_ENVELOPE_LINK_BYTES], lb[LEDGER_ENVELOPE_LINK_BYTES];
    assert_int_equal(ledger_envelope_link(&a, la), LMQ_OK);
    assert_int_equal(ledger_envelope_link(&b, lb), LMQ_OK);
    assert_string_equal(la, lb);
    assert_int_equal(a.canonical.len, b.canonical.len);
    assert_memory_equal(a.canonical.data, b.canonical.data, a.canonical.len);
    ledger_envelope_release(&a);
    ledger_envelope_release(&b);
    free(pretty);
    json_decref(rev);
    json_decref(root);
    free(text);
}

static void test_build_refuses_invalid_drafts(void **state)
{
    struct fixture *f = *state;
    json_t *body = json_object();
    struct lmq_buf out = {0};
    const char *reason = NULL;
    struct ledger_envelope_draft good = {f->bob.id, 1, "", TEST_TIME, "t", body};
    struct ledger_envelope_draft d = good;
    d.to = "nope";
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_EINVAL);
    assert_string_equal(reason, "bad_to");
    d = good;
    d.seq = LEDGER_ENVELOPE_SEQ_MAX + 1;
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_EINVAL);
    assert_string_equal(reason, "bad_seq");
    d = good;
    d.seq = 2;
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_EINVAL);
    assert_string_equal(reason, "bad_prev");
    d = good;
    d.time = "2026-11-25T03:04:05Z";
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_EINVAL);
    assert_string_equal(reason, "bad_time");
    d = good;
    d.type = NULL;
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_EINVAL);
    assert_string_equal(reason, "bad_type");
    d = good;
    json_t *arr = json_array();
    d.body = arr;
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_EINVAL);
    assert_string_equal(reason, "bad_body");
    json_decref(arr);
    /* A body value JCS cannot carry exactly (integer beyond 2^53). */
    assert_int_equal(json_object_set_new(body, "big", json_integer(INT64_C(1) << 60)), 0);
    d = good;
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_EINVAL);
    assert_string_equal(reason, "bad_body");
    /* Too large once canonical. */
    char *blob = malloc(LEDGER_ENVELOPE_MAX_BYTES);
    assert_non_null(blob);
    memset(blob, 'x', LEDGER_ENVELOPE_MAX_BYTES - 1);
    blob[LEDGER_ENVELOPE_MAX_BYTES - 1] = '\0';
    assert_int_equal(json_object_set_new(body, "big", json_string(blob)), 0);
    assert_int_equal(ledger_envelope_build(f->alice.seed, &d, &out, &reason), LMQ_ETOOBIG);
    assert_string_equal(reason, "too_large");
    assert_int_equal(out.len, 0);
    free(blob);
    json_decref(body);
    lmq_buf_release(&out);
}

/* The worked example of docs/PROTOCOL.md ("Worked example"): the same bytes from this code. */
static void test_protocol_worked_example(void **state)
{
    (void)state;
    uint8_t seed_a[32], seed_b[32];
    for (int i = 0; i < 32; i++) {
        seed_a[i] = (uint8_t)i;
        seed_b[i] = (uint8_t)(32 + i);
    }
    struct crypto_identity a, b;
    assert_int_equal(crypto_identity_from_seed(seed_a, &a), 0);
    assert_int_equal(crypto_identity_from_seed(seed_b, &b), 0);
    assert_string_equal(a.id, "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c");
    assert_string_equal(b.id, "24f6ed6acbfe1009c030d7ca567c33ca4830911498236b5561a6c82abec5de28");
    json_error_t jerr;
    json_t *body = json_loads("{\"currency\":\"EUR\",\"amount\":\"10.00\"}", 0, &jerr);
    assert_non_null(body);
    struct ledger_envelope_draft d = {.to = b.id,
                                      .seq = 1,
                                      .prev = "",
                                      .time = "2026-11-25T03:04:05.123456789Z",
                                      .type = "payment",
                                      .body = body};
    struct lmq_buf out = {0};
    const char *reason = NULL;
    assert_int_equal(ledger_envelope_build(seed_a, &d, &out, &reason), 0);
    json_decref(body);
    static const char expected[] =
        "{\"body\":{\"amount\":\"10.00\",\"currency\":\"EUR\"},"
        "\"from\":\"56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c\","
        "\"key\":\"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\",\"prev\":\"\",\"seq\":1,"
        "\"sig\":\"zrKCyMzl8IYMA0vfwF8LkMO7kz76OeEy93eX5Sf4zLbzfkTHHogf9eACJpCi_Uu_j2wCg3_-"
        "gTMkScmhwFuCCw\",\"time\":\"2026-11-25T03:04:05.123456789Z\","
        "\"to\":\"24f6ed6acbfe1009c030d7ca567c33ca4830911498236b5561a6c82abec5de28\","
        "\"type\":\"payment\"}";
    assert_int_equal(out.len, sizeof(expected) - 1);
    assert_memory_equal(out.data, expected, out.len);
    struct ledger_envelope env;
    assert_int_equal(ledger_envelope_open(out.data, out.len, &env, &reason), 0);
    char link[LEDGER_ENVELOPE_LINK_BYTES];
    assert_int_equal(ledger_envelope_link(&env, link), 0);
    assert_string_equal(link, "d7b529ff24893c59bbd246640d7cbd9b8518ef8005ff4c4e5581dab8132c1c7e");
    ledger_envelope_release(&env);
    lmq_buf_release(&out);
}

static void test_format_time(void **state)
{
    (void)state;
    char t[LEDGER_ENVELOPE_TIME_CHARS + 1];
    assert_int_equal(ledger_envelope_format_time(0, 0, t), LMQ_OK);
    assert_string_equal(t, "1970-01-01T00:00:00.000000000Z");
    assert_int_equal(ledger_envelope_format_time(TEST_TIME_S, 123456789, t), LMQ_OK);
    assert_string_equal(t, TEST_TIME);
    assert_int_equal(ledger_envelope_format_time(1709251199, 999999999, t), LMQ_OK);
    assert_string_equal(t, "2024-02-29T23:59:59.999999999Z");
    assert_int_equal(ledger_envelope_format_time(253402300799, 0, t), LMQ_OK);
    assert_string_equal(t, "9999-12-31T23:59:59.000000000Z");
    assert_int_equal(ledger_envelope_format_time(253402300800, 0, t), LMQ_EINVAL);
    assert_int_equal(ledger_envelope_format_time(-1, 0, t), LMQ_EINVAL);
    assert_int_equal(ledger_envelope_format_time(0, 1000000000, t), LMQ_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_open_round_trip_and_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structure_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sender_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_field_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signature_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_character_changes_break_signature, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_noncanonical_form_verifies_with_same_link, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_build_refuses_invalid_drafts, setup, teardown),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_protocol_worked_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
