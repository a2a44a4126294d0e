/*
 * HTTP/1.1 server: a session (http-parser glue, request limits, response framing; no sockets)
 * per connection, and the libuv connection around it (reads, one write at a time, timers,
 * lingering close).
 *
 * The parser is paused at the end of every request's headers and at the end of every request,
 * so the session sees exactly how many bytes the headers took (the 431 bound is on raw bytes,
 * not just on what is stored) and answers pipelined requests one at a time, in order.
 */
#include "net/http.h"

#include <unistd.h>

#include "net/accept.h"
#include "net/address.h"
#include "net/tls.h"
#include "net/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/forwarded.h"
#include <strings.h>
#include <time.h>

#include <http_parser.h>

#include "core/log.h"
#include "core/map.h"

/* Bytes handed to one read; the unparsed input of a connection never exceeds it. */
#define HTTP_READ_CHUNK_BYTES 16384u
/* Parse-then-decrypt rounds per read (HTTPS): bounds the work one connection gets per turn. */
#define HTTP_DECRYPT_ROUNDS_MAX 32u
/* Output queued beyond this stops the parsing of pipelined requests until it drains. */
#define HTTP_OUTPUT_HIGH_BYTES (256u * 1024u)
/* Hard bound of a session's output: the high-water mark plus one full response. */
#define HTTP_OUTPUT_MAX_BYTES (HTTP_OUTPUT_HIGH_BYTES + HTTP_RESPONSE_BODY_MAX_BYTES + 4096u)
/* After the last response: how long, and how many bytes, we read and discard before closing,
 * so a client still sending does not get a reset that destroys the response in flight. */
#define HTTP_LINGER_MS 2000u
#define HTTP_LINGER_MAX_BYTES (1024u * 1024u)
#define HTTP_LISTEN_BACKLOG 128
/* At most one line per second for each kind of refusal a flood can cause. */
#define HTTP_REFUSAL_LOG_MS 1000u
/* {"error":NNN,"reason":"..."} */
#define HTTP_ERROR_BODY_MAX_BYTES 160u

enum http_phase {
    HTTP_PHASE_IDLE = 0, /* between requests */
    HTTP_PHASE_HEAD,     /* request line and headers */
    HTTP_PHASE_BODY,     /* body */
};

enum http_event {
    HTTP_EVENT_NONE = 0,
    HTTP_EVENT_HEADERS_DONE,
    HTTP_EVENT_MESSAGE_DONE,
};

/* A header field as offsets into the session's head buffer. */
struct http_header {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

struct http_session {
    http_parser parser;
    struct http_limits limits;
    http_route_fn route;
    void *route_ctx;
    enum http_phase phase;
    enum http_event event; /* set by the callback that paused the parser */
    uint64_t requests_begun;
    uint32_t head_raw_bytes; /* raw bytes of the current request's head */
    uint32_t trailer_bytes;  /* header bytes after a chunked body: counted, not kept */
    struct lmq_buf head;     /* request target, then header names and values */
    uint32_t url_len;
    struct http_header headers[HTTP_HEADERS_MAX];
    uint32_t header_count;
    bool in_value; /* the last header callback was a value */
    struct lmq_buf body;
    uint32_t path_off, path_len, query_off, query_len;
    bool has_query;
    int reject_status; /* set by a callback that refused the request: 400, 413, 414, 431, 505 */
    bool keep_alive;
    bool expect_continue;
    bool head_request; /* a HEAD whose head is complete: responses carry no body */
    bool draining;     /* every response closes */
    bool closing;      /* no further request is read */
    bool upgraded;     /* an upgrade was accepted: no further request is read */
    struct lmq_buf out;
    struct sockaddr_storage peer; /* the TCP peer, when has_peer (set by the connection) */
    bool has_peer;
    struct sockaddr_storage local; /* the address it arrived on, when has_local */
    bool has_local;
    uint8_t upgrade_data[HTTP_UPGRADE_DATA_MAX_BYTES]; /* the route's, for the upgrade callback */
    size_t upgrade_data_len;
    /* A request whose answer comes later: nothing further is parsed until it is answered. */
    struct http_deferred *deferred;
    bool dispatching; /* inside the route (an answer given there needs no wake-up) */
    /* Called when a deferred answer was queued outside the route (the connection resumes). */
    void (*wake)(void *ctx);
    void *wake_ctx;
};

struct http_deferred {
    struct http_session *session;
    http_abandoned_fn abandoned;
    void *ctx;
    bool head_only; /* the request was a HEAD */
    bool close;     /* the connection closes after the answer */
};

/* ---------------------------------------------------------------- session: parser callbacks */

static int http_session_on_message_begin(http_parser *p)
{
    struct http_session *s = p->data;
    LMQ_ASSERT(s != NULL && s->phase == HTTP_PHASE_IDLE);
    s->phase = HTTP_PHASE_HEAD;
    s->requests_begun++;
    s->head.len = 0;
    s->body.len = 0;
    s->url_len = 0;
    s->trailer_bytes = 0;
    s->header_count = 0;
    s->in_value = false;
    s->reject_status = 0;
    s->expect_continue = false;
    s->head_request = false;
    s->has_query = false;
    return 0;
}

/* Stores request-head bytes; refusal with 431 when the head buffer is full. */
static int http_session_store(struct http_session *s, const char *at, size_t len)
{
    LMQ_ASSERT(s->phase == HTTP_PHASE_HEAD);
    if (lmq_buf_append(&s->head, at, len, s->limits.max_header_bytes) != LMQ_OK) {
        s->reject_status = 431; /* LMQ_ENOMEM included: the only safe answer is to refuse */
        return -1;
    }
    return 0;
}

static int http_session_on_url(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    LMQ_ASSERT(s != NULL && s->header_count == 0);
    if ((size_t)s->url_len + len > HTTP_URL_MAX_BYTES) {
        s->reject_status = 414;
        return -1;
    }
    s->url_len += (uint32_t)len;
    return http_session_store(s, at, len);
}

/* Trailer fields (after a chunked body) are not kept, but they count against the head limit. */
static int http_session_trailer(struct http_session *s, size_t len)
{
    LMQ_ASSERT(s->phase == HTTP_PHASE_BODY);
    LMQ_ASSERT(s->trailer_bytes <= s->limits.max_header_bytes);
    if (len > s->limits.max_header_bytes - s->trailer_bytes) {
        s->reject_status = 431;
        return -1;
    }
    s->trailer_bytes += (uint32_t)len;
    return 0;
}

static int http_session_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    LMQ_ASSERT(s != NULL && s->header_count <= HTTP_HEADERS_MAX);
    if (s->phase == HTTP_PHASE_BODY) {
        return http_session_trailer(s, len);
    }
    if (s->header_count == 0 || s->in_value) { /* a new field begins */
        if (s->header_count == HTTP_HEADERS_MAX) {
            s->reject_status = 431;
            return -1;
        }
        s->headers[s->header_count++] =
            (struct http_header){.name_off = (uint32_t)s->head.len, .value_off = 0};
        s->in_value = false;
    }
    struct http_header *h = &s->headers[s->header_count - 1];
    h->name_len += (uint32_t)len; /* bounded by max_header_bytes through the store */
    return http_session_store(s, at, len);
}

static int http_session_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    LMQ_ASSERT(s != NULL && s->header_count <= HTTP_HEADERS_MAX);
    if (s->phase == HTTP_PHASE_BODY) {
        return http_session_trailer(s, len);
    }
    LMQ_ASSERT(s->header_count > 0);
    struct http_header *h = &s->headers[s->header_count - 1];
    if (!s->in_value) {
        h->value_off = (uint32_t)s->head.len;
        s->in_value = true;
    }
    h->value_len += (uint32_t)len;
    return http_session_store(s, at, len);
}

