/*
 * ledgermq verify, in four forms (see verify_usage): a checkpoint's signature; a receipt (an
 * ack with its inclusion proof and checkpoint) and optionally the envelope it is for; the
 * consistency of two checkpoints; a database, audited row by row against its Merkle tree.
 */
#include "verify/verify.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "ledger/checkpoint.h"
#include "ledger/envelope.h"
#include "ledger/merkle.h"
#include "ledger/proof_json.h"

/* Largest file read (a checkpoint, a receipt, an envelope, a proof). */
#define VERIFY_FILE_MAX_BYTES (256u * 1024u)

const char verify_usage[] =
    "usage: ledgermq verify --key VKEY --checkpoint FILE\n"
    "       ledgermq verify --key VKEY --receipt FILE [--envelope FILE]\n"
    "       ledgermq verify --key VKEY --old-checkpoint FILE --checkpoint FILE --proof FILE\n"
    "       ledgermq verify --data DIR\n"
    "VKEY is the server's verifier key (GET /ledger/key \"vkey\") or @FILE holding it.\n"
    "A receipt is an ack as received on id/<id>/ack; a proof is the JSON of\n"
    "GET /ledger/proof/consistency. Exit 0: verified; 3: not verified; 1: usage or I/O.\n";

struct verify_args {
    const char *key, *checkpoint, *old_checkpoint, *receipt, *envelope, *proof, *data;
};

__attribute__((format(printf, 2, 3))) static int verify_say(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(code == VERIFY_EXIT_OK ? "" : "ledgermq: verify: ",
          code == VERIFY_EXIT_OK ? stdout : stderr);
    vfprintf(code == VERIFY_EXIT_OK ? stdout : stderr, fmt, ap);
    fputc('\n', code == VERIFY_EXIT_OK ? stdout : stderr);
    va_end(ap);
    return code;
}

/* Reads a whole file (NUL-terminated); NULL with errno set on failure. */
static char *verify_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(VERIFY_FILE_MAX_BYTES + 1);
    size_t n = buf != NULL ? fread(buf, 1, VERIFY_FILE_MAX_BYTES + 1, f) : 0;
    bool bad = buf == NULL || ferror(f) || n > VERIFY_FILE_MAX_BYTES;
    fclose(f);
    if (bad) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct verify_key {
    char name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
};

static int verify_load_key(const char *arg, struct verify_key *key)
{
    size_t len = 0;
    char *text = NULL;
    if (arg[0] == '@') {
        text = verify_read(arg + 1, &len);
        if (text == NULL)
            return verify_say(VERIFY_EXIT_USAGE, "%s: %s", arg + 1, strerror(errno));
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            len--;
    }
    const char *vkey = text != NULL ? text : arg;
    int rc =
        ledger_checkpoint_vkey_parse(vkey, text != NULL ? len : strlen(arg), key->name, key->pub);
    free(text);
    if (rc != LMQ_OK)
        return verify_say(VERIFY_EXIT_USAGE, "--key: not a verifier key (name+keyid+base64)");
    return VERIFY_EXIT_OK;
}

/* Checks a note's signature; fills cp. */
static int verify_note(const struct verify_key *key, const char *note, size_t len, const char *what,
                       struct ledger_checkpoint *cp)
{
    enum ledger_checkpoint_verdict verdict = LEDGER_CHECKPOINT_OK;
    if (ledger_checkpoint_verify(note, len, key->name, key->pub, cp, &verdict) != LMQ_OK)
        return verify_say(VERIFY_EXIT_FAILED, "%s: %s", what,
                          ledger_checkpoint_verdict_str(verdict));
    return VERIFY_EXIT_OK;
}

static int verify_checkpoint_file(const struct verify_key *key, const char *path, const char *what,
                                  struct ledger_checkpoint *cp)
{
    size_t len = 0;
    char *note = verify_read(path, &len);
    if (note == NULL)
        return verify_say(VERIFY_EXIT_USAGE, "%s: %s", path, strerror(errno));
    int rc = verify_note(key, note, len, what, cp);
    free(note);
    return rc;
}

