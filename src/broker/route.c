/*
 * Routing: a PUBLISH, made one reference-counted msg (msg.c), is matched
 * once against the subscription tree, merged per session (one copy per
 * session with the highest QoS and every subscription identifier), and
 * queued. Retained messages are in retain.c.
 */
#include "broker/broker_internal.h"

#include <string.h>

#include "mqtt/mqtt_topic.h"

struct route_target {
    struct session *session;
    bool denied; /* the ACL does not let the session read the topic: nothing queued */
    uint8_t qos;
    bool retain_as_published;
    bool full;                       /* no room for this QoS 1/2 delivery: policy says what */
    enum lmq_overflow_policy policy; /* queue_overflow for this session and topic */
    const char *rule;                /* what chose policy (for the log) */
    uint8_t sub_id_count;
    uint32_t sub_ids[MQTT_SUB_IDS_MAX];
};

struct route_ctx {
    struct broker *broker;
    struct msg *msg;
    struct session *publisher;
    size_t count;
    bool oom;
    bool identity_topic; /* id/<X>/...: delivered to X's sessions only */
};

static struct route_target *route_target_add(struct route_ctx *ctx, struct session *s)
{
    struct broker *b = ctx->broker;
    if (ctx->count == b->route_target_cap) {
        size_t cap = b->route_target_cap == 0 ? 64 : b->route_target_cap * 2;
        struct route_target *t = realloc(b->route_targets, cap * sizeof(*t));
        if (t == NULL)
            return NULL;
        b->route_targets = t;
        b->route_target_cap = cap;
    }
    LMQ_ASSERT(ctx->count < b->route_target_cap);
    struct route_target *t = &b->route_targets[ctx->count];
    memset(t, 0, offsetof(struct route_target, sub_ids));
    t->session = s;
    s->route_gen = b->route_gen;
    s->route_idx = ctx->count++;
    LMQ_ASSERT(ctx->count <= b->route_target_cap);
    return t;
}

static void route_on_match(void *arg, const struct sub_tree_entry *e)
{
    struct route_ctx *ctx = arg;
    struct session *s = e->owner;
    LMQ_ASSERT(s != NULL && s->broker == ctx->broker);
    if ((e->options & MQTT_SUBOPT_NO_LOCAL) && e->share_group == NULL && s == ctx->publisher)
        return;
    /* id/<X>/... reaches X's sessions only, whatever wildcard another subscribed with. */
    if (ctx->identity_topic &&
        !pipeline_may_receive(s, ctx->msg->stored.topic.data, ctx->msg->stored.topic.len))
        return;
    struct route_target *t;
    if (s->route_gen == ctx->broker->route_gen) {
        LMQ_ASSERT(s->route_idx < ctx->count);
        t = &ctx->broker->route_targets[s->route_idx];
    } else {
        t = route_target_add(ctx, s);
        if (t == NULL) {
            ctx->oom = true;
            return;
        }
        /* Checked once per session and message, whichever of its subscriptions matched; still
         * a match for the publisher's reason code (as mosquitto's). */
        t->denied = !access_may_deliver(s, ctx->msg->stored.topic.data, ctx->msg->stored.topic.len);
    }
    if (t->denied)
        return;
    uint8_t qos = LMQ_MIN(ctx->msg->stored.qos, (uint8_t)(e->options & MQTT_SUBOPT_QOS_MASK));
    t->qos = LMQ_MAX(t->qos, qos);
    LMQ_ASSERT(t->qos <= ctx->msg->stored.qos && t->sub_id_count <= MQTT_SUB_IDS_MAX);
    if (e->options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED)
        t->retain_as_published = true;
    if (e->sub_id != 0 && t->sub_id_count < MQTT_SUB_IDS_MAX)
        t->sub_ids[t->sub_id_count++] = e->sub_id;
}

/* A shared group's message goes to an online member that may read it, when there is one. */
static bool route_eligible(void *arg, void *owner)
{
    const struct route_ctx *ctx = arg;
    struct session *s = owner;
    return s->conn != NULL &&
           access_may_deliver(s, ctx->msg->stored.topic.data, ctx->msg->stored.topic.len);
}

