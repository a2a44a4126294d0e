/*
 * "format" assertions (only with schema_options.assert_formats): date-time, date, time
 * (RFC 3339, leap seconds checked against the offset), email (RFC 5321 mailbox: dot-atom or
 * quoted local part, domain or address literal), hostname (RFC 1123 labels; IDNA2008 rules for
 * "xn--" labels are not checked), ipv4, ipv6 (RFC 4291), uri and uri-reference (RFC 3986 syntax),
 * uuid (RFC 4122 text form), json-pointer, relative-json-pointer, regex (compiles as our ECMA
 * mapping does), duration (RFC 3339 appendix A), iri and iri-reference (RFC 3987: the URI syntax
 * with non-ASCII characters allowed), idn-email (email with UTF-8), uri-template (RFC 6570 level 4
 * syntax). Other formats are annotations.
 */
#include <string.h>

#include "schema/schema_internal.h"

static const struct {
    const char *name;
    int format;
} format__names[] = {
    {"date-time", SF_DATE_TIME},
    {"date", SF_DATE},
    {"time", SF_TIME},
    {"email", SF_EMAIL},
    {"hostname", SF_HOSTNAME},
    {"ipv4", SF_IPV4},
    {"ipv6", SF_IPV6},
    {"uri", SF_URI},
    {"uri-reference", SF_URI_REFERENCE},
    {"uuid", SF_UUID},
    {"json-pointer", SF_JSON_POINTER},
    {"relative-json-pointer", SF_RELATIVE_JSON_POINTER},
    {"regex", SF_REGEX},
    {"duration", SF_DURATION},
    {"iri", SF_IRI},
    {"idn-email", SF_IDN_EMAIL},
    {"uri-template", SF_URI_TEMPLATE},
    {"iri-reference", SF_IRI_REFERENCE},
};

int schema__format_lookup(const char *name)
{
    for (size_t i = 0; i < LMQ_ARRAY_LEN(format__names); i++) {
        if (strcmp(name, format__names[i].name) == 0) {
            return format__names[i].format;
        }
    }
    return SF_NONE;
}

static bool fmt__digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool fmt__hex(char c)
{
    return fmt__digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool fmt__alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* n digits at s as a number, or -1. */
static int fmt__num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!fmt__digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool fmt__date(const char *s, size_t len)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != 10 || s[4] != '-' || s[7] != '-') {
        return false;
    }
    int y = fmt__num(s, 4), m = fmt__num(s + 5, 2), d = fmt__num(s + 8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1) {
        return false;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

static bool fmt__time(const char *s, size_t len)
{
    if (len < 9 || s[2] != ':' || s[5] != ':') {
        return false;
    }
    int h = fmt__num(s, 2), mi = fmt__num(s + 3, 2), se = fmt__num(s + 6, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) {
        return false;
    }
    size_t i = 8;
    if (s[i] == '.') {
        i++;
        size_t start = i;
        while (i < len && fmt__digit(s[i])) {
            i++;
        }
        if (i == start) {
            return false;
        }
    }
    int off_min = 0;
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        off_min = 0;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = fmt__num(s + i + 1, 2), om = fmt__num(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return false;
        }
        off_min = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
    } else {
        return false;
    }
    if (se == 60) {
        int utc = ((h * 60 + mi - off_min) % 1440 + 1440) % 1440;
        return utc == 23 * 60 + 59;
    }
    return true;
}

static bool fmt__date_time(const char *s, size_t len)
{
    return len > 11 && (s[10] == 'T' || s[10] == 't') && fmt__date(s, 10) &&
           fmt__time(s + 11, len - 11);
}

static bool fmt__ipv4(const char *s, size_t len)
{
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        size_t start = i;
        while (i < len && fmt__digit(s[i]) && i - start < 4) {
            i++;
        }
        size_t n = i - start;
        if (n == 0 || n > 3 || (n > 1 && s[start] == '0') || fmt__num(s + start, n) > 255) {
            return false;
        }
        parts++;
        if (parts < 4) {
            if (i >= len || s[i] != '.') {
                return false;
            }
            i++;
        }
    }
    return i == len;
}

