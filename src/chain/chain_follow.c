/*
 * The chain follower's loop (docs/PROTOCOL.md "Chain follower"): one step at a time, each
 * started by a timer once the previous step's writes are durable, so every store read sees
 * what the follower wrote. A step: eth_blockNumber; then either the next headers (tip+1 ..,
 * batch_blocks in one JSON-RPC batch) and the logs of the watched contracts in that range, or,
 * when the node's block at our height differs, the node's headers down to max_reorg_depth to
 * find the fork point. Blocks are written with their notifications in one commit batch (header
 * rows and notice rows beside the envelopes), so after a crash a block is processed whole or not
 * at all.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chain/chain_internal.h"
#include "eth/eth_hex.h"
#include "net/http.h"

static const char *const chain_state_names[CHAIN_STATE_COUNT] = {
    "starting", "syncing", "following", "degraded", "node_down", "halted"};

const char *chain_state_name(enum chain_state s)
{
    LMQ_ASSERT(s < CHAIN_STATE_COUNT);
    return chain_state_names[s];
}

static void chain_schedule(struct chain *c, uint64_t delay_ms);

static void chain_set_state(struct chain *c, enum chain_state to)
{
    LMQ_ASSERT(to < CHAIN_STATE_COUNT);
    if (c->state == to)
        return;
    struct lmq_log_line line;
    enum lmq_log_level level = to == CHAIN_NODE_DOWN || to == CHAIN_HALTED ? LMQ_LOG_ERROR
                               : to == CHAIN_DEGRADED                      ? LMQ_LOG_WARN
                                                                           : LMQ_LOG_INFO;
    if (lmq_log_begin(&line, level, "chain_state")) {
        lmq_log_str(&line, "from", chain_state_name(c->state));
        lmq_log_str(&line, "to", chain_state_name(to));
        lmq_log_uint(&line, "head", c->head);
        lmq_log_uint(&line, "tip", c->tip);
        lmq_log_uint(&line, "failures", c->failures_in_row);
        lmq_log_end(&line);
    }
    c->state = to;
}

/* The state after a poll that answered (the node's head is c->head). */
static void chain_state_after_success(struct chain *c)
{
    LMQ_ASSERT(c->failures_in_row == 0);
    if (c->state == CHAIN_HALTED)
        return;
    uint32_t window = (1u << CHAIN_DEGRADED_WINDOW_POLLS) - 1u;
    bool slow = c->latency_s_last * 1000.0 > (double)c->broker->cfg.chain.timeout_ms / 2.0;
    uint64_t lag = c->have_tip && c->head > c->tip ? c->head - c->tip : 0;
    if ((c->recent_failures & window) != 0 || slow)
        chain_set_state(c, CHAIN_DEGRADED);
    else if (!c->have_tip || lag > c->broker->cfg.chain.degraded_lag_blocks)
        chain_set_state(c, CHAIN_SYNCING);
    else
        chain_set_state(c, CHAIN_FOLLOWING);
}

/* The eth_blockNumber round trip that starts every poll (the node's responsiveness; a
 * catch-up step's batches take longer by design). */
static void chain_latency(struct chain *c)
{
    double latency_s = (double)(clock_now_ms(c->broker) - c->poll_started_ms) / 1000.0;
    LMQ_ASSERT(latency_s >= 0.0);
    c->latency_s_last = latency_s;
}

