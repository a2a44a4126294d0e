/* Arena, error objects and "did you mean" suggestions shared by the GraphQL engine. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "graphql/graphql_internal.h"

#define GQ_BLOCK_BYTES 16384

struct gq_block {
    struct gq_block *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

void *gq_alloc(struct gq_arena *a, size_t size)
{
    LMQ_ASSERT(a != NULL);
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (size == 0) {
        size = sizeof(max_align_t);
    }
    struct gq_block *b = a->head;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = LMQ_MAX((size_t)GQ_BLOCK_BYTES, size);
        size_t max = a->max_bytes != 0 ? a->max_bytes : GRAPHQL_ARENA_MAX_BYTES;
        if (a->used_bytes + cap > max) {
            return NULL;
        }
        b = malloc(sizeof(*b) + cap);
        if (b == NULL) {
            return NULL;
        }
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
        a->used_bytes += cap;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    LMQ_ASSERT(b->used <= b->cap);
    memset(p, 0, size);
    return p;
}

char *gq_strndup(struct gq_arena *a, const char *s, size_t len)
{
    char *d = gq_alloc(a, len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

void gq_arena_free(struct gq_arena *a)
{
    if (a == NULL) {
        return;
    }
    struct gq_block *b = a->head;
    while (b != NULL) {
        struct gq_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
}

/* Copies in to out (cap >= 3 * strlen(in) + 1) with every byte that is not part of a valid
 * UTF-8 sequence replaced by U+FFFD: messages quote the document, which may not be UTF-8, and
 * a JSON string must be. */
