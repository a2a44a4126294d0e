/*
 * Validator bots (validators.h). A fixed table of pending verdicts, each keyed by the sender and
 * the envelope's link: asked (the bot has the request, the deadline is the verdict timeout) or
 * decided (the sender's retry picks it up; the deadline is how long it is kept for that). One
 * timer, armed for the earliest deadline, turns asked entries into the default verdict and drops
 * decided ones nobody came back for. Nothing here is written to the store.
 */
#include "events/validators.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/broker_internal.h"
#include "ledger/envelope.h"
#include "mqtt/mqtt_topic.h"
#include "net/http.h"

/* The longest verdict a bot sends. */
#define VALIDATORS_VERDICT_MAX_BYTES 512
/* Room asked of the bot's queue beyond the request's bytes (topic, properties). */
#define VALIDATORS_MSG_OVERHEAD_BYTES 160

enum validators_state {
    VALIDATORS_FREE = 0,
    VALIDATORS_ASKED,
    VALIDATORS_DECIDED,
};

enum validators_result {
    VALIDATORS_R_ACCEPT,
    VALIDATORS_R_REJECT,
    VALIDATORS_R_TIMEOUT,
    VALIDATORS_R_UNAVAILABLE,
    VALIDATORS_R_IGNORED,   /* a verdict for no request of that bot's waiting */
    VALIDATORS_R_MALFORMED, /* a verdict that is not one */
    VALIDATORS_R_COUNT,
};

static const char *const validators_result_names[VALIDATORS_R_COUNT] = {
    "accept", "reject", "timeout", "unavailable", "ignored", "malformed"};

struct validators_pending {
    enum validators_state state;
    uint32_t bot; /* index into validators.bots */
    uint64_t request;
    uint64_t deadline_ms;
    char sender[LMQ_IDENTITY_ID_CHARS + 1];
    char link[LEDGER_ENVELOPE_LINK_BYTES];
    uint8_t *client_id; /* the sender's session, to wake it (a copy) */
    uint8_t addr[8];    /* the sender's address group (conn_address_group; IPv6 by /64) */
    uint8_t addr_len;   /* 0: unknown */
    size_t client_id_len;
    bool accept;                                 /* decided */
    char reason[VALIDATORS_REJECT_REASON_BYTES]; /* decided, rejected */
};

struct validators_bot {
    char id[LMQ_IDENTITY_ID_CHARS + 1];
    uint8_t *client_id; /* the session that last subscribed to id/<bot>/validate, or NULL */
    size_t client_id_len;
};

struct validators {
    struct broker *broker;
    uv_timer_t timer;
    struct validators_bot bots[LMQ_VALIDATORS_MAX];
    uint32_t bot_count;
    uint32_t type_bot[LMQ_VALIDATORS_MAX]; /* per cfg.validators entry: its bot's index */
    uint64_t next_request;
    size_t pending_count;
    uint64_t requests;
    uint64_t results[VALIDATORS_R_COUNT];
    struct validators_pending pending[VALIDATORS_PENDING_MAX];
    bool stopped; /* validators_stop: the timer is never armed again */
};

static struct validators_bot *validators_bot_find(struct validators *vs, const char *id,
                                                  uint32_t *index)
{
    LMQ_ASSERT(vs->bot_count <= LMQ_VALIDATORS_MAX);
    for (uint32_t i = 0; i < vs->bot_count; i++) {
        if (strcmp(vs->bots[i].id, id) == 0) {
            if (index != NULL)
                *index = i;
            return &vs->bots[i];
        }
    }
    return NULL;
}

bool validators_is_validator(const struct broker *b, const char *id)
{
    return b->validators != NULL && validators_bot_find(b->validators, id, NULL) != NULL;
}

static void validators_free_entry(struct validators *vs, struct validators_pending *p)
{
    LMQ_ASSERT(p->state != VALIDATORS_FREE && vs->pending_count > 0);
    free(p->client_id);
    memset(p, 0, sizeof(*p));
    vs->pending_count--;
}

static void validators_on_timer(uv_timer_t *t);

