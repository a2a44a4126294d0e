/*
 * RFC 9162 §2.1 Merkle tree over perfect-subtree storage (see merkle.h for the model).
 *
 * Every node of the RFC tree of size n is the aligned range [i * 2^l, min((i + 1) * 2^l, n)):
 * perfect when the range is whole, otherwise a right-edge node whose hash is composed from the
 * perfect subtrees that tile it (largest first). Proofs are the siblings along a path, so each
 * needs at most one composed sibling and the rest are single reads.
 */
#include "ledger/merkle.h"

#include <stdbool.h>
#include <string.h>

#include "crypto/hash.h"

#define MERKLE_LEAF_PREFIX 0x00
#define MERKLE_NODE_PREFIX 0x01

/* A read budget shared by the helpers of one call, so every call proves its documented bound. */
struct merkle_reader {
    const struct ledger_merkle_source *source;
    uint32_t reads;
};

int ledger_merkle_leaf_hash(const uint8_t *leaf, size_t len, uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    LMQ_ASSERT(out != NULL);
    LMQ_ASSERT(leaf != NULL || len == 0);
    static const uint8_t prefix[1] = {MERKLE_LEAF_PREFIX};
    const uint8_t *parts[2] = {prefix, leaf};
    size_t lens[2] = {1, len};
    return crypto_sha256_parts(parts, lens, 2, out);
}

int ledger_merkle_node_hash(const uint8_t left[LEDGER_MERKLE_HASH_BYTES],
                            const uint8_t right[LEDGER_MERKLE_HASH_BYTES],
                            uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    LMQ_ASSERT(left != NULL && right != NULL);
    LMQ_ASSERT(out != NULL);
    static const uint8_t prefix[1] = {MERKLE_NODE_PREFIX};
    const uint8_t *parts[3] = {prefix, left, right};
    size_t lens[3] = {1, LEDGER_MERKLE_HASH_BYTES, LEDGER_MERKLE_HASH_BYTES};
    /* The digest is only written after every input was read, so out may alias an input. */
    return crypto_sha256_parts(parts, lens, 3, out);
}

/* Number of significant bits of v (0 for 0). */
static uint32_t merkle__bit_len(uint64_t v)
{
    return v == 0 ? 0 : 64u - (uint32_t)__builtin_clzll(v);
}

static int merkle__get(struct merkle_reader *rd, uint32_t level, uint64_t index,
                       uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    LMQ_ASSERT(level < LEDGER_MERKLE_LEVELS_MAX);
    LMQ_ASSERT(rd->reads < LEDGER_MERKLE_PROOF_READS_MAX);
    rd->reads++;
    return rd->source->get(rd->source->ctx, level, index, out);
}

/* out = MTH of leaves [start, start + count): start is a multiple of the largest power of two
 * <= count, so the tiling subtrees (one per set bit of count, largest first) are all aligned.
 * Reads popcount(count) nodes. */
static int merkle__range_root(struct merkle_reader *rd, uint64_t start, uint64_t count,
                              uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    LMQ_ASSERT(count > 0);
    LMQ_ASSERT((start & ((UINT64_C(1) << (merkle__bit_len(count) - 1)) - 1)) == 0);
    bool have = false;
    /* Fold right to left: the smallest subtree is the right-most one. */
    for (uint32_t b = 0; b < LEDGER_MERKLE_LEVELS_MAX; b++) {
        if (((count >> b) & 1) == 0)
            continue;
        uint64_t before = b + 1 >= 64 ? 0 : (count >> (b + 1)) << (b + 1);
        uint8_t node[LEDGER_MERKLE_HASH_BYTES];
        int rc = merkle__get(rd, b, (start + before) >> b, node);
        if (rc != 0)
            return rc;
        if (!have) {
            memcpy(out, node, LEDGER_MERKLE_HASH_BYTES);
            have = true;
        } else {
            rc = ledger_merkle_node_hash(node, out, out);
            if (rc != 0)
                return rc;
        }
    }
    LMQ_ASSERT(have);
    return LMQ_OK;
}

