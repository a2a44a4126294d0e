/*
 * ledgermq verify --seal (docs/PROTOCOL.md "Sealing"): checks a seal as GET /ledger/seals/cover
 * prints it against an Ethereum node, offline from the server: the sealed checkpoint is signed
 * by the server key; the transaction exists on the node's chain (the seal's chain id), is mined
 * and successful with at least N confirmations, was sent by the sealing address to itself, and
 * its calldata is exactly the checkpoint's size, root and origin; with a receipt in the file,
 * the receipt's inclusion proof leads to its checkpoint and the cover's consistency proof leads
 * from that checkpoint to the sealed one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "crypto/encoding.h"
#include "eth/eth_hex.h"
#include "eth/eth_key.h"
#include "eth/eth_rpc.h"
#include "ledger/merkle.h"
#include "ledger/proof_json.h"
#include "seal/seal.h"
#include "verify/verify.h"
#include "verify/verify_internal.h"

#define VERIFY_SEAL_CONFIRMATIONS_DEFAULT 12
#define VERIFY_SEAL_RPC_TIMEOUT_MS 15000

struct verify_seal_args {
    const char *key, *rpc, *address, *confirmations, *file;
};

/* What the node said: four calls in one batch. */
struct verify_seal_node {
    int pending;
    char err[ETH_RPC_MESSAGE_MAX_CHARS + 64];
    uint64_t chain_id, head;
    bool have_tx, have_receipt;
    struct eth_tx_info tx;
    uint8_t input[4096 + SEAL_CALLDATA_FIXED_BYTES];
    size_t input_len;
    bool input_too_long;
    struct eth_receipt receipt;
};

struct verify_seal_call {
    struct verify_seal_node *n;
    int which; /* 0 chain id, 1 head, 2 tx, 3 receipt */
};

static void verify_seal_on_answer(void *ctx, const struct eth_rpc_answer *a)
{
    struct verify_seal_call *c = ctx;
    struct verify_seal_node *n = c->n;
    n->pending--;
    if (a->status == ETH_RPC_NOT_FOUND && c->which >= 2)
        return; /* no such transaction, or not mined */
    if (a->status != ETH_RPC_OK) {
        if (n->err[0] == '\0')
            snprintf(n->err, sizeof(n->err), "%s: %s", eth_rpc_status_name(a->status), a->message);
        return;
    }
    if (c->which == 0)
        n->chain_id = a->quantity;
    else if (c->which == 1)
        n->head = a->quantity;
    else if (c->which == 3)
        n->have_receipt = true, n->receipt = a->receipt;
    else {
        n->have_tx = true;
        n->tx = a->tx;
        n->input_too_long = a->tx.input_len > sizeof(n->input);
        n->input_len = n->input_too_long ? 0 : a->tx.input_len;
        if (n->input_len > 0)
            memcpy(n->input, a->tx.input, n->input_len);
        n->tx.input = NULL;
    }
}

/* Asks the node; VERIFY_EXIT_OK or VERIFY_EXIT_USAGE (said: no node, no answer). */
static int verify_seal_ask(const char *url, const uint8_t hash[32], struct verify_seal_node *n)
{
    uv_loop_t loop;
    struct eth_rpc *rpc = NULL;
    struct eth_rpc_batch *batch = NULL;
    struct verify_seal_call calls[4];
    struct eth_rpc_config cfg = {.url = url, .timeout_ms = VERIFY_SEAL_RPC_TIMEOUT_MS};
    if (uv_loop_init(&loop) != 0)
        return verify_say(VERIFY_EXIT_USAGE, "cannot start an event loop");
    int rc = eth_rpc_create(&loop, &cfg, &rpc);
    if (rc == LMQ_OK)
        rc = eth_rpc_batch_begin(rpc, &batch);
    for (int i = 0; i < 4; i++)
        calls[i] = (struct verify_seal_call){.n = n, .which = i};
    if (rc == LMQ_OK)
        rc = eth_rpc_chain_id(rpc, batch, verify_seal_on_answer, &calls[0]);
    if (rc == LMQ_OK)
        rc = eth_rpc_block_number(rpc, batch, verify_seal_on_answer, &calls[1]);
    if (rc == LMQ_OK)
        rc = eth_rpc_transaction_by_hash(rpc, batch, hash, verify_seal_on_answer, &calls[2]);
    if (rc == LMQ_OK)
        rc = eth_rpc_transaction_receipt(rpc, batch, hash, verify_seal_on_answer, &calls[3]);
    if (rc == LMQ_OK) {
        n->pending = 4;
        rc = eth_rpc_batch_send(batch);
        if (rc != LMQ_OK)
            n->pending = 0;
    } else if (batch != NULL) {
        eth_rpc_batch_discard(batch);
    }
    /* Every call ends with one callback (the deadline bounds it): the loop runs until then. */
    while (rc == LMQ_OK && n->pending > 0 && uv_run(&loop, UV_RUN_ONCE) >= 0)
        ;
    eth_rpc_close(rpc);
    uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
    if (rc != LMQ_OK)
        return verify_say(VERIFY_EXIT_USAGE, "--rpc %s: %s", url, lmq_strerror(rc));
    if (n->err[0] != '\0')
        return verify_say(VERIFY_EXIT_USAGE, "--rpc %s: %s", url, n->err);
    return VERIFY_EXIT_OK;
}

