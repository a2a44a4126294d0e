/*
 * MQTT 3.1.1 / 5.0 packet codec.
 *
 * Decoding reads through a bounded cursor (struct codec_rd): every read checks
 * the bytes left first, so no path can read past len. A failed read is a
 * Malformed Packet. Decoders report why a packet was refused through
 * struct codec_dec.reason and return LMQ_EPROTO; they own no resources, so
 * they return early instead of using a cleanup label.
 *
 * Encoding runs the same body writer twice: once counting (out == NULL) to
 * validate the packet and learn its remaining length, once writing. So
 * mqtt_encoded_size() and mqtt_encode() cannot disagree, and a packet that
 * does not fit is refused before a byte is written.
 */
#include "mqtt/mqtt_codec.h"

#include <stddef.h>
#include <string.h>

#include "core/lmq.h"
#include "mqtt/mqtt_topic.h"

#define CODEC_STR_LEN_MAX 65535u
#define CODEC_VBI_BYTES_MAX 4u

/* ---------------------------------------------------------------------------------------------
 * Property table (MQTT 5.0 §2.2.2.2). `ctx` holds one bit per packet type that may carry the
 * property; bit 0 (packet type 0 is reserved) stands for the will properties of CONNECT.
 */
enum codec_prop_type { PT_BYTE, PT_U16, PT_U32, PT_VBI, PT_STR, PT_BIN, PT_PAIR };

#define PF_BOOL 0x01u    /* value must be 0 or 1 */
#define PF_NONZERO 0x02u /* value 0 is a protocol error */
#define PF_TOPIC 0x04u   /* must be a valid topic name */

#define CTX_WILL 0u
#define C(t) (1u << (t))
#define C_PUBLISH_WILL (C(MQTT_PUBLISH) | C(CTX_WILL))
#define C_ALL                                                                                      \
    (C(MQTT_CONNECT) | C(MQTT_CONNACK) | C_PUBLISH_WILL | C(MQTT_PUBACK) | C(MQTT_PUBREC) |        \
     C(MQTT_PUBREL) | C(MQTT_PUBCOMP) | C(MQTT_SUBSCRIBE) | C(MQTT_SUBACK) | C(MQTT_UNSUBSCRIBE) | \
     C(MQTT_UNSUBACK) | C(MQTT_DISCONNECT) | C(MQTT_AUTH))
#define C_ACKS                                                                                     \
    (C(MQTT_CONNACK) | C(MQTT_PUBACK) | C(MQTT_PUBREC) | C(MQTT_PUBREL) | C(MQTT_PUBCOMP) |        \
     C(MQTT_SUBACK) | C(MQTT_UNSUBACK) | C(MQTT_DISCONNECT) | C(MQTT_AUTH))

struct codec_prop_def {
    uint8_t id;
    uint8_t type;  /* enum codec_prop_type */
    uint8_t flags; /* PF_* */
    uint16_t ctx;
    size_t offset; /* field in struct mqtt_props; unused for 0x0B and 0x26 */
};

#define P(field) offsetof(struct mqtt_props, field)
/* Sorted by id: the encoder writes properties in this order. */
static const struct codec_prop_def codec__props[] = {
    {0x01, PT_BYTE, PF_BOOL, C_PUBLISH_WILL, P(payload_format_indicator)},
    {0x02, PT_U32, 0, C_PUBLISH_WILL, P(message_expiry_interval_s)},
    {0x03, PT_STR, 0, C_PUBLISH_WILL, P(content_type)},
    {0x08, PT_STR, PF_TOPIC, C_PUBLISH_WILL, P(response_topic)},
    {0x09, PT_BIN, 0, C_PUBLISH_WILL, P(correlation_data)},
    {0x0B, PT_VBI, PF_NONZERO, C(MQTT_PUBLISH) | C(MQTT_SUBSCRIBE), 0},
    {0x11, PT_U32, 0, C(MQTT_CONNECT) | C(MQTT_CONNACK) | C(MQTT_DISCONNECT),
     P(session_expiry_interval_s)},
    {0x12, PT_STR, 0, C(MQTT_CONNACK), P(assigned_client_identifier)},
    {0x13, PT_U16, 0, C(MQTT_CONNACK), P(server_keep_alive_s)},
    {0x15, PT_STR, 0, C(MQTT_CONNECT) | C(MQTT_CONNACK) | C(MQTT_AUTH), P(authentication_method)},
    {0x16, PT_BIN, 0, C(MQTT_CONNECT) | C(MQTT_CONNACK) | C(MQTT_AUTH), P(authentication_data)},
    {0x17, PT_BYTE, PF_BOOL, C(MQTT_CONNECT), P(request_problem_information)},
    {0x18, PT_U32, 0, C(CTX_WILL), P(will_delay_interval_s)},
    {0x19, PT_BYTE, PF_BOOL, C(MQTT_CONNECT), P(request_response_information)},
    {0x1A, PT_STR, 0, C(MQTT_CONNACK), P(response_information)},
    {0x1C, PT_STR, 0, C(MQTT_CONNACK) | C(MQTT_DISCONNECT), P(server_reference)},
    {0x1F, PT_STR, 0, C_ACKS, P(reason_string)},
    {0x21, PT_U16, PF_NONZERO, C(MQTT_CONNECT) | C(MQTT_CONNACK), P(receive_maximum)},
    {0x22, PT_U16, 0, C(MQTT_CONNECT) | C(MQTT_CONNACK), P(topic_alias_maximum)},
    {0x23, PT_U16, 0, C(MQTT_PUBLISH), P(topic_alias)},
    {0x24, PT_BYTE, PF_BOOL, C(MQTT_CONNACK), P(maximum_qos)},
    {0x25, PT_BYTE, PF_BOOL, C(MQTT_CONNACK), P(retain_available)},
    {0x26, PT_PAIR, 0, C_ALL, 0},
    {0x27, PT_U32, PF_NONZERO, C(MQTT_CONNECT) | C(MQTT_CONNACK), P(maximum_packet_size)},
    {0x28, PT_BYTE, PF_BOOL, C(MQTT_CONNACK), P(wildcard_subscription_available)},
    {0x29, PT_BYTE, PF_BOOL, C(MQTT_CONNACK), P(subscription_identifier_available)},
    {0x2A, PT_BYTE, PF_BOOL, C(MQTT_CONNACK), P(shared_subscription_available)},
};
#undef P

static const struct codec_prop_def *codec__prop_def(uint32_t id)
{
    for (size_t i = 0; i < LMQ_ARRAY_LEN(codec__props); i++) {
        if (codec__props[i].id == id) {
            return &codec__props[i];
        }
    }
    return NULL;
}

