/*
 * The start-up half of the /healthz lifecycle (docs/PROTOCOL.md, "Health and lifecycle"):
 * starting -> ready -> draining -> stopped. The HTTP listeners are bound before recovery, and
 * while recovery rebuilds the broker's memory on the loop thread (it is synchronous: the store is
 * read row by row into the broker's structures, which only that thread may touch), a second
 * thread with a loop of its own serves the same listening sockets (http_server_share) and answers
 * every request 503: {"status":"starting"} on /healthz, {"error":503,"reason":"starting"}
 * elsewhere. It touches nothing of the broker's. Once recovery is done it stops accepting, lets
 * the connections it already accepted finish their answer (each says Connection: close; at most
 * LIFECYCLE_FINISH_MAX_MS), then stops, and the broker's own loop answers from then on:
 * connections waiting in the listen backlog at the switch are served by the broker's loop. So a
 * probe polling through the switch never sees a connection reset.
 */
#include "broker/broker_internal.h"

#include <stdlib.h>
#include <string.h>

#include "net/http.h"

/* How long the start-up loop waits, after recovery, for the answers it is writing. */
#define LIFECYCLE_FINISH_MAX_MS 1000
#define LIFECYCLE_FINISH_POLL_MS 5

struct lifecycle_starting {
    uv_loop_t loop;
    uv_async_t stop;
    uv_timer_t finish; /* polls until the accepted connections are done */
    uint64_t finish_deadline_ms;
    uv_thread_t thread;
    struct http_server *servers[2]; /* the shares of b->http and b->https (NULL when absent) */
};

static int lifecycle_starting_route(void *ctx, const struct http_request *req,
                                    struct http_response *resp, struct lmq_buf *out)
{
    LMQ_UNUSED(ctx);
    LMQ_ASSERT(req != NULL && resp != NULL);
    bool healthz = req->path_len == 8 && memcmp(req->path, "/healthz", 8) == 0;
    resp->status = 503;
    resp->content_type = "application/json";
    return http_body_printf(out, healthz ? "{\"status\":\"starting\"}"
                                         : "{\"error\":503,\"reason\":\"starting\"}");
}

static void lifecycle_on_finish(uv_timer_t *t)
{
    struct lifecycle_starting *ls = t->data;
    size_t open = 0;
    for (size_t i = 0; i < 2; i++)
        open += ls->servers[i] != NULL ? http_server_connection_count(ls->servers[i]) : 0;
    if (open == 0 || uv_now(&ls->loop) >= ls->finish_deadline_ms)
        uv_stop(&ls->loop);
}

/* Recovery is done: no new connection here; the accepted ones finish, then the loop stops. */
static void lifecycle_on_stop(uv_async_t *h)
{
    struct lifecycle_starting *ls = h->data;
    for (size_t i = 0; i < 2; i++)
        if (ls->servers[i] != NULL)
            http_server_stop_accepting(ls->servers[i]);
    ls->finish_deadline_ms = uv_now(&ls->loop) + LIFECYCLE_FINISH_MAX_MS;
    uv_timer_start(&ls->finish, lifecycle_on_finish, 0, LIFECYCLE_FINISH_POLL_MS);
}

static void lifecycle_thread(void *arg)
{
    struct lifecycle_starting *ls = arg;
    (void)uv_run(&ls->loop, UV_RUN_DEFAULT); /* until lifecycle_on_stop */
}

/* Closes what the loop holds and runs it until the closes are done (the thread has ended). */
static void lifecycle_close(struct lifecycle_starting *ls)
{
    for (size_t i = 0; i < 2; i++)
        if (ls->servers[i] != NULL)
            http_server_close(ls->servers[i]);
    uv_close((uv_handle_t *)&ls->stop, NULL);
    uv_close((uv_handle_t *)&ls->finish, NULL);
    (void)uv_run(&ls->loop, UV_RUN_DEFAULT); /* returns once every handle is closed */
    int rc = uv_loop_close(&ls->loop);
    LMQ_ASSERT(rc == 0);
    free(ls);
}

int lifecycle_starting_begin(struct broker *b, struct lifecycle_starting **out)
{
    LMQ_ASSERT(b != NULL && out != NULL);
    *out = NULL;
    if (b->http == NULL && b->https == NULL)
        return LMQ_OK;
    struct lifecycle_starting *ls = calloc(1, sizeof(*ls));
    if (ls == NULL)
        return LMQ_ENOMEM;
    if (uv_loop_init(&ls->loop) != 0) {
        free(ls);
        return LMQ_EIO;
    }
    int rc = uv_async_init(&ls->loop, &ls->stop, lifecycle_on_stop);
    LMQ_ASSERT(rc == 0);
    ls->stop.data = ls;
    rc = uv_timer_init(&ls->loop, &ls->finish);
    LMQ_ASSERT(rc == 0);
    ls->finish.data = ls;
    struct http_server *mine[2] = {b->http, b->https};
    char err[256];
    for (size_t i = 0; i < 2; i++) {
        if (mine[i] == NULL)
            continue;
        if (http_server_share(mine[i], &ls->loop, lifecycle_starting_route, NULL, &ls->servers[i],
                              err, sizeof(err)) != LMQ_OK) {
            lmq_log_msg(LMQ_LOG_ERROR, "starting_listener_failed", err);
            lifecycle_close(ls);
            return LMQ_EIO;
        }
    }
    if (uv_thread_create(&ls->thread, lifecycle_thread, ls) != 0) {
        lifecycle_close(ls);
        return LMQ_EIO;
    }
    *out = ls;
    return LMQ_OK;
}

void lifecycle_starting_end(struct lifecycle_starting *ls)
{
    if (ls == NULL)
        return;
    int rc = uv_async_send(&ls->stop);
    LMQ_ASSERT(rc == 0);
    rc = uv_thread_join(&ls->thread);
    LMQ_ASSERT(rc == 0);
    lifecycle_close(ls); /* the thread has ended: its loop is this thread's now */
}

/* Test-only (docs/PROTOCOL.md): LMQ_TEST_RECOVERY_DELAY_MS makes recovery that much longer, at
 * most a minute, so a test can watch the starting state. */
#define LIFECYCLE_TEST_DELAY_MAX_MS 60000

void lifecycle_test_recovery_delay(void)
{
    const char *v = getenv("LMQ_TEST_RECOVERY_DELAY_MS");
    if (v == NULL || v[0] == '\0')
        return;
    char *end = NULL;
    unsigned long ms = strtoul(v, &end, 10);
    if (end == NULL || *end != '\0' || ms == 0)
        return;
    ms = LMQ_MIN(ms, (unsigned long)LIFECYCLE_TEST_DELAY_MAX_MS);
    lmq_log_msg(LMQ_LOG_WARN, "test_recovery_delay", v);
    uv_sleep((unsigned int)ms);
}
