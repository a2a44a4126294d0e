/*
 * A seal's transaction (docs/PROTOCOL.md "Sealing"): the fees from the node, the EIP-1559
 * transaction to the sealing address itself with the checkpoint as calldata, its rows written
 * into the open commit batch, and the broadcast only once that batch is durable (write before
 * send: after a kill -9 the restart knows every transaction it may have sent). A bump is the
 * same nonce signed again with both fees raised by 12.5% (nodes want at least 10%).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/keyfile.h"
#include "eth/eth_tx.h"
#include "ledger/checkpoint.h"
#include "pipeline/pipeline.h"
#include "seal/seal_internal.h"

/* x * num / den rounded up, saturating (fees are far below 2^64 / 9). */
static uint64_t seal_scale_up(uint64_t x, uint64_t num, uint64_t den)
{
    LMQ_ASSERT(den > 0 && num >= den);
    if (x > UINT64_MAX / num)
        return UINT64_MAX;
    return (x * num + den - 1) / den;
}

/* 2 * base + prio, saturating: the node's numbers are anything up to 2^64 - 1 (then capped by
 * max_fee_gwei; a wrapped sum was a fee of a few wei, a seal that never mines). */
static uint64_t seal_max_fee(uint64_t base, uint64_t prio)
{
    uint64_t twice = seal_scale_up(base, 2, 1);
    return twice > UINT64_MAX - prio ? UINT64_MAX : twice + prio;
}

static uint64_t seal_u256_u64(const struct eth_u256 *v)
{
    uint64_t n = 0;
    return eth_u256_to_u64(v, &n) ? n : UINT64_MAX;
}

/* Signs (nonce, fees, calldata of the checkpoint) into r's next attempt. 0 or an error. */
static int seal_sign(struct seal *s, struct seal_row *r, uint64_t max_fee, uint64_t prio)
{
    LMQ_ASSERT(r->attempts < SEAL_ATTEMPTS_MAX && prio <= max_fee);
    struct ledger_checkpoint *cp = malloc(sizeof(*cp));
    uint8_t *data = malloc(ETH_TX_DATA_MAX_BYTES);
    struct lmq_buf raw = {0};
    int rc = cp == NULL || data == NULL
                 ? LMQ_ENOMEM
                 : ledger_checkpoint_parse(r->checkpoint, r->checkpoint_len, cp);
    size_t data_len = 0;
    if (rc == LMQ_OK)
        rc = seal_calldata(cp->size, cp->root, cp->origin, data, ETH_TX_DATA_MAX_BYTES, &data_len);
    struct eth_tx tx = {.type = ETH_TX_EIP1559,
                        .chain_id = s->b->cfg.seal.chain_id,
                        .nonce = r->nonce,
                        .gas_limit = s->b->cfg.seal.gas_limit,
                        .has_to = true,
                        .data = data,
                        .data_len = data_len};
    memcpy(tx.to, s->addr, sizeof(tx.to));
    eth_u256_from_u64(&tx.max_fee_per_gas, max_fee);
    eth_u256_from_u64(&tx.max_priority_fee_per_gas, prio);
    uint32_t k = r->attempts;
    if (rc == LMQ_OK)
        rc = eth_tx_sign(&tx, s->priv, &raw, r->hashes[k]);
    if (rc == LMQ_OK) {
        r->raws[k] = raw.data, r->raw_lens[k] = raw.len;
        raw.data = NULL;
        r->attempts = k + 1;
        r->current = k;
    }
    lmq_buf_release(&raw);
    free(data);
    free(cp);
    return rc;
}

/* Writes the attempt's seal_txs row and the seal's row, and waits for their commit. */
static void seal_write_attempt(struct seal *s, struct seal_row *r)
{
    LMQ_ASSERT(s->op == SEAL_OP_FEES && r->attempts >= 1);
    uint32_t k = r->current;
    r->sent_unix_ms = clock_unix_ms(s->b);
    struct store_record rec = {.type = STORE_SEAL_TX_PUT};
    rec.u.seal_tx = (struct store_rec_seal_tx){
        .nonce = r->nonce,
        .attempt = k + 1,
        .tx_hash = {r->hashes[k], 32},
        .raw = {r->raws[k], r->raw_lens[k]},
        .sent_unix_ms = r->sent_unix_ms,
    };
    commit_store_write(s->b, &rec);
    seal_write_row(s, r);
    s->pending_row = r;
    s->pending_seq = commit_batch_seq(s->b);
    s->op = SEAL_OP_DURABLE;
}

