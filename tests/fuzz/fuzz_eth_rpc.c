/*
 * libFuzzer target for the Ethereum JSON-RPC client's value parsers (src/eth/eth_rpc.h): the
 * strict QUANTITY (64 and 256 bits) and DATA readers that every node answer goes through. The
 * first byte picks the parser, the rest is the text. Oracles:
 *   - an accepted 64-bit QUANTITY formats back to the same text (lowercase input), and the
 *     256-bit reader agrees with it;
 *   - accepted DATA has (len - 2) / 2 bytes that hex-encode back to the text (lowercase);
 *   - a refusal is LMQ_EPROTO or LMQ_ETOOBIG and leaves the output untouched (64-bit).
 * fuzz-sources: src/eth/eth_rpc_value.c
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "eth/eth_rpc.h"

#include "fuzz_check.h"

#define FUZZ_TEXT_MAX 200

static bool is_lower(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'F')
            return false;
    }
    return true;
}

static void check_quantity(const char *s, size_t len)
{
    uint64_t v = 0x5a5a;
    int rc = eth_rpc_parse_quantity(s, len, &v);
    uint8_t big[32];
    int rc256 = eth_rpc_parse_quantity256(s, len, big);
    if (rc != LMQ_OK) {
        CHECK(rc == LMQ_EPROTO || rc == LMQ_ETOOBIG);
        CHECK(v == 0x5a5a);
        CHECK(rc == LMQ_EPROTO ? rc256 == LMQ_EPROTO : true);
        return;
    }
    CHECK(rc256 == LMQ_OK);
    uint64_t low = 0;
    for (size_t i = 24; i < 32; i++)
        low = low << 8 | big[i];
    CHECK(low == v);
    for (size_t i = 0; i < 24; i++)
        CHECK(big[i] == 0);
    char q[19];
    eth_rpc_format_quantity(v, q);
    if (is_lower(s, len))
        CHECK(strlen(q) == len && memcmp(q, s, len) == 0);
}

static void check_data(const char *s, size_t len)
{
    uint8_t out[FUZZ_TEXT_MAX / 2];
    size_t n = 0;
    int rc = eth_rpc_parse_data(s, len, out, sizeof(out), &n);
    if (rc != LMQ_OK) {
        CHECK(rc == LMQ_EPROTO || rc == LMQ_ETOOBIG);
        return;
    }
    CHECK(len >= 2 && n == (len - 2) / 2);
    char back[FUZZ_TEXT_MAX + 3] = "0x";
    for (size_t i = 0; i < n; i++)
        snprintf(back + 2 + 2 * i, 3, "%02x", out[i]);
    if (is_lower(s, len))
        CHECK(memcmp(back, s, len) == 0);
    if (n == 32 || n == 20) {
        uint8_t fixed[32];
        CHECK(eth_rpc_parse_fixed(s, len, fixed, n) == LMQ_OK);
        CHECK(memcmp(fixed, out, n) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > FUZZ_TEXT_MAX)
        return 0;
    char text[FUZZ_TEXT_MAX];
    size_t len = size - 1;
    memcpy(text, data + 1, len);
    if (data[0] & 1)
        check_data(text, len);
    else
        check_quantity(text, len);
    return 0;
}
