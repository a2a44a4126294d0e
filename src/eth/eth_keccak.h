/*
 * Keccak-256 as Ethereum uses it: the original Keccak submission's padding (domain byte 0x01),
 * not FIPS 202 SHA3-256's (0x06). OpenSSL 3 exposes Keccak-256 only through a provider-specific
 * name ("KECCAK-256", 3.2 and later), so it is written here by hand: the Keccak-f[1600]
 * permutation with rate 136 bytes.
 */
#ifndef ETH_KECCAK_H
#define ETH_KECCAK_H

#include <stddef.h>
#include <stdint.h>

#define ETH_KECCAK256_BYTES 32
#define ETH_KECCAK256_RATE_BYTES 136

/* An incremental hash: init, update any number of times, final once. */
struct eth_keccak {
    uint64_t state[25];
    uint8_t block[ETH_KECCAK256_RATE_BYTES];
    size_t block_len;
};

/* Starts a new hash (never fails). */
void eth_keccak_init(struct eth_keccak *k);
/* Absorbs len bytes (data may be NULL when len is 0). */
void eth_keccak_update(struct eth_keccak *k, const uint8_t *data, size_t len);
/* Pads, squeezes the 32-byte digest into out and wipes the state. */
void eth_keccak_final(struct eth_keccak *k, uint8_t out[ETH_KECCAK256_BYTES]);
/* One-shot Keccak-256 of data[0..len). */
void eth_keccak256(const uint8_t *data, size_t len, uint8_t out[ETH_KECCAK256_BYTES]);

#endif
