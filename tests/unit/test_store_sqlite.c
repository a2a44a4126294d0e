/* Unit tests of the SQLite store through store.h: round trips, migration, GC, faults. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lmq.h"
#include "store/store.h"
#include "store/store_schema.h"
#include "store_fixture.h"

static int open_store(struct store_fixture *f, char *err, size_t err_len)
{
    return store_fixture_open(f, STORE_SYNC_FULL, err, err_len);
}

static const uint8_t CLIENT[] = "client-1";
#define BYTES(s) ((struct lmq_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static struct store_message sample_message(uint64_t id, const char *payload)
{
    return (struct store_message){
        .id = id,
        .qos = 1,
        .created_unix_ms = 1700000000000,
        .has_expiry = true,
        .expiry_s = 60,
        .has_payload_format = true,
        .payload_format = 1,
        .topic = BYTES("a/b"),
        .payload = {(const uint8_t *)payload, strlen(payload)},
        .content_type = BYTES("text/plain"),
        .correlation_data = BYTES("\x01\x02"),
    };
}

static void write_rec(struct store_fixture *f, struct store_record rec)
{
    assert_int_equal(store_write(f->store, &rec), 0);
}

static void queue_message(struct store_fixture *f, uint64_t msg_id, uint64_t seq,
                          const char *payload)
{
    struct store_message m = sample_message(msg_id, payload);
    write_rec(f,
              (struct store_record){.type = STORE_MESSAGE_PUT, .u.message_put = {.message = &m}});
    write_rec(f, (struct store_record){.type = STORE_QUEUE_PUT,
                                       .u.queue_put = {.client_id = {CLIENT, sizeof(CLIENT) - 1},
                                                       .msg_id = msg_id,
                                                       .seq = seq,
                                                       .qos = 1,
                                                       .size_bytes = strlen(payload),
                                                       .sub_ids = BYTES("\x07\x00\x00\x00")}});
}

struct loaded {
    int sessions, subs, qos2, retained, wills, summaries, identities;
    uint64_t sent_seq[2], inbox_last[2]; /* by identity: 0 = ID_A, 1 = ID_B */
    uint64_t queued, queued_bytes, max_seq;
    uint64_t queued_total, queued_bytes_total; /* over every client */
    uint32_t expiry_s;
    uint8_t options;
    uint16_t packet_id;
    char retained_payload[32];
};

static int ld_session(void *ctx, struct lmq_bytes id, uint32_t expiry_s, struct lmq_bytes owner)
{
    struct loaded *l = ctx;
    assert_memory_equal(id.data, CLIENT, id.len);
    assert_int_equal(owner.len, 0); /* these tests store anonymous sessions */
    l->sessions++;
    l->expiry_s = expiry_s;
    return 0;
}
#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int ld_identity(void *ctx, struct lmq_bytes id, uint64_t last_seq, struct lmq_bytes link,
                       uint64_t inbox_last)
{
    struct loaded *l = ctx;
    assert_int_equal(id.len, 64);
    int which = id.data[0] == 'a' ? 0 : 1;
    assert_true(last_seq == 0 || link.len == 64);
    l->identities++;
    l->sent_seq[which] = last_seq;
    l->inbox_last[which] = inbox_last;
    return 0;
}

static int ld_will(void *ctx, struct lmq_bytes id, const struct store_message *m, uint32_t d)
{
    struct loaded *l = ctx;
    LMQ_UNUSED(id);
    LMQ_UNUSED(d);
    assert_int_equal(m->payload.len, 4);
    l->wills++;
    return 0;
}
static int ld_sub(void *ctx, struct lmq_bytes id, struct lmq_bytes filter, uint8_t options,
                  uint32_t sub_id)
{
    struct loaded *l = ctx;
    LMQ_UNUSED(id);
    assert_int_equal(filter.len, 3);
    assert_int_equal(sub_id, 9);
    l->subs++;
    l->options = options;
    return 0;
}
static int ld_qos2(void *ctx, struct lmq_bytes id, uint16_t packet_id)
{
    struct loaded *l = ctx;
    LMQ_UNUSED(id);
    l->qos2++;
    l->packet_id = packet_id;
    return 0;
}
static int ld_retained(void *ctx, const struct store_message *m)
{
    struct loaded *l = ctx;
    l->retained++;
    snprintf(l->retained_payload, sizeof(l->retained_payload), "%.*s", (int)m->payload.len,
             (const char *)m->payload.data);
    return 0;
}
static int ld_queue(void *ctx, struct lmq_bytes id, uint64_t count, uint64_t bytes,
                    uint64_t max_seq)
{
    struct loaded *l = ctx;
    LMQ_UNUSED(id);
    l->queued = count;
    l->queued_bytes = bytes;
    l->max_seq = max_seq;
    l->summaries++;
    l->queued_total += count;
    l->queued_bytes_total += bytes;
    return 0;
}

static struct loaded load_all(struct store_fixture *f, uint64_t *max_msg_id)
{
    struct loaded l = {0};
    struct store_loader loader = {.ctx = &l,
                                  .session = ld_session,
                                  .will = ld_will,
                                  .subscription = ld_sub,
                                  .inbound_qos2 = ld_qos2,
                                  .retained = ld_retained,
                                  .queue_summary = ld_queue,
                                  .identity = ld_identity};
    assert_int_equal(store_load(f->store, &loader, max_msg_id), 0);
    return l;
}

struct page {
    uint64_t seqs[16];
    char payloads[16][16];
    uint8_t states[16];
    size_t n;
};

static int page_row(void *ctx, const struct store_queue_row *r)
{
    struct page *p = ctx;
    assert_true(p->n < 16);
    p->seqs[p->n] = r->seq;
    p->states[p->n] = r->state;
    snprintf(p->payloads[p->n], 16, "%.*s", (int)r->message->payload.len,
             (const char *)r->message->payload.data);
    assert_int_equal(r->sub_ids.len, 4);
    assert_int_equal(r->message->content_type.len, 10);
    assert_true(r->message->has_expiry && r->message->expiry_s == 60);
    p->n++;
    return 0;
}

static struct page read_page(struct store_fixture *f, uint64_t after)
{
    struct page p = {0};
    size_t count = 0;
    assert_int_equal(store_queue_page(f->store, (struct lmq_bytes){CLIENT, sizeof(CLIENT) - 1},
                                      after, 16, page_row, &p, &count),
                     0);
    assert_int_equal(count, p.n);
    return p;
}

