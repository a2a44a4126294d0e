/*
 * The broker's state without sockets: queue accounting (QoS 0 budget giving way to QoS 1/2,
 * drop_oldest, the stored backlog of an offline session), the inflight window, and will timing
 * against session expiry. A broker from broker_init_for_test (no store, no listeners); a
 * connection is a struct conn with only the fields the session code reads, whose output is
 * parsed back here. Every test ends with session_queue_verify (the counters against the lists).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/broker_internal.h"

/* Bytes a message of these sizes counts against max_queued_bytes (topic + payload). */
#define TOPIC "a/b"
#define TOPIC_LEN 3

static void config(struct lmq_config *cfg)
{
    lmq_config_defaults(cfg);
    cfg->limits.max_queued_messages = 10;
    cfg->limits.max_queued_qos0 = 4;
    cfg->limits.max_queued_bytes = 1000000;
}

static struct msg *message(struct broker *b, const char *topic, size_t payload_len, uint8_t qos)
{
    static const uint8_t payload[256];
    assert_true(payload_len <= sizeof(payload));
    struct mqtt_publish pub = {.qos = qos,
                               .topic = {(const uint8_t *)topic, strlen(topic)},
                               .payload = {payload, payload_len}};
    struct msg *m = msg_create(b, &pub);
    assert_non_null(m);
    assert_int_equal(m->size_bytes, strlen(topic) + payload_len);
    m->committed = true; /* what route_commit_first does when nothing stores it */
    return m;
}

static struct session *session(struct broker *b, const char *id)
{
    struct session *s = session_create(b, (const uint8_t *)id, strlen(id));
    assert_non_null(s);
    return s;
}

/* A connection as the session code sees it; output stays in c->out (nothing is flushed). */
static struct conn *fake_conn(struct broker *b, struct session *s, enum conn_state state,
                              uint16_t send_quota_max)
{
    struct conn *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->broker = b;
    c->refcount = 1;
    c->state = state;
    c->version = MQTT_V5;
    c->kind = CONN_TRANSPORT_TCP;
    c->max_packet_out = UINT32_MAX;
    c->send_quota_max = send_quota_max;
    c->session = s;
    s->conn = c;
    return c;
}

static void fake_conn_free(struct conn *c)
{
    struct broker *b = c->broker;
    if (c->session != NULL) {
        c->session->conn = NULL;
        c->session = NULL;
    }
    if (list_linked(&c->dirty))
        list_unlink(&c->dirty);
    b->output_bytes -= c->output_charged;
    free(c->out.data);
    mqtt_alias_out_destroy(c->alias_out);
    free(c);
}

/* The PUBLISH packets in c's output: how many, and their QoS and packet ids in order. */
static size_t sent_publishes(const struct conn *c, uint8_t *qos, uint16_t *ids, size_t cap)
{
    size_t n = 0, pos = 0;
    while (pos < c->out.len) {
        uint8_t first = c->out.data[pos++];
        uint32_t len = 0;
        for (unsigned shift = 0;; shift += 7) {
            assert_true(pos < c->out.len && shift < 28);
            uint8_t byte = c->out.data[pos++];
            len |= (uint32_t)(byte & 0x7f) << shift;
            if (!(byte & 0x80))
                break;
        }
        assert_true(pos + len <= c->out.len);
        if (first >> 4 == MQTT_PUBLISH) {
            assert_true(n < cap);
            const uint8_t *p = c->out.data + pos;
            size_t topic_len = (size_t)p[0] << 8 | p[1];
            qos[n] = (uint8_t)((first >> 1) & 3);
            uint16_t id = (uint16_t)((unsigned)p[2 + topic_len] << 8 | p[3 + topic_len]);
            ids[n] = qos[n] > 0 ? id : 0;
            n++;
        }
        pos += len;
    }
    return n;
}

/* QoS 0 has its own budget (max_queued_qos0) and gives way, oldest first, to QoS 1 when the
 * whole queue is full: a QoS 0 flood costs QoS 0 messages, never a QoS 1 one. */
