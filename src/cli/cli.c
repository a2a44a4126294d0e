/*
 * ledgermq keygen / send / listen: thin commands over libledgermq. The CLI owns the libuv loop
 * (a timeout timer and signal handlers live beside the client's handles) and stops the client
 * from its callbacks; the loop ends once every handle is closed.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/lmq.h"
#include "crypto/jcs.h"
#include "crypto/keyfile.h"
#include "eth/eth_key.h"
#include "eth/eth_keyfile.h"
#include "ledger/envelope.h"
#include "ledgermq/ledgermq.h"

#define CLI_ERR_MAX_BYTES 2048
#define CLI_HOST_MAX_BYTES 256
#define CLI_PATH_MAX_BYTES 1024
#define CLI_DEFAULT_MQTT "127.0.0.1:1883"
#define CLI_DEFAULT_HTTP "127.0.0.1:8080"
#define CLI_DEFAULT_TYPE "message"
#define CLI_DEFAULT_KEYFILE "./identity.json"
#define CLI_SEND_TIMEOUT_MS 30000u
/* Longest --timeout-ms: a bit over 24 days, what a uv timer takes without surprise. */
#define CLI_TIMEOUT_MAX_MS ((uint64_t)INT32_MAX)
/* ledgermq token: the whole login (two requests) by default. */
#define CLI_TOKEN_TIMEOUT_MS 10000u

/* The running command, for the error prefix "ledgermq: <command>: " (README, "Command line"). */
static const char *cli__name = "?";

__attribute__((format(printf, 1, 0))) static void cli__vsay(const char *fmt, va_list ap)
{
    char msg[CLI_ERR_MAX_BYTES];
    int n = lmq_verrf(msg, sizeof(msg), fmt, ap);
    fprintf(stderr, "ledgermq: %s: %s\n", cli__name, n < 0 ? "error" : msg);
}

/* One line on stderr with the command's prefix. */
__attribute__((format(printf, 1, 2))) static void cli__say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli__vsay(fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 1, 2))) static int cli__fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli__vsay(fmt, ap);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/* Everything send and listen accept. */
struct cli_opts {
    const char *key;
    const char *to;
    const char *type;
    const char *server;
    const char *http;
    const char *state;
    const char *json;
    uint64_t timeout_ms; /* 0: none */
    uint64_t count;      /* 0: unbounded */
    char mqtt_host[CLI_HOST_MAX_BYTES];
    uint16_t mqtt_port;
    char http_host[CLI_HOST_MAX_BYTES];
    uint16_t http_port;
    char state_buf[CLI_PATH_MAX_BYTES];
};

static int cli__u64(const char *flag, const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || v > max) {
        return cli__fail("--%s: expected an integer 0..%" PRIu64 ", got \"%s\"", flag, max, text);
    }
    *out = v;
    return 0;
}

/* "HOST:PORT" or "[IPv6]:PORT" into host and port (1..65535). */
static int cli__hostport(const char *flag, const char *text, char *host, size_t host_cap,
                         uint16_t *port)
{
    const char *colon = strrchr(text, ':');
    uint64_t p = 0;
    const char *h = text;
    size_t h_len = colon != NULL ? (size_t)(colon - text) : 0;
    if (h_len >= 2 && text[0] == '[' && text[h_len - 1] == ']') {
        h++;
        h_len -= 2;
    }
    if (colon == NULL || h_len == 0 || h_len >= host_cap || colon[1] == '\0') {
        return cli__fail("--%s: expected HOST:PORT, got \"%s\"", flag, text);
    }
    if (cli__u64(flag, colon + 1, UINT16_MAX, &p) != 0 || p == 0) {
        return p == 0 ? cli__fail("--%s: port must be 1..65535", flag) : CLI_EXIT_USAGE;
    }
    memcpy(host, h, h_len);
    host[h_len] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* Reads the value of the flag at argv[*i] into *value ("--name value" or "--name=value"). */
static int cli__value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i] + 2;
    size_t n = strlen(name);
    if (arg[n] == '=') {
        *value = arg + n + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        *value = NULL;
    }
    if (*value == NULL || (*value)[0] == '\0') {
        return cli__fail("--%s needs a value", name);
    }
    return 0;
}

static bool cli__is_flag(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, "--", 2) == 0 && strncmp(arg + 2, name, n) == 0 &&
           (arg[2 + n] == '\0' || arg[2 + n] == '=');
}

