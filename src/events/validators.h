/*
 * Validator bots (docs/PROTOCOL.md "Validator bots"): [bots] validators names, per envelope
 * type, a bot whose verdict a client's envelope of that type (or typed object of that model,
 * "_t") waits for before it is accepted.
 * The server asks on id/<bot>/validate ({"request":N,"link":..,"from":..,"type":..,
 * "envelope":{..}}, QoS 1, to the bot's session that last subscribed there while it is
 * connected); the bot answers on id/<bot>/validate/verdict ({"request":N,"accept":true} or
 * {"request":N,"accept":false,"reason":".."}). Meanwhile the sender's connection is not read
 * (pipeline_accept returns PROTO_BLOCKED) and nothing is appended or acknowledged; the verdict,
 * or the default verdict after verdict_timeout_ms, wakes it and the accept path goes on. Pending
 * verdicts live in memory only: after a crash the client resends and the bot is asked again.
 */
#ifndef LMQ_VALIDATORS_H
#define LMQ_VALIDATORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/lmq.h"

struct broker;
struct conn;
struct mqtt_publish;
struct ledger_envelope;

/* Verdicts waiting (asked, or decided and not yet picked up) at once, in all and per sender;
 * past either an envelope waits (its publisher is retried on the broker's tick) before it is
 * asked about. */
#define VALIDATORS_PENDING_MAX 1024
#define VALIDATORS_PENDING_PER_SENDER_MAX 4
/* The longest reason a bot may give (printable ASCII); the reject says "bot:<reason>". */
#define VALIDATORS_REASON_MAX_CHARS 64
/* "bot:" and a reason, or "validator_timeout" / "validator_unavailable". */
#define VALIDATORS_REJECT_REASON_BYTES (4 + VALIDATORS_REASON_MAX_CHARS + 1)

enum validators_gate {
    VALIDATORS_PASS,   /* no validator, the bot's own envelope, or accepted */
    VALIDATORS_WAIT,   /* asked (or no room to ask yet): PROTO_BLOCKED, retried later */
    VALIDATORS_REJECT, /* rejected: reason filled */
    VALIDATORS_ASK,    /* the bot is to be asked, once the other checks pass: validators_ask_now */
};

/* Sets up [bots] validators (after bots_init). Nothing when there are none. 0 or LMQ_ENOMEM. */
int validators_init(struct broker *b) LMQ_WUR;
void validators_destroy(struct broker *b);
/* For a client's verified envelope that continues its sender's chain (c sent it; link is its
 * link): whether it may go on, must wait, is rejected with reason (a buffer of
 * VALIDATORS_REJECT_REASON_BYTES), or is to be asked about. */
enum validators_gate validators_check(struct conn *c, const struct ledger_envelope *env,
                                      const char *link, char *reason);
/* After VALIDATORS_ASK in the same loop turn, once the envelope passed every other check: asks
 * the bot (VALIDATORS_WAIT), or, with no live session to ask, the default verdict right away
 * (VALIDATORS_PASS, or VALIDATORS_REJECT with reason "validator_unavailable"). */
enum validators_gate validators_ask_now(struct conn *c, const struct ledger_envelope *env,
                                        const char *link, char *reason);
/* True when id is the validator of some type (it may publish on id/<id>/validate/verdict). */
bool validators_is_validator(const struct broker *b, const char *id);
/* A validator bot's publish on its validate/verdict topic: the PUBACK reason code (0x99 for a
 * malformed verdict on MQTT 5; a verdict for no waiting request of its own is counted and
 * ignored). */
uint8_t validators_verdict(struct conn *c, const struct mqtt_publish *pub);
/* c subscribed filter (len bytes): when c is a validator bot and filter matches its
 * id/<bot>/validate, its session becomes the one asked. */
void validators_subscribed(struct conn *c, const uint8_t *filter, size_t len);
/* The validator lines of /metrics (nothing without validators). */
int validators_metrics(struct broker *b, struct lmq_buf *out);
/* Shutdown: the verdict timer no longer keeps the loop alive (pending verdicts are dropped with
 * the process; the clients, which have no PUBACK, resend). Idempotent. */
void validators_stop(struct broker *b);

#endif
