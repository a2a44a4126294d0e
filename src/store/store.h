/*
 * The storage seam: everything the broker must not lose goes through here. Nothing in it knows
 * MQTT: records are plain data, byte slices are struct lmq_bytes. store_sqlite.c implements it;
 * a second back end (PostgreSQL) implements every function below with the same contract.
 *
 * Writing. The broker describes each change as a store_record (a tagged union: type says which
 * member of u is filled; what each does is beside its struct), adds it to the open batch with
 * store_write() and closes the batch with store_commit(cb, arg).
 * - store_write() copies every byte the record points to before it returns and does no I/O.
 * - Durability: cb(arg, 0) means every record of the batch, and of every batch committed before
 *   it, is durable (with STORE_SYNC_FULL: on stable storage, surviving a power loss) and visible
 *   to reads. The broker sends the acknowledgements that depend on a batch only then, so a back
 *   end must NEVER report 0 before that is true.
 * - Atomicity: a batch is applied whole or not at all. A back end may apply several batches in
 *   one transaction (group commit); they then succeed or fail together.
 * - Ordering: records of a batch are applied in write order, batches in commit order, and the
 *   callbacks run in commit order, each exactly once. A back end may skip a record whose effect
 *   a later record of the same transaction removes (SQLite skips a STORE_QUEUE_UPDATE of a row
 *   the transaction deletes).
 * - Failure: cb(arg, LMQ_EIO) means the batch is not known to be durable: nothing of it may be
 *   acknowledged. It is final: the broker stops (fail stop, exit status 2) and a restart
 *   recovers from what was durable; a back end may fail every later batch as well, but never
 *   retry behind the caller's back nor report a later batch durable while an earlier one is not.
 *
 * Reading. Every read is synchronous, on the loop thread, and sees committed data only: every
 * batch whose callback ran with 0 (and perhaps batches durable but not yet reported), never a
 * record of a batch that is not. Row callbacks get pointers valid during the call only; they may
 * store_write() but must not start another read (a back end reuses one statement per read).
 * LMQ_EIO from a read: the database could not be read or holds what cannot be (a corrupt row).
 *
 * Threading. Every function is called on the loop thread given to store_open(), except
 * store_token_revoke_file() (offline, no store open) and store_stats_percentile_us() (pure).
 * Commit and read callbacks run on the loop thread. A back end's own threads never touch the
 * caller's memory: a batch crosses over as a copy, a completion comes back through the loop
 * (uv_async_t).
 *
 * What is SQLite's own: the schema and its migrations (store_schema.c), the fault-injecting VFS
 * (store_fault.c), the sync mode's meaning and the offline revocation on a database path. A
 * PostgreSQL back end brings its own schema and migrations, keeps the record semantics below
 * (upserts, no-op deletes, duplicates that fail the commit, message collection, the queue
 * summary), applies batches on its own connection and thread (STORE_SYNC_FULL: a commit
 * returns once durable) and reads on a second connection that sees committed data only.
 *
 * The SQLite back end applies batches on its storage thread: every batch queued while the
 * previous transaction was being fsynced goes into the next transaction (group commit), so one
 * fsync covers all of them. Reads use a second, read-only connection on the loop thread (WAL:
 * it sees exactly the committed data).
 */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/lmq.h"

struct store;

/* A message as stored: stored once however many sessions it is queued for. */
struct store_message {
    uint64_t id;
    uint8_t qos;
    bool retain;
    int64_t created_unix_ms; /* wall clock, so expiry survives a restart */
    bool has_expiry;
    uint32_t expiry_s;
    bool has_payload_format;
    uint8_t payload_format;
    struct lmq_bytes topic;
    struct lmq_bytes payload;
    struct lmq_bytes content_type; /* data == NULL when absent */
    struct lmq_bytes response_topic;
    struct lmq_bytes correlation_data;
    struct lmq_bytes user_props; /* encoded MQTT 5 user properties */
    uint32_t user_prop_count;
};

/*
 * What a record does; the member of store_record.u it fills is named alike. Semantics every back
 * end keeps: a put of an existing key replaces it (upsert) unless said otherwise, an update or
 * delete of an absent key changes nothing, and a message row goes in the transaction that
 * removes its last reference (queue row, retained entry or will).
 */
enum store_record_type {
    STORE_SESSION_PUT = 1,      /* u.session_put */
    STORE_SESSION_DELETE,       /* u.session_delete: the session and all it owns */
    STORE_SUBSCRIPTION_PUT,     /* u.subscription_put */
    STORE_SUBSCRIPTION_DELETE,  /* u.subscription_delete */
    STORE_MESSAGE_PUT,          /* u.message_put */
    STORE_QUEUE_PUT,            /* u.queue_put */
    STORE_QUEUE_UPDATE,         /* u.queue_update: sent / PUBREC received */
    STORE_QUEUE_DELETE,         /* u.queue_delete: acknowledged or dropped */
    STORE_INBOUND_QOS2_PUT,     /* u.inbound_qos2_put: PUBREC sent, awaiting PUBREL */
    STORE_INBOUND_QOS2_DELETE,  /* u.inbound_qos2_delete */
    STORE_RETAINED_PUT,         /* u.retained_put */
    STORE_RETAINED_DELETE,      /* u.retained_delete */
    STORE_WILL_PUT,             /* u.will_put: the session's will */
    STORE_WILL_DELETE,          /* u.will_delete */
    STORE_LEDGER_APPEND,        /* u.ledger_append */
    STORE_LEDGER_NODE,          /* u.ledger_node */
    STORE_TOKEN_REVOKE,         /* u.token_revoke */
    STORE_DATA_VERSION,         /* u.data_version */
    STORE_DATA_INDEX,           /* u.data_index */
    STORE_EVENT_APPEND,         /* u.event_append */
    STORE_CONSUMER_POSITION,    /* u.consumer_position */
    STORE_CONSUMER_DEAD_PUT,    /* u.consumer_dead */
    STORE_CONSUMER_DEAD_DELETE, /* u.consumer_dead (consumer and event_id only) */
    STORE_JOB_RUN_START,        /* u.job_run: a scheduled job's run begins */
    STORE_JOB_RUN_END,          /* u.job_run: it ended (or was found interrupted) */
    STORE_CHAIN_HEADER_PUT,     /* u.chain_header: a block header of the followed chain */
    STORE_CHAIN_ROLLBACK,       /* u.chain_rollback: headers above a fork point removed */
    STORE_CHAIN_WATCH_PUT,      /* u.chain_watch: an identity's interest in a contract */
    STORE_CHAIN_WATCH_DELETE,   /* u.chain_watch (identity, address, topic0 only) */
    STORE_CHAIN_NOTICE_PUT,     /* u.chain_notice: a log notified (or its state changed) */
    STORE_SEAL_PUT,             /* u.seal: a seal, by nonce (upsert) */
    STORE_SEAL_TX_PUT,          /* u.seal_tx: a transaction sent for a seal's nonce */
    STORE_QUEUE_ENDED_TRIM,     /* u.queue_ended_trim: a batch of an ended session's queue rows */
    STORE_EVENTS_PRUNE,         /* u.events_prune: events (retention) */
};