/* Finds a header of the current request; value trimmed of blanks. */
static bool http_session_header(const struct http_session *s, const char *name, size_t nth,
                                const char **value, size_t *value_len)
{
    LMQ_ASSERT(name != NULL && value != NULL && value_len != NULL);
    LMQ_ASSERT(s->header_count <= HTTP_HEADERS_MAX);
    size_t name_len = strlen(name);
    size_t seen = 0;
    for (uint32_t i = 0; i < s->header_count; i++) {
        const struct http_header *h = &s->headers[i];
        const char *hname = (const char *)s->head.data + h->name_off;
        if (h->name_len != name_len || strncasecmp(hname, name, name_len) != 0 || seen++ < nth) {
            continue;
        }
        const char *v = (const char *)s->head.data + h->value_off;
        size_t len = h->value_len;
        while (len > 0 && (v[0] == ' ' || v[0] == '\t')) {
            v++;
            len--;
        }
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
            len--;
        }
        *value = len > 0 ? v : "";
        *value_len = len;
        return true;
    }
    return false;
}

/* Splits the request target into path and query; false when it is not a valid target. */
static bool http_session_split_url(struct http_session *s)
{
    LMQ_ASSERT(s->url_len <= HTTP_URL_MAX_BYTES && s->url_len <= s->head.len);
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (s->url_len == 0 || http_parser_parse_url((const char *)s->head.data, s->url_len,
                                                 s->parser.method == HTTP_CONNECT, &u) != 0) {
        return false;
    }
    s->path_off = 0;
    s->path_len = 0;
    if (u.field_set & (1u << UF_PATH)) {
        s->path_off = u.field_data[UF_PATH].off;
        s->path_len = u.field_data[UF_PATH].len;
    }
    s->has_query = (u.field_set & (1u << UF_QUERY)) != 0;
    if (s->has_query) {
        s->query_off = u.field_data[UF_QUERY].off;
        s->query_len = u.field_data[UF_QUERY].len;
    }
    LMQ_ASSERT(s->path_off + s->path_len <= s->url_len);
    return true;
}

static int http_session_on_headers_complete(http_parser *p)
{
    struct http_session *s = p->data;
    LMQ_ASSERT(s != NULL && s->phase == HTTP_PHASE_HEAD);
    /* Known only now, whatever the reads: before, a refusal carries its body even for HEAD
     * (harmless, the connection closes after it). */
    s->head_request = p->method == HTTP_HEAD;
    if (p->http_major != 1) { /* http-parser reads any version up to 999.999 */
        s->reject_status = 505;
        return -1;
    }
    if (!http_session_split_url(s)) {
        s->reject_status = 400;
        return -1;
    }
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_length && p->content_length > s->limits.max_body_bytes) {
        s->reject_status = 413;
        return -1;
    }
    const char *expect = NULL;
    size_t expect_len = 0;
    s->expect_continue = http_session_header(s, "Expect", 0, &expect, &expect_len) &&
                         expect_len == 12 && strncasecmp(expect, "100-continue", 12) == 0;
    s->event = HTTP_EVENT_HEADERS_DONE;
    http_parser_pause(p, 1);
    return 0;
}

static int http_session_on_body(http_parser *p, const char *at, size_t len)
{
    struct http_session *s = p->data;
    LMQ_ASSERT(s != NULL && s->phase == HTTP_PHASE_BODY);
    if (lmq_buf_append(&s->body, at, len, s->limits.max_body_bytes) != LMQ_OK) {
        s->reject_status = 413; /* a chunked body past the limit (or no memory for it) */
        return -1;
    }
    return 0;
}

static int http_session_on_message_complete(http_parser *p)
{
    struct http_session *s = p->data;
    LMQ_ASSERT(s != NULL && s->phase == HTTP_PHASE_BODY);
    s->keep_alive = http_should_keep_alive(p) != 0;
    s->event = HTTP_EVENT_MESSAGE_DONE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings http_session_settings = {
    .on_message_begin = http_session_on_message_begin,
    .on_url = http_session_on_url,
    .on_header_field = http_session_on_header_field,
    .on_header_value = http_session_on_header_value,
    .on_headers_complete = http_session_on_headers_complete,
    .on_body = http_session_on_body,
    .on_message_complete = http_session_on_message_complete,
};

/* ---------------------------------------------------------------- session: responses */

static const char *http_reason(int status)
{
    LMQ_ASSERT(status >= 100 && status <= 599);
    const char *reason = http_status_str((enum http_status)status);
    return (reason == NULL || reason[0] == '<') ? "Unknown" : reason;
}

/* Formats the Date header value (IMF-fixdate) into out. */
static void http_date(char *out, size_t cap)
{
    LMQ_ASSERT(out != NULL && cap >= 30);
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0) {
        LMQ_UNREACHABLE("gmtime_r/strftime failed on the current time");
    }
}

/*
 * Queues one response. An error status with no body gets the JSON error body. Returns 0 or
 * the error that left the output unusable (the caller closes).
 */
static int http_session_respond(struct http_session *s, const struct http_response *resp,
                                const struct lmq_buf *body, bool head_only, bool close)
{
    LMQ_ASSERT(resp->status >= 200 && resp->status <= 599);
    LMQ_ASSERT(body->len <= HTTP_RESPONSE_BODY_MAX_BYTES);
    LMQ_ASSERT(resp->extra_headers == NULL || strlen(resp->extra_headers) < 1024);
    const char *reason = http_reason(resp->status);
    const char *content_type =
        resp->content_type ? resp->content_type : "text/plain; charset=utf-8";
    const uint8_t *data = body->data;
    size_t len = body->len;
    char json[HTTP_ERROR_BODY_MAX_BYTES];
    if (resp->status >= 400 && len == 0) {
        int n =
            snprintf(json, sizeof(json), "{\"error\":%d,\"reason\":\"%s\"}", resp->status, reason);
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(json)); /* reasons are short, plain ASCII */
        data = (const uint8_t *)json;
        len = (size_t)n;
        content_type = "application/json";
    }
    char date[40];
    http_date(date, sizeof(date));
    size_t mark = s->out.len;
    int rc = lmq_buf_printf(
        &s->out, HTTP_OUTPUT_MAX_BYTES,
        "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
        "Content-Length: %zu\r\n%s%s%s%s%s\r\n",
        resp->status, reason, date, content_type, len, resp->allow ? "Allow: " : "",
        resp->allow ? resp->allow : "", resp->allow ? "\r\n" : "",
        resp->extra_headers ? resp->extra_headers : "",
        close                                                      ? "Connection: close\r\n"
        : (s->parser.http_major == 1 && s->parser.http_minor == 0) ? "Connection: keep-alive\r\n"
                                                                   : "");
    if (rc == LMQ_OK && !head_only) {
        rc = lmq_buf_append(&s->out, data, len, HTTP_OUTPUT_MAX_BYTES);
    }
    if (rc != LMQ_OK) {
        s->out.len = mark;
    }
    return rc;
}

/* Answers the current request (or a connection) with an error status and stops reading. */
static void http_session_reject(struct http_session *s, int status)
{
    LMQ_ASSERT(status >= 400 && status <= 599);
    LMQ_ASSERT(!s->closing);
    struct http_response resp = {.status = status};
    struct lmq_buf empty = {NULL, 0, 0};
    s->closing = true;
    s->phase = HTTP_PHASE_IDLE;
    /* A failure leaves the output as it was; the connection closes either way. */
    (void)http_session_respond(s, &resp, &empty, s->head_request, true);
}

