/*
 * The chain follower's state, shared by chain_follow.c (polling, headers, reorgs, states) and
 * chain_notify.c (watches, notifications, confirmations, retractions). Not part of chain.h.
 */
#ifndef LMQ_CHAIN_INTERNAL_H
#define LMQ_CHAIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "broker/broker_internal.h"
#include "chain/chain.h"
#include "chain/chain_watch.h"
#include "eth/eth_rpc.h"

/* Watches at most: per identity, and in all (each a row in memory and in chain_watches). */
#define CHAIN_WATCHES_PER_IDENTITY_MAX 64
#define CHAIN_WATCHES_MAX 4096
/* Notifications (log, confirmed, retracted) one step sends at most: a step's block range ends
 * early at a block boundary past it (a single block is always processed whole). */
#define CHAIN_NOTIFY_STEP_MAX 4096
/* Failed polls in a row before the state is node_down; polls remembered for degraded. */
#define CHAIN_DOWN_AFTER_FAILURES 3
#define CHAIN_DEGRADED_WINDOW_POLLS 10
/* The longest wait between polls while the node is down (the backoff doubles up to it). */
#define CHAIN_BACKOFF_MAX_MS 30000
/* Between two looks at whether the follower's last writes are durable. The commit hook starts
 * the next step as soon as they are (chain_on_durable); this look is the fallback. */
#define CHAIN_DURABLE_WAIT_MS 5
/* The highest block number the follower takes from a node: the store keeps block numbers as
 * SQLite integers, and the catch-up's arithmetic (head - start + 1) stays far from wrapping. */
#define CHAIN_BLOCK_NUMBER_MAX ((uint64_t)INT64_MAX)
/* Headers checked for the one-chain invariant at start. */
#define CHAIN_CHECK_AT_START_MAX 10000

enum chain_state {
    CHAIN_STARTING = 0,
    CHAIN_SYNCING,
    CHAIN_FOLLOWING,
    CHAIN_DEGRADED,
    CHAIN_NODE_DOWN,
    CHAIN_HALTED,
    CHAIN_STATE_COUNT,
};

/* Headers of one step (fetched in one batch). */
struct chain_step {
    struct eth_block_header *headers;
    bool *got; /* per header: answered */
    size_t count, answered;
    bool failed;
    uint64_t first; /* number of headers[0] */
    /* The step's logs (copied out of the answers), sorted by (block, log index). */
    struct chain_log *logs;
    size_t log_count, log_cap;
    size_t log_calls, log_answers;
};

struct chain_log {
    struct eth_log log; /* data points into data below */
    uint8_t *data;
};

struct chain {
    struct broker *broker;
    struct eth_rpc *rpc;
    uv_timer_t timer;
    bool timer_open, stopped, busy;
    bool moved;         /* this step stored blocks or rolled back */
    bool check_pending; /* a rollback happened: check the stored chain before the next poll */
    enum chain_state state;
    uint64_t chain_id;
    bool have_chain_id;
    /* The stored tip (what is durable or in the open batch). */
    bool have_tip;
    uint64_t tip;
    uint8_t tip_hash[32];
    uint64_t tip_time;
    uint64_t first; /* the lowest stored header */
    uint64_t head;  /* the node's head at the last poll */
    /* Blocks per catch-up step: batch_blocks, halved after an eth_getLogs that failed (too many
     * logs for one answer, say), doubled back after each step that worked. */
    uint32_t range_blocks;
    bool have_head;
    uint64_t written_seq;  /* the commit batch of the follower's last writes */
    bool durable_wait;     /* the next step waits for written_seq to be durable */
    size_t commit_slot;    /* the follower's commit hook (chain_on_durable) */
    uint64_t confirm_from; /* notices below this block are confirmed (or retracted) */
    /* Health: polls that failed in a row; the last polls as bits (1 = failed). */
    uint32_t failures_in_row;
    uint32_t recent_failures; /* bit i: the poll i polls ago failed */
    uint32_t backoff_ms;
    uint64_t poll_started_ms;
    uint64_t rpc_calls, rpc_errors, reorgs, notices_sent[3];
    double latency_s_last; /* the last eth_blockNumber round trip */
    struct chain_step step;
    struct chain_watch *watches;
    size_t watch_count;
    struct lmq_buf scratch; /* a notification's envelope, for its link */
};

/* chain_follow.c */
const char *chain_state_name(enum chain_state s);

/* chain_notify.c */
/* Registers the watch hook (before recovery). */
int chain_notify_init(struct chain *c) LMQ_WUR;
/* Loads the stored watches. 0, LMQ_EIO, LMQ_ENOMEM. */
int chain_notify_load(struct chain *c) LMQ_WUR;
/* The addresses watched (unique), into out (cap entries); returns how many. */
size_t chain_notify_addresses(const struct chain *c, uint8_t (*out)[20], size_t cap);
/* Notifies the logs of block h (the step's logs of that block, in log index order) to the
 * watchers, in the open batch. Returns the notifications sent. */
size_t chain_notify_block(struct chain *c, const struct eth_block_header *h,
                          const struct chain_log *logs, size_t log_count);
/* Sends confirmed notices for notified logs of blocks up to tip - confirmations. */
int chain_notify_confirm(struct chain *c) LMQ_WUR;
/* Sends retracted notices for every notified log above block fork (rolled back). */
int chain_notify_retract(struct chain *c, uint64_t fork) LMQ_WUR;

#endif
