/*
 * Unit tests for the RFC 9162 Merkle tree (src/ledger/merkle.h).
 *
 * Known answers: the RFC 6962 8-leaf test set of the Certificate Transparency reference
 * implementations, as published in transparency-dev/merkle, file proof/verify_test.go (variables
 * `leaves`, `roots`, `inclusionProofs` and `consistencyProofs`; the edge-case table of
 * TestVerifyConsistency). Everything else is checked against a naive recursive transcription of
 * RFC 9162 §2.1 (MTH, PATH, PROOF/SUBPROOF) written below.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/lmq.h"
#include "crypto/hash.h"
#include "ledger/merkle.h"

#define HB LEDGER_MERKLE_HASH_BYTES
#define KAT_LEAVES 8
#define PROPERTY_LEAVES 3000
#define PROPERTY_SIZES 24
#define PROPERTY_PAIRS 3000
#define EXHAUSTIVE_LEAVES 70
#define TAMPER_FULL_PROOFS 6
#define BIG_LEAVES 1000000
#define BIG_PROBES 2000
#define LEAF_BYTES 32

/* ---- helpers: hex, random, an in-memory node store ---- */

static void hex_decode(const char *hex, uint8_t *out, size_t len)
{
    assert_int_equal(strlen(hex), 2 * len);
    for (size_t i = 0; i < len; i++) {
        unsigned int v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

/* xorshift64*: a fixed seed so every run checks the same trees. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

static uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

/* Perfect nodes per level, filled by the frontier's emit callback in append order. */
struct mem_tree {
    uint8_t (*level[LEDGER_MERKLE_LEVELS_MAX])[HB];
    uint64_t count[LEDGER_MERKLE_LEVELS_MAX];
    uint64_t cap[LEDGER_MERKLE_LEVELS_MAX];
    uint64_t reads;
    int fail_get_rc; /* non-zero: every get fails with it */
};

static void mem_init(struct mem_tree *t, uint64_t max_leaves)
{
    memset(t, 0, sizeof(*t));
    for (uint32_t l = 0; l < LEDGER_MERKLE_LEVELS_MAX && (max_leaves >> l) > 0; l++) {
        t->cap[l] = max_leaves >> l;
        t->level[l] = calloc(t->cap[l], HB);
        assert_non_null(t->level[l]);
    }
}

static void mem_free(struct mem_tree *t)
{
    for (uint32_t l = 0; l < LEDGER_MERKLE_LEVELS_MAX; l++)
        free(t->level[l]);
}

static int mem_emit(void *ctx, uint32_t level, uint64_t index, const uint8_t hash[HB])
{
    struct mem_tree *t = ctx;
    assert_true(level < LEDGER_MERKLE_LEVELS_MAX);
    assert_int_equal(index, t->count[level]); /* append-only, in order */
    assert_true(index < t->cap[level]);
    memcpy(t->level[level][index], hash, HB);
    t->count[level]++;
    return 0;
}

static int mem_get(void *ctx, uint32_t level, uint64_t index, uint8_t out[HB])
{
    struct mem_tree *t = ctx;
    t->reads++;
    if (t->fail_get_rc != 0)
        return t->fail_get_rc;
    if (level >= LEDGER_MERKLE_LEVELS_MAX || index >= t->count[level])
        return LMQ_ENOTFOUND;
    memcpy(out, t->level[level][index], HB);
    return 0;
}

static struct ledger_merkle_source mem_source(struct mem_tree *t)
{
    struct ledger_merkle_source s = {.get = mem_get, .ctx = t};
    return s;
}

/* The 32-byte "link" of leaf i and its leaf hash. */
static void test_leaf_hash(uint64_t i, uint8_t out[HB])
{
    uint8_t link[LEAF_BYTES];
    for (size_t b = 0; b < LEAF_BYTES; b++)
        link[b] = (uint8_t)((i >> (8 * (b % 8))) ^ (b * 31u));
    assert_int_equal(ledger_merkle_leaf_hash(link, sizeof(link), out), 0);
}

/* Appends leaves [t->count[0], n) to f, storing every emitted node in t; roots[s-1] (when
 * non-NULL) receives the frontier root at every size s. */
static void grow(struct ledger_merkle_frontier *f, struct mem_tree *t, uint64_t n,
                 uint8_t (*roots)[HB])
{
    for (uint64_t i = f->size; i < n; i++) {
        uint8_t lh[HB];
        test_leaf_hash(i, lh);
        assert_int_equal(ledger_merkle_append(f, lh, mem_emit, t), 0);
        assert_int_equal(f->size, i + 1);
        if (roots != NULL)
            assert_int_equal(ledger_merkle_frontier_root(f, roots[i]), 0);
    }
}

/* ---- naive RFC 9162 §2.1 reference ---- */

static uint64_t naive_split(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

static void naive_mth(const uint8_t (*lh)[HB], uint64_t n, uint8_t out[HB])
{
    if (n == 0) {
        assert_int_equal(crypto_sha256(NULL, 0, out), 0);
    } else if (n == 1) {
        memcpy(out, lh[0], HB);
    } else {
        uint64_t k = naive_split(n);
        uint8_t l[HB], r[HB];
        naive_mth(lh, k, l);
        naive_mth(lh + k, n - k, r);
        assert_int_equal(ledger_merkle_node_hash(l, r, out), 0);
    }
}

static void naive_path(uint64_t m, const uint8_t (*lh)[HB], uint64_t n, uint8_t (*proof)[HB],
                       size_t *count)
{
    if (n == 1)
        return;
    uint64_t k = naive_split(n);
    if (m < k) {
        naive_path(m, lh, k, proof, count);
        naive_mth(lh + k, n - k, proof[(*count)++]);
    } else {
        naive_path(m - k, lh + k, n - k, proof, count);
        naive_mth(lh, k, proof[(*count)++]);
    }
}

static void naive_subproof(uint64_t m, const uint8_t (*lh)[HB], uint64_t n, bool b,
                           uint8_t (*proof)[HB], size_t *count)
{
    if (m == n) {
        if (!b)
            naive_mth(lh, m, proof[(*count)++]);
        return;
    }
    uint64_t k = naive_split(n);
    if (m <= k) {
        naive_subproof(m, lh, k, b, proof, count);
        naive_mth(lh + k, n - k, proof[(*count)++]);
    } else {
        naive_subproof(m - k, lh + k, n - k, false, proof, count);
        naive_mth(lh, k, proof[(*count)++]);
    }
}

/* ---- known answers ---- */

static const char *const kat_leaves_hex[KAT_LEAVES] = {
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};

static const char *const kat_roots_hex[KAT_LEAVES] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

#define KAT_PROOF_MAX 3

/* Inclusion: leaf index (0-based here; the Go table is 1-based), tree size, path. */
struct kat_proof {
    uint64_t a;
    uint64_t b;
    size_t count;
    const char *hex[KAT_PROOF_MAX];
};

static const struct kat_proof kat_inclusion[] = {
    {0, 1, 0, {NULL}},
    {0,
     8,
     3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5,
     8,
     3,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1,
     5,
     3,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

/* Consistency: old size, new size, proof. */
static const struct kat_proof kat_consistency[] = {
    {1, 1, 0, {NULL}},
    {1,
     8,
     3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6,
     8,
     3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2,
     5,
     2,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6,
     7,
     3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

/* Builds the 8-leaf KAT tree into t, checking the frontier root at every size. */
static void kat_build(struct mem_tree *t, uint8_t roots[KAT_LEAVES][HB],
                      uint8_t leaf_hashes[KAT_LEAVES][HB])
{
    mem_init(t, KAT_LEAVES);
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    for (size_t i = 0; i < KAT_LEAVES; i++) {
        uint8_t data[16];
        size_t len = strlen(kat_leaves_hex[i]) / 2;
        hex_decode(kat_leaves_hex[i], data, len);
        assert_int_equal(ledger_merkle_leaf_hash(data, len, leaf_hashes[i]), 0);
        assert_int_equal(ledger_merkle_append(&f, leaf_hashes[i], mem_emit, t), 0);
        hex_decode(kat_roots_hex[i], roots[i], HB);
        uint8_t got[HB];
        assert_int_equal(ledger_merkle_frontier_root(&f, got), 0);
        assert_memory_equal(got, roots[i], HB);
    }
}

static void test_empty_tree_root_is_sha256_of_empty_string(void **state)
{
    (void)state;
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    uint8_t want[HB], got[HB];
    hex_decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, HB);
    assert_int_equal(ledger_merkle_frontier_root(&f, got), 0);
    assert_memory_equal(got, want, HB);
    struct mem_tree t;
    mem_init(&t, 1);
    struct ledger_merkle_source s = mem_source(&t);
    memset(got, 0, HB);
    assert_int_equal(ledger_merkle_root(&s, 0, got), 0);
    assert_memory_equal(got, want, HB);
    assert_int_equal(t.reads, 0);
    mem_free(&t);
}

static void test_kat_roots_for_sizes_1_to_8(void **state)
{
    (void)state;
    struct mem_tree t;
    uint8_t roots[KAT_LEAVES][HB], lh[KAT_LEAVES][HB];
    kat_build(&t, roots, lh);
    struct ledger_merkle_source s = mem_source(&t);
    for (uint64_t n = 1; n <= KAT_LEAVES; n++) {
        uint8_t got[HB];
        assert_int_equal(ledger_merkle_root(&s, n, got), 0);
        assert_memory_equal(got, roots[n - 1], HB);
        struct ledger_merkle_frontier f;
        assert_int_equal(ledger_merkle_frontier_load(&s, n, &f), 0);
        assert_int_equal(ledger_merkle_frontier_root(&f, got), 0);
        assert_memory_equal(got, roots[n - 1], HB);
    }
    mem_free(&t);
}

static void test_kat_inclusion_proofs_match_and_verify(void **state)
{
    (void)state;
    struct mem_tree t;
    uint8_t roots[KAT_LEAVES][HB], lh[KAT_LEAVES][HB];
    kat_build(&t, roots, lh);
    struct ledger_merkle_source s = mem_source(&t);
    for (size_t v = 0; v < LMQ_ARRAY_LEN(kat_inclusion); v++) {
        const struct kat_proof *k = &kat_inclusion[v];
        uint8_t proof[LEDGER_MERKLE_PROOF_MAX][HB];
        size_t count = 99;
        assert_int_equal(ledger_merkle_inclusion_proof(&s, k->a, k->b, proof, &count), 0);
        assert_int_equal(count, k->count);
        for (size_t i = 0; i < count; i++) {
            uint8_t want[HB];
            hex_decode(k->hex[i], want, HB);
            assert_memory_equal(proof[i], want, HB);
        }
        assert_int_equal(
            ledger_merkle_verify_inclusion(lh[k->a], k->a, k->b, proof, count, roots[k->b - 1]), 0);
    }
    mem_free(&t);
}

static void test_kat_consistency_proofs_match_and_verify(void **state)
{
    (void)state;
    struct mem_tree t;
    uint8_t roots[KAT_LEAVES][HB], lh[KAT_LEAVES][HB];
    kat_build(&t, roots, lh);
    struct ledger_merkle_source s = mem_source(&t);
    for (size_t v = 0; v < LMQ_ARRAY_LEN(kat_consistency); v++) {
        const struct kat_proof *k = &kat_consistency[v];
        uint8_t proof[LEDGER_MERKLE_PROOF_MAX][HB];
        size_t count = 99;
        assert_int_equal(ledger_merkle_consistency_proof(&s, k->a, k->b, proof, &count), 0);
        assert_int_equal(count, k->count);
        for (size_t i = 0; i < count; i++) {
            uint8_t want[HB];
            hex_decode(k->hex[i], want, HB);
            assert_memory_equal(proof[i], want, HB);
        }
        assert_int_equal(ledger_merkle_verify_consistency(k->a, k->b, roots[k->a - 1],
                                                          roots[k->b - 1], proof, count),
                         0);
    }
    mem_free(&t);
}

/* The edge-case table of transparency-dev/merkle TestVerifyConsistency (plus our stricter rule
 * that old size 0 names the empty root). */
static void test_consistency_edge_cases(void **state)
{
    (void)state;
    uint8_t r1[HB], r2[HB], empty[HB];
    memset(r1, 0x11, HB);
    memset(r2, 0x22, HB);
    assert_int_equal(crypto_sha256(NULL, 0, empty), 0);
    uint8_t one[1][HB];
    memcpy(one[0], empty, HB);
    /* Equal sizes: empty proof and equal roots, nothing else. */
    assert_int_equal(ledger_merkle_verify_consistency(0, 0, r1, r2, NULL, 0), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_consistency(1, 1, r1, r2, NULL, 0), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_consistency(0, 0, r1, r1, NULL, 0), 0);
    assert_int_equal(ledger_merkle_verify_consistency(1, 1, r2, r2, NULL, 0), 0);
    assert_int_equal(ledger_merkle_verify_consistency(1, 1, empty, empty, one, 1), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_consistency(0, 0, empty, empty, one, 1), LMQ_EPROTO);
    /* From the empty tree: empty proof, and the old root must be the empty root. */
    assert_int_equal(ledger_merkle_verify_consistency(0, 1, empty, r2, NULL, 0), 0);
    assert_int_equal(ledger_merkle_verify_consistency(0, 1, r1, r2, NULL, 0), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_consistency(0, 1, empty, empty, one, 1), LMQ_EPROTO);
    /* Time travel and empty proofs between different non-zero sizes. */
    assert_int_equal(ledger_merkle_verify_consistency(1, 0, r1, r2, NULL, 0), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_consistency(2, 1, r1, r2, NULL, 0), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_consistency(1, 2, r1, r2, NULL, 0), LMQ_EPROTO);
    /* Inclusion: index >= size and empty trees never verify. */
    assert_int_equal(ledger_merkle_verify_inclusion(r1, 0, 0, NULL, 0, r1), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_inclusion(r1, 1, 1, NULL, 0, r1), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_inclusion(r1, 2, 1, NULL, 0, r1), LMQ_EPROTO);
    assert_int_equal(ledger_merkle_verify_inclusion(r1, 0, 1, NULL, 0, r1), 0);
    assert_int_equal(ledger_merkle_verify_inclusion(r1, 0, 1, NULL, 0, r2), LMQ_EPROTO);
}

/* ---- generated proofs equal the RFC's recursive definitions ---- */

static void test_proofs_equal_naive_rfc_definitions_up_to_70_leaves(void **state)
{
    (void)state;
    struct mem_tree t;
    mem_init(&t, EXHAUSTIVE_LEAVES);
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    grow(&f, &t, EXHAUSTIVE_LEAVES, NULL);
    struct ledger_merkle_source s = mem_source(&t);
    const uint8_t(*lh)[HB] = (const uint8_t(*)[HB])t.level[0];
    for (uint64_t n = 1; n <= EXHAUSTIVE_LEAVES; n++) {
        for (uint64_t m = 0; m <= n; m++) {
            uint8_t got[LEDGER_MERKLE_PROOF_MAX][HB], want[LEDGER_MERKLE_PROOF_MAX][HB];
            size_t got_count = 0, want_count = 0;
            if (m < n) {
                assert_int_equal(ledger_merkle_inclusion_proof(&s, m, n, got, &got_count), 0);
                naive_path(m, lh, n, want, &want_count);
                assert_int_equal(got_count, want_count);
                if (got_count > 0)
                    assert_memory_equal(got, want, got_count * HB);
            }
            if (m > 0 && m < n) {
                want_count = 0;
                assert_int_equal(ledger_merkle_consistency_proof(&s, m, n, got, &got_count), 0);
                naive_subproof(m, lh, n, true, want, &want_count);
                assert_int_equal(got_count, want_count);
                assert_true(got_count > 0);
                assert_memory_equal(got, want, got_count * HB);
            }
        }
    }
    mem_free(&t);
}

/* ---- tampering: every change to a valid proof makes it fail ---- */

/*
 * A proof does not name its tree size: RFC 9162 verification only follows the shape of the path
 * (which side each sibling is on, and for consistency which hashes feed the old root). So a
 * proof for size n also verifies against the same root under another size whose path has the
 * same shape, e.g. PATH(0, D[5]) and PATH(0, D[6]) are both "3 right siblings". The signed
 * checkpoint binds size and root together; here the tests assert that a changed size fails
 * exactly when the shape differs, and count how often each happens.
 */
#define SHAPE_MAX 130

static uint64_t size_change_rejected;
static uint64_t size_change_accepted;

static void path_shape(uint64_t m, uint64_t n, char *out, size_t *len)
{
    assert_true(*len + 1 < SHAPE_MAX);
    if (n == 1)
        return;
    uint64_t k = naive_split(n);
    out[(*len)++] = m < k ? 'r' : 'l';
    if (m < k)
        path_shape(m, k, out, len);
    else
        path_shape(m - k, n - k, out, len);
}

static bool same_path_shape(uint64_t m, uint64_t n1, uint64_t n2)
{
    char a[SHAPE_MAX], b[SHAPE_MAX];
    size_t la = 0, lb = 0;
    path_shape(m, n1, a, &la);
    path_shape(m, n2, b, &lb);
    return la == lb && memcmp(a, b, la) == 0;
}

static void subproof_shape(uint64_t m, uint64_t n, bool b, char *out, size_t *len)
{
    assert_true(*len + 2 < SHAPE_MAX);
    if (m == n) {
        out[(*len)++] = b ? 'T' : 't';
        return;
    }
    uint64_t k = naive_split(n);
    out[(*len)++] = m <= k ? 'r' : 'l';
    if (m <= k)
        subproof_shape(m, k, b, out, len);
    else
        subproof_shape(m - k, n - k, false, out, len);
}

static bool same_subproof_shape(uint64_t m1, uint64_t n1, uint64_t m2, uint64_t n2)
{
    char a[SHAPE_MAX], b[SHAPE_MAX];
    size_t la = 0, lb = 0;
    subproof_shape(m1, n1, true, a, &la);
    subproof_shape(m2, n2, true, b, &lb);
    return la == lb && memcmp(a, b, la) == 0;
}

static void flip_bit(uint8_t *h, uint32_t bit)
{
    h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

/* The bits to try in one hash: all 256, or one at random. */
static uint32_t bits_to_try(bool every_bit, uint32_t i)
{
    return every_bit ? i : (uint32_t)rng_below(HB * 8);
}

static void check_inclusion_tampering(const uint8_t leaf[HB], uint64_t index, uint64_t size,
                                      uint8_t (*proof)[HB], size_t count, const uint8_t root[HB],
                                      bool every_bit)
{
    assert_int_equal(ledger_merkle_verify_inclusion(leaf, index, size, proof, count, root), 0);
    const uint32_t tries = every_bit ? HB * 8 : 1;
    uint8_t l[HB], r[HB];
    memcpy(l, leaf, HB);
    memcpy(r, root, HB);
    for (uint32_t t = 0; t < tries; t++) {
        uint32_t bit = bits_to_try(every_bit, t);
        for (size_t i = 0; i < count; i++) {
            flip_bit(proof[i], bit);
            assert_int_not_equal(ledger_merkle_verify_inclusion(l, index, size, proof, count, r),
                                 0);
            flip_bit(proof[i], bit);
        }
        flip_bit(l, bit);
        assert_int_not_equal(ledger_merkle_verify_inclusion(l, index, size, proof, count, r), 0);
        flip_bit(l, bit);
        flip_bit(r, bit);
        assert_int_not_equal(ledger_merkle_verify_inclusion(l, index, size, proof, count, r), 0);
        flip_bit(r, bit);
    }
    if (index > 0)
        assert_int_not_equal(ledger_merkle_verify_inclusion(l, index - 1, size, proof, count, r),
                             0);
    assert_int_not_equal(ledger_merkle_verify_inclusion(l, index + 1, size, proof, count, r), 0);
    const uint64_t others[4] = {size - 1, size + 1, size * 2, size / 2};
    for (size_t d = 0; d < 4; d++) {
        uint64_t other = others[d];
        int rc = ledger_merkle_verify_inclusion(l, index, other, proof, count, r);
        bool same = other > index && same_path_shape(index, size, other);
        assert_int_equal(rc == 0, same);
        size_change_rejected += same ? 0 : 1;
        size_change_accepted += same ? 1 : 0;
    }
    /* One hash too many (a copy of the root, then a copy of the leaf) or too few. */
    if (count < LEDGER_MERKLE_PROOF_MAX) {
        memcpy(proof[count], r, HB);
        assert_int_not_equal(ledger_merkle_verify_inclusion(l, index, size, proof, count + 1, r),
                             0);
        memcpy(proof[count], l, HB);
        assert_int_not_equal(ledger_merkle_verify_inclusion(l, index, size, proof, count + 1, r),
                             0);
    }
    if (count > 0) {
        assert_int_not_equal(ledger_merkle_verify_inclusion(l, index, size, proof, count - 1, r),
                             0);
        assert_int_not_equal(
            ledger_merkle_verify_inclusion(l, index, size, proof + 1, count - 1, r), 0);
    }
    assert_int_equal(ledger_merkle_verify_inclusion(l, index, size, proof, count, r), 0);
}

static void check_consistency_tampering(uint64_t m, uint64_t n, const uint8_t old_root[HB],
                                        const uint8_t new_root[HB], uint8_t (*proof)[HB],
                                        size_t count, bool every_bit)
{
    assert_true(0 < m && m < n && count > 0);
    uint8_t o[HB], w[HB];
    memcpy(o, old_root, HB);
    memcpy(w, new_root, HB);
    assert_int_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count), 0);
    const uint32_t tries = every_bit ? HB * 8 : 1;
    for (uint32_t t = 0; t < tries; t++) {
        uint32_t bit = bits_to_try(every_bit, t);
        for (size_t i = 0; i < count; i++) {
            flip_bit(proof[i], bit);
            assert_int_not_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count), 0);
            flip_bit(proof[i], bit);
        }
        flip_bit(o, bit);
        assert_int_not_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count), 0);
        flip_bit(o, bit);
        flip_bit(w, bit);
        assert_int_not_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count), 0);
        flip_bit(w, bit);
    }
    const uint64_t sizes[6][2] = {{m - 1, n}, {m + 1, n}, {m, n - 1},
                                  {m, n + 1}, {m, n * 2}, {m * 2, n}};
    for (size_t i = 0; i < 6; i++) {
        uint64_t m2 = sizes[i][0], n2 = sizes[i][1];
        int rc = ledger_merkle_verify_consistency(m2, n2, o, w, proof, count);
        bool same = 0 < m2 && m2 < n2 && same_subproof_shape(m, n, m2, n2);
        assert_int_equal(rc == 0, same);
        size_change_rejected += same ? 0 : 1;
        size_change_accepted += same ? 1 : 0;
    }
    assert_int_not_equal(ledger_merkle_verify_consistency(m, n, w, o, proof, count), 0);
    if (count < LEDGER_MERKLE_PROOF_MAX) {
        memcpy(proof[count], o, HB);
        assert_int_not_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count + 1), 0);
        memcpy(proof[count], w, HB);
        assert_int_not_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count + 1), 0);
    }
    assert_int_not_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count - 1), 0);
    assert_int_not_equal(ledger_merkle_verify_consistency(m, n, o, w, proof + 1, count - 1), 0);
    assert_int_equal(ledger_merkle_verify_consistency(m, n, o, w, proof, count), 0);
}

