/*
 * JSON Schema validation (src/schema): the official JSON Schema Test Suite, 2020-12 from the
 * committed snapshot (tests/vectors/json-schema-test-suite, README.md there) and Debian's
 * draft 7 (package json-schema-test-suite), every case against the suite's verdict, with an
 * explicit list of known failures (tests/unit/schema_known_failures_*.txt) that must stay exact:
 * an unlisted failure fails, and so does a listed case that passes. Then our own cases: error
 * paths, limits (deep schema, deep instance, huge enum, catastrophic regex, $ref cycles) and
 * the no-allocation-on-revalidation property.
 *
 * LMQ_SCHEMA_WRITE_KNOWN=FILE writes the current failures of the suite runs to FILE.2020_12 and
 * FILE.draft7 (to refresh a list; the reasons are then written by hand).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/lmq.h"
#include "schema/schema.h"
#include "schema/schema_internal.h"

#define T_PATH_MAX 1024
#define T_FILE_MAX_BYTES (16u * 1024u * 1024u)
#define T_FILES_MAX 512
#define T_KNOWN_MAX 1024
#define T_ERR_MAX 512

static json_t *t_load(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    char err[T_ERR_MAX];
    if (lmq_file_read(path, T_FILE_MAX_BYTES, &text, &len, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    json_error_t jerr;
    json_t *doc = schema_json_loadb(text, len, &jerr);
    free(text);
    if (doc == NULL) {
        fail_msg("%s: %s", path, jerr.text);
    }
    return doc;
}

/* Every *.json under dir (relative names, sorted), into names. */
static void t_list(const char *root, const char *rel, char **names, size_t *count)
{
    char path[T_PATH_MAX];
    snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char sub[T_PATH_MAX];
        snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        char full[T_PATH_MAX * 2];
        snprintf(full, sizeof(full), "%s/%s", root, sub);
        struct stat st;
        assert_int_equal(stat(full, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            t_list(root, sub, names, count);
        } else if (strlen(sub) > 5 && strcmp(sub + strlen(sub) - 5, ".json") == 0) {
            assert_true(*count < T_FILES_MAX);
            names[(*count)++] = strdup(sub);
        }
    }
    closedir(d);
}

static int t_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct t_known {
    char *key[T_KNOWN_MAX]; /* "file\tgroup\ttest" */
    char *reason[T_KNOWN_MAX];
    bool seen[T_KNOWN_MAX];
    size_t count;
};

static void t_known_load(const char *path, struct t_known *k)
{
    memset(k, 0, sizeof(*k));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        /* file TAB group TAB test TAB reason */
        char *t1 = strchr(line, '\t');
        char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
        if (t3 == NULL) {
            fail_msg("%s: bad line (want file<TAB>group<TAB>test<TAB>reason): %s", path, line);
        }
        *t3 = '\0';
        assert_true(k->count < T_KNOWN_MAX);
        k->key[k->count] = strdup(line);
        k->reason[k->count] = strdup(t3 + 1);
        k->count++;
    }
    fclose(f);
}

static void t_known_free(struct t_known *k)
{
    for (size_t i = 0; i < k->count; i++) {
        free(k->key[i]);
        free(k->reason[i]);
    }
}

