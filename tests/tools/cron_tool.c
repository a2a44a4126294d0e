/*
 * The cron differential test's C side (test_jobs_cron.py): one line in, "EXPR<TAB>AFTER_MS<TAB>N",
 * one line out: the next N ticks (Unix ms) of jobs_schedule_next, space-separated, or
 * "error: reason" when the expression is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_schedule.h"

int main(void)
{
    char line[512];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *tab1 = strchr(line, '\t');
        char *tab2 = tab1 != NULL ? strchr(tab1 + 1, '\t') : NULL;
        if (tab2 == NULL) {
            printf("error: bad input line\n");
            continue;
        }
        *tab1 = *tab2 = '\0';
        long long after = strtoll(tab1 + 1, NULL, 10);
        int n = atoi(tab2 + 1);
        struct jobs_schedule s;
        char err[200];
        if (jobs_schedule_parse(line, &s, err, sizeof(err)) != LMQ_OK) {
            printf("error: %s\n", err);
            continue;
        }
        int64_t t = after;
        for (int i = 0; i < n && i < 1000; i++) {
            int64_t next = 0;
            if (jobs_schedule_next(&s, t, &next) != LMQ_OK) {
                printf("%snone", i > 0 ? " " : "");
                break;
            }
            printf("%s%lld", i > 0 ? " " : "", (long long)next);
            t = next;
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
