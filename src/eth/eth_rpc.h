/*
 * Ethereum JSON-RPC 2.0 client over HTTP(S) on a libuv loop (net/http_client.h), with jansson.
 * No dependency on the broker: the chain follower, the sealer and the tools use it alike.
 *
 * A call is sent on its own (one POST with one request object) or in a batch (one POST with an
 * array; the answers are matched by id, in any order). Each call has a deadline (timeout_ms,
 * retries included). A POST is retried, with exponential backoff and jitter, on transport
 * errors and on HTTP 5xx and 429, at most attempts_max times and never past the deadline; a
 * JSON-RPC error answer is not retried: it goes to the caller with its code and message. The
 * answer body is bounded (answer_max_bytes): a longer one fails every call of the POST.
 *
 * Every call ends with exactly one callback from the loop (never from the function that
 * queued it), unless eth_rpc_close came first: then none.
 */
#ifndef LMQ_ETH_RPC_H
#define LMQ_ETH_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/lmq.h"

#define ETH_RPC_TIMEOUT_MS_DEFAULT 10000
#define ETH_RPC_ATTEMPTS_DEFAULT 4
#define ETH_RPC_RETRY_BASE_MS_DEFAULT 250
#define ETH_RPC_RETRY_MAX_MS_DEFAULT 5000
#define ETH_RPC_ANSWER_MAX_BYTES_DEFAULT (16u * 1024u * 1024u)
/* Calls in one batch (eth_rpc_* with a full batch return LMQ_ELIMIT). */
#define ETH_RPC_BATCH_MAX 1000
/* POSTs queued or in flight on one client (more: LMQ_ELIMIT). */
#define ETH_RPC_POSTS_MAX 256
/* Logs one eth_getLogs answer may hold (more: ETH_RPC_BAD_ANSWER; ask for a smaller range). */
#define ETH_RPC_LOGS_MAX 10000
/* Addresses and topic positions of an eth_getLogs filter. */
#define ETH_RPC_FILTER_ADDRESSES_MAX 64
#define ETH_RPC_TOPICS_MAX 4
/* Characters of a method name; of an error message kept for the caller. */
#define ETH_RPC_METHOD_MAX_CHARS 64
#define ETH_RPC_MESSAGE_MAX_CHARS 256
/* eth_rpc_block_by_number's "latest" and "pending" (not numbers). */
#define ETH_RPC_BLOCK_LATEST UINT64_MAX
#define ETH_RPC_BLOCK_PENDING (UINT64_MAX - 1)

struct eth_rpc;
struct eth_rpc_batch;

struct eth_rpc_config {
    const char *url;         /* http:// or https://, copied */
    uint32_t timeout_ms;     /* a call's deadline, retries included (0: the default) */
    uint32_t attempts_max;   /* POSTs per call at most, 1 = no retry (0: the default) */
    uint32_t retry_base_ms;  /* the first backoff, doubled per retry (0: the default) */
    uint32_t retry_max_ms;   /* the longest backoff (0: the default) */
    size_t answer_max_bytes; /* the longest answer body (0: the default) */
};

enum eth_rpc_status {
    ETH_RPC_OK = 0,
    ETH_RPC_RPC_ERROR,  /* the node answered a JSON-RPC error: code and message */
    ETH_RPC_NOT_FOUND,  /* the node answered null (no such block, transaction or receipt yet) */
    ETH_RPC_TRANSPORT,  /* no answer after the retries (connect, reset, TLS...) */
    ETH_RPC_HTTP,       /* an HTTP status other than 2xx (after the retries for 5xx and 429) */
    ETH_RPC_TIMEOUT,    /* the deadline passed */
    ETH_RPC_TOO_BIG,    /* the answer body passed answer_max_bytes */
    ETH_RPC_BAD_ANSWER, /* not JSON, not JSON-RPC 2.0, no answer for the id, a bad field */
};

/* A block header (eth_getBlockByNumber without transactions). */
struct eth_block_header {
    uint64_t number;
    uint8_t hash[32];
    uint8_t parent_hash[32];
    uint64_t timestamp; /* unix seconds */
    bool has_base_fee;  /* EIP-1559 blocks */
    uint64_t base_fee_per_gas;
};

