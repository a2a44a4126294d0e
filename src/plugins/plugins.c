/*
 * Plugins (plugins.h, include/ledgermq/plugin.h). Each loaded plugin has a host record that the
 * API's functions receive; hooks run on the loop. A host call that would re-enter the pipeline
 * (send) is refused while a synchronous hook (validate, will_send) runs: those run in the middle
 * of accepting another envelope.
 */
#include "plugins/plugins.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/broker_internal.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "data/data.h"
#include "events/events.h"
#include "jobs/jobs.h"
#include "ledger/envelope.h"
#include "ledgermq/plugin.h"
#include "net/http.h"
#include "pipeline/pipeline.h"

/* Events handed to one plugin's on_event per loop turn. */
#define PLUGINS_EVENT_PAGE 64
/* The longest reject reason a verdict makes: "plugin:" and 40 characters. */
#define PLUGINS_REASON_MAX_CHARS 48
/* plugin_slow lines at most this often per plugin. */
#define PLUGINS_SLOW_LOG_MS 1000

struct plugin;

struct lmq_plugin_host {
    struct plugin *plugin;
};

struct plugin {
    struct plugins *owner;
    struct lmq_plugin_host host;
    const struct lmq_plugin *desc;
    void *state;
    bool started;
    const char *args;
    const char *path;
    uint64_t position, stored_position; /* on_event: the last event handed over */
    uint64_t validate_calls, validate_refused, validate_ns, slow_calls, slow_logged_ms;
    uint64_t events_handed, event_ns;
};

/* A call_later timer. */
struct plugin_timer {
    uv_timer_t timer;
    struct plugins *owner;
    void (*fn)(void *ctx);
    void *ctx;
    struct plugin_timer *prev, *next;
};

/* A job a plugin registered: the step adapter's context (kept until plugins_destroy, after the
 * scheduler is gone). */
struct plugin_job {
    char name[LMQ_PLUGIN_NAME_MAX_CHARS + 1];
    int (*step)(void *ctx, uint64_t *cursor, char *detail, size_t detail_cap);
    void *ctx;
    struct plugin_job *next;
};

struct plugins {
    struct broker *broker;
    struct plugin_job *jobs;
    bool in_init; /* register_job is allowed only now */
    struct plugin items[LMQ_PLUGINS_MAX];
    size_t count;
    struct lmq_plugin_api api;
    uv_timer_t pump;
    bool pump_open;
    bool stopping;
    bool in_sync_hook; /* validate or will_send is running */
    struct plugin_timer *timers;
    char reason[PLUGINS_REASON_MAX_CHARS + 1]; /* the last refusal's, for the pipeline */
    struct lmq_buf scratch;                    /* a NUL-terminated body */
};

bool plugins_configured(const struct broker *b)
{
    return b->cfg.plugins.count > 0;
}

/* ---- the host API ---- */

static int plugins_api_send(struct lmq_plugin_host *host, const char *to, const char *type,
                            const char *body, char *link, char *reason, size_t reason_cap)
{
    struct plugins *ps = host->plugin->owner;
    struct broker *b = ps->broker;
    if (reason_cap > 0)
        reason[0] = '\0';
    if (ps->in_sync_hook || ps->stopping) {
        snprintf(reason, reason_cap, "%s", ps->stopping ? "stopping" : "reentrant");
        return LMQ_EINVAL; /* send from on_event or call_later, never from validate/will_send */
    }
    json_error_t jerr;
    json_t *o = body != NULL ? json_loads(body, 0, &jerr) : NULL;
    if (!json_is_object(o) || to == NULL || type == NULL) {
        json_decref(o);
        snprintf(reason, reason_cap, "bad_body");
        return LMQ_EINVAL;
    }
    struct pipeline_server_envelope e = {.to = to, .type = type, .body = o};
    struct pipeline_refusal refusal = {0};
    struct lmq_buf env = {0};
    int rc = pipeline_server_send(b, &e, &refusal, &env);
    json_decref(o);
    if (rc == LMQ_OK) {
        uint8_t hash[CRYPTO_SHA256_BYTES];
        rc = crypto_sha256(env.data, env.len, hash);
        if (rc == LMQ_OK)
            rc = crypto_hex_encode(hash, sizeof(hash), link, LEDGER_ENVELOPE_LINK_BYTES);
    } else if (rc == LMQ_EPROTO) {
        snprintf(reason, reason_cap, "%s", refusal.reason);
        json_decref(refusal.members);
    } else {
        snprintf(reason, reason_cap, "out_of_memory");
    }
    lmq_buf_release(&env);
    return rc;
}

