/*
 * The commit seam (src/broker/commit.c, docs/ARCHITECTURE.md "The commit seam") against a real
 * SQLite store in a temporary directory: hooks run in registration order; before_commit runs
 * while the batch is still open, so what it writes is in the same commit; on_durable runs once
 * per batch, in batch order, after the batch's messages are committed and when what the batch
 * wrote can be read back; batch_free runs last and must release the hook's slot; at shutdown
 * (no store) a batch gets only batch_free; registering past COMMIT_HOOKS_MAX fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_internal.h"

#define EVENTS_MAX 64

/* What the hooks saw, in order. */
struct seam_event {
    char what; /* 'b' before_commit, 'd' on_durable, 'f' batch_free */
    int hook;  /* 0 or 1 */
    uint64_t seq;
    bool msg_committed;   /* on_durable: the message deferred in the batch was committed */
    bool revoke_readable; /* on_durable: the record before_commit wrote reads back */
};

struct seam {
    struct broker b;
    char dir[64];
    size_t slot[2];
    struct seam_event events[EVENTS_MAX];
    size_t event_count;
    struct msg *msg;          /* deferred in the current batch (committed once durable) */
    int64_t revoked_before_s; /* what store_token_revocations read back */
};

static struct seam *the_seam;

static void seam_note(int hook, char what, uint64_t seq)
{
    struct seam *t = the_seam;
    assert_true(t->event_count < EVENTS_MAX);
    t->events[t->event_count++] = (struct seam_event){.what = what, .hook = hook, .seq = seq};
}

static const char seam_identity[] =
    "0000000000000000000000000000000000000000000000000000000000000001";

static int seam_revocation_row(void *ctx, struct lmq_bytes id, int64_t before_s)
{
    struct seam *t = ctx;
    if (id.len == strlen(seam_identity) && memcmp(id.data, seam_identity, id.len) == 0)
        t->revoked_before_s = before_s;
    return 0;
}

/* Hook 0 writes a record in before_commit and keeps per-batch state in its slot. */
static void hook0_before(void *ctx, uint64_t seq, void **data)
{
    struct seam *t = ctx;
    seam_note(0, 'b', seq);
    assert_non_null(t->b.batch); /* still the open batch */
    assert_null(*data);
    *data = malloc(8);
    assert_non_null(*data);
    struct store_record rec = {
        .type = STORE_TOKEN_REVOKE,
        .u.token_revoke = {.identity = {(const uint8_t *)seam_identity, strlen(seam_identity)},
                           .revoked_before_s = (int64_t)seq * 100}};
    commit_store_write(&t->b, &rec);
    assert_int_equal(commit_batch_seq(&t->b), seq); /* it joined this batch, not a new one */
}

static void hook0_durable(void *ctx, uint64_t seq, void **data)
{
    struct seam *t = ctx;
    assert_non_null(*data);
    seam_note(0, 'd', seq);
    struct seam_event *e = &t->events[t->event_count - 1];
    e->msg_committed = t->msg != NULL && t->msg->committed;
    t->revoked_before_s = 0;
    assert_int_equal(store_token_revocations(t->b.store, seam_revocation_row, t), LMQ_OK);
    e->revoke_readable = t->revoked_before_s == (int64_t)seq * 100;
}

static void hook0_free(void *ctx, uint64_t seq, void **data)
{
    LMQ_UNUSED(ctx);
    seam_note(0, 'f', seq);
    free(*data);
    *data = NULL;
}

static void hook1_before(void *ctx, uint64_t seq, void **data)
{
    LMQ_UNUSED(ctx);
    LMQ_UNUSED(data);
    seam_note(1, 'b', seq);
}

static void hook1_durable(void *ctx, uint64_t seq, void **data)
{
    LMQ_UNUSED(ctx);
    LMQ_UNUSED(data);
    seam_note(1, 'd', seq);
}

static void hook1_free(void *ctx, uint64_t seq, void **data)
{
    LMQ_UNUSED(ctx);
    LMQ_UNUSED(data);
    seam_note(1, 'f', seq);
}

static const struct commit_hook hook0 = {.name = "test0",
                                         .before_commit = hook0_before,
                                         .on_durable = hook0_durable,
                                         .batch_free = hook0_free};
static const struct commit_hook hook1 = {.name = "test1",
                                         .before_commit = hook1_before,
                                         .on_durable = hook1_durable,
                                         .batch_free = hook1_free};

