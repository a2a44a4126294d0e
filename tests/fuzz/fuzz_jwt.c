/*
 * libFuzzer target for the JWT verifier (src/crypto/jwt.c): what the broker runs on a CONNECT
 * password, which comes from the network before any authentication. The first input byte picks
 * a mode and the clock skew tolerated (leeway_s, 0..255 in steps of 3); the rest is:
 *   mode 0: a token as a client sends it, verified against the fixed key;
 *   mode 1: a claims object, put in a token with the usual header and signed here with the
 *           fixed key, so the claim checks are reached (a mutated token rarely keeps a valid
 *           signature);
 *   mode 2: a header object, with valid claims, signed here likewise.
 * Oracles:
 *   - a verdict always: 0 exactly when the verdict is "valid", a named verdict otherwise, and
 *     the claims all zero on a refusal; the same answer twice;
 *   - a verified token's fields are consistent: sub and iss within CRYPTO_JWT_CLAIM_MAX_BYTES
 *     (sub not empty), jti of CRYPTO_JWT_JTI_CHARS, 0 <= iat < exp <= 2^53, within the
 *     leeway of now; it does not verify under another key;
 *   - mode 1: never refused for the header or signature; when valid, the claims are those of
 *     the JSON that was signed; mode 2: never refused for the signature or the claims.
 * Any broken oracle aborts, which libFuzzer reports as a crash.
 *
 * Seeds (tests/fuzz/corpus/jwt/, written by make_corpus.py with the key below): valid tokens
 * with and without iss, expired, not yet valid, a bad signature, alg "none", a "crit" header,
 * claims and headers for modes 1 and 2.
 *
 * fuzz-sources: src/crypto/jwt.c src/crypto/encoding.c src/crypto/jcs.c src/crypto/ed25519.c
 * fuzz-sources: src/core/buf.c
 * fuzz-libs: -lcrypto -ljansson -lm
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/lmq.h"
#include "crypto/encoding.h"
#include "crypto/jwt.h"

#include "fuzz_check.h"

/* The clock of every verification: 2026-01-01T00:00:00Z (make_corpus.py uses the same). */
#define FUZZ_NOW_S INT64_C(1767225600)
/* Longest claims or header taken in modes 1 and 2: with the rest, a bit over the token max. */
#define FUZZ_PART_MAX_BYTES 1600
#define FUZZ_TOKEN_CAP (2 * CRYPTO_JWT_MAX_BYTES + 256)

/* Seed bytes 1..32: the key the seed tokens are signed with (make_corpus.py JWT_SEED). */
static const uint8_t fuzz_seed[CRYPTO_ED25519_SEED_BYTES] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};
static const uint8_t fuzz_other_seed[CRYPTO_ED25519_SEED_BYTES] = {0xee};
static const char fuzz_header[] = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";
static const char fuzz_claims[] = "{\"exp\":1767229200,\"iat\":1767225540,"
                                  "\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sub\":\"fuzz\"}";

static uint8_t fuzz_pub[CRYPTO_ED25519_PUB_BYTES];
static uint8_t fuzz_other_pub[CRYPTO_ED25519_PUB_BYTES];

static bool fuzz_all_zero(const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        if (b[i] != 0)
            return false;
    }
    return true;
}

/* The checks every verification passes, whatever the input. */
static int fuzz_verify(const char *token, size_t len, int64_t leeway_s,
                       struct crypto_jwt_claims *claims, enum crypto_jwt_verdict *verdict)
{
    int rc = crypto_jwt_verify(fuzz_pub, token, len, FUZZ_NOW_S, leeway_s, claims, verdict);
    CHECK(rc == 0 ? *verdict == CRYPTO_JWT_VALID : rc == LMQ_EPROTO);
    CHECK(strcmp(crypto_jwt_verdict_name(*verdict), "unknown") != 0);
    if (rc != 0) {
        CHECK(fuzz_all_zero(claims, sizeof(*claims)));
    } else {
        size_t sub_len = strnlen(claims->sub, sizeof(claims->sub));
        CHECK(sub_len > 0 && sub_len <= CRYPTO_JWT_CLAIM_MAX_BYTES);
        CHECK(strnlen(claims->iss, sizeof(claims->iss)) <= CRYPTO_JWT_CLAIM_MAX_BYTES);
        CHECK(strnlen(claims->jti, sizeof(claims->jti)) == CRYPTO_JWT_JTI_CHARS);
        CHECK(claims->iat_s >= 0 && claims->iat_s < claims->exp_s);
        CHECK(claims->exp_s <= (INT64_C(1) << 53));
        CHECK(FUZZ_NOW_S < claims->exp_s + leeway_s && claims->iat_s <= FUZZ_NOW_S + leeway_s);
        /* A token is valid under one key only. */
        struct crypto_jwt_claims other;
        enum crypto_jwt_verdict other_verdict;
        CHECK(crypto_jwt_verify(fuzz_other_pub, token, len, FUZZ_NOW_S, leeway_s, &other,
                                &other_verdict) == LMQ_EPROTO);
        CHECK(other_verdict == CRYPTO_JWT_BAD_SIGNATURE);
    }
    struct crypto_jwt_claims again;
    enum crypto_jwt_verdict again_verdict;
    int again_rc =
        crypto_jwt_verify(fuzz_pub, token, len, FUZZ_NOW_S, leeway_s, &again, &again_verdict);
    CHECK(again_rc == rc && again_verdict == *verdict);
    CHECK(memcmp(&again, claims, sizeof(again)) == 0);
    return rc;
}

