/*
 * WebSocket for MQTT through net/ws.h: the upgrade handshake (RFC 6455 §4.2 and its example),
 * every refusal, and the session fed with client frames built here by hand (masked with the
 * RFC's example key), checking the MQTT bytes delivered, the frames queued back, and the close
 * codes of each violation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "mqtt/mqtt_codec.h"
#include "net/ws.h"

#define MAX_MSG_BYTES (128u * 1024u)
#define APP_MAX_BYTES (256u * 1024u)
#define WIRE_MAX_BYTES (256u * 1024u)
#define BIG_PAYLOAD_BYTES 70000u
/* Enough for every client byte sequence built here. */
#define CLIENT_MAX_BYTES (BIG_PAYLOAD_BYTES + 4096u)
#define IDLE_SESSIONS 1000u

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- client frames ---- */

struct client {
    uint8_t *data;
    size_t len;
};

static void client_init(struct client *c)
{
    c->data = malloc(CLIENT_MAX_BYTES);
    assert_non_null(c->data);
    c->len = 0;
}

/* Appends one client frame: first byte from fin, rsv and opcode; masked unless told not to. */
static void client_frame_ex(struct client *c, bool fin, uint8_t rsv, uint8_t opcode, bool masked,
                            const void *payload, size_t len)
{
    assert_true(c->len + len + 14 <= CLIENT_MAX_BYTES);
    uint8_t *p = c->data + c->len;
    size_t n = 0;
    p[n++] = (uint8_t)((fin ? 0x80u : 0u) | (unsigned)(rsv << 4) | opcode);
    uint8_t mask_bit = masked ? 0x80u : 0u;
    if (len < 126) {
        p[n++] = (uint8_t)(mask_bit | len);
    } else if (len <= 0xffff) {
        p[n++] = (uint8_t)(mask_bit | 126u);
        p[n++] = (uint8_t)(len >> 8);
        p[n++] = (uint8_t)len;
    } else {
        p[n++] = (uint8_t)(mask_bit | 127u);
        for (int i = 7; i >= 0; i--)
            p[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memcpy(p + n, mask_key, 4);
        n += 4;
    }
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        p[n + i] = masked ? (uint8_t)(src[i] ^ mask_key[i % 4]) : src[i];
    c->len += n + len;
}

static void client_frame(struct client *c, bool fin, uint8_t opcode, const void *payload,
                         size_t len)
{
    client_frame_ex(c, fin, 0, opcode, true, payload, len);
}

static void client_close_frame(struct client *c, uint16_t code, const char *reason)
{
    uint8_t p[125];
    size_t rlen = strlen(reason);
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    memcpy(p + 2, reason, rlen);
    client_frame(c, true, 0x8, p, 2 + rlen);
}

/* ---- server frames ---- */

struct frame {
    uint8_t first;
    const uint8_t *payload;
    size_t len;
    size_t header_len;
};

/* Parses the server frame at buf[*pos]: never masked, complete. */
static struct frame server_frame(const struct lmq_buf *b, size_t *pos)
{
    struct frame f = {0};
    assert_true(*pos + 2 <= b->len);
    const uint8_t *p = b->data + *pos;
    f.first = p[0];
    assert_int_equal(p[1] & 0x80, 0); /* server frames are never masked */
    size_t len7 = p[1] & 0x7fu;
    f.header_len = 2;
    if (len7 == 126) {
        f.len = ((size_t)p[2] << 8) | p[3];
        f.header_len = 4;
    } else if (len7 == 127) {
        for (int i = 0; i < 8; i++)
            f.len = (f.len << 8) | p[2 + i];
        f.header_len = 10;
    } else {
        f.len = len7;
    }
    assert_true(*pos + f.header_len + f.len <= b->len);
    f.payload = p + f.header_len;
    *pos += f.header_len + f.len;
    return f;
}

/* Asserts that wire holds exactly one close frame, with code. */
static void assert_only_close(const struct lmq_buf *wire, uint16_t code)
{
    size_t pos = 0;
    struct frame f = server_frame(wire, &pos);
    assert_int_equal(pos, wire->len);
    assert_int_equal(f.first, 0x88);
    assert_int_equal(f.len, 2);
    assert_int_equal(((unsigned)f.payload[0] << 8) | f.payload[1], code);
}

/* ---- session fixture ---- */

struct sess {
    struct ws_session *w;
    struct lmq_buf app;
    struct lmq_buf wire;
};

static void sess_open(struct sess *s, size_t max_message_bytes)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(ws_session_new(max_message_bytes, &s->w), 0);
}

