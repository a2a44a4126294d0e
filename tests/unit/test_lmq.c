/*
 * The core error helper (lmq_errf / lmq_verrf): the one place that formats a one-line message
 * into a caller's "char *err, size_t err_len" buffer, so every module truncates and fails alike.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <wchar.h>

#include "core/lmq.h"

static void test_errf_writes_the_whole_message(void **state)
{
    (void)state;
    char err[64];
    memset(err, 'x', sizeof(err));
    int n = lmq_errf(err, sizeof(err), "key %s: %d", "port", 70000);
    assert_int_equal(n, 15);
    assert_string_equal(err, "key port: 70000");
}

static void test_errf_cuts_a_long_message_and_keeps_the_nul(void **state)
{
    (void)state;
    char err[8];
    memset(err, 'x', sizeof(err));
    int n = lmq_errf(err, sizeof(err), "%s", "a message longer than eight");
    assert_int_equal(n, 27); /* what the whole message would take */
    assert_string_equal(err, "a messa");
    char one[1] = {'x'};
    assert_int_equal(lmq_errf(one, sizeof(one), "%s", "anything"), 8);
    assert_int_equal(one[0], '\0');
}

static void test_errf_without_a_buffer_writes_nothing(void **state)
{
    (void)state;
    assert_int_equal(lmq_errf(NULL, 0, "%s", "ignored"), 0);
    assert_int_equal(lmq_errf(NULL, 16, "%s", "ignored"), 0);
    char err[4] = "abc";
    assert_int_equal(lmq_errf(err, 0, "%s", "ignored"), 0);
    assert_string_equal(err, "abc");
}

static void test_errf_leaves_an_empty_message_when_the_format_fails(void **state)
{
    (void)state;
    char err[32];
    memset(err, 'x', sizeof(err));
    /* In the C locale a wide character outside ASCII cannot be converted: vsnprintf fails. */
    const wchar_t wide[] = {(wchar_t)0x100, 0};
    int n = lmq_errf(err, sizeof(err), "before %ls", wide);
    assert_true(n < 0);
    assert_string_equal(err, "");
}

__attribute__((format(printf, 3, 4))) static int say(char *err, size_t err_len, const char *fmt,
                                                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = lmq_verrf(err, err_len, fmt, ap);
    va_end(ap);
    return n;
}

static void test_verrf_formats_a_forwarded_va_list(void **state)
{
    (void)state;
    char err[32];
    assert_int_equal(say(err, sizeof(err), "%s:%u", "::1", 1883u), 8);
    assert_string_equal(err, "::1:1883");
}

static void test_file_read_says_path_and_why(void **state)
{
    (void)state;
    char err[128];
    char *data = (char *)1;
    size_t len = 1;
    assert_int_equal(lmq_file_read("/nonexistent/lmq-test", 16, &data, &len, err, sizeof(err)),
                     LMQ_EIO);
    assert_null(data);
    assert_string_equal(err, "/nonexistent/lmq-test: cannot read: No such file or directory");
    /* /proc/self/cmdline is longer than 2 bytes: "larger than". */
    assert_int_equal(lmq_file_read("/proc/self/cmdline", 2, &data, &len, err, sizeof(err)),
                     LMQ_ETOOBIG);
    assert_string_equal(err, "/proc/self/cmdline: larger than 2 bytes");
    assert_int_equal(lmq_file_read("/proc/self/cmdline", 2, &data, &len, NULL, 0), LMQ_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errf_writes_the_whole_message),
        cmocka_unit_test(test_errf_cuts_a_long_message_and_keeps_the_nul),
        cmocka_unit_test(test_errf_without_a_buffer_writes_nothing),
        cmocka_unit_test(test_errf_leaves_an_empty_message_when_the_format_fails),
        cmocka_unit_test(test_verrf_formats_a_forwarded_va_list),
        cmocka_unit_test(test_file_read_says_path_and_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
