/*
 * Broker lifecycle: the loop, listeners, signals, the tick, the per-turn flush of socket
 * output (after the turn's commit, commit.c) and the shutdown sequence.
 */
#include "broker/broker_internal.h"
#include "data/data.h"
#include "events/bots.h"
#include "events/validators.h"
#include "events/events.h"
#include "events/webhooks.h"
#include "plugins/plugins.h"
#include "chain/chain.h"
#include "jobs/jobs.h"
#include "seal/seal.h"

#include "net/address.h"
#include "net/http.h"
#include "net/tls.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

/* How often blocked publishers are retried even without a queue drain (a safety net: they are
 * resumed when an ack or a drained queue frees what they wait for; an identity over its
 * message rate waits for the next second). */
#define BROKER_TICK_MS 250
/* Backlog of the listening sockets. */
#define BROKER_LISTEN_BACKLOG 511
/* Grace period for clients to receive their DISCONNECT at shutdown. */
#define BROKER_SHUTDOWN_GRACE_MS 2000

void broker_fail_stop(struct broker *b, const char *what, int err)
{
    LMQ_UNUSED(b);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_ERROR, "store_failure")) {
        lmq_log_str(&line, "op", what);
        lmq_log_str(&line, "error", lmq_strerror(err));
        lmq_log_end(&line);
    }
    /* Fail stop: nothing more is acknowledged; a restart recovers from what is durable. */
    fflush(NULL);
    _exit(2);
}

/* Once per loop turn: retry held-back publishers, close the open batch with one commit (the
 * commit seam, commit.c), then flush sockets. */
static void broker_turn_end(struct broker *b)
{
    /* Publishers held back by a full queue (policy refuse) retry once per turn that freed room
     * in some queue; the tick retries them too, as a safety net. */
    if (b->queue_room_freed) {
        b->queue_room_freed = false;
        if (!list_empty(&b->blocked))
            conn_retry_blocked(b, &b->blocked);
    }
    if (!list_empty(&b->yielded))
        conn_retry_blocked(b, &b->yielded);
    commit_turn_end(b);
    conn_flush_all(b);
}

static void on_prepare(uv_prepare_t *h)
{
    broker_turn_end(h->data);
}

static void on_check(uv_check_t *h)
{
    broker_turn_end(h->data);
}

static void on_tick(uv_timer_t *t)
{
    struct broker *b = t->data;
    clock_sync(b);
    conn_retry_blocked(b, &b->blocked);
    if (b->tick_count++ % 40 == 0)
        retain_expire(b);
    conn_memory_sweep(b);
    conn_address_sweep(b, false);
    security_events_tick(b);
    access_guard_tick(b);
}

static void broker_close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void broker_log_store_stats(struct broker *b)
{
    if (b->store == NULL)
        return;
    struct store_stats st;
    store_get_stats(b->store, &st);
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "store_stats"))
        return;
    lmq_log_uint(&line, "commits", st.commits);
    lmq_log_uint(&line, "batches", st.batches);
    lmq_log_uint(&line, "records", st.records_written);
    lmq_log_uint(&line, "commit_us_avg", st.commits ? st.commit_us_total / st.commits : 0);
    lmq_log_uint(&line, "commit_us_p50", store_stats_percentile_us(&st, 0.50));
    lmq_log_uint(&line, "commit_us_p99", store_stats_percentile_us(&st, 0.99));
    lmq_log_uint(&line, "commit_us_max", st.commit_us_max);
    lmq_log_uint(&line, "messages_in", b->stats.messages_in);
    lmq_log_end(&line);
}

/* The grace period is over: close whatever is still connected. */
static void on_shutdown_timeout(uv_timer_t *t)
{
    struct broker *b = t->data;
    struct list_node *n = b->conns.next;
    size_t guard = b->conn_count + 1;
    while (n != &b->conns && guard-- > 0) {
        struct conn *c = list_entry(n, struct conn, all);
        n = n->next;
        conn_close(c);
    }
}

