/*
 * Broker internals shared by the files of src/broker: the broker, its
 * connections, sessions, messages and the queues between them. Everything
 * runs on the network thread's libuv loop; nothing here is thread-safe.
 *
 *   conn     one client network connection (socket, buffers, keepalive)
 *   session  the MQTT session a client id owns; outlives its conn when persistent
 *   msg      one published message, reference counted, shared by every queue
 *   delivery a msg queued for (or in flight to) one session
 */
#ifndef BROKER_INTERNAL_H
#define BROKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "broker/broker.h"
#include "core/config.h"
#include "core/buf.h"
#include "core/lmq.h"
#include "core/log.h"
#include "core/map.h"
#include "crypto/keyfile.h"
#include "crypto/passwd.h"
#include "net/accept.h"
#include "net/transport.h"
#include "mqtt/mqtt_acl.h"
#include "mqtt/mqtt_alias_out.h"
#include "mqtt/mqtt_codec.h"
#include "mqtt/sub_tree.h"
#include "broker/proto_result.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

/* Intrusive doubly linked list. */
struct list_node {
    struct list_node *prev, *next;
};

static inline void list_init(struct list_node *head)
{
    head->prev = head->next = head;
}
static inline bool list_empty(const struct list_node *head)
{
    return head->next == head;
}
static inline bool list_linked(const struct list_node *node)
{
    return node->next != NULL;
}
static inline void list_push_back(struct list_node *head, struct list_node *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}
static inline void list_unlink(struct list_node *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
}
#define list_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A published message. Immutable once routed; freed when the last reference goes. */
struct msg {
    struct broker *broker;
    uint32_t refcount;
    bool committed; /* durable, or nothing stores it; deliveries wait for this */
    bool batched;   /* in a commit batch: committed once the batch is durable */
    bool persisted; /* a STORE_MESSAGE_PUT was written for it */
    bool indexed;   /* in broker->msgs_by_id (messages paged in from the store) */
    /* id (broker-wide, the store key), QoS and retain flag it was published with,
     * created_unix_ms (wall clock at arrival, for message expiry across restarts), expiry,
     * payload format, topic, payload and properties: what STORE_MESSAGE_PUT and
     * STORE_WILL_PUT records point at (content_type etc.: data == NULL when absent). */
    struct store_message stored;
    size_t size_bytes; /* topic + payload + properties, for queue byte limits */
    /* the bytes the slices point into follow the struct */
};

enum delivery_state {
    DELIVERY_QUEUED = 0,   /* waiting in the session queue */
    DELIVERY_WAIT_PUBACK,  /* QoS 1 sent */
    DELIVERY_WAIT_PUBREC,  /* QoS 2 PUBLISH sent */
    DELIVERY_WAIT_PUBCOMP, /* QoS 2 PUBREL sent */
};

struct delivery {
    struct list_node link; /* in session->queue, ->queue0 or ->inflight */
    struct msg *msg;
    enum delivery_state state;
    uint64_t seq;        /* position in the session's stored queue; 0 = not stored */
    uint64_t send_after; /* batch that must be durable before the next packet goes out */
    uint16_t packet_id;
    uint8_t qos; /* delivery QoS: min(publish, subscription) */
    bool retain; /* retain flag to send */
    uint8_t sub_id_count;
    uint32_t sub_ids[]; /* subscription identifiers to send */
};

/* A subscription a session holds, kept to remove it from the tree and to persist it. */
struct session_sub {
    struct list_node link;
    uint8_t options;
    uint32_t sub_id;
    size_t group_len; /* 0 when not shared */
    size_t filter_len;
    uint8_t text[]; /* group bytes then filter bytes */
};

/* A session owner: an identity id (64 hex), "user:<password-file user>", "cn:<certificate CN>"
 * or "anonymous"; see session_principal(). */
#define SESSION_OWNER_MAX_BYTES (5 + CRYPTO_PASSWD_USER_MAX_BYTES + 1)
#define SESSION_OWNER_ANONYMOUS "anonymous"

struct session {
    struct broker *broker;
    struct conn *conn;  /* NULL while offline */
    uint8_t *client_id; /* NUL-terminated copy */
    size_t client_id_len;
    uint32_t expiry_s;     /* session expiry interval; UINT32_MAX = never */
    bool persistent;       /* outlives its connection */
    bool stored;           /* a STORE_SESSION_PUT was written and not yet deleted */
    struct list_node subs; /* struct session_sub */
    uint32_t sub_count;
    struct list_node queue;    /* struct delivery, QoS 1/2, state QUEUED, in order */
    struct list_node queue0;   /* struct delivery, QoS 0: not held back by the inflight window */
    struct list_node inflight; /* struct delivery, sent and unacknowledged, in order */
    uint32_t queued_count;     /* queue + queue0 + inflight + stored backlog */
    uint64_t queued_bytes;
    /* The QoS 0 part of the above (queue0): bounded on its own by max_queued_qos0 and dropped,
     * oldest first, whenever QoS 1/2 needs the room (session_queue.c). */
    uint32_t queued0_count;
    uint64_t queued0_bytes;
    uint32_t memory_queued;  /* deliveries on s->queue */
    uint64_t next_seq;       /* next stored queue position */
    uint64_t paged_seq;      /* stored rows up to here are in memory (or done) */
    uint32_t stored_backlog; /* stored rows not in memory: paged in as the window frees */
    uint64_t stored_backlog_bytes;
    /* Backlog deliveries whose rows are in a commit not yet done (send_after: its batch): the
     * store's reader can't see them, so queue_overflow finds its oldest rows here. Freed once
     * committed; in seq order. */
    struct list_node unsynced;
    uint32_t unsynced_count;
    uint64_t dropped_seq;      /* stored rows in (paged_seq, dropped_seq] still QUEUED were dropped
                                  by queue_overflow (their deletes may not be committed yet) */
    uint32_t dropped_untold;   /* dropped by queue_overflow since the client was last told */
    uint64_t progress_ms;      /* loop time it last completed a delivery, or connected */
    uint64_t offline_since_ms; /* loop time it went offline (or was loaded at start) */
    bool overflow_logged;      /* a queue_overflow line was logged; again once it drained */
    bool overflow_ending;      /* queue_overflow = end_session: ends on the next loop turn */
    uint32_t inflight_count;
    uint32_t inflight_unsent; /* inflight deliveries whose packet waits for a commit */
    uint16_t next_packet_id;
    uint8_t *inbound_qos2; /* bitmap of 65536 packet ids awaiting PUBREL, lazily allocated */
    uint32_t inbound_qos2_count;
    struct msg *will; /* will message of the current/last connection */
    bool will_stored; /* a STORE_WILL_PUT is in the store for it */
    uint8_t will_qos;
    uint32_t will_delay_s;
    uint64_t will_due_ms;         /* 0 = no delayed will pending */
    uint64_t expires_ms;          /* 0 = not scheduled */
    uv_timer_t timer;             /* fires for a delayed will or session expiry */
    struct list_node commit_wait; /* linked while its queue head waits for a commit */
    uint64_t route_gen;           /* routing scratch: generation of route_idx */
    size_t route_idx;
    bool closing;           /* being destroyed */
    uint32_t hold_delivery; /* SUBACKs not yet sent: deliveries (retained) wait for them */
    /* The principal that owns the session (session_principal()); "" in a row written before
     * owners were recorded for every principal: the first principal to resume it claims it. */
    char owner[SESSION_OWNER_MAX_BYTES];
    bool quota_counted;    /* counted in the per-principal / per-address session quotas */
    uint8_t quota_addr[8]; /* address group it was created from (conn_address_group; 0: none) */
    uint8_t quota_addr_len;
    struct list_node retain_cursors; /* retained deliveries still to make (retain.c); lazily init */
    /* A subscription may deliver a topic the ACL of generation acl_gen (broker->acl_gen) does
     * not let the session read: its deliveries are checked one by one (access.c). */
    bool acl_partial;
    uint64_t acl_gen;
    struct list_node retain_link; /* in the retained index's run list while they may advance */
};

