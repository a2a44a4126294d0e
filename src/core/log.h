/*
 * JSON-lines logging: one object per line,
 *   {"time":"2026-11-25T00:00:00.123456789Z","level":"info","event":"ready",...}
 * Lines are built in a fixed buffer on the caller's stack (no allocation) and
 * written with one write(2). The level can be changed at run time.
 */
#ifndef LMQ_LOG_H
#define LMQ_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lmq_log_level {
    LMQ_LOG_DEBUG = 0,
    LMQ_LOG_INFO = 1,
    LMQ_LOG_WARN = 2,
    LMQ_LOG_ERROR = 3,
};

#define LMQ_LOG_LINE_MAX_BYTES 4096

struct lmq_log_line {
    char buf[LMQ_LOG_LINE_MAX_BYTES];
    size_t len;
    bool truncated;
};

/* Parses "debug", "info", "warn", "error". Returns 0 or LMQ_EINVAL. */
int lmq_log_level_parse(const char *s, enum lmq_log_level *out);
/* Returns "debug", "info", "warn" or "error". */
const char *lmq_log_level_name(enum lmq_log_level level);

/* Sets/reads the minimum level written. Thread-safe (atomic). */
void lmq_log_set_level(enum lmq_log_level level);
enum lmq_log_level lmq_log_get_level(void);

/* Sets the file descriptor lines are written to (default 2, stderr). */
void lmq_log_set_fd(int fd);

/*
 * Starts a line. Returns false (and the line must not be used further) when
 * level is below the current level; otherwise writes time, level and event.
 */
bool lmq_log_begin(struct lmq_log_line *line, enum lmq_log_level level, const char *event);
/* Adds "key":"value" with JSON escaping; bytes that are not valid UTF-8 are escaped as \u00XX. */
void lmq_log_str(struct lmq_log_line *line, const char *key, const char *value);
void lmq_log_strn(struct lmq_log_line *line, const char *key, const uint8_t *value, size_t len);
/* Adds "key":<number> / true / false. */
void lmq_log_int(struct lmq_log_line *line, const char *key, int64_t value);
void lmq_log_uint(struct lmq_log_line *line, const char *key, uint64_t value);
void lmq_log_bool(struct lmq_log_line *line, const char *key, bool value);
/* Adds "key":"0x8E": an MQTT reason code written as the specification and our docs write it. */
void lmq_log_reason_code(struct lmq_log_line *line, const char *key, uint8_t code);
/* Adds "key":<raw>, raw must already be valid JSON (e.g. an array). */
void lmq_log_raw(struct lmq_log_line *line, const char *key, const char *raw_json);
/* Closes the object, appends '\n' and writes the line (a truncated line stays valid JSON). */
void lmq_log_end(struct lmq_log_line *line);

/* One-call form for a line with just a message: {"...","event":E,"msg":M}. */
void lmq_log_msg(enum lmq_log_level level, const char *event, const char *msg);
/* The same with a printf-style message (cut at the line's size, never an error). */
void lmq_log_msgf(enum lmq_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats the current UTC time as RFC 3339 with nanoseconds into out (>= 31 bytes). */
void lmq_time_rfc3339(char *out, size_t cap);

#endif
