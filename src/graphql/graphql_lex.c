/*
 * The GraphQL lexer (October 2021 spec, 2.1): punctuators, names, numbers with their rules about
 * what may follow, strings with escapes (incl. surrogate pairs and \u{...}), block strings with
 * their indentation rules, comments and ignored tokens. Errors are worded as graphql-js words
 * them; columns count UTF-16 units as graphql-js does (its source is a JS string).
 */
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_lex.h"

static const char *const gq_lex_kind_names[] = {
    "<EOF>", "!", "$", "&", "(", ")",    "...", ":",     "=",      "@",
    "[",     "]", "{", "|", "}", "Name", "Int", "Float", "String", "BlockString",
};

const char *gq_tok_kind_desc(int kind)
{
    LMQ_ASSERT(kind >= 0 && (size_t)kind < LMQ_ARRAY_LEN(gq_lex_kind_names));
    return gq_lex_kind_names[kind];
}

void gq_lex_desc(const struct gq_lexer *l, char *buf, size_t cap)
{
    LMQ_ASSERT(buf != NULL && cap > 0);
    if (l->kind >= GQ_T_NAME) {
        snprintf(buf, cap, "%s \"%s\"", gq_tok_kind_desc(l->kind), l->value);
    } else if (l->kind == GQ_T_EOF) {
        snprintf(buf, cap, "<EOF>");
    } else {
        snprintf(buf, cap, "\"%s\"", gq_tok_kind_desc(l->kind));
    }
}

void gq_lex_init(struct gq_lexer *l, struct gq_arena *a, const char *src, size_t len)
{
    LMQ_ASSERT(l != NULL && a != NULL);
    memset(l, 0, sizeof(*l));
    l->src = src;
    l->len = len;
    l->line = 1;
    l->arena = a;
}

