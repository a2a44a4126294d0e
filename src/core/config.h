/*
 * Server configuration: defaults, an INI file (libinih) and command-line
 * flags, applied in that order. Every limit the broker enforces lives here.
 */
#ifndef LMQ_CONFIG_H
#define LMQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

#define LMQ_LISTENERS_MAX 8
/* A listener host: a numeric address or a host name (253 characters, resolve.h). */
#define LMQ_HOST_MAX_BYTES 256
#define LMQ_PATH_MAX_BYTES 1024

enum lmq_sync_mode {
    LMQ_SYNC_ALWAYS = 0, /* fsync before every acknowledgement (the default) */
    LMQ_SYNC_OFF = 1,    /* same code path without fsync; for comparisons only */
};

struct lmq_listen_addr {
    char host[LMQ_HOST_MAX_BYTES]; /* numeric IPv4 or IPv6 address, or a host name until
                                     lmq_config_resolve_listeners() */
    uint16_t port;                 /* 0 = pick a free port */
};

/* What a session whose queue is full does with one more QoS 1/2 message ([limits]
 * queue_overflow and the [queue_overflow] rules; docs/PROTOCOL.md "Queue overflow"). */
enum lmq_overflow_policy {
    LMQ_OVERFLOW_DROP_OLDEST = 0, /* the session loses its oldest queued, unsent messages */
    LMQ_OVERFLOW_REFUSE = 1,      /* the publish is refused (0x97) or held back (3.1.1) */
    LMQ_OVERFLOW_END_SESSION = 2, /* the session ends as if it expired */
};

/* [queue_overflow] rules: "<policy> = principal <principal>" or "<policy> = topic <filter>". */
#define LMQ_OVERFLOW_RULES_MAX 64
#define LMQ_OVERFLOW_PATTERN_MAX_BYTES 256 /* a principal or topic filter, NUL included */

struct lmq_overflow_rule {
    enum lmq_overflow_policy policy;
    bool topic; /* pattern is a topic filter matched against the message's topic; else a
                   principal compared with the session owner's */
    char pattern[LMQ_OVERFLOW_PATTERN_MAX_BYTES];
};

struct lmq_limits {
    uint32_t max_connections;       /* concurrent client connections */
    uint32_t max_sessions;          /* persistent sessions (they outlive their connection) */
    uint32_t max_packet_size_bytes; /* largest packet accepted (and advertised in v5) */
    uint16_t max_inflight;          /* QoS 1/2 in flight per client, each direction */
    uint32_t max_queued_messages;   /* messages queued per session */
    uint64_t max_queued_bytes;      /* payload bytes queued per session */
    uint32_t max_queued_qos0;       /* QoS 0 messages queued per session (within the above) */
    enum lmq_overflow_policy queue_overflow; /* a full session without a matching rule */
    uint32_t max_subscriptions;              /* subscriptions per session */
    uint16_t max_topic_alias;                /* topic alias maximum advertised to clients */
    uint16_t max_topic_alias_out;  /* aliases the broker uses towards a client; 0 = none */
    uint16_t max_keepalive_s;      /* server keep alive cap, 0 = accept the client's */
    uint32_t max_session_expiry_s; /* cap on session expiry; 0xFFFFFFFF = never */
    /* Session expiry of a 3.1.1 persistent session (it can't ask) and cap for anonymous ones. */
    uint32_t default_session_expiry_s;
    uint32_t max_sessions_per_principal; /* persistent sessions of one authenticated principal */
    uint32_t max_sessions_per_address;   /* persistent sessions created from one IP address */
    uint32_t max_retained_messages;      /* retained messages held by the broker */
    uint64_t max_retained_bytes;         /* retained payload bytes held by the broker */
    uint32_t connect_timeout_ms;         /* CONNECT must arrive this soon after accept */
    uint64_t max_output_bytes;           /* bytes buffered for one socket before backpressure */
    uint64_t max_memory_output_bytes; /* output buffered for all sockets before slow ones pause */
    uint32_t slow_consumer_grace_ms;  /* over that budget this long, unread: closed */
    uint64_t min_free_disk_bytes;   /* below this free space in the data dir, QoS 1/2 is refused */
    uint32_t http_max_header_bytes; /* HTTP request line + headers; more -> 431 */
    uint32_t http_max_body_bytes;   /* HTTP request body; more -> 413 */
    uint32_t http_idle_timeout_ms;  /* HTTP connection with no request in progress -> closed */
    uint32_t http_request_timeout_ms;         /* HTTP request not complete this soon -> 408 */
    uint32_t http_max_connections;            /* open HTTP connections; more -> 503 */
    uint32_t max_connections_per_address;     /* open MQTT connections from one IP address */
    uint32_t max_connection_rate_per_address; /* new MQTT connections per second from one IP */
    uint32_t ledger_page_max_bytes; /* body of one GET /ledger/entries or /ledger/envelopes */

