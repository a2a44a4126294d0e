/*
 * The chain follower's and the sealer's tables on SQLite (schema 11, store_schema.c; store.h
 * "store_rec_chain_header"). Writes are records applied in the storage thread's transaction,
 * each statement prepared when used (a few per block or per seal); reads run on the loop
 * thread's reader.
 */
#include <string.h>

#include "core/lmq.h"
#include "store/store_sqlite_internal.h"

static void store_chain_bind_text(sqlite3_stmt *st, int idx, struct lmq_bytes b)
{
    sqlite3_bind_text(st, idx, b.data != NULL ? (const char *)b.data : "", (int)b.len,
                      SQLITE_STATIC);
}

/* A blob that is never NULL (an empty slice binds x''). */
static void store_chain_bind_blob(sqlite3_stmt *st, int idx, struct lmq_bytes b)
{
    static const uint8_t none[1];
    sqlite3_bind_blob(st, idx, b.data != NULL ? b.data : none, (int)b.len, SQLITE_STATIC);
}

static const char *const store_chain_sql[] = {
    [STORE_CHAIN_HEADER_PUT - STORE_CHAIN_HEADER_PUT] =
        "INSERT OR REPLACE INTO chain_headers(number, hash, parent_hash, time)"
        " VALUES(?1, ?2, ?3, ?4)",
    [STORE_CHAIN_ROLLBACK - STORE_CHAIN_HEADER_PUT] = "DELETE FROM chain_headers WHERE number > ?1",
    [STORE_CHAIN_WATCH_PUT - STORE_CHAIN_HEADER_PUT] =
        "INSERT OR REPLACE INTO chain_watches(identity, address, topic0, abi, created_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?5)",
    [STORE_CHAIN_WATCH_DELETE - STORE_CHAIN_HEADER_PUT] =
        "DELETE FROM chain_watches WHERE identity = ?1 AND address = ?2 AND topic0 = ?3",
    [STORE_CHAIN_NOTICE_PUT - STORE_CHAIN_HEADER_PUT] =
        "INSERT OR REPLACE INTO chain_notices(block_hash, log_index, identity, block_number,"
        " tx_hash, state, link) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [STORE_SEAL_PUT - STORE_CHAIN_HEADER_PUT] =
        "INSERT OR REPLACE INTO seals(nonce, tree_size, root, checkpoint, chain_id, tx_hash, raw,"
        " state, block_number, block_hash, attempts, sent_ms, updated_ms)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* A plain insert: an attempt stored twice fails the commit. */
    [STORE_SEAL_TX_PUT - STORE_CHAIN_HEADER_PUT] =
        "INSERT INTO seal_txs(nonce, attempt, tx_hash, raw, sent_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
};