/* ---- properties over random sizes up to 3,000 leaves ---- */

struct prop_tree {
    struct mem_tree t;
    struct ledger_merkle_source s;
    uint8_t (*roots)[HB]; /* roots[n - 1]: frontier root at size n, recorded while appending */
};

static void prop_build(struct prop_tree *p, uint64_t n)
{
    mem_init(&p->t, n);
    p->s = mem_source(&p->t);
    p->roots = calloc(n, HB);
    assert_non_null(p->roots);
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    grow(&f, &p->t, n, p->roots);
}

static void prop_free(struct prop_tree *p)
{
    mem_free(&p->t);
    free(p->roots);
}

static void test_frontier_root_equals_naive_mth_at_random_sizes(void **state)
{
    (void)state;
    struct prop_tree p;
    prop_build(&p, PROPERTY_LEAVES);
    const uint8_t(*lh)[HB] = (const uint8_t(*)[HB])p.t.level[0];
    for (int i = 0; i < PROPERTY_SIZES * 4; i++) {
        uint64_t n =
            i < 4 ? (uint64_t)PROPERTY_LEAVES - (uint64_t)i : 1 + rng_below(PROPERTY_LEAVES);
        uint8_t want[HB], got[HB];
        naive_mth(lh, n, want);
        assert_memory_equal(p.roots[n - 1], want, HB);
        assert_int_equal(ledger_merkle_root(&p.s, n, got), 0);
        assert_memory_equal(got, want, HB);
        struct ledger_merkle_frontier f;
        assert_int_equal(ledger_merkle_frontier_load(&p.s, n, &f), 0);
        assert_int_equal(ledger_merkle_frontier_root(&f, got), 0);
        assert_memory_equal(got, want, HB);
    }
    prop_free(&p);
}

