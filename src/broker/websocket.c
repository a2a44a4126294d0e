/*
 * MQTT over WebSocket: the HTTP route that accepts the upgrade at /mqtt (subprotocol "mqtt"
 * required), and the hand-over of the upgraded socket from the HTTP server to a connection.
 */
#include "broker/broker_internal.h"

#include <string.h>
#include <unistd.h>

#include "net/http.h"
#include "net/tls.h"
#include "net/ws.h"

int broker_ws_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                    struct http_buf *out)
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
        resp->status = status;
        if (status == 426)
            resp->extra_headers = "Sec-WebSocket-Version: 13\r\n";
        resp->content_type = "application/json";
        return http_buf_printf(out, "{\"error\":%d,\"reason\":\"%s\"}", status,
                               reason != NULL ? reason : "Bad Request");
    }
    resp->status = 101;
    resp->upgraded = true;
    return http_buf_append(out, response, response_len);
}

void broker_http_upgrade(void *ctx, int fd, struct tls_session *tls, const uint8_t *early,
                         size_t early_len)
{
    struct broker *b = ctx;
    LMQ_ASSERT(b != NULL && fd >= 0);
    /* On failure the connection is already closed and logged: nothing else to undo. */
    (void)conn_adopt_websocket(b, fd, tls, early, early_len);
}

uint64_t broker_http_tls_failures(const struct broker *b)
{
    return http_server_tls_failures(b->http) + http_server_tls_failures(b->https);
}
