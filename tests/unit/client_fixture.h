/*
 * Shared fixture of the test_client_* programs: a temporary directory with two identities
 * ("me", the client under test, and "peer"), a client opened on it without a network, and a
 * capture of every packet the session logic sends (the c->tx seam).
 */
#ifndef LMQ_TEST_CLIENT_FIXTURE_H
#define LMQ_TEST_CLIENT_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_internal.h"

#define FX_PACKETS_MAX 64
#define FX_DELIVERED_MAX 64
#define FX_PATH_BYTES 512
/* The fake server ledger holds at most this many leaves (2^6: levels 0..6). */
#define FX_LEDGER_LEAVES_MAX 64
#define FX_LEDGER_LEVELS 7
#define FX_LEDGER_NAME "ledger.test/fx"
#define FX_ACK_MAX_BYTES 8192

/* A fake server ledger: its key, its Merkle tree, and what fetch was asked. */
struct fx_ledger {
    uint8_t seed[CRYPTO_ED25519_SEED_BYTES];
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    struct ledger_merkle_frontier frontier;
    uint8_t nodes[FX_LEDGER_LEVELS][FX_LEDGER_LEAVES_MAX][LEDGER_MERKLE_HASH_BYTES];
    size_t key_fetches;
    size_t consistency_fetches;
    bool unreachable; /* fetch answers LMQ_EIO */
};

struct fx_packet {
    uint8_t type;
    uint16_t packet_id;
    char topic[CLIENT_TOPIC_MAX_BYTES];
    char payload[2048];   /* NUL-terminated copy (truncated) */
    uint64_t db_position; /* inbox position stored in the database when this was sent */
};

struct fx {
    char dir[FX_PATH_BYTES / 2];
    char key_me[FX_PATH_BYTES];
    char key_peer[FX_PATH_BYTES];
    char state[FX_PATH_BYTES];
    struct crypto_identity me;
    struct crypto_identity peer;
    struct lmq_client *c;
    struct fx_packet sent[FX_PACKETS_MAX];
    size_t sent_count;
    uint64_t delivered[FX_DELIVERED_MAX]; /* positions handed to on_envelope */
    size_t delivered_count;
    int envelope_answer; /* what on_envelope returns */
    size_t acks;
    struct lmq_ack last_ack;
    char last_ack_link[LMQ_CLIENT_ID_BYTES];
    size_t rejects;
    char last_reject_reason[64];
    size_t errors;
    int last_error_code;
    char last_error[CLIENT_ERR_MAX_BYTES];
    struct fx_ledger ledger;
};

static inline uint64_t fx_db_position(struct fx *f)
{
    char path[FX_PATH_BYTES + 16];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t pos = 0;
    snprintf(path, sizeof(path), "%s/client.db", f->state);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'inbox_position'", -1, &st, NULL),
        SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        pos = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return pos;
}

static inline int fx_tx(struct lmq_client *c, const struct mqtt_packet *pkt)
{
    struct fx *f = c->tx_ctx;
    assert_true(f->sent_count < FX_PACKETS_MAX);
    struct fx_packet *p = &f->sent[f->sent_count++];
    memset(p, 0, sizeof(*p));
    p->type = pkt->type;
    /* The codec must accept everything the session sends. */
    uint8_t buf[CLIENT_PACKET_MAX_BYTES];
    size_t written = 0;
    assert_int_equal(mqtt_encode(pkt, MQTT_V5, buf, sizeof(buf), &written), 0);
    if (pkt->type == MQTT_PUBLISH) {
        const struct mqtt_publish *pub = &pkt->u.publish;
        p->packet_id = pub->packet_id;
        snprintf(p->topic, sizeof(p->topic), "%.*s", (int)pub->topic.len,
                 (const char *)pub->topic.data);
        snprintf(p->payload, sizeof(p->payload), "%.*s", (int)pub->payload.len,
                 (const char *)pub->payload.data);
    } else if (pkt->type == MQTT_PUBACK) {
        p->packet_id = pkt->u.ack.packet_id;
        p->db_position = fx_db_position(f);
    } else if (pkt->type == MQTT_SUBSCRIBE) {
        p->packet_id = pkt->u.subscribe.packet_id;
    }
    return 0;
}

static inline int fx_on_envelope(void *ctx, const struct lmq_inbox_envelope *env)
{
    struct fx *f = ctx;
    assert_string_equal(env->to, f->me.id);
    if (f->envelope_answer != 0) {
        return f->envelope_answer;
    }
    assert_true(f->delivered_count < FX_DELIVERED_MAX);
    f->delivered[f->delivered_count++] = env->position;
    return 0;
}

