/*
 * A small application on libledgermq for the crash tests (tests/integration/test_client_crash.py).
 *
 *   client_app send --key K --to ID --count N --state DIR --server H:P --http H:P [--per-tick K]
 *       sends envelopes with body {"n": i}, i continuing after what the outbox already holds,
 *       until N were sent and all are acknowledged (receipts verified); exit 0, 5 on a receipt
 *       or history error, 4 on --timeout-ms.
 *   client_app receive --key K --count N --state DIR --server H:P --http H:P [--unsafe-ack-first]
 *       stores each envelope as (position, n) in its own table app_inbox in the client
 *       database, inside on_envelope through lmq_client_db(): atomic with the acknowledgement.
 *       --unsafe-ack-first (the control) acknowledges first and stores later, from a timer, so
 *       a crash in between loses envelopes. Exits 0 once position N is handed over.
 * Both print one final JSON line. Errors of the library go to stderr.
 */
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgermq/ledgermq.h"

#define APP_HOST_MAX_BYTES 64
#define APP_ERR_MAX_BYTES 512
#define APP_COUNT_MAX 100000u
/* Sender: envelopes stored per timer tick (default; --per-tick), and the tick. */
#define APP_SEND_BATCH 20u
#define APP_TICK_MS 5u
/* Unsafe receiver: rows are written this long after their acknowledgement. */
#define APP_UNSAFE_FLUSH_MS 2000u
#define APP_DEFAULT_TIMEOUT_MS 170000u

struct app {
    bool send;
    bool unsafe;
    const char *key, *to, *state, *server, *http;
    uint64_t count, timeout_ms, per_tick;
    char mqtt_host[APP_HOST_MAX_BYTES], http_host[APP_HOST_MAX_BYTES];
    uint16_t mqtt_port, http_port;
    uv_loop_t loop;
    uv_timer_t tick, deadline;
    struct lmq_client *c;
    int exit_code;
    bool finished;
    uint64_t next_n; /* sender: body of the next envelope */
    uint64_t acked;  /* sender: acks this run */
    /* Unsafe receiver: acknowledged, not yet stored. */
    uint64_t *buffered; /* pairs (position, n) */
    size_t buffered_count;
};

static void app_finish(struct app *a, int code)
{
    if (a->finished) {
        return;
    }
    a->finished = true;
    a->exit_code = code;
    lmq_client_stop(a->c);
    uv_close((uv_handle_t *)&a->tick, NULL);
    uv_close((uv_handle_t *)&a->deadline, NULL);
}

static int app_split(const char *text, char *host, uint16_t *port)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= APP_HOST_MAX_BYTES) {
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    unsigned long p = strtoul(colon + 1, NULL, 10);
    *port = (uint16_t)p;
    return p == 0 || p > 65535 ? -1 : 0;
}

static int app_args(struct app *a, int argc, char **argv)
{
    if (argc < 2) {
        return -1;
    }
    a->send = strcmp(argv[1], "send") == 0;
    if (!a->send && strcmp(argv[1], "receive") != 0) {
        return -1;
    }
    a->timeout_ms = APP_DEFAULT_TIMEOUT_MS;
    a->per_tick = APP_SEND_BATCH;
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--unsafe-ack-first") == 0) {
            a->unsafe = true;
            continue;
        }
        if (v == NULL) {
            return -1;
        }
        if (strcmp(argv[i], "--key") == 0) {
            a->key = v;
        } else if (strcmp(argv[i], "--to") == 0) {
            a->to = v;
        } else if (strcmp(argv[i], "--state") == 0) {
            a->state = v;
        } else if (strcmp(argv[i], "--server") == 0) {
            a->server = v;
        } else if (strcmp(argv[i], "--http") == 0) {
            a->http = v;
        } else if (strcmp(argv[i], "--count") == 0) {
            a->count = strtoull(v, NULL, 10);
        } else if (strcmp(argv[i], "--per-tick") == 0) {
            a->per_tick = strtoull(v, NULL, 10);
        } else if (strcmp(argv[i], "--timeout-ms") == 0) {
            a->timeout_ms = strtoull(v, NULL, 10);
        } else {
            return -1;
        }
        i++;
    }
    if (a->key == NULL || a->state == NULL || a->server == NULL || a->http == NULL ||
        a->count == 0 || a->count > APP_COUNT_MAX || a->per_tick == 0 ||
        a->per_tick > APP_COUNT_MAX || (a->send && a->to == NULL) ||
        app_split(a->server, a->mqtt_host, &a->mqtt_port) != 0 ||
        app_split(a->http, a->http_host, &a->http_port) != 0) {
        return -1;
    }
    return 0;
}

