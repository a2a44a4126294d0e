/*
 * Server configuration: defaults, then an INI file (libinih), then flags.
 * Every setting goes through lmq_config_set(), so the file and the command
 * line accept exactly the same values and give the same messages.
 */
#include "core/config.h"
#include "core/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>
#include <netinet/in.h>

#include "core/lmq.h"
#include "core/resolve.h"
#include "jobs/jobs_schedule.h"

/* A bad value is quoted in messages up to this many bytes, then "...". */
#define CONFIG_SHOW_VALUE_MAX_BYTES 64
/* One listener item of a comma-separated list: "[v6]:port" with some slack. */
#define CONFIG_LISTEN_ITEM_MAX_BYTES (LMQ_HOST_MAX_BYTES + 16)
/* Decimal digits of the largest uint64_t. */
#define CONFIG_U64_DIGITS_MAX 20
#define CONFIG_SESSION_EXPIRY_NEVER 0xFFFFFFFFu
/* The [data] keys, as the unknown-key message lists them. */
#define CONFIG_DATA_KEYS                                                                           \
    "models, assert_formats, readers_all, admins, graphql_auth, graphql_max_depth, "               \
    "graphql_max_fields, graphql_max_ms or read_budget_ms_per_s"
/* [auth] token_leeway_s: at most 5 minutes (crypto/jwt.h CRYPTO_JWT_LEEWAY_MAX_S). */
#define CONFIG_TOKEN_LEEWAY_MAX_S 300
/* [server] sys_interval: mosquitto's default (10 s); at most a day apart. */
#define CONFIG_SYS_INTERVAL_DEFAULT_S 10
#define CONFIG_SYS_INTERVAL_MAX_S 86400
/* [server] drain_grace_ms: at most 10 minutes (longer than any orchestrator's stop timeout). */
#define CONFIG_DRAIN_GRACE_MAX_MS 600000
/* [auth] ledger_bytes_per_day: 64 MiB by default (about 100,000 typical envelopes), 1 TiB at
 * most. */
#define CONFIG_LEDGER_BYTES_PER_DAY_DEFAULT (64ull * 1024 * 1024)
#define CONFIG_LEDGER_BYTES_PER_DAY_MAX (1ull << 40)

/* A numeric [limits] key: where it lives in struct lmq_limits and its range. */
struct config_limit {
    const char *key;
    size_t offset;
    size_t size_bytes;
    uint64_t min;
    uint64_t max;
    bool never_ok; /* "never" means the maximum (session expiry) */
};

#define CONFIG_LIMIT(key, field, min, max, never_ok)                                               \
    {                                                                                              \
        key, offsetof(struct lmq_limits, field), sizeof(((struct lmq_limits *)0)->field), min,     \
            max, never_ok                                                                          \
    }

static const struct config_limit config__limits[] = {
    CONFIG_LIMIT("max_connections", max_connections, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_sessions", max_sessions, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_packet_size", max_packet_size_bytes, 16, 268435460, false),
    CONFIG_LIMIT("max_inflight", max_inflight, 1, UINT16_MAX, false),
    CONFIG_LIMIT("max_queued_messages", max_queued_messages, 0, UINT32_MAX, false),
    CONFIG_LIMIT("max_queued_bytes", max_queued_bytes, 0, UINT64_MAX, false),
    CONFIG_LIMIT("max_queued_qos0", max_queued_qos0, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_subscriptions", max_subscriptions, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_topic_alias", max_topic_alias, 0, UINT16_MAX, false),
    CONFIG_LIMIT("max_topic_alias_out", max_topic_alias_out, 0, UINT16_MAX, false),
    CONFIG_LIMIT("max_keepalive", max_keepalive_s, 0, UINT16_MAX, false),
    CONFIG_LIMIT("max_session_expiry", max_session_expiry_s, 0, UINT32_MAX, true),
    CONFIG_LIMIT("default_session_expiry", default_session_expiry_s, 0, UINT32_MAX, true),
    CONFIG_LIMIT("max_sessions_per_principal", max_sessions_per_principal, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_sessions_per_address", max_sessions_per_address, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_retained_messages", max_retained_messages, 0, UINT32_MAX, false),
    CONFIG_LIMIT("max_retained_bytes", max_retained_bytes, 0, UINT64_MAX, false),
    CONFIG_LIMIT("connect_timeout_ms", connect_timeout_ms, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_output_bytes", max_output_bytes, 1, UINT64_MAX, false),
    CONFIG_LIMIT("max_memory_output_bytes", max_memory_output_bytes, 1, UINT64_MAX, false),
    CONFIG_LIMIT("slow_consumer_grace_ms", slow_consumer_grace_ms, 1, UINT32_MAX, false),
    CONFIG_LIMIT("min_free_disk", min_free_disk_bytes, 0, UINT64_MAX, false),
    /* http-parser refuses more than 80 KiB of headers on its own, whatever we allow. */
    CONFIG_LIMIT("http_max_header_bytes", http_max_header_bytes, 256, 81920, false),
    CONFIG_LIMIT("http_max_body_bytes", http_max_body_bytes, 1, 67108864, false),
    CONFIG_LIMIT("http_idle_timeout_ms", http_idle_timeout_ms, 1, UINT32_MAX, false),
    CONFIG_LIMIT("http_request_timeout_ms", http_request_timeout_ms, 1, UINT32_MAX, false),
    CONFIG_LIMIT("http_max_connections", http_max_connections, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_connections_per_address", max_connections_per_address, 1, UINT32_MAX, false),
    CONFIG_LIMIT("max_connection_rate_per_address", max_connection_rate_per_address, 1, UINT32_MAX,
                 false),
    CONFIG_LIMIT("ledger_page_max_bytes", ledger_page_max_bytes, LMQ_LEDGER_PAGE_MIN_BYTES,
                 LMQ_LEDGER_PAGE_MAX_BYTES, false),
    CONFIG_LIMIT("http_header_timeout_ms", http_header_timeout_ms, 1, UINT32_MAX, false),
    CONFIG_LIMIT("http_handshake_timeout_ms", http_handshake_timeout_ms, 1, UINT32_MAX, false),
    CONFIG_LIMIT("http_max_connections_per_address", http_max_connections_per_address, 1,
                 UINT32_MAX, false),
    CONFIG_LIMIT("http_max_handshakes_per_address", http_max_handshakes_per_address, 1, UINT32_MAX,
                 false),
    CONFIG_LIMIT("login_challenges_per_address", login_challenges_per_address, 1, 10000, false),
    CONFIG_LIMIT("login_challenges_per_key", login_challenges_per_key, 1, 10000, false),
    CONFIG_LIMIT("password_checks_per_address", password_checks_per_address, 1, 64, false),
    CONFIG_LIMIT("password_failures_before_backoff", password_failures_before_backoff, 1,
                 UINT32_MAX, false),
    CONFIG_LIMIT("password_backoff_max_ms", password_backoff_max_ms, 1000, 86400000, false),
};

/* How much of a value to show and whether to add "..." after it. */
static int config__show_len(const char *value)
{
    return (int)strnlen(value, CONFIG_SHOW_VALUE_MAX_BYTES);
}

static const char *config__show_more(const char *value)
{
    return strnlen(value, CONFIG_SHOW_VALUE_MAX_BYTES + 1) > CONFIG_SHOW_VALUE_MAX_BYTES ? "..."
                                                                                         : "";
}

/* Strict decimal: digits only, no sign, no spaces, no junk, no overflow. */
static bool config__parse_u64(const char *s, uint64_t *out)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    size_t len = strnlen(s, CONFIG_U64_DIGITS_MAX + 1);
    if (len == 0 || len > CONFIG_U64_DIGITS_MAX) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10) {
            return false;
        }
        v = v * 10 + digit;
    }
    *out = v;
    return true;
}

/* Copies a string that must fit; false (dst untouched) when it does not. */
static bool config__copy(char *dst, size_t cap, const char *src)
{
    LMQ_ASSERT(dst != NULL && src != NULL && cap > 0);
    size_t len = strnlen(src, cap);
    if (len >= cap) {
        return false;
    }
    memcpy(dst, src, len + 1);
    return true;
}

