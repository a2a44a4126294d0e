/*
 * Sealing: the ledger's signed checkpoints anchored in an Ethereum chain (docs/PROTOCOL.md
 * "Sealing", docs/ARCHITECTURE.md "Sealing"). A seal is an EIP-1559 transaction from the
 * sealing address to itself whose calldata is the checkpoint (seal_calldata). Each seal's row
 * and transaction are committed before they are broadcast; nonces come from the store; one seal
 * is in flight at a time; a timer tracks receipts, bumps fees, detects reorgs and confirms.
 *
 * The broker owns it through one pointer (struct broker's seal) and calls what this header
 * declares; it does nothing unless [seal] rpc is set.
 */
#ifndef SEAL_H
#define SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

struct broker;
struct lmq_buf;
struct http_request;
struct http_response;

/* The calldata's magic, then 8 bytes of tree size, 32 of root, then the origin line. */
#define SEAL_MAGIC "LMQSEAL1"
#define SEAL_MAGIC_BYTES 8
#define SEAL_CALLDATA_FIXED_BYTES (SEAL_MAGIC_BYTES + 8 + 32)

/* Writes the seal calldata of (size, root, origin) into out[0..cap): *len bytes. 0 or
 * LMQ_ETOOBIG. */
int seal_calldata(uint64_t size, const uint8_t root[32], const char *origin, uint8_t *out,
                  size_t cap, size_t *len) LMQ_WUR;
/* Decodes seal calldata: size, root and the origin (origin[0..*origin_len), pointing into
 * data). 0 or LMQ_EPROTO (not a seal). */
int seal_calldata_parse(const uint8_t *data, size_t len, uint64_t *size, uint8_t root[32],
                        const uint8_t **origin, size_t *origin_len) LMQ_WUR;

/* At start, after jobs_init: loads the sealing key, registers the seal job and its commit hook
 * when [seal] rpc is set. 0, LMQ_EINVAL (key file; printed) or LMQ_ENOMEM. */
int seal_init(struct broker *b) LMQ_WUR;
/* After recovery: reads the stored seals and starts talking to the node. 0 or LMQ_EIO. */
int seal_start(struct broker *b) LMQ_WUR;
/* Shutdown: stops the timer and the RPC client. Safe when not started. */
void seal_stop(struct broker *b);
/* Frees it; safe when init failed or never ran. */
void seal_destroy(struct broker *b);
/* The /metrics lines (nothing when sealing is off). */
int seal_metrics(struct broker *b, struct lmq_buf *out) LMQ_WUR;
/* GET /ledger/seals and /ledger/seals/cover (public). 0 or an error (the route's contract). */
int seal_http_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                    struct lmq_buf *out) LMQ_WUR;

#endif
