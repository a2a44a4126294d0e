/*
 * URI references (RFC 3986 section 5: parse, merge, remove dot segments) and JSON Pointers
 * (RFC 6901, with the percent-decoding a URI fragment needs) for $id and $ref.
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "core/buf.h"
#include "schema/schema_internal.h"

/* Bound of one URI; longer $id/$ref values are refused by the caller's NULL. */
#define URI_MAX_BYTES 8192u

struct uri_parts {
    const char *scheme, *auth, *path, *query, *frag;
    size_t scheme_len, auth_len, path_len, query_len, frag_len;
    bool has_scheme, has_auth, has_query, has_frag;
};

static void uri__parse(const char *s, struct uri_parts *p)
{
    memset(p, 0, sizeof(*p));
    const char *c = s;
    while (isalnum((unsigned char)*c) || *c == '+' || *c == '-' || *c == '.') {
        c++;
    }
    if (*c == ':' && c > s && isalpha((unsigned char)s[0])) {
        p->has_scheme = true;
        p->scheme = s;
        p->scheme_len = (size_t)(c - s);
        s = c + 1;
    }
    if (s[0] == '/' && s[1] == '/') {
        p->has_auth = true;
        p->auth = s + 2;
        p->auth_len = strcspn(p->auth, "/?#");
        s = p->auth + p->auth_len;
    }
    p->path = s;
    p->path_len = strcspn(s, "?#");
    s += p->path_len;
    if (*s == '?') {
        p->has_query = true;
        p->query = s + 1;
        p->query_len = strcspn(p->query, "#");
        s = p->query + p->query_len;
    }
    if (*s == '#') {
        p->has_frag = true;
        p->frag = s + 1;
        p->frag_len = strlen(p->frag);
    }
}

