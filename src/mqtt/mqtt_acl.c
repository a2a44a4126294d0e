/*
 * ACL file parser and matcher (syntax and semantics in mqtt_acl.h). Rules are kept in file
 * order in one array and scanned linearly: ACL files are short, and a scan is easy to check.
 */
#include "mqtt/mqtt_acl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mqtt/mqtt_topic.h"

/* Longest user name a "user" line may name. */
#define ACL_USER_MAX_BYTES 256
#define ACL_RULES_INITIAL 16

struct acl_rule {
    uint8_t access;   /* enum mqtt_acl_access bits */
    bool pattern;     /* %u / %c levels are substituted */
    bool uses_user;   /* a pattern with a %u level */
    bool uses_client; /* a pattern with a %c level */
    char *user;       /* section's user name (owned), NULL for every authenticated client */
    size_t user_len;
    uint8_t *filter; /* owned */
    size_t filter_len;
};

struct mqtt_acl {
    struct acl_rule *rules;
    size_t count, cap;
};

__attribute__((format(printf, 3, 4))) static void acl_err(char *err, size_t err_len,
                                                          const char *fmt, ...)
{
    if (err == NULL || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    if (n < 0)
        err[0] = '\0';
}

void mqtt_acl_free(struct mqtt_acl *acl)
{
    if (acl == NULL)
        return;
    for (size_t i = 0; i < acl->count; i++) {
        free(acl->rules[i].user);
        free(acl->rules[i].filter);
    }
    free(acl->rules);
    free(acl);
}

size_t mqtt_acl_rule_count(const struct mqtt_acl *acl)
{
    LMQ_ASSERT(acl != NULL);
    return acl->count;
}

static bool acl_is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Trims spaces and tabs from both ends of [*s, *s + *len). */
static void acl_trim(const char **s, size_t *len)
{
    while (*len > 0 && acl_is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && acl_is_space((*s)[*len - 1]))
        (*len)--;
}

/* Splits the first word off [s, s + len): *word_len, and the trimmed rest in *rest, *rest_len. */
static void acl_split(const char *s, size_t len, size_t *word_len, const char **rest,
                      size_t *rest_len)
{
    size_t i = 0;
    while (i < len && !acl_is_space(s[i]))
        i++;
    *word_len = i;
    *rest = s + i;
    *rest_len = len - i;
    acl_trim(rest, rest_len);
}

static bool acl_word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

/* In a pattern, a level holding '%' must be exactly %u or %c. */
static bool acl_pattern_levels_valid(const char *f, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && f[i] != '/')
            continue;
        const char *lvl = f + start;
        size_t lvl_len = i - start;
        if (memchr(lvl, '%', lvl_len) != NULL && !acl_word_is(lvl, lvl_len, "%u") &&
            !acl_word_is(lvl, lvl_len, "%c"))
            return false;
        start = i + 1;
    }
    return true;
}

/* True when one level of f is exactly word. */
static bool acl_pattern_uses(const char *f, size_t len, const char *word)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && f[i] != '/')
            continue;
        if (acl_word_is(f + start, i - start, word))
            return true;
        start = i + 1;
    }
    return false;
}

static int acl_add(struct mqtt_acl *acl, const struct acl_rule *proto, const char *filter,
                   size_t filter_len)
{
    LMQ_ASSERT(acl != NULL && proto != NULL);
    LMQ_ASSERT(filter_len > 0);
    if (acl->count >= MQTT_ACL_RULES_MAX)
        return LMQ_ELIMIT;
    if (acl->count == acl->cap) {
        size_t cap = acl->cap == 0 ? ACL_RULES_INITIAL : LMQ_MIN(acl->cap * 2, MQTT_ACL_RULES_MAX);
        struct acl_rule *grown = realloc(acl->rules, cap * sizeof(*grown));
        if (grown == NULL)
            return LMQ_ENOMEM;
        acl->rules = grown;
        acl->cap = cap;
    }
    struct acl_rule r = *proto;
    r.filter = malloc(filter_len);
    r.user = NULL;
    if (proto->user != NULL)
        r.user = malloc(proto->user_len + 1);
    if (r.filter == NULL || (proto->user != NULL && r.user == NULL)) {
        free(r.filter);
        free(r.user);
        return LMQ_ENOMEM;
    }
    memcpy(r.filter, filter, filter_len);
    r.filter_len = filter_len;
    r.uses_user = r.pattern && acl_pattern_uses(filter, filter_len, "%u");
    r.uses_client = r.pattern && acl_pattern_uses(filter, filter_len, "%c");
    if (r.user != NULL)
        memcpy(r.user, proto->user, proto->user_len + 1);
    acl->rules[acl->count++] = r;
    return LMQ_OK;
}

