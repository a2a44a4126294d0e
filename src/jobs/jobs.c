/*
 * The scheduler's lifecycle (jobs.h), its ticks and its queries. One uv timer wakes it at the
 * earliest next tick of any job (at least every JOBS_TIMER_MAX_MS, so a wall clock that moved is
 * noticed); runs are in jobs_run.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "jobs/jobs_internal.h"
#include "net/http.h"

static void jobs_on_timer(uv_timer_t *t);

int jobs_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->jobs == NULL);
    struct jobs *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return LMQ_ENOMEM;
    j->broker = b;
    b->jobs = j; /* jobs_destroy frees what was made on failure */
    if (uv_timer_init(&b->loop, &j->timer) != 0)
        return LMQ_ENOMEM;
    j->timer_init = true;
    j->timer.data = j;
    int rc = commit_hook_register(b, &jobs_commit_hook, j, &j->commit_slot);
    if (rc == LMQ_OK)
        rc = jobs_builtin_register(b);
    return rc;
}

static bool jobs_name_valid(const char *name)
{
    size_t len = name != NULL ? strlen(name) : 0;
    bool ok = len > 0 && len <= LMQ_JOB_NAME_MAX_CHARS;
    for (size_t i = 0; ok && i < len; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             name[i] == '_';
    return ok;
}

static struct jobs_entry *jobs_find(struct jobs *j, const char *name)
{
    for (size_t i = 0; j != NULL && i < j->count; i++) {
        if (strcmp(j->entries[i]->job.name, name) == 0)
            return j->entries[i];
    }
    return NULL;
}

static const struct lmq_job_config *jobs_config(const struct broker *b, const char *name)
{
    for (size_t i = 0; i < b->cfg.jobs.count; i++) {
        if (strcmp(b->cfg.jobs.jobs[i].name, name) == 0)
            return &b->cfg.jobs.jobs[i];
    }
    return NULL;
}

int jobs_register(struct broker *b, const struct jobs_job *job)
{
    struct jobs *j = b->jobs;
    LMQ_ASSERT(j != NULL && job != NULL && job->step != NULL);
    LMQ_ASSERT(!j->started);
    if (!jobs_name_valid(job->name))
        return LMQ_EINVAL;
    if (jobs_find(j, job->name) != NULL)
        return LMQ_EEXIST;
    if (j->count == LMQ_JOBS_MAX)
        return LMQ_ELIMIT;
    const struct lmq_job_config *c = jobs_config(b, job->name);
    const char *text = c != NULL && c->schedule[0] != '\0' ? c->schedule : job->default_schedule;
    struct jobs_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return LMQ_ENOMEM;
    char err[160];
    if (text != NULL && (strlen(text) >= sizeof(e->schedule_text) ||
                         jobs_schedule_parse(text, &e->schedule, err, sizeof(err)) != LMQ_OK)) {
        free(e);
        return LMQ_EINVAL;
    }
    if (uv_timer_init(&b->loop, &e->step_timer) != 0) {
        free(e);
        return LMQ_ENOMEM;
    }
    e->step_timer.data = e;
    e->job = *job;
    e->jobs = j;
    if (text != NULL)
        memcpy(e->schedule_text, text, strlen(text) + 1);
    e->timeout_ms = c != NULL && c->timeout_ms > 0 ? c->timeout_ms
                    : job->default_timeout_ms > 0  ? job->default_timeout_ms
                                                   : JOBS_TIMEOUT_MS_DEFAULT;
    e->keep_runs = c != NULL && c->keep_runs > 0 ? c->keep_runs : JOBS_KEEP_RUNS_DEFAULT;
    e->last_tick_ms = -1;
    j->entries[j->count++] = e;
    return LMQ_OK;
}

/* Start-up: a run left "running" was cut short (kill -9, power loss, a stop): interrupted. */
static int jobs_mark_one(void *ctx, const struct store_job_run_row *r)
{
    struct broker *b = ctx;
    char job[LMQ_JOB_NAME_MAX_CHARS + 1];
    snprintf(job, sizeof(job), "%.*s", (int)LMQ_MIN(r->job.len, LMQ_JOB_NAME_MAX_CHARS),
             (const char *)r->job.data);
    const struct jobs_entry *e = jobs_find(b->jobs, job);
    jobs_row_end(b, job, r->tick_ms, JOBS_INTERRUPTED,
                 "cut short: the broker stopped during the run; not rerun",
                 e != NULL ? e->keep_runs : 0);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "job_run_interrupted")) {
        lmq_log_str(&line, "job", job);
        lmq_log_int(&line, "tick", r->tick_ms);
        lmq_log_int(&line, "started", r->started_unix_ms);
        lmq_log_end(&line);
    }
    return 0;
}

