/* The GraphQL mapping of the typed objects (data_graphql_schema.c builds it, data_graphql.c
 * resolves and serves it). Internal to the data layer. */
#ifndef DATA_GRAPHQL_H
#define DATA_GRAPHQL_H

#include "data/data_internal.h"
#include "graphql/graphql.h"

/* What a resolver tag stands for (the tag is the entry's index + 1). */
enum data_gql_kind {
    DATA_GQL_R,        /* r_T: one resource or version */
    DATA_GQL_RL,       /* rl_T: a page of resources */
    DATA_GQL_VERSIONS, /* versions_T */
    DATA_GQL_LINK,     /* a property with "x-link": the resources it names */
    DATA_GQL_TYPES,    /* _types */
};

/* How a filter compares an indexed property. */
enum data_gql_scalar {
    DATA_GQL_OTHER, /* not filterable (object, list, JSON) */
    DATA_GQL_STRING,
    DATA_GQL_ID, /* an x-link: the permalink's text */
    DATA_GQL_INT,
    DATA_GQL_FLOAT,
    DATA_GQL_BOOLEAN,
    DATA_GQL_ENUM,
};

struct data_gql_entry {
    enum data_gql_kind kind;
    char model[DATA_TYPE_NAME_MAX_CHARS + 1]; /* R/RL/VERSIONS: the model; LINK: the target */
    char field[72];                           /* LINK: the property holding the permalinks */
};

struct data_gql_model {
    const struct data_model *model;
    enum data_gql_scalar filter_kind[DATA_INDEXED_MAX]; /* per m->indexed[i] */
    char filter_type[DATA_INDEXED_MAX][512];
};

struct data_gql {
    struct graphql_schema *schema;
    char *sdl;
    struct data_gql_entry *entries;
    size_t count, cap;
    struct data_gql_model *models; /* as the set's models, in order */
    size_t model_count;
};

/* Builds the schema of set: 0 with *out, or LMQ_EINVAL with the reason in err (a clash of
 * the generated type names), LMQ_ENOMEM. */
int data_gql_build(const struct data_models *set, struct data_gql **out, char *err,
                   size_t err_len) LMQ_WUR;
void data_gql_free(struct data_gql *g);
/* Whether set with m added (or in place of its namesake) still maps: 0, LMQ_EINVAL with the
 * reason in err, LMQ_ENOMEM. Nothing changes. */
int data_gql_check(const struct data_models *set, struct data_model *m, char *err,
                   size_t err_len) LMQ_WUR;
/* The string v holds, or dflt when v is not a string. */
static inline const char *gql_str(const json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s != NULL ? s : dflt;
}
/* True for a GraphQL name of at most 64 characters not starting with "__". */
bool data_gql_name_valid(const char *name);

#endif
