/*
 * Merkle proofs in JSON, as the ledger's HTTP API, receipts and `ledgermq verify` carry them:
 * an array of the hashes in standard padded base64, leaf level first.
 */
#ifndef LMQ_LEDGER_PROOF_JSON_H
#define LMQ_LEDGER_PROOF_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"
#include "ledger/merkle.h"

/* Appends ["<b64>",...] and a NUL at out + *used (cap bytes in all); *used excludes the NUL.
 * Returns 0 or LMQ_ETOOBIG (out then holds a truncated array: the caller discards it). */
int ledger_proof_json_encode(const uint8_t (*hashes)[LEDGER_MERKLE_HASH_BYTES], size_t count,
                             char *out, size_t cap, size_t *used) LMQ_WUR;
/* Decodes such an array into out[0..*count). Returns 0, or LMQ_EPROTO when arr is not an array
 * of at most LEDGER_MERKLE_PROOF_MAX strings each the strict base64 of 32 bytes. */
int ledger_proof_json_decode(const json_t *arr, uint8_t (*out)[LEDGER_MERKLE_HASH_BYTES],
                             size_t *count) LMQ_WUR;

#endif
