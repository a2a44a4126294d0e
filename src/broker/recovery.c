/*
 * Start-up recovery: rebuilds the broker's memory from the store. Sessions
 * come back offline (their expiry counted from the restart), with their
 * subscriptions, inbound QoS 2 state and the size of their stored queue;
 * queued messages stay in the store and are paged in on reconnect. Retained
 * messages are loaded. Wills that were pending when the broker stopped are
 * published after their delay (at once when their session did not persist).
 */
#include "broker/broker_internal.h"

#include <string.h>

#include "mqtt/mqtt_topic.h"

struct recovery {
    struct broker *broker;
    uint64_t sessions, subscriptions, retained, queued, wills, identities;
    uint64_t dropped;     /* retained messages and wills under id/ removed */
    uint64_t dropped_sys; /* ... and under $SYS */
};

static struct session *recovery_session(struct recovery *r, struct lmq_bytes id)
{
    return lmq_map_get(r->broker->sessions, id.data, id.len);
}

static int on_session(void *ctx, struct lmq_bytes client_id, uint32_t expiry_s,
                      struct lmq_bytes owner)
{
    struct recovery *r = ctx;
    struct broker *b = r->broker;
    if (owner.len >= SESSION_OWNER_MAX_BYTES || memchr(owner.data, '\0', owner.len) != NULL)
        return -1; /* not something this server wrote */
    struct session *s = session_create(b, client_id.data, client_id.len);
    if (s == NULL)
        return -1;
    if (owner.len > 0)
        memcpy(s->owner, owner.data, owner.len);
    s->owner[owner.len] = '\0';
    s->expiry_s = LMQ_MIN(expiry_s, b->cfg.limits.max_session_expiry_s);
    s->persistent = true;
    s->stored = true;
    session_quota_count(s, NULL);
    /* The connection ended with the previous process: the expiry runs from now. */
    if (s->expiry_s != UINT32_MAX)
        s->expires_ms = clock_now_ms(b) + (uint64_t)s->expiry_s * 1000;
    session_arm_timer(s);
    r->sessions++;
    return 0;
}

static int on_identity(void *ctx, struct lmq_bytes id, uint64_t last_seq,
                       struct lmq_bytes last_link, uint64_t inbox_last)
{
    struct recovery *r = ctx;
    r->identities++;
    return pipeline_identity_restore(r->broker, id, last_seq, last_link, inbox_last) == LMQ_OK ? 0
                                                                                               : -1;
}

static int on_subscription(void *ctx, struct lmq_bytes client_id, struct lmq_bytes filter,
                           uint8_t options, uint32_t sub_id)
{
    struct recovery *r = ctx;
    struct session *s = recovery_session(r, client_id);
    if (s == NULL || !mqtt_topic_filter_valid(filter.data, filter.len))
        return 0; /* orphaned or unreadable row: skipped, not fatal */
    const uint8_t *group = NULL, *f = filter.data;
    size_t group_len = 0, f_len = filter.len;
    (void)mqtt_topic_shared_split(filter.data, filter.len, &group, &group_len, &f, &f_len);
    struct session_sub *sub = calloc(1, sizeof(*sub) + group_len + f_len);
    if (sub == NULL)
        return -1;
    bool existed = false;
    if (sub_tree_add(r->broker->subs, f, f_len, group, group_len, s, options, sub_id, &existed) !=
        LMQ_OK) {
        free(sub);
        return -1;
    }
    if (group_len > 0)
        memcpy(sub->text, group, group_len);
    memcpy(sub->text + group_len, f, f_len);
    sub->group_len = group_len;
    sub->filter_len = f_len;
    sub->options = options;
    sub->sub_id = sub_id;
    list_push_back(&s->subs, &sub->link);
    s->sub_count++;
    r->subscriptions++;
    return 0;
}

static int on_inbound_qos2(void *ctx, struct lmq_bytes client_id, uint16_t packet_id)
{
    struct recovery *r = ctx;
    struct session *s = recovery_session(r, client_id);
    if (s == NULL)
        return 0;
    if (s->inbound_qos2 == NULL) {
        s->inbound_qos2 = calloc(65536 / 8, 1);
        if (s->inbound_qos2 == NULL)
            return -1;
    }
    uint8_t bit = (uint8_t)(1u << (packet_id & 7));
    if (!(s->inbound_qos2[packet_id >> 3] & bit)) {
        s->inbound_qos2[packet_id >> 3] |= bit;
        s->inbound_qos2_count++;
    }
    return 0;
}

/* True for a retained message or will under id/ or $SYS, which this server no longer accepts: one a
 * database written by an older version may hold, a forgery waiting for its victim. */
static bool recovery_forbidden_topic(struct recovery *r, struct lmq_bytes client_id,
                                     const struct store_message *sm, enum store_record_type del)
{
    bool sys = sys_tree_topic(sm->topic.data, sm->topic.len);
    if (!sys && !pipeline_under_id(sm->topic.data, sm->topic.len))
        return false;
    struct store_record rec = {.type = STORE_RETAINED_DELETE, .u.retained_delete.topic = sm->topic};
    if (del == STORE_WILL_DELETE)
        rec =
            (struct store_record){.type = STORE_WILL_DELETE, .u.will_delete.client_id = client_id};
    commit_store_write(r->broker, &rec);
    if (sys) { /* written by a client before $SYS was the broker's own (sys_tree.c) */
        r->dropped_sys++;
        return true;
    }
    r->dropped++;
    security_event(r->broker, NULL, SECURITY_EVENT_ACL_DENIED,
                   del == STORE_WILL_DELETE ? "stored will under id/ dropped"
                                            : "stored retained message under id/ dropped");
    return true;
}

