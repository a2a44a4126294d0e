/*
 * The protocol logic of a connected client, on decoded MQTT packets: subscribe, resend the
 * outbox, resync the inbox, deliver inbox envelopes in position order exactly once, record
 * acks and rejects. No I/O here: packets go out through c->tx, so unit tests drive this file
 * with packets they build and capture what it sends.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "crypto/jcs.h"

#define SESSION_JSON_MAX_BYTES CLIENT_PACKET_MAX_BYTES
#define SESSION_REASON_MAX_BYTES 64
#define SESSION_RESYNC_MAX_BYTES 48

void client_session_report(struct lmq_client *c, int code, const char *fmt, ...)
{
    char msg[CLIENT_ERR_MAX_BYTES];
    va_list ap;
    LMQ_ASSERT(c != NULL && code < 0);
    va_start(ap, fmt);
    int n = lmq_verrf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(msg, sizeof(msg), "error");
    }
    if (c->cb.on_error != NULL) {
        c->cb.on_error(c->cb.ctx, code, msg);
    }
}

uint64_t client_session_backoff_ms(unsigned attempt, uint32_t rand_u32)
{
    uint64_t d = CLIENT_BACKOFF_FIRST_MS;
    /* Doubling is bounded: after enough steps the cap holds whatever attempt is. */
    for (unsigned i = 0; i < attempt && d < CLIENT_BACKOFF_MAX_MS; i++) {
        d *= 2;
    }
    d = LMQ_MIN(d, (uint64_t)CLIENT_BACKOFF_MAX_MS);
    /* Jitter in [d/2, d]: clients that lost the server together do not return together. */
    uint64_t out = d / 2 + (uint64_t)rand_u32 % (d / 2 + 1);
    LMQ_ASSERT(out >= CLIENT_BACKOFF_FIRST_MS / 2 && out <= CLIENT_BACKOFF_MAX_MS);
    return out;
}

void client_session_init(struct lmq_client *c)
{
    static const char *const names[CLIENT_TOPIC_COUNT] = {
        "outbox", "inbox",  "ack",         "reject",        "resync",
        "sync",   "events", "events/sync", "events/resync", "events/ack"};
    LMQ_ASSERT(strlen(c->ident.id) == CRYPTO_IDENTITY_ID_CHARS);
    for (size_t i = 0; i < CLIENT_TOPIC_COUNT; i++) {
        int n = snprintf(c->topics[i], sizeof(c->topics[i]), "id/%s/%s", c->ident.id, names[i]);
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(c->topics[i]));
    }
    int n = snprintf(c->client_id, sizeof(c->client_id), "lmq-%.16s", c->ident.id);
    LMQ_ASSERT(n == 20);
}

void client_session_reset(struct lmq_client *c)
{
    LMQ_ASSERT(c->held_count <= CLIENT_HOLD_MAX);
    for (unsigned i = 0; i < c->held_count; i++) {
        lmq_buf_release(&c->held[i].payload);
    }
    c->held_count = 0;
    memset(c->inflight_seq, 0, sizeof(c->inflight_seq));
    c->inflight_count = 0;
    c->pump_after_seq = 0;
    c->resync_inflight = false;
    c->resync_idle_count = 0;
    client_events_reset(c);
    LMQ_ASSERT(c->inflight_count == 0 && c->held_count == 0);
}

/* --- small JSON helpers --------------------------------------------------------------------- */

/* An integer member 0..2^53 (jansson integer, or a real holding an integer). */
static int session__u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    double d = 0;
    if (json_is_integer(v)) {
        d = (double)json_integer_value(v);
    } else if (json_is_real(v)) {
        d = json_real_value(v);
    } else {
        return LMQ_EPROTO;
    }
    if (!(d >= 0 && d <= (double)CRYPTO_JCS_EXACT_INT_MAX) || d != (double)(uint64_t)d) {
        return LMQ_EPROTO;
    }
    *out = (uint64_t)d;
    return 0;
}

