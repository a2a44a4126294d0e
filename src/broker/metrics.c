/*
 * GET /metrics: the Prometheus text format (broker_http.c routes the request here).
 * Everything is read from the loop thread's own counters, so a scrape needs no locking; it
 * walks the sessions once for the queue depth.
 */
#include "events/bots.h"
#include "events/validators.h"
#include "events/webhooks.h"
#include "plugins/plugins.h"
#include "broker/broker_internal.h"
#include "data/data.h"
#include "chain/chain.h"
#include "jobs/jobs.h"
#include "seal/seal.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "net/http.h"

struct queue_totals {
    uint64_t queued;
    uint64_t stored_backlog;
    uint64_t inflight;
    uint64_t online;
};

static bool sum_session(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    struct queue_totals *t = ctx;
    const struct session *s = value;
    LMQ_UNUSED(key);
    LMQ_UNUSED(key_len);
    t->queued += s->queued_count;
    t->stored_backlog += s->stored_backlog;
    t->inflight += s->inflight_count;
    t->online += s->conn != NULL;
    return true;
}

#define METRIC(out, name, type, help)                                                              \
    http_body_printf(out, "# HELP ledgermq_" name " " help "\n# TYPE ledgermq_" name " " type "\n")

static int metrics_broker(struct broker *b, struct lmq_buf *out)
{
    const struct broker_stats *st = &b->stats;
    struct queue_totals q = {0};
    lmq_map_visit(b->sessions, sum_session, &q);
    int rc = 0;
    rc |= METRIC(out, "connections", "gauge", "Connected MQTT clients by transport.");
    static const char *const kinds[CONN_TRANSPORT_KIND_COUNT] = {"tcp", "tls", "ws", "wss"};
    for (size_t k = 0; k < CONN_TRANSPORT_KIND_COUNT; k++)
        rc |= http_body_printf(out, "ledgermq_connections{transport=\"%s\"} %u\n", kinds[k],
                               b->connected_by_kind[k]);
    rc |= METRIC(out, "connections_accepted_total", "counter",
                 "MQTT connections started: TCP and TLS sockets accepted, WebSocket upgrades.");
    rc |= http_body_printf(out, "ledgermq_connections_accepted_total %" PRIu64 "\n",
                           st->connections_accepted);
    rc |= METRIC(out, "connections_refused_total", "counter",
                 "Connections refused by a per-address count or rate limit.");
    rc |= http_body_printf(out,
                           "ledgermq_connections_refused_total{reason=\"address\"} %" PRIu64 "\n",
                           st->connections_refused_address);
    rc |= METRIC(out, "tls_handshake_failures_total", "counter",
                 "TLS handshakes that failed on the MQTT TLS listeners and the HTTPS listener.");
    rc |= http_body_printf(out, "ledgermq_tls_handshake_failures_total %" PRIu64 "\n",
                           st->tls_handshake_failures + broker_http_tls_failures(b));
    rc |= METRIC(out, "websocket_protocol_errors_total", "counter",
                 "WebSocket connections closed for a framing violation.");
    rc |= http_body_printf(out, "ledgermq_websocket_protocol_errors_total %" PRIu64 "\n",
                           st->ws_protocol_errors);
    rc |= METRIC(out, "security_events_total", "counter",
                 "Refused logins, tokens, permissions, signatures, replays, rate limits.");
    for (int k = 0; k < SECURITY_EVENT_COUNT; k++)
        rc |= http_body_printf(out, "ledgermq_security_events_total{kind=\"%s\"} %" PRIu64 "\n",
                               security_event_name((enum security_event)k), b->security_events[k]);
    rc |= METRIC(out, "security_events_suppressed_total", "counter",
                 "Security events (and refused admin calls) not recorded in the event stream: "
                 "past [events] security_per_s, counted in security.suppressed events.");
    rc |= http_body_printf(out, "ledgermq_security_events_suppressed_total %" PRIu64 "\n",
                           b->security_suppressed_total);
    rc |= METRIC(out, "auth_failures_total", "counter",
                 "Refused authentications by reason: MQTT CONNECT credentials (token, password, "
                 "anonymous) and POST /auth/token logins (bad_login, reused_nonce).");
    static const enum security_event auth_kinds[] = {
        SECURITY_EVENT_BAD_TOKEN,        SECURITY_EVENT_EXPIRED_TOKEN, SECURITY_EVENT_REVOKED_TOKEN,
        SECURITY_EVENT_BAD_LOGIN,        SECURITY_EVENT_REUSED_NONCE,  SECURITY_EVENT_BAD_PASSWORD,
        SECURITY_EVENT_ANONYMOUS_REFUSED};
    for (size_t k = 0; k < LMQ_ARRAY_LEN(auth_kinds); k++)
        rc |=
            http_body_printf(out, "ledgermq_auth_failures_total{reason=\"%s\"} %" PRIu64 "\n",
                             security_event_name(auth_kinds[k]), b->security_events[auth_kinds[k]]);
    rc |= METRIC(out, "ledger_envelopes", "gauge", "Envelopes in the ledger.");
    rc |= http_body_printf(out, "ledgermq_ledger_envelopes %" PRIu64 "\n", pipeline_ledger_size(b));
    rc |= METRIC(out, "sessions", "gauge", "Sessions, online and offline.");
    rc |= http_body_printf(out, "ledgermq_sessions{state=\"online\"} %" PRIu64 "\n", q.online);
    rc |= http_body_printf(out, "ledgermq_sessions{state=\"offline\"} %" PRIu64 "\n",
                           (uint64_t)b->session_count - q.online);
    rc |= METRIC(out, "subscriptions", "gauge", "Subscriptions in the topic tree.");
    rc |= http_body_printf(out, "ledgermq_subscriptions %zu\n", sub_tree_count(b->subs));
    rc |= METRIC(out, "retained_messages", "gauge", "Retained messages held.");
    rc |= http_body_printf(out, "ledgermq_retained_messages %zu\n", retain_count(b));
    rc |= METRIC(out, "retained_deliveries_running", "gauge",
                 "Subscriptions whose retained messages are still being delivered.");
    rc |=
        http_body_printf(out, "ledgermq_retained_deliveries_running %zu\n", retain_cursor_count(b));
    rc |= METRIC(out, "output_bytes", "gauge",
                 "Output buffered for all connections (max_memory_output_bytes bounds it).");
    rc |= http_body_printf(out, "ledgermq_output_bytes %" PRIu64 "\n", b->output_bytes);
    rc |= METRIC(out, "output_budget_exceeded_total", "counter",
                 "Times the output held for all connections went over max_memory_output_bytes.");
    rc |= http_body_printf(out, "ledgermq_output_budget_exceeded_total %" PRIu64 "\n",
                           st->output_budget_exceeded);
    rc |= METRIC(out, "slow_consumers_closed_total", "counter",
                 "Connections closed for holding unread output over the memory budget.");
    rc |= http_body_printf(out, "ledgermq_slow_consumers_closed_total %" PRIu64 "\n",
                           st->slow_consumers_closed);
    rc |= METRIC(out, "queued_messages", "gauge", "Messages queued for sessions (all states).");
    rc |= http_body_printf(out, "ledgermq_queued_messages %" PRIu64 "\n", q.queued);
    rc |= METRIC(out, "queued_messages_stored_only", "gauge",
                 "Queued messages only in the store (paged in later).");
    rc |= http_body_printf(out, "ledgermq_queued_messages_stored_only %" PRIu64 "\n",
                           q.stored_backlog);
    rc |= METRIC(out, "inflight_messages", "gauge", "QoS 1/2 sent and not yet acknowledged.");
    rc |= http_body_printf(out, "ledgermq_inflight_messages %" PRIu64 "\n", q.inflight);
    rc |= METRIC(out, "messages_total", "counter", "PUBLISH packets by direction and QoS.");
    for (int qos = 0; qos < 3; qos++) {
        rc |= http_body_printf(out,
                               "ledgermq_messages_total{direction=\"in\",qos=\"%d\"} %" PRIu64 "\n",
                               qos, st->messages_in_qos[qos]);
        rc |= http_body_printf(
            out, "ledgermq_messages_total{direction=\"out\",qos=\"%d\"} %" PRIu64 "\n", qos,
            st->messages_out_qos[qos]);
    }
    rc |= METRIC(out, "bytes_total", "counter",
                 "Bytes of MQTT clients: in = read from their sockets (TLS and WebSocket framing "
                 "included), out = MQTT packets written for them (before TLS/WebSocket framing).");
    rc |=
        http_body_printf(out, "ledgermq_bytes_total{direction=\"in\"} %" PRIu64 "\n", st->bytes_in);
    rc |= http_body_printf(out, "ledgermq_bytes_total{direction=\"out\"} %" PRIu64 "\n",
                           st->bytes_out);
    rc |= METRIC(out, "refused_total", "counter",
                 "Publishes and wills refused for a full queue (0x97 or 3.1.1 backpressure).");
    rc |= http_body_printf(out, "ledgermq_refused_total{reason=\"quota\"} %" PRIu64 "\n",
                           st->refused_quota);
    rc |= METRIC(out, "dropped_total", "counter", "Deliveries discarded, by reason.");
    rc |= http_body_printf(out, "ledgermq_dropped_total{reason=\"qos0_queue_full\"} %" PRIu64 "\n",
                           st->qos0_dropped);
    rc |= http_body_printf(out, "ledgermq_dropped_total{reason=\"qos0_gave_way\"} %" PRIu64 "\n",
                           st->qos0_gave_way);
    rc |= http_body_printf(out, "ledgermq_dropped_total{reason=\"expired\"} %" PRIu64 "\n",
                           st->expired_dropped);
    rc |= http_body_printf(out,
                           "ledgermq_dropped_total{reason=\"too_large_for_client\"} %" PRIu64 "\n",
                           st->oversize_dropped);
    rc |= http_body_printf(out, "ledgermq_dropped_total{reason=\"queue_overflow\"} %" PRIu64 "\n",
                           st->overflow_dropped);
    rc |= http_body_printf(out,
                           "ledgermq_dropped_total{reason=\"queue_full_id_resync\"} %" PRIu64 "\n",
                           st->overflow_identity_left);
    rc |= METRIC(out, "sessions_ended_total", "counter",
                 "Sessions ended by the broker before their expiry, by reason.");
    rc |= http_body_printf(out,
                           "ledgermq_sessions_ended_total{reason=\"queue_overflow\"} %" PRIu64 "\n",
                           st->overflow_ended);
    rc |= METRIC(out, "topic_alias_out_total", "counter",
                 "PUBLISHes to clients that assigned a topic alias or used one (alias-only).");
    rc |= http_body_printf(out, "ledgermq_topic_alias_out_total{kind=\"assigned\"} %" PRIu64 "\n",
                           st->alias_out_assigned);
    rc |= http_body_printf(out, "ledgermq_topic_alias_out_total{kind=\"used\"} %" PRIu64 "\n",
                           st->alias_out_used);
    rc |= METRIC(out, "topic_alias_out_bytes_total", "counter",
                 "Bytes outbound topic aliases saved (alias-only PUBLISHes) and spent (the Topic "
                 "Alias property of the PUBLISHes that assigned one).");
    rc |=
        http_body_printf(out, "ledgermq_topic_alias_out_bytes_total{kind=\"saved\"} %" PRIu64 "\n",
                         st->alias_out_saved_bytes);
    rc |=
        http_body_printf(out, "ledgermq_topic_alias_out_bytes_total{kind=\"spent\"} %" PRIu64 "\n",
                         st->alias_out_spent_bytes);
    rc |= METRIC(out, "token_connections_ended_total", "counter",
                 "Connections ended because their login token expired or was revoked.");
    rc |= http_body_printf(out, "ledgermq_token_connections_ended_total %" PRIu64 "\n",
                           st->token_conns_ended);
    rc |= METRIC(out, "token_revocations_total", "counter",
                 "Token revocations applied since start (POST /auth/revoke, ledgermq revoke).");
    rc |=
        http_body_printf(out, "ledgermq_token_revocations_total %" PRIu64 "\n", st->tokens_revoked);
    rc |= METRIC(out, "ledger_quota_refused_total", "counter",
                 "Envelopes refused over [auth] ledger_bytes_per_day.");
    rc |= http_body_printf(out, "ledgermq_ledger_quota_refused_total %" PRIu64 "\n",
                           st->ledger_quota_refused);
    uint64_t objects_accepted = 0, objects_refused = 0;
    size_t models = 0;
    data_counts(b, &objects_accepted, &objects_refused, &models);
    rc |= METRIC(out, "objects_total", "counter",
                 "Typed objects since start: versions stored, objects refused (any reason).");
    rc |= http_body_printf(out,
                           "ledgermq_objects_total{result=\"accepted\"} %" PRIu64 "\n"
                           "ledgermq_objects_total{result=\"refused\"} %" PRIu64 "\n",
                           objects_accepted, objects_refused);
    uint64_t gql_requests = 0, gql_reads = 0;
    data_graphql_counts(b, &gql_requests, &gql_reads);
    rc |= METRIC(out, "graphql_requests_total", "counter", "GraphQL requests answered.");
    rc |= http_body_printf(out, "ledgermq_graphql_requests_total %" PRIu64 "\n", gql_requests);
    rc |= METRIC(out, "graphql_store_reads_total", "counter",
                 "Store reads GraphQL requests made (references: one read a level).");
    rc |= http_body_printf(out, "ledgermq_graphql_store_reads_total %" PRIu64 "\n", gql_reads);
    rc |= webhooks_metrics(b, out);
    rc |= plugins_metrics(b, out);
    rc |= bots_metrics(b, out);
    rc |= validators_metrics(b, out);
    struct read_budget_stats budget;
    read_budget_counts(b, &budget);
    uint64_t budget_refused = budget.refused, budget_spent_us = budget.spent_us;
    rc |= METRIC(out, "data_reads_refused_total", "counter",
                 "Data-layer requests answered 429: their client's read budget was spent.");
    rc |= http_body_printf(out, "ledgermq_data_reads_refused_total %" PRIu64 "\n", budget_refused);
    rc |= METRIC(out, "data_read_seconds_total", "counter",
                 "Loop time the data layer's routes took, charged to read budgets.");
    rc |= http_body_printf(out, "ledgermq_data_read_seconds_total %" PRIu64 ".%06" PRIu64 "\n",
                           budget_spent_us / 1000000u, budget_spent_us % 1000000u);
    rc |= METRIC(out, "models", "gauge", "Models loaded from [data] models.");
    rc |= http_body_printf(out, "ledgermq_models %zu\n", models);
    rc |= METRIC(out, "disk_low", "gauge", "1 while free space is under min_free_disk.");
    rc |= http_body_printf(out, "ledgermq_disk_low %d\n", b->disk_low ? 1 : 0);
    return rc;
}

