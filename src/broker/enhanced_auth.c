/*
 * MQTT 5 enhanced authentication with the method "ledgermq-ed25519" (docs/PROTOCOL.md "Login
 * over MQTT"): an identity proves its Ed25519 key in band, without the HTTP login.
 *
 *   CONNECT   Authentication Method "ledgermq-ed25519", Authentication Data = the raw 32-byte
 *             public key (the identity is hex(SHA-256(key)))
 *   AUTH 0x18 from the server: Authentication Data = a 32-byte nonce
 *   AUTH 0x18 from the client: Authentication Data = the 64-byte signature of
 *             crypto_mqtt_auth_message(server id, nonce, client id)
 *   CONNACK   0x00 with the method; or 0x87 / 0x86 / 0x8C / 0x82 / 0x89 with a reason string
 *
 * Re-authentication on a live connection: AUTH 0x19 from the client, AUTH 0x18 (nonce), AUTH
 * 0x18 (signature), AUTH 0x00; success gives the connection [auth] token_ttl_s more, as a new
 * token would. A CONNECT may also carry a login token (user name = id, password = token) with
 * the method and key: it connects at once, and may re-authenticate in band later.
 *
 * The nonces are login challenges (pipeline_nonce.c), counted under the connection's address with
 * the HTTP ones: the same per-address, per-key and overall caps, evictions and expiry. While a
 * CONNECT waits for its signature it is kept re-encoded (at most max_packet_size bytes, as a
 * half-received CONNECT would be) and connect_timeout_ms bounds the whole exchange.
 */
#include "broker/broker_internal.h"

#include <string.h>

#include "crypto/encoding.h"
#include "crypto/mqtt_auth.h"

enum enhanced_auth_phase {
    EAUTH_IDLE = 0,     /* the method is in use, no exchange running */
    EAUTH_CONNECT_WAIT, /* the CONNECT was challenged: waiting for the client's AUTH 0x18 */
    EAUTH_CONNECT_DONE, /* its signature verified: the saved CONNECT runs again */
    EAUTH_REAUTH_WAIT,  /* a re-authentication was challenged */
};

struct enhanced_auth {
    enum enhanced_auth_phase phase;
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES]; /* the key the connection proves (its identity's) */
    char nonce[PIPELINE_NONCE_CHARS + 1];  /* the challenge outstanding; "" when none */
    uint8_t *connect;                      /* CONNECT_WAIT: the CONNECT, encoded again */
    size_t connect_len;
};

#define EAUTH_METHOD_BYTES (sizeof(CRYPTO_MQTT_AUTH_METHOD) - 1)

static bool eauth_method_ours(const struct mqtt_props *p)
{
    return (p->present & MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD)) &&
           p->authentication_method.len == EAUTH_METHOD_BYTES &&
           memcmp(p->authentication_method.data, CRYPTO_MQTT_AUTH_METHOD, EAUTH_METHOD_BYTES) == 0;
}

static bool eauth_data(const struct mqtt_props *p, size_t len)
{
    return (p->present & MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA)) &&
           p->authentication_data.len == len;
}

/* Drops the outstanding challenge, if any (it can't be answered any more). */
static void eauth_drop_nonce(struct conn *c)
{
    struct enhanced_auth *ea = c->eauth;
    if (ea->nonce[0] == '\0')
        return;
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    (void)pipeline_nonce_take(c->broker, ea->nonce, PIPELINE_NONCE_CHARS, PIPELINE_NONCE_MQTT, pub);
    ea->nonce[0] = '\0';
}

void enhanced_auth_free(struct conn *c)
{
    struct enhanced_auth *ea = c->eauth;
    if (ea == NULL)
        return;
    eauth_drop_nonce(c);
    free(ea->connect);
    free(ea);
    c->eauth = NULL;
}

bool enhanced_auth_pending(const struct conn *c)
{
    return c->eauth != NULL && c->eauth->phase == EAUTH_CONNECT_WAIT;
}

void enhanced_auth_connack(const struct conn *c, struct mqtt_props *ack)
{
    if (c->eauth == NULL)
        return;
    LMQ_ASSERT(c->eauth->phase == EAUTH_IDLE && c->identity[0] != '\0');
    ack->present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
    ack->authentication_method =
        (struct lmq_bytes){(const uint8_t *)CRYPTO_MQTT_AUTH_METHOD, EAUTH_METHOD_BYTES};
}

/* Refuses the CONNECT: CONNACK reason_code with why as its Reason String, then close. Returns
 * PROTO_AUTH_HANDLED. */
