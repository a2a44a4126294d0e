/*
 * MQTT over WebSocket: the HTTP route that accepts the upgrade at /mqtt (subprotocol "mqtt"
 * required), and the hand-over of the upgraded socket from the HTTP server to a connection.
 */
#include "broker/broker_internal.h"

#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "net/forwarded.h"
#include "net/http.h"
#include "net/tls.h"
#include "net/ws.h"

/* Bytes of a refused Origin value written to the log (the rest is cut off). */
#define WEBSOCKET_ORIGIN_LOG_MAX_BYTES 200

/* The default port of an origin's scheme (0 when it is not a web scheme). */
static unsigned websocket_scheme_port(const char *scheme, size_t len)
{
    static const struct {
        const char *name;
        unsigned port;
    } schemes[] = {{"http", 80}, {"ws", 80}, {"https", 443}, {"wss", 443}};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(schemes); i++) {
        if (strlen(schemes[i].name) == len && strncasecmp(schemes[i].name, scheme, len) == 0)
            return schemes[i].port;
    }
    return 0;
}

/*
 * True when origin is the broker's own: host the literal address the connection arrived on
 * (or localhost when that is loopback), port the listener's. No page can run there (the HTTP
 * server serves JSON and text, never HTML), and a DNS-rebound page has its own host name in
 * its origin, so this is a program naming the server it connects to (paho-mqtt sends
 * "https://HOST:PORT" this way), not a page from somewhere else.
 */
static bool websocket_origin_is_self(const struct http_request *req, const char *origin, size_t len)
{
    if (req->local == NULL)
        return false;
    const char *sep = memmem(origin, len, "://", 3);
    unsigned port = sep != NULL ? websocket_scheme_port(origin, (size_t)(sep - origin)) : 0;
    if (port == 0)
        return false;
    const char *host = sep + 3;
    size_t host_len = len - (size_t)(host - origin);
    char addr[64] = "";
    uint16_t local_port = 0;
    struct sockaddr_storage local = *req->local;
    if (local.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&local, addr, sizeof(addr));
        local_port = ntohs(((struct sockaddr_in *)&local)->sin_port);
    } else if (local.ss_family == AF_INET6) {
        char ip[48] = "";
        uv_ip6_name((struct sockaddr_in6 *)&local, ip, sizeof(ip));
        snprintf(addr, sizeof(addr), "[%s]", ip);
        local_port = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
    }
    const char *names[] = {addr, net_sockaddr_is_loopback(&local) ? "localhost" : ""};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(names); i++) {
        char want[96];
        size_t n = strlen(names[i]);
        if (n == 0)
            continue;
        int w = snprintf(want, sizeof(want), "%s:%u", names[i], (unsigned)local_port);
        LMQ_ASSERT(w > 0 && (size_t)w < sizeof(want));
        if ((host_len == (size_t)w && strncasecmp(host, want, host_len) == 0) ||
            (local_port == port && host_len == n && strncasecmp(host, names[i], n) == 0))
            return true;
    }
    return false;
}

/*
 * A browser always sends Origin with a WebSocket upgrade (RFC 6455 section 4.1); other clients
 * usually don't. True when the request came from a page whose origin is not in [http]
 * allowed_origins, so that the socket's loopback address grants it nothing: any page the
 * user opens on the broker's host could otherwise use the anonymous access meant for local
 * programs. Several Origin fields are not a browser's doing and allow nothing either.
 */
static bool websocket_origin_foreign(const struct broker *b, const struct http_request *req)
{
    const struct lmq_http_config *h = &b->cfg.http_trust;
    const char *origin = NULL;
    size_t len = 0;
    if (!http_request_header_at(req, "Origin", 0, &origin, &len))
        return false; /* not a browser */
    const char *again = NULL;
    size_t again_len = 0;
    if (!http_request_header_at(req, "Origin", 1, &again, &again_len)) {
        if (websocket_origin_is_self(req, origin, len))
            return false;
        LMQ_ASSERT(h->allowed_origin_count <= LMQ_HTTP_ORIGINS_MAX);
        for (size_t i = 0; i < h->allowed_origin_count; i++) {
            const char *allowed = h->allowed_origins[i];
            if (strlen(allowed) == len && strncasecmp(allowed, origin, len) == 0)
                return false;
        }
    }
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "ws_origin_not_allowed")) {
        lmq_log_strn(&line, "origin", (const uint8_t *)origin,
                     LMQ_MIN(len, (size_t)WEBSOCKET_ORIGIN_LOG_MAX_BYTES));
        lmq_log_str(&line, "detail", "not loopback: credentials required");
        lmq_log_end(&line);
    }
    return true;
}

