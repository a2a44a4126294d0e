/*
 * A growable byte buffer with a hard maximum per call (curl's dynbuf habit): the caller names
 * the bound each time it grows, and growth past it fails instead of allocating.
 *
 * Used for connection input/output, for the transforms between socket and protocol (TLS,
 * WebSocket) and for the HTTP server's request and response bytes. A zeroed struct is an empty
 * buffer that owns nothing. Growth never allocates past the bound it was asked for (plus the
 * one byte lmq_buf_printf needs for vsnprintf's NUL), so the bound limits memory too.
 */
#ifndef LMQ_BUF_H
#define LMQ_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

struct lmq_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Makes room for extra more bytes. Returns 0, LMQ_ELIMIT when len + extra > max_bytes, or
 * LMQ_ENOMEM; the buffer is unchanged on failure. */
int lmq_buf_reserve(struct lmq_buf *b, size_t extra, size_t max_bytes) LMQ_WUR;
/* Appends len bytes (same results as lmq_buf_reserve). */
int lmq_buf_append(struct lmq_buf *b, const void *data, size_t len, size_t max_bytes) LMQ_WUR;
/* Appends formatted text; len grows by its length (the NUL vsnprintf writes after it is not
 * counted). Returns 0, LMQ_ELIMIT when len + that length > max_bytes, LMQ_EINVAL when the
 * format fails, or LMQ_ENOMEM; len is unchanged on failure. */
int lmq_buf_printf(struct lmq_buf *b, size_t max_bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))) LMQ_WUR;
/* Drops the first n bytes (n <= len), keeping the rest in order. */
void lmq_buf_consume(struct lmq_buf *b, size_t n);
/* Frees the memory; the buffer is empty again. */
void lmq_buf_release(struct lmq_buf *b);

#endif