static void test_every_inclusion_proof_verifies_and_resists_tampering(void **state)
{
    (void)state;
    struct prop_tree p;
    prop_build(&p, PROPERTY_LEAVES);
    const uint8_t(*lh)[HB] = (const uint8_t(*)[HB])p.t.level[0];
    int full = 0;
    for (int i = 0; i < PROPERTY_SIZES; i++) {
        uint64_t n = i == 0 ? PROPERTY_LEAVES : 1 + rng_below(PROPERTY_LEAVES);
        for (uint64_t m = 0; m < n; m++) {
            uint8_t proof[LEDGER_MERKLE_PROOF_MAX][HB];
            size_t count = 0;
            assert_int_equal(ledger_merkle_inclusion_proof(&p.s, m, n, proof, &count), 0);
            assert_int_equal(
                ledger_merkle_verify_inclusion(lh[m], m, n, proof, count, p.roots[n - 1]), 0);
            /* All 256 bits of every hash for a few proofs, one random bit for a sample. */
            bool every_bit = full < TAMPER_FULL_PROOFS && rng_below(n) == 0;
            if (every_bit || rng_below(16) == 0) {
                full += every_bit ? 1 : 0;
                check_inclusion_tampering(lh[m], m, n, proof, count, p.roots[n - 1], every_bit);
            }
        }
    }
    assert_true(full > 0);
    /* Both outcomes occur, so the size check above is exercised both ways. */
    assert_true(size_change_rejected > 0 && size_change_accepted > 0);
    prop_free(&p);
}

