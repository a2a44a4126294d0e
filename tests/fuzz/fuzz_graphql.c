/*
 * libFuzzer target for the GraphQL engine (src/graphql/): the lexer, parser, validation and
 * execution against the test schema (tests/tools/graphql_testschema.c), which is what
 * POST /graphql runs on a request body. Input: a document, optionally followed by a NUL byte and
 * the variables as JSON (anything after the NUL that is not a JSON object is passed as no
 * variables).
 * Oracles:
 *   - graphql_execute returns 0 and a response object, always;
 *   - the response is the spec's shape: "data" and/or a non-empty "errors" (a response without
 *     "data" has errors); every error has a string message, locations with line and column
 *     >= 1, and a field error's path starts with a response key;
 *   - the same request gives the same response twice (no state leaks between requests);
 *   - limits hold: no error mentions a list longer than max_list_items etc. is checked by the
 *     engine itself; here the fuzzer's -timeout and -rss_limit_mb catch a hang or unbounded
 *     memory, LeakSanitizer a leak.
 * Any broken oracle aborts, which libFuzzer reports as a crash.
 *
 * Seeds (tests/fuzz/corpus/graphql/): documents from the differential test's hand-written
 * cases (tests/integration/graphql_cases.py), one file each, some with variables.
 *
 * fuzz-sources: src/graphql/graphql.c src/graphql/graphql_exec.c
 * fuzz-sources: src/graphql/graphql_introspect.c src/graphql/graphql_lex.c
 * fuzz-sources: src/graphql/graphql_overlap.c src/graphql/graphql_parse.c
 * fuzz-sources: src/graphql/graphql_schema.c src/graphql/graphql_util.c
 * fuzz-sources: src/graphql/graphql_validate.c src/graphql/graphql_value.c
 * fuzz-sources: tests/tools/graphql_testschema.c
 * fuzz-libs: -ljansson -lm
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../tools/graphql_testschema.h"
#include "graphql/graphql.h"

#include "fuzz_check.h"

static struct graphql_schema *fuzz_schema;
static struct graphql_test_ctx fuzz_ctx;

static const struct graphql_limits fuzz_limits = {.max_depth = 12,
                                                  .max_fields = 300,
                                                  .max_list_items = 100,
                                                  .max_result_items = 2000,
                                                  .max_ms = 2000,
                                                  .max_query_bytes = 8192};

static void fuzz_check_response(const json_t *resp)
{
    CHECK(json_is_object(resp));
    json_t *errors = json_object_get(resp, "errors");
    json_t *data = json_object_get(resp, "data");
    CHECK(data != NULL || json_array_size(errors) > 0);
    CHECK(errors == NULL || (json_is_array(errors) && json_array_size(errors) > 0));
    CHECK(data == NULL || json_is_null(data) || json_is_object(data));
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        CHECK(json_is_string(json_object_get(e, "message")));
        json_t *locs = json_object_get(e, "locations"), *loc;
        size_t k;
        json_array_foreach(locs, k, loc)
        {
            CHECK(json_integer_value(json_object_get(loc, "line")) >= 1);
            CHECK(json_integer_value(json_object_get(loc, "column")) >= 1);
        }
        json_t *path = json_object_get(e, "path");
        CHECK(path == NULL || json_is_string(json_array_get(path, 0)));
        CHECK(path == NULL || data != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_schema == NULL) {
        CHECK(graphql_test_schema(&fuzz_schema) == 0);
        CHECK(graphql_test_ctx_init(&fuzz_ctx) == 0);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t doc_len = nul != NULL ? (size_t)(nul - data) : size;
    json_t *vars = NULL;
    if (nul != NULL) {
        vars = json_loadb((const char *)nul + 1, size - doc_len - 1, 0, NULL);
        if (!json_is_object(vars)) {
            json_decref(vars);
            vars = NULL;
        }
    }
    struct graphql_resolvers r = {.ctx = &fuzz_ctx, .resolve = graphql_test_resolve};
    json_t *a = NULL, *b = NULL;
    CHECK(graphql_execute(fuzz_schema, (const char *)data, doc_len, NULL, vars, &fuzz_limits, &r,
                          &a) == 0);
    CHECK(a != NULL);
    fuzz_check_response(a);
    CHECK(graphql_execute(fuzz_schema, (const char *)data, doc_len, NULL, vars, &fuzz_limits, &r,
                          &b) == 0);
    CHECK(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    json_decref(vars);
    return 0;
}
