/*
 * JSON-lines logging. A line is built in the caller's struct lmq_log_line (no
 * allocation, no lock) and written with one write(2), so lines from several
 * threads never interleave. The level and the fd are atomics so another thread
 * (the SIGHUP handler path) can change them while lines are being written.
 */
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/lmq.h"

/* Appended instead of "}\n" when fields were dropped; always kept room for. */
#define LOG_TAIL_TRUNCATED ",\"truncated\":true}\n"
#define LOG_TAIL_TRUNCATED_BYTES (sizeof(LOG_TAIL_TRUNCATED) - 1)
#define LOG_TAIL_BYTES 2 /* "}\n" */
/* Events and keys are literals from our own code; longer ones are a bug. */
#define LOG_NAME_MAX_BYTES 256
/* A write that keeps failing with EINTR or making no progress is given up on. */
#define LOG_WRITE_ATTEMPTS_MAX 64
/* Length of "2026-11-25T00:56:35.123456789Z". */
#define LOG_TIME_BYTES 30

static atomic_int log_level = LMQ_LOG_INFO;
static atomic_int log_fd = 2;

int lmq_log_level_parse(const char *s, enum lmq_log_level *out)
{
    static const enum lmq_log_level levels[] = {LMQ_LOG_DEBUG, LMQ_LOG_INFO, LMQ_LOG_WARN,
                                                LMQ_LOG_ERROR};
    LMQ_ASSERT(out != NULL);
    if (s == NULL) {
        return LMQ_EINVAL;
    }
    for (size_t i = 0; i < LMQ_ARRAY_LEN(levels); i++) {
        if (strcmp(s, lmq_log_level_name(levels[i])) == 0) {
            *out = levels[i];
            return 0;
        }
    }
    return LMQ_EINVAL;
}

const char *lmq_log_level_name(enum lmq_log_level level)
{
    switch (level) {
    case LMQ_LOG_DEBUG:
        return "debug";
    case LMQ_LOG_INFO:
        return "info";
    case LMQ_LOG_WARN:
        return "warn";
    case LMQ_LOG_ERROR:
        return "error";
    }
    LMQ_UNREACHABLE("unknown log level");
    return "unknown";
}

void lmq_log_set_level(enum lmq_log_level level)
{
    LMQ_ASSERT(level >= LMQ_LOG_DEBUG && level <= LMQ_LOG_ERROR);
    atomic_store(&log_level, (int)level);
}

enum lmq_log_level lmq_log_get_level(void)
{
    int level = atomic_load(&log_level);
    LMQ_ASSERT(level >= LMQ_LOG_DEBUG && level <= LMQ_LOG_ERROR);
    return (enum lmq_log_level)level;
}

void lmq_log_set_fd(int fd)
{
    LMQ_ASSERT(fd >= 0);
    atomic_store(&log_fd, fd);
}

void lmq_time_rfc3339(char *out, size_t cap)
{
    LMQ_ASSERT(out != NULL);
    LMQ_ASSERT(cap >= LOG_TIME_BYTES + 1);
    struct timespec ts = {0};
    struct tm tm = {0};
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    LMQ_ASSERT(rc == 0);
    if (gmtime_r(&ts.tv_sec, &tm) == NULL) {
        /* Only for years beyond int range; keep the format valid. */
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 70;
        tm.tm_mday = 1;
    }
    int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
    LMQ_ASSERT(n == LOG_TIME_BYTES);
}

/* Bytes a field may use: always leave room to close the object. */
static size_t log__cap(void)
{
    return LMQ_LOG_LINE_MAX_BYTES - LOG_TAIL_BYTES;
}

static bool log__put(struct lmq_log_line *line, const char *s, size_t n)
{
    if (n > log__cap() - line->len) {
        return false;
    }
    memcpy(line->buf + line->len, s, n);
    line->len += n;
    return true;
}

static bool log__puts(struct lmq_log_line *line, const char *s)
{
    return log__put(line, s, strlen(s));
}

/*
 * Length of the valid UTF-8 sequence starting at s[0] (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when it is not valid.
 */
static size_t log__utf8_len(const uint8_t *s, size_t avail)
{
    LMQ_ASSERT(avail > 0);
    uint8_t b = s[0];
    size_t need = 0;
    uint8_t lo = 0x80;
    uint8_t hi = 0xBF;
    if (b < 0x80) {
        return 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
        need = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        lo = (b == 0xE0) ? 0xA0 : 0x80;
        hi = (b == 0xED) ? 0x9F : 0xBF;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        lo = (b == 0xF0) ? 0x90 : 0x80;
        hi = (b == 0xF4) ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (avail < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return need;
}

/* Escape for one ASCII byte, or NULL when it is written as is. */
static const char *log__escape_ascii(uint8_t c, char tmp[8])
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    default:
        break;
    }
    if (c < 0x20 || c == 0x7F) {
        int n = snprintf(tmp, 8, "\\u%04x", (unsigned)c);
        LMQ_ASSERT(n == 6);
        return tmp;
    }
    return NULL;
}