void gq_utf8_clean(const char *in, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    LMQ_ASSERT(cap >= 3 * strlen(in) + 1);
    while (*p != '\0') {
        size_t n = p[0] < 0x80             ? 1
                   : (p[0] & 0xe0) == 0xc0 ? 2
                   : (p[0] & 0xf0) == 0xe0 ? 3
                   : (p[0] & 0xf8) == 0xf0 ? 4
                                           : 0;
        bool ok = n > 0;
        uint32_t cp = n == 1 ? p[0] : (uint32_t)(p[0] & (0x7fu >> n));
        for (size_t i = 1; ok && i < n; i++) {
            ok = (p[i] & 0xc0) == 0x80;
            cp = (cp << 6) | (p[i] & 0x3fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && cp >= min_cp[n] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        if (ok) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        }
    }
    out[o] = '\0';
}

static void gq_error_push(struct gq_ctx *c, json_t *locs, const char *fmt, va_list ap)
{
    char raw[1024], msg[3 * sizeof(raw) + 1];
    vsnprintf(raw, sizeof(raw), fmt, ap);
    gq_utf8_clean(raw, msg, sizeof(msg));
    if (json_array_size(c->errors) >= GRAPHQL_ERRORS_MAX) {
        json_decref(locs);
        return;
    }
    json_t *e = json_pack("{s:s}", "message", msg);
    if (e == NULL) {
        json_decref(locs);
        c->oom = true;
        return;
    }
    /* the _new calls release what they are given, also when they fail */
    if (locs != NULL && json_object_set_new(e, "locations", locs) != 0) {
        json_decref(e);
        c->oom = true;
        return;
    }
    if (json_array_append_new(c->errors, e) != 0) {
        c->oom = true;
    }
}

static json_t *gq_loc(uint32_t line, uint32_t col)
{
    return json_pack("{s:I,s:I}", "line", (json_int_t)line, "column", (json_int_t)col);
}

void gq_error(struct gq_ctx *c, const struct gq_node *const *nodes, const char *fmt, ...)
{
    va_list ap;
    json_t *locs = json_array();
    LMQ_ASSERT(c != NULL && fmt != NULL);
    for (size_t i = 0; nodes != NULL && nodes[i] != NULL && i < 8; i++) {
        if (locs != NULL && json_array_append_new(locs, gq_loc(nodes[i]->line, nodes[i]->col))) {
            c->oom = true;
        }
    }
    va_start(ap, fmt);
    gq_error_push(c, locs, fmt, ap);
    va_end(ap);
}

void gq_error_pos(struct gq_ctx *c, const uint32_t (*pos)[2], size_t n, const char *fmt, ...)
{
    va_list ap;
    json_t *locs = json_array();
    LMQ_ASSERT(c != NULL && fmt != NULL);
    for (size_t i = 0; i < n && locs != NULL; i++) {
        if (json_array_append_new(locs, gq_loc(pos[i][0], pos[i][1])) != 0) {
            c->oom = true;
        }
    }
    va_start(ap, fmt);
    gq_error_push(c, locs, fmt, ap);
    va_end(ap);
}

void gq_error_at(struct gq_ctx *c, uint32_t line, uint32_t col, const char *fmt, ...)
{
    va_list ap;
    json_t *locs = NULL;
    LMQ_ASSERT(c != NULL && fmt != NULL);
    if (line != 0) {
        locs = json_array();
        if (locs != NULL && json_array_append_new(locs, gq_loc(line, col)) != 0) {
            c->oom = true;
        }
    }
    va_start(ap, fmt);
    gq_error_push(c, locs, fmt, ap);
    va_end(ap);
}

/* Optimal string alignment distance (Damerau-Levenshtein with adjacent transpositions) on
 * lower-cased strings, as graphql-js's suggestionList measures; SIZE_MAX past threshold. */
static size_t gq_distance(const char *a, const char *b, size_t threshold)
{
    LMQ_ASSERT(a != NULL && b != NULL);
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) {
        return SIZE_MAX;
    }
    char x[65], y[65];
    for (size_t i = 0; i <= la; i++) {
        x[i] = (char)((a[i] >= 'A' && a[i] <= 'Z') ? a[i] + 32 : a[i]);
    }
    for (size_t i = 0; i <= lb; i++) {
        y[i] = (char)((b[i] >= 'A' && b[i] <= 'Z') ? b[i] + 32 : b[i]);
    }
    if (strcmp(x, y) == 0) {
        return 1; /* case-only difference */
    }
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = x[i - 1] == y[j - 1] ? 0 : 1;
            size_t v = LMQ_MIN(d[i - 1][j] + 1, LMQ_MIN(d[i][j - 1] + 1, d[i - 1][j - 1] + cost));
            if (i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1]) {
                v = LMQ_MIN(v, d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    return d[la][lb] <= threshold ? d[la][lb] : SIZE_MAX;
}

void gq_did_you_mean(char *buf, size_t cap, const char *input, const char *const *options,
                     size_t count, const char *prefix)
{
    enum { MAX = 5 };
    const char *best[MAX + 1];
    size_t dist[MAX + 1], n = 0;
    size_t threshold = strlen(input) * 4 / 10 + 1;
    LMQ_ASSERT(buf != NULL && cap > 0);
    for (size_t i = 0; i < count; i++) {
        size_t dd = gq_distance(input, options[i], threshold);
        if (dd == SIZE_MAX) {
            continue;
        }
        /* insertion sort by (distance, name) keeping at most MAX */
        size_t k = n < MAX + 1 ? n : MAX;
        while (k > 0 &&
               (dist[k - 1] > dd || (dist[k - 1] == dd && strcmp(best[k - 1], options[i]) > 0))) {
            if (k < MAX + 1) {
                best[k] = best[k - 1];
                dist[k] = dist[k - 1];
            }
            k--;
        }
        if (k < MAX) {
            best[k] = options[i];
            dist[k] = dd;
            if (n < MAX) {
                n++;
            }
        }
    }
    if (n == 0) {
        return;
    }
    size_t len = strlen(buf);
    int w = snprintf(buf + len, cap - len, " Did you mean %s", prefix);
    for (size_t i = 0; i < n && w >= 0 && (size_t)w < cap - len; i++) {
        len += (size_t)w;
        const char *sep = i == 0 ? "" : (i == n - 1 ? (n > 2 ? ", or " : " or ") : ", ");
        w = snprintf(buf + len, cap - len, "%s\"%s\"", sep, best[i]);
    }
    len = strlen(buf);
    snprintf(buf + len, cap - len, "?");
}

void gq_outn(struct gq_out *o, const void *p, size_t n)
{
    LMQ_ASSERT(o != NULL);
    if (o->failed) {
        return;
    }
    if (o->len + n + 1 > GQ_OUT_MAX_BYTES) {
        o->failed = true;
        return;
    }
    if (o->len + n + 1 > o->cap) {
        size_t cap = LMQ_MAX(o->cap * 2, o->len + n + 64);
        char *d = realloc(o->data, cap);
        if (d == NULL) {
            o->failed = true;
            return;
        }
        o->data = d;
        o->cap = cap;
    }
    memcpy(o->data + o->len, p, n);
    o->len += n;
    o->data[o->len] = '\0';
}

void gq_outf(struct gq_out *o, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        gq_outn(o, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        o->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    gq_outn(o, big, (size_t)n);
    free(big);
}

char *gq_out_take(struct gq_out *o)
{
    gq_outn(o, "", 0);
    if (o->failed || o->data == NULL) {
        gq_out_free(o);
        return NULL;
    }
    char *r = o->data;
    memset(o, 0, sizeof(*o));
    return r;
}

void gq_out_free(struct gq_out *o)
{
    free(o->data);
    memset(o, 0, sizeof(*o));
}