static int jobs_newest(void *ctx, const struct store_job_run_row *r)
{
    int64_t *tick = ctx;
    *tick = r->tick_ms;
    return 0;
}

/* The latest tick in (after_ms, now_ms] into *latest (-1: none) and how many there are. */
static void jobs_due(const struct jobs_entry *e, int64_t after_ms, int64_t now_ms, int64_t *latest,
                     uint64_t *count)
{
    *latest = -1;
    *count = 0;
    int64_t t = after_ms;
    if (t < now_ms - JOBS_CATCHUP_SCAN_MS)
        t = now_ms - JOBS_CATCHUP_SCAN_MS; /* older ticks are not counted (documented) */
    for (uint64_t guard = 0; guard < JOBS_CATCHUP_TICKS_MAX; guard++) {
        int64_t next = 0;
        if (jobs_schedule_next(&e->schedule, t < 0 ? 0 : t, &next) != LMQ_OK || next > now_ms)
            return;
        *latest = t = next;
        (*count)++;
    }
}

/* Starts the job's due tick (coalescing the ones before it) and sets its next tick. */
static void jobs_tick_entry(struct jobs_entry *e, int64_t now_ms)
{
    if (e->schedule_text[0] == '\0' || (e->next_tick_ms > now_ms && e->next_tick_ms != 0))
        return;
    int64_t latest;
    uint64_t count;
    jobs_due(e, e->last_tick_ms >= 0 ? e->last_tick_ms : now_ms - 1, now_ms, &latest, &count);
    if (latest > e->last_tick_ms && count > 0) {
        if (e->active) {
            e->skipped_pending += count; /* one run at a time: these ticks are skipped */
            e->last_tick_ms = latest;
        } else {
            jobs_run_begin(e, latest, false, count - 1 + e->skipped_pending);
            e->skipped_pending = 0;
        }
    }
    int64_t next = 0;
    int64_t from = e->last_tick_ms > now_ms ? e->last_tick_ms : now_ms;
    e->next_tick_ms = jobs_schedule_next(&e->schedule, from, &next) == LMQ_OK ? next : 0;
}

static void jobs_arm(struct jobs *j, int64_t now_ms)
{
    int64_t wait_ms = JOBS_TIMER_MAX_MS;
    for (size_t i = 0; i < j->count; i++) {
        int64_t next = j->entries[i]->next_tick_ms;
        if (next != 0 && next - now_ms < wait_ms)
            wait_ms = next - now_ms;
    }
    uv_timer_start(&j->timer, jobs_on_timer, wait_ms > 0 ? (uint64_t)wait_ms : 0, 0);
}

static void jobs_on_timer(uv_timer_t *t)
{
    struct jobs *j = t->data;
    LMQ_ASSERT(j != NULL && j->started);
    if (j->stopping)
        return;
    clock_sync(j->broker); /* ticks are wall-clock instants */
    int64_t now_ms = clock_unix_ms(j->broker);
    for (size_t i = 0; i < j->count; i++)
        jobs_tick_entry(j->entries[i], now_ms);
    jobs_arm(j, now_ms);
}

