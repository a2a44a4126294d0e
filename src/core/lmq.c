#include "core/lmq.h"

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
