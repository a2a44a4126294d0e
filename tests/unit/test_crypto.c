/* Crypto foundations: RFC 8032 Ed25519 vectors, strict encodings, identity key files and EdDSA
 * JWTs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/lmq.h"
#include "crypto/ed25519.h"
#include "crypto/encoding.h"
#include "crypto/jwt.h"
#include "crypto/keyfile.h"
#include "crypto/mqtt_auth.h"

#define TEST_ERR_BYTES 512
#define TEST_MSG_MAX_BYTES 64
#define TEST_NOW_S 1800000000
#define TEST_TTL_S 3600

static void hex_to(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
    assert_int_equal(crypto_hex_decode(hex, strlen(hex), out, cap, len), LMQ_OK);
}

/* ---- Ed25519: RFC 8032 §7.1 ---- */

static const struct {
    const char *name, *seed, *pub, *msg, *sig;
} rfc8032[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
     "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

static void test_ed25519_rfc8032_vectors(void **state)
{
    (void)state;
    for (size_t v = 0; v < LMQ_ARRAY_LEN(rfc8032); v++) {
        uint8_t seed[32], pub[32], want_pub[32], sig[64], want_sig[64], msg[TEST_MSG_MAX_BYTES];
        size_t n = 0, msg_len = 0;
        hex_to(rfc8032[v].seed, seed, sizeof(seed), &n);
        hex_to(rfc8032[v].pub, want_pub, sizeof(want_pub), &n);
        hex_to(rfc8032[v].msg, msg, sizeof(msg), &msg_len);
        hex_to(rfc8032[v].sig, want_sig, sizeof(want_sig), &n);
        assert_int_equal(crypto_ed25519_public(seed, pub), LMQ_OK);
        assert_memory_equal(pub, want_pub, 32);
        assert_int_equal(crypto_ed25519_sign(seed, msg, msg_len, sig), LMQ_OK);
        assert_memory_equal(sig, want_sig, 64);
        assert_true(crypto_ed25519_verify(pub, msg, msg_len, sig));
        /* A flipped bit anywhere fails: in the message (or one byte more), signature, key. */
        if (msg_len > 0) {
            msg[msg_len / 2] ^= 0x01;
            assert_false(crypto_ed25519_verify(pub, msg, msg_len, sig));
            msg[msg_len / 2] ^= 0x01;
        } else {
            msg[0] = 0;
            assert_false(crypto_ed25519_verify(pub, msg, 1, sig));
        }
        for (size_t bit = 0; bit < 64 * 8; bit += 61) {
            sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            assert_false(crypto_ed25519_verify(pub, msg, msg_len, sig));
            sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        pub[7] ^= 0x10;
        assert_false(crypto_ed25519_verify(pub, msg, msg_len, sig));
    }
}

/* ---- Encodings ---- */

static void test_hex_round_trip_and_strictness(void **state)
{
    (void)state;
    uint8_t in[256], out[256];
    char text[513];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    for (size_t len = 0; len <= sizeof(in); len += 17) {
        size_t n = 99;
        assert_int_equal(crypto_hex_encode(in, len, text, sizeof(text)), LMQ_OK);
        assert_int_equal(strlen(text), 2 * len);
        assert_int_equal(crypto_hex_decode(text, 2 * len, out, sizeof(out), &n), LMQ_OK);
        assert_int_equal(n, len);
        assert_memory_equal(in, out, len);
    }
    assert_int_equal(crypto_hex_encode(in, 3, text, 7), LMQ_OK);
    assert_string_equal(text, "000102");
    assert_int_equal(crypto_hex_encode(in, 3, text, 6), LMQ_ETOOBIG);
    assert_string_equal(text, "");
    size_t n;
    assert_int_equal(crypto_hex_decode("0", 1, out, sizeof(out), &n), LMQ_EINVAL);
    assert_int_equal(crypto_hex_decode("AB", 2, out, sizeof(out), &n), LMQ_EINVAL);
    assert_int_equal(crypto_hex_decode("0g", 2, out, sizeof(out), &n), LMQ_EINVAL);
    assert_int_equal(crypto_hex_decode(" 0", 2, out, sizeof(out), &n), LMQ_EINVAL);
    assert_int_equal(crypto_hex_decode("0011", 4, out, 1, &n), LMQ_ETOOBIG);
    assert_int_equal(crypto_hex_decode("ff", 2, out, 1, &n), LMQ_OK);
    assert_int_equal(out[0], 0xff);
}

static void test_base64url_rfc4648_vectors_and_strictness(void **state)
{
    (void)state;
    /* RFC 4648 §10 vectors without padding. */
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char text[64];
    uint8_t out[64];
    size_t n;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(plain); i++) {
        assert_int_equal(
            crypto_b64url_encode((const uint8_t *)plain[i], strlen(plain[i]), text, sizeof(text)),
            LMQ_OK);
        assert_string_equal(text, enc[i]);
        assert_int_equal(crypto_b64url_decode(enc[i], strlen(enc[i]), out, sizeof(out), &n),
                         LMQ_OK);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
    }
    const uint8_t hi[] = {0xfb, 0xff, 0xbf};
    assert_int_equal(crypto_b64url_encode(hi, 3, text, sizeof(text)), LMQ_OK);
    assert_string_equal(text, "-_-_");
    static const char *bad[] = {"Zg==", "Zm9=",  "Z",      "Zm9vY",   "Zh", "Zm9",  "Zm+v",
                                "Zm/v", "Zm9 v", "Zm9v\n", "Zm\x80v", "=",  "Zm9v="};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        /* "Zh" and "Zm9" carry non-zero unused bits ("fo" is only "Zm8"). */
        if (crypto_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) != LMQ_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(crypto_b64url_decode("Zm9w", 4, out, 2, &n), LMQ_ETOOBIG);
    assert_int_equal(crypto_b64url_encode(hi, 3, text, 4), LMQ_ETOOBIG);
}

static void test_base64_padded_vectors_and_strictness(void **state)
{
    (void)state;
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char text[64];
    uint8_t out[64];
    size_t n;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(plain); i++) {
        assert_int_equal(
            crypto_b64_encode((const uint8_t *)plain[i], strlen(plain[i]), text, sizeof(text)),
            LMQ_OK);
        assert_string_equal(text, enc[i]);
        assert_int_equal(crypto_b64_decode(enc[i], strlen(enc[i]), out, sizeof(out), &n), LMQ_OK);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
    }
    const uint8_t hi[] = {0xfb, 0xff, 0xbf};
    assert_int_equal(crypto_b64_encode(hi, 3, text, sizeof(text)), LMQ_OK);
    assert_string_equal(text, "+/+/");
    static const char *bad[] = {"Zg",   "Zg=",      "Zg===", "Z===",  "Zh==",  "Zm9=",  "Zm-v",
                                "Zm_v", "Zg==Zg==", "=Zg=",  "Zm9v ", " Zm9v", "Zm\nv", "===="};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        if (crypto_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) != LMQ_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(crypto_b64_decode("Zm9vYmFy", 8, out, 5, &n), LMQ_ETOOBIG);
}