static bool fmt__ipv6(const char *s, size_t len)
{
    if (len < 2 || len > 45) {
        return false;
    }
    int groups = 0;
    bool gap = false;
    size_t i = 0;
    if (s[0] == ':') {
        if (s[1] != ':') {
            return false;
        }
        gap = true;
        i = 2;
        if (i == len) {
            return true;
        }
    }
    /* One group per round: at most 8 rounds before a return. */
    while (i < len) {
        size_t start = i;
        while (i < len && fmt__hex(s[i]) && i - start < 5) {
            i++;
        }
        if (i < len && s[i] == '.') { /* the embedded IPv4 tail */
            if (groups > 6 || !fmt__ipv4(s + start, len - start)) {
                return false;
            }
            groups += 2;
            break; /* the IPv4 part ends the address */
        }
        size_t n = i - start;
        if (n == 0 || n > 4) {
            return false;
        }
        groups++;
        if (i == len) {
            break;
        }
        if (s[i] != ':') {
            return false;
        }
        i++;
        if (i < len && s[i] == ':') {
            if (gap) {
                return false;
            }
            gap = true;
            i++;
            if (i == len) {
                break;
            }
        } else if (i == len) {
            return false; /* a trailing single colon */
        }
        if (groups > 8) {
            return false;
        }
    }
    return gap ? groups <= 7 : groups == 8;
}

/* idn: labels may hold UTF-8 (idn-email's domain; the IDNA2008 rules are not checked). */
static bool fmt__hostname(const char *s, size_t len, bool idn)
{
    if (len == 0 || len > 253) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - label] == '-' || s[i - 1] == '-') {
                return false;
            }
            const char *l = s + i - label;
            if (label >= 4 && l[2] == '-' && l[3] == '-' &&
                !((l[0] == 'x' || l[0] == 'X') && (l[1] == 'n' || l[1] == 'N'))) {
                return false; /* "--" in positions 3-4 is reserved for "xn--" */
            }
            label = 0;
            continue;
        }
        if (!fmt__alpha(s[i]) && !fmt__digit(s[i]) && s[i] != '-' &&
            !(idn && (uint8_t)s[i] >= 0x80)) {
            return false;
        }
        label++;
    }
    return true;
}

static bool fmt__atext(char c, bool idn)
{
    return (idn && (uint8_t)c >= 0x80) || fmt__alpha(c) || fmt__digit(c) ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* idn: RFC 6531's UTF-8 in the local part and the domain (idn-email). */
static bool fmt__email(const char *s, size_t len, bool idn)
{
    size_t i = 0;
    if (len > 0 && s[0] == '"') {
        i = 1;
        while (i < len && s[i] != '"') {
            if (s[i] == '\\') {
                i++;
            } else if ((uint8_t)s[i] < 32) {
                return false;
            }
            i++;
        }
        if (i >= len) {
            return false;
        }
        i++;
    } else {
        bool dot_ok = false;
        while (i < len && s[i] != '@') {
            if (s[i] == '.') {
                if (!dot_ok) {
                    return false;
                }
                dot_ok = false;
            } else if (fmt__atext(s[i], idn)) {
                dot_ok = true;
            } else {
                return false;
            }
            i++;
        }
        if (i == 0 || !dot_ok) {
            return false;
        }
    }
    if (i >= len || s[i] != '@') {
        return false;
    }
    const char *d = s + i + 1;
    size_t dlen = len - i - 1;
    if (dlen > 2 && d[0] == '[' && d[dlen - 1] == ']') {
        if (dlen > 7 && strncmp(d + 1, "IPv6:", 5) == 0) {
            return fmt__ipv6(d + 6, dlen - 7);
        }
        return fmt__ipv4(d + 1, dlen - 2);
    }
    return fmt__hostname(d, dlen, idn);
}

static bool fmt__uuid(const char *s, size_t len)
{
    if (len != 36) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !fmt__hex(s[i])) {
            return false;
        }
    }
    return true;
}