static void test_qos0_budget_gives_way_to_qos1(void **state)
{
    LMQ_UNUSED(state);
    struct lmq_config cfg;
    config(&cfg);
    struct broker b;
    assert_int_equal(broker_init_for_test(&b, &cfg), LMQ_OK);
    struct session *s = session(&b, "sub");
    /* Connected but before CONNACK: deliveries queue, nothing is sent. */
    struct conn *c = fake_conn(&b, s, CONN_AWAIT_CONNECT, 10);
    struct msg *m0 = message(&b, TOPIC, 10, 0);
    const uint64_t size = TOPIC_LEN + 10;
    for (int i = 0; i < 6; i++)
        session_queue_add(s, m0, 0, false, NULL, 0);
    assert_int_equal(s->queued0_count, 4); /* the QoS 0 budget */
    assert_int_equal(s->queued_count, 4);
    assert_int_equal(s->queued_bytes, 4 * size);
    assert_int_equal(s->queued0_bytes, 4 * size);
    assert_int_equal(b.stats.qos0_dropped, 2);
    assert_int_equal(m0->refcount, 1 + 4);
    session_queue_verify(s);

    struct msg *m1[10];
    for (int i = 0; i < 10; i++) {
        m1[i] = message(&b, TOPIC, 10, 1);
        assert_true(session_queue_has_room(s, size)); /* QoS 0 does not count against it */
        session_queue_add(s, m1[i], 1, false, NULL, 0);
        session_queue_verify(s);
    }
    /* 4 QoS 0 + 6 QoS 1 filled the queue; the last 4 QoS 1 each took a QoS 0 one's place. */
    assert_int_equal(s->queued_count, 10);
    assert_int_equal(s->memory_queued, 10);
    assert_int_equal(s->queued0_count, 0);
    assert_int_equal(s->queued0_bytes, 0);
    assert_int_equal(s->queued_bytes, 10 * size);
    assert_int_equal(b.stats.qos0_gave_way, 4);
    assert_int_equal(b.stats.qos0_dropped, 2);
    assert_int_equal(m0->refcount, 1);
    assert_false(session_queue_has_room(s, size));
    assert_false(session_queue_has_room_qos0(s, size));

    fake_conn_free(c);
    for (int i = 0; i < 10; i++)
        msg_unref(m1[i]);
    msg_unref(m0);
    broker_destroy_for_test(&b);
}

/* drop_oldest drops the oldest queued QoS 1 deliveries, as many as make room, and counts them
 * (metrics and the ledgermq-dropped count for the client). */
static void test_drop_oldest_drops_oldest_and_counts(void **state)
{
    LMQ_UNUSED(state);
    struct lmq_config cfg;
    config(&cfg);
    cfg.limits.max_queued_bytes = 3 * (TOPIC_LEN + 30); /* three messages of 30 bytes */
    struct broker b;
    assert_int_equal(broker_init_for_test(&b, &cfg), LMQ_OK);
    struct session *s = session(&b, "sub");
    struct conn *c = fake_conn(&b, s, CONN_AWAIT_CONNECT, 10);
    struct msg *m[3];
    for (int i = 0; i < 3; i++) {
        m[i] = message(&b, TOPIC, 30, 1);
        session_queue_add(s, m[i], 1, false, NULL, 0);
    }
    struct msg *big = message(&b, TOPIC, 60, 1); /* needs the room of two */
    assert_false(session_queue_has_room(s, big->size_bytes));
    assert_true(session_queue_drop_oldest(s, big->size_bytes));
    assert_int_equal(b.stats.overflow_dropped, 2);
    assert_int_equal(s->dropped_untold, 2);
    assert_int_equal(s->queued_count, 1);
    assert_int_equal(s->queued_bytes, TOPIC_LEN + 30);
    /* The two oldest went; the newest is still queued. */
    assert_int_equal(m[0]->refcount, 1);
    assert_int_equal(m[1]->refcount, 1);
    assert_int_equal(m[2]->refcount, 2);
    assert_ptr_equal(list_entry(s->queue.next, struct delivery, link)->msg, m[2]);
    session_queue_add(s, big, 1, false, NULL, 0);
    assert_int_equal(s->queued_bytes, 2 * TOPIC_LEN + 30 + 60);
    session_queue_verify(s);

    fake_conn_free(c);
    for (int i = 0; i < 3; i++)
        msg_unref(m[i]);
    msg_unref(big);
    broker_destroy_for_test(&b);
}

