/*
 * scrypt password hashes and the password file (format in passwd.h). scrypt through OpenSSL's
 * EVP_PBE_scrypt; comparison with CRYPTO_memcmp so the time taken says nothing about how much
 * of the hash matched.
 */
#include "crypto/passwd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/map.h"
#include "crypto/encoding.h"
#include "crypto/keyfile.h"

#define PASSWD_PREFIX "$scrypt$"
#define PASSWD_SALT_BYTES 16
#define PASSWD_KEY_BYTES 32
#define PASSWD_SALT_MIN_BYTES 8
#define PASSWD_KEY_MIN_BYTES 16
#define PASSWD_BLOB_MAX_BYTES 64
/* scrypt parameter bounds we accept: beyond them a login costs too much time or memory. */
#define PASSWD_N_MAX (1u << 20)
#define PASSWD_R_MAX 32u
#define PASSWD_P_MAX 16u
/* Decimal digits of the largest parameter we accept (N_MAX has 7). */
#define PASSWD_NUMBER_DIGITS_MAX 8

/* mosquitto's own hashes, read so that a mosquitto password file moves over as it is. */
#define PASSWD_MOSQ_PBKDF2_PREFIX "$7$"
#define PASSWD_MOSQ_SHA512_PREFIX "$6$"
#define PASSWD_MOSQ_KEY_BYTES 64 /* SHA-512 */
/* PBKDF2 iterations accepted: mosquitto_passwd writes 101 (its -I sets others); more than
 * this would let one login cost seconds of CPU. */
#define PASSWD_PBKDF2_ITERATIONS_MAX 1000000u

enum passwd_kind {
    PASSWD_SCRYPT = 0,  /* $scrypt$: what `ledgermq passwd` writes */
    PASSWD_MOSQ_PBKDF2, /* $7$<iterations>$<salt>$<hash>: PBKDF2-HMAC-SHA512 (mosquitto 2) */
    PASSWD_MOSQ_SHA512, /* $6$<salt>$<hash>: SHA-512(password || salt) (mosquitto 1.x) */
};

struct passwd_parsed {
    enum passwd_kind kind;
    uint32_t iterations; /* PASSWD_MOSQ_PBKDF2 */
    struct crypto_scrypt_params params;
    uint8_t salt[PASSWD_BLOB_MAX_BYTES];
    size_t salt_len;
    uint8_t key[PASSWD_BLOB_MAX_BYTES];
    size_t key_len;
};

struct crypto_passwd_file {
    struct lmq_map *users; /* user name -> NUL-terminated hash text (malloc'd) */
};

/* Reads "<name>=<decimal>" at *p (before end) into *out; advances *p past it. */
static bool passwd_number(const char **p, const char *end, char name, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    if (end - s < 3 || s[0] != name || s[1] != '=' || s[2] < '1' || s[2] > '9')
        return false; /* no leading zero: one spelling per value */
    s += 2;
    uint64_t v = 0;
    size_t digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > PASSWD_NUMBER_DIGITS_MAX)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (v > max)
        return false;
    *out = v;
    *p = s;
    return true;
}

/* True when scrypt accepts the parameters within CRYPTO_PASSWD_SCRYPT_MAXMEM_BYTES (the same
 * checks as OpenSSL's scrypt KDF, so a file that loads can also be used). */
static bool passwd_params_usable(const struct crypto_scrypt_params *pp)
{
    LMQ_ASSERT(pp != NULL);
    if (pp->n < 2 || pp->n > PASSWD_N_MAX || (pp->n & (pp->n - 1)) != 0)
        return false;
    if (pp->r < 1 || pp->r > PASSWD_R_MAX || pp->p < 1 || pp->p > PASSWD_P_MAX)
        return false;
    if (16u * pp->r < 64u && pp->n >= ((uint64_t)1 << (16u * pp->r)))
        return false; /* scrypt needs N < 2^(128 r / 8) */
    uint64_t mem = 128ull * pp->r * pp->p + 128ull * pp->r * (pp->n + 2);
    LMQ_ASSERT(mem > 0);
    return mem <= CRYPTO_PASSWD_SCRYPT_MAXMEM_BYTES;
}

