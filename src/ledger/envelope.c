#include "ledger/envelope.h"

#include <math.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/jcs.h"

/* The members an envelope has, no more and no fewer. */
static const char *const envelope__members[] = {"from", "key",  "to",   "seq", "prev",
                                                "time", "type", "body", "sig"};
#define ENVELOPE__MEMBER_COUNT 9
#define ENVELOPE__KEY_CHARS CRYPTO_B64URL_CHARS(CRYPTO_ED25519_PUB_BYTES)
#define ENVELOPE__SIG_CHARS CRYPTO_B64URL_CHARS(CRYPTO_ED25519_SIG_BYTES)
/* Years an envelope time may name: nothing was signed before Unix time began. */
#define ENVELOPE__YEAR_MIN 1970
#define ENVELOPE__YEAR_MAX 9999
#define ENVELOPE__NS_PER_S 1000000000u
#define ENVELOPE__S_PER_DAY 86400

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's
 * days_from_civil, public-domain algorithm). */
static int64_t envelope__days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool envelope__leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads count digits at s as a number; false if any is not a digit. */
static bool envelope__digits(const char *s, size_t count, int64_t *out)
{
    int64_t v = 0;
    for (size_t i = 0; i < count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" with every field in range (no leap second: Unix time
 * has none, and the envelope's time must map to exactly one instant). */
static bool envelope__parse_time(const char *s, size_t len, int64_t *time_s, uint32_t *time_ns)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != LEDGER_ENVELOPE_TIME_CHARS || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != '.' || s[29] != 'Z')
        return false;
    int64_t y, mo, d, h, mi, sec, ns;
    if (!envelope__digits(s, 4, &y) || !envelope__digits(s + 5, 2, &mo) ||
        !envelope__digits(s + 8, 2, &d) || !envelope__digits(s + 11, 2, &h) ||
        !envelope__digits(s + 14, 2, &mi) || !envelope__digits(s + 17, 2, &sec) ||
        !envelope__digits(s + 20, 9, &ns))
        return false;
    if (y < ENVELOPE__YEAR_MIN || y > ENVELOPE__YEAR_MAX || mo < 1 || mo > 12 || d < 1 || h > 23 ||
        mi > 59 || sec > 59)
        return false;
    int dim = month_days[mo - 1] + (mo == 2 && envelope__leap(y) ? 1 : 0);
    if (d > dim)
        return false;
    LMQ_ASSERT(ns >= 0 && ns < ENVELOPE__NS_PER_S);
    *time_s = envelope__days_from_civil(y, mo, d) * ENVELOPE__S_PER_DAY + h * 3600 + mi * 60 + sec;
    *time_ns = (uint32_t)ns;
    return true;
}

int ledger_envelope_format_time(int64_t time_s, uint32_t time_ns,
                                char out[LEDGER_ENVELOPE_TIME_CHARS + 1])
{
    LMQ_ASSERT(out != NULL);
    out[0] = '\0';
    int64_t max_s = envelope__days_from_civil(ENVELOPE__YEAR_MAX + 1, 1, 1) * ENVELOPE__S_PER_DAY;
    if (time_s < 0 || time_s >= max_s || time_ns >= ENVELOPE__NS_PER_S)
        return LMQ_EINVAL;
    /* civil_from_days (Hinnant), days >= 0 here. */
    int64_t days = time_s / ENVELOPE__S_PER_DAY;
    int64_t rem = time_s % ENVELOPE__S_PER_DAY;
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    int n = snprintf(out, LEDGER_ENVELOPE_TIME_CHARS + 1,
                     "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%09uZ", (long long)y, (long long)m,
                     (long long)d, (long long)(rem / 3600), (long long)(rem / 60 % 60),
                     (long long)(rem % 60), time_ns);
    LMQ_ASSERT(n == LEDGER_ENVELOPE_TIME_CHARS);
    return LMQ_OK;
}

