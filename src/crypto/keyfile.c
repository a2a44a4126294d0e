#include "crypto/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/encoding.h"
#include "crypto/hash.h"

/* Characters of a 32-byte key in base64url. */
#define KEYFILE__KEY_B64_CHARS CRYPTO_B64URL_CHARS(CRYPTO_ED25519_SEED_BYTES)
/* Members a key file has, no more. */
#define KEYFILE__MEMBER_COUNT 5

int crypto_identity_id(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                       char out[CRYPTO_IDENTITY_ID_BYTES])
{
    LMQ_ASSERT(pub != NULL && out != NULL);
    uint8_t digest[CRYPTO_SHA256_BYTES];
    int rc = crypto_sha256(pub, CRYPTO_ED25519_PUB_BYTES, digest);
    if (rc != LMQ_OK)
        return rc;
    rc = crypto_hex_encode(digest, sizeof(digest), out, CRYPTO_IDENTITY_ID_BYTES);
    LMQ_ASSERT(rc == LMQ_OK && strlen(out) == CRYPTO_IDENTITY_ID_CHARS);
    return LMQ_OK;
}

bool crypto_identity_id_valid(const char *text, size_t len)
{
    if (text == NULL || len != CRYPTO_IDENTITY_ID_CHARS)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

int crypto_identity_from_seed(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                              struct crypto_identity *ident)
{
    LMQ_ASSERT(seed != NULL && ident != NULL);
    if (ident->seed != seed)
        memcpy(ident->seed, seed, CRYPTO_ED25519_SEED_BYTES);
    int rc = crypto_ed25519_public(ident->seed, ident->pub);
    if (rc == LMQ_OK)
        rc = crypto_identity_id(ident->pub, ident->id);
    return rc;
}

/* Writes all of data to fd (a regular file: short writes only on error or a full disk). */
static int keyfile__write_all(int fd, const char *data, size_t len)
{
    size_t done = 0;
    /* Each successful write makes progress, so at most len iterations. */
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return LMQ_EIO;
        done += (size_t)n;
    }
    LMQ_ASSERT(done == len);
    return LMQ_OK;
}

/* fsyncs the directory holding path, so the new name survives a crash. */
static int keyfile__sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int n = slash == NULL   ? snprintf(dir, sizeof(dir), ".")
            : slash == path ? snprintf(dir, sizeof(dir), "/")
                            : snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(dir)); /* shorter than path, which fit */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return LMQ_EIO;
    int rc = fsync(fd) == 0 ? LMQ_OK : LMQ_EIO;
    close(fd);
    return rc;
}

/* The key file's text for ident into text (cleansed by the caller). */
static int keyfile__format(const struct crypto_identity *ident, char *text, size_t cap, size_t *len)
{
    char d[KEYFILE__KEY_B64_CHARS + 1];
    char x[KEYFILE__KEY_B64_CHARS + 1];
    int rc = crypto_b64url_encode(ident->seed, sizeof(ident->seed), d, sizeof(d));
    LMQ_ASSERT(rc == LMQ_OK);
    rc = crypto_b64url_encode(ident->pub, sizeof(ident->pub), x, sizeof(x));
    LMQ_ASSERT(rc == LMQ_OK);
    int n =
        snprintf(text, cap,
                 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"%s\",\"x\":\"%s\",\"id\":\"%s\"}\n",
                 d, x, ident->id);
    OPENSSL_cleanse(d, sizeof(d));
    LMQ_ASSERT(n > 0 && (size_t)n < cap);
    *len = (size_t)n;
    return LMQ_OK;
}

int crypto_keyfile_save(const char *path, const struct crypto_identity *ident, bool overwrite,
                        char *err, size_t err_len)
{
    LMQ_ASSERT(path != NULL && ident != NULL && err != NULL && err_len > 0);
    LMQ_ASSERT(crypto_identity_id_valid(ident->id, strlen(ident->id)));
    err[0] = '\0';
    char text[CRYPTO_KEYFILE_MAX_BYTES];
    char tmp[PATH_MAX];
    int fd = -1;
    int rc = LMQ_EIO;
    bool tmp_made = false;
    if (!overwrite && access(path, F_OK) == 0) {
        snprintf(err, err_len, "key file %s already exists", path);
        return LMQ_EEXIST;
    }
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        snprintf(err, err_len, "key file path too long: %s", path);
        return LMQ_EINVAL;
    }
    size_t len = 0;
    rc = keyfile__format(ident, text, sizeof(text), &len);
    LMQ_ASSERT(rc == LMQ_OK);
    rc = LMQ_EIO;
    fd = mkstemp(tmp); /* creates the file 0600 */
    if (fd < 0) {
        snprintf(err, err_len, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    tmp_made = true;
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || keyfile__write_all(fd, text, len) != LMQ_OK ||
        fsync(fd) != 0) {
        snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* link() fails on an existing name atomically, which rename() cannot do. */
    if ((overwrite ? rename(tmp, path) : link(tmp, path)) != 0) {
        rc = errno == EEXIST ? LMQ_EEXIST : LMQ_EIO;
        snprintf(err, err_len,
                 rc == LMQ_EEXIST ? "key file %s already exists" : "cannot create %s: %s", path,
                 strerror(errno));
        goto out;
    }
    if (overwrite)
        tmp_made = false; /* renamed away */
    rc = keyfile__sync_dir(path);
    if (rc != LMQ_OK)
        snprintf(err, err_len, "cannot sync the directory of %s: %s", path, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        unlink(tmp);
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* Reads the whole file into text (NUL-terminated), refusing anything but a regular file that
 * only its owner can read: a key others can read is a key others may have. */
static int keyfile__read(const char *path, char *text, size_t cap, size_t *len, char *err,
                         size_t err_len)
{
    LMQ_ASSERT(cap > 1 && len != NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_len, "cannot open key file %s: %s", path, strerror(errno));
        return errno == ENOENT ? LMQ_ENOTFOUND : LMQ_EIO;
    }
    int rc = LMQ_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "key file %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        snprintf(err, err_len,
                 "key file %s is accessible by group or others (mode %04o); "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 07777));
        rc = LMQ_EPROTO;
        goto out;
    }
    if (st.st_size < 0 || (size_t)st.st_size >= cap) {
        snprintf(err, err_len, "key file %s is larger than %zu bytes", path, cap - 1);
        rc = LMQ_ETOOBIG;
        goto out;
    }
    ssize_t n;
    do {
        n = read(fd, text, cap - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        snprintf(err, err_len, "cannot read key file %s: %s", path, strerror(errno));
        goto out;
    }
    text[n] = '\0';
    *len = (size_t)n;
    rc = LMQ_OK;
out:
    close(fd);
    return rc;
}