static int sess_feed(struct sess *s, const uint8_t *in, size_t len)
{
    return ws_session_feed(s->w, in, len, &s->app, APP_MAX_BYTES, &s->wire, WIRE_MAX_BYTES);
}

static void sess_close(struct sess *s)
{
    ws_session_free(s->w);
    lmq_buf_release(&s->app);
    lmq_buf_release(&s->wire);
}

static void fill_pattern(uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7u + (i >> 8));
}

/* ---- handshake ---- */

static struct ws_upgrade_request valid_request(void)
{
    struct ws_upgrade_request r = {0};
    r.method = "GET";
    r.upgrade = "websocket";
    r.upgrade_len = 9;
    r.connection = "Upgrade";
    r.connection_len = 7;
    r.key = "dGhlIHNhbXBsZSBub25jZQ==";
    r.key_len = 24;
    r.version = "13";
    r.version_len = 2;
    r.protocol = "mqtt";
    r.protocol_len = 4;
    return r;
}

static void test_upgrade_rfc6455_example_accept_key(void **state)
{
    (void)state;
    struct ws_upgrade_request r = valid_request();
    char out[WS_UPGRADE_RESPONSE_MAX_BYTES];
    size_t out_len = 0;
    const char *reason = "x";
    assert_int_equal(ws_upgrade_accept(&r, out, sizeof(out), &out_len, &reason), 0);
    assert_null(reason);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
    assert_int_equal(out_len, sizeof(want) - 1);
    assert_memory_equal(out, want, out_len);
}

static void test_upgrade_accepts_token_lists_and_blanks(void **state)
{
    (void)state;
    struct ws_upgrade_request r = valid_request();
    r.connection = "keep-alive, Upgrade";
    r.connection_len = strlen(r.connection);
    r.upgrade = "WebSocket";
    r.protocol = "mqttv3.1, mqtt";
    r.protocol_len = strlen(r.protocol);
    r.key = " dGhlIHNhbXBsZSBub25jZQ== ";
    r.key_len = strlen(r.key);
    char out[WS_UPGRADE_RESPONSE_MAX_BYTES];
    size_t out_len = 0;
    const char *reason = NULL;
    assert_int_equal(ws_upgrade_accept(&r, out, sizeof(out), &out_len, &reason), 0);
    assert_non_null(memmem(out, out_len, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28));
}

static void test_upgrade_out_too_small_is_etoobig(void **state)
{
    (void)state;
    struct ws_upgrade_request r = valid_request();
    char out[64];
    size_t out_len = 1;
    const char *reason = NULL;
    assert_int_equal(ws_upgrade_accept(&r, out, sizeof(out), &out_len, &reason), LMQ_ETOOBIG);
    assert_int_equal(out_len, 0);
}

/* Runs r through the handshake and checks the refusal and its reason. */
static void expect_refusal(const struct ws_upgrade_request *r, int status, const char *reason_part)
{
    char out[WS_UPGRADE_RESPONSE_MAX_BYTES];
    size_t out_len = 7;
    const char *reason = NULL;
    assert_int_equal(ws_upgrade_accept(r, out, sizeof(out), &out_len, &reason), status);
    assert_int_equal(out_len, 0);
    assert_non_null(reason);
    assert_non_null(strstr(reason, reason_part));
}

static void test_upgrade_refusals(void **state)
{
    (void)state;
    struct ws_upgrade_request r = valid_request();
    r.method = "POST";
    expect_refusal(&r, 400, "GET");

    r = valid_request();
    r.upgrade = NULL;
    r.upgrade_len = 0;
    expect_refusal(&r, 400, "Upgrade");
    r.upgrade = "h2c";
    r.upgrade_len = 3;
    expect_refusal(&r, 400, "Upgrade");

    r = valid_request();
    r.connection = "keep-alive, close";
    r.connection_len = strlen(r.connection);
    expect_refusal(&r, 400, "Connection");
    r.connection = NULL;
    r.connection_len = 0;
    expect_refusal(&r, 400, "Connection");

    r = valid_request();
    r.version = "8";
    r.version_len = 1;
    expect_refusal(&r, 426, "must be 13");
    r.version = NULL;
    r.version_len = 0;
    expect_refusal(&r, 426, "must be 13");
}