/* Delivery states kept with a queued message. */
enum store_queue_state {
    STORE_QUEUE_QUEUED = 0,
    STORE_QUEUE_WAIT_PUBACK = 1,
    STORE_QUEUE_WAIT_PUBREC = 2,
    STORE_QUEUE_WAIT_PUBCOMP = 3,
};

/* A session that outlives its connection (expiry > 0, or 3.1.1 clean session 0). */
struct store_rec_session_put {
    struct lmq_bytes client_id;
    struct lmq_bytes owner; /* identity id owning the session; empty or data NULL: none */
    uint32_t expiry_s;
};

/* Queue rows a session delete removes in its own transaction at most when defer_queue is set:
 * with more, they are left to STORE_QUEUE_ENDED_TRIM. */
#define STORE_QUEUE_END_INLINE_ROWS 1000

/* The session of client_id with all it owns: subscriptions, queue rows (and the queue summary),
 * inbound QoS 2 ids and will. With defer_queue and more than STORE_QUEUE_END_INLINE_ROWS queue
 * rows, the queue rows stay: the session's highest seq goes into queue_ended (raised, never
 * lowered), for STORE_QUEUE_ENDED_TRIM to delete them in batches; the summary goes either way. */
struct store_rec_session_delete {
    struct lmq_bytes client_id;
    bool defer_queue;
};

/* Deletes up to limit queue rows of client_id with seq <= seq_max, lowest first (an ended
 * session's, store_queue_ended_next), collecting their messages; then, if none of those rows
 * is left, the queue_ended row of (client_id, seq_max). No queue summary changes. */
struct store_rec_queue_ended_trim {
    struct lmq_bytes client_id;
    uint64_t seq_max;
    uint32_t limit;
};

/* Deletes the events with after < id <= through that no dead letter (event_dead) refers to,
 * and records through as the consumer position "events:pruned" (store_events_pruned). The
 * writer bounds the batch by choosing through (store_events_prune_plan). */
struct store_rec_events_prune {
    uint64_t after;
    uint64_t through;
};

struct store_rec_subscription_put {
    struct lmq_bytes client_id;
    struct lmq_bytes filter; /* the full filter ($share/... included) */
    uint32_t sub_id;         /* 0: none */
    uint8_t options;         /* the SUBSCRIBE options byte */
};

struct store_rec_subscription_delete {
    struct lmq_bytes client_id;
    struct lmq_bytes filter;
};

/* Written before the first record that refers to message->id; an id already stored is kept
 * as it is (a message is immutable). */
struct store_rec_message_put {
    const struct store_message *message;
};

/* A delivery of msg_id queued for client_id at seq (state STORE_QUEUE_QUEUED). A (client_id,
 * seq) already stored fails the commit. Adds one row and size_bytes to the client's queue
 * summary and raises its seq high-water mark (store_loader.queue_summary). */
struct store_rec_queue_put {
    struct lmq_bytes client_id;
    struct lmq_bytes sub_ids; /* little-endian uint32 array */
    uint64_t seq;
    uint64_t msg_id;
    uint64_t size_bytes; /* counted in the session's queue summary */
    uint8_t qos;         /* delivery QoS */
    bool retain;         /* retain flag to send */
};

/* The delivery was sent (packet id, state) or its PUBREC received. */
struct store_rec_queue_update {
    struct lmq_bytes client_id;
    uint64_t seq;
    uint16_t packet_id;
    uint8_t state; /* enum store_queue_state */
};

/* Acknowledged, expired or dropped. msg_id and size_bytes as queued: the summary loses the row
 * (only if it was there; the high-water mark stays) and the message may be collected. */
struct store_rec_queue_delete {
    struct lmq_bytes client_id;
    uint64_t seq;
    uint64_t msg_id;
    uint64_t size_bytes;
};

/* A QoS 2 PUBLISH received and PUBREC'd, awaiting PUBREL (a put of a stored one is a no-op). */
struct store_rec_inbound_qos2_put {
    struct lmq_bytes client_id;
    uint16_t packet_id;
};

struct store_rec_inbound_qos2_delete {
    struct lmq_bytes client_id;
    uint16_t packet_id;
};

/* The retained message of topic (written before, by STORE_MESSAGE_PUT); the one it replaces may
 * be collected. */
struct store_rec_retained_put {
    struct lmq_bytes topic;
    uint64_t msg_id;
};

struct store_rec_retained_delete {
    struct lmq_bytes topic;
};

/* The session's will, message included (published delay_s after the session ends); the will it
 * replaces may be collected. */
struct store_rec_will_put {
    struct lmq_bytes client_id;
    const struct store_message *message;
    uint32_t delay_s;
};

struct store_rec_will_delete {
    struct lmq_bytes client_id;
};

