/*
 * The guaranteed-delivery pipeline: an envelope published to id/<me>/outbox is verified,
 * checked against its sender's chain, appended to the ledger and queued for the recipient,
 * with its ack, in the same store commit as the PUBACK that depends on it. Resync reads the
 * recipient's inbox back from the ledger.
 *
 * Per identity the broker keeps its chain head (last seq and link), its last inbox position,
 * and a ring of its most recent acceptances, so a resend of an envelope whose commit is still
 * in flight is recognised without a store read (older ones are looked up in the store).
 */
#include "pipeline/pipeline_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "crypto/jcs.h"
#include "events/events.h"
#include "events/validators.h"
#include "ledger/chain.h"
#include "ledger/envelope.h"

/* Recent acceptances remembered per sender (resends within them need no store read). */
#define ACCEPT_RECENT_MAX 32
/* Inbox envelopes sent per resync request; the client asks again while "more". */
#define ACCEPT_RESYNC_PAGE_MAX 1000
/* Rate window for envelope_rate_per_s. */
#define ACCEPT_RATE_WINDOW_MS 1000
/* The largest reject message: the standard members and a hook's (a few schema errors). */
#define ACCEPT_REJECT_MAX_BYTES 16384
/* The longest payload the server writes: an inbox message around the largest envelope. */
#define ACCEPT_INBOX_MAX_BYTES (LEDGER_ENVELOPE_MAX_BYTES + 128)

struct accept_identity {
    char id[CRYPTO_IDENTITY_ID_BYTES];
    uint64_t last_seq; /* 0: has sent nothing */
    char last_link[LEDGER_ENVELOPE_LINK_BYTES];
    uint64_t inbox_last; /* last position given to an envelope for this identity */
    uint64_t rate_window_start_ms;
    uint32_t rate_count;
    uint64_t rate_logged_window;      /* rate_window_start_ms + 1 of the last logged refusal */
    struct pipeline_accepted *recent; /* ring of ACCEPT_RECENT_MAX, allocated when it sends */
    uint32_t recent_next;
};

static struct accept_identity *accept_identity_get(struct broker *b, const char *id)
{
    struct accept_identity *li =
        lmq_map_get(b->pipeline->identities, (const uint8_t *)id, CRYPTO_IDENTITY_ID_CHARS);
    if (li != NULL)
        return li;
    li = calloc(1, sizeof(*li));
    if (li == NULL)
        return NULL;
    memcpy(li->id, id, CRYPTO_IDENTITY_ID_CHARS);
    if (lmq_map_put(b->pipeline->identities, (const uint8_t *)li->id, CRYPTO_IDENTITY_ID_CHARS,
                    li) != LMQ_OK) {
        free(li);
        return NULL;
    }
    return li;
}

int pipeline_identity_restore(struct broker *b, struct lmq_bytes id, uint64_t last_seq,
                              struct lmq_bytes last_link, uint64_t inbox_last)
{
    if (id.len != CRYPTO_IDENTITY_ID_CHARS ||
        (last_link.len != 0 && last_link.len != CRYPTO_IDENTITY_ID_CHARS))
        return LMQ_EINVAL;
    char key[CRYPTO_IDENTITY_ID_BYTES];
    memcpy(key, id.data, id.len);
    key[id.len] = '\0';
    struct accept_identity *li = accept_identity_get(b, key);
    if (li == NULL)
        return LMQ_ENOMEM;
    li->last_seq = last_seq;
    memcpy(li->last_link, last_link.data, last_link.len);
    li->last_link[last_link.len] = '\0';
    li->inbox_last = inbox_last;
    return LMQ_OK;
}

static bool accept_identity_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg), LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    struct accept_identity *li = value;
    free(li->recent);
    free(li);
    return true;
}

void pipeline_accept_destroy(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    if (p->identities == NULL)
        return;
    lmq_map_visit(p->identities, accept_identity_free_one, NULL);
    lmq_map_destroy(p->identities);
    p->identities = NULL;
}

