/* libledgermq's receipt checks against a fake server ledger (client_fixture.h): a valid receipt
 * settles the envelope and stores the checkpoint; a growing tree is accepted only with a
 * consistency proof; a tampered receipt, a rewritten history and a changed server key are
 * reported with their own codes and leave the envelope pending. */
#include "client_fixture.h"

static const char other_link[] = "1111111111111111111111111111111111111111111111111111111111111111";

/* Sends one envelope; returns its link in link. */
static void send_one(struct fx *f, char link[LMQ_CLIENT_ID_BYTES])
{
    assert_int_equal(lmq_client_send(f->c, f->peer.id, "t", "{}", link), 0);
}

static uint64_t pending(struct fx *f)
{
    uint64_t n = 0;
    assert_int_equal(lmq_client_pending_count(f->c, &n), 0);
    return n;
}

static void stored_checkpoint(struct fx *f, uint64_t *size)
{
    uint8_t root[LEDGER_MERKLE_HASH_BYTES];
    assert_int_equal(client_db_checkpoint_get(f->c, size, root), 0);
}

static void test_valid_receipt_settles_and_stores_checkpoint(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES], json[FX_ACK_MAX_BYTES];
    uint64_t size = 0;
    fx_open(f, false);
    send_one(f, link);
    fx_connect(f, 0);
    (void)fx_ledger_append(&f->ledger, other_link);
    uint64_t index = fx_ledger_append(&f->ledger, link);
    fx_ledger_ack(f, link, index, 1, 1, json, sizeof(json));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 9), 0);
    assert_int_equal(f->acks, 1);
    assert_true(f->last_ack.receipt_verified);
    assert_int_equal(f->last_ack.receipt_error, 0);
    assert_int_equal(f->last_ack.tree_size, 2);
    assert_int_equal(f->errors, 0);
    assert_int_equal(pending(f), 0);
    assert_int_equal(f->ledger.key_fetches, 1); /* pinned on first use */
    assert_int_equal(f->ledger.consistency_fetches, 0);
    stored_checkpoint(f, &size);
    assert_int_equal(size, 2);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 9);
}

static void test_larger_tree_needs_a_consistency_proof(void **state)
{
    struct fx *f = *state;
    char a[LMQ_CLIENT_ID_BYTES], b[LMQ_CLIENT_ID_BYTES], json[FX_ACK_MAX_BYTES];
    uint64_t size = 0;
    fx_open(f, false);
    send_one(f, a);
    send_one(f, b);
    fx_connect(f, 0);
    uint64_t ia = fx_ledger_append(&f->ledger, a);
    fx_ledger_ack(f, a, ia, 1, 1, json, sizeof(json));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 9), 0);
    for (int i = 0; i < 4; i++) {
        (void)fx_ledger_append(&f->ledger, other_link);
    }
    uint64_t ib = fx_ledger_append(&f->ledger, b);
    fx_ledger_ack(f, b, ib, 2, 2, json, sizeof(json));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 10), 0);
    assert_int_equal(f->ledger.consistency_fetches, 1);
    assert_true(f->last_ack.receipt_verified);
    assert_int_equal(pending(f), 0);
    stored_checkpoint(f, &size);
    assert_int_equal(size, 6);
    /* The proof could not be fetched: not a verdict, the ack is not acknowledged (comes again). */
    char c3[LMQ_CLIENT_ID_BYTES];
    send_one(f, c3);
    fx_ledger_ack(f, c3, fx_ledger_append(&f->ledger, c3), 3, 3, json, sizeof(json));
    f->ledger.unreachable = true;
    size_t pubacks = fx_count(f, MQTT_PUBACK, NULL);
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 11), LMQ_EIO);
    assert_int_equal(fx_count(f, MQTT_PUBACK, NULL), pubacks);
    assert_int_equal(pending(f), 1);
}

