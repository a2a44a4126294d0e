/*
 * The watch envelope's body (chain_watch.h): strict, every refusal a sentence for the reject.
 */
#include "chain/chain_watch.h"

#include <string.h>

#include <jansson.h>

#include "core/lmq.h"
#include "eth/eth_abi.h"
#include "eth/eth_hex.h"

/* A watch body: {"address", "topic0"?, "event"?} (unwatch: address, topic0?). NULL or why not. */
const char *chain_watch_parse(const uint8_t *body, size_t len, bool watch, struct chain_watch *w)
{
    LMQ_ASSERT(w != NULL && (body != NULL || len == 0));
    memset(w, 0, sizeof(*w));
    json_error_t jerr;
    json_t *o = json_loadb((const char *)body, len, 0, &jerr);
    const char *why = NULL;
    const char *key;
    json_t *v;
    if (o == NULL || !json_is_object(o)) {
        why = "the body is not a JSON object";
        goto out;
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "address") != 0 && strcmp(key, "topic0") != 0 &&
            (!watch || strcmp(key, "event") != 0)) {
            why = watch ? "unknown member (expected address, topic0, event)"
                        : "unknown member (expected address, topic0)";
            goto out;
        }
    }
    const char *address = json_string_value(json_object_get(o, "address"));
    if (address == NULL || strlen(address) != 42 ||
        eth_hex_decode_exact(address, w->address, 20) != LMQ_OK) {
        why = "address: expected 0x and 40 hex digits";
        goto out;
    }
    json_t *topic = json_object_get(o, "topic0");
    if (topic != NULL) {
        const char *t = json_string_value(topic);
        if (t == NULL || strlen(t) != 66 || eth_hex_decode_exact(t, w->topic0, 32) != LMQ_OK) {
            why = "topic0: expected 0x and 64 hex digits";
            goto out;
        }
        w->has_topic0 = true;
    }
    json_t *event = json_object_get(o, "event");
    if (event != NULL) {
        const char *e = json_string_value(event);
        static struct eth_abi_sig sig; /* large: not on the stack; loop thread only */
        char err[128];
        if (e == NULL || strlen(e) > CHAIN_EVENT_MAX_CHARS ||
            eth_abi_parse(e, &sig, err, sizeof(err)) != LMQ_OK) {
            why = "event: expected an event signature like Transfer(address indexed from, "
                  "address indexed to, uint256 value)";
            goto out;
        }
        uint8_t t0[32];
        eth_abi_topic0(&sig, t0);
        if (w->has_topic0 && memcmp(t0, w->topic0, 32) != 0) {
            why = "topic0 is not the event's topic 0";
            goto out;
        }
        memcpy(w->topic0, t0, 32);
        w->has_topic0 = true;
        memcpy(w->event, e, strlen(e) + 1);
    }
out:
    json_decref(o);
    return why;
}
