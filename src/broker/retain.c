/*
 * Retained messages: a topic trie keyed by level, and cursors that deliver
 * what a new subscription matches a bounded slice at a time.
 *
 * - A node is one topic level. Its children are a list in creation order
 *   (for walks) and entries of one edge map, (parent id, level) -> child
 *   (for lookups). A node holds the retained message of the topic that ends
 *   at it, or none. Finding a topic costs its levels; a filter costs the
 *   nodes it can match: a literal level is one lookup, '+' and '#' walk the
 *   children they must.
 * - A SUBSCRIBE does not walk the trie: it leaves a cursor on the session
 *   (unless the filter's literal prefix does not exist at all, the common
 *   "nothing retained here" case, answered by a few lookups). Cursors run on
 *   the loop's idle turns, RETAIN_VISITS_PER_TURN nodes per turn across all
 *   sessions, and only while the session can take more: connected, its
 *   SUBACK sent, few deliveries waiting and room in its socket's output. A
 *   subscriber that does not read stops pulling retained messages; it is
 *   woken by session_queue_pump() when its output drains. So one SUBSCRIBE of
 *   "#" over 100,000 retained messages, or 1,000 filters at once, never
 *   holds the loop, and a non-reading subscriber pins at most its output.
 * - A cursor pins the node it stands on; pinned nodes are never freed
 *   (pruning waits for the last pin), so a cursor survives any change to the
 *   trie. Children are appended, so a walk sees each node at most once.
 *   Messages stored after the subscription (seq > seq_max) are skipped:
 *   they were routed to it live.
 * - Nothing under id/ is delivered as retained: no retained message may
 *   exist there (publishes are refused), and rows from older databases are
 *   ignored, so a stored forgery never reaches anyone.
 */
#include "broker/broker_internal.h"

#include <string.h>

/* Trie nodes all cursors together visit per loop turn. */
#define RETAIN_VISITS_PER_TURN 8192u
/* Nodes one session's cursors visit before the next session gets its turn. */
#define RETAIN_VISITS_PER_SLICE 1024u
/* Deliveries a session may have waiting (queued, not yet sent) before its cursors pause. */
#define RETAIN_PENDING_MAX 64u
/* Retained messages with an expiry looked at per expiry sweep. */
#define RETAIN_EXPIRE_SCAN_MAX 4096u
/* Charged per topic level against max_retained_bytes: the trie's node for that level. */
#define RETAIN_LEVEL_COST_BYTES 64u
/* Edge keys: the parent's id, then the level. */
#define RETAIN_EDGE_ID_BYTES 8u
#define RETAIN_EDGE_KEY_MAX_BYTES (RETAIN_EDGE_ID_BYTES + 65535u)
#define RETAIN_NO_MULTI UINT32_MAX

struct retain_node {
    struct retain_node *parent; /* NULL for the root */
    struct retain_node *first, *last;
    struct retain_node *prev, *next; /* siblings, in creation order */
    struct msg *msg;                 /* retained on the topic ending here, or NULL */
    uint64_t seq;                    /* retain_index.next_seq when msg was stored */
    uint64_t id;                     /* names this node in its children's edge keys */
    struct list_node expiring;       /* in retain_index.expiring while msg has an expiry */
    uint32_t depth;                  /* levels from the root */
    uint32_t pins;                   /* cursors standing here: not freed while > 0 */
    uint32_t level_len;
    uint8_t level[];
};

struct retain_index {
    struct broker *broker;
    struct retain_node *root;
    struct lmq_map *edges; /* parent id + level -> child */
    uint8_t *key;          /* scratch for edge keys, RETAIN_EDGE_KEY_MAX_BYTES */
    size_t count;          /* retained messages the clients published */
    /* The broker's own $SYS/ messages (sys_tree.c): counted apart, never against the
     * max_retained_* limits (they can't take a client's room), never stored. */
    size_t system_count;
    uint64_t system_bytes;
    size_t node_count;
    size_t cursor_count;
    uint64_t next_id;
    uint64_t next_seq;
    struct list_node expiring; /* nodes whose message can expire, oldest sweep first */
    size_t expiring_count;
    struct list_node run; /* sessions whose cursors may advance */
    uv_idle_t *idle;      /* broker->retain_idle: active while run is not empty */
};

