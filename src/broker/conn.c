/*
 * Client connections: accept, read and frame packets, coalesce output into
 * one write per socket per loop turn, keepalive and connect timeouts, close.
 */
#include "events/events.h"
#include "broker/broker_internal.h"

#include <string.h>
#include <unistd.h>

#include "net/address.h"
#include "net/forwarded.h"
#include "net/proxy_protocol.h"
#include "net/tls.h"
#include "net/ws.h"

/* Smallest read window handed to libuv. */
#define CONN_READ_CHUNK_BYTES 16384
/* Packets handled per read callback before yielding, so one client can't starve others. */
#define CONN_PACKETS_PER_READ_MAX 4096
/* Blocked connections retried per tick. */
#define CONN_BLOCKED_RETRY_MAX 1024

/* Encoded output a TLS/WebSocket connection may hold beyond max_output_bytes (record and
 * frame overhead of one flush). */
#define CONN_WIRE_SLACK_BYTES (64u * 1024u)
/* Output a connection may still fill while the broker is over max_memory_output_bytes: a
 * consumer that reads keeps flowing, one that doesn't stops pulling (and later is closed). */
#define CONN_FAIR_OUTPUT_BYTES (64u * 1024u)
/* Slow consumers looked at (and closed, largest first) per sweep. */
#define CONN_SLOW_SWEEP_MAX 1024u

static void conn_read_stop(struct conn *c);
static void conn_read_start(struct conn *c);
static void conn_on_timer(uv_timer_t *t);
static void conn_arm_timer(struct conn *c, uint64_t timeout_ms);
static void conn_half_close(struct conn *c);
static void conn_process_input(struct conn *c);
static bool conn_admit(struct conn *c, const struct sockaddr_storage *ss);

/* True when TLS or WebSocket sits between the socket and MQTT. */
static bool conn_filtered(const struct conn *c)
{
    return c->kind != CONN_TRANSPORT_TCP;
}

static size_t conn_input_max(const struct conn *c)
{
    return (size_t)c->broker->cfg.limits.max_packet_size_bytes + 5 + CONN_READ_CHUNK_BYTES;
}

static size_t conn_wire_max(const struct conn *c)
{
    const struct lmq_limits *l = &c->broker->cfg.limits;
    return l->max_output_bytes + l->max_packet_size_bytes + CONN_WIRE_SLACK_BYTES;
}

static void conn_mark_dirty(struct conn *c)
{
    if (!list_linked(&c->dirty))
        list_push_back(&c->broker->dirty, &c->dirty);
}

void conn_log(struct conn *c, enum lmq_log_level level, const char *event, const char *detail)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, level, event))
        return;
    lmq_log_uint(&line, "conn", c->id);
    lmq_log_str(&line, "remote", c->remote);
    if (c->via[0] != '\0')
        lmq_log_str(&line, "via", c->via);
    if (c->session != NULL)
        lmq_log_strn(&line, "client_id", c->session->client_id, c->session->client_id_len);
    if (detail != NULL)
        lmq_log_str(&line, "detail", detail);
    lmq_log_end(&line);
}

static const char *conn_transport_name(enum conn_transport_kind kind)
{
    static const char *const names[CONN_TRANSPORT_KIND_COUNT] = {"tcp", "tls", "ws", "wss"};
    LMQ_ASSERT(kind < CONN_TRANSPORT_KIND_COUNT);
    return names[kind];
}

/* The fields connect and disconnect lines share: who the client is and how it came. */
static void conn_log_client(struct conn *c, struct lmq_log_line *line)
{
    lmq_log_uint(line, "conn", c->id);
    lmq_log_str(line, "remote", c->remote);
    if (c->via[0] != '\0')
        lmq_log_str(line, "via", c->via);
    if (c->session != NULL)
        lmq_log_strn(line, "client_id", c->session->client_id, c->session->client_id_len);
    /* "" for an anonymous client: the field is always there, so a query can select on it. */
    lmq_log_strn(line, "user", (const uint8_t *)c->user, c->user_len);
    lmq_log_str(line, "transport", conn_transport_name(c->kind));
    lmq_log_str(line, "protocol", c->version == MQTT_V5 ? "5.0" : "3.1.1");
}

/* session.started / session.ended on the event stream (events.h), beside the log lines. */
static void conn_event(struct conn *c, const char *type, const char *by, const char *reason)
{
    if (!events_on(c->broker))
        return;
    json_t *d = json_object();
    if (d == NULL)
        broker_fail_stop(c->broker, "event", LMQ_ENOMEM);
    if (c->session != NULL)
        json_object_set_new(
            d, "client_id",
            json_stringn((const char *)c->session->client_id, c->session->client_id_len));
    json_object_set_new(d, "identity",
                        c->identity[0] != '\0' ? json_string(c->identity) : json_null());
    json_object_set_new(d, "user", json_stringn(c->user, c->user_len));
    json_object_set_new(d, "remote", json_string(c->remote));
    json_object_set_new(d, "transport", json_string(conn_transport_name(c->kind)));
    json_object_set_new(d, "protocol", json_string(c->version == MQTT_V5 ? "5.0" : "3.1.1"));
    if (by != NULL)
        json_object_set_new(d, "by", json_string(by));
    if (reason != NULL)
        json_object_set_new(d, "reason", json_string(reason));
    events_emit(c->broker, type, d);
}

void conn_log_refused(struct conn *c, uint8_t reason_code, const char *why)
{
    LMQ_ASSERT(c != NULL && !c->connect_logged);
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "connect_refused"))
        return;
    lmq_log_uint(&line, "conn", c->id);
    lmq_log_str(&line, "remote", c->remote);
    if (c->via[0] != '\0')
        lmq_log_str(&line, "via", c->via);
    lmq_log_reason_code(&line, "reason_code", reason_code); /* the v5 code, as the docs write it */
    if (why != NULL)
        lmq_log_str(&line, "detail", why);
    lmq_log_end(&line);
}

void conn_log_connected(struct conn *c)
{
    LMQ_ASSERT(c != NULL && c->state == CONN_CONNECTED);
    LMQ_ASSERT(!c->connect_logged && !c->end_logged);
    c->connect_logged = true;
    conn_event(c, "session.started", NULL, NULL);
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "client_connected"))
        return;
    conn_log_client(c, &line);
    /* Kept for readers of the earlier format ("mqtt5" / "mqtt311"). */
    lmq_log_str(&line, "detail", c->version == MQTT_V5 ? "mqtt5" : "mqtt311");
    lmq_log_end(&line);
}

