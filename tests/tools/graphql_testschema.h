/* The GraphQL engine's fixed test schema and data, shared by the unit test, the differential
 * test's C side (graphql_tool) and the fuzz target. tests/js/graphql_diff.js builds the same
 * schema from graphql_tool's SDL with the same data and resolvers. */
#ifndef LMQ_GRAPHQL_TESTSCHEMA_H
#define LMQ_GRAPHQL_TESTSCHEMA_H

#include "graphql/graphql.h"

/* What the resolvers saw: calls per resolver tag (index = tag), all calls. */
struct graphql_test_ctx {
    json_t *data; /* the fixed data set (people, payments) */
    unsigned calls[32];
    unsigned calls_total;
    size_t parents_total;
};

/* Builds and finishes the test schema. 0 or an LMQ_E* code. */
int graphql_test_schema(struct graphql_schema **out);
/* The data set and resolvers; free with graphql_test_ctx_free. */
int graphql_test_ctx_init(struct graphql_test_ctx *c);
void graphql_test_ctx_free(struct graphql_test_ctx *c);
int graphql_test_resolve(void *ctx, struct graphql_batch *b);

#endif
