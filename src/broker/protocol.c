/*
 * MQTT packet handlers: what the broker does with each packet a client
 * sends. A handler returns an enum proto_result: PROTO_OK, PROTO_BLOCKED
 * (3.1.1 backpressure: retry the same packet later), PROTO_PAUSED (a CONNECT
 * waiting for its password check) or PROTO_DISCONNECT with an MQTT 5 reason
 * code >= 0x80 in *reason, with which the connection is closed (DISCONNECT
 * for v5 clients).
 */
#include "broker/broker_internal.h"

#include <string.h>

#include "events/bots.h"
#include "events/validators.h"
#include "mqtt/mqtt_topic.h"

/* Client identifiers the broker assigns: "auto-" + 32 hex digits. */
#define PROTO_ASSIGNED_ID_BYTES 37

static void proto_connack(struct conn *c, uint8_t reason_code, bool session_present,
                          const struct mqtt_props *props)
{
    struct mqtt_packet pkt = {.type = MQTT_CONNACK};
    pkt.u.connack.session_present = session_present;
    pkt.u.connack.reason_code = reason_code;
    if (props != NULL)
        pkt.u.connack.props = *props;
    if (c->version != MQTT_V5) {
        /* Map to the 3.1.1 return codes. */
        switch (reason_code) {
        case MQTT_RC_SUCCESS:
            break;
        case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
            pkt.u.connack.reason_code = MQTT_CONNACK_V311_BAD_PROTOCOL_VERSION;
            break;
        case MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID:
            pkt.u.connack.reason_code = MQTT_CONNACK_V311_IDENTIFIER_REJECTED;
            break;
        case MQTT_RC_BAD_USER_NAME_OR_PASSWORD:
            pkt.u.connack.reason_code = MQTT_CONNACK_V311_BAD_USERNAME_OR_PASSWORD;
            break;
        case MQTT_RC_NOT_AUTHORIZED:
            pkt.u.connack.reason_code = MQTT_CONNACK_V311_NOT_AUTHORIZED;
            break;
        default:
            pkt.u.connack.reason_code = MQTT_CONNACK_V311_SERVER_UNAVAILABLE;
            break;
        }
    }
    (void)conn_send(c, &pkt);
}

/* Refuses a CONNECT: CONNACK with the reason (v5: and a Reason String, client_why or the
 * code's default), then the connection ends, lingering so that the client reads it. why is
 * for the log. */
static enum proto_result proto_refuse_connect_why(struct conn *c, uint8_t reason_code,
                                                  const char *why, const char *client_why)
{
    LMQ_ASSERT(c->state == CONN_AWAIT_CONNECT);
    conn_log_refused(c, reason_code, why);
    struct mqtt_props props = {0};
    if (client_why == NULL)
        client_why = conn_reason_text(MQTT_CONNACK, reason_code);
    if (client_why != NULL) {
        props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        props.reason_string = (struct lmq_bytes){(const uint8_t *)client_why, strlen(client_why)};
    }
    proto_connack(c, reason_code, false, &props);
    conn_end(c, false);
    return PROTO_OK;
}

static enum proto_result proto_refuse_connect(struct conn *c, uint8_t reason_code, const char *why)
{
    return proto_refuse_connect_why(c, reason_code, why, NULL);
}

static void proto_assign_client_id(uint8_t *out)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t rnd[16];
    if (uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) != 0) {
        static uint64_t counter;
        uint64_t v = ++counter ^ uv_hrtime();
        memcpy(rnd, &v, sizeof(v));
        memcpy(rnd + 8, &v, sizeof(v));
    }
    memcpy(out, "auto-", 5);
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[5 + 2 * i] = (uint8_t)hex[rnd[i] >> 4];
        out[6 + 2 * i] = (uint8_t)hex[rnd[i] & 15];
    }
}

/* What the client said about the packets it takes (v5), before anything is sent to it: its
 * Maximum Packet Size and whether it wants Reason Strings (Request Problem Information). */
