/*
 * ledgermq admin: the admin API's client (docs/PROTOCOL.md "Admin API"). Logs in with --key
 * (lmq_login), makes one request and prints the answer: a table for people, or the server's
 * JSON as it is with --json. Subcommands are one table (cli_admin__commands): a new one is an
 * entry with its request and its columns.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "client/client_internal.h"
#include "core/lmq.h"
#include "core/resolve.h"
#include "ledgermq/ledgermq.h"

#define CLI_ADMIN_TIMEOUT_MS 10000u
#define CLI_ADMIN_HOST_MAX_BYTES 256
/* The largest answer read (the server's largest response body). */
#define CLI_ADMIN_BODY_MAX_BYTES (4u * 1024u * 1024u)
/* A path with its query (the request, token included, must fit CLIENT_HTTP_REQUEST_MAX_BYTES). */
#define CLI_ADMIN_PATH_MAX_BYTES 1024
/* A table cell is cut to this many bytes (then "..."). */
#define CLI_ADMIN_CELL_MAX_CHARS 64
#define CLI_ADMIN_COLUMNS_MAX 10

struct cli_admin_opts {
    const char *key;
    const char *http;
    const char *limit;
    const char *after;
    bool json;
    bool end;
    uint32_t timeout_ms;
    const char *args[3]; /* positional arguments after the subcommand's words */
    size_t arg_count;
};

/* A table's column: its header and the member of each row it shows. */
struct cli_admin_column {
    const char *header;
    const char *member;
};

struct cli_admin_command {
    const char *words; /* "sessions list" */
    size_t args;       /* positional arguments it takes */
    const char *usage; /* its synopsis, for errors */
    /* Builds the request: method, path (with query) and body (NULL or malloc'd JSON). */
    int (*request)(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                   char **body);
    const char *rows; /* the member holding the rows, NULL: print members as name: value */
    struct cli_admin_column columns[CLI_ADMIN_COLUMNS_MAX];
};

static int cli_admin__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cli_admin__fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = lmq_verrf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "ledgermq: admin: %s\n", n < 0 ? "error" : msg);
    return CLI_EXIT_USAGE;
}

/* Appends text percent-encoded (all but RFC 3986's unreserved characters). False when full. */
static bool cli_admin__encode(char *out, size_t cap, const char *text)
{
    size_t n = strlen(out);
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL;
        if (n + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return true;
}

/* path + "?name=value&..." for the page options given (and extra, already "name=value"). */
static int cli_admin__page_path(const struct cli_admin_opts *o, const char *base,
                                const char *webhook, char *path, size_t cap)
{
    int n = snprintf(path, cap, "%s", base);
    LMQ_ASSERT(n > 0 && (size_t)n < cap);
    const char *names[] = {"webhook", "limit", "after"};
    const char *values[] = {webhook, o->limit, o->after};
    bool first = true;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(names); i++) {
        if (values[i] == NULL)
            continue;
        size_t len = strlen(path);
        if (len + strlen(names[i]) + 3 >= cap)
            return LMQ_ETOOBIG;
        snprintf(path + len, cap - len, "%s%s=", first ? "?" : "&", names[i]);
        first = false;
        if (!cli_admin__encode(path, cap, values[i]))
            return LMQ_ETOOBIG;
    }
    return LMQ_OK;
}

static int cli_admin__get(const char *base, const char **method, char *path, size_t cap)
{
    *method = "GET";
    return snprintf(path, cap, "%s", base) > 0 ? LMQ_OK : LMQ_ETOOBIG;
}

static int req_status(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                      char **body)
{
    LMQ_UNUSED(o);
    *body = NULL;
    return cli_admin__get("/admin/v1/status", method, path, cap);
}

static int req_sessions(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                        char **body)
{
    *body = NULL;
    *method = "GET";
    return cli_admin__page_path(o, "/admin/v1/sessions", NULL, path, cap);
}

static int req_identities(const struct cli_admin_opts *o, const char **method, char *path,
                          size_t cap, char **body)
{
    *body = NULL;
    *method = "GET";
    return cli_admin__page_path(o, "/admin/v1/identities", NULL, path, cap);
}

static int req_webhooks(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                        char **body)
{
    LMQ_UNUSED(o);
    *body = NULL;
    return cli_admin__get("/admin/v1/webhooks", method, path, cap);
}

static int req_dead(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                    char **body)
{
    *body = NULL;
    *method = "GET";
    return cli_admin__page_path(o, "/admin/v1/webhooks/dead", o->args[0], path, cap);
}