static void chain_poll_done(struct chain *c, bool ok)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(c->busy || c->stopped);
    c->recent_failures = (c->recent_failures << 1) | (ok ? 0u : 1u);
    c->busy = false;
    if (ok) {
        c->failures_in_row = 0;
        c->backoff_ms = 0;
        chain_state_after_success(c);
        /* Behind the node and this step moved: the next step at once (once this one's writes
         * are durable). A step that moved nothing (the node's head answered, its blocks not yet)
         * waits poll_ms, so a lagging node is never asked in a tight loop. */
        bool behind = c->state != CHAIN_HALTED && c->have_head && c->moved &&
                      (!c->have_tip || c->head > c->tip);
        chain_schedule(c, behind ? 0 : b->cfg.chain.poll_ms);
        return;
    }
    c->rpc_errors++;
    c->failures_in_row++;
    if (c->state == CHAIN_HALTED) {
        chain_schedule(c, b->cfg.chain.poll_ms);
        return;
    }
    if (c->failures_in_row >= CHAIN_DOWN_AFTER_FAILURES) {
        if (c->state != CHAIN_NODE_DOWN)
            lmq_log_msgf(LMQ_LOG_ERROR, "chain_node_down",
                         "no answer from the node for %" PRIu32 " polls; retrying with backoff",
                         c->failures_in_row);
        chain_set_state(c, CHAIN_NODE_DOWN);
        uint32_t base = b->cfg.chain.poll_ms;
        c->backoff_ms =
            c->backoff_ms == 0 ? base : LMQ_MIN(c->backoff_ms * 2u, CHAIN_BACKOFF_MAX_MS);
        chain_schedule(c, LMQ_MAX(c->backoff_ms, base));
        return;
    }
    if (c->state != CHAIN_STARTING)
        chain_set_state(c, CHAIN_DEGRADED);
    else if (c->failures_in_row == 1)
        lmq_log_msgf(LMQ_LOG_WARN, "chain_waiting", "waiting for the node at %s", b->cfg.chain.rpc);
    chain_schedule(c, b->cfg.chain.poll_ms);
}

static void chain_step_reset(struct chain *c)
{
    struct chain_step *s = &c->step;
    free(s->headers);
    free(s->got);
    for (size_t i = 0; i < s->log_count; i++)
        free(s->logs[i].data);
    free(s->logs);
    memset(s, 0, sizeof(*s));
}

static void chain_rpc_failed(struct chain *c, const struct eth_rpc_answer *a, const char *what)
{
    LMQ_ASSERT(c != NULL && a != NULL);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_DEBUG, "chain_rpc_failed")) {
        lmq_log_str(&line, "call", what);
        lmq_log_str(&line, "status", eth_rpc_status_name(a->status));
        lmq_log_str(&line, "message", a->message != NULL ? a->message : "");
        lmq_log_end(&line);
    }
}

/* ---- The stored chain ---- */

struct chain_check {
    bool have_prev, broken;
    uint64_t prev_number, count;
    uint8_t prev_hash[32];
};

static int chain_check_row(void *ctx, const struct store_rec_chain_header *h)
{
    struct chain_check *k = ctx;
    if (k->have_prev &&
        (h->number != k->prev_number + 1 || memcmp(h->parent_hash.data, k->prev_hash, 32) != 0))
        k->broken = true;
    k->have_prev = true;
    k->prev_number = h->number;
    memcpy(k->prev_hash, h->hash.data, 32);
    k->count++;
    return 0;
}

/* The invariant: the stored headers from `from` to the tip form one chain. 0 or LMQ_EIO. */
static int chain_check_stored(struct chain *c, uint64_t from)
{
    if (!c->have_tip)
        return LMQ_OK;
    struct chain_check k = {0};
    size_t n = 0;
    int rc = store_chain_headers(c->broker->store, from, c->tip, CHAIN_CHECK_AT_START_MAX + 1,
                                 chain_check_row, &k, &n);
    if (rc != LMQ_OK || k.broken || (k.have_prev && k.prev_number != c->tip)) {
        lmq_log_msgf(LMQ_LOG_ERROR, "chain_invariant_broken",
                     "the stored headers %" PRIu64 "..%" PRIu64 " are not one chain", from, c->tip);
        return LMQ_EIO;
    }
    return LMQ_OK;
}

struct chain_hash_read {
    bool found;
    uint8_t hash[32];
    uint64_t time;
};

static int chain_hash_row(void *ctx, const struct store_rec_chain_header *h)
{
    struct chain_hash_read *r = ctx;
    r->found = true;
    memcpy(r->hash, h->hash.data, 32);
    r->time = h->time;
    return 0;
}

static int chain_stored_hash(struct chain *c, uint64_t number, struct chain_hash_read *r)
{
    size_t n = 0;
    memset(r, 0, sizeof(*r));
    return store_chain_headers(c->broker->store, number, number, 1, chain_hash_row, r, &n);
}

static int chain_first_row(void *ctx, const struct store_rec_chain_header *h)
{
    *(uint64_t *)ctx = h->number;
    return 0;
}

