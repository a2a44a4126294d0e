#include "store/store_schema.h"

#include <stdbool.h>
#include <stdio.h>

#include "core/lmq.h"

/*
 * migrations[i] takes the schema from version i to i + 1. Never edit a
 * released step: add a new one, and a test that opens the previous version.
 */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: sessions, subscriptions, messages, queues, inbound QoS 2, retained. */
    "CREATE TABLE sessions(client_id BLOB PRIMARY KEY, expiry_s INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE subscriptions(client_id BLOB NOT NULL, filter BLOB NOT NULL,"
    " options INTEGER NOT NULL, sub_id INTEGER NOT NULL, PRIMARY KEY(client_id, filter))"
    " WITHOUT ROWID;"
    "CREATE TABLE messages(id INTEGER PRIMARY KEY, qos INTEGER NOT NULL,"
    " retain INTEGER NOT NULL, created_ms INTEGER NOT NULL, expiry_s INTEGER,"
    " payload_format INTEGER, topic BLOB NOT NULL, payload BLOB NOT NULL, content_type BLOB,"
    " response_topic BLOB, correlation_data BLOB, user_props BLOB,"
    " user_prop_count INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE queue(client_id BLOB NOT NULL, seq INTEGER NOT NULL, msg_id INTEGER NOT NULL,"
    " qos INTEGER NOT NULL, retain INTEGER NOT NULL, state INTEGER NOT NULL,"
    " packet_id INTEGER NOT NULL, sub_ids BLOB, size_bytes INTEGER NOT NULL,"
    " PRIMARY KEY(client_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE inbound_qos2(client_id BLOB NOT NULL, packet_id INTEGER NOT NULL,"
    " PRIMARY KEY(client_id, packet_id)) WITHOUT ROWID;"
    "CREATE TABLE retained(topic BLOB PRIMARY KEY, msg_id INTEGER NOT NULL) WITHOUT ROWID;",
    /* 1 -> 2: delayed wills survive a restart; indexes for message garbage collection. */
    "CREATE TABLE wills(client_id BLOB PRIMARY KEY, msg_id INTEGER NOT NULL,"
    " delay_s INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX queue_by_msg ON queue(msg_id);"
    "CREATE INDEX retained_by_msg ON retained(msg_id);"
    "CREATE INDEX wills_by_msg ON wills(msg_id);",
    /*
     * 2 -> 3: each client's queue summary, kept by the storage thread in the
     * transaction that changes its queue, so a restart reads one row per
     * session instead of aggregating every queued row. seq_max is a high-water
     * mark (never lowered by a delete): recovery only needs new sequence
     * numbers to be above every stored one. The one full scan happens here,
     * once.
     */
    "CREATE TABLE queue_summary(client_id BLOB PRIMARY KEY, count INTEGER NOT NULL,"
    " size_bytes INTEGER NOT NULL, seq_max INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO queue_summary(client_id, count, size_bytes, seq_max)"
    " SELECT client_id, count(*), sum(size_bytes), max(seq) FROM queue GROUP BY client_id;",
    /*
     * 3 -> 4: identities. The ledger of accepted envelopes (index = rowid, gap-free), each
     * identity's chain head and inbox counter, and the identity owning each session.
     */
    "ALTER TABLE sessions ADD COLUMN owner BLOB NOT NULL DEFAULT x'';"
    "CREATE TABLE ledger(idx INTEGER PRIMARY KEY, link BLOB NOT NULL UNIQUE,"
    " sender BLOB NOT NULL, recipient BLOB NOT NULL, seq INTEGER NOT NULL,"
    " position INTEGER NOT NULL, envelope BLOB NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX ledger_by_chain ON ledger(sender, seq);"
    "CREATE UNIQUE INDEX ledger_by_inbox ON ledger(recipient, position);"
    "CREATE TABLE identities(id BLOB PRIMARY KEY, last_seq INTEGER NOT NULL DEFAULT 0,"
    " last_link BLOB NOT NULL DEFAULT x'', inbox_last INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    /* The Merkle tree over the ledger: hashes of perfect subtrees only (RFC 9162 hashing),
     * written in the transaction that appends their last leaf. */
    "CREATE TABLE ledger_nodes(level INTEGER NOT NULL, idx INTEGER NOT NULL,"
    " hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;",
    /*
     * 4 -> 5: token revocation and the ledger byte quota. Per identity, the time before which
     * its login tokens are revoked (tokens with iat < revoked_before_s are refused; only ever
     * raised). An index on the ledger's append time, so a restart recomputes each identity's
     * bytes appended today from today's rows instead of scanning the whole ledger.
     */
    "CREATE TABLE token_revocations(id BLOB PRIMARY KEY, revoked_before_s INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE INDEX ledger_by_time ON ledger(created_ms);",
    /*
     * 5 -> 6: typed objects (docs/PROTOCOL.md "Objects"). Every version (an accepted envelope
     * whose body names a model), one row per resource holding its latest version (created_idx:
     * the first version's ledger index, the stable order of pages), and who may read each
     * resource (its authors and recipients), keyed so that an identity's pages of one model are an
     * index range in creation order. The partial unique index on prevlink refuses a
     * second version of the same predecessor: a history never forks. owner: the first version's
     * author. Property indexes are
     * added at run time (STORE_DATA_INDEX) as models ask for them.
     */
    "CREATE TABLE data_versions(link BLOB PRIMARY KEY, ledger_idx INTEGER NOT NULL UNIQUE,"
    " permalink BLOB NOT NULL, prevlink BLOB NOT NULL, model TEXT NOT NULL,"
    " author BLOB NOT NULL, recipient BLOB NOT NULL, time TEXT NOT NULL,"
    " deleted INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX data_versions_by_resource ON data_versions(permalink, ledger_idx);"
    "CREATE UNIQUE INDEX data_versions_by_prev ON data_versions(prevlink) WHERE prevlink <> x'';"
    "CREATE TABLE data_resources(permalink BLOB PRIMARY KEY, created_idx INTEGER NOT NULL UNIQUE,"
    " model TEXT NOT NULL, link BLOB NOT NULL, prevlink BLOB NOT NULL, author BLOB NOT NULL,"
    " owner BLOB NOT NULL, ledger_idx INTEGER NOT NULL, time TEXT NOT NULL, deleted INTEGER NOT "
    "NULL,"
    " body TEXT NOT NULL);"
    "CREATE INDEX data_resources_by_model ON data_resources(model, created_idx);"
    "CREATE TABLE data_readers(identity BLOB NOT NULL, model TEXT NOT NULL,"
    " created_idx INTEGER NOT NULL, permalink BLOB NOT NULL,"
    " PRIMARY KEY(identity, model, created_idx)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX data_readers_by_resource ON data_readers(permalink, identity);",
    /*
     * 6 -> 7: reads as of a ledger checkpoint (docs/PROTOCOL.md "Reading as of a checkpoint").
     * since_idx: the ledger index of the version that first made identity a reader of the
     * resource (it authored it or was its recipient), so the reader rule can be applied as it
     * was when the ledger had N entries (since_idx < N). Existing rows get it from the history.
     * The latest version of a resource before N is found with data_versions_by_resource
     * (permalink, ledger_idx), which schema 6 already has.
     */
    "ALTER TABLE data_readers ADD COLUMN since_idx INTEGER NOT NULL DEFAULT 0;"
    "UPDATE data_readers SET since_idx = coalesce((SELECT min(v.ledger_idx) FROM data_versions v"
    " WHERE v.permalink = data_readers.permalink AND (v.author = data_readers.identity"
    " OR v.recipient = data_readers.identity)), created_idx);",
    /*
     * 7 -> 8: the event stream (docs/ARCHITECTURE.md "The event stream"): every event with its
     * gap-free id, written in the commit batch of what it reports; how far each consumer (a
     * webhook endpoint) got; the events a consumer gave up on (its dead-letter list).
     */
    "CREATE TABLE events(id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, type TEXT NOT NULL,"
    " data TEXT NOT NULL);"
    "CREATE TABLE event_consumers(consumer TEXT PRIMARY KEY, position INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE event_dead(consumer TEXT NOT NULL, event_id INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, error TEXT NOT NULL, time_ms INTEGER NOT NULL,"
    " PRIMARY KEY(consumer, event_id)) WITHOUT ROWID;",
    /*
     * 8 -> 9: scheduled jobs (docs/ARCHITECTURE.md "Scheduled jobs"). One row per run, keyed by
     * (job, tick): inserted "running" and committed before the run starts, so a tick runs at
     * most once; the partial index finds the runs a crash cut short at the next start.
     */
    "CREATE TABLE job_runs(job TEXT NOT NULL, tick_ms INTEGER NOT NULL, manual INTEGER NOT NULL,"
    " skipped INTEGER NOT NULL, state TEXT NOT NULL, started_ms INTEGER NOT NULL,"
    " ended_ms INTEGER NOT NULL, detail TEXT NOT NULL, PRIMARY KEY(job, tick_ms)) WITHOUT ROWID;"
    "CREATE INDEX job_runs_running ON job_runs(job) WHERE state = 'running';",
    /*
     * 9 -> 10: the chaser job (docs/ARCHITECTURE.md "Scheduled jobs"). Expression indexes over
     * the envelopes' JSON (the CHASER_*_SQL expressions of store_chaser.c: a query
     * must spell the expression the same way to use them): requests by type in ledger order,
     * answers by the request link they name in body.in_reply_to, reminders by body.reminder_of.
     * The last two are partial: only envelopes that carry the member are in them.
     */
    "CREATE INDEX ledger_by_type ON ledger(json_extract(CAST(envelope AS TEXT), '$.type'), idx);"
    "CREATE INDEX ledger_by_reply ON ledger(json_extract(CAST(envelope AS TEXT),"
    " '$.body.in_reply_to')) WHERE json_extract(CAST(envelope AS TEXT), '$.body.in_reply_to')"
    " IS NOT NULL;"
    "CREATE INDEX ledger_by_reminder ON ledger(json_extract(CAST(envelope AS TEXT),"
    " '$.body.reminder_of')) WHERE json_extract(CAST(envelope AS TEXT), '$.body.reminder_of')"
    " IS NOT NULL;",
    /*
     * 10 -> 11: the chain follower and the sealer (docs/ARCHITECTURE.md "Ethereum",
     * store.h "store_rec_chain_header"): the followed chain's headers (one chain: each header's
     * parent is the one below it), identities' interest in contracts, the logs notified to each
     * (with the state of the notice, found by block number for rollbacks and confirmations),
     * the seals by nonce, and every transaction sent for a seal's nonce (fee bumps replace a
     * transaction, and any of them may be the one mined).
     */
    "CREATE TABLE chain_headers(number INTEGER PRIMARY KEY, hash BLOB NOT NULL,"
    " parent_hash BLOB NOT NULL, time INTEGER NOT NULL);"
    "CREATE TABLE chain_watches(identity TEXT NOT NULL, address BLOB NOT NULL,"
    " topic0 BLOB NOT NULL, abi TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " PRIMARY KEY(identity, address, topic0)) WITHOUT ROWID;"
    "CREATE TABLE chain_notices(block_hash BLOB NOT NULL, log_index INTEGER NOT NULL,"
    " identity TEXT NOT NULL, block_number INTEGER NOT NULL, tx_hash BLOB NOT NULL,"
    " state TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY(block_hash, log_index, identity))"
    " WITHOUT ROWID;"
    "CREATE INDEX chain_notices_by_number ON chain_notices(block_number, log_index, identity);"
    "CREATE TABLE seals(nonce INTEGER PRIMARY KEY, tree_size INTEGER NOT NULL, root BLOB NOT NULL,"
    " checkpoint TEXT NOT NULL, chain_id INTEGER NOT NULL, tx_hash BLOB NOT NULL,"
    " raw BLOB NOT NULL, state TEXT NOT NULL, block_number INTEGER NOT NULL,"
    " block_hash BLOB NOT NULL, attempts INTEGER NOT NULL, sent_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE INDEX seals_cover ON seals(state, tree_size);"
    "CREATE TABLE seal_txs(nonce INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " tx_hash BLOB NOT NULL, raw BLOB NOT NULL, sent_ms INTEGER NOT NULL,"
    " PRIMARY KEY(nonce, attempt)) WITHOUT ROWID;",
    /*
     * 11 -> 12: ended sessions whose queue rows are deleted in bounded batches
     * (docs/ARCHITECTURE.md "Scheduled jobs", expire_messages): the queue rows of client_id
     * with seq <= seq_max belong to a session that has ended; a later session of the same client
     * id only ever has rows above it.
     */
    "CREATE TABLE queue_ended(client_id BLOB PRIMARY KEY, seq_max INTEGER NOT NULL) WITHOUT ROWID;",
};

