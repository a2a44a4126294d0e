/*
 * Sessions: attach/detach to connections (takeover, clean start, session
 * present), the per-session queue and inflight window, outbound QoS flows,
 * wills with delay, and session expiry.
 */
#include "broker/broker_internal.h"
#include "chain/chain.h"

#include <string.h>

#include "mqtt/mqtt_topic.h"

#define SESSION_EXPIRY_NEVER UINT32_MAX

static void session_log(struct session *s, enum lmq_log_level level, const char *event)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, level, event))
        return;
    lmq_log_strn(&line, "client_id", s->client_id, s->client_id_len);
    lmq_log_end(&line);
}

/* Whether an ending session's large queue is left to the expire_messages job (scheduled). */
static bool session_defer_queue(const struct broker *b)
{
    const struct lmq_jobs_config *j = &b->cfg.jobs;
    LMQ_ASSERT(j->count <= LMQ_JOBS_MAX);
    for (size_t i = 0; i < j->count; i++)
        if (strcmp(j->jobs[i].name, "expire_messages") == 0 && j->jobs[i].schedule[0] != '\0')
            return true;
    return false;
}

static void session_write(struct session *s, enum store_record_type type)
{
    struct lmq_bytes client_id = {s->client_id, s->client_id_len};
    struct store_record rec = {.type = type};
    if (type == STORE_SESSION_PUT)
        rec.u.session_put = (struct store_rec_session_put){
            .client_id = client_id,
            .owner = {(const uint8_t *)s->owner, strlen(s->owner)},
            .expiry_s = s->expiry_s,
        };
    else
        rec.u.session_delete = (struct store_rec_session_delete){
            .client_id = client_id, .defer_queue = session_defer_queue(s->broker)};
    LMQ_ASSERT(type == STORE_SESSION_PUT || type == STORE_SESSION_DELETE);
    /* Rows left behind are below every seq a later session of this client id uses. */
    if (type == STORE_SESSION_DELETE && rec.u.session_delete.defer_queue)
        s->broker->queue_seq_floor = LMQ_MAX(s->broker->queue_seq_floor, s->next_seq);
    commit_store_write(s->broker, &rec);
}

/* Records the will (so a crash still publishes it) or forgets it. */
static void session_store_will(struct session *s, bool put)
{
    if (!put && !s->will_stored)
        return;
    LMQ_ASSERT(!put || (s->will != NULL && s->will->refcount > 0));
    struct lmq_bytes client_id = {s->client_id, s->client_id_len};
    struct store_record rec = {.type = STORE_WILL_DELETE, .u.will_delete.client_id = client_id};
    if (put) {
        rec = (struct store_record){.type = STORE_WILL_PUT,
                                    .u.will_put = {.client_id = client_id,
                                                   .message = &s->will->stored,
                                                   .delay_s = s->will_delay_s}};
        s->will->persisted = true;
    }
    commit_store_write(s->broker, &rec);
    s->will_stored = put;
}

void session_publish_will(struct session *s)
{
    struct msg *will = s->will;
    if (will == NULL)
        return;
    /* The session's reference: kept over routing, dropped at the end. */
    LMQ_ASSERT(will->refcount > 0 && will->broker == s->broker);
    LMQ_ASSERT(s->conn == NULL || s->overflow_ending); /* a will goes out once its conn is gone */
    s->will = NULL;
    s->will_due_ms = 0;
    session_log(s, LMQ_LOG_DEBUG, "will_published");
    struct broker *b = s->broker;
    /* A will is routed like a publish from nobody (no-local does not apply). */
    if (will->stored.qos > 0) {
        /* Deliveries of a QoS>0 will wait for the commit that records them. */
        will->committed = false;
        if (commit_defer_msg(b, will) != LMQ_OK)
            will->committed = true;
    }
    if (route_publish(b, will, NULL) == MQTT_RC_QUOTA_EXCEEDED) {
        b->stats.refused_quota++;
        session_log(s, LMQ_LOG_WARN, "will_refused_quota");
    }
    if (will->stored.retain && retain_fits(b, will))
        (void)retain_update(b, will);
    /* After routing: the stored will row goes once the queue rows referring to it exist. */
    session_store_will(s, false);
    msg_unref(will);
}

