/*
 * ledgermq verify --notification FILE --rpc URL: a ledgermq.chain.log notification checked
 * against a node (docs/PROTOCOL.md "Chain follower"): the node's block at block_number has
 * block_hash, and that block's logs (eth_getLogs of that block, each naming its block hash)
 * hold the log with the same
 * tx_hash, log_index, address, topics and data. One JSON-RPC batch on a private loop.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <uv.h>

#include "eth/eth_hex.h"
#include "eth/eth_rpc.h"
#include "verify/verify.h"

#define VERIFY_CHAIN_WHY_MAX 256
#define VERIFY_CHAIN_TIMEOUT_MS 10000

struct verify_chain {
    const json_t *body;
    uint8_t block_hash[32];
    uint64_t block_number;
    uint64_t log_index;
    int answered;
    bool transport_failed;
    bool block_ok, log_ok;
    char why[VERIFY_CHAIN_WHY_MAX];
};

static bool verify_chain_hex_eq(const json_t *j, const uint8_t *bytes, size_t len)
{
    const char *s = json_string_value(j);
    char want[2 * 4096 + 3];
    if (s == NULL || len > 4096 || eth_hex_encode(bytes, len, want, sizeof(want)) != LMQ_OK)
        return false;
    return strcasecmp(s, want) == 0;
}

static void verify_chain_on_block(void *ctx, const struct eth_rpc_answer *a)
{
    struct verify_chain *v = ctx;
    v->answered++;
    if (a->status == ETH_RPC_NOT_FOUND) {
        snprintf(v->why, sizeof(v->why), "the node has no block %" PRIu64, v->block_number);
        return;
    }
    if (a->status != ETH_RPC_OK) {
        v->transport_failed = true;
        snprintf(v->why, sizeof(v->why), "eth_getBlockByNumber: %s", a->message);
        return;
    }
    v->block_ok = memcmp(a->block.hash, v->block_hash, 32) == 0;
    if (!v->block_ok && v->why[0] == '\0')
        snprintf(v->why, sizeof(v->why),
                 "the node's block %" PRIu64 " has another hash (the block was reorged away)",
                 v->block_number);
}

static bool verify_chain_log_eq(const json_t *body, const struct eth_log *l)
{
    const json_t *topics = json_object_get(body, "topics");
    if (!json_is_array(topics) || json_array_size(topics) != l->topic_count)
        return false;
    for (size_t i = 0; i < l->topic_count; i++)
        if (!verify_chain_hex_eq(json_array_get(topics, i), l->topics[i], 32))
            return false;
    return verify_chain_hex_eq(json_object_get(body, "tx_hash"), l->tx_hash, 32) &&
           verify_chain_hex_eq(json_object_get(body, "address"), l->address, 20) &&
           verify_chain_hex_eq(json_object_get(body, "data"), l->data, l->data_len);
}

static void verify_chain_on_logs(void *ctx, const struct eth_rpc_answer *a)
{
    struct verify_chain *v = ctx;
    v->answered++;
    if (a->status != ETH_RPC_OK) {
        if (a->status != ETH_RPC_RPC_ERROR)
            v->transport_failed = true;
        if (v->why[0] == '\0')
            snprintf(v->why, sizeof(v->why), "eth_getLogs: %s", a->message);
        return;
    }
    uint64_t index = v->log_index;
    for (size_t i = 0; i < a->log_count; i++) {
        const struct eth_log *l = &a->logs[i];
        if (l->log_index != index)
            continue;
        v->log_ok = memcmp(l->block_hash, v->block_hash, 32) == 0 && !l->removed &&
                    verify_chain_log_eq(v->body, l);
        if (!v->log_ok && v->why[0] == '\0')
            snprintf(v->why, sizeof(v->why),
                     "the block's log %" PRIu64 " is not the notified one (tx, address, topics "
                     "or data differ)",
                     index);
        return;
    }
    if (v->why[0] == '\0')
        snprintf(v->why, sizeof(v->why), "the block has no log %" PRIu64, index);
}

/* A non-negative whole number below 2^53 (canonical JSON may hold it as a real). */
static bool verify_chain_u64(const json_t *j, uint64_t *out)
{
    if (json_is_integer(j) && json_integer_value(j) >= 0) {
        *out = (uint64_t)json_integer_value(j);
        return true;
    }
    double d = json_is_real(j) ? json_real_value(j) : -1.0;
    if (d < 0.0 || d > 9007199254740992.0 || d != (double)(uint64_t)d)
        return false;
    *out = (uint64_t)d;
    return true;
}