/* Builds the request view and calls the route; then queues its response. */
static void http_session_dispatch(struct http_session *s)
{
    LMQ_ASSERT(s->phase == HTTP_PHASE_BODY);
    LMQ_ASSERT(s->route != NULL);
    const uint8_t *url = s->head.data;
    struct http_request req = {
        .method = http_method_str((enum http_method)s->parser.method),
        .path = s->path_len ? (const char *)url + s->path_off : "",
        .path_len = s->path_len,
        .body = s->body.len ? s->body.data : NULL,
        .body_len = s->body.len,
        .query = s->has_query ? (const char *)url + s->query_off : NULL,
        .query_len = s->has_query ? s->query_len : 0,
        .internal = s,
        .peer = s->has_peer ? &s->peer : NULL,
        .local = s->has_local ? &s->local : NULL,
    };
    struct http_response resp = {.status = 200};
    struct lmq_buf body = {NULL, 0, 0}; /* the route writes at most HTTP_RESPONSE_BODY_MAX_BYTES */
    LMQ_ASSERT(s->deferred == NULL);
    s->dispatching = true;
    int rc = s->route(s->route_ctx, &req, &resp, &body);
    s->dispatching = false;
    s->phase = HTTP_PHASE_IDLE;
    if (s->deferred != NULL) {
        /* The answer comes later: http_deferred_answer queues it. */
        s->deferred->head_only = s->head_request;
        s->deferred->close = !s->keep_alive || s->draining || s->parser.upgrade;
        lmq_buf_release(&body);
        return;
    }
    if (rc < 0) {
        body.len = 0;
        resp = (struct http_response){.status = 500};
    }
    if (resp.upgraded && resp.status == 101 && s->parser.upgrade && !s->head_request) {
        /* The route wrote the whole 101; what follows the request is the new protocol's. */
        s->upgraded = true;
        LMQ_ASSERT(resp.upgrade_data_len <= sizeof(s->upgrade_data));
        memcpy(s->upgrade_data, resp.upgrade_data, resp.upgrade_data_len);
        s->upgrade_data_len = resp.upgrade_data_len;
        if (lmq_buf_append(&s->out, body.data, body.len, HTTP_OUTPUT_MAX_BYTES) != LMQ_OK)
            s->closing = true;
        lmq_buf_release(&body);
        return;
    }
    if (resp.upgraded || resp.status == 101) {
        body.len = 0; /* an upgrade the request did not ask for: a route bug, answered 500 */
        resp = (struct http_response){.status = 500};
    }
    LMQ_ASSERT(resp.status >= 200 && resp.status <= 599); /* a route bug otherwise */
    /* An upgrade the route did not accept (e.g. h2c): answered, then the connection closes. */
    bool close = !s->keep_alive || s->draining || s->parser.upgrade;
    s->closing = close;
    if (http_session_respond(s, &resp, &body, s->head_request, close) != LMQ_OK) {
        s->closing = true; /* no memory for the response: nothing better than closing */
    }
    lmq_buf_release(&body);
}

/* ---------------------------------------------------------------- session: public */

/* Sets up a zeroed session; it allocates nothing until bytes arrive. */
static void http_session_init(struct http_session *s, const struct http_limits *limits,
                              http_route_fn route, void *ctx)
{
    LMQ_ASSERT(s != NULL && limits != NULL && route != NULL);
    LMQ_ASSERT(limits->max_header_bytes > 0 && limits->max_body_bytes > 0);
    http_parser_init(&s->parser, HTTP_REQUEST);
    s->parser.data = s;
    s->limits = *limits;
    s->route = route;
    s->route_ctx = ctx;
    s->head = (struct lmq_buf){NULL, 0, 0}; /* bounded by limits.max_header_bytes */
    s->body = (struct lmq_buf){NULL, 0, 0}; /* by limits.max_body_bytes */
    s->out = (struct lmq_buf){NULL, 0, 0};  /* by HTTP_OUTPUT_MAX_BYTES */
}

/* Frees what a session holds, not the session itself. */
static void http_session_release(struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    struct http_deferred *d = s->deferred;
    if (d != NULL) { /* the connection is gone before the answer */
        s->deferred = NULL;
        d->abandoned(d->ctx);
        free(d);
    }
    lmq_buf_release(&s->head);
    lmq_buf_release(&s->body);
    lmq_buf_release(&s->out);
}

int http_session_new(const struct http_limits *limits, http_route_fn route, void *ctx,
                     struct http_session **out)
{
    LMQ_ASSERT(out != NULL);
    struct http_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return LMQ_ENOMEM;
    }
    http_session_init(s, limits, route, ctx);
    *out = s;
    return LMQ_OK;
}

void http_session_free(struct http_session *s)
{
    if (s == NULL) {
        return;
    }
    http_session_release(s);
    free(s);
}

const struct lmq_buf *http_session_output(const struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    return &s->out;
}

void http_session_output_clear(struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    lmq_buf_release(&s->out);
}

bool http_session_closing(const struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    return s->closing;
}

bool http_session_upgraded(const struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    return s->upgraded;
}

bool http_session_in_head(const struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    return s->phase == HTTP_PHASE_HEAD;
}

bool http_session_in_request(const struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    return s->phase != HTTP_PHASE_IDLE;
}

void http_session_expire(struct http_session *s)
{
    LMQ_ASSERT(s != NULL);
    if (!s->closing && s->phase != HTTP_PHASE_IDLE) {
        http_session_reject(s, 408);
    }
}

struct http_deferred *http_request_defer(const struct http_request *req,
                                         http_abandoned_fn abandoned, void *ctx)
{
    LMQ_ASSERT(req != NULL && abandoned != NULL);
    struct http_session *s = (struct http_session *)req->internal;
    if (s == NULL || !s->dispatching || s->deferred != NULL) {
        return NULL;
    }
    struct http_deferred *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    *d = (struct http_deferred){.session = s, .abandoned = abandoned, .ctx = ctx};
    s->deferred = d;
    return d;
}

void http_deferred_answer(struct http_deferred *d, const struct http_response *resp,
                          const struct lmq_buf *body)
{
    LMQ_ASSERT(d != NULL && resp != NULL && body != NULL);
    struct http_session *s = d->session;
    LMQ_ASSERT(s->deferred == d);
    LMQ_ASSERT(resp->status >= 200 && resp->status <= 599 && !resp->upgraded);
    s->deferred = NULL;
    s->closing = s->closing || d->close;
    if (http_session_respond(s, resp, body, d->head_only, d->close || s->draining) != LMQ_OK) {
        s->closing = true;
    }
    free(d);
    if (!s->dispatching && s->wake != NULL) {
        s->wake(s->wake_ctx);
    }
}

/* Handles the pause at the end of a request's head. */
static void http_session_headers_done(struct http_session *s)
{
    LMQ_ASSERT(s->phase == HTTP_PHASE_HEAD);
    if (s->head_raw_bytes > s->limits.max_header_bytes) {
        http_session_reject(s, 431);
        return;
    }
    s->phase = HTTP_PHASE_BODY;
    bool has_body = (s->parser.flags & F_CHUNKED) || s->parser.content_length > 0;
    if (s->expect_continue && has_body && s->parser.http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (lmq_buf_append(&s->out, cont, sizeof(cont) - 1, HTTP_OUTPUT_MAX_BYTES) != LMQ_OK) {
            s->closing = true;
        }
    }
}

/* Runs the parser once over data (at most the head's remaining room while in the head). */
static size_t http_session_execute(struct http_session *s, const uint8_t *data, size_t len)
{
    LMQ_ASSERT(len > 0 && !s->closing);
    bool in_head = s->phase != HTTP_PHASE_BODY;
    if (in_head) { /* never let the parser read past the head limit unnoticed */
        len = LMQ_MIN(len, (size_t)(s->limits.max_header_bytes - s->head_raw_bytes) + 1);
    }
    s->event = HTTP_EVENT_NONE;
    size_t n = http_parser_execute(&s->parser, &http_session_settings, (const char *)data, len);
    LMQ_ASSERT(n <= len);
    if (in_head) {
        /* Blank lines before a request are not part of its head. */
        s->head_raw_bytes = s->phase == HTTP_PHASE_IDLE ? 0 : s->head_raw_bytes + (uint32_t)n;
    }
    return n;
}

/* What a parser error means for the client. */
static int http_session_error_status(const struct http_session *s)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&s->parser);
    LMQ_ASSERT(e != HPE_OK && e != HPE_PAUSED);
    if (s->reject_status != 0) {
        return s->reject_status;
    }
    return e == HPE_HEADER_OVERFLOW ? 431 : 400;
}

