/*
 * The typed objects over GraphQL (docs/PROTOCOL.md "Objects over GraphQL"):
 *
 *   POST /graphql                  {"query","variables","operationName"} (application/json)
 *   GET  /graphql?query=&variables=&operationName=
 *   GET  /graphql/schema.graphql   the schema in SDL (public, as /openapi.json)
 *
 * Auth as GET /api/v1: a bearer token, the reader rule (an identity reads the resources it
 * authored or that were sent to it), [data] readers_all read everything. [data] graphql_auth =
 * false opens reads without a token, only for a request on a loopback listener from a loopback
 * peer with no proxy header (X-Forwarded-For, Forwarded, X-Real-IP): a local proxy forwarding
 * remote traffic is never mistaken for a local caller.
 *
 * The resolvers run on the loop thread, synchronously, as the REST reads do; the engine calls
 * each field once per level with every parent, so the references of a level (x-link) cost one
 * store read per STORE_DATA_BATCH_MAX permalinks, never one per item.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_graphql.h"
#include "net/http.h"

/* Resources one rl_T / versions_T page holds at most. */
#define GQL_LIMIT_MAX 100
/* Distinct checkpoint sizes one request's extensions.asOf lists (more are read, not listed). */
#define GQL_AS_OF_MAX 16
/* The member a node read as of a checkpoint carries for its references: "__" names are no
 * field a query may select, so it never shows. */
#define GQL_AS_OF_MEMBER "__asOf"
#define GQL_AS_OF_TOO_LONG                                                                         \
    "checkpoint: the read took longer than [data] graphql_max_ms (as of a checkpoint, a filter "   \
    "or an order looks at every resource created before it)"
#define GQL_NO_STORE "Cache-Control: no-store\r\n"
#define GQL_CHALLENGE "WWW-Authenticate: Bearer realm=\"ledgermq\"\r\nCache-Control: no-store\r\n"

/* One request's resolver context. */
struct gql_call {
    struct broker *b;
    const struct data_gql *g;
    struct lmq_bytes reader; /* data NULL: reads everything */
    uint64_t store_reads;
    uint64_t as_of[GQL_AS_OF_MAX]; /* the checkpoint sizes read at, for extensions.asOf */
    size_t as_of_count;
};

void data_graphql_rebuild(struct data *d)
{
    LMQ_ASSERT(d != NULL);
    struct data_gql *fresh = NULL;
    d->gql_error[0] = '\0';
    if (d->models != NULL &&
        data_gql_build(d->models, &fresh, d->gql_error, sizeof(d->gql_error)) != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "data_graphql_failed", "GraphQL mapping: %s", d->gql_error);
        fresh = NULL;
    }
    data_gql_free(d->gql);
    d->gql = fresh;
}

void data_graphql_counts(const struct broker *b, uint64_t *requests, uint64_t *store_reads)
{
    const struct data *d = b->data;
    *requests = d != NULL ? d->graphql_requests : 0;
    *store_reads = d != NULL ? d->graphql_store_reads : 0;
}

/* ---- resolvers ---- */

static char *gql_msg(const char *m)
{
    return strdup(m);
}

/* A node: the resource JSON with _deleted always there; as of a checkpoint (as_of), the size
 * in GQL_AS_OF_MEMBER, so its references are read as of the same checkpoint. */