/* ---- Key files ---- */

static void temp_dir(char *dir, size_t cap)
{
    assert_true((size_t)snprintf(dir, cap, "/tmp/test_crypto_XXXXXX") < cap);
    assert_non_null(mkdtemp(dir));
}

static void test_identity_id_is_sha256_of_pub(void **state)
{
    (void)state;
    /* sha256 of RFC 8032 TEST 1's public key. */
    uint8_t pub[32];
    size_t n;
    hex_to(rfc8032[0].pub, pub, sizeof(pub), &n);
    char id[CRYPTO_IDENTITY_ID_BYTES];
    assert_int_equal(crypto_identity_id(pub, id), LMQ_OK);
    assert_int_equal(strlen(id), 64);
    assert_true(crypto_identity_id_valid(id, 64));
    assert_false(crypto_identity_id_valid(id, 63));
    id[0] = 'A';
    assert_false(crypto_identity_id_valid(id, 64));
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

static void test_keyfile_round_trip_mode_and_exclusive(void **state)
{
    (void)state;
    char dir[64], path[128], err[TEST_ERR_BYTES];
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/id.json", dir);
    struct crypto_identity a, b;
    assert_int_equal(crypto_ed25519_generate(a.seed, a.pub), LMQ_OK);
    assert_int_equal(crypto_identity_from_seed(a.seed, &a), LMQ_OK);
    assert_int_equal(crypto_keyfile_save(path, &a, false, err, sizeof(err)), LMQ_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(crypto_keyfile_load(path, &b, err, sizeof(err)), LMQ_OK);
    assert_memory_equal(a.seed, b.seed, 32);
    assert_memory_equal(a.pub, b.pub, 32);
    assert_string_equal(a.id, b.id);

    /* O_EXCL semantics: refused without overwrite, replaced with it. */
    struct crypto_identity c;
    assert_int_equal(crypto_ed25519_generate(c.seed, c.pub), LMQ_OK);
    assert_int_equal(crypto_identity_from_seed(c.seed, &c), LMQ_OK);
    assert_int_equal(crypto_keyfile_save(path, &c, false, err, sizeof(err)), LMQ_EEXIST);
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(crypto_keyfile_load(path, &b, err, sizeof(err)), LMQ_OK);
    assert_string_equal(b.id, a.id);
    assert_int_equal(crypto_keyfile_save(path, &c, true, err, sizeof(err)), LMQ_OK);
    assert_int_equal(crypto_keyfile_load(path, &b, err, sizeof(err)), LMQ_OK);
    assert_string_equal(b.id, c.id);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* No temporary files are left behind. */
    char cmd[192];
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* Loads text written as a key file; returns the code and leaves the message in err. */
static int load_text(const char *text, mode_t mode, char *err, size_t err_len)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/id.json", dir);
    write_text(path, text, mode);
    struct crypto_identity ident;
    int rc = crypto_keyfile_load(path, &ident, err, err_len);
    unlink(path);
    rmdir(dir);
    return rc;
}

static void test_keyfile_tampering_rejected_with_clear_message(void **state)
{
    (void)state;
    /* A valid file for RFC 8032 TEST 1, then one change at a time. */
    struct crypto_identity id1, id2;
    size_t n;
    hex_to(rfc8032[0].seed, id1.seed, 32, &n);
    assert_int_equal(crypto_identity_from_seed(id1.seed, &id1), LMQ_OK);
    hex_to(rfc8032[1].seed, id2.seed, 32, &n);
    assert_int_equal(crypto_identity_from_seed(id2.seed, &id2), LMQ_OK);
    char d1[44], x1[44], x2[44];
    assert_int_equal(crypto_b64url_encode(id1.seed, 32, d1, sizeof(d1)), LMQ_OK);
    assert_int_equal(crypto_b64url_encode(id1.pub, 32, x1, sizeof(x1)), LMQ_OK);
    assert_int_equal(crypto_b64url_encode(id2.pub, 32, x2, sizeof(x2)), LMQ_OK);
    char text[512], err[TEST_ERR_BYTES];
    const char *fmt =
        "{\"kty\":\"%s\",\"crv\":\"Ed25519\",\"d\":\"%s\",\"x\":\"%s\",\"id\":\"%s\"%s}";
    snprintf(text, sizeof(text), fmt, "OKP", d1, x1, id1.id, "");
    assert_int_equal(load_text(text, 0600, err, sizeof(err)), LMQ_OK);
    assert_int_equal(load_text(text, 0644, err, sizeof(err)), LMQ_EPROTO);
    assert_non_null(strstr(err, "accessible by group or others"));

    snprintf(text, sizeof(text), fmt, "OKP", d1, x2, id1.id, "");
    assert_int_equal(load_text(text, 0600, err, sizeof(err)), LMQ_EPROTO);
    assert_non_null(strstr(err, "\"x\" is not the public key of \"d\""));
    snprintf(text, sizeof(text), fmt, "OKP", d1, x1, id2.id, "");
    assert_int_equal(load_text(text, 0600, err, sizeof(err)), LMQ_EPROTO);
    assert_non_null(strstr(err, "\"id\" is not the SHA-256 of \"x\""));
    snprintf(text, sizeof(text), fmt, "EC", d1, x1, id1.id, "");
    assert_int_equal(load_text(text, 0600, err, sizeof(err)), LMQ_EPROTO);
    assert_non_null(strstr(err, "\"kty\" must be \"OKP\""));
    snprintf(text, sizeof(text), fmt, "OKP", d1, x1, id1.id, ",\"extra\":1");
    assert_int_equal(load_text(text, 0600, err, sizeof(err)), LMQ_EPROTO);
    assert_non_null(strstr(err, "unknown member \"extra\""));
    d1[42] = d1[42] == 'A' ? 'B' : 'A'; /* changes the seed or breaks the trailing bits */
    snprintf(text, sizeof(text), fmt, "OKP", d1, x1, id1.id, "");
    assert_int_equal(load_text(text, 0600, err, sizeof(err)), LMQ_EPROTO);
    assert_true(strstr(err, "\"x\" is not the public key") != NULL ||
                strstr(err, "member \"d\" must be") != NULL);
    assert_int_equal(load_text("{\"kty\":", 0600, err, sizeof(err)), LMQ_EPROTO);
    assert_non_null(strstr(err, "not valid JSON"));
    struct crypto_identity ident;
    assert_int_equal(crypto_keyfile_load("/nonexistent/id.json", &ident, err, sizeof(err)),
                     LMQ_ENOTFOUND);
    assert_non_null(strstr(err, "/nonexistent/id.json"));
}

/* ---- JWT ---- */

struct jwt_fixture {
    uint8_t seed[32];
    uint8_t pub[32];
    char token[CRYPTO_JWT_MAX_BYTES];
    size_t len;
};

static void jwt_make(struct jwt_fixture *f, int64_t now_s, int64_t ttl_s)
{
    size_t n;
    hex_to(rfc8032[0].seed, f->seed, 32, &n);
    assert_int_equal(crypto_ed25519_public(f->seed, f->pub), LMQ_OK);
    assert_int_equal(crypto_jwt_create(f->seed, "alice", "ledgermq", now_s, ttl_s, f->token,
                                       sizeof(f->token), &f->len),
                     LMQ_OK);
    assert_int_equal(f->len, strlen(f->token));
}

static enum crypto_jwt_verdict jwt_check_leeway(const uint8_t *pub, const char *token,
                                                int64_t now_s, int64_t leeway_s)
{
    struct crypto_jwt_claims claims;
    enum crypto_jwt_verdict v = CRYPTO_JWT_VALID;
    int rc = crypto_jwt_verify(pub, token, strlen(token), now_s, leeway_s, &claims, &v);
    assert_int_equal(rc, v == CRYPTO_JWT_VALID ? LMQ_OK : LMQ_EPROTO);
    return v;
}

/* The server's own check: no leeway (its default [auth] token_leeway_s). */
static enum crypto_jwt_verdict jwt_check(const uint8_t *pub, const char *token, int64_t now_s)
{
    return jwt_check_leeway(pub, token, now_s, 0);
}

static void test_jwt_create_verify_claims(void **state)
{
    (void)state;
    struct jwt_fixture f;
    jwt_make(&f, TEST_NOW_S, TEST_TTL_S);
    /* The header is exactly {"alg":"EdDSA","typ":"JWT"}. */
    assert_memory_equal(f.token, "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.", 37);
    struct crypto_jwt_claims claims;
    enum crypto_jwt_verdict v;
    assert_int_equal(crypto_jwt_verify(f.pub, f.token, f.len, TEST_NOW_S + 10, 0, &claims, &v), 0);
    assert_int_equal(v, CRYPTO_JWT_VALID);
    assert_string_equal(claims.sub, "alice");
    assert_string_equal(claims.iss, "ledgermq");
    assert_int_equal(claims.iat_s, TEST_NOW_S);
    assert_int_equal(claims.exp_s, TEST_NOW_S + TEST_TTL_S);
    assert_int_equal(strlen(claims.jti), CRYPTO_JWT_JTI_CHARS);
    /* Two tokens differ by their random jti. */
    struct jwt_fixture g;
    jwt_make(&g, TEST_NOW_S, TEST_TTL_S);
    assert_string_not_equal(f.token, g.token);
    assert_string_equal(crypto_jwt_verdict_name(CRYPTO_JWT_EXPIRED), "expired");
    char out[CRYPTO_JWT_MAX_BYTES];
    size_t len;
    assert_int_equal(crypto_jwt_create(f.seed, "", NULL, TEST_NOW_S, 1, out, sizeof(out), &len),
                     LMQ_EINVAL);
    assert_int_equal(crypto_jwt_create(f.seed, "a", NULL, TEST_NOW_S, 0, out, sizeof(out), &len),
                     LMQ_EINVAL);
    assert_int_equal(crypto_jwt_create(f.seed, "a", NULL, TEST_NOW_S, 1, out, 100, &len),
                     LMQ_ETOOBIG);
}

/* Without leeway (the server's default) a token is refused from second exp on: no grace. */
static void test_jwt_expiry_without_leeway(void **state)
{
    (void)state;
    struct jwt_fixture f;
    jwt_make(&f, TEST_NOW_S, TEST_TTL_S);
    int64_t exp = TEST_NOW_S + TEST_TTL_S;
    assert_int_equal(jwt_check(f.pub, f.token, TEST_NOW_S), CRYPTO_JWT_VALID);
    assert_int_equal(jwt_check(f.pub, f.token, exp - 1), CRYPTO_JWT_VALID);
    assert_int_equal(jwt_check(f.pub, f.token, exp), CRYPTO_JWT_EXPIRED);
    assert_int_equal(jwt_check(f.pub, f.token, exp + 1), CRYPTO_JWT_EXPIRED);
    assert_int_equal(jwt_check(f.pub, f.token, exp + 59), CRYPTO_JWT_EXPIRED); /* the old grace */
    assert_int_equal(jwt_check(f.pub, f.token, exp + 100000), CRYPTO_JWT_EXPIRED);
    assert_int_equal(jwt_check(f.pub, f.token, TEST_NOW_S - 1), CRYPTO_JWT_NOT_YET_VALID);
}

/* A configured leeway extends both ends by exactly that many seconds, and no more. */
static void test_jwt_expiry_and_future_iat_with_leeway(void **state)
{
    (void)state;
    struct jwt_fixture f;
    jwt_make(&f, TEST_NOW_S, TEST_TTL_S);
    int64_t exp = TEST_NOW_S + TEST_TTL_S;
    const int64_t leeways[] = {1, 30, CRYPTO_JWT_LEEWAY_MAX_S};
    for (size_t i = 0; i < sizeof(leeways) / sizeof(leeways[0]); i++) {
        int64_t l = leeways[i];
        assert_int_equal(jwt_check_leeway(f.pub, f.token, exp + l - 1, l), CRYPTO_JWT_VALID);
        assert_int_equal(jwt_check_leeway(f.pub, f.token, exp + l, l), CRYPTO_JWT_EXPIRED);
        assert_int_equal(jwt_check_leeway(f.pub, f.token, TEST_NOW_S - l, l), CRYPTO_JWT_VALID);
        assert_int_equal(jwt_check_leeway(f.pub, f.token, TEST_NOW_S - l - 1, l),
                         CRYPTO_JWT_NOT_YET_VALID);
    }
}

/* Replaces segment idx of token with the base64url of json (or with raw text when raw). */
static void jwt_replace(char *token, size_t cap, int idx, const char *text, bool raw)
{
    char seg[3][CRYPTO_JWT_MAX_BYTES];
    char *save = NULL;
    char copy[CRYPTO_JWT_MAX_BYTES];
    snprintf(copy, sizeof(copy), "%s", token);
    int k = 0;
    for (char *p = strtok_r(copy, ".", &save); p != NULL && k < 3; p = strtok_r(NULL, ".", &save))
        snprintf(seg[k++], sizeof(seg[0]), "%s", p);
    assert_int_equal(k, 3);
    if (raw)
        snprintf(seg[idx], sizeof(seg[0]), "%s", text);
    else
        assert_int_equal(
            crypto_b64url_encode((const uint8_t *)text, strlen(text), seg[idx], sizeof(seg[0])),
            LMQ_OK);
    int n = snprintf(token, cap, "%s.%s.%s", seg[0], seg[1], seg[2]);
    assert_true(n > 0 && (size_t)n < cap);
}

static void test_jwt_tampering_and_wrong_alg(void **state)
{
    (void)state;
    struct jwt_fixture f;
    jwt_make(&f, TEST_NOW_S, TEST_TTL_S);
    char t[CRYPTO_JWT_MAX_BYTES];
    /* Header: alg none / HS256 / lowercase / missing, crit, typ. */
    static const char *bad_alg[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"HS256\"}",
                                    "{\"alg\":\"eddsa\"}", "{\"typ\":\"JWT\"}",
                                    "{\"alg\":\"EdDSA\",\"crit\":[\"x\"]}"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_alg); i++) {
        memcpy(t, f.token, f.len + 1);
        jwt_replace(t, sizeof(t), 0, bad_alg[i], false);
        assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_BAD_ALG);
    }
    /* Any change to the signed bytes breaks the signature: header, payload, signature, key. */
    memcpy(t, f.token, f.len + 1);
    jwt_replace(t, sizeof(t), 0, "{\"alg\":\"EdDSA\"}", false); /* valid header, other bytes */
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_BAD_SIGNATURE);
    memcpy(t, f.token, f.len + 1);
    jwt_replace(t, sizeof(t), 1,
                "{\"sub\":\"mallory\",\"iat\":1800000000,\"exp\":1900000000,"
                "\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
                false);
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_BAD_SIGNATURE);
    memcpy(t, f.token, f.len + 1);
    t[f.len - 5] = t[f.len - 5] == 'A' ? 'B' : 'A';
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_BAD_SIGNATURE);
    uint8_t other[32];
    memcpy(other, f.pub, 32);
    other[0] ^= 1;
    assert_int_equal(jwt_check(other, f.token, TEST_NOW_S), CRYPTO_JWT_BAD_SIGNATURE);
}

