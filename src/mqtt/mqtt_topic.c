/*
 * MQTT strings and topics. Every function here is pure: it reads s[0..len)
 * and nothing else, never allocates, and each loop is bounded by len.
 */
#include "mqtt/mqtt_topic.h"

#include <string.h>

#include "core/lmq.h"

/* Longest string MQTT can carry (two-byte length prefix). */
#define TOPIC_LEN_MAX 65535u

static const uint8_t topic__share_prefix[] = "$share/";
#define TOPIC_SHARE_PREFIX_LEN (sizeof(topic__share_prefix) - 1)

/*
 * Length of the UTF-8 sequence starting at s[0] (1..4), or 0 when it is not
 * well formed: bad lead byte, truncated, bad continuation, overlong,
 * surrogate or above U+10FFFF. The second-byte ranges follow RFC 3629 §4.
 */
static size_t topic__utf8_seq_len(const uint8_t *s, size_t avail)
{
    LMQ_ASSERT(avail > 0);
    uint8_t lead = s[0];
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

    if (lead < 0x80) {
        return 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        need = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        need = 3;
        if (lead == 0xE0) {
            lo = 0xA0; /* below is overlong */
        } else if (lead == 0xED) {
            hi = 0x9F; /* above is U+D800..U+DFFF */
        }
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        need = 4;
        if (lead == 0xF0) {
            lo = 0x90; /* below is overlong */
        } else if (lead == 0xF4) {
            hi = 0x8F; /* above is beyond U+10FFFF */
        }
    } else {
        return 0; /* 0x80..0xC1 (continuation or overlong lead) or 0xF5..0xFF */
    }
    if (avail < need) {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    LMQ_ASSERT(need >= 2 && need <= 4);
    return need;
}

bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t pos = 0;

    LMQ_ASSERT(s != NULL || len == 0);
    while (pos < len) {
        if (s[pos] == 0x00) {
            return false; /* U+0000 is forbidden in MQTT strings [MQTT-1.5.4-2] */
        }
        size_t n = topic__utf8_seq_len(s + pos, len - pos);
        if (n == 0) {
            return false;
        }
        pos += n;
    }
    LMQ_ASSERT(pos == len);
    return true;
}

bool mqtt_topic_name_valid(const uint8_t *s, size_t len)
{
    if (s == NULL || len == 0 || len > TOPIC_LEN_MAX) {
        return false;
    }
    return memchr(s, '+', len) == NULL && memchr(s, '#', len) == NULL;
}

/* Filter rules without the $share prefix: '+' fills a level, '#' fills the last level. */
static bool topic__plain_filter_valid(const uint8_t *s, size_t len)
{
    size_t level_start = 0;

    if (len == 0 || len > TOPIC_LEN_MAX) {
        return false;
    }
    LMQ_ASSERT(s != NULL);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '/') {
            level_start = i + 1;
            continue;
        }
        if (s[i] != '+' && s[i] != '#') {
            continue;
        }
        bool alone = i == level_start && (i + 1 == len || s[i + 1] == '/');
        if (!alone) {
            return false;
        }
        if (s[i] == '#' && i + 1 != len) {
            return false; /* '#' must be the last level */
        }
    }
    return true;
}

bool mqtt_topic_shared_split(const uint8_t *filter, size_t len, const uint8_t **group,
                             size_t *group_len, const uint8_t **rest, size_t *rest_len)
{
    LMQ_ASSERT(group != NULL && group_len != NULL);
    LMQ_ASSERT(rest != NULL && rest_len != NULL);
    if (filter == NULL || len < TOPIC_SHARE_PREFIX_LEN ||
        memcmp(filter, topic__share_prefix, TOPIC_SHARE_PREFIX_LEN) != 0) {
        return false;
    }
    const uint8_t *g = filter + TOPIC_SHARE_PREFIX_LEN;
    size_t avail = len - TOPIC_SHARE_PREFIX_LEN;
    const uint8_t *slash = memchr(g, '/', avail);
    if (slash == NULL) {
        return false; /* "$share/group" has no filter part */
    }
    *group = g;
    *group_len = (size_t)(slash - g);
    *rest = slash + 1;
    *rest_len = avail - *group_len - 1;
    return true;
}

bool mqtt_topic_filter_valid(const uint8_t *s, size_t len)
{
    const uint8_t *group = NULL, *rest = NULL;
    size_t group_len = 0, rest_len = 0;

    if (s == NULL || len == 0 || len > TOPIC_LEN_MAX) {
        return false;
    }
    if (len >= TOPIC_SHARE_PREFIX_LEN &&
        memcmp(s, topic__share_prefix, TOPIC_SHARE_PREFIX_LEN) == 0) {
        if (!mqtt_topic_shared_split(s, len, &group, &group_len, &rest, &rest_len)) {
            return false;
        }
        if (group_len == 0 || memchr(group, '+', group_len) != NULL ||
            memchr(group, '#', group_len) != NULL) {
            return false;
        }
        return topic__plain_filter_valid(rest, rest_len);
    }
    return topic__plain_filter_valid(s, len);
}

/* Walks the '/'-separated levels of a string; "a/" has two levels, "a" and "". */
struct topic_levels {
    const uint8_t *s;
    size_t len;
    size_t pos;
    bool done;
};

static bool topic__level_next(struct topic_levels *it, const uint8_t **level, size_t *level_len)
{
    if (it->done) {
        return false;
    }
    LMQ_ASSERT(it->pos <= it->len);
    size_t end = it->pos;
    while (end < it->len && it->s[end] != '/') {
        end++;
    }
    *level = it->s + it->pos;
    *level_len = end - it->pos;
    if (end == it->len) {
        it->done = true;
    } else {
        it->pos = end + 1;
    }
    return true;
}

bool mqtt_topic_matches(const uint8_t *filter, size_t filter_len, const uint8_t *topic,
                        size_t topic_len)
{
    struct topic_levels f = {.s = filter, .len = filter_len};
    struct topic_levels t = {.s = topic, .len = topic_len};
    const uint8_t *fl = NULL, *tl = NULL;
    size_t fl_len = 0, tl_len = 0;

    if (filter == NULL || topic == NULL || filter_len == 0 || topic_len == 0) {
        return false;
    }
    /* [MQTT-4.7.2-1]: a leading wildcard does not match topics starting with '$'. */
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) {
        return false;
    }
    /*
     * Every round but the last consumes one filter level, and a filter has at most
     * filter_len + 1 levels ("/" has two), so filter_len + 2 rounds are enough.
     */
    for (size_t round = 0; round < filter_len + 2; round++) {
        bool have_f = topic__level_next(&f, &fl, &fl_len);
        bool have_t = topic__level_next(&t, &tl, &tl_len);
        if (!have_f) {
            return !have_t;
        }
        if (fl_len == 1 && fl[0] == '#') {
            return true; /* zero or more levels, so "a/#" also matches "a" */
        }
        if (!have_t) {
            return false;
        }
        if (fl_len == 1 && fl[0] == '+') {
            continue;
        }
        if (fl_len != tl_len || memcmp(fl, tl, fl_len) != 0) {
            return false;
        }
    }
    LMQ_UNREACHABLE("filter has more levels than bytes");
    return false;
}
