/*
 * libledgermq internals, shared by the files of src/client and by its unit tests (the seams:
 * the session logic takes decoded packets and hands packets to send to c->tx, so it can be
 * driven without a socket).
 */
#ifndef LMQ_CLIENT_INTERNAL_H
#define LMQ_CLIENT_INTERNAL_H

#include <http_parser.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "crypto/encoding.h"
#include "crypto/jwt.h"
#include "crypto/keyfile.h"
#include "ledger/checkpoint.h"
#include "ledger/envelope.h"
#include "ledger/merkle.h"
#include "ledgermq/ledgermq.h"
#include "mqtt/mqtt_codec.h"

/* Reconnect backoff: first delay, doubling up to the cap; the jitter draws from [d/2, d]. */
#define CLIENT_BACKOFF_FIRST_MS 100u
#define CLIENT_BACKOFF_MAX_MS 5000u
/* Our PUBLISHes waiting for PUBACK at once (the server's receive maximum may lower it). */
#define CLIENT_INFLIGHT_MAX 32u
/* Out-of-order inbox messages kept while a resync fills the gap; more are acknowledged and
 * dropped (the resync brings them again). */
#define CLIENT_HOLD_MAX 64u
/* Resyncs in a row that brought nothing new before the client gives up on a gap. */
#define CLIENT_RESYNC_IDLE_MAX 3u
/* One MQTT packet: an envelope (64 KiB) in an inbox message plus topic and properties. */
#define CLIENT_PACKET_MAX_BYTES (LEDGER_ENVELOPE_MAX_BYTES + 4096u)
/* Bytes queued to the socket before the outbox pump waits for writes to complete. */
#define CLIENT_OUT_MAX_BYTES (1024u * 1024u)
#define CLIENT_KEEPALIVE_S 30u
#define CLIENT_SESSION_EXPIRY_S 86400u
/* From TCP connect to SUBACK (login included) before the attempt is given up. */
#define CLIENT_CONNECT_TIMEOUT_MS 10000u
/* A token is used again only while it has at least this long left. */
#define CLIENT_TOKEN_MARGIN_S 60
#define CLIENT_HTTP_BODY_MAX_BYTES (16u * 1024u)
/* A page of GET /ledger/envelopes: the server caps it at its ledger_page_max_bytes, at most
 * 4 MiB. */
#define CLIENT_PAGE_BODY_MAX_BYTES (4u * 1024u * 1024u + 4096u)
/* Pages read while looking for the head of our chain (1,000 envelopes each). */
#define CLIENT_CHAIN_PAGES_MAX 10000u
#define CLIENT_HTTP_REQUEST_MAX_BYTES 4096u
/* One ledger GET (key, consistency proof), connect to last byte. It blocks the loop: the ack
 * it settles cannot be settled without it, and it goes to the server the client is already
 * connected to. */
#define CLIENT_FETCH_TIMEOUT_MS 5000u
#define CLIENT_TOPIC_MAX_BYTES 96u
#define CLIENT_HOST_MAX_BYTES 256u
#define CLIENT_ERR_MAX_BYTES 512u
/* Subscription packet id; publishes use 2..CLIENT_INFLIGHT_MAX+1, resyncs the next two. */
#define CLIENT_SUBSCRIBE_PID 1u
#define CLIENT_RESYNC_PID (CLIENT_INFLIGHT_MAX + 2u)
/* A bot's event resyncs (two ids in turn, like the inbox's) and its event ack (one at a time). */
#define CLIENT_EVENT_RESYNC_PID (CLIENT_RESYNC_PID + 2u)
#define CLIENT_EVENT_ACK_PID (CLIENT_RESYNC_PID + 4u)
/* One event message: an envelope.accepted event carries a whole envelope. */
#define CLIENT_EVENT_MAX_BYTES CLIENT_PACKET_MAX_BYTES

