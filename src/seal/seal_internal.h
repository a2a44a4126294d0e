/*
 * What the sealer's files share (seal.c: lifecycle, tracking; seal_send.c: fees, signing,
 * write-before-send; seal_http.c: GET /ledger/seals). Not part of seal.h.
 */
#ifndef SEAL_INTERNAL_H
#define SEAL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "broker/broker_internal.h"
#include "eth/eth_key.h"
#include "eth/eth_rpc.h"
#include "seal/seal.h"

/* Seals not yet confirmed that are tracked at once (one in flight, the others mined). A new
 * seal waits while this many are unconfirmed. */
#define SEAL_TRACK_MAX 16
/* Transactions signed for one nonce at most (the first and its fee bumps). */
#define SEAL_ATTEMPTS_MAX 16
/* The tracking timer's period (LMQ_TEST_SEAL_TICK_MS overrides it for the tests). */
#define SEAL_TICK_MS 2000
/* Stored seals read per page at start, and pages at most (the scan is bounded). */
#define SEAL_SCAN_PAGE 500
#define SEAL_SCAN_PAGES_MAX 100000
/* The priority fee when the node has no eth_maxPriorityFeePerGas: 1 gwei. */
#define SEAL_PRIORITY_FALLBACK_WEI 1000000000ULL
#define SEAL_WEI_PER_GWEI 1000000000ULL
/* Ticks in a row that must see the nonce used while none of ours is mined to call it dropped. */
#define SEAL_DROP_STRIKES 2
/* The highest transaction count taken from a node: nonces are stored as SQLite integers (a
 * count past it would wrap the next nonce onto stored seals). */
#define SEAL_NONCE_MAX ((uint64_t)INT64_MAX)
/* Calls of one tracking exchange at most: head, count, and every attempt of every seal. */
#define SEAL_CALLS_MAX (2 + SEAL_TRACK_MAX * SEAL_ATTEMPTS_MAX)

enum seal_state { SEAL_SENT = 0, SEAL_MINED, SEAL_CONFIRMED, SEAL_DROPPED };
#define SEAL_STATE_COUNT 4
const char *seal_state_name(enum seal_state st);
/* The state of a stored name; false when unknown. */
bool seal_state_parse(const uint8_t *name, size_t len, enum seal_state *st);

/* One tracked (not confirmed, not dropped) seal: an owned copy of its row and transactions. */
struct seal_row {
    uint64_t nonce, tree_size, chain_id;
    uint8_t root[32];
    char *checkpoint;
    size_t checkpoint_len;
    uint32_t attempts;
    uint8_t hashes[SEAL_ATTEMPTS_MAX][32];
    uint8_t *raws[SEAL_ATTEMPTS_MAX];
    size_t raw_lens[SEAL_ATTEMPTS_MAX];
    uint32_t current; /* the attempt the row names (the latest sent, or the one mined) */
    enum seal_state state;
    uint64_t block_number;
    uint8_t block_hash[32];
    int64_t sent_unix_ms;
    uint32_t drop_strikes;
    bool bump_capped; /* said once: the fee cap leaves no room for a replacement */
    bool resend;      /* the last broadcast failed: tried again on the next tick */
    /* What the current tracking exchange found. */
    bool found, found_ok;
    uint32_t found_attempt;
    uint64_t found_block;
    uint8_t found_hash[32];
};

enum seal_phase { SEAL_PHASE_CHECK = 0, SEAL_PHASE_READY, SEAL_PHASE_HALTED };
enum seal_op {
    SEAL_OP_NONE = 0,
    SEAL_OP_CHECK,
    SEAL_OP_TRACK,
    SEAL_OP_FEES,
    SEAL_OP_DURABLE,
    SEAL_OP_SEND
};

/* One call's context in an exchange: which seal and attempt a receipt is for. */
struct seal_call {
    struct seal *s;
    uint16_t row, attempt;
};

struct seal {
    struct broker *b;
    struct eth_rpc *rpc;
    uint8_t priv[ETH_PRIVKEY_BYTES];
    uint8_t addr[ETH_ADDRESS_BYTES];
    char addr_text[ETH_ADDRESS_TEXT_BYTES];
    uv_timer_t timer;
    bool timer_init, started, stopping;
    uint32_t tick_ms;
    size_t commit_slot;
    enum seal_phase phase;
    enum seal_op op;
    uint32_t calls_pending;
    struct seal_call calls[SEAL_CALLS_MAX];
    /* An exchange's answers. */
    bool ans_failed, ans_prio_ok;
    char ans_err[ETH_RPC_MESSAGE_MAX_CHARS];
    uint64_t ans_chain_id, ans_count, ans_head, ans_prio, ans_base;
    bool node_failing; /* said once per outage */
    /* The tracked seals, by nonce. */
    struct seal_row *rows[SEAL_TRACK_MAX];
    size_t row_count;
    uint64_t next_nonce;
    uint64_t last_sealed_size;
    uint64_t head; /* the node's head at the last tracking pass; 0 before */
    bool want;     /* the seal job asked for a seal */
    bool bumping;  /* the fee exchange is for a bump of the newest row */
    uint64_t pending_seq;
    struct seal_row *pending_row; /* its latest attempt waits for its commit, then is sent */
    /* Metrics. */
    uint64_t counts[SEAL_STATE_COUNT];
    uint64_t errors_total;
};

/* seal.c */
/* Sends batch when rc (how queueing its calls went) is LMQ_OK, else discards it; on any failure
 * the exchange op ends with a seal_error (no callback of the batch's calls will come). */
void seal_batch_send(struct seal *s, struct eth_rpc_batch *batch, int rc, enum seal_op op);
/* Logs seal_error with why, counts it. */
void seal_error(struct seal *s, const char *what, const char *why);
/* The node answered: says so once after an outage. */
void seal_node_ok(struct seal *s);
/* The node did not answer (s->ans_err says how): seal_error once per outage. */
void seal_node_failed(struct seal *s);
/* Writes the row's seal record into the open batch. */
void seal_write_row(struct seal *s, const struct seal_row *r);
/* Frees a row. */
void seal_row_free(struct seal_row *r);
/* Broadcasts the row's current attempt (fire and forget; tracking looks the hash up). */
void seal_rebroadcast(struct seal *s, struct seal_row *r, const char *why);
/* Whether a new seal is due now. */
bool seal_due(struct seal *s);

/* seal_send.c */
/* Asks the node for fees, then signs a new seal (bump: a replacement of the newest row's). */
void seal_fees_begin(struct seal *s, bool bump);
/* The batch holding the pending attempt is durable: broadcast it. */
void seal_send_durable(struct seal *s);

#endif
