/*
 * Chain resync: a state directory none of whose envelopes the server ever accepted (a fresh
 * one, or one left with only rejected envelopes) learns the head of its identity's chain from
 * the server after a `fork` reject, so that its next envelope continues the server's chain
 * (docs/PROTOCOL.md, "Client library"). The head is read from GET /ledger/envelopes with the
 * login token (the caller's own envelopes) and checked: signed by our key, from us, at the seq
 * the reject named. A server that lies can only make the next envelope a fork again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "crypto/jcs.h"

#define CHAIN_PATH_MAX_BYTES 96
#define CHAIN_PAGE_COUNT 1000u

/* A number member holding an integer 0..2^53 (JCS parses every number as a double). */
static bool chain__u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!(d >= 0 && d <= (double)CRYPTO_JCS_EXACT_INT_MAX) || d != (double)(uint64_t)d) {
        return false;
    }
    *out = (uint64_t)d;
    return true;
}

/* Looks for our envelope at seq in one page; 0 with *found set, or LMQ_EPROTO (malformed). */
static int chain__page(struct lmq_client *c, const json_t *page, uint64_t seq, bool *found,
                       uint64_t *next, uint64_t *size)
{
    const json_t *list = json_object_get(page, "envelopes");
    if (!json_is_array(list) || !chain__u64(page, "next", next) ||
        !chain__u64(page, "size", size)) {
        return LMQ_EPROTO;
    }
    for (size_t i = 0; i < json_array_size(list) && !*found; i++) {
        const json_t *item = json_array_get(list, i);
        const json_t *env = json_object_get(item, "envelope");
        const char *from = json_string_value(json_object_get(env, "from"));
        uint64_t env_seq = 0, index = 0;
        struct lmq_buf canonical = {0};
        struct ledger_envelope e = {0};
        const char *reason = NULL;
        if (!chain__u64(env, "seq", &env_seq) || env_seq != seq || from == NULL ||
            strcmp(from, c->ident.id) != 0 || !chain__u64(item, "index", &index)) {
            continue;
        }
        int rc = crypto_jcs_canonicalize_json(env, &canonical, LEDGER_ENVELOPE_MAX_BYTES);
        if (rc == 0 && ledger_envelope_open(canonical.data, canonical.len, &e, &reason) == 0) {
            char link[LEDGER_ENVELOPE_LINK_BYTES];
            /* Our key signed it: the server cannot make one up. */
            if (strcmp(e.from, c->ident.id) == 0 && e.seq == seq &&
                ledger_envelope_link(&e, link) == 0) {
                rc =
                    client_db_chain_adopt(c, seq, link, e.to, canonical.data, canonical.len, index);
                *found = rc == 0;
            }
            ledger_envelope_release(&e);
        }
        lmq_buf_release(&canonical);
        if (rc == LMQ_EINVAL || rc == LMQ_EIO) {
            return rc;
        }
    }
    return 0;
}

int client_chain_resync(struct lmq_client *c, uint64_t seq)
{
    struct lmq_buf body = {0};
    uint64_t start = 0, next = 0, size = 0;
    bool found = false;
    int rc = 0;
    LMQ_ASSERT(c != NULL && c->fetch != NULL && seq >= 1);
    if (c->token[0] == '\0') {
        return LMQ_EIO; /* not logged in: try again with the next reject */
    }
    /* Each page moves start forward or ends the scan; at most CLIENT_CHAIN_PAGES_MAX pages. */
    for (unsigned pages = 0; pages < CLIENT_CHAIN_PAGES_MAX && !found; pages++) {
        char path[CHAIN_PATH_MAX_BYTES];
        unsigned status = 0;
        json_t *page = NULL;
        int n = snprintf(path, sizeof(path), "/ledger/envelopes?start=%" PRIu64 "&count=%u", start,
                         CHAIN_PAGE_COUNT);
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(path));
        rc = c->fetch(c, path, &body, &status);
        if (rc == 0 && crypto_jcs_parse(body.data, body.len, &page) != 0) {
            rc = LMQ_EPROTO;
        }
        rc = rc == 0 ? chain__page(c, page, seq, &found, &next, &size) : rc;
        json_decref(page);
        if (rc != 0 || found || next <= start || next >= size) {
            break;
        }
        start = next;
    }
    lmq_buf_release(&body);
    if (rc == 0 && !found) {
        rc = LMQ_ENOTFOUND;
    }
    LMQ_ASSERT(rc != 0 || c->acked_seq_max == seq);
    return rc;
}