static void proto_client_limits(struct conn *c, const struct mqtt_connect *cn)
{
    const struct mqtt_props *p = &cn->props;
    c->max_packet_out = UINT32_MAX;
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
        c->max_packet_out = p->maximum_packet_size;
    c->request_problem_info = true;
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFORMATION))
        c->request_problem_info = p->request_problem_information != 0;
}

/* max_keepalive and a 3.1.1 client: it can't be told a shorter keepalive (v5 gets Server Keep
 * Alive), and one it does not know would disconnect it while it does everything right, so a
 * request for none (0) or for more is refused, as mosquitto does. */
static bool proto_keepalive_fits(const struct conn *c, const struct mqtt_connect *cn)
{
    uint16_t max_s = c->broker->cfg.limits.max_keepalive_s;
    if (cn->protocol_version == MQTT_V5 || max_s == 0)
        return true;
    return cn->keep_alive_s != 0 && cn->keep_alive_s <= max_s;
}

/* Negotiates keepalive, windows and aliases; fills the v5 CONNACK properties. */
static void proto_negotiate(struct conn *c, const struct mqtt_connect *cn, struct mqtt_props *ack)
{
    const struct lmq_limits *lim = &c->broker->cfg.limits;
    c->keepalive_s = cn->keep_alive_s;
    if (lim->max_keepalive_s > 0 &&
        (cn->keep_alive_s == 0 || cn->keep_alive_s > lim->max_keepalive_s)) {
        /* The keepalive enforced is the one the CONNACK returns. */
        LMQ_ASSERT(cn->protocol_version == MQTT_V5); /* 3.1.1: refused (proto_keepalive_fits) */
        c->keepalive_s = lim->max_keepalive_s;
        ack->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
        ack->server_keep_alive_s = lim->max_keepalive_s;
    }
    const struct mqtt_props *p = &cn->props;
    c->send_quota_max = lim->max_inflight;
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
        c->send_quota_max = LMQ_MIN(p->receive_maximum, lim->max_inflight);
    if (cn->protocol_version != MQTT_V5)
        return;
    c->topic_alias_max = lim->max_topic_alias;
    /* Absent or 0: the client takes no topic aliases [MQTT-3.1.2-26]. */
    if (p->present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
        c->topic_alias_out_max = LMQ_MIN(p->topic_alias_maximum, lim->max_topic_alias_out);
    ack->present |=
        MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) | MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE) |
        MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM) | MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) |
        MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE) |
        MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE) |
        MQTT_PROP_BIT(MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE);
    ack->receive_maximum = lim->max_inflight;
    ack->maximum_packet_size = lim->max_packet_size_bytes;
    ack->topic_alias_maximum = lim->max_topic_alias;
    ack->retain_available = 1;
    ack->wildcard_subscription_available = 1;
    ack->subscription_identifier_available = 1;
    ack->shared_subscription_available = 1;
}

/*
 * A will is published in the client's name after it is gone, so it needs at least the rights a
 * PUBLISH from it would need, checked now (refused at CONNECT rather than dropped later):
 * - nothing under id/: the server's pipeline alone delivers on id/<x>/inbox|ack|reject|sync,
 *   and what a client may publish there (its own outbox and resync) needs the connection that
 *   the will outlives (an envelope is verified and acknowledged to its sender);
 * - elsewhere the ACL file's write rules, as for a PUBLISH.
 */
static bool proto_will_allowed(struct conn *c, const struct mqtt_connect *cn)
{
    LMQ_ASSERT(cn->will_flag);
    if (pipeline_under_id(cn->will_topic.data, cn->will_topic.len)) {
        security_event(c->broker, c, SECURITY_EVENT_ACL_DENIED, "will under id/");
        return false;
    }
    if (sys_tree_topic(cn->will_topic.data, cn->will_topic.len)) {
        security_event(c->broker, c, SECURITY_EVENT_ACL_DENIED, "will under $SYS");
        return false; /* as mosquitto: $SYS is written by the broker only */
    }
    return access_may_publish(c, cn->client_id.data, cn->client_id.len, cn->will_topic.data,
                              cn->will_topic.len);
}