/*
 * Whether s can take a delivery of qos at all. An offline session keeps only QoS>0 deliveries,
 * and only when it is durable; a clean session whose connection is going away (its will being
 * published, possibly on a topic it subscribed to itself), a session being destroyed or one
 * queue_overflow is ending takes nothing: the message is not lost to it, the session is ending.
 */
static bool route_can_receive(const struct session *s, uint8_t qos)
{
    if (s->closing || s->overflow_ending)
        return false;
    if (s->conn != NULL)
        return true;
    return qos > 0 && (s->persistent || s->stored);
}

/*
 * A QoS 1/2 message that will be written (queued for a session with stored state, or retained)
 * joins the open commit batch: its deliveries wait until it is durable, so no subscriber sees a
 * message its publisher could still be refused. One that nothing stores has nothing to wait
 * for: its deliveries (and its publisher's ack) go out at once. Messages a caller put in a
 * batch already (envelopes, wills) keep theirs.
 */
static int route_commit_first(struct broker *b, struct msg *m, const struct route_ctx *ctx)
{
    if (m->stored.qos == 0 || m->committed || m->batched)
        return LMQ_OK;
    bool stored = m->stored.retain && m->stored.payload.len > 0;
    for (size_t i = 0; i < ctx->count && !stored; i++) {
        const struct route_target *t = &b->route_targets[i];
        stored = !t->denied && t->qos > 0 && route_can_receive(t->session, t->qos) &&
                 (t->session->persistent || t->session->stored);
    }
    LMQ_ASSERT(m->stored.qos > 0 && m->refcount > 0);
    if (stored)
        return commit_defer_msg(b, m);
    m->committed = true;
    return LMQ_OK;
}

/* Whether s is connected and completed a delivery (or connected) within slow_consumer_grace_ms:
 * a full queue then means a consumer slower than its publishers, not an absent or stuck one. */
static bool route_consuming(struct broker *b, const struct session *s)
{
    return s->conn != NULL &&
           clock_now_ms(b) - s->progress_ms < b->cfg.limits.slow_consumer_grace_ms;
}

/*
 * Live flow control: a connected, consuming session further behind than its in-memory queue
 * holds the publisher (its input is not read until a delivery leaves some queue) instead of
 * queueing on: a deeper queue would only add latency (and store reads) to a consumer that is
 * there. Not for the publisher's own session (its acks may sit behind the held PUBLISH), nor
 * for what the server publishes itself (wills, envelopes).
 */
static bool route_hold_publisher(struct broker *b, const struct route_target *t,
                                 const struct session *publisher)
{
    const struct session *s = t->session;
    return publisher != NULL && publisher->conn != NULL && s != publisher && !t->denied &&
           t->qos > 0 && !s->closing && session_queue_behind(s) && route_consuming(b, s);
}

/* The queue_overflow policy for message m finding s's queue full: the first [queue_overflow]
 * rule that matches s's owner (principal rules) or m's topic (topic rules), else [limits]
 * queue_overflow. *rule names what decided (static or config storage). */
static enum lmq_overflow_policy route_overflow_policy(const struct broker *b,
                                                      const struct session *s, const struct msg *m,
                                                      const char **rule)
{
    const struct lmq_config *cfg = &b->cfg;
    LMQ_ASSERT(cfg->overflow_rule_count <= LMQ_OVERFLOW_RULES_MAX);
    for (size_t i = 0; i < cfg->overflow_rule_count; i++) {
        const struct lmq_overflow_rule *r = &cfg->overflow_rules[i];
        bool hit = r->topic ? mqtt_topic_matches((const uint8_t *)r->pattern, strlen(r->pattern),
                                                 m->stored.topic.data, m->stored.topic.len)
                            : strcmp(r->pattern, s->owner) == 0;
        if (hit) {
            *rule = r->pattern;
            return r->policy;
        }
    }
    *rule = "[limits] queue_overflow";
    return cfg->limits.queue_overflow;
}

