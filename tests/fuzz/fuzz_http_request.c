/*
 * libFuzzer target for the HTTP request glue (net/http.c's session over http-parser). The first
 * input byte picks a read size, the rest is what a client sends. Oracles:
 *   - the output is the same whether the input arrives whole or in reads of that size (the
 *     limits count bytes, never reads), Date lines aside; only a request with two faults may be
 *     refused for one or the other;
 *   - a feed takes everything it is given unless the session is closing, and a closing session
 *     writes nothing more;
 *   - the output is a sequence of well-formed responses: status line, Date, Content-Type and
 *     Content-Length, then that many body bytes (none after a HEAD), 100 Continue interim
 *     responses aside; one final response per route call, plus at most one refusal (>= 400)
 *     that closes the connection.
 * Any broken oracle aborts, which libFuzzer reports as a crash.
 *
 * fuzz-sources: src/net/http.c src/core/log.c src/core/buf.c src/net/transport.c src/net/tls.c
 * fuzz-sources: src/net/ws.c src/crypto/encoding.c src/core/map.c src/net/accept.c
 * fuzz-sources: src/net/forwarded.c src/core/config.c src/core/resolve.c src/net/address.c
 * fuzz-sources: src/core/config_webhooks.c src/core/config_plugins.c src/jobs/jobs_schedule.c
 * fuzz-sources: src/core/config_seal.c src/core/config_chain.c
 * fuzz-libs: -lhttp_parser -luv -lssl -lcrypto -lwslay -linih -lpthread
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lmq.h"
#include "core/log.h"
#include "net/http.h"

#include "fuzz_check.h"

#define FUZZ_OUT_MAX_BYTES (4u * 1024u * 1024u)
/* Route calls remembered; a request is at least 16 bytes, so inputs never get near. */
#define FUZZ_CALLS_MAX 65536

struct run {
    uint8_t *out;
    size_t len;
    size_t route_calls;
    bool head[FUZZ_CALLS_MAX]; /* call i was a HEAD: its response has no body */
    bool closing;
};

/* Answers by the path's first letter, so the fuzzer can reach every kind of response. */
static int fuzz_route(void *ctx, const struct http_request *req, struct http_response *resp,
                      struct lmq_buf *out)
{
    struct run *r = ctx;
    CHECK(req->method != NULL && req->path != NULL);
    CHECK(req->body_len == 0 || req->body != NULL);
    CHECK((req->query == NULL) == (req->query_len == 0) || req->query != NULL);
    CHECK(r->route_calls < FUZZ_CALLS_MAX);
    r->head[r->route_calls++] = strcmp(req->method, "HEAD") == 0;
    const char *v = NULL;
    size_t v_len = 0;
    if (http_request_header(req, "x-a", &v, &v_len)) {
        CHECK(v != NULL);
    }
    char c = req->path_len > 1 ? req->path[1] : '/';
    switch (c) {
    case 'e':
        return LMQ_EIO; /* -> 500 */
    case 'n':
        resp->status = 404;
        return 0;
    case 'm':
        resp->status = 405;
        resp->allow = "GET";
        return 0;
    case 'b':
        resp->content_type = "application/octet-stream";
        return lmq_buf_append(out, req->body, req->body_len, HTTP_RESPONSE_BODY_MAX_BYTES);
    default:
        return lmq_buf_printf(out, HTTP_RESPONSE_BODY_MAX_BYTES, "%s %.*s", req->method,
                              (int)req->path_len, req->path);
    }
}

/*
 * Blanks every Date value (the only part that depends on the clock) in place, so lengths and
 * offsets stay as they are. A body that happens to hold such a line is blanked in both runs.
 */
static void blank_dates(uint8_t *buf, size_t len)
{
    static const size_t date_len = 29; /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    for (size_t i = 0; i + 8 + date_len + 2 <= len; i++) {
        uint8_t *v = buf + i + 8;
        if (memcmp(buf + i, "\r\nDate: ", 8) == 0 && memcmp(v + date_len - 4, " GMT\r\n", 6) == 0) {
            memset(v, 'D', date_len);
        }
    }
}

static void feed(const uint8_t *data, size_t len, size_t step, struct run *r)
{
    static const struct http_limits limits = {
        .max_header_bytes = 512,
        .max_body_bytes = 1024,
        .idle_timeout_ms = 1000,
        .request_timeout_ms = 1000,
        .max_connections = 1,
    };
    struct http_session *s = NULL;
    CHECK(http_session_new(&limits, fuzz_route, r, &s) == 0);
    for (size_t off = 0; off < len;) {
        size_t n = LMQ_MIN(step, len - off);
        size_t consumed = 0;
        bool was_closing = http_session_closing(s);
        http_session_feed(s, data + off, n, &consumed);
        CHECK(consumed <= n);
        CHECK(consumed == n || http_session_closing(s));
        const struct lmq_buf *o = http_session_output(s);
        CHECK(!was_closing || o->len == 0);
        CHECK(r->len + o->len <= FUZZ_OUT_MAX_BYTES);
        if (o->len > 0) {
            memcpy(r->out + r->len, o->data, o->len);
            r->len += o->len;
        }
        http_session_output_clear(s);
        off += n;
    }
    r->closing = http_session_closing(s);
    /* A request left hanging is answered 408 when its time runs out. */
    bool pending = http_session_in_request(s);
    size_t before = http_session_output(s)->len;
    http_session_expire(s);
    CHECK(!pending || r->closing || http_session_output(s)->len > before);
    http_session_free(s);
    blank_dates(r->out, r->len);
}

