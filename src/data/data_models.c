/*
 * Models: JSON Schema 2020-12 documents in the [data] models directory, one per *.json file.
 *
 * A model's "$id" is its type name (dot-separated GraphQL names, "com.example.Payment"); it
 * resolves against DATA_MODEL_BASE_URI, so one model names another with {"$ref":
 * "com.example.Address"}. Every file is registered first, then each is compiled (checked against
 * the 2020-12 meta-schema, references resolved, regexes compiled) once. Two more keywords, which
 * JSON Schema ignores: "x-index": true on a top-level property asks for a store index on it
 * (filters in GET /api/v1/T may only use those), and "x-writers": [ids] names identities that may
 * add versions to any resource of the model besides its owner.
 *
 * A set loads whole or not at all: a broken file (not JSON, no or a bad $id, a duplicate type
 * or GraphQL name, an invalid schema, an unresolvable $ref) is refused with its file name and the
 * reason, and nothing of the set is kept.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

static bool models__name_start(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool models__name_char(char c)
{
    return models__name_start(c) || (c >= '0' && c <= '9');
}

/* A GraphQL name: [_A-Za-z][_0-9A-Za-z]*, 1..64 characters. */
static bool models__graphql_name(const char *s, size_t len)
{
    if (len == 0 || len > 64 || !models__name_start(s[0]))
        return false;
    for (size_t i = 1; i < len; i++) {
        if (!models__name_char(s[i]))
            return false;
    }
    return true;
}

bool data_hex64(const char *s)
{
    if (s == NULL || strlen(s) != DATA_HEX64_CHARS)
        return false;
    for (size_t i = 0; i < DATA_HEX64_CHARS; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

bool data_type_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > DATA_TYPE_NAME_MAX_CHARS)
        return false;
    size_t start = 0;
    /* Each pass checks one dot-separated part: bounded by len. */
    for (size_t i = 0; i <= len; i++) {
        if (i == len || name[i] == '.') {
            if (!models__graphql_name(name + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

void data_model_free(struct data_model *m)
{
    if (m == NULL)
        return;
    schema_validator_free(m->validator);
    schema_free(m->schema);
    json_decref(m->doc);
    free(m);
}

void data_models_free(struct data_models *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->count; i++)
        data_model_free(m->models[i]);
    free(m->models);
    free(m);
}

int data_models_put(struct data_models *set, struct data_model *m)
{
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->models[i]->name, m->name) == 0) {
            data_model_free(set->models[i]);
            set->models[i] = m;
            return LMQ_OK;
        }
    }
    if (set->count == set->cap) {
        size_t cap = set->cap == 0 ? 16 : set->cap * 2;
        struct data_model **models = realloc(set->models, cap * sizeof(*models));
        if (models == NULL)
            return LMQ_ENOMEM;
        set->models = models;
        set->cap = cap;
    }
    set->models[set->count++] = m;
    return LMQ_OK;
}

void data_models_remove(struct data_models *set, const char *name)
{
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->models[i]->name, name) == 0) {
            data_model_free(set->models[i]);
            memmove(&set->models[i], &set->models[i + 1],
                    (set->count - i - 1) * sizeof(set->models[0]));
            set->count--;
            return;
        }
    }
}

const struct data_model *data_models_find(const struct data_models *m, const char *name, size_t len)
{
    /* A linear scan: at most DATA_MODELS_MAX entries of short names. */
    for (size_t i = 0; m != NULL && i < m->count; i++) {
        if (strlen(m->models[i]->name) == len && memcmp(m->models[i]->name, name, len) == 0)
            return m->models[i];
    }
    return NULL;
}