enum retain_phase {
    RETAIN_VISIT = 0, /* deliver the node's message (if it matches) */
    RETAIN_DESCEND,   /* go to the first child the filter allows */
    RETAIN_NEXT,      /* subtree done: next sibling the filter allows, or climb */
};

enum retain_choice {
    RETAIN_CHOOSE_NONE = 0, /* the filter has no level here */
    RETAIN_CHOOSE_ONE,      /* a literal level: one lookup */
    RETAIN_CHOOSE_ALL,      /* '+' or under '#' */
};

/* A pending retained delivery: one subscription's walk over the trie. */
struct retain_cursor {
    struct list_node link; /* session->retain_cursors */
    struct retain_node *node;
    enum retain_phase phase;
    uint64_t seq_max;
    uint32_t sub_id;
    uint8_t qos;
    bool waiting;         /* the node's message did not fit the queue as it was: */
    uint32_t wait_count;  /* ... with this many messages */
    uint64_t wait_bytes;  /* ... of these bytes */
    uint32_t level_count; /* levels of the filter */
    uint32_t multi_depth; /* level index of '#', RETAIN_NO_MULTI without one */
    uint32_t lv_depth;    /* level index lv_pos points at (a cache for level_at) */
    size_t lv_pos;
    size_t filter_len;
    uint8_t filter[];
};

/* ---- the trie ---- */

static size_t retain_edge_key(struct retain_index *ri, const struct retain_node *parent,
                              const uint8_t *level, size_t len)
{
    LMQ_ASSERT(len <= RETAIN_EDGE_KEY_MAX_BYTES - RETAIN_EDGE_ID_BYTES);
    memcpy(ri->key, &parent->id, RETAIN_EDGE_ID_BYTES);
    if (len > 0)
        memcpy(ri->key + RETAIN_EDGE_ID_BYTES, level, len);
    return RETAIN_EDGE_ID_BYTES + len;
}

static struct retain_node *retain_child(struct retain_index *ri, const struct retain_node *parent,
                                        const uint8_t *level, size_t len)
{
    size_t key_len = retain_edge_key(ri, parent, level, len);
    return lmq_map_get(ri->edges, ri->key, key_len);
}

static struct retain_node *retain_node_new(struct retain_index *ri, struct retain_node *parent,
                                           const uint8_t *level, size_t len)
{
    struct retain_node *n = calloc(1, sizeof(*n) + len);
    if (n == NULL)
        return NULL;
    n->id = ++ri->next_id;
    if (parent == NULL)
        return n; /* the root: no edge */
    size_t key_len = retain_edge_key(ri, parent, level, len);
    if (lmq_map_put(ri->edges, ri->key, key_len, n) != LMQ_OK) {
        free(n);
        return NULL;
    }
    if (len > 0)
        memcpy(n->level, level, len);
    n->level_len = (uint32_t)len;
    n->parent = parent;
    n->depth = parent->depth + 1;
    n->prev = parent->last;
    if (parent->last != NULL)
        parent->last->next = n;
    else
        parent->first = n;
    parent->last = n;
    ri->node_count++;
    return n;
}

/* Frees n and its empty ancestors while nothing holds them (message, child or cursor). */
static void retain_prune(struct retain_index *ri, struct retain_node *n)
{
    while (n != NULL && n->parent != NULL && n->msg == NULL && n->first == NULL && n->pins == 0) {
        struct retain_node *parent = n->parent;
        size_t key_len = retain_edge_key(ri, parent, n->level, n->level_len);
        void *was = lmq_map_remove(ri->edges, ri->key, key_len);
        LMQ_ASSERT(was == n);
        if (n->prev != NULL)
            n->prev->next = n->next;
        else
            parent->first = n->next;
        if (n->next != NULL)
            n->next->prev = n->prev;
        else
            parent->last = n->prev;
        LMQ_ASSERT(ri->node_count > 0);
        ri->node_count--;
        free(n);
        n = parent;
    }
}

