/*
 * The seal calldata (src/seal/seal.h, docs/PROTOCOL.md "Sealing"): the exact layout, the round
 * trip, and every refusal of the parser. The sealer itself is tested against ganache
 * (tests/integration/test_seal.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "seal/seal.h"

static void test_calldata_layout_is_magic_size_root_origin(void **state)
{
    (void)state;
    uint8_t root[32], out[128];
    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t)(0xa0 + i);
    size_t len = 0;
    assert_int_equal(
        seal_calldata(0x0102030405060708ULL, root, "ledgermq/56475aa7", out, sizeof(out), &len), 0);
    assert_int_equal(len, 8 + 8 + 32 + 17);
    assert_memory_equal(out, "LMQSEAL1", 8);
    static const uint8_t size_be[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(out + 8, size_be, 8);
    assert_memory_equal(out + 16, root, 32);
    assert_memory_equal(out + 48, "ledgermq/56475aa7", 17);
    uint64_t size = 0;
    uint8_t back[32];
    const uint8_t *origin = NULL;
    size_t origin_len = 0;
    assert_int_equal(seal_calldata_parse(out, len, &size, back, &origin, &origin_len), 0);
    assert_true(size == 0x0102030405060708ULL);
    assert_memory_equal(back, root, 32);
    assert_int_equal(origin_len, 17);
    assert_memory_equal(origin, "ledgermq/56475aa7", 17);
}

static void test_calldata_refuses_short_output(void **state)
{
    (void)state;
    uint8_t root[32] = {0}, out[64];
    size_t len = 99;
    assert_int_equal(seal_calldata(1, root, "ledgermq/0123456789abcdef", out, 47, &len),
                     LMQ_ETOOBIG);
    assert_int_equal(seal_calldata(1, root, "ledgermq/0123456789abcdef", out, sizeof(out), &len),
                     LMQ_ETOOBIG); /* 48 + 25 > 64 */
    assert_int_equal(len, 99);
}

static void test_parse_refuses_what_is_not_a_seal(void **state)
{
    (void)state;
    uint8_t root[32] = {0}, out[128], back[32];
    size_t len = 0, origin_len = 0;
    uint64_t size = 0;
    const uint8_t *origin = NULL;
    assert_int_equal(seal_calldata(7, root, "o", out, sizeof(out), &len), 0);
    /* Shorter than the fixed part, another magic, no data at all. */
    assert_int_equal(seal_calldata_parse(out, 47, &size, back, &origin, &origin_len), LMQ_EPROTO);
    out[7] = '2';
    assert_int_equal(seal_calldata_parse(out, len, &size, back, &origin, &origin_len), LMQ_EPROTO);
    assert_int_equal(seal_calldata_parse(NULL, 0, &size, back, &origin, &origin_len), LMQ_EPROTO);
    /* An empty origin is well-formed (verify compares it with the checkpoint's). */
    out[7] = '1';
    assert_int_equal(seal_calldata_parse(out, 48, &size, back, &origin, &origin_len), 0);
    assert_int_equal(origin_len, 0);
    assert_true(size == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calldata_layout_is_magic_size_root_origin),
        cmocka_unit_test(test_calldata_refuses_short_output),
        cmocka_unit_test(test_parse_refuses_what_is_not_a_seal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