bool ledger_envelope_type_valid(const char *s, size_t len)
{
    if (len == 0 || len > LEDGER_ENVELOPE_TYPE_MAX_CHARS)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool envelope__prev_valid(uint64_t seq, const char *s, size_t len)
{
    return seq == 1 ? len == 0 : crypto_identity_id_valid(s, len);
}

/* Validates what a sender chooses (shared by parse and build); NULL when all is well. */
static const char *envelope__check_fields(const char *to, size_t to_len, uint64_t seq,
                                          const char *prev, size_t prev_len, const char *time,
                                          size_t time_len, const char *type, size_t type_len,
                                          int64_t *time_s, uint32_t *time_ns)
{
    if (!crypto_identity_id_valid(to, to_len))
        return "bad_to";
    if (seq < 1 || seq > LEDGER_ENVELOPE_SEQ_MAX)
        return "bad_seq";
    if (!envelope__prev_valid(seq, prev, prev_len))
        return "bad_prev";
    if (time == NULL || !envelope__parse_time(time, time_len, time_s, time_ns))
        return "bad_time";
    if (type == NULL || !ledger_envelope_type_valid(type, type_len))
        return "bad_type";
    return NULL;
}

/* String member name of root, or false when it is not a string. */
static bool envelope__str(json_t *root, const char *name, const char **s, size_t *len)
{
    json_t *v = json_object_get(root, name);
    if (!json_is_string(v))
        return false;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return true;
}

/* seq as parsed (every JSON number is a double under JCS): an integer in 1..2^53-1, or 0. */
static uint64_t envelope__seq(json_t *root)
{
    json_t *v = json_object_get(root, "seq");
    if (!json_is_real(v))
        return 0;
    double d = json_real_value(v);
    if (!(d >= 1 && d <= (double)LEDGER_ENVELOPE_SEQ_MAX) || floor(d) != d)
        return 0;
    return (uint64_t)d;
}

/* Exactly the envelope members: unknown ones first, then missing ones. */
static const char *envelope__check_members(json_t *root)
{
    const char *name;
    json_t *value;
    json_object_foreach(root, name, value)
    {
        bool known = false;
        for (size_t i = 0; i < ENVELOPE__MEMBER_COUNT; i++)
            known = known || strcmp(name, envelope__members[i]) == 0;
        if (!known)
            return "unknown_field";
    }
    /* Names with an embedded NUL cannot exist (jansson refuses them), so strcmp is exact. */
    for (size_t i = 0; i < ENVELOPE__MEMBER_COUNT; i++) {
        if (json_object_get(root, envelope__members[i]) == NULL)
            return "missing_field";
    }
    LMQ_ASSERT(json_object_size(root) == ENVELOPE__MEMBER_COUNT);
    return NULL;
}

/* from, key, and that key hashes to from. */
static const char *envelope__check_sender(json_t *root, struct ledger_envelope *env)
{
    const char *s;
    size_t len;
    if (!envelope__str(root, "from", &s, &len) || !crypto_identity_id_valid(s, len))
        return "bad_from";
    memcpy(env->from, s, len + 1);
    size_t key_len = 0;
    if (!envelope__str(root, "key", &s, &len) || len != ENVELOPE__KEY_CHARS ||
        crypto_b64url_decode(s, len, env->key, sizeof(env->key), &key_len) != LMQ_OK)
        return "bad_key";
    LMQ_ASSERT(key_len == CRYPTO_ED25519_PUB_BYTES);
    char id[CRYPTO_IDENTITY_ID_BYTES];
    if (crypto_identity_id(env->key, id) != LMQ_OK)
        return "no_memory";
    return strcmp(id, env->from) == 0 ? NULL : "key_mismatch";
}

/* to, seq, prev, time, type, body and sig. */
static const char *envelope__check_rest(json_t *root, struct ledger_envelope *env)
{
    const char *to = NULL, *prev = NULL, *time = NULL, *type = NULL, *sig = NULL;
    size_t to_len = 0, prev_len = 0, time_len = 0, type_len = 0, sig_len = 0;
    if (!envelope__str(root, "to", &to, &to_len))
        return "bad_to";
    env->seq = envelope__seq(root);
    if (env->seq == 0)
        return "bad_seq";
    if (!envelope__str(root, "prev", &prev, &prev_len))
        return "bad_prev";
    if (!envelope__str(root, "time", &time, &time_len))
        return "bad_time";
    if (!envelope__str(root, "type", &type, &type_len))
        return "bad_type";
    const char *why = envelope__check_fields(to, to_len, env->seq, prev, prev_len, time, time_len,
                                             type, type_len, &env->time_s, &env->time_ns);
    if (why != NULL)
        return why;
    memcpy(env->to, to, to_len + 1);
    memcpy(env->prev, prev, prev_len + 1);
    memcpy(env->time, time, time_len + 1);
    memcpy(env->type, type, type_len + 1);
    if (!json_is_object(json_object_get(root, "body")))
        return "bad_body";
    size_t n = 0;
    if (!envelope__str(root, "sig", &sig, &sig_len) || sig_len != ENVELOPE__SIG_CHARS ||
        crypto_b64url_decode(sig, sig_len, env->sig, sizeof(env->sig), &n) != LMQ_OK)
        return "bad_sig_encoding";
    LMQ_ASSERT(n == CRYPTO_ED25519_SIG_BYTES);
    return NULL;
}

/* The three canonical forms; a canonicalization failure is "too_large" (the only one left
 * after validation). */
static int envelope__canonical_forms(json_t *root, struct ledger_envelope *env)
{
    int rc = crypto_jcs_canonicalize_json(root, &env->canonical, LEDGER_ENVELOPE_MAX_BYTES);
    if (rc == LMQ_OK)
        rc = crypto_jcs_canonicalize_json(json_object_get(root, "body"), &env->body,
                                          LEDGER_ENVELOPE_MAX_BYTES);
    if (rc == LMQ_OK && json_object_del(root, "sig") != 0)
        LMQ_UNREACHABLE("sig was checked present");
    if (rc == LMQ_OK)
        rc = crypto_jcs_canonicalize_json(root, &env->unsigned_, LEDGER_ENVELOPE_MAX_BYTES);
    LMQ_ASSERT(rc != LMQ_EINVAL && rc != LMQ_ELIMIT); /* parsed input holds only JCS values */
    return rc;
}

int ledger_envelope_parse(const uint8_t *json, size_t len, struct ledger_envelope *env,
                          const char **reason)
{
    LMQ_ASSERT(env != NULL && reason != NULL);
    LMQ_ASSERT(json != NULL || len == 0);
    memset(env, 0, sizeof(*env));
    *reason = NULL;
    if (len > LEDGER_ENVELOPE_MAX_BYTES) {
        *reason = "too_large";
        return LMQ_ETOOBIG;
    }
    json_t *root = NULL;
    int rc = crypto_jcs_parse(json, len, &root);
    if (rc == LMQ_ENOMEM)
        return rc;
    if (rc != LMQ_OK || !json_is_object(root)) {
        *reason = "bad_json";
        rc = LMQ_EPROTO;
        goto out;
    }
    *reason = envelope__check_members(root);
    if (*reason == NULL)
        *reason = envelope__check_sender(root, env);
    if (*reason == NULL)
        *reason = envelope__check_rest(root, env);
    if (*reason != NULL) {
        rc = strcmp(*reason, "no_memory") == 0 ? LMQ_ENOMEM : LMQ_EPROTO;
        goto out;
    }
    rc = envelope__canonical_forms(root, env);
    if (rc == LMQ_ETOOBIG)
        *reason = "too_large";
out:
    json_decref(root);
    if (rc != LMQ_OK)
        ledger_envelope_release(env);
    return rc;
}

int ledger_envelope_verify(const struct ledger_envelope *env, const char **reason)
{
    LMQ_ASSERT(env != NULL && reason != NULL);
    LMQ_ASSERT(env->unsigned_.len > 0);
    *reason = NULL;
    if (!crypto_ed25519_verify(env->key, env->unsigned_.data, env->unsigned_.len, env->sig)) {
        *reason = "bad_signature";
        return LMQ_EPROTO;
    }
    return LMQ_OK;
}

int ledger_envelope_open(const uint8_t *json, size_t len, struct ledger_envelope *env,
                         const char **reason)
{
    int rc = ledger_envelope_parse(json, len, env, reason);
    if (rc == LMQ_OK) {
        rc = ledger_envelope_verify(env, reason);
        if (rc != LMQ_OK)
            ledger_envelope_release(env);
    }
    return rc;
}

int ledger_envelope_link(const struct ledger_envelope *env, char out[LEDGER_ENVELOPE_LINK_BYTES])
{
    LMQ_ASSERT(env != NULL && out != NULL);
    LMQ_ASSERT(env->canonical.len > 0);
    uint8_t digest[CRYPTO_SHA256_BYTES];
    int rc = crypto_sha256(env->canonical.data, env->canonical.len, digest);
    if (rc != LMQ_OK)
        return rc;
    rc = crypto_hex_encode(digest, sizeof(digest), out, LEDGER_ENVELOPE_LINK_BYTES);
    LMQ_ASSERT(rc == LMQ_OK);
    return LMQ_OK;
}

void ledger_envelope_release(struct ledger_envelope *env)
{
    LMQ_ASSERT(env != NULL);
    lmq_buf_release(&env->body);
    lmq_buf_release(&env->unsigned_);
    lmq_buf_release(&env->canonical);
}

/* The envelope object without sig for draft, signed by the identity of seed. */
static int envelope__draft_object(const struct crypto_identity *ident,
                                  const struct ledger_envelope_draft *draft, json_t **out)
{
    char key[ENVELOPE__KEY_CHARS + 1];
    int rc = crypto_b64url_encode(ident->pub, sizeof(ident->pub), key, sizeof(key));
    LMQ_ASSERT(rc == LMQ_OK);
    json_t *body = json_deep_copy(draft->body);
    json_t *obj = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:o}", "from", ident->id, "key", key,
                            "to", draft->to, "seq", (json_int_t)draft->seq, "prev",
                            draft->prev == NULL ? "" : draft->prev, "time", draft->time, "type",
                            draft->type, "body", body);
    /* "o" steals body even when packing fails. */
    *out = obj;
    return obj == NULL ? LMQ_ENOMEM : LMQ_OK;
}

