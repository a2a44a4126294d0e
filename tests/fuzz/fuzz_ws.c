/*
 * libFuzzer target for the WebSocket session (net/ws.c over wslay's frame parser). The first
 * input byte picks where the rest is split in two reads and how small app_in's bound is; the
 * rest is what a client sends after the 101. Oracles:
 *   - app_in never grows past app_max, and the backlog never past its bound;
 *   - on the first LMQ_EPROTO, wire_out ends with a close frame carrying a protocol-error code
 *     (1002, 1003, 1007 or 1009); every byte of wire_out is a well-formed unmasked server frame;
 *   - read in two parts with a small app_max (draining app_in and feeding empty reads while
 *     backlogged, as the connection does), the session delivers the same MQTT bytes, queues
 *     the same frames and ends the same way as when it gets everything at once with room.
 * Any broken oracle aborts, which libFuzzer reports as a crash.
 *
 * fuzz-sources: src/net/ws.c src/core/buf.c src/crypto/encoding.c
 * fuzz-libs: -lwslay -lcrypto
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "net/ws.h"

#include "fuzz_check.h"

/* Small enough that 1009 is reachable within libFuzzer's default 4096-byte inputs. */
#define FUZZ_MAX_MESSAGE_BYTES 1024u
#define FUZZ_BIG_BYTES (1024u * 1024u)

struct outcome {
    struct lmq_buf app; /* everything delivered, in order */
    struct lmq_buf wire;
    int rc; /* first error, or 0 */
};

/* Walks wire: every frame unmasked, fin set, complete. Returns the offset of the last frame. */
static size_t check_wire(const struct lmq_buf *wire)
{
    size_t pos = 0;
    size_t last = 0;
    for (size_t guard = 0; pos < wire->len; guard++) {
        CHECK(guard <= wire->len);
        const uint8_t *p = wire->data + pos;
        CHECK(wire->len - pos >= 2);
        CHECK((p[0] & 0xf0) == 0x80 && (p[1] & 0x80) == 0);
        uint8_t op = p[0] & 0x0f;
        CHECK(op == 0x8 || op == 0xa); /* the session only answers: close and pong */
        size_t len = p[1] & 0x7fu;
        CHECK(len <= WS_CONTROL_PAYLOAD_MAX_BYTES);
        CHECK(wire->len - pos >= 2 + len);
        last = pos;
        pos += 2 + len;
    }
    return last;
}

static void check_close_code(const struct lmq_buf *wire)
{
    size_t last = check_wire(wire);
    CHECK(wire->len - last == 4 && wire->data[last] == 0x88);
    unsigned code = ((unsigned)wire->data[last + 2] << 8) | wire->data[last + 3];
    CHECK(code == 1002 || code == 1003 || code == 1007 || code == 1009);
}

/* One feed, then empty feeds while backlogged, moving app_in into o->app after each. */
static void feed_and_drain(struct ws_session *w, const uint8_t *in, size_t len, size_t app_max,
                           struct outcome *o)
{
    struct lmq_buf app_in = {0};
    for (size_t round = 0; o->rc == 0; round++) {
        CHECK(round <= len + FUZZ_MAX_MESSAGE_BYTES + 2);
        size_t wire_before = o->wire.len;
        int rc = ws_session_feed(w, round == 0 ? in : NULL, round == 0 ? len : 0, &app_in, app_max,
                                 &o->wire, FUZZ_BIG_BYTES);
        CHECK(app_in.len <= app_max);
        CHECK(ws_session_backlog_bytes(w) <= ws_session_backlog_max_bytes(w));
        CHECK(lmq_buf_append(&o->app, app_in.data, app_in.len, FUZZ_BIG_BYTES) == 0);
        app_in.len = 0;
        if (rc != 0) {
            o->rc = rc;
            if (rc == LMQ_EPROTO) {
                CHECK(o->wire.len > wire_before);
                check_close_code(&o->wire);
            }
        }
        if (ws_session_backlog_bytes(w) == 0)
            break;
    }
    lmq_buf_release(&app_in);
}

static void run(const uint8_t *data, size_t len, size_t split, size_t app_max, struct outcome *o)
{
    struct ws_session *w = NULL;
    CHECK(ws_session_new(FUZZ_MAX_MESSAGE_BYTES, &w) == 0);
    feed_and_drain(w, data, split, app_max, o);
    feed_and_drain(w, data + split, len - split, app_max, o);
    check_wire(&o->wire);
    if (ws_session_close_received(w))
        CHECK(o->rc == 0 && o->wire.len >= 2);
    ws_session_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    size_t split = len * data[0] / 255u;
    size_t app_max = 1 + (size_t)(data[0] & 0x3fu) * 5u;
    struct outcome whole = {0};
    struct outcome parts = {0};
    run(data + 1, len, len, FUZZ_BIG_BYTES, &whole);
    run(data + 1, len, split, app_max, &parts);
    /* A backlog over its bound is the caller's fault (it kept reading): nothing to compare. */
    if (parts.rc != LMQ_ELIMIT) {
        CHECK(whole.rc == parts.rc);
        CHECK(whole.app.len == parts.app.len);
        CHECK(whole.app.len == 0 || memcmp(whole.app.data, parts.app.data, whole.app.len) == 0);
        CHECK(whole.wire.len == parts.wire.len);
        CHECK(whole.wire.len == 0 || memcmp(whole.wire.data, parts.wire.data, whole.wire.len) == 0);
    }
    lmq_buf_release(&whole.app);
    lmq_buf_release(&whole.wire);
    lmq_buf_release(&parts.app);
    lmq_buf_release(&parts.wire);
    return 0;
}
