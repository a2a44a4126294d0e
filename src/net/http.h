/*
 * HTTP/1.1 server on the libuv loop, parsing with Debian's http-parser.
 *
 * Keep-alive and pipelining (responses in request order), HTTP/1.0 closes unless it asks for
 * keep-alive. Every buffer is bounded (struct http_limits and the HTTP_*_MAX_BYTES constants
 * below); what happens at each bound: header bytes -> 431, body bytes -> 413, a request whose
 * head is not complete within header_timeout_ms (the first one counted from accept, or from
 * the end of the TLS handshake) or that is not complete within request_timeout_ms -> 408 and
 * close, no request within idle_timeout_ms -> close, a TLS handshake not done within
 * handshake_timeout_ms -> close, max_connections -> 503 and close, more than
 * max_connections_per_address open (or max_handshakes_per_address handshaking) from one IP
 * address -> closed at accept, a parse error -> 400 and close. Every error response carries a
 * JSON body {"error":404,"reason":"Not Found"}.
 *
 * Single-threaded: every function here is called on the loop thread.
 */
#ifndef LMQ_HTTP_H
#define LMQ_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <uv.h>

#include "core/buf.h"
#include "core/lmq.h"

/* Largest response body a route may write: the bound it passes to lmq_buf_append and
 * lmq_buf_printf, which fail with LMQ_ELIMIT past it. */
#define HTTP_RESPONSE_BODY_MAX_BYTES (4u * 1024u * 1024u)
/* Appends formatted text to a route's response body, under HTTP_RESPONSE_BODY_MAX_BYTES. */
#define http_body_printf(out, ...) lmq_buf_printf((out), HTTP_RESPONSE_BODY_MAX_BYTES, __VA_ARGS__)

struct http_response;
/* The project's JSON error answer: status, Content-Type application/json and the body
 * {"error":<status>,"reason":"<reason>"} (reason: a static name or message without quotes or
 * backslashes). Returns what http_body_printf returns. */
int http_error_json(struct http_response *resp, struct lmq_buf *out, int status,
                    const char *reason);
/* Most header fields in one request; more -> 431. */
#define HTTP_HEADERS_MAX 100
/* Longest request target; longer -> 414 (http-parser's URL offsets are 16-bit). */
#define HTTP_URL_MAX_BYTES 8192

/* Connections accepted past max_connections only to answer 503; beyond, closed at once. */
#define HTTP_REFUSAL_SLACK 64u

struct http_server;

/* One request as the route sees it. Nothing is NUL-terminated except method. */
struct http_request {
    const char *method; /* "GET", "HEAD", "POST", ... (HEAD: the module drops the body) */
    const char *path;   /* the path of the request target, without query or fragment */
    size_t path_len;
    const uint8_t *body; /* the whole body, de-chunked; NULL when empty */
    size_t body_len;
    const char *query; /* after '?', without it; NULL when absent */
    size_t query_len;
    const void *internal; /* for http_request_header() */
    /* The TCP peer (not any proxy header's claim); NULL when unknown (no socket, e.g. fuzzing) */
    const struct sockaddr_storage *peer;
    /* The local address the connection arrived on; NULL when unknown */
    const struct sockaddr_storage *local;
};

/*
 * A request answered later (after a commit, say). Inside the route, http_request_defer() takes
 * the answer out of the route's hands: the route returns 0 and its response is not sent;
 * nothing further is read from the connection until http_deferred_answer() queues the answer
 * (so responses stay in request order). If the connection closes first (idle timeout, the
 * client went away, shutdown), abandoned(ctx) is called once and the handle is gone: the
 * owner must not answer it afterwards. The handle is freed by answering or abandoning.
 */
struct http_deferred;
typedef void (*http_abandoned_fn)(void *ctx);
/* NULL when the request can't wait (no memory, or not called from a route): answer now. */
struct http_deferred *http_request_defer(const struct http_request *req,
                                         http_abandoned_fn abandoned, void *ctx);
/* Queues the answer (resp and body as a route would set them; status 200..599) and resumes
 * reading the connection. Frees d. */