/* Where a CONNECT's password-file check stands (access.c). */
enum conn_password_state {
    CONN_PASSWORD_NONE = 0, /* not checked (yet) */
    CONN_PASSWORD_PENDING,  /* hashing on the thread pool; input paused */
    CONN_PASSWORD_PASSED,
    CONN_PASSWORD_FAILED,
};

/* What the codec needs the broker to remember between packets of one connection. */
enum conn_state {
    CONN_AWAIT_CONNECT = 0,
    CONN_CONNECTED,
    CONN_CLOSING, /* flushing a final packet, then lingering (conn_end); input discarded */
};

/* How a connection reaches us; the metrics count connected clients by it. */
enum conn_transport_kind {
    CONN_TRANSPORT_TCP = 0,
    CONN_TRANSPORT_TLS,
    CONN_TRANSPORT_WS,
    CONN_TRANSPORT_WSS,
    CONN_TRANSPORT_KIND_COUNT,
};

struct conn {
    struct broker *broker;
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then keepalive */
    uv_write_t write_req;
    uv_shutdown_t shutdown_req; /* the half-close of a lingering connection */
    uint32_t refcount;          /* the conn itself + pending acks that reference it */
    uint32_t handles_open;      /* tcp + timer; freed once both closed and refcount == 0 */
    uint64_t id;
    enum conn_state state;
    uint8_t version;
    struct session *session;
    char remote[64];
    struct lmq_buf in;
    struct lmq_buf out;     /* appended to */
    struct lmq_buf writing; /* handed to uv_write */
    bool write_active;
    bool reading;
    bool blocked;   /* input paused: on broker->blocked (queue space) or ->yielded */
    bool wait_acks; /* blocked (3.1.1) on its inbound window: resumed when one of its acks goes */
    struct list_node dirty; /* linked while out has bytes to flush */
    struct list_node blocked_link;
    struct list_node all; /* broker->conns */
    uint64_t last_rx_ms;
    uint16_t keepalive_s;
    uint16_t send_quota_max;  /* client's receive maximum (capped by config) */
    uint32_t max_packet_out;  /* client's maximum packet size */
    uint16_t inbound_pending; /* QoS 1 received whose PUBACK is not yet sent */
    uint16_t pubrec_pending;  /* QoS 2 received whose PUBREC is not yet sent */
    uint32_t acks_waiting;    /* its acks (SUBACK too) in commit batches, not yet sent */
    uint16_t topic_alias_max;
    struct lmq_bytes *aliases; /* inbound topic aliases, topic_alias_max + 1 slots */
    /* Outbound topic aliases (v5): min(client's Topic Alias Maximum, max_topic_alias_out); the
     * table is made at the first PUBLISH to the client and lives as long as this connection. */
    uint16_t topic_alias_out_max;
    struct mqtt_alias_out *alias_out;
    bool request_problem_info;
    bool session_expiry_was_zero;
    bool will_on_close;  /* publish the will when this connection ends */
    bool counted;        /* counted in broker->connected_count */
    bool takeover;       /* closed because another connection took the session */
    bool lingering;      /* conn_end: half-close once flushed, then discard input until the end */
    bool half_closed;    /* shutdown(SHUT_WR) requested: nothing more is written */
    bool connect_logged; /* client_connected was logged: one client_disconnected will be */
    bool end_logged;     /* client_disconnected was logged */
    size_t linger_bytes; /* read and discarded while lingering (CONN_LINGER_MAX_BYTES) */
    /* Why the next DISCONNECT (or CONNACK refusal) is sent: a static English sentence for its
     * Reason String, set by the handler that decided it; NULL for the reason code's default. */
    const char *why;
    struct conn_address *address; /* counted against its source address; NULL if not */
    enum conn_transport_kind kind;
    /* TLS and/or WebSocket between the socket and MQTT; unused (no copies) for plain TCP. */
    struct net_transport transport;
    struct lmq_buf raw;  /* socket bytes not yet decoded (TLS/WebSocket only) */
    struct lmq_buf wire; /* encoded bytes for the socket, waiting for the write in flight */
    char tls_cn[65];     /* verified client certificate CN, "" without one */
    char identity[CRYPTO_IDENTITY_ID_BYTES]; /* authenticated identity id, "" if none */
    /* The name ACL rules know the client by: identity id, password-file user or verified
     * certificate CN; "" when anonymous. */
    char user[CRYPTO_PASSWD_USER_MAX_BYTES + 1];
    size_t user_len;
    enum conn_password_state password_state;
    uint8_t refusal_code;    /* non-zero: CONNECT gets this reason code (per-address limit) */
    const char *refusal_why; /* static text for the log */
    /* The login token this connection authenticated with (pipeline_tokens.c): it is ended when the
     * token expires or is revoked. 0 when it used no token (password, certificate, anonymous). */
    int64_t token_iat_s;
    int64_t token_exp_s;
    size_t output_charged;  /* this conn's share of broker->output_bytes */
    uint64_t slow_since_ms; /* output over CONN_FAIR_OUTPUT_BYTES while over budget; 0 = not */
    /* Never "loopback" for [auth] anonymous = loopback, whatever the socket's address: a
     * browser page from an origin not in [http] allowed_origins, or a client that came through
     * a trusted proxy from elsewhere (websocket.c). */
    bool loopback_denied;
    char via[64];       /* the trusted proxy's "host:port" when remote is the forwarded client */
    bool proxy_pending; /* from a [server] proxy_protocol peer: its PROXY header comes first */
    /* MQTT 5 enhanced authentication (enhanced_auth.c): set when the CONNECT named the method;
     * NULL otherwise. */
    struct enhanced_auth *eauth;
};

/* Moves c's state forward: AWAIT_CONNECT -> CONNECTED -> CLOSING, never back (CLOSING may be
 * set again); CONNECTED only from AWAIT_CONNECT, with the session attached. */
static inline void conn_state_set(struct conn *c, enum conn_state to)
{
    LMQ_ASSERT(to >= c->state);
    LMQ_ASSERT(to != CONN_CONNECTED ||
               (c->state == CONN_AWAIT_CONNECT && c->session != NULL && c->session->conn == c));
    c->state = to;
}