/* Queues a server message (QoS 1) on id/<owner>/<leaf> for the owner's subscribed sessions,
 * or for one session only. Durable with the current batch like any routed message. */
static int accept_publish(struct broker *b, const char *owner, const char *leaf,
                          const uint8_t *payload, size_t len, struct session *only)
{
    char topic[3 + CRYPTO_IDENTITY_ID_CHARS + 16];
    int n = snprintf(topic, sizeof(topic), "id/%.64s/%s", owner, leaf);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(topic));
    struct mqtt_publish pub = {
        .qos = 1, .topic = {(const uint8_t *)topic, (size_t)n}, .payload = {payload, len}};
    pub.props.present =
        MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
    pub.props.payload_format_indicator = 1;
    pub.props.content_type = (struct lmq_bytes){(const uint8_t *)"application/json", 16};
    struct msg *m = msg_create(b, &pub);
    if (m == NULL)
        return LMQ_ENOMEM;
    int rc = commit_defer_msg(b, m);
    if (rc == LMQ_OK) {
        if (only != NULL)
            session_queue_add(only, m, 1, false, NULL, 0);
        else if (route_publish(b, m, NULL) == MQTT_RC_QUOTA_EXCEEDED)
            /* The envelope is in the ledger: the recipient gets it by resync. */
            lmq_log_msg(LMQ_LOG_WARN, "ledger_delivery_deferred", topic);
    }
    msg_unref(m);
    return rc;
}

int pipeline_publish_server_msg(struct broker *b, const char *owner, const char *leaf,
                                const uint8_t *payload, size_t len, struct session *only)
{
    return accept_publish(b, owner, leaf, payload, len, only);
}

int pipeline_publish_ack(struct broker *b, const char *sender, const char *json, size_t len)
{
    return accept_publish(b, sender, "ack", (const uint8_t *)json, len, NULL);
}

/* The reject's bytes: canonical JSON of the standard members plus a hook's (members may be
 * NULL). 0 or LMQ_ENOMEM. */
static int accept_reject_json(uint64_t expected, uint64_t seq, const char *link, const char *reason,
                              const char *detail, const json_t *members, struct lmq_buf *out)
{
    json_t *o = members != NULL ? json_deep_copy(members) : json_object();
    int rc = o != NULL ? 0 : LMQ_ENOMEM;
    if (rc == 0 && (json_object_set_new(o, "expected_seq", json_integer((json_int_t)expected)) ||
                    json_object_set_new(o, "link", json_string(link)) ||
                    json_object_set_new(o, "reason", json_string(reason)) ||
                    json_object_set_new(o, "seq", json_integer((json_int_t)seq)) ||
                    (detail != NULL && json_object_set_new(o, "detail", json_string(detail)))))
        rc = LMQ_ENOMEM;
    if (rc == 0)
        rc = crypto_jcs_canonicalize_json(o, out, ACCEPT_REJECT_MAX_BYTES);
    json_decref(o);
    return rc;
}

static void accept_reject_with(struct broker *b, struct conn *c, uint64_t seq, const char *link,
                               const char *reason, const char *detail, const json_t *members)
{
    struct accept_identity *li = accept_identity_get(b, c->identity);
    uint64_t expected = li != NULL ? li->last_seq + 1 : 0;
    struct lmq_buf json = {0};
    int rc = accept_reject_json(expected, seq, link, reason, detail, members, &json);
    events_emit(b, "envelope.rejected",
                json_pack("{s:s,s:s,s:o,s:I,s:I,s:s}", "identity", c->identity, "reason", reason,
                          "detail", detail != NULL ? json_string(detail) : json_null(), "seq",
                          (json_int_t)seq, "expected_seq", (json_int_t)expected, "link", link));
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "envelope_rejected")) {
        lmq_log_str(&line, "identity", c->identity);
        lmq_log_str(&line, "reason", reason);
        if (detail != NULL)
            lmq_log_str(&line, "detail", detail);
        lmq_log_uint(&line, "seq", seq);
        lmq_log_uint(&line, "expected_seq", expected);
        lmq_log_end(&line);
    }
    if (rc != LMQ_OK ||
        accept_publish(b, c->identity, "reject", json.data, json.len, NULL) != LMQ_OK)
        conn_log(c, LMQ_LOG_WARN, "reject_not_sent", "out of memory");
    lmq_buf_release(&json);
}

