/*
 * HTTP server through net/http.h: a stub route behind a real listener on 127.0.0.1:0, driven
 * by blocking client sockets from the test thread while the uv loop runs in its own thread.
 * Responses are compared byte for byte (the Date line checked for shape, then removed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "core/lmq.h"
#include "net/http.h"

#define CLIENT_TIMEOUT_S 10
#define CLIENT_BUF_BYTES (2u * 1024u * 1024u)
#define WAIT_MAX_MS 5000
#define KB_BODY_BYTES 4096

#define OK_TEXT                                                                                    \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
#define OK_RESP OK_TEXT "\r\nok\n"
#define JSON_RESP                                                                                  \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"

struct fixture {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t call;
    uv_sem_t call_done;
    void (*call_fn)(struct fixture *f);
    struct http_server *server;
    bool running;
    uint16_t port;
    size_t count; /* written by count_conns on the loop thread */
    atomic_int route_calls;
};

/* A client socket with the bytes read and not yet taken. */
struct client {
    int fd;
    char *buf;
    size_t len;
};

/* ---------------------------------------------------------------- the stub route */

static bool path_is(const struct http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

static bool method_is(const struct http_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static int route_numbered(const struct http_request *req, struct http_response *resp,
                          struct lmq_buf *out)
{
    /* "/n/<digits>": 4 KiB starting with the number, so order and completeness show. */
    char pad[KB_BODY_BYTES];
    memset(pad, 'x', sizeof(pad));
    int rc = lmq_buf_printf(out, HTTP_RESPONSE_BODY_MAX_BYTES, "%.*s:", (int)(req->path_len - 3),
                            req->path + 3);
    if (rc == 0) {
        rc = lmq_buf_append(out, pad, KB_BODY_BYTES - out->len, HTTP_RESPONSE_BODY_MAX_BYTES);
    }
    resp->status = 200;
    return rc;
}

static int route(void *ctx, const struct http_request *req, struct http_response *resp,
                 struct lmq_buf *out)
{
    struct fixture *f = ctx;
    atomic_fetch_add(&f->route_calls, 1);
    if (path_is(req, "/ok")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
            resp->status = 405;
            resp->allow = "GET, HEAD";
            return 0;
        }
        return lmq_buf_append(out, "ok\n", 3, HTTP_RESPONSE_BODY_MAX_BYTES);
    }
    if (path_is(req, "/json")) {
        resp->content_type = "application/json";
        return lmq_buf_printf(out, HTTP_RESPONSE_BODY_MAX_BYTES, "{\"a\":%d}", 1);
    }
    if (path_is(req, "/echo") && method_is(req, "POST")) {
        resp->content_type = "application/octet-stream";
        return lmq_buf_append(out, req->body, req->body_len, HTTP_RESPONSE_BODY_MAX_BYTES);
    }
    if (path_is(req, "/query")) {
        const char *v = NULL;
        size_t v_len = 0;
        bool has = http_request_header(req, "x-name", &v, &v_len);
        return lmq_buf_printf(out, HTTP_RESPONSE_BODY_MAX_BYTES, "%.*s|%.*s", (int)req->query_len,
                              req->query ? req->query : "", has ? (int)v_len : 2, has ? v : "--");
    }
    if (path_is(req, "/fail")) {
        int rc = lmq_buf_append(out, "partial", 7, HTTP_RESPONSE_BODY_MAX_BYTES);
        return rc != 0 ? rc : LMQ_EIO;
    }
    if (path_is(req, "/big")) {
        static uint8_t chunk[65536];
        int rc = 0;
        for (int i = 0; rc == 0 && i < 1000; i++) {
            rc = lmq_buf_append(out, chunk, sizeof(chunk), HTTP_RESPONSE_BODY_MAX_BYTES);
        }
        return rc; /* LMQ_ELIMIT past HTTP_RESPONSE_BODY_MAX_BYTES -> 500 */
    }
    if (req->path_len > 3 && memcmp(req->path, "/n/", 3) == 0) {
        return route_numbered(req, resp, out);
    }
    resp->status = 404;
    return 0;
}

/* ---------------------------------------------------------------- the loop thread */

static void loop_thread(void *arg)
{
    struct fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void on_call(uv_async_t *a)
{
    struct fixture *f = a->data;
    f->call_fn(f);
    uv_sem_post(&f->call_done);
}

/* Runs fn on the loop thread and waits for it. */
static void loop_call(struct fixture *f, void (*fn)(struct fixture *f))
{
    f->call_fn = fn;
    assert_int_equal(uv_async_send(&f->call), 0);
    uv_sem_wait(&f->call_done);
}

static void do_close(struct fixture *f)
{
    http_server_close(f->server);
    f->server = NULL;
    uv_close((uv_handle_t *)&f->call, NULL);
}

static void do_stop_accepting(struct fixture *f)
{
    http_server_stop_accepting(f->server);
}

static void do_count(struct fixture *f)
{
    f->count = http_server_connection_count(f->server);
}

static struct http_limits default_limits(void)
{
    return (struct http_limits){
        .max_header_bytes = 1024,
        .max_body_bytes = 2048,
        .idle_timeout_ms = 10000,
        .request_timeout_ms = 10000,
        .max_connections = 16,
        .header_timeout_ms = 10000,
        .handshake_timeout_ms = 10000,
        .max_connections_per_address = 16,
        .max_handshakes_per_address = 16,
    };
}

static void start(struct fixture *f, const struct http_limits *limits)
{
    char bound[64];
    char err[256];
    int rc = http_server_start(&f->loop, "127.0.0.1", 0, limits, route, f, &f->server, bound,
                               sizeof(bound), err, sizeof(err));
    assert_int_equal(rc, 0);
    unsigned port = 0;
    assert_int_equal(sscanf(bound, "127.0.0.1:%u", &port), 1);
    assert_true(port > 0 && port <= UINT16_MAX);
    f->port = (uint16_t)port;
    assert_int_equal(uv_async_init(&f->loop, &f->call, on_call), 0);
    f->call.data = f;
    assert_int_equal(uv_thread_create(&f->thread, loop_thread, f), 0);
    f->running = true;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_sem_init(&f->call_done, 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->running) {
        loop_call(f, do_close);
        assert_int_equal(uv_thread_join(&f->thread), 0);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);             /* closes left by a failed start */
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed: nothing leaked */
    uv_sem_destroy(&f->call_done);
    free(f);
    return 0;
}

/* Polls the server's connection count until it equals want. */
static void wait_count(struct fixture *f, size_t want)
{
    for (int waited = 0; waited < WAIT_MAX_MS; waited += 10) {
        loop_call(f, do_count);
        if (f->count == want) {
            return;
        }
        usleep(10 * 1000);
    }
    fail_msg("connection count stayed %zu, wanted %zu", f->count, want);
}

/* ---------------------------------------------------------------- clients */

static struct client client_open(const struct fixture *f)
{
    struct client c = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    assert_true(c.fd >= 0);
    struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
    assert_int_equal(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    c.buf = malloc(CLIENT_BUF_BYTES);
    assert_non_null(c.buf);
    return c;
}

static void client_close(struct client *c)
{
    close(c->fd);
    free(c->buf);
    c->fd = -1;
    c->buf = NULL;
}

static void client_send(struct client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void client_send_str(struct client *c, const char *s)
{
    client_send(c, s, strlen(s));
}

/* Reads more; returns false at EOF (or a reset). A timeout fails the test. */
static bool client_fill(struct client *c)
{
    assert_true(c->len < CLIENT_BUF_BYTES);
    ssize_t n = recv(c->fd, c->buf + c->len, CLIENT_BUF_BYTES - c->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        fail_msg("no reply within %d s", CLIENT_TIMEOUT_S);
    }
    if (n <= 0) {
        return false;
    }
    c->len += (size_t)n;
    return true;
}

/* Removes the Date line after checking its shape (IMF-fixdate, 29 bytes). */
static void strip_date(char *resp, size_t *len)
{
    char *d = strstr(resp, "\r\nDate: ");
    assert_non_null(d);
    char *eol = strstr(d + 2, "\r\n");
    assert_non_null(eol);
    assert_int_equal((size_t)(eol - (d + 8)), 29);
    assert_memory_equal(eol - 4, " GMT", 4);
    size_t cut = (size_t)(eol - d);
    memmove(d, eol, *len - (size_t)(eol - resp) + 1);
    *len -= cut;
}

/*
 * Takes one whole response (head + Content-Length body) into out (NUL-terminated), without
 * its Date line. head_only: a response to HEAD, no body follows.
 */
static size_t client_response(struct client *c, char *out, size_t cap, bool head_only)
{
    size_t total = 0;
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t head = (size_t)(end - c->buf) + 4;
            size_t body = 0;
            char *cl = memmem(c->buf, head, "Content-Length: ", 16);
            if (cl != NULL && !head_only) {
                body = strtoul(cl + 16, NULL, 10);
            }
            total = head + body;
            if (c->len >= total) {
                break;
            }
        }
        assert_true(client_fill(c));
    }
    assert_true(total < cap);
    memcpy(out, c->buf, total);
    out[total] = '\0';
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    if (strncmp(out, "HTTP/1.1 100 ", 13) != 0) {
        strip_date(out, &total);
    }
    return total;
}

static void expect_response(struct client *c, const char *want)
{
    static char got[CLIENT_BUF_BYTES];
    client_response(c, got, sizeof(got), false);
    assert_string_equal(got, want);
}

/* The server closed: EOF with nothing more to read. */
static void expect_eof(struct client *c)
{
    assert_int_equal(c->len, 0);
    assert_false(client_fill(c));
    assert_int_equal(c->len, 0);
}

/* The JSON error response a refused request gets, with Connection: close when close. */
static const char *error_resp(int status, const char *reason, bool close)
{
    static char buf[512];
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"error\":%d,\"reason\":\"%s\"}", status, reason);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    n = snprintf(buf, sizeof(buf),
                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 "%s\r\n%s",
                 status, reason, n, close ? "Connection: close\r\n" : "", body);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return buf;
}

/* ---------------------------------------------------------------- tests */

static void test_keepalive_serves_two_requests_on_one_connection(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(&c, OK_RESP);
    client_send_str(&c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(&c, JSON_RESP);
    wait_count(f, 1); /* still open */
    client_close(&c);
    wait_count(f, 0);
    assert_int_equal(atomic_load(&f->route_calls), 2);
}

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                        "\r\n" /* a stray blank line between requests is tolerated */
                        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                        "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_response(&c, JSON_RESP);
    expect_response(&c, OK_RESP);
    expect_response(&c, error_resp(404, "Not Found", false));
    expect_response(&c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Length: 5\r\n\r\nhello");
    expect_response(&c, OK_RESP);
    client_close(&c);
}

static void test_pipelining_past_the_output_bound_keeps_order_and_loses_nothing(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    /* 400 x 4 KiB responses: far past the output high-water mark, sent before reading any. */
    enum { COUNT = 400 };
    static char reqs[COUNT * 32];
    size_t len = 0;
    for (int i = 0; i < COUNT; i++) {
        len += (size_t)snprintf(reqs + len, sizeof(reqs) - len, "GET /n/%d HTTP/1.1\r\n\r\n", i);
    }
    client_send(&c, reqs, len);
    static char got[CLIENT_BUF_BYTES];
    for (int i = 0; i < COUNT; i++) {
        size_t n = client_response(&c, got, sizeof(got), false);
        char want[32];
        snprintf(want, sizeof(want), "\r\n\r\n%d:x", i);
        assert_non_null(strstr(got, want));
        assert_non_null(strstr(got, "Content-Length: 4096\r\n"));
        assert_true(n > KB_BODY_BYTES);
    }
    client_close(&c);
}

static void test_header_bytes_over_limit_get_431_and_close(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    char req[4096];
    char big[2000];
    memset(big, 'a', sizeof(big));
    snprintf(req, sizeof(req), "GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: %.*s\r\n\r\n",
             (int)sizeof(big), big);
    client_send_str(&c, req);
    expect_response(&c, error_resp(431, "Request Header Fields Too Large", true));
    expect_eof(&c);
    client_close(&c);

    /* Many small headers: the count is bounded too. */
    c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_HEADERS_MAX; i++) {
        client_send_str(&c, "A: b\r\n");
    }
    client_send_str(&c, "\r\n");
    expect_response(&c, error_resp(431, "Request Header Fields Too Large", true));
    expect_eof(&c);
    client_close(&c);

    /* A head just under the limit is served. */
    c = client_open(f);
    snprintf(req, sizeof(req), "GET /ok HTTP/1.1\r\nX-Big: %.*s\r\n\r\n", 950, big);
    assert_true(strlen(req) <= limits.max_header_bytes);
    client_send_str(&c, req);
    expect_response(&c, OK_RESP);
    client_close(&c);
    assert_int_equal(atomic_load(&f->route_calls), 1);
}

static void test_body_over_limit_gets_413_and_close(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    /* Declared too long: refused before the body is read. */
    struct client c = client_open(f);
    client_send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2049\r\n\r\n");
    expect_response(&c, error_resp(413, "Payload Too Large", true));
    expect_eof(&c);
    client_close(&c);

    /* Chunked: refused once the chunks pass the limit. */
    c = client_open(f);
    client_send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[1024 + 16];
    memset(chunk, 'z', sizeof(chunk));
    memcpy(chunk, "400\r\n", 5);
    memcpy(chunk + 5 + 1024, "\r\n", 2);
    for (int i = 0; i < 3; i++) {
        client_send(&c, chunk, 5 + 1024 + 2);
    }
    expect_response(&c, error_resp(413, "Payload Too Large", true));
    expect_eof(&c);
    client_close(&c);

    /* Exactly the limit, chunked, is served. */
    c = client_open(f);
    client_send_str(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    client_send(&c, chunk, 5 + 1024 + 2);
    client_send(&c, chunk, 5 + 1024 + 2);
    client_send_str(&c, "0\r\n\r\n");
    static char got[8192];
    client_response(&c, got, sizeof(got), false);
    assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(got, "Content-Length: 2048\r\n"));
    client_close(&c);
}

static void test_garbage_gets_400_and_close(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /ok HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET /ok HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /ok HTTP/1.1\r\nBad Header\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        struct client c = client_open(f);
        client_send_str(&c, bad[i]);
        expect_response(&c, error_resp(400, "Bad Request", true));
        expect_eof(&c);
        client_close(&c);
    }
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/2.0\r\n\r\n");
    expect_response(&c, error_resp(505, "HTTP Version Not Supported", true));
    expect_eof(&c);
    client_close(&c);
    assert_int_equal(atomic_load(&f->route_calls), 0);
}

