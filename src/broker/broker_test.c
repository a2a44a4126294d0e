/*
 * A broker for unit tests (tests/unit/test_broker.c), not used by the server: the loop, the
 * maps, the subscription tree and the retained index of a real broker, and nothing that reaches
 * outside the process: no listeners, signals, tick, pipeline or commit hooks, and no store
 * (b->store NULL: records are skipped and commit_turn_end releases the open batch as if it had
 * committed, as during shutdown). Sessions, messages and queues then behave as in the server up
 * to the point where they would touch a socket or the disk.
 */
#include "broker/broker_internal.h"

#include <string.h>

int broker_init_for_test(struct broker *b, const struct lmq_config *cfg)
{
    LMQ_ASSERT(b != NULL && cfg != NULL);
    int rc = broker_init_state(b, cfg);
    if (rc == LMQ_ENOMEM)
        broker_destroy_for_test(b);
    return rc;
}

void broker_destroy_for_test(struct broker *b)
{
    LMQ_ASSERT(b->store == NULL && b->pipeline == NULL && b->commit_hook_count == 0);
    if (b->sessions != NULL)
        session_destroy_all(b);
    commit_turn_end(b); /* no store: the open batch is released */
    if (b->retained != NULL)
        retain_destroy_all(b);
    LMQ_ASSERT(b->batch == NULL && list_empty(&b->conns));
    broker_destroy_state(b); /* closes the retained index's idle handle too */
    memset(b, 0, sizeof(*b));
}