void lmq_config_defaults(struct lmq_config *cfg)
{
    LMQ_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    bool ok = config__copy(cfg->data_dir, sizeof(cfg->data_dir), "./data") &&
              config__copy(cfg->mqtt[0].host, sizeof(cfg->mqtt[0].host), "127.0.0.1");
    LMQ_ASSERT(ok);
    cfg->mqtt[0].port = 1883;
    cfg->mqtt_count = 1;
    /* What the clients (ledgermq send/listen) log in to by default: a plain `ledgermq serve`
     * must serve them. `http = none` turns it off. */
    ok = config__copy(cfg->http.host, sizeof(cfg->http.host), "127.0.0.1");
    LMQ_ASSERT(ok);
    cfg->http.port = 8080;
    cfg->http_enabled = true;
    cfg->sync = LMQ_SYNC_ALWAYS;
    cfg->log_level = LMQ_LOG_INFO;
    cfg->sys_interval_s = CONFIG_SYS_INTERVAL_DEFAULT_S;
    /* The GraphQL engine's own defaults (graphql.h struct graphql_limits). */
    cfg->data.graphql_auth = true;
    cfg->jobs.prune_idle_s = 30ULL * 24 * 3600;
    cfg->jobs.expire_batch = 500;
    cfg->jobs.prune_events_batch = 1000;
    cfg->jobs.export_max_rows = 100000;
    cfg->jobs.chaser_after_s = 86400;
    cfg->jobs.chaser_max = 3;
    snprintf(cfg->seal.every, sizeof(cfg->seal.every), "10m");
    snprintf(cfg->seal.schedule, sizeof(cfg->seal.schedule), "@every 10m");
    cfg->seal.confirmations = 12;
    cfg->seal.gas_limit = 60000;
    cfg->seal.max_fee_gwei = 500;
    cfg->seal.bump_after_s = 60;
    cfg->jobs.chaser_batch = 200;
    cfg->jobs.import_batch = 500;
    config_chain_defaults(cfg);
    cfg->jobs.import_max_file_bytes = 1ULL << 30;
    cfg->data.graphql_max_depth = 15;
    cfg->data.graphql_max_fields = 1000;
    /* A request runs on the loop thread: MQTT waits while it runs (checked between batches). */
    cfg->data.graphql_max_ms = 250;
    cfg->plugins.slow_us = 1000;
    /* Well under common keepalives (a waiting publisher's input is not read meanwhile). */
    cfg->verdict_timeout_ms = LMQ_VERDICT_TIMEOUT_DEFAULT_MS;
    cfg->verdicts_per_address = LMQ_VERDICTS_PER_ADDRESS_DEFAULT;
    /* One client address may hold the loop for a fifth of each second with data reads. */
    cfg->data.read_budget_ms_per_s = 200;
    cfg->events_security_per_s = 100;
    cfg->drain_grace_ms = 0; /* a stop is as quick as before; set it behind a load balancer */
    /* Field by field: assigning a compound literal may leave padding bytes undefined, and
     * callers compare whole configurations with memcmp. */
    struct lmq_limits *l = &cfg->limits;
    l->max_connections = 10000;
    l->max_sessions = 100000;
    l->max_packet_size_bytes = 1048576;
    l->max_inflight = 64;
    l->max_queued_messages = 10000;
    l->max_queued_bytes = 67108864;
    l->max_queued_qos0 = 1000;
    /* One offline or slow subscriber must not stop publishers for everyone else
     * (docs/PROTOCOL.md "Queue overflow"). */
    l->queue_overflow = LMQ_OVERFLOW_DROP_OLDEST;
    l->max_subscriptions = 1000;
    l->max_topic_alias = 64;
    /* Enough for the topics a typical subscriber hears most; each alias holds a topic copy of at
     * most 1 KiB (docs/PROTOCOL.md, "Topic aliases towards clients"). */
    l->max_topic_alias_out = 16;
    l->max_keepalive_s = 0;
    l->max_session_expiry_s = CONFIG_SESSION_EXPIRY_NEVER;
    l->default_session_expiry_s = 604800; /* 7 days */
    l->max_sessions_per_principal = 1000;
    l->max_sessions_per_address = 1000;
    l->max_retained_messages = 100000;
    l->max_retained_bytes = 268435456;
    l->connect_timeout_ms = 10000;
    l->max_output_bytes = 4194304;
    l->max_memory_output_bytes = 268435456;
    l->slow_consumer_grace_ms = 10000;
    l->min_free_disk_bytes = 67108864;
    l->http_max_header_bytes = 8192;
    l->http_max_body_bytes = 65536;
    l->http_idle_timeout_ms = 30000;
    l->http_request_timeout_ms = 10000;
    l->http_max_connections = 1024;
    cfg->auth.anonymous = LMQ_ANONYMOUS_LOOPBACK;
    cfg->auth.token_ttl_s = 900;
    cfg->auth.envelope_rate_per_s = 1000;
    cfg->auth.token_leeway_s = 0;
    cfg->auth.ledger_bytes_per_day = CONFIG_LEDGER_BYTES_PER_DAY_DEFAULT;
    l->max_connections_per_address = 1000;
    l->max_connection_rate_per_address = 500;
    l->ledger_page_max_bytes = 1048576;
    l->http_header_timeout_ms = 10000;
    l->http_handshake_timeout_ms = 5000;
    l->http_max_connections_per_address = 128;
    l->http_max_handshakes_per_address = 64;
    l->login_challenges_per_address = 32;
    l->login_challenges_per_key = 4;
    l->password_checks_per_address = 4;
    l->password_failures_before_backoff = 5;
    l->password_backoff_max_ms = 60000;
}

static int config__parse_port(const char *s, const char *whole, uint16_t *out, char *err,
                              size_t err_len)
{
    uint64_t port = 0;
    if (!config__parse_u64(s, &port) || port > UINT16_MAX) {
        lmq_errf(err, err_len, "expected a port 0..65535 in \"%.*s%s\", got \"%.*s%s\"",
                 config__show_len(whole), whole, config__show_more(whole), config__show_len(s), s,
                 config__show_more(s));
        return LMQ_EINVAL;
    }
    *out = (uint16_t)port;
    return 0;
}

/* Splits "[v6]:port" or "host:port" into host and port text. */
static int config__split_listen(const char *s, char *host, size_t host_cap, const char **port)
{
    const char *host_start = s;
    const char *host_end = NULL;
    if (s[0] == '[') {
        host_start = s + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':') {
            return LMQ_EINVAL;
        }
        *port = host_end + 2;
    } else {
        host_end = strchr(s, ':');
        if (host_end == NULL || strchr(host_end + 1, ':') != NULL) {
            return LMQ_EINVAL; /* no port, or an IPv6 address without brackets */
        }
        *port = host_end + 1;
    }
    size_t host_len = (size_t)(host_end - host_start);
    if (host_len == 0 || host_len >= host_cap) {
        return LMQ_EINVAL;
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    return 0;
}

int lmq_config_parse_listen(const char *s, struct lmq_listen_addr *out, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    LMQ_ASSERT(err != NULL && err_len > 0);
    char host[LMQ_HOST_MAX_BYTES];
    const char *port_text = NULL;
    struct lmq_listen_addr addr = {0};
    uint8_t bin[16];
    int family = (s[0] == '[') ? AF_INET6 : AF_INET;

    int rc = config__split_listen(s, host, sizeof(host), &port_text);
    if (rc == 0 && family == AF_INET && strcmp(host, "localhost") == 0) {
        bool ok = config__copy(host, sizeof(host), "127.0.0.1");
        LMQ_ASSERT(ok);
    }
    bool numeric = rc == 0 && inet_pton(family, host, bin) == 1;
    bool name = rc == 0 && !numeric && family == AF_INET && lmq_host_name_valid(host);
    if (rc != 0 || (!numeric && !name)) {
        rc = LMQ_EINVAL;
        lmq_errf(err, err_len,
                 "expected HOST:PORT with an IPv4 address, [IPv6], localhost or a host name, "
                 "got \"%.*s%s\"",
                 config__show_len(s), s, config__show_more(s));
        goto out;
    }
    rc = config__parse_port(port_text, s, &addr.port, err, err_len);
    if (rc != 0) {
        goto out;
    }
    /* Canonical text form, so logs and the broker see one spelling per address; a host name is
     * kept as written until lmq_config_resolve_listeners(). */
    if (numeric && inet_ntop(family, bin, addr.host, sizeof(addr.host)) == NULL) {
        LMQ_UNREACHABLE("inet_ntop failed on an address inet_pton accepted");
    }
    if (name) {
        bool ok = config__copy(addr.host, sizeof(addr.host), host);
        LMQ_ASSERT(ok);
    }
    *out = addr;
out:
    return rc;
}

/* Replaces a listener's host name by the numeric address it resolves to (resolve.h). */
static int config__resolve_one(struct lmq_listen_addr *a, const char *key, char *err,
                               size_t err_len)
{
    uint8_t bin[16];
    if (inet_pton(AF_INET, a->host, bin) == 1 || inet_pton(AF_INET6, a->host, bin) == 1) {
        return 0;
    }
    struct sockaddr_storage ss;
    char reason[128];
    if (lmq_resolve(a->host, a->port, &ss, reason, sizeof(reason)) != 0) {
        lmq_errf(err, err_len, "%s listener %s: cannot resolve: %s", key, a->host, reason);
        return LMQ_EINVAL;
    }
    const void *raw = ss.ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)&ss)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)&ss)->sin6_addr;
    if (inet_ntop(ss.ss_family, raw, a->host, sizeof(a->host)) == NULL) {
        LMQ_UNREACHABLE("inet_ntop failed on an address getaddrinfo returned");
    }
    return 0;
}

int lmq_config_resolve_listeners(struct lmq_config *cfg, char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && err != NULL && err_len > 0);
    int rc = 0;
    for (size_t i = 0; i < cfg->mqtt_count && rc == 0; i++) {
        rc = config__resolve_one(&cfg->mqtt[i], "mqtt", err, err_len);
    }
    for (size_t i = 0; i < cfg->mqtts_count && rc == 0; i++) {
        rc = config__resolve_one(&cfg->mqtts[i], "mqtts", err, err_len);
    }
    if (rc == 0 && cfg->http_enabled) {
        rc = config__resolve_one(&cfg->http, "http", err, err_len);
    }
    if (rc == 0 && cfg->https_enabled) {
        rc = config__resolve_one(&cfg->https, "https", err, err_len);
    }
    return rc;
}

/* Copies one comma-separated item of list, without surrounding blanks. */
static bool config__next_item(const char **cursor, char *item, size_t cap)
{
    const char *start = *cursor;
    const char *comma = strchr(start, ',');
    const char *end = comma ? comma : start + strlen(start);
    *cursor = comma ? comma + 1 : NULL;
    while (start < end && (*start == ' ' || *start == '\t')) {
        start++;
    }
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    size_t len = (size_t)(end - start);
    if (len >= cap) {
        return false;
    }
    memcpy(item, start, len);
    item[len] = '\0';
    return true;
}

