/*
 * MQTT 3.1.1 and 5.0 packet codec: pure functions over bounded buffers.
 * No I/O, no global state, no allocation. Decoded packets hold slices
 * (struct lmq_bytes) that point into the caller's input buffer, so the
 * input must outlive the decoded packet.
 */
#ifndef MQTT_CODEC_H
#define MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

/* Protocol levels as carried in CONNECT. */
#define MQTT_V311 4
#define MQTT_V5 5

/* Largest remaining length the variable-byte integer can express. */
#define MQTT_REMAINING_LENGTH_MAX 268435455u
/* Subscription identifiers one decoded PUBLISH can carry (server->client). */
#define MQTT_SUB_IDS_MAX 32
/* Largest subscription identifier (variable byte integer). */
#define MQTT_SUB_ID_MAX 268435455u

enum mqtt_packet_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* MQTT 5 reason codes (also used internally to say why a packet was refused). */
enum mqtt_reason_code {
    MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
    MQTT_RC_GRANTED_QOS_1 = 0x01,
    MQTT_RC_GRANTED_QOS_2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED_ERROR = 0x80,
    MQTT_RC_MALFORMED_PACKET = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR = 0x83,
    MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID = 0x85,
    MQTT_RC_BAD_USER_NAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_IDENTIFIER_IN_USE = 0x91,
    MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1.1 CONNACK return codes. */
enum mqtt_connack_v311 {
    MQTT_CONNACK_V311_ACCEPTED = 0x00,
    MQTT_CONNACK_V311_BAD_PROTOCOL_VERSION = 0x01,
    MQTT_CONNACK_V311_IDENTIFIER_REJECTED = 0x02,
    MQTT_CONNACK_V311_SERVER_UNAVAILABLE = 0x03,
    MQTT_CONNACK_V311_BAD_USERNAME_OR_PASSWORD = 0x04,
    MQTT_CONNACK_V311_NOT_AUTHORIZED = 0x05,
};

/* MQTT 5 property identifiers. */
enum mqtt_property_id {
    MQTT_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B,
    MQTT_PROP_SESSION_EXPIRY_INTERVAL = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTHENTICATION_METHOD = 0x15,
    MQTT_PROP_AUTHENTICATION_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFORMATION = 0x17,
    MQTT_PROP_WILL_DELAY_INTERVAL = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFORMATION = 0x19,
    MQTT_PROP_RESPONSE_INFORMATION = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAXIMUM_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28,
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A,
};

/* Bit for property id in struct mqtt_props.present. */
#define MQTT_PROP_BIT(id) (UINT64_C(1) << (id))

/*
 * Every MQTT 5 property. A property is present when its bit is set in
 * `present` (MQTT_PROP_BIT(id)). User properties stay in their encoded form
 * (a sequence of 0x26 key value entries) in `user_props`, so they can be
 * passed through unchanged; iterate them with mqtt_user_prop_next().
 */
struct mqtt_props {
    uint64_t present;
    uint8_t payload_format_indicator;
    uint32_t message_expiry_interval_s;
    struct lmq_bytes content_type;
    struct lmq_bytes response_topic;
    struct lmq_bytes correlation_data;
    uint32_t subscription_ids[MQTT_SUB_IDS_MAX];
    size_t subscription_id_count;
    uint32_t session_expiry_interval_s;
    struct lmq_bytes assigned_client_identifier;
    uint16_t server_keep_alive_s;
    struct lmq_bytes authentication_method;
    struct lmq_bytes authentication_data;
    uint8_t request_problem_information;
    uint32_t will_delay_interval_s;
    uint8_t request_response_information;
    struct lmq_bytes response_information;
    struct lmq_bytes server_reference;
    struct lmq_bytes reason_string;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint8_t maximum_qos;
    uint8_t retain_available;
    struct lmq_bytes user_props; /* encoded 0x26 entries, may be empty */
    uint32_t user_prop_count;
    uint32_t maximum_packet_size;
    uint8_t wildcard_subscription_available;
    uint8_t subscription_identifier_available;
    uint8_t shared_subscription_available;
};

struct mqtt_connect {
    uint8_t protocol_version; /* MQTT_V311 or MQTT_V5 (3 = MQTT 3.1 is refused) */
    bool clean_start;
    uint16_t keep_alive_s;
    struct mqtt_props props;
    struct lmq_bytes client_id;
    bool will_flag;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_props will_props;
    struct lmq_bytes will_topic;
    struct lmq_bytes will_payload;
    bool has_username;
    struct lmq_bytes username;
    bool has_password;
    struct lmq_bytes password;
};

struct mqtt_connack {
    bool session_present;
    uint8_t reason_code; /* v5 reason code, or v3.1.1 return code */
    struct mqtt_props props;
};

struct mqtt_publish {
    bool dup;
    uint8_t qos;
    bool retain;
    struct lmq_bytes topic; /* may be empty in v5 when a topic alias is present */
    uint16_t packet_id;     /* 0 for QoS 0 */
    struct mqtt_props props;
    struct lmq_bytes payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason_code;
    struct mqtt_props props;
};

/* Subscription options byte layout. */
#define MQTT_SUBOPT_QOS_MASK 0x03
#define MQTT_SUBOPT_NO_LOCAL 0x04
#define MQTT_SUBOPT_RETAIN_AS_PUBLISHED 0x08
#define MQTT_SUBOPT_RETAIN_HANDLING_SHIFT 4
#define MQTT_SUBOPT_RETAIN_HANDLING_MASK 0x30

struct mqtt_sub_entry {
    struct lmq_bytes filter;
    uint8_t options; /* for v3.1.1 only the QoS bits are used */
};

/*
 * SUBSCRIBE. Decoding validates every entry, counts them in entry_count and
 * leaves the raw payload in `payload` (entries == NULL); walk it with
 * mqtt_subscribe_next(). Encoding reads `entries`/`entry_count`.
 */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    const struct mqtt_sub_entry *entries;
    size_t entry_count;
    struct lmq_bytes payload;
};

