/*
 * WebSocket for MQTT: the upgrade handshake and the server side of a connection over wslay.
 *
 * Why wslay's frame API (wslay_frame_recv) and not its event API: the event API buffers whole
 * messages (up to max_recv_msg_length) and delivers them through on_msg_recv, or, unbuffered,
 * chunks through callbacks that cannot be refused - either way it cannot stop halfway through
 * a message when app_in is full, and its context (send queues, message buffers) lives as long
 * as the connection. The frame API hands back one chunk of one frame per call, so this module
 * decides after every chunk whether to go on (backpressure), sees each frame's header before its
 * payload is delivered (1009 before a large message is read), and knows when wslay holds no
 * bytes, which lets it free wslay's frame context (a 4 KiB input buffer) while the connection is
 * idle. The rules above framing (fragment sequence, control frames, close codes, UTF-8 of close
 * reasons) are checked here; wslay checks lengths (control payload <= 125, minimal encodings).
 *
 * Server frames are written here (2, 4 or 10 header bytes, never masked) rather than with
 * wslay_frame_send, which would need the frame context, and its 4 KiB, on every send.
 */
#include "net/ws.h"

#include "crypto/encoding.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_GUID_BYTES 36u
/* Sec-WebSocket-Key: base64 of 16 bytes is 22 characters and "==". */
#define WS_KEY_RAW_BYTES 16
#define WS_KEY_B64_BYTES 24u
/* SHA-1 digest and its base64 (28 characters). */
#define WS_SHA1_BYTES 20u
#define WS_ACCEPT_B64_BYTES 28u
/* Tokens looked at in one comma-separated header; a longer list counts as not having the token. */
#define WS_LIST_TOKENS_MAX 32u
/* Most frame chunks wslay hands back per byte it holds or is given, plus the final call. */
#define WS_FEED_STEPS_SLACK 2u

