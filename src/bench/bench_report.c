/*
 * The report of a run: a table for people or one JSON object (--json) for
 * scripts, on stdout. Rates are over the measured window (after the
 * warm-up; fill: the whole fill); latencies are of messages sent in the
 * window, from the histogram, in µs. An error also goes to stderr as one
 * line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench_internal.h"
#include "core/lmq.h"

struct report_view {
    double window_s;
    double published_per_s;
    double delivered_per_s;
    double acked_per_s;
    bool has_losses; /* QoS > 0 and not fill */
    uint64_t losses;
    bool has_cpu;
    double bench_cpu_percent;
    double broker_cpu_percent;
};

static double report__per_s(uint64_t count, double seconds)
{
    return seconds > 0.0 ? (double)count / seconds : 0.0;
}

static void report__view(const struct bench *b, struct report_view *v)
{
    memset(v, 0, sizeof(*v));
    bool fill = b->opts.scenario == BENCH_FILL;
    uint64_t start_ns = fill ? b->run_start_ns : b->window_start_ns;
    uint64_t end_ns = LMQ_MIN(b->run_end_ns, b->window_end_ns);
    if (b->run_end_ns != 0 && end_ns > start_ns) {
        v->window_s = (double)(end_ns - start_ns) / 1e9;
    }
    const struct bench_counts *w = fill ? &b->total : &b->window;
    v->published_per_s = report__per_s(w->published, v->window_s);
    v->delivered_per_s = report__per_s(w->delivered, v->window_s);
    v->acked_per_s = report__per_s(w->acked, v->window_s);
    v->has_losses = b->opts.qos > 0 && !fill;
    v->losses = b->total.expected > b->total.delivered ? b->total.expected - b->total.delivered : 0;
    v->has_cpu = b->cpu_started && v->window_s > 0.0 && b->self_cpu_end_us >= b->self_cpu_start_us;
    if (v->has_cpu) {
        double us = v->window_s * 1e6;
        v->bench_cpu_percent = 100.0 * (double)(b->self_cpu_end_us - b->self_cpu_start_us) / us;
        if (b->broker_cpu_ok && b->broker_cpu_end_us >= b->broker_cpu_start_us) {
            v->broker_cpu_percent =
                100.0 * (double)(b->broker_cpu_end_us - b->broker_cpu_start_us) / us;
        }
    }
}

static double report__us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* Prints s as a JSON string (our strings are ASCII; anything else is escaped). */
static void report__json_str(const char *s)
{
    putchar('"');
    for (size_t i = 0; i < BENCH_ERROR_MAX_BYTES + BENCH_HOST_MAX_BYTES && s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            printf("\\%c", ch);
        } else if (ch < 0x20 || ch >= 0x7f) {
            printf("\\u%04x", ch);
        } else {
            putchar(ch);
        }
    }
    putchar('"');
}

static void report__json_hist(const char *name, const struct bench_hist *h, bool present)
{
    printf(",\"%s\":", name);
    if (!present) {
        fputs("null", stdout);
        return;
    }
    double mean_ns = h->total_count ? h->sum_ns / (double)h->total_count : 0.0;
    printf("{\"count\":%" PRIu64 ",\"p50\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f,"
           "\"mean\":%.1f}",
           h->total_count, report__us(bench_hist_percentile_ns(h, 0.50)),
           report__us(bench_hist_percentile_ns(h, 0.99)),
           report__us(bench_hist_percentile_ns(h, 0.999)), report__us(h->max_ns), mean_ns / 1000.0);
}

static void report__json_counts(const struct bench *b, const struct report_view *v)
{
    const struct bench_counts *t = &b->total;
    printf(",\"window_s\":%.3f,\"published\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"refused\":%" PRIu64
           ",\"delivered\":%" PRIu64 ",\"expected\":%" PRIu64,
           v->window_s, t->published, t->acked, t->refused, t->delivered, t->expected);
    if (v->has_losses) {
        printf(",\"losses\":%" PRIu64, v->losses);
    } else {
        fputs(",\"losses\":null", stdout);
    }
    printf(",\"duplicates\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"foreign\":%" PRIu64, t->duplicates,
           t->gaps, t->foreign);
    printf(",\"published_per_s\":%.1f,\"delivered_per_s\":%.1f", v->published_per_s,
           v->delivered_per_s);
    if (b->opts.qos > 0) {
        printf(",\"acked_per_s\":%.1f", v->acked_per_s);
    } else {
        fputs(",\"acked_per_s\":null", stdout);
    }
}