/* RFC 3986 5.2.4 on [in, in+len) into out (at least len + 1 bytes). */
static void uri__remove_dots(const char *in, size_t len, char *out)
{
    size_t o = 0;
    size_t i = 0;
    /* Each round consumes at least one byte of the input: bounded by len. */
    while (i < len) {
        const char *r = in + i;
        size_t left = len - i;
        if (left >= 3 && strncmp(r, "../", 3) == 0) {
            i += 3;
        } else if (left >= 2 && strncmp(r, "./", 2) == 0) {
            i += 2;
        } else if (left >= 3 && strncmp(r, "/./", 3) == 0) {
            i += 2;
        } else if (left == 2 && strncmp(r, "/.", 2) == 0) {
            out[o++] = '/';
            i += 2;
        } else if ((left >= 4 && strncmp(r, "/../", 4) == 0) ||
                   (left == 3 && strncmp(r, "/..", 3) == 0)) {
            i += 3; /* "/../x": the '/' of "/x" stays as the start of the next segment */
            while (o > 0 && out[o - 1] != '/') {
                o--;
            }
            if (o > 0) {
                o--;
            }
            if (i >= len) {
                out[o++] = '/';
            }
        } else if ((left == 1 && r[0] == '.') || (left == 2 && strncmp(r, "..", 2) == 0)) {
            i += left;
        } else {
            size_t n = 1;
            while (n < left && r[n] != '/') {
                n++;
            }
            memcpy(out + o, r, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
}

static int uri__emit(struct lmq_buf *b, const struct uri_parts *p, const char *path,
                     size_t path_len)
{
    int rc = 0;
    if (p->has_scheme) {
        rc = rc ? rc : lmq_buf_append(b, p->scheme, p->scheme_len, URI_MAX_BYTES);
        rc = rc ? rc : lmq_buf_append(b, ":", 1, URI_MAX_BYTES);
    }
    if (p->has_auth) {
        rc = rc ? rc : lmq_buf_append(b, "//", 2, URI_MAX_BYTES);
        rc = rc ? rc : lmq_buf_append(b, p->auth, p->auth_len, URI_MAX_BYTES);
    }
    rc = rc ? rc : lmq_buf_append(b, path, path_len, URI_MAX_BYTES);
    if (p->has_query) {
        rc = rc ? rc : lmq_buf_append(b, "?", 1, URI_MAX_BYTES);
        rc = rc ? rc : lmq_buf_append(b, p->query, p->query_len, URI_MAX_BYTES);
    }
    if (p->has_frag) {
        rc = rc ? rc : lmq_buf_append(b, "#", 1, URI_MAX_BYTES);
        rc = rc ? rc : lmq_buf_append(b, p->frag, p->frag_len, URI_MAX_BYTES);
    }
    rc = rc ? rc : lmq_buf_append(b, "", 1, URI_MAX_BYTES);
    return rc;
}

char *schema__uri_resolve(const char *base, const char *ref)
{
    LMQ_ASSERT(base != NULL && ref != NULL);
    if (strlen(base) >= URI_MAX_BYTES / 2 || strlen(ref) >= URI_MAX_BYTES / 2) {
        return NULL;
    }
    struct uri_parts b, r, t;
    uri__parse(base, &b);
    uri__parse(ref, &r);
    char merged[URI_MAX_BYTES];
    char path[URI_MAX_BYTES];
    t = r;
    if (r.has_scheme) {
        uri__remove_dots(r.path, r.path_len, path);
    } else {
        t.has_scheme = b.has_scheme;
        t.scheme = b.scheme;
        t.scheme_len = b.scheme_len;
        if (r.has_auth) {
            uri__remove_dots(r.path, r.path_len, path);
        } else {
            t.has_auth = b.has_auth;
            t.auth = b.auth;
            t.auth_len = b.auth_len;
            if (r.path_len == 0) {
                memcpy(path, b.path, b.path_len);
                path[b.path_len] = '\0';
                if (!r.has_query) {
                    t.has_query = b.has_query;
                    t.query = b.query;
                    t.query_len = b.query_len;
                }
            } else if (r.path[0] == '/') {
                uri__remove_dots(r.path, r.path_len, path);
            } else {
                size_t n = 0;
                if (b.has_auth && b.path_len == 0) {
                    merged[n++] = '/';
                } else {
                    const char *slash = NULL;
                    for (size_t k = 0; k < b.path_len; k++) {
                        if (b.path[k] == '/') {
                            slash = b.path + k;
                        }
                    }
                    if (slash != NULL) {
                        n = (size_t)(slash - b.path) + 1;
                        memcpy(merged, b.path, n);
                    }
                }
                memcpy(merged + n, r.path, r.path_len);
                n += r.path_len;
                uri__remove_dots(merged, n, path);
            }
        }
    }
    struct lmq_buf out = {0};
    if (uri__emit(&out, &t, path, strlen(path)) != 0) {
        lmq_buf_release(&out);
        return NULL;
    }
    return (char *)out.data;
}

size_t schema__uri_nofrag_len(const char *uri)
{
    return strcspn(uri, "#");
}

int schema__pct_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= cap) {
            return -1;
        }
        if (s[i] == '%') {
            int hi = i + 1 < len ? lmq_hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < len ? lmq_hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return -1;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return 0;
}

const json_t *schema__pointer_get(const json_t *root, const char *ptr)
{
    LMQ_ASSERT(root != NULL && ptr != NULL);
    if (ptr[0] == '\0') {
        return root;
    }
    if (ptr[0] != '/') {
        return NULL;
    }
    const json_t *cur = root;
    const char *p = ptr + 1;
    char seg[URI_MAX_BYTES];
    /* One round per segment: bounded by the pointer's length. */
    for (;;) {
        size_t n = 0;
        while (*p != '\0' && *p != '/') {
            if (n + 1 >= sizeof(seg)) {
                return NULL;
            }
            if (p[0] == '~' && p[1] == '0') {
                seg[n++] = '~';
                p += 2;
            } else if (p[0] == '~' && p[1] == '1') {
                seg[n++] = '/';
                p += 2;
            } else {
                seg[n++] = *p++;
            }
        }
        seg[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, seg, n);
        } else if (json_is_array(cur)) {
            char *end = NULL;
            unsigned long idx = strtoul(seg, &end, 10);
            if (n == 0 || *end != '\0' || (seg[0] == '0' && n > 1)) {
                return NULL;
            }
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
        if (cur == NULL) {
            return NULL;
        }
        if (*p == '\0') {
            return cur;
        }
        p++;
    }
}
