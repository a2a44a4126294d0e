/*
 * MQTT over WebSocket (RFC 6455), socket-free: the upgrade handshake of an already-parsed HTTP
 * request, and the server side of one connection after the 101 (binary frames carry the MQTT
 * byte stream; ping, pong and close are answered here). Frames are parsed with Debian's wslay.
 *
 * Bounds, and what happens at each:
 *   - a client message (all its fragments) over max_message_bytes -> close 1009, LMQ_EPROTO;
 *   - app_in is never grown past the caller's app_max: the bytes that do not fit stay in the
 *     session (the backlog) and are delivered by later calls, a call with len 0 included;
 *   - the backlog never exceeds ws_session_backlog_max_bytes(): the session's own buffers hold at
 *     most max_message_bytes plus one frame header (a feed that would push them past returns
 *     LMQ_ELIMIT), and wslay's input buffer (WS_PARSER_BUFFER_BYTES) holds the rest. The caller
 *     stops reading the socket while ws_session_backlog_bytes() > 0;
 *   - wire_out is never grown past the caller's wire_max: a reply that does not fit -> LMQ_ELIMIT;
 *   - idle memory: a session between frames holds no buffer at all (wslay's 4 KiB frame context,
 *     the backlog and the undelivered payload are allocated only while bytes are in flight).
 *
 * Single-threaded: a session is used by one thread at a time.
 */
#ifndef LMQ_WS_H
#define LMQ_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

/* Room that ws_upgrade_accept's out needs for the whole 101 response (it is 129 bytes). */
#define WS_UPGRADE_RESPONSE_MAX_BYTES 256u
/* Largest header of a frame: 2 + 8 bytes of extended length + 4 bytes of mask key. */
#define WS_FRAME_HEADER_MAX_BYTES 14u
/* wslay's frame parser reads into a buffer of this size (wslay_frame_context's ibuf). */
#define WS_PARSER_BUFFER_BYTES 4096u
/* Largest payload of a ping, pong or close frame (RFC 6455 §5.5). */
#define WS_CONTROL_PAYLOAD_MAX_BYTES 125u

/* Close codes this module sends (RFC 6455 §7.4.1). */
#define WS_CLOSE_NORMAL 1000u
#define WS_CLOSE_GOING_AWAY 1001u
#define WS_CLOSE_PROTOCOL_ERROR 1002u
#define WS_CLOSE_UNSUPPORTED_DATA 1003u
#define WS_CLOSE_INVALID_PAYLOAD 1007u
#define WS_CLOSE_MESSAGE_TOO_BIG 1009u

/* Header values of the upgrade request as found: not NUL-terminated, NULL when absent. */
struct ws_upgrade_request {
    const char *method; /* NUL-terminated ("GET", ...) */
    const char *upgrade;
    size_t upgrade_len;
    const char *connection;
    size_t connection_len;
    const char *key; /* Sec-WebSocket-Key */
    size_t key_len;
    const char *version; /* Sec-WebSocket-Version */
    size_t version_len;
    const char *protocol; /* Sec-WebSocket-Protocol (comma-separated list) */
    size_t protocol_len;
};

/*
 * Validates a WebSocket upgrade for MQTT (RFC 6455 §4.2.1). Returns 0 with the whole
 * "HTTP/1.1 101 Switching Protocols" response (Sec-WebSocket-Accept, Sec-WebSocket-Protocol: mqtt)
 * in out[0..*out_len) and *reason NULL; or an HTTP status to refuse with and *reason a static
 * string: 400 (not GET, Upgrade without websocket, Connection without upgrade, key not base64 of
 * 16 bytes, no "mqtt" in the subprotocol list), 426 (version not 13: the refusal must carry
 * "Sec-WebSocket-Version: 13"); or LMQ_ETOOBIG when out_cap < the response (see
 * WS_UPGRADE_RESPONSE_MAX_BYTES), LMQ_ENOMEM when hashing fails.
 */
int ws_upgrade_accept(const struct ws_upgrade_request *req, char *out, size_t out_cap,
                      size_t *out_len, const char **reason) LMQ_WUR;

struct ws_session;

/* Allocates the server side of one connection after its 101 (max_message_bytes >= 1). Returns 0
 * or LMQ_ENOMEM / LMQ_EINVAL. */
int ws_session_new(size_t max_message_bytes, struct ws_session **out) LMQ_WUR;

/*
 * Takes len bytes from the client (all of them: what cannot be delivered yet joins the backlog).
 * Appends the payload of binary messages, fragments included, to app_in (never past app_max) and
 * queues pongs and the close reply into wire_out (never past wire_max). Returns 0 (also once the
 * peer's close arrived: later input is dropped); LMQ_EPROTO on a protocol violation after queuing
 * a close frame with its code (1002 framing, 1003 text frame, 1007 bad UTF-8 in a close reason,
 * 1009 message too big) - send wire_out, then close the connection; LMQ_ELIMIT when the backlog
 * or wire_out would pass its bound; LMQ_ENOMEM. After any error the session only returns errors.
 */
int ws_session_feed(struct ws_session *w, const uint8_t *in, size_t len, struct lmq_buf *app_in,
                    size_t app_max, struct lmq_buf *wire_out, size_t wire_max) LMQ_WUR;

/* Appends data as one unmasked binary frame to wire_out. Returns 0, LMQ_ELIMIT (wire_out would
 * pass wire_max; nothing appended), LMQ_ENOMEM, or LMQ_EINVAL once a close frame was sent. */
int ws_session_write(struct ws_session *w, const uint8_t *data, size_t len,
                     struct lmq_buf *wire_out, size_t wire_max) LMQ_WUR;

/* Queues a close frame with code (1000-1003, 1007-1011, 3000-4999); a second call queues nothing.
 * Returns 0, LMQ_EINVAL (code not sendable), LMQ_ELIMIT or LMQ_ENOMEM. */
int ws_session_close(struct ws_session *w, uint16_t code, struct lmq_buf *wire_out,
                     size_t wire_max) LMQ_WUR;

/* True once the peer sent a valid close (its reply is queued): stop after flushing wire_out. */
bool ws_session_close_received(const struct ws_session *w);

/* Client bytes taken by ws_session_feed and held back because app_in was full: while > 0, stop
 * reading the socket and call ws_session_feed with len 0 once app_in has room. */
size_t ws_session_backlog_bytes(const struct ws_session *w);

/* The most the backlog may hold: max_message_bytes + WS_FRAME_HEADER_MAX_BYTES +
 * WS_PARSER_BUFFER_BYTES. */
size_t ws_session_backlog_max_bytes(const struct ws_session *w);

/* Frees the session and everything it holds; NULL is allowed. */
void ws_session_free(struct ws_session *w);

#endif
