/*
 * libFuzzer target for src/jobs/jobs_schedule.c (cron and @every). The input is an instant (its
 * first 6 bytes, little-endian, Unix ms, up to ~8900 years) and the schedule text (the rest).
 * Oracles:
 *   - a refused text has a reason;
 *   - an accepted one has a next tick strictly after the instant, and a next after that;
 *   - a cron tick is on a whole minute and matches every field by a reference check through
 *     gmtime_r (Vixie's day rule included); an @every tick is a multiple of its period.
 * fuzz-sources: src/jobs/jobs_schedule.c
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "jobs/jobs_schedule.h"

#include "fuzz_check.h"

static bool ref_matches(const struct jobs_schedule *s, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return false;
    bool dom = (s->doms >> tm.tm_mday) & 1, dow = (s->dows >> tm.tm_wday) & 1;
    bool day = s->dom_star || s->dow_star ? dom && dow : dom || dow;
    return ms % 60000 == 0 && ((s->minutes >> tm.tm_min) & 1) && ((s->hours >> tm.tm_hour) & 1) &&
           ((s->months >> (tm.tm_mon + 1)) & 1) && day;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    int64_t after = 0;
    for (int i = 5; i >= 0; i--)
        after = after * 256 + data[i];
    char text[JOBS_SCHEDULE_MAX_BYTES + 8];
    size_t len = size - 6 < sizeof(text) - 1 ? size - 6 : sizeof(text) - 1;
    memcpy(text, data + 6, len);
    text[len] = '\0';
    struct jobs_schedule s;
    char err[200] = "";
    if (jobs_schedule_parse(text, &s, err, sizeof(err)) != LMQ_OK) {
        CHECK(err[0] != '\0');
        return 0;
    }
    int64_t next = 0, again = 0;
    CHECK(jobs_schedule_next(&s, after, &next) == LMQ_OK);
    CHECK(next > after);
    CHECK(jobs_schedule_next(&s, next, &again) == LMQ_OK);
    CHECK(again > next);
    if (s.kind == JOBS_SCHEDULE_EVERY)
        CHECK(next % (int64_t)s.every_ms == 0 && next - after <= (int64_t)s.every_ms);
    else
        CHECK(ref_matches(&s, next) && ref_matches(&s, again));
    return 0;
}
