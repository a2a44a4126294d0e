/*
 * The data layer's lifecycle (data.h) and its versions in flight.
 *
 * A version is accepted before it is durable, and the next version of the same resource may
 * arrive in the same loop turn: the check must see it. So, from appended() until the batch
 * holding it is durable, each version is kept in two maps (link -> permalink, permalink -> the
 * resource's head after it); the commit hook's on_durable drops the batch's entries, after which
 * the store answers. Both maps hold only versions of batches not yet durable, so they stay as
 * small as the commit pipeline (a few batches).
 */
#include <stdlib.h>
#include <string.h>

#include "data/data_graphql.h"
#include "data/data_internal.h"

/* The versions one batch added to the maps (the commit hook's slot). */
struct data_batch {
    size_t count, cap;
    char (*links)[DATA_HEX64_CHARS + 1];
};

const struct data_head *data_inflight_by_link(struct data *d, const char *link)
{
    const char *permalink = lmq_map_get(d->links, (const uint8_t *)link, DATA_HEX64_CHARS);
    return permalink != NULL ? data_inflight_head(d, permalink) : NULL;
}

const struct data_head *data_inflight_head(struct data *d, const char *permalink)
{
    return lmq_map_get(d->heads, (const uint8_t *)permalink, DATA_HEX64_CHARS);
}

int data_inflight_add(struct data *d, const char *link, const struct data_head *head)
{
    struct broker *b = d->broker;
    void **slot = commit_hook_data(b, d->commit_slot);
    struct data_batch *batch = *slot;
    if (batch == NULL) {
        if ((batch = calloc(1, sizeof(*batch))) == NULL)
            return LMQ_ENOMEM;
        *slot = batch;
    }
    if (batch->count == batch->cap) {
        size_t cap = batch->cap == 0 ? 16 : batch->cap * 2;
        void *links = realloc(batch->links, cap * sizeof(*batch->links));
        if (links == NULL)
            return LMQ_ENOMEM;
        batch->links = links;
        batch->cap = cap;
    }
    struct data_head *h = lmq_map_get(d->heads, (const uint8_t *)head->permalink, DATA_HEX64_CHARS);
    if (h == NULL) {
        if ((h = malloc(sizeof(*h))) == NULL)
            return LMQ_ENOMEM;
        *h = *head;
        if (lmq_map_put(d->heads, (const uint8_t *)h->permalink, DATA_HEX64_CHARS, h) != LMQ_OK) {
            free(h);
            return LMQ_ENOMEM;
        }
    }
    *h = *head;
    char *permalink = strdup(head->permalink);
    if (permalink == NULL ||
        lmq_map_put(d->links, (const uint8_t *)link, DATA_HEX64_CHARS, permalink) != LMQ_OK) {
        free(permalink);
        return LMQ_ENOMEM;
    }
    memcpy(batch->links[batch->count++], link, DATA_HEX64_CHARS + 1);
    return LMQ_OK;
}

/* Drops a durable version: its link, and its resource's head unless a later version (of a
 * batch still in flight) replaced it. */
static void data_inflight_drop(struct data *d, const char *link)
{
    char *permalink = lmq_map_remove(d->links, (const uint8_t *)link, DATA_HEX64_CHARS);
    if (permalink == NULL)
        return;
    struct data_head *h = lmq_map_get(d->heads, (const uint8_t *)permalink, DATA_HEX64_CHARS);
    if (h != NULL && strcmp(h->latest, link) == 0) {
        lmq_map_remove(d->heads, (const uint8_t *)permalink, DATA_HEX64_CHARS);
        free(h);
    }
    free(permalink);
}

static void data_on_durable(void *ctx, uint64_t batch_seq, void **slot)
{
    LMQ_UNUSED(batch_seq);
    struct data *d = ctx;
    struct data_batch *batch = *slot;
    for (size_t i = 0; batch != NULL && i < batch->count; i++)
        data_inflight_drop(d, batch->links[i]);
}

