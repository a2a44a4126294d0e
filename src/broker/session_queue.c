/*
 * A session's outbound side: the queue, paging from the store, the inflight
 * window and the QoS 1/2 flows towards the client.
 *
 * For a persistent session every QoS 1/2 delivery gets a sequence number and
 * a queue row in the store. Only a bounded window of them is in memory: when
 * the session is offline, or its in-memory queue is full, or older rows are
 * still in the store, a new delivery exists only as its row (the backlog) and
 * is paged in, in sequence order, as the client's window frees. Memory per
 * session is therefore bounded however large the backlog grows.
 */
#include "broker/broker_internal.h"

#include <stdio.h>
#include <string.h>

/* Rows read from the store per page. */
#define SESSION_PAGE_ROWS 256
/* In-memory queued deliveries of a persistent session beyond its inflight window. */
#define SESSION_MEMORY_QUEUE_MAX 512
/* Queued (not yet sent) deliveries of a connected, consuming session beyond which its
 * publishers wait for it (route.c): what a session keeps in memory; holding earlier costs the
 * durable path throughput (smaller group commits). */
#define SESSION_BEHIND_QUEUED SESSION_MEMORY_QUEUE_MAX
/* Pages read per pump: bounds the work one pump does before yielding. */
#define SESSION_PAGES_PER_PUMP 4

static void session_wait_commit(struct session *s);

/*
 * The counters partition the queue: queued_count = memory_queued (s->queue) + queued0_count
 * (s->queue0) + inflight_count (s->inflight) + stored_backlog (rows not in memory), and the same
 * for the bytes, of which only the QoS 0 and backlog parts are kept on their own. O(1): called
 * wherever they change; session_queue_verify walks the lists too.
 */
void session_queue_check(const struct session *s)
{
    LMQ_ASSERT(s->queued0_count <= s->queued_count);
    LMQ_ASSERT((uint64_t)s->memory_queued + s->queued0_count + s->inflight_count +
                   s->stored_backlog ==
               s->queued_count);
    LMQ_ASSERT(s->queued0_bytes + s->stored_backlog_bytes <= s->queued_bytes);
    LMQ_ASSERT(s->memory_queued > 0 || s->inflight_count > 0 ||
               s->queued0_bytes + s->stored_backlog_bytes == s->queued_bytes);
    LMQ_ASSERT(s->inflight_unsent <= s->inflight_count && s->inflight_count <= UINT16_MAX);
    /* (One way only: session_pump_list counts the delivery it is sending until it is in flight
     * or done, and a send that closes the connection takes the session offline meanwhile.) */
    LMQ_ASSERT(list_empty(&s->queue) || s->memory_queued > 0);
    LMQ_ASSERT(list_empty(&s->queue0) || s->queued0_count > 0);
    LMQ_ASSERT(list_empty(&s->inflight) == (s->inflight_count == 0));
    LMQ_ASSERT(list_empty(&s->unsynced) == (s->unsynced_count == 0));
    LMQ_ASSERT(s->paged_seq <= s->next_seq && s->dropped_seq <= s->next_seq);
}

/* Counts the deliveries on list and adds up their bytes; asserts each is in a state its list
 * allows (which: 0 queue, 1 queue0, 2 inflight, 3 unsynced). Bounded by limit entries. */
static uint32_t session_queue_walk(const struct list_node *list, int which, uint32_t limit,
                                   uint64_t *bytes, uint32_t *unsent)
{
    uint32_t count = 0;
    uint64_t last_seq = 0;
    for (const struct list_node *n = list->next; n != list; n = n->next) {
        LMQ_ASSERT(count < limit); /* a longer list than its counter says */
        const struct delivery *d = list_entry(n, struct delivery, link);
        LMQ_ASSERT(d->msg != NULL && d->msg->refcount > 0 && d->qos <= 2);
        LMQ_ASSERT((which == 1) == (d->qos == 0));
        if (which == 1)
            LMQ_ASSERT(d->seq == 0 && d->state == DELIVERY_QUEUED);
        if (which == 0 || which == 3)
            LMQ_ASSERT(d->state == DELIVERY_QUEUED && d->packet_id == 0);
        if (which == 2)
            LMQ_ASSERT(d->state != DELIVERY_QUEUED && d->packet_id != 0);
        if (which == 3)
            LMQ_ASSERT(d->seq > last_seq); /* unsynced rows are in seq order */
        if (d->seq != 0 && which != 2)
            last_seq = d->seq;
        if (which == 2 && d->send_after != 0)
            (*unsent)++;
        *bytes += d->msg->size_bytes;
        count++;
    }
    return count;
}

void session_queue_verify(const struct session *s)
{
    session_queue_check(s);
    uint64_t mem_bytes = 0, q0_bytes = 0, inflight_bytes = 0, unsynced_bytes = 0;
    uint32_t unsent = 0, none = 0;
    uint32_t limit = s->queued_count + 1;
    LMQ_ASSERT(session_queue_walk(&s->queue, 0, limit, &mem_bytes, &none) == s->memory_queued);
    LMQ_ASSERT(session_queue_walk(&s->queue0, 1, limit, &q0_bytes, &none) == s->queued0_count);
    LMQ_ASSERT(session_queue_walk(&s->inflight, 2, limit, &inflight_bytes, &unsent) ==
               s->inflight_count);
    LMQ_ASSERT(session_queue_walk(&s->unsynced, 3, s->unsynced_count + 1, &unsynced_bytes, &none) ==
               s->unsynced_count);
    LMQ_ASSERT(q0_bytes == s->queued0_bytes && unsent == s->inflight_unsent);
    LMQ_ASSERT(mem_bytes + q0_bytes + inflight_bytes + s->stored_backlog_bytes == s->queued_bytes);
}

/* An unsynced delivery (a backlog row whose commit was running) is no longer needed. */
static void session_unsynced_free(struct session *s, struct delivery *d)
{
    LMQ_ASSERT(s->unsynced_count > 0);
    list_unlink(&d->link);
    s->unsynced_count--;
    msg_unref(d->msg);
    free(d);
}