/*
 * Parses a comma-separated listener list into cfg->mqtt, replacing the list or
 * appending to it. cfg is unchanged on error.
 */
static int config__listeners(struct lmq_config *cfg, const char *value, bool replace, bool tls,
                             char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && value != NULL);
    struct lmq_listen_addr *list = tls ? cfg->mqtts : cfg->mqtt;
    size_t *list_count = tls ? &cfg->mqtts_count : &cfg->mqtt_count;
    const char *key = tls ? "mqtts" : "mqtt";
    LMQ_ASSERT(*list_count <= LMQ_LISTENERS_MAX);
    struct lmq_listen_addr addrs[LMQ_LISTENERS_MAX];
    size_t count = replace ? 0 : *list_count;
    char item[CONFIG_LISTEN_ITEM_MAX_BYTES];
    char msg[256];
    const char *cursor = value;
    int rc = 0;

    memcpy(addrs, list, count * sizeof(addrs[0]));
    /* Each pass consumes one item; a list can't name more than the maximum. */
    for (size_t i = 0; cursor != NULL && i <= LMQ_LISTENERS_MAX; i++) {
        if (count == LMQ_LISTENERS_MAX) {
            lmq_errf(err, err_len, "[server] %s: at most %d listeners, got more in \"%.*s%s\"", key,
                     LMQ_LISTENERS_MAX, config__show_len(value), value, config__show_more(value));
            rc = LMQ_EINVAL;
            goto out;
        }
        if (!config__next_item(&cursor, item, sizeof(item))) {
            lmq_errf(err, err_len, "[server] %s: listener address too long in \"%.*s%s\"", key,
                     config__show_len(value), value, config__show_more(value));
            rc = LMQ_EINVAL;
            goto out;
        }
        rc = lmq_config_parse_listen(item, &addrs[count], msg, sizeof(msg));
        if (rc != 0) {
            lmq_errf(err, err_len, "[server] %s: %s", key, msg);
            goto out;
        }
        count++;
    }
    LMQ_ASSERT(count >= 1 && count <= LMQ_LISTENERS_MAX);
    memcpy(list, addrs, count * sizeof(addrs[0]));
    *list_count = count;
out:
    return rc;
}

int lmq_config_append_listeners(struct lmq_config *cfg, const char *value, char *err,
                                size_t err_len)
{
    LMQ_ASSERT(err != NULL && err_len > 0);
    return config__listeners(cfg, value, false, false, err, err_len);
}

int lmq_config_append_tls_listeners(struct lmq_config *cfg, const char *value, char *err,
                                    size_t err_len)
{
    LMQ_ASSERT(err != NULL && err_len > 0);
    return config__listeners(cfg, value, false, true, err, err_len);
}

/* Each [bots] validators entry names one of [bots] ids. */
static int config__validate_validators(const struct lmq_config *cfg, char *err, size_t err_len)
{
    LMQ_ASSERT(cfg->validator_count <= LMQ_VALIDATORS_MAX && cfg->bot_count <= LMQ_BOTS_MAX);
    for (uint32_t i = 0; i < cfg->validator_count; i++) {
        bool found = false;
        for (uint32_t j = 0; !found && j < cfg->bot_count; j++)
            found = strcmp(cfg->validators[i].bot, cfg->bots[j]) == 0;
        if (!found) {
            lmq_errf(err, err_len, "[bots] validators: %s's validator %s is not one of [bots] ids",
                     cfg->validators[i].type, cfg->validators[i].bot);
            return LMQ_EINVAL;
        }
    }
    return 0;
}

int lmq_config_validate(const struct lmq_config *cfg, char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && err != NULL && err_len > 0);
    const struct lmq_tls_config *tls = &cfg->tls;
    bool tls_used = cfg->mqtts_count > 0 || cfg->https_enabled;
    if (tls_used && (tls->cert_file[0] == '\0' || tls->key_file[0] == '\0')) {
        lmq_errf(err, err_len,
                 "TLS listeners (mqtts, https) need [tls] cert and key (--tls-cert, --tls-key)");
        return LMQ_EINVAL;
    }
    if (tls->client_cert == LMQ_CLIENT_CERT_REQUIRED && tls->client_ca_file[0] == '\0') {
        lmq_errf(err, err_len, "[tls] client_cert = required needs [tls] client_ca");
        return LMQ_EINVAL;
    }
    for (size_t i = 0; i < cfg->jobs.count; i++) {
        const struct lmq_job_config *job = &cfg->jobs.jobs[i];
        if (strcmp(job->name, "chaser") == 0 && job->schedule[0] != '\0' &&
            cfg->jobs.chaser_type[0] == '\0') {
            lmq_errf(err, err_len, "[jobs] chaser is scheduled but chaser.type is not set");
            return LMQ_EINVAL;
        }
    }
    if (config__validate_validators(cfg, err, err_len) != 0)
        return LMQ_EINVAL;
    int rc = config_validate_seal(cfg, err, err_len);
    return rc != LMQ_OK ? rc : config_validate_webhooks(cfg, err, err_len);
}

/* [auth] password_file / acl_file: a path that can be opened for reading now, so a typo stops
 * the start (or a SIGHUP re-read) with one line instead of refusing every login later. */
static int config__auth_file(char *path, const char *key, const char *value, char *err,
                             size_t err_len)
{
    LMQ_ASSERT(path != NULL && key != NULL && value != NULL);
    char fresh[LMQ_PATH_MAX_BYTES];
    if (value[0] == '\0' || !config__copy(fresh, sizeof(fresh), value)) {
        lmq_errf(err, err_len, "[auth] %s: expected a file path of 1..%d bytes", key,
                 LMQ_PATH_MAX_BYTES - 1);
        return LMQ_EINVAL;
    }
    FILE *f = fopen(fresh, "r");
    if (f == NULL) {
        lmq_errf(err, err_len, "[auth] %s: cannot read \"%s\": %s", key, fresh, strerror(errno));
        return LMQ_EINVAL;
    }
    fclose(f);
    memcpy(path, fresh, sizeof(fresh)); /* cfg changes only on success */
    LMQ_ASSERT(path[0] != '\0');
    return 0;
}

/* [auth] token_leeway_s (0..CONFIG_TOKEN_LEEWAY_MAX_S) and ledger_bytes_per_day (0 = no limit,
 * at most CONFIG_LEDGER_BYTES_PER_DAY_MAX): both accept 0, unlike the other [auth] numbers. */
static int config__set_auth_limit(struct lmq_config *cfg, const char *key, const char *value,
                                  char *err, size_t err_len)
{
    bool leeway = strcmp(key, "token_leeway_s") == 0;
    uint64_t max = leeway ? CONFIG_TOKEN_LEEWAY_MAX_S : CONFIG_LEDGER_BYTES_PER_DAY_MAX;
    uint64_t v = 0;
    if (!config__parse_u64(value, &v) || v > max) {
        lmq_errf(err, err_len, "[auth] %s: expected an integer 0..%llu, got \"%.*s%s\"", key,
                 (unsigned long long)max, config__show_len(value), value, config__show_more(value));
        return LMQ_EINVAL;
    }
    if (leeway)
        cfg->auth.token_leeway_s = (uint32_t)v;
    else
        cfg->auth.ledger_bytes_per_day = v;
    return LMQ_OK;
}

/* An identity list ([auth] auditors, [data] readers_all): ids separated by commas (blanks
 * around them ignored); empty: none. Replaces the list (max entries); it changes only on
 * success. */
/* One item of a comma-separated value at *p: skips the blanks before it (moving *p to its first
 * character), sets *len to the bytes up to the next comma or the end, and returns that length
 * without trailing blanks. */
static size_t config__list_item(const char **p, size_t *len)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
    *len = strcspn(*p, ",");
    size_t trimmed = *len;
    while (trimmed > 0 && ((*p)[trimmed - 1] == ' ' || (*p)[trimmed - 1] == '\t'))
        trimmed--;
    return trimmed;
}