static int plugins_api_read_resource(struct lmq_plugin_host *host, const char *permalink,
                                     char **json)
{
    return data_resource_json(host->plugin->owner->broker, permalink, json);
}

static void plugins_api_log(struct lmq_plugin_host *host, enum lmq_plugin_log_level level,
                            const char *event, const char *msg)
{
    struct lmq_log_line line;
    enum lmq_log_level l = level >= LMQ_PLUGIN_LOG_ERROR  ? LMQ_LOG_ERROR
                           : level == LMQ_PLUGIN_LOG_WARN ? LMQ_LOG_WARN
                           : level == LMQ_PLUGIN_LOG_INFO ? LMQ_LOG_INFO
                                                          : LMQ_LOG_DEBUG;
    if (!lmq_log_begin(&line, l, "plugin"))
        return;
    lmq_log_str(&line, "plugin", host->plugin->desc->name);
    if (event != NULL)
        lmq_log_str(&line, "name", event);
    if (msg != NULL)
        lmq_log_str(&line, "msg", msg);
    lmq_log_end(&line);
}

static void plugins_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void plugins_timer_unlink(struct plugin_timer *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        t->owner->timers = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
}

static void plugins_on_timer(uv_timer_t *handle)
{
    struct plugin_timer *t = handle->data;
    plugins_timer_unlink(t);
    if (!t->owner->stopping)
        t->fn(t->ctx);
    uv_close((uv_handle_t *)&t->timer, plugins_timer_closed);
}

static int plugins_api_call_later(struct lmq_plugin_host *host, uint32_t ms, void (*fn)(void *ctx),
                                  void *ctx)
{
    struct plugins *ps = host->plugin->owner;
    if (fn == NULL || ps->stopping)
        return LMQ_EINVAL;
    struct plugin_timer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return LMQ_ENOMEM;
    *t = (struct plugin_timer){.owner = ps, .fn = fn, .ctx = ctx, .next = ps->timers};
    uv_timer_init(&ps->broker->loop, &t->timer);
    t->timer.data = t;
    if (ps->timers != NULL)
        ps->timers->prev = t;
    ps->timers = t;
    uv_timer_start(&t->timer, plugins_on_timer, ms, 0);
    return LMQ_OK;
}

static int plugins_job_step(struct jobs_step *s)
{
    struct plugin_job *j = s->ctx;
    int rc = j->step(j->ctx, &s->cursor, s->detail, sizeof(s->detail));
    return rc == LMQ_PLUGIN_JOB_MORE ? JOBS_STEP_MORE : rc < 0 ? rc : JOBS_STEP_DONE;
}

static int
plugins_api_register_job(struct lmq_plugin_host *host, const char *name, const char *schedule,
                         int (*step)(void *ctx, uint64_t *cursor, char *detail, size_t detail_cap),
                         void *ctx)
{
    struct plugins *ps = host->plugin->owner;
    if (!ps->in_init || step == NULL || name == NULL || strlen(name) > LMQ_PLUGIN_NAME_MAX_CHARS)
        return LMQ_EINVAL;
    struct plugin_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return LMQ_ENOMEM;
    snprintf(j->name, sizeof(j->name), "%s", name);
    j->step = step;
    j->ctx = ctx;
    struct jobs_job job = {
        .name = j->name, .default_schedule = schedule, .step = plugins_job_step, .ctx = j};
    int rc = jobs_register(ps->broker, &job);
    if (rc != LMQ_OK) {
        free(j);
        return rc;
    }
    j->next = ps->jobs;
    ps->jobs = j;
    return LMQ_OK;
}

static void *plugins_api_alloc(size_t n)
{
    return malloc(n);
}

static void plugins_api_free(void *p)
{
    free(p);
}

/* ---- validate: the envelope seam ---- */

static bool plugins_reason_valid(const char *r)
{
    size_t n = r != NULL ? strlen(r) : 0;
    if (n == 0 || n > PLUGINS_REASON_MAX_CHARS - 7)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '_'))
            return false;
    }
    return true;
}

