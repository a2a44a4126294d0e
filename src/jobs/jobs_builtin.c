/*
 * The built-in jobs (docs/ARCHITECTURE.md "Scheduled jobs"):
 * - prune_sessions: the abandoned-session policy. An offline session idle (no connection) for
 *   longer than [jobs] prune_sessions.idle_s, or holding more than prune_sessions.max_bytes of
 *   queued messages while offline, is ended as if it expired (session_prune).
 * - expire_messages: first deletes the queue rows ended sessions left behind (a session whose
 *   queue had more than STORE_QUEUE_END_INLINE_ROWS rows when it ended: STORE_SESSION_DELETE
 *   with defer_queue, set while this job is scheduled), expire_messages.batch rows per step and
 *   transaction (STORE_QUEUE_ENDED_TRIM), each step after the previous one's is durable; then
 *   drops the expired messages at the head of offline sessions' stored queues
 *   (session_queue_expire_head), [jobs] expire_messages.batch store reads or drops per step.
 * - export: the ledger's new entries as JSON lines into [jobs] export.dir (jobs_export.c).
 * - chaser: reminders of unanswered requests of type [jobs] chaser.type (jobs_chaser.c).
 * - import: JSON lines and CSV rows of [jobs] import.dir sent as objects (jobs_import.c).
 * - prune_events: retention of the event stream ([events] keep): deletes the events older than
 *   that which every consumer (webhook, bot, plugin with on_event) has passed, never the newest,
 *   never one a dead letter refers to, prune_events.batch per step and transaction.
 * Test jobs (only with LMQ_TEST_JOBS=1 in the environment, for the integration tests):
 * - test_sleep: a run of LMQ_TEST_JOB_SLEEP_MS (default 3000) in 50 ms steps; its first step
 *   appends the run's tick as a line to the file LMQ_TEST_JOB_MARK_FILE when that is set (the
 *   kill -9 test counts how often each tick's work began);
 * - test_fail: fails at its first step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/bots.h"
#include "events/events.h"
#include "events/webhooks.h"
#include "jobs/jobs_internal.h"
#include "plugins/plugins.h"

/* Sessions ended by one step of prune_sessions at most: a step stays short. */
#define JOBS_PRUNE_BATCH 100
/* Step of the test_sleep job. */
#define JOBS_TEST_SLEEP_STEP_MS 50

/* Which sessions one step ends: pointers collected by the walk, ended after it. */
struct jobs_prune_walk {
    struct broker *b;
    uint64_t now_ms, idle_ms, max_bytes;
    struct session *found[JOBS_PRUNE_BATCH];
    const char *why[JOBS_PRUNE_BATCH];
    size_t count;
};

static bool jobs_prune_visit(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    struct jobs_prune_walk *w = ctx;
    struct session *s = value;
    if (s->conn != NULL || s->closing || s->overflow_ending)
        return true;
    const char *why = NULL;
    if (w->max_bytes > 0 && s->queued_bytes > w->max_bytes)
        why = "max_bytes";
    else if (w->now_ms - s->offline_since_ms > w->idle_ms && w->now_ms > s->offline_since_ms)
        why = "idle";
    if (why != NULL) {
        w->found[w->count] = s;
        w->why[w->count++] = why;
    }
    return w->count < JOBS_PRUNE_BATCH;
}

/* cursor: sessions ended for idleness; count: all ended. */
static int jobs_prune_step(struct jobs_step *st)
{
    struct broker *b = st->broker;
    LMQ_ASSERT(b != NULL && b->sessions != NULL);
    struct jobs_prune_walk *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(st->detail, sizeof(st->detail), "out of memory");
        return LMQ_ENOMEM;
    }
    w->b = b;
    w->now_ms = clock_now_ms(b);
    w->idle_ms = b->cfg.jobs.prune_idle_s * 1000;
    w->max_bytes = b->cfg.jobs.prune_max_bytes;
    lmq_map_visit(b->sessions, jobs_prune_visit, w);
    /* Ended after the walk: ending removes the session from the map being walked. */
    for (size_t i = 0; i < w->count; i++) {
        session_prune(w->found[i], w->why[i]);
        if (strcmp(w->why[i], "idle") == 0)
            st->cursor++;
    }
    st->count += w->count;
    bool more = w->count == JOBS_PRUNE_BATCH;
    free(w);
    snprintf(st->detail, sizeof(st->detail), "ended %llu sessions (%llu idle, %llu max_bytes)",
             (unsigned long long)st->count, (unsigned long long)st->cursor,
             (unsigned long long)(st->count - st->cursor));
    LMQ_ASSERT(st->cursor <= st->count);
    return more ? JOBS_STEP_MORE : JOBS_STEP_DONE;
}

