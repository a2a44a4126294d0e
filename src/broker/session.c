/*
 * Sessions: attach/detach to connections (takeover, clean start, session
 * present), the per-session queue and inflight window, outbound QoS flows,
 * wills with delay, and session expiry.
 */
#include "broker/broker_internal.h"

#include <string.h>

#include "mqtt/mqtt_topic.h"

#define SESSION_EXPIRY_NEVER UINT32_MAX

static void session_arm_timer(struct session *s);

static void session_log(struct session *s, enum lmq_log_level level, const char *event)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, level, event))
        return;
    lmq_log_strn(&line, "client_id", s->client_id, s->client_id_len);
    lmq_log_end(&line);
}

static void session_write(struct session *s, enum store_record_type type, uint64_t msg_id,
                          uint8_t qos)
{
    struct store_record rec = {.type = type,
                               .client_id = s->client_id,
                               .client_id_len = s->client_id_len,
                               .msg_id = msg_id,
                               .qos = qos,
                               .expiry_s = s->expiry_s};
    broker_store_write(s->broker, &rec);
}

static void delivery_free(struct session *s, struct delivery *d)
{
    LMQ_ASSERT(s->queued_count > 0);
    LMQ_ASSERT(s->queued_bytes >= d->msg->size_bytes);
    s->queued_count--;
    s->queued_bytes -= d->msg->size_bytes;
    if (s->persistent && d->qos > 0)
        session_write(s, STORE_QUEUE_DELETE, d->msg->id, d->qos);
    msg_unref(d->msg);
    free(d);
}

bool session_queue_has_room(const struct session *s, size_t msg_bytes)
{
    const struct lmq_limits *lim = &s->broker->cfg.limits;
    return s->queued_count < lim->max_queued_messages &&
           s->queued_bytes + msg_bytes <= lim->max_queued_bytes;
}

void session_enqueue(struct session *s, struct msg *m, uint8_t qos, bool retain,
                     const uint32_t *sub_ids, size_t sub_id_count)
{
    LMQ_ASSERT(qos <= 2 && sub_id_count <= MQTT_SUB_IDS_MAX);
    struct delivery *d = calloc(1, sizeof(*d) + sub_id_count * sizeof(uint32_t));
    if (d == NULL) {
        s->broker->stats.qos0_dropped += qos == 0;
        LMQ_ASSERT(qos == 0); /* QoS>0 must not be lost: out of memory here is fatal */
        return;
    }
    msg_ref(m);
    d->msg = m;
    d->qos = qos;
    d->retain = retain;
    d->sub_id_count = (uint8_t)sub_id_count;
    if (sub_id_count > 0)
        memcpy(d->sub_ids, sub_ids, sub_id_count * sizeof(uint32_t));
    list_push_back(qos == 0 ? &s->queue0 : &s->queue, &d->link);
    s->queued_count++;
    s->queued_bytes += m->size_bytes;
    if (s->persistent && qos > 0)
        session_write(s, STORE_QUEUE_PUT, m->id, qos);
    if (s->conn != NULL)
        session_pump(s);
}

static bool packet_id_in_use(const struct session *s, uint16_t id)
{
    for (const struct list_node *n = s->inflight.next; n != &s->inflight; n = n->next) {
        if (list_entry(n, struct delivery, link)->packet_id == id)
            return true;
    }
    return false;
}

static uint16_t session_next_packet_id(struct session *s)
{
    LMQ_ASSERT(s->inflight_count < 65535);
    for (uint32_t tries = 0; tries < 65536; tries++) {
        s->next_packet_id = (uint16_t)(s->next_packet_id + 1);
        if (s->next_packet_id == 0)
            s->next_packet_id = 1;
        if (!packet_id_in_use(s, s->next_packet_id))
            return s->next_packet_id;
    }
    LMQ_UNREACHABLE("no free packet id");
    return 0;
}

