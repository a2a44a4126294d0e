/*
 * A read-only GraphQL engine (October 2021 spec): a schema built in code, executable documents
 * lexed, parsed, validated and executed breadth-first with batched resolvers, complete
 * introspection and SDL printing. No mutations, subscriptions, interfaces or unions.
 *
 * Ownership: the schema owns every string it is given (copied). graphql_execute hands back a
 * new response object (the caller json_decref's it). Errors are LMQ_* codes from core/lmq.h.
 */
#ifndef LMQ_GRAPHQL_H
#define LMQ_GRAPHQL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/lmq.h"

/* ---- schema: built in code, then finished (checked, frozen) ---- */
struct graphql_schema;
struct graphql_object; /* an object type being built */
struct graphql_field;  /* a field being built */

/* A new empty schema with Int Float String Boolean ID and the introspection types. 0 or
 * LMQ_ENOMEM. */
int graphql_schema_new(struct graphql_schema **out) LMQ_WUR;
/* Frees s and everything it owns (NULL is fine). */
void graphql_schema_free(struct graphql_schema *s);
/* Types. Names are GraphQL names; a clash or bad name is LMQ_EINVAL at finish (or at once). */
int graphql_schema_object(struct graphql_schema *s, const char *name, const char *description,
                          struct graphql_object **out) LMQ_WUR;
int graphql_schema_enum(struct graphql_schema *s, const char *name, const char *description,
                        const char *const *values, size_t count) LMQ_WUR;
/* An input object: its fields (graphql_object_field, resolver_tag 0) are input fields. */
int graphql_schema_input(struct graphql_schema *s, const char *name, const char *description,
                         struct graphql_object **out) LMQ_WUR;
int graphql_schema_scalar(struct graphql_schema *s, const char *name,
                          const char *description) LMQ_WUR;
/* A field (or an input object's field). type is a type reference in SDL syntax: "String",
 * "[Payment!]!". resolver_tag: an integer the resolver callback gets back (0 = default: the
 * parent value's member of the field's name). out may be NULL. */
int graphql_object_field(struct graphql_object *o, const char *name, const char *type,
                         const char *description, int resolver_tag,
                         struct graphql_field **out) LMQ_WUR;
/* An argument; default_json: the default as JSON text (NULL: none). */
int graphql_field_arg(struct graphql_field *f, const char *name, const char *type,
                      const char *default_json, const char *description) LMQ_WUR;
/* Names the query root type (an object type). */
int graphql_schema_query(struct graphql_schema *s, const char *type_name) LMQ_WUR;
/* Resolves every type reference, checks the schema (spec "Type Validation"). 0 or LMQ_EINVAL
 * with a one-line reason in err. No change after it. */
int graphql_schema_finish(struct graphql_schema *s, char *err, size_t err_len) LMQ_WUR;
/* The schema in SDL (GET /graphql/schema.graphql), as graphql-js printSchema prints it; caller
 * frees. NULL when out of memory or not finished. */
char *graphql_schema_sdl(const struct graphql_schema *s);

/* ---- execution ---- */
/* Limits of one request; a field left 0 takes its default (depth 15, fields 1,000, list items
 * 1,000, result objects 100,000, 5,000 ms, 65,536 bytes). */
struct graphql_limits {
    uint32_t max_depth;        /* selection nesting (fragments expanded) */
    uint32_t max_fields;       /* fields in the document after fragment expansion */
    uint32_t max_list_items;   /* items one list field may return (more: a field error) */
    uint32_t max_result_items; /* objects in the whole response */
    uint32_t max_ms;           /* wall time per request, checked between resolver batches */
    uint32_t max_query_bytes;
};

/* One field to resolve for several parents at once (batched: no N+1). */
struct graphql_batch {
    int resolver_tag;
    const char *parent_type;      /* object type name */
    const char *field;            /* field name (not the alias) */
    const json_t *args;           /* coerced arguments, defaults applied: an object */
    const json_t *const *parents; /* count parent values */
    size_t count;
    json_t **results; /* count slots to fill (new references); NULL = null */
    char **errors;    /* count slots: a malloc'd message makes that item a field error */
};
struct graphql_resolvers {
    void *ctx;
    /* Fills results for every parent; returns 0, or an error for the whole batch (each item
     * becomes a field error with the returned code's message). Called once per field per
     * level of the response, with every parent of that level. */
    int (*resolve)(void *ctx, struct graphql_batch *batch);
};

/* Parses, validates and executes the document against s: *response is the spec's response
 * object ({"data":...} and/or {"errors":[{"message","locations":[{"line","column"}],"path"}]}),
 * request errors (syntax, validation, limits, unknown operation, bad variables) with no "data".
 * operation_name may be NULL; variables may be NULL; limits may be NULL (the defaults); r may be
 * NULL (only default resolvers). The schema is only read: requests may run on several threads
 * at once. Returns 0 (the response says the rest) or LMQ_ENOMEM. */
int graphql_execute(const struct graphql_schema *s, const char *query, size_t len,
                    const char *operation_name, const json_t *variables,
                    const struct graphql_limits *limits, const struct graphql_resolvers *r,
                    json_t **response) LMQ_WUR;

#endif
