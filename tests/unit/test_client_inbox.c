/* libledgermq receiving side without a server: inbox envelopes reach the application exactly
 * once and in position order (dedup, hold past a gap, resync to fill it), the position is
 * persisted before the PUBACK, forged or foreign envelopes never reach the application, and
 * every connect resyncs from the stored position. */
#include "client_fixture.h"

#include "core/buf.h"

#define TEST_MSG_MAX_BYTES 4096

static int feed_pos(struct fx *f, uint64_t position, uint16_t pid)
{
    char msg[TEST_MSG_MAX_BYTES];
    fx_inbox_msg(position, f->me.id, f->peer.seed, msg, sizeof(msg));
    return fx_feed(f, CLIENT_TOPIC_INBOX, msg, pid);
}

static void test_in_order_delivered_once_persisted_before_puback(void **state)
{
    struct fx *f = *state;
    fx_open(f, true);
    fx_connect(f, 0);
    assert_int_equal(feed_pos(f, 1, 11), 0);
    assert_int_equal(f->delivered_count, 1);
    const struct fx_packet *ack = fx_last(f, MQTT_PUBACK);
    assert_int_equal(ack->packet_id, 11);
    assert_int_equal(ack->db_position, 1); /* already durable when the PUBACK left */
    assert_int_equal(feed_pos(f, 2, 12), 0);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->db_position, 2);
    /* MQTT redelivers position 1: acknowledged, not handed over again. */
    assert_int_equal(feed_pos(f, 1, 13), 0);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 13);
    assert_int_equal(f->delivered_count, 2);
    assert_int_equal(f->delivered[0], 1);
    assert_int_equal(f->delivered[1], 2);
    /* After a restart the stored position still filters. */
    fx_close(f);
    fx_open(f, true);
    assert_int_equal(lmq_client_inbox_position(f->c), 2);
    fx_connect(f, 0);
    assert_int_equal(feed_pos(f, 2, 14), 0);
    assert_int_equal(f->delivered_count, 2);
}

static void test_connect_resyncs_from_stored_position(void **state)
{
    struct fx *f = *state;
    fx_open(f, true);
    fx_connect(f, 0);
    const struct fx_packet *p = fx_last(f, MQTT_PUBLISH);
    assert_non_null(strstr(p->topic, "/resync"));
    assert_string_equal(p->payload, "{\"after\":0}");
    assert_int_equal(feed_pos(f, 1, 2), 0);
    assert_int_equal(feed_pos(f, 2, 3), 0);
    fx_close(f);
    fx_open(f, true);
    f->sent_count = 0;
    fx_connect(f, 0);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"after\":2}");
    assert_int_equal(fx_count(f, MQTT_SUBSCRIBE, NULL), 1);
}

static void test_gap_holds_asks_resync_then_delivers_in_order(void **state)
{
    struct fx *f = *state;
    fx_open(f, true);
    fx_connect(f, 0);
    /* The connect's resync is answered: nothing more. */
    assert_int_equal(
        fx_feed(f, CLIENT_TOPIC_SYNC, "{\"after\":0,\"count\":0,\"last\":0,\"more\":false}", 2), 0);
    assert_false(f->c->resync_inflight);
    assert_int_equal(feed_pos(f, 1, 3), 0);
    size_t resyncs = fx_count(f, MQTT_PUBLISH, "/resync");
    assert_int_equal(feed_pos(f, 3, 4), 0); /* position 2 missing */
    assert_int_equal(f->delivered_count, 1);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/resync"), resyncs + 1);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"after\":1}");
    assert_int_equal(feed_pos(f, 4, 5), 0); /* held too; no second resync while one is out */
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/resync"), resyncs + 1);
    assert_int_equal(feed_pos(f, 2, 6), 0); /* the resync answer fills the gap */
    assert_int_equal(f->delivered_count, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(f->delivered[i], i + 1);
    }
    assert_int_equal(lmq_client_inbox_position(f->c), 4);
    assert_int_equal(fx_db_position(f), 4);
    assert_int_equal(f->c->held_count, 0);
    /* The rest of the resync answer repeats 3 and 4: filtered. */
    assert_int_equal(feed_pos(f, 3, 7), 0);
    assert_int_equal(feed_pos(f, 4, 8), 0);
    assert_int_equal(f->delivered_count, 4);
}

static void test_sync_with_more_asks_again_after_last(void **state)
{
    struct fx *f = *state;
    fx_open(f, true);
    fx_connect(f, 0);
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_SYNC,
                             "{\"after\":0,\"count\":1000,\"last\":1000,\"more\":true}", 9),
                     0);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"after\":1000}");
    assert_true(f->c->resync_inflight);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 9);
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_SYNC,
                             "{\"after\":1000,\"count\":3,\"last\":1003,\"more\":false}", 10),
                     0);
    assert_false(f->c->resync_inflight);
}

static void test_forged_or_foreign_envelope_never_reaches_the_app(void **state)
{
    struct fx *f = *state;
    char msg[TEST_MSG_MAX_BYTES];
    fx_open(f, true);
    fx_connect(f, 0);
    /* Validly signed by peer, but addressed to someone else. */
    fx_inbox_msg(1, f->peer.id, f->peer.seed, msg, sizeof(msg));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_INBOX, msg, 3), 0);
    assert_int_equal(f->delivered_count, 0);
    assert_int_equal(f->errors, 1);
    assert_non_null(strstr(f->last_error, "not_for_us"));
    /* A tampered body: the signature no longer matches. */
    fx_inbox_msg(2, f->me.id, f->peer.seed, msg, sizeof(msg));
    char *n = strstr(msg, "\"n\":2");
    assert_non_null(n);
    n[4] = '9';
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_INBOX, msg, 4), 0);
    assert_int_equal(f->delivered_count, 0);
    assert_int_equal(f->errors, 2);
    assert_non_null(strstr(f->last_error, "bad_signature"));
    /* Both positions are consumed, so the inbox moves on to a good one. */
    assert_int_equal(lmq_client_inbox_position(f->c), 2);
    assert_int_equal(feed_pos(f, 3, 5), 0);
    assert_int_equal(f->delivered_count, 1);
    assert_int_equal(f->delivered[0], 3);
    /* Not JSON at all: dropped and acknowledged, position unchanged. */
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_INBOX, "{nope", 6), 0);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 6);
    assert_int_equal(lmq_client_inbox_position(f->c), 3);
}