/* Reads body's block keys into v. False when they are malformed. */
static bool verify_chain_keys(const json_t *body, struct verify_chain *v)
{
    const char *hash = json_string_value(json_object_get(body, "block_hash"));
    return hash != NULL && strlen(hash) == 66 &&
           eth_hex_decode_exact(hash, v->block_hash, 32) == 0 &&
           verify_chain_u64(json_object_get(body, "block_number"), &v->block_number) &&
           verify_chain_u64(json_object_get(body, "log_index"), &v->log_index);
}

int verify_notification(const json_t *envelope, const char *rpc_url)
{
    const char *type = json_string_value(json_object_get(envelope, "type"));
    const json_t *body = json_object_get(envelope, "body");
    struct verify_chain v = {.body = body};
    if (type == NULL || strcmp(type, "ledgermq.chain.log") != 0 || !json_is_object(body) ||
        !verify_chain_keys(body, &v)) {
        fprintf(stderr, "ledgermq: notification: unusable input: not a ledgermq.chain.log "
                        "envelope with block_hash, block_number and log_index\n");
        return VERIFY_EXIT_USAGE;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return VERIFY_EXIT_USAGE;
    struct eth_rpc_config cfg = {.url = rpc_url, .timeout_ms = VERIFY_CHAIN_TIMEOUT_MS};
    struct eth_rpc *rpc = NULL;
    struct eth_rpc_batch *batch = NULL;
    int rc = eth_rpc_create(&loop, &cfg, &rpc);
    if (rc != LMQ_OK) {
        fprintf(stderr, "ledgermq: --rpc: expected an http:// or https:// URL\n");
        uv_loop_close(&loop);
        return VERIFY_EXIT_USAGE;
    }
    char hash_hex[67];
    if (eth_hex_encode(v.block_hash, 32, hash_hex, sizeof(hash_hex)) != LMQ_OK)
        hash_hex[0] = '\0';
    /* The block's logs by number, each naming its block hash (compared in the callback). */
    struct eth_rpc_log_filter f = {.from_block = v.block_number, .to_block = v.block_number};
    rc = eth_rpc_batch_begin(rpc, &batch);
    if (rc == LMQ_OK)
        rc = eth_rpc_block_by_number(rpc, batch, v.block_number, verify_chain_on_block, &v);
    if (rc == LMQ_OK)
        rc = eth_rpc_logs(rpc, batch, &f, verify_chain_on_logs, &v);
    if (rc == LMQ_OK)
        rc = eth_rpc_batch_send(batch);
    else if (batch != NULL)
        eth_rpc_batch_discard(batch);
    for (int guard = 0; rc == LMQ_OK && v.answered < 2 && guard < 1000000; guard++)
        uv_run(&loop, UV_RUN_ONCE);
    eth_rpc_close(rpc);
    uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
    if (rc != LMQ_OK || v.transport_failed) {
        fprintf(stderr, "ledgermq: notification: cannot ask the node: %s\n", v.why);
        return VERIFY_EXIT_USAGE;
    }
    if (!v.block_ok || !v.log_ok) {
        fprintf(stderr, "ledgermq: notification: not verified: %s\n", v.why);
        return VERIFY_EXIT_FAILED;
    }
    printf("{\"block_hash\":\"%s\",\"block_number\":%" PRIu64 ",\"ok\":true}\n", hash_hex,
           v.block_number);
    return VERIFY_EXIT_OK;
}