/* Arms the timer for the earliest deadline (or stops it with nothing pending). */
static void validators_arm(struct validators *vs)
{
    uint64_t earliest = UINT64_MAX;
    for (size_t i = 0; vs->pending_count > 0 && i < VALIDATORS_PENDING_MAX; i++) {
        if (vs->pending[i].state != VALIDATORS_FREE)
            earliest = LMQ_MIN(earliest, vs->pending[i].deadline_ms);
    }
    uv_timer_stop(&vs->timer);
    if (earliest == UINT64_MAX || vs->stopped)
        return;
    uint64_t now = clock_now_ms(vs->broker);
    uv_timer_start(&vs->timer, validators_on_timer, earliest > now ? earliest - now : 0, 0);
}

/* The sender's connection, if it is waiting (input stopped on b->blocked), is retried on this
 * loop turn instead of the next tick. */
static void validators_wake(struct broker *b, const struct validators_pending *p)
{
    struct session *s = lmq_map_get(b->sessions, p->client_id, p->client_id_len);
    if (s == NULL || s->conn == NULL)
        return; /* gone: a resend finds the decision while it is kept */
    struct conn *c = s->conn;
    if (c->blocked && list_linked(&c->blocked_link)) {
        list_unlink(&c->blocked_link);
        list_push_back(&b->yielded, &c->blocked_link);
    }
}

static void validators_log(const struct validators *vs, const struct validators_pending *p,
                           enum validators_result r)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, r == VALIDATORS_R_ACCEPT ? LMQ_LOG_DEBUG : LMQ_LOG_INFO,
                       "validator_verdict"))
        return;
    lmq_log_str(&line, "bot", vs->bots[p->bot].id);
    lmq_log_str(&line, "sender", p->sender);
    lmq_log_str(&line, "link", p->link);
    lmq_log_uint(&line, "request", p->request);
    lmq_log_str(&line, "result", validators_result_names[r]);
    if (!p->accept)
        lmq_log_str(&line, "reason", p->reason);
    lmq_log_end(&line);
}

/* An asked entry gets its verdict (r: accept, reject or timeout): kept for the sender's retry
 * for another verdict timeout, and the sender woken. */
static void validators_decide(struct validators *vs, struct validators_pending *p,
                              enum validators_result r, const char *reason)
{
    struct broker *b = vs->broker;
    LMQ_ASSERT(p->state == VALIDATORS_ASKED);
    LMQ_ASSERT(r == VALIDATORS_R_ACCEPT || r == VALIDATORS_R_REJECT || r == VALIDATORS_R_TIMEOUT);
    p->state = VALIDATORS_DECIDED;
    p->accept =
        r == VALIDATORS_R_ACCEPT || (r == VALIDATORS_R_TIMEOUT && b->cfg.default_verdict_accept);
    if (!p->accept) {
        int n = snprintf(p->reason, sizeof(p->reason), "%s", reason);
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(p->reason));
    }
    p->deadline_ms = clock_now_ms(b) + b->cfg.verdict_timeout_ms;
    vs->results[r]++;
    validators_log(vs, p, r);
    validators_wake(b, p);
}

static void validators_on_timer(uv_timer_t *t)
{
    struct validators *vs = t->data;
    uint64_t now = clock_now_ms(vs->broker);
    for (size_t i = 0; vs->pending_count > 0 && i < VALIDATORS_PENDING_MAX; i++) {
        struct validators_pending *p = &vs->pending[i];
        if (p->state == VALIDATORS_FREE || p->deadline_ms > now)
            continue;
        if (p->state == VALIDATORS_ASKED)
            validators_decide(vs, p, VALIDATORS_R_TIMEOUT, "validator_timeout");
        else
            validators_free_entry(vs, p); /* decided, and nobody came back for it */
    }
    validators_arm(vs);
}

/* The bot's session to ask: the one that last subscribed to its validate topic, while it is
 * connected; else NULL. */
static struct session *validators_bot_session(struct broker *b, const struct validators_bot *vb)
{
    if (vb->client_id == NULL)
        return NULL;
    struct session *s = lmq_map_get(b->sessions, vb->client_id, vb->client_id_len);
    if (s == NULL || s->conn == NULL || s->closing || strcmp(s->owner, vb->id) != 0)
        return NULL;
    return s;
}

