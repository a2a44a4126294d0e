/*
 * libledgermq: the client side of LedgerMQ's "identities and guaranteed delivery"
 * (docs/PROTOCOL.md). An application holds one Ed25519 identity (a key file) and exchanges
 * signed envelopes with other identities through a LedgerMQ server.
 *
 * Guarantees, as long as the state directory survives:
 *   - sending: lmq_client_send() returns only once the signed envelope is durably in the
 *     client's outbox (SQLite, WAL, synchronous=FULL). The library publishes it when connected
 *     and publishes every unacknowledged envelope again, in seq order, on every (re)connect,
 *     until the server's ack (or reject) arrives; the server acknowledges a resend again and
 *     delivers it once.
 *   - receiving: every inbox envelope is handed to on_envelope exactly once and in position
 *     order, after its signature and recipient were checked. The library stores the position
 *     of the last envelope the application accepted and resyncs from it on every connect.
 *
 * Exactly once across crashes: on_envelope runs inside a transaction on the client database,
 * and the library writes the envelope's position in that same transaction, committed
 * (synchronously) only when on_envelope returns 0. An application that records its handling with
 * statements on lmq_client_db() during the callback gets it atomically with the position: after
 * a crash, either both are there (the envelope never comes again) or neither (it comes again).
 * Side effects outside that database (a printed line, a network call) can still happen twice.
 *
 * Threading: one libuv loop, one thread. Every function here must be called on the loop's
 * thread (or before the loop runs), and the callbacks run on it.
 *
 * Errors: functions return 0 or a negative code (the LedgerMQ error set; lmq_client_strerror
 * names it) and write results through out-parameters.
 */
#ifndef LEDGERMQ_LEDGERMQ_H
#define LEDGERMQ_LEDGERMQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An identity id or an envelope link: 64 lowercase hex characters, then a NUL. */
#define LMQ_CLIENT_ID_BYTES 65

struct lmq_client;
struct sqlite3;

/* One envelope of the inbox as handed to the application. Every pointer is valid only during
 * the callback. */
struct lmq_inbox_envelope {
    uint64_t position; /* this identity's inbox position: 1, 2, 3, ... */
    uint64_t index;    /* the server's global ledger index */
    const char *from;  /* sender id */
    const char *to;    /* our id */
    uint64_t seq;      /* sender's chain counter */
    const char *link;  /* hex SHA-256 of the envelope's canonical form */
    const char *type;
    const char *time;         /* RFC 3339, 9 fractional digits */
    const uint8_t *body_json; /* canonical JSON of the body object */
    size_t body_len;
    const uint8_t *message_json; /* canonical {"envelope":...,"index":...,"position":...} */
    size_t message_len;
};

/* Errors of the ledger checks (besides the LedgerMQ error set), reported through on_error and
 * in lmq_ack.receipt_error. Each one means the server cannot be trusted as it is: the library
 * goes on, but leaves the envelope concerned unacknowledged in the outbox; the application
 * decides (stop, alert, keep the evidence: lmq_ack.ack_json). */
#define LMQ_CLIENT_E_RECEIPT (-100) /* an ack's receipt does not verify (signature, proof) */
#define LMQ_CLIENT_E_HISTORY (-101) /* a checkpoint contradicts one seen before: rewritten */
#define LMQ_CLIENT_E_KEY (-102)     /* the server's ledger key is not the one pinned */
/* The first connection since lmq_client_start() failed: the HTTP login server (or the MQTT
 * server) at the address in the message refused it or could not be reached. The library retries
 * with backoff (reporting it once); an interactive application may rather stop. */
#define LMQ_CLIENT_E_HTTP_UNREACHABLE (-110)
#define LMQ_CLIENT_E_MQTT_UNREACHABLE (-111)

/* The server accepted one of our envelopes. Pointers valid only during the callback.
 * The ack carries a receipt: a checkpoint (C2SP signed note) of the server's Merkle ledger and
 * the inclusion proof of this envelope in it. The library checks the note's signature against
 * the pinned server key, the proof against the note's root, and the note against the latest
 * checkpoint it has seen (consistency proof); only then is the envelope marked acknowledged.
 * on_ack also runs for an ack whose receipt failed (receipt_verified false): the envelope then
 * stays pending. */
struct lmq_ack {
    const char *link;
    uint64_t seq;
    uint64_t index;    /* ledger index */
    uint64_t position; /* position in the recipient's inbox */
    const char *to;
    const uint8_t *ack_json; /* the ack message as received */
    size_t ack_len;
    uint64_t tree_size;     /* size of the receipt's checkpoint (0: none readable) */
    const char *checkpoint; /* the receipt's signed note ("" when none), checkpoint_len bytes */
    size_t checkpoint_len;
    bool receipt_verified; /* signature, inclusion and consistency all checked */
    int receipt_error;     /* 0, LMQ_CLIENT_E_RECEIPT, LMQ_CLIENT_E_HISTORY or LMQ_CLIENT_E_KEY */
};