void http_session_feed(struct http_session *s, const uint8_t *data, size_t len, size_t *consumed)
{
    LMQ_ASSERT(s != NULL && consumed != NULL);
    LMQ_ASSERT(data != NULL || len == 0);
    size_t off = 0;
    /* Each round consumes a byte or handles a pause; two pauses per request need a byte. */
    for (size_t round = 0; round <= 3 * len + 3 && off < len; round++) {
        if (s->closing || s->upgraded || s->deferred != NULL ||
            s->out.len >= HTTP_OUTPUT_HIGH_BYTES) {
            break;
        }
        if (s->phase == HTTP_PHASE_IDLE) {
            s->head_raw_bytes = 0;
        }
        off += http_session_execute(s, data + off, len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&s->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&s->parser, 0);
            if (s->event == HTTP_EVENT_HEADERS_DONE) {
                http_session_headers_done(s);
            } else {
                LMQ_ASSERT(s->event == HTTP_EVENT_MESSAGE_DONE);
                http_session_dispatch(s);
            }
        } else if (e != HPE_OK) {
            http_session_reject(s, http_session_error_status(s));
        } else if (s->phase == HTTP_PHASE_HEAD && s->head_raw_bytes > s->limits.max_header_bytes) {
            http_session_reject(s, 431);
        }
        /* An upgrade ends at the pause of its message end: dispatch answers it, and the loop
         * stops before the parser sees the new protocol's bytes. */
    }
    LMQ_ASSERT(off <= len);
    *consumed = off;
}

/* The request view reaches back into the session that built it. */
bool http_request_header(const struct http_request *req, const char *name, const char **value,
                         size_t *value_len)
{
    LMQ_ASSERT(req != NULL && req->internal != NULL);
    return http_session_header(req->internal, name, 0, value, value_len);
}

bool http_request_header_at(const struct http_request *req, const char *name, size_t nth,
                            const char **value, size_t *value_len)
{
    LMQ_ASSERT(req != NULL && req->internal != NULL);
    return http_session_header(req->internal, name, nth, value, value_len);
}

/* ---------------------------------------------------------------- connections */

enum http_conn_state {
    HTTP_CONN_OPEN = 0,  /* reading and answering requests */
    HTTP_CONN_FINISHING, /* writing the last response; not reading */
    HTTP_CONN_UPGRADING, /* writing the upgrade response; then handed over */
    HTTP_CONN_LINGER,    /* last response written, FIN sent; reading and discarding */
    HTTP_CONN_CLOSED,    /* uv_close called; freed once handles and requests are done */
};

/* Connections open (and TLS handshakes in progress) from one IP address; freed when none. */
struct http_address {
    uint8_t key[16];
    uint8_t key_len;
    uint32_t open_count;
    uint32_t handshake_count;
};

struct http_conn {
    struct http_server *server;
    struct http_address *address;  /* counted against while open; NULL when not an IP socket */
    struct http_conn *prev, *next; /* server->conns while not closed */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    struct http_session session;
    struct lmq_buf in;              /* unparsed input, at most HTTP_READ_CHUNK_BYTES */
    struct lmq_buf writing;         /* the bytes of the write in flight */
    struct net_transport transport; /* TLS on an HTTPS server; plain otherwise */
    struct lmq_buf raw;             /* HTTPS: socket bytes not yet decrypted */
    struct lmq_buf wire;            /* HTTPS: encrypted bytes waiting for the write in flight */
    enum http_conn_state state;
    uint64_t id;
    uint64_t timed_request;       /* session.requests_begun when the request timer was armed */
    uint64_t head_deadline_ms;    /* loop time by which the current (or first) head is due */
    uint64_t request_deadline_ms; /* loop time by which the current request is due */
    bool handshaking;             /* HTTPS: counted in address->handshake_count */
    size_t linger_bytes;
    uint32_t handles_open; /* tcp + timer until their close callbacks ran */
    uint32_t reqs_active;  /* write + shutdown requests not yet called back */
    bool reading;
    bool blocked;  /* input left unparsed until output drains (or a deferred answer comes) */
    bool peer_eof; /* the client half-closed while answers were still due */
    char remote[64];
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct http_limits limits;
    http_route_fn route;
    void *route_ctx;
    struct http_conn *conns; /* open connections (not CLOSED) */
    size_t conn_count;       /* length of conns */
    size_t alloc_count;      /* connections not yet freed */
    uint64_t next_conn_id;
    struct net_acceptor acceptor; /* accepts for listener (net/accept.c) */
    bool listener_open;           /* until its close callback ran */
    bool listener_closing;
    bool draining;
    bool closing;           /* http_server_close called: free when everything is closed */
    struct tls_server *tls; /* HTTPS when set (not owned) */
    uint64_t tls_failures;
    struct lmq_map *addresses; /* raw IP -> struct http_address */
    struct http_server_stats stats;
    uint64_t refusal_logged_ms; /* the last refusal line (rate limit) */
    uint64_t refusals_unlogged; /* refusals since then, reported with the next line */
    struct lmq_buf scratch;     /* lent to net_transport calls */
    http_upgrade_fn upgrade;
    void *upgrade_ctx;
};

static void http_conn_close(struct http_conn *c);
static void http_conn_flush(struct http_conn *c);
static void http_conn_process(struct http_conn *c);

static void http_conn_log(const struct http_conn *c, enum lmq_log_level level, const char *event,
                          const char *detail)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, level, event)) {
        return;
    }
    lmq_log_uint(&line, "http_conn", c->id);
    lmq_log_str(&line, "remote", c->remote);
    if (detail != NULL) {
        lmq_log_str(&line, "detail", detail);
    }
    lmq_log_end(&line);
}

/*
 * Logs a refusal a flood can cause: the first at once, then at most one line per
 * HTTP_REFUSAL_LOG_MS with the number not logged since (the counters in http_server_stats
 * count every one).
 */
static void http_server_log_refusal(struct http_server *s, const struct http_conn *c,
                                    const char *event, const char *why)
{
    LMQ_ASSERT(s != NULL && c != NULL && why != NULL);
    uint64_t now = uv_now(s->loop);
    if (s->refusal_logged_ms != 0 && now - s->refusal_logged_ms < HTTP_REFUSAL_LOG_MS) {
        s->refusals_unlogged++;
        return;
    }
    s->refusal_logged_ms = now;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, event)) {
        lmq_log_uint(&line, "http_conn", c->id);
        lmq_log_str(&line, "remote", c->remote);
        lmq_log_str(&line, "detail", why);
        lmq_log_uint(&line, "unlogged_before", s->refusals_unlogged);
        lmq_log_end(&line);
    }
    s->refusals_unlogged = 0;
}

/*
 * Counts c against its address (and, on HTTPS, as a handshake in progress). Returns NULL when
 * admitted, or the name of the limit that refuses it (c is then not counted).
 */
static const char *http_address_admit(struct http_server *s, struct http_conn *c,
                                      const struct sockaddr_storage *ss)
{
    LMQ_ASSERT(c->address == NULL && !c->handshaking);
    uint8_t key[16];
    uint8_t len = 0;
    if (!net_sockaddr_raw(ss, key, &len)) {
        return NULL; /* not an IP socket: nothing to count */
    }
    struct http_address *a = lmq_map_get(s->addresses, key, len);
    if (a == NULL) {
        a = calloc(1, sizeof(*a));
        if (a == NULL) {
            return "out of memory";
        }
        memcpy(a->key, key, len);
        a->key_len = len;
        if (lmq_map_put(s->addresses, a->key, len, a) != LMQ_OK) {
            free(a);
            return "out of memory";
        }
    }
    const char *why = NULL;
    if (a->open_count >= s->limits.max_connections_per_address) {
        why = "max_connections_per_address";
        s->stats.refused_address++;
    } else if (s->tls != NULL && a->handshake_count >= s->limits.max_handshakes_per_address) {
        why = "max_handshakes_per_address";
        s->stats.refused_handshakes++;
    }
    if (why != NULL) {
        if (a->open_count == 0) { /* a fresh entry: nothing else holds it */
            void *removed = lmq_map_remove(s->addresses, a->key, a->key_len);
            LMQ_ASSERT(removed == a);
            free(a);
        }
        return why;
    }
    a->open_count++;
    c->address = a;
    if (s->tls != NULL) {
        a->handshake_count++;
        c->handshaking = true;
    }
    return NULL;
}

