/*
 * The Ethereum JSON-RPC client (eth_rpc.h). A post is one HTTP POST: a single call or a batch.
 * Posts live on the client's list from send to their last callback; one uv_timer_t wakes the
 * posts waiting for a retry. Ids are the client's counter: a post's calls have consecutive ids,
 * so an answer finds its call by id - first_id.
 */
#include "eth/eth_rpc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_client.h"

/* The characters of a URL we keep. */
#define ETH_RPC_URL_MAX_CHARS 2048

struct eth_rpc_post;

enum eth_rpc_kind {
    ETH_RPC_KIND_RAW,
    ETH_RPC_KIND_QUANTITY,
    ETH_RPC_KIND_HASH,
    ETH_RPC_KIND_BLOCK,
    ETH_RPC_KIND_LOGS,
    ETH_RPC_KIND_RECEIPT,
    ETH_RPC_KIND_TX,
};

struct eth_rpc_call {
    uint64_t id;
    char method[ETH_RPC_METHOD_MAX_CHARS + 1];
    json_t *params;
    enum eth_rpc_kind kind;
    eth_rpc_done_fn done;
    void *ctx;
    bool answered;
};

struct eth_rpc_post {
    struct eth_rpc *rpc;
    struct eth_rpc_post *prev, *next;
    struct eth_rpc_call *calls; /* count of them, ids first_id.. */
    size_t count, cap;
    bool batch;  /* sent as an array, even of one */
    bool sent;   /* by eth_rpc_batch_send (or a single call) */
    bool linked; /* on the client's list: sent and not being answered */
    char *body;
    size_t body_len;
    uint32_t attempts;
    uint64_t deadline_ms; /* loop time */
    uint64_t next_try_ms; /* loop time of a retry; 0 while in flight */
    struct http_client_req *req;
};

struct eth_rpc {
    uv_loop_t *loop;
    struct http_client *http;
    struct eth_rpc_config cfg;
    char url[ETH_RPC_URL_MAX_CHARS + 1];
    uv_timer_t timer;
    struct eth_rpc_post *head;
    size_t post_count; /* begun batches included */
    uint64_t next_id;
    uint64_t posts_sent;
    uint64_t rng;
    bool closing;
};

static void eth_rpc_pump(struct eth_rpc *rpc);

static json_t *eth_rpc_hex_json(const uint8_t *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 + 2 * len + 1);
    if (s == NULL)
        return NULL;
    s[0] = '0';
    s[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        s[2 + 2 * i] = digits[data[i] >> 4];
        s[3 + 2 * i] = digits[data[i] & 15];
    }
    s[2 + 2 * len] = '\0';
    json_t *j = json_stringn(s, 2 + 2 * len);
    free(s);
    return j;
}

static json_t *eth_rpc_quantity_json(uint64_t v)
{
    char q[19];
    eth_rpc_format_quantity(v, q);
    return json_string(q);
}

/* ---- typed results ---- */

/* Reads member key of o as kind (quantity, fixed n bytes); false when absent or malformed. */
static bool eth_rpc_get_quantity(const json_t *o, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) &&
           eth_rpc_parse_quantity(json_string_value(v), json_string_length(v), out) == LMQ_OK;
}

static bool eth_rpc_get_fixed(const json_t *o, const char *key, uint8_t *out, size_t n)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) &&
           eth_rpc_parse_fixed(json_string_value(v), json_string_length(v), out, n) == LMQ_OK;
}

/* An optional address member: absent or null leaves *has false. */
static bool eth_rpc_get_opt_address(const json_t *o, const char *key, bool *has, uint8_t out[20])
{
    const json_t *v = json_object_get(o, key);
    *has = false;
    if (v == NULL || json_is_null(v))
        return true;
    *has = true;
    return eth_rpc_get_fixed(o, key, out, 20);
}

/* DATA member key into a new buffer (*out freed by the caller). */
static bool eth_rpc_get_data(const json_t *o, const char *key, uint8_t **out, size_t *len)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return false;
    size_t cap = json_string_length(v) / 2;
    *out = malloc(cap + 1);
    return *out != NULL && eth_rpc_parse_data(json_string_value(v), json_string_length(v), *out,
                                              cap, len) == LMQ_OK;
}

static const char *eth_rpc_parse_block(const json_t *v, struct eth_block_header *b)
{
    if (!json_is_object(v))
        return "block is not an object";
    if (!eth_rpc_get_quantity(v, "number", &b->number))
        return "bad block number";
    if (!eth_rpc_get_fixed(v, "hash", b->hash, 32))
        return "bad block hash";
    if (!eth_rpc_get_fixed(v, "parentHash", b->parent_hash, 32))
        return "bad block parentHash";
    if (!eth_rpc_get_quantity(v, "timestamp", &b->timestamp))
        return "bad block timestamp";
    b->has_base_fee = json_object_get(v, "baseFeePerGas") != NULL;
    if (b->has_base_fee && !eth_rpc_get_quantity(v, "baseFeePerGas", &b->base_fee_per_gas))
        return "bad block baseFeePerGas";
    return NULL;
}

