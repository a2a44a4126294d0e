/*
 * Validation throughput of src/schema (make bench-data, scripts/bench-data.py): a measurement,
 * not a test, so ctest doesn't run it.
 *
 *   schema_bench SCHEMA INSTANCES.jsonl MIN_MS [--assert-formats]
 *
 * Compiles SCHEMA once, parses every line of INSTANCES.jsonl once (parsing is not timed), then
 * validates the instances round after round with one validator until MIN_MS have passed (at
 * most SCHEMA_BENCH_ROUNDS_MAX rounds). Prints one JSON line:
 *   {"objects":N,"ms":T,"objects_per_s":R,"valid":V,"invalid":I}
 * where valid/invalid count one round, so the caller can check the verdicts against ajv's.
 * Exit 1 on a usage error, an unreadable file, a schema that does not compile or a validation
 * error other than a verdict.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/lmq.h"
#include "schema/schema.h"

/* Instances in one file: the bench's models are a few hundred objects. */
#define SCHEMA_BENCH_INSTANCES_MAX 100000u
/* Rounds over the instances: ends a run whose clock never reaches MIN_MS. */
#define SCHEMA_BENCH_ROUNDS_MAX 100000000u
/* Bytes of one instance line. */
#define SCHEMA_BENCH_LINE_MAX_BYTES (1024u * 1024u)

static double bench__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads every non-empty line of path as one JSON instance into *out (a JSON array). */
static int bench__load_instances(const char *path, json_t **out)
{
    int rc = 1;
    FILE *f = fopen(path, "r");
    char *line = malloc(SCHEMA_BENCH_LINE_MAX_BYTES);
    json_t *arr = json_array();
    if (f == NULL || line == NULL || arr == NULL) {
        fprintf(stderr, "schema_bench: %s: cannot read\n", path);
        goto out;
    }
    size_t lineno = 0;
    while (fgets(line, (int)SCHEMA_BENCH_LINE_MAX_BYTES, f) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len == 0 || line[0] == '\n')
            continue;
        json_error_t jerr;
        json_t *inst = schema_json_loadb(line, len, &jerr);
        if (inst == NULL || json_array_size(arr) >= SCHEMA_BENCH_INSTANCES_MAX) {
            fprintf(stderr, "schema_bench: %s:%zu: %s\n", path, lineno,
                    inst == NULL ? jerr.text : "too many instances");
            json_decref(inst);
            goto out;
        }
        if (json_array_append_new(arr, inst) != 0)
            goto out;
    }
    LMQ_ASSERT(json_array_size(arr) <= SCHEMA_BENCH_INSTANCES_MAX);
    *out = arr;
    arr = NULL;
    rc = 0;
out:
    json_decref(arr);
    free(line);
    if (f != NULL)
        fclose(f);
    return rc;
}

static int bench__compile(const char *path, bool assert_formats, struct schema **out)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        fprintf(stderr, "schema_bench: %s: %s\n", path, jerr.text);
        return 1;
    }
    struct schema_options opt = {.draft = SCHEMA_DRAFT_AUTO, .assert_formats = assert_formats};
    char err[256] = "";
    int rc = schema_compile(NULL, doc, NULL, &opt, out, err, sizeof(err));
    json_decref(doc);
    if (rc != LMQ_OK) {
        fprintf(stderr, "schema_bench: %s: %s\n", path, err);
        return 1;
    }
    return 0;
}

/* One round over every instance; counts verdicts. 0, or 1 on a validation error. */
static int bench__round(struct schema_validator *v, const json_t *instances, size_t *valid,
                        size_t *invalid)
{
    struct schema_result res;
    size_t i;
    const json_t *inst;
    json_array_foreach(instances, i, inst)
    {
        if (schema_validate(v, inst, &res) != LMQ_OK) {
            fprintf(stderr, "schema_bench: instance %zu: validation error: %s\n", i + 1,
                    res.error_count > 0 ? res.errors[res.error_count - 1].message : "?");
            return 1;
        }
        if (res.valid)
            (*valid)++;
        else
            (*invalid)++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "--assert-formats") != 0)) {
        fprintf(stderr, "usage: schema_bench SCHEMA INSTANCES.jsonl MIN_MS [--assert-formats]\n");
        return 1;
    }
    double min_ms = strtod(argv[3], NULL);
    struct schema *s = NULL;
    struct schema_validator *v = NULL;
    json_t *instances = NULL;
    int rc = 1;
    if (bench__compile(argv[1], argc == 5, &s) != 0 ||
        bench__load_instances(argv[2], &instances) != 0)
        goto out;
    if (json_array_size(instances) == 0 || schema_validator_new(s, &v) != LMQ_OK) {
        fprintf(stderr, "schema_bench: no instances, or no memory for a validator\n");
        goto out;
    }
    size_t valid = 0, invalid = 0;
    if (bench__round(v, instances, &valid, &invalid) != 0) /* warm-up, and the verdicts */
        goto out;
    size_t objects = 0, rounds = 0;
    size_t ignored_valid = 0, ignored_invalid = 0;
    double t0 = bench__now_ms(), elapsed_ms = 0;
    while (elapsed_ms < min_ms && rounds < SCHEMA_BENCH_ROUNDS_MAX) {
        if (bench__round(v, instances, &ignored_valid, &ignored_invalid) != 0)
            goto out;
        objects += json_array_size(instances);
        rounds++;
        elapsed_ms = bench__now_ms() - t0;
    }
    LMQ_ASSERT(ignored_valid == valid * rounds && ignored_invalid == invalid * rounds);
    printf("{\"objects\":%zu,\"ms\":%.1f,\"objects_per_s\":%.0f,\"valid\":%zu,\"invalid\":%zu}\n",
           objects, elapsed_ms, (double)objects * 1e3 / elapsed_ms, valid, invalid);
    rc = 0;
out:
    schema_validator_free(v);
    schema_free(s);
    json_decref(instances);
    return rc;
}
