/*
 * Objects through the envelope seam (docs/PROTOCOL.md "Objects").
 *
 * check(): an envelope whose body has "_t" is an object when the data layer is on. Its reserved
 * members are "_t" (the model), "_prevlink" (the version it replaces: absent for a new resource),
 * "_permalink" (optional on an update: must name the resource) and "_deleted": true (a tombstone,
 * nothing else in the body). Any other member starting with "_" is refused. A first version or an
 * update is validated against its model without the reserved members; an update must name the
 * resource's latest version (else stale_version, with the latest link), come from its owner or
 * one of the model's x-writers (else not_author) and keep the model. The decision is kept for
 * appended(), which stores the version in the envelope's batch.
 */
#include <stdio.h>
#include <string.h>

#include "crypto/jcs.h"
#include "data/data_graphql.h"
#include "data/data_internal.h"
#include "ledger/envelope.h"

const char *const data_reserved_members[5] = {"_t", "_prevlink", "_permalink", "_deleted",
                                              "_on_behalf_of"};

/* The canonical body of a version: at most an envelope's size. */
#define DATA_BODY_MAX_BYTES LEDGER_ENVELOPE_MAX_BYTES

static bool accept__refuse(struct pipeline_refusal *r, const char *reason, const char *detail,
                           json_t *members)
{
    r->reason = reason;
    r->detail = detail;
    r->members = members;
    return false;
}

/* The reserved members: *ok false (and *detail) for a bad one. */
struct accept_reserved {
    const char *prevlink;
    const char *permalink;
    const char *on_behalf_of;
    bool deleted;
    size_t data_members; /* members that are not reserved */
};

static bool accept__reserved(json_t *body, struct accept_reserved *out, const char **detail,
                             json_t **members)
{
    *out = (struct accept_reserved){0};
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (key[0] != '_') {
            out->data_members++;
        } else if (strcmp(key, "_prevlink") == 0) {
            out->prevlink = json_string_value(v);
            if (!data_hex64(out->prevlink)) {
                *detail = "bad_prevlink";
                return false;
            }
        } else if (strcmp(key, "_permalink") == 0) {
            out->permalink = json_string_value(v);
            if (!data_hex64(out->permalink)) {
                *detail = "bad_permalink";
                return false;
            }
        } else if (strcmp(key, "_on_behalf_of") == 0) {
            out->on_behalf_of = json_string_value(v);
            if (!data_hex64(out->on_behalf_of)) {
                *detail = "bad_on_behalf_of";
                return false;
            }
        } else if (strcmp(key, "_deleted") == 0) {
            if (!json_is_true(v)) {
                *detail = "bad_deleted";
                return false;
            }
            out->deleted = true;
        } else if (strcmp(key, "_t") != 0) {
            *detail = "reserved_member";
            *members = json_pack("{ss}", "member", key);
            return false;
        }
    }
    if ((out->permalink != NULL || out->deleted) && out->prevlink == NULL) {
        *detail = out->deleted ? "bad_deleted" : "bad_permalink"; /* only on an update */
        return false;
    }
    if (out->deleted && out->data_members > 0) {
        *detail = "tombstone_with_data";
        return false;
    }
    return true;
}

struct accept_row {
    struct data_head head;
    bool found;
};

static void accept__copy(char *dst, size_t cap, struct lmq_bytes b)
{
    size_t n = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(dst, b.data, n);
    dst[n] = '\0';
}

static int accept__row(void *ctx, const struct store_data_row *r)
{
    struct accept_row *a = ctx;
    accept__copy(a->head.permalink, sizeof(a->head.permalink), r->permalink);
    accept__copy(a->head.latest, sizeof(a->head.latest), r->link);
    accept__copy(a->head.owner, sizeof(a->head.owner), r->owner);
    accept__copy(a->head.model, sizeof(a->head.model), r->model);
    a->head.deleted = r->deleted;
    a->found = true;
    return 0;
}

