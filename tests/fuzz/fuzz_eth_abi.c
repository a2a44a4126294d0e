/*
 * libFuzzer target for src/eth/eth_abi.c. The first input byte picks a signature (below), the
 * rest is ABI data. Oracles:
 *   - decoding never produces more than ETH_ABI_DECODE_VALUES_MAX values and never crashes;
 *   - what decodes encodes again, and that encoding decodes to the same values (a fixed point:
 *     the encoder's output is canonical even where the input's offsets were not);
 *   - the same bytes as an event log's data decode or are refused without a crash.
 *
 * fuzz-sources: src/eth/eth_abi.c src/eth/eth_hex.c src/eth/eth_keccak.c
 * fuzz-sources: src/eth/eth_key.c src/core/buf.c
 * fuzz-libs: -ljansson -lsecp256k1 -lcrypto
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "eth/eth_abi.h"

#include "fuzz_check.h"

#define FUZZ_ABI_MAX_BYTES (1u << 22)

static const char *const fuzz_sigs[] = {
    "f(uint8,int16,address,bool,bytes3)",
    "f(bytes,string,uint256[])",
    "f(uint8[3][],int64[][2],address[],bool[2][2])",
    "f(string[][],bytes32)",
    "f(bytes[2],int256,string)",
    "E(address indexed a, uint256 v, string s)",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct eth_abi_sig sig;
    char err[256];
    if (size < 1) {
        return 0;
    }
    CHECK(eth_abi_parse(fuzz_sigs[data[0] % LMQ_ARRAY_LEN(fuzz_sigs)], &sig, err, sizeof(err)) ==
          LMQ_OK);
    json_t *values = NULL;
    if (eth_abi_decode(&sig, data + 1, size - 1, &values, err, sizeof(err)) == LMQ_OK) {
        struct lmq_buf enc = {0};
        json_t *again = NULL;
        CHECK(eth_abi_encode(&sig, values, false, &enc, FUZZ_ABI_MAX_BYTES, err, sizeof(err)) ==
              LMQ_OK);
        CHECK(eth_abi_decode(&sig, enc.data, enc.len, &again, err, sizeof(err)) == LMQ_OK);
        CHECK(json_equal(values, again));
        json_decref(again);
        lmq_buf_release(&enc);
    } else {
        CHECK(values == NULL && strncmp(err, "ABI decode: ", 12) == 0);
    }
    json_decref(values);
    uint8_t topics[2][32] = {{0}};
    eth_abi_topic0(&sig, topics[0]);
    if (size > 33) {
        memcpy(topics[1], data + 1, 32);
    }
    json_t *args = NULL;
    if (eth_abi_decode_log(&sig, (const uint8_t(*)[32])topics, 2, data + 1, size - 1, &args, err,
                           sizeof(err)) == LMQ_OK) {
        CHECK(json_object_size(args) == sig.param_count);
    }
    json_decref(args);
    return 0;
}