static json_t *gql_node_at(const struct store_data_row *r, bool as_of, uint64_t size)
{
    json_t *o = data_http_resource(r);
    if (o != NULL && json_object_get(o, "_deleted") == NULL &&
        json_object_set_new(o, "_deleted", json_false()) != 0) {
        json_decref(o);
        return NULL;
    }
    if (o != NULL && as_of &&
        json_object_set_new(o, GQL_AS_OF_MEMBER, json_integer((json_int_t)size)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

struct gql_one {
    const char *model;
    json_t *node;
    int failed;
    bool as_of;
    uint64_t size;
};

static int gql_one_row(void *ctx, const struct store_data_row *r)
{
    struct gql_one *o = ctx;
    bool same =
        r->model.len == strlen(o->model) && memcmp(r->model.data, o->model, r->model.len) == 0;
    if (!same)
        return 0; /* another model's resource is not found under this one */
    o->node = gql_node_at(r, o->as_of, o->size);
    return o->node != NULL ? 0 : (o->failed = LMQ_ENOMEM);
}

static int gql_io(struct gql_call *c, int rc)
{
    if (rc == LMQ_EIO)
        broker_fail_stop(c->b, "data read", rc);
    return rc;
}

/* The checkpoint argument of rl_T or r_T: 0 with *as_of false when absent, true with *size when
 * it names one of this server's checkpoints (pipeline_checkpoint_size), else LMQ_EINVAL with a
 * message in why. Remembers the size for extensions.asOf. */
static int gql_checkpoint(struct gql_call *c, const json_t *args, bool *as_of, uint64_t *size,
                          char *why, size_t why_len)
{
    LMQ_ASSERT(c != NULL && as_of != NULL && size != NULL);
    const json_t *v = json_object_get(args, "checkpoint");
    *as_of = false;
    *size = 0;
    if (v == NULL || json_is_null(v))
        return LMQ_OK;
    if (pipeline_checkpoint_size(c->b, json_string_value(v), json_string_length(v), size, why,
                                 why_len) != LMQ_OK)
        return LMQ_EINVAL;
    *as_of = true;
    bool listed = false;
    for (size_t i = 0; i < c->as_of_count && !listed; i++)
        listed = c->as_of[i] == *size;
    if (!listed && c->as_of_count < GQL_AS_OF_MAX)
        c->as_of[c->as_of_count++] = *size;
    LMQ_ASSERT(c->as_of_count <= GQL_AS_OF_MAX);
    return LMQ_OK;
}

/* r_T(_permalink, _link, checkpoint). */
static int gql_resolve_r(struct gql_call *c, const struct data_gql_entry *e,
                         struct graphql_batch *batch)
{
    const char *permalink = json_string_value(json_object_get(batch->args, "_permalink"));
    const char *link = json_string_value(json_object_get(batch->args, "_link"));
    bool as_of = false;
    uint64_t size = 0;
    char why[160];
    bool bad_checkpoint = gql_checkpoint(c, batch->args, &as_of, &size, why, sizeof(why)) != LMQ_OK;
    for (size_t i = 0; i < batch->count; i++) {
        if ((permalink == NULL) == (link == NULL) || bad_checkpoint) {
            batch->errors[i] =
                gql_msg(bad_checkpoint ? why : "give exactly one of _permalink and _link");
            continue;
        }
        const char *key = permalink != NULL ? permalink : link;
        if (!data_hex64(key))
            continue; /* not a link: nothing has it */
        struct gql_one one = {.model = e->model, .as_of = as_of, .size = size};
        bool found = false;
        struct lmq_bytes k = {(const uint8_t *)key, DATA_HEX64_CHARS};
        struct store *st = c->b->store;
        c->store_reads++;
        int rc;
        if (as_of)
            rc = permalink != NULL
                     ? store_data_resource_at(st, k, c->reader, size, gql_one_row, &one, &found)
                     : store_data_version_at(st, k, c->reader, size, gql_one_row, &one, &found);
        else
            rc = permalink != NULL
                     ? store_data_resource(st, k, c->reader, gql_one_row, &one, &found)
                     : store_data_version(st, k, c->reader, gql_one_row, &one, &found);
        if (rc != LMQ_OK || one.failed)
            return gql_io(c, rc != LMQ_OK ? rc : one.failed);
        batch->results[i] = one.node;
    }
    return LMQ_OK;
}

/* A page being filled: edges, and the row past the page says there is a next one. */
struct gql_page {
    json_t *edges;
    size_t rows, limit;
    const char *order; /* the order field's name ("_created" or a property) */
    bool versions;     /* cursor: the ledger index */
    bool as_of;        /* as of a checkpoint: its size is the cursor's 4th member */
    uint64_t size;
    json_t *last_cursor;
    int failed;
};

static int gql_page_row(void *ctx, const struct store_data_row *r)
{
    struct gql_page *p = ctx;
    if (p->rows++ >= p->limit)
        return 0;
    json_t *node = gql_node_at(r, p->as_of, p->size);
    char *cursor = NULL;
    if (node != NULL && p->versions) {
        json_t *c = json_pack("[sI]", "_ledgerIndex", (json_int_t)r->ledger_index);
        cursor = c != NULL ? json_dumps(c, JSON_COMPACT) : NULL;
        json_decref(c);
    } else if (node != NULL) {
        json_t *v = strcmp(p->order, "_created") == 0 ? NULL : json_object_get(node, p->order);
        json_t *c = json_pack("[sOI]", p->order, v != NULL ? v : json_null(),
                              (json_int_t)r->created_ledger_index);
        if (c != NULL && p->as_of &&
            json_array_append_new(c, json_integer((json_int_t)p->size)) != 0) {
            json_decref(c);
            c = NULL;
        }
        cursor = c != NULL ? json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(c);
    }
    json_t *edge = cursor != NULL ? json_pack("{sOss}", "node", node, "cursor", cursor) : NULL;
    json_decref(node);
    free(cursor);
    if (edge == NULL || json_array_append_new(p->edges, edge) != 0)
        return p->failed = LMQ_ENOMEM;
    json_decref(p->last_cursor);
    p->last_cursor = json_incref(json_object_get(edge, "cursor"));
    return 0;
}

static json_t *gql_connection(struct gql_page *p)
{
    json_t *page = json_pack("{sOs{sOsb}}", "edges", p->edges, "pageInfo", "endCursor",
                             p->last_cursor != NULL ? p->last_cursor : json_null(), "hasNextPage",
                             p->rows > p->limit);
    json_decref(p->edges);
    json_decref(p->last_cursor);
    return page;
}

/* A filter or cursor value from its coerced JSON; false for null or a non-scalar. */
static bool gql_value(const json_t *v, struct store_data_value *out)
{
    if (json_is_integer(v))
        *out = (struct store_data_value){.type = STORE_DATA_INT, .i = json_integer_value(v)};
    else if (json_is_real(v))
        *out = (struct store_data_value){.type = STORE_DATA_REAL, .d = json_real_value(v)};
    else if (json_is_boolean(v))
        *out = (struct store_data_value){.type = STORE_DATA_INT, .i = json_is_true(v) ? 1 : 0};
    else if (json_is_string(v))
        *out = (struct store_data_value){
            .type = STORE_DATA_TEXT,
            .text = {(const uint8_t *)json_string_value(v), json_string_length(v)}};
    else
        return false;
    return true;
}

/* A plan being built from rl_T's arguments. */
struct gql_plan {
    struct store_data_query q;
    struct store_data_filter filters[STORE_DATA_FILTERS_MAX];
    struct store_data_value values[STORE_DATA_FILTERS_MAX * STORE_DATA_IN_VALUES_MAX];
    char paths[STORE_DATA_FILTERS_MAX][72];
    size_t value_count;
    const char *bad;
};

static const struct {
    const char *name;
    enum store_data_op op;
} gql_ops[] = {
    {"EQ", STORE_DATA_EQ},
    {"NEQ", STORE_DATA_NEQ},
    {"IN", STORE_DATA_IN},
    {"NOT_IN", STORE_DATA_NOT_IN},
    {"LT", STORE_DATA_LT},
    {"LTE", STORE_DATA_LTE},
    {"GT", STORE_DATA_GT},
    {"GTE", STORE_DATA_GTE},
    {"STARTS_WITH", STORE_DATA_STARTS_WITH},
    {"CONTAINS", STORE_DATA_CONTAINS},
    {"NULL", STORE_DATA_IS_NULL},
};

/* One operator on property prop with operand v. */
static void gql_plan_op(struct gql_plan *p, const char *prop, size_t op, const json_t *v)
{
    if (json_is_null(v))
        return; /* an operator given as null is not given */
    if (p->q.filter_count == STORE_DATA_FILTERS_MAX) {
        p->bad = "filter: at most 16 operators";
        return;
    }
    size_t k = p->q.filter_count;
    struct store_data_filter *f = &p->filters[k];
    int n = snprintf(p->paths[k], sizeof(p->paths[k]), "$.%s", prop);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(p->paths[k]));
    *f = (struct store_data_filter){.path = {(const uint8_t *)p->paths[k], (size_t)n},
                                    .op = gql_ops[op].op,
                                    .values = &p->values[p->value_count]};
    if (gql_ops[op].op == STORE_DATA_IS_NULL) {
        f->op = json_is_true(v) ? STORE_DATA_IS_NULL : STORE_DATA_NOT_NULL;
    } else if (json_is_array(v)) {
        if (json_array_size(v) == 0 || json_array_size(v) > STORE_DATA_IN_VALUES_MAX) {
            p->bad = "filter: IN and NOT_IN take 1..100 values";
            return;
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (!gql_value(json_array_get(v, i), &p->values[p->value_count + i]))
                p->bad = "filter: a value is null";
        }
        f->value_count = json_array_size(v);
    } else {
        if (!gql_value(v, &p->values[p->value_count]))
            p->bad = "filter: a value is null";
        f->value_count = 1;
    }
    p->value_count += f->value_count;
    p->q.filter_count++;
}

static void gql_plan_filter(struct gql_plan *p, const json_t *filter)
{
    const char *prop;
    json_t *ops;
    json_object_foreach((json_t *)filter, prop, ops)
    {
        for (size_t i = 0; p->bad == NULL && i < sizeof(gql_ops) / sizeof(gql_ops[0]); i++) {
            const json_t *v = json_object_get(ops, gql_ops[i].name);
            if (v != NULL)
                gql_plan_op(p, prop, i, v);
        }
    }
}

/* after: the cursor an edge of the same order (and the same checkpoint, its 4th member) gave. */
static void gql_plan_after(struct gql_plan *p, const char *order, const json_t *after,
                           json_t **hold)
{
    const char *text = json_string_value(after);
    if (text == NULL)
        return;
    json_t *c = json_loads(text, JSON_DECODE_ANY, NULL);
    *hold = c;
    const char *field = json_string_value(json_array_get(c, 0));
    const json_t *created = json_array_get(c, 2);
    const json_t *size = json_array_get(c, 3);
    if (json_array_size(c) < 3 || json_array_size(c) > 4 || field == NULL ||
        strcmp(field, order) != 0 || !json_is_integer(created) || json_integer_value(created) < 0) {
        p->bad = "after: not a cursor of this order (take an endCursor or cursor)";
        return;
    }
    bool same_checkpoint = p->q.as_of ? json_is_integer(size) && json_integer_value(size) >= 0 &&
                                            (uint64_t)json_integer_value(size) == p->q.as_of_size
                                      : size == NULL;
    if (!same_checkpoint) {
        p->bad = "after: a cursor of another checkpoint (give the checkpoint its page was read at)";
        return;
    }
    p->q.has_cursor = true;
    p->q.cursor_created = (uint64_t)json_integer_value(created);
    if (!gql_value(json_array_get(c, 1), &p->q.cursor_value))
        p->q.cursor_value = (struct store_data_value){.type = STORE_DATA_NULL};
}

/* rl_T(filter, orderBy, limit, after, checkpoint). */
static int gql_resolve_rl(struct gql_call *c, const struct data_gql_entry *e,
                          struct graphql_batch *batch)
{
    json_int_t limit = json_integer_value(json_object_get(batch->args, "limit"));
    struct gql_plan *p = calloc(1, sizeof(*p)); /* ~40 KiB of filter values */
    if (p == NULL)
        return LMQ_ENOMEM;
    const json_t *by = json_object_get(batch->args, "orderBy");
    const char *order = json_string_value(json_object_get(by, "field"));
    order = order != NULL ? order : "_created";
    char order_path[72];
    int n = snprintf(order_path, sizeof(order_path), "$.%s", order);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(order_path));
    p->q = (struct store_data_query){
        .model = {(const uint8_t *)e->model, strlen(e->model)},
        .reader = c->reader,
        .filters = p->filters,
        .order_path = {(const uint8_t *)order_path, strcmp(order, "_created") == 0 ? 0 : (size_t)n},
        .descending = strcmp(gql_str(json_object_get(by, "direction"), "ASC"), "DESC") == 0,
        .limit = (size_t)limit + 1, /* one more: whether there is a next page */
    };
    json_t *cursor = NULL;
    char why[160];
    if (limit < 1 || limit > GQL_LIMIT_MAX)
        p->bad = "limit: 1..100";
    else if (gql_checkpoint(c, batch->args, &p->q.as_of, &p->q.as_of_size, why, sizeof(why)) !=
             LMQ_OK)
        p->bad = why;
    /* As of a checkpoint a filter or order can look at every resource created before it: the
     * read itself is bounded by the request's time. */
    p->q.max_ms = p->q.as_of ? c->b->cfg.data.graphql_max_ms : 0;
    if (p->bad == NULL)
        gql_plan_filter(p, json_object_get(batch->args, "filter"));
    if (p->bad == NULL)
        gql_plan_after(p, order, json_object_get(batch->args, "after"), &cursor);
    int rc = LMQ_OK;
    for (size_t i = 0; rc == LMQ_OK && i < batch->count; i++) {
        if (p->bad != NULL) {
            batch->errors[i] = gql_msg(p->bad);
            continue;
        }
        struct gql_page page = {.edges = json_array(),
                                .limit = (size_t)limit,
                                .order = order,
                                .as_of = p->q.as_of,
                                .size = p->q.as_of_size};
        size_t count = 0;
        c->store_reads++;
        rc = page.edges != NULL ? store_data_query(c->b->store, &p->q, gql_page_row, &page, &count)
                                : LMQ_ENOMEM;
        rc = rc == LMQ_OK ? page.failed : rc;
        if (rc == LMQ_ELIMIT) { /* an as-of read ran out of time: this field's error */
            batch->errors[i] = gql_msg(GQL_AS_OF_TOO_LONG);
            json_decref(gql_connection(&page));
            rc = LMQ_OK;
            continue;
        }
        json_t *conn = gql_connection(&page);
        if (rc == LMQ_OK && conn == NULL)
            rc = LMQ_ENOMEM;
        if (rc == LMQ_OK)
            batch->results[i] = conn;
        else
            json_decref(conn);
    }
    json_decref(cursor);
    free(p);
    return gql_io(c, rc);
}

/* versions_T(_permalink, limit, after). */
static int gql_resolve_versions(struct gql_call *c, const struct data_gql_entry *e,
                                struct graphql_batch *batch)
{
    const char *permalink = json_string_value(json_object_get(batch->args, "_permalink"));
    json_int_t limit = json_integer_value(json_object_get(batch->args, "limit"));
    const char *after = json_string_value(json_object_get(batch->args, "after"));
    uint64_t from = 0;
    const char *bad = limit < 1 || limit > GQL_LIMIT_MAX ? "limit: 1..100" : NULL;
    if (after != NULL && bad == NULL) {
        json_t *cur = json_loads(after, JSON_DECODE_ANY, NULL);
        json_t *idx = json_array_get(cur, 1);
        if (json_array_size(cur) != 2 || !json_is_integer(idx) || json_integer_value(idx) < 0 ||
            strcmp(gql_str(json_array_get(cur, 0), ""), "_ledgerIndex") != 0)
            bad = "after: not a cursor of versions (take an endCursor or cursor)";
        else
            from = (uint64_t)json_integer_value(idx) + 1;
        json_decref(cur);
    }
    int rc = LMQ_OK;
    for (size_t i = 0; rc == LMQ_OK && i < batch->count; i++) {
        if (bad != NULL) {
            batch->errors[i] = gql_msg(bad);
            continue;
        }
        struct gql_page page = {.edges = json_array(), .limit = (size_t)limit, .versions = true};
        if (page.edges == NULL)
            return LMQ_ENOMEM;
        /* The resource first: its model, and whether the caller may read it (else empty). */
        struct gql_one one = {.model = e->model};
        bool found = false;
        struct lmq_bytes k = {(const uint8_t *)permalink, DATA_HEX64_CHARS};
        if (data_hex64(permalink)) {
            c->store_reads++;
            rc = store_data_resource(c->b->store, k, c->reader, gql_one_row, &one, &found);
            rc = rc == LMQ_OK ? one.failed : rc;
        }
        size_t count = 0;
        if (rc == LMQ_OK && one.node != NULL) {
            c->store_reads++;
            rc = store_data_versions(c->b->store, k, c->reader, from, (size_t)limit + 1,
                                     gql_page_row, &page, &count);
            rc = rc == LMQ_OK ? page.failed : rc;
        }
        json_decref(one.node);
        json_t *conn = gql_connection(&page);
        if (rc == LMQ_OK && conn == NULL)
            rc = LMQ_ENOMEM;
        if (rc == LMQ_OK)
            batch->results[i] = conn;
        else
            json_decref(conn);
    }
    return gql_io(c, rc);
}

/* The resources of one batched read, by permalink. */
struct gql_links {
    const char *model;
    json_t *found; /* permalink -> node */
    int failed;
    bool as_of; /* the parents were read as of a checkpoint of this size */
    uint64_t size;
};

static int gql_links_row(void *ctx, const struct store_data_row *r)
{
    struct gql_links *l = ctx;
    if (r->model.len != strlen(l->model) || memcmp(r->model.data, l->model, r->model.len) != 0)
        return 0; /* a link to another model's resource is null */
    json_t *node = gql_node_at(r, l->as_of, l->size);
    char key[DATA_HEX64_CHARS + 1];
    snprintf(key, sizeof(key), "%.*s", (int)r->permalink.len, (const char *)r->permalink.data);
    if (node == NULL || json_object_set_new(l->found, key, node) != 0)
        return l->failed = LMQ_ENOMEM;
    return 0;
}

/* Adds the permalink(s) v holds (a string or a list of them) to want, once each. */
static int gql_links_want(json_t *want, const json_t *v)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
        if (data_hex64(s) && json_object_get(want, s) == NULL &&
            json_object_set_new(want, s, json_true()) != 0)
            return LMQ_ENOMEM;
    }
    return LMQ_OK;
}

