/*
 * The sealer's life and its tracking pass (docs/PROTOCOL.md "Sealing"): at start it reads the
 * stored seals (the next nonce is the highest stored + 1, the unconfirmed ones are tracked),
 * checks the node's chain id and reconciles the nonce with the node's pending count; then a
 * timer looks up the receipts of every transaction of every tracked seal, moves them along
 * sent -> mined -> confirmed (and back to sent when a reorg dropped them), bumps a stuck one and
 * starts the next seal when it is due.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/keyfile.h"
#include "eth/eth_hex.h"
#include "eth/eth_keyfile.h"
#include "jobs/jobs.h"
#include "net/http.h"
#include "pipeline/pipeline.h"
#include "seal/seal_internal.h"

static const char *const seal_state_names[SEAL_STATE_COUNT] = {"sent", "mined", "confirmed",
                                                               "dropped"};

const char *seal_state_name(enum seal_state st)
{
    LMQ_ASSERT((unsigned)st < SEAL_STATE_COUNT);
    return seal_state_names[st];
}

bool seal_state_parse(const uint8_t *name, size_t len, enum seal_state *st)
{
    for (int i = 0; i < SEAL_STATE_COUNT; i++) {
        if (len == strlen(seal_state_names[i]) && memcmp(name, seal_state_names[i], len) == 0) {
            *st = (enum seal_state)i;
            return true;
        }
    }
    return false;
}

void seal_error(struct seal *s, const char *what, const char *why)
{
    LMQ_ASSERT(s != NULL && what != NULL);
    s->errors_total++;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_ERROR, "seal_error")) {
        lmq_log_str(&line, "what", what);
        lmq_log_str(&line, "reason", why != NULL ? why : "");
        lmq_log_end(&line);
    }
}

static struct lmq_bytes seal_bytes(const void *p, size_t n)
{
    return (struct lmq_bytes){(const uint8_t *)p, n};
}

void seal_write_row(struct seal *s, const struct seal_row *r)
{
    LMQ_ASSERT(s != NULL && r != NULL && r->attempts >= 1 && r->current < r->attempts);
    bool mined = r->state == SEAL_MINED || r->state == SEAL_CONFIRMED;
    struct store_record rec = {.type = STORE_SEAL_PUT};
    const char *st = seal_state_name(r->state);
    rec.u.seal = (struct store_rec_seal){
        .nonce = r->nonce,
        .tree_size = r->tree_size,
        .root = seal_bytes(r->root, 32),
        .checkpoint = seal_bytes(r->checkpoint, r->checkpoint_len),
        .chain_id = r->chain_id,
        .tx_hash = seal_bytes(r->hashes[r->current], 32),
        .raw = seal_bytes(r->raws[r->current], r->raw_lens[r->current]),
        .state = seal_bytes(st, strlen(st)),
        .block_number = mined ? r->block_number : 0,
        .block_hash = seal_bytes(r->block_hash, mined ? 32 : 0),
        .attempts = r->attempts,
        .sent_unix_ms = r->sent_unix_ms,
        .updated_unix_ms = clock_unix_ms(s->b),
    };
    commit_store_write(s->b, &rec);
}

void seal_row_free(struct seal_row *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < SEAL_ATTEMPTS_MAX; i++)
        free(r->raws[i]);
    free(r->checkpoint);
    free(r);
}

static void seal_log_row(const struct seal *s, const char *event, const struct seal_row *r)
{
    struct lmq_log_line line;
    enum lmq_log_level level = strcmp(event, "seal_reorged") == 0 ? LMQ_LOG_WARN : LMQ_LOG_INFO;
    if (!lmq_log_begin(&line, level, event))
        return;
    char hash[67];
    if (eth_hex_encode(r->hashes[r->current], 32, hash, sizeof(hash)) != LMQ_OK)
        hash[0] = '\0';
    lmq_log_uint(&line, "nonce", r->nonce);
    lmq_log_uint(&line, "tree_size", r->tree_size);
    lmq_log_str(&line, "tx_hash", hash);
    lmq_log_uint(&line, "attempt", r->current + 1);
    if (r->state == SEAL_MINED || r->state == SEAL_CONFIRMED) {
        lmq_log_uint(&line, "block", r->block_number);
        lmq_log_uint(&line, "confirmations",
                     s->head >= r->block_number ? s->head - r->block_number + 1 : 0);
    }
    lmq_log_str(&line, "address", s->addr_text);
    lmq_log_end(&line);
}

static void seal_rebroadcast_done(void *ctx, const struct eth_rpc_answer *a)
{
    struct seal *s = ctx;
    LMQ_ASSERT(s != NULL && a != NULL);
    /* "already known" and "nonce too low" are what a node says of a transaction it has or
     * has mined: tracking looks the hashes up either way. */
    if (a->status != ETH_RPC_OK) {
        struct lmq_log_line line;
        if (lmq_log_begin(&line, LMQ_LOG_INFO, "seal_rebroadcast_answer")) {
            lmq_log_str(&line, "address", s->addr_text);
            lmq_log_str(&line, "answer", a->message);
            lmq_log_end(&line);
        }
    }
}

