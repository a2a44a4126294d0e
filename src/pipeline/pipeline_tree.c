/*
 * The ledger's Merkle tree on the broker: every accepted envelope's link becomes a leaf
 * (RFC 9162 hashing), appended in memory (the frontier) with its new perfect nodes written to
 * the same store batch as the envelope. When a batch is durable the broker signs a checkpoint of
 * the tree (C2SP signed note) and sends each ack of the batch with its receipt: the inclusion
 * proof of its envelope in that checkpoint.
 *
 * Proofs for a batch's envelopes need no store reads in the common case: the nodes the batch
 * emitted are kept with it (per level their indexes are consecutive), and the nodes completed
 * before the batch that its leaves' paths touch are the frontier at the batch's start. Anything
 * else (a resend of an older envelope, a proof over HTTP) is read from the store.
 */
#include "pipeline/pipeline_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/proof_json.h"

/* Acks with receipts per batch before the batch refuses more (each needs a proof). */
#define LEDGER_TREE_ACKS_MAX (1u << 20)
/* An ack with its receipt: the proof (64 hashes at most) and the checkpoint note. */
#define LEDGER_TREE_ACK_MAX_BYTES 8192

struct pipeline_tree_level {
    uint64_t first; /* index of nodes[0] */
    size_t count, cap;
    uint8_t (*hashes)[LEDGER_MERKLE_HASH_BYTES];
};

struct pipeline_tree_ack {
    char sender[CRYPTO_IDENTITY_ID_BYTES];
    struct pipeline_accepted accepted;
    pipeline_sent_fn sent; /* NULL: published on the sender's ack topic */
    void *sent_ctx;
};

struct pipeline_tree_batch {
    struct ledger_merkle_frontier start; /* the tree when the batch's first append happened */
    struct ledger_merkle_frontier end;   /* the tree when the batch was closed */
    struct pipeline_tree_level levels[LEDGER_MERKLE_LEVELS_MAX];
    struct pipeline_tree_ack *acks;
    size_t ack_count, ack_cap;
};

struct pipeline_tree_source {
    struct broker *broker;
    const struct pipeline_tree_batch *batch; /* NULL: store only */
};

static int pipeline_tree_get(void *ctx, uint32_t level, uint64_t index,
                             uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    const struct pipeline_tree_source *src = ctx;
    LMQ_ASSERT(level < LEDGER_MERKLE_LEVELS_MAX);
    const struct pipeline_tree_batch *lb = src->batch;
    if (lb != NULL) {
        const struct pipeline_tree_level *lv = &lb->levels[level];
        if (index >= lv->first && index - lv->first < lv->count) {
            memcpy(out, lv->hashes[index - lv->first], LEDGER_MERKLE_HASH_BYTES);
            return LMQ_OK;
        }
        uint64_t size = lb->start.size;
        if (((size >> level) & 1) && index == (size >> level) - 1) {
            memcpy(out, lb->start.hashes[level], LEDGER_MERKLE_HASH_BYTES);
            return LMQ_OK;
        }
    }
    return store_ledger_node(src->broker->store, level, index, out);
}

/* The open commit batch's tree state (the pipeline's commit hook slot), made at its first
 * append or ack. */
static struct pipeline_tree_batch *pipeline_tree_open_batch(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    void **slot = commit_hook_data(b, p->commit_slot);
    struct pipeline_tree_batch *lb = *slot;
    if (lb == NULL) {
        lb = calloc(1, sizeof(*lb));
        if (lb == NULL)
            broker_fail_stop(b, "ledger batch", LMQ_ENOMEM);
        lb->start = p->tree;
        *slot = lb;
    }
    return lb;
}

struct pipeline_tree_emit {
    struct broker *broker;
    struct pipeline_tree_batch *batch;
};