/* The checkpoint parent was read at: 0 for the latest, else its size + 1. */
static uint64_t gql_parent_as_of(const json_t *parent)
{
    const json_t *v = json_object_get(parent, GQL_AS_OF_MEMBER);
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) + 1 : 0;
}

/* Reads every permalink of want (as l says: latest or as of), STORE_DATA_BATCH_MAX at a time,
 * into l->found. */
static int gql_links_read(struct gql_call *c, json_t *want, struct gql_links *l)
{
    struct lmq_bytes keys[STORE_DATA_BATCH_MAX];
    size_t n = 0, seen = 0, total = json_object_size(want);
    const char *key;
    json_t *unused;
    int rc = LMQ_OK;
    json_object_foreach(want, key, unused)
    {
        if (rc != LMQ_OK)
            break;
        keys[n++] = (struct lmq_bytes){(const uint8_t *)key, DATA_HEX64_CHARS};
        if (n == STORE_DATA_BATCH_MAX || ++seen == total) {
            size_t count = 0;
            c->store_reads++;
            rc = l->as_of ? store_data_resources_at(c->b->store, keys, n, c->reader, l->size,
                                                    gql_links_row, l, &count)
                          : store_data_resources(c->b->store, keys, n, c->reader, gql_links_row, l,
                                                 &count);
            rc = rc == LMQ_OK ? l->failed : rc;
            n = 0;
        }
    }
    LMQ_ASSERT(rc != LMQ_OK || n == 0);
    return rc;
}