    /* Logins, HTTP(S) and password checks shared out per source address (docs/SECURITY.md). */
    uint32_t http_header_timeout_ms;           /* HTTP request head not complete -> 408 */
    uint32_t http_handshake_timeout_ms;        /* HTTPS TLS handshake not done -> closed */
    uint32_t http_max_connections_per_address; /* open HTTP(S) connections from one IP */
    uint32_t http_max_handshakes_per_address;  /* HTTPS handshakes in progress from one IP */
    uint32_t login_challenges_per_address;     /* outstanding /auth/challenge nonces per IP */
    uint32_t login_challenges_per_key;         /* outstanding nonces per public key */
    uint32_t password_checks_per_address;      /* password hashes running for one IP */
    uint32_t password_failures_before_backoff; /* bad passwords from one IP before back-off */
    uint32_t password_backoff_max_ms;          /* longest back-off after bad passwords */
};

/* [limits] ledger_page_max_bytes bounds: a page holds at least one envelope (64 KiB at most,
 * with its index and link), and never more than an HTTP response may (4 MiB). */
#define LMQ_LEDGER_PAGE_MIN_BYTES 131072
#define LMQ_LEDGER_PAGE_MAX_BYTES 4194304

enum lmq_client_cert_mode {
    LMQ_CLIENT_CERT_NONE = 0,     /* not requested */
    LMQ_CLIENT_CERT_OPTIONAL = 1, /* requested; verified against client_ca when sent */
    LMQ_CLIENT_CERT_REQUIRED = 2, /* the handshake fails without a valid one */
};

enum lmq_anonymous_mode {
    LMQ_ANONYMOUS_LOOPBACK = 0, /* only clients connecting from 127.0.0.0/8 or ::1 (default) */
    LMQ_ANONYMOUS_ALWAYS = 1,
    LMQ_ANONYMOUS_NEVER = 2,
};

/* An identity id: SHA-256 of its public key in lowercase hex. */
#define LMQ_IDENTITY_ID_CHARS 64
/* Identities [auth] auditors may name. */
#define LMQ_AUDITORS_MAX 32

/* Identities: login tokens, anonymous access, per-identity rate, auditors. */
struct lmq_auth_config {
    enum lmq_anonymous_mode anonymous;
    uint32_t token_ttl_s;          /* lifetime of a login token */
    uint32_t envelope_rate_per_s;  /* envelopes one identity may send per second (0x96 beyond) */
    uint32_t token_leeway_s;       /* grace after a token's exp (and before its iat); 0..300 */
    uint64_t ledger_bytes_per_day; /* envelope bytes one identity may append per UTC day; 0: no
                                      limit */
    char password_file[LMQ_PATH_MAX_BYTES]; /* "user:$scrypt$..." lines; empty: none */
    char acl_file[LMQ_PATH_MAX_BYTES];      /* topic ACL, re-read on SIGHUP; empty: none */
    /* Identities that may read every envelope (GET /ledger/envelopes); re-read on SIGHUP. */
    char auditors[LMQ_AUDITORS_MAX][LMQ_IDENTITY_ID_CHARS + 1];
    uint32_t auditor_count;
};

