/* Unit tests of the typed-object tables through store.h ("Typed objects"): versions and their
 * resource, readers, the fork guard, property indexes used by the planner, query plans with
 * every operator, keyset pages, and the migration from schema 5. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lmq.h"
#include "store/store.h"
#include "store/store_schema.h"

#define BYTES(s) ((struct lmq_bytes){(const uint8_t *)(s), strlen(s)})
#define NO_READER ((struct lmq_bytes){NULL, 0})
#define ALICE "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define BOB "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
#define CAROL "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"
#define ROWS_MAX 64

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char path[96];
    struct store *store;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/lmq-data-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ledgermq.db", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char err[256];
    struct store_options opts = {.path = f->path, .sync = STORE_SYNC_OFF};
    assert_int_equal(store_open(&f->loop, &opts, &f->store, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static void close_store(struct fixture *f)
{
    if (f->store == NULL)
        return;
    store_close(f->store);
    f->store = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_store(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

struct commit_result {
    int calls;
    int status;
};

static void on_commit(void *arg, int status)
{
    struct commit_result *r = arg;
    r->calls++;
    r->status = status;
}

static int commit_and_wait(struct fixture *f)
{
    struct commit_result r = {0, 1};
    assert_int_equal(store_commit(f->store, on_commit, &r), 0);
    for (int i = 0; i < 1000 && r.calls == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r.calls, 1);
    return r.status;
}

/* A 64-character link made of one repeated character. */
static const char *link_of(char c)
{
    static char links[256][65];
    memset(links[(uint8_t)c], c, 64);
    links[(uint8_t)c][64] = '\0';
    return links[(uint8_t)c];
}

static void write_version(struct fixture *f, uint64_t index, char link, char permalink,
                          char prevlink, const char *model, const char *author, const char *to,
                          const char *body, bool deleted)
{
    struct store_record rec = {.type = STORE_DATA_VERSION};
    rec.u.data_version = (struct store_rec_data_version){
        .ledger_index = index,
        .link = BYTES(link_of(link)),
        .permalink = BYTES(link_of(permalink)),
        .prevlink = prevlink ? BYTES(link_of(prevlink)) : BYTES(""),
        .model = BYTES(model),
        .author = BYTES(author),
        .recipient = BYTES(to),
        .time = BYTES("2026-12-06T10:00:00.000000000Z"),
        .body = BYTES(body),
        .deleted = deleted,
    };
    assert_int_equal(store_write(f->store, &rec), 0);
}

struct rows {
    size_t count;
    char body[ROWS_MAX][256];
    char link[ROWS_MAX][65];
    uint64_t created[ROWS_MAX];
    uint64_t index[ROWS_MAX];
    bool deleted[ROWS_MAX];
    char owner[ROWS_MAX][65];
};

static int collect(void *ctx, const struct store_data_row *r)
{
    struct rows *rows = ctx;
    assert_true(rows->count < ROWS_MAX);
    snprintf(rows->body[rows->count], sizeof(rows->body[0]), "%.*s", (int)r->body.len,
             (const char *)r->body.data);
    snprintf(rows->link[rows->count], sizeof(rows->link[0]), "%.*s", (int)r->link.len,
             (const char *)r->link.data);
    rows->created[rows->count] = r->created_ledger_index;
    rows->index[rows->count] = r->ledger_index;
    rows->deleted[rows->count] = r->deleted;
    snprintf(rows->owner[rows->count], sizeof(rows->owner[0]), "%.*s", (int)r->owner.len,
             (const char *)r->owner.data);
    rows->count++;
    return 0;
}