static struct seal_row *seal_new_row(struct seal *s)
{
    uint64_t size = 0;
    const char *note = pipeline_checkpoint_note(s->b, &size);
    struct seal_row *r = calloc(1, sizeof(*r));
    size_t len = note != NULL ? strlen(note) : 0;
    if (r == NULL || note == NULL || (r->checkpoint = malloc(len + 1)) == NULL) {
        seal_row_free(r);
        return NULL;
    }
    memcpy(r->checkpoint, note, len + 1);
    r->checkpoint_len = len;
    r->nonce = s->next_nonce;
    r->tree_size = size;
    r->chain_id = s->b->cfg.seal.chain_id;
    r->state = SEAL_SENT;
    return r;
}

static void seal_fees_new(struct seal *s, uint64_t max_fee, uint64_t prio)
{
    LMQ_ASSERT(s->row_count < SEAL_TRACK_MAX);
    struct seal_row *r = seal_new_row(s);
    struct ledger_checkpoint *cp = malloc(sizeof(*cp));
    int rc = r == NULL || cp == NULL
                 ? LMQ_ENOMEM
                 : ledger_checkpoint_parse(r->checkpoint, r->checkpoint_len, cp);
    if (rc == LMQ_OK) {
        memcpy(r->root, cp->root, 32);
        rc = seal_sign(s, r, max_fee, prio);
    }
    free(cp);
    if (rc != LMQ_OK) {
        seal_row_free(r);
        s->op = SEAL_OP_NONE;
        seal_error(s, "sign", lmq_strerror(rc));
        return;
    }
    s->rows[s->row_count++] = r;
    s->counts[SEAL_SENT]++;
    s->next_nonce++;
    s->last_sealed_size = r->tree_size;
    s->want = false;
    seal_write_attempt(s, r);
}

/* A replacement of the newest row's latest attempt: both fees raised by 12.5% at least (and to
 * what the node asks now when that is more), under the cap. */
static void seal_fees_bump(struct seal *s, uint64_t cap, uint64_t base, uint64_t prio)
{
    struct seal_row *r = s->rows[s->row_count - 1];
    LMQ_ASSERT(r->state == SEAL_SENT && r->attempts < SEAL_ATTEMPTS_MAX);
    struct eth_tx old;
    char why[128] = "";
    if (eth_tx_decode(r->raws[r->current], r->raw_lens[r->current], &old, NULL, NULL, NULL, why,
                      sizeof(why)) != LMQ_OK) {
        s->op = SEAL_OP_NONE;
        seal_error(s, "bump", why);
        return;
    }
    uint64_t old_max = seal_u256_u64(&old.max_fee_per_gas);
    uint64_t old_prio = seal_u256_u64(&old.max_priority_fee_per_gas);
    uint64_t new_prio = LMQ_MAX(seal_scale_up(old_prio, 9, 8), prio);
    uint64_t new_max = LMQ_MAX(seal_scale_up(old_max, 9, 8), seal_max_fee(base, new_prio));
    new_max = LMQ_MIN(new_max, cap);
    new_prio = LMQ_MIN(new_prio, new_max);
    if (new_max < seal_scale_up(old_max, 11, 10) || new_prio < seal_scale_up(old_prio, 11, 10)) {
        s->op = SEAL_OP_NONE;
        r->bump_capped = true;
        seal_error(s, "bump", "no room under [seal] max_fee_gwei for a replacement: waiting");
        return;
    }
    int rc = seal_sign(s, r, new_max, new_prio);
    if (rc != LMQ_OK) {
        s->op = SEAL_OP_NONE;
        seal_error(s, "sign", lmq_strerror(rc));
        return;
    }
    seal_write_attempt(s, r);
}

static void seal_on_fees(void *ctx, const struct eth_rpc_answer *a)
{
    struct seal_call *c = ctx;
    struct seal *s = c->s;
    LMQ_ASSERT(s->op == SEAL_OP_FEES && s->calls_pending > 0);
    if (c->attempt == 0) { /* the priority fee: a node without the method gets 1 gwei */
        s->ans_prio_ok = a->status == ETH_RPC_OK;
        s->ans_prio = a->quantity;
    } else if (a->status != ETH_RPC_OK) {
        snprintf(s->ans_err, sizeof(s->ans_err), "eth_getBlockByNumber: %s %s",
                 eth_rpc_status_name(a->status), a->message);
        s->ans_failed = true;
    } else {
        s->ans_base = a->block.has_base_fee ? a->block.base_fee_per_gas : 0;
    }
    if (--s->calls_pending > 0)
        return;
    if (s->ans_failed) {
        s->op = SEAL_OP_NONE;
        seal_node_failed(s); /* once per outage, not once per tick */
        return;
    }
    seal_node_ok(s);
    uint64_t cap = seal_scale_up(s->b->cfg.seal.max_fee_gwei, SEAL_WEI_PER_GWEI, 1);
    uint64_t prio = s->ans_prio_ok ? s->ans_prio : SEAL_PRIORITY_FALLBACK_WEI;
    uint64_t max_fee = LMQ_MIN(seal_max_fee(s->ans_base, prio), cap);
    if (s->bumping)
        seal_fees_bump(s, cap, s->ans_base, prio);
    else
        seal_fees_new(s, max_fee, LMQ_MIN(prio, max_fee));
}