/* Encodes d as a PUBLISH; returns 0, LMQ_ETOOBIG when the client's maximum packet size forbids it. */
static int session_send_publish(struct session *s, struct delivery *d, bool dup)
{
    struct conn *c = s->conn;
    const struct msg *m = d->msg;
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    struct mqtt_publish *p = &pkt.u.publish;
    p->dup = dup;
    p->qos = d->qos;
    p->retain = d->retain;
    p->topic = m->topic;
    p->packet_id = d->packet_id;
    p->payload = m->payload;
    uint32_t remaining_s = 0;
    if (msg_expired(m, broker_now_ms(s->broker), &remaining_s) && !dup)
        return LMQ_ENOTFOUND;
    if (m->has_expiry) {
        p->props.present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
        p->props.message_expiry_interval_s = remaining_s > 0 ? remaining_s : 1;
    }
    if (m->has_payload_format) {
        p->props.present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
        p->props.payload_format_indicator = m->payload_format;
    }
    if (m->content_type.data != NULL) {
        p->props.present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
        p->props.content_type = m->content_type;
    }
    if (m->response_topic.data != NULL) {
        p->props.present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
        p->props.response_topic = m->response_topic;
    }
    if (m->correlation_data.data != NULL) {
        p->props.present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
        p->props.correlation_data = m->correlation_data;
    }
    if (m->user_props.len > 0) {
        p->props.present |= MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
        p->props.user_props = m->user_props;
        p->props.user_prop_count = m->user_prop_count;
    }
    for (size_t i = 0; i < d->sub_id_count; i++)
        p->props.subscription_ids[i] = d->sub_ids[i];
    p->props.subscription_id_count = d->sub_id_count;
    if (d->sub_id_count > 0)
        p->props.present |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    size_t size = 0;
    if (mqtt_encoded_size(&pkt, c->version, &size) != LMQ_OK || size > c->max_packet_out)
        return LMQ_ETOOBIG;
    s->broker->stats.messages_out++;
    return conn_send(c, &pkt);
}

static void session_wait_commit(struct session *s)
{
    if (!list_linked(&s->commit_wait))
        list_push_back(&s->broker->commit_waiters, &s->commit_wait);
}

/*
 * Sends the head of list while it may go: returns false when the session must
 * stop pulling from this list for now (commit pending, output full, window full).
 */
static bool session_pump_list(struct session *s, struct list_node *list)
{
    struct conn *c = s->conn;
    const uint64_t max_out = s->broker->cfg.limits.max_output_bytes;
    size_t guard = s->queued_count + 1;
    while (!list_empty(list) && guard-- > 0 && s->conn != NULL) {
        if (conn_output_pending(c) >= max_out)
            return false; /* resumed when the socket drains */
        struct delivery *d = list_entry(list->next, struct delivery, link);
        if (!d->msg->committed) {
            session_wait_commit(s);
            return false;
        }
        if (d->qos > 0 && s->inflight_count >= c->send_quota_max)
            return false; /* resumed by an acknowledgement */
        list_unlink(&d->link);
        if (d->qos > 0) {
            d->packet_id = session_next_packet_id(s);
            d->state = d->qos == 1 ? DELIVERY_WAIT_PUBACK : DELIVERY_WAIT_PUBREC;
        }
        int rc = session_send_publish(s, d, false);
        if (rc == LMQ_ETOOBIG || rc == LMQ_ENOTFOUND) {
            /* Too big for this client, or expired: the spec says discard; we count it. */
            if (rc == LMQ_ETOOBIG)
                s->broker->stats.oversize_dropped++;
            else
                s->broker->stats.expired_dropped++;
            delivery_free(s, d);
            continue;
        }
        if (d->qos == 0) {
            delivery_free(s, d);
            continue;
        }
        list_push_back(&s->inflight, &d->link);
        s->inflight_count++;
    }
    return true;
}

/* Sends queued deliveries while the client's window and the socket's output allow. */
void session_pump(struct session *s)
{
    struct conn *c = s->conn;
    if (c == NULL || c->state != CONN_CONNECTED || s->closing || s->hold_delivery)
        return;
    /* QoS 0 first: the inflight window holds back only QoS 1/2 [MQTT-4.9]. */
    if (session_pump_list(s, &s->queue0))
        (void)session_pump_list(s, &s->queue);
    else if (s->conn != NULL && conn_output_pending(c) < s->broker->cfg.limits.max_output_bytes)
        (void)session_pump_list(s, &s->queue);
}

