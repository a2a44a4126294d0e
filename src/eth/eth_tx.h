/*
 * Ethereum transactions: EIP-1559 (type 2) and legacy with EIP-155 replay protection. Signing
 * gives the raw bytes (what eth_sendRawTransaction takes) and the transaction hash (keccak256 of
 * them); decoding a raw transaction gives back its fields, signature and sender.
 *
 * Access lists (EIP-2930) are always empty: signing writes an empty list and decoding refuses a
 * non-empty one (LMQ_EPROTO). Type 1 (EIP-2930) and blob transactions are not supported.
 */
#ifndef ETH_TX_H
#define ETH_TX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "eth/eth_hex.h"
#include "eth/eth_key.h"

/* Largest calldata accepted (geth's transaction pool refuses transactions over 128 KiB). */
#define ETH_TX_DATA_MAX_BYTES (128u * 1024u)
/* Largest raw transaction produced or decoded: the data plus room for every other field. */
#define ETH_TX_RAW_MAX_BYTES (ETH_TX_DATA_MAX_BYTES + 1024u)

enum eth_tx_type {
    ETH_TX_LEGACY = 0,  /* EIP-155 (chain_id >= 1) or, decoded only, pre-155 (chain_id 0) */
    ETH_TX_EIP1559 = 2, /* EIP-2718 type 2 */
};

struct eth_tx {
    enum eth_tx_type type;
    uint64_t chain_id;
    uint64_t nonce;
    struct eth_u256 gas_price;                /* legacy only */
    struct eth_u256 max_priority_fee_per_gas; /* EIP-1559 only */
    struct eth_u256 max_fee_per_gas;          /* EIP-1559 only */
    uint64_t gas_limit;
    bool has_to; /* false: contract creation */
    uint8_t to[ETH_ADDRESS_BYTES];
    struct eth_u256 value;
    const uint8_t *data; /* calldata, borrowed (NULL when data_len is 0) */
    size_t data_len;
};

/* The signature as the transaction carries it: v is y_parity for type 2, and
 * chain_id * 2 + 35 + y_parity (27 + y_parity before EIP-155) for legacy. */
struct eth_tx_sig {
    struct eth_sig sig;
    uint64_t v;
};

/* The hash a transaction's signature signs. Returns 0, LMQ_EINVAL (chain_id 0 for type 2, a
 * priority fee above max_fee_per_gas, data over ETH_TX_DATA_MAX_BYTES) or LMQ_ENOMEM. */
int eth_tx_signing_hash(const struct eth_tx *tx, uint8_t hash[32]) LMQ_WUR;
/* Signs tx with priv: appends the raw transaction to raw (bounded by ETH_TX_RAW_MAX_BYTES) and
 * writes its hash. Legacy transactions are signed with EIP-155 and need chain_id >= 1. Returns 0,
 * LMQ_EINVAL (bad key or fields) or LMQ_ENOMEM; raw is unchanged on failure. */
int eth_tx_sign(const struct eth_tx *tx, const uint8_t priv[ETH_PRIVKEY_BYTES], struct lmq_buf *raw,
                uint8_t hash[32]) LMQ_WUR;
/* Decodes a raw transaction: its fields (tx->data points into raw), signature, sender and hash
 * (any of sig, sender, hash may be NULL). Strict: canonical RLP, no extra fields, integers
 * without leading zeros, low s, a v that matches the type and chain. Returns 0 or LMQ_EPROTO
 * (err, when not NULL, says why). */
int eth_tx_decode(const uint8_t *raw, size_t raw_len, struct eth_tx *tx, struct eth_tx_sig *sig,
                  uint8_t sender[ETH_ADDRESS_BYTES], uint8_t hash[32], char *err,
                  size_t err_len) LMQ_WUR;

#endif
