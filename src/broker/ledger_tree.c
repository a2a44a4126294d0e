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
#include "broker/broker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/proof_json.h"
#include "net/http.h"

/* Acks with receipts per batch before the batch refuses more (each needs a proof). */
#define LEDGER_TREE_ACKS_MAX (1u << 20)
/* Entries one GET /ledger/entries returns at most. */
#define LEDGER_TREE_ENTRIES_MAX 1000
/* An ack with its receipt: the proof (64 hashes at most) and the checkpoint note. */
#define LEDGER_TREE_ACK_MAX_BYTES 8192

struct ledger_tree_level {
    uint64_t first; /* index of nodes[0] */
    size_t count, cap;
    uint8_t (*hashes)[LEDGER_MERKLE_HASH_BYTES];
};

struct ledger_tree_ack {
    char sender[CRYPTO_IDENTITY_ID_BYTES];
    struct ledger_accepted accepted;
};

struct ledger_batch {
    struct ledger_merkle_frontier start; /* the tree when the batch's first append happened */
    struct ledger_merkle_frontier end;   /* the tree when the batch was closed */
    struct ledger_tree_level levels[LEDGER_MERKLE_LEVELS_MAX];
    struct ledger_tree_ack *acks;
    size_t ack_count, ack_cap;
};

struct ledger_tree_source {
    struct broker *broker;
    const struct ledger_batch *batch; /* NULL: store only */
};

static int ledger_tree_get(void *ctx, uint32_t level, uint64_t index,
                           uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    const struct ledger_tree_source *src = ctx;
    LMQ_ASSERT(level < LEDGER_MERKLE_LEVELS_MAX);
    const struct ledger_batch *lb = src->batch;
    if (lb != NULL) {
        const struct ledger_tree_level *lv = &lb->levels[level];
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

static struct ledger_batch *ledger_tree_batch(struct broker *b)
{
    struct commit_batch *batch = broker_current_batch(b);
    if (batch->ledger == NULL) {
        batch->ledger = calloc(1, sizeof(*batch->ledger));
        if (batch->ledger == NULL)
            broker_fail_stop(b, "ledger batch", LMQ_ENOMEM);
        batch->ledger->start = b->tree;
    }
    return batch->ledger;
}

struct ledger_tree_emit {
    struct broker *broker;
    struct ledger_batch *batch;
};

/* A perfect node completed by the append: into the store batch and the batch's own index. */
static int ledger_tree_emit(void *ctx, uint32_t level, uint64_t index,
                            const uint8_t hash[LEDGER_MERKLE_HASH_BYTES])
{
    struct ledger_tree_emit *e = ctx;
    struct ledger_tree_level *lv = &e->batch->levels[level];
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
                               .level = level,
                               .msg_id = index,
                               .link = {hash, LEDGER_MERKLE_HASH_BYTES}};
    broker_store_write(e->broker, &rec);
    return LMQ_OK;
}

void ledger_tree_queue_ack(struct broker *b, const char *sender, const struct ledger_accepted *a)
{
    struct ledger_batch *lb = ledger_tree_batch(b);
    if (lb->ack_count == lb->ack_cap) {
        size_t cap = lb->ack_cap == 0 ? 16 : lb->ack_cap * 2;
        void *p = cap <= LEDGER_TREE_ACKS_MAX ? realloc(lb->acks, cap * sizeof(lb->acks[0])) : NULL;
        if (p == NULL)
            broker_fail_stop(b, "ledger acks", LMQ_ENOMEM);
        lb->acks = p;
        lb->ack_cap = cap;
    }
    struct ledger_tree_ack *ack = &lb->acks[lb->ack_count++];
    memcpy(ack->sender, sender, CRYPTO_IDENTITY_ID_BYTES);
    ack->accepted = *a;
}

int ledger_tree_append(struct broker *b, const char *link_hex)
{
    uint8_t link[LEDGER_MERKLE_HASH_BYTES], leaf[LEDGER_MERKLE_HASH_BYTES];
    size_t n = 0;
    int rc = crypto_hex_decode(link_hex, CRYPTO_IDENTITY_ID_CHARS, link, sizeof(link), &n);
    if (rc != LMQ_OK || n != sizeof(link))
        return LMQ_EINVAL;
    rc = ledger_merkle_leaf_hash(link, sizeof(link), leaf);
    if (rc != LMQ_OK)
        return rc;
    struct ledger_tree_emit e = {.broker = b, .batch = ledger_tree_batch(b)};
    rc = ledger_merkle_append(&b->tree, leaf, ledger_tree_emit, &e);
    LMQ_ASSERT(rc != LMQ_OK || b->tree.size == b->ledger_size + 1);
    return rc;
}

void ledger_tree_close(struct broker *b, struct commit_batch *batch)
{
    if (batch->ledger != NULL)
        batch->ledger->end = b->tree;
}

/* Signs the checkpoint of the tree at size (root given). Keeps the latest only. */
static void ledger_tree_sign(struct broker *b, uint64_t size,
                             const uint8_t root[LEDGER_MERKLE_HASH_BYTES])
{
    char note[1024];
    size_t len = 0;
    int rc = ledger_checkpoint_sign(b->ledger_origin, size, root, b->ledger_origin,
                                    b->server_key.seed, note, sizeof(note), &len);
    if (rc != LMQ_OK)
        broker_fail_stop(b, "checkpoint", rc);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        broker_fail_stop(b, "checkpoint", LMQ_ENOMEM);
    memcpy(copy, note, len + 1);
    free(b->checkpoint);
    b->checkpoint = copy;
    b->checkpoint_len = len;
    b->checkpoint_size = size;
    memcpy(b->checkpoint_root, root, LEDGER_MERKLE_HASH_BYTES);
}

/* Appends s as a JSON string (the note: printable ASCII, UTF-8 em dash, newlines). */
static int ledger_tree_json_string(char *out, size_t cap, size_t *used, const char *s, size_t len)
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

int ledger_tree_proof_json(struct broker *b, const struct ledger_batch *lb, uint64_t index,
                           uint64_t size, char *out, size_t cap, size_t *used)
{
    uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
    size_t count = 0;
    struct ledger_tree_source src = {.broker = b, .batch = lb};
    struct ledger_merkle_source source = {.get = ledger_tree_get, .ctx = &src};
    int rc = ledger_merkle_inclusion_proof(&source, index, size, hashes, &count);
    if (rc != LMQ_OK)
        return rc;
    return ledger_proof_json_encode((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])hashes, count, out,
                                    cap, used);
}

