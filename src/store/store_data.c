/*
 * Typed objects on SQLite (store.h "Typed objects"; docs/PROTOCOL.md "Objects").
 *
 * Tables (schema 7, store_schema.c): data_versions (every version), data_resources (each
 * resource's latest version) and data_readers (who may read a resource, and since which ledger
 * index). A read as of a checkpoint of size N takes each resource's latest version below N from
 * data_versions (its index on (permalink, ledger_idx): one seek per resource) and the readers
 * whose since_idx < N. A property index is an
 * expression index on (model, json_extract(body, PATH)); a query filtering or ordering on that
 * path spells the same expression, so the planner uses it. Paths are the only text a query puts
 * into SQL, and store_data_path_valid() admits nothing but "$.name.name..." with GraphQL names;
 * every value is a bound parameter.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "store/store_sqlite_internal.h"

/* The longest name in a path: GraphQL names are short, and the SQL text stays bounded. */
#define DATA_NAME_MAX_CHARS 64
/* SQL text of the largest query: every filter at its largest, with room to spare. */
#define DATA_SQL_MAX_BYTES 65536

#define DATA_ROW_COLUMNS                                                                           \
    "r.ledger_idx, r.created_idx, r.link, r.permalink, r.prevlink, r.model, r.author, r.time, "    \
    "r.body, r.deleted, r.owner"
/* A version with its resource's creation index and owner. */
#define DATA_VERSION_COLUMNS                                                                       \
    "v.ledger_idx, r.created_idx, v.link, v.permalink, v.prevlink, v.model, v.author, v.time, "    \
    "v.body, v.deleted, r.owner"