/* One flag of send/listen (allowed lists those the command takes). */
static int cli__flag(struct cli_opts *o, int argc, char **argv, int *i, const char *allowed)
{
    static const char *const names[] = {"key",  "to",    "type",       "server",
                                        "http", "state", "timeout-ms", "count"};
    const char *v = NULL;
    for (size_t k = 0; k < LMQ_ARRAY_LEN(names); k++) {
        if (!cli__is_flag(argv[*i], names[k]) || strstr(allowed, names[k]) == NULL) {
            continue;
        }
        if (cli__value(argc, argv, i, names[k], &v) != 0) {
            return CLI_EXIT_USAGE;
        }
        const char **slots[] = {&o->key, &o->to, &o->type, &o->server, &o->http, &o->state};
        if (k < LMQ_ARRAY_LEN(slots)) {
            *slots[k] = v;
            return 0;
        }
        return k == 6 ? cli__u64(names[k], v, CLI_TIMEOUT_MAX_MS, &o->timeout_ms)
                      : cli__u64(names[k], v, UINT32_MAX, &o->count);
    }
    return cli__fail("unexpected argument \"%s\" (see ledgermq %s --help)", argv[*i], cli__name);
}

/* Parses send/listen arguments; the one positional argument (send's JSON) lands in o->json. */
static int cli__parse(struct cli_opts *o, int argc, char **argv, const char *allowed,
                      bool want_json)
{
    o->server = CLI_DEFAULT_MQTT;
    o->http = CLI_DEFAULT_HTTP;
    o->type = CLI_DEFAULT_TYPE;
    for (int i = 0; i < argc; i++) {
        if (want_json && o->json == NULL && strncmp(argv[i], "--", 2) != 0) {
            o->json = argv[i];
        } else if (cli__flag(o, argc, argv, &i, allowed) != 0) {
            return CLI_EXIT_USAGE;
        }
    }
    if (o->key == NULL) {
        return cli__fail("--key FILE is required");
    }
    if (cli__hostport("server", o->server, o->mqtt_host, sizeof(o->mqtt_host), &o->mqtt_port) ||
        cli__hostport("http", o->http, o->http_host, sizeof(o->http_host), &o->http_port)) {
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Creates dir and its missing parents (mode 0700). Returns 0 or LMQ_EIO. */
static int cli__mkdirs(char *dir)
{
    /* Each round handles one '/' of the path: bounded by its length. */
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        int rc = mkdir(dir, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST) {
            return LMQ_EIO;
        }
    }
    return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : LMQ_EIO;
}

static bool cli__is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* $XDG_STATE_HOME/ledgermq/<id> (or ~/.local/state/ledgermq/<id>), created. */
static int cli__state_xdg(struct cli_opts *o, const char *id)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n = -1;
    if (xdg != NULL && xdg[0] == '/') {
        n = snprintf(o->state_buf, sizeof(o->state_buf), "%s/ledgermq/%s", xdg, id);
    } else if (home != NULL && home[0] == '/') {
        n = snprintf(o->state_buf, sizeof(o->state_buf), "%s/.local/state/ledgermq/%s", home, id);
    }
    if (n < 0 || (size_t)n >= sizeof(o->state_buf)) {
        return cli__fail("no state directory: %s is read-only and neither XDG_STATE_HOME nor "
                         "HOME is set (use --state DIR)",
                         o->key);
    }
    if (cli__mkdirs(o->state_buf) != 0) {
        return cli__fail("cannot create the state directory %s: %s (use --state DIR)", o->state_buf,
                         strerror(errno));
    }
    return 0;
}

/*
 * The state directory follows the identity, not the shell (README "State directory"):
 * --state DIR; else <key file without .json>.state next to the key file when it exists or the
 * key's directory is writable; else the old default ./client-<first 16 of id> when it exists
 * in the current directory (with a note); else $XDG_STATE_HOME/ledgermq/<id>
 * (~/.local/state/ledgermq/<id> without XDG_STATE_HOME).
 */