/* Frame opcodes (RFC 6455 §5.2). */
enum ws_opcode {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

struct ws_session {
    size_t max_message_bytes;
    /* wslay's frame parser; NULL while no bytes are in flight (it holds a 4 KiB buffer). */
    wslay_frame_context_ptr frame;
    uint64_t wire_given;  /* bytes handed to the frame context by ws_recv_cb */
    uint64_t wire_parsed; /* bytes of headers and payload it has handed back */
    /* Input of the feed in progress, read by ws_recv_cb. */
    const uint8_t *src;
    size_t src_len;
    size_t src_off;
    /* The frame being received: its first chunk has been seen. */
    bool in_frame;
    uint8_t frame_opcode;
    uint64_t frame_len;
    uint64_t frame_off;
    /* A binary message whose final fragment has not arrived yet. */
    bool in_message;
    uint64_t message_bytes;
    /* Payload of the control frame being received. */
    uint8_t ctrl[WS_CONTROL_PAYLOAD_MAX_BYTES];
    size_t ctrl_len;
    /* Backpressure: client bytes not handed to wslay yet, and payload app_in had no room for. */
    struct lmq_buf backlog;
    struct lmq_buf held;
    /* The last parse stopped because app_in was full, not for want of input: what wslay holds
     * (wire_given - wire_parsed) is part of the backlog. */
    bool stalled;
    bool close_sent;
    bool close_received;
    bool failed;
};

/* ---- handshake ---- */

static bool ws_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Strips blanks from both ends of v[0..*len). */
static const char *ws_trim(const char *v, size_t *len)
{
    while (*len > 0 && ws_is_blank(v[0])) {
        v++;
        (*len)--;
    }
    while (*len > 0 && ws_is_blank(v[*len - 1]))
        (*len)--;
    return v;
}

/* True when the comma-separated list v[0..len) holds token (ASCII case-insensitive or exact). */
static bool ws_list_has(const char *v, size_t len, const char *token, bool nocase)
{
    LMQ_ASSERT(token != NULL && token[0] != '\0');
    if (v == NULL)
        return false;
    size_t token_len = strlen(token);
    size_t pos = 0;
    for (size_t n = 0; n < WS_LIST_TOKENS_MAX && pos <= len; n++) {
        const char *comma = memchr(v + pos, ',', len - pos);
        size_t end = comma != NULL ? (size_t)(comma - v) : len;
        size_t item_len = end - pos;
        const char *item = ws_trim(v + pos, &item_len);
        if (item_len == token_len && (nocase ? strncasecmp(item, token, token_len) == 0
                                             : memcmp(item, token, token_len) == 0))
            return true;
        if (comma == NULL)
            return false;
        pos = end + 1;
    }
    LMQ_ASSERT(pos <= len + 1);
    return false;
}

/* True when key is the base64 of exactly 16 bytes (22 characters, the last with 4 zero bits, then
 * "=="), as RFC 6455 §4.1 requires of Sec-WebSocket-Key. */
static bool ws_key_valid(const char *key, size_t len)
{
    uint8_t raw[WS_KEY_RAW_BYTES + 1];
    size_t n = 0;
    /* Strict decoding: canonical padding and zero unused bits, as crypto_b64_decode checks. */
    return key != NULL && len == WS_KEY_B64_BYTES &&
           crypto_b64_decode(key, len, raw, sizeof(raw), &n) == LMQ_OK && n == WS_KEY_RAW_BYTES;
}

/* accept = base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2). */
static int ws_accept_key(const char *key, size_t key_len, char accept[WS_ACCEPT_B64_BYTES])
{
    LMQ_ASSERT(key_len == WS_KEY_B64_BYTES);
    uint8_t input[WS_KEY_B64_BYTES + WS_GUID_BYTES];
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    memcpy(input, key, key_len);
    memcpy(input + key_len, WS_GUID, WS_GUID_BYTES);
    if (EVP_Digest(input, sizeof(input), md, &md_len, EVP_sha1(), NULL) != 1)
        return LMQ_ENOMEM;
    LMQ_ASSERT(md_len == WS_SHA1_BYTES);
    char text[WS_ACCEPT_B64_BYTES + 1]; /* + NUL */
    int rc = crypto_b64_encode(md, md_len, text, sizeof(text));
    LMQ_ASSERT(rc == LMQ_OK && strlen(text) == WS_ACCEPT_B64_BYTES);
    memcpy(accept, text, WS_ACCEPT_B64_BYTES);
    return LMQ_OK;
}

/* Returns 0 or the status to refuse req with, setting *reason. */
static int ws_upgrade_check(const struct ws_upgrade_request *req, const char **reason)
{
    LMQ_ASSERT(req != NULL && reason != NULL);
    size_t version_len = req->version_len;
    const char *version = req->version != NULL ? ws_trim(req->version, &version_len) : NULL;
    size_t key_len = req->key_len;
    const char *key = req->key != NULL ? ws_trim(req->key, &key_len) : NULL;
    if (req->method == NULL || strcmp(req->method, "GET") != 0) {
        *reason = "WebSocket upgrade requires GET";
        return 400;
    }
    if (!ws_list_has(req->upgrade, req->upgrade_len, "websocket", true)) {
        *reason = "Upgrade: websocket required";
        return 400;
    }
    if (!ws_list_has(req->connection, req->connection_len, "upgrade", true)) {
        *reason = "Connection: Upgrade required";
        return 400;
    }
    if (version == NULL || version_len != 2 || memcmp(version, "13", 2) != 0) {
        *reason = "Sec-WebSocket-Version must be 13";
        return 426;
    }
    if (!ws_key_valid(key, key_len)) {
        *reason = "Sec-WebSocket-Key must be the base64 of 16 bytes";
        return 400;
    }
    if (!ws_list_has(req->protocol, req->protocol_len, "mqtt", false)) {
        *reason = "subprotocol mqtt required";
        return 400;
    }
    return 0;
}

int ws_upgrade_accept(const struct ws_upgrade_request *req, char *out, size_t out_cap,
                      size_t *out_len, const char **reason)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: ";
    static const char tail[] = "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    LMQ_ASSERT(req != NULL && out != NULL && out_len != NULL && reason != NULL);
    *out_len = 0;
    *reason = NULL;
    int status = ws_upgrade_check(req, reason);
    if (status != 0)
        return status;
    size_t total = sizeof(head) - 1 + WS_ACCEPT_B64_BYTES + sizeof(tail) - 1;
    LMQ_ASSERT(total <= WS_UPGRADE_RESPONSE_MAX_BYTES);
    if (out_cap < total)
        return LMQ_ETOOBIG;
    size_t key_len = req->key_len;
    const char *key = ws_trim(req->key, &key_len);
    char accept[WS_ACCEPT_B64_BYTES];
    int rc = ws_accept_key(key, key_len, accept);
    if (rc != LMQ_OK)
        return rc;
    memcpy(out, head, sizeof(head) - 1);
    memcpy(out + sizeof(head) - 1, accept, WS_ACCEPT_B64_BYTES);
    memcpy(out + sizeof(head) - 1 + WS_ACCEPT_B64_BYTES, tail, sizeof(tail) - 1);
    *out_len = total;
    return LMQ_OK;
}

