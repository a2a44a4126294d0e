/*
 * JSON Schema validation: draft 2020-12 (core, applicator, validation, unevaluated and
 * format-annotation vocabularies) and a draft-7 mode, on jansson values.
 *
 * Compile once, validate many times. schema_compile() walks every document the schema needs
 * (the schema itself, the registry's documents, the built-in meta-schemas), resolves every
 * $ref/$dynamicRef to a compiled node, compiles every "pattern"/"patternProperties" regex once
 * and checks the limits below; a schema that breaks a limit, is not valid against its
 * meta-schema or has an unresolvable reference is refused with a one-line reason.
 * schema_validate() then walks the compiled nodes with a schema_validator's scratch area: no
 * allocation per keyword (the scratch area grows rarely and is kept between validations). A
 * fast path that keeps no paths or errors runs first and only proves instances valid; when it
 * does not, the full walk decides and names the errors (schema_validate.c says more).
 *
 * unevaluatedProperties/unevaluatedItems: each evaluation of a schema node on an object or array
 * gets a bitset of that instance's members (one bit per property in jansson's iteration order,
 * one per array item) carved from the validator's scratch stack; properties/patternProperties/
 * additionalProperties/prefixItems/items/contains/unevaluated* set bits, and an in-place
 * applicator ($ref, allOf, anyOf, oneOf, if/then/else, dependentSchemas, $dynamicRef) ORs a
 * child's bitset into its own only when that child succeeded, so failed branches drop theirs.
 *
 * Regexes: PCRE2 (Debian libpcre2-dev), because it is the maintained backtracking engine closest
 * to ECMA-262 syntax, with UTF mode, Unicode properties (\p{L}), JIT, and match/depth limits so a
 * catastrophic pattern ends with an error instead of hanging. ECMA-262 patterns are mapped so:
 * PCRE2_UTF (code points, not bytes); \d and \w stay ASCII (no PCRE2_UCP), as ECMA says; \s and
 * \S are rewritten to ECMA's whitespace set (ASCII space and controls, U+00A0, U+1680,
 * U+2000-200A, U+2028/9, U+202F, U+205F, U+3000, U+FEFF); \uXXXX and \u{...} through
 * PCRE2_ALT_BSUX | PCRE2_EXTRA_ALT_BSUX; "$" only at the very end (PCRE2_DOLLAR_ENDONLY).
 * Not supported: ECMA's "v" flag syntax (set operations), \cX differences and lookbehind
 * edge cases where PCRE2 refuses variable-length lookbehind; such a pattern is refused at compile
 * time with PCRE2's message.
 */
#ifndef LMQ_SCHEMA_H
#define LMQ_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/lmq.h"

/* Schema nesting depth (objects/arrays in one schema document): deeper is refused. A real model
 * is rarely deeper than 20; 128 keeps every compile-time walk far from the C stack's limits. */
#define SCHEMA_DEPTH_MAX 128u
/* Compiled subschemas over all documents of one schema: bounds compile time and memory. */
#define SCHEMA_NODES_MAX 100000u
/* Members of one "enum": enum is a linear scan, so a huge enum is a CPU bomb per instance. */
#define SCHEMA_ENUM_MAX 10000u
/* Bytes of one "pattern"/"patternProperties" regex source. */
#define SCHEMA_PATTERN_MAX_BYTES 4096u
/* PCRE2 match limit (backtracking steps) and depth limit per regex match: ^(a+)+$ on 30 a's and
 * a b stops here with an error instead of running for minutes. */
#define SCHEMA_REGEX_MATCH_LIMIT 1000000u
#define SCHEMA_REGEX_DEPTH_LIMIT 10000u
/* Instance nesting depth at validation: deeper is an error (not a stack overflow). */
#define SCHEMA_INSTANCE_DEPTH_MAX 256u
/* Nested schema evaluations (including $ref hops) for one instance: stops a $ref cycle that
 * makes no progress in the instance with an error. */
#define SCHEMA_EVAL_DEPTH_MAX 1024u
/* Subschema evaluations per validation: a small schema can still ask for exponential work
 * (a chain of $defs each referencing the next twice from a failing anyOf: 2^depth), so the
 * walk stops with an error after this many. 20 million covers a legitimate instance of a
 * million values under a twenty-node schema (about a second of work). */