static void queue_record(struct session *s, enum store_record_type type, const struct delivery *d)
{
    LMQ_ASSERT(d->seq != 0 && d->seq <= s->next_seq);
    LMQ_ASSERT(d->qos > 0 && d->sub_id_count <= MQTT_SUB_IDS_MAX && (s->persistent || s->stored));
    struct lmq_bytes client_id = {s->client_id, s->client_id_len};
    struct store_record rec = {.type = type};
    uint8_t ids[MQTT_SUB_IDS_MAX * 4];
    switch (type) {
    case STORE_QUEUE_PUT:
        for (size_t i = 0; i < d->sub_id_count; i++) {
            for (size_t k = 0; k < 4; k++)
                ids[i * 4 + k] = (uint8_t)(d->sub_ids[i] >> (8 * k));
        }
        rec.u.queue_put = (struct store_rec_queue_put){
            .client_id = client_id,
            .sub_ids = {ids, (size_t)d->sub_id_count * 4},
            .seq = d->seq,
            .msg_id = d->msg->stored.id,
            .size_bytes = d->msg->size_bytes,
            .qos = d->qos,
            .retain = d->retain,
        };
        break;
    case STORE_QUEUE_UPDATE: {
        uint8_t state = STORE_QUEUE_QUEUED;
        if (d->state == DELIVERY_WAIT_PUBACK)
            state = STORE_QUEUE_WAIT_PUBACK;
        else if (d->state == DELIVERY_WAIT_PUBREC)
            state = STORE_QUEUE_WAIT_PUBREC;
        else if (d->state == DELIVERY_WAIT_PUBCOMP)
            state = STORE_QUEUE_WAIT_PUBCOMP;
        rec.u.queue_update = (struct store_rec_queue_update){
            .client_id = client_id, .seq = d->seq, .packet_id = d->packet_id, .state = state};
        break;
    }
    default:
        LMQ_ASSERT(type == STORE_QUEUE_DELETE);
        rec.u.queue_delete = (struct store_rec_queue_delete){.client_id = client_id,
                                                             .seq = d->seq,
                                                             .msg_id = d->msg->stored.id,
                                                             .size_bytes = d->msg->size_bytes};
        break;
    }
    commit_store_write(s->broker, &rec);
}

/* The delivery is finished (acknowledged, expired or undeliverable): forget it everywhere. */
static void delivery_done(struct session *s, struct delivery *d)
{
    LMQ_ASSERT(s->queued_count > 0);
    LMQ_ASSERT(s->queued_bytes >= d->msg->size_bytes);
    s->queued_count--;
    s->queued_bytes -= d->msg->size_bytes;
    s->broker->queue_room_freed = true; /* publishers held back by a full queue may retry */
    if (d->qos == 0) {                  /* on queue0: its own budget */
        LMQ_ASSERT(s->queued0_count > 0 && s->queued0_bytes >= d->msg->size_bytes);
        s->queued0_count--;
        s->queued0_bytes -= d->msg->size_bytes;
    }
    if (d->seq != 0)
        queue_record(s, STORE_QUEUE_DELETE, d);
    msg_unref(d->msg);
    free(d);
    if (s->queued_count == 0)
        s->overflow_logged = false; /* drained: the next overflow is news again */
    session_queue_check(s);
}

/*
 * QoS 0 has a budget of its own (max_queued_qos0) inside the session's queue limits, and gives
 * way to QoS 1/2: a QoS 1/2 delivery only needs room among the QoS 1/2 deliveries, and takes it
 * from queued QoS 0 when the whole queue is full. So a QoS 0 flood to a slow subscriber costs
 * it QoS 0 messages (which MQTT allows to be lost), never a refused QoS 1/2 publish.
 */
bool session_queue_has_room(const struct session *s, size_t msg_bytes)
{
    const struct lmq_limits *lim = &s->broker->cfg.limits;
    LMQ_ASSERT(s->queued_count >= s->queued0_count && s->queued_bytes >= s->queued0_bytes);
    uint32_t count = s->queued_count - s->queued0_count;
    uint64_t bytes = s->queued_bytes - s->queued0_bytes;
    return count < lim->max_queued_messages && bytes + msg_bytes <= lim->max_queued_bytes;
}

bool session_queue_behind(const struct session *s)
{
    return s->memory_queued >= SESSION_BEHIND_QUEUED || s->stored_backlog > 0;
}

/* The whole queue (QoS 0 included) has room for msg_bytes more. */
static bool session_queue_fits(const struct session *s, size_t msg_bytes)
{
    const struct lmq_limits *lim = &s->broker->cfg.limits;
    return s->queued_count < lim->max_queued_messages &&
           s->queued_bytes + msg_bytes <= lim->max_queued_bytes;
}

bool session_queue_has_room_qos0(const struct session *s, size_t msg_bytes)
{
    LMQ_ASSERT(s->queued0_count <= s->queued_count);
    return s->queued0_count < s->broker->cfg.limits.max_queued_qos0 &&
           session_queue_fits(s, msg_bytes);
}

void session_queue_qos0_dropped(struct session *s, const char *limit)
{
    struct broker *b = s->broker;
    const struct lmq_limits *lim = &b->cfg.limits;
    if (limit == NULL) /* no room: say which bound */
        limit = s->queued0_count >= lim->max_queued_qos0      ? "max_queued_qos0"
                : s->queued_count >= lim->max_queued_messages ? "max_queued_messages"
                                                              : "max_queued_bytes";
    if (strcmp(limit, "qos1_qos2_need_room") == 0)
        b->stats.qos0_gave_way++;
    else
        b->stats.qos0_dropped++;
    /* A flood drops thousands a second: one line a second says it is happening, and to whom;
     * /metrics has the counts. */
    uint64_t now = clock_now_ms(b);
    if (b->qos0_drop_logged_ms != 0 && now - b->qos0_drop_logged_ms < 1000)
        return;
    b->qos0_drop_logged_ms = now;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "qos0_dropped")) {
        lmq_log_strn(&line, "client_id", s->client_id, s->client_id_len);
        lmq_log_str(&line, "limit", limit);
        lmq_log_uint(&line, "queued_qos0", s->queued0_count);
        lmq_log_uint(&line, "queued", s->queued_count);
        lmq_log_end(&line);
    }
}

