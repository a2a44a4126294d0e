/* MQTT strings and topics: UTF-8 rules, topic name/filter validation, matching. */
#ifndef MQTT_TOPIC_H
#define MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * True when s[0..len) is well-formed UTF-8 as MQTT requires: no overlong
 * forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no U+0000.
 */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);

/* True for a valid topic name: 1..65535 bytes, no '+' or '#'. */
bool mqtt_topic_name_valid(const uint8_t *s, size_t len);

/*
 * True for a valid topic filter: 1..65535 bytes, '+' only as a whole level,
 * '#' only as the whole last level. A shared filter ($share/group/filter)
 * is valid when group is non-empty with no '+', '#' or '/' and filter is valid.
 */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len);

/*
 * If filter is "$share/<group>/<rest>", sets *group and *rest and returns
 * true; otherwise returns false and leaves them alone. Does not validate.
 */
bool mqtt_topic_shared_split(const uint8_t *filter, size_t len, const uint8_t **group,
                             size_t *group_len, const uint8_t **rest, size_t *rest_len);

/*
 * True when the (non-shared) filter matches the topic name. Wildcards at the
 * first level do not match topics that start with '$'. Reference
 * implementation for tests and for retained-message lookup.
 */
bool mqtt_topic_matches(const uint8_t *filter, size_t filter_len, const uint8_t *topic,
                        size_t topic_len);

#endif
