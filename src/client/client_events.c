/*
 * A bot's event stream (docs/PROTOCOL.md "Bots") on decoded packets: on every connect ask for the
 * events after the stored position, page while the server says `more`, hand each new event to
 * on_event exactly once and in id order (its id written in the same transaction as the
 * application's handling), and acknowledge handled events in batches. The server delivers at
 * least once; the stored id turns that into exactly once for the application, as the inbox
 * position does for envelopes. No I/O here: packets go out through c->tx, and the idle ack's
 * timer is client_net.c's (it asks client_events_ack_due after each read).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "crypto/jcs.h"

#define EVENTS_REQUEST_MAX_BYTES 48

/* A non-negative integer member (ids and counts stay far below 2^53). */
static int events__u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return LMQ_EPROTO;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* The id after which events are new: the last one handed over (committed, or in the open
 * transaction), or where a state directory that has handled none starts. */
static uint64_t events__handled(const struct lmq_client *c)
{
    LMQ_ASSERT(!c->event_batch_open || c->event_batch_position >= c->event_position);
    uint64_t handled = c->event_batch_open ? c->event_batch_position : c->event_position;
    return LMQ_MAX(handled, c->event_start);
}

/* False while a state directory that has handled no event does not know where its stream
 * starts: until the marker answering its `{}` names the server's stored position. */
static bool events__started(const struct lmq_client *c)
{
    return c->event_position > 0 || c->event_batch_open || c->event_start_known;
}

void client_events_reset(struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL);
    /* Only what the server confirmed counts as acknowledged: an ack in flight on the lost
     * connection may never have arrived, so it is sent again. */
    LMQ_ASSERT(c->event_acked <= c->event_position);
    int rc = client_events_flush(c); /* what was handled on the lost connection stays handled */
    LMQ_UNUSED(rc);                  /* failed: reported, and the events come again */
    c->event_page_inflight = false;
    c->event_page_after = 0;
    c->event_ack_inflight = false;
    c->event_ack_sent = c->event_acked;
}

/* Asks for the events after our position (`{}`: after the server's stored one, for a state
 * directory that has handled none). At most one page is in flight. */
static int events__resync(struct lmq_client *c)
{
    char body[EVENTS_REQUEST_MAX_BYTES];
    uint64_t after = events__handled(c);
    int n = !events__started(c) ? snprintf(body, sizeof(body), "{}")
                                : snprintf(body, sizeof(body), "{\"after\":%" PRIu64 "}", after);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(body));
    c->event_page_inflight = true;
    c->event_page_after = after;
    /* Two ids in turn: the next request may leave before the PUBACK of the previous one. */
    c->event_resync_count++;
    uint16_t pid = (uint16_t)(CLIENT_EVENT_RESYNC_PID + (c->event_resync_count & 1u));
    return client_session_publish(c, CLIENT_TOPIC_EVENTS_RESYNC, (const uint8_t *)body, (size_t)n,
                                  pid);
}

int client_events_on_ready(struct lmq_client *c)
{
    LMQ_ASSERT(c->cb.on_event != NULL);
    LMQ_ASSERT(c->state == CLIENT_READY);
    return events__resync(c); /* every connect: we may have been away */
}

bool client_events_ack_due(const struct lmq_client *c)
{
    LMQ_ASSERT(c->event_ack_sent <= c->event_position);
    return c->cb.on_event != NULL && c->state == CLIENT_READY && !c->event_ack_inflight &&
           c->event_position > c->event_ack_sent;
}

int client_events_ack(struct lmq_client *c)
{
    char body[EVENTS_REQUEST_MAX_BYTES];
    if (!client_events_ack_due(c)) {
        return 0; /* nothing new, or one in flight: its PUBACK sends the next when due */
    }
    int n = snprintf(body, sizeof(body), "{\"ack\":%" PRIu64 "}", c->event_position);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(body));
    c->event_ack_inflight = true;
    c->event_ack_sent = c->event_position;
    return client_session_publish(c, CLIENT_TOPIC_EVENTS_ACK, (const uint8_t *)body, (size_t)n,
                                  CLIENT_EVENT_ACK_PID);
}