/* A POST with body (a json_t, taken) as compact JSON. */
static int cli_admin__post(const char *where, json_t *root, const char **method, char *path,
                           size_t cap, char **body)
{
    *method = "POST";
    *body = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (*body == NULL)
        return LMQ_ENOMEM;
    return snprintf(path, cap, "%s", where) > 0 ? LMQ_OK : LMQ_ETOOBIG;
}

static int req_kick(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                    char **body)
{
    return cli_admin__post("/admin/v1/sessions/kick",
                           json_pack("{s:s,s:b}", "client_id", o->args[0], "end", o->end), method,
                           path, cap, body);
}

static int req_redeliver(const struct cli_admin_opts *o, const char **method, char *path,
                         size_t cap, char **body)
{
    char *end = NULL;
    errno = 0;
    unsigned long long id = strtoull(o->args[1], &end, 10);
    if (o->args[1][0] < '0' || o->args[1][0] > '9' || *end != '\0' || errno != 0 || id == 0 ||
        id > INT64_MAX)
        return LMQ_EINVAL;
    return cli_admin__post(
        "/admin/v1/webhooks/redeliver",
        json_pack("{s:s,s:I}", "webhook", o->args[0], "event_id", (json_int_t)id), method, path,
        cap, body);
}

static int req_log_level(const struct cli_admin_opts *o, const char **method, char *path,
                         size_t cap, char **body)
{
    return cli_admin__post("/admin/v1/log-level", json_pack("{s:s}", "level", o->args[0]), method,
                           path, cap, body);
}

static int req_reload(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                      char **body)
{
    LMQ_UNUSED(o);
    return cli_admin__post("/admin/v1/reload", json_object(), method, path, cap, body);
}

static int req_jobs(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                    char **body)
{
    LMQ_UNUSED(o);
    *body = NULL;
    return cli_admin__get("/admin/v1/jobs", method, path, cap);
}