/* "topic|pattern [access] filter": rest is the text after the keyword. */
static int acl_rule_line(struct mqtt_acl *acl, struct acl_rule *proto, const char *rest,
                         size_t rest_len, size_t lineno, char *err, size_t err_len)
{
    size_t word_len = 0, filter_len = 0;
    const char *filter = NULL;
    acl_split(rest, rest_len, &word_len, &filter, &filter_len);
    bool access_word = acl_word_is(rest, word_len, "read") ||
                       acl_word_is(rest, word_len, "write") ||
                       acl_word_is(rest, word_len, "readwrite");
    if (filter_len == 0 && access_word) {
        acl_err(err, err_len, "line %zu: expected a topic filter after \"%.*s\"", lineno,
                (int)word_len, rest);
        return LMQ_EINVAL;
    }
    if (filter_len == 0) { /* mosquitto: "topic <filter>" means readwrite */
        proto->access = MQTT_ACL_READWRITE;
        filter = rest;
        filter_len = word_len;
    } else if (acl_word_is(rest, word_len, "read")) {
        proto->access = MQTT_ACL_READ;
    } else if (acl_word_is(rest, word_len, "write")) {
        proto->access = MQTT_ACL_WRITE;
    } else if (acl_word_is(rest, word_len, "readwrite")) {
        proto->access = MQTT_ACL_READWRITE;
    } else {
        acl_err(err, err_len, "line %zu: expected read, write or readwrite, got \"%.*s\"%s", lineno,
                (int)LMQ_MIN(word_len, 32), rest,
                acl_word_is(rest, word_len, "deny") ? " (deny rules are not supported)" : "");
        return LMQ_EINVAL;
    }
    const uint8_t *f = (const uint8_t *)filter;
    const uint8_t *group = NULL, *inner = NULL;
    size_t group_len = 0, inner_len = 0;
    if (filter_len == 0 || !mqtt_topic_filter_valid(f, filter_len) ||
        mqtt_topic_shared_split(f, filter_len, &group, &group_len, &inner, &inner_len)) {
        acl_err(err, err_len, "line %zu: expected a topic filter (not shared)", lineno);
        return LMQ_EINVAL;
    }
    if ((filter_len >= 3 && memcmp(filter, "id/", 3) == 0) ||
        acl_word_is(filter, filter_len, "id")) {
        acl_err(err, err_len, "line %zu: id/ topics have fixed permissions, not ACL rules", lineno);
        return LMQ_EINVAL;
    }
    if (proto->pattern && !acl_pattern_levels_valid(filter, filter_len)) {
        acl_err(err, err_len, "line %zu: %%u and %%c must each be a whole topic level", lineno);
        return LMQ_EINVAL;
    }
    int rc = acl_add(acl, proto, filter, filter_len);
    if (rc == LMQ_ELIMIT)
        acl_err(err, err_len, "line %zu: more than %d rules", lineno, MQTT_ACL_RULES_MAX);
    return rc;
}

