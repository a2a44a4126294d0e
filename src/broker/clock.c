/*
 * The broker's clocks: loop time (monotonic, cached by libuv once per loop turn) for timers
 * and rates, and wall-clock time (for message expiry and the ledger's timestamps) derived from
 * it with an offset that the tick re-reads, so that no message costs a syscall.
 */
#include "broker/broker_internal.h"

#include <time.h>

uint64_t clock_now_ms(struct broker *b)
{
    return uv_now(&b->loop);
}

/* Re-reads the wall clock; clock_unix_ms() derives from the loop's cached time in between. */
void clock_sync(struct broker *b)
{
    LMQ_ASSERT(b != NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    b->wall_offset_ms = wall_ms - (int64_t)uv_now(&b->loop);
}

int64_t clock_unix_ms(struct broker *b)
{
    /* No syscall per message: the loop's time of this turn plus an offset refreshed per tick. */
    return (int64_t)uv_now(&b->loop) + b->wall_offset_ms;
}
