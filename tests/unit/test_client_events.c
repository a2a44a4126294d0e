/* libledgermq's event stream for bots (on_event) without a server: every connect asks after the
 * stored event id (`{}` when none), each new event reaches the application once and in id order
 * with its id stored in the same transaction (and what the callback sent), redeliveries and
 * events ahead of a gap are dropped, pages are followed while `more`, handled events are
 * acknowledged after each page and every LMQ_CLIENT_EVENT_ACK_EVERY events with one ack in
 * flight, and errors on events/sync reach on_error. */
#include "client_fixture.h"

#define TEST_EVENTS_MAX 256
#define TEST_MSG_MAX_BYTES 512

struct ev_fx {
    struct fx f;
    uint64_t handled[TEST_EVENTS_MAX];
    size_t handled_count;
    uint64_t refuse_id;  /* on_event returns 1 ("not now") for this id */
    bool send_reply;     /* on_event sends an envelope to peer and writes a row */
    size_t acks_trimmed; /* event acks among the captured packets dropped by ev_trim */
};

/* The capture holds FX_PACKETS_MAX packets: long runs forget the older ones, counting acks. */
static void ev_trim(struct ev_fx *e)
{
    if (e->f.sent_count > FX_PACKETS_MAX / 2) {
        e->acks_trimmed += fx_count(&e->f, MQTT_PUBLISH, "/events/ack");
        e->f.sent_count = 0;
    }
}

static size_t ev_acks(struct ev_fx *e)
{
    return e->acks_trimmed + fx_count(&e->f, MQTT_PUBLISH, "/events/ack");
}

