/*
 * Contract interest and notifications (docs/PROTOCOL.md "Chain follower"). An identity asks
 * with an envelope to the server of type ledgermq.chain.watch and ends it with
 * ledgermq.chain.unwatch; the pipeline's envelope hook checks the body (a bad one is rejected
 * with reason "bad_watch") and stores the watch in the envelope's own batch. The follower sends
 * each watcher of a log a server-signed ledgermq.chain.log envelope, then
 * ledgermq.chain.confirmed once the block is `confirmations` deep, or ledgermq.chain.retracted
 * when a reorg removed the block. Each is written with its chain_notices row in one batch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/chain_internal.h"
#include "crypto/hash.h"
#include "eth/eth_abi.h"
#include "eth/eth_hex.h"
#include "ledger/envelope.h"
#include "pipeline/pipeline.h"

#define CHAIN_WATCH_TYPE "ledgermq.chain.watch"
#define CHAIN_UNWATCH_TYPE "ledgermq.chain.unwatch"
#define CHAIN_LOG_TYPE "ledgermq.chain.log"
#define CHAIN_CONFIRMED_TYPE "ledgermq.chain.confirmed"
#define CHAIN_RETRACTED_TYPE "ledgermq.chain.retracted"
/* Notices read per page (retractions, confirmations). */
#define CHAIN_NOTICE_PAGE 256
#define CHAIN_LINK_CHARS 64

enum { CHAIN_SENT_LOG = 0, CHAIN_SENT_CONFIRMED = 1, CHAIN_SENT_RETRACTED = 2 };

static void chain_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

static json_t *chain_hex_json(const uint8_t *data, size_t len)
{
    char *text = malloc(2 * len + 3);
    if (text == NULL)
        return NULL;
    text[0] = '0', text[1] = 'x';
    chain_hex(data, len, text + 2);
    json_t *j = json_string(text);
    free(text);
    return j;
}

/* Copies at most max bytes of b (a row slice, NULL when empty) into dst. */
static void chain_copy(void *dst, struct lmq_bytes b, size_t max)
{
    size_t n = LMQ_MIN(b.len, max);
    if (n > 0)
        memcpy(dst, b.data, n);
}

/* ---- Watches ---- */

static bool chain_watch_same(const struct chain_watch *a, const struct chain_watch *b)
{
    return strcmp(a->identity, b->identity) == 0 && memcmp(a->address, b->address, 20) == 0 &&
           a->has_topic0 == b->has_topic0 &&
           (!a->has_topic0 || memcmp(a->topic0, b->topic0, 32) == 0);
}

static size_t chain_watch_find(const struct chain *c, const struct chain_watch *w)
{
    for (size_t i = 0; i < c->watch_count; i++)
        if (chain_watch_same(&c->watches[i], w))
            return i;
    return SIZE_MAX;
}

static bool chain_watch_is_ours(struct chain *c, const struct ledger_envelope *env, bool *watch)
{
    const char *server = pipeline_server_id(c->broker);
    if (server == NULL || strcmp(env->to, server) != 0)
        return false;
    *watch = strcmp(env->type, CHAIN_WATCH_TYPE) == 0;
    return *watch || strcmp(env->type, CHAIN_UNWATCH_TYPE) == 0;
}

static bool chain_watch_check(void *ctx, const struct ledger_envelope *env, const char *link,
                              struct pipeline_refusal *refusal)
{
    LMQ_UNUSED(link);
    struct chain *c = ctx;
    bool watch = false;
    if (!chain_watch_is_ours(c, env, &watch))
        return true;
    struct chain_watch w;
    const char *why = chain_watch_parse(env->body.data, env->body.len, watch, &w);
    if (why != NULL) {
        refusal->reason = "bad_watch";
        refusal->detail = why;
        return false;
    }
    if (!watch)
        return true;
    memcpy(w.identity, env->from, CHAIN_ID_CHARS + 1);
    if (chain_watch_find(c, &w) != SIZE_MAX)
        return true; /* a replacement */
    size_t mine = 0;
    for (size_t i = 0; i < c->watch_count; i++)
        mine += strcmp(c->watches[i].identity, env->from) == 0;
    if (mine >= CHAIN_WATCHES_PER_IDENTITY_MAX || c->watch_count >= CHAIN_WATCHES_MAX) {
        refusal->reason = "too_many_watches";
        refusal->detail = mine >= CHAIN_WATCHES_PER_IDENTITY_MAX
                              ? "64 watches per identity at most"
                              : "the server holds 4096 watches at most";
        return false;
    }
    return true;
}

