#include "crypto/jwt.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <string.h>

#include "core/buf.h"
#include "crypto/encoding.h"
#include "crypto/jcs.h"

/* The only header we write; verification accepts any header whose alg is exactly EdDSA. */
static const char jwt__header[] = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";
/* Segments in a compact JWS. */
#define JWT__SEGMENTS 3
/* Latest exp we issue: JSON integers above 2^53 do not survive every JSON parser. */
#define JWT__TIME_MAX_S ((int64_t)1 << 53)

static const char *const jwt__verdict_names[] = {
    [CRYPTO_JWT_VALID] = "valid",
    [CRYPTO_JWT_MALFORMED] = "malformed",
    [CRYPTO_JWT_BAD_ALG] = "bad_alg",
    [CRYPTO_JWT_BAD_SIGNATURE] = "bad_signature",
    [CRYPTO_JWT_BAD_CLAIMS] = "bad_claims",
    [CRYPTO_JWT_EXPIRED] = "expired",
    [CRYPTO_JWT_NOT_YET_VALID] = "not_yet_valid",
};

const char *crypto_jwt_verdict_name(enum crypto_jwt_verdict verdict)
{
    size_t i = (size_t)verdict;
    return i < LMQ_ARRAY_LEN(jwt__verdict_names) ? jwt__verdict_names[i] : "unknown";
}

/* Appends the base64url of data to out at *len (out_cap bounds it, NUL included). */
static int jwt__put_b64(const uint8_t *data, size_t data_len, char *out, size_t out_cap,
                        size_t *len)
{
    LMQ_ASSERT(*len < out_cap);
    int rc = crypto_b64url_encode(data, data_len, out + *len, out_cap - *len);
    if (rc == LMQ_OK)
        *len += CRYPTO_B64URL_CHARS(data_len);
    return rc;
}

static int jwt__put_char(char c, char *out, size_t out_cap, size_t *len)
{
    if (*len + 1 >= out_cap)
        return LMQ_ETOOBIG;
    out[(*len)++] = c;
    out[*len] = '\0';
    return LMQ_OK;
}

/* The canonical claims object; jti comes from the CSPRNG. */
static int jwt__claims(const char *sub, const char *iss, int64_t now_s, int64_t ttl_s,
                       struct lmq_buf *out)
{
    uint8_t raw[CRYPTO_JWT_JTI_RANDOM_BYTES];
    char jti[CRYPTO_JWT_JTI_CHARS + 1];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return LMQ_EIO;
    int rc = crypto_b64url_encode(raw, sizeof(raw), jti, sizeof(jti));
    LMQ_ASSERT(rc == LMQ_OK && strlen(jti) == CRYPTO_JWT_JTI_CHARS);
    json_t *claims = json_pack("{s:s,s:I,s:I,s:s}", "sub", sub, "iat", (json_int_t)now_s, "exp",
                               (json_int_t)(now_s + ttl_s), "jti", jti);
    if (claims == NULL)
        return LMQ_EINVAL; /* sub not UTF-8 (or no memory) */
    if (iss != NULL && json_object_set_new(claims, "iss", json_string(iss)) != 0) {
        json_decref(claims);
        return LMQ_EINVAL;
    }
    rc = crypto_jcs_canonicalize_json(claims, out, CRYPTO_JWT_MAX_BYTES);
    json_decref(claims);
    return rc;
}

int crypto_jwt_create(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES], const char *sub,
                      const char *iss, int64_t now_s, int64_t ttl_s, char *out, size_t out_cap,
                      size_t *out_len)
{
    LMQ_ASSERT(seed != NULL && sub != NULL && out_len != NULL);
    LMQ_ASSERT(out != NULL && out_cap > 0);
    *out_len = 0;
    out[0] = '\0';
    size_t sub_len = strlen(sub);
    if (sub_len == 0 || sub_len > CRYPTO_JWT_CLAIM_MAX_BYTES ||
        (iss != NULL && (iss[0] == '\0' || strlen(iss) > CRYPTO_JWT_CLAIM_MAX_BYTES)) ||
        ttl_s <= 0 || now_s < 0 || now_s > JWT__TIME_MAX_S - ttl_s)
        return LMQ_EINVAL;
    struct lmq_buf claims = {0};
    int rc = jwt__claims(sub, iss, now_s, ttl_s, &claims);
    size_t len = 0;
    if (rc == LMQ_OK)
        rc = jwt__put_b64((const uint8_t *)jwt__header, strlen(jwt__header), out, out_cap, &len);
    if (rc == LMQ_OK)
        rc = jwt__put_char('.', out, out_cap, &len);
    if (rc == LMQ_OK)
        rc = jwt__put_b64(claims.data, claims.len, out, out_cap, &len);
    uint8_t sig[CRYPTO_ED25519_SIG_BYTES];
    if (rc == LMQ_OK)
        rc = crypto_ed25519_sign(seed, (const uint8_t *)out, len, sig);
    if (rc == LMQ_OK)
        rc = jwt__put_char('.', out, out_cap, &len);
    if (rc == LMQ_OK)
        rc = jwt__put_b64(sig, sizeof(sig), out, out_cap, &len);
    lmq_buf_release(&claims);
    if (rc != LMQ_OK) {
        out[0] = '\0';
        return rc;
    }
    LMQ_ASSERT(len == strlen(out));
    *out_len = len;
    return LMQ_OK;
}

