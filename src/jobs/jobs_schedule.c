/*
 * Cron and @every schedules (jobs_schedule.h). Times are UTC, computed with the proleptic
 * Gregorian calendar on days since the epoch (no time zone, so no DST: every day has 1440
 * minutes).
 */
#include "jobs/jobs_schedule.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MS_PER_MIN 60000LL
#define MIN_PER_DAY 1440LL
/* Items in one cron field list ("1,2,3,..."): more than any field has values. */
#define JOBS_CRON_ITEMS_MAX 64

struct cron_field {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] is value names_base + i; NULL: numbers only */
    int names_base;
    int names_count;
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const struct cron_field cron_fields[5] = {
    {"minute", 0, 59, NULL, 0, 0},          {"hour", 0, 23, NULL, 0, 0},
    {"day-of-month", 1, 31, NULL, 0, 0},    {"month", 1, 12, month_names, 1, 12},
    {"day-of-week", 0, 7, dow_names, 0, 7},
};

/* One value (number or name) from *p up to a '-', '/', ',' or the end. */
static int cron_value(const struct cron_field *f, const char **p, int *out, char *err,
                      size_t err_len)
{
    const char *s = *p;
    size_t n = strcspn(s, "-/,");
    if (n == 0 || n > 3) {
        lmq_errf(err, err_len, "%s: expected a value at \"%s\"", f->name, s);
        return LMQ_EINVAL;
    }
    int v = 0;
    if (s[0] >= '0' && s[0] <= '9') {
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') {
                lmq_errf(err, err_len, "%s: \"%.*s\" is not a number", f->name, (int)n, s);
                return LMQ_EINVAL;
            }
            v = v * 10 + (s[i] - '0');
        }
    } else {
        int found = -1;
        for (int i = 0; n == 3 && i < f->names_count; i++) {
            if (strncasecmp(s, f->names[i], 3) == 0)
                found = f->names_base + i;
        }
        if (found < 0) {
            lmq_errf(err, err_len, "%s: unknown value \"%.*s\"", f->name, (int)n, s);
            return LMQ_EINVAL;
        }
        v = found;
    }
    if (v < f->min || v > f->max) {
        lmq_errf(err, err_len, "%s: %d is out of range %d-%d", f->name, v, f->min, f->max);
        return LMQ_EINVAL;
    }
    *out = v;
    *p = s + n;
    return LMQ_OK;
}

/* One list item: "*", "a", "a-b", each optionally "/step"; sets its bits in *bits. */
static int cron_item(const struct cron_field *f, const char *s, uint64_t *bits, char *err,
                     size_t err_len)
{
    int lo = f->min, hi = f->max, step = 1;
    const char *p = s;
    bool star = *p == '*', range = false;
    if (star) {
        p++;
        if (f->max == 7) /* day-of-week: 7 is Sunday again, "*" is 0-6 */
            hi = 6;
    } else {
        if (cron_value(f, &p, &lo, err, err_len) != LMQ_OK)
            return LMQ_EINVAL;
        hi = lo;
        if (*p == '-') {
            p++;
            range = true;
            if (cron_value(f, &p, &hi, err, err_len) != LMQ_OK)
                return LMQ_EINVAL;
            if (hi < lo) {
                lmq_errf(err, err_len, "%s: range %d-%d runs backwards", f->name, lo, hi);
                return LMQ_EINVAL;
            }
        }
    }
    if (*p == '/') {
        p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 2 || p[n] != '\0') {
            lmq_errf(err, err_len, "%s: expected a step of 1..99 after '/' in \"%s\"", f->name, s);
            return LMQ_EINVAL;
        }
        step = 0;
        for (size_t i = 0; i < n; i++)
            step = step * 10 + (p[i] - '0');
        if (step == 0) {
            lmq_errf(err, err_len, "%s: step 0 in \"%s\"", f->name, s);
            return LMQ_EINVAL;
        }
        if (!star && !range) /* "a/n": from a to the field's end (day-of-week: 7, Sunday) */
            hi = f->max;
        p += n;
    }
    if (*p != '\0') {
        lmq_errf(err, err_len, "%s: unexpected \"%s\" in \"%s\"", f->name, p, s);
        return LMQ_EINVAL;
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ULL << (f->max == 7 && v == 7 ? 0 : v);
    return LMQ_OK;
}

/* A comma list of items into *bits. */
static int cron_list(const struct cron_field *f, const char *text, uint64_t *bits, char *err,
                     size_t err_len)
{
    char buf[JOBS_SCHEDULE_MAX_BYTES];
    size_t len = strlen(text);
    LMQ_ASSERT(len < sizeof(buf));
    memcpy(buf, text, len + 1);
    *bits = 0;
    char *item = buf;
    for (int i = 0; i < JOBS_CRON_ITEMS_MAX; i++) {
        char *comma = strchr(item, ',');
        if (comma != NULL)
            *comma = '\0';
        if (cron_item(f, item, bits, err, err_len) != LMQ_OK)
            return LMQ_EINVAL;
        if (comma == NULL)
            return LMQ_OK;
        item = comma + 1;
    }
    lmq_errf(err, err_len, "%s: more than %d items", f->name, JOBS_CRON_ITEMS_MAX);
    return LMQ_EINVAL;
}