/* Reads the tip (and the first stored header) from the store. */
static int chain_load_tip(struct chain *c)
{
    bool found = false;
    int rc = store_chain_tip(c->broker->store, &c->tip, c->tip_hash, &found);
    if (rc != LMQ_OK)
        return LMQ_EIO;
    c->have_tip = found;
    if (!found)
        return LMQ_OK;
    size_t n = 0;
    rc = store_chain_headers(c->broker->store, 0, c->tip, 1, chain_first_row, &c->first, &n);
    struct chain_hash_read r;
    if (rc == LMQ_OK)
        rc = chain_stored_hash(c, c->tip, &r);
    if (rc != LMQ_OK)
        return LMQ_EIO;
    c->tip_time = r.time;
    return LMQ_OK;
}

/* ---- Steps ---- */

static void chain_write_blocks(struct chain *c);
static void chain_fetch_logs(struct chain *c);

static void chain_written(struct chain *c)
{
    struct broker *b = c->broker;
    c->written_seq = commit_batch_seq(b);
}

static void chain_on_header(void *ctx, const struct eth_rpc_answer *a);

/* Fetches headers first..first+count-1 in one batch; each answer goes to on_header (catch-up's
 * chain_on_header or the walk back's chain_on_fork_header), which collects them in the step. */
static void chain_fetch_headers(struct chain *c, uint64_t first, size_t count,
                                eth_rpc_done_fn on_header)
{
    LMQ_ASSERT(count > 0 && count <= ETH_RPC_BATCH_MAX);
    struct chain_step *s = &c->step;
    chain_step_reset(c);
    s->headers = calloc(count, sizeof(*s->headers));
    s->got = calloc(count, sizeof(*s->got));
    struct eth_rpc_batch *batch = NULL;
    if (s->headers == NULL || s->got == NULL || eth_rpc_batch_begin(c->rpc, &batch) != LMQ_OK) {
        chain_poll_done(c, false);
        return;
    }
    s->count = count;
    s->first = first;
    int rc = LMQ_OK;
    for (size_t i = 0; i < count && rc == LMQ_OK; i++)
        rc = eth_rpc_block_by_number(c->rpc, batch, first + i, on_header, c);
    if (rc == LMQ_OK)
        rc = eth_rpc_batch_send(batch);
    else
        eth_rpc_batch_discard(batch);
    c->rpc_calls++;
    if (rc != LMQ_OK)
        chain_poll_done(c, false);
}

static void chain_find_fork(struct chain *c);

/* Every header of the step answered: extend the chain, or walk back when it does not link. */
static void chain_headers_done(struct chain *c)
{
    struct chain_step *s = &c->step;
    LMQ_ASSERT(s->answered == s->count);
    if (s->failed) {
        chain_poll_done(c, false);
        return;
    }
    size_t ok = 0;
    while (ok < s->count && s->got[ok])
        ok++;
    s->count = ok; /* past the node's head (it moved back): next poll */
    if (ok == 0) {
        chain_poll_done(c, true);
        return;
    }
    if (c->have_tip && memcmp(s->headers[0].parent_hash, c->tip_hash, 32) != 0) {
        chain_find_fork(c);
        return;
    }
    for (size_t i = 1; i < s->count; i++) {
        if (memcmp(s->headers[i].parent_hash, s->headers[i - 1].hash, 32) != 0) {
            s->count = i; /* the node changed branch during the batch: the rest next time */
            break;
        }
    }
    chain_fetch_logs(c);
}

static void chain_on_header(void *ctx, const struct eth_rpc_answer *a)
{
    struct chain *c = ctx;
    struct chain_step *s = &c->step;
    LMQ_ASSERT(s->answered < s->count);
    if (a->status == ETH_RPC_OK && a->block.number >= s->first &&
        a->block.number < s->first + s->count) {
        size_t i = (size_t)(a->block.number - s->first);
        s->headers[i] = a->block;
        s->got[i] = true;
    } else if (a->status != ETH_RPC_NOT_FOUND) {
        chain_rpc_failed(c, a, "eth_getBlockByNumber");
        s->failed = true;
    }
    if (++s->answered == s->count)
        chain_headers_done(c);
}

/* ---- Reorgs ---- */

static void chain_on_fork_header(void *ctx, const struct eth_rpc_answer *a);

/* Asks the node for its headers from tip - max_reorg_depth up to our tip (one batch). */
static void chain_find_fork(struct chain *c)
{
    uint64_t depth = c->broker->cfg.chain.max_reorg_depth;
    uint64_t top = c->tip;
    uint64_t low = top > depth ? top - depth : 0;
    low = LMQ_MAX(low, c->first);
    if (c->have_head && c->head < top)
        top = LMQ_MAX(c->head, low);
    chain_fetch_headers(c, low, (size_t)(top - low + 1), chain_on_fork_header);
}