/* Decodes one base64url segment and parses it as a JSON object (duplicates refused). */
static json_t *jwt__segment_object(const char *seg, size_t seg_len)
{
    uint8_t raw[CRYPTO_JWT_MAX_BYTES];
    size_t raw_len = 0;
    if (seg_len == 0 || crypto_b64url_decode(seg, seg_len, raw, sizeof(raw), &raw_len) != LMQ_OK)
        return NULL;
    json_t *v = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Copies string member name (1..CRYPTO_JWT_CLAIM_MAX_BYTES bytes, no NUL) into out. */
static bool jwt__string_claim(json_t *claims, const char *name, char *out, size_t cap)
{
    json_t *v = json_object_get(claims, name);
    if (!json_is_string(v))
        return false;
    size_t len = json_string_length(v);
    if (len == 0 || len >= cap || strlen(json_string_value(v)) != len)
        return false;
    memcpy(out, json_string_value(v), len + 1);
    return true;
}

/* Checks the claims' presence and types, then the times. */
static enum crypto_jwt_verdict jwt__check_claims(json_t *claims, int64_t now_s, int64_t leeway_s,
                                                 struct crypto_jwt_claims *out)
{
    memset(out, 0, sizeof(*out));
    json_t *iat = json_object_get(claims, "iat");
    json_t *exp = json_object_get(claims, "exp");
    if (!jwt__string_claim(claims, "sub", out->sub, sizeof(out->sub)) ||
        !jwt__string_claim(claims, "jti", out->jti, sizeof(out->jti)) ||
        strlen(out->jti) != CRYPTO_JWT_JTI_CHARS || !json_is_integer(iat) || !json_is_integer(exp))
        return CRYPTO_JWT_BAD_CLAIMS;
    if (json_object_get(claims, "iss") != NULL &&
        !jwt__string_claim(claims, "iss", out->iss, sizeof(out->iss)))
        return CRYPTO_JWT_BAD_CLAIMS;
    out->iat_s = json_integer_value(iat);
    out->exp_s = json_integer_value(exp);
    if (out->exp_s <= out->iat_s || out->iat_s < 0 || out->exp_s > JWT__TIME_MAX_S)
        return CRYPTO_JWT_BAD_CLAIMS;
    if (now_s >= out->exp_s + leeway_s)
        return CRYPTO_JWT_EXPIRED;
    if (out->iat_s > now_s + leeway_s)
        return CRYPTO_JWT_NOT_YET_VALID;
    return CRYPTO_JWT_VALID;
}

/* Header rules: an object whose alg is exactly "EdDSA", typ (if any) "JWT", and no "crit"
 * (we implement no extension, so we must not accept one we would ignore). */
static enum crypto_jwt_verdict jwt__check_header(json_t *header)
{
    json_t *alg = json_object_get(header, "alg");
    json_t *typ = json_object_get(header, "typ");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "EdDSA") != 0 ||
        json_string_length(alg) != strlen("EdDSA") || json_object_get(header, "crit") != NULL)
        return CRYPTO_JWT_BAD_ALG;
    if (typ != NULL && (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0))
        return CRYPTO_JWT_MALFORMED;
    return CRYPTO_JWT_VALID;
}

/* Splits token at its two dots; false unless there are exactly three non-empty segments. */
static bool jwt__split(const char *token, size_t len, size_t start[JWT__SEGMENTS],
                       size_t seg_len[JWT__SEGMENTS])
{
    size_t n = 0;
    start[0] = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] != '.')
            continue;
        if (n + 1 >= JWT__SEGMENTS)
            return false;
        seg_len[n] = i - start[n];
        start[++n] = i + 1;
    }
    if (n + 1 != JWT__SEGMENTS)
        return false;
    seg_len[n] = len - start[n];
    for (size_t k = 0; k < JWT__SEGMENTS; k++) {
        if (seg_len[k] == 0)
            return false;
    }
    return true;
}

int crypto_jwt_verify(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES], const char *token,
                      size_t token_len, int64_t now_s, int64_t leeway_s,
                      struct crypto_jwt_claims *claims, enum crypto_jwt_verdict *verdict)
{
    LMQ_ASSERT(pub != NULL && claims != NULL && verdict != NULL);
    LMQ_ASSERT(leeway_s >= 0 && leeway_s <= CRYPTO_JWT_LEEWAY_MAX_S);
    LMQ_ASSERT(token != NULL || token_len == 0);
    memset(claims, 0, sizeof(*claims));
    *verdict = CRYPTO_JWT_MALFORMED;
    size_t start[JWT__SEGMENTS];
    size_t seg_len[JWT__SEGMENTS];
    if (token_len > CRYPTO_JWT_MAX_BYTES || !jwt__split(token, token_len, start, seg_len))
        return LMQ_EPROTO;
    json_t *header = jwt__segment_object(token + start[0], seg_len[0]);
    json_t *payload = NULL;
    if (header == NULL)
        goto out;
    *verdict = jwt__check_header(header);
    if (*verdict != CRYPTO_JWT_VALID)
        goto out;
    *verdict = CRYPTO_JWT_MALFORMED;
    uint8_t sig[CRYPTO_ED25519_SIG_BYTES];
    size_t sig_len = 0;
    if (crypto_b64url_decode(token + start[2], seg_len[2], sig, sizeof(sig), &sig_len) != LMQ_OK ||
        sig_len != sizeof(sig))
        goto out;
    /* The signature covers the header and payload segments as sent, dot included. */
    if (!crypto_ed25519_verify(pub, (const uint8_t *)token, start[2] - 1, sig)) {
        *verdict = CRYPTO_JWT_BAD_SIGNATURE;
        goto out;
    }
    payload = jwt__segment_object(token + start[1], seg_len[1]);
    if (payload != NULL)
        *verdict = jwt__check_claims(payload, now_s, leeway_s, claims);
out:
    json_decref(header);
    json_decref(payload);
    if (*verdict != CRYPTO_JWT_VALID)
        memset(claims, 0, sizeof(*claims));
    return *verdict == CRYPTO_JWT_VALID ? LMQ_OK : LMQ_EPROTO;
}