/* The connection limits and max_keepalive (3.1.1); false when the CONNECT was refused. */
static bool proto_connect_admitted(struct conn *c, const struct mqtt_connect *cn)
{
    const struct broker *b = c->broker;
    LMQ_ASSERT(c->state == CONN_AWAIT_CONNECT);
    if (b->connected_count >= b->cfg.limits.max_connections) {
        (void)proto_refuse_connect_why(c, MQTT_RC_QUOTA_EXCEEDED, "max_connections",
                                       "the server has as many connections as it takes");
        return false;
    }
    if (c->refusal_code != 0) {
        (void)proto_refuse_connect_why(c, c->refusal_code, c->refusal_why,
                                       "too many connections from this address");
        return false;
    }
    if (!proto_keepalive_fits(c, cn)) {
        (void)proto_refuse_connect(c, MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID,
                                   "keepalive 0 or above max_keepalive (3.1.1)");
        return false;
    }
    return true;
}

static enum proto_result proto_connect(struct conn *c, struct mqtt_packet *pkt, uint8_t *reason)
{
    struct mqtt_connect cn = pkt->u.connect;
    struct broker *b = c->broker;
    if (c->state != CONN_AWAIT_CONNECT) {
        c->why = "a second CONNECT";
        return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR);
    }
    c->version = cn.protocol_version;
    proto_client_limits(c, &cn);
    bool enhanced = (cn.props.present & (MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD) |
                                         MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA))) != 0;
    uint8_t assigned[PROTO_ASSIGNED_ID_BYTES];
    struct mqtt_props ack = {0};
    if (cn.client_id.len == 0) {
        if (cn.protocol_version != MQTT_V5 && !cn.clean_start)
            return proto_refuse_connect(c, MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID,
                                        "empty client id needs clean session");
        proto_assign_client_id(assigned);
        cn.client_id = (struct lmq_bytes){assigned, sizeof(assigned)};
        if (cn.protocol_version == MQTT_V5) {
            ack.present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);
            ack.assigned_client_identifier = cn.client_id;
        }
    }
    if (!proto_connect_admitted(c, &cn))
        return PROTO_OK; /* refused */
    uint8_t refusal = MQTT_RC_SUCCESS;
    enum proto_result auth =
        enhanced ? enhanced_auth_connect(c, pkt) : pipeline_authenticate(c, &cn, &refusal);
    if (auth == PROTO_PAUSED)
        return PROTO_PAUSED; /* the password is being checked; this runs again after */
    if (auth == PROTO_AUTH_HANDLED)
        return PROTO_OK; /* an AUTH exchange runs (this runs again after it) or it was refused */
    if (auth == PROTO_REFUSE_CONNECT)
        return proto_refuse_connect(c, refusal, "authentication failed");
    LMQ_ASSERT(auth == PROTO_OK);
    if (cn.will_flag && !proto_will_allowed(c, &cn))
        return proto_refuse_connect_why(c, MQTT_RC_NOT_AUTHORIZED, "will topic not allowed",
                                        "not authorized to publish the will on its topic");
    proto_negotiate(c, &cn, &ack);
    enhanced_auth_connack(c, &ack);
    bool present = false;
    if (session_attach(c, &cn, &present, &refusal) != PROTO_OK)
        return proto_refuse_connect_why(
            c, refusal, "session refused",
            refusal == MQTT_RC_QUOTA_EXCEEDED ? "too many persistent sessions (quota)" : NULL);
    struct session *s = c->session;
    if (cn.protocol_version == MQTT_V5 &&
        (cn.props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL)) &&
        s->expiry_s != cn.props.session_expiry_interval_s) {
        ack.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
        ack.session_expiry_interval_s = s->expiry_s;
    }
    char response_info[96];
    if (cn.props.request_response_information) {
        int n = snprintf(response_info, sizeof(response_info), "response/%.*s/",
                         (int)LMQ_MIN(s->client_id_len, 64), (const char *)s->client_id);
        ack.present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_INFORMATION);
        ack.response_information =
            (struct lmq_bytes){(const uint8_t *)response_info, (size_t)LMQ_MAX(n, 0)};
    }
    conn_state_set(c, CONN_CONNECTED);
    c->counted = true;
    b->connected_count++;
    b->connected_by_kind[c->kind]++;
    proto_connack(c, MQTT_RC_SUCCESS, present, &ack);
    conn_start_keepalive(c);
    conn_log_connected(c);
    if (present)
        session_queue_resend_inflight(s);
    session_queue_pump(s);
    return PROTO_OK;
}