/* One accepted envelope at ledger index; sets the sender's chain head (seq, link) and the
 * recipient's inbox counter (position). Never replaces: an index, link, (sender, seq) or
 * (recipient, position) already stored fails the commit rather than store a fork. */
struct store_rec_ledger_append {
    uint64_t index;
    struct lmq_bytes sender;
    struct lmq_bytes recipient;
    struct lmq_bytes link;
    struct lmq_bytes envelope; /* canonical JSON */
    uint64_t seq;
    uint64_t position;
    int64_t created_unix_ms;
};

/* A Merkle tree node: the hash of the perfect subtree (level, index). Never replaces: a node
 * already stored fails the commit. */
struct store_rec_ledger_node {
    uint32_t level;
    uint64_t index;
    struct lmq_bytes hash; /* 32 bytes */
};

/* The identity's tokens with iat < revoked_before_s are refused. The stored time is only ever
 * raised: the larger of the stored and the new one wins. */
struct store_rec_token_revoke {
    struct lmq_bytes identity;
    int64_t revoked_before_s;
};

/*
 * One version of a typed object (docs/PROTOCOL.md "Objects"): the accepted envelope at
 * ledger_index whose body names a model. Stores the version; makes it its resource's latest
 * (a first version, prevlink empty, creates the resource: permalink = link); records author and
 * recipient as readers of the resource. A link already stored, or a second version naming the
 * same prevlink, fails the commit rather than store a forked history.
 */
struct store_rec_data_version {
    uint64_t ledger_index;
    struct lmq_bytes link;      /* hex, the envelope's link */
    struct lmq_bytes permalink; /* hex, the link of the resource's first version */
    struct lmq_bytes prevlink;  /* hex, the version it replaces; empty for a first version */
    struct lmq_bytes model;     /* the model's type name (the body's _t) */
    struct lmq_bytes author;    /* the sender's id */
    struct lmq_bytes recipient; /* the envelope's to */
    struct lmq_bytes time;      /* the envelope's time, RFC 3339 */
    struct lmq_bytes body;      /* canonical JSON object: the body without its _-members */
    bool deleted;               /* a tombstone: the resource is deleted from this version on */
};

/* An index on one property of the resources' latest bodies, for filters and ordering: path is a
 * STORE_DATA_PATH (store_data_path_valid). Creating one that exists changes nothing. */
struct store_rec_data_index {
    struct lmq_bytes path;
};

/* One event of the event stream (src/events): id gap-free from 1, type "envelope.accepted"...,
 * data a canonical JSON object. */
struct store_rec_event_append {
    uint64_t id;
    int64_t time_ms;
    struct lmq_bytes type;
    struct lmq_bytes data;
};

/* How far a consumer of the event stream (a webhook endpoint) got: every event <= position is
 * delivered or dead-lettered. */
struct store_rec_consumer_position {
    struct lmq_bytes consumer;
    uint64_t position;
};

/* An event a consumer gave up on after its attempts (the dead-letter list), or its removal. */
struct store_rec_consumer_dead {
    struct lmq_bytes consumer;
    uint64_t event_id;
    uint32_t attempts;
    struct lmq_bytes error; /* the last attempt's, for people */
    int64_t time_ms;
};

/*
 * A scheduled job's run (src/jobs; docs/ARCHITECTURE.md "Scheduled jobs"), keyed by (job,
 * tick_ms). STORE_JOB_RUN_START inserts it with state "running": a (job, tick_ms) already stored
 * fails the commit, so a tick can never start twice. STORE_JOB_RUN_END sets state, ended_unix_ms
 * and detail of the stored row (none: no change) and then, with keep > 0, deletes the job's runs
 * older than its newest keep.
 */
struct store_rec_job_run {
    struct lmq_bytes job;
    int64_t tick_ms;  /* the scheduled instant (Unix ms), or the request time of a manual run */
    bool manual;      /* run now (jobs_run_now), not a tick of the schedule */
    uint64_t skipped; /* missed ticks coalesced into this run */
    int64_t started_unix_ms;
    int64_t ended_unix_ms;
    struct lmq_bytes state;  /* "running", "ok", "failed", "timeout", "interrupted" */
    struct lmq_bytes detail; /* why it failed, or what it did; may be empty */
    uint32_t keep;
};

/*
 * The chain follower and the sealer (src/chain; docs/ARCHITECTURE.md "Ethereum"). Hashes are
 * 32 bytes, addresses 20, as binary. A header put replaces the header of that number (the
 * follower puts a block only on top of its parent); a rollback deletes every header above
 * `after`. A watch is keyed by (identity, address, topic0: empty for every event of the
 * contract). A notice is keyed by (block_hash, log_index, identity): the follower writes it in
 * the batch of the envelope that notified it, so "notified" and "the envelope is in the inbox"
 * are durable together; a later put of the same key changes its state ("notified",
 * "confirmed", "retracted") and link (the latest envelope about it). A seal is keyed by its
 * nonce: the sealer writes it before broadcasting, then each state change (fee bump: new tx_hash
 * and raw; mined; confirmed; dropped by a reorg).
 */
struct store_rec_chain_header {
    uint64_t number;
    struct lmq_bytes hash;
    struct lmq_bytes parent_hash;
    uint64_t time; /* the block's timestamp (Unix s) */
};

struct store_rec_chain_rollback {
    uint64_t after; /* headers with number > after are deleted */
};

struct store_rec_chain_watch {
    struct lmq_bytes identity;
    struct lmq_bytes address;
    struct lmq_bytes topic0; /* 32 bytes, or empty: every event of the contract */
    struct lmq_bytes abi;    /* an event signature to decode logs with, or empty */
    int64_t created_unix_ms;
};

struct store_rec_chain_notice {
    uint64_t block_number;
    struct lmq_bytes block_hash;
    uint32_t log_index;
    struct lmq_bytes identity;
    struct lmq_bytes tx_hash;
    struct lmq_bytes state; /* "notified", "confirmed", "retracted" */
    struct lmq_bytes link;  /* the envelope that said so */
};

