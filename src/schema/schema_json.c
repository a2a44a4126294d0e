/*
 * JSON values as JSON Schema sees them: numbers by value (jansson's integer/real split does not
 * matter: 1 == 1.0, and 1.0 is an integer), objects without key order, strings in code points.
 */
#include <math.h>
#include <string.h>

#include "schema/schema_internal.h"

bool schema__is_integer(const json_t *v)
{
    if (json_is_integer(v)) {
        return true;
    }
    if (!json_is_real(v)) {
        return false;
    }
    double d = json_real_value(v);
    return isfinite(d) && floor(d) == d;
}

double schema__number(const json_t *v)
{
    LMQ_ASSERT(json_is_number(v));
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

/* Numbers compare exactly when both are integers (64-bit), else by double value. */
static bool json__num_equal(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        return json_integer_value(a) == json_integer_value(b);
    }
    return schema__number(a) == schema__number(b);
}

/* Recursion bounded by the depth of the values: jansson's parser bounds that (2048 levels), and
 * validation refuses instances deeper than SCHEMA_INSTANCE_DEPTH_MAX before comparing. */
bool schema_json_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        return json__num_equal(a, b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return false;
    }
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) {
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if (!schema_json_equal(json_array_get(a, i), json_array_get(b, i))) {
                return false;
            }
        }
        return true;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) {
            return false;
        }
        const char *k;
        size_t klen;
        json_t *va;
        json_object_keylen_foreach((json_t *)a, k, klen, va)
        {
            const json_t *vb = json_object_getn(b, k, klen);
            if (vb == NULL || !schema_json_equal(va, vb)) {
                return false;
            }
        }
        return true;
    }
    default:
        return true; /* null, true, false: the type says it all */
    }
}

/* Combines h with x and avalanches (splitmix64's finalizer): doubles that hold integers have
 * all-zero low bits, and a table indexed by low bits must still spread them. */
static uint64_t json__mix(uint64_t h, uint64_t x)
{
    uint64_t z = h ^ (x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t json__bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    }
    return h;
}

/* A hash that agrees with schema_json_equal (equal values hash equal). */
uint64_t schema__hash(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = schema__number(v);
        if (d == 0.0) {
            d = 0.0; /* -0.0 == 0.0 */
        }
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        return json__mix(7, bits);
    }
    case JSON_STRING:
        return json__mix(5, json__bytes(json_string_value(v), json_string_length(v)));
    case JSON_ARRAY: {
        uint64_t h = 3;
        for (size_t i = 0; i < json_array_size(v); i++) {
            h = json__mix(h, schema__hash(json_array_get(v, i)));
        }
        return h;
    }
    case JSON_OBJECT: {
        uint64_t h = 0; /* order-independent: a sum of the members' hashes */
        const char *k;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, k, klen, m)
        {
            h += json__mix(json__bytes(k, klen), schema__hash(m));
        }
        return json__mix(11, h);
    }
    case JSON_TRUE:
        return 13;
    case JSON_FALSE:
        return 17;
    default:
        return 19;
    }
}

size_t schema__utf8_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((uint8_t)s[i] & 0xC0) != 0x80) {
            n++;
        }
    }
    return n;
}

json_t *schema_json_loadb(const char *text, size_t len, json_error_t *jerr)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, jerr);
    if (v == NULL && strstr(jerr->text, "too big") != NULL) {
        v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, jerr);
    }
    return v;
}
