/*
 * In-memory store back end: keeps nothing across restarts. It exists so the
 * broker's acknowledgement path is the real one from day one: a commit
 * completes asynchronously (uv_async) on a later loop turn, never inside
 * store_commit(), exactly like a disk back end's storage thread would.
 */
#include "store/store.h"

#include <string.h>

#include "core/lmq.h"

/* Commits waiting for completion; bounded by how many batches the broker can have open. */
#define STORE_MEMORY_PENDING_MAX 65536

struct pending_commit {
    store_commit_cb cb;
    void *arg;
};

struct store {
    uv_async_t async;
    struct pending_commit *pending;
    size_t pending_count;
    size_t pending_cap;
    struct store_stats stats;
    bool closing;
};

static void store_memory_complete(uv_async_t *async)
{
    struct store *store = async->data;
    LMQ_ASSERT(store != NULL);
    /* Completions may queue new commits; only run those that were pending on entry. */
    size_t count = store->pending_count;
    struct pending_commit batch[64];
    size_t done = 0;
    while (done < count) {
        size_t n = LMQ_MIN(count - done, LMQ_ARRAY_LEN(batch));
        memcpy(batch, store->pending, n * sizeof(batch[0]));
        memmove(store->pending, store->pending + n,
                (store->pending_count - n) * sizeof(store->pending[0]));
        store->pending_count -= n;
        for (size_t i = 0; i < n; i++) {
            store->stats.commits++;
            batch[i].cb(batch[i].arg, LMQ_OK);
        }
        done += n;
    }
}

int store_open_memory(uv_loop_t *loop, struct store **out)
{
    LMQ_ASSERT(loop != NULL);
    LMQ_ASSERT(out != NULL);
    struct store *store = calloc(1, sizeof(*store));
    if (store == NULL)
        return LMQ_ENOMEM;
    if (uv_async_init(loop, &store->async, store_memory_complete) != 0) {
        free(store);
        return LMQ_EIO;
    }
    store->async.data = store;
    *out = store;
    return LMQ_OK;
}

int store_write(struct store *store, const struct store_record *rec)
{
    LMQ_ASSERT(store != NULL && !store->closing);
    LMQ_ASSERT(rec != NULL && rec->type >= STORE_SESSION_PUT && rec->type <= STORE_RETAINED_DELETE);
    store->stats.records_written++;
    return LMQ_OK;
}

int store_commit(struct store *store, store_commit_cb cb, void *arg)
{
    LMQ_ASSERT(store != NULL && !store->closing);
    LMQ_ASSERT(cb != NULL);
    if (store->pending_count == STORE_MEMORY_PENDING_MAX)
        return LMQ_ELIMIT;
    if (store->pending_count == store->pending_cap) {
        size_t cap = store->pending_cap == 0 ? 16 : store->pending_cap * 2;
        struct pending_commit *p = realloc(store->pending, cap * sizeof(*p));
        if (p == NULL)
            return LMQ_ENOMEM;
        store->pending = p;
        store->pending_cap = cap;
    }
    store->pending[store->pending_count++] = (struct pending_commit){.cb = cb, .arg = arg};
    if (uv_async_send(&store->async) != 0)
        return LMQ_EIO;
    return LMQ_OK;
}

size_t store_pending(const struct store *store)
{
    LMQ_ASSERT(store != NULL);
    return store->pending_count;
}

void store_get_stats(const struct store *store, struct store_stats *out)
{
    LMQ_ASSERT(store != NULL && out != NULL);
    *out = store->stats;
}

static void store_memory_closed(uv_handle_t *handle)
{
    struct store *store = handle->data;
    free(store->pending);
    free(store);
}

void store_close(struct store *store)
{
    if (store == NULL)
        return;
    LMQ_ASSERT(!store->closing);
    /* Anything still pending completes now: the memory back end has nothing to wait for. */
    store_memory_complete(&store->async);
    store->closing = true;
    uv_close((uv_handle_t *)&store->async, store_memory_closed);
}
