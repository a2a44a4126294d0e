/* Unit tests for src/mqtt/mqtt_alias_out.c: the outbound topic alias table and its policy. Every
 * packet the table rewrites is encoded, decoded and resolved by a model receiver, which checks
 * that each PUBLISH names the topic it was sent with. */
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
#include "mqtt/mqtt_alias_out.h"
#include "mqtt/mqtt_codec.h"

#define RX_ALIASES_MAX 256
#define TOPIC_CAP 2048

/* The client's side: what each alias stands for, as the packets told it. */
struct rx {
    char topics[RX_ALIASES_MAX + 1][TOPIC_CAP];
    uint16_t alias_max;
    uint64_t plain_bytes; /* what the same packets cost without aliases */
    uint64_t sent_bytes;
    uint64_t assigned, used, plain;
};

enum sent_kind { SENT_PLAIN, SENT_ASSIGN, SENT_USE };

static uint8_t payload[64];

/* Sends one QoS 1 PUBLISH of topic through table t to receiver r (max: the client's maximum
 * packet size); returns how it went out. Fails the test on any wrong topic. */
static enum sent_kind send_topic(struct mqtt_alias_out *t, struct rx *r, const char *topic,
                                 uint32_t max)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    struct mqtt_publish *p = &pkt.u.publish;
    p->qos = 1;
    p->packet_id = 7;
    p->topic = (struct lmq_bytes){(const uint8_t *)topic, strlen(topic)};
    p->payload = (struct lmq_bytes){payload, sizeof(payload)};
    size_t plain = 0, size = 0;
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V5, &plain), 0);
    size = plain;
    mqtt_alias_out_apply(t, &pkt, max, &size);
    size_t actual = 0;
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V5, &actual), 0);
    assert_int_equal(actual, size);
    assert_true(size <= max);
    static uint8_t buf[TOPIC_CAP + 256];
    size_t written = 0;
    assert_int_equal(mqtt_encode(&pkt, MQTT_V5, buf, sizeof(buf), &written), 0);
    assert_int_equal(written, size);
    struct mqtt_packet got;
    uint8_t reason = 0;
    assert_int_equal(mqtt_decode(buf, written, MQTT_V5, &got, &reason), 0);
    const struct mqtt_publish *g = &got.u.publish;
    r->plain_bytes += plain;
    r->sent_bytes += size;
    enum sent_kind kind = SENT_PLAIN;
    char resolved[TOPIC_CAP];
    assert_true(g->topic.len < TOPIC_CAP);
    memcpy(resolved, g->topic.data, g->topic.len);
    resolved[g->topic.len] = '\0';
    if (g->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = g->props.topic_alias;
        assert_true(a >= 1 && a <= r->alias_max);
        if (g->topic.len > 0) {
            strcpy(r->topics[a], resolved);
            kind = SENT_ASSIGN;
            r->assigned++;
        } else {
            assert_true(r->topics[a][0] != '\0'); /* never an alias the client doesn't know */
            strcpy(resolved, r->topics[a]);
            kind = SENT_USE;
            r->used++;
        }
    } else {
        r->plain++;
    }
    assert_string_equal(resolved, topic);
    return kind;
}

static struct mqtt_alias_out *table(uint16_t max, struct rx *r)
{
    memset(r, 0, sizeof(*r));
    r->alias_max = max;
    struct mqtt_alias_out *t = NULL;
    assert_int_equal(mqtt_alias_out_create(max, &t), 0);
    return t;
}

/* While the table has a free alias, a topic takes it on its first send (Paho's
 * test_server_topic_alias expects the first PUBLISH to set the alias). */
static void test_alias_on_first_send_then_alias_only(void **state)
{
    (void)state;
    static struct rx r;
    struct mqtt_alias_out *t = table(4, &r);
    const char *topic = "sensors/building-7/floor-3/room-12/temperature";
    assert_int_equal(send_topic(t, &r, topic, UINT32_MAX), SENT_ASSIGN);
    for (int i = 0; i < 11; i++)
        assert_int_equal(send_topic(t, &r, topic, UINT32_MAX), SENT_USE);
    assert_string_equal(r.topics[1], topic);
    /* 12 sends: the first costs the property (3 bytes), each alias-only one saves the topic
     * (46 bytes) minus the property. */
    assert_int_equal(r.plain_bytes - r.sent_bytes, 11 * (strlen(topic) - 3) - 3);
    /* A second topic takes the next free alias on its first send too. */
    assert_int_equal(send_topic(t, &r, "sensors/building-7/door", UINT32_MAX), SENT_ASSIGN);
    assert_string_equal(r.topics[2], "sensors/building-7/door");
    assert_int_equal(send_topic(t, &r, topic, UINT32_MAX), SENT_USE);
    struct mqtt_alias_out_stats st;
    mqtt_alias_out_get_stats(t, &st);
    assert_int_equal(st.assigned, 2);
    assert_int_equal(st.used, 12);
    assert_int_equal(st.reassigned, 0);
    assert_int_equal(st.saved_bytes, (int64_t)(r.plain_bytes - r.sent_bytes));
    mqtt_alias_out_destroy(t);
}

