/* The GraphQL engine (src/graphql/graphql.h) on the test schema (tests/tools/graphql_testschema.c):
 * the lexer's and parser's edge cases, every validation rule (a valid and an invalid document),
 * execution (null propagation, lists, variables, fragments, aliases, directives), batching (one
 * resolver call per field per level), every limit, introspection, SDL and schema checks. The
 * differential test against graphql-js is tests/integration/test_graphql_js.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graphql/graphql.h"
#include "graphql_testschema.h"

static struct graphql_schema *schema;
static struct graphql_test_ctx tctx;
static unsigned slow_ms; /* each resolver call sleeps this long (the time limit's test) */
static int fail_tag;     /* a batch of this resolver tag fails as a whole with LMQ_EIO */

static int slow_resolve(void *ctx, struct graphql_batch *b)
{
    if (b->resolver_tag == fail_tag) {
        return LMQ_EIO;
    }
    if (slow_ms > 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slow_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    return graphql_test_resolve(ctx, b);
}

static const struct graphql_limits wide = {.max_depth = 20,
                                           .max_fields = 1000,
                                           .max_list_items = 1000,
                                           .max_result_items = 10000,
                                           .max_ms = 10000,
                                           .max_query_bytes = 65536};

static int setup(void **state)
{
    (void)state;
    assert_int_equal(graphql_test_schema(&schema), 0);
    assert_int_equal(graphql_test_ctx_init(&tctx), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    graphql_schema_free(schema);
    graphql_test_ctx_free(&tctx);
    return 0;
}

/* Runs q (variables as JSON text or NULL) and returns the response. */
static json_t *run_lim(const char *q, const char *vars, const struct graphql_limits *lim)
{
    json_t *v = vars != NULL ? json_loads(vars, 0, NULL) : NULL, *resp = NULL;
    struct graphql_resolvers r = {.ctx = &tctx, .resolve = slow_resolve};
    memset(tctx.calls, 0, sizeof(tctx.calls));
    tctx.calls_total = 0;
    tctx.parents_total = 0;
    assert_int_equal(graphql_execute(schema, q, strlen(q), NULL, v, lim, &r, &resp), 0);
    assert_non_null(resp);
    json_decref(v);
    return resp;
}

static json_t *run(const char *q, const char *vars)
{
    return run_lim(q, vars, &wide);
}

/* The response as compact JSON with sorted keys (the caller frees). */
static char *dump(const json_t *resp)
{
    return json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS);
}

static void expect_data(const char *q, const char *vars, const char *data_json)
{
    json_t *resp = run(q, vars), *want = json_loads(data_json, 0, NULL);
    assert_non_null(want);
    char *got = dump(resp);
    if (!json_equal(json_object_get(resp, "data"), want) ||
        json_object_get(resp, "errors") != NULL) {
        fail_msg("%s\n  got  %s\n  want data %s", q, got, data_json);
    }
    free(got);
    json_decref(want);
    json_decref(resp);
}

/* The first error's message is msg (and at line:col when line != 0); data present or not. */
static void expect_error(const char *q, const char *vars, const char *msg, int line, int col,
                         bool with_data)
{
    json_t *resp = run(q, vars);
    char *got = dump(resp);
    json_t *e = json_array_get(json_object_get(resp, "errors"), 0);
    const char *m = json_string_value(json_object_get(e, "message"));
    json_t *loc = json_array_get(json_object_get(e, "locations"), 0);
    if (m == NULL || strcmp(m, msg) != 0 ||
        (line != 0 && (json_integer_value(json_object_get(loc, "line")) != line ||
                       json_integer_value(json_object_get(loc, "column")) != col)) ||
        (json_object_get(resp, "data") != NULL) != with_data) {
        fail_msg("%s\n  got  %s\n  want %s at %d:%d", q, got, msg, line, col);
    }
    free(got);
    json_decref(resp);
}

static void test_lexer_and_parser_edge_cases(void **state)
{
    (void)state;
    expect_error("{", NULL, "Syntax Error: Expected Name, found <EOF>.", 1, 2, false);
    expect_error("", NULL, "Syntax Error: Unexpected <EOF>.", 1, 1, false);
    expect_error("{ hero { name } } extra", NULL, "Syntax Error: Unexpected Name \"extra\".", 1, 19,
                 false);
    expect_error("{ echo(i: 007) }", NULL,
                 "Syntax Error: Invalid number, unexpected digit after 0: \"0\".", 1, 12, false);
    expect_error("{ echo(i: 1.) }", NULL,
                 "Syntax Error: Invalid number, expected digit but got: \")\".", 1, 13, false);
    expect_error("{ echo(i: 1x) }", NULL,
                 "Syntax Error: Invalid number, expected digit but got: \"x\".", 1, 12, false);
    expect_error("{ echo(i: .5) }", NULL,
                 "Syntax Error: Invalid number, expected digit before \".\", did you mean \"0.5\"?",
                 1, 11, false);
    expect_error("{ hero { .. } }", NULL, "Syntax Error: Unexpected \"..\", did you mean \"...\"?",
                 1, 10, false);
    expect_error("{ echo(s: \"a\nb\") }", NULL, "Syntax Error: Unterminated string.", 1, 13, false);
    expect_error("{ echo(s: \"\\uD83D\") }", NULL,
                 "Syntax Error: Invalid Unicode escape sequence: \"\\uD83D\".", 1, 12, false);
    expect_error("{ echo(s: \"\\q\") }", NULL,
                 "Syntax Error: Invalid character escape sequence: \"\\q\".", 1, 12, false);
    expect_error("{ echo(s: 'x') }", NULL,
                 "Syntax Error: Unexpected single quote character ('), did you mean to use a "
                 "double quote (\")?",
                 1, 11, false);
    /* a non-ASCII character counts as one column, an astral one as two (UTF-16) */
    expect_error("# \xc3\xa9\n  \xf0\x9f\x98\x80 ?", NULL,
                 "Syntax Error: Unexpected character: U+1F600.", 2, 3, false);
    expect_error("{ echo(s: \"\xf0\x9f\x98\x80\xc3\xa9\") ? }", NULL,
                 "Syntax Error: Unexpected character: \"?\".", 1, 18, false);
    expect_error("{ \"\xc3\xa9\" ?", NULL,
                 "Syntax Error: Expected Name, found String \"\xc3\xa9\".", 1, 3, false);
    expect_error("query ($a: Int = $b) { echo(i: $a) }", NULL,
                 "Syntax Error: Unexpected variable \"$b\" in constant value.", 1, 18, false);
    expect_error("fragment on on Person { name }", NULL, "Syntax Error: Unexpected Name \"on\".", 1,
                 10, false);
    /* escapes: surrogate pairs and \u{...} become UTF-8; block strings lose their indentation */
    expect_data("{ echo(s: \"a\\u00e9\\uD83D\\uDE00\\u{1F600}\") }", NULL,
                "{\"echo\":{\"s\":\"a\xc3\xa9\xf0\x9f\x98\x80\xf0\x9f\x98\x80\",\"d\":\"x\\\"y\","
                "\"dl\":[\"ADMIN\",\"GUEST\"],\"do\":{\"minAmount\":1.5,\"roles\":[\"USER\"]}}}");
    expect_data("{ echo(s: \"\"\"\n\n    block\n      indented \\\"\"\"\n    \"\"\") }", NULL,
                "{\"echo\":{\"s\":\"block\\n  indented "
                "\\\"\\\"\\\"\",\"d\":\"x\\\"y\",\"dl\":[\"ADMIN\",\"GUEST\"],\"do\":{"
                "\"minAmount\":1.5,\"roles\":[\"USER\"]}}}");
    expect_data("{ echo(f: -1.5e3, i: -0) }", NULL,
                "{\"echo\":{\"i\":0,\"f\":-1500.0,\"d\":\"x\\\"y\",\"dl\":[\"ADMIN\",\"GUEST\"],"
                "\"do\":{\"minAmount\":1.5,\"roles\":[\"USER\"]}}}");
    /* a message quoting bytes that are not UTF-8 is still a JSON string (found by the fuzzer) */
    expect_error("{ echo(s: \"\\u\x80(83D\") }", NULL,
                 "Syntax Error: Invalid Unicode escape sequence: \"\\u\xef\xbf\xbd(83\".", 1, 12,
                 false);
    /* type-system definitions parse and are refused by validation */
    expect_error("type Foo { a: Int }", NULL, "The \"Foo\" definition is not executable.", 1, 1,
                 false);
}

/* One valid and one invalid document per validation rule. */
static void test_each_validation_rule(void **state)
{
    (void)state;
    static const struct {
        const char *valid, *invalid, *message;
    } rules[] = {
        {"{ hero { name } }", "schema { query: Query }",
         "The schema definition is not executable."},
        {"query A { hero { name } } query B { hero { id } }",
         "query A { hero { name } } query A { hero { id } }",
         "There can be only one operation named \"A\"."},
        {"{ hero { name } }", "{ hero { name } } query B { hero { id } }",
         "This anonymous operation must be the only defined operation."},
        {"{ hero { name } }", "{ hero { nme } }",
         "Cannot query field \"nme\" on type \"Person\". Did you mean \"name\" or \"age\"?"},
        {"{ hero { name } }", "{ hero }",
         "Field \"hero\" of type \"Person\" must have a selection of subfields. Did you mean "
         "\"hero { ... }\"?"},
        {"{ hero { name } }", "{ hero { name { x } } }",
         "Field \"name\" must not have a selection since type \"String!\" has no subfields."},
        {"{ person(id: \"p1\") { name } }", "{ person(idd: \"p1\") { name } }",
         "Unknown argument \"idd\" on field \"Query.person\". Did you mean \"id\"?"},
        {"{ person(id: \"p1\") { name } }", "{ person(id: \"p1\", id: \"p2\") { name } }",
         "There can be only one argument named \"id\"."},
        {"{ need(req: 1) }", "{ need }",
         "Argument \"Query.need(req:)\" of type \"Int!\" is required, but it was not provided."},
        {"fragment F on Person { name } { hero { ...F } }",
         "fragment F on Person { name } fragment F on Person { id } { hero { ...F } }",
         "There can be only one fragment named \"F\"."},
        {"fragment F on Person { name } { hero { ...F } }", "{ hero { ...G } }",
         "Unknown fragment \"G\"."},
        {"{ hero { ... on Person { name } } }", "{ hero { ... on Role { name } } }",
         "Fragment cannot condition on non composite type \"Role\"."},
        {"fragment F on Person { name } { hero { ...F } }",
         "fragment F on Person { name } { hero { name } }", "Fragment \"F\" is never used."},
        {"fragment F on Person { name } { hero { ...F } }",
         "fragment F on Person { ...G } fragment G on Person { ...F } { hero { ...F } }",
         "Cannot spread fragment \"F\" within itself via \"G\"."},
        {"fragment F on Person { name } { hero { ...F } }",
         "fragment F on Payment { id } { hero { ...F } }",
         "Fragment \"F\" cannot be spread here as objects of type \"Person\" can never be of type "
         "\"Payment\"."},
        {"{ people(role: USER) { id } }", "{ people(role: MANAGER) { id } }",
         "Value \"MANAGER\" does not exist in \"Role\" enum."},
        {"{ echo(l: [1, 2]) }", "{ echo(l: [1, \"2\"]) }",
         "Int cannot represent non-integer value: \"2\""},
        {"{ echo(o: {inner: {deep: 1}}) }", "{ echo(o: {inner: {}}) }",
         "Expected value of type \"Inner\" to include required field \"deep\", found: {  }."},
        {"{ echo(o: {minAmount: 1}) }", "{ echo(o: {minAmount: 1, minAmount: 2}) }",
         "There can be only one input field named \"minAmount\"."},
        {"{ hero @skip(if: false) { name } }", "{ hero @unknown { name } }",
         "Unknown directive \"@unknown\"."},
        {"{ hero @skip(if: false) { name } }", "{ hero @deprecated { name } }",
         "Directive \"@deprecated\" may not be used on FIELD."},
        {"{ hero @skip(if: false) { name } }", "{ hero @skip(if: true) @skip(if: false) { name } }",
         "The directive \"@skip\" can only be used once at this location."},
        {"query ($a: Int) { echo(i: $a) }", "query ($a: Int, $a: Int) { echo(i: $a) }",
         "There can be only one variable named \"$a\"."},
        {"query ($a: Int) { echo(i: $a) }", "query ($a: Person) { echo(i: 1) }",
         "Variable \"$a\" cannot be non-input type \"Person\"."},
        {"query ($a: Int) { echo(i: $a) }", "{ echo(i: $a) }", "Variable \"$a\" is not defined."},
        {"query ($a: Int) { echo(i: $a) }", "query ($a: Int) { echo(i: 1) }",
         "Variable \"$a\" is never used."},
        {"query ($a: Int) { echo(i: $a) }", "query ($a: Float) { echo(i: $a) }",
         "Variable \"$a\" of type \"Float\" used in position expecting type \"Int\"."},
        {"{ a: hero { name } b: hero { id } }", "{ a: hero { name } a: people { id } }",
         "Fields \"a\" conflict because \"hero\" and \"people\" are different fields. Use "
         "different aliases on the fields to fetch both if this was intentional."},
        {"{ hero { name } }", "mutation { hero { name } }",
         "The mutation operation is not supported by the schema."},
        {"{ hero { name } }", "subscription { hero { name } }",
         "The subscription operation is not supported by the schema."},
        {"query ($a: Int) { echo(i: $a) }", "query ($a: Nope) { echo(i: 1) }",
         "Unknown type \"Nope\". Did you mean \"Role\"?"},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        json_t *ok = run(rules[i].valid, NULL);
        const char *first = json_string_value(
            json_object_get(json_array_get(json_object_get(ok, "errors"), 0), "message"));
        /* valid: executed (data, maybe with field errors); two named operations are valid and a
         * request then needs an operation name */
        bool valid =
            json_object_get(ok, "data") != NULL ||
            (first != NULL &&
             strcmp(first, "Must provide operation name if query contains multiple operations.") ==
                 0);
        if (!valid) {
            char *d = dump(ok);
            fail_msg("valid document refused: %s\n  %s", rules[i].valid, d);
        }
        json_decref(ok);
        json_t *bad = run(rules[i].invalid, NULL);
        bool found = false;
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(bad, "errors"), k, e)
        {
            found = found ||
                    strcmp(json_string_value(json_object_get(e, "message")), rules[i].message) == 0;
        }
        if (!found || json_object_get(bad, "data") != NULL) {
            char *d = dump(bad);
            fail_msg("invalid document: %s\n  got  %s\n  want %s", rules[i].invalid, d,
                     rules[i].message);
        }
        json_decref(bad);
    }
}

