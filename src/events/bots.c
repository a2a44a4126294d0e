/*
 * Bots (bots.h). Per bot: its durable position (what it acknowledged), and while one of its
 * sessions follows the stream live, that session's client id and the last event sent to it.
 * Pages and live events are read from the store (events_read), so a bot that was away, or a
 * broker that restarted, resumes from the position: nothing is kept in memory that a restart
 * would lose.
 */
#include "events/bots.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/broker_internal.h"
#include "events/events.h"
#include "net/http.h"

/* "bot:" and the id. */
#define BOTS_CONSUMER_CHARS (4 + LMQ_IDENTITY_ID_CHARS)
/* A marker or an error on events/sync. */
#define BOTS_SYNC_MAX_BYTES 256
/* Room asked of the session's queue beyond an event's bytes (topic, properties). */
#define BOTS_MSG_OVERHEAD_BYTES 160
/* The longest request a bot sends ({"after":N} or {"ack":N}). */
#define BOTS_REQUEST_MAX_BYTES 256

struct bot {
    char id[LMQ_IDENTITY_ID_CHARS + 1];
    uint64_t position;  /* every event up to it acknowledged (durable) */
    bool live;          /* a session follows new events */
    uint64_t cursor;    /* live: the last event sent to it */
    uint64_t live_from; /* live: the last event of the marker that made it live */
    uint8_t *client_id; /* live: the session's client id (a copy) */
    size_t client_id_len;
};

struct bots {
    struct broker *broker;
    struct bot list[LMQ_BOTS_MAX];
    size_t count;
};

static struct bot *bots_find(const struct broker *b, const char *id)
{
    struct bots *bs = b->bots;
    if (bs == NULL || id == NULL || strlen(id) != LMQ_IDENTITY_ID_CHARS)
        return NULL;
    for (size_t i = 0; i < bs->count; i++) {
        if (memcmp(bs->list[i].id, id, LMQ_IDENTITY_ID_CHARS) == 0)
            return &bs->list[i];
    }
    return NULL;
}

bool bots_is_bot(const struct broker *b, const char *id)
{
    return bots_find(b, id) != NULL;
}

static void bots_stop_live(struct bot *bot)
{
    free(bot->client_id);
    bot->client_id = NULL;
    bot->client_id_len = 0;
    bot->live = false;
}

/* Publishes payload on id/<bot>/<leaf> to session s only, QoS 1, once the open batch is durable
 * (as the pipeline's inbox messages). */
static int bots_publish(struct broker *b, struct session *s, const char *bot, const char *leaf,
                        const uint8_t *payload, size_t len)
{
    LMQ_ASSERT(s != NULL && strlen(bot) == LMQ_IDENTITY_ID_CHARS);
    return pipeline_publish_server_msg(b, bot, leaf, payload, len, s);
}

struct bots_sending {
    struct broker *broker;
    struct bot *bot;
    struct session *session;
    uint64_t last;
    size_t sent;
    bool full;
};

static int bots_send_event(void *ctx, const struct events_event *e)
{
    struct bots_sending *sd = ctx;
    LMQ_ASSERT(e->id > sd->last); /* read in order */
    if (!session_queue_has_room(sd->session, e->json_len + BOTS_MSG_OVERHEAD_BYTES)) {
        sd->full = true;
        return -1; /* the rest waits: the next ack, event or resync goes on from sd->last */
    }
    if (bots_publish(sd->broker, sd->session, sd->bot->id, "events", (const uint8_t *)e->json,
                     e->json_len) != LMQ_OK) {
        sd->full = true;
        return -1;
    }
    sd->last = e->id;
    sd->sent++;
    return 0;
}

/* Sends up to limit events after sd->last; LMQ_EIO stops the broker. */
static void bots_send(struct bots_sending *sd, size_t limit)
{
    LMQ_ASSERT(limit <= BOTS_PAGE_MAX);
    size_t count = 0;
    int rc = events_read(sd->broker, sd->last, limit, bots_send_event, sd, &count);
    if (rc == LMQ_EIO)
        broker_fail_stop(sd->broker, "event read", rc);
}

