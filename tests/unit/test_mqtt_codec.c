/*
 * Unit tests for src/mqtt/mqtt_codec.c through its header: round trips of every packet type in
 * both protocol versions, exact byte vectors checked by hand against the specs, every refusal
 * rule with its reason code, fixed-header parsing, and bounded encoding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lmq.h"
#include "mqtt/mqtt_codec.h"

#define BUF_CAP 4096

static struct lmq_bytes str(const char *s)
{
    struct lmq_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */

static void assert_bytes_eq(struct lmq_bytes a, struct lmq_bytes b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_memory_equal(a.data, b.data, a.len);
    }
}

/* Encodes, checks mqtt_encoded_size agrees, and returns the length. */
static size_t encode_ok(const struct mqtt_packet *pkt, uint8_t version, uint8_t *buf, size_t cap)
{
    size_t written = 0, size = 0;
    assert_int_equal(mqtt_encode(pkt, version, buf, cap, &written), 0);
    assert_int_equal(mqtt_encoded_size(pkt, version, &size), 0);
    assert_int_equal(size, written);
    return written;
}

static void decode_ok(const uint8_t *buf, size_t len, uint8_t version, struct mqtt_packet *out)
{
    uint8_t reason = 0xFF;
    int rc = mqtt_decode(buf, len, version, out, &reason);
    if (rc != 0) {
        print_error("decode failed rc=%d reason=0x%02x\n", rc, reason);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(reason, MQTT_RC_SUCCESS);
}

/* Decodes bytes that must be refused and returns the reason code given. */
static uint8_t decode_refused(const uint8_t *buf, size_t len, uint8_t version)
{
    struct mqtt_packet pkt;
    uint8_t reason = 0;
    assert_int_equal(mqtt_decode(buf, len, version, &pkt, &reason), LMQ_EPROTO);
    return reason;
}

#define REFUSED(version, reason, ...)                                                              \
    do {                                                                                           \
        static const uint8_t bytes_[] = {__VA_ARGS__};                                             \
        assert_int_equal(decode_refused(bytes_, sizeof(bytes_), version), reason);                 \
    } while (0)

#define ACCEPTED(version, pkt, ...)                                                                \
    do {                                                                                           \
        static const uint8_t bytes_[] = {__VA_ARGS__};                                             \
        decode_ok(bytes_, sizeof(bytes_), version, pkt);                                           \
    } while (0)

static void assert_user_props_eq(struct lmq_bytes a, struct lmq_bytes b)
{
    struct lmq_bytes ka, va, kb, vb;
    for (int i = 0; i < 1000; i++) {
        bool more_a = mqtt_user_prop_next(&a, &ka, &va);
        bool more_b = mqtt_user_prop_next(&b, &kb, &vb);
        assert_int_equal(more_a, more_b);
        if (!more_a) {
            return;
        }
        assert_bytes_eq(ka, kb);
        assert_bytes_eq(va, vb);
    }
    fail_msg("user property walk did not end");
}

static void assert_props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    assert_int_equal(a->present, b->present);
    assert_int_equal(a->payload_format_indicator, b->payload_format_indicator);
    assert_int_equal(a->message_expiry_interval_s, b->message_expiry_interval_s);
    assert_bytes_eq(a->content_type, b->content_type);
    assert_bytes_eq(a->response_topic, b->response_topic);
    assert_bytes_eq(a->correlation_data, b->correlation_data);
    assert_int_equal(a->subscription_id_count, b->subscription_id_count);
    for (size_t i = 0; i < a->subscription_id_count; i++) {
        assert_int_equal(a->subscription_ids[i], b->subscription_ids[i]);
    }
    assert_int_equal(a->session_expiry_interval_s, b->session_expiry_interval_s);
    assert_bytes_eq(a->assigned_client_identifier, b->assigned_client_identifier);
    assert_int_equal(a->server_keep_alive_s, b->server_keep_alive_s);
    assert_bytes_eq(a->authentication_method, b->authentication_method);
    assert_bytes_eq(a->authentication_data, b->authentication_data);
    assert_int_equal(a->request_problem_information, b->request_problem_information);
    assert_int_equal(a->will_delay_interval_s, b->will_delay_interval_s);
    assert_int_equal(a->request_response_information, b->request_response_information);
    assert_bytes_eq(a->response_information, b->response_information);
    assert_bytes_eq(a->server_reference, b->server_reference);
    assert_bytes_eq(a->reason_string, b->reason_string);
    assert_int_equal(a->receive_maximum, b->receive_maximum);
    assert_int_equal(a->topic_alias_maximum, b->topic_alias_maximum);
    assert_int_equal(a->topic_alias, b->topic_alias);
    assert_int_equal(a->maximum_qos, b->maximum_qos);
    assert_int_equal(a->retain_available, b->retain_available);
    assert_user_props_eq(a->user_props, b->user_props);
    assert_int_equal(a->maximum_packet_size, b->maximum_packet_size);
    assert_int_equal(a->wildcard_subscription_available, b->wildcard_subscription_available);
    assert_int_equal(a->subscription_identifier_available, b->subscription_identifier_available);
    assert_int_equal(a->shared_subscription_available, b->shared_subscription_available);
}

static void assert_props_empty(const struct mqtt_props *p)
{
    assert_int_equal(p->present, 0);
    assert_int_equal(p->user_props.len, 0);
    assert_int_equal(p->subscription_id_count, 0);
}

/* Storage for the user properties of one filled property set. */
struct user_buf {
    uint8_t bytes[256];
    size_t used;
};

/*
 * Sets every property in ids[] to a distinctive non-default value, as the test's own copy of
 * the spec's table says the packet may carry (written independently of the codec's table).
 */
static void props_fill(struct mqtt_props *p, const uint8_t *ids, size_t n, struct user_buf *ub,
                       size_t sub_id_count)
{
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        uint8_t id = ids[i];
        p->present |= MQTT_PROP_BIT(id);
        switch (id) {
        case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
            p->payload_format_indicator = 1;
            break;
        case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
            p->message_expiry_interval_s = 0x01020304;
            break;
        case MQTT_PROP_CONTENT_TYPE:
            p->content_type = str("application/json");
            break;
        case MQTT_PROP_RESPONSE_TOPIC:
            p->response_topic = str("reply/\xC3\xA9t\xC3\xA9");
            break;
        case MQTT_PROP_CORRELATION_DATA:
            p->correlation_data = str("\x01\x02\xFF");
            break;
        case MQTT_PROP_SUBSCRIPTION_IDENTIFIER:
            for (size_t k = 0; k < sub_id_count; k++) {
                /* 1-, 2-, 3- and 4-byte variable byte integers */
                static const uint32_t vals[] = {1, 300, 70000, MQTT_SUB_ID_MAX};
                p->subscription_ids[k] = vals[k % 4];
            }
            p->subscription_id_count = sub_id_count;
            break;
        case MQTT_PROP_SESSION_EXPIRY_INTERVAL:
            p->session_expiry_interval_s = 0xFFFFFFFF;
            break;
        case MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER:
            p->assigned_client_identifier = str("auto-1");
            break;
        case MQTT_PROP_SERVER_KEEP_ALIVE:
            p->server_keep_alive_s = 0xBEEF;
            break;
        case MQTT_PROP_AUTHENTICATION_METHOD:
            p->authentication_method = str("SCRAM");
            break;
        case MQTT_PROP_AUTHENTICATION_DATA:
            p->authentication_data = str("\x00\x01s");
            break;
        case MQTT_PROP_REQUEST_PROBLEM_INFORMATION:
            p->request_problem_information = 1;
            break;
        case MQTT_PROP_WILL_DELAY_INTERVAL:
            p->will_delay_interval_s = 77;
            break;
        case MQTT_PROP_REQUEST_RESPONSE_INFORMATION:
            p->request_response_information = 1;
            break;
        case MQTT_PROP_RESPONSE_INFORMATION:
            p->response_information = str("resp/");
            break;
        case MQTT_PROP_SERVER_REFERENCE:
            p->server_reference = str("other:1883");
            break;
        case MQTT_PROP_REASON_STRING:
            p->reason_string = str("because");
            break;
        case MQTT_PROP_RECEIVE_MAXIMUM:
            p->receive_maximum = 65535;
            break;
        case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
            p->topic_alias_maximum = 10;
            break;
        case MQTT_PROP_TOPIC_ALIAS:
            p->topic_alias = 3;
            break;
        case MQTT_PROP_MAXIMUM_QOS:
            p->maximum_qos = 1;
            break;
        case MQTT_PROP_RETAIN_AVAILABLE:
            p->retain_available = 1;
            break;
        case MQTT_PROP_USER_PROPERTY:
            ub->used = 0;
            assert_int_equal(
                mqtt_user_prop_append(ub->bytes, sizeof(ub->bytes), &ub->used, "k1", "v1"), 0);
            assert_int_equal(
                mqtt_user_prop_append(ub->bytes, sizeof(ub->bytes), &ub->used, "k\xC3\xA9", ""), 0);
            assert_int_equal(mqtt_user_prop_append(ub->bytes, sizeof(ub->bytes), &ub->used, "k1",
                                                   "dup keys are allowed"),
                             0);
            p->user_props.data = ub->bytes;
            p->user_props.len = ub->used;
            p->user_prop_count = 3;
            break;
        case MQTT_PROP_MAXIMUM_PACKET_SIZE:
            p->maximum_packet_size = 1u << 20;
            break;
        case MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:
            p->wildcard_subscription_available = 1;
            break;
        case MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE:
            p->subscription_identifier_available = 1;
            break;
        case MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE:
            p->shared_subscription_available = 1;
            break;
        default:
            fail_msg("unknown property id 0x%02x", id);
        }
    }
}