static void test_execution(void **state)
{
    (void)state;
    /* aliases, fragments, inline fragments, merging of the same response key */
    expect_data(
        "{ a: hero { n: name } hero { ...F ... on Person { id } } } fragment F on Person { name }",
        NULL, "{\"a\":{\"n\":\"Ada\"},\"hero\":{\"name\":\"Ada\",\"id\":\"p1\"}}");
    expect_data("{ hero { name } hero { id } }", NULL,
                "{\"hero\":{\"name\":\"Ada\",\"id\":\"p1\"}}");
    /* a response key merged from many selections keeps all of their subfields */
    char many[4096];
    size_t len = (size_t)snprintf(many, sizeof(many), "{");
    for (int i = 0; i < 100; i++) {
        len += (size_t)snprintf(many + len, sizeof(many) - len, " hero { a%d: id }", i);
    }
    snprintf(many + len, sizeof(many) - len, " }");
    json_t *m = run(many, NULL);
    assert_int_equal(json_object_size(json_object_get(json_object_get(m, "data"), "hero")), 100);
    json_decref(m);
    /* directives, with literals and variables */
    expect_data("query ($s: Boolean!) { hero @skip(if: $s) { name } people(first: 1) @include(if: "
                "true) { id } }",
                "{\"s\": true}", "{\"people\":[{\"id\":\"p1\"}]}");
    /* variables, defaults, coercion (Int 3.0 -> 3, ID from an integer) */
    expect_data("query ($i: Int = 7, $id: ID) { echo(i: $i, id: $id, r: GUEST) }", "{\"id\": 4}",
                "{\"echo\":{\"i\":7,\"id\":\"4\",\"r\":\"GUEST\",\"d\":\"x\\\"y\",\"dl\":["
                "\"ADMIN\",\"GUEST\"],\"do\":{\"minAmount\":1.5,\"roles\":[\"USER\"]}}}");
    expect_data("query ($i: Int) { echo(i: $i) }", "{\"i\": 3.0}",
                "{\"echo\":{\"i\":3,\"d\":\"x\\\"y\",\"dl\":[\"ADMIN\",\"GUEST\"],\"do\":{"
                "\"minAmount\":1.5,\"roles\":[\"USER\"]}}}");
    expect_error(
        "query ($l: [Int!]) { echo(l: $l) }", "{\"l\": [1, \"x\"]}",
        "Variable \"$l\" has invalid value at [1]: Int cannot represent non-integer value: \"x\"",
        1, 8, false);
    expect_error("query ($id: ID!) { person(id: $id) { name } }", "{}",
                 "Variable \"$id\" has invalid value: Expected a value of non-null type \"ID!\" to "
                 "be provided.",
                 1, 8, false);
    /* lists: a null item in [Int], a missing reference in [Person!] nulls the list */
    expect_data("{ numbers }", NULL, "{\"numbers\":[1,2,null,4]}");
    expect_data("{ people(first: 2) { tags } }", NULL,
                "{\"people\":[{\"tags\":[\"math\",\"engines\"]},{\"tags\":[]}]}");
    /* null propagation: to the nearest nullable position, with the error's path */
    json_t *r = run("{ hero { name friends { mustFail } } }", NULL);
    char *d = dump(r);
    assert_string_equal(d, "{\"data\":{\"hero\":{\"friends\":null,\"name\":\"Ada\"}},\"errors\":[{"
                           "\"locations\":[{\"column\":25,\"line\":1}],\"message\":\"boom\","
                           "\"path\":[\"hero\",\"friends\",0,\"mustFail\"]}]}");
    free(d);
    json_decref(r);
    r = run("{ nonNullNull hero { name } }", NULL);
    d = dump(r);
    assert_string_equal(d, "{\"data\":null,\"errors\":[{\"locations\":[{\"column\":3,\"line\":1}],"
                           "\"message\":\"Cannot return null for non-nullable field "
                           "Query.nonNullNull.\",\"path\":[\"nonNullNull\"]}]}");
    free(d);
    json_decref(r);
    /* graphql-js executes depth first: an error that nulls the response stops what comes after
     * it (failing is never reached), not what came before it */
    r = run("{ people(first: 1) { mustFail } failing }", NULL);
    d = dump(r);
    assert_string_equal(d, "{\"data\":null,\"errors\":[{\"locations\":[{\"column\":22,\"line\":1}],"
                           "\"message\":\"boom\",\"path\":[\"people\",0,\"mustFail\"]}]}");
    free(d);
    json_decref(r);
    r = run("{ failing people(first: 1) { mustFail } }", NULL);
    assert_int_equal(json_array_size(json_object_get(r, "errors")), 2);
    json_decref(r);
    /* serialization: Int beyond 32 bits and an unknown enum value are field errors */
    expect_error("{ badInt }", NULL,
                 "Int cannot represent non 32-bit signed integer value: 1099511627776", 1, 3, true);
    expect_error("{ payments(limit: 10) { status } }", NULL,
                 "Enum \"Role\" cannot represent value: \"BOGUS\"", 1, 25, true);
    /* an operation by name; an unknown one */
    json_t *resp = NULL;
    struct graphql_resolvers res = {.ctx = &tctx, .resolve = graphql_test_resolve};
    const char *two = "query A { hero { id } } query B { hero { name } }";
    assert_int_equal(graphql_execute(schema, two, strlen(two), "B", NULL, &wide, &res, &resp), 0);
    d = dump(resp);
    assert_string_equal(d, "{\"data\":{\"hero\":{\"name\":\"Ada\"}}}");
    free(d);
    json_decref(resp);
    assert_int_equal(graphql_execute(schema, two, strlen(two), "C", NULL, &wide, &res, &resp), 0);
    d = dump(resp);
    assert_string_equal(d, "{\"errors\":[{\"message\":\"Unknown operation named \\\"C\\\".\"}]}");
    free(d);
    json_decref(resp);
}