void seal_rebroadcast(struct seal *s, struct seal_row *r, const char *why)
{
    LMQ_ASSERT(s != NULL && r != NULL && r->raws[r->current] != NULL);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "seal_rebroadcast")) {
        lmq_log_uint(&line, "nonce", r->nonce);
        lmq_log_uint(&line, "attempt", r->current + 1);
        lmq_log_str(&line, "why", why);
        lmq_log_end(&line);
    }
    r->resend = false;
    /* The answer names no row: a row may be untracked before it comes. */
    if (eth_rpc_send_raw_transaction(s->rpc, NULL, r->raws[r->current], r->raw_lens[r->current],
                                     seal_rebroadcast_done, s) != LMQ_OK)
        r->resend = true;
}

bool seal_due(struct seal *s)
{
    LMQ_ASSERT(s != NULL && s->phase == SEAL_PHASE_READY);
    uint64_t size = 0;
    const char *note = pipeline_checkpoint_note(s->b, &size);
    if (note == NULL || size == 0 || size <= s->last_sealed_size)
        return false;
    uint64_t every = s->b->cfg.seal.every_entries;
    bool asked = s->want || (every > 0 && size - s->last_sealed_size >= every);
    if (!asked || s->row_count >= SEAL_TRACK_MAX)
        return false;
    /* One in flight: the newest seal must be mined before the next is sent. */
    return s->row_count == 0 || s->rows[s->row_count - 1]->state != SEAL_SENT;
}

/* ---- start: the stored seals ---- */

struct seal_scan {
    struct seal *s;
    uint64_t next_from;
    size_t seen;
    int rc;
};

static int seal_scan_tx(void *ctx, const struct store_rec_seal_tx *t)
{
    struct seal_row *r = ctx;
    if (t->attempt < 1 || t->attempt > SEAL_ATTEMPTS_MAX || t->tx_hash.len != 32 || t->raw.len == 0)
        return 1;
    uint32_t i = t->attempt - 1;
    free(r->raws[i]);
    r->raws[i] = malloc(t->raw.len);
    if (r->raws[i] == NULL)
        return 1;
    memcpy(r->raws[i], t->raw.data, t->raw.len);
    r->raw_lens[i] = t->raw.len;
    memcpy(r->hashes[i], t->tx_hash.data, 32);
    r->attempts = LMQ_MAX(r->attempts, t->attempt);
    return 0;
}