static struct lmq_bytes chain_bytes(const char *s)
{
    return (struct lmq_bytes){.data = (const uint8_t *)s, .len = strlen(s)};
}

static int chain_watch_appended(void *ctx, const struct ledger_envelope *env, const char *link,
                                uint64_t index)
{
    LMQ_UNUSED(link), LMQ_UNUSED(index);
    struct chain *c = ctx;
    bool watch = false;
    if (!chain_watch_is_ours(c, env, &watch))
        return LMQ_OK;
    struct chain_watch w;
    if (chain_watch_parse(env->body.data, env->body.len, watch, &w) != NULL)
        return LMQ_OK; /* check refused it: not reached */
    memcpy(w.identity, env->from, CHAIN_ID_CHARS + 1);
    struct store_record rec = {.type = watch ? STORE_CHAIN_WATCH_PUT : STORE_CHAIN_WATCH_DELETE};
    rec.u.chain_watch = (struct store_rec_chain_watch){
        .identity = chain_bytes(w.identity),
        .address = {w.address, 20},
        .topic0 = {w.topic0, w.has_topic0 ? 32u : 0u},
        .abi = chain_bytes(w.event),
        .created_unix_ms = clock_unix_ms(c->broker),
    };
    commit_store_write(c->broker, &rec);
    size_t at = chain_watch_find(c, &w);
    if (!watch) {
        if (at != SIZE_MAX)
            c->watches[at] = c->watches[--c->watch_count];
        return LMQ_OK;
    }
    if (at != SIZE_MAX) {
        c->watches[at] = w;
        return LMQ_OK;
    }
    LMQ_ASSERT(c->watch_count < CHAIN_WATCHES_MAX);
    c->watches[c->watch_count++] = w;
    return LMQ_OK;
}

int chain_notify_init(struct chain *c)
{
    LMQ_ASSERT(c != NULL && c->watches == NULL);
    c->watches = calloc(CHAIN_WATCHES_MAX, sizeof(*c->watches));
    if (c->watches == NULL)
        return LMQ_ENOMEM;
    struct pipeline_envelope_hook hook = {
        .name = "chain", .check = chain_watch_check, .appended = chain_watch_appended, .ctx = c};
    return pipeline_envelope_hook_register(c->broker, &hook);
}

static int chain_watch_row(void *ctx, const struct store_rec_chain_watch *r)
{
    struct chain *c = ctx;
    if (c->watch_count >= CHAIN_WATCHES_MAX || r->identity.len != CHAIN_ID_CHARS ||
        r->address.len != 20 || r->abi.len > CHAIN_EVENT_MAX_CHARS)
        return 1;
    struct chain_watch *w = &c->watches[c->watch_count++];
    memset(w, 0, sizeof(*w));
    memcpy(w->identity, r->identity.data, CHAIN_ID_CHARS);
    memcpy(w->address, r->address.data, 20);
    w->has_topic0 = r->topic0.len == 32;
    if (w->has_topic0)
        memcpy(w->topic0, r->topic0.data, 32);
    chain_copy(w->event, r->abi, CHAIN_EVENT_MAX_CHARS);
    return 0;
}

int chain_notify_load(struct chain *c)
{
    struct store_rec_chain_watch after = {0};
    size_t n = 0;
    int rc =
        store_chain_watches(c->broker->store, &after, CHAIN_WATCHES_MAX, chain_watch_row, c, &n);
    return rc == LMQ_OK ? LMQ_OK : LMQ_EIO;
}

size_t chain_notify_addresses(const struct chain *c, uint8_t (*out)[20], size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < c->watch_count; i++) {
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = memcmp(out[k], c->watches[i].address, 20) == 0;
        if (!seen && n < cap)
            memcpy(out[n++], c->watches[i].address, 20);
    }
    return n;
}

/* ---- Sending ---- */