static void store_chain_bind(sqlite3_stmt *st, const struct store_record *r)
{
    switch (r->type) {
    case STORE_CHAIN_HEADER_PUT: {
        const struct store_rec_chain_header *h = &r->u.chain_header;
        LMQ_ASSERT(h->hash.len == 32 && h->parent_hash.len == 32);
        sqlite3_bind_int64(st, 1, (int64_t)h->number);
        store_chain_bind_blob(st, 2, h->hash);
        store_chain_bind_blob(st, 3, h->parent_hash);
        sqlite3_bind_int64(st, 4, (int64_t)h->time);
        break;
    }
    case STORE_CHAIN_ROLLBACK:
        sqlite3_bind_int64(st, 1, (int64_t)r->u.chain_rollback.after);
        break;
    case STORE_CHAIN_WATCH_PUT:
    case STORE_CHAIN_WATCH_DELETE: {
        const struct store_rec_chain_watch *w = &r->u.chain_watch;
        LMQ_ASSERT(w->address.len == 20 && (w->topic0.len == 0 || w->topic0.len == 32));
        store_chain_bind_text(st, 1, w->identity);
        store_chain_bind_blob(st, 2, w->address);
        store_chain_bind_blob(st, 3, w->topic0);
        if (r->type == STORE_CHAIN_WATCH_PUT) {
            store_chain_bind_text(st, 4, w->abi);
            sqlite3_bind_int64(st, 5, w->created_unix_ms);
        }
        break;
    }
    case STORE_CHAIN_NOTICE_PUT: {
        const struct store_rec_chain_notice *n = &r->u.chain_notice;
        LMQ_ASSERT(n->block_hash.len == 32 && n->tx_hash.len == 32);
        store_chain_bind_blob(st, 1, n->block_hash);
        sqlite3_bind_int64(st, 2, n->log_index);
        store_chain_bind_text(st, 3, n->identity);
        sqlite3_bind_int64(st, 4, (int64_t)n->block_number);
        store_chain_bind_blob(st, 5, n->tx_hash);
        store_chain_bind_text(st, 6, n->state);
        store_chain_bind_text(st, 7, n->link);
        break;
    }
    case STORE_SEAL_TX_PUT: {
        const struct store_rec_seal_tx *t = &r->u.seal_tx;
        LMQ_ASSERT(t->tx_hash.len == 32 && t->raw.len > 0);
        sqlite3_bind_int64(st, 1, (int64_t)t->nonce);
        sqlite3_bind_int64(st, 2, t->attempt);
        store_chain_bind_blob(st, 3, t->tx_hash);
        store_chain_bind_blob(st, 4, t->raw);
        sqlite3_bind_int64(st, 5, t->sent_unix_ms);
        break;
    }
    default: {
        LMQ_ASSERT(r->type == STORE_SEAL_PUT);
        const struct store_rec_seal *s = &r->u.seal;
        LMQ_ASSERT(s->root.len == 32 && s->tx_hash.len == 32);
        sqlite3_bind_int64(st, 1, (int64_t)s->nonce);
        sqlite3_bind_int64(st, 2, (int64_t)s->tree_size);
        store_chain_bind_blob(st, 3, s->root);
        store_chain_bind_text(st, 4, s->checkpoint);
        sqlite3_bind_int64(st, 5, (int64_t)s->chain_id);
        store_chain_bind_blob(st, 6, s->tx_hash);
        store_chain_bind_blob(st, 7, s->raw);
        store_chain_bind_text(st, 8, s->state);
        sqlite3_bind_int64(st, 9, (int64_t)s->block_number);
        store_chain_bind_blob(st, 10, s->block_hash);
        sqlite3_bind_int64(st, 11, s->attempts);
        sqlite3_bind_int64(st, 12, s->sent_unix_ms);
        sqlite3_bind_int64(st, 13, s->updated_unix_ms);
        break;
    }
    }
}