/* MQTT 5.0 §2.2.2.2: which properties each packet may carry. */
static const uint8_t ids_connect[] = {0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27};
static const uint8_t ids_will[] = {0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26};
static const uint8_t ids_connack[] = {0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21,
                                      0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A};
static const uint8_t ids_publish[] = {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26};
static const uint8_t ids_ack[] = {0x1F, 0x26};
static const uint8_t ids_subscribe[] = {0x0B, 0x26};
static const uint8_t ids_unsubscribe[] = {0x26};
static const uint8_t ids_disconnect[] = {0x11, 0x1C, 0x1F, 0x26};
static const uint8_t ids_auth[] = {0x15, 0x16, 0x1F, 0x26};

static const uint8_t versions[] = {MQTT_V311, MQTT_V5};

/* Encode -> decode, both versions; returns the decoded packet (slices point into buf). */
static void round_trip(const struct mqtt_packet *in, uint8_t version, uint8_t *buf,
                       struct mqtt_packet *out)
{
    size_t n = encode_ok(in, version, buf, BUF_CAP);
    decode_ok(buf, n, version, out);
    assert_int_equal(out->type, in->type);
}

static void check_props(const struct mqtt_props *in, const struct mqtt_props *out, uint8_t v)
{
    if (v == MQTT_V5) {
        assert_props_eq(in, out);
    } else {
        assert_props_empty(out);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Round trips                                                                                */

static void test_connect_round_trip_all_fields_both_versions(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct user_buf ub1, ub2;

    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        struct mqtt_packet in = {.type = MQTT_CONNECT}, out;
        struct mqtt_connect *c = &in.u.connect;
        c->protocol_version = v;
        c->clean_start = true;
        c->keep_alive_s = 0xABCD;
        props_fill(&c->props, ids_connect, sizeof(ids_connect), &ub1, 0);
        c->client_id = str("client-\xE2\x82\xAC");
        c->will_flag = true;
        c->will_qos = 2;
        c->will_retain = true;
        props_fill(&c->will_props, ids_will, sizeof(ids_will), &ub2, 0);
        c->will_topic = str("will/topic");
        c->will_payload = str("\x00\x01\x02gone");
        c->has_username = true;
        c->username = str("user");
        c->has_password = true;
        c->password = str("\xFF\x00secret");
        round_trip(&in, v, buf, &out);
        const struct mqtt_connect *d = &out.u.connect;
        assert_int_equal(d->protocol_version, v);
        assert_true(d->clean_start);
        assert_int_equal(d->keep_alive_s, 0xABCD);
        check_props(&c->props, &d->props, v);
        assert_bytes_eq(d->client_id, c->client_id);
        assert_true(d->will_flag);
        assert_int_equal(d->will_qos, 2);
        assert_true(d->will_retain);
        check_props(&c->will_props, &d->will_props, v);
        assert_bytes_eq(d->will_topic, c->will_topic);
        assert_bytes_eq(d->will_payload, c->will_payload);
        assert_true(d->has_username && d->has_password);
        assert_bytes_eq(d->username, c->username);
        assert_bytes_eq(d->password, c->password);
        assert_int_equal(d->props.user_prop_count, v == MQTT_V5 ? 3 : 0);
    }
}

static void test_connect_round_trip_minimal_empty_client_id(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        struct mqtt_packet in = {.type = MQTT_CONNECT}, out;
        in.u.connect.client_id = str(""); /* emptiness is the broker's decision */
        round_trip(&in, versions[vi], buf, &out);
        assert_int_equal(out.u.connect.client_id.len, 0);
        assert_non_null(out.u.connect.client_id.data); /* present, not absent */
        assert_false(out.u.connect.will_flag || out.u.connect.has_username ||
                     out.u.connect.has_password || out.u.connect.clean_start);
    }
}

static void test_connack_round_trip_both_versions(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct user_buf ub;
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        struct mqtt_packet in = {.type = MQTT_CONNACK}, out;
        in.u.connack.session_present = true;
        props_fill(&in.u.connack.props, ids_connack, sizeof(ids_connack), &ub, 0);
        round_trip(&in, v, buf, &out);
        assert_true(out.u.connack.session_present);
        assert_int_equal(out.u.connack.reason_code, 0);
        check_props(&in.u.connack.props, &out.u.connack.props, v);

        in.u.connack.session_present = false;
        in.u.connack.reason_code =
            v == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : MQTT_CONNACK_V311_NOT_AUTHORIZED;
        round_trip(&in, v, buf, &out);
        assert_false(out.u.connack.session_present);
        assert_int_equal(out.u.connack.reason_code, in.u.connack.reason_code);
    }
}

static void test_publish_round_trip_every_qos_both_versions(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct user_buf ub;
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        for (uint8_t qos = 0; qos <= 2; qos++) {
            struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
            struct mqtt_publish *p = &in.u.publish;
            p->qos = qos;
            p->dup = qos > 0;
            p->retain = qos != 1;
            p->packet_id = qos ? (uint16_t)(0xFFFF - qos) : 0;
            p->topic = str("sensors/\xC3\xA9/temp");
            p->payload = qos == 1 ? str("") : str("{\"t\":21.5}");
            props_fill(&p->props, ids_publish, sizeof(ids_publish), &ub, MQTT_SUB_IDS_MAX);
            round_trip(&in, v, buf, &out);
            const struct mqtt_publish *d = &out.u.publish;
            assert_int_equal(d->qos, qos);
            assert_int_equal(d->dup, p->dup);
            assert_int_equal(d->retain, p->retain);
            assert_int_equal(d->packet_id, p->packet_id);
            assert_bytes_eq(d->topic, p->topic);
            assert_bytes_eq(d->payload, p->payload);
            check_props(&p->props, &d->props, v);
        }
    }
}

static void test_publish_v5_empty_topic_with_alias_round_trips(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
    in.u.publish.topic = str("");
    in.u.publish.props.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    in.u.publish.props.topic_alias = 7;
    round_trip(&in, MQTT_V5, buf, &out);
    assert_int_equal(out.u.publish.topic.len, 0);
    assert_int_equal(out.u.publish.props.topic_alias, 7);
}

static void test_acks_round_trip_both_versions(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    struct user_buf ub;
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        for (size_t ti = 0; ti < sizeof(types); ti++) {
            struct mqtt_packet in = {.type = types[ti]}, out;
            in.u.ack.packet_id = 0x1234;
            bool rel = types[ti] == MQTT_PUBREL || types[ti] == MQTT_PUBCOMP;
            in.u.ack.reason_code = v == MQTT_V5 ? (rel ? 0x92 : 0x97) : 0;
            props_fill(&in.u.ack.props, ids_ack, sizeof(ids_ack), &ub, 0);
            round_trip(&in, v, buf, &out);
            assert_int_equal(out.u.ack.packet_id, 0x1234);
            assert_int_equal(out.u.ack.reason_code, in.u.ack.reason_code);
            check_props(&in.u.ack.props, &out.u.ack.props, v);
        }
    }
}

static void test_subscribe_round_trip_every_option_both_versions(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct user_buf ub;
    const struct mqtt_sub_entry entries[] = {
        {str("a/+/c"), 0x00},
        {str("$share/g/#"), 0x01 | MQTT_SUBOPT_NO_LOCAL},
        {str("x"), 0x02 | MQTT_SUBOPT_RETAIN_AS_PUBLISHED | (2 << 4)},
        {str("a/#/b"), 0x01 | (1 << 4)}, /* bad syntax: the broker's SUBACK says so */
        {str(""), 0x00},                 /* likewise */
    };
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        struct mqtt_packet in = {.type = MQTT_SUBSCRIBE}, out;
        in.u.subscribe.packet_id = 1;
        in.u.subscribe.entries = entries;
        in.u.subscribe.entry_count = LMQ_ARRAY_LEN(entries);
        props_fill(&in.u.subscribe.props, ids_subscribe, sizeof(ids_subscribe), &ub, 1);
        round_trip(&in, v, buf, &out);
        assert_int_equal(out.u.subscribe.packet_id, 1);
        assert_int_equal(out.u.subscribe.entry_count, LMQ_ARRAY_LEN(entries));
        assert_null(out.u.subscribe.entries);
        check_props(&in.u.subscribe.props, &out.u.subscribe.props, v);
        struct lmq_bytes cursor = out.u.subscribe.payload;
        struct mqtt_sub_entry e;
        for (size_t i = 0; i < LMQ_ARRAY_LEN(entries); i++) {
            assert_true(mqtt_subscribe_next(&cursor, v, &e));
            assert_bytes_eq(e.filter, entries[i].filter);
            /* v3.1.1 carries only the QoS bits */
            uint8_t want = v == MQTT_V5 ? entries[i].options : (entries[i].options & 0x03);
            assert_int_equal(e.options, want);
        }
        assert_false(mqtt_subscribe_next(&cursor, v, &e));
        assert_false(mqtt_subscribe_next(&cursor, v, &e));
    }
}