static void test_one_resolver_call_per_field_per_level(void **state)
{
    (void)state;
    /* 5 people, their 7 friends, those friends' best friends: one call per field and level */
    json_t *r =
        run("{ people(first: 5) { name friends { name bestFriend { name } } bestFriend { id } } }",
            NULL);
    assert_null(json_object_get(r, "errors"));
    assert_int_equal(json_array_size(json_object_get(json_object_get(r, "data"), "people")), 5);
    assert_int_equal(tctx.calls[3], 1);  /* people */
    assert_int_equal(tctx.calls[11], 1); /* friends, for 5 parents at once */
    assert_int_equal(tctx.calls[12], 2); /* bestFriend: level 2 (5 parents) and level 3 */
    assert_int_equal(tctx.calls_total, 4);
    assert_int_equal(tctx.parents_total, 1 + 5 + 5 + 7);
    json_decref(r);
    /* different arguments are different batches; the same arguments share one */
    r = run(
        "{ a: people(first: 1) { id } b: people(first: 2) { id } c: people(first: 1) { name } }",
        NULL);
    assert_int_equal(tctx.calls[3], 2);
    json_decref(r);
}

static void test_a_failing_batch_is_a_field_error_for_each_parent(void **state)
{
    (void)state;
    fail_tag = 12; /* bestFriend */
    json_t *r = run("{ people(first: 2) { id bestFriend { id } } }", NULL);
    fail_tag = 0;
    static const char *const want =
        "{\"data\":{\"people\":[{\"bestFriend\":null,\"id\":\"p1\"},"
        "{\"bestFriend\":null,\"id\":\"p2\"}]},\"errors\":["
        "{\"locations\":[{\"column\":25,\"line\":1}],\"message\":\"I/O error\","
        "\"path\":[\"people\",0,\"bestFriend\"]},"
        "{\"locations\":[{\"column\":25,\"line\":1}],\"message\":\"I/O error\","
        "\"path\":[\"people\",1,\"bestFriend\"]}]}";
    char *d = dump(r);
    assert_string_equal(d, want);
    free(d);
    json_decref(r);
}