static void accept_reject(struct broker *b, struct conn *c, uint64_t seq, const char *link,
                          const char *reason, const char *detail)
{
    accept_reject_with(b, c, seq, link, reason, detail, NULL);
}

int pipeline_envelope_hook_register(struct broker *b, const struct pipeline_envelope_hook *hook)
{
    struct pipeline *p = b->pipeline;
    LMQ_ASSERT(hook != NULL && hook->name != NULL);
    if (p->envelope_hook_count == PIPELINE_ENVELOPE_HOOKS_MAX)
        return LMQ_ELIMIT;
    p->envelope_hooks[p->envelope_hook_count++] = *hook;
    return LMQ_OK;
}

/* Every hook's check, in order: false with *refusal (members for the caller to free) at the
 * first refusal. */
static bool accept_hooks_pass(struct broker *b, const struct ledger_envelope *env, const char *link,
                              struct pipeline_refusal *refusal)
{
    struct pipeline *p = b->pipeline;
    for (size_t i = 0; i < p->envelope_hook_count; i++) {
        const struct pipeline_envelope_hook *h = &p->envelope_hooks[i];
        *refusal = (struct pipeline_refusal){0};
        if (h->check == NULL || h->check(h->ctx, env, link, refusal))
            continue;
        LMQ_ASSERT(refusal->reason != NULL);
        return false;
    }
    return true;
}

/* accept_hooks_pass for a client's envelope: false (and the envelope rejected) at a refusal. */
static bool accept_hooks_check(struct broker *b, struct conn *c, const struct ledger_envelope *env,
                               const char *link)
{
    struct pipeline_refusal refusal;
    if (accept_hooks_pass(b, env, link, &refusal))
        return true;
    accept_reject_with(b, c, env->seq, link, refusal.reason, refusal.detail, refusal.members);
    json_decref(refusal.members);
    return false;
}

/* Per-identity rate: false (and a security event) when over envelope_rate_per_s (c: the
 * connection that sent it; NULL for a server-sent envelope charged to li). */
static bool accept_rate_ok(struct broker *b, struct conn *c, struct accept_identity *li)
{
    uint64_t now = clock_now_ms(b);
    if (now - li->rate_window_start_ms >= ACCEPT_RATE_WINDOW_MS) {
        li->rate_window_start_ms = now;
        li->rate_count = 0;
    }
    if (li->rate_count >= b->cfg.auth.envelope_rate_per_s) {
        /* Once per window: a 3.1.1 publisher held back is retried every tick. */
        if (li->rate_logged_window != li->rate_window_start_ms + 1) {
            li->rate_logged_window = li->rate_window_start_ms + 1;
            security_event(b, c, SECURITY_EVENT_RATE_LIMITED, "envelope_rate_per_s");
        }
        return false;
    }
    li->rate_count++;
    return true;
}

struct accept_found {
    struct pipeline_accepted a;
};

static int accept_found_row(void *ctx, const struct store_ledger_row *r)
{
    struct accept_found *f = ctx;
    if (r->link.len != CRYPTO_IDENTITY_ID_CHARS || r->recipient.len != CRYPTO_IDENTITY_ID_CHARS)
        return -1;
    f->a.seq = r->seq;
    f->a.index = r->index;
    f->a.position = r->position;
    memcpy(f->a.link, r->link.data, CRYPTO_IDENTITY_ID_CHARS);
    memcpy(f->a.to, r->recipient.data, CRYPTO_IDENTITY_ID_CHARS);
    return 0;
}