void broker_on_conn_freed(struct broker *b)
{
    if (!b->stopping || b->conn_count > 0)
        return;
    /* Last connection gone: let the loop end once the store has finished its commits. */
    broker_close_handle((uv_handle_t *)&b->shutdown_timer);
    if (b->http != NULL) {
        http_server_close(b->http);
        b->http = NULL;
    }
    if (b->https != NULL) {
        http_server_close(b->https);
        b->https = NULL;
    }
    broker_turn_end(b);
    broker_close_handle((uv_handle_t *)&b->flush_prepare);
    broker_close_handle((uv_handle_t *)&b->flush_check);
    broker_log_store_stats(b);
    if (b->store != NULL) {
        /* Detached first: completions that run inside store_close() must not write more. */
        struct store *store = b->store;
        b->store = NULL;
        store_close(store);
    }
}

static void broker_stop(struct broker *b, const char *why)
{
    if (b->stopping)
        return;
    b->stopping = true;
    lmq_log_msg(LMQ_LOG_INFO, "shutdown", why);
    for (size_t i = 0; i < b->listener_count; i++) {
        net_acceptor_close(&b->acceptors[i], NULL); /* before the socket it watches closes */
        broker_close_handle((uv_handle_t *)&b->listeners[i]);
    }
    if (b->http != NULL)
        http_server_stop_accepting(b->http); /* /healthz says "draining" until the end */
    if (b->https != NULL)
        http_server_stop_accepting(b->https);
    /* Tell every client why, then close; output is flushed by the close path. */
    struct list_node *n = b->conns.next;
    size_t guard = b->conn_count + 1;
    while (n != &b->conns && guard-- > 0) {
        struct conn *c = list_entry(n, struct conn, all);
        n = n->next;
        c->will_on_close = false; /* a server shutdown is not the client's failure */
        conn_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN);
    }
    broker_close_handle((uv_handle_t *)&b->sig_term);
    broker_close_handle((uv_handle_t *)&b->sig_int);
    broker_close_handle((uv_handle_t *)&b->sig_hup);
    broker_close_handle((uv_handle_t *)&b->tick);
    broker_close_handle((uv_handle_t *)&b->drain_timer);
    sys_tree_stop(b);
    webhooks_stop(b); /* deliveries in flight are sent again after a restart */
    plugins_stop(b);
    jobs_stop(b);       /* a run in progress is recorded interrupted */
    seal_stop(b);       /* a seal committed and not sent is sent again after a restart */
    chain_stop(b);      /* a step in flight is dropped: its blocks are fetched again */
    validators_stop(b); /* pending verdicts are in memory only: the resends ask again */
    uv_timer_start(&b->shutdown_timer, on_shutdown_timeout, BROKER_SHUTDOWN_GRACE_MS, 0);
    broker_on_conn_freed(b);
}

/* SIGHUP: new TLS sessions use the certificate files as they are now (renewed certificates
 * need no restart); open sessions keep theirs. A failure keeps the old ones. */
static void broker_reload_tls(struct broker *b)
{
    if (b->tls == NULL)
        return;
    char err[512];
    if (tls_server_reload(b->tls, err, sizeof(err)) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "tls_reload_failed", err);
        return;
    }
    lmq_log_msg(LMQ_LOG_INFO, "tls_reloaded", b->cfg.tls.cert_file);
}

/* The drain grace period after SIGTERM is over: the shutdown proceeds. */
static void on_drain_timeout(uv_timer_t *t)
{
    broker_stop(t->data, "SIGTERM");
}