/* Copies a stored unconfirmed seal into a tracked row with its transactions. */
static int seal_scan_track(struct seal *s, const struct store_rec_seal *row, enum seal_state st)
{
    struct seal_row *r = calloc(1, sizeof(*r));
    if (r == NULL || s->row_count >= SEAL_TRACK_MAX || row->root.len != 32)
        goto fail;
    r->nonce = row->nonce, r->tree_size = row->tree_size, r->chain_id = row->chain_id;
    memcpy(r->root, row->root.data, 32);
    r->checkpoint = malloc(row->checkpoint.len + 1);
    if (r->checkpoint == NULL)
        goto fail;
    memcpy(r->checkpoint, row->checkpoint.data, row->checkpoint.len);
    r->checkpoint[row->checkpoint.len] = '\0';
    r->checkpoint_len = row->checkpoint.len;
    r->state = st;
    r->block_number = row->block_number;
    if (row->block_hash.len == 32)
        memcpy(r->block_hash, row->block_hash.data, 32);
    r->sent_unix_ms = row->sent_unix_ms;
    if (row->tx_hash.len == 32)
        memcpy(r->found_hash, row->tx_hash.data, 32); /* the named attempt, until its txs load */
    /* Its transactions are read after the scan (seal_scan_txs). */
    s->rows[s->row_count++] = r;
    return 0;
fail:
    seal_row_free(r);
    return 1;
}

static int seal_scan_row(void *ctx, const struct store_rec_seal *row)
{
    struct seal_scan *sc = ctx;
    struct seal *s = sc->s;
    enum seal_state st;
    sc->seen++;
    sc->next_from = row->nonce + 1;
    if (!seal_state_parse(row->state.data, row->state.len, &st))
        return 1;
    s->counts[st]++;
    s->next_nonce = LMQ_MAX(s->next_nonce, row->nonce + 1);
    if (st != SEAL_DROPPED)
        s->last_sealed_size = LMQ_MAX(s->last_sealed_size, row->tree_size);
    if (st == SEAL_SENT || st == SEAL_MINED)
        return seal_scan_track(s, row, st);
    return 0;
}

/* The transactions of every tracked row, read after the seals (a row callback may not start
 * another read). */
static int seal_scan_txs(struct seal *s)
{
    for (size_t i = 0; i < s->row_count; i++) {
        struct seal_row *r = s->rows[i];
        size_t n = 0;
        int rc = store_seal_txs(s->b->store, r->nonce, SEAL_ATTEMPTS_MAX, seal_scan_tx, r, &n);
        if (rc != LMQ_OK || r->attempts == 0 || r->raws[r->attempts - 1] == NULL)
            return rc != LMQ_OK ? rc : LMQ_EIO;
        r->current = r->attempts - 1;
        for (uint32_t k = 0; k < r->attempts; k++) {
            if (memcmp(r->hashes[k], r->found_hash, 32) == 0)
                r->current = k;
        }
        LMQ_ASSERT(r->current < r->attempts);
    }
    return LMQ_OK;
}

static int seal_scan(struct seal *s)
{
    struct seal_scan sc = {.s = s};
    for (size_t page = 0; page < SEAL_SCAN_PAGES_MAX; page++) {
        size_t n = 0;
        sc.seen = 0;
        int rc = store_seals(s->b->store, sc.next_from, SEAL_SCAN_PAGE, seal_scan_row, &sc, &n);
        if (rc != LMQ_OK)
            return rc;
        if (sc.seen < SEAL_SCAN_PAGE)
            return seal_scan_txs(s);
    }
    return LMQ_ELIMIT;
}

/* ---- the node check at start: chain id and nonce ---- */

static const struct eth_rpc_answer seal_count_too_big = {
    .status = ETH_RPC_BAD_ANSWER, .message = "transaction count past 2^63-1"};

static void seal_answer_failed(struct seal *s, const struct eth_rpc_answer *a, const char *call)
{
    if (!s->ans_failed)
        snprintf(s->ans_err, sizeof(s->ans_err), "%s: %s%s%s", call, eth_rpc_status_name(a->status),
                 a->message[0] != '\0' ? ": " : "", a->message);
    s->ans_failed = true;
}

