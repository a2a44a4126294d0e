/*
 * libFuzzer target for src/schema (JSON Schema compile + validate). The input is
 *   FLAGS SCHEMA-TEXT [NUL INSTANCE-TEXT]
 * FLAGS is one byte: bit 0 asserts formats, bit 1 selects draft 7 (else $schema decides), bit 2
 * skips the meta-schema check (so the compiler itself sees schemas the meta-schema would
 * refuse). Without a NUL the schema document is validated against itself. Oracles:
 *   - compile either succeeds or fails with EINVAL/ELIMIT/ENOMEM and a one-line reason;
 *   - validation returns OK or ELIMIT (never anything else), valid <=> no errors when OK, at most
 *     SCHEMA_ERRORS_MAX errors, every pointer/keyword/message NUL-terminated within its field;
 *   - validating the same instance again gives the same verdict and errors, and allocates
 *     nothing (the scratch area is reused: no allocation per keyword);
 *   - the validator's fast path and its full walk agree (schema__validate_fast/_full): the fast
 *     path never proves valid what the full walk finds invalid, nor fails what it finds valid
 *     unless it gave up;
 *   - nothing leaks (libFuzzer's LeakSanitizer) and nothing hangs (-timeout in run.sh: the
 *     regex match limits and the evaluation depth bound must stop every catastrophic case).
 *
 * fuzz-sources: src/schema/schema_compile.c src/schema/schema_validate.c
 * fuzz-sources: src/schema/schema_format.c src/schema/schema_json.c src/schema/schema_regex.c
 * fuzz-sources: src/schema/schema_uri.c src/core/buf.c src/core/map.c build-fuzz/schema_meta.c
 * fuzz-libs: -ljansson -lpcre2-8 -lm
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/lmq.h"
#include "schema/schema.h"
#include "schema/schema_internal.h"

#include "fuzz_check.h"

/* Bigger inputs only slow the fuzzer down: the limits they would reach are unit-tested. */
#define FUZZ_SCHEMA_INPUT_MAX_BYTES (64u * 1024u)

static bool fuzz_terminated(const char *field, size_t cap)
{
    return memchr(field, '\0', cap) != NULL;
}

static void fuzz_check_result(int rc, const struct schema_result *res)
{
    CHECK(rc == LMQ_OK || rc == LMQ_ELIMIT || rc == LMQ_ENOMEM);
    CHECK(res->error_count <= SCHEMA_ERRORS_MAX);
    if (rc == LMQ_OK)
        CHECK(res->valid == (res->error_count == 0));
    else
        CHECK(!res->valid);
    for (size_t i = 0; i < res->error_count; i++) {
        const struct schema_error *e = &res->errors[i];
        CHECK(fuzz_terminated(e->instance, sizeof(e->instance)));
        CHECK(fuzz_terminated(e->schema, sizeof(e->schema)));
        CHECK(fuzz_terminated(e->keyword, sizeof(e->keyword)));
        CHECK(fuzz_terminated(e->message, sizeof(e->message)));
        CHECK(e->instance[0] == '\0' || e->instance[0] == '/');
    }
}

static void fuzz_validate_twice(const struct schema *s, const json_t *instance)
{
    struct schema_validator *v = NULL;
    if (schema_validator_new(s, &v) != LMQ_OK)
        return;
    static struct schema_result first, second;
    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    int rc1 = schema_validate(v, instance, &first);
    fuzz_check_result(rc1, &first);
    size_t allocs = schema_validator_alloc_count(v);
    int rc2 = schema_validate(v, instance, &second);
    fuzz_check_result(rc2, &second);
    CHECK(rc1 == rc2);
    CHECK(first.valid == second.valid && first.error_count == second.error_count);
    for (size_t i = 0; i < first.error_count; i++) {
        CHECK(strcmp(first.errors[i].instance, second.errors[i].instance) == 0);
        CHECK(strcmp(first.errors[i].schema, second.errors[i].schema) == 0);
        CHECK(strcmp(first.errors[i].keyword, second.errors[i].keyword) == 0);
    }
    if (rc1 == LMQ_OK)
        CHECK(schema_validator_alloc_count(v) == allocs);
    /* The fast path never calls valid what the full walk calls invalid, and proves valid what
     * it calls valid unless it gave up (schema_validate combines the two). */
    static struct schema_result full;
    int full_rc = schema__validate_full(v, instance, &full);
    int fast = schema__validate_fast(v, instance);
    CHECK(full_rc == rc1 && full.valid == first.valid);
    if (fast != SCHEMA__FAST_GAVE_UP)
        CHECK((fast == 1) == (full_rc == LMQ_OK && full.valid));
    schema_validator_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_SCHEMA_INPUT_MAX_BYTES)
        return 0;
    uint8_t flags = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const char *nul = memchr(text, '\0', len);
    size_t schema_len = nul != NULL ? (size_t)(nul - text) : len;

    json_error_t jerr;
    json_t *doc = schema_json_loadb(text, schema_len, &jerr);
    if (doc == NULL)
        return 0;
    json_t *instance = doc;
    if (nul != NULL) {
        instance = schema_json_loadb(nul + 1, len - schema_len - 1, &jerr);
        if (instance == NULL) {
            json_decref(doc);
            return 0;
        }
    } else {
        json_incref(doc);
    }

    struct schema_options opt = {
        .draft = (flags & 2u) != 0 ? SCHEMA_DRAFT_7 : SCHEMA_DRAFT_AUTO,
        .assert_formats = (flags & 1u) != 0,
        .skip_meta_check = (flags & 4u) != 0,
    };
    struct schema *s = NULL;
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = schema_compile(NULL, doc, NULL, &opt, &s, err, sizeof(err));
    if (rc == LMQ_OK) {
        CHECK(s != NULL);
        fuzz_validate_twice(s, instance);
        schema_free(s);
    } else {
        CHECK(rc == LMQ_EINVAL || rc == LMQ_ELIMIT || rc == LMQ_ENOMEM);
        if (rc != LMQ_ENOMEM) { /* a reason, on one line (the CLI prints it as one) */
            CHECK(fuzz_terminated(err, sizeof(err)) && err[0] != '\0');
            CHECK(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
        }
    }
    json_decref(doc);
    json_decref(instance);
    return 0;
}