static int ev_on_event(void *ctx, const struct lmq_event *ev)
{
    struct ev_fx *e = ctx;
    char link[LMQ_CLIENT_ID_BYTES];
    assert_non_null(strstr((const char *)ev->event_json, "\"data\":"));
    assert_true(ev->data_len >= 2 && ev->data_json[0] == '{');
    assert_false(sqlite3_get_autocommit(lmq_client_db(e->f.c))); /* inside the transaction */
    if (e->send_reply) {
        assert_int_equal(lmq_client_send(e->f.c, e->f.peer.id, "reply", "{}", link), 0);
        assert_int_equal(sqlite3_exec(lmq_client_db(e->f.c),
                                      "CREATE TABLE IF NOT EXISTS app(id INTEGER);"
                                      "INSERT INTO app VALUES(1)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    }
    if (ev->id == e->refuse_id) {
        return 1;
    }
    assert_true(e->handled_count < TEST_EVENTS_MAX);
    e->handled[e->handled_count++] = ev->id;
    return 0;
}

static int ev_setup(void **state)
{
    struct ev_fx *e = calloc(1, sizeof(*e));
    void *inner = NULL;
    assert_non_null(e);
    assert_int_equal(fx_setup(&inner), 0);
    e->f = *(struct fx *)inner;
    free(inner);
    *state = e;
    return 0;
}

static int ev_teardown(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    *f = e->f;
    free(e);
    void *inner = f;
    return fx_teardown(&inner);
}

static void ev_open(struct ev_fx *e)
{
    char err[256];
    struct fx *f = &e->f;
    struct lmq_client_options o = {
        .key_file = f->key_me,
        .state_dir = f->state,
        .mqtt_host = "127.0.0.1",
        .mqtt_port = 1,
        .http_host = "127.0.0.1",
        .http_port = 1,
        .cb = {.ctx = e, .on_error = fx_on_error, .on_event = ev_on_event}};
    assert_int_equal(lmq_client_open(&o, &f->c, err, sizeof(err)), 0);
    f->c->tx = fx_tx;
    f->c->tx_ctx = f;
    f->c->fetch = fx_fetch;
    f->c->cb.ctx = e;
}

/* fx_on_error takes the fixture: the struct fx is the first member of ev_fx. */
static int feed_event(struct ev_fx *e, uint64_t id, uint16_t pid)
{
    char msg[TEST_MSG_MAX_BYTES];
    int n = snprintf(msg, sizeof(msg),
                     "{\"data\":{\"client_id\":\"x\"},\"id\":%" PRIu64
                     ",\"time\":\"2026-12-07T02:41:54.619000000Z\",\"type\":\"session.started\"}",
                     id);
    assert_true(n > 0 && (size_t)n < sizeof(msg));
    return fx_feed(&e->f, CLIENT_TOPIC_EVENTS, msg, pid);
}

static int feed_marker(struct ev_fx *e, uint64_t after, uint64_t last, bool more, uint16_t pid)
{
    char msg[TEST_MSG_MAX_BYTES];
    int n = snprintf(msg, sizeof(msg),
                     "{\"after\":%" PRIu64 ",\"count\":%" PRIu64 ",\"last\":%" PRIu64
                     ",\"more\":%s,\"position\":0}",
                     after, last - after, last, more ? "true" : "false");
    assert_true(n > 0 && (size_t)n < sizeof(msg));
    return fx_feed(&e->f, CLIENT_TOPIC_EVENTS_SYNC, msg, pid);
}

/* Connects a fresh state directory and answers its `{}`: the server's stored position is 0. */
static void ev_connect(struct ev_fx *e)
{
    fx_connect(&e->f, 0);
    assert_int_equal(feed_marker(e, 0, 0, false, 1), 0);
}

/* The committed event id, read through a connection of its own (not the open transaction). */
static uint64_t db_event_position(struct ev_fx *e)
{
    char path[FX_PATH_BYTES + 16];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t pos = 0;
    snprintf(path, sizeof(path), "%s/client.db", e->f.state);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'event_position'", -1, &st, NULL),
        SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        pos = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return pos;
}

static void puback(struct ev_fx *e, uint16_t pid, uint8_t reason)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBACK};
    pkt.u.ack.packet_id = pid;
    pkt.u.ack.reason_code = reason;
    assert_int_equal(client_session_on_packet(e->f.c, &pkt), 0);
}

static void test_connect_subscribes_and_resyncs_after_stored_id(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = &e->f;
    ev_open(e);
    fx_connect(f, 0);
    assert_int_equal(fx_count(f, MQTT_SUBSCRIBE, NULL), 1);
    const struct fx_packet *p = fx_last(f, MQTT_PUBLISH);
    assert_non_null(strstr(p->topic, "/events/resync"));
    assert_string_equal(p->payload, "{}"); /* nothing handled: the server's stored position */
    /* Before the marker says where the stream starts (the server's stored position, 6 here),
     * events are dropped: a resumed session may bring later ones first. */
    assert_int_equal(feed_event(e, 9, 2), 0);
    assert_int_equal(feed_event(e, 7, 3), 0);
    assert_int_equal(e->handled_count, 0);
    assert_int_equal(feed_marker(e, 6, 9, false, 4), 0);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"after\":6}");
    assert_int_equal(feed_event(e, 8, 5), 0); /* ahead of a gap: dropped */
    assert_int_equal(feed_event(e, 7, 6), 0);
    assert_int_equal(feed_event(e, 8, 7), 0);
    assert_int_equal(e->handled_count, 2);
    assert_int_equal(e->handled[0], 7);
    assert_int_equal(lmq_client_event_position(f->c), 0); /* one commit for the read's events */
    assert_int_equal(client_events_flush(f->c), 0);
    assert_int_equal(lmq_client_event_position(f->c), 8);
    fx_close(f);
    ev_open(e);
    assert_int_equal(lmq_client_event_position(f->c), 8);
    f->sent_count = 0;
    fx_connect(f, 0);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"after\":8}");
    assert_int_equal(feed_event(e, 8, 4), 0); /* at least once from the server: dropped */
    assert_int_equal(e->handled_count, 2);
}

static void test_events_of_a_read_handled_once_in_order_one_commit(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = &e->f;
    ev_open(e);
    ev_connect(e);
    assert_int_equal(feed_event(e, 1, 11), 0);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 11);
    assert_int_equal(feed_event(e, 2, 12), 0);
    assert_int_equal(feed_event(e, 1, 13), 0); /* redelivered: PUBACK, not handed over */
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 13);
    assert_int_equal(feed_event(e, 2, 14), 0);
    assert_int_equal(e->handled_count, 2);
    assert_int_equal(e->handled[0], 1);
    assert_int_equal(e->handled[1], 2);
    /* Handled in one open transaction: nothing committed until the read ends (the network
     * flushes) or another packet comes. */
    assert_int_equal(db_event_position(e), 0);
    assert_int_equal(client_events_flush(f->c), 0);
    assert_int_equal(db_event_position(e), 2);
    assert_int_equal(feed_event(e, 3, 15), 0);
    assert_int_equal(db_event_position(e), 2);
    assert_int_equal(feed_marker(e, 2, 3, false, 16), 0); /* committed before the marker */
    assert_int_equal(db_event_position(e), 3);
    /* A malformed event is reported and dropped, not handed over. */
    size_t errors = f->errors;
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_EVENTS, "{\"id\":\"x\"}", 17), 0);
    assert_int_equal(f->errors, errors + 1);
    assert_int_equal(e->handled_count, 3);
}

