/*
 * The data layer: typed objects with JSON Schema models (docs/PROTOCOL.md "Objects").
 *
 * A model is a JSON Schema 2020-12 document in the [data] models directory whose $id is its type
 * name. An envelope whose body names a model in "_t" is an object: the data layer checks it
 * before the pipeline appends it (through the pipeline's envelope seam: validation, versions,
 * who may write) and stores it as a version of a resource in the same commit. Reads go through
 * GET /api/v1/... (data_http.c) with the pipeline's bearer tokens.
 *
 * The broker owns it through one pointer (struct broker's data) and calls only what this header
 * declares. Without [data] models the layer is off: bodies with "_t" are plain envelopes.
 */
#ifndef DATA_H
#define DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

struct broker;
struct data_models;
struct schema;
struct http_request;
struct http_response;
struct lmq_buf;

/* After pipeline_init: loads and compiles the models (a broken model stops the start with a
 * start_failed line naming the file and the reason), asks the store for their property indexes
 * and registers the envelope and commit hooks. 0 or an error (LMQ_EINVAL: models; LMQ_ENOMEM). */
int data_init(struct broker *b) LMQ_WUR;
/* Frees the layer; safe when init failed or never ran. */
void data_destroy(struct broker *b);
/* SIGHUP: re-reads the models directory and [data] readers_all from the fresh configuration;
 * broken models are logged (data_models_reload_failed) and the old ones kept. */
void data_reload(struct broker *b, const char *models_dir);
/* GET /api/v1/...: the types, a type's resources (filters on indexed properties, pages), one
 * resource, its versions. 404 (status only) for other paths. */
int data_http_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                    struct lmq_buf *out);
/* GET /openapi.json: the HTTP API as an OpenAPI 3.1 document, with a schema and paths per model
 * (data_openapi.c). Public: it describes the API, not any object. */
int data_openapi_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                       struct lmq_buf *out);
/* POST /graphql, GET /graphql?query=... and GET /graphql/schema.graphql (data_graphql.c): the
 * typed objects over GraphQL with the /api/v1 reader rule. */
int data_graphql_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                       struct lmq_buf *out);
/* GET /graphiql: GraphiQL, one self-contained page compiled in (data_graphiql.c), served with a
 * Content-Security-Policy that lets it reach only /graphql; 405 for other methods. Public. */
int data_graphiql_route(struct broker *b, const struct http_request *req,
                        struct http_response *resp, struct lmq_buf *out);
/* True for /graphiql. */
bool data_graphiql_path(const struct http_request *req);
/* True for /graphql and /graphql/schema.graphql. */
bool data_graphql_path(const struct http_request *req);
/* For /metrics: GraphQL requests answered and the store reads they made. */
void data_graphql_counts(const struct broker *b, uint64_t *requests, uint64_t *store_reads);
/* A models directory loaded as serve loads it ([data] models), for `ledgermq validate --models`:
 * 0 with *out, or LMQ_EINVAL with "FILE: reason" in err, LMQ_ENOMEM. (data_models.c) */
int data_models_load(const char *dir, bool assert_formats, struct data_models **out, char *err,
                     size_t err_len) LMQ_WUR;
void data_models_free(struct data_models *m);
/* The compiled schema of the model named name, or NULL. */
const struct schema *data_models_schema(const struct data_models *m, const char *name);
/* Writes the set's type names, comma-separated, into out (for messages). */
void data_models_names(const struct data_models *m, char *out, size_t cap);
/* The members of an object's body the server keeps for itself (removed before validation):
 * "_t", "_prevlink", "_permalink", "_deleted", "_on_behalf_of". */
extern const char *const data_reserved_members[5];
/* For /metrics: object versions stored and objects refused since start, models loaded. */
void data_counts(const struct broker *b, uint64_t *accepted, uint64_t *refused, size_t *models);
/* The latest version of the resource permalink (64 hex) as GET /api/v1/T/PERMALINK shows it,
 * read with every right (plugins): 0 with *json (malloc'd text), 1 when there is none,
 * LMQ_ENOMEM or LMQ_EIO. (data_http.c) */
int data_resource_json(struct broker *b, const char *permalink, char **json) LMQ_WUR;
/* True for a path under /api/ (data_http_route answers it). */
bool data_http_path(const struct http_request *req);

#endif
