/*
 * Signed envelopes: the unit of "identities and guaranteed delivery". An envelope is a JSON
 * object with exactly these members:
 *   from  identity id of the sender (64 lowercase hex: SHA-256 of key)
 *   key   the sender's raw Ed25519 public key, base64url (43 characters), so that anyone can
 *         verify an envelope offline
 *   to    identity id of the recipient
 *   seq   the sender's sequence number, 1 ..= 2^53 - 1
 *   prev  "" when seq is 1, else the link of the sender's previous envelope
 *   time  RFC 3339 UTC with exactly nine fractional digits and 'Z'
 *   type  1..64 characters of [A-Za-z0-9._:-]
 *   body  a JSON object
 *   sig   base64url Ed25519 signature over the RFC 8785 canonical form without sig
 * The link of an envelope is the lowercase hex SHA-256 of its canonical form WITH sig.
 * Refusals carry a machine-readable reason: "bad_json", "too_large", "unknown_field",
 * "missing_field", "bad_from", "bad_key", "key_mismatch", "bad_to", "bad_seq", "bad_prev",
 * "bad_time", "bad_type", "bad_body", "bad_sig_encoding", "bad_signature".
 */
#ifndef LMQ_LEDGER_ENVELOPE_H
#define LMQ_LEDGER_ENVELOPE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "crypto/ed25519.h"
#include "crypto/keyfile.h"

/* Largest envelope accepted (as received) or built (canonical form). */
#define LEDGER_ENVELOPE_MAX_BYTES (64u * 1024u)
#define LEDGER_ENVELOPE_SEQ_MAX ((UINT64_C(1) << 53) - 1)
#define LEDGER_ENVELOPE_TYPE_MAX_CHARS 64
/* "2026-11-25T03:04:05.123456789Z" */
#define LEDGER_ENVELOPE_TIME_CHARS 30
/* A link: lowercase hex SHA-256, like an identity id. */
#define LEDGER_ENVELOPE_LINK_BYTES CRYPTO_IDENTITY_ID_BYTES

/* A parsed, validated envelope. Owns its buffers: ledger_envelope_release() frees them. */
struct ledger_envelope {
    char from[CRYPTO_IDENTITY_ID_BYTES];
    uint8_t key[CRYPTO_ED25519_PUB_BYTES];
    char to[CRYPTO_IDENTITY_ID_BYTES];
    uint64_t seq;
    char prev[LEDGER_ENVELOPE_LINK_BYTES]; /* "" when seq is 1 */
    char time[LEDGER_ENVELOPE_TIME_CHARS + 1];
    int64_t time_s;   /* time as Unix seconds ... */
    uint32_t time_ns; /* ... and nanoseconds */
    char type[LEDGER_ENVELOPE_TYPE_MAX_CHARS + 1];
    uint8_t sig[CRYPTO_ED25519_SIG_BYTES];
    struct lmq_buf body;      /* canonical form of body */
    struct lmq_buf unsigned_; /* canonical form without sig: what sig signs */
    struct lmq_buf canonical; /* canonical form with sig: what the link hashes */
};

/* What the sender chooses; the builder adds from, key and sig. */
struct ledger_envelope_draft {
    const char *to;
    uint64_t seq;
    const char *prev; /* "" (or NULL) for seq 1 */
    const char *time;
    const char *type;
    const json_t *body; /* a JSON object */
};

/* True when type (len bytes) is an envelope type: 1..64 characters of [A-Za-z0-9._:-]. */
bool ledger_envelope_type_valid(const char *type, size_t len);

/* Parses and validates json (len bytes) into env (structure only: see ledger_envelope_verify).
 * Returns 0, LMQ_EPROTO or LMQ_ETOOBIG with *reason set, or LMQ_ENOMEM. env needs
 * ledger_envelope_release() on success only. */
int ledger_envelope_parse(const uint8_t *json, size_t len, struct ledger_envelope *env,
                          const char **reason) LMQ_WUR;
/* Checks sig against key over the canonical form without sig. Returns 0 or LMQ_EPROTO with
 * *reason "bad_signature". */
int ledger_envelope_verify(const struct ledger_envelope *env, const char **reason) LMQ_WUR;
/* ledger_envelope_parse then ledger_envelope_verify; env is released again on any failure. */
int ledger_envelope_open(const uint8_t *json, size_t len, struct ledger_envelope *env,
                         const char **reason) LMQ_WUR;
/* out = the envelope's link. Returns 0 or LMQ_ENOMEM. */
int ledger_envelope_link(const struct ledger_envelope *env,
                         char out[LEDGER_ENVELOPE_LINK_BYTES]) LMQ_WUR;
/* Frees env's buffers (safe on a zeroed or released envelope). */
void ledger_envelope_release(struct ledger_envelope *env);

/* Signs draft with seed and appends the envelope's canonical JSON text to out, which is exactly
 * what was signed plus sig. Returns 0, LMQ_EINVAL (a draft field fails validation; *reason
 * says which), LMQ_ETOOBIG ("too_large") or LMQ_ENOMEM; out is unchanged on failure. */
int ledger_envelope_build(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                          const struct ledger_envelope_draft *draft, struct lmq_buf *out,
                          const char **reason) LMQ_WUR;

/* Formats Unix time (s, ns < 1e9, year 1970..9999) as an envelope time. Returns 0 or
 * LMQ_EINVAL. */
int ledger_envelope_format_time(int64_t time_s, uint32_t time_ns,
                                char out[LEDGER_ENVELOPE_TIME_CHARS + 1]) LMQ_WUR;

#endif
