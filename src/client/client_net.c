/*
 * The client's sockets and timers on libuv: login over HTTP (one request per connection,
 * "Connection: close", the response parsed by http-parser), then MQTT 5 over TCP through the
 * project's codec. Any failure drops the connection and retries after a jittered exponential
 * backoff; the session logic (client_session.c) never sees a socket.
 *
 * Handles: the MQTT socket, the HTTP socket and three timers (backoff, tick, a bot's idle event
 * ack). closing_count counts close
 * callbacks still to come; the next attempt starts only once it is zero, so a handle is never
 * re-initialized while libuv still owns it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"

#define NET_TICK_MS 1000u
#define NET_RECEIVE_MAX 64u
#define NET_NONCE_MAX_BYTES 200u

enum net_http_step { NET_HTTP_CHALLENGE, NET_HTTP_TOKEN };

static void net__after_close(struct lmq_client *c);
static void net__on_backoff(uv_timer_t *t);
static void net__on_event_ack(uv_timer_t *t);
static void net__mqtt_start(struct lmq_client *c);
static void net__http_request(struct lmq_client *c, const char *path);

static void net__close_one(struct lmq_client *c, uv_handle_t *h);

static void net__on_close(uv_handle_t *h)
{
    struct lmq_client *c = h->data;
    LMQ_ASSERT(c->closing_count > 0);
    c->closing_count--;
    if (h == (uv_handle_t *)&c->http.tcp) {
        c->http.open = false;
        lmq_buf_release(&c->http.request);
        lmq_buf_release(&c->http.response_body);
    } else if (h == (uv_handle_t *)&c->tcp) {
        c->tcp_open = false;
        lmq_buf_release(&c->in);
    }
    if (c->state == CLIENT_CLOSING && c->closing_count == 0) {
        net__after_close(c);
    } else if (c->state == CLIENT_TCP && h == (uv_handle_t *)&c->http.tcp) {
        net__mqtt_start(c); /* the login's socket is gone: MQTT next */
    } else if (c->state == CLIENT_LOGIN && h == (uv_handle_t *)&c->http.tcp) {
        net__http_request(c, "/auth/token"); /* the challenge's socket is gone */
    }
}

static void net__close_one(struct lmq_client *c, uv_handle_t *h)
{
    if (uv_is_closing(h)) {
        return;
    }
    h->data = c;
    c->closing_count++;
    uv_close(h, net__on_close);
}

bool client_net_idle(const struct lmq_client *c)
{
    return c->closing_count == 0 && !c->tcp_open && !c->http.open && !c->timers_open;
}

/* Every handle is closed: wait, then try again (or stay stopped). */
static void net__after_close(struct lmq_client *c)
{
    LMQ_ASSERT(c->closing_count == 0);
    LMQ_ASSERT(!c->tcp_open && !c->http.open);
    c->out_queued_bytes = 0;
    if (c->stopping) {
        c->state = CLIENT_STOPPED;
        if (c->timers_open) {
            c->timers_open = false;
            net__close_one(c, (uv_handle_t *)&c->backoff_timer);
            net__close_one(c, (uv_handle_t *)&c->tick_timer);
            net__close_one(c, (uv_handle_t *)&c->event_ack_timer);
        }
        return;
    }
    uint64_t delay_ms = client_session_backoff_ms(c->backoff_attempt, (uint32_t)uv_hrtime());
    c->backoff_attempt += c->backoff_attempt < 32 ? 1 : 0;
    if (c->token_expired) {
        c->token_expired = false;
        delay_ms = 0; /* an expected end: no back-off */
    }
    c->state = CLIENT_BACKOFF;
    int rc = uv_timer_start(&c->backoff_timer, net__on_backoff, delay_ms, 0);
    LMQ_ASSERT(rc == 0); /* an initialized timer always starts */
}

