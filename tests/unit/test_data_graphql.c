/*
 * The GraphQL mapping of models (src/data/data_graphql_schema.c): models written to a
 * directory, loaded and compiled as the broker does, mapped, and the SDL checked for each rule
 * of docs/PROTOCOL.md "Objects over GraphQL" (the integration test covers the example models
 * and execution).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data/data_graphql.h"

struct built {
    struct data_models *models;
    struct data_gql *gql;
    char err[256];
    int rc;
};

/* Writes each "name", "json" pair to a fresh directory, loads and maps the models. */
static void build(struct built *b, const char *const *files, size_t count)
{
    char dir[] = "/tmp/lmq-gqlmodels-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < count; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, files[2 * i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_true(fputs(files[2 * i + 1], f) >= 0);
        assert_int_equal(fclose(f), 0);
    }
    memset(b, 0, sizeof(*b));
    assert_int_equal(data_models_load(dir, false, &b->models, b->err, sizeof(b->err)), 0);
    b->rc = data_gql_build(b->models, &b->gql, b->err, sizeof(b->err));
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void release(struct built *b)
{
    data_gql_free(b->gql);
    data_models_free(b->models);
}

/* The definition "head {...}" of the SDL, NUL-terminated in buf. */
static const char *block(const struct built *b, const char *head, char *buf, size_t cap)
{
    const char *start = strstr(b->gql->sdl, head);
    assert_non_null(start);
    const char *end = strstr(start, "\n}");
    assert_non_null(end);
    size_t n = (size_t)(end - start);
    assert_true(n < cap);
    memcpy(buf, start, n);
    buf[n] = '\0';
    return buf;
}

static void test_scalars_map_by_their_schema(void **state)
{
    (void)state;
    static const char *const files[] = {
        "t.json",
        "{\"$id\":\"x.T\",\"type\":\"object\",\"required\":[\"a\"],\"properties\":{"
        "\"a\":{\"type\":\"integer\",\"minimum\":-2147483648,\"maximum\":2147483647},"
        "\"b\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":2147483648},"
        "\"c\":{\"type\":\"integer\",\"exclusiveMinimum\":-2147483649,\"exclusiveMaximum\":10},"
        "\"d\":{\"type\":\"integer\",\"minimum\":0},"
        "\"e\":{\"type\":\"number\"},\"f\":{\"type\":\"boolean\"},"
        "\"g\":{\"type\":[\"string\",\"null\"]},\"h\":{\"type\":[\"string\",\"integer\"]},"
        "\"i\":{\"enum\":[\"ok\",\"no\"]},\"j\":{\"enum\":[\"a-b\",\"c\"]},\"k\":{\"enum\":[1,2]},"
        "\"l\":{\"oneOf\":[{\"type\":\"string\"}]},\"m\":{},"
        "\"bad-name\":{\"type\":\"string\"},\"_x\":{\"type\":\"string\"}}}",
    };
    struct built b;
    build(&b, files, 1);
    assert_int_equal(b.rc, 0);
    char buf[4096];
    const char *t = block(&b, "type x_T {", buf, sizeof(buf));
    static const char *const want[] = {
        "  a: Int!\n",    "  b: Float\n",  "  c: Int\n",  "  d: Float\n",         "  e: Float\n",
        "  f: Boolean\n", "  g: String\n", "  h: JSON\n", "  i: x_T_i\n",         "  j: String\n",
        "  k: JSON\n",    "  l: JSON\n",   "  m: JSON\n", "_ledgerIndex: Float!",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(t, want[i]) == NULL)
            fail_msg("no \"%s\" in:\n%s", want[i], t);
    }
    assert_null(strstr(t, "bad"));
    assert_null(strstr(t, "_x"));
    assert_non_null(strstr(b.gql->sdl, "enum x_T_i {\n  ok\n  no\n}"));
    /* No indexed property: no filter argument, ordering by creation only. */
    assert_null(strstr(b.gql->sdl, "x_T_Filter"));
    assert_non_null(strstr(b.gql->sdl, "enum x_T_OrderField {\n  _created\n}"));
    release(&b);
}

static void test_objects_lists_links_and_refs(void **state)
{
    (void)state;
    static const char *const files[] = {
        "a.json",
        "{\"$id\":\"x.A\",\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"string\"}}}",
        "b.json",
        "{\"$id\":\"x.B\",\"type\":\"object\",\"required\":[\"a\"],\"properties\":{"
        "\"a\":{\"type\":\"string\",\"x-link\":\"x.A\",\"x-index\":true},"
        "\"many\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"x-link\":\"x.A\"}},"
        "\"nowhere\":{\"type\":\"string\",\"x-link\":\"x.Nope\"},"
        "\"emb\":{\"$ref\":\"x.A\"},"
        "\"rows\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
        "\"properties\":{\"q\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9}}}}}}",
    };
    struct built b;
    build(&b, files, 2);
    assert_int_equal(b.rc, 0);
    char buf[4096];
    const char *t = block(&b, "type x_B {", buf, sizeof(buf));
    assert_non_null(strstr(t, "  a: x_A\n")); /* required, but a link may be unreadable */
    assert_non_null(strstr(t, "  many: [x_A]\n"));
    assert_non_null(strstr(t, "  nowhere: String\n"));
    assert_non_null(strstr(t, "  emb: x_A_Value\n"));
    assert_non_null(strstr(t, "  rows: [x_B_rows]\n"));
    assert_non_null(strstr(b.gql->sdl, "type x_B_rows {\n  q: Int\n}"));
    assert_non_null(strstr(b.gql->sdl, "type x_A_Value {"));
    assert_non_null(strstr(block(&b, "input x_B_a_Ops {", buf, sizeof(buf)), "EQ: ID\n"));
    /* The two link fields have resolver entries naming their target. */
    size_t links = 0;
    for (size_t i = 0; i < b.gql->count; i++) {
        if (b.gql->entries[i].kind == DATA_GQL_LINK) {
            assert_string_equal(b.gql->entries[i].model, "x.A");
            links++;
        }
    }
    assert_int_equal(links, 2);
    release(&b);
}

static void test_a_clash_of_generated_names_is_refused(void **state)
{
    (void)state;
    /* x.T's property "Edge" as an object would be type x_T_Edge, as T's edges are. */
    static const char *const files[] = {
        "t.json",
        "{\"$id\":\"x.T\",\"type\":\"object\",\"properties\":{\"Edge\":{\"type\":\"object\","
        "\"properties\":{\"z\":{\"type\":\"string\"}}}}}",
    };
    struct built b;
    build(&b, files, 1);
    assert_int_equal(b.rc, LMQ_EINVAL);
    assert_null(b.gql);
    assert_true(strlen(b.err) > 0);
    release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_map_by_their_schema),
        cmocka_unit_test(test_objects_lists_links_and_refs),
        cmocka_unit_test(test_a_clash_of_generated_names_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