static int session__str(const json_t *obj, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (s == NULL || strlen(s) >= cap) {
        return LMQ_EPROTO;
    }
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

/* --- sending packets -------------------------------------------------------------------------- */

int client_session_puback(struct lmq_client *c, uint16_t packet_id)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBACK};
    LMQ_ASSERT(c->tx != NULL);
    if (packet_id == 0) {
        return 0; /* QoS 0: nothing to acknowledge */
    }
    pkt.u.ack.packet_id = packet_id;
    return c->tx(c, &pkt);
}

int client_session_publish(struct lmq_client *c, enum client_topic topic, const uint8_t *payload,
                           size_t len, uint16_t packet_id)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    LMQ_ASSERT(topic < CLIENT_TOPIC_COUNT && packet_id != 0);
    LMQ_ASSERT(len <= CLIENT_PACKET_MAX_BYTES);
    pkt.u.publish.qos = 1;
    pkt.u.publish.packet_id = packet_id;
    pkt.u.publish.topic =
        (struct lmq_bytes){(const uint8_t *)c->topics[topic], strlen(c->topics[topic])};
    pkt.u.publish.payload = (struct lmq_bytes){payload, len};
    return c->tx(c, &pkt);
}

/* Asks the server for the inbox after `after`. */
static int session__resync(struct lmq_client *c, uint64_t after)
{
    char body[SESSION_RESYNC_MAX_BYTES];
    int n = snprintf(body, sizeof(body), "{\"after\":%" PRIu64 "}", after);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(body));
    c->resync_inflight = true;
    c->resync_progress_at = c->inbox_position;
    /* Two ids in turn: the next request may leave before the PUBACK of the previous one. */
    c->resync_count++;
    uint16_t pid = (uint16_t)(CLIENT_RESYNC_PID + (c->resync_count & 1u));
    return client_session_publish(c, CLIENT_TOPIC_RESYNC, (const uint8_t *)body, (size_t)n, pid);
}

int client_session_on_connack(struct lmq_client *c, const struct mqtt_connack *ack)
{
    /* The inbox pair only for a receiver, the events pair only for a bot. */
    enum client_topic subs[6] = {CLIENT_TOPIC_ACK, CLIENT_TOPIC_REJECT};
    struct mqtt_sub_entry entries[LMQ_ARRAY_LEN(subs)];
    size_t count = 2;
    LMQ_ASSERT(c->state == CLIENT_CONNACK);
    if (ack->reason_code != MQTT_RC_SUCCESS) {
        return LMQ_EPROTO;
    }
    client_session_reset(c);
    c->inflight_max = CLIENT_INFLIGHT_MAX;
    if ((ack->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)) != 0) {
        c->inflight_max = LMQ_MAX(1u, LMQ_MIN(c->inflight_max, ack->props.receive_maximum));
    }
    /* A send-only client does not take the inbox: a listener gets it by resync. */
    if (c->cb.on_envelope != NULL) {
        subs[count++] = CLIENT_TOPIC_INBOX;
        subs[count++] = CLIENT_TOPIC_SYNC;
    }
    if (c->cb.on_event != NULL) {
        subs[count++] = CLIENT_TOPIC_EVENTS;
        subs[count++] = CLIENT_TOPIC_EVENTS_SYNC;
    }
    LMQ_ASSERT(count <= LMQ_ARRAY_LEN(subs));
    for (size_t i = 0; i < count; i++) {
        entries[i].filter =
            (struct lmq_bytes){(const uint8_t *)c->topics[subs[i]], strlen(c->topics[subs[i]])};
        entries[i].options = 1; /* QoS 1 */
    }
    struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE};
    pkt.u.subscribe.packet_id = CLIENT_SUBSCRIBE_PID;
    pkt.u.subscribe.entries = entries;
    pkt.u.subscribe.entry_count = count;
    c->state = CLIENT_SUBACK;
    LMQ_ASSERT(c->inflight_max >= 1 && c->inflight_max <= CLIENT_INFLIGHT_MAX);
    return c->tx(c, &pkt);
}