static int t_known_find(const struct t_known *k, const char *key)
{
    for (size_t i = 0; i < k->count; i++) {
        if (strcmp(k->key[i], key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

struct t_run {
    size_t cases, passed, known_failed, unexpected, known_passed;
    FILE *write_known;
};

static void t_verdict(struct t_run *run, struct t_known *known, const char *file, const char *group,
                      const char *test, bool ok, const char *why)
{
    char key[T_PATH_MAX * 2];
    snprintf(key, sizeof(key), "%s\t%s\t%s", file, group, test);
    int k = t_known_find(known, key);
    run->cases++;
    if (k >= 0) {
        known->seen[k] = true;
    }
    if (ok) {
        run->passed++;
        if (k >= 0) {
            run->known_passed++;
            print_message("LISTED BUT PASSES: %s | %s | %s\n", file, group, test);
        }
        return;
    }
    if (run->write_known != NULL) {
        fprintf(run->write_known, "%s\t%s\n", key, why);
    }
    if (k >= 0) {
        run->known_failed++;
        print_message("known failure: %s | %s | %s: %s\n", file, group, test, known->reason[k]);
    } else {
        run->unexpected++;
        print_message("FAILED: %s | %s | %s: %s\n", file, group, test, why);
    }
}

static void t_add_remotes(struct schema_registry *reg, const char *dir)
{
    char *names[T_FILES_MAX];
    size_t n = 0;
    t_list(dir, "", names, &n);
    for (size_t i = 0; i < n; i++) {
        char path[T_PATH_MAX * 2];
        char uri[T_PATH_MAX * 2];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(uri, sizeof(uri), "http://localhost:1234/%s", names[i]);
        json_t *doc = t_load(path);
        assert_int_equal(schema_registry_add(reg, uri, doc), 0);
        json_decref(doc);
        free(names[i]);
    }
}

/* schema_validate() takes the fast path's "valid" and otherwise the full walk's verdict: the
 * fast path must never call valid what the full walk calls invalid, and (unless it gave up)
 * must prove valid what the full walk calls valid, on every case whatever the suite expects. */
static void t_fast_agrees(struct schema_validator *v, const json_t *data, const char *file,
                          const char *gdesc, const char *tdesc)
{
    struct schema_result full;
    int full_rc = schema__validate_full(v, data, &full);
    int fast = schema__validate_fast(v, data);
    bool full_valid = full_rc == 0 && full.valid;
    if (fast != SCHEMA__FAST_GAVE_UP && (fast == 1) != full_valid) {
        fail_msg("%s | %s | %s: fast path %d, full walk %s", file, gdesc, tdesc, fast,
                 full_valid ? "valid" : "invalid");
    }
}

static void t_run_file(struct t_run *run, struct t_known *known, struct schema_registry *reg,
                       const char *dir, const char *file, enum schema_draft draft)
{
    char path[T_PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    json_t *groups = t_load(path);
    bool formats = strstr(file, "optional/format/") != NULL;
    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g)
    {
        const char *gdesc = json_string_value(json_object_get(g, "description"));
        struct schema_options opt = {.draft = draft, .assert_formats = formats};
        struct schema *s = NULL;
        char err[T_ERR_MAX] = "";
        int rc =
            schema_compile(reg, json_object_get(g, "schema"), NULL, &opt, &s, err, sizeof(err));
        struct schema_validator *v = NULL;
        if (rc == 0) {
            assert_int_equal(schema_validator_new(s, &v), 0);
        }
        size_t ti;
        json_t *t;
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            const char *tdesc = json_string_value(json_object_get(t, "description"));
            bool want = json_is_true(json_object_get(t, "valid"));
            char why[T_ERR_MAX * 2];
            bool ok = false;
            if (rc != 0) {
                snprintf(why, sizeof(why), "compile: %s", err);
            } else {
                struct schema_result res;
                int vr = schema_validate(v, json_object_get(t, "data"), &res);
                ok = vr == 0 && res.valid == want;
                t_fast_agrees(v, json_object_get(t, "data"), file, gdesc, tdesc);
                snprintf(why, sizeof(why), "got %s%s%s", res.valid ? "valid" : "invalid",
                         res.error_count > 0 ? ": " : "",
                         res.error_count > 0 ? res.errors[0].message : "");
            }
            t_verdict(run, known, file, gdesc, tdesc, ok, why);
        }
        schema_validator_free(v);
        schema_free(s);
    }
    json_decref(groups);
}

static void t_suite(const char *tests_dir, const char *remotes_dir, const char *known_path,
                    enum schema_draft draft)
{
    struct t_known *known = calloc(1, sizeof(*known));
    assert_non_null(known);
    t_known_load(known_path, known);
    struct schema_registry *reg = NULL;
    assert_int_equal(schema_registry_new(&reg), 0);
    t_add_remotes(reg, remotes_dir);
    char *names[T_FILES_MAX];
    size_t n = 0;
    t_list(tests_dir, "", names, &n);
    qsort(names, n, sizeof(names[0]), t_cmp);
    struct t_run run = {0};
    const char *w = getenv("LMQ_SCHEMA_WRITE_KNOWN");
    if (w != NULL) {
        char wpath[T_PATH_MAX];
        snprintf(wpath, sizeof(wpath), "%s.%s", w, draft == SCHEMA_DRAFT_7 ? "draft7" : "2020_12");
        run.write_known = fopen(wpath, "w");
    }
    for (size_t i = 0; i < n; i++) {
        t_run_file(&run, known, reg, tests_dir, names[i], draft);
        free(names[i]);
    }
    size_t missing = 0;
    for (size_t i = 0; i < known->count; i++) {
        if (!known->seen[i]) {
            print_message("LISTED BUT NOT IN THE SUITE: %s\n", known->key[i]);
            missing++;
        }
    }
    print_message("%s: %zu cases, %zu passed, %zu known failures, %zu unexpected failures, "
                  "%zu listed but passing\n",
                  tests_dir, run.cases, run.passed, run.known_failed, run.unexpected,
                  run.known_passed);
    if (run.write_known != NULL) {
        fclose(run.write_known);
    }
    schema_registry_free(reg);
    t_known_free(known);
    free(known);
    assert_true(run.cases > 500);
    assert_int_equal(run.unexpected, 0);
    assert_int_equal(run.known_passed, 0);
    assert_int_equal(missing, 0);
}

/* ---- our own cases ---- */

/* Counts every allocation of the process (the library's included): glibc's allocator under
 * a counter, so a test can see that validation allocates nothing. Not under ASan, whose own
 * malloc must stay in place (the test then relies on the validator's scratch counter). */
#if defined(__SANITIZE_ADDRESS__)
#define T_COUNTS_ALLOCS 0
static size_t t_allocs;
#else
#define T_COUNTS_ALLOCS 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
static size_t t_allocs;
void *malloc(size_t n)
{
    t_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t m)
{
    t_allocs++;
    return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n)
{
    t_allocs++;
    return __libc_realloc(p, n);
}
#endif

static json_t *t_json(const char *text)
{
    json_error_t jerr;
    json_t *j = schema_json_loadb(text, strlen(text), &jerr);
    if (j == NULL) {
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    }
    return j;
}

/* Compiles schema text; returns the result code (and *out on success). */
static int t_compile(const char *schema, const struct schema_options *opt, struct schema **out,
                     char *err, size_t err_len)
{
    json_t *doc = t_json(schema);
    int rc = schema_compile(NULL, doc, NULL, opt, out, err, err_len);
    json_decref(doc);
    return rc;
}

/* Validates instance against schema; returns validate's code, the result in *res. */
static int t_check_opt(const char *schema, const char *instance, const struct schema_options *opt,
                       struct schema_result *res)
{
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    int rc = t_compile(schema, opt, &s, err, sizeof(err));
    if (rc != 0) {
        fail_msg("compile %s: %s", schema, err);
    }
    struct schema_validator *v = NULL;
    assert_int_equal(schema_validator_new(s, &v), 0);
    json_t *inst = t_json(instance);
    rc = schema_validate(v, inst, res);
    json_decref(inst);
    schema_validator_free(v);
    schema_free(s);
    return rc;
}

static bool t_valid(const char *schema, const char *instance)
{
    struct schema_result res;
    assert_int_equal(t_check_opt(schema, instance, NULL, &res), 0);
    return res.valid;
}

static void test_error_names_instance_and_keyword_paths(void **state)
{
    (void)state;
    struct schema_result r;
    assert_int_equal(t_check_opt("{\"properties\":{\"items\":{\"type\":\"array\",\"items\":"
                                 "{\"type\":\"integer\"}}}}",
                                 "{\"items\":[1,\"x\"]}", NULL, &r),
                     0);
    assert_false(r.valid);
    assert_int_equal(r.error_count, 1);
    assert_string_equal(r.errors[0].instance, "/items/1");
    assert_string_equal(r.errors[0].schema, "/properties/items/items/type");
    assert_string_equal(r.errors[0].keyword, "type");
    /* Through a $ref: the keyword location keeps the "$ref" segment (basic output). */
    assert_int_equal(t_check_opt("{\"$defs\":{\"pos\":{\"minimum\":0}},"
                                 "\"properties\":{\"a/b~c\":{\"$ref\":\"#/$defs/pos\"}}}",
                                 "{\"a/b~c\":-1}", NULL, &r),
                     0);
    assert_false(r.valid);
    assert_string_equal(r.errors[0].instance, "/a~1b~0c");
    assert_string_equal(r.errors[0].schema, "/properties/a~1b~0c/$ref/minimum");
    assert_string_equal(r.errors[0].keyword, "minimum");
    /* propertyNames: the error names the object (a name has no pointer of its own). */
    assert_int_equal(t_check_opt("{\"properties\":{\"o\":{\"propertyNames\":{\"maxLength\":3}}}}",
                                 "{\"o\":{\"abcd\":1}}", NULL, &r),
                     0);
    assert_false(r.valid);
    assert_string_equal(r.errors[0].instance, "/o");
    assert_string_equal(r.errors[0].schema, "/properties/o/propertyNames/maxLength");
    /* then/else: their own location beside "if". */
    const char *cond = "{\"if\":{\"minimum\":0},\"then\":{\"multipleOf\":2},"
                       "\"else\":{\"type\":\"string\"}}";
    assert_int_equal(t_check_opt(cond, "3", NULL, &r), 0);
    assert_false(r.valid);
    assert_string_equal(r.errors[0].schema, "/then/multipleOf");
    assert_int_equal(t_check_opt(cond, "-1", NULL, &r), 0);
    assert_false(r.valid);
    assert_string_equal(r.errors[0].schema, "/else/type");
    /* A failed anyOf keeps its branches' errors, then its own. */
    assert_int_equal(
        t_check_opt("{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":5}]}", "1", NULL, &r), 0);
    assert_false(r.valid);
    assert_int_equal(r.error_count, 3);
    assert_string_equal(r.errors[0].schema, "/anyOf/0/type");
    assert_string_equal(r.errors[1].schema, "/anyOf/1/minimum");
    assert_string_equal(r.errors[2].schema, "/anyOf");
    /* A passing anyOf leaves no error behind from its failed branch. */
    assert_int_equal(
        t_check_opt("{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":0}]}", "1", NULL, &r), 0);
    assert_true(r.valid);
    assert_int_equal(r.error_count, 0);
}

static void test_at_most_ten_errors(void **state)
{
    (void)state;
    struct schema_result r;
    assert_int_equal(t_check_opt("{\"items\":{\"type\":\"string\"}}",
                                 "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]", NULL, &r),
                     0);
    assert_false(r.valid);
    assert_int_equal(r.error_count, SCHEMA_ERRORS_MAX);
    assert_string_equal(r.errors[9].instance, "/9");
}

static void test_json_equality_and_numbers(void **state)
{
    (void)state;
    assert_true(t_valid("{\"enum\":[1]}", "1.0"));
    assert_true(t_valid("{\"const\":{\"a\":1,\"b\":[2]}}", "{\"b\":[2.0],\"a\":1}"));
    assert_false(t_valid("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":2}"));
    assert_true(t_valid("{\"type\":\"integer\"}", "1.0"));
    assert_false(t_valid("{\"type\":\"integer\"}", "1.5"));
    assert_true(t_valid("{\"multipleOf\":0.1}", "0.3"));
    assert_false(t_valid("{\"multipleOf\":0.1}", "0.35"));
    assert_true(t_valid("{\"type\":\"integer\",\"minimum\":1e20}", "123456789012345678901234"));
    assert_false(t_valid("{\"uniqueItems\":true}", "[1,{\"a\":[1]},2,{\"a\":[1.0]}]"));
    /* A long array goes through the hashed path: 40 distinct items, then a duplicate. */
    assert_true(t_valid("{\"uniqueItems\":true}",
                        "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,"
                        "26,27,28,29,30,31,32,33,34,35,36,37,38,39]"));
    assert_false(t_valid("{\"uniqueItems\":true}",
                         "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,"
                         "26,27,28,29,30,31,32,33,34,35,36,37,38,{\"x\":1},{\"x\":1.0}]"));
    /* Lengths in code points: "é€" is 2 characters, 5 bytes. */
    assert_true(t_valid("{\"maxLength\":2}", "\"\\u00e9\\u20ac\""));
    assert_false(t_valid("{\"minLength\":3}", "\"\\u00e9\\u20ac\""));
}

static void test_unevaluated_drops_failed_branches(void **state)
{
    (void)state;
    const char *schema = "{\"anyOf\":[{\"properties\":{\"a\":true},\"required\":[\"b\"]},"
                         "{\"properties\":{\"c\":true}}],\"unevaluatedProperties\":false}";
    assert_false(t_valid(schema, "{\"a\":1,\"c\":1}"));
    assert_true(t_valid(schema, "{\"c\":1}"));
    assert_true(t_valid(schema, "{\"a\":1,\"b\":1,\"c\":1}") == false); /* b: unevaluated */
    assert_true(t_valid("{\"prefixItems\":[true],\"contains\":{\"type\":\"string\"},"
                        "\"unevaluatedItems\":false}",
                        "[1,\"x\",\"y\"]"));
    assert_false(t_valid("{\"prefixItems\":[true],\"contains\":{\"type\":\"string\"},"
                         "\"unevaluatedItems\":false}",
                         "[1,\"x\",2]"));
}

/* schema_validate's verdict is want, and the fast path agrees with the full walk (it proves
 * valid exactly what the full walk finds valid: none of these make it give up). */
static void t_fast_case(const char *schema, const char *instance, bool want)
{
    struct schema_options opt = {.skip_meta_check = true};
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    if (t_compile(schema, &opt, &s, err, sizeof(err)) != 0) {
        fail_msg("compile %s: %s", schema, err);
    }
    struct schema_validator *v = NULL;
    assert_int_equal(schema_validator_new(s, &v), 0);
    json_t *inst = t_json(instance);
    struct schema_result res, full;
    assert_int_equal(schema_validate(v, inst, &res), 0);
    assert_int_equal(schema__validate_full(v, inst, &full), 0);
    int fast = schema__validate_fast(v, inst);
    if (res.valid != want || full.valid != want || fast != (want ? 1 : 0)) {
        fail_msg("%s on %s: validate %d, full %d, fast %d, want %d", schema, instance, res.valid,
                 full.valid, fast, want);
    }
    json_decref(inst);
    schema_validator_free(v);
    schema_free(s);
}

static void test_fast_path_edge_cases(void **state)
{
    (void)state;
    t_fast_case("{\"type\":[]}", "1", false); /* no type allowed (meta check skipped) */
    t_fast_case("{\"type\":\"integer\"}", "2.0", true);
    t_fast_case("{\"type\":\"integer\"}", "2.5", false);
    /* "required" counted during the members walk: duplicates, names outside "properties" */
    const char *dup = "{\"properties\":{\"a\":true},\"required\":[\"a\",\"a\"]}";
    t_fast_case(dup, "{\"a\":1}", true);
    t_fast_case(dup, "{\"b\":1}", false);
    const char *mixed = "{\"properties\":{\"a\":true},\"required\":[\"a\",\"b\"]}";
    t_fast_case(mixed, "{\"a\":1}", false);
    t_fast_case(mixed, "{\"a\":1,\"b\":2}", true);
    /* properties, patternProperties and additionalProperties in one walk */
    const char *pp = "{\"properties\":{\"xa\":{\"type\":\"string\"}},"
                     "\"patternProperties\":{\"^x\":{\"type\":[\"integer\",\"string\"]}},"
                     "\"additionalProperties\":false}";
    t_fast_case(pp, "{\"xa\":\"s\",\"x1\":1}", true);
    t_fast_case(pp, "{\"xa\":1}", false); /* properties and the pattern both apply */
    t_fast_case(pp, "{\"y\":1}", false);
    /* names of 8, 9 and 17 bytes: hashed and compared a word at a time */
    const char *longnames = "{\"properties\":{\"abcdefgh\":{\"type\":\"integer\"},"
                            "\"abcdefghi\":{\"type\":\"integer\"},"
                            "\"abcdefghijklmnopq\":{\"type\":\"integer\"}},"
                            "\"additionalProperties\":false}";
    t_fast_case(longnames, "{\"abcdefgh\":1,\"abcdefghi\":2,\"abcdefghijklmnopq\":3}", true);
    t_fast_case(longnames, "{\"abcdefgX\":1}", false);
    t_fast_case(longnames, "{\"abcdefghijklmnopX\":1}", false);
    t_fast_case(longnames, "{\"abcdefghi\":\"s\"}", false);
    /* a chain of nodes that are only a $ref */
    const char *chain = "{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":"
                        "\"#/$defs/c\"},\"c\":{\"type\":\"integer\"}},\"$ref\":\"#/$defs/a\"}";
    t_fast_case(chain, "1", true);
    t_fast_case(chain, "\"x\"", false);
    /* an inner unevaluatedProperties sees only its own subschema's annotations */
    const char *inner = "{\"properties\":{\"foo\":true},"
                        "\"allOf\":[{\"unevaluatedProperties\":false}],"
                        "\"unevaluatedProperties\":true}";
    t_fast_case(inner, "{\"foo\":1}", false);
    t_fast_case(inner, "{}", true);
    /* lengths in code points (the byte length decides only when it can) and regexes on
     * ASCII (the JIT directly) and non-ASCII subjects */
    t_fast_case("{\"maxLength\":2}", "\"\u00e9\u00e9\"", true);
    t_fast_case("{\"maxLength\":2}", "\"\u00e9\u00e9\u00e9\"", false);
    t_fast_case("{\"minLength\":3}", "\"\u00e9\u00e9\"", false);
    t_fast_case("{\"minLength\":2}", "\"\u00e9\u00e9\"", true);
    t_fast_case("{\"pattern\":\"^\u00e9+$\"}", "\"\u00e9\u00e9\"", true);
    t_fast_case("{\"pattern\":\"^\u00e9+$\"}", "\"e\"", false);
    t_fast_case("{\"pattern\":\"^[A-Z]{3}$\"}", "\"EUR\"", true);
    t_fast_case("{\"pattern\":\"^[A-Z]{3}$\"}", "\"EURO\"", false);
    /* oneOf: two successes fail */
    t_fast_case("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", "1", false);
    t_fast_case("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", "-1", true);
}

static void test_formats_assert_only_when_asked(void **state)
{
    (void)state;
    struct schema_options on = {.assert_formats = true};
    struct schema_result r;
    const char *cases[][2] = {
        {"date-time", "\"2026-12-06T23:59:60Z\""},
        {"date", "\"2024-02-29\""},
        {"time", "\"12:00:00+01:00\""},
        {"email", "\"a.b@example.com\""},
        {"hostname", "\"example.com\""},
        {"ipv4", "\"192.168.0.1\""},
        {"ipv6", "\"::ffff:192.168.0.1\""},
        {"uri", "\"https://x.org/a?b#c\""},
        {"uuid", "\"2eb8aa08-aa98-11ea-b4aa-73b441d16380\""},
    };
    const char *bad[] = {"\"2026-12-06T22:59:60Z\"",
                         "\"2023-02-29\"",
                         "\"12:00:00\"",
                         "\"a..b@example.com\"",
                         "\"-x.com\"",
                         "\"192.168.0.01\"",
                         "\"1::2::3\"",
                         "\"/relative\"",
                         "\"2eb8aa08-aa98\""};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(cases); i++) {
        char schema[128];
        snprintf(schema, sizeof(schema), "{\"format\":\"%s\"}", cases[i][0]);
        assert_int_equal(t_check_opt(schema, cases[i][1], &on, &r), 0);
        assert_true(r.valid);
        assert_int_equal(t_check_opt(schema, bad[i], &on, &r), 0);
        if (r.valid) {
            fail_msg("format %s accepted %s", cases[i][0], bad[i]);
        }
        assert_string_equal(r.errors[0].keyword, "format");
        assert_true(t_valid(schema, bad[i])); /* annotation only by default */
    }
}

static void test_draft7_ref_overrides_siblings(void **state)
{
    (void)state;
    const char *schema = "{\"$ref\":\"#/definitions/a\",\"type\":\"string\","
                         "\"definitions\":{\"a\":{\"minimum\":3}}}";
    struct schema_options d7 = {.draft = SCHEMA_DRAFT_7};
    struct schema_result r;
    assert_int_equal(t_check_opt(schema, "5", &d7, &r), 0);
    assert_true(r.valid);
    assert_false(t_valid(schema, "5")); /* 2020-12: "type" applies beside $ref */
    assert_int_equal(t_check_opt("{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
                                 "\"items\":[{\"type\":\"integer\"}],\"additionalItems\":false}",
                                 "[1,2]", NULL, &r),
                     0);
    assert_false(r.valid);
}

static void test_embedded_resource_names_its_own_draft(void **state)
{
    (void)state;
    /* A 2020-12 document embedding a draft-07 resource: that resource's array "items" and
     * "additionalItems" keep their draft-7 meaning (the meta-schema check is skipped: the
     * 2020-12 meta-schema would refuse the array). */
    struct schema_options raw = {.skip_meta_check = true};
    const char *schema =
        "{\"$defs\":{\"old\":{\"$id\":\"http://x.test/old\",\"$schema\":"
        "\"http://json-schema.org/draft-07/schema#\",\"items\":[{\"type\":"
        "\"integer\"}],\"additionalItems\":false}},\"$ref\":\"http://x.test/old\"}";
    struct schema_result r;
    assert_int_equal(t_check_opt(schema, "[1]", &raw, &r), 0);
    assert_true(r.valid);
    assert_int_equal(t_check_opt(schema, "[1,2]", &raw, &r), 0);
    assert_false(r.valid);
    assert_string_equal(r.errors[0].schema, "/$ref/additionalItems");
}

static void test_bad_schemas_refused_with_reason(void **state)
{
    (void)state;
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    assert_int_equal(t_compile("{\"type\":\"foo\"}", NULL, &s, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "not a valid schema"));
    assert_int_equal(t_compile("{\"$ref\":\"#/$defs/nope\"}", NULL, &s, err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "unresolvable $ref \"#/$defs/nope\""));
    assert_int_equal(
        t_compile("{\"$ref\":\"http://example.com/other.json\"}", NULL, &s, err, sizeof(err)),
        LMQ_EINVAL);
    assert_int_equal(t_compile("{\"pattern\":\"(\"}", NULL, &s, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "bad pattern"));
    assert_int_equal(t_compile("[]", NULL, &s, err, sizeof(err)), LMQ_EINVAL);
    /* Without the meta-schema check, the compiler still refuses what is not a schema (found
     * by fuzzing: an array under "properties" was taken for a list of names). */
    struct schema_options raw = {.skip_meta_check = true};
    assert_int_equal(t_compile("{\"properties\":{\"a\":[\"x\"]}}", &raw, &s, err, sizeof(err)),
                     LMQ_EINVAL);
    assert_int_equal(
        t_compile("{\"dependentSchemas\":{\"a\":[\"x\"]}}", &raw, &s, err, sizeof(err)),
        LMQ_EINVAL);
    assert_int_equal(t_compile("{\"items\":5}", &raw, &s, err, sizeof(err)), LMQ_EINVAL);
    assert_int_equal(t_compile("{\"minLength\":-1}", &raw, &s, err, sizeof(err)), LMQ_EINVAL);
    assert_null(s);
}

static void test_ref_cycle_without_progress_refused(void **state)
{
    (void)state;
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    assert_int_equal(t_compile("{\"$ref\":\"#\"}", NULL, &s, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "cycle"));
    assert_int_equal(t_compile("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"anyOf\":"
                               "[{\"type\":\"string\"},{\"$ref\":\"#/$defs/a\"}]}},"
                               "\"$ref\":\"#/$defs/a\"}",
                               NULL, &s, err, sizeof(err)),
                     LMQ_EINVAL);
    /* A $dynamicRef loop the static graph cannot see (its static target is a leaf; at run time
     * the outer resource's anchor wins): stopped by the evaluation depth bound with an error. */
    struct schema_result r;
    assert_int_equal(t_check_opt("{\"$id\":\"http://x.test/r1\",\"$dynamicAnchor\":\"a\","
                                 "\"$ref\":\"r2\",\"$defs\":{\"r2\":{\"$id\":\"r2\","
                                 "\"$ref\":\"#/$defs/d\",\"$defs\":{\"d\":{\"$dynamicRef\":"
                                 "\"#a\"},\"a\":{\"$dynamicAnchor\":\"a\"}}}}}",
                                 "1", NULL, &r),
                     LMQ_ELIMIT);
    assert_false(r.valid);
    assert_non_null(strstr(r.errors[r.error_count - 1].message, "nested too deeply"));
    /* Exponential work from a small schema: d<k> = anyOf of d<k-1> twice, and d0 fails, so
     * 2^40 evaluations would be asked for; the evaluation budget stops it with an error. */
    json_t *defs = json_object();
    json_object_set_new(defs, "d0", json_pack("{s:s}", "type", "string"));
    for (int k = 1; k <= 40; k++) {
        char name[16], ref[32];
        snprintf(name, sizeof(name), "d%d", k);
        snprintf(ref, sizeof(ref), "#/$defs/d%d", k - 1);
        json_object_set_new(defs, name,
                            json_pack("{s:[{s:s},{s:s}]}", "anyOf", "$ref", ref, "$ref", ref));
    }
    json_t *doc = json_pack("{s:o,s:s}", "$defs", defs, "$ref", "#/$defs/d40");
    s = NULL;
    assert_int_equal(schema_compile(NULL, doc, NULL, NULL, &s, err, sizeof(err)), 0);
    struct schema_validator *v = NULL;
    assert_int_equal(schema_validator_new(s, &v), 0);
    json_t *one = json_integer(1);
    assert_int_equal(schema_validate(v, one, &r), LMQ_ELIMIT);
    assert_false(r.valid);
    assert_non_null(strstr(r.errors[r.error_count - 1].message, "budget"));
    json_decref(one);
    schema_validator_free(v);
    schema_free(s);
    json_decref(doc);
    /* Recursion that moves into the instance is fine. */
    assert_true(t_valid("{\"items\":{\"$ref\":\"#\"},\"type\":\"array\"}", "[[[]],[]]"));
    assert_false(t_valid("{\"items\":{\"$ref\":\"#\"},\"type\":\"array\"}", "[[[1]],[]]"));
}

static void test_limits_deep_schema_huge_enum_long_pattern(void **state)
{
    (void)state;
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    struct schema_options raw = {.skip_meta_check = true};
    /* SCHEMA_DEPTH_MAX + 10 nested "not"s. */
    size_t depth = SCHEMA_DEPTH_MAX + 10;
    char *deep = calloc(depth * 8 + 16, 1);
    assert_non_null(deep);
    for (size_t i = 0; i < depth; i++) {
        strcat(deep, "{\"not\":");
    }
    strcat(deep, "true");
    for (size_t i = 0; i < depth; i++) {
        strcat(deep, "}");
    }
    assert_int_equal(t_compile(deep, &raw, &s, err, sizeof(err)), LMQ_ELIMIT);
    assert_non_null(strstr(err, "deeper"));
    free(deep);
    /* An enum of SCHEMA_ENUM_MAX + 1 values. */
    json_t *values = json_array();
    for (size_t i = 0; i <= SCHEMA_ENUM_MAX; i++) {
        json_array_append_new(values, json_integer((json_int_t)i));
    }
    json_t *doc = json_pack("{s:o}", "enum", values);
    assert_int_equal(schema_compile(NULL, doc, NULL, &raw, &s, err, sizeof(err)), LMQ_ELIMIT);
    assert_non_null(strstr(err, "enum"));
    json_decref(doc);
    /* A pattern over SCHEMA_PATTERN_MAX_BYTES. */
    char *pat = calloc(SCHEMA_PATTERN_MAX_BYTES + 2, 1);
    memset(pat, 'a', SCHEMA_PATTERN_MAX_BYTES + 1);
    doc = json_pack("{s:s}", "pattern", pat);
    assert_int_equal(schema_compile(NULL, doc, NULL, &raw, &s, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "pattern of"));
    json_decref(doc);
    free(pat);
}

static void test_limits_deep_instance_and_catastrophic_regex(void **state)
{
    (void)state;
    struct schema_result r;
    size_t depth = SCHEMA_INSTANCE_DEPTH_MAX + 10;
    char *deep = calloc(depth * 2 + 1, 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    assert_int_equal(t_check_opt("{\"items\":{\"$ref\":\"#\"}}", deep, NULL, &r), LMQ_ELIMIT);
    assert_false(r.valid);
    assert_non_null(strstr(r.errors[r.error_count - 1].message, "too deeply"));
    free(deep);
    /* ^(a+)+$ on 40 a's and a b: exponential backtracking, stopped by the match limit. */
    char inst[64] = "\"";
    memset(inst + 1, 'a', 40);
    strcat(inst, "b\"");
    assert_int_equal(t_check_opt("{\"pattern\":\"^(a+)+$\"}", inst, NULL, &r), LMQ_ELIMIT);
    assert_false(r.valid);
    assert_string_equal(r.errors[r.error_count - 1].keyword, "pattern");
    assert_non_null(strstr(r.errors[r.error_count - 1].message, "limit"));
    /* The same pattern on a harmless string is just a match. */
    assert_true(t_valid("{\"pattern\":\"^(a+)+$\"}", "\"aaaa\""));
}

static void test_many_anchors_and_resources_resolve(void **state)
{
    (void)state;
    /* 20,000 $defs, each with an $anchor and an $id, each referenced by a property: compile
     * looks them up by hash (a linear scan would be 4e8 comparisons). */
    enum { N = 20000 };
    json_t *defs = json_object();
    json_t *props = json_object();
    char name[64], ref[96];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        json_t *def = json_pack("{s:s,s:s,s:i}", "$anchor", name, "$id", name, "minimum", i);
        json_object_set_new(defs, name, def);
        if (i % 2) {
            snprintf(ref, sizeof(ref), "d%d#d%d", i, i); /* the anchor inside resource d<i> */
        } else {
            snprintf(ref, sizeof(ref), "http://x.test/d%d", i);
        }
        json_object_set_new(props, name, json_pack("{s:s}", "$ref", ref));
    }
    json_t *doc =
        json_pack("{s:s,s:o,s:o}", "$id", "http://x.test/root", "$defs", defs, "properties", props);
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    int rc = schema_compile(NULL, doc, NULL, NULL, &s, err, sizeof(err));
    if (rc != 0) {
        fail_msg("compile: %s", err);
    }
    struct schema_validator *v = NULL;
    assert_int_equal(schema_validator_new(s, &v), 0);
    struct schema_result r;
    json_t *inst = json_pack("{s:i,s:i}", "d19999", 19999, "d7", 7);
    assert_int_equal(schema_validate(v, inst, &r), 0);
    assert_true(r.valid);
    json_decref(inst);
    inst = json_pack("{s:i}", "d19998", 5);
    assert_int_equal(schema_validate(v, inst, &r), 0);
    assert_false(r.valid);
    assert_string_equal(r.errors[0].schema, "/properties/d19998/$ref/minimum");
    json_decref(inst);
    schema_validator_free(v);
    schema_free(s);
    json_decref(doc);
    /* An anchor name over SCHEMA_ANCHOR_MAX_BYTES is refused. */
    char *longname = calloc(SCHEMA_ANCHOR_MAX_BYTES + 2, 1);
    memset(longname, 'a', SCHEMA_ANCHOR_MAX_BYTES + 1);
    doc = json_pack("{s:s}", "$anchor", longname);
    assert_int_equal(schema_compile(NULL, doc, NULL, NULL, &s, err, sizeof(err)), LMQ_ELIMIT);
    assert_non_null(strstr(err, "anchor name"));
    json_decref(doc);
    free(longname);
}

static void test_unique_items_large_arrays_linear(void **state)
{
    (void)state;
    /* 200,000 distinct integers (doubles with all-zero low bits: a weak hash put them all in one
     * bucket, 2e10 comparisons), then the same with one duplicate at the end. */
    enum { N = 200000 };
    json_t *a = json_array();
    for (json_int_t i = 0; i < N; i++) {
        json_array_append_new(a, json_integer(i * 1024));
    }
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    assert_int_equal(t_compile("{\"uniqueItems\":true}", NULL, &s, err, sizeof(err)), 0);
    struct schema_validator *v = NULL;
    assert_int_equal(schema_validator_new(s, &v), 0);
    struct schema_result r;
    assert_int_equal(schema_validate(v, a, &r), 0);
    assert_true(r.valid);
    json_array_append_new(a, json_real(1024.0 * 777));
    assert_int_equal(schema_validate(v, a, &r), 0);
    assert_false(r.valid);
    assert_string_equal(r.errors[0].keyword, "uniqueItems");
    schema_validator_free(v);
    schema_free(s);
    json_decref(a);
}

static void test_revalidation_allocates_nothing(void **state)
{
    (void)state;
    const char *schema =
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^p-\"},"
        "\"items\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/item\"}},"
        "\"meta\":{\"type\":\"object\"}},\"required\":[\"id\"],\"allOf\":[{\"properties\":"
        "{\"extra\":true}}],\"unevaluatedProperties\":false,\"$defs\":{\"item\":{\"type\":"
        "\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0}},"
        "\"unevaluatedProperties\":false}}}";
    const char *instance = "{\"id\":\"p-1\",\"items\":[{\"n\":1},{\"n\":2},{\"n\":-3}],"
                           "\"meta\":{},\"extra\":1,\"bad\":2}";
    struct schema *s = NULL;
    char err[T_ERR_MAX];
    assert_int_equal(t_compile(schema, NULL, &s, err, sizeof(err)), 0);
    struct schema_validator *v = NULL;
    assert_int_equal(schema_validator_new(s, &v), 0);
    json_t *inst = t_json(instance);
    struct schema_result *r = malloc(sizeof(*r));
    assert_int_equal(schema_validate(v, inst, r), 0); /* warms the scratch area up */
    assert_false(r->valid);
    assert_int_equal(r->error_count, 2);
    size_t before = t_allocs;
    size_t scratch = schema_validator_alloc_count(v);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(schema_validate(v, inst, r), 0);
    }
    size_t after = t_allocs;
    assert_false(r->valid);
    assert_int_equal(schema_validator_alloc_count(v), scratch);
    /* Control: the counter does count (a compile allocates). */
    struct schema *s2 = NULL;
    assert_int_equal(t_compile("{\"type\":\"string\"}", NULL, &s2, err, sizeof(err)), 0);
    assert_true(!T_COUNTS_ALLOCS || t_allocs > after);
    assert_int_equal(after - before, 0);
    schema_free(s2);
    free(r);
    json_decref(inst);
    schema_validator_free(v);
    schema_free(s);
}