/* Drops queued QoS 0 deliveries, oldest first, until a QoS 1/2 delivery of msg_bytes fits. */
static void session_qos0_give_way(struct session *s, size_t msg_bytes)
{
    size_t guard = (size_t)s->queued0_count + 1;
    while (!session_queue_fits(s, msg_bytes) && !list_empty(&s->queue0) && guard-- > 0) {
        struct delivery *d = list_entry(s->queue0.next, struct delivery, link);
        LMQ_ASSERT(d->qos == 0 && d->seq == 0);
        list_unlink(&d->link);
        delivery_done(s, d);
        session_queue_qos0_dropped(s, "qos1_qos2_need_room");
    }
    /* Each pass drops one of the queued0_count: the guard never ends it early. */
    LMQ_ASSERT(session_queue_fits(s, msg_bytes) || list_empty(&s->queue0));
}

/* Counts n deliveries s lost to queue_overflow: in /metrics, and for the client's next PUBLISH. */
static void session_count_dropped(struct session *s, uint32_t n)
{
    s->broker->stats.overflow_dropped += n;
    s->dropped_untold = n > UINT32_MAX - s->dropped_untold ? UINT32_MAX : s->dropped_untold + n;
}

/*
 * The oldest row of the stored backlog: the committed one the store's reader finds, or an
 * unsynced one (its commit still running), whichever comes first. Both are in seq order, and a
 * row the reader sees may still be listed as unsynced (its completion not run yet): then it is
 * the same row. False when the backlog has no queued row (only rows in flight before a restart).
 */
static bool session_backlog_oldest(struct session *s, struct store_queue_head *out,
                                   struct delivery **listed)
{
    struct broker *b = s->broker;
    uint64_t cursor = LMQ_MAX(s->paged_seq, s->dropped_seq);
    struct store_queue_head row;
    bool found = false;
    if (store_queue_oldest(b->store, (struct lmq_bytes){s->client_id, s->client_id_len}, cursor,
                           &row, &found) != LMQ_OK)
        broker_fail_stop(b, "queue read", LMQ_EIO);
    *listed = NULL;
    size_t guard = (size_t)s->unsynced_count + 1;
    for (struct list_node *n = s->unsynced.next; n != &s->unsynced && guard-- > 0; n = n->next) {
        struct delivery *d = list_entry(n, struct delivery, link);
        if (d->seq > cursor) {
            *listed = d;
            break;
        }
    }
    if (found && (*listed == NULL || row.seq <= (*listed)->seq)) {
        if (*listed != NULL && (*listed)->seq != row.seq)
            *listed = NULL;
        *out = row;
        return true;
    }
    if (*listed == NULL)
        return false;
    *out = (struct store_queue_head){.seq = (*listed)->seq,
                                     .msg_id = (*listed)->msg->stored.id,
                                     .size_bytes = (*listed)->msg->size_bytes};
    return true;
}

/* Drops the oldest row of the stored backlog: its delete goes into the open batch, and it is
 * skipped if paged in before that commits (dropped_seq). False when there is none. */
static bool session_drop_backlog_row(struct session *s)
{
    LMQ_ASSERT(s->stored_backlog > 0 && list_empty(&s->queue));
    struct store_queue_head row;
    struct delivery *listed = NULL;
    if (!session_backlog_oldest(s, &row, &listed))
        return false;
    struct store_record rec = {
        .type = STORE_QUEUE_DELETE,
        .u.queue_delete = {.client_id = {s->client_id, s->client_id_len},
                           .seq = row.seq,
                           .msg_id = row.msg_id,
                           .size_bytes = row.size_bytes},
    };
    commit_store_write(s->broker, &rec);
    if (listed != NULL)
        session_unsynced_free(s, listed);
    /* The row is one of the counted backlog, with the size its QUEUE_PUT counted. */
    LMQ_ASSERT(row.seq > LMQ_MAX(s->paged_seq, s->dropped_seq) && row.seq <= s->next_seq);
    LMQ_ASSERT(s->stored_backlog_bytes >= row.size_bytes && s->queued_bytes >= row.size_bytes);
    s->dropped_seq = row.seq;
    s->stored_backlog--;
    s->stored_backlog_bytes -= row.size_bytes;
    LMQ_ASSERT(s->queued_count > 0);
    s->queued_count--;
    s->queued_bytes -= row.size_bytes;
    session_queue_check(s);
    return true;
}

uint32_t session_queue_expire_head(struct session *s, int64_t now_unix_ms, uint32_t max)
{
    LMQ_ASSERT(s != NULL && s->conn == NULL && !s->closing && s->persistent);
    uint32_t n = 0;
    /* Each pass drops one row or stops: bounded by max. */
    while (n < max && s->stored_backlog > 0 && list_empty(&s->queue)) {
        struct store_queue_head row;
        struct delivery *listed = NULL;
        if (!session_backlog_oldest(s, &row, &listed))
            break;
        uint32_t remaining_s = 0;
        bool expired = listed != NULL ? msg_expired(listed->msg, now_unix_ms, &remaining_s)
                                      : row.has_expiry && row.expires_unix_ms <= now_unix_ms;
        if (!expired)
            break; /* the head is not expired: the rest waits for its turn (documented) */
        bool dropped = session_drop_backlog_row(s);
        LMQ_ASSERT(dropped); /* the same oldest row as just read */
        s->broker->stats.expired_dropped++;
        s->broker->queue_room_freed = true;
        n++;
    }
    LMQ_ASSERT(n <= max);
    return n;
}

bool session_queue_drop_oldest(struct session *s, size_t msg_bytes)
{
    LMQ_ASSERT(s != NULL && !s->closing);
    uint32_t dropped = 0;
    /* Each pass drops one delivery or stops: bounded by what is queued. */
    size_t guard = (size_t)s->queued_count + 1;
    while (!session_queue_has_room(s, msg_bytes) && guard-- > 0) {
        if (!list_empty(&s->queue)) {
            /* In memory: older than every row of the backlog (paged in from its head). */
            struct delivery *d = list_entry(s->queue.next, struct delivery, link);
            LMQ_ASSERT(d->state == DELIVERY_QUEUED && d->qos > 0);
            list_unlink(&d->link);
            s->memory_queued--;
            delivery_done(s, d);
        } else if (s->stored_backlog == 0 || !session_drop_backlog_row(s)) {
            break; /* only deliveries in flight are left: never dropped */
        }
        dropped++;
    }
    bool room = session_queue_has_room(s, msg_bytes);
    /* Without room, every queued delivery in memory was dropped first (the guard counts them). */
    LMQ_ASSERT(room || s->memory_queued == 0);
    session_count_dropped(s, dropped + (room ? 0 : 1));
    session_queue_check(s);
    return room;
}