static void plugins_time(struct plugin *p, uint64_t ns, const char *hook)
{
    struct plugins *ps = p->owner;
    if (ns / 1000 <= ps->broker->cfg.plugins.slow_us)
        return;
    p->slow_calls++;
    uint64_t now = uv_now(&ps->broker->loop);
    if (p->slow_logged_ms != 0 && now - p->slow_logged_ms < PLUGINS_SLOW_LOG_MS)
        return;
    p->slow_logged_ms = now;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "plugin_slow")) {
        lmq_log_str(&line, "plugin", p->desc->name);
        lmq_log_str(&line, "hook", hook);
        lmq_log_uint(&line, "us", ns / 1000);
        lmq_log_uint(&line, "slow_us", ps->broker->cfg.plugins.slow_us);
        lmq_log_end(&line);
    }
}

static bool plugins_check(void *ctx, const struct ledger_envelope *env, const char *link,
                          struct pipeline_refusal *refusal)
{
    struct plugins *ps = ctx;
    ps->scratch.len = 0;
    if (lmq_buf_append(&ps->scratch, env->body.data, env->body.len,
                       LEDGER_ENVELOPE_MAX_BYTES + 1) != LMQ_OK ||
        lmq_buf_append(&ps->scratch, "", 1, LEDGER_ENVELOPE_MAX_BYTES + 1) != LMQ_OK) {
        refusal->reason = "plugin:out_of_memory";
        return false;
    }
    struct lmq_plugin_envelope pe = {
        .from = env->from,
        .to = env->to,
        .type = env->type,
        .link = link,
        .seq = env->seq,
        .body = (const char *)ps->scratch.data,
        .body_len = env->body.len,
    };
    for (size_t i = 0; i < ps->count; i++) {
        struct plugin *p = &ps->items[i];
        if (p->desc->validate == NULL || !p->started)
            continue;
        struct lmq_plugin_verdict verdict = {0};
        ps->in_sync_hook = true;
        uint64_t t0 = uv_hrtime();
        int v = p->desc->validate(p->state, &pe, &verdict);
        uint64_t ns = uv_hrtime() - t0;
        ps->in_sync_hook = false;
        p->validate_calls++;
        p->validate_ns += ns;
        plugins_time(p, ns, "validate");
        if (v == 0)
            continue;
        p->validate_refused++;
        snprintf(ps->reason, sizeof(ps->reason), "plugin:%s",
                 plugins_reason_valid(verdict.reason) ? verdict.reason : "refused");
        refusal->reason = ps->reason;
        refusal->members =
            json_pack("{s:s,s:o}", "plugin", p->desc->name, "plugin_detail",
                      verdict.detail != NULL ? json_string(verdict.detail) : json_null());
        return false;
    }
    return true;
}

/* ---- will_send: the pipeline's server-send hook ---- */

static bool plugins_will_send(void *ctx, const struct pipeline_server_envelope *e, json_t **amended,
                              struct pipeline_refusal *refusal)
{
    struct plugins *ps = ctx;
    char *body = json_dumps(e->body, JSON_COMPACT | JSON_SORT_KEYS);
    if (body == NULL) {
        refusal->reason = "plugin:out_of_memory";
        return false;
    }
    bool changed = false;
    bool ok = true;
    for (size_t i = 0; ok && i < ps->count; i++) {
        struct plugin *p = &ps->items[i];
        if (p->desc->will_send == NULL || !p->started)
            continue;
        char *out = NULL;
        ps->in_sync_hook = true;
        uint64_t t0 = uv_hrtime();
        int v = p->desc->will_send(p->state, e->to, e->type, body, &out);
        plugins_time(p, uv_hrtime() - t0, "will_send");
        ps->in_sync_hook = false;
        if (v == LMQ_PLUGIN_STOP || v != 0) {
            free(out);
            refusal->reason = "plugin:stopped";
            refusal->members = json_pack("{s:s}", "plugin", p->desc->name);
            ok = false;
        } else if (out != NULL) {
            free(body);
            body = out;
            changed = true;
        }
    }
    if (ok && changed) {
        json_error_t jerr;
        *amended = json_loads(body, 0, &jerr);
        if (!json_is_object(*amended)) {
            json_decref(*amended);
            *amended = NULL;
            refusal->reason = "plugin:bad_amendment";
            ok = false;
        }
    }
    free(body);
    return ok;
}

/* ---- on_event: after each commit ---- */

struct plugins_feed {
    struct plugin *plugin;
};