/* Wait between looks at whether the last trim is durable. */
#define JOBS_TRIM_WAIT_MS 5
/* A client id's bytes at most (an MQTT string). */
#define JOBS_TRIM_ID_MAX_BYTES 65535

/* The ended sessions' rows part of an expire_messages run (one run at a time). */
struct jobs_trim {
    int64_t tick_ms;       /* the run this state is for */
    bool done;             /* no ended session's rows left: the sweep runs */
    uint64_t wait_seq;     /* the batch of the last trim: read again once it is durable */
    uint64_t rows, ended;  /* rows deleted and sessions finished in this run */
    uint64_t session_rows; /* rows deleted of the session being trimmed */
    size_t last_len;       /* that session's client id */
    uint8_t last_id[JOBS_TRIM_ID_MAX_BYTES];
    uint8_t id[JOBS_TRIM_ID_MAX_BYTES];
};

static struct jobs_trim jobs_trim_state;

static void jobs_trim_log(const uint8_t *id, size_t len, uint64_t rows)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "ended_session_rows_deleted"))
        return;
    lmq_log_strn(&line, "client_id", id, len);
    lmq_log_uint(&line, "rows", rows);
    lmq_log_end(&line);
}

/* One trim: up to batch rows of the first ended session, in a record of the open batch (its own
 * transaction, as the step is alone in its loop turn). JOBS_STEP_DONE: none left. */
static int jobs_trim_step(struct jobs_step *st, struct jobs_trim *t)
{
    struct broker *b = st->broker;
    uint32_t batch = b->cfg.jobs.expire_batch;
    LMQ_ASSERT(batch > 0 && !t->done);
    if (b->committed_seq < t->wait_seq) {
        st->delay_ms = JOBS_TRIM_WAIT_MS; /* the reader sees only what is durable */
        return JOBS_STEP_MORE;
    }
    size_t len = 0;
    uint64_t seq_max = 0, rows = 0;
    bool found = false;
    if (store_queue_ended_next(b->store, t->id, sizeof(t->id), &len, &seq_max, (uint64_t)batch + 1,
                               &rows, &found) != LMQ_OK) {
        snprintf(st->detail, sizeof(st->detail), "cannot read the ended sessions' rows");
        return LMQ_EIO;
    }
    if (!found)
        return JOBS_STEP_DONE;
    if (len != t->last_len || memcmp(t->id, t->last_id, len) != 0) {
        memcpy(t->last_id, t->id, len);
        t->last_len = len;
        t->session_rows = 0;
    }
    struct store_record rec = {.type = STORE_QUEUE_ENDED_TRIM};
    rec.u.queue_ended_trim = (struct store_rec_queue_ended_trim){
        .client_id = {t->id, len}, .seq_max = seq_max, .limit = batch};
    commit_store_write(b, &rec);
    t->wait_seq = commit_batch_seq(b);
    uint64_t deleted = LMQ_MIN(rows, (uint64_t)batch);
    t->rows += deleted;
    t->session_rows += deleted;
    if (rows <= batch) { /* this trim takes the last of them */
        t->ended++;
        jobs_trim_log(t->id, len, t->session_rows);
    }
    st->delay_ms = 1; /* the next step in a later loop turn, after this one's commit */
    return JOBS_STEP_MORE;
}

/* One step of expire_messages: the sessions after the first `skip` of the map's order. */
struct jobs_expire_walk {
    int64_t now_unix_ms;
    uint64_t skip, visited;
    uint32_t budget; /* store reads and drops left in this step */
    uint64_t dropped;
};