/* The TLS handshake is over (done, failed or the connection closing): uncounts it. */
static void http_address_handshake_over(struct http_conn *c)
{
    if (!c->handshaking) {
        return;
    }
    c->handshaking = false;
    if (c->address != NULL) {
        LMQ_ASSERT(c->address->handshake_count > 0);
        c->address->handshake_count--;
    }
}

/* Uncounts a closing connection; frees the entry when it was the address's last. */
static void http_address_release(struct http_server *s, struct http_conn *c)
{
    http_address_handshake_over(c);
    struct http_address *a = c->address;
    if (a == NULL) {
        return;
    }
    c->address = NULL;
    LMQ_ASSERT(a->open_count > 0 && a->handshake_count < a->open_count);
    if (--a->open_count == 0) {
        void *removed = lmq_map_remove(s->addresses, a->key, a->key_len);
        LMQ_ASSERT(removed == a);
        free(a);
    }
}

static void http_server_maybe_free(struct http_server *s)
{
    LMQ_ASSERT(s != NULL);
    if (s->closing && !s->listener_open && !net_acceptor_open(&s->acceptor) &&
        s->alloc_count == 0) {
        LMQ_ASSERT(s->conns == NULL && s->conn_count == 0);
        LMQ_ASSERT(s->addresses == NULL || lmq_map_count(s->addresses) == 0);
        lmq_map_destroy(s->addresses);
        lmq_buf_release(&s->scratch);
        free(s);
    }
}

static void http_conn_maybe_free(struct http_conn *c)
{
    LMQ_ASSERT(c->state == HTTP_CONN_CLOSED);
    if (c->handles_open > 0 || c->reqs_active > 0) {
        return;
    }
    struct http_server *s = c->server;
    http_session_release(&c->session);
    lmq_buf_release(&c->in);
    lmq_buf_release(&c->writing);
    net_transport_release(&c->transport);
    lmq_buf_release(&c->raw);
    lmq_buf_release(&c->wire);
    free(c);
    LMQ_ASSERT(s->alloc_count > 0);
    s->alloc_count--;
    http_server_maybe_free(s);
}

static void http_conn_on_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    LMQ_ASSERT(c != NULL && c->handles_open > 0);
    c->handles_open--;
    http_conn_maybe_free(c);
}

static void http_conn_close(struct http_conn *c)
{
    LMQ_ASSERT(c != NULL);
    if (c->state == HTTP_CONN_CLOSED) {
        return;
    }
    struct http_server *s = c->server;
    c->state = HTTP_CONN_CLOSED;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    LMQ_ASSERT(s->conn_count > 0);
    s->conn_count--;
    http_address_release(s, c);
    http_conn_log(c, LMQ_LOG_DEBUG, "http_conn_closed", NULL);
    uv_close((uv_handle_t *)&c->tcp, http_conn_on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, http_conn_on_handle_closed);
}

static void http_conn_on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    LMQ_ASSERT(c != NULL && c->state != HTTP_CONN_CLOSED);
    struct http_server *s = c->server;
    bool open = c->state == HTTP_CONN_OPEN;
    if (open && c->handshaking) { /* nothing can be answered before the handshake */
        s->stats.handshake_timeouts++;
        http_conn_log(c, LMQ_LOG_INFO, "tls_handshake_timeout", NULL);
        http_conn_close(c);
        return;
    }
    if (open && !http_session_in_request(&c->session) && c->session.requests_begun == 0 &&
        uv_now(s->loop) >= c->head_deadline_ms) {
        s->stats.header_timeouts++; /* connected and sent nothing: not even worth a 408 */
        http_conn_log(c, LMQ_LOG_INFO, "http_header_timeout", "no request");
        http_conn_close(c);
        return;
    }
    if (open && http_session_in_request(&c->session)) {
        bool head = http_session_in_head(&c->session);
        s->stats.header_timeouts += head;
        s->stats.request_timeouts += !head;
        http_conn_log(c, LMQ_LOG_INFO, head ? "http_header_timeout" : "http_request_timeout", NULL);
        http_session_expire(&c->session);
        LMQ_ASSERT(http_session_closing(&c->session));
        c->state = HTTP_CONN_FINISHING;
        http_conn_flush(c);
        return;
    }
    /* Idle, or the client stopped reading our output, or lingering is over. */
    http_conn_close(c);
}

static void http_conn_timer_start(struct http_conn *c, uint64_t timeout_ms)
{
    LMQ_ASSERT(c->state != HTTP_CONN_CLOSED);
    int rc = uv_timer_start(&c->timer, http_conn_on_timer, timeout_ms, 0);
    LMQ_ASSERT(rc == 0); /* fails only without a callback */
}

/*
 * Arms the timer for the connection's state. A request in progress has fixed deadlines from its
 * first byte: its head within header_timeout_ms, all of it within request_timeout_ms. Between
 * requests the idle timeout runs from the last progress; but a new connection's first head is
 * due header_timeout_ms after accept (or after the TLS handshake), so a client that connects
 * and sends nothing, or a byte at a time, holds its slot no longer than that. A TLS handshake
 * keeps the fixed deadline set at accept.
 */
static void http_conn_arm(struct http_conn *c)
{
    LMQ_ASSERT(c->state == HTTP_CONN_OPEN);
    if (c->handshaking) {
        return;
    }
    const struct http_limits *l = &c->server->limits;
    uint64_t now = uv_now(c->server->loop);
    uint64_t deadline = now + l->idle_timeout_ms;
    if (http_session_in_request(&c->session)) {
        if (c->timed_request != c->session.requests_begun) {
            c->timed_request = c->session.requests_begun;
            c->request_deadline_ms = now + l->request_timeout_ms;
            if (c->timed_request > 1) { /* the first request's head is due from accept */
                c->head_deadline_ms = now + l->header_timeout_ms;
            }
        }
        deadline = c->request_deadline_ms;
        if (http_session_in_head(&c->session)) {
            deadline = LMQ_MIN(deadline, c->head_deadline_ms);
        }
    } else if (c->session.requests_begun == 0) {
        deadline = LMQ_MIN(deadline, c->head_deadline_ms);
    }
    LMQ_ASSERT(c->head_deadline_ms > 0);
    http_conn_timer_start(c, deadline > now ? deadline - now : 0);
}

static void http_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    LMQ_ASSERT(c != NULL);
    LMQ_UNUSED(suggested);
    *buf = uv_buf_init(NULL, 0);    /* -> UV_ENOBUFS in the read callback */
    if (c->transport.tls != NULL) { /* ciphertext lands in raw, decrypted into in at once */
        LMQ_ASSERT(c->raw.len == 0);
        if (lmq_buf_reserve(&c->raw, HTTP_READ_CHUNK_BYTES, HTTP_READ_CHUNK_BYTES) == LMQ_OK) {
            *buf = uv_buf_init((char *)c->raw.data, (unsigned int)c->raw.cap);
        }
        return;
    }
    if (lmq_buf_reserve(&c->in, HTTP_READ_CHUNK_BYTES - c->in.len, HTTP_READ_CHUNK_BYTES) !=
        LMQ_OK) {
        return;
    }
    /* Lingering reads land at the start and are dropped: in.len stays 0 then. */
    LMQ_ASSERT(c->in.len < HTTP_READ_CHUNK_BYTES);
    *buf = uv_buf_init((char *)c->in.data + c->in.len,
                       (unsigned int)(HTTP_READ_CHUNK_BYTES - c->in.len));
}