static int plugins_feed_row(void *ctx, const struct events_event *e)
{
    struct plugin *p = ctx;
    struct lmq_plugin_event pe = {.id = e->id,
                                  .type = e->type,
                                  .type_len = e->type_len,
                                  .json = e->json,
                                  .json_len = e->json_len};
    uint64_t t0 = uv_hrtime();
    p->desc->on_event(p->state, &pe);
    uint64_t ns = uv_hrtime() - t0;
    p->event_ns += ns;
    plugins_time(p, ns, "on_event");
    p->position = e->id;
    p->events_handed++;
    return 0;
}

static void plugins_store_position(struct plugin *p)
{
    if (p->position == p->stored_position)
        return;
    char consumer[8 + LMQ_PLUGIN_NAME_MAX_CHARS + 1];
    int n = snprintf(consumer, sizeof(consumer), "plugin:%s", p->desc->name);
    struct store_record rec = {.type = STORE_CONSUMER_POSITION};
    rec.u.consumer_position = (struct store_rec_consumer_position){
        .consumer = {(const uint8_t *)consumer, (size_t)n}, .position = p->position};
    commit_store_write(p->owner->broker, &rec);
    p->stored_position = p->position;
}

static void plugins_on_pump(uv_timer_t *t)
{
    struct plugins *ps = t->data;
    struct broker *b = ps->broker;
    uint64_t durable = events_durable_id(b);
    bool more = false;
    for (size_t i = 0; i < ps->count && !ps->stopping; i++) {
        struct plugin *p = &ps->items[i];
        if (p->desc->on_event == NULL || !p->started || p->position >= durable)
            continue;
        size_t count = 0;
        int rc = events_read(b, p->position, PLUGINS_EVENT_PAGE, plugins_feed_row, p, &count);
        if (rc == LMQ_EIO)
            broker_fail_stop(b, "event read", rc);
        plugins_store_position(p);
        more = more || (count == PLUGINS_EVENT_PAGE && p->position < durable);
    }
    if (more && !ps->stopping) /* the rest next turn: other work runs in between */
        uv_timer_start(&ps->pump, plugins_on_pump, 0, 0);
}

static void plugins_on_events(void *ctx, uint64_t durable_id)
{
    LMQ_UNUSED(durable_id);
    struct plugins *ps = ctx;
    if (!ps->stopping && ps->pump_open)
        uv_timer_start(&ps->pump, plugins_on_pump, 0, 0);
}

/* ---- lifecycle ---- */

static bool plugins_name_valid(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > LMQ_PLUGIN_NAME_MAX_CHARS)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return false;
    }
    return true;
}

static int plugins_fail(const char *path, const char *why)
{
    lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "[plugins] load: %s: %s", path, why);
    return LMQ_EINVAL;
}

/* Opens one shared object and checks its description. */
static int plugins_open(struct plugins *ps, const char *path)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL)
        return plugins_fail(path, dlerror());
    const struct lmq_plugin *(*entry)(void) = NULL;
    *(void **)&entry = dlsym(dl, "ledgermq_plugin_entry");
    if (entry == NULL)
        return plugins_fail(path, "no symbol ledgermq_plugin_entry");
    const struct lmq_plugin *desc = entry();
    char why[160];
    if (desc == NULL)
        return plugins_fail(path, "ledgermq_plugin_entry returned NULL");
    if (desc->abi_version != LMQ_PLUGIN_ABI_VERSION) {
        snprintf(why, sizeof(why), "built for plugin ABI %" PRIu32 ", this server speaks %u",
                 desc->abi_version, LMQ_PLUGIN_ABI_VERSION);
        return plugins_fail(path, why);
    }
    if (!plugins_name_valid(desc->name))
        return plugins_fail(path, "its name is not 1..32 characters of a-z 0-9 _");
    for (size_t i = 0; i < ps->count; i++) {
        if (strcmp(ps->items[i].desc->name, desc->name) == 0)
            return plugins_fail(path, "a plugin of that name is loaded already");
    }
    struct plugin *p = &ps->items[ps->count++];
    *p = (struct plugin){.owner = ps, .desc = desc, .args = "", .path = path};
    p->host.plugin = p;
    const struct lmq_plugins_config *c = &ps->broker->cfg.plugins;
    for (uint32_t i = 0; i < c->args_count; i++) {
        if (strcmp(c->args[i].name, desc->name) == 0)
            p->args = c->args[i].args;
    }
    /* dl stays open until exit: the plugin's code may be running in callbacks until then. */
    return LMQ_OK;
}

