/*
 * echo-bot: a LedgerMQ bot in C on libledgermq (docs/PROTOCOL.md "Bots"). For every
 * envelope.accepted event of an envelope sent TO the bot, it sends the sender an envelope of type
 * com.example.Echo with body {"echo": <the envelope's body>}, through lmq_client_send (the
 * durable outbox). The send runs inside on_event, so it commits in the same transaction as the
 * event's id: after a crash, either both are there (the event is not handled again) or neither
 * (it is): each envelope is echoed exactly once. It never answers its own envelopes or an echo
 * (two echo bots would otherwise talk forever).
 *
 * Build: `make build` (or `cmake --build build --target echo_bot`): build/examples/echo-bot,
 * linked against libledgermq (not installed). Run it against `make run`:
 *
 *     printf '[bots]\nids = %s\n' "$(./build/ledgermq keygen --out echo.json)" > bots.conf
 *     make run ARGS="--config bots.conf"             # the server, with the bot named
 *     ./build/examples/echo-bot --key echo.json --state echo-state \
 *         --server 127.0.0.1:1883 --http 127.0.0.1:8080
 *     ./build/ledgermq keygen --out alice.json
 *     ./build/ledgermq send --key alice.json --to <the bot's id> '{"hi":1}'
 *     ./build/ledgermq listen --key alice.json --count 1  # the echo: {"echo":{"hi":1}}
 *
 * Options: --key FILE (identity key file), --state DIR (client database: the outbox and the last
 * handled event), --server HOST:PORT (MQTT), --http HOST:PORT (login), --exit-after N (for
 * tests: exit abruptly, without committing, in the middle of handling the (N+1)th envelope, right
 * after its echo was stored in the open transaction). It prints one line per echo
 * ("echo event=<id> to=<sender> link=<echo link>", when the echo is stored in the open
 * transaction: after a crash before its commit the line comes again, the echo once) and library
 * errors to stderr, and stops on SIGINT or SIGTERM (exit 0).
 */
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledgermq/ledgermq.h"

#define ECHO_HOST_MAX_BYTES 256
#define ECHO_ERR_MAX_BYTES 512
#define ECHO_TYPE "com.example.Echo"
/* Tries to store the echo of one event before it is skipped. */
#define ECHO_ATTEMPTS_MAX 3u

struct echo {
    const char *key, *state, *server, *http;
    char mqtt_host[ECHO_HOST_MAX_BYTES], http_host[ECHO_HOST_MAX_BYTES];
    uint16_t mqtt_port, http_port;
    long long exit_after; /* -1: never */
    uint64_t echoed;      /* echoes committed by this run */
    uint64_t failed_id;   /* the event whose echo could not be stored, and how often */
    unsigned failures;
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    struct lmq_client *c;
};

static int echo_split(const char *text, char *host, uint16_t *port)
{
    const char *colon = text != NULL ? strrchr(text, ':') : NULL;
    if (colon == NULL || colon == text || (size_t)(colon - text) >= ECHO_HOST_MAX_BYTES) {
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end = NULL;
    unsigned long p = strtoul(colon + 1, &end, 10);
    *port = (uint16_t)p;
    return *end != '\0' || p == 0 || p > 65535 ? -1 : 0;
}

static int echo_args(struct echo *e, int argc, char **argv)
{
    e->exit_after = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--key") == 0) {
            e->key = v;
        } else if (strcmp(k, "--state") == 0) {
            e->state = v;
        } else if (strcmp(k, "--server") == 0) {
            e->server = v;
        } else if (strcmp(k, "--http") == 0) {
            e->http = v;
        } else if (strcmp(k, "--exit-after") == 0) {
            e->exit_after = strtoll(v, NULL, 10);
        } else {
            return -1;
        }
    }
    if (argc % 2 == 0 || e->key == NULL || e->state == NULL) {
        return -1;
    }
    if (echo_split(e->server, e->mqtt_host, &e->mqtt_port) != 0 ||
        echo_split(e->http, e->http_host, &e->http_port) != 0) {
        return -1;
    }
    return 0;
}

/* The body of the echo of an envelope.accepted event's data, or NULL when there is nothing to
 * answer (not to us, from us, an echo). malloc'd JSON text. */
