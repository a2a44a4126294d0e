/*
 * Password hashes for MQTT clients that log in with a user name and a password (the password
 * file, [auth] password_file). One hash is the text
 *
 *     $scrypt$N=<n>,r=<r>,p=<p>$<salt>$<hash>
 *
 * where n, r and p are scrypt's cost parameters in decimal (no sign, no leading zero; n a power
 * of two), salt and hash are standard padded base64 (RFC 4648 §4), and hash is
 * scrypt(password, salt, n, r, p) of the decoded hash's length. Written with a 16-byte random
 * salt and a 32-byte hash; read with a salt of 8..64 bytes and a hash of 16..64 bytes.
 *
 * mosquitto's hashes are read too, so that a mosquitto password file works as it is (new hashes
 * are always scrypt):
 *
 *     $7$<iterations>$<salt>$<hash>   PBKDF2-HMAC-SHA512 (mosquitto 2's mosquitto_passwd),
 *                                     1..1,000,000 iterations, a 64-byte hash
 *     $6$<salt>$<hash>                SHA-512(password || salt) (mosquitto 1.x), a 64-byte hash
 *
 * with standard padded base64 salt (8..64 bytes) and hash. $6$ is one SHA-512: fast to
 * brute-force if the file leaks; re-hash those users with `ledgermq passwd`.
 *
 * A password file has one "user:hash" line per user; blank lines and lines starting with '#'
 * are ignored. A user name is 1..CRYPTO_PASSWD_USER_MAX_BYTES bytes of printable ASCII or
 * UTF-8 without ':', spaces or control characters, and is not a 64-hex identity id (those log
 * in with a token).
 */
#ifndef LMQ_CRYPTO_PASSWD_H
#define LMQ_CRYPTO_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

#define CRYPTO_PASSWD_USER_MAX_BYTES 128
#define CRYPTO_PASSWD_PASSWORD_MAX_BYTES 1024
/* Longest hash text accepted (parameters plus a 64-byte salt and a 64-byte hash). */
#define CRYPTO_PASSWD_HASH_MAX_CHARS 240
/* A password file larger than this is refused (about 50,000 users). */
#define CRYPTO_PASSWD_FILE_MAX_BYTES (8u * 1024u * 1024u)
#define CRYPTO_PASSWD_FILE_USERS_MAX 100000
/* scrypt memory allowed per hash; parameters that need more are refused. */
#define CRYPTO_PASSWD_SCRYPT_MAXMEM_BYTES (256u * 1024u * 1024u)

/* What `ledgermq passwd` writes: about 32 MiB and a few tens of ms per check. */
#define CRYPTO_PASSWD_DEFAULT_N 32768u
#define CRYPTO_PASSWD_DEFAULT_R 8u
#define CRYPTO_PASSWD_DEFAULT_P 1u

struct crypto_scrypt_params {
    uint64_t n; /* CPU/memory cost, a power of two >= 2 */
    uint32_t r; /* block size */
    uint32_t p; /* parallelism */
};

/* Hashes password with a fresh random salt into out (NUL-terminated hash text). Returns 0,
 * LMQ_EINVAL (parameters scrypt refuses, password too long), LMQ_ETOOBIG (out too small) or
 * LMQ_EIO (no randomness, OpenSSL failure). */
int crypto_passwd_hash(const uint8_t *password, size_t password_len,
                       const struct crypto_scrypt_params *params, char *out,
                       size_t out_cap) LMQ_WUR;

/* Checks that hash[0..len) is well-formed hash text with usable parameters. Returns 0 or
 * LMQ_EINVAL. Cheap: no key derivation. */
int crypto_passwd_hash_valid(const char *hash, size_t len) LMQ_WUR;

/* Derives the key for password with hash's parameters and salt and compares it with hash's in
 * constant time (*match). Slow on purpose: run it off the event loop. Returns 0, LMQ_EINVAL
 * (malformed hash; *match false) or LMQ_EIO/LMQ_ENOMEM (derivation failed; *match false). */
int crypto_passwd_verify(const char *hash, size_t hash_len, const uint8_t *password,
                         size_t password_len, bool *match) LMQ_WUR;

/* True for a user name the password file can hold (see the top of this file). */
bool crypto_passwd_user_valid(const uint8_t *user, size_t len);

struct crypto_passwd_file;

/* Parses password file text (text[len] need not be NUL). Returns 0, LMQ_EINVAL (err names the
 * line and the problem), LMQ_ELIMIT (too many users) or LMQ_ENOMEM. */
int crypto_passwd_file_parse(const char *text, size_t len, struct crypto_passwd_file **out,
                             char *err, size_t err_len) LMQ_WUR;
/* Reads and parses the file at path. Same results as the parse, plus LMQ_EIO/LMQ_ETOOBIG; err
 * starts with the path. */
int crypto_passwd_file_load(const char *path, struct crypto_passwd_file **out, char *err,
                            size_t err_len) LMQ_WUR;
/* The hash text (NUL-terminated, owned by f) for user, or NULL when f has no such user. */
const char *crypto_passwd_file_lookup(const struct crypto_passwd_file *f, const uint8_t *user,
                                      size_t user_len);
/* Number of users in f. */
size_t crypto_passwd_file_count(const struct crypto_passwd_file *f);
/* Frees f; NULL is a no-op. */
void crypto_passwd_file_free(struct crypto_passwd_file *f);

#endif
