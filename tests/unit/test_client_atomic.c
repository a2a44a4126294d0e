/* libledgermq's atomic acknowledgement: what the application writes through lmq_client_db()
 * during on_envelope commits together with the inbox position, or not at all — when the
 * callback refuses, and when the process dies before the commit (a forked child that exits
 * inside the callback). */
#include "client_fixture.h"

#include <sys/wait.h>

#define TEST_MSG_MAX_BYTES 4096

/* What the test application does in on_envelope. */
enum app_mode { APP_STORE, APP_STORE_THEN_REFUSE, APP_STORE_THEN_DIE, APP_STORE_AND_SEND };

struct app {
    struct fx *f;
    enum app_mode mode;
    size_t calls;
    char sent_link[LMQ_CLIENT_ID_BYTES];
};

static int app_on_envelope(void *ctx, const struct lmq_inbox_envelope *env)
{
    struct app *a = ctx;
    sqlite3 *db = lmq_client_db(a->f->c);
    sqlite3_stmt *st = NULL;
    a->calls++;
    assert_int_equal(sqlite3_get_autocommit(db), 0); /* the library's transaction is open */
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO app_inbox(position) VALUES(?1)", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)env->position);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    if (a->mode == APP_STORE_THEN_DIE) {
        _exit(0); /* the process dies with the transaction open: no commit, no rollback */
    }
    if (a->mode == APP_STORE_AND_SEND) {
        assert_int_equal(lmq_client_send(a->f->c, a->f->peer.id, "reply", "{}", a->sent_link), 0);
    }
    return a->mode == APP_STORE_THEN_REFUSE ? -1 : 0;
}

/* Opens the receiving client with the test application and its table. */
static void app_open(struct fx *f, struct app *a, enum app_mode mode)
{
    memset(a, 0, sizeof(*a));
    a->f = f;
    a->mode = mode;
    fx_open(f, true);
    f->c->cb.ctx = a;
    f->c->cb.on_envelope = app_on_envelope;
    assert_int_equal(sqlite3_exec(lmq_client_db(f->c),
                                  "CREATE TABLE IF NOT EXISTS app_inbox(position INTEGER)", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    fx_connect(f, 0);
}

static int feed_pos(struct fx *f, uint64_t position, uint16_t pid)
{
    char msg[TEST_MSG_MAX_BYTES];
    fx_inbox_msg(position, f->me.id, f->peer.seed, msg, sizeof(msg));
    return fx_feed(f, CLIENT_TOPIC_INBOX, msg, pid);
}

/* Rows of app_inbox as another connection (another process) sees them: committed only. */
static int64_t app_rows(struct fx *f)
{
    char path[FX_PATH_BYTES + 16];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t rows = -1;
    snprintf(path, sizeof(path), "%s/client.db", f->state);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM app_inbox", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    rows = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rows;
}

static void test_app_row_commits_with_position(void **state)
{
    struct fx *f = *state;
    struct app a;
    app_open(f, &a, APP_STORE);
    assert_int_equal(feed_pos(f, 1, 3), 0);
    assert_int_equal(feed_pos(f, 2, 4), 0);
    assert_int_equal(a.calls, 2);
    assert_int_equal(app_rows(f), 2);
    assert_int_equal(fx_db_position(f), 2);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->db_position, 2); /* committed before the PUBACK */
    assert_int_not_equal(sqlite3_get_autocommit(lmq_client_db(f->c)), 0);
    /* A redelivery is filtered by the position: the application is not called again. */
    assert_int_equal(feed_pos(f, 2, 5), 0);
    assert_int_equal(a.calls, 2);
    assert_int_equal(app_rows(f), 2);
}

static void test_refusing_callback_leaves_neither_row_nor_position(void **state)
{
    struct fx *f = *state;
    struct app a;
    app_open(f, &a, APP_STORE_THEN_REFUSE);
    size_t pubacks = fx_count(f, MQTT_PUBACK, NULL);
    assert_int_equal(feed_pos(f, 1, 3), LMQ_EAGAIN);
    assert_int_equal(a.calls, 1);
    assert_int_equal(app_rows(f), 0);
    assert_int_equal(fx_db_position(f), 0);
    assert_int_equal(lmq_client_inbox_position(f->c), 0);
    assert_int_equal(fx_count(f, MQTT_PUBACK, NULL), pubacks);
    assert_int_not_equal(sqlite3_get_autocommit(lmq_client_db(f->c)), 0); /* rolled back */
    /* Taken on the next attempt: one row, not two. */
    client_session_reset(f->c);
    a.mode = APP_STORE;
    fx_connect(f, 0);
    assert_int_equal(feed_pos(f, 1, 3), 0);
    assert_int_equal(app_rows(f), 1);
    assert_int_equal(fx_db_position(f), 1);
}

static void test_crash_inside_callback_leaves_neither_then_redelivers_once(void **state)
{
    struct fx *f = *state;
    struct app a;
    /* The schema exists before the child runs, so "no rows" below is a real observation. */
    fx_open(f, true);
    assert_int_equal(sqlite3_exec(lmq_client_db(f->c), "CREATE TABLE app_inbox(position INTEGER)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    fx_close(f);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        app_open(f, &a, APP_STORE_THEN_DIE);
        (void)feed_pos(f, 1, 3);
        _exit(3); /* not reached when the callback ran */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* died inside the callback */
    assert_int_equal(app_rows(f), 0);
    assert_int_equal(fx_db_position(f), 0);
    /* After the "restart" the envelope comes again and is taken exactly once. */
    app_open(f, &a, APP_STORE);
    assert_int_equal(lmq_client_inbox_position(f->c), 0);
    assert_int_equal(feed_pos(f, 1, 3), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(app_rows(f), 1);
    assert_int_equal(fx_db_position(f), 1);
}

static void test_send_from_callback_is_published_after_commit(void **state)
{
    struct fx *f = *state;
    struct app a;
    uint64_t pending = 0;
    app_open(f, &a, APP_STORE_AND_SEND);
    size_t published = fx_count(f, MQTT_PUBLISH, "/outbox");
    assert_int_equal(feed_pos(f, 1, 3), 0);
    assert_int_equal(strlen(a.sent_link), 64);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), published + 1);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 1);
    /* A refused delivery takes its reply with it: nothing stored, nothing published. */
    a.mode = APP_STORE_THEN_REFUSE;
    assert_int_equal(feed_pos(f, 2, 4), LMQ_EAGAIN);
    assert_int_equal(lmq_client_pending_count(f->c, &pending), 0);
    assert_int_equal(pending, 1);
    assert_int_equal(fx_count(f, MQTT_PUBLISH, "/outbox"), published + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_app_row_commits_with_position, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refusing_callback_leaves_neither_row_nor_position,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_crash_inside_callback_leaves_neither_then_redelivers_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_send_from_callback_is_published_after_commit, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