static enum proto_result eauth_refuse(struct conn *c, uint8_t reason_code, const char *why)
{
    LMQ_ASSERT(c->state == CONN_AWAIT_CONNECT && c->version == MQTT_V5);
    LMQ_ASSERT(reason_code >= 0x80 && why != NULL);
    if (c->eauth != NULL) {
        eauth_drop_nonce(c);
        c->eauth->phase = EAUTH_IDLE;
    }
    conn_log_refused(c, reason_code, why);
    struct mqtt_packet pkt = {.type = MQTT_CONNACK};
    pkt.u.connack.reason_code = reason_code;
    pkt.u.connack.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    pkt.u.connack.props.reason_string = (struct lmq_bytes){(const uint8_t *)why, strlen(why)};
    (void)conn_send(c, &pkt);
    conn_state_set(c, CONN_CLOSING);
    if (conn_output_pending(c) == 0)
        conn_close(c);
    return PROTO_AUTH_HANDLED;
}

/* Sends AUTH reason_code with the method and, when data is not NULL, Authentication Data. */
static void eauth_send(struct conn *c, uint8_t reason_code, const uint8_t *data, size_t len)
{
    struct mqtt_packet pkt = {.type = MQTT_AUTH};
    struct mqtt_props *p = &pkt.u.disconnect.props;
    pkt.u.disconnect.reason_code = reason_code;
    p->present = MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
    p->authentication_method =
        (struct lmq_bytes){(const uint8_t *)CRYPTO_MQTT_AUTH_METHOD, EAUTH_METHOD_BYTES};
    if (data != NULL) {
        p->present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
        p->authentication_data = (struct lmq_bytes){data, len};
    }
    (void)conn_send(c, &pkt);
}

/* Issues a challenge for the connection's key and sends it (AUTH 0x18). 0 or LMQ_ENOMEM. */
static int eauth_challenge(struct conn *c)
{
    struct enhanced_auth *ea = c->eauth;
    LMQ_ASSERT(ea != NULL && ea->nonce[0] == '\0');
    uint8_t nonce[CRYPTO_MQTT_AUTH_NONCE_BYTES];
    size_t n = 0;
    if (pipeline_nonce_issue_conn(c->broker, c, ea->pub, ea->nonce) != LMQ_OK)
        return LMQ_ENOMEM;
    LMQ_ASSERT(strlen(ea->nonce) == PIPELINE_NONCE_CHARS);
    int rc = crypto_b64url_decode(ea->nonce, PIPELINE_NONCE_CHARS, nonce, sizeof(nonce), &n);
    LMQ_ASSERT(rc == LMQ_OK && n == sizeof(nonce));
    eauth_send(c, MQTT_RC_CONTINUE_AUTHENTICATION, nonce, sizeof(nonce));
    conn_log(c, LMQ_LOG_DEBUG, "auth_challenge", ea->phase == EAUTH_REAUTH_WAIT ? "reauth" : NULL);
    return LMQ_OK;
}

/*
 * Checks the client's AUTH 0x18 (d) against the outstanding challenge, which is consumed
 * whatever the outcome (one attempt each). On success the connection is the key's identity for
 * [auth] token_ttl_s from now (c->identity, c->user and the token times, as pipeline_tokens.c sets
 * them for a token issued now). Otherwise the reason code, *why for the peer, a security event.
 */
