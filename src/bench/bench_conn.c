/*
 * One MQTT connection of the load generator. Every packet in and out goes
 * through the project's codec. Input is one bounded buffer framed with
 * mqtt_fixed_header_parse(); output is two buffers: packets are appended to
 * one while the other is on the wire, and the run flushes every connection
 * that has output once per loop turn (write coalescing). When the output is
 * full, input is no longer parsed (its answers would not fit) until the
 * write completes: backpressure, never an unbounded queue.
 *
 * Nothing here allocates after bench_conn_init(): publishing encodes into
 * the output buffer, acks are encoded from a packet on the stack.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_internal.h"
#include "core/lmq.h"

/* Room kept free in the output for answers (PUBACK, PUBREL, PINGREQ, DISCONNECT). */
#define CONN_ANSWER_RESERVE_BYTES 256u
#define CONN_PUB_IN_BYTES (16u * 1024u)
#define CONN_SUB_OUT_BYTES (16u * 1024u)
#define CONN_OUT_SLACK_BYTES (64u * 1024u)
/* Beyond topic and payload: fixed header, packet id, v5 properties the broker may add. */
#define CONN_PACKET_OVERHEAD_BYTES 1024u
#define CONN_SUBSCRIBE_PID 1u

static void conn__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn__mark_dirty(struct bench_conn *c)
{
    struct bench *b = c->bench;
    if (c->dirty) {
        return;
    }
    LMQ_ASSERT(b->dirty_count < 2 * b->conn_count);
    b->dirty[b->dirty_count++] = c;
    c->dirty = true;
}

static size_t conn__room(const struct bench_conn *c)
{
    LMQ_ASSERT(c->out_len[c->out_fill] <= c->out_cap);
    return c->out_cap - c->out_len[c->out_fill];
}

/* Encodes pkt at the end of the filling buffer. LMQ_ETOOBIG when it does not fit. */
static int conn__send(struct bench_conn *c, const struct mqtt_packet *pkt)
{
    unsigned f = c->out_fill;
    size_t written = 0;
    int rc = mqtt_encode(pkt, c->bench->opts.version, c->out[f] + c->out_len[f], conn__room(c),
                         &written);
    if (rc == LMQ_ETOOBIG) {
        return rc;
    }
    LMQ_ASSERT(rc == 0); /* every packet we build is valid */
    c->out_len[f] += written;
    conn__mark_dirty(c);
    return 0;
}

static void conn__send_ack(struct bench_conn *c, uint8_t type, uint16_t packet_id)
{
    struct mqtt_packet pkt = {.type = type};
    pkt.u.ack.packet_id = packet_id;
    /* Only reached with CONN_ANSWER_RESERVE_BYTES of room (conn__process). */
    int rc = conn__send(c, &pkt);
    LMQ_ASSERT(rc == 0);
}

static void conn__on_close(uv_handle_t *h)
{
    struct bench_conn *c = h->data;
    LMQ_ASSERT(c->handle_closing);
    c->state = BENCH_CONN_CLOSED;
    c->handle_open = false;
    bench_on_conn_closed(c->bench, c);
}

void bench_conn_close_now(struct bench_conn *c)
{
    if (c->handle_closing || c->state == BENCH_CONN_CLOSED) {
        return;
    }
    if (!c->handle_open) { /* never started: nothing to close */
        c->state = BENCH_CONN_CLOSED;
        bench_on_conn_closed(c->bench, c);
        return;
    }
    c->handle_closing = true;
    c->state = BENCH_CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, conn__on_close);
}

/* An unexpected end of the connection: ends the run with exit code 2 (unless closing). */
static void conn__lost(struct bench_conn *c, const char *what)
{
    if (c->state != BENCH_CONN_CLOSING && !c->handle_closing) {
        bench_fail(c->bench, "%s: %s", c->client_id, what);
    }
    bench_conn_close_now(c);
}

