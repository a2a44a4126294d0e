/*
 * The identity/ledger pipeline, as the broker sees it: login (challenge, token), CONNECT
 * authentication by token, the id/<identity>/... topic rules, the envelope pipeline (verify,
 * chain, append, inbox, ack, resync), the Merkle tree with its checkpoints and receipts, and
 * the HTTP routes under /auth/ and /ledger/.
 *
 * The broker owns it through one pointer (struct broker's pipeline) and calls only what this
 * header declares; the state (server key, login challenges, chains, revocations, quotas, tree,
 * checkpoint) is the pipeline's own (pipeline_internal.h). The pipeline acts on durability
 * through a commit hook it registers at pipeline_init (commit.c), never by name from the
 * broker's commit path.
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "broker/proto_result.h"
#include "core/lmq.h"
#include "crypto/ed25519.h"

struct broker;
struct conn;
struct session;
struct sockaddr;
struct mqtt_connect;
struct mqtt_publish;
struct http_request;
struct http_response;
struct lmq_buf;

/* pipeline.c: lifecycle. */
/* Creates the pipeline (b->pipeline) once the store is open: loads (or creates on first start)
 * the server key, sets up login state and registers the pipeline's commit hook. 0 or an error
 * after printing a one-line message (LMQ_ENOMEM: nothing printed). */
int pipeline_init(struct broker *b) LMQ_WUR;
/* Frees the pipeline and everything it holds; safe when init failed or never ran. */
void pipeline_destroy(struct broker *b);
/* Recovery, after the store was loaded: the ledger's size, the Merkle frontier and the signed
 * checkpoint, the revocations, today's ledger quotas. 0 or an error. */
int pipeline_recover(struct broker *b) LMQ_WUR;
/* Recovery (store_load's identity callback): an identity's chain head and inbox counter. */
int pipeline_identity_restore(struct broker *b, struct lmq_bytes id, uint64_t last_seq,
                              struct lmq_bytes last_link, uint64_t inbox_last) LMQ_WUR;
/* Envelopes accepted: the ledger's size (uncommitted ones included). */
uint64_t pipeline_ledger_size(const struct broker *b);
/* The size of the latest signed checkpoint (0 before the first). */
uint64_t pipeline_checkpoint_entries(const struct broker *b);
/* The server's identity id (64 hex characters, NUL-terminated): the key that signs tokens,
 * checkpoints and in-band challenges. */
const char *pipeline_server_id(const struct broker *b);
/* The latest signed checkpoint (committed tree): its note (NUL-terminated, valid until the next
 * commit) and tree size; NULL before the first. */
const char *pipeline_checkpoint_note(const struct broker *b, uint64_t *size);
/* Longest checkpoint text pipeline_checkpoint_size reads (a note as GET /ledger/checkpoint
 * prints it: the body and this server's one signature line). */
#define PIPELINE_CHECKPOINT_TEXT_MAX_BYTES 4096
/* The tree size text names for a read as of a checkpoint (docs/PROTOCOL.md "Reading as of a
 * checkpoint"): a checkpoint note signed by this server's key with its origin, or a tree size in
 * decimal; either at most the latest checkpoint's size (what is committed). 0 with *size, or
 * LMQ_EINVAL with the reason in why[0..why_len). */
int pipeline_checkpoint_size(const struct broker *b, const char *text, size_t len, uint64_t *size,
                             char *why, size_t why_len) LMQ_WUR;

