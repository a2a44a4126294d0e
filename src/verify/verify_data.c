/*
 * ledgermq verify --data DIR: audits a server's database without trusting it. Every ledger row
 * must hold a validly signed envelope whose link is the row's link, at consecutive indexes;
 * each sender's chain must continue (seq +1, prev = previous link) and each recipient's inbox
 * positions must be consecutive; the Merkle tree rebuilt from the links must equal every stored
 * node. The first disagreement is reported by row and exits 3.
 */
#include "verify/verify.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "crypto/encoding.h"
#include "ledger/envelope.h"
#include "ledger/merkle.h"

struct verify_party {
    uint64_t last_seq;
    char last_link[LEDGER_ENVELOPE_LINK_BYTES];
    uint64_t last_position;
};

struct verify_audit {
    sqlite3 *db;
    sqlite3_stmt *node;
    struct lmq_map *parties; /* id -> struct verify_party */
    struct ledger_merkle_frontier tree;
    uint64_t nodes_checked;
    char failure[512];
};

static struct verify_party *verify_party(struct verify_audit *au, const char *id)
{
    struct verify_party *p = lmq_map_get(au->parties, (const uint8_t *)id, 64);
    if (p == NULL && (p = calloc(1, sizeof(*p))) != NULL &&
        lmq_map_put(au->parties, (const uint8_t *)id, 64, p) != LMQ_OK) {
        free(p);
        p = NULL;
    }
    return p;
}

/* Emitted by the rebuilt tree: the stored node must be the same. */
static int verify_node(void *ctx, uint32_t level, uint64_t index, const uint8_t hash[32])
{
    struct verify_audit *au = ctx;
    sqlite3_bind_int64(au->node, 1, level);
    sqlite3_bind_int64(au->node, 2, (int64_t)index);
    int rc = sqlite3_step(au->node);
    bool same = rc == SQLITE_ROW && sqlite3_column_bytes(au->node, 0) == 32 &&
                memcmp(sqlite3_column_blob(au->node, 0), hash, 32) == 0;
    sqlite3_reset(au->node);
    if (!same) {
        snprintf(au->failure, sizeof(au->failure),
                 "stored Merkle node (level %u, index %" PRIu64 ") %s the one rebuilt from the "
                 "ledger's links",
                 level, index, rc == SQLITE_ROW ? "differs from" : "is missing; expected");
        return LMQ_EPROTO;
    }
    au->nodes_checked++;
    return LMQ_OK;
}

/* One ledger row: envelope, link, chain, inbox position, tree. */
static int verify_row(struct verify_audit *au, sqlite3_stmt *st, uint64_t expected_index)
{
    uint64_t index = (uint64_t)sqlite3_column_int64(st, 0);
    const char *link = (const char *)sqlite3_column_text(st, 1);
    const uint8_t *envelope = sqlite3_column_blob(st, 2);
    size_t envelope_len = (size_t)sqlite3_column_bytes(st, 2);
    uint64_t position = (uint64_t)sqlite3_column_int64(st, 3);
    char *f = au->failure;
    size_t fl = sizeof(au->failure);
    if (index != expected_index)
        return snprintf(f, fl, "ledger index %" PRIu64 " follows %" PRIu64 ": a gap", index,
                        expected_index - 1),
               LMQ_EPROTO;
    struct ledger_envelope env;
    const char *reason = NULL;
    char computed[LEDGER_ENVELOPE_LINK_BYTES] = "";
    if (ledger_envelope_open(envelope, envelope_len, &env, &reason) != LMQ_OK)
        return snprintf(f, fl, "ledger index %" PRIu64 ": envelope %s", index, reason), LMQ_EPROTO;
    int rc = ledger_envelope_link(&env, computed);
    struct verify_party *from = verify_party(au, env.from), *to = verify_party(au, env.to);
    if (rc != LMQ_OK || link == NULL || strcmp(computed, link) != 0)
        snprintf(f, fl, "ledger index %" PRIu64 ": the envelope's link is %s, the row says %s",
                 index, computed, link ? link : "nothing");
    else if (from == NULL || to == NULL)
        snprintf(f, fl, "out of memory");
    else if (env.seq != from->last_seq + 1 || strcmp(env.prev, from->last_link) != 0)
        snprintf(f, fl,
                 "ledger index %" PRIu64 ": seq %" PRIu64 " does not continue its "
                 "sender's chain (last seq %" PRIu64 ")",
                 index, env.seq, from->last_seq);
    else if (position != to->last_position + 1)
        snprintf(f, fl, "ledger index %" PRIu64 ": inbox position %" PRIu64 " after %" PRIu64,
                 index, position, to->last_position);
    ledger_envelope_release(&env);
    if (f[0] != '\0')
        return LMQ_EPROTO;
    from->last_seq++;
    memcpy(from->last_link, computed, sizeof(from->last_link));
    to->last_position = position;
    uint8_t raw[32], leaf[32];
    size_t n = 0;
    rc = crypto_hex_decode(computed, 64, raw, sizeof(raw), &n);
    if (rc == LMQ_OK)
        rc = ledger_merkle_leaf_hash(raw, sizeof(raw), leaf);
    if (rc == LMQ_OK)
        rc = ledger_merkle_append(&au->tree, leaf, verify_node, au);
    return rc;
}

