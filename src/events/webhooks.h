/*
 * Webhooks (docs/PROTOCOL.md "Webhooks"): each [webhook.NAME] endpoint gets the events it asks
 * for POSTed as JSON, signed with HMAC-SHA256, at least once and in order, from the event
 * stream (events.h) after its own durable position, by libcurl's multi interface driven by the
 * broker's loop (no thread per request). A failed delivery is retried with exponential backoff
 * and jitter; after max_attempts the event goes to the endpoint's dead-letter list and the
 * next one follows; consecutive failures open a circuit breaker for breaker_open_ms.
 */
#ifndef LMQ_WEBHOOKS_H
#define LMQ_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

struct broker;

/* Starts the endpoints of b->cfg (after events_init; nothing when there are none). 0 or an
 * error after a log line. */
int webhooks_init(struct broker *b) LMQ_WUR;
/* Once recovery is done and the loop is about to run: writes new endpoints' positions and
 * starts on what is waiting. */
void webhooks_start(struct broker *b);
/* Shutdown: aborts deliveries in flight (their events are sent again after a restart) and
 * closes the handles; the loop runs their closes. */
void webhooks_stop(struct broker *b);
void webhooks_destroy(struct broker *b);
/* The webhook lines of /metrics. */
int webhooks_metrics(struct broker *b, struct lmq_buf *out);

/* For the admin API (src/broker/admin.c). */
/* Redeliveries one endpoint holds at once. */
#define WEBHOOKS_REDELIVER_MAX 16
struct webhooks_info {
    const char *name; /* valid while the broker runs */
    const char *url;
    uint64_t position;                /* every event up to it delivered, skipped or dead-lettered */
    uint64_t lag;                     /* durable events after the position */
    uint64_t delivered, failed, dead; /* attempts since start, as in /metrics */
    bool circuit_open;
    uint32_t failures;   /* consecutive failed attempts */
    size_t queued;       /* events in the endpoint's queue */
    size_t redeliveries; /* dead events waiting to be sent again */
};
/* Endpoints configured (0 without webhooks). */
size_t webhooks_count(const struct broker *b);
/* The state of endpoint i (< webhooks_count). */
void webhooks_info(struct broker *b, size_t i, struct webhooks_info *out);
/* The index of the endpoint called name: 0 or LMQ_ENOTFOUND. */
int webhooks_find(const struct broker *b, const char *name, size_t *i) LMQ_WUR;
struct store_rec_consumer_dead;
/* Endpoint i's dead-letter list after event after_id, oldest first, at most limit (see
 * store_consumer_dead). */
int webhooks_dead(struct broker *b, size_t i, uint64_t after_id, size_t limit,
                  int (*each)(void *ctx, const struct store_rec_consumer_dead *d), void *ctx,
                  size_t *count) LMQ_WUR;
/* Sends dead event event_id to endpoint name again: ahead of its queue, as soon as fewer than
 * max_in_flight attempts run, with max_attempts attempts; once delivered it leaves the
 * dead-letter list (given up again, it stays with its new attempts). Not kept across a
 * restart (the event stays dead). 0; LMQ_ENOTFOUND (no such endpoint, or the event is not in
 * its dead-letter list); LMQ_EEXIST (already waiting); LMQ_ELIMIT (WEBHOOKS_REDELIVER_MAX
 * waiting); LMQ_ENOMEM; LMQ_EIO. */
int webhooks_redeliver(struct broker *b, const char *name, uint64_t event_id) LMQ_WUR;

#endif
