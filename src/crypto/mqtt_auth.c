#include "crypto/mqtt_auth.h"

#include <stdlib.h>
#include <string.h>

int crypto_mqtt_auth_message(const char *server_id,
                             const uint8_t nonce[CRYPTO_MQTT_AUTH_NONCE_BYTES],
                             const uint8_t *client_id, size_t client_id_len, uint8_t *out,
                             size_t cap, size_t *len)
{
    LMQ_ASSERT(server_id != NULL && nonce != NULL && out != NULL && len != NULL);
    LMQ_ASSERT(client_id != NULL || client_id_len == 0);
    *len = 0;
    if (!crypto_identity_id_valid(server_id, strnlen(server_id, CRYPTO_IDENTITY_ID_BYTES)) ||
        client_id_len > CRYPTO_MQTT_AUTH_CLIENT_ID_MAX_BYTES)
        return LMQ_EINVAL;
    size_t total = CRYPTO_MQTT_AUTH_FIXED_BYTES + client_id_len;
    if (total > cap)
        return LMQ_ETOOBIG;
    size_t pos = 0;
    memcpy(out, CRYPTO_MQTT_AUTH_PREFIX, CRYPTO_MQTT_AUTH_PREFIX_BYTES);
    pos += CRYPTO_MQTT_AUTH_PREFIX_BYTES;
    memcpy(out + pos, server_id, CRYPTO_IDENTITY_ID_CHARS);
    pos += CRYPTO_IDENTITY_ID_CHARS;
    memcpy(out + pos, nonce, CRYPTO_MQTT_AUTH_NONCE_BYTES);
    pos += CRYPTO_MQTT_AUTH_NONCE_BYTES;
    if (client_id_len > 0)
        memcpy(out + pos, client_id, client_id_len);
    pos += client_id_len;
    LMQ_ASSERT(pos == total);
    *len = total;
    return LMQ_OK;
}

bool crypto_mqtt_auth_verify(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES], const char *server_id,
                             const uint8_t nonce[CRYPTO_MQTT_AUTH_NONCE_BYTES],
                             const uint8_t *client_id, size_t client_id_len,
                             const uint8_t sig[CRYPTO_ED25519_SIG_BYTES])
{
    LMQ_ASSERT(pub != NULL && sig != NULL);
    /* Most client ids are short: the stack holds those, the heap the rest. */
    uint8_t small[CRYPTO_MQTT_AUTH_FIXED_BYTES + 256];
    size_t cap = CRYPTO_MQTT_AUTH_FIXED_BYTES + client_id_len;
    uint8_t *msg = cap <= sizeof(small) ? small : malloc(cap);
    if (msg == NULL)
        return false;
    size_t len = 0;
    bool ok = crypto_mqtt_auth_message(server_id, nonce, client_id, client_id_len, msg, cap,
                                       &len) == LMQ_OK &&
              crypto_ed25519_verify(pub, msg, len, sig);
    if (msg != small)
        free(msg);
    return ok;
}