static void test_limits(void **state)
{
    (void)state;
    struct graphql_limits lim = wide;
    const char *deep = "{ hero { friends { friends { friends { name } } } } }"; /* depth 5 */
    lim.max_depth = 4;
    json_t *r = run_lim(deep, NULL, &lim);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "errors"), 0), "message")),
                        "The query is nested deeper than the limit of 4.");
    assert_null(json_object_get(r, "data"));
    json_decref(r);
    lim.max_depth = 5;
    r = run_lim(deep, NULL, &lim);
    assert_null(json_object_get(r, "errors"));
    json_decref(r);
    /* fragments count where they are spread */
    lim = wide;
    lim.max_fields = 5;
    r = run_lim("{ hero { ...F } a: hero { ...F } } fragment F on Person { id name }", NULL, &lim);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "errors"), 0), "message")),
                        "The query selects more than the limit of 5 fields.");
    json_decref(r);
    /* a list longer than the limit is a field error */
    lim = wide;
    lim.max_list_items = 3;
    r = run_lim("{ people(first: 5) { id } numbers }", NULL, &lim);
    char *d = dump(r);
    assert_string_equal(
        d, "{\"data\":null,\"errors\":[{\"locations\":[{\"column\":3,\"line\":1}],\"message\":"
           "\"The list has more than the limit of 3 items.\",\"path\":[\"people\"]}]}");
    free(d);
    json_decref(r);
    /* objects in the whole response */
    lim = wide;
    lim.max_result_items = 3;
    r = run_lim("{ payments(limit: 5) { id } }", NULL, &lim);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "errors"), 0), "message")),
                        "The response has more than the limit of 3 objects.");
    json_decref(r);
    /* query bytes: refused before parsing */
    lim = wide;
    lim.max_query_bytes = 10;
    r = run_lim("{ hero { name } }", NULL, &lim);
    d = dump(r);
    assert_string_equal(
        d, "{\"errors\":[{\"message\":\"The query is larger than the limit of 10 bytes.\"}]}");
    free(d);
    json_decref(r);
    /* time, checked between batches: each batch sleeps 30 ms, the limit is 40 ms */
    lim = wide;
    lim.max_ms = 40;
    slow_ms = 30;
    r = run_lim("{ hero { friends { friends { friends { name } } } } }", NULL, &lim);
    slow_ms = 0;
    assert_true(json_is_null(json_object_get(r, "data")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "errors"), 0), "message")),
                        "The request took longer than the limit of 40 ms.");
    assert_true(tctx.calls_total < 4);
    json_decref(r);
    /* nesting beyond the limit is refused while parsing, without recursing further */
    size_t n = 100000;
    char *q = malloc(3 * n + 8);
    for (size_t i = 0; i < n; i++) {
        memcpy(q + 2 * i, "{a", 2);
        q[2 * n + i] = '}';
    }
    q[3 * n] = '\0';
    lim = wide;
    lim.max_query_bytes = (uint32_t)(3 * n + 8);
    r = run_lim(q, NULL, &lim);
    assert_non_null(strstr(json_string_value(json_object_get(
                               json_array_get(json_object_get(r, "errors"), 0), "message")),
                           "nesting exceeds the limit"));
    json_decref(r);
    /* fragments spread within fragments: a chain longer than the limit is refused */
    char *chain = malloc(64 * 1024);
    size_t len = (size_t)snprintf(chain, 64, "{ hero { ...F0 } }\n");
    for (int i = 0; i < 100; i++) {
        len += (size_t)snprintf(chain + len, 64, "fragment F%d on Person { ...F%d }\n", i, i + 1);
    }
    snprintf(chain + len, 64, "fragment F100 on Person { name }");
    r = run_lim(chain, NULL, &lim);
    assert_string_equal(
        json_string_value(
            json_object_get(json_array_get(json_object_get(r, "errors"), 0), "message")),
        "Fragment \"F64\" is spread within fragments nested deeper than the limit of 64.");
    assert_null(json_object_get(r, "data"));
    json_decref(r);
    free(chain);
    memset(q, '[', n);
    memcpy(q, "{echo(l:", 8);
    q[n] = '\0';
    r = run_lim(q, NULL, &lim);
    assert_non_null(strstr(json_string_value(json_object_get(
                               json_array_get(json_object_get(r, "errors"), 0), "message")),
                           "Value nesting exceeds the limit"));
    json_decref(r);
    free(q);
}

