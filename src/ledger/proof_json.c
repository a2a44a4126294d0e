#include "ledger/proof_json.h"

#include <stdio.h>
#include <string.h>

#include "crypto/encoding.h"

/* Standard base64 of one hash, without the NUL. */
#define PROOF_JSON_HASH_B64_CHARS 44

int ledger_proof_json_encode(const uint8_t (*hashes)[LEDGER_MERKLE_HASH_BYTES], size_t count,
                             char *out, size_t cap, size_t *used)
{
    LMQ_ASSERT(count <= LEDGER_MERKLE_PROOF_MAX && out != NULL && used != NULL);
    LMQ_ASSERT(*used < cap);
    /* Each hash: a comma, two quotes and its base64; then the brackets and the NUL. */
    if (cap - *used < count * (PROOF_JSON_HASH_B64_CHARS + 3) + 3)
        return LMQ_ETOOBIG;
    out[(*used)++] = '[';
    for (size_t i = 0; i < count; i++) {
        char b64[PROOF_JSON_HASH_B64_CHARS + 1];
        int rc = crypto_b64_encode(hashes[i], LEDGER_MERKLE_HASH_BYTES, b64, sizeof(b64));
        LMQ_ASSERT(rc == LMQ_OK); /* b64 is sized for one hash */
        int n = snprintf(out + *used, cap - *used, "%s\"%s\"", i ? "," : "", b64);
        LMQ_ASSERT(n > 0 && (size_t)n < cap - *used); /* room was checked above */
        *used += (size_t)n;
    }
    out[(*used)++] = ']';
    out[*used] = '\0';
    return LMQ_OK;
}

int ledger_proof_json_decode(const json_t *arr, uint8_t (*out)[LEDGER_MERKLE_HASH_BYTES],
                             size_t *count)
{
    LMQ_ASSERT(out != NULL && count != NULL);
    *count = 0;
    if (!json_is_array(arr) || json_array_size(arr) > LEDGER_MERKLE_PROOF_MAX)
        return LMQ_EPROTO;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *v = json_array_get(arr, i);
        size_t n = 0;
        if (!json_is_string(v) ||
            crypto_b64_decode(json_string_value(v), json_string_length(v), out[i],
                              LEDGER_MERKLE_HASH_BYTES, &n) != LMQ_OK ||
            n != LEDGER_MERKLE_HASH_BYTES)
            return LMQ_EPROTO;
    }
    *count = json_array_size(arr);
    return LMQ_OK;
}