int ledger_merkle_append(struct ledger_merkle_frontier *frontier,
                         const uint8_t leaf_hash[LEDGER_MERKLE_HASH_BYTES],
                         ledger_merkle_emit_fn emit, void *ctx)
{
    LMQ_ASSERT(frontier != NULL && leaf_hash != NULL);
    LMQ_ASSERT(emit != NULL);
    if (frontier->size == UINT64_MAX)
        return LMQ_ELIMIT;
    const uint64_t index = frontier->size;
    uint8_t hash[LEDGER_MERKLE_HASH_BYTES];
    memcpy(hash, leaf_hash, sizeof(hash));
    int rc = emit(ctx, 0, index, hash);
    if (rc != 0)
        return rc;
    /* Each set low bit of index is a finished left sibling waiting on the frontier; the carry
     * stops at the first clear bit, which exists below bit 64 because index < 2^64 - 1. */
    uint32_t level = 0;
    while (level < LEDGER_MERKLE_LEVELS_MAX - 1 && ((index >> level) & 1) != 0) {
        rc = ledger_merkle_node_hash(frontier->hashes[level], hash, hash);
        if (rc != 0)
            return rc;
        level++;
        rc = emit(ctx, level, index >> level, hash);
        if (rc != 0)
            return rc;
    }
    LMQ_ASSERT(((index >> level) & 1) == 0);
    /* Only now touch the frontier, so a failed emit or hash leaves it as it was. */
    memcpy(frontier->hashes[level], hash, sizeof(hash));
    frontier->size = index + 1;
    LMQ_ASSERT(((frontier->size >> level) & 1) == 1);
    return LMQ_OK;
}

int ledger_merkle_frontier_root(const struct ledger_merkle_frontier *frontier,
                                uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    LMQ_ASSERT(frontier != NULL && out != NULL);
    if (frontier->size == 0)
        return crypto_sha256(NULL, 0, out);
    bool have = false;
    for (uint32_t level = 0; level < LEDGER_MERKLE_LEVELS_MAX; level++) {
        if (((frontier->size >> level) & 1) == 0)
            continue;
        if (!have) {
            memcpy(out, frontier->hashes[level], LEDGER_MERKLE_HASH_BYTES);
            have = true;
            continue;
        }
        int rc = ledger_merkle_node_hash(frontier->hashes[level], out, out);
        if (rc != 0)
            return rc;
    }
    LMQ_ASSERT(have);
    return LMQ_OK;
}

int ledger_merkle_frontier_load(const struct ledger_merkle_source *source, uint64_t size,
                                struct ledger_merkle_frontier *frontier)
{
    LMQ_ASSERT(source != NULL && source->get != NULL);
    LMQ_ASSERT(frontier != NULL);
    struct merkle_reader rd = {.source = source, .reads = 0};
    memset(frontier, 0, sizeof(*frontier));
    for (uint32_t level = 0; level < LEDGER_MERKLE_LEVELS_MAX; level++) {
        if (((size >> level) & 1) == 0)
            continue;
        int rc = merkle__get(&rd, level, (size >> level) - 1, frontier->hashes[level]);
        if (rc != 0)
            return rc;
    }
    frontier->size = size;
    LMQ_ASSERT(rd.reads == (uint32_t)__builtin_popcountll(size));
    return LMQ_OK;
}

int ledger_merkle_root(const struct ledger_merkle_source *source, uint64_t size,
                       uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    LMQ_ASSERT(source != NULL && source->get != NULL);
    LMQ_ASSERT(out != NULL);
    if (size == 0)
        return crypto_sha256(NULL, 0, out);
    struct merkle_reader rd = {.source = source, .reads = 0};
    int rc = merkle__range_root(&rd, 0, size, out);
    LMQ_ASSERT(rd.reads <= LEDGER_MERKLE_LEVELS_MAX);
    return rc;
}

/* Appends to hashes[*count..] the path from the perfect node (level0, index) to the root of the
 * tree of `size` leaves, bottom-up: siblings below the level where the node's path meets the
 * right edge ("inner"; the top one may be a composed right-edge node), then the left siblings
 * along the right edge ("border"). */