enum client_state {
    CLIENT_STOPPED = 0, /* not started, or stopped */
    CLIENT_BACKOFF,     /* waiting to reconnect */
    CLIENT_LOGIN,       /* HTTP login in progress */
    CLIENT_TCP,         /* MQTT TCP connect in progress */
    CLIENT_CONNACK,     /* CONNECT sent */
    CLIENT_SUBACK,      /* SUBSCRIBE sent */
    CLIENT_READY,
    CLIENT_CLOSING, /* handles closing; then BACKOFF (or STOPPED when stopping) */
};

/* Topics of our identity. */
enum client_topic {
    CLIENT_TOPIC_OUTBOX,
    CLIENT_TOPIC_INBOX,
    CLIENT_TOPIC_ACK,
    CLIENT_TOPIC_REJECT,
    CLIENT_TOPIC_RESYNC,
    CLIENT_TOPIC_SYNC,
    CLIENT_TOPIC_EVENTS, /* a bot's: events, events/sync, events/resync, events/ack */
    CLIENT_TOPIC_EVENTS_SYNC,
    CLIENT_TOPIC_EVENTS_RESYNC,
    CLIENT_TOPIC_EVENTS_ACK,
    CLIENT_TOPIC_COUNT,
};

/* An inbox message that arrived ahead of a gap. */
struct client_held {
    uint64_t position;
    uint16_t packet_id; /* PUBACKed when delivered or dropped */
    struct lmq_buf payload;
};

/* A login in progress: one HTTP request at a time. */
struct client_http {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    bool open;
    int step; /* 0: /auth/challenge, 1: /auth/token */
    http_parser parser;
    http_parser_settings settings;
    bool complete; /* the response is whole */
    bool handled;  /* ... and was acted on */
    struct lmq_buf request;
    struct lmq_buf response_body;
    struct lmq_buf next_body; /* the /auth/token request, built from the challenge */
    char read_buf[4096];
};

struct lmq_client {
    struct crypto_identity ident;
    char pub_b64[CRYPTO_B64URL_CHARS(CRYPTO_ED25519_PUB_BYTES) + 1];
    sqlite3 *db;
    struct lmq_client_callbacks cb;
    uv_loop_t *loop;
    uv_loop_t own_loop;
    bool owns_loop;
    struct sockaddr_storage mqtt_addr;
    struct sockaddr_storage http_addr;
    char topics[CLIENT_TOPIC_COUNT][CLIENT_TOPIC_MAX_BYTES];
    char client_id[24];

    enum client_state state;
    bool stopping;
    bool timers_open;
    unsigned closing_count; /* handles whose close callback is pending */
    unsigned backoff_attempt;
    /* Reached READY since lmq_client_start(): a failed connect is then an outage
     * (LMQ_EIO), before it the address may be wrong (LMQ_CLIENT_E_*_UNREACHABLE). */
    bool reached;
    /* This outage's failed connects to the HTTP (1) or MQTT (2) server were reported: once each
     * (0: none yet). */
    int unreachable_said;
    uv_timer_t backoff_timer;
    uv_timer_t tick_timer; /* keepalive and connect deadline */
    uint64_t attempt_started_ms;
    uint64_t last_rx_ms;
    uint64_t last_tx_ms;

    char token[CRYPTO_JWT_MAX_BYTES + 1]; /* "" when none */
    int64_t token_exp_s;
    /* The server ended the connection because its token expired (DISCONNECT 0xA0): not an
     * error; log in again and reconnect at once. */
    bool token_expired;
    /* The inbox position whose envelope was last refused as a replay (0: none): refused a second
     * time, the server vouches for it, and the position is consumed. */
    uint64_t replay_refused_position;
    struct client_http http;

    uv_tcp_t tcp;
    uv_connect_t connect_req;
    bool tcp_open;
    struct lmq_buf in;
    size_t out_queued_bytes;
    /* Sends an encoded packet; the network code's writer, or a test's capture. */
    int (*tx)(struct lmq_client *c, const struct mqtt_packet *pkt);
    void *tx_ctx; /* for tests */