/* pipeline_identity.c: CONNECT authentication and the id/ topic rules. */
/* What an id/<owner>/<leaf> topic is. */
enum pipeline_topic {
    PIPELINE_TOPIC_NONE = 0, /* not under id/ */
    PIPELINE_TOPIC_OTHER,    /* under id/ but no known leaf (or a malformed owner) */
    PIPELINE_TOPIC_OUTBOX,
    PIPELINE_TOPIC_INBOX,
    PIPELINE_TOPIC_ACK,
    PIPELINE_TOPIC_REJECT,
    PIPELINE_TOPIC_RESYNC,
    PIPELINE_TOPIC_SYNC,
    PIPELINE_TOPIC_EVENTS,           /* a bot's events (src/events/bots.c) */
    PIPELINE_TOPIC_EVENTS_SYNC,      /* a bot's page markers */
    PIPELINE_TOPIC_EVENTS_RESYNC,    /* a bot asks for a page */
    PIPELINE_TOPIC_EVENTS_ACK,       /* a bot acknowledges what it handled */
    PIPELINE_TOPIC_VALIDATE,         /* the server asks a validator bot (src/events/validators.c) */
    PIPELINE_TOPIC_VALIDATE_VERDICT, /* a validator bot's verdict */
};
/* Checks a CONNECT's credentials and sets c->identity and c->user. Returns PROTO_OK,
 * PROTO_REFUSE_CONNECT with the CONNACK reason code in *reason (the security event is logged),
 * or PROTO_PAUSED while a password is checked off the loop (the CONNECT is handled again once
 * it is done). */
enum proto_result pipeline_authenticate(struct conn *c, const struct mqtt_connect *cn,
                                        uint8_t *reason) LMQ_WUR;
/* True for a topic or filter under id/: identity rules, never the ACL file's; only the server's
 * pipeline delivers there, and nothing there is retained. */
bool pipeline_under_id(const uint8_t *topic, size_t len);
/* Classifies topic; *owner points at the 64-character owner id inside it (or NULL). */
enum pipeline_topic pipeline_topic_parse(const uint8_t *topic, size_t len, const char **owner);
/* True when c is authenticated as owner (64 characters). */
bool pipeline_owns(const struct conn *c, const char *owner);
/* False (and a security event) for a filter naming another identity's topics. */
bool pipeline_may_subscribe(struct conn *c, const uint8_t *filter, size_t len);
/* False when topic belongs to an identity other than the session's owner. */
bool pipeline_may_receive(const struct session *s, const uint8_t *topic, size_t len);

/* pipeline_accept.c: the guaranteed-delivery pipeline. */
/* An envelope published to the connection's own outbox: accepted (appended, inbox and ack
 * queued in the current batch), resent (ack again) or rejected (reject message). Returns
 * PROTO_OK with the PUBACK/PUBREC reason code in *reason_code, or, over the identity's rate,
 * PROTO_BLOCKED (3.1.1) or PROTO_DISCONNECT with 0x96 in *reason_code (MQTT 5: PUBACK can't
 * carry it). PROTO_BLOCKED too (any version) while a validator bot's verdict on it is pending
 * (src/events/validators.c): nothing is appended or acknowledged until it is in. */
enum proto_result pipeline_accept(struct conn *c, const struct mqtt_publish *pub,
                                  uint8_t *reason_code) LMQ_WUR;
/*
 * The envelope seam: modules that act on accepted envelopes (the data layer's typed objects,
 * src/data) register hooks at start, before recovery. For an envelope that continues its
 * sender's chain the pipeline calls every check() in registration order; the first refusal
 * rejects it (nothing appended, no quota taken). Once it is appended (ledger row, inbox, ack)
 * every appended() runs in the same open batch, so the records it writes commit with the
 * envelope, or not at all. Both run on the loop thread; check() must not block (a store read is
 * fine).
 */
#define PIPELINE_ENVELOPE_HOOKS_MAX 6

struct ledger_envelope;

/* What a server-sent envelope's sender hears once it is durable (pipeline_server_send). */
typedef void (*pipeline_sent_fn)(void *ctx, const char *ack, size_t ack_len);

/* Why a check refused an envelope: the reject message's reason, detail and more members. */
struct pipeline_refusal {
    const char *reason; /* static: "invalid_object", "stale_version", ... */
    const char *detail; /* static or NULL */
    json_t *members;    /* more members of the reject (an object the pipeline frees) or NULL */
};