static int merkle__path(struct merkle_reader *rd, uint32_t level0, uint64_t index, uint64_t size,
                        uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES],
                        size_t *count)
{
    LMQ_ASSERT(level0 < LEDGER_MERKLE_LEVELS_MAX && size > 0);
    const uint64_t last = (size - 1) >> level0;
    LMQ_ASSERT(index <= last);
    const uint32_t inner = merkle__bit_len(index ^ last);
    int rc = LMQ_OK;
    for (uint32_t r = 0; r < inner && rc == 0; r++) {
        LMQ_ASSERT(*count < LEDGER_MERKLE_PROOF_MAX);
        const uint32_t level = level0 + r;
        const uint64_t sibling = (index >> r) ^ 1;
        if (r + 1 < inner) {
            rc = merkle__get(rd, level, sibling, hashes[*count]);
        } else {
            /* The top inner sibling is the right one that holds the last leaf: maybe partial. */
            const uint64_t start = sibling << level;
            LMQ_ASSERT(start < size && size - start <= (UINT64_C(1) << level));
            rc = merkle__range_root(rd, start, size - start, hashes[*count]);
        }
        (*count)++;
    }
    for (uint32_t r = inner; r + level0 < LEDGER_MERKLE_LEVELS_MAX && rc == 0; r++) {
        if (((index >> r) & 1) == 0)
            continue;
        LMQ_ASSERT(*count < LEDGER_MERKLE_PROOF_MAX);
        rc = merkle__get(rd, level0 + r, (index >> r) - 1, hashes[*count]);
        (*count)++;
    }
    return rc;
}

int ledger_merkle_inclusion_proof(const struct ledger_merkle_source *source, uint64_t index,
                                  uint64_t size,
                                  uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES],
                                  size_t *count)
{
    LMQ_ASSERT(source != NULL && source->get != NULL);
    LMQ_ASSERT(hashes != NULL && count != NULL);
    *count = 0;
    if (index >= size)
        return LMQ_EINVAL;
    struct merkle_reader rd = {.source = source, .reads = 0};
    int rc = merkle__path(&rd, 0, index, size, hashes, count);
    LMQ_ASSERT(rd.reads <= 2 * merkle__bit_len(size - 1) || size == 1);
    if (rc != 0)
        *count = 0;
    return rc;
}

int ledger_merkle_consistency_proof(
    const struct ledger_merkle_source *source, uint64_t old_size, uint64_t new_size,
    uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES], size_t *count)
{
    LMQ_ASSERT(source != NULL && source->get != NULL);
    LMQ_ASSERT(hashes != NULL && count != NULL);
    *count = 0;
    if (old_size > new_size)
        return LMQ_EINVAL;
    if (old_size == 0 || old_size == new_size)
        return LMQ_OK;
    struct merkle_reader rd = {.source = source, .reads = 0};
    /* The old tree's right-most perfect subtree is a node of the new tree; the proof is that
     * node (unless it is the whole old tree, whose root the verifier already has) followed by
     * its path to the new root (RFC 9162 SUBPROOF unrolled). */
    const uint32_t level = (uint32_t)__builtin_ctzll(old_size);
    const uint64_t index = (old_size >> level) - 1;
    int rc = LMQ_OK;
    if (index != 0) {
        rc = merkle__get(&rd, level, index, hashes[0]);
        *count = 1;
    }
    if (rc == 0)
        rc = merkle__path(&rd, level, index, new_size, hashes, count);
    LMQ_ASSERT(rd.reads <= 2 * merkle__bit_len(new_size - 1) + 1);
    if (rc != 0)
        *count = 0;
    return rc;
}