int client_session_pump(struct lmq_client *c)
{
    struct lmq_buf env = {0};
    int rc = 0;
    LMQ_ASSERT(c->inflight_count <= c->inflight_max);
    if (c->state != CLIENT_READY) {
        return 0;
    }
    /* Bounded by the window: each round fills one in-flight slot. */
    while (c->inflight_count < c->inflight_max && c->out_queued_bytes < CLIENT_OUT_MAX_BYTES) {
        uint64_t seq = 0;
        rc = client_db_outbox_next(c, c->pump_after_seq, &seq, &env);
        if (rc == LMQ_ENOTFOUND) {
            rc = 0;
            break;
        }
        if (rc != 0) {
            break;
        }
        unsigned slot = 0;
        while (slot < CLIENT_INFLIGHT_MAX && c->inflight_seq[slot] != 0) {
            slot++;
        }
        LMQ_ASSERT(slot < CLIENT_INFLIGHT_MAX); /* inflight_count < inflight_max */
        c->inflight_seq[slot] = seq;
        c->inflight_count++;
        c->pump_after_seq = seq;
        rc =
            client_session_publish(c, CLIENT_TOPIC_OUTBOX, env.data, env.len, (uint16_t)(slot + 2));
        if (rc != 0) {
            break;
        }
    }
    lmq_buf_release(&env);
    return rc;
}

/* --- inbox ------------------------------------------------------------------------------------ */

struct session_inbox_msg {
    json_t *root;
    uint64_t position;
    uint64_t index;
    struct lmq_buf canonical; /* the whole message, canonical */
    struct lmq_buf envelope;  /* the envelope, canonical */
};

static void session__msg_release(struct session_inbox_msg *m)
{
    json_decref(m->root);
    lmq_buf_release(&m->canonical);
    lmq_buf_release(&m->envelope);
    memset(m, 0, sizeof(*m));
}

static int session__msg_parse(const uint8_t *payload, size_t len, struct session_inbox_msg *m)
{
    memset(m, 0, sizeof(*m));
    int rc = crypto_jcs_parse(payload, len, &m->root);
    if (rc != 0) {
        return rc;
    }
    const json_t *env = json_object_get(m->root, "envelope");
    if (!json_is_object(m->root) || !json_is_object(env) ||
        session__u64(m->root, "position", &m->position) != 0 || m->position == 0 ||
        session__u64(m->root, "index", &m->index) != 0) {
        rc = LMQ_EPROTO;
    }
    if (rc == 0) {
        rc = crypto_jcs_canonicalize_json(m->root, &m->canonical, SESSION_JSON_MAX_BYTES);
    }
    if (rc == 0) {
        rc = crypto_jcs_canonicalize_json(env, &m->envelope, LEDGER_ENVELOPE_MAX_BYTES);
    }
    if (rc != 0) {
        session__msg_release(m);
        return rc == LMQ_ENOMEM ? rc : LMQ_EPROTO;
    }
    LMQ_ASSERT(m->position >= 1);
    return 0;
}

/* Hands a verified envelope to the application inside the delivery transaction and writes the
 * position in it: the application's own statements on lmq_client_db() commit with it or not at
 * all. LMQ_EAGAIN when the application said "not now" (everything rolled back). */
static int session__hand_over(struct lmq_client *c, const struct lmq_inbox_envelope *in)
{
    LMQ_ASSERT(in->position == c->inbox_position + 1);
    int rc = client_db_begin(c);
    if (rc != 0) {
        return rc;
    }
    rc = c->cb.on_envelope(c->cb.ctx, in) == 0 ? 0 : LMQ_EAGAIN;
    /* The callback may have stopped the client; the transaction is still ours to finish. */
    rc = rc == 0 ? client_db_set_position(c, in->position) : rc;
    rc = rc == 0 ? client_db_sender_set_seq(c, in->from, in->seq) : rc;
    rc = rc == 0 ? client_db_commit(c) : rc;
    if (rc != 0) {
        client_db_rollback(c);
        c->send_deferred = false; /* rolled back with the rest */
        return rc;
    }
    c->inbox_position = in->position;
    LMQ_ASSERT(sqlite3_get_autocommit(c->db));
    if (c->send_deferred) {
        c->send_deferred = false;
        rc = client_session_pump(c); /* what the callback sent is durable now */
    }
    return rc;
}

