/* Hex text and 256-bit numbers (eth_hex.h). */
#include "eth/eth_hex.h"

#include <string.h>

int eth_hex_encode(const uint8_t *data, size_t len, char *out, size_t out_cap)
{
    static const char digits[] = "0123456789abcdef";
    LMQ_ASSERT(out != NULL && out_cap > 0);
    LMQ_ASSERT(data != NULL || len == 0);
    if (len > (SIZE_MAX - 3) / 2 || out_cap < 2 * len + 3) {
        out[0] = '\0';
        return LMQ_ETOOBIG;
    }
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        out[2 + 2 * i] = digits[data[i] >> 4];
        out[3 + 2 * i] = digits[data[i] & 0x0f];
    }
    out[2 + 2 * len] = '\0';
    return LMQ_OK;
}

int eth_hex_decode(const char *text, size_t text_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    LMQ_ASSERT(text != NULL || text_len == 0);
    LMQ_ASSERT(out_len != NULL && (out != NULL || out_cap == 0));
    *out_len = 0;
    if (text_len >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text += 2;
        text_len -= 2;
    }
    if (text_len % 2 != 0) {
        return LMQ_EPROTO;
    }
    if (text_len / 2 > out_cap) {
        return LMQ_ETOOBIG;
    }
    for (size_t i = 0; i < text_len / 2; i++) {
        int hi = lmq_hex_digit(text[2 * i]);
        int lo = lmq_hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return LMQ_EPROTO;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = text_len / 2;
    return LMQ_OK;
}

int eth_hex_decode_exact(const char *text, uint8_t *out, size_t len)
{
    LMQ_ASSERT(text != NULL && out != NULL);
    size_t got = 0;
    int rc = eth_hex_decode(text, strlen(text), out, len, &got);
    if (rc != LMQ_OK || got != len) {
        return LMQ_EPROTO;
    }
    return LMQ_OK;
}

void eth_u256_from_u64(struct eth_u256 *v, uint64_t n)
{
    LMQ_ASSERT(v != NULL);
    memset(v, 0, sizeof(*v));
    for (int i = 0; i < 8; i++) {
        v->be[ETH_U256_BYTES - 1 - i] = (uint8_t)(n >> (8 * i));
    }
}

bool eth_u256_to_u64(const struct eth_u256 *v, uint64_t *n)
{
    LMQ_ASSERT(v != NULL && n != NULL);
    for (int i = 0; i < ETH_U256_BYTES - 8; i++) {
        if (v->be[i] != 0) {
            return false;
        }
    }
    *n = 0;
    for (int i = ETH_U256_BYTES - 8; i < ETH_U256_BYTES; i++) {
        *n = *n << 8 | v->be[i];
    }
    return true;
}

bool eth_u256_is_zero(const struct eth_u256 *v)
{
    return eth_u256_len(v) == 0;
}

size_t eth_u256_len(const struct eth_u256 *v)
{
    LMQ_ASSERT(v != NULL);
    for (size_t i = 0; i < ETH_U256_BYTES; i++) {
        if (v->be[i] != 0) {
            return ETH_U256_BYTES - i;
        }
    }
    return 0;
}

/* v = v * mul + add; returns false on overflow past 256 bits. */
static bool eth_u256__mul_add(struct eth_u256 *v, unsigned mul, unsigned add)
{
    unsigned carry = add;
    for (int i = ETH_U256_BYTES - 1; i >= 0; i--) {
        unsigned x = (unsigned)v->be[i] * mul + carry;
        v->be[i] = (uint8_t)(x & 0xff);
        carry = x >> 8;
    }
    return carry == 0;
}

int eth_u256_parse(const char *text, size_t text_len, struct eth_u256 *v)
{
    LMQ_ASSERT(text != NULL || text_len == 0);
    LMQ_ASSERT(v != NULL);
    memset(v, 0, sizeof(*v));
    bool hex = text_len >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
    size_t start = hex ? 2 : 0;
    if (text_len == start) {
        return LMQ_EPROTO;
    }
    for (size_t i = start; i < text_len; i++) {
        int d = lmq_hex_digit(text[i]);
        if (d < 0 || (!hex && d > 9) || !eth_u256__mul_add(v, hex ? 16u : 10u, (unsigned)d)) {
            memset(v, 0, sizeof(*v));
            return LMQ_EPROTO;
        }
    }
    return LMQ_OK;
}

void eth_u256_to_dec(const struct eth_u256 *v, char out[ETH_U256_DEC_MAX_BYTES])
{
    LMQ_ASSERT(v != NULL && out != NULL);
    struct eth_u256 n = *v;
    char rev[ETH_U256_DEC_MAX_BYTES];
    size_t len = 0;
    do {
        unsigned rem = 0;
        for (int i = 0; i < ETH_U256_BYTES; i++) {
            unsigned x = rem << 8 | n.be[i];
            n.be[i] = (uint8_t)(x / 10);
            rem = x % 10;
        }
        LMQ_ASSERT(len < ETH_U256_DEC_MAX_BYTES - 1);
        rev[len++] = (char)('0' + rem);
    } while (!eth_u256_is_zero(&n));
    for (size_t i = 0; i < len; i++) {
        out[i] = rev[len - 1 - i];
    }
    out[len] = '\0';
}

void eth_u256_negate(struct eth_u256 *v)
{
    LMQ_ASSERT(v != NULL);
    unsigned carry = 1;
    for (int i = ETH_U256_BYTES - 1; i >= 0; i--) {
        unsigned x = (unsigned)(uint8_t)~v->be[i] + carry;
        v->be[i] = (uint8_t)(x & 0xff);
        carry = x >> 8;
    }
}
