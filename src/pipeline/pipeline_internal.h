/*
 * Pipeline internals shared by the files of src/pipeline: its state (struct pipeline, owned by
 * the broker through b->pipeline) and the functions one pipeline file offers another. The
 * pipeline runs on the broker's loop and uses the broker's internals (connections, sessions,
 * routing, commit batches); the broker uses only pipeline.h.
 */
#ifndef PIPELINE_INTERNAL_H
#define PIPELINE_INTERNAL_H

#include "broker/broker_internal.h"
#include "crypto/keyfile.h"
#include "ledger/merkle.h"
#include "pipeline/pipeline.h"

struct pipeline_nonces;

struct pipeline {
    struct broker *broker;
    struct crypto_identity server_key; /* signs login tokens; <data>/server.key.json */
    struct pipeline_nonces *nonces;    /* outstanding login challenges (pipeline_nonce.c) */
    struct lmq_map *identities;   /* identity id -> struct accept_identity (pipeline_accept.c) */
    struct lmq_map *revocations;  /* identity id -> struct pipeline_tokens_revocation */
    struct lmq_map *ledger_quota; /* identity id -> struct pipeline_quota (pipeline_quota.c) */
    int64_t ledger_quota_day;     /* UTC day the ledger_quota entries are of (older pruned) */
    uint64_t ledger_size;         /* envelopes accepted: the next ledger index */
    struct ledger_merkle_frontier tree; /* the Merkle tree over them (uncommitted included) */
    char ledger_origin[64];             /* checkpoint origin and key name */
    char *checkpoint;                   /* latest signed checkpoint note (committed tree) */
    size_t checkpoint_len;
    uint64_t checkpoint_size;
    uint8_t checkpoint_root[LEDGER_MERKLE_HASH_BYTES];
    size_t commit_slot; /* the tree's per-batch state: commit_hook_data(b, commit_slot) */
    struct pipeline_envelope_hook envelope_hooks[PIPELINE_ENVELOPE_HOOKS_MAX];
    size_t envelope_hook_count;
    struct pipeline_token_cache *token_cache; /* verified tokens (pipeline_tokens.c), or NULL */
    pipeline_will_send_fn will_send;          /* before a server-sent envelope is signed, or NULL */
    void *will_send_ctx;
};

/* pipeline_identity.c */
/* Loads (or creates on first start) the server key. 0 or an error after printing a one-line
 * message. */
int pipeline_identity_init(struct broker *b) LMQ_WUR;
/* POST /auth/challenge, POST /auth/token, GET /auth/key (and POST /auth/revoke, tokens). */
int pipeline_identity_http_route(struct broker *b, const struct http_request *req,
                                 struct http_response *resp, struct lmq_buf *out);

/* pipeline_nonce.c */
/* Challenges outstanding at once; past it the heaviest address's oldest is evicted. */
#define PIPELINE_NONCES_MAX 10000
/* Sets up the table (limits from b->cfg). 0 or LMQ_ENOMEM (pipeline_nonce_destroy cleans up). */
int pipeline_nonce_init(struct broker *b) LMQ_WUR;
/* Frees every challenge and the table; safe when init failed or never ran. */
void pipeline_nonce_destroy(struct broker *b);
/* Issues a challenge for pub to the client at remote (NULL: unknown) and writes its nonce
 * (NUL-terminated). At a cap an older challenge is evicted, never this one refused. 0 or
 * LMQ_ENOMEM. */
int pipeline_nonce_issue(struct broker *b, const struct sockaddr *remote,
                         const uint8_t pub[CRYPTO_ED25519_PUB_BYTES],
                         char nonce[PIPELINE_NONCE_CHARS + 1]) LMQ_WUR;

/* pipeline_tokens.c */
/* Loads the stored revocations (recovery). 0 or an error. */
int pipeline_tokens_recover(struct broker *b) LMQ_WUR;
void pipeline_tokens_destroy(struct broker *b);
/* POST /auth/revoke with "Authorization: Bearer <token>": revokes every token of that identity
 * issued up to now, the one used included, and ends its connections that use one. */
