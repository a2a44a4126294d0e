/*
 * RFC 8785 canonical JSON.
 *
 * Numbers: ECMAScript's Number.prototype.toString wants the fewest significant digits k that
 * read back as the same double, and among k-digit candidates the one closest to the value.
 * We get them without a bignum library: for k = 1..17, "%.*e" gives the k-digit decimal
 * nearest to v (glibc's printf is exact), and strtod tells whether it reads back as v. Near
 * a power of two the interval of decimals reading back as v is lopsided (the gap below is half
 * the gap above), so the nearest k-digit decimal can fall just outside it below v while its
 * upper neighbour (one unit in the k-th digit higher) still falls inside: we try that
 * neighbour too before moving to k + 1. 17 digits always round-trip, so the loop ends. The
 * digits are then laid out per ECMA-262 Number::toString (plain up to 21 integer digits,
 * "0.000001" down to 1e-6, exponent form "1e+21" / "1e-7" beyond). printf and strtod use the
 * C locale's '.', which is the only locale this program runs in.
 */
#include "crypto/jcs.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Significant digits that always identify a double (DBL_DECIMAL_DIG). */
#define JCS__DIGITS_MAX 17
/* ECMAScript writes numbers below 10^21 without an exponent, down to 10^-6. */
#define JCS__PLAIN_EXP_MAX 21
#define JCS__PLAIN_EXP_MIN (-6)
/* Room for "%.16e" of any double: "-d.dddddddddddddddde-308" plus a NUL. */
#define JCS__PRINTF_BYTES 40

/* The output buffer and the length it must not exceed. */
struct jcs__out {
    struct lmq_buf *buf;
    size_t max_bytes;
};

/* Checks the bound itself: lmq_buf_reserve only enforces max_bytes when it has to grow. */
static int jcs__put(struct jcs__out *o, const void *data, size_t len)
{
    if (o->buf->len > o->max_bytes || len > o->max_bytes - o->buf->len)
        return LMQ_ETOOBIG;
    int rc = lmq_buf_append(o->buf, data, len, o->max_bytes);
    return rc == LMQ_ELIMIT ? LMQ_ETOOBIG : rc;
}

/* Splits "%.*e" output "d.ddde[+-]xx" into its digits and decimal exponent. */
static void jcs__split_sci(const char *sci, char digits[JCS__DIGITS_MAX + 1], int *k, int *exp10)
{
    int n = 0;
    const char *p = sci;
    for (; *p != 'e' && *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            LMQ_ASSERT(n < JCS__DIGITS_MAX);
            digits[n++] = *p;
        }
    }
    LMQ_ASSERT(*p == 'e' && n >= 1);
    digits[n] = '\0';
    *k = n;
    *exp10 = atoi(p + 1);
}

/* True when "d.ddd" x 10^exp10 (k digits) reads back as v. */
static bool jcs__reads_back(const char *digits, int k, int exp10, double v)
{
    char text[JCS__PRINTF_BYTES];
    int n = snprintf(text, sizeof(text), "%c.%se%d", digits[0], k > 1 ? digits + 1 : "0", exp10);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(text));
    return strtod(text, NULL) == v;
}

/* Adds one unit in the last digit; false when that carries out of the first digit (the result
 * has fewer significant digits and was a candidate for an earlier k already). */
static bool jcs__increment(char *digits, int k)
{
    for (int i = k - 1; i >= 0; i--) {
        if (digits[i] != '9') {
            digits[i]++;
            return true;
        }
        digits[i] = '0';
    }
    return false;
}

/* Shortest round-trip digits of finite v > 0: v ~ 0.d1..dk x 10^n (ECMAScript's k and n). */
static void jcs__shortest(double v, char digits[JCS__DIGITS_MAX + 1], int *k, int *n)
{
    LMQ_ASSERT(v > 0 && isfinite(v));
    char sci[JCS__PRINTF_BYTES];
    int exp10 = 0;
    bool found = false;
    for (int p = 1; p <= JCS__DIGITS_MAX && !found; p++) {
        int len = snprintf(sci, sizeof(sci), "%.*e", p - 1, v);
        LMQ_ASSERT(len > 0 && (size_t)len < sizeof(sci));
        jcs__split_sci(sci, digits, k, &exp10);
        if (strtod(sci, NULL) == v) {
            found = true;
        } else if (strtod(sci, NULL) < v && jcs__increment(digits, *k) &&
                   jcs__reads_back(digits, *k, exp10, v)) {
            found = true;
        }
    }
    LMQ_ASSERT(found);
    while (*k > 1 && digits[*k - 1] == '0')
        digits[--*k] = '\0';
    *n = exp10 + 1;
}

