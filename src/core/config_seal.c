/*
 * [seal]: sealing ledger checkpoints to Ethereum (src/seal/seal.h, docs/PROTOCOL.md "Sealing").
 * The section is all or nothing: any key set needs rpc, key_file and chain_id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_internal.h"
#include "jobs/jobs_schedule.h"

#define CONFIG_SEAL_KEYS                                                                           \
    "rpc, key_file, chain_id, every, every_entries, confirmations, gas_limit, max_fee_gwei or "    \
    "bump_after_s"

/* Bounds of the numeric keys: what makes sense for a seal transaction. */
static const struct {
    const char *name;
    uint64_t min, max;
} config_seal_numbers[] = {
    {"chain_id", 1, (1ULL << 53)},   {"every_entries", 0, 1000000000ULL},
    {"confirmations", 1, 10000},     {"gas_limit", 21000, 30000000},
    {"max_fee_gwei", 1, 1000000ULL}, {"bump_after_s", 1, 86400},
};

static int config_seal_number(struct lmq_config *cfg, const char *key, const char *value,
                              bool *known, char *err, size_t err_len)
{
    struct lmq_seal_config *s = &cfg->seal;
    uint64_t *u64[] = {&s->chain_id,  &s->every_entries, NULL,
                       &s->gas_limit, &s->max_fee_gwei,  NULL};
    uint32_t *u32[] = {NULL, NULL, &s->confirmations, NULL, NULL, &s->bump_after_s};
    *known = false;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(config_seal_numbers); i++) {
        if (strcmp(key, config_seal_numbers[i].name) != 0)
            continue;
        *known = true;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || errno != 0 || end == value || *end != '\0' ||
            v < config_seal_numbers[i].min || v > config_seal_numbers[i].max) {
            lmq_errf(err, err_len, "[seal] %s: expected an integer %llu..%llu, got \"%.40s\"", key,
                     (unsigned long long)config_seal_numbers[i].min,
                     (unsigned long long)config_seal_numbers[i].max, value);
            return LMQ_EINVAL;
        }
        if (u64[i] != NULL)
            *u64[i] = v;
        else
            *u32[i] = (uint32_t)v;
        return LMQ_OK;
    }
    return LMQ_OK;
}

static int config_seal_every(struct lmq_config *cfg, const char *value, char *err, size_t err_len)
{
    struct lmq_seal_config *s = &cfg->seal;
    char schedule[sizeof(s->schedule)];
    struct jobs_schedule parsed;
    char why[128] = "";
    int n = snprintf(schedule, sizeof(schedule), "@every %s", value);
    if (strlen(value) >= sizeof(s->every) || n < 0 || (size_t)n >= sizeof(schedule) ||
        jobs_schedule_parse(schedule, &parsed, why, sizeof(why)) != LMQ_OK) {
        lmq_errf(err, err_len, "[seal] every: expected a period like 30s, 10m or 1h, got \"%.40s\"",
                 value);
        return LMQ_EINVAL;
    }
    memcpy(s->every, value, strlen(value) + 1);
    memcpy(s->schedule, schedule, (size_t)n + 1);
    return LMQ_OK;
}

static int config_seal_text(char *dst, size_t cap, const char *key, const char *value, bool url,
                            char *err, size_t err_len)
{
    size_t n = strlen(value);
    bool scheme = strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0;
    if (n == 0 || n >= cap || (url && (!scheme || strpbrk(value, " \t\r\n") != NULL))) {
        lmq_errf(err, err_len, "[seal] %s: expected %s of at most %zu bytes", key,
                 url ? "an http:// or https:// URL" : "a path", cap - 1);
        return LMQ_EINVAL;
    }
    memcpy(dst, value, n + 1);
    return LMQ_OK;
}

int config_set_seal(struct lmq_config *cfg, const char *key, const char *value, char *err,
                    size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && key != NULL && value != NULL);
    int rc = LMQ_OK;
    bool known = true;
    if (strcmp(key, "rpc") == 0)
        rc = config_seal_text(cfg->seal.rpc, sizeof(cfg->seal.rpc), key, value, true, err, err_len);
    else if (strcmp(key, "key_file") == 0)
        rc = config_seal_text(cfg->seal.key_file, sizeof(cfg->seal.key_file), key, value, false,
                              err, err_len);
    else if (strcmp(key, "every") == 0)
        rc = config_seal_every(cfg, value, err, err_len);
    else
        rc = config_seal_number(cfg, key, value, &known, err, err_len);
    if (rc == LMQ_OK && !known) {
        lmq_errf(err, err_len, "[seal] %s: unknown key (expected " CONFIG_SEAL_KEYS ")", key);
        rc = LMQ_EINVAL;
    }
    if (rc == LMQ_OK)
        cfg->seal.any_set = true;
    return rc;
}

int config_validate_seal(const struct lmq_config *cfg, char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && err != NULL);
    const struct lmq_seal_config *s = &cfg->seal;
    if (!s->any_set)
        return LMQ_OK;
    const char *missing = s->rpc[0] == '\0'        ? "rpc"
                          : s->key_file[0] == '\0' ? "key_file"
                          : s->chain_id == 0       ? "chain_id"
                                                   : NULL;
    if (missing != NULL) {
        lmq_errf(err, err_len, "[seal] needs %s (sealing needs rpc, key_file and chain_id)",
                 missing);
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}