/* ---- frames out ---- */

/* Appends one unmasked frame (fin set) atomically: all of it or, on error, nothing. */
static int ws_frame_append(struct lmq_buf *wire_out, size_t wire_max, uint8_t opcode,
                           const uint8_t *payload, size_t len)
{
    LMQ_ASSERT(wire_out != NULL && (payload != NULL || len == 0));
    LMQ_ASSERT(opcode < 8 || len <= WS_CONTROL_PAYLOAD_MAX_BYTES);
    uint8_t hdr[WS_FRAME_HEADER_MAX_BYTES];
    size_t hdr_len = 2;
    hdr[0] = (uint8_t)(0x80u | opcode);
    if (len < 126) {
        hdr[1] = (uint8_t)len;
    } else if (len <= UINT16_MAX) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        hdr_len = 4;
    } else {
        hdr[1] = 127;
        for (size_t i = 0; i < 8; i++)
            hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hdr_len = 10;
    }
    if (len > SIZE_MAX - hdr_len)
        return LMQ_ELIMIT;
    int rc = lmq_buf_reserve(wire_out, hdr_len + len, wire_max);
    if (rc != LMQ_OK)
        return rc;
    memcpy(wire_out->data + wire_out->len, hdr, hdr_len);
    if (len > 0)
        memcpy(wire_out->data + wire_out->len + hdr_len, payload, len);
    wire_out->len += hdr_len + len;
    return LMQ_OK;
}

/* Codes an endpoint may put in a close frame (RFC 6455 §7.4.1-2). */
static bool ws_close_code_sendable(uint32_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static int ws_close_append(struct ws_session *w, uint32_t code, struct lmq_buf *wire_out,
                           size_t wire_max)
{
    LMQ_ASSERT(w != NULL && wire_out != NULL);
    LMQ_ASSERT(code == 0 || ws_close_code_sendable(code));
    if (w->close_sent)
        return LMQ_OK;
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    int rc = ws_frame_append(wire_out, wire_max, WS_OP_CLOSE, payload, code == 0 ? 0 : 2);
    if (rc == LMQ_OK)
        w->close_sent = true;
    return rc;
}

/* A protocol violation: queue the close with code, then refuse everything after. */
static int ws_fail(struct ws_session *w, uint32_t code, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(!w->failed);
    w->failed = true;
    int rc = ws_close_append(w, code, wire_out, wire_max);
    return rc != LMQ_OK ? rc : LMQ_EPROTO;
}

/* ---- frames in ---- */

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code points > 10FFFF). */
static bool ws_utf8_valid(const uint8_t *s, size_t len)
{
    LMQ_ASSERT(s != NULL || len == 0);
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n = 0;
        uint32_t cp = 0;
        uint32_t min = 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1fu;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0fu;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    LMQ_ASSERT(i == len);
    return true;
}