static uint8_t eauth_verify(struct conn *c, const struct mqtt_disconnect *d,
                            struct lmq_bytes client_id, const char **why)
{
    struct broker *b = c->broker;
    struct enhanced_auth *ea = c->eauth;
    LMQ_ASSERT(ea != NULL && ea->nonce[0] != '\0');
    uint8_t issued_to[CRYPTO_ED25519_PUB_BYTES];
    char text[PIPELINE_NONCE_CHARS + 1];
    memcpy(text, ea->nonce, sizeof(text));
    ea->nonce[0] = '\0';
    if (!pipeline_nonce_take(b, text, PIPELINE_NONCE_CHARS, PIPELINE_NONCE_MQTT, issued_to)) {
        /* Expired (PIPELINE_NONCE_TTL_MS) or evicted by newer challenges from the same address. */
        security_event(b, c, SECURITY_EVENT_REUSED_NONCE, "mqtt: challenge expired");
        *why = "challenge expired or evicted: authenticate again";
        return MQTT_RC_NOT_AUTHORIZED;
    }
    LMQ_ASSERT(memcmp(issued_to, ea->pub, sizeof(issued_to)) == 0);
    if (!eauth_data(&d->props, CRYPTO_ED25519_SIG_BYTES)) {
        security_event(b, c, SECURITY_EVENT_BAD_LOGIN, "mqtt: no 64-byte signature");
        *why = "Authentication Data must be the 64-byte Ed25519 signature";
        return MQTT_RC_NOT_AUTHORIZED;
    }
    uint8_t nonce[CRYPTO_MQTT_AUTH_NONCE_BYTES];
    size_t n = 0;
    int rc = crypto_b64url_decode(text, PIPELINE_NONCE_CHARS, nonce, sizeof(nonce), &n);
    LMQ_ASSERT(rc == LMQ_OK && n == sizeof(nonce));
    if (!crypto_mqtt_auth_verify(ea->pub, pipeline_server_id(b), nonce, client_id.data,
                                 client_id.len, d->props.authentication_data.data)) {
        security_event(b, c, SECURITY_EVENT_BAD_LOGIN, "mqtt: bad signature");
        *why = "bad signature";
        return MQTT_RC_NOT_AUTHORIZED;
    }
    char id[CRYPTO_IDENTITY_ID_BYTES];
    if (crypto_identity_id(ea->pub, id) != LMQ_OK) {
        *why = "out of memory";
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    }
    int64_t now_s = clock_unix_ms(b) / 1000;
    if (now_s < pipeline_tokens_revoked_before(b, id)) {
        /* As POST /auth/token answers 503 then: a login now would count as revoked. */
        *why = "tokens revoked this second: retry in 1 s";
        return MQTT_RC_SERVER_BUSY;
    }
    LMQ_ASSERT(c->identity[0] == '\0' || memcmp(c->identity, id, CRYPTO_IDENTITY_ID_BYTES) == 0);
    memcpy(c->identity, id, CRYPTO_IDENTITY_ID_BYTES);
    LMQ_ASSERT(CRYPTO_IDENTITY_ID_CHARS < sizeof(c->user));
    memcpy(c->user, id, CRYPTO_IDENTITY_ID_BYTES);
    c->user_len = CRYPTO_IDENTITY_ID_CHARS;
    c->token_iat_s = now_s;
    c->token_exp_s = now_s + (int64_t)b->cfg.auth.token_ttl_s;
    return MQTT_RC_SUCCESS;
}

static void eauth_log_login(struct conn *c, const char *event)
{
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, event)) {
        lmq_log_uint(&line, "conn", c->id);
        lmq_log_str(&line, "identity", c->identity);
        lmq_log_str(&line, "method", CRYPTO_MQTT_AUTH_METHOD);
        lmq_log_uint(&line, "exp", (uint64_t)c->token_exp_s);
        lmq_log_end(&line);
    }
}

/* A CONNECT with the method and a login token: the token logs in, the key must be its.
 * PROTO_OK or PROTO_AUTH_HANDLED (refused). */
static enum proto_result eauth_connect_token(struct conn *c, const struct mqtt_connect *cn)
{
    LMQ_ASSERT(c->eauth != NULL && c->eauth->phase == EAUTH_IDLE);
    LMQ_ASSERT(cn->has_username && c->identity[0] == '\0');
    uint8_t rc = pipeline_tokens_authenticate(c, cn); /* logs its security event */
    if (rc != MQTT_RC_SUCCESS)
        return eauth_refuse(c, rc, "bad, expired or revoked token");
    char id[CRYPTO_IDENTITY_ID_BYTES];
    if (crypto_identity_id(c->eauth->pub, id) != LMQ_OK)
        return eauth_refuse(c, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR, "out of memory");
    if (memcmp(id, c->identity, CRYPTO_IDENTITY_ID_BYTES) != 0) {
        security_event(c->broker, c, SECURITY_EVENT_BAD_TOKEN,
                       "mqtt: Authentication Data is not the token's key");
        return eauth_refuse(c, MQTT_RC_BAD_USER_NAME_OR_PASSWORD,
                            "Authentication Data is not the key of the token's identity");
    }
    return PROTO_OK;
}