static bool data__name_start(uint8_t c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool data__name_char(uint8_t c)
{
    return data__name_start(c) || (c >= '0' && c <= '9');
}

bool store_data_path_valid(struct lmq_bytes path)
{
    if (path.data == NULL || path.len < 3 || path.len > STORE_DATA_PATH_MAX_BYTES ||
        path.data[0] != '$')
        return false;
    size_t depth = 0;
    size_t i = 1;
    /* Each pass reads one ".name" step: bounded by the path's length. */
    while (i < path.len) {
        if (path.data[i] != '.' || ++depth > STORE_DATA_PATH_DEPTH_MAX)
            return false;
        i++;
        size_t start = i;
        if (i >= path.len || !data__name_start(path.data[i]))
            return false;
        while (i < path.len && data__name_char(path.data[i]))
            i++;
        if (i - start > DATA_NAME_MAX_CHARS)
            return false;
    }
    return depth >= 1;
}

/* ---- writing (storage thread) ---- */

int store_data_writer_prepare(sqlite3 *db, struct store_data_writer *w)
{
    static const char version_sql[] =
        "INSERT INTO data_versions(link, ledger_idx, permalink, prevlink, model, author, "
        "recipient, time, deleted, body) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    /* A first version creates the row (its author is the owner); a later one replaces everything
     * but where the resource began (created_idx) and its owner. */
    static const char resource_sql[] =
        "INSERT INTO data_resources(permalink, created_idx, model, link, prevlink, author, owner, "
        "ledger_idx, time, deleted, body) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, ?2, ?7, ?8, ?9) "
        "ON CONFLICT(permalink) DO UPDATE SET link = excluded.link, prevlink = excluded.prevlink, "
        "author = excluded.author, ledger_idx = excluded.ledger_idx, time = excluded.time, "
        "deleted = excluded.deleted, body = excluded.body";
    /* After the resource row: its model and creation index key the reader's row. */
    /* Versions arrive in ledger order: the row a reader's first version inserts keeps its index
     * (since_idx), later ones are ignored. */
    static const char reader_sql[] =
        "INSERT OR IGNORE INTO data_readers(identity, model, created_idx, permalink, since_idx) "
        "SELECT ?1, model, created_idx, permalink, ?3 FROM data_resources WHERE permalink = ?2";
    int rc =
        sqlite3_prepare_v3(db, version_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->version_put, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(db, resource_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->resource_put,
                                NULL);
    if (rc == SQLITE_OK)
        rc =
            sqlite3_prepare_v3(db, reader_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->reader_put, NULL);
    return rc;
}

void store_data_writer_finalize(struct store_data_writer *w)
{
    sqlite3_finalize(w->version_put);
    sqlite3_finalize(w->resource_put);
    sqlite3_finalize(w->reader_put);
    *w = (struct store_data_writer){0};
}

/* Binds b as text (json_extract reads text, not blobs). */
static int data__bind_text(sqlite3_stmt *st, int idx, struct lmq_bytes b)
{
    return sqlite3_bind_text64(st, idx, b.len ? (const char *)b.data : "", b.len, SQLITE_STATIC,
                               SQLITE_UTF8);
}

static int data__add_reader(struct store_data_writer *w, struct lmq_bytes identity,
                            struct lmq_bytes permalink, uint64_t ledger_index)
{
    store_sqlite_bind_bytes(w->reader_put, 1, identity);
    store_sqlite_bind_bytes(w->reader_put, 2, permalink);
    sqlite3_bind_int64(w->reader_put, 3, (int64_t)ledger_index);
    return store_sqlite_run(w->reader_put);
}

int store_data_apply_version(struct store_data_writer *w, const struct store_rec_data_version *r)
{
    LMQ_ASSERT(r->link.len > 0 && r->permalink.len > 0 && r->model.len > 0);
    LMQ_ASSERT(r->body.len > 0 && r->body.data[0] == '{');
    sqlite3_stmt *st = w->version_put;
    store_sqlite_bind_bytes(st, 1, r->link);
    sqlite3_bind_int64(st, 2, (int64_t)r->ledger_index);
    store_sqlite_bind_bytes(st, 3, r->permalink);
    store_sqlite_bind_bytes(
        st, 4,
        (struct lmq_bytes){r->prevlink.data ? r->prevlink.data : (const uint8_t *)"",
                           r->prevlink.len});
    data__bind_text(st, 5, r->model);
    store_sqlite_bind_bytes(st, 6, r->author);
    store_sqlite_bind_bytes(st, 7, r->recipient);
    data__bind_text(st, 8, r->time);
    sqlite3_bind_int(st, 9, r->deleted ? 1 : 0);
    data__bind_text(st, 10, r->body);
    int rc = store_sqlite_run(st);
    if (rc != SQLITE_OK)
        return rc;
    st = w->resource_put;
    store_sqlite_bind_bytes(st, 1, r->permalink);
    sqlite3_bind_int64(st, 2, (int64_t)r->ledger_index);
    data__bind_text(st, 3, r->model);
    store_sqlite_bind_bytes(st, 4, r->link);
    store_sqlite_bind_bytes(
        st, 5,
        (struct lmq_bytes){r->prevlink.data ? r->prevlink.data : (const uint8_t *)"",
                           r->prevlink.len});
    store_sqlite_bind_bytes(st, 6, r->author);
    data__bind_text(st, 7, r->time);
    sqlite3_bind_int(st, 8, r->deleted ? 1 : 0);
    data__bind_text(st, 9, r->body);
    rc = store_sqlite_run(st);
    if (rc == SQLITE_OK)
        rc = data__add_reader(w, r->author, r->permalink, r->ledger_index);
    if (rc == SQLITE_OK)
        rc = data__add_reader(w, r->recipient, r->permalink, r->ledger_index);
    return rc;
}

/* The index's name: "data_by_" and the path with '.' as '_' and '$' left out, plus a hash so
 * "$.a_b" and "$.a.b" differ. */
static void data__index_name(struct lmq_bytes path, char *out, size_t cap)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < path.len; i++)
        h = (h ^ path.data[i]) * 16777619u;
    int n = snprintf(out, cap, "data_by_%08x", (unsigned)h);
    LMQ_ASSERT(n > 0 && (size_t)n < cap);
}

int store_data_apply_index(sqlite3 *db, const struct store_rec_data_index *r)
{
    if (!store_data_path_valid(r->path))
        return SQLITE_MISUSE; /* the caller checked: a wrong path fails the commit */
    char name[32];
    data__index_name(r->path, name, sizeof(name));
    char sql[STORE_DATA_PATH_MAX_BYTES + 160];
    int n = snprintf(sql, sizeof(sql),
                     "CREATE INDEX IF NOT EXISTS %s ON data_resources(model, "
                     "json_extract(body, '%.*s'), created_idx)",
                     name, (int)r->path.len, (const char *)r->path.data);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(sql));
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* ---- reading (loop thread) ---- */