static void http_conn_read_stop(struct http_conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void http_conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void http_conn_read_start(struct http_conn *c)
{
    LMQ_ASSERT(c->state == HTTP_CONN_OPEN || c->state == HTTP_CONN_LINGER);
    if (!c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, http_conn_alloc, http_conn_on_read) != 0) {
            http_conn_close(c);
            return;
        }
        c->reading = true;
    }
}

/*
 * HTTPS: decrypts raw into in (the parser's input). Returns false when the connection failed (it is
 * then closing after sending any alert).
 */
static bool http_conn_decrypt(struct http_conn *c)
{
    struct http_server *s = c->server;
    struct net_transport_events ev;
    int rc =
        net_transport_decode(&c->transport, c->raw.data, c->raw.len, &c->in, HTTP_READ_CHUNK_BYTES,
                             &c->wire, HTTP_OUTPUT_MAX_BYTES, &s->scratch, &ev);
    lmq_buf_release(&c->raw); /* an idle connection holds no read buffer */
    if (c->handshaking && (rc != LMQ_OK || tls_session_established(c->transport.tls))) {
        http_address_handshake_over(c);
        /* The first request's head is due header_timeout_ms after the handshake. */
        c->head_deadline_ms = uv_now(s->loop) + s->limits.header_timeout_ms;
    }
    if (rc != LMQ_OK) {
        bool handshake = !tls_session_established(c->transport.tls);
        s->tls_failures += handshake;
        http_conn_log(c, LMQ_LOG_INFO, handshake ? "tls_handshake_failed" : "tls_error",
                      tls_session_error(c->transport.tls));
        http_conn_read_stop(c);
        c->state = HTTP_CONN_FINISHING; /* the alert, if any, goes out; then FIN and close */
        http_session_output_clear(&c->session);
        http_conn_flush(c);
        return false;
    }
    if (ev.peer_closed) {
        http_conn_read_stop(c);
        c->state = HTTP_CONN_FINISHING;
    }
    return true;
}

static void http_conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;
    LMQ_ASSERT(c != NULL && c->state != HTTP_CONN_CLOSED);
    LMQ_UNUSED(buf);
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        /* EOF or error. Answers already queued still go out (a client may half-close). */
        http_conn_read_stop(c);
        if (c->state == HTTP_CONN_OPEN && nread == UV_EOF && c->session.deferred != NULL) {
            /* Its answer (and those of requests read behind it) still go out: then finish. */
            c->peer_eof = true;
            return;
        }
        if (c->state == HTTP_CONN_OPEN && nread == UV_EOF &&
            (c->session.out.len > 0 || c->reqs_active > 0)) {
            c->state = HTTP_CONN_FINISHING;
            lmq_buf_release(&c->in);
            http_conn_timer_start(c, c->server->limits.idle_timeout_ms);
            return;
        }
        http_conn_close(c);
        return;
    }
    if (c->state == HTTP_CONN_LINGER) {
        c->linger_bytes += (size_t)nread;
        lmq_buf_release(&c->raw);
        if (c->linger_bytes > HTTP_LINGER_MAX_BYTES) {
            http_conn_close(c);
        }
        return;
    }
    LMQ_ASSERT(c->state == HTTP_CONN_OPEN);
    if (c->transport.tls != NULL) {
        c->raw.len = (size_t)nread;
        if (!http_conn_decrypt(c)) {
            return;
        }
    } else {
        LMQ_ASSERT((size_t)nread <= HTTP_READ_CHUNK_BYTES - c->in.len);
        c->in.len += (size_t)nread;
    }
    http_conn_process(c);
}

/* Feeds unparsed input to the session; stops reading when it must wait or close. */
static void http_conn_process(struct http_conn *c)
{
    if (c->state != HTTP_CONN_OPEN) { /* HTTPS: the peer closed while decrypting */
        http_conn_flush(c);
        return;
    }
    LMQ_ASSERT(c->in.len <= HTTP_READ_CHUNK_BYTES);
    /* HTTPS: decrypted bytes that did not fit in in wait inside the TLS session; each round
     * parses what is in, then decrypts more into the room made. */
    for (uint32_t round = 0; round < HTTP_DECRYPT_ROUNDS_MAX; round++) {
        size_t consumed = 0;
        http_session_feed(&c->session, c->in.data, c->in.len, &consumed);
        LMQ_ASSERT(consumed <= c->in.len);
        if (consumed > 0) { /* in.data is NULL while nothing was decrypted yet */
            memmove(c->in.data, c->in.data + consumed, c->in.len - consumed);
            c->in.len -= consumed;
        }
        bool more = c->transport.tls != NULL && net_transport_holds_input(&c->transport);
        if (consumed == 0 || !more || http_session_closing(&c->session) ||
            http_session_upgraded(&c->session)) {
            break;
        }
        if (!http_conn_decrypt(c)) {
            return;
        }
    }
    c->blocked = false;
    if (http_session_upgraded(&c->session)) {
        /* The rest of in belongs to the new protocol: kept for the handover. */
        c->state = HTTP_CONN_UPGRADING;
        http_conn_read_stop(c);
        http_conn_timer_start(c, c->server->limits.idle_timeout_ms);
    } else if (http_session_closing(&c->session)) {
        c->state = HTTP_CONN_FINISHING;
        http_conn_read_stop(c);
        lmq_buf_release(&c->in);
        http_conn_timer_start(c, c->server->limits.idle_timeout_ms);
    } else if (c->in.len > 0 || c->session.deferred != NULL) {
        /* Output over the high-water mark, or an answer to come: resume when it drains (or
         * comes). */
        c->blocked = c->in.len > 0;
        if (c->session.deferred != NULL && !c->peer_eof && c->in.len < HTTP_READ_CHUNK_BYTES) {
            http_conn_read_start(c); /* a client that leaves is noticed */
        } else {
            http_conn_read_stop(c);
        }
        http_conn_arm(c);
    } else if (c->peer_eof) {
        c->state = HTTP_CONN_FINISHING; /* every answer the client waited for is queued */
        http_conn_read_stop(c);
        lmq_buf_release(&c->in);
        http_conn_timer_start(c, c->server->limits.idle_timeout_ms);
    } else {
        lmq_buf_release(&c->in); /* an idle connection holds no input buffer */
        http_conn_arm(c);
        http_conn_read_start(c);
    }
    http_conn_flush(c);
}

/* A deferred answer was queued: parse what waited behind it and write. */
static void http_conn_wake(void *ctx)
{
    struct http_conn *c = ctx;
    if (c->state == HTTP_CONN_OPEN) {
        http_conn_process(c);
    }
}

static void http_conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    LMQ_ASSERT(c != NULL && c->reqs_active > 0);
    c->reqs_active--;
    if (c->state == HTTP_CONN_CLOSED) {
        http_conn_maybe_free(c);
    } else if (status != 0) {
        http_conn_close(c);
    }
}

/* The last response is out: send FIN and read (discarding) until the client closes too. */
static void http_conn_linger(struct http_conn *c)
{
    LMQ_ASSERT(c->state == HTTP_CONN_FINISHING);
    LMQ_ASSERT(c->reqs_active == 0 && c->session.out.len == 0);
    c->state = HTTP_CONN_LINGER;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, http_conn_on_shutdown) != 0) {
        http_conn_close(c);
        return;
    }
    c->reqs_active++;
    http_conn_timer_start(c, LMQ_MIN(HTTP_LINGER_MS, c->server->limits.idle_timeout_ms));
    http_conn_read_start(c);
}

static void http_conn_on_write(uv_write_t *req, int status)
{
    struct http_conn *c = req->data;
    LMQ_ASSERT(c != NULL && c->reqs_active > 0);
    c->reqs_active--;
    lmq_buf_release(&c->writing); /* an idle connection holds no output buffer either */
    if (c->state == HTTP_CONN_CLOSED) {
        http_conn_maybe_free(c);
        return;
    }
    if (status != 0) {
        http_conn_close(c);
        return;
    }
    if (c->state == HTTP_CONN_OPEN) {
        if (c->blocked) {
            http_conn_process(c); /* flushes */
            return;
        }
        http_conn_arm(c); /* progress: the idle timeout starts again */
    }
    http_conn_flush(c);
}