/* Reason codes each packet type may carry in v5 (MQTT 5.0 §2.4 table 2-6). */
static const uint8_t codec__rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                            0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                            0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t codec__rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t codec__rc_pubrel[] = {0x00, 0x92};
static const uint8_t codec__rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                           0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t codec__rc_suback_v311[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t codec__rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t codec__rc_disconnect[] = {
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t codec__rc_auth[] = {0x00, 0x18, 0x19};

static bool codec__rc_allowed(uint8_t type, uint8_t version, uint8_t rc)
{
    const uint8_t *set = NULL;
    size_t n = 0;

#define RC_SET(a) (set = (a), n = sizeof(a))
    switch (type) {
    case MQTT_CONNACK:
        if (version == MQTT_V311) {
            return rc <= MQTT_CONNACK_V311_NOT_AUTHORIZED;
        }
        RC_SET(codec__rc_connack);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
        RC_SET(codec__rc_puback);
        break;
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        RC_SET(codec__rc_pubrel);
        break;
    case MQTT_SUBACK:
        if (version == MQTT_V311) {
            RC_SET(codec__rc_suback_v311);
        } else {
            RC_SET(codec__rc_suback);
        }
        break;
    case MQTT_UNSUBACK:
        RC_SET(codec__rc_unsuback);
        break;
    case MQTT_DISCONNECT:
        RC_SET(codec__rc_disconnect);
        break;
    case MQTT_AUTH:
        RC_SET(codec__rc_auth);
        break;
    default:
        return false;
    }
#undef RC_SET
    LMQ_ASSERT(set != NULL && n > 0);
    return memchr(set, rc, n) != NULL;
}

/* Checks a property's value constraints; returns 0 or the reason code that refuses it. */
static uint8_t codec__prop_value_check(const struct codec_prop_def *def, uint32_t number,
                                       struct lmq_bytes str)
{
    if ((def->flags & PF_BOOL) && number > 1) {
        return MQTT_RC_PROTOCOL_ERROR;
    }
    if ((def->flags & PF_NONZERO) && number == 0) {
        return MQTT_RC_PROTOCOL_ERROR;
    }
    if ((def->flags & PF_TOPIC) && !mqtt_topic_name_valid(str.data, str.len)) {
        return MQTT_RC_PROTOCOL_ERROR;
    }
    return MQTT_RC_SUCCESS;
}

/* ---------------------------------------------------------------------------------------------
 * Bounded reader.
 */
struct codec_rd {
    const uint8_t *buf;
    size_t len;
    size_t pos;
};

static size_t rd__left(const struct codec_rd *r)
{
    LMQ_ASSERT(r->pos <= r->len);
    return r->len - r->pos;
}

static bool rd__u8(struct codec_rd *r, uint8_t *v)
{
    if (rd__left(r) < 1) {
        return false;
    }
    *v = r->buf[r->pos++];
    return true;
}

static bool rd__u16(struct codec_rd *r, uint16_t *v)
{
    if (rd__left(r) < 2) {
        return false;
    }
    *v = (uint16_t)((r->buf[r->pos] << 8) | r->buf[r->pos + 1]);
    r->pos += 2;
    return true;
}

static bool rd__u32(struct codec_rd *r, uint32_t *v)
{
    if (rd__left(r) < 4) {
        return false;
    }
    const uint8_t *p = r->buf + r->pos;
    *v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    r->pos += 4;
    return true;
}

static bool rd__take(struct codec_rd *r, size_t n, struct lmq_bytes *b)
{
    if (rd__left(r) < n) {
        return false;
    }
    b->data = r->buf + r->pos;
    b->len = n;
    r->pos += n;
    return true;
}

/* Two-byte length then that many bytes (Binary Data / UTF-8 String without the UTF-8 check). */
static bool rd__bin(struct codec_rd *r, struct lmq_bytes *b)
{
    uint16_t n = 0;
    return rd__u16(r, &n) && rd__take(r, n, b);
}

/* UTF-8 Encoded String: a Binary Data field whose bytes must be valid MQTT UTF-8. */
static bool rd__str(struct codec_rd *r, struct lmq_bytes *b)
{
    return rd__bin(r, b) && mqtt_utf8_valid(b->data, b->len);
}

/*
 * Variable Byte Integer: at most 4 bytes, minimal encoding [MQTT-1.5.5-1].
 * Returns 0, LMQ_EAGAIN when the input ends inside it, LMQ_EPROTO when malformed.
 */
static int codec__vbi_parse(const uint8_t *buf, size_t len, uint32_t *value, size_t *used)
{
    uint32_t v = 0;

    for (size_t i = 0; i < CODEC_VBI_BYTES_MAX; i++) {
        if (i >= len) {
            return LMQ_EAGAIN;
        }
        uint8_t b = buf[i];
        v |= (uint32_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            if (i > 0 && b == 0) {
                return LMQ_EPROTO; /* non-minimal: a trailing zero group */
            }
            *value = v;
            *used = i + 1;
            LMQ_ASSERT(v <= MQTT_REMAINING_LENGTH_MAX);
            return 0;
        }
    }
    return LMQ_EPROTO;
}

static bool rd__vbi(struct codec_rd *r, uint32_t *v)
{
    size_t used = 0;
    if (codec__vbi_parse(r->buf + r->pos, rd__left(r), v, &used) != 0) {
        return false;
    }
    r->pos += used;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Decoder state and properties.
 */
struct codec_dec {
    struct codec_rd r;
    uint8_t version;
    uint8_t reason;
};

static int dec__fail(struct codec_dec *d, uint8_t reason)
{
    LMQ_ASSERT(reason >= MQTT_RC_UNSPECIFIED_ERROR);
    d->reason = reason;
    return LMQ_EPROTO;
}

/* Reads one property value of def's type; returns false when the bytes are malformed. */
static bool dec__prop_value(struct codec_rd *r, const struct codec_prop_def *def, uint32_t *num,
                            struct lmq_bytes *str)
{
    uint8_t u8 = 0;
    uint16_t u16 = 0;
    struct lmq_bytes value = {0};

    switch (def->type) {
    case PT_BYTE:
        if (!rd__u8(r, &u8)) {
            return false;
        }
        *num = u8;
        return true;
    case PT_U16:
        if (!rd__u16(r, &u16)) {
            return false;
        }
        *num = u16;
        return true;
    case PT_U32:
        return rd__u32(r, num);
    case PT_VBI:
        return rd__vbi(r, num);
    case PT_STR:
        return rd__str(r, str);
    case PT_BIN:
        return rd__bin(r, str);
    case PT_PAIR:
        return rd__str(r, str) && rd__str(r, &value);
    default:
        LMQ_UNREACHABLE("unknown property type");
        return false;
    }
}

/* Stores a decoded value in its struct mqtt_props field. */
static void props__store(struct mqtt_props *props, const struct codec_prop_def *def, uint32_t num,
                         struct lmq_bytes str)
{
    uint8_t *field = (uint8_t *)props + def->offset;

    LMQ_ASSERT(def->id != MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    LMQ_ASSERT(def->id != MQTT_PROP_USER_PROPERTY);
    switch (def->type) {
    case PT_BYTE:
        *field = (uint8_t)num;
        break;
    case PT_U16:
        *(uint16_t *)(void *)field = (uint16_t)num;
        break;
    case PT_U32:
        *(uint32_t *)(void *)field = num;
        break;
    default:
        *(struct lmq_bytes *)(void *)field = str;
        break;
    }
}

/*
 * Decodes one property into props. User properties are not copied: props->user_props
 * spans from the first to the end of the last one (other properties may sit between,
 * mqtt_user_prop_next() skips them).
 */
static int dec__prop_one(struct codec_dec *d, struct codec_rd *r, unsigned ctx,
                         struct mqtt_props *props)
{
    uint32_t id = 0, num = 0;
    struct lmq_bytes str = {0};
    size_t start = r->pos;

    if (!rd__vbi(r, &id)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    const struct codec_prop_def *def = codec__prop_def(id);
    if (def == NULL || !dec__prop_value(r, def, &num, &str)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if ((def->ctx & C(ctx)) == 0) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
    }
    uint64_t bit = MQTT_PROP_BIT(id);
    bool repeatable = id == MQTT_PROP_USER_PROPERTY ||
                      (id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER && ctx == MQTT_PUBLISH);
    if ((props->present & bit) && !repeatable) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
    }
    uint8_t reason = codec__prop_value_check(def, num, str);
    if (reason != MQTT_RC_SUCCESS) {
        return dec__fail(d, reason);
    }
    props->present |= bit;
    if (id == MQTT_PROP_USER_PROPERTY) {
        if (props->user_props.data == NULL) {
            props->user_props.data = r->buf + start;
        }
        props->user_props.len = (size_t)(r->buf + r->pos - props->user_props.data);
        props->user_prop_count++;
    } else if (id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
        if (props->subscription_id_count >= MQTT_SUB_IDS_MAX) {
            return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
        }
        props->subscription_ids[props->subscription_id_count++] = num;
    } else {
        props__store(props, def, num, str);
    }
    return 0;
}

/* Decodes a v5 property block (length + properties) allowed in context ctx. */
static int dec__props(struct codec_dec *d, unsigned ctx, struct mqtt_props *props)
{
    uint32_t props_len = 0;
    struct lmq_bytes block = {0};

    LMQ_ASSERT(d->version == MQTT_V5);
    LMQ_ASSERT(props->present == 0);
    if (!rd__vbi(&d->r, &props_len) || !rd__take(&d->r, props_len, &block)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    /* Sub-reader over the block keeps positions relative to the whole packet. */
    struct codec_rd r = {.buf = d->r.buf, .len = d->r.pos, .pos = d->r.pos - props_len};
    /* Each property takes at least 2 bytes, so props_len rounds bound the loop. */
    for (uint32_t i = 0; i < props_len && rd__left(&r) > 0; i++) {
        int rc = dec__prop_one(d, &r, ctx, props);
        if (rc != 0) {
            return rc;
        }
    }
    LMQ_ASSERT(rd__left(&r) == 0);
    return 0;
}

static int dec__end(struct codec_dec *d)
{
    if (rd__left(&d->r) != 0) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoders per packet type. d->r covers the variable header and payload only.
 */
static const uint8_t codec__protocol_name[] = {'M', 'Q', 'T', 'T'};

#define CONNECT_FLAG_RESERVED 0x01u
#define CONNECT_FLAG_CLEAN 0x02u
#define CONNECT_FLAG_WILL 0x04u
#define CONNECT_FLAG_WILL_QOS_SHIFT 3
#define CONNECT_FLAG_WILL_RETAIN 0x20u
#define CONNECT_FLAG_PASSWORD 0x40u
#define CONNECT_FLAG_USERNAME 0x80u

/* Protocol name, level, flags and keep alive. */
static int dec__connect_header(struct codec_dec *d, struct mqtt_connect *c)
{
    struct lmq_bytes name = {0};
    uint8_t flags = 0;

    if (!rd__bin(&d->r, &name) || !rd__u8(&d->r, &c->protocol_version)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    bool name_ok = name.len == sizeof(codec__protocol_name) &&
                   memcmp(name.data, codec__protocol_name, name.len) == 0;
    if (!name_ok || (c->protocol_version != MQTT_V311 && c->protocol_version != MQTT_V5)) {
        return dec__fail(d, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    }
    d->version = c->protocol_version;
    if (!rd__u8(&d->r, &flags) || !rd__u16(&d->r, &c->keep_alive_s)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    c->clean_start = (flags & CONNECT_FLAG_CLEAN) != 0;
    c->will_flag = (flags & CONNECT_FLAG_WILL) != 0;
    c->will_qos = (uint8_t)((flags >> CONNECT_FLAG_WILL_QOS_SHIFT) & 0x03);
    c->will_retain = (flags & CONNECT_FLAG_WILL_RETAIN) != 0;
    c->has_password = (flags & CONNECT_FLAG_PASSWORD) != 0;
    c->has_username = (flags & CONNECT_FLAG_USERNAME) != 0;
    if ((flags & CONNECT_FLAG_RESERVED) || c->will_qos > 2) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (!c->will_flag && (c->will_qos != 0 || c->will_retain)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (d->version == MQTT_V311 && c->has_password && !c->has_username) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET); /* [MQTT-3.1.2-22] */
    }
    return 0;
}

static int dec__connect(struct codec_dec *d, struct mqtt_connect *c)
{
    int rc = dec__connect_header(d, c);
    if (rc != 0) {
        return rc;
    }
    if (d->version == MQTT_V5 && (rc = dec__props(d, MQTT_CONNECT, &c->props)) != 0) {
        return rc;
    }
    if (!rd__str(&d->r, &c->client_id)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (c->will_flag) {
        if (d->version == MQTT_V5 && (rc = dec__props(d, CTX_WILL, &c->will_props)) != 0) {
            return rc;
        }
        if (!rd__str(&d->r, &c->will_topic) ||
            !mqtt_topic_name_valid(c->will_topic.data, c->will_topic.len)) {
            return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
        }
        if (!rd__bin(&d->r, &c->will_payload)) {
            return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
        }
    }
    if (c->has_username && !rd__str(&d->r, &c->username)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (c->has_password && !rd__bin(&d->r, &c->password)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    return dec__end(d);
}

static int dec__connack(struct codec_dec *d, struct mqtt_connack *c)
{
    uint8_t flags = 0;

    if (!rd__u8(&d->r, &flags) || !rd__u8(&d->r, &c->reason_code)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (flags & 0xFE) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET); /* reserved acknowledge flags */
    }
    c->session_present = (flags & 0x01) != 0;
    if (!codec__rc_allowed(MQTT_CONNACK, d->version, c->reason_code)) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
    }
    if (c->session_present && c->reason_code != 0) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR); /* [MQTT-3.2.2-4], [MQTT-3.2.2-6] */
    }
    if (d->version == MQTT_V5) {
        int rc = dec__props(d, MQTT_CONNACK, &c->props);
        if (rc != 0) {
            return rc;
        }
    }
    return dec__end(d);
}

static int dec__publish(struct codec_dec *d, uint8_t first_byte, struct mqtt_publish *p)
{
    p->dup = (first_byte & 0x08) != 0;
    p->qos = (uint8_t)((first_byte >> 1) & 0x03);
    p->retain = (first_byte & 0x01) != 0;
    LMQ_ASSERT(p->qos <= 2); /* the fixed header check refused QoS 3 */
    if (!rd__str(&d->r, &p->topic)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (p->topic.len > 0 && !mqtt_topic_name_valid(p->topic.data, p->topic.len)) {
        return dec__fail(d, MQTT_RC_TOPIC_NAME_INVALID);
    }
    if (p->qos > 0) {
        if (!rd__u16(&d->r, &p->packet_id)) {
            return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
        }
        if (p->packet_id == 0) {
            return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
        }
    }
    if (d->version == MQTT_V5) {
        int rc = dec__props(d, MQTT_PUBLISH, &p->props);
        if (rc != 0) {
            return rc;
        }
    }
    if (p->topic.len == 0 && !(p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR); /* v3.1.1 never has an alias */
    }
    bool ok = rd__take(&d->r, rd__left(&d->r), &p->payload);
    LMQ_ASSERT(ok);
    return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static int dec__ack(struct codec_dec *d, uint8_t type, struct mqtt_ack *a)
{
    if (!rd__u16(&d->r, &a->packet_id)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (d->version == MQTT_V5 && rd__left(&d->r) > 0) {
        bool ok = rd__u8(&d->r, &a->reason_code);
        LMQ_ASSERT(ok);
        if (rd__left(&d->r) > 0) {
            int rc = dec__props(d, type, &a->props);
            if (rc != 0) {
                return rc;
            }
        }
    }
    int rc = dec__end(d);
    if (rc != 0) {
        return rc;
    }
    if (a->packet_id == 0 || !codec__rc_allowed(type, d->version, a->reason_code)) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
    }
    return 0;
}

/* Reads one SUBSCRIBE entry and checks its options; shared by the decoder and the iterator. */
static int dec__sub_entry(struct codec_rd *r, uint8_t version, struct mqtt_sub_entry *e,
                          uint8_t *reason)
{
    if (!rd__str(r, &e->filter) || !rd__u8(r, &e->options)) {
        *reason = MQTT_RC_MALFORMED_PACKET;
        return LMQ_EPROTO;
    }
    uint8_t reserved = version == MQTT_V5 ? 0xC0 : 0xFC;
    if (e->options & reserved) {
        *reason = MQTT_RC_MALFORMED_PACKET;
        return LMQ_EPROTO;
    }
    /* v5 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3";
     * 3.1.1 3.8.3.1 calls it malformed. */
    if ((e->options & MQTT_SUBOPT_QOS_MASK) == 3) {
        *reason = version == MQTT_V5 ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_MALFORMED_PACKET;
        return LMQ_EPROTO;
    }
    if ((e->options & MQTT_SUBOPT_RETAIN_HANDLING_MASK) >> MQTT_SUBOPT_RETAIN_HANDLING_SHIFT == 3) {
        *reason = MQTT_RC_PROTOCOL_ERROR;
        return LMQ_EPROTO;
    }
    return 0;
}

/*
 * SUBSCRIBE and UNSUBSCRIBE share a layout: packet id, props, then entries to the end.
 * Filter syntax is not judged here: the broker answers a bad filter per entry.
 */
static int dec__subscribe_like(struct codec_dec *d, uint8_t type, uint16_t *packet_id,
                               struct mqtt_props *props, struct lmq_bytes *payload, size_t *count)
{
    if (!rd__u16(&d->r, packet_id)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (d->version == MQTT_V5) {
        int rc = dec__props(d, type, props);
        if (rc != 0) {
            return rc;
        }
    }
    bool ok = rd__take(&d->r, rd__left(&d->r), payload);
    LMQ_ASSERT(ok);
    struct codec_rd r = {.buf = payload->data, .len = payload->len};
    /* Every entry takes at least 2 bytes: payload->len rounds bound the loop. */
    for (size_t i = 0; i < payload->len && rd__left(&r) > 0; i++) {
        struct mqtt_sub_entry e = {0};
        uint8_t reason = MQTT_RC_SUCCESS;
        if (type == MQTT_SUBSCRIBE) {
            if (dec__sub_entry(&r, d->version, &e, &reason) != 0) {
                return dec__fail(d, reason);
            }
        } else if (!rd__str(&r, &e.filter)) {
            return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
        }
        (*count)++;
    }
    LMQ_ASSERT(rd__left(&r) == 0);
    if (*packet_id == 0 || *count == 0) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR); /* [MQTT-2.2.1-3], [MQTT-3.8.3-2] */
    }
    return 0;
}

/* SUBACK and UNSUBACK. */
static int dec__suback(struct codec_dec *d, uint8_t type, struct mqtt_suback *s)
{
    if (!rd__u16(&d->r, &s->packet_id)) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (d->version == MQTT_V5) {
        int rc = dec__props(d, type, &s->props);
        if (rc != 0) {
            return rc;
        }
    }
    bool ok = rd__take(&d->r, rd__left(&d->r), &s->reason_codes);
    LMQ_ASSERT(ok);
    bool v311_unsuback = type == MQTT_UNSUBACK && d->version == MQTT_V311;
    if (v311_unsuback && s->reason_codes.len != 0) {
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
    if (s->packet_id == 0 || (!v311_unsuback && s->reason_codes.len == 0)) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
    }
    for (size_t i = 0; i < s->reason_codes.len; i++) {
        if (!codec__rc_allowed(type, d->version, s->reason_codes.data[i])) {
            return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
        }
    }
    return 0;
}

/* DISCONNECT and AUTH: v5 may omit reason and properties; v3.1.1 DISCONNECT is empty. */
static int dec__disconnect(struct codec_dec *d, uint8_t type, struct mqtt_disconnect *x)
{
    if (d->version == MQTT_V5 && rd__left(&d->r) > 0) {
        bool ok = rd__u8(&d->r, &x->reason_code);
        LMQ_ASSERT(ok);
        if (rd__left(&d->r) > 0) {
            int rc = dec__props(d, type, &x->props);
            if (rc != 0) {
                return rc;
            }
        }
    }
    int rc = dec__end(d);
    if (rc != 0) {
        return rc;
    }
    if (!codec__rc_allowed(type, d->version, x->reason_code)) {
        return dec__fail(d, MQTT_RC_PROTOCOL_ERROR);
    }
    return 0;
}

/* Fixed-header flag rules (MQTT 5.0 §2.1.3, 3.1.1 §2.2.2). */
static bool codec__flags_valid(uint8_t type, uint8_t flags)
{
    switch (type) {
    case MQTT_PUBLISH: {
        uint8_t qos = (flags >> 1) & 0x03;
        bool dup = (flags & 0x08) != 0;
        return qos != 3 && !(dup && qos == 0);
    }
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return flags == 0x02;
    default:
        return flags == 0x00;
    }
}

static int dec__body(struct codec_dec *d, uint8_t first_byte, struct mqtt_packet *pkt)
{
    uint8_t type = pkt->type;

    switch (type) {
    case MQTT_CONNECT:
        return dec__connect(d, &pkt->u.connect);
    case MQTT_CONNACK:
        return dec__connack(d, &pkt->u.connack);
    case MQTT_PUBLISH:
        return dec__publish(d, first_byte, &pkt->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return dec__ack(d, type, &pkt->u.ack);
    case MQTT_SUBSCRIBE:
        return dec__subscribe_like(d, type, &pkt->u.subscribe.packet_id, &pkt->u.subscribe.props,
                                   &pkt->u.subscribe.payload, &pkt->u.subscribe.entry_count);
    case MQTT_UNSUBSCRIBE:
        return dec__subscribe_like(d, type, &pkt->u.unsubscribe.packet_id,
                                   &pkt->u.unsubscribe.props, &pkt->u.unsubscribe.payload,
                                   &pkt->u.unsubscribe.filter_count);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return dec__suback(d, type, &pkt->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return dec__end(d);
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return dec__disconnect(d, type, &pkt->u.disconnect);
    default:
        return dec__fail(d, MQTT_RC_MALFORMED_PACKET);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Public decoding API.
 */
int mqtt_fixed_header_parse(const uint8_t *buf, size_t len, uint8_t *first_byte,
                            uint32_t *remaining_len, size_t *header_len)
{
    size_t used = 0;
    uint32_t value = 0;

    LMQ_ASSERT(buf != NULL || len == 0);
    LMQ_ASSERT(first_byte != NULL && remaining_len != NULL && header_len != NULL);
    if (len < 2) {
        return LMQ_EAGAIN;
    }
    int rc = codec__vbi_parse(buf + 1, len - 1, &value, &used);
    if (rc != 0) {
        return rc;
    }
    *first_byte = buf[0];
    *remaining_len = value;
    *header_len = 1 + used;
    return 0;
}

int mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, struct mqtt_packet *pkt,
                uint8_t *reason_code)
{
    uint8_t first_byte = 0;
    uint32_t remaining = 0;
    size_t header_len = 0;

    LMQ_ASSERT(pkt != NULL && reason_code != NULL);
    LMQ_ASSERT(buf != NULL || len == 0);
    memset(pkt, 0, sizeof(*pkt));
    *reason_code = MQTT_RC_MALFORMED_PACKET;
    if (mqtt_fixed_header_parse(buf, len, &first_byte, &remaining, &header_len) != 0 ||
        remaining != len - header_len) {
        return LMQ_EPROTO;
    }
    pkt->type = (uint8_t)(first_byte >> 4);
    if (pkt->type == MQTT_CONNECT) {
        version = MQTT_V5; /* placeholder: dec__connect_header() sets the level it reads */
    } else if (version != MQTT_V311 && version != MQTT_V5) {
        *reason_code = MQTT_RC_UNSPECIFIED_ERROR;
        return LMQ_EINVAL; /* a caller bug, not a client's fault */
    }
    struct codec_dec d = {
        .r = {.buf = buf + header_len, .len = remaining}, .version = version, .reason = 0};
    bool type_ok = pkt->type != 0 && !(pkt->type == MQTT_AUTH && version == MQTT_V311);
    int rc = 0;
    if (!type_ok || !codec__flags_valid(pkt->type, first_byte & 0x0F)) {
        rc = dec__fail(&d, MQTT_RC_MALFORMED_PACKET);
    } else {
        rc = dec__body(&d, first_byte, pkt);
    }
    LMQ_ASSERT(rc == 0 || rc == LMQ_EPROTO);
    *reason_code = rc == 0 ? MQTT_RC_SUCCESS : d.reason;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Iterators. They read decoded (or caller-built) slices defensively: anything malformed ends
 * the walk, and the cursor is left empty so a further call also returns false.
 */
/* Empties a cursor (no pointer arithmetic on NULL, which is undefined). */
static void codec__cursor_finish(struct lmq_bytes *cursor)
{
    if (cursor->data != NULL) {
        cursor->data += cursor->len;
    }
    cursor->len = 0;
}

bool mqtt_subscribe_next(struct lmq_bytes *cursor, uint8_t version, struct mqtt_sub_entry *entry)
{
    uint8_t reason = 0;

    LMQ_ASSERT(cursor != NULL && entry != NULL);
    struct codec_rd r = {.buf = cursor->data, .len = cursor->data ? cursor->len : 0};
    if (rd__left(&r) == 0 || dec__sub_entry(&r, version, entry, &reason) != 0) {
        codec__cursor_finish(cursor);
        return false;
    }
    cursor->data += r.pos;
    cursor->len -= r.pos;
    return true;
}

bool mqtt_unsubscribe_next(struct lmq_bytes *cursor, struct lmq_bytes *filter)
{
    LMQ_ASSERT(cursor != NULL && filter != NULL);
    struct codec_rd r = {.buf = cursor->data, .len = cursor->data ? cursor->len : 0};
    if (rd__left(&r) == 0 || !rd__str(&r, filter)) {
        codec__cursor_finish(cursor);
        return false;
    }
    cursor->data += r.pos;
    cursor->len -= r.pos;
    return true;
}

/*
 * Next user property in an encoded property span, skipping other properties.
 * Returns 1 with key/value set, 0 at the end, LMQ_EPROTO when the span is malformed.
 * *raw is set to the property's own bytes (id included) so encoders can copy it.
 */
static int codec__user_prop_next(struct codec_rd *r, struct lmq_bytes *key, struct lmq_bytes *value,
                                 struct lmq_bytes *raw)
{
    /* Each property is at least 2 bytes: the span's length bounds the loop. */
    for (size_t i = 0; i <= r->len && rd__left(r) > 0; i++) {
        size_t start = r->pos;
        uint32_t id = 0, num = 0;
        struct lmq_bytes str = {0};
        if (!rd__vbi(r, &id)) {
            return LMQ_EPROTO;
        }
        const struct codec_prop_def *def = codec__prop_def(id);
        if (def == NULL) {
            return LMQ_EPROTO;
        }
        if (id != MQTT_PROP_USER_PROPERTY) {
            if (!dec__prop_value(r, def, &num, &str)) {
                return LMQ_EPROTO;
            }
            continue;
        }
        if (!rd__str(r, key) || !rd__str(r, value)) {
            return LMQ_EPROTO;
        }
        raw->data = r->buf + start;
        raw->len = r->pos - start;
        return 1;
    }
    return 0;
}

bool mqtt_user_prop_next(struct lmq_bytes *cursor, struct lmq_bytes *key, struct lmq_bytes *value)
{
    struct lmq_bytes raw = {0};

    LMQ_ASSERT(cursor != NULL && key != NULL && value != NULL);
    struct codec_rd r = {.buf = cursor->data, .len = cursor->data ? cursor->len : 0};
    if (codec__user_prop_next(&r, key, value, &raw) != 1) {
        codec__cursor_finish(cursor);
        return false;
    }
    cursor->data += r.pos;
    cursor->len -= r.pos;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Writer. out == NULL counts only; otherwise the caller checked pos never passes cap.
 */
struct codec_wr {
    uint8_t *out;
    size_t cap;
    size_t pos;
};

static void wr__bytes(struct codec_wr *w, const uint8_t *p, size_t n)
{
    if (w->out != NULL && n > 0) {
        LMQ_ASSERT(n <= w->cap && w->pos <= w->cap - n);
        memcpy(w->out + w->pos, p, n);
    }
    w->pos += n;
}

static void wr__u8(struct codec_wr *w, uint8_t v)
{
    wr__bytes(w, &v, 1);
}

static void wr__u16(struct codec_wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr__bytes(w, b, sizeof(b));
}

static void wr__u32(struct codec_wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wr__bytes(w, b, sizeof(b));
}

static size_t codec__vbi_size(size_t v)
{
    LMQ_ASSERT(v <= MQTT_REMAINING_LENGTH_MAX);
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

static void wr__vbi(struct codec_wr *w, size_t v)
{
    uint8_t b[CODEC_VBI_BYTES_MAX];
    size_t n = 0;

    LMQ_ASSERT(v <= MQTT_REMAINING_LENGTH_MAX);
    do {
        uint8_t byte = (uint8_t)(v & 0x7F);
        v >>= 7;
        b[n++] = v > 0 ? (uint8_t)(byte | 0x80) : byte;
    } while (v > 0 && n < CODEC_VBI_BYTES_MAX);
    LMQ_ASSERT(v == 0);
    wr__bytes(w, b, n);
}

/* Two-byte length then the bytes; LMQ_EINVAL when longer than 65535. */
static int wr__bin(struct codec_wr *w, struct lmq_bytes b)
{
    if (b.len > CODEC_STR_LEN_MAX) {
        return LMQ_EINVAL;
    }
    LMQ_ASSERT(b.data != NULL || b.len == 0);
    wr__u16(w, (uint16_t)b.len);
    wr__bytes(w, b.data, b.len);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Property encoding.
 */
static int enc__prop_one(struct codec_wr *w, const struct codec_prop_def *def,
                         const struct mqtt_props *props)
{
    const uint8_t *field = (const uint8_t *)props + def->offset;
    uint32_t num = 0;
    struct lmq_bytes str = {0};

    switch (def->type) {
    case PT_BYTE:
        num = *field;
        break;
    case PT_U16:
        num = *(const uint16_t *)(const void *)field;
        break;
    case PT_U32:
        num = *(const uint32_t *)(const void *)field;
        break;
    case PT_STR:
    case PT_BIN:
        str = *(const struct lmq_bytes *)(const void *)field;
        break;
    default:
        LMQ_UNREACHABLE("0x0B and 0x26 are written by their own loops");
        return LMQ_EINVAL;
    }
    if (codec__prop_value_check(def, num, str) != MQTT_RC_SUCCESS) {
        return LMQ_EINVAL;
    }
    wr__u8(w, def->id);
    if (def->type == PT_BYTE) {
        wr__u8(w, (uint8_t)num);
    } else if (def->type == PT_U16) {
        wr__u16(w, (uint16_t)num);
    } else if (def->type == PT_U32) {
        wr__u32(w, num);
    } else {
        return wr__bin(w, str);
    }
    return 0;
}

static int enc__sub_ids(struct codec_wr *w, unsigned ctx, const struct mqtt_props *props)
{
    size_t count = props->subscription_id_count;
    size_t count_max = ctx == MQTT_PUBLISH ? MQTT_SUB_IDS_MAX : 1;

    if (count > count_max) {
        return LMQ_EINVAL;
    }
    for (size_t i = 0; i < count; i++) {
        uint32_t id = props->subscription_ids[i];
        if (id == 0 || id > MQTT_SUB_ID_MAX) {
            return LMQ_EINVAL;
        }
        wr__u8(w, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
        wr__vbi(w, id);
    }
    return 0;
}

/* Copies the user properties of the span, skipping any other property found in it. */
static int enc__user_props(struct codec_wr *w, const struct mqtt_props *props)
{
    struct codec_rd r = {.buf = props->user_props.data,
                         .len = props->user_props.data ? props->user_props.len : 0};
    struct lmq_bytes key = {0}, value = {0}, raw = {0};

    /* Each entry is at least 5 bytes: the span's length bounds the loop. */
    for (size_t i = 0; i <= r.len; i++) {
        int rc = codec__user_prop_next(&r, &key, &value, &raw);
        if (rc == 0) {
            return 0;
        }
        if (rc < 0) {
            return LMQ_EINVAL;
        }
        wr__bytes(w, raw.data, raw.len);
    }
    LMQ_UNREACHABLE("user property walk did not end");
    return LMQ_EINVAL;
}

/* Writes the properties themselves (no length) in ascending id order. */
static int enc__props_body(struct codec_wr *w, unsigned ctx, const struct mqtt_props *props)
{
    uint64_t known = 0;

    /* The common case on the delivery path: nothing to write. */
    if (props->present == 0 && props->subscription_id_count == 0 && props->user_props.len == 0) {
        return 0;
    }

    for (size_t i = 0; i < LMQ_ARRAY_LEN(codec__props); i++) {
        const struct codec_prop_def *def = &codec__props[i];
        bool allowed = (def->ctx & C(ctx)) != 0;
        int rc = 0;
        known |= MQTT_PROP_BIT(def->id);
        if (def->id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
            rc = allowed ? enc__sub_ids(w, ctx, props)
                         : (props->subscription_id_count ? LMQ_EINVAL : 0);
        } else if (def->id == MQTT_PROP_USER_PROPERTY) {
            rc = enc__user_props(w, props);
        } else if (props->present & MQTT_PROP_BIT(def->id)) {
            rc = allowed ? enc__prop_one(w, def, props) : LMQ_EINVAL;
        }
        if (rc != 0) {
            return rc;
        }
    }
    return (props->present & ~known) ? LMQ_EINVAL : 0;
}

/* Size of the property block's content (without its length prefix). */
static int enc__props_len(unsigned ctx, const struct mqtt_props *props, size_t *len)
{
    struct codec_wr counter = {0};
    int rc = enc__props_body(&counter, ctx, props);
    if (rc != 0) {
        return rc;
    }
    if (counter.pos > MQTT_REMAINING_LENGTH_MAX) {
        return LMQ_EINVAL;
    }
    *len = counter.pos;
    return 0;
}

/* Property length then properties (v5 only; callers skip it for v3.1.1). */
static int enc__props(struct codec_wr *w, unsigned ctx, const struct mqtt_props *props)
{
    size_t len = 0;
    int rc = enc__props_len(ctx, props, &len);
    if (rc != 0) {
        return rc;
    }
    wr__vbi(w, len);
    size_t before = w->pos;
    rc = enc__props_body(w, ctx, props);
    LMQ_ASSERT(rc == 0 && w->pos - before == len);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Encoders per packet type: each writes the variable header and payload and sets the
 * fixed header's first byte.
 */
static int enc__connect(struct codec_wr *w, uint8_t version, const struct mqtt_connect *c)
{
    const struct lmq_bytes name = {codec__protocol_name, sizeof(codec__protocol_name)};
    int rc = 0;

    if ((c->protocol_version != 0 && c->protocol_version != version) || c->will_qos > 2 ||
        (!c->will_flag && (c->will_qos != 0 || c->will_retain)) ||
        (version == MQTT_V311 && c->has_password && !c->has_username)) {
        return LMQ_EINVAL;
    }
    uint8_t flags = (uint8_t)((c->clean_start ? CONNECT_FLAG_CLEAN : 0) |
                              (c->will_flag ? CONNECT_FLAG_WILL : 0) |
                              (c->will_qos << CONNECT_FLAG_WILL_QOS_SHIFT) |
                              (c->will_retain ? CONNECT_FLAG_WILL_RETAIN : 0) |
                              (c->has_password ? CONNECT_FLAG_PASSWORD : 0) |
                              (c->has_username ? CONNECT_FLAG_USERNAME : 0));
    LMQ_ASSERT((flags & CONNECT_FLAG_RESERVED) == 0);
    rc = wr__bin(w, name);
    LMQ_ASSERT(rc == 0);
    wr__u8(w, version);
    wr__u8(w, flags);
    wr__u16(w, c->keep_alive_s);
    if (version == MQTT_V5 && (rc = enc__props(w, MQTT_CONNECT, &c->props)) != 0) {
        return rc;
    }
    if ((rc = wr__bin(w, c->client_id)) != 0) {
        return rc;
    }
    if (c->will_flag) {
        if (version == MQTT_V5 && (rc = enc__props(w, CTX_WILL, &c->will_props)) != 0) {
            return rc;
        }
        if ((rc = wr__bin(w, c->will_topic)) != 0 || (rc = wr__bin(w, c->will_payload)) != 0) {
            return rc;
        }
    }
    if (c->has_username && (rc = wr__bin(w, c->username)) != 0) {
        return rc;
    }
    if (c->has_password && (rc = wr__bin(w, c->password)) != 0) {
        return rc;
    }
    return 0;
}

static int enc__connack(struct codec_wr *w, uint8_t version, const struct mqtt_connack *c)
{
    if (!codec__rc_allowed(MQTT_CONNACK, version, c->reason_code) ||
        (c->session_present && c->reason_code != 0)) {
        return LMQ_EINVAL;
    }
    wr__u8(w, c->session_present ? 0x01 : 0x00);
    wr__u8(w, c->reason_code);
    return version == MQTT_V5 ? enc__props(w, MQTT_CONNACK, &c->props) : 0;
}

static int enc__publish(struct codec_wr *w, uint8_t version, const struct mqtt_publish *p,
                        uint8_t *first_byte)
{
    int rc = 0;

    if (p->qos > 2 || (p->qos > 0 && p->packet_id == 0) || (p->dup && p->qos == 0)) {
        return LMQ_EINVAL;
    }
    /* An empty topic needs a Topic Alias, which only v5 has ([MQTT-3.3.2-1], §3.3.2.3.4). */
    bool has_alias =
        version == MQTT_V5 && (p->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS));
    if (p->topic.len == 0 && !has_alias) {
        return LMQ_EINVAL;
    }
    *first_byte = (uint8_t)((MQTT_PUBLISH << 4) | (p->dup ? 0x08 : 0) | (p->qos << 1) |
                            (p->retain ? 0x01 : 0));
    if ((rc = wr__bin(w, p->topic)) != 0) {
        return rc;
    }
    if (p->qos > 0) {
        wr__u16(w, p->packet_id);
    }
    if (version == MQTT_V5 && (rc = enc__props(w, MQTT_PUBLISH, &p->props)) != 0) {
        return rc;
    }
    LMQ_ASSERT(p->payload.data != NULL || p->payload.len == 0);
    wr__bytes(w, p->payload.data, p->payload.len);
    return 0;
}

/* PUBACK..PUBCOMP; v5 uses the short forms when it can (§3.4.2.1). v3.1.1 has no reason. */
static int enc__ack(struct codec_wr *w, uint8_t version, uint8_t type, const struct mqtt_ack *a)
{
    size_t props_len = 0;

    if (a->packet_id == 0) {
        return LMQ_EINVAL;
    }
    wr__u16(w, a->packet_id);
    if (version == MQTT_V311) {
        return 0;
    }
    if (!codec__rc_allowed(type, version, a->reason_code)) {
        return LMQ_EINVAL;
    }
    int rc = enc__props_len(type, &a->props, &props_len);
    if (rc != 0) {
        return rc;
    }
    if (props_len == 0) {
        if (a->reason_code != MQTT_RC_SUCCESS) {
            wr__u8(w, a->reason_code);
        }
        return 0;
    }
    wr__u8(w, a->reason_code);
    return enc__props(w, type, &a->props);
}

static int enc__subscribe(struct codec_wr *w, uint8_t version, const struct mqtt_subscribe *s)
{
    if (s->packet_id == 0 || s->entry_count == 0 || s->entries == NULL) {
        return LMQ_EINVAL;
    }
    wr__u16(w, s->packet_id);
    if (version == MQTT_V5) {
        int rc = enc__props(w, MQTT_SUBSCRIBE, &s->props);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < s->entry_count; i++) {
        const struct mqtt_sub_entry *e = &s->entries[i];
        uint8_t options =
            version == MQTT_V5 ? e->options : (uint8_t)(e->options & MQTT_SUBOPT_QOS_MASK);
        uint8_t rh = (uint8_t)((options & MQTT_SUBOPT_RETAIN_HANDLING_MASK) >>
                               MQTT_SUBOPT_RETAIN_HANDLING_SHIFT);
        if ((options & 0xC0) || (options & MQTT_SUBOPT_QOS_MASK) == 3 || rh == 3) {
            return LMQ_EINVAL;
        }
        int rc = wr__bin(w, e->filter);
        if (rc != 0) {
            return rc;
        }
        wr__u8(w, options);
    }
    return 0;
}

static int enc__unsubscribe(struct codec_wr *w, uint8_t version, const struct mqtt_unsubscribe *u)
{
    if (u->packet_id == 0 || u->filter_count == 0 || u->filters == NULL) {
        return LMQ_EINVAL;
    }
    wr__u16(w, u->packet_id);
    if (version == MQTT_V5) {
        int rc = enc__props(w, MQTT_UNSUBSCRIBE, &u->props);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < u->filter_count; i++) {
        int rc = wr__bin(w, u->filters[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* SUBACK and UNSUBACK (a v3.1.1 UNSUBACK is the packet id alone). */
static int enc__suback(struct codec_wr *w, uint8_t version, uint8_t type,
                       const struct mqtt_suback *s)
{
    const struct lmq_bytes *codes = &s->reason_codes;

    if (s->packet_id == 0) {
        return LMQ_EINVAL;
    }
    wr__u16(w, s->packet_id);
    if (type == MQTT_UNSUBACK && version == MQTT_V311) {
        return 0;
    }
    if (codes->len == 0 || codes->data == NULL) {
        return LMQ_EINVAL;
    }
    for (size_t i = 0; i < codes->len; i++) {
        if (!codec__rc_allowed(type, version, codes->data[i])) {
            return LMQ_EINVAL;
        }
    }
    if (version == MQTT_V5) {
        int rc = enc__props(w, type, &s->props);
        if (rc != 0) {
            return rc;
        }
    }
    wr__bytes(w, codes->data, codes->len);
    return 0;
}

/* DISCONNECT and AUTH. v5: empty for reason 0 without properties. v3.1.1: always empty. */
static int enc__disconnect(struct codec_wr *w, uint8_t version, uint8_t type,
                           const struct mqtt_disconnect *x)
{
    size_t props_len = 0;

    if (version == MQTT_V311) {
        return type == MQTT_AUTH ? LMQ_EINVAL : 0;
    }
    if (!codec__rc_allowed(type, version, x->reason_code)) {
        return LMQ_EINVAL;
    }
    int rc = enc__props_len(type, &x->props, &props_len);
    if (rc != 0) {
        return rc;
    }
    if (props_len == 0 && x->reason_code == MQTT_RC_SUCCESS) {
        return 0;
    }
    wr__u8(w, x->reason_code);
    if (props_len == 0 && type == MQTT_DISCONNECT) {
        return 0; /* §3.14.2.2.1: property length may be omitted when there are none */
    }
    return enc__props(w, type, &x->props);
}

static int enc__body(struct codec_wr *w, const struct mqtt_packet *pkt, uint8_t version,
                     uint8_t *first_byte)
{
    uint8_t type = pkt->type;

    *first_byte = (uint8_t)(type << 4);
    switch (type) {
    case MQTT_CONNECT:
        return enc__connect(w, version, &pkt->u.connect);
    case MQTT_CONNACK:
        return enc__connack(w, version, &pkt->u.connack);
    case MQTT_PUBLISH:
        return enc__publish(w, version, &pkt->u.publish, first_byte);
    case MQTT_PUBREL:
        *first_byte |= 0x02;
        return enc__ack(w, version, type, &pkt->u.ack);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        return enc__ack(w, version, type, &pkt->u.ack);
    case MQTT_SUBSCRIBE:
        *first_byte |= 0x02;
        return enc__subscribe(w, version, &pkt->u.subscribe);
    case MQTT_UNSUBSCRIBE:
        *first_byte |= 0x02;
        return enc__unsubscribe(w, version, &pkt->u.unsubscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return enc__suback(w, version, type, &pkt->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return enc__disconnect(w, version, type, &pkt->u.disconnect);
    default:
        return LMQ_EINVAL;
    }
}

/* Counting pass: validates pkt and returns the first byte and remaining length. */
static int enc__plan(const struct mqtt_packet *pkt, uint8_t version, uint8_t *first_byte,
                     size_t *remaining)
{
    struct codec_wr counter = {0};

    LMQ_ASSERT(pkt != NULL);
    if (version != MQTT_V311 && version != MQTT_V5) {
        return LMQ_EINVAL;
    }
    int rc = enc__body(&counter, pkt, version, first_byte);
    if (rc != 0) {
        return rc;
    }
    if (counter.pos > MQTT_REMAINING_LENGTH_MAX) {
        return LMQ_EINVAL;
    }
    *remaining = counter.pos;
    return 0;
}

int mqtt_encoded_size(const struct mqtt_packet *pkt, uint8_t version, size_t *size_bytes)
{
    uint8_t first_byte = 0;
    size_t remaining = 0;

    LMQ_ASSERT(size_bytes != NULL);
    int rc = enc__plan(pkt, version, &first_byte, &remaining);
    if (rc != 0) {
        return rc;
    }
    *size_bytes = 1 + codec__vbi_size(remaining) + remaining;
    return 0;
}

int mqtt_encode(const struct mqtt_packet *pkt, uint8_t version, uint8_t *out, size_t cap,
                size_t *written)
{
    uint8_t first_byte = 0, first_again = 0;
    size_t remaining = 0;

    LMQ_ASSERT(written != NULL);
    LMQ_ASSERT(out != NULL || cap == 0);
    int rc = enc__plan(pkt, version, &first_byte, &remaining);
    if (rc != 0) {
        return rc;
    }
    size_t total = 1 + codec__vbi_size(remaining) + remaining;
    if (total > cap) {
        return LMQ_ETOOBIG;
    }
    struct codec_wr w = {.out = out, .cap = cap, .pos = 0};
    wr__u8(&w, first_byte);
    wr__vbi(&w, remaining);
    rc = enc__body(&w, pkt, version, &first_again);
    LMQ_ASSERT(rc == 0 && first_again == first_byte);
    LMQ_ASSERT(w.pos == total);
    *written = total;
    return 0;
}

int mqtt_user_prop_append(uint8_t *out, size_t cap, size_t *used, const char *key,
                          const char *value)
{
    LMQ_ASSERT(used != NULL && key != NULL && value != NULL);
    LMQ_ASSERT(out != NULL || cap == 0);
    struct lmq_bytes k = {(const uint8_t *)key, strlen(key)};
    struct lmq_bytes v = {(const uint8_t *)value, strlen(value)};

    if (k.len > CODEC_STR_LEN_MAX || v.len > CODEC_STR_LEN_MAX || !mqtt_utf8_valid(k.data, k.len) ||
        !mqtt_utf8_valid(v.data, v.len)) {
        return LMQ_EINVAL;
    }
    size_t need = 1 + 2 + k.len + 2 + v.len;
    if (*used > cap || cap - *used < need) {
        return LMQ_ETOOBIG;
    }
    struct codec_wr w = {.out = out, .cap = cap, .pos = *used};
    wr__u8(&w, MQTT_PROP_USER_PROPERTY);
    (void)wr__bin(&w, k);
    (void)wr__bin(&w, v);
    LMQ_ASSERT(w.pos == *used + need);
    *used = w.pos;
    return 0;
}

const char *mqtt_packet_type_name(uint8_t type)
{
    static const char *const names[] = {
        "RESERVED", "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
        "PUBREL",   "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ",  "PINGRESP", "DISCONNECT", "AUTH",
    };

    if (type == 0 || type >= LMQ_ARRAY_LEN(names)) {
        return "UNKNOWN";
    }
    return names[type];
}
