/*
 * Compact JWTs signed with Ed25519 (alg "EdDSA", RFC 8037): header {"alg":"EdDSA","typ":"JWT"},
 * claims sub (identity id), iat and exp (integer seconds), jti (16 random bytes, base64url) and
 * an optional iss. Verification says precisely why a token was refused, so that the server can
 * log a security event per cause.
 */
#ifndef LMQ_CRYPTO_JWT_H
#define LMQ_CRYPTO_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"
#include "crypto/ed25519.h"

/* Largest clock skew a verifier may tolerate (crypto_jwt_verify's leeway_s). The server checks
 * its own tokens with [auth] token_leeway_s, 0 by default: issuer and verifier share a clock. */
#define CRYPTO_JWT_LEEWAY_MAX_S 300
/* Longest token created or accepted. */
#define CRYPTO_JWT_MAX_BYTES 2048
/* Longest sub and iss (bytes, without the NUL). */
#define CRYPTO_JWT_CLAIM_MAX_BYTES 255
/* jti: 16 random bytes as 22 base64url characters. */
#define CRYPTO_JWT_JTI_RANDOM_BYTES 16
#define CRYPTO_JWT_JTI_CHARS 22

enum crypto_jwt_verdict {
    CRYPTO_JWT_VALID = 0,
    CRYPTO_JWT_MALFORMED,     /* not three base64url segments of JSON objects, or bad sizes */
    CRYPTO_JWT_BAD_ALG,       /* header alg is not exactly "EdDSA", or has "crit" */
    CRYPTO_JWT_BAD_SIGNATURE, /* the signature does not verify with the given key */
    CRYPTO_JWT_BAD_CLAIMS,    /* a required claim is missing or of the wrong type */
    CRYPTO_JWT_EXPIRED,       /* now >= exp + leeway (leeway 0: refused from second exp on) */
    CRYPTO_JWT_NOT_YET_VALID, /* iat > now + leeway */
};

struct crypto_jwt_claims {
    char sub[CRYPTO_JWT_CLAIM_MAX_BYTES + 1];
    char iss[CRYPTO_JWT_CLAIM_MAX_BYTES + 1]; /* "" when absent */
    char jti[CRYPTO_JWT_JTI_CHARS + 1];
    int64_t iat_s;
    int64_t exp_s;
};

/* Writes a token for sub (and iss unless NULL) valid from now_s for ttl_s seconds into out
 * (NUL-terminated, *out_len without the NUL). Returns 0, LMQ_EINVAL (empty or too long sub/iss,
 * ttl_s <= 0), LMQ_ETOOBIG (out_cap too small), LMQ_EIO (no randomness) or LMQ_ENOMEM. */
int crypto_jwt_create(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES], const char *sub,
                      const char *iss, int64_t now_s, int64_t ttl_s, char *out, size_t out_cap,
                      size_t *out_len) LMQ_WUR;

/* Checks token (token_len bytes) against pub at time now_s, tolerating leeway_s seconds
 * (0..CRYPTO_JWT_LEEWAY_MAX_S) of clock skew on exp and iat: *verdict says why it was refused.
 * Returns 0 (valid; claims filled) or LMQ_EPROTO (refused; see *verdict; claims zeroed). */
int crypto_jwt_verify(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES], const char *token,
                      size_t token_len, int64_t now_s, int64_t leeway_s,
                      struct crypto_jwt_claims *claims, enum crypto_jwt_verdict *verdict) LMQ_WUR;

/* A static machine-readable name for a verdict ("valid", "malformed", "bad_alg", ...). */
const char *crypto_jwt_verdict_name(enum crypto_jwt_verdict verdict);

#endif
