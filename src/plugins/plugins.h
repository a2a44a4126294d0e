/*
 * The server's side of the plugin ABI (include/ledgermq/plugin.h; docs/PROTOCOL.md "Plugins"):
 * loading [plugins] load at start, the host API, and the three hook points: validate through the
 * envelope seam, will_send through the pipeline's server-send hook, on_event after each commit
 * from the event stream, resumed after the plugin's stored position.
 */
#ifndef LMQ_PLUGINS_H
#define LMQ_PLUGINS_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/lmq.h"

struct broker;

/* True when the configuration loads a plugin (the event stream is then on). */
bool plugins_configured(const struct broker *b);
/* Loads and checks every plugin (dlopen, the entry symbol, the ABI version, the name) and
 * registers their hooks (after the data layer: validate sees envelopes the object checks
 * passed). 0 or LMQ_EINVAL / LMQ_ENOMEM after a start_failed log line. */
int plugins_load(struct broker *b) LMQ_WUR;
/* After recovery: each plugin's init, then on_event resumes after its position. 0 or
 * LMQ_EINVAL (an init refused). */
int plugins_start(struct broker *b) LMQ_WUR;
/* Shutdown: each plugin's fini; the timers close with the loop. */
void plugins_stop(struct broker *b);
/* Frees what plugins_load made (the shared objects stay loaded until exit). */
void plugins_destroy(struct broker *b);
/* One loaded plugin as the admin API shows it. */
struct plugins_info {
    const char *name;
    const char *path;
    bool validate, on_event, will_send;
    uint64_t position; /* the last event its on_event had */
    uint64_t validate_calls, validate_refused, slow_calls, events;
};
/* Plugins loaded (0 when none). */
size_t plugins_count(const struct broker *b);
/* The i-th (< plugins_count) into *out. */
void plugins_info(const struct broker *b, size_t i, struct plugins_info *out);
/* The plugin lines of /metrics. */
int plugins_metrics(struct broker *b, struct lmq_buf *out);

#endif