/* Decodes one base64 field of [s, end) into out (min..PASSWD_BLOB_MAX_BYTES bytes). */
static bool passwd_blob(const char *s, const char *end, size_t min, uint8_t *out, size_t *len)
{
    if (end <= s || (size_t)(end - s) > CRYPTO_B64_CHARS(PASSWD_BLOB_MAX_BYTES))
        return false;
    return crypto_b64_decode(s, (size_t)(end - s), out, PASSWD_BLOB_MAX_BYTES, len) == LMQ_OK &&
           *len >= min;
}

/* The salt and hash fields of [p, end): "<salt>$<hash>", the hash exactly key_len bytes when
 * key_len is not 0. */
static bool passwd_salt_and_key(const char *p, const char *end, size_t key_len,
                                struct passwd_parsed *out)
{
    const char *dollar = memchr(p, '$', (size_t)(end - p));
    if (dollar == NULL ||
        !passwd_blob(p, dollar, PASSWD_SALT_MIN_BYTES, out->salt, &out->salt_len) ||
        !passwd_blob(dollar + 1, end, PASSWD_KEY_MIN_BYTES, out->key, &out->key_len))
        return false;
    return key_len == 0 || out->key_len == key_len;
}

/* mosquitto's "$7$<iterations>$<salt>$<hash>" and "$6$<salt>$<hash>". */
static int passwd_parse_mosquitto(const char *hash, size_t len, struct passwd_parsed *out)
{
    const char *end = hash + len;
    const size_t prefix_len = 3;
    if (len > prefix_len && memcmp(hash, PASSWD_MOSQ_SHA512_PREFIX, prefix_len) == 0) {
        out->kind = PASSWD_MOSQ_SHA512;
        return passwd_salt_and_key(hash + prefix_len, end, PASSWD_MOSQ_KEY_BYTES, out) ? LMQ_OK
                                                                                       : LMQ_EINVAL;
    }
    if (len <= prefix_len || memcmp(hash, PASSWD_MOSQ_PBKDF2_PREFIX, prefix_len) != 0)
        return LMQ_EINVAL;
    out->kind = PASSWD_MOSQ_PBKDF2;
    const char *p = hash + prefix_len;
    uint64_t iterations = 0;
    size_t digits = 0;
    if (p == end || *p < '1' || *p > '9')
        return LMQ_EINVAL; /* no leading zero, no sign */
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > PASSWD_NUMBER_DIGITS_MAX)
            return LMQ_EINVAL;
        iterations = iterations * 10 + (uint64_t)(*p++ - '0');
    }
    if (iterations > PASSWD_PBKDF2_ITERATIONS_MAX || p == end || *p++ != '$')
        return LMQ_EINVAL;
    out->iterations = (uint32_t)iterations;
    return passwd_salt_and_key(p, end, PASSWD_MOSQ_KEY_BYTES, out) ? LMQ_OK : LMQ_EINVAL;
}

static int passwd_parse(const char *hash, size_t len, struct passwd_parsed *out)
{
    LMQ_ASSERT(hash != NULL || len == 0);
    LMQ_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (len > CRYPTO_PASSWD_HASH_MAX_CHARS)
        return LMQ_EINVAL;
    if (len >= 3 && hash[0] == '$' && (hash[1] == '6' || hash[1] == '7') && hash[2] == '$')
        return passwd_parse_mosquitto(hash, len, out);
    out->kind = PASSWD_SCRYPT;
    const size_t prefix_len = sizeof(PASSWD_PREFIX) - 1;
    if (len > CRYPTO_PASSWD_HASH_MAX_CHARS || len < prefix_len ||
        memcmp(hash, PASSWD_PREFIX, prefix_len) != 0)
        return LMQ_EINVAL;
    const char *p = hash + prefix_len, *end = hash + len;
    uint64_t n = 0, r = 0, par = 0;
    if (!passwd_number(&p, end, 'N', PASSWD_N_MAX, &n) || p == end || *p++ != ',' ||
        !passwd_number(&p, end, 'r', PASSWD_R_MAX, &r) || p == end || *p++ != ',' ||
        !passwd_number(&p, end, 'p', PASSWD_P_MAX, &par) || p == end || *p++ != '$')
        return LMQ_EINVAL;
    out->params = (struct crypto_scrypt_params){.n = n, .r = (uint32_t)r, .p = (uint32_t)par};
    if (!passwd_params_usable(&out->params))
        return LMQ_EINVAL;
    return passwd_salt_and_key(p, end, 0, out) ? LMQ_OK : LMQ_EINVAL;
}

