/*
 * C2SP tlog-checkpoint in a C2SP signed note, Ed25519 only (see checkpoint.h).
 *
 * Base64 (RFC 4648 §4, padded, canonical) is a pair of small static helpers for now; they move
 * to the shared encoding module once it lands.
 */
#include "ledger/checkpoint.h"

#include <stdbool.h>
#include <string.h>

#include "crypto/encoding.h"
#include "crypto/hash.h"

#define CHECKPOINT_SIG_TYPE_ED25519 0x01
#define CHECKPOINT_KEY_ID_BYTES 4
#define CHECKPOINT_SIZE_DIGITS_MAX 20 /* UINT64_MAX has 20 decimal digits */
#define CHECKPOINT_ROOT_B64_BYTES 44
#define CHECKPOINT_VKEY_DATA_BYTES (1 + CRYPTO_ED25519_PUB_BYTES)
/* "— " in UTF-8: U+2014 EM DASH, then a space. */
static const char CHECKPOINT_SIG_PREFIX[] = "\xE2\x80\x94 ";
#define CHECKPOINT_SIG_PREFIX_BYTES 4

const char *ledger_checkpoint_verdict_str(enum ledger_checkpoint_verdict verdict)
{
    switch (verdict) {
    case LEDGER_CHECKPOINT_OK:
        return "ok";
    case LEDGER_CHECKPOINT_MALFORMED:
        return "malformed";
    case LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY:
        return "no signature by this key";
    case LEDGER_CHECKPOINT_BAD_SIGNATURE:
        return "bad signature";
    }
    return "unknown verdict";
}

/* ---- text checks ---- */

/* Length of the UTF-8 sequence at s[0..len) when it is valid (no overlongs, surrogates or code
 * points above U+10FFFF), else 0. */
static size_t checkpoint__utf8_seq(const uint8_t *s, size_t len)
{
    LMQ_ASSERT(len > 0);
    if (s[0] < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2, cp = s[0] & 0x1Fu, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3, cp = s[0] & 0x0Fu, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4, cp = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* True when s[0..len) is valid UTF-8 without control characters other than newline. */
static bool checkpoint__text_ok(const char *s, size_t len)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x20 && u[i] != '\n')
            return false;
        size_t n = checkpoint__utf8_seq(u + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    LMQ_ASSERT(i == len);
    return true;
}

/* Our own key names: 1..255 printable ASCII bytes, no space, no '+'. */
static bool checkpoint__key_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (name[i] <= ' ' || name[i] > '~' || name[i] == '+')
            return false;
    }
    return true;
}

/* An origin line: 1..255 bytes of note text, no newline, no space at either end. */
static bool checkpoint__origin_ok(const char *origin, size_t len)
{
    if (len == 0 || len > LEDGER_CHECKPOINT_ORIGIN_MAX_BYTES)
        return false;
    if (origin[0] == ' ' || origin[len - 1] == ' ' || memchr(origin, '\n', len) != NULL)
        return false;
    return checkpoint__text_ok(origin, len);
}