/* Drops the connection; reports why unless report is false (said already). */
static void net__drop(struct lmq_client *c, int code, const char *why, bool report)
{
    LMQ_ASSERT(c != NULL && why != NULL);
    if (c->state == CLIENT_CLOSING || c->state == CLIENT_STOPPED) {
        return;
    }
    if (report && !c->stopping && !c->token_expired) {
        client_session_report(c, code < 0 ? code : LMQ_EIO, "connection lost: %s", why);
    }
    if (c->state == CLIENT_BACKOFF) {
        uv_timer_stop(&c->backoff_timer);
    }
    c->state = CLIENT_CLOSING;
    client_session_reset(c);
    if (c->tcp_open) {
        net__close_one(c, (uv_handle_t *)&c->tcp);
    }
    if (c->http.open) {
        net__close_one(c, (uv_handle_t *)&c->http.tcp);
    }
    if (c->closing_count == 0) {
        net__after_close(c);
    }
}

void client_net_drop(struct lmq_client *c, int code, const char *why)
{
    net__drop(c, code, why, true);
}

/*
 * A connect to the HTTP login server (http) or the MQTT server failed: said once per outage,
 * naming the address; before the first success since start with its own code (the address may
 * be wrong), after it as a lost connection. Then dropped, to retry after the backoff.
 */
static void net__unreachable(struct lmq_client *c, bool http, int status)
{
    LMQ_ASSERT(c != NULL && status < 0);
    LMQ_ASSERT(c->state == (http ? CLIENT_LOGIN : CLIENT_TCP));
    const struct sockaddr_storage *sa = http ? &c->http_addr : &c->mqtt_addr;
    char host[INET6_ADDRSTRLEN] = "?", why[CLIENT_ERR_MAX_BYTES];
    bool v6 = sa->ss_family == AF_INET6;
    uint16_t port = ntohs(v6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                             : ((const struct sockaddr_in *)sa)->sin_port);
    LMQ_UNUSED(uv_ip_name((const struct sockaddr *)sa, host, sizeof(host)));
    snprintf(why, sizeof(why), "cannot reach the %s at %s%s%s:%u: %s",
             http ? "HTTP login server" : "MQTT server", v6 ? "[" : "", host, v6 ? "]" : "",
             (unsigned)port, uv_strerror(status));
    int which = http ? 1 : 2;
    bool report = c->unreachable_said != which && !c->stopping;
    c->unreachable_said = which;
    if (report && !c->reached) {
        client_session_report(
            c, http ? LMQ_CLIENT_E_HTTP_UNREACHABLE : LMQ_CLIENT_E_MQTT_UNREACHABLE, "%s", why);
        report = false;
    }
    net__drop(c, LMQ_EIO, why, report);
}

void client_net_shutdown(struct lmq_client *c)
{
    c->stopping = true;
    if (c->state == CLIENT_STOPPED && c->timers_open) {
        net__after_close(c); /* closes the timers */
        return;
    }
    client_net_drop(c, 0, "stopping");
}

/* --- MQTT ------------------------------------------------------------------------------------- */

struct net_write {
    uv_write_t req;
    struct lmq_client *c;
    size_t len;
    uint8_t data[];
};

static void net__on_write(uv_write_t *req, int status)
{
    struct net_write *w = (struct net_write *)req;
    struct lmq_client *c = w->c;
    LMQ_ASSERT(c->out_queued_bytes >= w->len);
    c->out_queued_bytes -= w->len;
    free(w);
    if (status < 0) {
        client_net_drop(c, LMQ_EIO, uv_strerror(status));
        return;
    }
    if (c->state == CLIENT_READY) {
        int rc = client_session_pump(c); /* room again in the socket queue */
        if (rc != 0) {
            client_net_drop(c, rc, "cannot read the outbox");
        }
    }
}

/* c->tx for a real connection: encodes pkt and queues it on the socket. */
static int net__tx(struct lmq_client *c, const struct mqtt_packet *pkt)
{
    size_t size = 0, written = 0;
    if (!c->tcp_open || uv_is_closing((uv_handle_t *)&c->tcp)) {
        return LMQ_EIO;
    }
    int rc = mqtt_encoded_size(pkt, MQTT_V5, &size);
    LMQ_ASSERT(rc == 0); /* every packet we build is valid */
    struct net_write *w = malloc(sizeof(*w) + size);
    if (w == NULL) {
        return LMQ_ENOMEM;
    }
    rc = mqtt_encode(pkt, MQTT_V5, w->data, size, &written);
    LMQ_ASSERT(rc == 0 && written == size);
    w->c = c;
    w->len = size;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)size);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, net__on_write);
    if (rc != 0) {
        free(w);
        return LMQ_EIO;
    }
    c->out_queued_bytes += size;
    c->last_tx_ms = uv_now(c->loop);
    return 0;
}