/* The live session of bot, or NULL (and the bot is no longer live) once it is gone. */
static struct session *bots_live_session(struct broker *b, struct bot *bot)
{
    if (!bot->live)
        return NULL;
    struct session *s = lmq_map_get(b->sessions, bot->client_id, bot->client_id_len);
    if (s == NULL || s->conn == NULL || strlen(s->owner) != LMQ_IDENTITY_ID_CHARS ||
        memcmp(s->owner, bot->id, LMQ_IDENTITY_ID_CHARS) != 0) {
        bots_stop_live(bot); /* offline: it resyncs when it is back */
        return NULL;
    }
    return s;
}

/* The marker closing a page on events/sync, to session s. */
static int bots_marker(struct broker *b, struct session *s, const struct bot *bot, uint64_t after,
                       size_t sent, uint64_t last, bool more)
{
    LMQ_ASSERT(last >= after && sent <= BOTS_PAGE_MAX);
    char json[BOTS_SYNC_MAX_BYTES];
    int n = snprintf(json, sizeof(json),
                     "{\"after\":%" PRIu64 ",\"count\":%zu,\"last\":%" PRIu64
                     ",\"more\":%s,\"position\":%" PRIu64 "}",
                     after, sent, last, more ? "true" : "false", bot->position);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(json));
    return bots_publish(b, s, bot->id, "events/sync", (const uint8_t *)json, (size_t)n);
}

/* Live: new durable events while fewer than a page are beyond the later of the ack and the
 * marker that made it live. When the session's queue is full, live delivery ends with a marker
 * saying more: the bot asks again once it has read what it holds (nothing else would wake it
 * if no event and no ack came). */
static void bots_pump(struct broker *b, struct bot *bot)
{
    struct session *s = bots_live_session(b, bot);
    if (s == NULL || bot->cursor >= events_durable_id(b))
        return;
    uint64_t floor = LMQ_MAX(bot->position, bot->live_from);
    uint64_t in_flight = bot->cursor - LMQ_MIN(bot->cursor, floor);
    if (in_flight >= BOTS_PAGE_MAX)
        return;
    struct bots_sending sd = {.broker = b, .bot = bot, .session = s, .last = bot->cursor};
    bots_send(&sd, (size_t)(BOTS_PAGE_MAX - in_flight));
    /* Without memory for the marker it stays live: the next event or ack tries again. */
    if (sd.full && bots_marker(b, s, bot, bot->cursor, sd.sent, sd.last, true) == LMQ_OK) {
        bots_stop_live(bot);
        return;
    }
    bot->cursor = sd.last;
}

static void bots_on_events(void *ctx, uint64_t durable_id)
{
    struct bots *bs = ctx;
    LMQ_UNUSED(durable_id);
    for (size_t i = 0; i < bs->count; i++)
        bots_pump(bs->broker, &bs->list[i]);
}

/* An answer on events/sync: a marker or an error. */
static uint8_t bots_sync(struct conn *c, const char *json, size_t len)
{
    LMQ_ASSERT(len < BOTS_SYNC_MAX_BYTES);
    if (bots_publish(c->broker, c->session, c->identity, "events/sync", (const uint8_t *)json,
                     len) != LMQ_OK)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    return MQTT_RC_SUCCESS;
}

static uint8_t bots_refuse(struct conn *c, const char *why)
{
    char json[BOTS_SYNC_MAX_BYTES];
    json_t *o = json_pack("{s:s}", "error", why); /* why may hold quotes: jansson escapes */
    size_t n = o != NULL ? json_dumpb(o, json, sizeof(json), JSON_COMPACT) : 0;
    json_decref(o);
    conn_log(c, LMQ_LOG_INFO, "bot_request_refused", why);
    if (n == 0 || n >= sizeof(json))
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    uint8_t rc = bots_sync(c, json, n);
    if (rc != MQTT_RC_SUCCESS)
        return rc;
    return c->version == MQTT_V5 ? MQTT_RC_PAYLOAD_FORMAT_INVALID : MQTT_RC_SUCCESS;
}

