#include "core/lmq.h"

#include <errno.h>

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

int lmq_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len, int *errno_out)
{
    LMQ_ASSERT(path != NULL && out != NULL && out_len != NULL && errno_out != NULL);
    LMQ_ASSERT(max_bytes > 0);
    *out = NULL;
    *out_len = 0;
    *errno_out = 0;
    int rc = LMQ_OK;
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *errno_out = errno;
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
        *errno_out = errno;
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
    return rc;
}