static int config__id_list(const char *key, const char *value,
                           char (*list)[LMQ_IDENTITY_ID_CHARS + 1], uint32_t max,
                           uint32_t *list_count, char *err, size_t err_len)
{
    LMQ_ASSERT(list != NULL && value != NULL && max <= LMQ_AUDITORS_MAX);
    char ids[LMQ_AUDITORS_MAX][LMQ_IDENTITY_ID_CHARS + 1];
    uint32_t count = 0;
    const char *p = value;
    for (size_t item = 0; item <= max; item++) {
        size_t len = 0, trimmed = config__list_item(&p, &len);
        if (trimmed == 0 && p[len] == '\0' && item == 0)
            break; /* an empty value: nobody */
        bool hex = trimmed == LMQ_IDENTITY_ID_CHARS;
        for (size_t i = 0; hex && i < trimmed; i++)
            hex = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f');
        if (!hex) {
            lmq_errf(err, err_len,
                     "%s: expected identity ids (64 lowercase hex characters) "
                     "separated by commas, got \"%.*s%s\"",
                     key, config__show_len(p), p, config__show_more(p));
            return LMQ_EINVAL;
        }
        if (count == max) {
            lmq_errf(err, err_len, "%s: more than %u identities", key, max);
            return LMQ_EINVAL;
        }
        memcpy(ids[count], p, LMQ_IDENTITY_ID_CHARS);
        ids[count++][LMQ_IDENTITY_ID_CHARS] = '\0';
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    memset(list, 0, max * sizeof(list[0]));
    memcpy(list, ids, count * sizeof(ids[0]));
    *list_count = count;
    return 0;
}

/* [bots] ids: the first line in a file replaces the list, later ones add to it (a line holds
 * at most two ids). */
static int config__set_bot_ids(struct lmq_config *cfg, const char *value, bool append, char *err,
                               size_t err_len)
{
    char ids[LMQ_BOTS_MAX][LMQ_IDENTITY_ID_CHARS + 1];
    uint32_t count = 0;
    int rc = config__id_list("[bots] ids", value, ids, LMQ_BOTS_MAX, &count, err, err_len);
    if (rc != 0)
        return rc;
    uint32_t base = append ? cfg->bot_count : 0;
    if (base + count > LMQ_BOTS_MAX) {
        lmq_errf(err, err_len, "[bots] ids: more than %u identities", LMQ_BOTS_MAX);
        return LMQ_EINVAL;
    }
    memcpy(cfg->bots[base], ids, count * sizeof(ids[0]));
    cfg->bot_count = base + count;
    return 0;
}

/* One "TYPE:BOTID" of [bots] validators (len bytes at p, trimmed): the type is everything before
 * the last ':' (types may hold ':'), the bot 64 lowercase hex characters. */
static int config__validator_parse(const char *p, size_t len, struct lmq_validator_config *out,
                                   char *err, size_t err_len)
{
    LMQ_ASSERT(p != NULL && out != NULL);
    size_t colon = len;
    while (colon > 0 && p[colon - 1] != ':')
        colon--;
    size_t type_len = colon > 0 ? colon - 1 : 0;
    bool ok = colon > 0 && type_len >= 1 && type_len <= LMQ_VALIDATOR_TYPE_MAX_CHARS &&
              len - colon == LMQ_IDENTITY_ID_CHARS;
    for (size_t i = 0; ok && i < type_len; i++) {
        char ch = p[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == ':' || ch == '-';
    }
    for (size_t i = colon; ok && i < len; i++)
        ok = (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f');
    if (!ok) {
        lmq_errf(err, err_len,
                 "[bots] validators: expected TYPE:BOTID (an envelope type, 1..64 of "
                 "A-Z a-z 0-9 . _ : -, then a bot's 64 lowercase hex id), got \"%.*s%s\"",
                 (int)LMQ_MIN(len, 80), p, len > 80 ? "..." : "");
        return LMQ_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->type, p, type_len);
    memcpy(out->bot, p + colon, LMQ_IDENTITY_ID_CHARS);
    return 0;
}

/* [bots] validators = TYPE:BOTID, ...: like ids, a repeated line adds to the list. A type has at
 * most one validator; that each is one of [bots] ids is checked once the file is read
 * (lmq_config_validate), as ids may come later. */
static int config__set_validators(struct lmq_config *cfg, const char *value, bool append, char *err,
                                  size_t err_len)
{
    uint32_t count = append ? cfg->validator_count : 0;
    const char *p = value;
    for (size_t item = 0; item <= LMQ_VALIDATORS_MAX; item++) {
        size_t len = 0, trimmed = config__list_item(&p, &len);
        if (trimmed == 0 && p[len] == '\0' && item == 0)
            break; /* an empty value: none */
        if (count == LMQ_VALIDATORS_MAX) {
            lmq_errf(err, err_len, "[bots] validators: more than %u types", LMQ_VALIDATORS_MAX);
            return LMQ_EINVAL;
        }
        struct lmq_validator_config *v = &cfg->validators[count];
        int rc = config__validator_parse(p, trimmed, v, err, err_len);
        if (rc != 0)
            return rc;
        for (uint32_t i = 0; i < count; i++) {
            if (strcmp(cfg->validators[i].type, v->type) == 0) {
                lmq_errf(err, err_len, "[bots] validators: type %s has two validators", v->type);
                return LMQ_EINVAL;
            }
        }
        count++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    cfg->validator_count = count;
    return 0;
}

static int config__set_bots(struct lmq_config *cfg, const char *key, const char *value, bool append,
                            char *err, size_t err_len)
{
    if (strcmp(key, "ids") == 0)
        return config__set_bot_ids(cfg, value, append, err, err_len);
    if (strcmp(key, "validators") == 0)
        return config__set_validators(cfg, value, append, err, err_len);
    if (strcmp(key, "default_verdict") == 0) {
        if (strcmp(value, "accept") != 0 && strcmp(value, "reject") != 0) {
            lmq_errf(err, err_len,
                     "[bots] default_verdict: expected accept or reject, got \"%.*s%s\"",
                     config__show_len(value), value, config__show_more(value));
            return LMQ_EINVAL;
        }
        cfg->default_verdict_accept = strcmp(value, "accept") == 0;
        return 0;
    }
    if (strcmp(key, "verdict_timeout_ms") == 0) {
        uint64_t v = 0;
        if (!config__parse_u64(value, &v) || v < LMQ_VERDICT_TIMEOUT_MIN_MS ||
            v > LMQ_VERDICT_TIMEOUT_MAX_MS) {
            lmq_errf(err, err_len,
                     "[bots] verdict_timeout_ms: expected an integer %u..%u, got \"%.*s%s\"",
                     LMQ_VERDICT_TIMEOUT_MIN_MS, LMQ_VERDICT_TIMEOUT_MAX_MS,
                     config__show_len(value), value, config__show_more(value));
            return LMQ_EINVAL;
        }
        cfg->verdict_timeout_ms = (uint32_t)v;
        return 0;
    }
    if (strcmp(key, "verdicts_per_address") == 0) {
        uint64_t v = 0;
        if (!config__parse_u64(value, &v) || v < 1 || v > LMQ_VERDICTS_PER_ADDRESS_MAX) {
            lmq_errf(err, err_len,
                     "[bots] verdicts_per_address: expected an integer 1..%u, got \"%.*s%s\"",
                     LMQ_VERDICTS_PER_ADDRESS_MAX, config__show_len(value), value,
                     config__show_more(value));
            return LMQ_EINVAL;
        }
        cfg->verdicts_per_address = (uint32_t)v;
        return 0;
    }
    lmq_errf(err, err_len,
             "[bots] %s: unknown key (expected ids, validators, verdict_timeout_ms, "
             "verdicts_per_address or default_verdict)",
             key);
    return LMQ_EINVAL;
}

static int config__set_auth(struct lmq_config *cfg, const char *key, const char *value, char *err,
                            size_t err_len)
{
    struct lmq_auth_config *a = &cfg->auth;
    if (strcmp(key, "auditors") == 0)
        return config__id_list("[auth] auditors", value, a->auditors, LMQ_AUDITORS_MAX,
                               &a->auditor_count, err, err_len);
    if (strcmp(key, "anonymous") == 0) {
        static const char *const names[] = {"loopback", "always", "never"};
        for (size_t i = 0; i < LMQ_ARRAY_LEN(names); i++) {
            if (strcmp(value, names[i]) == 0) {
                a->anonymous = (enum lmq_anonymous_mode)i;
                return 0;
            }
        }
        lmq_errf(err, err_len,
                 "[auth] anonymous: expected loopback, always or never, got \"%.*s%s\"",
                 config__show_len(value), value, config__show_more(value));
        return LMQ_EINVAL;
    }
    char *path = strcmp(key, "password_file") == 0 ? a->password_file
                 : strcmp(key, "acl_file") == 0    ? a->acl_file
                                                   : NULL;
    if (path != NULL)
        return config__auth_file(path, key, value, err, err_len);
    if (strcmp(key, "token_leeway_s") == 0 || strcmp(key, "ledger_bytes_per_day") == 0)
        return config__set_auth_limit(cfg, key, value, err, err_len);
    uint32_t *field = strcmp(key, "token_ttl_s") == 0           ? &a->token_ttl_s
                      : strcmp(key, "envelope_rate_per_s") == 0 ? &a->envelope_rate_per_s
                                                                : NULL;
    if (field == NULL) {
        lmq_errf(err, err_len,
                 "[auth] %s: unknown key (expected anonymous, token_ttl_s, token_leeway_s, "
                 "envelope_rate_per_s, ledger_bytes_per_day, auditors, password_file or "
                 "acl_file)",
                 key);
        return LMQ_EINVAL;
    }
    uint64_t v = 0;
    if (!config__parse_u64(value, &v) || v < 1 || v > 86400 * 365) {
        lmq_errf(err, err_len, "[auth] %s: expected an integer 1..31536000, got \"%.*s%s\"", key,
                 config__show_len(value), value, config__show_more(value));
        return LMQ_EINVAL;
    }
    *field = (uint32_t)v;
    return 0;
}

static int config__set_tls(struct lmq_config *cfg, const char *key, const char *value, char *err,
                           size_t err_len)
{
    struct lmq_tls_config *tls = &cfg->tls;
    char *path = strcmp(key, "cert") == 0        ? tls->cert_file
                 : strcmp(key, "key") == 0       ? tls->key_file
                 : strcmp(key, "client_ca") == 0 ? tls->client_ca_file
                                                 : NULL;
    if (path != NULL) {
        if (value[0] != '\0' && config__copy(path, LMQ_PATH_MAX_BYTES, value)) {
            if (path == tls->client_ca_file && tls->client_cert == LMQ_CLIENT_CERT_NONE)
                tls->client_cert = LMQ_CLIENT_CERT_OPTIONAL;
            return 0;
        }
        lmq_errf(err, err_len, "[tls] %s: expected a file path of 1..%d bytes", key,
                 LMQ_PATH_MAX_BYTES - 1);
        return LMQ_EINVAL;
    }
    if (strcmp(key, "client_cert") == 0) {
        static const char *const names[] = {"none", "optional", "required"};
        for (size_t i = 0; i < LMQ_ARRAY_LEN(names); i++) {
            if (strcmp(value, names[i]) == 0) {
                tls->client_cert = (enum lmq_client_cert_mode)i;
                return 0;
            }
        }
        lmq_errf(err, err_len,
                 "[tls] client_cert: expected none, optional or required, got \"%.*s%s\"",
                 config__show_len(value), value, config__show_more(value));
        return LMQ_EINVAL;
    }
    lmq_errf(err, err_len, "[tls] %s: unknown key (expected cert, key, client_ca or client_cert)",
             key);
    return LMQ_EINVAL;
}

static int config__http_list(struct lmq_config *cfg, const char *section, const char *key,
                             const char *value, bool append, char *err, size_t err_len);

static int config__set_server(struct lmq_config *cfg, const char *key, const char *value, char *err,
                              size_t err_len)
{
    const char *show_more = config__show_more(value);
    int show_len = config__show_len(value);
    if (strcmp(key, "mqtt") == 0) {
        return config__listeners(cfg, value, true, false, err, err_len);
    }
    if (strcmp(key, "mqtts") == 0) {
        return config__listeners(cfg, value, false, true, err, err_len);
    }
    if (strcmp(key, "http") == 0 || strcmp(key, "https") == 0) {
        char msg[256];
        struct lmq_listen_addr addr;
        bool tls = key[4] == 's';
        if (strcmp(value, "none") == 0) { /* no listener (http is on by default) */
            *(tls ? &cfg->https_enabled : &cfg->http_enabled) = false;
            return 0;
        }
        if (lmq_config_parse_listen(value, &addr, msg, sizeof(msg)) != 0) {
            lmq_errf(err, err_len, "[server] %s: %s; or none (no listener)", key, msg);
            return LMQ_EINVAL;
        }
        *(tls ? &cfg->https : &cfg->http) = addr;
        *(tls ? &cfg->https_enabled : &cfg->http_enabled) = true;
        return 0;
    }
    if (strcmp(key, "proxy_protocol") == 0) {
        return config__http_list(cfg, "server", key, value, false, err, err_len);
    }
    if (strcmp(key, "data") == 0) {
        if (value[0] != '\0' && config__copy(cfg->data_dir, sizeof(cfg->data_dir), value)) {
            return 0;
        }
        lmq_errf(err, err_len,
                 "[server] data: expected a directory path of 1..%d bytes, got \"%.*s%s\"",
                 LMQ_PATH_MAX_BYTES - 1, show_len, value, show_more);
        return LMQ_EINVAL;
    }
    if (strcmp(key, "sync") == 0) {
        if (strcmp(value, "always") == 0 || strcmp(value, "off") == 0) {
            cfg->sync = (value[0] == 'a') ? LMQ_SYNC_ALWAYS : LMQ_SYNC_OFF;
            return 0;
        }
        lmq_errf(err, err_len, "[server] sync: expected always or off, got \"%.*s%s\"", show_len,
                 value, show_more);
        return LMQ_EINVAL;
    }
    if (strcmp(key, "sys_interval") == 0 || strcmp(key, "drain_grace_ms") == 0) {
        bool sys = key[0] == 's';
        uint64_t max = sys ? CONFIG_SYS_INTERVAL_MAX_S : CONFIG_DRAIN_GRACE_MAX_MS;
        uint64_t v = 0;
        if (config__parse_u64(value, &v) && v <= max) {
            *(sys ? &cfg->sys_interval_s : &cfg->drain_grace_ms) = (uint32_t)v;
            return 0;
        }
        lmq_errf(err, err_len, "[server] %s: expected 0..%" PRIu64 "%s, got \"%.*s%s\"", key, max,
                 sys ? " seconds" : " ms", show_len, value, show_more);
        return LMQ_EINVAL;
    }
    if (strcmp(key, "log_level") == 0) {
        if (lmq_log_level_parse(value, &cfg->log_level) == 0) {
            return 0;
        }
        lmq_errf(err, err_len,
                 "[server] log_level: expected debug, info, warn or error, got \"%.*s%s\"",
                 show_len, value, show_more);
        return LMQ_EINVAL;
    }
    lmq_errf(err, err_len,
             "[server] %s: unknown key (expected data, mqtt, mqtts, http, https, sync, "
             "log_level, proxy_protocol, sys_interval or drain_grace_ms)",
             key);
    return LMQ_EINVAL;
}

/* [http] allowed_origins item: "scheme://host[:port]" into out, lower-cased, without a
 * trailing slash (browsers send the origin in that form). False when it is not one. */
static bool config__origin(const char *item, char *out, size_t cap)
{
    LMQ_ASSERT(item != NULL && out != NULL && cap > 0);
    size_t len = strlen(item);
    if (len > 0 && item[len - 1] == '/')
        len--;
    const char *sep = strstr(item, "://");
    if (len == 0 || len >= cap || sep == NULL || sep == item)
        return false;
    size_t scheme_len = (size_t)(sep - item);
    if (scheme_len + 3 >= len)
        return false; /* no host */
    for (size_t i = 0; i < len; i++) {
        char ch = item[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        bool ok = i < scheme_len       ? alnum || ch == '+' || ch == '-' || ch == '.'
                  : i < scheme_len + 3 ? true /* "://" itself */
                                       : alnum || strchr("-._:[]", ch) != NULL;
        if (!ok)
            return false; /* a path, query, user info, blank or other junk */
        out[i] = ch;
    }
    out[len] = '\0';
    return true;
}

/* [http] trusted_proxies item: "ADDRESS" or "ADDRESS/BITS", IPv4 or IPv6. */
static bool config__ip_prefix(const char *item, struct lmq_ip_prefix *out)
{
    LMQ_ASSERT(item != NULL && out != NULL);
    char host[LMQ_HOST_MAX_BYTES];
    const char *slash = strchr(item, '/');
    size_t host_len = slash != NULL ? (size_t)(slash - item) : strlen(item);
    if (host_len == 0 || host_len >= sizeof(host))
        return false;
    memcpy(host, item, host_len);
    host[host_len] = '\0';
    struct lmq_ip_prefix p;
    memset(&p, 0, sizeof(p));
    if (inet_pton(AF_INET, host, p.addr) == 1)
        p.len_bytes = 4;
    else if (inet_pton(AF_INET6, host, p.addr) == 1)
        p.len_bytes = 16;
    else
        return false;
    uint64_t bits = (uint64_t)p.len_bytes * 8;
    if (slash != NULL && (!config__parse_u64(slash + 1, &bits) || bits > p.len_bytes * 8u))
        return false;
    p.prefix_bits = (uint8_t)bits;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    /* IPv4-mapped addresses are IPv4 wherever they are matched: a prefix that covers them only
     * in part means nothing, so it is refused. */
    if (p.len_bytes == 16 && p.prefix_bits < 96 && memcmp(p.addr, mapped, 12) == 0)
        return false;
    if (p.len_bytes == 16 && memcmp(p.addr, mapped, 12) == 0) {
        memmove(p.addr, p.addr + 12, 4); /* ::ffff:a.b.c.d is the IPv4 address */
        memset(p.addr + 4, 0, 12);
        p.len_bytes = 4;
        p.prefix_bits = (uint8_t)(p.prefix_bits - 96);
    }
    *out = p;
    return true;
}

bool lmq_ip_prefix_match(const struct lmq_ip_prefix *p, const uint8_t *addr, size_t len_bytes)
{
    LMQ_ASSERT(p != NULL && addr != NULL);
    LMQ_ASSERT(p->prefix_bits <= p->len_bytes * 8u);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (len_bytes == 16 && memcmp(addr, mapped, 12) == 0) {
        addr += 12;
        len_bytes = 4;
    }
    if (len_bytes != p->len_bytes)
        return false;
    size_t full = p->prefix_bits / 8u;
    unsigned rest = p->prefix_bits % 8u;
    if (memcmp(addr, p->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xFFu << (8u - rest));
    return (addr[full] & mask) == (p->addr[full] & mask);
}

/* [http] allowed_origins / trusted_proxies: replaces (or appends to) the list; cfg is
 * unchanged on error. An empty value is an empty list. */
static int config__http_list(struct lmq_config *cfg, const char *section, const char *key,
                             const char *value, bool append, char *err, size_t err_len)
{
    bool server = strcmp(section, "server") == 0;
    bool origins = !server && strcmp(key, "allowed_origins") == 0;
    bool proxy_protocol = server && strcmp(key, "proxy_protocol") == 0;
    LMQ_ASSERT(!server || proxy_protocol); /* the only list under [server] */
    if (!origins && !proxy_protocol && strcmp(key, "trusted_proxies") != 0) {
        lmq_errf(err, err_len,
                 "[http] %s: unknown key (expected allowed_origins or trusted_proxies)", key);
        return LMQ_EINVAL;
    }
    struct lmq_http_config work = cfg->http_trust;
    size_t *count = origins          ? &work.allowed_origin_count
                    : proxy_protocol ? &work.proxy_protocol_count
                                     : &work.trusted_proxy_count;
    struct lmq_ip_prefix *prefixes = proxy_protocol ? work.proxy_protocol : work.trusted_proxies;
    const size_t max = origins ? LMQ_HTTP_ORIGINS_MAX : LMQ_HTTP_PROXIES_MAX;
    if (!append)
        *count = 0;
    char item[LMQ_HTTP_ORIGIN_MAX_BYTES];
    const char *cursor = value;
    for (size_t i = 0; cursor != NULL && i <= max; i++) {
        bool fits = config__next_item(&cursor, item, sizeof(item));
        if (fits && item[0] == '\0' && i == 0 && cursor == NULL)
            break; /* "key =": no entries */
        bool ok = fits && *count < max &&
                  (origins ? config__origin(item, work.allowed_origins[*count],
                                            sizeof(work.allowed_origins[0]))
                           : config__ip_prefix(item, &prefixes[*count]));
        if (!ok) {
            int show_len = config__show_len(value);
            const char *show_more = config__show_more(value);
            if (*count >= max)
                lmq_errf(err, err_len, "[%s] %s: at most %zu entries, got more in \"%.*s%s\"",
                         section, key, max, show_len, value, show_more);
            else if (origins)
                lmq_errf(err, err_len,
                         "[http] %s: expected origins like https://app.example.com "
                         "(scheme://host[:port], no path; null and * are never allowed) "
                         "separated by commas, got \"%.*s%s\"",
                         key, show_len, value, show_more);
            else
                lmq_errf(err, err_len,
                         "[%s] %s: expected IP addresses or CIDR prefixes (10.0.0.0/8, ::1) "
                         "separated by commas, got \"%.*s%s\"",
                         section, key, show_len, value, show_more);
            return LMQ_EINVAL;
        }
        (*count)++;
    }
    LMQ_ASSERT(*count <= max);
    cfg->http_trust = work;
    return 0;
}

int lmq_config_append_http_list(struct lmq_config *cfg, const char *key, const char *value,
                                char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && key != NULL && value != NULL && err != NULL && err_len > 0);
    const char *section = strcmp(key, "proxy_protocol") == 0 ? "server" : "http";
    return config__http_list(cfg, section, key, value, true, err, err_len);
}

static void config__store_limit(struct lmq_limits *limits, const struct config_limit *def,
                                uint64_t v)
{
    LMQ_ASSERT(v >= def->min && v <= def->max);
    uint8_t *field = (uint8_t *)limits + def->offset;
    if (def->size_bytes == sizeof(uint16_t)) {
        uint16_t v16 = (uint16_t)v;
        memcpy(field, &v16, sizeof(v16));
    } else if (def->size_bytes == sizeof(uint32_t)) {
        uint32_t v32 = (uint32_t)v;
        memcpy(field, &v32, sizeof(v32));
    } else {
        LMQ_ASSERT(def->size_bytes == sizeof(uint64_t));
        memcpy(field, &v, sizeof(v));
    }
}

static const char *const config__overflow_names[] = {
    [LMQ_OVERFLOW_DROP_OLDEST] = "drop_oldest",
    [LMQ_OVERFLOW_REFUSE] = "refuse",
    [LMQ_OVERFLOW_END_SESSION] = "end_session",
};

const char *lmq_overflow_policy_name(enum lmq_overflow_policy p)
{
    LMQ_ASSERT((size_t)p < LMQ_ARRAY_LEN(config__overflow_names));
    return config__overflow_names[p];
}

static bool config__overflow_policy(const char *s, enum lmq_overflow_policy *out)
{
    for (size_t i = 0; i < LMQ_ARRAY_LEN(config__overflow_names); i++) {
        if (strcmp(s, config__overflow_names[i]) == 0) {
            *out = (enum lmq_overflow_policy)i;
            return true;
        }
    }
    return false;
}

/* A session owner as the broker writes it: "anonymous", "user:<name>", "cn:<name>" or an
 * identity id (64 lower-case hex digits). */
static bool config__principal_valid(const char *p)
{
    size_t len = strlen(p);
    if (strcmp(p, "anonymous") == 0)
        return true;
    if (strncmp(p, "user:", 5) == 0)
        return len > 5 && len <= 5 + 128;
    if (strncmp(p, "cn:", 3) == 0)
        return len > 3 && len <= 3 + 64;
    if (len != LMQ_IDENTITY_ID_CHARS)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    }
    return true;
}

/* An MQTT topic filter ('+' and '#' whole levels, '#' last), not shared and not under id/
 * (identity topics never follow these rules). */
static bool config__overflow_filter_valid(const char *f)
{
    size_t len = strlen(f);
    if (len == 0 || strncmp(f, "$share/", 7) == 0 || strncmp(f, "id/", 3) == 0 ||
        strcmp(f, "id") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool level_start = i == 0 || f[i - 1] == '/';
        bool level_end = i + 1 == len || f[i + 1] == '/';
        if (f[i] == '+' && !(level_start && level_end))
            return false;
        if (f[i] == '#' && !(level_start && i + 1 == len))
            return false;
    }
    return true;
}

/* [queue_overflow] <policy> = principal <principal> | topic <filter>: appends a rule. */
static int config__add_overflow_rule(struct lmq_config *cfg, const char *key, const char *value,
                                     char *err, size_t err_len)
{
    struct lmq_overflow_rule rule = {0};
    if (!config__overflow_policy(key, &rule.policy)) {
        lmq_errf(err, err_len,
                 "[queue_overflow] %s: unknown key (expected drop_oldest, refuse or "
                 "end_session = principal <principal> | topic <filter>)",
                 key);
        return LMQ_EINVAL;
    }
    const char *pattern = NULL;
    if (strncmp(value, "principal ", 10) == 0) {
        pattern = value + 10;
    } else if (strncmp(value, "topic ", 6) == 0) {
        pattern = value + 6;
        rule.topic = true;
    }
    while (pattern != NULL && *pattern == ' ')
        pattern++;
    bool ok = pattern != NULL && config__copy(rule.pattern, sizeof(rule.pattern), pattern) &&
              (rule.topic ? config__overflow_filter_valid(rule.pattern)
                          : config__principal_valid(rule.pattern));
    if (!ok) {
        lmq_errf(err, err_len,
                 "[queue_overflow] %s: expected \"principal <anonymous | user:NAME | cn:NAME | "
                 "identity id>\" or \"topic <filter, not shared, not under id/, at most %d "
                 "bytes>\", got \"%.*s%s\"",
                 key, LMQ_OVERFLOW_PATTERN_MAX_BYTES - 1, config__show_len(value), value,
                 config__show_more(value));
        return LMQ_EINVAL;
    }
    if (cfg->overflow_rule_count >= LMQ_OVERFLOW_RULES_MAX) {
        lmq_errf(err, err_len, "[queue_overflow] %s: at most %d rules", key,
                 LMQ_OVERFLOW_RULES_MAX);
        return LMQ_EINVAL;
    }
    cfg->overflow_rules[cfg->overflow_rule_count++] = rule;
    return 0;
}

static int config__set_limit(struct lmq_config *cfg, const char *key, const char *value, char *err,
                             size_t err_len)
{
    if (strcmp(key, "queue_overflow") == 0) {
        if (!config__overflow_policy(value, &cfg->limits.queue_overflow)) {
            lmq_errf(err, err_len,
                     "[limits] queue_overflow: expected drop_oldest, refuse or end_session, "
                     "got \"%.*s%s\"",
                     config__show_len(value), value, config__show_more(value));
            return LMQ_EINVAL;
        }
        return 0;
    }
    const struct config_limit *def = NULL;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(config__limits); i++) {
        if (strcmp(key, config__limits[i].key) == 0) {
            def = &config__limits[i];
            break;
        }
    }
    if (def == NULL) {
        lmq_errf(err, err_len, "[limits] %s: unknown key", key);
        return LMQ_EINVAL;
    }
    uint64_t v = 0;
    if (def->never_ok && strcmp(value, "never") == 0) {
        v = def->max;
    } else if (!config__parse_u64(value, &v) || v < def->min || v > def->max) {
        lmq_errf(err, err_len, "[limits] %s: expected an integer %llu..%llu%s, got \"%.*s%s\"", key,
                 (unsigned long long)def->min, (unsigned long long)def->max,
                 def->never_ok ? " or never" : "", config__show_len(value), value,
                 config__show_more(value));
        return LMQ_EINVAL;
    }
    config__store_limit(&cfg->limits, def, v);
    return 0;
}

/* [data] graphql_max_depth / _fields / _ms: each with its range. */
static int config__set_graphql_limit(struct lmq_data_config *d, const char *key, const char *value,
                                     char *err, size_t err_len)
{
    static const struct {
        const char *name;
        uint64_t max;
    } keys[] = {
        {"graphql_max_depth", 100}, {"graphql_max_fields", 100000}, {"graphql_max_ms", 600000}};
    uint32_t *fields[] = {&d->graphql_max_depth, &d->graphql_max_fields, &d->graphql_max_ms};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(key, keys[i].name) != 0)
            continue;
        uint64_t v = 0;
        if (!config__parse_u64(value, &v) || v < 1 || v > keys[i].max) {
            lmq_errf(err, err_len, "[data] %s: expected an integer 1..%llu, got \"%.*s%s\"", key,
                     (unsigned long long)keys[i].max, config__show_len(value), value,
                     config__show_more(value));
            return LMQ_EINVAL;
        }
        *fields[i] = (uint32_t)v;
        return 0;
    }
    lmq_errf(err, err_len, "[data] %s: unknown key (expected " CONFIG_DATA_KEYS ")", key);
    return LMQ_EINVAL;
}

static int config__set_data(struct lmq_config *cfg, const char *key, const char *value, char *err,
                            size_t err_len)
{
    struct lmq_data_config *d = &cfg->data;
    if (strcmp(key, "readers_all") == 0)
        return config__id_list("[data] readers_all", value, d->readers_all, LMQ_DATA_READERS_MAX,
                               &d->readers_all_count, err, err_len);
    if (strcmp(key, "admins") == 0)
        return config__id_list("[data] admins", value, d->admins, LMQ_DATA_READERS_MAX,
                               &d->admin_count, err, err_len);
    if (strcmp(key, "read_budget_ms_per_s") == 0) {
        uint64_t v = 0;
        if (!config__parse_u64(value, &v) || v > LMQ_DATA_READ_BUDGET_MAX_MS) {
            lmq_errf(err, err_len,
                     "[data] read_budget_ms_per_s: expected an integer 0..%u (0: no budget), got "
                     "\"%.*s%s\"",
                     LMQ_DATA_READ_BUDGET_MAX_MS, config__show_len(value), value,
                     config__show_more(value));
            return LMQ_EINVAL;
        }
        d->read_budget_ms_per_s = (uint32_t)v;
        return 0;
    }
    if (strcmp(key, "assert_formats") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            lmq_errf(err, err_len, "[data] assert_formats: expected true or false, got \"%.*s%s\"",
                     config__show_len(value), value, config__show_more(value));
            return LMQ_EINVAL;
        }
        d->assert_formats = strcmp(value, "true") == 0;
        return 0;
    }
    if (strcmp(key, "graphql_auth") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            lmq_errf(err, err_len, "[data] graphql_auth: expected true or false, got \"%.*s%s\"",
                     config__show_len(value), value, config__show_more(value));
            return LMQ_EINVAL;
        }
        d->graphql_auth = strcmp(value, "true") == 0;
        return 0;
    }
    if (strncmp(key, "graphql_max_", 12) == 0)
        return config__set_graphql_limit(d, key, value, err, err_len);
    if (strcmp(key, "models") == 0) {
        if (!config__copy(d->models_dir, sizeof(d->models_dir), value)) {
            lmq_errf(err, err_len, "[data] models: expected a directory path of 0..%d bytes",
                     LMQ_PATH_MAX_BYTES - 1);
            return LMQ_EINVAL;
        }
        return 0;
    }
    lmq_errf(err, err_len, "[data] %s: unknown key (expected " CONFIG_DATA_KEYS ")", key);
    return LMQ_EINVAL;
}