/* What a WebSocket upgrade request said about its client (websocket.c to conn.c). */
struct conn_ws_peer {
    bool forwarded;      /* the TCP peer is in [http] trusted_proxies */
    bool client_known;   /* ... and X-Forwarded-For named the client: client */
    bool foreign_origin; /* a browser (Origin sent) from an origin not in allowed_origins */
    struct sockaddr_storage client;
};

/* commit.c: the commit seam. A commit hook is told of every commit batch: before_commit once
 * every record of the loop turn is written (it may still write records and defer messages into
 * the batch), on_durable once the batch is durable (its messages committed and its MQTT acks
 * sent), batch_free after. Each gets the batch's number and the hook's own slot of per-batch
 * state (NULL until the hook sets it; batch_free leaves it NULL). Order guarantees: see "The
 * commit seam" in docs/ARCHITECTURE.md. */
#define COMMIT_HOOKS_MAX 8
struct commit_hook {
    const char *name; /* for the start-up error */
    void (*before_commit)(void *ctx, uint64_t batch_seq, void **data);
    void (*on_durable)(void *ctx, uint64_t batch_seq, void **data);
    void (*batch_free)(void *ctx, uint64_t batch_seq, void **data);
};
struct commit_hook_entry {
    const struct commit_hook *hook; /* static, outlives the broker */
    void *ctx;
};
struct commit_batch;

struct broker_stats {
    uint64_t connections_accepted;
    uint64_t connections_refused_address; /* per-address count or rate limit */
    uint64_t tls_handshake_failures;      /* MQTT and HTTP listeners */
    uint64_t ws_protocol_errors;          /* WebSocket framing violations */
    uint64_t messages_in;
    uint64_t messages_out;
    uint64_t messages_in_qos[3];
    uint64_t messages_out_qos[3];
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t packets_in;  /* MQTT packets of every type ($SYS/broker/messages/received) */
    uint64_t packets_out; /* ... sent ($SYS/broker/messages/sent) */
    uint64_t refused_quota;
    uint64_t qos0_dropped;     /* QoS 0 budget (max_queued_qos0) or the session's queue full */
    uint64_t qos0_gave_way;    /* queued QoS 0 dropped to make room for QoS 1/2 */
    uint64_t overflow_dropped; /* QoS 1/2 deliveries dropped by queue_overflow drop_oldest */
    uint64_t overflow_ended;   /* sessions ended by queue_overflow end_session */
    uint64_t overflow_identity_left; /* id/ deliveries not queued to a full session (resync) */
    uint64_t expired_dropped;
    uint64_t oversize_dropped;
    uint64_t alias_out_assigned;    /* PUBLISHes that gave a topic an alias towards a client */
    uint64_t alias_out_used;        /* alias-only PUBLISHes to clients */
    uint64_t alias_out_saved_bytes; /* bytes the alias-only ones saved */
    uint64_t alias_out_spent_bytes; /* bytes the assigning ones added (Topic Alias property) */
    uint64_t token_conns_ended; /* connections ended because their token expired or was revoked */
    uint64_t tokens_revoked;    /* revocations applied (HTTP, offline + SIGHUP) */
    uint64_t ledger_quota_refused;     /* envelopes refused over ledger_bytes_per_day */
    uint64_t slow_consumers_closed;    /* closed for holding output over the memory budget */
    uint64_t output_budget_exceeded;   /* times the output budget was exceeded */
    uint64_t login_evicted[3];         /* by enum pipeline_nonce_evict */
    uint64_t password_busy;            /* password CONNECTs refused "server busy" */
    uint64_t password_backoff_refused; /* refused during an address's back-off */
    uint64_t password_waited;          /* waited for a slot instead of being refused */
};

struct broker {
    uv_loop_t loop;
    struct lmq_config cfg;
    struct store *store;
    uv_tcp_t listeners[2 * LMQ_LISTENERS_MAX];            /* cfg.mqtt, then cfg.mqtts */
    struct net_acceptor acceptors[2 * LMQ_LISTENERS_MAX]; /* accept for listeners[i] */
    size_t listener_count;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_prepare_t flush_prepare;
    uv_check_t flush_check;
    uv_timer_t tick;
    uv_timer_t shutdown_timer; /* bounds the graceful shutdown */
    struct lmq_map *sessions;  /* client id -> struct session */
    size_t session_count;
    size_t stored_session_count;        /* sessions with stored state (capped by max_sessions) */
    struct lmq_map *session_principals; /* owner -> count of its stored sessions */
    struct lmq_map *session_addresses;  /* raw IP -> count of stored sessions created from it */
    struct sub_tree *subs;
    struct http_server *http;        /* /healthz, /metrics, /version; NULL when not configured */
    struct http_server *https;       /* the same over TLS; NULL when not configured */
    struct retain_index *retained;   /* retained messages by topic level (retain.c) */
    uv_idle_t retain_idle;           /* advances retained deliveries on idle turns */
    struct lmq_map *msgs_by_id;      /* id -> struct msg, for messages paged in from the store */
    struct lmq_map *addresses;       /* raw source IP -> struct conn_address */
    struct list_node idle_addresses; /* conn_address with nothing open, oldest first */
    uint32_t refusing_count;         /* conns held only to refuse their CONNECT */
    bool disk_low;                   /* free space under min_free_disk: QoS 1/2 refused */
    uint64_t disk_checked_ms;
    int64_t wall_offset_ms; /* wall clock minus loop time, refreshed every tick */
    uint64_t tick_count;
    uint64_t start_ms;             /* loop time at start: the admin API's uptime */
    uint64_t retained_bytes;       /* charged against max_retained_bytes (retain.c) */
    uint64_t output_bytes;         /* output held by all connections (conn.c) */
    uint64_t output_over_since_ms; /* over max_memory_output_bytes since; 0 = under */
    uint64_t qos0_drop_logged_ms;  /* last qos0_dropped log line (one a second at most) */
    struct list_node conns;
    struct list_node dirty;
    struct list_node blocked;        /* conns waiting for queue space, retried on the tick */
    struct list_node yielded;        /* conns that stopped parsing to be fair, resumed this turn */
    struct list_node commit_waiters; /* sessions whose queue head awaits a commit */
    uint32_t conn_count;             /* sockets open */
    uint32_t connected_count;        /* past CONNECT */
    uint32_t connected_by_kind[CONN_TRANSPORT_KIND_COUNT];
    uv_tcp_t *first_tls_listener;      /* listeners[] from here on are MQTT over TLS */
    struct tls_server *tls;            /* certificates for mqtts/https; NULL when neither is used */
    struct lmq_buf transport_scratch;  /* lent to net_transport calls (single-threaded) */
    struct crypto_passwd_file *passwd; /* [auth] password_file; NULL when none */
    struct mqtt_acl *acl;              /* [auth] acl_file; NULL when none (all allowed) */
    uint64_t acl_gen;                  /* bumped by every ACL (re)load (session->acl_gen) */
    uint32_t password_checks;          /* password hashes queued or running */
    struct access_guard *access_guard; /* per-address shares and back-off (access_guard.c) */
    struct pipeline *pipeline;         /* the identity/ledger pipeline (src/pipeline) */
    struct data *data;                 /* typed objects (src/data) */
    struct events *events;             /* the event stream (src/events); NULL when off */
    struct webhooks *webhooks;         /* webhook deliveries (src/events/webhooks.c) */
    struct plugins *plugins;           /* loaded plugins (src/plugins); NULL when none */
    struct bots *bots;                 /* [bots] ids (src/events/bots.c); NULL when none */
    struct validators *validators;     /* [bots] validators (src/events/validators.c) or NULL */
    struct read_budget *read_budget;   /* data reads' loop time per client (read_budget.c) */
    struct jobs *jobs;                 /* the job scheduler (src/jobs) */
    struct seal *seal;                 /* sealing to Ethereum (src/seal); NULL when off */
    struct chain *chain;               /* the chain follower (src/chain); NULL when off */
    uint64_t security_events[32];      /* by enum security_event (SECURITY_EVENT_COUNT <= 32) */
    /* Recording security events ([events] security_per_s, security.c): the window's start
     * (monotonic and Unix ms), what it recorded and suppressed, and suppressed since start. */
    uint64_t security_window_ms;
    int64_t security_window_unix_ms;
    uint32_t security_window_recorded;
    uint64_t security_window_suppressed;
    uint64_t security_suppressed_total;
    uint64_t next_conn_id;
    uint64_t next_msg_id;
    uint64_t route_gen;
    struct commit_batch *batch; /* open batch, NULL when nothing to commit */
    uint64_t next_batch_seq;    /* number of the next batch opened */
    uint64_t records_written;   /* store records written since start (commit_store_write) */
    bool queue_room_freed;  /* a delivery left a queue this turn: retry conns blocked on space */
    uint64_t committed_seq; /* every batch up to this number is durable */
    /* A new session's first queue seq: above every row of a session whose rows an ended
     * session left to the expire_messages job (STORE_SESSION_DELETE defer_queue). */
    uint64_t queue_seq_floor;
    struct commit_hook_entry commit_hooks[COMMIT_HOOKS_MAX]; /* in registration order */
    size_t commit_hook_count;
    struct route_target *route_targets; /* routing scratch, grows to the largest fan-out */
    size_t route_target_cap;
    bool stopping;
    bool draining;          /* SIGTERM: /healthz says draining for [server] drain_grace_ms */
    uv_timer_t drain_timer; /* ends the drain grace period */
    struct sys_tree *sys;   /* the $SYS/broker/... updates (sys_tree.c); NULL when off */
    int exit_code;
    struct broker_stats stats;
};