struct pipeline_envelope_hook {
    const char *name;
    /* True to let env through; false with *refusal filled to reject it. */
    bool (*check)(void *ctx, const struct ledger_envelope *env, const char *link,
                  struct pipeline_refusal *refusal);
    /* After env was appended at ledger index: 0, or an error that stops the broker (the batch
     * can't be committed without what this hook owes it). */
    int (*appended)(void *ctx, const struct ledger_envelope *env, const char *link, uint64_t index);
    void *ctx;
};

/* Registers hook (copied). 0, or LMQ_ELIMIT past PIPELINE_ENVELOPE_HOOKS_MAX. */
int pipeline_envelope_hook_register(struct broker *b,
                                    const struct pipeline_envelope_hook *hook) LMQ_WUR;

/*
 * Envelopes the server sends as itself: signed with the server key on the server identity's own
 * chain (from = pipeline_server_id), through the same hooks and append as a client's, so they
 * are ledger entries with receipts delivered to the recipient's inbox. A server-sent envelope
 * acting for an identity (a REST write, say) names it in the body member "_on_behalf_of" (the
 * caller puts it there) and is counted against that identity's envelope_rate_per_s and
 * ledger_bytes_per_day instead of the server's.
 */
struct pipeline_server_envelope {
    const char *to;         /* the recipient's identity id */
    const char *type;       /* the envelope type */
    const json_t *body;     /* a JSON object */
    const char *charged_to; /* the identity whose rate and quota it takes, or NULL: none */
    /* Once the batch is durable: the ack with its receipt (canonical JSON, valid during the
     * call), as the sender's ack topic would carry it; ack NULL when the batch never became
     * durable (the server stopped). May be NULL. */
    pipeline_sent_fn sent;
    void *ctx;
};

/* Sends e. 0: appended, e->sent follows, and the envelope's canonical JSON is appended to
 * envelope (when not NULL). LMQ_EPROTO: refused (nothing appended), *refusal says why
 * ("rate_limited", "quota_exceeded", "too_large", "bad_envelope" or a hook's reason; the caller
 * frees refusal->members with json_decref). LMQ_ENOMEM. */
int pipeline_server_send(struct broker *b, const struct pipeline_server_envelope *e,
                         struct pipeline_refusal *refusal, struct lmq_buf *envelope) LMQ_WUR;

/* Called by pipeline_server_send before it signs: true lets e go, with *amended (a new body the
 * pipeline frees) or NULL to keep e->body; false stops it with *refusal filled. One at most. */
typedef bool (*pipeline_will_send_fn)(void *ctx, const struct pipeline_server_envelope *e,
                                      json_t **amended, struct pipeline_refusal *refusal);
void pipeline_will_send_register(struct broker *b, pipeline_will_send_fn fn, void *ctx);

/* Queues a server message (QoS 1, JSON content type) on id/<owner>/<leaf> (leaf at most 15
 * characters) for owner's subscribed sessions, or for session only when it is not NULL; durable
 * with the open commit batch like any routed message. 0 or LMQ_ENOMEM. */
int pipeline_publish_server_msg(struct broker *b, const char *owner, const char *leaf,
                                const uint8_t *payload, size_t len, struct session *only) LMQ_WUR;

/* {"after":N} on the connection's own resync topic: inbox envelopes after N, then a sync.
 * Returns the PUBACK/PUBREC reason code. */
uint8_t pipeline_resync(struct conn *c, const struct mqtt_publish *pub);

/* Calls fn for every identity the pipeline knows (it sent, or was sent, an envelope): its id,
 * the seq of its chain head (0: never sent) and its last inbox position. In no order; fn must
 * not change the pipeline. O(identities) (the admin API's bounded pages). */
void pipeline_identities_visit(struct broker *b,
                               void (*fn)(void *ctx, const char *id, uint64_t last_seq,
                                          uint64_t inbox_last),
                               void *ctx);
/* The chain head seq and last inbox position of identity id: 0 or LMQ_ENOTFOUND. */
int pipeline_identity_state(struct broker *b, const char *id, uint64_t *last_seq,
                            uint64_t *inbox_last) LMQ_WUR;