static ssize_t ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user_data)
{
    struct ws_session *w = user_data;
    LMQ_UNUSED(flags);
    LMQ_ASSERT(w != NULL && buf != NULL && w->src_off <= w->src_len);
    /* The backlog bound counts on wslay holding no more than this. */
    LMQ_ASSERT(len <= WS_PARSER_BUFFER_BYTES);
    size_t n = LMQ_MIN(len, w->src_len - w->src_off);
    if (n == 0)
        return WSLAY_ERR_WOULDBLOCK;
    memcpy(buf, w->src + w->src_off, n);
    w->src_off += n;
    w->wire_given += n;
    return (ssize_t)n;
}

static ssize_t ws_send_cb(const uint8_t *data, size_t len, int flags, void *user_data)
{
    /* Only wslay_frame_send calls it, and this module never does. */
    LMQ_UNUSED(data), LMQ_UNUSED(len), LMQ_UNUSED(flags), LMQ_UNUSED(user_data);
    LMQ_UNREACHABLE("wslay_frame_send is not used");
}

static int ws_genmask_cb(uint8_t *buf, size_t len, void *user_data)
{
    LMQ_UNUSED(buf), LMQ_UNUSED(len), LMQ_UNUSED(user_data);
    LMQ_UNREACHABLE("server frames are never masked");
}

/* Header bytes of a frame as wslay accepts it (minimal length encoding, mask key if masked). */
static uint64_t ws_header_bytes(uint64_t payload_len, bool masked)
{
    uint64_t n = 2 + (payload_len < 126 ? 0 : payload_len <= UINT16_MAX ? 2 : 8);
    return n + (masked ? 4 : 0);
}

/* Checks a frame's header when its first chunk arrives; returns 0 or the close code to fail
 * with. Sets the frame and message state. */
static uint32_t ws_frame_begin(struct ws_session *w, const struct wslay_frame_iocb *f)
{
    LMQ_ASSERT(!w->in_frame && !w->failed);
    LMQ_ASSERT(f->opcode < 16 && f->rsv < 8);
    if (!f->mask || f->rsv != 0)
        return WS_CLOSE_PROTOCOL_ERROR;
    switch (f->opcode) {
    case WS_OP_CONTINUATION:
    case WS_OP_BINARY:
        if ((f->opcode == WS_OP_CONTINUATION) != w->in_message)
            return WS_CLOSE_PROTOCOL_ERROR;
        if (f->payload_length > w->max_message_bytes - w->message_bytes)
            return WS_CLOSE_MESSAGE_TOO_BIG;
        w->in_message = !f->fin;
        break;
    case WS_OP_TEXT:
        /* MQTT is carried in binary frames only ([MQTT-6.0.0-1]). */
        return w->in_message ? WS_CLOSE_PROTOCOL_ERROR : WS_CLOSE_UNSUPPORTED_DATA;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        LMQ_ASSERT(f->payload_length <= WS_CONTROL_PAYLOAD_MAX_BYTES && f->fin);
        w->ctrl_len = 0;
        break;
    default:
        return WS_CLOSE_PROTOCOL_ERROR;
    }
    w->in_frame = true;
    w->frame_opcode = f->opcode;
    w->frame_len = f->payload_length;
    w->frame_off = 0;
    w->wire_parsed += ws_header_bytes(f->payload_length, true);
    return 0;
}