int client_events_on_puback(struct lmq_client *c, const struct mqtt_ack *a)
{
    LMQ_ASSERT(a->packet_id >= CLIENT_EVENT_RESYNC_PID && a->packet_id <= CLIENT_EVENT_ACK_PID);
    if (a->packet_id != CLIENT_EVENT_ACK_PID) {
        if (a->reason_code >= 0x80) {
            c->event_page_inflight = false;
            client_session_report(c, LMQ_EPROTO, "events/resync refused (reason 0x%02x)%s",
                                  a->reason_code,
                                  a->reason_code == MQTT_RC_NOT_AUTHORIZED
                                      ? ": this identity is not in the server's [bots] ids"
                                      : "");
        }
        return 0;
    }
    if (!c->event_ack_inflight) {
        return LMQ_EPROTO; /* a PUBACK for an ack we did not send on this connection */
    }
    c->event_ack_inflight = false;
    if (a->reason_code >= 0x80) {
        client_session_report(c, LMQ_EPROTO, "events/ack %" PRIu64 " refused (reason 0x%02x)",
                              c->event_ack_sent, a->reason_code);
        return 0;
    }
    /* The PUBACK of an ack leaves the server once the position is durable there. */
    c->event_acked = LMQ_MAX(c->event_acked, c->event_ack_sent);
    if (c->event_position - c->event_ack_sent >= LMQ_CLIENT_EVENT_ACK_EVERY) {
        return client_events_ack(c);
    }
    return 0;
}

int client_events_flush(struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL);
    if (!c->event_batch_open || c->event_in_callback) {
        return 0;
    }
    c->event_batch_open = false;
    int rc = client_db_commit(c); /* rolled back when it fails */
    if (rc != 0) {
        c->send_deferred = false;
        client_session_report(c, rc, "cannot commit %u handled events: they come again",
                              c->event_batch_count);
        return rc;
    }
    c->event_position = c->event_batch_position;
    LMQ_ASSERT(sqlite3_get_autocommit(c->db));
    if (c->send_deferred) {
        c->send_deferred = false;
        rc = client_session_pump(c); /* what the callbacks sent is durable now */
    }
    return rc;
}

/*
 * Hands one new event to the application inside the events' transaction, in a savepoint of its
 * own with its id: a refusal ("not now") undoes that event only, the ones before it are
 * committed and the connection drops (LMQ_EAGAIN). The events of one read from the server (at
 * most LMQ_CLIENT_EVENT_ACK_EVERY) share the transaction, so a bot pays one synchronous commit
 * per batch, not per event; the commit comes before anything else is handled (client_session_
 * on_packet), before any ack, and at the end of the read. Their PUBACKs may leave before it:
 * a crash loses the uncommitted events and what their callbacks wrote together, and the resync
 * after the stored id brings them again.
 */
static int events__hand_over(struct lmq_client *c, const struct lmq_event *ev)
{
    LMQ_ASSERT(ev->id > events__handled(c));
    LMQ_ASSERT(c->cb.on_event != NULL && !c->event_in_callback);
    int rc = 0;
    if (!c->event_batch_open) {
        rc = client_db_begin(c);
        if (rc != 0) {
            return rc;
        }
        c->event_batch_open = true;
        c->event_batch_count = 0;
        c->event_batch_position = c->event_position;
    }
    rc = client_db_savepoint(c);
    if (rc == 0) {
        c->event_in_callback = true;
        rc = c->cb.on_event(c->cb.ctx, ev) == 0 ? 0 : LMQ_EAGAIN;
        c->event_in_callback = false;
    }
    /* The callback may have stopped the client; the transaction is still ours to finish. */
    rc = rc == 0 ? client_db_set_event_position(c, ev->id) : rc;
    rc = rc == 0 ? client_db_savepoint_release(c) : rc;
    if (rc != 0) {
        client_db_savepoint_rollback(c);
        int frc = client_events_flush(c); /* the events before this one stay handled */
        LMQ_UNUSED(frc);                  /* failed: reported; they come again as well */
        return rc;
    }
    c->event_batch_position = ev->id;
    c->event_batch_count++;
    if (c->event_batch_count >= LMQ_CLIENT_EVENT_ACK_EVERY || c->state != CLIENT_READY) {
        rc = client_events_flush(c); /* a full batch, or the callback stopped the client */
    }
    return rc;
}