#define CONFIG_JOBS_KEYS                                                                           \
    "NAME, NAME.timeout_ms, NAME.keep_runs, prune_sessions.idle_s, prune_sessions.max_bytes, "     \
    "expire_messages.batch, prune_events.batch, export.dir, export.max_rows, export.gzip, "        \
    "chaser.type, "                                                                                \
    "chaser.after_s, chaser.max, chaser.batch, import.dir, import.to, import.type, import.batch "  \
    "or "                                                                                          \
    "import.max_file_bytes"

/* The entry of job name (len bytes) in [jobs], added when new. NULL when the name is not
 * [a-z0-9_]{1,32} or the table is full (err says which). */
static struct lmq_job_config *config__job(struct lmq_jobs_config *j, const char *name, size_t len,
                                          char *err, size_t err_len)
{
    bool ok = len > 0 && len <= LMQ_JOB_NAME_MAX_CHARS;
    for (size_t i = 0; ok && i < len; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             name[i] == '_';
    if (!ok) {
        lmq_errf(err, err_len,
                 "[jobs] %.*s: unknown key (expected " CONFIG_JOBS_KEYS
                 "; NAME is 1..%d of a-z, 0-9, _)",
                 (int)LMQ_MIN(len, 64), name, LMQ_JOB_NAME_MAX_CHARS);
        return NULL;
    }
    for (size_t i = 0; i < j->count; i++) {
        if (strlen(j->jobs[i].name) == len && memcmp(j->jobs[i].name, name, len) == 0)
            return &j->jobs[i];
    }
    if (j->count == LMQ_JOBS_MAX) {
        lmq_errf(err, err_len, "[jobs] %.*s: more than %d jobs", (int)len, name, LMQ_JOBS_MAX);
        return NULL;
    }
    struct lmq_job_config *job = &j->jobs[j->count++];
    memset(job, 0, sizeof(*job));
    memcpy(job->name, name, len);
    return job;
}

/* [jobs] chaser.type: an envelope type as ledger_envelope_type_valid accepts it (1..64 of
 * A-Z a-z 0-9 . _ : -), checked here so a typo stops the start. */
static int config__chaser_type(struct lmq_jobs_config *j, const char *value, char *err,
                               size_t err_len)
{
    size_t len = strlen(value);
    bool ok = len > 0 && len <= LMQ_CHASER_TYPE_MAX_CHARS;
    for (size_t i = 0; ok && i < len; i++) {
        char c = value[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == ':' || c == '-';
    }
    if (!ok) {
        lmq_errf(err, err_len,
                 "[jobs] chaser.type: expected an envelope type (1..%d of A-Z a-z 0-9 . _ : -), "
                 "got \"%.*s%s\"",
                 LMQ_CHASER_TYPE_MAX_CHARS, config__show_len(value), value,
                 config__show_more(value));
        return LMQ_EINVAL;
    }
    if (strcmp(value, "ledgermq.reminder") == 0) {
        /* Each reminder would be a request of its own, reminded in turn, without end. */
        lmq_errf(err, err_len, "[jobs] chaser.type: ledgermq.reminder is the reminders' own type");
        return LMQ_EINVAL;
    }
    memcpy(j->chaser_type, value, len + 1);
    LMQ_ASSERT(j->chaser_type[0] != '\0');
    return LMQ_OK;
}

/* [jobs]: NAME = SCHEDULE, NAME.timeout_ms, NAME.keep_runs and the built-in jobs' settings. */
static int config__set_jobs(struct lmq_config *cfg, const char *key, const char *value, char *err,
                            size_t err_len)
{
    struct lmq_jobs_config *j = &cfg->jobs;
    const char *dot = strchr(key, '.');
    struct lmq_job_config *job =
        config__job(j, key, dot != NULL ? (size_t)(dot - key) : strlen(key), err, err_len);
    if (job == NULL)
        return LMQ_EINVAL;
    if (strcmp(key, "export.dir") == 0) {
        if (value[0] == '\0' || !config__copy(j->export_dir, sizeof(j->export_dir), value)) {
            lmq_errf(err, err_len, "[jobs] export.dir: expected a directory path of 1..%d bytes",
                     LMQ_PATH_MAX_BYTES - 1);
            return LMQ_EINVAL;
        }
        return LMQ_OK;
    }
    if (strcmp(key, "export.gzip") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            lmq_errf(err, err_len, "[jobs] export.gzip: expected true or false");
            return LMQ_EINVAL;
        }
        j->export_gzip = strcmp(value, "true") == 0;
        return LMQ_OK;
    }
    if (strcmp(key, "chaser.type") == 0)
        return config__chaser_type(j, value, err, err_len);
    static const struct {
        const char *key;
        size_t cap;
    } texts[] = {{"import.dir", LMQ_PATH_MAX_BYTES},
                 {"import.to", LMQ_JOB_IMPORT_ID_MAX_BYTES},
                 {"import.type", LMQ_JOB_IMPORT_ID_MAX_BYTES}};
    char *text_dst[] = {j->import_dir, j->import_to, j->import_type};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(texts); i++) {
        if (strcmp(key, texts[i].key) != 0)
            continue;
        if (value[0] == '\0' || !config__copy(text_dst[i], texts[i].cap, value)) {
            lmq_errf(err, err_len, "[jobs] %s: expected 1..%zu bytes", key, texts[i].cap - 1);
            return LMQ_EINVAL;
        }
        return LMQ_OK;
    }
    if (dot == NULL) {
        struct jobs_schedule sched;
        char why[160];
        if (jobs_schedule_parse(value, &sched, why, sizeof(why)) != LMQ_OK) {
            lmq_errf(err, err_len, "[jobs] %s: %s", key, why);
            return LMQ_EINVAL;
        }
        memcpy(job->schedule, value, strlen(value) + 1); /* < JOBS_SCHEDULE_MAX_BYTES: parsed */
        return LMQ_OK;
    }
    static const struct {
        const char *key;
        uint64_t min, max;
    } keys[] = {{"timeout_ms", 1, 86400000},
                {"keep_runs", 1, 10000},
                {"prune_sessions.idle_s", 1, 10ULL * 365 * 86400},
                {"prune_sessions.max_bytes", 0, UINT64_MAX / 2},
                {"expire_messages.batch", 1, 100000},
                {"prune_events.batch", 1, 100000},
                {"export.max_rows", 1, 100000000},
                {"chaser.after_s", 1, 10ULL * 365 * 86400},
                {"chaser.max", 1, 1000},
                {"chaser.batch", 1, 10000},
                {"import.batch", 1, 100000},
                {"import.max_file_bytes", 1, 1ULL << 40}};
    uint64_t *wide[] = {NULL,
                        NULL,
                        &j->prune_idle_s,
                        &j->prune_max_bytes,
                        NULL,
                        NULL,
                        &j->export_max_rows,
                        &j->chaser_after_s,
                        NULL,
                        NULL,
                        NULL,
                        &j->import_max_file_bytes};
    uint32_t *narrow[] = {&job->timeout_ms,
                          &job->keep_runs,
                          NULL,
                          NULL,
                          &j->expire_batch,
                          &j->prune_events_batch,
                          NULL,
                          NULL,
                          &j->chaser_max,
                          &j->chaser_batch,
                          &j->import_batch,
                          NULL};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(i < 2 ? dot + 1 : key, keys[i].key) != 0)
            continue;
        uint64_t v = 0;
        if (!config__parse_u64(value, &v) || v < keys[i].min || v > keys[i].max) {
            lmq_errf(err, err_len, "[jobs] %s: expected an integer %llu..%llu, got \"%.*s%s\"", key,
                     (unsigned long long)keys[i].min, (unsigned long long)keys[i].max,
                     config__show_len(value), value, config__show_more(value));
            return LMQ_EINVAL;
        }
        if (wide[i] != NULL)
            *wide[i] = v;
        else
            *narrow[i] = (uint32_t)v;
        return LMQ_OK;
    }
    lmq_errf(err, err_len, "[jobs] %s: unknown key (expected " CONFIG_JOBS_KEYS ")", key);
    return LMQ_EINVAL;
}

