/*
 * Commit batches: everything the broker writes in one loop turn goes into one store commit,
 * and what depends on it being durable waits in that turn's batch: the messages (delivered
 * only once committed), the acknowledgements (PUBACK/PUBREC/PUBCOMP, SUBACK/UNSUBACK) and the
 * per-batch state of the commit hooks (the seam other modules plug into; see "The commit
 * seam" in docs/ARCHITECTURE.md).
 *
 * Once per loop turn (commit_turn_end): the hooks' before_commit, then one store_commit. When
 * it completes (in commit order, on the loop): messages marked committed, sessions waiting for
 * the commit pumped, acks sent, then the hooks' on_durable, then their batch_free.
 */
#include "broker/broker_internal.h"

#include <string.h>
#include <sys/statvfs.h>

/* Shortest interval between two checks of the data directory's free space. */
#define COMMIT_DISK_CHECK_MS 10

/* An acknowledgement waiting for the store commit that holds its data. */
struct pending_ack {
    struct conn *conn; /* holds a reference */
    uint8_t type;      /* MQTT_PUBACK, MQTT_PUBREC or MQTT_PUBCOMP */
    uint16_t packet_id;
    uint8_t reason_code;
    bool releases_quota; /* first PUBACK/PUBREC of a PUBLISH: frees a slot of the inbound window */
    const char *why;     /* Reason String (static text), NULL for the code's default */
    uint8_t *codes;      /* SUBACK/UNSUBACK reason codes (owned) */
    size_t code_count;
};

/* One open commit batch: the acks and messages that become final when it is durable. */
struct commit_batch {
    struct broker *broker;
    uint64_t seq; /* batches are numbered in commit order */
    bool closed;  /* the hooks' before_commit ran: it went to store_commit */
    struct pending_ack *acks;
    size_t ack_count, ack_cap;
    struct msg **msgs; /* referenced; marked committed on completion */
    size_t msg_count, msg_cap;
    void *hook_data[COMMIT_HOOKS_MAX]; /* per hook (by slot): its state for this batch, or NULL */
};

int commit_hook_register(struct broker *b, const struct commit_hook *hook, void *ctx, size_t *slot)
{
    LMQ_ASSERT(b != NULL && hook != NULL && hook->name != NULL && slot != NULL);
    /* At start only: every batch sees every hook, from the first batch on. */
    LMQ_ASSERT(b->batch == NULL && b->next_batch_seq == 0);
    if (b->commit_hook_count >= COMMIT_HOOKS_MAX) {
        lmq_log_msgf(LMQ_LOG_ERROR, "start_failed", "commit hook %s: more than %d commit hooks",
                     hook->name, COMMIT_HOOKS_MAX);
        return LMQ_ELIMIT;
    }
    *slot = b->commit_hook_count;
    b->commit_hooks[b->commit_hook_count++] = (struct commit_hook_entry){.hook = hook, .ctx = ctx};
    return LMQ_OK;
}

static struct commit_batch *commit_open(struct broker *b)
{
    if (b->batch == NULL) {
        b->batch = calloc(1, sizeof(*b->batch));
        if (b->batch != NULL) {
            b->batch->broker = b;
            b->batch->seq = ++b->next_batch_seq;
        }
    }
    return b->batch;
}

static struct commit_batch *commit_current_batch(struct broker *b)
{
    struct commit_batch *batch = commit_open(b);
    if (batch == NULL)
        broker_fail_stop(b, "batch", LMQ_ENOMEM);
    return batch;
}

uint64_t commit_batch_seq(struct broker *b)
{
    struct commit_batch *batch = commit_open(b);
    if (batch == NULL)
        broker_fail_stop(b, "batch", LMQ_ENOMEM);
    return batch->seq;
}

void **commit_hook_data(struct broker *b, size_t slot)
{
    LMQ_ASSERT(slot < b->commit_hook_count);
    struct commit_batch *batch = commit_current_batch(b);
    LMQ_ASSERT(!batch->closed); /* nothing joins a batch once it went to the store */
    return &batch->hook_data[slot];
}

void commit_store_write(struct broker *b, const struct store_record *rec)
{
    if (b->store == NULL)
        return; /* shutting down: sessions are dropped from memory, not from the store */
    int rc = store_write(b->store, rec);
    if (rc != LMQ_OK)
        broker_fail_stop(b, "write", rc);
    b->records_written++;
    if (commit_open(b) == NULL) /* every record written this turn is committed at its end */
        broker_fail_stop(b, "batch", LMQ_ENOMEM);
}

static int grow_array(void **arr, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return LMQ_OK;
    size_t new_cap = *cap == 0 ? 8 : *cap * 2;
    void *p = realloc(*arr, new_cap * elem);
    if (p == NULL)
        return LMQ_ENOMEM;
    *arr = p;
    *cap = new_cap;
    return LMQ_OK;
}

