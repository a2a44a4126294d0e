/* The data layer's own state (data.h is what the broker sees). */
#ifndef DATA_INTERNAL_H
#define DATA_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_internal.h"
#include "data/data.h"
#include "schema/schema.h"

/* A type name: dot-separated GraphQL names ("com.example.Payment"), at most this long. */
#define DATA_TYPE_NAME_MAX_CHARS 128
/* Model files read from the models directory, and the bytes of one. */
#define DATA_MODELS_MAX 256
#define DATA_MODEL_FILE_MAX_BYTES (1024 * 1024)
/* Properties of one model marked "x-index": true (each an index on every resource row). */
#define DATA_INDEXED_MAX 16
/* Identities one model's "x-writers" may name. */
#define DATA_WRITERS_MAX 32
/* Schema errors a reject carries (the validator keeps up to SCHEMA_ERRORS_MAX). */
#define DATA_REJECT_ERRORS_MAX 5
/* The base URI model $ids resolve against, so {"$ref": "com.example.Address"} names a model. */
#define DATA_MODEL_BASE_URI "https://models.ledgermq.invalid/"
/* A link or identity id: 64 lowercase hex characters. */
#define DATA_HEX64_CHARS 64

struct data_model {
    char name[DATA_TYPE_NAME_MAX_CHARS + 1];    /* the $id, the objects' _t */
    char graphql[DATA_TYPE_NAME_MAX_CHARS + 1]; /* the name with '.' as '_' */
    char file[LMQ_PATH_MAX_BYTES];
    json_t *doc;
    struct schema *schema;
    struct schema_validator *validator;
    char indexed[DATA_INDEXED_MAX][65]; /* top-level property names with "x-index": true */
    size_t indexed_count;
    char writers[DATA_WRITERS_MAX][DATA_HEX64_CHARS + 1]; /* "x-writers" besides the owner */
    size_t writer_count;
    /* A model added by envelope: the permalink of its ledgermq.Model resource; "" for a file. */
    char permalink[DATA_HEX64_CHARS + 1];
};

/* The loaded models: the directory's, replaced whole on SIGHUP, then those added by envelope
 * (ledgermq.Model objects), which change one at a time. */
struct data_models {
    struct data_model **models;
    size_t count, cap;
};

/* The built-in model of models: {"_t": "ledgermq.Model", "schema": {...}} from an admin. */
#define DATA_MODEL_TYPE "ledgermq.Model"

/* A resource whose latest version is not durable yet (data.c): what the next check needs. */
struct data_head {
    char permalink[DATA_HEX64_CHARS + 1];
    char latest[DATA_HEX64_CHARS + 1];
    char owner[DATA_HEX64_CHARS + 1];
    char model[DATA_TYPE_NAME_MAX_CHARS + 1];
    bool deleted;
};

/* What check() decided for the envelope appended() then stores (matched by link). */
struct data_pending {
    bool set;
    char link[DATA_HEX64_CHARS + 1];
    struct data_head head; /* the resource after this version */
    char prevlink[DATA_HEX64_CHARS + 1];
    char author[DATA_HEX64_CHARS + 1]; /* the sender, or whom the server sent it for */
    struct lmq_buf body;               /* canonical JSON without the _-members */
    /* A ledgermq.Model version: the compiled model it puts, or (tombstone) the name it
     * removes. */
    struct data_model *model;
    char remove[DATA_TYPE_NAME_MAX_CHARS + 1];
};

struct data_gql;

struct data {
    struct broker *broker;
    /* The GraphQL schema of models (data_graphql.c), rebuilt when they change; NULL when the
     * layer is off or the mapping failed (gql_error says why). */
    struct data_gql *gql;
    char gql_error[256];
    uint64_t graphql_requests;    /* POST/GET /graphql answered */
    uint64_t graphql_store_reads; /* store reads they made (batched references: one a level) */
    struct data_models *models;   /* NULL: the layer is off */
    struct lmq_map *heads;        /* permalink -> struct data_head, versions in flight */
    struct lmq_map *links;        /* link -> permalink (char[65]) of versions in flight */
    struct data_pending pending;
    size_t commit_slot;
    uint64_t objects_accepted; /* versions stored */
    uint64_t objects_refused;  /* by reason in the logs */
};

