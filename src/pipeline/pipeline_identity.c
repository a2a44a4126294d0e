/*
 * Identities: the server's own key, login (challenge, token), CONNECT authentication, topic
 * permissions for id/<id>/... (security events: src/broker/security.c).
 *
 * Login challenges are kept by pipeline_nonce.c (bounded per address, per key and in all).
 */
#include "pipeline/pipeline_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "crypto/encoding.h"
#include "crypto/jwt.h"
#include "ledger/envelope.h"
#include "net/http.h"

#define IDENTITY_AUTH_PREFIX "ledgermq-auth-v1:"
#define IDENTITY_PUB_CHARS 43
#define IDENTITY_SIG_CHARS 86
#define IDENTITY_ISSUER "ledgermq"
#define IDENTITY_KEY_FILE "server.key.json"

/* What the new key is for, where it is, and how a verifier will know it. */
static void pipeline_identity_log_created(const struct crypto_identity *key, const char *path)
{
    char pub[64];
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_INFO, "server_key_created"))
        return;
    lmq_log_str(&line, "msg",
                "new Ed25519 server key: it signs login tokens and ledger checkpoints; keep the "
                "file: another key makes issued tokens invalid and changes the checkpoint key");
    lmq_log_str(&line, "id", key->id);
    if (crypto_b64url_encode(key->pub, sizeof(key->pub), pub, sizeof(pub)) == LMQ_OK)
        lmq_log_str(&line, "pub", pub);
    lmq_log_str(&line, "path", path);
    lmq_log_end(&line);
}

int pipeline_identity_init(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    LMQ_ASSERT(b != NULL && b->pipeline != NULL);
    char path[LMQ_PATH_MAX_BYTES + 32];
    char err[512];
    int n = snprintf(path, sizeof(path), "%s/%s", b->cfg.data_dir, IDENTITY_KEY_FILE);
    if (n < 0 || (size_t)n >= sizeof(path))
        return LMQ_EINVAL;
    int rc = crypto_keyfile_load(path, &p->server_key, err, sizeof(err));
    if (rc == LMQ_ENOTFOUND) {
        /* First start: the server's identity signs tokens (and later checkpoints). */
        uint8_t seed[CRYPTO_ED25519_SEED_BYTES];
        uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
        rc = crypto_ed25519_generate(seed, pub);
        if (rc == LMQ_OK)
            rc = crypto_identity_from_seed(seed, &p->server_key);
        if (rc == LMQ_OK)
            rc = crypto_keyfile_save(path, &p->server_key, false, err, sizeof(err));
        if (rc == LMQ_OK)
            pipeline_identity_log_created(&p->server_key, path);
    }
    if (rc != LMQ_OK) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "server key %s: %s", path, err);
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}