static void conn__on_write(uv_write_t *req, int status)
{
    struct bench_conn *c = req->data;
    LMQ_ASSERT(c->writing);
    c->writing = false;
    c->out_len[c->out_fill ^ 1u] = 0;
    if (status < 0) {
        conn__lost(c, uv_strerror(status));
        return;
    }
    if (c->state == BENCH_CONN_CLOSING) {
        if (c->out_len[c->out_fill] > 0) {
            bench_conn_flush(c);
        } else {
            bench_conn_close_now(c); /* DISCONNECT is on the wire */
        }
        return;
    }
    if (c->out_len[c->out_fill] > 0) {
        conn__mark_dirty(c);
    }
    uint64_t now_ns = bench_now_ns();
    if (c->read_paused) {
        c->read_paused = false;
        conn__on_read((uv_stream_t *)&c->tcp, 0, NULL); /* parses what is buffered */
    }
    if (c->role == BENCH_ROLE_PUB) {
        bench_on_publisher_room(c->bench, c, now_ns);
    }
}

void bench_conn_flush(struct bench_conn *c)
{
    unsigned f = c->out_fill;
    if (c->writing || !c->handle_open || c->handle_closing || c->out_len[f] == 0) {
        return;
    }
    LMQ_ASSERT(c->out_len[f ^ 1u] == 0);
    LMQ_ASSERT(c->out_len[f] <= UINT32_MAX);
    uv_buf_t buf = uv_buf_init((char *)c->out[f], (unsigned)c->out_len[f]);
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, conn__on_write);
    if (rc != 0) {
        conn__lost(c, uv_strerror(rc));
        return;
    }
    c->writing = true;
    c->out_fill = f ^ 1u;
    c->last_send_ns = bench_now_ns();
}

