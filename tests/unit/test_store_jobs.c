/*
 * Scheduled jobs' rows in the SQLite store (store_jobs.c, table job_runs of schema 9): a run's
 * start is a plain insert (the same job and tick twice fails the commit: a tick never starts
 * twice), its end updates state, end time and detail and prunes beyond keep; the reads give a
 * job's runs newest first, or every job's runs still "running"; a schema 6 database migrates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lmq.h"
#include "store/store.h"
#include "store/store_schema.h"

#define BYTES(s) ((struct lmq_bytes){(const uint8_t *)(s), strlen(s)})
#define ROWS_MAX 16

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char path[96];
    struct store *store;
};

static int open_store(struct fixture *f)
{
    char err[256];
    struct store_options opts = {.path = f->path, .sync = STORE_SYNC_OFF};
    return store_open(&f->loop, &opts, &f->store, err, sizeof(err));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/lmq-jobs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ledgermq.db", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(open_store(f), 0);
    *state = f;
    return 0;
}

static void close_store(struct fixture *f)
{
    if (f->store == NULL)
        return;
    store_close(f->store);
    f->store = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_store(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

struct commit_result {
    int calls;
    int status;
};

static void on_commit(void *arg, int status)
{
    struct commit_result *r = arg;
    r->calls++;
    r->status = status;
}

static int commit_and_wait(struct fixture *f)
{
    struct commit_result r = {0, 1};
    assert_int_equal(store_commit(f->store, on_commit, &r), 0);
    for (int i = 0; i < 1000 && r.calls == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r.calls, 1);
    return r.status;
}

static void write_run(struct fixture *f, bool start, const char *job, int64_t tick,
                      const char *state, const char *detail, uint32_t keep)
{
    struct store_record rec = {.type = start ? STORE_JOB_RUN_START : STORE_JOB_RUN_END};
    rec.u.job_run = (struct store_rec_job_run){.job = BYTES(job),
                                               .tick_ms = tick,
                                               .skipped = start ? 3 : 0,
                                               .started_unix_ms = tick + 1,
                                               .ended_unix_ms = start ? 0 : tick + 9,
                                               .state = BYTES(state),
                                               .detail = BYTES(detail),
                                               .keep = keep};
    assert_int_equal(store_write(f->store, &rec), 0);
}

struct got {
    size_t count;
    char job[ROWS_MAX][40];
    int64_t tick[ROWS_MAX];
    char state[ROWS_MAX][16];
    char detail[ROWS_MAX][64];
    uint64_t skipped[ROWS_MAX];
    int64_t ended[ROWS_MAX];
};

static int collect(void *ctx, const struct store_job_run_row *r)
{
    struct got *g = ctx;
    assert_true(g->count < ROWS_MAX);
    size_t i = g->count++;
    snprintf(g->job[i], sizeof(g->job[i]), "%.*s", (int)r->job.len, (const char *)r->job.data);
    snprintf(g->state[i], sizeof(g->state[i]), "%.*s", (int)r->state.len,
             (const char *)r->state.data);
    snprintf(g->detail[i], sizeof(g->detail[i]), "%.*s", (int)r->detail.len,
             (const char *)r->detail.data);
    g->tick[i] = r->tick_ms;
    g->skipped[i] = r->skipped;
    g->ended[i] = r->ended_unix_ms;
    return 0;
}

static struct got read_runs(struct fixture *f, const char *job, size_t limit)
{
    struct got g = {0};
    size_t count = 0;
    struct lmq_bytes j = job != NULL ? BYTES(job) : (struct lmq_bytes){NULL, 0};
    assert_int_equal(store_job_runs(f->store, j, limit, collect, &g, &count), 0);
    assert_int_equal(count, g.count);
    return g;
}

static void test_a_run_is_inserted_running_then_ended_with_its_detail(void **state)
{
    struct fixture *f = *state;
    write_run(f, true, "prune", 1000, "running", "", 0);
    assert_int_equal(commit_and_wait(f), 0);
    struct got g = read_runs(f, "prune", 10);
    assert_int_equal(g.count, 1);
    assert_string_equal(g.state[0], "running");
    assert_int_equal(g.skipped[0], 3);
    assert_int_equal(g.ended[0], 0);
    write_run(f, false, "prune", 1000, "failed", "disk on fire", 10);
    assert_int_equal(commit_and_wait(f), 0);
    g = read_runs(f, "prune", 10);
    assert_int_equal(g.count, 1);
    assert_string_equal(g.state[0], "failed");
    assert_string_equal(g.detail[0], "disk on fire");
    assert_int_equal(g.ended[0], 1009);
    assert_int_equal(g.skipped[0], 3); /* the end keeps what the start wrote */
}

static void test_the_same_tick_started_twice_fails_the_commit(void **state)
{
    struct fixture *f = *state;
    write_run(f, true, "prune", 1000, "running", "", 0);
    assert_int_equal(commit_and_wait(f), 0);
    write_run(f, true, "prune", 1000, "running", "", 0);
    assert_int_equal(commit_and_wait(f), LMQ_EIO);
}

static void test_reads_give_newest_first_and_the_running_ones_of_every_job(void **state)
{
    struct fixture *f = *state;
    for (int64_t t = 1; t <= 4; t++) {
        write_run(f, true, "a", t * 1000, "running", "", 0);
        write_run(f, true, "b", t * 1000, "running", "", 0);
    }
    write_run(f, false, "a", 4000, "ok", "", 0);
    write_run(f, false, "b", 1000, "ok", "", 0);
    assert_int_equal(commit_and_wait(f), 0);
    struct got g = read_runs(f, "a", 2);
    assert_int_equal(g.count, 2);
    assert_int_equal(g.tick[0], 4000);
    assert_int_equal(g.tick[1], 3000);
    g = read_runs(f, NULL, ROWS_MAX); /* every job's runs still running */
    assert_int_equal(g.count, 6);
    for (size_t i = 0; i < g.count; i++)
        assert_string_equal(g.state[i], "running");
}

static void test_an_end_with_keep_deletes_the_older_runs_of_that_job_only(void **state)
{
    struct fixture *f = *state;
    for (int64_t t = 1; t <= 6; t++) {
        write_run(f, true, "a", t * 1000, "running", "", 0);
        write_run(f, true, "b", t * 1000, "running", "", 0);
    }
    write_run(f, false, "a", 6000, "ok", "", 3);
    assert_int_equal(commit_and_wait(f), 0);
    struct got g = read_runs(f, "a", ROWS_MAX);
    assert_int_equal(g.count, 3);
    assert_int_equal(g.tick[2], 4000);
    assert_int_equal(read_runs(f, "b", ROWS_MAX).count, 6);
}

static void test_database_of_schema_8_gets_the_job_runs_table(void **state)
{
    struct fixture *f = *state;
    close_store(f);
    unlink(f->path);
    char err[256];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, 8, err, sizeof(err)), 0);
    sqlite3_close(db);
    assert_int_equal(open_store(f), 0);
    write_run(f, true, "prune", 1000, "running", "", 0);
    assert_int_equal(commit_and_wait(f), 0);
    assert_int_equal(read_runs(f, "prune", 10).count, 1);
    assert_true(STORE_SCHEMA_VERSION >= 9); /* job_runs came with 9 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_run_is_inserted_running_then_ended_with_its_detail,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_same_tick_started_twice_fails_the_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_reads_give_newest_first_and_the_running_ones_of_every_job, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_an_end_with_keep_deletes_the_older_runs_of_that_job_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_of_schema_8_gets_the_job_runs_table, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