static int64_t count_rows(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_versions_make_a_resource_with_its_latest_version(void **state)
{
    struct fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    assert_int_equal(commit_and_wait(f), 0);
    write_version(f, 3, 'q', 'p', 'p', "com.example.Note", ALICE, BOB, "{\"n\":2}", false);
    assert_int_equal(commit_and_wait(f), 0);

    struct rows rows = {0};
    bool found = false;
    assert_int_equal(
        store_data_resource(f->store, BYTES(link_of('p')), NO_READER, collect, &rows, &found), 0);
    assert_true(found);
    assert_string_equal(rows.body[0], "{\"n\":2}");
    assert_string_equal(rows.link[0], link_of('q'));
    assert_int_equal(rows.created[0], 0);
    assert_int_equal(rows.index[0], 3);

    memset(&rows, 0, sizeof(rows));
    assert_int_equal(
        store_data_version(f->store, BYTES(link_of('p')), NO_READER, collect, &rows, &found), 0);
    assert_true(found);
    assert_string_equal(rows.body[0], "{\"n\":1}");

    memset(&rows, 0, sizeof(rows));
    size_t count = 0;
    assert_int_equal(store_data_versions(f->store, BYTES(link_of('p')), NO_READER, 0, 10, collect,
                                         &rows, &count),
                     0);
    assert_int_equal(count, 2);
    memset(&rows, 0, sizeof(rows));
    assert_int_equal(store_data_versions(f->store, BYTES(link_of('p')), NO_READER, 1, 10, collect,
                                         &rows, &count),
                     0);
    assert_int_equal(count, 1); /* from index 1: only the second */
    assert_string_equal(rows.link[0], link_of('q'));

    /* The fork guard: a second version of the same predecessor fails the commit. */
    write_version(f, 4, 'r', 'p', 'p', "com.example.Note", ALICE, BOB, "{\"n\":3}", false);
    assert_int_not_equal(commit_and_wait(f), 0);
}

static void test_only_authors_and_recipients_read_a_resource(void **state)
{
    struct fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 1, 'q', 'p', 'p', "com.example.Note", BOB, CAROL, "{\"n\":2}", false);
    write_version(f, 2, 's', 's', 0, "com.example.Note", ALICE, ALICE, "{\"n\":9}", false);
    assert_int_equal(commit_and_wait(f), 0);
    const char *readers[] = {ALICE, BOB, CAROL};
    for (size_t i = 0; i < 3; i++) {
        struct rows rows = {0};
        bool found = false;
        assert_int_equal(store_data_resource(f->store, BYTES(link_of('p')), BYTES(readers[i]),
                                             collect, &rows, &found),
                         0);
        assert_true(found);
        assert_string_equal(rows.owner[0], ALICE); /* Bob wrote the latest version */
        rows.count = 0;
    }
    struct rows rows = {0};
    bool found = true;
    assert_int_equal(
        store_data_resource(f->store, BYTES(link_of('s')), BYTES(BOB), collect, &rows, &found), 0);
    assert_false(found);
    assert_int_equal(
        store_data_version(f->store, BYTES(link_of('s')), BYTES(CAROL), collect, &rows, &found), 0);
    assert_false(found);
    size_t count = 9;
    assert_int_equal(store_data_versions(f->store, BYTES(link_of('s')), BYTES(BOB), 0, 10, collect,
                                         &rows, &count),
                     0);
    assert_int_equal(count, 0);
    /* A query as Bob: one resource of the two. */
    struct store_data_query q = {
        .model = BYTES("com.example.Note"), .reader = BYTES(BOB), .limit = 10};
    assert_int_equal(store_data_query(f->store, &q, collect, &rows, &count), 0);
    assert_int_equal(count, 1);
    assert_string_equal(rows.body[0], "{\"n\":2}");
}

/* Twenty payments: amount i * 10, currency alternating, a memo, every 5th without a memo. */
static void write_payments(struct fixture *f)
{
    static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int i = 0; i < 20; i++) {
        char body[200];
        if (i % 5 == 4)
            snprintf(body, sizeof(body), "{\"amount\":%d,\"currency\":\"%s\",\"memo\":null}",
                     i * 10, i % 2 ? "EUR" : "USD");
        else
            snprintf(body, sizeof(body),
                     "{\"amount\":%d,\"currency\":\"%s\",\"memo\":\"rent %%_ %d\","
                     "\"to\":{\"iban\":\"DE%02d\"}}",
                     i * 10, i % 2 ? "EUR" : "USD", i, i);
        write_version(f, (uint64_t)i, letters[i], letters[i], 0, "com.example.Payment", ALICE, BOB,
                      body, false);
    }
    write_version(f, 20, 'z', 'z', 0, "com.example.Other", ALICE, BOB, "{\"amount\":5}", false);
    assert_int_equal(commit_and_wait(f), 0);
}