void conn_log_disconnected(struct conn *c, const char *by, const char *reason, int code,
                           const char *detail)
{
    LMQ_ASSERT(c != NULL && by != NULL && reason != NULL);
    LMQ_ASSERT(code >= -1 && code <= 0xFF);
    if (!c->connect_logged || c->end_logged)
        return;
    c->end_logged = true;
    conn_event(c, "session.ended", by, reason);
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "client_disconnected"))
        return;
    conn_log_client(c, &line);
    lmq_log_str(&line, "by", by);
    lmq_log_str(&line, "reason", reason);
    if (code >= 0)
        lmq_log_reason_code(&line, "reason_code", (uint8_t)code);
    if (detail != NULL)
        lmq_log_str(&line, "detail", detail);
    lmq_log_end(&line);
}

void conn_ref(struct conn *c)
{
    LMQ_ASSERT(c->refcount > 0 && c->refcount < UINT32_MAX);
    c->refcount++;
}

static void conn_free(struct conn *c)
{
    LMQ_ASSERT(c->refcount == 0 && c->handles_open == 0);
    /* Only conn_close closes the handles, and pending acks hold references. */
    LMQ_ASSERT(c->state == CONN_CLOSING && c->session == NULL && c->acks_waiting == 0);
    LMQ_ASSERT(!c->counted && !list_linked(&c->all));
    struct broker *b = c->broker;
    LMQ_ASSERT(b->output_bytes >= c->output_charged);
    b->output_bytes -= c->output_charged;
    c->output_charged = 0;
    free(c->in.data);
    free(c->out.data);
    free(c->writing.data);
    lmq_buf_release(&c->raw);
    lmq_buf_release(&c->wire);
    net_transport_release(&c->transport);
    enhanced_auth_free(c);
    if (c->aliases != NULL) {
        for (size_t i = 0; i <= c->topic_alias_max; i++)
            free((void *)c->aliases[i].data);
        free(c->aliases);
    }
    mqtt_alias_out_destroy(c->alias_out);
    free(c);
    broker_on_conn_freed(b);
}

void conn_unref(struct conn *c)
{
    LMQ_ASSERT(c->refcount > 0);
    if (--c->refcount == 0 && c->handles_open == 0)
        conn_free(c);
}

static void conn_on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    LMQ_ASSERT(c->handles_open > 0);
    if (--c->handles_open == 0 && c->refcount == 0)
        conn_free(c);
}

size_t conn_output_pending(const struct conn *c)
{
    return c->out.len + c->writing.len + c->wire.len;
}

/* Brings c's share of broker->output_bytes up to date; called wherever its output changes. */
static void conn_account(struct conn *c)
{
    struct broker *b = c->broker;
    size_t pending = conn_output_pending(c);
    LMQ_ASSERT(b->output_bytes >= c->output_charged);
    b->output_bytes = b->output_bytes - c->output_charged + pending;
    c->output_charged = pending;
    if (pending < CONN_FAIR_OUTPUT_BYTES)
        c->slow_since_ms = 0; /* it reads: not a slow consumer */
}

bool conn_output_has_room(const struct conn *c)
{
    const struct lmq_limits *l = &c->broker->cfg.limits;
    size_t pending = conn_output_pending(c);
    if (pending >= l->max_output_bytes)
        return false;
    return c->broker->output_bytes < l->max_memory_output_bytes || pending < CONN_FAIR_OUTPUT_BYTES;
}

void conn_close(struct conn *c)
{
    struct broker *b = c->broker;
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    /* Both handles open (only this closes them), and the conn's own reference still held. */
    LMQ_ASSERT(c->handles_open == 2 && c->refcount > 0);
    conn_state_set(c, CONN_CLOSING);
    if (c->counted) {
        LMQ_ASSERT(b->connected_count > 0 && b->connected_by_kind[c->kind] > 0);
        b->connected_count--;
        b->connected_by_kind[c->kind]--;
        c->counted = false;
    }
    if (list_linked(&c->dirty))
        list_unlink(&c->dirty);
    if (list_linked(&c->blocked_link))
        list_unlink(&c->blocked_link);
    list_unlink(&c->all);
    LMQ_ASSERT(b->conn_count > 0);
    b->conn_count--;
    conn_address_release(b, c);
    if (c->refusal_code != 0) {
        LMQ_ASSERT(b->refusing_count > 0);
        b->refusing_count--;
        c->refusal_code = 0;
    }
    /* Every path that knows why has logged it already; this is the catch-all. */
    conn_log_disconnected(c, "server", "closed", -1, NULL);
    if (c->session != NULL)
        session_detach(c);
    LMQ_ASSERT(c->session == NULL && !c->counted);
    conn_log(c, LMQ_LOG_DEBUG, "conn_closed", NULL);
    uv_close((uv_handle_t *)&c->tcp, conn_on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_on_handle_closed);
    conn_unref(c); /* the connection's own reference */
}

int conn_send(struct conn *c, const struct mqtt_packet *pkt)
{
    LMQ_ASSERT(pkt != NULL);
    size_t size = 0;
    if (c->version == MQTT_V5 && pkt->type != MQTT_PUBLISH) {
        /* Reason String and User Properties as the client allows them (conn_reason.c). */
        struct mqtt_packet copy = *pkt;
        int rc = conn_reason_fit(c, &copy, &size);
        if (rc != LMQ_OK)
            return rc;
        return conn_send_sized(c, &copy, size);
    }
    int rc = mqtt_encoded_size(pkt, c->version, &size);
    if (rc != LMQ_OK)
        return rc;
    return conn_send_sized(c, pkt, size);
}

int conn_send_sized(struct conn *c, const struct mqtt_packet *pkt, size_t size)
{
    LMQ_ASSERT(pkt != NULL && size > 0);
    if (c->state == CONN_CLOSING && pkt->type != MQTT_DISCONNECT)
        return LMQ_EINVAL;
    /* The soft bound (max_output_bytes) is enforced by callers that can wait; this is the hard one.
     */
    size_t hard_max = c->broker->cfg.limits.max_output_bytes + size + 4096;
    int rc = lmq_buf_reserve(&c->out, size, hard_max);
    if (rc != LMQ_OK) {
        conn_log(c, LMQ_LOG_WARN, "output_overflow", "closing");
        conn_log_disconnected(c, "server", "output_overflow", -1, NULL);
        conn_close(c);
        return rc;
    }
    size_t written = 0;
    rc = mqtt_encode(pkt, c->version, c->out.data + c->out.len, c->out.cap - c->out.len, &written);
    LMQ_ASSERT(rc == LMQ_OK && written == size);
    c->out.len += written;
    c->broker->stats.bytes_out += written;
    c->broker->stats.packets_out++;
    conn_account(c);
    conn_mark_dirty(c);
    return LMQ_OK;
}