static bool jobs_expire_visit(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    struct jobs_expire_walk *w = ctx;
    struct session *s = value;
    if (w->visited++ < w->skip)
        return true;
    if (s->conn != NULL || s->closing || s->overflow_ending || !s->persistent ||
        s->stored_backlog == 0)
        return true;
    uint32_t n = session_queue_expire_head(s, w->now_unix_ms, w->budget);
    w->dropped += n;
    w->budget -= LMQ_MIN(w->budget, LMQ_MAX(n, 1)); /* at least the read of its head */
    return w->budget > 0;
}

/* The run's detail: the expired messages, and the ended sessions' rows when there were any. */
static void jobs_expire_detail(struct jobs_step *st, const struct jobs_trim *t)
{
    int n = snprintf(st->detail, sizeof(st->detail), "dropped %llu expired messages",
                     (unsigned long long)st->count);
    if (t->rows > 0 && n > 0 && (size_t)n < sizeof(st->detail))
        snprintf(st->detail + n, sizeof(st->detail) - (size_t)n,
                 "; deleted %llu stored rows of %llu ended sessions", (unsigned long long)t->rows,
                 (unsigned long long)t->ended);
}

/* cursor: sessions visited in this run; count: messages dropped. */
static int jobs_expire_step(struct jobs_step *st)
{
    struct broker *b = st->broker;
    LMQ_ASSERT(b != NULL && b->sessions != NULL && b->cfg.jobs.expire_batch > 0);
    struct jobs_trim *t = &jobs_trim_state;
    if (t->tick_ms != st->run->tick_ms) /* a new run (ticks are unique per job) */
        *t = (struct jobs_trim){.tick_ms = st->run->tick_ms};
    if (!t->done) {
        int rc = jobs_trim_step(st, t);
        if (rc != JOBS_STEP_DONE) {
            jobs_expire_detail(st, t);
            return rc;
        }
        t->done = true;
    }
    struct jobs_expire_walk w = {
        .now_unix_ms = clock_unix_ms(b), .skip = st->cursor, .budget = b->cfg.jobs.expire_batch};
    lmq_map_visit(b->sessions, jobs_expire_visit, &w);
    st->count += w.dropped;
    /* Visited all: done. Stopped on the budget: the next step goes on from there (the map's
     * order holds while no session is added or removed; otherwise some are looked at twice or
     * left to the next run). */
    bool more = w.budget == 0 && w.visited < lmq_map_count(b->sessions);
    st->cursor = w.visited;
    jobs_expire_detail(st, t);
    return more ? JOBS_STEP_MORE : JOBS_STEP_DONE;
}

/* No event past any consumer's position: the lowest of them (UINT64_MAX: no consumer). Each
 * position's record is written when it moves, so it is durable before (or with) a prune record
 * written later. */
static uint64_t jobs_events_consumers_min(struct broker *b)
{
    uint64_t min = bots_min_position(b);
    size_t hooks = webhooks_count(b), plugins = plugins_count(b);
    for (size_t i = 0; i < hooks; i++) {
        struct webhooks_info info;
        webhooks_info(b, i, &info);
        min = LMQ_MIN(min, info.position);
    }
    for (size_t i = 0; i < plugins; i++) {
        struct plugins_info info;
        plugins_info(b, i, &info);
        if (info.on_event)
            min = LMQ_MIN(min, info.position);
    }
    return min;
}

/* The prune_events run in progress: the batch of its last prune record. */
static struct {
    int64_t tick_ms;
    uint64_t wait_seq;
} jobs_prune_events_state;