/* Connections accepted past max_connections only to be refused with a reason; beyond, closed
 * at once. */
#define CONN_REFUSAL_SLACK 64

/* fd_limit.c: RLIMIT_NOFILE. */
/* Descriptors the configuration can hold open at once (connections, refusal slack, listeners
 * and a margin for the store and the loop). */
uint64_t fd_limit_needed(const struct lmq_config *cfg);
struct fd_limit_info {
    uint64_t soft_at_start, soft, hard, needed; /* RLIM_INFINITY reads as UINT64_MAX */
    bool fitted; /* the default connection limits were lowered to fit the limit */
};
/* Raises the soft open-file limit to the hard one. When fd_limit_needed(cfg) is still more than
 * the limit: the default connection limits are lowered to fit (fitted), limits the operator set
 * are refused with LMQ_ELIMIT after a one-line message on stderr. Fills *info either way. */
int fd_limit_apply(struct lmq_config *cfg, struct fd_limit_info *info) LMQ_WUR;
/* Logs the limits ("fd_limit", and "fd_limit_fitted"), once the start went well. */
void fd_limit_log(const struct lmq_config *cfg, const struct fd_limit_info *info);

/* conn_address.c: per-source-address limits. */
struct conn_address;
/* Counts a new connection against its address. Returns 0, or LMQ_ELIMIT / LMQ_ENOMEM with the
 * limit's name in *why (the connection is then not counted). */
int conn_address_admit(struct broker *b, struct conn *c, const struct sockaddr_storage *ss,
                       const char **why) LMQ_WUR;
/* Uncounts a closing connection. */
void conn_address_release(struct broker *b, struct conn *c);
/* Copies the raw IP (4 or 16 bytes) c is counted against into key; returns its length, 0 when
 * c is not counted against an address. */
uint8_t conn_address_raw(const struct conn *c, uint8_t key[16]);
/* The key per-address accounting groups c under: its IPv4 address (IPv4-mapped included), or
 * the /64 of its IPv6 address; returns the length (4 or 8), 0 when c has no address. */
uint8_t conn_address_group(const struct conn *c, uint8_t key[8]);
/* Frees entries idle for a whole rate window (all of them when all is true). */
void conn_address_sweep(struct broker *b, bool all);

struct http_request;
struct http_response;
struct lmq_buf;

/* admin.c: the admin API, /admin/v1/... (docs/PROTOCOL.md "Admin API"), for [admin] ids only. */
/* True when req's path is under /admin/. */
bool admin_path(const struct http_request *req);
/* Answers an admin route: 401 without a valid token, 403 for an identity not in [admin] ids
 * (both security events), else the route's JSON; every call logged as one admin_call line. */
int admin_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                struct lmq_buf *out);

/* security.c: security events, broker-wide (bad credentials, ACL denials, session quotas, the
 * pipeline's refusals): counted by kind (metrics) and logged. */
enum security_event {
    SECURITY_EVENT_BAD_TOKEN = 0,
    SECURITY_EVENT_EXPIRED_TOKEN,
    SECURITY_EVENT_BAD_LOGIN,
    SECURITY_EVENT_REUSED_NONCE,
    SECURITY_EVENT_ACL_DENIED,
    SECURITY_EVENT_BAD_SIGNATURE,
    SECURITY_EVENT_NOT_SENDER,
    SECURITY_EVENT_REPLAY,
    SECURITY_EVENT_RATE_LIMITED,
    SECURITY_EVENT_ANONYMOUS_REFUSED,
    SECURITY_EVENT_BAD_PASSWORD,
    SECURITY_EVENT_SESSION_QUOTA,
    SECURITY_EVENT_SESSION_OWNER,
    SECURITY_EVENT_REVOKED_TOKEN, /* a revoked token at CONNECT or on /auth/revoke */
    SECURITY_EVENT_LEDGER_QUOTA,  /* an envelope over [auth] ledger_bytes_per_day */
    SECURITY_EVENT_ADMIN_DENIED,  /* an admin route without a token, or not in [admin] ids */
    SECURITY_EVENT_COUNT,
};
/* Counts and logs one security event (c may be NULL). */
void security_event(struct broker *b, struct conn *c, enum security_event kind, const char *detail);
const char *security_event_name(enum security_event kind);
/* Whether one more security-relevant event may be recorded in the event stream this second
 * ([events] security_per_s; counted as suppressed when not). False when the stream is off. */
bool security_event_record_allowed(struct broker *b);
/* From the broker's tick: a window that ended with suppressed events records them. */
void security_events_tick(struct broker *b);

