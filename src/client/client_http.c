/*
 * Blocking HTTP/1.1 requests for what the client asks the server outside its connection cycle:
 * the ledger GETs that check receipts and chains (client_net_fetch) and lmq_login(). One
 * request per connection ("Connection: close"), a non-blocking socket polled against one
 * deadline, the response parsed by http-parser.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>

#include "client/client_internal.h"

struct http_fetch {
    struct lmq_buf *body;
    size_t body_max_bytes;
    bool complete;
};

static int http__on_body(http_parser *p, const char *at, size_t len)
{
    struct http_fetch *f = p->data;
    return lmq_buf_append(f->body, at, len, f->body_max_bytes) == 0 ? 0 : 1;
}

static int http__on_complete(http_parser *p)
{
    ((struct http_fetch *)p->data)->complete = true;
    return 0;
}

/* Waits for events on fd until the deadline. 0 when ready, LMQ_EIO on timeout or error. */
static int http__wait(int fd, short events, uint64_t deadline_ms)
{
    uint64_t now_ms = uv_hrtime() / 1000000u;
    struct pollfd pfd = {.fd = fd, .events = events};
    if (now_ms >= deadline_ms) {
        return LMQ_EIO;
    }
    int n = poll(&pfd, 1, (int)(deadline_ms - now_ms));
    return n == 1 && (pfd.revents & (events | POLLHUP)) != 0 ? 0 : LMQ_EIO;
}

/* Connects to addr and writes the whole request. Returns the socket or -1. */
static int http__send(const struct sockaddr_storage *addr, const char *req, size_t req_len,
                      uint64_t deadline_ms)
{
    socklen_t alen =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int err = 0;
    socklen_t err_len = sizeof(err);
    if ((connect(fd, (const struct sockaddr *)addr, alen) != 0 && errno != EINPROGRESS) ||
        http__wait(fd, POLLOUT, deadline_ms) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0 || err != 0) {
        close(fd);
        return -1;
    }
    size_t sent = 0;
    /* Each round sends at least one byte or fails: bounded by the request length. */
    while (sent < req_len) {
        ssize_t n = send(fd, req + sent, req_len - sent, MSG_NOSIGNAL);
        if (n < 0 && (errno != EAGAIN || http__wait(fd, POLLOUT, deadline_ms) != 0)) {
            close(fd);
            return -1;
        }
        sent += n > 0 ? (size_t)n : 0;
    }
    return fd;
}

int client_http_request(const struct sockaddr_storage *addr, const char *method, const char *path,
                        const char *bearer, const char *json_body, struct lmq_buf *body,
                        size_t body_max_bytes, uint32_t timeout_ms, unsigned *status)
{
    LMQ_ASSERT(addr != NULL && method != NULL && path != NULL && body != NULL && status != NULL);
    char req[CLIENT_HTTP_REQUEST_MAX_BYTES], chunk[4096];
    struct http_fetch f = {.body = body, .body_max_bytes = body_max_bytes};
    http_parser parser;
    http_parser_settings settings;
    uint64_t deadline_ms = uv_hrtime() / 1000000u + timeout_ms;
    size_t body_len = json_body != NULL ? strlen(json_body) : 0;
    char length[96] = "";
    if (json_body != NULL) {
        snprintf(length, sizeof(length),
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    }
    int n = snprintf(
        req, sizeof(req), "%s %s HTTP/1.1\r\nHost: ledgermq\r\nConnection: close\r\n%s%s%s%s\r\n%s",
        method, path, bearer != NULL ? "Authorization: Bearer " : "", bearer != NULL ? bearer : "",
        bearer != NULL ? "\r\n" : "", length, json_body != NULL ? json_body : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        return LMQ_ETOOBIG;
    }
    body->len = 0;
    *status = 0;
    int fd = http__send(addr, req, (size_t)n, deadline_ms);
    if (fd < 0) {
        return LMQ_EIO;
    }
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &f;
    http_parser_settings_init(&settings);
    settings.on_body = http__on_body;
    settings.on_message_complete = http__on_complete;
    int rc = 0;
    /* Each round reads at least a byte, or waits until the deadline: bounded by both. */
    while (!f.complete && rc == 0) {
        ssize_t got = recv(fd, chunk, sizeof(chunk), 0);
        if (got < 0) {
            rc = errno == EAGAIN ? http__wait(fd, POLLIN, deadline_ms) : LMQ_EIO;
            continue;
        }
        size_t used = http_parser_execute(&parser, &settings, chunk, (size_t)got);
        if (used != (size_t)got || HTTP_PARSER_ERRNO(&parser) != HPE_OK ||
            (got == 0 && !f.complete)) {
            rc = LMQ_EIO;
        }
    }
    close(fd);
    *status = f.complete ? parser.status_code : 0;
    LMQ_ASSERT(rc != 0 || f.complete);
    return rc;
}