static void chain_sent(void *ctx, const char *ack, size_t ack_len)
{
    LMQ_UNUSED(ctx), LMQ_UNUSED(ack), LMQ_UNUSED(ack_len);
}

/* Sends body (taken over) to `to` as a server-signed envelope of type; its link into link.
 * LMQ_OK, or an error (logged): then nothing was sent. */
static int chain_send(struct chain *c, const char *to, const char *type, json_t *body,
                      char link[CHAIN_LINK_CHARS + 1])
{
    if (body == NULL)
        return LMQ_ENOMEM;
    struct pipeline_server_envelope e = {.to = to, .type = type, .body = body, .sent = chain_sent};
    struct pipeline_refusal refusal = {0};
    c->scratch.len = 0;
    int rc = pipeline_server_send(c->broker, &e, &refusal, &c->scratch);
    json_decref(body);
    if (rc != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "chain_notify_refused", "%s to %s: %s", type, to,
                     rc == LMQ_EPROTO && refusal.reason != NULL ? refusal.reason : "error");
        if (rc == LMQ_EPROTO)
            json_decref(refusal.members);
        return rc;
    }
    uint8_t digest[CRYPTO_SHA256_BYTES];
    if (crypto_sha256(c->scratch.data, c->scratch.len, digest) != LMQ_OK)
        return LMQ_ENOMEM;
    chain_hex(digest, 32, link);
    return LMQ_OK;
}

static void chain_notice_put(struct chain *c, const struct store_rec_chain_notice *n,
                             const char *state, const char *link)
{
    struct store_record rec = {.type = STORE_CHAIN_NOTICE_PUT};
    rec.u.chain_notice = *n;
    rec.u.chain_notice.state = chain_bytes(state);
    rec.u.chain_notice.link = chain_bytes(link);
    commit_store_write(c->broker, &rec);
}

/* "decoded" (or "decode_error") when the watch names an event and the log is one. */
static void chain_decode(const struct chain_watch *w, const struct eth_log *l, json_t *body)
{
    static struct eth_abi_sig sig; /* large: loop thread only */
    char err[160];
    if (w->event[0] == '\0' || l->topic_count == 0 || memcmp(l->topics[0], w->topic0, 32) != 0)
        return;
    json_t *args = NULL;
    if (eth_abi_parse(w->event, &sig, err, sizeof(err)) == LMQ_OK &&
        eth_abi_decode_log(&sig, (const uint8_t(*)[32])l->topics, l->topic_count, l->data,
                           l->data_len, &args, err, sizeof(err)) == LMQ_OK)
        json_object_set_new(body, "decoded", args);
    else
        json_object_set_new(body, "decode_error", json_string(err));
}

static json_t *chain_log_body(struct chain *c, const struct eth_log *l)
{
    json_t *topics = json_array();
    for (size_t i = 0; topics != NULL && i < l->topic_count; i++)
        json_array_append_new(topics, chain_hex_json(l->topics[i], 32));
    return json_pack("{s:I,s:I,s:o,s:o,s:I,s:o,s:o,s:o}", "chain_id", (json_int_t)c->chain_id,
                     "block_number", (json_int_t)l->block_number, "block_hash",
                     chain_hex_json(l->block_hash, 32), "tx_hash", chain_hex_json(l->tx_hash, 32),
                     "log_index", (json_int_t)l->log_index, "address",
                     chain_hex_json(l->address, 20), "topics", topics, "data",
                     chain_hex_json(l->data, l->data_len));
}

static bool chain_watch_matches(const struct chain_watch *w, const struct eth_log *l)
{
    return memcmp(w->address, l->address, 20) == 0 &&
           (!w->has_topic0 || (l->topic_count > 0 && memcmp(w->topic0, l->topics[0], 32) == 0));
}