/* (Re)builds the free packet-id stack for ids 1..inflight_max. */
static void conn__pids_reset(struct bench_conn *c, uint32_t inflight_max)
{
    LMQ_ASSERT(inflight_max >= 1 && inflight_max <= c->bench->opts.inflight);
    LMQ_ASSERT(c->inflight_count == 0);
    c->inflight_max = inflight_max;
    c->pid_free_count = 0;
    for (uint32_t pid = inflight_max; pid >= 1; pid--) { /* pops 1 first */
        c->pid_state[pid] = BENCH_PID_FREE;
        c->pid_free[c->pid_free_count++] = (uint16_t)pid;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Setup.
 */
static int conn__template(struct bench *b, struct bench_conn *c)
{
    struct mqtt_publish *p = &c->pub_pkt.u.publish;
    c->pub_pkt.type = MQTT_PUBLISH;
    p->qos = b->opts.qos;
    p->topic = (struct lmq_bytes){(const uint8_t *)c->topic, c->topic_len};
    p->packet_id = b->opts.qos > 0 ? 1 : 0;
    p->payload = (struct lmq_bytes){c->payload, b->opts.payload_bytes};
    int rc = mqtt_encoded_size(&c->pub_pkt, b->opts.version, &c->publish_bytes);
    LMQ_ASSERT(rc == 0 && c->publish_bytes > b->opts.payload_bytes);
    return 0;
}

static int conn__alloc_pub(struct bench *b, struct bench_conn *c)
{
    uint32_t n = b->opts.inflight + 1;
    c->payload = malloc(b->opts.payload_bytes);
    c->pid_free = calloc(n, sizeof(*c->pid_free));
    c->pid_state = calloc(n, sizeof(*c->pid_state));
    c->pid_sent_ns = calloc(n, sizeof(*c->pid_sent_ns));
    if (c->payload == NULL || c->pid_free == NULL || c->pid_state == NULL ||
        c->pid_sent_ns == NULL) {
        return LMQ_ENOMEM;
    }
    memset(c->payload, 'x', b->opts.payload_bytes);
    conn__pids_reset(c, b->opts.inflight);
    c->seq_next = 1;
    c->quota = UINT64_MAX;
    c->in_cap = CONN_PUB_IN_BYTES;
    conn__template(b, c);
    c->out_cap = c->publish_bytes + CONN_ANSWER_RESERVE_BYTES + CONN_OUT_SLACK_BYTES;
    return 0;
}

static int conn__alloc_sub(struct bench *b, struct bench_conn *c)
{
    c->seq_expected_count = b->opts.scenario == BENCH_FAN_IN ? b->pub_count : 1;
    c->seq_expected = calloc(c->seq_expected_count, sizeof(*c->seq_expected));
    if (c->seq_expected == NULL) {
        return LMQ_ENOMEM;
    }
    if (b->opts.version == MQTT_V5 && b->opts.topic_alias_max > 0) {
        c->alias_state = calloc((size_t)b->opts.topic_alias_max + 1, 1);
        if (c->alias_state == NULL) {
            return LMQ_ENOMEM;
        }
        b->buffer_bytes += (size_t)b->opts.topic_alias_max + 1;
    }
    for (uint32_t i = 0; i < c->seq_expected_count; i++) {
        c->seq_expected[i] = 1;
    }
    c->in_cap = (size_t)b->opts.payload_bytes + c->topic_len + CONN_PACKET_OVERHEAD_BYTES +
                CONN_OUT_SLACK_BYTES;
    c->out_cap = CONN_SUB_OUT_BYTES;
    return 0;
}

/* The connection's topic: lmqbench/RUN/all (pairs: lmqbench/RUN/INDEX), padded with a level of
 * 'x' to --topic-length bytes when given. */
static int conn__topic(struct bench *b, struct bench_conn *c, uint32_t index)
{
    char named[BENCH_TOPIC_MAX_BYTES];
    int n;
    if (b->opts.scenario == BENCH_PAIRS) {
        n = snprintf(named, sizeof(named), "lmqbench/%08" PRIx32 "/%" PRIu32, b->run_id, index);
    } else {
        n = snprintf(named, sizeof(named), "lmqbench/%08" PRIx32 "/all", b->run_id);
    }
    LMQ_ASSERT(n > 0 && (size_t)n < BENCH_TOPIC_LENGTH_MIN);
    size_t len = b->opts.topic_length > 0 ? b->opts.topic_length : (size_t)n;
    c->topic = malloc(len + 1);
    if (c->topic == NULL) {
        return LMQ_ENOMEM;
    }
    memcpy(c->topic, named, (size_t)n);
    if (len > (size_t)n) {
        c->topic[n] = '/';
        memset(c->topic + n + 1, 'x', len - (size_t)n - 1);
    }
    c->topic[len] = '\0';
    c->topic_len = len;
    b->buffer_bytes += len + 1;
    return 0;
}

int bench_conn_init(struct bench *b, struct bench_conn *c, enum bench_role role, uint32_t index)
{
    LMQ_ASSERT(b != NULL && c != NULL);
    memset(c, 0, sizeof(*c));
    c->bench = b;
    c->role = role;
    c->index = index;
    c->state = BENCH_CONN_NEW;
    c->keepalive_s = BENCH_KEEPALIVE_S;
    int n = snprintf(c->client_id, sizeof(c->client_id), "lmqb-%08" PRIx32 "-%c%" PRIu32, b->run_id,
                     role == BENCH_ROLE_PUB ? 'p' : 's', index);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(c->client_id));
    c->client_id_len = (size_t)n;
    int rc = conn__topic(b, c, index);
    if (rc != 0) {
        return rc;
    }
    rc = role == BENCH_ROLE_PUB ? conn__alloc_pub(b, c) : conn__alloc_sub(b, c);
    if (rc != 0) {
        return rc;
    }
    b->buffer_bytes += c->in_cap + 2 * c->out_cap;
    if (b->buffer_bytes > BENCH_BUFFERS_MAX_BYTES) {
        return LMQ_ELIMIT;
    }
    c->in = malloc(c->in_cap);
    c->out[0] = malloc(c->out_cap);
    c->out[1] = malloc(c->out_cap);
    if (c->in == NULL || c->out[0] == NULL || c->out[1] == NULL) {
        return LMQ_ENOMEM;
    }
    return 0;
}

void bench_conn_free(struct bench_conn *c)
{
    LMQ_ASSERT(!c->handle_open || c->state == BENCH_CONN_CLOSED);
    free(c->in);
    free(c->out[0]);
    free(c->out[1]);
    free(c->payload);
    free(c->pid_free);
    free(c->pid_state);
    free(c->pid_sent_ns);
    free(c->seq_expected);
    free(c->topic);
    free(c->alias_state);
    memset(c, 0, sizeof(*c));
}

static void conn__send_connect(struct bench_conn *c)
{
    const struct bench_opts *o = &c->bench->opts;
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    struct mqtt_connect *k = &pkt.u.connect;
    bool sub = c->role == BENCH_ROLE_SUB;
    k->protocol_version = o->version;
    k->clean_start = sub ? o->clean_start : true;
    k->keep_alive_s = c->keepalive_s;
    k->client_id = (struct lmq_bytes){(const uint8_t *)c->client_id, c->client_id_len};
    if (o->version == MQTT_V5) {
        k->props.present =
            MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) | MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
        k->props.receive_maximum = UINT16_MAX;
        LMQ_ASSERT(c->in_cap <= UINT32_MAX);
        k->props.maximum_packet_size = (uint32_t)c->in_cap;
        if (sub && o->session_expiry_s > 0) {
            k->props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
            k->props.session_expiry_interval_s = o->session_expiry_s;
        }
        if (sub && o->topic_alias_max > 0) {
            k->props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
            k->props.topic_alias_maximum = o->topic_alias_max;
        }
    }
    int rc = conn__send(c, &pkt);
    LMQ_ASSERT(rc == 0); /* an empty output buffer holds a CONNECT */
    c->state = BENCH_CONN_CONNECT_SENT;
}

