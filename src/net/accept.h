/*
 * Accepting connections on a libuv loop, with a reserve descriptor for EMFILE.
 *
 * libuv's own accept path (uv_listen) handles EMFILE with a reserve descriptor too, but
 * silently: the connections it drops are never reported. Here the listening socket is bound
 * by a uv_tcp_t as usual, then watched with a uv_poll_t and accepted with accept4(2), so that
 * running out of descriptors is seen, logged ("emfile", at most once a second per listener)
 * and counted: the process-wide reserve (/dev/null, opened by the first acceptor) is closed,
 * the pending connections are accepted and closed at once (the clients see the connection
 * closed instead of hanging in the backlog), and the reserve is opened again. When nothing could
 * be accepted that way (no reserve, or nothing pending: Linux reports EMFILE before it looks at
 * the queue), accepting pauses for NET_ACCEPT_RETRY_MS rather than spinning.
 *
 * Single-threaded: every function here is called on the loop thread.
 */
#ifndef LMQ_NET_ACCEPT_H
#define LMQ_NET_ACCEPT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "core/lmq.h"

/* Takes a connected socket (non-blocking, close-on-exec); the callee owns fd. */
typedef void (*net_accept_fn)(void *ctx, int fd);

struct net_acceptor {
    uv_poll_t poll;
    uv_timer_t retry; /* resumes accepting after a pause */
    int fd;           /* the listening socket (owned by the uv_tcp_t that bound it) */
    net_accept_fn on_accept;
    void *ctx;
    const char *name; /* listener kind in the log: "mqtt", "mqtts", "http", "https" */
    uint64_t emfile_count;
    uint64_t emfile_dropped; /* connections accepted only to be closed */
    uint64_t emfile_logged_ms;
    uint32_t handles_open; /* poll + timer until their close callbacks ran */
    bool started;
    void (*on_closed)(struct net_acceptor *a);
};

/*
 * Starts listening on bound (a uv_tcp_t already bound) with backlog and accepting into fn.
 * name must be a static string. Returns 0 or a libuv error code (nothing to close then but
 * bound itself).
 */
int net_acceptor_start(struct net_acceptor *a, uv_loop_t *loop, uv_tcp_t *bound, int backlog,
                       const char *name, net_accept_fn fn, void *ctx) LMQ_WUR;

/*
 * Stops accepting and closes the acceptor's handles (not the listening socket: close the
 * uv_tcp_t after this). on_closed (may be NULL) runs once both handles are closed. Does
 * nothing when the acceptor never started or is already closing.
 */
void net_acceptor_close(struct net_acceptor *a, void (*on_closed)(struct net_acceptor *a));

/* True while the acceptor has handles open (closing included). */
bool net_acceptor_open(const struct net_acceptor *a);

#endif
