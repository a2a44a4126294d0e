/* Unit tests of the typed-object tables through store.h ("Typed objects"): versions and their
 * resource, readers, the fork guard, property indexes used by the planner, query plans with
 * every operator, keyset pages, reads as of a checkpoint, and the migrations from schemas 5
 * and 6. */
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
#include "store_fixture.h"

#define BYTES(s) ((struct lmq_bytes){(const uint8_t *)(s), strlen(s)})
#define NO_READER ((struct lmq_bytes){NULL, 0})
#define ALICE "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define BOB "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
#define CAROL "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"
#define ROWS_MAX 64

/* A fixture with the store open (without fsync: these tests check rows, not durability). */
static int setup(void **state)
{
    assert_int_equal(store_fixture_setup(state), 0);
    char err[256];
    assert_int_equal(store_fixture_open(*state, STORE_SYNC_OFF, err, sizeof(err)), 0);
    return 0;
}

/* A 64-character link made of one repeated character. */
static const char *link_of(char c)
{
    static char links[256][65];
    memset(links[(uint8_t)c], c, 64);
    links[(uint8_t)c][64] = '\0';
    return links[(uint8_t)c];
}

static void write_version(struct store_fixture *f, uint64_t index, char link, char permalink,
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
    struct store_fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    assert_int_equal(store_fixture_commit(f), 0);
    write_version(f, 3, 'q', 'p', 'p', "com.example.Note", ALICE, BOB, "{\"n\":2}", false);
    assert_int_equal(store_fixture_commit(f), 0);

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
    assert_int_not_equal(store_fixture_commit(f), 0);
}

static void test_only_authors_and_recipients_read_a_resource(void **state)
{
    struct store_fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 1, 'q', 'p', 'p', "com.example.Note", BOB, CAROL, "{\"n\":2}", false);
    write_version(f, 2, 's', 's', 0, "com.example.Note", ALICE, ALICE, "{\"n\":9}", false);
    assert_int_equal(store_fixture_commit(f), 0);
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
static void write_payments(struct store_fixture *f)
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
    assert_int_equal(store_fixture_commit(f), 0);
}

static size_t run_query(struct store_fixture *f, const struct store_data_query *q,
                        struct rows *rows)
{
    memset(rows, 0, sizeof(*rows));
    size_t count = 0;
    assert_int_equal(store_data_query(f->store, q, collect, rows, &count), 0);
    assert_int_equal(count, rows->count);
    return count;
}

#define INT_VALUE(v) ((struct store_data_value){.type = STORE_DATA_INT, .i = (v)})
#define TEXT_VALUE(s) ((struct store_data_value){.type = STORE_DATA_TEXT, .text = BYTES(s)})

static size_t query_one_filter(struct store_fixture *f, const char *path, enum store_data_op op,
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
    struct store_fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 1, 'q', 'p', 'p', "com.example.Note", ALICE, BOB, "{\"n\":2}", false);
    write_version(f, 2, 's', 's', 0, "com.example.Note", ALICE, CAROL, "{\"n\":3}", false);
    write_version(f, 3, 't', 't', 0, "com.example.Note", BOB, ALICE, "{\"n\":4}", false);
    assert_int_equal(store_fixture_commit(f), 0);
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
    struct store_fixture *f = *state;
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
    struct store_fixture *f = *state;
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
    struct store_fixture *f = *state;
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 1, 'q', 'p', 'p', "com.example.Note", ALICE, BOB, "{}", true);
    assert_int_equal(store_fixture_commit(f), 0);
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
    struct store_fixture *f = *state;
    write_payments(f);
    struct store_record rec = {.type = STORE_DATA_INDEX};
    rec.u.data_index.path = BYTES("$.amount");
    assert_int_equal(store_write(f->store, &rec), 0);
    assert_int_equal(store_write(f->store, &rec), 0); /* twice: no error */
    assert_int_equal(store_fixture_commit(f), 0);
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
    struct store_fixture *f = *state;
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
    struct store_fixture *f = *state;
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
    struct store_fixture *f = *state;
    store_fixture_close(f);
    unlink(f->path);
    char err[256];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, 5, err, sizeof(err)), 0);
    sqlite3_close(db);
    assert_int_equal(store_fixture_open(f, STORE_SYNC_OFF, err, sizeof(err)), 0);
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    assert_int_equal(store_fixture_commit(f), 0);
    store_fixture_close(f);
    assert_int_equal(count_rows(f->path, "SELECT max(version) FROM schema_version"),
                     STORE_SCHEMA_VERSION);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM data_readers"), 2);
}