static void conn__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct bench_conn *c = h->data;
    LMQ_UNUSED(suggested);
    LMQ_ASSERT(c->in_len < c->in_cap); /* conn__process keeps room or fails the conn */
    buf->base = (char *)c->in + c->in_len;
    buf->len = c->in_cap - c->in_len;
}

static void conn__on_connect(uv_connect_t *req, int status)
{
    struct bench_conn *c = req->data;
    if (status == UV_ECANCELED || c->handle_closing) {
        return;
    }
    if (status < 0) {
        char what[BENCH_ERROR_MAX_BYTES];
        snprintf(what, sizeof(what), "cannot connect to %.100s:%u: %s", c->bench->opts.host,
                 c->bench->opts.port, uv_strerror(status));
        conn__lost(c, what);
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, conn__on_alloc, conn__on_read);
    if (rc != 0) {
        conn__lost(c, uv_strerror(rc));
        return;
    }
    c->reading = true;
    conn__send_connect(c);
    bench_conn_flush(c);
}

int bench_conn_start(struct bench_conn *c)
{
    struct bench *b = c->bench;
    LMQ_ASSERT(c->state == BENCH_CONN_NEW && !c->handle_open);
    int rc = uv_tcp_init(&b->loop, &c->tcp);
    if (rc != 0) {
        return rc;
    }
    c->tcp.data = c;
    c->connect_req.data = c;
    c->handle_open = true;
    c->state = BENCH_CONN_TCP;
    LMQ_UNUSED(uv_tcp_nodelay(&c->tcp, 1)); /* best effort: latency, not correctness */
    return uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&b->addr,
                          conn__on_connect);
}

/* ---------------------------------------------------------------------------------------------
 * Publishing.
 */
void bench_conn_publish(struct bench_conn *c, uint64_t budget, uint64_t now_ns)
{
    struct bench *b = c->bench;
    LMQ_ASSERT(c->role == BENCH_ROLE_PUB);
    if (c->state != BENCH_CONN_READY) {
        return;
    }
    uint8_t qos = b->opts.qos;
    size_t need = c->publish_bytes + CONN_ANSWER_RESERVE_BYTES;
    uint64_t n = 0;
    /* Bounded by budget, by the quota and by the output buffer (each round uses publish_bytes). */
    while (n < budget && c->quota > 0 && conn__room(c) >= need) {
        if (qos > 0 && c->pid_free_count == 0) {
            break;
        }
        LMQ_ASSERT(c->seq_next <= BENCH_TAG_SEQ_MASK);
        uint64_t tag = ((uint64_t)c->index << BENCH_TAG_PUB_SHIFT) | c->seq_next++;
        memcpy(c->payload, &now_ns, sizeof(now_ns));
        memcpy(c->payload + sizeof(now_ns), &tag, sizeof(tag));
        uint16_t pid = 0;
        if (qos > 0) {
            pid = c->pid_free[--c->pid_free_count];
            LMQ_ASSERT(c->pid_state[pid] == BENCH_PID_FREE);
            c->pid_state[pid] = BENCH_PID_AWAIT_ACK;
            c->pid_sent_ns[pid] = now_ns;
            c->inflight_count++;
        }
        c->pub_pkt.u.publish.packet_id = pid;
        int rc = conn__send(c, &c->pub_pkt);
        LMQ_ASSERT(rc == 0);
        c->quota--;
        n++;
    }
    b->inflight_total += qos > 0 ? n : 0;
    b->total.published += n;
    b->total.expected += n * bench_fanout(b);
    if (bench_in_window(b, now_ns)) {
        b->window.published += n;
    }
}