/*
 * Who the client is: the TCP peer, or, when the peer is a trusted proxy, what
 * X-Forwarded-For says (every field of it, in order). LMQ_EINVAL when a trusted proxy sent an
 * address that is not one.
 */
static int websocket_route_peer(const struct broker *b, const struct http_request *req,
                                struct conn_ws_peer *peer)
{
    const struct lmq_http_config *h = &b->cfg.http_trust;
    memset(peer, 0, sizeof(*peer));
    peer->foreign_origin = websocket_origin_foreign(b, req);
    if (req->peer == NULL || !net_forwarded_peer_trusted(h, req->peer))
        return LMQ_OK; /* X-Forwarded-For from anyone else is ignored */
    peer->forwarded = true;
    int rc = broker_http_forwarded_client(h, req, &peer->client);
    if (rc == LMQ_OK)
        peer->client_known = true;
    return rc == LMQ_EINVAL ? LMQ_EINVAL : LMQ_OK;
}

int websocket_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                    struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL && resp != NULL);
    struct ws_upgrade_request up = {.method = req->method};
    (void)http_request_header(req, "Upgrade", &up.upgrade, &up.upgrade_len);
    (void)http_request_header(req, "Connection", &up.connection, &up.connection_len);
    (void)http_request_header(req, "Sec-WebSocket-Key", &up.key, &up.key_len);
    (void)http_request_header(req, "Sec-WebSocket-Version", &up.version, &up.version_len);
    (void)http_request_header(req, "Sec-WebSocket-Protocol", &up.protocol, &up.protocol_len);
    if (b->stopping) {
        resp->status = 503;
        return 0;
    }
    char response[WS_UPGRADE_RESPONSE_MAX_BYTES];
    size_t response_len = 0;
    const char *reason = NULL;
    int status = ws_upgrade_accept(&up, response, sizeof(response), &response_len, &reason);
    if (status != 0) {
        struct lmq_log_line line;
        if (lmq_log_begin(&line, LMQ_LOG_INFO, "ws_upgrade_refused")) {
            lmq_log_int(&line, "status", status);
            lmq_log_str(&line, "detail", reason != NULL ? reason : "");
            lmq_log_end(&line);
        }
        if (status == 426)
            resp->extra_headers = "Sec-WebSocket-Version: 13\r\n";
        return http_error_json(resp, out, status, reason != NULL ? reason : "Bad Request");
    }
    struct conn_ws_peer peer;
    if (websocket_route_peer(b, req, &peer) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_WARN, "ws_upgrade_refused", "bad X-Forwarded-For from a trusted proxy");
        resp->status = 400;
        resp->content_type = "application/json";
        return http_body_printf(out, "{\"error\":400,\"reason\":\"bad X-Forwarded-For\"}");
    }
    _Static_assert(sizeof(peer) <= HTTP_UPGRADE_DATA_MAX_BYTES, "conn_ws_peer fits");
    memcpy(resp->upgrade_data, &peer, sizeof(peer));
    resp->upgrade_data_len = sizeof(peer);
    resp->status = 101;
    resp->upgraded = true;
    return lmq_buf_append(out, response, response_len, HTTP_RESPONSE_BODY_MAX_BYTES);
}

void websocket_upgrade(void *ctx, int fd, struct tls_session *tls, const uint8_t *early,
                       size_t early_len, const uint8_t *data, size_t data_len)
{
    struct broker *b = ctx;
    LMQ_ASSERT(b != NULL && fd >= 0);
    /* Only websocket_route accepts upgrades, and it always attaches the peer. */
    LMQ_ASSERT(data != NULL && data_len == sizeof(struct conn_ws_peer));
    struct conn_ws_peer peer;
    memcpy(&peer, data, sizeof(peer));
    /* On failure the connection is already closed and logged: nothing else to undo. */
    (void)conn_adopt_websocket(b, fd, tls, early, early_len, &peer);
}