/* base64url(header) "." base64url(claims) "." base64url(signature by fuzz_seed). */
static size_t fuzz_sign(const char *header, size_t header_len, const char *claims_json,
                        size_t claims_len, char *out, size_t cap)
{
    size_t len = 0;
    CHECK(crypto_b64url_encode((const uint8_t *)header, header_len, out, cap) == 0);
    len += CRYPTO_B64URL_CHARS(header_len);
    out[len++] = '.';
    CHECK(crypto_b64url_encode((const uint8_t *)claims_json, claims_len, out + len, cap - len) ==
          0);
    len += CRYPTO_B64URL_CHARS(claims_len);
    uint8_t sig[CRYPTO_ED25519_SIG_BYTES];
    CHECK(crypto_ed25519_sign(fuzz_seed, (const uint8_t *)out, len, sig) == 0);
    out[len++] = '.';
    CHECK(crypto_b64url_encode(sig, sizeof(sig), out + len, cap - len) == 0);
    len += CRYPTO_B64URL_CHARS(sizeof(sig));
    return len;
}

/* Mode 1, valid: the claims are those of the signed JSON. */
static void fuzz_claims_match(const char *json, size_t len, const struct crypto_jwt_claims *c)
{
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(root));
    const json_t *sub = json_object_get(root, "sub");
    const json_t *iss = json_object_get(root, "iss");
    CHECK(json_is_string(sub) && strcmp(json_string_value(sub), c->sub) == 0);
    CHECK(strcmp(json_string_value(json_object_get(root, "jti")), c->jti) == 0);
    CHECK(iss == NULL ? c->iss[0] == '\0' : strcmp(json_string_value(iss), c->iss) == 0);
    CHECK(json_integer_value(json_object_get(root, "iat")) == c->iat_s);
    CHECK(json_integer_value(json_object_get(root, "exp")) == c->exp_s);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        CHECK(crypto_ed25519_public(fuzz_seed, fuzz_pub) == 0);
        CHECK(crypto_ed25519_public(fuzz_other_seed, fuzz_other_pub) == 0);
        ready = true;
    }
    if (size == 0)
        return 0;
    int mode = data[0] % 3;
    int64_t leeway_s = (data[0] / 3) * 3;
    const char *rest = (const char *)data + 1;
    size_t rest_len = size - 1;
    struct crypto_jwt_claims claims;
    enum crypto_jwt_verdict verdict;
    if (mode == 0) {
        /* A heap copy of exactly the token, so ASan sees any read past its end. */
        char *token = malloc(rest_len > 0 ? rest_len : 1);
        if (token == NULL)
            return 0;
        memcpy(token, rest, rest_len);
        (void)fuzz_verify(token, rest_len, leeway_s, &claims, &verdict);
        free(token);
        return 0;
    }
    rest_len = LMQ_MIN(rest_len, (size_t)FUZZ_PART_MAX_BYTES);
    static char token[FUZZ_TOKEN_CAP];
    if (mode == 1) {
        size_t len =
            fuzz_sign(fuzz_header, strlen(fuzz_header), rest, rest_len, token, sizeof(token));
        int rc = fuzz_verify(token, len, leeway_s, &claims, &verdict);
        CHECK(verdict != CRYPTO_JWT_BAD_ALG && verdict != CRYPTO_JWT_BAD_SIGNATURE);
        if (rc == 0)
            fuzz_claims_match(rest, rest_len, &claims);
    } else {
        size_t len =
            fuzz_sign(rest, rest_len, fuzz_claims, strlen(fuzz_claims), token, sizeof(token));
        (void)fuzz_verify(token, len, leeway_s, &claims, &verdict);
        CHECK(verdict == CRYPTO_JWT_VALID || verdict == CRYPTO_JWT_MALFORMED ||
              verdict == CRYPTO_JWT_BAD_ALG);
    }
    return 0;
}
