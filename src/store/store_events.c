/*
 * The event stream's tables (schema 8, store_schema.c): events (id, time, type, data), how far
 * each consumer got (event_consumers) and what each gave up on (event_dead). Writes are records
 * applied in the storage thread's transaction; reads run on the loop thread's reader.
 */
#include <stdlib.h>

#include "store/store_sqlite_internal.h"

int store_events_writer_prepare(sqlite3 *db, struct store_events_writer *w)
{
    static const char *const sql[5] = {
        "INSERT INTO events(id, time_ms, type, data) VALUES(?1, ?2, ?3, ?4)",
        "INSERT INTO event_consumers(consumer, position) VALUES(?1, ?2) "
        "ON CONFLICT(consumer) DO UPDATE SET position = excluded.position",
        "INSERT OR REPLACE INTO event_dead(consumer, event_id, attempts, error, time_ms) "
        "VALUES(?1, ?2, ?3, ?4, ?5)",
        "DELETE FROM event_dead WHERE consumer = ?1 AND event_id = ?2",
        /* Dead letters keep their events: a redelivery reads them. */
        "DELETE FROM events WHERE id > ?1 AND id <= ?2 AND id NOT IN (SELECT event_id FROM "
        "event_dead WHERE event_id > ?1 AND event_id <= ?2)",
    };
    sqlite3_stmt **out[5] = {&w->event_put, &w->position_put, &w->dead_put, &w->dead_delete,
                             &w->prune};
    for (size_t i = 0; i < 5; i++) {
        int rc = sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, out[i], NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

void store_events_writer_finalize(struct store_events_writer *w)
{
    sqlite3_finalize(w->event_put);
    sqlite3_finalize(w->position_put);
    sqlite3_finalize(w->dead_put);
    sqlite3_finalize(w->dead_delete);
    sqlite3_finalize(w->prune);
    *w = (struct store_events_writer){0};
}

int store_events_apply(struct store_events_writer *w, const struct store_record *r)
{
    sqlite3_stmt *st = NULL;
    switch (r->type) {
    case STORE_EVENTS_PRUNE: {
        const struct store_rec_events_prune *p = &r->u.events_prune;
        LMQ_ASSERT(p->after < p->through && p->through <= INT64_MAX);
        sqlite3_bind_int64(w->prune, 1, (int64_t)p->after);
        sqlite3_bind_int64(w->prune, 2, (int64_t)p->through);
        int rc = store_sqlite_run(w->prune);
        if (rc != SQLITE_OK)
            return rc;
        st = w->position_put; /* the high-water mark of what is gone */
        sqlite3_bind_text(st, 1, STORE_EVENTS_PRUNED, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)p->through);
        break;
    }
    case STORE_EVENT_APPEND:
        st = w->event_put;
        sqlite3_bind_int64(st, 1, (int64_t)r->u.event_append.id);
        sqlite3_bind_int64(st, 2, r->u.event_append.time_ms);
        sqlite3_bind_text(st, 3, (const char *)r->u.event_append.type.data,
                          (int)r->u.event_append.type.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, (const char *)r->u.event_append.data.data,
                          (int)r->u.event_append.data.len, SQLITE_STATIC);
        break; /* an id stored twice fails the commit: the stream has no duplicates */
    case STORE_CONSUMER_POSITION:
        st = w->position_put;
        sqlite3_bind_text(st, 1, (const char *)r->u.consumer_position.consumer.data,
                          (int)r->u.consumer_position.consumer.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)r->u.consumer_position.position);
        break;
    case STORE_CONSUMER_DEAD_PUT:
        st = w->dead_put;
        sqlite3_bind_int(st, 3, (int)r->u.consumer_dead.attempts);
        sqlite3_bind_text(st, 4, (const char *)r->u.consumer_dead.error.data,
                          (int)r->u.consumer_dead.error.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, r->u.consumer_dead.time_ms);
        break;
    default:
        LMQ_ASSERT(r->type == STORE_CONSUMER_DEAD_DELETE);
        st = w->dead_delete;
        break;
    }
    if (r->type == STORE_CONSUMER_DEAD_PUT || r->type == STORE_CONSUMER_DEAD_DELETE) {
        sqlite3_bind_text(st, 1, (const char *)r->u.consumer_dead.consumer.data,
                          (int)r->u.consumer_dead.consumer.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)r->u.consumer_dead.event_id);
    }
    return store_sqlite_run(st);
}