static void data__column_row(sqlite3_stmt *st, struct store_data_row *r)
{
    *r = (struct store_data_row){
        .ledger_index = (uint64_t)sqlite3_column_int64(st, 0),
        .created_ledger_index = (uint64_t)sqlite3_column_int64(st, 1),
        .link = store_sqlite_column_bytes(st, 2),
        .permalink = store_sqlite_column_bytes(st, 3),
        .prevlink = store_sqlite_column_bytes(st, 4),
        .model = store_sqlite_column_bytes(st, 5),
        .author = store_sqlite_column_bytes(st, 6),
        .time = store_sqlite_column_bytes(st, 7),
        .body = store_sqlite_column_bytes(st, 8),
        .deleted = sqlite3_column_int(st, 9) != 0,
        .owner = store_sqlite_column_bytes(st, 10),
    };
}

struct data_rows {
    store_data_row_fn row;
    void *ctx;
};

static int data__row(void *ctx, sqlite3_stmt *st)
{
    struct data_rows *dr = ctx;
    struct store_data_row r;
    data__column_row(st, &r);
    return dr->row(dr->ctx, &r);
}

/* Steps st (bound) for up to limit rows, calling row() for each; finalizes st. */
static int data__rows(sqlite3_stmt *st, size_t limit, store_data_row_fn row, void *ctx,
                      size_t *count)
{
    struct data_rows dr = {.row = row, .ctx = ctx};
    int rc = store_sqlite_rows(st, limit, data__row, &dr, count);
    sqlite3_finalize(st);
    return rc;
}

/* "reader may read the resource whose permalink is column col": ?N is the reader or NULL. */
#define DATA_READER_CHECK(col, param)                                                              \
    "(" param " IS NULL OR EXISTS (SELECT 1 FROM data_readers d WHERE d.permalink = " col          \
    " AND d.identity = " param "))"

/* The same as of a checkpoint of size ?N: a row of the reader from a version before it. */
#define DATA_READER_CHECK_AT(col, param, size)                                                     \
    "(" param " IS NULL OR EXISTS (SELECT 1 FROM data_readers d WHERE d.permalink = " col          \
    " AND d.identity = " param " AND d.since_idx < " size "))"
/* "v is the latest version below size of the resource whose permalink is column col": one
 * backwards seek in data_versions_by_resource. */
#define DATA_LATEST_AT(col, size)                                                                  \
    "v.ledger_idx = (SELECT x.ledger_idx FROM data_versions x WHERE x.permalink = " col            \
    " AND x.ledger_idx < " size " ORDER BY x.ledger_idx DESC LIMIT 1)"

/* A size as SQLite's integer (sizes beyond INT64_MAX do not occur: the same as INT64_MAX). */
static int64_t data__size(uint64_t size)
{
    return size > INT64_MAX ? INT64_MAX : (int64_t)size;
}

/* sql with ?1 key, ?2 reader and, when size != NULL, ?3 the checkpoint's size. */
static int data__one(struct store *store, const char *sql, struct lmq_bytes key,
                     struct lmq_bytes reader, const uint64_t *size, store_data_row_fn row,
                     void *ctx, bool *found)
{
    LMQ_ASSERT(store != NULL && row != NULL && found != NULL);
    LMQ_ASSERT(sql != NULL && key.data != NULL);
    *found = false;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite_reader(store), sql, -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    store_sqlite_bind_bytes(st, 1, key);
    store_sqlite_bind_bytes(st, 2, reader);
    if (size != NULL)
        sqlite3_bind_int64(st, 3, data__size(*size));
    size_t count = 0;
    int rc = data__rows(st, 1, row, ctx, &count);
    *found = count == 1;
    return rc;
}

int store_data_resource(struct store *store, struct lmq_bytes permalink, struct lmq_bytes reader,
                        store_data_row_fn row, void *ctx, bool *found)
{
    return data__one(store,
                     "SELECT " DATA_ROW_COLUMNS " FROM data_resources r WHERE r.permalink = ?1 "
                     "AND " DATA_READER_CHECK("r.permalink", "?2"),
                     permalink, reader, NULL, row, ctx, found);
}

