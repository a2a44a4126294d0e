/*
 * The chaser job (docs/ARCHITECTURE.md "Scheduled jobs"): reminds identities of requests they
 * have not answered. A request is a ledger envelope of type [jobs] chaser.type; it is answered
 * once its recipient sent its sender an envelope whose body has "in_reply_to": <the request's
 * link>. (Not "any envelope back": one answer would then silence every open request between the
 * two, and the exact link makes the check a single index lookup.) Each run walks the requests in
 * ledger order, chaser.batch per step, up to the first one younger than chaser.after_s, and
 * sends the recipient of each open one a server-signed envelope
 *
 *   type "ledgermq.reminder", body {"n":k,"reminder_of":"<link>","request_type":"<type>"}
 *
 * when it has had fewer than chaser.max reminders and none in the last chaser.after_s. The
 * reminders are the state: how many a request had, and when the last was, is read from the
 * committed ledger (index ledger_by_reminder), so a reminder counts once it is durable and one a
 * kill -9 lost was never delivered. A run starts only once the previous run's reminders are
 * durable, so a request never gets more than chaser.max.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jobs/jobs_internal.h"
#include "pipeline/pipeline.h"

#define JOBS_CHASER_REMINDER_TYPE "ledgermq.reminder"
/* Wait between looks at the previous run's reminders that are not durable yet. */
#define JOBS_CHASER_WAIT_MS 20
#define JOBS_CHASER_HEX_CHARS 64

/* Reminders appended and not yet durable (or failed): a run waits for 0 before it reads. */
static uint64_t jobs_chaser_pending;

struct jobs_chaser_request {
    int64_t created_unix_ms;
    char sender[JOBS_CHASER_HEX_CHARS + 1];
    char recipient[JOBS_CHASER_HEX_CHARS + 1];
    char link[JOBS_CHASER_HEX_CHARS + 1];
};

/* One step's requests, copied out of the read so sending (which may read the store) runs after
 * the statement is done. */
struct jobs_chaser_page {
    struct jobs_chaser_request *req;
    size_t count, cap;
    uint64_t next; /* the index after the last row read */
};

static void jobs_chaser_copy(char *dst, struct lmq_bytes src)
{
    size_t n = LMQ_MIN(src.len, (size_t)JOBS_CHASER_HEX_CHARS);
    memcpy(dst, src.data, n);
    dst[n] = '\0';
}

static int jobs_chaser_row(void *ctx, const struct store_chaser_request *r)
{
    struct jobs_chaser_page *p = ctx;
    LMQ_ASSERT(p->count < p->cap);
    struct jobs_chaser_request *q = &p->req[p->count++];
    q->created_unix_ms = r->created_unix_ms;
    jobs_chaser_copy(q->sender, r->sender);
    jobs_chaser_copy(q->recipient, r->recipient);
    jobs_chaser_copy(q->link, r->link);
    p->next = r->index + 1;
    return 0;
}

static void jobs_chaser_sent(void *ctx, const char *ack, size_t ack_len)
{
    LMQ_UNUSED(ctx), LMQ_UNUSED(ack), LMQ_UNUSED(ack_len);
    LMQ_ASSERT(jobs_chaser_pending > 0);
    jobs_chaser_pending--;
}

static struct lmq_bytes jobs_chaser_bytes(const char *s)
{
    return (struct lmq_bytes){.data = (const uint8_t *)s, .len = strlen(s)};
}

/* Sends q its reminder number n. 0, or LMQ_EPROTO / LMQ_ENOMEM (the pipeline refused). */
static int jobs_chaser_remind(struct broker *b, const struct jobs_chaser_request *q, uint64_t n)
{
    LMQ_ASSERT(b != NULL && q != NULL && n >= 1);
    LMQ_ASSERT(n <= b->cfg.jobs.chaser_max && strlen(q->link) == JOBS_CHASER_HEX_CHARS);
    json_t *body = json_pack("{s:s,s:I,s:s}", "reminder_of", q->link, "n", (json_int_t)n,
                             "request_type", b->cfg.jobs.chaser_type);
    if (body == NULL)
        return LMQ_ENOMEM;
    struct pipeline_server_envelope e = {
        .to = q->recipient,
        .type = JOBS_CHASER_REMINDER_TYPE,
        .body = body,
        .sent = jobs_chaser_sent,
    };
    struct pipeline_refusal refusal = {0};
    int rc = pipeline_server_send(b, &e, &refusal, NULL);
    json_decref(body);
    if (rc == LMQ_OK)
        jobs_chaser_pending++;
    else if (rc == LMQ_EPROTO)
        json_decref(refusal.members);
    return rc;
}