/* The ack with its receipt, canonical JSON (members in code-point order). */
static int ledger_tree_ack_json(struct broker *b, const struct ledger_batch *lb,
                                const struct ledger_accepted *a, char *out, size_t cap, size_t *len)
{
    size_t used = 0;
    int n = snprintf(out, cap,
                     "{\"index\":%" PRIu64 ",\"link\":\"%s\",\"position\":%" PRIu64
                     ",\"receipt\":{\"checkpoint\":",
                     a->index, a->link, a->position);
    if (n < 0 || (size_t)n >= cap)
        return LMQ_ETOOBIG;
    used = (size_t)n;
    int rc = ledger_tree_json_string(out, cap, &used, b->checkpoint, b->checkpoint_len);
    if (rc == LMQ_OK && used + 10 < cap) {
        memcpy(out + used, ",\"proof\":", 9);
        used += 9;
        rc = ledger_tree_proof_json(b, lb, a->index, b->checkpoint_size, out, cap, &used);
    }
    if (rc != LMQ_OK)
        return rc;
    n = snprintf(out + used, cap - used,
                 ",\"tree_size\":%" PRIu64 "},\"seq\":%" PRIu64 ",\"to\":\"%s\"}",
                 b->checkpoint_size, a->seq, a->to);
    if (n < 0 || (size_t)n >= cap - used)
        return LMQ_ETOOBIG;
    *len = used + (size_t)n;
    return LMQ_OK;
}

void ledger_tree_committed(struct broker *b, struct commit_batch *batch)
{
    struct ledger_batch *lb = batch->ledger;
    if (lb == NULL)
        return;
    batch->ledger = NULL;
    if (lb->end.size > b->checkpoint_size || b->checkpoint == NULL) {
        uint8_t root[LEDGER_MERKLE_HASH_BYTES];
        if (ledger_merkle_frontier_root(&lb->end, root) != LMQ_OK)
            broker_fail_stop(b, "tree root", LMQ_ENOMEM);
        ledger_tree_sign(b, lb->end.size, root);
    }
    static char json[LEDGER_TREE_ACK_MAX_BYTES];
    for (size_t i = 0; i < lb->ack_count; i++) {
        size_t len = 0;
        int rc = ledger_tree_ack_json(b, lb, &lb->acks[i].accepted, json, sizeof(json), &len);
        if (rc == LMQ_EIO)
            broker_fail_stop(b, "ledger proof", rc);
        if (rc != LMQ_OK || ledger_publish_ack(b, lb->acks[i].sender, json, len) != LMQ_OK)
            lmq_log_msg(LMQ_LOG_WARN, "ack_not_sent", lb->acks[i].sender);
    }
    for (size_t l = 0; l < LEDGER_MERKLE_LEVELS_MAX; l++)
        free(lb->levels[l].hashes);
    free(lb->acks);
    free(lb);
}

