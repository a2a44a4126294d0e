/*
 * Login tokens after they are issued: the check at CONNECT, revocation, and the end of a
 * connection whose token expires or is revoked.
 *
 * Revocation is per identity and by time: "every token of id issued before T" (T in unix
 * seconds, compared with the token's iat). Revoking at second S sets T = S + 1, so the token
 * used to revoke and every other token issued up to that second are refused; a login in that
 * same second is answered 503 (Retry-After: 1) rather than with a token that would be refused.
 * T is only ever raised, in memory at once (b->pipeline->revocations) and in the store
 * (token_revocations) with the current batch, so it survives a restart. `ledgermq revoke` writes
 * the same table offline; a running broker applies such rows on SIGHUP (pipeline_tokens_reload).
 *
 * A connection that authenticated with a token remembers its iat and exp; the connection's
 * timer (conn.c) also fires at exp (+ [auth] token_leeway_s) and the connection is ended.
 */
#include "pipeline/pipeline_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/hash.h"
#include "crypto/jwt.h"
#include "net/http.h"

#define TOKENS_BEARER_PREFIX "Bearer "

struct pipeline_tokens_revocation {
    char id[CRYPTO_IDENTITY_ID_BYTES];
    int64_t before_s; /* tokens with iat < before_s are refused */
};

static int64_t pipeline_tokens_now_s(struct broker *b)
{
    return clock_unix_ms(b) / 1000;
}

int64_t pipeline_tokens_revoked_before(struct broker *b, const char *id)
{
    if (b->pipeline->revocations == NULL)
        return 0;
    struct pipeline_tokens_revocation *r =
        lmq_map_get(b->pipeline->revocations, (const uint8_t *)id, CRYPTO_IDENTITY_ID_CHARS);
    return r != NULL ? r->before_s : 0;
}

/* Raises id's revocation time in memory; true when it moved (false: not newer, or no memory,
 * which fails closed below through the caller's fail stop). */
static bool pipeline_tokens_raise(struct broker *b, const char *id, int64_t before_s, bool *nomem)
{
    struct pipeline *p = b->pipeline;
    LMQ_ASSERT(p->revocations != NULL && before_s >= 0);
    LMQ_ASSERT(crypto_identity_id_valid(id, CRYPTO_IDENTITY_ID_CHARS));
    *nomem = false;
    struct pipeline_tokens_revocation *r =
        lmq_map_get(p->revocations, (const uint8_t *)id, CRYPTO_IDENTITY_ID_CHARS);
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL) {
            *nomem = true;
            return false;
        }
        memcpy(r->id, id, CRYPTO_IDENTITY_ID_CHARS);
        if (lmq_map_put(p->revocations, (const uint8_t *)r->id, CRYPTO_IDENTITY_ID_CHARS, r) !=
            LMQ_OK) {
            free(r);
            *nomem = true;
            return false;
        }
    }
    if (before_s <= r->before_s)
        return false;
    r->before_s = before_s;
    return true;
}

/* Ends id's open connections whose token was issued before before_s (MQTT 5: DISCONNECT 0x87
 * Not authorized; 3.1.1: closed). */
static void pipeline_tokens_end_revoked(struct broker *b, const char *id, int64_t before_s)
{
    LMQ_ASSERT(id != NULL && before_s > 0);
    size_t cap = b->conn_count, n = 0;
    struct conn **hit = cap > 0 ? calloc(cap, sizeof(*hit)) : NULL;
    if (hit == NULL && cap > 0)
        broker_fail_stop(b, "revocation (out of memory)", LMQ_ENOMEM);
    /* Collected first: ending one connection (its will) may close others. */
    struct list_node *node = b->conns.next;
    for (size_t i = 0; i < cap && node != &b->conns; i++, node = node->next) {
        struct conn *c = list_entry(node, struct conn, all);
        if (c->token_exp_s != 0 && c->token_iat_s < before_s &&
            memcmp(c->identity, id, CRYPTO_IDENTITY_ID_CHARS) == 0) {
            conn_ref(c);
            hit[n++] = c;
        }
    }
    LMQ_ASSERT(n <= cap);
    for (size_t i = 0; i < n; i++) {
        struct conn *c = hit[i];
        if (c->state == CONN_CONNECTED) {
            conn_log(c, LMQ_LOG_INFO, "token_revoked", "disconnecting");
            b->stats.token_conns_ended++;
            conn_disconnect(c, MQTT_RC_NOT_AUTHORIZED);
        }
        conn_unref(c);
    }
    free(hit);
}

/* How a revocation reached tokens_apply. */
enum tokens_source {
    TOKENS_SOURCE_HTTP = 0, /* POST /auth/revoke: written to the store here */
    TOKENS_SOURCE_RELOAD,   /* SIGHUP: a row `ledgermq revoke` wrote */
    TOKENS_SOURCE_RECOVERY, /* start: a stored row (not logged one by one) */
};

