/*
 * The REST API of typed objects (docs/PROTOCOL.md "Objects over HTTP"): reads here, writes
 * (POST, PUT, DELETE) in data_write.c.
 *
 *   GET /api/v1/                            the types: name, GraphQL name, indexed properties
 *   GET /api/v1/T?prop=value&limit=&cursor=  T's resources, oldest first, EQ filters on
 *                                            indexed properties only
 *   GET /api/v1/T/PERMALINK                  one resource (its latest version)
 *   GET /api/v1/T/PERMALINK/versions?after=&limit=   its versions, oldest first
 *
 * The list and the resource also take checkpoint= (a signed checkpoint note of this server or a
 * tree size): the state as of that checkpoint (docs/PROTOCOL.md "Reading as of a checkpoint").
 *
 * Every request needs a bearer token (POST /auth/token). An identity reads the resources it
 * authored or that were sent to it; [data] readers_all read all. A resource the caller may not
 * read is answered exactly like one that does not exist (404). Filters only on indexed
 * properties keep every request an index range: a filter that would scan a model's resources is
 * refused (400), so a million requests cost a million index look-ups.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "net/http.h"

#define DATA_HTTP_PREFIX "/api/v1/"
/* Resources per page at most, and when the request does not say. */
#define DATA_HTTP_LIMIT_MAX 100
#define DATA_HTTP_LIMIT_DEFAULT 20
#define DATA_HTTP_CHALLENGE                                                                        \
    "WWW-Authenticate: Bearer realm=\"ledgermq\"\r\nCache-Control: no-store\r\n"

bool data_http_path(const struct http_request *req)
{
    return req->path_len >= 5 && memcmp(req->path, "/api/", 5) == 0;
}

static int data_http_error(struct http_response *resp, struct lmq_buf *out, int status,
                           const char *reason)
{
    return http_error_json(resp, out, status, reason);
}

int data_http_json(struct http_response *resp, struct lmq_buf *out, json_t *value)
{
    resp->content_type = "application/json";
    char *text = value != NULL ? json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(value);
    if (text == NULL)
        return data_http_error(resp, out, 500, "out_of_memory");
    int rc = lmq_buf_append(out, text, strlen(text), HTTP_RESPONSE_BODY_MAX_BYTES);
    free(text);
    if (rc != LMQ_OK) {
        out->len = 0;
        return data_http_error(resp, out, 500, "response_too_large");
    }
    return LMQ_OK;
}

/* One query parameter: name and decoded value. */
/* Calls fn for each name=value of the query string; stops at the first false (returned). */
bool data_http_params(const struct http_request *req,
                      bool (*fn)(void *ctx, const struct data_http_param *p), void *ctx)
{
    const char *q = req->query;
    size_t len = req->query_len;
    for (size_t i = 0; q != NULL && i < len;) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=')
            eq++;
        struct data_http_param p;
        if (end > i &&
            (eq == end || !http_percent_decode(q + i, eq - i, p.name, sizeof(p.name), NULL) ||
             !http_percent_decode(q + eq + 1, end - eq - 1, p.value, sizeof(p.value), NULL) ||
             !fn(ctx, &p)))
            return false;
        i = end + 1;
    }
    return true;
}