void session_queue_overflow_log(struct session *s, const char *action, const char *rule)
{
    if (s->overflow_logged)
        return;
    s->overflow_logged = true;
    const struct lmq_limits *lim = &s->broker->cfg.limits;
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_WARN, "queue_overflow")) {
        lmq_log_strn(&line, "client_id", s->client_id, s->client_id_len);
        lmq_log_str(&line, "owner", s->owner);
        lmq_log_str(&line, "policy", action);
        lmq_log_str(&line, "rule", rule);
        lmq_log_str(&line, "limit",
                    s->queued_count - s->queued0_count >= lim->max_queued_messages
                        ? "max_queued_messages"
                        : "max_queued_bytes");
        lmq_log_uint(&line, "queued", s->queued_count - s->queued0_count);
        lmq_log_bool(&line, "online", s->conn != NULL);
        lmq_log_end(&line);
    }
}

/* Test-only fault injection (session_queue_test_fail_alloc): the nth delivery allocation from
 * now on fails, once; 0 = off. The network thread is the only one that allocates deliveries. */
static uint32_t delivery_fail_nth;

void session_queue_test_fail_alloc(uint32_t nth)
{
    delivery_fail_nth = nth;
}

static struct delivery *delivery_new(struct msg *m, uint8_t qos, bool retain,
                                     const uint32_t *sub_ids, size_t sub_id_count)
{
    if (__builtin_expect(delivery_fail_nth > 0, 0) && --delivery_fail_nth == 0)
        return NULL;
    struct delivery *d = calloc(1, sizeof(*d) + sub_id_count * sizeof(uint32_t));
    if (d == NULL)
        return NULL;
    msg_ref(m);
    d->msg = m;
    d->qos = qos;
    d->retain = retain;
    d->sub_id_count = (uint8_t)sub_id_count;
    if (sub_id_count > 0)
        memcpy(d->sub_ids, sub_ids, sub_id_count * sizeof(uint32_t));
    return d;
}

void session_queue_add(struct session *s, struct msg *m, uint8_t qos, bool retain,
                       const uint32_t *sub_ids, size_t sub_id_count)
{
    LMQ_ASSERT(qos <= 2 && sub_id_count <= MQTT_SUB_IDS_MAX);
    /* A session with stored state keeps queueing durably until it ends, so order holds. */
    bool durable = s->persistent || s->stored;
    LMQ_ASSERT(s->conn != NULL || (durable && qos > 0));
    if (qos == 0 && !session_queue_has_room_qos0(s, m->size_bytes)) {
        session_queue_qos0_dropped(s, NULL);
        return;
    }
    if (qos > 0)
        session_qos0_give_way(s, m->size_bytes);
    bool stored = durable && qos > 0;
    bool backlog = stored && (s->conn == NULL || s->stored_backlog > 0 ||
                              s->memory_queued >= SESSION_MEMORY_QUEUE_MAX);
    struct delivery *d = delivery_new(m, qos, retain, sub_ids, sub_id_count);
    /* Out of memory for a QoS 1/2 delivery: its publisher is (or will be) told it was accepted,
     * so dropping it would lose an acknowledged message. Fail stop: a restart recovers what is
     * durable. A QoS 0 one may be lost: counted as dropped. */
    if (d == NULL && qos > 0)
        broker_fail_stop(s->broker, "delivery (out of memory)", LMQ_ENOMEM);
    if (d == NULL) {
        session_queue_qos0_dropped(s, "out_of_memory");
        return;
    }
    LMQ_ASSERT(s->queued_count < UINT32_MAX && (qos > 0 || s->queued0_count < UINT32_MAX));
    s->queued_count++;
    s->queued_bytes += m->size_bytes;
    if (qos == 0) {
        s->queued0_count++;
        s->queued0_bytes += m->size_bytes;
    }
    if (stored) {
        msg_persist(m);
        d->seq = ++s->next_seq;
        queue_record(s, STORE_QUEUE_PUT, d);
    }
    if (backlog) {
        /* Lives only in the store until it is paged in; kept (unsynced) until its row is
         * committed only so that queue_overflow can find the oldest rows meanwhile. */
        s->stored_backlog++;
        s->stored_backlog_bytes += m->size_bytes;
        d->send_after = commit_batch_seq(s->broker);
        list_push_back(&s->unsynced, &d->link);
        s->unsynced_count++;
        session_wait_commit(s);
        session_queue_check(s);
        return;
    }
    /* A stored one in memory: an older row still in the store would be overtaken, so none is
     * (QoS 0 is never stored: it does not wait behind the backlog). */
    LMQ_ASSERT(!stored || s->stored_backlog == 0);
    if (stored)
        s->paged_seq = d->seq;
    if (qos > 0)
        s->memory_queued++;
    list_push_back(qos == 0 ? &s->queue0 : &s->queue, &d->link);
    session_queue_check(s);
    if (s->conn != NULL)
        session_queue_pump(s);
}

static bool packet_id_in_use(const struct session *s, uint16_t id)
{
    for (const struct list_node *n = s->inflight.next; n != &s->inflight; n = n->next) {
        if (list_entry(n, struct delivery, link)->packet_id == id)
            return true;
    }
    return false;
}

static uint16_t session_next_packet_id(struct session *s)
{
    LMQ_ASSERT(s->inflight_count < 65535);
    for (uint32_t tries = 0; tries < 65536; tries++) {
        s->next_packet_id = (uint16_t)(s->next_packet_id + 1);
        if (s->next_packet_id == 0)
            s->next_packet_id = 1;
        if (!packet_id_in_use(s, s->next_packet_id))
            return s->next_packet_id;
    }
    LMQ_UNREACHABLE("no free packet id");
    return 0;
}