static void test_gap_is_dropped_and_asked_again_once(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = &e->f;
    ev_open(e);
    ev_connect(e);
    assert_int_equal(feed_event(e, 1, 2), 0);
    assert_int_equal(feed_marker(e, 0, 1, false, 3), 0); /* caught up: the page is done */
    size_t resyncs = fx_count(f, MQTT_PUBLISH, "/events/resync");
    assert_int_equal(feed_event(e, 4, 4), 0); /* 2 and 3 missing */
    assert_int_equal(e->handled_count, 1);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/events/resync"), resyncs + 1);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"after\":1}");
    assert_int_equal(feed_event(e, 5, 5), 0); /* a page is in flight: no second request */
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/events/resync"), resyncs + 1);
    for (uint64_t id = 2; id <= 5; id++) {
        assert_int_equal(feed_event(e, id, (uint16_t)(10 + id)), 0);
    }
    assert_int_equal(e->handled_count, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(e->handled[i], i + 1);
    }
}

static int64_t app_rows(struct ev_fx *e)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(lmq_client_db(e->f.c), "SELECT count(*) FROM app", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

static void test_refusal_undoes_that_event_only_and_withholds_its_puback(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = &e->f;
    uint64_t pending = 0;
    ev_open(e);
    ev_connect(e);
    e->send_reply = true;
    e->refuse_id = 2;
    size_t outbox = fx_count(f, MQTT_PUBLISH, "/outbox");
    assert_int_equal(feed_event(e, 1, 2), 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), outbox); /* not before the commit */
    size_t pubacks = fx_count(f, MQTT_PUBACK, NULL);
    assert_int_equal(feed_event(e, 2, 3), LMQ_EAGAIN); /* the connection drops */
    assert_int_equal(fx_count(f, MQTT_PUBACK, NULL), pubacks);
    /* Event 1 is committed with its reply and row; event 2's reply and row are undone. */
    assert_int_equal(lmq_client_event_position(f->c), 1);
    assert_int_equal(db_event_position(e), 1);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 1);
    assert_int_equal(app_rows(e), 1);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), outbox + 1);
    /* Handled the next time: reply, row and id commit together, the reply is published. */
    e->refuse_id = 0;
    ev_connect(e);
    outbox = fx_count(f, MQTT_PUBLISH, "/outbox");
    assert_int_equal(feed_event(e, 2, 4), 0);
    assert_int_equal(client_events_flush(f->c), 0);
    assert_int_equal(db_event_position(e), 2);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 2);
    assert_int_equal(app_rows(e), 2);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), outbox + 1);
    assert_int_equal(e->handled_count, 2);
}