static void data_batch_free(void *ctx, uint64_t batch_seq, void **slot)
{
    LMQ_UNUSED(ctx), LMQ_UNUSED(batch_seq);
    struct data_batch *batch = *slot;
    if (batch != NULL) {
        free(batch->links);
        free(batch);
    }
    *slot = NULL;
}

static const struct commit_hook data_commit_hook = {
    .name = "data",
    .on_durable = data_on_durable,
    .batch_free = data_batch_free,
};

bool data_reads_all(const struct broker *b, const char *id)
{
    const struct lmq_data_config *c = &b->cfg.data;
    for (uint32_t i = 0; i < c->readers_all_count; i++) {
        if (memcmp(c->readers_all[i], id, LMQ_IDENTITY_ID_CHARS) == 0)
            return true;
    }
    return false;
}

/* Logs the loaded set: how many models, from where. */
static void data_log_models(const char *event, const char *dir, const struct data_models *m)
{
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, event)) {
        lmq_log_str(&line, "dir", dir);
        lmq_log_uint(&line, "models", m != NULL ? m->count : 0);
        lmq_log_end(&line);
    }
}

int data_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->data == NULL && b->pipeline != NULL);
    struct data *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return LMQ_ENOMEM;
    d->broker = b;
    b->data = d; /* data_destroy frees what was made on failure */
    if (lmq_map_create(&d->heads) != LMQ_OK || lmq_map_create(&d->links) != LMQ_OK)
        return LMQ_ENOMEM;
    const struct lmq_data_config *c = &b->cfg.data;
    if (c->models_dir[0] != '\0' || c->admin_count > 0) {
        char err[512];
        int rc = data_models_load(c->models_dir, c->assert_formats, &d->models, err, sizeof(err));
        if (rc == LMQ_OK && (rc = data_models_from_store(d)) != LMQ_OK)
            snprintf(err, sizeof(err), "cannot read the models added by envelope");
        if (rc != LMQ_OK) {
            if (rc != LMQ_ENOMEM)
                lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "[data] models: %s", err);
            return rc;
        }
        data_log_models("data_models_loaded", c->models_dir, d->models);
        data_graphql_rebuild(d);
    }
    struct pipeline_envelope_hook hook = {
        .name = "data", .check = data_accept_check, .appended = data_accept_appended, .ctx = d};
    int rc = pipeline_envelope_hook_register(b, &hook);
    if (rc == LMQ_OK)
        rc = commit_hook_register(b, &data_commit_hook, d, &d->commit_slot);
    /* After the hooks: the index records open the first batch, and no commit hook registers
     * once a batch is open (data_init is the last module to start). */
    if (rc == LMQ_OK)
        data_models_write_indexes(b, d->models);
    return rc;
}

static bool data_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg), LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    free(value);
    return true;
}

void data_destroy(struct broker *b)
{
    struct data *d = b->data;
    if (d == NULL)
        return;
    data_gql_free(d->gql);
    data_models_free(d->models);
    if (d->heads != NULL) {
        lmq_map_visit(d->heads, data_free_one, NULL);
        lmq_map_destroy(d->heads);
    }
    if (d->links != NULL) {
        lmq_map_visit(d->links, data_free_one, NULL);
        lmq_map_destroy(d->links);
    }
    lmq_buf_release(&d->pending.body);
    data_model_free(d->pending.model);
    free(d);
    b->data = NULL;
}

void data_reload(struct broker *b, const char *models_dir)
{
    struct data *d = b->data;
    if (d == NULL)
        return;
    struct data_models *fresh = NULL;
    char err[512] = "";
    bool on = models_dir[0] != '\0' || b->cfg.data.admin_count > 0;
    int rc = on ? data_models_load(models_dir, b->cfg.data.assert_formats, &fresh, err, sizeof(err))
                : LMQ_OK;
    /* The models added by envelope come back from the store (those of a batch still in
     * flight are durable within milliseconds: the next reload picks them up). */
    struct data_models *old = d->models;
    d->models = fresh;
    if (rc == LMQ_OK && fresh != NULL)
        rc = data_models_from_store(d);
    if (rc != LMQ_OK) {
        d->models = old;
        data_models_free(fresh);
        lmq_log_msg(LMQ_LOG_ERROR, "data_models_reload_failed",
                    rc == LMQ_ENOMEM ? "out of memory" : err);
        return;
    }
    data_models_free(old);
    memcpy(b->cfg.data.models_dir, models_dir, strlen(models_dir) + 1);
    data_log_models("data_models_reloaded", models_dir, fresh);
    data_graphql_rebuild(d);
    data_models_write_indexes(b, fresh);
}