int crypto_jcs_format_number(double v, char out[CRYPTO_JCS_NUMBER_MAX_BYTES], size_t *out_len)
{
    LMQ_ASSERT(out != NULL && out_len != NULL);
    *out_len = 0;
    out[0] = '\0';
    if (!isfinite(v))
        return LMQ_EINVAL;
    if (v == 0) { /* both +0 and -0 */
        out[0] = '0';
        out[1] = '\0';
        *out_len = 1;
        return LMQ_OK;
    }
    char d[JCS__DIGITS_MAX + 1];
    int k = 0;
    int n = 0;
    jcs__shortest(fabs(v), d, &k, &n);
    /* Worst case: sign, 17 digits, point, "e-324": well under CRYPTO_JCS_NUMBER_MAX_BYTES; the
     * 21-digit plain integers are the longest: sign + 21 digits. */
    size_t o = 0;
    if (v < 0)
        out[o++] = '-';
    if (k <= n && n <= JCS__PLAIN_EXP_MAX) { /* integer: digits then n - k zeros */
        memcpy(out + o, d, (size_t)k);
        o += (size_t)k;
        memset(out + o, '0', (size_t)(n - k));
        o += (size_t)(n - k);
    } else if (0 < n && n <= JCS__PLAIN_EXP_MAX) { /* point inside the digits */
        memcpy(out + o, d, (size_t)n);
        o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, d + n, (size_t)(k - n));
        o += (size_t)(k - n);
    } else if (JCS__PLAIN_EXP_MIN < n && n <= 0) { /* "0.", -n zeros, digits */
        out[o++] = '0';
        out[o++] = '.';
        memset(out + o, '0', (size_t)-n);
        o += (size_t)-n;
        memcpy(out + o, d, (size_t)k);
        o += (size_t)k;
    } else { /* exponent form: d[.ddd]e(+|-)x */
        int len = snprintf(out + o, CRYPTO_JCS_NUMBER_MAX_BYTES - o, "%c%s%se%c%d", d[0],
                           k > 1 ? "." : "", d + 1, n - 1 >= 0 ? '+' : '-', abs(n - 1));
        LMQ_ASSERT(len > 0 && (size_t)len < CRYPTO_JCS_NUMBER_MAX_BYTES - o);
        o += (size_t)len;
    }
    LMQ_ASSERT(o < CRYPTO_JCS_NUMBER_MAX_BYTES);
    out[o] = '\0';
    *out_len = o;
    return LMQ_OK;
}

/* Decodes one UTF-8 sequence at s[*pos] into *cp (strict: shortest form, no surrogates, at most
 * U+10FFFF). Returns false on an invalid sequence. */