int broker_reload(struct broker *b, char *err, size_t err_len)
{
    LMQ_ASSERT(b != NULL && err != NULL && err_len > 0);
    err[0] = '\0';
    if (b->cfg.config_path[0] == '\0') {
        lmq_log_msg(LMQ_LOG_INFO, "reload", "no config file to re-read");
        broker_reload_tls(b);
        access_reload(b);
        pipeline_tokens_reload(b);
        return LMQ_OK;
    }
    struct lmq_config fresh;
    lmq_config_defaults(&fresh);
    if (lmq_config_load_file(&fresh, b->cfg.config_path, err, err_len) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "reload_failed", err);
        return LMQ_EINVAL;
    }
    lmq_log_set_level(fresh.log_level);
    b->cfg.log_level = fresh.log_level;
    broker_reload_tls(b);
    access_reload(b);
    pipeline_tokens_reload(b);
    /* Auditors take effect with the next request (GET /ledger/envelopes checks each). */
    memcpy(b->cfg.auth.auditors, fresh.auth.auditors, sizeof(b->cfg.auth.auditors));
    memcpy(b->cfg.data.readers_all, fresh.data.readers_all, sizeof(b->cfg.data.readers_all));
    b->cfg.data.readers_all_count = fresh.data.readers_all_count;
    b->cfg.data.assert_formats = fresh.data.assert_formats;
    /* GraphQL's auth switch and limits take effect with the next request. */
    b->cfg.data.graphql_auth = fresh.data.graphql_auth;
    b->cfg.data.graphql_max_depth = fresh.data.graphql_max_depth;
    b->cfg.data.graphql_max_fields = fresh.data.graphql_max_fields;
    b->cfg.data.graphql_max_ms = fresh.data.graphql_max_ms;
    b->cfg.data.read_budget_ms_per_s = fresh.data.read_budget_ms_per_s;
    data_reload(b, fresh.data.models_dir);
    b->cfg.auth.auditor_count = fresh.auth.auditor_count;
    /* The admin API checks [admin] ids on every request. */
    b->cfg.admin = fresh.admin;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "reload")) {
        lmq_log_str(&line, "log_level", lmq_log_level_name(fresh.log_level));
        lmq_log_uint(&line, "auditors", fresh.auth.auditor_count);
        lmq_log_uint(&line, "admins", fresh.admin.id_count);
        lmq_log_end(&line);
    }
    return LMQ_OK;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct broker *b = s->data;
    if (signum == SIGHUP) {
        char err[256];
        (void)broker_reload(b, err, sizeof(err)); /* a failure is logged and keeps the old */
        return;
    }
    /* SIGTERM: first drain (/healthz 503 "draining", every listener still serving) for
     * drain_grace_ms; SIGINT, or a second SIGTERM, stops at once. */
    if (signum == SIGTERM && b->cfg.drain_grace_ms > 0 && !b->draining && !b->stopping) {
        b->draining = true;
        struct lmq_log_line line;
        if (lmq_log_begin(&line, LMQ_LOG_INFO, "draining")) {
            lmq_log_uint(&line, "drain_grace_ms", b->cfg.drain_grace_ms);
            lmq_log_end(&line);
        }
        uv_timer_start(&b->drain_timer, on_drain_timeout, b->cfg.drain_grace_ms, 0);
        return;
    }
    broker_stop(b, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/*
 * libuv keeps a bind()'s EADDRINUSE for uv_listen(), which net_acceptor_start does not call:
 * the socket is left unbound and listen() would pick a random port. Bound means a port (even
 * for port 0, the kernel picks one at bind); an unbound socket binds again to report the error.
 */
static int broker_bind_error(uv_tcp_t *l, const struct sockaddr *addr)
{
    uv_os_fd_t fd = -1;
    int rc = uv_fileno((const uv_handle_t *)l, &fd);
    if (rc != 0)
        return rc;
    struct sockaddr_storage got;
    socklen_t len = sizeof(got);
    memset(&got, 0, sizeof(got));
    if (getsockname(fd, (struct sockaddr *)&got, &len) != 0)
        return uv_translate_sys_error(errno);
    uint16_t port = got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                              : ((struct sockaddr_in *)&got)->sin_port;
    if (port != 0)
        return 0;
    socklen_t addr_len =
        addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, addr, addr_len) != 0)
        return uv_translate_sys_error(errno);
    return 0;
}

