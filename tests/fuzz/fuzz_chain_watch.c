/*
 * libFuzzer target for the chain follower's watch bodies (src/chain/chain_watch.h): what any
 * identity can send the server as ledgermq.chain.watch / unwatch. The first byte picks watch or
 * unwatch, the rest is the body. Oracles:
 *   - a refusal is a non-empty sentence;
 *   - an accepted event's topic 0 is keccak256 of its canonical signature, and the event text
 *     is NUL-terminated within CHAIN_EVENT_MAX_CHARS;
 *   - an accepted watch written back as {"address","topic0"} parses as an unwatch to the same
 *     key (the key an unwatch must name).
 * fuzz-sources: src/chain/chain_watch.c src/eth/eth_abi.c src/eth/eth_hex.c src/eth/eth_keccak.c
 * fuzz-sources: src/eth/eth_key.c src/core/buf.c
 * fuzz-libs: -ljansson -lsecp256k1 -lcrypto
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "chain/chain_watch.h"
#include "eth/eth_abi.h"
#include "eth/eth_hex.h"

#include "fuzz_check.h"

static void check_key_round_trip(const struct chain_watch *w)
{
    char address[43], topic[67], body[160];
    CHECK(eth_hex_encode(w->address, 20, address, sizeof(address)) == LMQ_OK);
    CHECK(eth_hex_encode(w->topic0, 32, topic, sizeof(topic)) == LMQ_OK);
    int n = w->has_topic0 ? snprintf(body, sizeof(body), "{\"address\":\"%s\",\"topic0\":\"%s\"}",
                                     address, topic)
                          : snprintf(body, sizeof(body), "{\"address\":\"%s\"}", address);
    CHECK(n > 0 && (size_t)n < sizeof(body));
    struct chain_watch u;
    CHECK(chain_watch_parse((const uint8_t *)body, (size_t)n, false, &u) == NULL);
    CHECK(memcmp(u.address, w->address, 20) == 0 && u.has_topic0 == w->has_topic0);
    CHECK(!w->has_topic0 || memcmp(u.topic0, w->topic0, 32) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool watch = (data[0] & 1) != 0;
    struct chain_watch w;
    const char *why = chain_watch_parse(data + 1, size - 1, watch, &w);
    if (why != NULL) {
        CHECK(why[0] != '\0');
        return 0;
    }
    CHECK(memchr(w.event, '\0', sizeof(w.event)) != NULL);
    if (w.event[0] != '\0') {
        static struct eth_abi_sig sig;
        char err[128];
        uint8_t t0[32];
        CHECK(watch && w.has_topic0);
        CHECK(eth_abi_parse(w.event, &sig, err, sizeof(err)) == LMQ_OK);
        eth_abi_topic0(&sig, t0);
        CHECK(memcmp(t0, w.topic0, 32) == 0);
    }
    check_key_round_trip(&w);
    return 0;
}
