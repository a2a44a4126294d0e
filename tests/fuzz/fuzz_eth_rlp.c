/*
 * libFuzzer target for src/eth/eth_rlp.c and eth_tx.c's decoder. The input is RLP (or a raw
 * transaction). Oracles:
 *   - what the strict decoder accepts is canonical: encoding the decoded tree again gives the
 *     input's bytes exactly;
 *   - a raw transaction that decodes has a sender, and its hash is keccak256 of the input.
 *
 * fuzz-sources: src/eth/eth_rlp.c src/eth/eth_hex.c src/eth/eth_tx.c src/eth/eth_key.c
 * fuzz-sources: src/eth/eth_keccak.c src/core/buf.c
 * fuzz-libs: -lsecp256k1 -lcrypto
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "eth/eth_keccak.h"
#include "eth/eth_rlp.h"
#include "eth/eth_tx.h"

#include "fuzz_check.h"

#define FUZZ_RLP_MAX_BYTES (1u << 20)

static void fuzz_reencode(const struct eth_rlp_item *item, struct lmq_buf *b, unsigned depth)
{
    CHECK(depth <= ETH_RLP_DEPTH_MAX);
    if (!item->is_list) {
        CHECK(eth_rlp_put_bytes(b, item->data, item->len, FUZZ_RLP_MAX_BYTES) == LMQ_OK);
        return;
    }
    size_t mark = eth_rlp_list_begin(b);
    struct eth_rlp_iter it;
    struct eth_rlp_item child;
    eth_rlp_iter_init(&it, item);
    while (eth_rlp_iter_next(&it, &child) == LMQ_OK) {
        fuzz_reencode(&child, b, depth + 1);
    }
    CHECK(it.left == 0);
    CHECK(eth_rlp_list_end(b, mark, FUZZ_RLP_MAX_BYTES) == LMQ_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct eth_rlp_item item;
    if (eth_rlp_decode(data, size, &item) == LMQ_OK) {
        struct lmq_buf b = {0};
        fuzz_reencode(&item, &b, 0);
        CHECK(b.len == size && memcmp(b.data, data, size) == 0);
        lmq_buf_release(&b);
    }
    struct eth_tx tx;
    uint8_t sender[ETH_ADDRESS_BYTES];
    uint8_t hash[32];
    uint8_t expect[32];
    char err[128];
    if (eth_tx_decode(data, size, &tx, NULL, sender, hash, err, sizeof(err)) == LMQ_OK) {
        eth_keccak256(data, size, expect);
        CHECK(memcmp(hash, expect, 32) == 0);
        CHECK(tx.data_len <= ETH_TX_DATA_MAX_BYTES);
    } else {
        CHECK(strncmp(err, "raw transaction: ", 17) == 0);
    }
    return 0;
}
