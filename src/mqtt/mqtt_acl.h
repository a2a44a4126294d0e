/*
 * Topic access control lists ([auth] acl_file), in a mosquitto-like syntax:
 *
 *     # comment
 *     topic read public/#              lines before any "user" apply to every authenticated
 *     pattern readwrite users/%u/#     client ("%u" user name, "%c" client id)
 *     user alice                       starts alice's section (up to the next "user")
 *     topic readwrite alice/#
 *
 * "topic <access> <filter>" and "pattern <access> <filter>" with access read, write or
 * readwrite ("topic <filter>" alone means readwrite). In a pattern, %u and %c must each be a
 * whole topic level; a pattern does not apply to a client whose user name (or client id) is
 * empty or holds '/', '+' or '#'. A pattern inside a user section applies to that user only.
 *
 * A publish to topic T is allowed when a write rule's filter matches T. A subscription to
 * filter F is allowed when a read rule's filter A covers F: every level of F equals A's, or A
 * has '+' where F has a name or '+', or A ends in '#' (which also covers F ending at that
 * level, as "a/#" matches "a"). So F must equal A or be a strict specialisation of it;
 * wildcards at A's first level never cover names starting with '$'.
 * Everything no rule allows is denied; a client without a user name matches no rule.
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
    MQTT_ACL_READ = 1,
    MQTT_ACL_WRITE = 2,
    MQTT_ACL_READWRITE = 3,
};

/* Who asks: user name ("" for none) and client id. */
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

/* True when a write rule for who matches topic (a valid topic name). */
bool mqtt_acl_may_publish(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                          const uint8_t *topic, size_t len);
/* True when a read rule for who covers filter (a valid, non-shared topic filter). */
bool mqtt_acl_may_subscribe(const struct mqtt_acl *acl, const struct mqtt_acl_client *who,
                            const uint8_t *filter, size_t len);
/* True when ACL filter acl_filter (no %u/%c) covers filter (see the top of this file). */
bool mqtt_acl_filter_covers(const uint8_t *acl_filter, size_t acl_len, const uint8_t *filter,
                            size_t len);

#endif