/* The node of topic; with create, made (with its missing ancestors) if absent. NULL when
 * absent, or out of memory while creating (nothing half-made is left). */
static struct retain_node *retain_find(struct retain_index *ri, const uint8_t *topic, size_t len,
                                       bool create)
{
    struct retain_node *n = ri->root;
    size_t pos = 0;
    for (;;) {
        const uint8_t *slash = memchr(topic + pos, '/', len - pos);
        size_t end = slash != NULL ? (size_t)(slash - topic) : len;
        struct retain_node *child = retain_child(ri, n, topic + pos, end - pos);
        if (child == NULL && create)
            child = retain_node_new(ri, n, topic + pos, end - pos);
        if (child == NULL) {
            if (create)
                retain_prune(ri, n);
            return NULL;
        }
        n = child;
        if (slash == NULL)
            return n;
        pos = end + 1;
    }
}

static uint64_t retain_cost_bytes(const struct msg *m)
{
    uint64_t levels = 1;
    for (size_t i = 0; i < m->stored.topic.len; i++)
        levels += m->stored.topic.data[i] == '/';
    return m->size_bytes + levels * RETAIN_LEVEL_COST_BYTES;
}

/* The count and byte total m is charged to: the clients' (limited) or the broker's ($SYS). */
static size_t *retain_counters(struct broker *b, const struct msg *m, uint64_t **bytes)
{
    struct retain_index *ri = b->retained;
    bool sys = sys_tree_topic(m->stored.topic.data, m->stored.topic.len);
    *bytes = sys ? &ri->system_bytes : &b->retained_bytes;
    return sys ? &ri->system_count : &ri->count;
}

/* Takes over the caller's reference to m as the retained message of its topic. */
static int retain_store(struct broker *b, struct msg *m)
{
    struct retain_index *ri = b->retained;
    struct retain_node *n = retain_find(ri, m->stored.topic.data, m->stored.topic.len, true);
    if (n == NULL)
        return LMQ_ENOMEM;
    struct msg *old = n->msg;
    LMQ_ASSERT(m->refcount > 0 && m != old);
    uint64_t *bytes;
    size_t *count = retain_counters(b, m, &bytes); /* the same topic: old's counters too */
    if (old != NULL) {
        uint64_t old_cost = retain_cost_bytes(old);
        LMQ_ASSERT(*count > 0 && *bytes >= old_cost);
        *bytes -= old_cost;
        if (list_linked(&n->expiring)) {
            LMQ_ASSERT(ri->expiring_count > 0);
            list_unlink(&n->expiring);
            ri->expiring_count--;
        }
        msg_unref(old);
    } else {
        (*count)++;
    }
    n->msg = m;
    n->seq = ++ri->next_seq;
    *bytes += retain_cost_bytes(m);
    if (m->stored.has_expiry) {
        list_push_back(&ri->expiring, &n->expiring);
        ri->expiring_count++;
    }
    return LMQ_OK;
}

static void retain_clear_node(struct broker *b, struct retain_node *n)
{
    struct retain_index *ri = b->retained;
    uint64_t *bytes;
    size_t *count = retain_counters(b, n->msg, &bytes);
    LMQ_ASSERT(n->msg != NULL && *count > 0);
    uint64_t cost = retain_cost_bytes(n->msg);
    LMQ_ASSERT(*bytes >= cost);
    *bytes -= cost;
    if (list_linked(&n->expiring)) {
        LMQ_ASSERT(ri->expiring_count > 0);
        list_unlink(&n->expiring);
        ri->expiring_count--;
    }
    msg_unref(n->msg);
    n->msg = NULL;
    (*count)--;
    retain_prune(ri, n);
}

/* ---- limits, updates, recovery ---- */

