/*
 * The event stream (events.h): ids, the records, the commit hook that tells consumers which
 * events are durable, and the envelope hook that reports accepted envelopes.
 */
#include "events/events.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "crypto/jcs.h"
#include "ledger/envelope.h"
#include "pipeline/pipeline.h"

/* An event's canonical JSON at most: an envelope.accepted around the largest envelope. */
#define EVENTS_JSON_MAX_BYTES (LEDGER_ENVELOPE_MAX_BYTES + 4096u)

struct events_listener {
    void (*fn)(void *ctx, uint64_t durable_id);
    void *ctx;
};

struct events {
    struct broker *broker;
    uint64_t next_id;        /* the id of the next event */
    uint64_t durable_id;     /* every id up to this is durable */
    uint64_t pruned_through; /* retention deleted (or is deleting) the ids up to this */
    uint64_t emitted;
    size_t commit_slot;
    struct events_listener listeners[EVENTS_LISTENERS_MAX];
    size_t listener_count;
    struct lmq_buf json; /* scratch for the event being written */
};

/* The batch's slot holds the highest id it wrote, boxed. */
struct events_batch {
    uint64_t last_id;
};

bool events_on(const struct broker *b)
{
    return b->events != NULL;
}

uint64_t events_durable_id(const struct broker *b)
{
    return b->events != NULL ? b->events->durable_id : 0;
}

uint64_t events_pruned_through(const struct broker *b)
{
    return b->events != NULL ? b->events->pruned_through : 0;
}

void events_set_pruned_through(struct broker *b, uint64_t through)
{
    struct events *ev = b->events;
    LMQ_ASSERT(ev != NULL && through < ev->next_id);
    ev->pruned_through = LMQ_MAX(ev->pruned_through, through);
}

uint64_t events_emitted(const struct broker *b)
{
    return b->events != NULL ? b->events->emitted : 0;
}

/* The event's time, formatted as envelope times are ("" if the clock is out of range). */
static void events_time(struct broker *b, int64_t *ms, char time[LEDGER_ENVELOPE_TIME_CHARS + 1])
{
    *ms = clock_unix_ms(b);
    if (ledger_envelope_format_time(*ms / 1000, (uint32_t)(*ms % 1000) * 1000000u, time) != LMQ_OK)
        time[0] = '\0';
}

/* Writes the event in ev->json (its canonical JSON, id next_id) to the open batch. */
static void events_record(struct broker *b, const char *type, int64_t ms)
{
    struct events *ev = b->events;
    struct store_record rec = {.type = STORE_EVENT_APPEND};
    rec.u.event_append = (struct store_rec_event_append){
        .id = ev->next_id,
        .time_ms = ms,
        .type = {(const uint8_t *)type, strlen(type)},
        .data = {ev->json.data, ev->json.len},
    };
    commit_store_write(b, &rec);
    void **slot = commit_hook_data(b, ev->commit_slot);
    struct events_batch *batch = *slot;
    if (batch == NULL && (batch = *slot = calloc(1, sizeof(*batch))) == NULL)
        broker_fail_stop(b, "event", LMQ_ENOMEM);
    batch->last_id = ev->next_id;
    ev->next_id++;
    ev->emitted++;
}

void events_emit(struct broker *b, const char *type, json_t *data)
{
    struct events *ev = b->events;
    if (ev == NULL || b->store == NULL) { /* off, or past the last commit of a shutdown */
        json_decref(data);
        return;
    }
    LMQ_ASSERT(type != NULL && strlen(type) <= LMQ_EVENT_TYPE_MAX_CHARS);
    int64_t ms;
    char time[LEDGER_ENVELOPE_TIME_CHARS + 1];
    events_time(b, &ms, time);
    json_t *o = json_pack("{s:o,s:I,s:s,s:s}", "data", data != NULL ? data : json_object(), "id",
                          (json_int_t)ev->next_id, "time", time, "type", type);
    ev->json.len = 0;
    int rc =
        o != NULL ? crypto_jcs_canonicalize_json(o, &ev->json, EVENTS_JSON_MAX_BYTES) : LMQ_ENOMEM;
    json_decref(o);
    if (rc != LMQ_OK)
        broker_fail_stop(b, "event", rc); /* a gap in the ids would break every consumer */
    events_record(b, type, ms);
}

int events_envelope_accepted_json(struct lmq_buf *out, const struct ledger_envelope *env,
                                  const char *link, uint64_t index, uint64_t id, const char *time)
{
    /* Members in RFC 8785 order; every string here needs no escaping (hex ids and links, the
     * envelope time, a type of [A-Za-z0-9._:-]) and the envelope is canonical already. */
    LMQ_ASSERT(ledger_envelope_type_valid(env->type, strlen(env->type)));
    if (index > EVENTS_JSON_EXACT_MAX || env->seq > EVENTS_JSON_EXACT_MAX ||
        id > EVENTS_JSON_EXACT_MAX)
        return LMQ_EINVAL; /* past 2^53 a number is written as a double */
    out->len = 0;
    return lmq_buf_printf(out, EVENTS_JSON_MAX_BYTES,
                          "{\"data\":{\"envelope\":%.*s,\"from\":\"%s\",\"index\":%" PRIu64
                          ",\"link\":\"%s\",\"seq\":%" PRIu64
                          ",\"to\":\"%s\",\"type\":\"%s\"},\"id\":%" PRIu64
                          ",\"time\":\"%s\",\"type\":\"envelope.accepted\"}",
                          (int)env->canonical.len, (const char *)env->canonical.data, env->from,
                          index, link, env->seq, env->to, env->type, id, time);
}

