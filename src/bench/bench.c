/*
 * `ledgermq bench`: the run. One libuv loop drives every connection through
 * these phases, each with a time limit:
 *
 *   SETUP   connect everyone (at most BENCH_CONNECT_CONCURRENCY at a time),
 *           CONNACK, SUBSCRIBE + SUBACK               <= BENCH_SETUP_TIMEOUT_MS
 *   SETTLE  fill only: the persistent subscribers disconnect, short pause
 *   RUN     publish for --warmup + --duration (fill: until --messages are
 *           acknowledged, at most --duration)
 *   DRAIN   publishing stopped; wait for acks and deliveries <= BENCH_DRAIN_TIMEOUT_MS
 *   CLOSE   DISCONNECT everyone, close sockets           <= BENCH_CLOSE_TIMEOUT_MS
 *
 * Output is coalesced: connections append packets during the turn and the
 * check/prepare handles write each connection's buffer once per turn.
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_internal.h"
#include "core/lmq.h"

#define BENCH_NS_PER_S 1000000000.0

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    LMQ_ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t bench_fanout(const struct bench *b)
{
    return b->opts.scenario == BENCH_FAN_OUT || b->opts.scenario == BENCH_FILL ? b->sub_count : 1;
}

bool bench_in_window(const struct bench *b, uint64_t now_ns)
{
    return b->window_end_ns != 0 && now_ns >= b->window_start_ns && now_ns < b->window_end_ns;
}

static uint64_t bench__seconds_to_ns(double s)
{
    LMQ_ASSERT(s >= 0.0 && s <= BENCH_SECONDS_MAX);
    return (uint64_t)(s * BENCH_NS_PER_S + 0.5); /* no libm: the binary does not link it */
}

/* ---------------------------------------------------------------------------------------------
 * CPU and memory samples from /proc and getrusage.
 */
static uint64_t bench__self_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* utime + stime of pid from /proc/PID/stat, in µs. false when it cannot be read. */
static bool bench__proc_cpu_us(int pid, uint64_t *cpu_us)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    const char *p = ok ? strrchr(line, ')') : NULL; /* the command name may hold spaces */
    unsigned long long utime = 0, stime = 0;
    /* After ")": state(3) ... utime(14) stime(15). */
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2) {
        return false;
    }
    long ticks = sysconf(_SC_CLK_TCK);
    if (ticks <= 0) {
        return false;
    }
    *cpu_us = (utime + stime) * 1000000u / (unsigned long long)ticks;
    return true;
}

/* VmRSS and VmHWM of pid from /proc/PID/status, in bytes. */
static bool bench__proc_rss(int pid, uint64_t *rss_bytes, uint64_t *hwm_bytes)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    bool have_rss = false;
    for (int i = 0; i < 128 && fgets(line, sizeof(line), f) != NULL; i++) { /* ~55 lines */
        unsigned long long kib = 0;
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) {
            *rss_bytes = kib * 1024u;
            have_rss = true;
        } else if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) {
            *hwm_bytes = kib * 1024u;
        }
    }
    fclose(f);
    return have_rss;
}

