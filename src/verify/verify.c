/*
 * ledgermq verify, in four forms (see verify_usage): a checkpoint's signature; a receipt (an
 * ack with its inclusion proof and checkpoint) and optionally the envelope it is for; the
 * consistency of two checkpoints; a database, audited row by row against its Merkle tree.
 */
#include "verify/verify.h"
#include "verify/verify_internal.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/encoding.h"
#include "crypto/jcs.h"
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
    "       ledgermq verify --seal --key VKEY --rpc URL --seal-address 0x... [--confirmations N]\n"
    "                       FILE\n"
    "       ledgermq verify --notification FILE --rpc URL\n"
    "\n"
    "Checks what a LedgerMQ server said, offline, with its public key only: a checkpoint's\n"
    "signature; a receipt (and the envelope it is for); the consistency of two checkpoints;\n"
    "or a whole data directory's database against its Merkle tree.\n"
    "\n"
    "options:\n"
    "  --key VKEY              the server's verifier key (GET /ledger/key \"vkey\") or @FILE\n"
    "                          holding it\n"
    "  --checkpoint FILE       the bare note or JSON holding it (GET /ledger/checkpoint, an ack)\n"
    "  --receipt FILE          send's output line or an ack as received on id/<id>/ack (with\n"
    "                          its \"envelope\", checked too)\n"
    "  --envelope FILE         the bare envelope or a line of send or listen\n"
    "  --old-checkpoint FILE   the earlier checkpoint of a consistency check\n"
    "  --proof FILE            the JSON of GET /ledger/proof/consistency\n"
    "  --data DIR              a broker's data directory (its database, audited row by row)\n"
    "  --seal                  check a seal against an Ethereum node: FILE holds the JSON of\n"
    "                          GET /ledger/seals/cover, optionally after a receipt (an ack or\n"
    "                          send's output line) whose checkpoint the cover's proof extends\n"
    "  --notification FILE     a ledgermq.chain.log envelope or a line of listen holding one,\n"
    "                          checked against the node at --rpc: its block and its log\n"
    "  --rpc URL               an Ethereum node's JSON-RPC URL (http:// or https://; --seal,\n"
    "                          --notification)\n"
    "  --seal-address 0x...    the server's sealing address (--seal)\n"
    "  --confirmations N       blocks the seal needs at least (--seal; default 12)\n"
    "  -h, --help              print this help\n"
    "\n"
    "exit codes:\n"
    "  0  verified\n"
    "  1  usage error, I/O error or unusable input\n"
    "  3  well-formed but not verified\n";

struct verify_args {
    const char *key, *checkpoint, *old_checkpoint, *receipt, *envelope, *proof, *data;
    const char *notification, *rpc;
};

__attribute__((format(printf, 2, 3))) int verify_say(int code, const char *fmt, ...)
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

/* JSON values an input file holds: one document (an object, pretty-printed or not) or JSON
 * lines (what `send` and `listen` print). */
#define VERIFY_VALUES_MAX 64u

/* Parses text as one JSON document or as JSON lines into a new array; NULL when it is neither
 * (or holds more than VERIFY_VALUES_MAX lines). */
static json_t *verify_values(const char *text, size_t len)
{
    json_t *one = NULL, *all = json_array();
    if (all == NULL)
        return NULL;
    if (crypto_jcs_parse((const uint8_t *)text, len, &one) == LMQ_OK) {
        json_array_append_new(all, one);
        return all;
    }
    /* Each round consumes one line: bounded by the text and by VERIFY_VALUES_MAX. */
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        size_t n = end - at;
        while (n > 0 && (text[at + n - 1] == '\r' || text[at + n - 1] == ' '))
            n--;
        if (n > 0 && (json_array_size(all) >= VERIFY_VALUES_MAX ||
                      crypto_jcs_parse((const uint8_t *)text + at, n, &one) != LMQ_OK ||
                      json_array_append_new(all, one) != 0)) {
            json_decref(all);
            return NULL;
        }
        at = end + 1;
    }
    if (json_array_size(all) == 0) {
        json_decref(all);
        return NULL;
    }
    return all;
}

