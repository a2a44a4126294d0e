/*
 * Strict text encodings of binary data: lowercase hex, base64url without padding (RFC 4648 §5)
 * and standard base64 with padding (RFC 4648 §4).
 *
 * Every decoder accepts exactly one spelling per byte string (no uppercase hex, no whitespace,
 * no missing or surplus padding, no non-zero unused bits), so an encoded value can be compared
 * and hashed as text. Encoders write a NUL-terminated string; decoders read exactly in_len
 * characters and never a terminator.
 */
#ifndef LMQ_CRYPTO_ENCODING_H
#define LMQ_CRYPTO_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

/* Characters (without the NUL) that encoding n bytes produces. */
#define CRYPTO_HEX_CHARS(n) ((n)*2)
#define CRYPTO_B64URL_CHARS(n) (((n)*4 + 2) / 3)
#define CRYPTO_B64_CHARS(n) ((((n) + 2) / 3) * 4)

/* Writes in as lowercase hex plus a NUL into out. Returns 0 or LMQ_ETOOBIG (out_cap too
 * small; out is then an empty string when out_cap > 0). */
int crypto_hex_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap) LMQ_WUR;
/* Decodes in_len lowercase hex characters into out. Returns 0, LMQ_EINVAL (odd length or a
 * character outside [0-9a-f]) or LMQ_ETOOBIG (more than out_cap bytes). */
int crypto_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                      size_t *out_len) LMQ_WUR;

/* Writes in as base64url without padding plus a NUL into out. Returns 0 or LMQ_ETOOBIG. */
int crypto_b64url_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap) LMQ_WUR;
/* Decodes unpadded base64url. Returns 0, LMQ_EINVAL (a character outside [A-Za-z0-9_-],
 * '=', a length of 1 mod 4, non-zero unused bits) or LMQ_ETOOBIG (more than out_cap bytes). */
int crypto_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                         size_t *out_len) LMQ_WUR;

/* Writes in as standard padded base64 plus a NUL into out. Returns 0 or LMQ_ETOOBIG. */
int crypto_b64_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap) LMQ_WUR;
/* Decodes padded base64. Returns 0, LMQ_EINVAL (length not a multiple of 4, a character
 * outside [A-Za-z0-9+/], '=' anywhere but the last one or two places, non-zero unused bits)
 * or LMQ_ETOOBIG (more than out_cap bytes). */
int crypto_b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap,
                      size_t *out_len) LMQ_WUR;

#endif