/* The request for env as JSON in *out (malloc'd, *len bytes): 0 or LMQ_ENOMEM. */
static int validators_request_json(uint64_t request, const struct ledger_envelope *env,
                                   const char *link, char **out, size_t *len)
{
    json_error_t jerr;
    json_t *envelope = json_loadb((const char *)env->canonical.data, env->canonical.len, 0, &jerr);
    json_t *o = envelope != NULL ? json_pack("{s:I,s:s,s:s,s:s,s:s,s:o}", "request",
                                             (json_int_t)request, "link", link, "from", env->from,
                                             "to", env->to, "type", env->type, "envelope", envelope)
                                 : NULL;
    *out = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (*out == NULL)
        return LMQ_ENOMEM;
    *len = strlen(*out);
    return LMQ_OK;
}

/* Asks bot vb about env (sent by c) in the free entry p: false when it could not be asked (no
 * live session, or no memory), and p stays free. */
static bool validators_ask(struct validators *vs, struct validators_pending *p, uint32_t bot,
                           struct conn *c, const struct ledger_envelope *env, const char *link)
{
    struct broker *b = vs->broker;
    LMQ_ASSERT(p->state == VALIDATORS_FREE && bot < vs->bot_count);
    struct session *s = validators_bot_session(b, &vs->bots[bot]);
    if (s == NULL)
        return false;
    char *json = NULL;
    size_t len = 0;
    if (validators_request_json(vs->next_request, env, link, &json, &len) != LMQ_OK)
        return false;
    uint8_t *client_id = malloc(c->session->client_id_len + 1);
    bool ok = client_id != NULL && session_queue_has_room(s, len + VALIDATORS_MSG_OVERHEAD_BYTES) &&
              pipeline_publish_server_msg(b, vs->bots[bot].id, "validate", (const uint8_t *)json,
                                          len, s) == LMQ_OK;
    free(json);
    if (!ok) {
        free(client_id);
        return false;
    }
    memcpy(client_id, c->session->client_id, c->session->client_id_len);
    *p = (struct validators_pending){
        .state = VALIDATORS_ASKED,
        .bot = bot,
        .request = vs->next_request++,
        .deadline_ms = clock_now_ms(b) + b->cfg.verdict_timeout_ms,
        .client_id = client_id,
        .client_id_len = c->session->client_id_len,
    };
    memcpy(p->sender, c->identity, LMQ_IDENTITY_ID_CHARS);
    memcpy(p->link, link, sizeof(p->link));
    p->addr_len = conn_address_group(c, p->addr);
    vs->pending_count++;
    vs->requests++;
    validators_arm(vs);
    return true;
}

/* The entry for (c's sender, link), and through free_slot a free one, through sender_count how
 * many the sender holds and through addr_count how many c's address group holds. */
static struct validators_pending *validators_lookup(struct validators *vs, const struct conn *c,
                                                    const char *link,
                                                    struct validators_pending **free_slot,
                                                    size_t *sender_count, size_t *addr_count)
{
    *free_slot = NULL;
    *sender_count = 0;
    *addr_count = 0;
    uint8_t addr[8];
    uint8_t addr_len = conn_address_group(c, addr);
    for (size_t i = 0; i < VALIDATORS_PENDING_MAX; i++) {
        struct validators_pending *p = &vs->pending[i];
        if (p->state == VALIDATORS_FREE) {
            if (*free_slot == NULL)
                *free_slot = p;
            continue;
        }
        if (addr_len > 0 && p->addr_len == addr_len && memcmp(p->addr, addr, addr_len) == 0)
            (*addr_count)++;
        if (strcmp(p->sender, c->identity) != 0)
            continue;
        if (strcmp(p->link, link) == 0)
            return p;
        (*sender_count)++;
    }
    return NULL;
}