static int jobs_every_parse(const char *arg, struct jobs_schedule *out, char *err, size_t err_len)
{
    size_t n = strspn(arg, "0123456789");
    uint64_t v = 0, unit_ms = 0;
    for (size_t i = 0; i < n && i < 7; i++)
        v = v * 10 + (uint64_t)(arg[i] - '0');
    if (arg[n] == 's')
        unit_ms = 1000;
    else if (arg[n] == 'm')
        unit_ms = MS_PER_MIN;
    else if (arg[n] == 'h')
        unit_ms = 60 * MS_PER_MIN;
    if (n == 0 || n > 6 || unit_ms == 0 || arg[n + 1] != '\0' || v == 0 ||
        v * unit_ms > JOBS_EVERY_MAX_MS) {
        lmq_errf(err, err_len, "@every: expected <n>s, <n>m or <n>h of 1s..168h, got \"%s\"", arg);
        return LMQ_EINVAL;
    }
    out->kind = JOBS_SCHEDULE_EVERY;
    out->every_ms = v * unit_ms;
    return LMQ_OK;
}

int jobs_schedule_parse(const char *text, struct jobs_schedule *out, char *err, size_t err_len)
{
    LMQ_ASSERT(text != NULL && out != NULL && err != NULL);
    memset(out, 0, sizeof(*out));
    size_t len = strlen(text);
    if (len == 0 || len >= JOBS_SCHEDULE_MAX_BYTES) {
        lmq_errf(err, err_len, "expected a schedule of 1..%d bytes", JOBS_SCHEDULE_MAX_BYTES - 1);
        return LMQ_EINVAL;
    }
    if (strncmp(text, "@every ", 7) == 0)
        return jobs_every_parse(text + 7, out, err, err_len);
    if (strcmp(text, "@hourly") == 0)
        text = "0 * * * *";
    else if (strcmp(text, "@daily") == 0 || strcmp(text, "@midnight") == 0)
        text = "0 0 * * *";
    else if (text[0] == '@') {
        lmq_errf(err, err_len,
                 "unknown schedule \"%s\" (expected a cron expression, @every "
                 "<n>s|m|h, @hourly or @daily)",
                 text);
        return LMQ_EINVAL;
    }
    char buf[JOBS_SCHEDULE_MAX_BYTES];
    memcpy(buf, text, strlen(text) + 1);
    char *fields[5];
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
        if (count == 5) {
            count++;
            break;
        }
        fields[count++] = tok;
    }
    if (count != 5) {
        lmq_errf(err, err_len,
                 "expected 5 cron fields (minute hour day-of-month month "
                 "day-of-week), got \"%s\"",
                 text);
        return LMQ_EINVAL;
    }
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        if (cron_list(&cron_fields[i], fields[i], &bits[i], err, err_len) != LMQ_OK)
            return LMQ_EINVAL;
    }
    out->kind = JOBS_SCHEDULE_CRON;
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->doms = (uint32_t)bits[2];
    out->months = (uint32_t)bits[3];
    out->dows = (uint32_t)bits[4];
    out->dom_star = fields[2][0] == '*';
    out->dow_star = fields[4][0] == '*';
    int64_t next = 0;
    if (jobs_schedule_next(out, 0, &next) != LMQ_OK) {
        lmq_errf(err, err_len, "\"%s\" never fires", text);
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}

/* Days since 1970-01-01 to year, month (1..12), day (1..31); H. Hinnant's civil_from_days. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool cron_day_matches(const struct jobs_schedule *s, unsigned dom, unsigned dow)
{
    bool dom_ok = (s->doms >> dom) & 1, dow_ok = (s->dows >> dow) & 1;
    /* Vixie cron: both restricted -> either; otherwise both (the '*' one matches anyway). */
    if (s->dom_star || s->dow_star)
        return dom_ok && dow_ok;
    return dom_ok || dow_ok;
}

int jobs_schedule_next(const struct jobs_schedule *s, int64_t after_ms, int64_t *next_ms)
{
    LMQ_ASSERT(s != NULL && next_ms != NULL && after_ms >= 0);
    LMQ_ASSERT(s->kind == JOBS_SCHEDULE_CRON || s->kind == JOBS_SCHEDULE_EVERY);
    if (s->kind == JOBS_SCHEDULE_EVERY) {
        LMQ_ASSERT(s->every_ms > 0);
        *next_ms = (after_ms / (int64_t)s->every_ms + 1) * (int64_t)s->every_ms;
        return LMQ_OK;
    }
    int64_t t = after_ms / MS_PER_MIN + 1; /* minutes since the epoch: strictly after */
    int64_t last_day = t / MIN_PER_DAY + JOBS_CRON_SEARCH_DAYS;
    /* Each pass moves to the next month, day, hour or minute: bounded by the search span. */
    for (int64_t guard = 0; guard < (int64_t)JOBS_CRON_SEARCH_DAYS * (12 + 24 + 60); guard++) {
        int64_t day = t / MIN_PER_DAY, mod = t % MIN_PER_DAY;
        if (day > last_day)
            return LMQ_ENOTFOUND;
        int64_t y;
        unsigned m, d;
        civil_from_days(day, &y, &m, &d);
        unsigned dow = (unsigned)((day + 4) % 7); /* 1970-01-01 was a Thursday */
        unsigned hour = (unsigned)(mod / 60), minute = (unsigned)(mod % 60);
        if (!((s->months >> m) & 1)) {
            t = (day - d + 1 + 31) * MIN_PER_DAY; /* into next month, then back to its 1st */
            int64_t y2;
            unsigned m2, d2;
            civil_from_days(t / MIN_PER_DAY, &y2, &m2, &d2);
            t -= (int64_t)(d2 - 1) * MIN_PER_DAY;
        } else if (!cron_day_matches(s, d, dow)) {
            t = (day + 1) * MIN_PER_DAY;
        } else if (!((s->hours >> hour) & 1)) {
            t = day * MIN_PER_DAY + (int64_t)(hour + 1) * 60;
        } else if (!((s->minutes >> minute) & 1)) {
            t++;
        } else {
            *next_ms = t * MS_PER_MIN;
            LMQ_ASSERT(*next_ms > after_ms);
            return LMQ_OK;
        }
    }
    return LMQ_ENOTFOUND;
}