static void test_replayed_envelope_never_reaches_the_app_nor_takes_the_position(void **state)
{
    struct fx *f = *state;
    char msg[TEST_MSG_MAX_BYTES];
    fx_open(f, true);
    fx_connect(f, 0);
    assert_int_equal(
        fx_feed(f, CLIENT_TOPIC_SYNC, "{\"after\":0,\"count\":0,\"last\":0,\"more\":false}", 2), 0);
    assert_int_equal(feed_pos(f, 1, 3), 0);
    assert_int_equal(feed_pos(f, 2, 4), 0);
    size_t resyncs = fx_count(f, MQTT_PUBLISH, "/resync");
    /* The peer's seq 2, already handed over, replayed at position 3 (a forged delivery). */
    fx_inbox_msg_seq(3, 2, f->me.id, f->peer.seed, msg, sizeof(msg));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_INBOX, msg, 5), 0);
    assert_int_equal(f->delivered_count, 2);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 5); /* dropped, acknowledged */
    assert_int_equal(lmq_client_inbox_position(f->c), 2);    /* position 3 still open */
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/resync"), resyncs + 1);
    assert_non_null(strstr(f->last_error, "replay"));
    /* The real envelope for position 3 is then delivered. */
    assert_int_equal(feed_pos(f, 3, 6), 0);
    assert_int_equal(f->delivered_count, 3);
    assert_int_equal(f->delivered[2], 3);
    /* The check survives a restart: the seq is stored with the position. */
    fx_close(f);
    fx_open(f, true);
    fx_connect(f, 0);
    fx_inbox_msg_seq(4, 3, f->me.id, f->peer.seed, msg, sizeof(msg));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_INBOX, msg, 7), 0);
    assert_int_equal(lmq_client_inbox_position(f->c), 3);
    /* The same refused envelope at the same position again (what a resync returns when the
     * server's ledger really holds it there): never shown, but consumed, so the inbox moves. */
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_INBOX, msg, 8), 0);
    assert_int_equal(lmq_client_inbox_position(f->c), 4);
    assert_int_equal(f->delivered_count, 3); /* not handed over */
    assert_int_equal(feed_pos(f, 5, 9), 0);
    assert_int_equal(f->delivered_count, 4);
    assert_int_equal(f->delivered[3], 5);
}

static void test_app_refusal_persists_nothing_and_withholds_puback(void **state)
{
    struct fx *f = *state;
    fx_open(f, true);
    fx_connect(f, 0);
    size_t pubacks = fx_count(f, MQTT_PUBACK, NULL);
    f->envelope_answer = -1;
    assert_int_equal(feed_pos(f, 1, 3), LMQ_EAGAIN);
    assert_int_equal(fx_count(f, MQTT_PUBACK, NULL), pubacks);
    assert_int_equal(lmq_client_inbox_position(f->c), 0);
    assert_int_equal(fx_db_position(f), 0);
    /* After the reconnect it comes again and is taken. */
    client_session_reset(f->c);
    f->envelope_answer = 0;
    fx_connect(f, 0);
    assert_int_equal(feed_pos(f, 1, 3), 0);
    assert_int_equal(f->delivered_count, 1);
    assert_int_equal(fx_db_position(f), 1);
}

static void test_send_only_client_takes_no_inbox(void **state)
{
    struct fx *f = *state;
    fx_open(f, false);
    fx_connect(f, 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/resync"), 0);
    /* A resumed session may still deliver: acknowledged, position untouched for a listener. */
    assert_int_equal(feed_pos(f, 1, 3), 0);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 3);
    assert_int_equal(lmq_client_inbox_position(f->c), 0);
    assert_int_equal(fx_db_position(f), 0);
}

static void test_unfilled_gap_is_reported_after_idle_resyncs(void **state)
{
    struct fx *f = *state;
    static const char sync_done[] = "{\"after\":0,\"count\":0,\"last\":0,\"more\":false}";
    fx_open(f, true);
    fx_connect(f, 0);
    assert_int_equal(feed_pos(f, 5, 3), 0); /* 1..4 never come */
    for (unsigned i = 0; i < CLIENT_RESYNC_IDLE_MAX; i++) {
        assert_int_equal(f->errors, 0);
        assert_int_equal(fx_feed(f, CLIENT_TOPIC_SYNC, sync_done, (uint16_t)(10 + i)), 0);
    }
    assert_int_equal(f->errors, 1);
    assert_non_null(strstr(f->last_error, "gap"));
    assert_int_equal(f->delivered_count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order_delivered_once_persisted_before_puback,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_connect_resyncs_from_stored_position, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_gap_holds_asks_resync_then_delivers_in_order, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_with_more_asks_again_after_last, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_forged_or_foreign_envelope_never_reaches_the_app,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_replayed_envelope_never_reaches_the_app_nor_takes_the_position, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_app_refusal_persists_nothing_and_withholds_puback,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_send_only_client_takes_no_inbox, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_unfilled_gap_is_reported_after_idle_resyncs, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
