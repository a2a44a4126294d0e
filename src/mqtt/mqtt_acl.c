/*
 * ACL file parser and matcher (syntax and semantics in mqtt_acl.h). After parsing, the rules are
 * sorted into sections: the topic rules of each user (the anonymous section first, then by user
 * name, for a binary search), then the patterns; within each, the denies first, in file order.
 * A check scans the asker's section and the patterns: ACL files are short, and a scan is easy
 * to check against mosquitto's.
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
    uint8_t access;   /* enum mqtt_acl_access: MQTT_ACL_DENY or read/write bits */
    bool pattern;     /* %u / %c levels are substituted */
    bool uses_user;   /* a pattern with a %u level */
    bool uses_client; /* a pattern with a %c level */
    uint32_t line;    /* file order, for a stable sort */
    char *user;       /* topic rule: its section's user name (owned); NULL: anonymous, pattern */
    size_t user_len;
    uint8_t *filter; /* owned */
    size_t filter_len;
};

/* One user's topic rules (or the anonymous ones): rules[start, end), denies first. */
struct acl_section {
    const char *user; /* NULL for the anonymous section */
    size_t user_len;
    size_t start, end;
};

struct mqtt_acl {
    struct acl_rule *rules; /* topic rules by section, then the patterns */
    size_t count, cap;
    struct acl_section *sections; /* the anonymous one first (if any), then by user name */
    size_t section_count;
    size_t pattern_start; /* patterns are rules[pattern_start, count) */
};

void mqtt_acl_free(struct mqtt_acl *acl)
{
    if (acl == NULL)
        return;
    for (size_t i = 0; i < acl->count; i++) {
        free(acl->rules[i].user);
        free(acl->rules[i].filter);
    }
    free(acl->rules);
    free(acl->sections);
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

/* The access an access word names; false when word is none. */
static bool acl_access_word(const char *word, size_t len, uint8_t *access)
{
    static const struct {
        const char *word;
        uint8_t access;
    } words[] = {{"read", MQTT_ACL_READ},
                 {"write", MQTT_ACL_WRITE},
                 {"readwrite", MQTT_ACL_READWRITE},
                 {"deny", MQTT_ACL_DENY}};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(words); i++) {
        if (acl_word_is(word, len, words[i].word)) {
            *access = words[i].access;
            return true;
        }
    }
    return false;
}

/* "topic|pattern [access] filter": rest is the text after the keyword. */
static int acl_rule_line(struct mqtt_acl *acl, struct acl_rule *proto, const char *rest,
                         size_t rest_len, size_t lineno, char *err, size_t err_len)
{
    size_t word_len = 0, filter_len = 0;
    const char *filter = NULL;
    acl_split(rest, rest_len, &word_len, &filter, &filter_len);
    bool access_word = acl_access_word(rest, word_len, &proto->access);
    if (filter_len == 0 && access_word) {
        /* mosquitto would take the word for a topic name: almost certainly not what was meant. */
        lmq_errf(err, err_len, "line %zu: expected a topic filter after \"%.*s\"", lineno,
                 (int)word_len, rest);
        return LMQ_EINVAL;
    }
    if (filter_len == 0) { /* mosquitto: "topic <filter>" means readwrite */
        proto->access = MQTT_ACL_READWRITE;
        filter = rest;
        filter_len = word_len;
    } else if (!access_word) {
        lmq_errf(err, err_len, "line %zu: expected read, write, readwrite or deny, got \"%.*s\"",
                 lineno, (int)LMQ_MIN(word_len, 32), rest);
        return LMQ_EINVAL;
    }
    const uint8_t *f = (const uint8_t *)filter;
    const uint8_t *group = NULL, *inner = NULL;
    size_t group_len = 0, inner_len = 0;
    if (filter_len == 0 || !mqtt_topic_filter_valid(f, filter_len) ||
        mqtt_topic_shared_split(f, filter_len, &group, &group_len, &inner, &inner_len)) {
        lmq_errf(err, err_len, "line %zu: expected a topic filter (not shared)", lineno);
        return LMQ_EINVAL;
    }
    if ((filter_len >= 3 && memcmp(filter, "id/", 3) == 0) ||
        acl_word_is(filter, filter_len, "id")) {
        lmq_errf(err, err_len, "line %zu: id/ topics have fixed permissions, not ACL rules",
                 lineno);
        return LMQ_EINVAL;
    }
    if (proto->pattern && !acl_pattern_levels_valid(filter, filter_len)) {
        lmq_errf(err, err_len, "line %zu: %%u and %%c must each be a whole topic level", lineno);
        return LMQ_EINVAL;
    }
    int rc = acl_add(acl, proto, filter, filter_len);
    if (rc == LMQ_ELIMIT)
        lmq_errf(err, err_len, "line %zu: more than %d rules", lineno, MQTT_ACL_RULES_MAX);
    return rc;
}