static int on_retained(void *ctx, const struct store_message *sm)
{
    struct recovery *r = ctx;
    struct broker *b = r->broker;
    if (recovery_forbidden_topic(r, (struct lmq_bytes){NULL, 0}, sm, STORE_RETAINED_DELETE))
        return 0;
    struct msg *m = msg_from_store(b, sm);
    if (m == NULL)
        return -1;
    if (retain_restore(b, m) != LMQ_OK)
        return -1;
    r->retained++;
    return 0;
}

static int on_queue_summary(void *ctx, struct lmq_bytes client_id, uint64_t count,
                            uint64_t size_bytes, uint64_t max_seq)
{
    struct recovery *r = ctx;
    struct session *s = recovery_session(r, client_id);
    if (s == NULL)
        return 0; /* rows of a deleted session: removed with it */
    s->queued_count = (uint32_t)LMQ_MIN(count, UINT32_MAX);
    s->queued_bytes = size_bytes;
    s->stored_backlog = s->queued_count;
    s->stored_backlog_bytes = size_bytes;
    s->next_seq = max_seq;
    s->paged_seq = 0;
    session_queue_check(s); /* a recovered session holds nothing in memory yet */
    r->queued += count;
    return 0;
}

/* An ended session's rows up to seq_max are still stored (the expire_messages job deletes
 * them): a session of the same client id never pages them in, and new sessions start above. */
static int on_queue_ended(void *ctx, struct lmq_bytes client_id, uint64_t seq_max)
{
    struct recovery *r = ctx;
    struct broker *b = r->broker;
    b->queue_seq_floor = LMQ_MAX(b->queue_seq_floor, seq_max);
    struct session *s = lmq_map_get(b->sessions, client_id.data, client_id.len);
    if (s != NULL) {
        s->next_seq = LMQ_MAX(s->next_seq, seq_max);
        s->paged_seq = LMQ_MAX(s->paged_seq, seq_max);
        session_queue_check(s);
    }
    LMQ_ASSERT(b->queue_seq_floor >= seq_max);
    return 0;
}

static int on_will(void *ctx, struct lmq_bytes client_id, const struct store_message *sm,
                   uint32_t delay_s)
{
    struct recovery *r = ctx;
    struct broker *b = r->broker;
    if (recovery_forbidden_topic(r, client_id, sm, STORE_WILL_DELETE))
        return 0;
    struct session *s = recovery_session(r, client_id);
    bool transient = s == NULL;
    if (transient) {
        /* Its session ended with the crash; the will still has to go out, once. */
        s = session_create(b, client_id.data, client_id.len);
        if (s == NULL)
            return -1;
    }
    s->will = msg_from_store(b, sm);
    if (s->will == NULL)
        return -1;
    s->will_stored = true;
    s->will_delay_s = delay_s;
    r->wills++;
    if (transient || delay_s == 0) {
        session_publish_will(s);
        if (transient)
            session_destroy(s);
        return 0;
    }
    s->will_due_ms = clock_now_ms(b) + (uint64_t)delay_s * 1000;
    session_arm_timer(s);
    return 0;
}

int recovery_run(struct broker *b)
{
    struct recovery r = {.broker = b};
    struct store_loader loader = {
        .ctx = &r,
        .session = on_session,
        .will = on_will,
        .subscription = on_subscription,
        .inbound_qos2 = on_inbound_qos2,
        .retained = on_retained,
        .queue_summary = on_queue_summary,
        .queue_ended = on_queue_ended,
        .identity = on_identity,
    };
    uint64_t start_us = uv_hrtime() / 1000;
    uint64_t max_msg_id = 0;
    int rc = store_load(b->store, &loader, &max_msg_id);
    if (rc != LMQ_OK)
        return rc;
    b->next_msg_id = max_msg_id + 1;
    rc = pipeline_recover(b);
    if (rc != LMQ_OK)
        return rc;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "recovered")) {
        lmq_log_uint(&line, "sessions", r.sessions);
        lmq_log_uint(&line, "subscriptions", r.subscriptions);
        lmq_log_uint(&line, "queued_messages", r.queued);
        lmq_log_uint(&line, "retained", r.retained);
        lmq_log_uint(&line, "wills", r.wills);
        lmq_log_uint(&line, "dropped_under_id", r.dropped);
        lmq_log_uint(&line, "dropped_sys", r.dropped_sys);
        lmq_log_uint(&line, "identities", r.identities);
        lmq_log_uint(&line, "ledger_size", pipeline_ledger_size(b));
        lmq_log_uint(&line, "recovery_ms", (uv_hrtime() / 1000 - start_us) / 1000);
        lmq_log_end(&line);
    }
    return LMQ_OK;
}