    /* Sending. */
    uint64_t pump_after_seq;                    /* highest seq published on this connection */
    uint64_t inflight_seq[CLIENT_INFLIGHT_MAX]; /* by packet id - 2; 0 = free */
    unsigned inflight_count;
    unsigned inflight_max;
    uint64_t acked_seq_max; /* highest seq the server acknowledged */
    bool send_deferred;     /* lmq_client_send() ran inside the delivery transaction */

    /* The server's ledger key (pinned in the database on first use). */
    bool ledger_key_known;
    char ledger_key_name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint8_t ledger_key_pub[CRYPTO_ED25519_PUB_BYTES];
    /* GETs path from the server's HTTP listener: 0 with the 200 body in body (replaced),
     * LMQ_EIO (unreachable, or a 5xx: try later), LMQ_EPROTO (another status; *status_out
     * says which). The network's blocking GET, or a test's fake. */
    int (*fetch)(struct lmq_client *c, const char *path, struct lmq_buf *body,
                 unsigned *status_out);

    /* Receiving. */
    uint64_t inbox_position; /* durable: last position handed to the application */
    bool resync_inflight;
    uint64_t resync_count;       /* requests sent on this connection */
    uint64_t resync_progress_at; /* inbox_position when the current resync was asked */
    unsigned resync_idle_count;
    struct client_held held[CLIENT_HOLD_MAX];
    unsigned held_count;

    /* Events (a bot: cb.on_event set). */
    uint64_t event_position;   /* durable: id of the last event handed to the application */
    uint64_t event_acked;      /* highest {"ack":N} the server confirmed (PUBACK) */
    uint64_t event_ack_sent;   /* highest N published on this connection (or confirmed) */
    bool event_ack_inflight;   /* an ack waits for its PUBACK */
    bool event_page_inflight;  /* a resync waits for its marker */
    uint64_t event_page_after; /* the N it asked after (0 for `{}`) */
    uint64_t event_resync_count;
    /* Events handled in the open transaction, committed together (client_events_flush): their
     * count and the last id. */
    bool event_batch_open;
    unsigned event_batch_count;
    uint64_t event_batch_position;
    bool event_in_callback; /* on_event is running: nothing may commit */
    /* No event handled yet (event_position 0): the server's stored position, learned from the
     * marker answering `{}`; events are new after it. */
    bool event_start_known;
    uint64_t event_start;
    uv_timer_t event_ack_timer; /* the idle ack (LMQ_CLIENT_EVENT_ACK_IDLE_MS) */
};

/* --- client_db.c: the client's SQLite state. --- */

/* Opens <dir>/client.db (WAL, synchronous=FULL), creates the schema, checks it belongs to our
 * identity and loads inbox_position and acked_seq_max. Returns 0 or LMQ_EIO (message in err). */
int client_db_open(struct lmq_client *c, const char *dir, char *err, size_t err_len) LMQ_WUR;
/* Closes the database (NULL is fine). */
void client_db_close(struct lmq_client *c);
/* The head of our chain: *seq_out 0 and link "" when nothing was ever sent. Returns 0 or
 * LMQ_EIO. */
int client_db_chain_head(struct lmq_client *c, uint64_t *seq_out,
                         char link_out[LEDGER_ENVELOPE_LINK_BYTES]) LMQ_WUR;
/* Inserts a pending envelope; fails with LMQ_EEXIST when seq is taken. Returns 0 or LMQ_EIO. */
int client_db_outbox_insert(struct lmq_client *c, uint64_t seq, const char *link, const char *to_id,
                            const uint8_t *env, size_t env_len) LMQ_WUR;
/* The pending envelope with the smallest seq > after_seq into env (replaced). Returns 0,
 * LMQ_ENOTFOUND or LMQ_EIO. */
int client_db_outbox_next(struct lmq_client *c, uint64_t after_seq, uint64_t *seq_out,
                          struct lmq_buf *env) LMQ_WUR;
/* Marks the envelope with this link acked (index, position). *seq_out is its seq; *changed
 * false when it was already acked. Returns 0, LMQ_ENOTFOUND or LMQ_EIO. */