/* A query as of size over model, as reader (NULL: everything), optionally ordered by path. */
static size_t query_at(struct store_fixture *f, const char *model, const char *reader,
                       uint64_t size, struct rows *rows)
{
    struct store_data_query q = {.model = BYTES(model),
                                 .reader = reader != NULL ? BYTES(reader) : NO_READER,
                                 .limit = ROWS_MAX,
                                 .as_of = true,
                                 .as_of_size = size};
    return run_query(f, &q, rows);
}

static bool found_at(struct store_fixture *f, char permalink, const char *reader, uint64_t size,
                     struct rows *rows)
{
    memset(rows, 0, sizeof(*rows));
    bool found = false;
    assert_int_equal(store_data_resource_at(f->store, BYTES(link_of(permalink)),
                                            reader != NULL ? BYTES(reader) : NO_READER, size,
                                            collect, rows, &found),
                     0);
    return found;
}

/*
 * The history the as-of tests read:
 *   0  p created by Alice to Bob      {"n":1}
 *   1  s created by Alice to Alice    {"n":10}
 *   2  p updated by Bob to Carol      {"n":2}      (Carol reads p from here on)
 *   3  s tombstoned                   {}
 *   4  t created by Alice to Bob      {"n":4}
 *   5  p updated by Alice to Alice    {"n":3}
 */
static void write_history(struct store_fixture *f)
{
    write_version(f, 0, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 1, 's', 's', 0, "com.example.Note", ALICE, ALICE, "{\"n\":10}", false);
    write_version(f, 2, 'q', 'p', 'p', "com.example.Note", BOB, CAROL, "{\"n\":2}", false);
    write_version(f, 3, 'u', 's', 's', "com.example.Note", ALICE, ALICE, "{}", true);
    write_version(f, 4, 't', 't', 0, "com.example.Note", ALICE, BOB, "{\"n\":4}", false);
    write_version(f, 5, 'r', 'p', 'q', "com.example.Note", ALICE, ALICE, "{\"n\":3}", false);
    assert_int_equal(store_fixture_commit(f), 0);
}

/* Creates, updates and tombstones across checkpoints: each size sees the versions below it. */
static void test_a_query_as_of_a_checkpoint_sees_the_versions_of_then(void **state)
{
    struct store_fixture *f = *state;
    write_history(f);
    struct rows rows;
    assert_int_equal(query_at(f, "com.example.Note", NULL, 0, &rows), 0);
    assert_int_equal(query_at(f, "com.example.Note", NULL, 1, &rows), 1);
    assert_string_equal(rows.body[0], "{\"n\":1}");
    assert_int_equal(query_at(f, "com.example.Note", NULL, 2, &rows), 2); /* p, s */
    assert_string_equal(rows.body[1], "{\"n\":10}");
    assert_int_equal(query_at(f, "com.example.Note", NULL, 3, &rows), 2);
    assert_string_equal(rows.body[0], "{\"n\":2}"); /* p updated at 2 */
    assert_string_equal(rows.link[0], link_of('q'));
    assert_int_equal(rows.index[0], 2);
    assert_int_equal(rows.created[0], 0);
    assert_string_equal(rows.owner[0], ALICE);
    assert_int_equal(query_at(f, "com.example.Note", NULL, 4, &rows), 1); /* s tombstoned at 3 */
    assert_int_equal(query_at(f, "com.example.Note", NULL, 5, &rows), 2); /* p, t */
    assert_string_equal(rows.body[0], "{\"n\":2}");
    assert_string_equal(rows.body[1], "{\"n\":4}");
    assert_int_equal(query_at(f, "com.example.Note", NULL, 6, &rows), 2);
    assert_string_equal(rows.body[0], "{\"n\":3}");
    assert_int_equal(query_at(f, "com.example.Note", NULL, 1000, &rows), 2);
    assert_int_equal(query_at(f, "com.example.Other", NULL, 6, &rows), 0);
    /* One resource: absent before its creation, its version then, a tombstone found deleted. */
    assert_false(found_at(f, 't', NULL, 4, &rows));
    assert_true(found_at(f, 't', NULL, 5, &rows));
    assert_true(found_at(f, 'p', NULL, 5, &rows));
    assert_string_equal(rows.body[0], "{\"n\":2}");
    assert_true(found_at(f, 's', NULL, 3, &rows));
    assert_false(rows.deleted[0]);
    assert_true(found_at(f, 's', NULL, 4, &rows));
    assert_true(rows.deleted[0]);
    /* A version by link: only below the size. */
    bool found = true;
    assert_int_equal(
        store_data_version_at(f->store, BYTES(link_of('r')), NO_READER, 5, collect, &rows, &found),
        0);
    assert_false(found);
    assert_int_equal(
        store_data_version_at(f->store, BYTES(link_of('q')), NO_READER, 5, collect, &rows, &found),
        0);
    assert_true(found);
    /* The batched references as of 3: p's version then, t absent, s still there. */
    struct lmq_bytes keys[] = {BYTES(link_of('p')), BYTES(link_of('s')), BYTES(link_of('t'))};
    memset(&rows, 0, sizeof(rows));
    size_t count = 0;
    assert_int_equal(
        store_data_resources_at(f->store, keys, 3, NO_READER, 3, collect, &rows, &count), 0);
    assert_int_equal(count, 2);
    for (size_t i = 0; i < rows.count; i++)
        assert_true(strcmp(rows.body[i], "{\"n\":2}") == 0 ||
                    strcmp(rows.body[i], "{\"n\":10}") == 0);
    assert_int_equal(
        store_data_resources_at(f->store, keys, 0, NO_READER, 3, collect, &rows, &count),
        LMQ_EINVAL);
}

