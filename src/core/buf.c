#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation; later ones double. */
#define LMQ_BUF_INITIAL_BYTES 4096

int lmq_buf_reserve(struct lmq_buf *b, size_t extra, size_t max_bytes)
{
    LMQ_ASSERT(b != NULL && b->len <= b->cap);
    if (extra > max_bytes || b->len > max_bytes - extra)
        return LMQ_ELIMIT; /* the bound holds whether or not the memory is already there */
    if (b->cap - b->len >= extra)
        return LMQ_OK;
    size_t cap = b->cap == 0 ? LMQ_BUF_INITIAL_BYTES : b->cap;
    while (cap - b->len < extra)
        cap *= 2;
    cap = LMQ_MIN(cap, max_bytes); /* the bound holds for memory too; len + extra fits */
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return LMQ_ENOMEM;
    b->data = p;
    b->cap = cap;
    return LMQ_OK;
}

int lmq_buf_append(struct lmq_buf *b, const void *data, size_t len, size_t max_bytes)
{
    if (len == 0)
        return LMQ_OK;
    int rc = lmq_buf_reserve(b, len, max_bytes);
    if (rc != LMQ_OK)
        return rc;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return LMQ_OK;
}

int lmq_buf_printf(struct lmq_buf *b, size_t max_bytes, const char *fmt, ...)
{
    LMQ_ASSERT(b != NULL && fmt != NULL);
    LMQ_ASSERT(b->len <= b->cap);
    va_list ap;
    va_start(ap, fmt);
    /* Straight into the spare room when it fits (most appends); else measured, then written. */
    size_t spare = b->cap - b->len;
    int n = vsnprintf(spare > 0 ? (char *)b->data + b->len : NULL, spare, fmt, ap);
    va_end(ap);
    if (n < 0)
        return LMQ_EINVAL;
    size_t need = (size_t)n;
    if (need > max_bytes || b->len > max_bytes - need)
        return LMQ_ELIMIT;
    if (need >= spare) { /* did not fit with its NUL: make room for both and write again */
        int rc = lmq_buf_reserve(b, need + 1, max_bytes == SIZE_MAX ? max_bytes : max_bytes + 1);
        if (rc != LMQ_OK)
            return rc;
        va_start(ap, fmt);
        int written = vsnprintf((char *)b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        LMQ_ASSERT(written == n);
    }
    b->len += need;
    return LMQ_OK;
}

void lmq_buf_consume(struct lmq_buf *b, size_t n)
{
    LMQ_ASSERT(n <= b->len);
    if (n < b->len)
        memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void lmq_buf_release(struct lmq_buf *b)
{
    free(b->data);
    *b = (struct lmq_buf){NULL, 0, 0};
}
