/*
 * The pipeline's HTTP routes: /auth/... (login, revocation and the server key:
 * pipeline_identity.c and pipeline_tokens.c) and the ledger's API, GET /ledger/...
 *
 * Public, because verification needs it and it reveals nothing of a payment: the latest
 * checkpoint, the server's key, inclusion and consistency proofs, and the leaves (index and
 * link; a link is the SHA-256 of a signed envelope, which cannot be guessed from it).
 *
 * Envelopes carry the payment graph (sender, recipient, time, amounts, memos): GET
 * /ledger/envelopes answers only a bearer token's identity, with the envelopes it sent or
 * received, or with every envelope for an identity named in [auth] auditors. Others' envelopes
 * are not shown; nothing says whether they exist beyond what the public leaves say.
 *
 * Pages are bounded by count and by bytes ([limits] ledger_page_max_bytes): a page stops before
 * the entry that would pass the cap and says where to continue ("next").
 */
#include "pipeline/pipeline_internal.h"
#include "seal/seal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crypto/encoding.h"
#include "ledger/checkpoint.h"
#include "ledger/envelope.h"
#include "ledger/merkle.h"
#include "net/http.h"

/* Entries one page returns at most, and when the request does not say. */
#define PIPELINE_HTTP_COUNT_MAX 1000
#define PIPELINE_HTTP_COUNT_DEFAULT 100
/* A page's closing bytes: ],"next":<20 digits>,"size":<20 digits>} with room to spare. */
#define PIPELINE_HTTP_PAGE_TAIL_MAX_BYTES 64
/* One entry's bytes besides its envelope: separator, names, index, 64-character link. */
#define PIPELINE_HTTP_ITEM_MAX_BYTES 160
/* An identity id is the same 64 characters in the configuration and in tokens. */
_Static_assert(LMQ_IDENTITY_ID_CHARS == CRYPTO_IDENTITY_ID_CHARS, "identity id length");
/* Every page can hold one entry with the largest envelope: pages always advance. */
_Static_assert(LMQ_LEDGER_PAGE_MIN_BYTES >= LEDGER_ENVELOPE_MAX_BYTES +
                                                PIPELINE_HTTP_ITEM_MAX_BYTES +
                                                PIPELINE_HTTP_PAGE_TAIL_MAX_BYTES + 64,
               "a page fits one envelope");
_Static_assert(LMQ_LEDGER_PAGE_MAX_BYTES <= HTTP_RESPONSE_BODY_MAX_BYTES, "a page fits a response");

#define PIPELINE_HTTP_NO_STORE "Cache-Control: no-store\r\n"
#define PIPELINE_HTTP_CHALLENGE                                                                    \
    "WWW-Authenticate: Bearer realm=\"ledgermq\"\r\nCache-Control: no-store\r\n"

enum pipeline_http_query_result {
    PIPELINE_HTTP_QUERY_ABSENT,
    PIPELINE_HTTP_QUERY_OK,
    PIPELINE_HTTP_QUERY_MALFORMED
};

/* Reads the decimal value of name in the query string (at most 19 digits). */
static enum pipeline_http_query_result pipeline_http_query_u64(const struct http_request *req,
                                                               const char *name, uint64_t *out)
{
    const char *v;
    size_t digits;
    if (!http_query_value(req, name, &v, &digits))
        return PIPELINE_HTTP_QUERY_ABSENT;
    if (digits == 0 || digits > 19)
        return PIPELINE_HTTP_QUERY_MALFORMED;
    uint64_t n = 0;
    for (size_t k = 0; k < digits; k++) {
        if (v[k] < '0' || v[k] > '9')
            return PIPELINE_HTTP_QUERY_MALFORMED;
        n = n * 10 + (uint64_t)(v[k] - '0');
    }
    *out = n;
    return PIPELINE_HTTP_QUERY_OK;
}

static int pipeline_http_error(struct http_response *resp, struct lmq_buf *out, int status,
                               const char *reason)
{
    return http_error_json(resp, out, status, reason);
}