bool retain_fits(struct broker *b, const struct msg *m)
{
    LMQ_ASSERT(m != NULL);
    if (m->stored.payload.len == 0)
        return true;
    if (sys_tree_topic(m->stored.topic.data, m->stored.topic.len))
        return false; /* the broker's own (refused before this: protocol.c) */
    struct retain_node *n =
        retain_find(b->retained, m->stored.topic.data, m->stored.topic.len, false);
    const struct msg *old = n != NULL ? n->msg : NULL;
    const struct lmq_limits *lim = &b->cfg.limits;
    uint64_t bytes = b->retained_bytes - (old ? retain_cost_bytes(old) : 0) + retain_cost_bytes(m);
    if (old == NULL && b->retained->count >= lim->max_retained_messages)
        return false;
    return bytes <= lim->max_retained_bytes;
}

uint8_t retain_update(struct broker *b, struct msg *m)
{
    LMQ_ASSERT(m != NULL && m->stored.retain);
    if (m->stored.payload.len == 0) {
        struct retain_node *n =
            retain_find(b->retained, m->stored.topic.data, m->stored.topic.len, false);
        if (n != NULL && n->msg != NULL) {
            retain_clear_node(b, n);
            struct store_record rec = {.type = STORE_RETAINED_DELETE,
                                       .u.retained_delete.topic = m->stored.topic};
            commit_store_write(b, &rec);
        }
        return MQTT_RC_SUCCESS;
    }
    if (!retain_fits(b, m))
        return MQTT_RC_QUOTA_EXCEEDED;
    msg_persist(m);
    msg_ref(m);
    if (retain_store(b, m) != LMQ_OK) {
        msg_unref(m);
        return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
    }
    struct store_record rec = {
        .type = STORE_RETAINED_PUT,
        .u.retained_put = {.topic = m->stored.topic, .msg_id = m->stored.id}};
    commit_store_write(b, &rec);
    return MQTT_RC_SUCCESS;
}

void retain_system_set(struct broker *b, struct msg *m)
{
    LMQ_ASSERT(m != NULL && m->refcount > 0 && m->stored.retain && m->stored.qos == 0);
    LMQ_ASSERT(sys_tree_topic(m->stored.topic.data, m->stored.topic.len) &&
               m->stored.payload.len > 0 && !m->persisted);
    msg_ref(m);
    if (retain_store(b, m) != LMQ_OK)
        msg_unref(m); /* out of memory: the topic keeps its previous value */
}

int retain_restore(struct broker *b, struct msg *m)
{
    LMQ_ASSERT(m != NULL && m->refcount > 0);
    /* Recovery deleted rows under id/ (written before they were refused) before this. */
    LMQ_ASSERT(!pipeline_under_id(m->stored.topic.data, m->stored.topic.len));
    int rc = retain_store(b, m);
    if (rc != LMQ_OK)
        msg_unref(m);
    return rc;
}

size_t retain_count(const struct broker *b)
{
    return b->retained != NULL ? b->retained->count : 0;
}

size_t retain_cursor_count(const struct broker *b)
{
    return b->retained != NULL ? b->retained->cursor_count : 0;
}

void retain_expire(struct broker *b)
{
    struct retain_index *ri = b->retained;
    int64_t now_unix_ms = clock_unix_ms(b);
    /* Looked-at messages that live on go to the back: the next sweep sees the others. */
    size_t scan = LMQ_MIN((size_t)RETAIN_EXPIRE_SCAN_MAX, ri->expiring_count);
    for (size_t i = 0; i < scan && !list_empty(&ri->expiring); i++) {
        struct retain_node *n = list_entry(ri->expiring.next, struct retain_node, expiring);
        LMQ_ASSERT(n->msg != NULL && n->msg->stored.has_expiry);
        uint32_t remaining_s;
        if (!msg_expired(n->msg, now_unix_ms, &remaining_s)) {
            list_unlink(&n->expiring);
            list_push_back(&ri->expiring, &n->expiring);
            continue;
        }
        struct store_record rec = {.type = STORE_RETAINED_DELETE,
                                   .u.retained_delete.topic = n->msg->stored.topic};
        commit_store_write(b, &rec);
        retain_clear_node(b, n);
    }
}