/* Halves fn and sn until fn is odd or zero (RFC 9162's "right-shift both equally"). */
static void merkle__skip_right_edge(uint64_t *fn, uint64_t *sn)
{
    for (uint32_t i = 0; i < LEDGER_MERKLE_LEVELS_MAX && (*fn & 1) == 0 && *fn != 0; i++) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

int ledger_merkle_verify_inclusion(const uint8_t leaf_hash[LEDGER_MERKLE_HASH_BYTES],
                                   uint64_t index, uint64_t size,
                                   const uint8_t (*proof)[LEDGER_MERKLE_HASH_BYTES], size_t count,
                                   const uint8_t root[LEDGER_MERKLE_HASH_BYTES])
{
    LMQ_ASSERT(leaf_hash != NULL && root != NULL);
    LMQ_ASSERT(proof != NULL || count == 0);
    if (index >= size || count > LEDGER_MERKLE_PROOF_MAX)
        return LMQ_EPROTO;
    uint64_t fn = index;
    uint64_t sn = size - 1;
    uint8_t r[LEDGER_MERKLE_HASH_BYTES];
    memcpy(r, leaf_hash, sizeof(r));
    for (size_t i = 0; i < count; i++) {
        if (sn == 0)
            return LMQ_EPROTO; /* proof longer than the path */
        int rc;
        if ((fn & 1) != 0 || fn == sn) {
            rc = ledger_merkle_node_hash(proof[i], r, r);
            if ((fn & 1) == 0)
                merkle__skip_right_edge(&fn, &sn);
        } else {
            rc = ledger_merkle_node_hash(r, proof[i], r);
        }
        if (rc != 0)
            return rc;
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(r, root, sizeof(r)) != 0)
        return LMQ_EPROTO;
    return LMQ_OK;
}

/* Both sizes non-zero and different: RFC 9162 §2.1.4.2 steps 2-7. */
static int merkle__verify_consistency_path(uint64_t old_size, uint64_t new_size,
                                           const uint8_t old_root[LEDGER_MERKLE_HASH_BYTES],
                                           const uint8_t new_root[LEDGER_MERKLE_HASH_BYTES],
                                           const uint8_t (*proof)[LEDGER_MERKLE_HASH_BYTES],
                                           size_t count)
{
    LMQ_ASSERT(0 < old_size && old_size < new_size);
    LMQ_ASSERT(count > 0 && count <= LEDGER_MERKLE_PROOF_MAX);
    /* A power-of-two old tree is itself the first node: the proof starts with old_root. */
    const bool old_is_node = (old_size & (old_size - 1)) == 0;
    uint64_t fn = old_size - 1;
    uint64_t sn = new_size - 1;
    for (uint32_t i = 0; i < LEDGER_MERKLE_LEVELS_MAX && (fn & 1) != 0; i++) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[LEDGER_MERKLE_HASH_BYTES];
    uint8_t sr[LEDGER_MERKLE_HASH_BYTES];
    memcpy(fr, old_is_node ? old_root : proof[0], sizeof(fr));
    memcpy(sr, fr, sizeof(sr));
    for (size_t i = old_is_node ? 0 : 1; i < count; i++) {
        if (sn == 0)
            return LMQ_EPROTO;
        int rc;
        if ((fn & 1) != 0 || fn == sn) {
            rc = ledger_merkle_node_hash(proof[i], fr, fr);
            if (rc == 0)
                rc = ledger_merkle_node_hash(proof[i], sr, sr);
            if ((fn & 1) == 0)
                merkle__skip_right_edge(&fn, &sn);
        } else {
            rc = ledger_merkle_node_hash(sr, proof[i], sr);
        }
        if (rc != 0)
            return rc;
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(fr, old_root, sizeof(fr)) != 0 || memcmp(sr, new_root, sizeof(sr)) != 0)
        return LMQ_EPROTO;
    return LMQ_OK;
}

int ledger_merkle_verify_consistency(uint64_t old_size, uint64_t new_size,
                                     const uint8_t old_root[LEDGER_MERKLE_HASH_BYTES],
                                     const uint8_t new_root[LEDGER_MERKLE_HASH_BYTES],
                                     const uint8_t (*proof)[LEDGER_MERKLE_HASH_BYTES], size_t count)
{
    LMQ_ASSERT(old_root != NULL && new_root != NULL);
    LMQ_ASSERT(proof != NULL || count == 0);
    if (old_size > new_size || count > LEDGER_MERKLE_PROOF_MAX)
        return LMQ_EPROTO;
    if (old_size == new_size) {
        if (count != 0 || memcmp(old_root, new_root, LEDGER_MERKLE_HASH_BYTES) != 0)
            return LMQ_EPROTO;
        return LMQ_OK;
    }
    if (old_size == 0) {
        /* Every tree extends the empty one, but only the true empty root names it. */
        uint8_t empty[LEDGER_MERKLE_HASH_BYTES];
        int rc = crypto_sha256(NULL, 0, empty);
        if (rc != 0)
            return rc;
        if (count != 0 || memcmp(old_root, empty, sizeof(empty)) != 0)
            return LMQ_EPROTO;
        return LMQ_OK;
    }
    if (count == 0)
        return LMQ_EPROTO;
    return merkle__verify_consistency_path(old_size, new_size, old_root, new_root, proof, count);
}
