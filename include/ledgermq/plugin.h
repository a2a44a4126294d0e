/*
 * LedgerMQ server plugins: shared objects the server loads at start ([plugins] load = a.so,
 * b.so) to act on what happens (docs/PROTOCOL.md "Plugins").
 *
 * A plugin exports one symbol, ledgermq_plugin_entry, returning a description with the ABI
 * version it was built for (LMQ_PLUGIN_ABI_VERSION) and its hooks; the server refuses to start
 * with a plugin of another ABI version. Every hook runs on the server's loop thread, one at a
 * time; a hook must not block (no network or disk waits): the whole server waits for it. A
 * plugin runs inside the server's process with all its rights: one that crashes takes the
 * server down (it restarts from its durable state like after any crash), so load only code you
 * trust as much as the server itself.
 *
 * Hooks (each may be NULL):
 *   init      once at start, after the store is recovered: returns the plugin's state (NULL is
 *             a valid state); config is the text of the plugin's [plugin.NAME] args key ("" when
 *             none). Returning LMQ_PLUGIN_FAILED stops the start.
 *   fini      once at shutdown.
 *   on_event  each event of the event stream (ids in order, at least once), after it is
 *             durable, asynchronously: a slow on_event delays later events, never acceptance.
 *             The server stores how far each plugin got (its position), so after a restart it
 *             resumes there: an event whose on_event ran just before a crash may come again.
 *   validate  each envelope that continues its sender's chain, before acceptance (after the
 *             typed-object checks): 0 accepts it; non-zero refuses it with verdict->reason
 *             (the reject's reason becomes "plugin:<reason>") and verdict->detail. Synchronous
 *             and on the acceptance path: its time is measured, reported in /metrics and logged
 *             when over [plugins] slow_us.
 *   will_send each envelope the server is about to sign and send as itself (REST writes,
 *             plugins' own sends): 0 lets it go; LMQ_PLUGIN_STOP stops it (the caller sees a
 *             refusal "plugin:stopped"); to amend the body, set *amended_body to a new JSON
 *             object text allocated with api->alloc and return 0.
 */
#ifndef LEDGERMQ_PLUGIN_H
#define LEDGERMQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LMQ_PLUGIN_ABI_VERSION 1u
/* init's result when the plugin can't run: the server does not start. */
#define LMQ_PLUGIN_FAILED ((void *)-1)
/* will_send's result that stops the envelope. */
#define LMQ_PLUGIN_STOP 1
/* A job step's result: more work, call again. */
#define LMQ_PLUGIN_JOB_MORE 1

/* The server, as the plugin reaches it (opaque). */
struct lmq_plugin_host;

/* An event of the event stream: json is the whole event, canonical JSON (docs/PROTOCOL.md "The
 * event stream"), valid during the call. */
struct lmq_plugin_event {
    uint64_t id;
    const char *type;
    size_t type_len;
    const char *json;
    size_t json_len;
};

/* An envelope being accepted: strings NUL-terminated, valid during the call. */
struct lmq_plugin_envelope {
    const char *from; /* sender identity id (64 hex) */
    const char *to;   /* recipient identity id */
    const char *type; /* the envelope type */
    const char *link; /* its link (64 hex) */
    uint64_t seq;     /* the sender's sequence number */
    const char *body; /* the body, canonical JSON */
    size_t body_len;
};

/* validate's refusal: static strings (or strings that outlive the call). reason: 1..40
 * characters of [a-z0-9_]; detail may be NULL. */
struct lmq_plugin_verdict {
    const char *reason;
    const char *detail;
};

/* Log levels of api->log. */
enum lmq_plugin_log_level {
    LMQ_PLUGIN_LOG_DEBUG = 0,
    LMQ_PLUGIN_LOG_INFO = 1,
    LMQ_PLUGIN_LOG_WARN = 2,
    LMQ_PLUGIN_LOG_ERROR = 3,
};

/* What the server offers a plugin; valid from init until fini. */
struct lmq_plugin_api {
    uint32_t abi_version;
    /* Sends an envelope as the server (signed by the server key on its own chain, through the
     * same checks as any envelope, delivered to to's inbox): to an identity id, a type, a body
     * (a JSON object's text). 0 with the envelope's link (65 bytes with the NUL) in link, or a
     * negative error with the refusal's reason in reason (reason_cap bytes). Durable with the
     * loop turn's commit, like any accepted envelope. */
    int (*send)(struct lmq_plugin_host *host, const char *to, const char *type, const char *body,
                char *link, char *reason, size_t reason_cap);
    /* The latest version of a typed object by its permalink (every resource is readable), as
     * GET /api/v1/T/PERMALINK shows it: 0 with *json (free it with api->free), 1 when there is
     * none, a negative error. A synchronous store read. */
    int (*read_resource)(struct lmq_plugin_host *host, const char *permalink, char **json);
    /* One JSON log line: {"level":..,"event":"plugin","plugin":"<name>","name":event,"msg":msg}. */
    void (*log)(struct lmq_plugin_host *host, enum lmq_plugin_log_level level, const char *event,
                const char *msg);
    /* Calls fn(ctx) once, on the loop, after ms milliseconds (not durable: a restart forgets
     * it). 0 or a negative error. */
    int (*call_later)(struct lmq_plugin_host *host, uint32_t ms, void (*fn)(void *ctx), void *ctx);
    void *(*alloc)(size_t n);
    void (*free)(void *p);
    /* Registers a durable scheduled job (docs/ARCHITECTURE.md "Scheduled jobs"), only from
     * init: name ([a-z0-9_]{1,32}, unique among all jobs), a default schedule (cron or
     * "@every 1m"; [jobs] NAME = ... in the configuration overrides it; NULL: off unless
     * configured) and a step, called on the loop with a cursor that persists between the steps
     * of one run (0 at its start): it does a bounded batch of work and returns 0 (done),
     * LMQ_PLUGIN_JOB_MORE (call again) or a negative number (failed, with a reason written to
     * detail). A tick runs at most once, even across kill -9. 0 or a negative error. */
    int (*register_job)(struct lmq_plugin_host *host, const char *name, const char *schedule,
                        int (*step)(void *ctx, uint64_t *cursor, char *detail, size_t detail_cap),
                        void *ctx);
};

struct lmq_plugin {
    uint32_t abi_version; /* LMQ_PLUGIN_ABI_VERSION */
    const char *name;     /* 1..32 of [a-z0-9_]: log lines, metrics, reject reasons */
    void *(*init)(struct lmq_plugin_host *host, const struct lmq_plugin_api *api,
                  const char *config);
    void (*fini)(void *state);
    void (*on_event)(void *state, const struct lmq_plugin_event *event);
    int (*validate)(void *state, const struct lmq_plugin_envelope *envelope,
                    struct lmq_plugin_verdict *verdict);
    int (*will_send)(void *state, const char *to, const char *type, const char *body,
                     char **amended_body);
};

/* The one symbol a plugin exports. */
const struct lmq_plugin *ledgermq_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif
