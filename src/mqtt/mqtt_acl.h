/*
 * Topic access control lists ([auth] acl_file) with mosquitto's syntax and meaning (mosquitto
 * 2.0's acl_file, see docs/PROTOCOL.md "Password file and ACL" for the few differences):
 *
 *     # comment
 *     topic read public/#              lines before the first "user" line: anonymous clients
 *     topic deny public/secret
 *     pattern readwrite users/%u/#     patterns apply to every client wherever they stand
 *     user alice                       alice's rules, up to the next "user" line
 *     topic readwrite alice/#
 *
 * "topic [access] <filter>" and "pattern [access] <filter>", access read, write, readwrite
 * (the default) or deny. The topic rules before the first "user" line form the anonymous
 * section; "user <name>" opens that user's section (sections of one name are merged). A
 * pattern substitutes %u (user name) and %c (client id), each a whole topic level; one with %u
 * never applies to an anonymous client.
 *
 * Whether who may read or write topic T (the order and the first-match rule are mosquitto's):
 *  1. who's section (the anonymous one, or the user's; a user without one has none): a deny
 *     whose filter matches T denies; else an allow with that access matching T allows;
 *  2. when the file has patterns and who's user name or client id holds '+' or '#': denied;
 *  3. the patterns: a matching deny denies; else a matching allow with that access allows;
 *  4. denied (also everything when the file has no rule at all).
 * Filters match as MQTT's: a wildcard at the first level never matches a topic starting with
 * '$'. Writing to $SYS/... (but $SYS/broker/connection/+/state) and reading or writing a topic
 * starting with "$share" are denied whatever the rules say. Not mosquitto's: an allow pattern
 * does not apply when the value it substitutes holds '/' (that would reach into other levels,
 * e.g. client id "bob/x" into clients/bob/x/#); a deny pattern does, substituting the text.
 *
 * Subscriptions are not checked against the rules (mosquitto grants every SUBSCRIBE): each
 * delivery is checked as a read of its topic. mqtt_acl_reads_all() tells when a subscription
 * can only deliver readable topics, so that those deliveries need no check.
 */
#ifndef MQTT_ACL_H
#define MQTT_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"

#define MQTT_ACL_FILE_MAX_BYTES (4u * 1024u * 1024u)
#define MQTT_ACL_RULES_MAX 100000
#define MQTT_ACL_LINE_MAX_BYTES 4096

enum mqtt_acl_access {
    MQTT_ACL_DENY = 0,
    MQTT_ACL_READ = 1,
    MQTT_ACL_WRITE = 2,
    MQTT_ACL_READWRITE = 3,
};

/* Who asks: user name (user_len 0: anonymous) and client id. */
struct mqtt_acl_client {
    const uint8_t *user;
    size_t user_len;
    const uint8_t *client_id;
    size_t client_id_len;
};

struct mqtt_acl;

/* Parses ACL text (text[len] need not be NUL). Returns 0, LMQ_EINVAL (err names the line and
 * the problem), LMQ_ELIMIT (more than MQTT_ACL_RULES_MAX rules) or LMQ_ENOMEM. */
int mqtt_acl_parse(const char *text, size_t len, struct mqtt_acl **out, char *err,
                   size_t err_len) LMQ_WUR;
/* Reads and parses the file at path: the parse's results plus LMQ_EIO/LMQ_ETOOBIG; err starts
 * with the path. */
int mqtt_acl_load(const char *path, struct mqtt_acl **out, char *err, size_t err_len) LMQ_WUR;
/* Frees acl; NULL is a no-op. */
void mqtt_acl_free(struct mqtt_acl *acl);
/* Number of topic and pattern rules. */
size_t mqtt_acl_rule_count(const struct mqtt_acl *acl);

/* True when who may publish to topic (a valid topic name): the check at the top of this file. */
bool mqtt_acl_may_publish(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                          const uint8_t *topic, size_t len);
/* True when who may receive a message on topic (a valid topic name). */
bool mqtt_acl_may_read(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                       const uint8_t *topic, size_t len);
/* True when who may read every topic that filter (a valid, non-shared filter) matches; false
 * when some topic it matches may be unreadable (it may err towards false, never towards
 * true): deliveries through a filter for which this is true need no mqtt_acl_may_read(). */
bool mqtt_acl_reads_all(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                        const uint8_t *filter, size_t len);
/* True when every topic filter matches is matched by ACL filter acl_filter (no %u/%c): filter
 * equals acl_filter or specialises it level by level ('+' covers a name or '+', a last '#'
 * covers the rest, "a/#" also covers "a"); a first-level wildcard never covers '$' names. */
bool mqtt_acl_filter_covers(const uint8_t *acl_filter, size_t acl_len, const uint8_t *filter,
                            size_t len);
/* False only when no topic can match both filters (valid, non-shared; no %u/%c). */
bool mqtt_acl_filters_overlap(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);

#endif