static int cli__state_dir(struct cli_opts *o)
{
    struct crypto_identity ident;
    char err[CLI_ERR_MAX_BYTES], legacy[64], key_dir[CLI_PATH_MAX_BYTES];
    if (o->state != NULL) {
        return 0;
    }
    if (crypto_keyfile_load(o->key, &ident, err, sizeof(err)) != 0) {
        return cli__fail("%s", err);
    }
    memset(ident.seed, 0, sizeof(ident.seed));
    size_t key_len = strlen(o->key);
    size_t stem = key_len > 5 && strcmp(o->key + key_len - 5, ".json") == 0 ? key_len - 5 : key_len;
    int n = snprintf(o->state_buf, sizeof(o->state_buf), "%.*s.state", (int)stem, o->key);
    if (n < 0 || (size_t)n >= sizeof(o->state_buf)) {
        return cli__fail("--key: path too long");
    }
    n = snprintf(legacy, sizeof(legacy), "./client-%.16s", ident.id);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(legacy));
    o->state = o->state_buf;
    if (cli__is_dir(o->state_buf)) {
        return 0;
    }
    if (cli__is_dir(legacy)) {
        cli__say("note: using the old state directory %s (the default is now %s next to the key "
                 "file: move it there to use it from any directory)",
                 legacy, o->state_buf);
        n = snprintf(o->state_buf, sizeof(o->state_buf), "%s", legacy);
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(o->state_buf));
        return 0;
    }
    const char *slash = strrchr(o->key, '/');
    n = snprintf(key_dir, sizeof(key_dir), "%.*s", slash == NULL ? 1 : (int)(slash - o->key + 1),
                 slash == NULL ? "." : o->key);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(key_dir));
    if (access(key_dir, W_OK) == 0) {
        return 0;
    }
    return cli__state_xdg(o, ident.id);
}

int cli_token(int argc, char **argv)
{
    cli__name = "token";
    struct cli_opts o = {0};
    int rc = cli__parse(&o, argc, argv, "key http timeout-ms", false);
    if (rc != 0) {
        return rc;
    }
    char token[LMQ_TOKEN_MAX_BYTES], err[512];
    uint32_t timeout_ms = o.timeout_ms != 0 ? (uint32_t)o.timeout_ms : CLI_TOKEN_TIMEOUT_MS;
    rc = lmq_login(o.key, o.http_host, o.http_port, timeout_ms, token, err, sizeof(err));
    if (rc == 0) {
        printf("%s\n", token);
        return fflush(stdout) == 0 ? 0 : CLI_EXIT_USAGE;
    }
    cli__fail("%s", err);
    return rc == LMQ_EINVAL ? CLI_EXIT_USAGE : rc == LMQ_EPROTO ? 3 : 4;
}