/* The transaction against the sealed checkpoint cp. */
static int verify_seal_tx(const struct verify_seal_node *n, const struct ledger_checkpoint *cp,
                          const uint8_t address[20], uint64_t chain_id, uint64_t want_conf,
                          uint64_t *conf)
{
    uint64_t size = 0;
    uint8_t root[32];
    const uint8_t *origin = NULL;
    size_t origin_len = 0;
    if (n->chain_id != chain_id)
        return verify_say(VERIFY_EXIT_FAILED, "the node is on chain %llu, the seal on chain %llu",
                          (unsigned long long)n->chain_id, (unsigned long long)chain_id);
    if (!n->have_tx)
        return verify_say(VERIFY_EXIT_FAILED, "the node does not know the seal transaction");
    if (!n->tx.mined || !n->have_receipt)
        return verify_say(VERIFY_EXIT_FAILED, "the seal transaction is not mined");
    if (!n->receipt.success || memcmp(n->receipt.block_hash, n->tx.block_hash, 32) != 0)
        return verify_say(VERIFY_EXIT_FAILED, "the seal transaction failed or its block changed");
    *conf = n->head >= n->receipt.block_number ? n->head - n->receipt.block_number + 1 : 0;
    if (*conf < want_conf)
        return verify_say(VERIFY_EXIT_FAILED, "the seal has %llu confirmations, %llu needed",
                          (unsigned long long)*conf, (unsigned long long)want_conf);
    if (memcmp(n->tx.from, address, 20) != 0)
        return verify_say(VERIFY_EXIT_FAILED,
                          "the seal transaction was not sent by the sealing address");
    if (!n->tx.has_to || memcmp(n->tx.to, address, 20) != 0)
        return verify_say(VERIFY_EXIT_FAILED,
                          "the seal transaction is not addressed to the sealing address");
    if (n->input_too_long ||
        seal_calldata_parse(n->input, n->input_len, &size, root, &origin, &origin_len) != LMQ_OK)
        return verify_say(VERIFY_EXIT_FAILED, "the transaction's calldata is not a seal");
    if (size != cp->size || memcmp(root, cp->root, 32) != 0 || origin_len != strlen(cp->origin) ||
        memcmp(origin, cp->origin, origin_len) != 0)
        return verify_say(VERIFY_EXIT_FAILED,
                          "the transaction seals size %llu with another root or origin than the "
                          "checkpoint (size %llu)",
                          (unsigned long long)size, (unsigned long long)cp->size);
    return VERIFY_EXIT_OK;
}

/* JCS parses numbers as doubles: an integer 0..2^53. */
static bool verify_seal_uint(const json_t *j, uint64_t *out)
{
    double d = json_is_number(j) ? json_number_value(j) : -1;
    if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d)
        return false;
    *out = (uint64_t)d;
    return true;
}

/* The receipt (an ack with "receipt") in the file: its inclusion proof, then the cover's
 * consistency proof from its checkpoint to the sealed one. */