static void bench__sample_cpu(struct bench *b, bool start)
{
    uint64_t broker_us = 0;
    bool ok = b->opts.pid > 0 && bench__proc_cpu_us(b->opts.pid, &broker_us);
    if (start) {
        b->self_cpu_start_us = bench__self_cpu_us();
        b->broker_cpu_start_us = broker_us;
        b->broker_cpu_ok = ok;
        b->cpu_started = true;
    } else {
        b->self_cpu_end_us = bench__self_cpu_us();
        b->broker_cpu_end_us = broker_us;
        b->broker_cpu_ok = b->broker_cpu_ok && ok;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Phases.
 */
static void bench__close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* Everything is closed: close the loop's own handles so uv_run returns. */
static void bench__finish(struct bench *b)
{
    LMQ_ASSERT(b->phase == BENCH_PHASE_CLOSE);
    LMQ_ASSERT(b->closed_count == b->conn_count);
    bench__close_handle((uv_handle_t *)&b->check);
    bench__close_handle((uv_handle_t *)&b->prepare);
    bench__close_handle((uv_handle_t *)&b->phase_timer);
    bench__close_handle((uv_handle_t *)&b->tick_timer);
    bench__close_handle((uv_handle_t *)&b->rate_timer);
    bench__close_handle((uv_handle_t *)&b->sigint);
}

static void bench__on_close_timeout(uv_timer_t *t)
{
    struct bench *b = t->data;
    for (uint32_t i = 0; i < b->conn_count; i++) {
        bench_conn_close_now(&b->conns[i]);
    }
}

static void bench__start_close(struct bench *b)
{
    if (b->phase == BENCH_PHASE_CLOSE) {
        return;
    }
    uint64_t now_ns = bench_now_ns();
    if (b->phase == BENCH_PHASE_RUN) {
        b->run_end_ns = now_ns;
        bench__sample_cpu(b, false);
    }
    if (b->drain_start_ns != 0) {
        b->drain_end_ns = now_ns;
    }
    if (b->opts.pid > 0) { /* before the sessions go: what the broker holds under load */
        b->broker_rss_ok = bench__proc_rss(b->opts.pid, &b->broker_rss_bytes, &b->broker_hwm_bytes);
    }
    b->phase = BENCH_PHASE_CLOSE;
    uv_timer_stop(&b->rate_timer);
    uv_timer_stop(&b->tick_timer);
    uv_timer_start(&b->phase_timer, bench__on_close_timeout, BENCH_CLOSE_TIMEOUT_MS, 0);
    for (uint32_t i = 0; i < b->conn_count; i++) {
        bench_conn_disconnect(&b->conns[i]);
    }
    if (b->closed_count == b->conn_count) {
        bench__finish(b);
    }
}

void bench_fail(struct bench *b, const char *fmt, ...)
{
    LMQ_ASSERT(b != NULL && fmt != NULL);
    if (b->error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        lmq_verrf(b->error, sizeof(b->error), fmt, ap);
        va_end(ap);
        b->exit_code = BENCH_EXIT_BROKER;
    }
    bench__start_close(b);
}

static void bench__on_drain_timeout(uv_timer_t *t)
{
    struct bench *b = t->data;
    LMQ_ASSERT(b->phase == BENCH_PHASE_DRAIN);
    b->drain_complete = false;
    bench__start_close(b);
}

/* In DRAIN: done when nothing is in flight and every expected delivery arrived. */
static void bench__check_drained(struct bench *b, uint64_t now_ns)
{
    if (b->phase != BENCH_PHASE_DRAIN || b->inflight_total > 0) {
        return;
    }
    bool all = b->total.delivered >= b->total.expected;
    uint64_t last_ns = LMQ_MAX(b->last_delivery_ns, b->drain_start_ns);
    bool quiet = b->opts.qos == 0 && now_ns - last_ns >= BENCH_QOS0_QUIET_MS * 1000000ull;
    if (all || quiet) {
        b->drain_complete = true;
        bench__start_close(b);
    }
}

static void bench__on_window_end(uv_timer_t *t)
{
    struct bench *b = t->data;
    LMQ_ASSERT(b->phase == BENCH_PHASE_RUN);
    uint64_t now_ns = bench_now_ns();
    bench__sample_cpu(b, false);
    b->phase = BENCH_PHASE_DRAIN;
    b->run_end_ns = now_ns;
    b->drain_start_ns = now_ns;
    uv_timer_stop(&b->rate_timer);
    uv_timer_start(&b->phase_timer, bench__on_drain_timeout, BENCH_DRAIN_TIMEOUT_MS, 0);
    bench__check_drained(b, now_ns);
}

static uint64_t bench__ms(uint64_t ns)
{
    return (ns + 999999u) / 1000000u;
}

static void bench__on_warmup_end(uv_timer_t *t)
{
    struct bench *b = t->data;
    LMQ_ASSERT(b->phase == BENCH_PHASE_RUN);
    bench__sample_cpu(b, true);
    uint64_t now_ns = bench_now_ns();
    uint64_t left_ns = b->window_end_ns > now_ns ? b->window_end_ns - now_ns : 0;
    uv_timer_start(&b->phase_timer, bench__on_window_end, bench__ms(left_ns), 0);
}

static void bench__on_fill_timeout(uv_timer_t *t)
{
    struct bench *b = t->data;
    bench_fail(b, "fill stopped after %.0f s: %llu of %llu messages acknowledged",
               b->opts.duration_s, (unsigned long long)b->total.acked,
               (unsigned long long)b->opts.messages);
}

/* How many more messages publisher c may send now under --rate. */
static uint64_t bench__budget(const struct bench *b, const struct bench_conn *c, uint64_t now_ns)
{
    if (b->opts.rate_per_s == 0) {
        return UINT64_MAX;
    }
    double elapsed_s = (double)(now_ns - b->run_start_ns) / BENCH_NS_PER_S;
    double allowed = (double)b->opts.rate_per_s * elapsed_s / (double)b->pub_count;
    uint64_t sent = c->seq_next - 1;
    return allowed > (double)sent ? (uint64_t)allowed - sent : 0;
}

void bench_on_publisher_room(struct bench *b, struct bench_conn *c, uint64_t now_ns)
{
    if (b->phase == BENCH_PHASE_RUN) {
        bench_conn_publish(c, bench__budget(b, c, now_ns), now_ns);
    }
}

static void bench__publish_all(struct bench *b)
{
    uint64_t now_ns = bench_now_ns();
    for (uint32_t i = 0; i < b->pub_count && b->phase == BENCH_PHASE_RUN; i++) {
        bench_on_publisher_room(b, &b->conns[i], now_ns);
    }
}

static void bench__on_rate_tick(uv_timer_t *t)
{
    bench__publish_all(t->data);
}

void bench_on_progress(struct bench *b, uint64_t now_ns)
{
    if (b->phase == BENCH_PHASE_RUN && b->opts.scenario == BENCH_FILL &&
        b->total.acked + b->total.refused == b->opts.messages) {
        b->drain_complete = true;
        if (b->total.refused > 0) { /* the backlog asked for is not there */
            bench_fail(b, "broker refused %llu of %llu publishes (last reason code 0x%02x)",
                       (unsigned long long)b->total.refused, (unsigned long long)b->opts.messages,
                       b->last_refusal_rc);
        }
        bench__start_close(b);
        return;
    }
    bench__check_drained(b, now_ns);
}

static void bench__start_run(struct bench *b)
{
    LMQ_ASSERT(b->phase == BENCH_PHASE_SETUP || b->phase == BENCH_PHASE_SETTLE);
    uint64_t now_ns = bench_now_ns();
    bool fill = b->opts.scenario == BENCH_FILL;
    b->phase = BENCH_PHASE_RUN;
    b->run_start_ns = now_ns;
    b->window_start_ns = now_ns + bench__seconds_to_ns(b->opts.warmup_s);
    b->window_end_ns = b->window_start_ns + bench__seconds_to_ns(b->opts.duration_s);
    uint64_t timer_ms = bench__ms(b->window_end_ns - now_ns);
    uv_timer_cb cb = bench__on_window_end;
    if (fill) {
        cb = bench__on_fill_timeout;
        for (uint32_t i = 0; i < b->pub_count; i++) {
            b->conns[i].quota =
                b->opts.messages / b->pub_count + (i < b->opts.messages % b->pub_count ? 1 : 0);
        }
    } else if (b->opts.warmup_s > 0) {
        cb = bench__on_warmup_end;
        timer_ms = bench__ms(b->window_start_ns - now_ns);
    }
    if (cb != bench__on_warmup_end) {
        bench__sample_cpu(b, true);
    }
    uv_timer_start(&b->phase_timer, cb, timer_ms, 0);
    if (b->opts.rate_per_s > 0) {
        uv_timer_start(&b->rate_timer, bench__on_rate_tick, BENCH_RATE_TICK_MS, BENCH_RATE_TICK_MS);
    }
    bench__publish_all(b);
}

static void bench__on_settled(uv_timer_t *t)
{
    bench__start_run(t->data);
}

static void bench__connect_next(struct bench *b)
{
    while (b->next_connect < b->conn_count && b->connects_busy < BENCH_CONNECT_CONCURRENCY &&
           b->phase == BENCH_PHASE_SETUP) {
        struct bench_conn *c = &b->conns[b->next_connect++];
        int rc = bench_conn_start(c);
        if (rc != 0) {
            bench_fail(b, "%s: cannot connect: %s", c->client_id, uv_strerror(rc));
            return;
        }
        b->connects_busy++;
    }
}

void bench_on_conn_ready(struct bench *b, struct bench_conn *c)
{
    LMQ_ASSERT(c->state == BENCH_CONN_READY);
    LMQ_ASSERT(b->connects_busy > 0 && b->ready_count < b->conn_count);
    b->connects_busy--;
    b->ready_count++;
    bench__connect_next(b);
    if (b->ready_count < b->conn_count || b->phase != BENCH_PHASE_SETUP) {
        return;
    }
    if (b->opts.scenario != BENCH_FILL) {
        bench__start_run(b);
        return;
    }
    /* fill: the subscribers leave; their sessions stay and collect the messages. */
    b->phase = BENCH_PHASE_SETTLE;
    for (uint32_t i = b->pub_count; i < b->conn_count; i++) {
        bench_conn_disconnect(&b->conns[i]);
    }
}

void bench_on_conn_closed(struct bench *b, struct bench_conn *c)
{
    LMQ_ASSERT(c->state == BENCH_CONN_CLOSED);
    b->closed_count++;
    LMQ_ASSERT(b->closed_count <= b->conn_count);
    if (b->phase == BENCH_PHASE_SETTLE && b->closed_count == b->sub_count) {
        uv_timer_start(&b->phase_timer, bench__on_settled, BENCH_SETTLE_MS, 0);
    } else if (b->phase == BENCH_PHASE_CLOSE && b->closed_count == b->conn_count) {
        bench__finish(b);
    }
}

static void bench__on_setup_timeout(uv_timer_t *t)
{
    struct bench *b = t->data;
    bench_fail(b, "timed out after %u s connecting: %u of %u connections ready",
               BENCH_SETUP_TIMEOUT_MS / 1000u, b->ready_count, b->conn_count);
}

static void bench__on_tick(uv_timer_t *t)
{
    struct bench *b = t->data;
    uint64_t now_ns = bench_now_ns();
    for (uint32_t i = 0; i < b->conn_count; i++) {
        bench_conn_keepalive(&b->conns[i], now_ns);
    }
    uint64_t last_ack_ns = LMQ_MAX(b->last_ack_ns, b->run_start_ns);
    if (b->phase == BENCH_PHASE_RUN && b->inflight_total > 0 &&
        now_ns - last_ack_ns > BENCH_STALL_TIMEOUT_MS * 1000000ull) {
        bench_fail(b, "broker stalled: %llu publishes unacknowledged for %u s",
                   (unsigned long long)b->inflight_total, BENCH_STALL_TIMEOUT_MS / 1000u);
        return;
    }
    bench__check_drained(b, now_ns);
}

static void bench__on_sigint(uv_signal_t *s, int signum)
{
    struct bench *b = s->data;
    LMQ_UNUSED(signum);
    /* First ^C while publishing: end the window now and drain as usual; otherwise close. */
    bool drain = b->phase == BENCH_PHASE_RUN && b->opts.scenario != BENCH_FILL;
    b->interrupted = true;
    if (!drain) {
        bench__start_close(b);
        return;
    }
    uint64_t now_ns = bench_now_ns();
    b->window_end_ns = LMQ_MIN(b->window_end_ns, now_ns);
    b->window_start_ns = LMQ_MIN(b->window_start_ns, b->window_end_ns);
    uv_timer_stop(&b->phase_timer);
    bench__on_window_end(&b->phase_timer);
}

/* End of a loop turn: one write per connection with output. */
static void bench__flush_dirty(struct bench *b)
{
    /* A flush can fail a connection and queue DISCONNECTs: new entries are appended. */
    for (uint32_t i = 0; i < b->dirty_count; i++) {
        struct bench_conn *c = b->dirty[i];
        c->dirty = false;
        bench_conn_flush(c);
    }
    b->dirty_count = 0;
}

static void bench__on_check(uv_check_t *h)
{
    bench__flush_dirty(h->data);
}

static void bench__on_prepare(uv_prepare_t *h)
{
    bench__flush_dirty(h->data);
}

/* ---------------------------------------------------------------------------------------------
 * Setup and teardown.
 */
static int bench__resolve(struct bench *b)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", b->opts.port);
    int rc = getaddrinfo(b->opts.host, port, &hints, &res);
    if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(b->addr)) {
        fprintf(stderr, "ledgermq: bench: --host %s: %s\n", b->opts.host,
                rc != 0 ? gai_strerror(rc) : "no address");
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return BENCH_EXIT_USAGE;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int bench__init_handles(struct bench *b)
{
    int rc = uv_loop_init(&b->loop);
    if (rc != 0) {
        return rc;
    }
    uv_check_init(&b->loop, &b->check);
    uv_prepare_init(&b->loop, &b->prepare);
    uv_timer_init(&b->loop, &b->phase_timer);
    uv_timer_init(&b->loop, &b->tick_timer);
    uv_timer_init(&b->loop, &b->rate_timer);
    uv_signal_init(&b->loop, &b->sigint);
    b->check.data = b->prepare.data = b->phase_timer.data = b;
    b->tick_timer.data = b->rate_timer.data = b->sigint.data = b;
    uv_check_start(&b->check, bench__on_check);
    uv_prepare_start(&b->prepare, bench__on_prepare);
    uv_signal_start(&b->sigint, bench__on_sigint, SIGINT);
    uv_timer_start(&b->tick_timer, bench__on_tick, BENCH_TICK_MS, BENCH_TICK_MS);
    uv_timer_start(&b->phase_timer, bench__on_setup_timeout, BENCH_SETUP_TIMEOUT_MS, 0);
    return 0;
}

static int bench__init_conns(struct bench *b)
{
    b->pub_count = b->opts.publishers;
    b->sub_count = b->opts.subscribers;
    b->conn_count = b->pub_count + b->sub_count;
    LMQ_ASSERT(b->conn_count >= 2 && b->conn_count <= BENCH_CONNS_MAX);
    b->conns = calloc(b->conn_count, sizeof(*b->conns));
    b->dirty = calloc(2 * (size_t)b->conn_count, sizeof(*b->dirty));
    if (b->conns == NULL || b->dirty == NULL) {
        fprintf(stderr, "ledgermq: bench: out of memory\n");
        return BENCH_EXIT_USAGE;
    }
    for (uint32_t i = 0; i < b->conn_count; i++) {
        bool pub = i < b->pub_count;
        int rc = bench_conn_init(b, &b->conns[i], pub ? BENCH_ROLE_PUB : BENCH_ROLE_SUB,
                                 pub ? i : i - b->pub_count);
        if (rc == LMQ_ELIMIT) {
            fprintf(stderr,
                    "ledgermq: bench: connection buffers would need more than %llu MiB; "
                    "use fewer connections or a smaller --payload\n",
                    BENCH_BUFFERS_MAX_BYTES / (1024u * 1024u));
            return BENCH_EXIT_USAGE;
        }
        if (rc != 0) {
            fprintf(stderr, "ledgermq: bench: out of memory\n");
            return BENCH_EXIT_USAGE;
        }
    }
    return 0;
}

static void bench__teardown(struct bench *b, bool loop_started)
{
    if (loop_started) {
        /* Every handle was closed by bench__finish; let their callbacks run. */
        for (int i = 0; i < 100 && uv_run(&b->loop, UV_RUN_NOWAIT) != 0; i++) {
        }
        int rc = uv_loop_close(&b->loop);
        LMQ_ASSERT(rc == 0);
    }
    for (uint32_t i = 0; b->conns != NULL && i < b->conn_count; i++) {
        bench_conn_free(&b->conns[i]);
    }
    free(b->conns);
    free(b->dirty);
}

int bench_main(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof(*b)); /* two histograms: too big for the stack */
    if (b == NULL) {
        fprintf(stderr, "ledgermq: bench: out of memory\n");
        return BENCH_EXIT_USAGE;
    }
    int code = bench_opts_parse(argc, argv, &b->opts);
    bool loop_started = false;
    if (code != 0 || b->opts.help) {
        if (b->opts.help) {
            bench_opts_usage(stdout);
        }
        goto out;
    }
    /* Names this run's client ids and topics, so runs never see each other's traffic. */
    b->run_id = (uint32_t)(((uint64_t)getpid() << 16) ^ bench_now_ns());
    if ((code = bench__resolve(b)) != 0 || (code = bench__init_conns(b)) != 0) {
        goto out;
    }
    bench_hist_init(&b->latency);
    bench_hist_init(&b->ack_latency);
    signal(SIGPIPE, SIG_IGN);
    if (bench__init_handles(b) != 0) {
        fprintf(stderr, "ledgermq: bench: cannot create the event loop\n");
        code = BENCH_EXIT_USAGE;
        goto out;
    }
    loop_started = true;
    bench__connect_next(b);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    LMQ_ASSERT(b->phase == BENCH_PHASE_CLOSE);
    bench_report(b);
    code = b->exit_code;
out:
    bench__teardown(b, loop_started);
    free(b);
    return code;
}