struct store_rec_seal {
    uint64_t nonce;
    uint64_t tree_size;
    struct lmq_bytes root;       /* the checkpoint's root hash */
    struct lmq_bytes checkpoint; /* the signed note sealed */
    uint64_t chain_id;
    struct lmq_bytes tx_hash;    /* the latest transaction sent for this nonce */
    struct lmq_bytes raw;        /* its signed bytes (rebroadcast after a restart) */
    struct lmq_bytes state;      /* "sent", "mined", "confirmed", "dropped" */
    uint64_t block_number;       /* mined: the block; else 0 */
    struct lmq_bytes block_hash; /* mined: its hash; else empty */
    uint32_t attempts;           /* transactions sent for this nonce (fee bumps + 1) */
    int64_t sent_unix_ms;        /* when the latest was sent */
    int64_t updated_unix_ms;
};

/* One transaction signed for a seal's nonce (attempt 1, then one per fee bump), written before
 * it is broadcast: after a crash every one is known, and any of them may be the one mined. */
struct store_rec_seal_tx {
    uint64_t nonce;
    uint32_t attempt;
    struct lmq_bytes tx_hash;
    struct lmq_bytes raw;
    int64_t sent_unix_ms;
};

/* One change that must survive a crash: type says which member of u is filled; the others
 * are not read. */
struct store_record {
    enum store_record_type type;
    union {
        struct store_rec_session_put session_put;
        struct store_rec_session_delete session_delete;
        struct store_rec_subscription_put subscription_put;
        struct store_rec_subscription_delete subscription_delete;
        struct store_rec_message_put message_put;
        struct store_rec_queue_put queue_put;
        struct store_rec_queue_update queue_update;
        struct store_rec_queue_delete queue_delete;
        struct store_rec_inbound_qos2_put inbound_qos2_put;
        struct store_rec_inbound_qos2_delete inbound_qos2_delete;
        struct store_rec_retained_put retained_put;
        struct store_rec_retained_delete retained_delete;
        struct store_rec_will_put will_put;
        struct store_rec_will_delete will_delete;
        struct store_rec_ledger_append ledger_append;
        struct store_rec_ledger_node ledger_node;
        struct store_rec_token_revoke token_revoke;
        struct store_rec_data_version data_version;
        struct store_rec_data_index data_index;
        struct store_rec_event_append event_append;
        struct store_rec_consumer_position consumer_position;
        struct store_rec_consumer_dead consumer_dead;
        struct store_rec_job_run job_run;
        struct store_rec_chain_header chain_header;
        struct store_rec_chain_rollback chain_rollback;
        struct store_rec_chain_watch chain_watch;
        struct store_rec_chain_notice chain_notice;
        struct store_rec_seal seal;
        struct store_rec_seal_tx seal_tx;
        struct store_rec_queue_ended_trim queue_ended_trim;
        struct store_rec_events_prune events_prune;
    } u;
};

/* One accepted envelope as stored in the ledger. */
struct store_ledger_row {
    uint64_t index;
    uint64_t seq;
    uint64_t position;
    int64_t created_unix_ms;
    struct lmq_bytes sender;
    struct lmq_bytes recipient;
    struct lmq_bytes link;
    struct lmq_bytes envelope; /* canonical JSON */
};

enum store_sync_mode {
    STORE_SYNC_FULL = 0, /* fsync every commit */
    STORE_SYNC_OFF = 1,  /* no fsync: only for comparisons */
};

struct store_options {
    const char *path; /* database file */
    enum store_sync_mode sync;
};

/* Called on the loop thread, once, when a commit is durable (status 0) or failed (LMQ_EIO:
 * final, see the top of this file). It may write records, and commit them unless it runs
 * inside store_close(). */
typedef void (*store_commit_cb)(void *arg, int status);

/*
 * Opens (creating or migrating: a newer schema is refused) the database and starts the storage
 * thread. On return reads see everything durable. On error returns LMQ_EIO with a one-line
 * message in err, and nothing is left open.
 */
int store_open(uv_loop_t *loop, const struct store_options *opts, struct store **out, char *err,
               size_t err_len) __attribute__((warn_unused_result));

/* What recovery hands back, one call per stored item, in this order of kinds: sessions, then
 * subscriptions, inbound QoS 2 ids, retained messages, queue summaries (count > 0 only),
 * identities, and wills last (publishing one routes to the rest). Returning non-zero stops the
 * load. */
struct store_loader {
    void *ctx;
    int (*session)(void *ctx, struct lmq_bytes client_id, uint32_t expiry_s,
                   struct lmq_bytes owner);
    /* An identity's chain head (last_seq 0: it never sent) and last inbox position. */
    int (*identity)(void *ctx, struct lmq_bytes id, uint64_t last_seq, struct lmq_bytes last_link,
                    uint64_t inbox_last);
    int (*will)(void *ctx, struct lmq_bytes client_id, const struct store_message *m,
                uint32_t delay_s);
    int (*subscription)(void *ctx, struct lmq_bytes client_id, struct lmq_bytes filter,
                        uint8_t options, uint32_t sub_id);
    int (*inbound_qos2)(void *ctx, struct lmq_bytes client_id, uint16_t packet_id);
    int (*retained)(void *ctx, const struct store_message *m);
    int (*queue_summary)(void *ctx, struct lmq_bytes client_id, uint64_t count, uint64_t size_bytes,
                         uint64_t max_seq);
    /* Optional (NULL: not called), after the summaries: an ended session whose queue rows up to
     * seq_max are still stored (STORE_SESSION_DELETE with defer_queue). */
    int (*queue_ended)(void *ctx, struct lmq_bytes client_id, uint64_t seq_max);
};

/* Loads everything but queued messages (those are paged). Sets *max_msg_id (0: none stored).
 * 0, LMQ_EIO, or LMQ_EINVAL when a loader call returned non-zero. Loop thread. */