void session_resend_inflight(struct session *s)
{
    LMQ_ASSERT(s->conn != NULL);
    size_t guard = s->inflight_count + 1;
    for (struct list_node *n = s->inflight.next; n != &s->inflight && guard-- > 0; n = n->next) {
        struct delivery *d = list_entry(n, struct delivery, link);
        if (d->state == DELIVERY_WAIT_PUBCOMP) {
            struct mqtt_packet pkt = {.type = MQTT_PUBREL};
            pkt.u.ack.packet_id = d->packet_id;
            (void)conn_send(s->conn, &pkt);
        } else {
            (void)session_send_publish(s, d, true);
        }
    }
}

static struct delivery *session_find_inflight(struct session *s, uint16_t packet_id)
{
    size_t guard = s->inflight_count + 1;
    for (struct list_node *n = s->inflight.next; n != &s->inflight && guard-- > 0; n = n->next) {
        struct delivery *d = list_entry(n, struct delivery, link);
        if (d->packet_id == packet_id)
            return d;
    }
    return NULL;
}

static void session_complete(struct session *s, struct delivery *d)
{
    list_unlink(&d->link);
    LMQ_ASSERT(s->inflight_count > 0);
    s->inflight_count--;
    delivery_free(s, d);
}

int session_ack(struct session *s, uint8_t type, uint16_t packet_id, uint8_t reason_code)
{
    struct delivery *d = session_find_inflight(s, packet_id);
    if (d == NULL)
        return LMQ_ENOTFOUND;
    switch (type) {
    case MQTT_PUBACK:
        if (d->state != DELIVERY_WAIT_PUBACK)
            return LMQ_ENOTFOUND;
        session_complete(s, d);
        break;
    case MQTT_PUBREC:
        if (d->state == DELIVERY_WAIT_PUBACK)
            return LMQ_ENOTFOUND;
        if (reason_code >= 0x80) {
            session_complete(s, d); /* the receiver refused it: the flow ends here */
            break;
        }
        d->state = DELIVERY_WAIT_PUBCOMP;
        struct mqtt_packet pkt = {.type = MQTT_PUBREL};
        pkt.u.ack.packet_id = packet_id;
        (void)conn_send(s->conn, &pkt);
        return LMQ_OK; /* the window slot stays taken until PUBCOMP */
    case MQTT_PUBCOMP:
        if (d->state != DELIVERY_WAIT_PUBCOMP)
            return LMQ_ENOTFOUND;
        session_complete(s, d);
        break;
    default:
        LMQ_UNREACHABLE("not an outbound flow acknowledgement");
    }
    session_pump(s);
    return LMQ_OK;
}

static void session_publish_will(struct session *s)
{
    struct msg *will = s->will;
    if (will == NULL)
        return;
    s->will = NULL;
    s->will_due_ms = 0;
    session_log(s, LMQ_LOG_DEBUG, "will_published");
    struct broker *b = s->broker;
    /* A will is routed like a publish from nobody (no-local does not apply). */
    if (will->qos > 0) {
        /* Deliveries of a QoS>0 will wait for the commit that records them. */
        will->committed = false;
        if (broker_defer_msg(b, will) != LMQ_OK)
            will->committed = true;
    }
    if (route_publish(b, will, NULL) == MQTT_RC_QUOTA_EXCEEDED) {
        b->stats.refused_quota++;
        session_log(s, LMQ_LOG_WARN, "will_refused_quota");
    }
    if (will->retain)
        (void)retain_update(b, will);
    msg_unref(will);
}

static void session_unsubscribe_all(struct session *s)
{
    size_t guard = s->sub_count + 1;
    while (!list_empty(&s->subs) && guard-- > 0) {
        struct session_sub *sub = list_entry(s->subs.next, struct session_sub, link);
        const uint8_t *group = sub->group_len ? sub->text : NULL;
        int rc = sub_tree_remove(s->broker->subs, sub->text + sub->group_len, sub->filter_len,
                                 group, sub->group_len, s);
        LMQ_ASSERT(rc == LMQ_OK);
        list_unlink(&sub->link);
        free(sub);
        s->sub_count--;
    }
}

static void session_free_cb(uv_handle_t *h)
{
    struct session *s = h->data;
    free(s->client_id);
    free(s);
}

static void session_free_queues(struct session *s)
{
    struct list_node *lists[] = {&s->queue, &s->queue0, &s->inflight};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(lists); i++) {
        while (!list_empty(lists[i])) {
            struct delivery *d = list_entry(lists[i]->next, struct delivery, link);
            list_unlink(&d->link);
            msg_unref(d->msg);
            free(d);
        }
    }
    s->queued_count = 0;
    s->queued_bytes = 0;
    s->inflight_count = 0;
}

