/*
 * SQLite store back end: WAL, synchronous=FULL, one writer connection owned
 * by the storage thread, one read-only connection for the loop thread.
 *
 * store_write() copies each record into the open batch on the loop thread;
 * store_commit() hands the batch to the storage thread. The storage thread
 * takes every batch that is waiting, applies them all in one transaction
 * (group commit: one fsync for all), and reports completions back through a
 * uv_async_t. A failed statement or commit fails the whole transaction and
 * every batch in it, and every batch after it; the broker then stops without
 * acknowledging them.
 */
#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

#include "core/lmq.h"
#include "core/log.h"
#include "core/map.h"
#include "store/store_fault.h"
#include "store/store_schema.h"
#include "store/store_sqlite_internal.h"

/* Busy timeout for the reader while the writer checkpoints. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* Records per batch the loop thread may accumulate before the broker commits. */
#define STORE_BATCH_RECORDS_MAX (1u << 24)

/* One record with its own copy of every byte it points to. */
struct owned_record {
    struct store_record rec;
    struct store_message msg;
    uint8_t *bytes;
};

struct store_batch {
    struct store_batch *next;
    struct owned_record *recs;
    size_t count, cap;
    store_commit_cb cb;
    void *arg;
    int status;
    uint64_t seq; /* 1, 2, ...: the order of store_commit() calls */
};

/* Raises (never lowers) an identity's token revocation time: writers (the broker and the
 * offline `ledgermq revoke`) may interleave in any order and the latest revocation wins. */
#define STORE_REVOKE_SQL                                                                           \
    "INSERT INTO token_revocations(id, revoked_before_s) VALUES(?1, ?2) "                          \
    "ON CONFLICT(id) DO UPDATE SET revoked_before_s = "                                            \
    "max(revoked_before_s, excluded.revoked_before_s)"

enum store_stmt {
    ST_SESSION_PUT,
    ST_SESSION_DELETE,
    ST_SESSION_DELETE_SUBS,
    ST_SESSION_DELETE_QUEUE,
    ST_SESSION_DELETE_QOS2,
    ST_SESSION_DELETE_WILL,
    ST_SUB_PUT,
    ST_SUB_DELETE,
    ST_MSG_PUT,
    ST_MSG_GC,
    ST_QUEUE_PUT,
    ST_QUEUE_UPDATE,
    ST_QUEUE_DELETE,
    ST_QOS2_PUT,
    ST_QOS2_DELETE,
    ST_RETAINED_GET,
    ST_RETAINED_PUT,
    ST_RETAINED_DELETE,
    ST_WILL_GET,
    ST_WILL_PUT,
    ST_WILL_DELETE,
    ST_SUMMARY_ADD,
    ST_SUMMARY_DELETE,
    ST_LEDGER_PUT,
    ST_IDENTITY_SENT,
    ST_IDENTITY_RECEIVED,
    ST_NODE_PUT,
    ST_REVOKE_PUT,
    ST_QUEUE_COUNT_UPTO,
    ST_QUEUE_ENDED_PUT,
    ST_QUEUE_ENDED_TRIM,
    ST_QUEUE_ENDED_DONE,
    ST_COUNT,
};

static const char *const store_stmt_sql[ST_COUNT] = {
    [ST_SESSION_PUT] = "INSERT INTO sessions(client_id, expiry_s, owner) VALUES(?1, ?2, ?3) "
                       "ON CONFLICT(client_id) DO UPDATE SET expiry_s = excluded.expiry_s, "
                       "owner = excluded.owner",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE client_id = ?1",
    [ST_SESSION_DELETE_SUBS] = "DELETE FROM subscriptions WHERE client_id = ?1",
    [ST_SESSION_DELETE_QUEUE] = "DELETE FROM queue WHERE client_id = ?1 RETURNING msg_id",
    [ST_SESSION_DELETE_QOS2] = "DELETE FROM inbound_qos2 WHERE client_id = ?1",
    [ST_SESSION_DELETE_WILL] = "DELETE FROM wills WHERE client_id = ?1 RETURNING msg_id",
    [ST_SUB_PUT] = "INSERT INTO subscriptions(client_id, filter, options, sub_id) "
                   "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(client_id, filter) DO UPDATE SET "
                   "options = excluded.options, sub_id = excluded.sub_id",
    [ST_SUB_DELETE] = "DELETE FROM subscriptions WHERE client_id = ?1 AND filter = ?2",
    [ST_MSG_PUT] = "INSERT OR IGNORE INTO messages(id, qos, retain, created_ms, expiry_s, "
                   "payload_format, topic, payload, content_type, response_topic, "
                   "correlation_data, user_props, user_prop_count) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_MSG_GC] = "DELETE FROM messages WHERE id = ?1 "
                  "AND NOT EXISTS (SELECT 1 FROM queue WHERE msg_id = ?1) "
                  "AND NOT EXISTS (SELECT 1 FROM retained WHERE msg_id = ?1) "
                  "AND NOT EXISTS (SELECT 1 FROM wills WHERE msg_id = ?1)",
    [ST_QUEUE_PUT] = "INSERT INTO queue(client_id, seq, msg_id, qos, retain, state, packet_id, "
                     "sub_ids, size_bytes) VALUES(?1, ?2, ?3, ?4, ?5, 0, 0, ?6, ?7)",
    [ST_QUEUE_UPDATE] = "UPDATE queue SET state = ?3, packet_id = ?4 "
                        "WHERE client_id = ?1 AND seq = ?2",
    [ST_QUEUE_DELETE] = "DELETE FROM queue WHERE client_id = ?1 AND seq = ?2",
    [ST_QOS2_PUT] = "INSERT OR IGNORE INTO inbound_qos2(client_id, packet_id) VALUES(?1, ?2)",
    [ST_QOS2_DELETE] = "DELETE FROM inbound_qos2 WHERE client_id = ?1 AND packet_id = ?2",
    [ST_RETAINED_GET] = "SELECT msg_id FROM retained WHERE topic = ?1",
    [ST_RETAINED_PUT] = "INSERT INTO retained(topic, msg_id) VALUES(?1, ?2) "
                        "ON CONFLICT(topic) DO UPDATE SET msg_id = excluded.msg_id",
    [ST_RETAINED_DELETE] = "DELETE FROM retained WHERE topic = ?1",
    [ST_WILL_GET] = "SELECT msg_id FROM wills WHERE client_id = ?1",
    [ST_WILL_PUT] = "INSERT INTO wills(client_id, msg_id, delay_s) VALUES(?1, ?2, ?3) "
                    "ON CONFLICT(client_id) DO UPDATE SET msg_id = excluded.msg_id, "
                    "delay_s = excluded.delay_s",
    [ST_WILL_DELETE] = "DELETE FROM wills WHERE client_id = ?1",
    [ST_SUMMARY_ADD] = "INSERT INTO queue_summary(client_id, count, size_bytes, seq_max) "
                       "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(client_id) DO UPDATE SET "
                       "count = count + excluded.count, "
                       "size_bytes = size_bytes + excluded.size_bytes, "
                       "seq_max = max(seq_max, excluded.seq_max)",
    [ST_SUMMARY_DELETE] = "DELETE FROM queue_summary WHERE client_id = ?1",
    [ST_LEDGER_PUT] = "INSERT INTO ledger(idx, link, sender, recipient, seq, position, envelope, "
                      "created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_IDENTITY_SENT] = "INSERT INTO identities(id, last_seq, last_link) VALUES(?1, ?2, ?3) "
                         "ON CONFLICT(id) DO UPDATE SET last_seq = excluded.last_seq, "
                         "last_link = excluded.last_link",
    [ST_IDENTITY_RECEIVED] = "INSERT INTO identities(id, inbox_last) VALUES(?1, ?2) "
                             "ON CONFLICT(id) DO UPDATE SET inbox_last = excluded.inbox_last",
    [ST_NODE_PUT] = "INSERT INTO ledger_nodes(level, idx, hash) VALUES(?1, ?2, ?3)",
    [ST_REVOKE_PUT] = STORE_REVOKE_SQL,
    [ST_QUEUE_COUNT_UPTO] = "SELECT count(*) FROM (SELECT 1 FROM queue WHERE client_id = ?1 "
                            "LIMIT ?2)",
    [ST_QUEUE_ENDED_PUT] = "INSERT INTO queue_ended(client_id, seq_max) SELECT ?1, max(seq) "
                           "FROM queue WHERE client_id = ?1 ON CONFLICT(client_id) DO UPDATE SET "
                           "seq_max = max(seq_max, excluded.seq_max)",
    /* ?1 is bound by delete_returning_gc. */
    [ST_QUEUE_ENDED_TRIM] = "DELETE FROM queue WHERE client_id = ?1 AND seq IN (SELECT seq FROM "
                            "queue WHERE client_id = ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3) "
                            "RETURNING msg_id",
    [ST_QUEUE_ENDED_DONE] = "DELETE FROM queue_ended WHERE client_id = ?1 AND seq_max = ?2 AND "
                            "NOT EXISTS (SELECT 1 FROM queue WHERE client_id = ?1 AND seq <= ?2)",
};

struct store {
    uv_loop_t *loop;
    uv_async_t async;
    sqlite3 *writer; /* storage thread only (after open) */
    sqlite3 *reader; /* loop thread only */
    sqlite3_stmt *stmts[ST_COUNT];
    struct store_data_writer data;     /* writer: typed objects (store_data.c) */
    struct store_events_writer events; /* writer: the event stream (store_events.c) */
    sqlite3_stmt *page_stmt;
    sqlite3_stmt *oldest_stmt; /* reader: the oldest queued row of a client (queue_overflow) */
    sqlite3_stmt *node_stmt;   /* reader: one Merkle node */
    sqlite3_stmt *range_stmt;  /* reader: envelopes by ledger index (auditors' pages) */
    sqlite3_stmt *inbox_stmt;  /* reader: a recipient's envelopes by position (resync) */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    struct store_batch *todo_head, *todo_tail; /* committed by the loop, not yet applied */
    struct store_batch *done_head, *done_tail; /* applied, callbacks not yet run */
    bool stop;
    struct store_batch *open;     /* loop thread: batch being filled */
    size_t pending;               /* loop thread: commits not yet completed */
    uint64_t batches_committed;   /* loop thread: store_commit() calls = the last batch's seq */
    uint64_t batches_completed;   /* loop thread: the seq of the last batch whose callback ran */
    uint64_t batches_applied;     /* storage thread: the seq of the last batch applied */
    bool failed;                  /* storage thread: a transaction failed: so do all later ones */
    bool closed;                  /* loop thread: store_close() ran: no more writes or commits */
    struct store_stats stats;     /* under mutex */
    struct lmq_map *summary;      /* storage thread: this transaction's summary_delta by client */
    uint8_t queue_key[65535 + 8]; /* storage thread: client id + seq of a queue row */
};

