/*
 * Login without a client (lmq_login): the challenge and token requests of docs/PROTOCOL.md
 * "Login" as two blocking HTTP requests, for `ledgermq token` and programs that only need a
 * bearer token for the HTTP API.
 */
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "core/resolve.h"

#define LOGIN_AUTH_PREFIX "ledgermq-auth-v1:"
/* "ledgermq-auth-v1:" plus a nonce (43 characters for 32 bytes; room for longer ones). */
#define LOGIN_NONCE_MAX_BYTES 200u
#define LOGIN_MSG_MAX_BYTES (sizeof(LOGIN_AUTH_PREFIX) + LOGIN_NONCE_MAX_BYTES)

char *client_login_token_json(const struct crypto_identity *ident, const char *pub_b64,
                              const char *nonce)
{
    char msg[LOGIN_MSG_MAX_BYTES];
    uint8_t sig[CRYPTO_ED25519_SIG_BYTES];
    char sig_b64[CRYPTO_B64URL_CHARS(CRYPTO_ED25519_SIG_BYTES) + 1];
    if (strlen(nonce) >= LOGIN_NONCE_MAX_BYTES) {
        return NULL;
    }
    int n = snprintf(msg, sizeof(msg), LOGIN_AUTH_PREFIX "%s", nonce);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(msg));
    if (crypto_ed25519_sign(ident->seed, (const uint8_t *)msg, (size_t)n, sig) != 0 ||
        crypto_b64url_encode(sig, sizeof(sig), sig_b64, sizeof(sig_b64)) != 0) {
        return NULL;
    }
    json_t *body = json_pack("{s:s, s:s, s:s}", "pub", pub_b64, "nonce", nonce, "sig", sig_b64);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

/* POSTs json to path and returns the member name of a 200 answer (copied into out), or an
 * error with the server's reason. */
static int login__post(const struct sockaddr_storage *addr, const char *where, const char *path,
                       const char *json, const char *name, char *out, size_t cap,
                       uint32_t timeout_ms, char *err, size_t err_len)
{
    struct lmq_buf body = {0};
    unsigned status = 0;
    int rc = client_http_request(addr, "POST", path, NULL, json, &body, CLIENT_HTTP_BODY_MAX_BYTES,
                                 timeout_ms, &status);
    if (rc != 0) {
        snprintf(err, err_len, "cannot reach the HTTP server at %s (set with --http HOST:PORT)",
                 where);
        lmq_buf_release(&body);
        return LMQ_CLIENT_E_HTTP_UNREACHABLE;
    }
    json_t *root = json_loadb((const char *)body.data, body.len, 0, NULL);
    lmq_buf_release(&body);
    const char *value = json_string_value(json_object_get(root, name));
    const char *reason = json_string_value(json_object_get(root, "reason"));
    if (status == 200 && value != NULL && strlen(value) < cap) {
        memcpy(out, value, strlen(value) + 1);
        rc = 0;
    } else if (status != 200) {
        snprintf(err, err_len, "%s: refused (%u %s)", path, status,
                 reason != NULL ? reason : "no reason given");
        rc = status >= 500 ? LMQ_EIO : LMQ_EPROTO;
    } else {
        snprintf(err, err_len, "%s: the answer has no \"%s\"", path, name);
        rc = LMQ_EIO;
    }
    json_decref(root);
    return rc;
}

int lmq_login(const char *key_file, const char *http_host, uint16_t http_port, uint32_t timeout_ms,
              char token[LMQ_TOKEN_MAX_BYTES], char *err, size_t err_len)
{
    LMQ_ASSERT(key_file != NULL && http_host != NULL && token != NULL && err != NULL);
    token[0] = '\0';
    struct crypto_identity ident;
    int rc = crypto_keyfile_load(key_file, &ident, err, err_len);
    if (rc != 0) {
        return LMQ_EINVAL;
    }
    char pub_b64[CRYPTO_B64URL_CHARS(CRYPTO_ED25519_PUB_BYTES) + 1];
    rc = crypto_b64url_encode(ident.pub, sizeof(ident.pub), pub_b64, sizeof(pub_b64));
    LMQ_ASSERT(rc == 0); /* sized for a public key */
    struct sockaddr_storage addr;
    char reason[128], where[300];
    snprintf(where, sizeof(where), "%.255s:%u", http_host, http_port);
    if (http_port == 0 || lmq_resolve(http_host, http_port, &addr, reason, sizeof(reason)) != 0) {
        snprintf(err, err_len, "cannot resolve HTTP address %s: %s", where,
                 http_port == 0 ? "port 0" : reason);
        return LMQ_EINVAL;
    }
    json_t *req = json_pack("{s:s}", "pub", pub_b64);
    char *text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    char nonce[LOGIN_NONCE_MAX_BYTES];
    rc = text != NULL ? login__post(&addr, where, "/auth/challenge", text, "nonce", nonce,
                                    sizeof(nonce), timeout_ms, err, err_len)
                      : LMQ_ENOMEM;
    free(text);
    text = rc == 0 ? client_login_token_json(&ident, pub_b64, nonce) : NULL;
    if (rc == 0 && text == NULL) {
        rc = LMQ_ENOMEM;
    }
    if (rc == 0) {
        rc = login__post(&addr, where, "/auth/token", text, "token", token, LMQ_TOKEN_MAX_BYTES,
                         timeout_ms, err, err_len);
    }
    free(text);
    memset(&ident, 0, sizeof(ident)); /* the seed */
    if (rc == LMQ_ENOMEM) {
        snprintf(err, err_len, "out of memory");
    }
    return rc;
}