static void test_everything_written_is_loaded_after_reopen(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    struct lmq_bytes id = {CLIENT, sizeof(CLIENT) - 1};
    write_rec(f, (struct store_record){.type = STORE_SESSION_PUT,
                                       .u.session_put = {.client_id = id, .expiry_s = 77}});
    write_rec(f, (struct store_record){
                     .type = STORE_SUBSCRIPTION_PUT,
                     .u.subscription_put = {
                         .client_id = id, .filter = BYTES("a/#"), .options = 0x21, .sub_id = 9}});
    write_rec(f, (struct store_record){.type = STORE_INBOUND_QOS2_PUT,
                                       .u.inbound_qos2_put = {.client_id = id, .packet_id = 4242}});
    queue_message(f, 1, 1, "one");
    queue_message(f, 2, 2, "two");
    queue_message(f, 3, 3, "three");
    struct store_message r = sample_message(10, "kept");
    write_rec(f,
              (struct store_record){.type = STORE_MESSAGE_PUT, .u.message_put = {.message = &r}});
    write_rec(f, (struct store_record){.type = STORE_RETAINED_PUT,
                                       .u.retained_put = {.topic = BYTES("a/b"), .msg_id = 10}});
    struct store_message w = sample_message(11, "will");
    write_rec(f,
              (struct store_record){.type = STORE_WILL_PUT,
                                    .u.will_put = {.client_id = id, .message = &w, .delay_s = 5}});
    assert_int_equal(store_fixture_commit(f), 0);
    /* A second batch: one queued message acknowledged, one in flight. */
    write_rec(f, (struct store_record){
                     .type = STORE_QUEUE_DELETE,
                     .u.queue_delete = {.client_id = id, .seq = 1, .msg_id = 1, .size_bytes = 3}});
    write_rec(f, (struct store_record){.type = STORE_QUEUE_UPDATE,
                                       .u.queue_update = {.client_id = id,
                                                          .seq = 2,
                                                          .state = STORE_QUEUE_WAIT_PUBACK,
                                                          .packet_id = 5}});
    assert_int_equal(store_fixture_commit(f), 0);
    store_fixture_close(f);

    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    uint64_t max_msg_id = 0;
    struct loaded l = load_all(f, &max_msg_id);
    assert_int_equal(l.sessions, 1);
    assert_int_equal(l.expiry_s, 77);
    assert_int_equal(l.subs, 1);
    assert_int_equal(l.options, 0x21);
    assert_int_equal(l.qos2, 1);
    assert_int_equal(l.packet_id, 4242);
    assert_int_equal(l.retained, 1);
    assert_string_equal(l.retained_payload, "kept");
    assert_int_equal(l.wills, 1);
    assert_int_equal(l.queued, 2);
    assert_int_equal(l.queued_bytes, 3 + 5);
    assert_int_equal(l.max_seq, 3);
    assert_int_equal(max_msg_id, 11);
    struct page p = read_page(f, 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.seqs[0], 2);
    assert_string_equal(p.payloads[0], "two");
    assert_int_equal(p.states[0], STORE_QUEUE_WAIT_PUBACK);
    assert_int_equal(p.seqs[1], 3);
    assert_int_equal(p.states[1], STORE_QUEUE_QUEUED);
    p = read_page(f, 2);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.payloads[0], "three");
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

static void test_message_row_freed_with_its_last_reference(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    struct lmq_bytes id = {CLIENT, sizeof(CLIENT) - 1};
    struct lmq_bytes other = BYTES("client-2");
    queue_message(f, 1, 1, "shared");
    /* The same message queued for a second session: stored once, referenced twice. */
    write_rec(f, (struct store_record){
                     .type = STORE_QUEUE_PUT,
                     .u.queue_put = {.client_id = other, .msg_id = 1, .seq = 1, .qos = 1}});
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM messages"), 1);
    write_rec(f, (struct store_record){
                     .type = STORE_QUEUE_DELETE,
                     .u.queue_delete = {.client_id = id, .seq = 1, .msg_id = 1, .size_bytes = 6}});
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM messages"), 1);
    /* Deleting the other session removes its queue and, with it, the last reference. */
    write_rec(f, (struct store_record){.type = STORE_SESSION_DELETE,
                                       .u.session_delete = {.client_id = other}});
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM messages"), 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM queue"), 0);
}

static void ledger_append(struct store_fixture *f, uint64_t index, const char *from, const char *to,
                          uint64_t seq, uint64_t position, const char *link)
{
    char env[64];
    snprintf(env, sizeof(env), "{\"seq\":%llu}", (unsigned long long)seq);
    write_rec(f, (struct store_record){
                     .type = STORE_LEDGER_APPEND,
                     .u.ledger_append = {.index = index,
                                         .sender = {(const uint8_t *)from, 64},
                                         .recipient = {(const uint8_t *)to, 64},
                                         .seq = seq,
                                         .position = position,
                                         .link = {(const uint8_t *)link, 64},
                                         .envelope = {(const uint8_t *)env, strlen(env)},
                                         .created_unix_ms = 1700000000000}});
}

static int collect_positions(void *ctx, const struct store_ledger_row *r)
{
    uint64_t *acc = ctx;
    acc[0]++;
    acc[1] = acc[1] * 10 + r->position;
    return 0;
}

static void test_ledger_rows_counters_and_reads_survive_reopen(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    char link[3][65];
    for (int i = 0; i < 3; i++)
        snprintf(link[i], sizeof(link[i]), "%064d", i + 1);
    /* A sends seq 1 and 2 to B; B sends seq 1 to A. */
    ledger_append(f, 0, ID_A, ID_B, 1, 1, link[0]);
    ledger_append(f, 1, ID_A, ID_B, 2, 2, link[1]);
    ledger_append(f, 2, ID_B, ID_A, 1, 1, link[2]);
    assert_int_equal(store_fixture_commit(f), 0);
    /* A second envelope with an accepted link (a fork the broker should have refused) fails
     * the whole commit: the unique indexes guard the ledger. */
    ledger_append(f, 3, ID_A, ID_B, 3, 3, link[0]);
    assert_int_not_equal(store_fixture_commit(f), 0);
    store_fixture_close(f);
    uint64_t max_msg_id = 0;
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    struct loaded l = load_all(f, &max_msg_id);
    assert_int_equal(l.identities, 2);
    assert_int_equal(l.sent_seq[0], 2);
    assert_int_equal(l.inbox_last[1], 2);
    assert_int_equal(l.sent_seq[1], 1);
    assert_int_equal(l.inbox_last[0], 1);
    uint64_t size = 0;
    assert_int_equal(store_ledger_size(f->store, &size), 0);
    assert_int_equal(size, 3);
    uint64_t acc[2] = {0, 0};
    bool found = false;
    assert_int_equal(store_ledger_find(f->store, BYTES(ID_A), 2, collect_positions, acc, &found),
                     0);
    assert_true(found);
    assert_int_equal(acc[1], 2);
    assert_int_equal(store_ledger_find(f->store, BYTES(ID_A), 3, collect_positions, acc, &found),
                     0);
    assert_false(found);
    size_t count = 0;
    acc[0] = acc[1] = 0;
    assert_int_equal(store_inbox_page(f->store, BYTES(ID_B), 0, 10, collect_positions, acc, &count),
                     0);
    assert_int_equal(count, 2);
    assert_int_equal(acc[1], 12); /* positions 1 then 2, in order */
    acc[0] = acc[1] = 0;
    assert_int_equal(store_inbox_page(f->store, BYTES(ID_B), 1, 10, collect_positions, acc, &count),
                     0);
    assert_int_equal(count, 1);
    assert_int_equal(acc[1], 2);
}