int lmq_config_set(struct lmq_config *cfg, const char *section, const char *key, const char *value,
                   char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && section != NULL && key != NULL && value != NULL);
    LMQ_ASSERT(err != NULL && err_len > 0);
    err[0] = '\0';
    if (strcmp(section, "server") == 0) {
        return config__set_server(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "limits") == 0) {
        return config__set_limit(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "tls") == 0) {
        return config__set_tls(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "auth") == 0) {
        return config__set_auth(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "http") == 0) {
        return config__http_list(cfg, "http", key, value, false, err, err_len);
    }
    if (strcmp(section, "queue_overflow") == 0) {
        return config__add_overflow_rule(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "data") == 0) {
        return config__set_data(cfg, key, value, err, err_len);
    }
    if (strncmp(section, "webhook.", 8) == 0) {
        return config_set_webhook(cfg, section, key, value, err, err_len);
    }
    if (strcmp(section, "events") == 0) {
        return config_set_events(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "admin") == 0) {
        if (strcmp(key, "ids") != 0) {
            lmq_errf(err, err_len, "[admin] %s: unknown key (expected ids)", key);
            return LMQ_EINVAL;
        }
        return config__id_list("[admin] ids", value, cfg->admin.ids, LMQ_ADMIN_IDS_MAX,
                               &cfg->admin.id_count, err, err_len);
    }
    if (strcmp(section, "plugins") == 0) {
        return config_set_plugins(cfg, key, value, err, err_len);
    }
    if (strncmp(section, "plugin.", 7) == 0) {
        return config_set_plugin(cfg, section, key, value, err, err_len);
    }
    if (strcmp(section, "jobs") == 0) {
        return config__set_jobs(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "seal") == 0) {
        return config_set_seal(cfg, key, value, err, err_len);
    }
    if (strcmp(section, "bots") == 0) {
        return config__set_bots(cfg, key, value, false, err, err_len);
    }
    if (strcmp(section, "chain") == 0) {
        return config_set_chain(cfg, key, value, err, err_len);
    }
    if (section[0] == '\0') {
        lmq_errf(err, err_len,
                 "%s: key outside any section (expected [server], [limits], [tls], [auth], "
                 "[http], [queue_overflow], [data] or [jobs])",
                 key);
    } else {
        lmq_errf(err, err_len,
                 "[%s] %s: unknown section (expected [server], [limits], [tls], [auth], "
                 "[http], [queue_overflow], [data], [jobs], [events], [bots], [admin], "
                 "[webhook.NAME], [plugins], [plugin.NAME], [seal] or [chain])",
                 section, key);
    }
    return LMQ_EINVAL;
}