/* Finds the sender's accepted envelope with seq: in the recent ring, else in the store. */
static bool accept_find_accepted(struct broker *b, struct accept_identity *li, uint64_t seq,
                                 struct pipeline_accepted *out)
{
    for (uint32_t i = 0; li->recent != NULL && i < ACCEPT_RECENT_MAX; i++) {
        if (li->recent[i].seq == seq && seq != 0) {
            *out = li->recent[i];
            return true;
        }
    }
    struct accept_found f = {0};
    bool found = false;
    struct lmq_bytes sender = {(const uint8_t *)li->id, CRYPTO_IDENTITY_ID_CHARS};
    if (store_ledger_find(b->store, sender, seq, accept_found_row, &f, &found) != LMQ_OK)
        broker_fail_stop(b, "ledger read", LMQ_EIO);
    if (found)
        *out = f.a;
    return found;
}

/* An envelope that does not continue the chain: a resend (ack again) or a gap/fork. */
static void accept_not_next(struct broker *b, struct conn *c, struct accept_identity *li,
                            const struct ledger_envelope *env, const char *link)
{
    struct pipeline_accepted prior;
    bool found = env->seq <= li->last_seq && accept_find_accepted(b, li, env->seq, &prior);
    enum ledger_chain_verdict v = ledger_chain_check(li->last_seq, li->last_link, env->seq,
                                                     env->prev, link, found ? prior.link : NULL);
    if (v == LEDGER_CHAIN_RESEND) {
        if (env->seq != li->last_seq)
            security_event(b, c, SECURITY_EVENT_REPLAY, "resend of an older envelope");
        pipeline_tree_queue_ack(b, c->identity, &prior, NULL, NULL);
        return;
    }
    LMQ_ASSERT(v == LEDGER_CHAIN_GAP || v == LEDGER_CHAIN_FORK);
    accept_reject(b, c, env->seq, link, ledger_chain_verdict_name(v), NULL);
}

/* The inbox message of an envelope, canonical JSON, in a buffer reused by the next call (the
 * loop's thread only). */
static const uint8_t *accept_inbox_json(const uint8_t *envelope, size_t len, uint64_t index,
                                        uint64_t position, size_t *out_len)
{
    static uint8_t inbox[ACCEPT_INBOX_MAX_BYTES];
    LMQ_ASSERT(len <= LEDGER_ENVELOPE_MAX_BYTES);
    int n = snprintf((char *)inbox, sizeof(inbox),
                     "{\"envelope\":%.*s,\"index\":%" PRIu64 ",\"position\":%" PRIu64 "}", (int)len,
                     (const char *)envelope, index, position);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(inbox));
    *out_len = (size_t)n;
    return inbox;
}

/* Appends an envelope that continues its sender's chain: ledger row, inbox, ack (published on
 * the sender's ack topic, or handed to sent; *acked says whether it was queued). */