int ledger_checkpoint_key_id(const char *key_name, const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                             uint32_t *key_id)
{
    LMQ_ASSERT(key_name != NULL && pub != NULL);
    LMQ_ASSERT(key_id != NULL);
    size_t name_len = strnlen(key_name, LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1);
    if (!checkpoint__key_name_ok(key_name, name_len))
        return LMQ_EINVAL;
    static const uint8_t sep[2] = {'\n', CHECKPOINT_SIG_TYPE_ED25519};
    const uint8_t *parts[3] = {(const uint8_t *)key_name, sep, pub};
    size_t lens[3] = {name_len, sizeof(sep), CRYPTO_ED25519_PUB_BYTES};
    uint8_t digest[CRYPTO_SHA256_BYTES];
    int rc = crypto_sha256_parts(parts, lens, 3, digest);
    if (rc != 0)
        return rc;
    *key_id = (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 | (uint32_t)digest[2] << 8 |
              digest[3];
    return LMQ_OK;
}

/* ---- formatting ---- */

/* Bounded output: appends fail once cap (which keeps one byte for the NUL) would be passed. */
struct checkpoint_writer {
    char *out;
    size_t cap;
    size_t len;
    bool overflow;
};

static void checkpoint__put(struct checkpoint_writer *w, const void *data, size_t len)
{
    LMQ_ASSERT(w->len < w->cap);
    if (w->overflow || len > w->cap - 1 - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->out + w->len, data, len);
    w->len += len;
    w->out[w->len] = '\0';
}

static void checkpoint__put_b64(struct checkpoint_writer *w, const uint8_t *data, size_t len)
{
    char tmp[((CHECKPOINT_KEY_ID_BYTES + CRYPTO_ED25519_SIG_BYTES) + 2) / 3 * 4 + 1];
    LMQ_ASSERT(len <= CHECKPOINT_KEY_ID_BYTES + CRYPTO_ED25519_SIG_BYTES);
    int rc = crypto_b64_encode(data, len, tmp, sizeof(tmp));
    LMQ_ASSERT(rc == LMQ_OK); /* tmp is sized for the largest input */
    checkpoint__put(w, tmp, (len + 2) / 3 * 4);
}

int ledger_checkpoint_format_body(const char *origin, uint64_t size,
                                  const uint8_t root[LEDGER_CHECKPOINT_ROOT_BYTES], char *out,
                                  size_t cap, size_t *out_len)
{
    LMQ_ASSERT(origin != NULL && root != NULL);
    LMQ_ASSERT(out != NULL && out_len != NULL);
    size_t origin_len = strnlen(origin, LEDGER_CHECKPOINT_ORIGIN_MAX_BYTES + 1);
    if (!checkpoint__origin_ok(origin, origin_len))
        return LMQ_EINVAL;
    if (cap == 0)
        return LMQ_ETOOBIG;
    struct checkpoint_writer w = {.out = out, .cap = cap, .len = 0, .overflow = false};
    out[0] = '\0';
    char digits[CHECKPOINT_SIZE_DIGITS_MAX];
    size_t d = sizeof(digits);
    do { /* right to left; at most 20 digits */
        digits[--d] = (char)('0' + size % 10);
        size /= 10;
    } while (size != 0 && d > 0);
    LMQ_ASSERT(size == 0);
    checkpoint__put(&w, origin, origin_len);
    checkpoint__put(&w, "\n", 1);
    checkpoint__put(&w, digits + d, sizeof(digits) - d);
    checkpoint__put(&w, "\n", 1);
    checkpoint__put_b64(&w, root, LEDGER_CHECKPOINT_ROOT_BYTES);
    checkpoint__put(&w, "\n", 1);
    if (w.overflow)
        return LMQ_ETOOBIG;
    *out_len = w.len;
    return LMQ_OK;
}

int ledger_checkpoint_sign(const char *origin, uint64_t size,
                           const uint8_t root[LEDGER_CHECKPOINT_ROOT_BYTES], const char *key_name,
                           const uint8_t seed[CRYPTO_ED25519_SEED_BYTES], char *out, size_t cap,
                           size_t *out_len)
{
    LMQ_ASSERT(key_name != NULL && seed != NULL);
    LMQ_ASSERT(out != NULL && out_len != NULL);
    size_t body_len = 0;
    int rc = ledger_checkpoint_format_body(origin, size, root, out, cap, &body_len);
    if (rc != 0)
        return rc;
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
    uint8_t sig[CHECKPOINT_KEY_ID_BYTES + CRYPTO_ED25519_SIG_BYTES];
    uint32_t key_id = 0;
    rc = crypto_ed25519_public(seed, pub);
    if (rc == 0)
        rc = ledger_checkpoint_key_id(key_name, pub, &key_id);
    if (rc == 0)
        rc = crypto_ed25519_sign(seed, (const uint8_t *)out, body_len,
                                 sig + CHECKPOINT_KEY_ID_BYTES);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < CHECKPOINT_KEY_ID_BYTES; i++)
        sig[i] = (uint8_t)(key_id >> (24 - 8 * i));
    struct checkpoint_writer w = {.out = out, .cap = cap, .len = body_len, .overflow = false};
    checkpoint__put(&w, "\n", 1);
    checkpoint__put(&w, CHECKPOINT_SIG_PREFIX, CHECKPOINT_SIG_PREFIX_BYTES);
    checkpoint__put(&w, key_name, strlen(key_name));
    checkpoint__put(&w, " ", 1);
    checkpoint__put_b64(&w, sig, sizeof(sig));
    checkpoint__put(&w, "\n", 1);
    if (w.overflow)
        return LMQ_ETOOBIG;
    *out_len = w.len;
    return LMQ_OK;
}

