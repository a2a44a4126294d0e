/*
 * Job schedules (docs/ARCHITECTURE.md "Scheduled jobs"): 5-field cron expressions and @every,
 * in UTC. Pure functions, no broker: the configuration parser checks [jobs] lines with them.
 *
 * Cron: "minute hour day-of-month month day-of-week", each field `*`, a number, a range `a-b`,
 * a step `*` `/n` or `a-b/n` or `a/n` (a to the field's end), or a comma list of those; months
 * jan..dec and days sun..sat by name (case-insensitive), day-of-week 7 is Sunday. Day-of-month
 * and day-of-week follow Vixie cron: when both are restricted (neither starts with `*`) a day
 * matches either; otherwise both must match. @hourly = "0 * * * *", @daily = @midnight =
 * "0 0 * * *". @every <n>s|m|h: ticks at the multiples of the period since the Unix epoch.
 * Written by hand (no third-party parser); tests/integration/test_jobs_cron.py checks it against
 * npm cron-parser.
 */
#ifndef JOBS_SCHEDULE_H
#define JOBS_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

/* Longest schedule text accepted (config line value). */
#define JOBS_SCHEDULE_MAX_BYTES 128
/* Longest @every period: one week. */
#define JOBS_EVERY_MAX_MS (7ULL * 24 * 3600 * 1000)
/* How far ahead a cron tick is searched: one Gregorian cycle of 400 years, after which dates and
 * weekdays repeat (146097 days is a multiple of 7), so an expression with no tick in it has none
 * ever and is refused. Feb 29 on a Sunday, Wednesday or Saturday (day-of-week "* /3" without the
 * blank) may wait 12 years and more: the fuzz target found it. A rare match costs one pass per
 * day skipped. */
#define JOBS_CRON_SEARCH_DAYS (146097 + 1)

enum jobs_schedule_kind {
    JOBS_SCHEDULE_CRON = 1,
    JOBS_SCHEDULE_EVERY = 2,
};

struct jobs_schedule {
    enum jobs_schedule_kind kind;
    uint64_t every_ms; /* JOBS_SCHEDULE_EVERY */
    uint64_t minutes;  /* bit m: minute m (0..59) */
    uint32_t hours;    /* bit h (0..23) */
    uint32_t doms;     /* bit d (1..31) */
    uint32_t months;   /* bit m (1..12) */
    uint32_t dows;     /* bit d (0..6, 0 = Sunday) */
    bool dom_star;     /* the day-of-month field starts with '*' */
    bool dow_star;     /* the day-of-week field starts with '*' */
};

/* Parses text into *out: 0, or LMQ_EINVAL with a one-line reason in err (no file or key). A cron
 * expression that can never fire (e.g. "0 0 30 2 *") is refused. */
int jobs_schedule_parse(const char *text, struct jobs_schedule *out, char *err,
                        size_t err_len) LMQ_WUR;
/* The first tick strictly after after_ms (Unix ms, UTC) into *next_ms: 0, or LMQ_ENOTFOUND when
 * none within JOBS_CRON_SEARCH_DAYS (impossible for a schedule jobs_schedule_parse accepted). */
int jobs_schedule_next(const struct jobs_schedule *s, int64_t after_ms, int64_t *next_ms) LMQ_WUR;

#endif