/* The reader rule as of then: Carol reads p from its version to her (index 2) on, never t. */
static void test_the_reader_rule_applies_as_of_the_checkpoint(void **state)
{
    struct store_fixture *f = *state;
    write_history(f);
    struct rows rows;
    assert_int_equal(query_at(f, "com.example.Note", CAROL, 2, &rows), 0);
    assert_false(found_at(f, 'p', CAROL, 2, &rows));
    assert_int_equal(query_at(f, "com.example.Note", CAROL, 3, &rows), 1);
    assert_string_equal(rows.body[0], "{\"n\":2}");
    assert_true(found_at(f, 'p', CAROL, 3, &rows));
    assert_int_equal(query_at(f, "com.example.Note", CAROL, 6, &rows), 1);
    assert_string_equal(rows.body[0], "{\"n\":3}");
    /* Bob: p from 0; t from 4. */
    assert_int_equal(query_at(f, "com.example.Note", BOB, 1, &rows), 1);
    assert_int_equal(query_at(f, "com.example.Note", BOB, 4, &rows), 1);
    assert_int_equal(query_at(f, "com.example.Note", BOB, 5, &rows), 2);
    /* Alice: s while it lived. */
    assert_int_equal(query_at(f, "com.example.Note", ALICE, 2, &rows), 2);
    assert_int_equal(query_at(f, "com.example.Note", ALICE, 4, &rows), 1);
    bool found = true;
    assert_int_equal(store_data_version_at(f->store, BYTES(link_of('p')), BYTES(CAROL), 2, collect,
                                           &rows, &found),
                     0);
    assert_false(found); /* Carol could not read p's first version then */
    assert_int_equal(store_data_version_at(f->store, BYTES(link_of('p')), BYTES(CAROL), 3, collect,
                                           &rows, &found),
                     0);
    assert_true(found); /* from 3 on she reads the whole resource, its history too */
    struct lmq_bytes keys[] = {BYTES(link_of('p')), BYTES(link_of('t'))};
    size_t count = 9;
    assert_int_equal(
        store_data_resources_at(f->store, keys, 2, BYTES(CAROL), 2, collect, &rows, &count), 0);
    assert_int_equal(count, 0);
}