/* State of one lmq_config_load_file() call, shared by the reader and handler. */
struct config_load {
    struct lmq_config *cfg; /* a working copy, committed only on success */
    const char *path;
    FILE *file;
    int lineno;     /* line the parser is on: counted by our reader */
    bool mqtt_seen; /* the first mqtt key in a file replaces, later ones append */
    bool origins_seen, proxies_seen, proxy_protocol_seen; /* the same for the address lists */
    bool bots_seen, validators_seen;                      /* and for [bots] ids and validators */
    bool failed; /* err holds the first error; parsing stops */
    int failed_lineno;
    int rc;
    char *err;
    size_t err_len;
};

/*
 * libinih reader: fgets, counting lines. libinih splits an over-long line into
 * pieces and parses each as a line of its own, so such a line is an error here.
 */
static char *config__read_line(char *str, int num, void *stream)
{
    struct config_load *ld = stream;
    LMQ_ASSERT(ld != NULL && num > 1);
    if (ld->failed || fgets(str, num, ld->file) == NULL) {
        return NULL;
    }
    ld->lineno++;
    size_t len = strlen(str);
    if (len > 0 && str[len - 1] != '\n') {
        int c = fgetc(ld->file);
        if (c != EOF && c != '\n') {
            lmq_errf(ld->err, ld->err_len, "%s:%d: line longer than %d bytes", ld->path, ld->lineno,
                     num - 2);
            ld->failed = true;
            ld->failed_lineno = ld->lineno;
            ld->rc = LMQ_EINVAL;
            return NULL;
        }
    }
    return str;
}

