/*
 * libFuzzer target for src/ledger/envelope.c. The input is an envelope's JSON text. Oracles:
 *   - a refusal always names a reason, an acceptance never does;
 *   - an accepted envelope's canonical form is accepted again, with the same canonical bytes,
 *     the same fields, the same link and the same signature verdict.
 *
 * fuzz-sources: src/ledger/envelope.c src/crypto/jcs.c src/crypto/encoding.c src/crypto/hash.c
 * fuzz-sources: src/crypto/ed25519.c src/crypto/keyfile.c src/core/buf.c
 * fuzz-libs: -ljansson -lcrypto -lm
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/envelope.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ledger_envelope a;
    struct ledger_envelope b;
    const char *reason = NULL;
    int rc = ledger_envelope_parse(data, size, &a, &reason);
    CHECK((rc == LMQ_OK) == (reason == NULL) || rc == LMQ_ENOMEM);
    if (rc != LMQ_OK)
        return 0;
    CHECK(ledger_envelope_parse(a.canonical.data, a.canonical.len, &b, &reason) == LMQ_OK);
    CHECK(a.canonical.len == b.canonical.len &&
          memcmp(a.canonical.data, b.canonical.data, a.canonical.len) == 0);
    CHECK(a.unsigned_.len == b.unsigned_.len &&
          memcmp(a.unsigned_.data, b.unsigned_.data, a.unsigned_.len) == 0);
    CHECK(a.seq == b.seq && a.time_s == b.time_s && a.time_ns == b.time_ns);
    CHECK(strcmp(a.from, b.from) == 0 && strcmp(a.to, b.to) == 0 && strcmp(a.prev, b.prev) == 0);
    char la[LEDGER_ENVELOPE_LINK_BYTES];
    char lb[LEDGER_ENVELOPE_LINK_BYTES];
    CHECK(ledger_envelope_link(&a, la) == LMQ_OK && ledger_envelope_link(&b, lb) == LMQ_OK);
    CHECK(strcmp(la, lb) == 0);
    const char *ra = NULL;
    const char *rb = NULL;
    CHECK((ledger_envelope_verify(&a, &ra) == LMQ_OK) ==
          (ledger_envelope_verify(&b, &rb) == LMQ_OK));
    ledger_envelope_release(&a);
    ledger_envelope_release(&b);
    return 0;
}