static char *echo_body(struct echo *e, json_t *data, const char **to_out)
{
    const char *me = lmq_client_id(e->c);
    const char *to = json_string_value(json_object_get(data, "to"));
    const char *from = json_string_value(json_object_get(data, "from"));
    const char *type = json_string_value(json_object_get(data, "type"));
    json_t *body = json_object_get(json_object_get(data, "envelope"), "body");
    if (to == NULL || from == NULL || type == NULL || body == NULL || strcmp(to, me) != 0 ||
        strcmp(from, me) == 0 || strcmp(type, ECHO_TYPE) == 0) {
        return NULL;
    }
    json_t *answer = json_pack("{s:O}", "echo", body);
    char *text = answer != NULL ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    *to_out = from;
    return text;
}

static int echo_on_event(void *ctx, const struct lmq_event *ev)
{
    struct echo *e = ctx;
    char link[LMQ_CLIENT_ID_BYTES];
    const char *to = NULL;
    int answer = 0;
    if (strcmp(ev->type, "envelope.accepted") != 0) {
        return 0; /* a bot gets every event type and filters itself */
    }
    json_t *data = json_loadb((const char *)ev->data_json, ev->data_len, 0, NULL);
    char *body = data != NULL ? echo_body(e, data, &to) : NULL;
    if (body == NULL) {
        goto out; /* nothing to answer */
    }
    int rc = lmq_client_send(e->c, to, ECHO_TYPE, body, link);
    if (rc != 0) {
        /* A disk error passes, an echo over 64 KiB never will: "not now" (rolled back, the
         * event comes again after a reconnect) a few times, then skipped, so that one event
         * cannot block all the others. */
        e->failures = e->failed_id == ev->id ? e->failures + 1 : 1;
        e->failed_id = ev->id;
        answer = e->failures < ECHO_ATTEMPTS_MAX ? 1 : 0;
        fprintf(stderr, "echo-bot: event %" PRIu64 ": cannot store the echo (%s)%s\n", ev->id,
                lmq_client_strerror(rc), answer != 0 ? ", will try again" : ", skipped");
        goto out;
    }
    if (e->exit_after >= 0 && e->echoed == (uint64_t)e->exit_after) {
        _exit(9); /* the test's crash: the echo is stored in an open, uncommitted transaction */
    }
    e->echoed++;
    printf("echo event=%" PRIu64 " to=%s link=%s\n", ev->id, to, link);
    fflush(stdout);
out:
    free(body);
    json_decref(data);
    return answer;
}

static void echo_on_error(void *ctx, int code, const char *message)
{
    (void)ctx;
    fprintf(stderr, "echo-bot: %s (%s)\n", message, lmq_client_strerror(code));
}

static void echo_on_signal(uv_signal_t *s, int signum)
{
    struct echo *e = s->data;
    (void)signum;
    lmq_client_stop(e->c);
    uv_close((uv_handle_t *)&e->sigint, NULL);
    uv_close((uv_handle_t *)&e->sigterm, NULL);
}

int main(int argc, char **argv)
{
    struct echo e = {0};
    char err[ECHO_ERR_MAX_BYTES] = "";
    if (echo_args(&e, argc, argv) != 0) {
        fprintf(stderr, "usage: echo-bot --key FILE --state DIR --server HOST:PORT --http "
                        "HOST:PORT [--exit-after N]\n");
        return 2;
    }
    if (uv_loop_init(&e.loop) != 0) {
        return 1;
    }
    struct lmq_client_options o = {
        .key_file = e.key,
        .state_dir = e.state,
        .mqtt_host = e.mqtt_host,
        .mqtt_port = e.mqtt_port,
        .http_host = e.http_host,
        .http_port = e.http_port,
        .loop = &e.loop,
        .cb = {.ctx = &e, .on_error = echo_on_error, .on_event = echo_on_event}};
    if (lmq_client_open(&o, &e.c, err, sizeof(err)) != 0) {
        fprintf(stderr, "echo-bot: %s\n", err);
        return 1;
    }
    fprintf(stderr, "echo-bot: %s, after event %" PRIu64 "\n", lmq_client_id(e.c),
            lmq_client_event_position(e.c));
    uv_signal_init(&e.loop, &e.sigint);
    uv_signal_init(&e.loop, &e.sigterm);
    e.sigint.data = e.sigterm.data = &e;
    uv_signal_start(&e.sigint, echo_on_signal, SIGINT);
    uv_signal_start(&e.sigterm, echo_on_signal, SIGTERM);
    int rc = lmq_client_start(e.c);
    if (rc == 0) {
        rc = uv_run(&e.loop, UV_RUN_DEFAULT) < 0 ? -1 : 0;
    }
    lmq_client_close(e.c);
    uv_loop_close(&e.loop);
    return rc == 0 ? 0 : 1;
}