static int pipeline_http_checkpoint(struct broker *b, struct lmq_buf *out)
{
    struct pipeline *p = b->pipeline;
    char json[2048], root[48];
    size_t used = 0;
    if (crypto_b64_encode(p->checkpoint_root, LEDGER_MERKLE_HASH_BYTES, root, sizeof(root)) !=
            LMQ_OK ||
        http_body_printf(out, "{\"checkpoint\":") != LMQ_OK ||
        pipeline_tree_json_string(json, sizeof(json), &used, p->checkpoint, p->checkpoint_len) !=
            LMQ_OK)
        return LMQ_ETOOBIG;
    if (lmq_buf_append(out, json, used, HTTP_RESPONSE_BODY_MAX_BYTES) != LMQ_OK)
        return LMQ_ETOOBIG;
    return http_body_printf(out, ",\"root\":\"%s\",\"size\":%" PRIu64 "}", root,
                            p->checkpoint_size);
}

static int pipeline_http_key(struct broker *b, struct lmq_buf *out)
{
    struct pipeline *p = b->pipeline;
    char vkey[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1], pub[48];
    size_t len = 0;
    if (ledger_checkpoint_vkey_format(p->ledger_origin, p->server_key.pub, vkey, sizeof(vkey),
                                      &len) != LMQ_OK ||
        crypto_b64url_encode(p->server_key.pub, sizeof(p->server_key.pub), pub, sizeof(pub)) !=
            LMQ_OK)
        return LMQ_EINVAL;
    return http_body_printf(out,
                            "{\"alg\":\"Ed25519\",\"id\":\"%s\",\"name\":\"%s\",\"pub\":\"%s\","
                            "\"vkey\":\"%s\"}",
                            p->server_key.id, p->ledger_origin, pub, vkey);
}

static int pipeline_http_proof(struct broker *b, const struct http_request *req,
                               struct http_response *resp, struct lmq_buf *out, bool inclusion)
{
    uint64_t a = 0, size = b->pipeline->checkpoint_size;
    bool have_a =
        pipeline_http_query_u64(req, inclusion ? "index" : "old", &a) == PIPELINE_HTTP_QUERY_OK;
    bool bad_size = pipeline_http_query_u64(req, inclusion ? "size" : "new", &size) ==
                    PIPELINE_HTTP_QUERY_MALFORMED;
    if (!have_a || bad_size || size > b->pipeline->checkpoint_size ||
        (inclusion ? a >= size : a > size))
        return pipeline_http_error(resp, out, 400,
                                   inclusion ? "need index < size <= the checkpoint's size"
                                             : "need old <= new <= the checkpoint's size");
    static char json[8192]; /* 64 base64 hashes at most */
    size_t used = 0;
    int rc = inclusion ? pipeline_tree_proof_json(b, NULL, a, size, json, sizeof(json), &used)
                       : pipeline_tree_consistency_json(b, a, size, json, sizeof(json), &used);
    if (rc != LMQ_OK)
        return rc;
    if (inclusion)
        return http_body_printf(out, "{\"index\":%" PRIu64 ",\"proof\":%.*s,\"size\":%" PRIu64 "}",
                                a, (int)used, json, size);
    return http_body_printf(out, "{\"new\":%" PRIu64 ",\"old\":%" PRIu64 ",\"proof\":%.*s}", size,
                            a, (int)used, json);
}

/* ---- pages: /ledger/entries (leaves) and /ledger/envelopes ---- */

enum pipeline_http_page_stop {
    LEDGER_PAGE_OPEN = 0, /* the read ended by itself (count or end of the ledger) */
    LEDGER_PAGE_FULL,     /* the next entry would pass the byte cap */
    LEDGER_PAGE_END,      /* the next entry is past the checkpoint */
};

struct pipeline_http_page {
    struct lmq_buf *out;
    size_t cap_bytes; /* the body may reach this before its tail */
    uint64_t end;     /* the checkpoint's size: entries below it only */
    size_t n;         /* entries written */
    uint64_t next;    /* the index after the last entry written */
    enum pipeline_http_page_stop stop;
    int rc;
};

/* Appends {"envelope":...,"index":i,"link":"..."} (or without envelope when envelope is NULL),
 * unless it would pass the byte cap. Returns non-zero to stop the store read. */
