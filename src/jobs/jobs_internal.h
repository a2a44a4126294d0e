/*
 * What the scheduler's files share (jobs.c: lifecycle and ticks; jobs_run.c: runs and their
 * rows; jobs_builtin.c: the built-in jobs). Not part of jobs.h.
 */
#ifndef JOBS_INTERNAL_H
#define JOBS_INTERNAL_H

#include <uv.h>

#include "broker/broker_internal.h"
#include "core/config.h"
#include "jobs/jobs.h"
#include "jobs/jobs_schedule.h"

/* How far back start-up looks for missed ticks to count: a run's skipped count covers at most
 * this span (the coalesced run itself is always the latest missed tick). */
#define JOBS_CATCHUP_SCAN_MS (31LL * 24 * 3600 * 1000)
/* Ticks counted per scan at most (a 1 s schedule over JOBS_CATCHUP_SCAN_MS is 2.7 million). */
#define JOBS_CATCHUP_TICKS_MAX 3000000
/* Longest wait of the scheduler's timer: the wall clock is looked at again at least this often. */
#define JOBS_TIMER_MAX_MS 60000
/* Interrupted runs marked at one start at most (one per job is the normal case). */
#define JOBS_INTERRUPTED_MAX 1000

struct jobs_entry {
    struct jobs_job job;
    struct jobs *jobs;
    char schedule_text[LMQ_JOB_SCHEDULE_MAX_BYTES]; /* "" = off */
    struct jobs_schedule schedule;
    uint32_t timeout_ms;
    uint32_t keep_runs;
    int64_t last_tick_ms;     /* newest stored run's tick; -1 none */
    int64_t next_tick_ms;     /* 0 = off */
    uint64_t skipped_pending; /* ticks that came while a run was in progress */
    /* The run in progress (or waiting for its row's commit: pending_seq != 0). */
    bool active;
    uint64_t pending_seq;
    struct jobs_run run;
    char detail[JOBS_DETAIL_MAX_BYTES];
    struct jobs_step step;
    uint64_t started_loop_ms;
    uv_timer_t step_timer;
    uint64_t runs_total[JOBS_STATE_COUNT];
    int64_t last_success_unix_ms;
};

struct jobs {
    struct broker *broker;
    struct jobs_entry *entries[LMQ_JOBS_MAX];
    size_t count;
    uv_timer_t timer;
    bool timer_init, started, stopping;
    size_t commit_slot;
    void (*on_finished)(void *ctx, const struct jobs_run *run);
    void *on_finished_ctx;
};

/* jobs_run.c */
/* Writes the run's row ("running") and starts it once that row is durable. */
void jobs_run_begin(struct jobs_entry *e, int64_t tick_ms, bool manual, uint64_t skipped);
/* The commit hook: starts the runs whose rows are durable. */
extern const struct commit_hook jobs_commit_hook;
/* Ends the run in progress: its row, counters, log line and on_finished. */
void jobs_run_end(struct jobs_entry *e, enum jobs_state state, const char *detail);
/* Writes an END row (state, detail, now) for the stored run (job, tick_ms); keep: see
 * store_rec_job_run. */
void jobs_row_end(struct broker *b, const char *job, int64_t tick_ms, enum jobs_state state,
                  const char *detail, uint32_t keep);

/* jobs_builtin.c */
int jobs_builtin_register(struct broker *b) LMQ_WUR;
/* The export job's step (jobs_export.c). */
int jobs_export_step(struct jobs_step *st);
/* The chaser job's step (jobs_chaser.c). */
int jobs_chaser_step(struct jobs_step *st);
/* The import job's step (jobs_import.c). */
int jobs_import_step(struct jobs_step *st);

#endif
