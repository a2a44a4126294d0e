/*
 * Messages: a PUBLISH (or a will, or a row read from the store) becomes one
 * reference-counted msg, shared by every queue that holds it, written to the
 * store at most once and freed with its last reference. Routing is route.c's.
 */
#include "broker/broker_internal.h"

#include <string.h>

static void copy_slice(uint8_t **cursor, struct lmq_bytes *dst, struct lmq_bytes src)
{
    if (src.data == NULL) {
        *dst = (struct lmq_bytes){NULL, 0};
        return;
    }
    if (src.len > 0)
        memcpy(*cursor, src.data, src.len);
    dst->data = *cursor;
    dst->len = src.len;
    *cursor += src.len;
}

/* Allocates a msg with room for the bytes of every slice and copies them in. */
static struct msg *msg_alloc(struct broker *b, const struct store_message *sm)
{
    LMQ_ASSERT(b != NULL && sm->qos <= 2);
    size_t extra = sm->topic.len + sm->payload.len + sm->content_type.len + sm->response_topic.len +
                   sm->correlation_data.len + sm->user_props.len;
    struct msg *m = calloc(1, sizeof(*m) + extra);
    if (m == NULL)
        return NULL;
    m->broker = b;
    m->refcount = 1;
    m->stored = *sm; /* the slices are re-pointed at the msg's own bytes below */
    uint8_t *cursor = (uint8_t *)(m + 1);
    copy_slice(&cursor, &m->stored.topic, sm->topic);
    copy_slice(&cursor, &m->stored.payload,
               sm->payload.data ? sm->payload : (struct lmq_bytes){cursor, 0});
    copy_slice(&cursor, &m->stored.content_type, sm->content_type);
    copy_slice(&cursor, &m->stored.response_topic, sm->response_topic);
    copy_slice(&cursor, &m->stored.correlation_data, sm->correlation_data);
    copy_slice(&cursor, &m->stored.user_props, sm->user_props);
    m->size_bytes = extra;
    LMQ_ASSERT((size_t)(cursor - (uint8_t *)(m + 1)) == extra);
    return m;
}

struct msg *msg_create(struct broker *b, const struct mqtt_publish *pub)
{
    LMQ_ASSERT(pub != NULL && pub->qos <= 2);
    const struct mqtt_props *p = &pub->props;
    uint64_t present = p->present;
    struct store_message sm = {
        .qos = pub->qos,
        .retain = pub->retain,
        .created_unix_ms = clock_unix_ms(b),
        .has_expiry = (present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL)) != 0,
        .expiry_s = p->message_expiry_interval_s,
        .has_payload_format = (present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR)) != 0,
        .payload_format = p->payload_format_indicator,
        .topic = pub->topic,
        .payload = pub->payload,
        .user_props = p->user_props,
        .user_prop_count = p->user_prop_count,
    };
    if (present & MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE))
        sm.content_type = p->content_type;
    if (present & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC))
        sm.response_topic = p->response_topic;
    if (present & MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA))
        sm.correlation_data = p->correlation_data;
    struct msg *m = msg_alloc(b, &sm);
    if (m == NULL)
        return NULL;
    m->committed = pub->qos == 0;
    m->stored.id = b->next_msg_id++;
    LMQ_ASSERT(m->stored.id != 0 && m->refcount == 1 && !m->indexed); /* the caller's reference */
    return m;
}

struct msg *msg_from_store(struct broker *b, const struct store_message *sm)
{
    LMQ_ASSERT(sm != NULL && sm->id != 0);
    uint8_t key[sizeof(sm->id)];
    memcpy(key, &sm->id, sizeof(key));
    struct msg *m = lmq_map_get(b->msgs_by_id, key, sizeof(key));
    if (m != NULL) {
        /* The copy in memory: the same message, so the same size its queue rows counted. It
         * may be uncommitted: a stored will published again at recovery waits for the batch
         * that records its new deliveries, while its message row is durable from before. */
        LMQ_ASSERT(m->indexed && m->stored.id == sm->id);
        msg_ref(m);
        return m;
    }
    m = msg_alloc(b, sm);
    if (m == NULL)
        return NULL;
    m->stored.id = sm->id;
    m->committed = true;
    m->persisted = true;
    if (lmq_map_put(b->msgs_by_id, key, sizeof(key), m) == LMQ_OK)
        m->indexed = true;
    LMQ_ASSERT(m->refcount == 1);
    return m;
}

void msg_persist(struct msg *m)
{
    LMQ_ASSERT(m != NULL && m->stored.id != 0);
    if (m->persisted)
        return;
    struct store_record rec = {.type = STORE_MESSAGE_PUT, .u.message_put.message = &m->stored};
    commit_store_write(m->broker, &rec);
    m->persisted = true;
}

void msg_ref(struct msg *m)
{
    LMQ_ASSERT(m != NULL && m->refcount > 0 && m->refcount < UINT32_MAX);
    m->refcount++;
}

void msg_unref(struct msg *m)
{
    if (m == NULL)
        return;
    LMQ_ASSERT(m->refcount > 0 && m->broker != NULL);
    if (--m->refcount > 0)
        return;
    if (m->indexed) {
        uint8_t key[sizeof(m->stored.id)];
        memcpy(key, &m->stored.id, sizeof(key));
        void *was = lmq_map_remove(m->broker->msgs_by_id, key, sizeof(key));
        LMQ_ASSERT(was == m);
    }
    free(m);
}

bool msg_expired(const struct msg *m, int64_t now_unix_ms, uint32_t *remaining_s)
{
    LMQ_ASSERT(m != NULL);
    if (!m->stored.has_expiry) {
        *remaining_s = 0;
        return false;
    }
    int64_t age_ms =
        now_unix_ms > m->stored.created_unix_ms ? now_unix_ms - m->stored.created_unix_ms : 0;
    uint64_t age_s = (uint64_t)age_ms / 1000;
    if (age_s >= m->stored.expiry_s) {
        *remaining_s = 0;
        return true;
    }
    *remaining_s = m->stored.expiry_s - (uint32_t)age_s;
    return false;
}