static struct seam *seam_start(bool with_store)
{
    struct seam *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    the_seam = t;
    struct lmq_config cfg;
    lmq_config_defaults(&cfg);
    assert_int_equal(broker_init_for_test(&t->b, &cfg), LMQ_OK);
    snprintf(t->dir, sizeof(t->dir), "/tmp/lmq-commit-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->b.cfg.data_dir, sizeof(t->b.cfg.data_dir), "%s", t->dir); /* disk check */
    if (with_store) {
        char path[128], err[256];
        snprintf(path, sizeof(path), "%s/ledgermq.db", t->dir);
        struct store_options opts = {.path = path, .sync = STORE_SYNC_OFF};
        assert_int_equal(store_open(&t->b.loop, &opts, &t->b.store, err, sizeof(err)), LMQ_OK);
    }
    assert_int_equal(commit_hook_register(&t->b, &hook0, t, &t->slot[0]), LMQ_OK);
    assert_int_equal(commit_hook_register(&t->b, &hook1, t, &t->slot[1]), LMQ_OK);
    assert_int_equal(t->slot[0], 0);
    assert_int_equal(t->slot[1], 1);
    return t;
}

/* Runs the loop until every commit handed to the store has completed. */
static void seam_wait(struct seam *t)
{
    for (int i = 0; i < 10000 && store_pending(t->b.store) > 0; i++)
        uv_run(&t->b.loop, UV_RUN_ONCE);
    assert_int_equal(store_pending(t->b.store), 0);
}

static void seam_end(struct seam *t)
{
    if (t->b.store != NULL) {
        struct store *store = t->b.store;
        t->b.store = NULL;
        store_close(store);
    }
    for (int i = 0; i < 100 && uv_run(&t->b.loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    t->b.commit_hook_count = 0; /* broker_destroy_for_test expects a broker without hooks */
    broker_destroy_for_test(&t->b);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    assert_int_equal(system(cmd), 0);
    the_seam = NULL;
    free(t);
}

/* One loop turn's worth of work: a message deferred to the batch, then the turn's end. */
static uint64_t seam_turn(struct seam *t)
{
    struct mqtt_publish pub = {.qos = 1, .topic = {(const uint8_t *)"a/b", 3}};
    t->msg = msg_create(&t->b, &pub);
    assert_non_null(t->msg);
    assert_false(t->msg->committed);
    assert_int_equal(commit_defer_msg(&t->b, t->msg), LMQ_OK);
    uint64_t seq = commit_batch_seq(&t->b);
    commit_turn_end(&t->b);
    assert_null(t->b.batch); /* handed to the store */
    return seq;
}

static void test_hooks_run_in_order_and_after_durable(void **state)
{
    LMQ_UNUSED(state);
    struct seam *t = seam_start(true);
    uint64_t seq = seam_turn(t);
    /* Before the commit completes: both before_commit, in order, nothing else. */
    assert_int_equal(t->event_count, 2);
    assert_true(t->events[0].what == 'b' && t->events[0].hook == 0 && t->events[0].seq == seq);
    assert_true(t->events[1].what == 'b' && t->events[1].hook == 1 && t->events[1].seq == seq);
    assert_false(t->msg->committed);
    seam_wait(t);
    const char order[] = {'b', 'b', 'd', 'd', 'f', 'f'};
    const int hooks[] = {0, 1, 0, 1, 0, 1};
    assert_int_equal(t->event_count, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(t->events[i].what, order[i]);
        assert_int_equal(t->events[i].hook, hooks[i]);
        assert_int_equal(t->events[i].seq, seq);
    }
    /* on_durable: the batch's message is committed, and the record the hook added in
     * before_commit is durable (the store's reader sees committed data only). */
    assert_true(t->events[2].msg_committed);
    assert_true(t->events[2].revoke_readable);
    assert_true(t->msg->committed);
    msg_unref(t->msg);
    seam_end(t);
}

static void test_batches_complete_in_order(void **state)
{
    LMQ_UNUSED(state);
    struct seam *t = seam_start(true);
    uint64_t seq1 = seam_turn(t);
    struct msg *first = t->msg;
    uint64_t seq2 = seam_turn(t);
    assert_true(seq2 == seq1 + 1);
    seam_wait(t);
    uint64_t durable[2];
    size_t n = 0;
    for (size_t i = 0; i < t->event_count; i++) {
        if (t->events[i].what == 'd' && t->events[i].hook == 0) {
            assert_true(n < 2);
            durable[n++] = t->events[i].seq;
        }
    }
    assert_int_equal(n, 2);
    assert_int_equal(durable[0], seq1);
    assert_int_equal(durable[1], seq2);
    assert_int_equal(t->b.committed_seq, seq2);
    msg_unref(first);
    msg_unref(t->msg);
    seam_end(t);
}

static void test_shutdown_batch_gets_only_batch_free(void **state)
{
    LMQ_UNUSED(state);
    struct seam *t = seam_start(false); /* no store: as after shutdown detached it */
    struct mqtt_publish pub = {.qos = 1, .topic = {(const uint8_t *)"a/b", 3}};
    t->msg = msg_create(&t->b, &pub);
    assert_non_null(t->msg);
    assert_int_equal(commit_defer_msg(&t->b, t->msg), LMQ_OK);
    commit_turn_end(&t->b);
    assert_null(t->b.batch);
    assert_int_equal(t->event_count, 2);
    assert_true(t->events[0].what == 'f' && t->events[0].hook == 0);
    assert_true(t->events[1].what == 'f' && t->events[1].hook == 1);
    msg_unref(t->msg);
    seam_end(t);
}

static void test_too_many_hooks_refused(void **state)
{
    LMQ_UNUSED(state);
    struct seam *t = seam_start(false);
    size_t slot = 0;
    for (size_t i = 2; i < COMMIT_HOOKS_MAX; i++)
        assert_int_equal(commit_hook_register(&t->b, &hook1, t, &slot), LMQ_OK);
    assert_int_equal(slot, COMMIT_HOOKS_MAX - 1);
    assert_int_equal(commit_hook_register(&t->b, &hook1, t, &slot), LMQ_ELIMIT);
    assert_int_equal(t->b.commit_hook_count, COMMIT_HOOKS_MAX);
    seam_end(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_run_in_order_and_after_durable),
        cmocka_unit_test(test_batches_complete_in_order),
        cmocka_unit_test(test_shutdown_batch_gets_only_batch_free),
        cmocka_unit_test(test_too_many_hooks_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