void ledger_tree_batch_free(struct commit_batch *batch)
{
    struct ledger_batch *lb = batch->ledger;
    if (lb == NULL)
        return;
    for (size_t l = 0; l < LEDGER_MERKLE_LEVELS_MAX; l++)
        free(lb->levels[l].hashes);
    free(lb->acks);
    free(lb);
    batch->ledger = NULL;
}

int ledger_tree_recover(struct broker *b)
{
    struct ledger_tree_source src = {.broker = b, .batch = NULL};
    struct ledger_merkle_source source = {.get = ledger_tree_get, .ctx = &src};
    int rc = ledger_merkle_frontier_load(&source, b->ledger_size, &b->tree);
    if (rc != LMQ_OK)
        return rc;
    int n =
        snprintf(b->ledger_origin, sizeof(b->ledger_origin), "ledgermq/%.16s", b->server_key.id);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(b->ledger_origin));
    uint8_t root[LEDGER_MERKLE_HASH_BYTES];
    rc = ledger_merkle_frontier_root(&b->tree, root);
    if (rc == LMQ_OK)
        ledger_tree_sign(b, b->tree.size, root);
    return rc;
}

/* ---- HTTP: GET /ledger/... ---- */

/* Reads the decimal value of name in the query string; false when absent or malformed. */
static bool ledger_query_u64(const struct http_request *req, const char *name, uint64_t *out)
{
    size_t name_len = strlen(name);
    const char *q = req->query;
    size_t len = req->query_len;
    for (size_t i = 0; q != NULL && i < len;) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        if (end - i > name_len && memcmp(q + i, name, name_len) == 0 && q[i + name_len] == '=') {
            uint64_t v = 0;
            size_t digits = end - (i + name_len + 1);
            if (digits == 0 || digits > 19)
                return false;
            for (size_t k = i + name_len + 1; k < end; k++) {
                if (q[k] < '0' || q[k] > '9')
                    return false;
                v = v * 10 + (uint64_t)(q[k] - '0');
            }
            *out = v;
            return true;
        }
        i = end + 1;
    }
    return false;
}

static int ledger_http_error(struct http_response *resp, struct http_buf *out, int status,
                             const char *reason)
{
    resp->status = status;
    resp->content_type = "application/json";
    return http_buf_printf(out, "{\"error\":%d,\"reason\":\"%s\"}", status, reason);
}

static int ledger_http_checkpoint(struct broker *b, struct http_buf *out)
{
    char json[2048], root[48];
    size_t used = 0;
    if (crypto_b64_encode(b->checkpoint_root, LEDGER_MERKLE_HASH_BYTES, root, sizeof(root)) !=
            LMQ_OK ||
        http_buf_printf(out, "{\"checkpoint\":") != LMQ_OK ||
        ledger_tree_json_string(json, sizeof(json), &used, b->checkpoint, b->checkpoint_len) !=
            LMQ_OK)
        return LMQ_ETOOBIG;
    if (http_buf_append(out, json, used) != LMQ_OK)
        return LMQ_ETOOBIG;
    return http_buf_printf(out, ",\"root\":\"%s\",\"size\":%" PRIu64 "}", root, b->checkpoint_size);
}

static int ledger_http_key(struct broker *b, struct http_buf *out)
{
    char vkey[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1], pub[48];
    size_t len = 0;
    if (ledger_checkpoint_vkey_format(b->ledger_origin, b->server_key.pub, vkey, sizeof(vkey),
                                      &len) != LMQ_OK ||
        crypto_b64url_encode(b->server_key.pub, sizeof(b->server_key.pub), pub, sizeof(pub)) !=
            LMQ_OK)
        return LMQ_EINVAL;
    return http_buf_printf(out,
                           "{\"alg\":\"Ed25519\",\"id\":\"%s\",\"name\":\"%s\",\"pub\":\"%s\","
                           "\"vkey\":\"%s\"}",
                           b->server_key.id, b->ledger_origin, pub, vkey);
}

struct ledger_http_entries {
    struct http_buf *out;
    size_t n;
    int rc;
};

