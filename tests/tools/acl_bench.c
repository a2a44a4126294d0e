/*
 * What one ACL read check costs (docs/SECURITY.md, "The ACL file"): a measurement, not a test,
 * so ctest doesn't run it. Run: ./build/tests/acl_bench
 *
 * For a file of N `user` sections of 10 topic rules each (2 of them denies) and 20 patterns
 * (4 denies), a user asks 1,000,000 times about a topic no rule matches, so every rule of its
 * section and every pattern is tried. Prints one line per file size; exit 1 if the file does
 * not parse or the check answers anything but "no".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/lmq.h"
#include "mqtt/mqtt_acl.h"

enum { ACL_BENCH_CALLS = 1000000 };

static int acl_bench_one(size_t users)
{
    size_t cap = users * 512 + 4096; /* 10 lines of < 48 bytes a user, then 20 patterns */
    char *text = malloc(cap);
    if (text == NULL)
        return 1;
    size_t len = 0;
    for (size_t u = 0; u < users; u++) {
        len += (size_t)snprintf(text + len, cap - len, "user u%zu\n", u);
        for (int r = 0; r < 10; r++)
            len += (size_t)snprintf(text + len, cap - len, "topic %s site/%zu/dev%d/#\n",
                                    r < 2 ? "deny" : "readwrite", u, r);
    }
    for (int r = 0; r < 20; r++)
        len += (size_t)snprintf(text + len, cap - len, "pattern %s p%d/%%u/+/%%c/#\n",
                                r < 4 ? "deny" : "read", r);
    struct mqtt_acl *acl = NULL;
    char err[256] = "";
    int rc = mqtt_acl_parse(text, len, &acl, err, sizeof(err));
    free(text);
    if (rc != LMQ_OK) {
        fprintf(stderr, "acl_bench: parse failed: %s\n", err);
        return 1;
    }
    char user[32];
    snprintf(user, sizeof(user), "u%zu", users / 2);
    const char *client_id = "client-17";
    struct mqtt_acl_client who = {(const uint8_t *)user, strlen(user), (const uint8_t *)client_id,
                                  strlen(client_id)};
    const char *topic = "site/unrelated/dev3/temperature";
    struct timespec t0, t1;
    size_t allowed = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < ACL_BENCH_CALLS; i++)
        allowed += mqtt_acl_may_read(acl, &who, (const uint8_t *)topic, strlen(topic));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("ACL of %zu rules (%zu sections): %d read checks in %.0f ms, %.0f ns each\n",
           mqtt_acl_rule_count(acl), users, ACL_BENCH_CALLS, ns / 1e6, ns / ACL_BENCH_CALLS);
    mqtt_acl_free(acl);
    if (allowed != 0) {
        fprintf(stderr, "acl_bench: the check allowed a topic no rule grants\n");
        return 1;
    }
    return 0;
}

int main(void)
{
    int rc = acl_bench_one(10);
    if (rc == 0)
        rc = acl_bench_one(9000); /* 90,020 rules: near MQTT_ACL_RULES_MAX */
    return rc;
}
