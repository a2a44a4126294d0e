/*
 * JSON-lines logging: exact bytes of lines (except the time, which is checked
 * against the RFC 3339 nanosecond pattern), escaping, level filtering and
 * truncation. Lines are read back from a pipe set with lmq_log_set_fd().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/lmq.h"
#include "core/log.h"

#define TIME_BYTES 30
#define PREFIX "{\"time\":\""
#define PREFIX_BYTES (sizeof(PREFIX) - 1)
#define MARKER ",\"truncated\":true}\n"
#define MARKER_BYTES (sizeof(MARKER) - 1)

static int pipe_fds[2];

static int setup(void **state)
{
    (void)state;
    if (pipe(pipe_fds) != 0 || fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK) != 0) {
        return -1;
    }
    lmq_log_set_fd(pipe_fds[1]);
    lmq_log_set_level(LMQ_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lmq_log_set_fd(2);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}

/* Everything written to the log since the last call (0 bytes when nothing). */
static size_t read_log(char *buf, size_t cap)
{
    size_t len = 0;
    for (int i = 0; i < 64 && len < cap; i++) {
        ssize_t n = read(pipe_fds[0], buf + len, cap - len);
        if (n <= 0) {
            assert_true(n < 0 && errno == EAGAIN);
            break;
        }
        len += (size_t)n;
    }
    assert_true(len < cap);
    buf[len] = '\0';
    return len;
}

static bool is_rfc3339_nanos(const char *s)
{
    const char *pattern = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
    for (size_t i = 0; i < TIME_BYTES; i++) {
        bool ok = pattern[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == pattern[i];
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* A tiny strict JSON validator (RFC 8259), so the test needs no library. */
static bool json_value(const char **p, int depth);

static bool json_utf8(const unsigned char **p)
{
    const unsigned char *s = *p;
    int need = s[0] >= 0xF0 ? 3 : s[0] >= 0xE0 ? 2 : 1;
    unsigned cp = s[0] & (need == 3 ? 0x07u : need == 2 ? 0x0Fu : 0x1Fu);
    if (s[0] < 0xC2 || s[0] > 0xF4) {
        return false;
    }
    for (int i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return false;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    bool ok = !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= 0x10FFFF &&
              cp >= (need == 3   ? 0x10000u
                     : need == 2 ? 0x800u
                                 : 0x80u);
    *p = s + need + 1;
    return ok;
}

static bool json_string(const char **p)
{
    const char *s = *p + 1;
    while (*s != '"') {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20) {
            return false;
        } else if (c == '\\') {
            s++;
            if (*s == 'u') {
                for (int i = 1; i <= 4; i++) {
                    if (strchr("0123456789abcdefABCDEF", s[i]) == NULL || s[i] == '\0') {
                        return false;
                    }
                }
                s += 5;
            } else if (*s != '\0' && strchr("\"\\/bfnrt", *s) != NULL) {
                s++;
            } else {
                return false;
            }
        } else if (c >= 0x80) {
            if (!json_utf8((const unsigned char **)&s)) {
                return false;
            }
        } else {
            s++;
        }
    }
    *p = s + 1;
    return true;
}

static bool json_members(const char **p, int depth, char close, bool keyed)
{
    (*p)++;
    if (**p == close) {
        (*p)++;
        return true;
    }
    for (;;) {
        if (keyed) {
            if (**p != '"' || !json_string(p) || **p != ':') {
                return false;
            }
            (*p)++;
        }
        if (!json_value(p, depth + 1)) {
            return false;
        }
        if (**p == close) {
            (*p)++;
            return true;
        }
        if (**p != ',') {
            return false;
        }
        (*p)++;
    }
}

static bool json_value(const char **p, int depth)
{
    const char *s = *p;
    if (depth > 32) {
        return false;
    }
    if (*s == '{') {
        return json_members(p, depth, '}', true);
    } else if (*s == '[') {
        return json_members(p, depth, ']', false);
    } else if (*s == '"') {
        return json_string(p);
    }
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(words); i++) {
        if (strncmp(s, words[i], strlen(words[i])) == 0) {
            *p = s + strlen(words[i]);
            return true;
        }
    }
    if (*s == '-') {
        s++;
    }
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9')) {
        return false;
    }
    while (*s >= '0' && *s <= '9') {
        s++;
    }
    *p = s;
    return true;
}

/* True when buf is exactly one JSON object followed by '\n'. */
static bool is_json_line(const char *buf, size_t len)
{
    const char *p = buf;
    if (len == 0 || buf[len - 1] != '\n' || buf[0] != '{' || strlen(buf) != len) {
        return false;
    }
    return json_value(&p, 0) && p == buf + len - 1;
}

/* Checks one line: valid JSON, a well-formed time, then exactly `rest`. */
static void assert_line(const char *got, size_t got_len, const char *rest)
{
    assert_true(got_len > PREFIX_BYTES + TIME_BYTES);
    assert_memory_equal(got, PREFIX, PREFIX_BYTES);
    if (!is_rfc3339_nanos(got + PREFIX_BYTES)) {
        print_error("bad time in %s\n", got);
        fail();
    }
    assert_string_equal(got + PREFIX_BYTES + TIME_BYTES, rest);
    if (!is_json_line(got, got_len)) {
        print_error("not a JSON line: %s\n", got);
        fail();
    }
}

static void test_level_names_round_trip(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = LMQ_LOG_DEBUG; i <= LMQ_LOG_ERROR; i++) {
        enum lmq_log_level level = LMQ_LOG_ERROR;
        assert_int_equal(lmq_log_level_parse(names[i], &level), 0);
        assert_int_equal(level, i);
        assert_string_equal(lmq_log_level_name(level), names[i]);
    }
    enum lmq_log_level level = LMQ_LOG_WARN;
    assert_int_equal(lmq_log_level_parse("INFO", &level), LMQ_EINVAL);
    assert_int_equal(lmq_log_level_parse("warning", &level), LMQ_EINVAL);
    assert_int_equal(lmq_log_level_parse("", &level), LMQ_EINVAL);
    assert_int_equal(lmq_log_level_parse(NULL, &level), LMQ_EINVAL);
    assert_int_equal(level, LMQ_LOG_WARN);
}

