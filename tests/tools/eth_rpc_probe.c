/*
 * eth-rpc-probe: runs src/eth/eth_rpc.c on a uv loop against a URL and prints each result as a
 * JSON line, for tests/integration/test_eth_rpc.py. Test-only.
 *
 *   eth-rpc-probe [--timeout-ms N] [--attempts N] [--retry-ms N] [--max-bytes N]
 *                 [--close-after N] URL CMD...
 *
 * Commands, run one after the other: chain_id, block_number, gas_price, priority_fee,
 * block:N|latest, logs:FROM:TO[:ADDR[,ADDR...]], nonce:ADDR, receipt:HASH, tx:HASH,
 * send_raw:HEX, call:METHOD:PARAMS_JSON, batch:N (N eth_getBlockByNumber calls of blocks
 * 0..N-1 modulo the head + 1, in one POST). A last line {"posts": N} counts the POSTs.
 * --close-after N closes the client from inside the Nth answer's callback (the calls still
 * due get no callback) and prints {"closed": N}.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eth/eth_rpc.h"

#define PROBE_COMMANDS_MAX 64

struct probe;
/* A batch call's context: which call it was (printed as "i"). */
struct probe_slot {
    struct probe *p;
    size_t i;
};

struct probe {
    uv_loop_t loop;
    struct eth_rpc *rpc;
    char **cmds;
    size_t cmd_count, next;
    const char *cmd; /* running */
    size_t waiting;  /* callbacks still to come for cmd */
    int failures;    /* queuing failures (exit status) */
    size_t answers, close_after;
    struct probe_slot slots[ETH_RPC_BATCH_MAX];
};

static void probe_hex(json_t *o, const char *key, const uint8_t *data, size_t len)
{
    char *s = malloc(2 + 2 * len + 1);
    if (s == NULL)
        abort();
    s[0] = '0';
    s[1] = 'x';
    for (size_t i = 0; i < len; i++)
        snprintf(s + 2 + 2 * i, 3, "%02x", data[i]);
    json_object_set_new(o, key, json_string(s));
    free(s);
}

static void probe_next(struct probe *p);

