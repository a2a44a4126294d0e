/*
 * Bots (docs/PROTOCOL.md "Bots"): identities named in [bots] ids follow the event stream
 * (events.h) over MQTT. A bot asks for the events after an id on id/<bot>/events/resync and
 * gets them, a page at a time, on id/<bot>/events (QoS 1, the event's canonical JSON), each page
 * closed by a marker on id/<bot>/events/sync; once a marker says it is caught up, new events
 * follow as they become durable, at most a page past its last acknowledgement (a full session
 * queue ends that with a marker saying more, and the bot asks again). Its
 * acknowledgement ({"ack":N} on id/<bot>/events/ack) is its durable position (event_consumers,
 * consumer "bot:<id>"), which a resync without "after" starts from. Every bot gets every event.
 */
#ifndef LMQ_BOTS_H
#define LMQ_BOTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

struct broker;
struct conn;
struct mqtt_publish;

/* Most events sent to a bot beyond its acknowledgement: a resync page, and the live window. */
#define BOTS_PAGE_MAX 100

/* Sets up the bots of b->cfg (after events_init, which the bots turn on), reading their stored
 * positions. Nothing when there are none. 0 or an error after a log line. */
int bots_init(struct broker *b) LMQ_WUR;
void bots_destroy(struct broker *b);
/* True when id (64 characters, or "" for none) is one of [bots] ids. */
bool bots_is_bot(const struct broker *b, const char *id);
/* A bot's publish on its events/resync (ack false) or events/ack (ack true) topic: handles it
 * and returns the PUBACK reason code (a malformed request: an {"error":...} on events/sync, and
 * 0x99 for MQTT 5). c is authenticated as a bot. */
uint8_t bots_request(struct conn *c, bool ack, const struct mqtt_publish *pub);
/* The lowest position of the bots (what each acknowledged; its record written), UINT64_MAX
 * without bots: retention deletes no event past it. */
uint64_t bots_min_position(const struct broker *b);
/* The bot lines of /metrics (nothing without bots). */
int bots_metrics(struct broker *b, struct lmq_buf *out);

#endif
