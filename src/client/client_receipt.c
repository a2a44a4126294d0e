/*
 * Receipts: every ack of ours carries a checkpoint of the server's Merkle ledger (a C2SP signed
 * note) and the inclusion proof of our envelope in it. Trusting an ack means trusting three
 * things, checked here in this order:
 *   - the checkpoint is signed by the server's ledger key, pinned in client.db the first time
 *     the client saw it (trust on first use; a different key later is LMQ_CLIENT_E_KEY);
 *   - the envelope's leaf, SHA-256(0x00 || link), is at its index in that tree (RFC 9162);
 *   - the tree extends (or is extended by) the latest checkpoint this client verified before,
 *     by a consistency proof fetched from the server: a server that drops or rewrites history
 *     cannot produce one (LMQ_CLIENT_E_HISTORY).
 * The latest verified checkpoint is kept in client.db, so the history check spans restarts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "crypto/hash.h"
#include "ledger/proof_json.h"

#define RECEIPT_PATH_MAX_BYTES 128

struct receipt_parsed {
    const char *note;
    size_t note_len;
    uint64_t tree_size;
    uint8_t proof[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
    size_t proof_count;
};

static int receipt__u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return LMQ_EPROTO;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* /ledger/key's answer: the vkey, and its name and key matching the other members. */
static int receipt__key_parse(const struct lmq_buf *body, char *vkey, size_t vkey_cap,
                              char name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1],
                              uint8_t pub[CRYPTO_ED25519_PUB_BYTES])
{
    uint8_t pub2[CRYPTO_ED25519_PUB_BYTES];
    size_t pub2_len = 0;
    json_t *root = json_loadb((const char *)body->data, body->len, 0, NULL);
    const char *v = json_string_value(json_object_get(root, "vkey"));
    const char *n = json_string_value(json_object_get(root, "name"));
    const char *p = json_string_value(json_object_get(root, "pub"));
    const char *alg = json_string_value(json_object_get(root, "alg"));
    int rc = LMQ_EPROTO;
    LMQ_ASSERT(vkey_cap > LEDGER_CHECKPOINT_VKEY_MAX_BYTES);
    if (v == NULL || n == NULL || p == NULL || alg == NULL || strcmp(alg, "Ed25519") != 0 ||
        strlen(v) > LEDGER_CHECKPOINT_VKEY_MAX_BYTES) {
        goto out;
    }
    rc = ledger_checkpoint_vkey_parse(v, strlen(v), name, pub);
    if (rc == 0 && (strcmp(name, n) != 0 ||
                    crypto_b64url_decode(p, strlen(p), pub2, sizeof(pub2), &pub2_len) != 0 ||
                    pub2_len != sizeof(pub2) || memcmp(pub, pub2, sizeof(pub2)) != 0)) {
        rc = LMQ_EPROTO; /* the members disagree with each other */
    }
    if (rc == 0) {
        memcpy(vkey, v, strlen(v) + 1);
    }
out:
    json_decref(root);
    return rc;
}

int client_receipt_key_load(struct lmq_client *c)
{
    struct lmq_buf body = {0};
    char vkey[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1], pinned[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1];
    char name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    unsigned status = 0;
    LMQ_ASSERT(c != NULL && c->fetch != NULL);
    int rc = c->fetch(c, "/ledger/key", &body, &status);
    rc = rc == 0 ? receipt__key_parse(&body, vkey, sizeof(vkey), name, pub) : rc;
    if (rc == LMQ_EPROTO) {
        client_session_report(c, LMQ_EPROTO, "cannot read the server's ledger key (HTTP %u)",
                              status);
    }
    rc = rc == 0 ? client_db_vkey_pin(c, vkey, pinned, sizeof(pinned)) : rc;
    if (rc == 0) {
        /* The pinned key is in force, whatever the server says now. */
        rc = ledger_checkpoint_vkey_parse(pinned, strlen(pinned), c->ledger_key_name,
                                          c->ledger_key_pub) == 0
                 ? 0
                 : LMQ_EIO;
        c->ledger_key_known = rc == 0;
    }
    if (rc == 0 && strcmp(vkey, pinned) != 0) {
        client_session_report(c, LMQ_CLIENT_E_KEY, "server ledger key %s is not the pinned %s",
                              vkey, pinned);
        rc = LMQ_CLIENT_E_KEY;
    }
    lmq_buf_release(&body);
    LMQ_ASSERT(rc != 0 || c->ledger_key_known);
    return rc;
}