static void test_overlong_target_gets_414(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    limits.max_header_bytes = 3 * HTTP_URL_MAX_BYTES; /* the target's own bound comes first */
    start(f, &limits);
    static char req[2 * HTTP_URL_MAX_BYTES];
    memset(req, 'u', sizeof(req));
    memcpy(req, "GET /", 5);
    struct client c = client_open(f);
    client_send(&c, req, HTTP_URL_MAX_BYTES + 1 + 4);
    expect_response(&c, error_resp(414, "URI Too Long", true));
    expect_eof(&c);
    client_close(&c);
    /* Exactly the maximum is fine (404 from the route). */
    c = client_open(f);
    client_send(&c, req, HTTP_URL_MAX_BYTES + 4);
    client_send_str(&c, " HTTP/1.1\r\n\r\n");
    expect_response(&c, error_resp(404, "Not Found", false));
    client_close(&c);
}

static void test_slow_request_gets_408_and_close(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    limits.request_timeout_ms = 200;
    start(f, &limits);
    /* Headers that never finish. */
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\nHo");
    expect_response(&c, error_resp(408, "Request Timeout", true));
    expect_eof(&c);
    client_close(&c);
    /* A body that never finishes, after a request that was served in time. */
    c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_RESP);
    client_send_str(&c, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
    expect_response(&c, error_resp(408, "Request Timeout", true));
    expect_eof(&c);
    client_close(&c);
    wait_count(f, 0);
}

