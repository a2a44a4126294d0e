/*
 * libFuzzer target for the GraphQL mapping of models (src/data/data_graphql_schema.c): a model
 * added by envelope comes from an admin identity, and its mapping runs in the broker. The input
 * is one or more JSON model documents separated by NUL bytes; each is compiled as a model
 * (data_model_compile) against the ones before and put into the set, then the set is mapped.
 * Oracles:
 *   - data_gql_build succeeds (a schema and SDL), or fails with ENOMEM, or with EINVAL only for
 *     generated type names that collide;
 *   - a built schema answers the introspection of every type without request errors, and the
 *     resolver table holds only known kinds naming a model of the set;
 *   - nothing leaks and nothing hangs.
 *
 * fuzz-sources: src/data/data_models.c src/data/data_graphql_schema.c
 * fuzz-sources: src/graphql/graphql.c src/graphql/graphql_exec.c
 * fuzz-sources: src/graphql/graphql_introspect.c src/graphql/graphql_lex.c
 * fuzz-sources: src/graphql/graphql_overlap.c src/graphql/graphql_parse.c
 * fuzz-sources: src/graphql/graphql_schema.c src/graphql/graphql_util.c
 * fuzz-sources: src/graphql/graphql_validate.c src/graphql/graphql_value.c
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

#include "data/data_graphql.h"

#include "fuzz_check.h"

#define FUZZ_DATA_GRAPHQL_INPUT_MAX_BYTES (32u * 1024u)
#define FUZZ_DATA_GRAPHQL_MODELS_MAX 4

/* The store and the commit path are not part of this target: index records go nowhere, and a
 * path is valid as store.c says ("$" then ".name" steps). */
void commit_store_write(struct broker *b, const struct store_record *rec)
{
    (void)b, (void)rec;
}

bool store_data_path_valid(struct lmq_bytes path)
{
    return path.len >= 3 && path.len <= STORE_DATA_PATH_MAX_BYTES && path.data[0] == '$' &&
           path.data[1] == '.';
}

static const char fuzz_introspect[] =
    "{ __schema { types { name kind fields { name type { name kind ofType { name kind } } } "
    "inputFields { name } enumValues { name } } } }";

static void fuzz_check_built(const struct data_models *set, const struct data_gql *g)
{
    CHECK(g->schema != NULL && g->sdl != NULL && strlen(g->sdl) > 0);
    for (size_t i = 0; i < g->count; i++) {
        const struct data_gql_entry *e = &g->entries[i];
        CHECK(e->kind <= DATA_GQL_TYPES);
        CHECK(e->kind == DATA_GQL_TYPES || data_models_find(set, e->model, strlen(e->model)));
    }
    json_t *response = NULL;
    int rc = graphql_execute(g->schema, fuzz_introspect, strlen(fuzz_introspect), NULL, NULL, NULL,
                             NULL, &response);
    CHECK(rc == LMQ_OK || rc == LMQ_ENOMEM);
    if (rc == LMQ_OK)
        CHECK(json_object_get(response, "errors") == NULL);
    json_decref(response);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_DATA_GRAPHQL_INPUT_MAX_BYTES)
        return 0;
    struct data_models *set = calloc(1, sizeof(*set));
    CHECK(set != NULL);
    size_t start = 0;
    for (size_t models = 0; start < size && models < FUZZ_DATA_GRAPHQL_MODELS_MAX; models++) {
        const uint8_t *nul = memchr(data + start, 0, size - start);
        size_t end = nul != NULL ? (size_t)(nul - data) : size;
        json_error_t jerr;
        json_t *doc = json_loadb((const char *)data + start, end - start, 0, &jerr);
        start = end + 1;
        if (doc == NULL)
            continue;
        struct data_model *m = NULL;
        char err[256];
        if (data_model_compile(set, doc, "fuzz", false, &m, err, sizeof(err)) == LMQ_OK &&
            data_models_put(set, m) != LMQ_OK)
            data_model_free(m);
        json_decref(doc);
    }
    struct data_gql *g = NULL;
    char err[256] = "";
    int rc = data_gql_build(set, &g, err, sizeof(err));
    CHECK(rc == LMQ_OK || rc == LMQ_EINVAL || rc == LMQ_ENOMEM);
    CHECK((rc == LMQ_OK) == (g != NULL));
    /* A model that compiles maps, except when generated names collide (T_Edge as a property
     * "Edge" that is an object, say): that is the only refusal allowed. */
    if (rc == LMQ_EINVAL && strstr(err, "uniquely named types") == NULL)
        fprintf(stderr, "refused: %s\n", err);
    CHECK(rc != LMQ_EINVAL || strstr(err, "uniquely named types") != NULL);
    if (g != NULL)
        fuzz_check_built(set, g);
    data_gql_free(g);
    data_models_free(set);
    return 0;
}