/* A perfect node completed by the append: into the store batch and the batch's own index. */
static int pipeline_tree_emit(void *ctx, uint32_t level, uint64_t index,
                              const uint8_t hash[LEDGER_MERKLE_HASH_BYTES])
{
    struct pipeline_tree_emit *e = ctx;
    struct pipeline_tree_level *lv = &e->batch->levels[level];
    if (lv->count == 0)
        lv->first = index;
    LMQ_ASSERT(index == lv->first + lv->count); /* per level, a batch completes a run */
    if (lv->count == lv->cap) {
        size_t cap = lv->cap == 0 ? 16 : lv->cap * 2;
        void *p = realloc(lv->hashes, cap * sizeof(lv->hashes[0]));
        if (p == NULL)
            return LMQ_ENOMEM;
        lv->hashes = p;
        lv->cap = cap;
    }
    memcpy(lv->hashes[lv->count++], hash, LEDGER_MERKLE_HASH_BYTES);
    struct store_record rec = {.type = STORE_LEDGER_NODE,
                               .u.ledger_node = {.level = level,
                                                 .index = index,
                                                 .hash = {hash, LEDGER_MERKLE_HASH_BYTES}}};
    commit_store_write(e->broker, &rec);
    return LMQ_OK;
}

void pipeline_tree_queue_ack(struct broker *b, const char *sender,
                             const struct pipeline_accepted *a, pipeline_sent_fn sent, void *ctx)
{
    struct pipeline_tree_batch *lb = pipeline_tree_open_batch(b);
    if (lb->ack_count == lb->ack_cap) {
        size_t cap = lb->ack_cap == 0 ? 16 : lb->ack_cap * 2;
        void *p = cap <= LEDGER_TREE_ACKS_MAX ? realloc(lb->acks, cap * sizeof(lb->acks[0])) : NULL;
        if (p == NULL)
            broker_fail_stop(b, "ledger acks", LMQ_ENOMEM);
        lb->acks = p;
        lb->ack_cap = cap;
    }
    struct pipeline_tree_ack *ack = &lb->acks[lb->ack_count++];
    memcpy(ack->sender, sender, CRYPTO_IDENTITY_ID_BYTES);
    ack->accepted = *a;
    ack->sent = sent;
    ack->sent_ctx = ctx;
}

int pipeline_tree_append(struct broker *b, const char *link_hex)
{
    struct pipeline *p = b->pipeline;
    uint8_t link[LEDGER_MERKLE_HASH_BYTES], leaf[LEDGER_MERKLE_HASH_BYTES];
    size_t n = 0;
    int rc = crypto_hex_decode(link_hex, CRYPTO_IDENTITY_ID_CHARS, link, sizeof(link), &n);
    if (rc != LMQ_OK || n != sizeof(link))
        return LMQ_EINVAL;
    rc = ledger_merkle_leaf_hash(link, sizeof(link), leaf);
    if (rc != LMQ_OK)
        return rc;
    struct pipeline_tree_emit e = {.broker = b, .batch = pipeline_tree_open_batch(b)};
    rc = ledger_merkle_append(&p->tree, leaf, pipeline_tree_emit, &e);
    LMQ_ASSERT(rc != LMQ_OK || p->tree.size == p->ledger_size + 1);
    return rc;
}

void pipeline_tree_close(struct broker *b, struct pipeline_tree_batch *lb)
{
    if (lb != NULL)
        lb->end = b->pipeline->tree;
}

/* Signs the checkpoint of the tree at size (root given). Keeps the latest only. */
static void pipeline_tree_sign(struct broker *b, uint64_t size,
                               const uint8_t root[LEDGER_MERKLE_HASH_BYTES])
{
    struct pipeline *p = b->pipeline;
    char note[1024];
    size_t len = 0;
    int rc = ledger_checkpoint_sign(p->ledger_origin, size, root, p->ledger_origin,
                                    p->server_key.seed, note, sizeof(note), &len);
    if (rc != LMQ_OK)
        broker_fail_stop(b, "checkpoint", rc);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        broker_fail_stop(b, "checkpoint", LMQ_ENOMEM);
    memcpy(copy, note, len + 1);
    free(p->checkpoint);
    p->checkpoint = copy;
    p->checkpoint_len = len;
    p->checkpoint_size = size;
    memcpy(p->checkpoint_root, root, LEDGER_MERKLE_HASH_BYTES);
}