/* One trimmed, non-blank, non-comment line. *section holds the current user (NULL = all). */
static int acl_line(struct mqtt_acl *acl, const char *line, size_t len, size_t lineno,
                    struct acl_rule *section, char *err, size_t err_len)
{
    LMQ_ASSERT(len > 0 && line[0] != '#');
    size_t word_len = 0, rest_len = 0;
    const char *rest = NULL;
    acl_split(line, len, &word_len, &rest, &rest_len);
    if (acl_word_is(line, word_len, "user")) {
        if (rest_len == 0 || rest_len > ACL_USER_MAX_BYTES || memchr(rest, '\0', rest_len)) {
            acl_err(err, err_len, "line %zu: expected user <name> (1..%d bytes)", lineno,
                    ACL_USER_MAX_BYTES);
            return LMQ_EINVAL;
        }
        char *name = malloc(rest_len + 1);
        if (name == NULL)
            return LMQ_ENOMEM;
        memcpy(name, rest, rest_len);
        name[rest_len] = '\0';
        free(section->user);
        section->user = name;
        section->user_len = rest_len;
        return LMQ_OK;
    }
    bool topic = acl_word_is(line, word_len, "topic");
    if (!topic && !acl_word_is(line, word_len, "pattern")) {
        acl_err(err, err_len,
                "line %zu: unknown keyword \"%.*s\" (expected user, topic or pattern)", lineno,
                (int)LMQ_MIN(word_len, 32), line);
        return LMQ_EINVAL;
    }
    if (rest_len == 0) {
        acl_err(err, err_len, "line %zu: expected %s <access> <filter>", lineno,
                topic ? "topic" : "pattern");
        return LMQ_EINVAL;
    }
    struct acl_rule proto = *section;
    proto.pattern = !topic;
    return acl_rule_line(acl, &proto, rest, rest_len, lineno, err, err_len);
}

int mqtt_acl_parse(const char *text, size_t len, struct mqtt_acl **out, char *err, size_t err_len)
{
    LMQ_ASSERT(text != NULL || len == 0);
    LMQ_ASSERT(out != NULL);
    *out = NULL;
    struct acl_rule section = {0};
    struct mqtt_acl *acl = calloc(1, sizeof(*acl));
    int rc = acl == NULL ? LMQ_ENOMEM : LMQ_OK;
    size_t pos = 0, lineno = 0;
    /* One line per turn; each consumes at least its newline, so len bounds the loop. */
    while (rc == LMQ_OK && pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        const char *line = text + pos;
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += line_len + 1;
        lineno++;
        if (line_len > MQTT_ACL_LINE_MAX_BYTES) {
            acl_err(err, err_len, "line %zu: longer than %d bytes", lineno,
                    MQTT_ACL_LINE_MAX_BYTES);
            rc = LMQ_EINVAL;
            break;
        }
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        acl_trim(&line, &line_len);
        if (memchr(line, '\0', line_len) != NULL) {
            acl_err(err, err_len, "line %zu: NUL byte", lineno);
            rc = LMQ_EINVAL;
        } else if (line_len > 0 && line[0] != '#') {
            rc = acl_line(acl, line, line_len, lineno, &section, err, err_len);
        }
    }
    free(section.user);
    if (rc != LMQ_OK) {
        mqtt_acl_free(acl);
        return rc;
    }
    *out = acl;
    return LMQ_OK;
}

int mqtt_acl_load(const char *path, struct mqtt_acl **out, char *err, size_t err_len)
{
    LMQ_ASSERT(path != NULL && out != NULL);
    char *text = NULL;
    size_t len = 0;
    char msg[256] = "";
    int rc = lmq_file_read(path, MQTT_ACL_FILE_MAX_BYTES, &text, &len, err, err_len);
    if (rc != LMQ_OK)
        return rc;
    rc = mqtt_acl_parse(text, len, out, msg, sizeof(msg));
    if (rc != LMQ_OK)
        acl_err(err, err_len, "%s: %s", path, msg[0] != '\0' ? msg : lmq_strerror(rc));
    free(text);
    return rc;
}

/* The level of s starting at pos: its length, and whether it is the last one. */
static size_t acl_level(const uint8_t *s, size_t len, size_t pos, bool *last)
{
    const uint8_t *slash = pos < len ? memchr(s + pos, '/', len - pos) : NULL;
    size_t end = slash != NULL ? (size_t)(slash - s) : len;
    *last = slash == NULL;
    return end - pos;
}

