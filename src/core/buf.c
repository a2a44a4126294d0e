#include "core/buf.h"

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