/* Counts an outbound PUBLISH that the alias table rewrote (full_bytes: its size before). */
static void conn_alias_out_count(struct broker *b, const struct mqtt_packet *pkt, size_t full_bytes,
                                 size_t size_bytes)
{
    const struct mqtt_publish *p = &pkt->u.publish;
    if (!(p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)))
        return;
    if (p->topic.len == 0) {
        LMQ_ASSERT(size_bytes < full_bytes);
        b->stats.alias_out_used++;
        b->stats.alias_out_saved_bytes += full_bytes - size_bytes;
    } else {
        LMQ_ASSERT(size_bytes > full_bytes);
        b->stats.alias_out_assigned++;
        b->stats.alias_out_spent_bytes += size_bytes - full_bytes;
    }
}

/*
 * Outbound topic aliases live as long as the network connection ([MQTT-3.3.2-7]): a new
 * connection of the same session (reconnect, takeover) starts with none, so what it resends
 * carries the full topic. Every PUBLISH is rewritten here, just before it is encoded into the
 * output in order, so the table always says what the client has been told, DUP resends included.
 */
int conn_send_publish(struct conn *c, struct mqtt_packet *pkt, size_t size_bytes)
{
    LMQ_ASSERT(pkt->type == MQTT_PUBLISH && size_bytes <= c->max_packet_out);
    if (c->state == CONN_CLOSING)
        return LMQ_EINVAL;
    if (c->topic_alias_out_max > 0 && c->version == MQTT_V5) {
        if (c->alias_out == NULL &&
            mqtt_alias_out_create(c->topic_alias_out_max, &c->alias_out) != LMQ_OK)
            c->topic_alias_out_max = 0; /* out of memory: full topics, as without aliases */
        if (c->alias_out != NULL) {
            size_t full_bytes = size_bytes;
            mqtt_alias_out_apply(c->alias_out, pkt, c->max_packet_out, &size_bytes);
            conn_alias_out_count(c->broker, pkt, full_bytes, size_bytes);
        }
    }
    return conn_send_sized(c, pkt, size_bytes);
}

static void conn_flush(struct conn *c);

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    LMQ_ASSERT(c->half_closed);
    if (status != 0) /* the peer is gone (or the handle was closed: nothing to do) */
        conn_close(c);
    conn_unref(c);
}

/* Lingering, the output written: shutdown(SHUT_WR) (the peer reads the end of the stream after
 * the final packet); reading goes on until the peer closes or a linger bound is hit. */
static void conn_half_close(struct conn *c)
{
    LMQ_ASSERT(c->lingering && c->state == CONN_CLOSING && conn_output_pending(c) == 0);
    if (c->half_closed || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->half_closed = true;
    c->shutdown_req.data = c;
    conn_ref(c);
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_on_shutdown) != 0) {
        conn_close(c);
        conn_unref(c);
    }
}

static void conn_on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    /* The write holds a reference (conn_flush) until here. */
    LMQ_ASSERT(c->write_active && c->refcount > 0);
    c->write_active = false;
    lmq_buf_release(&c->writing); /* an idle connection holds no output buffer either */
    conn_account(c);
    if (status != 0) {
        if (c->state != CONN_CLOSING || !uv_is_closing((uv_handle_t *)&c->tcp))
            conn_close(c);
        conn_unref(c);
        return;
    }
    if (c->out.len > 0 || c->wire.len > 0)
        conn_flush(c);
    else if (c->state == CONN_CLOSING && c->lingering)
        conn_half_close(c);
    else if (c->state == CONN_CLOSING)
        conn_close(c);
    else if (c->session != NULL)
        session_queue_pump(c->session); /* room in the output again */
    conn_unref(c);
}

/* TLS/WebSocket: encodes the MQTT output into wire bytes. False when it had to close. */
static bool conn_encode_output(struct conn *c)
{
    LMQ_ASSERT(conn_filtered(c));
    if (c->out.len == 0)
        return true;
    int rc = net_transport_encode(&c->transport, c->out.data, c->out.len, &c->wire,
                                  conn_wire_max(c), &c->broker->transport_scratch);
    if (rc != LMQ_OK) {
        conn_log(c, LMQ_LOG_WARN, "output_overflow", "closing");
        conn_log_disconnected(c, "server", "output_overflow", -1, NULL);
        conn_close(c);
        return false;
    }
    lmq_buf_release(&c->out); /* encoded: an idle connection keeps no plain copy */
    conn_account(c);
    return true;
}

static void conn_flush(struct conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp) || c->half_closed)
        return;
    struct lmq_buf *pending = &c->out;
    if (conn_filtered(c)) {
        if (!conn_encode_output(c))
            return;
        pending = &c->wire;
    }
    if (c->write_active || pending->len == 0)
        return;
    LMQ_ASSERT(c->writing.len == 0 && c->refcount > 0);
    LMQ_ASSERT(c->output_charged == conn_output_pending(c)); /* accounted where it changed */
    struct lmq_buf tmp = c->writing;
    c->writing = *pending;
    *pending = tmp;
    pending->len = 0;
    uv_buf_t buf = uv_buf_init((char *)c->writing.data, (unsigned int)c->writing.len);
    c->write_req.data = c;
    conn_ref(c);
    c->write_active = true;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, conn_on_write);
    if (rc != 0) {
        c->write_active = false;
        conn_close(c);
        conn_unref(c);
    }
}

void conn_flush_all(struct broker *b)
{
    size_t guard = b->conn_count + 1;
    while (!list_empty(&b->dirty) && guard-- > 0) {
        struct conn *c = list_entry(b->dirty.next, struct conn, dirty);
        list_unlink(&c->dirty);
        conn_flush(c);
    }
}

/* The reason word of a disconnect the server decided, from its reason code. */
static const char *conn_disconnect_reason(uint8_t reason_code)
{
    switch (reason_code) {
    case MQTT_RC_SERVER_SHUTTING_DOWN:
        return "server_shutdown";
    case MQTT_RC_KEEP_ALIVE_TIMEOUT:
        return "keepalive_timeout";
    case MQTT_RC_SESSION_TAKEN_OVER:
        return "session_taken_over";
    case MQTT_RC_MALFORMED_PACKET:
    case MQTT_RC_PROTOCOL_ERROR:
        return "protocol_error";
    default:
        return "server_disconnect";
    }
}