static void net__send_connect(struct lmq_client *c)
{
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    struct mqtt_connect *k = &pkt.u.connect;
    k->protocol_version = MQTT_V5;
    k->clean_start = false; /* acks and inbox messages wait for us in the session */
    k->keep_alive_s = CLIENT_KEEPALIVE_S;
    k->client_id = (struct lmq_bytes){(const uint8_t *)c->client_id, strlen(c->client_id)};
    k->props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL) |
                       MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
                       MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
    k->props.session_expiry_interval_s = CLIENT_SESSION_EXPIRY_S;
    k->props.receive_maximum = NET_RECEIVE_MAX;
    k->props.maximum_packet_size = CLIENT_PACKET_MAX_BYTES;
    k->has_username = true;
    k->username = (struct lmq_bytes){(const uint8_t *)c->ident.id, CRYPTO_IDENTITY_ID_CHARS};
    k->has_password = true;
    k->password = (struct lmq_bytes){(const uint8_t *)c->token, strlen(c->token)};
    c->state = CLIENT_CONNACK;
    if (net__tx(c, &pkt) != 0) {
        client_net_drop(c, LMQ_EIO, "cannot send CONNECT");
    }
}

static int net__on_connack(struct lmq_client *c, const struct mqtt_connack *ack)
{
    if (ack->reason_code == MQTT_RC_BAD_USER_NAME_OR_PASSWORD ||
        ack->reason_code == MQTT_RC_NOT_AUTHORIZED) {
        c->token[0] = '\0'; /* refused: log in again */
    }
    if (ack->reason_code != MQTT_RC_SUCCESS) {
        client_session_report(c, LMQ_EPROTO, "server refused CONNECT (reason 0x%02x)",
                              ack->reason_code);
        return LMQ_EPROTO;
    }
    /* Every connect: pin the server's ledger key on first use, notice a changed one (reported
     * by the check). Not fatal when unreachable: the first receipt asks again. */
    int rc = client_receipt_key_load(c);
    if (rc == LMQ_EIO) {
        client_session_report(c, LMQ_EIO,
                              "cannot fetch the server's ledger key (asked again later)");
    }
    /* A server that lost or rewrote history is noticed on connect, before any ack. */
    rc = client_receipt_checkpoint_check(c);
    LMQ_UNUSED(rc); /* verdicts are reported through on_error; the application decides */
    if (c->stopping) {
        return LMQ_EPROTO; /* the application stopped the client from on_error */
    }
    return client_session_on_connack(c, ack);
}

/* Handles one complete packet; nonzero drops the connection. */
static int net__on_packet(struct lmq_client *c, const uint8_t *data, size_t len)
{
    struct mqtt_packet pkt;
    uint8_t reason = 0;
    if (mqtt_decode(data, len, MQTT_V5, &pkt, &reason) != 0) {
        return LMQ_EPROTO;
    }
    if (c->state == CLIENT_CONNACK) {
        return pkt.type == MQTT_CONNACK ? net__on_connack(c, &pkt.u.connack) : LMQ_EPROTO;
    }
    int rc = client_session_on_packet(c, &pkt);
    if (rc == 0 && c->state == CLIENT_READY) {
        c->backoff_attempt = 0;
        c->reached = true;
        c->unreachable_said = 0;
    }
    return rc;
}

