/*
 * libledgermq's public functions (include/ledgermq/ledgermq.h): open, send, start/run/stop,
 * close. The protocol logic is in client_session.c, the sockets in client_net.c, the durable
 * state in client_db.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"
#include "core/resolve.h"
#include "crypto/jcs.h"

/* Loop turns lmq_client_close() may run on a caller's loop to let its handles close. */
#define CLIENT_CLOSE_TURNS_MAX 1000u

static int client__open_checks(const struct lmq_client_options *opts, char *err, size_t err_len)
{
    if (opts == NULL || opts->key_file == NULL || opts->state_dir == NULL ||
        opts->mqtt_host == NULL || opts->http_host == NULL) {
        snprintf(err, err_len, "key file, state directory and server addresses are required");
        return LMQ_EINVAL;
    }
    if (opts->mqtt_port == 0 || opts->http_port == 0) {
        snprintf(err, err_len, "server ports must be 1..65535");
        return LMQ_EINVAL;
    }
    return 0;
}

/* A server that dies while we write to it must be a reconnect, not the end of the process:
 * SIGPIPE's default action kills it. An application that installed its own handler keeps it. */
static void client__ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        (old.sa_flags & SA_SIGINFO) == 0) {
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigemptyset(&ign.sa_mask);
        int rc = sigaction(SIGPIPE, &ign, NULL);
        LMQ_ASSERT(rc == 0); /* SIGPIPE can always be ignored */
    }
}

/* Key, addresses, topics: everything of open() but the database and the loop. */
static int client__setup(struct lmq_client *c, const struct lmq_client_options *opts, char *err,
                         size_t err_len)
{
    int rc = crypto_keyfile_load(opts->key_file, &c->ident, err, err_len);
    if (rc != 0) {
        return rc;
    }
    rc = crypto_b64url_encode(c->ident.pub, sizeof(c->ident.pub), c->pub_b64, sizeof(c->pub_b64));
    LMQ_ASSERT(rc == 0); /* sized for a public key */
    char reason[128];
    if (lmq_resolve(opts->mqtt_host, opts->mqtt_port, &c->mqtt_addr, reason, sizeof(reason)) != 0) {
        snprintf(err, err_len, "cannot resolve MQTT address %.200s:%u: %s", opts->mqtt_host,
                 opts->mqtt_port, reason);
        return LMQ_EINVAL;
    }
    if (lmq_resolve(opts->http_host, opts->http_port, &c->http_addr, reason, sizeof(reason)) != 0) {
        snprintf(err, err_len, "cannot resolve HTTP address %.200s:%u: %s", opts->http_host,
                 opts->http_port, reason);
        return LMQ_EINVAL;
    }
    client_session_init(c);
    return 0;
}

int lmq_client_open(const struct lmq_client_options *opts, struct lmq_client **out, char *err,
                    size_t err_len)
{
    LMQ_ASSERT(out != NULL && err != NULL && err_len > 0);
    *out = NULL;
    err[0] = '\0';
    int rc = client__open_checks(opts, err, err_len);
    if (rc != 0) {
        return rc;
    }
    struct lmq_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, err_len, "out of memory");
        return LMQ_ENOMEM;
    }
    c->cb = opts->cb;
    c->fetch = client_net_fetch;
    client__ignore_sigpipe();
    c->state = CLIENT_STOPPED;
    rc = client__setup(c, opts, err, err_len);
    if (rc == 0) {
        rc = client_db_open(c, opts->state_dir, err, err_len);
    }
    if (rc == 0 && opts->loop == NULL) {
        rc = uv_loop_init(&c->own_loop) == 0 ? 0 : LMQ_EIO;
        c->owns_loop = rc == 0;
        if (rc != 0) {
            snprintf(err, err_len, "cannot create an event loop");
        }
    }
    if (rc != 0) {
        client_db_close(c);
        free(c);
        return rc;
    }
    c->loop = c->owns_loop ? &c->own_loop : opts->loop;
    LMQ_ASSERT(c->db != NULL && c->loop != NULL);
    *out = c;
    return 0;
}