/* The bound address of listener l as text ("HOST:PORT", IPv6 bracketed) into name. */
static void broker_listener_name(uv_tcp_t *l, char *name, size_t cap)
{
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    memset(&bound, 0, sizeof(bound));
    (void)uv_tcp_getsockname(l, (struct sockaddr *)&bound, &len);
    (void)net_address_format(&bound, NET_ADDRESS_BRACKETED, name, cap);
}

/*
 * Binds every address of list (appending to b->listeners) without listening yet: a port in use
 * stops the start here, before the data directory exists; connections are taken only once
 * broker_listen_all() runs after recovery. Writes ["HOST:PORT",...] for the ready line.
 */
static int broker_bind(struct broker *b, const struct lmq_listen_addr *list, size_t count,
                       char *ready_json, size_t cap)
{
    LMQ_ASSERT(b->listener_count + count <= LMQ_ARRAY_LEN(b->listeners));
    size_t used = 0;
    used += (size_t)snprintf(ready_json, cap, "[");
    for (size_t i = 0; i < count; i++) {
        const struct lmq_listen_addr *a = &list[i];
        struct sockaddr_storage ss;
        if (uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)&ss) != 0) {
            lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "bad listen address %s", a->host);
            return LMQ_EINVAL;
        }
        uv_tcp_t *l = &b->listeners[b->listener_count];
        uv_tcp_init(&b->loop, l);
        l->data = b;
        b->listener_count++;
        int rc = uv_tcp_bind(l, (const struct sockaddr *)&ss, 0);
        if (rc == 0)
            rc = broker_bind_error(l, (const struct sockaddr *)&ss);
        if (rc != 0) {
            lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot listen on %s:%u: %s", a->host,
                         a->port, uv_strerror(rc));
            return LMQ_EIO;
        }
        char name[NET_ADDRESS_TEXT_MAX_BYTES];
        broker_listener_name(l, name, sizeof(name));
        int n = snprintf(ready_json + used, cap - used, "%s\"%s\"", i ? "," : "", name);
        if (n < 0 || (size_t)n >= cap - used)
            return LMQ_ETOOBIG;
        used += (size_t)n;
    }
    if (used + 2 > cap)
        return LMQ_ETOOBIG;
    ready_json[used++] = ']';
    ready_json[used] = '\0';
    return LMQ_OK;
}

/* Starts accepting on every bound MQTT(S) listener. */
static int broker_listen_all(struct broker *b)
{
    for (size_t i = 0; i < b->listener_count; i++) {
        uv_tcp_t *l = &b->listeners[i];
        bool tls = b->first_tls_listener != NULL && l >= b->first_tls_listener;
        int rc = net_acceptor_start(&b->acceptors[i], &b->loop, l, BROKER_LISTEN_BACKLOG,
                                    tls ? "mqtts" : "mqtt",
                                    tls ? conn_on_accept_tls : conn_on_accept_tcp, b);
        if (rc != 0) {
            char name[NET_ADDRESS_TEXT_MAX_BYTES];
            broker_listener_name(l, name, sizeof(name));
            lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot listen on %s: %s", name,
                         uv_strerror(rc));
            return LMQ_EIO;
        }
    }
    return LMQ_OK;
}