static void test_upgrade_refuses_bad_keys(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "dGhlIHNhbXBsZSBub25j",         /* 15 bytes */
        "dGhlIHNhbXBsZSBub25jZTE=",     /* 17 bytes */
        "dGhlIHNhbXBsZSBub25jZQ",       /* no padding */
        "dGhlIHNhbXBsZSBub2!jZQ==",     /* not base64 */
        "dGhlIHNhbXBsZSBub25jZR==",     /* non-zero bits in the padding */
        "dGhlIHNhbXBsZSBub25jZQ==dGhl", /* too long */
        "",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        struct ws_upgrade_request r = valid_request();
        r.key = bad[i];
        r.key_len = strlen(bad[i]);
        expect_refusal(&r, 400, "Sec-WebSocket-Key");
    }
    struct ws_upgrade_request r = valid_request();
    r.key = NULL;
    r.key_len = 0;
    expect_refusal(&r, 400, "Sec-WebSocket-Key");
}

static void test_upgrade_requires_mqtt_subprotocol(void **state)
{
    (void)state;
    static const char *const bad[] = {"MQTT", "mqttv3.1", "mqtt2, chat", "", " , "};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        struct ws_upgrade_request r = valid_request();
        r.protocol = bad[i];
        r.protocol_len = strlen(bad[i]);
        expect_refusal(&r, 400, "subprotocol mqtt required");
    }
    struct ws_upgrade_request r = valid_request();
    r.protocol = NULL;
    r.protocol_len = 0;
    expect_refusal(&r, 400, "subprotocol mqtt required");
}

/* ---- session: data ---- */

static void test_single_binary_frame_is_delivered(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    static const uint8_t pingreq[] = {0xc0, 0x00};
    client_frame(&c, true, 0x2, pingreq, sizeof(pingreq));
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_int_equal(s.app.len, sizeof(pingreq));
    assert_memory_equal(s.app.data, pingreq, sizeof(pingreq));
    assert_int_equal(s.wire.len, 0);
    assert_int_equal(ws_session_backlog_bytes(s.w), 0);
    assert_false(ws_session_close_received(s.w));
    free(c.data);
    sess_close(&s);
}

/* A message in three fragments with a ping between the first two. */
static void build_fragmented_with_ping(struct client *c, const uint8_t *msg, size_t len)
{
    size_t a = len / 3;
    size_t b = 2 * len / 3;
    client_frame(c, false, 0x2, msg, a);
    client_frame(c, true, 0x9, "hello?", 6);
    client_frame(c, false, 0x0, msg + a, b - a);
    client_frame(c, true, 0x0, msg + b, len - b);
}

static void test_fragmented_message_with_ping_between(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    uint8_t msg[300];
    fill_pattern(msg, sizeof(msg), 3);
    build_fragmented_with_ping(&c, msg, sizeof(msg));
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_int_equal(s.app.len, sizeof(msg));
    assert_memory_equal(s.app.data, msg, sizeof(msg));
    size_t pos = 0;
    struct frame f = server_frame(&s.wire, &pos);
    assert_int_equal(f.first, 0x8a); /* fin + pong */
    assert_int_equal(f.len, 6);
    assert_memory_equal(f.payload, "hello?", 6);
    assert_int_equal(pos, s.wire.len);
    free(c.data);
    sess_close(&s);
}