/* Reads a string member of a JSON request body; NULL when absent or not a string. */
static const char *identity_json_str(json_t *obj, const char *key, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static bool identity_decode_pub(json_t *body, uint8_t pub[CRYPTO_ED25519_PUB_BYTES])
{
    size_t len = 0, n = 0;
    const char *text = identity_json_str(body, "pub", &len);
    return text != NULL && len == IDENTITY_PUB_CHARS &&
           crypto_b64url_decode(text, len, pub, CRYPTO_ED25519_PUB_BYTES, &n) == LMQ_OK &&
           n == CRYPTO_ED25519_PUB_BYTES;
}

static int identity_error(struct http_response *resp, struct lmq_buf *out, int status,
                          const char *reason)
{
    return http_error_json(resp, out, status, reason);
}

static int identity_time_json(struct broker *b, uint64_t delta_ms, char out[40])
{
    int64_t unix_ms = clock_unix_ms(b) + (int64_t)delta_ms;
    return ledger_envelope_format_time(unix_ms / 1000, (uint32_t)(unix_ms % 1000) * 1000000u, out);
}

static int identity_challenge(struct broker *b, const struct http_request *req, json_t *body,
                              struct http_response *resp, struct lmq_buf *out)
{
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    if (!identity_decode_pub(body, pub))
        return identity_error(resp, out, 400, "pub: expected a base64url Ed25519 public key");
    char nonce[PIPELINE_NONCE_CHARS + 1];
    struct sockaddr_storage client;
    if (pipeline_nonce_issue(b, broker_http_client(b, req, &client), pub, nonce) != LMQ_OK)
        return identity_error(resp, out, 500, "Internal Server Error");
    char expires[40];
    if (identity_time_json(b, PIPELINE_NONCE_TTL_MS, expires) != LMQ_OK)
        return LMQ_EINVAL;
    resp->content_type = "application/json";
    return http_body_printf(out, "{\"expires\":\"%s\",\"nonce\":\"%s\"}", expires, nonce);
}

/* Checks the login signature; consumes the nonce whatever the outcome (one attempt each). */
static int identity_token(struct broker *b, json_t *body, struct http_response *resp,
                          struct lmq_buf *out)
{
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES], sig[CRYPTO_ED25519_SIG_BYTES];
    size_t nonce_len = 0, sig_len = 0, n = 0;
    const char *nonce = identity_json_str(body, "nonce", &nonce_len);
    const char *sig_text = identity_json_str(body, "sig", &sig_len);
    /* Each field's fault named on its own: a client author fixes the one that is wrong. */
    if (!identity_decode_pub(body, pub))
        return identity_error(resp, out, 400, "pub: expected a base64url Ed25519 public key");
    if (nonce == NULL || nonce_len != PIPELINE_NONCE_CHARS)
        return identity_error(resp, out, 400, "nonce: expected the nonce of /auth/challenge");
    if (sig_text == NULL)
        return identity_error(resp, out, 400, "sig: missing");
    if (sig_len != IDENTITY_SIG_CHARS ||
        crypto_b64url_decode(sig_text, sig_len, sig, sizeof(sig), &n) != LMQ_OK || n != sizeof(sig))
        return identity_error(resp, out, 400,
                              "sig: malformed (expected a base64url Ed25519 signature, 86 "
                              "characters)");
    uint8_t issued_to[CRYPTO_ED25519_PUB_BYTES];
    if (!pipeline_nonce_take(b, nonce, nonce_len, PIPELINE_NONCE_HTTP, issued_to)) {
        security_event(b, NULL, SECURITY_EVENT_REUSED_NONCE, "unknown, used or expired");
        return identity_error(resp, out, 401, "unknown, used or expired nonce");
    }
    bool same_key = memcmp(issued_to, pub, sizeof(pub)) == 0;
    uint8_t msg[sizeof(IDENTITY_AUTH_PREFIX) - 1 + PIPELINE_NONCE_CHARS];
    memcpy(msg, IDENTITY_AUTH_PREFIX, sizeof(IDENTITY_AUTH_PREFIX) - 1);
    memcpy(msg + sizeof(IDENTITY_AUTH_PREFIX) - 1, nonce, PIPELINE_NONCE_CHARS);
    if (!same_key || !crypto_ed25519_verify(pub, msg, sizeof(msg), sig)) {
        security_event(b, NULL, SECURITY_EVENT_BAD_LOGIN,
                       same_key ? "bad signature" : "nonce issued to another key");
        return identity_error(resp, out, 401, "bad signature");
    }
    char id[CRYPTO_IDENTITY_ID_BYTES];
    char token[CRYPTO_JWT_MAX_BYTES], expires[40];
    size_t token_len = 0;
    int64_t now_s = clock_unix_ms(b) / 1000;
    uint32_t ttl_s = b->cfg.auth.token_ttl_s;
    if (crypto_identity_id(pub, id) != LMQ_OK)
        return identity_error(resp, out, 500, "Internal Server Error");
    if (now_s < pipeline_tokens_revoked_before(b, id)) {
        /* Its tokens were revoked this very second: one issued now would be refused. */
        resp->extra_headers = "Retry-After: 1\r\n";
        return identity_error(resp, out, 503, "tokens revoked this second: retry in 1 s");
    }
    if (crypto_jwt_create(b->pipeline->server_key.seed, id, IDENTITY_ISSUER, now_s, ttl_s, token,
                          sizeof(token), &token_len) != LMQ_OK ||
        identity_time_json(b, (uint64_t)ttl_s * 1000, expires) != LMQ_OK)
        return identity_error(resp, out, 500, "Internal Server Error");
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_INFO, "login")) {
        lmq_log_str(&line, "identity", id);
        lmq_log_end(&line);
    }
    resp->content_type = "application/json";
    return http_body_printf(out, "{\"expires\":\"%s\",\"id\":\"%s\",\"token\":\"%s\"}", expires, id,
                            token);
}