int plugins_load(struct broker *b)
{
    LMQ_ASSERT(b->plugins == NULL);
    const struct lmq_plugins_config *c = &b->cfg.plugins;
    if (c->count == 0)
        return LMQ_OK;
    struct plugins *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return LMQ_ENOMEM;
    b->plugins = ps;
    ps->broker = b;
    ps->api = (struct lmq_plugin_api){
        .abi_version = LMQ_PLUGIN_ABI_VERSION,
        .send = plugins_api_send,
        .read_resource = plugins_api_read_resource,
        .log = plugins_api_log,
        .call_later = plugins_api_call_later,
        .alloc = plugins_api_alloc,
        .free = plugins_api_free,
        .register_job = plugins_api_register_job,
    };
    for (uint32_t i = 0; i < c->count; i++) {
        int rc = plugins_open(ps, c->load[i]);
        if (rc != LMQ_OK)
            return rc;
    }
    for (uint32_t i = 0; i < c->args_count; i++) {
        size_t k = 0;
        while (k < ps->count && strcmp(ps->items[k].desc->name, c->args[i].name) != 0)
            k++;
        if (k == ps->count) {
            lmq_log_msgf(LMQ_LOG_ERROR, "start_failed",
                         "[plugin.%s]: no loaded plugin has that name", c->args[i].name);
            return LMQ_EINVAL;
        }
    }
    uv_timer_init(&b->loop, &ps->pump);
    ps->pump.data = ps;
    ps->pump_open = true;
    struct pipeline_envelope_hook hook = {.name = "plugins", .check = plugins_check, .ctx = ps};
    int rc = pipeline_envelope_hook_register(b, &hook);
    if (rc == LMQ_OK)
        pipeline_will_send_register(b, plugins_will_send, ps);
    if (rc == LMQ_OK)
        rc = events_listen(b, plugins_on_events, ps);
    return rc;
}

static int plugins_position_row(void *ctx, struct lmq_bytes consumer, uint64_t position)
{
    struct plugins *ps = ctx;
    for (size_t i = 0; i < ps->count; i++) {
        struct plugin *p = &ps->items[i];
        char name[8 + LMQ_PLUGIN_NAME_MAX_CHARS + 1];
        int n = snprintf(name, sizeof(name), "plugin:%s", p->desc->name);
        if ((size_t)n == consumer.len && memcmp(name, consumer.data, consumer.len) == 0)
            p->position = p->stored_position = position;
    }
    return 0;
}

int plugins_start(struct broker *b)
{
    struct plugins *ps = b->plugins;
    if (ps == NULL)
        return LMQ_OK;
    uint64_t durable = events_durable_id(b);
    for (size_t i = 0; i < ps->count; i++) /* a new plugin starts with the events after now */
        ps->items[i].position = durable, ps->items[i].stored_position = UINT64_MAX;
    if (store_consumer_positions(b->store, plugins_position_row, ps) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "cannot read the plugins' positions");
        return LMQ_EIO;
    }
    for (size_t i = 0; i < ps->count; i++) {
        struct plugin *p = &ps->items[i];
        if (p->desc->init != NULL) {
            ps->in_init = true;
            p->state = p->desc->init(&p->host, &ps->api, p->args);
            ps->in_init = false;
            if (p->state == LMQ_PLUGIN_FAILED) {
                p->state = NULL;
                lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "plugin %s: init failed",
                             p->desc->name);
                return LMQ_EINVAL;
            }
        }
        p->started = true;
        plugins_store_position(p);
        struct lmq_log_line line;
        if (lmq_log_begin(&line, LMQ_LOG_INFO, "plugin_started")) {
            lmq_log_str(&line, "plugin", p->desc->name);
            lmq_log_uint(&line, "position", p->position);
            lmq_log_str(&line, "hooks",
                        p->desc->validate != NULL && p->desc->on_event != NULL ? "validate,on_event"
                        : p->desc->validate != NULL                            ? "validate"
                        : p->desc->on_event != NULL                            ? "on_event"
                                                                               : "none");
            lmq_log_end(&line);
        }
    }
    uv_timer_start(&ps->pump, plugins_on_pump, 0, 0);
    return LMQ_OK;
}

