/* SUBSCRIBE and UNSUBSCRIBE: validation, the session's subscription list, the tree, retained. */
#include "broker/broker_internal.h"

#include <string.h>

#include "events/validators.h"
#include "mqtt/mqtt_topic.h"

/* Largest SUBSCRIBE/UNSUBSCRIBE we answer: entries beyond get a refusal code. */
#define SUBSCRIBE_ENTRIES_MAX 1024

static struct session_sub *session_sub_find(struct session *s, const uint8_t *group,
                                            size_t group_len, const uint8_t *filter,
                                            size_t filter_len)
{
    size_t guard = s->sub_count + 1;
    for (struct list_node *n = s->subs.next; n != &s->subs && guard-- > 0; n = n->next) {
        struct session_sub *sub = list_entry(n, struct session_sub, link);
        if (sub->group_len == group_len && sub->filter_len == filter_len &&
            (group_len == 0 || memcmp(sub->text, group, group_len) == 0) &&
            memcmp(sub->text + group_len, filter, filter_len) == 0)
            return sub;
    }
    return NULL;
}

static void subscribe_store(struct session *s, enum store_record_type type, const uint8_t *full,
                            size_t full_len, uint8_t options, uint32_t sub_id)
{
    if (!s->persistent)
        return;
    struct lmq_bytes client_id = {s->client_id, s->client_id_len};
    struct store_record rec = {.type = type};
    if (type == STORE_SUBSCRIPTION_PUT)
        rec.u.subscription_put = (struct store_rec_subscription_put){.client_id = client_id,
                                                                     .filter = {full, full_len},
                                                                     .sub_id = sub_id,
                                                                     .options = options};
    else
        rec.u.subscription_delete = (struct store_rec_subscription_delete){
            .client_id = client_id, .filter = {full, full_len}};
    LMQ_ASSERT(type == STORE_SUBSCRIPTION_PUT || type == STORE_SUBSCRIPTION_DELETE);
    commit_store_write(s->broker, &rec);
}

/* Longest filter text a stored subscription can have: "$share/" + group + "/" + filter. */
#define SUBSCRIBE_STORED_TEXT_MAX_BYTES (7 + 65535 + 1)

void subscribe_store_all(struct session *s)
{
    LMQ_ASSERT(s != NULL && s->persistent);
    uint8_t *text = malloc(SUBSCRIBE_STORED_TEXT_MAX_BYTES);
    if (text == NULL)
        broker_fail_stop(s->broker, "store subscriptions (out of memory)", LMQ_ENOMEM);
    size_t guard = s->sub_count + 1;
    for (struct list_node *n = s->subs.next; n != &s->subs && guard-- > 0; n = n->next) {
        const struct session_sub *sub = list_entry(n, struct session_sub, link);
        size_t len = 0;
        if (sub->group_len > 0) {
            memcpy(text, "$share/", 7);
            memcpy(text + 7, sub->text, sub->group_len);
            text[7 + sub->group_len] = '/';
            len = 8 + sub->group_len;
        }
        LMQ_ASSERT(len + sub->filter_len <= SUBSCRIBE_STORED_TEXT_MAX_BYTES);
        memcpy(text + len, sub->text + sub->group_len, sub->filter_len);
        len += sub->filter_len;
        subscribe_store(s, STORE_SUBSCRIPTION_PUT, text, len, sub->options, sub->sub_id);
    }
    free(text);
}

/* Subscribes one entry; returns the SUBACK code, or sets *fatal to a disconnect reason. */
static uint8_t subscribe_one(struct conn *c, const struct mqtt_sub_entry *e, uint32_t sub_id,
                             uint8_t *fatal)
{
    struct session *s = c->session;
    const uint8_t *filter = e->filter.data, *group = NULL;
    size_t filter_len = e->filter.len, group_len = 0;
    uint8_t refuse = c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID : 0x80;
    if (e->filter.len == 0 || !mqtt_topic_filter_valid(e->filter.data, e->filter.len))
        return refuse;
    bool shared = mqtt_topic_shared_split(e->filter.data, e->filter.len, &group, &group_len,
                                          &filter, &filter_len);
    /* The identity rules apply to the filter a shared subscription names, after its group:
     * $share/<g>/id/<victim>/inbox is id/<victim>/inbox. */
    if (!pipeline_may_subscribe(c, filter, filter_len))
        return c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0x80;
    if (shared && (e->options & MQTT_SUBOPT_NO_LOCAL)) {
        *fatal = MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.8.3-4] */
        c->why = "No Local on a shared subscription";
        return refuse;
    }
    /* Under id/ the identity rules above decide. Elsewhere the ACL, like mosquitto's, grants
     * the subscription and checks each delivery as a read of its topic (access.c). */
    if (!pipeline_under_id(filter, filter_len))
        access_subscribed(s, filter, filter_len);
    struct session_sub *existing = session_sub_find(s, group, group_len, filter, filter_len);
    if (existing == NULL && s->sub_count >= s->broker->cfg.limits.max_subscriptions)
        return c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0x80;
    uint8_t options = e->options;
    if (c->version != MQTT_V5)
        options &= MQTT_SUBOPT_QOS_MASK;
    bool existed = false;
    if (sub_tree_add(s->broker->subs, filter, filter_len, group, group_len, s, options, sub_id,
                     &existed) != LMQ_OK)
        return c->version == MQTT_V5 ? MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR : 0x80;
    LMQ_ASSERT(existed == (existing != NULL));
    if (existing == NULL) {
        existing = calloc(1, sizeof(*existing) + group_len + filter_len);
        if (existing == NULL) {
            (void)sub_tree_remove(s->broker->subs, filter, filter_len, group, group_len, s);
            return c->version == MQTT_V5 ? MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR : 0x80;
        }
        if (group_len > 0)
            memcpy(existing->text, group, group_len);
        memcpy(existing->text + group_len, filter, filter_len);
        existing->group_len = group_len;
        existing->filter_len = filter_len;
        list_push_back(&s->subs, &existing->link);
        s->sub_count++;
    }
    existing->options = options;
    existing->sub_id = sub_id;
    subscribe_store(s, STORE_SUBSCRIPTION_PUT, e->filter.data, e->filter.len, options, sub_id);
    validators_subscribed(c, filter, filter_len); /* a validator bot's session to ask */
    uint8_t qos = (uint8_t)(options & MQTT_SUBOPT_QOS_MASK);
    unsigned retain_handling =
        (unsigned)(options & MQTT_SUBOPT_RETAIN_HANDLING_MASK) >> MQTT_SUBOPT_RETAIN_HANDLING_SHIFT;
    /* Retained messages are not sent for shared subscriptions [MQTT-3.8.4]. */
    if (!shared && (retain_handling == 0 || (retain_handling == 1 && !existed)))
        retain_deliver(s->broker, s, filter, filter_len, qos, sub_id);
    return qos;
}