/* Decodes the 32-byte base64url key in member name of obj into key. */
static int keyfile__key(json_t *obj, const char *name, uint8_t key[CRYPTO_ED25519_SEED_BYTES],
                        char *err, size_t err_len)
{
    json_t *v = json_object_get(obj, name);
    size_t n = 0;
    if (!json_is_string(v) || json_string_length(v) != KEYFILE__KEY_B64_CHARS ||
        crypto_b64url_decode(json_string_value(v), json_string_length(v), key,
                             CRYPTO_ED25519_SEED_BYTES, &n) != LMQ_OK) {
        snprintf(err, err_len, "member \"%s\" must be a 32-byte key in base64url (%d characters)",
                 name, (int)KEYFILE__KEY_B64_CHARS);
        return LMQ_EPROTO;
    }
    LMQ_ASSERT(n == CRYPTO_ED25519_SEED_BYTES);
    return LMQ_OK;
}

/* Checks the parsed key file and fills ident. */
static int keyfile__check(json_t *root, struct crypto_identity *ident, char *err, size_t err_len)
{
    static const char *const names[KEYFILE__MEMBER_COUNT] = {"kty", "crv", "d", "x", "id"};
    if (!json_is_object(root)) {
        snprintf(err, err_len, "must be a JSON object");
        return LMQ_EPROTO;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        bool known = false;
        for (size_t i = 0; i < KEYFILE__MEMBER_COUNT; i++)
            known = known || strcmp(key, names[i]) == 0;
        if (!known) {
            snprintf(err, err_len, "unknown member \"%s\"", key);
            return LMQ_EPROTO;
        }
    }
    if (!json_is_string(json_object_get(root, "kty")) ||
        strcmp(json_string_value(json_object_get(root, "kty")), "OKP") != 0) {
        snprintf(err, err_len, "member \"kty\" must be \"OKP\"");
        return LMQ_EPROTO;
    }
    if (!json_is_string(json_object_get(root, "crv")) ||
        strcmp(json_string_value(json_object_get(root, "crv")), "Ed25519") != 0) {
        snprintf(err, err_len, "member \"crv\" must be \"Ed25519\"");
        return LMQ_EPROTO;
    }
    uint8_t x[CRYPTO_ED25519_PUB_BYTES];
    int rc = keyfile__key(root, "d", ident->seed, err, err_len);
    if (rc == LMQ_OK)
        rc = keyfile__key(root, "x", x, err, err_len);
    if (rc == LMQ_OK)
        rc = crypto_identity_from_seed(ident->seed, ident);
    if (rc != LMQ_OK)
        return rc;
    if (memcmp(x, ident->pub, sizeof(x)) != 0) {
        snprintf(err, err_len, "member \"x\" is not the public key of \"d\"");
        return LMQ_EPROTO;
    }
    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id) ||
        !crypto_identity_id_valid(json_string_value(id), json_string_length(id))) {
        snprintf(err, err_len, "member \"id\" must be 64 lowercase hex characters");
        return LMQ_EPROTO;
    }
    if (strcmp(json_string_value(id), ident->id) != 0) {
        snprintf(err, err_len, "member \"id\" is not the SHA-256 of \"x\" (expected %s)",
                 ident->id);
        return LMQ_EPROTO;
    }
    return LMQ_OK;
}

int crypto_keyfile_load(const char *path, struct crypto_identity *ident, char *err, size_t err_len)
{
    LMQ_ASSERT(path != NULL && ident != NULL);
    LMQ_ASSERT(err != NULL && err_len > 0);
    err[0] = '\0';
    char text[CRYPTO_KEYFILE_MAX_BYTES];
    size_t len = 0;
    json_t *root = NULL;
    int rc = keyfile__read(path, text, sizeof(text), &len, err, err_len);
    if (rc != LMQ_OK)
        goto out;
    json_error_t jerr;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, err_len, "key file %s is not valid JSON: %s (line %d)", path, jerr.text,
                 jerr.line);
        rc = LMQ_EPROTO;
        goto out;
    }
    char why[256] = "";
    rc = keyfile__check(root, ident, why, sizeof(why));
    if (rc != LMQ_OK)
        snprintf(err, err_len, "key file %s: %s", path, why);
out:
    json_decref(root);
    OPENSSL_cleanse(text, sizeof(text));
    if (rc != LMQ_OK)
        OPENSSL_cleanse(ident, sizeof(*ident));
    return rc;
}