static void net__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct lmq_client *c = h->data;
    /* Room for one more largest packet (plus its fixed header) at most. */
    size_t want = LMQ_MIN(suggested, (size_t)CLIENT_PACKET_MAX_BYTES + 8u);
    if (lmq_buf_reserve(&c->in, want, 2u * CLIENT_PACKET_MAX_BYTES) != 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS: the connection drops */
        return;
    }
    *buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void net__on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lmq_client *c = s->data;
    LMQ_UNUSED(buf);
    if (nread < 0) {
        client_net_drop(c, LMQ_EIO,
                        nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread));
        return;
    }
    c->in.len += (size_t)nread;
    c->last_rx_ms = uv_now(c->loop);
    size_t pos = 0;
    /* Each round consumes one whole packet (>= 2 bytes): bounded by the input length. */
    while (pos < c->in.len && c->state >= CLIENT_CONNACK && c->state <= CLIENT_READY) {
        uint8_t first = 0;
        uint32_t remaining = 0;
        size_t header = 0;
        int rc =
            mqtt_fixed_header_parse(c->in.data + pos, c->in.len - pos, &first, &remaining, &header);
        if (rc == LMQ_EAGAIN) {
            break;
        }
        if (rc != 0 || header + remaining > CLIENT_PACKET_MAX_BYTES) {
            client_net_drop(c, LMQ_EPROTO, "malformed or oversized packet from the server");
            return;
        }
        if (c->in.len - pos < header + remaining) {
            break;
        }
        rc = net__on_packet(c, c->in.data + pos, header + remaining);
        if (rc != 0) {
            client_net_drop(c, rc,
                            rc == LMQ_EAGAIN ? "application deferred an envelope or event"
                                             : "protocol error");
            return;
        }
        pos += header + remaining;
    }
    /* The events handled in this read share one commit. */
    if (client_events_flush(c) != 0) {
        client_net_drop(c, LMQ_EIO, "cannot commit handled events");
        return;
    }
    if (client_events_ack_due(c)) {
        /* (Re)started after every read: the ack goes out once events stop coming for a while
         * (a steady stream is acknowledged every LMQ_CLIENT_EVENT_ACK_EVERY events). */
        int trc =
            uv_timer_start(&c->event_ack_timer, net__on_event_ack, LMQ_CLIENT_EVENT_ACK_IDLE_MS, 0);
        LMQ_ASSERT(trc == 0); /* an initialized timer always starts */
    }
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        lmq_buf_consume(&c->in, pos);
    }
}

static void net__on_tcp_connect(uv_connect_t *req, int status)
{
    struct lmq_client *c = req->data;
    if (c->state != CLIENT_TCP) {
        return; /* dropped meanwhile; the close callback does the rest */
    }
    if (status < 0) {
        net__unreachable(c, false, status);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, net__on_alloc, net__on_read) != 0) {
        client_net_drop(c, LMQ_EIO, "cannot read from the MQTT socket");
        return;
    }
    c->last_rx_ms = uv_now(c->loop);
    net__send_connect(c);
}

static void net__mqtt_start(struct lmq_client *c)
{
    LMQ_ASSERT(!c->tcp_open && c->in.len == 0);
    c->state = CLIENT_TCP;
    c->tx = net__tx;
    if (uv_tcp_init(c->loop, &c->tcp) != 0) {
        client_net_drop(c, LMQ_EIO, "cannot create a socket");
        return;
    }
    c->tcp.data = c;
    c->tcp_open = true;
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&c->mqtt_addr,
                            net__on_tcp_connect);
    if (rc != 0) {
        client_net_drop(c, LMQ_EIO, uv_strerror(rc));
    }
}

/* --- login over HTTP -------------------------------------------------------------------------- */

static int net__http_on_body(http_parser *p, const char *at, size_t len)
{
    struct lmq_client *c = p->data;
    /* A bigger answer than any login answer is refused (the parser stops). */
    return lmq_buf_append(&c->http.response_body, at, len, CLIENT_HTTP_BODY_MAX_BYTES) == 0 ? 0 : 1;
}

static int net__http_on_complete(http_parser *p)
{
    struct lmq_client *c = p->data;
    c->http.complete = true;
    return 0;
}