/* The key of a mosquitto hash for password (key_len = PASSWD_MOSQ_KEY_BYTES). */
static int passwd_derive_mosquitto(const uint8_t *password, size_t password_len,
                                   const struct passwd_parsed *pp, uint8_t *key)
{
    LMQ_ASSERT(pp->kind == PASSWD_MOSQ_PBKDF2 || pp->kind == PASSWD_MOSQ_SHA512);
    if (password_len > CRYPTO_PASSWD_PASSWORD_MAX_BYTES)
        return LMQ_EINVAL;
    static const char empty[1] = {0};
    const char *pass = password_len > 0 ? (const char *)password : empty;
    if (pp->kind == PASSWD_MOSQ_PBKDF2) {
        LMQ_ASSERT(pp->iterations >= 1 && pp->iterations <= PASSWD_PBKDF2_ITERATIONS_MAX);
        return PKCS5_PBKDF2_HMAC(pass, (int)password_len, pp->salt, (int)pp->salt_len,
                                 (int)pp->iterations, EVP_sha512(), PASSWD_MOSQ_KEY_BYTES, key) == 1
                   ? LMQ_OK
                   : LMQ_EIO;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int out_len = 0;
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, pass, password_len) == 1 &&
              EVP_DigestUpdate(ctx, pp->salt, pp->salt_len) == 1 &&
              EVP_DigestFinal_ex(ctx, key, &out_len) == 1 && out_len == PASSWD_MOSQ_KEY_BYTES;
    EVP_MD_CTX_free(ctx);
    return ok ? LMQ_OK : LMQ_EIO;
}

static int passwd_derive(const uint8_t *password, size_t password_len,
                         const struct crypto_scrypt_params *pp, const uint8_t *salt,
                         size_t salt_len, uint8_t *key, size_t key_len)
{
    LMQ_ASSERT(passwd_params_usable(pp));
    LMQ_ASSERT(key_len > 0 && key_len <= PASSWD_BLOB_MAX_BYTES);
    if (password_len > CRYPTO_PASSWD_PASSWORD_MAX_BYTES)
        return LMQ_EINVAL;
    /* OpenSSL treats a NULL password as empty; pass a real pointer either way. */
    static const char empty[1] = {0};
    const char *pass = password_len > 0 ? (const char *)password : empty;
    if (EVP_PBE_scrypt(pass, password_len, salt, salt_len, pp->n, pp->r, pp->p,
                       CRYPTO_PASSWD_SCRYPT_MAXMEM_BYTES, key, key_len) != 1)
        return LMQ_EIO;
    return LMQ_OK;
}