static void test_tampered_or_missing_receipt_is_reported_and_stays_pending(void **state)
{
    struct fx *f = *state;
    char link[LMQ_CLIENT_ID_BYTES], json[FX_ACK_MAX_BYTES];
    fx_open(f, false);
    send_one(f, link);
    fx_connect(f, 0);
    (void)fx_ledger_append(&f->ledger, other_link);
    uint64_t index = fx_ledger_append(&f->ledger, link);
    fx_ledger_ack(f, link, index, 1, 1, json, sizeof(json));
    /* Flip one character of the proof's first hash (base64 'A' <-> 'B' keeps it decodable). */
    char *proof = strstr(json, "\"proof\":[\"");
    assert_non_null(proof);
    proof += strlen("\"proof\":[\"");
    *proof = *proof == 'A' ? 'B' : 'A';
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 9), 0);
    assert_int_equal(f->last_error_code, LMQ_CLIENT_E_RECEIPT);
    assert_int_equal(f->acks, 1);
    assert_false(f->last_ack.receipt_verified);
    assert_int_equal(f->last_ack.receipt_error, LMQ_CLIENT_E_RECEIPT);
    assert_int_equal(pending(f), 1);
    assert_int_equal(fx_last(f, MQTT_PUBACK)->packet_id, 9); /* settled: a resend asks again */
    /* An ack without a receipt is no better. */
    char bare[512];
    snprintf(bare, sizeof(bare),
             "{\"index\":%" PRIu64 ",\"link\":\"%s\",\"position\":1,\"seq\":1,\"to\":\"%s\"}",
             index, link, f->peer.id);
    f->errors = 0;
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, bare, 10), 0);
    assert_int_equal(f->errors, 1);
    assert_int_equal(f->last_error_code, LMQ_CLIENT_E_RECEIPT);
    assert_int_equal(pending(f), 1);
    /* Signed by another key than the pinned one. */
    fx_ledger_reset(&f->ledger, true);
    (void)fx_ledger_append(&f->ledger, other_link);
    fx_ledger_ack(f, link, fx_ledger_append(&f->ledger, link), 1, 1, json, sizeof(json));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 11), 0);
    assert_int_equal(f->last_ack.receipt_error, LMQ_CLIENT_E_RECEIPT);
    assert_int_equal(pending(f), 1);
}

static void test_rewritten_history_is_detected_across_restart(void **state)
{
    struct fx *f = *state;
    char a[LMQ_CLIENT_ID_BYTES], b[LMQ_CLIENT_ID_BYTES], json[FX_ACK_MAX_BYTES];
    uint64_t size = 0;
    fx_open(f, false);
    send_one(f, a);
    send_one(f, b);
    fx_connect(f, 0);
    (void)fx_ledger_append(&f->ledger, other_link);
    fx_ledger_ack(f, a, fx_ledger_append(&f->ledger, a), 1, 1, json, sizeof(json));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 9), 0);
    assert_true(f->last_ack.receipt_verified);
    /* The client restarts; the server (same key) drops envelope a and rewrites its history. */
    fx_close(f);
    fx_ledger_reset(&f->ledger, false);
    (void)fx_ledger_append(&f->ledger, other_link);
    (void)fx_ledger_append(&f->ledger, other_link);
    fx_ledger_ack(f, b, fx_ledger_append(&f->ledger, b), 2, 2, json, sizeof(json));
    fx_open(f, false);
    fx_connect(f, 0);
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 10), 0);
    assert_int_equal(f->ledger.consistency_fetches, 1);
    assert_int_equal(f->last_error_code, LMQ_CLIENT_E_HISTORY);
    assert_false(f->last_ack.receipt_verified);
    assert_int_equal(f->last_ack.receipt_error, LMQ_CLIENT_E_HISTORY);
    assert_int_equal(pending(f), 1);
    stored_checkpoint(f, &size);
    assert_int_equal(size, 2); /* the rewritten checkpoint was not accepted */
    /* Same size, another root: no proof needed to see it. */
    fx_ledger_reset(&f->ledger, false);
    (void)fx_ledger_append(&f->ledger, other_link);
    fx_ledger_ack(f, b, fx_ledger_append(&f->ledger, b), 2, 2, json, sizeof(json));
    assert_int_equal(fx_feed(f, CLIENT_TOPIC_ACK, json, 11), 0);
    assert_int_equal(f->ledger.consistency_fetches, 1);
    assert_int_equal(f->last_ack.receipt_error, LMQ_CLIENT_E_HISTORY);
    assert_int_equal(pending(f), 1);
}

static void test_changed_server_key_is_a_distinct_error(void **state)
{
    struct fx *f = *state;
    fx_open(f, false);
    assert_int_equal(client_receipt_key_load(f->c), 0); /* first use: pinned */
    assert_int_equal(f->errors, 0);
    assert_int_equal(client_receipt_key_load(f->c), 0); /* the same again */
    fx_ledger_reset(&f->ledger, true);
    assert_int_equal(client_receipt_key_load(f->c), LMQ_CLIENT_E_KEY);
    assert_int_equal(f->last_error_code, LMQ_CLIENT_E_KEY);
    /* Still refused after a restart: the pin is in the state directory. */
    fx_close(f);
    fx_open(f, false);
    f->errors = 0;
    assert_int_equal(client_receipt_key_load(f->c), LMQ_CLIENT_E_KEY);
    assert_int_equal(f->errors, 1);
    assert_string_equal(lmq_client_strerror(LMQ_CLIENT_E_KEY), "server ledger key changed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_receipt_settles_and_stores_checkpoint, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_larger_tree_needs_a_consistency_proof, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_tampered_or_missing_receipt_is_reported_and_stays_pending, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_history_is_detected_across_restart, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_changed_server_key_is_a_distinct_error, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
