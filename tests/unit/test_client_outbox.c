/* libledgermq sending side without a server: the outbox is durable before send returns, the
 * chain (seq, prev) continues across reopen, unacknowledged envelopes are published in seq order
 * on every connect within the server's window, acks and rejects settle rows, and the reconnect
 * backoff stays within its bounds. */
#include "client_fixture.h"

#include "crypto/jcs.h"

/* Reads outbox row seq straight from the database file (a second connection). */
static void read_row(struct fx *f, uint64_t seq, struct ledger_envelope *env, int *state)
{
    char path[FX_PATH_BYTES + 16];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *reason = NULL;
    snprintf(path, sizeof(path), "%s/client.db", f->state);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT envelope, state FROM outbox WHERE seq = ?1", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const uint8_t *blob = sqlite3_column_blob(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    assert_int_equal(ledger_envelope_open(blob, len, env, &reason), 0);
    *state = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_send_stores_signed_row_before_returning(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES];
    struct ledger_envelope env = {0};
    char elink[LEDGER_ENVELOPE_LINK_BYTES];
    int row_state = -1;
    uint64_t pending = 0;
    fx_open(f, false);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "chat.msg", "{\"text\":\"hi\"}", link), 0);
    /* Another connection sees the committed row at once: nothing waits in memory. */
    read_row(f, 1, &env, &row_state);
    assert_int_equal(row_state, 0);
    assert_string_equal(env.from, f->me.id);
    assert_string_equal(env.to, f->peer.id);
    assert_int_equal(env.seq, 1);
    assert_string_equal(env.prev, "");
    assert_string_equal(env.type, "chat.msg");
    assert_int_equal(ledger_envelope_link(&env, elink), 0);
    assert_string_equal(elink, link);
    ledger_envelope_release(&env);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 1);
    assert_int_equal(f->sent_count, 0); /* not connected: stored, not published */
}

static void test_chain_continues_across_reopen(void **state)
{
    struct fx *f = *state;
    char link1[LMQ_CLIENT_ID_BYTES], link2[LMQ_CLIENT_ID_BYTES], link3[LMQ_CLIENT_ID_BYTES];
    struct ledger_envelope env = {0};
    int row_state = -1;
    uint64_t pending = 0;
    fx_open(f, false);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{\"n\":1}", link1), 0);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{\"n\":2}", link2), 0);
    fx_close(f);
    fx_open(f, false);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 2);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{\"n\":3}", link3), 0);
    read_row(f, 2, &env, &row_state);
    assert_string_equal(env.prev, link1);
    ledger_envelope_release(&env);
    read_row(f, 3, &env, &row_state);
    assert_int_equal(env.seq, 3);
    assert_string_equal(env.prev, link2);
    ledger_envelope_release(&env);
    assert_string_not_equal(link2, link3);
}

static void test_send_refuses_bad_input_and_stores_nothing(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES];
    uint64_t pending = 99;
    fx_open(f, false);
    assert_int_equal(lmq_client_send(f->c, "abc", "t", "{}", link), LMQ_EINVAL);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "[1,2]", link), LMQ_EINVAL);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{bad", link), LMQ_EINVAL);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "bad type!", "{}", link), LMQ_EINVAL);
    assert_string_equal(link, "");
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 0);
}

static void test_state_dir_of_another_identity_is_refused(void **state)
{
    struct fx *f = *state;
    char err[256];
    struct lmq_client *other = NULL;
    fx_open(f, false);
    fx_close(f);
    struct lmq_client_options o = {.key_file = f->key_peer,
                                   .state_dir = f->state,
                                   .mqtt_host = "127.0.0.1",
                                   .mqtt_port = 1,
                                   .http_host = "127.0.0.1",
                                   .http_port = 1};
    assert_int_equal(lmq_client_open(&o, &other, err, sizeof(err)), LMQ_EINVAL);
    assert_null(other);
    assert_non_null(strstr(err, "belongs to identity"));
}

/* The seq of a captured outbox PUBLISH. */
static uint64_t published_seq(const struct fx_packet *p)
{
    struct ledger_envelope env = {0};
    const char *reason = NULL;
    assert_int_equal(
        ledger_envelope_open((const uint8_t *)p->payload, strlen(p->payload), &env, &reason), 0);
    uint64_t seq = env.seq;
    ledger_envelope_release(&env);
    return seq;
}

static void test_resends_pending_in_seq_order_on_every_connect(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES];
    fx_open(f, false);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link), 0);
    }
    fx_connect(f, 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), 3);
    uint64_t expect = 1;
    for (size_t i = 0; i < f->sent_count; i++) {
        if (f->sent[i].type == MQTT_PUBLISH) {
            assert_string_equal(f->sent[i].topic + 3 + 64, "/outbox");
            assert_int_equal(published_seq(&f->sent[i]), expect++);
        }
    }
    /* The connection drops before any ack: the next one sends all three again, in order. */
    client_session_reset(f->c);
    f->sent_count = 0;
    fx_connect(f, 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), 3);
    assert_int_equal(published_seq(&f->sent[1]), 1);
    /* Sent while connected: published at once after the commit. */
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link), 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), 4);
    assert_int_equal(published_seq(fx_last(f, MQTT_PUBLISH)), 4);
}

static void test_window_follows_receive_maximum(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES];
    fx_open(f, false);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link), 0);
    }
    fx_connect(f, 1);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), 1);
    struct mqtt_packet ack = {.type = MQTT_PUBACK};
    ack.u.ack.packet_id = fx_last(f, MQTT_PUBLISH)->packet_id;
    assert_int_equal(client_session_on_packet(f->c, &ack), 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), 2);
    assert_int_equal(published_seq(fx_last(f, MQTT_PUBLISH)), 2);
    /* A PUBACK for an id we never used is a protocol error. */
    ack.u.ack.packet_id = 30;
    assert_int_equal(client_session_on_packet(f->c, &ack), LMQ_EPROTO);
}