static void test_every_consistency_proof_verifies_and_resists_tampering(void **state)
{
    (void)state;
    struct prop_tree p;
    prop_build(&p, PROPERTY_LEAVES);
    size_change_rejected = 0;
    size_change_accepted = 0;
    int full = 0;
    for (int i = 0; i < PROPERTY_PAIRS; i++) {
        uint64_t n = 2 + rng_below(PROPERTY_LEAVES - 1);
        uint64_t m = 1 + rng_below(n - 1);
        if (i < 64) { /* powers of two and their neighbours as old sizes */
            m = (UINT64_C(1) << (i % 11)) + (uint64_t)(i / 11 % 3) - 1;
            m = m == 0 ? 1 : m;
            n = m + 1 + rng_below(PROPERTY_LEAVES - m);
        }
        uint8_t proof[LEDGER_MERKLE_PROOF_MAX][HB];
        size_t count = 0;
        assert_int_equal(ledger_merkle_consistency_proof(&p.s, m, n, proof, &count), 0);
        bool every_bit = full < TAMPER_FULL_PROOFS && i % 97 == 0;
        full += every_bit ? 1 : 0;
        check_consistency_tampering(m, n, p.roots[m - 1], p.roots[n - 1], proof, count, every_bit);
    }
    assert_int_equal(full, TAMPER_FULL_PROOFS);
    assert_true(size_change_rejected > 0 && size_change_accepted > 0);
    prop_free(&p);
}