/* Starts the HTTP (or HTTPS) listener when configured; writes ["HOST:PORT"] into json. */
static int broker_start_http(struct broker *b, bool tls, char *json, size_t cap)
{
    if (!(tls ? b->cfg.https_enabled : b->cfg.http_enabled))
        return LMQ_OK;
    const struct lmq_listen_addr *addr = tls ? &b->cfg.https : &b->cfg.http;
    struct http_server **server = tls ? &b->https : &b->http;
    const struct lmq_limits *l = &b->cfg.limits;
    struct http_limits limits = {.max_header_bytes = l->http_max_header_bytes,
                                 .max_body_bytes = l->http_max_body_bytes,
                                 .idle_timeout_ms = l->http_idle_timeout_ms,
                                 .request_timeout_ms = l->http_request_timeout_ms,
                                 .max_connections = l->http_max_connections,
                                 .header_timeout_ms = l->http_header_timeout_ms,
                                 .handshake_timeout_ms = l->http_handshake_timeout_ms,
                                 .max_connections_per_address = l->http_max_connections_per_address,
                                 .max_handshakes_per_address = l->http_max_handshakes_per_address};
    char bound[80], err[256];
    if (http_server_start(&b->loop, addr->host, addr->port, &limits, broker_http_route, b, server,
                          bound, sizeof(bound), err, sizeof(err)) != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot listen for HTTP%s: %s", tls ? "S" : "",
                     err);
        return LMQ_EIO;
    }
    http_server_set_upgrade(*server, websocket_upgrade, b);
    if (tls)
        http_server_set_tls(*server, b->tls);
    int n = snprintf(json, cap, "[\"%s\"]", bound);
    return n > 0 && (size_t)n < cap ? LMQ_OK : LMQ_ETOOBIG;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    LMQ_UNUSED(arg);
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int broker_init_state(struct broker *b, const struct lmq_config *cfg)
{
    memset(b, 0, sizeof(*b));
    b->cfg = *cfg;
    b->next_conn_id = 1;
    b->next_msg_id = 1;
    list_init(&b->conns);
    list_init(&b->idle_addresses);
    list_init(&b->dirty);
    list_init(&b->blocked);
    list_init(&b->yielded);
    list_init(&b->commit_waiters);
    if (uv_loop_init(&b->loop) != 0)
        return LMQ_EIO;
    b->loop.data = b;
    clock_sync(b);
    b->start_ms = clock_now_ms(b);
    if (lmq_map_create(&b->sessions) != LMQ_OK || retain_init(b) != LMQ_OK ||
        lmq_map_create(&b->msgs_by_id) != LMQ_OK || lmq_map_create(&b->addresses) != LMQ_OK ||
        sub_tree_create(&b->subs) != LMQ_OK || session_quota_init(b) != LMQ_OK ||
        read_budget_init(b) != LMQ_OK)
        return LMQ_ENOMEM;
    return LMQ_OK;
}

