/*
 * The chain rule of signed envelopes: what an envelope is to its sender's chain. Pure; the
 * broker keeps the chain heads and finds the link accepted at an earlier seq.
 */
#ifndef LMQ_LEDGER_CHAIN_H
#define LMQ_LEDGER_CHAIN_H

#include <stdint.h>

enum ledger_chain_verdict {
    LEDGER_CHAIN_NEXT = 0, /* seq = last + 1 and prev = the last link: append it */
    LEDGER_CHAIN_RESEND,   /* the envelope accepted at this seq, again: acknowledge again */
    LEDGER_CHAIN_GAP,      /* seq > last + 1: an envelope is missing before it */
    LEDGER_CHAIN_FORK,     /* another envelope at an accepted seq, or prev is not the last link */
};

/*
 * last_seq/last_link: the sender's chain head (0 and "" before its first envelope). For
 * seq <= last_seq, accepted_link is the link accepted at that seq (NULL when the caller could
 * not find it, which makes it a fork). Links are NUL-terminated hex. seq must be >= 1.
 */
enum ledger_chain_verdict ledger_chain_check(uint64_t last_seq, const char *last_link, uint64_t seq,
                                             const char *prev, const char *link,
                                             const char *accepted_link);

/* "next", "resend", "gap" or "fork". */
const char *ledger_chain_verdict_name(enum ledger_chain_verdict verdict);

#endif