/* The first object among values that has member (an object or a string as wanted); NULL. */
json_t *verify_find(json_t *values, const char *member, bool want_object)
{
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v)
    {
        json_t *m = json_object_get(v, member);
        if (want_object ? json_is_object(m) : json_is_string(m))
            return v;
    }
    return NULL;
}

/* Reads a file and, when it starts with '{', its JSON values (*values; NULL for plain text).
 * Returns VERIFY_EXIT_OK, or VERIFY_EXIT_USAGE (said) when unreadable or not JSON. */
int verify_input(const char *path, char **text, size_t *len, json_t **values)
{
    *values = NULL;
    *text = verify_read(path, len);
    if (*text == NULL)
        return verify_say(VERIFY_EXIT_USAGE, "%s: %s", path, strerror(errno));
    size_t skip = strspn(*text, " \t\r\n");
    if ((*text)[skip] != '{')
        return VERIFY_EXIT_OK;
    *values = verify_values(*text, *len);
    if (*values == NULL) {
        free(*text);
        *text = NULL;
        return verify_say(VERIFY_EXIT_USAGE,
                          "%s: unusable input: not JSON (one object, or JSON "
                          "lines)",
                          path);
    }
    return VERIFY_EXIT_OK;
}

int verify_load_key(const char *arg, struct verify_key *key)
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
int verify_note(const struct verify_key *key, const char *note, size_t len, const char *what,
                struct ledger_checkpoint *cp)
{
    enum ledger_checkpoint_verdict verdict = LEDGER_CHECKPOINT_OK;
    if (ledger_checkpoint_verify(note, len, key->name, key->pub, cp, &verdict) != LMQ_OK)
        return verify_say(
            verdict == LEDGER_CHECKPOINT_MALFORMED ? VERIFY_EXIT_USAGE : VERIFY_EXIT_FAILED,
            "%s: %s%s", what, verdict == LEDGER_CHECKPOINT_MALFORMED ? "unusable input: " : "",
            verdict == LEDGER_CHECKPOINT_MALFORMED
                ? "not a checkpoint (a signed note, or JSON with \"checkpoint\")"
                : ledger_checkpoint_verdict_str(verdict));
    return VERIFY_EXIT_OK;
}