/* A different topic every time: the first N sends (N = the table's size) take the free
 * aliases, once each; after that nothing is assigned or reassigned, so the connection pays
 * the Topic Alias property N times in all, within the bound of
 * MQTT_ALIAS_OUT_ASSIGN_COST_MAX bytes per alias. */
static void test_a_new_topic_every_time_assigns_only_the_free_aliases(void **state)
{
    (void)state;
    static struct rx r;
    const uint16_t n = 16;
    struct mqtt_alias_out *t = table(n, &r);
    char topic[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(topic, sizeof(topic), "telemetry/device-%06d/state", i);
        assert_int_equal(send_topic(t, &r, topic, UINT32_MAX), i < n ? SENT_ASSIGN : SENT_PLAIN);
        if (i < n)
            assert_string_equal(r.topics[i + 1], topic); /* aliases 1..N, in order */
    }
    assert_true(r.sent_bytes <= r.plain_bytes + (uint64_t)n * MQTT_ALIAS_OUT_ASSIGN_COST_MAX);
    assert_int_equal(r.sent_bytes - r.plain_bytes, n * 3u); /* the property, no longer lengths */
    struct mqtt_alias_out_stats st;
    mqtt_alias_out_get_stats(t, &st);
    assert_int_equal(st.assigned, n);
    assert_int_equal(st.reassigned, 0);
    assert_int_equal(st.used, 0);
    assert_int_equal(st.saved_bytes, -(int64_t)n * 3);
    mqtt_alias_out_destroy(t);
}

static void test_table_never_exceeds_its_maximum(void **state)
{
    (void)state;
    static struct rx r;
    struct mqtt_alias_out *t = table(3, &r); /* receiver checks every alias is in 1..3 */
    char topic[64];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 10; i++) {
            snprintf(topic, sizeof(topic), "hot/topic/%d", i < 3 ? i : round * 10 + i);
            (void)send_topic(t, &r, topic, UINT32_MAX);
        }
    }
    struct mqtt_alias_out_stats st;
    mqtt_alias_out_get_stats(t, &st);
    assert_int_equal(st.assigned, 3);
    assert_true(r.used >= 3 * 48); /* the three hot topics keep their aliases */
    mqtt_alias_out_destroy(t);
}

/* Full table: the least recently used alias goes to a topic sent more often than it is used,
 * never to one merely sent after it. */
static void test_lru_alias_is_reassigned_to_a_more_frequent_topic(void **state)
{
    (void)state;
    static struct rx r;
    struct mqtt_alias_out *t = table(2, &r);
    const char *a = "topic/aaaa", *b = "topic/bbbb", *c = "topic/cccc";
    assert_int_equal(send_topic(t, &r, a, UINT32_MAX), SENT_ASSIGN); /* alias 1, count 1 */
    assert_int_equal(send_topic(t, &r, a, UINT32_MAX), SENT_USE);    /* a: 2 */
    assert_int_equal(send_topic(t, &r, a, UINT32_MAX), SENT_USE);    /* a: 3 */
    assert_int_equal(send_topic(t, &r, b, UINT32_MAX), SENT_ASSIGN); /* alias 2, count 1 */
    assert_int_equal(send_topic(t, &r, b, UINT32_MAX), SENT_USE);    /* b: 2 */
    assert_int_equal(send_topic(t, &r, b, UINT32_MAX), SENT_USE);    /* b: 3, a is LRU */
    assert_string_equal(r.topics[1], a);
    assert_string_equal(r.topics[2], b);
    /* The table is full: c must be sent more often than a (3) was: its 4th send takes a's
     * alias (the 4 alias-only PUBLISHes saved 4 x 7 bytes, which pays for it). */
    assert_int_equal(send_topic(t, &r, c, UINT32_MAX), SENT_PLAIN);
    assert_int_equal(send_topic(t, &r, c, UINT32_MAX), SENT_PLAIN);
    assert_int_equal(send_topic(t, &r, c, UINT32_MAX), SENT_PLAIN);
    assert_int_equal(send_topic(t, &r, c, UINT32_MAX), SENT_ASSIGN);
    assert_string_equal(r.topics[1], c);
    assert_string_equal(r.topics[2], b);
    assert_int_equal(send_topic(t, &r, c, UINT32_MAX), SENT_USE);
    assert_int_equal(send_topic(t, &r, b, UINT32_MAX), SENT_USE);
    /* a kept its count (3) when it lost the alias; its next send (4) does not beat the least
     * recently used alias, c's (used 5 times). */
    assert_int_equal(send_topic(t, &r, a, UINT32_MAX), SENT_PLAIN);
    struct mqtt_alias_out_stats st;
    mqtt_alias_out_get_stats(t, &st);
    assert_int_equal(st.assigned, 2);
    assert_int_equal(st.reassigned, 1);
    mqtt_alias_out_destroy(t);
}