static void test_idle_connection_is_closed_without_a_response(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    limits.idle_timeout_ms = 200;
    start(f, &limits);
    struct client c = client_open(f);
    wait_count(f, 1);
    expect_eof(&c); /* nothing sent: closed after the idle timeout, nothing written */
    client_close(&c);
    /* Idle after a request, too. */
    c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_RESP);
    expect_eof(&c);
    client_close(&c);
    wait_count(f, 0);
}

static void test_header_deadline_bounds_slow_heads_and_silent_connections(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits(); /* idle and request timeouts: 10 s */
    limits.header_timeout_ms = 200;
    start(f, &limits);
    /* Connected and silent: closed at the header deadline, not the idle timeout. */
    struct client c = client_open(f);
    expect_eof(&c);
    client_close(&c);
    /* A head that never finishes: 408. */
    c = client_open(f);
    client_send_str(&c, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n");
    expect_response(&c, error_resp(408, "Request Timeout", true));
    expect_eof(&c);
    client_close(&c);
    /* On keep-alive, a later request's head is due 200 ms after its first byte. */
    c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_RESP);
    client_send_str(&c, "GET /ok HTTP/1.1\r\nHo");
    expect_response(&c, error_resp(408, "Request Timeout", true));
    expect_eof(&c);
    client_close(&c);
    wait_count(f, 0);
}