/* RFC 3986 characters allowed in a component (besides pct-encoded). */
/* extra may hold FMT_IRI_CHARS: any non-ASCII byte (UTF-8 of an IRI's ucschar) is allowed. */
#define FMT_IRI_CHARS "\x80"

static bool fmt__uri_char(char c, const char *extra)
{
    if ((uint8_t)c >= 0x80) {
        return strchr(extra, FMT_IRI_CHARS[0]) != NULL;
    }
    return fmt__alpha(c) || fmt__digit(c) || (c != '\0' && strchr("-._~!$&'()*+,;=", c)) ||
           (c != '\0' && strchr(extra, c));
}

/* [s, s+len) made of allowed characters and valid %XX. */
static bool fmt__uri_part(const char *s, size_t len, const char *extra)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len) {
                return false;
            }
            if (!fmt__hex(s[i + 1]) || !fmt__hex(s[i + 2])) {
                return false;
            }
            i += 2;
        } else if (!fmt__uri_char(s[i], extra)) {
            return false;
        }
    }
    return true;
}

/* RFC 3986 IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). */
static bool fmt__ipvfuture(const char *s, size_t len)
{
    size_t i = 1;
    if (len < 4 || (s[0] != 'v' && s[0] != 'V')) {
        return false;
    }
    while (i < len && fmt__hex(s[i])) {
        i++;
    }
    if (i == 1 || i + 1 >= len || s[i] != '.') {
        return false;
    }
    for (i++; i < len; i++) {
        if (!fmt__uri_char(s[i], ":")) {
            return false;
        }
    }
    return true;
}

static bool fmt__authority(const char *a, size_t n, bool iri)
{
    const char *at = memchr(a, '@', n);
    if (at != NULL) {
        if (!fmt__uri_part(a, (size_t)(at - a), iri ? ":" FMT_IRI_CHARS : ":")) {
            return false;
        }
        n -= (size_t)(at - a) + 1;
        a = at + 1;
    }
    size_t host_len = n;
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL || !(fmt__ipv6(a + 1, (size_t)(close - a) - 1) ||
                               fmt__ipvfuture(a + 1, (size_t)(close - a) - 1))) {
            return false;
        }
        host_len = (size_t)(close - a) + 1;
    } else {
        const char *colon = memchr(a, ':', n);
        host_len = colon != NULL ? (size_t)(colon - a) : n;
        if (!fmt__uri_part(a, host_len, iri ? FMT_IRI_CHARS : "")) {
            return false;
        }
    }
    if (host_len < n) {
        if (a[host_len] != ':') {
            return false;
        }
        for (size_t i = host_len + 1; i < n; i++) {
            if (!fmt__digit(a[i])) {
                return false;
            }
        }
    }
    return true;
}