void conn_disconnect(struct conn *c, uint8_t reason_code)
{
    LMQ_ASSERT(c != NULL && c->refcount > 0);
    if (uv_is_closing((uv_handle_t *)&c->tcp) || c->state == CONN_CLOSING)
        return;
    if (c->connect_logged) {
        conn_log_disconnected(c, "server", conn_disconnect_reason(reason_code), reason_code,
                              c->why != NULL ? c->why
                                             : conn_reason_text(MQTT_DISCONNECT, reason_code));
    } else {
        /* Not connected yet (authentication under way): no client_connected to pair with. */
        struct lmq_log_line line;
        if (lmq_log_begin(&line, reason_code >= 0x80 ? LMQ_LOG_INFO : LMQ_LOG_DEBUG,
                          "disconnect")) {
            lmq_log_uint(&line, "conn", c->id);
            lmq_log_str(&line, "remote", c->remote);
            if (c->session != NULL)
                lmq_log_strn(&line, "client_id", c->session->client_id, c->session->client_id_len);
            lmq_log_reason_code(&line, "reason_code", reason_code);
            if (c->why != NULL)
                lmq_log_str(&line, "detail", c->why);
            lmq_log_end(&line);
        }
    }
    bool send = c->version == MQTT_V5 && c->state == CONN_CONNECTED;
    if (c->session != NULL)
        session_detach(c); /* wills and session expiry start now */
    LMQ_ASSERT(c->session == NULL);
    if (send) {
        struct mqtt_packet pkt = {.type = MQTT_DISCONNECT};
        pkt.u.disconnect.reason_code = reason_code;
        const char *why = c->why != NULL ? c->why : conn_reason_text(MQTT_DISCONNECT, reason_code);
        if (why != NULL) {
            pkt.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
            pkt.u.disconnect.props.reason_string =
                (struct lmq_bytes){(const uint8_t *)why, strlen(why)};
        }
        (void)conn_send(c, &pkt);
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        conn_end(c, reason_code == MQTT_RC_SERVER_SHUTTING_DOWN);
}

void conn_end(struct conn *c, bool shutting_down)
{
    LMQ_ASSERT(c != NULL && c->state != CONN_CLOSING);
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    conn_read_stop(c);
    conn_state_set(c, CONN_CLOSING);
    c->lingering = !shutting_down;
    if (c->session != NULL)
        session_detach(c);
    LMQ_ASSERT(c->session == NULL && c->state == CONN_CLOSING);
    enhanced_auth_free(c); /* an outstanding challenge ends now, not after the linger */
    /* Input waiting (blocked, yielded, a password being checked) is never handled now. */
    if (list_linked(&c->blocked_link))
        list_unlink(&c->blocked_link);
    c->blocked = false;
    if (conn_filtered(c)) {
        /* After the final packet: a WebSocket close frame, then TLS close_notify. */
        if (!conn_encode_output(c))
            return;
        net_transport_finish(&c->transport, shutting_down ? WS_CLOSE_GOING_AWAY : WS_CLOSE_NORMAL,
                             &c->wire, conn_wire_max(c), &c->broker->transport_scratch);
        conn_account(c);
    }
    /* One deadline for the flush and the linger: a peer that reads nothing can't hold it. */
    conn_arm_timer(c, CONN_LINGER_MS);
    if (c->lingering)
        conn_read_start(c); /* read and discarded (conn_alloc, conn_on_read) */
    if (conn_output_pending(c) == 0 && c->lingering)
        conn_half_close(c);
    else if (conn_output_pending(c) == 0)
        conn_close(c);
    else
        conn_mark_dirty(c); /* conn_on_write half-closes (or closes) once it is written */
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct conn *c = h->data;
    LMQ_UNUSED(suggested);
    if (c->state == CONN_CLOSING) {
        /* Lingering: every read lands at the start of in and is dropped (conn_on_read). */
        LMQ_ASSERT(c->lingering);
        c->in.len = 0;
        if (lmq_buf_reserve(&c->in, CONN_READ_CHUNK_BYTES, conn_input_max(c)) != LMQ_OK) {
            *out = uv_buf_init(NULL, 0);
            return;
        }
        *out = uv_buf_init((char *)c->in.data, (unsigned int)c->in.cap);
        return;
    }
    if (conn_filtered(c) && !c->proxy_pending) {
        /* Socket bytes land in raw and are decoded into in right away. */
        LMQ_ASSERT(c->raw.len == 0);
        if (lmq_buf_reserve(&c->raw, CONN_READ_CHUNK_BYTES, CONN_READ_CHUNK_BYTES) != LMQ_OK) {
            *out = uv_buf_init(NULL, 0);
            return;
        }
        *out = uv_buf_init((char *)c->raw.data, (unsigned int)c->raw.cap);
        return;
    }
    if (lmq_buf_reserve(&c->in, CONN_READ_CHUNK_BYTES, conn_input_max(c)) != LMQ_OK) {
        *out = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS; we close */
        return;
    }
    *out = uv_buf_init((char *)c->in.data + c->in.len, (unsigned int)(c->in.cap - c->in.len));
}

/* The peer is done (WebSocket close, TLS close_notify) or broke the transport: send what is
 * queued (a close reply, an alert), then close. The will is published: no DISCONNECT came. */
static void conn_close_after_output(struct conn *c)
{
    conn_log_disconnected(c, "network", "transport_closed", -1, NULL); /* if not said yet */
    conn_read_stop(c);
    conn_state_set(c, CONN_CLOSING);
    if (c->session != NULL)
        session_detach(c);
    LMQ_ASSERT(c->session == NULL);
    if (conn_output_pending(c) == 0) {
        conn_close(c);
        return;
    }
    conn_mark_dirty(c);
    conn_arm_timer(c, CONN_LINGER_MS); /* bounds the flush: the peer may not read it */
}

static void conn_transport_failed(struct conn *c, int rc)
{
    struct broker *b = c->broker;
    const char *event = "transport_error";
    const char *detail = rc == LMQ_ELIMIT ? "input limit" : "protocol violation";
    if (c->transport.tls != NULL && !tls_session_established(c->transport.tls)) {
        b->stats.tls_handshake_failures++;
        event = "tls_handshake_failed";
        detail = tls_session_error(c->transport.tls);
    } else if (c->transport.tls != NULL && tls_session_error(c->transport.tls)[0] != '\0') {
        event = "tls_error";
        detail = tls_session_error(c->transport.tls);
    } else if (c->transport.ws != NULL) {
        b->stats.ws_protocol_errors++;
        event = "ws_protocol_error";
    }
    conn_log(c, LMQ_LOG_INFO, event, detail);
    conn_log_disconnected(c, "network", event, -1, detail);
    conn_close_after_output(c);
}

static void conn_on_tls_established(struct conn *c)
{
    const char *cn = tls_session_peer_cn(c->transport.tls);
    if (cn != NULL)
        snprintf(c->tls_cn, sizeof(c->tls_cn), "%s", cn);
    conn_log(c, LMQ_LOG_DEBUG, "tls_established", tls_session_version(c->transport.tls));
}

/*
 * TLS/WebSocket: decodes the socket bytes in raw (none when resuming input the transport held
 * back) into in, then handles the packets. Bytes still held inside (in was full) are resumed
 * on a later turn through the yielded list.
 */
static void conn_transport_input(struct conn *c)
{
    struct broker *b = c->broker;
    struct net_transport_events ev;
    int rc = net_transport_decode(&c->transport, c->raw.data, c->raw.len, &c->in, conn_input_max(c),
                                  &c->wire, conn_wire_max(c), &b->transport_scratch, &ev);
    lmq_buf_release(&c->raw); /* an idle connection holds no read buffer */
    conn_account(c);
    if (c->wire.len > 0)
        conn_mark_dirty(c);
    if (ev.established_now)
        conn_on_tls_established(c);
    if (rc != LMQ_OK) {
        conn_transport_failed(c, rc);
        return;
    }
    conn_process_input(c);
    if (c->state == CONN_CLOSING || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (ev.peer_closed) {
        conn_log(c, LMQ_LOG_DEBUG, "transport_closed_by_peer", NULL);
        conn_log_disconnected(c, "client", "transport_closed_by_peer", -1,
                              c->transport.ws != NULL ? "WebSocket close" : "TLS close_notify");
        conn_close_after_output(c);
        return;
    }
    if (!c->blocked && net_transport_holds_input(&c->transport)) {
        c->blocked = true;
        conn_read_stop(c);
        list_push_back(&b->yielded, &c->blocked_link);
    }
}

/*
 * The client a PROXY header named: it names the connection (the proxy goes to via) and is
 * loopback only if its address is; LOCAL or UNKNOWN leaves it unknown, never loopback.
 * *ss becomes the address the per-address limits count.
 */
static void conn_apply_proxy(struct conn *c, bool known, const struct sockaddr_storage *client,
                             struct sockaddr_storage *ss)
{
    snprintf(c->via, sizeof(c->via), "%s", c->remote);
    c->loopback_denied = !known || !net_sockaddr_is_loopback(client);
    if (!known) {
        snprintf(c->remote, sizeof(c->remote), "unknown");
        return; /* counted against the proxy's address */
    }
    *ss = *client;
    (void)net_address_format(ss, NET_ADDRESS_BARE, c->remote, sizeof(c->remote));
}

/* Bytes from a [server] proxy_protocol peer before its PROXY header is complete (in c->in):
 * waits for the rest, refuses a bad header, or applies it and goes on with what follows. */
static void conn_proxy_input(struct conn *c)
{
    LMQ_ASSERT(c->proxy_pending && c->address == NULL);
    size_t used = 0;
    bool known = false;
    struct sockaddr_storage client;
    int rc = net_proxy_parse(c->in.data, c->in.len, &used, &known, &client);
    if (rc == LMQ_EAGAIN && c->in.len < NET_PROXY_MAX_BYTES)
        return; /* the connect timeout bounds the wait */
    if (rc != LMQ_OK) {
        conn_log(c, LMQ_LOG_WARN, "proxy_header_invalid", "closing");
        conn_close(c);
        return;
    }
    LMQ_ASSERT(used > 0 && used <= c->in.len);
    c->proxy_pending = false;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    (void)uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    conn_apply_proxy(c, known, &client, &ss);
    memmove(c->in.data, c->in.data + used, c->in.len - used);
    c->in.len -= used;
    conn_log(c, LMQ_LOG_DEBUG, "proxy_header", NULL);
    if (!conn_admit(c, &ss) || c->in.len == 0)
        return;
    if (!conn_filtered(c)) {
        conn_process_input(c);
        return;
    }
    /* TLS: what followed the header is the first handshake bytes. */
    size_t n = c->in.len;
    if (lmq_buf_reserve(&c->raw, n, n) != LMQ_OK) {
        conn_close(c);
        return;
    }
    memcpy(c->raw.data, c->in.data, n);
    c->raw.len = n;
    c->in.len = 0;
    conn_transport_input(c);
}

/* Lingering: input is counted and dropped, never handled; too much of it ends the linger. */
static void conn_linger_input(struct conn *c, size_t nread)
{
    LMQ_ASSERT(c->lingering && nread <= c->in.cap);
    c->in.len = 0;
    c->linger_bytes += nread;
    if (c->linger_bytes >= CONN_LINGER_MAX_BYTES) {
        conn_log(c, LMQ_LOG_DEBUG, "linger_end", "input limit");
        conn_close(c);
    }
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    LMQ_UNUSED(buf);
    /* Reading stops when the handle closes: only an open conn reads. */
    LMQ_ASSERT(c != NULL && c->refcount > 0 && !uv_is_closing((uv_handle_t *)&c->tcp));
    if (nread < 0) {
        conn_log(c, LMQ_LOG_DEBUG, "conn_eof", uv_err_name((int)nread));
        conn_log_disconnected(c, "network", nread == UV_EOF ? "socket_closed" : "socket_error", -1,
                              uv_err_name((int)nread));
        conn_close(c); /* without DISCONNECT: the will is published */
        return;
    }
    if (nread == 0)
        return;
    c->broker->stats.bytes_in += (uint64_t)nread;
    if (c->state == CONN_CLOSING) {
        conn_linger_input(c, (size_t)nread);
        return;
    }
    c->last_rx_ms = clock_now_ms(c->broker);
    if (c->proxy_pending) {
        c->in.len += (size_t)nread;
        conn_proxy_input(c);
        return;
    }
    if (conn_filtered(c)) {
        c->raw.len = (size_t)nread;
        conn_transport_input(c);
        return;
    }
    c->in.len += (size_t)nread;
    conn_process_input(c);
}

static void conn_read_start(struct conn *c)
{
    if (c->reading || (c->state == CONN_CLOSING && !c->lingering) ||
        uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read) == 0)
        c->reading = true;
}

static void conn_read_stop(struct conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* Decodes and handles one complete packet; returns as proto_handle_packet (a packet that does
 * not decode: PROTO_DISCONNECT). */
static enum proto_result conn_handle_one(struct conn *c, const uint8_t *data, size_t len,
                                         uint8_t *disconnect_reason)
{
    struct mqtt_packet pkt;
    uint8_t reason = MQTT_RC_MALFORMED_PACKET;
    c->why = NULL; /* a handler that refuses this packet may say why */
    if (mqtt_decode(data, len, c->version, &pkt, &reason) != LMQ_OK) {
        if (c->state == CONN_AWAIT_CONNECT && reason == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION &&
            data[0] >> 4 == MQTT_CONNECT) {
            /* Tell an old client in the version it speaks (3.1.1 layout works for 3.1 too). */
            struct mqtt_packet ack = {.type = MQTT_CONNACK};
            bool v5 = pkt.u.connect.protocol_version == MQTT_V5;
            ack.u.connack.reason_code =
                v5 ? MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION : MQTT_CONNACK_V311_BAD_PROTOCOL_VERSION;
            c->version = v5 ? MQTT_V5 : MQTT_V311;
            (void)conn_send(c, &ack);
        }
        return proto_disconnect_with(disconnect_reason,
                                     reason < 0x80 ? MQTT_RC_MALFORMED_PACKET : reason);
    }
    c->broker->stats.packets_in++;
    if (pkt.type == MQTT_PUBLISH) {
        c->broker->stats.messages_in++;
        c->broker->stats.messages_in_qos[pkt.u.publish.qos]++;
    }
    enum proto_result rc = proto_handle_packet(c, &pkt, disconnect_reason);
    LMQ_ASSERT(rc == PROTO_OK || rc == PROTO_DISCONNECT || rc == PROTO_BLOCKED ||
               rc == PROTO_PAUSED);
    if (rc != PROTO_DISCONNECT)
        c->why = NULL; /* only the DISCONNECT this packet causes says it */
    return rc;
}

static void conn_process_input(struct conn *c)
{
    if (c->in.len == 0)
        return;
    size_t pos = 0;
    uint32_t max_packet = c->broker->cfg.limits.max_packet_size_bytes;
    if (c->state == CONN_AWAIT_CONNECT && c->in.len > 0 && c->in.data[0] >> 4 != MQTT_CONNECT &&
        !enhanced_auth_pending(c)) {
        /* Not MQTT (or not starting with CONNECT): don't wait for a length that means nothing. */
        conn_log(c, LMQ_LOG_INFO, "protocol_error", "first packet is not CONNECT");
        conn_close(c);
        return;
    }
    for (int i = 0; i < CONN_PACKETS_PER_READ_MAX && c->state != CONN_CLOSING; i++) {
        uint8_t first = 0;
        uint32_t remaining = 0;
        size_t header = 0;
        int rc =
            mqtt_fixed_header_parse(c->in.data + pos, c->in.len - pos, &first, &remaining, &header);
        if (rc == LMQ_EAGAIN)
            break;
        if (rc != LMQ_OK) {
            conn_disconnect(c, MQTT_RC_MALFORMED_PACKET);
            return;
        }
        if ((uint64_t)header + remaining > max_packet) {
            conn_log(c, LMQ_LOG_INFO, "packet_too_large", NULL);
            conn_disconnect(c, MQTT_RC_PACKET_TOO_LARGE);
            return;
        }
        if (c->in.len - pos < header + remaining)
            break;
        if (c->state == CONN_AWAIT_CONNECT && first >> 4 != MQTT_CONNECT &&
            !enhanced_auth_pending(c)) {
            conn_log(c, LMQ_LOG_INFO, "protocol_error", "first packet is not CONNECT");
            conn_close(c);
            return;
        }
        uint8_t reason = 0;
        enum proto_result result =
            conn_handle_one(c, c->in.data + pos, header + remaining, &reason);
        if (result == PROTO_PAUSED) {
            /* The CONNECT stays unconsumed; conn_resume() hands it in again. */
            LMQ_ASSERT(c->state == CONN_AWAIT_CONNECT && pos == 0);
            conn_read_stop(c);
            c->blocked = true;
            break;
        }
        if (result == PROTO_BLOCKED) {
            conn_read_stop(c);
            c->blocked = true;
            if (!list_linked(&c->blocked_link))
                list_push_back(&c->broker->blocked, &c->blocked_link);
            break;
        }
        if (result == PROTO_DISCONNECT) {
            LMQ_ASSERT(reason >= 0x80);
            conn_disconnect(c, reason);
            return;
        }
        LMQ_ASSERT(result == PROTO_OK);
        pos += header + remaining;
    }
    if (c->state == CONN_CLOSING || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (pos > 0) {
        memmove(c->in.data, c->in.data + pos, c->in.len - pos);
        c->in.len -= pos;
    }
    if (c->in.len == 0)
        lmq_buf_release(&c->in); /* an idle connection holds no input buffer */
    if (!c->blocked && c->in.len > 0 && pos > 0) {
        /* More complete packets may be waiting (we yielded): continue on a later turn. */
        uint8_t first;
        uint32_t remaining;
        size_t header;
        if (mqtt_fixed_header_parse(c->in.data, c->in.len, &first, &remaining, &header) == LMQ_OK &&
            c->in.len >= header + remaining) {
            c->blocked = true;
            conn_read_stop(c);
            list_push_back(&c->broker->yielded, &c->blocked_link);
        }
    }
}

/* Handles input that waited (blocked, yielded or paused), then reads again unless it waits
 * once more. */
static void conn_input_again(struct conn *c)
{
    c->blocked = false;
    conn_ref(c);
    if (conn_filtered(c) && net_transport_holds_input(&c->transport))
        conn_transport_input(c);
    else
        conn_process_input(c);
    if (!c->blocked)
        conn_read_start(c);
    conn_unref(c);
}

void conn_retry_blocked(struct broker *b, struct list_node *list)
{
    LMQ_ASSERT(list == &b->blocked || list == &b->yielded);
    struct list_node todo;
    list_init(&todo);
    size_t n = 0;
    while (!list_empty(list) && n++ < CONN_BLOCKED_RETRY_MAX) {
        struct list_node *node = list->next;
        list_unlink(node);
        list_push_back(&todo, node);
    }
    while (!list_empty(&todo)) {
        struct conn *c = list_entry(todo.next, struct conn, blocked_link);
        list_unlink(&c->blocked_link);
        conn_input_again(c);
    }
}

void conn_inbound_window_freed(struct conn *c)
{
    if (!c->wait_acks)
        return;
    c->wait_acks = false;
    if (c->blocked && list_linked(&c->blocked_link)) {
        list_unlink(&c->blocked_link);
        list_push_back(&c->broker->yielded, &c->blocked_link);
    }
}

void conn_resume(struct conn *c)
{
    LMQ_ASSERT(c->blocked && !list_linked(&c->blocked_link));
    LMQ_ASSERT(c->state == CONN_AWAIT_CONNECT && !uv_is_closing((uv_handle_t *)&c->tcp));
    conn_input_again(c);
}

static void conn_arm_timer(struct conn *c, uint64_t timeout_ms)
{
    uv_timer_start(&c->timer, conn_on_timer, timeout_ms, 0);
}

/* Arms the timer for the earlier of deadline_a and deadline_b (loop ms; 0 = none). */
static void conn_arm_earliest(struct conn *c, uint64_t deadline_a, uint64_t deadline_b)
{
    uint64_t next = deadline_a == 0   ? deadline_b
                    : deadline_b == 0 ? deadline_a
                                      : LMQ_MIN(deadline_a, deadline_b);
    if (next == 0)
        return;
    uint64_t now = clock_now_ms(c->broker);
    conn_arm_timer(c, next > now ? next - now : 1);
}

/* Connect timeout before CONNECT; afterwards, keepalive (1.5 x the interval) and the end of
 * the login token's validity. */
static void conn_on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    LMQ_ASSERT(c != NULL && &c->timer == t && c->refcount > 0);
    uint64_t now = clock_now_ms(c->broker);
    if (c->state == CONN_AWAIT_CONNECT) {
        conn_log(c, LMQ_LOG_INFO, "connect_timeout", NULL);
        conn_close(c);
        return;
    }
    if (c->state == CONN_CLOSING) {
        /* conn_end's deadline: the final packet was not read or the peer kept the socket. */
        conn_log(c, LMQ_LOG_DEBUG, "linger_end", c->half_closed ? "timeout" : "flush timeout");
        conn_close(c);
        return;
    }
    if (c->state != CONN_CONNECTED || pipeline_tokens_conn_end_if_expired(c))
        return;
    uint64_t deadline = 0;
    if (c->keepalive_s != 0) {
        deadline = c->last_rx_ms + (uint64_t)c->keepalive_s * 1500;
        if (now >= deadline) {
            conn_log(c, LMQ_LOG_INFO, "keepalive_timeout", NULL);
            conn_disconnect(c, MQTT_RC_KEEP_ALIVE_TIMEOUT);
            return;
        }
    }
    conn_arm_earliest(c, deadline, pipeline_tokens_conn_deadline_ms(c));
}

/* Called by the CONNECT handler once the keepalive is known (and the token checked). */
void conn_start_keepalive(struct conn *c)
{
    uv_timer_stop(&c->timer);
    uint64_t keepalive = 0;
    if (c->keepalive_s > 0)
        keepalive = clock_now_ms(c->broker) + (uint64_t)c->keepalive_s * 1500;
    conn_arm_earliest(c, keepalive, pipeline_tokens_conn_deadline_ms(c));
}

/* A connection with its handles initialised and linked; the socket is not attached yet. */
static struct conn *conn_new(struct broker *b, enum conn_transport_kind kind)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->broker = b;
    c->refcount = 1;
    c->id = b->next_conn_id++;
    c->version = MQTT_V311;
    c->max_packet_out = UINT32_MAX; /* until a v5 CONNECT says otherwise */
    c->request_problem_info = true;
    c->kind = kind;
    c->transport.established = true; /* until a TLS session says otherwise */
    uv_tcp_init(&b->loop, &c->tcp);
    uv_timer_init(&b->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    list_push_back(&b->conns, &c->all);
    b->conn_count++;
    LMQ_ASSERT(c->state == CONN_AWAIT_CONNECT && c->session == NULL && b->conn_count > 0);
    return c;
}

/*
 * A WebSocket client as its upgrade request described it. Behind a trusted proxy the client is
 * the forwarded address: it names the connection (the proxy goes to via), counts against the
 * per-address limits in *ss, and is loopback only if that address is; a proxy that named no
 * client leaves it unknown, never loopback. A browser from an origin not allowed is never
 * loopback either.
 */
static void conn_apply_ws_peer(struct conn *c, const struct conn_ws_peer *peer,
                               struct sockaddr_storage *ss)
{
    LMQ_ASSERT(c->kind == CONN_TRANSPORT_WS || c->kind == CONN_TRANSPORT_WSS);
    c->loopback_denied = peer->foreign_origin;
    if (!peer->forwarded)
        return;
    snprintf(c->via, sizeof(c->via), "%s", c->remote);
    if (!peer->client_known) {
        snprintf(c->remote, sizeof(c->remote), "unknown");
        c->loopback_denied = true; /* counted against the proxy's address */
        return;
    }
    *ss = peer->client;
    uint16_t port = 0; /* X-Forwarded-For has no port: the host alone names the client */
    net_address_host(ss, c->remote, sizeof(c->remote), &port);
    if (!net_sockaddr_is_loopback(ss))
        c->loopback_denied = true;
}

/* Counts c against the per-address limits of ss. False when it was closed instead; a few
 * refused connections are kept to be told why in their CONNACK. */
static bool conn_admit(struct conn *c, const struct sockaddr_storage *ss)
{
    struct broker *b = c->broker;
    const char *why = NULL;
    int admit_rc = conn_address_admit(b, c, ss, &why);
    if (admit_rc == LMQ_OK)
        return true;
    b->stats.connections_refused_address++;
    conn_log(c, LMQ_LOG_WARN, "connection_refused", why);
    /* A flood is closed at once. */
    if (admit_rc == LMQ_ENOMEM || b->refusing_count >= CONN_REFUSAL_SLACK) {
        conn_close(c);
        return false;
    }
    b->refusing_count++;
    c->refusal_why = why;
    c->refusal_code = strcmp(why, "max_connection_rate_per_address") == 0
                          ? MQTT_RC_CONNECTION_RATE_EXCEEDED
                          : MQTT_RC_QUOTA_EXCEEDED;
    return true;
}

/* Names the peer (for WebSocket, as peer describes it; NULL otherwise), applies the connection
 * limits, starts the CONNECT timer and reading. False when the connection was closed instead. */
static bool conn_start(struct conn *c, const struct conn_ws_peer *peer)
{
    struct broker *b = c->broker;
    b->stats.connections_accepted++;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(&ss, 0, sizeof(ss)); /* unknown ("?:0") when the peer cannot be had */
    (void)uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    (void)net_address_format(&ss, NET_ADDRESS_BARE, c->remote, sizeof(c->remote));
    if (peer != NULL)
        conn_apply_ws_peer(c, peer, &ss);
    if (b->conn_count > b->cfg.limits.max_connections + CONN_REFUSAL_SLACK) {
        conn_log(c, LMQ_LOG_WARN, "connection_refused", "max_connections");
        conn_close(c);
        return false;
    }
    /* From a [server] proxy_protocol peer the client is known once its header is read: the
     * per-address limits count that client, then (conn_proxy_input). */
    c->proxy_pending = peer == NULL && net_proxy_peer_listed(&b->cfg.http_trust, &ss);
    if (!c->proxy_pending && !conn_admit(c, &ss))
        return false;
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_rx_ms = clock_now_ms(b);
    /* Bounds the TLS handshake and the WebSocket upgrade too: all must be done by CONNECT. */
    conn_arm_timer(c, b->cfg.limits.connect_timeout_ms);
    conn_log(c, LMQ_LOG_DEBUG, "conn_accepted", NULL);
    conn_read_start(c);
    return true;
}

/* A socket from a listener's acceptor (net/accept.c). */
static void conn_on_accept(struct broker *b, int fd, bool tls)
{
    LMQ_ASSERT(b != NULL && fd >= 0);
    struct conn *c =
        b->stopping ? NULL : conn_new(b, tls ? CONN_TRANSPORT_TLS : CONN_TRANSPORT_TCP);
    if (c == NULL) {
        close(fd);
        return;
    }
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        conn_close(c);
        return;
    }
    if (tls) {
        LMQ_ASSERT(b->tls != NULL);
        if (tls_session_new(b->tls, &c->transport.tls) != LMQ_OK) {
            conn_close(c);
            return;
        }
        c->transport.established = false;
    }
    (void)conn_start(c, NULL);
}

void conn_on_accept_tcp(void *ctx, int fd)
{
    conn_on_accept(ctx, fd, false);
}

void conn_on_accept_tls(void *ctx, int fd)
{
    conn_on_accept(ctx, fd, true);
}

int conn_adopt_websocket(struct broker *b, int fd, struct tls_session *tls, const uint8_t *early,
                         size_t early_len, const struct conn_ws_peer *peer)
{
    LMQ_ASSERT(b != NULL && fd >= 0 && (early != NULL || early_len == 0));
    LMQ_ASSERT(peer != NULL);
    struct conn *c = b->stopping ? NULL : conn_new(b, tls ? CONN_TRANSPORT_WSS : CONN_TRANSPORT_WS);
    if (c == NULL || uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        if (tls != NULL)
            tls_session_free(tls);
        if (c != NULL)
            conn_close(c);
        return LMQ_EIO;
    }
    c->transport.tls = tls; /* already established: it carried the upgrade */
    /* One WebSocket message may carry a whole packet of the largest size, plus slack. */
    size_t max_message = (size_t)b->cfg.limits.max_packet_size_bytes + CONN_READ_CHUNK_BYTES;
    if (ws_session_new(max_message, &c->transport.ws) != LMQ_OK) {
        conn_close(c);
        return LMQ_ENOMEM;
    }
    if (!conn_start(c, peer))
        return LMQ_OK; /* refused and closed: the limits did their job */
    if (early_len == 0)
        return LMQ_OK;
    /* Bytes after the upgrade request are WebSocket frames, already out of TLS. */
    int rc = net_transport_decode_inner(&c->transport, early, early_len, &c->in, conn_input_max(c),
                                        &c->wire, conn_wire_max(c), &b->transport_scratch);
    conn_account(c);
    if (c->wire.len > 0)
        conn_mark_dirty(c);
    if (rc != LMQ_OK) {
        conn_transport_failed(c, rc);
        return LMQ_OK;
    }
    conn_process_input(c);
    /* Ciphertext the HTTP connection read but did not decrypt came along in the TLS session. */
    if (c->state != CONN_CLOSING && !c->blocked && net_transport_holds_input(&c->transport))
        conn_transport_input(c);
    return LMQ_OK;
}

/* A slow consumer to close: how much output it holds. */
struct conn_slow {
    struct conn *conn;
    size_t pending_bytes;
};

static int conn_slow_cmp(const void *a, const void *b)
{
    size_t x = ((const struct conn_slow *)a)->pending_bytes;
    size_t y = ((const struct conn_slow *)b)->pending_bytes;
    return x < y ? 1 : x > y ? -1 : 0; /* largest first */
}

/* Over budget: marks the connections holding more than their fair share, and returns in
 * slow[] (up to cap) those that have done so for the whole grace time. */
static size_t conn_find_slow(struct broker *b, uint64_t now_ms, struct conn_slow *slow, size_t cap)
{
    size_t count = 0;
    size_t guard = b->conn_count + 1;
    for (struct list_node *n = b->conns.next; n != &b->conns && guard-- > 0; n = n->next) {
        struct conn *c = list_entry(n, struct conn, all);
        size_t pending = conn_output_pending(c);
        if (pending < CONN_FAIR_OUTPUT_BYTES)
            continue;
        /* A mark from an earlier episode over the budget does not count: the grace time runs
         * within this one. */
        if (c->slow_since_ms == 0 || c->slow_since_ms < b->output_over_since_ms)
            c->slow_since_ms = now_ms;
        else if (now_ms - c->slow_since_ms >= b->cfg.limits.slow_consumer_grace_ms && count < cap)
            slow[count++] = (struct conn_slow){c, pending};
    }
    return count;
}

static void conn_budget_log(struct broker *b, const char *event)
{
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, event)) {
        lmq_log_uint(&line, "output_bytes", b->output_bytes);
        lmq_log_uint(&line, "max_memory_output_bytes", b->cfg.limits.max_memory_output_bytes);
        lmq_log_end(&line);
    }
}