/* One log of an eth_getLogs answer; *data is its data (owned by the caller). */
static const char *eth_rpc_parse_log(const json_t *v, struct eth_log *l, uint8_t **data)
{
    if (!json_is_object(v))
        return "log is not an object";
    if (!eth_rpc_get_fixed(v, "address", l->address, 20))
        return "bad log address";
    const json_t *topics = json_object_get(v, "topics");
    if (!json_is_array(topics) || json_array_size(topics) > ETH_RPC_TOPICS_MAX)
        return "bad log topics";
    l->topic_count = json_array_size(topics);
    for (size_t i = 0; i < l->topic_count; i++) {
        const json_t *t = json_array_get(topics, i);
        if (!json_is_string(t) || eth_rpc_parse_fixed(json_string_value(t), json_string_length(t),
                                                      l->topics[i], 32) != LMQ_OK)
            return "bad log topic";
    }
    if (!eth_rpc_get_data(v, "data", data, &l->data_len))
        return "bad log data";
    l->data = *data;
    if (!eth_rpc_get_quantity(v, "blockNumber", &l->block_number) ||
        !eth_rpc_get_fixed(v, "blockHash", l->block_hash, 32))
        return "bad log block (a pending log?)";
    if (!eth_rpc_get_fixed(v, "transactionHash", l->tx_hash, 32) ||
        !eth_rpc_get_quantity(v, "transactionIndex", &l->tx_index) ||
        !eth_rpc_get_quantity(v, "logIndex", &l->log_index))
        return "bad log transaction or index";
    const json_t *removed = json_object_get(v, "removed");
    if (removed != NULL && !json_is_boolean(removed))
        return "bad log removed";
    l->removed = json_is_true(removed);
    return NULL;
}

static const char *eth_rpc_parse_receipt(const json_t *v, struct eth_receipt *r)
{
    if (!json_is_object(v))
        return "receipt is not an object";
    uint64_t status = 0;
    const json_t *logs = json_object_get(v, "logs");
    if (!eth_rpc_get_fixed(v, "transactionHash", r->tx_hash, 32) ||
        !eth_rpc_get_fixed(v, "blockHash", r->block_hash, 32) ||
        !eth_rpc_get_quantity(v, "blockNumber", &r->block_number))
        return "bad receipt transaction or block";
    if (!eth_rpc_get_fixed(v, "from", r->from, 20) ||
        !eth_rpc_get_opt_address(v, "to", &r->has_to, r->to) ||
        !eth_rpc_get_opt_address(v, "contractAddress", &r->has_contract_address,
                                 r->contract_address))
        return "bad receipt address";
    if (!eth_rpc_get_quantity(v, "status", &status) || status > 1)
        return "bad receipt status";
    if (!eth_rpc_get_quantity(v, "gasUsed", &r->gas_used))
        return "bad receipt gasUsed";
    if (json_object_get(v, "effectiveGasPrice") != NULL &&
        !eth_rpc_get_quantity(v, "effectiveGasPrice", &r->effective_gas_price))
        return "bad receipt effectiveGasPrice";
    if (!json_is_array(logs))
        return "bad receipt logs";
    r->success = status == 1;
    r->log_count = json_array_size(logs);
    return NULL;
}

static const char *eth_rpc_parse_tx(const json_t *v, struct eth_tx_info *t, uint8_t **input)
{
    if (!json_is_object(v))
        return "transaction is not an object";
    if (!eth_rpc_get_fixed(v, "hash", t->hash, 32) || !eth_rpc_get_fixed(v, "from", t->from, 20) ||
        !eth_rpc_get_opt_address(v, "to", &t->has_to, t->to))
        return "bad transaction hash or address";
    if (!eth_rpc_get_quantity(v, "nonce", &t->nonce))
        return "bad transaction nonce";
    const json_t *bh = json_object_get(v, "blockHash");
    t->mined = bh != NULL && !json_is_null(bh);
    if (t->mined && (!eth_rpc_get_fixed(v, "blockHash", t->block_hash, 32) ||
                     !eth_rpc_get_quantity(v, "blockNumber", &t->block_number)))
        return "bad transaction block";
    if (!eth_rpc_get_data(v, "input", input, &t->input_len))
        return "bad transaction input";
    t->input = *input;
    return NULL;
}