static void test_time_is_rfc3339_utc_nanoseconds(void **state)
{
    (void)state;
    char buf[TIME_BYTES + 1];
    char expect_prefix[16];
    time_t before = time(NULL);
    lmq_time_rfc3339(buf, sizeof(buf));
    time_t after = time(NULL);
    assert_int_equal(strlen(buf), TIME_BYTES);
    assert_true(is_rfc3339_nanos(buf));
    /* The date part is today's UTC date (either side of a midnight). */
    struct tm tm;
    bool match = false;
    for (time_t t = before; t <= after; t++) {
        assert_non_null(gmtime_r(&t, &tm));
        strftime(expect_prefix, sizeof(expect_prefix), "%Y-%m-%dT%H", &tm);
        match = match || strncmp(buf, expect_prefix, strlen(expect_prefix)) == 0;
    }
    assert_true(match);
}

static void test_line_has_exact_fields_in_order(void **state)
{
    (void)state;
    char got[8192];
    struct lmq_log_line line;
    assert_true(lmq_log_begin(&line, LMQ_LOG_INFO, "ready"));
    lmq_log_str(&line, "client", "c1");
    lmq_log_int(&line, "n", -5);
    lmq_log_int(&line, "min", INT64_MIN);
    lmq_log_uint(&line, "max", UINT64_MAX);
    lmq_log_bool(&line, "t", true);
    lmq_log_bool(&line, "f", false);
    lmq_log_raw(&line, "ports", "[1883,0]");
    lmq_log_strn(&line, "empty", NULL, 0);
    lmq_log_str(&line, "none", NULL);
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    assert_line(got, len,
                "\",\"level\":\"info\",\"event\":\"ready\",\"client\":\"c1\",\"n\":-5,"
                "\"min\":-9223372036854775808,\"max\":18446744073709551615,\"t\":true,"
                "\"f\":false,\"ports\":[1883,0],\"empty\":\"\",\"none\":null}\n");
}

static void test_msg_is_one_line(void **state)
{
    (void)state;
    char got[8192];
    lmq_log_msg(LMQ_LOG_ERROR, "store_failed", "disk \"full\"");
    size_t len = read_log(got, sizeof(got));
    assert_line(
        got, len,
        "\",\"level\":\"error\",\"event\":\"store_failed\",\"msg\":\"disk \\\"full\\\"\"}\n");
}

static void test_reason_codes_are_hex_and_msgf_formats(void **state)
{
    (void)state;
    char got[8192];
    struct lmq_log_line line;
    assert_true(lmq_log_begin(&line, LMQ_LOG_INFO, "client_disconnected"));
    lmq_log_reason_code(&line, "reason_code", 0x8E);
    lmq_log_reason_code(&line, "ok", 0x00);
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    assert_line(got, len,
                "\",\"level\":\"info\",\"event\":\"client_disconnected\",\"reason_code\":\"0x8E\","
                "\"ok\":\"0x00\"}\n");
    lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "cannot listen on %s:%u: %s", "127.0.0.1", 1883u,
                 "address already in use");
    len = read_log(got, sizeof(got));
    assert_line(got, len,
                "\",\"level\":\"error\",\"event\":\"start_failed\",\"msg\":\"cannot listen on "
                "127.0.0.1:1883: address already in use\"}\n");
}