/* Identities [data] readers_all may name. */
#define LMQ_DATA_READERS_MAX 32

/* [data] read_budget_ms_per_s at most: all of the loop's time. */
#define LMQ_DATA_READ_BUDGET_MAX_MS 1000u
/* [data]: typed objects (docs/PROTOCOL.md "Objects"). */
struct lmq_data_config {
    char models_dir[LMQ_PATH_MAX_BYTES]; /* *.json models; empty: no data layer */
    bool assert_formats;                 /* "format" asserted (else an annotation) */
    /* Identities that read every resource (auditors, the house bot); re-read on SIGHUP. */
    char readers_all[LMQ_DATA_READERS_MAX][LMQ_IDENTITY_ID_CHARS + 1];
    uint32_t readers_all_count;
    /* Identities that may add, change and delete models by envelope (ledgermq.Model objects);
     * re-read on SIGHUP. */
    char admins[LMQ_DATA_READERS_MAX][LMQ_IDENTITY_ID_CHARS + 1];
    uint32_t admin_count;
    /* GraphQL (POST /graphql): false opens reads without a token on loopback listeners only
     * (development); the limits of one request (docs/PROTOCOL.md "Objects over GraphQL"). */
    bool graphql_auth;
    uint32_t graphql_max_depth;
    uint32_t graphql_max_fields;
    uint32_t graphql_max_ms;
    /* Loop time per second each client address may spend on the data routes (GraphQL, REST,
     * the documents), 0..LMQ_DATA_READ_BUDGET_MAX_MS; over it: 429. 0: no budget. */
    uint32_t read_budget_ms_per_s;
};

/* [admin] ids may name at most this many identities. */
#define LMQ_ADMIN_IDS_MAX 32
/* [admin]: who may call the admin API (/admin/v1/..., docs/PROTOCOL.md "Admin API"). */
struct lmq_admin_config {
    /* Identities allowed on every admin route; none by default; re-read on SIGHUP. */
    char ids[LMQ_ADMIN_IDS_MAX][LMQ_IDENTITY_ID_CHARS + 1];
    uint32_t id_count;
};

/* [webhook.NAME]: an endpoint the event stream is POSTed to (docs/PROTOCOL.md "Webhooks"). */
#define LMQ_WEBHOOKS_MAX 16
#define LMQ_WEBHOOK_NAME_MAX_CHARS 32
#define LMQ_WEBHOOK_URL_MAX_BYTES 1024
#define LMQ_WEBHOOK_SECRET_MAX_BYTES 256
#define LMQ_WEBHOOK_SECRET_MIN_BYTES 16
#define LMQ_WEBHOOK_EVENTS_MAX 16
#define LMQ_EVENT_TYPE_MAX_CHARS 48
/* [events] security_per_s at most. */
#define CONFIG_EVENTS_SECURITY_PER_S_MAX 100000u
/* [bots] ids: at most this many bots (each a consumer of the event stream). */
#define LMQ_BOTS_MAX 32
/* [bots] validators: at most this many envelope types with a validator bot. */
#define LMQ_VALIDATORS_MAX 32
/* An envelope type: 1..64 characters of [A-Za-z0-9._:-] (ledger/envelope.h). */
#define LMQ_VALIDATOR_TYPE_MAX_CHARS 64
/* [bots] verdict_timeout_ms: its default and range. */
#define LMQ_VERDICT_TIMEOUT_DEFAULT_MS 5000
#define LMQ_VERDICT_TIMEOUT_MIN_MS 100
#define LMQ_VERDICT_TIMEOUT_MAX_MS 30000
/* [bots] verdicts_per_address: its default and range (the table holds 1024 in all). */
#define LMQ_VERDICTS_PER_ADDRESS_DEFAULT 64
#define LMQ_VERDICTS_PER_ADDRESS_MAX 1024
/* [bots] validators = TYPE:BOTID: the bot whose verdict an envelope of type waits for. */
struct lmq_validator_config {
    char type[LMQ_VALIDATOR_TYPE_MAX_CHARS + 1];
    char bot[LMQ_IDENTITY_ID_CHARS + 1];
};
struct lmq_webhook_config {
    char name[LMQ_WEBHOOK_NAME_MAX_CHARS + 1]; /* [A-Za-z0-9_-], from the section name */
    char url[LMQ_WEBHOOK_URL_MAX_BYTES];       /* http:// or https:// */
    char secret[LMQ_WEBHOOK_SECRET_MAX_BYTES]; /* the HMAC key (16..255 bytes) */
    /* Event types it receives: exact names or a prefix ending in ".*"; none: every event. */
    char events[LMQ_WEBHOOK_EVENTS_MAX][LMQ_EVENT_TYPE_MAX_CHARS + 1];
    uint32_t event_count;
    uint32_t timeout_ms;       /* one attempt, connect to last byte */
    uint32_t max_attempts;     /* then the event goes to the dead-letter list */
    uint32_t max_in_flight;    /* deliveries at once; 1 keeps strict order */
    uint32_t retry_base_ms;    /* first retry after about this, doubling, with jitter */
    uint32_t retry_max_ms;     /* retries at most this far apart */
    uint32_t breaker_failures; /* consecutive failures that open the circuit */
    uint32_t breaker_open_ms;  /* how long it stays open before one trial delivery */
};