static json_t *verify_json_file(const char *path, int *code)
{
    json_error_t err;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL)
        *code = verify_say(VERIFY_EXIT_USAGE, "%s:%d: %s", path, err.line, err.text);
    return j;
}

/* The envelope the receipt is for: signature, then link. */
static int verify_envelope_file(const char *path, const char *link)
{
    size_t len = 0;
    char *text = verify_read(path, &len);
    if (text == NULL)
        return verify_say(VERIFY_EXIT_USAGE, "%s: %s", path, strerror(errno));
    struct ledger_envelope env;
    const char *reason = NULL;
    char computed[LEDGER_ENVELOPE_LINK_BYTES] = "";
    int rc = ledger_envelope_open((const uint8_t *)text, len, &env, &reason);
    free(text);
    if (rc != LMQ_OK)
        return verify_say(VERIFY_EXIT_FAILED, "envelope: %s", reason ? reason : "invalid");
    rc = ledger_envelope_link(&env, computed);
    ledger_envelope_release(&env);
    if (rc != LMQ_OK || strcmp(computed, link) != 0)
        return verify_say(VERIFY_EXIT_FAILED, "envelope: its link %s is not the receipt's %s",
                          computed, link);
    return VERIFY_EXIT_OK;
}

static int verify_receipt(const struct verify_args *a, const struct verify_key *key)
{
    int code = VERIFY_EXIT_OK;
    json_t *ack = verify_json_file(a->receipt, &code);
    if (ack == NULL)
        return code;
    json_t *r = json_object_get(ack, "receipt");
    const char *link = json_string_value(json_object_get(ack, "link"));
    json_t *index = json_object_get(ack, "index");
    json_t *note = json_object_get(r, "checkpoint");
    uint8_t proof[LEDGER_MERKLE_PROOF_MAX][32], link_raw[32], leaf[32];
    size_t count = 0, n = 0;
    struct ledger_checkpoint cp;
    if (link == NULL || !json_is_integer(index) || !json_is_string(note) ||
        ledger_proof_json_decode(json_object_get(r, "proof"), proof, &count) != LMQ_OK ||
        crypto_hex_decode(link, strlen(link), link_raw, sizeof(link_raw), &n) != LMQ_OK ||
        n != 32) {
        code = verify_say(VERIFY_EXIT_FAILED, "receipt: malformed (need link, index, receipt)");
    } else if ((code = verify_note(key, json_string_value(note), json_string_length(note),
                                   "receipt checkpoint", &cp)) != VERIFY_EXIT_OK) {
    } else if (ledger_merkle_leaf_hash(link_raw, 32, leaf) != LMQ_OK ||
               ledger_merkle_verify_inclusion(leaf, (uint64_t)json_integer_value(index), cp.size,
                                              (const uint8_t(*)[32])proof, count,
                                              cp.root) != LMQ_OK) {
        code = verify_say(VERIFY_EXIT_FAILED,
                          "receipt: the inclusion proof of index %lld does not lead to the "
                          "checkpoint's root (tree size %llu)",
                          (long long)json_integer_value(index), (unsigned long long)cp.size);
    } else if (a->envelope != NULL) {
        code = verify_envelope_file(a->envelope, link);
    }
    if (code == VERIFY_EXIT_OK)
        code = verify_say(VERIFY_EXIT_OK,
                          "{\"ok\":true,\"index\":%lld,\"link\":\"%s\",\"tree_size\":%llu}",
                          (long long)json_integer_value(index), link, (unsigned long long)cp.size);
    json_decref(ack);
    return code;
}