/* The head of the resource that version prevlink belongs to: in flight, else committed. */
static bool accept__head_of(struct data *d, const char *prevlink, struct data_head *out)
{
    const struct data_head *h = data_inflight_by_link(d, prevlink);
    if (h != NULL) {
        *out = *h;
        return true;
    }
    struct broker *b = d->broker;
    struct accept_row version = {0};
    bool found = false;
    struct lmq_bytes none = {NULL, 0};
    if (store_data_version(b->store,
                           (struct lmq_bytes){(const uint8_t *)prevlink, DATA_HEX64_CHARS}, none,
                           accept__row, &version, &found) != LMQ_OK)
        broker_fail_stop(b, "data read", LMQ_EIO);
    if (!found)
        return false;
    /* A later version may be in flight; else the resource row is the head. */
    h = data_inflight_head(d, version.head.permalink);
    if (h != NULL) {
        *out = *h;
        return true;
    }
    struct accept_row resource = {0};
    if (store_data_resource(
            b->store, (struct lmq_bytes){(const uint8_t *)version.head.permalink, DATA_HEX64_CHARS},
            none, accept__row, &resource, &found) != LMQ_OK)
        broker_fail_stop(b, "data read", LMQ_EIO);
    LMQ_ASSERT(found); /* a version's resource row is written with it */
    *out = resource.head;
    return true;
}

static bool accept__may_write(const struct data_model *m, const char *sender,
                              const struct data_head *head)
{
    if (strcmp(sender, head->owner) == 0)
        return true;
    for (size_t i = 0; i < m->writer_count; i++) {
        if (strcmp(m->writers[i], sender) == 0)
            return true;
    }
    return false;
}

/* The first errors of an invalid object, for the reject. */
static json_t *accept__errors(const struct schema_result *res)
{
    json_t *errors = json_array();
    size_t n =
        res->error_count < DATA_REJECT_ERRORS_MAX ? res->error_count : DATA_REJECT_ERRORS_MAX;
    for (size_t i = 0; errors != NULL && i < n; i++) {
        const struct schema_error *e = &res->errors[i];
        json_array_append_new(errors,
                              json_pack("{ssssssss}", "instance", e->instance, "keyword",
                                        e->keyword, "message", e->message, "schema", e->schema));
    }
    return json_pack("{so}", "errors", errors != NULL ? errors : json_array());
}

/* Validates body (reserved members removed) against m. */
static bool accept__validate(const struct data_model *m, json_t *body,
                             struct pipeline_refusal *refusal)
{
    struct schema_result res;
    int rc = schema_validate(m->validator, body, &res);
    if (rc == LMQ_OK && res.valid)
        return true;
    if (rc == LMQ_ENOMEM)
        return accept__refuse(refusal, "invalid_object", "out_of_memory", NULL);
    return accept__refuse(refusal, "invalid_object", rc == LMQ_ELIMIT ? "limit" : "schema",
                          accept__errors(&res));
}

/* Decides on an object; on success fills d->pending for appended(). */
json_t *data_accept_model_schema(json_t *body, const char **detail)
{
    json_t *schema = json_object_get(body, "schema");
    const char *id = json_string_value(json_object_get(schema, "$id"));
    if (!json_is_object(schema) || json_object_size(body) != 1 || id == NULL) {
        *detail = "bad_model"; /* {"schema": {"$id": ..., ...}} and nothing else */
        return NULL;
    }
    if (strncmp(id, "ledgermq.", 9) == 0) {
        *detail = "reserved_type";
        return NULL;
    }
    return schema;
}

static bool accept__admin(const struct broker *b, const char *id)
{
    const struct lmq_data_config *c = &b->cfg.data;
    for (uint32_t i = 0; i < c->admin_count; i++) {
        if (strcmp(c->admins[i], id) == 0)
            return true;
    }
    return false;
}

/* Who an object version is from: its sender, or, in an envelope the server signed for an
 * identity (a REST write), that identity. Only the server may name one. */
static bool accept__author(const struct data *d, const struct ledger_envelope *env,
                           const struct accept_reserved *rv, const char **author,
                           struct pipeline_refusal *refusal)
{
    *author = env->from;
    if (rv->on_behalf_of == NULL)
        return true;
    if (strcmp(env->from, pipeline_server_id(d->broker)) != 0)
        return accept__refuse(refusal, "not_author", "on_behalf_of", NULL);
    *author = rv->on_behalf_of;
    return true;
}

/* The model a ledgermq.Model resource defines (by its permalink), or NULL. */
static const struct data_model *accept__model_of(const struct data *d, const char *permalink)
{
    for (size_t i = 0; i < d->models->count; i++) {
        if (strcmp(d->models->models[i]->permalink, permalink) == 0)
            return d->models->models[i];
    }
    return NULL;
}

/* A ledgermq.Model version (body without its _-members): an admin's, whose schema compiles
 * against the other models and keeps the resource's type name. Fills the pending model. */