int client_events_on_event(struct lmq_client *c, const struct mqtt_publish *p)
{
    json_t *root = json_loadb((const char *)p->payload.data, p->payload.len, 0, NULL);
    struct lmq_buf data = {0};
    uint64_t id = 0;
    int rc = 0;
    const char *type = json_string_value(json_object_get(root, "type"));
    const char *time = json_string_value(json_object_get(root, "time"));
    const json_t *data_obj = json_object_get(root, "data");
    if (!json_is_object(root) || events__u64(root, "id", &id) != 0 || id == 0 || type == NULL ||
        time == NULL || !json_is_object(data_obj)) {
        client_session_report(c, LMQ_EPROTO, "malformed event dropped");
        goto out;
    }
    if (!events__started(c)) {
        /* Where the stream starts for us is not known yet (a resumed session's messages, or the
         * page answering `{}`, come before the marker that says it): dropped, asked again. */
        goto out;
    }
    if (id <= events__handled(c)) {
        goto out; /* handled before: the server delivers at least once */
    }
    if (id != events__handled(c) + 1) {
        /* Ahead of a gap (a stale message of an earlier connection, or live delivery that
         * stopped): dropped; the page in flight, or a new one, brings the events in order. */
        rc = c->event_page_inflight ? 0 : events__resync(c);
        goto out;
    }
    rc = crypto_jcs_canonicalize_json(data_obj, &data, CLIENT_EVENT_MAX_BYTES);
    if (rc != 0) {
        if (rc != LMQ_ENOMEM) {
            client_session_report(c, LMQ_EPROTO, "event %" PRIu64 " dropped: data not canonical",
                                  id);
            rc = 0;
        }
        goto out;
    }
    struct lmq_event ev = {.id = id,
                           .type = type,
                           .time = time,
                           .data_json = data.data,
                           .data_len = data.len,
                           .event_json = p->payload.data,
                           .event_len = p->payload.len};
    rc = events__hand_over(c, &ev);
    if (rc == 0 && c->event_position - c->event_ack_sent >= LMQ_CLIENT_EVENT_ACK_EVERY) {
        rc = client_events_ack(c);
    }
out:
    lmq_buf_release(&data);
    json_decref(root);
    /* Not acknowledged when it must come again (not handled: the connection drops). */
    return rc == 0 ? client_session_puback(c, p->packet_id) : rc;
}

int client_events_on_sync(struct lmq_client *c, const struct mqtt_publish *p)
{
    json_t *root = json_loadb((const char *)p->payload.data, p->payload.len, 0, NULL);
    uint64_t after = 0, last = 0;
    int rc = 0;
    const char *error = json_string_value(json_object_get(root, "error"));
    const json_t *more = json_object_get(root, "more");
    if (error != NULL) {
        /* An error about a resync ends the page; one about an ack leaves it running. */
        if (strstr(error, "ack") == NULL) {
            c->event_page_inflight = false;
        }
        client_session_report(c, LMQ_EPROTO, "events/sync: %s", error);
        goto out;
    }
    if (events__u64(root, "after", &after) != 0 || events__u64(root, "last", &last) != 0 ||
        !json_is_boolean(more)) {
        client_session_report(c, LMQ_EPROTO, "malformed events/sync message ignored");
        goto out;
    }
    if (!events__started(c)) {
        /* The answer to `{}`: its `after` is the server's stored position, where a state
         * directory that has handled no event starts. The events of that page were dropped
         * (they came before this): asked again unless there were none. */
        c->event_start = after;
        c->event_start_known = true;
        c->event_page_inflight = false;
        rc = last > after || json_is_true(more) ? events__resync(c) : 0;
        goto out;
    }
    if (c->event_page_inflight && after != c->event_page_after) {
        goto out; /* answers an earlier request (a resumed session): ours is still coming */
    }
    c->event_page_inflight = false;
    rc = client_events_ack(c); /* after each page */
    if (rc == 0 && json_is_true(more)) {
        rc = events__resync(c); /* also the unasked marker of a full queue */
    }
out:
    json_decref(root);
    LMQ_ASSERT(rc <= 0);
    return rc == 0 ? client_session_puback(c, p->packet_id) : rc;
}
