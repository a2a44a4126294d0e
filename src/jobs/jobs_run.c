/*
 * A job's run: its row ("running", committed before anything runs), its steps on the loop, the
 * timeout checked between steps, its end (row, counters, log line, on_finished).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "jobs/jobs_internal.h"

static const char *const jobs_state_names[JOBS_STATE_COUNT] = {"running", "ok", "failed", "timeout",
                                                               "interrupted"};

const char *jobs_state_name(enum jobs_state state)
{
    LMQ_ASSERT((unsigned)state < JOBS_STATE_COUNT);
    return jobs_state_names[state];
}

static struct lmq_bytes jobs_bytes(const char *s)
{
    return (struct lmq_bytes){(const uint8_t *)s, strlen(s)};
}

void jobs_row_end(struct broker *b, const char *job, int64_t tick_ms, enum jobs_state state,
                  const char *detail, uint32_t keep)
{
    LMQ_ASSERT(b != NULL && job != NULL && state != JOBS_RUNNING);
    struct store_record rec = {.type = STORE_JOB_RUN_END};
    rec.u.job_run = (struct store_rec_job_run){.job = jobs_bytes(job),
                                               .tick_ms = tick_ms,
                                               .ended_unix_ms = clock_unix_ms(b),
                                               .state = jobs_bytes(jobs_state_name(state)),
                                               .detail = jobs_bytes(detail),
                                               .keep = keep};
    commit_store_write(b, &rec);
}

void jobs_run_begin(struct jobs_entry *e, int64_t tick_ms, bool manual, uint64_t skipped)
{
    LMQ_ASSERT(e != NULL && !e->active);
    LMQ_ASSERT(tick_ms > e->last_tick_ms); /* the key is new: the insert cannot collide */
    struct broker *b = e->jobs->broker;
    e->active = true;
    e->last_tick_ms = tick_ms;
    e->detail[0] = '\0';
    e->run = (struct jobs_run){.job = e->job.name,
                               .tick_ms = tick_ms,
                               .manual = manual,
                               .skipped = skipped,
                               .started_unix_ms = clock_unix_ms(b),
                               .state = JOBS_RUNNING,
                               .detail = e->detail};
    struct store_record rec = {.type = STORE_JOB_RUN_START};
    rec.u.job_run = (struct store_rec_job_run){.job = jobs_bytes(e->job.name),
                                               .tick_ms = tick_ms,
                                               .manual = manual,
                                               .skipped = skipped,
                                               .started_unix_ms = e->run.started_unix_ms,
                                               .state = jobs_bytes("running"),
                                               .detail = jobs_bytes("")};
    commit_store_write(b, &rec);
    e->pending_seq = commit_batch_seq(b); /* the first step waits for this batch */
}

static void jobs_log_end(const struct jobs_entry *e, uint64_t ms)
{
    struct lmq_log_line line;
    enum lmq_log_level level = e->run.state == JOBS_OK ? LMQ_LOG_INFO : LMQ_LOG_WARN;
    if (!lmq_log_begin(&line, level, "job_run_ended"))
        return;
    lmq_log_str(&line, "job", e->job.name);
    lmq_log_int(&line, "tick", e->run.tick_ms);
    lmq_log_str(&line, "result", jobs_state_name(e->run.state));
    lmq_log_uint(&line, "ms", ms);
    lmq_log_str(&line, "detail", e->run.detail);
    lmq_log_uint(&line, "count", e->step.count);
    lmq_log_uint(&line, "skipped", e->run.skipped);
    lmq_log_bool(&line, "manual", e->run.manual);
    lmq_log_end(&line);
}

void jobs_run_end(struct jobs_entry *e, enum jobs_state state, const char *detail)
{
    LMQ_ASSERT(e != NULL && e->active && e->pending_seq == 0);
    LMQ_ASSERT(state != JOBS_RUNNING);
    struct broker *b = e->jobs->broker;
    uv_timer_stop(&e->step_timer);
    snprintf(e->detail, sizeof(e->detail), "%s", detail);
    e->run.state = state;
    e->run.ended_unix_ms = clock_unix_ms(b);
    e->runs_total[state]++;
    if (state == JOBS_OK)
        e->last_success_unix_ms = e->run.ended_unix_ms;
    jobs_row_end(b, e->job.name, e->run.tick_ms, state, e->detail, e->keep_runs);
    jobs_log_end(e, clock_now_ms(b) - e->started_loop_ms);
    e->active = false;
    if (e->jobs->on_finished != NULL)
        e->jobs->on_finished(e->jobs->on_finished_ctx, &e->run);
}

static void jobs_on_step(uv_timer_t *t)
{
    struct jobs_entry *e = t->data;
    LMQ_ASSERT(e != NULL && e->active && e->pending_seq == 0);
    struct broker *b = e->jobs->broker;
    if (e->jobs->stopping)
        return;
    uint64_t elapsed_ms = clock_now_ms(b) - e->started_loop_ms;
    if (elapsed_ms >= e->timeout_ms) {
        char why[JOBS_DETAIL_MAX_BYTES];
        /* The step's own detail after it, cut to what fits. */
        snprintf(why, sizeof(why),
                 "timed out after %" PRIu64 " ms (timeout_ms %" PRIu32 ")%s%.120s", elapsed_ms,
                 e->timeout_ms, e->step.detail[0] != '\0' ? ": " : "", e->step.detail);
        jobs_run_end(e, JOBS_TIMEOUT, why);
        return;
    }
    e->step.delay_ms = 0;
    int rc = e->job.step(&e->step);
    if (rc == JOBS_STEP_MORE) {
        uv_timer_start(&e->step_timer, jobs_on_step, e->step.delay_ms, 0);
        return;
    }
    if (rc == JOBS_STEP_DONE)
        jobs_run_end(e, JOBS_OK, e->step.detail);
    else
        jobs_run_end(e, JOBS_FAILED, e->step.detail[0] != '\0' ? e->step.detail : lmq_strerror(rc));
}

/* The run's row is durable: its first step on the next loop turn. */
static void jobs_run_start(struct jobs_entry *e)
{
    struct broker *b = e->jobs->broker;
    e->pending_seq = 0;
    e->started_loop_ms = clock_now_ms(b);
    e->step = (struct jobs_step){.broker = b, .ctx = e->job.ctx, .run = &e->run};
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_DEBUG, "job_run_started")) {
        lmq_log_str(&line, "job", e->job.name);
        lmq_log_int(&line, "tick", e->run.tick_ms);
        lmq_log_end(&line);
    }
    uv_timer_start(&e->step_timer, jobs_on_step, 0, 0);
}

static void jobs_on_durable(void *ctx, uint64_t batch_seq, void **data)
{
    LMQ_UNUSED(data);
    struct jobs *j = ctx;
    for (size_t i = 0; i < j->count && !j->stopping; i++) {
        struct jobs_entry *e = j->entries[i];
        if (e->active && e->pending_seq != 0 && e->pending_seq <= batch_seq)
            jobs_run_start(e);
    }
}

const struct commit_hook jobs_commit_hook = {
    .name = "jobs",
    .on_durable = jobs_on_durable,
};
