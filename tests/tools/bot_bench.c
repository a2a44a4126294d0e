/*
 * A bot on libledgermq for scripts/bench-events.py (make bench-events): follows its event stream
 * (on_event), counting what it handles, until it has handled N envelope.accepted events.
 *
 *   bot_bench --key K --state DIR --server H:P --http H:P --accepted N [--timeout-ms MS]
 *
 * Prints {"first":T} (unix seconds, when the first event was handled) as soon as it is, then one
 * final line {"accepted":A,"cpu_s":C,"events":E,"first":T0,"last":T1} (C: the process's user +
 * system CPU seconds); exit 0, or 4 on the timeout (the
 * final line is printed all the same). Library errors go to stderr.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ledgermq/ledgermq.h"

#define BB_HOST_MAX_BYTES 64
#define BB_ERR_MAX_BYTES 512
#define BB_DEFAULT_TIMEOUT_MS 120000u

struct bb {
    const char *key, *state, *server, *http;
    char mqtt_host[BB_HOST_MAX_BYTES], http_host[BB_HOST_MAX_BYTES];
    uint16_t mqtt_port, http_port;
    uint64_t want, timeout_ms;
    uint64_t events, accepted;
    double first_s, last_s;
    bool timed_out;
    uv_loop_t loop;
    uv_timer_t deadline;
    struct lmq_client *c;
};

static double bb_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bb_split(const char *text, char *host, uint16_t *port)
{
    const char *colon = text != NULL ? strrchr(text, ':') : NULL;
    if (colon == NULL || (size_t)(colon - text) >= BB_HOST_MAX_BYTES) {
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    unsigned long p = strtoul(colon + 1, NULL, 10);
    *port = (uint16_t)p;
    return p == 0 || p > 65535 ? -1 : 0;
}

static int bb_args(struct bb *b, int argc, char **argv)
{
    b->timeout_ms = BB_DEFAULT_TIMEOUT_MS;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--key") == 0) {
            b->key = v;
        } else if (strcmp(k, "--state") == 0) {
            b->state = v;
        } else if (strcmp(k, "--server") == 0) {
            b->server = v;
        } else if (strcmp(k, "--http") == 0) {
            b->http = v;
        } else if (strcmp(k, "--accepted") == 0) {
            b->want = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--timeout-ms") == 0) {
            b->timeout_ms = strtoull(v, NULL, 10);
        } else {
            return -1;
        }
    }
    if (argc % 2 == 0 || b->key == NULL || b->state == NULL || b->want == 0) {
        return -1;
    }
    return bb_split(b->server, b->mqtt_host, &b->mqtt_port) != 0 ||
                   bb_split(b->http, b->http_host, &b->http_port) != 0
               ? -1
               : 0;
}

static void bb_finish(struct bb *b)
{
    if (uv_is_closing((uv_handle_t *)&b->deadline)) {
        return;
    }
    lmq_client_stop(b->c);
    uv_close((uv_handle_t *)&b->deadline, NULL);
}

static int bb_on_event(void *ctx, const struct lmq_event *ev)
{
    struct bb *b = ctx;
    double now = bb_now_s();
    if (b->events == 0) {
        b->first_s = now;
        printf("{\"first\":%.6f}\n", now);
        fflush(stdout);
    }
    b->events++;
    b->last_s = now;
    if (strcmp(ev->type, "envelope.accepted") == 0 && ++b->accepted == b->want) {
        bb_finish(b); /* the commit of this event still happens */
    }
    return 0;
}

static void bb_on_error(void *ctx, int code, const char *message)
{
    (void)ctx;
    fprintf(stderr, "bot_bench: %s (%s)\n", message, lmq_client_strerror(code));
}

static void bb_on_deadline(uv_timer_t *t)
{
    struct bb *b = t->data;
    b->timed_out = true;
    bb_finish(b);
}

int main(int argc, char **argv)
{
    struct bb b = {0};
    char err[BB_ERR_MAX_BYTES] = "";
    if (bb_args(&b, argc, argv) != 0) {
        fprintf(stderr, "usage: bot_bench --key K --state DIR --server H:P --http H:P --accepted N "
                        "[--timeout-ms MS]\n");
        return 1;
    }
    if (uv_loop_init(&b.loop) != 0) {
        return 1;
    }
    struct lmq_client_options o = {
        .key_file = b.key,
        .state_dir = b.state,
        .mqtt_host = b.mqtt_host,
        .mqtt_port = b.mqtt_port,
        .http_host = b.http_host,
        .http_port = b.http_port,
        .loop = &b.loop,
        .cb = {.ctx = &b, .on_error = bb_on_error, .on_event = bb_on_event}};
    if (lmq_client_open(&o, &b.c, err, sizeof(err)) != 0) {
        fprintf(stderr, "bot_bench: %s\n", err);
        return 1;
    }
    uv_timer_init(&b.loop, &b.deadline);
    b.deadline.data = &b;
    uv_timer_start(&b.deadline, bb_on_deadline, b.timeout_ms, 0);
    int rc = lmq_client_start(b.c);
    if (rc == 0) {
        uv_run(&b.loop, UV_RUN_DEFAULT);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"accepted\":%" PRIu64 ",\"cpu_s\":%.3f,\"events\":%" PRIu64
           ",\"first\":%.6f,\"last\":%.6f}\n",
           b.accepted, cpu_s, b.events, b.first_s, b.last_s);
    lmq_client_close(b.c);
    uv_loop_close(&b.loop);
    return rc != 0 ? 1 : b.timed_out ? 4 : 0;
}