static void publish_props(const struct msg *m, const struct delivery *d, uint32_t remaining_s,
                          struct mqtt_props *p)
{
    if (m->stored.has_expiry) {
        p->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
        p->message_expiry_interval_s = remaining_s > 0 ? remaining_s : 1;
    }
    if (m->stored.has_payload_format) {
        p->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
        p->payload_format_indicator = m->stored.payload_format;
    }
    if (m->stored.content_type.data != NULL) {
        p->present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
        p->content_type = m->stored.content_type;
    }
    if (m->stored.response_topic.data != NULL) {
        p->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
        p->response_topic = m->stored.response_topic;
    }
    if (m->stored.correlation_data.data != NULL) {
        p->present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
        p->correlation_data = m->stored.correlation_data;
    }
    if (m->stored.user_props.len > 0) {
        p->present |= MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
        p->user_props = m->stored.user_props;
        p->user_prop_count = m->stored.user_prop_count;
    }
    for (size_t i = 0; i < d->sub_id_count; i++)
        p->subscription_ids[i] = d->sub_ids[i];
    p->subscription_id_count = d->sub_id_count;
    if (d->sub_id_count > 0)
        p->present |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
}

/*
 * Builds the PUBLISH for d into pkt and sets *size to its encoded size. Returns 0; LMQ_ETOOBIG when
 * the client's maximum packet size forbids it; LMQ_ENOTFOUND when it expired before its first
 * sending.
 */
static int session_build_publish(struct session *s, struct delivery *d, bool dup,
                                 struct mqtt_packet *pkt, size_t *size)
{
    const struct msg *m = d->msg;
    *pkt = (struct mqtt_packet){.type = MQTT_PUBLISH};
    struct mqtt_publish *p = &pkt->u.publish;
    p->dup = dup;
    p->qos = d->qos;
    p->retain = d->retain;
    p->topic = m->stored.topic;
    p->packet_id = d->packet_id;
    p->payload = m->stored.payload;
    uint32_t remaining_s = 0;
    if (m->stored.has_expiry && msg_expired(m, clock_unix_ms(s->broker), &remaining_s) && !dup)
        return LMQ_ENOTFOUND;
    publish_props(m, d, remaining_s, &p->props);
    if (mqtt_encoded_size(pkt, s->conn->version, size) != LMQ_OK || *size > s->conn->max_packet_out)
        return LMQ_ETOOBIG;
    return LMQ_OK;
}

static int session_send_publish(struct session *s, struct delivery *d, bool dup)
{
    struct mqtt_packet pkt;
    size_t size = 0;
    int rc = session_build_publish(s, d, dup, &pkt, &size);
    if (rc != LMQ_OK)
        return rc;
    broker_count_out(s->broker, d->qos);
    return conn_send_publish(s->conn, &pkt, size);
}

/* The user property that tells an MQTT 5 client how many messages queue_overflow dropped. */
#define SESSION_DROPPED_PROP "ledgermq-dropped"
#define SESSION_DROPPED_PROP_MAX_BYTES (1 + 2 + sizeof(SESSION_DROPPED_PROP) + 2 + 10)

/*
 * Sends a delivery's first PUBLISH (pkt, size_bytes as built). An MQTT 5 client that lost
 * messages to queue_overflow since it was last told gets the count with it, as the user
 * property ledgermq-dropped after the message's own, unless that would make the packet too
 * big for the client (then the next one carries it).
 */
static int session_send_first(struct session *s, struct mqtt_packet *pkt, size_t size_bytes)
{
    struct conn *c = s->conn;
    LMQ_ASSERT(c != NULL && pkt->type == MQTT_PUBLISH);
    if (s->dropped_untold == 0 || c->version != MQTT_V5)
        return conn_send_publish(c, pkt, size_bytes);
    struct mqtt_props *p = &pkt->u.publish.props;
    size_t cap = p->user_props.len + SESSION_DROPPED_PROP_MAX_BYTES;
    uint8_t *props = malloc(cap);
    size_t used = p->user_props.len;
    char count[16];
    int n = snprintf(count, sizeof(count), "%u", s->dropped_untold);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(count));
    struct mqtt_packet told = *pkt;
    size_t told_size = 0;
    bool fits = props != NULL;
    if (fits) {
        if (used > 0)
            memcpy(props, p->user_props.data, used);
        fits = mqtt_user_prop_append(props, cap, &used, SESSION_DROPPED_PROP, count) == LMQ_OK;
    }
    if (fits) {
        struct mqtt_props *tp = &told.u.publish.props;
        tp->user_props = (struct lmq_bytes){props, used};
        tp->user_prop_count++;
        tp->present |= MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
        fits = mqtt_encoded_size(&told, c->version, &told_size) == LMQ_OK &&
               told_size <= c->max_packet_out;
    }
    int rc;
    if (fits) {
        rc = conn_send_publish(c, &told, told_size);
        if (rc == LMQ_OK)
            s->dropped_untold = 0;
    } else {
        rc = conn_send_publish(c, pkt, size_bytes);
    }
    free(props);
    return rc;
}

static void session_send_pubrel(struct session *s, uint16_t packet_id)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBREL};
    pkt.u.ack.packet_id = packet_id;
    (void)conn_send(s->conn, &pkt);
}

static void session_wait_commit(struct session *s)
{
    if (!list_linked(&s->commit_wait))
        list_push_back(&s->broker->commit_waiters, &s->commit_wait);
}

/* d's next packet (first PUBLISH, or PUBREL) waits for the open batch to be durable. */
static void session_defer_send(struct session *s, struct delivery *d)
{
    LMQ_ASSERT(d->qos > 0 && d->state != DELIVERY_QUEUED);
    if (d->send_after == 0)
        s->inflight_unsent++;
    d->send_after = commit_batch_seq(s->broker);
    session_wait_commit(s);
}

/* Sends the deferred packets whose state is durable now. */
static void session_flush_unsent(struct session *s)
{
    LMQ_ASSERT(s->conn != NULL && s->inflight_unsent <= s->inflight_count);
    uint64_t committed = s->broker->committed_seq;
    size_t guard = s->inflight_count + 1;
    /* (A send that closes the connection takes the session offline: the rest wait for the
     * next connection, which resends them.) */
    for (struct list_node *n = s->inflight.next;
         n != &s->inflight && guard-- > 0 && s->inflight_unsent > 0 && s->conn != NULL;
         n = n->next) {
        struct delivery *d = list_entry(n, struct delivery, link);
        LMQ_ASSERT(d->qos > 0 && d->state != DELIVERY_QUEUED && d->packet_id != 0);
        if (d->send_after == 0)
            continue;
        if (d->send_after > committed) {
            session_wait_commit(s);
            continue;
        }
        d->send_after = 0;
        s->inflight_unsent--;
        if (d->state == DELIVERY_WAIT_PUBCOMP) {
            session_send_pubrel(s, d->packet_id);
        } else {
            broker_count_out(s->broker, d->qos);
            struct mqtt_packet pkt;
            size_t size = 0;
            if (session_build_publish(s, d, false, &pkt, &size) == LMQ_OK)
                (void)session_send_first(s, &pkt, size);
        }
    }
}

