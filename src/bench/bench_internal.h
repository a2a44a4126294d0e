/*
 * Internals of the load generator, shared by the files of src/bench only.
 *
 *   bench_opts.c    command line: defaults, parsing, validation, --help
 *   bench_hist.c    log-linear latency histogram (bounded memory)
 *   bench_conn.c    one MQTT connection: TCP, framing, coalesced output, packet handlers
 *   bench.c         the run: phases (setup, run, drain, close), timers, publish pacing
 *   bench_report.c  the human table and the JSON object
 */
#ifndef BENCH_INTERNAL_H
#define BENCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "mqtt/mqtt_codec.h"

#define BENCH_EXIT_OK 0
#define BENCH_EXIT_USAGE 1
#define BENCH_EXIT_BROKER 2

/* Bounds of the command line (each checked with a clear error). */
#define BENCH_CONNS_MAX 10000u
#define BENCH_PAYLOAD_MIN_BYTES 16u /* send timestamp (8) + publisher/sequence tag (8) */
#define BENCH_PAYLOAD_MAX_BYTES (1024u * 1024u)
#define BENCH_INFLIGHT_MAX 65535u
#define BENCH_SECONDS_MAX 86400.0
#define BENCH_RATE_MAX 100000000ull
#define BENCH_MESSAGES_MAX 1000000000000ull
/* All connection buffers together; a larger request is refused up front. */
#define BENCH_BUFFERS_MAX_BYTES (2048ull * 1024u * 1024u)

/* Bounded waits: nothing in a run waits longer than these. */
#define BENCH_SETUP_TIMEOUT_MS 30000u  /* connect + CONNACK + SUBACK for everyone */
#define BENCH_DRAIN_TIMEOUT_MS 10000u  /* acks and deliveries after publishing stops */
#define BENCH_CLOSE_TIMEOUT_MS 3000u   /* DISCONNECT written, sockets closed */
#define BENCH_FILL_TIMEOUT_S 600.0     /* default time limit of --scenario fill */
#define BENCH_STALL_TIMEOUT_MS 30000u  /* publishes in flight and no ack for this long: stalled */
#define BENCH_QOS0_QUIET_MS 500u       /* QoS 0 drain: done after this long without a delivery */
#define BENCH_SETTLE_MS 200u           /* fill: let the broker see the subscribers leave */
#define BENCH_CONNECT_CONCURRENCY 256u /* TCP connects in progress at once */
#define BENCH_TICK_MS 100u             /* keepalive pings, drain checks */
#define BENCH_RATE_TICK_MS 1u          /* paced publishing (--rate) */
#define BENCH_KEEPALIVE_S 60u

/* Payload layout: [0,8) CLOCK_MONOTONIC ns at send, [8,16) tag = publisher << 44 | seq. */
#define BENCH_TAG_PUB_SHIFT 44u
#define BENCH_TAG_SEQ_MASK ((UINT64_C(1) << BENCH_TAG_PUB_SHIFT) - 1)

#define BENCH_HOST_MAX_BYTES 256
#define BENCH_TOPIC_MAX_BYTES 64 /* the topic as named, before --topic-length pads it */
/* --topic-length: 0 (as named) or this range; the named topics are at most 28 bytes. */
#define BENCH_TOPIC_LENGTH_MIN 32u
#define BENCH_TOPIC_LENGTH_MAX 65535u
#define BENCH_CLIENT_ID_MAX_BYTES 48
#define BENCH_ERROR_MAX_BYTES 256

/* Log-linear histogram: exact below 2^8 ns, then 128 buckets per power of two (< 0.8 %). */
#define BENCH_HIST_SUB_BITS 8u
#define BENCH_HIST_MAX_BITS 40u /* up to ~18 minutes; larger values land in the last bucket */
#define BENCH_HIST_BUCKETS                                                                         \
    ((1u << BENCH_HIST_SUB_BITS) +                                                                 \
     (BENCH_HIST_MAX_BITS - BENCH_HIST_SUB_BITS) * (1u << (BENCH_HIST_SUB_BITS - 1)))

struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t total_count;
    uint64_t max_ns;
    double sum_ns;
};

enum bench_scenario {
    BENCH_FAN_IN,  /* N publishers -> 1 subscriber, one topic */
    BENCH_FAN_OUT, /* 1 publisher -> N subscribers, one topic */
    BENCH_PAIRS,   /* publisher i -> subscriber i, topic per pair */
    BENCH_FILL,    /* N persistent subscribers leave, then M messages queue up for them */
};

struct bench_opts {
    char host[BENCH_HOST_MAX_BYTES];
    uint16_t port;
    enum bench_scenario scenario;
    uint32_t publishers;
    uint32_t subscribers;
    uint8_t qos;
    uint32_t payload_bytes;
    uint8_t version; /* MQTT_V311 or MQTT_V5 */
    double duration_s;
    double warmup_s;
    uint64_t rate_per_s; /* total across publishers; 0 = as fast as possible */
    uint32_t inflight;
    int pid; /* broker pid for RSS/CPU sampling; 0 = none */
    bool clean_start;
    uint32_t session_expiry_s;
    uint64_t messages;        /* fill only */
    uint32_t topic_length;    /* topics padded to this many bytes; 0 = as named */
    uint16_t topic_alias_max; /* subscribers' Topic Alias Maximum (v5); 0 = none */
    bool json;
    bool help;
};