static int req_job_history(const struct cli_admin_opts *o, const char **method, char *path,
                           size_t cap, char **body)
{
    *body = NULL;
    *method = "GET";
    int n = snprintf(path, cap, "/admin/v1/jobs/history?job=%s&limit=%s", o->args[0],
                     o->limit != NULL ? o->limit : "20");
    bool name_ok =
        strspn(o->args[0], "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(o->args[0]);
    bool limit_ok = o->limit == NULL || strspn(o->limit, "0123456789") == strlen(o->limit);
    return n > 0 && (size_t)n < cap && name_ok && limit_ok ? LMQ_OK : LMQ_EINVAL;
}

static int req_job_run(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                       char **body)
{
    return cli_admin__post("/admin/v1/jobs/run", json_pack("{s:s}", "job", o->args[0]), method,
                           path, cap, body);
}

static int req_plugins(const struct cli_admin_opts *o, const char **method, char *path, size_t cap,
                       char **body)
{
    LMQ_UNUSED(o);
    *body = NULL;
    return cli_admin__get("/admin/v1/plugins", method, path, cap);
}

/* One entry per subcommand: jobs and plugins are added here the same way. */
static const struct cli_admin_command cli_admin__commands[] = {
    {"status", 0, "status", req_status, NULL, {{0}}},
    {"sessions list",
     0,
     "sessions list [--limit N] [--after CLIENT_ID]",
     req_sessions,
     "sessions",
     {{"CLIENT_ID", "client_id"},
      {"OWNER", "owner"},
      {"CONNECTED", "connected"},
      {"QUEUED", "queued"},
      {"INFLIGHT", "inflight"},
      {"SUBS", "subscriptions"},
      {"LAST_ACTIVITY_MS", "last_activity_ms"}}},
    {"sessions kick", 1, "sessions kick CLIENT_ID [--end]", req_kick, NULL, {{0}}},
    {"identities list",
     0,
     "identities list [--limit N] [--after ID]",
     req_identities,
     "identities",
     {{"ID", "id"}, {"LAST_SEQ", "last_seq"}, {"INBOX_POSITION", "inbox_position"}}},
    {"webhooks list",
     0,
     "webhooks list",
     req_webhooks,
     "webhooks",
     {{"NAME", "name"},
      {"URL", "url"},
      {"POSITION", "position"},
      {"LAG", "lag"},
      {"CIRCUIT", "circuit"},
      {"DELIVERED", "delivered"},
      {"FAILED", "failed"},
      {"DEAD", "dead"}}},
    {"webhooks dead",
     1,
     "webhooks dead NAME [--limit N] [--after EVENT_ID]",
     req_dead,
     "dead",
     {{"EVENT_ID", "event_id"},
      {"ATTEMPTS", "attempts"},
      {"TIME_MS", "time_ms"},
      {"ERROR", "error"}}},
    {"webhooks redeliver", 2, "webhooks redeliver NAME EVENT_ID", req_redeliver, NULL, {{0}}},
    {"log-level set", 1, "log-level set debug|info|warn|error", req_log_level, NULL, {{0}}},
    {"reload", 0, "reload", req_reload, NULL, {{0}}},
    {"jobs list",
     0,
     "jobs list",
     req_jobs,
     "jobs",
     {{"NAME", "name"},
      {"SCHEDULE", "schedule"},
      {"NEXT_TICK_MS", "next_tick_ms"},
      {"RUNNING", "running"},
      {"OK", "ok"},
      {"FAILED", "failed"},
      {"TIMEOUT", "timeout"}}},
    {"jobs history",
     1,
     "jobs history NAME [--limit N]",
     req_job_history,
     "runs",
     {{"TICK_MS", "tick_ms"},
      {"STATE", "state"},
      {"MANUAL", "manual"},
      {"SKIPPED", "skipped"},
      {"STARTED_MS", "started_ms"},
      {"ENDED_MS", "ended_ms"},
      {"DETAIL", "detail"}}},
    {"jobs run", 1, "jobs run NAME", req_job_run, NULL, {{0}}},
    {"plugins list",
     0,
     "plugins list",
     req_plugins,
     "plugins",
     {{"NAME", "name"},
      {"HOOKS", "hooks"},
      {"POSITION", "position"},
      {"VALIDATE_CALLS", "validate_calls"},
      {"REFUSED", "refused"},
      {"SLOW", "slow_calls"},
      {"EVENTS", "events"}}},
};

/* ---- output ---- */

/* A value as a table cell or a "name: value" line. */
static void cli_admin__cell(const json_t *v, char *out, size_t cap)
{
    LMQ_ASSERT(cap > 4);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = strlen(s);
        if (len > CLI_ADMIN_CELL_MAX_CHARS && cap > CLI_ADMIN_CELL_MAX_CHARS + 3)
            snprintf(out, cap, "%.*s...", CLI_ADMIN_CELL_MAX_CHARS - 3, s);
        else
            snprintf(out, cap, "%s", s);
    } else if (json_is_integer(v)) {
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, cap, "%s", json_is_true(v) ? "yes" : "no");
    } else {
        snprintf(out, cap, "-");
    }
}

static void cli_admin__table(const struct cli_admin_command *c, const json_t *rows)
{
    size_t widths[CLI_ADMIN_COLUMNS_MAX] = {0}, cols = 0;
    char cell[CLI_ADMIN_CELL_MAX_CHARS + 8];
    while (cols < CLI_ADMIN_COLUMNS_MAX && c->columns[cols].header != NULL) {
        widths[cols] = strlen(c->columns[cols].header);
        cols++;
    }
    size_t n = json_array_size(rows);
    for (size_t r = 0; r < n; r++) {
        for (size_t k = 0; k < cols; k++) {
            cli_admin__cell(json_object_get(json_array_get(rows, r), c->columns[k].member), cell,
                            sizeof(cell));
            widths[k] = LMQ_MAX(widths[k], strlen(cell));
        }
    }
    for (size_t k = 0; k < cols; k++)
        printf("%-*s%s", (int)widths[k], c->columns[k].header, k + 1 < cols ? "  " : "\n");
    for (size_t r = 0; r < n; r++) {
        for (size_t k = 0; k < cols; k++) {
            cli_admin__cell(json_object_get(json_array_get(rows, r), c->columns[k].member), cell,
                            sizeof(cell));
            printf("%-*s%s", (int)widths[k], cell, k + 1 < cols ? "  " : "\n");
        }
    }
}

/* "name: value" lines; an object's members as "name.member: value" (two levels). */
static void cli_admin__members(const json_t *root, const char *prefix, int depth)
{
    const char *name;
    const json_t *v;
    char cell[CLI_ADMIN_CELL_MAX_CHARS + 8];
    json_object_foreach((json_t *)root, name, v)
    {
        if (json_is_object(v) && depth < 2) {
            char inner[128];
            snprintf(inner, sizeof(inner), "%s%s.", prefix, name);
            cli_admin__members(v, inner, depth + 1);
            continue;
        }
        cli_admin__cell(v, cell, sizeof(cell));
        printf("%s%s: %s\n", prefix, name, cell);
    }
}