/* Frees a session's memory (not its stored state). */
void session_destroy(struct session *s)
{
    LMQ_ASSERT(s->conn == NULL && !s->closing);
    s->closing = true;
    struct broker *b = s->broker;
    lmq_map_remove(b->sessions, s->client_id, s->client_id_len);
    LMQ_ASSERT(b->session_count > 0);
    b->session_count--;
    if (list_linked(&s->commit_wait))
        list_unlink(&s->commit_wait);
    session_unsubscribe_all(s);
    session_free_queues(s);
    msg_unref(s->will);
    s->will = NULL;
    free(s->inbound_qos2);
    uv_close((uv_handle_t *)&s->timer, session_free_cb);
}

/* The session ends for good: its delayed will goes out, its stored state is deleted. */
static void session_end(struct session *s)
{
    session_log(s, LMQ_LOG_DEBUG, "session_ended");
    session_publish_will(s);
    if (s->stored)
        session_write(s, STORE_SESSION_DELETE, 0, 0);
    session_destroy(s);
}

static void session_on_timer(uv_timer_t *t)
{
    struct session *s = t->data;
    uint64_t now = broker_now_ms(s->broker);
    if (s->will_due_ms != 0 && now >= s->will_due_ms)
        session_publish_will(s);
    if (s->conn == NULL && s->expires_ms != 0 && now >= s->expires_ms) {
        session_end(s);
        return;
    }
    session_arm_timer(s);
}

static void session_arm_timer(struct session *s)
{
    uint64_t due = 0;
    if (s->will_due_ms != 0)
        due = s->will_due_ms;
    if (s->conn == NULL && s->expires_ms != 0 && (due == 0 || s->expires_ms < due))
        due = s->expires_ms;
    uv_timer_stop(&s->timer);
    if (due == 0)
        return;
    uint64_t now = broker_now_ms(s->broker);
    uv_timer_start(&s->timer, session_on_timer, due > now ? due - now : 0, 0);
}

void session_detach(struct conn *c)
{
    struct session *s = c->session;
    if (s == NULL)
        return;
    LMQ_ASSERT(s->conn == c);
    c->session = NULL;
    s->conn = NULL;
    if (list_linked(&s->commit_wait))
        list_unlink(&s->commit_wait);
    uint64_t now = broker_now_ms(s->broker);
    if (s->will != NULL) {
        if (!c->will_on_close) {
            msg_unref(s->will);
            s->will = NULL;
        } else if (s->will_delay_s == 0) {
            session_publish_will(s);
        } else {
            s->will_due_ms = now + (uint64_t)s->will_delay_s * 1000;
        }
    }
    if (c->takeover)
        return; /* the new connection attaches right away */
    if (!s->persistent || s->expiry_s == 0) {
        session_end(s);
        return;
    }
    /* QoS 0 messages are not kept for an offline session. */
    size_t guard = s->queued_count + 1;
    while (!list_empty(&s->queue0) && guard-- > 0) {
        struct delivery *d = list_entry(s->queue0.next, struct delivery, link);
        list_unlink(&d->link);
        delivery_free(s, d);
    }
    s->expires_ms = s->expiry_s == SESSION_EXPIRY_NEVER ? 0 : now + (uint64_t)s->expiry_s * 1000;
    session_arm_timer(s);
}

static struct session *session_create(struct broker *b, const uint8_t *id, size_t id_len)
{
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->client_id = malloc(id_len + 1);
    if (s->client_id == NULL || lmq_map_put(b->sessions, id, id_len, s) != LMQ_OK) {
        free(s->client_id);
        free(s);
        return NULL;
    }
    memcpy(s->client_id, id, id_len);
    s->client_id[id_len] = '\0';
    s->client_id_len = id_len;
    s->broker = b;
    list_init(&s->subs);
    list_init(&s->queue);
    list_init(&s->queue0);
    list_init(&s->inflight);
    uv_timer_init(&b->loop, &s->timer);
    s->timer.data = s;
    /* Session timers never keep the loop alive on their own: shutdown must not wait for them. */
    uv_unref((uv_handle_t *)&s->timer);
    b->session_count++;
    return s;
}