static void test_connections_past_the_per_address_cap_are_closed_at_accept(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    limits.max_connections_per_address = 2;
    start(f, &limits);
    struct client a = client_open(f);
    struct client b = client_open(f);
    wait_count(f, 2);
    struct client refused = client_open(f);
    expect_eof(&refused); /* closed at once, before any request: no slot for a 503 */
    client_close(&refused);
    client_send_str(&a, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&a, OK_RESP);
    client_close(&a);
    wait_count(f, 1);
    /* Room again for this address. */
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_RESP);
    client_close(&c);
    client_close(&b);
    wait_count(f, 0);
}

static void test_connections_past_the_maximum_get_503(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    limits.max_connections = 2;
    start(f, &limits);
    struct client a = client_open(f);
    struct client b = client_open(f);
    client_send_str(&a, "GET /ok HTTP/1.1\r\n\r\n");
    client_send_str(&b, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&a, OK_RESP);
    expect_response(&b, OK_RESP);
    struct client refused = client_open(f);
    client_send_str(&refused, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&refused, error_resp(503, "Service Unavailable", true));
    expect_eof(&refused);
    client_close(&refused);
    client_close(&a);
    wait_count(f, 1);
    /* Room again. */
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_RESP);
    client_close(&c);
    client_close(&b);
    wait_count(f, 0);
    assert_int_equal(atomic_load(&f->route_calls), 3);
}