/* The parents of batch read at the checkpoint key (gql_parent_as_of): their links' resources
 * read as of the same checkpoint, in batches. */
static int gql_resolve_link_group(struct gql_call *c, const struct data_gql_entry *e,
                                  struct graphql_batch *batch, uint64_t as_of_key)
{
    json_t *want = json_object();
    struct gql_links l = {.model = e->model,
                          .found = json_object(),
                          .as_of = as_of_key > 0,
                          .size = as_of_key > 0 ? as_of_key - 1 : 0};
    int rc = want != NULL && l.found != NULL ? LMQ_OK : LMQ_ENOMEM;
    for (size_t i = 0; rc == LMQ_OK && i < batch->count; i++) {
        if (gql_parent_as_of(batch->parents[i]) == as_of_key)
            rc = gql_links_want(want, json_object_get(batch->parents[i], e->field));
    }
    if (rc == LMQ_OK && json_object_size(want) > 0)
        rc = gql_links_read(c, want, &l);
    for (size_t i = 0; rc == LMQ_OK && i < batch->count; i++) {
        const json_t *v = json_object_get(batch->parents[i], e->field);
        if (gql_parent_as_of(batch->parents[i]) != as_of_key) {
            continue;
        } else if (json_is_string(v)) {
            json_t *node = json_object_get(l.found, json_string_value(v));
            batch->results[i] = node != NULL ? json_incref(node) : NULL;
        } else if (json_is_array(v)) {
            json_t *list = json_array();
            for (size_t k = 0; list != NULL && k < json_array_size(v); k++) {
                json_t *node = json_object_get(l.found, gql_str(json_array_get(v, k), ""));
                json_array_append(list, node != NULL ? node : json_null());
            }
            batch->results[i] = list;
        }
    }
    json_decref(want);
    json_decref(l.found);
    return rc;
}

