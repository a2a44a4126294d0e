/*
 * The durable job scheduler (docs/ARCHITECTURE.md "Scheduled jobs").
 *
 * A job is a step function the scheduler calls on the broker's loop, one bounded step at a time,
 * on the ticks of its schedule (jobs_schedule.h). Each run has a row in the store (job_runs,
 * keyed by job and tick) that is committed BEFORE the first step: a tick runs at most once, even
 * across kill -9. A run a crash or a stop cut short is marked "interrupted" at the next start and
 * never rerun; ticks missed while the broker was down run once (the latest of them), with the
 * number skipped recorded. The timeout is checked between steps.
 *
 * The broker owns it through one pointer (struct broker's jobs) and calls only what this header
 * declares. Built-in jobs: prune_sessions, expire_messages, export, chaser, import, prune_events
 * (jobs_builtin.c).
 */
#ifndef JOBS_H
#define JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

struct broker;
struct lmq_buf;

/* Bytes of a run's detail (failure reason or summary), NUL included. */
#define JOBS_DETAIL_MAX_BYTES 200
/* Runs kept per job when [jobs] NAME.keep_runs is not set. */
#define JOBS_KEEP_RUNS_DEFAULT 100
/* Timeout of a run when neither [jobs] NAME.timeout_ms nor the job sets one. */
#define JOBS_TIMEOUT_MS_DEFAULT 60000

enum jobs_state {
    JOBS_RUNNING = 0,
    JOBS_OK = 1,
    JOBS_FAILED = 2,
    JOBS_TIMEOUT = 3,
    JOBS_INTERRUPTED = 4,
};
#define JOBS_STATE_COUNT 5

/* "running", "ok", "failed", "timeout", "interrupted". */
const char *jobs_state_name(enum jobs_state state);

/* One run as the callbacks and the queries see it (pointers valid during the call). */
struct jobs_run {
    const char *job;
    int64_t tick_ms; /* the schedule's instant (Unix ms); a manual run: when it was asked for */
    bool manual;
    uint64_t skipped; /* ticks coalesced into this one (missed while down or while running) */
    int64_t started_unix_ms;
    int64_t ended_unix_ms; /* 0 while running */
    enum jobs_state state;
    const char *detail;
};

/* What a step gets and hands back. cursor and count persist between the steps of one run. */
struct jobs_step {
    struct broker *broker;
    void *ctx;                  /* jobs_job.ctx */
    const struct jobs_run *run; /* the run: its tick, whether manual, what it skipped */
    uint64_t cursor;            /* the job's own position in its work; 0 at the run's start */
    uint64_t count;             /* what the run did so far (logged at the end) */
    uint32_t delay_ms; /* set by a step that returns JOBS_STEP_MORE: wait before the next */
    char detail[JOBS_DETAIL_MAX_BYTES]; /* a failure's reason, or a summary of the run */
};
#define JOBS_STEP_DONE 0
#define JOBS_STEP_MORE 1

struct jobs_job {
    const char *name;             /* [a-z0-9_]{1,32}; static */
    const char *default_schedule; /* used when [jobs] has no NAME line; NULL: off unless set */
    uint32_t default_timeout_ms;  /* 0: JOBS_TIMEOUT_MS_DEFAULT */
    /* Does a bounded batch of work: JOBS_STEP_MORE (call again after delay_ms), JOBS_STEP_DONE
     * (ok), or a negative error (failed, with the reason in detail). */
    int (*step)(struct jobs_step *s);
    void *ctx;
};

/* At start, after pipeline_init and before data_init (which opens the first commit batch): the
 * scheduler, its commit hook and the built-in jobs. 0 or LMQ_ENOMEM / LMQ_ELIMIT. */
int jobs_init(struct broker *b) LMQ_WUR;
/* Registers a job (copied; name and ctx must outlive the broker), before jobs_start. 0,
 * LMQ_EINVAL (bad name or default schedule), LMQ_EEXIST (name taken), LMQ_ELIMIT (full). */
int jobs_register(struct broker *b, const struct jobs_job *job) LMQ_WUR;
/* After recovery: checks that every [jobs] line names a registered job (start_failed if not),
 * marks the runs left "running" as interrupted, runs each job's missed ticks once (coalesced)
 * and arms the timer. 0, LMQ_EINVAL (unknown job) or LMQ_EIO. */
int jobs_start(struct broker *b) LMQ_WUR;
/* Shutdown: stops the timers; a run in progress is recorded "interrupted". */
void jobs_stop(struct broker *b);
/* Frees the scheduler; safe when init failed or never ran. */
void jobs_destroy(struct broker *b);
/* Called with every run that ended (not with the ones found interrupted at start); cb NULL
 * removes it. One callback: a second call replaces the first. */
void jobs_set_on_finished(struct broker *b, void (*cb)(void *ctx, const struct jobs_run *run),
                          void *ctx);

/* One job as jobs_list shows it. */
struct jobs_info {
    const char *name;
    const char *schedule; /* "" when off */
    int64_t next_tick_ms; /* 0 when off */
    bool running;
    uint64_t runs_total[JOBS_STATE_COUNT]; /* runs ended since start, by state */
    int64_t last_success_unix_ms;          /* 0: none since start */
};
/* The registered jobs, in registration order, into out[0..cap): *count is how many there are
 * (may exceed cap). Strings valid until jobs_destroy. */
void jobs_list(struct broker *b, struct jobs_info *out, size_t cap, size_t *count);
/* The job's last runs from the store, newest first, up to limit: row() per run. 0,
 * LMQ_ENOTFOUND (no such job), LMQ_EIO. */
int jobs_history(struct broker *b, const char *name, size_t limit,
                 int (*row)(void *ctx, const struct jobs_run *run), void *ctx) LMQ_WUR;
/* Runs the job now (a manual run row, committed before it starts). 0, LMQ_ENOTFOUND,
 * LMQ_EEXIST (a run of it is in progress). */
int jobs_run_now(struct broker *b, const char *name) LMQ_WUR;
/* The /metrics lines: ledgermq_job_runs_total, _last_success_timestamp_seconds, _running. */
int jobs_metrics(struct broker *b, struct lmq_buf *out) LMQ_WUR;

#endif