static void send_ack(struct conn *c, const struct pending_ack *ack);

int commit_ack(struct broker *b, struct conn *c, uint8_t type, uint16_t packet_id,
               uint8_t reason_code, bool releases_quota, bool needs_commit, const char *why)
{
    LMQ_ASSERT(c != NULL);
    LMQ_ASSERT(type == MQTT_PUBACK || type == MQTT_PUBREC || type == MQTT_PUBCOMP);
    struct pending_ack ack = {.conn = c,
                              .type = type,
                              .packet_id = packet_id,
                              .reason_code = reason_code,
                              .releases_quota = releases_quota,
                              .why = why};
    if (!needs_commit && c->acks_waiting == 0) {
        send_ack(c, &ack); /* nothing to make durable: no empty round trip to the store */
        return LMQ_OK;
    }
    struct commit_batch *batch = commit_open(b);
    if (batch == NULL || grow_array((void **)&batch->acks, &batch->ack_cap, batch->ack_count,
                                    sizeof(batch->acks[0])) != LMQ_OK)
        return LMQ_ENOMEM;
    conn_ref(c);
    c->acks_waiting++;
    batch->acks[batch->ack_count++] = ack;
    return LMQ_OK;
}

int commit_defer_msg(struct broker *b, struct msg *m)
{
    LMQ_ASSERT(m != NULL && !m->committed);
    struct commit_batch *batch = commit_open(b);
    if (batch == NULL || grow_array((void **)&batch->msgs, &batch->msg_cap, batch->msg_count,
                                    sizeof(batch->msgs[0])) != LMQ_OK)
        return LMQ_ENOMEM;
    msg_ref(m);
    m->batched = true;
    batch->msgs[batch->msg_count++] = m;
    return LMQ_OK;
}

int commit_defer_suback(struct broker *b, struct conn *c, uint8_t type, uint16_t packet_id,
                        const uint8_t *codes, size_t count)
{
    LMQ_ASSERT(type == MQTT_SUBACK || type == MQTT_UNSUBACK);
    struct commit_batch *batch = commit_open(b);
    uint8_t *copy = malloc(count > 0 ? count : 1);
    if (batch == NULL || copy == NULL ||
        grow_array((void **)&batch->acks, &batch->ack_cap, batch->ack_count,
                   sizeof(batch->acks[0])) != LMQ_OK) {
        free(copy);
        return LMQ_ENOMEM;
    }
    if (count > 0)
        memcpy(copy, codes, count);
    conn_ref(c);
    c->acks_waiting++;
    batch->acks[batch->ack_count++] = (struct pending_ack){
        .conn = c, .type = type, .packet_id = packet_id, .codes = copy, .code_count = count};
    return LMQ_OK;
}

static void send_suback(struct conn *c, const struct pending_ack *ack)
{
    struct session *s = c->session;
    if (c->state != CONN_CONNECTED || s == NULL)
        return;
    struct mqtt_packet pkt = {.type = ack->type};
    pkt.u.suback.packet_id = ack->packet_id;
    pkt.u.suback.reason_codes = (struct lmq_bytes){ack->codes, ack->code_count};
    (void)conn_send(c, &pkt);
    if (ack->type == MQTT_SUBACK) {
        LMQ_ASSERT(s->hold_delivery > 0);
        s->hold_delivery--; /* retained messages follow their SUBACK */
        session_queue_pump(s);
    }
}

static void send_ack(struct conn *c, const struct pending_ack *ack)
{
    if (ack->type == MQTT_SUBACK || ack->type == MQTT_UNSUBACK) {
        send_suback(c, ack);
        return;
    }
    struct mqtt_packet pkt = {.type = ack->type};
    pkt.u.ack.packet_id = ack->packet_id;
    pkt.u.ack.reason_code = ack->reason_code;
    if (ack->why != NULL) { /* conn_send drops it where the client does not want it */
        pkt.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        pkt.u.ack.props.reason_string =
            (struct lmq_bytes){(const uint8_t *)ack->why, strlen(ack->why)};
    }
    if (c->state != CONN_CONNECTED)
        return; /* the client will resend; the data is durable either way */
    if (ack->releases_quota) {
        uint16_t *pending = ack->type == MQTT_PUBACK ? &c->inbound_pending : &c->pubrec_pending;
        LMQ_ASSERT(ack->type != MQTT_PUBCOMP && *pending > 0);
        (*pending)--;
        conn_inbound_window_freed(c);
    }
    (void)conn_send(c, &pkt);
}

/* The batch is durable: release its messages to delivery, send its acks, then the hooks'
 * on_durable (only while the store is attached: not for the batches released at shutdown) and
 * batch_free, each in registration order. A failed commit never gets here (fail stop). */