/* ---- cursors ---- */

/* Level depth of the cursor's filter (depth < level_count). */
static void retain_level_at(struct retain_cursor *cur, uint32_t depth, const uint8_t **level,
                            size_t *len)
{
    LMQ_ASSERT(depth < cur->level_count);
    while (cur->lv_depth < depth) {
        const uint8_t *slash =
            memchr(cur->filter + cur->lv_pos, '/', cur->filter_len - cur->lv_pos);
        LMQ_ASSERT(slash != NULL);
        cur->lv_pos = (size_t)(slash - cur->filter) + 1;
        cur->lv_depth++;
    }
    while (cur->lv_depth > depth) {
        LMQ_ASSERT(cur->lv_pos > 0 && cur->filter[cur->lv_pos - 1] == '/');
        size_t p = cur->lv_pos - 1;
        while (p > 0 && cur->filter[p - 1] != '/')
            p--;
        cur->lv_pos = p;
        cur->lv_depth--;
    }
    const uint8_t *start = cur->filter + cur->lv_pos;
    const uint8_t *slash = memchr(start, '/', cur->filter_len - cur->lv_pos);
    *level = start;
    *len = slash != NULL ? (size_t)(slash - start) : cur->filter_len - cur->lv_pos;
}

/* Which children of a node at depth the filter allows. */
static enum retain_choice retain_choice(struct retain_cursor *cur, uint32_t depth,
                                        const uint8_t **level, size_t *len)
{
    if (cur->multi_depth != RETAIN_NO_MULTI && depth >= cur->multi_depth)
        return RETAIN_CHOOSE_ALL;
    if (depth >= cur->level_count)
        return RETAIN_CHOOSE_NONE;
    retain_level_at(cur, depth, level, len);
    return *len == 1 && (*level)[0] == '+' ? RETAIN_CHOOSE_ALL : RETAIN_CHOOSE_ONE;
}

/* A first-level wildcard never matches a topic starting with '$' [MQTT-4.7.2-1]. */
static bool retain_excluded(struct retain_cursor *cur, const struct retain_node *n)
{
    if (n->depth != 1 || n->level_len == 0 || n->level[0] != '$')
        return false;
    const uint8_t *level;
    size_t len;
    return retain_choice(cur, 0, &level, &len) == RETAIN_CHOOSE_ALL;
}

/* n was reached by the walk: every level above it fits the filter. Does its topic match? */
static bool retain_matches(const struct retain_cursor *cur, const struct retain_node *n)
{
    if (n->depth == 0)
        return false;
    if (cur->multi_depth != RETAIN_NO_MULTI)
        return n->depth >= cur->multi_depth; /* "a/#" matches "a" too */
    return n->depth == cur->level_count;
}

static void retain_cursor_move(struct retain_index *ri, struct retain_cursor *cur,
                               struct retain_node *to, enum retain_phase phase)
{
    LMQ_ASSERT(to != NULL);
    struct retain_node *from = cur->node;
    to->pins++;
    cur->node = to;
    cur->phase = phase;
    if (from != NULL) {
        LMQ_ASSERT(from->pins > 0);
        if (--from->pins == 0)
            retain_prune(ri, from);
    }
}

static void retain_cursor_free(struct session *s, struct retain_cursor *cur)
{
    struct retain_index *ri = s->broker->retained;
    list_unlink(&cur->link);
    if (cur->node != NULL) {
        LMQ_ASSERT(cur->node->pins > 0);
        if (--cur->node->pins == 0)
            retain_prune(ri, cur->node);
    }
    LMQ_ASSERT(ri->cursor_count > 0);
    ri->cursor_count--;
    free(cur);
}

enum retain_step {
    RETAIN_STEP_MORE = 0,
    RETAIN_STEP_DONE, /* the walk is over */
    RETAIN_STEP_WAIT, /* the session's queue is full: try this node again later */
};