static void batch_free(struct store_batch *b)
{
    for (size_t i = 0; i < b->count; i++)
        free(b->recs[i].bytes);
    free(b->recs);
    free(b);
}

/* ---- loop thread: building batches ---- */

/* The most byte slices one record points to (STORE_DATA_VERSION's eight). */
#define STORE_RECORD_SLICES_MAX 8

/* Points slices[] at the byte slices of r; *message at its message pointer (or NULL). */
static size_t record_slices(struct store_record *r, struct lmq_bytes *slices[],
                            const struct store_message ***message)
{
    size_t n = 0;
    *message = NULL;
    switch (r->type) {
    case STORE_SESSION_PUT:
        slices[n++] = &r->u.session_put.client_id;
        slices[n++] = &r->u.session_put.owner;
        break;
    case STORE_SESSION_DELETE:
        slices[n++] = &r->u.session_delete.client_id;
        break;
    case STORE_SUBSCRIPTION_PUT:
        slices[n++] = &r->u.subscription_put.client_id;
        slices[n++] = &r->u.subscription_put.filter;
        break;
    case STORE_SUBSCRIPTION_DELETE:
        slices[n++] = &r->u.subscription_delete.client_id;
        slices[n++] = &r->u.subscription_delete.filter;
        break;
    case STORE_MESSAGE_PUT:
        *message = &r->u.message_put.message;
        break;
    case STORE_QUEUE_PUT:
        slices[n++] = &r->u.queue_put.client_id;
        slices[n++] = &r->u.queue_put.sub_ids;
        break;
    case STORE_QUEUE_UPDATE:
        slices[n++] = &r->u.queue_update.client_id;
        break;
    case STORE_QUEUE_DELETE:
        slices[n++] = &r->u.queue_delete.client_id;
        break;
    case STORE_INBOUND_QOS2_PUT:
        slices[n++] = &r->u.inbound_qos2_put.client_id;
        break;
    case STORE_INBOUND_QOS2_DELETE:
        slices[n++] = &r->u.inbound_qos2_delete.client_id;
        break;
    case STORE_RETAINED_PUT:
        slices[n++] = &r->u.retained_put.topic;
        break;
    case STORE_RETAINED_DELETE:
        slices[n++] = &r->u.retained_delete.topic;
        break;
    case STORE_WILL_PUT:
        slices[n++] = &r->u.will_put.client_id;
        *message = &r->u.will_put.message;
        break;
    case STORE_WILL_DELETE:
        slices[n++] = &r->u.will_delete.client_id;
        break;
    case STORE_LEDGER_APPEND:
        slices[n++] = &r->u.ledger_append.sender;
        slices[n++] = &r->u.ledger_append.recipient;
        slices[n++] = &r->u.ledger_append.link;
        slices[n++] = &r->u.ledger_append.envelope;
        break;
    case STORE_LEDGER_NODE:
        slices[n++] = &r->u.ledger_node.hash;
        break;
    case STORE_TOKEN_REVOKE:
        slices[n++] = &r->u.token_revoke.identity;
        break;
    case STORE_DATA_VERSION:
        slices[n++] = &r->u.data_version.link;
        slices[n++] = &r->u.data_version.permalink;
        slices[n++] = &r->u.data_version.prevlink;
        slices[n++] = &r->u.data_version.model;
        slices[n++] = &r->u.data_version.author;
        slices[n++] = &r->u.data_version.recipient;
        slices[n++] = &r->u.data_version.time;
        slices[n++] = &r->u.data_version.body;
        break;
    case STORE_DATA_INDEX:
        slices[n++] = &r->u.data_index.path;
        break;
    case STORE_EVENT_APPEND:
        slices[n++] = &r->u.event_append.type;
        slices[n++] = &r->u.event_append.data;
        break;
    case STORE_CONSUMER_POSITION:
        slices[n++] = &r->u.consumer_position.consumer;
        break;
    case STORE_CONSUMER_DEAD_PUT:
    case STORE_CONSUMER_DEAD_DELETE:
        slices[n++] = &r->u.consumer_dead.consumer;
        slices[n++] = &r->u.consumer_dead.error;
        break;
    case STORE_JOB_RUN_START:
    case STORE_JOB_RUN_END:
        slices[n++] = &r->u.job_run.job;
        slices[n++] = &r->u.job_run.state;
        slices[n++] = &r->u.job_run.detail;
        break;
    case STORE_CHAIN_HEADER_PUT:
        slices[n++] = &r->u.chain_header.hash;
        slices[n++] = &r->u.chain_header.parent_hash;
        break;
    case STORE_CHAIN_ROLLBACK:
        break;
    case STORE_CHAIN_WATCH_PUT:
    case STORE_CHAIN_WATCH_DELETE:
        slices[n++] = &r->u.chain_watch.identity;
        slices[n++] = &r->u.chain_watch.address;
        slices[n++] = &r->u.chain_watch.topic0;
        slices[n++] = &r->u.chain_watch.abi;
        break;
    case STORE_CHAIN_NOTICE_PUT:
        slices[n++] = &r->u.chain_notice.block_hash;
        slices[n++] = &r->u.chain_notice.identity;
        slices[n++] = &r->u.chain_notice.tx_hash;
        slices[n++] = &r->u.chain_notice.state;
        slices[n++] = &r->u.chain_notice.link;
        break;
    case STORE_SEAL_PUT:
        slices[n++] = &r->u.seal.root;
        slices[n++] = &r->u.seal.checkpoint;
        slices[n++] = &r->u.seal.tx_hash;
        slices[n++] = &r->u.seal.raw;
        slices[n++] = &r->u.seal.state;
        slices[n++] = &r->u.seal.block_hash;
        break;
    case STORE_SEAL_TX_PUT:
        slices[n++] = &r->u.seal_tx.tx_hash;
        slices[n++] = &r->u.seal_tx.raw;
        break;
    case STORE_QUEUE_ENDED_TRIM:
        slices[n++] = &r->u.queue_ended_trim.client_id;
        break;
    case STORE_EVENTS_PRUNE:
        break;
    default:
        LMQ_UNREACHABLE("unknown store record type");
    }
    LMQ_ASSERT(n <= STORE_RECORD_SLICES_MAX);
    LMQ_ASSERT(*message == NULL || **message != NULL);
    return n;
}

static size_t message_bytes(const struct store_message *m)
{
    return m->topic.len + m->payload.len + m->content_type.len + m->response_topic.len +
           m->correlation_data.len + m->user_props.len;
}

static void copy_into(uint8_t **cursor, struct lmq_bytes *b)
{
    if (b->data == NULL)
        return;
    if (b->len > 0)
        memcpy(*cursor, b->data, b->len);
    b->data = *cursor;
    *cursor += b->len;
}

static int owned_record_init(struct owned_record *o, const struct store_record *rec)
{
    o->rec = *rec;
    struct lmq_bytes *slices[STORE_RECORD_SLICES_MAX];
    const struct store_message **message;
    size_t n = record_slices(&o->rec, slices, &message);
    size_t total = message != NULL ? message_bytes(*message) : 0;
    for (size_t i = 0; i < n; i++)
        total += slices[i]->len;
    o->bytes = malloc(total > 0 ? total : 1);
    if (o->bytes == NULL)
        return LMQ_ENOMEM;
    uint8_t *cursor = o->bytes;
    for (size_t i = 0; i < n; i++)
        copy_into(&cursor, slices[i]);
    if (message != NULL) {
        o->msg = **message;
        copy_into(&cursor, &o->msg.topic);
        copy_into(&cursor, &o->msg.payload);
        copy_into(&cursor, &o->msg.content_type);
        copy_into(&cursor, &o->msg.response_topic);
        copy_into(&cursor, &o->msg.correlation_data);
        copy_into(&cursor, &o->msg.user_props);
        *message = &o->msg; /* re-pointed again after the array moves */
    }
    LMQ_ASSERT((size_t)(cursor - o->bytes) == total);
    return LMQ_OK;
}

int store_write(struct store *store, const struct store_record *rec)
{
    LMQ_ASSERT(store != NULL && rec != NULL);
    LMQ_ASSERT(!store->closed);
    LMQ_ASSERT(rec->type >= STORE_SESSION_PUT && rec->type <= STORE_EVENTS_PRUNE);
    if (store->open == NULL) {
        store->open = calloc(1, sizeof(*store->open));
        if (store->open == NULL)
            return LMQ_ENOMEM;
    }
    struct store_batch *b = store->open;
    if (b->count == b->cap) {
        if (b->cap >= STORE_BATCH_RECORDS_MAX)
            return LMQ_ELIMIT;
        size_t cap = b->cap == 0 ? 16 : b->cap * 2;
        struct owned_record *recs = realloc(b->recs, cap * sizeof(*recs));
        if (recs == NULL)
            return LMQ_ENOMEM;
        b->recs = recs;
        b->cap = cap;
    }
    int rc = owned_record_init(&b->recs[b->count], rec);
    if (rc != LMQ_OK)
        return rc;
    b->count++;
    return LMQ_OK;
}

int store_commit(struct store *store, store_commit_cb cb, void *arg)
{
    LMQ_ASSERT(store != NULL && cb != NULL);
    LMQ_ASSERT(!store->closed);
    struct store_batch *b = store->open;
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL)
            return LMQ_ENOMEM;
    }
    store->open = NULL;
    b->cb = cb;
    b->arg = arg;
    /* The records' message pointers point into the (possibly moved) array: fix them. */
    for (size_t i = 0; i < b->count; i++) {
        struct store_record *r = &b->recs[i].rec;
        if (r->type == STORE_MESSAGE_PUT)
            r->u.message_put.message = &b->recs[i].msg;
        else if (r->type == STORE_WILL_PUT)
            r->u.will_put.message = &b->recs[i].msg;
    }
    pthread_mutex_lock(&store->mutex);
    LMQ_ASSERT(!store->stop);
    if (store->todo_tail != NULL)
        store->todo_tail->next = b;
    else
        store->todo_head = b;
    store->todo_tail = b;
    b->seq = ++store->batches_committed; /* under the mutex: the thread reads it */
    pthread_cond_signal(&store->cond);
    pthread_mutex_unlock(&store->mutex);
    store->pending++;
    LMQ_ASSERT(store->pending == store->batches_committed - store->batches_completed);
    return LMQ_OK;
}