#define ID_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define PARTY_LEDGER_SIZE 300

struct party_acc {
    uint64_t index[PARTY_LEDGER_SIZE];
    size_t n;
    size_t stop_after; /* return non-zero after this many (0: never) */
};

static int collect_index(void *ctx, const struct store_ledger_row *r)
{
    struct party_acc *acc = ctx;
    assert_true(acc->n < PARTY_LEDGER_SIZE);
    acc->index[acc->n++] = r->index;
    return acc->stop_after != 0 && acc->n == acc->stop_after;
}

static int collect_link(void *ctx, uint64_t index, struct lmq_bytes link)
{
    struct party_acc *acc = ctx;
    assert_int_equal(link.len, 64);
    acc->index[acc->n++] = index;
    return 0;
}

/* The ledger range and inbox page reads reuse one prepared statement each: a read that stopped
 * early (limit reached, or row() said stop) must leave it reset, so the next read runs from the
 * start and sees what was committed since, not the snapshot of the read before. */
static void test_cached_ledger_reads_see_later_commits(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    char link[4][65];
    for (int i = 0; i < 4; i++)
        snprintf(link[i], sizeof(link[i]), "%064d", i + 1);
    ledger_append(f, 0, ID_A, ID_B, 1, 1, link[0]);
    ledger_append(f, 1, ID_A, ID_B, 2, 2, link[1]);
    assert_int_equal(store_fixture_commit(f), 0);
    struct party_acc got = {.stop_after = 1};
    size_t count = 0;
    assert_int_equal(store_ledger_range(f->store, 0, 10, collect_index, &got, &count), LMQ_EINVAL);
    assert_int_equal(count, 1);
    uint64_t acc[2] = {0, 0};
    assert_int_equal(store_inbox_page(f->store, BYTES(ID_B), 0, 1, collect_positions, acc, &count),
                     0);
    assert_int_equal(count, 1);
    ledger_append(f, 2, ID_A, ID_B, 3, 3, link[2]);
    ledger_append(f, 3, ID_B, ID_B, 1, 4, link[3]);
    assert_int_equal(store_fixture_commit(f), 0);
    for (int round = 0; round < 2; round++) {
        got = (struct party_acc){0};
        assert_int_equal(store_ledger_range(f->store, 0, 10, collect_index, &got, &count), 0);
        assert_int_equal(count, 4);
        assert_int_equal(got.n, 4);
        assert_int_equal(got.index[0], 0);
        assert_int_equal(got.index[3], 3);
        acc[0] = acc[1] = 0;
        assert_int_equal(
            store_inbox_page(f->store, BYTES(ID_B), 0, 10, collect_positions, acc, &count), 0);
        assert_int_equal(count, 4);
        assert_int_equal(acc[1], 1234); /* positions 1, 2, 3, 4 in order */
    }
    got = (struct party_acc){0};
    assert_int_equal(store_ledger_range(f->store, 2, 1, collect_index, &got, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(got.index[0], 2);
}

/* store_ledger_party_range against a brute-force filter over a ledger where three identities
 * send to each other and to themselves in an irregular pattern: every start, end and limit
 * gives the party's envelopes in index order, each once. */
static void test_ledger_party_range_is_what_a_party_sent_or_received_in_index_order(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    const char *ids[3] = {ID_A, ID_B, ID_C};
    int from[PARTY_LEDGER_SIZE], to[PARTY_LEDGER_SIZE];
    uint64_t seq[3] = {0, 0, 0}, pos[3] = {0, 0, 0};
    uint32_t x = 12345;
    for (int i = 0; i < PARTY_LEDGER_SIZE; i++) {
        x = x * 1103515245u + 12345u;
        from[i] = (int)((x >> 16) % 3);
        to[i] = i % 7 == 0 ? from[i] : (int)((x >> 20) % 3); /* some envelopes to oneself */
        char link[65];
        snprintf(link, sizeof(link), "%064d", i);
        ledger_append(f, (uint64_t)i, ids[from[i]], ids[to[i]], ++seq[from[i]], ++pos[to[i]], link);
    }
    assert_int_equal(store_fixture_commit(f), 0);
    static const uint64_t starts[] = {0, 1, 7, 150, 299, 300, 1000};
    static const uint64_t ends[] = {0, 5, 151, 300, 5000};
    static const size_t limits[] = {1, 3, 1000};
    for (int p = 0; p < 3; p++) {
        for (size_t si = 0; si < LMQ_ARRAY_LEN(starts); si++) {
            for (size_t ei = 0; ei < LMQ_ARRAY_LEN(ends); ei++) {
                for (size_t li = 0; li < LMQ_ARRAY_LEN(limits); li++) {
                    struct party_acc got = {0}, want = {0};
                    for (uint64_t i = starts[si]; i < PARTY_LEDGER_SIZE && i < ends[ei]; i++) {
                        if ((from[i] == p || to[i] == p) && want.n < limits[li])
                            want.index[want.n++] = i;
                    }
                    size_t count = 0;
                    assert_int_equal(store_ledger_party_range(
                                         f->store, (struct lmq_bytes){(const uint8_t *)ids[p], 64},
                                         starts[si], ends[ei], limits[li], collect_index, &got,
                                         &count),
                                     0);
                    assert_int_equal(count, want.n);
                    assert_int_equal(got.n, want.n);
                    assert_memory_equal(got.index, want.index, want.n * sizeof(want.index[0]));
                }
            }
        }
    }
    /* An identity with no envelopes: nothing. A callback that stops: LMQ_EINVAL. */
    struct party_acc got = {0};
    size_t count = 0;
    char nobody[65];
    memset(nobody, 'd', 64);
    assert_int_equal(store_ledger_party_range(f->store,
                                              (struct lmq_bytes){(const uint8_t *)nobody, 64}, 0,
                                              1000, 10, collect_index, &got, &count),
                     0);
    assert_int_equal(count, 0);
    got.stop_after = 2;
    assert_int_equal(
        store_ledger_party_range(f->store, BYTES(ID_A), 0, 1000, 10, collect_index, &got, &count),
        LMQ_EINVAL);
    assert_int_equal(got.n, 2);
    /* The leaves: index and link only, from start, in order. */
    struct party_acc leaves = {0};
    assert_int_equal(store_ledger_links(f->store, 290, 50, collect_link, &leaves, &count), 0);
    assert_int_equal(count, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(leaves.index[i], 290 + i);
}

static void test_update_of_a_row_deleted_in_the_same_commit_is_skipped(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    struct lmq_bytes id = {CLIENT, sizeof(CLIENT) - 1};
    queue_message(f, 1, 1, "sent-and-acked");
    queue_message(f, 2, 2, "sent-only");
    assert_int_equal(store_fixture_commit(f), 0);
    /* Both sent; only the first acknowledged before the next commit. */
    write_rec(f, (struct store_record){.type = STORE_QUEUE_UPDATE,
                                       .u.queue_update = {.client_id = id,
                                                          .seq = 1,
                                                          .state = STORE_QUEUE_WAIT_PUBACK,
                                                          .packet_id = 1}});
    write_rec(f, (struct store_record){.type = STORE_QUEUE_UPDATE,
                                       .u.queue_update = {.client_id = id,
                                                          .seq = 2,
                                                          .state = STORE_QUEUE_WAIT_PUBACK,
                                                          .packet_id = 2}});
    write_rec(f, (struct store_record){
                     .type = STORE_QUEUE_DELETE,
                     .u.queue_delete = {.client_id = id, .seq = 1, .msg_id = 1, .size_bytes = 14}});
    assert_int_equal(store_fixture_commit(f), 0);
    struct store_stats st;
    store_get_stats(f->store, &st);
    assert_int_equal(st.records_skipped, 1);
    struct page p = read_page(f, 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.seqs[0], 2);
    assert_int_equal(p.states[0], STORE_QUEUE_WAIT_PUBACK); /* the other update was applied */
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM messages"), 1);
}

/* store_queue_oldest (queue_overflow drop_oldest): the first committed row after a seq that is
 * still QUEUED; rows in flight are stepped over, uncommitted rows are not seen, a dropped row
 * (deleted with its message) is gone after the commit. */
static void test_queue_oldest_is_the_first_committed_queued_row(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    struct lmq_bytes id = {CLIENT, sizeof(CLIENT) - 1};
    struct store_queue_head h;
    bool found = true;
    assert_int_equal(store_queue_oldest(f->store, id, 0, &h, &found), 0);
    assert_false(found);
    queue_message(f, 1, 1, "in-flight");
    queue_message(f, 2, 2, "queued-a");
    queue_message(f, 3, 3, "queued-b");
    write_rec(f, (struct store_record){.type = STORE_QUEUE_UPDATE,
                                       .u.queue_update = {.client_id = id,
                                                          .seq = 1,
                                                          .state = STORE_QUEUE_WAIT_PUBACK,
                                                          .packet_id = 9}});
    assert_int_equal(store_queue_oldest(f->store, id, 0, &h, &found), 0);
    assert_false(found); /* nothing committed yet */
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(store_queue_oldest(f->store, id, 0, &h, &found), 0);
    assert_true(found);
    assert_int_equal(h.seq, 2);
    assert_int_equal(h.msg_id, 2);
    assert_int_equal(h.size_bytes, strlen("queued-a"));
    assert_int_equal(store_queue_oldest(f->store, id, 2, &h, &found), 0);
    assert_true(found && h.seq == 3);
    assert_int_equal(store_queue_oldest(f->store, (struct lmq_bytes){CLIENT, 3}, 0, &h, &found), 0);
    assert_false(found); /* another client's rows are not this one's */
    write_rec(f, (struct store_record){.type = STORE_QUEUE_DELETE,
                                       .u.queue_delete = {.client_id = id,
                                                          .seq = 2,
                                                          .msg_id = 2,
                                                          .size_bytes = strlen("queued-a")}});
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(store_queue_oldest(f->store, id, 0, &h, &found), 0);
    assert_true(found && h.seq == 3);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM messages WHERE id = 2"), 0);
}

static void test_group_commit_covers_many_batches_with_few_transactions(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    /* Each transaction waits 30 ms before COMMIT, so batches queue up behind it. */
    setenv("LMQ_FAULT_COMMIT_DELAY_MS", "30", 1);
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    unsetenv("LMQ_FAULT_COMMIT_DELAY_MS");
    enum { BATCHES = 50 };
    struct store_fixture_commit_result results[BATCHES] = {0};
    for (int i = 0; i < BATCHES; i++) {
        queue_message(f, (uint64_t)i + 1, (uint64_t)i + 1, "x");
        assert_int_equal(store_commit(f->store, store_fixture_on_commit, &results[i]), 0);
    }
    int done = 0;
    for (int spins = 0; spins < 10000 && done < BATCHES; spins++) {
        uv_run(&f->loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < BATCHES; i++)
            done += results[i].calls;
    }
    assert_int_equal(done, BATCHES);
    for (int i = 0; i < BATCHES; i++)
        assert_int_equal(results[i].status, 0);
    struct store_stats st;
    store_get_stats(f->store, &st);
    assert_int_equal(st.batches, BATCHES);
    assert_true(st.commits < BATCHES); /* at least two batches shared one fsync */
    assert_int_equal(st.records_written, 2 * BATCHES);
    /* Every commit took >= 30 ms: the /metrics buckets have them all at or above le=0.05 s. */
    uint64_t bucketed = 0;
    for (unsigned i = 0; i < STORE_COMMIT_BUCKETS; i++) {
        if (store_commit_bucket_le_us[i] < 30000)
            assert_int_equal(st.commit_le_hist[i], 0);
        bucketed += st.commit_le_hist[i];
    }
    assert_int_equal(bucketed, st.commits);
    assert_true(store_stats_percentile_us(&st, 0.5) >= 30000);
}

/* The store_stats log line once showed p50 = 256 us above max = 199 us: the bucket's upper bound
 * was reported. Estimates stay within [0, max] and in order. */
static void test_commit_percentiles_never_exceed_the_max(void **state)
{
    (void)state;
    struct store_stats st = {0};
    assert_int_equal(store_stats_percentile_us(&st, 0.5), 0); /* no commits */
    /* Ten commits between 128 and 199 us: all in the [128, 256) bucket. */
    st.commits = 10;
    st.commit_us_hist[7] = 10;
    st.commit_us_max = 199;
    uint64_t p50 = store_stats_percentile_us(&st, 0.50);
    uint64_t p99 = store_stats_percentile_us(&st, 0.99);
    assert_true(p50 >= 128 && p50 <= p99 && p99 <= 199);
    /* Spread over buckets: 90 fast (2..3 us), 10 slow (1000..1500 us). */
    st = (struct store_stats){.commits = 100, .commit_us_max = 1500};
    st.commit_us_hist[1] = 90;
    st.commit_us_hist[9] = 10;
    p50 = store_stats_percentile_us(&st, 0.50);
    p99 = store_stats_percentile_us(&st, 0.99);
    assert_true(p50 >= 2 && p50 < 4);
    assert_true(p99 >= 512 && p99 <= 1500);
    uint64_t last = 0;
    for (int i = 0; i <= 100; i++) {
        uint64_t q = store_stats_percentile_us(&st, i / 100.0);
        assert_true(q >= last && q <= st.commit_us_max);
        last = q;
    }
}

static void test_failed_fsync_fails_the_commit_and_nothing_is_stored(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    queue_message(f, 1, 1, "durable");
    assert_int_equal(store_fixture_commit(f), 0);
    store_fixture_close(f);
    /* Reopen with the first fsync failing: the next commit must report failure. */
    setenv("LMQ_FAULT_FAIL_SYNC", "1", 1);
    int rc = open_store(f, err, sizeof(err));
    unsetenv("LMQ_FAULT_FAIL_SYNC");
    assert_int_equal(rc, 0);
    queue_message(f, 2, 2, "lost");
    assert_int_not_equal(store_fixture_commit(f), 0);
    store_fixture_close(f);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM queue"), 1);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM messages WHERE id = 2"), 0);
}

/* A completion with status 0 promises every batch committed before it is durable: once one
 * failed, no later one may report success, even if its own transaction could succeed. */
static void test_no_commit_succeeds_after_a_failed_one(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    char link[65];
    snprintf(link, sizeof(link), "%064d", 1);
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    ledger_append(f, 0, ID_A, ID_B, 1, 1, link);
    assert_int_equal(store_fixture_commit(f), 0);
    /* The same link again: the unique index fails this transaction. */
    ledger_append(f, 1, ID_A, ID_B, 2, 2, link);
    assert_int_not_equal(store_fixture_commit(f), 0);
    queue_message(f, 1, 1, "after"); /* fine on its own */
    assert_int_not_equal(store_fixture_commit(f), 0);
    assert_int_not_equal(store_fixture_commit(f), 0); /* an empty batch too */
    store_fixture_close(f);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM ledger"), 1);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM queue"), 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM messages"), 0);
}

