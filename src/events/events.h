/*
 * The event stream (docs/ARCHITECTURE.md "The event stream"): one ordered record of what
 * happened, each event with a durable, gap-free id from 1, written in the commit batch of what
 * it reports, so an event is durable exactly when its cause is. Consumers (webhooks; later bots
 * and plugins) learn of new durable events after each commit and read them from the store, so
 * one that falls behind, or restarts, resumes after its own position.
 *
 * Events (type, and the members of data):
 *   envelope.accepted  index, link, from, to, seq, type, envelope (as stored)
 *   envelope.rejected  identity, reason, detail (or null), seq, expected_seq, link
 *   object.version     model, permalink, link, prevlink (or null), author, owner, to, deleted,
 *                      ledger_index
 *   session.started    client_id, identity (or null), user, remote, transport, protocol
 *   session.ended      the same, plus by and reason
 *   security.<kind>    kind, detail (or null), remote (or null), identity (or null)
 *   job.finished       job, tick_ms, manual, skipped, state, detail, started_ms, ended_ms
 *   admin.call         identity (or null), method, path (or null), status (src/broker/admin.c)
 * An event as consumers see it: {"data":{...},"id":N,"time":"<RFC 3339 UTC, ns>","type":"..."}
 * (canonical JSON).
 *
 * The stream is on when something consumes it ([webhook.NAME] sections, [bots] ids) or [events]
 * record = true; off, events_emit costs nothing and writes nothing.
 */
#ifndef LMQ_EVENTS_H
#define LMQ_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/lmq.h"

struct broker;

/* Creates b->events when the stream is on (after the pipeline, before the data layer: it
 * registers a commit hook and an envelope hook), reading the last id from the store. 0 or an
 * error after a log line. */
int events_init(struct broker *b) LMQ_WUR;
void events_destroy(struct broker *b);
/* True when the stream is on. */
bool events_on(const struct broker *b);

/* Records an event of type (static, at most LMQ_EVENT_TYPE_MAX_CHARS) with data (a JSON
 * object; the reference is taken, NULL is an empty object) in the open batch. Nothing when the
 * stream is off. Fail stop without memory (an event can't be skipped: ids are gap-free). */
void events_emit(struct broker *b, const char *type, json_t *data);

/* The canonical JSON of an envelope.accepted event (id, time as events carry it) in out, as
 * events_emit would write it from the same members. LMQ_EINVAL when a number is past 2^53
 * (JCS writes those as doubles: the caller takes the general path), LMQ_ELIMIT past the
 * largest event. */
#define EVENTS_JSON_EXACT_MAX ((uint64_t)1 << 53)
struct ledger_envelope;
struct lmq_buf;
int events_envelope_accepted_json(struct lmq_buf *out, const struct ledger_envelope *env,
                                  const char *link, uint64_t index, uint64_t id,
                                  const char *time) LMQ_WUR;

/* The highest id that is durable (0: none yet). */
uint64_t events_durable_id(const struct broker *b);
/* Called after each commit that made events durable (the highest durable id), for consumers
 * to read on. At most EVENTS_LISTENERS_MAX. 0 or LMQ_ELIMIT. */
#define EVENTS_LISTENERS_MAX 4
int events_listen(struct broker *b, void (*fn)(void *ctx, uint64_t durable_id), void *ctx) LMQ_WUR;

/* One stored event: the canonical JSON of the whole event (valid during the call). */
struct events_event {
    uint64_t id;
    const char *type;
    size_t type_len;
    const char *json;
    size_t json_len;
};
/* Up to limit durable events with id > after, in order. Sets *count; a non-zero return of fn
 * stops (LMQ_EINVAL). LMQ_EIO stops the broker's caller. */
int events_read(struct broker *b, uint64_t after, size_t limit,
                int (*fn)(void *ctx, const struct events_event *e), void *ctx,
                size_t *count) LMQ_WUR;
/* Every id up to this may have been deleted by retention ([events] keep, the prune_events job;
 * 0: none): events_read after an earlier id misses events. */
uint64_t events_pruned_through(const struct broker *b);
/* Retention wrote the deletion of the events up to through (raised, never lowered). */
void events_set_pruned_through(struct broker *b, uint64_t through);
/* Events emitted since start, for /metrics. */
uint64_t events_emitted(const struct broker *b);

#endif