/* The token's exp claim (the JWT is the server's; we only read when to log in again). */
static int64_t net__token_exp(const char *token)
{
    uint8_t claims[CRYPTO_JWT_MAX_BYTES];
    size_t claims_len = 0;
    int64_t exp_s = 0;
    const char *a = strchr(token, '.');
    const char *b = a != NULL ? strchr(a + 1, '.') : NULL;
    if (b == NULL ||
        crypto_b64url_decode(a + 1, (size_t)(b - a - 1), claims, sizeof(claims), &claims_len)) {
        return 0;
    }
    json_t *root = json_loadb((const char *)claims, claims_len, 0, NULL);
    if (json_is_integer(json_object_get(root, "exp"))) {
        exp_s = json_integer_value(json_object_get(root, "exp"));
    }
    json_decref(root);
    return exp_s;
}

/* Builds {"pub","nonce","sig"} for /auth/token from the challenge's nonce. */
static int net__token_body(struct lmq_client *c, const char *nonce)
{
    LMQ_ASSERT(strlen(nonce) < NET_NONCE_MAX_BYTES);
    char *text = client_login_token_json(&c->ident, c->pub_b64, nonce);
    c->http.next_body.len = 0;
    int rc = text == NULL ? LMQ_ENOMEM
                          : lmq_buf_append(&c->http.next_body, text, strlen(text) + 1,
                                           CLIENT_HTTP_REQUEST_MAX_BYTES);
    free(text);
    return rc;
}

/* Acts on a whole login response: next step, or drop with the server's reason. */
static void net__http_done(struct lmq_client *c)
{
    char why[CLIENT_ERR_MAX_BYTES];
    unsigned status = c->http.parser.status_code;
    json_t *root =
        json_loadb((const char *)c->http.response_body.data, c->http.response_body.len, 0, NULL);
    const char *nonce = json_string_value(json_object_get(root, "nonce"));
    const char *token = json_string_value(json_object_get(root, "token"));
    const char *reason = json_string_value(json_object_get(root, "reason"));
    int rc = LMQ_EPROTO;
    c->http.handled = true;
    if (status == 200 && c->http.step == NET_HTTP_CHALLENGE && nonce != NULL &&
        strlen(nonce) < NET_NONCE_MAX_BYTES) {
        rc = net__token_body(c, nonce);
        c->http.step = NET_HTTP_TOKEN; /* sent once this socket has closed */
    } else if (status == 200 && c->http.step == NET_HTTP_TOKEN && token != NULL &&
               strlen(token) <= CRYPTO_JWT_MAX_BYTES) {
        memcpy(c->token, token, strlen(token) + 1);
        c->token_exp_s = net__token_exp(token);
        c->state = CLIENT_TCP; /* MQTT once this socket has closed */
        rc = 0;
    }
    if (rc != 0) {
        snprintf(why, sizeof(why), "login failed: HTTP %u from %s%s%s", status,
                 c->http.step == NET_HTTP_CHALLENGE ? "/auth/challenge" : "/auth/token",
                 reason ? ": " : "", reason ? reason : "");
        json_decref(root);
        client_net_drop(c, LMQ_EPROTO, why);
        return;
    }
    json_decref(root);
    net__close_one(c, (uv_handle_t *)&c->http.tcp);
}

static void net__http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct lmq_client *c = h->data;
    LMQ_UNUSED(suggested);
    *buf = uv_buf_init(c->http.read_buf, sizeof(c->http.read_buf));
}

static void net__http_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lmq_client *c = s->data;
    if (c->state != CLIENT_LOGIN || c->http.handled) {
        return;
    }
    size_t len = nread > 0 ? (size_t)nread : 0;
    if (nread < 0 && nread != UV_EOF) {
        client_net_drop(c, LMQ_EIO, uv_strerror((int)nread));
        return;
    }
    /* len 0 at EOF tells the parser the body (if unframed) has ended. */
    size_t used = http_parser_execute(&c->http.parser, &c->http.settings, buf->base, len);
    if (used != len || HTTP_PARSER_ERRNO(&c->http.parser) != HPE_OK) {
        client_net_drop(c, LMQ_EPROTO, "login: malformed HTTP response");
    } else if (c->http.complete) {
        net__http_done(c);
    } else if (nread == UV_EOF) {
        client_net_drop(c, LMQ_EIO, "login: server closed the connection early");
    }
}