static bool accept__model(struct data *d, const char *author, const struct data_head *head,
                          bool update, bool deleted, json_t *body, struct pipeline_refusal *refusal)
{
    struct data_pending *p = &d->pending;
    if (!accept__admin(d->broker, author))
        return accept__refuse(refusal, "not_author", "not_admin", NULL);
    const struct data_model *old = update ? accept__model_of(d, head->permalink) : NULL;
    if (deleted) {
        snprintf(p->remove, sizeof(p->remove), "%s", old != NULL ? old->name : "");
        return true;
    }
    const char *detail = NULL;
    json_t *schema = data_accept_model_schema(body, &detail);
    if (schema == NULL)
        return accept__refuse(refusal, "invalid_object", detail, NULL);
    const char *name = json_string_value(json_object_get(schema, "$id"));
    const struct data_model *same = data_models_find(d->models, name, strlen(name));
    if (!update && same != NULL)
        return accept__refuse(refusal, "invalid_object", "model_exists", NULL);
    if (update && (old == NULL || strcmp(old->name, name) != 0))
        return accept__refuse(refusal, "invalid_object", "model_mismatch", NULL);
    char origin[32 + DATA_HEX64_CHARS], err[512];
    snprintf(origin, sizeof(origin), "model %s", head->permalink);
    struct data_model *m = NULL;
    int rc = data_model_compile(d->models, schema, origin, d->broker->cfg.data.assert_formats, &m,
                                err, sizeof(err));
    if (rc != LMQ_OK)
        return accept__refuse(refusal, "invalid_object",
                              rc == LMQ_ENOMEM ? "out_of_memory" : "bad_model",
                              rc == LMQ_ENOMEM ? NULL : json_pack("{ss}", "error", err));
    /* A model GraphQL could not map would take /graphql down for every model: refused. */
    char gql_err[256];
    rc = data_gql_check(d->models, m, gql_err, sizeof(gql_err));
    if (rc != LMQ_OK) {
        data_model_free(m);
        snprintf(err, sizeof(err), "GraphQL: %s", gql_err);
        return accept__refuse(refusal, "invalid_object",
                              rc == LMQ_ENOMEM ? "out_of_memory" : "bad_model",
                              rc == LMQ_ENOMEM ? NULL : json_pack("{ss}", "error", err));
    }
    memcpy(m->permalink, head->permalink, DATA_HEX64_CHARS + 1);
    p->model = m;
    return true;
}

/* Clears what an earlier check left for an envelope that was not appended after all. */
static void accept__pending_reset(struct data_pending *p)
{
    p->set = false;
    p->prevlink[0] = '\0';
    p->remove[0] = '\0';
    data_model_free(p->model);
    p->model = NULL;
}

/* Decides on an object; on success fills d->pending for appended(). */
static bool accept__object(struct data *d, const struct ledger_envelope *env, const char *link,
                           json_t *body, const char *type, struct pipeline_refusal *refusal)
{
    bool is_model = strcmp(type, DATA_MODEL_TYPE) == 0;
    const struct data_model *m = is_model ? NULL : data_models_find(d->models, type, strlen(type));
    if (m == NULL && !is_model)
        return accept__refuse(refusal, "invalid_object", "unknown_model", NULL);
    struct accept_reserved rv;
    const char *detail = NULL;
    json_t *members = NULL;
    if (!accept__reserved(body, &rv, &detail, &members))
        return accept__refuse(refusal, "invalid_object", detail, members);
    const char *claimed = NULL;
    if (!accept__author(d, env, &rv, &claimed, refusal))
        return false;
    struct data_pending *p = &d->pending;
    /* Copied: the body's reserved members are deleted before validation. */
    memcpy(p->author, claimed, DATA_HEX64_CHARS + 1);
    const char *author = p->author;
    struct data_head head = {0};
    if (rv.prevlink == NULL) {
        memcpy(head.permalink, link, DATA_HEX64_CHARS + 1);
        memcpy(head.owner, author, DATA_HEX64_CHARS + 1);
        strcpy(head.model, type);
    } else {
        if (!accept__head_of(d, rv.prevlink, &head))
            return accept__refuse(refusal, "invalid_object", "unknown_prevlink", NULL);
        if (strcmp(head.model, type) != 0)
            return accept__refuse(refusal, "invalid_object", "model_mismatch", NULL);
        if (rv.permalink != NULL && strcmp(rv.permalink, head.permalink) != 0)
            return accept__refuse(refusal, "invalid_object", "bad_permalink", NULL);
        /* Models: any admin may change any model; objects: the owner and x-writers. */
        if (!is_model && !accept__may_write(m, author, &head))
            return accept__refuse(refusal, "not_author", NULL, NULL);
        if (strcmp(head.latest, rv.prevlink) != 0 || head.deleted)
            return accept__refuse(refusal, "stale_version", head.deleted ? "deleted" : NULL,
                                  json_pack("{ss}", "latest", head.latest));
        strcpy(p->prevlink, rv.prevlink);
    }
    /* Validated (and stored) without the reserved members. */
    for (size_t i = 0; i < LMQ_ARRAY_LEN(data_reserved_members); i++)
        json_object_del(body, data_reserved_members[i]);
    if (is_model ? !accept__model(d, author, &head, rv.prevlink != NULL, rv.deleted, body, refusal)
                 : (!rv.deleted && !accept__validate(m, body, refusal)))
        return false;
    p->body.len = 0;
    int rc = crypto_jcs_canonicalize_json(body, &p->body, DATA_BODY_MAX_BYTES);
    if (rc != LMQ_OK) /* integers past 2^53 parse here but have no canonical form */
        return accept__refuse(refusal, "invalid_object",
                              rc == LMQ_ENOMEM ? "out_of_memory" : "bad_number", NULL);
    memcpy(head.latest, link, DATA_HEX64_CHARS + 1);
    head.deleted = rv.deleted;
    p->head = head;
    memcpy(p->link, link, DATA_HEX64_CHARS + 1);
    p->set = true;
    return true;
}