static void test_official_suite_2020_12(void **state)
{
    (void)state;
    t_suite(LMQ_VECTORS_DIR "/tests/draft2020-12", LMQ_VECTORS_DIR "/remotes",
            LMQ_VECTORS_DIR "/../../unit/schema_known_failures_2020_12.txt", SCHEMA_DRAFT_2020_12);
}

static void test_debian_suite_draft7(void **state)
{
    (void)state;
    t_suite(LMQ_DEBIAN_SUITE_DIR "/tests/draft7", LMQ_DEBIAN_SUITE_DIR "/remotes",
            LMQ_VECTORS_DIR "/../../unit/schema_known_failures_draft7.txt", SCHEMA_DRAFT_7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_names_instance_and_keyword_paths),
        cmocka_unit_test(test_at_most_ten_errors),
        cmocka_unit_test(test_json_equality_and_numbers),
        cmocka_unit_test(test_unevaluated_drops_failed_branches),
        cmocka_unit_test(test_fast_path_edge_cases),
        cmocka_unit_test(test_formats_assert_only_when_asked),
        cmocka_unit_test(test_draft7_ref_overrides_siblings),
        cmocka_unit_test(test_embedded_resource_names_its_own_draft),
        cmocka_unit_test(test_bad_schemas_refused_with_reason),
        cmocka_unit_test(test_ref_cycle_without_progress_refused),
        cmocka_unit_test(test_limits_deep_schema_huge_enum_long_pattern),
        cmocka_unit_test(test_limits_deep_instance_and_catastrophic_regex),
        cmocka_unit_test(test_many_anchors_and_resources_resolve),
        cmocka_unit_test(test_unique_items_large_arrays_linear),
        cmocka_unit_test(test_revalidation_allocates_nothing),
        cmocka_unit_test(test_official_suite_2020_12),
        cmocka_unit_test(test_debian_suite_draft7),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