static int models__cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The *.json names of dir, sorted, into names (caller frees each and the array). */
static int models__list(const char *dir, char ***names, size_t *count, char *err, size_t err_len)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        lmq_errf(err, err_len, "%s: %s", dir, strerror(errno));
        return LMQ_EINVAL;
    }
    char **list = calloc(DATA_MODELS_MAX, sizeof(*list));
    size_t n = 0;
    int rc = list != NULL ? LMQ_OK : LMQ_ENOMEM;
    struct dirent *e;
    /* readdir ends; past DATA_MODELS_MAX files the load is refused. */
    while (rc == LMQ_OK && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        if (n == DATA_MODELS_MAX) {
            lmq_errf(err, err_len, "%s: more than %d model files", dir, DATA_MODELS_MAX);
            rc = LMQ_EINVAL;
        } else if ((list[n++] = strdup(e->d_name)) == NULL) {
            rc = LMQ_ENOMEM;
        }
    }
    closedir(d);
    if (rc != LMQ_OK) {
        for (size_t i = 0; list != NULL && i < n; i++)
            free(list[i]);
        free(list);
        return rc;
    }
    qsort(list, n, sizeof(*list), models__cmp);
    *names = list;
    *count = n;
    return LMQ_OK;
}

/* Reads and parses one model file into m (name, graphql, file, doc). */
static int models__read(const char *dir, const char *file, struct data_model *m, char *err,
                        size_t err_len)
{
    int n = snprintf(m->file, sizeof(m->file), "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= sizeof(m->file)) {
        lmq_errf(err, err_len, "%s/%s: path too long", dir, file);
        return LMQ_EINVAL;
    }
    FILE *f = fopen(m->file, "rb");
    if (f == NULL) {
        lmq_errf(err, err_len, "%s: %s", m->file, strerror(errno));
        return LMQ_EINVAL;
    }
    char *text = malloc(DATA_MODEL_FILE_MAX_BYTES + 1);
    size_t len = text != NULL ? fread(text, 1, DATA_MODEL_FILE_MAX_BYTES + 1, f) : 0;
    bool read_error = ferror(f) != 0;
    fclose(f);
    if (text == NULL)
        return LMQ_ENOMEM;
    if (read_error || len > DATA_MODEL_FILE_MAX_BYTES) {
        free(text);
        lmq_errf(err, err_len, "%s: %s", m->file, read_error ? "read error" : "larger than 1 MiB");
        return LMQ_EINVAL;
    }
    json_error_t jerr;
    m->doc = schema_json_loadb(text, len, &jerr);
    free(text);
    if (m->doc == NULL) {
        lmq_errf(err, err_len, "%s: not JSON: %s (line %d)", m->file, jerr.text, jerr.line);
        return LMQ_EINVAL;
    }
    const char *id = json_string_value(json_object_get(m->doc, "$id"));
    if (!json_is_object(m->doc) || id == NULL || !data_type_name_valid(id, strlen(id))) {
        lmq_errf(err, err_len,
                 "%s: a model needs \"$id\": its type name (dot-separated names of letters, "
                 "digits and _, such as com.example.Payment)",
                 m->file);
        return LMQ_EINVAL;
    }
    strcpy(m->name, id);
    strcpy(m->graphql, id);
    for (char *p = m->graphql; *p != '\0'; p++) {
        if (*p == '.')
            *p = '_';
    }
    return LMQ_OK;
}