void seal_node_ok(struct seal *s)
{
    if (s->node_failing)
        lmq_log_msg(LMQ_LOG_INFO, "seal_node_ok", "the sealing node answers again");
    s->node_failing = false;
}

void seal_node_failed(struct seal *s)
{
    if (!s->node_failing)
        seal_error(s, "node", s->ans_err);
    s->node_failing = true;
}

static void seal_check_done(struct seal *s)
{
    const struct lmq_seal_config *cfg = &s->b->cfg.seal;
    if (s->ans_failed) {
        seal_node_failed(s);
        return;
    }
    seal_node_ok(s);
    if (s->ans_chain_id != cfg->chain_id) {
        char why[128];
        snprintf(why, sizeof(why),
                 "the node's chain id is %" PRIu64 ", [seal] chain_id is %" PRIu64
                 ": sealing stopped, nothing sent",
                 s->ans_chain_id, cfg->chain_id);
        seal_error(s, "chain_id", why);
        s->phase = SEAL_PHASE_HALTED;
        return;
    }
    if (s->ans_count > s->next_nonce) {
        if (s->counts[SEAL_SENT] + s->counts[SEAL_MINED] + s->counts[SEAL_CONFIRMED] > 0)
            lmq_log_msgf(LMQ_LOG_WARN, "seal_nonce_ahead",
                         "the node counts %" PRIu64 " transactions of %s, the store %" PRIu64
                         ": another sender uses the sealing key; taking the node's count",
                         s->ans_count, s->addr_text, s->next_nonce);
        s->next_nonce = s->ans_count;
    }
    bool ours_pending = false;
    for (size_t i = 0; i < s->row_count; i++)
        ours_pending = ours_pending || s->rows[i]->nonce >= s->ans_count;
    if (s->ans_count < s->next_nonce && !ours_pending) {
        /* Confirmed seals the chain does not count: another key or another chain than the one
         * the stored seals were made with. Sealing on would leave a nonce gap (or collide with
         * stored nonces): stop and say so. */
        char why[200];
        snprintf(why, sizeof(why),
                 "the node counts %" PRIu64
                 " transactions of %s, the stored seals reach nonce %" PRIu64
                 ": another key or chain than the data directory's seals; sealing stopped",
                 s->ans_count, s->addr_text, s->next_nonce - 1);
        seal_error(s, "nonce", why);
        s->phase = SEAL_PHASE_HALTED;
        return;
    }
    /* Every seal still "sent" is broadcast again: after a kill -9 between its commit and its
     * send, or a node that lost its pool, it is what makes the nonce used (same hash). */
    for (size_t i = 0; i < s->row_count; i++) {
        if (s->rows[i]->state == SEAL_SENT)
            seal_rebroadcast(s, s->rows[i],
                             s->ans_count <= s->rows[i]->nonce ? "node_lacks_it" : "restart");
    }
    s->phase = SEAL_PHASE_READY;
    lmq_log_msgf(LMQ_LOG_INFO, "seal_ready",
                 "sealing from %s on chain %" PRIu64 ", next nonce %" PRIu64 ", %zu seals tracked",
                 s->addr_text, cfg->chain_id, s->next_nonce, s->row_count);
}

static void seal_on_check(void *ctx, const struct eth_rpc_answer *a)
{
    struct seal_call *c = ctx;
    struct seal *s = c->s;
    LMQ_ASSERT(s->op == SEAL_OP_CHECK && s->calls_pending > 0);
    if (a->status != ETH_RPC_OK)
        seal_answer_failed(s, a, c->row == 0 ? "eth_chainId" : "eth_getTransactionCount");
    else if (c->row == 0)
        s->ans_chain_id = a->quantity;
    else if (a->quantity > SEAL_NONCE_MAX)
        seal_answer_failed(s, &seal_count_too_big, "eth_getTransactionCount");
    else
        s->ans_count = a->quantity;
    if (--s->calls_pending > 0)
        return;
    s->op = SEAL_OP_NONE;
    seal_check_done(s);
}

