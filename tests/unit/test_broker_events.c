/* The event stream: envelope.accepted written straight from the stored envelope
 * (events_envelope_accepted_json) is byte for byte what the general path (a JSON tree through
 * RFC 8785 canonicalization) writes from the same members. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "crypto/encoding.h"
#include "crypto/jcs.h"
#include "crypto/keyfile.h"
#include "events/events.h"
#include "ledger/envelope.h"

#define TEST_TIME "2026-12-07T05:41:00.123456789Z"
#define TEST_LINK "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

static void identity(const char *hex, struct crypto_identity *out)
{
    size_t n = 0;
    assert_int_equal(crypto_hex_decode(hex, 64, out->seed, 32, &n), LMQ_OK);
    assert_int_equal(crypto_identity_from_seed(out->seed, out), LMQ_OK);
}

/* A signed envelope (type, body) from one fixed identity to another, parsed back. */
static void envelope(const char *type, const char *body_text, uint64_t seq,
                     struct ledger_envelope *env, struct lmq_buf *text)
{
    struct crypto_identity alice, bob;
    identity("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", &alice);
    identity("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", &bob);
    json_t *body = json_loads(body_text, 0, NULL);
    assert_non_null(body);
    struct ledger_envelope_draft d = {bob.id,    seq,  seq == 1 ? NULL : TEST_LINK,
                                      TEST_TIME, type, body};
    const char *reason = NULL;
    assert_int_equal(ledger_envelope_build(alice.seed, &d, text, &reason), LMQ_OK);
    json_decref(body);
    assert_int_equal(ledger_envelope_parse(text->data, text->len, env, &reason), LMQ_OK);
}

/* What events_emit writes for the same members. */
static void general_path(const struct ledger_envelope *env, uint64_t index, uint64_t id,
                         struct lmq_buf *out)
{
    json_t *e = json_loadb((const char *)env->canonical.data, env->canonical.len, 0, NULL);
    assert_non_null(e);
    json_t *data = json_pack("{s:I,s:s,s:s,s:s,s:I,s:s,s:o}", "index", (json_int_t)index, "link",
                             TEST_LINK, "from", env->from, "to", env->to, "seq",
                             (json_int_t)env->seq, "type", env->type, "envelope", e);
    json_t *o = json_pack("{s:o,s:I,s:s,s:s}", "data", data, "id", (json_int_t)id, "time",
                          TEST_TIME, "type", "envelope.accepted");
    assert_non_null(o);
    out->len = 0;
    assert_int_equal(crypto_jcs_canonicalize_json(o, out, 1u << 20), LMQ_OK);
    json_decref(o);
}

static void test_same_bytes_as_general_path(void **state)
{
    (void)state;
    static const struct {
        const char *type, *body;
        uint64_t seq, index, id;
    } cases[] = {
        {"chat.message", "{\"text\":\"hi\"}", 1, 0, 1},
        {"com.example.Onboarding", "{\"z\":1,\"a\":[1,2.5,1e21],\"u\":\"\\u00e9\\ud83d\\ude00\"}",
         7, 123456, 99},
        {"a:b-c_d.E9", "{\"esc\":\"\\\"\\\\\\n\\u0001\",\"n\":null,\"t\":true}", 2, 1, 2},
        {"x", "{}", 9007199254740991ull, 9007199254740992ull, 9007199254740992ull},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ledger_envelope env;
        struct lmq_buf text = {0}, fast = {0}, slow = {0};
        envelope(cases[i].type, cases[i].body, cases[i].seq, &env, &text);
        assert_int_equal(events_envelope_accepted_json(&fast, &env, TEST_LINK, cases[i].index,
                                                       cases[i].id, TEST_TIME),
                         LMQ_OK);
        general_path(&env, cases[i].index, cases[i].id, &slow);
        assert_int_equal(fast.len, slow.len);
        assert_memory_equal(fast.data, slow.data, slow.len);
        ledger_envelope_release(&env);
        lmq_buf_release(&text);
        lmq_buf_release(&fast);
        lmq_buf_release(&slow);
    }
}

/* Past 2^53 JCS writes a number as a double: the straight path declines. */
static void test_past_exact_integers_declined(void **state)
{
    (void)state;
    struct ledger_envelope env;
    struct lmq_buf text = {0}, out = {0};
    envelope("chat.message", "{}", 1, &env, &text);
    uint64_t big = EVENTS_JSON_EXACT_MAX + 1;
    assert_int_equal(events_envelope_accepted_json(&out, &env, TEST_LINK, big, 1, TEST_TIME),
                     LMQ_EINVAL);
    assert_int_equal(events_envelope_accepted_json(&out, &env, TEST_LINK, 1, big, TEST_TIME),
                     LMQ_EINVAL);
    ledger_envelope_release(&env);
    lmq_buf_release(&text);
    lmq_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_general_path),
        cmocka_unit_test(test_past_exact_integers_declined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
