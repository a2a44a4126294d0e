/*
 * A contract watch and the parser of its envelope body (docs/PROTOCOL.md "Watching a
 * contract"): no broker, for the follower's envelope hook and the fuzz target.
 */
#ifndef LMQ_CHAIN_WATCH_H
#define LMQ_CHAIN_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters of an identity id; of a watch's event signature. */
#define CHAIN_ID_CHARS 64
#define CHAIN_EVENT_MAX_CHARS 512

struct chain_watch {
    char identity[CHAIN_ID_CHARS + 1];
    uint8_t address[20];
    bool has_topic0;
    uint8_t topic0[32];
    char event[CHAIN_EVENT_MAX_CHARS + 1]; /* "" when none */
};

/* Parses a ledgermq.chain.watch body (watch) or a ledgermq.chain.unwatch body into *w (all
 * but identity; an event sets topic0 to its topic 0). NULL, or a static sentence saying what
 * is wrong (the reject's detail). */
const char *chain_watch_parse(const uint8_t *body, size_t len, bool watch, struct chain_watch *w);

#endif