/* Applies a revocation: memory, the store (HTTP only), open connections. */
static void tokens_apply(struct broker *b, const char *id, int64_t before_s,
                         enum tokens_source source)
{
    bool nomem = false;
    if (!pipeline_tokens_raise(b, id, before_s, &nomem)) {
        if (nomem)
            broker_fail_stop(b, "revocation (out of memory)", LMQ_ENOMEM);
        return;
    }
    if (source == TOKENS_SOURCE_RECOVERY)
        return;
    b->stats.tokens_revoked++;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "tokens_revoked")) {
        lmq_log_str(&line, "identity", id);
        lmq_log_uint(&line, "revoked_before_s", (uint64_t)before_s);
        lmq_log_str(&line, "source", source == TOKENS_SOURCE_HTTP ? "http" : "offline");
        lmq_log_end(&line);
    }
    if (source == TOKENS_SOURCE_HTTP) {
        struct store_record rec = {
            .type = STORE_TOKEN_REVOKE,
            .u.token_revoke = {.identity = {(const uint8_t *)id, CRYPTO_IDENTITY_ID_CHARS},
                               .revoked_before_s = before_s},
        };
        commit_store_write(b, &rec); /* committed at the end of this loop turn */
    }
    pipeline_tokens_end_revoked(b, id, before_s);
}

struct tokens_load {
    struct broker *broker;
    enum tokens_source source;
};

static int tokens_load_row(void *ctx, struct lmq_bytes id, int64_t before_s)
{
    struct tokens_load *load = ctx;
    struct broker *b = load->broker;
    char key[CRYPTO_IDENTITY_ID_BYTES];
    if (id.len != CRYPTO_IDENTITY_ID_CHARS || before_s < 0)
        return 0; /* not an identity: nothing could match it */
    memcpy(key, id.data, id.len);
    key[id.len] = '\0';
    if (pipeline_tokens_revoked_before(b, key) < before_s)
        tokens_apply(b, key, before_s, load->source);
    return 0;
}

int pipeline_tokens_recover(struct broker *b)
{
    LMQ_ASSERT(b->pipeline->revocations == NULL);
    if (lmq_map_create(&b->pipeline->revocations) != LMQ_OK)
        return LMQ_ENOMEM;
    struct tokens_load load = {b, TOKENS_SOURCE_RECOVERY};
    return store_token_revocations(b->store, tokens_load_row, &load);
}

void pipeline_tokens_reload(struct broker *b)
{
    if (b->pipeline->revocations == NULL || b->store == NULL)
        return;
    struct tokens_load load = {b, TOKENS_SOURCE_RELOAD};
    if (store_token_revocations(b->store, tokens_load_row, &load) != LMQ_OK)
        lmq_log_msg(LMQ_LOG_ERROR, "reload_failed", "token revocations: store read");
}

static bool tokens_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg), LMQ_UNUSED(key), LMQ_UNUSED(key_len);
    free(value);
    return true;
}

/*
 * Tokens whose signature was verified, by the SHA-256 of the token: an HTTP client sends the same
 * bearer token with every request, and checking an Ed25519 signature costs more than the rest of
 * a small request. Direct-mapped (a collision replaces the older entry); only a token that passed
 * every check is entered, and a hit still checks expiry and revocation as they are now, so the
 * cache can make a check faster, never looser.
 */
#define TOKENS_CACHE_SLOTS 1024u

struct pipeline_token_cache_entry {
    uint8_t digest[CRYPTO_SHA256_BYTES];
    bool used;
    struct crypto_jwt_claims claims;
};

struct pipeline_token_cache {
    struct pipeline_token_cache_entry slots[TOKENS_CACHE_SLOTS];
};

static struct pipeline_token_cache_entry *tokens_cache_slot(struct pipeline *p,
                                                            const uint8_t *digest)
{
    if (p->token_cache == NULL && (p->token_cache = calloc(1, sizeof(*p->token_cache))) == NULL)
        return NULL; /* no memory: every token is verified in full */
    uint32_t i = ((uint32_t)digest[0] << 8 | digest[1]) % TOKENS_CACHE_SLOTS;
    return &p->token_cache->slots[i];
}

void pipeline_tokens_destroy(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    free(p->token_cache);
    p->token_cache = NULL;
    if (p->revocations == NULL)
        return;
    lmq_map_visit(p->revocations, tokens_free_one, NULL);
    lmq_map_destroy(p->revocations);
    p->revocations = NULL;
}

/*
 * Verifies a token of the server's for an identity: signature, times (with the configured
 * leeway) and revocation. 0 with claims filled (claims.sub is a valid identity id), or the
 * security event's kind in *kind and its detail in *detail.
 */