/* A persistent session offline: QoS 1 deliveries live only as (uncommitted) store rows, counted
 * as its backlog; once their commit is done nothing of them is left in memory. */
static void test_offline_session_queues_a_backlog(void **state)
{
    LMQ_UNUSED(state);
    struct lmq_config cfg;
    config(&cfg);
    struct broker b;
    assert_int_equal(broker_init_for_test(&b, &cfg), LMQ_OK);
    struct session *s = session(&b, "offline");
    s->persistent = true;
    s->stored = true;
    s->expiry_s = 60;
    struct msg *m[3];
    for (int i = 0; i < 3; i++) {
        m[i] = message(&b, TOPIC, 5, 1);
        session_queue_add(s, m[i], 1, false, NULL, 0);
        assert_true(m[i]->persisted);
    }
    assert_int_equal(s->queued_count, 3);
    assert_int_equal(s->stored_backlog, 3);
    assert_int_equal(s->stored_backlog_bytes, 3 * (TOPIC_LEN + 5));
    assert_int_equal(s->memory_queued, 0);
    assert_int_equal(s->next_seq, 3);
    assert_int_equal(s->paged_seq, 0);
    assert_int_equal(s->unsynced_count, 3); /* kept for queue_overflow until committed */
    assert_true(session_queue_behind(s));
    assert_non_null(b.batch);
    assert_true(list_linked(&s->commit_wait));
    session_queue_verify(s);

    commit_turn_end(&b);
    assert_int_equal(s->unsynced_count, 0);
    assert_int_equal(s->stored_backlog, 3); /* still counted: the rows are in the store */
    assert_int_equal(s->queued_count, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(m[i]->refcount, 1);
    session_queue_verify(s);

    for (int i = 0; i < 3; i++)
        msg_unref(m[i]);
    broker_destroy_for_test(&b);
}

/* The inflight window (the client's Receive Maximum) holds QoS 1 back; an acknowledgement lets
 * the next one go; QoS 0 is not held back by it. */
static void test_inflight_window_holds_back_qos1(void **state)
{
    LMQ_UNUSED(state);
    struct lmq_config cfg;
    config(&cfg);
    struct broker b;
    assert_int_equal(broker_init_for_test(&b, &cfg), LMQ_OK);
    struct session *s = session(&b, "sub");
    struct conn *c = fake_conn(&b, s, CONN_CONNECTED, 2);
    struct msg *m[5];
    for (int i = 0; i < 5; i++) {
        m[i] = message(&b, TOPIC, 4, 1);
        session_queue_add(s, m[i], 1, false, NULL, 0);
    }
    uint8_t qos[8];
    uint16_t ids[8];
    assert_int_equal(sent_publishes(c, qos, ids, 8), 2);
    assert_int_equal(qos[0], 1);
    assert_int_equal(qos[1], 1);
    assert_int_not_equal(ids[0], ids[1]);
    assert_int_equal(s->inflight_count, 2);
    assert_int_equal(s->memory_queued, 3);
    assert_int_equal(s->queued_count, 5);
    session_queue_verify(s);

    /* QoS 0 goes out past a full window. */
    struct msg *m0 = message(&b, TOPIC, 4, 0);
    session_queue_add(s, m0, 0, false, NULL, 0);
    assert_int_equal(sent_publishes(c, qos, ids, 8), 3);
    assert_int_equal(qos[2], 0);
    assert_int_equal(s->queued0_count, 0);
    assert_int_equal(m0->refcount, 1);

    /* Acknowledgements: unknown id, wrong flow; then the right one frees a slot. */
    assert_int_equal(session_queue_ack(s, MQTT_PUBACK, 999, 0), LMQ_ENOTFOUND);
    assert_int_equal(session_queue_ack(s, MQTT_PUBCOMP, ids[1], 0), LMQ_ENOTFOUND);
    assert_int_equal(s->inflight_count, 2);
    assert_int_equal(session_queue_ack(s, MQTT_PUBACK, ids[0], 0), LMQ_OK);
    assert_int_equal(m[0]->refcount, 1);
    assert_int_equal(sent_publishes(c, qos, ids, 8), 4);
    assert_int_equal(qos[3], 1);
    assert_int_equal(s->inflight_count, 2);
    assert_int_equal(s->memory_queued, 2);
    assert_int_equal(s->queued_count, 4);
    session_queue_verify(s);

    fake_conn_free(c);
    for (int i = 0; i < 5; i++)
        msg_unref(m[i]);
    msg_unref(m0);
    broker_destroy_for_test(&b);
}

struct will_case {
    struct broker b;
    struct session *s, *watcher;
    struct conn *watcher_conn;
    uint64_t now;
};

/* s (persistent, expiry_s) with a QoS 0 will (will_delay_s) loses its connection; a watcher
 * session subscribed to the will topic queues what it gets. */
static void will_case_start(struct will_case *w, uint32_t expiry_s, uint32_t will_delay_s)
{
    struct lmq_config cfg;
    config(&cfg);
    assert_int_equal(broker_init_for_test(&w->b, &cfg), LMQ_OK);
    w->watcher = session(&w->b, "watcher");
    w->watcher_conn = fake_conn(&w->b, w->watcher, CONN_AWAIT_CONNECT, 10);
    bool existed = false;
    assert_int_equal(
        sub_tree_add(w->b.subs, (const uint8_t *)"will/t", 6, NULL, 0, w->watcher, 0, 0, &existed),
        LMQ_OK);
    w->s = session(&w->b, "dying");
    w->s->persistent = true;
    w->s->expiry_s = expiry_s;
    w->s->will = message(&w->b, "will/t", 3, 0);
    w->s->will_delay_s = will_delay_s;
    struct conn *c = fake_conn(&w->b, w->s, CONN_CONNECTED, 10);
    c->will_on_close = true;
    w->now = clock_now_ms(&w->b);
    session_detach(c);
    assert_null(w->s->conn);
    fake_conn_free(c);
    assert_int_equal(w->s->will_due_ms, w->now + (uint64_t)will_delay_s * 1000);
    assert_int_equal(w->s->expires_ms, w->now + (uint64_t)expiry_s * 1000);
    /* Timing is the test's: the timer is made to keep the loop running. */
    uv_ref((uv_handle_t *)&w->s->timer);
}

static bool will_session_alive(struct will_case *w)
{
    return lmq_map_get(w->b.sessions, (const uint8_t *)"dying", 5) != NULL;
}

/* Runs the loop until the dying session's timer fired once. */
static void will_case_fire(struct will_case *w, bool will_first)
{
    for (int i = 0; i < 1000; i++) {
        bool fired = will_first ? w->s->will == NULL : !will_session_alive(w);
        if (fired)
            return;
        uv_run(&w->b.loop, UV_RUN_ONCE);
    }
    fail_msg("the session timer did not fire");
}

static void will_case_end(struct will_case *w)
{
    assert_int_equal(sub_tree_remove(w->b.subs, (const uint8_t *)"will/t", 6, NULL, 0, w->watcher),
                     LMQ_OK);
    fake_conn_free(w->watcher_conn);
    broker_destroy_for_test(&w->b);
}

/* Will delay shorter than the session expiry: the timer fires for the will first (the session
 * stays), then again for the expiry. */
static void test_will_delay_before_expiry_fires_first(void **state)
{
    LMQ_UNUSED(state);
    struct will_case w;
    will_case_start(&w, 10, 2);
    assert_int_equal(uv_timer_get_due_in(&w.s->timer), 2000);
    /* The same order, sooner: 20 ms and 60 ms. */
    w.s->will_due_ms = w.now + 20;
    w.s->expires_ms = w.now + 60;
    session_arm_timer(w.s);
    assert_int_equal(uv_timer_get_due_in(&w.s->timer), 20);
    will_case_fire(&w, true);
    assert_true(will_session_alive(&w)); /* published, not expired */
    assert_int_equal(w.watcher->queued0_count, 1);
    assert_int_equal(w.s->will_due_ms, 0);
    assert_true(uv_is_active((uv_handle_t *)&w.s->timer)); /* re-armed for the expiry */
    assert_true(uv_timer_get_due_in(&w.s->timer) <= 60);
    will_case_fire(&w, false);
    assert_false(will_session_alive(&w));
    assert_int_equal(w.watcher->queued0_count, 1); /* the will went out once */
    will_case_end(&w);
}

/* Session expiry shorter than the will delay: the session ends at its expiry and the will goes
 * out then, not at its delay. */
static void test_expiry_before_will_delay_publishes_will_at_end(void **state)
{
    LMQ_UNUSED(state);
    struct will_case w;
    will_case_start(&w, 2, 10);
    assert_int_equal(uv_timer_get_due_in(&w.s->timer), 2000);
    w.s->expires_ms = w.now + 20;
    w.s->will_due_ms = w.now + 5000;
    session_arm_timer(w.s);
    assert_int_equal(uv_timer_get_due_in(&w.s->timer), 20);
    assert_int_equal(w.watcher->queued0_count, 0);
    will_case_fire(&w, false);
    assert_false(will_session_alive(&w));
    assert_int_equal(w.watcher->queued0_count, 1);
    will_case_end(&w);
}

/* The counters are really checked: a session whose queue count disagrees with its parts makes
 * session_queue_check abort (in a child process). */
static void test_queue_check_catches_a_wrong_count(void **state)
{
    LMQ_UNUSED(state);
    struct lmq_config cfg;
    config(&cfg);
    struct broker b;
    assert_int_equal(broker_init_for_test(&b, &cfg), LMQ_OK);
    struct session *s = session(&b, "sub");
    struct conn *c = fake_conn(&b, s, CONN_AWAIT_CONNECT, 10);
    struct msg *m = message(&b, TOPIC, 1, 1);
    session_queue_add(s, m, 1, false, NULL, 0);
    session_queue_check(s); /* consistent: returns */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)freopen("/dev/null", "w", stderr);
        s->memory_queued++; /* a count patched up somewhere */
        session_queue_check(s);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    fake_conn_free(c);
    msg_unref(m);
    broker_destroy_for_test(&b);
}