/* The receipt's members; LMQ_EPROTO when any is missing or malformed. */
static int receipt__parse(const json_t *root, struct receipt_parsed *r)
{
    const json_t *receipt = json_object_get(root, "receipt");
    const json_t *note = json_object_get(receipt, "checkpoint");
    memset(r, 0, sizeof(*r));
    r->note = "";
    if (!json_is_string(note) || json_string_length(note) > LEDGER_CHECKPOINT_NOTE_MAX_BYTES) {
        return LMQ_EPROTO;
    }
    r->note = json_string_value(note);
    r->note_len = json_string_length(note);
    if (receipt__u64(receipt, "tree_size", &r->tree_size) != 0) {
        return LMQ_EPROTO;
    }
    return ledger_proof_json_decode(json_object_get(receipt, "proof"), r->proof, &r->proof_count);
}

/* Signature and inclusion. 0, LMQ_CLIENT_E_RECEIPT (why in *why) or LMQ_ENOMEM. */
static int receipt__check(struct lmq_client *c, const struct lmq_ack *ack,
                          const struct receipt_parsed *r, struct ledger_checkpoint *cp,
                          const char **why)
{
    enum ledger_checkpoint_verdict verdict = LEDGER_CHECKPOINT_OK;
    uint8_t raw_link[LEDGER_MERKLE_HASH_BYTES], leaf[LEDGER_MERKLE_HASH_BYTES];
    size_t raw_len = 0;
    LMQ_ASSERT(c->ledger_key_known);
    int rc = ledger_checkpoint_verify(r->note, r->note_len, c->ledger_key_name, c->ledger_key_pub,
                                      cp, &verdict);
    if (rc == LMQ_ENOMEM) {
        return rc;
    }
    if (rc != 0) {
        *why = ledger_checkpoint_verdict_str(verdict);
        return LMQ_CLIENT_E_RECEIPT;
    }
    if (cp->size != r->tree_size || strcmp(cp->origin, c->ledger_key_name) != 0) {
        *why = "checkpoint does not match tree_size or the server's origin";
        return LMQ_CLIENT_E_RECEIPT;
    }
    if (crypto_hex_decode(ack->link, strlen(ack->link), raw_link, sizeof(raw_link), &raw_len) !=
            0 ||
        raw_len != sizeof(raw_link)) {
        *why = "link is not 64 hex digits";
        return LMQ_CLIENT_E_RECEIPT;
    }
    rc = ledger_merkle_leaf_hash(raw_link, sizeof(raw_link), leaf);
    rc = rc == 0
             ? ledger_merkle_verify_inclusion(leaf, ack->index, cp->size,
                                              (const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])r->proof,
                                              r->proof_count, cp->root)
             : rc;
    if (rc == LMQ_EPROTO) {
        *why = "inclusion proof does not lead to the checkpoint's root";
        return LMQ_CLIENT_E_RECEIPT;
    }
    return rc;
}

/* Fetches and checks the consistency proof (old_size, old_root) -> (new_size, new_root).
 * 0, LMQ_CLIENT_E_HISTORY, LMQ_EIO (server unreachable) or LMQ_ENOMEM. */
static int receipt__consistent(struct lmq_client *c, uint64_t old_size,
                               const uint8_t old_root[LEDGER_MERKLE_HASH_BYTES], uint64_t new_size,
                               const uint8_t new_root[LEDGER_MERKLE_HASH_BYTES])
{
    char path[RECEIPT_PATH_MAX_BYTES];
    uint8_t proof[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
    size_t count = 0;
    uint64_t old_got = 0, new_got = 0;
    struct lmq_buf body = {0};
    unsigned status = 0;
    LMQ_ASSERT(old_size < new_size);
    int n = snprintf(path, sizeof(path), "/ledger/proof/consistency?old=%" PRIu64 "&new=%" PRIu64,
                     old_size, new_size);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(path));
    int rc = c->fetch(c, path, &body, &status);
    json_t *root = rc == 0 ? json_loadb((const char *)body.data, body.len, 0, NULL) : NULL;
    if (rc == 0 &&
        (receipt__u64(root, "old", &old_got) != 0 || receipt__u64(root, "new", &new_got) != 0 ||
         old_got != old_size || new_got != new_size ||
         ledger_proof_json_decode(json_object_get(root, "proof"), proof, &count) != 0)) {
        rc = LMQ_EPROTO;
    }
    rc = rc == 0
             ? ledger_merkle_verify_consistency(old_size, new_size, old_root, new_root,
                                                (const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])proof,
                                                count)
             : rc;
    json_decref(root);
    lmq_buf_release(&body);
    /* A server that answers but cannot prove the two trees consistent has rewritten one. */
    return rc == LMQ_EPROTO ? LMQ_CLIENT_E_HISTORY : rc;
}

