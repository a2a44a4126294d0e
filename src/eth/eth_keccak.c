/*
 * Keccak-256 (see eth_keccak.h for why it is hand-written). The permutation follows the
 * Keccak team's reference description (FIPS 202 section 3.2: theta, rho, pi, chi, iota) on 25
 * little-endian 64-bit lanes; bytes are loaded and stored one at a time so the code does not
 * depend on the host's byte order or alignment.
 */
#include "eth/eth_keccak.h"

#include <string.h>

#include "core/lmq.h"

#define ETH_KECCAK_ROUNDS 24

static const uint64_t eth_keccak__rc[ETH_KECCAK_ROUNDS] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* Rotation offsets and the pi lane order, walked along pi's cycle starting at lane 1. */
static const unsigned eth_keccak__rho[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                                             27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
static const unsigned eth_keccak__pi[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                                            15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

static uint64_t eth_keccak__rotl(uint64_t x, unsigned n)
{
    return (x << n) | (x >> (64 - n));
}

static void eth_keccak__permute(uint64_t a[25])
{
    for (int round = 0; round < ETH_KECCAK_ROUNDS; round++) {
        uint64_t c[5];
        for (int x = 0; x < 5; x++) {
            c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        }
        for (int x = 0; x < 5; x++) {
            uint64_t d = c[(x + 4) % 5] ^ eth_keccak__rotl(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5) {
                a[y + x] ^= d;
            }
        }
        uint64_t cur = a[1];
        for (int i = 0; i < 24; i++) {
            unsigned j = eth_keccak__pi[i];
            uint64_t tmp = a[j];
            a[j] = eth_keccak__rotl(cur, eth_keccak__rho[i]);
            cur = tmp;
        }
        for (int y = 0; y < 25; y += 5) {
            uint64_t row[5];
            memcpy(row, &a[y], sizeof(row));
            for (int x = 0; x < 5; x++) {
                a[y + x] = row[x] ^ (~row[(x + 1) % 5] & row[(x + 2) % 5]);
            }
        }
        a[0] ^= eth_keccak__rc[round];
    }
}

static void eth_keccak__absorb_block(struct eth_keccak *k, const uint8_t *block)
{
    for (size_t i = 0; i < ETH_KECCAK256_RATE_BYTES / 8; i++) {
        uint64_t lane = 0;
        for (size_t b = 0; b < 8; b++) {
            lane |= (uint64_t)block[i * 8 + b] << (8 * b);
        }
        k->state[i] ^= lane;
    }
    eth_keccak__permute(k->state);
}

void eth_keccak_init(struct eth_keccak *k)
{
    LMQ_ASSERT(k != NULL);
    memset(k, 0, sizeof(*k));
}

void eth_keccak_update(struct eth_keccak *k, const uint8_t *data, size_t len)
{
    LMQ_ASSERT(k != NULL && k->block_len < ETH_KECCAK256_RATE_BYTES);
    LMQ_ASSERT(data != NULL || len == 0);
    while (len > 0) {
        size_t take = LMQ_MIN(len, ETH_KECCAK256_RATE_BYTES - k->block_len);
        memcpy(k->block + k->block_len, data, take);
        k->block_len += take;
        data += take;
        len -= take;
        if (k->block_len == ETH_KECCAK256_RATE_BYTES) {
            eth_keccak__absorb_block(k, k->block);
            k->block_len = 0;
        }
    }
}

void eth_keccak_final(struct eth_keccak *k, uint8_t out[ETH_KECCAK256_BYTES])
{
    LMQ_ASSERT(k != NULL && out != NULL);
    LMQ_ASSERT(k->block_len < ETH_KECCAK256_RATE_BYTES);
    memset(k->block + k->block_len, 0, ETH_KECCAK256_RATE_BYTES - k->block_len);
    k->block[k->block_len] ^= 0x01; /* Keccak's domain byte; SHA3-256 would put 0x06 here */
    k->block[ETH_KECCAK256_RATE_BYTES - 1] ^= 0x80;
    eth_keccak__absorb_block(k, k->block);
    for (size_t i = 0; i < ETH_KECCAK256_BYTES; i++) {
        out[i] = (uint8_t)(k->state[i / 8] >> (8 * (i % 8)));
    }
    memset(k, 0, sizeof(*k));
}

void eth_keccak256(const uint8_t *data, size_t len, uint8_t out[ETH_KECCAK256_BYTES])
{
    struct eth_keccak k;
    eth_keccak_init(&k);
    eth_keccak_update(&k, data, len);
    eth_keccak_final(&k, out);
}