bool data_accept_check(void *ctx, const struct ledger_envelope *env, const char *link,
                       struct pipeline_refusal *refusal)
{
    struct data *d = ctx;
    accept__pending_reset(&d->pending);
    /* Most envelopes are not objects: a body (canonical JSON) without the name "_t" anywhere
     * is let through without parsing it. */
    if (d->models == NULL || env->body.len == 0 ||
        memmem(env->body.data, env->body.len, "\"_t\":", 5) == NULL)
        return true;
    json_error_t jerr;
    json_t *body = schema_json_loadb((const char *)env->body.data, env->body.len, &jerr);
    json_t *t = json_object_get(body, "_t");
    bool ok = true;
    if (t != NULL && !json_is_string(t)) {
        ok = accept__refuse(refusal, "invalid_object", "bad_t", NULL);
    } else if (t != NULL) {
        /* The name is copied: the body loses its _t before validation. */
        char type[DATA_TYPE_NAME_MAX_CHARS + 1];
        snprintf(type, sizeof(type), "%s", json_string_value(t));
        ok = accept__object(d, env, link, body, type, refusal);
    }
    if (!ok) {
        d->objects_refused++;
        accept__pending_reset(&d->pending);
    }
    json_decref(body);
    return ok;
}

int data_accept_appended(void *ctx, const struct ledger_envelope *env, const char *link,
                         uint64_t index)
{
    struct data *d = ctx;
    struct data_pending *p = &d->pending;
    if (!p->set || strcmp(p->link, link) != 0)
        return LMQ_OK; /* not an object */
    p->set = false;
    const struct data_head *h = &p->head;
    struct store_record rec = {.type = STORE_DATA_VERSION};
    rec.u.data_version = (struct store_rec_data_version){
        .ledger_index = index,
        .link = {(const uint8_t *)link, DATA_HEX64_CHARS},
        .permalink = {(const uint8_t *)h->permalink, DATA_HEX64_CHARS},
        .prevlink = {(const uint8_t *)p->prevlink, strlen(p->prevlink)},
        .model = {(const uint8_t *)h->model, strlen(h->model)},
        .author = {(const uint8_t *)p->author, DATA_HEX64_CHARS},
        .recipient = {(const uint8_t *)env->to, DATA_HEX64_CHARS},
        .time = {(const uint8_t *)env->time, strlen(env->time)},
        .body = {p->body.data, p->body.len},
        .deleted = h->deleted,
    };
    commit_store_write(d->broker, &rec);
    d->objects_accepted++;
    /* A model version takes effect with the next envelope (it is durable with this one). */
    bool changed = p->model != NULL || p->remove[0] != '\0';
    if (p->model != NULL) {
        struct data_model *m = p->model;
        p->model = NULL;
        if (data_models_put(d->models, m) != LMQ_OK) {
            data_model_free(m);
            return LMQ_ENOMEM;
        }
        data_model_write_indexes(d->broker, m);
        data_log_model_change("data_model_put", m->name, h->permalink);
    } else if (p->remove[0] != '\0') {
        data_models_remove(d->models, p->remove);
        data_log_model_change("data_model_removed", p->remove, h->permalink);
    }
    if (changed)
        data_graphql_rebuild(d);
    return data_inflight_add(d, link, h);
}