/* Identities the pipeline knows. */
size_t pipeline_identity_count(const struct broker *b);

/* pipeline_http.c: the HTTP routes under /auth/ (login, revocation, the server key) and
 * /ledger/ (the public checkpoint, key, proofs and leaves; the envelopes a bearer token's
 * identity may read: its own, all for auditors). */
int pipeline_http_route(struct broker *b, const struct http_request *req,
                        struct http_response *resp, struct lmq_buf *out);

/* pipeline_tokens.c: login tokens at CONNECT, revocation, connections ended with their token. */
/* Checks an HTTP request's "Authorization: Bearer <token>" as CONNECT checks a token (the
 * server's signature, expiry with the leeway, sub an identity id, not revoked). Returns 0 with
 * the identity in id, or LMQ_EPROTO with a static reason for the 401 (a presented token that
 * fails is a security event; no header at all is not). */
int pipeline_tokens_http_bearer(struct broker *b, const struct http_request *req,
                                char id[CRYPTO_IDENTITY_ID_BYTES], const char **reason) LMQ_WUR;
/* The token part of pipeline_authenticate: checks the CONNECT's user name (an identity id) and
 * password (its token: signature, expiry with [auth] token_leeway_s, revocation), sets
 * c->identity, c->user and the token times. MQTT_RC_SUCCESS or a CONNACK reason code (the
 * security event is logged). */
uint8_t pipeline_tokens_authenticate(struct conn *c, const struct mqtt_connect *cn) LMQ_WUR;
/* Unix time before which id's tokens are revoked (tokens with iat < it refused); 0: none. */
int64_t pipeline_tokens_revoked_before(struct broker *b, const char *id);
/* SIGHUP: applies revocations written to the store by `ledgermq revoke` meanwhile. */
void pipeline_tokens_reload(struct broker *b);
/* Loop time (ms) at which c's token stops being valid; 0 when c has no token. */
uint64_t pipeline_tokens_conn_deadline_ms(struct conn *c);
/* Ends c (MQTT 5: DISCONNECT 0xA0 Maximum connect time) when its token has expired. True when
 * it did. */
bool pipeline_tokens_conn_end_if_expired(struct conn *c);

/* pipeline_nonce.c: outstanding login challenges, bounded per address, per key and in all. */
#define PIPELINE_NONCE_CHARS 43 /* base64url of 32 random bytes */
#define PIPELINE_NONCE_TTL_MS 30000
/* Which cap evicted a challenge (metrics label). */
enum pipeline_nonce_evict {
    PIPELINE_NONCE_EVICT_ADDRESS = 0,
    PIPELINE_NONCE_EVICT_KEY,
    PIPELINE_NONCE_EVICT_ALL,
    PIPELINE_NONCE_EVICT_COUNT,
};
/* Which way a challenge was issued: it is taken only the same way. */
enum pipeline_nonce_use {
    PIPELINE_NONCE_HTTP = 0, /* POST /auth/challenge, taken by POST /auth/token */
    PIPELINE_NONCE_MQTT,     /* an AUTH of "ledgermq-ed25519" (enhanced_auth.c) */
};
/* pipeline_nonce_issue for an in-band challenge on connection c, counted under c's address. */
int pipeline_nonce_issue_conn(struct broker *b, const struct conn *c,
                              const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                              char nonce[PIPELINE_NONCE_CHARS + 1]) LMQ_WUR;
/* Consumes an outstanding, unexpired challenge: true and the key it was issued to when it was
 * issued for use; false when unknown, expired or of the other use (consumed all the same), or
 * when there is no pipeline (any more). */
bool pipeline_nonce_take(struct broker *b, const char *nonce, size_t len,
                         enum pipeline_nonce_use use, uint8_t pub[CRYPTO_ED25519_PUB_BYTES]);
/* Challenges outstanding (expired ones not yet swept included). */
size_t pipeline_nonce_count(const struct broker *b);

#endif