void conn_memory_sweep(struct broker *b)
{
    const uint64_t budget = b->cfg.limits.max_memory_output_bytes;
    uint64_t now_ms = clock_now_ms(b);
    if (b->output_bytes < budget) {
        if (b->output_over_since_ms != 0)
            conn_budget_log(b, "output_budget_ok");
        b->output_over_since_ms = 0;
        return;
    }
    if (b->output_over_since_ms == 0) {
        b->output_over_since_ms = now_ms;
        b->stats.output_budget_exceeded++;
        conn_budget_log(b, "output_budget_exceeded");
    }
    struct conn_slow *slow = malloc(CONN_SLOW_SWEEP_MAX * sizeof(*slow));
    if (slow == NULL)
        return;
    size_t count = conn_find_slow(b, now_ms, slow, CONN_SLOW_SWEEP_MAX);
    qsort(slow, count, sizeof(*slow), conn_slow_cmp);
    /* Largest first, until what is left fits: a client that has not read its output for the
     * whole grace time can't be told (a DISCONNECT would queue behind it), so it is closed. */
    uint64_t left = b->output_bytes;
    LMQ_ASSERT(count <= CONN_SLOW_SWEEP_MAX && b->output_over_since_ms != 0);
    for (size_t i = 0; i < count && left >= budget; i++) {
        struct conn *c = slow[i].conn;
        left -= LMQ_MIN(left, (uint64_t)slow[i].pending_bytes);
        b->stats.slow_consumers_closed++;
        char detail[96];
        snprintf(detail, sizeof(detail), "output_bytes=%zu unread for %llu ms",
                 slow[i].pending_bytes, (unsigned long long)(now_ms - c->slow_since_ms));
        conn_log(c, LMQ_LOG_WARN, "slow_consumer_closed", detail);
        conn_log_disconnected(c, "server", "slow_consumer", -1, detail);
        conn_close(c);
    }
    free(slow);
}