/* Whether q is due a reminder now, and which one (*n). */
static int jobs_chaser_due(struct broker *b, const struct jobs_chaser_request *q, int64_t cutoff_ms,
                           bool *due, uint64_t *n)
{
    LMQ_ASSERT(b != NULL && q != NULL && due != NULL && n != NULL);
    const char *server = pipeline_server_id(b);
    LMQ_ASSERT(server != NULL && strlen(server) == JOBS_CHASER_HEX_CHARS);
    *due = false;
    if (strcmp(q->sender, server) == 0 || strcmp(q->recipient, server) == 0)
        return LMQ_OK; /* the server neither asks nor answers */
    bool answered = false;
    int rc =
        store_chaser_answered(b->store, jobs_chaser_bytes(q->link), jobs_chaser_bytes(q->recipient),
                              jobs_chaser_bytes(q->sender), &answered);
    if (rc != LMQ_OK || answered)
        return rc;
    uint64_t count = 0;
    int64_t last_ms = 0;
    rc = store_chaser_reminders(b->store, jobs_chaser_bytes(q->link), jobs_chaser_bytes(server),
                                JOBS_CHASER_REMINDER_TYPE, &count, &last_ms);
    if (rc != LMQ_OK)
        return rc;
    *due = count < b->cfg.jobs.chaser_max && (count == 0 || last_ms <= cutoff_ms);
    *n = count + 1;
    return LMQ_OK;
}

/* cursor: the next ledger index to read + 1 (0: the run has not begun); count: reminders sent. */
int jobs_chaser_step(struct jobs_step *st)
{
    struct broker *b = st->broker;
    const struct lmq_jobs_config *cfg = &b->cfg.jobs;
    LMQ_ASSERT(b != NULL && b->store != NULL && cfg->chaser_batch > 0);
    if (cfg->chaser_type[0] == '\0') {
        snprintf(st->detail, sizeof(st->detail), "[jobs] chaser.type is not set");
        return LMQ_EINVAL;
    }
    if (st->cursor == 0 && jobs_chaser_pending > 0) {
        st->delay_ms = JOBS_CHASER_WAIT_MS; /* the last run's reminders are not durable yet */
        return JOBS_STEP_MORE;
    }
    uint64_t start = st->cursor == 0 ? 0 : st->cursor - 1;
    int64_t cutoff_ms = clock_unix_ms(b) - (int64_t)(cfg->chaser_after_s * 1000);
    struct jobs_chaser_page p = {.cap = cfg->chaser_batch, .next = start};
    p.req = calloc(p.cap, sizeof(*p.req));
    if (p.req == NULL) {
        snprintf(st->detail, sizeof(st->detail), "out of memory");
        return LMQ_ENOMEM;
    }
    size_t read = 0;
    int rc =
        store_chaser_requests(b->store, cfg->chaser_type, start, p.cap, jobs_chaser_row, &p, &read);
    bool young = false;
    for (size_t i = 0; rc == LMQ_OK && i < p.count; i++) {
        const struct jobs_chaser_request *q = &p.req[i];
        if (q->created_unix_ms > cutoff_ms) {
            young = true; /* ledger order is append order: the rest are younger still */
            break;
        }
        bool due = false;
        uint64_t n = 0;
        rc = jobs_chaser_due(b, q, cutoff_ms, &due, &n);
        if (rc == LMQ_OK && due) {
            rc = jobs_chaser_remind(b, q, n);
            if (rc == LMQ_OK)
                st->count++;
        }
    }
    LMQ_ASSERT(p.next >= start);
    free(p.req);
    if (rc != LMQ_OK) {
        snprintf(st->detail, sizeof(st->detail),
                 "reading or reminding failed after %" PRIu64 ": %s", start,
                 rc == LMQ_EPROTO   ? "refused"
                 : rc == LMQ_ENOMEM ? "out of memory"
                                    : "read");
        return rc;
    }
    st->cursor = p.next + 1;
    snprintf(st->detail, sizeof(st->detail), "sent %" PRIu64 " reminders", st->count);
    return !young && read == cfg->chaser_batch ? JOBS_STEP_MORE : JOBS_STEP_DONE;
}