static void test_two_mqtt_packets_in_one_frame(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    /* PUBLISH QoS 0 topic "a/b" payload "hi", then PINGREQ. */
    static const uint8_t two[] = {0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i', 0xc0, 0x00};
    client_frame(&c, true, 0x2, two, sizeof(two));
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_int_equal(s.app.len, sizeof(two));
    uint8_t first = 0;
    uint32_t rem = 0;
    size_t hdr = 0;
    assert_int_equal(mqtt_fixed_header_parse(s.app.data, s.app.len, &first, &rem, &hdr), 0);
    assert_int_equal(first, 0x30);
    size_t second = hdr + rem;
    assert_int_equal(
        mqtt_fixed_header_parse(s.app.data + second, s.app.len - second, &first, &rem, &hdr), 0);
    assert_int_equal(first, 0xc0);
    assert_int_equal(second + hdr + rem, s.app.len);
    free(c.data);
    sess_close(&s);
}

static void test_one_mqtt_packet_split_over_two_messages(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    static const uint8_t pub[] = {0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'};
    client_frame(&c, true, 0x2, pub, 4);
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    uint8_t first = 0;
    uint32_t rem = 0;
    size_t hdr = 0;
    assert_int_equal(s.app.len, 4);
    assert_int_equal(mqtt_fixed_header_parse(s.app.data, s.app.len, &first, &rem, &hdr), 0);
    assert_true(hdr + rem > s.app.len); /* incomplete: the MQTT layer waits */
    c.len = 0;
    client_frame(&c, true, 0x2, pub + 4, sizeof(pub) - 4);
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_int_equal(s.app.len, sizeof(pub));
    assert_memory_equal(s.app.data, pub, sizeof(pub));
    free(c.data);
    sess_close(&s);
}

/* Feeding one byte at a time gives the same bytes and replies as feeding everything at once. */
static void test_byte_by_byte_feeding_matches_whole(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    uint8_t msg[1000];
    fill_pattern(msg, sizeof(msg), 11);
    build_fragmented_with_ping(&c, msg, sizeof(msg));
    client_frame(&c, true, 0x2, msg, 0); /* empty message */
    client_frame(&c, true, 0x2, msg, 200);
    client_frame(&c, true, 0xa, "unsolicited", 11);
    client_close_frame(&c, 1001, "bye");

    struct sess whole;
    struct sess bytes;
    sess_open(&whole, MAX_MSG_BYTES);
    sess_open(&bytes, MAX_MSG_BYTES);
    assert_int_equal(sess_feed(&whole, c.data, c.len), 0);
    for (size_t i = 0; i < c.len; i++)
        assert_int_equal(sess_feed(&bytes, c.data + i, 1), 0);
    assert_int_equal(whole.app.len, sizeof(msg) + 200);
    assert_memory_equal(whole.app.data, msg, sizeof(msg));
    assert_memory_equal(whole.app.data + sizeof(msg), msg, 200);
    assert_int_equal(bytes.app.len, whole.app.len);
    assert_memory_equal(bytes.app.data, whole.app.data, whole.app.len);
    assert_int_equal(bytes.wire.len, whole.wire.len);
    assert_memory_equal(bytes.wire.data, whole.wire.data, whole.wire.len);
    /* pong, then the echoed close */
    size_t pos = 0;
    assert_int_equal(server_frame(&whole.wire, &pos).first, 0x8a);
    struct frame f = server_frame(&whole.wire, &pos);
    assert_int_equal(f.first, 0x88);
    assert_int_equal(((unsigned)f.payload[0] << 8) | f.payload[1], 1001);
    assert_true(ws_session_close_received(bytes.w));
    free(c.data);
    sess_close(&whole);
    sess_close(&bytes);
}

static void test_extended_lengths_16_and_64_bit(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    uint8_t *big = malloc(BIG_PAYLOAD_BYTES);
    assert_non_null(big);
    fill_pattern(big, BIG_PAYLOAD_BYTES, 5);
    client_frame(&c, true, 0x2, big, 300);
    assert_int_equal(c.data[1], 0x80 | 126);
    size_t first_len = c.len;
    client_frame(&c, true, 0x2, big, BIG_PAYLOAD_BYTES);
    assert_int_equal(c.data[first_len + 1], 0x80 | 127);
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_int_equal(s.app.len, 300 + BIG_PAYLOAD_BYTES);
    assert_memory_equal(s.app.data, big, 300);
    assert_memory_equal(s.app.data + 300, big, BIG_PAYLOAD_BYTES);
    free(big);
    free(c.data);
    sess_close(&s);
}

/* ---- session: violations ---- */

/* Feeds c to a fresh session and expects EPROTO with exactly one close frame with code. */
static void expect_violation(const struct client *c, size_t max_message_bytes, uint16_t code)
{
    struct sess s;
    sess_open(&s, max_message_bytes);
    assert_int_equal(sess_feed(&s, c->data, c->len), LMQ_EPROTO);
    assert_only_close(&s.wire, code);
    assert_false(ws_session_close_received(s.w));
    /* A failed session takes nothing more. */
    size_t app_len = s.app.len;
    assert_int_equal(sess_feed(&s, c->data, c->len), LMQ_EPROTO);
    assert_int_equal(s.app.len, app_len);
    assert_int_equal(ws_session_write(s.w, (const uint8_t *)"x", 1, &s.wire, WIRE_MAX_BYTES),
                     LMQ_EINVAL);
    sess_close(&s);
}

static void test_unmasked_frame_closes_1002(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    client_frame_ex(&c, true, 0, 0x2, false, "\xc0\x00", 2);
    expect_violation(&c, MAX_MSG_BYTES, 1002);
    free(c.data);
}

static void test_text_frame_closes_1003(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x1, "hello", 5);
    expect_violation(&c, MAX_MSG_BYTES, 1003);
    free(c.data);
}

static void test_oversize_message_closes_1009(void **state)
{
    (void)state;
    uint8_t msg[1001];
    fill_pattern(msg, sizeof(msg), 1);
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x2, msg, 1001);
    expect_violation(&c, 1000, 1009);
    /* The same across fragments: 600 + 401 > 1000. */
    c.len = 0;
    client_frame(&c, false, 0x2, msg, 600);
    client_frame(&c, true, 0x0, msg, 401);
    expect_violation(&c, 1000, 1009);
    /* Exactly the limit passes. */
    c.len = 0;
    client_frame(&c, false, 0x2, msg, 600);
    client_frame(&c, true, 0x0, msg, 400);
    struct sess s;
    sess_open(&s, 1000);
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_int_equal(s.app.len, 1000);
    sess_close(&s);
    free(c.data);
}