static int verify_seal_receipt(const struct verify_key *key, json_t *ack, json_t *cover,
                               const struct ledger_checkpoint *sealed, uint64_t *receipt_size)
{
    json_t *r = json_object_get(ack, "receipt");
    json_t *note = json_object_get(r, "checkpoint");
    const char *link = json_string_value(json_object_get(ack, "link"));
    uint64_t index = 0, old_size = 0;
    uint8_t proof[LEDGER_MERKLE_PROOF_MAX][32], cproof[LEDGER_MERKLE_PROOF_MAX][32];
    uint8_t link_raw[32], leaf[32];
    size_t count = 0, ccount = 0, n = 0;
    struct ledger_checkpoint cp;
    if (link == NULL || !json_is_string(note) ||
        !verify_seal_uint(json_object_get(ack, "index"), &index) ||
        !verify_seal_uint(json_object_get(cover, "old_size"), &old_size) ||
        ledger_proof_json_decode(json_object_get(r, "proof"), proof, &count) != LMQ_OK ||
        ledger_proof_json_decode(json_object_get(cover, "proof"), cproof, &ccount) != LMQ_OK ||
        crypto_hex_decode(link, strlen(link), link_raw, sizeof(link_raw), &n) != LMQ_OK || n != 32)
        return verify_say(VERIFY_EXIT_USAGE, "unusable input: need an ack {link, index, receipt} "
                                             "and the cover {old_size, proof}");
    int code = verify_note(key, json_string_value(note), json_string_length(note),
                           "receipt checkpoint", &cp);
    if (code != VERIFY_EXIT_OK)
        return code;
    *receipt_size = cp.size;
    if (ledger_merkle_leaf_hash(link_raw, 32, leaf) != LMQ_OK ||
        ledger_merkle_verify_inclusion(leaf, index, cp.size, (const uint8_t(*)[32])proof, count,
                                       cp.root) != LMQ_OK)
        return verify_say(VERIFY_EXIT_FAILED, "receipt: the inclusion proof does not lead to the "
                                              "receipt checkpoint's root");
    if (old_size != cp.size)
        return verify_say(VERIFY_EXIT_FAILED,
                          "the cover is for size %llu, the receipt's checkpoint has size %llu",
                          (unsigned long long)old_size, (unsigned long long)cp.size);
    if (cp.size > sealed->size ||
        ledger_merkle_verify_consistency(cp.size, sealed->size, cp.root, sealed->root,
                                         (const uint8_t(*)[32])cproof, ccount) != LMQ_OK)
        return verify_say(VERIFY_EXIT_FAILED,
                          "the receipt's tree (size %llu) is not a prefix of the sealed tree "
                          "(size %llu)",
                          (unsigned long long)cp.size, (unsigned long long)sealed->size);
    return VERIFY_EXIT_OK;
}

static int verify_seal_parse(int argc, char **argv, struct verify_seal_args *a)
{
    static const char *const names[] = {"key", "rpc", "seal-address", "confirmations"};
    const char **slots[] = {&a->key, &a->rpc, &a->address, &a->confirmations};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--seal") == 0)
            continue;
        size_t k = LMQ_ARRAY_LEN(names);
        for (size_t j = 0; j < LMQ_ARRAY_LEN(names) && strncmp(argv[i], "--", 2) == 0; j++) {
            if (strcmp(argv[i] + 2, names[j]) == 0)
                k = j;
        }
        if (k == LMQ_ARRAY_LEN(names) && argv[i][0] != '-' && a->file == NULL) {
            a->file = argv[i];
            continue;
        }
        if (k == LMQ_ARRAY_LEN(names))
            return verify_say(VERIFY_EXIT_USAGE,
                              "unknown argument \"%s\" (see ledgermq verify --help)", argv[i]);
        if (i + 1 >= argc || argv[i + 1][0] == '\0')
            return verify_say(VERIFY_EXIT_USAGE, "%s needs a value", argv[i]);
        *slots[k] = argv[++i];
    }
    if (a->key == NULL || a->rpc == NULL || a->address == NULL || a->file == NULL)
        return verify_say(VERIFY_EXIT_USAGE, "--seal needs --key, --rpc, --seal-address and FILE "
                                             "(see ledgermq verify --help)");
    return VERIFY_EXIT_OK;
}