/* A fragment that spreads itself inside a field (found by fuzz_graphql): the overlap check
 * recursed through the field nesting until the stack ran out; now a cycle error. */
static void test_a_fragment_cycle_inside_fields_is_an_error_not_a_stack_overflow(void **state)
{
    (void)state;
    struct graphql_schema *s = NULL;
    assert_int_equal(graphql_test_schema(&s), 0);
    struct graphql_test_ctx ctx;
    assert_int_equal(graphql_test_ctx_init(&ctx), 0);
    char doc[4096];
    size_t used = 0;
    used += (size_t)snprintf(doc + used, sizeof(doc) - used, "{ hero { ...F } }\n");
    used += (size_t)snprintf(doc + used, sizeof(doc) - used,
                             "fragment F on Person { name friends { ...F friends { ...F } } }\n");
    json_t *resp = NULL;
    struct graphql_resolvers r = {.ctx = &ctx, .resolve = graphql_test_resolve};
    assert_int_equal(graphql_execute(s, doc, used, NULL, NULL, NULL, &r, &resp), 0);
    assert_non_null(json_object_get(resp, "errors"));
    assert_null(json_object_get(resp, "data"));
    json_decref(resp);
    graphql_test_ctx_free(&ctx);
    graphql_schema_free(s);
}

