/*
 * Topic aliases a sender assigns towards its peer (MQTT 5 §3.3.2.3.4): the table of one network
 * connection and the policy that chooses which topics get an alias.
 *
 * Policy (docs/PROTOCOL.md, "Topic aliases towards clients"):
 * - While the table has a free alias, a topic gets one on its first send within the
 *   connection (as clients such as the Paho interoperability suite expect).
 * - With the table full, the least recently used alias is reassigned to a topic only when the
 *   topic was sent more often than that alias was used (a frequency sketch counts the topics
 *   without an alias; both counts halve every 8 x sketch-size sends, so the counts follow what
 *   is sent now), and only while the bytes the aliases saved on this connection pay for the
 *   reassignment.
 * So aliases never cost a connection more than MQTT_ALIAS_OUT_ASSIGN_COST_MAX bytes per alias
 * of its table, whatever it is sent: with a different topic every time, only the first ones
 * (one per alias) pay the Topic Alias property, once.
 *
 * Memory: about 40 bytes per alias plus the topic copies (topics longer than
 * MQTT_ALIAS_OUT_TOPIC_MAX_BYTES are always sent in full), and a sketch of 16 bytes per alias
 * (256..65536 bytes). Cost per PUBLISH: one hash of the topic and a bounded lookup.
 */
#ifndef MQTT_ALIAS_OUT_H
#define MQTT_ALIAS_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/lmq.h"
#include "mqtt/mqtt_codec.h"

/* Longest topic that gets an alias: bounds the table's topic copies. */
#define MQTT_ALIAS_OUT_TOPIC_MAX_BYTES 1024u
/* Shortest: an alias-only PUBLISH of a shorter topic may be no smaller (the Topic Alias
 * property takes 3 bytes, and may lengthen the property length by one). */
#define MQTT_ALIAS_OUT_TOPIC_MIN_BYTES 5u
/* Most a PUBLISH grows by when it assigns an alias: the property (3 bytes) and one more byte
 * in each of the property length and the remaining length. */
#define MQTT_ALIAS_OUT_ASSIGN_COST_MAX 5u

struct mqtt_alias_out;

/* What a table did, for metrics and tests. */
struct mqtt_alias_out_stats {
    uint64_t assigned;   /* PUBLISHes that gave a free alias a topic */
    uint64_t reassigned; /* PUBLISHes that moved an alias to another topic */
    uint64_t used;       /* alias-only PUBLISHes */
    int64_t saved_bytes; /* bytes saved minus bytes spent, as sent */
};

/* Creates an empty table for aliases 1..alias_max (>= 1). Returns 0 or LMQ_ENOMEM. */
int mqtt_alias_out_create(uint16_t alias_max, struct mqtt_alias_out **out) LMQ_WUR;
/* Frees the table and its topic copies. NULL is a no-op. */
void mqtt_alias_out_destroy(struct mqtt_alias_out *t);

/*
 * Applies the table to pkt, a v5 PUBLISH with its full topic and no Topic Alias, whose encoded
 * size is *size_bytes, just before it is sent: when its topic has an alias the PUBLISH becomes
 * alias-only (empty topic + Topic Alias); when the policy gives the topic an alias, the Topic
 * Alias is added (topic kept) if the packet still fits max_packet_bytes. The table is updated
 * as if the packet is sent as rewritten (the caller must send it, in order, on the connection
 * the table belongs to) and *size_bytes is its new size. Anything else leaves pkt alone.
 * pkt's topic keeps pointing at the caller's bytes; the table keeps copies.
 */
void mqtt_alias_out_apply(struct mqtt_alias_out *t, struct mqtt_packet *pkt,
                          uint32_t max_packet_bytes, size_t *size_bytes);

/* Copies the table's counters into out. */
void mqtt_alias_out_get_stats(const struct mqtt_alias_out *t, struct mqtt_alias_out_stats *out);

#endif