/* ---- parsing ---- */

static int checkpoint__parse_size(const char *s, size_t len, uint64_t *out)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    if (len == 0 || len > CHECKPOINT_SIZE_DIGITS_MAX || (s[0] == '0' && len > 1))
        return LMQ_EPROTO;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return LMQ_EPROTO;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return LMQ_EPROTO;
        v = v * 10 + d;
    }
    *out = v;
    return LMQ_OK;
}

/* One line of the note text (without its newline), by position. */
static int checkpoint__parse_body_line(const char *line, size_t len, size_t line_no,
                                       struct ledger_checkpoint *out)
{
    LMQ_ASSERT(line != NULL && out != NULL);
    if (len == 0)
        return LMQ_EPROTO; /* tlog-checkpoint lines are all non-empty */
    size_t root_len = 0;
    switch (line_no) {
    case 0:
        if (len > LEDGER_CHECKPOINT_ORIGIN_MAX_BYTES)
            return LMQ_ELIMIT;
        if (!checkpoint__origin_ok(line, len))
            return LMQ_EPROTO;
        memcpy(out->origin, line, len);
        out->origin[len] = '\0';
        return LMQ_OK;
    case 1:
        return checkpoint__parse_size(line, len, &out->size);
    case 2:
        if (len != CHECKPOINT_ROOT_B64_BYTES ||
            crypto_b64_decode(line, len, out->root, sizeof(out->root), &root_len) != 0 ||
            root_len != LEDGER_CHECKPOINT_ROOT_BYTES)
            return LMQ_EPROTO;
        return LMQ_OK;
    default:
        out->extension_count++;
        return LMQ_OK;
    }
}

static int checkpoint__parse_sig_line(const char *line, size_t len,
                                      struct ledger_checkpoint_sig *sig)
{
    LMQ_ASSERT(line != NULL && sig != NULL);
    if (len < CHECKPOINT_SIG_PREFIX_BYTES ||
        memcmp(line, CHECKPOINT_SIG_PREFIX, CHECKPOINT_SIG_PREFIX_BYTES) != 0)
        return LMQ_EPROTO;
    const char *name = line + CHECKPOINT_SIG_PREFIX_BYTES;
    const size_t rest = len - CHECKPOINT_SIG_PREFIX_BYTES;
    const char *space = memchr(name, ' ', rest);
    if (space == NULL || space == name || memchr(name, '+', (size_t)(space - name)) != NULL)
        return LMQ_EPROTO;
    const size_t name_len = (size_t)(space - name);
    if (name_len > LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES)
        return LMQ_ELIMIT;
    uint8_t raw[CHECKPOINT_KEY_ID_BYTES + CRYPTO_ED25519_SIG_BYTES];
    size_t raw_len = 0;
    if (crypto_b64_decode(space + 1, rest - name_len - 1, raw, sizeof(raw), &raw_len) != 0 ||
        raw_len <= CHECKPOINT_KEY_ID_BYTES)
        return LMQ_EPROTO;
    memcpy(sig->key_name, name, name_len);
    sig->key_name[name_len] = '\0';
    sig->key_id = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
    sig->sig_len = raw_len - CHECKPOINT_KEY_ID_BYTES;
    memcpy(sig->sig, raw + CHECKPOINT_KEY_ID_BYTES, LMQ_MIN(sig->sig_len, sizeof(sig->sig)));
    return LMQ_OK;
}