static void session_unsubscribe_all(struct session *s)
{
    size_t guard = s->sub_count + 1;
    while (!list_empty(&s->subs) && guard-- > 0) {
        struct session_sub *sub = list_entry(s->subs.next, struct session_sub, link);
        const uint8_t *group = sub->group_len ? sub->text : NULL;
        int rc = sub_tree_remove(s->broker->subs, sub->text + sub->group_len, sub->filter_len,
                                 group, sub->group_len, s);
        LMQ_ASSERT(rc == LMQ_OK);
        list_unlink(&sub->link);
        free(sub);
        LMQ_ASSERT(s->sub_count > 0);
        s->sub_count--;
    }
    LMQ_ASSERT(s->sub_count == 0 && list_empty(&s->subs));
}

static void session_free_cb(uv_handle_t *h)
{
    struct session *s = h->data;
    free(s->client_id);
    free(s);
}

/* Frees a session's memory (not its stored state). */
void session_destroy(struct session *s)
{
    LMQ_ASSERT(s->conn == NULL && !s->closing);
    s->closing = true;
    struct broker *b = s->broker;
    lmq_map_remove(b->sessions, s->client_id, s->client_id_len);
    LMQ_ASSERT(b->session_count > 0);
    b->session_count--;
    if (list_linked(&s->commit_wait))
        list_unlink(&s->commit_wait);
    session_quota_release(s);
    retain_session_end(s);
    session_unsubscribe_all(s);
    session_queue_free_deliveries(s);
    LMQ_ASSERT(s->sub_count == 0 && list_empty(&s->subs) && !list_linked(&s->commit_wait));
    msg_unref(s->will);
    s->will = NULL;
    free(s->inbound_qos2);
    uv_close((uv_handle_t *)&s->timer, session_free_cb);
}

static void session_on_timer(uv_timer_t *t);

/* The session ends for good: its delayed will goes out, its stored state is deleted. */
static void session_end(struct session *s)
{
    LMQ_ASSERT(s->conn == NULL && !s->closing);
    session_log(s, LMQ_LOG_DEBUG, "session_ended");
    session_publish_will(s);
    if (s->stored)
        session_write(s, STORE_SESSION_DELETE);
    session_destroy(s); /* releases its quota count too */
}

void session_prune(struct session *s, const char *why)
{
    LMQ_ASSERT(s != NULL && s->conn == NULL && !s->closing && why != NULL);
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "session_pruned")) {
        lmq_log_strn(&line, "client_id", s->client_id, s->client_id_len);
        lmq_log_str(&line, "why", why);
        lmq_log_uint(&line, "queued_bytes", s->queued_bytes);
        lmq_log_end(&line);
    }
    char owner[SESSION_OWNER_MAX_BYTES];
    memcpy(owner, s->owner, sizeof(owner));
    struct broker *b = s->broker;
    session_end(s);
    chain_identity_pruned(b, owner); /* its contract watches end with its last session */
}

void session_overflow_end(struct session *s)
{
    LMQ_ASSERT(s != NULL && !s->closing);
    if (s->overflow_ending)
        return;
    s->overflow_ending = true;
    s->broker->stats.overflow_ended++;
    session_log(s, LMQ_LOG_WARN, "session_ended_overflow");
    /* Not here: this runs while a message is routed (maybe one this session's own client
     * published), and ending publishes its will. Next loop turn, like an expiry. */
    session_arm_timer(s);
}

/* queue_overflow = end_session, on the loop turn after the overflow: the session ends as if it
 * expired; a client still connected is told why (v5 DISCONNECT 0x97) and closed first. */
