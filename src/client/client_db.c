/*
 * The client's own durable state, <state_dir>/client.db:
 *   meta(k, v)   "id": the identity this database belongs to (refused for another key),
 *                "inbox_position": last inbox position handed to the application,
 *                "event_position": id of the last event handed to on_event (a bot),
 *                "ledger_vkey": the server's ledger key, pinned on first use (C2SP vkey text)
 *   outbox(seq, link, to_id, envelope, state, ...)  every envelope we signed, state 0 pending,
 *                1 acked, 2 rejected. Rows are kept (not deleted) because the chain head (seq,
 *                link) is the row with the highest seq: deleting would lose it.
 *   checkpoint(id = 1, size, root, note)  the latest server checkpoint whose signature and
 *                consistency with the one before were verified
 * WAL with synchronous=FULL: a committed transaction survives power loss, which is what
 * lmq_client_send() and the inbox position promise.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "client/client_internal.h"

#define DB_OUTBOX_PENDING 0
#define DB_OUTBOX_ACKED 1
#define DB_OUTBOX_REJECTED 2
/* A writer from another process (send and listen on one state dir) holds the lock briefly. */
#define DB_BUSY_TIMEOUT_MS 10000

static const char db__schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v NOT NULL);"
    "CREATE TABLE IF NOT EXISTS outbox("
    " seq INTEGER PRIMARY KEY, link TEXT NOT NULL UNIQUE, to_id TEXT NOT NULL,"
    " envelope BLOB NOT NULL, state INTEGER NOT NULL DEFAULT 0,"
    " ledger_index INTEGER, position INTEGER, reason TEXT, expected_seq INTEGER);"
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, seq);"
    "CREATE TABLE IF NOT EXISTS checkpoint(id INTEGER PRIMARY KEY CHECK(id = 1),"
    " size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL);"
    /* Per sender, the highest seq handed to the application: an inbox envelope at or below it
     * is a replay (a sender's seqs only grow along the ledger, so along an inbox too). */
    "CREATE TABLE IF NOT EXISTS inbox_sender(sender TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);";

static int db__exec(struct lmq_client *c, const char *sql)
{
    LMQ_ASSERT(c->db != NULL && sql != NULL);
    return sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : LMQ_EIO;
}