static double report__bytes_per_msg(const struct bench_counts *t)
{
    return t->sub_publishes > 0 ? (double)t->sub_publish_bytes / (double)t->sub_publishes : 0.0;
}

/* What the subscribers received on the wire: PUBLISH packets, their bytes, topic aliases. */
static void report__json_received(const struct bench *b)
{
    const struct bench_counts *t = &b->total;
    printf(",\"topic_length\":%zu,\"topic_alias_max\":%u",
           b->conn_count ? b->conns[0].topic_len : 0, b->opts.topic_alias_max);
    printf(",\"sub_publishes\":%" PRIu64 ",\"sub_publish_bytes\":%" PRIu64, t->sub_publishes,
           t->sub_publish_bytes);
    if (t->sub_publishes > 0) {
        printf(",\"sub_bytes_per_msg\":%.2f", report__bytes_per_msg(t));
    } else {
        fputs(",\"sub_bytes_per_msg\":null", stdout);
    }
    printf(",\"alias_set\":%" PRIu64 ",\"alias_only\":%" PRIu64, t->alias_set, t->alias_only);
}

static void report__json_machine(const struct bench *b, const struct report_view *v)
{
    if (v->has_cpu) {
        printf(",\"bench_cpu_percent\":%.1f", v->bench_cpu_percent);
    } else {
        fputs(",\"bench_cpu_percent\":null", stdout);
    }
    if (v->has_cpu && b->broker_cpu_ok) {
        printf(",\"broker_cpu_percent\":%.1f", v->broker_cpu_percent);
    } else {
        fputs(",\"broker_cpu_percent\":null", stdout);
    }
    if (b->broker_rss_ok) {
        printf(",\"broker_rss_bytes\":%" PRIu64 ",\"broker_rss_hwm_bytes\":%" PRIu64,
               b->broker_rss_bytes, b->broker_hwm_bytes);
    } else {
        fputs(",\"broker_rss_bytes\":null,\"broker_rss_hwm_bytes\":null", stdout);
    }
}

static void report__json(const struct bench *b, const struct report_view *v)
{
    const struct bench_opts *o = &b->opts;
    printf("{\"scenario\":\"%s\",\"host\":", bench_opts_scenario_name(o->scenario));
    report__json_str(o->host);
    printf(",\"port\":%u,\"mqtt_version\":%u,\"qos\":%u,\"publishers\":%" PRIu32
           ",\"subscribers\":%" PRIu32 ",\"payload_bytes\":%" PRIu32
           ",\"rate_target_per_s\":%" PRIu64 ",\"inflight\":%" PRIu32
           ",\"warmup_s\":%.3f,\"duration_s\":%.3f",
           o->port, o->version, o->qos, o->publishers, o->subscribers, o->payload_bytes,
           o->rate_per_s, o->inflight, o->warmup_s, o->duration_s);
    if (o->scenario == BENCH_FILL) {
        printf(",\"messages\":%" PRIu64, o->messages);
    }
    printf(",\"client_id_prefix\":\"lmqb-%08" PRIx32 "\",\"topic_prefix\":\"lmqbench/%08" PRIx32
           "/\"",
           b->run_id, b->run_id);
    report__json_counts(b, v);
    report__json_received(b);
    report__json_hist("latency_us", &b->latency, o->scenario != BENCH_FILL);
    report__json_hist("ack_latency_us", &b->ack_latency, o->qos > 0);
    double drain_ms = b->drain_end_ns > b->drain_start_ns
                          ? (double)(b->drain_end_ns - b->drain_start_ns) / 1e6
                          : 0.0;
    printf(",\"drain_complete\":%s,\"drain_ms\":%.1f", b->drain_complete ? "true" : "false",
           drain_ms);
    report__json_machine(b, v);
    printf(",\"interrupted\":%s,\"exit_code\":%d,\"error\":", b->interrupted ? "true" : "false",
           b->exit_code);
    if (b->error[0] != '\0') {
        report__json_str(b->error);
    } else {
        fputs("null", stdout);
    }
    puts("}");
}