/* The validator entry (index into cfg.validators) for type (len bytes), or -1. */
static int validators_for_type(const struct broker *b, const char *type, size_t len)
{
    for (uint32_t i = 0; i < b->cfg.validator_count; i++) {
        if (strlen(b->cfg.validators[i].type) == len &&
            memcmp(b->cfg.validators[i].type, type, len) == 0)
            return (int)i;
    }
    return -1;
}

/* The validator entry for env: by its type, else, for a typed object (a body with a string
 * "_t"), by its model, so an object can't slip past its model's validator under another
 * envelope type. -1 for none. */
static int validators_for_envelope(const struct broker *b, const struct ledger_envelope *env)
{
    int v = validators_for_type(b, env->type, strlen(env->type));
    /* Most bodies hold no "_t": not parsed (the canonical form writes it exactly so). */
    if (v >= 0 || env->body.len == 0 || memmem(env->body.data, env->body.len, "\"_t\":", 5) == NULL)
        return v;
    json_error_t jerr;
    json_t *body = json_loadb((const char *)env->body.data, env->body.len, 0, &jerr);
    json_t *model = json_object_get(body, "_t");
    if (json_is_string(model))
        v = validators_for_type(b, json_string_value(model), json_string_length(model));
    json_decref(body);
    return v;
}

/* No verdict can be asked for: the default verdict, right away. */
static enum validators_gate validators_default_now(struct validators *vs, char *reason)
{
    vs->results[VALIDATORS_R_UNAVAILABLE]++;
    if (vs->broker->cfg.default_verdict_accept)
        return VALIDATORS_PASS;
    int n = snprintf(reason, VALIDATORS_REJECT_REASON_BYTES, "validator_unavailable");
    LMQ_ASSERT(n > 0 && n < VALIDATORS_REJECT_REASON_BYTES);
    return VALIDATORS_REJECT;
}

enum validators_gate validators_check(struct conn *c, const struct ledger_envelope *env,
                                      const char *link, char *reason)
{
    struct broker *b = c->broker;
    struct validators *vs = b->validators;
    LMQ_ASSERT(c->session != NULL && strlen(c->identity) == LMQ_IDENTITY_ID_CHARS);
    int v = vs != NULL ? validators_for_envelope(b, env) : -1;
    if (v < 0)
        return VALIDATORS_PASS;
    uint32_t bot = vs->type_bot[v];
    LMQ_ASSERT(bot < vs->bot_count);
    if (strcmp(vs->bots[bot].id, c->identity) == 0)
        return VALIDATORS_PASS; /* the validator's own envelopes */
    struct validators_pending *free_slot = NULL;
    size_t held = 0, addr_held = 0;
    struct validators_pending *p = validators_lookup(vs, c, link, &free_slot, &held, &addr_held);
    if (p != NULL && p->state == VALIDATORS_DECIDED) {
        bool accept = p->accept;
        if (!accept) {
            int n = snprintf(reason, VALIDATORS_REJECT_REASON_BYTES, "%s", p->reason);
            LMQ_ASSERT(n > 0 && n < VALIDATORS_REJECT_REASON_BYTES);
        }
        validators_free_entry(vs, p);
        return accept ? VALIDATORS_PASS : VALIDATORS_REJECT;
    }
    if (p == NULL && free_slot != NULL && held < VALIDATORS_PENDING_PER_SENDER_MAX &&
        addr_held < b->cfg.verdicts_per_address)
        return VALIDATORS_ASK;
    /* Asked, or no room to ask yet (retried on the tick). The server holds this connection's
     * input, so its silence meanwhile is not the client's: keepalive counts from now. */
    c->last_rx_ms = clock_now_ms(b);
    return VALIDATORS_WAIT;
}

enum validators_gate validators_ask_now(struct conn *c, const struct ledger_envelope *env,
                                        const char *link, char *reason)
{
    struct broker *b = c->broker;
    struct validators *vs = b->validators;
    int v = vs != NULL ? validators_for_envelope(b, env) : -1;
    LMQ_ASSERT(v >= 0 && vs->type_bot[v] < vs->bot_count);
    struct validators_pending *free_slot = NULL;
    size_t held = 0, addr_held = 0;
    struct validators_pending *p = validators_lookup(vs, c, link, &free_slot, &held, &addr_held);
    LMQ_ASSERT(p == NULL && free_slot != NULL); /* as validators_check found it, this turn */
    if (!validators_ask(vs, free_slot, vs->type_bot[v], c, env, link))
        return validators_default_now(vs, reason);
    c->last_rx_ms = clock_now_ms(b);
    return VALIDATORS_WAIT;
}

