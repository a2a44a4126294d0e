/*
 * The seal calldata (docs/PROTOCOL.md "Sealing"): "LMQSEAL1", the tree size (8 bytes
 * big-endian), the root (32 bytes), the origin line. Pure: no broker, no I/O (the fuzz target
 * and ledgermq verify use it alone).
 */
#include <string.h>

#include "seal/seal.h"

int seal_calldata(uint64_t size, const uint8_t root[32], const char *origin, uint8_t *out,
                  size_t cap, size_t *len)
{
    LMQ_ASSERT(root != NULL && origin != NULL && out != NULL && len != NULL);
    size_t origin_len = strlen(origin);
    if (cap < SEAL_CALLDATA_FIXED_BYTES || cap - SEAL_CALLDATA_FIXED_BYTES < origin_len)
        return LMQ_ETOOBIG;
    memcpy(out, SEAL_MAGIC, SEAL_MAGIC_BYTES);
    for (int i = 0; i < 8; i++)
        out[SEAL_MAGIC_BYTES + i] = (uint8_t)(size >> (56 - 8 * i));
    memcpy(out + SEAL_MAGIC_BYTES + 8, root, 32);
    memcpy(out + SEAL_CALLDATA_FIXED_BYTES, origin, origin_len);
    *len = SEAL_CALLDATA_FIXED_BYTES + origin_len;
    LMQ_ASSERT(*len <= cap);
    return LMQ_OK;
}

int seal_calldata_parse(const uint8_t *data, size_t len, uint64_t *size, uint8_t root[32],
                        const uint8_t **origin, size_t *origin_len)
{
    LMQ_ASSERT(size != NULL && root != NULL && origin != NULL && origin_len != NULL);
    if (data == NULL || len < SEAL_CALLDATA_FIXED_BYTES ||
        memcmp(data, SEAL_MAGIC, SEAL_MAGIC_BYTES) != 0)
        return LMQ_EPROTO;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n = n << 8 | data[SEAL_MAGIC_BYTES + i];
    *size = n;
    memcpy(root, data + SEAL_MAGIC_BYTES + 8, 32);
    *origin = data + SEAL_CALLDATA_FIXED_BYTES;
    *origin_len = len - SEAL_CALLDATA_FIXED_BYTES;
    return LMQ_OK;
}
