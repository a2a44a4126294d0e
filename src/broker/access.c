/*
 * The password file and the ACL file ([auth] password_file, acl_file): loading, SIGHUP reload,
 * the CONNECT password check and the topic permissions outside id/.
 *
 * A password check derives an scrypt key (tens of milliseconds and megabytes by design), so it
 * runs on libuv's thread pool: the CONNECT handler copies what the check needs, pauses the
 * connection's input with the CONNECT still unconsumed and returns PROTO_PAUSED; when the hash
 * is done the loop records the verdict on the connection and resumes its input, and the
 * CONNECT is handled again from the start with the verdict at hand. The work item holds a
 * reference on the connection, so a connection closed meanwhile (connect timeout, shutdown,
 * peer gone) stays allocated until the check returns and is then just released.
 *
 * Which CONNECT gets a check when, and which address is backing off after bad passwords, is
 * access_guard.c's: one address can hold only its share of the slots.
 *
 * The ACL follows mosquitto (mqtt_acl.h): every SUBSCRIBE is granted and each delivery outside
 * id/ is checked as a read of its topic. So that a session whose subscriptions can only
 * deliver what it may read pays nothing per message, each session keeps whether one of its
 * subscriptions may deliver an unreadable topic (acl_partial, for the ACL of generation
 * acl_gen): only such a session's deliveries are checked one by one.
 */
#include "broker/broker_internal.h"

#include <string.h>

#include <openssl/crypto.h>

/* Checked for an unknown user so that a refusal takes as long whether or not the user exists:
 * the hash of a random password nobody kept, with the default parameters. */
static const char access_dummy_hash[] = "$scrypt$N=32768,r=8,p=1$7RJLesJil0shV8F62aTXXA==$"
                                        "nACVEUZ1tGglap01/6O/rPyKXm4tfgTdbvzpPdPkVGg=";

/* Topic text put into a security event's detail. */
#define ACCESS_DETAIL_TOPIC_MAX_BYTES 128

struct access_check {
    uv_work_t req;
    struct conn *conn;                /* holds a reference */
    struct access_guard_entry *guard; /* its address's share, given back when done */
    bool known_user;
    bool match; /* written by the worker thread, read after it is done */
    size_t password_len;
    char hash[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    uint8_t password[CRYPTO_PASSWD_PASSWORD_MAX_BYTES];
};

int access_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->passwd == NULL && b->acl == NULL);
    const struct lmq_auth_config *a = &b->cfg.auth;
    char err[512];
    if (access_guard_init(b) != LMQ_OK) {
        lmq_log_msg(LMQ_LOG_ERROR, "start_failed", "out of memory");
        return LMQ_ENOMEM;
    }
    if (a->password_file[0] != '\0' &&
        crypto_passwd_file_load(a->password_file, &b->passwd, err, sizeof(err)) != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "password file %s", err);
        return LMQ_EINVAL;
    }
    if (a->acl_file[0] != '\0' && mqtt_acl_load(a->acl_file, &b->acl, err, sizeof(err)) != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "ACL file %s", err);
        return LMQ_EINVAL;
    }
    b->acl_gen = 1; /* sessions start at 0: their first delivery looks at their subscriptions */
    LMQ_ASSERT((b->passwd != NULL) == (a->password_file[0] != '\0'));
    return LMQ_OK;
}

void access_destroy(struct broker *b)
{
    LMQ_ASSERT(b != NULL);
    LMQ_ASSERT(b->password_checks == 0); /* the loop ran until every check came back */
    access_guard_destroy(b);
    crypto_passwd_file_free(b->passwd);
    b->passwd = NULL;
    mqtt_acl_free(b->acl);
    b->acl = NULL;
}

static void access_log_reload(const char *event, const char *path, const char *what, size_t count)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, event))
        return;
    lmq_log_str(&line, "file", path);
    lmq_log_uint(&line, what, count);
    lmq_log_end(&line);
}

void access_reload(struct broker *b)
{
    LMQ_ASSERT(b != NULL);
    const struct lmq_auth_config *a = &b->cfg.auth;
    char err[512];
    if (a->password_file[0] != '\0') {
        struct crypto_passwd_file *fresh = NULL;
        if (crypto_passwd_file_load(a->password_file, &fresh, err, sizeof(err)) != LMQ_OK) {
            lmq_log_msg(LMQ_LOG_ERROR, "passwd_reload_failed", err);
        } else {
            /* Checks in flight copied their hash: the old file can go now. */
            crypto_passwd_file_free(b->passwd);
            b->passwd = fresh;
            access_log_reload("passwd_reloaded", a->password_file, "users",
                              crypto_passwd_file_count(fresh));
        }
    }
    if (a->acl_file[0] != '\0') {
        struct mqtt_acl *fresh = NULL;
        if (mqtt_acl_load(a->acl_file, &fresh, err, sizeof(err)) != LMQ_OK) {
            lmq_log_msg(LMQ_LOG_ERROR, "acl_reload_failed", err);
        } else {
            mqtt_acl_free(b->acl);
            b->acl = fresh;
            b->acl_gen++; /* every session's subscriptions are looked at again */
            access_log_reload("acl_reloaded", a->acl_file, "rules", mqtt_acl_rule_count(fresh));
        }
    }
}

