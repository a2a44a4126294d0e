/*
 * The chaser job's reads of the ledger (store.h "store_chaser_*"; docs/ARCHITECTURE.md
 * "Scheduled jobs"). Each query is one index range of schema 10's expression indexes over the
 * envelopes' JSON; the expressions below are written exactly as the indexes spell them, or
 * SQLite would not use the indexes. Reads are rare (a few per request per run), so each
 * statement is prepared when used rather than kept.
 */
#include <string.h>

#include "core/lmq.h"
#include "store/store_sqlite_internal.h"

#define CHASER_TYPE_SQL "json_extract(CAST(envelope AS TEXT), '$.type')"
#define CHASER_REPLY_SQL "json_extract(CAST(envelope AS TEXT), '$.body.in_reply_to')"
#define CHASER_REMINDER_SQL "json_extract(CAST(envelope AS TEXT), '$.body.reminder_of')"

struct chaser_rows {
    int (*row)(void *ctx, const struct store_chaser_request *r);
    void *ctx;
};

static int chaser_row(void *ctx, sqlite3_stmt *st)
{
    struct chaser_rows *cr = ctx;
    struct store_chaser_request r = {
        .index = (uint64_t)sqlite3_column_int64(st, 0),
        .created_unix_ms = sqlite3_column_int64(st, 1),
        .sender = store_sqlite_column_bytes(st, 2),
        .recipient = store_sqlite_column_bytes(st, 3),
        .link = store_sqlite_column_bytes(st, 4),
    };
    LMQ_ASSERT(r.link.data != NULL && r.sender.data != NULL && r.recipient.data != NULL);
    return cr->row(cr->ctx, &r);
}

int store_chaser_requests(struct store *store, const char *type, uint64_t start, size_t limit,
                          int (*row)(void *ctx, const struct store_chaser_request *r), void *ctx,
                          size_t *count)
{
    LMQ_ASSERT(store != NULL && type != NULL && row != NULL && count != NULL);
    LMQ_ASSERT(limit > 0 && start <= (uint64_t)INT64_MAX);
    *count = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            store_sqlite_reader(store),
            "SELECT idx, created_ms, sender, recipient, link FROM ledger WHERE " CHASER_TYPE_SQL
            " = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3",
            -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    /* As text: json_extract gives text, and a blob never equals a text value. */
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)start);
    sqlite3_bind_int64(st, 3, (int64_t)limit);
    struct chaser_rows cr = {.row = row, .ctx = ctx};
    int rc = store_sqlite_rows(st, limit, chaser_row, &cr, count);
    sqlite3_finalize(st);
    return rc;
}

int store_chaser_answered(struct store *store, struct lmq_bytes link, struct lmq_bytes from,
                          struct lmq_bytes to, bool *answered)
{
    LMQ_ASSERT(store != NULL && answered != NULL);
    LMQ_ASSERT(link.data != NULL && from.data != NULL && to.data != NULL);
    *answered = false;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT 1 FROM ledger WHERE " CHASER_REPLY_SQL
                           " = ?1 AND sender = ?2 AND recipient = ?3 LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_text(st, 1, (const char *)link.data, (int)link.len, SQLITE_STATIC);
    store_sqlite_bind_bytes(st, 2, from);
    store_sqlite_bind_bytes(st, 3, to);
    int rc = sqlite3_step(st);
    *answered = rc == SQLITE_ROW;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? LMQ_OK : LMQ_EIO;
}

int store_chaser_reminders(struct store *store, struct lmq_bytes link, struct lmq_bytes server,
                           const char *type, uint64_t *count, int64_t *last_unix_ms)
{
    LMQ_ASSERT(store != NULL && link.data != NULL && server.data != NULL && type != NULL);
    LMQ_ASSERT(count != NULL && last_unix_ms != NULL);
    *count = 0;
    *last_unix_ms = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            store_sqlite_reader(store),
            "SELECT count(*), coalesce(max(created_ms), 0) FROM ledger WHERE " CHASER_REMINDER_SQL
            " = ?1 AND sender = ?2 AND " CHASER_TYPE_SQL " = ?3",
            -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_text(st, 1, (const char *)link.data, (int)link.len, SQLITE_STATIC);
    store_sqlite_bind_bytes(st, 2, server);
    sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 0);
        *count = n > 0 ? (uint64_t)n : 0;
        *last_unix_ms = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? LMQ_OK : LMQ_EIO;
}