/* Resolves a v5 topic alias in place. Returns PROTO_OK or PROTO_DISCONNECT (*reason). */
static enum proto_result proto_topic_alias(struct conn *c, struct mqtt_publish *pub,
                                           uint8_t *reason)
{
    if (!(pub->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
        if (pub->topic.len > 0)
            return PROTO_OK;
        c->why = "a PUBLISH with an empty topic needs a Topic Alias";
        return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR);
    }
    uint16_t alias = pub->props.topic_alias;
    if (alias == 0 || alias > c->topic_alias_max)
        return proto_disconnect_with(reason, MQTT_RC_TOPIC_ALIAS_INVALID);
    if (c->aliases == NULL) {
        c->aliases = calloc((size_t)c->topic_alias_max + 1, sizeof(*c->aliases));
        if (c->aliases == NULL)
            return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    }
    struct lmq_bytes *slot = &c->aliases[alias];
    if (pub->topic.len == 0) {
        if (slot->data == NULL) {
            c->why = "Topic Alias not set on this connection";
            return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR);
        }
        pub->topic = *slot;
        return PROTO_OK;
    }
    uint8_t *copy = malloc(pub->topic.len);
    if (copy == NULL)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    memcpy(copy, pub->topic.data, pub->topic.len);
    free((void *)slot->data);
    *slot = (struct lmq_bytes){copy, pub->topic.len};
    return PROTO_OK;
}

static bool inbound_qos2_has(const struct session *s, uint16_t id)
{
    return s->inbound_qos2 != NULL && (s->inbound_qos2[id >> 3] & (1u << (id & 7)));
}

static int inbound_qos2_set(struct session *s, uint16_t id, bool on)
{
    if (s->inbound_qos2 == NULL) {
        s->inbound_qos2 = calloc(65536 / 8, 1);
        if (s->inbound_qos2 == NULL)
            return LMQ_ENOMEM;
    }
    uint8_t bit = (uint8_t)(1u << (id & 7));
    if (on) {
        LMQ_ASSERT(!(s->inbound_qos2[id >> 3] & bit));
        s->inbound_qos2[id >> 3] |= bit;
        s->inbound_qos2_count++;
    } else {
        LMQ_ASSERT((s->inbound_qos2[id >> 3] & bit) && s->inbound_qos2_count > 0);
        s->inbound_qos2[id >> 3] &= (uint8_t)~bit;
        s->inbound_qos2_count--;
    }
    struct lmq_bytes client_id = {s->client_id, s->client_id_len};
    struct store_record rec = {.type = STORE_INBOUND_QOS2_DELETE,
                               .u.inbound_qos2_delete = {.client_id = client_id, .packet_id = id}};
    if (on)
        rec =
            (struct store_record){.type = STORE_INBOUND_QOS2_PUT,
                                  .u.inbound_qos2_put = {.client_id = client_id, .packet_id = id}};
    if (s->persistent)
        commit_store_write(s->broker, &rec);
    return LMQ_OK;
}

/* Acknowledges a PUBLISH with rc. needs_commit: records were written for it (they must be
 * durable before the ack goes out). why: a refusal's Reason String (a static sentence; NULL:
 * the code's default). PROTO_OK or PROTO_DISCONNECT (*reason). */