/* Canonicalizes obj (with sig added) after signing its canonical form without sig. */
static int envelope__sign_into(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES], json_t *obj,
                               struct lmq_buf *out, const char **reason)
{
    struct lmq_buf unsigned_ = {0};
    uint8_t sig[CRYPTO_ED25519_SIG_BYTES];
    char sig_text[ENVELOPE__SIG_CHARS + 1];
    int rc = crypto_jcs_canonicalize_json(obj, &unsigned_, LEDGER_ENVELOPE_MAX_BYTES);
    if (rc == LMQ_OK)
        rc = crypto_ed25519_sign(seed, unsigned_.data, unsigned_.len, sig);
    if (rc == LMQ_OK) {
        rc = crypto_b64url_encode(sig, sizeof(sig), sig_text, sizeof(sig_text));
        LMQ_ASSERT(rc == LMQ_OK);
        rc = json_object_set_new(obj, "sig", json_string(sig_text)) == 0 ? LMQ_OK : LMQ_ENOMEM;
    }
    if (rc == LMQ_OK) {
        size_t max = out->len > SIZE_MAX - LEDGER_ENVELOPE_MAX_BYTES
                         ? SIZE_MAX
                         : out->len + LEDGER_ENVELOPE_MAX_BYTES;
        rc = crypto_jcs_canonicalize_json(obj, out, max);
    }
    if (rc == LMQ_ETOOBIG)
        *reason = "too_large";
    else if (rc == LMQ_EINVAL || rc == LMQ_ELIMIT)
        *reason = "bad_body"; /* only the body can hold a value JCS refuses */
    lmq_buf_release(&unsigned_);
    return rc == LMQ_ELIMIT ? LMQ_EINVAL : rc;
}