void http_deferred_answer(struct http_deferred *d, const struct http_response *resp,
                          const struct lmq_buf *body);

/* Bytes a route may attach to an accepted upgrade for the upgrade callback. */
#define HTTP_UPGRADE_DATA_MAX_BYTES 512

struct http_response {
    int status;                /* 200 when the route leaves it; 200..599, or 101 with upgraded */
    const char *content_type;  /* static string; default text/plain; charset=utf-8 */
    const char *allow;         /* static string, sent as Allow (set it with 405) */
    const char *extra_headers; /* static "Name: value\r\n" lines added as they are, or NULL */
    /*
     * The route accepted a protocol upgrade (status 101): out holds the complete raw response
     * (status line, headers, blank line), sent as it is. No further request is read; once the
     * response is written the connection is handed to the server's upgrade callback.
     */
    bool upgraded;
    /* With upgraded: handed as they are to the upgrade callback (what the route learnt from the
     * request about the peer, say). */
    uint8_t upgrade_data[HTTP_UPGRADE_DATA_MAX_BYTES];
    size_t upgrade_data_len;
};

struct http_limits {
    uint32_t max_header_bytes;     /* request line + header fields; more -> 431 */
    uint32_t max_body_bytes;       /* request body; more -> 413 */
    uint32_t idle_timeout_ms;      /* no request in progress for this long -> close */
    uint32_t request_timeout_ms;   /* a request (headers + body) must arrive within this -> 408 */
    uint32_t max_connections;      /* open connections; more -> 503 and close */
    uint32_t header_timeout_ms;    /* request line + headers must arrive within this -> 408 */
    uint32_t handshake_timeout_ms; /* HTTPS: TLS handshake done within this -> close */
    uint32_t max_connections_per_address; /* open connections from one IP; more -> closed */
    uint32_t max_handshakes_per_address;  /* HTTPS: handshakes in progress from one IP */
};

/*
 * Writes the response body into out (an empty lmq_buf; every append to it names
 * HTTP_RESPONSE_BODY_MAX_BYTES as its bound) and sets status
 * and content type. Returns 0, or a negative error -> 500. For status >= 400 with an empty body
 * the module writes the JSON error body. The route runs on the loop thread and must not block.
 */
typedef int (*http_route_fn)(void *ctx, const struct http_request *req, struct http_response *resp,
                             struct lmq_buf *out);

/*
 * Listens on host:port (numeric IPv4 or IPv6; port 0 picks a free one) and serves requests
 * through route. On success *out is the server and bound holds "127.0.0.1:PORT" or "[::1]:PORT"
 * as actually bound. On failure returns LMQ_EINVAL (bad argument) or LMQ_EIO (bind/listen) with
 * a one-line message in err; resources are then released when the loop next runs.
 */
int http_server_start(uv_loop_t *loop, const char *host, uint16_t port,
                      const struct http_limits *limits, http_route_fn route, void *ctx,
                      struct http_server **out, char *bound, size_t bound_len, char *err,
                      size_t err_len) LMQ_WUR;

struct tls_server;
struct tls_session;

/*
 * Serves HTTPS: every connection accepted from now on speaks TLS with s's certificates (the
 * caller keeps tls alive while the server runs). Call right after http_server_start.
 */
void http_server_set_tls(struct http_server *s, struct tls_server *tls);

/*
 * Takes a connection whose upgrade response was written: fd (a duplicate the callee owns), the
 * TLS session that carried it (owned by the callee; NULL over plain HTTP), the bytes the
 * client sent after the upgrade request and the route's upgrade_data (both valid during the
 * call). The HTTP server forgets the connection afterwards.
 */
typedef void (*http_upgrade_fn)(void *ctx, int fd, struct tls_session *tls, const uint8_t *early,
                                size_t early_len, const uint8_t *data, size_t data_len);
void http_server_set_upgrade(struct http_server *s, http_upgrade_fn fn, void *ctx);

/* TLS handshakes that failed on this server (0 without TLS). */
uint64_t http_server_tls_failures(const struct http_server *s);