/* ---- restart, errors, limits ---- */

static void test_frontier_load_continues_like_an_uninterrupted_tree(void **state)
{
    (void)state;
    const uint64_t first = 1000, total = 1537;
    struct prop_tree straight;
    prop_build(&straight, total);
    struct mem_tree t;
    mem_init(&t, total);
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    grow(&f, &t, first, NULL);
    struct ledger_merkle_source s = mem_source(&t);
    struct ledger_merkle_frontier loaded;
    t.reads = 0;
    assert_int_equal(ledger_merkle_frontier_load(&s, first, &loaded), 0);
    assert_int_equal(t.reads, __builtin_popcountll(first));
    assert_int_equal(loaded.size, first);
    for (uint32_t l = 0; l < LEDGER_MERKLE_LEVELS_MAX; l++) {
        if ((first >> l) & 1)
            assert_memory_equal(loaded.hashes[l], f.hashes[l], HB);
    }
    grow(&loaded, &t, total, NULL);
    uint8_t got[HB];
    assert_int_equal(ledger_merkle_frontier_root(&loaded, got), 0);
    assert_memory_equal(got, straight.roots[total - 1], HB);
    mem_free(&t);
    prop_free(&straight);
}

struct failing_emit {
    struct mem_tree *t;
    uint32_t fail_level;
};