static inline void fx_on_ack(void *ctx, const struct lmq_ack *ack)
{
    struct fx *f = ctx;
    f->acks++;
    f->last_ack = *ack;
    snprintf(f->last_ack_link, sizeof(f->last_ack_link), "%s", ack->link);
}

static inline void fx_on_reject(void *ctx, const struct lmq_reject *rej)
{
    struct fx *f = ctx;
    f->rejects++;
    snprintf(f->last_reject_reason, sizeof(f->last_reject_reason), "%s", rej->reason);
}

static inline void fx_on_error(void *ctx, int code, const char *message)
{
    struct fx *f = ctx;
    assert_true(code < 0);
    f->errors++;
    f->last_error_code = code;
    snprintf(f->last_error, sizeof(f->last_error), "%s", message);
}

/* --- the fake server ledger ------------------------------------------------------------- */

static inline int fx_ledger_emit(void *ctx, uint32_t level, uint64_t index,
                                 const uint8_t hash[LEDGER_MERKLE_HASH_BYTES])
{
    struct fx_ledger *l = ctx;
    assert_true(level < FX_LEDGER_LEVELS && index < FX_LEDGER_LEAVES_MAX);
    memcpy(l->nodes[level][index], hash, LEDGER_MERKLE_HASH_BYTES);
    return 0;
}

static inline int fx_ledger_get(void *ctx, uint32_t level, uint64_t index,
                                uint8_t out[LEDGER_MERKLE_HASH_BYTES])
{
    struct fx_ledger *l = ctx;
    if (level >= FX_LEDGER_LEVELS || index >= (l->frontier.size >> level)) {
        return LMQ_ENOTFOUND;
    }
    memcpy(out, l->nodes[level][index], LEDGER_MERKLE_HASH_BYTES);
    return 0;
}

/* A new server key and an empty tree (the server "starts over"). */
static inline void fx_ledger_reset(struct fx_ledger *l, bool new_key)
{
    if (new_key) {
        assert_int_equal(crypto_ed25519_generate(l->seed, l->pub), 0);
    }
    memset(&l->frontier, 0, sizeof(l->frontier));
}

/* Appends the leaf of a hex link; returns its index. */
static inline uint64_t fx_ledger_append(struct fx_ledger *l, const char *link_hex)
{
    uint8_t raw[LEDGER_MERKLE_HASH_BYTES], leaf[LEDGER_MERKLE_HASH_BYTES];
    size_t raw_len = 0;
    assert_int_equal(crypto_hex_decode(link_hex, strlen(link_hex), raw, sizeof(raw), &raw_len), 0);
    assert_int_equal(ledger_merkle_leaf_hash(raw, raw_len, leaf), 0);
    uint64_t index = l->frontier.size;
    assert_int_equal(ledger_merkle_append(&l->frontier, leaf, fx_ledger_emit, l), 0);
    return index;
}

/* JSON array of base64 hashes. */
static inline json_t *fx_hashes_json(const uint8_t (*h)[LEDGER_MERKLE_HASH_BYTES], size_t count)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++) {
        char b64[CRYPTO_B64_CHARS(LEDGER_MERKLE_HASH_BYTES) + 1];
        assert_int_equal(crypto_b64_encode(h[i], LEDGER_MERKLE_HASH_BYTES, b64, sizeof(b64)), 0);
        json_array_append_new(arr, json_string(b64));
    }
    return arr;
}