static int ledger_http_entry(void *ctx, const struct store_ledger_row *r)
{
    struct ledger_http_entries *e = ctx;
    e->rc |=
        http_buf_printf(e->out, "%s{\"envelope\":%.*s,\"index\":%" PRIu64 ",\"link\":\"%.*s\"}",
                        e->n++ ? "," : "", (int)r->envelope.len, (const char *)r->envelope.data,
                        r->index, (int)r->link.len, (const char *)r->link.data);
    return e->rc;
}

static int ledger_http_entries(struct broker *b, const struct http_request *req,
                               struct http_response *resp, struct http_buf *out)
{
    uint64_t start = 0, count = 100;
    (void)ledger_query_u64(req, "start", &start);
    (void)ledger_query_u64(req, "count", &count);
    if (count == 0 || count > LEDGER_TREE_ENTRIES_MAX)
        return ledger_http_error(resp, out, 400, "count must be 1..1000");
    uint64_t end = LMQ_MIN(b->checkpoint_size, start + count); /* only checkpointed entries */
    struct ledger_http_entries e = {.out = out};
    int rc = http_buf_printf(out, "{\"items\":[");
    size_t got = 0;
    if (rc == LMQ_OK && start < end) {
        rc =
            store_ledger_range(b->store, start, (size_t)(end - start), ledger_http_entry, &e, &got);
        rc = rc != LMQ_OK ? rc : e.rc;
    }
    return rc != LMQ_OK ? rc : http_buf_printf(out, "]}");
}

static int ledger_http_proof(struct broker *b, const struct http_request *req,
                             struct http_response *resp, struct http_buf *out, bool inclusion)
{
    uint64_t a = 0, size = b->checkpoint_size;
    bool have_a = ledger_query_u64(req, inclusion ? "index" : "old", &a);
    (void)ledger_query_u64(req, inclusion ? "size" : "new", &size);
    if (!have_a || size > b->checkpoint_size || (inclusion ? a >= size : a > size))
        return ledger_http_error(resp, out, 400,
                                 inclusion ? "need index < size <= the checkpoint's size"
                                           : "need old <= new <= the checkpoint's size");
    static char json[LEDGER_TREE_ACK_MAX_BYTES];
    size_t used = 0;
    int rc;
    if (inclusion) {
        rc = ledger_tree_proof_json(b, NULL, a, size, json, sizeof(json), &used);
    } else {
        uint8_t hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
        size_t count = 0;
        struct ledger_tree_source src = {.broker = b, .batch = NULL};
        struct ledger_merkle_source source = {.get = ledger_tree_get, .ctx = &src};
        rc = ledger_merkle_consistency_proof(&source, a, size, hashes, &count);
        if (rc == LMQ_OK)
            rc = ledger_proof_json_encode((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])hashes, count,
                                          json, sizeof(json), &used);
    }
    if (rc != LMQ_OK)
        return rc;
    if (inclusion)
        return http_buf_printf(out, "{\"index\":%" PRIu64 ",\"proof\":%.*s,\"size\":%" PRIu64 "}",
                               a, (int)used, json, size);
    return http_buf_printf(out, "{\"new\":%" PRIu64 ",\"old\":%" PRIu64 ",\"proof\":%.*s}", size, a,
                           (int)used, json);
}

int ledger_http_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                      struct http_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL);
    static const char *const paths[] = {"/ledger/checkpoint", "/ledger/key",
                                        "/ledger/proof/inclusion", "/ledger/proof/consistency",
                                        "/ledger/entries"};
    size_t which = LMQ_ARRAY_LEN(paths);
    for (size_t i = 0; i < LMQ_ARRAY_LEN(paths); i++) {
        if (req->path_len == strlen(paths[i]) && memcmp(req->path, paths[i], req->path_len) == 0)
            which = i;
    }
    if (which == LMQ_ARRAY_LEN(paths)) {
        resp->status = 404;
        return 0;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->status = 405;
        resp->allow = "GET, HEAD";
        return 0;
    }
    if (b->store == NULL || b->checkpoint == NULL)
        return ledger_http_error(resp, out, 503, "Service Unavailable");
    resp->content_type = "application/json";
    switch (which) {
    case 0:
        return ledger_http_checkpoint(b, out);
    case 1:
        return ledger_http_key(b, out);
    case 2:
    case 3:
        return ledger_http_proof(b, req, resp, out, which == 2);
    default:
        return ledger_http_entries(b, req, resp, out);
    }
}