static void test_unsubscribe_round_trip_both_versions(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct user_buf ub;
    const struct lmq_bytes filters[] = {str("a/b"), str("$share/g/+"), str("#")};
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        struct mqtt_packet in = {.type = MQTT_UNSUBSCRIBE}, out;
        in.u.unsubscribe.packet_id = 65535;
        in.u.unsubscribe.filters = filters;
        in.u.unsubscribe.filter_count = LMQ_ARRAY_LEN(filters);
        props_fill(&in.u.unsubscribe.props, ids_unsubscribe, sizeof(ids_unsubscribe), &ub, 0);
        round_trip(&in, v, buf, &out);
        assert_int_equal(out.u.unsubscribe.packet_id, 65535);
        assert_int_equal(out.u.unsubscribe.filter_count, LMQ_ARRAY_LEN(filters));
        check_props(&in.u.unsubscribe.props, &out.u.unsubscribe.props, v);
        struct lmq_bytes cursor = out.u.unsubscribe.payload, f;
        for (size_t i = 0; i < LMQ_ARRAY_LEN(filters); i++) {
            assert_true(mqtt_unsubscribe_next(&cursor, &f));
            assert_bytes_eq(f, filters[i]);
        }
        assert_false(mqtt_unsubscribe_next(&cursor, &f));
    }
}

static void test_suback_unsuback_round_trip_both_versions(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct user_buf ub;
    static const uint8_t sub_v5[] = {0x00, 0x01, 0x02, 0x80, 0x8F, 0x9E, 0xA1, 0xA2};
    static const uint8_t sub_v311[] = {0x00, 0x01, 0x02, 0x80};
    static const uint8_t unsub_v5[] = {0x00, 0x11, 0x8F};
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        struct mqtt_packet in = {.type = MQTT_SUBACK}, out;
        in.u.suback.packet_id = 9;
        in.u.suback.reason_codes.data = v == MQTT_V5 ? sub_v5 : sub_v311;
        in.u.suback.reason_codes.len = v == MQTT_V5 ? sizeof(sub_v5) : sizeof(sub_v311);
        props_fill(&in.u.suback.props, ids_ack, sizeof(ids_ack), &ub, 0);
        round_trip(&in, v, buf, &out);
        assert_int_equal(out.u.suback.packet_id, 9);
        assert_bytes_eq(out.u.suback.reason_codes, in.u.suback.reason_codes);
        check_props(&in.u.suback.props, &out.u.suback.props, v);

        in.type = MQTT_UNSUBACK;
        in.u.suback.reason_codes.data = unsub_v5;
        in.u.suback.reason_codes.len = sizeof(unsub_v5);
        round_trip(&in, v, buf, &out);
        assert_int_equal(out.u.suback.packet_id, 9);
        assert_int_equal(out.u.suback.reason_codes.len, v == MQTT_V5 ? sizeof(unsub_v5) : 0);
        if (v == MQTT_V5) {
            assert_bytes_eq(out.u.suback.reason_codes, in.u.suback.reason_codes);
        }
        check_props(&in.u.suback.props, &out.u.suback.props, v);
    }
}

static void test_ping_disconnect_auth_round_trip(void **state)
{
    (void)state;
    static uint8_t buf[BUF_CAP];
    struct user_buf ub;
    static const uint8_t simple[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        for (size_t ti = 0; ti < sizeof(simple); ti++) {
            struct mqtt_packet in = {.type = simple[ti]}, out;
            size_t n = encode_ok(&in, versions[vi], buf, BUF_CAP);
            assert_int_equal(n, 2);
            assert_int_equal(buf[0], simple[ti] << 4);
            assert_int_equal(buf[1], 0);
            decode_ok(buf, n, versions[vi], &out);
            assert_int_equal(out.type, simple[ti]);
        }
    }
    struct mqtt_packet in = {.type = MQTT_DISCONNECT}, out;
    in.u.disconnect.reason_code = MQTT_RC_DISCONNECT_WITH_WILL;
    props_fill(&in.u.disconnect.props, ids_disconnect, sizeof(ids_disconnect), &ub, 0);
    round_trip(&in, MQTT_V5, buf, &out);
    assert_int_equal(out.u.disconnect.reason_code, MQTT_RC_DISCONNECT_WITH_WILL);
    assert_props_eq(&in.u.disconnect.props, &out.u.disconnect.props);

    struct mqtt_packet auth = {.type = MQTT_AUTH};
    auth.u.disconnect.reason_code = MQTT_RC_CONTINUE_AUTHENTICATION;
    props_fill(&auth.u.disconnect.props, ids_auth, sizeof(ids_auth), &ub, 0);
    round_trip(&auth, MQTT_V5, buf, &out);
    assert_int_equal(out.u.disconnect.reason_code, MQTT_RC_CONTINUE_AUTHENTICATION);
    assert_props_eq(&auth.u.disconnect.props, &out.u.disconnect.props);
}

/* ------------------------------------------------------------------------------------------ */
/* Exact bytes, computed by hand from the specs                                               */

static void expect_bytes(const struct mqtt_packet *pkt, uint8_t v, const uint8_t *want, size_t n)
{
    uint8_t buf[BUF_CAP];
    size_t got = encode_ok(pkt, v, buf, sizeof(buf));
    assert_int_equal(got, n);
    assert_memory_equal(buf, want, n);
}

/* The AUTH packets of docs/PROTOCOL.md "Login over MQTT", worked example: the server's
 * challenge (nonce 00..1f), the client's answer (its signature) and re-authentication. */
static void test_auth_ledgermq_ed25519_example_bytes(void **state)
{
    (void)state;
    static const uint8_t method_prop[] = {0x15, 0x00, 0x10, 'l', 'e', 'd', 'g', 'e', 'r', 'm',
                                          'q',  '-',  'e',  'd', '2', '5', '5', '1', '9'};
    uint8_t want[128];
    uint8_t nonce[32];
    for (size_t i = 0; i < sizeof(nonce); i++)
        nonce[i] = (uint8_t)i;
    struct mqtt_packet pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_AUTH;
    pkt.u.disconnect.reason_code = MQTT_RC_CONTINUE_AUTHENTICATION;
    struct mqtt_props *p = &pkt.u.disconnect.props;
    p->present = MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD) |
                 MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
    p->authentication_method = str("ledgermq-ed25519");
    p->authentication_data = (struct lmq_bytes){nonce, sizeof(nonce)};
    /* f0 38 18 36 | 15 0010 "ledgermq-ed25519" | 16 0020 00..1f */
    size_t n = 0;
    want[n++] = 0xF0, want[n++] = 0x38, want[n++] = 0x18, want[n++] = 0x36;
    memcpy(want + n, method_prop, sizeof(method_prop));
    n += sizeof(method_prop);
    want[n++] = 0x16, want[n++] = 0x00, want[n++] = 0x20;
    memcpy(want + n, nonce, sizeof(nonce));
    n += sizeof(nonce);
    assert_int_equal(n, 58);
    expect_bytes(&pkt, MQTT_V5, want, n);
    struct mqtt_packet out;
    decode_ok(want, n, MQTT_V5, &out);
    assert_int_equal(out.type, MQTT_AUTH);
    assert_int_equal(out.u.disconnect.reason_code, MQTT_RC_CONTINUE_AUTHENTICATION);
    assert_bytes_eq(out.u.disconnect.props.authentication_method, str("ledgermq-ed25519"));
    assert_bytes_eq(out.u.disconnect.props.authentication_data, p->authentication_data);

    /* The client's AUTH 0x18: f0 58 18 56 | method | 16 0040 <64-byte signature>. */
    uint8_t sig[64];
    for (size_t i = 0; i < sizeof(sig); i++)
        sig[i] = (uint8_t)(0xA0 ^ i);
    p->authentication_data = (struct lmq_bytes){sig, sizeof(sig)};
    n = 0;
    want[n++] = 0xF0, want[n++] = 0x58, want[n++] = 0x18, want[n++] = 0x56;
    memcpy(want + n, method_prop, sizeof(method_prop));
    n += sizeof(method_prop);
    want[n++] = 0x16, want[n++] = 0x00, want[n++] = 0x40;
    memcpy(want + n, sig, sizeof(sig));
    n += sizeof(sig);
    assert_int_equal(n, 90);
    expect_bytes(&pkt, MQTT_V5, want, n);

    /* Re-authenticate (0x19) and Success (0x00) with the method only: f0 15 rc 13 | method. */
    static const uint8_t rcs[] = {MQTT_RC_REAUTHENTICATE, MQTT_RC_SUCCESS};
    for (size_t i = 0; i < sizeof(rcs); i++) {
        pkt.u.disconnect.reason_code = rcs[i];
        p->present = MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
        n = 0;
        want[n++] = 0xF0, want[n++] = 0x15, want[n++] = rcs[i], want[n++] = 0x13;
        memcpy(want + n, method_prop, sizeof(method_prop));
        n += sizeof(method_prop);
        expect_bytes(&pkt, MQTT_V5, want, n);
        decode_ok(want, n, MQTT_V5, &out);
        assert_int_equal(out.u.disconnect.reason_code, rcs[i]);
    }
}