/* A property with "x-link": every permalink of the level read in batches, per checkpoint the
 * parents were read at (one group, the latest, unless a query mixes checkpoints). */
static int gql_resolve_link(struct gql_call *c, const struct data_gql_entry *e,
                            struct graphql_batch *batch)
{
    int rc = LMQ_OK;
    /* A group is resolved at its first parent: bounded by the batch's count. */
    for (size_t i = 0; rc == LMQ_OK && i < batch->count; i++) {
        uint64_t key = gql_parent_as_of(batch->parents[i]);
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = gql_parent_as_of(batch->parents[j]) != key;
        if (first)
            rc = gql_resolve_link_group(c, e, batch, key);
    }
    return gql_io(c, rc);
}

static int gql_resolve(void *ctx, struct graphql_batch *batch)
{
    struct gql_call *c = ctx;
    LMQ_ASSERT(c != NULL && batch != NULL && batch->resolver_tag > 0);
    LMQ_ASSERT((size_t)batch->resolver_tag <= c->g->count);
    const struct data_gql_entry *e = &c->g->entries[batch->resolver_tag - 1];
    switch (e->kind) {
    case DATA_GQL_R:
        return gql_resolve_r(c, e, batch);
    case DATA_GQL_RL:
        return gql_resolve_rl(c, e, batch);
    case DATA_GQL_VERSIONS:
        return gql_resolve_versions(c, e, batch);
    case DATA_GQL_LINK:
        return gql_resolve_link(c, e, batch);
    case DATA_GQL_TYPES:
        for (size_t i = 0; i < batch->count; i++) {
            json_t *names = json_array();
            for (size_t k = 0; names != NULL && k < c->g->model_count; k++)
                json_array_append_new(names, json_string(c->g->models[k].model->name));
            batch->results[i] = names;
        }
        return LMQ_OK;
    }
    LMQ_UNREACHABLE("a resolver kind without a case");
    return LMQ_EINVAL;
}