/* Checks cp against the stored checkpoint and stores it when it is newer. */
static int receipt__history(struct lmq_client *c, const struct ledger_checkpoint *cp,
                            const struct receipt_parsed *r)
{
    uint64_t size = 0;
    uint8_t root[LEDGER_MERKLE_HASH_BYTES];
    int rc = client_db_checkpoint_get(c, &size, root);
    if (rc == LMQ_ENOTFOUND) {
        return client_db_checkpoint_put(c, cp->size, cp->root, r->note, r->note_len);
    }
    if (rc != 0) {
        return rc;
    }
    if (cp->size == size) {
        return memcmp(cp->root, root, sizeof(root)) == 0 ? 0 : LMQ_CLIENT_E_HISTORY;
    }
    if (cp->size < size) {
        return receipt__consistent(c, cp->size, cp->root, size, root); /* an older receipt */
    }
    rc = receipt__consistent(c, size, root, cp->size, cp->root);
    return rc == 0 ? client_db_checkpoint_put(c, cp->size, cp->root, r->note, r->note_len) : rc;
}

int client_receipt_checkpoint_check(struct lmq_client *c)
{
    static struct receipt_parsed r; /* the loop's thread only, like client_receipt_verify */
    static struct ledger_checkpoint cp;
    LMQ_ASSERT(c != NULL && c->fetch != NULL);
    if (!c->ledger_key_known)
        return 0; /* nothing pinned to check with yet */
    struct lmq_buf body = {0};
    unsigned status = 0;
    int rc = c->fetch(c, "/ledger/checkpoint", &body, &status);
    json_t *root = rc == 0 ? json_loadb((const char *)body.data, body.len, 0, NULL) : NULL;
    json_t *note = json_object_get(root, "checkpoint");
    enum ledger_checkpoint_verdict verdict = LEDGER_CHECKPOINT_OK;
    if (rc == 0 && !json_is_string(note)) {
        rc = LMQ_EIO; /* not an answer: asked again on the next connect */
    } else if (rc == 0 && ledger_checkpoint_verify(json_string_value(note),
                                                   json_string_length(note), c->ledger_key_name,
                                                   c->ledger_key_pub, &cp, &verdict) != 0) {
        client_session_report(c, LMQ_CLIENT_E_RECEIPT,
                              "the server's checkpoint does not verify: %s",
                              ledger_checkpoint_verdict_str(verdict));
        rc = LMQ_CLIENT_E_RECEIPT;
    } else if (rc == 0) {
        r.note = json_string_value(note);
        r.note_len = json_string_length(note);
        r.tree_size = cp.size;
        rc = receipt__history(c, &cp, &r);
        if (rc == LMQ_CLIENT_E_HISTORY)
            client_session_report(c, rc,
                                  "ledger history rewritten: the server's checkpoint of %" PRIu64
                                  " entries is not consistent with the one verified before",
                                  cp.size);
    }
    json_decref(root);
    lmq_buf_release(&body);
    return rc;
}

int client_receipt_verify(struct lmq_client *c, const json_t *root, struct lmq_ack *ack)
{
    static struct receipt_parsed r; /* one thread (the loop's); 2 KiB of proof off the stack */
    static struct ledger_checkpoint cp;
    const char *why = "no receipt, or a malformed one";
    LMQ_ASSERT(c != NULL && root != NULL && ack != NULL && ack->link != NULL);
    int rc = receipt__parse(root, &r) == 0 ? 0 : LMQ_CLIENT_E_RECEIPT;
    ack->checkpoint = r.note;
    ack->checkpoint_len = r.note_len;
    ack->tree_size = r.tree_size;
    if (rc == 0 && !c->ledger_key_known) {
        rc = client_receipt_key_load(c);
        rc = rc == LMQ_CLIENT_E_KEY ? 0 : rc; /* reported; the pinned key decides */
        rc = rc == LMQ_EPROTO ? LMQ_EIO : rc; /* no key to check with: ask again later */
    }
    rc = rc == 0 ? receipt__check(c, ack, &r, &cp, &why) : rc;
    if (rc == 0) {
        rc = receipt__history(c, &cp, &r);
        why = "checkpoint inconsistent with the one verified before";
    }
    if (rc == LMQ_CLIENT_E_RECEIPT || rc == LMQ_CLIENT_E_HISTORY) {
        client_session_report(c, rc, "%s for %s (index %" PRIu64 ", tree size %" PRIu64 "): %s",
                              rc == LMQ_CLIENT_E_RECEIPT ? "bad receipt"
                                                         : "ledger history rewritten",
                              ack->link, ack->index, r.tree_size, why);
    }
    ack->receipt_verified = rc == 0;
    ack->receipt_error = rc == LMQ_CLIENT_E_RECEIPT || rc == LMQ_CLIENT_E_HISTORY ? rc : 0;
    return rc;
}