static int config__handler(void *user, const char *section, const char *name, const char *value)
{
    struct config_load *ld = user;
    LMQ_ASSERT(ld != NULL && section != NULL && name != NULL && value != NULL);
    LMQ_ASSERT(!ld->failed);
    char msg[512];
    int rc = 0;
    bool http = strcmp(section, "http") == 0;
    bool server_list = strcmp(section, "server") == 0 && strcmp(name, "proxy_protocol") == 0;
    bool *list_seen = server_list                            ? &ld->proxy_protocol_seen
                      : !http                                ? NULL
                      : strcmp(name, "allowed_origins") == 0 ? &ld->origins_seen
                      : strcmp(name, "trusted_proxies") == 0 ? &ld->proxies_seen
                                                             : NULL;
    if (strcmp(section, "server") == 0 && strcmp(name, "mqtt") == 0 && ld->mqtt_seen) {
        rc = lmq_config_append_listeners(ld->cfg, value, msg, sizeof(msg));
    } else if (strcmp(section, "bots") == 0 && strcmp(name, "ids") == 0) {
        rc = config__set_bots(ld->cfg, name, value, ld->bots_seen, msg, sizeof(msg));
        ld->bots_seen = true;
    } else if (strcmp(section, "bots") == 0 && strcmp(name, "validators") == 0) {
        rc = config__set_bots(ld->cfg, name, value, ld->validators_seen, msg, sizeof(msg));
        ld->validators_seen = true;
    } else if (list_seen != NULL) {
        /* A line holds at most INI_MAX_LINE bytes: a repeated key adds to the list. */
        rc = config__http_list(ld->cfg, section, name, value, *list_seen, msg, sizeof(msg));
        *list_seen = true;
    } else {
        rc = lmq_config_set(ld->cfg, section, name, value, msg, sizeof(msg));
        ld->mqtt_seen = ld->mqtt_seen ||
                        (rc == 0 && strcmp(section, "server") == 0 && strcmp(name, "mqtt") == 0);
    }
    if (rc != 0) {
        lmq_errf(ld->err, ld->err_len, "%s:%d: %s", ld->path, ld->lineno, msg);
        ld->failed = true;
        ld->failed_lineno = ld->lineno;
        ld->rc = rc;
        return 0;
    }
    return 1;
}

int lmq_config_load_file(struct lmq_config *cfg, const char *path, char *err, size_t err_len)
{
    LMQ_ASSERT(cfg != NULL && path != NULL);
    LMQ_ASSERT(err != NULL && err_len > 0);
    struct lmq_config work = *cfg;
    struct config_load ld = {.cfg = &work, .path = path, .err = err, .err_len = err_len};
    int rc = 0;
    err[0] = '\0';

    if (!config__copy(work.config_path, sizeof(work.config_path), path)) {
        lmq_errf(err, err_len, "%.*s...: config file path longer than %d bytes",
                 CONFIG_SHOW_VALUE_MAX_BYTES, path, LMQ_PATH_MAX_BYTES - 1);
        rc = LMQ_EINVAL;
        goto out;
    }
    ld.file = fopen(path, "r");
    if (ld.file == NULL) {
        lmq_errf(err, err_len, "%s: cannot open config file: %s", path, strerror(errno));
        rc = LMQ_EIO;
        goto out;
    }
    int parse_rc = ini_parse_stream(config__read_line, &ld, config__handler, &ld);
    if (ferror(ld.file)) {
        lmq_errf(err, err_len, "%s: cannot read config file: %s", path, strerror(errno));
        rc = LMQ_EIO;
    } else if (parse_rc > 0 && (!ld.failed || parse_rc < ld.failed_lineno)) {
        /* libinih keeps going after a syntax error; report the first problem. */
        lmq_errf(err, err_len, "%s:%d: syntax error: expected [section] or key = value", path,
                 parse_rc);
        rc = LMQ_EINVAL;
    } else if (ld.failed) {
        rc = ld.rc;
    } else if (parse_rc < 0) {
        lmq_errf(err, err_len, "%s: out of memory while parsing", path);
        rc = LMQ_ENOMEM;
    }
    if (rc == 0) {
        *cfg = work;
    }
out:
    if (ld.file != NULL) {
        fclose(ld.file);
    }
    return rc;
}
