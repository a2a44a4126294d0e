/*
 * The open-file limit (RLIMIT_NOFILE): raised at start, checked against what the configured
 * limits can open, and EMFILE at accept made visible.
 *
 * Every client connection is a descriptor. With the usual soft limit of 1,024 the broker ran
 * out of descriptors long before max_connections, and accept failures were dropped silently.
 * So at start the soft limit is raised to the hard limit (an unprivileged process may), both
 * are logged, and a configuration whose connection limits can't be served within it is refused
 * with a one-line message: better a clear refusal at start than an unreachable broker later.
 *
 * When descriptors still run out anyway (a limit lowered from outside with prlimit, files
 * SQLite opens), accept fails with EMFILE: net/accept.c then lends its reserve descriptor to
 * accept and close the pending connections and logs "emfile" (at most once a second).
 */
#include "broker/broker_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "net/http.h"

/* Descriptors that are not client connections: the store (database, WAL, shared memory,
 * journal), the loop's own (epoll, eventfds, signal pipe), the thread pool, log and key files,
 * reloads of the password and ACL files, libuv's reserve, and the brief duplicate a WebSocket
 * upgrade holds. Generous on purpose: running short of these is worse than a lower cap. */
#define FD_LIMIT_MARGIN 64

uint64_t fd_limit_needed(const struct lmq_config *cfg)
{
    LMQ_ASSERT(cfg != NULL);
    const struct lmq_limits *l = &cfg->limits;
    uint64_t need = (uint64_t)l->max_connections + CONN_REFUSAL_SLACK;
    uint64_t http_each = (uint64_t)l->http_max_connections + HTTP_REFUSAL_SLACK;
    need += cfg->http_enabled ? http_each : 0;
    need += cfg->https_enabled ? http_each : 0;
    need += cfg->mqtt_count + cfg->mqtts_count + cfg->http_enabled + cfg->https_enabled;
    need += FD_LIMIT_MARGIN;
    LMQ_ASSERT(need > FD_LIMIT_MARGIN);
    return need;
}

/* RLIM_INFINITY and values beyond 64 bits read as UINT64_MAX. */
static uint64_t fd_limit_value(rlim_t v)
{
    return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t)v;
}

/* Connections fitted to a low limit are at least this many (below that the limit is refused). */
#define FD_LIMIT_FIT_MIN_CONNECTIONS 64

/*
 * A limit too low for the default connection limits (not for limits the operator set: those
 * are refused) lowers them to fit: the HTTP listeners keep at most an eighth of the room each,
 * MQTT the rest. True when that leaves at least FD_LIMIT_FIT_MIN_CONNECTIONS MQTT connections.
 */
static bool fd_limit_fit_defaults(struct lmq_config *cfg, uint64_t soft)
{
    struct lmq_config defaults;
    lmq_config_defaults(&defaults);
    struct lmq_limits *l = &cfg->limits;
    if (l->max_connections != defaults.limits.max_connections ||
        l->http_max_connections != defaults.limits.http_max_connections)
        return false;
    uint64_t http_listeners = (uint64_t)cfg->http_enabled + (uint64_t)cfg->https_enabled;
    uint64_t fixed =
        fd_limit_needed(cfg) - l->max_connections - http_listeners * l->http_max_connections;
    if (soft <= fixed)
        return false;
    uint64_t room = soft - fixed;
    uint64_t http_each = LMQ_MIN((uint64_t)l->http_max_connections, room / 8);
    uint64_t mqtt = room - http_listeners * http_each;
    if (mqtt < FD_LIMIT_FIT_MIN_CONNECTIONS || (http_listeners > 0 && http_each == 0))
        return false;
    l->max_connections = (uint32_t)LMQ_MIN(mqtt, (uint64_t)l->max_connections);
    l->http_max_connections = (uint32_t)http_each;
    return true;
}

int fd_limit_apply(struct lmq_config *cfg, struct fd_limit_info *info)
{
    LMQ_ASSERT(cfg != NULL && info != NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot read the open-file limit: %s",
                     strerror(errno));
        return LMQ_EIO;
    }
    uint64_t soft_before = fd_limit_value(rl.rlim_cur);
    if (rl.rlim_cur != rl.rlim_max) {
        struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        /* Can fail where the hard limit is above the kernel's nr_open: keep the soft one. */
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    uint64_t soft = fd_limit_value(rl.rlim_cur);
    uint64_t hard = fd_limit_value(rl.rlim_max);
    LMQ_ASSERT(soft <= hard && soft >= soft_before);
    uint64_t need = fd_limit_needed(cfg);
    *info = (struct fd_limit_info){soft_before, soft, hard, need, false};
    if (need > soft && fd_limit_fit_defaults(cfg, soft)) {
        info->needed = fd_limit_needed(cfg);
        info->fitted = true;
        LMQ_ASSERT(info->needed <= soft);
        return LMQ_OK;
    }
    if (need > soft) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed",
                     "the open-file limit is %" PRIu64 " (hard %" PRIu64 ") but "
                     "max_connections %u + http_max_connections %u%s need %" PRIu64
                     " descriptors: lower them or raise the limit (ulimit -n, LimitNOFILE=)",
                     soft, hard, cfg->limits.max_connections, cfg->limits.http_max_connections,
                     cfg->https_enabled && cfg->http_enabled ? " (x2: http and https)" : "", need);
        return LMQ_ELIMIT;
    }
    return LMQ_OK;
}

void fd_limit_log(const struct lmq_config *cfg, const struct fd_limit_info *info)
{
    LMQ_ASSERT(info != NULL && info->needed <= info->soft);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "fd_limit")) {
        lmq_log_uint(&line, "soft_at_start", info->soft_at_start);
        lmq_log_uint(&line, "soft", info->soft);
        lmq_log_uint(&line, "hard", info->hard);
        lmq_log_uint(&line, "needed", info->needed);
        lmq_log_end(&line);
    }
    if (info->fitted && lmq_log_begin(&line, LMQ_LOG_WARN, "fd_limit_fitted")) {
        lmq_log_uint(&line, "max_connections", cfg->limits.max_connections);
        lmq_log_uint(&line, "http_max_connections", cfg->limits.http_max_connections);
        lmq_log_str(&line, "detail",
                    "the open-file limit is too low for the default connection limits: lowered "
                    "to fit (raise the limit, or set them to be refused instead)");
        lmq_log_end(&line);
    }
}