static void test_connect_v5_matches_spec_example_bytes(void **state)
{
    (void)state;
    /*
     * MQTT 5.0 §3.1.2.11 variable header example: "MQTT", level 5, flags 0xCE (user name,
     * password, will QoS 1, will flag, clean start), keep alive 10, properties length 5,
     * Session Expiry Interval = 10. Payload added here: "c", no will props, "w", "x", "u", "p".
     */
    static const uint8_t want[] = {
        0x10, 0x20,                                                 /* CONNECT, 32 bytes */
        0x00, 0x04, 'M',  'Q',  'T',  'T',  0x05, 0xCE, 0x00, 0x0A, /* variable header */
        0x05, 0x11, 0x00, 0x00, 0x00, 0x0A,                         /* properties */
        0x00, 0x01, 'c',  0x00, 0x00, 0x01, 'w',  0x00, 0x01, 'x',  /* id, will */
        0x00, 0x01, 'u',  0x00, 0x01, 'p'};                         /* user, password */
    struct mqtt_packet pkt = {.type = MQTT_CONNECT}, out;
    struct mqtt_connect *c = &pkt.u.connect;
    c->protocol_version = MQTT_V5;
    c->clean_start = true;
    c->keep_alive_s = 10;
    c->props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    c->props.session_expiry_interval_s = 10;
    c->client_id = str("c");
    c->will_flag = true;
    c->will_qos = 1;
    c->will_topic = str("w");
    c->will_payload = str("x");
    c->has_username = c->has_password = true;
    c->username = str("u");
    c->password = str("p");
    expect_bytes(&pkt, MQTT_V5, want, sizeof(want));
    decode_ok(want, sizeof(want), MQTT_V311 /* ignored for CONNECT */, &out);
    assert_int_equal(out.u.connect.protocol_version, MQTT_V5);
    assert_int_equal(out.u.connect.props.session_expiry_interval_s, 10);
    assert_int_equal(out.u.connect.will_qos, 1);
}

static void test_v311_packets_match_hand_checked_bytes(void **state)
{
    (void)state;
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    pkt.u.connect.clean_start = true;
    pkt.u.connect.keep_alive_s = 60;
    pkt.u.connect.client_id = str("a");
    static const uint8_t connect[] = {0x10, 0x0D, 0x00, 0x04, 'M',  'Q',  'T', 'T',
                                      0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'a'};
    expect_bytes(&pkt, MQTT_V311, connect, sizeof(connect));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_PUBLISH;
    pkt.u.publish.qos = 1;
    pkt.u.publish.packet_id = 10;
    pkt.u.publish.topic = str("a/b");
    pkt.u.publish.payload = str("hi");
    static const uint8_t publish[] = {0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'};
    expect_bytes(&pkt, MQTT_V311, publish, sizeof(publish));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_CONNACK;
    pkt.u.connack.session_present = true;
    static const uint8_t connack[] = {0x20, 0x02, 0x01, 0x00};
    expect_bytes(&pkt, MQTT_V311, connack, sizeof(connack));

    const struct mqtt_sub_entry entry = {str("a/#"), 1};
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_SUBSCRIBE;
    pkt.u.subscribe.packet_id = 1;
    pkt.u.subscribe.entries = &entry;
    pkt.u.subscribe.entry_count = 1;
    static const uint8_t subscribe[] = {0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x01};
    expect_bytes(&pkt, MQTT_V311, subscribe, sizeof(subscribe));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_PUBREL;
    pkt.u.ack.packet_id = 0x0102;
    pkt.u.ack.reason_code = 0x92; /* no reason codes in 3.1.1: not written */
    static const uint8_t pubrel[] = {0x62, 0x02, 0x01, 0x02};
    expect_bytes(&pkt, MQTT_V311, pubrel, sizeof(pubrel));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_UNSUBACK;
    pkt.u.suback.packet_id = 5;
    static const uint8_t unsuback[] = {0xB0, 0x02, 0x00, 0x05};
    expect_bytes(&pkt, MQTT_V311, unsuback, sizeof(unsuback));
}

static void test_v5_short_forms_and_property_order_bytes(void **state)
{
    (void)state;
    struct mqtt_packet pkt = {.type = MQTT_PUBACK};
    pkt.u.ack.packet_id = 10;
    static const uint8_t puback_short[] = {0x40, 0x02, 0x00, 0x0A};
    expect_bytes(&pkt, MQTT_V5, puback_short, sizeof(puback_short));

    pkt.u.ack.reason_code = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    static const uint8_t puback_reason[] = {0x40, 0x03, 0x00, 0x0A, 0x10};
    expect_bytes(&pkt, MQTT_V5, puback_reason, sizeof(puback_reason));

    /* User properties go at their id (0x26), after the reason string (0x1F). */
    uint8_t ub[32];
    size_t used = 0;
    assert_int_equal(mqtt_user_prop_append(ub, sizeof(ub), &used, "k", "v"), 0);
    pkt.u.ack.reason_code = 0;
    pkt.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    pkt.u.ack.props.reason_string = str("r");
    pkt.u.ack.props.user_props.data = ub;
    pkt.u.ack.props.user_props.len = used;
    static const uint8_t puback_props[] = {0x40, 0x0F, 0x00, 0x0A, 0x00, 0x0B, 0x1F, 0x00, 0x01,
                                           'r',  0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'v'};
    expect_bytes(&pkt, MQTT_V5, puback_props, sizeof(puback_props));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_DISCONNECT;
    static const uint8_t disconnect[] = {0xE0, 0x00};
    expect_bytes(&pkt, MQTT_V5, disconnect, sizeof(disconnect));
    pkt.u.disconnect.reason_code = MQTT_RC_SERVER_SHUTTING_DOWN;
    static const uint8_t disconnect_rc[] = {0xE0, 0x01, 0x8B};
    expect_bytes(&pkt, MQTT_V5, disconnect_rc, sizeof(disconnect_rc));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_AUTH;
    static const uint8_t auth[] = {0xF0, 0x00};
    expect_bytes(&pkt, MQTT_V5, auth, sizeof(auth));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_PUBLISH;
    pkt.u.publish.topic = str("t");
    pkt.u.publish.payload = str("x");
    pkt.u.publish.props.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    pkt.u.publish.props.topic_alias = 5;
    pkt.u.publish.props.subscription_ids[0] = 128; /* two-byte VBI, before 0x23 */
    pkt.u.publish.props.subscription_id_count = 1;
    static const uint8_t publish[] = {0x30, 0x0B, 0x00, 0x01, 't',  0x06, 0x0B,
                                      0x80, 0x01, 0x23, 0x00, 0x05, 'x'};
    expect_bytes(&pkt, MQTT_V5, publish, sizeof(publish));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_SUBACK;
    static const uint8_t one = 0x01;
    pkt.u.suback.packet_id = 1;
    pkt.u.suback.reason_codes.data = &one;
    pkt.u.suback.reason_codes.len = 1;
    static const uint8_t suback[] = {0x90, 0x04, 0x00, 0x01, 0x00, 0x01};
    expect_bytes(&pkt, MQTT_V5, suback, sizeof(suback));

    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQTT_CONNACK;
    static const uint8_t connack[] = {0x20, 0x03, 0x00, 0x00, 0x00};
    expect_bytes(&pkt, MQTT_V5, connack, sizeof(connack));
}

/* ------------------------------------------------------------------------------------------ */
/* Fixed header                                                                               */

static void test_fixed_header_remaining_length_boundaries(void **state)
{
    (void)state;
    struct {
        uint8_t bytes[5];
        size_t n;
        uint32_t value;
    } cases[] = {
        {{0x00}, 1, 0},
        {{0x7F}, 1, 127},
        {{0x80, 0x01}, 2, 128},
        {{0xFF, 0x7F}, 2, 16383},
        {{0x80, 0x80, 0x01}, 3, 16384},
        {{0xFF, 0xFF, 0x7F}, 3, 2097151},
        {{0x80, 0x80, 0x80, 0x01}, 4, 2097152},
        {{0xFF, 0xFF, 0xFF, 0x7F}, 4, MQTT_REMAINING_LENGTH_MAX},
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        uint8_t buf[8] = {0x30};
        memcpy(buf + 1, cases[i].bytes, cases[i].n);
        uint8_t first = 0;
        uint32_t rem = 0;
        size_t hl = 0;
        assert_int_equal(mqtt_fixed_header_parse(buf, 1 + cases[i].n, &first, &rem, &hl), 0);
        assert_int_equal(first, 0x30);
        assert_int_equal(rem, cases[i].value);
        assert_int_equal(hl, 1 + cases[i].n);
        /* every shorter prefix asks for more */
        for (size_t cut = 0; cut < 1 + cases[i].n; cut++) {
            assert_int_equal(mqtt_fixed_header_parse(buf, cut, &first, &rem, &hl), LMQ_EAGAIN);
        }
    }
}

static void test_fixed_header_refuses_five_byte_and_non_minimal_lengths(void **state)
{
    (void)state;
    uint8_t first = 0;
    uint32_t rem = 0;
    size_t hl = 0;
    static const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    assert_int_equal(mqtt_fixed_header_parse(five, sizeof(five), &first, &rem, &hl), LMQ_EPROTO);
    /* Known bad after 4 length bytes even before the 5th arrives. */
    assert_int_equal(mqtt_fixed_header_parse(five, 5, &first, &rem, &hl), LMQ_EPROTO);
    assert_int_equal(mqtt_fixed_header_parse(five, 4, &first, &rem, &hl), LMQ_EAGAIN);
    static const uint8_t non_minimal[] = {0x30, 0x80, 0x00};
    assert_int_equal(mqtt_fixed_header_parse(non_minimal, 3, &first, &rem, &hl), LMQ_EPROTO);
    /* and decode maps them to Malformed Packet */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0xC0, 0x80, 0x00);
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F);
}