static bool fmt__uri_ref(const char *s, size_t len, bool need_scheme, bool iri)
{
    const char *path_chars = iri ? ":@/" FMT_IRI_CHARS : ":@/";
    const char *query_chars = iri ? ":@/?" FMT_IRI_CHARS : ":@/?";
    size_t i = 0;
    while (i < len && (fmt__alpha(s[i]) || (i > 0 && (fmt__digit(s[i]) || s[i] == '+' ||
                                                      s[i] == '-' || s[i] == '.')))) {
        i++;
    }
    bool scheme = i > 0 && i < len && s[i] == ':';
    if (need_scheme && !scheme) {
        return false;
    }
    size_t p = scheme ? i + 1 : 0;
    if (!scheme) {
        /* A relative reference's first segment has no ':'. */
        size_t seg = strcspn(s, "/?#");
        if (memchr(s, ':', LMQ_MIN(seg, len)) != NULL) {
            return false;
        }
    }
    if (len - p >= 2 && s[p] == '/' && s[p + 1] == '/') {
        size_t a = p + 2;
        size_t n = 0;
        while (a + n < len && s[a + n] != '/' && s[a + n] != '?' && s[a + n] != '#') {
            n++;
        }
        if (!fmt__authority(s + a, n, iri)) {
            return false;
        }
        p = a + n;
    }
    size_t path = p;
    while (p < len && s[p] != '?' && s[p] != '#') {
        p++;
    }
    if (!fmt__uri_part(s + path, p - path, path_chars)) {
        return false;
    }
    if (p < len && s[p] == '?') {
        size_t q = ++p;
        while (p < len && s[p] != '#') {
            p++;
        }
        if (!fmt__uri_part(s + q, p - q, query_chars)) {
            return false;
        }
    }
    if (p < len && s[p] == '#') {
        p++;
        return fmt__uri_part(s + p, len - p, query_chars);
    }
    return true;
}

static bool fmt__json_pointer(const char *s, size_t len)
{
    if (len > 0 && s[0] != '/') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '~' && (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1'))) {
            return false;
        }
    }
    return true;
}

static bool fmt__relative_json_pointer(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && fmt__digit(s[i])) {
        i++;
    }
    if (i == 0 || (i > 1 && s[0] == '0')) {
        return false;
    }
    if (i < len && s[i] == '#') {
        return i + 1 == len;
    }
    return fmt__json_pointer(s + i, len - i);
}

/* RFC 3339 appendix A: P(nY nM nD | nW)(T nH nM nS), components in order, at least one. */
static bool fmt__duration(const char *s, size_t len)
{
    if (len < 2 || s[0] != 'P') {
        return false;
    }
    static const char date_units[] = "YMD";
    static const char time_units[] = "HMS";
    size_t i = 1;
    bool in_time = false;
    bool any = false;
    bool weeks = false;
    bool time_any = false;
    size_t unit = 0; /* next allowed unit index */
    while (i < len) {
        if (s[i] == 'T') {
            if (in_time) {
                return false;
            }
            in_time = true;
            unit = 0;
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && fmt__digit(s[i])) {
            i++;
        }
        if (i == start || i == len) {
            return false;
        }
        const char *units = in_time ? time_units : date_units;
        const char *u = strchr(units, s[i]);
        if (!in_time && s[i] == 'W') {
            if (any) {
                return false;
            }
            weeks = true;
        } else if (u == NULL || s[i] == '\0' || weeks ||
                   (unit > 0 ? (size_t)(u - units) != unit : false)) {
            /* Units in order and without gaps: Y [M [D]], H [M [S]]. */
            return false;
        } else {
            unit = (size_t)(u - units) + 1;
        }
        any = true;
        time_any = time_any || in_time;
        i++;
    }
    return any && (!in_time || time_any) && !(weeks && in_time);
}

/* RFC 6570 varname: varchar *( ["."] varchar ), varchar = ALPHA / DIGIT / "_" / pct-encoded.
 * Returns the bytes consumed (0: none). */
static size_t fmt__varname(const char *s, size_t len)
{
    size_t i = 0;
    bool need = true; /* a varchar is due (at the start and after a '.') */
    while (i < len) {
        if (s[i] == '%' && i + 2 < len && fmt__hex(s[i + 1]) && fmt__hex(s[i + 2])) {
            i += 3;
        } else if (fmt__alpha(s[i]) || fmt__digit(s[i]) || s[i] == '_') {
            i++;
        } else if (s[i] == '.' && !need) {
            i++;
            need = true;
            continue;
        } else {
            break;
        }
        need = false;
    }
    return need ? 0 : i;
}