static void net__http_on_write(uv_write_t *req, int status)
{
    struct lmq_client *c = req->data;
    if (status < 0 && c->state == CLIENT_LOGIN) {
        client_net_drop(c, LMQ_EIO, uv_strerror(status));
    }
}

static void net__http_on_connect(uv_connect_t *req, int status)
{
    struct lmq_client *c = req->data;
    if (c->state != CLIENT_LOGIN) {
        return;
    }
    if (status < 0) {
        net__unreachable(c, true, status);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)c->http.request.data, (unsigned)c->http.request.len);
    c->http.write_req.data = c;
    if (uv_write(&c->http.write_req, (uv_stream_t *)&c->http.tcp, &buf, 1, net__http_on_write) ||
        uv_read_start((uv_stream_t *)&c->http.tcp, net__http_alloc, net__http_on_read)) {
        client_net_drop(c, LMQ_EIO, "login: cannot use the HTTP socket");
    }
}

/* POSTs c->http.next_body (a NUL-terminated JSON text) to path. */
static void net__http_request(struct lmq_client *c, const char *path)
{
    char head[CLIENT_HTTP_REQUEST_MAX_BYTES];
    char host[INET6_ADDRSTRLEN + 2] = "";
    LMQ_ASSERT(!c->http.open && c->state == CLIENT_LOGIN);
    LMQ_ASSERT(c->http.next_body.len > 0);
    size_t body_len = c->http.next_body.len - 1; /* without the NUL */
    const struct sockaddr_storage *a = &c->http_addr;
    uint16_t port = ntohs(a->ss_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port
                                                  : ((const struct sockaddr_in6 *)a)->sin6_port);
    LMQ_UNUSED(uv_ip_name((const struct sockaddr *)a, host, sizeof(host)));
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     path, a->ss_family == AF_INET6 ? "[" : "", host,
                     a->ss_family == AF_INET6 ? "]" : "", port, body_len);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(head));
    c->http.request.len = 0;
    c->http.response_body.len = 0;
    c->http.complete = false;
    c->http.handled = false;
    if (lmq_buf_append(&c->http.request, head, (size_t)n, 2 * CLIENT_HTTP_REQUEST_MAX_BYTES) ||
        lmq_buf_append(&c->http.request, c->http.next_body.data, body_len,
                       2 * CLIENT_HTTP_REQUEST_MAX_BYTES) ||
        uv_tcp_init(c->loop, &c->http.tcp) != 0) {
        client_net_drop(c, LMQ_ENOMEM, "login: cannot build the request");
        return;
    }
    c->http.open = true;
    c->http.tcp.data = c;
    http_parser_init(&c->http.parser, HTTP_RESPONSE);
    c->http.parser.data = c;
    http_parser_settings_init(&c->http.settings);
    c->http.settings.on_body = net__http_on_body;
    c->http.settings.on_message_complete = net__http_on_complete;
    c->http.connect_req.data = c;
    int rc = uv_tcp_connect(&c->http.connect_req, &c->http.tcp,
                            (const struct sockaddr *)&c->http_addr, net__http_on_connect);
    if (rc != 0) {
        client_net_drop(c, LMQ_EIO, uv_strerror(rc));
    }
}

static void net__login(struct lmq_client *c)
{
    c->state = CLIENT_LOGIN;
    c->http.step = NET_HTTP_CHALLENGE;
    json_t *body = json_pack("{s:s}", "pub", c->pub_b64);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    c->http.next_body.len = 0;
    int rc = text == NULL ? LMQ_ENOMEM
                          : lmq_buf_append(&c->http.next_body, text, strlen(text) + 1,
                                           CLIENT_HTTP_REQUEST_MAX_BYTES);
    free(text);
    json_decref(body);
    if (rc != 0) {
        client_net_drop(c, rc, "login: out of memory");
        return;
    }
    net__http_request(c, "/auth/challenge");
}

/* --- ledger GETs (blocking; see CLIENT_FETCH_TIMEOUT_MS) ------------------------------------ */