/* Sends a batch whose calls were queued; on failure nothing is pending. */
void seal_batch_send(struct seal *s, struct eth_rpc_batch *batch, int rc, enum seal_op op)
{
    if (rc == LMQ_OK)
        rc = eth_rpc_batch_send(batch);
    else
        eth_rpc_batch_discard(batch);
    if (rc != LMQ_OK) {
        s->op = SEAL_OP_NONE;
        s->calls_pending = 0;
        seal_error(s, "rpc", lmq_strerror(rc));
        return;
    }
    LMQ_ASSERT(s->op == op);
}

static void seal_check_begin(struct seal *s)
{
    struct eth_rpc_batch *batch = NULL;
    if (eth_rpc_batch_begin(s->rpc, &batch) != LMQ_OK)
        return;
    s->op = SEAL_OP_CHECK;
    s->ans_failed = false;
    s->calls_pending = 2;
    s->calls[0] = (struct seal_call){.s = s, .row = 0};
    s->calls[1] = (struct seal_call){.s = s, .row = 1};
    int rc = eth_rpc_chain_id(s->rpc, batch, seal_on_check, &s->calls[0]);
    if (rc == LMQ_OK)
        rc = eth_rpc_transaction_count(s->rpc, batch, s->addr, seal_on_check, &s->calls[1]);
    seal_batch_send(s, batch, rc, SEAL_OP_CHECK);
}

/* ---- tracking ---- */

static void seal_set_state(struct seal *s, struct seal_row *r, enum seal_state st)
{
    LMQ_ASSERT(s->counts[r->state] > 0);
    s->counts[r->state]--;
    s->counts[st]++;
    r->state = st;
}

/* Removes the tracked row i (confirmed or dropped); frees it. */
static void seal_untrack(struct seal *s, size_t i)
{
    LMQ_ASSERT(i < s->row_count && s->rows[i] != s->pending_row);
    seal_row_free(s->rows[i]);
    memmove(&s->rows[i], &s->rows[i + 1], (s->row_count - i - 1) * sizeof(s->rows[0]));
    s->row_count--;
}

/* One tracked seal after its receipts: returns true when it leaves tracking. */
static bool seal_track_row(struct seal *s, struct seal_row *r)
{
    uint32_t confirmations = s->b->cfg.seal.confirmations;
    if (r->found && !r->found_ok) {
        seal_set_state(s, r, SEAL_DROPPED);
        seal_write_row(s, r);
        seal_error(s, "reverted", "the seal transaction was mined but failed (gas_limit?)");
        return true;
    }
    if (r->found) {
        bool moved = r->state == SEAL_MINED && (r->block_number != r->found_block ||
                                                memcmp(r->block_hash, r->found_hash, 32) != 0);
        bool changed = r->state == SEAL_SENT || moved;
        r->current = r->found_attempt;
        r->block_number = r->found_block;
        memcpy(r->block_hash, r->found_hash, 32);
        r->drop_strikes = 0;
        if (r->state == SEAL_SENT) {
            seal_set_state(s, r, SEAL_MINED);
            seal_log_row(s, "seal_mined", r);
        } else if (moved) {
            seal_log_row(s, "seal_reorged", r);
        }
        if (s->head >= r->block_number && s->head - r->block_number + 1 >= confirmations) {
            seal_set_state(s, r, SEAL_CONFIRMED);
            seal_log_row(s, "seal_confirmed", r);
            changed = true;
        }
        if (changed)
            seal_write_row(s, r);
        return r->state == SEAL_CONFIRMED;
    }
    if (r->state == SEAL_MINED) { /* its receipt vanished: a reorg dropped its block */
        seal_set_state(s, r, SEAL_SENT);
        seal_log_row(s, "seal_reorged", r);
        r->sent_unix_ms = clock_unix_ms(s->b);
        seal_write_row(s, r);
        seal_rebroadcast(s, r, "reorg");
        return false;
    }
    /* Sent and not mined. The nonce used by another transaction (twice in a row, so a block
     * mined between the two calls of one pass is not taken for that): dropped. */
    if (s->ans_count > r->nonce && ++r->drop_strikes >= SEAL_DROP_STRIKES) {
        seal_set_state(s, r, SEAL_DROPPED);
        seal_write_row(s, r);
        seal_error(s, "dropped", "another transaction used the seal's nonce: sealing again");
        s->next_nonce = LMQ_MAX(s->next_nonce, s->ans_count);
        s->last_sealed_size = 0; /* the latest checkpoint is due again */
        s->want = true;
        return true;
    }
    if (r->resend)
        seal_rebroadcast(s, r, "send_failed");
    return false;
}