/* Calls done with a result value, parsed for the call's kind. */
static void eth_rpc_deliver_value(struct eth_rpc_call *c, const json_t *value)
{
    struct eth_rpc_answer a = {.status = ETH_RPC_OK, .message = "", .value = value};
    const char *bad = NULL;
    struct eth_log *logs = NULL;
    uint8_t **datas = NULL;
    uint8_t *input = NULL;
    size_t n = 0;
    if (c->kind != ETH_RPC_KIND_RAW && json_is_null(value)) {
        a.status = ETH_RPC_NOT_FOUND;
        a.message = "the node answered null";
        goto out;
    }
    switch (c->kind) {
    case ETH_RPC_KIND_RAW:
        break;
    case ETH_RPC_KIND_QUANTITY:
        if (!json_is_string(value) ||
            eth_rpc_parse_quantity(json_string_value(value), json_string_length(value),
                                   &a.quantity) != LMQ_OK)
            bad = "result is not a 64-bit QUANTITY";
        break;
    case ETH_RPC_KIND_HASH:
        if (!json_is_string(value) ||
            eth_rpc_parse_fixed(json_string_value(value), json_string_length(value), a.hash, 32) !=
                LMQ_OK)
            bad = "result is not a 32-byte hash";
        break;
    case ETH_RPC_KIND_BLOCK:
        bad = eth_rpc_parse_block(value, &a.block);
        break;
    case ETH_RPC_KIND_RECEIPT:
        bad = eth_rpc_parse_receipt(value, &a.receipt);
        break;
    case ETH_RPC_KIND_TX:
        bad = eth_rpc_parse_tx(value, &a.tx, &input);
        break;
    case ETH_RPC_KIND_LOGS:
        if (!json_is_array(value)) {
            bad = "result is not an array";
            break;
        }
        n = json_array_size(value);
        if (n > ETH_RPC_LOGS_MAX) {
            bad = "more logs than ETH_RPC_LOGS_MAX: ask for a smaller block range";
            break;
        }
        logs = calloc(n + 1, sizeof(*logs));
        datas = calloc(n + 1, sizeof(*datas));
        if (logs == NULL || datas == NULL) {
            bad = "out of memory";
            break;
        }
        for (size_t i = 0; i < n && bad == NULL; i++)
            bad = eth_rpc_parse_log(json_array_get(value, i), &logs[i], &datas[i]);
        a.logs = logs;
        a.log_count = n;
        break;
    }
    if (bad != NULL) {
        a = (struct eth_rpc_answer){.status = ETH_RPC_BAD_ANSWER, .value = value};
        a.message = bad;
    }
out:
    c->done(c->ctx, &a);
    for (size_t i = 0; datas != NULL && i < n; i++)
        free(datas[i]);
    free(datas);
    free(logs);
    free(input);
}

/* ---- posts ---- */

/* Takes p off the client's list: from then on eth_rpc_close does not free it. */
static void eth_rpc_post_unlink(struct eth_rpc_post *p)
{
    struct eth_rpc *rpc = p->rpc;
    if (!p->linked)
        return;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        rpc->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->linked = false;
}

static void eth_rpc_post_link(struct eth_rpc_post *p)
{
    struct eth_rpc *rpc = p->rpc;
    LMQ_ASSERT(!p->linked && p->sent);
    p->prev = NULL;
    p->next = rpc->head;
    if (rpc->head != NULL)
        rpc->head->prev = p;
    rpc->head = p;
    p->linked = true;
}

static void eth_rpc_post_free(struct eth_rpc_post *p)
{
    struct eth_rpc *rpc = p->rpc;
    LMQ_ASSERT(rpc->post_count > 0);
    if (p->req != NULL)
        http_client_cancel(p->req);
    eth_rpc_post_unlink(p);
    rpc->post_count--;
    for (size_t i = 0; i < p->count; i++)
        json_decref(p->calls[i].params);
    free(p->calls);
    free(p->body);
    free(p);
}

/* Every call of p not answered yet ends with status and message; then p is freed. A callback
 * may close the client: the calls after it get no callback (p is off the list by then, so the
 * close does not free it under us). */
static void eth_rpc_post_fail(struct eth_rpc_post *p, enum eth_rpc_status status,
                              const char *message)
{
    struct eth_rpc *rpc = p->rpc;
    eth_rpc_post_unlink(p);
    for (size_t i = 0; i < p->count && !rpc->closing; i++) {
        struct eth_rpc_call *c = &p->calls[i];
        if (c->answered)
            continue;
        c->answered = true;
        struct eth_rpc_answer a = {.status = status, .message = message};
        c->done(c->ctx, &a);
    }
    eth_rpc_post_free(p);
}