/* The server's ack of our envelope (link at index) with a receipt on the current tree. */
static inline void fx_ledger_ack(struct fx *f, const char *link, uint64_t index, uint64_t seq,
                                 uint64_t position, char *out, size_t cap)
{
    struct fx_ledger *l = &f->ledger;
    struct ledger_merkle_source src = {.get = fx_ledger_get, .ctx = l};
    uint8_t root[LEDGER_MERKLE_HASH_BYTES],
        proof[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
    static char note[4096];
    size_t note_len = 0, count = 0;
    assert_int_equal(ledger_merkle_frontier_root(&l->frontier, root), 0);
    assert_int_equal(ledger_checkpoint_sign(FX_LEDGER_NAME, l->frontier.size, root, FX_LEDGER_NAME,
                                            l->seed, note, sizeof(note), &note_len),
                     0);
    assert_int_equal(ledger_merkle_inclusion_proof(&src, index, l->frontier.size, proof, &count),
                     0);
    json_t *ack = json_pack(
        "{s:I, s:s, s:I, s:{s:s, s:o, s:I}, s:I, s:s}", "index", (json_int_t)index, "link", link,
        "position", (json_int_t)position, "receipt", "checkpoint", note, "proof",
        fx_hashes_json((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])proof, count), "tree_size",
        (json_int_t)l->frontier.size, "seq", (json_int_t)seq, "to", f->peer.id);
    assert_non_null(ack);
    char *text = json_dumps(ack, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(text);
    assert_true(strlen(text) < cap);
    memcpy(out, text, strlen(text) + 1);
    free(text);
    json_decref(ack);
}

/* c->fetch: answers /ledger/key and /ledger/proof/consistency from the fake ledger. */
static inline int fx_fetch(struct lmq_client *c, const char *path, struct lmq_buf *body,
                           unsigned *status_out)
{
    struct fx *f = c->tx_ctx;
    struct fx_ledger *l = &f->ledger;
    json_t *answer = NULL;
    unsigned long long old_size = 0, new_size = 0;
    body->len = 0;
    *status_out = 0;
    if (l->unreachable) {
        return LMQ_EIO;
    }
    if (strcmp(path, "/ledger/key") == 0) {
        char vkey[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1], pub[64];
        size_t len = 0;
        l->key_fetches++;
        assert_int_equal(
            ledger_checkpoint_vkey_format(FX_LEDGER_NAME, l->pub, vkey, sizeof(vkey), &len), 0);
        assert_int_equal(crypto_b64url_encode(l->pub, sizeof(l->pub), pub, sizeof(pub)), 0);
        answer = json_pack("{s:s, s:s, s:s, s:s}", "alg", "Ed25519", "name", FX_LEDGER_NAME, "pub",
                           pub, "vkey", vkey);
    } else if (sscanf(path, "/ledger/proof/consistency?old=%llu&new=%llu", &old_size, &new_size) ==
               2) {
        struct ledger_merkle_source src = {.get = fx_ledger_get, .ctx = l};
        uint8_t proof[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
        size_t count = 0;
        l->consistency_fetches++;
        if (new_size > l->frontier.size ||
            ledger_merkle_consistency_proof(&src, old_size, new_size, proof, &count) != 0) {
            *status_out = 400;
            return LMQ_EPROTO;
        }
        answer = json_pack(
            "{s:I, s:I, s:o}", "new", (json_int_t)new_size, "old", (json_int_t)old_size, "proof",
            fx_hashes_json((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])proof, count));
    } else {
        *status_out = 404;
        return LMQ_EPROTO;
    }
    char *text = json_dumps(answer, JSON_COMPACT);
    assert_int_equal(lmq_buf_append(body, text, strlen(text), CLIENT_HTTP_BODY_MAX_BYTES), 0);
    free(text);
    json_decref(answer);
    *status_out = 200;
    return 0;
}

/* (Re)opens f->c on f->state. */
static inline void fx_open(struct fx *f, bool receive)
{
    char err[256];
    struct lmq_client_options o = {.key_file = f->key_me,
                                   .state_dir = f->state,
                                   .mqtt_host = "127.0.0.1",
                                   .mqtt_port = 1,
                                   .http_host = "127.0.0.1",
                                   .http_port = 1,
                                   .cb = {.ctx = f,
                                          .on_envelope = receive ? fx_on_envelope : NULL,
                                          .on_ack = fx_on_ack,
                                          .on_reject = fx_on_reject,
                                          .on_error = fx_on_error}};
    assert_int_equal(lmq_client_open(&o, &f->c, err, sizeof(err)), 0);
    f->c->tx = fx_tx;
    f->c->tx_ctx = f;
    f->c->fetch = fx_fetch;
}

static inline void fx_close(struct fx *f)
{
    lmq_client_close(f->c);
    f->c = NULL;
}

static inline void fx_identity(const char *path, struct crypto_identity *id)
{
    char err[256];
    assert_int_equal(crypto_ed25519_generate(id->seed, id->pub), 0);
    assert_int_equal(crypto_identity_from_seed(id->seed, id), 0);
    assert_int_equal(crypto_keyfile_save(path, id, false, err, sizeof(err)), 0);
}

static inline int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/lmq-client-test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->key_me, sizeof(f->key_me), "%s/me.json", f->dir);
    snprintf(f->key_peer, sizeof(f->key_peer), "%s/peer.json", f->dir);
    snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
    fx_identity(f->key_me, &f->me);
    fx_identity(f->key_peer, &f->peer);
    fx_ledger_reset(&f->ledger, true);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;
    char cmd[FX_PATH_BYTES + 16];
    if (f->c != NULL) {
        fx_close(f);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Brings the session to READY as a server would: CONNACK (receive maximum rmax, 0: none),
 * then SUBACK granting everything. */
static inline void fx_connect(struct fx *f, uint16_t rmax)
{
    struct mqtt_connack ack = {0};
    if (rmax > 0) {
        ack.props.present = MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
        ack.props.receive_maximum = rmax;
    }
    f->c->state = CLIENT_CONNACK;
    assert_int_equal(client_session_on_connack(f->c, &ack), 0);
    assert_int_equal(f->c->state, CLIENT_SUBACK);
    static const uint8_t granted[4] = {1, 1, 1, 1};
    struct mqtt_packet pkt = {.type = MQTT_SUBACK};
    pkt.u.suback.packet_id = CLIENT_SUBSCRIBE_PID;
    pkt.u.suback.reason_codes = (struct lmq_bytes){granted, sizeof(granted)};
    assert_int_equal(client_session_on_packet(f->c, &pkt), 0);
    assert_int_equal(f->c->state, CLIENT_READY);
}

/* Feeds a QoS 1 PUBLISH on one of our topics. Returns what the session returned. */
static inline int fx_feed(struct fx *f, enum client_topic topic, const char *payload, uint16_t pid)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish.qos = 1;
    pkt.u.publish.packet_id = pid;
    pkt.u.publish.topic =
        (struct lmq_bytes){(const uint8_t *)f->c->topics[topic], strlen(f->c->topics[topic])};
    pkt.u.publish.payload = (struct lmq_bytes){(const uint8_t *)payload, strlen(payload)};
    return client_session_on_packet(f->c, &pkt);
}