static int accept_append(struct broker *b, struct accept_identity *sender,
                         const struct ledger_envelope *env, const char *link, pipeline_sent_fn sent,
                         void *sent_ctx, bool *acked)
{
    *acked = false;
    struct accept_identity *recipient = accept_identity_get(b, env->to);
    if (recipient == NULL ||
        (sender->recent == NULL &&
         (sender->recent = calloc(ACCEPT_RECENT_MAX, sizeof(*sender->recent))) == NULL))
        return LMQ_ENOMEM;
    struct pipeline_accepted a = {
        .seq = env->seq, .index = b->pipeline->ledger_size, .position = recipient->inbox_last + 1};
    memcpy(a.link, link, sizeof(a.link));
    memcpy(a.to, env->to, sizeof(a.to));
    struct store_record rec = {
        .type = STORE_LEDGER_APPEND,
        .u.ledger_append = {
            .index = a.index,
            .sender = {(const uint8_t *)sender->id, CRYPTO_IDENTITY_ID_CHARS},
            .recipient = {(const uint8_t *)env->to, CRYPTO_IDENTITY_ID_CHARS},
            .link = {(const uint8_t *)link, CRYPTO_IDENTITY_ID_CHARS},
            .envelope = {env->canonical.data, env->canonical.len},
            .seq = a.seq,
            .position = a.position,
            .created_unix_ms = clock_unix_ms(b),
        }};
    commit_store_write(b, &rec);
    int rc = pipeline_tree_append(b, link);
    if (rc != LMQ_OK)
        return rc;
    b->pipeline->ledger_size++;
    recipient->inbox_last = a.position;
    sender->last_seq = a.seq;
    memcpy(sender->last_link, link, sizeof(sender->last_link));
    sender->recent[sender->recent_next++ % ACCEPT_RECENT_MAX] = a;
    /* The inbox message: canonical JSON with the envelope as stored. */
    LMQ_ASSERT(env->canonical.len <= LEDGER_ENVELOPE_MAX_BYTES);
    size_t n = 0;
    const uint8_t *inbox =
        accept_inbox_json(env->canonical.data, env->canonical.len, a.index, a.position, &n);
    rc = accept_publish(b, env->to, "inbox", inbox, n, NULL);
    if (rc == LMQ_OK) {
        pipeline_tree_queue_ack(b, sender->id, &a, sent, sent_ctx);
        *acked = true;
    }
    struct pipeline *p = b->pipeline;
    for (size_t i = 0; rc == LMQ_OK && i < p->envelope_hook_count; i++) {
        const struct pipeline_envelope_hook *h = &p->envelope_hooks[i];
        if (h->appended != NULL && (rc = h->appended(h->ctx, env, link, a.index)) != LMQ_OK)
            broker_fail_stop(b, h->name, rc); /* its records can't join the batch */
    }
    return rc;
}

enum proto_result pipeline_accept(struct conn *c, const struct mqtt_publish *pub,
                                  uint8_t *reason_code)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(c->identity[0] != '\0');
    struct accept_identity *sender = accept_identity_get(b, c->identity);
    if (sender == NULL) {
        *reason_code = MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
        return PROTO_OK;
    }
    if (!accept_rate_ok(b, c, sender)) {
        *reason_code = MQTT_RC_MESSAGE_RATE_TOO_HIGH;
        return c->version == MQTT_V5 ? PROTO_DISCONNECT : PROTO_BLOCKED;
    }
    struct ledger_envelope env;
    const char *reason = NULL;
    if (ledger_envelope_parse(pub->payload.data, pub->payload.len, &env, &reason) != LMQ_OK) {
        accept_reject(b, c, 0, "", "bad_envelope", reason);
        *reason_code = MQTT_RC_SUCCESS;
        return PROTO_OK;
    }
    char link[LEDGER_ENVELOPE_LINK_BYTES] = "";
    uint8_t rc = MQTT_RC_SUCCESS;
    bool acked = false;
    enum validators_gate gate = VALIDATORS_PASS;
    char verdict[VALIDATORS_REJECT_REASON_BYTES];
    if (ledger_envelope_link(&env, link) != LMQ_OK) {
        rc = MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    } else if (ledger_envelope_verify(&env, &reason) != LMQ_OK) {
        security_event(b, c, SECURITY_EVENT_BAD_SIGNATURE, reason);
        accept_reject(b, c, env.seq, link, "bad_signature", NULL);
    } else if (strcmp(env.from, c->identity) != 0) {
        security_event(b, c, SECURITY_EVENT_NOT_SENDER, env.from);
        accept_reject(b, c, env.seq, link, "not_sender", NULL);
    } else if (ledger_chain_check(sender->last_seq, sender->last_link, env.seq, env.prev, link,
                                  NULL) == LEDGER_CHAIN_NEXT) {
        /* A validator bot (src/events/validators.c) is asked only about an envelope the hooks
         * pass; they run again once its verdict is in (objects may have changed meanwhile). */
        gate = validators_check(c, &env, link, verdict);
        if (gate == VALIDATORS_REJECT) {
            accept_reject(b, c, env.seq, link, verdict, NULL);
        } else if (gate == VALIDATORS_WAIT || !accept_hooks_check(b, c, &env, link)) {
            /* waiting, or the reject message is the answer */
        } else if (gate == VALIDATORS_ASK &&
                   (gate = validators_ask_now(c, &env, link, verdict)) != VALIDATORS_PASS) {
            if (gate == VALIDATORS_REJECT)
                accept_reject(b, c, env.seq, link, verdict, NULL);
        } else if (!pipeline_quota_take(b, c, c->identity, env.canonical.len)) {
            /* Over [auth] ledger_bytes_per_day: nothing appended; the same envelope may be sent
             * again once the UTC day turns. MQTT 5 also gets PUBACK/PUBREC 0x97. */
            accept_reject(b, c, env.seq, link, "quota_exceeded", "ledger_bytes_per_day");
            rc = c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : MQTT_RC_SUCCESS;
        } else if (accept_append(b, sender, &env, link, NULL, NULL, &acked) != LMQ_OK) {
            rc = MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
        }
    } else {
        accept_not_next(b, c, sender, &env, link);
    }
    ledger_envelope_release(&env);
    *reason_code = rc;
    if (gate == VALIDATORS_WAIT) {
        /* Not handled yet: the same PUBLISH comes again once the verdict is in (or on the
         * tick), and is charged to the rate then. */
        sender->rate_count -= sender->rate_count > 0 ? 1u : 0u;
        return PROTO_BLOCKED;
    }
    return PROTO_OK;
}