/* {"ack":N}: N (at most the last durable event) becomes the position when it is past it. */
static uint8_t bots_ack(struct conn *c, struct bot *bot, json_t *req)
{
    struct broker *b = c->broker;
    json_t *v = json_object_get(req, "ack");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_object_size(req) != 1)
        return bots_refuse(c, "expected {\"ack\":N}");
    uint64_t ack = (uint64_t)json_integer_value(v);
    if (ack > events_durable_id(b))
        return bots_refuse(c, "ack: past the last event");
    if (ack > bot->position) {
        bot->position = ack;
        char consumer[BOTS_CONSUMER_CHARS + 1];
        int n = snprintf(consumer, sizeof(consumer), "bot:%s", bot->id);
        LMQ_ASSERT(n == BOTS_CONSUMER_CHARS);
        struct store_record rec = {.type = STORE_CONSUMER_POSITION};
        rec.u.consumer_position = (struct store_rec_consumer_position){
            .consumer = {(const uint8_t *)consumer, (size_t)n}, .position = ack};
        commit_store_write(b, &rec); /* the PUBACK waits for this batch */
        bots_pump(b, bot);
    }
    return MQTT_RC_SUCCESS;
}

/* {"after":N} or {}: a page after N (or the position), then the marker. */
static uint8_t bots_resync(struct conn *c, struct bot *bot, json_t *req)
{
    struct broker *b = c->broker;
    json_t *v = json_object_get(req, "after");
    if ((v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0)) ||
        json_object_size(req) != (v != NULL ? 1u : 0u))
        return bots_refuse(c, "expected {\"after\":N} or {}");
    uint64_t pruned = events_pruned_through(b);
    /* {}: after the position, or after the retention mark for a bot below it (one added to
     * [bots] ids after a prune): what is kept of the stream, never a refusal it can't get past. */
    uint64_t after = v != NULL ? (uint64_t)json_integer_value(v) : LMQ_MAX(bot->position, pruned);
    uint64_t durable = events_durable_id(b);
    if (after > durable)
        return bots_refuse(c, "after: past the last event");
    if (after < pruned) {
        char why[128];
        snprintf(why, sizeof(why),
                 "after: events up to %" PRIu64 " were deleted ([events] keep); resync from "
                 "%" PRIu64 " or later",
                 pruned, pruned);
        return bots_refuse(c, why);
    }
    bots_stop_live(bot); /* this session takes over; live again once caught up */
    struct bots_sending sd = {.broker = b, .bot = bot, .session = c->session, .last = after};
    bots_send(&sd, BOTS_PAGE_MAX);
    bool more = sd.full || sd.sent == BOTS_PAGE_MAX || events_durable_id(b) > sd.last;
    if (!more) {
        struct session *s = c->session;
        bot->client_id = malloc(s->client_id_len > 0 ? s->client_id_len : 1);
        if (bot->client_id != NULL) {
            memcpy(bot->client_id, s->client_id, s->client_id_len);
            bot->client_id_len = s->client_id_len;
            bot->live = true;
            bot->cursor = bot->live_from = sd.last;
        } else {
            more = true; /* not live: it asks again */
        }
    }
    if (bots_marker(b, c->session, bot, after, sd.sent, sd.last, more) != LMQ_OK)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    return MQTT_RC_SUCCESS;
}

