/*
 * The pipeline's lifecycle: made once the store is open (server key, login challenges, the
 * commit hook through which the Merkle tree acts on durable batches), recovered from the store
 * after the broker's own state, freed at teardown.
 */
#include "pipeline/pipeline_internal.h"

#include <stdio.h>

/* Before the commit: the batch's end of the tree, the size its checkpoint will cover. */
static void pipeline_before_commit(void *ctx, uint64_t batch_seq, void **data)
{
    LMQ_UNUSED(batch_seq);
    pipeline_tree_close(ctx, *data);
}

/* Durable: sign the checkpoint, publish the batch's acks with their receipts (into the next
 * batch). */
static void pipeline_on_durable(void *ctx, uint64_t batch_seq, void **data)
{
    LMQ_UNUSED(batch_seq);
    pipeline_tree_committed(ctx, *data);
}

static void pipeline_batch_free(void *ctx, uint64_t batch_seq, void **data)
{
    LMQ_UNUSED(ctx), LMQ_UNUSED(batch_seq);
    pipeline_tree_batch_free(*data);
    *data = NULL;
}

static const struct commit_hook pipeline_commit_hook = {
    .name = "ledger",
    .before_commit = pipeline_before_commit,
    .on_durable = pipeline_on_durable,
    .batch_free = pipeline_batch_free,
};

int pipeline_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->pipeline == NULL && b->store != NULL);
    struct pipeline *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return LMQ_ENOMEM;
    p->broker = b;
    b->pipeline = p; /* pipeline_destroy frees what was made on failure */
    if (lmq_map_create(&p->identities) != LMQ_OK || pipeline_nonce_init(b) != LMQ_OK)
        return LMQ_ENOMEM;
    int rc = pipeline_identity_init(b);
    if (rc != LMQ_OK)
        return rc;
    return commit_hook_register(b, &pipeline_commit_hook, b, &p->commit_slot);
}

void pipeline_destroy(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    if (p == NULL)
        return;
    pipeline_accept_destroy(b);
    pipeline_tokens_destroy(b);
    pipeline_quota_destroy(b);
    free(p->checkpoint);
    pipeline_nonce_destroy(b);
    free(p);
    b->pipeline = NULL;
}

int pipeline_recover(struct broker *b)
{
    struct pipeline *p = b->pipeline;
    LMQ_ASSERT(p != NULL && b->store != NULL);
    int rc = store_ledger_size(b->store, &p->ledger_size);
    if (rc == LMQ_OK)
        rc = pipeline_tree_recover(b);
    if (rc == LMQ_OK)
        rc = pipeline_tokens_recover(b);
    if (rc == LMQ_OK)
        rc = pipeline_quota_recover(b);
    LMQ_ASSERT(rc != LMQ_OK || p->tree.size == p->ledger_size);
    return rc;
}

uint64_t pipeline_ledger_size(const struct broker *b)
{
    LMQ_ASSERT(b->pipeline != NULL);
    return b->pipeline->ledger_size;
}

const char *pipeline_checkpoint_note(const struct broker *b, uint64_t *size)
{
    LMQ_ASSERT(b->pipeline != NULL);
    *size = b->pipeline->checkpoint != NULL ? b->pipeline->checkpoint_size : 0;
    return b->pipeline->checkpoint;
}

uint64_t pipeline_checkpoint_entries(const struct broker *b)
{
    LMQ_ASSERT(b->pipeline != NULL);
    return b->pipeline->checkpoint != NULL ? b->pipeline->checkpoint_size : 0;
}

const char *pipeline_server_id(const struct broker *b)
{
    LMQ_ASSERT(b->pipeline != NULL);
    return b->pipeline->server_key.id;
}