/* Appends what fits of data to app_in and the rest to held. */
static int ws_deliver(struct ws_session *w, const uint8_t *data, size_t len, struct lmq_buf *app_in,
                      size_t app_max)
{
    LMQ_ASSERT(app_in->len <= app_max);
    LMQ_ASSERT(w->held.len == 0 || len == 0);
    size_t n = LMQ_MIN(len, app_max - app_in->len);
    int rc = lmq_buf_append(app_in, data, n, app_max);
    if (rc != LMQ_OK)
        return rc;
    /* held holds at most one chunk: the loop stops as soon as it is non-empty. */
    return lmq_buf_append(&w->held, data + n, len - n, len - n);
}

/* A complete close frame from the peer: check it, then echo its code (RFC 6455 §5.5.1). */
static int ws_on_close(struct ws_session *w, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(w->frame_opcode == WS_OP_CLOSE && w->ctrl_len <= WS_CONTROL_PAYLOAD_MAX_BYTES);
    uint32_t code = 0;
    if (w->ctrl_len == 1)
        return ws_fail(w, WS_CLOSE_PROTOCOL_ERROR, wire_out, wire_max);
    if (w->ctrl_len >= 2) {
        code = ((uint32_t)w->ctrl[0] << 8) | w->ctrl[1];
        if (!ws_close_code_sendable(code))
            return ws_fail(w, WS_CLOSE_PROTOCOL_ERROR, wire_out, wire_max);
        if (!ws_utf8_valid(w->ctrl + 2, w->ctrl_len - 2))
            return ws_fail(w, WS_CLOSE_INVALID_PAYLOAD, wire_out, wire_max);
    }
    w->close_received = true;
    return ws_close_append(w, code, wire_out, wire_max);
}

/* The last chunk of the current frame has arrived. */
static int ws_frame_end(struct ws_session *w, bool fin, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(w->in_frame && w->frame_off == w->frame_len);
    w->in_frame = false;
    switch (w->frame_opcode) {
    case WS_OP_CONTINUATION:
    case WS_OP_BINARY:
        if (fin)
            w->message_bytes = 0;
        return LMQ_OK;
    case WS_OP_PING:
        if (w->close_sent)
            return LMQ_OK;
        return ws_frame_append(wire_out, wire_max, WS_OP_PONG, w->ctrl, w->ctrl_len);
    case WS_OP_PONG:
        return LMQ_OK; /* unsolicited or an answer: nothing to do either way */
    case WS_OP_CLOSE:
        return ws_on_close(w, wire_out, wire_max);
    default:
        LMQ_UNREACHABLE("ws_frame_begin lets no other opcode through");
    }
}

/* Takes one chunk wslay handed back. */
static int ws_on_chunk(struct ws_session *w, const struct wslay_frame_iocb *f,
                       struct lmq_buf *app_in, size_t app_max, struct lmq_buf *wire_out,
                       size_t wire_max)
{
    if (!w->in_frame) {
        uint32_t code = ws_frame_begin(w, f);
        if (code != 0)
            return ws_fail(w, code, wire_out, wire_max);
    }
    LMQ_ASSERT(f->data_length <= w->frame_len - w->frame_off);
    LMQ_ASSERT(f->opcode == w->frame_opcode);
    w->wire_parsed += f->data_length;
    w->frame_off += f->data_length;
    if (w->frame_opcode >= WS_OP_CLOSE) {
        memcpy(w->ctrl + w->ctrl_len, f->data, f->data_length);
        w->ctrl_len += f->data_length;
    } else {
        w->message_bytes += f->data_length;
        int rc = ws_deliver(w, f->data, f->data_length, app_in, app_max);
        if (rc != LMQ_OK)
            return rc;
    }
    if (w->frame_off < w->frame_len)
        return LMQ_OK;
    return ws_frame_end(w, f->fin != 0, wire_out, wire_max);
}