static void test_reserved_bits_close_1002(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    for (uint8_t rsv = 1; rsv < 8; rsv++) {
        c.len = 0;
        client_frame_ex(&c, true, rsv, 0x2, true, "ab", 2);
        expect_violation(&c, MAX_MSG_BYTES, 1002);
    }
    free(c.data);
}

static void test_framing_violations_close_1002(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    uint8_t p[126] = {0};
    /* continuation without a message */
    client_frame(&c, true, 0x0, "ab", 2);
    expect_violation(&c, MAX_MSG_BYTES, 1002);
    /* a new binary message inside a fragmented one */
    c.len = 0;
    client_frame(&c, false, 0x2, "ab", 2);
    client_frame(&c, true, 0x2, "cd", 2);
    expect_violation(&c, MAX_MSG_BYTES, 1002);
    /* reserved opcodes */
    static const uint8_t ops[] = {0x3, 0x7, 0xb, 0xf};
    for (size_t i = 0; i < sizeof(ops); i++) {
        c.len = 0;
        client_frame(&c, true, ops[i], "ab", 2);
        expect_violation(&c, MAX_MSG_BYTES, 1002);
    }
    /* ping over 125 bytes, fragmented ping */
    c.len = 0;
    client_frame(&c, true, 0x9, p, 126);
    expect_violation(&c, MAX_MSG_BYTES, 1002);
    c.len = 0;
    client_frame(&c, false, 0x9, p, 1);
    expect_violation(&c, MAX_MSG_BYTES, 1002);
    free(c.data);
}

static void test_bad_close_payloads(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x8, "\x03", 1); /* one byte */
    expect_violation(&c, MAX_MSG_BYTES, 1002);
    static const uint16_t bad_codes[] = {999, 1004, 1005, 1006, 1015, 2999, 5000};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_codes); i++) {
        c.len = 0;
        client_close_frame(&c, bad_codes[i], "");
        expect_violation(&c, MAX_MSG_BYTES, 1002);
    }
    static const char *const bad_utf8[] = {"\xff", "\xc0\xaf", "\xed\xa0\x80", "ok\xe2\x82"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_utf8); i++) {
        c.len = 0;
        client_close_frame(&c, 1000, bad_utf8[i]);
        expect_violation(&c, MAX_MSG_BYTES, 1007);
    }
    free(c.data);
}

static void test_client_close_1000_is_echoed(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    client_close_frame(&c, 1000, "done \xe2\x9c\x93");
    client_frame(&c, true, 0x2, "late", 4); /* after close: dropped */
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_true(ws_session_close_received(s.w));
    assert_only_close(&s.wire, 1000);
    assert_int_equal(s.app.len, 0);
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_int_equal(s.app.len, 0);
    assert_only_close(&s.wire, 1000); /* no second close */
    assert_int_equal(ws_session_backlog_bytes(s.w), 0);
    free(c.data);
    sess_close(&s);
}