/* Builds and signs the envelope after chain head (seq, prev). */
static int client__build(struct lmq_client *c, const char *to_id, const char *type,
                         const char *body_json, uint64_t seq, const char *prev, struct lmq_buf *out)
{
    struct timespec ts;
    char time_text[LEDGER_ENVELOPE_TIME_CHARS + 1];
    json_t *body = NULL;
    const char *reason = NULL;
    int rc = crypto_jcs_parse((const uint8_t *)body_json, strlen(body_json), &body);
    if (rc != 0 || !json_is_object(body)) {
        rc = rc == LMQ_ENOMEM ? rc : LMQ_EINVAL;
        goto out;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    rc = ledger_envelope_format_time((int64_t)ts.tv_sec, (uint32_t)ts.tv_nsec, time_text);
    if (rc != 0) {
        goto out;
    }
    struct ledger_envelope_draft draft = {
        .to = to_id, .seq = seq, .prev = prev, .time = time_text, .type = type, .body = body};
    rc = ledger_envelope_build(c->ident.seed, &draft, out, &reason);
out:
    json_decref(body);
    return rc;
}

int lmq_client_send(struct lmq_client *c, const char *to_id, const char *type,
                    const char *body_json, char link_out[LMQ_CLIENT_ID_BYTES])
{
    struct lmq_buf env = {0};
    struct ledger_envelope parsed = {0};
    uint64_t head_seq = 0;
    char head_link[LEDGER_ENVELOPE_LINK_BYTES];
    const char *reason = NULL;
    LMQ_ASSERT(c != NULL && link_out != NULL);
    link_out[0] = '\0';
    if (to_id == NULL || type == NULL || body_json == NULL ||
        !crypto_identity_id_valid(to_id, strlen(to_id))) {
        return LMQ_EINVAL;
    }
    int rc = client_db_chain_head(c, &head_seq, head_link);
    if (rc == 0 && head_seq >= LEDGER_ENVELOPE_SEQ_MAX) {
        rc = LMQ_ELIMIT;
    }
    rc = rc == 0 ? client__build(c, to_id, type, body_json, head_seq + 1, head_link, &env) : rc;
    /* The link is what the server will compute: hash of the canonical form we just built. */
    rc = rc == 0 ? ledger_envelope_parse(env.data, env.len, &parsed, &reason) : rc;
    if (rc == 0) {
        rc = ledger_envelope_link(&parsed, link_out);
        ledger_envelope_release(&parsed);
    }
    LMQ_ASSERT(rc != 0 || strlen(link_out) == CRYPTO_IDENTITY_ID_CHARS);
    /* A concurrent sender on the same state directory took this seq: LMQ_EEXIST, retryable. */
    rc =
        rc == 0 ? client_db_outbox_insert(c, head_seq + 1, link_out, to_id, env.data, env.len) : rc;
    if (rc == 0 && !sqlite3_get_autocommit(c->db)) {
        /* Sent from on_envelope: the row is part of the delivery transaction and may yet be
         * rolled back, so it is published only after the commit. */
        c->send_deferred = true;
    } else if (rc == 0) {
        rc = client_session_pump(c);
        rc = rc == LMQ_EIO && c->state != CLIENT_READY ? 0 : rc;
        if (rc != 0) {
            client_net_drop(c, rc, "cannot publish");
            rc = 0; /* stored: it will be sent after the reconnect */
        }
    } else {
        link_out[0] = '\0';
    }
    lmq_buf_release(&env);
    return rc;
}

int lmq_client_start(struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL && c->loop != NULL);
    if (c->state != CLIENT_STOPPED || c->timers_open || c->closing_count != 0) {
        return LMQ_EINVAL;
    }
    int rc = client_net_init(c);
    if (rc != 0) {
        return rc;
    }
    c->stopping = false;
    c->backoff_attempt = 0;
    c->reached = false;
    c->unreachable_said = 0;
    client_net_connect(c);
    return 0;
}