/*
 * Parses one response at *pos and moves past it; returns its status, or 0 when its body (with
 * or without one, by head_only) does not fit in what is left.
 */
static int check_response(const uint8_t *out, size_t len, size_t *pos, bool head_only)
{
    const uint8_t *p = out + *pos;
    size_t left = len - *pos;
    CHECK(left >= 12 && memcmp(p, "HTTP/1.1 ", 9) == 0);
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    CHECK(status >= 100 && status <= 599 && p[12] == ' ');
    const uint8_t *end = memmem(p, left, "\r\n\r\n", 4);
    CHECK(end != NULL);
    size_t head = (size_t)(end - p) + 4;
    if (status == 100) {
        *pos += head;
        return status;
    }
    const uint8_t *cl = memmem(p, head, "\r\nContent-Length: ", 18);
    CHECK(cl != NULL && memmem(p, head, "\r\nContent-Type: ", 16) != NULL);
    size_t body = head_only ? 0 : strtoul((const char *)cl + 18, NULL, 10);
    if (body > left - head) {
        return 0;
    }
    if (status >= 400 && body > 0 && memmem(p, head, "application/json", 16) != NULL) {
        CHECK(p[head] == '{' && memmem(p + head, body, "\"error\":", 8) != NULL);
    }
    *pos += head + body;
    return status;
}

/*
 * Walks every response: one per route call (in order), then at most one refusal. Sets *last_off
 * and *last_status to where the last final response starts and its status (0, 0 when none).
 */
static void check_output(const struct run *r, size_t *last_off, int *last_status)
{
    size_t pos = 0;
    size_t finals = 0;
    *last_off = 0;
    *last_status = 0;
    for (size_t guard = 0; pos < r->len; guard++) {
        CHECK(guard <= r->len);
        size_t start = pos;
        int status = 0;
        if (finals < r->route_calls) {
            status = check_response(r->out, r->len, &pos, r->head[finals]);
            CHECK(status != 0);
        } else {
            /* The refusal ends the output; after a HEAD it has no body. */
            status = check_response(r->out, r->len, &pos, false);
            if (status != 100 && pos != r->len) {
                pos = start;
                status = check_response(r->out, r->len, &pos, true);
            }
            CHECK(status == 100 || (status >= 400 && pos == r->len && r->closing));
        }
        if (status != 100) {
            finals++;
            *last_off = start;
            *last_status = status;
        }
    }
    CHECK(finals == r->route_calls || finals == r->route_calls + 1);
}

/* Statuses that refuse a request and close: which one a multi-fault request gets may depend on
 * how its bytes were split across reads. */
static bool is_refusal(int status)
{
    return status == 400 || status == 413 || status == 414 || status == 431 || status == 505;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *whole_out;
    static uint8_t *piece_out;
    if (size < 1) {
        return 0;
    }
    if (whole_out == NULL) {
        lmq_log_set_level(LMQ_LOG_ERROR); /* request timeouts log at info */
        whole_out = malloc(FUZZ_OUT_MAX_BYTES);
        piece_out = malloc(FUZZ_OUT_MAX_BYTES);
        CHECK(whole_out != NULL && piece_out != NULL);
    }
    size_t step = 1 + data[0] % 64;
    static struct run whole; /* static: the call record is large; head[] past route_calls is */
    static struct run piece; /* never read, so only the counters are reset */
    whole.out = whole_out;
    piece.out = piece_out;
    whole.len = piece.len = 0;
    whole.route_calls = piece.route_calls = 0;
    whole.closing = piece.closing = false;
    feed(data + 1, size - 1, size, &whole);
    feed(data + 1, size - 1, step, &piece);
    size_t whole_last = 0;
    size_t piece_last = 0;
    int whole_status = 0;
    int piece_status = 0;
    check_output(&whole, &whole_last, &whole_status);
    check_output(&piece, &piece_last, &piece_status);
    CHECK(whole.route_calls == piece.route_calls && whole.closing == piece.closing);
    if (whole.len == piece.len && memcmp(whole.out, piece.out, whole.len) == 0) {
        return 0;
    }
    /*
     * A request with two faults (say, a bad byte in a chunk and too many trailer bytes) may be
     * refused for either, depending on which the parser reports first for the reads it got:
     * everything before the refusal must be identical.
     */
    CHECK(whole_last == piece_last && memcmp(whole.out, piece.out, whole_last) == 0);
    CHECK(is_refusal(whole_status) && is_refusal(piece_status) && whole.closing);
    return 0;
}