enum proto_result enhanced_auth_connect(struct conn *c, const struct mqtt_packet *pkt)
{
    LMQ_ASSERT(pkt->type == MQTT_CONNECT && c->state == CONN_AWAIT_CONNECT);
    const struct mqtt_connect *cn = &pkt->u.connect;
    struct enhanced_auth *ea = c->eauth;
    if (ea != NULL) {
        /* The CONNECT again, after its signature was verified (eauth_connect_answer). */
        LMQ_ASSERT(ea->phase == EAUTH_CONNECT_DONE && c->identity[0] != '\0');
        ea->phase = EAUTH_IDLE;
        return PROTO_OK;
    }
    LMQ_ASSERT(cn->protocol_version == MQTT_V5); /* only MQTT 5 has properties */
    const struct mqtt_props *p = &cn->props;
    if (!(p->present & MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD)))
        return eauth_refuse(c, MQTT_RC_PROTOCOL_ERROR,
                            "Authentication Data without Authentication Method");
    if (!eauth_method_ours(p))
        return eauth_refuse(c, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                            "unsupported Authentication Method (supported: " CRYPTO_MQTT_AUTH_METHOD
                            ")");
    if (!eauth_data(p, CRYPTO_ED25519_PUB_BYTES)) {
        security_event(c->broker, c, SECURITY_EVENT_BAD_LOGIN, "mqtt: no 32-byte public key");
        return eauth_refuse(c, MQTT_RC_NOT_AUTHORIZED,
                            "Authentication Data must be the 32-byte Ed25519 public key");
    }
    if (cn->has_password && !cn->has_username)
        return eauth_refuse(c, MQTT_RC_BAD_USER_NAME_OR_PASSWORD,
                            "a password (token) needs the user name (identity id)");
    ea = calloc(1, sizeof(*ea));
    if (ea == NULL)
        return eauth_refuse(c, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR, "out of memory");
    c->eauth = ea;
    memcpy(ea->pub, p->authentication_data.data, CRYPTO_ED25519_PUB_BYTES);
    if (cn->has_username)
        return eauth_connect_token(c, cn);
    /* Challenge: keep the CONNECT until the answer (re-encoded: its bytes in the input buffer
     * are consumed once this returns). */
    size_t size = 0;
    if (mqtt_encoded_size(pkt, MQTT_V5, &size) != LMQ_OK || (ea->connect = malloc(size)) == NULL ||
        mqtt_encode(pkt, MQTT_V5, ea->connect, size, &ea->connect_len) != LMQ_OK ||
        eauth_challenge(c) != LMQ_OK)
        return eauth_refuse(c, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR, "out of memory");
    LMQ_ASSERT(ea->connect_len == size);
    ea->phase = EAUTH_CONNECT_WAIT;
    return PROTO_AUTH_HANDLED;
}

/* Checks a packet that came while the CONNECT waits: only the client's AUTH 0x18 with the
 * method may come now (MQTT-3.1.2-30, MQTT-4.12.0-5); then its signature (eauth_verify). The
 * saved CONNECT is decoded into *saved. MQTT_RC_SUCCESS or the CONNACK reason code and *why. */
static uint8_t eauth_answer_check(struct conn *c, const struct mqtt_packet *pkt,
                                  struct mqtt_packet *saved, const char **why)
{
    struct enhanced_auth *ea = c->eauth;
    LMQ_ASSERT(ea != NULL && ea->phase == EAUTH_CONNECT_WAIT && ea->nonce[0] != '\0');
    const struct mqtt_disconnect *d = &pkt->u.disconnect;
    *why = NULL;
    if (pkt->type != MQTT_AUTH)
        *why = "only AUTH may answer AUTH before CONNACK";
    else if (!eauth_method_ours(&d->props))
        *why = "AUTH without the CONNECT's Authentication Method";
    else if (d->reason_code != MQTT_RC_CONTINUE_AUTHENTICATION)
        *why = "expected AUTH 0x18 (Continue authentication)";
    if (*why != NULL) {
        conn_log(c, LMQ_LOG_INFO, "protocol_error", *why);
        return MQTT_RC_PROTOCOL_ERROR;
    }
    uint8_t reason = 0;
    if (mqtt_decode(ea->connect, ea->connect_len, MQTT_V5, saved, &reason) != LMQ_OK) {
        /* Our own encoding of a CONNECT we decoded: a codec disagreement, not the client's. */
        conn_log(c, LMQ_LOG_ERROR, "auth_connect_lost", "saved CONNECT does not decode");
        *why = "internal error";
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    }
    return eauth_verify(c, d, saved->u.connect.client_id, why);
}

/* A packet while the CONNECT waits for its signature: a good one runs the saved CONNECT
 * again (its result is returned); anything else refuses it (DISCONNECT just ends the
 * connection). */