static int cli_admin__print(const struct cli_admin_command *c, const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        fprintf(stderr, "ledgermq: admin: the server's answer is not a JSON object\n");
        return CLI_EXIT_TIMEOUT;
    }
    if (c->rows != NULL) {
        cli_admin__table(c, json_object_get(root, c->rows));
        const json_t *next = json_object_get(root, "next");
        char cell[CLI_ADMIN_CELL_MAX_CHARS + 8];
        if (next != NULL && !json_is_null(next)) {
            cli_admin__cell(next, cell, sizeof(cell));
            printf("(more: --after %s)\n", cell);
        }
    } else {
        cli_admin__members(root, "", 0);
    }
    json_decref(root);
    return CLI_EXIT_OK;
}

/* ---- arguments ---- */

static int cli_admin__flag(struct cli_admin_opts *o, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "--json") == 0 || strcmp(arg, "--end") == 0) {
        *(arg[2] == 'j' ? &o->json : &o->end) = true;
        return 0;
    }
    static const char *const names[] = {"key", "http", "limit", "after", "timeout-ms"};
    for (size_t k = 0; k < LMQ_ARRAY_LEN(names); k++) {
        size_t n = strlen(names[k]);
        if (strncmp(arg + 2, names[k], n) != 0 || (arg[2 + n] != '\0' && arg[2 + n] != '='))
            continue;
        const char *v = arg[2 + n] == '=' ? arg + 3 + n : *i + 1 < argc ? argv[++*i] : NULL;
        if (v == NULL || v[0] == '\0')
            return cli_admin__fail("--%s needs a value", names[k]);
        const char **slots[] = {&o->key, &o->http, &o->limit, &o->after};
        if (k < LMQ_ARRAY_LEN(slots)) {
            *slots[k] = v;
            return 0;
        }
        char *end = NULL;
        errno = 0;
        unsigned long ms = strtoul(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || ms == 0 || ms > UINT32_MAX)
            return cli_admin__fail("--timeout-ms: expected 1..%u, got \"%s\"", UINT32_MAX, v);
        o->timeout_ms = (uint32_t)ms;
        return 0;
    }
    return cli_admin__fail("unexpected argument \"%s\" (see ledgermq admin --help)", arg);
}

/* The subcommand named by the positional words; its arguments land in o->args. */
static const struct cli_admin_command *cli_admin__match(struct cli_admin_opts *o,
                                                        const char **words, size_t count)
{
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cli_admin__commands); i++) {
        const struct cli_admin_command *c = &cli_admin__commands[i];
        const char *w = c->words;
        size_t used = 0;
        /* One word per round: bounded by the command's words. */
        while (used < count && *w != '\0') {
            size_t len = strcspn(w, " ");
            if (strlen(words[used]) != len || memcmp(words[used], w, len) != 0)
                break;
            used++;
            w += len + (w[len] == ' ' ? 1 : 0);
        }
        if (*w != '\0' || count - used != c->args)
            continue;
        for (size_t k = 0; k < c->args; k++)
            o->args[k] = words[used + k];
        o->arg_count = c->args;
        return c;
    }
    return NULL;
}

static int cli_admin__parse(struct cli_admin_opts *o, int argc, char **argv,
                            const struct cli_admin_command **cmd)
{
    const char *words[8];
    size_t count = 0;
    o->http = "127.0.0.1:8080";
    o->timeout_ms = CLI_ADMIN_TIMEOUT_MS;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            if (cli_admin__flag(o, argc, argv, &i) != 0)
                return CLI_EXIT_USAGE;
        } else if (count < LMQ_ARRAY_LEN(words)) {
            words[count++] = argv[i];
        } else {
            return cli_admin__fail("too many arguments (see ledgermq admin --help)");
        }
    }
    *cmd = cli_admin__match(o, words, count);
    if (*cmd == NULL) {
        fprintf(stderr, "ledgermq: admin: expected one of:\n");
        for (size_t i = 0; i < LMQ_ARRAY_LEN(cli_admin__commands); i++)
            fprintf(stderr, "  ledgermq admin %s\n", cli_admin__commands[i].usage);
        return CLI_EXIT_USAGE;
    }
    if (o->key == NULL)
        return cli_admin__fail("--key FILE is required");
    return 0;
}