/* session__deliver refused a replayed envelope: its position is not consumed (the real one
 * for that position comes with the resync the caller asks for). */
#define SESSION_REPLAY_REFUSED 1

/*
 * Verifies and hands one in-order message to the application (see session__hand_over).
 * LMQ_EAGAIN when the application said "not now"; SESSION_REPLAY_REFUSED for an envelope whose
 * seq its sender has already passed in this inbox: a replay, which may have been put in front of
 * the real envelope for this position, so the position stays open.
 */
static int session__deliver(struct lmq_client *c, const struct session_inbox_msg *m)
{
    struct ledger_envelope env = {0};
    const char *reason = "bad_json";
    char link[LEDGER_ENVELOPE_LINK_BYTES];
    LMQ_ASSERT(m->position == c->inbox_position + 1);
    LMQ_ASSERT(c->cb.on_envelope != NULL);
    int rc = ledger_envelope_open(m->envelope.data, m->envelope.len, &env, &reason);
    if (rc == LMQ_ENOMEM) {
        return rc;
    }
    uint64_t sender_seq = 0;
    if (rc == 0 && (rc = client_db_sender_last_seq(c, env.from, &sender_seq)) != 0) {
        ledger_envelope_release(&env);
        return rc;
    }
    if (rc == 0 && env.seq <= sender_seq) {
        client_session_report(c, LMQ_EPROTO,
                              "inbox position %" PRIu64 " refused: replay (seq %" PRIu64
                              " of a sender already at %" PRIu64 ")",
                              m->position, env.seq, sender_seq);
        ledger_envelope_release(&env);
        if (c->replay_refused_position != m->position) {
            c->replay_refused_position = m->position;
            return SESSION_REPLAY_REFUSED;
        }
        /* The same position again, after the resync the first refusal asked for: that is what
         * the server's ledger holds there. Never shown; consumed so the inbox moves on. */
        return client_db_set_position(c, m->position);
    }
    if (rc == 0 && strcmp(env.to, c->ident.id) != 0) {
        reason = "not_for_us";
        rc = LMQ_EPROTO;
    }
    if (rc != 0) {
        /* A forged or foreign envelope is never shown; its position is consumed so that the
         * inbox keeps moving (the server vouched for the order, not for the content). */
        client_session_report(c, LMQ_EPROTO, "inbox position %" PRIu64 " refused: %s", m->position,
                              reason);
        ledger_envelope_release(&env); /* a no-op when open failed: it released already */
        return client_db_set_position(c, m->position);
    }
    rc = ledger_envelope_link(&env, link);
    if (rc == 0) {
        struct lmq_inbox_envelope in = {.position = m->position,
                                        .index = m->index,
                                        .from = env.from,
                                        .to = env.to,
                                        .seq = env.seq,
                                        .link = link,
                                        .type = env.type,
                                        .time = env.time,
                                        .body_json = env.body.data,
                                        .body_len = env.body.len,
                                        .message_json = m->canonical.data,
                                        .message_len = m->canonical.len};
        rc = session__hand_over(c, &in);
    }
    ledger_envelope_release(&env);
    return rc;
}