/* Calls parse_line for each newline-terminated line of text[0..len) (which ends in newline);
 * at most max_lines lines, else LMQ_ELIMIT. */
static int checkpoint__lines(const char *text, size_t len, size_t max_lines,
                             int (*parse_line)(const char *, size_t, size_t, void *), void *ctx,
                             size_t *line_count)
{
    LMQ_ASSERT(len > 0 && text[len - 1] == '\n');
    size_t pos = 0, n = 0;
    while (pos < len) {
        if (n == max_lines)
            return LMQ_ELIMIT;
        const char *nl = memchr(text + pos, '\n', len - pos);
        LMQ_ASSERT(nl != NULL);
        const size_t line_len = (size_t)(nl - (text + pos));
        int rc = parse_line(text + pos, line_len, n, ctx);
        if (rc != 0)
            return rc;
        pos += line_len + 1;
        n++;
    }
    LMQ_ASSERT(pos == len);
    *line_count = n;
    return LMQ_OK;
}

static int checkpoint__body_line_cb(const char *line, size_t len, size_t n, void *ctx)
{
    return checkpoint__parse_body_line(line, len, n, ctx);
}

static int checkpoint__sig_line_cb(const char *line, size_t len, size_t n, void *ctx)
{
    struct ledger_checkpoint *out = ctx;
    LMQ_ASSERT(n < LEDGER_CHECKPOINT_SIGS_MAX);
    return checkpoint__parse_sig_line(line, len, &out->sigs[n]);
}

int ledger_checkpoint_parse(const char *note, size_t note_len, struct ledger_checkpoint *out)
{
    LMQ_ASSERT(note != NULL || note_len == 0);
    LMQ_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (note_len > LEDGER_CHECKPOINT_NOTE_MAX_BYTES)
        return LMQ_ELIMIT;
    if (!checkpoint__text_ok(note, note_len))
        return LMQ_EPROTO;
    /* The text ends at the last blank line; signature lines follow it. */
    size_t sep = note_len;
    for (size_t i = note_len; i >= 2; i--) {
        if (note[i - 2] == '\n' && note[i - 1] == '\n') {
            sep = i - 2;
            break;
        }
    }
    if (sep == note_len)
        return LMQ_EPROTO;
    const size_t body_len = sep + 1;
    const size_t sigs_len = note_len - sep - 2;
    if (sigs_len == 0 || note[note_len - 1] != '\n')
        return LMQ_EPROTO;
    size_t lines = 0;
    int rc = checkpoint__lines(note, body_len, SIZE_MAX, checkpoint__body_line_cb, out, &lines);
    if (rc == 0 && lines < 3)
        rc = LMQ_EPROTO;
    if (rc == 0)
        rc = checkpoint__lines(note + sep + 2, sigs_len, LEDGER_CHECKPOINT_SIGS_MAX,
                               checkpoint__sig_line_cb, out, &out->sig_count);
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->body_len = body_len;
    LMQ_ASSERT(out->sig_count > 0 && out->extension_count + 3 == lines);
    return LMQ_OK;
}

int ledger_checkpoint_verify(const char *note, size_t note_len, const char *key_name,
                             const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                             struct ledger_checkpoint *out, enum ledger_checkpoint_verdict *verdict)
{
    LMQ_ASSERT(key_name != NULL && pub != NULL);
    LMQ_ASSERT(out != NULL && verdict != NULL);
    *verdict = LEDGER_CHECKPOINT_MALFORMED;
    uint32_t key_id = 0;
    int rc = ledger_checkpoint_key_id(key_name, pub, &key_id);
    if (rc != 0)
        return rc;
    if (ledger_checkpoint_parse(note, note_len, out) != 0)
        return LMQ_EPROTO;
    bool found = false;
    for (size_t i = 0; i < out->sig_count; i++) {
        const struct ledger_checkpoint_sig *s = &out->sigs[i];
        if (s->key_id != key_id || strcmp(s->key_name, key_name) != 0)
            continue; /* someone else's signature (a witness, an old key): ignored */
        found = true;
        if (s->sig_len != CRYPTO_ED25519_SIG_BYTES ||
            !crypto_ed25519_verify(pub, (const uint8_t *)note, out->body_len, s->sig)) {
            *verdict = LEDGER_CHECKPOINT_BAD_SIGNATURE;
            return LMQ_EPROTO;
        }
    }
    if (!found) {
        *verdict = LEDGER_CHECKPOINT_NO_SIGNATURE_BY_KEY;
        return LMQ_EPROTO;
    }
    *verdict = LEDGER_CHECKPOINT_OK;
    return LMQ_OK;
}

