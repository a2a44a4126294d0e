/* Project-wide basics: error codes, assertions, small helpers. */
#ifndef LMQ_H
#define LMQ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Error codes: functions that can fail return 0 or one of these (negative). */
enum lmq_err {
    LMQ_OK = 0,
    LMQ_ENOMEM = -1,    /* allocation failed */
    LMQ_EINVAL = -2,    /* bad argument or value */
    LMQ_EPROTO = -3,    /* malformed or illegal protocol input */
    LMQ_EAGAIN = -4,    /* need more input */
    LMQ_ETOOBIG = -5,   /* output buffer or a size limit too small */
    LMQ_EIO = -6,       /* I/O or storage failure */
    LMQ_ELIMIT = -7,    /* a configured limit was reached */
    LMQ_ENOTFOUND = -8, /* no such item */
    LMQ_EEXIST = -9,    /* item already exists */
};

/* A byte slice: what the codec decodes into, the store reads and writes, the broker keeps.
 * data == NULL with len == 0 means "absent". */
struct lmq_bytes {
    const uint8_t *data;
    size_t len;
};

/* Returns a static description of an lmq_err code. */
const char *lmq_strerror(int err);

/*
 * Formats a one-line message into err[0..err_len), the "char *err, size_t err_len" out-parameter
 * of fallible functions. A message cut at err_len is still a useful message, so truncation is
 * accepted on purpose; a format that fails leaves "". err may be NULL (or err_len 0): nothing is
 * written then and 0 returned. Otherwise returns what vsnprintf returned: the length of the
 * whole message, or a negative number when the format failed.
 */
int lmq_errf(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same with a va_list (for functions that take a format themselves); ap is consumed. */
int lmq_verrf(char *err, size_t err_len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* An exponential backoff with jitter: base_ms * 2^(attempts-1), at most max_ms, times a random
 * factor in [0.5, 1.5) drawn from *rng (xorshift64 state, never 0: seed it from a clock or
 * RAND_bytes). For retries of outbound requests (webhooks, the Ethereum RPC client). */
uint64_t lmq_backoff_ms(uint64_t *rng, uint32_t base_ms, uint32_t max_ms, uint32_t attempts);

/* The value of a hexadecimal digit (0-9, a-f, A-F), or -1. */
int lmq_hex_digit(char c);

/*
 * Reads a whole file of at most max_bytes into a new NUL-terminated buffer (*out, freed by the
 * caller; *out_len excludes the NUL). Returns 0, LMQ_EIO, LMQ_ETOOBIG or LMQ_ENOMEM; *out is
 * NULL on failure and err (when not NULL) says "<path>: <why>" in one line.
 */
int lmq_file_read(const char *path, size_t max_bytes, char **out, size_t *out_len, char *err,
                  size_t err_len) __attribute__((warn_unused_result));

#define LMQ_WUR __attribute__((warn_unused_result))
#define LMQ_UNUSED(x) ((void)(x))
#define LMQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LMQ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LMQ_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Invariant check: prints where and what, then aborts. Never compiled out. */
#define LMQ_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0)) {                                                        \
            fprintf(stderr,                                                                        \
                    "{\"level\":\"fatal\",\"event\":\"assert\",\"file\":\"%s\","                   \
                    "\"line\":%d,\"cond\":\"%s\"}\n",                                              \
                    __FILE__, __LINE__, #cond);                                                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Marks a path that a correct program never takes: prints why, then aborts. */
#define LMQ_UNREACHABLE(why)                                                                       \
    do {                                                                                           \
        fprintf(stderr,                                                                            \
                "{\"level\":\"fatal\",\"event\":\"unreachable\",\"file\":\"%s\","                  \
                "\"line\":%d,\"why\":\"%s\"}\n",                                                   \
                __FILE__, __LINE__, why);                                                          \
        abort();                                                                                   \
    } while (0)

#endif