/* What the per-address limits on logins, password checks, HTTP and descriptors did. */
static int metrics_guards(struct broker *b, struct lmq_buf *out)
{
    const struct broker_stats *st = &b->stats;
    struct http_server_stats h = {0};
    http_server_add_stats(b->http, &h);
    http_server_add_stats(b->https, &h);
    int rc = 0;
    rc |= METRIC(out, "http_refused_total", "counter",
                 "HTTP(S) connections closed at accept by a per-address limit.");
    rc |= http_body_printf(out, "ledgermq_http_refused_total{reason=\"address\"} %" PRIu64 "\n",
                           h.refused_address);
    rc |= http_body_printf(out, "ledgermq_http_refused_total{reason=\"handshakes\"} %" PRIu64 "\n",
                           h.refused_handshakes);
    rc |= METRIC(out, "http_timeouts_total", "counter",
                 "HTTP(S) connections ended by a handshake, header or request deadline.");
    rc |= http_body_printf(out, "ledgermq_http_timeouts_total{phase=\"handshake\"} %" PRIu64 "\n",
                           h.handshake_timeouts);
    rc |= http_body_printf(out, "ledgermq_http_timeouts_total{phase=\"header\"} %" PRIu64 "\n",
                           h.header_timeouts);
    rc |= http_body_printf(out, "ledgermq_http_timeouts_total{phase=\"request\"} %" PRIu64 "\n",
                           h.request_timeouts);
    rc |= METRIC(out, "login_challenges", "gauge", "Login challenges outstanding.");
    rc |= http_body_printf(out, "ledgermq_login_challenges %zu\n", pipeline_nonce_count(b));
    rc |= METRIC(out, "login_challenges_evicted_total", "counter",
                 "Login challenges evicted to make room, by the cap that was reached.");
    static const char *const caps[PIPELINE_NONCE_EVICT_COUNT] = {"address", "key", "all"};
    for (int i = 0; i < PIPELINE_NONCE_EVICT_COUNT; i++)
        rc |= http_body_printf(out,
                               "ledgermq_login_challenges_evicted_total{cap=\"%s\"} %" PRIu64 "\n",
                               caps[i], st->login_evicted[i]);
    rc |= METRIC(out, "password_checks", "gauge", "Password hashes queued or running.");
    rc |= http_body_printf(out, "ledgermq_password_checks %u\n", b->password_checks);
    rc |= METRIC(out, "password_connects_total", "counter",
                 "Password CONNECTs that waited for a slot or were refused before a check.");
    rc |=
        http_body_printf(out, "ledgermq_password_connects_total{outcome=\"waited\"} %" PRIu64 "\n",
                         st->password_waited);
    rc |= http_body_printf(out, "ledgermq_password_connects_total{outcome=\"busy\"} %" PRIu64 "\n",
                           st->password_busy);
    rc |=
        http_body_printf(out, "ledgermq_password_connects_total{outcome=\"backoff\"} %" PRIu64 "\n",
                         st->password_backoff_refused);
    rc |= METRIC(out, "emfile_total", "counter",
                 "Accepts that failed for want of a file descriptor (connection closed).");
    uint64_t emfile = h.emfile;
    for (size_t i = 0; i < b->listener_count; i++)
        emfile += b->acceptors[i].emfile_count;
    rc |= http_body_printf(out, "ledgermq_emfile_total %" PRIu64 "\n", emfile);
    return rc;
}

