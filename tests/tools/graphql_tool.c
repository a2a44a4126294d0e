/*
 * The C side of the GraphQL differential test (tests/integration/test_graphql_js.py):
 *   graphql_tool --sdl      prints the test schema's SDL;
 *   graphql_tool            reads JSON lines {"query", "variables"?, "operationName"?} on stdin
 *                           and prints one line per request: graphql_execute's response.
 * Limits are generous so that graphql-js (which has none) and the engine agree.
 */
#include <stdio.h>
#include <string.h>

#include "graphql_testschema.h"

#define LINE_MAX_BYTES (1024 * 1024)

int main(int argc, char **argv)
{
    struct graphql_schema *s = NULL;
    struct graphql_test_ctx ctx;
    if (graphql_test_schema(&s) != 0 || graphql_test_ctx_init(&ctx) != 0) {
        fprintf(stderr, "graphql_tool: cannot build the test schema\n");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--sdl") == 0) {
        char *sdl = graphql_schema_sdl(s);
        printf("%s", sdl != NULL ? sdl : "");
        free(sdl);
        graphql_schema_free(s);
        graphql_test_ctx_free(&ctx);
        return 0;
    }
    struct graphql_limits limits = {.max_depth = 64,
                                    .max_fields = 100000,
                                    .max_list_items = 10000,
                                    .max_result_items = 1000000,
                                    .max_ms = 60000,
                                    .max_query_bytes = LINE_MAX_BYTES};
    struct graphql_resolvers r = {.ctx = &ctx, .resolve = graphql_test_resolve};
    char *line = malloc(LINE_MAX_BYTES);
    int status = 0;
    while (line != NULL && fgets(line, LINE_MAX_BYTES, stdin) != NULL) {
        json_error_t jerr;
        json_t *req = json_loads(line, 0, &jerr), *resp = NULL;
        const char *q = json_string_value(json_object_get(req, "query"));
        if (q == NULL) {
            fprintf(stderr, "graphql_tool: bad request line: %s\n", jerr.text);
            status = 1;
            json_decref(req);
            break;
        }
        json_t *vars = json_object_get(req, "variables");
        if (graphql_execute(s, q, strlen(q),
                            json_string_value(json_object_get(req, "operationName")),
                            json_is_null(vars) ? NULL : vars, &limits, &r, &resp) != 0) {
            fprintf(stderr, "graphql_tool: out of memory\n");
            status = 1;
        }
        char *out = resp != NULL ? json_dumps(resp, JSON_COMPACT) : NULL;
        printf("%s\n", out != NULL ? out : "null");
        fflush(stdout);
        free(out);
        json_decref(resp);
        json_decref(req);
    }
    free(line);
    graphql_schema_free(s);
    graphql_test_ctx_free(&ctx);
    return status;
}