static int verify_checkpoint_file(const struct verify_key *key, const char *path, const char *what,
                                  struct ledger_checkpoint *cp)
{
    size_t len = 0;
    char *text = NULL;
    json_t *values = NULL;
    int rc = verify_input(path, &text, &len, &values);
    if (rc != VERIFY_EXIT_OK)
        return rc;
    if (values == NULL) {
        rc = verify_note(key, text, len, what, cp); /* the bare note */
    } else {
        /* GET /ledger/checkpoint {"checkpoint":...}, a receipt, or an ack line {"receipt":...} */
        json_t *obj = verify_find(values, "checkpoint", false);
        json_t *ack = obj == NULL ? verify_find(values, "receipt", true) : NULL;
        json_t *note = obj != NULL ? json_object_get(obj, "checkpoint")
                       : ack != NULL
                           ? json_object_get(json_object_get(ack, "receipt"), "checkpoint")
                           : NULL;
        rc = json_is_string(note)
                 ? verify_note(key, json_string_value(note), json_string_length(note), what, cp)
                 : verify_say(VERIFY_EXIT_USAGE,
                              "%s: unusable input: no \"checkpoint\" (GET /ledger/checkpoint, "
                              "an ack with its receipt, or the bare note)",
                              path);
    }
    json_decref(values);
    free(text);
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

/* The envelope the receipt is for, as JSON: signature, then link. */
static int verify_envelope_json(const json_t *envelope, const char *link)
{
    struct lmq_buf canonical = {0};
    struct ledger_envelope env;
    const char *reason = NULL;
    char computed[LEDGER_ENVELOPE_LINK_BYTES] = "";
    int rc = crypto_jcs_canonicalize_json(envelope, &canonical, LEDGER_ENVELOPE_MAX_BYTES);
    if (rc != LMQ_OK)
        return verify_say(VERIFY_EXIT_USAGE, "envelope: unusable input: too large");
    rc = ledger_envelope_parse(canonical.data, canonical.len, &env, &reason);
    lmq_buf_release(&canonical);
    if (rc != LMQ_OK) {
        /* Well-formed but from another key than it names: does not verify. */
        bool mismatch = reason != NULL && strcmp(reason, "key_mismatch") == 0;
        return verify_say(mismatch ? VERIFY_EXIT_FAILED : VERIFY_EXIT_USAGE, "envelope: %s%s",
                          mismatch ? "" : "unusable input: ", reason ? reason : "invalid");
    }
    rc = ledger_envelope_verify(&env, &reason);
    if (rc == LMQ_OK)
        rc = ledger_envelope_link(&env, computed);
    ledger_envelope_release(&env);
    if (rc != LMQ_OK)
        return verify_say(VERIFY_EXIT_FAILED, "envelope: %s", reason ? reason : "invalid");
    if (link != NULL && strcmp(computed, link) != 0)
        return verify_say(VERIFY_EXIT_FAILED, "envelope: its link %s is not the receipt's %s",
                          computed, link);
    return VERIFY_EXIT_OK;
}

/* The envelope in the values of an input file: the "envelope" of the first object holding one
 * (a listen line, send's output line, a GET /ledger/envelopes entry), else the first object
 * with a "sig" (a bare envelope); NULL when there is none (values may be NULL). */
static json_t *verify_envelope_in(json_t *values)
{
    if (values == NULL)
        return NULL;
    json_t *wrap = verify_find(values, "envelope", true);
    return wrap != NULL ? json_object_get(wrap, "envelope") : verify_find(values, "sig", false);
}

/* --envelope FILE: the bare envelope, or any object wrapping it in "envelope" (a listen line
 * {envelope,index,position}, send's output line, a GET /ledger/envelopes entry). */
static int verify_envelope_file(const char *path, const char *link)
{
    size_t len = 0;
    char *text = NULL;
    json_t *values = NULL;
    int rc = verify_input(path, &text, &len, &values);
    if (rc != VERIFY_EXIT_OK)
        return rc;
    json_t *env = verify_envelope_in(values);
    if (env != NULL)
        rc = verify_envelope_json(env, link);
    else
        rc = verify_say(VERIFY_EXIT_USAGE,
                        "%s: unusable input: no envelope (an envelope, or a line of send or "
                        "listen)",
                        path);
    json_decref(values);
    free(text);
    return rc;
}

/* --notification FILE --rpc URL: the envelope's signature, then the node (verify_chain.c). */
static int verify_notification_file(const char *path, const char *rpc)
{
    size_t len = 0;
    char *text = NULL;
    json_t *values = NULL;
    int rc = verify_input(path, &text, &len, &values);
    if (rc != VERIFY_EXIT_OK)
        return rc;
    json_t *env = verify_envelope_in(values);
    if (env == NULL)
        rc = verify_say(VERIFY_EXIT_USAGE,
                        "%s: unusable input: no envelope (an envelope, or a "
                        "line of listen)",
                        path);
    if (rc == VERIFY_EXIT_OK)
        rc = verify_envelope_json(env, NULL);
    if (rc == VERIFY_EXIT_OK)
        rc = verify_notification(env, rpc);
    json_decref(values);
    free(text);
    return rc;
}

static int verify_receipt(const struct verify_args *a, const struct verify_key *key)
{
    size_t text_len = 0;
    char *text = NULL;
    json_t *values = NULL;
    int code = verify_input(a->receipt, &text, &text_len, &values);
    free(text);
    if (code != VERIFY_EXIT_OK)
        return code;
    /* An ack as received on id/<id>/ack, or send's output line (the ack with "envelope"). */
    json_t *ack = values != NULL ? verify_find(values, "receipt", true) : NULL;
    if (ack == NULL) {
        json_decref(values);
        return verify_say(VERIFY_EXIT_USAGE,
                          "%s: unusable input: no ack with a \"receipt\" (send's output line, or "
                          "an ack from id/<id>/ack)",
                          a->receipt);
    }
    json_t *r = json_object_get(ack, "receipt");
    const char *link = json_string_value(json_object_get(ack, "link"));
    json_t *index_j = json_object_get(ack, "index");
    /* JCS parses every number as a double: an index is one holding an integer 0..2^53. */
    double index_d = json_is_number(index_j) ? json_number_value(index_j) : -1;
    bool index_ok = index_d >= 0 && index_d <= 9007199254740992.0 &&
                    index_d == (double)(unsigned long long)index_d;
    unsigned long long index = index_ok ? (unsigned long long)index_d : 0;
    json_t *note = json_object_get(r, "checkpoint");
    uint8_t proof[LEDGER_MERKLE_PROOF_MAX][32], link_raw[32], leaf[32];
    size_t count = 0, n = 0;
    struct ledger_checkpoint cp;
    if (link == NULL || !index_ok || !json_is_string(note) ||
        ledger_proof_json_decode(json_object_get(r, "proof"), proof, &count) != LMQ_OK ||
        crypto_hex_decode(link, strlen(link), link_raw, sizeof(link_raw), &n) != LMQ_OK ||
        n != 32) {
        code = verify_say(VERIFY_EXIT_USAGE, "receipt: unusable input: need link, index and "
                                             "receipt {checkpoint, proof}");
    } else if ((code = verify_note(key, json_string_value(note), json_string_length(note),
                                   "receipt checkpoint", &cp)) != VERIFY_EXIT_OK) {
    } else if (ledger_merkle_leaf_hash(link_raw, 32, leaf) != LMQ_OK ||
               ledger_merkle_verify_inclusion(leaf, (uint64_t)index, cp.size,
                                              (const uint8_t(*)[32])proof, count,
                                              cp.root) != LMQ_OK) {
        code = verify_say(VERIFY_EXIT_FAILED,
                          "receipt: the inclusion proof of index %llu does not lead to the "
                          "checkpoint's root (tree size %llu)",
                          index, (unsigned long long)cp.size);
    } else if (a->envelope != NULL) {
        code = verify_envelope_file(a->envelope, link);
    } else if (json_is_object(json_object_get(ack, "envelope"))) {
        code = verify_envelope_json(json_object_get(ack, "envelope"), link); /* send's line */
    }
    if (code == VERIFY_EXIT_OK)
        code = verify_say(VERIFY_EXIT_OK,
                          "{\"ok\":true,\"index\":%llu,\"link\":\"%s\",\"tree_size\":%llu}", index,
                          link, (unsigned long long)cp.size);
    json_decref(values);
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
        code = verify_say(VERIFY_EXIT_USAGE, "proof: unusable input: need {\"proof\":[...]} (GET "
                                             "/ledger/proof/consistency)");
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
    static const char *const names[] = {"key",     "checkpoint",   "old-checkpoint",
                                        "receipt", "envelope",     "proof",
                                        "data",    "notification", "rpc"};
    const char **slots[] = {&a->key,     &a->checkpoint,   &a->old_checkpoint,
                            &a->receipt, &a->envelope,     &a->proof,
                            &a->data,    &a->notification, &a->rpc};
    for (int i = 0; i < argc; i += 2) {
        size_t k = LMQ_ARRAY_LEN(names);
        for (size_t j = 0; j < LMQ_ARRAY_LEN(names) && strncmp(argv[i], "--", 2) == 0; j++) {
            if (strcmp(argv[i] + 2, names[j]) == 0)
                k = j;
        }
        if (k == LMQ_ARRAY_LEN(names))
            return verify_say(VERIFY_EXIT_USAGE,
                              "unknown argument \"%s\" (see ledgermq verify --help)", argv[i]);
        if (i + 1 >= argc || argv[i + 1][0] == '\0')
            return verify_say(VERIFY_EXIT_USAGE, "%s needs a value", argv[i]);
        *slots[k] = argv[i + 1];
    }
    return VERIFY_EXIT_OK;
}

int verify_main(int argc, char **argv)
{
    struct verify_args a = {0};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--seal") == 0)
            return verify_seal_main(argc, argv); /* verify_seal.c */
    }
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
    if (a.notification != NULL || a.rpc != NULL)
        return a.notification == NULL || a.rpc == NULL
                   ? verify_say(VERIFY_EXIT_USAGE, "--notification and --rpc go together")
                   : verify_notification_file(a.notification, a.rpc);
    if (a.key == NULL)
        return verify_say(VERIFY_EXIT_USAGE, "--key is required (see ledgermq verify --help)");
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
    return verify_say(VERIFY_EXIT_USAGE,
                      "which check? give one of the forms of ledgermq verify --help");
}