/* More topics in a round robin than the table holds: LRU alone would reassign on every send
 * (+3 bytes each, nothing saved); the frequency rule keeps a fixed set aliased. */
static void test_round_robin_over_more_topics_than_aliases_does_not_churn(void **state)
{
    (void)state;
    static struct rx r;
    struct mqtt_alias_out *t = table(16, &r);
    char topic[96];
    const int topics = 64, rounds = 200;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < topics; i++) {
            snprintf(topic, sizeof(topic), "factory/line-%02d/machine/spindle/vibration", i);
            (void)send_topic(t, &r, topic, UINT32_MAX);
        }
    }
    struct mqtt_alias_out_stats st;
    mqtt_alias_out_get_stats(t, &st);
    print_message("round robin: used %llu, reassigned %llu, bytes %llu of %llu\n",
                  (unsigned long long)st.used, (unsigned long long)st.reassigned,
                  (unsigned long long)r.sent_bytes, (unsigned long long)r.plain_bytes);
    assert_int_equal(st.assigned, 16);
    /* (Sketch collisions may let a few topics through.) */
    assert_true(st.reassigned <= (uint64_t)rounds);
    /* About a quarter of the messages go alias-only. */
    assert_true(st.used >= (uint64_t)(rounds - 2) * 16 * 3 / 4);
    assert_true(r.sent_bytes < r.plain_bytes);
    mqtt_alias_out_destroy(t);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Whatever is sent, aliases cost at most MQTT_ALIAS_OUT_ASSIGN_COST_MAX bytes per alias. */
static void test_bytes_never_exceed_plain_plus_a_bound_per_alias(void **state)
{
    (void)state;
    static struct rx r;
    const uint16_t maxes[] = {1, 2, 7, 64};
    char topic[96];
    for (size_t m = 0; m < LMQ_ARRAY_LEN(maxes); m++) {
        for (int pattern = 0; pattern < 4; pattern++) {
            struct mqtt_alias_out *t = table(maxes[m], &r);
            for (int i = 0; i < 30000; i++) {
                uint32_t x = rng();
                uint32_t k;
                switch (pattern) {
                case 0: /* uniform over 3x the table */
                    k = x % (3u * maxes[m]);
                    break;
                case 1: /* each topic twice in a row, then never again */
                    k = (uint32_t)i / 2;
                    break;
                case 2: /* growing runs: the adversary of a frequency rule */
                    k = (uint32_t)(i / (1 + i / 500)) % (2u * maxes[m] + 1);
                    break;
                default: /* a shifting hot set with noise */
                    k = (x % 4 == 0) ? x : (uint32_t)(i / 3000) * 100 + x % maxes[m];
                    break;
                }
                snprintf(topic, sizeof(topic), "p%d/%u/some/longer/topic/name", pattern, k);
                (void)send_topic(t, &r, topic, UINT32_MAX);
            }
            assert_true(r.sent_bytes <=
                        r.plain_bytes + (uint64_t)maxes[m] * MQTT_ALIAS_OUT_ASSIGN_COST_MAX);
            struct mqtt_alias_out_stats st;
            mqtt_alias_out_get_stats(t, &st);
            assert_int_equal(st.saved_bytes, (int64_t)r.plain_bytes - (int64_t)r.sent_bytes);
            mqtt_alias_out_destroy(t);
        }
    }
}

