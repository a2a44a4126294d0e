/*
 * secp256k1 keys, addresses and recoverable signatures, through Debian's libsecp256k1 (the
 * curve arithmetic, RFC 6979 nonces and low-s normalisation are its, not ours).
 */
#ifndef ETH_KEY_H
#define ETH_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

#define ETH_PRIVKEY_BYTES 32
#define ETH_PUBKEY_BYTES 64 /* uncompressed x || y, without the 0x04 prefix */
#define ETH_ADDRESS_BYTES 20
/* "0x" + 40 hex digits + NUL */
#define ETH_ADDRESS_TEXT_BYTES 43

/* A recoverable signature: r, s (low-s: s <= n/2) and the recovery id (y parity, 0 or 1). */
struct eth_sig {
    uint8_t r[32];
    uint8_t s[32];
    uint8_t recid;
};

/* Makes a new private key from OpenSSL's RAND_bytes. Returns 0 or LMQ_EIO (no randomness). */
int eth_key_generate(uint8_t priv[ETH_PRIVKEY_BYTES]) LMQ_WUR;
/* Whether priv is a valid private key (1 <= priv < n). */
bool eth_key_valid(const uint8_t priv[ETH_PRIVKEY_BYTES]);
/* The uncompressed public key and the address of priv. Returns 0 or LMQ_EINVAL (invalid key). */
int eth_key_public(const uint8_t priv[ETH_PRIVKEY_BYTES], uint8_t pub[ETH_PUBKEY_BYTES]) LMQ_WUR;
int eth_key_address(const uint8_t priv[ETH_PRIVKEY_BYTES], uint8_t addr[ETH_ADDRESS_BYTES]) LMQ_WUR;
/* The address of a public key: the last 20 bytes of keccak256(x || y). */
void eth_key_pub_address(const uint8_t pub[ETH_PUBKEY_BYTES], uint8_t addr[ETH_ADDRESS_BYTES]);
/* The EIP-55 mixed-case checksum text of addr ("0x..."). */
void eth_key_address_text(const uint8_t addr[ETH_ADDRESS_BYTES], char out[ETH_ADDRESS_TEXT_BYTES]);
/* Parses an address: "0x" + 40 hex digits. All-lowercase or all-uppercase digits are taken as
 * they are; mixed case must be the EIP-55 checksum. Returns 0 or LMQ_EPROTO. */
int eth_key_address_parse(const char *text, size_t text_len,
                          uint8_t addr[ETH_ADDRESS_BYTES]) LMQ_WUR;

/* Signs a 32-byte hash (RFC 6979 deterministic nonce, low-s). Returns 0 or LMQ_EINVAL. */
int eth_key_sign(const uint8_t priv[ETH_PRIVKEY_BYTES], const uint8_t hash[32],
                 struct eth_sig *sig) LMQ_WUR;
/* The address that signed hash. Refuses (LMQ_EPROTO) a recid other than 0/1, r or s out of
 * range, a high s (not what eth_key_sign makes; EIP-2 forbids it in transactions) or a
 * signature no key could have made. */
int eth_key_recover(const uint8_t hash[32], const struct eth_sig *sig,
                    uint8_t addr[ETH_ADDRESS_BYTES]) LMQ_WUR;

#endif