/* data_models.c */
/* data_models_load (data.h) loads every *.json of dir, sorted by name; dir "" loads none. */
/* Compiles doc (a new reference is taken) as a model against the other models of set (which
 * its $refs may name), without adding it: 0 with *out (origin names it in messages), or
 * LMQ_EINVAL with the reason in err, LMQ_ENOMEM. */
int data_model_compile(const struct data_models *set, json_t *doc, const char *origin,
                       bool assert_formats, struct data_model **out, char *err,
                       size_t err_len) LMQ_WUR;
void data_model_free(struct data_model *m);
/* Puts m into set, replacing (and freeing) the model of the same name. 0 or LMQ_ENOMEM. */
int data_models_put(struct data_models *set, struct data_model *m) LMQ_WUR;
/* Removes and frees the model named name, if there is one. */
void data_models_remove(struct data_models *set, const char *name);
const struct data_model *data_models_find(const struct data_models *m, const char *name,
                                          size_t len);
/* True when name is a type name (dot-separated GraphQL names, 1..128 characters). */
bool data_type_name_valid(const char *name, size_t len);
/* Writes the store's property indexes of every model into the open batch. */
void data_models_write_indexes(struct broker *b, const struct data_models *m);
/* Those of one model. */
void data_model_write_indexes(struct broker *b, const struct data_model *m);

/* data_accept.c: the envelope hook. */
/* The model a ledgermq.Model body holds ({"schema": {...}}), or NULL with the detail. */
json_t *data_accept_model_schema(json_t *body, const char **detail);
bool data_accept_check(void *ctx, const struct ledger_envelope *env, const char *link,
                       struct pipeline_refusal *refusal);
int data_accept_appended(void *ctx, const struct ledger_envelope *env, const char *link,
                         uint64_t index);

/* data.c: versions in flight. */
/* The head of the resource whose version link is in flight, or NULL. */
const struct data_head *data_inflight_by_link(struct data *d, const char *link);
/* The in-flight head of permalink, or NULL. */
const struct data_head *data_inflight_head(struct data *d, const char *permalink);
/* Records that version link (head after it) joins the open batch. 0 or LMQ_ENOMEM. */
int data_inflight_add(struct data *d, const char *link, const struct data_head *head) LMQ_WUR;

/* Loads the models added by envelope (the latest ledgermq.Model resources) into d->models; one
 * that no longer compiles is skipped with a data_model_skipped line. 0 or an error. */
int data_models_from_store(struct data *d) LMQ_WUR;

/* Logs a model added, changed or removed by envelope. */
void data_log_model_change(const char *event, const char *name, const char *permalink);

/* data_graphql.c: rebuilds d->gql from d->models (a failure is logged, GraphQL answers 503). */
void data_graphql_rebuild(struct data *d);
/* data_http.c, shared with GraphQL. */
/* A resource or version as the API shows it (body members and _-members), or NULL. */
json_t *data_http_resource(const struct store_data_row *r);
/* A query parameter's decoded value at most. */
#define DATA_HTTP_VALUE_MAX_BYTES 1024
#define DATA_HTTP_NO_STORE "Cache-Control: no-store\r\n"
struct data_http_param {
    char name[72];
    char value[DATA_HTTP_VALUE_MAX_BYTES];
};
/* Calls fn for each name=value of the query (decoded): false when one is malformed or fn says
 * false. */
bool data_http_params(const struct http_request *req,
                      bool (*fn)(void *ctx, const struct data_http_param *p), void *ctx);
/* Answers value (a reference taken; NULL: 500) as JSON. */
int data_http_json(struct http_response *resp, struct lmq_buf *out, json_t *value);

/* data_write.c: POST /api/v1/T (permalink NULL), PUT and DELETE /api/v1/T/PERMALINK for the
 * authenticated caller. */
int data_write_route(struct broker *b, const struct data_model *m, const char *caller,
                     const char *permalink, const struct http_request *req,
                     struct http_response *resp, struct lmq_buf *out);

/* True when s is 64 lowercase hex characters (a link, a permalink or an identity id). */
bool data_hex64(const char *s);

/* True when id may read every resource ([data] readers_all). */
bool data_reads_all(const struct broker *b, const char *id);

#endif
