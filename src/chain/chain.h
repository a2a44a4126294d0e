/*
 * The chain follower (docs/PROTOCOL.md "Chain follower"; docs/ARCHITECTURE.md "Chain
 * follower"): follows an Ethereum node's headers over JSON-RPC ([chain] rpc), keeps them in the
 * store as one chain (reorgs rolled back), and tells identities that asked for a contract's
 * logs (ledgermq.chain.watch envelopes) about them with server-signed envelopes in their inbox.
 * Off (every function a no-op) when [chain] rpc is not set.
 */
#ifndef LMQ_CHAIN_H
#define LMQ_CHAIN_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/lmq.h"

struct broker;

/* Before data_init opens the first batch: creates the follower and registers its commit hook.
 * 0, LMQ_ELIMIT, LMQ_ENOMEM. */
int chain_init(struct broker *b) LMQ_WUR;
/* Before recovery, after chain_init and the other modules' envelope hooks: registers the watch
 * envelopes' hook. 0, LMQ_ELIMIT, LMQ_ENOMEM. */
int chain_init_watches(struct broker *b) LMQ_WUR;
/* After recovery: loads the stored tip and watches, checks the stored chain, starts polling.
 * 0, LMQ_EIO (the store can't be read, or the stored headers are not one chain), LMQ_ENOMEM. */
int chain_start(struct broker *b) LMQ_WUR;
/* Stops polling (calls in flight are dropped: the next start asks again). */
void chain_stop(struct broker *b);
/* Frees what chain_init allocated (after the loop closed the handles). */
void chain_destroy(struct broker *b);
/* The follower's state name ("starting", "syncing", "following", "degraded", "node_down",
 * "halted"), or NULL when off; *unhealthy when /healthz should answer 503 for it. */
const char *chain_health(const struct broker *b, bool *unhealthy);
/* The prune_sessions job ended a session of owner: when owner is an identity with no stored
 * session left, its watches end (deleted in the open batch). */
void chain_identity_pruned(struct broker *b, const char *owner);
/* Appends the ledgermq_chain_* metrics (nothing when off). 0 or LMQ_ENOMEM. */
int chain_metrics(struct broker *b, struct lmq_buf *out) LMQ_WUR;

#endif
