/*
 * Hex as Ethereum writes it ("0x" then lowercase digits) and 256-bit unsigned numbers as
 * big-endian bytes (values, fees and ABI words are 256-bit; uint64 would truncate them).
 */
#ifndef ETH_HEX_H
#define ETH_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

#define ETH_U256_BYTES 32
/* Longest decimal text of a 256-bit number (78 digits), a sign and the NUL. */
#define ETH_U256_DEC_MAX_BYTES 80

/* A 256-bit unsigned number, big-endian. A zeroed struct is 0. */
struct eth_u256 {
    uint8_t be[ETH_U256_BYTES];
};

/* Writes "0x" and 2*len lowercase hex digits and a NUL into out (out_cap >= 2*len + 3).
 * Returns 0 or LMQ_ETOOBIG (out is then ""). */
int eth_hex_encode(const uint8_t *data, size_t len, char *out, size_t out_cap) LMQ_WUR;
/* Reads text[0..text_len) (optional "0x"/"0X", an even number of hex digits in either case)
 * into out; *out_len gets the byte count. Returns 0, LMQ_EPROTO (not hex, odd length) or
 * LMQ_ETOOBIG (more than out_cap bytes). */
int eth_hex_decode(const char *text, size_t text_len, uint8_t *out, size_t out_cap,
                   size_t *out_len) LMQ_WUR;
/* eth_hex_decode that must produce exactly len bytes (else LMQ_EPROTO). */
int eth_hex_decode_exact(const char *text, uint8_t *out, size_t len) LMQ_WUR;

/* v = n. */
void eth_u256_from_u64(struct eth_u256 *v, uint64_t n);
/* Whether v fits in 64 bits; *n gets it then. */
bool eth_u256_to_u64(const struct eth_u256 *v, uint64_t *n);
/* Whether v is 0. */
bool eth_u256_is_zero(const struct eth_u256 *v);
/* Parses decimal digits, or "0x" and 1..64 hex digits (leading zeros allowed). Returns 0 or
 * LMQ_EPROTO (empty, other characters, or 2^256 or more). */
int eth_u256_parse(const char *text, size_t text_len, struct eth_u256 *v) LMQ_WUR;
/* Decimal text of v (no leading zeros; "0") into out (ETH_U256_DEC_MAX_BYTES). */
void eth_u256_to_dec(const struct eth_u256 *v, char out[ETH_U256_DEC_MAX_BYTES]);
/* v = 2^256 - v (two's complement negation, for intN). */
void eth_u256_negate(struct eth_u256 *v);
/* Number of significant bytes of v (0 for 0): its minimal big-endian length, as RLP wants. */
size_t eth_u256_len(const struct eth_u256 *v);

#endif