/* One answer object: its call gets the result or the error. */
static void eth_rpc_answer_one(struct eth_rpc_call *c, const json_t *o)
{
    LMQ_ASSERT(!c->answered);
    c->answered = true;
    const json_t *error = json_object_get(o, "error");
    if (error != NULL) {
        const json_t *code = json_object_get(error, "code");
        const json_t *msg = json_object_get(error, "message");
        struct eth_rpc_answer a = {.status = ETH_RPC_RPC_ERROR, .message = "(no message)"};
        if (!json_is_integer(code) || (msg != NULL && !json_is_string(msg))) {
            a.status = ETH_RPC_BAD_ANSWER;
            a.message = "malformed JSON-RPC error object";
        } else {
            a.code = (int64_t)json_integer_value(code);
            if (msg != NULL)
                a.message = json_string_value(msg);
            a.value = json_object_get(error, "data");
        }
        c->done(c->ctx, &a);
        return;
    }
    const json_t *result = json_object_get(o, "result");
    if (result == NULL) {
        struct eth_rpc_answer a = {.status = ETH_RPC_BAD_ANSWER,
                                   .message = "answer with neither result nor error"};
        c->done(c->ctx, &a);
        return;
    }
    eth_rpc_deliver_value(c, result);
}

/* The call of p an answer object is for, or NULL (no id, not one of p's). */
static struct eth_rpc_call *eth_rpc_post_find(struct eth_rpc_post *p, const json_t *o)
{
    const json_t *id = json_object_get(o, "id");
    if (!json_is_integer(id) || p->count == 0)
        return NULL;
    json_int_t v = json_integer_value(id);
    if (v < 0 || (uint64_t)v < p->calls[0].id || (uint64_t)v - p->calls[0].id >= p->count)
        return NULL;
    struct eth_rpc_call *c = &p->calls[(uint64_t)v - p->calls[0].id];
    LMQ_ASSERT(c->id == (uint64_t)v);
    return c->answered ? NULL : c; /* a second answer for an id is ignored */
}

/* A 2xx answer body: matched to the calls; p is freed. */
static void eth_rpc_post_answered(struct eth_rpc_post *p, const uint8_t *body, size_t len)
{
    struct eth_rpc *rpc = p->rpc;
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    char message[ETH_RPC_MESSAGE_MAX_CHARS];
    if (doc == NULL) {
        snprintf(message, sizeof(message), "answer is not JSON: %s (line %d)", jerr.text,
                 jerr.line);
        eth_rpc_post_fail(p, ETH_RPC_BAD_ANSWER, message);
        return;
    }
    if (json_is_object(doc) && json_is_null(json_object_get(doc, "id")) &&
        json_object_get(doc, "error") != NULL) {
        /* An error for the whole request (a parse error; some nodes refuse batches, or their
         * size). */
        for (size_t i = 0; i < p->count && !rpc->closing; i++)
            eth_rpc_answer_one(&p->calls[i], doc);
    } else if (json_is_object(doc) && !p->batch) {
        struct eth_rpc_call *c = eth_rpc_post_find(p, doc);
        if (c != NULL)
            eth_rpc_answer_one(c, doc);
    } else if (json_is_array(doc) && p->batch) {
        /* Bounded by the answer's size: at most one callback per call. */
        for (size_t i = 0; i < json_array_size(doc) && !rpc->closing; i++) {
            const json_t *o = json_array_get(doc, i);
            struct eth_rpc_call *c = json_is_object(o) ? eth_rpc_post_find(p, o) : NULL;
            if (c != NULL)
                eth_rpc_answer_one(c, o);
        }
    } else {
        eth_rpc_post_fail(p, ETH_RPC_BAD_ANSWER,
                          p->batch ? "batch answer is not an array" : "answer is not an object");
        json_decref(doc);
        return;
    }
    json_decref(doc);
    eth_rpc_post_fail(p, ETH_RPC_BAD_ANSWER, "no answer for the call's id");
}

/* retry_base_ms * 2^(attempts-1), at most retry_max_ms, times a jitter in [0.5, 1.5). */
static uint64_t eth_rpc_backoff_ms(struct eth_rpc *rpc, uint32_t attempts)
{
    return lmq_backoff_ms(&rpc->rng, rpc->cfg.retry_base_ms, rpc->cfg.retry_max_ms, attempts);
}