static void test_decode_refuses_length_mismatch_and_partial(void **state)
{
    (void)state;
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xC0, 0x01);       /* body missing */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xC0, 0x00, 0x00); /* extra byte */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xC0);             /* partial header */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0x40, 0x02, 0x00);
    struct mqtt_packet pkt;
    uint8_t reason = 0;
    assert_int_equal(mqtt_decode(NULL, 0, MQTT_V5, &pkt, &reason), LMQ_EPROTO);
    assert_int_equal(reason, MQTT_RC_MALFORMED_PACKET);
}

static void test_decode_refuses_bad_fixed_header_flags(void **state)
{
    (void)state;
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x60, 0x02, 0x00, 0x01); /* PUBREL flags 0 */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x63, 0x02, 0x00, 0x01); /* PUBREL flags 3 */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00);
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 'a');
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x42, 0x02, 0x00, 0x01); /* PUBACK flags */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0xC1, 0x00);             /* PINGREQ flags */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0xE8, 0x00);             /* DISCONNECT flags */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x11, 0x00);             /* CONNECT flags */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01); /* QoS 3 */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x38, 0x03, 0x00, 0x01, 't'); /* DUP with QoS 0 */
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x00, 0x00);                  /* type 0 */
    }
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xF0, 0x00); /* AUTH does not exist in 3.1.1 */
}

/* ------------------------------------------------------------------------------------------ */
/* CONNECT refusals                                                                           */

static void test_connect_refuses_unknown_protocol_with_level_seen(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    uint8_t reason = 0;
    /* MQTT 3.1: "MQIsdp", level 3 */
    static const uint8_t v31[] = {0x10, 0x0F, 0x00, 0x06, 'M',  'Q',  'I',  's', 'd',
                                  'p',  0x03, 0x02, 0x00, 0x3C, 0x00, 0x01, 'a'};
    assert_int_equal(mqtt_decode(v31, sizeof(v31), MQTT_V5, &pkt, &reason), LMQ_EPROTO);
    assert_int_equal(reason, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_int_equal(pkt.type, MQTT_CONNECT);
    assert_int_equal(pkt.u.connect.protocol_version, 3);

    static const uint8_t level6[] = {0x10, 0x0D, 0x00, 0x04, 'M',  'Q',  'T', 'T',
                                     0x06, 0x02, 0x00, 0x3C, 0x00, 0x01, 'a'};
    assert_int_equal(mqtt_decode(level6, sizeof(level6), MQTT_V311, &pkt, &reason), LMQ_EPROTO);
    assert_int_equal(reason, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_int_equal(pkt.u.connect.protocol_version, 6);

    static const uint8_t wrong_name[] = {0x10, 0x0D, 0x00, 0x04, 'M',  'Q',  'T', 'X',
                                         0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'a'};
    assert_int_equal(mqtt_decode(wrong_name, sizeof(wrong_name), 0, &pkt, &reason), LMQ_EPROTO);
    assert_int_equal(reason, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_int_equal(pkt.u.connect.protocol_version, 4);

    /* Truncated before the level: malformed, not a version problem. */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0x10, 0x06, 0x00, 0x04, 'M', 'Q', 'T', 'T');
}

/* v3.1.1 CONNECT header + client id "a" with the given flags and tail. */
#define CONNECT311(flags, rem, ...)                                                                \
    0x10, rem, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, flags, 0x00, 0x3C, 0x00, 0x01, 'a', __VA_ARGS__
#define CONNECT5(flags, rem, ...)                                                                  \
    0x10, rem, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, flags, 0x00, 0x3C, __VA_ARGS__

static void test_connect_refuses_bad_flags(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    /* reserved bit 0 */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x03, 13, ));
    /* will QoS / retain without the will flag */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x0A, 13, ));
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x22, 13, ));
    /* will QoS 3 */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET,
            CONNECT311(0x1E, 19, 0x00, 0x01, 'w', 0x00, 0x01, 'x'));
    /* v3.1.1: password without user name */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x42, 16, 0x00, 0x01, 'p'));
    /* v5 allows it */
    ACCEPTED(MQTT_V5, &pkt, CONNECT5(0x42, 17, 0x00, 0x00, 0x01, 'a', 0x00, 0x01, 'p'));
    assert_true(pkt.u.connect.has_password);
    assert_false(pkt.u.connect.has_username);
    /* a valid will */
    ACCEPTED(MQTT_V311, &pkt, CONNECT311(0x2C, 19, 0x00, 0x01, 'w', 0x00, 0x01, 'x'));
    assert_true(pkt.u.connect.will_flag && pkt.u.connect.will_retain);
    assert_int_equal(pkt.u.connect.will_qos, 1);
}

static void test_connect_refuses_bad_strings_and_trailing_bytes(void **state)
{
    (void)state;
    /* client id not UTF-8 */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
            0x02, 0x00, 0x3C, 0x00, 0x02, 0xC0, 0x80);
    /* will topic with a wildcard, and an empty will topic */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET,
            CONNECT311(0x04, 19, 0x00, 0x01, '#', 0x00, 0x01, 'x'));
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x04, 18, 0x00, 0x00, 0x00, 0x01, 'x'));
    /* will topic not UTF-8 */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET,
            CONNECT311(0x04, 19, 0x00, 0x01, 0xFF, 0x00, 0x01, 'x'));
    /* user name not UTF-8 */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x80, 16, 0x00, 0x01, 0x00));
    /* trailing byte after the payload */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x02, 14, 0x00));
    /* user name flag without a user name */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, CONNECT311(0x80, 13, ));
    /* v5 will properties: only the will set is allowed */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
            CONNECT5(0x04, 0x19, 0x00, 0x00, 0x01, 'a', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01, 0x00,
                     0x01, 'w', 0x00, 0x00));
    struct mqtt_packet pkt;
    ACCEPTED(MQTT_V5, &pkt,
             CONNECT5(0x04, 0x19, 0x00, 0x00, 0x01, 'a', 0x05, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00,
                      0x01, 'w', 0x00, 0x00));
    assert_int_equal(pkt.u.connect.will_props.will_delay_interval_s, 1);
    /* ...and will delay is not a CONNECT property */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
            CONNECT5(0x00, 0x13, 0x05, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 'a'));
}

/* ------------------------------------------------------------------------------------------ */
/* Property refusals (v5)                                                                     */

/* A v5 PUBLISH QoS 0 to "t" with the given properties (plen bytes) and no payload. */
#define PUB5(rem, plen, ...) 0x30, rem, 0x00, 0x01, 't', plen, __VA_ARGS__
/* A v5 CONNACK with the given properties. */
#define CONNACK5(rem, plen, ...) 0x20, rem, 0x00, 0x00, plen, __VA_ARGS__

static void test_properties_refuse_wrong_packet_duplicates_and_unknown_ids(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    /* Topic Alias in CONNECT */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
            CONNECT5(0x00, 0x11, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, 'a'));
    /* Session Expiry in PUBLISH */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, PUB5(9, 5, 0x11, 0x00, 0x00, 0x00, 0x01));
    /* Reason String in SUBSCRIBE */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x0B, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, 'r',
            0x00, 0x01, 'a', 0x00);
    /* Subscription Identifier in UNSUBSCRIBE */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xA2, 0x08, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01,
            'a');
    /* duplicates */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, PUB5(10, 6, 0x23, 0x00, 0x01, 0x23, 0x00, 0x01));
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02,
            0x00, 0x01, 'a', 0x00);
    /* repeated user properties and PUBLISH subscription ids are fine */
    ACCEPTED(MQTT_V5, &pkt,
             PUB5(18, 14, 0x26, 0x00, 0x01, 'k', 0x00, 0x00, 0x26, 0x00, 0x01, 'k', 0x00, 0x00,
                  0x0B, 0x05));
    assert_int_equal(pkt.u.publish.props.user_prop_count, 2);
    ACCEPTED(MQTT_V5, &pkt, PUB5(8, 4, 0x0B, 0x01, 0x0B, 0x7F));
    assert_int_equal(pkt.u.publish.props.subscription_id_count, 2);
    assert_int_equal(pkt.u.publish.props.subscription_ids[1], 127);
    /* unknown property ids */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(6, 2, 0x04, 0x00));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(6, 2, 0x00, 0x00));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(6, 2, 0x7F, 0x00));
    /* property length beyond the packet, and a property cut by the block's end */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(6, 5, 0x23, 0x00));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(7, 2, 0x23, 0x00, 0x01));
}