/* Delivers held messages that have become next in order; drops those already delivered. */
static int session__drain(struct lmq_client *c)
{
    int rc = 0;
    /* Each pass removes one held entry or stops: bounded by CLIENT_HOLD_MAX passes. */
    for (unsigned pass = 0; pass < CLIENT_HOLD_MAX && c->held_count > 0 && rc == 0; pass++) {
        unsigned i = 0;
        while (i < c->held_count && c->held[i].position > c->inbox_position + 1) {
            i++;
        }
        if (i == c->held_count) {
            break; /* still a gap */
        }
        struct client_held h = c->held[i];
        c->held[i] = c->held[--c->held_count];
        if (h.position == c->inbox_position + 1) {
            struct session_inbox_msg m;
            rc = session__msg_parse(h.payload.data, h.payload.len, &m);
            LMQ_ASSERT(rc != LMQ_EPROTO); /* it parsed when it was held */
            rc = rc == 0 ? session__deliver(c, &m) : rc;
            if (rc == SESSION_REPLAY_REFUSED) {
                rc = 0; /* dropped: the position stays open for the real one */
            }
            session__msg_release(&m);
        }
        lmq_buf_release(&h.payload);
    }
    return rc;
}

/* Keeps a message that arrived ahead of a gap; acknowledged at once (see on_inbox). */
static void session__hold(struct lmq_client *c, const struct mqtt_publish *p, uint64_t position)
{
    for (unsigned i = 0; i < c->held_count; i++) {
        if (c->held[i].position == position) {
            return; /* already held */
        }
    }
    if (c->held_count == CLIENT_HOLD_MAX) {
        return; /* dropped: the resync brings it again */
    }
    struct client_held *h = &c->held[c->held_count];
    memset(h, 0, sizeof(*h));
    if (lmq_buf_append(&h->payload, p->payload.data, p->payload.len, CLIENT_PACKET_MAX_BYTES) !=
        0) {
        return; /* out of memory: as if dropped, the resync brings it again */
    }
    h->position = position;
    c->held_count++;
}

static int session__on_inbox(struct lmq_client *c, const struct mqtt_publish *p)
{
    struct session_inbox_msg m;
    if (c->cb.on_envelope == NULL) {
        return client_session_puback(c, p->packet_id); /* send-only: a listener resyncs it */
    }
    int rc = session__msg_parse(p->payload.data, p->payload.len, &m);
    if (rc == LMQ_ENOMEM) {
        return rc;
    }
    if (rc != 0) {
        client_session_report(c, LMQ_EPROTO, "malformed inbox message dropped");
        return client_session_puback(c, p->packet_id);
    }
    if (m.position > c->inbox_position + 1) {
        /* Held messages are acknowledged now: holding them unacknowledged could exhaust the
         * server's send window and block the very resync that fills the gap. A crash loses
         * only memory: the stored position and the resync bring them back. */
        session__hold(c, p, m.position);
        rc = c->resync_inflight ? 0 : session__resync(c, c->inbox_position);
        rc = rc == 0 ? client_session_puback(c, p->packet_id) : rc;
    } else if (m.position <= c->inbox_position) {
        rc = client_session_puback(c, p->packet_id); /* delivered before: MQTT redelivery */
    } else {
        /* Persist before PUBACK: a crash in between redelivers, never loses. */
        rc = session__deliver(c, &m);
        if (rc == SESSION_REPLAY_REFUSED) {
            /* Dropped; the resync brings what really is at this position. */
            rc = c->resync_inflight ? 0 : session__resync(c, c->inbox_position);
            rc = rc == 0 ? client_session_puback(c, p->packet_id) : rc;
        } else {
            rc = rc == 0 ? client_session_puback(c, p->packet_id) : rc;
            rc = rc == 0 ? session__drain(c) : rc;
        }
    }
    session__msg_release(&m);
    return rc;
}