/* --- receiver -------------------------------------------------------------------------------- */

static int app_exec(struct app *a, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(lmq_client_db(a->c), sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "client_app: %s: %s\n", sql, msg ? msg : "?");
    }
    sqlite3_free(msg);
    return rc == SQLITE_OK ? 0 : -1;
}

static int64_t app_rows(struct app *a)
{
    sqlite3_stmt *st = NULL;
    int64_t rows = -1;
    if (sqlite3_prepare_v2(lmq_client_db(a->c), "SELECT COUNT(*) FROM app_inbox", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        rows = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rows;
}

static int app_insert(struct app *a, uint64_t position, uint64_t n)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(lmq_client_db(a->c),
                                "INSERT INTO app_inbox(position, n) VALUES(?1, ?2)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)position);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Writes the rows acknowledged earlier (unsafe mode), in one transaction. */
static void app_flush(struct app *a)
{
    if (a->buffered_count == 0) {
        return;
    }
    int rc = app_exec(a, "BEGIN");
    for (size_t i = 0; i < a->buffered_count && rc == 0; i++) {
        rc = app_insert(a, a->buffered[2 * i], a->buffered[2 * i + 1]);
    }
    if (rc != 0 || app_exec(a, "COMMIT") != 0) {
        fprintf(stderr, "client_app: cannot store rows\n");
        exit(1);
    }
    a->buffered_count = 0;
}

static int app_on_envelope(void *ctx, const struct lmq_inbox_envelope *env)
{
    struct app *a = ctx;
    json_t *body = json_loadb((const char *)env->body_json, env->body_len, 0, NULL);
    const json_t *n = json_object_get(body, "n");
    int64_t value = json_is_integer(n) ? json_integer_value(n) : -1;
    json_decref(body);
    int rc = 0;
    if (a->unsafe) {
        if (a->buffered_count == a->count) {
            return -1; /* the buffer is full: not now */
        }
        a->buffered[2 * a->buffered_count] = env->position;
        a->buffered[2 * a->buffered_count + 1] = (uint64_t)value;
        a->buffered_count++;
    } else {
        rc = app_insert(a, env->position, (uint64_t)value); /* in the library's transaction */
    }
    if (rc == 0 && env->position >= a->count && !a->unsafe) {
        app_finish(a, 0); /* the commit still happens after we return */
    }
    return rc;
}

/* --- sender ---------------------------------------------------------------------------------- */

static void app_check_sent(struct app *a)
{
    uint64_t pending = 0;
    if (a->next_n > a->count && lmq_client_pending_count(a->c, &pending) == 0 && pending == 0) {
        app_finish(a, 0);
    }
}

static void app_on_ack(void *ctx, const struct lmq_ack *ack)
{
    struct app *a = ctx;
    if (!ack->receipt_verified) {
        fprintf(stderr, "client_app: receipt failed: %s\n",
                lmq_client_strerror(ack->receipt_error));
        app_finish(a, 5);
        return;
    }
    a->acked++;
    app_check_sent(a);
}

static void app_on_error(void *ctx, int code, const char *message)
{
    struct app *a = ctx;
    fprintf(stderr, "client_app: [%d] %s\n", code, message);
    if (code == LMQ_CLIENT_E_HISTORY || code == LMQ_CLIENT_E_KEY) {
        app_finish(a, 5);
    }
}

static void app_on_tick(uv_timer_t *t)
{
    struct app *a = t->data;
    char link[LMQ_CLIENT_ID_BYTES], body[64];
    if (a->finished) {
        return;
    }
    if (!a->send) {
        if (a->unsafe) {
            app_flush(a);
            if (lmq_client_inbox_position(a->c) >= a->count) {
                app_finish(a, 0);
            }
        }
        return;
    }
    for (uint64_t i = 0; i < a->per_tick && a->next_n <= a->count; i++) {
        snprintf(body, sizeof(body), "{\"n\":%" PRIu64 "}", a->next_n);
        int rc = lmq_client_send(a->c, a->to, "crash.n", body, link);
        if (rc != 0) {
            fprintf(stderr, "client_app: send: %s\n", lmq_client_strerror(rc));
            app_finish(a, 1);
            return;
        }
        a->next_n++;
    }
    app_check_sent(a);
}

static void app_on_deadline(uv_timer_t *t)
{
    fprintf(stderr, "client_app: timed out\n");
    app_finish(t->data, 4);
}

static int app_open(struct app *a)
{
    char err[APP_ERR_MAX_BYTES];
    struct lmq_client_options o = {.key_file = a->key,
                                   .state_dir = a->state,
                                   .mqtt_host = a->mqtt_host,
                                   .mqtt_port = a->mqtt_port,
                                   .http_host = a->http_host,
                                   .http_port = a->http_port,
                                   .loop = &a->loop,
                                   .cb = {.ctx = a,
                                          .on_envelope = a->send ? NULL : app_on_envelope,
                                          .on_ack = app_on_ack,
                                          .on_error = app_on_error}};
    if (lmq_client_open(&o, &a->c, err, sizeof(err)) != 0) {
        fprintf(stderr, "client_app: %s\n", err);
        return -1;
    }
    if (a->send) {
        uint64_t sent = 0;
        if (lmq_client_sent_count(a->c, &sent) != 0) {
            return -1;
        }
        a->next_n = sent + 1; /* continue where the outbox stops */
        return 0;
    }
    return app_exec(a, "CREATE TABLE IF NOT EXISTS app_inbox(id INTEGER PRIMARY KEY,"
                       " position INTEGER NOT NULL, n INTEGER NOT NULL)");
}

int main(int argc, char **argv)
{
    static struct app a;
    if (app_args(&a, argc, argv) != 0) {
        fprintf(stderr, "usage: client_app send|receive --key K [--to ID] --count N --state DIR "
                        "--server H:P --http H:P [--unsafe-ack-first] [--per-tick K] "
                        "[--timeout-ms MS]\n");
        return 1;
    }
    a.buffered = calloc(2 * a.count, sizeof(uint64_t));
    if (a.buffered == NULL || uv_loop_init(&a.loop) != 0 || app_open(&a) != 0) {
        return 1;
    }
    uv_timer_init(&a.loop, &a.tick);
    uv_timer_init(&a.loop, &a.deadline);
    a.tick.data = &a;
    a.deadline.data = &a;
    uv_timer_start(&a.tick, app_on_tick, 0, a.send ? APP_TICK_MS : APP_UNSAFE_FLUSH_MS);
    uv_timer_start(&a.deadline, app_on_deadline, a.timeout_ms, 0);
    if (!a.send && lmq_client_inbox_position(a.c) >= a.count) {
        app_finish(&a, 0); /* a previous run got everything and was killed before exiting */
    } else if (lmq_client_start(a.c) != 0) {
        app_finish(&a, 1);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    if (a.send) {
        printf("{\"acked\":%" PRIu64 ",\"sent\":%" PRIu64 "}\n", a.acked, a.next_n - 1);
    } else {
        printf("{\"position\":%" PRIu64 ",\"rows\":%" PRId64 "}\n", lmq_client_inbox_position(a.c),
               app_rows(&a));
    }
    lmq_client_close(a.c);
    uv_loop_close(&a.loop);
    free(a.buffered);
    return fflush(stdout) == 0 ? a.exit_code : 1;
}