static void session_overflow_finish(struct session *s)
{
    LMQ_ASSERT(s->overflow_ending && !s->closing);
    struct conn *c = s->conn;
    if (c == NULL) {
        session_end(s);
        return;
    }
    /* So the detach that closing the connection does ends it (now, or when a connection
     * already closing is freed). */
    s->expiry_s = 0;
    conn_disconnect(c, MQTT_RC_QUOTA_EXCEEDED);
}

void session_admin_end(struct session *s)
{
    LMQ_ASSERT(s != NULL && !s->closing);
    session_log(s, LMQ_LOG_INFO, "session_ended_admin");
    struct conn *c = s->conn;
    if (c == NULL) {
        session_end(s);
        return;
    }
    /* As session_overflow_finish: the detach that closing the connection does ends it. */
    s->expiry_s = 0;
    conn_disconnect(c, MQTT_RC_ADMINISTRATIVE_ACTION);
}

static void session_on_timer(uv_timer_t *t)
{
    struct session *s = t->data;
    LMQ_ASSERT(s != NULL && &s->timer == t && !s->closing); /* closing stops it */
    LMQ_ASSERT(s->will_due_ms == 0 || s->conn == NULL);     /* a delayed will: offline only */
    if (s->overflow_ending) {
        session_overflow_finish(s);
        return;
    }
    uint64_t now = clock_now_ms(s->broker);
    if (s->will_due_ms != 0 && now >= s->will_due_ms)
        session_publish_will(s);
    if (s->conn == NULL && s->expires_ms != 0 && now >= s->expires_ms) {
        session_end(s);
        return;
    }
    session_arm_timer(s);
}

void session_arm_timer(struct session *s)
{
    if (s->overflow_ending) {
        /* Ending on the next turn (session_overflow_end): nothing later may push that back. */
        uv_timer_stop(&s->timer);
        uv_timer_start(&s->timer, session_on_timer, 0, 0);
        return;
    }
    uint64_t due = 0;
    if (s->will_due_ms != 0)
        due = s->will_due_ms;
    if (s->conn == NULL && s->expires_ms != 0 && (due == 0 || s->expires_ms < due))
        due = s->expires_ms;
    /* The earliest of the two that are pending. */
    LMQ_ASSERT(s->will_due_ms == 0 || due <= s->will_due_ms);
    LMQ_ASSERT(s->conn != NULL || s->expires_ms == 0 || (due != 0 && due <= s->expires_ms));
    uv_timer_stop(&s->timer);
    if (due == 0)
        return;
    uint64_t now = clock_now_ms(s->broker);
    uv_timer_start(&s->timer, session_on_timer, due > now ? due - now : 0, 0);
}

void session_detach(struct conn *c)
{
    struct session *s = c->session;
    if (s == NULL)
        return;
    LMQ_ASSERT(s->conn == c);
    c->session = NULL;
    s->conn = NULL;
    if (list_linked(&s->commit_wait))
        list_unlink(&s->commit_wait);
    uint64_t now = clock_now_ms(s->broker);
    s->hold_delivery = 0;
    if (s->will != NULL) {
        if (!c->will_on_close) {
            session_store_will(s, false);
            msg_unref(s->will);
            s->will = NULL;
        } else if (s->will_delay_s == 0) {
            session_publish_will(s);
        } else {
            s->will_due_ms = now + (uint64_t)s->will_delay_s * 1000;
        }
    }
    LMQ_ASSERT(s->will == NULL || s->will_due_ms > now); /* delayed, or published above */
    if (c->takeover)
        return; /* the new connection attaches right away */
    if (!s->persistent || s->expiry_s == 0) {
        session_end(s);
        return;
    }
    session_queue_offline(s);
    s->offline_since_ms = now;
    s->expires_ms = s->expiry_s == SESSION_EXPIRY_NEVER ? 0 : now + (uint64_t)s->expiry_s * 1000;
    LMQ_ASSERT(s->conn == NULL && c->session == NULL && s->inflight_unsent <= s->inflight_count);
    session_arm_timer(s);
}

