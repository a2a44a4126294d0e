#include "crypto/ed25519.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/*
 * The key of the last seed used on this thread, kept: building an EVP_PKEY from a seed derives
 * the public key (a scalar multiplication), and the server signs every envelope it sends with the
 * same seed (the chain follower's catch-up spent 16% of its time there). One per thread, so the
 * loops of different threads never share a key object.
 */
static _Thread_local struct {
    uint8_t seed[CRYPTO_ED25519_SEED_BYTES];
    EVP_PKEY *key;
} ed25519_last;

/* The private key of seed (owned by the cache: not freed by the caller), or NULL. */
static EVP_PKEY *ed25519_key(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES])
{
    if (ed25519_last.key != NULL &&
        CRYPTO_memcmp(ed25519_last.seed, seed, CRYPTO_ED25519_SEED_BYTES) == 0)
        return ed25519_last.key;
    EVP_PKEY *key =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, CRYPTO_ED25519_SEED_BYTES);
    if (key == NULL)
        return NULL;
    EVP_PKEY_free(ed25519_last.key);
    ed25519_last.key = key;
    memcpy(ed25519_last.seed, seed, CRYPTO_ED25519_SEED_BYTES);
    return key;
}

int crypto_ed25519_generate(uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                            uint8_t pub[CRYPTO_ED25519_PUB_BYTES])
{
    LMQ_ASSERT(seed != NULL && pub != NULL);
    if (RAND_priv_bytes(seed, CRYPTO_ED25519_SEED_BYTES) != 1)
        return LMQ_EIO;
    return crypto_ed25519_public(seed, pub);
}

int crypto_ed25519_public(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                          uint8_t pub[CRYPTO_ED25519_PUB_BYTES])
{
    LMQ_ASSERT(seed != NULL && pub != NULL);
    EVP_PKEY *key = ed25519_key(seed);
    if (key == NULL)
        return LMQ_ENOMEM;
    size_t len = CRYPTO_ED25519_PUB_BYTES;
    if (EVP_PKEY_get_raw_public_key(key, pub, &len) != 1)
        return LMQ_ENOMEM;
    LMQ_ASSERT(len == CRYPTO_ED25519_PUB_BYTES);
    return LMQ_OK;
}

int crypto_ed25519_sign(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES], const uint8_t *msg,
                        size_t msg_len, uint8_t sig[CRYPTO_ED25519_SIG_BYTES])
{
    LMQ_ASSERT(seed != NULL && sig != NULL && (msg != NULL || msg_len == 0));
    int rc = LMQ_ENOMEM;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *key = ed25519_key(seed);
    if (key == NULL)
        goto out;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1)
        goto out;
    size_t sig_len = CRYPTO_ED25519_SIG_BYTES;
    static const uint8_t empty[1] = {0};
    if (EVP_DigestSign(ctx, sig, &sig_len, msg_len > 0 ? msg : empty, msg_len) != 1)
        goto out;
    LMQ_ASSERT(sig_len == CRYPTO_ED25519_SIG_BYTES);
    rc = LMQ_OK;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

bool crypto_ed25519_verify(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES], const uint8_t *msg,
                           size_t msg_len, const uint8_t sig[CRYPTO_ED25519_SIG_BYTES])
{
    LMQ_ASSERT(pub != NULL && sig != NULL && (msg != NULL || msg_len == 0));
    bool ok = false;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *key =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, CRYPTO_ED25519_PUB_BYTES);
    if (key == NULL)
        goto out;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1)
        goto out;
    static const uint8_t empty[1] = {0};
    ok = EVP_DigestVerify(ctx, sig, CRYPTO_ED25519_SIG_BYTES, msg_len > 0 ? msg : empty, msg_len) ==
         1;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}