static int pipeline_server_send_signed(struct broker *b, const struct pipeline_server_envelope *e,
                                       struct pipeline_refusal *refusal, struct lmq_buf *envelope);

static bool accept_server_refuse(struct pipeline_refusal *refusal, const char *reason,
                                 const char *detail)
{
    *refusal = (struct pipeline_refusal){.reason = reason, .detail = detail};
    return false;
}

/* Builds e as the server's next envelope into env (and its link): false with *refusal. */
static bool accept_server_build(struct broker *b, struct accept_identity *server,
                                const struct pipeline_server_envelope *e,
                                struct ledger_envelope *env, char *link, struct lmq_buf *json,
                                struct pipeline_refusal *refusal, int *rc)
{
    int64_t ms = clock_unix_ms(b);
    char time[LEDGER_ENVELOPE_TIME_CHARS + 1];
    /* Nanoseconds from the millisecond clock; the sequence number orders equal times. */
    if (ledger_envelope_format_time(ms / 1000, (uint32_t)(ms % 1000) * 1000000u, time) != LMQ_OK)
        return accept_server_refuse(refusal, "bad_envelope", "bad_time");
    struct ledger_envelope_draft draft = {
        .to = e->to,
        .seq = server->last_seq + 1,
        .prev = server->last_seq == 0 ? "" : server->last_link,
        .time = time,
        .type = e->type,
        .body = e->body,
    };
    const char *reason = NULL;
    *rc = ledger_envelope_build(b->pipeline->server_key.seed, &draft, json, &reason);
    if (*rc == LMQ_ENOMEM)
        return false;
    if (*rc != LMQ_OK) /* "too_large", or the caller's draft (bad_to, bad_type, bad_body) */
        return accept_server_refuse(refusal, *rc == LMQ_ETOOBIG ? "too_large" : "bad_envelope",
                                    reason);
    *rc = ledger_envelope_parse(json->data, json->len, env, &reason);
    if (*rc == LMQ_OK && (*rc = ledger_envelope_link(env, link)) != LMQ_OK)
        ledger_envelope_release(env);
    return *rc == LMQ_OK;
}

void pipeline_will_send_register(struct broker *b, pipeline_will_send_fn fn, void *ctx)
{
    LMQ_ASSERT(b->pipeline->will_send == NULL);
    b->pipeline->will_send = fn;
    b->pipeline->will_send_ctx = ctx;
}