/* Queues n's message for s if the filter wants it. */
static enum retain_step retain_visit(struct session *s, struct retain_cursor *cur,
                                     struct retain_node *n)
{
    struct broker *b = s->broker;
    struct msg *m = n->msg;
    uint32_t remaining_s;
    /* Under id/ not even to its owner: stricter than pipeline_may_receive(), which live
     * delivery applies, because nothing retained there can be genuine. */
    if (m == NULL || n->seq > cur->seq_max || !retain_matches(cur, n) ||
        pipeline_under_id(m->stored.topic.data, m->stored.topic.len) ||
        msg_expired(m, clock_unix_ms(b), &remaining_s) ||
        !access_may_deliver(s, m->stored.topic.data, m->stored.topic.len))
        return RETAIN_STEP_MORE;
    if (!session_queue_has_room(s, m->size_bytes)) {
        if (s->queued_count > 0) {
            cur->phase = RETAIN_VISIT; /* this node again */
            cur->waiting = true;       /* once the queue is smaller */
            cur->wait_count = s->queued_count;
            cur->wait_bytes = s->queued_bytes;
            return RETAIN_STEP_WAIT;
        }
        b->stats.refused_quota++; /* could never fit this session's queue */
        return RETAIN_STEP_MORE;
    }
    cur->waiting = false;
    uint8_t qos = LMQ_MIN(m->stored.qos, cur->qos);
    uint32_t sub_id = cur->sub_id;
    session_queue_add(s, m, qos, true, sub_id ? &sub_id : NULL, sub_id ? 1 : 0); /* last use */
    return RETAIN_STEP_MORE;
}

/* The next sibling of n (depth >= 1) the filter allows, or NULL. */
static struct retain_node *retain_next_sibling(struct retain_cursor *cur, struct retain_node *n)
{
    const uint8_t *level;
    size_t len;
    if (retain_choice(cur, n->depth - 1, &level, &len) != RETAIN_CHOOSE_ALL)
        return NULL; /* reached by a literal level: the only one */
    return n->next;
}

/* One move of the walk (pre-order over the nodes the filter allows). */
static enum retain_step retain_cursor_step(struct session *s, struct retain_cursor *cur)
{
    struct retain_index *ri = s->broker->retained;
    struct retain_node *n = cur->node;
    const uint8_t *level = NULL;
    size_t len = 0;
    switch (cur->phase) {
    case RETAIN_VISIT:
        /* Moved on first: queueing may end the session (its connection closed on a failed
         * write), and cur with it; nothing touches cur after retain_visit(). */
        cur->phase = RETAIN_DESCEND;
        return retain_excluded(cur, n) ? RETAIN_STEP_MORE : retain_visit(s, cur, n);
    case RETAIN_DESCEND: {
        struct retain_node *child = NULL;
        if (!retain_excluded(cur, n)) {
            enum retain_choice ch = retain_choice(cur, n->depth, &level, &len);
            if (ch == RETAIN_CHOOSE_ONE)
                child = retain_child(ri, n, level, len);
            else if (ch == RETAIN_CHOOSE_ALL)
                child = n->first;
        }
        if (child != NULL)
            retain_cursor_move(ri, cur, child, RETAIN_VISIT);
        else
            cur->phase = RETAIN_NEXT;
        return RETAIN_STEP_MORE;
    }
    case RETAIN_NEXT: {
        if (n->parent == NULL)
            return RETAIN_STEP_DONE;
        struct retain_node *sibling = retain_next_sibling(cur, n);
        if (sibling != NULL)
            retain_cursor_move(ri, cur, sibling, RETAIN_VISIT);
        else
            retain_cursor_move(ri, cur, n->parent, RETAIN_NEXT);
        return RETAIN_STEP_MORE;
    }
    }
    LMQ_UNREACHABLE("retain cursor phase");
    return RETAIN_STEP_DONE;
}

/* True when s can take more retained messages now (else it waits for session_queue_pump()). */
static bool retain_has_cursors(const struct session *s)
{
    return list_linked(&s->retain_cursors) && !list_empty(&s->retain_cursors);
}