static void chain_halt(struct chain *c, uint64_t low)
{
    lmq_log_msgf(LMQ_LOG_ERROR, "chain_reorg_too_deep",
                 "no common block with the node from %" PRIu64 " to the tip %" PRIu64
                 " (max_reorg_depth %" PRIu32 "): following stopped, an operator decides",
                 low, c->tip, c->broker->cfg.chain.max_reorg_depth);
    chain_set_state(c, CHAIN_HALTED);
}

/* Rolls back above fork in one batch: the headers, and a retracted notice for every notified
 * log of the removed blocks. */
static void chain_rollback(struct chain *c, uint64_t fork)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(c->have_tip && fork < c->tip && fork >= c->first);
    uint64_t depth = c->tip - fork;
    if (chain_notify_retract(c, fork) != LMQ_OK) {
        chain_poll_done(c, false);
        return;
    }
    struct store_record rec = {.type = STORE_CHAIN_ROLLBACK};
    rec.u.chain_rollback.after = fork;
    commit_store_write(b, &rec);
    struct chain_hash_read r;
    if (chain_stored_hash(c, fork, &r) != LMQ_OK || !r.found) {
        chain_poll_done(c, false);
        return;
    }
    c->tip = fork;
    memcpy(c->tip_hash, r.hash, 32);
    c->tip_time = r.time;
    c->confirm_from = LMQ_MIN(c->confirm_from, fork + 1);
    c->reorgs++;
    c->check_pending = true; /* the invariant, once the rollback is durable */
    c->moved = true;
    chain_written(c);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "chain_reorg")) {
        lmq_log_uint(&line, "depth", depth);
        lmq_log_uint(&line, "fork", fork);
        lmq_log_end(&line);
    }
    chain_poll_done(c, true);
}

static void chain_fork_done(struct chain *c)
{
    struct chain_step *s = &c->step;
    if (s->failed) {
        chain_poll_done(c, false);
        return;
    }
    for (size_t k = s->count; k-- > 0;) {
        if (!s->got[k])
            continue;
        struct chain_hash_read r;
        if (chain_stored_hash(c, s->first + k, &r) != LMQ_OK) {
            chain_poll_done(c, false);
            return;
        }
        if (r.found && memcmp(r.hash, s->headers[k].hash, 32) == 0) {
            if (s->first + k == c->tip) { /* no reorg after all (the node caught up) */
                chain_poll_done(c, true);
                return;
            }
            chain_rollback(c, s->first + k);
            return;
        }
    }
    chain_halt(c, s->first);
    chain_poll_done(c, true);
}

static void chain_on_fork_header(void *ctx, const struct eth_rpc_answer *a)
{
    struct chain *c = ctx;
    struct chain_step *s = &c->step;
    LMQ_ASSERT(s->answered < s->count);
    if (a->status == ETH_RPC_OK && a->block.number >= s->first &&
        a->block.number < s->first + s->count) {
        size_t i = (size_t)(a->block.number - s->first);
        s->headers[i] = a->block;
        s->got[i] = true;
    } else if (a->status != ETH_RPC_NOT_FOUND) {
        chain_rpc_failed(c, a, "eth_getBlockByNumber");
        s->failed = true;
    }
    if (++s->answered == s->count)
        chain_fork_done(c);
}

/* ---- Logs ---- */

static int chain_log_cmp(const void *x, const void *y)
{
    const struct chain_log *p = x, *q = y;
    if (p->log.block_number != q->log.block_number)
        return p->log.block_number < q->log.block_number ? -1 : 1;
    return p->log.log_index < q->log.log_index ? -1 : p->log.log_index > q->log.log_index;
}

static void chain_logs_done(struct chain *c)
{
    struct chain_step *s = &c->step;
    if (s->failed) {
        c->range_blocks = (uint32_t)LMQ_MAX(s->count / 2, (size_t)1);
        chain_poll_done(c, false);
        return;
    }
    if (s->log_count > 1)
        qsort(s->logs, s->log_count, sizeof(*s->logs), chain_log_cmp);
    chain_write_blocks(c);
}