/* Thread pool: the slow part. Touches only the work item. */
static void access_check_work(uv_work_t *req)
{
    struct access_check *w = req->data;
    bool match = false;
    int rc = crypto_passwd_verify(w->hash, strlen(w->hash), w->password, w->password_len, &match);
    w->match = rc == LMQ_OK && match && w->known_user;
    OPENSSL_cleanse(w->password, sizeof(w->password));
}

/* Loop thread: records the verdict and hands the CONNECT in again. */
static void access_check_done(uv_work_t *req, int status)
{
    struct access_check *w = req->data;
    struct conn *c = w->conn;
    struct broker *b = c->broker;
    LMQ_ASSERT(b->password_checks > 0);
    LMQ_ASSERT(c->password_state == CONN_PASSWORD_PENDING);
    b->password_checks--;
    bool passed = status == 0 && w->match;
    c->password_state = passed ? CONN_PASSWORD_PASSED : CONN_PASSWORD_FAILED;
    if (c->state == CONN_AWAIT_CONNECT && !uv_is_closing((uv_handle_t *)&c->tcp))
        conn_resume(c);
    struct access_guard_entry *guard = w->guard;
    OPENSSL_cleanse(w, sizeof(*w));
    free(w);
    access_guard_done(b, guard, c, passed); /* may start waiting CONNECTs' checks */
    conn_unref(c);
}

/* Sets *reason to reason_code and returns PROTO_REFUSE_CONNECT. */
static enum proto_result access_refuse(uint8_t *reason, uint8_t reason_code)
{
    LMQ_ASSERT(reason_code >= 0x80);
    *reason = reason_code;
    return PROTO_REFUSE_CONNECT;
}

/* Queues the hash for c's CONNECT. Returns PROTO_PAUSED or PROTO_REFUSE_CONNECT (*reason). */
static enum proto_result access_password_start(struct conn *c, const struct mqtt_connect *cn,
                                               uint8_t *reason)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(b->passwd != NULL && c->password_state == CONN_PASSWORD_NONE);
    const uint8_t *user = cn->username.data;
    size_t user_len = cn->username.len;
    if (!cn->has_password || cn->password.len > CRYPTO_PASSWD_PASSWORD_MAX_BYTES ||
        user_len > CRYPTO_PASSWD_USER_MAX_BYTES) {
        /* Nothing to hash, or no such user can exist: refused without the wait. The event names
         * the user tried when it fits (a longer one is named by its first bytes). */
        size_t shown = LMQ_MIN(user_len, (size_t)CRYPTO_PASSWD_USER_MAX_BYTES);
        if (shown > 0)
            memcpy(c->user, user, shown);
        c->user[shown] = '\0';
        c->user_len = shown;
        security_event(b, c, SECURITY_EVENT_BAD_PASSWORD, "no usable user or password");
        c->user[0] = '\0';
        c->user_len = 0;
        return access_refuse(reason, MQTT_RC_BAD_USER_NAME_OR_PASSWORD);
    }
    struct access_guard_entry *guard = NULL;
    enum access_guard_verdict verdict = access_guard_enter(b, c, &guard, reason);
    if (verdict == ACCESS_GUARD_WAIT)
        return PROTO_PAUSED; /* resumed, and handled again, when a slot is free */
    if (verdict == ACCESS_GUARD_REFUSE)
        return PROTO_REFUSE_CONNECT; /* *reason set and logged by the guard */
    LMQ_ASSERT(verdict == ACCESS_GUARD_RUN);
    LMQ_ASSERT(guard != NULL && b->password_checks < ACCESS_PASSWORD_CHECKS_MAX);
    struct access_check *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        access_guard_cancel(b, guard); /* not the client's failure */
        return access_refuse(reason, MQTT_RC_SERVER_UNAVAILABLE);
    }
    w->guard = guard;
    const char *hash = crypto_passwd_file_lookup(b->passwd, user, user_len);
    w->known_user = hash != NULL;
    snprintf(w->hash, sizeof(w->hash), "%s", hash != NULL ? hash : access_dummy_hash);
    memcpy(w->password, cn->password.data, cn->password.len);
    w->password_len = cn->password.len;
    w->conn = c;
    w->req.data = w;
    if (uv_queue_work(&b->loop, &w->req, access_check_work, access_check_done) != 0) {
        OPENSSL_cleanse(w, sizeof(*w));
        free(w);
        access_guard_cancel(b, guard);
        return access_refuse(reason, MQTT_RC_SERVER_UNAVAILABLE);
    }
    conn_ref(c);
    b->password_checks++;
    c->password_state = CONN_PASSWORD_PENDING;
    memcpy(c->user, user, user_len);
    c->user[user_len] = '\0';
    c->user_len = user_len;
    return PROTO_PAUSED;
}