static void test_introspection_basics(void **state)
{
    (void)state;
    expect_data("{ __typename hero { __typename } }", NULL,
                "{\"__typename\":\"Query\",\"hero\":{\"__typename\":\"Person\"}}");
    expect_data("{ __type(name: \"Role\") { kind name enumValues { name } } }", NULL,
                "{\"__type\":{\"kind\":\"ENUM\",\"name\":\"Role\",\"enumValues\":[{\"name\":"
                "\"ADMIN\"},{\"name\":\"USER\"},{\"name\":\"GUEST\"}]}}");
    expect_data(
        "{ __type(name: \"Person\") { fields { name type { kind ofType { name } } } } }", NULL,
        "{\"__type\":{\"fields\":["
        "{\"name\":\"id\",\"type\":{\"kind\":\"NON_NULL\",\"ofType\":{\"name\":\"ID\"}}},"
        "{\"name\":\"name\",\"type\":{\"kind\":\"NON_NULL\",\"ofType\":{\"name\":\"String\"}}},"
        "{\"name\":\"role\",\"type\":{\"kind\":\"ENUM\",\"ofType\":null}},"
        "{\"name\":\"age\",\"type\":{\"kind\":\"SCALAR\",\"ofType\":null}},"
        "{\"name\":\"score\",\"type\":{\"kind\":\"SCALAR\",\"ofType\":null}},"
        "{\"name\":\"tags\",\"type\":{\"kind\":\"NON_NULL\",\"ofType\":{\"name\":null}}},"
        "{\"name\":\"friends\",\"type\":{\"kind\":\"LIST\",\"ofType\":{\"name\":null}}},"
        "{\"name\":\"bestFriend\",\"type\":{\"kind\":\"OBJECT\",\"ofType\":null}},"
        "{\"name\":\"mustFail\",\"type\":{\"kind\":\"NON_NULL\",\"ofType\":{\"name\":\"String\"}}}]"
        "}}");
    expect_data(
        "{ __schema { queryType { name } mutationType { name } subscriptionType { name } } }", NULL,
        "{\"__schema\":{\"queryType\":{\"name\":\"Query\"},\"mutationType\":null,"
        "\"subscriptionType\":null}}");
    expect_data("{ __type(name: \"Query\") { fields { name args { name defaultValue } } } }", NULL,
                "{\"__type\":{\"fields\":[{\"name\":\"hero\",\"args\":[]},{\"name\":\"person\","
                "\"args\":[{\"name\":\"id\",\"defaultValue\":null}]},"
                "{\"name\":\"people\",\"args\":[{\"name\":\"first\",\"defaultValue\":\"10\"},{"
                "\"name\":\"role\",\"defaultValue\":null}]},"
                "{\"name\":\"payments\",\"args\":[{\"name\":\"filter\",\"defaultValue\":null},{"
                "\"name\":\"limit\",\"defaultValue\":\"5\"}]},"
                "{\"name\":\"echo\",\"args\":[{\"name\":\"i\",\"defaultValue\":null},{\"name\":"
                "\"f\",\"defaultValue\":null},{\"name\":\"s\",\"defaultValue\":null},"
                "{\"name\":\"b\",\"defaultValue\":null},{\"name\":\"id\",\"defaultValue\":null},{"
                "\"name\":\"r\",\"defaultValue\":null},{\"name\":\"l\",\"defaultValue\":null},"
                "{\"name\":\"ll\",\"defaultValue\":null},{\"name\":\"o\",\"defaultValue\":null},{"
                "\"name\":\"j\",\"defaultValue\":null},"
                "{\"name\":\"d\",\"defaultValue\":\"\\\"x\\\\\\\"y\\\"\"},{\"name\":\"dl\","
                "\"defaultValue\":\"[ADMIN, GUEST]\"},"
                "{\"name\":\"do\",\"defaultValue\":\"{ minAmount: 1.5, roles: [USER] }\"}]},"
                "{\"name\":\"nonNullNull\",\"args\":[]},{\"name\":\"failing\",\"args\":[]},{"
                "\"name\":\"numbers\",\"args\":[]},{\"name\":\"badInt\",\"args\":[]},"
                "{\"name\":\"need\",\"args\":[{\"name\":\"req\",\"defaultValue\":null},{\"name\":"
                "\"opt\",\"defaultValue\":\"3\"}]}]}}");
}