static enum proto_result eauth_connect_answer(struct conn *c, struct mqtt_packet *pkt,
                                              uint8_t *reason)
{
    struct enhanced_auth *ea = c->eauth;
    LMQ_ASSERT(ea->phase == EAUTH_CONNECT_WAIT && ea->connect != NULL);
    if (pkt->type == MQTT_DISCONNECT) {
        conn_log(c, LMQ_LOG_DEBUG, "client_disconnect", "during authentication");
        conn_close(c);
        return PROTO_OK;
    }
    struct mqtt_packet saved;
    const char *why = NULL;
    uint8_t rc = eauth_answer_check(c, pkt, &saved, &why);
    if (rc != MQTT_RC_SUCCESS) {
        (void)eauth_refuse(c, rc, why);
        return PROTO_OK;
    }
    ea->phase = EAUTH_CONNECT_DONE;
    eauth_log_login(c, "login");
    /* The saved bytes back the decoded CONNECT until the handler is done with it. */
    uint8_t *bytes = ea->connect;
    ea->connect = NULL;
    ea->connect_len = 0;
    conn_ref(c);
    enum proto_result result = proto_handle_packet(c, &saved, reason);
    conn_unref(c);
    free(bytes);
    return result;
}

/* AUTH on a connected client: re-authentication (MQTT 5 §4.12.1). PROTO_OK or
 * PROTO_DISCONNECT (*reason). */
static enum proto_result eauth_reauth(struct conn *c, const struct mqtt_disconnect *d,
                                      uint8_t *reason)
{
    LMQ_ASSERT(c->state == CONN_CONNECTED && c->session != NULL);
    struct enhanced_auth *ea = c->eauth;
    LMQ_ASSERT(ea == NULL || ea->phase == EAUTH_IDLE || ea->phase == EAUTH_REAUTH_WAIT);
    if (ea == NULL) {
        conn_log(c, LMQ_LOG_INFO, "protocol_error", "AUTH without an Authentication Method");
        return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR); /* MQTT-4.12.0-7 */
    }
    if (!eauth_method_ours(&d->props)) {
        conn_log(c, LMQ_LOG_INFO, "protocol_error", "AUTH with another Authentication Method");
        return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR); /* MQTT-4.12.1-1 */
    }
    if (d->reason_code == MQTT_RC_REAUTHENTICATE && ea->phase == EAUTH_IDLE) {
        /* The key may be named again; it can't change: the session belongs to its identity. */
        if ((d->props.present & MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA)) &&
            (d->props.authentication_data.len != CRYPTO_ED25519_PUB_BYTES ||
             memcmp(d->props.authentication_data.data, ea->pub, CRYPTO_ED25519_PUB_BYTES) != 0)) {
            security_event(c->broker, c, SECURITY_EVENT_BAD_LOGIN,
                           "mqtt: re-authentication with another key");
            return proto_disconnect_with(reason, MQTT_RC_NOT_AUTHORIZED);
        }
        ea->phase = EAUTH_REAUTH_WAIT;
        if (eauth_challenge(c) != LMQ_OK)
            return proto_disconnect_with(reason, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR);
        return PROTO_OK;
    }
    if (d->reason_code != MQTT_RC_CONTINUE_AUTHENTICATION || ea->phase != EAUTH_REAUTH_WAIT) {
        conn_log(c, LMQ_LOG_INFO, "protocol_error", "AUTH out of order");
        return proto_disconnect_with(reason, MQTT_RC_PROTOCOL_ERROR);
    }
    const char *why = NULL;
    struct session *s = c->session;
    struct lmq_bytes client_id = {s->client_id, s->client_id_len};
    uint8_t rc = eauth_verify(c, d, client_id, &why);
    LMQ_ASSERT(ea->nonce[0] == '\0'); /* consumed, whatever the outcome */
    ea->phase = EAUTH_IDLE;
    if (rc != MQTT_RC_SUCCESS) {
        conn_log(c, LMQ_LOG_INFO, "reauth_failed", why);
        return proto_disconnect_with(reason, rc); /* MQTT-4.12.1-2: disconnect */
    }
    eauth_send(c, MQTT_RC_SUCCESS, NULL, 0);
    conn_start_keepalive(c); /* re-arms the timer for the new end of the connection's life */
    eauth_log_login(c, "reauthenticated");
    return PROTO_OK;
}

enum proto_result enhanced_auth_packet(struct conn *c, struct mqtt_packet *pkt, uint8_t *reason)
{
    LMQ_ASSERT(c != NULL && pkt != NULL && reason != NULL);
    if (enhanced_auth_pending(c))
        return eauth_connect_answer(c, pkt, reason);
    LMQ_ASSERT(pkt->type == MQTT_AUTH && c->state == CONN_CONNECTED);
    return eauth_reauth(c, &pkt->u.disconnect, reason);
}
