/*
 * ECMA-262 patterns on PCRE2 (why PCRE2 and what is mapped: schema.h). The only rewrite is \s/\S
 * (ECMA's whitespace is Unicode's, PCRE2's without UCP is ASCII); everything else is PCRE2
 * options.
 */
#include <string.h>

#include "core/buf.h"
#include "schema/schema_internal.h"

/* ECMA-262 WhiteSpace + LineTerminator, as PCRE2 class items. */
#define REGEX_ECMA_SPACE                                                                           \
    "\\t\\n\\u000b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
/* The rewritten pattern's bound: every \s grows by the set above. */
#define REGEX_MAX_BYTES (SCHEMA_PATTERN_MAX_BYTES * 24u)

/* ECMA's long General_Category names, which PCRE2 10.42 does not know, to the short ones. */
static const char *const regex__categories[][2] = {
    {"Letter", "L"},
    {"Cased_Letter", "L&"},
    {"Uppercase_Letter", "Lu"},
    {"Lowercase_Letter", "Ll"},
    {"Titlecase_Letter", "Lt"},
    {"Modifier_Letter", "Lm"},
    {"Other_Letter", "Lo"},
    {"Mark", "M"},
    {"Number", "N"},
    {"Decimal_Number", "Nd"},
    {"digit", "Nd"},
    {"Letter_Number", "Nl"},
    {"Other_Number", "No"},
    {"Punctuation", "P"},
    {"punct", "P"},
    {"Symbol", "S"},
    {"Separator", "Z"},
    {"Space_Separator", "Zs"},
    {"Other", "C"},
    {"Control", "Cc"},
    {"cntrl", "Cc"},
};

/* "\p{Name}" at s: appends it with Name mapped; returns the bytes consumed. */
static size_t regex__property(const char *s, size_t len, struct lmq_buf *out, int *rc)
{
    const char *close = memchr(s, '}', len);
    if (close == NULL) {
        *rc = lmq_buf_append(out, s, 2, REGEX_MAX_BYTES);
        return 2;
    }
    const char *name = s + 3;
    size_t n = (size_t)(close - name);
    const char *eq = memchr(name, '=', n);
    if (eq != NULL) { /* Script=Greek, sc=Greek, General_Category=Letter: the value */
        n -= (size_t)(eq + 1 - name);
        name = eq + 1;
    }
    for (size_t k = 0; k < LMQ_ARRAY_LEN(regex__categories); k++) {
        if (strlen(regex__categories[k][0]) == n && memcmp(regex__categories[k][0], name, n) == 0) {
            name = regex__categories[k][1];
            n = strlen(name);
            break;
        }
    }
    *rc = lmq_buf_printf(out, REGEX_MAX_BYTES, "\\%c{%.*s}", s[1], (int)n, name);
    return (size_t)(close - s) + 1;
}

static int regex__rewrite(const char *src, size_t len, struct lmq_buf *out)
{
    bool in_class = false;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < len) {
            char e = src[i + 1];
            if (e == 's' || e == 'S') {
                if (in_class && e == 's') {
                    rc = lmq_buf_append(out, REGEX_ECMA_SPACE, strlen(REGEX_ECMA_SPACE),
                                        REGEX_MAX_BYTES);
                } else if (in_class) {
                    /* [\S] inside a class: PCRE2 has no "not in this set" item; keep PCRE2's
                     * ASCII \S (documented gap). */
                    rc = lmq_buf_append(out, "\\S", 2, REGEX_MAX_BYTES);
                } else {
                    rc = lmq_buf_printf(out, REGEX_MAX_BYTES, "[%s%s]", e == 'S' ? "^" : "",
                                        REGEX_ECMA_SPACE);
                }
            } else if ((e == 'p' || e == 'P') && i + 2 < len && src[i + 2] == '{') {
                i += regex__property(src + i, len - i, out, &rc) - 1;
                continue;
            } else if (!in_class && (e == 'Z' || e == 'A' || e == 'z')) {
                /* No such anchors in ECMA-262: an identity escape of the letter. */
                rc = lmq_buf_append(out, &e, 1, REGEX_MAX_BYTES);
            } else {
                rc = lmq_buf_append(out, src + i, 2, REGEX_MAX_BYTES);
            }
            i++;
            continue;
        }
        if (c == '[' && !in_class && i + 1 < len && src[i + 1] == ']') {
            rc = lmq_buf_append(out, "(?!)", 4, REGEX_MAX_BYTES); /* [] matches nothing */
            i++;
            continue;
        }
        if (c == '[' && !in_class && i + 2 < len && src[i + 1] == '^' && src[i + 2] == ']') {
            rc = lmq_buf_append(out, "(?s:.)", 6, REGEX_MAX_BYTES); /* [^] matches anything */
            i += 2;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
        } else if (c == ']' && in_class) {
            in_class = false;
        }
        rc = lmq_buf_append(out, &c, 1, REGEX_MAX_BYTES);
    }
    return rc;
}