static int metrics_store(struct broker *b, struct lmq_buf *out)
{
    if (b->store == NULL)
        return 0;
    struct store_stats st;
    store_get_stats(b->store, &st);
    int rc = 0;
    rc |= METRIC(out, "store_commits_total", "counter", "Store transactions committed.");
    rc |= http_body_printf(out, "ledgermq_store_commits_total %" PRIu64 "\n", st.commits);
    rc |= METRIC(out, "store_fsyncs_total", "counter", "Commits made durable with fsync.");
    rc |= http_body_printf(out, "ledgermq_store_fsyncs_total %" PRIu64 "\n",
                           b->cfg.sync == LMQ_SYNC_OFF ? 0 : st.commits);
    rc |=
        METRIC(out, "store_batches_total", "counter",
               "Write batches handed to the store, one per loop turn that wrote; a commit applies "
               "one or more (several only while a slow fsync holds the next ones back).");
    rc |= http_body_printf(out, "ledgermq_store_batches_total %" PRIu64 "\n", st.batches);
    rc |= METRIC(out, "store_records_total", "counter", "Records written to the store.");
    rc |= http_body_printf(out, "ledgermq_store_records_total %" PRIu64 "\n", st.records_written);
    rc |= METRIC(out, "store_commit_seconds", "histogram", "Store commit latency.");
    uint64_t cumulative = 0;
    for (unsigned i = 0; i < STORE_COMMIT_BUCKETS; i++) {
        cumulative += st.commit_le_hist[i];
        double le_s = (double)store_commit_bucket_le_us[i] / 1e6;
        rc |= http_body_printf(out, "ledgermq_store_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                               le_s, cumulative);
    }
    rc |= http_body_printf(out, "ledgermq_store_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                           st.commits);
    rc |= http_body_printf(out, "ledgermq_store_commit_seconds_sum %.6f\n",
                           (double)st.commit_us_total / 1e6);
    rc |= http_body_printf(out, "ledgermq_store_commit_seconds_count %" PRIu64 "\n", st.commits);
    return rc;
}

/* What /proc/self/stat says about this process (Linux); false when it can't be read. */
struct proc_stat {
    double cpu_s;
    double start_time_s; /* Unix time */
    uint64_t virtual_bytes;
    uint64_t resident_bytes;
};

/* The system's boot time (Unix seconds) from /proc/stat's btime line; 0 when unknown. */
static uint64_t metrics_boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL)
        return 0;
    char line[256];
    uint64_t btime = 0;
    /* A few hundred lines at most (one per CPU, then the totals): bounded by the file. */
    for (int i = 0; i < 100000 && fgets(line, sizeof(line), f) != NULL; i++) {
        unsigned long long v;
        if (sscanf(line, "btime %llu", &v) == 1) {
            btime = v;
            break;
        }
    }
    fclose(f);
    return btime;
}

