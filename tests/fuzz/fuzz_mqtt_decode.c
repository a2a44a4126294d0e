/*
 * libFuzzer target for the MQTT codec. For both protocol versions it decodes the input, and
 * when the decoder accepts it:
 *   - walks every iterator and checks they agree with the decoder's counts;
 *   - re-encodes the packet (which must succeed: what we accept we can express), checks
 *     mqtt_encoded_size() agrees with what mqtt_encode() wrote into an exact-size heap block;
 *   - decodes the re-encoding and checks every field equals the first decode (round trip);
 *   - encodes that again and checks the bytes are identical (the encoding is canonical).
 * Any broken oracle aborts, which libFuzzer reports as a crash.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lmq.h"
#include "mqtt/mqtt_codec.h"

#include "fuzz_check.h"

static bool bytes_eq(struct lmq_bytes a, struct lmq_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Counts user properties by walking them; also checks each lies inside the span. */
static size_t user_props_count(struct lmq_bytes span)
{
    struct lmq_bytes cursor = span, k, v;
    size_t n = 0;
    while (mqtt_user_prop_next(&cursor, &k, &v)) {
        CHECK(k.data >= span.data && k.data + k.len <= span.data + span.len);
        CHECK(v.data >= span.data && v.data + v.len <= span.data + span.len);
        n++;
        CHECK(n <= span.len);
    }
    CHECK(cursor.len == 0);
    return n;
}

static void check_user_props_eq(struct lmq_bytes a, struct lmq_bytes b)
{
    struct lmq_bytes ka, va, kb, vb;
    for (;;) {
        bool more_a = mqtt_user_prop_next(&a, &ka, &va);
        bool more_b = mqtt_user_prop_next(&b, &kb, &vb);
        CHECK(more_a == more_b);
        if (!more_a) {
            return;
        }
        CHECK(bytes_eq(ka, kb) && bytes_eq(va, vb));
    }
}

static void check_props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    CHECK(a->present == b->present);
    CHECK(a->payload_format_indicator == b->payload_format_indicator);
    CHECK(a->message_expiry_interval_s == b->message_expiry_interval_s);
    CHECK(bytes_eq(a->content_type, b->content_type));
    CHECK(bytes_eq(a->response_topic, b->response_topic));
    CHECK(bytes_eq(a->correlation_data, b->correlation_data));
    CHECK(a->subscription_id_count == b->subscription_id_count);
    for (size_t i = 0; i < a->subscription_id_count; i++) {
        CHECK(a->subscription_ids[i] == b->subscription_ids[i]);
    }
    CHECK(a->session_expiry_interval_s == b->session_expiry_interval_s);
    CHECK(bytes_eq(a->assigned_client_identifier, b->assigned_client_identifier));
    CHECK(a->server_keep_alive_s == b->server_keep_alive_s);
    CHECK(bytes_eq(a->authentication_method, b->authentication_method));
    CHECK(bytes_eq(a->authentication_data, b->authentication_data));
    CHECK(a->request_problem_information == b->request_problem_information);
    CHECK(a->will_delay_interval_s == b->will_delay_interval_s);
    CHECK(a->request_response_information == b->request_response_information);
    CHECK(bytes_eq(a->response_information, b->response_information));
    CHECK(bytes_eq(a->server_reference, b->server_reference));
    CHECK(bytes_eq(a->reason_string, b->reason_string));
    CHECK(a->receive_maximum == b->receive_maximum);
    CHECK(a->topic_alias_maximum == b->topic_alias_maximum);
    CHECK(a->topic_alias == b->topic_alias);
    CHECK(a->maximum_qos == b->maximum_qos);
    CHECK(a->retain_available == b->retain_available);
    CHECK(a->user_prop_count == b->user_prop_count);
    check_user_props_eq(a->user_props, b->user_props);
    CHECK(a->maximum_packet_size == b->maximum_packet_size);
    CHECK(a->wildcard_subscription_available == b->wildcard_subscription_available);
    CHECK(a->subscription_identifier_available == b->subscription_identifier_available);
    CHECK(a->shared_subscription_available == b->shared_subscription_available);
}

static void check_props_sane(const struct mqtt_props *p)
{
    CHECK(user_props_count(p->user_props) == p->user_prop_count);
    CHECK(p->subscription_id_count <= MQTT_SUB_IDS_MAX);
}