/* Every [jobs] line with a schedule names a registered job. */
static int jobs_check_config(struct broker *b)
{
    for (size_t i = 0; i < b->cfg.jobs.count; i++) {
        const struct lmq_job_config *c = &b->cfg.jobs.jobs[i];
        if (c->schedule[0] == '\0' || jobs_find(b->jobs, c->name) != NULL)
            continue; /* settings alone (NAME.timeout_ms, ...) enable nothing */
        char known[LMQ_JOBS_MAX * (LMQ_JOB_NAME_MAX_CHARS + 2)] = "";
        size_t used = 0;
        for (size_t k = 0; k < b->jobs->count && used < sizeof(known); k++) {
            int n = snprintf(known + used, sizeof(known) - used, "%s%s", k > 0 ? ", " : "",
                             b->jobs->entries[k]->job.name);
            used += n > 0 ? (size_t)n : 0;
        }
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "[jobs] %s: no such job (known: %s)", c->name,
                     known);
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}

int jobs_start(struct broker *b)
{
    struct jobs *j = b->jobs;
    LMQ_ASSERT(j != NULL && !j->started);
    int rc = jobs_check_config(b);
    if (rc != LMQ_OK)
        return rc;
    size_t count = 0;
    if (store_job_runs(b->store, (struct lmq_bytes){NULL, 0}, JOBS_INTERRUPTED_MAX, jobs_mark_one,
                       b, &count) != LMQ_OK)
        return LMQ_EIO;
    for (size_t i = 0; i < j->count; i++) {
        struct jobs_entry *e = j->entries[i];
        if (store_job_runs(b->store,
                           (struct lmq_bytes){(const uint8_t *)e->job.name, strlen(e->job.name)}, 1,
                           jobs_newest, &e->last_tick_ms, &count) != LMQ_OK)
            return LMQ_EIO;
    }
    j->started = true;
    clock_sync(b);
    int64_t now_ms = clock_unix_ms(b);
    /* Missed ticks (a job that ran before): one run, the latest; a new job waits for its first. */
    for (size_t i = 0; i < j->count; i++)
        jobs_tick_entry(j->entries[i], now_ms);
    jobs_arm(j, now_ms);
    return LMQ_OK;
}

void jobs_stop(struct broker *b)
{
    struct jobs *j = b->jobs;
    if (j == NULL || j->stopping)
        return;
    for (size_t i = 0; i < j->count; i++) {
        struct jobs_entry *e = j->entries[i];
        if (e->active && e->pending_seq == 0)
            jobs_run_end(e, JOBS_INTERRUPTED, "cut short: the broker stopped during the run");
        uv_close((uv_handle_t *)&e->step_timer, NULL);
    }
    if (j->timer_init)
        uv_close((uv_handle_t *)&j->timer, NULL);
    j->stopping = true;
}

void jobs_destroy(struct broker *b)
{
    struct jobs *j = b->jobs;
    if (j == NULL)
        return;
    /* The timers are closed (jobs_stop, or the loop's final walk) before this runs. */
    for (size_t i = 0; i < j->count; i++)
        free(j->entries[i]);
    free(j);
    b->jobs = NULL;
}

void jobs_set_on_finished(struct broker *b, void (*cb)(void *ctx, const struct jobs_run *run),
                          void *ctx)
{
    LMQ_ASSERT(b != NULL && b->jobs != NULL);
    b->jobs->on_finished = cb;
    b->jobs->on_finished_ctx = cb != NULL ? ctx : NULL;
}

void jobs_list(struct broker *b, struct jobs_info *out, size_t cap, size_t *count)
{
    struct jobs *j = b->jobs;
    LMQ_ASSERT(count != NULL && (out != NULL || cap == 0));
    *count = j != NULL ? j->count : 0;
    for (size_t i = 0; i < *count && i < cap; i++) {
        const struct jobs_entry *e = j->entries[i];
        out[i] = (struct jobs_info){.name = e->job.name,
                                    .schedule = e->schedule_text,
                                    .next_tick_ms = e->next_tick_ms,
                                    .running = e->active,
                                    .last_success_unix_ms = e->last_success_unix_ms};
        memcpy(out[i].runs_total, e->runs_total, sizeof(e->runs_total));
    }
}

struct jobs_history_read {
    int (*row)(void *ctx, const struct jobs_run *run);
    void *ctx;
    const char *job;
};