static void test_connection_close_is_honoured_and_later_requests_ignored(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n"
                        "GET /json HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_TEXT "Connection: close\r\n\r\nok\n");
    expect_eof(&c);
    client_close(&c);
    assert_int_equal(atomic_load(&f->route_calls), 1);
}

static void test_http10_closes_unless_keep_alive(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.0\r\n\r\n");
    expect_response(&c, OK_TEXT "Connection: close\r\n\r\nok\n");
    expect_eof(&c);
    client_close(&c);
    c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect_response(&c, OK_TEXT "Connection: keep-alive\r\n\r\nok\n");
    client_send_str(&c, "GET /ok HTTP/1.0\r\n\r\n");
    expect_response(&c, OK_TEXT "Connection: close\r\n\r\nok\n");
    expect_eof(&c);
    client_close(&c);
}

static void test_route_statuses_get_json_errors(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "POST /ok HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    expect_response(&c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n"
                        "Content-Length: 43\r\nAllow: GET, HEAD\r\n\r\n"
                        "{\"error\":405,\"reason\":\"Method Not Allowed\"}");
    client_send_str(&c, "GET /nope HTTP/1.1\r\n\r\n");
    expect_response(&c, error_resp(404, "Not Found", false));
    /* A route error: 500, and its partial body is not sent. */
    client_send_str(&c, "GET /fail HTTP/1.1\r\n\r\n");
    expect_response(&c, error_resp(500, "Internal Server Error", false));
    client_send_str(&c, "GET /big HTTP/1.1\r\n\r\n");
    expect_response(&c, error_resp(500, "Internal Server Error", false));
    /* The connection is still good. */
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_RESP);
    client_close(&c);
}