/* The server refused one of our envelopes. Pointers valid only during the callback. */
struct lmq_reject {
    const char *link; /* "" when the server could not name it */
    uint64_t seq;
    uint64_t expected_seq; /* what the server would accept next from us */
    const char *reason;    /* bad_envelope, bad_signature, not_sender, gap, fork */
    const uint8_t *reject_json;
    size_t reject_len;
    /* A `fork` for a state directory none of whose envelopes the server accepted (another
     * state directory of this key sent seq 1..expected_seq-1), and no envelope of ours is
     * pending: the library read the server's head of our chain (GET /ledger/envelopes, checked
     * to be signed by our key) and adopted it, replacing the rejected envelopes, so the next
     * lmq_client_send() continues the server's chain. Send the refused body again. */
    bool chain_resynced;
};

/* One event of the server's event stream (docs/PROTOCOL.md "The event stream"), handed to a bot.
 * Pointers valid only during the callback. */
struct lmq_event {
    uint64_t id;              /* 1, 2, 3, ...: gap-free, increasing */
    const char *type;         /* "envelope.accepted", "session.started", ... */
    const char *time;         /* RFC 3339, 9 fractional digits */
    const uint8_t *data_json; /* canonical JSON of the event's data object */
    size_t data_len;
    const uint8_t *event_json; /* the whole event, canonical JSON */
    size_t event_len;
};

struct lmq_client_callbacks {
    void *ctx;
    /* Runs inside a transaction on lmq_client_db(). Return 0 once the envelope is handled: the
     * position is then written and the transaction (with whatever the callback wrote through
     * lmq_client_db()) committed, and the message acknowledged to the server. Any other value
     * means "not now": the transaction is rolled back, the connection is dropped and the
     * envelope comes again after the reconnect (with backoff). Do not BEGIN, COMMIT or ROLLBACK
     * in the callback. lmq_client_stop() may be called from it (the commit still happens).
     * NULL: the client only sends (it subscribes to no inbox; a listener with the same state
     * directory later receives everything, since it resyncs from its stored position). */
    int (*on_envelope)(void *ctx, const struct lmq_inbox_envelope *env);
    /* An envelope of ours was accepted (also for acks of envelopes sent by earlier runs). */
    void (*on_ack)(void *ctx, const struct lmq_ack *ack);
    /* An envelope of ours was refused; it stays in the outbox marked rejected. */
    void (*on_reject)(void *ctx, const struct lmq_reject *reject);
    /* Something went wrong that the library handles itself (reconnects, drops a forged
     * envelope) but the application should know about. code is a negative error code. */
    void (*on_error)(void *ctx, int code, const char *message);
    /* Makes the client a bot (docs/PROTOCOL.md "Bots"; the identity must be in the server's
     * [bots] ids): it subscribes to id/<me>/events and events/sync, and on every connect asks
     * for the events after the id of the last one the application handled (stored in the
     * client database), page after page while the server says `more`, then receives live
     * events. A state directory that has handled none asks `{}` and starts after the position
     * the server stored for this bot (its last ack; 0 for a new bot), dropping the events that
     * come before that answer. Each event whose id is the next one is handed over once and in
     * id order; events at or below the last handled id (the server delivers at least once) and
     * ahead of a gap (asked again) are dropped.
     *
     * Exactly once: like on_envelope, it runs inside a transaction on lmq_client_db(), in a
     * savepoint of its own where the library also writes the event's id. The events of one read
     * from the server (at most LMQ_CLIENT_EVENT_ACK_EVERY) share the transaction, committed
     * (synchronously) when that read is handled and before any other message is: the
     * application's statements and the envelopes it sent with lmq_client_send() (published
     * after the commit) commit with the ids or not at all; a crash before the commit loses
     * both, and those events come again. Return 0 to keep the event; any other value undoes
     * this event's savepoint (the events before it commit), drops the connection, and the
     * event comes again after the reconnect. Do not BEGIN, COMMIT, ROLLBACK or RELEASE in the
     * callback. lmq_client_stop() may be called from it (the commit still happens).
     *
     * Handled (committed) events are acknowledged to the server ({"ack":N} on events/ack)
     * after each page, every LMQ_CLIENT_EVENT_ACK_EVERY events and LMQ_CLIENT_EVENT_ACK_IDLE_MS
     * after the last read from the server, one ack in flight at a time. An error the server
     * answers on events/sync (or a refused resync or ack: not a bot) reaches on_error with
     * LMQ_EPROTO. NULL: no events. */
    int (*on_event)(void *ctx, const struct lmq_event *event);
};

/* Events handled before the client acknowledges them to the server without waiting. */
#define LMQ_CLIENT_EVENT_ACK_EVERY 100u
/* Quiet time (nothing read from the server) before the client acknowledges handled events. */
#define LMQ_CLIENT_EVENT_ACK_IDLE_MS 100u

struct lmq_client_options {
    const char *key_file;  /* identity key file (ledgermq keygen) */
    const char *state_dir; /* created if missing; holds client.db */
    const char *mqtt_host; /* numeric IPv4/IPv6 or "localhost" */
    uint16_t mqtt_port;
    const char *http_host; /* for login (POST /auth/challenge, /auth/token) */
    uint16_t http_port;
    uv_loop_t *loop; /* the caller's loop, or NULL for one the client owns */
    struct lmq_client_callbacks cb;
};

