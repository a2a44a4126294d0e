/*
 * Security events: what a client tried and was refused (bad credentials, ACL denials, session
 * quotas, the pipeline's refusals). Broker-wide: counted by kind in the broker's stats
 * (metrics.c exports them) and logged as one "security" line each. While the event stream is on,
 * each is also a security.<kind> event, at most [events] security_per_s a second: anyone can
 * cause them (a wrong password, a request without a token), and each recorded one is a row in
 * the store, so past the budget they are counted in one security.suppressed event per second
 * instead (docs/SECURITY.md).
 */
#include "events/events.h"
#include <stdio.h>
#include "broker/broker_internal.h"

/* [events] security_per_s counts events in windows of this length. */
#define SECURITY_WINDOW_MS 1000u

static const char *const security_event_names[SECURITY_EVENT_COUNT] = {
    [SECURITY_EVENT_BAD_TOKEN] = "bad_token",
    [SECURITY_EVENT_EXPIRED_TOKEN] = "expired_token",
    [SECURITY_EVENT_BAD_LOGIN] = "bad_login",
    [SECURITY_EVENT_REUSED_NONCE] = "reused_nonce",
    [SECURITY_EVENT_ACL_DENIED] = "acl_denied",
    [SECURITY_EVENT_BAD_SIGNATURE] = "bad_signature",
    [SECURITY_EVENT_NOT_SENDER] = "not_sender",
    [SECURITY_EVENT_REPLAY] = "replay",
    [SECURITY_EVENT_RATE_LIMITED] = "rate_limited",
    [SECURITY_EVENT_ANONYMOUS_REFUSED] = "anonymous_refused",
    [SECURITY_EVENT_BAD_PASSWORD] = "bad_password",
    [SECURITY_EVENT_SESSION_QUOTA] = "session_quota",
    [SECURITY_EVENT_SESSION_OWNER] = "session_owner",
    [SECURITY_EVENT_REVOKED_TOKEN] = "revoked_token",
    [SECURITY_EVENT_LEDGER_QUOTA] = "ledger_quota",
    [SECURITY_EVENT_ADMIN_DENIED] = "admin_denied",
};
_Static_assert(SECURITY_EVENT_COUNT <= 32, "struct broker counts at most 32 security events");

const char *security_event_name(enum security_event kind)
{
    LMQ_ASSERT(kind < SECURITY_EVENT_COUNT);
    return security_event_names[kind];
}

/* Closes the recording window when a second has passed since it opened: the events it did not
 * record become one security.suppressed event. */
static void security_window_roll(struct broker *b, uint64_t now_ms)
{
    if (now_ms - b->security_window_ms < SECURITY_WINDOW_MS)
        return;
    if (b->security_window_suppressed > 0)
        events_emit(b, "security.suppressed",
                    json_pack("{s:I,s:I,s:I}", "count", (json_int_t)b->security_window_suppressed,
                              "since_ms", (json_int_t)b->security_window_unix_ms, "limit_per_s",
                              (json_int_t)b->cfg.events_security_per_s));
    b->security_window_ms = now_ms;
    b->security_window_unix_ms = clock_unix_ms(b);
    b->security_window_recorded = 0;
    b->security_window_suppressed = 0;
}

bool security_event_record_allowed(struct broker *b)
{
    if (!events_on(b))
        return false;
    security_window_roll(b, clock_now_ms(b));
    if (b->security_window_recorded < b->cfg.events_security_per_s) {
        b->security_window_recorded++;
        return true;
    }
    b->security_window_suppressed++;
    b->security_suppressed_total++;
    return false;
}

void security_events_tick(struct broker *b)
{
    if (events_on(b))
        security_window_roll(b, clock_now_ms(b));
}

void security_event(struct broker *b, struct conn *c, enum security_event kind, const char *detail)
{
    LMQ_ASSERT(b != NULL && kind < SECURITY_EVENT_COUNT);
    b->security_events[kind]++;
    if (security_event_record_allowed(b)) {
        char type[LMQ_EVENT_TYPE_MAX_CHARS + 1];
        snprintf(type, sizeof(type), "security.%s", security_event_names[kind]);
        events_emit(b, type,
                    json_pack("{s:s,s:o,s:o,s:o}", "kind", security_event_names[kind], "detail",
                              detail != NULL ? json_string(detail) : json_null(), "remote",
                              c != NULL ? json_string(c->remote) : json_null(), "identity",
                              c != NULL && c->identity[0] != '\0' ? json_string(c->identity)
                                                                  : json_null()));
    }
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_WARN, "security"))
        return;
    lmq_log_str(&line, "kind", security_event_names[kind]);
    if (c != NULL) {
        lmq_log_uint(&line, "conn", c->id);
        lmq_log_str(&line, "remote", c->remote);
        if (c->identity[0] != '\0')
            lmq_log_str(&line, "identity", c->identity);
        /* The name ACL rules and the password file know the client by; "" when anonymous. */
        lmq_log_strn(&line, "user", (const uint8_t *)c->user, c->user_len);
        if (c->session != NULL)
            lmq_log_strn(&line, "client_id", c->session->client_id, c->session->client_id_len);
    }
    if (detail != NULL)
        lmq_log_str(&line, "detail", detail);
    lmq_log_end(&line);
}
