/*
 * Outbound HTTP on the loop (http_client.h). Each request is one curl easy handle on the
 * client's multi handle; curl tells us which sockets to watch (http_client_on_socket: a
 * uv_poll_t each) and when to call it back (http_client_on_timeout: one uv_timer_t). When a
 * transfer ends, http_client_check_done hands its result to the request's callback.
 */
#include "net/http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

struct http_client_req {
    struct http_client *client;
    struct http_client_req *prev, *next; /* the client's list of requests in flight */
    CURL *easy;
    struct curl_slist *headers;
    uint8_t *body; /* a copy of the request body */
    uint8_t *answer;
    size_t answer_len, answer_cap, answer_max_bytes;
    bool keep_answer;
    bool too_big;
    http_client_done_fn done;
    void *ctx;
    char error[CURL_ERROR_SIZE];
};

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct http_client_req *head;
    size_t count;
    bool dispatching; /* inside http_client_check_done */
    bool closing;
};

struct http_client_socket {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_client *client;
};

/* ---- requests ---- */

static void http_client_req_free(struct http_client_req *r)
{
    struct http_client *c = r->client;
    LMQ_ASSERT(c->count > 0);
    if (r->easy != NULL) {
        curl_multi_remove_handle(c->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    c->count--;
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->answer);
    free(r);
}

static size_t http_client_on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct http_client_req *r = ctx;
    size_t n = size * nmemb;
    if (n > r->answer_max_bytes - r->answer_len) {
        r->too_big = true;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (r->keep_answer) {
        if (r->answer_len + n + 1 > r->answer_cap) {
            size_t cap = LMQ_MAX(r->answer_cap * 2, r->answer_len + n + 1);
            cap = LMQ_MIN(cap, r->answer_max_bytes + 1);
            uint8_t *p = realloc(r->answer, cap);
            if (p == NULL)
                return 0;
            r->answer = p;
            r->answer_cap = cap;
        }
        memcpy(r->answer + r->answer_len, data, n);
        r->answer[r->answer_len + n] = '\0'; /* a NUL after the body, for text parsers */
    }
    r->answer_len += n;
    return n;
}

static bool http_client_setup(struct http_client_req *r, const struct http_client_request *q)
{
    for (size_t i = 0; i < q->header_count; i++) {
        struct curl_slist *l = curl_slist_append(r->headers, q->headers[i]);
        if (l == NULL)
            return false;
        r->headers = l;
    }
    if (q->body_len > 0) {
        r->body = malloc(q->body_len);
        if (r->body == NULL)
            return false;
        memcpy(r->body, q->body, q->body_len);
    }
    if ((r->easy = curl_easy_init()) == NULL)
        return false;
    CURL *e = r->easy;
    long timeout = (long)q->timeout_ms;
    bool post = strcmp(q->method, "POST") == 0;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, q->url) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                               LMQ_MIN(timeout, (long)HTTP_CLIENT_CONNECT_MAX_MS)) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_USERAGENT, "ledgermq/" LMQ_VERSION) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_client_on_body) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PRIVATE, r) == CURLE_OK;
    if (ok && post)
        ok = curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body != NULL ? (char *)r->body : "") ==
                 CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len) == CURLE_OK;
    return ok;
}

int http_client_submit(struct http_client *c, const struct http_client_request *q,
                       http_client_done_fn done, void *ctx, struct http_client_req **handle)
{
    LMQ_ASSERT(c != NULL && q != NULL && done != NULL);
    LMQ_ASSERT(!c->closing);
    if (q->method == NULL || q->url == NULL || q->timeout_ms == 0 ||
        q->header_count > HTTP_CLIENT_HEADERS_MAX || q->answer_max_bytes == 0 ||
        (strcmp(q->method, "POST") != 0 && strcmp(q->method, "GET") != 0))
        return LMQ_EINVAL;
    if (c->count >= HTTP_CLIENT_REQUESTS_MAX)
        return LMQ_ELIMIT;
    struct http_client_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return LMQ_ENOMEM;
    *r = (struct http_client_req){.client = c,
                                  .next = c->head,
                                  .answer_max_bytes = q->answer_max_bytes,
                                  .keep_answer = q->keep_answer,
                                  .done = done,
                                  .ctx = ctx};
    if (c->head != NULL)
        c->head->prev = r;
    c->head = r;
    c->count++;
    if (!http_client_setup(r, q)) {
        http_client_req_free(r);
        return LMQ_ENOMEM;
    }
    if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        http_client_req_free(r);
        return LMQ_ENOMEM;
    }
    if (handle != NULL)
        *handle = r;
    return LMQ_OK;
}

