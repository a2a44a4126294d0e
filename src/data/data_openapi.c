/*
 * GET /openapi.json: an OpenAPI 3.1 document of the HTTP API. The fixed endpoints (login, the
 * ledger, health) are src/data/openapi.json, compiled in; each loaded model adds its schema
 * (components.schemas, under its GraphQL name) and its paths under /api/v1/. OpenAPI 3.1 schemas
 * are JSON Schema 2020-12, so a model goes in as it is, except that its "$id" and "$schema" are
 * dropped and a "$ref" naming another model ("com.example.Account", or with a "#..." fragment)
 * becomes "#/components/schemas/com_example_Account...", so the document stands alone.
 */
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "net/http.h"

extern const char data_openapi_fixed[];

/* The reference a "$ref" of model self becomes: a model's name (with a fragment) names its
 * component; a pointer inside self ("#/$defs/x") follows self's component; anything else stays. */
static json_t *openapi__ref(const struct data_models *set, const struct data_model *self,
                            const char *ref)
{
    const char *hash = strchr(ref, '#');
    size_t name_len = hash != NULL ? (size_t)(hash - ref) : strlen(ref);
    const struct data_model *m =
        name_len == 0 ? (hash[1] == '/' ? self : NULL) : data_models_find(set, ref, name_len);
    if (m == NULL)
        return json_string(ref);
    /* "#/$defs/x" inside the model stays inside it: its pointer follows the component's. */
    const char *fragment = hash != NULL ? hash + 1 : "";
    char *text = NULL;
    if (asprintf(&text, "#/components/schemas/%s%s", m->graphql, fragment) < 0)
        return NULL;
    json_t *out = json_string(text);
    free(text);
    return out;
}

/* Rewrites doc in place: model $refs to components, no $id or $schema in a model's root. The
 * walk is bounded by the schema's depth, which compiling it checked (SCHEMA_DEPTH_MAX). */
static void openapi__rewrite(const struct data_models *set, const struct data_model *self,
                             json_t *doc, unsigned depth)
{
    if (depth > SCHEMA_DEPTH_MAX)
        return;
    if (json_is_array(doc)) {
        size_t i;
        json_t *v;
        json_array_foreach(doc, i, v) openapi__rewrite(set, self, v, depth + 1);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "$ref") == 0 && json_is_string(v)) {
            json_t *ref = openapi__ref(set, self, json_string_value(v));
            if (ref != NULL)
                json_object_set_new(doc, key, ref);
        } else {
            openapi__rewrite(set, self, v, depth + 1);
        }
    }
}

/* What one model adds, as JSON text: %1$s is the type name, %2$s its GraphQL name (both made of
 * letters, digits, '_' and '.': nothing to escape). */
static const char openapi__model_schemas[] =
    "{\"%2$s_resource\":{\"allOf\":[{\"$ref\":\"#/components/schemas/%2$s\"},{\"type\":\"object\","
    "\"properties\":{\"_t\":{\"const\":\"%1$s\"},\"_link\":{\"$ref\":\"#/components/schemas/"
    "Link\"},"
    "\"_permalink\":{\"$ref\":\"#/components/schemas/Link\"},\"_prevlink\":{\"type\":[\"string\","
    "\"null\"]},\"_author\":{\"$ref\":\"#/components/schemas/Link\"},\"_owner\":{\"$ref\":"
    "\"#/components/schemas/Link\"},\"_time\":{\"type\":\"string\"},\"_ledgerIndex\":{\"type\":"
    "\"integer\"},\"_deleted\":{\"const\":true}}}]},"
    "\"%2$s_written\":{\"type\":\"object\",\"properties\":{\"envelope\":{\"type\":\"object\"},"
    "\"index\":{\"type\":\"integer\"},\"link\":{\"$ref\":\"#/components/schemas/Link\"},"
    "\"position\":{\"type\":\"integer\"},\"receipt\":{\"type\":\"object\"},\"seq\":{\"type\":"
    "\"integer\"},\"to\":{\"$ref\":\"#/components/schemas/Link\"},\"resource\":{\"$ref\":"
    "\"#/components/schemas/%2$s_resource\"}},\"required\":[\"envelope\",\"index\",\"link\","
    "\"receipt\",\"resource\"]},"
    "\"%2$s_page\":{\"type\":\"object\",\"properties\":{\"results\":{\"type\":\"array\",\"items\":"
    "{\"$ref\":\"#/components/schemas/%2$s_resource\"}},\"next\":{\"type\":[\"string\",\"null\"]}},"
    "\"required\":[\"results\",\"next\"]}}";

