/*
 * The [webhook.NAME] sections and [events] (docs/PROTOCOL.md "Webhooks"; README's configuration
 * reference): one endpoint per section, found by name, in file order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_internal.h"
#include "core/lmq.h"

/* The keys of a [webhook.NAME] section, as the unknown-key message lists them. */
/* [events] keep at most: 3650 days. */
#define CONFIG_EVENTS_KEEP_MAX_S (3650ULL * 86400)

#define CONFIG_WEBHOOK_KEYS                                                                        \
    "url, secret, events, timeout_ms, max_attempts, max_in_flight, retry_base_ms, "                \
    "retry_max_ms, breaker_failures or breaker_open_ms"

static bool config_webhook_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > LMQ_WEBHOOK_NAME_MAX_CHARS)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The endpoint named name: found, or added with the defaults. NULL past LMQ_WEBHOOKS_MAX. */
static struct lmq_webhook_config *config_webhook_get(struct lmq_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->webhook_count; i++) {
        if (strcmp(cfg->webhooks[i].name, name) == 0)
            return &cfg->webhooks[i];
    }
    if (cfg->webhook_count == LMQ_WEBHOOKS_MAX)
        return NULL;
    struct lmq_webhook_config *w = &cfg->webhooks[cfg->webhook_count++];
    *w = (struct lmq_webhook_config){
        .timeout_ms = 5000,
        .max_attempts = 10,
        .max_in_flight = 1,
        .retry_base_ms = 500,
        .retry_max_ms = 60000,
        .breaker_failures = 5,
        .breaker_open_ms = 30000,
    };
    snprintf(w->name, sizeof(w->name), "%s", name);
    return w;
}

/* True for an event type or a prefix "x.*": [a-z0-9_.] then optionally ".*". */
static bool config_event_pattern_valid(const char *s, size_t n)
{
    if (n == 0 || n > LMQ_EVENT_TYPE_MAX_CHARS)
        return false;
    if (n == 1 && s[0] == '*')
        return true;
    size_t body = n >= 2 && s[n - 2] == '.' && s[n - 1] == '*' ? n - 2 : n;
    for (size_t i = 0; i < body; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return body > 0;
}

static int config_webhook_events(struct lmq_webhook_config *w, const char *value, char *err,
                                 size_t err_len)
{
    uint32_t count = 0;
    char list[LMQ_WEBHOOK_EVENTS_MAX][LMQ_EVENT_TYPE_MAX_CHARS + 1];
    for (const char *p = value; *p != '\0';) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',' && *end != ' ')
            end++;
        size_t n = (size_t)(end - p);
        if (n == 0)
            break;
        if (!config_event_pattern_valid(p, n) || count == LMQ_WEBHOOK_EVENTS_MAX) {
            lmq_errf(err, err_len,
                     "[webhook.%s] events: expected at most %d event types (like "
                     "envelope.accepted) or prefixes (like security.*), comma-separated",
                     w->name, LMQ_WEBHOOK_EVENTS_MAX);
            return LMQ_EINVAL;
        }
        memcpy(list[count], p, n);
        list[count++][n] = '\0';
        p = end;
    }
    memcpy(w->events, list, sizeof(list));
    w->event_count = count;
    return 0;
}

static int config_webhook_number(struct lmq_webhook_config *w, const char *key, const char *value,
                                 char *err, size_t err_len)
{
    static const struct {
        const char *name;
        uint32_t min, max;
    } keys[] = {
        {"timeout_ms", 100, 600000},       {"max_attempts", 1, 1000},
        {"max_in_flight", 1, 64},          {"retry_base_ms", 10, 3600000},
        {"retry_max_ms", 10, 86400000},    {"breaker_failures", 1, 1000},
        {"breaker_open_ms", 10, 86400000},
    };
    uint32_t *fields[] = {&w->timeout_ms,     &w->max_attempts, &w->max_in_flight,
                          &w->retry_base_ms,  &w->retry_max_ms, &w->breaker_failures,
                          &w->breaker_open_ms};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(key, keys[i].name) != 0)
            continue;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || errno != 0 || end == value || *end != '\0' ||
            v < keys[i].min || v > keys[i].max) {
            lmq_errf(err, err_len, "[webhook.%s] %s: expected an integer %u..%u, got \"%.40s\"",
                     w->name, key, keys[i].min, keys[i].max, value);
            return LMQ_EINVAL;
        }
        *fields[i] = (uint32_t)v;
        return 0;
    }
    lmq_errf(err, err_len, "[webhook.%s] %s: unknown key (expected " CONFIG_WEBHOOK_KEYS ")",
             w->name, key);
    return LMQ_EINVAL;
}