struct session *session_create(struct broker *b, const uint8_t *id, size_t id_len)
{
    LMQ_ASSERT(lmq_map_get(b->sessions, id, id_len) == NULL); /* one session per client id */
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->client_id = malloc(id_len + 1);
    if (s->client_id == NULL || lmq_map_put(b->sessions, id, id_len, s) != LMQ_OK) {
        free(s->client_id);
        free(s);
        return NULL;
    }
    memcpy(s->client_id, id, id_len);
    s->client_id[id_len] = '\0';
    s->client_id_len = id_len;
    s->broker = b;
    list_init(&s->subs);
    list_init(&s->queue);
    list_init(&s->queue0);
    list_init(&s->inflight);
    list_init(&s->unsynced);
    uv_timer_init(&b->loop, &s->timer);
    s->timer.data = s;
    s->offline_since_ms = clock_now_ms(b); /* a session loaded at start: offline since then */
    /* Session timers never keep the loop alive on their own: shutdown must not wait for them. */
    uv_unref((uv_handle_t *)&s->timer);
    b->session_count++;
    LMQ_ASSERT(b->session_count == lmq_map_count(b->sessions));
    s->next_seq = s->paged_seq = b->queue_seq_floor;
    session_queue_check(s);
    return s;
}

/*
 * The session expiry interval the broker grants: what an MQTT 5 client asks for, capped by
 * max_session_expiry; a 3.1.1 persistent session (which can't ask) gets default_session_expiry,
 * and so is the most an anonymous client gets: nobody answers for its sessions.
 */
void session_principal(const struct conn *c, char out[SESSION_OWNER_MAX_BYTES])
{
    LMQ_ASSERT(c != NULL && out != NULL);
    int n;
    if (c->identity[0] != '\0')
        n = snprintf(out, SESSION_OWNER_MAX_BYTES, "%s", c->identity);
    else if (c->password_state == CONN_PASSWORD_PASSED)
        n = snprintf(out, SESSION_OWNER_MAX_BYTES, "user:%s", c->user);
    else if (c->tls_cn[0] != '\0')
        n = snprintf(out, SESSION_OWNER_MAX_BYTES, "cn:%s", c->tls_cn);
    else
        n = snprintf(out, SESSION_OWNER_MAX_BYTES, "%s", SESSION_OWNER_ANONYMOUS);
    LMQ_ASSERT(n > 0 && n < SESSION_OWNER_MAX_BYTES);
}

uint32_t session_expiry_cap(const struct broker *b, const char *principal)
{
    const struct lmq_limits *lim = &b->cfg.limits;
    if (strcmp(principal, SESSION_OWNER_ANONYMOUS) == 0)
        return LMQ_MIN(lim->max_session_expiry_s, lim->default_session_expiry_s);
    return lim->max_session_expiry_s;
}

static uint32_t session_expiry_for(const struct conn *c, const struct mqtt_connect *connect,
                                   const char *principal)
{
    const struct lmq_limits *lim = &c->broker->cfg.limits;
    uint32_t cap = session_expiry_cap(c->broker, principal);
    if (connect->protocol_version == MQTT_V5) {
        uint32_t v = 0;
        if (connect->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL))
            v = connect->props.session_expiry_interval_s;
        return LMQ_MIN(v, cap);
    }
    return connect->clean_start ? 0 : LMQ_MIN(lim->default_session_expiry_s, cap);
}