static void test_properties_refuse_out_of_range_values(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, PUB5(6, 2, 0x01, 0x02)); /* payload format 2 */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, PUB5(6, 2, 0x0B, 0x00)); /* sub id 0 */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
            CONNECT5(0x00, 0x10, 0x02, 0x17, 0x02, 0x00, 0x01, 'a')); /* request problem 2 */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
            CONNECT5(0x00, 0x10, 0x02, 0x19, 0x02, 0x00, 0x01, 'a')); /* request response 2 */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
            CONNECT5(0x00, 0x11, 0x03, 0x21, 0x00, 0x00, 0x00, 0x01, 'a')); /* receive max 0 */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
            CONNECT5(0x00, 0x13, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 'a'));
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, CONNACK5(5, 2, 0x24, 0x02)); /* max QoS 2 */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, CONNACK5(5, 2, 0x25, 0x02));
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, CONNACK5(5, 2, 0x28, 0x02));
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, CONNACK5(5, 2, 0x29, 0x02));
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, CONNACK5(5, 2, 0x2A, 0x02));
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, CONNACK5(6, 3, 0x21, 0x00, 0x00));
    /* 0/1 values pass; topic alias 0 is decoded as-is (the broker refuses it) */
    ACCEPTED(MQTT_V5, &pkt, CONNACK5(5, 2, 0x24, 0x00));
    ACCEPTED(MQTT_V5, &pkt, PUB5(7, 3, 0x23, 0x00, 0x00));
    assert_true(pkt.u.publish.props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS));
    assert_int_equal(pkt.u.publish.props.topic_alias, 0);
    /* sub id as a non-minimal or 5-byte VBI */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(7, 3, 0x0B, 0x81, 0x00));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(10, 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01));
}

static void test_properties_refuse_bad_strings_and_response_topic(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(8, 4, 0x03, 0x00, 0x01, 0xFF));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(10, 6, 0x03, 0x00, 0x03, 0xED, 0xA0, 0x80));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET,
            PUB5(11, 7, 0x26, 0x00, 0x01, 0x00, 0x00, 0x01, 'v')); /* key U+0000 */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET,
            PUB5(12, 8, 0x26, 0x00, 0x01, 'k', 0x00, 0x02, 0xC0, 0x80)); /* value overlong */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, CONNACK5(7, 4, 0x1F, 0x00, 0x01, 0xFE));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, CONNACK5(7, 4, 0x12, 0x00, 0x01, 0x80));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, CONNACK5(7, 4, 0x1A, 0x00, 0x01, 0x80));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, CONNACK5(7, 4, 0x1C, 0x00, 0x01, 0x80));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, CONNACK5(7, 4, 0x15, 0x00, 0x01, 0x80));
    /* binary data is not UTF-8 checked */
    ACCEPTED(MQTT_V5, &pkt, PUB5(8, 4, 0x09, 0x00, 0x01, 0xFF));
    ACCEPTED(MQTT_V5, &pkt, CONNACK5(7, 4, 0x16, 0x00, 0x01, 0x00));
    /* response topic must be a topic name */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, PUB5(10, 6, 0x08, 0x00, 0x03, 'a', '/', '+'));
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, PUB5(7, 3, 0x08, 0x00, 0x00));
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, PUB5(8, 4, 0x08, 0x00, 0x01, 0xFF));
    ACCEPTED(MQTT_V5, &pkt, PUB5(8, 4, 0x08, 0x00, 0x01, 'r'));
    assert_bytes_eq(pkt.u.publish.props.response_topic, str("r"));
}

static void test_properties_refuse_too_many_subscription_ids(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = 0;
    size_t ids = MQTT_SUB_IDS_MAX + 1;
    buf[n++] = 0x30;
    buf[n++] = (uint8_t)(3 + 1 + 2 * ids);
    buf[n++] = 0x00;
    buf[n++] = 0x01;
    buf[n++] = 't';
    buf[n++] = (uint8_t)(2 * ids);
    for (size_t i = 0; i < ids; i++) {
        buf[n++] = 0x0B;
        buf[n++] = (uint8_t)(i + 1);
    }
    assert_int_equal(decode_refused(buf, n, MQTT_V5), MQTT_RC_MALFORMED_PACKET);
    /* exactly the maximum decodes */
    buf[1] = (uint8_t)(buf[1] - 2);
    buf[5] = (uint8_t)(buf[5] - 2);
    struct mqtt_packet pkt;
    decode_ok(buf, n - 2, MQTT_V5, &pkt);
    assert_int_equal(pkt.u.publish.props.subscription_id_count, MQTT_SUB_IDS_MAX);
    assert_int_equal(pkt.u.publish.props.subscription_ids[MQTT_SUB_IDS_MAX - 1], MQTT_SUB_IDS_MAX);
}

/* ------------------------------------------------------------------------------------------ */
/* PUBLISH refusals                                                                           */

static void test_publish_refuses_bad_topics_and_packet_id(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        uint8_t p0 = v == MQTT_V5 ? 1 : 0; /* v5 adds a zero property length */
        uint8_t b_utf8[] = {0x30, (uint8_t)(4 + p0), 0x00, 0x02, 0xC0, 0x80, 0x00};
        assert_int_equal(decode_refused(b_utf8, sizeof(b_utf8) - 1 + p0, v),
                         MQTT_RC_MALFORMED_PACKET);
        uint8_t b_plus[] = {0x30, (uint8_t)(5 + p0), 0x00, 0x03, 'a', '/', '+', 0x00};
        assert_int_equal(decode_refused(b_plus, sizeof(b_plus) - 1 + p0, v),
                         MQTT_RC_TOPIC_NAME_INVALID);
        uint8_t b_hash[] = {0x30, (uint8_t)(3 + p0), 0x00, 0x01, '#', 0x00};
        assert_int_equal(decode_refused(b_hash, sizeof(b_hash) - 1 + p0, v),
                         MQTT_RC_TOPIC_NAME_INVALID);
        uint8_t b_empty[] = {0x30, (uint8_t)(2 + p0), 0x00, 0x00, 0x00};
        assert_int_equal(decode_refused(b_empty, sizeof(b_empty) - 1 + p0, v),
                         MQTT_RC_PROTOCOL_ERROR);
        uint8_t b_id0[] = {0x32, (uint8_t)(5 + p0), 0x00, 0x01, 't', 0x00, 0x00, 0x00};
        assert_int_equal(decode_refused(b_id0, sizeof(b_id0) - 1 + p0, v), MQTT_RC_PROTOCOL_ERROR);
        uint8_t b_noid[] = {0x34, 0x04, 0x00, 0x01, 't', 0x00};
        assert_int_equal(decode_refused(b_noid, sizeof(b_noid), v), MQTT_RC_MALFORMED_PACKET);
        /* empty payload and a "$" topic are fine */
        uint8_t ok[] = {0x31, (uint8_t)(6 + p0), 0x00, 0x04, '$', 'S', 'Y', 'S', 0x00};
        decode_ok(ok, sizeof(ok) - 1 + p0, v, &pkt);
        assert_true(pkt.u.publish.retain);
        assert_int_equal(pkt.u.publish.payload.len, 0);
        assert_non_null(pkt.u.publish.payload.data);
    }
    /* v5: empty topic allowed with a Topic Alias */
    ACCEPTED(MQTT_V5, &pkt, 0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x02, 'x');
    assert_int_equal(pkt.u.publish.topic.len, 0);
    assert_int_equal(pkt.u.publish.props.topic_alias, 2);
    assert_bytes_eq(pkt.u.publish.payload, str("x"));
    /* truncated property length */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0x30, 0x03, 0x00, 0x01, 't');
}

/* ------------------------------------------------------------------------------------------ */
/* Acknowledgement refusals                                                                   */

static void test_acks_refuse_packet_id_zero_lengths_and_reason_codes(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    for (size_t vi = 0; vi < LMQ_ARRAY_LEN(versions); vi++) {
        uint8_t v = versions[vi];
        REFUSED(v, MQTT_RC_PROTOCOL_ERROR, 0x40, 0x02, 0x00, 0x00);
        REFUSED(v, MQTT_RC_PROTOCOL_ERROR, 0x62, 0x02, 0x00, 0x00);
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x50, 0x01, 0x00);
        REFUSED(v, MQTT_RC_MALFORMED_PACKET, 0x70, 0x00);
    }
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x40, 0x03, 0x00, 0x01, 0x00);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x40, 0x04, 0x00, 0x01, 0x00, 0x00);
    ACCEPTED(MQTT_V5, &pkt, 0x40, 0x02, 0x00, 0x07);
    assert_int_equal(pkt.u.ack.packet_id, 7);
    assert_int_equal(pkt.u.ack.reason_code, 0);
    ACCEPTED(MQTT_V5, &pkt, 0x50, 0x03, 0x00, 0x07, 0x80);
    assert_int_equal(pkt.u.ack.reason_code, 0x80);
    ACCEPTED(MQTT_V5, &pkt, 0x70, 0x04, 0x00, 0x07, 0x92, 0x00);
    assert_int_equal(pkt.u.ack.reason_code, 0x92);
    /* reason codes outside each packet's set */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x40, 0x03, 0x00, 0x01, 0x92);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x50, 0x03, 0x00, 0x01, 0x01);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x62, 0x03, 0x00, 0x01, 0x10);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x70, 0x03, 0x00, 0x01, 0x80);
    /* a property not allowed in PUBACK, and a property block cut short */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01);
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0x40, 0x05, 0x00, 0x01, 0x00, 0x05, 0x1F);
}