/* access.c: the password file and the ACL file. */
/* Hashes queued or running at once; more CONNECTs with a password wait (access_guard.c). */
#define ACCESS_PASSWORD_CHECKS_MAX 64
/* Loads [auth] password_file and acl_file. 0 or an error after printing a one-line message. */
int access_init(struct broker *b) LMQ_WUR;
/* SIGHUP: re-reads both files; a file that fails to load keeps the old rules (logged). */
void access_reload(struct broker *b);
void access_destroy(struct broker *b);
/* Starts checking a CONNECT's user name and password against the password file (which must
 * be loaded): returns PROTO_PAUSED, or the result of a check that is done (PROTO_OK with
 * c->user set, or PROTO_REFUSE_CONNECT with the CONNACK reason code in *reason after logging a
 * security event). */
enum proto_result access_password(struct conn *c, const struct mqtt_connect *cn,
                                  uint8_t *reason) LMQ_WUR;
/* False (and an acl_denied security event) when an ACL is loaded and does not let c publish to
 * topic (mqtt_acl.h). client_id: the connection's (its session's once connected). */
bool access_may_publish(struct conn *c, const uint8_t *client_id, size_t client_id_len,
                        const uint8_t *topic, size_t len);
/* Notes s's new subscription to filter (outside id/, non-shared part): whether it may deliver
 * a topic s may not read, so that its deliveries are checked (access_may_deliver). */
void access_subscribed(struct session *s, const uint8_t *filter, size_t len);
/* True when s may receive a message on topic: always under id/ (the identity rules decide) and
 * without an ACL; else the ACL's read check, skipped for a session whose subscriptions all
 * deliver readable topics only. */
bool access_may_deliver(struct session *s, const uint8_t *topic, size_t len);

/* access_guard.c: per-address shares of the password checks and back-off after failures. */
struct access_guard_entry;
/* access_guard_enter's verdicts. */
enum access_guard_verdict {
    ACCESS_GUARD_RUN = 0, /* a slot is c's: start the hash */
    ACCESS_GUARD_WAIT,    /* c waits (input paused); resumed when a slot frees */
    ACCESS_GUARD_REFUSE,  /* refuse the CONNECT with the CONNACK reason code in *reason (logged) */
};
int access_guard_init(struct broker *b) LMQ_WUR;
/* Releases waiting connections and frees the table; safe when init failed or never ran. */
void access_guard_destroy(struct broker *b);
/* Decides for c's password CONNECT. With ACCESS_GUARD_RUN, *entry is to be handed to
 * access_guard_done when the check is over. */
enum access_guard_verdict access_guard_enter(struct broker *b, struct conn *c,
                                             struct access_guard_entry **entry,
                                             uint8_t *reason) LMQ_WUR;
/* A check that could not be started: gives its share back (no failure counted). */
void access_guard_cancel(struct broker *b, struct access_guard_entry *entry);
/* Tick: hands slots freed without a check ending (cancelled ones) to waiting CONNECTs. */
void access_guard_tick(struct broker *b);
/* A check is over: frees its share, counts a failure (back-off), resumes waiters fairly. */
void access_guard_done(struct broker *b, struct access_guard_entry *entry, struct conn *c,
                       bool passed);

/* broker.c */
/* SIGHUP's work: re-reads the config file (when there is one) and applies what may change at
 * run time (log level, TLS files, ACL and password files, revocations, auditors, [data]
 * readers and limits, models, [admin] ids). 0, or LMQ_EINVAL with the file's message in err
 * (logged; the old settings stay). */
int broker_reload(struct broker *b, char *err, size_t err_len);
/* Logs a storage failure and exits with status 2 (fail stop). */
void broker_fail_stop(struct broker *b, const char *what, int err) __attribute__((noreturn));
/* Called when a connection is freed: finishes a shutdown once the last one is gone. */
void broker_on_conn_freed(struct broker *b);

/* clock.c */
/* Loop time in ms (monotonic), as of this loop turn. */
uint64_t clock_now_ms(struct broker *b);
/* Wall-clock time in ms (for message expiry), as of this loop turn. */
int64_t clock_unix_ms(struct broker *b);
/* Re-reads the wall clock (at start and on every tick). */
void clock_sync(struct broker *b);

/* commit.c: commit batches (one store commit per loop turn) and the commit seam. */
/* Registers a commit hook (at start, before the first batch; hooks run in registration order)
 * and writes its slot, the index of its per-batch state. 0, or LMQ_ELIMIT past
 * COMMIT_HOOKS_MAX (a start-up error, printed). */
int commit_hook_register(struct broker *b, const struct commit_hook *hook, void *ctx,
                         size_t *slot) LMQ_WUR;
/* The hook's per-batch state in the open batch (opening one; fail stop without memory). */
void **commit_hook_data(struct broker *b, size_t slot);
/*
 * Acknowledges a PUBLISH or PUBREL. With needs_commit (records were written for it) the ack
 * joins the open commit batch and is sent once the batch is durable; without, it is sent now,
 * unless an earlier ack of c (a SUBACK/UNSUBACK too) still waits for a commit: then it waits
 * as well, so acks go out in the order their packets came in [MQTT-4.6.0-2, -3]. why: the
 * ack's Reason String (a static sentence), NULL for the code's default.
 */
int commit_ack(struct broker *b, struct conn *c, uint8_t type, uint16_t packet_id,
               uint8_t reason_code, bool releases_quota, bool needs_commit, const char *why);
/* Parks a SUBACK/UNSUBACK until the commit that holds the subscription change. */
int commit_defer_suback(struct broker *b, struct conn *c, uint8_t type, uint16_t packet_id,
                        const uint8_t *codes, size_t count);
/* Adds a message to the open batch: deliveries of it wait until the batch is durable. */
int commit_defer_msg(struct broker *b, struct msg *m);
/* Number of the open batch (opening one): durable once committed_seq reaches it. */
uint64_t commit_batch_seq(struct broker *b);
/* Writes a record to the store; a failure stops the broker (fail stop). */
void commit_store_write(struct broker *b, const struct store_record *rec);
/* Once per loop turn (and at shutdown): commits the open batch (the hooks' before_commit, then
 * store_commit; a commit waited for gets a batch even when nothing was written); with the store
 * detached, releases it instead (no on_durable). */
void commit_turn_end(struct broker *b);
/* Checks the data directory's free space against min_free_disk (b->disk_low; logged when it
 * changes). Also done by commit_turn_end, at most every 10 ms while writing. */
void commit_check_disk(struct broker *b);

static inline void broker_count_out(struct broker *b, uint8_t qos)
{
    b->stats.messages_out++;
    b->stats.messages_out_qos[LMQ_MIN(qos, 2)]++;
}

/* conn.c */
/* net_acceptor callbacks of the MQTT and MQTT-over-TLS listeners (ctx: the broker). */
void conn_on_accept_tcp(void *ctx, int fd);
void conn_on_accept_tls(void *ctx, int fd);
/*
 * Takes over a socket upgraded to MQTT over WebSocket by the HTTP server: fd (owned from now
 * on), the TLS session that carried the upgrade (owned; NULL for ws://), the bytes that
 * followed the upgrade request and what the request said about the client (peer). Returns 0,
 * or an error after closing fd and freeing tls.
 */
int conn_adopt_websocket(struct broker *b, int fd, struct tls_session *tls, const uint8_t *early,
                         size_t early_len, const struct conn_ws_peer *peer);