/* One expression's inside (between the braces): [operator] varspec *( "," varspec ). */
static bool fmt__uri_expr(const char *s, size_t len)
{
    size_t i = 0;
    if (len > 0 && strchr("+#./;?&=,!@|", s[0]) != NULL) {
        i = 1;
    }
    /* One varspec per round: each consumes at least one byte. */
    for (;;) {
        size_t n = fmt__varname(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
        if (i < len && s[i] == '*') {
            i++;
        } else if (i < len && s[i] == ':') {
            size_t start = ++i;
            while (i < len && fmt__digit(s[i])) {
                i++;
            }
            if (i == start || i - start > 4 || s[start] == '0') {
                return false;
            }
        }
        if (i == len) {
            return true;
        }
        if (s[i] != ',') {
            return false;
        }
        i++;
    }
}

static bool fmt__uri_template(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '{') {
            const char *close = memchr(s + i, '}', len - i);
            if (close == NULL || !fmt__uri_expr(s + i + 1, (size_t)(close - s) - i - 1)) {
                return false;
            }
            i = (size_t)(close - s);
        } else if (c == '%') {
            if (i + 2 >= len || !fmt__hex(s[i + 1]) || !fmt__hex(s[i + 2])) {
                return false;
            }
            i += 2;
        } else if (c <= 0x20 || c == 0x7f || strchr("\"<>\\^`|}", (char)c) != NULL) {
            /* Literals: no CTL, SP, DQUOTE, '<', '>', '\\', '^', '`', '|', '}' (RFC 6570 2.1).
             * The apostrophe is allowed, as the test suite expects. */
            return false;
        }
    }
    return true;
}

static bool fmt__regex(const char *s, size_t len)
{
    char err[64];
    pcre2_code *re = schema__regex_compile(s, len, err, sizeof(err));
    if (re == NULL) {
        return false;
    }
    pcre2_code_free(re);
    /* ECMA has no \Z, \a and such: PCRE2 accepts them, ECMA-262 (unicode mode) does not.
     * Nor (?P<..>), (?#...), inline flags: "(?" takes only ':', '=', '!', '<'. */
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] == '(' && s[i + 1] == '?' &&
            (i + 2 >= len || strchr(":=!<", s[i + 2]) == NULL || s[i + 2] == '\0')) {
            return false;
        }
        if (s[i] == '\\' && strchr("aeAzZ", s[i + 1]) != NULL && s[i + 1] != '\0') {
            return false;
        }
        if (s[i] == '\\') {
            i++;
        }
    }
    return true;
}

bool schema__format_check(int format, const char *s, size_t len)
{
    switch (format) {
    case SF_DATE_TIME:
        return fmt__date_time(s, len);
    case SF_DATE:
        return fmt__date(s, len);
    case SF_TIME:
        return fmt__time(s, len);
    case SF_EMAIL:
        return fmt__email(s, len, false);
    case SF_IDN_EMAIL:
        return fmt__email(s, len, true);
    case SF_HOSTNAME:
        return fmt__hostname(s, len, false);
    case SF_IPV4:
        return fmt__ipv4(s, len);
    case SF_IPV6:
        return fmt__ipv6(s, len);
    case SF_URI:
        return fmt__uri_ref(s, len, true, false);
    case SF_URI_REFERENCE:
        return fmt__uri_ref(s, len, false, false);
    case SF_URI_TEMPLATE:
        return fmt__uri_template(s, len);
    case SF_IRI:
        return fmt__uri_ref(s, len, true, true);
    case SF_IRI_REFERENCE:
        return fmt__uri_ref(s, len, false, true);
    case SF_UUID:
        return fmt__uuid(s, len);
    case SF_JSON_POINTER:
        return fmt__json_pointer(s, len);
    case SF_RELATIVE_JSON_POINTER:
        return fmt__relative_json_pointer(s, len);
    case SF_REGEX:
        return fmt__regex(s, len);
    case SF_DURATION:
        return fmt__duration(s, len);
    default:
        return true;
    }
}