static int session_set_will(struct session *s, struct conn *c, const struct mqtt_connect *cn)
{
    if (s->will != NULL && !cn->will_flag)
        session_store_will(s, false);
    msg_unref(s->will);
    s->will = NULL;
    s->will_due_ms = 0;
    c->will_on_close = false;
    if (!cn->will_flag)
        return LMQ_OK;
    struct mqtt_publish pub = {.qos = cn->will_qos,
                               .retain = cn->will_retain,
                               .topic = cn->will_topic,
                               .payload = cn->will_payload,
                               .props = cn->will_props};
    s->will = msg_create(s->broker, &pub);
    if (s->will == NULL)
        return LMQ_ENOMEM;
    LMQ_ASSERT(s->will->refcount == 1); /* the session's own */
    s->will->committed = true;          /* re-set to false when it is published with QoS > 0 */
    s->will_delay_s = 0;
    if (cn->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL))
        s->will_delay_s = cn->will_props.will_delay_interval_s;
    c->will_on_close = true;
    session_store_will(s, true);
    LMQ_ASSERT(c->session == s && s->will_due_ms == 0);
    return LMQ_OK;
}

/*
 * A session that lived only in memory (expiry 0) becomes persistent when its owner resumes it
 * with an expiry: everything a restart must bring back is written now, in the batch of the
 * session row (subscriptions, inbound QoS 2 ids awaiting PUBREL, QoS 1/2 deliveries), or the
 * CONNACK's "session present" would be a promise the store can't keep.
 */
static void session_store_state(struct session *s)
{
    LMQ_ASSERT(s->persistent && s->stored);
    subscribe_store_all(s);
    uint32_t found = 0;
    for (uint32_t id = 0; s->inbound_qos2 != NULL && id <= UINT16_MAX; id++) {
        if (!(s->inbound_qos2[id >> 3] & (1u << (id & 7))))
            continue;
        struct store_record rec = {
            .type = STORE_INBOUND_QOS2_PUT,
            .u.inbound_qos2_put = {.client_id = {s->client_id, s->client_id_len},
                                   .packet_id = (uint16_t)id}};
        commit_store_write(s->broker, &rec);
        found++;
    }
    LMQ_ASSERT(found == s->inbound_qos2_count);
    session_queue_store_all(s);
}

