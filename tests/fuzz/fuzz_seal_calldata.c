/*
 * libFuzzer target for the seal calldata parser (src/seal/seal_calldata.c). Oracles: what the
 * parser accepts starts with the magic and is at least the fixed part long; the origin is the
 * rest; encoding the parsed fields again (when the origin holds no NUL) gives the input's bytes.
 *
 * fuzz-sources: src/seal/seal_calldata.c
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "seal/seal.h"

#include "fuzz_check.h"

#define FUZZ_SEAL_MAX_BYTES 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len > FUZZ_SEAL_MAX_BYTES)
        return 0;
    uint64_t size = 0;
    uint8_t root[32];
    const uint8_t *origin = NULL;
    size_t origin_len = 0;
    if (seal_calldata_parse(data, len, &size, root, &origin, &origin_len) != LMQ_OK) {
        CHECK(len < SEAL_CALLDATA_FIXED_BYTES || memcmp(data, SEAL_MAGIC, SEAL_MAGIC_BYTES) != 0);
        return 0;
    }
    CHECK(len >= SEAL_CALLDATA_FIXED_BYTES && origin == data + SEAL_CALLDATA_FIXED_BYTES);
    CHECK(origin_len == len - SEAL_CALLDATA_FIXED_BYTES);
    if (memchr(origin, 0, origin_len) != NULL)
        return 0;
    static char text[FUZZ_SEAL_MAX_BYTES + 1];
    static uint8_t again[FUZZ_SEAL_MAX_BYTES];
    memcpy(text, origin, origin_len);
    text[origin_len] = '\0';
    size_t again_len = 0;
    CHECK(seal_calldata(size, root, text, again, sizeof(again), &again_len) == LMQ_OK);
    CHECK(again_len == len && memcmp(again, data, len) == 0);
    return 0;
}