int store_data_resource_at(struct store *store, struct lmq_bytes permalink, struct lmq_bytes reader,
                           uint64_t size, store_data_row_fn row, void *ctx, bool *found)
{
    return data__one(store,
                     "SELECT " DATA_VERSION_COLUMNS " FROM data_resources r "
                     "CROSS JOIN data_versions v WHERE r.permalink = ?1 AND r.created_idx < ?3 "
                     "AND " DATA_LATEST_AT("r.permalink", "?3") " AND " DATA_READER_CHECK_AT(
                         "r.permalink", "?2", "?3"),
                     permalink, reader, &size, row, ctx, found);
}

int store_data_version_at(struct store *store, struct lmq_bytes link, struct lmq_bytes reader,
                          uint64_t size, store_data_row_fn row, void *ctx, bool *found)
{
    return data__one(store,
                     "SELECT " DATA_VERSION_COLUMNS " FROM data_versions v "
                     "JOIN data_resources r ON r.permalink = v.permalink WHERE v.link = ?1 "
                     "AND v.ledger_idx < ?3 AND " DATA_READER_CHECK_AT("v.permalink", "?2", "?3"),
                     link, reader, &size, row, ctx, found);
}

int store_data_version(struct store *store, struct lmq_bytes link, struct lmq_bytes reader,
                       store_data_row_fn row, void *ctx, bool *found)
{
    return data__one(store,
                     "SELECT " DATA_VERSION_COLUMNS " FROM data_versions v "
                     "JOIN data_resources r ON r.permalink = v.permalink WHERE v.link = ?1 "
                     "AND " DATA_READER_CHECK("v.permalink", "?2"),
                     link, reader, NULL, row, ctx, found);
}

int store_data_versions(struct store *store, struct lmq_bytes permalink, struct lmq_bytes reader,
                        uint64_t from, size_t limit, store_data_row_fn row, void *ctx,
                        size_t *count)
{
    LMQ_ASSERT(store != NULL && row != NULL && count != NULL);
    *count = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite_reader(store),
                           "SELECT " DATA_VERSION_COLUMNS " FROM data_versions v "
                           "JOIN data_resources r ON r.permalink = v.permalink "
                           "WHERE v.permalink = ?1 "
                           "AND v.ledger_idx >= ?3 AND " DATA_READER_CHECK(
                               "v.permalink", "?2") " ORDER BY v.ledger_idx LIMIT ?4",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    store_sqlite_bind_bytes(st, 1, permalink);
    store_sqlite_bind_bytes(st, 2, reader);
    sqlite3_bind_int64(st, 3, data__size(from));
    sqlite3_bind_int64(st, 4, (int64_t)limit);
    return data__rows(st, limit, row, ctx, count);
}

/* ---- queries: a plan compiled to one parameterised statement ---- */

struct data_sql {
    struct lmq_buf text;
    int next_param;      /* the next ?N */
    const char *created; /* the creation index column that drives the loop */
    const char *body;    /* the body filters read: the latest (r) or the version as of (v) */
};