static json_t *probe_logs_json(const struct eth_rpc_answer *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->log_count; i++) {
        const struct eth_log *l = &a->logs[i];
        json_t *o = json_object();
        probe_hex(o, "address", l->address, 20);
        json_t *topics = json_array();
        for (size_t k = 0; k < l->topic_count; k++) {
            json_t *t = json_object();
            probe_hex(t, "t", l->topics[k], 32);
            json_array_append(topics, json_object_get(t, "t"));
            json_decref(t);
        }
        json_object_set_new(o, "topics", topics);
        probe_hex(o, "data", l->data, l->data_len);
        json_object_set_new(o, "blockNumber", json_integer((json_int_t)l->block_number));
        probe_hex(o, "blockHash", l->block_hash, 32);
        probe_hex(o, "transactionHash", l->tx_hash, 32);
        json_object_set_new(o, "logIndex", json_integer((json_int_t)l->log_index));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* The typed part of an answer, by command. */
static void probe_typed(const char *cmd, const struct eth_rpc_answer *a, json_t *o)
{
    if (strncmp(cmd, "block:", 6) == 0 || strncmp(cmd, "batch:", 6) == 0) {
        json_object_set_new(o, "number", json_integer((json_int_t)a->block.number));
        probe_hex(o, "hash", a->block.hash, 32);
        probe_hex(o, "parentHash", a->block.parent_hash, 32);
        json_object_set_new(o, "timestamp", json_integer((json_int_t)a->block.timestamp));
        if (a->block.has_base_fee)
            json_object_set_new(o, "baseFee", json_integer((json_int_t)a->block.base_fee_per_gas));
    } else if (strncmp(cmd, "logs", 4) == 0) {
        json_object_set_new(o, "logs", probe_logs_json(a));
    } else if (strncmp(cmd, "send_raw", 8) == 0) {
        probe_hex(o, "hash", a->hash, 32);
    } else if (strncmp(cmd, "receipt", 7) == 0) {
        probe_hex(o, "blockHash", a->receipt.block_hash, 32);
        json_object_set_new(o, "blockNumber", json_integer((json_int_t)a->receipt.block_number));
        probe_hex(o, "from", a->receipt.from, 20);
        json_object_set_new(o, "success", json_boolean(a->receipt.success));
        json_object_set_new(o, "gasUsed", json_integer((json_int_t)a->receipt.gas_used));
        json_object_set_new(o, "logCount", json_integer((json_int_t)a->receipt.log_count));
    } else if (strncmp(cmd, "tx", 2) == 0) {
        probe_hex(o, "from", a->tx.from, 20);
        json_object_set_new(o, "nonce", json_integer((json_int_t)a->tx.nonce));
        json_object_set_new(o, "mined", json_boolean(a->tx.mined));
        probe_hex(o, "input", a->tx.input, a->tx.input_len);
    } else if (strncmp(cmd, "call", 4) == 0) {
        json_object_set(o, "value", (json_t *)a->value);
    } else {
        json_object_set_new(o, "value", json_integer((json_int_t)a->quantity));
    }
}

static void probe_print(struct probe *p, const struct eth_rpc_answer *a, json_int_t index)
{
    json_t *o = json_pack("{s:s, s:s}", "cmd", p->cmd, "status", eth_rpc_status_name(a->status));
    if (index >= 0)
        json_object_set_new(o, "i", json_integer(index));
    if (a->status == ETH_RPC_OK)
        probe_typed(p->cmd, a, o);
    else
        json_object_set_new(o, "message", json_string(a->message));
    if (a->status == ETH_RPC_RPC_ERROR)
        json_object_set_new(o, "code", json_integer((json_int_t)a->code));
    char *line = json_dumps(o, JSON_COMPACT);
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    json_decref(o);
    if (++p->answers == p->close_after) {
        printf("{\"closed\":%zu}\n", p->answers);
        fflush(stdout);
        eth_rpc_close(p->rpc); /* from inside a callback: nothing more may be called */
        p->rpc = NULL;
        return;
    }
    if (--p->waiting == 0)
        probe_next(p);
}

static void probe_done(void *ctx, const struct eth_rpc_answer *a)
{
    probe_print(ctx, a, -1);
}

static void probe_slot_done(void *ctx, const struct eth_rpc_answer *a)
{
    struct probe_slot *s = ctx;
    probe_print(s->p, a, (json_int_t)s->i);
}

static int probe_hex_arg(const char *s, uint8_t *out, size_t n)
{
    return eth_rpc_parse_fixed(s, strlen(s), out, n);
}

/* The batch: eth_blockNumber first, then blocks by number. */
static void probe_batch_head(void *ctx, const struct eth_rpc_answer *a);

static int probe_start(struct probe *p, const char *cmd)
{
    const char *arg = strchr(cmd, ':');
    arg = arg != NULL ? arg + 1 : "";
    uint8_t bytes[32];
    p->waiting = 1;
    if (strcmp(cmd, "chain_id") == 0)
        return eth_rpc_chain_id(p->rpc, NULL, probe_done, p);
    if (strcmp(cmd, "block_number") == 0)
        return eth_rpc_block_number(p->rpc, NULL, probe_done, p);
    if (strcmp(cmd, "gas_price") == 0)
        return eth_rpc_gas_price(p->rpc, NULL, probe_done, p);
    if (strcmp(cmd, "priority_fee") == 0)
        return eth_rpc_max_priority_fee(p->rpc, NULL, probe_done, p);
    if (strncmp(cmd, "block:", 6) == 0)
        return eth_rpc_block_by_number(p->rpc, NULL,
                                       strcmp(arg, "latest") == 0 ? ETH_RPC_BLOCK_LATEST
                                                                  : strtoull(arg, NULL, 0),
                                       probe_done, p);
    if (strncmp(cmd, "nonce:", 6) == 0)
        return probe_hex_arg(arg, bytes, 20) != LMQ_OK
                   ? LMQ_EINVAL
                   : eth_rpc_transaction_count(p->rpc, NULL, bytes, probe_done, p);
    if (strncmp(cmd, "receipt:", 8) == 0)
        return probe_hex_arg(arg, bytes, 32) != LMQ_OK
                   ? LMQ_EINVAL
                   : eth_rpc_transaction_receipt(p->rpc, NULL, bytes, probe_done, p);
    if (strncmp(cmd, "tx:", 3) == 0)
        return probe_hex_arg(arg, bytes, 32) != LMQ_OK
                   ? LMQ_EINVAL
                   : eth_rpc_transaction_by_hash(p->rpc, NULL, bytes, probe_done, p);
    if (strncmp(cmd, "send_raw:", 9) == 0) {
        size_t cap = strlen(arg) / 2 + 1, len = 0;
        uint8_t *raw = malloc(cap);
        int rc = raw == NULL ? LMQ_ENOMEM : eth_rpc_parse_data(arg, strlen(arg), raw, cap, &len);
        if (rc == LMQ_OK)
            rc = eth_rpc_send_raw_transaction(p->rpc, NULL, raw, len, probe_done, p);
        free(raw);
        return rc;
    }
    if (strncmp(cmd, "call:", 5) == 0) {
        const char *colon = strchr(arg, ':');
        if (colon == NULL)
            return LMQ_EINVAL;
        char method[ETH_RPC_METHOD_MAX_CHARS + 1];
        snprintf(method, sizeof(method), "%.*s", (int)(colon - arg), arg);
        json_t *params = json_loads(colon + 1, 0, NULL);
        return params == NULL ? LMQ_EINVAL
                              : eth_rpc_call(p->rpc, NULL, method, params, probe_done, p);
    }
    if (strncmp(cmd, "logs:", 5) == 0) {
        struct eth_rpc_log_filter f = {0};
        uint8_t addrs[ETH_RPC_FILTER_ADDRESSES_MAX][20];
        char *end = NULL;
        f.from_block = strtoull(arg, &end, 0);
        if (*end != ':')
            return LMQ_EINVAL;
        f.to_block = strtoull(end + 1, &end, 0);
        while (*end == ':' || *end == ',') {
            if (f.address_count == ETH_RPC_FILTER_ADDRESSES_MAX || strlen(end + 1) < 42 ||
                eth_rpc_parse_fixed(end + 1, 42, addrs[f.address_count], 20) != LMQ_OK)
                return LMQ_EINVAL;
            f.address_count++;
            end += 43;
        }
        f.addresses = (const uint8_t(*)[20])addrs;
        return eth_rpc_logs(p->rpc, NULL, &f, probe_done, p);
    }
    if (strncmp(cmd, "batch:", 6) == 0)
        return eth_rpc_block_number(p->rpc, NULL, probe_batch_head, p);
    return LMQ_EINVAL;
}

static void probe_batch_head(void *ctx, const struct eth_rpc_answer *a)
{
    struct probe *p = ctx;
    if (a->status != ETH_RPC_OK) {
        probe_done(p, a);
        return;
    }
    size_t n = strtoul(strchr(p->cmd, ':') + 1, NULL, 10);
    struct eth_rpc_batch *b = NULL;
    int rc = n <= ETH_RPC_BATCH_MAX ? eth_rpc_batch_begin(p->rpc, &b) : LMQ_ELIMIT;
    for (size_t i = 0; rc == LMQ_OK && i < n; i++) {
        p->slots[i] = (struct probe_slot){.p = p, .i = i};
        rc = eth_rpc_block_by_number(p->rpc, b, i % (a->quantity + 1), probe_slot_done,
                                     &p->slots[i]);
    }
    if (rc == LMQ_OK) {
        p->waiting = n;
        rc = eth_rpc_batch_send(b);
    } else if (b != NULL) {
        eth_rpc_batch_discard(b);
    }
    if (rc != LMQ_OK || n == 0) {
        printf("{\"cmd\":\"%s\",\"status\":\"queue_failed\",\"rc\":%d}\n", p->cmd, rc);
        p->failures++;
        probe_next(p);
    }
}

static void probe_next(struct probe *p)
{
    /* Bounded by the command count: a command that cannot be queued is reported and skipped. */
    while (p->next < p->cmd_count) {
        p->cmd = p->cmds[p->next++];
        int rc = probe_start(p, p->cmd);
        if (rc == LMQ_OK)
            return;
        printf("{\"cmd\":\"%s\",\"status\":\"queue_failed\",\"rc\":%d}\n", p->cmd, rc);
        fflush(stdout);
        p->failures++;
    }
    printf("{\"posts\":%" PRIu64 "}\n", eth_rpc_posts(p->rpc));
    fflush(stdout);
    eth_rpc_close(p->rpc);
    p->rpc = NULL;
}

int main(int argc, char **argv)
{
    struct eth_rpc_config cfg = {0};
    size_t close_after = 0;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        unsigned long long v = strtoull(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--timeout-ms") == 0)
            cfg.timeout_ms = (uint32_t)v;
        else if (strcmp(argv[i], "--attempts") == 0)
            cfg.attempts_max = (uint32_t)v;
        else if (strcmp(argv[i], "--retry-ms") == 0)
            cfg.retry_base_ms = (uint32_t)v;
        else if (strcmp(argv[i], "--max-bytes") == 0)
            cfg.answer_max_bytes = (size_t)v;
        else if (strcmp(argv[i], "--close-after") == 0)
            close_after = (size_t)v;
        else
            break;
    }
    if (i >= argc || argc - i - 1 > PROBE_COMMANDS_MAX) {
        fprintf(stderr, "usage: eth-rpc-probe [--timeout-ms N] [--attempts N] [--retry-ms N] "
                        "[--max-bytes N] [--close-after N] URL CMD...\n");
        return 2;
    }
    cfg.url = argv[i];
    struct probe p = {
        .cmds = argv + i + 1, .cmd_count = (size_t)(argc - i - 1), .close_after = close_after};
    if (uv_loop_init(&p.loop) != 0 || eth_rpc_create(&p.loop, &cfg, &p.rpc) != LMQ_OK) {
        fprintf(stderr, "eth-rpc-probe: cannot start (bad URL?)\n");
        return 2;
    }
    probe_next(&p);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    LMQ_ASSERT(uv_loop_close(&p.loop) == 0);
    return p.failures > 0 ? 1 : 0;
}
