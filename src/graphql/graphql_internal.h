/* Internal to src/graphql/: the schema's and the document's structures shared by the lexer,
 * parser, validator, executor and introspection. */
#ifndef LMQ_GRAPHQL_INTERNAL_H
#define LMQ_GRAPHQL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "graphql/graphql.h"

/* Bounds on a schema (refused with LMQ_ELIMIT past them). */
#define GRAPHQL_TYPES_MAX 4096
#define GRAPHQL_FIELDS_MAX 1024
#define GRAPHQL_ARGS_MAX 64
#define GRAPHQL_ENUM_VALUES_MAX 4096
/* Bounds on a document: tokens, nesting of values and type references (selection nesting is
 * limits->max_depth), the arena all of a request's nodes come from, and errors reported. */
#define GRAPHQL_TOKENS_MAX 100000
#define GRAPHQL_VALUE_DEPTH_MAX 32
#define GRAPHQL_ARENA_MAX_BYTES (64u * 1024u * 1024u)
#define GRAPHQL_ERRORS_MAX 100
#define GRAPHQL_DIRECTIVES_COUNT 5
/* Fragments spread within fragments, at most this deep (graphql-js has no such bound; a real
 * query is nowhere near it): bounds every walk through fragments. */
#define GRAPHQL_FRAGMENT_DEPTH_MAX 64

/* Internal resolver tags (negative): introspection, answered by the engine itself. */
enum {
    GQ_TAG_SCHEMA = -1,   /* Query.__schema */
    GQ_TAG_TYPE = -2,     /* Query.__type(name:) */
    GQ_TAG_INTRO = -3,    /* any field of an introspection type */
    GQ_TAG_TYPENAME = -4, /* __typename on every object */
};

/* ---- arena: a request's (or schema's) small allocations, freed at once ---- */
struct gq_block;
struct gq_arena {
    struct gq_block *head;
    size_t used_bytes;
    size_t max_bytes;
};
void *gq_alloc(struct gq_arena *a, size_t size);
char *gq_strndup(struct gq_arena *a, const char *s, size_t len);
void gq_arena_free(struct gq_arena *a);