/* Loads the key, opens (or creates) <state_dir>/client.db and returns a client that is not yet
 * connected. Sets SIGPIPE to SIG_IGN when it has the default (fatal) action, so that a server
 * dying mid-write is a reconnect, not the end of the process. Returns 0, or a negative code with a
 * one-line reason in err (err_len > 0). */
int lmq_client_open(const struct lmq_client_options *opts, struct lmq_client **out, char *err,
                    size_t err_len);

/* Builds the next envelope of our chain (seq/prev from the durable chain state), signs it and
 * stores it in the outbox in one synchronous transaction; link_out receives its link. Returns
 * only after that commit (then publishes it if connected). Returns 0, LMQ_EINVAL (bad to_id,
 * type or body: body_json must be a JSON object), LMQ_ETOOBIG (over 64 KiB) or LMQ_EIO. */
int lmq_client_send(struct lmq_client *c, const char *to_id, const char *type,
                    const char *body_json, char link_out[LMQ_CLIENT_ID_BYTES]);

/* Starts connecting (login, MQTT, resend, resync) on the client's loop and returns at once.
 * Reconnects by itself with backoff until lmq_client_stop(). Returns 0 or LMQ_EINVAL
 * (already started). */
int lmq_client_start(struct lmq_client *c);

/* For a client with its own loop: lmq_client_start() then runs the loop until
 * lmq_client_stop() is called (from a callback). Returns 0 or a negative code. */
int lmq_client_run(struct lmq_client *c);

/* Disconnects and stops reconnecting; pending envelopes stay in the outbox. Safe to call from
 * any callback and more than once. lmq_client_run() returns once the handles are closed. */
void lmq_client_stop(struct lmq_client *c);

/* Stops the client if needed, lets its handles close (runs the loop for that) and frees it.
 * NULL is fine. */
void lmq_client_close(struct lmq_client *c);

/* The most bytes of a login token, its NUL included. */
#define LMQ_TOKEN_MAX_BYTES 2049
/* Logs in as the identity of key_file on the server's HTTP listener (POST /auth/challenge,
 * then POST /auth/token with the signed nonce) without a client or its state, and writes the
 * login token (a bearer token for the HTTP API) into token. Blocking, bounded by timeout_ms.
 * Returns 0; LMQ_EINVAL (the key file or the address), LMQ_CLIENT_E_HTTP_UNREACHABLE (no
 * answer), LMQ_EPROTO (the server refused: its reason in err) or LMQ_EIO (a malformed answer);
 * err gets a one-line reason. */
int lmq_login(const char *key_file, const char *http_host, uint16_t http_port, uint32_t timeout_ms,
              char token[LMQ_TOKEN_MAX_BYTES], char *err, size_t err_len);

/* Our identity id (64 hex characters). */
const char *lmq_client_id(const struct lmq_client *c);

/* Counts the envelopes this identity ever signed with this state directory (the seq of the
 * head of its chain). Returns 0 or LMQ_EIO. */
int lmq_client_sent_count(struct lmq_client *c, uint64_t *count_out);

/* Counts envelopes in the outbox not yet acknowledged or rejected. Returns 0 or LMQ_EIO. */
int lmq_client_pending_count(struct lmq_client *c, uint64_t *count_out);

/* The largest envelope (its canonical JSON), for lmq_client_outbox_envelope's buffer. */
#define LMQ_CLIENT_ENVELOPE_MAX_BYTES 65536u

/* Copies the envelope with this link (one this identity signed, as stored in the outbox: its
 * canonical JSON, what was published) into buf; *len_out receives its length. Returns 0,
 * LMQ_ENOTFOUND (no such envelope in this state directory), LMQ_ETOOBIG (cap too small;
 * LMQ_CLIENT_ENVELOPE_MAX_BYTES always suffices) or LMQ_EIO. */
int lmq_client_outbox_envelope(struct lmq_client *c, const char *link, uint8_t *buf, size_t cap,
                               size_t *len_out);

/* The position of the last inbox envelope handed to the application (0: none yet). */
uint64_t lmq_client_inbox_position(const struct lmq_client *c);

/* The id of the last event handed to on_event (0: none yet). */
uint64_t lmq_client_event_position(const struct lmq_client *c);

/* The client's SQLite connection (<state_dir>/client.db), for the application's own tables.
 * During on_envelope, statements the application runs on this connection commit atomically with
 * the envelope's position (or roll back with it when the callback returns non-zero or the process
 * dies). Outside the callback it is an ordinary autocommit connection. Owned by the client: valid
 * until lmq_client_close(); use it on the loop's thread only. Tables the library uses: meta,
 * outbox, checkpoint, inbox_sender (do not write them). */
struct sqlite3 *lmq_client_db(struct lmq_client *c);

/* A static description of an error code. */
const char *lmq_client_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