/*
 * The upgrade response is out: the socket (duplicated, so closing this connection's handle
 * leaves it open), the TLS session and the early bytes go to the upgrade callback.
 */
static void http_conn_hand_over(struct http_conn *c)
{
    struct http_server *s = c->server;
    LMQ_ASSERT(c->state == HTTP_CONN_UPGRADING && c->reqs_active == 0);
    uv_os_fd_t fd = -1;
    int dup_fd = -1;
    if (s->upgrade != NULL && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        dup_fd = dup(fd);
    if (dup_fd < 0) {
        http_conn_log(c, LMQ_LOG_WARN, "http_upgrade_failed", "cannot duplicate the socket");
        http_conn_close(c);
        return;
    }
    struct tls_session *tls = c->transport.tls;
    c->transport.tls = NULL; /* the callee owns it now */
    http_conn_log(c, LMQ_LOG_DEBUG, "http_upgraded", NULL);
    s->upgrade(s->upgrade_ctx, dup_fd, tls, c->in.data, c->in.len, c->session.upgrade_data,
               c->session.upgrade_data_len);
    http_conn_close(c);
}

/* HTTPS: moves the queued response into wire as TLS records. False when it had to close. */
static bool http_conn_encrypt(struct http_conn *c)
{
    struct lmq_buf *out = &c->session.out;
    if (out->len == 0 || !tls_session_established(c->transport.tls)) {
        return true;
    }
    int rc = net_transport_encode(&c->transport, out->data, out->len, &c->wire,
                                  2 * HTTP_OUTPUT_MAX_BYTES, &c->server->scratch);
    http_session_output_clear(&c->session);
    if (rc != LMQ_OK) {
        http_conn_close(c);
        return false;
    }
    return true;
}

/* Starts a write of everything queued, unless one is in flight. */
static void http_conn_flush(struct http_conn *c)
{
    LMQ_ASSERT(c->state != HTTP_CONN_CLOSED);
    if (c->reqs_active > 0) {
        return; /* the write callback flushes again */
    }
    struct lmq_buf *out = &c->session.out;
    bool tls = c->transport.tls != NULL;
    if (tls && !http_conn_encrypt(c)) {
        return;
    }
    if (tls ? c->wire.len == 0 : out->len == 0) {
        if (c->state == HTTP_CONN_FINISHING) {
            http_conn_linger(c);
        } else if (c->state == HTTP_CONN_UPGRADING) {
            http_conn_hand_over(c);
        }
        return;
    }
    LMQ_ASSERT(c->writing.data == NULL);
    if (tls) { /* the wire bytes change owner */
        c->writing = c->wire;
        c->wire = (struct lmq_buf){NULL, 0, 0};
    } else {
        c->writing = *out;
        *out = (struct lmq_buf){NULL, 0, 0};
    }
    uv_buf_t buf = uv_buf_init((char *)c->writing.data, (unsigned int)c->writing.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, http_conn_on_write) != 0) {
        http_conn_close(c);
        return;
    }
    c->reqs_active++;
}

/* Names the peer in c->remote and hands its address to the session (and to *ss). */
static void http_conn_set_remote(struct http_conn *c, struct sockaddr_storage *ss_out)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(&ss, 0, sizeof(ss)); /* unknown ("?:0") when the peer cannot be had */
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        c->session.peer = ss; /* routes see it (trusted proxies, per-address decisions) */
        c->session.has_peer = true;
    }
    (void)net_address_format(&ss, NET_ADDRESS_BARE, c->remote, sizeof(c->remote));
    *ss_out = ss;
    len = sizeof(c->session.local);
    c->session.has_local =
        uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->session.local, &len) == 0;
}

/* A connection in OPEN state with its handles initialised and linked into the server. */
static struct http_conn *http_conn_new(struct http_server *s)
{
    LMQ_ASSERT(s != NULL && !s->closing);
    struct http_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->server = s;
    c->id = ++s->next_conn_id;
    http_session_init(&c->session, &s->limits, s->route, s->route_ctx);
    c->session.draining = s->draining;
    c->session.wake = http_conn_wake;
    c->session.wake_ctx = c;
    c->in = (struct lmq_buf){NULL, 0, 0};      /* bounded by HTTP_READ_CHUNK_BYTES */
    c->writing = (struct lmq_buf){NULL, 0, 0}; /* a whole out (or wire) handed over */
    int rc = uv_tcp_init(s->loop, &c->tcp);
    LMQ_ASSERT(rc == 0); /* no system call for an AF_UNSPEC handle */
    rc = uv_timer_init(s->loop, &c->timer);
    LMQ_ASSERT(rc == 0);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->conn_count++;
    s->alloc_count++;
    return c;
}

/* A socket from the acceptor (net/accept.c). */
static void http_server_on_connection(void *ctx, int fd)
{
    struct http_server *s = ctx;
    LMQ_ASSERT(s != NULL && s->listener_open && fd >= 0);
    struct http_conn *c = s->closing ? NULL : http_conn_new(s);
    if (c == NULL) {
        if (!s->closing) {
            lmq_log_msg(LMQ_LOG_WARN, "http_connection_dropped", "out of memory");
        }
        close(fd);
        return;
    }
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        http_conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    http_conn_set_remote(c, &ss);
    /* Before the global limit: one address over its share must not use up the refusal slack. */
    const char *why = http_address_admit(s, c, &ss);
    if (why != NULL) {
        http_server_log_refusal(s, c, "http_connection_refused", why);
        http_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->tls != NULL && tls_session_new(s->tls, &c->transport.tls) != LMQ_OK) {
        http_conn_close(c);
        return;
    }
    c->head_deadline_ms = uv_now(s->loop) + s->limits.header_timeout_ms;
    if (s->conn_count > s->limits.max_connections) {
        http_server_log_refusal(s, c, "http_connection_refused", "max_connections");
        /* Over TLS a 503 can only be sent after a handshake: not worth it for a refusal. */
        if (s->conn_count > (size_t)s->limits.max_connections + HTTP_REFUSAL_SLACK || s->tls) {
            http_conn_close(c);
            return;
        }
        http_session_reject(&c->session, 503);
        c->state = HTTP_CONN_FINISHING;
        http_conn_timer_start(c, s->limits.idle_timeout_ms);
        http_conn_flush(c);
        return;
    }
    http_conn_log(c, LMQ_LOG_DEBUG, "http_conn_accepted", NULL);
    if (c->handshaking) {
        http_conn_timer_start(c, s->limits.handshake_timeout_ms);
    } else {
        http_conn_arm(c);
    }
    http_conn_read_start(c);
}

/* ---------------------------------------------------------------- server */

static void http_server_on_listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    LMQ_ASSERT(s != NULL && s->listener_open);
    s->listener_open = false;
    http_server_maybe_free(s);
}

static void http_server_on_acceptor_closed(struct net_acceptor *a)
{
    struct http_server *s = a->ctx;
    LMQ_ASSERT(s != NULL && !net_acceptor_open(a));
    http_server_maybe_free(s);
}

static void http_server_close_listener(struct http_server *s)
{
    LMQ_ASSERT(s != NULL);
    /* The acceptor first: it must not watch the socket once the listener closes it. */
    net_acceptor_close(&s->acceptor, http_server_on_acceptor_closed);
    if (s->listener_open && !s->listener_closing) {
        s->listener_closing = true;
        uv_close((uv_handle_t *)&s->listener, http_server_on_listener_closed);
    }
}

/* Writes "host:port" or "[host]:port" of the bound listener into bound. */
static int http_server_bound_name(struct http_server *s, char *bound, size_t bound_len)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    if (rc != 0) {
        return rc;
    }
    return net_address_format(&ss, NET_ADDRESS_BRACKETED, bound, bound_len) == LMQ_OK ? 0
                                                                                      : UV_ENOBUFS;
}

