/*
 * The byte transforms between a socket and the protocol above it (MQTT or HTTP): optional TLS,
 * then optional WebSocket framing. Socket-free: the connection code reads and writes, this
 * module turns socket bytes into protocol bytes and back.
 *
 *   socket -> [TLS decrypt] -> [WebSocket unframe] -> protocol input
 *   protocol output -> [WebSocket frame] -> [TLS encrypt] -> socket
 *
 * Control bytes produced while decoding (TLS handshake records, alerts, WebSocket pongs and
 * close replies) are appended to the wire output in the order they are produced, so they
 * interleave correctly with encoded protocol output.
 *
 * Single-threaded; one per connection.
 */
#ifndef LMQ_NET_TRANSPORT_H
#define LMQ_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

struct tls_session;
struct ws_session;

/* TLS plaintext held for the WebSocket layer between two steps (wss only). */
#define NET_TRANSPORT_MID_MAX_BYTES (64u * 1024u)

struct net_transport {
    struct tls_session *tls; /* owned; NULL for plain TCP */
    struct ws_session *ws;   /* owned; NULL unless WebSocket */
    struct lmq_buf mid;      /* TLS plaintext not yet unframed (TLS + WebSocket only) */
    bool established;        /* the TLS handshake completed (always true without TLS) */
};

/* What a decode step observed besides bytes. */
struct net_transport_events {
    bool established_now; /* the TLS handshake completed during this call */
    bool peer_closed;     /* TLS close_notify or WebSocket close received: finish and close */
};

/*
 * Decodes socket bytes (len may be 0 to continue with bytes held inside after app was full).
 * Appends protocol bytes to app (never past app_max) and bytes for the peer to wire (never past
 * wire_max); scratch is working memory the caller lends (emptied on return). Returns 0,
 * LMQ_EPROTO (TLS or WebSocket violation: wire may hold an alert or close frame; send it, then
 * close), LMQ_ELIMIT (too much held inside: close) or LMQ_ENOMEM.
 */
int net_transport_decode(struct net_transport *t, const uint8_t *in, size_t len,
                         struct lmq_buf *app, size_t app_max, struct lmq_buf *wire, size_t wire_max,
                         struct lmq_buf *scratch, struct net_transport_events *ev) LMQ_WUR;
/* Like net_transport_decode for bytes that are already out of TLS (WebSocket only: e.g. what
 * followed the upgrade request on an HTTPS connection). */
int net_transport_decode_inner(struct net_transport *t, const uint8_t *in, size_t len,
                               struct lmq_buf *app, size_t app_max, struct lmq_buf *wire,
                               size_t wire_max, struct lmq_buf *scratch) LMQ_WUR;
/* Encodes protocol output into wire (one WebSocket frame, TLS records). Returns 0, LMQ_ELIMIT
 * when wire would pass wire_max (nothing appended), LMQ_EPROTO after a failure, LMQ_ENOMEM. */
int net_transport_encode(struct net_transport *t, const uint8_t *data, size_t len,
                         struct lmq_buf *wire, size_t wire_max, struct lmq_buf *scratch) LMQ_WUR;
/* Appends the polite goodbye: a WebSocket close frame with ws_code, then a TLS close_notify.
 * Best effort (a failed or unfinished session says nothing); never fails. */
void net_transport_finish(struct net_transport *t, uint16_t ws_code, struct lmq_buf *wire,
                          size_t wire_max, struct lmq_buf *scratch);
/* True when bytes wait inside (app was full): call decode with len 0 once app has room. */
bool net_transport_holds_input(const struct net_transport *t);
/* Frees the sessions and buffers; t is a plain transport again. */
void net_transport_release(struct net_transport *t);

#endif