static size_t run_query(struct fixture *f, const struct store_data_query *q, struct rows *rows)
{
    memset(rows, 0, sizeof(*rows));
    size_t count = 0;
    assert_int_equal(store_data_query(f->store, q, collect, rows, &count), 0);
    assert_int_equal(count, rows->count);
    return count;
}

#define INT_VALUE(v) ((struct store_data_value){.type = STORE_DATA_INT, .i = (v)})
#define TEXT_VALUE(s) ((struct store_data_value){.type = STORE_DATA_TEXT, .text = BYTES(s)})

static size_t query_one_filter(struct fixture *f, const char *path, enum store_data_op op,
                               const struct store_data_value *values, size_t n, struct rows *rows)
{
    struct store_data_filter filter = {
        .path = BYTES(path), .op = op, .values = values, .value_count = n};
    struct store_data_query q = {.model = BYTES("com.example.Payment"),
                                 .filters = &filter,
                                 .filter_count = 1,
                                 .limit = ROWS_MAX};
    return run_query(f, &q, rows);
}

/* GraphQL's batched references: many permalinks in one statement, the latest version of each,
 * the reader rule applied, unknown ones absent, and the bounds refused before any SQL. */
static void test_many_resources_are_read_in_one_batch(void **state)
{
    struct fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 1, 'q', 'p', 'p', "com.example.Note", ALICE, BOB, "{\"n\":2}", false);
    write_version(f, 2, 's', 's', 0, "com.example.Note", ALICE, CAROL, "{\"n\":3}", false);
    write_version(f, 3, 't', 't', 0, "com.example.Note", BOB, ALICE, "{\"n\":4}", false);
    assert_int_equal(commit_and_wait(f), 0);
    struct lmq_bytes keys[] = {BYTES(link_of('p')), BYTES(link_of('s')), BYTES(link_of('t')),
                               BYTES(link_of('z'))};
    struct rows rows = {0};
    size_t count = 9;
    assert_int_equal(store_data_resources(f->store, keys, 4, NO_READER, collect, &rows, &count), 0);
    assert_int_equal(count, 3);
    bool seen_p = false;
    for (size_t i = 0; i < rows.count; i++) {
        if (strcmp(rows.body[i], "{\"n\":2}") == 0) /* p's latest version, not its first */
            seen_p = strcmp(rows.link[i], link_of('q')) == 0;
        assert_string_not_equal(rows.body[i], "{\"n\":1}");
    }
    assert_true(seen_p);
    rows.count = 0;
    assert_int_equal(store_data_resources(f->store, keys, 4, BYTES(BOB), collect, &rows, &count),
                     0);
    assert_int_equal(count, 2); /* p (to Bob) and t (by Bob), not s (Alice to Carol) */
    assert_int_equal(store_data_resources(f->store, keys, 0, NO_READER, collect, &rows, &count),
                     LMQ_EINVAL);
    assert_int_equal(store_data_resources(f->store, keys, STORE_DATA_BATCH_MAX + 1, NO_READER,
                                          collect, &rows, &count),
                     LMQ_EINVAL);
}