int crypto_passwd_hash(const uint8_t *password, size_t password_len,
                       const struct crypto_scrypt_params *params, char *out, size_t out_cap)
{
    LMQ_ASSERT(password != NULL || password_len == 0);
    LMQ_ASSERT(params != NULL && out != NULL && out_cap > 0);
    out[0] = '\0';
    if (!passwd_params_usable(params) || password_len > CRYPTO_PASSWD_PASSWORD_MAX_BYTES)
        return LMQ_EINVAL;
    uint8_t salt[PASSWD_SALT_BYTES], key[PASSWD_KEY_BYTES];
    char salt_b64[CRYPTO_B64_CHARS(PASSWD_SALT_BYTES) + 1];
    char key_b64[CRYPTO_B64_CHARS(PASSWD_KEY_BYTES) + 1];
    int rc = LMQ_EIO;
    if (RAND_bytes(salt, (int)sizeof(salt)) != 1)
        goto out;
    rc = passwd_derive(password, password_len, params, salt, sizeof(salt), key, sizeof(key));
    if (rc != LMQ_OK)
        goto out;
    if (crypto_b64_encode(salt, sizeof(salt), salt_b64, sizeof(salt_b64)) != LMQ_OK ||
        crypto_b64_encode(key, sizeof(key), key_b64, sizeof(key_b64)) != LMQ_OK) {
        rc = LMQ_EINVAL;
        goto out;
    }
    int n = snprintf(out, out_cap, PASSWD_PREFIX "N=%llu,r=%u,p=%u$%s$%s",
                     (unsigned long long)params->n, params->r, params->p, salt_b64, key_b64);
    rc = n > 0 && (size_t)n < out_cap ? LMQ_OK : LMQ_ETOOBIG;
    if (rc != LMQ_OK)
        out[0] = '\0';
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int crypto_passwd_hash_valid(const char *hash, size_t len)
{
    struct passwd_parsed parsed;
    return passwd_parse(hash, len, &parsed);
}

int crypto_passwd_verify(const char *hash, size_t hash_len, const uint8_t *password,
                         size_t password_len, bool *match)
{
    LMQ_ASSERT(hash != NULL && match != NULL);
    LMQ_ASSERT(password != NULL || password_len == 0);
    *match = false;
    struct passwd_parsed parsed;
    uint8_t key[PASSWD_BLOB_MAX_BYTES];
    int rc = passwd_parse(hash, hash_len, &parsed);
    if (rc != LMQ_OK)
        return rc;
    if (parsed.kind == PASSWD_SCRYPT)
        rc = passwd_derive(password, password_len, &parsed.params, parsed.salt, parsed.salt_len,
                           key, parsed.key_len);
    else
        rc = passwd_derive_mosquitto(password, password_len, &parsed, key);
    if (rc == LMQ_OK)
        *match = CRYPTO_memcmp(key, parsed.key, parsed.key_len) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

bool crypto_passwd_user_valid(const uint8_t *user, size_t len)
{
    if (user == NULL || len == 0 || len > CRYPTO_PASSWD_USER_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (user[i] <= 0x20 || user[i] == 0x7f || user[i] == ':')
            return false;
    }
    /* An identity id as user name would never be looked up: identities log in with tokens. */
    return user[0] != '#' && !crypto_identity_id_valid((const char *)user, len);
}

static bool passwd_free_value(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(ctx);
    LMQ_UNUSED(key);
    LMQ_UNUSED(key_len);
    free(value);
    return true;
}

void crypto_passwd_file_free(struct crypto_passwd_file *f)
{
    if (f == NULL)
        return;
    if (f->users != NULL) {
        lmq_map_visit(f->users, passwd_free_value, NULL);
        lmq_map_destroy(f->users);
    }
    free(f);
}

/* Adds one non-blank, non-comment line ("user:hash", without the newline). */
static int passwd_file_line(struct crypto_passwd_file *f, const char *line, size_t len,
                            size_t lineno, char *err, size_t err_len)
{
    LMQ_ASSERT(f != NULL && line != NULL && len > 0);
    const char *colon = memchr(line, ':', len);
    if (colon == NULL) {
        lmq_errf(err, err_len, "line %zu: expected user:hash", lineno);
        return LMQ_EINVAL;
    }
    size_t user_len = (size_t)(colon - line), hash_len = len - user_len - 1;
    if (!crypto_passwd_user_valid((const uint8_t *)line, user_len)) {
        lmq_errf(err, err_len,
                 "line %zu: bad user name (1..%d bytes, no ':', spaces or control characters, "
                 "not an identity id)",
                 lineno, CRYPTO_PASSWD_USER_MAX_BYTES);
        return LMQ_EINVAL;
    }
    if (crypto_passwd_hash_valid(colon + 1, hash_len) != LMQ_OK) {
        lmq_errf(err, err_len,
                 "line %zu: expected $scrypt$N=<n>,r=<r>,p=<p>$<salt>$<hash> (or mosquitto's "
                 "$7$<iterations>$<salt>$<hash> or $6$<salt>$<hash>)",
                 lineno);
        return LMQ_EINVAL;
    }
    if (lmq_map_get(f->users, (const uint8_t *)line, user_len) != NULL) {
        lmq_errf(err, err_len, "line %zu: user %.*s appears twice", lineno, (int)user_len, line);
        return LMQ_EINVAL;
    }
    if (lmq_map_count(f->users) >= CRYPTO_PASSWD_FILE_USERS_MAX) {
        lmq_errf(err, err_len, "line %zu: more than %d users", lineno,
                 CRYPTO_PASSWD_FILE_USERS_MAX);
        return LMQ_ELIMIT;
    }
    char *hash = malloc(hash_len + 1);
    if (hash == NULL)
        return LMQ_ENOMEM;
    memcpy(hash, colon + 1, hash_len);
    hash[hash_len] = '\0';
    if (lmq_map_put(f->users, (const uint8_t *)line, user_len, hash) != LMQ_OK) {
        free(hash);
        return LMQ_ENOMEM;
    }
    return LMQ_OK;
}

int crypto_passwd_file_parse(const char *text, size_t len, struct crypto_passwd_file **out,
                             char *err, size_t err_len)
{
    LMQ_ASSERT(text != NULL || len == 0);
    LMQ_ASSERT(out != NULL);
    *out = NULL;
    int rc = LMQ_ENOMEM;
    struct crypto_passwd_file *f = calloc(1, sizeof(*f));
    if (f == NULL || lmq_map_create(&f->users) != LMQ_OK)
        goto out;
    rc = LMQ_OK;
    size_t pos = 0, lineno = 0;
    /* One line per turn; each consumes at least its newline, so len bounds the loop. */
    while (pos < len && rc == LMQ_OK) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        const char *line = text + pos;
        pos += line_len + 1;
        lineno++;
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        if (memchr(line, '\0', line_len) != NULL) {
            lmq_errf(err, err_len, "line %zu: NUL byte", lineno);
            rc = LMQ_EINVAL;
        } else if (line_len > 0 && line[0] != '#') {
            rc = passwd_file_line(f, line, line_len, lineno, err, err_len);
        }
    }
out:
    if (rc != LMQ_OK) {
        crypto_passwd_file_free(f);
        return rc;
    }
    *out = f;
    return LMQ_OK;
}

int crypto_passwd_file_load(const char *path, struct crypto_passwd_file **out, char *err,
                            size_t err_len)
{
    LMQ_ASSERT(path != NULL && out != NULL);
    char *text = NULL;
    size_t len = 0;
    char msg[256] = "";
    int rc = lmq_file_read(path, CRYPTO_PASSWD_FILE_MAX_BYTES, &text, &len, err, err_len);
    if (rc != LMQ_OK)
        return rc;
    rc = crypto_passwd_file_parse(text, len, out, msg, sizeof(msg));
    if (rc != LMQ_OK)
        lmq_errf(err, err_len, "%s: %s", path, msg[0] != '\0' ? msg : lmq_strerror(rc));
    free(text);
    return rc;
}

const char *crypto_passwd_file_lookup(const struct crypto_passwd_file *f, const uint8_t *user,
                                      size_t user_len)
{
    LMQ_ASSERT(f != NULL && f->users != NULL);
    if (user_len == 0 || user_len > CRYPTO_PASSWD_USER_MAX_BYTES)
        return NULL;
    return lmq_map_get(f->users, user, user_len);
}

size_t crypto_passwd_file_count(const struct crypto_passwd_file *f)
{
    LMQ_ASSERT(f != NULL);
    return lmq_map_count(f->users);
}