static void test_jwt_malformed_segments(void **state)
{
    (void)state;
    struct jwt_fixture f;
    jwt_make(&f, TEST_NOW_S, TEST_TTL_S);
    char t[CRYPTO_JWT_MAX_BYTES + 8];
    const char *dot1 = strchr(f.token, '.');
    const char *dot2 = strchr(dot1 + 1, '.');
    static const char *literal[] = {"", ".", "..", "a.b", "a.b.c.d", "abc"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(literal); i++)
        assert_int_equal(jwt_check(f.pub, literal[i], TEST_NOW_S), CRYPTO_JWT_MALFORMED);
    snprintf(t, sizeof(t), "%.*s", (int)(dot2 - f.token + 1), f.token); /* empty signature */
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_MALFORMED);
    snprintf(t, sizeof(t), "%s.", f.token); /* four segments */
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_MALFORMED);
    snprintf(t, sizeof(t), "%s=", f.token); /* padding */
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_MALFORMED);
    memcpy(t, f.token, f.len + 1);
    jwt_replace(t, sizeof(t), 0, "not json", false);
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_MALFORMED);
    memcpy(t, f.token, f.len + 1);
    jwt_replace(t, sizeof(t), 0, "e30*", true); /* invalid base64url character */
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_MALFORMED);
    memcpy(t, f.token, f.len + 1);
    jwt_replace(t, sizeof(t), 2, "AAAA", true); /* signature of the wrong length */
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_MALFORMED);
    memset(t, 'A', CRYPTO_JWT_MAX_BYTES + 1);
    t[10] = '.';
    t[20] = '.';
    t[CRYPTO_JWT_MAX_BYTES + 1] = '\0';
    assert_int_equal(jwt_check(f.pub, t, TEST_NOW_S), CRYPTO_JWT_MALFORMED);
}