static void test_connack_suback_unsuback_refusals(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x20, 0x02, 0x02, 0x00); /* reserved flag */
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x20, 0x02, 0x00, 0x06);   /* return code 6 */
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x20, 0x02, 0x01, 0x05);   /* SP with refusal */
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x20, 0x03, 0x00, 0x00, 0x00);
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0x20, 0x02, 0x00, 0x00); /* no property length */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x20, 0x03, 0x00, 0x01, 0x00);
    ACCEPTED(MQTT_V5, &pkt, 0x20, 0x03, 0x00, 0x87, 0x00);
    assert_int_equal(pkt.u.connack.reason_code, MQTT_RC_NOT_AUTHORIZED);

    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x02, 0x00, 0x01);       /* no codes */
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x03, 0x00, 0x00, 0x00); /* id 0 */
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x03, 0x00, 0x01, 0x03);
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x03, 0x00, 0x01, 0x8F); /* v5-only code */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x90, 0x04, 0x00, 0x01, 0x00, 0x11);
    ACCEPTED(MQTT_V5, &pkt, 0x90, 0x05, 0x00, 0x01, 0x00, 0x8F, 0xA2);
    assert_int_equal(pkt.u.suback.reason_codes.len, 2);

    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xB0, 0x03, 0x00, 0x01, 0x00);
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0xB0, 0x02, 0x00, 0x00);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xB0, 0x03, 0x00, 0x01, 0x00); /* no codes */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xB0, 0x04, 0x00, 0x01, 0x00, 0x01);
    ACCEPTED(MQTT_V5, &pkt, 0xB0, 0x04, 0x00, 0x01, 0x00, 0x11);
    assert_int_equal(pkt.u.suback.reason_codes.data[0], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
}

/* ------------------------------------------------------------------------------------------ */
/* SUBSCRIBE / UNSUBSCRIBE refusals                                                           */

static void test_subscribe_refusals(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    /* v3.1.1 */
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x02, 0x00, 0x01);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0xFF, 0x00);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a');
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0x82, 0x04, 0x00, 0x01, 0x00, 0x05);
    /* v5 */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 'a', 0x00);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x03, 0x00, 0x01, 0x00);
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40);
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x80);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30);
    /* bad filter syntax and empty filters are for the broker to answer in SUBACK */
    ACCEPTED(MQTT_V5, &pkt, 0x82, 0x0E, 0x00, 0x01, 0x00, 0x00, 0x05, 'a', '/', '#', '/', 'b', 0x2E,
             0x00, 0x00, 0x00);
    assert_int_equal(pkt.u.subscribe.entry_count, 2);
    struct lmq_bytes cursor = pkt.u.subscribe.payload;
    struct mqtt_sub_entry e;
    assert_true(mqtt_subscribe_next(&cursor, MQTT_V5, &e));
    assert_bytes_eq(e.filter, str("a/#/b"));
    assert_int_equal(e.options, 0x2E);
    assert_true(mqtt_subscribe_next(&cursor, MQTT_V5, &e));
    assert_int_equal(e.filter.len, 0);
    assert_false(mqtt_subscribe_next(&cursor, MQTT_V5, &e));
    /* subscription identifier accepted, decoded */
    ACCEPTED(MQTT_V5, &pkt, 0x82, 0x0A, 0x00, 0x01, 0x03, 0x0B, 0x80, 0x01, 0x00, 0x01, 'a', 0x01);
    assert_int_equal(pkt.u.subscribe.props.subscription_ids[0], 128);
}

static void test_unsubscribe_refusals(void **state)
{
    (void)state;
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 'a');
    REFUSED(MQTT_V311, MQTT_RC_PROTOCOL_ERROR, 0xA2, 0x02, 0x00, 0x01);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, 0x80);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xA2, 0x05, 0x00, 0x01, 0x00, 0x02, 'a');
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xA2, 0x03, 0x00, 0x01, 0x00);
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0xC1);
}

static void test_ping_disconnect_auth_refusals(void **state)
{
    (void)state;
    struct mqtt_packet pkt;
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xC0, 0x01, 0x00);
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0xD0, 0x01, 0x00);
    REFUSED(MQTT_V311, MQTT_RC_MALFORMED_PACKET, 0xE0, 0x01, 0x00);
    ACCEPTED(MQTT_V5, &pkt, 0xE0, 0x00);
    assert_int_equal(pkt.u.disconnect.reason_code, 0);
    assert_int_equal(pkt.u.disconnect.props.present, 0);
    ACCEPTED(MQTT_V5, &pkt, 0xE0, 0x01, 0x8E);
    assert_int_equal(pkt.u.disconnect.reason_code, MQTT_RC_SESSION_TAKEN_OVER);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xE0, 0x01, 0x01); /* not a DISCONNECT code */
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xE0, 0x05, 0x00, 0x03, 0x23, 0x00, 0x01);
    ACCEPTED(MQTT_V5, &pkt, 0xF0, 0x00);
    assert_int_equal(pkt.type, MQTT_AUTH);
    assert_int_equal(pkt.u.disconnect.reason_code, 0);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xF0, 0x02, 0x04, 0x00);
    REFUSED(MQTT_V5, MQTT_RC_PROTOCOL_ERROR, 0xF0, 0x07, 0x18, 0x05, 0x11, 0x00, 0x00, 0x00,
            0x01); /* session exp */
    REFUSED(MQTT_V5, MQTT_RC_MALFORMED_PACKET, 0xF0, 0x03, 0x18, 0x00, 0x00);
}

static void test_decode_rejects_unknown_connection_version(void **state)
{
    (void)state;
    static const uint8_t ping[] = {0xC0, 0x00};
    struct mqtt_packet pkt;
    uint8_t reason = 0;
    assert_int_equal(mqtt_decode(ping, sizeof(ping), 3, &pkt, &reason), LMQ_EINVAL);
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding limits                                                                            */

static void test_encode_into_small_buffer_is_too_big_and_writes_nothing_past_cap(void **state)
{
    (void)state;
    struct user_buf ub1, ub2;
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &pkt.u.connect;
    c->client_id = str("client");
    c->will_flag = true;
    c->will_topic = str("w/t");
    c->will_payload = str("bye");
    props_fill(&c->props, ids_connect, sizeof(ids_connect), &ub1, 0);
    props_fill(&c->will_props, ids_will, sizeof(ids_will), &ub2, 0);
    size_t need = 0;
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V5, &need), 0);
    for (size_t cap = 0; cap < need; cap++) {
        /* exact-size heap block: ASan reports any write past cap */
        uint8_t *out = malloc(cap ? cap : 1);
        assert_non_null(out);
        memset(out, 0xA5, cap ? cap : 1);
        size_t written = 12345;
        assert_int_equal(mqtt_encode(&pkt, MQTT_V5, out, cap, &written), LMQ_ETOOBIG);
        assert_int_equal(written, 12345);
        for (size_t i = 0; i < cap; i++) {
            assert_int_equal(out[i], 0xA5); /* refused before writing anything */
        }
        free(out);
    }
    uint8_t *out = malloc(need);
    assert_non_null(out);
    size_t written = 0;
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, out, need, &written), 0);
    assert_int_equal(written, need);
    free(out);
}