static uint32_t session_expiry_for(const struct conn *c, const struct mqtt_connect *connect)
{
    uint32_t cap = c->broker->cfg.limits.max_session_expiry_s;
    if (connect->protocol_version == MQTT_V5) {
        uint32_t v = 0;
        if (connect->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL))
            v = connect->props.session_expiry_interval_s;
        return LMQ_MIN(v, cap);
    }
    return connect->clean_start ? 0 : cap;
}

static int session_set_will(struct session *s, struct conn *c, const struct mqtt_connect *cn)
{
    msg_unref(s->will);
    s->will = NULL;
    s->will_due_ms = 0;
    c->will_on_close = false;
    if (!cn->will_flag)
        return LMQ_OK;
    struct mqtt_publish pub = {.qos = cn->will_qos,
                               .retain = cn->will_retain,
                               .topic = cn->will_topic,
                               .payload = cn->will_payload,
                               .props = cn->will_props};
    s->will = msg_create(s->broker, &pub, broker_now_ms(s->broker));
    if (s->will == NULL)
        return LMQ_ENOMEM;
    s->will->committed = true; /* re-set to false when it is published with QoS > 0 */
    s->will_delay_s = 0;
    if (cn->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL))
        s->will_delay_s = cn->will_props.will_delay_interval_s;
    c->will_on_close = true;
    return LMQ_OK;
}

int session_attach(struct conn *c, const struct mqtt_connect *connect, bool *session_present,
                   uint8_t *reason_code)
{
    struct broker *b = c->broker;
    const uint8_t *id = connect->client_id.data;
    size_t id_len = connect->client_id.len;
    struct session *s = lmq_map_get(b->sessions, id, id_len);
    if (s != NULL && s->conn != NULL) {
        struct conn *old = s->conn;
        old->takeover = true;
        session_log(s, LMQ_LOG_INFO, "session_taken_over");
        conn_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER);
        LMQ_ASSERT(s->conn == NULL);
    }
    if (s != NULL && connect->clean_start) {
        session_end(s);
        s = NULL;
    }
    *session_present = s != NULL;
    if (s == NULL) {
        if (b->session_count >= b->cfg.limits.max_sessions) {
            *reason_code = MQTT_RC_QUOTA_EXCEEDED;
            return LMQ_ELIMIT;
        }
        s = session_create(b, id, id_len);
        if (s == NULL) {
            *reason_code = MQTT_RC_SERVER_UNAVAILABLE;
            return LMQ_ENOMEM;
        }
    }
    /* Reconnecting within a will delay cancels the delayed will. */
    uv_timer_stop(&s->timer);
    s->expires_ms = 0;
    s->conn = c;
    c->session = s;
    s->version = connect->protocol_version;
    s->expiry_s = session_expiry_for(c, connect);
    s->persistent = s->expiry_s > 0;
    c->session_expiry_was_zero = s->expiry_s == 0;
    if (session_set_will(s, c, connect) != LMQ_OK) {
        *reason_code = MQTT_RC_SERVER_UNAVAILABLE;
        return LMQ_ENOMEM;
    }
    if (s->persistent) {
        session_write(s, STORE_SESSION_PUT, 0, 0);
        s->stored = true;
    } else if (s->stored) {
        session_write(s, STORE_SESSION_DELETE, 0, 0);
        s->stored = false;
    }
    *reason_code = MQTT_RC_SUCCESS;
    return LMQ_OK;
}

static bool session_collect_visit(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    struct session ***cursor = ctx;
    LMQ_UNUSED(key);
    LMQ_UNUSED(key_len);
    *(*cursor)++ = value;
    return true;
}

void session_destroy_all(struct broker *b)
{
    size_t count = lmq_map_count(b->sessions);
    if (count == 0)
        return;
    /* Collect first: destroying a session modifies the map being visited. */
    struct session **all = calloc(count, sizeof(*all));
    LMQ_ASSERT(all != NULL);
    struct session **cursor = all;
    lmq_map_visit(b->sessions, session_collect_visit, &cursor);
    LMQ_ASSERT((size_t)(cursor - all) == count);
    for (size_t i = 0; i < count; i++) {
        struct session *s = all[i];
        if (s->conn != NULL) {
            s->conn->session = NULL;
            s->conn = NULL;
        }
        session_destroy(s);
    }
    free(all);
}