/* The end of one resync answer. */
static int session__on_sync(struct lmq_client *c, const struct mqtt_publish *p)
{
    json_t *root = json_loadb((const char *)p->payload.data, p->payload.len, 0, NULL);
    uint64_t after = 0, last = 0;
    int rc = 0;
    bool more = json_is_true(json_object_get(root, "more"));
    if (session__u64(root, "after", &after) != 0 || session__u64(root, "last", &last) != 0) {
        client_session_report(c, LMQ_EPROTO, "malformed sync message ignored");
        goto out;
    }
    if (!c->resync_inflight) {
        goto out; /* an answer to a request of an earlier connection */
    }
    if (more && last > after) {
        rc = session__resync(c, last);
        goto out;
    }
    c->resync_inflight = false;
    if (c->held_count == 0) {
        c->resync_idle_count = 0;
        goto out;
    }
    /* A gap is still open. Ask again while resyncs make progress, then give up loudly. */
    c->resync_idle_count = c->inbox_position > c->resync_progress_at ? 0 : c->resync_idle_count + 1;
    if (c->resync_idle_count >= CLIENT_RESYNC_IDLE_MAX) {
        client_session_report(c, LMQ_EPROTO,
                              "inbox gap after position %" PRIu64 " not filled by the server",
                              c->inbox_position);
        c->resync_idle_count = 0;
        goto out;
    }
    rc = session__resync(c, c->inbox_position);
out:
    json_decref(root);
    LMQ_ASSERT(rc <= 0);
    return rc == 0 ? client_session_puback(c, p->packet_id) : rc;
}

/* --- acks and rejects ------------------------------------------------------------------------- */

static int session__on_ack(struct lmq_client *c, const struct mqtt_publish *p)
{
    json_t *root = json_loadb((const char *)p->payload.data, p->payload.len, 0, NULL);
    char link[LEDGER_ENVELOPE_LINK_BYTES], to[CRYPTO_IDENTITY_ID_BYTES];
    struct lmq_ack ack = {.link = link,
                          .to = to,
                          .ack_json = p->payload.data,
                          .ack_len = p->payload.len,
                          .checkpoint = ""};
    uint64_t seq = 0;
    bool changed = false;
    int rc = 0;
    if (session__str(root, "link", link, sizeof(link)) != 0 ||
        session__str(root, "to", to, sizeof(to)) != 0 || session__u64(root, "seq", &ack.seq) ||
        session__u64(root, "index", &ack.index) || session__u64(root, "position", &ack.position)) {
        client_session_report(c, LMQ_EPROTO, "malformed ack ignored");
        goto out;
    }
    rc = client_receipt_verify(c, root, &ack);
    if (rc == LMQ_CLIENT_E_RECEIPT || rc == LMQ_CLIENT_E_HISTORY) {
        /* Reported; the envelope stays pending (a resend gets a new ack) and the application
         * sees the unverified ack to decide. */
        if (c->cb.on_ack != NULL) {
            c->cb.on_ack(c->cb.ctx, &ack);
        }
        rc = 0;
        goto out;
    }
    rc = rc == 0 ? client_db_outbox_ack(c, link, ack.index, ack.position, &seq, &changed) : rc;
    if (rc == LMQ_ENOTFOUND) {
        client_session_report(c, LMQ_ENOTFOUND, "ack for an envelope not in our outbox: %s", link);
        rc = 0;
    } else if (rc == 0 && seq != ack.seq) {
        client_session_report(c, LMQ_EPROTO, "ack for %s says seq %" PRIu64 ", outbox has %" PRIu64,
                              link, ack.seq, seq);
    }
    if (rc == 0 && changed && c->cb.on_ack != NULL) {
        c->cb.on_ack(c->cb.ctx, &ack);
    }
out:
    json_decref(root);
    /* A failed write or an unreachable proof is not acknowledged: the ack comes again. */
    LMQ_ASSERT(rc <= 0 && rc != LMQ_CLIENT_E_RECEIPT && rc != LMQ_CLIENT_E_HISTORY);
    return rc == 0 ? client_session_puback(c, p->packet_id) : rc;
}

/*
 * A fork while this state directory has no accepted envelope: the server holds envelopes of
 * ours up to expected_seq - 1 that this directory never signed (another state directory of the
 * same key). Once no envelope of ours is pending, the server's head is adopted and the next
 * envelope continues it (client_chain.c). Returns 0 or LMQ_ENOMEM / LMQ_EIO (a database error:
 * the reject comes again).
 */