static bool jcs__utf8_next(const uint8_t *s, size_t len, size_t *pos, uint32_t *cp)
{
    LMQ_ASSERT(*pos < len);
    uint8_t b = s[*pos];
    size_t extra;
    uint32_t v;
    uint32_t min;
    if (b < 0x80) {
        *cp = b;
        (*pos)++;
        return true;
    } else if ((b & 0xe0) == 0xc0) {
        extra = 1, v = b & 0x1fu, min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
        extra = 2, v = b & 0x0fu, min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
        extra = 3, v = b & 0x07u, min = 0x10000;
    } else {
        return false;
    }
    if (len - *pos <= extra)
        return false;
    for (size_t i = 1; i <= extra; i++) {
        uint8_t c = s[*pos + i];
        if ((c & 0xc0) != 0x80)
            return false;
        v = v << 6 | (c & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return false;
    *cp = v;
    *pos += extra + 1;
    return true;
}

static bool jcs__utf8_valid(const uint8_t *s, size_t len)
{
    size_t pos = 0;
    uint32_t cp;
    /* Each step consumes at least one byte, so the loop ends within len steps. */
    while (pos < len) {
        if (!jcs__utf8_next(s, len, &pos, &cp))
            return false;
    }
    return true;
}

/* Writes s as a JSON string: short escapes for \b \t \n \f \r \" \\, \u00xx for other
 * controls, everything else (including '/', DEL and non-ASCII) as its UTF-8 bytes. */
static int jcs__put_string(struct jcs__out *o, const uint8_t *s, size_t len)
{
    LMQ_ASSERT(s != NULL || len == 0);
    if (!jcs__utf8_valid(s, len))
        return LMQ_EINVAL;
    int rc = jcs__put(o, "\"", 1);
    size_t run = 0; /* start of the pending literal bytes */
    for (size_t i = 0; i < len && rc == LMQ_OK; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = jcs__put(o, s + run, i - run);
        run = i + 1;
        char esc[8];
        int n;
        switch (c) {
        case '\b':
            n = snprintf(esc, sizeof(esc), "\\b");
            break;
        case '\t':
            n = snprintf(esc, sizeof(esc), "\\t");
            break;
        case '\n':
            n = snprintf(esc, sizeof(esc), "\\n");
            break;
        case '\f':
            n = snprintf(esc, sizeof(esc), "\\f");
            break;
        case '\r':
            n = snprintf(esc, sizeof(esc), "\\r");
            break;
        case '"':
            n = snprintf(esc, sizeof(esc), "\\\"");
            break;
        case '\\':
            n = snprintf(esc, sizeof(esc), "\\\\");
            break;
        default:
            n = snprintf(esc, sizeof(esc), "\\u%04x", c);
            break;
        }
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(esc));
        if (rc == LMQ_OK)
            rc = jcs__put(o, esc, (size_t)n);
    }
    if (rc == LMQ_OK)
        rc = jcs__put(o, s + run, len - run);
    if (rc == LMQ_OK)
        rc = jcs__put(o, "\"", 1);
    return rc;
}

struct jcs__member {
    const uint8_t *name;
    size_t name_len;
    json_t *value;
};

/* The first UTF-16 code unit of a code point: astral code points (surrogate pairs, starting
 * 0xD800..0xDBFF) sort before U+E000..U+FFFF in UTF-16 although they follow them in UTF-8. */
static uint32_t jcs__utf16_lead(uint32_t cp)
{
    return cp < 0x10000 ? cp : 0xd800 + ((cp - 0x10000) >> 10);
}

/* Orders member names as arrays of UTF-16 code units (RFC 8785 §3.2.3). Names were validated
 * as UTF-8 before sorting. */
static int jcs__member_cmp(const void *pa, const void *pb)
{
    const struct jcs__member *a = pa;
    const struct jcs__member *b = pb;
    size_t i = 0;
    size_t j = 0;
    /* Each step consumes at least one byte of each name. */
    while (i < a->name_len && j < b->name_len) {
        uint32_t ca = 0;
        uint32_t cb = 0;
        bool ok = jcs__utf8_next(a->name, a->name_len, &i, &ca) &&
                  jcs__utf8_next(b->name, b->name_len, &j, &cb);
        LMQ_ASSERT(ok);
        if (ca == cb)
            continue;
        uint32_t la = jcs__utf16_lead(ca);
        uint32_t lb = jcs__utf16_lead(cb);
        if (la != lb)
            return la < lb ? -1 : 1;
        return ca < cb ? -1 : 1; /* same lead surrogate: trail order is code point order */
    }
    if (i < a->name_len)
        return 1;
    return j < b->name_len ? -1 : 0;
}

static int jcs__put_value(struct jcs__out *o, const json_t *v, int depth);

static int jcs__put_object(struct jcs__out *o, json_t *obj, int depth)
{
    LMQ_ASSERT(json_is_object(obj));
    size_t count = json_object_size(obj);
    if (count == 0)
        return jcs__put(o, "{}", 2);
    int rc = LMQ_ENOMEM;
    struct jcs__member *m = calloc(count, sizeof(*m));
    if (m == NULL)
        return LMQ_ENOMEM;
    size_t n = 0;
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach(obj, key, key_len, value)
    {
        LMQ_ASSERT(n < count);
        m[n++] = (struct jcs__member){(const uint8_t *)key, key_len, value};
        if (!jcs__utf8_valid((const uint8_t *)key, key_len)) {
            rc = LMQ_EINVAL;
            goto out;
        }
    }
    LMQ_ASSERT(n == count);
    qsort(m, n, sizeof(*m), jcs__member_cmp);
    rc = jcs__put(o, "{", 1);
    for (size_t i = 0; i < n && rc == LMQ_OK; i++) {
        if (i > 0)
            rc = jcs__put(o, ",", 1);
        if (rc == LMQ_OK)
            rc = jcs__put_string(o, m[i].name, m[i].name_len);
        if (rc == LMQ_OK)
            rc = jcs__put(o, ":", 1);
        if (rc == LMQ_OK)
            rc = jcs__put_value(o, m[i].value, depth + 1);
    }
    if (rc == LMQ_OK)
        rc = jcs__put(o, "}", 1);
out:
    free(m);
    return rc;
}

static int jcs__put_number(struct jcs__out *o, double d)
{
    char text[CRYPTO_JCS_NUMBER_MAX_BYTES];
    size_t len = 0;
    int rc = crypto_jcs_format_number(d, text, &len);
    if (rc != LMQ_OK)
        return rc;
    return jcs__put(o, text, len);
}

static int jcs__put_value(struct jcs__out *o, const json_t *v, int depth)
{
    LMQ_ASSERT(v != NULL && depth >= 1);
    json_t *mv = (json_t *)v; /* jansson's iteration API is not const-qualified */
    bool nested = json_is_object(v) || json_is_array(v);
    if (nested && depth > CRYPTO_JCS_DEPTH_MAX)
        return LMQ_ELIMIT;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return jcs__put_object(o, mv, depth);
    case JSON_ARRAY: {
        int rc = jcs__put(o, "[", 1);
        size_t count = json_array_size(v);
        for (size_t i = 0; i < count && rc == LMQ_OK; i++) {
            if (i > 0)
                rc = jcs__put(o, ",", 1);
            if (rc == LMQ_OK)
                rc = jcs__put_value(o, json_array_get(v, i), depth + 1);
        }
        return rc == LMQ_OK ? jcs__put(o, "]", 1) : rc;
    }
    case JSON_STRING:
        return jcs__put_string(o, (const uint8_t *)json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i > CRYPTO_JCS_EXACT_INT_MAX || i < -CRYPTO_JCS_EXACT_INT_MAX)
            return LMQ_EINVAL; /* would not survive the trip through a double */
        return jcs__put_number(o, (double)i);
    }
    case JSON_REAL:
        return jcs__put_number(o, json_real_value(v));
    case JSON_TRUE:
        return jcs__put(o, "true", 4);
    case JSON_FALSE:
        return jcs__put(o, "false", 5);
    case JSON_NULL:
        return jcs__put(o, "null", 4);
    }
    LMQ_UNREACHABLE("unknown jansson type");
}