int pipeline_identity_http_route(struct broker *b, const struct http_request *req,
                                 struct http_response *resp, struct lmq_buf *out)
{
    struct pipeline *p = b->pipeline;
    LMQ_ASSERT(b != NULL && req != NULL);
    bool challenge = req->path_len == 15 && memcmp(req->path, "/auth/challenge", 15) == 0;
    bool token = req->path_len == 11 && memcmp(req->path, "/auth/token", 11) == 0;
    bool key = req->path_len == 9 && memcmp(req->path, "/auth/key", 9) == 0;
    if (req->path_len == 12 && memcmp(req->path, "/auth/revoke", 12) == 0)
        return pipeline_tokens_http_revoke(b, req, resp, out);
    if (!challenge && !token && !key) {
        resp->status = 404;
        return 0;
    }
    if (key) {
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            resp->status = 405;
            resp->allow = "GET, HEAD";
            return 0;
        }
        char pub[IDENTITY_PUB_CHARS + 1];
        if (crypto_b64url_encode(p->server_key.pub, sizeof(p->server_key.pub), pub, sizeof(pub)) !=
            LMQ_OK)
            return LMQ_EINVAL;
        resp->content_type = "application/json";
        return http_body_printf(out, "{\"alg\":\"EdDSA\",\"id\":\"%s\",\"pub\":\"%s\"}",
                                p->server_key.id, pub);
    }
    if (strcmp(req->method, "POST") != 0) {
        resp->status = 405;
        resp->allow = "POST";
        return 0;
    }
    json_error_t jerr;
    json_t *body = req->body_len > 0 ? json_loadb((const char *)req->body, req->body_len,
                                                  JSON_REJECT_DUPLICATES, &jerr)
                                     : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        return identity_error(resp, out, 400, "expected a JSON object");
    }
    int rc = challenge ? identity_challenge(b, req, body, resp, out)
                       : identity_token(b, body, resp, out);
    json_decref(body);
    return rc;
}

/* True for a connection from 127.0.0.0/8 or ::1 (IPv4-mapped included), unless it is a browser
 * page from an origin not allowed or came through a proxy from elsewhere (loopback_denied). */
static bool identity_loopback(const struct conn *c)
{
    if (c->loopback_denied)
        return false;
    return strncmp(c->remote, "127.", 4) == 0 || strncmp(c->remote, "::1:", 4) == 0 ||
           strcmp(c->remote, "::1") == 0 || strncmp(c->remote, "::ffff:127.", 11) == 0;
}

/* The name ACL rules know c by (see struct conn). */
static void identity_set_user(struct conn *c, const char *name)
{
    size_t len = strlen(name);
    LMQ_ASSERT(len < sizeof(c->user));
    memcpy(c->user, name, len + 1);
    c->user_len = len;
}

enum proto_result pipeline_authenticate(struct conn *c, const struct mqtt_connect *cn,
                                        uint8_t *reason)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(c->identity[0] == '\0');
    /* A user name that is not an identity id is a password-file user, when there is a file. */
    if (cn->has_username && b->passwd != NULL &&
        !crypto_identity_id_valid((const char *)cn->username.data, cn->username.len))
        return access_password(c, cn, reason);
    if (cn->has_username) {
        *reason = pipeline_tokens_authenticate(c, cn); /* an identity: its login token */
        return *reason == MQTT_RC_SUCCESS ? PROTO_OK : PROTO_REFUSE_CONNECT;
    }
    if (c->tls_cn[0] != '\0') {
        /* A verified client certificate: its CN names the client (an identity when it is one). */
        if (crypto_identity_id_valid(c->tls_cn, strlen(c->tls_cn)))
            memcpy(c->identity, c->tls_cn, CRYPTO_IDENTITY_ID_BYTES);
        identity_set_user(c, c->tls_cn);
        return PROTO_OK;
    }
    enum lmq_anonymous_mode mode = b->cfg.auth.anonymous;
    if (mode == LMQ_ANONYMOUS_ALWAYS || (mode == LMQ_ANONYMOUS_LOOPBACK && identity_loopback(c)))
        return PROTO_OK;
    security_event(b, c, SECURITY_EVENT_ANONYMOUS_REFUSED, NULL);
    *reason = MQTT_RC_NOT_AUTHORIZED;
    return PROTO_REFUSE_CONNECT;
}