int lmq_client_run(struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL);
    if (!c->owns_loop) {
        return LMQ_EINVAL;
    }
    int rc = lmq_client_start(c);
    if (rc != 0) {
        return rc;
    }
    uv_run(c->loop, UV_RUN_DEFAULT); /* returns once every handle is closed (stop) */
    LMQ_ASSERT(client_net_idle(c));
    return 0;
}

void lmq_client_stop(struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL);
    if (!c->timers_open && c->state == CLIENT_STOPPED) {
        return; /* never started, or stopped already */
    }
    client_net_shutdown(c);
}

void lmq_client_close(struct lmq_client *c)
{
    if (c == NULL) {
        return;
    }
    lmq_client_stop(c);
    int frc = client_events_flush(c); /* normally done: events are committed per read */
    LMQ_UNUSED(frc);                  /* failed: reported, and they come again */
    /* Bounded: closing handles needs a few turns, not more. */
    for (unsigned i = 0; i < CLIENT_CLOSE_TURNS_MAX && !client_net_idle(c); i++) {
        uv_run(c->loop, UV_RUN_ONCE);
    }
    LMQ_ASSERT(client_net_idle(c));
    client_session_reset(c);
    if (c->owns_loop) {
        int rc = uv_loop_close(&c->own_loop);
        LMQ_ASSERT(rc == 0); /* every handle of the client's own loop is closed */
    }
    lmq_buf_release(&c->http.next_body);
    lmq_buf_release(&c->in);
    client_db_close(c);
    memset(c->ident.seed, 0, sizeof(c->ident.seed));
    free(c);
}

const char *lmq_client_id(const struct lmq_client *c)
{
    return c->ident.id;
}

int lmq_client_sent_count(struct lmq_client *c, uint64_t *count_out)
{
    char link[LEDGER_ENVELOPE_LINK_BYTES];
    LMQ_ASSERT(c != NULL && count_out != NULL);
    return client_db_chain_head(c, count_out, link);
}

int lmq_client_pending_count(struct lmq_client *c, uint64_t *count_out)
{
    return client_db_pending_count(c, count_out);
}

int lmq_client_outbox_envelope(struct lmq_client *c, const char *link, uint8_t *buf, size_t cap,
                               size_t *len_out)
{
    struct lmq_buf env = {0};
    LMQ_ASSERT(c != NULL && link != NULL && buf != NULL && len_out != NULL);
    *len_out = 0;
    int rc = client_db_outbox_envelope(c, link, &env);
    if (rc == 0 && env.len > cap) {
        rc = LMQ_ETOOBIG;
    }
    if (rc == 0) {
        memcpy(buf, env.data, env.len);
        *len_out = env.len;
    }
    lmq_buf_release(&env);
    LMQ_ASSERT(*len_out <= cap);
    return rc;
}

uint64_t lmq_client_event_position(const struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL);
    return c->event_position;
}

uint64_t lmq_client_inbox_position(const struct lmq_client *c)
{
    return c->inbox_position;
}

struct sqlite3 *lmq_client_db(struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL && c->db != NULL);
    return c->db;
}

const char *lmq_client_strerror(int code)
{
    switch (code) {
    case LMQ_CLIENT_E_RECEIPT:
        return "receipt does not verify";
    case LMQ_CLIENT_E_HISTORY:
        return "server ledger history rewritten";
    case LMQ_CLIENT_E_KEY:
        return "server ledger key changed";
    case LMQ_CLIENT_E_HTTP_UNREACHABLE:
        return "cannot reach the HTTP login server";
    case LMQ_CLIENT_E_MQTT_UNREACHABLE:
        return "cannot reach the MQTT server";
    default:
        return lmq_strerror(code);
    }
}