/* Prepares sql; LMQ_EIO on failure (a bug in our SQL or a broken database). */
static int db__prepare(struct lmq_client *c, const char *sql, sqlite3_stmt **st)
{
    LMQ_ASSERT(c->db != NULL);
    *st = NULL;
    return sqlite3_prepare_v2(c->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : LMQ_EIO;
}

static int db__meta_get_u64(struct lmq_client *c, const char *key, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = db__prepare(c, "SELECT v FROM meta WHERE k = ?1", &st);
    *out = 0;
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        rc = v < 0 ? LMQ_EIO : 0;
        *out = (uint64_t)v;
    } else {
        rc = step == SQLITE_DONE ? 0 : LMQ_EIO;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* Claims the database for our id, or checks that it is ours. */
static int db__check_owner(struct lmq_client *c, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    int rc = db__prepare(c, "INSERT OR IGNORE INTO meta(k, v) VALUES('id', ?1)", &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, c->ident.id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    sqlite3_finalize(st);
    st = NULL;
    if (rc != 0 || (rc = db__prepare(c, "SELECT v FROM meta WHERE k = 'id'", &st)) != 0) {
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = LMQ_EIO;
        goto out;
    }
    const unsigned char *owner = sqlite3_column_text(st, 0);
    if (owner == NULL || strcmp((const char *)owner, c->ident.id) != 0) {
        snprintf(err, err_len, "state directory belongs to identity %.64s, not this key",
                 owner ? (const char *)owner : "?");
        rc = LMQ_EINVAL;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

static int db__load_acked_max(struct lmq_client *c)
{
    sqlite3_stmt *st = NULL;
    int rc = db__prepare(c, "SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE state = 1", &st);
    if (rc == 0) {
        rc = sqlite3_step(st) == SQLITE_ROW ? 0 : LMQ_EIO;
        c->acked_seq_max = rc == 0 ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int client_db_open(struct lmq_client *c, const char *dir, char *err, size_t err_len)
{
    char path[1024];
    LMQ_ASSERT(c != NULL && c->db == NULL);
    LMQ_ASSERT(dir != NULL && err != NULL);
    int n = snprintf(path, sizeof(path), "%s/client.db", dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        snprintf(err, err_len, "state directory path too long");
        return LMQ_EINVAL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "cannot create state directory %s: %s", dir, strerror(errno));
        return LMQ_EIO;
    }
    int rc = LMQ_EIO;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(err, err_len, "cannot open %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(c->db, DB_BUSY_TIMEOUT_MS);
    if (db__exec(c, db__schema) != 0) {
        snprintf(err, err_len, "cannot set up %s: %s", path, sqlite3_errmsg(c->db));
        goto out;
    }
    rc = db__check_owner(c, err, err_len);
    if (rc == LMQ_EIO) {
        snprintf(err, err_len, "cannot read %s: %s", path, sqlite3_errmsg(c->db));
    }
    if (rc == 0 && (db__meta_get_u64(c, "inbox_position", &c->inbox_position) != 0 ||
                    db__meta_get_u64(c, "event_position", &c->event_position) != 0 ||
                    db__load_acked_max(c) != 0)) {
        snprintf(err, err_len, "cannot read %s: %s", path, sqlite3_errmsg(c->db));
        rc = LMQ_EIO;
    }
out:
    if (rc != 0) {
        client_db_close(c);
    }
    return rc;
}

void client_db_close(struct lmq_client *c)
{
    LMQ_ASSERT(c != NULL);
    if (c->db != NULL) {
        int rc = sqlite3_close(c->db);
        LMQ_ASSERT(rc == SQLITE_OK); /* every statement is finalized where it is used */
        c->db = NULL;
    }
}

int client_db_chain_head(struct lmq_client *c, uint64_t *seq_out,
                         char link_out[LEDGER_ENVELOPE_LINK_BYTES])
{
    sqlite3_stmt *st = NULL;
    int rc = db__prepare(c, "SELECT seq, link FROM outbox ORDER BY seq DESC LIMIT 1", &st);
    *seq_out = 0;
    link_out[0] = '\0';
    if (rc != 0) {
        goto out;
    }
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const unsigned char *link = sqlite3_column_text(st, 1);
        if (link == NULL || strlen((const char *)link) != CRYPTO_IDENTITY_ID_CHARS) {
            rc = LMQ_EIO; /* not a row we wrote */
            goto out;
        }
        *seq_out = (uint64_t)sqlite3_column_int64(st, 0);
        memcpy(link_out, link, LEDGER_ENVELOPE_LINK_BYTES);
    } else if (step != SQLITE_DONE) {
        rc = LMQ_EIO;
    }
    LMQ_ASSERT(rc != 0 || *seq_out <= LEDGER_ENVELOPE_SEQ_MAX);
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_outbox_insert(struct lmq_client *c, uint64_t seq, const char *link, const char *to_id,
                            const uint8_t *env, size_t env_len)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(seq >= 1 && seq <= LEDGER_ENVELOPE_SEQ_MAX);
    LMQ_ASSERT(env_len <= LEDGER_ENVELOPE_MAX_BYTES);
    int rc = db__prepare(c, "INSERT INTO outbox(seq, link, to_id, envelope) VALUES(?1, ?2, ?3, ?4)",
                         &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    sqlite3_bind_text(st, 2, link, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, to_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, env, (int)env_len, SQLITE_STATIC);
    int step = sqlite3_step(st);
    rc = step == SQLITE_DONE ? 0 : step == SQLITE_CONSTRAINT ? LMQ_EEXIST : LMQ_EIO;
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_outbox_next(struct lmq_client *c, uint64_t after_seq, uint64_t *seq_out,
                          struct lmq_buf *env)
{
    sqlite3_stmt *st = NULL;
    int rc = db__prepare(c,
                         "SELECT seq, envelope FROM outbox WHERE state = 0 AND seq > ?1 "
                         "ORDER BY seq LIMIT 1",
                         &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_seq);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? LMQ_ENOTFOUND : LMQ_EIO;
        goto out;
    }
    *seq_out = (uint64_t)sqlite3_column_int64(st, 0);
    const void *blob = sqlite3_column_blob(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    LMQ_ASSERT(*seq_out > after_seq);
    env->len = 0;
    if (blob == NULL || len <= 0) {
        rc = LMQ_EIO;
        goto out;
    }
    rc = lmq_buf_append(env, blob, (size_t)len, LEDGER_ENVELOPE_MAX_BYTES);
    rc = rc == LMQ_ELIMIT ? LMQ_EIO : rc;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Looks a row up by link: its seq and state. */
static int db__find(struct lmq_client *c, const char *link, uint64_t *seq, int *state)
{
    sqlite3_stmt *st = NULL;
    int rc = db__prepare(c, "SELECT seq, state FROM outbox WHERE link = ?1", &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, link, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? LMQ_ENOTFOUND : LMQ_EIO;
        goto out;
    }
    *seq = (uint64_t)sqlite3_column_int64(st, 0);
    *state = sqlite3_column_int(st, 1);
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_outbox_ack(struct lmq_client *c, const char *link, uint64_t index, uint64_t position,
                         uint64_t *seq_out, bool *changed)
{
    sqlite3_stmt *st = NULL;
    int state = 0;
    *changed = false;
    int rc = db__find(c, link, seq_out, &state);
    if (rc != 0 || state == DB_OUTBOX_ACKED) {
        return rc;
    }
    /* A rejected row that is acked later (a resend after the server caught up) is acked. */
    rc = db__prepare(c,
                     "UPDATE outbox SET state = 1, ledger_index = ?2, position = ?3 "
                     "WHERE link = ?1",
                     &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, link, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)position);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    *changed = rc == 0;
    if (rc == 0 && *seq_out > c->acked_seq_max) {
        c->acked_seq_max = *seq_out;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_outbox_reject(struct lmq_client *c, const char *link, uint64_t seq,
                            const char *reason, uint64_t expected_seq)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(link != NULL && reason != NULL);
    int rc = db__prepare(c,
                         "UPDATE outbox SET state = 2, reason = ?3, expected_seq = ?4 "
                         "WHERE state = 0 AND (link = ?1 OR (?1 = '' AND seq = ?2))",
                         &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, link, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)expected_seq);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        rc = LMQ_ENOTFOUND;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_pending_count(struct lmq_client *c, uint64_t *count_out)
{
    sqlite3_stmt *st = NULL;
    *count_out = 0;
    int rc = db__prepare(c, "SELECT COUNT(*) FROM outbox WHERE state = 0", &st);
    if (rc == 0) {
        rc = sqlite3_step(st) == SQLITE_ROW ? 0 : LMQ_EIO;
        *count_out = rc == 0 ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int client_db_set_position(struct lmq_client *c, uint64_t position)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(position > c->inbox_position); /* positions only move forward */
    LMQ_ASSERT(position <= (uint64_t)INT64_MAX);
    int rc = db__prepare(c, "INSERT OR REPLACE INTO meta(k, v) VALUES('inbox_position', ?1)", &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)position);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    }
    /* Inside a transaction the caller moves c->inbox_position once the commit has succeeded. */
    if (rc == 0 && sqlite3_get_autocommit(c->db)) {
        c->inbox_position = position;
    }
    sqlite3_finalize(st);
    return rc;
}

int client_db_set_event_position(struct lmq_client *c, uint64_t id)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(id > c->event_position && id <= (uint64_t)INT64_MAX); /* ids only move forward */
    LMQ_ASSERT(!sqlite3_get_autocommit(c->db)); /* with the application's handling, or not at all */
    int rc = db__prepare(c, "INSERT OR REPLACE INTO meta(k, v) VALUES('event_position', ?1)", &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

int client_db_sender_last_seq(struct lmq_client *c, const char *sender, uint64_t *seq_out)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(sender != NULL && seq_out != NULL);
    *seq_out = 0;
    int rc = db__prepare(c, "SELECT last_seq FROM inbox_sender WHERE sender = ?1", &st);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            sqlite3_int64 v = sqlite3_column_int64(st, 0);
            *seq_out = v > 0 ? (uint64_t)v : 0;
        } else if (step != SQLITE_DONE) {
            rc = LMQ_EIO;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int client_db_sender_set_seq(struct lmq_client *c, const char *sender, uint64_t seq)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(sender != NULL && seq <= (uint64_t)INT64_MAX);
    int rc = db__prepare(c,
                         "INSERT INTO inbox_sender(sender, last_seq) VALUES(?1, ?2) "
                         "ON CONFLICT(sender) DO UPDATE SET last_seq = max(last_seq, ?2)",
                         &st);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

int client_db_begin(struct lmq_client *c)
{
    LMQ_ASSERT(c->db != NULL);
    LMQ_ASSERT(sqlite3_get_autocommit(c->db)); /* transactions never nest */
    /* IMMEDIATE: take the write lock now (waiting up to the busy timeout) rather than failing
     * half-way through the application's statements. */
    return db__exec(c, "BEGIN IMMEDIATE");
}

int client_db_commit(struct lmq_client *c)
{
    LMQ_ASSERT(c->db != NULL);
    if (sqlite3_get_autocommit(c->db)) {
        return LMQ_EIO; /* the application ended our transaction itself */
    }
    int rc = db__exec(c, "COMMIT");
    if (rc != 0) {
        client_db_rollback(c);
    }
    return rc;
}

int client_db_savepoint(struct lmq_client *c)
{
    LMQ_ASSERT(c->db != NULL && !sqlite3_get_autocommit(c->db));
    return db__exec(c, "SAVEPOINT lmq_event");
}

int client_db_savepoint_release(struct lmq_client *c)
{
    LMQ_ASSERT(c->db != NULL);
    if (sqlite3_get_autocommit(c->db)) {
        return LMQ_EIO; /* the application ended our transaction itself */
    }
    return db__exec(c, "RELEASE lmq_event");
}

void client_db_savepoint_rollback(struct lmq_client *c)
{
    LMQ_ASSERT(c->db != NULL);
    if (!sqlite3_get_autocommit(c->db)) {
        int rc = db__exec(c, "ROLLBACK TO lmq_event");
        rc = rc == 0 ? db__exec(c, "RELEASE lmq_event") : rc;
        LMQ_UNUSED(rc); /* failed: the caller rolls the whole transaction back */
    }
}

void client_db_rollback(struct lmq_client *c)
{
    LMQ_ASSERT(c->db != NULL);
    if (!sqlite3_get_autocommit(c->db)) {
        int rc = db__exec(c, "ROLLBACK");
        LMQ_UNUSED(rc); /* a failed rollback leaves SQLite to roll back on close or next open */
    }
}

int client_db_vkey_pin(struct lmq_client *c, const char *vkey, char *pinned, size_t pinned_cap)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(vkey != NULL && pinned != NULL && pinned_cap > 0);
    pinned[0] = '\0';
    /* Trust on first use: the first key seen is kept; later ones are compared with it. */
    int rc = db__prepare(c, "INSERT OR IGNORE INTO meta(k, v) VALUES('ledger_vkey', ?1)", &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, vkey, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    sqlite3_finalize(st);
    st = NULL;
    if (rc != 0 || (rc = db__prepare(c, "SELECT v FROM meta WHERE k = 'ledger_vkey'", &st)) != 0) {
        goto out;
    }
    const unsigned char *v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (v == NULL || strlen((const char *)v) >= pinned_cap) {
        rc = LMQ_EIO;
        goto out;
    }
    memcpy(pinned, v, strlen((const char *)v) + 1);
    LMQ_ASSERT(pinned[0] != '\0');
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_checkpoint_get(struct lmq_client *c, uint64_t *size_out,
                             uint8_t root_out[LEDGER_MERKLE_HASH_BYTES])
{
    sqlite3_stmt *st = NULL;
    int rc = db__prepare(c, "SELECT size, root FROM checkpoint WHERE id = 1", &st);
    *size_out = 0;
    if (rc != 0) {
        goto out;
    }
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? LMQ_ENOTFOUND : LMQ_EIO;
        goto out;
    }
    const void *root = sqlite3_column_blob(st, 1);
    if (root == NULL || sqlite3_column_bytes(st, 1) != LEDGER_MERKLE_HASH_BYTES ||
        sqlite3_column_int64(st, 0) < 0) {
        rc = LMQ_EIO; /* not a row we wrote */
        goto out;
    }
    *size_out = (uint64_t)sqlite3_column_int64(st, 0);
    memcpy(root_out, root, LEDGER_MERKLE_HASH_BYTES);
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_checkpoint_put(struct lmq_client *c, uint64_t size,
                             const uint8_t root[LEDGER_MERKLE_HASH_BYTES], const char *note,
                             size_t note_len)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(size <= (uint64_t)INT64_MAX);
    LMQ_ASSERT(note_len <= LEDGER_CHECKPOINT_NOTE_MAX_BYTES);
    /* Only ever forward: another process on this state directory may have stored a later one. */
    int rc = db__prepare(c,
                         "INSERT INTO checkpoint(id, size, root, note) VALUES(1, ?1, ?2, ?3) "
                         "ON CONFLICT(id) DO UPDATE SET size = ?1, root = ?2, note = ?3 "
                         "WHERE excluded.size > checkpoint.size",
                         &st);
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)size);
        sqlite3_bind_blob(st, 2, root, LEDGER_MERKLE_HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, note, (int)note_len, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

int client_db_outbox_envelope(struct lmq_client *c, const char *link, struct lmq_buf *env)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(c != NULL && link != NULL && env != NULL);
    int rc = db__prepare(c, "SELECT envelope FROM outbox WHERE link = ?1", &st);
    if (rc != 0) {
        goto out;
    }
    sqlite3_bind_text(st, 1, link, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? LMQ_ENOTFOUND : LMQ_EIO;
        goto out;
    }
    const void *blob = sqlite3_column_blob(st, 0);
    int len = sqlite3_column_bytes(st, 0);
    env->len = 0;
    rc = blob != NULL && len > 0 ? lmq_buf_append(env, blob, (size_t)len, LEDGER_ENVELOPE_MAX_BYTES)
                                 : LMQ_EIO;
    rc = rc == LMQ_ELIMIT ? LMQ_EIO : rc;
out:
    sqlite3_finalize(st);
    return rc;
}

int client_db_chain_adopt(struct lmq_client *c, uint64_t seq, const char *link, const char *to_id,
                          const uint8_t *env, size_t env_len, uint64_t index)
{
    sqlite3_stmt *st = NULL;
    LMQ_ASSERT(seq >= 1 && seq <= LEDGER_ENVELOPE_SEQ_MAX);
    LMQ_ASSERT(strlen(link) == CRYPTO_IDENTITY_ID_CHARS && env_len <= LEDGER_ENVELOPE_MAX_BYTES);
    int rc = client_db_begin(c);
    if (rc != 0) {
        return rc;
    }
    /* Only a chain none of whose envelopes was accepted or is still on its way is replaced. */
    rc = db__prepare(c, "SELECT COUNT(*) FROM outbox WHERE state <> 2", &st);
    if (rc == 0) {
        rc = sqlite3_step(st) == SQLITE_ROW ? 0 : LMQ_EIO;
        rc = rc == 0 && sqlite3_column_int64(st, 0) != 0 ? LMQ_EINVAL : rc;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = rc == 0 ? db__exec(c, "DELETE FROM outbox") : rc;
    rc = rc == 0 ? client_db_outbox_insert(c, seq, link, to_id, env, env_len) : rc;
    rc = rc == LMQ_EEXIST ? LMQ_EIO : rc;
    if (rc == 0 && (rc = db__prepare(c,
                                     "UPDATE outbox SET state = 1, ledger_index = ?2 WHERE "
                                     "seq = ?1",
                                     &st)) == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : LMQ_EIO;
    }
    sqlite3_finalize(st);
    rc = rc == 0 ? client_db_commit(c) : rc;
    if (rc != 0) {
        client_db_rollback(c);
        return rc;
    }
    c->acked_seq_max = seq;
    return 0;
}