/* ---- output text: a growing string with a hard bound; failures are sticky ---- */
#define GQ_OUT_MAX_BYTES (16u * 1024u * 1024u)
struct gq_out {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* out of memory or past GQ_OUT_MAX_BYTES: the text is incomplete */
};
void gq_outn(struct gq_out *o, const void *p, size_t n);
void gq_outf(struct gq_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (NUL-terminated, malloc'd, the caller frees) or NULL when it failed; o is empty. */
char *gq_out_take(struct gq_out *o);
void gq_out_free(struct gq_out *o);

/* ---- schema ---- */
enum gq_kind { GQ_K_SCALAR, GQ_K_OBJECT, GQ_K_INPUT, GQ_K_ENUM };
enum gq_tref_kind { GQ_TR_NAMED, GQ_TR_LIST, GQ_TR_NONNULL };

struct gq_tref {
    int kind;
    const char *name;         /* GQ_TR_NAMED */
    struct graphql_object *t; /* GQ_TR_NAMED, once resolved (NULL: unknown) */
    struct gq_tref *of;       /* GQ_TR_LIST, GQ_TR_NONNULL */
};

struct gq_arg {
    char *name;
    char *desc;
    char *type_src;
    struct gq_tref *type;
    json_t *def; /* default (NULL: none) */
};

struct graphql_field {
    char *name;
    char *desc;
    char *type_src;
    struct gq_tref *type;
    int tag;
    struct gq_arg *args;
    size_t args_count;
    struct graphql_object *owner; /* NULL for a directive */
    uint32_t locations;           /* a directive's locations (bits of gq_dirloc) */
    uint8_t loc_order[8];         /* ... as declared (bit numbers), for introspection */
    size_t loc_count;
};

struct graphql_object {
    int kind;
    char *name;
    char *desc;
    char *specified_by; /* scalars: specifiedByURL (built-ins: none) */
    struct graphql_field **fields;
    size_t fields_count;
    size_t fields_cap;
    char **values; /* enum values */
    size_t values_count;
    bool builtin;
    bool hidden; /* a built-in nothing references: not in introspection (as in graphql-js) */
    struct graphql_schema *schema;
};

struct graphql_schema {
    struct graphql_object **types;
    size_t types_count;
    size_t types_cap;
    char *query_name;
    struct graphql_object *query;
    struct graphql_object **order; /* every type in graphql-js's type map order */
    size_t order_visible;          /* order[0..order_visible): the types introspection lists */
    bool finished;
    bool building_builtins; /* graphql_schema_new adding the built-in types */
    char *build_err;        /* the first error of a builder call, reported by finish */
    struct gq_arena arena;
    struct graphql_object *t_int, *t_float, *t_string, *t_boolean, *t_id;
    struct graphql_field *directives[GRAPHQL_DIRECTIVES_COUNT];
    /* introspection meta fields: __schema, __type, __typename */
    struct graphql_field *f_schema, *f_type, *f_typename;
};

/* Directive locations, in __DirectiveLocation's order (graphql-js 17's). */
enum gq_dirloc {
    GQ_LOC_QUERY = 1u << 0,
    GQ_LOC_MUTATION = 1u << 1,
    GQ_LOC_SUBSCRIPTION = 1u << 2,
    GQ_LOC_FIELD = 1u << 3,
    GQ_LOC_FRAGMENT_DEFINITION = 1u << 4,
    GQ_LOC_FRAGMENT_SPREAD = 1u << 5,
    GQ_LOC_INLINE_FRAGMENT = 1u << 6,
    GQ_LOC_VARIABLE_DEFINITION = 1u << 7,
    GQ_LOC_FRAGMENT_VARIABLE_DEFINITION = 1u << 8,
    GQ_LOC_SCHEMA = 1u << 9,
    GQ_LOC_SCALAR = 1u << 10,
    GQ_LOC_OBJECT = 1u << 11,
    GQ_LOC_FIELD_DEFINITION = 1u << 12,
    GQ_LOC_ARGUMENT_DEFINITION = 1u << 13,
    GQ_LOC_INTERFACE = 1u << 14,
    GQ_LOC_UNION = 1u << 15,
    GQ_LOC_ENUM = 1u << 16,
    GQ_LOC_ENUM_VALUE = 1u << 17,
    GQ_LOC_INPUT_OBJECT = 1u << 18,
    GQ_LOC_INPUT_FIELD_DEFINITION = 1u << 19,
    GQ_LOC_DIRECTIVE_DEFINITION = 1u << 20,
    GQ_LOC_COUNT = 21,
};
extern const char *const gq_dirloc_names[GQ_LOC_COUNT];

struct graphql_object *gq_schema_type(const struct graphql_schema *s, const char *name);
struct graphql_field *gq_type_field(const struct graphql_object *t, const char *name);
const struct gq_arg *gq_field_arg(const struct graphql_field *f, const char *name);
struct graphql_field *gq_schema_directive(const struct graphql_schema *s, const char *name);
struct graphql_object *gq_tref_named(const struct gq_tref *t);
/* Prints a type reference ("[Int!]!") into a new arena string (NULL: no memory). */
char *gq_tref_str(struct gq_arena *a, const struct gq_tref *t);
/* Parses SDL type syntax into the arena (NULL: bad syntax or no memory). */
struct gq_tref *gq_tref_parse(struct gq_arena *a, const char *src);
bool gq_tref_equal(const struct gq_tref *a, const struct gq_tref *b);
bool gq_is_input_type(const struct gq_tref *t);
bool gq_is_leaf(const struct graphql_object *t);
/* Builds the introspection types into a new schema (graphql_schema_new). */
int gq_introspection_add(struct graphql_schema *s) LMQ_WUR;

/* ---- document ---- */
enum gq_nkind {
    GQ_N_OPERATION,
    GQ_N_FRAGMENT,
    GQ_N_TYPESYSTEM, /* a type-system definition: recognised, skipped, refused by validation */
    GQ_N_FIELD,
    GQ_N_SPREAD,
    GQ_N_INLINE,
    GQ_N_VARDEF,
    GQ_N_ARG,
    GQ_N_DIRECTIVE,
    GQ_N_VAR,
    GQ_N_INT,
    GQ_N_FLOAT,
    GQ_N_STRING,
    GQ_N_BOOL,
    GQ_N_NULL,
    GQ_N_ENUM,
    GQ_N_LIST,
    GQ_N_OBJECT,
    GQ_N_OBJFIELD,
};
enum gq_op { GQ_OP_QUERY, GQ_OP_MUTATION, GQ_OP_SUBSCRIPTION };

struct gq_node {
    int kind;
    uint32_t line;
    uint32_t col;
    const char *name;     /* names; a type-system definition: its name or NULL (schema) */
    const char *alias;    /* fields */
    const char *str;      /* scalar values' text (strings decoded) */
    size_t str_len;       /* its length (a decoded string may hold NUL) */
    int op;               /* operation kind; bool value; block string */
    struct gq_tref *type; /* variable type; type condition (NULL: none) */
    uint32_t type_line, type_col;
    uint32_t name_line, name_col; /* where the name is (operations, fragments, spreads, vars) */
    uint32_t sel_line, sel_col;   /* where the selection set's "{" is */
    struct gq_node *value;        /* argument/object field value; variable default */
    struct gq_node *args;         /* arguments; list items; object fields */
    struct gq_node *vars;         /* variable definitions */
    struct gq_node *dirs;         /* directives */
    struct gq_node *sel;          /* selections */
    bool has_sel;
    struct gq_node *next;
    /* filled in by validation */
    struct graphql_field *def;    /* a field's definition */
    struct graphql_object *ptype; /* a field's parent type */
    struct gq_node *frag;         /* a spread's fragment */
    int mark;
    size_t path_index; /* NoFragmentCycles: index + 1 on the spread path, or 0 */
};

struct gq_doc {
    struct gq_node *defs;
    struct gq_node **frags; /* fragment definitions sorted by (name, document order) */
    size_t frags_count;
};
/* The first fragment definition named name, or NULL (a binary search). */
struct gq_node *gq_doc_fragment(const struct gq_doc *doc, const char *name);

/* Request errors and field errors, in the response's order. */
struct gq_ctx {
    struct gq_arena arena;
    json_t *errors; /* array */
    bool oom;
    const struct graphql_schema *schema;
    const struct graphql_limits *limits;
};
/* Appends {"message", "locations": [nodes...]} ; nodes: up to 4 (NULL-terminated list). */
void gq_error(struct gq_ctx *c, const struct gq_node *const *nodes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies in to out (cap >= 3 * strlen(in) + 1), invalid UTF-8 bytes replaced by U+FFFD. */
void gq_utf8_clean(const char *in, char *out, size_t cap);
/* Appends an error at n {line, column} positions. */
void gq_error_pos(struct gq_ctx *c, const uint32_t (*pos)[2], size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends an error at one line/column (line 0: no locations). */
void gq_error_at(struct gq_ctx *c, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses the document; on a syntax error or a limit appends the error and returns it. */
int gq_parse(struct gq_ctx *c, const char *src, size_t len, struct gq_doc *out) LMQ_WUR;
/* Validates; errors appended. 0 when valid. */
int gq_validate(struct gq_ctx *c, struct gq_doc *doc) LMQ_WUR;
/* OverlappingFieldsCanBeMerged (graphql_overlap.c), after the fields are bound. */
void gq_validate_overlaps(struct gq_ctx *c, struct gq_doc *doc);
/* Executes a valid document. */
int gq_exec(struct gq_ctx *c, struct gq_doc *doc, const char *operation_name,
            const json_t *variables, const struct graphql_resolvers *r, json_t **data) LMQ_WUR;

/* Value helpers shared by validation and execution. */
/* "Did you mean" suggestions: appends to buf (cap bytes) " Did you mean X, Y or Z?" for names
 * close to input among options (count); prefix "" or "the enum value ". */
void gq_did_you_mean(char *buf, size_t cap, const char *input, const char *const *options,
                     size_t count, const char *prefix);
/* Prints a literal as graphql-js printForError does into a malloc'd string. */
char *gq_print_value(const struct gq_node *v);
/* Prints a JSON value as graphql-js inspect() does, malloc'd. */
char *gq_inspect(const json_t *v);
/* Coercion errors, graphql-js's way: all of them (up to GQ_CERR_MAX), each with its path in
 * an input value (" at .a[0]" or "") or the literal node at fault. */
#define GQ_CERR_MAX 16
struct gq_cerr {
    size_t n;
    char *msg[GQ_CERR_MAX];
    char *path[GQ_CERR_MAX];
    const struct gq_node *at[GQ_CERR_MAX];
};
void gq_cerr_free(struct gq_cerr *e);
/* Coerces a literal to type t (variables from vars; NULL in validation, where variables are
 * checked by their own rules): a new reference, or NULL with e->n > 0. */
json_t *gq_coerce_literal(const struct gq_tref *t, const struct gq_node *v, const json_t *vars,
                          struct gq_cerr *e);
/* Coerces an input JSON value (a variable's value, a default) to t: NULL with e->n > 0. */
json_t *gq_coerce_input(const struct gq_tref *t, const json_t *v, struct gq_cerr *e);

#endif