/* Runs wslay over w->src until it wants more input, app_in is full, or the session ends. */
static int ws_parse(struct ws_session *w, struct lmq_buf *app_in, size_t app_max,
                    struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(w->wire_given >= w->wire_parsed);
    if (w->frame == NULL) {
        static const struct wslay_frame_callbacks cbs = {ws_send_cb, ws_recv_cb, ws_genmask_cb};
        if (wslay_frame_context_init(&w->frame, &cbs, w) != 0)
            return LMQ_ENOMEM;
    }
    /* Every chunk takes at least one byte, held by wslay or given to it, except empty frames,
     * which take at least two header bytes. */
    uint64_t steps_max =
        (w->wire_given - w->wire_parsed) + (w->src_len - w->src_off) + WS_FEED_STEPS_SLACK;
    for (uint64_t step = 0;; step++) {
        LMQ_ASSERT(step <= steps_max);
        w->stalled = false;
        if (w->failed || w->close_received)
            return LMQ_OK;
        if (w->held.len > 0 || app_in->len >= app_max) {
            w->stalled = true;
            return LMQ_OK;
        }
        struct wslay_frame_iocb f;
        memset(&f, 0, sizeof(f));
        ssize_t r = wslay_frame_recv(w->frame, &f);
        if (r == WSLAY_ERR_WANT_READ)
            return LMQ_OK;
        if (r < 0)
            return ws_fail(w, WS_CLOSE_PROTOCOL_ERROR, wire_out, wire_max);
        int rc = ws_on_chunk(w, &f, app_in, app_max, wire_out, wire_max);
        if (rc != LMQ_OK)
            return rc;
    }
}

/* ---- session ---- */

int ws_session_new(size_t max_message_bytes, struct ws_session **out)
{
    LMQ_ASSERT(out != NULL);
    *out = NULL;
    if (max_message_bytes == 0 ||
        max_message_bytes > SIZE_MAX - WS_FRAME_HEADER_MAX_BYTES - WS_PARSER_BUFFER_BYTES)
        return LMQ_EINVAL;
    struct ws_session *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return LMQ_ENOMEM;
    w->max_message_bytes = max_message_bytes;
    *out = w;
    LMQ_ASSERT(w->frame == NULL && w->backlog.cap == 0);
    return LMQ_OK;
}

/* The bound of the session's own backlog buffers (backlog + held). */
static size_t ws_own_max(const struct ws_session *w)
{
    return w->max_message_bytes + WS_FRAME_HEADER_MAX_BYTES;
}

/* Moves what fits of held into app_in. */
static int ws_flush_held(struct ws_session *w, struct lmq_buf *app_in, size_t app_max)
{
    LMQ_ASSERT(app_in->len <= app_max);
    size_t n = LMQ_MIN(w->held.len, app_max - app_in->len);
    int rc = lmq_buf_append(app_in, w->held.data, n, app_max);
    if (rc != LMQ_OK)
        return rc;
    lmq_buf_consume(&w->held, n);
    if (w->held.len == 0)
        lmq_buf_release(&w->held);
    LMQ_ASSERT(app_in->len <= app_max);
    return LMQ_OK;
}

/* After a feed: keep what wslay was not given, and free what an idle session does not need. */
static int ws_settle(struct ws_session *w, bool from_backlog)
{
    LMQ_ASSERT(w->src_off <= w->src_len);
    size_t rest = w->src_len - w->src_off;
    int rc = LMQ_OK;
    if (from_backlog) {
        lmq_buf_consume(&w->backlog, w->src_off);
    } else if (rest > 0 && !w->failed && !w->close_received) {
        /* held never exceeds one chunk of one message, so it is below the bound. */
        rc = lmq_buf_append(&w->backlog, w->src + w->src_off, rest, ws_own_max(w) - w->held.len);
    }
    bool ended = w->failed || w->close_received;
    if (ended || w->backlog.len == 0)
        lmq_buf_release(&w->backlog); /* input after the end is dropped */
    w->src = NULL;
    w->src_len = w->src_off = 0;
    bool idle = !w->in_frame && w->wire_given == w->wire_parsed;
    if (w->frame != NULL && (ended || idle)) {
        wslay_frame_context_free(w->frame);
        w->frame = NULL;
        w->wire_given = w->wire_parsed = 0;
    }
    LMQ_ASSERT(w->wire_given >= w->wire_parsed);
    return rc;
}