/* "x-index" and "x-writers" of a compiled model. */
static int models__extensions(struct data_model *m, char *err, size_t err_len)
{
    const char *key;
    json_t *prop;
    json_object_foreach(json_object_get(m->doc, "properties"), key, prop)
    {
        if (!json_is_true(json_object_get(prop, "x-index")))
            continue;
        if (!models__graphql_name(key, strlen(key))) {
            lmq_errf(err, err_len,
                     "%s: x-index on \"%s\": only a property named like "
                     "[_A-Za-z][_0-9A-Za-z]* (64 characters at most) can be indexed",
                     m->file, key);
            return LMQ_EINVAL;
        }
        if (m->indexed_count == DATA_INDEXED_MAX) {
            lmq_errf(err, err_len, "%s: more than %d properties with x-index", m->file,
                     DATA_INDEXED_MAX);
            return LMQ_EINVAL;
        }
        strcpy(m->indexed[m->indexed_count++], key);
    }
    json_t *writers = json_object_get(m->doc, "x-writers");
    size_t i;
    json_t *w;
    if (writers != NULL && !json_is_array(writers)) {
        lmq_errf(err, err_len, "%s: x-writers: expected an array of identity ids", m->file);
        return LMQ_EINVAL;
    }
    json_array_foreach(writers, i, w)
    {
        const char *id = json_string_value(w);
        if (!data_hex64(id) || m->writer_count == DATA_WRITERS_MAX) {
            lmq_errf(err, err_len,
                     "%s: x-writers: expected at most %d identity ids (64 lowercase hex)", m->file,
                     DATA_WRITERS_MAX);
            return LMQ_EINVAL;
        }
        strcpy(m->writers[m->writer_count++], id);
    }
    return LMQ_OK;
}

/* Refuses a type or GraphQL name used twice. */
static int models__unique(const struct data_models *set, const struct data_model *m, char *err,
                          size_t err_len)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct data_model *o = set->models[i];
        if (o != m && (strcmp(o->name, m->name) == 0 || strcmp(o->graphql, m->graphql) == 0)) {
            lmq_errf(err, err_len, "%s: type %s clashes with %s in %s", m->file, m->name, o->name,
                     o->file);
            return LMQ_EINVAL;
        }
    }
    return LMQ_OK;
}

static int models__compile(struct schema_registry *reg, struct data_model *m, bool assert_formats,
                           char *err, size_t err_len)
{
    struct schema_options opt = {.draft = SCHEMA_DRAFT_2020_12, .assert_formats = assert_formats};
    char reason[256];
    int rc =
        schema_compile(reg, m->doc, DATA_MODEL_BASE_URI, &opt, &m->schema, reason, sizeof(reason));
    if (rc != LMQ_OK) {
        lmq_errf(err, err_len, "%s: %s", m->file, reason);
        return rc == LMQ_ENOMEM ? LMQ_ENOMEM : LMQ_EINVAL;
    }
    rc = schema_validator_new(m->schema, &m->validator);
    return rc == LMQ_OK ? models__extensions(m, err, err_len) : rc;
}

/* Registers the document of every model of set but skip under its URI. */
static int models__register(struct schema_registry *reg, const struct data_models *set,
                            const char *skip, char *err, size_t err_len)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct data_model *m = set->models[i];
        char uri[sizeof(DATA_MODEL_BASE_URI) + DATA_TYPE_NAME_MAX_CHARS];
        snprintf(uri, sizeof(uri), "%s%s", DATA_MODEL_BASE_URI, m->name);
        if ((skip == NULL || strcmp(m->name, skip) != 0) &&
            schema_registry_add(reg, uri, m->doc) != LMQ_OK) {
            lmq_errf(err, err_len, "%s: cannot register %s", m->file, uri);
            return LMQ_EINVAL;
        }
    }
    return LMQ_OK;
}

int data_models_load(const char *dir, bool assert_formats, struct data_models **out, char *err,
                     size_t err_len)
{
    LMQ_ASSERT(dir != NULL && out != NULL && err != NULL);
    char **names = NULL;
    size_t count = 0;
    struct data_models *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return LMQ_ENOMEM;
    int rc = dir[0] != '\0' ? models__list(dir, &names, &count, err, err_len) : LMQ_OK;
    /* Every document first, so each may name the others; then each is compiled. */
    for (size_t i = 0; rc == LMQ_OK && i < count; i++) {
        struct data_model *m = calloc(1, sizeof(*m));
        if (m == NULL || data_models_put(set, m) != LMQ_OK) {
            free(m);
            rc = LMQ_ENOMEM;
            break;
        }
        rc = models__read(dir, names[i], m, err, err_len);
        if (rc == LMQ_OK)
            rc = models__unique(set, m, err, err_len);
    }
    struct schema_registry *reg = NULL;
    if (rc == LMQ_OK && schema_registry_new(&reg) != LMQ_OK)
        rc = LMQ_ENOMEM;
    if (rc == LMQ_OK)
        rc = models__register(reg, set, NULL, err, err_len);
    for (size_t i = 0; rc == LMQ_OK && i < set->count; i++)
        rc = models__compile(reg, set->models[i], assert_formats, err, err_len);
    schema_registry_free(reg);
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    if (rc != LMQ_OK) {
        data_models_free(set);
        return rc;
    }
    *out = set;
    return LMQ_OK;
}