static void test_database_of_schema_1_is_migrated_with_its_data(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, 1, err, sizeof(err)), 0);
    const char *v1_rows =
        "INSERT INTO sessions VALUES(CAST('client-1' AS BLOB), 30);"
        "INSERT INTO messages(id, qos, retain, created_ms, topic, payload, user_prop_count)"
        " VALUES(5, 1, 0, 0, CAST('a/b' AS BLOB), CAST('old' AS BLOB), 0);"
        "INSERT INTO queue VALUES(CAST('client-1' AS BLOB), 1, 5, 1, 0, 0, 0, NULL, 3);"
        "INSERT INTO queue VALUES(CAST('client-1' AS BLOB), 4, 5, 1, 0, 0, 0, NULL, 10);";
    assert_int_equal(sqlite3_exec(db, v1_rows, NULL, NULL, NULL), SQLITE_OK);
    int version = 0;
    assert_int_equal(store_schema_version(db, &version), 0);
    assert_int_equal(version, 1);
    sqlite3_close(db);

    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    uint64_t max_msg_id = 0;
    struct loaded l = load_all(f, &max_msg_id);
    assert_int_equal(l.sessions, 1);
    assert_int_equal(l.expiry_s, 30);
    assert_int_equal(l.summaries, 1);
    assert_int_equal(l.queued, 2);
    assert_int_equal(l.queued_bytes, 13);
    assert_int_equal(l.max_seq, 4);
    assert_int_equal(max_msg_id, 5);
    store_fixture_close(f);
    assert_int_equal(count_rows(f->path, "SELECT max(version) FROM schema_version"),
                     STORE_SCHEMA_VERSION);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM wills"), 0);
}