/* One trimmed, non-blank, non-comment line. *section holds the current user (NULL: the
 * anonymous section, before the first "user" line). */
static int acl_line(struct mqtt_acl *acl, const char *line, size_t len, size_t lineno,
                    struct acl_rule *section, char *err, size_t err_len)
{
    LMQ_ASSERT(len > 0 && line[0] != '#');
    size_t word_len = 0, rest_len = 0;
    const char *rest = NULL;
    acl_split(line, len, &word_len, &rest, &rest_len);
    if (acl_word_is(line, word_len, "user")) {
        if (rest_len == 0 || rest_len > ACL_USER_MAX_BYTES || memchr(rest, '\0', rest_len)) {
            lmq_errf(err, err_len, "line %zu: expected user <name> (1..%d bytes)", lineno,
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
        lmq_errf(err, err_len,
                 "line %zu: unknown keyword \"%.*s\" (expected user, topic or pattern)", lineno,
                 (int)LMQ_MIN(word_len, 32), line);
        return LMQ_EINVAL;
    }
    if (rest_len == 0) {
        lmq_errf(err, err_len, "line %zu: expected %s <access> <filter>", lineno,
                 topic ? "topic" : "pattern");
        return LMQ_EINVAL;
    }
    struct acl_rule proto = *section;
    proto.pattern = !topic;
    proto.line = (uint32_t)lineno;
    if (proto.pattern) { /* patterns apply to everyone, wherever they stand (as mosquitto) */
        proto.user = NULL;
        proto.user_len = 0;
    }
    return acl_rule_line(acl, &proto, rest, rest_len, lineno, err, err_len);
}

/* Orders user names for the section search: bytes, then length. */
static int acl_name_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int c = memcmp(a, b, LMQ_MIN(a_len, b_len));
    if (c != 0)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

/* Topic rules before patterns; the anonymous section first, then by user; denies first;
 * then file order (one rule a line, so the order is total). */
static int acl_rule_cmp(const void *pa, const void *pb)
{
    const struct acl_rule *a = pa, *b = pb;
    if (a->pattern != b->pattern)
        return a->pattern ? 1 : -1;
    if ((a->user == NULL) != (b->user == NULL))
        return a->user == NULL ? -1 : 1;
    if (a->user != NULL) {
        int c = acl_name_cmp(a->user, a->user_len, b->user, b->user_len);
        if (c != 0)
            return c;
    }
    bool a_deny = a->access == MQTT_ACL_DENY, b_deny = b->access == MQTT_ACL_DENY;
    if (a_deny != b_deny)
        return a_deny ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

static bool acl_same_section(const struct acl_rule *a, const struct acl_rule *b)
{
    if (a->pattern || b->pattern || (a->user == NULL) != (b->user == NULL))
        return false;
    return a->user == NULL || acl_name_cmp(a->user, a->user_len, b->user, b->user_len) == 0;
}

/* Sorts the parsed rules into sections and patterns (see the top of this file). */
static int acl_index(struct mqtt_acl *acl)
{
    LMQ_ASSERT(acl != NULL && acl->sections == NULL);
    if (acl->count > 1)
        qsort(acl->rules, acl->count, sizeof(*acl->rules), acl_rule_cmp);
    size_t n = 0, i = 0;
    for (i = 0; i < acl->count && !acl->rules[i].pattern; i++) {
        if (i == 0 || !acl_same_section(&acl->rules[i - 1], &acl->rules[i]))
            n++;
    }
    acl->pattern_start = i;
    if (n > 0) {
        acl->sections = calloc(n, sizeof(*acl->sections));
        if (acl->sections == NULL)
            return LMQ_ENOMEM;
    }
    for (i = 0; i < acl->pattern_start; i++) {
        const struct acl_rule *r = &acl->rules[i];
        if (i == 0 || !acl_same_section(&acl->rules[i - 1], r)) {
            struct acl_section *sec = &acl->sections[acl->section_count++];
            *sec = (struct acl_section){r->user, r->user_len, i, i};
        }
        acl->sections[acl->section_count - 1].end = i + 1;
    }
    LMQ_ASSERT(acl->section_count == n);
    return LMQ_OK;
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
            lmq_errf(err, err_len, "line %zu: longer than %d bytes", lineno,
                     MQTT_ACL_LINE_MAX_BYTES);
            rc = LMQ_EINVAL;
            break;
        }
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        acl_trim(&line, &line_len);
        if (memchr(line, '\0', line_len) != NULL) {
            lmq_errf(err, err_len, "line %zu: NUL byte", lineno);
            rc = LMQ_EINVAL;
        } else if (line_len > 0 && line[0] != '#') {
            rc = acl_line(acl, line, line_len, lineno, &section, err, err_len);
        }
    }
    free(section.user);
    if (rc == LMQ_OK)
        rc = acl_index(acl);
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
        lmq_errf(err, err_len, "%s: %s", path, msg[0] != '\0' ? msg : lmq_strerror(rc));
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

/* Who asks, with what the rules need to know about the values a pattern substitutes. */
struct acl_who {
    const struct mqtt_acl_client *c;
    bool user_plain;   /* the user name holds no '/': one level */
    bool client_plain; /* the client id holds no '/' */
    bool wild;         /* the user name or client id holds '+' or '#' */
};

static void acl_who_init(struct acl_who *w, const struct mqtt_acl_client *c)
{
    LMQ_ASSERT(c != NULL && (c->user != NULL || c->user_len == 0));
    LMQ_ASSERT(c->client_id != NULL || c->client_id_len == 0);
    w->c = c;
    w->user_plain = c->user_len == 0 || memchr(c->user, '/', c->user_len) == NULL;
    w->client_plain = c->client_id_len == 0 || memchr(c->client_id, '/', c->client_id_len) == NULL;
    w->wild = (c->user_len > 0 && (memchr(c->user, '+', c->user_len) != NULL ||
                                   memchr(c->user, '#', c->user_len) != NULL)) ||
              (c->client_id_len > 0 && (memchr(c->client_id, '+', c->client_id_len) != NULL ||
                                        memchr(c->client_id, '#', c->client_id_len) != NULL));
}

/* Whether rule r is one of who's: a %u pattern never is an anonymous client's (mosquitto), and
 * an allow pattern is not when a value it substitutes holds '/' (ours: mqtt_acl.h). */
static bool acl_rule_applies(const struct acl_rule *r, const struct acl_who *w)
{
    if (!r->pattern)
        return true;
    if (r->uses_user && w->c->user_len == 0)
        return false;
    if (r->access == MQTT_ACL_DENY)
        return true;
    return (!r->uses_user || w->user_plain) && (!r->uses_client || w->client_plain);
}

/* True when r's filter, who's values substituted, matches topic t: MQTT's matching, where a
 * substituted value is literal text (a deny pattern's may span levels). One ACL level a turn. */
static bool acl_match(const struct acl_rule *r, const struct mqtt_acl_client *who, const uint8_t *t,
                      size_t t_len)
{
    LMQ_ASSERT(r != NULL && r->filter_len > 0);
    LMQ_ASSERT(t != NULL && t_len > 0);
    const uint8_t *a = r->filter;
    size_t a_len = r->filter_len, ai = 0, ti = 0;
    bool t_done = false;
    for (size_t level = 0; level <= a_len; level++) {
        bool a_last = false, t_last = false;
        size_t a_raw = acl_level(a, a_len, ai, &a_last);
        size_t vlen = a_raw;
        const uint8_t *v = acl_resolve(r->pattern, who, a + ai, &vlen);
        bool wild = v == a + ai && vlen == 1 && (v[0] == '#' || v[0] == '+');
        if (wild && v[0] == '#')
            return !(ti == 0 && t[0] == '$'); /* "a/#" also matches "a" */
        if (t_done)
            return false;
        size_t end = 0;
        if (wild) {
            if (ti == 0 && t[0] == '$')
                return false;
            end = ti + acl_level(t, t_len, ti, &t_last);
        } else {
            if (vlen > t_len - ti || (vlen > 0 && memcmp(v, t + ti, vlen) != 0))
                return false;
            end = ti + vlen;
            if (end < t_len && t[end] != '/')
                return false;
        }
        t_last = end == t_len;
        if (a_last)
            return t_last;
        t_done = t_last;
        ti = end + 1;
        ai += a_raw + 1;
    }
    LMQ_UNREACHABLE("an ACL filter has at most a_len levels");
}

/* False only when no topic matches both a (who's values substituted, each one level) and f.
 * One level of each a turn; a's length bounds the walk. */
static bool acl_overlap(const uint8_t *a, size_t a_len, bool pattern,
                        const struct mqtt_acl_client *who, const uint8_t *f, size_t f_len)
{
    LMQ_ASSERT(a != NULL && a_len > 0);
    LMQ_ASSERT(f != NULL && f_len > 0);
    size_t ai = 0, fi = 0;
    bool a_more = true, f_more = true;
    for (size_t level = 0; level <= a_len + 1; level++) {
        if (!a_more || !f_more) {
            if (!a_more && !f_more)
                return true;
            /* One ended: the other still matches it when all that is left is '#'. */
            const uint8_t *s = a_more ? a + ai : f + fi;
            size_t left = a_more ? a_len - ai : f_len - fi;
            return left == 1 && s[0] == '#';
        }
        bool a_last = false, f_last = false;
        size_t a_raw = acl_level(a, a_len, ai, &a_last);
        size_t alen = a_raw;
        const uint8_t *al = acl_resolve(pattern, who, a + ai, &alen);
        size_t flen = acl_level(f, f_len, fi, &f_last);
        const uint8_t *fl = f + fi;
        bool a_wild = al == a + ai && alen == 1 && (al[0] == '#' || al[0] == '+');
        bool f_wild = flen == 1 && (fl[0] == '#' || fl[0] == '+');
        if (level == 0 && ((a_wild && !f_wild && flen > 0 && fl[0] == '$') ||
                           (f_wild && !a_wild && alen > 0 && al[0] == '$')))
            return false; /* a first-level wildcard never matches a '$' name */
        if ((a_wild && al[0] == '#') || (f_wild && fl[0] == '#'))
            return true;
        if (!a_wild && !f_wild && (alen != flen || (flen > 0 && memcmp(al, fl, flen) != 0)))
            return false;
        a_more = !a_last;
        f_more = !f_last;
        ai += a_raw + 1;
        fi += flen + 1;
    }
    LMQ_UNREACHABLE("an ACL filter has at most a_len + 1 levels");
}

/* acl_overlap for rule r: a value spanning levels is assumed to overlap (never a wrong no). */
static bool acl_rule_overlaps(const struct acl_rule *r, const struct acl_who *w, const uint8_t *f,
                              size_t f_len)
{
    if (r->pattern && ((r->uses_user && !w->user_plain) || (r->uses_client && !w->client_plain)))
        return true;
    return acl_overlap(r->filter, r->filter_len, r->pattern, w->c, f, f_len);
}

/* The user's section (the anonymous one for an anonymous client), or NULL. */
static const struct acl_section *acl_section_of(const struct mqtt_acl *acl,
                                                const struct mqtt_acl_client *who)
{
    size_t lo = 0, hi = acl->section_count;
    bool anonymous = hi > 0 && acl->sections[0].user == NULL;
    if (who->user_len == 0)
        return anonymous ? &acl->sections[0] : NULL;
    lo = anonymous ? 1 : 0;
    while (lo < hi) { /* halves the range every turn */
        size_t mid = lo + (hi - lo) / 2;
        const struct acl_section *sec = &acl->sections[mid];
        int c = acl_name_cmp((const char *)who->user, who->user_len, sec->user, sec->user_len);
        if (c == 0)
            return sec;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

enum acl_verdict {
    ACL_UNDECIDED = 0,
    ACL_DENIED,
    ACL_ALLOWED,
};

/* The first of rules[start, end) (denies first) that matches t and grants or denies access. */
static enum acl_verdict acl_scan(const struct mqtt_acl *acl, size_t start, size_t end,
                                 const struct acl_who *w, uint8_t access, const uint8_t *t,
                                 size_t t_len)
{
    LMQ_ASSERT(start <= end && end <= acl->count);
    for (size_t i = start; i < end; i++) {
        const struct acl_rule *r = &acl->rules[i];
        bool deny = r->access == MQTT_ACL_DENY;
        if ((!deny && !(r->access & access)) || !acl_rule_applies(r, w) ||
            !acl_match(r, w->c, t, t_len))
            continue;
        return deny ? ACL_DENIED : ACL_ALLOWED;
    }
    return ACL_UNDECIDED;
}

/* mosquitto's checks before any rule: no client writes $SYS/... (but a bridge's state topic),
 * and nobody reads or writes a topic starting with "$share". */
static bool acl_dollar_denied(uint8_t access, const uint8_t *t, size_t len)
{
    static const char bridge_state[] = "$SYS/broker/connection/+/state";
    if (len >= 6 && memcmp(t, "$share", 6) == 0)
        return true;
    if (access != MQTT_ACL_WRITE || len < 4 || memcmp(t, "$SYS", 4) != 0)
        return false;
    return !mqtt_topic_matches((const uint8_t *)bridge_state, sizeof(bridge_state) - 1, t, len);
}

/* The check at the top of mqtt_acl.h. */
static bool acl_check(const struct mqtt_acl *acl, const struct mqtt_acl_client *who, uint8_t access,
                      const uint8_t *t, size_t t_len)
{
    LMQ_ASSERT(acl != NULL && who != NULL);
    LMQ_ASSERT(access == MQTT_ACL_READ || access == MQTT_ACL_WRITE);
    if (t_len == 0 || acl_dollar_denied(access, t, t_len))
        return false;
    struct acl_who w;
    acl_who_init(&w, who);
    const struct acl_section *sec = acl_section_of(acl, who);
    if (sec != NULL) {
        enum acl_verdict v = acl_scan(acl, sec->start, sec->end, &w, access, t, t_len);
        if (v != ACL_UNDECIDED)
            return v == ACL_ALLOWED;
    }
    if (acl->pattern_start == acl->count || w.wild)
        return false;
    return acl_scan(acl, acl->pattern_start, acl->count, &w, access, t, t_len) == ACL_ALLOWED;
}

bool mqtt_acl_may_publish(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                          const uint8_t *topic, size_t len)
{
    return acl_check(acl, who, MQTT_ACL_WRITE, topic, len);
}

bool mqtt_acl_may_read(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                       const uint8_t *topic, size_t len)
{
    return acl_check(acl, who, MQTT_ACL_READ, topic, len);
}

/* Over rules[start, end) (denies first): ALLOWED when a read allow covers f and no deny before
 * it overlaps f, DENIED when a deny may overlap f, else UNDECIDED. */
static enum acl_verdict acl_scan_filter(const struct mqtt_acl *acl, size_t start, size_t end,
                                        const struct acl_who *w, const uint8_t *f, size_t f_len)
{
    LMQ_ASSERT(start <= end && end <= acl->count);
    for (size_t i = start; i < end; i++) {
        const struct acl_rule *r = &acl->rules[i];
        if (!acl_rule_applies(r, w))
            continue;
        if (r->access == MQTT_ACL_DENY) {
            if (acl_rule_overlaps(r, w, f, f_len))
                return ACL_DENIED;
        } else if ((r->access & MQTT_ACL_READ) &&
                   acl_covers(r->filter, r->filter_len, r->pattern, w->c, f, f_len)) {
            return ACL_ALLOWED;
        }
    }
    return ACL_UNDECIDED;
}

bool mqtt_acl_reads_all(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                        const uint8_t *filter, size_t len)
{
    LMQ_ASSERT(acl != NULL && who != NULL);
    if (len == 0 || (len >= 6 && memcmp(filter, "$share", 6) == 0))
        return false;
    struct acl_who w;
    acl_who_init(&w, who);
    /* Every topic of the filter decided by one section allow (none of its denies in the way),
     * or, none of the section's rules in the way at all, by one pattern allow. */
    const struct acl_section *sec = acl_section_of(acl, who);
    if (sec != NULL) {
        enum acl_verdict v = acl_scan_filter(acl, sec->start, sec->end, &w, filter, len);
        if (v != ACL_UNDECIDED)
            return v == ACL_ALLOWED;
    }
    if (acl->pattern_start == acl->count || w.wild)
        return false;
    return acl_scan_filter(acl, acl->pattern_start, acl->count, &w, filter, len) == ACL_ALLOWED;
}

bool mqtt_acl_filter_covers(const uint8_t *acl_filter, size_t acl_len, const uint8_t *filter,
                            size_t len)
{
    static const struct mqtt_acl_client nobody = {0};
    if (acl_len == 0 || len == 0)
        return false;
    return acl_covers(acl_filter, acl_len, false, &nobody, filter, len);
}

bool mqtt_acl_filters_overlap(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    static const struct mqtt_acl_client nobody = {0};
    if (a_len == 0 || b_len == 0)
        return false;
    return acl_overlap(a, a_len, false, &nobody, b, b_len);
}