static int chain_keep_log(struct chain_step *s, const struct eth_log *l)
{
    /* A log outside the step's blocks (a node that ignores fromBlock, say) is not this step's:
     * kept, it would stop chain_write_blocks from reaching the logs after it. Those of earlier
     * blocks were notified by their own step, those of later ones come with theirs. */
    if (l->removed || l->block_number < s->first || l->block_number - s->first >= s->count)
        return LMQ_OK;
    if (s->log_count == s->log_cap) {
        size_t cap = s->log_cap == 0 ? 64 : s->log_cap * 2;
        struct chain_log *n = realloc(s->logs, cap * sizeof(*n));
        if (n == NULL)
            return LMQ_ENOMEM;
        s->logs = n;
        s->log_cap = cap;
    }
    struct chain_log *k = &s->logs[s->log_count];
    k->data = malloc(l->data_len > 0 ? l->data_len : 1);
    if (k->data == NULL)
        return LMQ_ENOMEM;
    if (l->data_len > 0)
        memcpy(k->data, l->data, l->data_len);
    k->log = *l;
    k->log.data = k->data;
    s->log_count++;
    return LMQ_OK;
}

static void chain_on_logs(void *ctx, const struct eth_rpc_answer *a)
{
    struct chain *c = ctx;
    struct chain_step *s = &c->step;
    LMQ_ASSERT(s->log_answers < s->log_calls);
    if (a->status != ETH_RPC_OK) {
        chain_rpc_failed(c, a, "eth_getLogs");
        s->failed = true;
    }
    for (size_t i = 0; !s->failed && i < a->log_count; i++)
        if (chain_keep_log(s, &a->logs[i]) != LMQ_OK)
            s->failed = true;
    if (++s->log_answers == s->log_calls)
        chain_logs_done(c);
}

/* eth_getLogs for the step's range and the watched addresses (64 per call), in one batch. */
static void chain_fetch_logs(struct chain *c)
{
    struct chain_step *s = &c->step;
    static uint8_t addresses[CHAIN_WATCHES_MAX][20];
    size_t n = chain_notify_addresses(c, addresses, CHAIN_WATCHES_MAX);
    if (n == 0) {
        chain_write_blocks(c);
        return;
    }
    struct eth_rpc_batch *batch = NULL;
    if (eth_rpc_batch_begin(c->rpc, &batch) != LMQ_OK) {
        chain_poll_done(c, false);
        return;
    }
    int rc = LMQ_OK;
    for (size_t at = 0; at < n && rc == LMQ_OK; at += ETH_RPC_FILTER_ADDRESSES_MAX) {
        struct eth_rpc_log_filter f = {
            .from_block = s->first,
            .to_block = s->first + s->count - 1,
            .addresses = (const uint8_t(*)[20])addresses[at],
            .address_count = LMQ_MIN(n - at, (size_t)ETH_RPC_FILTER_ADDRESSES_MAX),
        };
        rc = eth_rpc_logs(c->rpc, batch, &f, chain_on_logs, c);
        if (rc == LMQ_OK)
            s->log_calls++;
    }
    if (rc == LMQ_OK)
        rc = eth_rpc_batch_send(batch);
    else
        eth_rpc_batch_discard(batch);
    c->rpc_calls++;
    if (rc != LMQ_OK)
        chain_poll_done(c, false);
}

/* Writes the step's blocks (headers, notices, envelopes) into the open batch, in order. A log
 * whose block hash is not the header's means the node changed branch between the calls: the
 * blocks from there are left for the next poll. */
static void chain_write_blocks(struct chain *c)
{
    struct broker *b = c->broker;
    struct chain_step *s = &c->step;
    size_t at = 0, sent = 0;
    for (size_t i = 0; i < s->count && sent < CHAIN_NOTIFY_STEP_MAX; i++) {
        const struct eth_block_header *h = &s->headers[i];
        size_t end = at;
        bool mismatch = false;
        while (end < s->log_count && s->logs[end].log.block_number == h->number) {
            mismatch |= memcmp(s->logs[end].log.block_hash, h->hash, 32) != 0;
            end++;
        }
        if (mismatch)
            break;
        struct store_record rec = {.type = STORE_CHAIN_HEADER_PUT};
        rec.u.chain_header = (struct store_rec_chain_header){
            .number = h->number,
            .hash = {h->hash, 32},
            .parent_hash = {h->parent_hash, 32},
            .time = h->timestamp,
        };
        commit_store_write(b, &rec);
        sent += chain_notify_block(c, h, s->logs + at, end - at);
        at = end;
        if (!c->have_tip)
            c->first = h->number;
        c->have_tip = true;
        c->tip = h->number;
        memcpy(c->tip_hash, h->hash, 32);
        c->tip_time = h->timestamp;
        c->moved = true;
        chain_written(c);
    }
    c->range_blocks = LMQ_MIN(c->range_blocks * 2u, b->cfg.chain.batch_blocks);
    chain_poll_done(c, true);
}