/* [plugins] and [plugin.NAME] (docs/PROTOCOL.md "Plugins"). */
#define LMQ_PLUGINS_MAX 8
#define LMQ_PLUGIN_NAME_MAX_CHARS 32
#define LMQ_PLUGIN_ARGS_MAX_BYTES 1024
struct lmq_plugins_config {
    char load[LMQ_PLUGINS_MAX][LMQ_PATH_MAX_BYTES]; /* shared objects, in load order */
    uint32_t count;
    uint32_t slow_us; /* a validate call longer than this is logged (plugin_slow) */
    struct {
        char name[LMQ_PLUGIN_NAME_MAX_CHARS + 1];
        char args[LMQ_PLUGIN_ARGS_MAX_BYTES];
    } args[LMQ_PLUGINS_MAX]; /* [plugin.NAME] args: handed to the plugin's init */
    uint32_t args_count;
};

/* [jobs]: scheduled jobs (src/jobs; docs/ARCHITECTURE.md "Scheduled jobs"). */
#define LMQ_JOBS_MAX 16
#define LMQ_JOB_NAME_MAX_CHARS 32
#define LMQ_JOB_SCHEDULE_MAX_BYTES 128
/* [jobs] chaser.type: an envelope type (ledger/envelope.h LEDGER_ENVELOPE_TYPE_MAX_CHARS). */
#define LMQ_CHASER_TYPE_MAX_CHARS 64
/* import.to and import.type, NUL included (an identity id is 64 hex digits). */
#define LMQ_JOB_IMPORT_ID_MAX_BYTES 129
struct lmq_job_config {
    char name[LMQ_JOB_NAME_MAX_CHARS + 1];     /* [a-z0-9_] */
    char schedule[LMQ_JOB_SCHEDULE_MAX_BYTES]; /* checked by jobs_schedule_parse; "" = off */
    uint32_t timeout_ms;                       /* NAME.timeout_ms; 0 = the job's default */
    uint32_t keep_runs;                        /* NAME.keep_runs; 0 = the default (100) */
};
struct lmq_jobs_config {
    struct lmq_job_config jobs[LMQ_JOBS_MAX]; /* in file order */
    size_t count;
    uint64_t prune_idle_s;               /* prune_sessions.idle_s */
    uint64_t prune_max_bytes;            /* prune_sessions.max_bytes; 0 = no byte limit */
    uint32_t expire_batch;               /* expire_messages.batch: rows per step */
    uint32_t prune_events_batch;         /* prune_events.batch: events deleted per step */
    char export_dir[LMQ_PATH_MAX_BYTES]; /* export.dir: where the export job writes */
    uint64_t export_max_rows;            /* export.max_rows: ledger entries per run at most */
    bool export_gzip;                    /* export.gzip: each run's file as .jsonl.gz */
    char chaser_type[LMQ_CHASER_TYPE_MAX_CHARS + 1]; /* chaser.type: the requests' envelope type */
    uint64_t chaser_after_s;                         /* chaser.after_s: age and gap of reminders */
    uint32_t chaser_max;                             /* chaser.max: reminders per request */
    uint32_t chaser_batch;                           /* chaser.batch: requests per step */
    char import_dir[LMQ_PATH_MAX_BYTES]; /* import.dir: the drop directory the import job reads */
    char import_to[LMQ_JOB_IMPORT_ID_MAX_BYTES];   /* import.to: the recipient identity id */
    char import_type[LMQ_JOB_IMPORT_ID_MAX_BYTES]; /* import.type: model of rows without _t */
    uint32_t import_batch;                         /* import.batch: lines per step at most */
    uint64_t import_max_file_bytes; /* import.max_file_bytes: larger files are skipped */
};