int store_load(struct store *store, const struct store_loader *loader, uint64_t *max_msg_id)
    __attribute__((warn_unused_result));
/* The number of envelopes in the ledger (= the next index). Loop thread. */
int store_ledger_size(struct store *store, uint64_t *size) __attribute__((warn_unused_result));
/* Finds the committed envelope sender sent with seq. Calls row() once when found (pointers
 * valid during the call); *found says whether it was. Loop thread; synchronous. */
int store_ledger_find(struct store *store, struct lmq_bytes sender, uint64_t seq,
                      int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                      bool *found) __attribute__((warn_unused_result));
/* Reads the committed Merkle node (level, index) into hash. Returns 0, LMQ_ENOTFOUND or
 * LMQ_EIO. Loop thread; synchronous. */
int store_ledger_node(struct store *store, uint32_t level, uint64_t index, uint8_t hash[32])
    __attribute__((warn_unused_result));
/* The first ended session (by client id) whose queue rows are still stored: its client id
 * copied into id (cap bytes, *id_len), its seq_max, and in *rows how many of its rows are left,
 * counted up to rows_max. *found false: none. Loop thread; synchronous. */
int store_queue_ended_next(struct store *store, uint8_t *id, size_t cap, size_t *id_len,
                           uint64_t *seq_max, uint64_t rows_max, uint64_t *rows,
                           bool *found) LMQ_WUR;
/* Reads up to limit committed envelopes by ledger index from start, in order. A non-zero return
 * from row() stops the read with LMQ_EINVAL. Sets *count. Loop thread; synchronous. */
int store_ledger_range(struct store *store, uint64_t start, size_t limit,
                       int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                       size_t *count) __attribute__((warn_unused_result));
/* Reads up to limit committed leaves from start in index order: index and link only (no
 * envelope is read). leaf() gets each (link valid during the call); a non-zero return stops
 * the read with LMQ_EINVAL. Sets *count. Loop thread; synchronous. */
int store_ledger_links(struct store *store, uint64_t start, size_t limit,
                       int (*leaf)(void *ctx, uint64_t index, struct lmq_bytes link), void *ctx,
                       size_t *count) __attribute__((warn_unused_result));
/* Reads up to limit committed envelopes with index in [start, end) that party sent or
 * received, in index order, each once. Uses the (sender, seq) and (recipient, position)
 * indexes (both grow with the index): the cost is logarithmic in the ledger plus what is
 * returned, never a scan of other identities' envelopes. A non-zero return from row() stops
 * the read with LMQ_EINVAL. Sets *count. Loop thread; synchronous. */
int store_ledger_party_range(struct store *store, struct lmq_bytes party, uint64_t start,
                             uint64_t end, size_t limit,
                             int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                             size_t *count) __attribute__((warn_unused_result));
/* Reads up to limit committed envelopes for recipient with position > after, in position
 * order. A non-zero return from row() stops the read with LMQ_EINVAL. Sets *count. Loop
 * thread; synchronous. */
int store_inbox_page(struct store *store, struct lmq_bytes recipient, uint64_t after, size_t limit,
                     int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                     size_t *count) __attribute__((warn_unused_result));

/* A request the chaser job looks at (store_chaser_requests); pointers valid during the call. */
struct store_chaser_request {
    uint64_t index;
    int64_t created_unix_ms;
    struct lmq_bytes sender;
    struct lmq_bytes recipient;
    struct lmq_bytes link; /* 64 hex characters */
};
/* Reads up to limit committed envelopes whose "type" is type with index >= start, in index
 * order (index ledger_by_type, schema 10). A non-zero return from row() stops the read with
 * LMQ_EINVAL. Sets *count. Loop thread; synchronous. */
int store_chaser_requests(struct store *store, const char *type, uint64_t start, size_t limit,
                          int (*row)(void *ctx, const struct store_chaser_request *r), void *ctx,
                          size_t *count) __attribute__((warn_unused_result));
/* *answered: a committed envelope from `from` to `to` has body.in_reply_to equal to link (index
 * ledger_by_reply). 0 or LMQ_EIO. Loop thread; synchronous. */
int store_chaser_answered(struct store *store, struct lmq_bytes link, struct lmq_bytes from,
                          struct lmq_bytes to, bool *answered) __attribute__((warn_unused_result));
/* The committed envelopes of type that server sent with body.reminder_of equal to link: how
 * many, and the newest one's append time (0: none). Index ledger_by_reminder. 0 or LMQ_EIO. */
int store_chaser_reminders(struct store *store, struct lmq_bytes link, struct lmq_bytes server,
                           const char *type, uint64_t *count, int64_t *last_unix_ms)
    __attribute__((warn_unused_result));

/* Calls row(ctx, id, revoked_before_s) for every identity with revoked tokens (committed
 * data). Returns 0, LMQ_EIO, or LMQ_EINVAL when row() returned non-zero. Loop thread. */
int store_token_revocations(struct store *store,
                            int (*row)(void *ctx, struct lmq_bytes id, int64_t before_s), void *ctx)
    __attribute__((warn_unused_result));
/* Calls row(ctx, sender, bytes) with the envelope bytes each sender appended to the ledger at
 * or after since_unix_ms (committed rows; the ledger_by_time index bounds the work to them).
 * Returns 0, LMQ_EIO, or LMQ_EINVAL when row() returned non-zero. Loop thread. */
int store_ledger_bytes_since(struct store *store, int64_t since_unix_ms,
                             int (*row)(void *ctx, struct lmq_bytes sender, uint64_t bytes),
                             void *ctx) __attribute__((warn_unused_result));
/*
 * Offline (no store open): revokes the tokens of identity id issued before before_s in the
 * database at path, which must exist (it is migrated like store_open() does). The stored time
 * is never lowered: *stored_s gets the one in force. Safe while a broker has the database
 * open (SQLite locking), which applies it on SIGHUP or restart. 0 or LMQ_EIO with a one-line
 * message in err.
 */