static void eth_rpc_on_http(void *ctx, const struct http_client_result *r)
{
    struct eth_rpc_post *p = ctx;
    struct eth_rpc *rpc = p->rpc;
    p->req = NULL;
    eth_rpc_post_unlink(p); /* a callback may close the client: p is ours until freed */
    char message[ETH_RPC_MESSAGE_MAX_CHARS];
    bool retry = false;
    enum eth_rpc_status status = ETH_RPC_TRANSPORT;
    switch (r->outcome) {
    case HTTP_CLIENT_ANSWERED:
        if (r->status >= 200 && r->status < 300) {
            eth_rpc_post_answered(p, r->body, r->body_len);
            goto out;
        }
        status = ETH_RPC_HTTP;
        retry = r->status >= 500 || r->status == 429;
        snprintf(message, sizeof(message), "HTTP status %ld", r->status);
        break;
    case HTTP_CLIENT_TRANSPORT:
        retry = true;
        snprintf(message, sizeof(message), "%s", r->error);
        break;
    case HTTP_CLIENT_TIMEOUT:
        status = ETH_RPC_TIMEOUT; /* an attempt has the time left to the deadline */
        snprintf(message, sizeof(message), "timed out after %" PRIu32 " ms (%s)",
                 rpc->cfg.timeout_ms, r->error);
        break;
    case HTTP_CLIENT_TOO_BIG:
        status = ETH_RPC_TOO_BIG;
        snprintf(message, sizeof(message), "%s", r->error);
        break;
    }
    uint64_t now = uv_now(rpc->loop);
    uint64_t wait = retry ? eth_rpc_backoff_ms(rpc, p->attempts) : 0;
    if (retry && p->attempts < rpc->cfg.attempts_max && now + wait < p->deadline_ms) {
        p->next_try_ms = now + wait;
        eth_rpc_post_link(p);
        goto out;
    }
    if (retry && p->attempts > 1) {
        size_t n = strlen(message);
        snprintf(message + n, sizeof(message) - n, " (after %" PRIu32 " attempts)", p->attempts);
    }
    eth_rpc_post_fail(p, status, message);
out:
    if (!rpc->closing)
        eth_rpc_pump(rpc);
}

/* Starts an attempt of p; false when it cannot (p is failed and freed then). */
static bool eth_rpc_post_start(struct eth_rpc_post *p, uint64_t now)
{
    struct eth_rpc *rpc = p->rpc;
    LMQ_ASSERT(p->req == NULL && now < p->deadline_ms);
    struct http_client_request q = {
        .method = "POST",
        .url = rpc->url,
        .headers = {"Content-Type: application/json", "Accept: application/json", "Expect:"},
        .header_count = 3,
        .body = (const uint8_t *)p->body,
        .body_len = p->body_len,
        .timeout_ms = (uint32_t)(p->deadline_ms - now),
        .answer_max_bytes = rpc->cfg.answer_max_bytes,
        .keep_answer = true,
    };
    int rc = http_client_submit(rpc->http, &q, eth_rpc_on_http, p, &p->req);
    if (rc != LMQ_OK) {
        eth_rpc_post_fail(p, ETH_RPC_TRANSPORT, lmq_strerror(rc));
        return false;
    }
    p->attempts++;
    p->next_try_ms = 0;
    rpc->posts_sent++;
    return true;
}

static void eth_rpc_on_timer(uv_timer_t *t)
{
    eth_rpc_pump(t->data);
}

/* Starts the posts whose retry is due and arms the timer for the next one. */
static void eth_rpc_pump(struct eth_rpc *rpc)
{
    uint64_t now = uv_now(rpc->loop);
    uint64_t wake = 0;
    struct eth_rpc_post *p = rpc->head;
    /* Bounded by ETH_RPC_POSTS_MAX; a failing start frees its post (next is read first). */
    while (p != NULL && !rpc->closing) {
        struct eth_rpc_post *next = p->next;
        if (p->req == NULL && p->next_try_ms != 0) {
            if (now >= p->deadline_ms) /* the loop was late */
                eth_rpc_post_fail(p, ETH_RPC_TIMEOUT, "timed out waiting for a retry");
            else if (p->next_try_ms <= now)
                (void)eth_rpc_post_start(p, now);
            else
                wake = wake == 0 ? p->next_try_ms : LMQ_MIN(wake, p->next_try_ms);
        }
        p = next;
    }
    /* A post sent from a callback above armed the timer for now: keep the earlier wake-up. */
    if (!rpc->closing && wake != 0 &&
        (!uv_is_active((uv_handle_t *)&rpc->timer) ||
         uv_timer_get_due_in(&rpc->timer) > wake - now))
        uv_timer_start(&rpc->timer, eth_rpc_on_timer, wake - now, 0);
}

/* ---- building posts ---- */

