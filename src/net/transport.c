#include "net/transport.h"

#include "net/tls.h"
#include "net/ws.h"

int net_transport_decode_inner(struct net_transport *t, const uint8_t *in, size_t len,
                               struct lmq_buf *app, size_t app_max, struct lmq_buf *wire,
                               size_t wire_max, struct lmq_buf *scratch)
{
    LMQ_ASSERT(t != NULL && t->ws != NULL && scratch != NULL && scratch->len == 0);
    if (t->tls == NULL)
        return ws_session_feed(t->ws, in, len, app, app_max, wire, wire_max);
    /* The WebSocket layer's control replies (pong, close) are encrypted like everything else. */
    int rc = ws_session_feed(t->ws, in, len, app, app_max, scratch, wire_max);
    if (scratch->len > 0 && tls_session_established(t->tls)) {
        int wrc = tls_session_write(t->tls, scratch->data, scratch->len, wire, wire_max);
        if (rc == LMQ_OK)
            rc = wrc;
    }
    scratch->len = 0;
    return rc;
}

/* Decodes TLS, then WebSocket. */
static int transport_decode_wss(struct net_transport *t, const uint8_t *in, size_t len,
                                struct lmq_buf *app, size_t app_max, struct lmq_buf *wire,
                                size_t wire_max, struct lmq_buf *scratch)
{
    LMQ_ASSERT(t->tls != NULL && t->ws != NULL);
    int rc =
        tls_session_feed(t->tls, in, len, &t->mid, NET_TRANSPORT_MID_MAX_BYTES, wire, wire_max);
    if (rc != LMQ_OK || t->mid.len == 0)
        return rc;
    /* The WebSocket session takes every byte given (what doesn't fit in app waits inside it),
     * except when its own backlog is full (LMQ_ELIMIT: nothing taken). */
    rc = net_transport_decode_inner(t, t->mid.data, t->mid.len, app, app_max, wire, wire_max,
                                    scratch);
    if (rc != LMQ_ELIMIT)
        lmq_buf_consume(&t->mid, t->mid.len);
    if (t->mid.len == 0)
        lmq_buf_release(&t->mid); /* an idle connection holds no buffer */
    return rc;
}

int net_transport_decode(struct net_transport *t, const uint8_t *in, size_t len,
                         struct lmq_buf *app, size_t app_max, struct lmq_buf *wire, size_t wire_max,
                         struct lmq_buf *scratch, struct net_transport_events *ev)
{
    LMQ_ASSERT(t != NULL && app != NULL && wire != NULL && ev != NULL);
    LMQ_ASSERT(in != NULL || len == 0);
    *ev = (struct net_transport_events){0};
    int rc = LMQ_OK;
    if (t->tls != NULL && t->ws != NULL)
        rc = transport_decode_wss(t, in, len, app, app_max, wire, wire_max, scratch);
    else if (t->tls != NULL)
        rc = tls_session_feed(t->tls, in, len, app, app_max, wire, wire_max);
    else if (t->ws != NULL)
        rc = ws_session_feed(t->ws, in, len, app, app_max, wire, wire_max);
    else
        rc = lmq_buf_append(app, in, len, app_max);
    if (t->tls != NULL && !t->established && tls_session_established(t->tls)) {
        t->established = true;
        ev->established_now = true;
    }
    ev->peer_closed = (t->tls != NULL && tls_session_peer_closed(t->tls)) ||
                      (t->ws != NULL && ws_session_close_received(t->ws));
    return rc;
}

int net_transport_encode(struct net_transport *t, const uint8_t *data, size_t len,
                         struct lmq_buf *wire, size_t wire_max, struct lmq_buf *scratch)
{
    LMQ_ASSERT(t != NULL && wire != NULL && scratch != NULL);
    LMQ_ASSERT(data != NULL || len == 0);
    if (len == 0)
        return LMQ_OK;
    if (t->tls == NULL && t->ws == NULL)
        return lmq_buf_append(wire, data, len, wire_max);
    if (t->tls == NULL)
        return ws_session_write(t->ws, data, len, wire, wire_max);
    if (t->ws == NULL)
        return tls_session_write(t->tls, data, len, wire, wire_max);
    LMQ_ASSERT(scratch->len == 0);
    int rc = ws_session_write(t->ws, data, len, scratch, wire_max);
    if (rc == LMQ_OK)
        rc = tls_session_write(t->tls, scratch->data, scratch->len, wire, wire_max);
    scratch->len = 0;
    return rc;
}

void net_transport_finish(struct net_transport *t, uint16_t ws_code, struct lmq_buf *wire,
                          size_t wire_max, struct lmq_buf *scratch)
{
    LMQ_ASSERT(t != NULL && wire != NULL && scratch != NULL && scratch->len == 0);
    if (t->tls != NULL && !tls_session_established(t->tls))
        return; /* nothing can be said before the handshake */
    if (t->ws != NULL && !ws_session_close_received(t->ws)) {
        /* A failed write only means the peer hears no close frame before the socket closes. */
        int rc = ws_session_close(t->ws, ws_code, t->tls != NULL ? scratch : wire, wire_max);
        if (rc == LMQ_OK && t->tls != NULL)
            rc = tls_session_write(t->tls, scratch->data, scratch->len, wire, wire_max);
        scratch->len = 0;
        LMQ_UNUSED(rc);
    }
    if (t->tls != NULL) {
        int rc = tls_session_close_notify(t->tls, wire, wire_max);
        LMQ_UNUSED(rc); /* best effort, as above */
    }
}

bool net_transport_holds_input(const struct net_transport *t)
{
    LMQ_ASSERT(t != NULL);
    return t->mid.len > 0 || (t->tls != NULL && tls_session_buffered_bytes(t->tls) > 0) ||
           (t->ws != NULL && ws_session_backlog_bytes(t->ws) > 0);
}

void net_transport_release(struct net_transport *t)
{
    LMQ_ASSERT(t != NULL);
    if (t->tls != NULL)
        tls_session_free(t->tls);
    if (t->ws != NULL)
        ws_session_free(t->ws);
    lmq_buf_release(&t->mid);
    *t = (struct net_transport){0};
}