static enum proto_result proto_ack_publish(struct conn *c, const struct mqtt_publish *pub,
                                           uint8_t rc, bool needs_commit, const char *why,
                                           uint8_t *reason)
{
    if (pub->qos == 0)
        return PROTO_OK;
    uint8_t type = pub->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
    if (c->version != MQTT_V5 && rc >= 0x80)
        return proto_disconnect_with(reason, rc); /* 3.1.1 can refuse a publish only by closing */
    if (pub->qos == 1)
        c->inbound_pending++;
    else
        c->pubrec_pending++;
    if (commit_ack(c->broker, c, type, pub->packet_id, rc, true, needs_commit, why) != LMQ_OK)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    return PROTO_OK;
}

/* A QoS 2 PUBLISH resent before its PUBREL: PUBREC again, after whatever stored its id (that
 * may be a commit still under way, from this connection or an earlier one). */
static enum proto_result proto_ack_resent_qos2(struct conn *c, const struct mqtt_publish *pub,
                                               uint8_t *reason)
{
    if (commit_ack(c->broker, c, MQTT_PUBREC, pub->packet_id, 0, false, true, NULL) != LMQ_OK)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    return PROTO_OK;
}

/*
 * Whether c may not take one more QoS 1/2 PUBLISH now. MQTT 5: its Receive Maximum counts
 * until PUBACK / PUBCOMP [MQTT-3.3.4-9]. 3.1.1 has no receive maximum, so the broker bounds
 * what it holds for the client: publishes whose PUBACK/PUBREC is not sent yet. (Not the QoS 2
 * ids awaiting PUBREL: those PUBRELs may sit in the input behind the very PUBLISH that would
 * wait for them.)
 */
static bool proto_inbound_window_full(const struct conn *c, const struct mqtt_publish *pub)
{
    uint32_t max = c->broker->cfg.limits.max_inflight;
    if (pub->qos == 0 || (pub->qos == 2 && inbound_qos2_has(c->session, pub->packet_id)))
        return false; /* a resent QoS 2 PUBLISH takes no new slot */
    if (c->version == MQTT_V5)
        return (uint32_t)c->inbound_pending + c->session->inbound_qos2_count >= max;
    return (uint32_t)c->inbound_pending + c->pubrec_pending >= max;
}

/* Validates a publish before anything is routed: PROTO_OK (the PUBLISH is to be acknowledged
 * with *ack_rc right away when that is not MQTT_RC_SUCCESS), PROTO_BLOCKED, or PROTO_DISCONNECT
 * (*reason). */
static enum proto_result proto_publish_check(struct conn *c, struct mqtt_publish *pub,
                                             uint8_t *ack_rc, uint8_t *reason)
{
    *ack_rc = MQTT_RC_SUCCESS;
    if (pub->props.present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER)) {
        c->why = "a PUBLISH from a client may not carry a Subscription Identifier";
        return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR);
    }
    if (c->version == MQTT_V5) {
        enum proto_result rc = proto_topic_alias(c, pub, reason);
        if (rc != PROTO_OK)
            return rc;
    }
    if (proto_inbound_window_full(c, pub)) {
        if (c->version == MQTT_V5)
            return proto_disconnect_with(reason, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED);
        c->wait_acks = true; /* resumed as soon as one of its acks goes out */
        return PROTO_BLOCKED;
    }
    if ((pub->props.present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR)) &&
        pub->props.payload_format_indicator == 1 &&
        !mqtt_utf8_valid(pub->payload.data, pub->payload.len)) {
        if (pub->qos == 0)
            return proto_disconnect_with(reason, MQTT_RC_PAYLOAD_FORMAT_INVALID);
        *ack_rc = MQTT_RC_PAYLOAD_FORMAT_INVALID;
    }
    return PROTO_OK;
}

/*
 * A publish under id/: only to the connection's own outbox (envelopes) or resync topic; the
 * server alone publishes the rest. Nothing under id/ is routed as published.
 */