int eth_rpc_batch_begin(struct eth_rpc *rpc, struct eth_rpc_batch **out)
{
    LMQ_ASSERT(rpc != NULL && out != NULL);
    LMQ_ASSERT(!rpc->closing);
    if (rpc->post_count >= ETH_RPC_POSTS_MAX)
        return LMQ_ELIMIT;
    struct eth_rpc_post *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return LMQ_ENOMEM;
    p->rpc = rpc;
    p->batch = true;
    rpc->post_count++;
    *out = (struct eth_rpc_batch *)p;
    return LMQ_OK;
}

void eth_rpc_batch_discard(struct eth_rpc_batch *b)
{
    struct eth_rpc_post *p = (struct eth_rpc_post *)b;
    LMQ_ASSERT(p != NULL && !p->sent);
    eth_rpc_post_free(p);
}

/* The JSON body of p. */
static int eth_rpc_post_body(struct eth_rpc_post *p)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return LMQ_ENOMEM;
    for (size_t i = 0; i < p->count; i++) {
        struct eth_rpc_call *c = &p->calls[i];
        json_t *o = json_pack("{s:s, s:I, s:s, s:O}", "jsonrpc", "2.0", "id", (json_int_t)c->id,
                              "method", c->method, "params", c->params);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return LMQ_ENOMEM;
        }
    }
    p->body = json_dumps(p->batch ? arr : json_array_get(arr, 0), JSON_COMPACT);
    json_decref(arr);
    if (p->body == NULL)
        return LMQ_ENOMEM;
    p->body_len = strlen(p->body);
    return LMQ_OK;
}

int eth_rpc_batch_send(struct eth_rpc_batch *b)
{
    struct eth_rpc_post *p = (struct eth_rpc_post *)b;
    LMQ_ASSERT(p != NULL && !p->sent);
    struct eth_rpc *rpc = p->rpc;
    LMQ_ASSERT(!rpc->closing);
    if (p->count == 0) {
        eth_rpc_post_free(p);
        return LMQ_OK;
    }
    int rc = eth_rpc_post_body(p);
    if (rc != LMQ_OK) {
        eth_rpc_post_free(p);
        return rc;
    }
    p->sent = true;
    eth_rpc_post_link(p);
    uint64_t now = uv_now(rpc->loop);
    p->deadline_ms = now + rpc->cfg.timeout_ms;
    /* The first attempt starts from the loop (eth_rpc_pump), so no callback runs in here. */
    p->next_try_ms = now;
    uv_timer_start(&rpc->timer, eth_rpc_on_timer, 0, 0);
    return LMQ_OK;
}

/* Queues a call of kind on batch (or a new single post); params is taken over. */
static int eth_rpc_add(struct eth_rpc *rpc, struct eth_rpc_batch *batch, const char *method,
                       json_t *params, enum eth_rpc_kind kind, eth_rpc_done_fn done, void *ctx)
{
    LMQ_ASSERT(rpc != NULL && method != NULL && done != NULL);
    struct eth_rpc_post *p = (struct eth_rpc_post *)batch;
    int rc = LMQ_OK;
    if (params == NULL) { /* the helpers' json_pack failed */
        rc = LMQ_ENOMEM;
        goto out;
    }
    if (!json_is_array(params) || strlen(method) > ETH_RPC_METHOD_MAX_CHARS) {
        rc = LMQ_EINVAL;
        goto out;
    }
    if (p == NULL) {
        struct eth_rpc_batch *single = NULL;
        rc = eth_rpc_batch_begin(rpc, &single);
        if (rc != LMQ_OK)
            goto out;
        p = (struct eth_rpc_post *)single;
        p->batch = false;
    }
    LMQ_ASSERT(p->rpc == rpc && !p->sent);
    if (p->count == ETH_RPC_BATCH_MAX) {
        rc = LMQ_ELIMIT;
        goto out;
    }
    if (p->count == p->cap) {
        size_t cap = LMQ_MIN((size_t)ETH_RPC_BATCH_MAX, LMQ_MAX((size_t)4, p->cap * 2));
        struct eth_rpc_call *calls = realloc(p->calls, cap * sizeof(*calls));
        if (calls == NULL) {
            rc = LMQ_ENOMEM;
            goto out;
        }
        p->calls = calls;
        p->cap = cap;
    }
    struct eth_rpc_call *c = &p->calls[p->count++];
    *c = (struct eth_rpc_call){
        .id = rpc->next_id++, .params = params, .kind = kind, .done = done, .ctx = ctx};
    snprintf(c->method, sizeof(c->method), "%s", method);
    params = NULL;
    if (batch == NULL)
        return eth_rpc_batch_send((struct eth_rpc_batch *)p);
out:
    json_decref(params);
    if (batch == NULL && p != NULL)
        eth_rpc_post_free(p);
    return rc;
}

