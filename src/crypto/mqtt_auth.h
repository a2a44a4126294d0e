/*
 * The bytes an identity signs to log in over MQTT 5 enhanced authentication (Authentication
 * Method "ledgermq-ed25519", docs/PROTOCOL.md "Login over MQTT"):
 *
 *   "ledgermq-mqtt-auth-v1\n" (22 ASCII bytes) || server id (64 lowercase hex ASCII: the
 *   server key's identity id) || nonce (the 32 bytes of the server's AUTH) || client id
 *
 * Every field but the last has a fixed length, so the message parses one way only. The prefix
 * keeps these signatures apart from the HTTP login's ("ledgermq-auth-v1:" + nonce), from
 * envelopes (canonical JSON, starting with '{') and from checkpoints (starting with the
 * origin "ledgermq/"), all signed with identity or server keys of the same kind.
 */
#ifndef LMQ_CRYPTO_MQTT_AUTH_H
#define LMQ_CRYPTO_MQTT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"
#include "crypto/ed25519.h"
#include "crypto/keyfile.h"

#define CRYPTO_MQTT_AUTH_METHOD "ledgermq-ed25519"
#define CRYPTO_MQTT_AUTH_PREFIX "ledgermq-mqtt-auth-v1\n"
#define CRYPTO_MQTT_AUTH_PREFIX_BYTES (sizeof(CRYPTO_MQTT_AUTH_PREFIX) - 1)
#define CRYPTO_MQTT_AUTH_NONCE_BYTES 32
/* The message without its client id. */
#define CRYPTO_MQTT_AUTH_FIXED_BYTES                                                               \
    (CRYPTO_MQTT_AUTH_PREFIX_BYTES + CRYPTO_IDENTITY_ID_CHARS + CRYPTO_MQTT_AUTH_NONCE_BYTES)
/* An MQTT client id is at most 65,535 bytes. */
#define CRYPTO_MQTT_AUTH_CLIENT_ID_MAX_BYTES 65535u

/* Writes the message into out[0..cap) and its length into *len. Returns 0, LMQ_EINVAL (a
 * server id that is not 64 lowercase hex, a client id over 65,535 bytes) or LMQ_ETOOBIG. */
int crypto_mqtt_auth_message(const char *server_id,
                             const uint8_t nonce[CRYPTO_MQTT_AUTH_NONCE_BYTES],
                             const uint8_t *client_id, size_t client_id_len, uint8_t *out,
                             size_t cap, size_t *len) LMQ_WUR;
/* True only when sig is pub's signature of the message for these fields. */
bool crypto_mqtt_auth_verify(const uint8_t pub[CRYPTO_ED25519_PUB_BYTES], const char *server_id,
                             const uint8_t nonce[CRYPTO_MQTT_AUTH_NONCE_BYTES],
                             const uint8_t *client_id, size_t client_id_len,
                             const uint8_t sig[CRYPTO_ED25519_SIG_BYTES]);

#endif