static int failing_emit(void *ctx, uint32_t level, uint64_t index, const uint8_t hash[HB])
{
    struct failing_emit *fe = ctx;
    if (level == fe->fail_level)
        return LMQ_EIO;
    return mem_emit(fe->t, level, index, hash);
}

static void test_failed_emit_leaves_frontier_unchanged(void **state)
{
    (void)state;
    struct prop_tree p;
    prop_build(&p, 8);
    struct mem_tree t;
    mem_init(&t, 8);
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    grow(&f, &t, 7, NULL);
    struct ledger_merkle_frontier before = f;
    uint8_t lh[HB];
    test_leaf_hash(7, lh);
    /* Leaf 7 completes nodes at levels 0..3; fail at the leaf and at the root. */
    struct failing_emit fe = {.t = &t, .fail_level = 0};
    assert_int_equal(ledger_merkle_append(&f, lh, failing_emit, &fe), LMQ_EIO);
    assert_memory_equal(&f, &before, sizeof(f));
    struct mem_tree scratch;
    mem_init(&scratch, 8);
    memcpy(scratch.count, t.count, sizeof(t.count));
    fe.t = &scratch;
    fe.fail_level = 3;
    assert_int_equal(ledger_merkle_append(&f, lh, failing_emit, &fe), LMQ_EIO);
    assert_memory_equal(&f, &before, sizeof(f));
    assert_int_equal(ledger_merkle_append(&f, lh, mem_emit, &t), 0);
    uint8_t got[HB];
    assert_int_equal(ledger_merkle_frontier_root(&f, got), 0);
    assert_memory_equal(got, p.roots[7], HB);
    assert_int_equal(t.count[3], 1);
    mem_free(&scratch);
    mem_free(&t);
    prop_free(&p);
}