int eth_rpc_call(struct eth_rpc *rpc, struct eth_rpc_batch *batch, const char *method,
                 json_t *params, eth_rpc_done_fn done, void *ctx)
{
    if (params == NULL && (params = json_array()) == NULL)
        return LMQ_ENOMEM;
    return eth_rpc_add(rpc, batch, method, params, ETH_RPC_KIND_RAW, done, ctx);
}

int eth_rpc_chain_id(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                     void *ctx)
{
    return eth_rpc_add(rpc, batch, "eth_chainId", json_array(), ETH_RPC_KIND_QUANTITY, done, ctx);
}

int eth_rpc_block_number(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                         void *ctx)
{
    return eth_rpc_add(rpc, batch, "eth_blockNumber", json_array(), ETH_RPC_KIND_QUANTITY, done,
                       ctx);
}

int eth_rpc_gas_price(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                      void *ctx)
{
    return eth_rpc_add(rpc, batch, "eth_gasPrice", json_array(), ETH_RPC_KIND_QUANTITY, done, ctx);
}

int eth_rpc_max_priority_fee(struct eth_rpc *rpc, struct eth_rpc_batch *batch, eth_rpc_done_fn done,
                             void *ctx)
{
    return eth_rpc_add(rpc, batch, "eth_maxPriorityFeePerGas", json_array(), ETH_RPC_KIND_QUANTITY,
                       done, ctx);
}

int eth_rpc_transaction_count(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                              const uint8_t address[20], eth_rpc_done_fn done, void *ctx)
{
    LMQ_ASSERT(address != NULL);
    json_t *params = json_pack("[o, s]", eth_rpc_hex_json(address, 20), "pending");
    return eth_rpc_add(rpc, batch, "eth_getTransactionCount", params, ETH_RPC_KIND_QUANTITY, done,
                       ctx);
}

int eth_rpc_block_by_number(struct eth_rpc *rpc, struct eth_rpc_batch *batch, uint64_t number,
                            eth_rpc_done_fn done, void *ctx)
{
    json_t *tag = number == ETH_RPC_BLOCK_LATEST    ? json_string("latest")
                  : number == ETH_RPC_BLOCK_PENDING ? json_string("pending")
                                                    : eth_rpc_quantity_json(number);
    json_t *params = json_pack("[o, b]", tag, 0);
    return eth_rpc_add(rpc, batch, "eth_getBlockByNumber", params, ETH_RPC_KIND_BLOCK, done, ctx);
}