static void test_client_close_without_code_gets_empty_close(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x8, NULL, 0);
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_true(ws_session_close_received(s.w));
    assert_int_equal(s.wire.len, 2);
    assert_int_equal(s.wire.data[0], 0x88);
    assert_int_equal(s.wire.data[1], 0x00);
    free(c.data);
    sess_close(&s);
}

/* ---- session: output ---- */

static void test_write_length_encodings(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536};
    static const size_t header_lens[] = {2, 2, 2, 4, 4, 10};
    uint8_t *data = malloc(65536);
    assert_non_null(data);
    fill_pattern(data, 65536, 9);
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    for (size_t i = 0; i < LMQ_ARRAY_LEN(lens); i++) {
        s.wire.len = 0;
        assert_int_equal(ws_session_write(s.w, data, lens[i], &s.wire, WIRE_MAX_BYTES), 0);
        size_t pos = 0;
        struct frame f = server_frame(&s.wire, &pos);
        assert_int_equal(f.first, 0x82); /* fin + binary, no reserved bits */
        assert_int_equal(f.header_len, header_lens[i]);
        assert_int_equal(f.len, lens[i]);
        assert_int_equal(pos, s.wire.len);
        if (lens[i] > 0)
            assert_memory_equal(f.payload, data, lens[i]);
    }
    /* 125 / 126 / 65535 / 65536: the exact length bytes */
    s.wire.len = 0;
    assert_int_equal(ws_session_write(s.w, data, 126, &s.wire, WIRE_MAX_BYTES), 0);
    assert_memory_equal(s.wire.data, "\x82\x7e\x00\x7e", 4);
    s.wire.len = 0;
    assert_int_equal(ws_session_write(s.w, data, 65536, &s.wire, WIRE_MAX_BYTES), 0);
    assert_memory_equal(s.wire.data, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    free(data);
    sess_close(&s);
}

static void test_write_respects_wire_max_and_close(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    uint8_t data[200] = {0};
    assert_int_equal(ws_session_write(s.w, data, 200, &s.wire, 203), LMQ_ELIMIT);
    assert_int_equal(s.wire.len, 0);
    assert_int_equal(ws_session_write(s.w, data, 200, &s.wire, 204), 0);
    assert_int_equal(s.wire.len, 204);
    s.wire.len = 0;
    assert_int_equal(ws_session_close(s.w, 999, &s.wire, WIRE_MAX_BYTES), LMQ_EINVAL);
    assert_int_equal(ws_session_close(s.w, 1001, &s.wire, WIRE_MAX_BYTES), 0);
    assert_only_close(&s.wire, 1001);
    assert_int_equal(ws_session_close(s.w, 1000, &s.wire, WIRE_MAX_BYTES), 0);
    assert_only_close(&s.wire, 1001); /* once */
    assert_int_equal(ws_session_write(s.w, data, 1, &s.wire, WIRE_MAX_BYTES), LMQ_EINVAL);
    /* The peer's close reply completes the handshake without a second close. */
    struct client c;
    client_init(&c);
    client_close_frame(&c, 1001, "");
    assert_int_equal(sess_feed(&s, c.data, c.len), 0);
    assert_true(ws_session_close_received(s.w));
    assert_only_close(&s.wire, 1001);
    free(c.data);
    sess_close(&s);
}

static void test_pong_over_wire_max_is_elimit(void **state)
{
    (void)state;
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x9, "0123456789", 10);
    int rc = ws_session_feed(s.w, c.data, c.len, &s.app, APP_MAX_BYTES, &s.wire, 11);
    assert_int_equal(rc, LMQ_ELIMIT);
    assert_int_equal(s.wire.len, 0);
    free(c.data);
    sess_close(&s);
}

/* ---- backpressure ---- */