static bool metrics_proc_stat(struct proc_stat *ps)
{
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL)
        return false;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold anything: start after the last. */
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    unsigned long long utime, stime, start, vsize;
    long long rss;
    /* Fields 3..24: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime cutime cstime priority nice threads itrealvalue starttime vsize rss. */
    if (sscanf(
            p + 1,
            " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu "
            "%llu %lld",
            &utime, &stime, &start, &vsize, &rss) != 5)
        return false;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    uint64_t boot = metrics_boot_time_s();
    if (ticks <= 0 || page <= 0 || boot == 0)
        return false;
    ps->cpu_s = (double)(utime + stime) / (double)ticks;
    ps->start_time_s = (double)boot + (double)start / (double)ticks;
    ps->virtual_bytes = vsize;
    ps->resident_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
    return true;
}

/* Descriptors open now (the scan's own excluded); -1 when /proc/self/fd can't be read. */
static int64_t metrics_open_fds(uint64_t max_fds)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int64_t count = 0;
    /* Bounded by the descriptor limit (plus ".", ".." and the scan's own). */
    for (uint64_t i = 0; i < max_fds + 3 && readdir(d) != NULL; i++)
        count++;
    closedir(d);
    return count >= 3 ? count - 3 : 0;
}

#define PMETRIC(out, name, type, help)                                                             \
    http_body_printf(out, "# HELP " name " " help "\n# TYPE " name " " type "\n")