uint8_t bots_request(struct conn *c, bool ack, const struct mqtt_publish *pub)
{
    struct bot *bot = bots_find(c->broker, c->identity);
    LMQ_ASSERT(bot != NULL && c->session != NULL);
    if (pub->payload.len > BOTS_REQUEST_MAX_BYTES)
        return bots_refuse(c, "request too large");
    json_error_t jerr;
    json_t *req = json_loadb((const char *)pub->payload.data, pub->payload.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    uint8_t rc;
    if (!json_is_object(req))
        rc = bots_refuse(c, ack ? "expected {\"ack\":N}" : "expected {\"after\":N} or {}");
    else
        rc = ack ? bots_ack(c, bot, req) : bots_resync(c, bot, req);
    json_decref(req);
    return rc;
}

int bots_metrics(struct broker *b, struct lmq_buf *out)
{
    struct bots *bs = b->bots;
    if (bs == NULL)
        return LMQ_OK;
    LMQ_ASSERT(bs->count <= LMQ_BOTS_MAX && out != NULL);
    int rc = http_body_printf(out, "# HELP ledgermq_bot_lag_events Durable events past the bot's "
                                   "last acknowledgement.\n"
                                   "# TYPE ledgermq_bot_lag_events gauge\n");
    uint64_t durable = events_durable_id(b);
    for (size_t i = 0; i < bs->count; i++) {
        const struct bot *bot = &bs->list[i];
        rc |= http_body_printf(out, "ledgermq_bot_lag_events{bot=\"%s\"} %" PRIu64 "\n", bot->id,
                               durable - LMQ_MIN(durable, bot->position));
    }
    return rc;
}

struct bots_loading {
    struct bots *bots;
};

static int bots_load_position(void *ctx, struct lmq_bytes consumer, uint64_t position)
{
    struct bots_loading *ld = ctx;
    if (consumer.len != BOTS_CONSUMER_CHARS || memcmp(consumer.data, "bot:", 4) != 0)
        return 0; /* another consumer's */
    for (size_t i = 0; i < ld->bots->count; i++) {
        struct bot *bot = &ld->bots->list[i];
        if (memcmp(bot->id, consumer.data + 4, LMQ_IDENTITY_ID_CHARS) == 0)
            bot->position = position;
    }
    return 0;
}

static void bots_log_started(const struct broker *b, const struct bot *bot)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "bot_started"))
        return;
    uint64_t durable = events_durable_id(b);
    lmq_log_str(&line, "bot", bot->id);
    lmq_log_uint(&line, "position", bot->position);
    lmq_log_uint(&line, "behind", durable - LMQ_MIN(durable, bot->position));
    lmq_log_end(&line);
}

int bots_init(struct broker *b)
{
    LMQ_ASSERT(b->bots == NULL && b->store != NULL);
    if (b->cfg.bot_count == 0)
        return LMQ_OK;
    LMQ_ASSERT(b->cfg.bot_count <= LMQ_BOTS_MAX && events_on(b)); /* the bots turn it on */
    struct bots *bs = calloc(1, sizeof(*bs));
    if (bs == NULL)
        return LMQ_ENOMEM;
    bs->broker = b;
    b->bots = bs;
    for (uint32_t i = 0; i < b->cfg.bot_count; i++) {
        if (bots_find(b, b->cfg.bots[i]) != NULL)
            continue; /* named twice */
        memcpy(bs->list[bs->count++].id, b->cfg.bots[i], sizeof(bs->list[0].id));
    }
    struct bots_loading ld = {bs};
    if (store_consumer_positions(b->store, bots_load_position, &ld) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot read the bots' positions");
        return LMQ_EIO;
    }
    for (size_t i = 0; i < bs->count; i++)
        bots_log_started(b, &bs->list[i]);
    return events_listen(b, bots_on_events, bs);
}

void bots_destroy(struct broker *b)
{
    struct bots *bs = b->bots;
    if (bs == NULL)
        return;
    for (size_t i = 0; i < bs->count; i++)
        bots_stop_live(&bs->list[i]);
    free(bs);
    b->bots = NULL;
}

uint64_t bots_min_position(const struct broker *b)
{
    const struct bots *bs = b->bots;
    uint64_t min = UINT64_MAX;
    if (bs == NULL)
        return min;
    LMQ_ASSERT(bs->count <= LMQ_BOTS_MAX);
    for (size_t i = 0; i < bs->count; i++)
        min = LMQ_MIN(min, bs->list[i].position);
    return min;
}
