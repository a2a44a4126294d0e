/* The GraphQL engine's test schema (see graphql_testschema.h). Keep in step with
 * tests/js/graphql_diff.js, which resolves the same fields the same way. */
#include <string.h>

#include "graphql_testschema.h"

enum {
    T_HERO = 1,
    T_PERSON = 2,
    T_PEOPLE = 3,
    T_PAYMENTS = 4,
    T_ECHO = 5,
    T_NULL = 6,
    T_FAIL = 7,
    T_NUMBERS = 8,
    T_BADINT = 9,
    T_FRIENDS = 11,
    T_BEST = 12,
    T_PAYER = 13,
};

static const char *const data_json =
    "{\"people\":["
    "{\"id\":\"p1\",\"name\":\"Ada\",\"role\":\"ADMIN\",\"age\":36,\"score\":9.5,\"tags\":["
    "\"math\",\"engines\"],\"friends\":[\"p2\",\"p3\"],\"best\":\"p2\"},"
    "{\"id\":\"p2\",\"name\":\"Grace\",\"role\":\"USER\",\"age\":85,\"score\":7.25,\"tags\":[],"
    "\"friends\":[\"p1\"],\"best\":\"p1\"},"
    "{\"id\":\"p3\",\"name\":\"Linus\",\"role\":\"GUEST\",\"age\":null,\"score\":1e3,\"tags\":["
    "\"kernel\"],\"friends\":[],\"best\":null},"
    "{\"id\":\"p4\",\"name\":\"Barbara\",\"role\":\"USER\",\"age\":80,\"score\":0.1,\"tags\":["
    "\"clu\"],\"friends\":[\"p1\",\"p2\",\"p3\"],\"best\":\"p3\"},"
    "{\"id\":\"p5\",\"name\":\"Ken\",\"role\":null,\"age\":79,\"score\":-2,\"tags\":[\"unix\","
    "\"go\"],\"friends\":[\"p4\"],\"best\":\"p9\"}],"
    "\"payments\":["
    "{\"id\":\"pay1\",\"amount\":10.5,\"currency\":\"EUR\",\"payerId\":\"p1\",\"status\":\"ADMIN\"}"
    ","
    "{\"id\":\"pay2\",\"amount\":99,\"currency\":\"USD\",\"payerId\":\"p2\",\"status\":\"USER\"},"
    "{\"id\":\"pay3\",\"amount\":0.01,\"currency\":null,\"payerId\":\"p1\",\"status\":null},"
    "{\"id\":\"pay4\",\"amount\":1234567.875,\"currency\":\"EUR\",\"payerId\":\"p4\",\"status\":"
    "\"GUEST\"},"
    "{\"id\":\"pay5\",\"amount\":null,\"currency\":\"GBP\",\"payerId\":\"p5\",\"status\":\"USER\"},"
    "{\"id\":\"pay6\",\"amount\":3,\"currency\":\"EUR\",\"payerId\":\"p9\",\"status\":\"BOGUS\"}]}";

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ != 0) {                                                                            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

int graphql_test_schema(struct graphql_schema **out)
{
    struct graphql_schema *s = NULL;
    struct graphql_object *q, *p, *pay, *filter, *inner;
    struct graphql_field *f;
    static const char *const roles[] = {"ADMIN", "USER", "GUEST"};
    char err[256];
    int rc = graphql_schema_new(&s);
    if (rc != 0) {
        return rc;
    }
    rc = LMQ_EINVAL;
    TRY(graphql_schema_object(s, "Query", "The root of the test schema.", &q));
    TRY(graphql_object_field(q, "hero", "Person", "The first person.", T_HERO, NULL));
    TRY(graphql_object_field(q, "person", "Person", NULL, T_PERSON, &f));
    TRY(graphql_field_arg(f, "id", "ID!", NULL, NULL));
    TRY(graphql_object_field(q, "people", "[Person!]!", NULL, T_PEOPLE, &f));
    TRY(graphql_field_arg(f, "first", "Int", "10", NULL));
    TRY(graphql_field_arg(f, "role", "Role", NULL, "Only people with this role."));
    TRY(graphql_object_field(q, "payments", "[Payment]", NULL, T_PAYMENTS, &f));
    TRY(graphql_field_arg(f, "filter", "PaymentFilter", NULL, NULL));
    TRY(graphql_field_arg(f, "limit", "Int", "5", NULL));
    TRY(graphql_object_field(q, "echo", "JSON", "Returns its arguments.", T_ECHO, &f));
    TRY(graphql_field_arg(f, "i", "Int", NULL, NULL));
    TRY(graphql_field_arg(f, "f", "Float", NULL, NULL));
    TRY(graphql_field_arg(f, "s", "String", NULL, NULL));
    TRY(graphql_field_arg(f, "b", "Boolean", NULL, NULL));
    TRY(graphql_field_arg(f, "id", "ID", NULL, NULL));
    TRY(graphql_field_arg(f, "r", "Role", NULL, NULL));
    TRY(graphql_field_arg(f, "l", "[Int!]", NULL, NULL));
    TRY(graphql_field_arg(f, "ll", "[[String]]", NULL, NULL));
    TRY(graphql_field_arg(f, "o", "PaymentFilter", NULL, NULL));
    TRY(graphql_field_arg(f, "j", "JSON", NULL, NULL));
    TRY(graphql_field_arg(f, "d", "String", "\"x\\\"y\"", NULL));
    TRY(graphql_field_arg(f, "dl", "[Role]", "[\"ADMIN\", \"GUEST\"]", NULL));
    TRY(graphql_field_arg(f, "do", "PaymentFilter", "{\"minAmount\": 1.5, \"roles\": [\"USER\"]}",
                          NULL));
    TRY(graphql_object_field(q, "nonNullNull", "String!", NULL, T_NULL, NULL));
    TRY(graphql_object_field(q, "failing", "String", NULL, T_FAIL, NULL));
    TRY(graphql_object_field(q, "numbers", "[Int]", NULL, T_NUMBERS, NULL));
    TRY(graphql_object_field(q, "badInt", "Int", NULL, T_BADINT, NULL));
    TRY(graphql_object_field(q, "need", "String", NULL, T_ECHO, &f));
    TRY(graphql_field_arg(f, "req", "Int!", NULL, NULL));
    TRY(graphql_field_arg(f, "opt", "Int!", "3", NULL));

    TRY(graphql_schema_object(s, "Person", "A person.\n\nWith a second paragraph.", &p));
    TRY(graphql_object_field(p, "id", "ID!", NULL, 0, NULL));
    TRY(graphql_object_field(p, "name", "String!", "The \"display\" name.", 0, NULL));
    TRY(graphql_object_field(p, "role", "Role", NULL, 0, NULL));
    TRY(graphql_object_field(p, "age", "Int", NULL, 0, NULL));
    TRY(graphql_object_field(p, "score", "Float", NULL, 0, NULL));
    TRY(graphql_object_field(p, "tags", "[String!]!", NULL, 0, NULL));
    TRY(graphql_object_field(p, "friends", "[Person!]", NULL, T_FRIENDS, &f));
    TRY(graphql_field_arg(f, "first", "Int", NULL, NULL));
    TRY(graphql_object_field(p, "bestFriend", "Person", NULL, T_BEST, NULL));
    TRY(graphql_object_field(p, "mustFail", "String!", NULL, T_FAIL, NULL));

    /* descriptions that printSchema prints each its own way */
    TRY(graphql_schema_object(s, "Payment", " starts with a space", &pay));
    TRY(graphql_object_field(pay, "id", "ID!", "ends with a quote\"", 0, NULL));
    TRY(graphql_object_field(pay, "amount", "Float!",
                             "A description longer than seventy characters is printed on lines "
                             "of its own.",
                             0, NULL));
    TRY(graphql_object_field(pay, "currency", "String", "has \"\"\" inside and ends with \\", 0,
                             NULL));
    TRY(graphql_object_field(pay, "status", "Role", "a control \x01 character\tand a tab", 0,
                             NULL));
    TRY(graphql_object_field(pay, "payer", "Person", NULL, T_PAYER, NULL));

    TRY(graphql_schema_enum(s, "Role", "What a person may do.", roles, 3));
    TRY(graphql_schema_input(s, "PaymentFilter", NULL, &filter));
    TRY(graphql_object_field(filter, "minAmount", "Float", NULL, 0, NULL));
    TRY(graphql_object_field(filter, "currency", "String", NULL, 0, NULL));
    TRY(graphql_object_field(filter, "roles", "[Role!]", NULL, 0, NULL));
    TRY(graphql_object_field(filter, "inner", "Inner", NULL, 0, NULL));
    TRY(graphql_schema_input(s, "Inner", NULL, &inner));
    TRY(graphql_object_field(inner, "deep", "Int!", NULL, 0, NULL));
    TRY(graphql_object_field(inner, "list", "[Inner!]", NULL, 0, NULL));
    TRY(graphql_schema_scalar(s, "JSON", "Any JSON value."));
    TRY(graphql_schema_query(s, "Query"));
    rc = graphql_schema_finish(s, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "test schema: %s\n", err);
    }
out:
    if (rc != 0) {
        graphql_schema_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

int graphql_test_ctx_init(struct graphql_test_ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->data = json_loads(data_json, 0, NULL);
    return c->data != NULL ? 0 : LMQ_ENOMEM;
}

void graphql_test_ctx_free(struct graphql_test_ctx *c)
{
    json_decref(c->data);
    c->data = NULL;
}

static json_t *find(json_t *list, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (id != NULL && strcmp(json_string_value(json_object_get(v, "id")), id) == 0) {
            return json_incref(v);
        }
    }
    return NULL;
}

static json_t *resolve_one(struct graphql_test_ctx *c, const struct graphql_batch *b,
                           const json_t *parent, char **error)
{
    json_t *people = json_object_get(c->data, "people");
    json_t *payments = json_object_get(c->data, "payments");
    const json_t *args = b->args;
    switch (b->resolver_tag) {
    case T_HERO:
        return json_incref(json_array_get(people, 0));
    case T_PERSON:
        return find(people, json_string_value(json_object_get(args, "id")));
    case T_PEOPLE: {
        json_t *out = json_array(), *v;
        json_int_t first = json_integer_value(json_object_get(args, "first"));
        const char *role = json_string_value(json_object_get(args, "role"));
        size_t i;
        json_array_foreach(people, i, v)
        {
            const char *r = json_string_value(json_object_get(v, "role"));
            if ((json_int_t)json_array_size(out) < first &&
                (role == NULL || (r != NULL && strcmp(r, role) == 0))) {
                json_array_append(out, v);
            }
        }
        return out;
    }
    case T_PAYMENTS: {
        json_t *out = json_array(), *v;
        json_t *lim = json_object_get(args, "limit");
        json_t *filter = json_object_get(args, "filter");
        const char *cur = json_string_value(json_object_get(filter, "currency"));
        json_t *min = json_object_get(filter, "minAmount");
        size_t i;
        json_array_foreach(payments, i, v)
        {
            json_t *amount = json_object_get(v, "amount");
            const char *vc = json_string_value(json_object_get(v, "currency"));
            if (json_is_integer(lim) &&
                (json_int_t)json_array_size(out) >= json_integer_value(lim)) {
                break;
            }
            if (cur != NULL && (vc == NULL || strcmp(cur, vc) != 0)) {
                continue;
            }
            if (json_is_number(min) &&
                !(json_is_number(amount) && json_number_value(amount) >= json_number_value(min))) {
                continue;
            }
            json_array_append(out, v);
        }
        return out;
    }
    case T_ECHO:
        return json_deep_copy(args);
    case T_NULL:
        return NULL;
    case T_FAIL:
        *error = strdup("boom");
        return NULL;
    case T_NUMBERS:
        return json_loads("[1, 2, null, 4]", 0, NULL);
    case T_BADINT:
        return json_integer(1099511627776);
    case T_FRIENDS: {
        json_t *out = json_array(), *v;
        json_t *first = json_object_get(args, "first");
        size_t i;
        json_array_foreach(json_object_get(parent, "friends"), i, v)
        {
            if (json_is_integer(first) && (json_int_t)i >= json_integer_value(first)) {
                break;
            }
            json_t *fr = find(people, json_string_value(v));
            json_array_append_new(out, fr != NULL ? fr : json_null());
        }
        return out;
    }
    case T_BEST:
        return find(people, json_string_value(json_object_get(parent, "best")));
    case T_PAYER:
        return find(people, json_string_value(json_object_get(parent, "payerId")));
    default:
        *error = strdup("no such resolver");
        return NULL;
    }
}

int graphql_test_resolve(void *ctx, struct graphql_batch *b)
{
    struct graphql_test_ctx *c = ctx;
    LMQ_ASSERT(b->resolver_tag > 0 && b->resolver_tag < 32);
    c->calls[b->resolver_tag]++;
    c->calls_total++;
    c->parents_total += b->count;
    for (size_t i = 0; i < b->count; i++) {
        b->results[i] = resolve_one(c, b, b->parents[i], &b->errors[i]);
    }
    return 0;
}
