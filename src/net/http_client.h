/*
 * Outbound HTTP(S) requests on a libuv loop (no thread per request): libcurl's multi interface
 * driven by a uv_poll_t per socket curl asks to watch and one uv_timer_t for curl's timeouts.
 * Shared by the webhooks (src/events/webhooks.c) and the Ethereum JSON-RPC client
 * (src/eth/eth_rpc.c). Redirects are never followed; only http and https URLs are allowed; the
 * answer body is bounded per request. Depends on core/ only (not on the broker).
 */
#ifndef LMQ_HTTP_CLIENT_H
#define LMQ_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/lmq.h"

/* Headers one request may carry. */
#define HTTP_CLIENT_HEADERS_MAX 16
/* Requests in flight on one client at once (http_client_submit refuses more). */
#define HTTP_CLIENT_REQUESTS_MAX 1024
/* The longest connect, within the request's timeout. */
#define HTTP_CLIENT_CONNECT_MAX_MS 10000
/* Bytes of an error text. */
#define HTTP_CLIENT_ERROR_MAX_CHARS 256

struct http_client;
struct http_client_req;

struct http_client_request {
    const char *method;                           /* "GET" or "POST" */
    const char *url;                              /* http:// or https:// */
    const char *headers[HTTP_CLIENT_HEADERS_MAX]; /* "Name: value" lines, copied */
    size_t header_count;
    const uint8_t *body; /* copied; may be NULL for none */
    size_t body_len;
    uint32_t timeout_ms;     /* the whole request, connect included (> 0) */
    size_t answer_max_bytes; /* a longer answer body fails with HTTP_CLIENT_TOO_BIG */
    bool keep_answer;        /* false: the body is counted (and bounded) but not kept */
};

enum http_client_outcome {
    HTTP_CLIENT_ANSWERED = 0, /* an HTTP answer came (any status) */
    HTTP_CLIENT_TRANSPORT,    /* no answer: DNS, connect, TLS, reset, bad URL... */
    HTTP_CLIENT_TIMEOUT,      /* no complete answer within timeout_ms */
    HTTP_CLIENT_TOO_BIG,      /* the answer body passed answer_max_bytes (the rest not read) */
};

struct http_client_result {
    enum http_client_outcome outcome;
    long status;         /* the HTTP status if one came (0 otherwise) */
    const uint8_t *body; /* the answer body when kept (valid during the callback only) */
    size_t body_len;
    const char *error; /* one line when not answered ("" when answered) */
};

/* Called once per submitted request unless it was cancelled; the request is gone after it
 * returns. It may submit and cancel other requests. */
typedef void (*http_client_done_fn)(void *ctx, const struct http_client_result *r);

/* A client on loop: 0, LMQ_ENOMEM. Closed with http_client_close. */
int http_client_create(uv_loop_t *loop, struct http_client **out) LMQ_WUR;
/* Starts req; done(ctx, ...) is called from the loop when it ends (never from this call).
 * *handle (may be NULL) is valid until done runs or http_client_cancel. 0; LMQ_EINVAL (a bad
 * request); LMQ_ELIMIT (HTTP_CLIENT_REQUESTS_MAX in flight); LMQ_ENOMEM. */
int http_client_submit(struct http_client *c, const struct http_client_request *req,
                       http_client_done_fn done, void *ctx,
                       struct http_client_req **handle) LMQ_WUR;
/* Aborts a request in flight: its done is never called. */
void http_client_cancel(struct http_client_req *r);
/* Requests in flight. */
size_t http_client_in_flight(const struct http_client *c);
/* Aborts every request (no done is called), closes the connections and the handles; the
 * memory is freed when the loop runs the closes. c may be NULL. */
void http_client_close(struct http_client *c);

#endif