static int jobs_history_row(void *ctx, const struct store_job_run_row *r)
{
    struct jobs_history_read *h = ctx;
    char state[16], detail[JOBS_DETAIL_MAX_BYTES];
    snprintf(state, sizeof(state), "%.*s", (int)LMQ_MIN(r->state.len, 15),
             (const char *)r->state.data);
    snprintf(detail, sizeof(detail), "%.*s", (int)LMQ_MIN(r->detail.len, sizeof(detail) - 1),
             (const char *)r->detail.data);
    struct jobs_run run = {.job = h->job,
                           .tick_ms = r->tick_ms,
                           .manual = r->manual,
                           .skipped = r->skipped,
                           .started_unix_ms = r->started_unix_ms,
                           .ended_unix_ms = r->ended_unix_ms,
                           .state = JOBS_RUNNING,
                           .detail = detail};
    for (int s = 0; s < JOBS_STATE_COUNT; s++) {
        if (strcmp(state, jobs_state_name((enum jobs_state)s)) == 0)
            run.state = (enum jobs_state)s;
    }
    return h->row(h->ctx, &run);
}

int jobs_history(struct broker *b, const char *name, size_t limit,
                 int (*row)(void *ctx, const struct jobs_run *run), void *ctx)
{
    LMQ_ASSERT(b != NULL && name != NULL && row != NULL);
    const struct jobs_entry *e = jobs_find(b->jobs, name);
    if (e == NULL)
        return LMQ_ENOTFOUND;
    struct jobs_history_read h = {.row = row, .ctx = ctx, .job = e->job.name};
    size_t count = 0;
    int rc = store_job_runs(b->store, (struct lmq_bytes){(const uint8_t *)name, strlen(name)},
                            limit > 0 ? limit : 1, jobs_history_row, &h, &count);
    return rc == LMQ_EIO ? LMQ_EIO : LMQ_OK;
}

int jobs_run_now(struct broker *b, const char *name)
{
    LMQ_ASSERT(b != NULL && name != NULL);
    struct jobs_entry *e = jobs_find(b->jobs, name);
    if (e == NULL)
        return LMQ_ENOTFOUND;
    if (e->active || b->jobs->stopping)
        return LMQ_EEXIST;
    int64_t now_ms = clock_unix_ms(b);
    /* A new key: after every stored tick, so it never collides with one. */
    jobs_run_begin(e, now_ms > e->last_tick_ms ? now_ms : e->last_tick_ms + 1, true, 0);
    return LMQ_OK;
}

int jobs_metrics(struct broker *b, struct lmq_buf *out)
{
    struct jobs *j = b->jobs;
    int rc = 0;
    if (j == NULL || j->count == 0)
        return 0;
    rc |= http_body_printf(out, "# HELP ledgermq_job_runs_total Job runs ended since start, by "
                                "result.\n# TYPE ledgermq_job_runs_total counter\n");
    for (size_t i = 0; i < j->count; i++) {
        for (int s = JOBS_OK; s < JOBS_STATE_COUNT; s++)
            rc |= http_body_printf(
                out, "ledgermq_job_runs_total{job=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                j->entries[i]->job.name, jobs_state_name((enum jobs_state)s),
                j->entries[i]->runs_total[s]);
    }
    rc |= http_body_printf(out, "# HELP ledgermq_job_last_success_timestamp_seconds When the job's "
                                "last successful run since start ended (0: none).\n# TYPE "
                                "ledgermq_job_last_success_timestamp_seconds gauge\n");
    for (size_t i = 0; i < j->count; i++)
        rc |= http_body_printf(
            out, "ledgermq_job_last_success_timestamp_seconds{job=\"%s\"} %.3f\n",
            j->entries[i]->job.name, (double)j->entries[i]->last_success_unix_ms / 1000.0);
    rc |= http_body_printf(out, "# HELP ledgermq_job_running 1 while a run of the job is in "
                                "progress.\n# TYPE ledgermq_job_running gauge\n");
    for (size_t i = 0; i < j->count; i++)
        rc |= http_body_printf(out, "ledgermq_job_running{job=\"%s\"} %d\n",
                               j->entries[i]->job.name, j->entries[i]->active ? 1 : 0);
    return rc;
}
