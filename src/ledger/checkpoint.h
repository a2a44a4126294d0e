/*
 * Signed tree heads as C2SP tlog-checkpoint notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note)
 * with Ed25519 signatures:
 *
 *     <origin>\n<tree size, decimal>\n<base64 root hash>\n[extension lines\n]
 *     \n
 *     — <key name> <base64(4-byte big-endian key id || 64-byte signature)>\n   (one or more)
 *
 * The signature covers the note text (the body up to and including its final newline). The key
 * id is SHA-256(key name || 0x0A || 0x01 || public key)[:4]. The server publishes its key as a
 * verifier key string "<name>+<8 hex digits key id>+<base64(0x01 || public key)>".
 *
 * Parsing is strict: valid UTF-8, no control characters but newline, origin without spaces at
 * either end, size without leading zeros, a 32-byte root in canonical padded base64, non-empty
 * extension lines, canonical base64 in signature lines, at least one signature line.
 */
#ifndef LMQ_LEDGER_CHECKPOINT_H
#define LMQ_LEDGER_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"
#include "crypto/ed25519.h"

#define LEDGER_CHECKPOINT_ROOT_BYTES 32
#define LEDGER_CHECKPOINT_ORIGIN_MAX_BYTES 255
#define LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES 255
/* signed-note: verifiers must accept at least 16 signatures; more is refused. */
#define LEDGER_CHECKPOINT_SIGS_MAX 16
/* Room for 16 post-quantum cosignatures (~5 kB each, base64) around a small body. */
#define LEDGER_CHECKPOINT_NOTE_MAX_BYTES (128 * 1024)
/* "<name>+<8 hex>+<44 base64>" */
#define LEDGER_CHECKPOINT_VKEY_MAX_BYTES (LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1 + 8 + 1 + 44)

/* One signature line. Only sig_len == 64 can be an Ed25519 signature; sig holds its first
 * LMQ_MIN(sig_len, 64) bytes (other signature types are kept as their key name and id only). */
struct ledger_checkpoint_sig {
    char key_name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint32_t key_id;
    size_t sig_len;
    uint8_t sig[CRYPTO_ED25519_SIG_BYTES];
};

/* A parsed checkpoint note. */
struct ledger_checkpoint {
    char origin[LEDGER_CHECKPOINT_ORIGIN_MAX_BYTES + 1];
    uint64_t size;
    uint8_t root[LEDGER_CHECKPOINT_ROOT_BYTES];
    size_t body_len; /* bytes of signed note text, including its final newline */
    size_t extension_count;
    size_t sig_count;
    struct ledger_checkpoint_sig sigs[LEDGER_CHECKPOINT_SIGS_MAX];
};

/* Why a note did not verify. */
enum ledger_checkpoint_verdict {
    LEDGER_CHECKPOINT_OK = 0,
    LEDGER_CHECKPOINT_MALFORMED,
    LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY,
    LEDGER_CHECKPOINT_BAD_SIGNATURE,
};

/* A static string for a verdict: "ok", "malformed", "no signature by this key", "bad signature". */
const char *ledger_checkpoint_verdict_str(enum ledger_checkpoint_verdict verdict);

/* *key_id = SHA-256(key_name || 0x0A || 0x01 || pub)[:4], big-endian. key_name must be 1..255
 * printable ASCII bytes other than space and '+'. Returns 0, LMQ_EINVAL or LMQ_ENOMEM. */
int ledger_checkpoint_key_id(const char *key_name, const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                             uint32_t *key_id) LMQ_WUR;

/* Writes the note text "<origin>\n<size>\n<base64 root>\n" and a NUL into out[0..cap); *out_len
 * excludes the NUL. Returns 0, LMQ_EINVAL (bad origin) or LMQ_ETOOBIG (cap too small). */
int ledger_checkpoint_format_body(const char *origin, uint64_t size,
                                  const uint8_t root[LEDGER_CHECKPOINT_ROOT_BYTES], char *out,
                                  size_t cap, size_t *out_len) LMQ_WUR;

/* Writes the whole signed note (body, blank line, one signature line by seed under key_name) and
 * a NUL into out[0..cap); *out_len excludes the NUL. Returns 0, LMQ_EINVAL (bad origin or key
 * name), LMQ_ETOOBIG or LMQ_ENOMEM. */
int ledger_checkpoint_sign(const char *origin, uint64_t size,
                           const uint8_t root[LEDGER_CHECKPOINT_ROOT_BYTES], const char *key_name,
                           const uint8_t seed[CRYPTO_ED25519_SEED_BYTES], char *out, size_t cap,
                           size_t *out_len) LMQ_WUR;

/* Parses note[0..note_len) strictly into *out (no signature is checked). Returns 0, LMQ_EPROTO
 * (malformed) or LMQ_ELIMIT (longer than LEDGER_CHECKPOINT_NOTE_MAX_BYTES, a field over its
 * maximum, or more than LEDGER_CHECKPOINT_SIGS_MAX signatures). */
int ledger_checkpoint_parse(const char *note, size_t note_len,
                            struct ledger_checkpoint *out) LMQ_WUR;

/* Parses the note and checks the signature of (key_name, pub). Returns 0 only when the note is
 * well-formed and signed by that key (*out filled); otherwise LMQ_EPROTO with *verdict saying
 * why (a signature line with this key's name and id that fails is "bad signature", even when
 * another one verifies), LMQ_EINVAL for a bad key_name, or LMQ_ENOMEM. */
int ledger_checkpoint_verify(const char *note, size_t note_len, const char *key_name,
                             const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                             struct ledger_checkpoint *out,
                             enum ledger_checkpoint_verdict *verdict) LMQ_WUR;

/* Writes the verifier key string "<name>+<hex key id>+<base64(0x01 || pub)>" and a NUL into
 * out[0..cap). Returns 0, LMQ_EINVAL (bad key name), LMQ_ETOOBIG or LMQ_ENOMEM. */
int ledger_checkpoint_vkey_format(const char *key_name, const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                                  char *out, size_t cap, size_t *out_len) LMQ_WUR;

/* Parses a verifier key string (8 lowercase hex digits, type byte 0x01, key id matching name and
 * key) into key_name (NUL-terminated) and pub. Returns 0, LMQ_EPROTO or LMQ_ENOMEM. */
int ledger_checkpoint_vkey_parse(const char *text, size_t len,
                                 char key_name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1],
                                 uint8_t pub[CRYPTO_ED25519_PUB_BYTES]) LMQ_WUR;

#endif