static void store_on_async(uv_async_t *async)
{
    struct store *store = async->data;
    pthread_mutex_lock(&store->mutex);
    struct store_batch *done = store->done_head;
    store->done_head = store->done_tail = NULL;
    pthread_mutex_unlock(&store->mutex);
    while (done != NULL) {
        struct store_batch *next = done->next;
        /* Completions in commit order, each once: the contract the broker's acks rely on. */
        LMQ_ASSERT(done->seq == store->batches_completed + 1);
        LMQ_ASSERT(done->status == LMQ_OK || done->status == LMQ_EIO);
        LMQ_ASSERT(store->pending > 0);
        store->pending--;
        store->batches_completed = done->seq;
        LMQ_ASSERT(store->pending == store->batches_committed - store->batches_completed);
        done->cb(done->arg, done->status);
        batch_free(done);
        done = next;
    }
}

/* ---- storage thread: applying batches ---- */

int store_sqlite_bind_bytes(sqlite3_stmt *st, int idx, struct lmq_bytes b)
{
    if (b.data == NULL)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_blob64(st, idx, b.len ? b.data : (const void *)"", b.len, SQLITE_STATIC);
}

int store_sqlite_run(sqlite3_stmt *st)
{
    int rc;
    do {
        rc = sqlite3_step(st);
    } while (rc == SQLITE_ROW);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * The queue summary (count, bytes, seq high-water mark per client) lets a
 * restart read one row per session instead of aggregating every queued row.
 * It changes in the transaction that changes the queue, but not row by row:
 * an UPDATE per queued message would add a B-tree write to every durable
 * QoS 1 delivery. The changes are summed in memory per client id and written
 * as one upsert per client just before COMMIT (summary_flush). Without memory
 * for the map (s->summary == NULL) each change is written at once instead:
 * slower, still right. The map holds at most one entry per client id touched
 * by the transaction, so it is bounded by the number of stored sessions.
 */
struct summary_delta {
    int64_t count;
    int64_t size_bytes;
    uint64_t seq_max;
    bool touched; /* a queue row of this client was written since its last session delete */
};

static int summary_write(struct store *s, struct lmq_bytes client_id, int64_t count,
                         int64_t size_bytes, uint64_t seq_max)
{
    LMQ_ASSERT(client_id.data != NULL);
    LMQ_ASSERT(seq_max <= INT64_MAX);
    sqlite3_stmt *st = s->stmts[ST_SUMMARY_ADD];
    store_sqlite_bind_bytes(st, 1, client_id);
    sqlite3_bind_int64(st, 2, count);
    sqlite3_bind_int64(st, 3, size_bytes);
    sqlite3_bind_int64(st, 4, (int64_t)seq_max);
    return store_sqlite_run(st);
}

/* Adds count rows of size_bytes (negative: removed) and a seq to client_id's summary. */
static int summary_change(struct store *s, struct lmq_bytes client_id, int64_t count,
                          int64_t size_bytes, uint64_t seq)
{
    LMQ_ASSERT(count == 1 || count == -1);
    LMQ_ASSERT(client_id.len <= 65535);
    if (s->summary == NULL)
        return summary_write(s, client_id, count, size_bytes, seq);
    struct summary_delta *d = lmq_map_get(s->summary, client_id.data, client_id.len);
    if (d == NULL) {
        d = calloc(1, sizeof(*d));
        if (d == NULL)
            return summary_write(s, client_id, count, size_bytes, seq);
        if (lmq_map_put(s->summary, client_id.data, client_id.len, d) != LMQ_OK) {
            free(d);
            return summary_write(s, client_id, count, size_bytes, seq);
        }
    }
    d->count += count;
    d->size_bytes += size_bytes;
    d->seq_max = LMQ_MAX(d->seq_max, seq);
    d->touched = true;
    return SQLITE_OK;
}

/* The session's queue is gone: so are its summary and the changes not yet written. */
static int summary_forget(struct store *s, struct lmq_bytes client_id)
{
    LMQ_ASSERT(client_id.data != NULL);
    LMQ_ASSERT(client_id.len <= 65535);
    sqlite3_stmt *st = s->stmts[ST_SUMMARY_DELETE];
    store_sqlite_bind_bytes(st, 1, client_id);
    struct summary_delta *d =
        s->summary ? lmq_map_get(s->summary, client_id.data, client_id.len) : NULL;
    if (d != NULL)
        *d = (struct summary_delta){0};
    return store_sqlite_run(st);
}

struct summary_flush_ctx {
    struct store *store;
    int rc;
};

static bool summary_flush_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    struct summary_flush_ctx *ctx = arg;
    const struct summary_delta *d = value;
    LMQ_ASSERT(d != NULL && ctx->rc == SQLITE_OK);
    /* Written even when count and bytes net to zero: seq_max may have moved. */
    if (d->touched)
        ctx->rc = summary_write(ctx->store, (struct lmq_bytes){key, key_len}, d->count,
                                d->size_bytes, d->seq_max);
    return ctx->rc == SQLITE_OK;
}

static int summary_flush(struct store *s)
{
    struct summary_flush_ctx ctx = {.store = s, .rc = SQLITE_OK};
    if (s->summary != NULL)
        lmq_map_visit(s->summary, summary_flush_one, &ctx);
    return ctx.rc;
}

static bool summary_free_one(void *arg, const uint8_t *key, size_t key_len, void *value)
{
    LMQ_UNUSED(arg);
    LMQ_UNUSED(key);
    LMQ_UNUSED(key_len);
    free(value);
    return true;
}

static void summary_end(struct store *s)
{
    if (s->summary == NULL)
        return;
    lmq_map_visit(s->summary, summary_free_one, NULL);
    lmq_map_destroy(s->summary);
    s->summary = NULL;
}

static int gc_message(struct store *s, int64_t msg_id)
{
    sqlite3_stmt *st = s->stmts[ST_MSG_GC];
    sqlite3_bind_int64(st, 1, msg_id);
    return store_sqlite_run(st);
}