int pipeline_tokens_http_revoke(struct broker *b, const struct http_request *req,
                                struct http_response *resp, struct lmq_buf *out);

/* pipeline_quota.c: [auth] ledger_bytes_per_day, per identity and UTC day. */
/* Recomputes today's bytes per identity from the ledger's rows (recovery). 0 or an error. */
int pipeline_quota_recover(struct broker *b) LMQ_WUR;
void pipeline_quota_destroy(struct broker *b);
/* Counts bytes of an envelope about to be appended for identity (c: the connection that sent
 * it, or NULL when the server sends on the identity's behalf): false (nothing counted; a
 * security event, logged at most once a minute per identity) when over the day's quota. */
bool pipeline_quota_take(struct broker *b, struct conn *c, const char *identity, uint64_t bytes);

/* pipeline_accept.c */
/* An accepted envelope, as its ack describes it. */
struct pipeline_accepted {
    uint64_t seq;
    uint64_t index;
    uint64_t position;
    char link[CRYPTO_IDENTITY_ID_BYTES];
    char to[CRYPTO_IDENTITY_ID_BYTES];
};
/* Publishes an ack payload on id/<sender>/ack (QoS 1, durable with the current batch). */
int pipeline_publish_ack(struct broker *b, const char *sender, const char *json,
                         size_t len) LMQ_WUR;
/* Frees the chains (identities map). */
void pipeline_accept_destroy(struct broker *b);

/* pipeline_tree.c: the Merkle tree, checkpoints and receipts. */
struct pipeline_tree_batch;
/* Appends the envelope with this link (hex) as the next leaf; its nodes go into the batch. */
int pipeline_tree_append(struct broker *b, const char *link_hex) LMQ_WUR;
/* Queues the ack of a (new or resent) envelope: sent with its receipt once the batch is
 * durable and a checkpoint covers it: published on the sender's ack topic, or, with sent, handed
 * to sent(ctx, ...) instead (and sent(ctx, NULL, 0) if the batch never becomes durable). */
void pipeline_tree_queue_ack(struct broker *b, const char *sender,
                             const struct pipeline_accepted *a, pipeline_sent_fn sent, void *ctx);
/* The batch's commit hook calls (pipeline.c): close (snapshot of the tree, before the commit),
 * committed (checkpoint, acks with receipts; once durable), free. lb may be NULL (the batch
 * appended nothing). */
void pipeline_tree_close(struct broker *b, struct pipeline_tree_batch *lb);
void pipeline_tree_committed(struct broker *b, struct pipeline_tree_batch *lb);
void pipeline_tree_batch_free(struct pipeline_tree_batch *lb);
/* Recovery: rebuilds the frontier from stored nodes and signs the current checkpoint. */
int pipeline_tree_recover(struct broker *b) LMQ_WUR;
/* Appends the JSON array of base64 proof hashes for index in the tree of size (lb may be NULL). */
int pipeline_tree_proof_json(struct broker *b, const struct pipeline_tree_batch *lb, uint64_t index,
                             uint64_t size, char *out, size_t cap, size_t *used) LMQ_WUR;
/* Appends the JSON array of base64 consistency-proof hashes between the trees of old and size
 * leaves (old <= size <= the checkpoint's size), from the store. */
int pipeline_tree_consistency_json(struct broker *b, uint64_t old, uint64_t size, char *out,
                                   size_t cap, size_t *used) LMQ_WUR;
/* Appends s (len bytes: a checkpoint note: printable ASCII, UTF-8, newlines) as a JSON string at
 * out + *used. 0 or LMQ_ETOOBIG. */
int pipeline_tree_json_string(char *out, size_t cap, size_t *used, const char *s,
                              size_t len) LMQ_WUR;

#endif
