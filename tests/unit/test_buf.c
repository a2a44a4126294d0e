/*
 * The bounded growable buffer (core/buf.h): bounds per call, unchanged on failure, memory
 * never past the bound, and formatted appends (lmq_buf_printf, which the HTTP server and its
 * routes write responses with).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <wchar.h>

#include "core/buf.h"

static void test_buf_is_bounded_and_unchanged_on_failure(void **state)
{
    (void)state;
    struct lmq_buf b = {0};
    assert_int_equal(lmq_buf_append(&b, "12345", 5, 10), 0);
    assert_int_equal(lmq_buf_printf(&b, 10, "%d", 6789), 0);
    assert_int_equal(b.len, 9);
    assert_int_equal(lmq_buf_printf(&b, 10, "%s", "ab"), LMQ_ELIMIT);
    assert_int_equal(lmq_buf_append(&b, "ab", 2, 10), LMQ_ELIMIT);
    assert_int_equal(b.len, 9);
    assert_int_equal(lmq_buf_append(&b, "a", 1, 10), 0);
    assert_memory_equal(b.data, "123456789a", 10);
    assert_int_equal(lmq_buf_append(&b, "", 0, 10), 0);
    assert_int_equal(lmq_buf_printf(&b, 10, "%s", ""), 0);
    assert_int_equal(b.len, 10);
    lmq_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_growth_never_allocates_past_the_bound(void **state)
{
    (void)state;
    struct lmq_buf b = {0};
    assert_int_equal(lmq_buf_reserve(&b, 3, 100), 0);
    assert_int_equal(b.cap, 100); /* the first allocation (4 KiB) cut to the bound */
    assert_int_equal(lmq_buf_append(&b, "abc", 3, 100), 0);
    lmq_buf_release(&b);
    /* printf may use one byte more, for vsnprintf's NUL, and no more. */
    assert_int_equal(lmq_buf_printf(&b, 7, "%s", "1234567"), 0);
    assert_int_equal(b.len, 7);
    assert_int_equal(b.cap, 8);
    assert_memory_equal(b.data, "1234567", 7);
    lmq_buf_release(&b);
    /* Large bounds still double from 4 KiB. */
    assert_int_equal(lmq_buf_reserve(&b, 5000, 1u << 20), 0);
    assert_int_equal(b.cap, 8192);
    lmq_buf_release(&b);
}

static void test_printf_longer_than_the_spare_room_is_written_whole(void **state)
{
    (void)state;
    struct lmq_buf b = {0};
    assert_int_equal(lmq_buf_append(&b, "<", 1, 1u << 20), 0);
    size_t spare = b.cap - b.len;
    char big[10000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_true(spare < sizeof(big) - 1);
    assert_int_equal(lmq_buf_printf(&b, 1u << 20, "%s>%u", big, 42u), 0);
    assert_int_equal(b.len, 1 + 9999 + 3);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[1], 'z');
    assert_int_equal(b.data[9999], 'z');
    assert_memory_equal(b.data + 10000, ">42", 3);
    /* Exactly filling the spare room (the NUL would not fit) takes the second pass too. */
    struct lmq_buf c = {0};
    assert_int_equal(lmq_buf_reserve(&c, 8, 8), 0);
    assert_int_equal(c.cap, 8);
    assert_int_equal(lmq_buf_printf(&c, 8, "%s", "12345678"), 0);
    assert_int_equal(c.len, 8);
    assert_memory_equal(c.data, "12345678", 8);
    lmq_buf_release(&c);
    lmq_buf_release(&b);
}

static void test_printf_failure_is_einval_and_leaves_the_buffer(void **state)
{
    (void)state;
    struct lmq_buf b = {0};
    assert_int_equal(lmq_buf_append(&b, "keep", 4, 64), 0);
    /* In the C locale a wide character outside ASCII cannot be converted: vsnprintf fails. */
    const wchar_t wide[] = {(wchar_t)0x100, 0};
    assert_int_equal(lmq_buf_printf(&b, 64, "%ls", wide), LMQ_EINVAL);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "keep", 4);
    lmq_buf_release(&b);
}

static void test_consume_keeps_the_rest_in_order(void **state)
{
    (void)state;
    struct lmq_buf b = {0};
    assert_int_equal(lmq_buf_printf(&b, 64, "%s", "header:body"), 0);
    lmq_buf_consume(&b, 7);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "body", 4);
    lmq_buf_consume(&b, 4);
    assert_int_equal(b.len, 0);
    lmq_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_is_bounded_and_unchanged_on_failure),
        cmocka_unit_test(test_growth_never_allocates_past_the_bound),
        cmocka_unit_test(test_printf_longer_than_the_spare_room_is_written_whole),
        cmocka_unit_test(test_printf_failure_is_einval_and_leaves_the_buffer),
        cmocka_unit_test(test_consume_keeps_the_rest_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