static enum proto_result proto_publish_identity(struct conn *c, const struct mqtt_publish *pub,
                                                enum pipeline_topic kind, const char *owner,
                                                uint8_t *reason)
{
    struct session *s = c->session;
    /* A bot ([bots] ids) also asks for its events and acknowledges them (src/events/bots.c). */
    bool bot_topic = (kind == PIPELINE_TOPIC_EVENTS_RESYNC || kind == PIPELINE_TOPIC_EVENTS_ACK) &&
                     bots_is_bot(c->broker, c->identity);
    /* A validator bot answers on validate/verdict (src/events/validators.c). */
    bool verdict_topic =
        kind == PIPELINE_TOPIC_VALIDATE_VERDICT && validators_is_validator(c->broker, c->identity);
    /* Nothing under id/ is ever retained: a retained copy would reach later subscribers
     * outside the pipeline's order and survive restarts. */
    if (!pipeline_owns(c, owner) || pub->retain ||
        (kind != PIPELINE_TOPIC_OUTBOX && kind != PIPELINE_TOPIC_RESYNC && !bot_topic &&
         !verdict_topic)) {
        security_event(c->broker, c, SECURITY_EVENT_ACL_DENIED,
                       pub->retain ? "retained publish under id/" : "publish");
        if (c->version != MQTT_V5) /* 3.1.1 can only close */
            return proto_disconnect_with(reason, MQTT_RC_NOT_AUTHORIZED);
        return proto_ack_publish(c, pub, MQTT_RC_NOT_AUTHORIZED, false,
                                 "not authorized: under id/ a client may publish to its own outbox "
                                 "and resync (and a bot to its events/resync and events/ack, a "
                                 "validator to its validate/verdict) only",
                                 reason);
    }
    if (pub->qos == 2 && inbound_qos2_has(s, pub->packet_id))
        return proto_ack_resent_qos2(c, pub, reason); /* not handled twice */
    uint8_t ack_rc = MQTT_RC_SUCCESS;
    if (kind == PIPELINE_TOPIC_OUTBOX) {
        /* Over the identity's rate: 3.1.1 is not read until the next second (PROTO_BLOCKED); an
         * MQTT 5 client is disconnected with 0x96, which PUBACK can't carry. */
        enum proto_result rc = pipeline_accept(c, pub, &ack_rc);
        if (rc != PROTO_OK) {
            LMQ_ASSERT(rc == PROTO_BLOCKED || rc == PROTO_DISCONNECT);
            if (rc == PROTO_DISCONNECT)
                *reason = ack_rc;
            return rc;
        }
    } else if (bot_topic) {
        ack_rc = bots_request(c, kind == PIPELINE_TOPIC_EVENTS_ACK, pub);
    } else if (verdict_topic) {
        ack_rc = validators_verdict(c, pub);
    } else {
        ack_rc = pipeline_resync(c, pub);
    }
    if (pub->qos == 2 && ack_rc < 0x80 && inbound_qos2_set(s, pub->packet_id, true) != LMQ_OK)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    return proto_ack_publish(c, pub, ack_rc, true, NULL, reason);
}

