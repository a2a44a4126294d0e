/*
 * Ed25519 (RFC 8032, pure) through OpenSSL 3's EVP interface, on raw 32-byte keys.
 *
 * A private key is its 32-byte seed; the public key is derived from it. Nothing here keeps
 * state: every call builds and frees its own EVP objects.
 */
#ifndef LMQ_CRYPTO_ED25519_H
#define LMQ_CRYPTO_ED25519_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

#define CRYPTO_ED25519_SEED_BYTES 32
#define CRYPTO_ED25519_PUB_BYTES 32
#define CRYPTO_ED25519_SIG_BYTES 64

/* A new key pair from the system's CSPRNG. Returns 0, LMQ_EIO (no randomness) or LMQ_ENOMEM. */
int crypto_ed25519_generate(uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                            uint8_t pub[CRYPTO_ED25519_PUB_BYTES]) LMQ_WUR;
/* The public key of a seed. Returns 0 or LMQ_ENOMEM. */
int crypto_ed25519_public(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                          uint8_t pub[CRYPTO_ED25519_PUB_BYTES]) LMQ_WUR;
/* sig = Ed25519 signature of msg by seed. Returns 0 or LMQ_ENOMEM. */
int crypto_ed25519_sign(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES], const uint8_t *msg,
                        size_t msg_len, uint8_t sig[CRYPTO_ED25519_SIG_BYTES]) LMQ_WUR;
/* True only when sig is a valid signature of msg by pub (false also for a malformed key). */
bool crypto_ed25519_verify(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES], const uint8_t *msg,
                           size_t msg_len, const uint8_t sig[CRYPTO_ED25519_SIG_BYTES]);

#endif