bool pipeline_under_id(const uint8_t *topic, size_t len)
{
    LMQ_ASSERT(topic != NULL || len == 0);
    return len >= 3 && memcmp(topic, "id/", 3) == 0;
}

enum pipeline_topic pipeline_topic_parse(const uint8_t *topic, size_t len, const char **owner)
{
    *owner = NULL;
    if (!pipeline_under_id(topic, len))
        return PIPELINE_TOPIC_NONE;
    if (len < 3 + CRYPTO_IDENTITY_ID_CHARS + 1 || topic[3 + CRYPTO_IDENTITY_ID_CHARS] != '/')
        return PIPELINE_TOPIC_OTHER;
    *owner = (const char *)topic + 3;
    const uint8_t *leaf = topic + 3 + CRYPTO_IDENTITY_ID_CHARS + 1;
    size_t leaf_len = len - (3 + CRYPTO_IDENTITY_ID_CHARS + 1);
    static const struct {
        const char *name;
        enum pipeline_topic kind;
    } leaves[] = {{"outbox", PIPELINE_TOPIC_OUTBOX},
                  {"inbox", PIPELINE_TOPIC_INBOX},
                  {"ack", PIPELINE_TOPIC_ACK},
                  {"reject", PIPELINE_TOPIC_REJECT},
                  {"resync", PIPELINE_TOPIC_RESYNC},
                  {"sync", PIPELINE_TOPIC_SYNC},
                  {"events", PIPELINE_TOPIC_EVENTS},
                  {"events/sync", PIPELINE_TOPIC_EVENTS_SYNC},
                  {"events/resync", PIPELINE_TOPIC_EVENTS_RESYNC},
                  {"events/ack", PIPELINE_TOPIC_EVENTS_ACK},
                  {"validate", PIPELINE_TOPIC_VALIDATE},
                  {"validate/verdict", PIPELINE_TOPIC_VALIDATE_VERDICT}};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(leaves); i++) {
        if (strlen(leaves[i].name) == leaf_len && memcmp(leaves[i].name, leaf, leaf_len) == 0)
            return leaves[i].kind;
    }
    return PIPELINE_TOPIC_OTHER;
}

bool pipeline_owns(const struct conn *c, const char *owner)
{
    return owner != NULL && c->identity[0] != '\0' &&
           memcmp(c->identity, owner, CRYPTO_IDENTITY_ID_CHARS) == 0;
}

bool pipeline_may_subscribe(struct conn *c, const uint8_t *filter, size_t len)
{
    /* Wildcards over identities are allowed: routing never delivers one identity's topics to
     * another (route.c); a filter naming another identity is refused outright. */
    if (!pipeline_under_id(filter, len))
        return true;
    size_t rest = len - 3;
    const uint8_t *second = filter + 3;
    if (rest == 0 || second[0] == '+' || second[0] == '#')
        return true;
    if (rest >= CRYPTO_IDENTITY_ID_CHARS && pipeline_owns(c, (const char *)second) &&
        (rest == CRYPTO_IDENTITY_ID_CHARS || second[CRYPTO_IDENTITY_ID_CHARS] == '/'))
        return true;
    security_event(c->broker, c, SECURITY_EVENT_ACL_DENIED, "subscribe");
    return false;
}

bool pipeline_may_receive(const struct session *s, const uint8_t *topic, size_t len)
{
    const char *owner = NULL;
    if (pipeline_topic_parse(topic, len, &owner) == PIPELINE_TOPIC_NONE)
        return true;
    /* Only a session owned by an identity has an id as its owner (see session_principal). */
    return owner != NULL && strlen(s->owner) == CRYPTO_IDENTITY_ID_CHARS &&
           memcmp(s->owner, owner, CRYPTO_IDENTITY_ID_CHARS) == 0;
}