struct revocations_seen {
    int count;
    int64_t before_a;
};

static int collect_revocation(void *ctx, struct lmq_bytes id, int64_t before_s)
{
    struct revocations_seen *seen = ctx;
    seen->count++;
    if (id.len == 64 && memcmp(id.data, ID_A, 64) == 0)
        seen->before_a = before_s;
    return 0;
}

static int sum_bytes_of_a(void *ctx, struct lmq_bytes sender, uint64_t bytes)
{
    uint64_t *acc = ctx;
    if (sender.len == 64 && memcmp(sender.data, ID_A, 64) == 0)
        acc[0] += bytes;
    acc[1]++;
    return 0;
}

static void store_revoke_rec(struct store_fixture *f, const char *id, int64_t before_s)
{
    write_rec(f, (struct store_record){.type = STORE_TOKEN_REVOKE,
                                       .u.token_revoke = {.identity = {(const uint8_t *)id, 64},
                                                          .revoked_before_s = before_s}});
}

/* Schema 5: revocations are only ever raised (broker and offline writer alike) and survive
 * reopening; the ledger's bytes per sender since a time come from the rows themselves. */
static void test_token_revocations_and_ledger_bytes_since(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    store_revoke_rec(f, ID_A, 2000);
    store_revoke_rec(f, ID_A, 1000); /* an older revocation does not lower it */
    store_revoke_rec(f, ID_B, 10);
    char link[2][65];
    snprintf(link[0], sizeof(link[0]), "%064d", 1);
    snprintf(link[1], sizeof(link[1]), "%064d", 2);
    ledger_append(f, 0, ID_A, ID_B, 1, 1, link[0]); /* {"seq":1}: 9 bytes, at 1700000000000 */
    ledger_append(f, 1, ID_A, ID_B, 2, 2, link[1]);
    assert_int_equal(store_fixture_commit(f), 0);
    struct revocations_seen seen = {0};
    assert_int_equal(store_token_revocations(f->store, collect_revocation, &seen), 0);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.before_a, 2000);
    uint64_t acc[2] = {0, 0};
    assert_int_equal(store_ledger_bytes_since(f->store, 1700000000000, sum_bytes_of_a, acc), 0);
    assert_int_equal(acc[0], 18);
    assert_int_equal(acc[1], 1); /* one sender */
    acc[0] = acc[1] = 0;
    assert_int_equal(store_ledger_bytes_since(f->store, 1700000000001, sum_bytes_of_a, acc), 0);
    assert_int_equal(acc[1], 0); /* nothing that recent */
    /* The offline writer (ledgermq revoke) next to an open store: max wins, in force returned. */
    int64_t stored = 0;
    assert_int_equal(store_token_revoke_file(f->path, BYTES(ID_A), 1500, &stored, err, sizeof(err)),
                     0);
    assert_int_equal(stored, 2000);
    assert_int_equal(store_token_revoke_file(f->path, BYTES(ID_A), 3000, &stored, err, sizeof(err)),
                     0);
    assert_int_equal(stored, 3000);
    store_fixture_close(f);
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    seen = (struct revocations_seen){0};
    assert_int_equal(store_token_revocations(f->store, collect_revocation, &seen), 0);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.before_a, 3000);
    /* A database that does not exist is not created by the offline writer. */
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/none/ledgermq.db", f->dir);
    assert_int_equal(store_token_revoke_file(missing, BYTES(ID_A), 1, &stored, err, sizeof(err)),
                     LMQ_EIO);
    assert_non_null(strstr(err, missing));
}