/* A value substituted for %u or %c must be one plain, non-empty level. */
static bool acl_substitutable(const uint8_t *v, size_t len)
{
    return len > 0 && memchr(v, '/', len) == NULL && memchr(v, '+', len) == NULL &&
           memchr(v, '#', len) == NULL;
}

/* ACL level [lvl, lvl + *len): in a pattern, %u/%c are replaced by who's values. */
static const uint8_t *acl_resolve(bool pattern, const struct mqtt_acl_client *who,
                                  const uint8_t *lvl, size_t *len)
{
    if (!pattern || *len != 2 || lvl[0] != '%')
        return lvl;
    if (lvl[1] == 'u') {
        *len = who->user_len;
        return who->user;
    }
    if (lvl[1] == 'c') {
        *len = who->client_id_len;
        return who->client_id;
    }
    return lvl;
}

/* The covering walk (mqtt_acl.h), one level of each per turn; a's length bounds it. */
static bool acl_covers(const uint8_t *a, size_t a_len, bool pattern,
                       const struct mqtt_acl_client *who, const uint8_t *f, size_t f_len)
{
    LMQ_ASSERT(a != NULL && a_len > 0);
    LMQ_ASSERT(f != NULL && f_len > 0);
    bool dollar = f[0] == '$', f_done = false;
    size_t ai = 0, fi = 0;
    for (size_t level = 0; level <= a_len; level++) {
        bool a_last = false, f_last = false;
        size_t a_raw = acl_level(a, a_len, ai, &a_last);
        size_t alen = a_raw;
        const uint8_t *alvl = acl_resolve(pattern, who, a + ai, &alen);
        bool a_wild = alvl == a + ai && alen == 1 && (alvl[0] == '#' || alvl[0] == '+');
        if (a_wild && alvl[0] == '#')
            return !(level == 0 && dollar);
        if (f_done)
            return false;
        size_t flen = acl_level(f, f_len, fi, &f_last);
        if (a_wild) {
            if ((flen == 1 && f[fi] == '#') || (level == 0 && dollar))
                return false;
        } else if (alen != flen || memcmp(alvl, f + fi, flen) != 0) {
            return false;
        }
        if (a_last)
            return f_last;
        f_done = f_last;
        ai += a_raw + 1;
        fi += flen + 1;
    }
    LMQ_UNREACHABLE("an ACL filter has at most a_len levels");
}

static bool acl_allows(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                       uint8_t access, const uint8_t *f, size_t f_len)
{
    LMQ_ASSERT(acl != NULL && who != NULL);
    LMQ_ASSERT(access == MQTT_ACL_READ || access == MQTT_ACL_WRITE);
    if (who->user_len == 0 || f_len == 0)
        return false; /* rules are for authenticated clients */
    bool user_ok = acl_substitutable(who->user, who->user_len);
    bool client_ok = acl_substitutable(who->client_id, who->client_id_len);
    for (size_t i = 0; i < acl->count; i++) {
        const struct acl_rule *r = &acl->rules[i];
        if (!(r->access & access))
            continue;
        if (r->user != NULL &&
            (r->user_len != who->user_len || memcmp(r->user, who->user, r->user_len) != 0))
            continue;
        if ((r->uses_user && !user_ok) || (r->uses_client && !client_ok))
            continue; /* substitution would not be one plain level */
        if (acl_covers(r->filter, r->filter_len, r->pattern, who, f, f_len))
            return true;
    }
    return false;
}

bool mqtt_acl_may_publish(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                          const uint8_t *topic, size_t len)
{
    return acl_allows(acl, who, MQTT_ACL_WRITE, topic, len);
}

bool mqtt_acl_may_subscribe(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                            const uint8_t *filter, size_t len)
{
    return acl_allows(acl, who, MQTT_ACL_READ, filter, len);
}

bool mqtt_acl_filter_covers(const uint8_t *acl_filter, size_t acl_len, const uint8_t *filter,
                            size_t len)
{
    static const struct mqtt_acl_client nobody = {0};
    if (acl_len == 0 || len == 0)
        return false;
    return acl_covers(acl_filter, acl_len, false, &nobody, filter, len);
}