int config_set_webhook(struct lmq_config *cfg, const char *section, const char *key,
                       const char *value, char *err, size_t err_len)
{
    const char *name = section + strlen("webhook.");
    if (!config_webhook_name_valid(name)) {
        lmq_errf(err, err_len, "[%.60s]: a webhook's name is 1..%d characters of A-Z a-z 0-9 _ -",
                 section, LMQ_WEBHOOK_NAME_MAX_CHARS);
        return LMQ_EINVAL;
    }
    struct lmq_webhook_config *w = config_webhook_get(cfg, name);
    if (w == NULL) {
        lmq_errf(err, err_len, "[%s]: at most %d webhooks", section, LMQ_WEBHOOKS_MAX);
        return LMQ_EINVAL;
    }
    if (strcmp(key, "url") == 0) {
        size_t n = strlen(value);
        bool scheme = strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0;
        if (!scheme || n >= sizeof(w->url) || strpbrk(value, " \t\r\n") != NULL) {
            lmq_errf(err, err_len,
                     "[webhook.%s] url: expected an http:// or https:// URL of at most %d bytes",
                     name, LMQ_WEBHOOK_URL_MAX_BYTES - 1);
            return LMQ_EINVAL;
        }
        memcpy(w->url, value, n + 1);
        return 0;
    }
    if (strcmp(key, "secret") == 0) {
        size_t n = strlen(value);
        if (n < LMQ_WEBHOOK_SECRET_MIN_BYTES || n >= sizeof(w->secret)) {
            lmq_errf(err, err_len, "[webhook.%s] secret: expected %d..%d bytes", name,
                     LMQ_WEBHOOK_SECRET_MIN_BYTES, LMQ_WEBHOOK_SECRET_MAX_BYTES - 1);
            return LMQ_EINVAL;
        }
        memcpy(w->secret, value, n + 1);
        return 0;
    }
    if (strcmp(key, "events") == 0)
        return config_webhook_events(w, value, err, err_len);
    return config_webhook_number(w, key, value, err, err_len);
}

/* [events] keep: 0 (every event is kept) or <n>[s|m|h|d], at most 3650 days. */
static int config_events_keep(struct lmq_config *cfg, const char *value, char *err, size_t err_len)
{
    static const struct {
        char unit;
        uint64_t s;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    uint64_t n = 0, mult = 1;
    size_t digits = 0;
    for (; value[digits] >= '0' && value[digits] <= '9' && digits < 12; digits++)
        n = n * 10 + (uint64_t)(value[digits] - '0');
    const char *rest = value + digits;
    bool ok = digits > 0 && digits < 12;
    if (ok && rest[0] != '\0') {
        ok = false;
        for (size_t i = 0; i < LMQ_ARRAY_LEN(units) && rest[1] == '\0'; i++)
            if (rest[0] == units[i].unit)
                ok = true, mult = units[i].s;
    }
    if (!ok || n * mult > CONFIG_EVENTS_KEEP_MAX_S) {
        lmq_errf(err, err_len,
                 "[events] keep: expected 0 or <n>s|m|h|d up to 3650d (e.g. 7d), got \"%.40s\"",
                 value);
        return LMQ_EINVAL;
    }
    cfg->events_keep_s = n * mult;
    LMQ_ASSERT(cfg->events_keep_s <= CONFIG_EVENTS_KEEP_MAX_S);
    return 0;
}

int config_set_events(struct lmq_config *cfg, const char *key, const char *value, char *err,
                      size_t err_len)
{
    if (strcmp(key, "keep") == 0)
        return config_events_keep(cfg, value, err, err_len);
    if (strcmp(key, "security_per_s") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || errno != 0 || end == value || *end != '\0' ||
            v < 1 || v > CONFIG_EVENTS_SECURITY_PER_S_MAX) {
            lmq_errf(err, err_len,
                     "[events] security_per_s: expected an integer 1..%u, got \"%.40s\"",
                     CONFIG_EVENTS_SECURITY_PER_S_MAX, value);
            return LMQ_EINVAL;
        }
        cfg->events_security_per_s = (uint32_t)v;
        return 0;
    }
    if (strcmp(key, "record") != 0) {
        lmq_errf(err, err_len, "[events] %s: unknown key (expected record, security_per_s, keep)",
                 key);
        return LMQ_EINVAL;
    }
    if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
        lmq_errf(err, err_len, "[events] record: expected true or false, got \"%.40s\"", value);
        return LMQ_EINVAL;
    }
    cfg->events_record = strcmp(value, "true") == 0;
    return 0;
}

int config_validate_webhooks(const struct lmq_config *cfg, char *err, size_t err_len)
{
    for (size_t i = 0; i < cfg->webhook_count; i++) {
        const struct lmq_webhook_config *w = &cfg->webhooks[i];
        if (w->url[0] == '\0' || w->secret[0] == '\0') {
            lmq_errf(err, err_len, "[webhook.%s] needs url and secret", w->name);
            return LMQ_EINVAL;
        }
        if (w->retry_max_ms < w->retry_base_ms) {
            lmq_errf(err, err_len, "[webhook.%s] retry_max_ms is below retry_base_ms", w->name);
            return LMQ_EINVAL;
        }
    }
    return 0;
}