int client_db_outbox_ack(struct lmq_client *c, const char *link, uint64_t index, uint64_t position,
                         uint64_t *seq_out, bool *changed) LMQ_WUR;
/* Marks the pending envelope (by link, or by seq when link is "") rejected. Returns 0,
 * LMQ_ENOTFOUND (no such pending envelope) or LMQ_EIO. */
int client_db_outbox_reject(struct lmq_client *c, const char *link, uint64_t seq,
                            const char *reason, uint64_t expected_seq) LMQ_WUR;
/* The stored envelope with this link into env (replaced). Returns 0, LMQ_ENOTFOUND or
 * LMQ_EIO. */
int client_db_outbox_envelope(struct lmq_client *c, const char *link, struct lmq_buf *env) LMQ_WUR;
/* Adopts the server's head of our chain (seq, link, the envelope at ledger index): in one
 * transaction, when every outbox row is rejected (none acked, none pending), deletes them and
 * stores the head as acked, so the next envelope continues it. Returns 0, LMQ_EINVAL (a row is
 * acked or pending: nothing changed) or LMQ_EIO. */
int client_db_chain_adopt(struct lmq_client *c, uint64_t seq, const char *link, const char *to_id,
                          const uint8_t *env, size_t env_len, uint64_t index) LMQ_WUR;
/* Counts pending envelopes. Returns 0 or LMQ_EIO. */
int client_db_pending_count(struct lmq_client *c, uint64_t *count_out) LMQ_WUR;
/* Stores the inbox position: outside a transaction durably at once and in c; inside one (see
 * client_db_begin) only in the database, the caller updates c after the commit. Returns 0 or
 * LMQ_EIO. */
int client_db_set_position(struct lmq_client *c, uint64_t position) LMQ_WUR;
/* The highest seq of sender handed to the application (0: none). 0 or LMQ_EIO. */
int client_db_sender_last_seq(struct lmq_client *c, const char *sender, uint64_t *seq_out) LMQ_WUR;
/* Records seq as handed over from sender (in the delivery transaction). 0 or LMQ_EIO. */
int client_db_sender_set_seq(struct lmq_client *c, const char *sender, uint64_t seq) LMQ_WUR;
/* Opens the delivery transaction (BEGIN IMMEDIATE). Returns 0 or LMQ_EIO. */
int client_db_begin(struct lmq_client *c) LMQ_WUR;
/* Commits it (synchronous: durable on return). On failure it is rolled back. Returns 0 or
 * LMQ_EIO (also when the application ended the transaction itself). */
int client_db_commit(struct lmq_client *c) LMQ_WUR;
/* Stores the id of the last handled event, in the open transaction (client_db_begin); the
 * caller updates c->event_position after the commit. Returns 0 or LMQ_EIO. */
int client_db_set_event_position(struct lmq_client *c, uint64_t id) LMQ_WUR;
/* Opens the savepoint of one event inside the open transaction. Returns 0 or LMQ_EIO. */
int client_db_savepoint(struct lmq_client *c) LMQ_WUR;
/* Keeps what the event's savepoint holds in the transaction. Returns 0 or LMQ_EIO (also when
 * the application ended the transaction itself). */
int client_db_savepoint_release(struct lmq_client *c) LMQ_WUR;
/* Undoes the event's savepoint (the transaction stays open). */
void client_db_savepoint_rollback(struct lmq_client *c);
/* Rolls back the open transaction, if any. */
void client_db_rollback(struct lmq_client *c);
/* Pins vkey as the server's ledger key unless one is pinned already; pinned receives the pinned
 * one (NUL-terminated). Returns 0 or LMQ_EIO. */
int client_db_vkey_pin(struct lmq_client *c, const char *vkey, char *pinned,
                       size_t pinned_cap) LMQ_WUR;
/* The latest verified checkpoint's size and root. Returns 0, LMQ_ENOTFOUND (none yet) or
 * LMQ_EIO. */
int client_db_checkpoint_get(struct lmq_client *c, uint64_t *size_out,
                             uint8_t root_out[LEDGER_MERKLE_HASH_BYTES]) LMQ_WUR;