/* count: events deleted in this run. */
static int jobs_prune_events_step(struct jobs_step *st)
{
    struct broker *b = st->broker;
    LMQ_ASSERT(b != NULL && b->cfg.jobs.prune_events_batch > 0);
    if (b->cfg.events_keep_s == 0 || !events_on(b)) {
        snprintf(st->detail, sizeof(st->detail), "%s",
                 !events_on(b) ? "the event stream is off" : "[events] keep is 0: all are kept");
        return JOBS_STEP_DONE;
    }
    if (jobs_prune_events_state.tick_ms != st->run->tick_ms)
        jobs_prune_events_state.tick_ms = st->run->tick_ms, jobs_prune_events_state.wait_seq = 0;
    if (b->committed_seq < jobs_prune_events_state.wait_seq) {
        st->delay_ms = JOBS_TRIM_WAIT_MS; /* the reader sees only what is durable */
        return JOBS_STEP_MORE;
    }
    uint64_t after = events_pruned_through(b), durable = events_durable_id(b);
    /* The newest event stays: its id is where the next start counts on from. */
    uint64_t bound = LMQ_MIN(jobs_events_consumers_min(b), durable > 0 ? durable - 1 : 0);
    int64_t before_ms = clock_unix_ms(b) - (int64_t)(b->cfg.events_keep_s * 1000);
    uint64_t through = after;
    size_t count = 0;
    if (store_events_prune_plan(b->store, after, LMQ_MIN(bound, (uint64_t)INT64_MAX), before_ms,
                                b->cfg.jobs.prune_events_batch, &through, &count) != LMQ_OK) {
        snprintf(st->detail, sizeof(st->detail), "cannot read the events");
        return LMQ_EIO;
    }
    LMQ_ASSERT(through >= after && count <= b->cfg.jobs.prune_events_batch);
    if (count > 0) {
        struct store_record rec = {.type = STORE_EVENTS_PRUNE,
                                   .u.events_prune = {.after = after, .through = through}};
        commit_store_write(b, &rec);
        events_set_pruned_through(b, through);
        jobs_prune_events_state.wait_seq = commit_batch_seq(b);
        st->count += count;
    }
    snprintf(st->detail, sizeof(st->detail), "deleted %llu events, up to id %llu",
             (unsigned long long)st->count, (unsigned long long)events_pruned_through(b));
    st->delay_ms = 1; /* the next batch in a later loop turn, after this one's commit */
    return count > 0 ? JOBS_STEP_MORE : JOBS_STEP_DONE;
}

static int jobs_test_sleep_step(struct jobs_step *st)
{
    const char *v = getenv("LMQ_TEST_JOB_SLEEP_MS");
    uint64_t total_ms = v != NULL ? strtoull(v, NULL, 10) : 3000;
    const char *mark = getenv("LMQ_TEST_JOB_MARK_FILE");
    if (st->count == 0 && mark != NULL) {
        FILE *f = fopen(mark, "a");
        if (f == NULL) {
            snprintf(st->detail, sizeof(st->detail), "cannot open the mark file");
            return LMQ_EIO;
        }
        fprintf(f, "%lld\n", (long long)st->run->tick_ms);
        fclose(f); /* written through before the next step: a kill -9 keeps it */
    }
    st->count++;
    snprintf(st->detail, sizeof(st->detail), "slept %llu steps", (unsigned long long)st->count);
    if (st->count * JOBS_TEST_SLEEP_STEP_MS >= total_ms)
        return JOBS_STEP_DONE;
    st->delay_ms = JOBS_TEST_SLEEP_STEP_MS;
    return JOBS_STEP_MORE;
}

static int jobs_test_fail_step(struct jobs_step *st)
{
    snprintf(st->detail, sizeof(st->detail), "test_fail fails on purpose");
    return LMQ_EINVAL;
}

int jobs_builtin_register(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->jobs != NULL);
    static const struct jobs_job builtin[] = {
        {.name = "prune_sessions", .step = jobs_prune_step},
        {.name = "expire_messages", .step = jobs_expire_step},
        {.name = "export", .step = jobs_export_step},
        {.name = "chaser", .step = jobs_chaser_step},
        {.name = "import", .default_timeout_ms = 3600000, .step = jobs_import_step},
        {.name = "prune_events", .step = jobs_prune_events_step},
    };
    static const struct jobs_job test[] = {
        {.name = "test_sleep", .step = jobs_test_sleep_step},
        {.name = "test_fail", .step = jobs_test_fail_step},
    };
    int rc = LMQ_OK;
    for (size_t i = 0; rc == LMQ_OK && i < LMQ_ARRAY_LEN(builtin); i++)
        rc = jobs_register(b, &builtin[i]);
    const char *t = getenv("LMQ_TEST_JOBS");
    for (size_t i = 0; rc == LMQ_OK && t != NULL && strcmp(t, "1") == 0 && i < LMQ_ARRAY_LEN(test);
         i++)
        rc = jobs_register(b, &test[i]);
    return rc;
}
