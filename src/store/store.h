/*
 * The storage seam. The broker describes every change that must survive a
 * crash as a store_record, adds it to the current batch with store_write(),
 * and asks for the batch to be made durable with store_commit(). The commit
 * callback runs on the broker's loop thread after the batch is durable (or
 * failed); only then does the broker send the acknowledgements that depend
 * on it. One commit covers every record written since the previous one.
 *
 * Back ends: "memory" (this file's first implementation: nothing survives a
 * restart; commits complete on the next loop turn so the ack ordering is the
 * same as with a real disk). The SQLite back end plugs in behind the same
 * functions.
 */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct store;

enum store_record_type {
    STORE_SESSION_PUT = 1,     /* client_id, expiry_s: a persistent session exists */
    STORE_SESSION_DELETE,      /* client_id: session and everything it owns is gone */
    STORE_SUBSCRIPTION_PUT,    /* client_id, topic (filter), options, sub_id */
    STORE_SUBSCRIPTION_DELETE, /* client_id, topic (filter) */
    STORE_MESSAGE_PUT,         /* msg_id, topic, payload, qos, props: stored once */
    STORE_QUEUE_PUT,           /* client_id, msg_id, qos: queued for a session */
    STORE_QUEUE_DELETE,        /* client_id, msg_id: delivered and acknowledged */
    STORE_INBOUND_QOS2_PUT,    /* client_id, packet_id: PUBREC sent, awaiting PUBREL */
    STORE_INBOUND_QOS2_DELETE, /* client_id, packet_id: PUBCOMP sent */
    STORE_RETAINED_PUT,        /* topic, msg_id */
    STORE_RETAINED_DELETE,     /* topic */
};

struct store_record {
    enum store_record_type type;
    const uint8_t *client_id;
    size_t client_id_len;
    const uint8_t *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *props; /* encoded MQTT 5 properties to keep with a message */
    size_t props_len;
    uint64_t msg_id;
    uint32_t expiry_s;
    uint32_t sub_id;
    uint16_t packet_id;
    uint8_t qos;
    uint8_t options;
};

/* Called on the loop thread when a commit is durable (status 0) or failed (negative). */
typedef void (*store_commit_cb)(void *arg, int status);

/* Opens the in-memory back end on loop. Returns 0 or LMQ_ENOMEM. */
int store_open_memory(uv_loop_t *loop, struct store **out);

/* Adds a record to the current batch (the store copies what it needs). Returns 0 or an error. */
int store_write(struct store *store, const struct store_record *rec) __attribute__((warn_unused_result));

/*
 * Ends the current batch: cb(arg, status) runs on the loop thread once every
 * record written before this call is durable. Returns 0 or an error (then cb
 * is never called).
 */
int store_commit(struct store *store, store_commit_cb cb, void *arg) __attribute__((warn_unused_result));

/* Number of commits requested but not yet completed. */
size_t store_pending(const struct store *store);

/* Counters for metrics and tests. */
struct store_stats {
    uint64_t records_written;
    uint64_t commits;
};
void store_get_stats(const struct store *store, struct store_stats *out);

/*
 * Starts closing: pending commits still complete, then the store's handles
 * are closed and *store freed once the loop runs them. Call before uv_run
 * drains the loop at shutdown.
 */
void store_close(struct store *store);

#endif