/* [seal]: sealing ledger checkpoints to Ethereum (src/seal; docs/PROTOCOL.md "Sealing"). */
#define LMQ_SEAL_URL_MAX_BYTES 512
#define LMQ_SEAL_EVERY_MAX_BYTES 32
struct lmq_seal_config {
    char rpc[LMQ_SEAL_URL_MAX_BYTES];     /* the node's JSON-RPC URL; empty: sealing is off */
    char key_file[LMQ_PATH_MAX_BYTES];    /* the eth key file (ledgermq keygen --eth) */
    uint64_t chain_id;                    /* checked against eth_chainId; 0: not set */
    char every[LMQ_SEAL_EVERY_MAX_BYTES]; /* "10m": the seal job's schedule is "@every 10m" */
    char schedule[LMQ_SEAL_EVERY_MAX_BYTES + 8]; /* "@every " + every */
    uint64_t every_entries; /* seal when the ledger grew by this many; 0 = off */
    uint32_t confirmations; /* blocks for "confirmed" */
    uint64_t gas_limit;
    uint64_t max_fee_gwei; /* never bid above */
    uint32_t bump_after_s; /* replace a transaction not mined after this */
    bool any_set;          /* some [seal] key was given */
};

/* [chain]: the chain follower (src/chain; docs/PROTOCOL.md "Chain follower"). Off when rpc is
 * empty. */
#define LMQ_CHAIN_RPC_MAX_BYTES 512
struct lmq_chain_config {
    char rpc[LMQ_CHAIN_RPC_MAX_BYTES]; /* rpc: the node's http(s) URL; "" = off */
    bool start_latest;                 /* start_block = latest (the default) */
    uint64_t start_block;              /* start_block = N: where a fresh store starts */
    uint32_t poll_ms;                  /* poll_ms: between two looks at the node's head */
    uint32_t timeout_ms;               /* timeout_ms: one JSON-RPC call's deadline */
    uint32_t batch_blocks;             /* batch_blocks: headers per catch-up request */
    uint32_t max_reorg_depth;          /* max_reorg_depth: deeper reorgs halt the follower */
    uint32_t confirmations;            /* confirmations: depth of a confirmed notice */
    uint32_t degraded_lag_blocks;      /* degraded_lag_blocks: behind more: syncing */
    bool healthz_503_when_down;        /* healthz_503_when_down */
};

/* TLS for --mqtts and --https: certificate files, re-read on SIGHUP. */
struct lmq_tls_config {
    char cert_file[LMQ_PATH_MAX_BYTES]; /* PEM, may hold the chain */
    char key_file[LMQ_PATH_MAX_BYTES];
    char client_ca_file[LMQ_PATH_MAX_BYTES]; /* empty: no client certificates */
    enum lmq_client_cert_mode client_cert;
};