/* A validly signed token whose claims are wrong: bad_claims, not a crash or a pass. */
static void test_jwt_signed_bad_claims(void **state)
{
    (void)state;
    struct jwt_fixture f;
    jwt_make(&f, TEST_NOW_S, TEST_TTL_S);
    static const char *claims[] = {
        "{\"iat\":1800000000,\"exp\":1800003600,\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        "{\"sub\":\"a\",\"iat\":1800000000.5,\"exp\":1800003600,\"jti\":"
        "\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        "{\"sub\":\"a\",\"iat\":1800000000,\"exp\":\"1800003600\",\"jti\":"
        "\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        "{\"sub\":\"a\",\"iat\":1800000000,\"exp\":1800003600}",
        "{\"sub\":7,\"iat\":1800000000,\"exp\":1800003600,\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        "{\"sub\":\"a\",\"iat\":1800003600,\"exp\":1800000000,\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        "{\"sub\":\"a\",\"iss\":5,\"iat\":1800000000,\"exp\":1800003600,"
        "\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(claims); i++) {
        char h[64], p[512], s[100], t[CRYPTO_JWT_MAX_BYTES];
        const char *header = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";
        assert_int_equal(
            crypto_b64url_encode((const uint8_t *)header, strlen(header), h, sizeof(h)), LMQ_OK);
        assert_int_equal(
            crypto_b64url_encode((const uint8_t *)claims[i], strlen(claims[i]), p, sizeof(p)),
            LMQ_OK);
        int n = snprintf(t, sizeof(t), "%s.%s", h, p);
        uint8_t sig[64];
        assert_int_equal(crypto_ed25519_sign(f.seed, (const uint8_t *)t, (size_t)n, sig), LMQ_OK);
        assert_int_equal(crypto_b64url_encode(sig, 64, s, sizeof(s)), LMQ_OK);
        snprintf(t + n, sizeof(t) - (size_t)n, ".%s", s);
        if (jwt_check(f.pub, t, TEST_NOW_S) != CRYPTO_JWT_BAD_CLAIMS)
            fail_msg("claims %zu accepted or misclassified: %s", i, claims[i]);
    }
}

/* ---- Login over MQTT: the worked example of docs/PROTOCOL.md "Login over MQTT" ---- */

#define EX_IDENTITY_SEED "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define EX_SERVER_SEED "4242424242424242424242424242424242424242424242424242424242424242"
#define EX_SERVER_ID "3097e2dee2cb4a34b53840cdb705aed71067c36f68db0e0f559c3f3fa043315f"
#define EX_MESSAGE                                                                                 \
    "6c65646765726d712d6d7174742d617574682d76310a"                                                 \
    "33303937653264656532636234613334623533383430636462373035616564373130363763333666363864623065" \
    "306635353963336633666130343333313566"                                                         \
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"                             \
    "73656e736f722d31"
#define EX_SIGNATURE                                                                               \
    "2047b25c9782671d4cb66774611fc2a79003fe9deb7293f02d0646b1dcdf81c9"                             \
    "b61d3d2fa4f77d2958768eae91a55eb18cb8ba7cd2b2318fd9fff4a52337d905"

static void test_mqtt_auth_worked_example(void **state)
{
    (void)state;
    uint8_t seed[32], server_seed[32], nonce[32], want_msg[256], msg[256], want_sig[64], sig[64];
    size_t n = 0, want_len = 0, len = 0;
    hex_to(EX_IDENTITY_SEED, seed, sizeof(seed), &n);
    hex_to(EX_SERVER_SEED, server_seed, sizeof(server_seed), &n);
    hex_to(EX_MESSAGE, want_msg, sizeof(want_msg), &want_len);
    hex_to(EX_SIGNATURE, want_sig, sizeof(want_sig), &n);
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)i;
    struct crypto_identity ident, server;
    assert_int_equal(crypto_identity_from_seed(seed, &ident), LMQ_OK);
    assert_string_equal(ident.id,
                        "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9");
    assert_int_equal(crypto_identity_from_seed(server_seed, &server), LMQ_OK);
    assert_string_equal(server.id, EX_SERVER_ID);
    const uint8_t *cid = (const uint8_t *)"sensor-1";
    assert_int_equal(crypto_mqtt_auth_message(server.id, nonce, cid, 8, msg, sizeof(msg), &len),
                     LMQ_OK);
    assert_int_equal(len, 126);
    assert_int_equal(len, want_len);
    assert_memory_equal(msg, want_msg, len);
    assert_int_equal(crypto_ed25519_sign(seed, msg, len, sig), LMQ_OK);
    assert_memory_equal(sig, want_sig, 64);
    assert_true(crypto_mqtt_auth_verify(ident.pub, server.id, nonce, cid, 8, sig));
    /* Any other server, nonce, client id or key: refused. */
    char other_server[CRYPTO_IDENTITY_ID_BYTES];
    memcpy(other_server, server.id, sizeof(other_server));
    other_server[0] = other_server[0] == '0' ? '1' : '0';
    assert_false(crypto_mqtt_auth_verify(ident.pub, other_server, nonce, cid, 8, sig));
    nonce[31] ^= 1;
    assert_false(crypto_mqtt_auth_verify(ident.pub, server.id, nonce, cid, 8, sig));
    nonce[31] ^= 1;
    assert_false(crypto_mqtt_auth_verify(ident.pub, server.id, nonce, cid, 7, sig));
    assert_false(
        crypto_mqtt_auth_verify(ident.pub, server.id, nonce, (const uint8_t *)"sensor-2", 8, sig));
    assert_false(crypto_mqtt_auth_verify(server.pub, server.id, nonce, cid, 8, sig));
    /* The HTTP login's message for the same nonce text is a different message. */
    assert_false(crypto_ed25519_verify(ident.pub, (const uint8_t *)"ledgermq-auth-v1:", 17, sig));
    /* Bounds: a server id that is not an id, a small buffer, a long (heap) client id. */
    assert_int_equal(crypto_mqtt_auth_message("ABC", nonce, cid, 8, msg, sizeof(msg), &len),
                     LMQ_EINVAL);
    assert_int_equal(crypto_mqtt_auth_message(server.id, nonce, cid, 8, msg, 125, &len),
                     LMQ_ETOOBIG);
    size_t long_len = 1000;
    uint8_t *long_id = malloc(long_len);
    uint8_t *long_msg = malloc(CRYPTO_MQTT_AUTH_FIXED_BYTES + long_len);
    assert_non_null(long_id);
    assert_non_null(long_msg);
    memset(long_id, 'x', long_len);
    assert_int_equal(crypto_mqtt_auth_message(server.id, nonce, long_id, long_len, long_msg,
                                              CRYPTO_MQTT_AUTH_FIXED_BYTES + long_len, &len),
                     LMQ_OK);
    assert_int_equal(crypto_ed25519_sign(seed, long_msg, len, sig), LMQ_OK);
    assert_true(crypto_mqtt_auth_verify(ident.pub, server.id, nonce, long_id, long_len, sig));
    free(long_id);
    free(long_msg);
}

/* The signing key is kept per thread for the last seed: alternating seeds must still sign (and
 * derive public keys) with the right one each time. */
static void test_ed25519_alternating_seeds_use_their_own_key(void **state)
{
    (void)state;
    uint8_t seeds[2][CRYPTO_ED25519_SEED_BYTES], pubs[2][CRYPTO_ED25519_PUB_BYTES];
    for (int i = 0; i < 2; i++)
        assert_int_equal(crypto_ed25519_generate(seeds[i], pubs[i]), LMQ_OK);
    static const uint8_t msg[] = "one message";
    for (int round = 0; round < 6; round++) {
        int k = round % 2 == 0 || round == 5 ? 0 : 1;
        uint8_t sig[CRYPTO_ED25519_SIG_BYTES], pub[CRYPTO_ED25519_PUB_BYTES];
        assert_int_equal(crypto_ed25519_sign(seeds[k], msg, sizeof(msg), sig), LMQ_OK);
        assert_true(crypto_ed25519_verify(pubs[k], msg, sizeof(msg), sig));
        assert_false(crypto_ed25519_verify(pubs[1 - k], msg, sizeof(msg), sig));
        assert_int_equal(crypto_ed25519_public(seeds[1 - k], pub), LMQ_OK);
        assert_memory_equal(pub, pubs[1 - k], sizeof(pub));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ed25519_rfc8032_vectors),
        cmocka_unit_test(test_ed25519_alternating_seeds_use_their_own_key),
        cmocka_unit_test(test_hex_round_trip_and_strictness),
        cmocka_unit_test(test_base64url_rfc4648_vectors_and_strictness),
        cmocka_unit_test(test_base64_padded_vectors_and_strictness),
        cmocka_unit_test(test_identity_id_is_sha256_of_pub),
        cmocka_unit_test(test_keyfile_round_trip_mode_and_exclusive),
        cmocka_unit_test(test_keyfile_tampering_rejected_with_clear_message),
        cmocka_unit_test(test_jwt_create_verify_claims),
        cmocka_unit_test(test_jwt_expiry_without_leeway),
        cmocka_unit_test(test_jwt_expiry_and_future_iat_with_leeway),
        cmocka_unit_test(test_jwt_tampering_and_wrong_alg),
        cmocka_unit_test(test_jwt_malformed_segments),
        cmocka_unit_test(test_jwt_signed_bad_claims),
        cmocka_unit_test(test_mqtt_auth_worked_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