static void test_acks_after_each_page_and_every_hundred_one_in_flight(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = &e->f;
    ev_open(e);
    ev_connect(e);
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(feed_event(e, id, (uint16_t)(100 + id)), 0);
    }
    assert_int_equal(ev_acks(e), 0);
    assert_false(client_events_ack_due(f->c)); /* only committed events are acknowledged */
    assert_int_equal(client_events_flush(f->c), 0);
    assert_true(client_events_ack_due(f->c)); /* the network arms the idle timer */
    assert_int_equal(feed_marker(e, 0, 3, true, 110), 0);
    /* The page ends: ack what is handled, then ask for the next page. */
    assert_int_equal(ev_acks(e), 1);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"after\":3}");
    assert_false(client_events_ack_due(f->c));
    /* 100 more while that ack is in flight: no second ack until its PUBACK. */
    for (uint64_t id = 4; id <= 103; id++) {
        assert_int_equal(feed_event(e, id, (uint16_t)(200 + id)), 0);
        ev_trim(e);
    }
    assert_int_equal(ev_acks(e), 1);
    puback(e, CLIENT_EVENT_ACK_PID, 0);
    assert_int_equal(f->c->event_acked, 3);
    assert_int_equal(ev_acks(e), 2);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"ack\":103}");
    puback(e, CLIENT_EVENT_ACK_PID, 0);
    /* 100 events with no ack in flight: acknowledged without waiting for a page or a timer. */
    for (uint64_t id = 104; id <= 203; id++) {
        assert_int_equal(feed_event(e, id, (uint16_t)(400 + id)), 0);
        ev_trim(e);
    }
    assert_int_equal(ev_acks(e), 3);
    assert_int_equal(f->c->event_acked, 103);
    /* A reconnect sends again what the server did not confirm. */
    ev_connect(e);
    assert_int_equal(f->c->event_ack_sent, 103);
    assert_true(client_events_ack_due(f->c));
    assert_int_equal(client_events_ack(f->c), 0);
    assert_string_equal(fx_last(f, MQTT_PUBLISH)->payload, "{\"ack\":203}");
    /* A PUBACK for an ack never sent is a protocol error. */
    puback(e, CLIENT_EVENT_ACK_PID, 0);
    struct mqtt_packet pkt = {.type = MQTT_PUBACK};
    pkt.u.ack.packet_id = CLIENT_EVENT_ACK_PID;
    assert_int_equal(client_session_on_packet(f->c, &pkt), LMQ_EPROTO);
}

static void test_stale_markers_ignored_errors_reported(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = &e->f;
    ev_open(e);
    ev_connect(e);
    for (uint64_t id = 1; id <= 5; id++) {
        assert_int_equal(feed_event(e, id, (uint16_t)(10 + id)), 0);
    }
    assert_int_equal(feed_marker(e, 0, 5, false, 20), 0);
    assert_int_equal(feed_event(e, 7, 21), 0); /* a gap: asks after 5 */
    size_t resyncs = fx_count(f, MQTT_PUBLISH, "/events/resync");
    /* A marker answering an earlier request (after 0) does not end the page asked after 5. */
    assert_int_equal(feed_marker(e, 0, 5, true, 22), 0);
    assert_true(f->c->event_page_inflight);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/events/resync"), resyncs);
    /* An error on events/sync reaches on_error. */
    size_t errors = f->errors;
    assert_int_equal(
        fx_feed(f, CLIENT_TOPIC_EVENTS_SYNC, "{\"error\":\"after: past the last event\"}", 23), 0);
    assert_int_equal(f->errors, errors + 1);
    assert_int_equal(f->last_error_code, LMQ_EPROTO);
    assert_non_null(strstr(f->last_error, "after: past the last event"));
    assert_false(f->c->event_page_inflight);
    /* A resync refused as not authorized: not a bot. */
    puback(e, CLIENT_EVENT_RESYNC_PID, MQTT_RC_NOT_AUTHORIZED);
    assert_non_null(strstr(f->last_error, "[bots] ids"));
}

static void test_client_without_on_event_takes_no_events(void **state)
{
    struct ev_fx *e = *state;
    struct fx *f = &e->f;
    fx_open(f, true);
    fx_connect(f, 0);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/events/resync"), 0);
    assert_int_equal(feed_event(e, 1, 5), 0); /* not ours to interpret: acknowledged */
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 5);
    assert_int_equal(lmq_client_event_position(f->c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_subscribes_and_resyncs_after_stored_id,
                                        ev_setup, ev_teardown),
        cmocka_unit_test_setup_teardown(test_events_of_a_read_handled_once_in_order_one_commit,
                                        ev_setup, ev_teardown),
        cmocka_unit_test_setup_teardown(test_gap_is_dropped_and_asked_again_once, ev_setup,
                                        ev_teardown),
        cmocka_unit_test_setup_teardown(
            test_refusal_undoes_that_event_only_and_withholds_its_puback, ev_setup, ev_teardown),
        cmocka_unit_test_setup_teardown(test_acks_after_each_page_and_every_hundred_one_in_flight,
                                        ev_setup, ev_teardown),
        cmocka_unit_test_setup_teardown(test_stale_markers_ignored_errors_reported, ev_setup,
                                        ev_teardown),
        cmocka_unit_test_setup_teardown(test_client_without_on_event_takes_no_events, ev_setup,
                                        ev_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