size_t chain_notify_block(struct chain *c, const struct eth_block_header *h,
                          const struct chain_log *logs, size_t log_count)
{
    LMQ_ASSERT(c != NULL && h != NULL);
    size_t sent = 0;
    for (size_t i = 0; i < log_count; i++) {
        const struct eth_log *l = &logs[i].log;
        LMQ_ASSERT(l->block_number == h->number && memcmp(l->block_hash, h->hash, 32) == 0);
        for (size_t k = 0; k < c->watch_count; k++) {
            const struct chain_watch *w = &c->watches[k];
            if (!chain_watch_matches(w, l))
                continue;
            /* One notice per (log, identity): a second watch of the same identity matching
             * the same log (address-wide and by topic) does not notify it twice. */
            bool earlier = false;
            for (size_t j = 0; j < k && !earlier; j++)
                earlier = strcmp(c->watches[j].identity, w->identity) == 0 &&
                          chain_watch_matches(&c->watches[j], l);
            if (earlier)
                continue;
            json_t *body = chain_log_body(c, l);
            if (body != NULL)
                chain_decode(w, l, body);
            char link[CHAIN_LINK_CHARS + 1];
            if (chain_send(c, w->identity, CHAIN_LOG_TYPE, body, link) != LMQ_OK)
                continue;
            struct store_rec_chain_notice n = {
                .block_number = l->block_number,
                .block_hash = {l->block_hash, 32},
                .log_index = (uint32_t)l->log_index,
                .identity = chain_bytes(w->identity),
                .tx_hash = {l->tx_hash, 32},
            };
            chain_notice_put(c, &n, "notified", link);
            c->notices_sent[CHAIN_SENT_LOG]++;
            sent++;
        }
    }
    return sent;
}

/* ---- Confirmations and retractions ---- */

struct chain_notice_copy {
    uint64_t block_number;
    uint8_t block_hash[32];
    uint32_t log_index;
    char identity[CHAIN_ID_CHARS + 1];
    uint8_t tx_hash[32];
    char state[16];
    char link[CHAIN_LINK_CHARS + 1];
};

struct chain_notice_page {
    struct chain_notice_copy rows[CHAIN_NOTICE_PAGE];
    size_t count;
    uint64_t to_number; /* rows past this block are not copied */
    bool past;
};

static int chain_notice_row(void *ctx, const struct store_rec_chain_notice *n)
{
    struct chain_notice_page *p = ctx;
    LMQ_ASSERT(p->count < CHAIN_NOTICE_PAGE);
    if (n->block_number > p->to_number) {
        p->past = true;
        return 0;
    }
    struct chain_notice_copy *r = &p->rows[p->count++];
    memset(r, 0, sizeof(*r));
    r->block_number = n->block_number;
    chain_copy(r->block_hash, n->block_hash, 32);
    r->log_index = n->log_index;
    chain_copy(r->identity, n->identity, CHAIN_ID_CHARS);
    chain_copy(r->tx_hash, n->tx_hash, 32);
    chain_copy(r->state, n->state, sizeof(r->state) - 1);
    chain_copy(r->link, n->link, CHAIN_LINK_CHARS);
    return 0;
}

/* Sends type about r (state "confirmed" or "retracted"); updates its notice. */
static int chain_notice_follow_up(struct chain *c, const struct chain_notice_copy *r,
                                  const char *type, const char *state, int kind)
{
    json_t *body = json_pack(
        "{s:I,s:I,s:o,s:o,s:I,s:s}", "chain_id", (json_int_t)c->chain_id, "block_number",
        (json_int_t)r->block_number, "block_hash", chain_hex_json(r->block_hash, 32), "tx_hash",
        chain_hex_json(r->tx_hash, 32), "log_index", (json_int_t)r->log_index, "notice", r->link);
    if (body != NULL && kind == CHAIN_SENT_CONFIRMED)
        json_object_set_new(body, "confirmations",
                            json_integer((json_int_t)c->broker->cfg.chain.confirmations));
    char link[CHAIN_LINK_CHARS + 1];
    int rc = chain_send(c, r->identity, type, body, link);
    if (rc != LMQ_OK)
        return rc == LMQ_ENOMEM ? rc : LMQ_OK; /* refused: logged, the notice stays */
    struct store_rec_chain_notice n = {
        .block_number = r->block_number,
        .block_hash = {r->block_hash, 32},
        .log_index = r->log_index,
        .identity = chain_bytes(r->identity),
        .tx_hash = {r->tx_hash, 32},
    };
    chain_notice_put(c, &n, state, link);
    c->notices_sent[kind]++;
    return LMQ_OK;
}

