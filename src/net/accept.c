/*
 * Accepting connections with accept4(2) behind a uv_poll_t, and the reserve descriptor that
 * turns EMFILE into a logged, bounded event (see accept.h for why not uv_listen's own path).
 */
#include "net/accept.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

/* Connections accepted per readiness callback: other work gets its turn between batches. */
#define NET_ACCEPT_BATCH_MAX 128
/* Pending connections dropped per EMFILE event (the rest wait for the next callback). */
#define NET_ACCEPT_DROP_MAX 1024
/* Without a reserve (it could not be re-opened), accepting pauses this long. */
#define NET_ACCEPT_RETRY_MS 100
/* At most one "emfile" line per second per listener. */
#define NET_ACCEPT_LOG_MS 1000

/* One descriptor kept in reserve for the whole process; -1 while it is lent out or lost. */
static int net_accept_reserve = -1;

static void net_accept_reserve_open(void)
{
    if (net_accept_reserve < 0) {
        net_accept_reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
}

static void net_acceptor_log(struct net_acceptor *a, uv_loop_t *loop, size_t dropped)
{
    uint64_t now = uv_now(loop);
    if (a->emfile_logged_ms != 0 && now - a->emfile_logged_ms < NET_ACCEPT_LOG_MS) {
        return;
    }
    a->emfile_logged_ms = now;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_ERROR, "emfile")) {
        lmq_log_str(&line, "listener", a->name);
        lmq_log_str(&line, "detail", "out of file descriptors: pending connections were closed");
        lmq_log_uint(&line, "dropped", dropped);
        lmq_log_uint(&line, "events", a->emfile_count);
        lmq_log_uint(&line, "dropped_total", a->emfile_dropped);
        lmq_log_bool(&line, "reserve", net_accept_reserve >= 0);
        lmq_log_end(&line);
    }
}

static void net_acceptor_on_retry(uv_timer_t *t);

/*
 * accept4 failed with EMFILE/ENFILE: lends the reserve to accept (and close) what is pending,
 * then takes it back. Without a reserve nothing can be accepted: pause instead of spinning on
 * a listener that stays readable.
 */
static void net_acceptor_emfile(struct net_acceptor *a)
{
    uv_loop_t *loop = a->poll.loop;
    a->emfile_count++;
    net_accept_reserve_open(); /* lost earlier? perhaps there is room now */
    size_t dropped = 0;
    if (net_accept_reserve >= 0) {
        close(net_accept_reserve);
        net_accept_reserve = -1;
        for (size_t i = 0; i < NET_ACCEPT_DROP_MAX; i++) {
            int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0 && errno == EINTR) {
                continue;
            }
            if (fd < 0) {
                break;
            }
            close(fd);
            dropped++;
        }
        net_accept_reserve_open();
    }
    a->emfile_dropped += dropped;
    net_acceptor_log(a, loop, dropped);
    if (dropped == 0) {
        uv_poll_stop(&a->poll);
        int rc = uv_timer_start(&a->retry, net_acceptor_on_retry, NET_ACCEPT_RETRY_MS, 0);
        LMQ_ASSERT(rc == 0);
    }
}

static void net_acceptor_on_poll(uv_poll_t *h, int status, int events)
{
    struct net_acceptor *a = h->data;
    LMQ_ASSERT(a != NULL && a->started);
    LMQ_UNUSED(events);
    if (status < 0) {
        return; /* the listener is closing */
    }
    for (int i = 0; i < NET_ACCEPT_BATCH_MAX; i++) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            a->on_accept(a->ctx, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
            continue;
        }
        if (errno == EMFILE || errno == ENFILE) {
            net_acceptor_emfile(a);
        }
        return; /* EAGAIN: nothing more pending (other errors: the next callback retries) */
    }
}

static void net_acceptor_on_retry(uv_timer_t *t)
{
    struct net_acceptor *a = t->data;
    LMQ_ASSERT(a != NULL && a->started);
    int rc = uv_poll_start(&a->poll, UV_READABLE, net_acceptor_on_poll);
    LMQ_ASSERT(rc == 0); /* the poll handle was started on this fd before */
}

int net_acceptor_start(struct net_acceptor *a, uv_loop_t *loop, uv_tcp_t *bound, int backlog,
                       const char *name, net_accept_fn fn, void *ctx)
{
    LMQ_ASSERT(a != NULL && loop != NULL && bound != NULL && fn != NULL && name != NULL);
    LMQ_ASSERT(!a->started && backlog > 0);
    uv_os_fd_t fd = -1;
    int rc = uv_fileno((const uv_handle_t *)bound, &fd);
    if (rc != 0) {
        return rc;
    }
    if (listen(fd, backlog) != 0) {
        return uv_translate_sys_error(errno);
    }
    *a = (struct net_acceptor){.fd = fd, .on_accept = fn, .ctx = ctx, .name = name};
    rc = uv_poll_init_socket(loop, &a->poll, fd);
    if (rc != 0) {
        return rc;
    }
    a->poll.data = a;
    rc = uv_timer_init(loop, &a->retry);
    LMQ_ASSERT(rc == 0);
    a->retry.data = a;
    a->handles_open = 2;
    a->started = true;
    net_accept_reserve_open();
    rc = uv_poll_start(&a->poll, UV_READABLE, net_acceptor_on_poll);
    LMQ_ASSERT(rc == 0); /* the handle is initialised on a valid socket */
    return 0;
}

static void net_acceptor_on_handle_closed(uv_handle_t *h)
{
    struct net_acceptor *a = h->data;
    LMQ_ASSERT(a != NULL && a->handles_open > 0);
    if (--a->handles_open == 0 && a->on_closed != NULL) {
        a->on_closed(a);
    }
}

void net_acceptor_close(struct net_acceptor *a, void (*on_closed)(struct net_acceptor *a))
{
    LMQ_ASSERT(a != NULL);
    if (!a->started || uv_is_closing((uv_handle_t *)&a->poll)) {
        return;
    }
    a->on_closed = on_closed;
    uv_close((uv_handle_t *)&a->poll, net_acceptor_on_handle_closed);
    uv_close((uv_handle_t *)&a->retry, net_acceptor_on_handle_closed);
}

bool net_acceptor_open(const struct net_acceptor *a)
{
    LMQ_ASSERT(a != NULL);
    return a->handles_open > 0;
}
