#include "crypto/encoding.h"

#include <stdbool.h>
#include <string.h>

static const char crypto__hex_digits[] = "0123456789abcdef";
static const char crypto__b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char crypto__b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Marks "not in the alphabet" in a decoding result. */
#define CRYPTO__B64_INVALID 0xff

int crypto_hex_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap)
{
    LMQ_ASSERT(in != NULL || in_len == 0);
    LMQ_ASSERT(out != NULL || out_cap == 0);
    if (in_len > (SIZE_MAX - 1) / 2 || out_cap < CRYPTO_HEX_CHARS(in_len) + 1) {
        if (out_cap > 0)
            out[0] = '\0';
        return LMQ_ETOOBIG;
    }
    for (size_t i = 0; i < in_len; i++) {
        out[2 * i] = crypto__hex_digits[in[i] >> 4];
        out[2 * i + 1] = crypto__hex_digits[in[i] & 0x0f];
    }
    out[CRYPTO_HEX_CHARS(in_len)] = '\0';
    return LMQ_OK;
}

/* The value of a lowercase hex digit, or -1: uppercase is refused so one value has one text. */
static int crypto__hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int crypto_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    LMQ_ASSERT(in != NULL || in_len == 0);
    LMQ_ASSERT(out_len != NULL && (out != NULL || out_cap == 0));
    *out_len = 0;
    if (in_len % 2 != 0)
        return LMQ_EINVAL;
    if (in_len / 2 > out_cap)
        return LMQ_ETOOBIG;
    for (size_t i = 0; i < in_len / 2; i++) {
        int hi = crypto__hex_value(in[2 * i]);
        int lo = crypto__hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return LMQ_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = in_len / 2;
    return LMQ_OK;
}

/* Encodes with the given alphabet; pad adds '=' to whole quanta (standard base64). */
static int crypto__b64_encode(const char *alphabet, bool pad, const uint8_t *in, size_t in_len,
                              char *out, size_t out_cap)
{
    LMQ_ASSERT(in != NULL || in_len == 0);
    LMQ_ASSERT(out != NULL || out_cap == 0);
    size_t need = pad ? CRYPTO_B64_CHARS(in_len) : CRYPTO_B64URL_CHARS(in_len);
    if (in_len > SIZE_MAX / 4 - 4 || out_cap < need + 1) {
        if (out_cap > 0)
            out[0] = '\0';
        return LMQ_ETOOBIG;
    }
    size_t o = 0;
    for (size_t i = 0; i < in_len; i += 3) {
        size_t left = in_len - i;
        uint32_t v = (uint32_t)in[i] << 16;
        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 0x3f];
        out[o++] = alphabet[(v >> 12) & 0x3f];
        if (left > 1)
            out[o++] = alphabet[(v >> 6) & 0x3f];
        else if (pad)
            out[o++] = '=';
        if (left > 2)
            out[o++] = alphabet[v & 0x3f];
        else if (pad)
            out[o++] = '=';
    }
    LMQ_ASSERT(o == need);
    out[o] = '\0';
    return LMQ_OK;
}

/* The 6-bit value of c in alphabet, or CRYPTO__B64_INVALID. */
static uint8_t crypto__b64_value(const char *alphabet, char c)
{
    if (c >= 'A' && c <= 'Z')
        return (uint8_t)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (uint8_t)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (uint8_t)(c - '0' + 52);
    if (c == alphabet[62])
        return 62;
    if (c == alphabet[63])
        return 63;
    return CRYPTO__B64_INVALID;
}

/* Decodes unpadded characters (len % 4 != 1) of alphabet; rejects non-zero unused bits so that
 * each byte string has exactly one encoding. */
static int crypto__b64_decode_bare(const char *alphabet, const char *in, size_t in_len,
                                   uint8_t *out, size_t out_cap, size_t *out_len)
{
    LMQ_ASSERT(in != NULL || in_len == 0);
    LMQ_ASSERT(out_len != NULL && (out != NULL || out_cap == 0));
    *out_len = 0;
    if (in_len % 4 == 1)
        return LMQ_EINVAL;
    size_t need = in_len / 4 * 3 + (in_len % 4 == 0 ? 0 : in_len % 4 - 1);
    if (need > out_cap)
        return LMQ_ETOOBIG;
    size_t o = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        size_t chars = LMQ_MIN((size_t)4, in_len - i);
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            uint8_t d = k < chars ? crypto__b64_value(alphabet, in[i + k]) : 0;
            if (d == CRYPTO__B64_INVALID)
                return LMQ_EINVAL;
            v = v << 6 | d;
        }
        /* A partial quantum of 2 (3) characters carries 4 (2) unused bits that must be 0. */
        if ((chars == 2 && (v & 0xffff) != 0) || (chars == 3 && (v & 0xff) != 0))
            return LMQ_EINVAL;
        out[o++] = (uint8_t)(v >> 16);
        if (chars > 2)
            out[o++] = (uint8_t)(v >> 8);
        if (chars > 3)
            out[o++] = (uint8_t)v;
    }
    LMQ_ASSERT(o == need);
    *out_len = o;
    return LMQ_OK;
}

int crypto_b64url_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap)
{
    return crypto__b64_encode(crypto__b64url_alphabet, false, in, in_len, out, out_cap);
}

int crypto_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                         size_t *out_len)
{
    return crypto__b64_decode_bare(crypto__b64url_alphabet, in, in_len, out, out_cap, out_len);
}

int crypto_b64_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap)
{
    return crypto__b64_encode(crypto__b64_alphabet, true, in, in_len, out, out_cap);
}

int crypto_b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    LMQ_ASSERT(in != NULL || in_len == 0);
    LMQ_ASSERT(out_len != NULL);
    *out_len = 0;
    if (in_len % 4 != 0)
        return LMQ_EINVAL;
    /* Padding: at most two '=', only at the end; what precedes them is decoded bare, which
     * also refuses any '=' left inside the text. */
    size_t bare = in_len;
    for (size_t k = 0; k < 2 && bare > 0 && in[bare - 1] == '='; k++)
        bare--;
    return crypto__b64_decode_bare(crypto__b64_alphabet, in, bare, out, out_cap, out_len);
}