static enum proto_result proto_publish(struct conn *c, struct mqtt_packet *pkt, uint8_t *reason)
{
    struct mqtt_publish *pub = &pkt->u.publish;
    struct session *s = c->session;
    struct broker *b = c->broker;
    LMQ_ASSERT(c->state == CONN_CONNECTED && s != NULL && s->conn == c);
    uint8_t ack_rc;
    enum proto_result rc = proto_publish_check(c, pub, &ack_rc, reason);
    if (rc != PROTO_OK)
        return rc;
    if (ack_rc != MQTT_RC_SUCCESS)
        return proto_ack_publish(c, pub, ack_rc, false, NULL, reason);
    if (sys_tree_topic(pub->topic.data, pub->topic.len)) {
        /* As mosquitto: the broker's own topics; dropped, and MQTT 5 hears 0x87. A 3.1.1 client
         * (which could be told only by closing) gets its ack, as mosquitto sends it. */
        security_event(b, c, SECURITY_EVENT_ACL_DENIED, "publish under $SYS");
        return proto_ack_publish(c, pub,
                                 c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_RC_SUCCESS,
                                 false, "not authorized: $SYS topics are the broker's", reason);
    }
    const char *owner = NULL;
    enum pipeline_topic kind = pipeline_topic_parse(pub->topic.data, pub->topic.len, &owner);
    if (kind != PIPELINE_TOPIC_NONE)
        return proto_publish_identity(c, pub, kind, owner, reason);
    if (!access_may_publish(c, s->client_id, s->client_id_len, pub->topic.data, pub->topic.len)) {
        if (c->version != MQTT_V5) /* 3.1.1 can only close */
            return proto_disconnect_with(reason, MQTT_RC_NOT_AUTHORIZED);
        return proto_ack_publish(c, pub, MQTT_RC_NOT_AUTHORIZED, false, NULL, reason);
    }
    if (pub->qos == 2 && inbound_qos2_has(s, pub->packet_id))
        return proto_ack_resent_qos2(c, pub, reason); /* not routed twice */
    struct msg *m = msg_create(b, pub);
    if (m == NULL)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    uint64_t records_before = b->records_written;
    int route_rc = MQTT_RC_QUOTA_EXCEEDED;
    const char *why = "a subscriber's queue is full";
    if (m->stored.qos > 0 && b->disk_low)
        why = "free disk space below min_free_disk";
    else if (!m->stored.retain || retain_fits(b, m))
        route_rc = route_publish(b, m, s);
    else
        why = "the retained message store is full";
    if (route_rc == ROUTE_HELD) {
        msg_unref(m); /* a subscriber that is there is behind: wait for it, any version */
        return PROTO_BLOCKED;
    }
    if (route_rc == MQTT_RC_QUOTA_EXCEEDED) {
        b->stats.refused_quota++;
        conn_log(c, LMQ_LOG_WARN, "publish_refused", why);
        msg_unref(m);
        if (c->version != MQTT_V5)
            return PROTO_BLOCKED; /* backpressure: retried when queues drain */
        return proto_ack_publish(c, pub, MQTT_RC_QUOTA_EXCEEDED, false, why, reason);
    }
    if (m->stored.retain && retain_update(b, m) != MQTT_RC_SUCCESS)
        route_rc = MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR; /* fit was checked: out of memory */
    /* The message itself was written (once) by whatever queued or retained it durably. */
    /* Routed: its deliveries and ack wait for the batch it is in, or for nothing. */
    LMQ_ASSERT(m->committed || m->batched || route_rc == MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    msg_unref(m);
    if (pub->qos == 2 && inbound_qos2_set(s, pub->packet_id, true) != LMQ_OK)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    LMQ_ASSERT(route_rc >= 0 && route_rc <= 0xFF);
    return proto_ack_publish(c, pub, (uint8_t)route_rc, b->records_written != records_before, NULL,
                             reason);
}

static enum proto_result proto_pubrel(struct conn *c, struct mqtt_packet *pkt, uint8_t *reason)
{
    struct session *s = c->session;
    uint16_t id = pkt->u.ack.packet_id;
    uint8_t rc = MQTT_RC_SUCCESS;
    uint64_t records_before = c->broker->records_written;
    LMQ_ASSERT(s != NULL && s->conn == c);
    if (inbound_qos2_has(s, id)) {
        if (inbound_qos2_set(s, id, false) != LMQ_OK)
            return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
        LMQ_ASSERT(!inbound_qos2_has(s, id));
    } else if (c->version == MQTT_V5) {
        rc = MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND;
    }
    if (commit_ack(c->broker, c, MQTT_PUBCOMP, id, rc, false,
                   c->broker->records_written != records_before, NULL) != LMQ_OK)
        return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
    return PROTO_OK;
}

static enum proto_result proto_flow_ack(struct conn *c, struct mqtt_packet *pkt)
{
    uint16_t id = pkt->u.ack.packet_id;
    LMQ_ASSERT(c->session != NULL && c->session->conn == c);
    LMQ_ASSERT(pkt->type == MQTT_PUBACK || pkt->type == MQTT_PUBREC || pkt->type == MQTT_PUBCOMP);
    if (session_queue_ack(c->session, pkt->type, id, pkt->u.ack.reason_code) == LMQ_OK)
        return PROTO_OK;
    conn_log(c, LMQ_LOG_DEBUG, "unknown_packet_id", mqtt_packet_type_name(pkt->type));
    if (pkt->type == MQTT_PUBREC && c->version == MQTT_V5) {
        struct mqtt_packet rel = {.type = MQTT_PUBREL};
        rel.u.ack.packet_id = id;
        rel.u.ack.reason_code = MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND;
        (void)conn_send(c, &rel);
    }
    return PROTO_OK;
}

static enum proto_result proto_disconnect(struct conn *c, struct mqtt_packet *pkt, uint8_t *reason)
{
    const struct mqtt_disconnect *d = &pkt->u.disconnect;
    struct session *s = c->session;
    LMQ_ASSERT(c->state == CONN_CONNECTED && s != NULL && s->conn == c);
    if (c->version == MQTT_V5 &&
        (d->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL))) {
        if (c->session_expiry_was_zero && d->props.session_expiry_interval_s != 0) {
            c->why = "Session Expiry Interval set at DISCONNECT after 0 at CONNECT";
            return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR);
        }
        /* The same cap as at CONNECT: an anonymous client can't ask for more here either. */
        s->expiry_s =
            LMQ_MIN(d->props.session_expiry_interval_s, session_expiry_cap(c->broker, s->owner));
        s->persistent = s->expiry_s > 0;
    }
    c->will_on_close = c->version == MQTT_V5 && d->reason_code == MQTT_RC_DISCONNECT_WITH_WILL;
    conn_log(c, LMQ_LOG_DEBUG, "client_disconnect", NULL);
    /* 3.1.1's DISCONNECT has no reason code. */
    conn_log_disconnected(c, "client", "client_disconnect",
                          c->version == MQTT_V5 ? (int)d->reason_code : -1, NULL);
    conn_close(c);
    return PROTO_OK;
}

