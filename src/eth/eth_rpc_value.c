/*
 * The Ethereum JSON-RPC value parsers (eth_rpc.h, "Value parsers"): QUANTITY and DATA as nodes
 * send them, strictly. Apart from eth_rpc.c so the fuzz target needs nothing else.
 */
#include "eth/eth_rpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The digits of a QUANTITY after "0x": *digits, *n; LMQ_EPROTO when malformed. */
static int eth_rpc_quantity_digits(const char *s, size_t len, const char **digits, size_t *n)
{
    if (s == NULL || len < 3 || s[0] != '0' || s[1] != 'x')
        return LMQ_EPROTO;
    *digits = s + 2;
    *n = len - 2;
    if (*n > 1 && s[2] == '0')
        return LMQ_EPROTO; /* leading zero */
    for (size_t i = 0; i < *n; i++) {
        if (lmq_hex_digit(s[2 + i]) < 0)
            return LMQ_EPROTO;
    }
    return LMQ_OK;
}

int eth_rpc_parse_quantity256(const char *s, size_t len, uint8_t out[32])
{
    LMQ_ASSERT(out != NULL);
    const char *d = NULL;
    size_t n = 0;
    int rc = eth_rpc_quantity_digits(s, len, &d, &n);
    if (rc != LMQ_OK)
        return rc;
    if (n > 64)
        return LMQ_ETOOBIG;
    memset(out, 0, 32);
    /* The last digit is the low nibble of out[31]. */
    for (size_t i = 0; i < n; i++) {
        size_t pos = n - 1 - i; /* nibble index from the right */
        uint8_t v = (uint8_t)lmq_hex_digit(d[i]);
        out[31 - pos / 2] |= (uint8_t)(pos % 2 == 0 ? v : v << 4);
    }
    return LMQ_OK;
}

int eth_rpc_parse_quantity(const char *s, size_t len, uint64_t *out)
{
    LMQ_ASSERT(out != NULL);
    uint8_t v[32];
    int rc = eth_rpc_parse_quantity256(s, len, v);
    if (rc != LMQ_OK)
        return rc;
    for (size_t i = 0; i < 24; i++) {
        if (v[i] != 0)
            return LMQ_ETOOBIG;
    }
    uint64_t n = 0;
    for (size_t i = 24; i < 32; i++)
        n = n << 8 | v[i];
    *out = n;
    return LMQ_OK;
}

int eth_rpc_parse_data(const char *s, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    LMQ_ASSERT(out != NULL || cap == 0);
    LMQ_ASSERT(out_len != NULL);
    if (s == NULL || len < 2 || s[0] != '0' || s[1] != 'x' || len % 2 != 0)
        return LMQ_EPROTO;
    size_t n = (len - 2) / 2;
    if (n > cap)
        return LMQ_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        int hi = lmq_hex_digit(s[2 + 2 * i]), lo = lmq_hex_digit(s[3 + 2 * i]);
        if (hi < 0 || lo < 0)
            return LMQ_EPROTO;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = n;
    return LMQ_OK;
}

int eth_rpc_parse_fixed(const char *s, size_t len, uint8_t *out, size_t n)
{
    LMQ_ASSERT(out != NULL && n > 0);
    if (len != 2 + 2 * n)
        return LMQ_EPROTO;
    size_t got = 0;
    int rc = eth_rpc_parse_data(s, len, out, n, &got);
    LMQ_ASSERT(rc != LMQ_OK || got == n);
    return rc;
}

void eth_rpc_format_quantity(uint64_t v, char out[19])
{
    int n = snprintf(out, 19, "0x%" PRIx64, v);
    LMQ_ASSERT(n > 2 && n < 19);
}
