/*
 * Job schedules (src/jobs/jobs_schedule.c): parsing cron and @every, and the next tick in UTC at
 * the edges (month ends, leap years, the day-of-month / day-of-week rule of Vixie cron). The
 * differential against npm cron-parser is tests/integration/test_jobs_cron.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "jobs/jobs_schedule.h"

static int64_t utc_ms(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

/* The first tick of text strictly after after_ms. */
static int64_t next_of(const char *text, int64_t after_ms)
{
    struct jobs_schedule s;
    char err[160] = "";
    int rc = jobs_schedule_parse(text, &s, err, sizeof(err));
    if (rc != LMQ_OK)
        fail_msg("%s: %s", text, err);
    int64_t next = 0;
    assert_int_equal(jobs_schedule_next(&s, after_ms, &next), LMQ_OK);
    assert_true(next > after_ms);
    return next;
}

static void refused(const char *text, const char *why_part)
{
    struct jobs_schedule s;
    char err[160] = "";
    assert_int_equal(jobs_schedule_parse(text, &s, err, sizeof(err)), LMQ_EINVAL);
    if (strstr(err, why_part) == NULL)
        fail_msg("\"%s\": error \"%s\" does not say \"%s\"", text, err, why_part);
}

static void test_every_ticks_on_multiples_of_its_period_since_the_epoch(void **state)
{
    (void)state;
    assert_int_equal(next_of("@every 1m", 0), 60000);
    assert_int_equal(next_of("@every 1m", 59999), 60000);
    assert_int_equal(next_of("@every 1m", 60000), 120000); /* strictly after */
    assert_int_equal(next_of("@every 90s", 100000), 180000);
    assert_int_equal(next_of("@every 2h", utc_ms(2026, 1, 1, 1, 0)), utc_ms(2026, 1, 1, 2, 0));
    assert_int_equal(next_of("@every 1s", 1500), 2000);
}

static void test_shortcuts_are_the_cron_they_name(void **state)
{
    (void)state;
    int64_t t = utc_ms(2026, 12, 31, 23, 30);
    assert_int_equal(next_of("@hourly", t), utc_ms(2027, 1, 1, 0, 0));
    assert_int_equal(next_of("@daily", utc_ms(2026, 6, 1, 0, 0)), utc_ms(2026, 6, 2, 0, 0));
    assert_int_equal(next_of("@midnight", utc_ms(2026, 6, 1, 0, 0)), utc_ms(2026, 6, 2, 0, 0));
}

static void test_cron_skips_months_without_the_day(void **state)
{
    (void)state;
    /* April has 30 days: the 31st is in May. */
    assert_int_equal(next_of("0 0 31 * *", utc_ms(2026, 4, 1, 0, 0)), utc_ms(2026, 5, 31, 0, 0));
    assert_int_equal(next_of("59 23 31 12 *", utc_ms(2026, 12, 31, 23, 59)),
                     utc_ms(2027, 12, 31, 23, 59));
    assert_int_equal(next_of("0 12 30 * *", utc_ms(2027, 1, 30, 12, 0)),
                     utc_ms(2027, 3, 30, 12, 0));
}

static void test_cron_feb_29_waits_for_a_leap_year_and_2100_is_not_one(void **state)
{
    (void)state;
    assert_int_equal(next_of("0 0 29 2 *", utc_ms(2026, 3, 1, 0, 0)), utc_ms(2028, 2, 29, 0, 0));
    assert_int_equal(next_of("0 0 29 2 *", utc_ms(2024, 2, 28, 23, 59)), utc_ms(2024, 2, 29, 0, 0));
    assert_int_equal(next_of("0 0 29 2 *", utc_ms(2096, 3, 1, 0, 0)), utc_ms(2104, 2, 29, 0, 0));
    assert_int_equal(next_of("0 0 * 3 *", utc_ms(2100, 2, 28, 12, 0)), utc_ms(2100, 3, 1, 0, 0));
    /* Feb 29 AND a Sunday, Wednesday or Saturday ('*' day-of-week): after 2296-02-29 (a
     * Saturday) the next is 2308-02-29 (2300 is not leap, 2304's is a Monday), 12 years on.
     * Found by the fuzz target. */
    assert_int_equal(next_of("0 0 29 2 */3", utc_ms(2296, 3, 1, 0, 0)), utc_ms(2308, 2, 29, 0, 0));
}