static void test_encode_refuses_inexpressible_packets(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = 0;
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish.topic = str("t");
    pkt.u.publish.qos = 1; /* packet id 0 */
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V5, &n), LMQ_EINVAL);
    pkt.u.publish.qos = 3;
    pkt.u.publish.packet_id = 1;
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.qos = 0;
    pkt.u.publish.dup = true;
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.dup = false;

    /* an empty topic needs a v5 Topic Alias */
    pkt.u.publish.topic = str("");
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.props.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    pkt.u.publish.props.topic_alias = 1;
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, buf, sizeof(buf), &n), LMQ_EINVAL);
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &n), 0);
    pkt.u.publish.props.present = 0;

    /* a string longer than 65535 bytes (never read: refused in the counting pass) */
    static uint8_t big[65536];
    pkt.u.publish.topic.data = big;
    pkt.u.publish.topic.len = sizeof(big);
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.topic = str("t");

    /* remaining length: exactly the maximum is sized, one more is refused */
    pkt.u.publish.payload.data = big;
    pkt.u.publish.payload.len = MQTT_REMAINING_LENGTH_MAX - 3;
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V311, &n), 0);
    assert_int_equal(n, 1 + 4 + (size_t)MQTT_REMAINING_LENGTH_MAX);
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, buf, sizeof(buf), &n), LMQ_ETOOBIG);
    pkt.u.publish.payload.len++;
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V311, &n), LMQ_EINVAL);
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.payload = str("");

    /* properties: not allowed here, out of range, unknown bit, bad sub id */
    pkt.u.publish.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.props.present = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
    pkt.u.publish.props.payload_format_indicator = 2;
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.props.present = MQTT_PROP_BIT(0x04);
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    pkt.u.publish.props.present = 0;
    pkt.u.publish.props.subscription_id_count = 1; /* id 0 */
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    /* ...but properties are simply not written for v3.1.1 */
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, buf, sizeof(buf), &n), 0);
    assert_int_equal(n, 5);

    struct mqtt_packet other = {.type = MQTT_AUTH};
    assert_int_equal(mqtt_encode(&other, MQTT_V311, buf, sizeof(buf), &n), LMQ_EINVAL);
    other.type = 0;
    assert_int_equal(mqtt_encode(&other, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    other.type = MQTT_PINGREQ;
    assert_int_equal(mqtt_encode(&other, 6, buf, sizeof(buf), &n), LMQ_EINVAL);
    other.type = MQTT_SUBSCRIBE;
    other.u.subscribe.packet_id = 1; /* no entries */
    assert_int_equal(mqtt_encode(&other, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    memset(&other, 0, sizeof(other));
    other.type = MQTT_PUBACK; /* packet id 0 */
    assert_int_equal(mqtt_encode(&other, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    other.u.ack.packet_id = 1;
    other.u.ack.reason_code = 0x92; /* not a PUBACK code */
    assert_int_equal(mqtt_encode(&other, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
    memset(&other, 0, sizeof(other));
    other.type = MQTT_CONNECT;
    other.u.connect.has_password = true; /* without user name: only v5 allows it */
    assert_int_equal(mqtt_encode(&other, MQTT_V311, buf, sizeof(buf), &n), LMQ_EINVAL);
    assert_int_equal(mqtt_encode(&other, MQTT_V5, buf, sizeof(buf), &n), 0);
    other.u.connect.will_qos = 1; /* without the will flag */
    assert_int_equal(mqtt_encode(&other, MQTT_V5, buf, sizeof(buf), &n), LMQ_EINVAL);
}

/* ------------------------------------------------------------------------------------------ */
/* User properties and iterators                                                              */

static void test_user_prop_append_bounds_and_iteration(void **state)
{
    (void)state;
    uint8_t buf[16];
    size_t used = 0;
    assert_int_equal(mqtt_user_prop_append(buf, sizeof(buf), &used, "key", "value"), 0);
    assert_int_equal(used, 1 + 2 + 3 + 2 + 5);
    static const uint8_t want[] = {0x26, 0x00, 0x03, 'k', 'e', 'y', 0x00,
                                   0x05, 'v',  'a',  'l', 'u', 'e'};
    assert_memory_equal(buf, want, sizeof(want));
    /* does not fit: refused, nothing changes */
    memset(buf + used, 0xEE, sizeof(buf) - used);
    assert_int_equal(mqtt_user_prop_append(buf, sizeof(buf), &used, "k", "v"), LMQ_ETOOBIG);
    assert_int_equal(used, 13);
    for (size_t i = used; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], 0xEE);
    }
    assert_int_equal(mqtt_user_prop_append(buf, sizeof(buf), &used, "\xC0\x80", ""), LMQ_EINVAL);

    struct lmq_bytes cursor = {buf, used}, k, v;
    assert_true(mqtt_user_prop_next(&cursor, &k, &v));
    assert_bytes_eq(k, str("key"));
    assert_bytes_eq(v, str("value"));
    assert_false(mqtt_user_prop_next(&cursor, &k, &v));
    struct lmq_bytes none = {NULL, 0};
    assert_false(mqtt_user_prop_next(&none, &k, &v));
    /* a truncated span stops the walk instead of reading past it */
    struct lmq_bytes cut = {buf, used - 1};
    assert_false(mqtt_user_prop_next(&cut, &k, &v));
    assert_int_equal(cut.len, 0);
}

static void test_interleaved_user_props_iterate_and_reencode_without_duplicates(void **state)
{
    (void)state;
    /* user prop, content type, user prop: the span covers the content type in between */
    static const uint8_t in[] = {0x30, 0x16, 0x00, 0x01, 't', 0x12, 0x26, 0x00,
                                 0x01, 'a',  0x00, 0x01, '1', 0x03, 0x00, 0x01,
                                 'c',  0x26, 0x00, 0x01, 'b', 0x00, 0x01, '2'};
    struct mqtt_packet pkt, again;
    decode_ok(in, sizeof(in), MQTT_V5, &pkt);
    assert_int_equal(pkt.u.publish.props.user_prop_count, 2);
    assert_bytes_eq(pkt.u.publish.props.content_type, str("c"));
    struct lmq_bytes cursor = pkt.u.publish.props.user_props, k, v;
    assert_true(mqtt_user_prop_next(&cursor, &k, &v));
    assert_bytes_eq(k, str("a"));
    assert_true(mqtt_user_prop_next(&cursor, &k, &v));
    assert_bytes_eq(k, str("b"));
    assert_bytes_eq(v, str("2"));
    assert_false(mqtt_user_prop_next(&cursor, &k, &v));

    uint8_t buf[64];
    size_t n = encode_ok(&pkt, MQTT_V5, buf, sizeof(buf));
    assert_int_equal(n, sizeof(in)); /* same properties, reordered by id */
    static const uint8_t want[] = {0x30, 0x16, 0x00, 0x01, 't',  0x12, 0x03, 0x00,
                                   0x01, 'c',  0x26, 0x00, 0x01, 'a',  0x00, 0x01,
                                   '1',  0x26, 0x00, 0x01, 'b',  0x00, 0x01, '2'};
    assert_memory_equal(buf, want, sizeof(want));
    decode_ok(buf, n, MQTT_V5, &again);
    assert_props_eq(&pkt.u.publish.props, &again.u.publish.props);
}

static void test_iterators_stop_on_malformed_cursor(void **state)
{
    (void)state;
    static const uint8_t bad[] = {0x00, 0x05, 'a'};
    struct lmq_bytes cursor = {bad, sizeof(bad)}, f;
    struct mqtt_sub_entry e;
    assert_false(mqtt_unsubscribe_next(&cursor, &f));
    assert_int_equal(cursor.len, 0);
    cursor.data = bad;
    cursor.len = sizeof(bad);
    assert_false(mqtt_subscribe_next(&cursor, MQTT_V5, &e));
    struct lmq_bytes none = {NULL, 0};
    assert_false(mqtt_subscribe_next(&none, MQTT_V311, &e));
    assert_false(mqtt_unsubscribe_next(&none, &f));
}

static void test_packet_type_names(void **state)
{
    (void)state;
    assert_string_equal(mqtt_packet_type_name(MQTT_PUBLISH), "PUBLISH");
    assert_string_equal(mqtt_packet_type_name(MQTT_CONNECT), "CONNECT");
    assert_string_equal(mqtt_packet_type_name(MQTT_AUTH), "AUTH");
    assert_string_equal(mqtt_packet_type_name(MQTT_UNSUBACK), "UNSUBACK");
    assert_string_equal(mqtt_packet_type_name(0), "UNKNOWN");
    assert_string_equal(mqtt_packet_type_name(16), "UNKNOWN");
    assert_string_equal(mqtt_packet_type_name(255), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_round_trip_all_fields_both_versions),
        cmocka_unit_test(test_connect_round_trip_minimal_empty_client_id),
        cmocka_unit_test(test_connack_round_trip_both_versions),
        cmocka_unit_test(test_publish_round_trip_every_qos_both_versions),
        cmocka_unit_test(test_publish_v5_empty_topic_with_alias_round_trips),
        cmocka_unit_test(test_acks_round_trip_both_versions),
        cmocka_unit_test(test_subscribe_round_trip_every_option_both_versions),
        cmocka_unit_test(test_unsubscribe_round_trip_both_versions),
        cmocka_unit_test(test_suback_unsuback_round_trip_both_versions),
        cmocka_unit_test(test_ping_disconnect_auth_round_trip),
        cmocka_unit_test(test_auth_ledgermq_ed25519_example_bytes),
        cmocka_unit_test(test_connect_v5_matches_spec_example_bytes),
        cmocka_unit_test(test_v311_packets_match_hand_checked_bytes),
        cmocka_unit_test(test_v5_short_forms_and_property_order_bytes),
        cmocka_unit_test(test_fixed_header_remaining_length_boundaries),
        cmocka_unit_test(test_fixed_header_refuses_five_byte_and_non_minimal_lengths),
        cmocka_unit_test(test_decode_refuses_length_mismatch_and_partial),
        cmocka_unit_test(test_decode_refuses_bad_fixed_header_flags),
        cmocka_unit_test(test_connect_refuses_unknown_protocol_with_level_seen),
        cmocka_unit_test(test_connect_refuses_bad_flags),
        cmocka_unit_test(test_connect_refuses_bad_strings_and_trailing_bytes),
        cmocka_unit_test(test_properties_refuse_wrong_packet_duplicates_and_unknown_ids),
        cmocka_unit_test(test_properties_refuse_out_of_range_values),
        cmocka_unit_test(test_properties_refuse_bad_strings_and_response_topic),
        cmocka_unit_test(test_properties_refuse_too_many_subscription_ids),
        cmocka_unit_test(test_publish_refuses_bad_topics_and_packet_id),
        cmocka_unit_test(test_acks_refuse_packet_id_zero_lengths_and_reason_codes),
        cmocka_unit_test(test_connack_suback_unsuback_refusals),
        cmocka_unit_test(test_subscribe_refusals),
        cmocka_unit_test(test_unsubscribe_refusals),
        cmocka_unit_test(test_ping_disconnect_auth_refusals),
        cmocka_unit_test(test_decode_rejects_unknown_connection_version),
        cmocka_unit_test(test_encode_into_small_buffer_is_too_big_and_writes_nothing_past_cap),
        cmocka_unit_test(test_encode_refuses_inexpressible_packets),
        cmocka_unit_test(test_user_prop_append_bounds_and_iteration),
        cmocka_unit_test(test_interleaved_user_props_iterate_and_reencode_without_duplicates),
        cmocka_unit_test(test_iterators_stop_on_malformed_cursor),
        cmocka_unit_test(test_packet_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