/* A malformed verdict: logged, and 0x99 for MQTT 5. */
static uint8_t validators_refuse(struct conn *c, const char *why)
{
    c->broker->validators->results[VALIDATORS_R_MALFORMED]++;
    conn_log(c, LMQ_LOG_INFO, "verdict_refused", why);
    return c->version == MQTT_V5 ? MQTT_RC_PAYLOAD_FORMAT_INVALID : MQTT_RC_SUCCESS;
}

/* A bot's reason: 1..VALIDATORS_REASON_MAX_CHARS printable ASCII characters. */
static bool validators_reason_valid(const char *s, size_t len)
{
    if (len == 0 || len > VALIDATORS_REASON_MAX_CHARS)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    }
    return true;
}

/* The verdict in req from bot (index): decides its asked entry, or counts it as ignored. */
static uint8_t validators_apply(struct conn *c, uint32_t bot, json_t *req)
{
    struct validators *vs = c->broker->validators;
    json_t *request = json_object_get(req, "request"), *accept = json_object_get(req, "accept");
    json_t *why = json_object_get(req, "reason");
    size_t members = 2 + (why != NULL ? 1u : 0u);
    if (!json_is_integer(request) || json_integer_value(request) < 0 || !json_is_boolean(accept) ||
        json_object_size(req) != members)
        return validators_refuse(c,
                                 "expected {\"request\":N,\"accept\":true|false[,\"reason\":S]}");
    if (why != NULL && (json_is_true(accept) || !json_is_string(why) ||
                        !validators_reason_valid(json_string_value(why), json_string_length(why))))
        return validators_refuse(c, "reason: 1..64 printable ASCII characters, with accept false");
    uint64_t n = (uint64_t)json_integer_value(request);
    for (size_t i = 0; vs->pending_count > 0 && i < VALIDATORS_PENDING_MAX; i++) {
        struct validators_pending *p = &vs->pending[i];
        if (p->state != VALIDATORS_ASKED || p->request != n || p->bot != bot)
            continue;
        char reason[VALIDATORS_REJECT_REASON_BYTES];
        int len = snprintf(reason, sizeof(reason), "bot:%s",
                           why != NULL ? json_string_value(why) : "rejected");
        LMQ_ASSERT(len > 0 && (size_t)len < sizeof(reason));
        validators_decide(vs, p, json_is_true(accept) ? VALIDATORS_R_ACCEPT : VALIDATORS_R_REJECT,
                          reason);
        validators_arm(vs);
        return MQTT_RC_SUCCESS;
    }
    /* Late (after the timeout), answered twice, or not this bot's: nothing to decide. */
    vs->results[VALIDATORS_R_IGNORED]++;
    conn_log(c, LMQ_LOG_INFO, "verdict_ignored", "no waiting request of this bot's");
    return MQTT_RC_SUCCESS;
}

uint8_t validators_verdict(struct conn *c, const struct mqtt_publish *pub)
{
    struct validators *vs = c->broker->validators;
    uint32_t bot = 0;
    LMQ_ASSERT(vs != NULL && validators_bot_find(vs, c->identity, &bot) != NULL);
    if (pub->payload.len > VALIDATORS_VERDICT_MAX_BYTES)
        return validators_refuse(c, "verdict too large");
    json_error_t jerr;
    json_t *req = json_loadb((const char *)pub->payload.data, pub->payload.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    uint8_t rc = json_is_object(req) ? validators_apply(c, bot, req)
                                     : validators_refuse(c, "expected a JSON object");
    json_decref(req);
    return rc;
}

void validators_subscribed(struct conn *c, const uint8_t *filter, size_t len)
{
    struct validators *vs = c->broker->validators;
    struct validators_bot *vb = vs != NULL ? validators_bot_find(vs, c->identity, NULL) : NULL;
    if (vb == NULL || c->session == NULL)
        return;
    char topic[3 + LMQ_IDENTITY_ID_CHARS + 10];
    int n = snprintf(topic, sizeof(topic), "id/%s/validate", vb->id);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(topic));
    if (!mqtt_topic_matches(filter, len, (const uint8_t *)topic, (size_t)n))
        return;
    uint8_t *copy = malloc(c->session->client_id_len + 1);
    if (copy == NULL) {
        conn_log(c, LMQ_LOG_WARN, "validator_not_live", "out of memory");
        return; /* the previous session (if any) stays the one asked */
    }
    memcpy(copy, c->session->client_id, c->session->client_id_len);
    free(vb->client_id);
    vb->client_id = copy;
    vb->client_id_len = c->session->client_id_len;
    conn_log(c, LMQ_LOG_INFO, "validator_live", vb->id);
}