#define OPENAPI_ERRORS                                                                             \
    "\"400\":{\"$ref\":\"#/components/responses/BadRequest\"},\"401\":{\"$ref\":"                  \
    "\"#/components/responses/Unauthorized\"},\"404\":{\"$ref\":\"#/components/responses/"         \
    "NotFound\"}"
#define OPENAPI_PAGE_OF(what)                                                                      \
    "\"200\":{\"description\":\"" what                                                             \
    "\",\"content\":{\"application/json\":{\"schema\":{\"$ref\":"                                  \
    "\"#/components/schemas/%2$s_page\"}}}}"
#define OPENAPI_PERMALINK                                                                          \
    "{\"name\":\"permalink\",\"in\":\"path\",\"required\":true,\"schema\":{\"$ref\":"              \
    "\"#/components/schemas/Link\"}}"

static const char openapi__model_paths[] =
    "{\"/api/v1/%1$s\":{\"get\":{\"summary\":\"%1$s resources, oldest first\",\"security\":[{"
    "\"bearer\":[]}],\"parameters\":[{\"name\":\"limit\",\"in\":\"query\",\"schema\":{\"type\":"
    "\"integer\",\"minimum\":1,\"maximum\":100}},{\"name\":\"cursor\",\"in\":\"query\",\"schema\":"
    "{\"type\":\"string\"}}],\"responses\":{" OPENAPI_PAGE_OF(
        "a page") "," OPENAPI_ERRORS "}}},"
                  "\"/api/v1/%1$s/{permalink}\":{\"get\":{\"summary\":\"a %1$s resource (its "
                  "latest version)\","
                  "\"security\":[{\"bearer\":[]}],\"parameters\":[" OPENAPI_PERMALINK
                  "],\"responses\":{\"200\":"
                  "{\"description\":\"the "
                  "resource\",\"content\":{\"application/json\":{\"schema\":{\"$ref\":"
                  "\"#/components/schemas/"
                  "%2$s_resource\"}}}},\"410\":{\"description\":\"deleted\"}," OPENAPI_ERRORS "}}},"
                  "\"/api/v1/%1$s/{permalink}/versions\":{\"get\":{\"summary\":\"a %1$s resource's "
                  "versions, "
                  "oldest first\",\"security\":[{\"bearer\":[]}],\"parameters\":[" OPENAPI_PERMALINK
                  ",{\"name\":"
                  "\"after\",\"in\":\"query\",\"schema\":{\"type\":\"integer\",\"minimum\":0}},{"
                  "\"name\":"
                  "\"limit\",\"in\":\"query\",\"schema\":{\"type\":\"integer\",\"minimum\":1,"
                  "\"maximum\":100}}],"
                  "\"responses\":{" OPENAPI_PAGE_OF("a page") "," OPENAPI_ERRORS "}}}}";

/* The writes (docs/PROTOCOL.md "Writing objects over HTTP"), merged into the paths above. */
#define OPENAPI_WRITE_ANSWER(status, what)                                                         \
    "\"" status "\":{\"description\":\"" what                                                      \
    "\",\"content\":{\"application/json\":{\"schema\":{\"$ref\":"                                  \
    "\"#/components/schemas/%2$s_written\"}}}}"