static bool retain_session_ready(const struct session *s)
{
    const struct conn *c = s->conn;
    if (c == NULL || c->state != CONN_CONNECTED || s->closing || s->hold_delivery > 0 ||
        !retain_has_cursors(s))
        return false;
    LMQ_ASSERT(s->queued_count >= s->inflight_count);
    if (s->queued_count - s->inflight_count >= RETAIN_PENDING_MAX || !conn_output_has_room(c))
        return false;
    const struct retain_cursor *head =
        list_entry(s->retain_cursors.next, struct retain_cursor, link);
    /* A message that did not fit is tried again only once something left the queue. */
    return !head->waiting || s->queued_count < head->wait_count ||
           s->queued_bytes < head->wait_bytes;
}

/* Advances s's cursors by at most budget visits; returns the visits made. */
static size_t retain_session_run(struct session *s, size_t budget)
{
    size_t used = 0;
    while (used < budget && retain_session_ready(s)) {
        struct retain_cursor *cur = list_entry(s->retain_cursors.next, struct retain_cursor, link);
        enum retain_step st = retain_cursor_step(s, cur);
        used++;
        if (st == RETAIN_STEP_DONE)
            retain_cursor_free(s, cur);
        else if (st == RETAIN_STEP_WAIT)
            break;
    }
    return used;
}

static void retain_on_idle(uv_idle_t *h)
{
    struct retain_index *ri = h->data;
    size_t budget = RETAIN_VISITS_PER_TURN;
    /* Each session gets a slice in turn; one that can't take more leaves the run list until
     * session_queue_pump() wakes it (its output drained, an ack came, its SUBACK went out). */
    while (!list_empty(&ri->run) && budget > 0) {
        struct session *s = list_entry(ri->run.next, struct session, retain_link);
        list_unlink(&s->retain_link);
        if (!retain_session_ready(s))
            continue;
        size_t used = retain_session_run(s, LMQ_MIN(budget, (size_t)RETAIN_VISITS_PER_SLICE));
        LMQ_ASSERT(used <= budget);
        budget -= used;
        /* (session_queue_add() sent what it queued.) Waiting or not, it goes round again: one
         * that can't take more is dropped from the list at its next turn. */
        retain_wake(s);
    }
    if (list_empty(&ri->run))
        uv_idle_stop(ri->idle);
}

void retain_wake(struct session *s)
{
    LMQ_ASSERT(s != NULL);
    struct retain_index *ri = s->broker->retained;
    if (!retain_has_cursors(s) || list_linked(&s->retain_link) || s->closing)
        return;
    list_push_back(&ri->run, &s->retain_link);
    if (!uv_is_active((uv_handle_t *)ri->idle))
        uv_idle_start(ri->idle, retain_on_idle);
}

static bool retain_same_filter(const struct retain_cursor *cur, const uint8_t *filter, size_t len)
{
    return cur->filter_len == len && memcmp(cur->filter, filter, len) == 0;
}

void retain_cancel(struct session *s, const uint8_t *filter, size_t len)
{
    LMQ_ASSERT(s != NULL && filter != NULL);
    if (!list_linked(&s->retain_cursors))
        return;
    size_t guard = s->broker->retained->cursor_count + 1;
    struct list_node *n = s->retain_cursors.next;
    while (n != &s->retain_cursors && guard-- > 0) {
        struct retain_cursor *cur = list_entry(n, struct retain_cursor, link);
        n = n->next;
        if (retain_same_filter(cur, filter, len))
            retain_cursor_free(s, cur);
    }
}

/* The deepest node the filter's leading literal levels name, or NULL when one is missing. */
static struct retain_node *retain_prefix(struct retain_index *ri, const uint8_t *filter, size_t len)
{
    struct retain_node *n = ri->root;
    size_t pos = 0;
    for (;;) {
        const uint8_t *slash = memchr(filter + pos, '/', len - pos);
        size_t end = slash != NULL ? (size_t)(slash - filter) : len;
        if ((end - pos == 1) && (filter[pos] == '+' || filter[pos] == '#'))
            return n;
        n = retain_child(ri, n, filter + pos, end - pos);
        if (n == NULL || slash == NULL)
            return n;
        pos = end + 1;
    }
}