int store_chain_apply(sqlite3 *db, const struct store_record *r)
{
    LMQ_ASSERT(r->type >= STORE_CHAIN_HEADER_PUT && r->type <= STORE_SEAL_TX_PUT);
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(db, store_chain_sql[r->type - STORE_CHAIN_HEADER_PUT], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    store_chain_bind(st, r);
    rc = store_sqlite_run(st);
    sqlite3_finalize(st);
    return rc;
}

/* Prepares sql on the reader, runs it for up to limit rows through each, finalizes. */
struct store_chain_read {
    int (*bind)(sqlite3_stmt *st, const void *args);
    const void *args;
    int (*each)(void *ctx, sqlite3_stmt *st);
    void *ctx;
};

static int store_chain_select(struct store *store, const char *sql, size_t limit,
                              const struct store_chain_read *rd, size_t *count)
{
    LMQ_ASSERT(store != NULL && count != NULL && limit > 0 && limit <= INT32_MAX);
    *count = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite_reader(store), sql, -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    int rc = rd->bind(st, rd->args);
    if (rc == LMQ_OK)
        rc = store_sqlite_rows(st, limit, rd->each, rd->ctx, count);
    sqlite3_finalize(st);
    return rc;
}

struct store_chain_header_read {
    uint64_t from, to;
    size_t limit;
    int (*each)(void *ctx, const struct store_rec_chain_header *h);
    void *ctx;
};

static int store_chain_header_bind(sqlite3_stmt *st, const void *args)
{
    const struct store_chain_header_read *a = args;
    if (a->from > INT64_MAX || a->to > INT64_MAX)
        return LMQ_EINVAL;
    sqlite3_bind_int64(st, 1, (int64_t)a->from);
    sqlite3_bind_int64(st, 2, (int64_t)a->to);
    sqlite3_bind_int64(st, 3, (int64_t)a->limit);
    return LMQ_OK;
}

static int store_chain_header_row(void *ctx, sqlite3_stmt *st)
{
    const struct store_chain_header_read *a = ctx;
    struct store_rec_chain_header h = {
        .number = (uint64_t)sqlite3_column_int64(st, 0),
        .hash = store_sqlite_column_bytes(st, 1),
        .parent_hash = store_sqlite_column_bytes(st, 2),
        .time = (uint64_t)sqlite3_column_int64(st, 3),
    };
    return a->each(a->ctx, &h);
}

int store_chain_headers(struct store *store, uint64_t from, uint64_t to, size_t limit,
                        int (*each)(void *ctx, const struct store_rec_chain_header *h), void *ctx,
                        size_t *count)
{
    struct store_chain_header_read a = {from, to, limit, each, ctx};
    struct store_chain_read rd = {store_chain_header_bind, &a, store_chain_header_row, &a};
    return store_chain_select(store,
                              "SELECT number, hash, parent_hash, time FROM chain_headers"
                              " WHERE number BETWEEN ?1 AND ?2 ORDER BY number LIMIT ?3",
                              limit, &rd, count);
}

static int store_chain_no_bind(sqlite3_stmt *st, const void *args)
{
    LMQ_UNUSED(st), LMQ_UNUSED(args);
    return LMQ_OK;
}

struct store_chain_tip_read {
    uint64_t *number;
    uint8_t *hash;
    bool *found;
};

static int store_chain_tip_row(void *ctx, sqlite3_stmt *st)
{
    struct store_chain_tip_read *t = ctx;
    struct lmq_bytes hash = store_sqlite_column_bytes(st, 1);
    if (hash.len != 32)
        return -1;
    *t->number = (uint64_t)sqlite3_column_int64(st, 0);
    memcpy(t->hash, hash.data, 32);
    *t->found = true;
    return 0;
}

int store_chain_tip(struct store *store, uint64_t *number, uint8_t hash[32], bool *found)
{
    *found = false;
    *number = 0;
    struct store_chain_tip_read t = {number, hash, found};
    struct store_chain_read rd = {store_chain_no_bind, NULL, store_chain_tip_row, &t};
    size_t count = 0;
    return store_chain_select(store,
                              "SELECT number, hash FROM chain_headers ORDER BY number DESC LIMIT 1",
                              1, &rd, &count);
}

struct store_chain_watch_read {
    const struct store_rec_chain_watch *after;
    size_t limit;
    int (*each)(void *ctx, const struct store_rec_chain_watch *w);
    void *ctx;
};

static int store_chain_watch_bind(sqlite3_stmt *st, const void *args)
{
    const struct store_chain_watch_read *a = args;
    struct store_rec_chain_watch none = {0};
    const struct store_rec_chain_watch *after = a->after != NULL ? a->after : &none;
    store_chain_bind_text(st, 1, after->identity);
    store_chain_bind_blob(st, 2, after->address);
    store_chain_bind_blob(st, 3, after->topic0);
    sqlite3_bind_int64(st, 4, (int64_t)a->limit);
    return LMQ_OK;
}

static int store_chain_watch_row(void *ctx, sqlite3_stmt *st)
{
    const struct store_chain_watch_read *a = ctx;
    struct store_rec_chain_watch w = {
        .identity = store_sqlite_column_bytes(st, 0),
        .address = store_sqlite_column_bytes(st, 1),
        .topic0 = store_sqlite_column_bytes(st, 2),
        .abi = store_sqlite_column_bytes(st, 3),
        .created_unix_ms = sqlite3_column_int64(st, 4),
    };
    return a->each(a->ctx, &w);
}

int store_chain_watches(struct store *store, const struct store_rec_chain_watch *after,
                        size_t limit, int (*each)(void *ctx, const struct store_rec_chain_watch *w),
                        void *ctx, size_t *count)
{
    struct store_chain_watch_read a = {after, limit, each, ctx};
    struct store_chain_read rd = {store_chain_watch_bind, &a, store_chain_watch_row, &a};
    /* Row-value order is the primary key's: one range scan per page. */
    return store_chain_select(store,
                              "SELECT identity, address, topic0, abi, created_ms FROM chain_watches"
                              " WHERE (identity, address, topic0) > (?1, ?2, ?3)"
                              " ORDER BY identity, address, topic0 LIMIT ?4",
                              limit, &rd, count);
}

struct store_chain_notice_read {
    uint64_t from_number;
    const struct store_rec_chain_notice *after;
    size_t limit;
    int (*each)(void *ctx, const struct store_rec_chain_notice *n);
    void *ctx;
};

static int store_chain_notice_bind(sqlite3_stmt *st, const void *args)
{
    const struct store_chain_notice_read *a = args;
    if (a->from_number > INT64_MAX)
        return LMQ_EINVAL;
    /* Without a key to continue after: a key below every row of from_number. */
    struct store_rec_chain_notice none = {.block_number = a->from_number};
    const struct store_rec_chain_notice *after = a->after != NULL ? a->after : &none;
    sqlite3_bind_int64(st, 1, (int64_t)a->from_number);
    sqlite3_bind_int64(st, 2, (int64_t)after->block_number);
    sqlite3_bind_int64(st, 3, a->after != NULL ? (int64_t)after->log_index : -1);
    store_chain_bind_text(st, 4, after->identity);
    sqlite3_bind_int64(st, 5, (int64_t)a->limit);
    return LMQ_OK;
}

static int store_chain_notice_row(void *ctx, sqlite3_stmt *st)
{
    const struct store_chain_notice_read *a = ctx;
    struct store_rec_chain_notice n = {
        .block_hash = store_sqlite_column_bytes(st, 0),
        .log_index = (uint32_t)sqlite3_column_int64(st, 1),
        .identity = store_sqlite_column_bytes(st, 2),
        .block_number = (uint64_t)sqlite3_column_int64(st, 3),
        .tx_hash = store_sqlite_column_bytes(st, 4),
        .state = store_sqlite_column_bytes(st, 5),
        .link = store_sqlite_column_bytes(st, 6),
    };
    return a->each(a->ctx, &n);
}

int store_chain_notices(struct store *store, uint64_t from_number,
                        const struct store_rec_chain_notice *after, size_t limit,
                        int (*each)(void *ctx, const struct store_rec_chain_notice *n), void *ctx,
                        size_t *count)
{
    struct store_chain_notice_read a = {from_number, after, limit, each, ctx};
    struct store_chain_read rd = {store_chain_notice_bind, &a, store_chain_notice_row, &a};
    return store_chain_select(
        store,
        "SELECT block_hash, log_index, identity, block_number, tx_hash, state, link"
        " FROM chain_notices WHERE block_number >= ?1 AND (block_number, log_index, identity) >"
        " (?2, ?3, ?4) ORDER BY block_number, log_index, identity LIMIT ?5",
        limit, &rd, count);
}

struct store_chain_seal_read {
    uint64_t from_nonce;
    struct lmq_bytes state; /* the cover lookup */
    size_t limit;
    int (*each)(void *ctx, const struct store_rec_seal *s);
    int (*each_tx)(void *ctx, const struct store_rec_seal_tx *t);
    void *ctx;
};

static int store_chain_seal_bind(sqlite3_stmt *st, const void *args)
{
    const struct store_chain_seal_read *a = args;
    if (a->from_nonce > INT64_MAX)
        return LMQ_EINVAL;
    sqlite3_bind_int64(st, 1, (int64_t)a->from_nonce);
    sqlite3_bind_int64(st, 2, (int64_t)a->limit);
    return LMQ_OK;
}

static int store_chain_cover_bind(sqlite3_stmt *st, const void *args)
{
    const struct store_chain_seal_read *a = args;
    if (a->from_nonce > INT64_MAX)
        return LMQ_EINVAL;
    store_chain_bind_text(st, 1, a->state);
    sqlite3_bind_int64(st, 2, (int64_t)a->from_nonce);
    return LMQ_OK;
}

static int store_chain_seal_row(void *ctx, sqlite3_stmt *st)
{
    const struct store_chain_seal_read *a = ctx;
    struct store_rec_seal s = {
        .nonce = (uint64_t)sqlite3_column_int64(st, 0),
        .tree_size = (uint64_t)sqlite3_column_int64(st, 1),
        .root = store_sqlite_column_bytes(st, 2),
        .checkpoint = store_sqlite_column_bytes(st, 3),
        .chain_id = (uint64_t)sqlite3_column_int64(st, 4),
        .tx_hash = store_sqlite_column_bytes(st, 5),
        .raw = store_sqlite_column_bytes(st, 6),
        .state = store_sqlite_column_bytes(st, 7),
        .block_number = (uint64_t)sqlite3_column_int64(st, 8),
        .block_hash = store_sqlite_column_bytes(st, 9),
        .attempts = (uint32_t)sqlite3_column_int64(st, 10),
        .sent_unix_ms = sqlite3_column_int64(st, 11),
        .updated_unix_ms = sqlite3_column_int64(st, 12),
    };
    return a->each(a->ctx, &s);
}

int store_seals(struct store *store, uint64_t from_nonce, size_t limit,
                int (*each)(void *ctx, const struct store_rec_seal *s), void *ctx, size_t *count)
{
    struct store_chain_seal_read a = {
        .from_nonce = from_nonce, .limit = limit, .each = each, .ctx = ctx};
    struct store_chain_read rd = {store_chain_seal_bind, &a, store_chain_seal_row, &a};
    return store_chain_select(store,
                              "SELECT nonce, tree_size, root, checkpoint, chain_id, tx_hash, raw,"
                              " state, block_number, block_hash, attempts, sent_ms, updated_ms"
                              " FROM seals WHERE nonce >= ?1 ORDER BY nonce LIMIT ?2",
                              limit, &rd, count);
}

static int store_chain_seal_tx_row(void *ctx, sqlite3_stmt *st)
{
    const struct store_chain_seal_read *a = ctx;
    struct store_rec_seal_tx t = {
        .nonce = (uint64_t)sqlite3_column_int64(st, 0),
        .attempt = (uint32_t)sqlite3_column_int64(st, 1),
        .tx_hash = store_sqlite_column_bytes(st, 2),
        .raw = store_sqlite_column_bytes(st, 3),
        .sent_unix_ms = sqlite3_column_int64(st, 4),
    };
    return a->each_tx(a->ctx, &t);
}

int store_seal_txs(struct store *store, uint64_t nonce, size_t limit,
                   int (*each)(void *ctx, const struct store_rec_seal_tx *t), void *ctx,
                   size_t *count)
{
    struct store_chain_seal_read a = {
        .from_nonce = nonce, .limit = limit, .each_tx = each, .ctx = ctx};
    struct store_chain_read rd = {store_chain_seal_bind, &a, store_chain_seal_tx_row, &a};
    return store_chain_select(store,
                              "SELECT nonce, attempt, tx_hash, raw, sent_ms FROM seal_txs"
                              " WHERE nonce = ?1 ORDER BY attempt LIMIT ?2",
                              limit, &rd, count);
}

int store_seal_cover(struct store *store, struct lmq_bytes state, uint64_t size,
                     int (*each)(void *ctx, const struct store_rec_seal *s), void *ctx, bool *found)
{
    struct store_chain_seal_read a = {
        .from_nonce = size, .state = state, .limit = 1, .each = each, .ctx = ctx};
    struct store_chain_read rd = {store_chain_cover_bind, &a, store_chain_seal_row, &a};
    size_t count = 0;
    int rc = store_chain_select(store,
                                "SELECT nonce, tree_size, root, checkpoint, chain_id, tx_hash, raw,"
                                " state, block_number, block_hash, attempts, sent_ms, updated_ms"
                                " FROM seals WHERE state = ?1 AND tree_size >= ?2"
                                " ORDER BY tree_size, nonce LIMIT 1",
                                1, &rd, &count);
    *found = rc == LMQ_OK && count == 1;
    return rc;
}
