/*
 * The chain follower's and the sealer's rows in the SQLite store (store_chain.c, schema 11):
 * headers by number with the tip and a rollback above a fork point; watches paged in key order
 * and deleted by key; notices upserted by (block hash, log index, identity) and read by block
 * number, paged after a key; seals upserted by nonce from nonce 0; everything survives a reopen.
 */
#include "store_fixture.h"

#include <inttypes.h>
#include <sqlite3.h>

#define ROWS_MAX 16

static struct lmq_bytes bytes_of(const uint8_t *p, size_t len)
{
    return (struct lmq_bytes){p, len};
}

static struct lmq_bytes text(const char *s)
{
    return (struct lmq_bytes){(const uint8_t *)s, strlen(s)};
}

/* A 32-byte hash whose bytes are all b. */
static const uint8_t *hash_of(uint8_t b)
{
    static uint8_t hashes[256][32];
    memset(hashes[b], b, 32);
    return hashes[b];
}

static void write_record(struct store_fixture *f, const struct store_record *r)
{
    assert_int_equal(store_write(f->store, r), LMQ_OK);
}

static void put_header(struct store_fixture *f, uint64_t number, uint8_t hash, uint8_t parent)
{
    struct store_record r = {.type = STORE_CHAIN_HEADER_PUT};
    r.u.chain_header = (struct store_rec_chain_header){
        number, bytes_of(hash_of(hash), 32), bytes_of(hash_of(parent), 32), 1000 + number};
    write_record(f, &r);
}

struct rows {
    size_t n;
    uint64_t numbers[ROWS_MAX];
    uint8_t first_bytes[ROWS_MAX];
    char names[ROWS_MAX][80];
};

static int header_row(void *ctx, const struct store_rec_chain_header *h)
{
    struct rows *rows = ctx;
    assert_true(rows->n < ROWS_MAX);
    assert_int_equal(h->hash.len, 32);
    assert_int_equal(h->parent_hash.len, 32);
    assert_int_equal(h->time, 1000 + h->number);
    rows->numbers[rows->n] = h->number;
    rows->first_bytes[rows->n++] = h->hash.data[0];
    return 0;
}