/*
 * A QoS 1/2 delivery t's session has no room for, under a policy other than refuse: true when m
 * is to be queued for it after all (drop_oldest made room). Under id/ nothing is dropped or
 * ended: the envelope is in the ledger and the client's resync brings it, so the delivery is
 * just not queued for this session.
 */
static bool route_overflow(struct broker *b, const struct route_target *t, const struct msg *m,
                           bool identity_topic)
{
    struct session *s = t->session;
    LMQ_ASSERT(t->full && (identity_topic || t->policy != LMQ_OVERFLOW_REFUSE));
    if (identity_topic) {
        b->stats.overflow_identity_left++;
        session_queue_overflow_log(s, "resync", "id/");
        return false;
    }
    session_queue_overflow_log(s, lmq_overflow_policy_name(t->policy), t->rule);
    if (t->policy == LMQ_OVERFLOW_END_SESSION) {
        session_overflow_end(s);
        return false;
    }
    return session_queue_drop_oldest(s, m->size_bytes);
}

int route_publish(struct broker *b, struct msg *m, struct session *publisher)
{
    /* The caller holds a reference over the routing (deliveries take their own). */
    LMQ_ASSERT(m != NULL && m->refcount > 0 && m->broker == b);
    LMQ_ASSERT(publisher == NULL || (publisher->broker == b && !publisher->closing));
    struct route_ctx ctx = {.broker = b, .msg = m, .publisher = publisher};
    ctx.identity_topic = pipeline_under_id(m->stored.topic.data, m->stored.topic.len);
    b->route_gen++;
    sub_tree_match(b->subs, m->stored.topic.data, m->stored.topic.len, route_on_match,
                   route_eligible, &ctx);
    if (ctx.oom)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    /* A QoS>0 delivery that does not fit: its session's queue_overflow policy decides. Every
     * target is decided before anything is queued, so a refusal leaves no copy anywhere. */
    for (size_t i = 0; i < ctx.count; i++) {
        struct route_target *t = &b->route_targets[i];
        if (route_hold_publisher(b, t, publisher))
            return ROUTE_HELD;
        t->full = !t->denied && t->qos > 0 && route_can_receive(t->session, t->qos) &&
                  !session_queue_has_room(t->session, m->size_bytes);
        if (!t->full || ctx.identity_topic)
            continue;
        t->policy = route_overflow_policy(b, t->session, m, &t->rule);
        if (t->policy != LMQ_OVERFLOW_REFUSE && route_consuming(b, t->session)) {
            /* Connected and taking deliveries, only slower than its publishers: they are held
             * to its pace rather than have it lose what they were told was accepted. */
            t->policy = LMQ_OVERFLOW_REFUSE;
            t->rule = "connected and consuming (slow_consumer_grace_ms)";
        }
        if (t->policy == LMQ_OVERFLOW_REFUSE) {
            session_queue_overflow_log(t->session, "refuse", t->rule);
            return MQTT_RC_QUOTA_EXCEEDED;
        }
    }
    if (route_commit_first(b, m, &ctx) != LMQ_OK)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    for (size_t i = 0; i < ctx.count; i++) {
        const struct route_target *t = &b->route_targets[i];
        if (t->denied || !route_can_receive(t->session, t->qos))
            continue; /* QoS 0 is not queued for offline sessions, nothing for ending ones */
        if (t->qos == 0 && !session_queue_has_room_qos0(t->session, m->size_bytes)) {
            session_queue_qos0_dropped(t->session, NULL);
            continue;
        }
        if (t->full && !route_overflow(b, t, m, ctx.identity_topic))
            continue;
        /* Deliveries wait for a commit the message is in, or for nothing (route_commit_first). */
        LMQ_ASSERT(t->qos <= m->stored.qos && (m->committed || m->batched));
        session_queue_add(t->session, m, t->qos, t->retain_as_published && m->stored.retain,
                          t->sub_ids, t->sub_id_count);
    }
    return ctx.count > 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
}