/* Visits the committed notices of blocks from..to not in state skip_a/skip_b; sends each a
 * follow-up. The notices are paged (copied out of each read before sending). */
static int chain_notices_visit(struct chain *c, uint64_t from, uint64_t to, const char *type,
                               const char *state, int kind)
{
    static struct chain_notice_page page;
    struct store_rec_chain_notice after = {0};
    struct chain_notice_copy last;
    bool have_after = false;
    for (size_t guard = 0; guard < SIZE_MAX / 2; guard++) {
        page.count = 0;
        page.to_number = to;
        page.past = false;
        size_t n = 0;
        if (store_chain_notices(c->broker->store, from, have_after ? &after : NULL,
                                CHAIN_NOTICE_PAGE, chain_notice_row, &page, &n) != LMQ_OK)
            return LMQ_EIO;
        for (size_t i = 0; i < page.count; i++) {
            const struct chain_notice_copy *r = &page.rows[i];
            if (strcmp(r->state, "retracted") == 0 || strcmp(r->state, state) == 0)
                continue;
            int rc = chain_notice_follow_up(c, r, type, state, kind);
            if (rc != LMQ_OK)
                return rc;
        }
        if (page.past || n < CHAIN_NOTICE_PAGE || page.count == 0)
            return LMQ_OK;
        last = page.rows[page.count - 1];
        after = (struct store_rec_chain_notice){
            .block_number = last.block_number,
            .block_hash = {last.block_hash, 32},
            .log_index = last.log_index,
            .identity = chain_bytes(last.identity),
        };
        have_after = true;
    }
    return LMQ_OK;
}

int chain_notify_confirm(struct chain *c)
{
    uint64_t depth = c->broker->cfg.chain.confirmations;
    if (!c->have_tip || c->tip + 1 < depth + c->confirm_from || c->tip + 1 < depth)
        return LMQ_OK;
    uint64_t to = c->tip + 1 - depth; /* blocks up to here have `confirmations` blocks on top */
    if (to < c->confirm_from)
        return LMQ_OK;
    uint64_t before = c->notices_sent[CHAIN_SENT_CONFIRMED];
    int rc = chain_notices_visit(c, c->confirm_from, to, CHAIN_CONFIRMED_TYPE, "confirmed",
                                 CHAIN_SENT_CONFIRMED);
    if (rc == LMQ_OK)
        c->confirm_from = to + 1;
    if (c->notices_sent[CHAIN_SENT_CONFIRMED] != before)
        c->written_seq = commit_batch_seq(c->broker);
    return rc;
}

int chain_notify_retract(struct chain *c, uint64_t fork)
{
    LMQ_ASSERT(c->have_tip && fork < c->tip);
    return chain_notices_visit(c, fork + 1, UINT64_MAX, CHAIN_RETRACTED_TYPE, "retracted",
                               CHAIN_SENT_RETRACTED);
}

void chain_identity_pruned(struct broker *b, const char *owner)
{
    struct chain *c = b->chain;
    LMQ_ASSERT(owner != NULL);
    if (c == NULL || strlen(owner) != CHAIN_ID_CHARS ||
        lmq_map_get(b->session_principals, (const uint8_t *)owner, CHAIN_ID_CHARS) != NULL)
        return; /* not an identity, or it still has a stored session */
    size_t ended = 0;
    for (size_t i = c->watch_count; i-- > 0;) {
        struct chain_watch *w = &c->watches[i];
        if (strcmp(w->identity, owner) != 0)
            continue;
        struct store_record rec = {.type = STORE_CHAIN_WATCH_DELETE};
        rec.u.chain_watch = (struct store_rec_chain_watch){
            .identity = chain_bytes(w->identity),
            .address = {w->address, 20},
            .topic0 = {w->topic0, w->has_topic0 ? 32u : 0u},
        };
        commit_store_write(b, &rec);
        c->watches[i] = c->watches[--c->watch_count];
        ended++;
    }
    if (ended == 0)
        return;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "chain_watches_ended")) {
        lmq_log_str(&line, "identity", owner);
        lmq_log_uint(&line, "count", ended);
        lmq_log_str(&line, "why", "session_pruned");
        lmq_log_end(&line);
    }
}