static void test_sdl_and_schema_checks(void **state)
{
    (void)state;
    char *sdl = graphql_schema_sdl(schema);
    assert_non_null(sdl);
    assert_non_null(strstr(sdl, "\"\"\"The root of the test schema.\"\"\"\ntype Query {\n  "
                                "\"\"\"The first person.\"\"\"\n  hero: Person\n"));
    assert_non_null(strstr(sdl, "  people(\n    first: Int = 10\n\n    \"\"\"Only people with this "
                                "role.\"\"\"\n    role: Role\n  ): [Person!]!\n"));
    assert_non_null(strstr(
        sdl,
        "\n\n\"\"\"What a person may do.\"\"\"\nenum Role {\n  ADMIN\n  USER\n  GUEST\n}\n\n"));
    assert_non_null(strstr(sdl, "\"\"\"Any JSON value.\"\"\"\nscalar JSON"));
    free(sdl);

    static const struct {
        const char *type, *field_type, *arg_default, *want;
    } bad[] = {
        {"Query", "Nope", NULL, "Unknown type \"Nope\" (Query.f)."},
        {"Query", "[Int", NULL, "Query.f: bad type reference \"[Int\"."},
        {"Query", "In", NULL, "The type of Query.f(a:) must be Input Type but got: In."},
        {"Query", "Int", "\"x\"",
         "Query.f(a:) has invalid default value: Int cannot represent non-integer value: \"x\""},
        {"Nope", "Int", NULL, "Query root type must be provided."},
        {"__Bad", "Int", NULL,
         "Name \"__Bad\" must not begin with \"__\", which is reserved by GraphQL introspection."},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct graphql_schema *s = NULL;
        struct graphql_object *q = NULL, *in = NULL;
        struct graphql_field *f = NULL;
        char err[256] = "";
        assert_int_equal(graphql_schema_new(&s), 0);
        assert_int_equal(graphql_schema_object(s, bad[i].type, NULL, &q), 0);
        assert_int_equal(graphql_schema_input(s, "In", NULL, &in), 0);
        assert_int_equal(graphql_object_field(in, "x", "Int", NULL, 0, NULL), 0);
        assert_int_equal(
            graphql_object_field(q, "f",
                                 strcmp(bad[i].field_type, "In") == 0 ? "Int" : bad[i].field_type,
                                 NULL, 0, &f),
            0);
        assert_int_equal(graphql_field_arg(f, "a",
                                           strcmp(bad[i].field_type, "In") == 0 ? "Query" : "Int",
                                           bad[i].arg_default, NULL),
                         0);
        assert_int_equal(graphql_schema_query(s, "Query"), 0);
        assert_int_equal(graphql_schema_finish(s, err, sizeof(err)), LMQ_EINVAL);
        if (strcmp(bad[i].field_type, "In") == 0) {
            assert_string_equal(err, "The type of Query.f(a:) must be Input Type but got: Query.");
        } else {
            assert_string_equal(err, bad[i].want);
        }
        graphql_schema_free(s);
    }
    /* a clash, a bad name, an input cycle through non-null fields */
    struct graphql_schema *s = NULL;
    struct graphql_object *q = NULL, *a = NULL;
    char err[256] = "";
    assert_int_equal(graphql_schema_new(&s), 0);
    assert_int_equal(graphql_schema_object(s, "Query", NULL, &q), 0);
    assert_int_equal(graphql_object_field(q, "f", "Int", NULL, 0, NULL), 0);
    assert_int_equal(graphql_schema_scalar(s, "Query", NULL), 0);
    assert_int_equal(graphql_schema_query(s, "Query"), 0);
    assert_int_equal(graphql_schema_finish(s, err, sizeof(err)), LMQ_EINVAL);
    assert_string_equal(
        err,
        "Schema must contain uniquely named types but contains multiple types named \"Query\".");
    graphql_schema_free(s);
    assert_int_equal(graphql_schema_new(&s), 0);
    assert_int_equal(graphql_schema_object(s, "a-b", NULL, &q), LMQ_EINVAL);
    graphql_schema_free(s);
    assert_int_equal(graphql_schema_new(&s), 0);
    assert_int_equal(graphql_schema_object(s, "Query", NULL, &q), 0);
    assert_int_equal(graphql_schema_input(s, "A", NULL, &a), 0);
    assert_int_equal(graphql_object_field(a, "self", "A!", NULL, 0, NULL), 0);
    assert_int_equal(graphql_object_field(q, "f", "Int", NULL, 0, NULL), 0);
    assert_int_equal(graphql_schema_query(s, "Query"), 0);
    assert_int_equal(graphql_schema_finish(s, err, sizeof(err)), LMQ_EINVAL);
    assert_string_equal(
        err,
        "Cannot reference Input Object \"A\" within itself through a series of non-null fields.");
    graphql_schema_free(s);
}