static void report__human_hist(const char *label, const struct bench_hist *h)
{
    printf("%-16s p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (n=%" PRIu64 ")\n", label,
           report__us(bench_hist_percentile_ns(h, 0.50)),
           report__us(bench_hist_percentile_ns(h, 0.99)),
           report__us(bench_hist_percentile_ns(h, 0.999)), report__us(h->max_ns), h->total_count);
}

static void report__human_head(const struct bench *b)
{
    const struct bench_opts *o = &b->opts;
    printf("ledgermq bench: %s against %s:%u, MQTT %s, QoS %u, %" PRIu32 " publisher(s), %" PRIu32
           " subscriber(s), %" PRIu32 " B payload\n",
           bench_opts_scenario_name(o->scenario), o->host, o->port,
           o->version == MQTT_V5 ? "5" : "3.1.1", o->qos, o->publishers, o->subscribers,
           o->payload_bytes);
    if (o->scenario == BENCH_FILL) {
        printf("fill             %" PRIu64 " messages for persistent sessions lmqb-%08" PRIx32
               "-s*\n",
               o->messages, b->run_id);
    } else if (o->rate_per_s > 0) {
        printf("target rate      %" PRIu64 " msg/s\n", o->rate_per_s);
    }
}

static void report__human(const struct bench *b, const struct report_view *v)
{
    const struct bench_counts *t = &b->total;
    report__human_head(b);
    printf("window           %.2f s%s\n", v->window_s,
           b->opts.scenario == BENCH_FILL ? " (whole fill)" : " (after the warm-up)");
    printf("published        %" PRIu64 "  (%.1f/s)\n", t->published, v->published_per_s);
    if (b->opts.qos > 0) {
        printf("acked            %" PRIu64 "  (%.1f/s)  refused %" PRIu64 "\n", t->acked,
               v->acked_per_s, t->refused);
    }
    if (b->opts.scenario != BENCH_FILL) {
        printf("delivered        %" PRIu64 "  (%.1f/s)  expected %" PRIu64 "\n", t->delivered,
               v->delivered_per_s, t->expected);
        if (v->has_losses) {
            printf("losses           %" PRIu64 "\n", v->losses);
        }
        printf("duplicates       %" PRIu64 "  gaps %" PRIu64 "  foreign %" PRIu64 "\n",
               t->duplicates, t->gaps, t->foreign);
        printf("received         %" PRIu64 " PUBLISH, %" PRIu64
               " bytes (%.1f B/msg)  alias set %" PRIu64 "  alias-only %" PRIu64 "\n",
               t->sub_publishes, t->sub_publish_bytes, report__bytes_per_msg(t), t->alias_set,
               t->alias_only);
        report__human_hist("latency (us)", &b->latency);
    }
    if (b->opts.qos > 0) {
        report__human_hist("ack latency (us)", &b->ack_latency);
    }
    if (b->drain_start_ns != 0 || b->drain_complete) {
        printf("drain            %s\n", b->drain_complete ? "complete" : "INCOMPLETE (timed out)");
    }
    if (v->has_cpu) {
        printf("cpu              bench %.1f%%", v->bench_cpu_percent);
        if (b->broker_cpu_ok) {
            printf("  broker %.1f%%", v->broker_cpu_percent);
        }
        puts("  (of one core, during the window)");
    }
    if (b->broker_rss_ok) {
        printf("broker rss       %.1f MiB  (peak %.1f MiB)\n",
               (double)b->broker_rss_bytes / 1048576.0, (double)b->broker_hwm_bytes / 1048576.0);
    }
    if (b->interrupted) {
        puts("interrupted      stopped early by SIGINT");
    }
    if (b->error[0] != '\0') {
        printf("error            %s\n", b->error);
    }
}

void bench_report(const struct bench *b)
{
    struct report_view v;
    LMQ_ASSERT(b != NULL);
    report__view(b, &v);
    if (b->opts.json) {
        report__json(b, &v);
    } else {
        report__human(b, &v);
    }
    fflush(stdout);
    if (b->error[0] != '\0') {
        fprintf(stderr, "ledgermq: bench: %s\n", b->error);
    }
}