int ws_session_feed(struct ws_session *w, const uint8_t *in, size_t len, struct lmq_buf *app_in,
                    size_t app_max, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(w != NULL && app_in != NULL && wire_out != NULL && (in != NULL || len == 0));
    LMQ_ASSERT(w->src == NULL && app_in->len <= app_max);
    if (w->failed)
        return LMQ_EPROTO;
    if (w->close_received)
        return LMQ_OK;
    bool from_backlog = w->backlog.len > 0;
    if (from_backlog) {
        /* The caller went on reading while backlogged: no room was promised for this. */
        int rc = LMQ_ELIMIT;
        if (len <= ws_own_max(w) - w->held.len - w->backlog.len)
            rc = lmq_buf_append(&w->backlog, in, len, ws_own_max(w) - w->held.len);
        if (rc != LMQ_OK) {
            w->failed = true;
            return rc;
        }
        w->src = w->backlog.data;
        w->src_len = w->backlog.len;
    } else {
        w->src = in;
        w->src_len = len;
    }
    w->src_off = 0;
    int rc = ws_flush_held(w, app_in, app_max);
    if (rc == LMQ_OK && w->held.len == 0 && (w->src_len > 0 || w->frame != NULL))
        rc = ws_parse(w, app_in, app_max, wire_out, wire_max);
    int settle_rc = ws_settle(w, from_backlog);
    LMQ_ASSERT(app_in->len <= app_max);
    rc = rc != LMQ_OK ? rc : settle_rc;
    if (rc != LMQ_OK)
        w->failed = true; /* bytes may have been lost: the stream cannot go on */
    return rc;
}

int ws_session_write(struct ws_session *w, const uint8_t *data, size_t len,
                     struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(w != NULL && wire_out != NULL);
    LMQ_ASSERT(data != NULL || len == 0);
    if (w->close_sent)
        return LMQ_EINVAL; /* RFC 6455 §5.5.1: no data frames after a Close */
    return ws_frame_append(wire_out, wire_max, WS_OP_BINARY, data, len);
}

int ws_session_close(struct ws_session *w, uint16_t code, struct lmq_buf *wire_out, size_t wire_max)
{
    LMQ_ASSERT(w != NULL && wire_out != NULL);
    if (!ws_close_code_sendable(code))
        return LMQ_EINVAL;
    int rc = ws_close_append(w, code, wire_out, wire_max);
    LMQ_ASSERT(rc != LMQ_OK || w->close_sent);
    return rc;
}

bool ws_session_close_received(const struct ws_session *w)
{
    LMQ_ASSERT(w != NULL);
    return w->close_received;
}

size_t ws_session_backlog_bytes(const struct ws_session *w)
{
    LMQ_ASSERT(w != NULL && w->wire_given >= w->wire_parsed);
    size_t in_parser = w->stalled ? (size_t)(w->wire_given - w->wire_parsed) : 0;
    LMQ_ASSERT(in_parser <= WS_PARSER_BUFFER_BYTES);
    return w->backlog.len + w->held.len + in_parser;
}

size_t ws_session_backlog_max_bytes(const struct ws_session *w)
{
    LMQ_ASSERT(w != NULL);
    return ws_own_max(w) + WS_PARSER_BUFFER_BYTES;
}

void ws_session_free(struct ws_session *w)
{
    if (w == NULL)
        return;
    if (w->frame != NULL)
        wslay_frame_context_free(w->frame);
    lmq_buf_release(&w->backlog);
    lmq_buf_release(&w->held);
    free(w);
}