/* jansson's allocations fail from the Nth on (0: never); counted either way */
static size_t alloc_fail_at, alloc_count;

static void *counting_malloc(size_t size)
{
    alloc_count++;
    if (alloc_fail_at != 0 && alloc_count >= alloc_fail_at) {
        return NULL;
    }
    return malloc(size);
}

static void test_every_jansson_allocation_failure_is_handled(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "query ($id: ID!) { person(id: $id) { name friends { name mustFail } } "
        "__type(name: \"Role\") { enumValues { name } fields { name } } people(first: 2) { ...F } "
        "nonNull: echo(o: {minAmount: 1}) } fragment F on Person { id tags }",
        "{ hero { nme } people(role: MANAGER) { id } }",
        "query ($id: ID!) { person(id: $id) { name } }",
        "{ hero { name ",
    };
    struct graphql_resolvers r = {.ctx = &tctx, .resolve = graphql_test_resolve};
    for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
        json_t *vars = json_loads(d == 2 ? "{\"id\": 5}" : "{\"id\": \"p1\"}", 0, NULL);
        size_t total = 0;
        for (size_t n = 0; n == 0 || n <= total; n++) {
            json_t *resp = NULL;
            alloc_count = 0;
            alloc_fail_at = n;
            json_set_alloc_funcs(counting_malloc, free);
            int rc =
                graphql_execute(schema, docs[d], strlen(docs[d]), NULL, vars, &wide, &r, &resp);
            json_set_alloc_funcs(malloc, free);
            if (n == 0) {
                total = alloc_count; /* the run without failures: how many there are */
                assert_int_equal(rc, 0);
            }
            /* a response, or out of memory and none: never a crash */
            assert_true((rc == 0 && json_is_object(resp)) || (rc == LMQ_ENOMEM && resp == NULL));
            json_decref(resp);
        }
        assert_true(total > 10);
        json_decref(vars);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lexer_and_parser_edge_cases),
        cmocka_unit_test(test_each_validation_rule),
        cmocka_unit_test(test_execution),
        cmocka_unit_test(test_one_resolver_call_per_field_per_level),
        cmocka_unit_test(test_a_failing_batch_is_a_field_error_for_each_parent),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_a_fragment_cycle_inside_fields_is_an_error_not_a_stack_overflow),
        cmocka_unit_test(test_introspection_basics),
        cmocka_unit_test(test_sdl_and_schema_checks),
        cmocka_unit_test(test_every_jansson_allocation_failure_is_handled),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