void broker_destroy_state(struct broker *b)
{
    uv_walk(&b->loop, walk_close, NULL);
    for (int i = 0; i < 100 && uv_run(&b->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    LMQ_ASSERT(uv_loop_close(&b->loop) == 0);
    free(b->route_targets);
    sub_tree_destroy(b->subs);
    lmq_map_destroy(b->sessions);
    session_quota_destroy(b);
    read_budget_destroy(b);
    LMQ_ASSERT(b->msgs_by_id == NULL || lmq_map_count(b->msgs_by_id) == 0);
    lmq_map_destroy(b->msgs_by_id);
    conn_address_sweep(b, true);
    lmq_map_destroy(b->addresses);
}

static int broker_init(struct broker *b, const struct lmq_config *cfg)
{
    int rc = broker_init_state(b, cfg);
    if (rc != LMQ_OK)
        return rc;
    uv_prepare_init(&b->loop, &b->flush_prepare);
    b->flush_prepare.data = b;
    uv_prepare_start(&b->flush_prepare, on_prepare);
    uv_check_init(&b->loop, &b->flush_check);
    b->flush_check.data = b;
    uv_check_start(&b->flush_check, on_check);
    uv_timer_init(&b->loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, on_tick, BROKER_TICK_MS, BROKER_TICK_MS);
    uv_timer_init(&b->loop, &b->shutdown_timer);
    b->shutdown_timer.data = b;
    uv_timer_init(&b->loop, &b->drain_timer);
    b->drain_timer.data = b;
    uv_signal_t *sigs[] = {&b->sig_term, &b->sig_int, &b->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < 3; i++) {
        uv_signal_init(&b->loop, sigs[i]);
        sigs[i]->data = b;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    commit_check_disk(b);
    /* Before the server key: a bad password or ACL file stops the start with no side effect. */
    if (access_init(b) != LMQ_OK)
        return LMQ_EINVAL;
    if (cfg->mqtts_count > 0 || cfg->https_enabled) {
        const struct lmq_tls_config *t = &cfg->tls;
        struct tls_config tc = {.cert_file = t->cert_file,
                                .key_file = t->key_file,
                                .client_ca_file =
                                    t->client_ca_file[0] != '\0' ? t->client_ca_file : NULL,
                                .client_cert_required = t->client_cert == LMQ_CLIENT_CERT_REQUIRED};
        char tls_err[512];
        if (tls_server_new(&tc, &b->tls, tls_err, sizeof(tls_err)) != LMQ_OK) {
            lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "TLS: %s", tls_err);
            return LMQ_EINVAL;
        }
    }
    return LMQ_OK;
}

/* mkdir -p: creates dir and its missing parents; an existing directory is fine. */
static int broker_mkdir_p(const char *dir)
{
    char path[LMQ_PATH_MAX_BYTES];
    size_t len = strnlen(dir, sizeof(path));
    if (len == 0 || len >= sizeof(path)) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "data directory path must be 1..%zu bytes",
                     sizeof(path) - 1);
        return LMQ_EINVAL;
    }
    memcpy(path, dir, len + 1);
    /* One mkdir per '/' and one for the whole path: bounded by the length. */
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot create data directory \"%s\": %s",
                         path, strerror(errno));
            return LMQ_EINVAL;
        }
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "data directory \"%s\" is not a directory",
                     dir);
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}

/*
 * The data directory, the store and the server key: after the listeners, so a start that can't
 * listen leaves nothing on disk. LMQ_EIO when the store can't be opened (exit 2).
 */
/* A run of a scheduled job ended: job.finished on the event stream. */
static void broker_job_finished(void *ctx, const struct jobs_run *run)
{
    struct broker *b = ctx;
    if (!events_on(b))
        return;
    events_emit(b, "job.finished",
                json_pack("{s:s,s:I,s:b,s:I,s:s,s:s,s:I,s:I}", "job", run->job, "tick_ms",
                          (json_int_t)run->tick_ms, "manual", run->manual, "skipped",
                          (json_int_t)run->skipped, "state", jobs_state_name(run->state), "detail",
                          run->detail != NULL ? run->detail : "", "started_ms",
                          (json_int_t)run->started_unix_ms, "ended_ms",
                          (json_int_t)run->ended_unix_ms));
}

static int broker_open_data(struct broker *b, const struct lmq_config *cfg)
{
    if (broker_mkdir_p(cfg->data_dir) != LMQ_OK)
        return LMQ_EINVAL;
    char path[LMQ_PATH_MAX_BYTES + 32];
    char err[256];
    int n = snprintf(path, sizeof(path), "%s/ledgermq.db", cfg->data_dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "data directory path too long");
        return LMQ_EINVAL;
    }
    struct store_options opts = {
        .path = path, .sync = cfg->sync == LMQ_SYNC_OFF ? STORE_SYNC_OFF : STORE_SYNC_FULL};
    if (store_open(&b->loop, &opts, &b->store, err, sizeof(err)) != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot open the store: %s", err);
        return LMQ_EIO;
    }
    /* After the store: a database that can't be opened is the one error reported. */
    int id_rc = pipeline_init(b);
    if (id_rc == LMQ_OK)
        id_rc = events_init(b); /* its envelope hook reports an envelope before data's object */
    if (id_rc == LMQ_OK)
        id_rc = webhooks_init(b);
    if (id_rc == LMQ_OK)
        id_rc = jobs_init(b); /* its commit hook registers before data_init opens a batch */
    if (id_rc == LMQ_OK)
        jobs_set_on_finished(b, broker_job_finished, b);
    if (id_rc == LMQ_OK)
        id_rc = seal_init(b); /* registers the seal job and its commit hook */
    if (id_rc == LMQ_OK)
        id_rc = chain_init(b); /* its commit hook before data_init opens a batch */
    if (id_rc == LMQ_OK)
        id_rc = bots_init(b);
    if (id_rc == LMQ_OK)
        id_rc = validators_init(b);
    if (id_rc == LMQ_OK)
        id_rc = data_init(b); /* after the pipeline: it registers an envelope hook */
    if (id_rc == LMQ_OK)
        id_rc = plugins_load(b); /* after data: validate sees envelopes objects checks passed */
    if (id_rc == LMQ_OK)
        id_rc = chain_init_watches(b); /* its watch hook after the others' */
    if (id_rc != LMQ_OK)
        return id_rc == LMQ_ENOMEM ? LMQ_ENOMEM : LMQ_EINVAL;
    return LMQ_OK;
}

