/*
 * libFuzzer target for src/mqtt/mqtt_topic.c. The input is split into a filter and a topic
 * (first byte = filter length). Oracles, each an independent re-implementation or a law:
 *   - mqtt_utf8_valid agrees with a code-point-by-code-point reference decoder;
 *   - mqtt_topic_matches agrees with a recursive reference matcher for valid filters/names;
 *   - a valid name matches itself and, unless it starts with "$share/", is a valid filter;
 *   - "#" matches every valid name not starting with '$';
 *   - mqtt_topic_shared_split returns slices inside the input that add up to it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt_topic.h"

#include "fuzz_check.h"

/* Reference UTF-8 check: decode each code point, then judge its value. */
static bool ref_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp = s[i];
        size_t n = 0;
        uint32_t min = 0;
        if (cp < 0x80) {
            n = 1;
        } else if ((cp & 0xE0) == 0xC0) {
            n = 2, cp &= 0x1F, min = 0x80;
        } else if ((cp & 0xF0) == 0xE0) {
            n = 3, cp &= 0x0F, min = 0x800;
        } else if ((cp & 0xF8) == 0xF0) {
            n = 4, cp &= 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i < n) {
            return false;
        }
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp == 0 || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n;
    }
    return true;
}

/* Length of the level starting at s (up to '/' or end). */
static size_t level_len(const uint8_t *s, size_t len)
{
    const uint8_t *slash = memchr(s, '/', len);
    return slash ? (size_t)(slash - s) : len;
}

/* Reference matcher, recursive over levels (filter and topic are at a level start). */
static bool ref_match(const uint8_t *f, size_t fl, const uint8_t *t, size_t tl, bool t_done)
{
    size_t flev = level_len(f, fl);
    bool f_last = flev == fl;
    if (flev == 1 && f[0] == '#') {
        return true;
    }
    if (t_done) {
        return false;
    }
    size_t tlev = level_len(t, tl);
    bool t_last = tlev == tl;
    bool same = (flev == 1 && f[0] == '+') || (flev == tlev && memcmp(f, t, flev) == 0);
    if (!same) {
        return false;
    }
    if (f_last) {
        return t_last;
    }
    if (t_last) {
        /* topic has no more levels: only a trailing "#" can still match */
        return ref_match(f + flev + 1, fl - flev - 1, t, 0, true);
    }
    return ref_match(f + flev + 1, fl - flev - 1, t + tlev + 1, tl - tlev - 1, false);
}

static bool starts_with(const uint8_t *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static void check_split(const uint8_t *s, size_t len)
{
    const uint8_t *group = NULL, *rest = NULL;
    size_t group_len = 0, rest_len = 0;
    if (mqtt_topic_shared_split(s, len, &group, &group_len, &rest, &rest_len)) {
        CHECK(starts_with(s, len, "$share/"));
        CHECK(group == s + 7 && memchr(group, '/', group_len) == NULL);
        CHECK(rest == group + group_len + 1 && 7 + group_len + 1 + rest_len == len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t fl = data[0] < size - 1 ? data[0] : size - 1;
    const uint8_t *f = data + 1;
    const uint8_t *t = data + 1 + fl;
    size_t tl = size - 1 - fl;

    CHECK(mqtt_utf8_valid(data, size) == ref_utf8_valid(data, size));
    CHECK(mqtt_utf8_valid(f, fl) == ref_utf8_valid(f, fl));
    bool name_ok = mqtt_topic_name_valid(t, tl);
    bool filter_ok = mqtt_topic_filter_valid(f, fl);
    check_split(f, fl);
    check_split(t, tl);

    bool got = mqtt_topic_matches(f, fl, t, tl);
    if (filter_ok && name_ok && !starts_with(f, fl, "$share/")) {
        bool dollar_guard = t[0] == '$' && (f[0] == '+' || f[0] == '#');
        bool want = !dollar_guard && ref_match(f, fl, t, tl, false);
        CHECK(got == want);
    }
    if (name_ok) {
        CHECK(mqtt_topic_matches(t, tl, t, tl));
        CHECK(mqtt_topic_matches((const uint8_t *)"#", 1, t, tl) == (t[0] != '$'));
        if (!starts_with(t, tl, "$share/")) {
            CHECK(mqtt_topic_filter_valid(t, tl));
        }
    }
    return 0;
}