static void test_head_gets_headers_only(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "HEAD /ok HTTP/1.1\r\n\r\nGET /json HTTP/1.1\r\n\r\n");
    static char got[4096];
    client_response(&c, got, sizeof(got), true);
    assert_string_equal(got, OK_TEXT "\r\n");
    expect_response(&c, JSON_RESP); /* no stray body bytes in between */
    client_close(&c);
}

static void test_body_query_and_headers_reach_the_route(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    expect_response(&c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Length: 5\r\n\r\nabcde");
    client_send_str(&c, "GET /query?x=1&y=2 HTTP/1.1\r\nX-Name:  v a l \r\n\r\n");
    expect_response(&c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: 13\r\n\r\nx=1&y=2|v a l");
    client_send_str(&c, "GET http://example.com/query HTTP/1.1\r\n\r\n");
    expect_response(&c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: 3\r\n\r\n|--");
    client_close(&c);
}

static void test_expect_100_continue_is_answered(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    static char got[4096];
    client_response(&c, got, sizeof(got), true);
    assert_string_equal(got, "HTTP/1.1 100 Continue\r\n\r\n");
    client_send_str(&c, "data");
    expect_response(&c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Length: 4\r\n\r\ndata");
    client_close(&c);
}

static void test_stop_accepting_refuses_new_and_closes_after_next_response(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client c = client_open(f);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_RESP);
    loop_call(f, do_stop_accepting);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(fd);
    client_send_str(&c, "GET /ok HTTP/1.1\r\n\r\n");
    expect_response(&c, OK_TEXT "Connection: close\r\n\r\nok\n");
    expect_eof(&c);
    client_close(&c);
}

static void test_close_with_open_connections_frees_everything(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    start(f, &limits);
    struct client a = client_open(f);
    struct client b = client_open(f);
    client_send_str(&b, "GET /ok HTTP/1.1\r\nHo"); /* one mid-request */
    wait_count(f, 2);
    loop_call(f, do_close);
    assert_int_equal(uv_thread_join(&f->thread), 0); /* the loop ends: no handle left */
    f->running = false;
    expect_eof(&a);
    assert_false(client_fill(&b));
    client_close(&a);
    client_close(&b);
}

static void test_start_reports_bad_address_and_busy_port(void **state)
{
    struct fixture *f = *state;
    struct http_limits limits = default_limits();
    struct http_server *s = NULL;
    char bound[64];
    char err[256];
    assert_int_equal(http_server_start(&f->loop, "example.com", 0, &limits, route, f, &s, bound,
                                       sizeof(bound), err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "example.com"));
    limits.max_connections = 0;
    assert_int_equal(http_server_start(&f->loop, "127.0.0.1", 0, &limits, route, f, &s, bound,
                                       sizeof(bound), err, sizeof(err)),
                     LMQ_EINVAL);
    limits = default_limits();
    assert_int_equal(http_server_start(&f->loop, "::1", 0, &limits, route, f, &s, bound,
                                       sizeof(bound), err, sizeof(err)),
                     0);
    assert_int_equal(strncmp(bound, "[::1]:", 6), 0);
    unsigned port = 0;
    assert_int_equal(sscanf(bound, "[::1]:%u", &port), 1);
    struct http_server *busy = NULL;
    assert_int_equal(http_server_start(&f->loop, "::1", (uint16_t)port, &limits, route, f, &busy,
                                       bound, sizeof(bound), err, sizeof(err)),
                     LMQ_EIO);
    assert_non_null(strstr(err, "cannot listen"));
    assert_null(busy);
    http_server_close(s);
}

/* ---------------------------------------------------------------- without sockets */

struct session_run {
    char out[8192];
    size_t len;
    bool closing;
};

static int plain_route(void *ctx, const struct http_request *req, struct http_response *resp,
                       struct lmq_buf *out)
{
    (void)ctx;
    resp->content_type = "text/plain";
    return lmq_buf_printf(out, HTTP_RESPONSE_BODY_MAX_BYTES, "%s %.*s %zu", req->method,
                          (int)req->path_len, req->path, req->body_len);
}

/* A route that answers /later after the test says so (http_request_defer). */
struct deferring {
    struct http_deferred *pending;
    int abandoned;
};

static void deferring_abandoned(void *ctx)
{
    struct deferring *d = ctx;
    d->abandoned++;
    d->pending = NULL;
}

static int deferring_route(void *ctx, const struct http_request *req, struct http_response *resp,
                           struct lmq_buf *out)
{
    struct deferring *d = ctx;
    if (req->path_len == 6 && memcmp(req->path, "/later", 6) == 0) {
        d->pending = http_request_defer(req, deferring_abandoned, d);
        assert_non_null(d->pending);
        return 0;
    }
    return plain_route(NULL, req, resp, out);
}

static void test_session_deferred_answers_keep_request_order(void **state)
{
    (void)state;
    struct http_limits limits = default_limits();
    struct deferring d = {0};
    struct http_session *s = NULL;
    assert_int_equal(http_session_new(&limits, deferring_route, &d, &s), 0);
    static const char input[] = "GET /first HTTP/1.1\r\n\r\nPOST /later HTTP/1.1\r\n"
                                "Content-Length: 2\r\n\r\nhiGET /after HTTP/1.1\r\n\r\n";
    size_t len = sizeof(input) - 1, consumed = 0;
    http_session_feed(s, (const uint8_t *)input, len, &consumed);
    /* /first answered; /later waits; /after not even parsed yet. */
    assert_non_null(d.pending);
    assert_true(consumed < len);
    const struct lmq_buf *o = http_session_output(s);
    assert_non_null(memmem(o->data, o->len, "GET /first 0", 12));
    assert_null(memmem(o->data, o->len, "/after", 6));
    http_session_output_clear(s);
    size_t more = 0;
    http_session_feed(s, (const uint8_t *)input + consumed, len - consumed, &more);
    assert_int_equal(more, 0); /* still waiting: nothing further is read */
    struct http_response resp = {.status = 201, .content_type = "text/plain"};
    struct lmq_buf body = {0};
    assert_int_equal(lmq_buf_printf(&body, 64, "done"), 0);
    http_deferred_answer(d.pending, &resp, &body);
    lmq_buf_release(&body);
    d.pending = NULL;
    http_session_feed(s, (const uint8_t *)input + consumed, len - consumed, &more);
    assert_int_equal(consumed + more, len);
    o = http_session_output(s);
    const uint8_t *created = memmem(o->data, o->len, "HTTP/1.1 201 Created", 20);
    const uint8_t *after = memmem(o->data, o->len, "GET /after 0", 12);
    assert_non_null(created);
    assert_non_null(after);
    assert_true(created < after);
    assert_non_null(memmem(o->data, o->len, "\r\n\r\ndone", 8));
    http_session_output_clear(s);
    /* A session freed while an answer is due tells its owner, once. */
    static const char later[] = "GET /later HTTP/1.1\r\n\r\n";
    http_session_feed(s, (const uint8_t *)later, sizeof(later) - 1, &more);
    assert_non_null(d.pending);
    http_session_free(s);
    assert_int_equal(d.abandoned, 1);
    assert_null(d.pending);
}

/* Feeds input in pieces of step bytes and collects the output (Date lines removed). */
static void session_run(const char *input, size_t step, struct session_run *r)
{
    struct http_limits limits = default_limits();
    struct http_session *s = NULL;
    assert_int_equal(http_session_new(&limits, plain_route, NULL, &s), 0);
    size_t len = strlen(input);
    r->len = 0;
    for (size_t off = 0; off < len && !http_session_closing(s);) {
        size_t n = LMQ_MIN(step, len - off);
        size_t consumed = 0;
        http_session_feed(s, (const uint8_t *)input + off, n, &consumed);
        assert_true(consumed == n || http_session_closing(s));
        off += n;
        const struct lmq_buf *o = http_session_output(s);
        assert_true(r->len + o->len < sizeof(r->out));
        if (o->len > 0) {
            memcpy(r->out + r->len, o->data, o->len);
        }
        r->len += o->len;
        http_session_output_clear(s);
    }
    r->out[r->len] = '\0';
    r->closing = http_session_closing(s);
    http_session_free(s);
    while (strstr(r->out, "\r\nDate: ") != NULL) {
        strip_date(r->out, &r->len);
    }
}

static void test_session_output_does_not_depend_on_how_input_is_split(void **state)
{
    (void)state;
    const char *input = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                        "POST /b?q HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
                        "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
                        "GET /d HTTP/1.1\r\nConnection: close\r\n\r\n"
                        "GET /never HTTP/1.1\r\n\r\n";
    struct session_run whole;
    struct session_run piece;
    session_run(input, strlen(input), &whole);
    assert_true(whole.closing);
    assert_non_null(strstr(whole.out, "\r\n\r\nGET /a 0"));
    assert_non_null(strstr(whole.out, "\r\n\r\nPOST /b 3"));
    assert_non_null(strstr(whole.out, "\r\n\r\nPUT /c 1"));
    assert_non_null(strstr(whole.out, "Connection: close\r\n\r\nGET /d 0"));
    assert_null(strstr(whole.out, "never"));
    for (size_t step = 1; step < 9; step++) {
        session_run(input, step, &piece);
        assert_string_equal(piece.out, whole.out);
    }
}

/* Query strings: http_query_value finds a name exactly (not a prefix, not a value), the first
 * of repeats, an empty value; http_percent_decode refuses what it can't decode. */
static void test_query_value_and_percent_decode(void **state)
{
    (void)state;
    const char *q = "limitx=1&a=b%3D&limit=&limit=7&x=%zz&=9";
    struct http_request req = {.query = q, .query_len = strlen(q)};
    const char *v = NULL;
    size_t len = 99;
    assert_true(http_query_value(&req, "limit", &v, &len));
    assert_int_equal(len, 0);
    assert_true(http_query_value(&req, "a", &v, &len));
    assert_int_equal(len, 4);
    assert_memory_equal(v, "b%3D", 4);
    assert_false(http_query_value(&req, "b", &v, &len));
    assert_false(http_query_value(&req, "lim", &v, &len));
    struct http_request none = {0};
    assert_false(http_query_value(&none, "a", &v, &len));
    char out[8];
    size_t n = 0;
    assert_true(http_percent_decode("b%3D+c", 6, out, sizeof(out), &n));
    assert_string_equal(out, "b= c");
    assert_int_equal(n, 4);
    assert_false(http_percent_decode("%zz", 3, out, sizeof(out), NULL));
    assert_false(http_percent_decode("%4", 2, out, sizeof(out), NULL));
    assert_false(http_percent_decode("%00", 3, out, sizeof(out), NULL));
    assert_false(http_percent_decode("12345678", 8, out, sizeof(out), NULL)); /* no room for NUL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keepalive_serves_two_requests_on_one_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests_are_answered_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_pipelining_past_the_output_bound_keeps_order_and_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_bytes_over_limit_get_431_and_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_over_limit_gets_413_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_gets_400_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_target_gets_414, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_request_gets_408_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connection_is_closed_without_a_response, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connections_past_the_maximum_get_503, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_header_deadline_bounds_slow_heads_and_silent_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_connections_past_the_per_address_cap_are_closed_at_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_connection_close_is_honoured_and_later_requests_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_closes_unless_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_statuses_get_json_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_gets_headers_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_query_and_headers_reach_the_route, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expect_100_continue_is_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_stop_accepting_refuses_new_and_closes_after_next_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_open_connections_frees_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_reports_bad_address_and_busy_port, setup,
                                        teardown),
        cmocka_unit_test(test_session_output_does_not_depend_on_how_input_is_split),
        cmocka_unit_test(test_session_deferred_answers_keep_request_order),
        cmocka_unit_test(test_query_value_and_percent_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
