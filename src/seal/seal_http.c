/*
 * GET /ledger/seals and GET /ledger/seals/cover (docs/PROTOCOL.md "Sealing"): public, like
 * /ledger/checkpoint (what is on a public chain is public). Read from the store's seals table.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto/encoding.h"
#include "eth/eth_hex.h"
#include "net/http.h"
#include "pipeline/pipeline_internal.h"
#include "seal/seal_internal.h"

/* Seals one page lists at most, and when ?limit is not given. */
#define SEAL_HTTP_LIMIT_MAX 1000
#define SEAL_HTTP_LIMIT_DEFAULT 100
/* Seals the cover search reads per page, and pages at most. */
/* Room for a consistency proof's JSON (64 base64 hashes at most). */
#define SEAL_HTTP_PROOF_MAX_BYTES 8192

static json_t *seal_http_hex(const uint8_t *data, size_t len)
{
    char text[2 * 32 + 3];
    if (len == 0 || len > 32 || eth_hex_encode(data, len, text, sizeof(text)) != LMQ_OK)
        return json_null();
    return json_string(text);
}

/* A seal as the routes show it. */
static json_t *seal_http_object(const struct seal *s, const struct store_rec_seal *r)
{
    char root[48] = "";
    if (r->root.len != 32 || crypto_b64_encode(r->root.data, 32, root, sizeof(root)) != LMQ_OK)
        return NULL;
    enum seal_state st = SEAL_SENT;
    bool mined = seal_state_parse(r->state.data, r->state.len, &st) &&
                 (st == SEAL_MINED || st == SEAL_CONFIRMED) && r->block_hash.len == 32;
    uint64_t conf = mined && s->head >= r->block_number ? s->head - r->block_number + 1 : 0;
    return json_pack("{sI,sI,ss,ss%,sI,ss,so,ss%,so,so,sI,sI,sI}", "nonce", (json_int_t)r->nonce,
                     "tree_size", (json_int_t)r->tree_size, "root", root, "checkpoint",
                     (const char *)r->checkpoint.data, r->checkpoint.len, "chain_id",
                     (json_int_t)r->chain_id, "address", s->addr_text, "tx_hash",
                     seal_http_hex(r->tx_hash.data, r->tx_hash.len), "state",
                     (const char *)r->state.data, r->state.len, "block_number",
                     mined ? json_integer((json_int_t)r->block_number) : json_null(), "block_hash",
                     mined ? seal_http_hex(r->block_hash.data, 32) : json_null(), "confirmations",
                     (json_int_t)conf, "attempts", (json_int_t)r->attempts, "sent_unix_ms",
                     (json_int_t)r->sent_unix_ms);
}

struct seal_http_page {
    const struct seal *s;
    json_t *list;
    uint64_t next;
    uint64_t cover_size; /* cover: the size to cover; found is the first confirmed seal >= it */
    json_t *found;
    uint64_t found_size;
    size_t seen;
};

static int seal_http_row(void *ctx, const struct store_rec_seal *r)
{
    struct seal_http_page *p = ctx;
    p->next = r->nonce + 1;
    p->seen++;
    if (p->list == NULL) { /* the cover search */
        bool confirmed = r->state.len == 9 && memcmp(r->state.data, "confirmed", 9) == 0;
        if (p->found != NULL || !confirmed || r->tree_size < p->cover_size)
            return 0;
        p->found = seal_http_object(p->s, r);
        p->found_size = r->tree_size;
        return p->found == NULL ? 1 : 0;
    }
    json_t *o = seal_http_object(p->s, r);
    return o == NULL || json_array_append_new(p->list, o) != 0 ? 1 : 0;
}

static int seal_http_query(const struct http_request *req, const char *name, uint64_t *out,
                           bool *bad)
{
    const char *v = NULL;
    size_t n = 0;
    if (!http_query_value(req, name, &v, &n))
        return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 20; i++) {
        if (v[i] < '0' || v[i] > '9')
            *bad = true;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    /* The store keeps nonces and sizes as SQLite integers: past INT64_MAX is a bad query (it
     * was a 500 from the store's read). */
    if (n == 0 || n > 19 || x > INT64_MAX)
        *bad = true;
    *out = x;
    return 1;
}

