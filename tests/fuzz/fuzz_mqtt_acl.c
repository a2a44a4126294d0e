/*
 * libFuzzer target for src/mqtt/mqtt_acl.c. The input is ACL file text. Oracles:
 *   - parsing is deterministic (same result and rule count twice);
 *   - on a parsed ACL, publish and read checks for a few clients terminate without error, and
 *     when every topic of a filter is readable by reads_all, the probe topics it matches are;
 *   - when the input is one valid, non-shared filter F: F covers itself, "#" covers F unless F
 *     starts with '$', and F covers nothing longer than a topic it cannot match; F overlaps
 *     itself and "#" (unless F starts with '$').
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/mqtt_acl.h"
#include "mqtt/mqtt_topic.h"

#include "fuzz_check.h"

static const char *const probes[] = {"a",      "a/b", "users/alice/x",    "#", "+/+",
                                     "$SYS/x", "",    "clients/c1/status"};

static void probe(const struct mqtt_acl *acl)
{
    static const struct mqtt_acl_client who[] = {
        {(const uint8_t *)"alice", 5, (const uint8_t *)"c1", 2},
        {(const uint8_t *)"a/b", 3, (const uint8_t *)"+", 1},
        {(const uint8_t *)"", 0, (const uint8_t *)"", 0},
    };
    for (size_t w = 0; w < sizeof(who) / sizeof(who[0]); w++) {
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
            const uint8_t *p = (const uint8_t *)probes[i];
            size_t len = strlen(probes[i]);
            if (mqtt_topic_name_valid(p, len)) {
                (void)mqtt_acl_may_publish(acl, &who[w], p, len);
                (void)mqtt_acl_may_read(acl, &who[w], p, len);
            }
            if (!mqtt_topic_filter_valid(p, len) || !mqtt_acl_reads_all(acl, &who[w], p, len))
                continue;
            for (size_t j = 0; j < sizeof(probes) / sizeof(probes[0]); j++) {
                const uint8_t *t = (const uint8_t *)probes[j];
                size_t t_len = strlen(probes[j]);
                if (mqtt_topic_name_valid(t, t_len) && mqtt_topic_matches(p, len, t, t_len))
                    CHECK(mqtt_acl_may_read(acl, &who[w], t, t_len));
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mqtt_acl *a = NULL, *b = NULL;
    char err[256];
    int rc1 = mqtt_acl_parse((const char *)data, size, &a, err, sizeof(err));
    int rc2 = mqtt_acl_parse((const char *)data, size, &b, err, sizeof(err));
    CHECK(rc1 == rc2);
    CHECK((rc1 == 0) == (a != NULL) && (rc2 == 0) == (b != NULL));
    if (a != NULL) {
        CHECK(mqtt_acl_rule_count(a) == mqtt_acl_rule_count(b));
        probe(a);
    }
    mqtt_acl_free(a);
    mqtt_acl_free(b);
    const uint8_t *group = NULL, *rest = NULL;
    size_t group_len = 0, rest_len = 0;
    if (size > 0 && mqtt_topic_filter_valid(data, size) &&
        !mqtt_topic_shared_split(data, size, &group, &group_len, &rest, &rest_len)) {
        CHECK(mqtt_acl_filter_covers(data, size, data, size));
        CHECK(mqtt_acl_filter_covers((const uint8_t *)"#", 1, data, size) == (data[0] != '$'));
        CHECK(mqtt_acl_filters_overlap(data, size, data, size));
        CHECK(mqtt_acl_filters_overlap((const uint8_t *)"#", 1, data, size) == (data[0] != '$'));
        if (mqtt_topic_name_valid(data, size))
            CHECK(mqtt_acl_filter_covers(data, size, data, size) ==
                  mqtt_topic_matches(data, size, data, size));
    }
    return 0;
}