/* Logs event with the connection's id, remote address, client id and an optional detail. */
void conn_log(struct conn *c, enum lmq_log_level level, const char *event, const char *detail);
/* Logs connect_refused (info) with the CONNECT's reason code in hex and why (for the log). */
void conn_log_refused(struct conn *c, uint8_t reason_code, const char *why);
/* Logs client_connected (info): client id, user, transport, protocol version. Once, at CONNACK. */
void conn_log_connected(struct conn *c);
/*
 * Logs the end of a connection that logged client_connected, once (later calls do nothing):
 * "client_disconnected" at info with who ended it (by: "client", "server" or "network"), a
 * reason word, the MQTT reason code when there was one (code < 0: none) and a detail (or NULL).
 * Called before the session is detached, so the line has the client id.
 */
void conn_log_disconnected(struct conn *c, const char *by, const char *reason, int code,
                           const char *detail);
/* Encodes pkt into c's output; returns 0, or an error after which c is being closed. */
int conn_send(struct conn *c, const struct mqtt_packet *pkt);
/* conn_send() for a caller that already computed mqtt_encoded_size() (size_bytes). */
int conn_send_sized(struct conn *c, const struct mqtt_packet *pkt, size_t size_bytes);
/* conn_send_sized() for a PUBLISH to the client (full topic, within its maximum packet size):
 * applies c's outbound topic aliases first, so pkt may go out alias-only or with a Topic Alias
 * (pkt is rewritten accordingly). */
int conn_send_publish(struct conn *c, struct mqtt_packet *pkt, size_t size_bytes);
/* v5: sends DISCONNECT(reason) first (Reason String c->why or the code's default); then ends c
 * with conn_end (lingering, except for 0x8B at shutdown). */
void conn_disconnect(struct conn *c, uint8_t reason_code);
/* How long, and how many bytes, a connection the broker ended keeps reading (and discarding)
 * after it is half-closed, so that a client still writing reads the final packet instead of
 * a reset. The time also bounds the flush of that packet. */
#define CONN_LINGER_MS 2000u
#define CONN_LINGER_MAX_BYTES (64u * 1024u)
/*
 * The broker ends c after its final packet (DISCONNECT, a refusing CONNACK, or nothing for a
 * 3.1.1 protocol violation): the session is detached, input is no longer handled, the output
 * goes out with the transport's goodbye (WebSocket close frame, TLS close_notify). Lingering
 * (not shutting_down): the socket is then half-closed (shutdown(SHUT_WR)) and read and
 * discarded until the peer closes, CONN_LINGER_MAX_BYTES arrive or CONN_LINGER_MS after this
 * call; until then c still counts against the connection limits. Shutting down: closed once
 * the output is written (CONN_LINGER_MS at most).
 */
void conn_end(struct conn *c, bool shutting_down);
/* The Reason String the broker sends with reason_code in a packet of type (a static
 * sentence), or NULL for codes below 0x80. */
const char *conn_reason_text(uint8_t type, uint8_t reason_code);
/* v5, any packet but PUBLISH: applies the Reason String rules to pkt (adds the code's text to a
 * refusal without one; strips Reason String and User Properties where the client's Request
 * Problem Information or Maximum Packet Size forbid them) and sets *size_bytes. */
int conn_reason_fit(const struct conn *c, struct mqtt_packet *pkt, size_t *size_bytes) LMQ_WUR;
/* Closes immediately (output not yet written is dropped). */
void conn_close(struct conn *c);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
void conn_flush_all(struct broker *b);
/* Resumes parsing of the connections on list (broker->blocked or broker->yielded). */
void conn_retry_blocked(struct broker *b, struct list_node *list);
/* One of c's PUBACK/PUBREC went out: if c waits for room in its inbound window, it is handled
 * again at the end of this loop turn. */
void conn_inbound_window_freed(struct conn *c);
size_t conn_output_pending(const struct conn *c);
/* False while c's output is full (max_output_bytes), or while the broker is over
 * max_memory_output_bytes and c holds more than its fair share: a session stops pulling
 * deliveries and is pumped again when the output drains. */
bool conn_output_has_room(const struct conn *c);
/* Tick: closes the connections that held the most output, unread, for longer than
 * slow_consumer_grace_ms while the broker was over max_memory_output_bytes. */
void conn_memory_sweep(struct broker *b);
/* Resumes input paused by PROTO_PAUSED: the pending packets are handled again, then reading
 * restarts. c must be open. */
void conn_resume(struct conn *c);
/* (Re)starts the keepalive timer from c->keepalive_s (0 = none). */
void conn_start_keepalive(struct conn *c);

/* protocol.c: packet handlers. PROTO_OK, PROTO_DISCONNECT (*reason), PROTO_BLOCKED or
 * PROTO_PAUSED. */
enum proto_result proto_handle_packet(struct conn *c, struct mqtt_packet *pkt,
                                      uint8_t *reason) LMQ_WUR;
/* subscribe.c */
/* Writes every subscription of s (which just became persistent) to the store. */
void subscribe_store_all(struct session *s);
/* SUBSCRIBE / UNSUBSCRIBE: PROTO_OK (the SUBACK / UNSUBACK waits for the commit) or
 * PROTO_DISCONNECT (*reason). */
enum proto_result subscribe_packet(struct conn *c, struct mqtt_packet *pkt,
                                   uint8_t *reason) LMQ_WUR;
enum proto_result subscribe_unsubscribe_packet(struct conn *c, struct mqtt_packet *pkt,
                                               uint8_t *reason) LMQ_WUR;

/* enhanced_auth.c: MQTT 5 enhanced authentication, method "ledgermq-ed25519" (docs/PROTOCOL.md
 * "Login over MQTT"): an identity proves its key in band at CONNECT and re-authenticates later
 * to extend the connection's lifetime. */
/* The authentication of a CONNECT with an Authentication Method (or Data): PROTO_OK
 * (c->identity set: a token with the method, or the CONNECT again after a verified exchange),
 * PROTO_AUTH_HANDLED (a challenge was sent, or the CONNECT refused with a reason string). */
enum proto_result enhanced_auth_connect(struct conn *c, const struct mqtt_packet *pkt) LMQ_WUR;
/* True while a CONNECT waits for the client's signature: every packet goes to
 * enhanced_auth_packet. */
bool enhanced_auth_pending(const struct conn *c);
/* An AUTH packet, or any packet while a CONNECT waits. Returns as proto_handle_packet. */
enum proto_result enhanced_auth_packet(struct conn *c, struct mqtt_packet *pkt,
                                       uint8_t *reason) LMQ_WUR;
/* Adds the Authentication Method to a successful CONNACK when c uses one. */
void enhanced_auth_connack(const struct conn *c, struct mqtt_props *ack);
/* Frees c's enhanced authentication state and drops its outstanding challenge. */
void enhanced_auth_free(struct conn *c);

/* session.c */
/* Writes c's principal (see SESSION_OWNER_MAX_BYTES) into out. */
void session_principal(const struct conn *c, char out[SESSION_OWNER_MAX_BYTES]);
/* Gives c its session for connect (created, resumed or taken over). PROTO_OK with
 * *session_present, or PROTO_REFUSE_CONNECT with the CONNACK reason code in *reason_code (c has
 * no session then). */