/* "HOST:PORT" or "[IPv6]:PORT". */
static int cli_admin__hostport(const char *text, char *host, size_t cap, uint16_t *port)
{
    const char *colon = strrchr(text, ':');
    size_t h_len = colon != NULL ? (size_t)(colon - text) : 0;
    const char *h = text;
    if (h_len >= 2 && text[0] == '[' && text[h_len - 1] == ']') {
        h++;
        h_len -= 2;
    }
    char *end = NULL;
    unsigned long p = colon != NULL ? strtoul(colon + 1, &end, 10) : 0;
    if (colon == NULL || h_len == 0 || h_len >= cap || colon[1] < '0' || colon[1] > '9' ||
        *end != '\0' || p == 0 || p > UINT16_MAX)
        return cli_admin__fail("--http: expected HOST:PORT, got \"%s\"", text);
    memcpy(host, h, h_len);
    host[h_len] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* ---- the request ---- */

/* Maps an answer's status to the exit code (after its reason on stderr). */
static int cli_admin__refused(unsigned status, const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *reason = json_string_value(json_object_get(root, "reason"));
    const char *detail = json_string_value(json_object_get(root, "detail"));
    fprintf(stderr, "ledgermq: admin: refused (%u %s)%s%s\n", status,
            reason != NULL ? reason : "no reason given", detail != NULL ? ": " : "",
            detail != NULL ? detail : "");
    json_decref(root);
    return status >= 500 ? CLI_EXIT_TIMEOUT : CLI_EXIT_REJECTED;
}

static int cli_admin__send(const struct cli_admin_opts *o, const struct cli_admin_command *c,
                           const struct sockaddr_storage *addr, const char *token)
{
    const char *method = NULL;
    char path[CLI_ADMIN_PATH_MAX_BYTES];
    char *body = NULL;
    int rc = c->request(o, &method, path, sizeof(path), &body);
    if (rc != LMQ_OK)
        return cli_admin__fail(rc == LMQ_EINVAL ? "EVENT_ID: expected a positive integer"
                                                : "the request is too large");
    struct lmq_buf answer = {0};
    unsigned status = 0;
    rc = client_http_request(addr, method, path, token, body, &answer, CLI_ADMIN_BODY_MAX_BYTES,
                             o->timeout_ms, &status);
    free(body);
    int exit_code;
    if (rc == LMQ_ETOOBIG) {
        exit_code = cli_admin__fail("the request is too large (a shorter --after?)");
    } else if (rc != LMQ_OK) {
        fprintf(stderr, "ledgermq: admin: no answer from %s\n", o->http);
        exit_code = CLI_EXIT_TIMEOUT;
    } else if (status != 200) {
        exit_code = cli_admin__refused(status, (const char *)answer.data, answer.len);
    } else if (o->json) {
        fwrite(answer.data, 1, answer.len, stdout);
        fputc('\n', stdout);
        exit_code = CLI_EXIT_OK;
    } else {
        exit_code = cli_admin__print(c, (const char *)answer.data, answer.len);
    }
    lmq_buf_release(&answer);
    if (fflush(stdout) != 0 && exit_code == CLI_EXIT_OK)
        exit_code = CLI_EXIT_USAGE;
    return exit_code;
}

int cli_admin(int argc, char **argv)
{
    struct cli_admin_opts o = {0};
    const struct cli_admin_command *c = NULL;
    int rc = cli_admin__parse(&o, argc, argv, &c);
    if (rc != 0)
        return rc;
    char host[CLI_ADMIN_HOST_MAX_BYTES], err[512];
    uint16_t port = 0;
    if (cli_admin__hostport(o.http, host, sizeof(host), &port) != 0)
        return CLI_EXIT_USAGE;
    struct sockaddr_storage addr;
    if (lmq_resolve(host, port, &addr, err, sizeof(err)) != 0)
        return cli_admin__fail("cannot resolve HTTP address %s: %s", o.http, err);
    char token[LMQ_TOKEN_MAX_BYTES];
    rc = lmq_login(o.key, host, port, o.timeout_ms, token, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ledgermq: admin: %s\n", err);
        return rc == LMQ_EINVAL   ? CLI_EXIT_USAGE
               : rc == LMQ_EPROTO ? CLI_EXIT_REJECTED
                                  : CLI_EXIT_TIMEOUT;
    }
    return cli_admin__send(&o, c, &addr, token);
}