static void events_on_durable(void *ctx, uint64_t batch_seq, void **data)
{
    LMQ_UNUSED(batch_seq);
    struct events *ev = ctx;
    struct events_batch *batch = *data;
    if (batch == NULL)
        return;
    LMQ_ASSERT(batch->last_id > ev->durable_id); /* batches are durable in order */
    ev->durable_id = batch->last_id;
    for (size_t i = 0; i < ev->listener_count; i++)
        ev->listeners[i].fn(ev->listeners[i].ctx, ev->durable_id);
}

static void events_batch_free(void *ctx, uint64_t batch_seq, void **data)
{
    LMQ_UNUSED(ctx), LMQ_UNUSED(batch_seq);
    free(*data);
    *data = NULL;
}

static const struct commit_hook events_commit_hook = {
    .name = "events",
    .on_durable = events_on_durable,
    .batch_free = events_batch_free,
};

int events_listen(struct broker *b, void (*fn)(void *ctx, uint64_t durable_id), void *ctx)
{
    struct events *ev = b->events;
    LMQ_ASSERT(ev != NULL && fn != NULL);
    if (ev->listener_count == EVENTS_LISTENERS_MAX)
        return LMQ_ELIMIT;
    ev->listeners[ev->listener_count++] = (struct events_listener){fn, ctx};
    return LMQ_OK;
}

struct events_reading {
    int (*fn)(void *ctx, const struct events_event *e);
    void *ctx;
};

static int events_read_row(void *ctx, const struct store_event_row *r)
{
    struct events_reading *rd = ctx;
    struct events_event e = {
        .id = r->id,
        .type = (const char *)r->type.data,
        .type_len = r->type.len,
        .json = (const char *)r->data.data,
        .json_len = r->data.len,
    };
    return rd->fn(rd->ctx, &e);
}

int events_read(struct broker *b, uint64_t after, size_t limit,
                int (*fn)(void *ctx, const struct events_event *e), void *ctx, size_t *count)
{
    struct events_reading rd = {fn, ctx};
    return store_events_after(b->store, after, limit, events_read_row, &rd, count);
}

/* envelope.accepted, in the envelope's batch: written straight from the stored envelope (it is
 * on every accepted envelope's path; parsing it back into a tree cost most of the stream's
 * price). */
static int events_envelope_appended(void *ctx, const struct ledger_envelope *env, const char *link,
                                    uint64_t index)
{
    struct events *ev = ctx;
    struct broker *b = ev->broker;
    if (b->store == NULL)
        return LMQ_OK;
    int64_t ms;
    char time[LEDGER_ENVELOPE_TIME_CHARS + 1];
    events_time(b, &ms, time);
    int rc = events_envelope_accepted_json(&ev->json, env, link, index, ev->next_id, time);
    if (rc == LMQ_EINVAL) { /* numbers past 2^53: the general path */
        json_error_t jerr;
        json_t *envelope =
            json_loadb((const char *)env->canonical.data, env->canonical.len, 0, &jerr);
        if (envelope == NULL)
            return LMQ_ENOMEM;
        events_emit(b, "envelope.accepted",
                    json_pack("{s:I,s:s,s:s,s:s,s:I,s:s,s:o}", "index", (json_int_t)index, "link",
                              link, "from", env->from, "to", env->to, "seq", (json_int_t)env->seq,
                              "type", env->type, "envelope", envelope));
        return LMQ_OK;
    }
    if (rc != LMQ_OK)
        return rc;
    events_record(b, "envelope.accepted", ms);
    return LMQ_OK;
}

int events_init(struct broker *b)
{
    LMQ_ASSERT(b->events == NULL && b->store != NULL);
    if (b->cfg.webhook_count == 0 && b->cfg.bot_count == 0 && b->cfg.plugins.count == 0 &&
        !b->cfg.events_record)
        return LMQ_OK; /* off */
    struct events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return LMQ_ENOMEM;
    ev->broker = b;
    b->events = ev;
    uint64_t last = 0;
    if (store_events_last_id(b->store, &last) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot read the event stream");
        return LMQ_EIO;
    }
    if (store_events_pruned(b->store, &ev->pruned_through) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot read the event stream's retention");
        return LMQ_EIO;
    }
    ev->next_id = last + 1;
    ev->durable_id = last;
    int rc = commit_hook_register(b, &events_commit_hook, ev, &ev->commit_slot);
    struct pipeline_envelope_hook hook = {
        .name = "events", .appended = events_envelope_appended, .ctx = ev};
    if (rc == LMQ_OK)
        rc = pipeline_envelope_hook_register(b, &hook);
    return rc;
}

void events_destroy(struct broker *b)
{
    if (b->events == NULL)
        return;
    lmq_buf_release(&b->events->json);
    free(b->events);
    b->events = NULL;
}
