#include "core/lmq.h"

#include <errno.h>
#include <string.h>

const char *lmq_strerror(int err)
{
    switch (err) {
    case LMQ_OK:
        return "ok";
    case LMQ_ENOMEM:
        return "out of memory";
    case LMQ_EINVAL:
        return "invalid argument";
    case LMQ_EPROTO:
        return "protocol error";
    case LMQ_EAGAIN:
        return "need more input";
    case LMQ_ETOOBIG:
        return "too big";
    case LMQ_EIO:
        return "I/O error";
    case LMQ_ELIMIT:
        return "limit reached";
    case LMQ_ENOTFOUND:
        return "not found";
    case LMQ_EEXIST:
        return "already exists";
    default:
        return "unknown error";
    }
}

int lmq_verrf(char *err, size_t err_len, const char *fmt, va_list ap)
{
    LMQ_ASSERT(fmt != NULL);
    if (err == NULL || err_len == 0)
        return 0;
    int n = vsnprintf(err, err_len, fmt, ap);
    if (n < 0)
        err[0] = '\0';
    return n;
}

uint64_t lmq_backoff_ms(uint64_t *rng, uint32_t base_ms, uint32_t max_ms, uint32_t attempts)
{
    LMQ_ASSERT(rng != NULL && *rng != 0);
    uint64_t ms = base_ms;
    for (uint32_t i = 1; i < attempts && ms < max_ms; i++)
        ms *= 2;
    ms = LMQ_MIN(ms, (uint64_t)max_ms);
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return ms / 2 + *rng % (ms > 0 ? ms : 1);
}

int lmq_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int lmq_errf(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = lmq_verrf(err, err_len, fmt, ap);
    va_end(ap);
    return n;
}

/* "<path>: <why>" into err (when given). */
static void lmq_file_say(char *err, size_t err_len, const char *path, int rc, int sys_err,
                         size_t max_bytes)
{
    if (rc == LMQ_EIO)
        lmq_errf(err, err_len, "%s: cannot read: %s", path, strerror(sys_err));
    else if (rc == LMQ_ETOOBIG)
        lmq_errf(err, err_len, "%s: larger than %zu bytes", path, max_bytes);
    else
        lmq_errf(err, err_len, "%s: %s", path, lmq_strerror(rc));
}

int lmq_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len, char *err,
                  size_t err_len)
{
    LMQ_ASSERT(path != NULL && out != NULL && out_len != NULL);
    LMQ_ASSERT(max_bytes > 0);
    *out = NULL;
    *out_len = 0;
    int rc = LMQ_OK, sys_err = 0;
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        lmq_file_say(err, err_len, path, LMQ_EIO, errno, max_bytes);
        return LMQ_EIO;
    }
    /* One byte more than allowed tells "too big" from "exactly max_bytes". */
    data = malloc(max_bytes + 2);
    if (data == NULL) {
        rc = LMQ_ENOMEM;
        goto out;
    }
    size_t len = fread(data, 1, max_bytes + 1, f);
    if (ferror(f)) {
        sys_err = errno;
        rc = LMQ_EIO;
        goto out;
    }
    if (len > max_bytes) {
        rc = LMQ_ETOOBIG;
        goto out;
    }
    data[len] = '\0';
    *out = data;
    *out_len = len;
    data = NULL;
out:
    free(data);
    fclose(f);
    if (rc != LMQ_OK)
        lmq_file_say(err, err_len, path, rc, sys_err, max_bytes);
    return rc;
}
