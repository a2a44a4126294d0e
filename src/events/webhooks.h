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

#endif