/* What the server refused or closed to protect itself (counters since start). */
struct http_server_stats {
    uint64_t refused_address;    /* closed at accept: max_connections_per_address */
    uint64_t refused_handshakes; /* closed at accept: max_handshakes_per_address */
    uint64_t handshake_timeouts; /* TLS handshake not done within handshake_timeout_ms */
    uint64_t header_timeouts;    /* request head not complete within header_timeout_ms */
    uint64_t request_timeouts;   /* request not complete within request_timeout_ms */
    uint64_t emfile;             /* accepts that failed for want of a file descriptor */
};
/* Adds this server's counters to *st (s may be NULL). */
void http_server_add_stats(const struct http_server *s, struct http_server_stats *st);

/*
 * A second server, on another loop (run by another thread), for s's listening socket (a
 * duplicate descriptor) with s's limits and TLS, answering through route and closing every
 * connection after its response: what answers while s's loop can't (the broker's start-up).
 * Only one of the two loops may run at a time; close the second with http_server_close (from
 * its loop's thread, or once that loop has stopped) and run its loop until the closes are done.
 */
int http_server_share(struct http_server *s, uv_loop_t *loop, http_route_fn route, void *ctx,
                      struct http_server **out, char *err, size_t err_len) LMQ_WUR;

/* Shutdown step 1: closes the listener; every later response says Connection: close. */
void http_server_stop_accepting(struct http_server *s);

/* Closes every connection and the listener; s is freed once the loop has run the closes. */
void http_server_close(struct http_server *s);

/* Open connections, including those being refused or finishing their last response. */
size_t http_server_connection_count(const struct http_server *s);

/* The raw (still percent-encoded) value of the first name=VALUE of the query string whose name
 * is exactly name (an empty value included); false when there is none. Valid during the route. */
bool http_query_value(const struct http_request *req, const char *name, const char **value,
                      size_t *value_len);
/* Percent-decodes s[0..len) of a query string ('+' as a space) into out, NUL-terminated, with
 * *out_len the bytes written (out_len may be NULL). False when malformed (a '%' without two hex
 * digits), holding a NUL, or longer than cap - 1. */
bool http_percent_decode(const char *s, size_t len, char *out, size_t cap, size_t *out_len);

/*
 * Finds a request header by name (case-insensitive). Returns true and the value (not
 * NUL-terminated, leading/trailing blanks removed) or false when absent. Valid during the route.
 */
bool http_request_header(const struct http_request *req, const char *name, const char **value,
                         size_t *value_len);
/* The same for the nth (from 0) header field of that name, for headers that may repeat. */
bool http_request_header_at(const struct http_request *req, const char *name, size_t nth,
                            const char **value, size_t *value_len);

/*
 * The server's request parsing and response framing without sockets: the server drives one
 * session per connection; the fuzz target drives it directly.
 */
struct http_session;

/* True while a request's line and headers are arriving. */
bool http_session_in_head(const struct http_session *s);
/* Allocates a session. Returns 0 or LMQ_ENOMEM. */
int http_session_new(const struct http_limits *limits, http_route_fn route, void *ctx,
                     struct http_session **out) LMQ_WUR;
void http_session_free(struct http_session *s);
/*
 * Parses data, calls the route for each complete request and queues the responses. Sets
 * *consumed to the bytes taken: fewer than len when the session is closing (the rest is to be
 * discarded) or its output is over its high-water mark (feed the rest once output drained).
 */
void http_session_feed(struct http_session *s, const uint8_t *data, size_t len, size_t *consumed);
/* Output queued and not yet taken. */
const struct lmq_buf *http_session_output(const struct http_session *s);
/* Drops all queued output (the caller has taken it). */
void http_session_output_clear(struct http_session *s);
/* True once no further request will be read: close after the queued output. */
bool http_session_closing(const struct http_session *s);
/* True once an upgrade was accepted: hand the connection over after the queued output. */
bool http_session_upgraded(const struct http_session *s);
/* True while a request has started and is not complete. */
bool http_session_in_request(const struct http_session *s);
/* The request timeout fired: queues 408 and closes if a request is in progress. */
void http_session_expire(struct http_session *s);

#endif