static int tokens_verify_full(struct broker *b, const char *token, size_t len,
                              struct crypto_jwt_claims *claims, enum security_event *kind,
                              const char **detail, int64_t leeway_s);

static int tokens_verify(struct broker *b, const char *token, size_t len,
                         struct crypto_jwt_claims *claims, enum security_event *kind,
                         const char **detail)
{
    int64_t leeway_s = (int64_t)b->cfg.auth.token_leeway_s;
    uint8_t digest[CRYPTO_SHA256_BYTES];
    struct pipeline_token_cache_entry *slot = NULL;
    if (crypto_sha256((const uint8_t *)token, len, digest) == LMQ_OK)
        slot = tokens_cache_slot(b->pipeline, digest);
    if (slot != NULL && slot->used && memcmp(slot->digest, digest, sizeof(digest)) == 0 &&
        pipeline_tokens_now_s(b) < slot->claims.exp_s + leeway_s) {
        *claims = slot->claims; /* the signature was checked when it was entered */
        if (claims->iat_s < pipeline_tokens_revoked_before(b, claims->sub)) {
            *kind = SECURITY_EVENT_REVOKED_TOKEN;
            *detail = "issued before the identity's revocation";
            return LMQ_EPROTO;
        }
        return LMQ_OK;
    }
    int rc = tokens_verify_full(b, token, len, claims, kind, detail, leeway_s);
    if (rc == LMQ_OK && slot != NULL) {
        memcpy(slot->digest, digest, sizeof(digest));
        slot->claims = *claims;
        slot->used = true;
    }
    return rc;
}

/* tokens_verify without the cache. */
static int tokens_verify_full(struct broker *b, const char *token, size_t len,
                              struct crypto_jwt_claims *claims, enum security_event *kind,
                              const char **detail, int64_t leeway_s)
{
    enum crypto_jwt_verdict verdict;
    if (crypto_jwt_verify(b->pipeline->server_key.pub, token, len, pipeline_tokens_now_s(b),
                          leeway_s, claims, &verdict) != LMQ_OK) {
        *kind =
            verdict == CRYPTO_JWT_EXPIRED ? SECURITY_EVENT_EXPIRED_TOKEN : SECURITY_EVENT_BAD_TOKEN;
        *detail = crypto_jwt_verdict_name(verdict);
        return LMQ_EPROTO;
    }
    if (!crypto_identity_id_valid(claims->sub, strlen(claims->sub))) {
        *kind = SECURITY_EVENT_BAD_TOKEN;
        *detail = "sub is not an identity id";
        return LMQ_EPROTO;
    }
    if (claims->iat_s < pipeline_tokens_revoked_before(b, claims->sub)) {
        *kind = SECURITY_EVENT_REVOKED_TOKEN;
        *detail = "issued before the identity's revocation";
        return LMQ_EPROTO;
    }
    return LMQ_OK;
}

uint8_t pipeline_tokens_authenticate(struct conn *c, const struct mqtt_connect *cn)
{
    struct broker *b = c->broker;
    LMQ_ASSERT(cn->has_username && c->identity[0] == '\0');
    char token[CRYPTO_JWT_MAX_BYTES + 1];
    if (!cn->has_password || cn->password.len > CRYPTO_JWT_MAX_BYTES) {
        security_event(b, c, SECURITY_EVENT_BAD_TOKEN, "no usable password");
        return MQTT_RC_BAD_USER_NAME_OR_PASSWORD;
    }
    memcpy(token, cn->password.data, cn->password.len);
    token[cn->password.len] = '\0';
    struct crypto_jwt_claims claims;
    enum security_event kind = SECURITY_EVENT_BAD_TOKEN;
    const char *detail = NULL;
    if (tokens_verify(b, token, cn->password.len, &claims, &kind, &detail) != LMQ_OK) {
        security_event(b, c, kind, detail);
        return MQTT_RC_BAD_USER_NAME_OR_PASSWORD;
    }
    if (cn->username.len != CRYPTO_IDENTITY_ID_CHARS ||
        memcmp(cn->username.data, claims.sub, CRYPTO_IDENTITY_ID_CHARS) != 0) {
        security_event(b, c, SECURITY_EVENT_BAD_TOKEN, "username is not the token's");
        return MQTT_RC_BAD_USER_NAME_OR_PASSWORD;
    }
    memcpy(c->identity, claims.sub, CRYPTO_IDENTITY_ID_BYTES);
    LMQ_ASSERT(CRYPTO_IDENTITY_ID_CHARS < sizeof(c->user));
    memcpy(c->user, claims.sub, CRYPTO_IDENTITY_ID_BYTES);
    c->user_len = CRYPTO_IDENTITY_ID_CHARS;
    c->token_iat_s = claims.iat_s;
    c->token_exp_s = claims.exp_s;
    return MQTT_RC_SUCCESS;
}