int validators_metrics(struct broker *b, struct lmq_buf *out)
{
    struct validators *vs = b->validators;
    if (vs == NULL)
        return LMQ_OK;
    LMQ_ASSERT(vs->pending_count <= VALIDATORS_PENDING_MAX && out != NULL);
    int rc = http_body_printf(
        out,
        "# HELP ledgermq_validator_requests_total Envelopes a validator bot was asked about.\n"
        "# TYPE ledgermq_validator_requests_total counter\n"
        "ledgermq_validator_requests_total %" PRIu64 "\n"
        "# HELP ledgermq_validator_pending Verdicts waited for or not yet picked up.\n"
        "# TYPE ledgermq_validator_pending gauge\n"
        "ledgermq_validator_pending %zu\n"
        "# HELP ledgermq_validator_verdicts_total Verdicts by result (timeout and unavailable: "
        "the default verdict was used).\n"
        "# TYPE ledgermq_validator_verdicts_total counter\n",
        vs->requests, vs->pending_count);
    for (size_t i = 0; i < VALIDATORS_R_COUNT; i++)
        rc |=
            http_body_printf(out, "ledgermq_validator_verdicts_total{result=\"%s\"} %" PRIu64 "\n",
                             validators_result_names[i], vs->results[i]);
    return rc;
}

int validators_init(struct broker *b)
{
    LMQ_ASSERT(b->validators == NULL);
    LMQ_ASSERT(b->cfg.validator_count <= LMQ_VALIDATORS_MAX);
    if (b->cfg.validator_count == 0)
        return LMQ_OK;
    struct validators *vs = calloc(1, sizeof(*vs));
    if (vs == NULL)
        return LMQ_ENOMEM;
    vs->broker = b;
    /* Request numbers differ across restarts, so a verdict for a request asked before one can't
     * decide an envelope asked about after it. */
    vs->next_request = (uint64_t)clock_unix_ms(b) * 1000;
    for (uint32_t i = 0; i < b->cfg.validator_count; i++) {
        const char *id = b->cfg.validators[i].bot;
        uint32_t index = 0;
        if (validators_bot_find(vs, id, &index) == NULL) {
            index = vs->bot_count++;
            memcpy(vs->bots[index].id, id, sizeof(vs->bots[index].id));
        }
        vs->type_bot[i] = index;
    }
    uv_timer_init(&b->loop, &vs->timer);
    vs->timer.data = vs;
    b->validators = vs;
    return LMQ_OK;
}

void validators_stop(struct broker *b)
{
    if (b->validators == NULL)
        return;
    b->validators->stopped = true;
    uv_timer_stop(&b->validators->timer);
}

void validators_destroy(struct broker *b)
{
    struct validators *vs = b->validators;
    if (vs == NULL)
        return;
    /* The timer was closed with the loop's other handles (broker_teardown). */
    for (size_t i = 0; vs->pending_count > 0 && i < VALIDATORS_PENDING_MAX; i++) {
        if (vs->pending[i].state != VALIDATORS_FREE)
            validators_free_entry(vs, &vs->pending[i]);
    }
    for (uint32_t i = 0; i < vs->bot_count; i++)
        free(vs->bots[i].client_id);
    free(vs);
    b->validators = NULL;
}