static void test_cron_day_of_month_or_day_of_week_when_both_are_restricted(void **state)
{
    (void)state;
    int64_t mon_dec_7 = utc_ms(2026, 12, 7, 0, 0); /* a Monday */
    /* The 13th or a Friday: Friday the 11th comes first. */
    assert_int_equal(next_of("0 0 13 * fri", mon_dec_7), utc_ms(2026, 12, 11, 0, 0));
    assert_int_equal(next_of("0 0 13 * *", mon_dec_7), utc_ms(2026, 12, 13, 0, 0));
    assert_int_equal(next_of("0 0 * * 5", mon_dec_7), utc_ms(2026, 12, 11, 0, 0));
    /* A field starting with '*' is unrestricted (Vixie): then both must match, so days 1, 11,
     * 21 or 31 AND a Monday: the 21st (the 7th is a Monday but not in the set). */
    assert_int_equal(next_of("0 0 */10 * mon", utc_ms(2026, 12, 6, 0, 0)),
                     utc_ms(2026, 12, 21, 0, 0));
    /* ... and a day-of-week starting with '*' with a restricted day-of-month: both again. */
    assert_int_equal(next_of("0 0 1 * */7", utc_ms(2026, 12, 6, 0, 0)), utc_ms(2027, 8, 1, 0, 0));
}

static void test_cron_names_ranges_steps_and_sunday_as_7(void **state)
{
    (void)state;
    int64_t sat = utc_ms(2026, 12, 5, 10, 0); /* a Saturday */
    assert_int_equal(next_of("0 12 * * 7", sat), utc_ms(2026, 12, 6, 12, 0));
    assert_int_equal(next_of("0 12 * * SUN", sat), utc_ms(2026, 12, 6, 12, 0));
    assert_int_equal(next_of("30 4 * * mon-fri", sat), utc_ms(2026, 12, 7, 4, 30));
    assert_int_equal(next_of("0 0 1 jan,jul *", sat), utc_ms(2027, 1, 1, 0, 0));
    assert_int_equal(next_of("5-20/5 * * * *", utc_ms(2026, 1, 1, 0, 15)),
                     utc_ms(2026, 1, 1, 0, 20));
    assert_int_equal(next_of("5-20/5 * * * *", utc_ms(2026, 1, 1, 0, 20)),
                     utc_ms(2026, 1, 1, 1, 5));
    assert_int_equal(next_of("50/5 * * * *", utc_ms(2026, 1, 1, 0, 55)), utc_ms(2026, 1, 1, 1, 50));
    assert_int_equal(next_of("0 */6 * * *", utc_ms(2026, 1, 1, 18, 0)), utc_ms(2026, 1, 2, 0, 0));
    assert_int_equal(next_of("0 0 * * fri-fri/2", sat), utc_ms(2026, 12, 11, 0, 0));
}

static void test_bad_schedules_are_refused_with_a_reason(void **state)
{
    (void)state;
    refused("61 * * * *", "minute: 61 is out of range 0-59");
    refused("* 24 * * *", "hour: 24");
    refused("* * 0 * *", "day-of-month: 0");
    refused("* * * 13 *", "month: 13");
    refused("* * * * 8", "day-of-week: 8");
    refused("* * *", "expected 5 cron fields");
    refused("* * * * * *", "expected 5 cron fields");
    refused("5-1 * * * *", "runs backwards");
    refused("*/0 * * * *", "step 0");
    refused("*/ * * * *", "expected a step");
    refused("* * * foo *", "unknown value \"foo\"");
    refused("1,,2 * * * *", "expected a value");
    refused("0 0 30 2 *", "never fires");
    refused("0 0 31 4,6,9,11 *", "never fires");
    refused("@every 0s", "@every");
    refused("@every 8d", "@every");
    refused("@every 169h", "@every");
    refused("@every 10", "@every");
    refused("@weekly", "unknown schedule");
    refused("", "expected a schedule");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_ticks_on_multiples_of_its_period_since_the_epoch),
        cmocka_unit_test(test_shortcuts_are_the_cron_they_name),
        cmocka_unit_test(test_cron_skips_months_without_the_day),
        cmocka_unit_test(test_cron_feb_29_waits_for_a_leap_year_and_2100_is_not_one),
        cmocka_unit_test(test_cron_day_of_month_or_day_of_week_when_both_are_restricted),
        cmocka_unit_test(test_cron_names_ranges_steps_and_sunday_as_7),
        cmocka_unit_test(test_bad_schedules_are_refused_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