/* ---- HTTP ---- */

bool data_graphql_path(const struct http_request *req)
{
    return (req->path_len == 8 && memcmp(req->path, "/graphql", 8) == 0) ||
           (req->path_len == 23 && memcmp(req->path, "/graphql/schema.graphql", 23) == 0);
}

/* A request error: {"errors":[{"message": msg}]}. */
static int gql_http_error(struct http_response *resp, struct lmq_buf *out, int status,
                          const char *msg)
{
    resp->status = status;
    resp->content_type = "application/json";
    json_t *body = json_pack("{s[{ss}]}", "errors", "message", msg);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return LMQ_ENOMEM;
    int rc = lmq_buf_append(out, text, strlen(text), HTTP_RESPONSE_BODY_MAX_BYTES);
    free(text);
    return rc;
}

static bool gql_loopback(const struct sockaddr_storage *a)
{
    if (a == NULL)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(in6) || (IN6_IS_ADDR_V4MAPPED(in6) && in6->s6_addr[12] == 127);
    }
    return false;
}

/* [data] graphql_auth = false and a request that is local beyond doubt. */
static bool gql_open(const struct broker *b, const struct http_request *req)
{
    const char *v;
    size_t len;
    return !b->cfg.data.graphql_auth && gql_loopback(req->peer) && gql_loopback(req->local) &&
           !http_request_header(req, "X-Forwarded-For", &v, &len) &&
           !http_request_header(req, "Forwarded", &v, &len) &&
           !http_request_header(req, "X-Real-IP", &v, &len);
}