/* UNSUBSCRIBE: same scheme as SUBSCRIBE, with filters only. */
struct mqtt_unsubscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    const struct lmq_bytes *filters;
    size_t filter_count;
    struct lmq_bytes payload;
};

/* SUBACK and UNSUBACK: one reason code per entry (v3.1.1 UNSUBACK has none). */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    struct lmq_bytes reason_codes;
};

/* DISCONNECT and AUTH. */
struct mqtt_disconnect {
    uint8_t reason_code;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type; /* enum mqtt_packet_type */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe;
        struct mqtt_suback suback;
        struct mqtt_unsubscribe unsubscribe;
        struct mqtt_disconnect disconnect;
    } u;
};

/*
 * Parses a fixed header at the start of buf[0..len).
 * Returns 0 and sets *first_byte, *remaining_len and *header_len when the
 * header is complete; LMQ_EAGAIN when more bytes are needed; LMQ_EPROTO when
 * the remaining length is malformed (more than 4 bytes).
 */
int mqtt_fixed_header_parse(const uint8_t *buf, size_t len, uint8_t *first_byte,
                            uint32_t *remaining_len, size_t *header_len);

/*
 * Decodes exactly one complete packet, buf[0..len) = fixed header + body.
 * `version` is the connection's protocol level (ignored for CONNECT, whose
 * level is read from the packet). Returns 0, or LMQ_EPROTO with
 * *reason_code set to the MQTT 5 reason code to answer with (usually
 * MQTT_RC_MALFORMED_PACKET or MQTT_RC_PROTOCOL_ERROR;
 * MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION for a CONNECT with an unknown level,
 * in which case pkt->u.connect.protocol_version holds the level seen).
 */
int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, struct mqtt_packet *pkt,
                uint8_t *reason_code);

/* Computes the encoded size of pkt in bytes (fixed header included). */
int mqtt_encoded_size(const struct mqtt_packet *pkt, uint8_t version, size_t *size_bytes);

/*
 * Encodes pkt for protocol `version` into out[0..cap). Returns 0 and sets
 * *written, LMQ_ETOOBIG when cap is too small, LMQ_EINVAL when pkt cannot be
 * expressed (e.g. a field out of range). Properties are written only for v5.
 */
int mqtt_encode(const struct mqtt_packet *pkt, uint8_t version, uint8_t *out, size_t cap,
                size_t *written);

/* Walks a decoded SUBSCRIBE payload; returns true and fills *entry, false at the end. */
bool mqtt_subscribe_next(struct lmq_bytes *cursor, uint8_t version, struct mqtt_sub_entry *entry);

/* Walks a decoded UNSUBSCRIBE payload; returns true and fills *filter, false at the end. */
bool mqtt_unsubscribe_next(struct lmq_bytes *cursor, struct lmq_bytes *filter);

/* Walks encoded user properties; returns true and fills key/value, false at the end. */
bool mqtt_user_prop_next(struct lmq_bytes *cursor, struct lmq_bytes *key, struct lmq_bytes *value);

/* Appends one encoded user property (0x26 key value) to out; LMQ_ETOOBIG when it does not fit. */
int mqtt_user_prop_append(uint8_t *out, size_t cap, size_t *used, const char *key,
                          const char *value);

/* Returns a static name for a packet type ("PUBLISH"), "UNKNOWN" otherwise. */
const char *mqtt_packet_type_name(uint8_t type);

#endif
