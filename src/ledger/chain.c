#include "ledger/chain.h"

#include <string.h>

#include "core/lmq.h"

enum ledger_chain_verdict ledger_chain_check(uint64_t last_seq, const char *last_link, uint64_t seq,
                                             const char *prev, const char *link,
                                             const char *accepted_link)
{
    LMQ_ASSERT(seq >= 1 && last_link != NULL && prev != NULL && link != NULL);
    LMQ_ASSERT(last_seq > 0 || last_link[0] == '\0');
    if (seq == last_seq + 1)
        return strcmp(prev, last_link) == 0 ? LEDGER_CHAIN_NEXT : LEDGER_CHAIN_FORK;
    if (seq > last_seq + 1)
        return LEDGER_CHAIN_GAP;
    return accepted_link != NULL && strcmp(accepted_link, link) == 0 ? LEDGER_CHAIN_RESEND
                                                                     : LEDGER_CHAIN_FORK;
}

const char *ledger_chain_verdict_name(enum ledger_chain_verdict verdict)
{
    static const char *const names[] = {"next", "resend", "gap", "fork"};
    LMQ_ASSERT((unsigned)verdict < LMQ_ARRAY_LEN(names));
    return names[verdict];
}