pcre2_code *schema__regex_compile(const char *src, size_t len, char *err, size_t err_len)
{
    LMQ_ASSERT(src != NULL);
    if (len > SCHEMA_PATTERN_MAX_BYTES) {
        lmq_errf(err, err_len, "pattern of %zu bytes (at most %u)", len, SCHEMA_PATTERN_MAX_BYTES);
        return NULL;
    }
    struct lmq_buf buf = {0};
    pcre2_code *re = NULL;
    pcre2_compile_context *cc = NULL;
    if (regex__rewrite(src, len, &buf) != 0) {
        lmq_errf(err, err_len, "pattern too long after rewriting");
        goto out;
    }
    cc = pcre2_compile_context_create(NULL);
    if (cc == NULL) {
        lmq_errf(err, err_len, "out of memory");
        goto out;
    }
    pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
    int code = 0;
    PCRE2_SIZE off = 0;
    re = pcre2_compile(buf.len > 0 ? buf.data : (const uint8_t *)"", buf.len,
                       PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY, &code, &off, cc);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        lmq_errf(err, err_len, "bad pattern \"%.*s\": %s", (int)LMQ_MIN(len, 80u), src,
                 (const char *)msg);
        goto out;
    }
    /* JIT when the platform has it; the interpreter otherwise (same results, same limits). */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
out:
    pcre2_compile_context_free(cc);
    lmq_buf_release(&buf);
    return re;
}

/* True when every byte of [s, s + len) is ASCII (so the subject is valid UTF-8). */
static bool regex__ascii(const char *s, size_t len)
{
    uint64_t any = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        any |= w;
    }
    for (; i < len; i++) {
        any |= (uint8_t)s[i];
    }
    return (any & 0x8080808080808080ull) == 0;
}

int schema__regex_match(const pcre2_code *re, pcre2_match_data *md, pcre2_match_context *mc,
                        const char *s, size_t len)
{
    LMQ_ASSERT(re != NULL && md != NULL);
    /* pcre2_jit_match skips pcre2_match's checks (a third of a match's cost on short strings,
     * callgrind), among them the UTF-8 check, which only matters for a non-ASCII subject: those
     * keep pcre2_match. Without JIT code it says PCRE2_ERROR_JIT_BADOPTION and pcre2_match runs
     * the interpreter. */
    int rc = regex__ascii(s, len) ? pcre2_jit_match(re, (PCRE2_SPTR)s, len, 0, 0, md, mc)
                                  : PCRE2_ERROR_JIT_BADOPTION;
    if (rc == PCRE2_ERROR_JIT_BADOPTION) {
        rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, mc);
    }
    if (rc >= 0) {
        return 1;
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
        return 0;
    }
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
        return LMQ_ELIMIT;
    }
    return LMQ_EINVAL; /* e.g. an instance string that is not UTF-8 */
}