static void broker_teardown(struct broker *b)
{
    chain_stop(b); /* idempotent: on an error path the shutdown never began */
    /* First: nothing may be accepted while the rest is torn down. */
    for (size_t i = 0; i < b->listener_count; i++)
        net_acceptor_close(&b->acceptors[i], NULL); /* before the walk closes their sockets */
    if (b->http != NULL) { /* an error path after the HTTP listener started */
        http_server_close(b->http);
        b->http = NULL;
    }
    if (b->https != NULL) {
        http_server_close(b->https);
        b->https = NULL;
    }
    webhooks_stop(b); /* its handles close in the run below */
    /* Sessions first (they own timers and deliveries), then everything else. */
    if (b->sessions != NULL)
        session_destroy_all(b);
    if (b->retained != NULL)
        retain_destroy_all(b);
    uv_run(&b->loop, UV_RUN_NOWAIT);
    broker_turn_end(b);
    broker_log_store_stats(b);
    if (b->store != NULL) {
        /* Detached first: completions that run inside store_close() must not write more. */
        struct store *store = b->store;
        b->store = NULL;
        store_close(store);
    }
    broker_close_handle((uv_handle_t *)&b->flush_prepare);
    broker_close_handle((uv_handle_t *)&b->flush_check);
    broker_destroy_state(b);
    sys_tree_free(b); /* its timer closed with the loop */
    jobs_destroy(b);  /* its timers too */
    seal_destroy(b);
    chain_destroy(b);
    data_destroy(b);
    plugins_destroy(b);
    webhooks_destroy(b);
    validators_destroy(b);
    bots_destroy(b);
    events_destroy(b);
    pipeline_destroy(b);
    access_destroy(b);
    if (b->tls != NULL)
        tls_server_free(b->tls); /* sessions still open hold their own reference */
    lmq_buf_release(&b->transport_scratch);
}