static int pipeline_http_page_item(struct pipeline_http_page *p, uint64_t index,
                                   struct lmq_bytes link, const struct lmq_bytes *envelope)
{
    if (index >= p->end) {
        p->stop = LEDGER_PAGE_END;
        return 1;
    }
    char tail[PIPELINE_HTTP_ITEM_MAX_BYTES];
    int n = snprintf(tail, sizeof(tail), "%s\"index\":%" PRIu64 ",\"link\":\"%.*s\"}",
                     envelope != NULL ? "," : "", index, (int)link.len, (const char *)link.data);
    if (n < 0 || (size_t)n >= sizeof(tail) || link.len != CRYPTO_IDENTITY_ID_CHARS) {
        p->rc = LMQ_EIO; /* a stored link is 64 hex characters */
        return 1;
    }
    const char *head = p->n == 0 ? "{" : ",{";
    const char *name = envelope != NULL ? "\"envelope\":" : "";
    size_t env_len = envelope != NULL ? envelope->len : 0;
    size_t need = strlen(head) + strlen(name) + env_len + (size_t)n;
    if (p->out->len + need > p->cap_bytes) {
        if (p->n == 0) { /* the cap's minimum holds the largest envelope: a corrupt store */
            p->rc = LMQ_EIO;
            return 1;
        }
        p->stop = LEDGER_PAGE_FULL; /* next stays after the last entry written */
        return 1;
    }
    p->rc = lmq_buf_printf(p->out, HTTP_RESPONSE_BODY_MAX_BYTES, "%s%s", head, name);
    if (p->rc == LMQ_OK && envelope != NULL)
        p->rc = lmq_buf_append(p->out, envelope->data, envelope->len, HTTP_RESPONSE_BODY_MAX_BYTES);
    if (p->rc == LMQ_OK)
        p->rc = lmq_buf_append(p->out, tail, (size_t)n, HTTP_RESPONSE_BODY_MAX_BYTES);
    p->n++;
    p->next = index + 1;
    return p->rc;
}

static int pipeline_http_page_leaf(void *ctx, uint64_t index, struct lmq_bytes link)
{
    return pipeline_http_page_item(ctx, index, link, NULL);
}

static int pipeline_http_page_envelope(void *ctx, const struct store_ledger_row *r)
{
    return pipeline_http_page_item(ctx, r->index, r->link, &r->envelope);
}

/* Reads start and count (400 when malformed or out of range). */
static bool pipeline_http_page_params(const struct http_request *req, uint64_t *start,
                                      uint64_t *count)
{
    *start = 0;
    *count = PIPELINE_HTTP_COUNT_DEFAULT;
    return pipeline_http_query_u64(req, "start", start) != PIPELINE_HTTP_QUERY_MALFORMED &&
           pipeline_http_query_u64(req, "count", count) != PIPELINE_HTTP_QUERY_MALFORMED &&
           *count >= 1 && *count <= PIPELINE_HTTP_COUNT_MAX;
}

/* Closes the page: the store read's result (a stop we asked for is no error) and "next": after
 * the last entry when count or the byte cap ended the page, else the checkpoint's size (nothing
 * more below it; start when start is beyond it). */
static int pipeline_http_page_finish(struct pipeline_http_page *p, int rc, uint64_t start,
                                     size_t got, size_t limit)
{
    if (rc == LMQ_EINVAL && p->rc == LMQ_OK && p->stop != LEDGER_PAGE_OPEN)
        rc = LMQ_OK;
    if (rc == LMQ_OK)
        rc = p->rc;
    if (rc != LMQ_OK)
        return rc;
    LMQ_ASSERT(got >= p->n && got <= limit);
    uint64_t next = LMQ_MAX(start, p->end); /* nothing more below the checkpoint */
    if (p->stop == LEDGER_PAGE_FULL || (p->stop == LEDGER_PAGE_OPEN && got == limit && got > 0))
        next = p->next;
    LMQ_ASSERT(next >= start && p->out->len <= p->cap_bytes);
    return lmq_buf_printf(p->out, HTTP_RESPONSE_BODY_MAX_BYTES,
                          "],\"next\":%" PRIu64 ",\"size\":%" PRIu64 "}", next, p->end);
}

static int pipeline_http_entries(struct broker *b, const struct http_request *req,
                                 struct http_response *resp, struct lmq_buf *out)
{
    uint64_t start = 0, count = 0;
    if (!pipeline_http_page_params(req, &start, &count))
        return pipeline_http_error(resp, out, 400, "start: an index; count: 1..1000");
    struct pipeline_http_page page = {.out = out,
                                      .cap_bytes = b->cfg.limits.ledger_page_max_bytes -
                                                   PIPELINE_HTTP_PAGE_TAIL_MAX_BYTES,
                                      .end = b->pipeline->checkpoint_size};
    size_t got = 0, limit = start < page.end ? (size_t)LMQ_MIN(count, page.end - start) : 0;
    int rc = http_body_printf(out, "{\"entries\":[");
    if (rc == LMQ_OK && limit > 0)
        rc = store_ledger_links(b->store, start, limit, pipeline_http_page_leaf, &page, &got);
    return pipeline_http_page_finish(&page, rc, start, got, limit);
}