enum proto_result access_password(struct conn *c, const struct mqtt_connect *cn, uint8_t *reason)
{
    LMQ_ASSERT(c != NULL && cn != NULL && cn->has_username && reason != NULL);
    switch (c->password_state) {
    case CONN_PASSWORD_NONE:
        return access_password_start(c, cn, reason);
    case CONN_PASSWORD_PASSED:
        /* The same CONNECT bytes again: the user name checked is this one. */
        LMQ_ASSERT(c->user_len == cn->username.len &&
                   memcmp(c->user, cn->username.data, c->user_len) == 0);
        return PROTO_OK;
    case CONN_PASSWORD_FAILED:
        security_event(c->broker, c, SECURITY_EVENT_BAD_PASSWORD, c->user);
        c->user[0] = '\0';
        c->user_len = 0;
        return access_refuse(reason, MQTT_RC_BAD_USER_NAME_OR_PASSWORD);
    case CONN_PASSWORD_PENDING:
        break;
    }
    LMQ_UNREACHABLE("a CONNECT handled while its password check is pending");
}

/* Logs the denial with what was asked for (the topic cut to a readable length). */
static void access_denied(struct conn *c, const char *what, const uint8_t *topic, size_t len)
{
    char detail[ACCESS_DETAIL_TOPIC_MAX_BYTES + 16];
    int shown = (int)LMQ_MIN(len, ACCESS_DETAIL_TOPIC_MAX_BYTES);
    snprintf(detail, sizeof(detail), "%s %.*s", what, shown, (const char *)topic);
    security_event(c->broker, c, SECURITY_EVENT_ACL_DENIED, detail);
}

bool access_may_publish(struct conn *c, const uint8_t *client_id, size_t client_id_len,
                        const uint8_t *topic, size_t len)
{
    LMQ_ASSERT(c != NULL && (topic != NULL || len == 0));
    const struct mqtt_acl *acl = c->broker->acl;
    if (acl == NULL)
        return true;
    struct mqtt_acl_client who = {(const uint8_t *)c->user, c->user_len, client_id, client_id_len};
    if (mqtt_acl_may_publish(acl, &who, topic, len))
        return true;
    access_denied(c, "publish", topic, len);
    return false;
}

/*
 * Who the ACL knows s's deliveries are for: its owner (session_principal) names the user, and
 * the session stays with that principal. False for an owner not yet recorded (a row of an
 * older build, until its principal resumes it): nothing is known to be readable for it.
 */
static bool access_session_who(const struct session *s, struct mqtt_acl_client *who)
{
    const char *o = s->owner, *user = NULL;
    if (strncmp(o, "user:", 5) == 0)
        user = o + 5;
    else if (strncmp(o, "cn:", 3) == 0)
        user = o + 3;
    else if (strcmp(o, SESSION_OWNER_ANONYMOUS) == 0)
        user = "";
    else if (strlen(o) == CRYPTO_IDENTITY_ID_CHARS)
        user = o; /* an identity: its id */
    if (user == NULL)
        return false;
    *who = (struct mqtt_acl_client){(const uint8_t *)user, strlen(user), s->client_id,
                                    s->client_id_len};
    return true;
}

/* Whether s has a subscription (outside id/) that may deliver a topic it may not read. */
static bool access_session_partial(const struct session *s, const struct mqtt_acl_client *who)
{
    const struct mqtt_acl *acl = s->broker->acl;
    size_t guard = s->sub_count + 1;
    for (const struct list_node *n = s->subs.next; n != &s->subs && guard-- > 0; n = n->next) {
        const struct session_sub *sub = list_entry(n, struct session_sub, link);
        const uint8_t *filter = sub->text + sub->group_len;
        if (!pipeline_under_id(filter, sub->filter_len) &&
            !mqtt_acl_reads_all(acl, who, filter, sub->filter_len))
            return true;
    }
    return false;
}

void access_subscribed(struct session *s, const uint8_t *filter, size_t len)
{
    LMQ_ASSERT(s != NULL && filter != NULL && len > 0);
    struct broker *b = s->broker;
    struct mqtt_acl_client who;
    if (b->acl == NULL || s->acl_gen != b->acl_gen || s->acl_partial)
        return; /* no ACL, or the next delivery looks at every subscription anyway */
    if (!access_session_who(s, &who) || !mqtt_acl_reads_all(b->acl, &who, filter, len))
        s->acl_partial = true;
}

bool access_may_deliver(struct session *s, const uint8_t *topic, size_t len)
{
    LMQ_ASSERT(s != NULL && (topic != NULL || len == 0));
    struct broker *b = s->broker;
    if (b->acl == NULL || pipeline_under_id(topic, len))
        return true; /* under id/ the identity rules decide (route.c, retain.c) */
    struct mqtt_acl_client who;
    if (!access_session_who(s, &who))
        return false;
    if (s->acl_gen != b->acl_gen) {
        s->acl_partial = access_session_partial(s, &who);
        s->acl_gen = b->acl_gen;
    }
    return !s->acl_partial || mqtt_acl_may_read(b->acl, &who, topic, len);
}