/* A tree size in decimal: digits only, no leading zero, at most INT64_MAX. */
static bool pipeline_tree_decimal(const char *text, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19 || (len > 1 && text[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(text[i] - '0'); /* 19 digits cannot overflow 64 bits */
    }
    *out = v;
    return v <= INT64_MAX;
}

int pipeline_checkpoint_size(const struct broker *b, const char *text, size_t len, uint64_t *size,
                             char *why, size_t why_len)
{
    LMQ_ASSERT(b != NULL && b->pipeline != NULL && size != NULL && why != NULL && why_len > 0);
    const struct pipeline *p = b->pipeline;
    why[0] = '\0';
    *size = 0;
    uint64_t n = 0;
    if (text == NULL || len == 0 || len > PIPELINE_CHECKPOINT_TEXT_MAX_BYTES) {
        snprintf(why, why_len, "checkpoint: a signed checkpoint note or a tree size");
        return LMQ_EINVAL;
    }
    if (text[0] >= '0' && text[0] <= '9') {
        if (!pipeline_tree_decimal(text, len, &n)) {
            snprintf(why, why_len, "checkpoint: a tree size is a decimal integer");
            return LMQ_EINVAL;
        }
    } else {
        struct ledger_checkpoint *cp = malloc(sizeof(*cp)); /* 16 signatures: ~2 KiB */
        enum ledger_checkpoint_verdict verdict = LEDGER_CHECKPOINT_MALFORMED;
        int rc = cp != NULL ? ledger_checkpoint_verify(text, len, p->ledger_origin,
                                                       p->server_key.pub, cp, &verdict)
                            : LMQ_ENOMEM;
        bool same_origin = rc == LMQ_OK && strcmp(cp->origin, p->ledger_origin) == 0;
        n = rc == LMQ_OK ? cp->size : 0;
        free(cp);
        if (rc != LMQ_OK || !same_origin) {
            snprintf(why, why_len, "checkpoint: not this server's (%s)",
                     rc == LMQ_ENOMEM ? "out of memory"
                     : rc != LMQ_OK   ? ledger_checkpoint_verdict_str(verdict)
                                      : "another origin");
            return LMQ_EINVAL;
        }
    }
    if (n > p->checkpoint_size) {
        snprintf(why, why_len,
                 "checkpoint: size %" PRIu64 " is beyond the latest checkpoint (size %" PRIu64 ")",
                 n, p->checkpoint_size);
        return LMQ_EINVAL;
    }
    *size = n;
    return LMQ_OK;
}

int pipeline_tree_json_string(char *out, size_t cap, size_t *used, const char *s, size_t len)
{
    if (*used + 2 > cap)
        return LMQ_ETOOBIG;
    out[(*used)++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = ch == '\n' ? "\\n" : ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : NULL;
        size_t need = esc ? 2 : 1;
        if (*used + need + 1 > cap || (ch < 0x20 && esc == NULL))
            return LMQ_ETOOBIG;
        memcpy(out + *used, esc ? esc : (const char *)&s[i], need);
        *used += need;
    }
    out[(*used)++] = '"';
    return LMQ_OK;
}

int pipeline_tree_proof_json(struct broker *b, const struct pipeline_tree_batch *lb, uint64_t index,
                             uint64_t size, char *out, size_t cap, size_t *used)
{
    uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
    size_t count = 0;
    struct pipeline_tree_source src = {.broker = b, .batch = lb};
    struct ledger_merkle_source source = {.get = pipeline_tree_get, .ctx = &src};
    int rc = ledger_merkle_inclusion_proof(&source, index, size, hashes, &count);
    if (rc != LMQ_OK)
        return rc;
    return ledger_proof_json_encode((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])hashes, count, out,
                                    cap, used);
}

/* The ack with its receipt, canonical JSON (members in code-point order). */
static int pipeline_tree_ack_json(struct broker *b, const struct pipeline_tree_batch *lb,
                                  const struct pipeline_accepted *a, char *out, size_t cap,
                                  size_t *len)
{
    struct pipeline *p = b->pipeline;
    size_t used = 0;
    int n = snprintf(out, cap,
                     "{\"index\":%" PRIu64 ",\"link\":\"%s\",\"position\":%" PRIu64
                     ",\"receipt\":{\"checkpoint\":",
                     a->index, a->link, a->position);
    if (n < 0 || (size_t)n >= cap)
        return LMQ_ETOOBIG;
    used = (size_t)n;
    int rc = pipeline_tree_json_string(out, cap, &used, p->checkpoint, p->checkpoint_len);
    if (rc == LMQ_OK && used + 10 < cap) {
        memcpy(out + used, ",\"proof\":", 9);
        used += 9;
        rc = pipeline_tree_proof_json(b, lb, a->index, p->checkpoint_size, out, cap, &used);
    }
    if (rc != LMQ_OK)
        return rc;
    n = snprintf(out + used, cap - used,
                 ",\"tree_size\":%" PRIu64 "},\"seq\":%" PRIu64 ",\"to\":\"%s\"}",
                 p->checkpoint_size, a->seq, a->to);
    if (n < 0 || (size_t)n >= cap - used)
        return LMQ_ETOOBIG;
    *len = used + (size_t)n;
    return LMQ_OK;
}