/* Filters, property order and pages as of a checkpoint read the bodies of then. */
static void test_filters_order_and_pages_as_of_use_the_versions_of_then(void **state)
{
    struct store_fixture *f = *state;
    write_payments(f); /* indexes 0..20: amount i * 10 */
    /* At 21..40 every payment's amount becomes 1000 - i * 10. */
    static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    static const char links[] = "abcdefghijklmnopqrst";
    for (int i = 0; i < 20; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"amount\":%d}", 1000 - i * 10);
        write_version(f, (uint64_t)(21 + i), links[i], letters[i], letters[i],
                      "com.example.Payment", ALICE, BOB, body, false);
    }
    assert_int_equal(store_fixture_commit(f), 0);
    struct store_data_value v = INT_VALUE(50);
    struct store_data_filter filter = {
        .path = BYTES("$.amount"), .op = STORE_DATA_LT, .values = &v, .value_count = 1};
    struct store_data_query q = {.model = BYTES("com.example.Payment"),
                                 .filters = &filter,
                                 .filter_count = 1,
                                 .limit = ROWS_MAX,
                                 .as_of = true,
                                 .as_of_size = 21};
    struct rows rows;
    assert_int_equal(run_query(f, &q, &rows), 5); /* 0..40 then */
    q.as_of = false;
    assert_int_equal(run_query(f, &q, &rows), 0); /* none now */
    q.as_of = true;
    q.as_of_size = 31; /* ten updated (900.. 810), ten still i * 10 */
    assert_int_equal(run_query(f, &q, &rows), 0);
    v = INT_VALUE(900);
    filter.op = STORE_DATA_GTE;
    assert_int_equal(run_query(f, &q, &rows), 10);
    /* By amount descending, pages of 3, as of 31: 1000, 990, ... 910, then 190 .. 100. */
    q = (struct store_data_query){.model = BYTES("com.example.Payment"),
                                  .reader = BYTES(BOB),
                                  .order_path = BYTES("$.amount"),
                                  .descending = true,
                                  .limit = 3,
                                  .as_of = true,
                                  .as_of_size = 31};
    int expect = 1000, seen = 0;
    for (int page = 0; page < 8 && seen < 20; page++) {
        size_t n = run_query(f, &q, &rows);
        assert_true(n > 0);
        for (size_t i = 0; i < n; i++, seen++) {
            char want[32];
            snprintf(want, sizeof(want), "\"amount\":%d", expect);
            if (strstr(rows.body[i], want) == NULL)
                fail_msg("row %d: %s, expected %s", seen, rows.body[i], want);
            expect = expect == 910 ? 190 : expect - 10;
        }
        q.has_cursor = true;
        q.cursor_created = rows.created[n - 1];
        const char *a = strstr(rows.body[n - 1], "\"amount\":");
        q.cursor_value = INT_VALUE(atoi(a + 9));
    }
    assert_int_equal(seen, 20);
}

/* As of a checkpoint, a page is still a loop over the model's (or the reader's) resources in
 * creation order, each joined to its version then by one seek: no scan, no sort. */
static void test_the_as_of_plan_seeks_each_version_by_permalink_and_index(void **state)
{
    struct store_fixture *f = *state;
    write_payments(f);
    struct store_data_query q = {
        .model = BYTES("com.example.Payment"), .limit = 10, .as_of = true, .as_of_size = 10};
    char plan[4096];
    const char *readers[] = {NULL, BOB};
    for (size_t i = 0; i < 2; i++) {
        q.reader = readers[i] != NULL ? BYTES(readers[i]) : NO_READER;
        assert_int_equal(store_data_query_plan(f->store, &q, plan, sizeof(plan)), 0);
        bool range = readers[i] != NULL ? strstr(plan, "SEARCH d USING PRIMARY KEY") != NULL
                                        : strstr(plan, "data_resources_by_model") != NULL;
        if (!range ||
            strstr(plan, "data_versions_by_resource (permalink=? AND ledger_idx<?)") == NULL ||
            strstr(plan, "TEMP B-TREE") != NULL || strstr(plan, "SCAN") != NULL)
            fail_msg("an as-of page is not index seeks:\n%s", plan);
    }
}

/* A scan as of a checkpoint stops at max_ms with LMQ_ELIMIT; without a bound it finishes. */
static void test_an_as_of_scan_stops_at_its_time_bound(void **state)
{
    struct store_fixture *f = *state;
    enum { RESOURCES = 20000 };
    for (size_t i = 0; i < RESOURCES; i++) {
        char link[65], body[32];
        snprintf(link, sizeof(link), "a%063zx", i);
        snprintf(body, sizeof(body), "{\"amount\":%zu}", i);
        struct store_record rec = {.type = STORE_DATA_VERSION};
        rec.u.data_version = (struct store_rec_data_version){
            .ledger_index = i,
            .link = BYTES(link),
            .permalink = BYTES(link),
            .prevlink = BYTES(""),
            .model = BYTES("com.example.Payment"),
            .author = BYTES(ALICE),
            .recipient = BYTES(BOB),
            .time = BYTES("2026-12-06T10:00:00.000000000Z"),
            .body = BYTES(body),
        };
        assert_int_equal(store_write(f->store, &rec), 0);
    }
    assert_int_equal(store_fixture_commit(f), 0);
    /* No resource matches: the statement looks at all of them. */
    struct store_data_value v = INT_VALUE(-1);
    struct store_data_filter filter = {
        .path = BYTES("$.amount"), .op = STORE_DATA_EQ, .values = &v, .value_count = 1};
    struct store_data_query q = {.model = BYTES("com.example.Payment"),
                                 .filters = &filter,
                                 .filter_count = 1,
                                 .limit = 10,
                                 .as_of = true,
                                 .as_of_size = RESOURCES,
                                 .max_ms = 1};
    struct rows rows = {0};
    size_t count = 9;
    assert_int_equal(store_data_query(f->store, &q, collect, &rows, &count), LMQ_ELIMIT);
    assert_int_equal(count, 0);
    q.max_ms = 0;
    assert_int_equal(store_data_query(f->store, &q, collect, &rows, &count), 0);
    assert_int_equal(count, 0);
    /* A bound that is not reached changes nothing; the connection is usable afterwards. */
    v = INT_VALUE(7);
    q.max_ms = 60000;
    assert_int_equal(store_data_query(f->store, &q, collect, &rows, &count), 0);
    assert_int_equal(count, 1);
}