enum proto_result session_attach(struct conn *c, const struct mqtt_connect *connect,
                                 bool *session_present, uint8_t *reason_code) LMQ_WUR;
void session_detach(struct conn *c);
/* The longest session expiry a principal gets (max_session_expiry; for anonymous clients
 * default_session_expiry too), at CONNECT and at DISCONNECT. */
uint32_t session_expiry_cap(const struct broker *b, const char *principal);
void session_destroy(struct session *s);
/* The prune_sessions job (src/jobs): ends an offline session as if it expired (its will goes
 * out, its stored state is deleted), logged as session_pruned with why. */
void session_prune(struct session *s, const char *why);
void session_queue_pump(struct session *s);
void session_queue_resend_inflight(struct session *s);
int session_queue_ack(struct session *s, uint8_t type, uint16_t packet_id, uint8_t reason_code);
/* Room for a QoS 1/2 delivery of msg_bytes within max_queued_messages/_bytes; queued QoS 0
 * deliveries do not count (session_queue_add drops them to make the room). */
bool session_queue_has_room(const struct session *s, size_t msg_bytes);
/* s holds more undelivered QoS 1/2 messages than it keeps in memory (or has a stored backlog):
 * a connected consumer this far behind holds its publishers back (route.c). */
bool session_queue_behind(const struct session *s);
/* Room for a QoS 0 delivery: within max_queued_qos0 and the session's queue limits. */
bool session_queue_has_room_qos0(const struct session *s, size_t msg_bytes);
/* Counts (and logs, at most once a second) a QoS 0 delivery dropped: limit names why (NULL: no
 * room in the QoS 0 budget or the queue, worked out here). */
void session_queue_qos0_dropped(struct session *s, const char *limit);
/* queue_overflow drop_oldest: drops s's oldest queued, never sent QoS 1/2 deliveries (in memory,
 * then stored rows, deleted in the open batch) until a QoS 1/2 delivery of msg_bytes has room,
 * and counts them (metrics, s->dropped_untold). False when even that leaves no room (the
 * inflight window fills the queue, or msg_bytes alone is over max_queued_bytes): then the new
 * delivery is counted as dropped too, and the caller does not queue it. */
bool session_queue_drop_oldest(struct session *s, size_t msg_bytes);
/* Logs a queue_overflow line for s the first time its queue overflows (again only once it
 * drained or reconnected): what it does (a policy name, or "resync" under id/) and the rule. */
void session_queue_overflow_log(struct session *s, const char *action, const char *rule);
/* queue_overflow end_session: s takes nothing more and ends on the next loop turn as if it
 * expired (its connection, if any, gets DISCONNECT 0x97 first). Counted and logged. */
void session_overflow_end(struct session *s);
/* The expire_messages job (src/jobs): drops, oldest first, the rows at the head of an offline
 * session's stored backlog whose message expired, up to max, stopping at the first that has
 * not; counted as dropped "expired". Returns how many. */
uint32_t session_queue_expire_head(struct session *s, int64_t now_unix_ms, uint32_t max);
/* Queues m for s. A QoS 0 delivery without room is dropped (counted); a QoS 1/2 one first drops
 * queued QoS 0 deliveries, oldest first, while the queue is over its limits. */
void session_queue_add(struct session *s, struct msg *m, uint8_t qos, bool retain,
                       const uint32_t *sub_ids, size_t sub_id_count);
void session_destroy_all(struct broker *b);
struct session *session_create(struct broker *b, const uint8_t *id, size_t id_len);
/* (Re)arms the session timer for the earliest of its delayed will and its expiry. */
void session_arm_timer(struct session *s);
void session_publish_will(struct session *s);
/* The admin API's kick with --end: s ends now as if it expired (stored state deleted, its
 * will published); a client still connected gets DISCONNECT 0x98 Administrative action first. */
void session_admin_end(struct session *s);
/* session_quota.c: persistent sessions per principal and per source address. */
/* Whether c may create one more stored session; else the CONNACK reason code in *reason_code
 * (logged). */
bool session_quota_admit(struct conn *c, const char *principal, uint8_t *reason_code);
/* The per-principal part of session_quota_admit alone (a stored session changing owner). */
bool session_quota_admit_principal(struct conn *c, const char *principal, uint8_t *reason_code);
/* Counts s (now stored) against its owner and c's address (c may be NULL: recovery). */
void session_quota_count(struct session *s, const struct conn *c);
/* Uncounts s (its stored state is deleted or it is freed). */
void session_quota_release(struct session *s);
int session_quota_init(struct broker *b) LMQ_WUR;
void session_quota_destroy(struct broker *b);
/* session_queue.c: the session went offline / is being freed. */
void session_queue_offline(struct session *s);
/* s just became persistent: its in-memory QoS 1/2 deliveries (queued and in flight) get queue
 * rows, in order, so a restart resumes them like any stored delivery. */
void session_queue_store_all(struct session *s);
void session_queue_free_deliveries(struct session *s);
/* Asserts the queue counters of s agree with each other (O(1): run wherever they change). */
void session_queue_check(const struct session *s);
/* Asserts what session_queue_check does and that the counters match what the lists hold:
 * walks every in-memory delivery, so only for tests and debug builds (never per message). */
void session_queue_verify(const struct session *s);
/* Test-only fault injection: the nth delivery allocation from now on fails (1 = the next one),
 * once; 0 turns it off. */
void session_queue_test_fail_alloc(uint32_t nth);
/* broker.c: the state every broker starts with (loop, lists, maps, subscription tree, retained
 * index, session quotas), nothing that reaches outside the process; shared by the server's
 * start and broker_init_for_test. 0, LMQ_EIO (no loop: nothing to free) or LMQ_ENOMEM. */
int broker_init_state(struct broker *b, const struct lmq_config *cfg) LMQ_WUR;
/* Closes every handle left on the loop, closes the loop and frees what broker_init_state made
 * (the sessions, retained messages and the batch must be gone). */
void broker_destroy_state(struct broker *b);
/* broker_test.c, for tests/unit/test_broker.c only: a broker with its loop, maps, subscription
 * tree and retained index, but no store, listeners, signals, timers of its own, pipeline or
 * commit hooks (commit_turn_end then releases the open batch as if it had committed). 0 or an
 * error (then nothing is left to free). */
int broker_init_for_test(struct broker *b, const struct lmq_config *cfg) LMQ_WUR;
/* Destroys the sessions, the batch, the retained index and the loop. */
void broker_destroy_for_test(struct broker *b);
/* recovery.c: rebuilds sessions, subscriptions, retained and wills from the store. */
int recovery_run(struct broker *b);

/* lifecycle.c: /healthz says "starting" (503) while recovery runs: a thread of its own serves the
 * HTTP listeners (already bound) with that answer from begin to end. *out is NULL when no HTTP
 * listener is configured. LMQ_OK, LMQ_ENOMEM or LMQ_EIO (logged). */