struct eth_log {
    uint8_t address[20];
    uint8_t topics[ETH_RPC_TOPICS_MAX][32];
    size_t topic_count;
    const uint8_t *data; /* valid during the callback */
    size_t data_len;
    uint64_t block_number;
    uint8_t block_hash[32];
    uint8_t tx_hash[32];
    uint64_t tx_index;
    uint64_t log_index;
    bool removed;
};

struct eth_receipt {
    uint8_t tx_hash[32];
    uint8_t block_hash[32];
    uint64_t block_number;
    uint8_t from[20];
    bool has_to; /* false for a contract creation */
    uint8_t to[20];
    bool has_contract_address;
    uint8_t contract_address[20];
    bool success; /* status 0x1 */
    uint64_t gas_used;
    uint64_t effective_gas_price;
    size_t log_count;
};

struct eth_tx_info {
    uint8_t hash[32];
    uint8_t from[20];
    bool has_to;
    uint8_t to[20];
    uint64_t nonce;
    bool mined; /* false while pending: no block */
    uint64_t block_number;
    uint8_t block_hash[32];
    const uint8_t *input; /* valid during the callback */
    size_t input_len;
};

/* What a call's callback gets. Everything in it is valid during the callback only. */
struct eth_rpc_answer {
    enum eth_rpc_status status;
    int64_t code;        /* the JSON-RPC error code (ETH_RPC_RPC_ERROR) */
    const char *message; /* one line saying what failed ("" on success) */
    const json_t *value; /* the raw "result" (ETH_RPC_OK, ETH_RPC_NOT_FOUND) */
    /* The typed result, by the helper that queued the call (ETH_RPC_OK only). */
    uint64_t quantity; /* chain id, block number, nonce, gas price, priority fee */
    uint8_t hash[32];  /* eth_sendRawTransaction */
    struct eth_block_header block;
    const struct eth_log *logs;
    size_t log_count;
    struct eth_receipt receipt;
    struct eth_tx_info tx;
};

typedef void (*eth_rpc_done_fn)(void *ctx, const struct eth_rpc_answer *a);

/* A client for cfg->url on loop: 0, LMQ_EINVAL (no http(s) URL), LMQ_ENOMEM. */
int eth_rpc_create(uv_loop_t *loop, const struct eth_rpc_config *cfg, struct eth_rpc **out) LMQ_WUR;
/* Drops every call queued or in flight (no callback is called after this) and closes the
 * handles; the memory is freed when the loop runs the closes. Batches begun and not sent must
 * be sent or discarded before. May be called from a callback. rpc may be NULL. */
void eth_rpc_close(struct eth_rpc *rpc);
/* A static name for a status ("ok", "rpc_error", "timeout", ...). */
const char *eth_rpc_status_name(enum eth_rpc_status s);
/* POSTs sent since creation (retries included). */
uint64_t eth_rpc_posts(const struct eth_rpc *rpc);

/* A batch: the calls queued on it go out in one POST by eth_rpc_batch_send. 0, LMQ_ELIMIT
 * (ETH_RPC_POSTS_MAX), LMQ_ENOMEM. */
int eth_rpc_batch_begin(struct eth_rpc *rpc, struct eth_rpc_batch **out) LMQ_WUR;
/* Sends the batch (an empty one is just freed); the handle is gone after this call. 0, or
 * LMQ_ENOMEM / LMQ_ELIMIT: then nothing was sent and no callback of its calls is called. */
int eth_rpc_batch_send(struct eth_rpc_batch *b) LMQ_WUR;
/* Frees a batch without sending it: no callback of its calls is called. */
void eth_rpc_batch_discard(struct eth_rpc_batch *b);

/*
 * The calls. Each goes into batch when batch is not NULL (sent by eth_rpc_batch_send), else
 * out on its own now. They return 0, LMQ_EINVAL (a bad argument), LMQ_ELIMIT (the batch holds
 * ETH_RPC_BATCH_MAX calls, or ETH_RPC_POSTS_MAX POSTs are queued) or LMQ_ENOMEM; then done is
 * never called.
 */
/* Any method; params (an array, may be NULL for []) is taken over (freed even on error). The
 * answer's value is the raw result. */
