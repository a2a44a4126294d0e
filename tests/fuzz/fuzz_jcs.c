/*
 * libFuzzer target for src/crypto/jcs.c (RFC 8785). The input is JSON text. Oracles:
 *   - a canonical form is a fixed point: canonicalizing it again gives the same bytes;
 *   - canonicalization never grows past its bound and never leaves partial output on failure;
 *   - the first 8 input bytes as a double, when finite, format to text that reads back as the
 *     same double (both zeros print "0").
 *
 * fuzz-sources: src/crypto/jcs.c src/core/buf.c
 * fuzz-libs: -ljansson -lm
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "crypto/jcs.h"

#include "fuzz_check.h"

/* Output bound for the fuzzer: small enough that the ETOOBIG path is reached too. */
#define FUZZ_JCS_OUT_MAX_BYTES 4096

static void fuzz_number(const uint8_t *data, size_t size)
{
    if (size < sizeof(double))
        return;
    double d;
    memcpy(&d, data, sizeof(d));
    char text[CRYPTO_JCS_NUMBER_MAX_BYTES];
    size_t len = 0;
    int rc = crypto_jcs_format_number(d, text, &len);
    CHECK((rc == LMQ_OK) == (isfinite(d) != 0));
    if (rc != LMQ_OK)
        return;
    CHECK(len == strlen(text) && len < CRYPTO_JCS_NUMBER_MAX_BYTES);
    CHECK(strtod(text, NULL) == d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_number(data, size);
    struct lmq_buf once = {0};
    struct lmq_buf twice = {0};
    int rc = crypto_jcs_canonicalize(data, size, &once, FUZZ_JCS_OUT_MAX_BYTES);
    CHECK(once.len <= FUZZ_JCS_OUT_MAX_BYTES);
    if (rc != LMQ_OK) {
        CHECK(once.len == 0);
        CHECK(rc == LMQ_EPROTO || rc == LMQ_ELIMIT || rc == LMQ_ETOOBIG || rc == LMQ_ENOMEM);
    } else {
        CHECK(crypto_jcs_canonicalize(once.data, once.len, &twice, FUZZ_JCS_OUT_MAX_BYTES) ==
              LMQ_OK);
        CHECK(twice.len == once.len && memcmp(twice.data, once.data, once.len) == 0);
    }
    lmq_buf_release(&once);
    lmq_buf_release(&twice);
    return 0;
}