/* ---- The poll ---- */

static void chain_on_tip_header(void *ctx, const struct eth_rpc_answer *a)
{
    struct chain *c = ctx;
    if (a->status == ETH_RPC_NOT_FOUND || (a->status == ETH_RPC_OK && a->block.number == c->tip &&
                                           memcmp(a->block.hash, c->tip_hash, 32) != 0)) {
        chain_find_fork(c);
        return;
    }
    if (a->status != ETH_RPC_OK)
        chain_rpc_failed(c, a, "eth_getBlockByNumber");
    chain_poll_done(c, a->status == ETH_RPC_OK);
}

static void chain_on_head(void *ctx, const struct eth_rpc_answer *a)
{
    struct chain *c = ctx;
    struct broker *b = c->broker;
    chain_latency(c);
    if (a->status != ETH_RPC_OK) {
        chain_rpc_failed(c, a, "eth_blockNumber");
        chain_poll_done(c, false);
        return;
    }
    if (a->quantity > CHAIN_BLOCK_NUMBER_MAX) { /* a broken or hostile node: a failed poll */
        struct eth_rpc_answer bad = {.status = ETH_RPC_BAD_ANSWER,
                                     .message = "head block number past 2^63-1"};
        chain_rpc_failed(c, &bad, "eth_blockNumber");
        chain_poll_done(c, false);
        return;
    }
    c->head = a->quantity;
    c->have_head = true;
    if (c->state == CHAIN_HALTED) {
        chain_poll_done(c, true);
        return;
    }
    const struct lmq_chain_config *cfg = &b->cfg.chain;
    if (!c->have_tip) {
        uint64_t start = cfg->start_latest ? c->head : cfg->start_block;
        if (start > c->head) {
            chain_poll_done(c, true); /* the start block is not there yet */
            return;
        }
        chain_fetch_headers(c, start, (size_t)LMQ_MIN(c->head - start + 1, c->range_blocks),
                            chain_on_header);
        return;
    }
    if (c->head > c->tip) {
        chain_fetch_headers(c, c->tip + 1, (size_t)LMQ_MIN(c->head - c->tip, c->range_blocks),
                            chain_on_header);
        return;
    }
    if (c->head < c->tip) { /* the node went back: our blocks above its head are gone */
        chain_find_fork(c);
        return;
    }
    /* Level with the node: is our tip still its block? (One call; the walk only if not.) */
    c->rpc_calls++;
    if (eth_rpc_block_by_number(c->rpc, NULL, c->tip, chain_on_tip_header, c) != LMQ_OK)
        chain_poll_done(c, false);
}

static void chain_on_chain_id(void *ctx, const struct eth_rpc_answer *a)
{
    struct chain *c = ctx;
    if (a->status != ETH_RPC_OK) {
        chain_rpc_failed(c, a, "eth_chainId");
        chain_poll_done(c, false);
        return;
    }
    c->chain_id = a->quantity;
    c->have_chain_id = true;
    c->poll_started_ms = clock_now_ms(c->broker);
    c->rpc_calls++;
    if (eth_rpc_block_number(c->rpc, NULL, chain_on_head, c) != LMQ_OK)
        chain_poll_done(c, false);
}