int broker_run(const struct lmq_config *cfg)
{
    LMQ_ASSERT(cfg != NULL);
    LMQ_ASSERT(cfg->mqtt_count > 0 && cfg->mqtt_count <= LMQ_LISTENERS_MAX);
    signal(SIGPIPE, SIG_IGN);
    /* Before anything is opened: a limit the configuration can't live with stops the start. */
    struct fd_limit_info fds;
    struct lmq_config *fitted = malloc(sizeof(*fitted));
    if (fitted == NULL)
        return 1;
    *fitted = *cfg;
    if (fd_limit_apply(fitted, &fds) != LMQ_OK) {
        free(fitted);
        return 1;
    }
    cfg = fitted;
    struct broker *b = malloc(sizeof(*b));
    if (b == NULL) {
        free(fitted);
        return 1;
    }
    int code = 0;
    int rc = broker_init(b, cfg);
    if (rc != LMQ_OK) {
        if (rc == LMQ_ENOMEM) /* the other failures have said what failed */
            lmq_log_msg(LMQ_LOG_ERROR, "start_failed",
                        "cannot initialise the broker: out of memory");
        code = rc == LMQ_EIO ? 2 : 1;
        goto out;
    }
    /* Bound first (not accepting yet): a port in use leaves no data directory and no key. */
    char listeners[LMQ_LISTENERS_MAX * 80], tls_listeners[LMQ_LISTENERS_MAX * 80];
    if (broker_bind(b, cfg->mqtt, cfg->mqtt_count, listeners, sizeof(listeners)) != LMQ_OK) {
        code = 1;
        goto out;
    }
    if (cfg->mqtts_count > 0) {
        b->first_tls_listener = &b->listeners[b->listener_count];
        if (broker_bind(b, cfg->mqtts, cfg->mqtts_count, tls_listeners, sizeof(tls_listeners)) !=
            LMQ_OK) {
            code = 1;
            goto out;
        }
    }
    /* HTTP first, answering "starting" from a thread of its own while recovery runs. */
    char http_json[96] = "", https_json[96] = "";
    if (broker_start_http(b, false, http_json, sizeof(http_json)) != LMQ_OK ||
        broker_start_http(b, true, https_json, sizeof(https_json)) != LMQ_OK) {
        code = 1;
        goto out;
    }
    /* After every listener is bound: the data directory, the store and the server key. */
    rc = broker_open_data(b, cfg);
    if (rc != LMQ_OK) {
        code = rc == LMQ_EIO ? 2 : 1;
        goto out;
    }
    struct lifecycle_starting *starting = NULL;
    if (lifecycle_starting_begin(b, &starting) != LMQ_OK) {
        code = 1;
        goto out;
    }
    lifecycle_test_recovery_delay();
    rc = recovery_run(b);
    lifecycle_starting_end(starting);
    if (rc != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot recover from the store in %s",
                     cfg->data_dir);
        code = 2;
        goto out;
    }
    /* Plugins' init after recovery, before the scheduler starts: they may register jobs. */
    if (plugins_start(b) != LMQ_OK) {
        code = 1;
        goto out;
    }
    rc = jobs_start(b); /* after recovery: the sessions a job may prune are loaded */
    if (rc != LMQ_OK) {
        code = rc == LMQ_EIO ? 2 : 1;
        goto out;
    }
    if (seal_start(b) != LMQ_OK) {
        code = 2;
        goto out;
    }
    rc = chain_start(b); /* after recovery: what it sends continues the server's chain */
    if (rc != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot start the chain follower");
        code = rc == LMQ_EIO ? 2 : 1;
        goto out;
    }
    if (broker_listen_all(b) != LMQ_OK) {
        code = 1;
        goto out;
    }
    if (sys_tree_start(b) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot initialise the broker: out of memory");
        code = 1;
        goto out;
    }
    fd_limit_log(cfg, &fds);
    webhooks_start(b);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "ready")) {
        lmq_log_raw(&line, "mqtt", listeners);
        if (cfg->mqtts_count > 0)
            lmq_log_raw(&line, "mqtts", tls_listeners);
        if (b->http != NULL)
            lmq_log_raw(&line, "http", http_json);
        if (b->https != NULL)
            lmq_log_raw(&line, "https", https_json);
        lmq_log_str(&line, "data", cfg->data_dir);
        lmq_log_str(&line, "store", "sqlite");
        lmq_log_str(&line, "sync", cfg->sync == LMQ_SYNC_OFF ? "off" : "always");
        lmq_log_str(&line, "version", LMQ_VERSION);
        lmq_log_end(&line);
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    code = b->exit_code;
    lmq_log_msg(LMQ_LOG_INFO, "stopped", "clean shutdown");
out:
    broker_teardown(b);
    free(b);
    free(fitted);
    return code;
}