int eth_rpc_call(struct eth_rpc *rpc, struct eth_rpc_batch *batch, const char *method,
                 json_t *params, eth_rpc_done_fn done, void *ctx) LMQ_WUR;
/* eth_chainId, eth_blockNumber, eth_gasPrice, eth_maxPriorityFeePerGas: a->quantity. */
int eth_rpc_chain_id(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                     void *ctx) LMQ_WUR;
int eth_rpc_block_number(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                         void *ctx) LMQ_WUR;
int eth_rpc_gas_price(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                      void *ctx) LMQ_WUR;
int eth_rpc_max_priority_fee(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                             void *ctx) LMQ_WUR;
/* eth_getTransactionCount(address, "pending"): a->quantity, the next nonce to use. */
int eth_rpc_transaction_count(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                              const uint8_t address[20], eth_rpc_done_fn done, void *ctx) LMQ_WUR;
/* eth_getBlockByNumber(number or ETH_RPC_BLOCK_LATEST/PENDING, false): a->block;
 * ETH_RPC_NOT_FOUND when the node has no such block. */
int eth_rpc_block_by_number(struct eth_rpc *rpc, struct eth_rpc_batch *batch, uint64_t number,
                            eth_rpc_done_fn done, void *ctx) LMQ_WUR;

struct eth_rpc_log_filter {
    uint64_t from_block, to_block;  /* inclusive */
    const uint8_t (*addresses)[20]; /* address_count of them; none: any address */
    size_t address_count;           /* at most ETH_RPC_FILTER_ADDRESSES_MAX */
    /* Per position (topic_count at most ETH_RPC_TOPICS_MAX): one topic, or any (has = false). */
    uint8_t topics[ETH_RPC_TOPICS_MAX][32];
    bool has_topic[ETH_RPC_TOPICS_MAX];
    size_t topic_count;
};
/* eth_getLogs(filter): a->logs, a->log_count (at most ETH_RPC_LOGS_MAX). */
int eth_rpc_logs(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                 const struct eth_rpc_log_filter *f, eth_rpc_done_fn done, void *ctx) LMQ_WUR;
/* eth_sendRawTransaction(raw): a->hash. */
int eth_rpc_send_raw_transaction(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                                 const uint8_t *raw, size_t raw_len, eth_rpc_done_fn done,
                                 void *ctx) LMQ_WUR;
/* eth_getTransactionReceipt(hash): a->receipt; ETH_RPC_NOT_FOUND while not mined. */
int eth_rpc_transaction_receipt(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                                const uint8_t hash[32], eth_rpc_done_fn done, void *ctx) LMQ_WUR;
/* eth_getTransactionByHash(hash): a->tx; ETH_RPC_NOT_FOUND when the node does not know it. */
int eth_rpc_transaction_by_hash(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                                const uint8_t hash[32], eth_rpc_done_fn done, void *ctx) LMQ_WUR;

/*
 * Value parsers (strict, for what nodes send). A QUANTITY is "0x" and hex digits without
 * leading zeros ("0x0" for zero; "0x", "0x00", "0x01", "1" are refused); DATA is "0x" and an
 * even number of hex digits. They return 0 or LMQ_EPROTO (malformed) / LMQ_ETOOBIG (too large
 * for the out value).
 */
int eth_rpc_parse_quantity(const char *s, size_t len, uint64_t *out) LMQ_WUR;
/* A QUANTITY of up to 256 bits, as 32 bytes big-endian. */
int eth_rpc_parse_quantity256(const char *s, size_t len, uint8_t out[32]) LMQ_WUR;
/* DATA into out[0..cap): *out_len bytes. */
int eth_rpc_parse_data(const char *s, size_t len, uint8_t *out, size_t cap,
                       size_t *out_len) LMQ_WUR;
/* DATA of exactly n bytes (32 for a hash, 20 for an address). */
int eth_rpc_parse_fixed(const char *s, size_t len, uint8_t *out, size_t n) LMQ_WUR;
/* Writes a QUANTITY ("0x..." NUL-terminated) of v into out (at least 19 chars). */
void eth_rpc_format_quantity(uint64_t v, char out[19]);

#endif