/* An inbox message at position from peer to `to`, signed with seed (peer's unless forged), body
 * {"n": position}, index position + 100. */
/* An inbox message at position carrying an envelope of seq (the receiver checks that each
 * sender's seqs grow along its inbox; the prev link is not its business). */
static inline void fx_inbox_msg_seq(uint64_t position, uint64_t seq, const char *to,
                                    const uint8_t *seed, char *out, size_t cap)
{
    struct lmq_buf env = {0};
    const char *reason = NULL;
    json_t *body = json_pack("{s:I}", "n", (json_int_t)position);
    /* Any well-formed link will do as prev beyond seq 1. */
    static const char some_link[] =
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    struct ledger_envelope_draft d = {.to = to,
                                      .seq = seq,
                                      .prev = seq == 1 ? "" : some_link,
                                      .time = "2026-11-25T03:04:05.123456789Z",
                                      .type = "t",
                                      .body = body};
    assert_int_equal(ledger_envelope_build(seed, &d, &env, &reason), 0);
    int n = snprintf(out, cap, "{\"envelope\":%.*s,\"index\":%" PRIu64 ",\"position\":%" PRIu64 "}",
                     (int)env.len, (const char *)env.data, position + 100, position);
    assert_true(n > 0 && (size_t)n < cap);
    lmq_buf_release(&env);
    json_decref(body);
}

/* An inbox message at position from a sender whose chain is at seq = position. */
static inline void fx_inbox_msg(uint64_t position, const char *to, const uint8_t *seed, char *out,
                                size_t cap)
{
    fx_inbox_msg_seq(position, position, to, seed, out, cap);
}

/* Counts captured packets of a type (and topic suffix, when not NULL). */
static inline size_t fx_count(const struct fx *f, uint8_t type, const char *topic_suffix)
{
    size_t n = 0;
    for (size_t i = 0; i < f->sent_count; i++) {
        const char *t = f->sent[i].topic;
        size_t tl = strlen(t), sl = topic_suffix ? strlen(topic_suffix) : 0;
        if (f->sent[i].type == type &&
            (topic_suffix == NULL || (tl >= sl && strcmp(t + tl - sl, topic_suffix) == 0))) {
            n++;
        }
    }
    return n;
}

/* The last captured packet of a type (fails when there is none). */
static inline const struct fx_packet *fx_last(const struct fx *f, uint8_t type)
{
    for (size_t i = f->sent_count; i > 0; i--) {
        if (f->sent[i - 1].type == type) {
            return &f->sent[i - 1];
        }
    }
    fail_msg("no packet of type %u sent", type);
    return NULL;
}

#endif