/* Stores a verified checkpoint unless a larger one is stored. Returns 0 or LMQ_EIO. */
int client_db_checkpoint_put(struct lmq_client *c, uint64_t size,
                             const uint8_t root[LEDGER_MERKLE_HASH_BYTES], const char *note,
                             size_t note_len) LMQ_WUR;

/* --- client_session.c: the protocol logic on decoded packets (no I/O). --- */

/* Delay before reconnect attempt number attempt (0-based), jittered by rand_u32. Always within
 * [CLIENT_BACKOFF_FIRST_MS / 2, CLIENT_BACKOFF_MAX_MS]. */
uint64_t client_session_backoff_ms(unsigned attempt, uint32_t rand_u32);
/* Fills the topics and client id from our id. */
void client_session_init(struct lmq_client *c);
/* The connection is up (CONNACK accepted): resets per-connection state, subscribes. */
int client_session_on_connack(struct lmq_client *c, const struct mqtt_connack *ack) LMQ_WUR;
/* Handles one packet from the server in state READY/SUBACK. Returns 0, or a negative code
 * when the connection must be dropped (protocol violation, application said "not now"). */
int client_session_on_packet(struct lmq_client *c, const struct mqtt_packet *pkt) LMQ_WUR;
/* Publishes pending outbox envelopes while the window has room. Returns 0 or a negative code. */
int client_session_pump(struct lmq_client *c) LMQ_WUR;
/* Drops per-connection state (held messages, in-flight ids) after a disconnect. */
void client_session_reset(struct lmq_client *c);
/* Sends PUBACK for a QoS 1 message (nothing for packet id 0). Returns 0 or a negative code. */
int client_session_puback(struct lmq_client *c, uint16_t packet_id) LMQ_WUR;
/* Publishes payload at QoS 1 on one of our topics with this packet id. */
int client_session_publish(struct lmq_client *c, enum client_topic topic, const uint8_t *payload,
                           size_t len, uint16_t packet_id) LMQ_WUR;