/* A QoS 1/2 publish flow has ended (PUBACK, PUBCOMP, or refused). */
static void conn__flow_done(struct bench_conn *c, uint16_t pid, uint8_t rc, uint64_t now_ns)
{
    struct bench *b = c->bench;
    LMQ_ASSERT(c->pid_state[pid] != BENCH_PID_FREE && c->inflight_count > 0);
    if (rc >= 0x80) {
        b->total.refused++;
        b->total.expected -= bench_fanout(b);
        b->last_refusal_rc = rc;
    } else {
        uint64_t sent_ns = c->pid_sent_ns[pid];
        b->total.acked++;
        if (bench_in_window(b, now_ns)) {
            b->window.acked++;
        }
        if (bench_in_window(b, sent_ns) && now_ns >= sent_ns) {
            bench_hist_record(&b->ack_latency, now_ns - sent_ns);
        }
    }
    b->last_ack_ns = now_ns;
    c->pid_state[pid] = BENCH_PID_FREE;
    c->pid_free[c->pid_free_count++] = pid;
    c->inflight_count--;
    b->inflight_total--;
    LMQ_ASSERT(c->pid_free_count <= c->inflight_max);
}

static bool conn__pid_ok(const struct bench_conn *c, uint16_t pid, enum bench_pid_state want)
{
    return c->role == BENCH_ROLE_PUB && pid >= 1 && pid <= c->inflight_max &&
           c->pid_state[pid] == want;
}