static bool data_http_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t len = strlen(s);
    if (len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

json_t *data_http_resource(const struct store_data_row *r)
{
    json_error_t jerr;
    json_t *o = schema_json_loadb((const char *)r->body.data, r->body.len, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    char link[DATA_HEX64_CHARS + 1], permalink[DATA_HEX64_CHARS + 1], prev[DATA_HEX64_CHARS + 1];
    char author[DATA_HEX64_CHARS + 1], owner[DATA_HEX64_CHARS + 1], time[64];
    char model[DATA_TYPE_NAME_MAX_CHARS + 1];
    snprintf(model, sizeof(model), "%.*s", (int)r->model.len, (const char *)r->model.data);
    snprintf(link, sizeof(link), "%.*s", (int)r->link.len, (const char *)r->link.data);
    snprintf(permalink, sizeof(permalink), "%.*s", (int)r->permalink.len,
             (const char *)r->permalink.data);
    snprintf(prev, sizeof(prev), "%.*s", (int)r->prevlink.len, (const char *)r->prevlink.data);
    snprintf(author, sizeof(author), "%.*s", (int)r->author.len, (const char *)r->author.data);
    snprintf(owner, sizeof(owner), "%.*s", (int)r->owner.len, (const char *)r->owner.data);
    snprintf(time, sizeof(time), "%.*s", (int)r->time.len, (const char *)r->time.data);
    if (json_object_set_new(o, "_t", json_string(model)) ||
        json_object_set_new(o, "_link", json_string(link)) ||
        json_object_set_new(o, "_permalink", json_string(permalink)) ||
        json_object_set_new(o, "_prevlink", prev[0] ? json_string(prev) : json_null()) ||
        json_object_set_new(o, "_author", json_string(author)) ||
        json_object_set_new(o, "_owner", json_string(owner)) ||
        json_object_set_new(o, "_time", json_string(time)) ||
        json_object_set_new(o, "_ledgerIndex", json_integer((json_int_t)r->ledger_index)) ||
        (r->deleted && json_object_set_new(o, "_deleted", json_true()))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- GET /api/v1/T: a page of resources ---- */

struct data_http_list {
    const struct data_model *model;
    json_t *results;
    uint64_t rows;         /* rows read: one more than limit says there is a next page */
    uint64_t last_created; /* the creation index of the last row shown: the next cursor */
    bool failed;
    /* the plan being built from the query string */
    struct store_data_filter filters[DATA_INDEXED_MAX];
    struct store_data_value values[DATA_INDEXED_MAX];
    char paths[DATA_INDEXED_MAX][72];
    char texts[DATA_INDEXED_MAX][DATA_HTTP_VALUE_MAX_BYTES];
    size_t filter_count;
    uint64_t limit;
    uint64_t cursor;
    bool has_cursor;
    const char *bad; /* the 400's reason */
    /* checkpoint=: its text; a cursor's "@size" (cursor_as_of: it had one) */
    char checkpoint[DATA_HTTP_VALUE_MAX_BYTES];
    bool has_checkpoint, cursor_as_of;
    uint64_t cursor_size;
};

static int data_http_list_row(void *ctx, const struct store_data_row *r)
{
    struct data_http_list *l = ctx;
    if (l->rows++ == l->limit)
        return 0; /* the one past the page: only counted */
    json_t *o = data_http_resource(r);
    if (o == NULL || json_array_append_new(l->results, o) != 0) {
        l->failed = true;
        return -1;
    }
    l->last_created = r->created_ledger_index;
    return 0;
}

/* The type a property's schema gives it ("integer", "number", "boolean", else a string). */
static const char *data_http_property_type(const struct data_model *m, const char *name)
{
    json_t *type =
        json_object_get(json_object_get(json_object_get(m->doc, "properties"), name), "type");
    if (json_is_array(type))
        type = json_array_get(type, 0);
    const char *t = json_string_value(type);
    return t != NULL ? t : "string";
}

/* An EQ filter from prop=value, typed as the property's schema says. */
static bool data_http_list_param(void *ctx, const struct data_http_param *p)
{
    struct data_http_list *l = ctx;
    if (strcmp(p->name, "limit") == 0) {
        if (!data_http_u64(p->value, DATA_HTTP_LIMIT_MAX, &l->limit) || l->limit == 0)
            l->bad = "limit: 1..100";
        return l->bad == NULL;
    }
    if (strcmp(p->name, "cursor") == 0) {
        /* "CREATED" or, as of a checkpoint, "CREATED@SIZE". */
        char *at = strchr(p->value, '@');
        if (at != NULL)
            *at = '\0';
        l->cursor_as_of = at != NULL && data_http_u64(at + 1, INT64_MAX, &l->cursor_size);
        l->has_cursor =
            (at == NULL || l->cursor_as_of) && data_http_u64(p->value, INT64_MAX, &l->cursor);
        l->bad = l->has_cursor ? NULL : "cursor: the next of the previous page";
        return l->bad == NULL;
    }
    if (strcmp(p->name, "checkpoint") == 0) {
        l->has_checkpoint = true;
        memcpy(l->checkpoint, p->value, strlen(p->value) + 1);
        return true;
    }
    const struct data_model *m = l->model;
    bool indexed = false;
    for (size_t i = 0; i < m->indexed_count && !indexed; i++)
        indexed = strcmp(m->indexed[i], p->name) == 0;
    if (!indexed) {
        l->bad = "filters: only on properties the model marks x-index";
        return false;
    }
    size_t k = l->filter_count++;
    struct store_data_value *v = &l->values[k];
    const char *type = data_http_property_type(m, p->name);
    char *end = NULL;
    if (strcmp(type, "integer") == 0) {
        long long x = strtoll(p->value, &end, 10);
        *v = (struct store_data_value){.type = STORE_DATA_INT, .i = x};
    } else if (strcmp(type, "number") == 0) {
        double x = strtod(p->value, &end);
        *v = (struct store_data_value){.type = STORE_DATA_REAL, .d = x};
    } else if (strcmp(type, "boolean") == 0) {
        bool t = strcmp(p->value, "true") == 0;
        end = (t || strcmp(p->value, "false") == 0) ? (char *)"" : NULL;
        *v = (struct store_data_value){.type = STORE_DATA_INT, .i = t ? 1 : 0};
    } else {
        memcpy(l->texts[k], p->value, strlen(p->value) + 1);
        *v = (struct store_data_value){.type = STORE_DATA_TEXT,
                                       .text = {(const uint8_t *)l->texts[k], strlen(l->texts[k])}};
        end = (char *)"";
    }
    if (end == NULL || *end != '\0' || p->value[0] == '\0') {
        l->bad = "filter value does not match the property's type";
        return false;
    }
    int n = snprintf(l->paths[k], sizeof(l->paths[k]), "$.%s", p->name);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(l->paths[k]));
    l->filters[k] = (struct store_data_filter){.path = {(const uint8_t *)l->paths[k], (size_t)n},
                                               .op = STORE_DATA_EQ,
                                               .values = v,
                                               .value_count = 1};
    return true;
}

static int data_http_list(struct broker *b, const struct data_model *m, const char *reader,
                          const struct http_request *req, struct http_response *resp,
                          struct lmq_buf *out)
{
    struct data_http_list *l = calloc(1, sizeof(*l)); /* ~20 KiB of filter values */
    if (l == NULL)
        return data_http_error(resp, out, 500, "out_of_memory");
    l->model = m;
    l->limit = DATA_HTTP_LIMIT_DEFAULT;
    int rc;
    if (!data_http_params(req, data_http_list_param, l)) {
        rc = data_http_error(resp, out, 400, l->bad != NULL ? l->bad : "malformed query");
        free(l);
        return rc;
    }
    struct store_data_query q = {
        .model = {(const uint8_t *)m->name, strlen(m->name)},
        .reader = {(const uint8_t *)reader, reader != NULL ? DATA_HEX64_CHARS : 0},
        .filters = l->filters,
        .filter_count = l->filter_count,
        .has_cursor = l->has_cursor,
        .cursor_created = l->cursor,
        /* One more than asked: whether there is a next page. */
        .limit = (size_t)l->limit + 1,
    };
    char why[160];
    if (l->has_checkpoint && pipeline_checkpoint_size(b, l->checkpoint, strlen(l->checkpoint),
                                                      &q.as_of_size, why, sizeof(why)) != LMQ_OK) {
        free(l);
        return data_http_error(resp, out, 400, why);
    }
    q.as_of = l->has_checkpoint;
    q.max_ms = q.as_of ? b->cfg.data.graphql_max_ms : 0; /* an as-of filter can scan */
    /* A page continues under the checkpoint it was read at, and only under it. */
    if (l->has_cursor && (l->cursor_as_of != q.as_of || l->cursor_size != q.as_of_size)) {
        free(l);
        return data_http_error(resp, out, 400, "cursor: of another checkpoint");
    }
    l->results = json_array();
    size_t count = 0;
    rc = l->results != NULL ? store_data_query(b->store, &q, data_http_list_row, l, &count)
                            : LMQ_ENOMEM;
    if (rc == LMQ_EIO)
        broker_fail_stop(b, "data read", rc);
    if (rc == LMQ_ELIMIT) {
        json_decref(l->results);
        free(l);
        return data_http_error(resp, out, 503,
                               "checkpoint: the read took longer than [data] graphql_max_ms");
    }
    json_t *body = NULL;
    if (rc == LMQ_OK && !l->failed) {
        char next[48];
        if (q.as_of)
            snprintf(next, sizeof(next), "%" PRIu64 "@%" PRIu64, l->last_created, q.as_of_size);
        else
            snprintf(next, sizeof(next), "%" PRIu64, l->last_created);
        body = json_pack("{sOso}", "results", l->results, "next",
                         l->rows > l->limit ? json_string(next) : json_null());
        if (body != NULL && q.as_of &&
            json_object_set_new(body, "as_of", json_integer((json_int_t)q.as_of_size)) != 0) {
            json_decref(body);
            body = NULL;
        }
    }
    json_decref(l->results);
    free(l);
    if (body == NULL)
        return data_http_error(resp, out, 500, "out_of_memory");
    return data_http_json(resp, out, body);
}

/* ---- GET /api/v1/T/PERMALINK and .../versions ---- */

struct data_http_one {
    const struct data_model *model;
    json_t *value;
    bool deleted;
};

static int data_http_one_row(void *ctx, const struct store_data_row *r)
{
    struct data_http_one *o = ctx;
    o->value = data_http_resource(r);
    o->deleted = r->deleted;
    return o->value != NULL ? 0 : -1;
}

/* The checkpoint= of a resource's GET (other parameters are not read). */
struct data_http_get_params {
    char checkpoint[DATA_HTTP_VALUE_MAX_BYTES];
    bool has_checkpoint;
};

static bool data_http_get_param(void *ctx, const struct data_http_param *p)
{
    struct data_http_get_params *gp = ctx;
    if (strcmp(p->name, "checkpoint") == 0) {
        memcpy(gp->checkpoint, p->value, strlen(p->value) + 1);
        gp->has_checkpoint = true;
    }
    return true;
}

static int data_http_get(struct broker *b, const struct data_model *m, const char *reader,
                         struct lmq_bytes permalink, const struct http_request *req,
                         struct http_response *resp, struct lmq_buf *out)
{
    struct data_http_one one = {.model = m};
    bool found = false;
    struct lmq_bytes who = {(const uint8_t *)reader, reader != NULL ? DATA_HEX64_CHARS : 0};
    struct data_http_get_params gp = {.has_checkpoint = false};
    char why[160];
    uint64_t size = 0;
    if (!data_http_params(req, data_http_get_param, &gp))
        return data_http_error(resp, out, 400, "malformed query");
    if (gp.has_checkpoint && pipeline_checkpoint_size(b, gp.checkpoint, strlen(gp.checkpoint),
                                                      &size, why, sizeof(why)) != LMQ_OK)
        return data_http_error(resp, out, 400, why);
    int rc = gp.has_checkpoint
                 ? store_data_resource_at(b->store, permalink, who, size, data_http_one_row, &one,
                                          &found)
                 : store_data_resource(b->store, permalink, who, data_http_one_row, &one, &found);
    if (rc == LMQ_EIO)
        broker_fail_stop(b, "data read", rc);
    /* Another model's resource is not found under this one. */
    bool same_model = rc == LMQ_OK && found && one.value != NULL &&
                      strcmp(json_string_value(json_object_get(one.value, "_t")), m->name) == 0;
    if (!same_model) {
        json_decref(one.value);
        return rc == LMQ_OK ? data_http_error(resp, out, 404, "not_found")
                            : data_http_error(resp, out, 500, "out_of_memory");
    }
    if (one.deleted) {
        json_decref(one.value);
        return data_http_error(resp, out, 410, "deleted");
    }
    return data_http_json(resp, out, one.value);
}

struct data_http_versions {
    const struct data_model *model;
    json_t *results;
    uint64_t rows, limit, last_index;
    bool failed;
};

static int data_http_versions_row(void *ctx, const struct store_data_row *r)
{
    struct data_http_versions *v = ctx;
    if (v->rows++ == v->limit)
        return 0;
    json_t *o = data_http_resource(r);
    if (o == NULL || json_array_append_new(v->results, o) != 0) {
        v->failed = true;
        return -1;
    }
    v->last_index = r->ledger_index;
    return 0;
}

struct data_http_page_params {
    uint64_t after, limit;
    bool has_after, bad;
};

static bool data_http_page_param(void *ctx, const struct data_http_param *p)
{
    struct data_http_page_params *pp = ctx;
    if (strcmp(p->name, "limit") == 0)
        pp->bad = !data_http_u64(p->value, DATA_HTTP_LIMIT_MAX, &pp->limit) || pp->limit == 0;
    else if (strcmp(p->name, "after") == 0)
        pp->bad = !(pp->has_after = data_http_u64(p->value, INT64_MAX, &pp->after));
    else
        pp->bad = true;
    return !pp->bad;
}

static int data_http_versions(struct broker *b, const struct data_model *m, const char *reader,
                              struct lmq_bytes permalink, const struct http_request *req,
                              struct http_response *resp, struct lmq_buf *out)
{
    struct data_http_page_params pp = {.limit = DATA_HTTP_LIMIT_DEFAULT};
    if (!data_http_params(req, data_http_page_param, &pp))
        return data_http_error(resp, out, 400, "after: a ledger index; limit: 1..100");
    struct lmq_bytes who = {(const uint8_t *)reader, reader != NULL ? DATA_HEX64_CHARS : 0};
    /* The resource first: its model, and whether the caller may read it (404 otherwise). */
    struct data_http_one one = {.model = m};
    bool found = false;
    int rc = store_data_resource(b->store, permalink, who, data_http_one_row, &one, &found);
    bool same_model = found && one.value != NULL &&
                      strcmp(json_string_value(json_object_get(one.value, "_t")), m->name) == 0;
    json_decref(one.value);
    if (rc == LMQ_EIO)
        broker_fail_stop(b, "data read", rc);
    if (rc != LMQ_OK || !found || !same_model)
        return data_http_error(resp, out, 404, "not_found");
    struct data_http_versions v = {.model = m, .limit = pp.limit, .results = json_array()};
    size_t count = 0;
    rc = v.results != NULL
             ? store_data_versions(b->store, permalink, who, pp.has_after ? pp.after + 1 : 0,
                                   (size_t)pp.limit + 1, data_http_versions_row, &v, &count)
             : LMQ_ENOMEM;
    if (rc == LMQ_EIO)
        broker_fail_stop(b, "data read", rc);
    json_t *body = NULL;
    if (rc == LMQ_OK && !v.failed) {
        char next[24];
        snprintf(next, sizeof(next), "%" PRIu64, v.last_index);
        body = json_pack("{sOso}", "results", v.results, "next",
                         v.rows > v.limit ? json_string(next) : json_null());
    }
    json_decref(v.results);
    if (body == NULL)
        return data_http_error(resp, out, 500, "out_of_memory");
    return data_http_json(resp, out, body);
}

/* GET /api/v1/: the types. */
static int data_http_types(struct broker *b, struct http_response *resp, struct lmq_buf *out)
{
    const struct data_models *set = b->data->models;
    json_t *types = json_array();
    for (size_t i = 0; types != NULL && set != NULL && i < set->count; i++) {
        const struct data_model *m = set->models[i];
        json_t *indexed = json_array();
        for (size_t k = 0; indexed != NULL && k < m->indexed_count; k++)
            json_array_append_new(indexed, json_string(m->indexed[k]));
        json_array_append_new(types, json_pack("{sssssosO}", "name", m->name, "graphql", m->graphql,
                                               "indexed", indexed != NULL ? indexed : json_array(),
                                               "schema", m->doc));
    }
    return data_http_json(resp, out,
                          json_pack("{so}", "types", types != NULL ? types : json_array()));
}

int data_http_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                    struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL && data_http_path(req));
    size_t prefix = strlen(DATA_HTTP_PREFIX);
    if (req->path_len < prefix || memcmp(req->path, DATA_HTTP_PREFIX, prefix) != 0 ||
        b->data == NULL || b->data->models == NULL) {
        return data_http_error(
            resp, out, 404, b->data == NULL || b->data->models == NULL ? "no_models" : "not_found");
    }
    bool read = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!read && strcmp(req->method, "POST") != 0 && strcmp(req->method, "PUT") != 0 &&
        strcmp(req->method, "DELETE") != 0) {
        resp->allow = "GET, HEAD, POST, PUT, DELETE";
        return data_http_error(resp, out, 405, "method_not_allowed");
    }
    char id[CRYPTO_IDENTITY_ID_BYTES];
    const char *reason = NULL;
    if (pipeline_tokens_http_bearer(b, req, id, &reason) != LMQ_OK) {
        resp->extra_headers = DATA_HTTP_CHALLENGE;
        return data_http_error(resp, out, 401, reason);
    }
    resp->extra_headers = DATA_HTTP_NO_STORE;
    const char *reader = data_reads_all(b, id) ? NULL : id;
    /* The rest of the path: "", "T", "T/PERMALINK" or "T/PERMALINK/versions". */
    const char *rest = req->path + prefix;
    size_t rest_len = req->path_len - prefix;
    const char *slash = rest_len > 0 ? memchr(rest, '/', rest_len) : NULL;
    size_t type_len = slash != NULL ? (size_t)(slash - rest) : rest_len;
    bool post = strcmp(req->method, "POST") == 0;
    if (rest_len == 0 && read)
        return data_http_types(b, resp, out);
    if (rest_len == 0 || (!read && post != (slash == NULL))) {
        /* POST names a type; PUT and DELETE a resource */
        resp->allow = rest_len == 0   ? "GET, HEAD"
                      : slash == NULL ? "GET, HEAD, POST"
                                      : "GET, HEAD, PUT, DELETE";
        return data_http_error(resp, out, 405, "method_not_allowed");
    }
    const struct data_model *m = data_models_find(b->data->models, rest, type_len);
    if (m == NULL)
        return data_http_error(resp, out, 404, "unknown_type");
    if (slash == NULL)
        return post ? data_write_route(b, m, id, NULL, req, resp, out)
                    : data_http_list(b, m, reader, req, resp, out);
    const char *link = slash + 1;
    size_t left = rest_len - type_len - 1;
    static const char versions[] = "/versions";
    bool with_versions = left == DATA_HEX64_CHARS + sizeof(versions) - 1 &&
                         memcmp(link + DATA_HEX64_CHARS, versions, sizeof(versions) - 1) == 0;
    char permalink[DATA_HEX64_CHARS + 1];
    if ((left != DATA_HEX64_CHARS && !with_versions) ||
        !http_percent_decode(link, DATA_HEX64_CHARS, permalink, sizeof(permalink), NULL) ||
        strlen(permalink) != DATA_HEX64_CHARS)
        return data_http_error(resp, out, 404, "not_found");
    struct lmq_bytes key = {(const uint8_t *)permalink, DATA_HEX64_CHARS};
    if (!read && with_versions) {
        resp->allow = "GET, HEAD";
        return data_http_error(resp, out, 405, "method_not_allowed");
    }
    if (!read)
        return data_write_route(b, m, id, permalink, req, resp, out);
    return with_versions ? data_http_versions(b, m, reader, key, req, resp, out)
                         : data_http_get(b, m, reader, key, req, resp, out);
}

/* data_resource_json and data_version_json: read (version true: by link) with every right. */
static int data_json_of(struct broker *b, const char *key, bool version, char **json)
{
    *json = NULL;
    if (b->data == NULL || b->data->models == NULL || !data_hex64(key))
        return 1;
    struct data_http_one one = {0};
    bool found = false;
    struct lmq_bytes none = {NULL, 0};
    struct lmq_bytes k = {(const uint8_t *)key, DATA_HEX64_CHARS};
    int rc = version ? store_data_version(b->store, k, none, data_http_one_row, &one, &found)
                     : store_data_resource(b->store, k, none, data_http_one_row, &one, &found);
    if (rc != LMQ_OK || !found) {
        json_decref(one.value);
        return rc == LMQ_OK ? 1 : rc == LMQ_EIO ? LMQ_EIO : LMQ_ENOMEM;
    }
    *json = json_dumps(one.value, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(one.value);
    return *json != NULL ? LMQ_OK : LMQ_ENOMEM;
}

int data_resource_json(struct broker *b, const char *permalink, char **json)
{
    return data_json_of(b, permalink, false, json);
}

int data_version_json(struct broker *b, const char *link, char **json)
{
    return data_json_of(b, link, true, json);
}