int crypto_jcs_canonicalize_json(const json_t *value, struct lmq_buf *out, size_t max_bytes)
{
    LMQ_ASSERT(value != NULL && out != NULL);
    size_t start_len = out->len;
    struct jcs__out o = {out, max_bytes};
    int rc = jcs__put_value(&o, value, 1);
    if (rc != LMQ_OK)
        out->len = start_len;
    LMQ_ASSERT(out->len <= LMQ_MAX(max_bytes, start_len));
    return rc;
}

/* Nesting depth of JSON text, counted before jansson builds anything, so a depth bomb costs a
 * scan and no allocation. Brackets inside strings do not count. */
static size_t jcs__text_depth(const uint8_t *s, size_t len)
{
    size_t depth = 0;
    size_t depth_max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* skip the escaped character (a '"' or '\\' among them) */
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            depth++;
            depth_max = LMQ_MAX(depth_max, depth);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return depth_max;
}

int crypto_jcs_parse(const uint8_t *json, size_t json_len, json_t **out)
{
    LMQ_ASSERT(out != NULL);
    LMQ_ASSERT(json != NULL || json_len == 0);
    *out = NULL;
    if (json_len > CRYPTO_JCS_INPUT_MAX_BYTES)
        return LMQ_ETOOBIG;
    if (jcs__text_depth(json, json_len) > CRYPTO_JCS_DEPTH_MAX)
        return LMQ_ELIMIT;
    json_error_t err;
    /* JSON_ALLOW_NUL: "\u0000" is valid I-JSON in a string value. */
    size_t flags =
        JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL;
    json_t *v = json_loadb((const char *)(json_len > 0 ? json : (const uint8_t *)""), json_len,
                           flags, &err);
    if (v == NULL)
        return json_error_code(&err) == json_error_out_of_memory ? LMQ_ENOMEM : LMQ_EPROTO;
    *out = v;
    return LMQ_OK;
}

int crypto_jcs_canonicalize(const uint8_t *json, size_t json_len, struct lmq_buf *out,
                            size_t max_bytes)
{
    LMQ_ASSERT(out != NULL);
    json_t *v = NULL;
    int rc = crypto_jcs_parse(json, json_len, &v);
    if (rc != LMQ_OK)
        return rc;
    LMQ_ASSERT(v != NULL);
    rc = crypto_jcs_canonicalize_json(v, out, max_bytes);
    /* A parsed value holds only doubles and checked UTF-8: EINVAL cannot come back. */
    LMQ_ASSERT(rc != LMQ_EINVAL);
    json_decref(v);
    return rc;
}