/* A database of schema 6 gets the readers' since_idx from its history. */
static void test_database_of_schema_6_learns_since_when_readers_read(void **state)
{
    struct store_fixture *f = *state;
    store_fixture_close(f);
    unlink(f->path);
    char err[256];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, 6, err, sizeof(err)), 0);
    /* p: Alice to Bob at 0, Bob to Carol at 2 (schema 6 rows, as its writer made them). */
    static const char sql[] =
        "INSERT INTO data_versions VALUES(x'01', 0, x'01', x'', 'm', x'aa', x'bb', 't', 0, '{}');"
        "INSERT INTO data_versions VALUES(x'02', 2, x'01', x'01', 'm', x'bb', x'cc', 't', 0, '{}');"
        "INSERT INTO data_resources VALUES(x'01', 0, 'm', x'02', x'01', x'bb', x'aa', 2, 't', 0,"
        " '{}');"
        "INSERT INTO data_readers VALUES(x'aa', 'm', 0, x'01'), (x'bb', 'm', 0, x'01'),"
        " (x'cc', 'm', 0, x'01');";
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, STORE_SCHEMA_VERSION, err, sizeof(err)), 0);
    sqlite3_close(db);
    assert_int_equal(
        count_rows(f->path, "SELECT since_idx FROM data_readers WHERE identity = x'aa'"), 0);
    assert_int_equal(
        count_rows(f->path, "SELECT since_idx FROM data_readers WHERE identity = x'bb'"), 0);
    assert_int_equal(
        count_rows(f->path, "SELECT since_idx FROM data_readers WHERE identity = x'cc'"), 2);
    assert_int_equal(count_rows(f->path, "SELECT max(version) FROM schema_version"),
                     STORE_SCHEMA_VERSION);
    /* And the writer records it for new versions. */
    assert_int_equal(store_fixture_open(f, STORE_SYNC_OFF, err, sizeof(err)), 0);
    write_version(f, 3, 'p', 'p', 0, "com.example.Note", ALICE, BOB, "{\"n\":1}", false);
    write_version(f, 7, 'q', 'p', 'p', "com.example.Note", ALICE, CAROL, "{\"n\":1}", false);
    assert_int_equal(store_fixture_commit(f), 0);
    store_fixture_close(f);
    char q[160];
    snprintf(q, sizeof(q), "SELECT since_idx FROM data_readers WHERE CAST(identity AS TEXT) = '%s'",
             CAROL);
    assert_int_equal(count_rows(f->path, q), 7);
    snprintf(q, sizeof(q), "SELECT since_idx FROM data_readers WHERE CAST(identity AS TEXT) = '%s'",
             BOB);
    assert_int_equal(count_rows(f->path, q), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions_make_a_resource_with_its_latest_version,
                                        setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_only_authors_and_recipients_read_a_resource, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_many_resources_are_read_in_one_batch, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_every_filter_operator, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pages_follow_the_cursor_in_both_orders, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_deleted_resources_leave_queries_but_keep_history,
                                        setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_a_property_index_is_what_the_planner_uses, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_query_sql_is_the_statement_the_query_runs, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_plans_are_refused_before_any_sql, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_database_of_schema_5_gets_the_object_tables, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_a_query_as_of_a_checkpoint_sees_the_versions_of_then,
                                        setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_the_reader_rule_applies_as_of_the_checkpoint, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filters_order_and_pages_as_of_use_the_versions_of_then,
                                        setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_the_as_of_plan_seeks_each_version_by_permalink_and_index, setup,
            store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_an_as_of_scan_stops_at_its_time_bound, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_database_of_schema_6_learns_since_when_readers_read,
                                        setup, store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