/* Parses argv (the arguments after "bench") into o. 0, or prints one line and returns 1. */
int bench_opts_parse(int argc, char **argv, struct bench_opts *o);
/* Prints the usage of `ledgermq bench` to f. */
void bench_opts_usage(FILE *f);
/* Static name of a scenario ("fan-in"). */
const char *bench_opts_scenario_name(enum bench_scenario s);

void bench_hist_init(struct bench_hist *h);
/* Records one value in ns; values beyond the range are counted in the last bucket. */
void bench_hist_record(struct bench_hist *h, uint64_t value_ns);
/* Value (ns) at or below which `fraction` (0..1] of the samples lie; 0 when empty. */
uint64_t bench_hist_percentile_ns(const struct bench_hist *h, double fraction);

enum bench_role { BENCH_ROLE_PUB, BENCH_ROLE_SUB };

enum bench_conn_state {
    BENCH_CONN_NEW,            /* not started */
    BENCH_CONN_TCP,            /* TCP connect in progress */
    BENCH_CONN_CONNECT_SENT,   /* waiting for CONNACK */
    BENCH_CONN_SUBSCRIBE_SENT, /* subscriber waiting for SUBACK */
    BENCH_CONN_READY,          /* publishing / receiving */
    BENCH_CONN_CLOSING,        /* DISCONNECT queued or uv_close called */
    BENCH_CONN_CLOSED,         /* close callback done */
};

/* Publisher packet-id states (QoS 1/2 flows). */
enum bench_pid_state { BENCH_PID_FREE, BENCH_PID_AWAIT_ACK, BENCH_PID_AWAIT_COMP };

struct bench;

struct bench_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct bench *bench;
    enum bench_role role;
    enum bench_conn_state state;
    uint32_t index; /* within its role */
    bool handle_open;
    bool handle_closing;
    bool writing;
    bool dirty;       /* in bench->dirty, waiting for the end-of-turn flush */
    bool read_paused; /* output full: input is not parsed until a write completes */
    bool reading;
    char client_id[BENCH_CLIENT_ID_MAX_BYTES];
    size_t client_id_len;
    char *topic; /* topic_len bytes (+ NUL): the named topic, padded to --topic-length */
    size_t topic_len;
    uint16_t keepalive_s; /* 0 = no PINGREQ */
    uint64_t last_send_ns;

    /* Input: one bounded buffer, packets framed with mqtt_fixed_header_parse. */
    uint8_t *in;
    size_t in_len;
    size_t in_cap;
    /* Output: two buffers; one fills while the other is on the wire. */
    uint8_t *out[2];
    size_t out_len[2];
    size_t out_cap;
    unsigned out_fill; /* index of the buffer being filled */

    /* Publisher. */
    struct mqtt_packet pub_pkt; /* template: topic, payload, qos; packet id set per message */
    uint8_t *payload;
    size_t publish_bytes; /* encoded size of one PUBLISH */
    uint64_t seq_next;    /* next sequence number, from 1 */
    uint64_t quota;       /* messages this publisher may still send (fill), else UINT64_MAX */
    uint32_t inflight_max;
    uint32_t inflight_count;
    uint16_t *pid_free; /* stack of free packet ids */
    uint32_t pid_free_count;
    uint8_t *pid_state;    /* [inflight_max + 1], enum bench_pid_state */
    uint64_t *pid_sent_ns; /* [inflight_max + 1] */

    /* Subscriber. */
    uint64_t *seq_expected; /* next expected sequence per publisher it hears */
    uint32_t seq_expected_count;
    uint8_t granted_qos;
    /* Topic aliases the broker set on this connection ([1..topic_alias_max]): whether each
     * stands for our topic. The topic itself is all a subscriber needs to know. */
    uint8_t *alias_state; /* enum bench_alias_state */
};

enum bench_alias_state { BENCH_ALIAS_UNSET = 0, BENCH_ALIAS_OURS, BENCH_ALIAS_OTHER };

enum bench_phase {
    BENCH_PHASE_SETUP,  /* connecting, subscribing */
    BENCH_PHASE_SETTLE, /* fill: subscribers gone, short pause */
    BENCH_PHASE_RUN,    /* publishing */
    BENCH_PHASE_DRAIN,  /* publishing stopped, waiting for acks and deliveries */
    BENCH_PHASE_CLOSE,  /* DISCONNECT and close */
};