/* Decodes one UTF-8 sequence at pos: its length (1..4) and *cp, or 0 when invalid. */
static size_t gq_utf8(const char *s, size_t len, size_t pos, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s + pos;
    size_t left = len - pos;
    LMQ_ASSERT(pos < len);
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t n = (u[0] & 0xe0) == 0xc0   ? 2
               : (u[0] & 0xf0) == 0xe0 ? 3
               : (u[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (n == 0 || left < n) {
        return 0;
    }
    uint32_t c = u[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (u[i] & 0x3fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_cp[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *cp = c;
    return n;
}

/* The column (1-based, UTF-16 units) of byte offset pos on the current line. */
static uint32_t gq_lex_col(struct gq_lexer *l, size_t pos)
{
    if (l->col_pos < l->line_start || l->col_pos > pos) {
        l->col_pos = l->line_start;
        l->col_units = 0;
    }
    while (l->col_pos < pos) {
        unsigned char b = (unsigned char)l->src[l->col_pos];
        if ((b & 0xc0) != 0x80) {
            l->col_units += b >= 0xf0 ? 2u : 1u;
        }
        l->col_pos++;
    }
    return l->col_units + 1;
}

/* Describes the code point at pos as graphql-js's printCodePointAt. */
static void gq_lex_cp_desc(const struct gq_lexer *l, size_t pos, char *buf, size_t cap)
{
    uint32_t cp = 0xfffd;
    if (pos >= l->len) {
        snprintf(buf, cap, "<EOF>");
        return;
    }
    if (gq_utf8(l->src, l->len, pos, &cp) == 0) {
        cp = 0xfffd;
    }
    if (cp >= 0x20 && cp <= 0x7e) {
        snprintf(buf, cap, cp == '"' ? "'\"'" : "\"%c\"", (char)cp);
    } else {
        snprintf(buf, cap, "U+%04X", (unsigned)cp);
    }
}

static int gq_lex_fail(struct gq_lexer *l, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int gq_lex_fail(struct gq_lexer *l, size_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof(l->err), fmt, ap);
    va_end(ap);
    l->err_line = l->line;
    l->err_col = gq_lex_col(l, pos);
    return -1;
}

static int gq_lex_fail_cp(struct gq_lexer *l, size_t pos, const char *what)
{
    char d[32];
    gq_lex_cp_desc(l, pos, d, sizeof(d));
    return gq_lex_fail(l, pos, "%s%s.", what, d);
}

static bool gq_is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool gq_is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static int gq_at(const struct gq_lexer *l, size_t pos)
{
    return pos < l->len ? (unsigned char)l->src[pos] : -1;
}

static int gq_tok(struct gq_lexer *l, int kind, size_t start, size_t end, const char *value)
{
    l->kind = kind;
    l->start = start;
    l->tline = l->line;
    l->tcol = gq_lex_col(l, start);
    l->value = value;
    l->value_len = value != NULL ? strlen(value) : 0;
    l->pos = end;
    return 0;
}

/* Digits at pos (at least one): the offset after them, or -1 (error set). */
static long gq_lex_digits(struct gq_lexer *l, size_t pos)
{
    if (!gq_is_digit(gq_at(l, pos))) {
        return gq_lex_fail_cp(l, pos, "Invalid number, expected digit but got: ");
    }
    while (gq_is_digit(gq_at(l, pos))) {
        pos++;
    }
    return (long)pos;
}

static int gq_lex_number(struct gq_lexer *l, size_t start)
{
    LMQ_ASSERT(gq_at(l, start) == '-' || gq_is_digit(gq_at(l, start)));
    size_t pos = start;
    bool is_float = false;
    long r;
    if (gq_at(l, pos) == '-') {
        pos++;
    }
    if (gq_at(l, pos) == '0') {
        pos++;
        if (gq_is_digit(gq_at(l, pos))) {
            return gq_lex_fail_cp(l, pos, "Invalid number, unexpected digit after 0: ");
        }
    } else if ((r = gq_lex_digits(l, pos)) < 0) {
        return -1;
    } else {
        pos = (size_t)r;
    }
    if (gq_at(l, pos) == '.') {
        is_float = true;
        if ((r = gq_lex_digits(l, pos + 1)) < 0) {
            return -1;
        }
        pos = (size_t)r;
    }
    if (gq_at(l, pos) == 'e' || gq_at(l, pos) == 'E') {
        is_float = true;
        pos++;
        if (gq_at(l, pos) == '+' || gq_at(l, pos) == '-') {
            pos++;
        }
        if ((r = gq_lex_digits(l, pos)) < 0) {
            return -1;
        }
        pos = (size_t)r;
    }
    if (gq_at(l, pos) == '.' || gq_is_name_start(gq_at(l, pos))) {
        return gq_lex_fail_cp(l, pos, "Invalid number, expected digit but got: ");
    }
    char *v = gq_strndup(l->arena, l->src + start, pos - start);
    if (v == NULL) {
        return gq_lex_fail(l, start, "Out of memory.");
    }
    return gq_tok(l, is_float ? GQ_T_FLOAT : GQ_T_INT, start, pos, v);
}

static int gq_hex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

static long gq_hex4(const struct gq_lexer *l, size_t pos)
{
    long v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = gq_hex(gq_at(l, pos + i));
        if (h < 0) {
            return -1;
        }
        v = (v << 4) | h;
    }
    return v;
}

static size_t gq_utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool gq_scalar_value(long cp)
{
    return (cp >= 0 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0x10ffff);
}

/* An escape at pos (the backslash): appends its UTF-8 to out; the bytes consumed or -1. */
static long gq_lex_escape(struct gq_lexer *l, size_t pos, char *out, size_t *out_len)
{
    LMQ_ASSERT(gq_at(l, pos) == '\\' && out != NULL);
    int c = gq_at(l, pos + 1);
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c > 0 ? strchr(from, c) : NULL;
    if (hit != NULL && c != 0) {
        out[(*out_len)++] = to[hit - from];
        return 2;
    }
    if (c != 'u') {
        size_t n = LMQ_MIN((size_t)2, l->len - pos);
        return gq_lex_fail(l, pos, "Invalid character escape sequence: \"%.*s\".", (int)n,
                           l->src + pos);
    }
    if (gq_at(l, pos + 2) == '{') {
        long cp = 0;
        size_t size = 3;
        while (size < 12) {
            int d = gq_at(l, pos + size++);
            if (d == '}') {
                if (size < 5 || !gq_scalar_value(cp)) {
                    break;
                }
                *out_len += gq_utf8_put(out + *out_len, (uint32_t)cp);
                return (long)size;
            }
            int h = gq_hex(d);
            if (h < 0) {
                break;
            }
            cp = (cp << 4) | h;
            if (cp > 0x7fffffff) { /* graphql-js's 32-bit arithmetic turns negative here */
                break;
            }
        }
        size = LMQ_MIN(size, l->len - pos);
        return gq_lex_fail(l, pos, "Invalid Unicode escape sequence: \"%.*s\".", (int)size,
                           l->src + pos);
    }
    long cp = gq_hex4(l, pos + 2);
    if (gq_scalar_value(cp)) {
        *out_len += gq_utf8_put(out + *out_len, (uint32_t)cp);
        return 6;
    }
    if (cp >= 0xd800 && cp <= 0xdbff && gq_at(l, pos + 6) == '\\' && gq_at(l, pos + 7) == 'u') {
        long lo = gq_hex4(l, pos + 8);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
            uint32_t full = 0x10000u + (((uint32_t)cp - 0xd800u) << 10) + ((uint32_t)lo - 0xdc00u);
            *out_len += gq_utf8_put(out + *out_len, full);
            return 12;
        }
    }
    size_t n = LMQ_MIN((size_t)6, l->len - pos);
    return gq_lex_fail(l, pos, "Invalid Unicode escape sequence: \"%.*s\".", (int)n, l->src + pos);
}

static int gq_lex_string(struct gq_lexer *l, size_t start)
{
    LMQ_ASSERT(start < l->len && gq_at(l, start) == '"');
    /* The decoded value is never longer than the source text. */
    char *out = gq_alloc(l->arena, l->len - start + 1);
    size_t out_len = 0, pos = start + 1;
    if (out == NULL) {
        return gq_lex_fail(l, start, "Out of memory.");
    }
    while (pos < l->len) {
        int c = gq_at(l, pos);
        uint32_t cp;
        if (c == '"') {
            out[out_len] = '\0';
            gq_tok(l, GQ_T_STRING, start, pos + 1, out);
            l->value_len = out_len;
            return 0;
        }
        if (c == '\\') {
            long n = gq_lex_escape(l, pos, out, &out_len);
            if (n < 0) {
                return -1;
            }
            pos += (size_t)n;
            continue;
        }
        if (c == '\n' || c == '\r') {
            break;
        }
        size_t n = gq_utf8(l->src, l->len, pos, &cp);
        if (n == 0) {
            return gq_lex_fail_cp(l, pos, "Invalid character within String: ");
        }
        memcpy(out + out_len, l->src + pos, n);
        out_len += n;
        pos += n;
    }
    return gq_lex_fail(l, pos, "Unterminated string.");
}

static bool gq_blank(int c)
{
    return c == ' ' || c == '\t';
}

/* The block string's lines [lines[i], lines[i]+lens[i]) dedented into out (spec's
 * BlockStringValue): common indent removed (not from the first line), blank lines at both
 * ends dropped, joined by \n. */
static char *gq_block_value(struct gq_arena *a, const char *raw, size_t raw_len)
{
    LMQ_ASSERT(a != NULL && raw != NULL);
    size_t common = SIZE_MAX, first = SIZE_MAX, last = 0, nlines = 0;
    size_t i = 0, line = 0;
    /* pass 1: indentation */
    while (i <= raw_len) {
        size_t e = i;
        while (e < raw_len && raw[e] != '\n') {
            e++;
        }
        size_t ind = 0;
        while (i + ind < e && gq_blank(raw[i + ind])) {
            ind++;
        }
        if (ind < e - i) {
            if (first == SIZE_MAX) {
                first = line;
            }
            last = line;
            if (line != 0 && ind < common) {
                common = ind;
            }
        }
        line++;
        i = e + 1;
    }
    nlines = line;
    char *out = gq_alloc(a, raw_len + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    i = 0;
    for (line = 0; line < nlines; line++) {
        size_t e = i;
        while (e < raw_len && raw[e] != '\n') {
            e++;
        }
        if (first != SIZE_MAX && line >= first && line <= last) {
            size_t skip = line == 0 ? 0 : LMQ_MIN(common, e - i);
            if (line > first) {
                out[o++] = '\n';
            }
            memcpy(out + o, raw + i + skip, e - i - skip);
            o += e - i - skip;
        }
        i = e + 1;
    }
    out[o] = '\0';
    return out;
}

static int gq_lex_block_string(struct gq_lexer *l, size_t start)
{
    LMQ_ASSERT(start + 3 <= l->len && gq_at(l, start) == '"');
    /* raw: the lines with \"\"\" unescaped and line ends normalised to \n */
    char *raw = gq_alloc(l->arena, l->len - start + 1);
    size_t raw_len = 0, pos = start + 3;
    uint32_t line = l->line;
    size_t line_start = l->line_start;
    if (raw == NULL) {
        return gq_lex_fail(l, start, "Out of memory.");
    }
    while (pos < l->len) {
        int c = gq_at(l, pos);
        uint32_t cp;
        if (c == '"' && gq_at(l, pos + 1) == '"' && gq_at(l, pos + 2) == '"') {
            char *v = gq_block_value(l->arena, raw, raw_len);
            if (v == NULL) {
                return gq_lex_fail(l, start, "Out of memory.");
            }
            gq_tok(l, GQ_T_BLOCK_STRING, start, pos + 3, v);
            l->line = line;
            l->line_start = line_start;
            return 0;
        }
        if (c == '\\' && gq_at(l, pos + 1) == '"' && gq_at(l, pos + 2) == '"' &&
            gq_at(l, pos + 3) == '"') {
            memcpy(raw + raw_len, "\"\"\"", 3);
            raw_len += 3;
            pos += 4;
            continue;
        }
        if (c == '\n' || c == '\r') {
            raw[raw_len++] = '\n';
            pos += (c == '\r' && gq_at(l, pos + 1) == '\n') ? 2 : 1;
            line++;
            line_start = pos;
            continue;
        }
        size_t n = gq_utf8(l->src, l->len, pos, &cp);
        if (n == 0) {
            l->line = line;
            l->line_start = line_start;
            return gq_lex_fail_cp(l, pos, "Invalid character within String: ");
        }
        memcpy(raw + raw_len, l->src + pos, n);
        raw_len += n;
        pos += n;
    }
    l->line = line;
    l->line_start = line_start;
    return gq_lex_fail(l, pos, "Unterminated string.");
}

static int gq_lex_punct(struct gq_lexer *l, size_t pos, int c)
{
    static const char punct[] = "!$&():=@[]{|}";
    static const int kinds[] = {GQ_T_BANG,      GQ_T_DOLLAR,    GQ_T_AMP,     GQ_T_PAREN_L,
                                GQ_T_PAREN_R,   GQ_T_COLON,     GQ_T_EQUALS,  GQ_T_AT,
                                GQ_T_BRACKET_L, GQ_T_BRACKET_R, GQ_T_BRACE_L, GQ_T_PIPE,
                                GQ_T_BRACE_R};
    const char *hit = strchr(punct, c);
    LMQ_ASSERT(hit != NULL && c != 0);
    return gq_tok(l, kinds[hit - punct], pos, pos + 1, NULL);
}

static int gq_lex_other(struct gq_lexer *l, size_t pos, int c)
{
    LMQ_ASSERT(pos < l->len && c == gq_at(l, pos));
    if (c == '.') {
        if (gq_at(l, pos + 1) == '.' && gq_at(l, pos + 2) == '.') {
            return gq_tok(l, GQ_T_SPREAD, pos, pos + 3, NULL);
        }
        if (gq_at(l, pos + 1) == '.') {
            return gq_lex_fail(l, pos, "Unexpected \"..\", did you mean \"...\"?");
        }
        if (gq_is_digit(gq_at(l, pos + 1))) {
            size_t e = pos + 1;
            while (gq_is_digit(gq_at(l, e))) {
                e++;
            }
            return gq_lex_fail(l, pos,
                               "Invalid number, expected digit before \".\", did you mean "
                               "\"0.%.*s\"?",
                               (int)(e - pos - 1), l->src + pos + 1);
        }
    } else if (c == '"') {
        if (gq_at(l, pos + 1) == '"' && gq_at(l, pos + 2) == '"') {
            return gq_lex_block_string(l, pos);
        }
        return gq_lex_string(l, pos);
    } else if (gq_is_digit(c) || c == '-') {
        return gq_lex_number(l, pos);
    } else if (gq_is_name_start(c)) {
        size_t e = pos + 1;
        while (gq_is_name_start(gq_at(l, e)) || gq_is_digit(gq_at(l, e))) {
            e++;
        }
        char *v = gq_strndup(l->arena, l->src + pos, e - pos);
        if (v == NULL) {
            return gq_lex_fail(l, pos, "Out of memory.");
        }
        return gq_tok(l, GQ_T_NAME, pos, e, v);
    }
    if (c == '\'') {
        return gq_lex_fail(l, pos,
                           "Unexpected single quote character ('), did you mean to use "
                           "a double quote (\")?");
    }
    uint32_t cp;
    if (gq_utf8(l->src, l->len, pos, &cp) == 0) {
        return gq_lex_fail_cp(l, pos, "Invalid character: ");
    }
    return gq_lex_fail_cp(l, pos, "Unexpected character: ");
}

int gq_lex_next(struct gq_lexer *l)
{
    size_t pos = l->pos;
    LMQ_ASSERT(l->src != NULL || l->len == 0);
    if (++l->tokens_count > GRAPHQL_TOKENS_MAX) {
        return gq_lex_fail(l, pos, "Document contains more than %d tokens. Parsing aborted.",
                           GRAPHQL_TOKENS_MAX);
    }
    while (pos < l->len) {
        int c = gq_at(l, pos);
        if (c == ' ' || c == '\t' || c == ',') {
            pos++;
        } else if (c == 0xef && gq_at(l, pos + 1) == 0xbb && gq_at(l, pos + 2) == 0xbf) {
            pos += 3; /* U+FEFF */
        } else if (c == '\n' || c == '\r') {
            pos += (c == '\r' && gq_at(l, pos + 1) == '\n') ? 2 : 1;
            l->line++;
            l->line_start = pos;
        } else if (c == '#') {
            while (pos < l->len && l->src[pos] != '\n' && l->src[pos] != '\r') {
                pos++;
            }
        } else if (c != 0 && strchr("!$&():=@[]{|}", c) != NULL) {
            return gq_lex_punct(l, pos, c);
        } else {
            return gq_lex_other(l, pos, c);
        }
    }
    return gq_tok(l, GQ_T_EOF, l->len, l->len, NULL);
}