/* The seal object of the cover: its checkpoint (verified), chain id and transaction hash. */
static int verify_seal_object(const struct verify_key *key, json_t *seal,
                              struct ledger_checkpoint *cp, uint64_t *chain_id, uint8_t hash[32])
{
    json_t *note = json_object_get(seal, "checkpoint");
    const char *tx = json_string_value(json_object_get(seal, "tx_hash"));
    if (!json_is_string(note) || tx == NULL ||
        !verify_seal_uint(json_object_get(seal, "chain_id"), chain_id) ||
        eth_hex_decode_exact(tx, hash, 32) != LMQ_OK)
        return verify_say(VERIFY_EXIT_USAGE, "unusable input: the seal needs checkpoint, chain_id "
                                             "and tx_hash (GET /ledger/seals/cover)");
    return verify_note(key, json_string_value(note), json_string_length(note), "sealed checkpoint",
                       cp);
}

int verify_seal_main(int argc, char **argv)
{
    struct verify_seal_args a = {0};
    struct verify_key key;
    uint8_t address[20], hash[32];
    uint64_t want_conf = VERIFY_SEAL_CONFIRMATIONS_DEFAULT, chain_id = 0, conf = 0, rsize = 0;
    int code = verify_seal_parse(argc, argv, &a);
    if (code == VERIFY_EXIT_OK)
        code = verify_load_key(a.key, &key);
    if (code != VERIFY_EXIT_OK)
        return code;
    char *end = NULL;
    errno = 0;
    if (a.confirmations != NULL) {
        want_conf = strtoull(a.confirmations, &end, 10);
        if (errno != 0 || *end != '\0' || a.confirmations[0] < '0' || a.confirmations[0] > '9')
            return verify_say(VERIFY_EXIT_USAGE, "--confirmations: a whole number");
    }
    if (eth_key_address_parse(a.address, strlen(a.address), address) != LMQ_OK)
        return verify_say(VERIFY_EXIT_USAGE, "--seal-address: not an address (0x + 40 hex)");
    size_t len = 0;
    char *text = NULL;
    json_t *values = NULL;
    code = verify_input(a.file, &text, &len, &values);
    free(text);
    if (code != VERIFY_EXIT_OK)
        return code;
    json_t *cover = values != NULL ? verify_find(values, "seal", true) : NULL;
    json_t *ack = values != NULL ? verify_find(values, "receipt", true) : NULL;
    struct ledger_checkpoint *cp = malloc(sizeof(*cp));
    struct verify_seal_node *n = calloc(1, sizeof(*n));
    if (cp == NULL || n == NULL)
        code = verify_say(VERIFY_EXIT_USAGE, "out of memory");
    else if (cover == NULL)
        code = verify_say(VERIFY_EXIT_USAGE,
                          "%s: unusable input: no \"seal\" (GET "
                          "/ledger/seals/cover)",
                          a.file);
    else
        code = verify_seal_object(&key, json_object_get(cover, "seal"), cp, &chain_id, hash);
    if (code == VERIFY_EXIT_OK && ack != NULL)
        code = verify_seal_receipt(&key, ack, cover, cp, &rsize);
    if (code == VERIFY_EXIT_OK)
        code = verify_seal_ask(a.rpc, hash, n);
    if (code == VERIFY_EXIT_OK)
        code = verify_seal_tx(n, cp, address, chain_id, want_conf, &conf);
    char rs[24] = "null";
    if (ack != NULL)
        snprintf(rs, sizeof(rs), "%llu", (unsigned long long)rsize);
    if (code == VERIFY_EXIT_OK)
        code = verify_say(
            VERIFY_EXIT_OK,
            "{\"ok\":true,\"tree_size\":%llu,\"receipt_size\":%s,"
            "\"block_number\":%llu,\"confirmations\":%llu,\"tx_hash\":\"%s\"}",
            (unsigned long long)cp->size, rs, (unsigned long long)n->receipt.block_number,
            (unsigned long long)conf,
            json_string_value(json_object_get(json_object_get(cover, "seal"), "tx_hash")));
    free(n);
    free(cp);
    json_decref(values);
    return code;
}