void data_log_model_change(const char *event, const char *name, const char *permalink)
{
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, event)) {
        lmq_log_str(&line, "model", name);
        lmq_log_str(&line, "permalink", permalink);
        lmq_log_end(&line);
    }
}

/* One ledgermq.Model resource read back: compiled against the models so far, or skipped. */
struct data_store_models {
    struct data *d;
    uint64_t last_created;
    size_t rows;
    int rc;
};

static int data_store_model_row(void *ctx, const struct store_data_row *r)
{
    struct data_store_models *sm = ctx;
    struct data *d = sm->d;
    sm->rows++;
    sm->last_created = r->created_ledger_index;
    char permalink[DATA_HEX64_CHARS + 1], err[512] = "";
    snprintf(permalink, sizeof(permalink), "%.*s", (int)r->permalink.len,
             (const char *)r->permalink.data);
    json_error_t jerr;
    json_t *body = schema_json_loadb((const char *)r->body.data, r->body.len, &jerr);
    const char *detail = NULL;
    json_t *schema = data_accept_model_schema(body, &detail);
    const char *name = json_string_value(json_object_get(schema, "$id"));
    struct data_model *m = NULL;
    int rc = LMQ_EINVAL;
    if (schema == NULL)
        snprintf(err, sizeof(err), "%s", detail);
    else if (data_models_find(d->models, name, strlen(name)) != NULL)
        snprintf(err, sizeof(err), "type %s is also a model file's", name);
    else
        rc = data_model_compile(d->models, schema, "model", d->broker->cfg.data.assert_formats, &m,
                                err, sizeof(err));
    json_decref(body);
    if (rc == LMQ_OK) {
        memcpy(m->permalink, permalink, sizeof(permalink));
        rc = data_models_put(d->models, m);
        if (rc != LMQ_OK) {
            data_model_free(m);
            sm->rc = rc;
            return -1;
        }
        return 0;
    }
    if (rc == LMQ_ENOMEM) {
        sm->rc = rc;
        return -1;
    }
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_ERROR, "data_model_skipped")) {
        lmq_log_str(&line, "permalink", permalink);
        lmq_log_str(&line, "reason", err);
        lmq_log_end(&line);
    }
    return 0;
}

int data_models_from_store(struct data *d)
{
    /* Oldest first, so a model that names an older one finds it; pages of 100. */
    struct data_store_models sm = {.d = d};
    struct store_data_query q = {
        .model = {(const uint8_t *)DATA_MODEL_TYPE, sizeof(DATA_MODEL_TYPE) - 1}, .limit = 100};
    /* Each page reads up to 100 resources past the last one: bounded by the models stored. */
    for (;;) {
        size_t count = 0;
        sm.rows = 0;
        int rc = store_data_query(d->broker->store, &q, data_store_model_row, &sm, &count);
        if (sm.rc != LMQ_OK)
            return sm.rc;
        if (rc != LMQ_OK)
            return rc == LMQ_EIO ? LMQ_EIO : LMQ_EINVAL;
        if (count < q.limit)
            return LMQ_OK;
        q.has_cursor = true;
        q.cursor_created = sm.last_created;
    }
}

void data_counts(const struct broker *b, uint64_t *accepted, uint64_t *refused, size_t *models)
{
    const struct data *d = b->data;
    *accepted = d != NULL ? d->objects_accepted : 0;
    *refused = d != NULL ? d->objects_refused : 0;
    *models = d != NULL && d->models != NULL ? d->models->count : 0;
}