static void test_every_filter_operator(void **state)
{
    struct fixture *f = *state;
    write_payments(f);
    struct rows rows;
    struct store_data_value v = INT_VALUE(50);
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_EQ, &v, 1, &rows), 1);
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_NEQ, &v, 1, &rows), 19);
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_LT, &v, 1, &rows), 5);
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_LTE, &v, 1, &rows), 6);
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_GT, &v, 1, &rows), 14);
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_GTE, &v, 1, &rows), 15);
    struct store_data_value in[] = {INT_VALUE(0), INT_VALUE(10), INT_VALUE(999)};
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_IN, in, 3, &rows), 2);
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_NOT_IN, in, 3, &rows), 18);
    struct store_data_value eur = TEXT_VALUE("EUR");
    assert_int_equal(query_one_filter(f, "$.currency", STORE_DATA_EQ, &eur, 1, &rows), 10);
    /* Byte-wise text: % and _ are not wildcards. */
    struct store_data_value prefix = TEXT_VALUE("rent %_ 1");
    assert_int_equal(query_one_filter(f, "$.memo", STORE_DATA_STARTS_WITH, &prefix, 1, &rows),
                     1 + 10 - 2); /* 1 and 10..19 without 14 and 19 */
    struct store_data_value wild = TEXT_VALUE("rent __");
    assert_int_equal(query_one_filter(f, "$.memo", STORE_DATA_STARTS_WITH, &wild, 1, &rows), 0);
    struct store_data_value part = TEXT_VALUE("%_ 2");
    assert_int_equal(query_one_filter(f, "$.memo", STORE_DATA_CONTAINS, &part, 1, &rows), 1);
    /* null and absent are both NULL. */
    assert_int_equal(query_one_filter(f, "$.memo", STORE_DATA_IS_NULL, NULL, 0, &rows), 4);
    assert_int_equal(query_one_filter(f, "$.to.iban", STORE_DATA_IS_NULL, NULL, 0, &rows), 4);
    assert_int_equal(query_one_filter(f, "$.to.iban", STORE_DATA_NOT_NULL, NULL, 0, &rows), 16);
    struct store_data_value iban = TEXT_VALUE("DE03");
    assert_int_equal(query_one_filter(f, "$.to.iban", STORE_DATA_EQ, &iban, 1, &rows), 1);
    assert_string_equal(rows.link[0], link_of('D'));
}

static void test_pages_follow_the_cursor_in_both_orders(void **state)
{
    struct fixture *f = *state;
    write_payments(f);
    /* By creation, 6 per page: 6 + 6 + 6 + 2, each resource once. */
    struct store_data_query q = {.model = BYTES("com.example.Payment"), .limit = 6};
    struct rows rows;
    uint64_t seen = 0;
    for (int page = 0; page < 4; page++) {
        size_t n = run_query(f, &q, &rows);
        assert_int_equal(n, page < 3 ? 6 : 2);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(rows.created[i], seen++);
        q.has_cursor = true;
        q.cursor_created = rows.created[n - 1];
    }
    assert_int_equal(seen, 20);
    /* By memo descending (4 null memos last), pages of 7 meet every resource once. */
    bool met[20] = {false};
    size_t total = 0;
    q = (struct store_data_query){.model = BYTES("com.example.Payment"),
                                  .order_path = BYTES("$.memo"),
                                  .descending = true,
                                  .limit = 7};
    char last_memo[64] = "";
    for (int page = 0; page < 4; page++) {
        size_t n = run_query(f, &q, &rows);
        for (size_t i = 0; i < n; i++) {
            assert_false(met[rows.created[i]]);
            met[rows.created[i]] = true;
        }
        total += n;
        if (n == 0)
            break;
        /* The cursor is the last row's memo (or null). */
        const char *memo = strstr(rows.body[n - 1], "\"memo\":\"");
        q.has_cursor = true;
        q.cursor_created = rows.created[n - 1];
        if (memo != NULL) {
            memo += 8;
            snprintf(last_memo, sizeof(last_memo), "%.*s", (int)(strchr(memo, '"') - memo), memo);
            q.cursor_value = TEXT_VALUE(last_memo);
        } else {
            q.cursor_value = (struct store_data_value){.type = STORE_DATA_NULL};
        }
    }
    assert_int_equal(total, 20);
}

