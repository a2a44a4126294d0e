/*
 * [chain]: the chain follower's keys (config.h struct lmq_chain_config; docs/PROTOCOL.md
 * "Chain follower").
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/lmq.h"
#include "core/config_internal.h"

#define CONFIG_CHAIN_KEYS                                                                          \
    "rpc, start_block, poll_ms, timeout_ms, batch_blocks, max_reorg_depth, confirmations, "        \
    "degraded_lag_blocks or healthz_503_when_down"

void config_chain_defaults(struct lmq_config *cfg)
{
    struct lmq_chain_config *c = &cfg->chain;
    c->rpc[0] = '\0';
    c->start_latest = true;
    c->start_block = 0;
    c->poll_ms = 1000;
    c->timeout_ms = 5000;
    c->batch_blocks = 100;
    c->max_reorg_depth = 64;
    c->confirmations = 12;
    c->degraded_lag_blocks = 10;
    c->healthz_503_when_down = true;
}

static bool config_chain_u64(const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (value[0] < '0' || value[0] > '9' || errno != 0 || end == value || *end != '\0' || v < min ||
        v > max)
        return false;
    *out = v;
    return true;
}

/* The integer keys: name, bounds, where. */
struct config_chain_int {
    const char *key;
    uint64_t min, max;
    size_t offset;
};

static const struct config_chain_int config_chain_ints[] = {
    {"poll_ms", 10, 600000, offsetof(struct lmq_chain_config, poll_ms)},
    {"timeout_ms", 10, 600000, offsetof(struct lmq_chain_config, timeout_ms)},
    {"batch_blocks", 1, 1000, offsetof(struct lmq_chain_config, batch_blocks)},
    {"max_reorg_depth", 1, 999, offsetof(struct lmq_chain_config, max_reorg_depth)},
    {"confirmations", 1, 10000, offsetof(struct lmq_chain_config, confirmations)},
    {"degraded_lag_blocks", 1, 1000000, offsetof(struct lmq_chain_config, degraded_lag_blocks)},
};

static int config_chain_rpc(struct lmq_chain_config *c, const char *value, char *err,
                            size_t err_len)
{
    size_t len = strlen(value);
    bool scheme = strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0;
    if (!scheme || len >= sizeof(c->rpc) || strpbrk(value, " \t\r\n") != NULL) {
        lmq_errf(err, err_len, "[chain] rpc: expected an http:// or https:// URL, got \"%.40s\"",
                 value);
        return LMQ_EINVAL;
    }
    memcpy(c->rpc, value, len + 1);
    return LMQ_OK;
}

int config_set_chain(struct lmq_config *cfg, const char *key, const char *value, char *err,
                     size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && key != NULL && value != NULL);
    struct lmq_chain_config *c = &cfg->chain;
    if (strcmp(key, "rpc") == 0)
        return config_chain_rpc(c, value, err, err_len);
    if (strcmp(key, "start_block") == 0) {
        uint64_t v = 0;
        c->start_latest = strcmp(value, "latest") == 0;
        if (!c->start_latest && !config_chain_u64(value, 0, UINT64_MAX / 2, &v)) {
            lmq_errf(err, err_len,
                     "[chain] start_block: expected a block number or latest, got \"%.40s\"",
                     value);
            return LMQ_EINVAL;
        }
        c->start_block = v;
        return LMQ_OK;
    }
    if (strcmp(key, "healthz_503_when_down") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            lmq_errf(err, err_len,
                     "[chain] healthz_503_when_down: expected true or false, got \"%.40s\"", value);
            return LMQ_EINVAL;
        }
        c->healthz_503_when_down = strcmp(value, "true") == 0;
        return LMQ_OK;
    }
    for (size_t i = 0; i < sizeof(config_chain_ints) / sizeof(config_chain_ints[0]); i++) {
        const struct config_chain_int *k = &config_chain_ints[i];
        if (strcmp(key, k->key) != 0)
            continue;
        uint64_t v = 0;
        if (!config_chain_u64(value, k->min, k->max, &v)) {
            lmq_errf(err, err_len, "[chain] %s: expected an integer %llu..%llu, got \"%.40s\"", key,
                     (unsigned long long)k->min, (unsigned long long)k->max, value);
            return LMQ_EINVAL;
        }
        uint32_t narrow = (uint32_t)v;
        memcpy((char *)c + k->offset, &narrow, sizeof(narrow));
        return LMQ_OK;
    }
    lmq_errf(err, err_len, "[chain] %s: unknown key (expected " CONFIG_CHAIN_KEYS ")", key);
    return LMQ_EINVAL;
}