void pipeline_tree_committed(struct broker *b, struct pipeline_tree_batch *lb)
{
    if (lb == NULL)
        return;
    if (lb->end.size > b->pipeline->checkpoint_size || b->pipeline->checkpoint == NULL) {
        uint8_t root[LEDGER_MERKLE_HASH_BYTES];
        if (ledger_merkle_frontier_root(&lb->end, root) != LMQ_OK)
            broker_fail_stop(b, "tree root", LMQ_ENOMEM);
        pipeline_tree_sign(b, lb->end.size, root);
    }
    static char json[LEDGER_TREE_ACK_MAX_BYTES];
    for (size_t i = 0; i < lb->ack_count; i++) {
        size_t len = 0;
        struct pipeline_tree_ack *ack = &lb->acks[i];
        int rc = pipeline_tree_ack_json(b, lb, &ack->accepted, json, sizeof(json), &len);
        if (rc == LMQ_EIO)
            broker_fail_stop(b, "ledger proof", rc);
        if (ack->sent != NULL) {
            pipeline_sent_fn sent = ack->sent;
            ack->sent = NULL; /* called once */
            sent(ack->sent_ctx, rc == LMQ_OK ? json : NULL, rc == LMQ_OK ? len : 0);
        } else if (rc != LMQ_OK || pipeline_publish_ack(b, ack->sender, json, len) != LMQ_OK) {
            lmq_log_msg(LMQ_LOG_WARN, "ack_not_sent", ack->sender);
        }
    }
}

void pipeline_tree_batch_free(struct pipeline_tree_batch *lb)
{
    if (lb == NULL)
        return;
    for (size_t l = 0; l < LEDGER_MERKLE_LEVELS_MAX; l++)
        free(lb->levels[l].hashes);
    for (size_t i = 0; i < lb->ack_count; i++) { /* the batch never became durable */
        if (lb->acks[i].sent != NULL)
            lb->acks[i].sent(lb->acks[i].sent_ctx, NULL, 0);
    }
    free(lb->acks);
    free(lb);
}

int pipeline_tree_recover(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    struct pipeline_tree_source src = {.broker = b, .batch = NULL};
    struct ledger_merkle_source source = {.get = pipeline_tree_get, .ctx = &src};
    int rc = ledger_merkle_frontier_load(&source, p->ledger_size, &p->tree);
    if (rc != LMQ_OK)
        return rc;
    int n =
        snprintf(p->ledger_origin, sizeof(p->ledger_origin), "ledgermq/%.16s", p->server_key.id);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(p->ledger_origin));
    uint8_t root[LEDGER_MERKLE_HASH_BYTES];
    rc = ledger_merkle_frontier_root(&p->tree, root);
    if (rc == LMQ_OK)
        pipeline_tree_sign(b, p->tree.size, root);
    return rc;
}

int pipeline_tree_consistency_json(struct broker *b, uint64_t old, uint64_t size, char *out,
                                   size_t cap, size_t *used)
{
    LMQ_ASSERT(old <= size && size <= b->pipeline->checkpoint_size);
    uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
    size_t count = 0;
    struct pipeline_tree_source src = {.broker = b, .batch = NULL};
    struct ledger_merkle_source source = {.get = pipeline_tree_get, .ctx = &src};
    int rc = ledger_merkle_consistency_proof(&source, old, size, hashes, &count);
    if (rc != LMQ_OK)
        return rc;
    return ledger_proof_json_encode((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])hashes, count, out,
                                    cap, used);
}