static int seal_http_send(struct lmq_buf *out, json_t *doc)
{
    if (doc == NULL)
        return LMQ_ENOMEM;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        return LMQ_ENOMEM;
    int rc = lmq_buf_append(out, text, strlen(text), HTTP_RESPONSE_BODY_MAX_BYTES);
    free(text);
    return rc;
}

static int seal_http_list(struct broker *b, const struct http_request *req,
                          struct http_response *resp, struct lmq_buf *out)
{
    uint64_t from = 0, limit = SEAL_HTTP_LIMIT_DEFAULT;
    bool bad = false;
    seal_http_query(req, "from_nonce", &from, &bad);
    seal_http_query(req, "limit", &limit, &bad);
    if (bad || limit == 0 || limit > SEAL_HTTP_LIMIT_MAX)
        return http_error_json(resp, out, 400,
                               "need from_nonce 0..9223372036854775807 and limit 1..1000");
    struct seal_http_page p = {.s = b->seal, .list = json_array(), .next = from};
    size_t n = 0;
    if (p.list == NULL)
        return LMQ_ENOMEM;
    int rc = store_seals(b->store, from, (size_t)limit, seal_http_row, &p, &n);
    if (rc != LMQ_OK) {
        json_decref(p.list);
        return rc;
    }
    json_t *doc = json_pack("{so,sI,ss}", "seals", p.list, "next_from_nonce", (json_int_t)p.next,
                            "address", b->seal->addr_text);
    return seal_http_send(out, doc);
}

static int seal_http_cover(struct broker *b, const struct http_request *req,
                           struct http_response *resp, struct lmq_buf *out)
{
    uint64_t size = 0;
    bool bad = false;
    if (!seal_http_query(req, "size", &size, &bad) || bad)
        return http_error_json(resp, out, 400,
                               "need size: a tree size (decimal, at most 9223372036854775807)");
    struct seal_http_page p = {.s = b->seal, .cover_size = size};
    bool found = false;
    int rc = store_seal_cover(b->store, (struct lmq_bytes){(const uint8_t *)"confirmed", 9}, size,
                              seal_http_row, &p, &found);
    if (rc != LMQ_OK || p.found == NULL) {
        json_decref(p.found);
        return rc != LMQ_OK
                   ? rc
                   : http_error_json(resp, out, 404, "no confirmed seal covers this size yet");
    }
    static char proof[SEAL_HTTP_PROOF_MAX_BYTES];
    size_t used = 0;
    json_t *proof_json = NULL;
    LMQ_ASSERT(size <= p.found_size);
    rc = pipeline_tree_consistency_json(b, size, p.found_size, proof, sizeof(proof) - 1, &used);
    if (rc == LMQ_OK)
        proof_json = json_loadb(proof, used, 0, NULL);
    if (proof_json == NULL) {
        json_decref(p.found);
        return rc != LMQ_OK ? rc : LMQ_ENOMEM;
    }
    json_t *doc = json_pack("{so,sI,sI,so}", "seal", p.found, "old_size", (json_int_t)size,
                            "new_size", (json_int_t)p.found_size, "proof", proof_json);
    return seal_http_send(out, doc);
}

int seal_http_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                    struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL);
    bool list = req->path_len == strlen("/ledger/seals") &&
                memcmp(req->path, "/ledger/seals", req->path_len) == 0;
    bool cover = req->path_len == strlen("/ledger/seals/cover") &&
                 memcmp(req->path, "/ledger/seals/cover", req->path_len) == 0;
    if (!list && !cover) {
        resp->status = 404;
        return 0;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->status = 405;
        resp->allow = "GET, HEAD";
        return 0;
    }
    if (b->seal == NULL)
        return http_error_json(resp, out, 404, "sealing is off (no [seal] rpc)");
    if (b->store == NULL)
        return http_error_json(resp, out, 503, "Service Unavailable");
    resp->content_type = "application/json";
    return list ? seal_http_list(b, req, resp, out) : seal_http_cover(b, req, resp, out);
}