void http_client_cancel(struct http_client_req *r)
{
    LMQ_ASSERT(r != NULL && r->client != NULL);
    http_client_req_free(r);
}

size_t http_client_in_flight(const struct http_client *c)
{
    return c != NULL ? c->count : 0;
}

/* ---- ends of transfers ---- */

static void http_client_finished(struct http_client_req *r, CURLcode result)
{
    struct http_client_result res = {.outcome = HTTP_CLIENT_ANSWERED, .error = ""};
    char error[HTTP_CLIENT_ERROR_MAX_CHARS];
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
    if (r->too_big) {
        res.outcome = HTTP_CLIENT_TOO_BIG;
        snprintf(error, sizeof(error), "answer body over %zu bytes", r->answer_max_bytes);
        res.error = error;
    } else if (result != CURLE_OK) {
        res.outcome =
            result == CURLE_OPERATION_TIMEDOUT ? HTTP_CLIENT_TIMEOUT : HTTP_CLIENT_TRANSPORT;
        snprintf(error, sizeof(error), "%s",
                 r->error[0] != '\0' ? r->error : curl_easy_strerror(result));
        res.error = error;
    }
    res.body = r->answer != NULL ? r->answer : (const uint8_t *)"";
    res.body_len = r->keep_answer ? r->answer_len : 0;
    http_client_done_fn done = r->done;
    void *ctx = r->ctx;
    /* The callback sees its answer; the request is gone after it. */
    uint8_t *answer = r->answer;
    r->answer = NULL;
    http_client_req_free(r);
    done(ctx, &res);
    free(answer);
}

static void http_client_finish_close(struct http_client *c);

static void http_client_check_done(struct http_client *c)
{
    LMQ_ASSERT(!c->dispatching);
    c->dispatching = true;
    CURLMsg *msg;
    int left = 0;
    /* Each message ends one request: the loop is bounded by the requests in flight. */
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct http_client_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        LMQ_ASSERT(r != NULL && r->easy == msg->easy_handle);
        http_client_finished(r, msg->data.result);
    }
    c->dispatching = false;
    if (c->closing)
        http_client_finish_close(c);
}

/* ---- libcurl on the loop ---- */

static void http_client_socket_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void http_client_on_poll(uv_poll_t *poll, int status, int events)
{
    struct http_client_socket *s = poll->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running = 0;
    struct http_client *c = s->client;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    http_client_check_done(c);
}

static int http_client_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    LMQ_UNUSED(easy);
    struct http_client *c = userp;
    struct http_client_socket *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(c->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, http_client_socket_closed);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL || uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1; /* curl fails the transfer */
        }
        s->fd = fd;
        s->client = c;
        s->poll.data = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int events =
        ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, http_client_on_poll);
    return 0;
}

static void http_client_on_timer(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_client_check_done(c);
}

static int http_client_on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
    LMQ_UNUSED(multi);
    struct http_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, http_client_on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- lifecycle ---- */

int http_client_create(uv_loop_t *loop, struct http_client **out)
{
    LMQ_ASSERT(loop != NULL && out != NULL);
    *out = NULL;
    /* Reference-counted by libcurl: one per client, undone in http_client_finish_close. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return LMQ_ENOMEM;
    struct http_client *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->multi = curl_multi_init()) == NULL) {
        free(c);
        curl_global_cleanup();
        return LMQ_ENOMEM;
    }
    c->loop = loop;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, http_client_on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, http_client_on_timeout);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    *out = c;
    return LMQ_OK;
}

static void http_client_timer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void http_client_finish_close(struct http_client *c)
{
    LMQ_ASSERT(c->closing && c->count == 0);
    /* Closes the connections curl keeps for reuse: their sockets' polls close with them. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    curl_global_cleanup();
    uv_close((uv_handle_t *)&c->timer, http_client_timer_closed);
}

void http_client_close(struct http_client *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    /* Bounded: each round frees one request. */
    while (c->head != NULL)
        http_client_req_free(c->head);
    if (!c->dispatching) /* otherwise http_client_check_done finishes when it returns */
        http_client_finish_close(c);
}