static int session__chain_resync(struct lmq_client *c, struct lmq_reject *rej)
{
    LMQ_ASSERT(c->acked_seq_max == 0 && rej->expected_seq > 1);
    if (c->token[0] == '\0') {
        return 0; /* no login token (the connection did not log in over HTTP): nothing to ask */
    }
    int rc = client_chain_resync(c, rej->expected_seq - 1);
    if (rc == 0) {
        rej->chain_resynced = true;
        return 0;
    }
    if (rc == LMQ_EINVAL) {
        return 0; /* envelopes still pending: resynced with the reject of the last one */
    }
    client_session_report(c, rc == LMQ_ENOMEM ? rc : LMQ_EPROTO,
                          "chain resync: cannot read envelope seq %" PRIu64
                          " of this identity from the server (%s)",
                          rej->expected_seq - 1, lmq_client_strerror(rc));
    return rc == LMQ_ENOMEM ? rc : 0;
}

static int session__on_reject(struct lmq_client *c, const struct mqtt_publish *p)
{
    json_t *root = json_loadb((const char *)p->payload.data, p->payload.len, 0, NULL);
    char link[LEDGER_ENVELOPE_LINK_BYTES], reason[SESSION_REASON_MAX_BYTES];
    struct lmq_reject rej = {.link = link,
                             .reason = reason,
                             .reject_json = p->payload.data,
                             .reject_len = p->payload.len};
    int rc = 0;
    if (session__str(root, "link", link, sizeof(link)) != 0 ||
        session__str(root, "reason", reason, sizeof(reason)) != 0 ||
        session__u64(root, "seq", &rej.seq) != 0 ||
        session__u64(root, "expected_seq", &rej.expected_seq) != 0) {
        client_session_report(c, LMQ_EPROTO, "malformed reject ignored");
        goto out;
    }
    rc = client_db_outbox_reject(c, link, rej.seq, reason, rej.expected_seq);
    if (rc == LMQ_ENOTFOUND) {
        rc = 0; /* already acked or rejected: a stale answer to a resend */
        goto out;
    }
    if (rc == 0 && (strcmp(reason, "gap") == 0 || strcmp(reason, "fork") == 0) &&
        rej.expected_seq <= c->acked_seq_max) {
        client_session_report(c, LMQ_EPROTO,
                              "server expects seq %" PRIu64
                              " but acknowledged our chain up to %" PRIu64
                              ": it lost acknowledged envelopes",
                              rej.expected_seq, c->acked_seq_max);
    }
    if (rc == 0 && strcmp(reason, "fork") == 0 && c->acked_seq_max == 0 && rej.expected_seq > 1) {
        rc = session__chain_resync(c, &rej);
    }
    if (rc == 0 && c->cb.on_reject != NULL) {
        c->cb.on_reject(c->cb.ctx, &rej);
    }
out:
    json_decref(root);
    return rc == 0 ? client_session_puback(c, p->packet_id) : rc;
}

/* --- dispatch --------------------------------------------------------------------------------- */

static bool session__topic_is(const struct lmq_client *c, const struct mqtt_publish *p,
                              enum client_topic t)
{
    size_t n = strlen(c->topics[t]);
    return p->topic.len == n && memcmp(p->topic.data, c->topics[t], n) == 0;
}

static int session__on_publish(struct lmq_client *c, const struct mqtt_publish *p)
{
    if (p->qos > 1) {
        return LMQ_EPROTO; /* we subscribe at QoS 1: the server never sends QoS 2 */
    }
    if (session__topic_is(c, p, CLIENT_TOPIC_INBOX)) {
        return session__on_inbox(c, p);
    }
    if (session__topic_is(c, p, CLIENT_TOPIC_ACK)) {
        return session__on_ack(c, p);
    }
    if (session__topic_is(c, p, CLIENT_TOPIC_REJECT)) {
        return session__on_reject(c, p);
    }
    if (session__topic_is(c, p, CLIENT_TOPIC_SYNC)) {
        return session__on_sync(c, p);
    }
    if (c->cb.on_event != NULL && session__topic_is(c, p, CLIENT_TOPIC_EVENTS)) {
        return client_events_on_event(c, p);
    }
    if (c->cb.on_event != NULL && session__topic_is(c, p, CLIENT_TOPIC_EVENTS_SYNC)) {
        return client_events_on_sync(c, p);
    }
    return client_session_puback(c, p->packet_id); /* not ours to interpret */
}