int store_token_revoke_file(const char *path, struct lmq_bytes id, int64_t before_s,
                            int64_t *stored_s, char *err, size_t err_len)
    __attribute__((warn_unused_result));

struct store_queue_row {
    uint64_t seq;
    uint64_t size_bytes;
    uint8_t qos;
    bool retain;
    uint8_t state;
    uint16_t packet_id;
    struct lmq_bytes sub_ids;
    const struct store_message *message;
};

/*
 * Reads up to limit committed queue rows of client_id with seq > after_seq,
 * in seq order, calling row() for each (pointers valid during the call).
 * Sets *count. Loop thread; synchronous.
 */
int store_queue_page(struct store *store, struct lmq_bytes client_id, uint64_t after_seq,
                     size_t limit, int (*row)(void *ctx, const struct store_queue_row *r),
                     void *ctx, size_t *count) __attribute__((warn_unused_result));

/* A queue row's key and size, without its message. */
struct store_queue_head {
    uint64_t seq;
    uint64_t msg_id;
    uint64_t size_bytes;
    bool has_expiry;         /* the message has a Message Expiry Interval */
    int64_t expires_unix_ms; /* then: created_unix_ms + expiry_s * 1000 */
};

/*
 * The committed queue row of client_id with the lowest seq > after_seq that is still waiting to
 * be sent (state STORE_QUEUE_QUEUED): *found says whether there is one. Uses the queue's
 * primary key: the cost is logarithmic plus the rows in flight it steps over. Loop thread;
 * synchronous. 0 or LMQ_EIO.
 */
int store_queue_oldest(struct store *store, struct lmq_bytes client_id, uint64_t after_seq,
                       struct store_queue_head *out, bool *found)
    __attribute__((warn_unused_result));

/* Adds a record to the open batch (opening one if none is), copying every byte it points to.
 * No I/O. 0, LMQ_ENOMEM, or LMQ_ELIMIT (the batch holds 2^24 records): the broker stops on
 * either. Loop thread; never after store_close(). */
int store_write(struct store *store, const struct store_record *rec)
    __attribute__((warn_unused_result));

/*
 * Ends the open batch (an empty one is fine: its callback still runs in order) and hands it to
 * the back end: cb(arg, status) runs on the loop thread once every record written before this
 * call is durable, or failed. Completions run in commit order. 0 or LMQ_ENOMEM (then cb never
 * runs). Loop thread; never after store_close().
 */