void plugins_stop(struct broker *b)
{
    struct plugins *ps = b->plugins;
    if (ps == NULL || ps->stopping)
        return;
    ps->stopping = true;
    for (size_t i = ps->count; i-- > 0;) {
        struct plugin *p = &ps->items[i];
        if (p->started && p->desc->fini != NULL)
            p->desc->fini(p->state);
        p->started = false;
    }
    while (ps->timers != NULL) {
        struct plugin_timer *t = ps->timers;
        plugins_timer_unlink(t);
        uv_close((uv_handle_t *)&t->timer, plugins_timer_closed);
    }
    if (ps->pump_open) {
        uv_close((uv_handle_t *)&ps->pump, NULL);
        ps->pump_open = false;
    }
}

void plugins_destroy(struct broker *b)
{
    if (b->plugins == NULL)
        return;
    plugins_stop(b);
    while (b->plugins->jobs != NULL) { /* the scheduler, which held them, is gone */
        struct plugin_job *j = b->plugins->jobs;
        b->plugins->jobs = j->next;
        free(j);
    }
    lmq_buf_release(&b->plugins->scratch);
    free(b->plugins);
    b->plugins = NULL;
}

size_t plugins_count(const struct broker *b)
{
    return b->plugins != NULL ? b->plugins->count : 0;
}

void plugins_info(const struct broker *b, size_t i, struct plugins_info *out)
{
    LMQ_ASSERT(i < plugins_count(b));
    const struct plugin *p = &b->plugins->items[i];
    *out = (struct plugins_info){
        .name = p->desc->name,
        .path = p->path,
        .validate = p->desc->validate != NULL,
        .on_event = p->desc->on_event != NULL,
        .will_send = p->desc->will_send != NULL,
        .position = p->position,
        .validate_calls = p->validate_calls,
        .validate_refused = p->validate_refused,
        .slow_calls = p->slow_calls,
        .events = p->events_handed,
    };
}

int plugins_metrics(struct broker *b, struct lmq_buf *out)
{
    struct plugins *ps = b->plugins;
    if (ps == NULL)
        return 0;
    int rc = http_body_printf(
        out, "# HELP ledgermq_plugin_validate_calls_total validate calls per plugin.\n"
             "# TYPE ledgermq_plugin_validate_calls_total counter\n");
    for (size_t i = 0; i < ps->count; i++)
        rc |= http_body_printf(out,
                               "ledgermq_plugin_validate_calls_total{plugin=\"%s\"} %" PRIu64 "\n",
                               ps->items[i].desc->name, ps->items[i].validate_calls);
    rc |= http_body_printf(
        out,
        "# HELP ledgermq_plugin_validate_refused_total Envelopes a plugin's validate refused.\n"
        "# TYPE ledgermq_plugin_validate_refused_total counter\n");
    for (size_t i = 0; i < ps->count; i++)
        rc |= http_body_printf(
            out, "ledgermq_plugin_validate_refused_total{plugin=\"%s\"} %" PRIu64 "\n",
            ps->items[i].desc->name, ps->items[i].validate_refused);
    rc |= http_body_printf(out, "# HELP ledgermq_plugin_validate_seconds_total Time spent in "
                                "validate (on the acceptance path).\n"
                                "# TYPE ledgermq_plugin_validate_seconds_total counter\n");
    for (size_t i = 0; i < ps->count; i++)
        rc |= http_body_printf(out, "ledgermq_plugin_validate_seconds_total{plugin=\"%s\"} %.6f\n",
                               ps->items[i].desc->name, (double)ps->items[i].validate_ns / 1e9);
    rc |= http_body_printf(out, "# HELP ledgermq_plugin_slow_calls_total Hook calls longer than "
                                "[plugins] slow_us.\n"
                                "# TYPE ledgermq_plugin_slow_calls_total counter\n");
    for (size_t i = 0; i < ps->count; i++)
        rc |= http_body_printf(out, "ledgermq_plugin_slow_calls_total{plugin=\"%s\"} %" PRIu64 "\n",
                               ps->items[i].desc->name, ps->items[i].slow_calls);
    rc |= http_body_printf(out, "# HELP ledgermq_plugin_events_total Events handed to on_event.\n"
                                "# TYPE ledgermq_plugin_events_total counter\n");
    for (size_t i = 0; i < ps->count; i++)
        rc |= http_body_printf(out, "ledgermq_plugin_events_total{plugin=\"%s\"} %" PRIu64 "\n",
                               ps->items[i].desc->name, ps->items[i].events_handed);
    return rc;
}