static void test_deleted_resources_leave_queries_but_keep_history(void **state)
{
    struct fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 1, 'q', 'p', 'p', "com.example.Note", ALICE, BOB, "{}", true);
    assert_int_equal(commit_and_wait(f), 0);
    struct store_data_query q = {.model = BYTES("com.example.Note"), .limit = 10};
    struct rows rows;
    assert_int_equal(run_query(f, &q, &rows), 0);
    bool found = false;
    assert_int_equal(
        store_data_resource(f->store, BYTES(link_of('p')), NO_READER, collect, &rows, &found), 0);
    assert_true(found);
    assert_true(rows.deleted[0]);
    size_t count = 0;
    memset(&rows, 0, sizeof(rows));
    assert_int_equal(store_data_versions(f->store, BYTES(link_of('p')), NO_READER, 0, 10, collect,
                                         &rows, &count),
                     0);
    assert_int_equal(count, 2);
    assert_true(rows.deleted[1]);
}

static void test_a_property_index_is_what_the_planner_uses(void **state)
{
    struct fixture *f = *state;
    write_payments(f);
    struct store_record rec = {.type = STORE_DATA_INDEX};
    rec.u.data_index.path = BYTES("$.amount");
    assert_int_equal(store_write(f->store, &rec), 0);
    assert_int_equal(store_write(f->store, &rec), 0); /* twice: no error */
    assert_int_equal(commit_and_wait(f), 0);
    struct store_data_value v = INT_VALUE(50);
    struct store_data_filter filter = {
        .path = BYTES("$.amount"), .op = STORE_DATA_EQ, .values = &v, .value_count = 1};
    struct store_data_query q = {
        .model = BYTES("com.example.Payment"), .filters = &filter, .filter_count = 1, .limit = 10};
    char plan[2048];
    /* Everything (readers_all): the property index (just created: the plan sees it). */
    assert_int_equal(store_data_query_plan(f->store, &q, plan, sizeof(plan)), 0);
    if (strstr(plan, "USING INDEX data_by_") == NULL)
        fail_msg("no property index in the plan:\n%s", plan);
    struct rows rows;
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_EQ, &v, 1, &rows), 1);
    /* One reader, creation order: a range of its own rows, no sort, no scan. */
    q.reader = BYTES(BOB);
    q.filter_count = 0;
    assert_int_equal(store_data_query_plan(f->store, &q, plan, sizeof(plan)), 0);
    if (strstr(plan, "SEARCH d USING PRIMARY KEY") == NULL || strstr(plan, "TEMP B-TREE") != NULL ||
        strstr(plan, "SCAN") != NULL)
        fail_msg("a reader's page is not an index range:\n%s", plan);
    /* Everything, creation order: the model index, no sort. */
    q.reader = NO_READER;
    assert_int_equal(store_data_query_plan(f->store, &q, plan, sizeof(plan)), 0);
    if (strstr(plan, "data_resources_by_model") == NULL || strstr(plan, "TEMP B-TREE") != NULL)
        fail_msg("the model's page is not an index range:\n%s", plan);
}

/* The text store_data_query_sql gives is the statement store_data_query runs: run by hand with
 * the documented parameters, it finds the same rows; a small buffer or a bad plan is refused. */
static void test_query_sql_is_the_statement_the_query_runs(void **state)
{
    struct fixture *f = *state;
    write_payments(f);
    struct store_data_value v = INT_VALUE(50);
    struct store_data_filter filter = {
        .path = BYTES("$.amount"), .op = STORE_DATA_EQ, .values = &v, .value_count = 1};
    struct store_data_query q = {
        .model = BYTES("com.example.Payment"), .filters = &filter, .filter_count = 1, .limit = 10};
    char sql[2048];
    assert_int_equal(store_data_query_sql(&q, sql, sizeof(sql)), 0);
    if (strstr(sql, "json_extract(r.body, '$.amount') = ?3") == NULL ||
        strstr(sql, "LIMIT ?4") == NULL)
        fail_msg("unexpected statement: %s", sql);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, "com.example.Payment", -1, SQLITE_STATIC);
    sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, 50);
    sqlite3_bind_int64(st, 4, 10);
    size_t by_hand = 0;
    while (sqlite3_step(st) == SQLITE_ROW && by_hand < 100)
        by_hand++;
    sqlite3_finalize(st);
    sqlite3_close(db);
    struct rows rows;
    assert_int_equal(query_one_filter(f, "$.amount", STORE_DATA_EQ, &v, 1, &rows), by_hand);
    assert_true(by_hand > 0);
    char tiny[16];
    assert_int_equal(store_data_query_sql(&q, tiny, sizeof(tiny)), LMQ_ETOOBIG);
    assert_string_equal(tiny, "");
    filter.path = BYTES("$.a'); DROP TABLE data_resources; --");
    assert_int_equal(store_data_query_sql(&q, sql, sizeof(sql)), LMQ_EINVAL);
}