static bool verify_free_party(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg), LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    free(value);
    return true;
}

int verify_data_dir(const char *dir)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/ledgermq.db", dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return fprintf(stderr, "ledgermq: verify: data directory path too long\n"),
               VERIFY_EXIT_USAGE;
    struct verify_audit au = {0};
    sqlite3_stmt *rows = NULL;
    int code = VERIFY_EXIT_USAGE;
    if (sqlite3_open_v2(path, &au.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        lmq_map_create(&au.parties) != LMQ_OK ||
        sqlite3_prepare_v2(au.db, "SELECT idx, link, envelope, position FROM ledger ORDER BY idx",
                           -1, &rows, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(au.db, "SELECT hash FROM ledger_nodes WHERE level = ?1 AND idx = ?2", -1,
                           &au.node, NULL) != SQLITE_OK) {
        fprintf(stderr, "ledgermq: verify: %s: %s\n", path,
                au.db ? sqlite3_errmsg(au.db) : "cannot open");
        goto out;
    }
    int rc = SQLITE_ROW;
    uint64_t expected = 0;
    while ((rc = sqlite3_step(rows)) == SQLITE_ROW) {
        if (verify_row(&au, rows, expected++) != LMQ_OK) {
            fprintf(stderr, "ledgermq: verify: %s\n", au.failure[0] ? au.failure : "out of memory");
            code = VERIFY_EXIT_FAILED;
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "ledgermq: verify: %s: %s\n", path, sqlite3_errmsg(au.db));
        goto out;
    }
    sqlite3_stmt *extra = NULL;
    int64_t stored_nodes = -1;
    if (sqlite3_prepare_v2(au.db, "SELECT count(*) FROM ledger_nodes", -1, &extra, NULL) ==
            SQLITE_OK &&
        sqlite3_step(extra) == SQLITE_ROW)
        stored_nodes = sqlite3_column_int64(extra, 0);
    sqlite3_finalize(extra);
    if (stored_nodes != (int64_t)au.nodes_checked) {
        fprintf(stderr,
                "ledgermq: verify: %lld Merkle nodes stored, %" PRIu64 " rebuilt from the ledger\n",
                (long long)stored_nodes, au.nodes_checked);
        code = VERIFY_EXIT_FAILED;
        goto out;
    }
    uint8_t root[32];
    char root_b64[48];
    if (ledger_merkle_frontier_root(&au.tree, root) != LMQ_OK ||
        crypto_b64_encode(root, 32, root_b64, sizeof(root_b64)) != LMQ_OK)
        goto out;
    printf("{\"ok\":true,\"entries\":%" PRIu64 ",\"nodes\":%" PRIu64 ",\"root\":\"%s\"}\n",
           au.tree.size, au.nodes_checked, root_b64);
    code = VERIFY_EXIT_OK;
out:
    sqlite3_finalize(rows);
    sqlite3_finalize(au.node);
    sqlite3_close(au.db);
    if (au.parties != NULL) {
        lmq_map_visit(au.parties, verify_free_party, NULL);
        lmq_map_destroy(au.parties);
    }
    return code;
}