/* PUBACK, PUBREC, PUBCOMP for our publishes. Returns false when the conn failed. */
static bool conn__on_pub_ack(struct bench_conn *c, const struct mqtt_packet *pkt, uint64_t now_ns)
{
    const struct mqtt_ack *a = &pkt->u.ack;
    uint8_t qos = c->bench->opts.qos;
    bool ok = false;
    if (pkt->type == MQTT_PUBACK && qos == 1) {
        ok = conn__pid_ok(c, a->packet_id, BENCH_PID_AWAIT_ACK);
    } else if (pkt->type == MQTT_PUBREC && qos == 2) {
        ok = conn__pid_ok(c, a->packet_id, BENCH_PID_AWAIT_ACK);
    } else if (pkt->type == MQTT_PUBCOMP && qos == 2) {
        ok = conn__pid_ok(c, a->packet_id, BENCH_PID_AWAIT_COMP);
    }
    if (!ok) {
        char what[96];
        snprintf(what, sizeof(what), "unexpected %s for packet id %u",
                 mqtt_packet_type_name(pkt->type), a->packet_id);
        conn__lost(c, what);
        return false;
    }
    if (pkt->type == MQTT_PUBREC && a->reason_code < 0x80) {
        c->pid_state[a->packet_id] = BENCH_PID_AWAIT_COMP;
        conn__send_ack(c, MQTT_PUBREL, a->packet_id);
        return true;
    }
    conn__flow_done(c, a->packet_id, a->reason_code, now_ns);
    bench_on_publisher_room(c->bench, c, now_ns);
    bench_on_progress(c->bench, now_ns);
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Receiving.
 */
static uint64_t *conn__seq_slot(struct bench_conn *c, uint64_t pub)
{
    if (c->seq_expected_count > 1) {
        return pub < c->seq_expected_count ? &c->seq_expected[pub] : NULL;
    }
    /* fan-out: everyone hears publisher 0; pairs: subscriber i hears publisher i. */
    uint64_t want = c->bench->opts.scenario == BENCH_PAIRS ? c->index : 0;
    return pub == want ? &c->seq_expected[0] : NULL;
}

static void conn__on_delivery(struct bench_conn *c, const struct mqtt_publish *p, uint64_t now_ns)
{
    struct bench *b = c->bench;
    uint64_t sent_ns = 0, tag = 0;
    if (p->payload.len < BENCH_PAYLOAD_MIN_BYTES) {
        b->total.foreign++;
        return;
    }
    memcpy(&sent_ns, p->payload.data, sizeof(sent_ns));
    memcpy(&tag, p->payload.data + sizeof(sent_ns), sizeof(tag));
    uint64_t seq = tag & BENCH_TAG_SEQ_MASK;
    uint64_t *expected = conn__seq_slot(c, tag >> BENCH_TAG_PUB_SHIFT);
    if (expected == NULL || seq == 0) {
        b->total.foreign++;
        return;
    }
    b->last_delivery_ns = now_ns;
    if (seq < *expected) {
        b->total.duplicates++; /* a repeat, or (MQTT keeps order, so never) a late one */
        return;
    }
    b->total.gaps += seq > *expected ? 1 : 0;
    *expected = seq + 1;
    b->total.delivered++;
    if (bench_in_window(b, now_ns)) {
        b->window.delivered++;
    }
    if (bench_in_window(b, sent_ns) && now_ns >= sent_ns) {
        bench_hist_record(&b->latency, now_ns - sent_ns);
    }
}

static bool conn__on_connack(struct bench_conn *c, const struct mqtt_connack *k)
{
    const struct bench_opts *o = &c->bench->opts;
    char what[160];
    what[0] = '\0';
    if (k->reason_code != 0) {
        snprintf(what, sizeof(what), "broker refused CONNECT (%s 0x%02x)",
                 o->version == MQTT_V5 ? "reason code" : "return code", k->reason_code);
    } else if ((k->props.present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS)) &&
               k->props.maximum_qos < o->qos) {
        snprintf(what, sizeof(what), "broker supports QoS up to %u only", k->props.maximum_qos);
    } else if ((k->props.present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE)) &&
               c->role == BENCH_ROLE_PUB && k->props.maximum_packet_size < c->publish_bytes) {
        snprintf(what, sizeof(what), "broker's maximum packet size %" PRIu32 " < PUBLISH of %zu",
                 k->props.maximum_packet_size, c->publish_bytes);
    }
    if (what[0] != '\0') {
        conn__lost(c, what);
        return false;
    }
    if (k->props.present & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE)) {
        c->keepalive_s = k->props.server_keep_alive_s;
    }
    if (c->role == BENCH_ROLE_PUB &&
        (k->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))) {
        conn__pids_reset(c, LMQ_MIN(o->inflight, (uint32_t)k->props.receive_maximum));
    }
    if (c->role == BENCH_ROLE_PUB) {
        c->state = BENCH_CONN_READY;
        bench_on_conn_ready(c->bench, c);
        return true;
    }
    struct mqtt_sub_entry entry = {
        .filter = {(const uint8_t *)c->topic, c->topic_len},
        .options = o->qos,
    };
    struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE};
    pkt.u.subscribe.packet_id = CONN_SUBSCRIBE_PID;
    pkt.u.subscribe.entries = &entry;
    pkt.u.subscribe.entry_count = 1;
    int rc = conn__send(c, &pkt);
    LMQ_ASSERT(rc == 0);
    c->state = BENCH_CONN_SUBSCRIBE_SENT;
    return true;
}

static bool conn__on_suback(struct bench_conn *c, const struct mqtt_suback *s)
{
    uint8_t want = c->bench->opts.qos;
    if (s->packet_id != CONN_SUBSCRIBE_PID || s->reason_codes.len != 1) {
        conn__lost(c, "malformed SUBACK");
        return false;
    }
    uint8_t rc = s->reason_codes.data[0];
    if (rc >= 0x80 || rc < want) {
        char what[96];
        snprintf(what, sizeof(what), "broker answered SUBSCRIBE QoS %u with 0x%02x", want, rc);
        conn__lost(c, what);
        return false;
    }
    c->granted_qos = rc;
    c->state = BENCH_CONN_READY;
    bench_on_conn_ready(c->bench, c);
    return true;
}