/* A database of schema 4 gains the revocation table and the ledger time index, rows kept. */
static void test_database_of_schema_4_gets_revocations_and_ledger_time_index(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, 4, err, sizeof(err)), 0);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO ledger VALUES(0, CAST('%064d' AS BLOB), CAST('%s' AS BLOB),"
             " CAST('%s' AS BLOB), 1, 1, CAST('{\"seq\":1}' AS BLOB), 5000);",
             1, ID_A, ID_B);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    uint64_t acc[2] = {0, 0};
    assert_int_equal(store_ledger_bytes_since(f->store, 5000, sum_bytes_of_a, acc), 0);
    assert_int_equal(acc[0], 9);
    struct revocations_seen seen = {0};
    assert_int_equal(store_token_revocations(f->store, collect_revocation, &seen), 0);
    assert_int_equal(seen.count, 0);
    store_fixture_close(f);
    assert_int_equal(count_rows(f->path, "SELECT max(version) FROM schema_version"),
                     STORE_SCHEMA_VERSION);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                         " AND name = 'ledger_by_time'"),
                     1);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM token_revocations"), 0);
}

/* Queue rows whose summary disagrees with the rows themselves (0 when consistent). */
static int64_t summary_mismatches(const char *path)
{
    /* count and bytes exact; seq_max is a high-water mark: at least the largest stored seq. */
    int64_t wrong = count_rows(
        path, "SELECT count(*) FROM (SELECT client_id, count(*) AS c, sum(size_bytes) AS b,"
              " max(seq) AS m FROM queue GROUP BY client_id) g"
              " LEFT JOIN queue_summary s ON s.client_id = g.client_id"
              " WHERE s.count IS NOT g.c OR s.size_bytes IS NOT g.b OR s.seq_max < g.m");
    /* A summary that claims rows no longer there, or negative, or bytes without rows. */
    int64_t stale = count_rows(
        path, "SELECT count(*) FROM queue_summary s WHERE s.count < 0 OR s.size_bytes < 0"
              " OR (s.count = 0 AND s.size_bytes != 0) OR (s.count > 0 AND NOT EXISTS"
              " (SELECT 1 FROM queue q WHERE q.client_id = s.client_id))");
    return wrong + stale;
}

static void test_database_of_schema_2_gets_queue_summaries_from_its_rows(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_schema_migrate_to(db, 2, err, sizeof(err)), 0);
    const char *v2_rows =
        "INSERT INTO sessions VALUES(CAST('client-1' AS BLOB), 30);"
        "INSERT INTO messages(id, qos, retain, created_ms, topic, payload, user_prop_count)"
        " VALUES(5, 1, 0, 0, CAST('a/b' AS BLOB), CAST('old' AS BLOB), 0);"
        "INSERT INTO queue VALUES(CAST('client-1' AS BLOB), 2, 5, 1, 0, 0, 0, NULL, 3);"
        "INSERT INTO queue VALUES(CAST('client-1' AS BLOB), 7, 5, 1, 0, 1, 9, NULL, 4);"
        "INSERT INTO queue VALUES(CAST('client-1' AS BLOB), 5, 5, 1, 0, 0, 0, NULL, 5);"
        "INSERT INTO queue VALUES(CAST('client-2' AS BLOB), 1, 5, 1, 0, 0, 0, NULL, 100);";
    assert_int_equal(sqlite3_exec(db, v2_rows, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    store_fixture_close(f);
    assert_int_equal(count_rows(f->path, "SELECT max(version) FROM schema_version"),
                     STORE_SCHEMA_VERSION);
    /* Version 4: the session keeps its row, with no owner identity. */
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM sessions WHERE owner = x''"), 1);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM queue_summary"), 2);
    assert_int_equal(count_rows(f->path, "SELECT count FROM queue_summary"
                                         " WHERE client_id = CAST('client-1' AS BLOB)"),
                     3);
    assert_int_equal(count_rows(f->path, "SELECT size_bytes FROM queue_summary"
                                         " WHERE client_id = CAST('client-1' AS BLOB)"),
                     12);
    assert_int_equal(count_rows(f->path, "SELECT seq_max FROM queue_summary"
                                         " WHERE client_id = CAST('client-1' AS BLOB)"),
                     7);
    assert_int_equal(summary_mismatches(f->path), 0);

    /* What recovery reads comes from the summaries, for every client that has rows. */
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    uint64_t max_msg_id = 0;
    struct loaded l = load_all(f, &max_msg_id);
    assert_int_equal(l.summaries, 2);
    assert_int_equal(l.queued_total, 4);
    assert_int_equal(l.queued_bytes_total, 112);
}

static void test_sequence_high_water_survives_deleting_the_last_row(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    struct lmq_bytes id = {CLIENT, sizeof(CLIENT) - 1};
    write_rec(f, (struct store_record){.type = STORE_SESSION_PUT,
                                       .u.session_put = {.client_id = id, .expiry_s = 9}});
    queue_message(f, 1, 1, "first");
    queue_message(f, 2, 2, "second");
    assert_int_equal(store_fixture_commit(f), 0);
    /* The newest row goes first (expired, or acknowledged out of order). */
    write_rec(f, (struct store_record){
                     .type = STORE_QUEUE_DELETE,
                     .u.queue_delete = {.client_id = id, .seq = 2, .msg_id = 2, .size_bytes = 6}});
    /* A delete of a row that does not exist changes nothing. */
    write_rec(f,
              (struct store_record){
                  .type = STORE_QUEUE_DELETE,
                  .u.queue_delete = {.client_id = id, .seq = 40, .msg_id = 2, .size_bytes = 99}});
    assert_int_equal(store_fixture_commit(f), 0);
    store_fixture_close(f);
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    uint64_t max_msg_id = 0;
    struct loaded l = load_all(f, &max_msg_id);
    assert_int_equal(l.queued, 1);
    assert_int_equal(l.queued_bytes, 5);
    assert_true(l.max_seq >= 2); /* a new row never reuses a seq */
    /* Emptied: no summary is reported, as before there was one. */
    write_rec(f, (struct store_record){
                     .type = STORE_QUEUE_DELETE,
                     .u.queue_delete = {.client_id = id, .seq = 1, .msg_id = 1, .size_bytes = 5}});
    assert_int_equal(store_fixture_commit(f), 0);
    l = load_all(f, &max_msg_id);
    assert_int_equal(l.summaries, 0);
    assert_int_equal(summary_mismatches(f->path), 0);
}