#define SCHEMA_EVAL_STEPS_MAX 20000000u
/* Errors kept per validation (the CLI contract: at most 10). */
#define SCHEMA_ERRORS_MAX 10u
/* Bytes of an error's JSON Pointers and message (longer ones are cut, marked with "..."). */
#define SCHEMA_POINTER_MAX_BYTES 512u
#define SCHEMA_MESSAGE_MAX_BYTES 256u
/* Bytes of an $anchor/$dynamicAnchor name (lookups build "resource + name" keys on the stack). */
#define SCHEMA_ANCHOR_MAX_BYTES 256u
/* Documents in one registry. */
#define SCHEMA_REGISTRY_MAX 1024u

enum schema_draft {
    SCHEMA_DRAFT_AUTO = 0, /* from the root's $schema; 2020-12 when absent */
    SCHEMA_DRAFT_2020_12,
    SCHEMA_DRAFT_7,
};

struct schema_options {
    enum schema_draft draft;
    bool assert_formats;  /* "format" asserts date-time, date, time, email, ... (else annotation) */
    bool skip_meta_check; /* do not validate the schema against its meta-schema first */
};

/* Documents that $ref may name by URI (besides the built-in meta-schemas). A registry also
 * caches the parsed and compiled meta-schemas, so it is used by one thread at a time. */
struct schema_registry;

/* One failed keyword, as the 2020-12 "basic" output names it. */
struct schema_error {
    char instance[SCHEMA_POINTER_MAX_BYTES]; /* JSON Pointer into the instance */
    char schema[SCHEMA_POINTER_MAX_BYTES];   /* keyword location (through $ref) */
    char keyword[64];
    char message[SCHEMA_MESSAGE_MAX_BYTES];
};

struct schema_result {
    bool valid;
    size_t error_count; /* kept errors, at most SCHEMA_ERRORS_MAX */
    struct schema_error errors[SCHEMA_ERRORS_MAX];
};

struct schema;
struct schema_validator;

/* A new empty registry (*out, freed with schema_registry_free). 0 or LMQ_ENOMEM. */
int schema_registry_new(struct schema_registry **out) LMQ_WUR;
void schema_registry_free(struct schema_registry *reg);
/* Adds doc (a new reference is taken) under the absolute uri (no fragment). 0, LMQ_EEXIST,
 * LMQ_ELIMIT or LMQ_ENOMEM. */
int schema_registry_add(struct schema_registry *reg, const char *uri, json_t *doc) LMQ_WUR;

/*
 * Compiles doc (a new reference is taken) with base_uri (NULL: none) as its retrieval URI; reg
 * may be NULL. On success *out is the schema (freed with schema_free; it does not need reg
 * afterwards). On failure returns LMQ_EINVAL (invalid schema, unresolvable $ref), LMQ_ELIMIT (a
 * limit above) or LMQ_ENOMEM, and err says why in one line.
 */
int schema_compile(struct schema_registry *reg, json_t *doc, const char *base_uri,
                   const struct schema_options *opt, struct schema **out, char *err,
                   size_t err_len) LMQ_WUR;
void schema_free(struct schema *s);
/* The draft the schema was compiled in. */
enum schema_draft schema_draft_of(const struct schema *s);

/* A validator (its scratch area) for s; one per thread. 0 or LMQ_ENOMEM. */
int schema_validator_new(const struct schema *s, struct schema_validator **out) LMQ_WUR;
void schema_validator_free(struct schema_validator *v);

/*
 * Validates instance. Returns 0 with out->valid and the first errors, or LMQ_ELIMIT when a
 * bound was hit (instance depth, evaluation depth or budget, a regex's match limit): out->valid is
 * false then and the last error says which bound. LMQ_ENOMEM when the scratch area could not grow.
 */
int schema_validate(struct schema_validator *v, const json_t *instance,
                    struct schema_result *out) LMQ_WUR;

/* How many times the validator's scratch area has been (re)allocated: tests observe that
 * validating again allocates nothing. */
size_t schema_validator_alloc_count(const struct schema_validator *v);

/*
 * Parses JSON text like json_loadb, but an integer too big for 64 bits is read as a double
 * instead of failing (JSON Schema treats numbers by value). NULL on error, with jerr filled.
 */
json_t *schema_json_loadb(const char *text, size_t len, json_error_t *jerr);

/* True when a and b are equal JSON values as JSON Schema defines it (1 == 1.0, key order
 * ignored). */
bool schema_json_equal(const json_t *a, const json_t *b);

#endif
