/* Placeholder until the broker lands; replaced by the real implementation. */
#include "broker/broker.h"
#include "core/lmq.h"

int broker_run(const struct lmq_config *cfg)
{
    LMQ_ASSERT(cfg != NULL);
    return 1;
}