/* Appends value as a JSON string (with the quotes). False when it does not fit. */
static bool log__put_json_str(struct lmq_log_line *line, const uint8_t *value, size_t len)
{
    char tmp[8];
    if (!log__put(line, "\"", 1)) {
        return false;
    }
    size_t i = 0;
    while (i < len) { /* advances by at least one byte per iteration */
        size_t seq = log__utf8_len(value + i, len - i);
        const char *esc = NULL;
        if (seq == 0) {
            int n = snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned)value[i]);
            LMQ_ASSERT(n == 6);
            esc = tmp;
            seq = 1;
        } else if (seq == 1) {
            esc = log__escape_ascii(value[i], tmp);
        }
        bool ok = esc ? log__puts(line, esc) : log__put(line, (const char *)value + i, seq);
        if (!ok) {
            return false;
        }
        i += seq;
    }
    return log__put(line, "\"", 1);
}

/* Starts a field: `,"key":`. */
static bool log__put_key(struct lmq_log_line *line, const char *key)
{
    LMQ_ASSERT(key != NULL);
    size_t key_len = strnlen(key, LOG_NAME_MAX_BYTES);
    LMQ_ASSERT(key_len < LOG_NAME_MAX_BYTES);
    return log__put(line, ",", 1) && log__put_json_str(line, (const uint8_t *)key, key_len) &&
           log__put(line, ":", 1);
}

/*
 * Offset of the last top-level field boundary (a ',' between members of the
 * line's object) at or below limit, found by walking the JSON we wrote.
 * Raw values are valid JSON, so strings and nesting are tracked to skip
 * commas inside them. Only runs when a line is truncated.
 */
static size_t log__last_boundary(const struct lmq_log_line *line, size_t limit)
{
    LMQ_ASSERT(line->len > 0 && line->buf[0] == '{');
    size_t found = 0;
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < line->len && i <= limit; i++) {
        char c = line->buf[i];
        if (in_string) {
            if (c == '\\') {
                i++; /* the escaped byte can't end the string */
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            LMQ_ASSERT(depth > 0);
            depth--;
        } else if (c == ',' && depth == 1) {
            found = i;
        }
    }
    LMQ_ASSERT(found > 0); /* the header has boundaries before "level" and "event" */
    return found;
}

/*
 * Called after each field with the offset it started at. A field that does
 * not fit is removed and the line is marked truncated; later fields are not
 * added, so the line is cut at a field boundary.
 */
static void log__field_done(struct lmq_log_line *line, size_t start, bool ok)
{
    LMQ_ASSERT(start <= line->len);
    LMQ_ASSERT(line->len <= log__cap());
    if (!ok) {
        line->truncated = true;
        line->len = start;
    }
}

/* Makes room for the truncation marker by dropping whole trailing fields. */
static void log__cut_for_marker(struct lmq_log_line *line)
{
    LMQ_ASSERT(line->truncated);
    if (line->len + LOG_TAIL_TRUNCATED_BYTES > LMQ_LOG_LINE_MAX_BYTES) {
        line->len = log__last_boundary(line, LMQ_LOG_LINE_MAX_BYTES - LOG_TAIL_TRUNCATED_BYTES);
    }
    LMQ_ASSERT(line->len + LOG_TAIL_TRUNCATED_BYTES <= LMQ_LOG_LINE_MAX_BYTES);
}

bool lmq_log_begin(struct lmq_log_line *line, enum lmq_log_level level, const char *event)
{
    LMQ_ASSERT(line != NULL);
    LMQ_ASSERT(event != NULL);
    LMQ_ASSERT(level >= LMQ_LOG_DEBUG && level <= LMQ_LOG_ERROR);
    if ((int)level < atomic_load(&log_level)) {
        return false;
    }
    char time_buf[LOG_TIME_BYTES + 1];
    lmq_time_rfc3339(time_buf, sizeof(time_buf));
    size_t event_len = strnlen(event, LOG_NAME_MAX_BYTES);
    LMQ_ASSERT(event_len < LOG_NAME_MAX_BYTES);

    line->len = 0;
    line->truncated = false;
    bool ok = log__puts(line, "{\"time\":\"") && log__puts(line, time_buf) &&
              log__puts(line, "\",\"level\":\"") && log__puts(line, lmq_log_level_name(level)) &&
              log__puts(line, "\",\"event\":") &&
              log__put_json_str(line, (const uint8_t *)event, event_len);
    /* Bounded event name: the header always fits with room for the marker. */
    LMQ_ASSERT(ok);
    LMQ_ASSERT(line->len + LOG_TAIL_TRUNCATED_BYTES <= LMQ_LOG_LINE_MAX_BYTES);
    return true;
}