void seal_fees_begin(struct seal *s, bool bump)
{
    LMQ_ASSERT(s->op == SEAL_OP_NONE && s->phase == SEAL_PHASE_READY);
    struct eth_rpc_batch *batch = NULL;
    if (eth_rpc_batch_begin(s->rpc, &batch) != LMQ_OK)
        return;
    s->op = SEAL_OP_FEES;
    s->bumping = bump;
    s->ans_failed = false;
    s->calls_pending = 2;
    s->calls[0] = (struct seal_call){.s = s, .attempt = 0};
    s->calls[1] = (struct seal_call){.s = s, .attempt = 1};
    int rc = eth_rpc_max_priority_fee(s->rpc, batch, seal_on_fees, &s->calls[0]);
    if (rc == LMQ_OK)
        rc = eth_rpc_block_by_number(s->rpc, batch, ETH_RPC_BLOCK_LATEST, seal_on_fees,
                                     &s->calls[1]);
    seal_batch_send(s, batch, rc, SEAL_OP_FEES);
}

static void seal_on_sent(void *ctx, const struct eth_rpc_answer *a)
{
    struct seal *s = ctx;
    LMQ_ASSERT(s->op == SEAL_OP_SEND && s->pending_row != NULL);
    struct seal_row *r = s->pending_row;
    s->pending_row = NULL;
    s->op = SEAL_OP_NONE;
    if (a->status == ETH_RPC_OK) {
        struct lmq_log_line line;
        if (lmq_log_begin(&line, LMQ_LOG_INFO, r->attempts > 1 ? "seal_bumped" : "seal_sent")) {
            char hash[67];
            if (eth_hex_encode(r->hashes[r->current], 32, hash, sizeof(hash)) != LMQ_OK)
                hash[0] = '\0';
            lmq_log_uint(&line, "nonce", r->nonce);
            lmq_log_uint(&line, "tree_size", r->tree_size);
            lmq_log_str(&line, "tx_hash", hash);
            lmq_log_uint(&line, "attempt", r->attempts);
            lmq_log_str(&line, "address", s->addr_text);
            lmq_log_end(&line);
        }
        return;
    }
    /* "already known" / "nonce too low": the node has one of our transactions of this nonce,
     * or mined one; the tracking pass looks the hashes up (never signs anew for it). */
    const char *m = a->message;
    bool known = strstr(m, "already known") != NULL || strstr(m, "nonce too low") != NULL ||
                 strstr(m, "known transaction") != NULL;
    if (known)
        return;
    if (a->status == ETH_RPC_RPC_ERROR) {
        /* Refused (funds, fees...): not sent again as it is; a bump re-signs it later. */
        seal_error(s, "send", m[0] != '\0' ? m : eth_rpc_status_name(a->status));
        return;
    }
    r->resend = true; /* no answer: broadcast again on the next pass */
    snprintf(s->ans_err, sizeof(s->ans_err), "eth_sendRawTransaction: %s %s",
             eth_rpc_status_name(a->status), m);
    seal_node_failed(s);
}

void seal_send_durable(struct seal *s)
{
    LMQ_ASSERT(s->op == SEAL_OP_DURABLE && s->pending_row != NULL);
    struct seal_row *r = s->pending_row;
    /* Test hook (docs/PROTOCOL.md "Sealing"): die between the commit and the send. */
    const char *kill = getenv("LMQ_TEST_SEAL_KILL_BEFORE_SEND");
    if (kill != NULL && strcmp(kill, "1") == 0) {
        lmq_log_msgf(LMQ_LOG_WARN, "seal_test_kill", "nonce %" PRIu64 " committed, not sent",
                     r->nonce);
        raise(SIGKILL);
    }
    s->op = SEAL_OP_SEND;
    if (eth_rpc_send_raw_transaction(s->rpc, NULL, r->raws[r->current], r->raw_lens[r->current],
                                     seal_on_sent, s) != LMQ_OK) {
        s->op = SEAL_OP_NONE;
        s->pending_row = NULL;
        r->resend = true;
        seal_error(s, "send", "cannot queue eth_sendRawTransaction");
    }
}