static void test_full_tree_refuses_append(void **state)
{
    (void)state;
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    f.size = UINT64_MAX;
    struct ledger_merkle_frontier before = f;
    uint8_t lh[HB] = {0};
    assert_int_equal(ledger_merkle_append(&f, lh, mem_emit, NULL), LMQ_ELIMIT);
    assert_memory_equal(&f, &before, sizeof(f));
}

static void test_source_errors_and_bad_arguments_are_returned(void **state)
{
    (void)state;
    struct prop_tree p;
    prop_build(&p, 100);
    uint8_t proof[LEDGER_MERKLE_PROOF_MAX][HB];
    size_t count = 7;
    uint8_t out[HB];
    struct ledger_merkle_frontier f;
    /* Arguments out of range. */
    assert_int_equal(ledger_merkle_inclusion_proof(&p.s, 100, 100, proof, &count), LMQ_EINVAL);
    assert_int_equal(count, 0);
    assert_int_equal(ledger_merkle_consistency_proof(&p.s, 51, 50, proof, &count), LMQ_EINVAL);
    /* Sizes beyond what is stored: the source's LMQ_ENOTFOUND comes back. */
    assert_int_equal(ledger_merkle_root(&p.s, 101, out), LMQ_ENOTFOUND);
    assert_int_equal(ledger_merkle_inclusion_proof(&p.s, 5, 101, proof, &count), LMQ_ENOTFOUND);
    assert_int_equal(count, 0);
    assert_int_equal(ledger_merkle_consistency_proof(&p.s, 5, 101, proof, &count), LMQ_ENOTFOUND);
    assert_int_equal(ledger_merkle_frontier_load(&p.s, 103, &f), LMQ_ENOTFOUND);
    /* A failing source: its error code passes through unchanged. */
    p.t.fail_get_rc = LMQ_EIO;
    assert_int_equal(ledger_merkle_root(&p.s, 77, out), LMQ_EIO);
    assert_int_equal(ledger_merkle_frontier_load(&p.s, 77, &f), LMQ_EIO);
    assert_int_equal(ledger_merkle_inclusion_proof(&p.s, 3, 77, proof, &count), LMQ_EIO);
    assert_int_equal(count, 0);
    assert_int_equal(ledger_merkle_consistency_proof(&p.s, 3, 77, proof, &count), LMQ_EIO);
    assert_int_equal(count, 0);
    /* Trivial proofs need no reads at all. */
    p.t.reads = 0;
    assert_int_equal(ledger_merkle_consistency_proof(&p.s, 0, 77, proof, &count), 0);
    assert_int_equal(ledger_merkle_consistency_proof(&p.s, 77, 77, proof, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(p.t.reads, 0);
    prop_free(&p);
}

/* ---- one million leaves: reads stay logarithmic; sparse checks; printed timings ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t ceil_log2(uint64_t n)
{
    uint64_t l = 0;
    while ((UINT64_C(1) << l) < n)
        l++;
    return l;
}

static void test_million_leaves_proofs_read_at_most_2_log2_n_nodes(void **state)
{
    (void)state;
    struct mem_tree t;
    mem_init(&t, BIG_LEAVES);
    struct ledger_merkle_source s = mem_source(&t);
    struct ledger_merkle_frontier f;
    memset(&f, 0, sizeof(f));
    double t0 = now_s();
    grow(&f, &t, BIG_LEAVES, NULL);
    double build_s = now_s() - t0;
    uint8_t root[HB], got[HB];
    assert_int_equal(ledger_merkle_frontier_root(&f, root), 0);
    const uint8_t(*lh)[HB] = (const uint8_t(*)[HB])t.level[0];
    naive_mth(lh, BIG_LEAVES, got);
    assert_memory_equal(got, root, HB);
    const uint64_t h = ceil_log2(BIG_LEAVES); /* 20 */
    double gen_s = 0, ver_s = 0;
    uint64_t max_reads = 0;
    for (int i = 0; i < BIG_PROBES; i++) {
        uint64_t m = i == 0 ? BIG_LEAVES - 1 : rng_below(BIG_LEAVES);
        uint8_t proof[LEDGER_MERKLE_PROOF_MAX][HB];
        size_t count = 0;
        t.reads = 0;
        double a = now_s();
        assert_int_equal(ledger_merkle_inclusion_proof(&s, m, BIG_LEAVES, proof, &count), 0);
        double b = now_s();
        assert_int_equal(ledger_merkle_verify_inclusion(lh[m], m, BIG_LEAVES, proof, count, root),
                         0);
        ver_s += now_s() - b;
        gen_s += b - a;
        assert_true(t.reads <= 2 * h);
        max_reads = LMQ_MAX(max_reads, t.reads);
        /* Consistency from a random older size to a random newer one. */
        uint64_t n = 2 + rng_below(BIG_LEAVES - 1);
        uint64_t old = 1 + rng_below(n - 1);
        uint8_t old_root[HB], new_root[HB];
        assert_int_equal(ledger_merkle_root(&s, old, old_root), 0);
        assert_int_equal(ledger_merkle_root(&s, n, new_root), 0);
        t.reads = 0;
        assert_int_equal(ledger_merkle_consistency_proof(&s, old, n, proof, &count), 0);
        assert_true(t.reads <= 2 * h + 1);
        max_reads = LMQ_MAX(max_reads, t.reads);
        assert_int_equal(ledger_merkle_verify_consistency(old, n, old_root, new_root, proof, count),
                         0);
        if (i < 2) /* sparse: the new root against the naive definition */
            check_consistency_tampering(old, n, old_root, new_root, proof, count, false);
    }
    printf("# merkle: %d leaves appended in %.3f s (%.2f us/leaf); inclusion proof %.2f us "
           "generate + %.2f us verify at n=%d; max %llu reads (bound %llu)\n",
           BIG_LEAVES, build_s, build_s * 1e6 / BIG_LEAVES, gen_s * 1e6 / BIG_PROBES,
           ver_s * 1e6 / BIG_PROBES, BIG_LEAVES, (unsigned long long)max_reads,
           (unsigned long long)(2 * h + 1));
    mem_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_tree_root_is_sha256_of_empty_string),
        cmocka_unit_test(test_kat_roots_for_sizes_1_to_8),
        cmocka_unit_test(test_kat_inclusion_proofs_match_and_verify),
        cmocka_unit_test(test_kat_consistency_proofs_match_and_verify),
        cmocka_unit_test(test_consistency_edge_cases),
        cmocka_unit_test(test_proofs_equal_naive_rfc_definitions_up_to_70_leaves),
        cmocka_unit_test(test_frontier_root_equals_naive_mth_at_random_sizes),
        cmocka_unit_test(test_every_inclusion_proof_verifies_and_resists_tampering),
        cmocka_unit_test(test_every_consistency_proof_verifies_and_resists_tampering),
        cmocka_unit_test(test_frontier_load_continues_like_an_uninterrupted_tree),
        cmocka_unit_test(test_failed_emit_leaves_frontier_unchanged),
        cmocka_unit_test(test_full_tree_refuses_append),
        cmocka_unit_test(test_source_errors_and_bad_arguments_are_returned),
        cmocka_unit_test(test_million_leaves_proofs_read_at_most_2_log2_n_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