struct bench_counts {
    uint64_t published;
    uint64_t acked;
    uint64_t refused;
    uint64_t delivered; /* unique deliveries (duplicates counted apart) */
    uint64_t duplicates;
    uint64_t gaps;     /* a sequence number skipped ahead (a gap) */
    uint64_t foreign;  /* PUBLISH without our payload layout */
    uint64_t expected; /* deliveries the publishes accepted so far should produce */
    /* What subscribers received: PUBLISH packets and their bytes (fixed header included), and
     * those that set a topic alias or used one (alias-only). */
    uint64_t sub_publishes;
    uint64_t sub_publish_bytes;
    uint64_t alias_set;
    uint64_t alias_only;
};

struct bench {
    struct bench_opts opts;
    uv_loop_t loop;
    uv_check_t check;
    uv_prepare_t prepare;
    uv_timer_t phase_timer;
    uv_timer_t tick_timer;
    uv_timer_t rate_timer;
    uv_signal_t sigint;
    enum bench_phase phase;
    uint32_t run_id;

    struct bench_conn *conns; /* publishers first, then subscribers */
    uint32_t conn_count;
    uint32_t pub_count;
    uint32_t sub_count;
    uint32_t next_connect;  /* next conn to start connecting */
    uint32_t connects_busy; /* TCP/CONNECT in progress */
    uint32_t ready_count;
    uint32_t closed_count;
    struct bench_conn **dirty; /* conns with output to flush at the end of the turn */
    uint32_t dirty_count;
    uint64_t buffer_bytes; /* all connection buffers, bounded by BENCH_BUFFERS_MAX_BYTES */

    uint64_t run_start_ns;
    uint64_t window_start_ns;
    uint64_t window_end_ns;
    uint64_t run_end_ns; /* publishing stopped */
    uint64_t drain_start_ns;
    uint64_t drain_end_ns;
    uint64_t last_ack_ns;
    uint64_t last_delivery_ns;
    uint64_t inflight_total;
    bool drain_complete;

    struct bench_counts total;
    struct bench_counts window; /* published/acked/delivered with a timestamp in the window */
    struct bench_hist latency;
    struct bench_hist ack_latency;

    /* CPU use during the window: this process (getrusage) and the broker (/proc/PID/stat). */
    bool cpu_started; /* the start sample was taken (the run reached the window) */
    uint64_t self_cpu_start_us;
    uint64_t self_cpu_end_us;
    uint64_t broker_cpu_start_us;
    uint64_t broker_cpu_end_us;
    bool broker_cpu_ok;
    bool interrupted; /* SIGINT: stopped early, the report covers what ran */
    uint64_t broker_rss_bytes;
    uint64_t broker_hwm_bytes;
    bool broker_rss_ok;

    int exit_code;
    uint8_t last_refusal_rc;
    char error[BENCH_ERROR_MAX_BYTES];
    struct sockaddr_storage addr;
};

/* Monotonic clock in ns (the clock the payload timestamps use). */
uint64_t bench_now_ns(void);

/*
 * Sets up conn c (buffers, ids, topic) for role/index. 0, LMQ_ENOMEM, or
 * LMQ_ELIMIT when b->buffer_bytes would pass BENCH_BUFFERS_MAX_BYTES.
 */
int bench_conn_init(struct bench *b, struct bench_conn *c, enum bench_role role, uint32_t index);
/* Frees what bench_conn_init allocated (the handle must be closed). */
void bench_conn_free(struct bench_conn *c);
/* Starts the TCP connect; CONNECT follows, then SUBSCRIBE for subscribers. */
int bench_conn_start(struct bench_conn *c);
/* Queues as many PUBLISHes as budget, the inflight window and the output buffer allow. */
void bench_conn_publish(struct bench_conn *c, uint64_t budget, uint64_t now_ns);
/* Sends DISCONNECT (when connected) and closes the socket once it is written. */
void bench_conn_disconnect(struct bench_conn *c);
/* Closes the socket now, whatever is pending. */
void bench_conn_close_now(struct bench_conn *c);
/* Writes the filled output buffer unless a write is already on the wire. */
void bench_conn_flush(struct bench_conn *c);
/* Sends PINGREQ when nothing was sent for half the keep-alive. */
void bench_conn_keepalive(struct bench_conn *c, uint64_t now_ns);

/* Callbacks from bench_conn.c into the run (bench.c). */
void bench_on_conn_ready(struct bench *b, struct bench_conn *c);
void bench_on_conn_closed(struct bench *b, struct bench_conn *c);
void bench_on_publisher_room(struct bench *b, struct bench_conn *c, uint64_t now_ns);
void bench_on_progress(struct bench *b, uint64_t now_ns);
/* Records the first error, sets exit code 2 and ends the run. printf-style. */
__attribute__((format(printf, 2, 3))) void bench_fail(struct bench *b, const char *fmt, ...);
/* Deliveries one PUBLISH of publisher pub_index should produce (fan-out: one per subscriber). */
uint32_t bench_fanout(const struct bench *b);
/* Whether now_ns lies in the measured window. */
bool bench_in_window(const struct bench *b, uint64_t now_ns);

/* Prints the report (human table or JSON) on stdout. */
void bench_report(const struct bench *b);

#endif