static void check_subscribe_eq(const struct mqtt_subscribe *a, const struct mqtt_subscribe *b,
                               uint8_t version)
{
    struct lmq_bytes ca = a->payload, cb = b->payload;
    struct mqtt_sub_entry ea, eb;
    CHECK(a->packet_id == b->packet_id && a->entry_count == b->entry_count);
    check_props_eq(&a->props, &b->props);
    for (;;) {
        bool more_a = mqtt_subscribe_next(&ca, version, &ea);
        bool more_b = mqtt_subscribe_next(&cb, version, &eb);
        CHECK(more_a == more_b);
        if (!more_a) {
            return;
        }
        CHECK(bytes_eq(ea.filter, eb.filter) && ea.options == eb.options);
    }
}

static void check_unsubscribe_eq(const struct mqtt_unsubscribe *a, const struct mqtt_unsubscribe *b)
{
    struct lmq_bytes ca = a->payload, cb = b->payload, fa, fb;
    CHECK(a->packet_id == b->packet_id && a->filter_count == b->filter_count);
    check_props_eq(&a->props, &b->props);
    for (;;) {
        bool more_a = mqtt_unsubscribe_next(&ca, &fa);
        bool more_b = mqtt_unsubscribe_next(&cb, &fb);
        CHECK(more_a == more_b);
        if (!more_a) {
            return;
        }
        CHECK(bytes_eq(fa, fb));
    }
}

static void check_connect_eq(const struct mqtt_connect *a, const struct mqtt_connect *b)
{
    CHECK(a->protocol_version == b->protocol_version && a->clean_start == b->clean_start);
    CHECK(a->keep_alive_s == b->keep_alive_s);
    check_props_eq(&a->props, &b->props);
    CHECK(bytes_eq(a->client_id, b->client_id));
    CHECK(a->will_flag == b->will_flag && a->will_qos == b->will_qos);
    CHECK(a->will_retain == b->will_retain);
    check_props_eq(&a->will_props, &b->will_props);
    CHECK(bytes_eq(a->will_topic, b->will_topic) && bytes_eq(a->will_payload, b->will_payload));
    CHECK(a->has_username == b->has_username && bytes_eq(a->username, b->username));
    CHECK(a->has_password == b->has_password && bytes_eq(a->password, b->password));
}

static void check_packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b,
                            uint8_t version)
{
    CHECK(a->type == b->type);
    switch (a->type) {
    case MQTT_CONNECT:
        check_connect_eq(&a->u.connect, &b->u.connect);
        break;
    case MQTT_CONNACK:
        CHECK(a->u.connack.session_present == b->u.connack.session_present);
        CHECK(a->u.connack.reason_code == b->u.connack.reason_code);
        check_props_eq(&a->u.connack.props, &b->u.connack.props);
        break;
    case MQTT_PUBLISH:
        CHECK(a->u.publish.dup == b->u.publish.dup && a->u.publish.qos == b->u.publish.qos);
        CHECK(a->u.publish.retain == b->u.publish.retain);
        CHECK(a->u.publish.packet_id == b->u.publish.packet_id);
        CHECK(bytes_eq(a->u.publish.topic, b->u.publish.topic));
        CHECK(bytes_eq(a->u.publish.payload, b->u.publish.payload));
        check_props_eq(&a->u.publish.props, &b->u.publish.props);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        CHECK(a->u.ack.packet_id == b->u.ack.packet_id);
        CHECK(a->u.ack.reason_code == b->u.ack.reason_code);
        check_props_eq(&a->u.ack.props, &b->u.ack.props);
        break;
    case MQTT_SUBSCRIBE:
        check_subscribe_eq(&a->u.subscribe, &b->u.subscribe, version);
        break;
    case MQTT_UNSUBSCRIBE:
        check_unsubscribe_eq(&a->u.unsubscribe, &b->u.unsubscribe);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        CHECK(a->u.suback.packet_id == b->u.suback.packet_id);
        CHECK(bytes_eq(a->u.suback.reason_codes, b->u.suback.reason_codes));
        check_props_eq(&a->u.suback.props, &b->u.suback.props);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        CHECK(a->u.disconnect.reason_code == b->u.disconnect.reason_code);
        check_props_eq(&a->u.disconnect.props, &b->u.disconnect.props);
        break;
    default:
        break;
    }
}

