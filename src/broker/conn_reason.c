/*
 * MQTT 5 diagnostics the broker sends: the Reason String that says, in a short English
 * sentence, why something was refused, and the rules that decide whether a packet may carry
 * it (and User Properties) at all:
 *
 * - Request Problem Information 0 in CONNECT: none on anything but PUBLISH, CONNACK and
 *   DISCONNECT [MQTT-3.1.2-29];
 * - never when it would make the packet larger than the client's Maximum Packet Size
 *   [MQTT-3.2.2-19/20, 3.4.2-2/3 and the like for every other packet]: it is dropped then.
 *
 * The texts are static and name no other client, topic or principal: a client learns why it
 * was refused, nothing about anybody else.
 */
#include "broker/broker_internal.h"

#include <string.h>

/* Texts that depend on the packet: what a 0x87 or 0x97 refused. */
static const char *conn_reason_text_for(uint8_t type, uint8_t reason_code)
{
    bool publish_ack = type == MQTT_PUBACK || type == MQTT_PUBREC;
    if (reason_code == MQTT_RC_NOT_AUTHORIZED && publish_ack)
        return "not authorized by the ACL";
    if (reason_code == MQTT_RC_NOT_AUTHORIZED && type == MQTT_SUBACK)
        return "not authorized to subscribe to that filter (id/ topic rules)";
    if (reason_code == MQTT_RC_QUOTA_EXCEEDED && publish_ack)
        return "a subscriber's queue is full";
    if (reason_code == MQTT_RC_QUOTA_EXCEEDED && type == MQTT_SUBACK)
        return "too many subscriptions for this session";
    return NULL;
}

const char *conn_reason_text(uint8_t type, uint8_t reason_code)
{
    const char *text = conn_reason_text_for(type, reason_code);
    if (text != NULL)
        return text;
    switch (reason_code) {
    case MQTT_RC_UNSPECIFIED_ERROR:
        return "unspecified error";
    case MQTT_RC_MALFORMED_PACKET:
        return "malformed packet";
    case MQTT_RC_PROTOCOL_ERROR:
        return "protocol error";
    case MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR:
        return "the server could not handle this (out of memory)";
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
        return "only MQTT 3.1.1 and 5.0 are supported";
    case MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID:
        return "client identifier not valid";
    case MQTT_RC_BAD_USER_NAME_OR_PASSWORD:
        return "bad user name, password or login token";
    case MQTT_RC_NOT_AUTHORIZED:
        return "not authorized";
    case MQTT_RC_SERVER_UNAVAILABLE:
        return "server unavailable";
    case MQTT_RC_SERVER_BUSY:
        return "server busy, try again later";
    case MQTT_RC_BANNED:
        return "banned";
    case MQTT_RC_SERVER_SHUTTING_DOWN:
        return "server shutting down";
    case MQTT_RC_BAD_AUTHENTICATION_METHOD:
        return "authentication method not supported";
    case MQTT_RC_KEEP_ALIVE_TIMEOUT:
        return "nothing received for 1.5 times the keep alive";
    case MQTT_RC_SESSION_TAKEN_OVER:
        return "another connection took over the session";
    case MQTT_RC_TOPIC_FILTER_INVALID:
        return "topic filter not valid";
    case MQTT_RC_TOPIC_NAME_INVALID:
        return "topic name not valid";
    case MQTT_RC_PACKET_IDENTIFIER_IN_USE:
        return "packet identifier in use";
    case MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND:
        return "packet identifier not found";
    case MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED:
        return "more unacknowledged QoS 1 and 2 PUBLISHes than the server's Receive Maximum";
    case MQTT_RC_TOPIC_ALIAS_INVALID:
        return "topic alias 0 or above the server's Topic Alias Maximum";
    case MQTT_RC_PACKET_TOO_LARGE:
        return "packet larger than the server's Maximum Packet Size";
    case MQTT_RC_MESSAGE_RATE_TOO_HIGH:
        return "message rate too high";
    case MQTT_RC_QUOTA_EXCEEDED:
        return "quota exceeded";
    case MQTT_RC_ADMINISTRATIVE_ACTION:
        return "administrative action";
    case MQTT_RC_PAYLOAD_FORMAT_INVALID:
        return "payload is not UTF-8 though its Payload Format Indicator says so";
    case MQTT_RC_CONNECTION_RATE_EXCEEDED:
        return "too many connections from this address";
    case MQTT_RC_MAXIMUM_CONNECT_TIME:
        return "the login token expired";
    default:
        return reason_code >= 0x80 ? "refused" : NULL;
    }
}

/* The properties of the packet types that carry a Reason String; NULL for the others. */
static struct mqtt_props *conn_reason_props(struct mqtt_packet *pkt, uint8_t *reason_code)
{
    switch (pkt->type) {
    case MQTT_CONNACK:
        *reason_code = pkt->u.connack.reason_code;
        return &pkt->u.connack.props;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        *reason_code = pkt->u.ack.reason_code;
        return &pkt->u.ack.props;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        *reason_code = 0;
        for (size_t i = 0; i < pkt->u.suback.reason_codes.len; i++) {
            if (pkt->u.suback.reason_codes.data[i] >= 0x80) {
                *reason_code = pkt->u.suback.reason_codes.data[i]; /* the first refusal */
                break;
            }
        }
        return &pkt->u.suback.props;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        *reason_code = pkt->u.disconnect.reason_code;
        return &pkt->u.disconnect.props;
    default:
        return NULL;
    }
}

static void conn_reason_strip(struct mqtt_props *props)
{
    props->present &= ~MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    props->reason_string = (struct lmq_bytes){0};
    props->user_props = (struct lmq_bytes){0};
    props->user_prop_count = 0;
}

int conn_reason_fit(const struct conn *c, struct mqtt_packet *pkt, size_t *size_bytes)
{
    LMQ_ASSERT(c != NULL && pkt != NULL && size_bytes != NULL);
    LMQ_ASSERT(c->version == MQTT_V5 && pkt->type != MQTT_PUBLISH);
    uint8_t reason_code = 0;
    struct mqtt_props *props = conn_reason_props(pkt, &reason_code);
    if (props != NULL) {
        bool always = pkt->type == MQTT_CONNACK || pkt->type == MQTT_DISCONNECT;
        if (!always && !c->request_problem_info) {
            conn_reason_strip(props); /* [MQTT-3.1.2-29] */
        } else if (!(props->present & MQTT_PROP_BIT(MQTT_PROP_REASON_STRING))) {
            /* A refusal says why, in the code's words when the handler had no better ones. */
            const char *text = conn_reason_text(pkt->type, reason_code);
            if (text != NULL && reason_code >= 0x80) {
                props->present |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
                props->reason_string = (struct lmq_bytes){(const uint8_t *)text, strlen(text)};
            }
        }
    }
    int rc = mqtt_encoded_size(pkt, c->version, size_bytes);
    if (rc != LMQ_OK || *size_bytes <= c->max_packet_out || props == NULL)
        return rc;
    /* Too large for the client with its diagnostics: sent without them. */
    conn_reason_strip(props);
    rc = mqtt_encoded_size(pkt, c->version, size_bytes);
    LMQ_ASSERT(rc == LMQ_OK);
    return rc;
}