static void seal_track_done(struct seal *s)
{
    if (s->ans_failed) {
        seal_node_failed(s);
        return;
    }
    seal_node_ok(s);
    s->head = s->ans_head;
    for (size_t i = 0; i < s->row_count;) {
        if (s->rows[i] != s->pending_row && seal_track_row(s, s->rows[i]))
            seal_untrack(s, i);
        else
            i++;
    }
    struct seal_row *newest = s->row_count > 0 ? s->rows[s->row_count - 1] : NULL;
    uint64_t bump_ms = (uint64_t)s->b->cfg.seal.bump_after_s * 1000;
    if (newest != NULL && newest->state == SEAL_SENT && !newest->bump_capped &&
        newest->attempts < SEAL_ATTEMPTS_MAX &&
        clock_unix_ms(s->b) - newest->sent_unix_ms >= (int64_t)bump_ms) {
        seal_fees_begin(s, true);
        return;
    }
    if (seal_due(s))
        seal_fees_begin(s, false);
}

static void seal_on_track(void *ctx, const struct eth_rpc_answer *a)
{
    struct seal_call *c = ctx;
    struct seal *s = c->s;
    LMQ_ASSERT(s->op == SEAL_OP_TRACK && s->calls_pending > 0);
    if (c->row == UINT16_MAX) { /* head (attempt 0) or the latest nonce count (attempt 1) */
        if (a->status != ETH_RPC_OK)
            seal_answer_failed(s, a,
                               c->attempt == 0 ? "eth_blockNumber" : "eth_getTransactionCount");
        else if (c->attempt == 0)
            s->ans_head = a->quantity;
        else if (eth_rpc_parse_quantity(json_string_value(a->value), json_string_length(a->value),
                                        &s->ans_count) != LMQ_OK)
            seal_answer_failed(s, a, "eth_getTransactionCount");
        else if (s->ans_count > SEAL_NONCE_MAX)
            seal_answer_failed(s, &seal_count_too_big, "eth_getTransactionCount");
    } else if (a->status == ETH_RPC_OK) {
        LMQ_ASSERT(c->row < s->row_count);
        struct seal_row *r = s->rows[c->row];
        r->found = true;
        r->found_ok = a->receipt.success;
        r->found_attempt = c->attempt;
        r->found_block = a->receipt.block_number;
        memcpy(r->found_hash, a->receipt.block_hash, 32);
    } else if (a->status != ETH_RPC_NOT_FOUND) {
        seal_answer_failed(s, a, "eth_getTransactionReceipt");
    }
    if (--s->calls_pending > 0)
        return;
    s->op = SEAL_OP_NONE;
    seal_track_done(s);
}