int data_model_compile(const struct data_models *set, json_t *doc, const char *origin,
                       bool assert_formats, struct data_model **out, char *err, size_t err_len)
{
    struct data_model *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return LMQ_ENOMEM;
    snprintf(m->file, sizeof(m->file), "%s", origin);
    m->doc = json_incref(doc);
    const char *id = json_string_value(json_object_get(doc, "$id"));
    int rc = LMQ_OK;
    if (!json_is_object(doc) || id == NULL || !data_type_name_valid(id, strlen(id))) {
        lmq_errf(err, err_len, "%s: a model needs \"$id\": its type name", origin);
        rc = LMQ_EINVAL;
    } else {
        strcpy(m->name, id);
        strcpy(m->graphql, id);
        for (char *p = m->graphql; *p != '\0'; p++)
            *p = *p == '.' ? '_' : *p;
    }
    /* Another model may hold the GraphQL name; the one of the same name is being replaced. */
    for (size_t i = 0; rc == LMQ_OK && i < set->count; i++) {
        const struct data_model *o = set->models[i];
        if (strcmp(o->name, m->name) != 0 && strcmp(o->graphql, m->graphql) == 0) {
            lmq_errf(err, err_len, "%s: type %s clashes with %s in %s", origin, m->name, o->name,
                     o->file);
            rc = LMQ_EINVAL;
        }
    }
    struct schema_registry *reg = NULL;
    if (rc == LMQ_OK && schema_registry_new(&reg) != LMQ_OK)
        rc = LMQ_ENOMEM;
    if (rc == LMQ_OK)
        rc = models__register(reg, set, m->name, err, err_len);
    if (rc == LMQ_OK)
        rc = models__compile(reg, m, assert_formats, err, err_len);
    schema_registry_free(reg);
    if (rc != LMQ_OK) {
        data_model_free(m);
        return rc;
    }
    *out = m;
    return LMQ_OK;
}

void data_model_write_indexes(struct broker *b, const struct data_model *m)
{
    for (size_t k = 0; k < m->indexed_count; k++) {
        char path[80];
        int n = snprintf(path, sizeof(path), "$.%s", m->indexed[k]);
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(path));
        struct store_record rec = {.type = STORE_DATA_INDEX,
                                   .u.data_index.path = {(const uint8_t *)path, (size_t)n}};
        LMQ_ASSERT(store_data_path_valid(rec.u.data_index.path));
        commit_store_write(b, &rec);
    }
}

void data_models_write_indexes(struct broker *b, const struct data_models *m)
{
    for (size_t i = 0; m != NULL && i < m->count; i++)
        data_model_write_indexes(b, m->models[i]);
}

const struct schema *data_models_schema(const struct data_models *m, const char *name)
{
    const struct data_model *model = data_models_find(m, name, strlen(name));
    return model != NULL ? model->schema : NULL;
}

void data_models_names(const struct data_models *m, char *out, size_t cap)
{
    LMQ_ASSERT(out != NULL && cap > 0);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; m != NULL && i < m->count && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s", i ? ", " : "", m->models[i]->name);
        used += n > 0 ? (size_t)n : 0;
    }
}
