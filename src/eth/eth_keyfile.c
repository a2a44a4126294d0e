/* The sealing key file (eth_keyfile.h). */
#include "eth/eth_keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eth/eth_hex.h"

static int eth_keyfile__write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return LMQ_EIO;
        }
        text += n;
        len -= (size_t)n;
    }
    return LMQ_OK;
}

static int eth_keyfile__format(const uint8_t priv[ETH_PRIVKEY_BYTES], char *text, size_t cap,
                               size_t *len)
{
    uint8_t addr[ETH_ADDRESS_BYTES];
    char addr_text[ETH_ADDRESS_TEXT_BYTES];
    char key_text[2 * ETH_PRIVKEY_BYTES + 3];
    if (eth_key_address(priv, addr) != LMQ_OK) {
        return LMQ_EINVAL;
    }
    eth_key_address_text(addr, addr_text);
    int rc = eth_hex_encode(priv, ETH_PRIVKEY_BYTES, key_text, sizeof(key_text));
    LMQ_ASSERT(rc == LMQ_OK);
    int n = snprintf(text, cap,
                     "{\"type\":\"%s\",\"version\":1,\"address\":\"%s\",\"private_key\":\"%s\"}\n",
                     ETH_KEYFILE_TYPE, addr_text, key_text);
    OPENSSL_cleanse(key_text, sizeof(key_text));
    LMQ_ASSERT(n > 0 && (size_t)n < cap);
    *len = (size_t)n;
    return LMQ_OK;
}

int eth_keyfile_save(const char *path, const uint8_t priv[ETH_PRIVKEY_BYTES], char *err,
                     size_t err_len)
{
    LMQ_ASSERT(path != NULL && priv != NULL);
    char text[ETH_KEYFILE_MAX_BYTES];
    char tmp[PATH_MAX];
    size_t len = 0;
    int fd = -1;
    int rc = LMQ_EIO;
    bool tmp_made = false;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        lmq_errf(err, err_len, "key file path too long: %s", path);
        return LMQ_EINVAL;
    }
    if (eth_keyfile__format(priv, text, sizeof(text), &len) != LMQ_OK) {
        lmq_errf(err, err_len, "not a valid secp256k1 private key");
        return LMQ_EINVAL;
    }
    fd = mkstemp(tmp); /* creates the file 0600 */
    if (fd < 0) {
        lmq_errf(err, err_len, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    tmp_made = true;
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || eth_keyfile__write_all(fd, text, len) != LMQ_OK ||
        fsync(fd) != 0 || close(fd) != 0) {
        lmq_errf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
        fd = -1;
        goto out;
    }
    fd = -1;
    /* link() fails on an existing name atomically, which rename() cannot do. */
    if (link(tmp, path) != 0) {
        rc = errno == EEXIST ? LMQ_EEXIST : LMQ_EIO;
        lmq_errf(err, err_len, "cannot create %s: %s", path,
                 rc == LMQ_EEXIST ? "it already exists (not overwritten)" : strerror(errno));
        goto out;
    }
    rc = LMQ_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp_made) {
        unlink(tmp);
    }
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* The file's text: a regular file only its owner can read, at most ETH_KEYFILE_MAX_BYTES. */
static int eth_keyfile__read(const char *path, char *text, size_t cap, char *err, size_t err_len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0) {
        lmq_errf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return LMQ_EIO;
    }
    int rc = LMQ_EIO;
    if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        lmq_errf(err, err_len, "%s: not a regular file readable by its owner only (chmod 600)",
                 path);
        goto out;
    }
    ssize_t n = read(fd, text, cap - 1);
    if (n < 0 || (size_t)n >= cap - 1) {
        lmq_errf(err, err_len, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "too long");
        goto out;
    }
    text[n] = '\0';
    rc = LMQ_OK;
out:
    close(fd);
    return rc;
}

int eth_keyfile_load(const char *path, uint8_t priv[ETH_PRIVKEY_BYTES],
                     uint8_t addr[ETH_ADDRESS_BYTES], char *err, size_t err_len)
{
    LMQ_ASSERT(path != NULL && priv != NULL && addr != NULL);
    char text[ETH_KEYFILE_MAX_BYTES];
    uint8_t written[ETH_ADDRESS_BYTES];
    json_error_t jerr;
    int rc = eth_keyfile__read(path, text, sizeof(text), err, err_len);
    if (rc != LMQ_OK) {
        return rc;
    }
    json_t *root = json_loads(text, 0, &jerr);
    OPENSSL_cleanse(text, sizeof(text));
    const char *type = json_string_value(json_object_get(root, "type"));
    const char *key = json_string_value(json_object_get(root, "private_key"));
    const char *address = json_string_value(json_object_get(root, "address"));
    rc = LMQ_EPROTO;
    if (json_object_get(root, "kty") != NULL) {
        lmq_errf(err, err_len,
                 "%s is an identity key (JWK), not an Ethereum sealing key "
                 "(ledgermq keygen --eth)",
                 path);
    } else if (type == NULL || strcmp(type, ETH_KEYFILE_TYPE) != 0 ||
               json_integer_value(json_object_get(root, "version")) != 1 || key == NULL ||
               address == NULL) {
        lmq_errf(err, err_len, "%s: not a sealing key file (ledgermq keygen --eth)", path);
    } else if (eth_hex_decode_exact(key, priv, ETH_PRIVKEY_BYTES) != LMQ_OK ||
               eth_key_address(priv, addr) != LMQ_OK ||
               eth_key_address_parse(address, strlen(address), written) != LMQ_OK ||
               memcmp(written, addr, ETH_ADDRESS_BYTES) != 0) {
        lmq_errf(err, err_len, "%s: the private key is invalid or is not the address's", path);
    } else {
        rc = LMQ_OK;
    }
    if (rc != LMQ_OK) {
        OPENSSL_cleanse(priv, ETH_PRIVKEY_BYTES);
        memset(addr, 0, ETH_ADDRESS_BYTES);
    }
    json_decref(root); /* jansson does not wipe its copy of the key string */
    return rc;
}
