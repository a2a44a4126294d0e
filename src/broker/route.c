/*
 * Messages and routing: a PUBLISH becomes one reference-counted msg, matched
 * once against the subscription tree, merged per session (one copy per
 * session with the highest QoS and every subscription identifier), and
 * queued. Retained messages live in a map from topic to msg.
 */
#include "broker/broker_internal.h"

#include <string.h>

#include "mqtt/mqtt_topic.h"

struct route_target {
    struct session *session;
    uint8_t qos;
    bool retain_as_published;
    uint8_t sub_id_count;
    uint32_t sub_ids[MQTT_SUB_IDS_MAX];
};

struct route_ctx {
    struct broker *broker;
    struct msg *msg;
    struct session *publisher;
    size_t count;
    bool oom;
};

static void copy_slice(uint8_t **cursor, struct mqtt_bytes *dst, struct mqtt_bytes src)
{
    if (src.data == NULL) {
        *dst = (struct mqtt_bytes){NULL, 0};
        return;
    }
    if (src.len > 0)
        memcpy(*cursor, src.data, src.len);
    dst->data = *cursor;
    dst->len = src.len;
    *cursor += src.len;
}

struct msg *msg_create(struct broker *b, const struct mqtt_publish *pub, uint64_t now_ms)
{
    LMQ_ASSERT(pub != NULL && pub->qos <= 2);
    const struct mqtt_props *p = &pub->props;
    size_t extra = pub->topic.len + pub->payload.len + p->content_type.len +
                   p->response_topic.len + p->correlation_data.len + p->user_props.len;
    struct msg *m = calloc(1, sizeof(*m) + extra);
    if (m == NULL)
        return NULL;
    m->refcount = 1;
    m->qos = pub->qos;
    m->retain = pub->retain;
    m->committed = pub->qos == 0;
    m->id = b->next_msg_id++;
    m->created_ms = now_ms;
    m->has_expiry = (p->present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL)) != 0;
    m->expiry_s = p->message_expiry_interval_s;
    m->has_payload_format = (p->present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR)) != 0;
    m->payload_format = p->payload_format_indicator;
    uint8_t *cursor = (uint8_t *)(m + 1);
    copy_slice(&cursor, &m->topic, pub->topic);
    copy_slice(&cursor, &m->payload, pub->payload.data ? pub->payload
                                                        : (struct mqtt_bytes){cursor, 0});
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE))
        copy_slice(&cursor, &m->content_type, p->content_type);
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC))
        copy_slice(&cursor, &m->response_topic, p->response_topic);
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA))
        copy_slice(&cursor, &m->correlation_data, p->correlation_data);
    copy_slice(&cursor, &m->user_props, p->user_props);
    m->user_prop_count = p->user_prop_count;
    m->size_bytes = extra;
    LMQ_ASSERT((size_t)(cursor - (uint8_t *)(m + 1)) == extra);
    return m;
}

void msg_ref(struct msg *m)
{
    LMQ_ASSERT(m != NULL && m->refcount > 0);
    m->refcount++;
}

void msg_unref(struct msg *m)
{
    if (m == NULL)
        return;
    LMQ_ASSERT(m->refcount > 0);
    if (--m->refcount == 0)
        free(m);
}

bool msg_expired(const struct msg *m, uint64_t now_ms, uint32_t *remaining_s)
{
    LMQ_ASSERT(m != NULL);
    if (!m->has_expiry) {
        *remaining_s = 0;
        return false;
    }
    uint64_t age_s = now_ms > m->created_ms ? (now_ms - m->created_ms) / 1000 : 0;
    if (age_s >= m->expiry_s) {
        *remaining_s = 0;
        return true;
    }
    *remaining_s = m->expiry_s - (uint32_t)age_s;
    return false;
}

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
    struct route_target *t = &b->route_targets[ctx->count];
    memset(t, 0, offsetof(struct route_target, sub_ids));
    t->session = s;
    s->route_gen = b->route_gen;
    s->route_idx = ctx->count++;
    return t;
}

static void route_on_match(void *arg, const struct sub_tree_entry *e)
{
    struct route_ctx *ctx = arg;
    struct session *s = e->owner;
    LMQ_ASSERT(s != NULL && s->broker == ctx->broker);
    if ((e->options & MQTT_SUBOPT_NO_LOCAL) && e->share_group == NULL && s == ctx->publisher)
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
    }
    uint8_t qos = LMQ_MIN(ctx->msg->qos, (uint8_t)(e->options & MQTT_SUBOPT_QOS_MASK));
    t->qos = LMQ_MAX(t->qos, qos);
    if (e->options & MQTT_SUBOPT_RETAIN_AS_PUBLISHED)
        t->retain_as_published = true;
    if (e->sub_id != 0 && t->sub_id_count < MQTT_SUB_IDS_MAX)
        t->sub_ids[t->sub_id_count++] = e->sub_id;
}

static bool route_eligible(void *arg, void *owner)
{
    LMQ_UNUSED(arg);
    const struct session *s = owner;
    return s->conn != NULL;
}