static bool http_limits_valid(const struct http_limits *l)
{
    return l->max_header_bytes > 0 && l->max_body_bytes > 0 && l->idle_timeout_ms > 0 &&
           l->request_timeout_ms > 0 && l->max_connections > 0 && l->header_timeout_ms > 0 &&
           l->handshake_timeout_ms > 0 && l->max_connections_per_address > 0 &&
           l->max_handshakes_per_address > 0;
}

int http_server_start(uv_loop_t *loop, const char *host, uint16_t port,
                      const struct http_limits *limits, http_route_fn route, void *ctx,
                      struct http_server **out, char *bound, size_t bound_len, char *err,
                      size_t err_len)
{
    LMQ_ASSERT(loop != NULL && host != NULL && limits != NULL && route != NULL);
    LMQ_ASSERT(out != NULL && bound != NULL && bound_len > 0 && err != NULL && err_len > 0);
    struct sockaddr_storage ss;
    err[0] = '\0';
    bound[0] = '\0';
    if (!http_limits_valid(limits)) {
        lmq_errf(err, err_len, "http: every limit must be greater than 0");
        return LMQ_EINVAL;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        lmq_errf(err, err_len, "http: bad listen address \"%s\"", host);
        return LMQ_EINVAL;
    }
    struct http_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        lmq_errf(err, err_len, "http: out of memory");
        return LMQ_ENOMEM;
    }
    *s = (struct http_server){.loop = loop, .limits = *limits, .route = route, .route_ctx = ctx};
    if (lmq_map_create(&s->addresses) != LMQ_OK) {
        free(s);
        lmq_errf(err, err_len, "http: out of memory");
        return LMQ_ENOMEM;
    }
    int rc = uv_tcp_init(loop, &s->listener);
    LMQ_ASSERT(rc == 0); /* no system call for an AF_UNSPEC handle */
    s->listener.data = s;
    s->listener_open = true;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) {
        rc = net_acceptor_start(&s->acceptor, loop, &s->listener, HTTP_LISTEN_BACKLOG, "http",
                                http_server_on_connection, s);
    }
    if (rc == 0) {
        rc = http_server_bound_name(s, bound, bound_len);
    }
    if (rc != 0) {
        lmq_errf(err, err_len, "http: cannot listen on %s:%u: %s", host, port, uv_strerror(rc));
        s->closing = true;
        http_server_close_listener(s); /* frees s from its close callback */
        return LMQ_EIO;
    }
    *out = s;
    return LMQ_OK;
}

int http_server_share(struct http_server *s, uv_loop_t *loop, http_route_fn route, void *ctx,
                      struct http_server **out, char *err, size_t err_len)
{
    LMQ_ASSERT(s != NULL && loop != NULL && loop != s->loop && route != NULL && out != NULL);
    LMQ_ASSERT(s->listener_open && !s->closing && err != NULL && err_len > 0);
    uv_os_fd_t fd = -1;
    int rc = uv_fileno((const uv_handle_t *)&s->listener, &fd);
    LMQ_ASSERT(rc == 0); /* a bound, listening socket */
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        lmq_errf(err, err_len, "http: cannot share the listener: %s", strerror(errno));
        return LMQ_EIO;
    }
    struct http_server *t = calloc(1, sizeof(*t));
    if (t == NULL || lmq_map_create(&t->addresses) != LMQ_OK) {
        free(t);
        close(dup_fd);
        lmq_errf(err, err_len, "http: out of memory");
        return LMQ_ENOMEM;
    }
    /* Every response closes its connection: the server is short-lived. */
    *t = (struct http_server){.loop = loop,
                              .limits = s->limits,
                              .route = route,
                              .route_ctx = ctx,
                              .tls = s->tls,
                              .draining = true,
                              .addresses = t->addresses};
    rc = uv_tcp_init(loop, &t->listener);
    LMQ_ASSERT(rc == 0);
    t->listener.data = t;
    t->listener_open = true;
    rc = uv_tcp_open(&t->listener, dup_fd);
    if (rc != 0)
        close(dup_fd); /* not the handle's: uv_close won't close it */
    if (rc == 0)
        rc = net_acceptor_start(&t->acceptor, loop, &t->listener, HTTP_LISTEN_BACKLOG,
                                s->tls != NULL ? "https" : "http", http_server_on_connection, t);
    if (rc != 0) {
        lmq_errf(err, err_len, "http: cannot share the listener: %s", uv_strerror(rc));
        t->closing = true;
        http_server_close_listener(t); /* frees t from its close callback */
        return LMQ_EIO;
    }
    *out = t;
    return LMQ_OK;
}

void http_server_stop_accepting(struct http_server *s)
{
    LMQ_ASSERT(s != NULL && !s->closing);
    http_server_close_listener(s);
    s->draining = true;
    size_t guard = s->conn_count;
    for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
        LMQ_ASSERT(guard-- > 0);
        c->session.draining = true;
    }
}

void http_server_close(struct http_server *s)
{
    LMQ_ASSERT(s != NULL && !s->closing);
    s->closing = true;
    s->draining = true;
    http_server_close_listener(s);
    /* Each round unlinks the head; the count bounds the rounds. */
    for (size_t guard = s->conn_count + 1; s->conns != NULL; guard--) {
        LMQ_ASSERT(guard > 0);
        http_conn_close(s->conns);
    }
    LMQ_ASSERT(s->conn_count == 0);
    http_server_maybe_free(s);
}

void http_server_set_tls(struct http_server *s, struct tls_server *tls)
{
    LMQ_ASSERT(s != NULL && tls != NULL && s->conns == NULL);
    s->tls = tls;
    s->acceptor.name = "https";
}

void http_server_set_upgrade(struct http_server *s, http_upgrade_fn fn, void *ctx)
{
    LMQ_ASSERT(s != NULL && fn != NULL);
    s->upgrade = fn;
    s->upgrade_ctx = ctx;
}

uint64_t http_server_tls_failures(const struct http_server *s)
{
    return s == NULL ? 0 : s->tls_failures;
}

void http_server_add_stats(const struct http_server *s, struct http_server_stats *st)
{
    LMQ_ASSERT(st != NULL);
    if (s == NULL) {
        return;
    }
    st->refused_address += s->stats.refused_address;
    st->refused_handshakes += s->stats.refused_handshakes;
    st->handshake_timeouts += s->stats.handshake_timeouts;
    st->header_timeouts += s->stats.header_timeouts;
    st->request_timeouts += s->stats.request_timeouts;
    st->emfile += s->acceptor.emfile_count;
}

size_t http_server_connection_count(const struct http_server *s)
{
    LMQ_ASSERT(s != NULL);
    return s->conn_count;
}

int http_error_json(struct http_response *resp, struct lmq_buf *out, int status, const char *reason)
{
    LMQ_ASSERT(resp != NULL && out != NULL && reason != NULL);
    LMQ_ASSERT(strpbrk(reason, "\"\\") == NULL);
    resp->status = status;
    resp->content_type = "application/json";
    return http_body_printf(out, "{\"error\":%d,\"reason\":\"%s\"}", status, reason);
}

bool http_query_value(const struct http_request *req, const char *name, const char **value,
                      size_t *value_len)
{
    size_t name_len = strlen(name);
    const char *q = req->query;
    size_t len = req->query_len;
    /* One pass over the query: bounded by its length. */
    for (size_t i = 0; q != NULL && i < len;) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        if (end - i > name_len && memcmp(q + i, name, name_len) == 0 && q[i + name_len] == '=') {
            *value = q + i + name_len + 1;
            *value_len = end - i - name_len - 1;
            return true;
        }
        i = end + 1;
    }
    return false;
}

bool http_percent_decode(const char *s, size_t len, char *out, size_t cap, size_t *out_len)
{
    LMQ_ASSERT(out != NULL && cap > 0);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < len ? lmq_hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < len ? lmq_hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return false;
            }
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || n + 1 >= cap) {
            return false;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    if (out_len != NULL) {
        *out_len = n;
    }
    return true;
}