/* [http] allowed_origins: browser origins whose WebSocket connections may count as loopback. */
#define LMQ_HTTP_ORIGINS_MAX 32
#define LMQ_HTTP_ORIGIN_MAX_BYTES 256
/* [http] trusted_proxies: addresses (or CIDR prefixes) whose X-Forwarded-For is believed. */
#define LMQ_HTTP_PROXIES_MAX 32

/* An IPv4 or IPv6 address prefix (a single address has all its bits). */
struct lmq_ip_prefix {
    uint8_t addr[16];
    uint8_t len_bytes;   /* 4 (IPv4) or 16 (IPv6) */
    uint8_t prefix_bits; /* 0..32 or 0..128 */
};

/* Who may speak for a client: browsers (Origin) and reverse proxies ([http]), TCP proxies
 * ([server] proxy_protocol). */
struct lmq_http_config {
    /* "scheme://host[:port]", lower-case, without a trailing slash; empty list by default */
    char allowed_origins[LMQ_HTTP_ORIGINS_MAX][LMQ_HTTP_ORIGIN_MAX_BYTES];
    size_t allowed_origin_count;
    struct lmq_ip_prefix trusted_proxies[LMQ_HTTP_PROXIES_MAX];
    size_t trusted_proxy_count;
    /* [server] proxy_protocol: peers whose MQTT connections start with a PROXY header */
    struct lmq_ip_prefix proxy_protocol[LMQ_HTTP_PROXIES_MAX];
    size_t proxy_protocol_count;
};

struct lmq_config {
    char config_path[LMQ_PATH_MAX_BYTES]; /* empty when no --config */
    char data_dir[LMQ_PATH_MAX_BYTES];
    struct lmq_listen_addr mqtt[LMQ_LISTENERS_MAX];
    size_t mqtt_count;
    struct lmq_listen_addr mqtts[LMQ_LISTENERS_MAX]; /* MQTT over TLS; none by default */
    size_t mqtts_count;
    struct lmq_listen_addr http;  /* the HTTP listener, when http_enabled */
    bool http_enabled;            /* default 127.0.0.1:8080; [server] http = none turns it off */
    struct lmq_listen_addr https; /* HTTP over TLS, when https_enabled; none by default */
    bool https_enabled;
    struct lmq_tls_config tls;
    struct lmq_auth_config auth;
    struct lmq_http_config http_trust;                    /* [http] */
    struct lmq_data_config data;                          /* [data] */
    struct lmq_admin_config admin;                        /* [admin] */
    struct lmq_webhook_config webhooks[LMQ_WEBHOOKS_MAX]; /* [webhook.NAME], in file order */
    size_t webhook_count;
    bool events_record; /* [events] record: keep the event stream even without a consumer */
    /* [events] security_per_s: security.* (and refused admin.call) events recorded per second at
     * most; the rest are counted in one security.suppressed event per second. */
    uint32_t events_security_per_s;
    /* [events] keep: the prune_events job deletes events older than this that every consumer
     * has passed; 0 (the default): every event is kept. */
    uint64_t events_keep_s;
    struct lmq_plugins_config plugins; /* [plugins], [plugin.NAME] */
    struct lmq_jobs_config jobs;       /* [jobs] */
    struct lmq_seal_config seal;       /* [seal] */
    struct lmq_chain_config chain;     /* [chain] */
    /* [bots] ids: identities that follow the event stream on id/<id>/events (src/events/bots.c;
     * docs/PROTOCOL.md "Bots"); any of them turns the stream on. */
    char bots[LMQ_BOTS_MAX][LMQ_IDENTITY_ID_CHARS + 1];
    uint32_t bot_count;
    /* [bots] validators, verdict_timeout_ms, default_verdict (src/events/validators.c;
     * docs/PROTOCOL.md "Validator bots"): at most one validator per type, each one of bots. */
    struct lmq_validator_config validators[LMQ_VALIDATORS_MAX];
    uint32_t validator_count;
    uint32_t verdict_timeout_ms;
    uint32_t verdicts_per_address; /* pending verdicts one client address may hold */
    bool default_verdict_accept;   /* false (the default): reject when no verdict comes */
    enum lmq_sync_mode sync;
    enum lmq_log_level log_level;
    /* [server] sys_interval: seconds between $SYS/broker/... updates (sys_tree.c); 0 = none. */
    uint32_t sys_interval_s;
    /* [server] drain_grace_ms: after SIGTERM, /healthz says "draining" (503) this long while
     * every listener keeps serving; then the shutdown proceeds. 0 = at once. */
    uint32_t drain_grace_ms;
    struct lmq_limits limits;
    /* [queue_overflow]: tried in file order, the first that matches decides; else
     * limits.queue_overflow. */
    struct lmq_overflow_rule overflow_rules[LMQ_OVERFLOW_RULES_MAX];
    size_t overflow_rule_count;
};