#define OPENAPI_WRITE_REFUSALS                                                                     \
    "\"403\":{\"description\":\"not_author\"},\"409\":{\"description\":\"stale_version "           \
    "(latest names the latest version)\"},\"413\":{\"description\":\"too_large\"},\"422\":{"       \
    "\"description\":\"invalid_object (errors lists why)\"},\"429\":{\"description\":"             \
    "\"rate_limited or "                                                                           \
    "quota_exceeded\"},\"503\":{\"description\":\"not_committed\"}," OPENAPI_ERRORS
#define OPENAPI_WRITE_BODY                                                                         \
    "\"requestBody\":{\"required\":true,\"content\":{\"application/json\":{\"schema\":{"           \
    "\"$ref\":\"#/components/schemas/%2$s\"}}}}"
#define OPENAPI_TO                                                                                 \
    "{\"name\":\"to\",\"in\":\"query\",\"description\":\"the recipient (default: the "             \
    "caller)\",\"schema\":{\"$ref\":\"#/components/schemas/Link\"}}"
#define OPENAPI_IF_MATCH                                                                           \
    "{\"name\":\"If-Match\",\"in\":\"header\",\"description\":\"the quoted link of the "           \
    "version replaced (or _prevlink in the body)\",\"schema\":{\"type\":\"string\"}}"

static const char openapi__model_writes[] =
    "{\"/api/v1/%1$s\":{\"post\":{\"summary\":\"a new %1$s resource, signed by the server for "
    "the caller; answered once durable\",\"security\":[{\"bearer\":[]}],\"parameters\":[" OPENAPI_TO
    "]," OPENAPI_WRITE_BODY ",\"responses\":{" OPENAPI_WRITE_ANSWER(
        "201",
        "created") "," OPENAPI_WRITE_REFUSALS "}}},"
                   "\"/api/v1/%1$s/{permalink}\":{\"put\":{\"summary\":\"a new version of a %1$s "
                   "resource\","
                   "\"security\":[{\"bearer\":[]}],\"parameters\":[" OPENAPI_PERMALINK
                   "," OPENAPI_TO "," OPENAPI_IF_MATCH "]," OPENAPI_WRITE_BODY
                   ",\"responses\":{" OPENAPI_WRITE_ANSWER(
                       "200",
                       "the new version") ",\"428\":{\"description\":\"no "
                                          "If-Match\"}," OPENAPI_WRITE_REFUSALS
                                          "}},\"delete\":{\"summary\":\"a tombstone for a %1$s "
                                          "resource\","
                                          "\"security\":[{\"bearer\":[]}],\"parameters\":"
                                          "[" OPENAPI_PERMALINK "," OPENAPI_TO "," OPENAPI_IF_MATCH
                                          "],\"responses\":{" OPENAPI_WRITE_ANSWER(
                                              "200",
                                              "the tombstone") ",\"428\":{\"description\":\"no "
                                                               "If-Match\"}," OPENAPI_WRITE_REFUSALS
                                                               "}}}}";

/* Formats template with m's names and parses it. */
static json_t *openapi__from_template(const char *template, const struct data_model *m)
{
    char *text = NULL;
    if (asprintf(&text, template, m->name, m->graphql) < 0)
        return NULL;
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    free(text);
    LMQ_ASSERT(v != NULL); /* the templates are valid JSON for any valid names */
    return v;
}

/* The list's filters: one query parameter per indexed property, typed as the model says. */
static void openapi__filters(json_t *paths, const struct data_model *m)
{
    char path[DATA_TYPE_NAME_MAX_CHARS + 16];
    snprintf(path, sizeof(path), "/api/v1/%s", m->name);
    json_t *params =
        json_object_get(json_object_get(json_object_get(paths, path), "get"), "parameters");
    for (size_t k = 0; k < m->indexed_count; k++) {
        json_t *type = json_object_get(
            json_object_get(json_object_get(m->doc, "properties"), m->indexed[k]), "type");
        json_t *t = json_is_string(type) ? json_incref(type) : json_string("string");
        json_array_append_new(params, json_pack("{sssss{so}ss}", "name", m->indexed[k], "in",
                                                "query", "schema", "type", t, "description",
                                                "equal to (an x-index property)"));
    }
}