static int session__on_suback(struct lmq_client *c, const struct mqtt_suback *s)
{
    if (c->state != CLIENT_SUBACK || s->packet_id != CLIENT_SUBSCRIBE_PID) {
        return LMQ_EPROTO;
    }
    for (size_t i = 0; i < s->reason_codes.len; i++) {
        if (s->reason_codes.data[i] >= 0x80) {
            client_session_report(c, LMQ_EPROTO, "subscription refused (reason 0x%02x)",
                                  s->reason_codes.data[i]);
            return LMQ_EPROTO;
        }
    }
    c->state = CLIENT_READY;
    int rc = 0;
    if (c->cb.on_envelope != NULL && !c->resync_inflight) {
        rc = session__resync(c, c->inbox_position); /* every connect: we may have been away */
    }
    if (rc == 0 && c->cb.on_event != NULL) {
        rc = client_events_on_ready(c);
    }
    return rc == 0 ? client_session_pump(c) : rc;
}

static int session__on_puback(struct lmq_client *c, const struct mqtt_ack *a)
{
    if (a->packet_id == CLIENT_RESYNC_PID || a->packet_id == CLIENT_RESYNC_PID + 1) {
        return a->reason_code >= 0x80 ? LMQ_EPROTO : 0;
    }
    if (a->packet_id >= CLIENT_EVENT_RESYNC_PID && a->packet_id <= CLIENT_EVENT_ACK_PID) {
        return client_events_on_puback(c, a);
    }
    unsigned slot = (unsigned)a->packet_id - 2u;
    if (a->packet_id < 2 || slot >= CLIENT_INFLIGHT_MAX || c->inflight_seq[slot] == 0) {
        return LMQ_EPROTO;
    }
    uint64_t seq = c->inflight_seq[slot];
    c->inflight_seq[slot] = 0;
    LMQ_ASSERT(c->inflight_count > 0);
    c->inflight_count--;
    if (a->reason_code >= 0x80) {
        /* Stays pending: sent again on the next connection. */
        client_session_report(c, LMQ_EPROTO,
                              "server refused envelope seq %" PRIu64 " (reason 0x%02x)", seq,
                              a->reason_code);
    }
    return client_session_pump(c);
}

int client_session_on_packet(struct lmq_client *c, const struct mqtt_packet *pkt)
{
    LMQ_ASSERT(c != NULL && pkt != NULL);
    LMQ_ASSERT(c->state == CLIENT_SUBACK || c->state == CLIENT_READY);
    if (c->event_batch_open && !(pkt->type == MQTT_PUBLISH &&
                                 session__topic_is(c, &pkt->u.publish, CLIENT_TOPIC_EVENTS))) {
        /* Events handled in this read are committed before anything else is handled. */
        int rc = client_events_flush(c);
        if (rc != 0) {
            return rc;
        }
    }
    switch (pkt->type) {
    case MQTT_SUBACK:
        return session__on_suback(c, &pkt->u.suback);
    case MQTT_PUBLISH:
        /* A resumed session may deliver before our SUBACK: handled the same way. */
        return session__on_publish(c, &pkt->u.publish);
    case MQTT_PUBACK:
        return session__on_puback(c, &pkt->u.ack);
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT:
        if (pkt->u.disconnect.reason_code == MQTT_RC_MAXIMUM_CONNECT_TIME) {
            /* The connection lived as long as its token: a fresh login continues it. */
            c->token[0] = '\0';
            c->token_exp_s = 0;
            c->token_expired = true;
            return LMQ_EIO;
        }
        client_session_report(c, LMQ_EIO, "server disconnected (reason 0x%02x)",
                              pkt->u.disconnect.reason_code);
        return LMQ_EIO;
    default:
        return LMQ_EPROTO;
    }
}