static int verify_consistency(const struct verify_args *a, const struct verify_key *key)
{
    struct ledger_checkpoint old_cp, new_cp;
    int code = verify_checkpoint_file(key, a->old_checkpoint, "old checkpoint", &old_cp);
    if (code == VERIFY_EXIT_OK)
        code = verify_checkpoint_file(key, a->checkpoint, "checkpoint", &new_cp);
    if (code != VERIFY_EXIT_OK)
        return code;
    json_t *p = verify_json_file(a->proof, &code);
    if (p == NULL)
        return code;
    uint8_t proof[LEDGER_MERKLE_PROOF_MAX][32];
    size_t count = 0;
    if (ledger_proof_json_decode(json_object_get(p, "proof"), proof, &count) != LMQ_OK)
        code = verify_say(VERIFY_EXIT_FAILED, "proof: malformed (need {\"proof\":[...]})");
    else if (old_cp.size > new_cp.size ||
             ledger_merkle_verify_consistency(old_cp.size, new_cp.size, old_cp.root, new_cp.root,
                                              (const uint8_t(*)[32])proof, count) != LMQ_OK)
        code = verify_say(VERIFY_EXIT_FAILED,
                          "the tree of size %llu is not a prefix of the tree of size %llu: "
                          "history was rewritten (or the proof is for other sizes)",
                          (unsigned long long)old_cp.size, (unsigned long long)new_cp.size);
    else
        code = verify_say(VERIFY_EXIT_OK, "{\"ok\":true,\"old_size\":%llu,\"new_size\":%llu}",
                          (unsigned long long)old_cp.size, (unsigned long long)new_cp.size);
    json_decref(p);
    return code;
}

int verify_data_dir(const char *dir); /* verify_data.c */

static int verify_parse(int argc, char **argv, struct verify_args *a)
{
    static const char *const names[] = {
        "key", "checkpoint", "old-checkpoint", "receipt", "envelope", "proof", "data"};
    const char **slots[] = {&a->key,     &a->checkpoint, &a->old_checkpoint,
                            &a->receipt, &a->envelope,   &a->proof,
                            &a->data};
    for (int i = 0; i < argc; i += 2) {
        size_t k = LMQ_ARRAY_LEN(names);
        for (size_t j = 0; j < LMQ_ARRAY_LEN(names) && strncmp(argv[i], "--", 2) == 0; j++) {
            if (strcmp(argv[i] + 2, names[j]) == 0)
                k = j;
        }
        if (k == LMQ_ARRAY_LEN(names))
            return verify_say(VERIFY_EXIT_USAGE, "unknown argument \"%s\"\n%s", argv[i],
                              verify_usage);
        if (i + 1 >= argc || argv[i + 1][0] == '\0')
            return verify_say(VERIFY_EXIT_USAGE, "%s needs a value", argv[i]);
        *slots[k] = argv[i + 1];
    }
    return VERIFY_EXIT_OK;
}

int verify_main(int argc, char **argv)
{
    struct verify_args a = {0};
    if (argc == 0 || (argc == 1 && strcmp(argv[0], "--help") == 0)) {
        fputs(verify_usage, argc == 0 ? stderr : stdout);
        return argc == 0 ? VERIFY_EXIT_USAGE : VERIFY_EXIT_OK;
    }
    int code = verify_parse(argc, argv, &a);
    if (code != VERIFY_EXIT_OK)
        return code;
    if (a.data != NULL)
        return a.key || a.checkpoint || a.receipt
                   ? verify_say(VERIFY_EXIT_USAGE, "--data stands alone")
                   : verify_data_dir(a.data);
    if (a.key == NULL)
        return verify_say(VERIFY_EXIT_USAGE, "--key is required\n%s", verify_usage);
    struct verify_key key;
    code = verify_load_key(a.key, &key);
    if (code != VERIFY_EXIT_OK)
        return code;
    if (a.receipt != NULL)
        return verify_receipt(&a, &key);
    if (a.old_checkpoint != NULL && a.checkpoint != NULL && a.proof != NULL)
        return verify_consistency(&a, &key);
    if (a.checkpoint != NULL && a.old_checkpoint == NULL && a.proof == NULL) {
        struct ledger_checkpoint cp;
        code = verify_checkpoint_file(&key, a.checkpoint, "checkpoint", &cp);
        if (code == VERIFY_EXIT_OK) {
            char root[48];
            if (crypto_b64_encode(cp.root, 32, root, sizeof(root)) != LMQ_OK)
                return VERIFY_EXIT_USAGE;
            code = verify_say(VERIFY_EXIT_OK,
                              "{\"ok\":true,\"origin\":\"%s\",\"root\":\"%s\",\"size\":%llu}",
                              cp.origin, root, (unsigned long long)cp.size);
        }
        return code;
    }
    return verify_say(VERIFY_EXIT_USAGE, "which check? see the usage\n%s", verify_usage);
}