/* The standard process_* metrics every Prometheus client library exports, and build/uptime. */
static int metrics_process(struct lmq_buf *out)
{
    int rc = 0;
    rc |= METRIC(out, "build_info", "gauge", "Always 1; the version label names the build.");
    rc |= http_body_printf(out, "ledgermq_build_info{version=\"%s\"} 1\n", LMQ_VERSION);
    struct rlimit rl;
    uint64_t max_fds = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_C(1) << 20 : (uint64_t)rl.rlim_cur;
    struct proc_stat ps;
    if (metrics_proc_stat(&ps)) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double now_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
        rc |= METRIC(out, "uptime_seconds", "gauge", "Seconds since the broker process started.");
        rc |= http_body_printf(out, "ledgermq_uptime_seconds %.3f\n",
                               now_s > ps.start_time_s ? now_s - ps.start_time_s : 0.0);
        rc |= PMETRIC(out, "process_cpu_seconds_total", "counter",
                      "Total user and system CPU time spent in seconds.");
        rc |= http_body_printf(out, "process_cpu_seconds_total %.2f\n", ps.cpu_s);
        rc |= PMETRIC(out, "process_start_time_seconds", "gauge",
                      "Start time of the process since unix epoch in seconds.");
        rc |= http_body_printf(out, "process_start_time_seconds %.2f\n", ps.start_time_s);
        rc |=
            PMETRIC(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        rc |= http_body_printf(out, "process_virtual_memory_bytes %" PRIu64 "\n", ps.virtual_bytes);
        rc |= PMETRIC(out, "process_resident_memory_bytes", "gauge",
                      "Resident memory size in bytes.");
        rc |=
            http_body_printf(out, "process_resident_memory_bytes %" PRIu64 "\n", ps.resident_bytes);
    }
    int64_t open_fds = metrics_open_fds(max_fds);
    if (open_fds >= 0) {
        rc |= PMETRIC(out, "process_open_fds", "gauge", "Number of open file descriptors.");
        rc |= http_body_printf(out, "process_open_fds %" PRId64 "\n", open_fds);
    }
    if (max_fds > 0) {
        rc |= PMETRIC(out, "process_max_fds", "gauge",
                      "Maximum number of open file descriptors (the soft limit).");
        rc |= http_body_printf(out, "process_max_fds %" PRIu64 "\n", max_fds);
    }
    return rc;
}

int metrics_render(struct broker *b, struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && out != NULL);
    /* Each printf's error bits are OR-ed together: any failure means the body is incomplete. */
    int rc = metrics_broker(b, out) | metrics_guards(b, out) | metrics_store(b, out) |
             metrics_process(out) | jobs_metrics(b, out) | seal_metrics(b, out) |
             chain_metrics(b, out);
    return rc != 0 ? LMQ_ETOOBIG : LMQ_OK;
}