static void chain_on_timer(uv_timer_t *t)
{
    struct chain *c = t->data;
    struct broker *b = c->broker;
    LMQ_ASSERT(!c->busy);
    if (c->stopped)
        return;
    if (b->committed_seq < c->written_seq) { /* the last writes are not durable yet */
        c->durable_wait = true;              /* chain_on_durable starts the step once they are */
        uv_timer_start(&c->timer, chain_on_timer, CHAIN_DURABLE_WAIT_MS, 0);
        return;
    }
    c->durable_wait = false;
    if (c->have_tip && chain_notify_confirm(c) != LMQ_OK)
        lmq_log_msg(LMQ_LOG_ERROR, "chain_confirm_failed", "cannot read the chain notices");
    if (c->check_pending && c->have_tip &&
        chain_check_stored(c, c->tip > 2u * b->cfg.chain.max_reorg_depth
                                  ? c->tip - 2u * b->cfg.chain.max_reorg_depth
                                  : 0) != LMQ_OK)
        broker_fail_stop(b, "chain", LMQ_EIO); /* a bug: never notify on a forked chain */
    c->check_pending = false;
    c->busy = true;
    c->moved = false;
    c->poll_started_ms = clock_now_ms(b);
    c->rpc_calls++;
    int rc = c->have_chain_id ? eth_rpc_block_number(c->rpc, NULL, chain_on_head, c)
                              : eth_rpc_chain_id(c->rpc, NULL, chain_on_chain_id, c);
    if (rc != LMQ_OK)
        chain_poll_done(c, false);
}

static void chain_schedule(struct chain *c, uint64_t delay_ms)
{
    if (c->stopped)
        return;
    uv_timer_start(&c->timer, chain_on_timer, delay_ms, 0);
}

/* A batch is durable: when it holds the follower's last writes and a step waits for them, the
 * step starts now rather than at the next CHAIN_DURABLE_WAIT_MS look (a catch-up step waited
 * for that look after every commit). */
static void chain_on_durable(void *ctx, uint64_t batch_seq, void **data)
{
    struct chain *c = ctx;
    LMQ_ASSERT(c != NULL && data != NULL);
    if (!c->durable_wait || batch_seq < c->written_seq || c->stopped || !c->timer_open)
        return;
    LMQ_ASSERT(!c->busy); /* a step waiting for durability has not started */
    c->durable_wait = false;
    uv_timer_start(&c->timer, chain_on_timer, 0, 0);
}

static const struct commit_hook chain_commit_hook = {
    .name = "chain",
    .on_durable = chain_on_durable,
};

/* ---- chain.h ---- */

int chain_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->chain == NULL);
    if (b->cfg.chain.rpc[0] == '\0')
        return LMQ_OK;
    struct chain *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return LMQ_ENOMEM;
    c->broker = b;
    b->chain = c;
    return commit_hook_register(b, &chain_commit_hook, c, &c->commit_slot);
}

int chain_init_watches(struct broker *b)
{
    LMQ_ASSERT(b != NULL);
    if (b->chain == NULL)
        return LMQ_OK;
    LMQ_ASSERT(b->chain->broker == b);
    return chain_notify_init(b->chain);
}

int chain_start(struct broker *b)
{
    struct chain *c = b->chain;
    if (c == NULL)
        return LMQ_OK;
    const struct lmq_chain_config *cfg = &b->cfg.chain;
    int rc = chain_load_tip(c);
    if (rc == LMQ_OK && c->have_tip)
        rc = chain_check_stored(
            c, c->tip > CHAIN_CHECK_AT_START_MAX ? c->tip - CHAIN_CHECK_AT_START_MAX + 1 : 0);
    if (rc == LMQ_OK)
        rc = chain_notify_load(c);
    if (rc != LMQ_OK)
        return rc;
    c->range_blocks = cfg->batch_blocks;
    uint64_t back = (uint64_t)cfg->confirmations + cfg->batch_blocks;
    c->confirm_from = c->have_tip && c->tip > back ? c->tip - back : 0;
    struct eth_rpc_config rc_cfg = {
        .url = cfg->rpc, .timeout_ms = cfg->timeout_ms, .attempts_max = 2};
    rc = eth_rpc_create(&b->loop, &rc_cfg, &c->rpc);
    if (rc != LMQ_OK)
        return rc;
    uv_timer_init(&b->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    lmq_log_msgf(LMQ_LOG_INFO, "chain_starting", "following %s from %s", cfg->rpc,
                 c->have_tip         ? "the stored tip"
                 : cfg->start_latest ? "the latest block"
                                     : "start_block");
    chain_schedule(c, 0);
    return LMQ_OK;
}

static void chain_timer_closed(uv_handle_t *h)
{
    struct chain *c = h->data;
    c->timer_open = false;
}

void chain_stop(struct broker *b)
{
    struct chain *c = b->chain;
    if (c == NULL || c->stopped)
        return;
    c->stopped = true;
    eth_rpc_close(c->rpc);
    c->rpc = NULL;
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, chain_timer_closed);
}