static void seal_track_begin(struct seal *s)
{
    struct eth_rpc_batch *batch = NULL;
    if (eth_rpc_batch_begin(s->rpc, &batch) != LMQ_OK)
        return;
    s->op = SEAL_OP_TRACK;
    s->ans_failed = false;
    s->ans_count = 0;
    size_t n = 0;
    s->calls[n++] = (struct seal_call){.s = s, .row = UINT16_MAX, .attempt = 0};
    s->calls[n++] = (struct seal_call){.s = s, .row = UINT16_MAX, .attempt = 1};
    int rc = eth_rpc_block_number(s->rpc, batch, seal_on_track, &s->calls[0]);
    char addr[ETH_ADDRESS_TEXT_BYTES + 2];
    if (rc == LMQ_OK)
        rc = eth_hex_encode(s->addr, 20, addr, sizeof(addr));
    if (rc == LMQ_OK)
        rc = eth_rpc_call(s->rpc, batch, "eth_getTransactionCount",
                          json_pack("[ss]", addr, "latest"), seal_on_track, &s->calls[1]);
    for (size_t i = 0; rc == LMQ_OK && i < s->row_count; i++) {
        struct seal_row *r = s->rows[i];
        r->found = false;
        for (uint32_t k = 0; rc == LMQ_OK && k < r->attempts; k++) {
            LMQ_ASSERT(n < SEAL_CALLS_MAX);
            s->calls[n] = (struct seal_call){.s = s, .row = (uint16_t)i, .attempt = (uint16_t)k};
            rc = eth_rpc_transaction_receipt(s->rpc, batch, r->hashes[k], seal_on_track,
                                             &s->calls[n]);
            n++;
        }
    }
    s->calls_pending = (uint32_t)n;
    seal_batch_send(s, batch, rc, SEAL_OP_TRACK);
}

static void seal_on_tick(uv_timer_t *t)
{
    struct seal *s = t->data;
    LMQ_ASSERT(s != NULL && s->started);
    if (s->stopping || s->op != SEAL_OP_NONE || s->phase == SEAL_PHASE_HALTED ||
        s->b->store == NULL)
        return;
    if (s->phase == SEAL_PHASE_CHECK)
        seal_check_begin(s);
    else if (s->row_count > 0)
        seal_track_begin(s);
    else if (seal_due(s))
        seal_fees_begin(s, false);
}

/* ---- the job, the commit hook, the lifecycle ---- */

static int seal_job_step(struct jobs_step *st)
{
    struct seal *s = st->broker->seal;
    LMQ_ASSERT(s != NULL && st->broker != NULL);
    if (s->phase == SEAL_PHASE_HALTED) {
        snprintf(st->detail, sizeof(st->detail), "sealing stopped (see seal_error)");
        return LMQ_EINVAL;
    }
    uint64_t size = 0;
    (void)pipeline_checkpoint_note(st->broker, &size);
    /* Nothing new: no wish left over that the next envelope would fulfil at once. */
    s->want = size > s->last_sealed_size;
    snprintf(st->detail, sizeof(st->detail),
             size > s->last_sealed_size ? "asked for a seal of size %" PRIu64
                                        : "nothing new to seal (size %" PRIu64 ")",
             size);
    return JOBS_STEP_DONE;
}

static void seal_on_durable(void *ctx, uint64_t batch_seq, void **data)
{
    LMQ_UNUSED(data);
    struct seal *s = ctx;
    if (!s->stopping && s->op == SEAL_OP_DURABLE && s->pending_seq <= batch_seq)
        seal_send_durable(s);
}

static const struct commit_hook seal_commit_hook = {
    .name = "seal",
    .on_durable = seal_on_durable,
};

