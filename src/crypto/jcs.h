/*
 * RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value, so that what is
 * signed or hashed does not depend on member order, whitespace or escaping choices.
 *
 * Input is I-JSON (RFC 7493): valid UTF-8, no lone surrogates, no duplicate member names, every
 * number an IEEE-754 double. Parsing is jansson's with JSON_DECODE_INT_AS_REAL, so an integer
 * literal becomes the double nearest to it, as in ECMAScript. Known limit: a member NAME with
 * U+0000 in it is refused (jansson cannot hold one); U+0000 in a string VALUE is fine.
 */
#ifndef LMQ_CRYPTO_JCS_H
#define LMQ_CRYPTO_JCS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

/* Deepest nesting of arrays and objects accepted (the top-level value is depth 1). */
#define CRYPTO_JCS_DEPTH_MAX 64
/* Largest JSON text crypto_jcs_parse reads. */
#define CRYPTO_JCS_INPUT_MAX_BYTES (16u * 1024u * 1024u)
/* Room for any number crypto_jcs_format_number writes, NUL included ("-1.2345678901234567e-308"
 * is 24 characters). */
#define CRYPTO_JCS_NUMBER_MAX_BYTES 32
/* Largest integer magnitude a double holds exactly (2^53). */
#define CRYPTO_JCS_EXACT_INT_MAX 9007199254740992LL

/* Parses I-JSON text (any value at the top) into *out (caller json_decref()s). Returns 0,
 * LMQ_EPROTO (syntax, duplicate names, invalid UTF-8, lone surrogate, number overflow, NUL in
 * a name), LMQ_ELIMIT (deeper than CRYPTO_JCS_DEPTH_MAX), LMQ_ETOOBIG (longer than
 * CRYPTO_JCS_INPUT_MAX_BYTES) or LMQ_ENOMEM. */
int crypto_jcs_parse(const uint8_t *json, size_t json_len, json_t **out) LMQ_WUR;

/* Appends the canonical form of the JSON text to out, never letting out->len exceed
 * max_bytes. Returns 0, the errors of crypto_jcs_parse, or LMQ_ETOOBIG (output over
 * max_bytes); out is unchanged on failure. */
int crypto_jcs_canonicalize(const uint8_t *json, size_t json_len, struct lmq_buf *out,
                            size_t max_bytes) LMQ_WUR;

/* Appends the canonical form of value to out (bounded as above). Integers must lie within
 * +-2^53, reals must be finite, strings and names valid UTF-8. Returns 0, LMQ_EINVAL (a value
 * JCS cannot represent), LMQ_ELIMIT (too deep), LMQ_ETOOBIG or LMQ_ENOMEM; out is unchanged
 * on failure. */
int crypto_jcs_canonicalize_json(const json_t *value, struct lmq_buf *out,
                                 size_t max_bytes) LMQ_WUR;

/* Writes finite v as ECMAScript's Number.prototype.toString does (shortest round-trip digits)
 * plus a NUL into out; *out_len is the length without the NUL. Returns 0 or LMQ_EINVAL (NaN or
 * infinite). */
int crypto_jcs_format_number(double v, char out[CRYPTO_JCS_NUMBER_MAX_BYTES],
                             size_t *out_len) LMQ_WUR;

#endif
