/* Internal: introspection answers and value printing (graphql_introspect.c). */
#ifndef LMQ_GRAPHQL_INTROSPECT_H
#define LMQ_GRAPHQL_INTROSPECT_H

#include "core/buf.h"
#include "graphql/graphql_internal.h"

/* Longest printed literal (a default value). */
#define GQ_LIT_MAX_BYTES (64u * 1024u)

/* The value of introspection field f (tag < 0) of parent (of object type ptype): a new
 * reference, NULL when out of memory. */
json_t *gq_introspect_resolve(const struct graphql_schema *s, const struct graphql_field *f,
                              const char *ptype, const json_t *args, const json_t *parent);
/* Appends v as a GraphQL literal of type t (NULL: untyped) to b. */
void gq_print_literal(struct gq_out *b, const json_t *v, const struct gq_tref *t, int depth);
/* A double as JavaScript's String() prints it. */
void gq_print_number(char *buf, size_t cap, double d);

#endif