uint8_t route_publish(struct broker *b, struct msg *m, struct session *publisher)
{
    LMQ_ASSERT(m != NULL);
    struct route_ctx ctx = {.broker = b, .msg = m, .publisher = publisher};
    b->route_gen++;
    sub_tree_match(b->subs, m->topic.data, m->topic.len, route_on_match, route_eligible, &ctx);
    if (ctx.oom)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    /* Refuse, never drop: a QoS>0 delivery that does not fit refuses the whole publish. */
    for (size_t i = 0; i < ctx.count; i++) {
        const struct route_target *t = &b->route_targets[i];
        if (t->qos > 0 && !session_queue_has_room(t->session, m->size_bytes))
            return MQTT_RC_QUOTA_EXCEEDED;
    }
    for (size_t i = 0; i < ctx.count; i++) {
        const struct route_target *t = &b->route_targets[i];
        if (t->qos == 0 && t->session->conn == NULL)
            continue; /* QoS 0 is not queued for offline sessions */
        if (t->qos == 0 && !session_queue_has_room(t->session, m->size_bytes)) {
            b->stats.qos0_dropped++;
            continue;
        }
        session_enqueue(t->session, m, t->qos, t->retain_as_published && m->retain, t->sub_ids,
                        t->sub_id_count);
    }
    return ctx.count > 0 ? MQTT_RC_SUCCESS : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
}

bool retain_fits(struct broker *b, const struct msg *m)
{
    LMQ_ASSERT(m != NULL);
    if (m->payload.len == 0)
        return true;
    const struct msg *old = lmq_map_get(b->retained, m->topic.data, m->topic.len);
    const struct lmq_limits *lim = &b->cfg.limits;
    uint64_t bytes = b->retained_bytes - (old ? old->size_bytes : 0) + m->size_bytes;
    if (old == NULL && lmq_map_count(b->retained) >= lim->max_retained_messages)
        return false;
    return bytes <= lim->max_retained_bytes;
}

uint8_t retain_update(struct broker *b, struct msg *m)
{
    LMQ_ASSERT(m != NULL && m->retain);
    struct msg *old = lmq_map_get(b->retained, m->topic.data, m->topic.len);
    struct store_record rec = {.topic = m->topic.data, .topic_len = m->topic.len};
    if (m->payload.len == 0) {
        if (old != NULL) {
            lmq_map_remove(b->retained, m->topic.data, m->topic.len);
            b->retained_bytes -= old->size_bytes;
            msg_unref(old);
            rec.type = STORE_RETAINED_DELETE;
            broker_store_write(b, &rec);
        }
        return MQTT_RC_SUCCESS;
    }
    if (!retain_fits(b, m))
        return MQTT_RC_QUOTA_EXCEEDED;
    uint64_t bytes = b->retained_bytes - (old ? old->size_bytes : 0) + m->size_bytes;
    if (lmq_map_put(b->retained, m->topic.data, m->topic.len, m) != LMQ_OK)
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    msg_ref(m);
    if (old != NULL)
        msg_unref(old);
    b->retained_bytes = bytes;
    rec.type = STORE_RETAINED_PUT;
    rec.msg_id = m->id;
    broker_store_write(b, &rec);
    return MQTT_RC_SUCCESS;
}

struct retain_visit {
    struct broker *broker;
    struct session *session;
    const uint8_t *filter;
    size_t filter_len;
    uint8_t qos;
    uint32_t sub_id;
    uint64_t now_ms;
};

static bool retain_visit_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    struct retain_visit *v = arg;
    struct msg *m = value;
    uint32_t remaining_s;
    if (!mqtt_topic_matches(v->filter, v->filter_len, key, key_len))
        return true;
    if (msg_expired(m, v->now_ms, &remaining_s))
        return true;
    if (!session_queue_has_room(v->session, m->size_bytes)) {
        v->broker->stats.refused_quota++;
        return true;
    }
    uint8_t qos = LMQ_MIN(m->qos, v->qos);
    session_enqueue(v->session, m, qos, true, v->sub_id ? &v->sub_id : NULL, v->sub_id ? 1 : 0);
    return true;
}

void retain_deliver(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                    uint8_t qos, uint32_t sub_id)
{
    LMQ_ASSERT(s != NULL && filter != NULL);
    struct retain_visit v = {.broker = b,
                             .session = s,
                             .filter = filter,
                             .filter_len = len,
                             .qos = qos,
                             .sub_id = sub_id,
                             .now_ms = broker_now_ms(b)};
    /* Linear in the number of retained messages (bounded by max_retained_messages). */
    lmq_map_visit(b->retained, retain_visit_one, &v);
}

static bool retain_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg);
    LMQ_UNUSED(key);
    LMQ_UNUSED(key_len);
    msg_unref(value);
    return true;
}

void retain_destroy_all(struct broker *b)
{
    lmq_map_visit(b->retained, retain_free_one, NULL);
    lmq_map_destroy(b->retained);
    b->retained = NULL;
}
