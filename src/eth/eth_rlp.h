/*
 * RLP (Ethereum Yellow Paper, appendix B): encoding into a bounded buffer, and a strict decoder
 * that refuses every non-canonical form (a single byte below 0x80 wrapped in a string header, a
 * long form for a length under 56, length-of-length with leading zeros, lengths past the input,
 * bytes after the item) so one value has exactly one accepted encoding.
 */
#ifndef ETH_RLP_H
#define ETH_RLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "eth/eth_hex.h"

/* Deepest list nesting the decoder accepts (transactions need 3); deeper input is refused. */
#define ETH_RLP_DEPTH_MAX 32

/* One decoded item: a string's bytes or a list's payload (its encoded items), inside the
 * input (borrowed, not copied). */
struct eth_rlp_item {
    bool is_list;
    const uint8_t *data;
    size_t len;
};

/* Walks a list's items in order. */
struct eth_rlp_iter {
    const uint8_t *p;
    size_t left;
};

/* Appends the encoding of the string data[0..len). Returns 0 or lmq_buf_append's errors
 * (LMQ_ELIMIT past max_bytes, LMQ_ENOMEM); b is unchanged on failure. */
int eth_rlp_put_bytes(struct lmq_buf *b, const uint8_t *data, size_t len, size_t max_bytes) LMQ_WUR;
/* Appends an unsigned integer: its minimal big-endian bytes as a string (0 is the empty one). */
int eth_rlp_put_u64(struct lmq_buf *b, uint64_t n, size_t max_bytes) LMQ_WUR;
int eth_rlp_put_u256(struct lmq_buf *b, const struct eth_u256 *v, size_t max_bytes) LMQ_WUR;
/* A list is its items appended between list_begin (which returns a mark) and list_end (which
 * puts the list header in front of them). On failure b is back to the mark. */
size_t eth_rlp_list_begin(const struct lmq_buf *b);
int eth_rlp_list_end(struct lmq_buf *b, size_t mark, size_t max_bytes) LMQ_WUR;

/* Decodes data[0..len) as exactly one item and checks the whole tree under it (canonical,
 * in bounds, at most ETH_RLP_DEPTH_MAX deep). Returns 0 or LMQ_EPROTO. */
int eth_rlp_decode(const uint8_t *data, size_t len, struct eth_rlp_item *item) LMQ_WUR;
/* Starts walking list (which must be a list). */
void eth_rlp_iter_init(struct eth_rlp_iter *it, const struct eth_rlp_item *list);
/* The next item: 0, LMQ_ENOTFOUND at the end, LMQ_EPROTO on a malformed header. */
int eth_rlp_iter_next(struct eth_rlp_iter *it, struct eth_rlp_item *item) LMQ_WUR;
/* An item as an unsigned integer: a string of at most 8 (32) bytes without leading zeros.
 * Returns 0 or LMQ_EPROTO. */
int eth_rlp_get_u64(const struct eth_rlp_item *item, uint64_t *n) LMQ_WUR;
int eth_rlp_get_u256(const struct eth_rlp_item *item, struct eth_u256 *v) LMQ_WUR;

#endif