int store_events_last_id(struct store *store, uint64_t *id)
{
    sqlite3_stmt *st = NULL;
    *id = 0;
    /* Retention never deletes the newest event; the pruned mark covers the case anyway: ids are
     * never reused. */
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT max(coalesce((SELECT max(id) FROM events), 0), "
                           "coalesce((SELECT position FROM event_consumers WHERE consumer = "
                           "'" STORE_EVENTS_PRUNED "'), 0))",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? LMQ_OK : LMQ_EIO;
}

struct events_rows {
    store_event_row_fn row;
    void *ctx;
};

static int events__row(void *ctx, sqlite3_stmt *st)
{
    struct events_rows *er = ctx;
    struct store_event_row r = {
        .id = (uint64_t)sqlite3_column_int64(st, 0),
        .time_ms = sqlite3_column_int64(st, 1),
        .type = store_sqlite_column_bytes(st, 2),
        .data = store_sqlite_column_bytes(st, 3),
    };
    return er->row(er->ctx, &r);
}

int store_events_after(struct store *store, uint64_t after, size_t limit, store_event_row_fn row,
                       void *ctx, size_t *count)
{
    sqlite3_stmt *st = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT id, time_ms, type, data FROM events WHERE id > ?1 "
                           "ORDER BY id LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_int64(st, 1, after > INT64_MAX ? INT64_MAX : (int64_t)after);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    struct events_rows er = {.row = row, .ctx = ctx};
    int rc = store_sqlite_rows(st, limit, events__row, &er, count);
    sqlite3_finalize(st);
    return rc;
}

int store_consumer_positions(struct store *store,
                             int (*each)(void *ctx, struct lmq_bytes consumer, uint64_t position),
                             void *ctx)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT consumer, position FROM event_consumers", -1, &st,
                           NULL) != SQLITE_OK)
        return LMQ_EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (each(ctx, store_sqlite_column_bytes(st, 0), (uint64_t)sqlite3_column_int64(st, 1)) !=
            0) {
            rc = SQLITE_ABORT;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? LMQ_OK : rc == SQLITE_ABORT ? LMQ_EINVAL : LMQ_EIO;
}

int store_consumer_dead(struct store *store, struct lmq_bytes consumer, uint64_t after_id,
                        size_t limit,
                        int (*each)(void *ctx, const struct store_rec_consumer_dead *d), void *ctx,
                        size_t *count)
{
    sqlite3_stmt *st = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT event_id, attempts, error, time_ms FROM event_dead "
                           "WHERE consumer = ?1 AND event_id > ?3 ORDER BY event_id LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_text(st, 1, (const char *)consumer.data, (int)consumer.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    sqlite3_bind_int64(st, 3, (int64_t)LMQ_MIN(after_id, (uint64_t)INT64_MAX));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_rec_consumer_dead d = {
            .consumer = consumer,
            .event_id = (uint64_t)sqlite3_column_int64(st, 0),
            .attempts = (uint32_t)sqlite3_column_int(st, 1),
            .error = store_sqlite_column_bytes(st, 2),
            .time_ms = sqlite3_column_int64(st, 3),
        };
        (*count)++;
        if (each(ctx, &d) != 0) {
            rc = SQLITE_ABORT;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? LMQ_OK : rc == SQLITE_ABORT ? LMQ_EINVAL : LMQ_EIO;
}

int store_events_pruned(struct store *store, uint64_t *through)
{
    LMQ_ASSERT(store != NULL && through != NULL);
    sqlite3_stmt *st = NULL;
    *through = 0;
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT position FROM event_consumers WHERE consumer = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_text(st, 1, STORE_EVENTS_PRUNED, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *through = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? LMQ_OK : LMQ_EIO;
}

int store_events_prune_plan(struct store *store, uint64_t after, uint64_t through_max,
                            int64_t before_ms, size_t limit, uint64_t *through, size_t *count)
{
    LMQ_ASSERT(store != NULL && through != NULL && count != NULL && limit > 0);
    LMQ_ASSERT(through_max <= INT64_MAX);
    sqlite3_stmt *st = NULL;
    *through = after;
    *count = 0;
    if (through_max <= after)
        return LMQ_OK;
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT id, time_ms FROM events WHERE id > ?1 AND id <= ?2 ORDER BY id "
                           "LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)after);
    sqlite3_bind_int64(st, 2, (int64_t)through_max);
    sqlite3_bind_int64(st, 3, (int64_t)limit);
    int rc;
    /* In id order, up to the first event not older than before_ms: those after it wait. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 1) >= before_ms) {
            rc = SQLITE_DONE;
            break;
        }
        *through = (uint64_t)sqlite3_column_int64(st, 0);
        (*count)++;
    }
    sqlite3_finalize(st);
    LMQ_ASSERT(*count <= limit && *through <= through_max);
    return rc == SQLITE_DONE ? LMQ_OK : LMQ_EIO;
}