/* Walks every iterator of a decoded packet; fills the entry arrays the encoder reads. */
static void walk_and_fill(struct mqtt_packet *pkt, uint8_t version, struct mqtt_sub_entry **entries,
                          struct lmq_bytes **filters)
{
    switch (pkt->type) {
    case MQTT_CONNECT:
        check_props_sane(&pkt->u.connect.props);
        check_props_sane(&pkt->u.connect.will_props);
        break;
    case MQTT_CONNACK:
        check_props_sane(&pkt->u.connack.props);
        break;
    case MQTT_PUBLISH:
        check_props_sane(&pkt->u.publish.props);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        check_props_sane(&pkt->u.ack.props);
        break;
    case MQTT_SUBSCRIBE: {
        struct mqtt_subscribe *s = &pkt->u.subscribe;
        struct lmq_bytes cursor = s->payload;
        check_props_sane(&s->props);
        CHECK(s->entries == NULL && s->entry_count > 0);
        *entries = calloc(s->entry_count, sizeof(**entries));
        CHECK(*entries != NULL);
        size_t n = 0;
        while (n < s->entry_count && mqtt_subscribe_next(&cursor, version, &(*entries)[n])) {
            n++;
        }
        CHECK(n == s->entry_count && cursor.len == 0);
        s->entries = *entries;
        break;
    }
    case MQTT_UNSUBSCRIBE: {
        struct mqtt_unsubscribe *u = &pkt->u.unsubscribe;
        struct lmq_bytes cursor = u->payload;
        check_props_sane(&u->props);
        CHECK(u->filters == NULL && u->filter_count > 0);
        *filters = calloc(u->filter_count, sizeof(**filters));
        CHECK(*filters != NULL);
        size_t n = 0;
        while (n < u->filter_count && mqtt_unsubscribe_next(&cursor, &(*filters)[n])) {
            n++;
        }
        CHECK(n == u->filter_count && cursor.len == 0);
        u->filters = *filters;
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        check_props_sane(&pkt->u.suback.props);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        check_props_sane(&pkt->u.disconnect.props);
        break;
    default:
        break;
    }
}

/* Encodes into an exact-size heap block (so ASan sees any overrun); returns it. */
static uint8_t *encode_exact(const struct mqtt_packet *pkt, uint8_t version, size_t *len)
{
    size_t need = 0, written = 0;
    CHECK(mqtt_encoded_size(pkt, version, &need) == 0);
    CHECK(need >= 2);
    uint8_t *out = malloc(need);
    CHECK(out != NULL);
    CHECK(mqtt_encode(pkt, version, out, need - 1, &written) == LMQ_ETOOBIG);
    CHECK(mqtt_encode(pkt, version, out, need, &written) == 0);
    CHECK(written == need);
    *len = need;
    return out;
}

static void round_trip(const uint8_t *data, size_t size, uint8_t version)
{
    struct mqtt_packet pkt, again, third;
    struct mqtt_sub_entry *entries = NULL, *entries2 = NULL;
    struct lmq_bytes *filters = NULL, *filters2 = NULL;
    uint8_t reason = 0;

    int rc = mqtt_decode(data, size, version, &pkt, &reason);
    if (rc != 0) {
        CHECK(rc == LMQ_EPROTO && reason >= MQTT_RC_UNSPECIFIED_ERROR);
        return;
    }
    CHECK(reason == MQTT_RC_SUCCESS);
    uint8_t v = pkt.type == MQTT_CONNECT ? pkt.u.connect.protocol_version : version;
    walk_and_fill(&pkt, v, &entries, &filters);

    size_t len1 = 0, len2 = 0;
    uint8_t *enc1 = encode_exact(&pkt, v, &len1);
    rc = mqtt_decode(enc1, len1, v, &again, &reason);
    if (rc != 0) {
        fprintf(stderr, "re-decode of %s failed: reason 0x%02x\n", mqtt_packet_type_name(pkt.type),
                reason);
    }
    CHECK(rc == 0);
    check_packet_eq(&pkt, &again, v);
    walk_and_fill(&again, v, &entries2, &filters2);
    uint8_t *enc2 = encode_exact(&again, v, &len2);
    CHECK(len1 == len2 && memcmp(enc1, enc2, len1) == 0);
    CHECK(mqtt_decode(enc2, len2, v, &third, &reason) == 0);
    CHECK(third.type == pkt.type);
    free(enc2);
    free(enc1);
    free(entries2);
    free(filters2);
    free(entries);
    free(filters);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t first = 0;
    uint32_t remaining = 0;
    size_t header_len = 0;

    int rc = mqtt_fixed_header_parse(data, size, &first, &remaining, &header_len);
    CHECK(rc == 0 || rc == LMQ_EAGAIN || rc == LMQ_EPROTO);
    if (rc == 0) {
        CHECK(header_len >= 2 && header_len <= 5 && header_len <= size);
        CHECK(first == data[0] && remaining <= MQTT_REMAINING_LENGTH_MAX);
    }
    round_trip(data, size, MQTT_V311);
    round_trip(data, size, MQTT_V5);
    return 0;
}
