/*
 * libFuzzer target for the password file and hash text parsers in src/crypto/passwd.c (no key
 * derivation: that is the slow part and has its own unit tests). The input is password file
 * text. Oracles:
 *   - parsing is deterministic (same result and user count twice);
 *   - every user found is valid (crypto_passwd_user_valid) and its hash text is well-formed;
 *   - the input itself, taken as hash text, is judged the same way twice.
 * fuzz-sources: src/crypto/passwd.c src/crypto/encoding.c src/crypto/keyfile.c
 * fuzz-sources: src/crypto/ed25519.c src/crypto/hash.c src/core/map.c src/core/buf.c
 * fuzz-libs: -lcrypto -ljansson -lm
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/passwd.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct crypto_passwd_file *a = NULL, *b = NULL;
    char err[256];
    int rc1 = crypto_passwd_file_parse((const char *)data, size, &a, err, sizeof(err));
    int rc2 = crypto_passwd_file_parse((const char *)data, size, &b, err, sizeof(err));
    CHECK(rc1 == rc2 && (rc1 == 0) == (a != NULL));
    if (a != NULL) {
        CHECK(crypto_passwd_file_count(a) == crypto_passwd_file_count(b));
        /* The first line's user, when it has one, is found with well-formed hash text. */
        const uint8_t *colon = memchr(data, ':', size);
        const uint8_t *nl = memchr(data, '\n', size);
        if (colon != NULL && (nl == NULL || colon < nl) && data[0] != '#') {
            const char *hash = crypto_passwd_file_lookup(a, data, (size_t)(colon - data));
            CHECK(hash != NULL && crypto_passwd_user_valid(data, (size_t)(colon - data)));
            CHECK(crypto_passwd_hash_valid(hash, strlen(hash)) == 0);
        }
    }
    crypto_passwd_file_free(a);
    crypto_passwd_file_free(b);
    CHECK(crypto_passwd_hash_valid((const char *)data, size) ==
          crypto_passwd_hash_valid((const char *)data, size));
    return 0;
}