int pipeline_server_send(struct broker *b, const struct pipeline_server_envelope *e,
                         struct pipeline_refusal *refusal, struct lmq_buf *envelope)
{
    struct pipeline *p = b->pipeline;
    if (p->will_send != NULL) {
        json_t *amended = NULL;
        *refusal = (struct pipeline_refusal){0};
        if (!p->will_send(p->will_send_ctx, e, &amended, refusal)) {
            LMQ_ASSERT(amended == NULL && refusal->reason != NULL);
            return LMQ_EPROTO;
        }
        if (amended != NULL) {
            struct pipeline_server_envelope changed = *e;
            changed.body = amended;
            int rc = pipeline_server_send_signed(b, &changed, refusal, envelope);
            json_decref(amended);
            return rc;
        }
    }
    return pipeline_server_send_signed(b, e, refusal, envelope);
}

/* pipeline_server_send once the will_send hook let e go. */
static int pipeline_server_send_signed(struct broker *b, const struct pipeline_server_envelope *e,
                                       struct pipeline_refusal *refusal, struct lmq_buf *envelope)
{
    LMQ_ASSERT(e != NULL && e->to != NULL && e->type != NULL && refusal != NULL);
    *refusal = (struct pipeline_refusal){0};
    struct accept_identity *server = accept_identity_get(b, b->pipeline->server_key.id);
    struct accept_identity *charged =
        e->charged_to != NULL ? accept_identity_get(b, e->charged_to) : NULL;
    if (server == NULL || (e->charged_to != NULL && charged == NULL))
        return LMQ_ENOMEM;
    if (charged != NULL && !accept_rate_ok(b, NULL, charged)) {
        accept_server_refuse(refusal, "rate_limited", "envelope_rate_per_s");
        return LMQ_EPROTO;
    }
    struct ledger_envelope env;
    char link[LEDGER_ENVELOPE_LINK_BYTES] = "";
    struct lmq_buf json = {0};
    int rc = LMQ_OK;
    if (!accept_server_build(b, server, e, &env, link, &json, refusal, &rc)) {
        lmq_buf_release(&json);
        return rc != LMQ_OK && refusal->reason == NULL ? rc : LMQ_EPROTO;
    }
    LMQ_ASSERT(ledger_chain_check(server->last_seq, server->last_link, env.seq, env.prev, link,
                                  NULL) == LEDGER_CHAIN_NEXT);
    if (!accept_hooks_pass(b, &env, link, refusal)) {
        rc = LMQ_EPROTO;
    } else if (charged != NULL && !pipeline_quota_take(b, NULL, charged->id, env.canonical.len)) {
        accept_server_refuse(refusal, "quota_exceeded", "ledger_bytes_per_day");
        rc = LMQ_EPROTO;
    } else if (envelope != NULL && (rc = lmq_buf_append(envelope, json.data, json.len,
                                                        LEDGER_ENVELOPE_MAX_BYTES)) != LMQ_OK) {
        /* nothing appended */
    } else {
        /* Once the ack is queued, e->sent is called whatever happens next (a failing appended
         * hook stops the broker; the batch's end calls it with NULL): 0 says so. */
        bool acked = false;
        rc = accept_append(b, server, &env, link, e->sent, e->ctx, &acked);
        rc = acked ? LMQ_OK : rc != LMQ_OK ? rc : LMQ_ENOMEM;
    }
    ledger_envelope_release(&env);
    lmq_buf_release(&json);
    return rc;
}

struct accept_resync {
    struct broker *broker;
    struct session *session;
    uint64_t last;
    size_t sent;
    bool full;
};

static int accept_resync_row(void *ctx, const struct store_ledger_row *r)
{
    struct accept_resync *rs = ctx;
    if (r->envelope.len > LEDGER_ENVELOPE_MAX_BYTES)
        return -1;
    size_t n = 0;
    const uint8_t *inbox =
        accept_inbox_json(r->envelope.data, r->envelope.len, r->index, r->position, &n);
    if (!session_queue_has_room(rs->session, n + 128)) {
        rs->full = true;
        return -1; /* stop: the client asks again after the last one it got */
    }
    if (accept_publish(rs->broker, rs->session->owner, "inbox", inbox, n, rs->session) != LMQ_OK)
        return -1;
    rs->last = r->position;
    rs->sent++;
    return 0;
}