int client_net_fetch(struct lmq_client *c, const char *path, struct lmq_buf *body,
                     unsigned *status_out)
{
    LMQ_ASSERT(c != NULL && path != NULL && body != NULL && status_out != NULL);
    /* Our own envelopes need the login token and come in pages of up to 4 MiB. */
    bool own = strncmp(path, "/ledger/envelopes", 17) == 0;
    int rc = client_http_request(&c->http_addr, "GET", path, own ? c->token : NULL, NULL, body,
                                 own ? CLIENT_PAGE_BODY_MAX_BYTES : CLIENT_HTTP_BODY_MAX_BYTES,
                                 CLIENT_FETCH_TIMEOUT_MS, status_out);
    if (rc == 0 && *status_out != 200) {
        rc = *status_out >= 500 ? LMQ_EIO : LMQ_EPROTO;
    }
    return rc;
}

/* --- attempts and timers ---------------------------------------------------------------------- */

void client_net_connect(struct lmq_client *c)
{
    LMQ_ASSERT(c->state == CLIENT_STOPPED || c->state == CLIENT_BACKOFF);
    LMQ_ASSERT(c->closing_count == 0 && !c->tcp_open && !c->http.open);
    c->attempt_started_ms = uv_now(c->loop);
    int64_t now_s = (int64_t)time(NULL);
    if (c->token[0] != '\0' && c->token_exp_s - now_s > CLIENT_TOKEN_MARGIN_S) {
        net__mqtt_start(c);
    } else {
        c->token[0] = '\0';
        net__login(c);
    }
}

static void net__on_backoff(uv_timer_t *t)
{
    struct lmq_client *c = t->data;
    if (c->state == CLIENT_BACKOFF && !c->stopping) {
        client_net_connect(c);
    }
}

/* A bot's handled events went unacknowledged for LMQ_CLIENT_EVENT_ACK_IDLE_MS. */
static void net__on_event_ack(uv_timer_t *t)
{
    struct lmq_client *c = t->data;
    int rc = client_events_ack(c);
    if (rc != 0) {
        client_net_drop(c, rc, "cannot send the event ack");
    }
}

static void net__on_tick(uv_timer_t *t)
{
    struct lmq_client *c = t->data;
    uint64_t now_ms = uv_now(c->loop);
    bool connecting = c->state >= CLIENT_LOGIN && c->state <= CLIENT_SUBACK;
    if (connecting && now_ms - c->attempt_started_ms > CLIENT_CONNECT_TIMEOUT_MS) {
        client_net_drop(c, LMQ_EIO, "connect timed out");
        return;
    }
    if (c->state != CLIENT_READY) {
        return;
    }
    if (now_ms - c->last_rx_ms > (uint64_t)CLIENT_KEEPALIVE_S * 1500u) {
        client_net_drop(c, LMQ_EIO, "server silent past the keepalive");
        return;
    }
    if (now_ms - c->last_tx_ms >= (uint64_t)CLIENT_KEEPALIVE_S * 500u) {
        struct mqtt_packet ping = {.type = MQTT_PINGREQ};
        if (c->tx(c, &ping) != 0) {
            client_net_drop(c, LMQ_EIO, "cannot send PINGREQ");
        }
    }
}

int client_net_init(struct lmq_client *c)
{
    LMQ_ASSERT(c->loop != NULL && !c->timers_open);
    int rc = uv_timer_init(c->loop, &c->backoff_timer);
    if (rc != 0) {
        return LMQ_EIO;
    }
    rc = uv_timer_init(c->loop, &c->tick_timer);
    LMQ_ASSERT(rc == 0); /* the first one could be initialized on this loop */
    rc = uv_timer_init(c->loop, &c->event_ack_timer);
    LMQ_ASSERT(rc == 0);
    c->backoff_timer.data = c;
    c->tick_timer.data = c;
    c->event_ack_timer.data = c;
    c->timers_open = true;
    rc = uv_timer_start(&c->tick_timer, net__on_tick, NET_TICK_MS, NET_TICK_MS);
    LMQ_ASSERT(rc == 0);
    return 0;
}