int store_commit(struct store *store, store_commit_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Commits handed to the storage thread whose callback has not run yet. Loop thread. */
size_t store_pending(const struct store *store);

/* The commit latency histogram's bounds for /metrics, in microseconds: 0.1 ms .. 10 s, the
 * usual Prometheus latency buckets (a handful, so a dashboard's quantiles stay cheap). */
#define STORE_COMMIT_BUCKETS 16
extern const uint64_t store_commit_bucket_le_us[STORE_COMMIT_BUCKETS];

/* Counters for logs, metrics and benchmarks. */
struct store_stats {
    uint64_t records_written;
    uint64_t records_skipped; /* queue-row updates superseded by a delete in the same commit */
    uint64_t batches;
    uint64_t commits; /* transactions, = fsyncs with STORE_SYNC_FULL */
    uint64_t commit_us_total;
    uint64_t commit_us_max;
    uint64_t commit_us_hist[32]; /* commits by floor(log2(latency in us)) */
    /* Commits by store_commit_bucket_le_us: [i] counts latencies in (le[i-1], le[i]]; those over
     * the last bound are in commits only (the Prometheus +Inf bucket). */
    uint64_t commit_le_hist[STORE_COMMIT_BUCKETS];
};
/* A consistent copy of the counters (taken under the back end's lock). Loop thread. */
void store_get_stats(struct store *store, struct store_stats *out);

/* Latency in microseconds below which the given fraction (0..1) of commits completed: estimated
 * within its power-of-two bucket (linear), never above commit_us_max; monotonic in fraction. */
uint64_t store_stats_percentile_us(const struct store_stats *stats, double fraction);

/*
 * Finishes every committed batch (their callbacks run, in order, inside this call), discards
 * records written after the last commit (nothing was acknowledged on them), stops the storage
 * thread and closes the database; the store is freed once the loop has run the close of its
 * async handle. No store call after this one. Loop thread.
 */
void store_close(struct store *store);

/* ---- Typed objects (docs/PROTOCOL.md "Objects") ---- */

/* A property path: "$" then 1..STORE_DATA_PATH_DEPTH_MAX ".name" steps, each name a GraphQL
 * name ([_A-Za-z][_0-9A-Za-z]*, at most 64 characters). Only such paths reach SQL text (an
 * index's expression must appear literally in a query for the planner to use it). */
#define STORE_DATA_PATH_DEPTH_MAX 8
#define STORE_DATA_PATH_MAX_BYTES 600
bool store_data_path_valid(struct lmq_bytes path);

/* A resource's latest version, or one version (ledger_index and link are the version's). */
struct store_data_row {
    uint64_t ledger_index;         /* of this version */
    uint64_t created_ledger_index; /* of the resource's first version */
    struct lmq_bytes link;
    struct lmq_bytes permalink;
    struct lmq_bytes prevlink; /* empty for a first version */
    struct lmq_bytes model;
    struct lmq_bytes author;
    struct lmq_bytes time;
    struct lmq_bytes body;
    bool deleted;
    struct lmq_bytes owner; /* the author of the resource's first version */
};

typedef int (*store_data_row_fn)(void *ctx, const struct store_data_row *r);

/* The latest version of the resource permalink (deleted ones too): row() once when found;
 * *found says whether. When reader.data != NULL, a resource reader may not read counts as not
 * found. Loop thread; synchronous. 0 or LMQ_EIO. */
int store_data_resource(struct store *store, struct lmq_bytes permalink, struct lmq_bytes reader,
                        store_data_row_fn row, void *ctx, bool *found) LMQ_WUR;
/* Permalinks one store_data_resources call may name. */
#define STORE_DATA_BATCH_MAX 100
/* The latest versions of up to STORE_DATA_BATCH_MAX resources in one statement (GraphQL's
 * batched references: one read for every link of a level), row() once for each found, in no
 * particular order, with the same reader rule. Sets *count. LMQ_EINVAL for 0 or too many
 * permalinks (nothing read), LMQ_EIO. */
int store_data_resources(struct store *store, const struct lmq_bytes *permalinks, size_t n,
                         struct lmq_bytes reader, store_data_row_fn row, void *ctx,
                         size_t *count) LMQ_WUR;
/* One version by its link, with the same reader rule. */
int store_data_version(struct store *store, struct lmq_bytes link, struct lmq_bytes reader,
                       store_data_row_fn row, void *ctx, bool *found) LMQ_WUR;
/* Up to limit versions of permalink with ledger index >= from, oldest first, with the same
 * reader rule (a reader sees every version of a resource it may read). Sets *count. */
int store_data_versions(struct store *store, struct lmq_bytes permalink, struct lmq_bytes reader,
                        uint64_t from, size_t limit, store_data_row_fn row, void *ctx,
                        size_t *count) LMQ_WUR;

/*
 * Reads as of a ledger checkpoint (docs/PROTOCOL.md "Reading as of a checkpoint"): the state of
 * the resources when the ledger had size entries. A resource's version then is its latest with
 * ledger index < size (none: the resource did not exist yet); the reader rule is the one of then
 * (reader may read a resource when a version before size was by or to it). The caller makes sure
 * size is at most a committed checkpoint's, so the answer never changes. Same contracts as the
 * latest reads above otherwise.
 */
int store_data_resource_at(struct store *store, struct lmq_bytes permalink, struct lmq_bytes reader,
                           uint64_t size, store_data_row_fn row, void *ctx, bool *found) LMQ_WUR;
/* A version by its link when its ledger index is < size, with the reader rule of then. */
int store_data_version_at(struct store *store, struct lmq_bytes link, struct lmq_bytes reader,
                          uint64_t size, store_data_row_fn row, void *ctx, bool *found) LMQ_WUR;
/* store_data_resources as of size. */
int store_data_resources_at(struct store *store, const struct lmq_bytes *permalinks, size_t n,
                            struct lmq_bytes reader, uint64_t size, store_data_row_fn row,
                            void *ctx, size_t *count) LMQ_WUR;

/* A scalar in a filter: what json_extract() yields for a JSON value. */
enum store_data_value_type {
    STORE_DATA_NULL,
    STORE_DATA_INT, /* also booleans: false 0, true 1 */
    STORE_DATA_REAL,
    STORE_DATA_TEXT,
};

struct store_data_value {
    enum store_data_value_type type;
    int64_t i;
    double d;
    struct lmq_bytes text;
};

enum store_data_op {
    STORE_DATA_EQ,
    STORE_DATA_NEQ,
    STORE_DATA_IN, /* values[0..value_count) */
    STORE_DATA_NOT_IN,
    STORE_DATA_LT,
    STORE_DATA_LTE,
    STORE_DATA_GT,
    STORE_DATA_GTE,
    STORE_DATA_STARTS_WITH, /* text prefix, byte-wise (no LIKE wildcards) */
    STORE_DATA_CONTAINS,    /* text contains, byte-wise */
    STORE_DATA_IS_NULL,     /* absent or null; no value */
    STORE_DATA_NOT_NULL,
};

#define STORE_DATA_FILTERS_MAX 16
#define STORE_DATA_IN_VALUES_MAX 100

struct store_data_filter {
    struct lmq_bytes path; /* store_data_path_valid */
    enum store_data_op op;
    const struct store_data_value *values;
    size_t value_count; /* 1 for comparisons, 1..STORE_DATA_IN_VALUES_MAX for IN / NOT_IN */
};

/*
 * A query over one model's resources (latest versions, deleted ones left out), compiled by the
 * back end to one parameterised statement. Order: by order_path (then creation), or by creation
 * (the first version's ledger index) when order_path is empty; a page continues after the
 * cursor the previous page's last row gave (store_data_cursor). reader.data == NULL reads
 * everything ([data] readers_all); otherwise only resources reader may read.
 */
struct store_data_query {
    struct lmq_bytes model;
    struct lmq_bytes reader;
    const struct store_data_filter *filters;
    size_t filter_count;
    struct lmq_bytes order_path; /* empty: creation order */
    bool descending;
    bool has_cursor;
    struct store_data_value cursor_value; /* the last row's order_path value */
    uint64_t cursor_created;              /* the last row's created_ledger_index */
    size_t limit;
    /* As of a checkpoint (store_data_resource_at): each resource's version before as_of_size,
     * filters and order on that version's body, the reader rule of then. Filters and property
     * orders then cannot use the property indexes (they index the latest versions): they are
     * evaluated on each resource of the model created before as_of_size. */
    bool as_of;
    uint64_t as_of_size;
    /* 0: no bound; else the statement is interrupted after this long and the query fails with
     * LMQ_ELIMIT (rows already passed to row() stand). For reads that can scan (as of). */
    uint64_t max_ms;
};

/* Runs q, calling row() for each resource in order. Sets *count. LMQ_EINVAL for a query
 * outside the bounds above (nothing read), LMQ_ELIMIT when q->max_ms ran out, LMQ_EIO. Loop
 * thread; synchronous. */
int store_data_query(struct store *store, const struct store_data_query *q, store_data_row_fn row,
                     void *ctx, size_t *count) LMQ_WUR;
/* ---- the event stream (src/events): reads on the loop thread ---- */
struct store_event_row {
    uint64_t id;
    int64_t time_ms;
    struct lmq_bytes type;
    struct lmq_bytes data;
};
typedef int (*store_event_row_fn)(void *ctx, const struct store_event_row *r);
/* The highest event id stored or pruned (0: none). */
int store_events_last_id(struct store *store, uint64_t *id) LMQ_WUR;
/* The consumer position that records the highest event id retention deleted through. */
#define STORE_EVENTS_PRUNED "events:pruned"
/* Every event id up to *through may have been deleted by retention (0: none was). */
int store_events_pruned(struct store *store, uint64_t *through) LMQ_WUR;
/* Plans one STORE_EVENTS_PRUNE: the events with after < id <= through_max, in id order, at most
 * limit, stopping before the first whose time_ms >= before_ms. *through: the last of them
 * (after: none); *count: how many. */
int store_events_prune_plan(struct store *store, uint64_t after, uint64_t through_max,
                            int64_t before_ms, size_t limit, uint64_t *through,
                            size_t *count) LMQ_WUR;
/* Up to limit events with id > after, in id order. Sets *count. */
int store_events_after(struct store *store, uint64_t after, size_t limit, store_event_row_fn row,
                       void *ctx, size_t *count) LMQ_WUR;
/* Each consumer's position (consumer, position). */
int store_consumer_positions(struct store *store,
                             int (*each)(void *ctx, struct lmq_bytes consumer, uint64_t position),
                             void *ctx) LMQ_WUR;
/* A consumer's dead-letter list from the event after after_id, oldest event first, at most
 * limit (an index range: the cost is the page's). */
int store_consumer_dead(struct store *store, struct lmq_bytes consumer, uint64_t after_id,
                        size_t limit,
                        int (*each)(void *ctx, const struct store_rec_consumer_dead *d), void *ctx,
                        size_t *count) LMQ_WUR;

/* How the back end runs q (SQLite: the EXPLAIN QUERY PLAN details, one per line) into out, for
 * tests and benchmarks that check an index is used. 0, LMQ_EINVAL (as above) or LMQ_ETOOBIG. */
int store_data_query_plan(struct store *store, const struct store_data_query *q, char *out,
                          size_t cap) LMQ_WUR;
/* The SQL text store_data_query prepares for q, NUL-terminated, into out: parameters ?1 the
 * model (text), ?2 the reader (blob, NULL for everything), then each filter's values in order,
 * the cursor (value if ordered by a path, then creation index) and the limit last. For
 * benchmarks that time the bare statement (scripts/bench-data.py). 0, LMQ_EINVAL (as above),
 * LMQ_ENOMEM or LMQ_ETOOBIG. */
int store_data_query_sql(const struct store_data_query *q, char *out, size_t cap) LMQ_WUR;

/* A job run as stored (store_rec_job_run); byte slices valid during the row call only. */
struct store_job_run_row {
    struct lmq_bytes job;
    int64_t tick_ms;
    bool manual;
    uint64_t skipped;
    int64_t started_unix_ms;
    int64_t ended_unix_ms; /* 0 while running */
    struct lmq_bytes state;
    struct lmq_bytes detail;
};
/* Reads up to limit committed runs newest first: of job, or (job.len == 0) the runs of every
 * job still "running" (start-up finds the ones a crash cut short). A non-zero return from row()
 * stops with LMQ_EINVAL. Sets *count. Loop thread; synchronous. */
int store_job_runs(struct store *store, struct lmq_bytes job, size_t limit,
                   int (*row)(void *ctx, const struct store_job_run_row *r), void *ctx,
                   size_t *count) __attribute__((warn_unused_result));

/* The chain follower's and the sealer's reads (store_chain.c): loop thread, synchronous,
 * committed state only. Row slices are valid during the call; a non-zero return from the
 * callback stops with LMQ_EINVAL; *count is set. */
/* Headers with number in [from, to], ascending, at most limit. */
int store_chain_headers(struct store *store, uint64_t from, uint64_t to, size_t limit,
                        int (*each)(void *ctx, const struct store_rec_chain_header *h), void *ctx,
                        size_t *count) LMQ_WUR;
/* The highest stored header (*found false when there is none). */
int store_chain_tip(struct store *store, uint64_t *number, uint8_t hash[32], bool *found) LMQ_WUR;
/* Every watch (identity, address, topic0) in key order, after the given key (all-empty: from
 * the start), at most limit: the follower loads them at start and pages with the last key. */
int store_chain_watches(struct store *store, const struct store_rec_chain_watch *after,
                        size_t limit, int (*each)(void *ctx, const struct store_rec_chain_watch *w),
                        void *ctx, size_t *count) LMQ_WUR;
/* Notices of blocks with number >= from_number, ascending by (number, log index, identity), at
 * most limit, after the given key (NULL: from the start): what a rollback retracts and what
 * the confirmation pass visits. */
int store_chain_notices(struct store *store, uint64_t from_number,
                        const struct store_rec_chain_notice *after, size_t limit,
                        int (*each)(void *ctx, const struct store_rec_chain_notice *n), void *ctx,
                        size_t *count) LMQ_WUR;
/* The first seal in state with tree_size >= size (the smallest such size; the lowest nonce among
 * equal sizes): one indexed lookup (seals_cover), whatever the table holds. each is called once
 * or never (*found says which). */
int store_seal_cover(struct store *store, struct lmq_bytes state, uint64_t size,
                     int (*each)(void *ctx, const struct store_rec_seal *s), void *ctx,
                     bool *found) LMQ_WUR;
/* The transactions sent for nonce, by attempt. */
int store_seal_txs(struct store *store, uint64_t nonce, size_t limit,
                   int (*each)(void *ctx, const struct store_rec_seal_tx *t), void *ctx,
                   size_t *count) LMQ_WUR;
/* Seals with nonce >= from_nonce (nonces start at 0), ascending, at most limit. */
int store_seals(struct store *store, uint64_t from_nonce, size_t limit,
                int (*each)(void *ctx, const struct store_rec_seal *s), void *ctx,
                size_t *count) LMQ_WUR;

#endif