uint8_t pipeline_resync(struct conn *c, const struct mqtt_publish *pub)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(c->identity[0] != '\0' && c->session != NULL);
    json_error_t jerr;
    json_t *req = json_loadb((const char *)pub->payload.data, pub->payload.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    json_t *after_v = json_object_get(req, "after");
    if (!json_is_integer(after_v) || json_integer_value(after_v) < 0) {
        json_decref(req);
        conn_log(c, LMQ_LOG_INFO, "resync_refused", "expected {\"after\":N}");
        return c->version == MQTT_V5 ? MQTT_RC_PAYLOAD_FORMAT_INVALID : MQTT_RC_SUCCESS;
    }
    uint64_t after = (uint64_t)json_integer_value(after_v);
    json_decref(req);
    struct accept_resync rs = {.broker = b, .session = c->session, .last = after};
    size_t count = 0;
    struct lmq_bytes me = {(const uint8_t *)c->identity, CRYPTO_IDENTITY_ID_CHARS};
    int rc = store_inbox_page(b->store, me, after, ACCEPT_RESYNC_PAGE_MAX, accept_resync_row, &rs,
                              &count);
    if (rc == LMQ_EIO)
        broker_fail_stop(b, "inbox read", rc);
    /* More when a page was cut short, or when newer envelopes are not committed yet. */
    struct accept_identity *li = accept_identity_get(b, c->identity);
    bool more =
        rs.full || rs.sent == ACCEPT_RESYNC_PAGE_MAX || (li != NULL && li->inbox_last > rs.last);
    char json[160];
    int n = snprintf(json, sizeof(json),
                     "{\"after\":%" PRIu64 ",\"count\":%zu,\"last\":%" PRIu64 ",\"more\":%s}",
                     after, rs.sent, rs.last, more ? "true" : "false");
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(json));
    if (accept_publish(b, c->identity, "sync", (const uint8_t *)json, (size_t)n, c->session) !=
        LMQ_OK)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    return MQTT_RC_SUCCESS;
}

struct accept_visit {
    void (*fn)(void *ctx, const char *id, uint64_t last_seq, uint64_t inbox_last);
    void *ctx;
};

static bool accept_visit_one(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(key);
    LMQ_ASSERT(key_len == CRYPTO_IDENTITY_ID_CHARS);
    const struct accept_visit *v = ctx;
    const struct accept_identity *li = value;
    v->fn(v->ctx, li->id, li->last_seq, li->inbox_last);
    return true;
}

void pipeline_identities_visit(struct broker *b,
                               void (*fn)(void *ctx, const char *id, uint64_t last_seq,
                                          uint64_t inbox_last),
                               void *ctx)
{
    LMQ_ASSERT(b != NULL && fn != NULL);
    if (b->pipeline == NULL || b->pipeline->identities == NULL)
        return;
    struct accept_visit v = {fn, ctx};
    lmq_map_visit(b->pipeline->identities, accept_visit_one, &v);
}

int pipeline_identity_state(struct broker *b, const char *id, uint64_t *last_seq,
                            uint64_t *inbox_last)
{
    LMQ_ASSERT(b != NULL && id != NULL && last_seq != NULL && inbox_last != NULL);
    if (b->pipeline == NULL || b->pipeline->identities == NULL ||
        strlen(id) != CRYPTO_IDENTITY_ID_CHARS)
        return LMQ_ENOTFOUND;
    const struct accept_identity *li =
        lmq_map_get(b->pipeline->identities, (const uint8_t *)id, CRYPTO_IDENTITY_ID_CHARS);
    if (li == NULL)
        return LMQ_ENOTFOUND;
    *last_seq = li->last_seq;
    *inbox_last = li->inbox_last;
    return LMQ_OK;
}

size_t pipeline_identity_count(const struct broker *b)
{
    return b->pipeline != NULL && b->pipeline->identities != NULL
               ? lmq_map_count(b->pipeline->identities)
               : 0;
}
