/*
 * An example LedgerMQ plugin (include/ledgermq/plugin.h; docs/PROTOCOL.md "Plugins"), built
 * with the server as build/plugins/guard.so. Load it with
 *
 *     [plugins]
 *     load = build/plugins/guard.so
 *     [plugin.guard]
 *     args = deny_type=spam log=/tmp/guard.events
 *
 * What it does, one hook each:
 *   validate   refuses envelopes of the type deny_type names (reason "plugin:denied_type"),
 *              and, when sleep_us is given, first sleeps that long (to see plugin_slow);
 *   on_event   appends "<id> <type>" to the file log names, and answers each accepted envelope
 *              of type "ping" with a server-signed "pong" envelope to its sender;
 *   will_send  stops server-sent envelopes whose body contains "stop_me", and stamps the body
 *              of each "pong" with "stamped_by":"guard";
 *   a job      guard_tick (off unless [jobs] guard_tick = SCHEDULE): each run logs "tick" with
 *              the number of runs since start, in two steps to show the cursor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ledgermq/plugin.h>

struct guard {
    struct lmq_plugin_host *host;
    const struct lmq_plugin_api *api;
    char deny_type[65];
    char log_path[512];
    long sleep_us;
    unsigned long ticks;
};

/* guard_tick: step 0 counts, step 1 logs; a run is done after two steps. */
static int guard_tick(void *ctx, uint64_t *cursor, char *detail, size_t detail_cap)
{
    struct guard *g = ctx;
    if (*cursor == 0) {
        g->ticks++;
        *cursor = 1;
        return LMQ_PLUGIN_JOB_MORE;
    }
    char msg[64];
    snprintf(msg, sizeof(msg), "%lu", g->ticks);
    g->api->log(g->host, LMQ_PLUGIN_LOG_INFO, "tick", msg);
    snprintf(detail, detail_cap, "tick %lu", g->ticks);
    return 0;
}

/* "key=value" words of args; the value (up to the next space) into out. */
static void guard_arg(const char *args, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = args; p != NULL && *p != '\0';) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            snprintf(out, cap, "%.*s", (int)(n - klen - 1), p + klen + 1);
            return;
        }
        p = end;
    }
}

static void *guard_init(struct lmq_plugin_host *host, const struct lmq_plugin_api *api,
                        const char *config)
{
    struct guard *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return LMQ_PLUGIN_FAILED;
    g->host = host;
    g->api = api;
    char sleep[32] = "";
    guard_arg(config, "deny_type", g->deny_type, sizeof(g->deny_type));
    guard_arg(config, "log", g->log_path, sizeof(g->log_path));
    guard_arg(config, "sleep_us", sleep, sizeof(sleep));
    g->sleep_us = strtol(sleep, NULL, 10);
    if (api->register_job(host, "guard_tick", NULL, guard_tick, g) != 0) {
        free(g);
        return LMQ_PLUGIN_FAILED;
    }
    api->log(host, LMQ_PLUGIN_LOG_INFO, "guard_ready", config);
    return g;
}

static void guard_fini(void *state)
{
    free(state);
}

static int guard_validate(void *state, const struct lmq_plugin_envelope *env,
                          struct lmq_plugin_verdict *verdict)
{
    struct guard *g = state;
    if (g->sleep_us > 0) {
        struct timespec ts = {g->sleep_us / 1000000, (g->sleep_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    if (g->deny_type[0] != '\0' && strcmp(env->type, g->deny_type) == 0) {
        verdict->reason = "denied_type";
        verdict->detail = "this server does not take envelopes of that type";
        return 1;
    }
    return 0;
}

/* The value of "link" in an event's data: the first "link":"<64 hex>" in the JSON. */
static int guard_link(const char *json, size_t len, char out[65])
{
    const char *p = memmem(json, len, "\"link\":\"", 8);
    if (p == NULL || (size_t)(p - json) + 8 + 64 > len)
        return -1;
    memcpy(out, p + 8, 64);
    out[64] = '\0';
    return 0;
}

static void guard_on_event(void *state, const struct lmq_plugin_event *e)
{
    struct guard *g = state;
    if (g->log_path[0] != '\0') {
        FILE *f = fopen(g->log_path, "a");
        if (f != NULL) {
            fprintf(f, "%llu %.*s\n", (unsigned long long)e->id, (int)e->type_len, e->type);
            fclose(f);
        }
    }
    if (e->type_len != 17 || memcmp(e->type, "envelope.accepted", 17) != 0 ||
        memmem(e->json, e->json_len, "\"type\":\"ping\"", 13) == NULL)
        return;
    /* The sender: "from":"<64 hex>" in the event's data. */
    const char *from = memmem(e->json, e->json_len, "\"from\":\"", 8);
    char link[65], to[65], body[160], sent[65], reason[64];
    if (from == NULL || guard_link(e->json, e->json_len, link) != 0)
        return;
    memcpy(to, from + 8, 64);
    to[64] = '\0';
    snprintf(body, sizeof(body), "{\"pong\":\"%s\"}", link);
    if (g->api->send(g->host, to, "pong", body, sent, reason, sizeof(reason)) == 0)
        g->api->log(g->host, LMQ_PLUGIN_LOG_INFO, "pong_sent", sent);
    else
        g->api->log(g->host, LMQ_PLUGIN_LOG_WARN, "pong_refused", reason);
}

static int guard_will_send(void *state, const char *to, const char *type, const char *body,
                           char **amended_body)
{
    struct guard *g = state;
    (void)to;
    if (strstr(body, "stop_me") != NULL)
        return LMQ_PLUGIN_STOP;
    if (strcmp(type, "pong") == 0 && body[0] == '{') {
        size_t n = strlen(body);
        char *out = g->api->alloc(n + 32);
        if (out == NULL)
            return 0;
        /* {"pong":"..."} -> {"pong":"...","stamped_by":"guard"} */
        snprintf(out, n + 32, "%.*s%s\"stamped_by\":\"guard\"}", (int)(n - 1), body,
                 n > 2 ? "," : "");
        *amended_body = out;
    }
    return 0;
}

static const struct lmq_plugin guard_plugin = {
    .abi_version = LMQ_PLUGIN_ABI_VERSION,
    .name = "guard",
    .init = guard_init,
    .fini = guard_fini,
    .on_event = guard_on_event,
    .validate = guard_validate,
    .will_send = guard_will_send,
};

const struct lmq_plugin *ledgermq_plugin_entry(void)
{
    return &guard_plugin;
}