static int64_t sql_count(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void ended_next(struct store_fixture *f, bool *found, uint64_t *seq_max, uint64_t *rows)
{
    uint8_t id[64];
    size_t len = 0;
    assert_int_equal(
        store_queue_ended_next(f->store, id, sizeof(id), &len, seq_max, 100000, rows, found), 0);
    if (*found)
        assert_memory_equal(id, CLIENT, sizeof(CLIENT) - 1);
}

static void test_ended_session_rows_are_left_to_batched_trims(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    struct lmq_bytes id = {CLIENT, sizeof(CLIENT) - 1};
    const uint64_t rows = STORE_QUEUE_END_INLINE_ROWS + 100;
    write_rec(f, (struct store_record){.type = STORE_SESSION_PUT,
                                       .u.session_put = {.client_id = id, .expiry_s = 9}});
    for (uint64_t i = 1; i <= rows; i++)
        queue_message(f, i, i, "p");
    assert_int_equal(store_fixture_commit(f), 0);
    write_rec(f, (struct store_record){.type = STORE_SESSION_DELETE,
                                       .u.session_delete = {.client_id = id, .defer_queue = true}});
    assert_int_equal(store_fixture_commit(f), 0);
    /* The session and its summary are gone; its rows and messages wait, listed. */
    uint64_t max_msg_id = 0;
    struct loaded l = load_all(f, &max_msg_id);
    assert_int_equal(l.sessions, 0);
    assert_int_equal(l.summaries, 0);
    bool found = false;
    uint64_t seq_max = 0, left = 0;
    ended_next(f, &found, &seq_max, &left);
    assert_true(found);
    assert_int_equal(seq_max, rows);
    assert_int_equal(left, rows);
    /* A later session's row of the same client id (above seq_max) is not the trims'. */
    queue_message(f, rows + 1, rows + 1, "new");
    assert_int_equal(store_fixture_commit(f), 0);
    uint64_t expect_left = rows;
    for (int step = 0; found; step++) {
        assert_true(step < 4); /* 500 + 500 + 100 */
        write_rec(f, (struct store_record){.type = STORE_QUEUE_ENDED_TRIM,
                                           .u.queue_ended_trim = {
                                               .client_id = id, .seq_max = seq_max, .limit = 500}});
        assert_int_equal(store_fixture_commit(f), 0);
        expect_left -= LMQ_MIN(expect_left, 500);
        ended_next(f, &found, &seq_max, &left);
        assert_true(found == (expect_left > 0));
        if (found)
            assert_int_equal(left, expect_left);
    }
    assert_int_equal(sql_count(f->path, "SELECT count(*) FROM queue"), 1);
    assert_int_equal(sql_count(f->path, "SELECT count(*) FROM messages"), 1); /* collected */
    assert_int_equal(sql_count(f->path, "SELECT count(*) FROM queue_ended"), 0);
    /* Without defer_queue (or with a small queue) the rows go with the session. */
    write_rec(f, (struct store_record){.type = STORE_SESSION_DELETE,
                                       .u.session_delete = {.client_id = id, .defer_queue = true}});
    assert_int_equal(store_fixture_commit(f), 0);
    ended_next(f, &found, &seq_max, &left);
    assert_false(found);
    assert_int_equal(sql_count(f->path, "SELECT count(*) FROM queue"), 0);
}

static void append_event(struct store_fixture *f, uint64_t id, int64_t time_ms)
{
    write_rec(f, (struct store_record){.type = STORE_EVENT_APPEND,
                                       .u.event_append = {.id = id,
                                                          .time_ms = time_ms,
                                                          .type = BYTES("test.event"),
                                                          .data = BYTES("{}")}});
}

static void test_events_prune_keeps_dead_letters_and_the_id_sequence(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    for (uint64_t i = 1; i <= 10; i++)
        append_event(f, i, (int64_t)i * 1000);
    write_rec(f, (struct store_record){.type = STORE_CONSUMER_DEAD_PUT,
                                       .u.consumer_dead = {.consumer = BYTES("webhook:x"),
                                                           .event_id = 4,
                                                           .attempts = 1,
                                                           .error = BYTES("down"),
                                                           .time_ms = 1}});
    assert_int_equal(store_fixture_commit(f), 0);
    /* The plan stops at the bound and before the first event not older than before_ms. */
    uint64_t through = 0;
    size_t count = 0;
    assert_int_equal(store_events_prune_plan(f->store, 0, 9, 6500, 100, &through, &count), 0);
    assert_int_equal(through, 6);
    assert_int_equal(count, 6);
    assert_int_equal(store_events_prune_plan(f->store, 0, 9, 99999, 4, &through, &count), 0);
    assert_int_equal(through, 4); /* the limit */
    assert_int_equal(store_events_prune_plan(f->store, 0, 3, 99999, 100, &through, &count), 0);
    assert_int_equal(through, 3); /* the bound */
    write_rec(f, (struct store_record){.type = STORE_EVENTS_PRUNE,
                                       .u.events_prune = {.after = 0, .through = 6}});
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(sql_count(f->path, "SELECT count(*) FROM events WHERE id <= 6"), 1);
    assert_int_equal(sql_count(f->path, "SELECT min(id) FROM events"), 4); /* dead letter's */
    uint64_t mark = 0, last = 0;
    assert_int_equal(store_events_pruned(f->store, &mark), 0);
    assert_int_equal(mark, 6);
    /* Even with every event gone the next id counts on from the mark. */
    write_rec(f, (struct store_record){
                     .type = STORE_CONSUMER_DEAD_DELETE,
                     .u.consumer_dead = {.consumer = BYTES("webhook:x"), .event_id = 4}});
    write_rec(f, (struct store_record){.type = STORE_EVENTS_PRUNE,
                                       .u.events_prune = {.after = 0, .through = 10}});
    assert_int_equal(store_fixture_commit(f), 0);
    assert_int_equal(sql_count(f->path, "SELECT count(*) FROM events"), 0);
    assert_int_equal(store_events_last_id(f->store, &last), 0);
    assert_int_equal(last, 10);
}

/* A model of the queue table for the random test. */
enum { RND_CLIENTS = 4, RND_SEQ_MAX = 1024, RND_COMMITS = 60, RND_OPS_PER_BATCH = 24 };

struct rnd_model {
    uint32_t size[RND_CLIENTS][RND_SEQ_MAX + 1]; /* 0: no row */
    uint64_t next_seq[RND_CLIENTS];
    uint64_t next_msg_id;
    uint32_t state;
};

static uint32_t rnd_next(struct rnd_model *m)
{
    m->state = m->state * 1103515245u + 12345u; /* fixed seed: the run is reproducible */
    return m->state >> 8;
}

static struct lmq_bytes rnd_client(size_t c)
{
    static const char *const names[RND_CLIENTS] = {"c-0", "c-1", "client-two", "c-3"};
    return (struct lmq_bytes){(const uint8_t *)names[c], strlen(names[c])};
}

/* Picks an existing row of client c (or any seq when there is none); 0 when none at all. */
static uint64_t rnd_row(struct rnd_model *m, size_t c)
{
    if (m->next_seq[c] == 0)
        return 0;
    uint64_t start = rnd_next(m) % m->next_seq[c] + 1;
    for (uint64_t i = 0; i < m->next_seq[c]; i++) {
        uint64_t seq = (start + i - 1) % m->next_seq[c] + 1;
        if (m->size[c][seq] != 0)
            return seq;
    }
    return start; /* a row that is not there: its delete must change nothing */
}

static void rnd_op(struct store_fixture *f, struct rnd_model *m)
{
    size_t c = rnd_next(m) % RND_CLIENTS;
    struct lmq_bytes id = rnd_client(c);
    uint32_t op = rnd_next(m) % 100;
    if (op < 50 && m->next_seq[c] < RND_SEQ_MAX) {
        uint64_t seq = ++m->next_seq[c];
        uint32_t size = 1 + rnd_next(m) % 500;
        struct store_message msg = sample_message(++m->next_msg_id, "p");
        write_rec(f, (struct store_record){.type = STORE_MESSAGE_PUT,
                                           .u.message_put = {.message = &msg}});
        write_rec(
            f,
            (struct store_record){
                .type = STORE_QUEUE_PUT,
                .u.queue_put = {
                    .client_id = id, .msg_id = msg.id, .seq = seq, .qos = 1, .size_bytes = size}});
        m->size[c][seq] = size;
    } else if (op < 85) {
        uint64_t seq = rnd_row(m, c);
        if (seq == 0)
            return;
        if (op < 65) /* sent, then acknowledged in the same commit: the update is skipped */
            write_rec(f, (struct store_record){.type = STORE_QUEUE_UPDATE,
                                               .u.queue_update = {.client_id = id,
                                                                  .seq = seq,
                                                                  .state = STORE_QUEUE_WAIT_PUBACK,
                                                                  .packet_id = 3}});
        write_rec(f,
                  (struct store_record){
                      .type = STORE_QUEUE_DELETE,
                      .u.queue_delete = {.client_id = id,
                                         .seq = seq,
                                         .msg_id = m->next_msg_id,
                                         /* a row that is not there: a size that must not count */
                                         .size_bytes = m->size[c][seq] ? m->size[c][seq] : 77}});
        m->size[c][seq] = 0;
    } else if (op < 97) {
        uint64_t seq = rnd_row(m, c);
        if (seq != 0)
            write_rec(f, (struct store_record){.type = STORE_QUEUE_UPDATE,
                                               .u.queue_update = {.client_id = id,
                                                                  .seq = seq,
                                                                  .state = STORE_QUEUE_WAIT_PUBACK,
                                                                  .packet_id = 4}});
    } else {
        /* The session ends: its queue goes. Its seqs restart, as a new session's do. */
        write_rec(f, (struct store_record){.type = STORE_SESSION_DELETE,
                                           .u.session_delete = {.client_id = id}});
        memset(m->size[c], 0, sizeof(m->size[c]));
        m->next_seq[c] = 0;
    }
}

static void test_queue_summaries_match_the_rows_after_random_operations(void **state)
{
    struct store_fixture *f = *state;
    char err[256];
    /* Commits take a little while, so several batches share a transaction. */
    setenv("LMQ_FAULT_COMMIT_DELAY_MS", "2", 1);
    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    unsetenv("LMQ_FAULT_COMMIT_DELAY_MS");
    static struct rnd_model m = {.state = 42};
    for (int commit = 0; commit < RND_COMMITS; commit++) {
        /* Three batches handed over back to back, then waited for. */
        struct store_fixture_commit_result r[3] = {0};
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < RND_OPS_PER_BATCH; i++)
                rnd_op(f, &m);
            assert_int_equal(store_commit(f->store, store_fixture_on_commit, &r[b]), 0);
        }
        for (int spins = 0; spins < 10000 && r[2].calls == 0; spins++)
            uv_run(&f->loop, UV_RUN_ONCE);
        assert_int_equal(r[0].calls + r[1].calls + r[2].calls, 3);
        assert_int_equal(r[0].status | r[1].status | r[2].status, 0);
        assert_int_equal(summary_mismatches(f->path), 0);
    }
    struct store_stats st;
    store_get_stats(f->store, &st);
    assert_true(st.commits < st.batches); /* the group commit path was exercised */
    assert_true(st.records_skipped > 0);  /* so was the skipped update */
    uint64_t rows = 0, bytes = 0;
    for (size_t c = 0; c < RND_CLIENTS; c++) {
        for (size_t seq = 0; seq <= RND_SEQ_MAX; seq++) {
            rows += m.size[c][seq] != 0;
            bytes += m.size[c][seq];
        }
    }
    assert_true(rows > 0);
    assert_int_equal(count_rows(f->path, "SELECT count(*) FROM queue"), (int64_t)rows);
    store_fixture_close(f);

    assert_int_equal(open_store(f, err, sizeof(err)), 0);
    uint64_t max_msg_id = 0;
    struct loaded l = load_all(f, &max_msg_id);
    assert_int_equal(l.queued_total, rows);
    assert_int_equal(l.queued_bytes_total, bytes);
    store_fixture_close(f);

    /* Control: the check does catch a summary that is off by one row. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE queue_summary SET count = count + 1 WHERE client_id ="
                                  " (SELECT client_id FROM queue LIMIT 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(summary_mismatches(f->path), 1);
}

static void test_newer_schema_is_refused_with_a_message(void **state)
{
    struct store_fixture *f = *state;
    char err[256] = "";
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                                  "INSERT INTO schema_version VALUES(99);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_store(f, err, sizeof(err)), LMQ_EIO);
    assert_non_null(strstr(err, "schema version 99"));
    assert_null(f->store);
}

static void test_garbage_file_is_refused_with_a_message(void **state)
{
    struct store_fixture *f = *state;
    char err[256] = "";
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 4096; i++)
        fputc(i * 7 + 3, fp);
    fclose(fp);
    assert_int_equal(open_store(f, err, sizeof(err)), LMQ_EIO);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_everything_written_is_loaded_after_reopen,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_ledger_party_range_is_what_a_party_sent_or_received_in_index_order,
            store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_cached_ledger_reads_see_later_commits,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_rows_counters_and_reads_survive_reopen,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_message_row_freed_with_its_last_reference,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_covers_many_batches_with_few_transactions,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_queue_oldest_is_the_first_committed_queued_row,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_update_of_a_row_deleted_in_the_same_commit_is_skipped,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_failed_fsync_fails_the_commit_and_nothing_is_stored,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_no_commit_succeeds_after_a_failed_one,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_database_of_schema_1_is_migrated_with_its_data,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_database_of_schema_2_gets_queue_summaries_from_its_rows, store_fixture_setup,
            store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ended_session_rows_are_left_to_batched_trims,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_events_prune_keeps_dead_letters_and_the_id_sequence,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_sequence_high_water_survives_deleting_the_last_row,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_queue_summaries_match_the_rows_after_random_operations,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_token_revocations_and_ledger_bytes_since,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_database_of_schema_4_gets_revocations_and_ledger_time_index, store_fixture_setup,
            store_fixture_teardown),
        cmocka_unit_test(test_commit_percentiles_never_exceed_the_max),
        cmocka_unit_test_setup_teardown(test_newer_schema_is_refused_with_a_message,
                                        store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file_is_refused_with_a_message,
                                        store_fixture_setup, store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