struct page_ctx {
    struct session *session;
    struct list_node loaded_inflight;
    bool failed;
};

static int session_page_row(void *arg, const struct store_queue_row *r)
{
    struct page_ctx *ctx = arg;
    struct session *s = ctx->session;
    LMQ_ASSERT(r->seq > s->paged_seq);
    if (r->state == STORE_QUEUE_QUEUED && r->seq <= s->dropped_seq) {
        /* Dropped by queue_overflow (uncounted then); its delete is not committed yet. */
        s->paged_seq = r->seq;
        return 0;
    }
    uint32_t ids[MQTT_SUB_IDS_MAX];
    size_t id_count = LMQ_MIN(r->sub_ids.len / 4, (size_t)MQTT_SUB_IDS_MAX);
    for (size_t i = 0; i < id_count; i++) {
        const uint8_t *p = r->sub_ids.data + i * 4;
        ids[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    struct msg *m = msg_from_store(s->broker, r->message);
    struct delivery *d = m ? delivery_new(m, r->qos, r->retain, ids, id_count) : NULL;
    msg_unref(m);
    if (d == NULL) {
        ctx->failed = true;
        return -1;
    }
    d->seq = r->seq;
    s->paged_seq = r->seq;
    /* A row of the counted backlog, of the size its QUEUE_PUT counted. */
    LMQ_ASSERT(s->stored_backlog > 0 && s->stored_backlog_bytes >= m->size_bytes);
    LMQ_ASSERT(r->seq <= s->next_seq);
    s->stored_backlog--;
    s->stored_backlog_bytes -= m->size_bytes;
    if (r->state == STORE_QUEUE_QUEUED) {
        list_push_back(&s->queue, &d->link);
        s->memory_queued++;
        return 0;
    }
    /* Sent before the restart: resume the flow with the packet id the client knows. */
    d->packet_id = r->packet_id;
    d->state = r->state == STORE_QUEUE_WAIT_PUBCOMP  ? DELIVERY_WAIT_PUBCOMP
               : r->state == STORE_QUEUE_WAIT_PUBREC ? DELIVERY_WAIT_PUBREC
                                                     : DELIVERY_WAIT_PUBACK;
    list_push_back(&ctx->loaded_inflight, &d->link);
    return 0;
}

/* Resends one inflight delivery after a reconnect: PUBLISH with DUP, or PUBREL. */
static void session_resend_one(struct session *s, struct delivery *d)
{
    if (d->state == DELIVERY_WAIT_PUBCOMP)
        session_send_pubrel(s, d->packet_id);
    else
        (void)session_send_publish(s, d, true);
}

/*
 * Reads the next page of the stored backlog into memory. Rows that were in
 * flight before a restart join the inflight window and, when send is set,
 * are re-sent at once. Returns the number of rows read.
 */
static size_t session_page_in(struct session *s, bool send)
{
    struct page_ctx ctx = {.session = s};
    list_init(&ctx.loaded_inflight);
    size_t count = 0;
    /* A page covers the whole inflight window, so every row in flight before a restart is
     * back in the window (and its packet id in use) before a new packet id is chosen. */
    size_t limit = LMQ_MAX((size_t)SESSION_PAGE_ROWS, (size_t)s->broker->cfg.limits.max_inflight);
    int rc = store_queue_page(s->broker->store, (struct lmq_bytes){s->client_id, s->client_id_len},
                              s->paged_seq, limit, session_page_row, &ctx, &count);
    if (rc != LMQ_OK)
        broker_fail_stop(s->broker, ctx.failed ? "page (out of memory)" : "page", rc);
    size_t guard = count + 1;
    while (!list_empty(&ctx.loaded_inflight) && guard-- > 0) {
        struct delivery *d = list_entry(ctx.loaded_inflight.next, struct delivery, link);
        list_unlink(&d->link);
        list_push_back(&s->inflight, &d->link);
        s->inflight_count++;
        if (send && s->conn != NULL && s->conn->state == CONN_CONNECTED)
            session_resend_one(s, d);
    }
    LMQ_ASSERT(list_empty(&ctx.loaded_inflight)); /* guard: at most count rows were loaded */
    session_queue_check(s);
    return count;
}

/*
 * Sends the head of list while it may go: returns false when the session must
 * stop pulling from this list for now (commit pending, output full, window full).
 */
static bool session_pump_list(struct session *s, struct list_node *list)
{
    struct conn *c = s->conn;
    size_t guard = s->queued_count + 1;
    while (!list_empty(list) && guard-- > 0 && s->conn != NULL) {
        if (!conn_output_has_room(c))
            return false; /* resumed when the socket drains */
        struct delivery *d = list_entry(list->next, struct delivery, link);
        if (!d->msg->committed) {
            session_wait_commit(s);
            return false;
        }
        if (d->qos > 0 && s->inflight_count >= c->send_quota_max)
            return false; /* resumed by an acknowledgement */
        LMQ_ASSERT(d->state == DELIVERY_QUEUED && d->packet_id == 0 && c->send_quota_max > 0);
        LMQ_ASSERT((d->qos == 0) == (list == &s->queue0));
        list_unlink(&d->link);
        /* Still counted (memory_queued, queued0_count) until in flight or done: a send that
         * closes the connection takes the session offline in between. */
        if (d->qos > 0) {
            d->packet_id = session_next_packet_id(s);
            d->state = d->qos == 1 ? DELIVERY_WAIT_PUBACK : DELIVERY_WAIT_PUBREC;
        }
        /*
         * A stored QoS 2 delivery goes out only once its packet id is durable:
         * after a crash the broker must resume it with that id, never send it
         * again as a new message the client could accept twice.
         */
        bool defer = d->qos > 0 && ((d->qos == 2 && d->seq != 0) || s->inflight_unsent > 0);
        /* (Anything behind a deferred packet waits too, so deliveries keep their order.) */
        struct mqtt_packet pkt;
        size_t size = 0;
        int rc = session_build_publish(s, d, false, &pkt, &size);
        if (rc == LMQ_OK && !defer) {
            broker_count_out(s->broker, d->qos);
            rc = session_send_first(s, &pkt, size);
        }
        if (s->closing) {
            /* The send closed the connection (out of memory) and that ended the session: its
             * deliveries are freed, and this one, on no list, goes with them. */
            msg_unref(d->msg);
            free(d);
            return false;
        }
        if (rc == LMQ_ETOOBIG || rc == LMQ_ENOTFOUND) {
            /* Too big for this client, or expired: the spec says discard; we count it. */
            if (rc == LMQ_ETOOBIG)
                s->broker->stats.oversize_dropped++;
            else
                s->broker->stats.expired_dropped++;
            if (d->qos > 0)
                s->memory_queued--;
            delivery_done(s, d);
            continue;
        }
        if (d->qos == 0) {
            delivery_done(s, d);
            continue;
        }
        if (d->seq != 0)
            queue_record(s, STORE_QUEUE_UPDATE, d); /* a restart resumes with this packet id */
        if (defer)
            session_defer_send(s, d);
        LMQ_ASSERT(s->memory_queued > 0);
        s->memory_queued--;
        list_push_back(&s->inflight, &d->link);
        s->inflight_count++;
        /* The window: only restored rows (sent before a restart or a reconnect with a smaller
         * Receive Maximum) may exceed it, never a new send. */
        LMQ_ASSERT(s->inflight_count <= c->send_quota_max);
        session_queue_check(s);
    }
    return true;
}

/*
 * The backlog says rows exist that a page did not return. Normally they are in
 * a commit still running: wait for it. With nothing left to commit, the count
 * is wrong: a bug in the queue accounting, so it says what it found and asserts
 * (correcting the count would hide the bug and whatever else it broke).
 */
static void session_backlog_missing(struct session *s)
{
    struct broker *b = s->broker;
    if (b->batch != NULL || store_pending(b->store) > 0) {
        session_wait_commit(s);
        return;
    }
    struct lmq_log_line line;
    if (lmq_log_begin(&line, LMQ_LOG_ERROR, "queue_backlog_mismatch")) {
        lmq_log_strn(&line, "client_id", s->client_id, s->client_id_len);
        lmq_log_uint(&line, "backlog", s->stored_backlog);
        lmq_log_uint(&line, "paged_seq", s->paged_seq);
        lmq_log_uint(&line, "dropped_seq", s->dropped_seq);
        lmq_log_uint(&line, "next_seq", s->next_seq);
        lmq_log_end(&line);
    }
    LMQ_UNREACHABLE("stored backlog counts rows the store does not hold");
}

/* Frees the unsynced deliveries the store's reader sees now (their commit is done) or that are
 * no longer backlog rows (paged in or dropped); waits for the next commit while any remain. */
static void session_unsynced_prune(struct session *s)
{
    uint64_t committed = s->broker->committed_seq;
    uint64_t cursor = LMQ_MAX(s->paged_seq, s->dropped_seq);
    size_t guard = (size_t)s->unsynced_count + 1;
    struct list_node *n = s->unsynced.next;
    while (n != &s->unsynced && guard-- > 0) {
        struct delivery *d = list_entry(n, struct delivery, link);
        n = n->next;
        LMQ_ASSERT(d->seq != 0 && d->send_after != 0 && d->state == DELIVERY_QUEUED);
        if (d->send_after <= committed || d->seq <= cursor)
            session_unsynced_free(s, d);
    }
    LMQ_ASSERT(s->unsynced_count == 0 || !list_empty(&s->unsynced));
    if (s->unsynced_count > 0)
        session_wait_commit(s);
}

/* Sends queued deliveries while the client's window and the socket's output allow. */
void session_queue_pump(struct session *s)
{
    if (s->unsynced_count > 0)
        session_unsynced_prune(s);
    struct conn *c = s->conn;
    if (c == NULL || c->state != CONN_CONNECTED || s->closing || s->hold_delivery)
        return;
    LMQ_ASSERT(c->session == s && c->send_quota_max > 0);
    retain_wake(s); /* retained deliveries still running continue (once there is room) */
    if (s->inflight_unsent > 0)
        session_flush_unsent(s);
    /* QoS 0 first: the inflight window holds back only QoS 1/2 [MQTT-4.9]. */
    (void)session_pump_list(s, &s->queue0);
    for (int page = 0; page <= SESSION_PAGES_PER_PUMP && s->conn != NULL; page++) {
        if (!session_pump_list(s, &s->queue))
            return;
        if (s->stored_backlog == 0)
            return;
        if (page == SESSION_PAGES_PER_PUMP) {
            session_wait_commit(s); /* yield: continue after the next commit */
            return;
        }
        if (session_page_in(s, true) == 0) {
            session_backlog_missing(s);
            return;
        }
    }
}

void session_queue_resend_inflight(struct session *s)
{
    LMQ_ASSERT(s->conn != NULL);
    size_t guard = s->inflight_count + 1;
    for (struct list_node *n = s->inflight.next; n != &s->inflight && guard-- > 0; n = n->next) {
        struct delivery *d = list_entry(n, struct delivery, link);
        if (d->send_after == 0) /* deferred ones go out first when their commit completes */
            session_resend_one(s, d);
    }
    if (list_empty(&s->queue) && s->stored_backlog > 0)
        (void)session_page_in(s, true);
}

static struct delivery *session_find_inflight(struct session *s, uint16_t packet_id)
{
    size_t guard = s->inflight_count + 1;
    for (struct list_node *n = s->inflight.next; n != &s->inflight && guard-- > 0; n = n->next) {
        struct delivery *d = list_entry(n, struct delivery, link);
        if (d->packet_id == packet_id)
            return d;
    }
    return NULL;
}

static void session_complete(struct session *s, struct delivery *d)
{
    LMQ_ASSERT(d->qos > 0 && d->state != DELIVERY_QUEUED && d->packet_id != 0);
    if (d->send_after != 0) {
        LMQ_ASSERT(s->inflight_unsent > 0);
        s->inflight_unsent--;
    }
    list_unlink(&d->link);
    LMQ_ASSERT(s->inflight_count > 0);
    s->inflight_count--;
    delivery_done(s, d);
}

int session_queue_ack(struct session *s, uint8_t type, uint16_t packet_id, uint8_t reason_code)
{
    struct delivery *d = session_find_inflight(s, packet_id);
    if (d == NULL)
        return LMQ_ENOTFOUND;
    LMQ_ASSERT(packet_id != 0 && d->qos > 0 && d->state != DELIVERY_QUEUED);
    LMQ_ASSERT(d->state != DELIVERY_WAIT_PUBREC || d->qos == 2);
    s->progress_ms = clock_now_ms(s->broker); /* it consumes (queue_overflow, route.c) */
    switch (type) {
    case MQTT_PUBACK:
        if (d->state != DELIVERY_WAIT_PUBACK)
            return LMQ_ENOTFOUND;
        session_complete(s, d);
        break;
    case MQTT_PUBREC:
        if (d->state == DELIVERY_WAIT_PUBACK)
            return LMQ_ENOTFOUND;
        if (reason_code >= 0x80) {
            session_complete(s, d); /* the receiver refused it: the flow ends here */
            break;
        }
        if (d->state != DELIVERY_WAIT_PUBCOMP) {
            d->state = DELIVERY_WAIT_PUBCOMP;
            if (d->seq != 0) {
                /* PUBREL only once "PUBREC received" is durable: never PUBLISH after PUBREL. */
                queue_record(s, STORE_QUEUE_UPDATE, d);
                session_defer_send(s, d);
                return LMQ_OK;
            }
        }
        if (d->send_after == 0)
            session_send_pubrel(s, packet_id);
        return LMQ_OK; /* the window slot stays taken until PUBCOMP */
    case MQTT_PUBCOMP:
        if (d->state != DELIVERY_WAIT_PUBCOMP)
            return LMQ_ENOTFOUND;
        session_complete(s, d);
        break;
    default:
        LMQ_UNREACHABLE("not an outbound flow acknowledgement");
    }
    session_queue_pump(s);
    return LMQ_OK;
}

void session_queue_offline(struct session *s)
{
    LMQ_ASSERT(s->conn == NULL && s->persistent && !s->closing);
    /* QoS 0 messages are not kept for an offline session. */
    size_t guard = s->queued_count + 1;
    while (!list_empty(&s->queue0) && guard-- > 0) {
        struct delivery *d = list_entry(s->queue0.next, struct delivery, link);
        list_unlink(&d->link);
        delivery_done(s, d);
    }
    /*
     * Queued (not yet sent) deliveries go back to the store: their rows are
     * there already, so memory is released and they are paged in again on
     * reconnect. The inflight window stays in memory (it is bounded).
     */
    bool first = true;
    guard = s->queued_count + 1;
    /* Rows possibly still in a commit stay findable by queue_overflow (unsynced), ahead of the
     * newer unsynced rows already there. */
    struct broker *b = s->broker;
    bool all_committed = b->committed_seq >= b->next_batch_seq;
    struct list_node *newer = s->unsynced.next;
    while (!list_empty(&s->queue) && guard-- > 0) {
        struct delivery *d = list_entry(s->queue.next, struct delivery, link);
        LMQ_ASSERT(d->seq != 0);
        if (first)
            s->paged_seq = d->seq - 1;
        first = false;
        list_unlink(&d->link);
        s->memory_queued--;
        s->stored_backlog++;
        s->stored_backlog_bytes += d->msg->size_bytes;
        if (all_committed) {
            msg_unref(d->msg);
            free(d);
            continue;
        }
        d->send_after = b->next_batch_seq;
        d->link.next = newer; /* insert before the newer ones */
        d->link.prev = newer->prev;
        newer->prev->next = &d->link;
        newer->prev = &d->link;
        s->unsynced_count++;
    }
    LMQ_ASSERT(list_empty(&s->queue) && list_empty(&s->queue0));
    if (s->unsynced_count > 0)
        session_wait_commit(s);
    session_queue_check(s);
#ifndef NDEBUG
    session_queue_verify(s); /* debug builds: once per disconnect, bounded by the window */
#endif
}

void session_queue_free_deliveries(struct session *s)
{
    LMQ_ASSERT(s->closing && s->conn == NULL);
    struct list_node *lists[] = {&s->queue, &s->queue0, &s->inflight, &s->unsynced};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(lists); i++) {
        while (!list_empty(lists[i])) {
            struct delivery *d = list_entry(lists[i]->next, struct delivery, link);
            list_unlink(&d->link);
            msg_unref(d->msg);
            free(d);
        }
    }
    if (s->queued_count > 0)
        s->broker->queue_room_freed = true;
    s->queued_count = 0;
    s->queued_bytes = 0;
    s->queued0_count = 0;
    s->queued0_bytes = 0;
    s->inflight_count = 0;
    s->inflight_unsent = 0;
    s->memory_queued = 0;
    s->stored_backlog = 0;
    s->stored_backlog_bytes = 0;
    s->unsynced_count = 0;
    session_queue_check(s);
}

/* Gives d the next queue position and writes its row (with its flow state and packet id). */
static void session_queue_store_one(struct session *s, struct delivery *d)
{
    LMQ_ASSERT(d->seq == 0 && d->qos > 0);
    msg_persist(d->msg);
    d->seq = ++s->next_seq;
    queue_record(s, STORE_QUEUE_PUT, d);
    s->paged_seq = d->seq;
}

void session_queue_store_all(struct session *s)
{
    LMQ_ASSERT(s != NULL && s->persistent && s->stored_backlog == 0);
    /* In flight first: they were taken from the head of the queue before the rest. */
    struct list_node *lists[] = {&s->inflight, &s->queue};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(lists); i++) {
        size_t guard = s->queued_count + 1;
        for (struct list_node *n = lists[i]->next; n != lists[i] && guard-- > 0; n = n->next) {
            struct delivery *d = list_entry(n, struct delivery, link);
            if (d->seq == 0)
                session_queue_store_one(s, d);
        }
    }
    LMQ_ASSERT(s->paged_seq == s->next_seq); /* every delivery in memory has its row */
    session_queue_check(s);
}