enum proto_result subscribe_packet(struct conn *c, struct mqtt_packet *pkt, uint8_t *reason)
{
    const struct mqtt_subscribe *sub = &pkt->u.subscribe;
    uint32_t sub_id = 0;
    if (sub->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER))
        sub_id = sub->props.subscription_ids[0];
    uint8_t codes[SUBSCRIBE_ENTRIES_MAX];
    size_t count = 0;
    struct lmq_bytes cursor = sub->payload;
    struct mqtt_sub_entry e;
    uint8_t fatal = 0;
    /* The SUBACK goes out before any retained message the subscription triggers. */
    struct session *s = c->session;
    LMQ_ASSERT(s != NULL && s->conn == c && s->hold_delivery < UINT32_MAX);
    s->hold_delivery++; /* retained messages go out after the SUBACK */
    while (count < SUBSCRIBE_ENTRIES_MAX && mqtt_subscribe_next(&cursor, c->version, &e)) {
        codes[count++] = subscribe_one(c, &e, sub_id, &fatal);
        if (fatal != 0)
            break;
    }
    if (fatal != 0) {
        s->hold_delivery--;
        return proto_disconnect_with(reason, fatal);
    }
    if (count < sub->entry_count) {
        s->hold_delivery--; /* more entries than we answer in one packet */
        return proto_disconnect_with(reason, MQTT_RC_QUOTA_EXCEEDED);
    }
    /* Sent once the subscriptions are durable; deliveries stay held until then. */
    if (commit_defer_suback(s->broker, c, MQTT_SUBACK, sub->packet_id, codes, count) != LMQ_OK) {
        s->hold_delivery--;
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    }
    LMQ_ASSERT(s->hold_delivery > 0 && c->acks_waiting > 0); /* released with the SUBACK */
    return PROTO_OK;
}

enum proto_result subscribe_unsubscribe_packet(struct conn *c, struct mqtt_packet *pkt,
                                               uint8_t *reason)
{
    const struct mqtt_unsubscribe *unsub = &pkt->u.unsubscribe;
    struct session *s = c->session;
    uint8_t codes[SUBSCRIBE_ENTRIES_MAX];
    size_t count = 0;
    struct lmq_bytes cursor = unsub->payload;
    struct lmq_bytes f;
    while (count < SUBSCRIBE_ENTRIES_MAX && mqtt_unsubscribe_next(&cursor, &f)) {
        const uint8_t *filter = f.data, *group = NULL;
        size_t filter_len = f.len, group_len = 0;
        (void)mqtt_topic_shared_split(f.data, f.len, &group, &group_len, &filter, &filter_len);
        struct session_sub *sub = session_sub_find(s, group, group_len, filter, filter_len);
        if (sub == NULL) {
            codes[count++] = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
            continue;
        }
        int rc = sub_tree_remove(s->broker->subs, filter, filter_len, group, group_len, s);
        LMQ_ASSERT(rc == LMQ_OK);
        if (group_len == 0)
            retain_cancel(s, filter, filter_len);
        list_unlink(&sub->link);
        free(sub);
        s->sub_count--;
        subscribe_store(s, STORE_SUBSCRIPTION_DELETE, f.data, f.len, 0, 0);
        codes[count++] = MQTT_RC_SUCCESS;
    }
    if (count < unsub->filter_count)
        return proto_disconnect_with(reason, MQTT_RC_QUOTA_EXCEEDED);
    if (commit_defer_suback(s->broker, c, MQTT_UNSUBACK, unsub->packet_id, codes, count) != LMQ_OK)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    return PROTO_OK;
}