enum proto_result proto_handle_packet(struct conn *c, struct mqtt_packet *pkt, uint8_t *reason)
{
    LMQ_ASSERT(c != NULL && pkt != NULL && reason != NULL);
    if (pkt->type == MQTT_AUTH || enhanced_auth_pending(c))
        return enhanced_auth_packet(c, pkt, reason);
    if (pkt->type == MQTT_CONNECT)
        return proto_connect(c, pkt, reason);
    LMQ_ASSERT(c->state == CONN_CONNECTED && c->session != NULL);
    switch (pkt->type) {
    case MQTT_PUBLISH:
        return proto_publish(c, pkt, reason);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        return proto_flow_ack(c, pkt);
    case MQTT_PUBREL:
        return proto_pubrel(c, pkt, reason);
    case MQTT_SUBSCRIBE:
        return subscribe_packet(c, pkt, reason);
    case MQTT_UNSUBSCRIBE:
        return subscribe_unsubscribe_packet(c, pkt, reason);
    case MQTT_PINGREQ: {
        struct mqtt_packet resp = {.type = MQTT_PINGRESP};
        (void)conn_send(c, &resp);
        return PROTO_OK;
    }
    case MQTT_DISCONNECT:
        return proto_disconnect(c, pkt, reason);
    default:
        /* CONNACK, SUBACK, UNSUBACK, PINGRESP are server packets. */
        conn_log(c, LMQ_LOG_INFO, "protocol_error", mqtt_packet_type_name(pkt->type));
        c->why = "packet type not accepted from a client";
        return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR);
    }
}