/* Writes all of buf with write(2), retrying on EINTR and partial writes. */
static void log__write_all(int fd, const char *buf, size_t len)
{
    LMQ_ASSERT(fd >= 0);
    LMQ_ASSERT(len > 0 && len <= LMQ_LOG_LINE_MAX_BYTES);
    size_t done = 0;
    for (int attempt = 0; attempt < LOG_WRITE_ATTEMPTS_MAX && done < len; attempt++) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; /* nowhere left to report a failing log fd; the line is lost */
        }
        done += (size_t)n;
    }
}

void lmq_log_str(struct lmq_log_line *line, const char *key, const char *value)
{
    LMQ_ASSERT(line != NULL);
    if (value == NULL) {
        lmq_log_raw(line, key, "null");
        return;
    }
    lmq_log_strn(line, key, (const uint8_t *)value, strlen(value));
}

void lmq_log_strn(struct lmq_log_line *line, const char *key, const uint8_t *value, size_t len)
{
    LMQ_ASSERT(line != NULL);
    LMQ_ASSERT(value != NULL || len == 0);
    if (line->truncated) {
        return;
    }
    size_t start = line->len;
    static const uint8_t empty[1] = {0};
    bool ok = log__put_key(line, key) && log__put_json_str(line, value ? value : empty, len);
    log__field_done(line, start, ok);
}

void lmq_log_int(struct lmq_log_line *line, const char *key, int64_t value)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRId64, value);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(num));
    lmq_log_raw(line, key, num);
}

void lmq_log_uint(struct lmq_log_line *line, const char *key, uint64_t value)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRIu64, value);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(num));
    lmq_log_raw(line, key, num);
}

void lmq_log_bool(struct lmq_log_line *line, const char *key, bool value)
{
    lmq_log_raw(line, key, value ? "true" : "false");
}

void lmq_log_reason_code(struct lmq_log_line *line, const char *key, uint8_t code)
{
    char hex[8];
    int n = snprintf(hex, sizeof(hex), "0x%02X", (unsigned)code);
    LMQ_ASSERT(n == 4);
    lmq_log_strn(line, key, (const uint8_t *)hex, (size_t)n);
}

void lmq_log_raw(struct lmq_log_line *line, const char *key, const char *raw_json)
{
    LMQ_ASSERT(line != NULL);
    LMQ_ASSERT(raw_json != NULL && raw_json[0] != '\0');
    if (line->truncated) {
        return;
    }
    size_t start = line->len;
    bool ok = log__put_key(line, key) && log__puts(line, raw_json);
    log__field_done(line, start, ok);
}

void lmq_log_end(struct lmq_log_line *line)
{
    LMQ_ASSERT(line != NULL);
    LMQ_ASSERT(line->len > 0 && line->len <= log__cap());
    if (line->truncated) {
        log__cut_for_marker(line);
        memcpy(line->buf + line->len, LOG_TAIL_TRUNCATED, LOG_TAIL_TRUNCATED_BYTES);
        line->len += LOG_TAIL_TRUNCATED_BYTES;
    } else {
        memcpy(line->buf + line->len, "}\n", LOG_TAIL_BYTES);
        line->len += LOG_TAIL_BYTES;
    }
    LMQ_ASSERT(line->len <= LMQ_LOG_LINE_MAX_BYTES);
    log__write_all(atomic_load(&log_fd), line->buf, line->len);
}

void lmq_log_msg(enum lmq_log_level level, const char *event, const char *msg)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, level, event)) {
        return;
    }
    lmq_log_str(&line, "msg", msg);
    lmq_log_end(&line);
}

void lmq_log_msgf(enum lmq_log_level level, const char *event, const char *fmt, ...)
{
    LMQ_ASSERT(fmt != NULL);
    char msg[LMQ_LOG_LINE_MAX_BYTES / 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lmq_log_msg(level, event, n < 0 ? fmt : msg); /* a cut message is still worth logging */
}