/* ---- verifier keys ---- */

int ledger_checkpoint_vkey_format(const char *key_name, const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                                  char *out, size_t cap, size_t *out_len)
{
    LMQ_ASSERT(key_name != NULL && pub != NULL);
    LMQ_ASSERT(out != NULL && out_len != NULL);
    uint32_t key_id = 0;
    int rc = ledger_checkpoint_key_id(key_name, pub, &key_id);
    if (rc != 0)
        return rc;
    if (cap == 0)
        return LMQ_ETOOBIG;
    char hex[8];
    for (size_t i = 0; i < sizeof(hex); i++)
        hex[i] = "0123456789abcdef"[(key_id >> (28 - 4 * i)) & 0xF];
    uint8_t data[CHECKPOINT_VKEY_DATA_BYTES] = {CHECKPOINT_SIG_TYPE_ED25519};
    memcpy(data + 1, pub, CRYPTO_ED25519_PUB_BYTES);
    struct checkpoint_writer w = {.out = out, .cap = cap, .len = 0, .overflow = false};
    out[0] = '\0';
    checkpoint__put(&w, key_name, strlen(key_name));
    checkpoint__put(&w, "+", 1);
    checkpoint__put(&w, hex, sizeof(hex));
    checkpoint__put(&w, "+", 1);
    checkpoint__put_b64(&w, data, sizeof(data));
    if (w.overflow)
        return LMQ_ETOOBIG;
    *out_len = w.len;
    return LMQ_OK;
}

int ledger_checkpoint_vkey_parse(const char *text, size_t len,
                                 char key_name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1],
                                 uint8_t pub[CRYPTO_ED25519_PUB_BYTES])
{
    LMQ_ASSERT(text != NULL || len == 0);
    LMQ_ASSERT(key_name != NULL && pub != NULL);
    if (len > LEDGER_CHECKPOINT_VKEY_MAX_BYTES)
        return LMQ_EPROTO;
    const char *plus = memchr(text, '+', len);
    if (plus == NULL)
        return LMQ_EPROTO;
    const size_t name_len = (size_t)(plus - text);
    if (!checkpoint__key_name_ok(text, name_len) || len - name_len < 1 + 8 + 1 || plus[9] != '+')
        return LMQ_EPROTO;
    uint32_t key_id = 0;
    for (size_t i = 1; i <= 8; i++) {
        char c = plus[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return LMQ_EPROTO;
        key_id = key_id << 4 | (uint32_t)d;
    }
    uint8_t data[CHECKPOINT_VKEY_DATA_BYTES];
    size_t data_len = 0;
    const char *b64 = plus + 10;
    if (crypto_b64_decode(b64, len - name_len - 10, data, sizeof(data), &data_len) != 0 ||
        data_len != sizeof(data) || data[0] != CHECKPOINT_SIG_TYPE_ED25519)
        return LMQ_EPROTO;
    memcpy(key_name, text, name_len);
    key_name[name_len] = '\0';
    uint32_t want = 0;
    int rc = ledger_checkpoint_key_id(key_name, data + 1, &want);
    if (rc != 0 || want != key_id) {
        key_name[0] = '\0';
        return rc == LMQ_ENOMEM ? rc : LMQ_EPROTO;
    }
    memcpy(pub, data + 1, CRYPTO_ED25519_PUB_BYTES);
    return LMQ_OK;
}
