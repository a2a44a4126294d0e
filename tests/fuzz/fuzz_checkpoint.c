/*
 * libFuzzer target for the checkpoint note parser and the verifier key parser
 * (src/ledger/checkpoint.c). Oracles:
 *   - a note that parses has its text ending in a newline right before the blank line, 1..16
 *     signature lines, and a body that starts with exactly what ledger_checkpoint_format_body
 *     writes for the parsed origin, size and root (so parsing accepts only the canonical form),
 *     the whole body when there are no extension lines;
 *   - verification against a fixed key never claims success for a note that does not parse;
 *   - a verifier key that parses formats back to the same bytes.
 * Any broken oracle aborts, which libFuzzer reports as a crash.
 *
 * Seeds (tests/fuzz/corpus/checkpoint/): a signed checkpoint, one with extension lines and a
 * witness signature, the Go sumdb/note reference verifier key, and a few near misses.
 *
 * fuzz-sources: src/ledger/checkpoint.c src/crypto/hash.c src/crypto/ed25519.c
 * fuzz-sources: src/crypto/encoding.c
 * fuzz-libs: -lcrypto
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/lmq.h"
#include "ledger/checkpoint.h"

#define FUZZ_BODY_MAX 1024

static void fuzz_check(int ok)
{
    if (!ok)
        abort();
}

static void fuzz_note(const char *note, size_t len)
{
    static struct ledger_checkpoint cp;
    int rc = ledger_checkpoint_parse(note, len, &cp);
    if (rc == 0) {
        fuzz_check(cp.body_len > 0 && cp.body_len + 1 < len);
        fuzz_check(note[cp.body_len - 1] == '\n' && note[cp.body_len] == '\n');
        fuzz_check(cp.sig_count >= 1 && cp.sig_count <= LEDGER_CHECKPOINT_SIGS_MAX);
        char body[FUZZ_BODY_MAX];
        size_t body_len = 0;
        fuzz_check(ledger_checkpoint_format_body(cp.origin, cp.size, cp.root, body, sizeof(body),
                                                 &body_len) == 0);
        fuzz_check(body_len <= cp.body_len && memcmp(body, note, body_len) == 0);
        fuzz_check(cp.extension_count > 0 || body_len == cp.body_len);
    } else {
        fuzz_check(rc == LMQ_EPROTO || rc == LMQ_ELIMIT);
    }
    static const uint8_t pub[CRYPTO_ED25519_PUB_BYTES] = {1};
    enum ledger_checkpoint_verdict verdict;
    int vrc = ledger_checkpoint_verify(note, len, "k", pub, &cp, &verdict);
    fuzz_check(vrc == 0 ? rc == 0 && verdict == LEDGER_CHECKPOINT_OK
                        : verdict != LEDGER_CHECKPOINT_OK);
    fuzz_check(rc == 0 || verdict == LEDGER_CHECKPOINT_MALFORMED);
}

static void fuzz_vkey(const char *text, size_t len)
{
    char name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    if (ledger_checkpoint_vkey_parse(text, len, name, pub) != 0)
        return;
    char again[LEDGER_CHECKPOINT_VKEY_MAX_BYTES + 1];
    size_t again_len = 0;
    fuzz_check(ledger_checkpoint_vkey_format(name, pub, again, sizeof(again), &again_len) == 0);
    fuzz_check(again_len == len && memcmp(again, text, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A heap copy of exactly size bytes, so ASan sees any read past the end. */
    char *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);
    fuzz_note(copy, size);
    fuzz_vkey(copy, size);
    free(copy);
    return 0;
}