static bool pipeline_http_auditor(const struct broker *b, const char *id)
{
    const struct lmq_auth_config *a = &b->cfg.auth;
    LMQ_ASSERT(a->auditor_count <= LMQ_AUDITORS_MAX);
    for (uint32_t i = 0; i < a->auditor_count; i++) {
        if (memcmp(a->auditors[i], id, CRYPTO_IDENTITY_ID_CHARS) == 0)
            return true;
    }
    return false;
}

/* An auditor's read of everyone's envelopes is logged: who read which range. */
static void pipeline_http_log_audit(const char *id, uint64_t start, size_t n)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "auditor_read"))
        return;
    lmq_log_str(&line, "identity", id);
    lmq_log_uint(&line, "start", start);
    lmq_log_uint(&line, "count", n);
    lmq_log_end(&line);
}

static int pipeline_http_envelopes(struct broker *b, const struct http_request *req,
                                   struct http_response *resp, struct lmq_buf *out)
{
    char id[CRYPTO_IDENTITY_ID_BYTES];
    const char *reason = NULL;
    if (pipeline_tokens_http_bearer(b, req, id, &reason) != LMQ_OK) {
        resp->extra_headers = PIPELINE_HTTP_CHALLENGE;
        return pipeline_http_error(resp, out, 401, reason);
    }
    resp->extra_headers = PIPELINE_HTTP_NO_STORE;
    uint64_t start = 0, count = 0;
    if (!pipeline_http_page_params(req, &start, &count))
        return pipeline_http_error(resp, out, 400, "start: an index; count: 1..1000");
    bool auditor = pipeline_http_auditor(b, id);
    struct pipeline_http_page page = {.out = out,
                                      .cap_bytes = b->cfg.limits.ledger_page_max_bytes -
                                                   PIPELINE_HTTP_PAGE_TAIL_MAX_BYTES,
                                      .end = b->pipeline->checkpoint_size};
    size_t got = 0, limit = auditor && start < page.end ? (size_t)LMQ_MIN(count, page.end - start)
                                                        : (size_t)count;
    int rc = http_body_printf(out, "{\"envelopes\":[");
    if (rc == LMQ_OK && start < page.end) {
        struct lmq_bytes party = {(const uint8_t *)id, CRYPTO_IDENTITY_ID_CHARS};
        rc = auditor ? store_ledger_range(b->store, start, limit, pipeline_http_page_envelope,
                                          &page, &got)
                     : store_ledger_party_range(b->store, party, start, page.end, limit,
                                                pipeline_http_page_envelope, &page, &got);
    }
    if (auditor)
        pipeline_http_log_audit(id, start, page.n);
    return pipeline_http_page_finish(&page, rc, start, got, limit);
}

int pipeline_http_route(struct broker *b, const struct http_request *req,
                        struct http_response *resp, struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL);
    if (req->path_len > 6 && memcmp(req->path, "/auth/", 6) == 0)
        return pipeline_identity_http_route(b, req, resp, out); /* login, revocation, key */
    if (req->path_len >= 13 && memcmp(req->path, "/ledger/seals", 13) == 0)
        return seal_http_route(b, req, resp, out); /* GET /ledger/seals[/cover] */
    static const char *const paths[] = {"/ledger/checkpoint",      "/ledger/key",
                                        "/ledger/proof/inclusion", "/ledger/proof/consistency",
                                        "/ledger/entries",         "/ledger/envelopes"};
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
    if (b->store == NULL || b->pipeline->checkpoint == NULL)
        return pipeline_http_error(resp, out, 503, "Service Unavailable");
    resp->content_type = "application/json";
    switch (which) {
    case 0:
        return pipeline_http_checkpoint(b, out);
    case 1:
        return pipeline_http_key(b, out);
    case 2:
    case 3:
        return pipeline_http_proof(b, req, resp, out, which == 2);
    case 4:
        return pipeline_http_entries(b, req, resp, out);
    default:
        return pipeline_http_envelopes(b, req, resp, out);
    }
}