static bool data__sql_add(struct data_sql *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool data__sql_add(struct data_sql *q, const char *fmt, ...)
{
    char piece[STORE_DATA_PATH_MAX_BYTES * 2 + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(piece, sizeof(piece), fmt, ap);
    va_end(ap);
    LMQ_ASSERT(n >= 0 && (size_t)n < sizeof(piece));
    return lmq_buf_append(&q->text, piece, (size_t)n, DATA_SQL_MAX_BYTES) == LMQ_OK;
}

/* The expression of a property: spelled exactly as the index spells it (on r.body). */
#define DATA_EXPR_FMT "json_extract(%s, '%.*s')"
#define DATA_EXPR_ARGS(q, p) (q)->body, (int)(p).len, (const char *)(p).data

static const char *data__op_sql(enum store_data_op op)
{
    switch (op) {
    case STORE_DATA_EQ:
        return "=";
    case STORE_DATA_NEQ:
        return "IS NOT";
    case STORE_DATA_LT:
        return "<";
    case STORE_DATA_LTE:
        return "<=";
    case STORE_DATA_GT:
        return ">";
    case STORE_DATA_GTE:
        return ">=";
    default:
        return NULL;
    }
}

static bool data__filter_valid(const struct store_data_filter *f)
{
    if (!store_data_path_valid(f->path))
        return false;
    switch (f->op) {
    case STORE_DATA_IN:
    case STORE_DATA_NOT_IN:
        return f->values != NULL && f->value_count >= 1 &&
               f->value_count <= STORE_DATA_IN_VALUES_MAX;
    case STORE_DATA_IS_NULL:
    case STORE_DATA_NOT_NULL:
        return f->value_count == 0;
    case STORE_DATA_STARTS_WITH:
    case STORE_DATA_CONTAINS:
        return f->values != NULL && f->value_count == 1 && f->values[0].type == STORE_DATA_TEXT;
    default:
        return f->values != NULL && f->value_count == 1 && data__op_sql(f->op) != NULL;
    }
}

static bool data__query_valid(const struct store_data_query *q)
{
    if (q->model.data == NULL || q->model.len == 0 || q->filter_count > STORE_DATA_FILTERS_MAX ||
        (q->filter_count > 0 && q->filters == NULL) || q->limit == 0)
        return false;
    if (q->order_path.len > 0 && !store_data_path_valid(q->order_path))
        return false;
    for (size_t i = 0; i < q->filter_count; i++) {
        if (!data__filter_valid(&q->filters[i]))
            return false;
    }
    return true;
}

/* Appends the SQL of filter f, numbering its parameters. */
static bool data__filter_sql(struct data_sql *q, const struct store_data_filter *f)
{
    bool ok = data__sql_add(q, " AND ");
    switch (f->op) {
    case STORE_DATA_IN:
    case STORE_DATA_NOT_IN:
        ok = ok && data__sql_add(q, DATA_EXPR_FMT " %sIN (", DATA_EXPR_ARGS(q, f->path),
                                 f->op == STORE_DATA_NOT_IN ? "NOT " : "");
        for (size_t i = 0; i < f->value_count; i++)
            ok = ok && data__sql_add(q, "%s?%d", i ? ", " : "", q->next_param++);
        return ok && data__sql_add(q, ")");
    case STORE_DATA_IS_NULL:
        return ok && data__sql_add(q, DATA_EXPR_FMT " IS NULL", DATA_EXPR_ARGS(q, f->path));
    case STORE_DATA_NOT_NULL:
        return ok && data__sql_add(q, DATA_EXPR_FMT " IS NOT NULL", DATA_EXPR_ARGS(q, f->path));
    case STORE_DATA_STARTS_WITH:
        /* Byte-wise: substr() of the same length, no LIKE and its wildcards. */
        ok = ok && data__sql_add(q, "substr(" DATA_EXPR_FMT ", 1, length(?%d)) = ?%d",
                                 DATA_EXPR_ARGS(q, f->path), q->next_param, q->next_param);
        q->next_param++;
        return ok;
    case STORE_DATA_CONTAINS:
        ok = ok && data__sql_add(q, "instr(" DATA_EXPR_FMT ", ?%d) > 0", DATA_EXPR_ARGS(q, f->path),
                                 q->next_param++);
        return ok;
    default:
        return ok && data__sql_add(q, DATA_EXPR_FMT " %s ?%d", DATA_EXPR_ARGS(q, f->path),
                                   data__op_sql(f->op), q->next_param++);
    }
}

static void data__bind_value(sqlite3_stmt *st, int idx, const struct store_data_value *v)
{
    switch (v->type) {
    case STORE_DATA_NULL:
        sqlite3_bind_null(st, idx);
        break;
    case STORE_DATA_INT:
        sqlite3_bind_int64(st, idx, v->i);
        break;
    case STORE_DATA_REAL:
        sqlite3_bind_double(st, idx, v->d);
        break;
    case STORE_DATA_TEXT:
        data__bind_text(st, idx, v->text);
        break;
    }
}

/* The keyset condition "after the cursor" in the query's order. */
static bool data__cursor_sql(struct data_sql *q, const struct store_data_query *plan)
{
    const char *after = plan->descending ? "<" : ">";
    if (plan->order_path.len == 0)
        return data__sql_add(q, " AND %s %s ?%d", q->created, after, q->next_param++);
    int v = q->next_param++;
    int c = q->next_param++;
    /* SQLite orders NULL first: ascending, a NULL cursor is followed by the rest of the NULLs,
     * then every non-NULL value; descending the reverse. */
    if (plan->cursor_value.type == STORE_DATA_NULL) {
        return data__sql_add(
            q,
            plan->descending ? " AND (" DATA_EXPR_FMT " IS NULL AND r.created_idx < ?%d)"
                             : " AND ((" DATA_EXPR_FMT " IS NULL AND r.created_idx > ?%d)"
                               " OR " DATA_EXPR_FMT " IS NOT NULL)",
            DATA_EXPR_ARGS(q, plan->order_path), c, DATA_EXPR_ARGS(q, plan->order_path));
    }
    /* Descending, the NULLs come after every value. */
    bool ok = data__sql_add(
        q, " AND (" DATA_EXPR_FMT " %s ?%d OR (" DATA_EXPR_FMT " = ?%d AND r.created_idx %s ?%d)",
        DATA_EXPR_ARGS(q, plan->order_path), after, v, DATA_EXPR_ARGS(q, plan->order_path), v,
        after, c);
    if (ok && plan->descending)
        ok = data__sql_add(q, " OR " DATA_EXPR_FMT " IS NULL", DATA_EXPR_ARGS(q, plan->order_path));
    return ok && data__sql_add(q, ")");
}

/* The FROM and WHERE of the latest resources: everything or one reader's. */
static bool data__from_latest(struct data_sql *q, bool everything)
{
    q->created = everything ? "r.created_idx" : "d.created_idx";
    q->body = "r.body";
    q->next_param = 3;
    return everything
               ? data__sql_add(q, "SELECT " DATA_ROW_COLUMNS " FROM data_resources r "
                                  "WHERE r.model = ?1 AND r.deleted = 0 AND ?2 IS NULL")
               : data__sql_add(q, "SELECT " DATA_ROW_COLUMNS " FROM data_readers d "
                                  "CROSS JOIN data_resources r ON r.permalink = d.permalink "
                                  "WHERE d.identity = ?2 AND d.model = ?1 AND r.deleted = 0");
}

/* The same as of a checkpoint of size ?3: the resources created before it, each with its latest
 * version below it (v), left out when that is a tombstone; one reader's rows from before it. */
static bool data__from_as_of(struct data_sql *q, bool everything)
{
    q->created = everything ? "r.created_idx" : "d.created_idx";
    q->body = "v.body";
    q->next_param = 4;
    return everything
               ? data__sql_add(q, "SELECT " DATA_VERSION_COLUMNS " FROM data_resources r "
                                  "CROSS JOIN data_versions v WHERE r.model = ?1 AND ?2 IS NULL "
                                  "AND r.created_idx < ?3 AND " DATA_LATEST_AT(
                                      "r.permalink", "?3") " AND v.deleted = 0")
               : data__sql_add(q, "SELECT " DATA_VERSION_COLUMNS " FROM data_readers d "
                                  "CROSS JOIN data_resources r ON r.permalink = d.permalink "
                                  "CROSS JOIN data_versions v WHERE d.identity = ?2 AND "
                                  "d.model = ?1 AND d.created_idx < ?3 AND d.since_idx < ?3 "
                                  "AND " DATA_LATEST_AT("d.permalink", "?3") " AND v.deleted = 0");
}

/*
 * Builds the statement's text for plan. Everything: the model's rows in creation order (or a
 * property index's range). One reader: its rows of data_readers for the model, in creation
 * order, each joined to its resource (CROSS JOIN keeps that order of the loops), so a page costs
 * a range over the reader's own resources of the model, never a scan of everyone's. As of a
 * checkpoint: the same loops, each resource joined to its version of then.
 */
static bool data__query_sql(struct data_sql *q, const struct store_data_query *plan)
{
    bool everything = plan->reader.data == NULL;
    bool ok = plan->as_of ? data__from_as_of(q, everything) : data__from_latest(q, everything);
    LMQ_ASSERT(q->body != NULL && q->created != NULL);
    for (size_t i = 0; ok && i < plan->filter_count; i++)
        ok = data__filter_sql(q, &plan->filters[i]);
    if (ok && plan->has_cursor)
        ok = data__cursor_sql(q, plan);
    const char *dir = plan->descending ? " DESC" : "";
    if (ok && plan->order_path.len > 0)
        ok = data__sql_add(q, " ORDER BY " DATA_EXPR_FMT "%s, r.created_idx%s",
                           DATA_EXPR_ARGS(q, plan->order_path), dir, dir);
    else if (ok)
        ok = data__sql_add(q, " ORDER BY %s%s", q->created, dir);
    return ok && data__sql_add(q, " LIMIT ?%d", q->next_param++);
}

/* Prepares the text q built on the reader connection and releases it, whatever happens: the one
 * way a built statement is prepared. LMQ_ENOMEM when building it failed (built false), LMQ_EIO. */
static int data__prepare_sql(struct store *store, struct data_sql *q, bool built,
                             sqlite3_stmt **out)
{
    LMQ_ASSERT(store != NULL && q != NULL && out != NULL);
    *out = NULL;
    if (built && lmq_buf_append(&q->text, "", 1, DATA_SQL_MAX_BYTES) != LMQ_OK) /* NUL */
        built = false;
    int rc = LMQ_ENOMEM;
    if (built)
        rc = sqlite3_prepare_v2(store_sqlite_reader(store), (const char *)q->text.data, -1, out,
                                NULL) == SQLITE_OK
                 ? LMQ_OK
                 : LMQ_EIO;
    lmq_buf_release(&q->text);
    LMQ_ASSERT((rc == LMQ_OK) == (*out != NULL));
    return rc;
}

/* Compiles and prepares plan (explain: as EXPLAIN QUERY PLAN), binding every parameter. */
static int data__prepare(struct store *store, const struct store_data_query *plan, bool explain,
                         sqlite3_stmt **out)
{
    if (!data__query_valid(plan))
        return LMQ_EINVAL;
    struct data_sql q = {.next_param = 1};
    bool built =
        (!explain || data__sql_add(&q, "EXPLAIN QUERY PLAN ")) && data__query_sql(&q, plan);
    sqlite3_stmt *st = NULL;
    int rc = data__prepare_sql(store, &q, built, &st);
    if (rc != LMQ_OK)
        return rc;
    data__bind_text(st, 1, plan->model);
    store_sqlite_bind_bytes(st, 2, plan->reader);
    int p = 3;
    if (plan->as_of)
        sqlite3_bind_int64(st, p++, data__size(plan->as_of_size));
    for (size_t i = 0; i < plan->filter_count; i++) {
        const struct store_data_filter *f = &plan->filters[i];
        for (size_t j = 0; j < f->value_count; j++)
            data__bind_value(st, p++, &f->values[j]);
    }
    if (plan->has_cursor && plan->order_path.len == 0) {
        sqlite3_bind_int64(st, p++, (int64_t)plan->cursor_created);
    } else if (plan->has_cursor) {
        data__bind_value(st, p++, &plan->cursor_value);
        sqlite3_bind_int64(st, p++, (int64_t)plan->cursor_created);
    }
    sqlite3_bind_int64(st, p, (int64_t)plan->limit);
    *out = st;
    return LMQ_OK;
}

/* A query's deadline: the progress handler interrupts the statement once it has passed. */
struct data_deadline {
    uint64_t end_ns;
    bool fired;
};

static uint64_t data__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int data__progress(void *arg)
{
    struct data_deadline *d = arg;
    d->fired = d->fired || data__now_ns() >= d->end_ns;
    return d->fired ? 1 : 0;
}

/* SQLite virtual machine instructions between two looks at the clock (~ tens of microseconds). */
#define DATA_PROGRESS_OPS 10000

int store_data_query(struct store *store, const struct store_data_query *plan,
                     store_data_row_fn row, void *ctx, size_t *count)
{
    LMQ_ASSERT(store != NULL && plan != NULL && row != NULL && count != NULL);
    *count = 0;
    sqlite3_stmt *st = NULL;
    int rc = data__prepare(store, plan, false, &st);
    if (rc != LMQ_OK)
        return rc;
    if (plan->max_ms == 0)
        return data__rows(st, plan->limit, row, ctx, count);
    LMQ_ASSERT(plan->max_ms <= UINT64_MAX / 2000000u); /* no overflow of the deadline */
    sqlite3 *db = store_sqlite_reader(store);
    struct data_deadline deadline = {.end_ns = data__now_ns() + plan->max_ms * 1000000u};
    sqlite3_progress_handler(db, DATA_PROGRESS_OPS, data__progress, &deadline);
    rc = data__rows(st, plan->limit, row, ctx, count);
    sqlite3_progress_handler(db, 0, NULL, NULL);
    return deadline.fired && rc == LMQ_EIO ? LMQ_ELIMIT : rc;
}

int store_data_query_plan(struct store *store, const struct store_data_query *plan, char *out,
                          size_t cap)
{
    LMQ_ASSERT(store != NULL && plan != NULL && out != NULL && cap > 0);
    out[0] = '\0';
    /* EXPLAIN runs on the schema the connection last read: one read refreshes it, so the plan
     * is the one a query would get now (an index created since included). */
    if (sqlite3_exec(store_sqlite_reader(store), "SELECT count(*) FROM sqlite_schema", NULL, NULL,
                     NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_stmt *st = NULL;
    int rc = data__prepare(store, plan, true, &st);
    size_t used = 0;
    /* One row per step of the plan: a handful. */
    while (rc == LMQ_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        int n = snprintf(out + used, cap - used, "%s\n", detail != NULL ? detail : "");
        if (n < 0 || (size_t)n >= cap - used)
            rc = LMQ_ETOOBIG;
        else
            used += (size_t)n;
    }
    sqlite3_finalize(st);
    return rc;
}

int store_data_query_sql(const struct store_data_query *plan, char *out, size_t cap)
{
    LMQ_ASSERT(plan != NULL && out != NULL && cap > 0);
    out[0] = '\0';
    if (!data__query_valid(plan))
        return LMQ_EINVAL;
    struct data_sql q = {.next_param = 1};
    int rc = LMQ_OK;
    if (!data__query_sql(&q, plan) || lmq_buf_append(&q.text, "", 1, DATA_SQL_MAX_BYTES) != LMQ_OK)
        rc = LMQ_ENOMEM;
    else if (q.text.len > cap)
        rc = LMQ_ETOOBIG;
    else
        memcpy(out, q.text.data, q.text.len); /* the NUL included */
    LMQ_ASSERT(rc != LMQ_OK || out[q.text.len - 1] == '\0');
    lmq_buf_release(&q.text);
    return rc;
}

/* The latest versions of permalinks[0..n), or (size != NULL) their versions as of *size:
 * ?1 reader, ?2 the size (unused for the latest), ?3.. the permalinks. */
static int data__resources(struct store *store, const struct lmq_bytes *permalinks, size_t n,
                           struct lmq_bytes reader, const uint64_t *size, store_data_row_fn row,
                           void *ctx, size_t *count)
{
    LMQ_ASSERT(store != NULL && row != NULL && count != NULL);
    *count = 0;
    if (n == 0 || n > STORE_DATA_BATCH_MAX || permalinks == NULL)
        return LMQ_EINVAL;
    struct data_sql q = {.next_param = 1};
    bool ok = size == NULL
                  ? data__sql_add(&q, "SELECT " DATA_ROW_COLUMNS " FROM data_resources r "
                                      "WHERE " DATA_READER_CHECK("r.permalink", "?1"))
                  : data__sql_add(
                        &q, "SELECT " DATA_VERSION_COLUMNS " FROM data_resources r "
                            "CROSS JOIN data_versions v WHERE r.created_idx < ?2 "
                            "AND " DATA_LATEST_AT("r.permalink", "?2") " AND " DATA_READER_CHECK_AT(
                                "r.permalink", "?1", "?2"));
    ok = ok && data__sql_add(&q, " AND r.permalink IN (");
    for (size_t i = 0; ok && i < n; i++)
        ok = data__sql_add(&q, "%s?%zu", i ? ", " : "", i + 3);
    ok = ok && data__sql_add(&q, ")");
    sqlite3_stmt *st = NULL;
    int rc = data__prepare_sql(store, &q, ok, &st);
    if (rc != LMQ_OK)
        return rc;
    store_sqlite_bind_bytes(st, 1, reader);
    if (size != NULL)
        sqlite3_bind_int64(st, 2, data__size(*size));
    for (size_t i = 0; i < n; i++)
        store_sqlite_bind_bytes(st, (int)i + 3, permalinks[i]);
    return data__rows(st, n, row, ctx, count);
}

int store_data_resources(struct store *store, const struct lmq_bytes *permalinks, size_t n,
                         struct lmq_bytes reader, store_data_row_fn row, void *ctx, size_t *count)
{
    return data__resources(store, permalinks, n, reader, NULL, row, ctx, count);
}

int store_data_resources_at(struct store *store, const struct lmq_bytes *permalinks, size_t n,
                            struct lmq_bytes reader, uint64_t size, store_data_row_fn row,
                            void *ctx, size_t *count)
{
    return data__resources(store, permalinks, n, reader, &size, row, ctx, count);
}
