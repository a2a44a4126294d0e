/*
 * Identity key files: an Ed25519 key as a JWK (RFC 8037) plus the identity id,
 *   {"kty":"OKP","crv":"Ed25519","d":"<b64url seed>","x":"<b64url pub>","id":"<hex sha256(pub)>"}
 * written with mode 0600 through a temporary file, fsync and rename (or link, to refuse an
 * existing file atomically), so a crash leaves either no file or a whole one.
 */
#ifndef LMQ_CRYPTO_KEYFILE_H
#define LMQ_CRYPTO_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"
#include "crypto/ed25519.h"

/* An identity id: lowercase hex SHA-256 of the raw public key (64 characters, then a NUL). */
#define CRYPTO_IDENTITY_ID_CHARS 64
#define CRYPTO_IDENTITY_ID_BYTES (CRYPTO_IDENTITY_ID_CHARS + 1)
/* Largest key file read (a valid one is about 200 bytes). */
#define CRYPTO_KEYFILE_MAX_BYTES 4096

struct crypto_identity {
    uint8_t seed[CRYPTO_ED25519_SEED_BYTES];
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    char id[CRYPTO_IDENTITY_ID_BYTES];
};

/* out = the identity id of pub. Returns 0 or LMQ_ENOMEM. */
int crypto_identity_id(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                       char out[CRYPTO_IDENTITY_ID_BYTES]) LMQ_WUR;
/* True when text (len bytes) has the shape of an identity id: 64 lowercase hex characters. */
bool crypto_identity_id_valid(const char *text, size_t len);
/* Fills ident (pub and id) from a seed. Returns 0 or LMQ_ENOMEM. */
int crypto_identity_from_seed(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                              struct crypto_identity *ident) LMQ_WUR;

/* Writes ident's key file at path, mode 0600. Without overwrite an existing path is refused
 * with LMQ_EEXIST; other failures are LMQ_EIO or LMQ_ENOMEM, with a message in err. No partial
 * file is ever left at path. */
int crypto_keyfile_save(const char *path, const struct crypto_identity *ident, bool overwrite,
                        char *err, size_t err_len) LMQ_WUR;
/* Reads and checks a key file (mode not readable by group/others, members exactly as above,
 * x derived from d, id derived from x). Returns 0, LMQ_ENOTFOUND, LMQ_EIO, LMQ_ETOOBIG,
 * LMQ_EPROTO (malformed or inconsistent) or LMQ_ENOMEM, with a message in err. */
int crypto_keyfile_load(const char *path, struct crypto_identity *ident, char *err,
                        size_t err_len) LMQ_WUR;

#endif