/* The server's ack of the envelope link (seq) with a valid receipt: index 7 in a tree of other
 * envelopes, position 3. The same link appended once only. */
static void feed_ack(struct fx *f, const char *link, uint64_t seq, uint16_t pid)
{
    char json[FX_ACK_MAX_BYTES];
    static const char other[] = "0000000000000000000000000000000000000000000000000000000000000000";
    while (f->ledger.frontier.size < 7) {
        (void)fx_ledger_append(&f->ledger, other);
    }
    if (f->ledger.frontier.size == 7) {
        assert_int_equal(fx_ledger_append(&f->ledger, link), 7);
    }
    fx_ledger_ack(f, link, 7, seq, 3, json, sizeof(json));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, pid), 0);
}

static void test_ack_settles_row_once_and_survives_reopen(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES];
    uint64_t pending = 0;
    fx_open(f, false);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link), 0);
    fx_connect(f, 0);
    feed_ack(f, link, 1, 5);
    assert_int_equal(f->acks, 1);
    assert_string_equal(f->last_ack_link, link);
    assert_int_equal(f->last_ack.seq, 1);
    assert_int_equal(f->last_ack.index, 7);
    assert_int_equal(f->last_ack.position, 3);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 5);
    /* The same ack again (a resend was acknowledged again): no second on_ack. */
    feed_ack(f, link, 1, 6);
    assert_int_equal(f->acks, 1);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 6);
    fx_close(f);
    fx_open(f, false);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 0);
    f->sent_count = 0;
    fx_connect(f, 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), 0); /* acked: never sent again */
    assert_int_equal(f->c->acked_seq_max, 1);
}

static void test_reject_settles_row_and_flags_a_server_behind_us(void **state)
{
    struct fx *f = *state;
    char link1[LMQ_CLIENT_ID_BYTES], link2[LMQ_CLIENT_ID_BYTES], json[512];
    uint64_t pending = 0;
    fx_open(f, false);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link1), 0);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link2), 0);
    fx_connect(f, 0);
    feed_ack(f, link1, 1, 5);
    /* The server expects seq 1 again after acknowledging seq 1: it lost an acked envelope. */
    snprintf(json, sizeof(json),
             "{\"expected_seq\":1,\"link\":\"%s\",\"reason\":\"gap\",\"seq\":2}", link2);
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_REJECT, json, 8), 0);
    assert_int_equal(f->rejects, 1);
    assert_string_equal(f->last_reject_reason, "gap");
    assert_int_equal(f->errors, 1);
    assert_non_null(strstr(f->last_error, "lost acknowledged envelopes"));
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 8);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 0);
    /* A stale reject for a settled row changes nothing. */
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_REJECT, json, 9), 0);
    assert_int_equal(f->rejects, 1);
}

static void test_fork_reject_ahead_of_us_is_not_an_inconsistency(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES], json[512];
    fx_open(f, false);
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link), 0);
    fx_connect(f, 0);
    snprintf(json, sizeof(json),
             "{\"expected_seq\":5,\"link\":\"%s\",\"reason\":\"fork\",\"seq\":1}", link);
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_REJECT, json, 3), 0);
    assert_int_equal(f->rejects, 1);
    assert_int_equal(f->errors, 0);
}

static void test_backoff_doubles_within_bounds(void **state)
{
    static const uint32_t rands[] = {0, 1, 49, 50, 51, 12345, UINT32_MAX - 1, UINT32_MAX};
    LMQ_UNUSED(state);
    uint64_t prev_max = 0;
    for (unsigned attempt = 0; attempt < 40; attempt++) {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t i = 0; i < LMQ_ARRAY_LEN(rands); i++) {
            uint64_t d = client_session_backoff_ms(attempt, rands[i]);
            assert_true(d >= CLIENT_BACKOFF_FIRST_MS / 2);
            assert_true(d <= CLIENT_BACKOFF_MAX_MS);
            lo = LMQ_MIN(lo, d);
            hi = LMQ_MAX(hi, d);
        }
        assert_true(hi >= prev_max); /* never shrinks */
        prev_max = hi;
        assert_true(lo < hi); /* jitter present */
    }
    assert_true(client_session_backoff_ms(0, UINT32_MAX) <= CLIENT_BACKOFF_FIRST_MS);
    assert_int_equal(client_session_backoff_ms(1, 0), CLIENT_BACKOFF_FIRST_MS); /* 200/2 */
    assert_true(client_session_backoff_ms(30, 0) >= CLIENT_BACKOFF_MAX_MS / 2);
    assert_int_equal(client_session_backoff_ms(30, (uint32_t)(CLIENT_BACKOFF_MAX_MS / 2)),
                     CLIENT_BACKOFF_MAX_MS);
    assert_true(client_session_backoff_ms(0, 0) != client_session_backoff_ms(0, 37));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_stores_signed_row_before_returning, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_chain_continues_across_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_send_refuses_bad_input_and_stores_nothing, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_state_dir_of_another_identity_is_refused, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_resends_pending_in_seq_order_on_every_connect,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_window_follows_receive_maximum, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ack_settles_row_once_and_survives_reopen, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_reject_settles_row_and_flags_a_server_behind_us,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fork_reject_ahead_of_us_is_not_an_inconsistency,
                                        fx_setup, fx_teardown),
        cmocka_unit_test(test_backoff_doubles_within_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