/* Reports an error through on_error (formatting the message). */
void client_session_report(struct lmq_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- client_events.c: a bot's event stream (no I/O, like client_session.c). --- */

/* Per-connection event state is reset (the durable position and confirmed ack stay). */
void client_events_reset(struct lmq_client *c);
/* SUBACK received: asks for the events after the stored position (`{}` when none). */
int client_events_on_ready(struct lmq_client *c) LMQ_WUR;
/* A message on id/<me>/events. Returns 0 (PUBACK sent), or a negative code when the
 * connection must be dropped (the application said "not now", a database error). */
int client_events_on_event(struct lmq_client *c, const struct mqtt_publish *p) LMQ_WUR;
/* A message on id/<me>/events/sync: a page marker or an error. */
int client_events_on_sync(struct lmq_client *c, const struct mqtt_publish *p) LMQ_WUR;
/* PUBACK of an event resync or ack (packet_id one of ours). */
int client_events_on_puback(struct lmq_client *c, const struct mqtt_ack *a) LMQ_WUR;
/* Publishes {"ack":N} for the handled events unless nothing is new or an ack is in flight. */
int client_events_ack(struct lmq_client *c) LMQ_WUR;
/* Commits the events handled in the open transaction (nothing while on_event runs, or when
 * none is open); then publishes what their callbacks sent. Returns 0, or LMQ_EIO (rolled back:
 * the events come again after the reconnect the caller makes). */
int client_events_flush(struct lmq_client *c) LMQ_WUR;
/* True when handled events wait for an ack that is not in flight (net arms the idle timer). */
bool client_events_ack_due(const struct lmq_client *c);

/* --- client_receipt.c: the server's ledger key, receipts and checkpoint history. --- */

/* Fetches GET /ledger/key and checks it against the pinned key (pinning it on first use). A
 * different key is reported (LMQ_CLIENT_E_KEY) and the pinned one stays in force. Returns 0,
 * LMQ_CLIENT_E_KEY, or LMQ_EIO / LMQ_EPROTO / LMQ_ENOMEM when the key could not be read. */
int client_receipt_key_load(struct lmq_client *c) LMQ_WUR;
/* Verifies the receipt of an ack (root: the ack's JSON) for our envelope link at index: the
 * checkpoint's signature by the pinned key, the inclusion proof, and consistency with the
 * stored checkpoint (fetching a consistency proof when the sizes differ); stores the checkpoint
 * when it is newer. Fills ack->tree_size/checkpoint. Returns 0, LMQ_CLIENT_E_RECEIPT or
 * LMQ_CLIENT_E_HISTORY (reported through on_error), or LMQ_EIO / LMQ_ENOMEM (transient: the
 * server could not be asked; the ack must come again). */
int client_receipt_verify(struct lmq_client *c, const json_t *root, struct lmq_ack *ack) LMQ_WUR;
/* On connect: the server's latest checkpoint must verify with the pinned key and be consistent
 * with the one verified before (then it is kept). 0, LMQ_CLIENT_E_RECEIPT, LMQ_CLIENT_E_HISTORY
 * (both reported through on_error), LMQ_EIO (unreachable: not a verdict) or LMQ_ENOMEM. */
int client_receipt_checkpoint_check(struct lmq_client *c) LMQ_WUR;

/* --- client_chain.c: adopting the server's head of our chain. --- */

/* Finds our envelope at seq on the server (GET /ledger/envelopes with our token, at most
 * CLIENT_CHAIN_PAGES_MAX pages) and, when every outbox row is rejected, makes it our chain's
 * head (client_db_chain_adopt). Returns 0, LMQ_ENOTFOUND (the server holds none),
 * LMQ_EINVAL (an outbox row is acked or pending: not adopted), LMQ_EIO / LMQ_EPROTO (the
 * server could not be read) or LMQ_ENOMEM. */
int client_chain_resync(struct lmq_client *c, uint64_t seq) LMQ_WUR;

/* --- client_net.c: sockets, login, timers. --- */

/* Starts a connection attempt now (state BACKOFF or STOPPED -> LOGIN/TCP). */
void client_net_connect(struct lmq_client *c);
/* Drops the connection: closes handles, then reconnects after backoff unless stopping. */
void client_net_drop(struct lmq_client *c, int code, const char *why);
/* Initializes the timers on c->loop. Returns 0 or a negative code. */
int client_net_init(struct lmq_client *c) LMQ_WUR;
/* True when no handle of c is open or closing. */
bool client_net_idle(const struct lmq_client *c);
/* Closes everything (for stop/close). */
void client_net_shutdown(struct lmq_client *c);
/* client_login.c: the body of POST /auth/token for a challenge's nonce, signed with ident's
 * key: {"nonce","pub","sig"} as malloc'd JSON text, or NULL (out of memory, nonce too long). */
char *client_login_token_json(const struct crypto_identity *ident, const char *pub_b64,
                              const char *nonce);

/* One blocking HTTP/1.1 request ("Connection: close") to addr: method and path, with
 * "Authorization: Bearer <bearer>" unless bearer is NULL, and a JSON body unless json_body is
 * NULL. The response body goes into body (reset first; at most body_max_bytes), its status into
 * *status (0 when there is none). Bounded by timeout_ms. 0 (whatever the status), LMQ_EIO
 * (connect or I/O error, timeout, a malformed or too large response). */
int client_http_request(const struct sockaddr_storage *addr, const char *method, const char *path,
                        const char *bearer, const char *json_body, struct lmq_buf *body,
                        size_t body_max_bytes, uint32_t timeout_ms, unsigned *status) LMQ_WUR;
/* c->fetch for a real server: one blocking HTTP GET on the HTTP address, bounded by
 * CLIENT_FETCH_TIMEOUT_MS and CLIENT_HTTP_BODY_MAX_BYTES. */
int client_net_fetch(struct lmq_client *c, const char *path, struct lmq_buf *body,
                     unsigned *status_out) LMQ_WUR;

#endif