int store_schema_version(sqlite3 *db, int *version)
{
    LMQ_ASSERT(db != NULL && version != NULL);
    *version = 0;
    if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK)
        return LMQ_EIO;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL) !=
        SQLITE_OK)
        return LMQ_EIO;
    if (sqlite3_step(st) == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return LMQ_OK;
}

int store_schema_version_read(sqlite3 *db, int *version)
{
    LMQ_ASSERT(db != NULL && version != NULL);
    *version = 0;
    sqlite3_stmt *st = NULL;
    int step = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                           "AND name = 'schema_version'",
                           -1, &st, NULL) == SQLITE_OK)
        step = sqlite3_step(st);
    bool has_table = step == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    st = NULL;
    if (step != SQLITE_ROW)
        return LMQ_EIO;
    if (!has_table)
        return LMQ_OK;
    step = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL) ==
        SQLITE_OK)
        step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return step == SQLITE_ROW ? LMQ_OK : LMQ_EIO;
}

static int schema_step(sqlite3 *db, int from, char *err, size_t err_len)
{
    char bump[96];
    snprintf(bump, sizeof(bump), "INSERT INTO schema_version(version) VALUES(%d)", from + 1);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    if (sqlite3_exec(db, migrations[from], NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "DELETE FROM schema_version", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, bump, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto fail;
    }
    return LMQ_OK;
fail:
    snprintf(err, err_len, "migrating the store from schema %d to %d: %s", from, from + 1,
             sqlite3_errmsg(db));
    return LMQ_EIO;
}

int store_schema_migrate_to(sqlite3 *db, int target, char *err, size_t err_len)
{
    LMQ_ASSERT(db != NULL && err != NULL);
    LMQ_ASSERT(target >= 0 && target <= STORE_SCHEMA_VERSION);
    int version = 0;
    if (store_schema_version(db, &version) != LMQ_OK) {
        snprintf(err, err_len, "reading the schema version: %s", sqlite3_errmsg(db));
        return LMQ_EIO;
    }
    if (version > STORE_SCHEMA_VERSION) {
        snprintf(err, err_len,
                 "the store has schema version %d, newer than this binary's %d: upgrade ledgermq",
                 version, STORE_SCHEMA_VERSION);
        return LMQ_EIO;
    }
    for (int v = version; v < target; v++) {
        if (schema_step(db, v, err, err_len) != LMQ_OK)
            return LMQ_EIO;
    }
    return LMQ_OK;
}

int store_schema_migrate(sqlite3 *db, char *err, size_t err_len)
{
    return store_schema_migrate_to(db, STORE_SCHEMA_VERSION, err, err_len);
}
