/*
 * Scheduled jobs' runs on SQLite (store.h "store_rec_job_run"; table job_runs, schema 7). Writes
 * are rare (two per run), so each statement is prepared when used rather than kept.
 */
#include <string.h>

#include "core/lmq.h"
#include "store/store_sqlite_internal.h"

/* Runs of one job at most deleted by one STORE_JOB_RUN_END's pruning: the bound is the number
 * of runs a job can have above keep, one (a run is pruned at the end of the next). */
static int store_jobs_prune(sqlite3 *db, const struct store_rec_job_run *r)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "DELETE FROM job_runs WHERE job = ?1 AND tick_ms < (SELECT tick_ms"
                                " FROM job_runs WHERE job = ?1 ORDER BY tick_ms DESC LIMIT 1"
                                " OFFSET ?2)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    /* As text, as the insert stored it: a blob never equals a text value. */
    sqlite3_bind_text(st, 1, (const char *)r->job.data, (int)r->job.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)r->keep - 1);
    rc = store_sqlite_run(st);
    sqlite3_finalize(st);
    return rc;
}

int store_jobs_apply_run(sqlite3 *db, bool start, const struct store_rec_job_run *r)
{
    LMQ_ASSERT(db != NULL && r != NULL && r->job.len > 0);
    LMQ_ASSERT(r->state.data != NULL && r->state.len > 0);
    static const char *const sql[2] = {
        "UPDATE job_runs SET state = ?3, ended_ms = ?4, detail = ?5 WHERE job = ?1 AND"
        " tick_ms = ?2",
        /* A plain INSERT: a tick already stored fails the commit (never started twice). */
        "INSERT INTO job_runs(job, tick_ms, state, ended_ms, detail, manual, skipped,"
        " started_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    };
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql[start ? 1 : 0], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    struct lmq_bytes empty = {(const uint8_t *)"", 0};
    sqlite3_bind_text(st, 1, (const char *)r->job.data, (int)r->job.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->tick_ms);
    sqlite3_bind_text(st, 3, (const char *)r->state.data, (int)r->state.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, r->ended_unix_ms);
    struct lmq_bytes detail = r->detail.data != NULL ? r->detail : empty;
    sqlite3_bind_text(st, 5, (const char *)detail.data, (int)detail.len, SQLITE_STATIC);
    if (start) {
        sqlite3_bind_int(st, 6, r->manual ? 1 : 0);
        sqlite3_bind_int64(st, 7, (int64_t)r->skipped);
        sqlite3_bind_int64(st, 8, r->started_unix_ms);
    }
    rc = store_sqlite_run(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && !start && r->keep > 0)
        rc = store_jobs_prune(db, r);
    return rc;
}

struct store_jobs_read {
    int (*row)(void *ctx, const struct store_job_run_row *r);
    void *ctx;
};

static int store_jobs_each(void *ctx, sqlite3_stmt *st)
{
    struct store_jobs_read *rd = ctx;
    struct store_job_run_row r = {
        .job = store_sqlite_column_bytes(st, 0),
        .tick_ms = sqlite3_column_int64(st, 1),
        .manual = sqlite3_column_int(st, 2) != 0,
        .skipped = (uint64_t)sqlite3_column_int64(st, 3),
        .state = store_sqlite_column_bytes(st, 4),
        .started_unix_ms = sqlite3_column_int64(st, 5),
        .ended_unix_ms = sqlite3_column_int64(st, 6),
        .detail = store_sqlite_column_bytes(st, 7),
    };
    return rd->row(rd->ctx, &r);
}

int store_job_runs(struct store *store, struct lmq_bytes job, size_t limit,
                   int (*row)(void *ctx, const struct store_job_run_row *r), void *ctx,
                   size_t *count)
{
    LMQ_ASSERT(store != NULL && row != NULL && count != NULL);
    LMQ_ASSERT(limit > 0 && limit <= INT32_MAX);
    *count = 0;
    const char *sql = job.len > 0 ? "SELECT job, tick_ms, manual, skipped, state, started_ms,"
                                    " ended_ms, detail FROM job_runs WHERE job = ?1 ORDER BY"
                                    " tick_ms DESC LIMIT ?2"
                                  : "SELECT job, tick_ms, manual, skipped, state, started_ms,"
                                    " ended_ms, detail FROM job_runs WHERE state = 'running'"
                                    " ORDER BY job, tick_ms DESC LIMIT ?2";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite_reader(store), sql, -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    if (job.len > 0)
        sqlite3_bind_text(st, 1, (const char *)job.data, (int)job.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    struct store_jobs_read rd = {.row = row, .ctx = ctx};
    int rc = store_sqlite_rows(st, limit, store_jobs_each, &rd, count);
    sqlite3_finalize(st);
    return rc;
}