/* Runs a "... RETURNING msg_id" statement bound to client_id and collects the ids for GC. */
static int delete_returning_gc(struct store *s, sqlite3_stmt *st, struct lmq_bytes client_id)
{
    int64_t *ids = NULL;
    size_t count = 0, cap = 0;
    int rc = SQLITE_OK;
    store_sqlite_bind_bytes(st, 1, client_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap == 0 ? 64 : cap * 2;
            int64_t *p = realloc(ids, ncap * sizeof(*p));
            if (p == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            ids = p;
            cap = ncap;
        }
        ids[count++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    rc = (rc == SQLITE_DONE) ? SQLITE_OK : rc;
    for (size_t i = 0; i < count && rc == SQLITE_OK; i++)
        rc = gc_message(s, ids[i]);
    free(ids);
    return rc;
}

/* Reads the msg_id a single-key lookup returns, or 0. */
static int64_t lookup_msg_id(sqlite3_stmt *st, struct lmq_bytes key)
{
    store_sqlite_bind_bytes(st, 1, key);
    int64_t id = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return id;
}

static int apply_message(struct store *s, const struct store_message *m)
{
    sqlite3_stmt *st = s->stmts[ST_MSG_PUT];
    sqlite3_bind_int64(st, 1, (int64_t)m->id);
    sqlite3_bind_int(st, 2, m->qos);
    sqlite3_bind_int(st, 3, m->retain);
    sqlite3_bind_int64(st, 4, m->created_unix_ms);
    if (m->has_expiry)
        sqlite3_bind_int64(st, 5, m->expiry_s);
    if (m->has_payload_format)
        sqlite3_bind_int(st, 6, m->payload_format);
    store_sqlite_bind_bytes(st, 7, m->topic);
    store_sqlite_bind_bytes(
        st, 8, m->payload.data ? m->payload : (struct lmq_bytes){(const uint8_t *)"", 0});
    store_sqlite_bind_bytes(st, 9, m->content_type);
    store_sqlite_bind_bytes(st, 10, m->response_topic);
    store_sqlite_bind_bytes(st, 11, m->correlation_data);
    store_sqlite_bind_bytes(st, 12, m->user_props);
    sqlite3_bind_int64(st, 13, m->user_prop_count);
    return store_sqlite_run(st);
}

/* Whether client_id has more than STORE_QUEUE_END_INLINE_ROWS queue rows (counted up to one
 * more: a bounded read). */
static int session_queue_is_large(struct store *s, struct lmq_bytes client_id, bool *large)
{
    sqlite3_stmt *st = s->stmts[ST_QUEUE_COUNT_UPTO];
    store_sqlite_bind_bytes(st, 1, client_id);
    sqlite3_bind_int64(st, 2, STORE_QUEUE_END_INLINE_ROWS + 1);
    int rc = sqlite3_step(st);
    *large = rc == SQLITE_ROW && sqlite3_column_int64(st, 0) > STORE_QUEUE_END_INLINE_ROWS;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int apply_session_delete(struct store *s, const struct store_rec_session_delete *r)
{
    sqlite3_stmt *plain[] = {s->stmts[ST_SESSION_DELETE], s->stmts[ST_SESSION_DELETE_SUBS],
                             s->stmts[ST_SESSION_DELETE_QOS2]};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(plain); i++) {
        store_sqlite_bind_bytes(plain[i], 1, r->client_id);
        int rc = store_sqlite_run(plain[i]);
        if (rc != SQLITE_OK)
            return rc;
    }
    bool large = false;
    int rc = r->defer_queue ? session_queue_is_large(s, r->client_id, &large) : SQLITE_OK;
    if (rc == SQLITE_OK && large) {
        /* Left to STORE_QUEUE_ENDED_TRIM: one statement over a huge queue would hold up every
         * other commit for as long as it takes. */
        sqlite3_stmt *st = s->stmts[ST_QUEUE_ENDED_PUT];
        store_sqlite_bind_bytes(st, 1, r->client_id);
        rc = store_sqlite_run(st);
    } else if (rc == SQLITE_OK) {
        rc = delete_returning_gc(s, s->stmts[ST_SESSION_DELETE_QUEUE], r->client_id);
    }
    if (rc == SQLITE_OK)
        rc = summary_forget(s, r->client_id);
    if (rc == SQLITE_OK)
        rc = delete_returning_gc(s, s->stmts[ST_SESSION_DELETE_WILL], r->client_id);
    return rc;
}

static int apply_queue_ended_trim(struct store *s, const struct store_rec_queue_ended_trim *r)
{
    LMQ_ASSERT(r->limit > 0 && r->seq_max <= INT64_MAX);
    sqlite3_stmt *st = s->stmts[ST_QUEUE_ENDED_TRIM];
    sqlite3_bind_int64(st, 2, (int64_t)r->seq_max);
    sqlite3_bind_int64(st, 3, r->limit);
    int rc = delete_returning_gc(s, st, r->client_id);
    if (rc != SQLITE_OK)
        return rc;
    st = s->stmts[ST_QUEUE_ENDED_DONE];
    store_sqlite_bind_bytes(st, 1, r->client_id);
    sqlite3_bind_int64(st, 2, (int64_t)r->seq_max);
    return store_sqlite_run(st);
}

static int apply_queue_put(struct store *s, const struct store_rec_queue_put *r)
{
    sqlite3_stmt *st = s->stmts[ST_QUEUE_PUT];
    store_sqlite_bind_bytes(st, 1, r->client_id);
    sqlite3_bind_int64(st, 2, (int64_t)r->seq);
    sqlite3_bind_int64(st, 3, (int64_t)r->msg_id);
    sqlite3_bind_int(st, 4, r->qos);
    sqlite3_bind_int(st, 5, r->retain);
    store_sqlite_bind_bytes(st, 6, r->sub_ids);
    sqlite3_bind_int64(st, 7, (int64_t)r->size_bytes);
    int rc = store_sqlite_run(st);
    /* A failed insert (duplicate key) fails the whole transaction: no summary to undo. */
    return rc == SQLITE_OK ? summary_change(s, r->client_id, 1, (int64_t)r->size_bytes, r->seq)
                           : rc;
}

static int apply_queue_update(struct store *s, const struct store_rec_queue_update *r)
{
    sqlite3_stmt *st = s->stmts[ST_QUEUE_UPDATE];
    store_sqlite_bind_bytes(st, 1, r->client_id);
    sqlite3_bind_int64(st, 2, (int64_t)r->seq);
    sqlite3_bind_int(st, 3, r->state);
    sqlite3_bind_int(st, 4, r->packet_id);
    return store_sqlite_run(st);
}

static int apply_queue_delete(struct store *s, const struct store_rec_queue_delete *r)
{
    sqlite3_stmt *st = s->stmts[ST_QUEUE_DELETE];
    store_sqlite_bind_bytes(st, 1, r->client_id);
    sqlite3_bind_int64(st, 2, (int64_t)r->seq);
    int rc = store_sqlite_run(st);
    /*
     * The record's size is the one its QUEUE_PUT had (both are the message's size), and
     * sqlite3_changes() says whether the row was there. Reading the size back with
     * DELETE ... RETURNING instead costs an ephemeral table per delete: measurably slower.
     */
    if (rc == SQLITE_OK && sqlite3_changes(s->writer) == 1)
        rc = summary_change(s, r->client_id, -1, -(int64_t)r->size_bytes, 0);
    return rc == SQLITE_OK ? gc_message(s, (int64_t)r->msg_id) : rc;
}

/* A retained message or will replaces (or removes) the one stored under its key: the message
 * the old row referred to is collected once nothing else refers to it. */
static int apply_keyed_replace(struct store *s, const struct store_record *r)
{
    bool retained = r->type == STORE_RETAINED_PUT || r->type == STORE_RETAINED_DELETE;
    struct lmq_bytes key;
    switch (r->type) {
    case STORE_RETAINED_PUT:
        key = r->u.retained_put.topic;
        break;
    case STORE_RETAINED_DELETE:
        key = r->u.retained_delete.topic;
        break;
    case STORE_WILL_PUT:
        key = r->u.will_put.client_id;
        break;
    default:
        LMQ_ASSERT(r->type == STORE_WILL_DELETE);
        key = r->u.will_delete.client_id;
        break;
    }
    int64_t old = lookup_msg_id(s->stmts[retained ? ST_RETAINED_GET : ST_WILL_GET], key);
    int rc = SQLITE_OK;
    if (r->type == STORE_WILL_PUT) {
        LMQ_ASSERT(r->u.will_put.message != NULL);
        rc = apply_message(s, r->u.will_put.message);
    }
    sqlite3_stmt *st;
    switch (r->type) {
    case STORE_RETAINED_PUT:
        st = s->stmts[ST_RETAINED_PUT];
        sqlite3_bind_int64(st, 2, (int64_t)r->u.retained_put.msg_id);
        break;
    case STORE_RETAINED_DELETE:
        st = s->stmts[ST_RETAINED_DELETE];
        break;
    case STORE_WILL_PUT:
        st = s->stmts[ST_WILL_PUT];
        sqlite3_bind_int64(st, 2, (int64_t)r->u.will_put.message->id);
        sqlite3_bind_int64(st, 3, r->u.will_put.delay_s);
        break;
    default:
        st = s->stmts[ST_WILL_DELETE];
        break;
    }
    store_sqlite_bind_bytes(st, 1, key);
    if (rc == SQLITE_OK)
        rc = store_sqlite_run(st);
    else
        sqlite3_reset(st), sqlite3_clear_bindings(st);
    if (rc == SQLITE_OK && old != 0)
        rc = gc_message(s, old);
    return rc;
}

/* The envelope row, then the sender's chain head and the recipient's inbox counter: the
 * unique indexes (link, sender+seq, recipient+position) refuse a duplicate, failing the
 * transaction (fail stop) rather than storing a fork. */
static int apply_ledger_append(struct store *s, const struct store_rec_ledger_append *r)
{
    LMQ_ASSERT(r->envelope.len > 0);
    sqlite3_stmt *st = s->stmts[ST_LEDGER_PUT];
    sqlite3_bind_int64(st, 1, (int64_t)r->index);
    store_sqlite_bind_bytes(st, 2, r->link);
    store_sqlite_bind_bytes(st, 3, r->sender);
    store_sqlite_bind_bytes(st, 4, r->recipient);
    sqlite3_bind_int64(st, 5, (int64_t)r->seq);
    sqlite3_bind_int64(st, 6, (int64_t)r->position);
    store_sqlite_bind_bytes(st, 7, r->envelope);
    sqlite3_bind_int64(st, 8, r->created_unix_ms);
    int rc = store_sqlite_run(st);
    if (rc != SQLITE_OK)
        return rc;
    st = s->stmts[ST_IDENTITY_SENT];
    store_sqlite_bind_bytes(st, 1, r->sender);
    sqlite3_bind_int64(st, 2, (int64_t)r->seq);
    store_sqlite_bind_bytes(st, 3, r->link);
    rc = store_sqlite_run(st);
    if (rc != SQLITE_OK)
        return rc;
    st = s->stmts[ST_IDENTITY_RECEIVED];
    store_sqlite_bind_bytes(st, 1, r->recipient);
    sqlite3_bind_int64(st, 2, (int64_t)r->position);
    return store_sqlite_run(st);
}

static int apply_record(struct store *s, const struct store_record *r)
{
    sqlite3_stmt *st;
    switch (r->type) {
    case STORE_SESSION_PUT:
        st = s->stmts[ST_SESSION_PUT];
        store_sqlite_bind_bytes(st, 1, r->u.session_put.client_id);
        sqlite3_bind_int64(st, 2, r->u.session_put.expiry_s);
        store_sqlite_bind_bytes(st, 3,
                                r->u.session_put.owner.data != NULL
                                    ? r->u.session_put.owner
                                    : (struct lmq_bytes){(const uint8_t *)"", 0});
        return store_sqlite_run(st);
    case STORE_LEDGER_APPEND:
        return apply_ledger_append(s, &r->u.ledger_append);
    case STORE_DATA_VERSION:
        return store_data_apply_version(&s->data, &r->u.data_version);
    case STORE_DATA_INDEX:
        return store_data_apply_index(s->writer, &r->u.data_index);
    case STORE_EVENT_APPEND:
    case STORE_CONSUMER_POSITION:
    case STORE_CONSUMER_DEAD_PUT:
    case STORE_CONSUMER_DEAD_DELETE:
    case STORE_EVENTS_PRUNE:
        return store_events_apply(&s->events, r);
    case STORE_QUEUE_ENDED_TRIM:
        return apply_queue_ended_trim(s, &r->u.queue_ended_trim);
    case STORE_JOB_RUN_START:
    case STORE_JOB_RUN_END:
        return store_jobs_apply_run(s->writer, r->type == STORE_JOB_RUN_START, &r->u.job_run);
    case STORE_CHAIN_HEADER_PUT:
    case STORE_CHAIN_ROLLBACK:
    case STORE_CHAIN_WATCH_PUT:
    case STORE_CHAIN_WATCH_DELETE:
    case STORE_CHAIN_NOTICE_PUT:
    case STORE_SEAL_PUT:
    case STORE_SEAL_TX_PUT:
        return store_chain_apply(s->writer, r);
    case STORE_TOKEN_REVOKE:
        st = s->stmts[ST_REVOKE_PUT];
        LMQ_ASSERT(r->u.token_revoke.identity.len > 0);
        store_sqlite_bind_bytes(st, 1, r->u.token_revoke.identity);
        sqlite3_bind_int64(st, 2, r->u.token_revoke.revoked_before_s);
        return store_sqlite_run(st);
    case STORE_LEDGER_NODE:
        st = s->stmts[ST_NODE_PUT];
        LMQ_ASSERT(r->u.ledger_node.hash.len == 32);
        sqlite3_bind_int64(st, 1, r->u.ledger_node.level);
        sqlite3_bind_int64(st, 2, (int64_t)r->u.ledger_node.index);
        store_sqlite_bind_bytes(st, 3, r->u.ledger_node.hash);
        return store_sqlite_run(
            st); /* a second node at the same place fails the commit: no rewrites */
    case STORE_SESSION_DELETE:
        return apply_session_delete(s, &r->u.session_delete);
    case STORE_SUBSCRIPTION_PUT:
        st = s->stmts[ST_SUB_PUT];
        store_sqlite_bind_bytes(st, 1, r->u.subscription_put.client_id);
        store_sqlite_bind_bytes(st, 2, r->u.subscription_put.filter);
        sqlite3_bind_int(st, 3, r->u.subscription_put.options);
        sqlite3_bind_int64(st, 4, r->u.subscription_put.sub_id);
        return store_sqlite_run(st);
    case STORE_SUBSCRIPTION_DELETE:
        st = s->stmts[ST_SUB_DELETE];
        store_sqlite_bind_bytes(st, 1, r->u.subscription_delete.client_id);
        store_sqlite_bind_bytes(st, 2, r->u.subscription_delete.filter);
        return store_sqlite_run(st);
    case STORE_MESSAGE_PUT:
        return apply_message(s, r->u.message_put.message);
    case STORE_QUEUE_PUT:
        return apply_queue_put(s, &r->u.queue_put);
    case STORE_QUEUE_UPDATE:
        return apply_queue_update(s, &r->u.queue_update);
    case STORE_QUEUE_DELETE:
        return apply_queue_delete(s, &r->u.queue_delete);
    case STORE_INBOUND_QOS2_PUT:
        st = s->stmts[ST_QOS2_PUT];
        store_sqlite_bind_bytes(st, 1, r->u.inbound_qos2_put.client_id);
        sqlite3_bind_int(st, 2, r->u.inbound_qos2_put.packet_id);
        return store_sqlite_run(st);
    case STORE_INBOUND_QOS2_DELETE:
        st = s->stmts[ST_QOS2_DELETE];
        store_sqlite_bind_bytes(st, 1, r->u.inbound_qos2_delete.client_id);
        sqlite3_bind_int(st, 2, r->u.inbound_qos2_delete.packet_id);
        return store_sqlite_run(st);
    case STORE_RETAINED_PUT:
    case STORE_RETAINED_DELETE:
    case STORE_WILL_PUT:
    case STORE_WILL_DELETE:
        return apply_keyed_replace(s, r);
    }
    LMQ_UNREACHABLE("unknown store record type");
    return SQLITE_INTERNAL;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const uint64_t store_commit_bucket_le_us[STORE_COMMIT_BUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

static void stats_add_commit(struct store_stats *st, uint64_t us, size_t batches, size_t records)
{
    st->commits++;
    st->batches += batches;
    st->records_written += records;
    st->commit_us_total += us;
    if (us > st->commit_us_max)
        st->commit_us_max = us;
    unsigned bucket = 0;
    while (bucket < 31 && (UINT64_C(1) << (bucket + 1)) <= us)
        bucket++;
    st->commit_us_hist[bucket]++;
    for (unsigned i = 0; i < STORE_COMMIT_BUCKETS; i++) {
        if (us <= store_commit_bucket_le_us[i]) {
            st->commit_le_hist[i]++;
            break;
        }
    }
}

/* The key of a queue row (client id + seq) in s->queue_key; returns its length. */
static size_t queue_key(struct store *s, struct lmq_bytes client_id, uint64_t seq)
{
    LMQ_ASSERT(client_id.len <= 65535);
    if (client_id.len > 0)
        memcpy(s->queue_key, client_id.data, client_id.len);
    memcpy(s->queue_key + client_id.len, &seq, sizeof(seq));
    return client_id.len + sizeof(seq);
}

/*
 * The queue rows this transaction deletes. A state update of such a row
 * (delivery sent, then acknowledged before this commit began) changes
 * nothing the transaction leaves behind, so it is skipped: under load the
 * send and its acknowledgement often share a commit. NULL when there are
 * none (or no memory: then nothing is skipped).
 */
static struct lmq_map *store_collect_deletes(struct store *s, struct store_batch *chain)
{
    struct lmq_map *deletes = NULL;
    for (struct store_batch *b = chain; b != NULL; b = b->next) {
        for (size_t i = 0; i < b->count; i++) {
            const struct store_record *r = &b->recs[i].rec;
            if (r->type != STORE_QUEUE_DELETE)
                continue;
            if (deletes == NULL && lmq_map_create(&deletes) != LMQ_OK)
                return NULL;
            size_t key_len = queue_key(s, r->u.queue_delete.client_id, r->u.queue_delete.seq);
            if (lmq_map_put(deletes, s->queue_key, key_len, deletes) != LMQ_OK) {
                lmq_map_destroy(deletes);
                return NULL;
            }
        }
    }
    return deletes;
}

/* Applies a chain of batches in one transaction. Returns 0 or LMQ_EIO. */
static int store_apply_chain(struct store *s, struct store_batch *chain, size_t *records,
                             size_t *skipped)
{
    struct lmq_map *deletes = store_collect_deletes(s, chain);
    LMQ_ASSERT(s->summary == NULL);
    if (lmq_map_create(&s->summary) != LMQ_OK)
        s->summary = NULL; /* no memory: summary changes are written one by one */
    *skipped = 0;
    int rc = sqlite3_exec(s->writer, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    *records = 0;
    for (struct store_batch *b = chain; b != NULL && rc == SQLITE_OK; b = b->next) {
        for (size_t i = 0; i < b->count && rc == SQLITE_OK; i++) {
            const struct store_record *r = &b->recs[i].rec;
            if (r->type == STORE_QUEUE_UPDATE && deletes != NULL &&
                lmq_map_get(deletes, s->queue_key,
                            queue_key(s, r->u.queue_update.client_id, r->u.queue_update.seq)) !=
                    NULL) {
                (*skipped)++;
                continue;
            }
            rc = apply_record(s, r);
        }
        *records += b->count;
    }
    lmq_map_destroy(deletes);
    if (rc == SQLITE_OK)
        rc = summary_flush(s);
    summary_end(s);
    store_fault_before_commit();
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->writer, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        struct lmq_log_line line;
        if (lmq_log_begin(&line, LMQ_LOG_ERROR, "store_commit_failed")) {
            lmq_log_str(&line, "sqlite", sqlite3_errmsg(s->writer));
            lmq_log_end(&line);
        }
        sqlite3_exec(s->writer, "ROLLBACK", NULL, NULL, NULL);
        return LMQ_EIO;
    }
    return LMQ_OK;
}

static void *store_thread_main(void *arg)
{
    struct store *s = arg;
    pthread_mutex_lock(&s->mutex);
    for (;;) {
        while (s->todo_head == NULL && !s->stop)
            pthread_cond_wait(&s->cond, &s->mutex);
        if (s->todo_head == NULL && s->stop)
            break;
        /* Group commit: everything queued so far goes into one transaction. */
        struct store_batch *chain = s->todo_head;
        s->todo_head = s->todo_tail = NULL;
        pthread_mutex_unlock(&s->mutex);

        uint64_t start = now_us();
        size_t records = 0, batches = 0, skipped = 0;
        /* After a failure nothing more is applied: a later batch reported durable would imply
         * the failed one is (completions promise everything committed before them). */
        int status = s->failed ? LMQ_EIO : store_apply_chain(s, chain, &records, &skipped);
        s->failed = status != LMQ_OK;
        uint64_t took = now_us() - start;
        struct store_batch *last = chain;
        for (struct store_batch *b = chain; b != NULL; b = b->next) {
            /* Batches applied in commit order, none skipped or repeated. */
            LMQ_ASSERT(b->seq == s->batches_applied + 1);
            s->batches_applied = b->seq;
            b->status = status;
            batches++;
            last = b;
        }
        LMQ_ASSERT(batches > 0 && skipped <= records);

        pthread_mutex_lock(&s->mutex);
        stats_add_commit(&s->stats, took, batches, records);
        s->stats.records_skipped += skipped;
        if (s->done_tail != NULL)
            s->done_tail->next = chain;
        else
            s->done_head = chain;
        s->done_tail = last;
        uv_async_send(&s->async);
    }
    pthread_mutex_unlock(&s->mutex);
    return NULL;
}

/* ---- loop thread: reading (recovery and paging) ---- */

struct lmq_bytes store_sqlite_column_bytes(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return (struct lmq_bytes){NULL, 0};
    const uint8_t *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    return (struct lmq_bytes){p ? p : (const uint8_t *)"", n};
}

/* Reads a message from columns first..first+12 (the messages table's column order). */
static void column_message(sqlite3_stmt *st, int first, struct store_message *m)
{
    memset(m, 0, sizeof(*m));
    m->id = (uint64_t)sqlite3_column_int64(st, first);
    m->qos = (uint8_t)sqlite3_column_int(st, first + 1);
    m->retain = sqlite3_column_int(st, first + 2) != 0;
    m->created_unix_ms = sqlite3_column_int64(st, first + 3);
    m->has_expiry = sqlite3_column_type(st, first + 4) != SQLITE_NULL;
    m->expiry_s = (uint32_t)sqlite3_column_int64(st, first + 4);
    m->has_payload_format = sqlite3_column_type(st, first + 5) != SQLITE_NULL;
    m->payload_format = (uint8_t)sqlite3_column_int(st, first + 5);
    m->topic = store_sqlite_column_bytes(st, first + 6);
    m->payload = store_sqlite_column_bytes(st, first + 7);
    m->content_type = store_sqlite_column_bytes(st, first + 8);
    m->response_topic = store_sqlite_column_bytes(st, first + 9);
    m->correlation_data = store_sqlite_column_bytes(st, first + 10);
    m->user_props = store_sqlite_column_bytes(st, first + 11);
    m->user_prop_count = (uint32_t)sqlite3_column_int64(st, first + 12);
}

#define STORE_MESSAGE_COLUMNS                                                                      \
    "m.id, m.qos, m.retain, m.created_ms, m.expiry_s, m.payload_format, m.topic, m.payload, "      \
    "m.content_type, m.response_topic, m.correlation_data, m.user_props, m.user_prop_count"

/* Load order matters: sessions first, wills last (publishing one routes to the others). */
enum load_kind {
    LOAD_SESSION,
    LOAD_SUB,
    LOAD_QOS2,
    LOAD_RETAINED,
    LOAD_QUEUE,
    LOAD_QUEUE_ENDED,
    LOAD_IDENTITY,
    LOAD_WILL
};

static const char *const load_sql[] = {
    [LOAD_SESSION] = "SELECT client_id, expiry_s, owner FROM sessions",
    [LOAD_IDENTITY] = "SELECT id, last_seq, last_link, inbox_last FROM identities",
    [LOAD_WILL] = "SELECT w.client_id, w.delay_s, " STORE_MESSAGE_COLUMNS
                  " FROM wills w JOIN messages m ON m.id = w.msg_id",
    [LOAD_SUB] = "SELECT client_id, filter, options, sub_id FROM subscriptions",
    [LOAD_QOS2] = "SELECT client_id, packet_id FROM inbound_qos2",
    [LOAD_RETAINED] = "SELECT r.topic, " STORE_MESSAGE_COLUMNS
                      " FROM retained r JOIN messages m ON m.id = r.msg_id",
    /* Kept per commit (summary_flush): start-up does not scale with the queued rows. */
    [LOAD_QUEUE] = "SELECT client_id, count, size_bytes, seq_max FROM queue_summary "
                   "WHERE count > 0",
    [LOAD_QUEUE_ENDED] = "SELECT client_id, seq_max FROM queue_ended",
};

static int load_row(const struct store_loader *l, enum load_kind kind, sqlite3_stmt *st)
{
    struct store_message m;
    switch (kind) {
    case LOAD_SESSION:
        return l->session(l->ctx, store_sqlite_column_bytes(st, 0),
                          (uint32_t)sqlite3_column_int64(st, 1), store_sqlite_column_bytes(st, 2));
    case LOAD_IDENTITY:
        return l->identity(l->ctx, store_sqlite_column_bytes(st, 0),
                           (uint64_t)sqlite3_column_int64(st, 1), store_sqlite_column_bytes(st, 2),
                           (uint64_t)sqlite3_column_int64(st, 3));
    case LOAD_WILL:
        column_message(st, 2, &m);
        return l->will(l->ctx, store_sqlite_column_bytes(st, 0), &m,
                       (uint32_t)sqlite3_column_int64(st, 1));
    case LOAD_SUB:
        return l->subscription(l->ctx, store_sqlite_column_bytes(st, 0),
                               store_sqlite_column_bytes(st, 1), (uint8_t)sqlite3_column_int(st, 2),
                               (uint32_t)sqlite3_column_int64(st, 3));
    case LOAD_QOS2:
        return l->inbound_qos2(l->ctx, store_sqlite_column_bytes(st, 0),
                               (uint16_t)sqlite3_column_int(st, 1));
    case LOAD_RETAINED:
        column_message(st, 1, &m);
        return l->retained(l->ctx, &m);
    case LOAD_QUEUE_ENDED:
        return l->queue_ended == NULL ? 0
                                      : l->queue_ended(l->ctx, store_sqlite_column_bytes(st, 0),
                                                       (uint64_t)sqlite3_column_int64(st, 1));
    case LOAD_QUEUE:
        return l->queue_summary(
            l->ctx, store_sqlite_column_bytes(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
            (uint64_t)sqlite3_column_int64(st, 2), (uint64_t)sqlite3_column_int64(st, 3));
    }
    return -1;
}

int store_load(struct store *store, const struct store_loader *loader, uint64_t *max_msg_id)
{
    LMQ_ASSERT(store != NULL && loader != NULL && max_msg_id != NULL);
    int result = LMQ_OK;
    /* Sessions first: every other kind refers to one. */
    for (size_t k = 0; k < LMQ_ARRAY_LEN(load_sql) && result == LMQ_OK; k++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(store->reader, load_sql[k], -1, &st, NULL) != SQLITE_OK)
            return LMQ_EIO;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (load_row(loader, (enum load_kind)k, st) != 0) {
                result = LMQ_EINVAL;
                break;
            }
        }
        if (result == LMQ_OK && rc != SQLITE_DONE)
            result = LMQ_EIO;
        sqlite3_finalize(st);
    }
    sqlite3_stmt *st = NULL;
    *max_msg_id = 0;
    if (result == LMQ_OK &&
        sqlite3_prepare_v2(store->reader, "SELECT max(id) FROM messages", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        *max_msg_id = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return result;
}

int store_queue_page(struct store *store, struct lmq_bytes client_id, uint64_t after_seq,
                     size_t limit, int (*row)(void *ctx, const struct store_queue_row *r),
                     void *ctx, size_t *count)
{
    LMQ_ASSERT(store != NULL && row != NULL && count != NULL);
    LMQ_ASSERT(limit > 0 && limit <= INT32_MAX);
    sqlite3_stmt *st = store->page_stmt;
    *count = 0;
    store_sqlite_bind_bytes(st, 1, client_id);
    sqlite3_bind_int64(st, 2, (int64_t)after_seq);
    sqlite3_bind_int64(st, 3, (int64_t)limit);
    int rc, result = LMQ_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_message m;
        struct store_queue_row r = {
            .seq = (uint64_t)sqlite3_column_int64(st, 0),
            .qos = (uint8_t)sqlite3_column_int(st, 1),
            .retain = sqlite3_column_int(st, 2) != 0,
            .state = (uint8_t)sqlite3_column_int(st, 3),
            .packet_id = (uint16_t)sqlite3_column_int(st, 4),
            .sub_ids = store_sqlite_column_bytes(st, 5),
            .size_bytes = (uint64_t)sqlite3_column_int64(st, 6),
            .message = &m,
        };
        column_message(st, 7, &m);
        (*count)++;
        if (row(ctx, &r) != 0) {
            result = LMQ_EINVAL;
            break;
        }
    }
    if (result == LMQ_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        result = LMQ_EIO;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return result;
}

int store_queue_oldest(struct store *store, struct lmq_bytes client_id, uint64_t after_seq,
                       struct store_queue_head *out, bool *found)
{
    LMQ_ASSERT(store != NULL && out != NULL && found != NULL);
    sqlite3_stmt *st = store->oldest_stmt;
    *found = false;
    store_sqlite_bind_bytes(st, 1, client_id);
    sqlite3_bind_int64(st, 2, (int64_t)after_seq);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = (struct store_queue_head){
            .seq = (uint64_t)sqlite3_column_int64(st, 0),
            .msg_id = (uint64_t)sqlite3_column_int64(st, 1),
            .size_bytes = (uint64_t)sqlite3_column_int64(st, 2),
            .has_expiry = sqlite3_column_type(st, 3) != SQLITE_NULL,
            .expires_unix_ms = sqlite3_column_int64(st, 3),
        };
        *found = true;
        LMQ_ASSERT(out->seq > after_seq);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? LMQ_OK : LMQ_EIO;
}

static void column_ledger_row(sqlite3_stmt *st, struct store_ledger_row *r)
{
    *r = (struct store_ledger_row){
        .index = (uint64_t)sqlite3_column_int64(st, 0),
        .link = store_sqlite_column_bytes(st, 1),
        .sender = store_sqlite_column_bytes(st, 2),
        .recipient = store_sqlite_column_bytes(st, 3),
        .seq = (uint64_t)sqlite3_column_int64(st, 4),
        .position = (uint64_t)sqlite3_column_int64(st, 5),
        .envelope = store_sqlite_column_bytes(st, 6),
        .created_unix_ms = sqlite3_column_int64(st, 7),
    };
}

#define STORE_LEDGER_COLUMNS "idx, link, sender, recipient, seq, position, envelope, created_ms"

int store_ledger_size(struct store *store, uint64_t *size)
{
    LMQ_ASSERT(store != NULL && size != NULL);
    sqlite3_stmt *st = NULL;
    *size = 0;
    int rc = sqlite3_prepare_v2(store->reader, "SELECT coalesce(max(idx) + 1, 0) FROM ledger", -1,
                                &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        *size = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = SQLITE_ERROR;
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? LMQ_OK : LMQ_EIO;
}

/* Runs a prepared ledger query (bindings done), calling row() per result. The caller resets
 * (cached statement) or finalizes it. */
int store_sqlite_rows(sqlite3_stmt *st, size_t limit, int (*each)(void *ctx, sqlite3_stmt *st),
                      void *ctx, size_t *count)
{
    int rc = SQLITE_DONE;
    *count = 0;
    while (*count < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        (*count)++;
        if (each(ctx, st) != 0)
            return LMQ_EINVAL;
    }
    return *count < limit && rc != SQLITE_DONE ? LMQ_EIO : LMQ_OK;
}

struct ledger_rows {
    int (*row)(void *ctx, const struct store_ledger_row *r);
    void *ctx;
};

static int ledger_row(void *ctx, sqlite3_stmt *st)
{
    struct ledger_rows *lr = ctx;
    struct store_ledger_row r;
    column_ledger_row(st, &r);
    return lr->row(lr->ctx, &r);
}

static int ledger_query(sqlite3_stmt *st, size_t limit,
                        int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                        size_t *count)
{
    struct ledger_rows lr = {.row = row, .ctx = ctx};
    return store_sqlite_rows(st, limit, ledger_row, &lr, count);
}

/* Runs a cached ledger query and leaves it reset: no read transaction stays open. */
static int ledger_query_cached(sqlite3_stmt *st, size_t limit,
                               int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                               size_t *count)
{
    int rc = ledger_query(st, limit, row, ctx, count);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int store_ledger_find(struct store *store, struct lmq_bytes sender, uint64_t seq,
                      int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                      bool *found)
{
    LMQ_ASSERT(store != NULL && row != NULL && found != NULL);
    sqlite3_stmt *st = NULL;
    *found = false;
    if (sqlite3_prepare_v2(store->reader,
                           "SELECT " STORE_LEDGER_COLUMNS
                           " FROM ledger WHERE sender = ?1 AND seq = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    store_sqlite_bind_bytes(st, 1, sender);
    sqlite3_bind_int64(st, 2, (int64_t)seq);
    size_t count = 0;
    int rc = ledger_query(st, 1, row, ctx, &count);
    sqlite3_finalize(st);
    *found = count == 1;
    return rc;
}

int store_ledger_node(struct store *store, uint32_t level, uint64_t index, uint8_t hash[32])
{
    LMQ_ASSERT(store != NULL && hash != NULL);
    sqlite3_stmt *st = store->node_stmt;
    sqlite3_bind_int64(st, 1, level);
    sqlite3_bind_int64(st, 2, (int64_t)index);
    int rc = sqlite3_step(st);
    int result = LMQ_ENOTFOUND;
    if (rc == SQLITE_ROW) {
        struct lmq_bytes h = store_sqlite_column_bytes(st, 0);
        result = h.len == 32 ? LMQ_OK : LMQ_EIO;
        if (result == LMQ_OK)
            memcpy(hash, h.data, 32);
    } else if (rc != SQLITE_DONE) {
        result = LMQ_EIO;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return result;
}

int store_ledger_range(struct store *store, uint64_t start, size_t limit,
                       int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                       size_t *count)
{
    LMQ_ASSERT(store != NULL && row != NULL && count != NULL);
    LMQ_ASSERT(limit > 0 && limit <= INT32_MAX);
    sqlite3_stmt *st = store->range_stmt;
    LMQ_ASSERT(!sqlite3_stmt_busy(st)); /* row() must not read the store again */
    *count = 0;
    sqlite3_bind_int64(st, 1, (int64_t)start);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    return ledger_query_cached(st, limit, row, ctx, count);
}

int store_ledger_links(struct store *store, uint64_t start, size_t limit,
                       int (*leaf)(void *ctx, uint64_t index, struct lmq_bytes link), void *ctx,
                       size_t *count)
{
    LMQ_ASSERT(store != NULL && leaf != NULL && count != NULL);
    LMQ_ASSERT(limit > 0 && limit <= INT32_MAX);
    sqlite3_stmt *st = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(store->reader,
                           "SELECT idx, link FROM ledger WHERE idx >= ?1 ORDER BY idx LIMIT ?2", -1,
                           &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)start);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    int rc = SQLITE_DONE, result = LMQ_OK;
    while (*count < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        (*count)++;
        if (leaf(ctx, (uint64_t)sqlite3_column_int64(st, 0), store_sqlite_column_bytes(st, 1)) !=
            0) {
            result = LMQ_EINVAL;
            break;
        }
    }
    if (result == LMQ_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        result = LMQ_EIO;
    sqlite3_finalize(st);
    return result;
}

/*
 * A party's envelopes come in two streams, each in index order: those it sent (by seq, which
 * grows with the index along its chain) and those it received (by inbox position, likewise).
 * Per stream: the largest key, the index at the first key >= a value, and the rows from a key.
 */
enum { LEDGER_STREAM_SENT = 0, LEDGER_STREAM_RECEIVED = 1, LEDGER_STREAMS = 2 };
static const char *const ledger_stream_sql[LEDGER_STREAMS][3] = {
    {"SELECT seq FROM ledger WHERE sender = ?1 ORDER BY seq DESC LIMIT 1",
     "SELECT idx FROM ledger WHERE sender = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
     "SELECT " STORE_LEDGER_COLUMNS " FROM ledger WHERE sender = ?1 AND seq >= ?2 "
     "ORDER BY seq LIMIT ?3"},
    {"SELECT position FROM ledger WHERE recipient = ?1 ORDER BY position DESC LIMIT 1",
     "SELECT idx FROM ledger WHERE recipient = ?1 AND position >= ?2 ORDER BY position LIMIT 1",
     "SELECT " STORE_LEDGER_COLUMNS " FROM ledger WHERE recipient = ?1 AND position >= ?2 "
     "ORDER BY position LIMIT ?3"},
};
/* Probes of one binary search: one per bit of a 64-bit key. */
#define STORE_STREAM_SEEK_STEPS_MAX 64

struct ledger_stream {
    sqlite3_stmt *st;
    bool has_row;
    struct store_ledger_row row;
};

/* Runs a one-integer query (bindings: party, then value when has_value). Row absent: *found. */
static int ledger_stream_int(sqlite3_stmt *st, struct lmq_bytes party, bool has_value,
                             uint64_t value, bool *found, uint64_t *out)
{
    store_sqlite_bind_bytes(st, 1, party);
    if (has_value)
        sqlite3_bind_int64(st, 2, (int64_t)value);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? LMQ_OK : LMQ_EIO;
}

/* The smallest key of the stream whose envelope has index >= start, or one past its largest:
 * a binary search, since keys and indexes grow together. */
static int ledger_stream_seek(struct store *store, int which, struct lmq_bytes party,
                              uint64_t start, uint64_t *key)
{
    sqlite3_stmt *max_st = NULL, *probe = NULL;
    int rc = LMQ_EIO;
    uint64_t lo = 0, hi = 0, idx = 0;
    bool found = false;
    if (sqlite3_prepare_v2(store->reader, ledger_stream_sql[which][0], -1, &max_st, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(store->reader, ledger_stream_sql[which][1], -1, &probe, NULL) !=
            SQLITE_OK ||
        ledger_stream_int(max_st, party, false, 0, &found, &hi) != LMQ_OK || hi >= INT64_MAX)
        goto out;
    hi = found ? hi + 1 : 0; /* past the largest key: nothing there, so it qualifies */
    for (int step = 0; step < STORE_STREAM_SEEK_STEPS_MAX && lo < hi; step++) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ledger_stream_int(probe, party, true, mid, &found, &idx) != LMQ_OK)
            goto out;
        if (!found || idx >= start)
            hi = mid;
        else
            lo = mid + 1;
    }
    LMQ_ASSERT(lo == hi);
    *key = lo;
    rc = LMQ_OK;
out:
    sqlite3_finalize(max_st);
    sqlite3_finalize(probe);
    return rc;
}

/* Steps the stream to its next row; a row whose index does not grow means a corrupt store. */
static int ledger_stream_next(struct ledger_stream *s)
{
    uint64_t prev = s->row.index;
    bool had = s->has_row;
    int rc = sqlite3_step(s->st);
    s->has_row = rc == SQLITE_ROW;
    if (s->has_row)
        column_ledger_row(s->st, &s->row);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return LMQ_EIO;
    return s->has_row && had && s->row.index <= prev ? LMQ_EIO : LMQ_OK;
}

static int ledger_stream_open(struct store *store, int which, struct lmq_bytes party,
                              uint64_t start, size_t limit, struct ledger_stream *s)
{
    uint64_t key = 0;
    int rc = ledger_stream_seek(store, which, party, start, &key);
    if (rc != LMQ_OK)
        return rc;
    if (sqlite3_prepare_v2(store->reader, ledger_stream_sql[which][2], -1, &s->st, NULL) !=
        SQLITE_OK)
        return LMQ_EIO;
    store_sqlite_bind_bytes(s->st, 1, party);
    sqlite3_bind_int64(s->st, 2, (int64_t)key);
    sqlite3_bind_int64(s->st, 3, (int64_t)limit);
    return ledger_stream_next(s);
}

int store_ledger_party_range(struct store *store, struct lmq_bytes party, uint64_t start,
                             uint64_t end, size_t limit,
                             int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                             size_t *count)
{
    LMQ_ASSERT(store != NULL && row != NULL && count != NULL && party.len > 0);
    LMQ_ASSERT(limit > 0 && limit <= INT32_MAX);
    struct ledger_stream streams[LEDGER_STREAMS];
    memset(streams, 0, sizeof(streams));
    *count = 0;
    int rc = LMQ_OK;
    for (int k = 0; k < LEDGER_STREAMS && rc == LMQ_OK; k++)
        rc = ledger_stream_open(store, k, party, start, limit, &streams[k]);
    /* Merge by index; an envelope to oneself is in both streams and returned once. */
    while (rc == LMQ_OK && *count < limit) {
        struct ledger_stream *sent = &streams[LEDGER_STREAM_SENT];
        struct ledger_stream *received = &streams[LEDGER_STREAM_RECEIVED];
        struct ledger_stream *next = sent;
        if (!sent->has_row || (received->has_row && received->row.index < sent->row.index))
            next = received;
        if (!next->has_row || next->row.index >= end)
            break;
        if (next->row.index < start) { /* the seek found it: keys and indexes disagree */
            rc = LMQ_EIO;
            break;
        }
        (*count)++;
        if (row(ctx, &next->row) != 0) {
            rc = LMQ_EINVAL;
            break;
        }
        uint64_t done = next->row.index;
        for (int k = 0; k < LEDGER_STREAMS && rc == LMQ_OK; k++) {
            if (streams[k].has_row && streams[k].row.index == done)
                rc = ledger_stream_next(&streams[k]);
        }
    }
    for (int k = 0; k < LEDGER_STREAMS; k++)
        sqlite3_finalize(streams[k].st);
    return rc;
}

int store_inbox_page(struct store *store, struct lmq_bytes recipient, uint64_t after, size_t limit,
                     int (*row)(void *ctx, const struct store_ledger_row *r), void *ctx,
                     size_t *count)
{
    LMQ_ASSERT(store != NULL && row != NULL && count != NULL);
    LMQ_ASSERT(limit > 0 && limit <= INT32_MAX);
    sqlite3_stmt *st = store->inbox_stmt;
    LMQ_ASSERT(!sqlite3_stmt_busy(st)); /* row() must not read the store again */
    *count = 0;
    store_sqlite_bind_bytes(st, 1, recipient);
    sqlite3_bind_int64(st, 2, (int64_t)after);
    sqlite3_bind_int64(st, 3, (int64_t)limit);
    return ledger_query_cached(st, limit, row, ctx, count);
}

static int store_fail(char *err, size_t err_len, const char *what, sqlite3 *db);

int store_token_revocations(struct store *store,
                            int (*row)(void *ctx, struct lmq_bytes id, int64_t before_s), void *ctx)
{
    LMQ_ASSERT(store != NULL && row != NULL);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store->reader, "SELECT id, revoked_before_s FROM token_revocations", -1,
                           &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    int rc, result = LMQ_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (row(ctx, store_sqlite_column_bytes(st, 0), sqlite3_column_int64(st, 1)) != 0) {
            result = LMQ_EINVAL;
            break;
        }
    }
    if (result == LMQ_OK && rc != SQLITE_DONE)
        result = LMQ_EIO;
    sqlite3_finalize(st);
    return result;
}

int store_ledger_bytes_since(struct store *store, int64_t since_unix_ms,
                             int (*row)(void *ctx, struct lmq_bytes sender, uint64_t bytes),
                             void *ctx)
{
    LMQ_ASSERT(store != NULL && row != NULL);
    sqlite3_stmt *st = NULL;
    /* length() of a blob reads the record header only, not the envelope's pages. */
    if (sqlite3_prepare_v2(store->reader,
                           "SELECT sender, sum(length(envelope)) FROM ledger "
                           "WHERE created_ms >= ?1 GROUP BY sender",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_int64(st, 1, since_unix_ms);
    int rc, result = LMQ_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t bytes = sqlite3_column_int64(st, 1);
        if (row(ctx, store_sqlite_column_bytes(st, 0), bytes > 0 ? (uint64_t)bytes : 0) != 0) {
            result = LMQ_EINVAL;
            break;
        }
    }
    if (result == LMQ_OK && rc != SQLITE_DONE)
        result = LMQ_EIO;
    sqlite3_finalize(st);
    return result;
}

int store_token_revoke_file(const char *path, struct lmq_bytes id, int64_t before_s,
                            int64_t *stored_s, char *err, size_t err_len)
{
    LMQ_ASSERT(path != NULL && id.data != NULL && id.len > 0 && stored_s != NULL);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int result = LMQ_EIO;
    *stored_s = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        store_fail(err, err_len, path, db);
        goto out;
    }
    sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
    if (sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
        store_fail(err, err_len, "pragmas", db);
        goto out;
    }
    if (store_schema_migrate(db, err, err_len) != LMQ_OK)
        goto out;
    if (sqlite3_prepare_v2(db, STORE_REVOKE_SQL, -1, &st, NULL) != SQLITE_OK) {
        store_fail(err, err_len, "revoke", db);
        goto out;
    }
    store_sqlite_bind_bytes(st, 1, id);
    sqlite3_bind_int64(st, 2, before_s);
    if (sqlite3_step(st) != SQLITE_DONE) {
        store_fail(err, err_len, "revoke", db);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT revoked_before_s FROM token_revocations WHERE id = ?1", -1,
                           &st, NULL) != SQLITE_OK) {
        store_fail(err, err_len, "revoke", db);
        goto out;
    }
    store_sqlite_bind_bytes(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        store_fail(err, err_len, "revoke", db);
        goto out;
    }
    *stored_s = sqlite3_column_int64(st, 0);
    result = LMQ_OK;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return result;
}

/* ---- open, schema, close ---- */

static int store_fail(char *err, size_t err_len, const char *what, sqlite3 *db)
{
    snprintf(err, err_len, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return LMQ_EIO;
}

static int store_open_writer(struct store *s, const struct store_options *opts, char *err,
                             size_t err_len)
{
    const char *vfs = store_fault_vfs_name();
    int rc = sqlite3_open_v2(opts->path, &s->writer,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK)
        return store_fail(err, err_len, opts->path, s->writer);
    sqlite3_extended_result_codes(s->writer, 1);
    const char *pragmas = opts->sync == STORE_SYNC_OFF
                              ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                              : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
    if (sqlite3_exec(s->writer, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->writer,
                     "PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=1000; PRAGMA "
                     "journal_size_limit=8388608;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(err, err_len, "pragmas", s->writer);
    if (store_schema_migrate(s->writer, err, err_len) != LMQ_OK)
        return LMQ_EIO;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->writer, store_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->stmts[i], NULL) != SQLITE_OK)
            return store_fail(err, err_len, "prepare", s->writer);
    }
    if (store_events_writer_prepare(s->writer, &s->events) != SQLITE_OK)
        return store_fail(err, err_len, "prepare", s->writer);
    if (store_data_writer_prepare(s->writer, &s->data) != SQLITE_OK)
        return store_fail(err, err_len, "prepare", s->writer);
    return LMQ_OK;
}

sqlite3 *store_sqlite_reader(struct store *store)
{
    LMQ_ASSERT(store != NULL && store->reader != NULL);
    return store->reader;
}

static int store_open_reader(struct store *s, const struct store_options *opts, char *err,
                             size_t err_len)
{
    int rc =
        sqlite3_open_v2(opts->path, &s->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return store_fail(err, err_len, opts->path, s->reader);
    sqlite3_busy_timeout(s->reader, STORE_BUSY_TIMEOUT_MS);
    static const char page_sql[] =
        "SELECT q.seq, q.qos, q.retain, q.state, q.packet_id, q.sub_ids, "
        "q.size_bytes, " STORE_MESSAGE_COLUMNS " FROM queue q JOIN messages m ON m.id = q.msg_id "
        "WHERE q.client_id = ?1 AND q.seq > ?2 ORDER BY q.seq LIMIT ?3";
    if (sqlite3_prepare_v3(s->reader, page_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->page_stmt,
                           NULL) != SQLITE_OK)
        return store_fail(err, err_len, "prepare page", s->reader);
    if (sqlite3_prepare_v3(s->reader,
                           "SELECT q.seq, q.msg_id, q.size_bytes, m.created_ms + m.expiry_s * 1000"
                           " FROM queue q LEFT JOIN messages m ON m.id = q.msg_id"
                           " WHERE q.client_id = ?1 AND q.seq > ?2 AND q.state = 0"
                           " ORDER BY q.seq LIMIT 1",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->oldest_stmt, NULL) != SQLITE_OK)
        return store_fail(err, err_len, "prepare oldest", s->reader);
    if (sqlite3_prepare_v3(s->reader, "SELECT hash FROM ledger_nodes WHERE level = ?1 AND idx = ?2",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->node_stmt, NULL) != SQLITE_OK)
        return store_fail(err, err_len, "prepare node", s->reader);
    if (sqlite3_prepare_v3(s->reader,
                           "SELECT " STORE_LEDGER_COLUMNS " FROM ledger WHERE idx >= ?1 "
                           "ORDER BY idx LIMIT ?2",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->range_stmt, NULL) != SQLITE_OK)
        return store_fail(err, err_len, "prepare ledger range", s->reader);
    if (sqlite3_prepare_v3(s->reader,
                           "SELECT " STORE_LEDGER_COLUMNS " FROM ledger WHERE recipient = ?1 "
                           "AND position > ?2 ORDER BY position LIMIT ?3",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->inbox_stmt, NULL) != SQLITE_OK)
        return store_fail(err, err_len, "prepare inbox page", s->reader);
    return LMQ_OK;
}

static void store_free(struct store *s)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    store_data_writer_finalize(&s->data);
    store_events_writer_finalize(&s->events);
    sqlite3_finalize(s->page_stmt);
    sqlite3_finalize(s->oldest_stmt);
    sqlite3_finalize(s->node_stmt);
    sqlite3_finalize(s->range_stmt);
    sqlite3_finalize(s->inbox_stmt);
    sqlite3_close(s->reader);
    sqlite3_close(s->writer);
    pthread_mutex_destroy(&s->mutex);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int store_open(uv_loop_t *loop, const struct store_options *opts, struct store **out, char *err,
               size_t err_len)
{
    LMQ_ASSERT(loop != NULL && opts != NULL && opts->path != NULL);
    LMQ_ASSERT(out != NULL && err != NULL);
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return store_fail(err, err_len, "store", NULL);
    s->loop = loop;
    pthread_mutex_init(&s->mutex, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (store_fault_init(err, err_len) != LMQ_OK ||
        store_open_writer(s, opts, err, err_len) != LMQ_OK ||
        store_open_reader(s, opts, err, err_len) != LMQ_OK)
        goto fail;
    if (uv_async_init(loop, &s->async, store_on_async) != 0) {
        snprintf(err, err_len, "uv_async_init failed");
        goto fail;
    }
    s->async.data = s;
    if (pthread_create(&s->thread, NULL, store_thread_main, s) != 0) {
        snprintf(err, err_len, "cannot start the storage thread");
        uv_close((uv_handle_t *)&s->async, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return LMQ_OK;
fail:
    store_free(s);
    return LMQ_EIO;
}

size_t store_pending(const struct store *store)
{
    LMQ_ASSERT(store != NULL);
    return store->pending;
}

void store_get_stats(struct store *store, struct store_stats *out)
{
    LMQ_ASSERT(store != NULL && out != NULL);
    pthread_mutex_lock(&store->mutex);
    *out = store->stats;
    pthread_mutex_unlock(&store->mutex);
}

uint64_t store_stats_percentile_us(const struct store_stats *stats, double fraction)
{
    LMQ_ASSERT(stats != NULL && fraction >= 0.0 && fraction <= 1.0);
    if (stats->commits == 0)
        return 0;
    /* The rank of the wanted commit (1-based), then where it falls inside its bucket. */
    double want = (double)stats->commits * fraction;
    if (want < 1.0)
        want = 1.0;
    uint64_t seen = 0;
    for (unsigned i = 0; i < 32; i++) {
        uint64_t n = stats->commit_us_hist[i];
        if (n == 0 || (double)(seen + n) < want) {
            seen += n;
            continue;
        }
        /* Bucket i holds [2^i, 2^(i+1)) microseconds (bucket 0: [0, 2)). */
        double lo = i == 0 ? 0.0 : (double)(UINT64_C(1) << i);
        double hi = (double)(UINT64_C(1) << (i + 1));
        double at = lo + (hi - lo) * ((want - (double)seen) / (double)n);
        uint64_t us = (uint64_t)at;
        /* The histogram's bound is an estimate; the largest latency seen is a fact. */
        return us < stats->commit_us_max ? us : stats->commit_us_max;
    }
    return stats->commit_us_max; /* the counts and commits disagree: a copy taken mid-update */
}

static void store_on_closed(uv_handle_t *h)
{
    store_free(h->data);
}

void store_close(struct store *store)
{
    if (store == NULL)
        return;
    if (store->open != NULL) {
        /* Written after the last commit (shutdown): nothing was acknowledged on them. */
        batch_free(store->open);
        store->open = NULL;
    }
    pthread_mutex_lock(&store->mutex);
    store->stop = true;
    pthread_cond_signal(&store->cond);
    pthread_mutex_unlock(&store->mutex);
    if (store->thread_started)
        pthread_join(store->thread, NULL);
    store_on_async(&store->async); /* run the callbacks of the last commits */
    LMQ_ASSERT(store->pending == 0);
    LMQ_ASSERT(store->batches_completed == store->batches_committed);
    LMQ_ASSERT(store->batches_applied == store->batches_committed); /* the thread has joined */
    if (store->open != NULL) {
        batch_free(store->open);
        store->open = NULL;
    }
    store->closed = true;
    uv_close((uv_handle_t *)&store->async, store_on_closed);
}

int store_queue_ended_next(struct store *store, uint8_t *id, size_t cap, size_t *id_len,
                           uint64_t *seq_max, uint64_t rows_max, uint64_t *rows, bool *found)
{
    LMQ_ASSERT(store != NULL && id != NULL && id_len != NULL && seq_max != NULL);
    LMQ_ASSERT(rows != NULL && found != NULL && rows_max <= INT64_MAX);
    *found = false;
    *rows = 0;
    *id_len = 0;
    *seq_max = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store->reader,
                           "SELECT e.client_id, e.seq_max, (SELECT count(*) FROM (SELECT 1 FROM "
                           "queue q WHERE q.client_id = e.client_id AND q.seq <= e.seq_max "
                           "LIMIT ?1)) FROM queue_ended e ORDER BY e.client_id LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_bind_int64(st, 1, (int64_t)rows_max);
    int rc = sqlite3_step(st);
    int result = rc == SQLITE_ROW || rc == SQLITE_DONE ? LMQ_OK : LMQ_EIO;
    if (rc == SQLITE_ROW) {
        struct lmq_bytes cid = store_sqlite_column_bytes(st, 0);
        if (cid.len > cap) {
            result = LMQ_EIO; /* a client id is at most 65535 bytes: a corrupt row */
        } else {
            if (cid.len > 0)
                memcpy(id, cid.data, cid.len);
            *id_len = cid.len;
            *seq_max = (uint64_t)sqlite3_column_int64(st, 1);
            *rows = (uint64_t)sqlite3_column_int64(st, 2);
            *found = true;
        }
    }
    sqlite3_finalize(st);
    return result;
}