static void test_quotes_and_control_chars_are_escaped(void **state)
{
    (void)state;
    char got[8192];
    struct lmq_log_line line;
    static const uint8_t with_nul[] = {'a', 0, 'b'};
    assert_true(lmq_log_begin(&line, LMQ_LOG_WARN, "ev\"ent"));
    lmq_log_str(&line, "k\"ey", "say \"hi\" \\ \n\t\r\b\f\x01\x1f\x7f/end");
    lmq_log_strn(&line, "nul", with_nul, sizeof(with_nul));
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    assert_line(got, len,
                "\",\"level\":\"warn\",\"event\":\"ev\\\"ent\",\"k\\\"ey\":"
                "\"say \\\"hi\\\" \\\\ \\n\\t\\r\\b\\f\\u0001\\u001f\\u007f/end\","
                "\"nul\":\"a\\u0000b\"}\n");
}

static void test_invalid_utf8_bytes_are_escaped_valid_kept(void **state)
{
    (void)state;
    char got[8192];
    struct lmq_log_line line;
    static const uint8_t bytes[] = {
        0xFF,                   /* never valid */
        'a',  0x80,             /* lone continuation */
        0xC0, 0x80,             /* overlong NUL */
        0xED, 0xA0, 0x80,       /* UTF-16 surrogate */
        0xE2, 0x82,             /* cut-short sequence ... */
        0xF4, 0x90, 0x80, 0x80, /* above U+10FFFF */
        0xC3, 0xA9,             /* é */
        0xE2, 0x82, 0xAC,       /* € */
        0xF0, 0x9F, 0x98, 0x80, /* 😀 */
        0xE2, 0x82,             /* cut short at the very end */
    };
    assert_true(lmq_log_begin(&line, LMQ_LOG_INFO, "utf8"));
    lmq_log_strn(&line, "v", bytes, sizeof(bytes));
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    assert_line(got, len,
                "\",\"level\":\"info\",\"event\":\"utf8\",\"v\":\""
                "\\u00ffa\\u0080\\u00c0\\u0080\\u00ed\\u00a0\\u0080\\u00e2\\u0082"
                "\\u00f4\\u0090\\u0080\\u0080\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"
                "\\u00e2\\u0082\"}\n");
}

static void test_levels_below_the_minimum_are_not_written(void **state)
{
    (void)state;
    char got[8192];
    struct lmq_log_line line;
    lmq_log_set_level(LMQ_LOG_WARN);
    assert_int_equal(lmq_log_get_level(), LMQ_LOG_WARN);
    assert_false(lmq_log_begin(&line, LMQ_LOG_INFO, "hidden"));
    assert_false(lmq_log_begin(&line, LMQ_LOG_DEBUG, "hidden"));
    lmq_log_msg(LMQ_LOG_INFO, "hidden", "x");
    assert_int_equal(read_log(got, sizeof(got)), 0);
    assert_true(lmq_log_begin(&line, LMQ_LOG_WARN, "shown"));
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    assert_line(got, len, "\",\"level\":\"warn\",\"event\":\"shown\"}\n");
    lmq_log_set_level(LMQ_LOG_DEBUG);
    lmq_log_msg(LMQ_LOG_DEBUG, "dbg", "y");
    len = read_log(got, sizeof(got));
    assert_line(got, len, "\",\"level\":\"debug\",\"event\":\"dbg\",\"msg\":\"y\"}\n");
    lmq_log_set_level(LMQ_LOG_INFO);
}

/* Adds one string field that makes the whole line exactly total_bytes long. */
static void add_filler_to(struct lmq_log_line *line, size_t total_bytes)
{
    /* ,"k":"<n bytes>" then }\n */
    size_t overhead = strlen(",\"k\":\"\"") + 2;
    assert_true(total_bytes > line->len + overhead);
    static char filler[LMQ_LOG_LINE_MAX_BYTES];
    size_t n = total_bytes - line->len - overhead;
    memset(filler, 'x', n);
    lmq_log_strn(line, "k", (const uint8_t *)filler, n);
}

static void test_line_of_exactly_the_maximum_is_not_truncated(void **state)
{
    (void)state;
    char got[8192];
    struct lmq_log_line line;
    assert_true(lmq_log_begin(&line, LMQ_LOG_INFO, "full"));
    add_filler_to(&line, LMQ_LOG_LINE_MAX_BYTES);
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    assert_int_equal(len, LMQ_LOG_LINE_MAX_BYTES);
    assert_false(line.truncated);
    assert_true(is_json_line(got, len));
    assert_null(strstr(got, "truncated"));

    /* One byte more and the field is dropped, leaving a marked, valid line. */
    assert_true(lmq_log_begin(&line, LMQ_LOG_INFO, "full"));
    add_filler_to(&line, LMQ_LOG_LINE_MAX_BYTES + 1);
    lmq_log_end(&line);
    len = read_log(got, sizeof(got));
    assert_line(got, len, "\",\"level\":\"info\",\"event\":\"full\",\"truncated\":true}\n");
}