static void commit_done(void *arg, int status)
{
    struct commit_batch *batch = arg;
    struct broker *b = batch->broker;
    if (status != LMQ_OK)
        broker_fail_stop(b, "commit", status);
    LMQ_ASSERT(batch->seq > b->committed_seq); /* completions run in commit order */
    LMQ_ASSERT(batch->closed || b->store == NULL);
    b->committed_seq = batch->seq;
    for (size_t i = 0; i < batch->msg_count; i++) {
        batch->msgs[i]->committed = true;
        msg_unref(batch->msgs[i]);
    }
    /* Wake the sessions whose queue head waited for this commit. */
    struct list_node waiters;
    list_init(&waiters);
    while (!list_empty(&b->commit_waiters)) {
        struct list_node *n = b->commit_waiters.next;
        list_unlink(n);
        list_push_back(&waiters, n);
    }
    while (!list_empty(&waiters)) {
        struct list_node *n = waiters.next;
        list_unlink(n);
        session_queue_pump(list_entry(n, struct session, commit_wait));
    }
    for (size_t i = 0; i < batch->ack_count; i++) {
        struct conn *c = batch->acks[i].conn;
        LMQ_ASSERT(c->acks_waiting > 0);
        c->acks_waiting--;
        send_ack(c, &batch->acks[i]);
        conn_unref(c);
        free(batch->acks[i].codes);
    }
    /* What the hooks held back for this batch is safe now (e.g. the ledger's checkpoint and
     * the acks with receipts). What they write goes into the next batch. */
    LMQ_ASSERT(b->commit_hook_count <= COMMIT_HOOKS_MAX);
    for (size_t i = 0; i < b->commit_hook_count && b->store != NULL; i++) {
        const struct commit_hook_entry *h = &b->commit_hooks[i];
        if (h->hook->on_durable != NULL)
            h->hook->on_durable(h->ctx, batch->seq, &batch->hook_data[i]);
    }
    for (size_t i = 0; i < b->commit_hook_count; i++) {
        const struct commit_hook_entry *h = &b->commit_hooks[i];
        if (h->hook->batch_free != NULL)
            h->hook->batch_free(h->ctx, batch->seq, &batch->hook_data[i]);
        LMQ_ASSERT(batch->hook_data[i] == NULL); /* batch_free released its state */
    }
    free(batch->acks);
    free(batch->msgs);
    free(batch);
}

void commit_check_disk(struct broker *b)
{
    struct statvfs vfs;
    if (statvfs(b->cfg.data_dir, &vfs) != 0)
        return;
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    bool low = free_bytes < b->cfg.limits.min_free_disk_bytes;
    if (low != b->disk_low) {
        struct lmq_log_line line;
        if (lmq_log_begin(&line, low ? LMQ_LOG_WARN : LMQ_LOG_INFO, low ? "disk_low" : "disk_ok")) {
            lmq_log_uint(&line, "free_bytes", free_bytes);
            lmq_log_uint(&line, "min_free_disk", b->cfg.limits.min_free_disk_bytes);
            lmq_log_end(&line);
        }
    }
    b->disk_low = low;
}

void commit_turn_end(struct broker *b)
{
    /* Sessions waiting for a commit get one even when nothing else is written. */
    if (b->batch == NULL && b->store != NULL && !list_empty(&b->commit_waiters) &&
        store_pending(b->store) == 0)
        (void)commit_open(b);
    if (b->batch != NULL && b->store == NULL) {
        /* Shutdown: no connection is left to acknowledge; just release the batch. */
        struct commit_batch *batch = b->batch;
        b->batch = NULL;
        commit_done(batch, LMQ_OK);
    }
    if (b->batch == NULL)
        return;
    /* Free space is checked as often as the disk is written, at most every 10 ms. */
    uint64_t now = clock_now_ms(b);
    if (now >= b->disk_checked_ms + COMMIT_DISK_CHECK_MS) {
        b->disk_checked_ms = now;
        commit_check_disk(b);
    }
    /* Every record of the turn is written: the hooks may add theirs to this batch (it is still
     * the open one, so what they write or defer joins it). */
    struct commit_batch *batch = b->batch;
    LMQ_ASSERT(!batch->closed);
    for (size_t i = 0; i < b->commit_hook_count; i++) {
        const struct commit_hook_entry *h = &b->commit_hooks[i];
        if (h->hook->before_commit != NULL)
            h->hook->before_commit(h->ctx, batch->seq, &batch->hook_data[i]);
    }
    LMQ_ASSERT(b->batch == batch); /* a hook may add to the batch, never end it */
    batch->closed = true;
    b->batch = NULL;
    int rc = store_commit(b->store, commit_done, batch);
    if (rc != LMQ_OK)
        broker_fail_stop(b, "commit", rc);
}