/* The GraphQL request's members, from the JSON body or the query string. */
struct gql_request {
    json_t *holder; /* the parsed body, or an object holding the query parameters */
    const char *query;
    const char *operation;
    const json_t *variables;
};

static const char *gql_parse_post(const struct http_request *req, struct gql_request *g)
{
    const char *ct;
    size_t ct_len;
    if (!http_request_header(req, "Content-Type", &ct, &ct_len) || ct_len < 16 ||
        strncasecmp(ct, "application/json", 16) != 0)
        return "POST /graphql takes Content-Type: application/json";
    json_error_t jerr;
    g->holder =
        req->body != NULL ? json_loadb((const char *)req->body, req->body_len, 0, &jerr) : NULL;
    if (!json_is_object(g->holder))
        return "the body is not a JSON object";
    return NULL;
}

/* value as JSON, or as a string when it is not JSON (then refused as variables). */
static json_t *gql_json_or_text(const char *value)
{
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    return v != NULL ? v : json_string("");
}

static const char *gql_parse_get(const struct http_request *req, struct gql_request *g)
{
    g->holder = json_object();
    char *value = malloc(req->query_len + 1);
    const char *bad = g->holder == NULL || value == NULL ? "out of memory" : NULL;
    const char *q = req->query;
    for (size_t i = 0; bad == NULL && q != NULL && i < req->query_len;) {
        size_t end = i, eq;
        while (end < req->query_len && q[end] != '&')
            end++;
        for (eq = i; eq < end && q[eq] != '='; eq++)
            ;
        char name[32];
        if (end > i && http_percent_decode(q + i, eq - i, name, sizeof(name), NULL) &&
            (strcmp(name, "query") == 0 || strcmp(name, "variables") == 0 ||
             strcmp(name, "operationName") == 0)) {
            if (eq == end ||
                !http_percent_decode(q + eq + 1, end - eq - 1, value, req->query_len + 1, NULL))
                bad = "a malformed query parameter";
            else if (strcmp(name, "variables") == 0)
                json_object_set_new(g->holder, name, gql_json_or_text(value));
            else
                json_object_set_new(g->holder, name, json_string(value));
        }
        i = end + 1;
    }
    free(value);
    return bad;
}

/* The members of holder, checked. */
static const char *gql_members(struct gql_request *g)
{
    const json_t *q = json_object_get(g->holder, "query");
    const json_t *op = json_object_get(g->holder, "operationName");
    const json_t *vars = json_object_get(g->holder, "variables");
    if (!json_is_string(q))
        return "the request has no query (a string)";
    if (op != NULL && !json_is_null(op) && !json_is_string(op))
        return "operationName: a string or null";
    if (vars != NULL && !json_is_null(vars) && !json_is_object(vars))
        return "variables: a JSON object or null";
    g->query = json_string_value(q);
    g->operation = json_string_value(op);
    g->variables = json_is_object(vars) ? vars : NULL;
    return NULL;
}