/* Out of memory for a delivery: a QoS 0 one is dropped and counted; a QoS 1 one (its publisher
 * is told it was accepted) stops the broker with exit status 2 and a store_failure line. */
static void test_delivery_out_of_memory_qos0_dropped_qos1_fail_stop(void **state)
{
    LMQ_UNUSED(state);
    struct lmq_config cfg;
    config(&cfg);
    struct broker b;
    assert_int_equal(broker_init_for_test(&b, &cfg), LMQ_OK);
    struct session *s = session(&b, "sub");
    struct conn *c = fake_conn(&b, s, CONN_AWAIT_CONNECT, 10);
    struct msg *m0 = message(&b, TOPIC, 1, 0);
    session_queue_test_fail_alloc(1);
    session_queue_add(s, m0, 0, false, NULL, 0);
    assert_int_equal(b.stats.qos0_dropped, 1);
    assert_int_equal(s->queued_count, 0);
    assert_int_equal(m0->refcount, 1);
    session_queue_add(s, m0, 0, false, NULL, 0); /* the fault was once */
    assert_int_equal(s->queued_count, 1);

    struct msg *m1 = message(&b, TOPIC, 1, 1);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        lmq_log_set_fd(fds[1]);
        session_queue_test_fail_alloc(1);
        session_queue_add(s, m1, 1, false, NULL, 0);
        _exit(0); /* not reached: the delivery would have been lost */
    }
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(out, "\"store_failure\""));
    assert_non_null(strstr(out, "delivery (out of memory)"));

    fake_conn_free(c);
    msg_unref(m0);
    msg_unref(m1);
    broker_destroy_for_test(&b);
}

int main(void)
{
    lmq_log_set_level(LMQ_LOG_ERROR); /* qos0_dropped warnings are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qos0_budget_gives_way_to_qos1),
        cmocka_unit_test(test_drop_oldest_drops_oldest_and_counts),
        cmocka_unit_test(test_offline_session_queues_a_backlog),
        cmocka_unit_test(test_inflight_window_holds_back_qos1),
        cmocka_unit_test(test_will_delay_before_expiry_fires_first),
        cmocka_unit_test(test_expiry_before_will_delay_publishes_will_at_end),
        cmocka_unit_test(test_queue_check_catches_a_wrong_count),
        cmocka_unit_test(test_delivery_out_of_memory_qos0_dropped_qos1_fail_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