enum proto_result session_attach(struct conn *c, const struct mqtt_connect *connect,
                                 bool *session_present, uint8_t *reason_code)
{
    struct broker *b = c->broker;
    const uint8_t *id = connect->client_id.data;
    size_t id_len = connect->client_id.len;
    char principal[SESSION_OWNER_MAX_BYTES];
    session_principal(c, principal);
    struct session *s = lmq_map_get(b->sessions, id, id_len);
    if (s != NULL && s->owner[0] != '\0' && strcmp(s->owner, principal) != 0) {
        /* A session belongs to the principal that created it: neither a takeover nor a clean
         * start may cross principals (its queue and subscriptions would change hands). */
        security_event(b, c, SECURITY_EVENT_SESSION_OWNER,
                       "client id belongs to a session of another principal");
        *reason_code = MQTT_RC_NOT_AUTHORIZED;
        return PROTO_REFUSE_CONNECT;
    }
    uint32_t expiry_s = session_expiry_for(c, connect, principal);
    /* A new stored session counts against the quotas; resuming or replacing one it already
     * holds does not. */
    if (expiry_s > 0 && (s == NULL || !s->quota_counted) &&
        !session_quota_admit(c, principal, reason_code))
        return PROTO_REFUSE_CONNECT;
    /* A stored session of an older build (no owner yet) becomes this principal's: it counts
     * against its quota like a new one. */
    if (expiry_s > 0 && s != NULL && s->quota_counted && s->owner[0] == '\0' &&
        !session_quota_admit_principal(c, principal, reason_code))
        return PROTO_REFUSE_CONNECT;
    if (s != NULL && s->conn != NULL) {
        struct conn *old = s->conn;
        old->takeover = true;
        session_log(s, LMQ_LOG_INFO, "session_taken_over");
        conn_disconnect(old, MQTT_RC_SESSION_TAKEN_OVER);
        LMQ_ASSERT(s->conn == NULL);
    }
    uint64_t carried_seq = 0;
    /* A session queue_overflow is ending is not resumed: it ends now (session present 0). */
    if (s != NULL && (connect->clean_start || s->overflow_ending)) {
        /* Sequence numbers continue, so rows of the old session can never be paged in. */
        carried_seq = s->next_seq;
        session_end(s);
        s = NULL;
    }
    *session_present = s != NULL;
    if (s == NULL) {
        s = session_create(b, id, id_len);
        if (s == NULL) {
            *reason_code = MQTT_RC_SERVER_UNAVAILABLE;
            return PROTO_REFUSE_CONNECT;
        }
        s->next_seq = LMQ_MAX(s->next_seq, carried_seq);
        s->paged_seq = s->next_seq;
    }
    /* Reconnecting within a will delay cancels the delayed will. */
    uv_timer_stop(&s->timer);
    s->expires_ms = 0;
    s->conn = c;
    s->progress_ms = clock_now_ms(b); /* a returning consumer gets the grace to catch up */
    c->session = s;
    s->overflow_logged = false; /* a new connection: its first overflow is logged again */
    if (s->owner[0] == '\0') {
        /* New, or written by an older version that recorded only identities: claimed now, and
         * counted against its new owner from here on. */
        bool counted = s->quota_counted;
        session_quota_release(s);
        memcpy(s->owner, principal, sizeof(s->owner));
        if (counted)
            session_quota_count(s, c);
    }
    LMQ_ASSERT(strcmp(s->owner, principal) == 0);
    s->expiry_s = expiry_s;
    s->persistent = s->expiry_s > 0;
    c->session_expiry_was_zero = s->expiry_s == 0;
    if (session_set_will(s, c, connect) != LMQ_OK) {
        /* Undo the attach, as if this connection had ended: the refused connection must not
         * stay the session's while its CONNACK is flushed (a takeover would find it). */
        LMQ_ASSERT(!c->will_on_close && !c->takeover);
        session_detach(c);
        *reason_code = MQTT_RC_SERVER_UNAVAILABLE;
        return PROTO_REFUSE_CONNECT;
    }
    /*
     * A stored session resumed with expiry 0 keeps its rows until it ends
     * (then session_end deletes them): its backlog must still be delivered.
     */
    if (s->persistent) {
        bool was_stored = s->stored;
        session_write(s, STORE_SESSION_PUT);
        s->stored = true;
        session_quota_count(s, c);
        if (!was_stored)
            session_store_state(s);
    }
    LMQ_ASSERT(s->conn == c && c->session == s && s->expires_ms == 0 && !s->closing);
    LMQ_ASSERT(s->persistent == (s->expiry_s > 0) && (!s->persistent || s->stored));
    *reason_code = MQTT_RC_SUCCESS;
    return PROTO_OK;
}

static bool session_collect_visit(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    struct session ***cursor = ctx;
    LMQ_UNUSED(key);
    LMQ_UNUSED(key_len);
    *(*cursor)++ = value;
    return true;
}

void session_destroy_all(struct broker *b)
{
    size_t count = lmq_map_count(b->sessions);
    if (count == 0)
        return;
    /* Collect first: destroying a session modifies the map being visited. */
    struct session **all = calloc(count, sizeof(*all));
    LMQ_ASSERT(all != NULL);
    struct session **cursor = all;
    lmq_map_visit(b->sessions, session_collect_visit, &cursor);
    LMQ_ASSERT((size_t)(cursor - all) == count);
    for (size_t i = 0; i < count; i++) {
        struct session *s = all[i];
        if (s->conn != NULL) {
            s->conn->session = NULL;
            s->conn = NULL;
        }
        session_destroy(s);
    }
    free(all);
    LMQ_ASSERT(b->session_count == 0 && lmq_map_count(b->sessions) == 0);
}