void chain_destroy(struct broker *b)
{
    struct chain *c = b->chain;
    if (c == NULL)
        return;
    LMQ_ASSERT(!c->timer_open || c->stopped);
    chain_step_reset(c);
    free(c->watches);
    lmq_buf_release(&c->scratch);
    free(c);
    b->chain = NULL;
}

const char *chain_health(const struct broker *b, bool *unhealthy)
{
    const struct chain *c = b->chain;
    *unhealthy = false;
    if (c == NULL)
        return NULL;
    *unhealthy = b->cfg.chain.healthz_503_when_down &&
                 (c->state == CHAIN_NODE_DOWN || c->state == CHAIN_HALTED);
    return chain_state_name(c->state);
}

#define CHAIN_METRIC(out, name, type, help)                                                        \
    http_body_printf(out, "# HELP ledgermq_" name " " help "\n# TYPE ledgermq_" name " " type "\n")

int chain_metrics(struct broker *b, struct lmq_buf *out)
{
    struct chain *c = b->chain;
    if (c == NULL)
        return 0;
    int rc = 0;
    rc |= CHAIN_METRIC(out, "chain_state", "gauge", "The chain follower's state (1: current).");
    for (size_t i = 0; i < CHAIN_STATE_COUNT; i++)
        rc |= http_body_printf(out, "ledgermq_chain_state{state=\"%s\"} %d\n", chain_state_names[i],
                               c->state == i ? 1 : 0);
    uint64_t lag = c->have_tip && c->head > c->tip ? c->head - c->tip : 0;
    int64_t now_s = clock_unix_ms(b) / 1000;
    int64_t lag_s = c->have_tip && now_s > (int64_t)c->tip_time ? now_s - (int64_t)c->tip_time : 0;
    rc |= CHAIN_METRIC(out, "chain_head_block", "gauge", "The node's head block at the last poll.");
    rc |= http_body_printf(out, "ledgermq_chain_head_block %" PRIu64 "\n", c->head);
    rc |= CHAIN_METRIC(out, "chain_tip_block", "gauge", "The highest stored block.");
    rc |= http_body_printf(out, "ledgermq_chain_tip_block %" PRIu64 "\n", c->tip);
    rc |=
        CHAIN_METRIC(out, "chain_lag_blocks", "gauge", "Blocks the stored tip is behind the node.");
    rc |= http_body_printf(out, "ledgermq_chain_lag_blocks %" PRIu64 "\n", lag);
    rc |= CHAIN_METRIC(out, "chain_lag_seconds", "gauge",
                       "Seconds since the stored tip's timestamp.");
    rc |= http_body_printf(out, "ledgermq_chain_lag_seconds %" PRId64 "\n", lag_s);
    rc |= CHAIN_METRIC(out, "chain_rpc_requests_total", "counter",
                       "JSON-RPC requests (a batch is one).");
    rc |= http_body_printf(out, "ledgermq_chain_rpc_requests_total %" PRIu64 "\n", c->rpc_calls);
    rc |= CHAIN_METRIC(out, "chain_rpc_errors_total", "counter", "Polls that failed.");
    rc |= http_body_printf(out, "ledgermq_chain_rpc_errors_total %" PRIu64 "\n", c->rpc_errors);
    rc |= CHAIN_METRIC(out, "chain_rpc_latency_seconds", "gauge",
                       "The last eth_blockNumber round trip.");
    rc |= http_body_printf(out, "ledgermq_chain_rpc_latency_seconds %.6f\n", c->latency_s_last);
    rc |= CHAIN_METRIC(out, "chain_reorgs_total", "counter", "Reorgs rolled back.");
    rc |= http_body_printf(out, "ledgermq_chain_reorgs_total %" PRIu64 "\n", c->reorgs);
    rc |= CHAIN_METRIC(out, "chain_notifications_total", "counter", "Notices sent, by type.");
    static const char *const kinds[3] = {"log", "confirmed", "retracted"};
    for (size_t i = 0; i < 3; i++)
        rc |= http_body_printf(out, "ledgermq_chain_notifications_total{type=\"%s\"} %" PRIu64 "\n",
                               kinds[i], c->notices_sent[i]);
    rc |= CHAIN_METRIC(out, "chain_watches", "gauge", "Contract watches stored.");
    rc |= http_body_printf(out, "ledgermq_chain_watches %zu\n", c->watch_count);
    return rc;
}