/*
 * Whether a PUBLISH is on the subscriber's topic, resolving topic aliases as a client must: a
 * Topic Alias with a topic (re)sets the alias, an alias-only PUBLISH uses it. False with the
 * connection failed when the broker broke the rules (an alias out of range or never set).
 */
static bool conn__resolve_topic(struct bench_conn *c, const struct mqtt_publish *p, bool *ours)
{
    struct bench *b = c->bench;
    bool same = p->topic.len == c->topic_len && memcmp(p->topic.data, c->topic, c->topic_len) == 0;
    if (!(p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
        *ours = same;
        return true;
    }
    uint16_t alias = p->props.topic_alias;
    char what[96];
    if (alias == 0 || alias > b->opts.topic_alias_max || c->alias_state == NULL) {
        snprintf(what, sizeof(what), "PUBLISH with topic alias %u (our maximum is %u)", alias,
                 b->opts.topic_alias_max);
        conn__lost(c, what);
        return false;
    }
    if (p->topic.len > 0) {
        c->alias_state[alias] = same ? BENCH_ALIAS_OURS : BENCH_ALIAS_OTHER;
        b->total.alias_set++;
        *ours = same;
        return true;
    }
    if (c->alias_state[alias] == BENCH_ALIAS_UNSET) {
        snprintf(what, sizeof(what), "alias-only PUBLISH for topic alias %u, never set", alias);
        conn__lost(c, what);
        return false;
    }
    b->total.alias_only++;
    *ours = c->alias_state[alias] == BENCH_ALIAS_OURS;
    return true;
}

/* A PUBLISH of size_bytes to a subscriber: count it, then acknowledge at its QoS. */
static bool conn__on_publish(struct bench_conn *c, const struct mqtt_publish *p, size_t size_bytes,
                             uint64_t now_ns)
{
    if (c->role != BENCH_ROLE_SUB || c->state != BENCH_CONN_READY) {
        conn__lost(c, "unexpected PUBLISH");
        return false;
    }
    bool ours = false;
    if (!conn__resolve_topic(c, p, &ours)) {
        return false;
    }
    c->bench->total.sub_publishes++;
    c->bench->total.sub_publish_bytes += size_bytes;
    if (ours) {
        conn__on_delivery(c, p, now_ns);
    } else {
        c->bench->total.foreign++; /* not our topic: counted, acknowledged, not delivered */
    }
    if (p->qos == 1) {
        conn__send_ack(c, MQTT_PUBACK, p->packet_id);
    } else if (p->qos == 2) {
        conn__send_ack(c, MQTT_PUBREC, p->packet_id);
    }
    bench_on_progress(c->bench, now_ns);
    return true;
}

/* Handles one decoded packet of size_bytes. Returns false when the connection failed. */
static bool conn__handle(struct bench_conn *c, const struct mqtt_packet *pkt, size_t size_bytes,
                         uint64_t now_ns)
{
    char what[96];
    bool handshake = c->state == BENCH_CONN_CONNECT_SENT || c->state == BENCH_CONN_SUBSCRIBE_SENT;
    switch (pkt->type) {
    case MQTT_CONNACK:
        if (c->state == BENCH_CONN_CONNECT_SENT) {
            return conn__on_connack(c, &pkt->u.connack);
        }
        break;
    case MQTT_SUBACK:
        if (c->state == BENCH_CONN_SUBSCRIBE_SENT) {
            return conn__on_suback(c, &pkt->u.suback);
        }
        break;
    case MQTT_PUBLISH:
        return conn__on_publish(c, &pkt->u.publish, size_bytes, now_ns);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        return conn__on_pub_ack(c, pkt, now_ns);
    case MQTT_PUBREL:
        if (c->role == BENCH_ROLE_SUB) {
            conn__send_ack(c, MQTT_PUBCOMP, pkt->u.ack.packet_id);
            return true;
        }
        break;
    case MQTT_PINGRESP:
        return true;
    case MQTT_DISCONNECT:
        snprintf(what, sizeof(what), "broker sent DISCONNECT (reason code 0x%02x)",
                 pkt->u.disconnect.reason_code);
        conn__lost(c, what);
        return false;
    default:
        break;
    }
    snprintf(what, sizeof(what), "unexpected %s%s", mqtt_packet_type_name(pkt->type),
             handshake ? " during the handshake" : "");
    conn__lost(c, what);
    return false;
}

/*
 * Frames and handles every complete packet in the input buffer. Stops (and
 * pauses reading) when the output has less than CONN_ANSWER_RESERVE_BYTES
 * free; the write callback resumes. Bounded by the bytes in the buffer.
 */
static void conn__process(struct bench_conn *c, uint64_t now_ns)
{
    size_t pos = 0;
    while (pos < c->in_len && c->state != BENCH_CONN_CLOSING && !c->handle_closing) {
        if (conn__room(c) < CONN_ANSWER_RESERVE_BYTES) {
            c->read_paused = true;
            break;
        }
        uint8_t first = 0, reason = 0;
        uint32_t remaining = 0;
        size_t header = 0;
        int rc = mqtt_fixed_header_parse(c->in + pos, c->in_len - pos, &first, &remaining, &header);
        if (rc == LMQ_EAGAIN) {
            break;
        }
        size_t total = header + remaining;
        if (rc != 0 || total > c->in_cap) {
            conn__lost(c, rc != 0 ? "malformed packet from the broker"
                                  : "packet from the broker larger than the input buffer");
            return;
        }
        if (total > c->in_len - pos) {
            break;
        }
        struct mqtt_packet pkt;
        if (mqtt_decode(c->in + pos, total, c->bench->opts.version, &pkt, &reason) != 0) {
            char what[96];
            snprintf(what, sizeof(what), "malformed %s from the broker (0x%02x)",
                     mqtt_packet_type_name((uint8_t)(first >> 4)), reason);
            conn__lost(c, what);
            return;
        }
        if (!conn__handle(c, &pkt, total, now_ns)) {
            return;
        }
        pos += total;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void conn__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct bench_conn *c = s->data;
    LMQ_UNUSED(buf);
    if (nread < 0) {
        conn__lost(c,
                   nread == UV_EOF ? "connection closed by the broker" : uv_strerror((int)nread));
        return;
    }
    c->in_len += (size_t)nread;
    LMQ_ASSERT(c->in_len <= c->in_cap);
    conn__process(c, bench_now_ns());
    if (c->handle_closing || c->state == BENCH_CONN_CLOSED) {
        return;
    }
    if (c->read_paused && c->reading) {
        uv_read_stop(s);
        c->reading = false;
    } else if (!c->read_paused && !c->reading) {
        int rc = uv_read_start(s, conn__on_alloc, conn__on_read);
        if (rc != 0) {
            conn__lost(c, uv_strerror(rc));
            return;
        }
        c->reading = true;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Keep-alive and disconnect.
 */
void bench_conn_keepalive(struct bench_conn *c, uint64_t now_ns)
{
    if (c->state != BENCH_CONN_READY || c->keepalive_s == 0 || c->handle_closing) {
        return;
    }
    uint64_t half_ns = (uint64_t)c->keepalive_s * 500000000u;
    if (now_ns - c->last_send_ns < half_ns || conn__room(c) < CONN_ANSWER_RESERVE_BYTES) {
        return;
    }
    struct mqtt_packet pkt = {.type = MQTT_PINGREQ};
    if (conn__send(c, &pkt) == 0) {
        c->last_send_ns = now_ns;
    }
}

void bench_conn_disconnect(struct bench_conn *c)
{
    bool connected = c->state == BENCH_CONN_READY || c->state == BENCH_CONN_SUBSCRIBE_SENT;
    if (!connected || c->handle_closing) {
        bench_conn_close_now(c);
        return;
    }
    struct mqtt_packet pkt = {.type = MQTT_DISCONNECT};
    if (conn__send(c, &pkt) != 0) {
        bench_conn_close_now(c); /* no room: the broker sees the socket close instead */
        return;
    }
    c->state = BENCH_CONN_CLOSING;
    bench_conn_flush(c); /* when a write is on the wire, its callback sends the rest */
}
