/*
 * The ledger's append-only Merkle tree, hashed as RFC 9162 (= RFC 6962) §2.1: leaf hash
 * SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right), the root of the empty tree is
 * SHA-256 of the empty string.
 *
 * Pure algorithms, no storage and no I/O. The store keeps only the hashes of *perfect* subtrees:
 * node (level, index) covers leaves [index * 2^level, (index + 1) * 2^level). Appending hands the
 * store every perfect node a new leaf completes (emit callback); proofs read perfect nodes back
 * through a source callback and compose the right edge of a tree of any size from them.
 *
 * Source reads, with H = ceil(log2(size)) (at most 64):
 *   ledger_merkle_root, ledger_merkle_frontier_load   popcount(size) <= H + 1
 *   ledger_merkle_inclusion_proof                       <= 2 * H
 *   ledger_merkle_consistency_proof                     <= 2 * H + 1
 * (LEDGER_MERKLE_PROOF_READS_MAX bounds them all; tests/unit/test_merkle.c counts them.)
 */
#ifndef LMQ_LEDGER_MERKLE_H
#define LMQ_LEDGER_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

#define LEDGER_MERKLE_HASH_BYTES 32
/* A tree of at most 2^64 - 1 leaves has at most 64 levels of perfect subtrees below the root. */
#define LEDGER_MERKLE_LEVELS_MAX 64
/* No proof of a tree below 2^64 leaves has more hashes than this. */
#define LEDGER_MERKLE_PROOF_MAX 64
/* No proof or root of a tree below 2^64 leaves reads more nodes than this. */
#define LEDGER_MERKLE_PROOF_READS_MAX (2 * LEDGER_MERKLE_LEVELS_MAX + 1)

/* Where stored perfect-subtree hashes come from. get returns 0 and fills out, LMQ_ENOTFOUND
 * when the node is not stored, or another negative LMQ_E* code (passed through unchanged). */
struct ledger_merkle_source {
    int (*get)(void *ctx, uint32_t level, uint64_t index, uint8_t out[LEDGER_MERKLE_HASH_BYTES]);
    void *ctx;
};

/* Receives a perfect node completed by an append. A non-zero return aborts the append. */
typedef int (*ledger_merkle_emit_fn)(void *ctx, uint32_t level, uint64_t index,
                                     const uint8_t hash[LEDGER_MERKLE_HASH_BYTES]);

/* The right edge of a tree in memory: hashes[level] is the perfect subtree at that level of the
 * right edge, meaningful only when bit `level` of size is set. A zeroed struct is the empty
 * tree. */
struct ledger_merkle_frontier {
    uint64_t size;
    uint8_t hashes[LEDGER_MERKLE_LEVELS_MAX][LEDGER_MERKLE_HASH_BYTES];
};

/* out = SHA-256(0x00 || leaf[0..len)). Returns 0 or LMQ_ENOMEM. */
int ledger_merkle_leaf_hash(const uint8_t *leaf, size_t len,
                            uint8_t out[LEDGER_MERKLE_HASH_BYTES]) LMQ_WUR;
/* out = SHA-256(0x01 || left || right); out may alias left or right. Returns 0 or LMQ_ENOMEM. */
int ledger_merkle_node_hash(const uint8_t left[LEDGER_MERKLE_HASH_BYTES],
                            const uint8_t right[LEDGER_MERKLE_HASH_BYTES],
                            uint8_t out[LEDGER_MERKLE_HASH_BYTES]) LMQ_WUR;

/* Appends one leaf: calls emit for the leaf (level 0) and then for each parent it completes,
 * bottom-up, in O(log n) hashes and no reads. Returns 0, LMQ_ELIMIT when the tree already holds
 * 2^64 - 1 leaves, LMQ_ENOMEM, or emit's error; on any error the frontier is unchanged. */
int ledger_merkle_append(struct ledger_merkle_frontier *frontier,
                         const uint8_t leaf_hash[LEDGER_MERKLE_HASH_BYTES],
                         ledger_merkle_emit_fn emit, void *ctx) LMQ_WUR;
/* out = root of the frontier's current size (SHA-256("") when empty). Returns 0 or LMQ_ENOMEM. */
int ledger_merkle_frontier_root(const struct ledger_merkle_frontier *frontier,
                                uint8_t out[LEDGER_MERKLE_HASH_BYTES]) LMQ_WUR;
/* Rebuilds the frontier of a tree of `size` leaves from stored nodes (popcount(size) reads).
 * Returns 0 or the source's error; on error *frontier is unspecified. */
int ledger_merkle_frontier_load(const struct ledger_merkle_source *source, uint64_t size,
                                struct ledger_merkle_frontier *frontier) LMQ_WUR;

/* out = root of the first `size` leaves (any size the source has stored), popcount(size) reads.
 * Returns 0, LMQ_ENOMEM or the source's error. */
int ledger_merkle_root(const struct ledger_merkle_source *source, uint64_t size,
                       uint8_t out[LEDGER_MERKLE_HASH_BYTES]) LMQ_WUR;
/* RFC 9162 §2.1.3.1 PATH(index, D[size]), leaf level first, into hashes[0..*count). Returns 0,
 * LMQ_EINVAL when index >= size, LMQ_ENOMEM or the source's error. */
int ledger_merkle_inclusion_proof(const struct ledger_merkle_source *source, uint64_t index,
                                  uint64_t size,
                                  uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES],
                                  size_t *count) LMQ_WUR;
/* RFC 9162 §2.1.4.1 PROOF(old_size, D[new_size]) into hashes[0..*count); empty when old_size is
 * 0 or equal to new_size. Returns 0, LMQ_EINVAL when old_size > new_size, LMQ_ENOMEM or the
 * source's error. */
int ledger_merkle_consistency_proof(
    const struct ledger_merkle_source *source, uint64_t old_size, uint64_t new_size,
    uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES], size_t *count) LMQ_WUR;

/* RFC 9162 §2.1.3.2: 0 only when proof[0..count) proves leaf_hash at index in the tree of `size`
 * leaves with this root; LMQ_EPROTO when it does not (also index >= size, count too long or too
 * short), LMQ_ENOMEM. */
int ledger_merkle_verify_inclusion(const uint8_t leaf_hash[LEDGER_MERKLE_HASH_BYTES],
                                   uint64_t index, uint64_t size,
                                   const uint8_t (*proof)[LEDGER_MERKLE_HASH_BYTES], size_t count,
                                   const uint8_t root[LEDGER_MERKLE_HASH_BYTES]) LMQ_WUR;
/* RFC 9162 §2.1.4.2: 0 only when proof[0..count) proves the tree (old_size, old_root) is a prefix
 * of (new_size, new_root). Equal sizes need an empty proof and equal roots; old_size 0 needs an
 * empty proof and old_root = SHA-256(""). LMQ_EPROTO when not proven, LMQ_ENOMEM. */
int ledger_merkle_verify_consistency(uint64_t old_size, uint64_t new_size,
                                     const uint8_t old_root[LEDGER_MERKLE_HASH_BYTES],
                                     const uint8_t new_root[LEDGER_MERKLE_HASH_BYTES],
                                     const uint8_t (*proof)[LEDGER_MERKLE_HASH_BYTES],
                                     size_t count) LMQ_WUR;

#endif