static void test_truncation_cuts_at_a_field_boundary(void **state)
{
    (void)state;
    char got[8192];
    char field[128];
    struct lmq_log_line line;
    assert_true(lmq_log_begin(&line, LMQ_LOG_INFO, "many"));
    /* 100 fields of ~110 bytes: about 11 KiB, far over the maximum. */
    for (int i = 0; i < 100; i++) {
        memset(field, 'a' + i % 26, 100);
        field[100] = '\0';
        char key[16];
        snprintf(key, sizeof(key), "f%02d", i);
        lmq_log_str(&line, key, field);
    }
    lmq_log_int(&line, "after", 1); /* small, but after the cut: not added */
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    assert_true(len <= LMQ_LOG_LINE_MAX_BYTES);
    assert_true(len > LMQ_LOG_LINE_MAX_BYTES - 200);
    assert_true(is_json_line(got, len));
    assert_memory_equal(got + len - MARKER_BYTES, MARKER, MARKER_BYTES);
    assert_null(strstr(got, "\"after\""));
    /* Every field present is whole: the last one before the marker is 100 letters. */
    const char *last = got + len - MARKER_BYTES - 1 - 100;
    assert_int_equal(last[-1], '"');
    assert_int_equal(strspn(last, "abcdefghijklmnopqrstuvwxyz"), 100);
}

static void test_truncation_drops_fields_that_leave_no_room_for_marker(void **state)
{
    (void)state;
    char got[8192];
    char raw[LMQ_LOG_LINE_MAX_BYTES];
    struct lmq_log_line line;
    assert_true(lmq_log_begin(&line, LMQ_LOG_INFO, "tight"));
    lmq_log_str(&line, "first", "kept");
    size_t kept_len = line.len;
    char kept[LMQ_LOG_LINE_MAX_BYTES];
    memcpy(kept, line.buf, kept_len);
    /* A raw field with commas inside strings and nesting, ending 4 bytes before the cap. */
    const char *head = "[{\"s\":\",\",\"t\":[1,2]},\"";
    const char *tail = ",\"]";
    size_t target = LMQ_LOG_LINE_MAX_BYTES - 2 - 4; /* line length before "}\n" */
    size_t pad = target - kept_len - strlen(",\"r\":") - strlen(head) - strlen(tail);
    int n = snprintf(raw, sizeof(raw), "%s%0*d%s", head, (int)pad, 0, tail);
    assert_true(n > 0 && (size_t)n < sizeof(raw));
    lmq_log_raw(&line, "r", raw);
    assert_int_equal(line.len, target);
    assert_false(line.truncated);
    lmq_log_str(&line, "next", "does not fit");
    lmq_log_end(&line);
    size_t len = read_log(got, sizeof(got));
    /* The raw field fit alone but leaves no room for the marker: it goes too. */
    assert_int_equal(len, kept_len + MARKER_BYTES);
    assert_memory_equal(got, kept, kept_len);
    assert_memory_equal(got + kept_len, MARKER, MARKER_BYTES);
    assert_true(is_json_line(got, len));
}

static void test_json_checker_rejects_broken_lines(void **state)
{
    (void)state;
    /* Control run: the validator used above does catch bad output. */
    static const char *const bad[] = {
        "{\"a\":\"x\n",       "{\"a\":\"\x01\"}\n",         "{\"a\":\"\\q\"}\n", "{\"a\":1,}\n",
        "{\"a\":\"\xff\"}\n", "{\"a\":\"\xed\xa0\x80\"}\n", "{\"a\":[1,2}\n",    "{\"a\":1}",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        assert_false(is_json_line(bad[i], strlen(bad[i])));
    }
    const char *good = "{\"a\":[1,-2,{\"b\":\"\\u00e9\xc3\xa9\"}],\"c\":null}\n";
    assert_true(is_json_line(good, strlen(good)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_names_round_trip),
        cmocka_unit_test(test_time_is_rfc3339_utc_nanoseconds),
        cmocka_unit_test(test_line_has_exact_fields_in_order),
        cmocka_unit_test(test_msg_is_one_line),
        cmocka_unit_test(test_reason_codes_are_hex_and_msgf_formats),
        cmocka_unit_test(test_quotes_and_control_chars_are_escaped),
        cmocka_unit_test(test_invalid_utf8_bytes_are_escaped_valid_kept),
        cmocka_unit_test(test_levels_below_the_minimum_are_not_written),
        cmocka_unit_test(test_line_of_exactly_the_maximum_is_not_truncated),
        cmocka_unit_test(test_truncation_cuts_at_a_field_boundary),
        cmocka_unit_test(test_truncation_drops_fields_that_leave_no_room_for_marker),
        cmocka_unit_test(test_json_checker_rejects_broken_lines),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