/* The filter object of eth_getLogs. */
static json_t *eth_rpc_filter_json(const struct eth_rpc_log_filter *f)
{
    json_t *o = json_pack("{s:o, s:o}", "fromBlock", eth_rpc_quantity_json(f->from_block),
                          "toBlock", eth_rpc_quantity_json(f->to_block));
    json_t *addresses = json_array(), *topics = json_array();
    bool ok = o != NULL && addresses != NULL && topics != NULL;
    for (size_t i = 0; ok && i < f->address_count; i++)
        ok = json_array_append_new(addresses, eth_rpc_hex_json(f->addresses[i], 20)) == 0;
    for (size_t i = 0; ok && i < f->topic_count; i++)
        ok = json_array_append_new(topics, f->has_topic[i] ? eth_rpc_hex_json(f->topics[i], 32)
                                                           : json_null()) == 0;
    if (ok && f->address_count > 0)
        ok = json_object_set(o, "address", addresses) == 0;
    if (ok && f->topic_count > 0)
        ok = json_object_set(o, "topics", topics) == 0;
    json_decref(addresses);
    json_decref(topics);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int eth_rpc_logs(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                 const struct eth_rpc_log_filter *f, eth_rpc_done_fn done, void *ctx)
{
    LMQ_ASSERT(f != NULL);
    if (f->from_block > f->to_block || f->address_count > ETH_RPC_FILTER_ADDRESSES_MAX ||
        f->topic_count > ETH_RPC_TOPICS_MAX || (f->address_count > 0 && f->addresses == NULL))
        return LMQ_EINVAL;
    json_t *filter = eth_rpc_filter_json(f);
    json_t *params = filter != NULL ? json_pack("[o]", filter) : NULL;
    if (params == NULL)
        return LMQ_ENOMEM;
    return eth_rpc_add(rpc, batch, "eth_getLogs", params, ETH_RPC_KIND_LOGS, done, ctx);
}

int eth_rpc_send_raw_transaction(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                                 const uint8_t *raw, size_t raw_len, eth_rpc_done_fn done,
                                 void *ctx)
{
    if (raw == NULL || raw_len == 0)
        return LMQ_EINVAL;
    json_t *params = json_pack("[o]", eth_rpc_hex_json(raw, raw_len));
    if (params == NULL)
        return LMQ_ENOMEM;
    return eth_rpc_add(rpc, batch, "eth_sendRawTransaction", params, ETH_RPC_KIND_HASH, done, ctx);
}

int eth_rpc_transaction_receipt(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                                const uint8_t hash[32], eth_rpc_done_fn done, void *ctx)
{
    LMQ_ASSERT(hash != NULL);
    json_t *params = json_pack("[o]", eth_rpc_hex_json(hash, 32));
    if (params == NULL)
        return LMQ_ENOMEM;
    return eth_rpc_add(rpc, batch, "eth_getTransactionReceipt", params, ETH_RPC_KIND_RECEIPT, done,
                       ctx);
}

int eth_rpc_transaction_by_hash(struct eth_rpc *rpc, struct eth_rpc_batch *batch,
                                const uint8_t hash[32], eth_rpc_done_fn done, void *ctx)
{
    LMQ_ASSERT(hash != NULL);
    json_t *params = json_pack("[o]", eth_rpc_hex_json(hash, 32));
    if (params == NULL)
        return LMQ_ENOMEM;
    return eth_rpc_add(rpc, batch, "eth_getTransactionByHash", params, ETH_RPC_KIND_TX, done, ctx);
}

/* ---- lifecycle ---- */

int eth_rpc_create(uv_loop_t *loop, const struct eth_rpc_config *cfg, struct eth_rpc **out)
{
    LMQ_ASSERT(loop != NULL && cfg != NULL && out != NULL);
    *out = NULL;
    if (cfg->url == NULL || strlen(cfg->url) > ETH_RPC_URL_MAX_CHARS ||
        (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0))
        return LMQ_EINVAL;
    struct eth_rpc *rpc = calloc(1, sizeof(*rpc));
    if (rpc == NULL)
        return LMQ_ENOMEM;
    if (http_client_create(loop, &rpc->http) != LMQ_OK) {
        free(rpc);
        return LMQ_ENOMEM;
    }
    rpc->loop = loop;
    rpc->cfg = *cfg;
    snprintf(rpc->url, sizeof(rpc->url), "%s", cfg->url);
    rpc->cfg.url = rpc->url;
    if (rpc->cfg.timeout_ms == 0)
        rpc->cfg.timeout_ms = ETH_RPC_TIMEOUT_MS_DEFAULT;
    if (rpc->cfg.attempts_max == 0)
        rpc->cfg.attempts_max = ETH_RPC_ATTEMPTS_DEFAULT;
    if (rpc->cfg.retry_base_ms == 0)
        rpc->cfg.retry_base_ms = ETH_RPC_RETRY_BASE_MS_DEFAULT;
    if (rpc->cfg.retry_max_ms == 0)
        rpc->cfg.retry_max_ms = ETH_RPC_RETRY_MAX_MS_DEFAULT;
    if (rpc->cfg.answer_max_bytes == 0)
        rpc->cfg.answer_max_bytes = ETH_RPC_ANSWER_MAX_BYTES_DEFAULT;
    rpc->next_id = 1;
    rpc->rng = uv_hrtime() | 1;
    uv_timer_init(loop, &rpc->timer);
    rpc->timer.data = rpc;
    *out = rpc;
    return LMQ_OK;
}

static void eth_rpc_timer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

void eth_rpc_close(struct eth_rpc *rpc)
{
    if (rpc == NULL || rpc->closing)
        return;
    rpc->closing = true;
    /* Bounded: each round frees one post. Begun batches not sent are the caller's. */
    while (rpc->head != NULL)
        eth_rpc_post_free(rpc->head);
    http_client_close(rpc->http);
    rpc->http = NULL;
    uv_close((uv_handle_t *)&rpc->timer, eth_rpc_timer_closed);
}

const char *eth_rpc_status_name(enum eth_rpc_status s)
{
    switch (s) {
    case ETH_RPC_OK:
        return "ok";
    case ETH_RPC_RPC_ERROR:
        return "rpc_error";
    case ETH_RPC_NOT_FOUND:
        return "not_found";
    case ETH_RPC_TRANSPORT:
        return "transport";
    case ETH_RPC_HTTP:
        return "http";
    case ETH_RPC_TIMEOUT:
        return "timeout";
    case ETH_RPC_TOO_BIG:
        return "too_big";
    case ETH_RPC_BAD_ANSWER:
        return "bad_answer";
    }
    return "unknown";
}

uint64_t eth_rpc_posts(const struct eth_rpc *rpc)
{
    return rpc->posts_sent;
}