/* The checkpoint parameter of a model's list and resource, and the list's as_of
 * (docs/PROTOCOL.md "Reading as of a checkpoint"). */
static void openapi__checkpoint(json_t *paths, json_t *schemas, const struct data_model *m)
{
    static const char *const suffixes[] = {"", "/{permalink}"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(suffixes); i++) {
        char path[DATA_TYPE_NAME_MAX_CHARS + 32];
        snprintf(path, sizeof(path), "/api/v1/%s%s", m->name, suffixes[i]);
        json_t *params =
            json_object_get(json_object_get(json_object_get(paths, path), "get"), "parameters");
        json_array_append_new(
            params, json_pack("{sssss{ss}ss}", "name", "checkpoint", "in", "query", "schema",
                              "type", "string", "description",
                              "read as of a ledger checkpoint: a signed checkpoint note of this "
                              "server or a tree size in decimal (at most the latest's)"));
    }
    char page[DATA_TYPE_NAME_MAX_CHARS + 8];
    snprintf(page, sizeof(page), "%s_page", m->graphql);
    json_object_set_new(json_object_get(json_object_get(schemas, page), "properties"), "as_of",
                        json_pack("{ssss}", "type", "integer", "description",
                                  "the tree size read at (with checkpoint=)"));
}

/* Builds the whole document. NULL when out of memory or the fixed part does not parse. */
static json_t *openapi__document(const struct data_models *set)
{
    json_t *doc = json_loads(data_openapi_fixed, 0, NULL);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *paths = json_object_get(doc, "paths");
    json_object_set_new(json_object_get(doc, "info"), "version", json_string(LMQ_VERSION));
    for (size_t i = 0; doc != NULL && schemas != NULL && set != NULL && i < set->count; i++) {
        const struct data_model *m = set->models[i];
        json_t *schema = json_deep_copy(m->doc);
        json_object_del(schema, "$id");
        json_object_del(schema, "$schema");
        openapi__rewrite(set, m, schema, 0);
        json_object_set_new(schemas, m->graphql, schema);
        json_t *more = openapi__from_template(openapi__model_schemas, m);
        json_t *model_paths = openapi__from_template(openapi__model_paths, m);
        json_t *writes = openapi__from_template(openapi__model_writes, m);
        if (more == NULL || model_paths == NULL || writes == NULL) {
            json_decref(more), json_decref(model_paths), json_decref(writes), json_decref(doc);
            return NULL;
        }
        json_object_update(schemas, more);
        json_object_update(paths, model_paths);
        const char *path;
        json_t *ops;
        json_object_foreach(writes, path, ops)
            json_object_update(json_object_get(paths, path), ops);
        json_decref(more);
        json_decref(model_paths);
        json_decref(writes);
        openapi__filters(paths, m);
        openapi__checkpoint(paths, schemas, m);
    }
    return doc;
}

int data_openapi_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                       struct lmq_buf *out)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->allow = "GET, HEAD";
        return http_error_json(resp, out, 405, "Method Not Allowed");
    }
    json_t *doc = openapi__document(b->data != NULL ? b->data->models : NULL);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (text == NULL)
        return http_error_json(resp, out, 500, "out of memory");
    resp->content_type = "application/json";
    int rc = lmq_buf_append(out, text, strlen(text), HTTP_RESPONSE_BODY_MAX_BYTES);
    free(text);
    if (rc != LMQ_OK) {
        out->len = 0;
        return http_error_json(resp, out, 500, "document too large");
    }
    return LMQ_OK;
}
