/*
 * The job scheduler's C API (src/jobs/jobs.h) on a test broker with a real store: a registered
 * job's first step runs only once its run's row is durable (the step reads it back), a manual
 * run (jobs_run_now) goes through its steps to "ok", a second one while it runs is refused,
 * jobs_list / jobs_history / jobs_metrics and the on_finished callback see it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_internal.h"
#include "core/buf.h"
#include "jobs/jobs.h"

struct probe {
    struct broker *b;
    int steps;
    int rows_seen_running; /* steps that found their run's row stored as "running" */
    int finished;
    struct jobs_run last;
    char last_detail[JOBS_DETAIL_MAX_BYTES];
};

static struct probe probe;

static int probe_row(void *ctx, const struct store_job_run_row *r)
{
    int *running = ctx;
    *running += r->state.len == 7 && memcmp(r->state.data, "running", 7) == 0;
    return 0;
}

static int probe_step(struct jobs_step *st)
{
    struct probe *p = st->ctx;
    int running = 0;
    size_t count = 0;
    assert_int_equal(store_job_runs(p->b->store, (struct lmq_bytes){(const uint8_t *)"probe", 5}, 1,
                                    probe_row, &running, &count),
                     LMQ_OK);
    p->rows_seen_running += running;
    p->steps++;
    st->count++;
    snprintf(st->detail, sizeof(st->detail), "probed %d", p->steps);
    return st->count < 3 ? JOBS_STEP_MORE : JOBS_STEP_DONE;
}

static void on_finished(void *ctx, const struct jobs_run *run)
{
    struct probe *p = ctx;
    p->finished++;
    p->last = *run;
    snprintf(p->last_detail, sizeof(p->last_detail), "%s", run->detail);
}

static int history_row(void *ctx, const struct jobs_run *run)
{
    struct jobs_run *out = ctx;
    *out = *run;
    out->detail = NULL; /* valid during the call only */
    return 0;
}

/* One loop turn as the server makes it: run the loop, then close the turn's batch. */
static void turn(struct broker *b)
{
    uv_run(&b->loop, UV_RUN_NOWAIT);
    commit_turn_end(b);
    usleep(1000);
}

static void test_manual_run_starts_after_its_row_is_durable_and_is_listed(void **state)
{
    (void)state;
    char dir[] = "/tmp/lmq-bjobs-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ledgermq.db", dir);
    struct lmq_config cfg;
    lmq_config_defaults(&cfg);
    static struct broker b;
    assert_int_equal(broker_init_for_test(&b, &cfg), LMQ_OK);
    struct store_options opts = {.path = path, .sync = STORE_SYNC_OFF};
    assert_int_equal(store_open(&b.loop, &opts, &b.store, err, sizeof(err)), LMQ_OK);
    assert_int_equal(jobs_init(&b), LMQ_OK);
    probe = (struct probe){.b = &b};
    struct jobs_job job = {.name = "probe", .step = probe_step, .ctx = &probe};
    assert_int_equal(jobs_register(&b, &job), LMQ_OK);
    assert_int_equal(jobs_register(&b, &job), LMQ_EEXIST);
    struct jobs_job bad = {.name = "Bad Name", .step = probe_step};
    assert_int_equal(jobs_register(&b, &bad), LMQ_EINVAL);
    struct jobs_job bad_schedule = {.name = "x", .step = probe_step, .default_schedule = "@soon"};
    assert_int_equal(jobs_register(&b, &bad_schedule), LMQ_EINVAL);
    jobs_set_on_finished(&b, on_finished, &probe);
    assert_int_equal(jobs_start(&b), LMQ_OK);

    assert_int_equal(jobs_run_now(&b, "nope"), LMQ_ENOTFOUND);
    assert_int_equal(jobs_run_now(&b, "probe"), LMQ_OK);
    assert_int_equal(jobs_run_now(&b, "probe"), LMQ_EEXIST); /* one run at a time */
    for (int i = 0; i < 5000 && probe.finished == 0; i++)
        turn(&b);
    assert_int_equal(probe.finished, 1);
    assert_int_equal(probe.steps, 3);
    assert_int_equal(probe.rows_seen_running, 3); /* every step, the first too */
    assert_int_equal(probe.last.state, JOBS_OK);
    assert_true(probe.last.manual);
    assert_string_equal(probe.last_detail, "probed 3");

    for (int i = 0; i < 50; i++)
        turn(&b); /* the end row's commit */
    struct jobs_run h = {0};
    assert_int_equal(jobs_history(&b, "probe", 10, history_row, &h), LMQ_OK);
    assert_int_equal(h.state, JOBS_OK);
    assert_true(h.manual && h.ended_unix_ms >= h.started_unix_ms);
    assert_int_equal(h.tick_ms, probe.last.tick_ms);
    assert_int_equal(jobs_history(&b, "nope", 10, history_row, &h), LMQ_ENOTFOUND);

    struct jobs_info info[8];
    size_t count = 0;
    jobs_list(&b, info, 8, &count);
    /* prune_sessions, expire_messages, export, chaser, import, prune_events, probe */
    assert_int_equal(count, 7);
    assert_string_equal(info[6].name, "probe");
    assert_string_equal(info[6].schedule, "");
    assert_int_equal(info[6].next_tick_ms, 0);
    assert_false(info[6].running);
    assert_int_equal(info[6].runs_total[JOBS_OK], 1);
    assert_true(info[6].last_success_unix_ms > 0);

    struct lmq_buf out = {0};
    assert_int_equal(jobs_metrics(&b, &out), 0);
    const char *want = "ledgermq_job_runs_total{job=\"probe\",result=\"ok\"} 1\n";
    assert_non_null(memmem(out.data, out.len, want, strlen(want)));
    const char *idle = "ledgermq_job_running{job=\"probe\"} 0\n";
    assert_non_null(memmem(out.data, out.len, idle, strlen(idle)));
    lmq_buf_release(&out);

    jobs_stop(&b);
    for (int i = 0; i < 50; i++)
        turn(&b);
    struct store *s = b.store;
    b.store = NULL;
    store_close(s);
    uv_run(&b.loop, UV_RUN_NOWAIT); /* the timers' closes */
    jobs_destroy(&b);
    b.commit_hook_count = 0; /* the hook's owner is gone */
    broker_destroy_for_test(&b);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manual_run_starts_after_its_row_is_durable_and_is_listed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