static void test_app_max_backpressure(void **state)
{
    (void)state;
    enum { MSG = 5000, APP_SMALL = 64 };
    uint8_t *msg = malloc(MSG);
    assert_non_null(msg);
    fill_pattern(msg, MSG, 21);
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x2, msg, 3000);
    client_frame(&c, true, 0x9, "p", 1);
    client_frame(&c, true, 0x2, msg + 3000, MSG - 3000);
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    uint8_t *got = malloc(MSG);
    assert_non_null(got);
    size_t got_len = 0;
    assert_int_equal(
        ws_session_feed(s.w, c.data, c.len, &s.app, APP_SMALL, &s.wire, WIRE_MAX_BYTES), 0);
    assert_int_equal(s.app.len, APP_SMALL);
    assert_true(ws_session_backlog_bytes(s.w) > 0);
    assert_int_equal(s.wire.len, 0); /* the ping sits behind the data */
    /* As the connection does: take app_in, and feed nothing more while backlogged. */
    for (size_t rounds = 0;; rounds++) {
        assert_true(rounds < MSG);
        assert_true(s.app.len <= APP_SMALL && got_len + s.app.len <= MSG);
        memcpy(got + got_len, s.app.data, s.app.len);
        got_len += s.app.len;
        s.app.len = 0;
        if (ws_session_backlog_bytes(s.w) == 0)
            break;
        assert_int_equal(ws_session_feed(s.w, NULL, 0, &s.app, APP_SMALL, &s.wire, WIRE_MAX_BYTES),
                         0);
    }
    assert_int_equal(got_len, MSG);
    assert_memory_equal(got, msg, MSG);
    assert_int_equal(ws_session_backlog_bytes(s.w), 0);
    size_t pos = 0;
    struct frame f = server_frame(&s.wire, &pos);
    assert_int_equal(f.first, 0x8a);
    assert_int_equal(pos, s.wire.len);
    free(got);
    free(msg);
    free(c.data);
    sess_close(&s);
}

/* Frames already inside wslay's buffer when app_in fills count as backlog: otherwise the caller
 * would wait for socket input that may never come while a complete packet sits undelivered. */
static void test_frames_in_parser_count_as_backlog(void **state)
{
    (void)state;
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x2, "\xc0\x00", 2);
    client_frame(&c, true, 0x2, "\xd0\x00", 2);
    struct sess s;
    sess_open(&s, MAX_MSG_BYTES);
    assert_int_equal(ws_session_feed(s.w, c.data, c.len, &s.app, 2, &s.wire, WIRE_MAX_BYTES), 0);
    assert_int_equal(s.app.len, 2);
    assert_memory_equal(s.app.data, "\xc0\x00", 2);
    assert_int_equal(ws_session_backlog_bytes(s.w), 8); /* the second frame, in wslay */
    s.app.len = 0;
    assert_int_equal(ws_session_feed(s.w, NULL, 0, &s.app, 2, &s.wire, WIRE_MAX_BYTES), 0);
    assert_int_equal(s.app.len, 2);
    assert_memory_equal(s.app.data, "\xd0\x00", 2);
    s.app.len = 0;
    assert_int_equal(ws_session_feed(s.w, NULL, 0, &s.app, 2, &s.wire, WIRE_MAX_BYTES), 0);
    assert_int_equal(ws_session_backlog_bytes(s.w), 0);
    assert_int_equal(s.app.len, 0);
    free(c.data);
    sess_close(&s);
}

static void test_backlog_bound_is_enforced(void **state)
{
    (void)state;
    enum { MAX_MSG = 100 };
    uint8_t msg[MAX_MSG] = {0};
    struct client c;
    client_init(&c);
    for (int i = 0; i < 3; i++)
        client_frame(&c, true, 0x2, msg, MAX_MSG);
    struct sess s;
    sess_open(&s, MAX_MSG);
    assert_int_equal(ws_session_backlog_max_bytes(s.w),
                     MAX_MSG + WS_FRAME_HEADER_MAX_BYTES + WS_PARSER_BUFFER_BYTES);
    /* app_in already full: everything would have to wait, more than the bound. */
    assert_int_equal(lmq_buf_append(&s.app, "x", 1, 1), 0);
    assert_int_equal(ws_session_feed(s.w, c.data, c.len, &s.app, 1, &s.wire, WIRE_MAX_BYTES),
                     LMQ_ELIMIT);
    sess_close(&s);
    /* One frame fits in the backlog; a second feed past the bound is refused. */
    sess_open(&s, MAX_MSG);
    assert_int_equal(lmq_buf_append(&s.app, "x", 1, 1), 0);
    size_t one = c.len / 3;
    assert_int_equal(ws_session_feed(s.w, c.data, one, &s.app, 1, &s.wire, WIRE_MAX_BYTES), 0);
    assert_int_equal(ws_session_backlog_bytes(s.w), one);
    assert_int_equal(ws_session_feed(s.w, c.data, one, &s.app, 1, &s.wire, WIRE_MAX_BYTES),
                     LMQ_ELIMIT);
    free(c.data);
    sess_close(&s);
}