void retain_deliver(struct broker *b, struct session *s, const uint8_t *filter, size_t len,
                    uint8_t qos, uint32_t sub_id)
{
    LMQ_ASSERT(s != NULL && filter != NULL && len > 0);
    struct retain_index *ri = b->retained;
    retain_cancel(s, filter, len); /* subscribed again: one walk, from the start */
    struct retain_node *start = retain_prefix(ri, filter, len);
    if (start == NULL)
        return; /* nothing retained under the filter's literal prefix */
    struct retain_cursor *cur = calloc(1, sizeof(*cur) + len);
    if (cur == NULL) {
        conn_log(s->conn, LMQ_LOG_WARN, "retained_not_sent", "out of memory");
        return;
    }
    memcpy(cur->filter, filter, len);
    cur->filter_len = len;
    cur->qos = qos;
    cur->sub_id = sub_id;
    cur->seq_max = ri->next_seq;
    cur->level_count = 1;
    cur->multi_depth = RETAIN_NO_MULTI;
    for (size_t i = 0; i < len; i++)
        cur->level_count += filter[i] == '/';
    if (filter[len - 1] == '#')
        cur->multi_depth = cur->level_count - 1; /* a valid filter has '#' last only */
    retain_cursor_move(ri, cur, start, RETAIN_VISIT);
    if (!list_linked(&s->retain_cursors))
        list_init(&s->retain_cursors);
    list_push_back(&s->retain_cursors, &cur->link);
    ri->cursor_count++;
    retain_wake(s); /* runs once the SUBACK is out */
}

void retain_session_end(struct session *s)
{
    LMQ_ASSERT(s != NULL);
    if (list_linked(&s->retain_link))
        list_unlink(&s->retain_link);
    if (!list_linked(&s->retain_cursors))
        return;
    size_t guard = s->broker->retained->cursor_count + 1;
    while (!list_empty(&s->retain_cursors) && guard-- > 0)
        retain_cursor_free(s, list_entry(s->retain_cursors.next, struct retain_cursor, link));
    LMQ_ASSERT(list_empty(&s->retain_cursors));
}

/* ---- lifetime ---- */

int retain_init(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->retained == NULL);
    struct retain_index *ri = calloc(1, sizeof(*ri));
    if (ri == NULL)
        return LMQ_ENOMEM;
    ri->broker = b;
    list_init(&ri->expiring);
    list_init(&ri->run);
    ri->key = malloc(RETAIN_EDGE_KEY_MAX_BYTES);
    if (ri->key == NULL || lmq_map_create(&ri->edges) != LMQ_OK)
        goto fail;
    ri->root = retain_node_new(ri, NULL, NULL, 0);
    if (ri->root == NULL)
        goto fail;
    ri->idle = &b->retain_idle;
    uv_idle_init(&b->loop, ri->idle);
    ri->idle->data = ri;
    b->retained = ri;
    return LMQ_OK;
fail:
    lmq_map_destroy(ri->edges);
    free(ri->key);
    free(ri);
    return LMQ_ENOMEM;
}

void retain_destroy_all(struct broker *b)
{
    struct retain_index *ri = b->retained;
    if (ri == NULL)
        return;
    LMQ_ASSERT(ri->cursor_count == 0); /* sessions (and their cursors) go first */
    uv_idle_stop(ri->idle);
    /* Post-order without recursion: free a leaf, then look at its parent again. */
    struct retain_node *n = ri->root;
    size_t guard = 2 * ri->node_count + 2; /* one step down and one free per node */
    while (n != NULL && guard-- > 0) {
        if (n->first != NULL) {
            n = n->first;
            continue;
        }
        struct retain_node *parent = n->parent;
        if (parent != NULL) {
            parent->first = n->next;
            if (n->next == NULL)
                parent->last = NULL;
        }
        msg_unref(n->msg);
        free(n);
        n = parent;
    }
    lmq_map_destroy(ri->edges);
    free(ri->key);
    free(ri);
    b->retained = NULL;
}