static void test_bad_plans_are_refused_before_any_sql(void **state)
{
    struct fixture *f = *state;
    static const char *const bad_paths[] = {
        "$",
        "amount",
        "$.",
        "$..a",
        "$.a b",
        "$.a'",
        "$.1a",
        "$.a[0]",
        "$.a.b.c.d.e.f.g.h.i",
        "$.a'); DROP TABLE data_resources; --",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_paths); i++) {
        assert_false(store_data_path_valid(BYTES(bad_paths[i])));
        struct store_data_filter filter = {.path = BYTES(bad_paths[i]), .op = STORE_DATA_IS_NULL};
        struct store_data_query q = {
            .model = BYTES("m"), .filters = &filter, .filter_count = 1, .limit = 1};
        size_t count = 7;
        assert_int_equal(store_data_query(f->store, &q, collect, NULL, &count), LMQ_EINVAL);
        assert_int_equal(count, 0);
    }
    assert_true(store_data_path_valid(BYTES("$.a.b.c.d.e.f.g.h")));
    assert_true(store_data_path_valid(BYTES("$._x9")));
    struct store_data_value in[STORE_DATA_IN_VALUES_MAX + 1];
    for (size_t i = 0; i < LMQ_ARRAY_LEN(in); i++)
        in[i] = INT_VALUE((int64_t)i);
    struct store_data_filter filter = {
        .path = BYTES("$.a"), .op = STORE_DATA_IN, .values = in, .value_count = LMQ_ARRAY_LEN(in)};
    struct store_data_query q = {
        .model = BYTES("m"), .filters = &filter, .filter_count = 1, .limit = 1};
    size_t count = 0;
    assert_int_equal(store_data_query(f->store, &q, collect, NULL, &count), LMQ_EINVAL);
    filter.value_count = STORE_DATA_IN_VALUES_MAX;
    assert_int_equal(store_data_query(f->store, &q, collect, NULL, &count), 0);
    q.limit = 0;
    assert_int_equal(store_data_query(f->store, &q, collect, NULL, &count), LMQ_EINVAL);
    /* The table is still there. */
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM data_resources"), 0);
}

/* A database of schema 5 gains the typed-object tables. */
static void test_database_of_schema_5_gets_the_object_tables(void **state)
{
    struct fixture *f = *state;
    close_store(f);
    unlink(f->path);
    char err[256];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, 5, err, sizeof(err)), 0);
    sqlite3_close(db);
    struct store_options opts = {.path = f->path, .sync = STORE_SYNC_OFF};
    assert_int_equal(store_open(&f->loop, &opts, &f->store, err, sizeof(err)), 0);
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    assert_int_equal(commit_and_wait(f), 0);
    close_store(f);
    assert_int_equal(STORE_SCHEMA_VERSION, 6);
    assert_int_equal(count_rows(f->path, "SELECT max(version) FROM schema_version"), 6);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM data_readers"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions_make_a_resource_with_its_latest_version,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_authors_and_recipients_read_a_resource, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_resources_are_read_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_filter_operator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages_follow_the_cursor_in_both_orders, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_resources_leave_queries_but_keep_history,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_property_index_is_what_the_planner_uses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_query_sql_is_the_statement_the_query_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_plans_are_refused_before_any_sql, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_of_schema_5_gets_the_object_tables, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