/* ---- memory while idle ---- */

#if defined(__SANITIZE_ADDRESS__)
#define WS_TEST_MALLINFO 0 /* ASan's allocator does not report through mallinfo2 */
#else
#define WS_TEST_MALLINFO 1
#endif

#if WS_TEST_MALLINFO
/* Heap bytes held per session after n sessions were each fed client (then left idle). */
static size_t heap_per_session(const uint8_t *client, size_t len, struct ws_session **w, size_t n)
{
    struct lmq_buf app = {0};
    struct lmq_buf wire = {0};
    assert_int_equal(lmq_buf_reserve(&app, APP_MAX_BYTES, APP_MAX_BYTES), 0);
    assert_int_equal(lmq_buf_reserve(&wire, WIRE_MAX_BYTES, WIRE_MAX_BYTES), 0);
    size_t before = mallinfo2().uordblks;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ws_session_new(MAX_MSG_BYTES, &w[i]), 0);
        assert_int_equal(
            ws_session_feed(w[i], client, len, &app, APP_MAX_BYTES, &wire, WIRE_MAX_BYTES), 0);
        app.len = wire.len = 0;
    }
    size_t after = mallinfo2().uordblks;
    for (size_t i = 0; i < n; i++)
        ws_session_free(w[i]);
    lmq_buf_release(&app);
    lmq_buf_release(&wire);
    return after > before ? (after - before) / n : 0;
}

/* Idle sessions (between frames) hold no buffers; the control (a frame cut in its header) shows
 * the measure sees wslay's 4 KiB context when it is held. */
static void test_idle_session_holds_no_buffers(void **state)
{
    (void)state;
    struct ws_session **w = calloc(IDLE_SESSIONS, sizeof(*w));
    assert_non_null(w);
    struct client c;
    client_init(&c);
    client_frame(&c, true, 0x2,
                 "\x30\x07\x00\x03"
                 "a/bhi",
                 9);
    client_frame(&c, true, 0x9, "x", 1);
    size_t idle = heap_per_session(c.data, c.len, w, IDLE_SESSIONS);
    size_t mid_frame = heap_per_session(c.data, c.len + 1 - 7, w, IDLE_SESSIONS);
    assert_true(idle < 512);
    assert_true(mid_frame > 4096);
    free(c.data);
    free(w);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_rfc6455_example_accept_key),
        cmocka_unit_test(test_upgrade_accepts_token_lists_and_blanks),
        cmocka_unit_test(test_upgrade_out_too_small_is_etoobig),
        cmocka_unit_test(test_upgrade_refusals),
        cmocka_unit_test(test_upgrade_refuses_bad_keys),
        cmocka_unit_test(test_upgrade_requires_mqtt_subprotocol),
        cmocka_unit_test(test_single_binary_frame_is_delivered),
        cmocka_unit_test(test_fragmented_message_with_ping_between),
        cmocka_unit_test(test_two_mqtt_packets_in_one_frame),
        cmocka_unit_test(test_one_mqtt_packet_split_over_two_messages),
        cmocka_unit_test(test_byte_by_byte_feeding_matches_whole),
        cmocka_unit_test(test_extended_lengths_16_and_64_bit),
        cmocka_unit_test(test_unmasked_frame_closes_1002),
        cmocka_unit_test(test_text_frame_closes_1003),
        cmocka_unit_test(test_oversize_message_closes_1009),
        cmocka_unit_test(test_reserved_bits_close_1002),
        cmocka_unit_test(test_framing_violations_close_1002),
        cmocka_unit_test(test_bad_close_payloads),
        cmocka_unit_test(test_client_close_1000_is_echoed),
        cmocka_unit_test(test_client_close_without_code_gets_empty_close),
        cmocka_unit_test(test_write_length_encodings),
        cmocka_unit_test(test_write_respects_wire_max_and_close),
        cmocka_unit_test(test_pong_over_wire_max_is_elimit),
        cmocka_unit_test(test_app_max_backpressure),
        cmocka_unit_test(test_frames_in_parser_count_as_backlog),
        cmocka_unit_test(test_backlog_bound_is_enforced),
#if WS_TEST_MALLINFO
        cmocka_unit_test(test_idle_session_holds_no_buffers),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