int seal_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->seal == NULL);
    const struct lmq_seal_config *cfg = &b->cfg.seal;
    if (cfg->rpc[0] == '\0')
        return LMQ_OK;
    struct seal *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return LMQ_ENOMEM;
    s->b = b;
    b->seal = s; /* seal_destroy frees what was made on failure */
    char err[256] = "";
    if (eth_keyfile_load(cfg->key_file, s->priv, s->addr, err, sizeof(err)) != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "[seal] key_file %s: %s", cfg->key_file, err);
        return LMQ_EINVAL;
    }
    eth_key_address_text(s->addr, s->addr_text);
    const char *tick = getenv("LMQ_TEST_SEAL_TICK_MS");
    s->tick_ms = tick != NULL ? (uint32_t)strtoul(tick, NULL, 10) : SEAL_TICK_MS;
    s->tick_ms = s->tick_ms == 0 ? SEAL_TICK_MS : s->tick_ms;
    struct eth_rpc_config rc_cfg = {.url = cfg->rpc};
    int rc = eth_rpc_create(&b->loop, &rc_cfg, &s->rpc);
    if (rc == LMQ_OK)
        rc = uv_timer_init(&b->loop, &s->timer) == 0 ? LMQ_OK : LMQ_ENOMEM;
    if (rc == LMQ_OK) {
        s->timer_init = true;
        s->timer.data = s;
        rc = commit_hook_register(b, &seal_commit_hook, s, &s->commit_slot);
    }
    struct jobs_job job = {
        .name = "seal", .default_schedule = cfg->schedule, .step = seal_job_step};
    if (rc == LMQ_OK)
        rc = jobs_register(b, &job);
    return rc;
}

int seal_start(struct broker *b)
{
    struct seal *s = b->seal;
    if (s == NULL)
        return LMQ_OK;
    LMQ_ASSERT(!s->started && b->store != NULL);
    int rc = seal_scan(s);
    if (rc != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot read the stored seals");
        return LMQ_EIO;
    }
    s->started = true;
    uv_timer_start(&s->timer, seal_on_tick, 0, s->tick_ms);
    return LMQ_OK;
}

void seal_stop(struct broker *b)
{
    struct seal *s = b->seal;
    if (s == NULL || s->stopping)
        return;
    s->stopping = true;
    if (s->timer_init)
        uv_close((uv_handle_t *)&s->timer, NULL);
    eth_rpc_close(s->rpc); /* no callback after this: the rows may be freed */
    s->rpc = NULL;
}

void seal_destroy(struct broker *b)
{
    struct seal *s = b->seal;
    if (s == NULL)
        return;
    if (!s->stopping)
        eth_rpc_close(s->rpc);
    /* The timer is closed (seal_stop, or the loop's final walk) before this runs. */
    for (size_t i = 0; i < s->row_count; i++)
        seal_row_free(s->rows[i]);
    memset(s->priv, 0, sizeof(s->priv));
    free(s);
    b->seal = NULL;
}

int seal_metrics(struct broker *b, struct lmq_buf *out)
{
    struct seal *s = b->seal;
    if (s == NULL)
        return 0;
    int rc = http_body_printf(out, "# HELP ledgermq_seals Seals in the store, by state.\n"
                                   "# TYPE ledgermq_seals gauge\n");
    for (int i = 0; i < SEAL_STATE_COUNT; i++)
        rc |= http_body_printf(out, "ledgermq_seals{state=\"%s\"} %" PRIu64 "\n",
                               seal_state_names[i], s->counts[i]);
    rc |= http_body_printf(
        out,
        "# HELP ledgermq_seal_last_sealed_size Tree size of the newest seal sent.\n"
        "# TYPE ledgermq_seal_last_sealed_size gauge\nledgermq_seal_last_sealed_size %" PRIu64
        "\n# HELP ledgermq_seal_errors_total Sealing errors since start (seal_error lines).\n"
        "# TYPE ledgermq_seal_errors_total counter\nledgermq_seal_errors_total %" PRIu64
        "\n# HELP ledgermq_seal_halted 1 when sealing stopped (chain id mismatch).\n"
        "# TYPE ledgermq_seal_halted gauge\nledgermq_seal_halted %d\n",
        s->last_sealed_size, s->errors_total, s->phase == SEAL_PHASE_HALTED ? 1 : 0);
    return rc;
}