/*
 * Fills cfg with the defaults (data ./data, MQTT on 127.0.0.1:1883, no HTTP listener, sync
 * always, info).
 */
void lmq_config_defaults(struct lmq_config *cfg);

/*
 * Reads an INI file into cfg, overriding what it sets. On error returns
 * LMQ_EINVAL (or LMQ_EIO when the file can't be read) and writes a one-line
 * message naming file, line and key into err.
 */
int lmq_config_load_file(struct lmq_config *cfg, const char *path, char *err, size_t err_len);

/*
 * Applies one setting by its INI section and key (the command line uses the
 * same function). Returns 0 or LMQ_EINVAL with a one-line message in err.
 */
int lmq_config_set(struct lmq_config *cfg, const char *section, const char *key, const char *value,
                   char *err, size_t err_len);

/*
 * Appends a comma-separated list of listeners to cfg->mqtt (setting [server]
 * mqtt replaces the list instead). Returns 0 or LMQ_EINVAL with a one-line
 * message in err; cfg is unchanged on error.
 */
int lmq_config_append_listeners(struct lmq_config *cfg, const char *value, char *err,
                                size_t err_len);

/*
 * Appends a comma-separated list of listeners to cfg->mqtts. Returns 0 or LMQ_EINVAL with a
 * one-line message in err; cfg is unchanged on error.
 */
int lmq_config_append_tls_listeners(struct lmq_config *cfg, const char *value, char *err,
                                    size_t err_len);

/*
 * Checks what single settings can't: TLS listeners need a certificate and a key, a required
 * client certificate needs a CA. Returns 0 or LMQ_EINVAL with a one-line message in err.
 */
int lmq_config_validate(const struct lmq_config *cfg, char *err, size_t err_len);

/*
 * Appends a comma-separated list to [http] allowed_origins or trusted_proxies (key names which);
 * setting the key with lmq_config_set replaces the list instead. Returns 0 or LMQ_EINVAL with a
 * one-line message in err; cfg is unchanged on error.
 */
int lmq_config_append_http_list(struct lmq_config *cfg, const char *key, const char *value,
                                char *err, size_t err_len);

/* The policy's name in the configuration and logs ("drop_oldest", "refuse", "end_session"). */
const char *lmq_overflow_policy_name(enum lmq_overflow_policy p);

/* True when the raw address (4 or 16 bytes; IPv4-mapped IPv6 counts as IPv4) is in p. */
bool lmq_ip_prefix_match(const struct lmq_ip_prefix *p, const uint8_t *addr, size_t len_bytes);

/* Parses "HOST:PORT" or "[V6]:PORT" (HOST: IPv4 address, localhost or a host name). Returns 0
 * or LMQ_EINVAL with a message in err. */
int lmq_config_parse_listen(const char *s, struct lmq_listen_addr *out, char *err, size_t err_len);

/*
 * Resolves every listener named by a host name to the address it resolves to (the first one
 * getaddrinfo gives), once, before the server starts: SIGHUP does not re-resolve. Returns 0 or
 * LMQ_EINVAL with "KEY listener NAME: cannot resolve: reason" in err.
 */
int lmq_config_resolve_listeners(struct lmq_config *cfg, char *err, size_t err_len);

#endif