uint64_t pipeline_tokens_conn_deadline_ms(struct conn *c)
{
    if (c->token_exp_s == 0)
        return 0;
    struct broker *b = c->broker;
    LMQ_ASSERT(c->token_exp_s > c->token_iat_s && c->identity[0] != '\0');
    int64_t end_unix_ms = (c->token_exp_s + (int64_t)b->cfg.auth.token_leeway_s) * 1000;
    int64_t left_ms = end_unix_ms - clock_unix_ms(b);
    return clock_now_ms(b) + (uint64_t)LMQ_MAX(left_ms, 0);
}

bool pipeline_tokens_conn_end_if_expired(struct conn *c)
{
    struct broker *b = c->broker;
    if (c->token_exp_s == 0 || c->state != CONN_CONNECTED ||
        pipeline_tokens_now_s(b) < c->token_exp_s + (int64_t)b->cfg.auth.token_leeway_s)
        return false;
    conn_log(c, LMQ_LOG_INFO, "token_expired", "disconnecting");
    b->stats.token_conns_ended++;
    conn_disconnect(c, MQTT_RC_MAXIMUM_CONNECT_TIME);
    return true;
}

static int tokens_http_error(struct http_response *resp, struct lmq_buf *out, int status,
                             const char *reason)
{
    if (status == 401)
        resp->extra_headers = "WWW-Authenticate: Bearer\r\n";
    return http_error_json(resp, out, status, reason);
}

int pipeline_tokens_http_bearer(struct broker *b, const struct http_request *req,
                                char id[CRYPTO_IDENTITY_ID_BYTES], const char **reason)
{
    LMQ_ASSERT(b != NULL && req != NULL && id != NULL && reason != NULL);
    const char *auth = NULL;
    size_t auth_len = 0;
    size_t prefix = strlen(TOKENS_BEARER_PREFIX);
    id[0] = '\0';
    /* No credentials is not an attack: a 401 that says what to send, no security event. */
    if (!http_request_header(req, "Authorization", &auth, &auth_len) || auth_len < prefix ||
        strncasecmp(auth, TOKENS_BEARER_PREFIX, prefix) != 0) {
        *reason = "send Authorization: Bearer <token from POST /auth/token>";
        return LMQ_EPROTO;
    }
    const char *token = auth + prefix;
    size_t token_len = auth_len - prefix;
    while (token_len > 0 && token[0] == ' ') {
        token++;
        token_len--;
    }
    struct crypto_jwt_claims claims;
    enum security_event kind = SECURITY_EVENT_BAD_TOKEN;
    const char *detail = "malformed";
    char copy[CRYPTO_JWT_MAX_BYTES + 1];
    int rc = LMQ_EPROTO;
    if (token_len > 0 && token_len <= CRYPTO_JWT_MAX_BYTES) {
        memcpy(copy, token, token_len);
        copy[token_len] = '\0';
        rc = tokens_verify(b, copy, token_len, &claims, &kind, &detail);
    }
    if (rc != LMQ_OK) {
        char text[96];
        snprintf(text, sizeof(text), "http bearer: %s", detail);
        security_event(b, NULL, kind, text);
        *reason = kind == SECURITY_EVENT_REVOKED_TOKEN   ? "token revoked"
                  : kind == SECURITY_EVENT_EXPIRED_TOKEN ? "token expired"
                                                         : "invalid token";
        return LMQ_EPROTO;
    }
    memcpy(id, claims.sub, CRYPTO_IDENTITY_ID_BYTES);
    LMQ_ASSERT(id[CRYPTO_IDENTITY_ID_CHARS] == '\0');
    return LMQ_OK;
}

int pipeline_tokens_http_revoke(struct broker *b, const struct http_request *req,
                                struct http_response *resp, struct lmq_buf *out)
{
    LMQ_ASSERT(b != NULL && req != NULL && resp != NULL && out != NULL);
    if (strcmp(req->method, "POST") != 0) {
        resp->status = 405;
        resp->allow = "POST";
        return 0;
    }
    char id[CRYPTO_IDENTITY_ID_BYTES];
    const char *reason = NULL;
    if (pipeline_tokens_http_bearer(b, req, id, &reason) != LMQ_OK)
        return tokens_http_error(resp, out, 401, reason);
    int64_t before_s = pipeline_tokens_now_s(b) + 1;
    tokens_apply(b, id, before_s, TOKENS_SOURCE_HTTP);
    resp->content_type = "application/json";
    return http_body_printf(out, "{\"id\":\"%s\",\"revoked_before\":%" PRId64 "}", id, before_s);
}