struct lifecycle_starting;
int lifecycle_starting_begin(struct broker *b, struct lifecycle_starting **out) LMQ_WUR;
/* Stops that thread and closes its connections; the broker's loop answers from now on. */
void lifecycle_starting_end(struct lifecycle_starting *ls);
/* Test only: sleeps LMQ_TEST_RECOVERY_DELAY_MS (at most 60 s) when that variable is set. */
void lifecycle_test_recovery_delay(void);

/* sys_tree.c: the $SYS/broker/... topics mosquitto publishes (docs/PROTOCOL.md, "$SYS topics"),
 * retained QoS 0 messages updated every [server] sys_interval seconds; clients only read them. */
struct sys_tree;
/* True for "$SYS" and every topic under "$SYS/": the broker's own, no client publishes there. */
bool sys_tree_topic(const uint8_t *topic, size_t len);
/* Publishes $SYS/broker/version and the first values, then updates them on a timer (nothing
 * when sys_interval is 0). LMQ_OK or LMQ_ENOMEM. */
int sys_tree_start(struct broker *b) LMQ_WUR;
/* Stops the updates (shutdown); the retained values stay until the broker's state goes. */
void sys_tree_stop(struct broker *b);
/* Frees what sys_tree_start made, once the loop has closed its timer (teardown). */
void sys_tree_free(struct broker *b);

/* broker_http.c: the HTTP server's routes and what they share. */
struct http_request;
struct http_response;
struct lmq_buf;
/* read_budget.c: [data] read_budget_ms_per_s, the loop time each client address may spend on
 * the data layer's routes (docs/SECURITY.md "Data reads under load"). */
typedef int (*read_budget_route_fn)(struct broker *b, const struct http_request *req,
                                    struct http_response *resp, struct lmq_buf *out);
int read_budget_init(struct broker *b) LMQ_WUR;
/* Frees the table; safe when init failed or never ran. */
void read_budget_destroy(struct broker *b);
/* Runs route for req when its client's budget has time left and charges it the time route
 * took; otherwise answers 429 with Retry-After (route not called). route's result, or
 * LMQ_ENOMEM. With read_budget_ms_per_s 0 it just calls route. */
int read_budget_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                      struct lmq_buf *out, read_budget_route_fn route) LMQ_WUR;
struct read_budget_stats {
    uint64_t refused;  /* requests answered 429 since start */
    uint64_t spent_us; /* loop time charged since start */
    size_t clients;    /* addresses tracked now */
    uint64_t swept;    /* addresses forgotten at the table's bound since start */
};
/* For /metrics and tests. */
void read_budget_counts(const struct broker *b, struct read_budget_stats *out);
/* The HTTP routes (http_route_fn; ctx: the broker). */
int broker_http_route(void *ctx, const struct http_request *req, struct http_response *resp,
                      struct lmq_buf *out);
/* The address an HTTP request's client is known by for per-address limits: the client a
 * trusted proxy ([http] trusted_proxies) names in X-Forwarded-For, else the TCP peer (the proxy
 * itself when it names none). NULL when unknown. May point into storage. */
const struct sockaddr *broker_http_client(const struct broker *b, const struct http_request *req,
                                          struct sockaddr_storage *storage);
/* What X-Forwarded-For (every field, in order) of a request from a trusted proxy names as its
 * client: see net_forwarded_client(). */
int broker_http_forwarded_client(const struct lmq_http_config *h, const struct http_request *req,
                                 struct sockaddr_storage *client);
/* TLS handshake failures counted by the HTTP and HTTPS servers. */
uint64_t broker_http_tls_failures(const struct broker *b);

/* metrics.c: GET /metrics. Appends the Prometheus text to out: 0, or LMQ_ETOOBIG when it did
 * not fit (the body is incomplete). */
int metrics_render(struct broker *b, struct lmq_buf *out);

/* websocket.c */
/* GET /mqtt: accepts a WebSocket upgrade with the mqtt subprotocol (101), or refuses it. */
int websocket_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                    struct lmq_buf *out);
/* The HTTP server's upgrade callback: the socket becomes an MQTT-over-WebSocket connection. */
void websocket_upgrade(void *ctx, int fd, struct tls_session *tls, const uint8_t *early,
                       size_t early_len, const uint8_t *data, size_t data_len);

/* msg.c */
struct msg *msg_create(struct broker *b, const struct mqtt_publish *pub);
/* A message read from the store: shared with any copy already in memory. */
struct msg *msg_from_store(struct broker *b, const struct store_message *sm);
/* Writes m to the store once (STORE_MESSAGE_PUT), the first time something durable needs it. */
void msg_persist(struct msg *m);
void msg_ref(struct msg *m);
void msg_unref(struct msg *m);
bool msg_expired(const struct msg *m, int64_t now_unix_ms, uint32_t *remaining_s);

/* route.c */
/*
 * Routes m to every matching subscription. publisher is the sending session
 * (for no-local), or NULL for wills. A session whose queue is full gets what
 * its queue_overflow policy says (drop its oldest, end, or refuse). Returns
 * MQTT_RC_SUCCESS, MQTT_RC_NO_MATCHING_SUBSCRIBERS, MQTT_RC_QUOTA_EXCEEDED
 * when a full session's policy is refuse, or ROUTE_HELD when a connected,
 * consuming subscriber is too far behind and the publisher (never NULL then)
 * must wait for it; in the last two cases nothing was enqueued.
 */
#define ROUTE_HELD 0x100
int route_publish(struct broker *b, struct msg *m, struct session *publisher);

/* retain.c: retained messages, indexed by topic level, delivered incrementally. */
struct retain_index;
/* Creates the empty index (b->retained). 0 or LMQ_ENOMEM. */
int retain_init(struct broker *b) LMQ_WUR;
/* True when storing m as retained stays within the retained limits. */
bool retain_fits(struct broker *b, const struct msg *m);
/* Stores, replaces or clears the retained message for m's topic. */
uint8_t retain_update(struct broker *b, struct msg *m);
/* sys_tree.c: m (QoS 0, a $SYS/ topic; the caller keeps its reference) is the retained message
 * of its topic, outside the max_retained_* limits and retain_count(), never stored. */
void retain_system_set(struct broker *b, struct msg *m);
/* Recovery: m (the caller's reference, taken over) is the retained message of its topic. */
int retain_restore(struct broker *b, struct msg *m) LMQ_WUR;
/* Starts delivering the retained messages matching filter (valid, not shared) to s: they are
 * queued a bounded number per loop turn, after the SUBACK, while s can take more. */
void retain_deliver(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                    uint8_t qos, uint32_t sub_id);
/* Stops a retained delivery still running for filter (unsubscribed). */
void retain_cancel(struct session *s, const uint8_t *filter, size_t len);
/* s may take more: its retained deliveries (if any) continue on the next idle turn. */
void retain_wake(struct session *s);
/* s is being destroyed: its retained deliveries end. */
void retain_session_end(struct session *s);
size_t retain_count(const struct broker *b);
/* Retained deliveries still running (one per subscription). */
size_t retain_cursor_count(const struct broker *b);
/* Frees every retained message (after the sessions). */
void retain_destroy_all(struct broker *b);
/* Removes expired retained messages (a bounded number per call). */
void retain_expire(struct broker *b);

#endif