/* A PUBLISH that exactly fits the client's maximum gets no alias assigned (3 bytes more); the
 * alias-only form of an aliased topic always fits (it is smaller). */
static void test_assignment_respects_the_maximum_packet_size(void **state)
{
    (void)state;
    static struct rx r;
    struct mqtt_alias_out *t = table(4, &r);
    const char *topic = "limits/maximum/packet/size";
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish.qos = 1;
    pkt.u.publish.packet_id = 7;
    pkt.u.publish.topic = (struct lmq_bytes){(const uint8_t *)topic, strlen(topic)};
    pkt.u.publish.payload = (struct lmq_bytes){payload, sizeof(payload)};
    size_t plain = 0;
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V5, &plain), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(send_topic(t, &r, topic, (uint32_t)plain), SENT_PLAIN);
    assert_int_equal(send_topic(t, &r, topic, (uint32_t)plain + 3), SENT_ASSIGN);
    assert_int_equal(send_topic(t, &r, topic, (uint32_t)plain), SENT_USE);
    mqtt_alias_out_destroy(t);
}

static void test_too_short_and_too_long_topics_are_sent_in_full(void **state)
{
    (void)state;
    static struct rx r;
    struct mqtt_alias_out *t = table(4, &r);
    static char longest[MQTT_ALIAS_OUT_TOPIC_MAX_BYTES + 2];
    memset(longest, 'x', MQTT_ALIAS_OUT_TOPIC_MAX_BYTES + 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(send_topic(t, &r, "a/bc", UINT32_MAX), SENT_PLAIN);
        assert_int_equal(send_topic(t, &r, longest, UINT32_MAX), SENT_PLAIN);
    }
    /* Sent in full, they took none of the free aliases: the next topics get 1 and 2. */
    longest[MQTT_ALIAS_OUT_TOPIC_MAX_BYTES] = '\0'; /* exactly the maximum: aliased */
    assert_int_equal(send_topic(t, &r, longest, UINT32_MAX), SENT_ASSIGN);
    assert_int_equal(send_topic(t, &r, longest, UINT32_MAX), SENT_USE);
    assert_int_equal(send_topic(t, &r, "a/bcd", UINT32_MAX), SENT_ASSIGN);
    assert_int_equal(send_topic(t, &r, "a/bcd", UINT32_MAX), SENT_USE);
    assert_string_equal(r.topics[1], longest);
    assert_string_equal(r.topics[2], "a/bcd");
    struct mqtt_alias_out_stats st;
    mqtt_alias_out_get_stats(t, &st);
    assert_int_equal(st.assigned, 2);
    mqtt_alias_out_destroy(t);
}

/* The hot topic changes: counts age, so the new one takes the only alias. */
static void test_a_new_hot_topic_takes_over_after_the_old_one_fades(void **state)
{
    (void)state;
    static struct rx r;
    struct mqtt_alias_out *t = table(1, &r);
    for (int i = 0; i < 5000; i++)
        (void)send_topic(t, &r, "phase/one/topic", UINT32_MAX);
    assert_string_equal(r.topics[1], "phase/one/topic");
    int took = -1;
    for (int i = 0; i < 20000 && took < 0; i++) {
        if (send_topic(t, &r, "phase/two/topic", UINT32_MAX) == SENT_ASSIGN)
            took = i;
    }
    assert_true(took > 0);
    assert_string_equal(r.topics[1], "phase/two/topic");
    assert_int_equal(send_topic(t, &r, "phase/two/topic", UINT32_MAX), SENT_USE);
    mqtt_alias_out_destroy(t);
}

int main(void)
{
    memset(payload, 'p', sizeof(payload));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alias_on_first_send_then_alias_only),
        cmocka_unit_test(test_a_new_topic_every_time_assigns_only_the_free_aliases),
        cmocka_unit_test(test_table_never_exceeds_its_maximum),
        cmocka_unit_test(test_lru_alias_is_reassigned_to_a_more_frequent_topic),
        cmocka_unit_test(test_round_robin_over_more_topics_than_aliases_does_not_churn),
        cmocka_unit_test(test_bytes_never_exceed_plain_plus_a_bound_per_alias),
        cmocka_unit_test(test_assignment_respects_the_maximum_packet_size),
        cmocka_unit_test(test_too_short_and_too_long_topics_are_sent_in_full),
        cmocka_unit_test(test_a_new_hot_topic_takes_over_after_the_old_one_fades),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