int ledger_envelope_build(const uint8_t seed[CRYPTO_ED25519_SEED_BYTES],
                          const struct ledger_envelope_draft *draft, struct lmq_buf *out,
                          const char **reason)
{
    LMQ_ASSERT(seed != NULL && draft != NULL);
    LMQ_ASSERT(out != NULL && reason != NULL);
    *reason = NULL;
    const char *prev = draft->prev == NULL ? "" : draft->prev;
    int64_t time_s = 0;
    uint32_t time_ns = 0;
    *reason = envelope__check_fields(
        draft->to, draft->to == NULL ? 0 : strlen(draft->to), draft->seq, prev, strlen(prev),
        draft->time, draft->time == NULL ? 0 : strlen(draft->time), draft->type,
        draft->type == NULL ? 0 : strlen(draft->type), &time_s, &time_ns);
    if (*reason == NULL && !json_is_object(draft->body))
        *reason = "bad_body";
    if (*reason != NULL)
        return LMQ_EINVAL;
    struct crypto_identity ident;
    json_t *obj = NULL;
    int rc = crypto_identity_from_seed(seed, &ident);
    if (rc == LMQ_OK)
        rc = envelope__draft_object(&ident, draft, &obj);
    if (rc == LMQ_OK)
        rc = envelope__sign_into(seed, obj, out, reason);
    json_decref(obj);
    OPENSSL_cleanse(&ident, sizeof(ident));
    return rc;
}