/* keygen --eth FILE: a secp256k1 sealing key (src/eth/eth_keyfile.h), never an identity. */
static int cli__keygen_eth(const char *path)
{
    uint8_t priv[ETH_PRIVKEY_BYTES];
    uint8_t addr[ETH_ADDRESS_BYTES];
    char addr_text[ETH_ADDRESS_TEXT_BYTES];
    char err[CLI_ERR_MAX_BYTES];
    if (eth_key_generate(priv) != LMQ_OK || eth_key_address(priv, addr) != LMQ_OK) {
        return cli__fail("cannot generate a key");
    }
    int rc = eth_keyfile_save(path, priv, err, sizeof(err));
    OPENSSL_cleanse(priv, sizeof(priv));
    if (rc != LMQ_OK) {
        return cli__fail("%s", err);
    }
    eth_key_address_text(addr, addr_text);
    printf("%s\n", addr_text);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

int cli_keygen(int argc, char **argv)
{
    cli__name = "keygen";
    const char *out = CLI_DEFAULT_KEYFILE;
    const char *eth = NULL;
    bool out_given = false;
    struct crypto_identity ident;
    char err[CLI_ERR_MAX_BYTES];
    for (int i = 0; i < argc; i++) {
        bool is_eth = cli__is_flag(argv[i], "eth");
        if (!is_eth && !cli__is_flag(argv[i], "out")) {
            return cli__fail("unexpected argument \"%s\" (see ledgermq keygen --help)", argv[i]);
        }
        if (cli__value(argc, argv, &i, is_eth ? "eth" : "out", is_eth ? &eth : &out) != 0) {
            return CLI_EXIT_USAGE;
        }
        out_given = out_given || !is_eth;
    }
    if (eth != NULL && out_given) {
        return cli__fail("--eth and --out exclude each other (a sealing key is never an "
                         "identity key)");
    }
    if (eth != NULL) {
        return cli__keygen_eth(eth);
    }
    if (crypto_ed25519_generate(ident.seed, ident.pub) != 0 ||
        crypto_identity_from_seed(ident.seed, &ident) != 0) {
        return cli__fail("cannot generate a key");
    }
    int rc = crypto_keyfile_save(out, &ident, false, err, sizeof(err));
    memset(ident.seed, 0, sizeof(ident.seed));
    if (rc == LMQ_EEXIST) {
        return cli__fail("%s already exists (not overwritten)", out);
    }
    if (rc != 0) {
        return cli__fail("%s", err);
    }
    printf("%s\n", ident.id);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

/* --- send and listen: one run of the client on the CLI's loop -------------------------------- */

struct cli_run {
    struct cli_opts *o;
    struct lmq_client *client;
    uv_loop_t loop;
    uv_timer_t timer;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    int exit_code;
    bool finished;
    char link[LMQ_CLIENT_ID_BYTES]; /* send: the envelope we wait for */
    uint8_t *envelope;              /* send: its JSON, printed before its ack or reject */
    size_t envelope_len;
    bool resent;       /* send: sent again once after the chain was resynced */
    uint64_t received; /* listen: envelopes printed */
};

static void cli__finish(struct cli_run *r, int exit_code)
{
    if (r->finished) {
        return;
    }
    r->finished = true;
    r->exit_code = exit_code;
    lmq_client_stop(r->client);
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
}

static void cli__on_timeout(uv_timer_t *t)
{
    struct cli_run *r = t->data;
    if (r->o->count == 0 && r->o->to == NULL) {
        cli__finish(r, CLI_EXIT_OK); /* listen without --count: listened long enough */
        return;
    }
    cli__say("timed out after %" PRIu64 " ms%s", r->o->timeout_ms,
             r->o->to != NULL ? " (the envelope stays in the outbox and is sent again by the "
                                "next send or listen with this state directory)"
                              : "");
    cli__finish(r, CLI_EXIT_TIMEOUT);
}

static void cli__on_signal(uv_signal_t *s, int signum)
{
    LMQ_UNUSED(signum);
    cli__finish(s->data, CLI_EXIT_OK);
}

static void cli__on_error(void *ctx, int code, const char *message)
{
    struct cli_run *r = ctx;
    if (code == LMQ_CLIENT_E_HTTP_UNREACHABLE || code == LMQ_CLIENT_E_MQTT_UNREACHABLE) {
        /* Never reached in this run: most likely a wrong address or no broker. Say which and
         * stop; the library would only retry the same address. */
        cli__say("%s (set with --%s HOST:PORT)%s", message,
                 code == LMQ_CLIENT_E_HTTP_UNREACHABLE ? "http" : "server",
                 r->o->to != NULL ? "; the envelope stays in the outbox" : "");
        cli__finish(r, CLI_EXIT_TIMEOUT);
        return;
    }
    cli__say("%s", message);
    /* The server's ledger can't be trusted any more: stop with the ledger exit code. */
    if (code == LMQ_CLIENT_E_HISTORY || code == LMQ_CLIENT_E_KEY)
        cli__finish(r, CLI_EXIT_LEDGER);
}

/* send: signs and stores the envelope (r->link), keeps its JSON for the output. */
static int cli__send_one(struct cli_run *r)
{
    int rc = lmq_client_send(r->client, r->o->to, r->o->type, r->o->json, r->link);
    if (rc == 0) {
        rc = lmq_client_outbox_envelope(r->client, r->link, r->envelope,
                                        LMQ_CLIENT_ENVELOPE_MAX_BYTES, &r->envelope_len);
    }
    LMQ_ASSERT(rc != 0 || r->envelope_len > 0);
    return rc;
}

/* Prints the server's ack or reject (a JSON object) as one line with the envelope it answers
 * added as its first member: {"envelope":{...},<the server's members>}. */
static void cli__print_with_envelope(struct cli_run *r, const uint8_t *json, size_t len)
{
    LMQ_ASSERT(r->envelope_len > 0);
    if (len < 2 || json[0] != '{') {
        printf("%.*s\n", (int)len, (const char *)json); /* not an object: as received */
        return;
    }
    bool empty = len == 2 || json[1] == '}';
    printf("{\"envelope\":%.*s%s%.*s\n", (int)r->envelope_len, (const char *)r->envelope,
           empty ? "" : ",", (int)(len - 1), (const char *)json + 1);
}

static void cli__on_ack(void *ctx, const struct lmq_ack *ack)
{
    struct cli_run *r = ctx;
    if (r->o->to == NULL || strcmp(ack->link, r->link) != 0) {
        return; /* an envelope of an earlier run */
    }
    cli__print_with_envelope(r, ack->ack_json, ack->ack_len);
    /* The reason is on stderr already (on_error). */
    int code = ack->receipt_verified ? CLI_EXIT_OK : CLI_EXIT_LEDGER;
    cli__finish(r, fflush(stdout) == 0 ? code : CLI_EXIT_USAGE);
}

static void cli__on_reject(void *ctx, const struct lmq_reject *rej)
{
    struct cli_run *r = ctx;
    if (r->o->to == NULL || strcmp(rej->link, r->link) != 0) {
        cli__say("envelope seq %" PRIu64 " rejected: %s", rej->seq, rej->reason);
        return;
    }
    if (rej->chain_resynced && !r->resent) {
        cli__say("note: this state directory (%s) had no record of the identity's chain (seq "
                 "1..%" PRIu64 " were sent with another one): adopted the server's head, sending "
                 "again as seq %" PRIu64,
                 r->o->state, rej->expected_seq - 1, rej->expected_seq);
        r->resent = true;
        int rc = cli__send_one(r);
        if (rc == 0) {
            return;
        }
        cli__say("%s", lmq_client_strerror(rc));
    } else if (strcmp(rej->reason, "fork") == 0) {
        cli__say("the server's chain of this identity is at seq %" PRIu64
                 " and this state directory (%s) does not continue it: envelopes of this key "
                 "were sent with another state directory. Send with that one (--state DIR), or "
                 "with a state directory that has no accepted envelope (--state NEW_DIR): its "
                 "first send adopts the server's chain head (README, \"State directory\")",
                 rej->expected_seq - 1, r->o->state);
    }
    cli__print_with_envelope(r, rej->reject_json, rej->reject_len);
    fflush(stdout);
    cli__finish(r, CLI_EXIT_REJECTED);
}

static int cli__on_envelope(void *ctx, const struct lmq_inbox_envelope *env)
{
    struct cli_run *r = ctx;
    if (r->finished) {
        return -1; /* not now: the next listen gets it */
    }
    fwrite(env->message_json, 1, env->message_len, stdout);
    fputc('\n', stdout);
    /* Printed before acknowledged: a failed write must not consume the position. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli__say("cannot write to stdout");
        cli__finish(r, CLI_EXIT_USAGE);
        return -1;
    }
    r->received++;
    if (r->o->count > 0 && r->received >= r->o->count) {
        cli__finish(r, CLI_EXIT_OK);
    }
    return 0;
}

/* Opens the client on r->loop with the CLI's callbacks. */
static int cli__open(struct cli_run *r, bool receive)
{
    char err[CLI_ERR_MAX_BYTES];
    struct cli_opts *o = r->o;
    if (cli__state_dir(o) != 0) {
        return CLI_EXIT_USAGE;
    }
    struct lmq_client_options opts = {.key_file = o->key,
                                      .state_dir = o->state,
                                      .mqtt_host = o->mqtt_host,
                                      .mqtt_port = o->mqtt_port,
                                      .http_host = o->http_host,
                                      .http_port = o->http_port,
                                      .loop = &r->loop,
                                      .cb = {.ctx = r,
                                             .on_envelope = receive ? cli__on_envelope : NULL,
                                             .on_ack = cli__on_ack,
                                             .on_reject = cli__on_reject,
                                             .on_error = cli__on_error}};
    if (uv_loop_init(&r->loop) != 0) {
        return cli__fail("cannot create an event loop");
    }
    int rc = lmq_client_open(&opts, &r->client, err, sizeof(err));
    if (rc != 0) {
        int closed = uv_loop_close(&r->loop);
        LMQ_ASSERT(closed == 0);
        return cli__fail("%s", err);
    }
    return 0;
}

/* Starts the client, the timeout and the signal handlers, runs until finished, cleans up. */
static int cli__run(struct cli_run *r)
{
    LMQ_ASSERT(r->client != NULL);
    r->exit_code = CLI_EXIT_USAGE;
    int rc = uv_timer_init(&r->loop, &r->timer);
    rc = rc == 0 ? uv_signal_init(&r->loop, &r->sigint) : rc;
    rc = rc == 0 ? uv_signal_init(&r->loop, &r->sigterm) : rc;
    LMQ_ASSERT(rc == 0); /* handle initialization on a fresh loop does not fail */
    r->timer.data = r;
    r->sigint.data = r;
    r->sigterm.data = r;
    if (r->o->timeout_ms > 0) {
        rc = uv_timer_start(&r->timer, cli__on_timeout, r->o->timeout_ms, 0);
        LMQ_ASSERT(rc == 0);
    }
    LMQ_UNUSED(uv_signal_start(&r->sigint, cli__on_signal, SIGINT));
    LMQ_UNUSED(uv_signal_start(&r->sigterm, cli__on_signal, SIGTERM));
    rc = lmq_client_start(r->client);
    if (rc != 0) {
        cli__say("cannot start: %s", lmq_client_strerror(rc));
        cli__finish(r, CLI_EXIT_USAGE);
    }
    uv_run(&r->loop, UV_RUN_DEFAULT);
    LMQ_ASSERT(r->finished);
    lmq_client_close(r->client);
    rc = uv_loop_close(&r->loop);
    LMQ_ASSERT(rc == 0);
    return r->exit_code;
}

/* send's --type and body, checked before the state is opened: each fault named on its own. */
static int cli__check_send(const struct cli_opts *o)
{
    json_t *body = NULL;
    const char *more = strlen(o->json) > 40 ? "..." : ""; /* the body is shown cut */
    if (!ledger_envelope_type_valid(o->type, strlen(o->type))) {
        return cli__fail("--type: expected 1..64 characters of A-Za-z0-9._:-, got \"%s\"", o->type);
    }
    int rc = crypto_jcs_parse((const uint8_t *)o->json, strlen(o->json), &body);
    bool object = rc == 0 && json_is_object(body);
    json_decref(body);
    if (rc == LMQ_ENOMEM) {
        return cli__fail("out of memory");
    }
    if (rc != 0) {
        return cli__fail("the body is not valid JSON (%s): %.40s%s",
                         rc == LMQ_EPROTO ? "syntax, duplicate name or bad UTF-8"
                                          : "too deep or too long",
                         o->json, more);
    }
    return object ? 0
                  : cli__fail("the body must be a JSON object ({...}), got %.40s%s", o->json, more);
}

int cli_send(int argc, char **argv)
{
    struct cli_opts o = {.timeout_ms = CLI_SEND_TIMEOUT_MS};
    struct cli_run r = {.o = &o};
    cli__name = "send";
    if (cli__parse(&o, argc, argv, "key to type server http state timeout-ms", true) != 0) {
        return CLI_EXIT_USAGE;
    }
    if (o.to == NULL || o.json == NULL) {
        return cli__fail("--to ID and a JSON object are required");
    }
    if (!crypto_identity_id_valid(o.to, strlen(o.to))) {
        return cli__fail("--to must be an identity id (64 lowercase hex characters)");
    }
    if (cli__check_send(&o) != 0) {
        return CLI_EXIT_USAGE;
    }
    r.envelope = malloc(LMQ_CLIENT_ENVELOPE_MAX_BYTES);
    if (r.envelope == NULL) {
        return cli__fail("out of memory");
    }
    if (cli__open(&r, false) != 0) {
        free(r.envelope);
        return CLI_EXIT_USAGE;
    }
    int rc = cli__send_one(&r);
    if (rc != 0) {
        lmq_client_close(r.client);
        int closed = uv_loop_close(&r.loop);
        LMQ_ASSERT(closed == 0);
        free(r.envelope);
        return cli__fail("cannot store the envelope: %s", lmq_client_strerror(rc));
    }
    rc = cli__run(&r);
    free(r.envelope);
    return rc;
}

int cli_listen(int argc, char **argv)
{
    struct cli_opts o = {0};
    struct cli_run r = {.o = &o};
    cli__name = "listen";
    if (cli__parse(&o, argc, argv, "key server http state timeout-ms count", false) != 0) {
        return CLI_EXIT_USAGE;
    }
    if (cli__open(&r, true) != 0) {
        return CLI_EXIT_USAGE;
    }
    return cli__run(&r);
}