static void test_headers_tip_and_rollback(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(store_fixture_open(f, STORE_SYNC_OFF, err, sizeof(err)), 0);
    uint64_t number = 99;
    uint8_t tip[32];
    bool found = true;
    assert_int_equal(store_chain_tip(f->store, &number, tip, &found), LMQ_OK);
    assert_false(found);
    for (uint64_t n = 1; n <= 5; n++)
        put_header(f, n, (uint8_t)n, (uint8_t)(n - 1));
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(store_chain_tip(f->store, &number, tip, &found), LMQ_OK);
    assert_true(found);
    assert_int_equal(number, 5);
    assert_memory_equal(tip, hash_of(5), 32);
    /* A fork at 3: 4 and 5 go, a new 4 comes on top of 3, in one batch. */
    struct store_record rb = {.type = STORE_CHAIN_ROLLBACK};
    rb.u.chain_rollback.after = 3;
    write_record(f, &rb);
    put_header(f, 4, 0x44, 3);
    assert_int_equal(store_fixture_commit(f), 0);
    struct rows rows = {0};
    size_t count = 0;
    assert_int_equal(store_chain_headers(f->store, 2, 100, 10, header_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 3);
    assert_int_equal(rows.numbers[0], 2);
    assert_int_equal(rows.numbers[2], 4);
    assert_int_equal(rows.first_bytes[2], 0x44);
    /* A limit, and a range with nothing. */
    rows = (struct rows){0};
    assert_int_equal(store_chain_headers(f->store, 1, 100, 2, header_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 2);
    assert_int_equal(store_chain_headers(f->store, 50, 100, 2, header_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 0);
    /* It all survives a reopen. */
    store_fixture_close(f);
    assert_int_equal(store_fixture_open(f, STORE_SYNC_OFF, err, sizeof(err)), 0);
    assert_int_equal(store_chain_tip(f->store, &number, tip, &found), LMQ_OK);
    assert_true(found && number == 4 && tip[0] == 0x44);
}

static int watch_row(void *ctx, const struct store_rec_chain_watch *w)
{
    struct rows *rows = ctx;
    assert_true(rows->n < ROWS_MAX);
    assert_int_equal(w->address.len, 20);
    snprintf(rows->names[rows->n], sizeof(rows->names[0]), "%.*s/%u/%zu/%.*s", (int)w->identity.len,
             (const char *)w->identity.data, w->address.data[0], w->topic0.len, (int)w->abi.len,
             (const char *)w->abi.data);
    rows->n++;
    return 0;
}

static void put_watch(struct store_fixture *f, enum store_record_type type, const char *identity,
                      uint8_t address, size_t topic_len, const char *abi)
{
    static uint8_t addresses[256][20];
    memset(addresses[address], address, 20);
    struct store_record r = {.type = type};
    r.u.chain_watch =
        (struct store_rec_chain_watch){text(identity), bytes_of(addresses[address], 20),
                                       bytes_of(hash_of(9), topic_len), text(abi), 5};
    write_record(f, &r);
}

static void test_watches_paged_in_key_order(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(store_fixture_open(f, STORE_SYNC_OFF, err, sizeof(err)), 0);
    put_watch(f, STORE_CHAIN_WATCH_PUT, "bob", 2, 0, "");
    put_watch(f, STORE_CHAIN_WATCH_PUT, "alice", 7, 32, "Transfer(address,address,uint256)");
    put_watch(f, STORE_CHAIN_WATCH_PUT, "alice", 7, 0, "");
    put_watch(f, STORE_CHAIN_WATCH_PUT, "alice", 3, 0, "");
    put_watch(f, STORE_CHAIN_WATCH_PUT, "alice", 3, 0, "X()"); /* replaces: same key */
    assert_int_equal(store_fixture_commit(f), 0);
    struct rows rows = {0};
    size_t count = 0;
    assert_int_equal(store_chain_watches(f->store, NULL, 2, watch_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 2);
    assert_string_equal(rows.names[0], "alice/3/0/X()");
    assert_string_equal(rows.names[1], "alice/7/0/");
    /* The next page starts after the last key. */
    uint8_t a7[20];
    memset(a7, 7, 20);
    struct store_rec_chain_watch after = {
        .identity = text("alice"), .address = bytes_of(a7, 20), .topic0 = bytes_of(NULL, 0)};
    assert_int_equal(store_chain_watches(f->store, &after, 10, watch_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 2);
    assert_string_equal(rows.names[2], "alice/7/32/Transfer(address,address,uint256)");
    assert_string_equal(rows.names[3], "bob/2/0/");
    /* A delete by key removes that one only. */
    put_watch(f, STORE_CHAIN_WATCH_DELETE, "alice", 7, 32, "");
    assert_int_equal(store_fixture_commit(f), 0);
    rows = (struct rows){0};
    assert_int_equal(store_chain_watches(f->store, NULL, 10, watch_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 3);
    assert_string_equal(rows.names[2], "bob/2/0/");
}

static int notice_row(void *ctx, const struct store_rec_chain_notice *n)
{
    struct rows *rows = ctx;
    assert_true(rows->n < ROWS_MAX);
    assert_int_equal(n->block_hash.len, 32);
    assert_int_equal(n->tx_hash.len, 32);
    snprintf(rows->names[rows->n], sizeof(rows->names[0]), "%" PRIu64 ":%u:%.*s:%.*s:%.*s",
             n->block_number, n->log_index, (int)n->identity.len, (const char *)n->identity.data,
             (int)n->state.len, (const char *)n->state.data, (int)n->link.len,
             (const char *)n->link.data);
    rows->n++;
    return 0;
}

static void put_notice(struct store_fixture *f, uint64_t number, uint8_t block, uint32_t log_index,
                       const char *identity, const char *state, const char *link)
{
    struct store_record r = {.type = STORE_CHAIN_NOTICE_PUT};
    r.u.chain_notice =
        (struct store_rec_chain_notice){number,         bytes_of(hash_of(block), 32), log_index,
                                        text(identity), bytes_of(hash_of(0xee), 32),  text(state),
                                        text(link)};
    write_record(f, &r);
}

static void test_notices_by_block_number(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(store_fixture_open(f, STORE_SYNC_OFF, err, sizeof(err)), 0);
    put_notice(f, 10, 0xa0, 1, "bob", "notified", "l1");
    put_notice(f, 10, 0xa0, 0, "carol", "notified", "l2");
    put_notice(f, 10, 0xa0, 0, "alice", "notified", "l3");
    put_notice(f, 12, 0xc0, 4, "alice", "notified", "l4");
    put_notice(f, 9, 0x90, 0, "alice", "notified", "l5");
    assert_int_equal(store_fixture_commit(f), 0);
    /* A state change is a put of the same key. */
    put_notice(f, 10, 0xa0, 1, "bob", "retracted", "l6");
    assert_int_equal(store_fixture_commit(f), 0);
    struct rows rows = {0};
    size_t count = 0;
    assert_int_equal(store_chain_notices(f->store, 10, NULL, 3, notice_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 3);
    assert_string_equal(rows.names[0], "10:0:alice:notified:l3");
    assert_string_equal(rows.names[1], "10:0:carol:notified:l2");
    assert_string_equal(rows.names[2], "10:1:bob:retracted:l6");
    struct rec_after {
        struct store_rec_chain_notice n;
    } after = {{.block_number = 10, .log_index = 1, .identity = text("bob")}};
    assert_int_equal(store_chain_notices(f->store, 10, &after.n, 3, notice_row, &rows, &count),
                     LMQ_OK);
    assert_int_equal(count, 1);
    assert_string_equal(rows.names[3], "12:4:alice:notified:l4");
}

static int seal_row(void *ctx, const struct store_rec_seal *s)
{
    struct rows *rows = ctx;
    assert_true(rows->n < ROWS_MAX);
    assert_int_equal(s->root.len, 32);
    snprintf(rows->names[rows->n], sizeof(rows->names[0]),
             "%" PRIu64 ":%" PRIu64 ":%.*s:%u:%" PRIu64 ":%zu:%zu", s->nonce, s->tree_size,
             (int)s->state.len, (const char *)s->state.data, s->attempts, s->block_number,
             s->block_hash.len, s->raw.len);
    rows->n++;
    return 0;
}

static int seal_tx_row(void *ctx, const struct store_rec_seal_tx *t)
{
    struct rows *rows = ctx;
    assert_true(rows->n < ROWS_MAX);
    assert_int_equal(t->tx_hash.len, 32);
    snprintf(rows->names[rows->n], sizeof(rows->names[0]), "%" PRIu64 ":%u:%u:%zu:%" PRId64,
             t->nonce, t->attempt, t->tx_hash.data[0], t->raw.len, t->sent_unix_ms);
    rows->n++;
    return 0;
}

static void put_seal(struct store_fixture *f, uint64_t nonce, uint64_t size, const char *state,
                     uint32_t attempts, uint64_t block)
{
    static const uint8_t raw[3] = {2, 1, 0};
    struct store_record r = {.type = STORE_SEAL_PUT};
    r.u.seal = (struct store_rec_seal){.nonce = nonce,
                                       .tree_size = size,
                                       .root = bytes_of(hash_of(1), 32),
                                       .checkpoint = text("note"),
                                       .chain_id = 1337,
                                       .tx_hash = bytes_of(hash_of((uint8_t)attempts), 32),
                                       .raw = bytes_of(raw, sizeof(raw)),
                                       .state = text(state),
                                       .block_number = block,
                                       .block_hash = bytes_of(hash_of(3), block > 0 ? 32 : 0),
                                       .attempts = attempts,
                                       .sent_unix_ms = 7,
                                       .updated_unix_ms = 8};
    write_record(f, &r);
}

static void test_seals_by_nonce_from_zero(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(store_fixture_open(f, STORE_SYNC_OFF, err, sizeof(err)), 0);
    put_seal(f, 0, 10, "sent", 1, 0);
    put_seal(f, 1, 20, "sent", 1, 0);
    assert_int_equal(store_fixture_commit(f), 0);
    put_seal(f, 0, 10, "mined", 2, 77); /* a fee bump, then mined */
    assert_int_equal(store_fixture_commit(f), 0);
    struct rows rows = {0};
    size_t count = 0;
    assert_int_equal(store_seals(f->store, 0, 10, seal_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 2);
    assert_string_equal(rows.names[0], "0:10:mined:2:77:32:3");
    assert_string_equal(rows.names[1], "1:20:sent:1:0:0:3");
    assert_int_equal(store_seals(f->store, 1, 10, seal_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 1);
    /* Every transaction of a nonce, by attempt; an attempt stored twice fails its commit. */
    static const uint8_t raw[2] = {2, 9};
    for (uint32_t attempt = 1; attempt <= 2; attempt++) {
        struct store_record r = {.type = STORE_SEAL_TX_PUT};
        r.u.seal_tx = (struct store_rec_seal_tx){
            0, attempt, bytes_of(hash_of((uint8_t)attempt), 32), bytes_of(raw, 2), 100 + attempt};
        write_record(f, &r);
    }
    assert_int_equal(store_fixture_commit(f), 0);
    rows = (struct rows){0};
    assert_int_equal(store_seal_txs(f->store, 0, 10, seal_tx_row, &rows, &count), LMQ_OK);
    assert_int_equal(count, 2);
    assert_string_equal(rows.names[0], "0:1:1:2:101");
    assert_string_equal(rows.names[1], "0:2:2:2:102");
    /* The cover: the first confirmed seal at or above a size, by one indexed lookup. */
    put_seal(f, 2, 30, "confirmed", 1, 90);
    put_seal(f, 3, 40, "confirmed", 1, 91);
    put_seal(f, 4, 35, "sent", 1, 0);
    assert_int_equal(store_fixture_commit(f), 0);
    static const struct {
        uint64_t size;
        bool found;
        const char *row;
    } covers[] = {{1, true, "2:30:confirmed"},
                  {30, true, "2:30:confirmed"},
                  {31, true, "3:40:confirmed"},
                  {41, false, NULL}};
    struct lmq_bytes confirmed = text("confirmed");
    for (size_t i = 0; i < sizeof(covers) / sizeof(covers[0]); i++) {
        rows = (struct rows){0};
        bool found = !covers[i].found;
        assert_int_equal(
            store_seal_cover(f->store, confirmed, covers[i].size, seal_row, &rows, &found), LMQ_OK);
        assert_int_equal(found, covers[i].found);
        assert_int_equal(rows.n, found ? 1 : 0);
        if (found)
            assert_memory_equal(rows.names[0], covers[i].row, strlen(covers[i].row));
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *plan = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT nonce FROM seals WHERE state ="
                                        " 'confirmed' AND tree_size >= 5 ORDER BY tree_size,"
                                        " nonce LIMIT 1",
                                        -1, &plan, NULL),
                     SQLITE_OK);
    bool indexed = false;
    while (sqlite3_step(plan) == SQLITE_ROW)
        indexed |= strstr((const char *)sqlite3_column_text(plan, 3), "seals_cover") != NULL;
    sqlite3_finalize(plan);
    sqlite3_close(db);
    assert_true(indexed);
    struct store_record again = {.type = STORE_SEAL_TX_PUT};
    again.u.seal_tx =
        (struct store_rec_seal_tx){0, 2, bytes_of(hash_of(7), 32), bytes_of(raw, 2), 0};
    write_record(f, &again);
    assert_int_not_equal(store_fixture_commit(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_headers_tip_and_rollback, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_watches_paged_in_key_order, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_notices_by_block_number, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_seals_by_nonce_from_zero, store_fixture_setup,
                                        store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