static int gql_sdl(struct broker *b, const struct http_request *req, struct http_response *resp,
                   struct lmq_buf *out)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->allow = "GET, HEAD";
        return gql_http_error(resp, out, 405, "GET the schema");
    }
    resp->content_type = "text/plain; charset=utf-8";
    return lmq_buf_append(out, b->data->gql->sdl, strlen(b->data->gql->sdl),
                          HTTP_RESPONSE_BODY_MAX_BYTES);
}

/* Executes the request for reader (NULL: everything) and writes the response. */
static int gql_execute(struct broker *b, const struct gql_request *g, const char *reader,
                       struct http_response *resp, struct lmq_buf *out)
{
    struct data *d = b->data;
    struct gql_call call = {.b = b, .g = d->gql};
    call.reader =
        (struct lmq_bytes){(const uint8_t *)reader, reader != NULL ? DATA_HEX64_CHARS : 0};
    struct graphql_resolvers r = {.ctx = &call, .resolve = gql_resolve};
    const struct lmq_data_config *c = &b->cfg.data;
    struct graphql_limits limits = {.max_depth = c->graphql_max_depth,
                                    .max_fields = c->graphql_max_fields,
                                    .max_ms = c->graphql_max_ms};
    json_t *response = NULL;
    int rc = graphql_execute(d->gql->schema, g->query, strlen(g->query), g->operation, g->variables,
                             &limits, &r, &response);
    d->graphql_requests++;
    d->graphql_store_reads += call.store_reads;
    /* Which checkpoint sizes the answer was read at, when any field was read as of one. */
    json_t *as_of = call.as_of_count > 0 && rc == LMQ_OK ? json_array() : NULL;
    for (size_t i = 0; as_of != NULL && i < call.as_of_count; i++)
        json_array_append_new(as_of, json_integer((json_int_t)call.as_of[i]));
    if (as_of != NULL &&
        json_object_set_new(response, "extensions", json_pack("{so}", "asOf", as_of)) != 0)
        rc = LMQ_ENOMEM;
    char *text = rc == LMQ_OK ? json_dumps(response, JSON_COMPACT) : NULL;
    json_decref(response);
    if (text == NULL)
        return gql_http_error(resp, out, 500, "out of memory");
    resp->content_type = "application/json";
    rc = lmq_buf_append(out, text, strlen(text), HTTP_RESPONSE_BODY_MAX_BYTES);
    free(text);
    if (rc != LMQ_OK) {
        out->len = 0;
        return gql_http_error(resp, out, 500, "the response is larger than 4 MiB");
    }
    return LMQ_OK;
}

int data_graphql_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                       struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL && data_graphql_path(req));
    struct data *d = b->data;
    if (d == NULL || d->models == NULL)
        return gql_http_error(resp, out, 404, "no models: the data layer is off");
    if (d->gql == NULL)
        return gql_http_error(resp, out, 503, d->gql_error[0] ? d->gql_error : "no schema");
    if (req->path_len > 8)
        return gql_sdl(b, req, resp, out);
    bool post = strcmp(req->method, "POST") == 0;
    if (!post && strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->allow = "GET, HEAD, POST";
        return gql_http_error(resp, out, 405, "read-only: GET or POST a query");
    }
    /* The caller's id, alive until the request is answered (reader points into it). */
    char id[CRYPTO_IDENTITY_ID_BYTES];
    const char *reader = NULL;
    const char *v;
    size_t len;
    if (!gql_open(b, req) || http_request_header(req, "Authorization", &v, &len)) {
        const char *reason = NULL;
        if (pipeline_tokens_http_bearer(b, req, id, &reason) != LMQ_OK) {
            resp->extra_headers = GQL_CHALLENGE;
            return gql_http_error(resp, out, 401, reason != NULL ? reason : "unauthorized");
        }
        reader = data_reads_all(b, id) ? NULL : id;
    }
    resp->extra_headers = GQL_NO_STORE;
    struct gql_request g = {0};
    const char *bad = post ? gql_parse_post(req, &g) : gql_parse_get(req, &g);
    if (bad == NULL)
        bad = gql_members(&g);
    int rc = bad != NULL
                 ? gql_http_error(resp, out, post && strncmp(bad, "POST", 4) == 0 ? 415 : 400, bad)
                 : gql_execute(b, &g, reader, resp, out);
    json_decref(g.holder);
    return rc;
}
