/*
 * What the SQLite back end's files share (store_sqlite.c: batches, the storage thread, the
 * MQTT and ledger tables; store_data.c: the typed-object tables). Not part of the store seam.
 */
#ifndef STORE_SQLITE_INTERNAL_H
#define STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* Binds b as a blob (NULL when b.data is NULL); the bytes must outlive the step. */
int store_sqlite_bind_bytes(sqlite3_stmt *st, int idx, struct lmq_bytes b);
/* Steps a statement that returns no rows (or ignores them) and resets it: SQLITE_OK or the
 * error. */
int store_sqlite_run(sqlite3_stmt *st);
/* The byte slice of column col (data NULL for SQL NULL); valid until the next step. */
struct lmq_bytes store_sqlite_column_bytes(sqlite3_stmt *st, int col);
/* Steps st (bound) for up to limit rows, calling each(ctx, st) on every one; a non-zero return
 * stops with LMQ_EINVAL. Sets *count (rows seen). LMQ_EIO when a step fails. The caller resets
 * or finalizes st. */
int store_sqlite_rows(sqlite3_stmt *st, size_t limit, int (*each)(void *ctx, sqlite3_stmt *st),
                      void *ctx, size_t *count);
/* The loop thread's read-only connection. */
sqlite3 *store_sqlite_reader(struct store *store);

/* The writer's statements for typed objects (storage thread). */
struct store_data_writer {
    sqlite3_stmt *version_put;
    sqlite3_stmt *resource_put;
    sqlite3_stmt *reader_put;
};

/* Prepares w on the writer connection: SQLITE_OK or the error. */
int store_data_writer_prepare(sqlite3 *db, struct store_data_writer *w);
void store_data_writer_finalize(struct store_data_writer *w);
/* Applies one record in the open transaction: SQLITE_OK or the error (fails the commit). */
int store_data_apply_version(struct store_data_writer *w, const struct store_rec_data_version *r);
int store_data_apply_index(sqlite3 *db, const struct store_rec_data_index *r);
/* Applies a STORE_JOB_RUN_START (start) or _END record (store_jobs.c): SQLITE_OK or the error. */
int store_jobs_apply_run(sqlite3 *db, bool start, const struct store_rec_job_run *r);

/* Applies a chain follower's or sealer's record (store_chain.c): SQLITE_OK or the error. */
int store_chain_apply(sqlite3 *db, const struct store_record *r);

/* The writer's statements for the event stream (store_events.c). */
struct store_events_writer {
    sqlite3_stmt *event_put;
    sqlite3_stmt *position_put;
    sqlite3_stmt *dead_put;
    sqlite3_stmt *dead_delete;
    sqlite3_stmt *prune;
};
int store_events_writer_prepare(sqlite3 *db, struct store_events_writer *w);
void store_events_writer_finalize(struct store_events_writer *w);
int store_events_apply(struct store_events_writer *w, const struct store_record *r);

#endif
