/* The Ethereum JSON-RPC client's value parsers (src/eth/eth_rpc.h): strict QUANTITY and DATA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "eth/eth_rpc.h"

static int quantity(const char *s, uint64_t *v)
{
    return eth_rpc_parse_quantity(s, strlen(s), v);
}

static void test_quantity_accepts_canonical_hex(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_int_equal(quantity("0x0", &v), LMQ_OK);
    assert_int_equal(v, 0);
    assert_int_equal(quantity("0x41", &v), LMQ_OK);
    assert_int_equal(v, 65);
    assert_int_equal(quantity("0x400", &v), LMQ_OK);
    assert_int_equal(v, 1024);
    assert_int_equal(quantity("0xffffffffffffffff", &v), LMQ_OK);
    assert_true(v == UINT64_MAX);
    assert_int_equal(quantity("0xABcd", &v), LMQ_OK);
    assert_int_equal(v, 0xabcd);
}

static void test_quantity_refuses_what_the_spec_forbids(void **state)
{
    (void)state;
    uint64_t v = 7;
    const char *bad[] = {"",     "0x",   "0",    "41",   "0x00", "0x0400",
                         "0X41", "0x4g", "0x 1", "-0x1", "0x1 ", "x41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(quantity(bad[i], &v), LMQ_EPROTO);
    assert_int_equal(v, 7); /* untouched on failure */
    assert_int_equal(quantity("0x10000000000000000", &v), LMQ_ETOOBIG);
    /* The length is the bound, not a NUL: "0x41" cut to 3 is "0x4". */
    assert_int_equal(eth_rpc_parse_quantity("0x41", 3, &v), LMQ_OK);
    assert_int_equal(v, 4);
    assert_int_equal(eth_rpc_parse_quantity(NULL, 0, &v), LMQ_EPROTO);
}

static void test_quantity256_is_big_endian_and_bounded(void **state)
{
    (void)state;
    uint8_t out[32], want[32] = {0};
    assert_int_equal(eth_rpc_parse_quantity256("0x1ff", 5, out), LMQ_OK);
    want[30] = 0x01;
    want[31] = 0xff;
    assert_memory_equal(out, want, 32);
    char max[2 + 64 + 2] = "0x";
    memset(max + 2, 'f', 64);
    max[66] = '\0';
    assert_int_equal(eth_rpc_parse_quantity256(max, 66, out), LMQ_OK);
    memset(want, 0xff, 32);
    assert_memory_equal(out, want, 32);
    max[66] = 'f';
    max[67] = '\0';
    assert_int_equal(eth_rpc_parse_quantity256(max, 67, out), LMQ_ETOOBIG);
    assert_int_equal(eth_rpc_parse_quantity256("0x01", 4, out), LMQ_EPROTO);
}

static void test_data_and_fixed(void **state)
{
    (void)state;
    uint8_t out[32];
    size_t len = 99;
    assert_int_equal(eth_rpc_parse_data("0x", 2, out, sizeof(out), &len), LMQ_OK);
    assert_int_equal(len, 0);
    assert_int_equal(eth_rpc_parse_data("0x00ff10", 8, out, sizeof(out), &len), LMQ_OK);
    assert_int_equal(len, 3);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(out[2], 0x10);
    assert_int_equal(eth_rpc_parse_data("0x0", 3, out, sizeof(out), &len), LMQ_EPROTO);
    assert_int_equal(eth_rpc_parse_data("00ff", 4, out, sizeof(out), &len), LMQ_EPROTO);
    assert_int_equal(eth_rpc_parse_data("0xzz", 4, out, sizeof(out), &len), LMQ_EPROTO);
    assert_int_equal(eth_rpc_parse_data("0x001122", 8, out, 2, &len), LMQ_ETOOBIG);
    const char *hash = "0x0102030405060708091011121314151617181920212223242526272829303132";
    assert_int_equal(eth_rpc_parse_fixed(hash, strlen(hash), out, 32), LMQ_OK);
    assert_int_equal(out[0], 0x01);
    assert_int_equal(out[31], 0x32);
    /* A hash one byte short or long is refused. */
    assert_int_equal(eth_rpc_parse_fixed(hash, strlen(hash) - 2, out, 32), LMQ_EPROTO);
    assert_int_equal(eth_rpc_parse_fixed("0x00", 4, out, 20), LMQ_EPROTO);
}

static void test_format_quantity_round_trips(void **state)
{
    (void)state;
    const uint64_t values[] = {0, 1, 15, 16, 255, 1u << 20, UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char q[19];
        uint64_t back = 0;
        eth_rpc_format_quantity(values[i], q);
        assert_int_equal(eth_rpc_parse_quantity(q, strlen(q), &back), LMQ_OK);
        assert_true(back == values[i]);
    }
    char q[19];
    eth_rpc_format_quantity(0, q);
    assert_string_equal(q, "0x0");
}

static void test_create_refuses_non_http_urls(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct eth_rpc *rpc = NULL;
    struct eth_rpc_config cfg = {.url = "ftp://example.org/"};
    assert_int_equal(eth_rpc_create(&loop, &cfg, &rpc), LMQ_EINVAL);
    cfg.url = NULL;
    assert_int_equal(eth_rpc_create(&loop, &cfg, &rpc), LMQ_EINVAL);
    assert_null(rpc);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantity_accepts_canonical_hex),
        cmocka_unit_test(test_quantity_refuses_what_the_spec_forbids),
        cmocka_unit_test(test_quantity256_is_big_endian_and_bounded),
        cmocka_unit_test(test_data_and_fixed),
        cmocka_unit_test(test_format_quantity_round_trips),
        cmocka_unit_test(test_create_refuses_non_http_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
