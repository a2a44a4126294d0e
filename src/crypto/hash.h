/*
 * SHA-256 through OpenSSL's EVP interface.
 */
#ifndef LMQ_CRYPTO_HASH_H
#define LMQ_CRYPTO_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

#define CRYPTO_SHA256_BYTES 32

/* out = SHA-256 of the concatenation of the given parts (part_count <= 4; NULL data only with
 * length 0). Returns 0 or LMQ_ENOMEM. */
int crypto_sha256_parts(const uint8_t *const *parts, const size_t *lens, size_t part_count,
                        uint8_t out[CRYPTO_SHA256_BYTES]) LMQ_WUR;
/* out = SHA-256(data). Returns 0 or LMQ_ENOMEM. */
int crypto_sha256(const uint8_t *data, size_t len, uint8_t out[CRYPTO_SHA256_BYTES]) LMQ_WUR;

#endif
