/*
 * libFuzzer target for the Merkle proof JSON decoder and encoder (src/ledger/proof_json.c),
 * which read proofs from the network (the client's receipts and GET /ledger/proof/...) and from
 * files (`ledgermq verify`). The input is JSON text, parsed with jansson as the client does; the
 * decoder gets the top level and, for an object, its "proof" member (as in a receipt). The
 * input's bytes are also taken as raw hashes for the encoder. Oracles:
 *   - a refusal is LMQ_EPROTO with a count of 0; an acceptance counts every element of an array
 *     of at most LEDGER_MERKLE_PROOF_MAX;
 *   - what decodes re-encodes to the same hashes: the encoding parses back as JSON and decodes
 *     to the same count and bytes, and each element is exactly the string that was decoded
 *     (strict base64 has one spelling per hash);
 *   - the encoder writes a NUL-terminated text of the length it reports, and refuses
 *     (LMQ_ETOOBIG) a buffer with no room for that NUL.
 * Any broken oracle aborts, which libFuzzer reports as a crash.
 *
 * Seeds (tests/fuzz/corpus/proof_json/, written by make_corpus.py): proofs of 0, 1, 2 and
 * LEDGER_MERKLE_PROOF_MAX hashes, one over the maximum, a receipt-like object, and near misses
 * (unpadded, non-zero unused bits, 31 and 33 bytes, a number, nested arrays).
 *
 * fuzz-sources: src/ledger/proof_json.c src/crypto/encoding.c
 * fuzz-libs: -ljansson
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/lmq.h"
#include "ledger/proof_json.h"

#include "fuzz_check.h"

/* A hash's standard base64 (44), two quotes and a comma each; the brackets and the NUL. */
#define FUZZ_JSON_MAX_BYTES (LEDGER_MERKLE_PROOF_MAX * 47 + 3)

static uint8_t fuzz_hashes[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];
static uint8_t fuzz_again[LEDGER_MERKLE_PROOF_MAX][LEDGER_MERKLE_HASH_BYTES];

/* Encodes count hashes, checks the size bound both ways, and decodes the text back. */
static void fuzz_round_trip(const uint8_t (*hashes)[LEDGER_MERKLE_HASH_BYTES], size_t count,
                            const json_t *decoded_from)
{
    static char json[FUZZ_JSON_MAX_BYTES];
    size_t used = 0;
    CHECK(ledger_proof_json_encode(hashes, count, json, sizeof(json), &used) == 0);
    CHECK(used + 1 <= sizeof(json) && json[used] == '\0' && strlen(json) == used);
    /* No room for the NUL: refused, never written past. */
    size_t short_used = 0;
    static char short_json[FUZZ_JSON_MAX_BYTES];
    CHECK(ledger_proof_json_encode(hashes, count, short_json, used, &short_used) == LMQ_ETOOBIG);
    json_t *back = json_loadb(json, used, JSON_REJECT_DUPLICATES, NULL);
    CHECK(back != NULL && json_is_array(back) && json_array_size(back) == count);
    size_t again_count = 99;
    CHECK(ledger_proof_json_decode(back, fuzz_again, &again_count) == 0);
    CHECK(again_count == count);
    CHECK(count == 0 || memcmp(fuzz_again, hashes, count * LEDGER_MERKLE_HASH_BYTES) == 0);
    if (decoded_from != NULL) {
        for (size_t i = 0; i < count; i++) {
            const json_t *a = json_array_get(decoded_from, i);
            const json_t *b = json_array_get(back, i);
            CHECK(json_string_length(a) == json_string_length(b));
            CHECK(memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0);
        }
    }
    json_decref(back);
}

static void fuzz_decode(const json_t *arr)
{
    size_t count = 99;
    int rc = ledger_proof_json_decode(arr, fuzz_hashes, &count);
    if (rc != 0) {
        CHECK(rc == LMQ_EPROTO && count == 0);
        return;
    }
    CHECK(json_is_array(arr) && count == json_array_size(arr));
    CHECK(count <= LEDGER_MERKLE_PROOF_MAX);
    fuzz_round_trip((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])fuzz_hashes, count, arr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, 0, NULL);
    if (root != NULL) {
        fuzz_decode(root);
        if (json_is_object(root))
            fuzz_decode(json_object_get(root, "proof"));
        json_decref(root);
    }
    fuzz_decode(NULL); /* no "proof" at all: refused, never a crash */
    /* The same bytes as raw hashes for the encoder (whole hashes only). */
    size_t count = LMQ_MIN(size / LEDGER_MERKLE_HASH_BYTES, (size_t)LEDGER_MERKLE_PROOF_MAX);
    if (count > 0)
        memcpy(fuzz_hashes, data, count * LEDGER_MERKLE_HASH_BYTES);
    fuzz_round_trip((const uint8_t(*)[LEDGER_MERKLE_HASH_BYTES])fuzz_hashes, count, NULL);
    return 0;
}
