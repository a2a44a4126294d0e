#include "crypto/hash.h"

#include <openssl/evp.h>

#define CRYPTO_SHA256_PARTS_MAX 4

int crypto_sha256_parts(const uint8_t *const *parts, const size_t *lens, size_t part_count,
                        uint8_t out[CRYPTO_SHA256_BYTES])
{
    LMQ_ASSERT(part_count <= CRYPTO_SHA256_PARTS_MAX && out != NULL);
    int rc = LMQ_ENOMEM;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return LMQ_ENOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t i = 0; i < part_count; i++) {
        LMQ_ASSERT(parts[i] != NULL || lens[i] == 0);
        if (lens[i] > 0 && EVP_DigestUpdate(ctx, parts[i], lens[i]) != 1)
            goto out;
    }
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx, out, &n) != 1)
        goto out;
    LMQ_ASSERT(n == CRYPTO_SHA256_BYTES);
    rc = LMQ_OK;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int crypto_sha256(const uint8_t *data, size_t len, uint8_t out[CRYPTO_SHA256_BYTES])
{
    const uint8_t *parts[1] = {data};
    size_t lens[1] = {len};
    return crypto_sha256_parts(parts, lens, 1, out);
}
