/*
 * The $SYS/broker/... topics, the common subset of what mosquitto publishes and in its formats
 * (docs/PROTOCOL.md, "$SYS topics"), so dashboards and `mosquitto_sub -t '$SYS/#'` work
 * unchanged. Every [server] sys_interval seconds the values that changed are published as
 * retained QoS 0 messages: routed to the subscribers there are (the ACL's read rules apply, and a
 * filter starting with a wildcard never matches them [MQTT-4.7.2-1]) and kept in the retained
 * index for later subscribers, apart from the clients' retained messages (retain.c: not counted,
 * not limited, never written to the store; they are regenerated after a restart).
 */
#include "broker/broker_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* A value's payload: a decimal integer, "%.2f" or "N seconds". */
#define SYS_PAYLOAD_MAX_BYTES 64

/* Counters and gauges, published as decimal integers when they change (mosquitto's rule). */
enum sys_value {
    SYS_CLIENTS_TOTAL = 0,
    SYS_CLIENTS_MAXIMUM,
    SYS_CLIENTS_DISCONNECTED,
    SYS_CLIENTS_CONNECTED,
    SYS_MESSAGES_STORED,
    SYS_SUBSCRIPTIONS,
    SYS_RETAINED,
    SYS_MESSAGES_RECEIVED,
    SYS_MESSAGES_SENT,
    SYS_BYTES_RECEIVED,
    SYS_BYTES_SENT,
    SYS_PUBLISH_RECEIVED,
    SYS_PUBLISH_SENT,
    SYS_PUBLISH_DROPPED,
    SYS_SOCKETS,
    SYS_VALUE_COUNT,
};

/* Each value's topic and, where mosquitto publishes one, its second (older) name. */
static const char *const sys_value_topics[SYS_VALUE_COUNT][2] = {
    [SYS_CLIENTS_TOTAL] = {"$SYS/broker/clients/total", NULL},
    [SYS_CLIENTS_MAXIMUM] = {"$SYS/broker/clients/maximum", NULL},
    [SYS_CLIENTS_DISCONNECTED] = {"$SYS/broker/clients/disconnected",
                                  "$SYS/broker/clients/inactive"},
    [SYS_CLIENTS_CONNECTED] = {"$SYS/broker/clients/connected", "$SYS/broker/clients/active"},
    [SYS_MESSAGES_STORED] = {"$SYS/broker/messages/stored", "$SYS/broker/store/messages/count"},
    [SYS_SUBSCRIPTIONS] = {"$SYS/broker/subscriptions/count", NULL},
    [SYS_RETAINED] = {"$SYS/broker/retained messages/count", NULL},
    [SYS_MESSAGES_RECEIVED] = {"$SYS/broker/messages/received", NULL},
    [SYS_MESSAGES_SENT] = {"$SYS/broker/messages/sent", NULL},
    [SYS_BYTES_RECEIVED] = {"$SYS/broker/bytes/received", NULL},
    [SYS_BYTES_SENT] = {"$SYS/broker/bytes/sent", NULL},
    [SYS_PUBLISH_RECEIVED] = {"$SYS/broker/publish/messages/received", NULL},
    [SYS_PUBLISH_SENT] = {"$SYS/broker/publish/messages/sent", NULL},
    [SYS_PUBLISH_DROPPED] = {"$SYS/broker/publish/messages/dropped", NULL},
    [SYS_SOCKETS] = {"$SYS/broker/connections/socket/count", NULL},
};

/* Load averages: events per minute, smoothed over 1, 5 and 15 minutes. */
struct sys_load_def {
    const char *topic; /* without the "/1min" etc. */
    enum sys_value counter;
};
static const struct sys_load_def sys_loads[] = {
    {"$SYS/broker/load/messages/received", SYS_MESSAGES_RECEIVED},
    {"$SYS/broker/load/messages/sent", SYS_MESSAGES_SENT},
    {"$SYS/broker/load/publish/received", SYS_PUBLISH_RECEIVED},
    {"$SYS/broker/load/publish/sent", SYS_PUBLISH_SENT},
    {"$SYS/broker/load/publish/dropped", SYS_PUBLISH_DROPPED},
    {"$SYS/broker/load/bytes/received", SYS_BYTES_RECEIVED},
    {"$SYS/broker/load/bytes/sent", SYS_BYTES_SENT},
    {"$SYS/broker/load/sockets", SYS_SOCKETS},
};
#define SYS_LOAD_COUNT (sizeof(sys_loads) / sizeof(sys_loads[0]))
static const unsigned sys_load_minutes[3] = {1, 5, 15};

struct sys_tree {
    uv_timer_t timer;
    struct broker *broker;
    uint64_t start_ms; /* loop time at start: the uptime's origin */
    uint64_t last_ms;  /* loop time of the last update */
    bool first;        /* the first update publishes every value */
    uint64_t values[SYS_VALUE_COUNT];
    double loads[SYS_LOAD_COUNT][3];
};

bool sys_tree_topic(const uint8_t *topic, size_t len)
{
    LMQ_ASSERT(topic != NULL || len == 0);
    return len >= 4 && memcmp(topic, "$SYS", 4) == 0 && (len == 4 || topic[4] == '/');
}

/* Publishes payload on topic as the retained QoS 0 message of the broker. */
static void sys_publish(struct broker *b, const char *topic, const char *payload)
{
    LMQ_ASSERT(topic != NULL && payload != NULL && payload[0] != '\0');
    struct mqtt_publish pub = {
        .qos = 0,
        .retain = true,
        .topic = {(const uint8_t *)topic, strlen(topic)},
        .payload = {(const uint8_t *)payload, strlen(payload)},
    };
    struct msg *m = msg_create(b, &pub);
    if (m == NULL)
        return; /* out of memory: the next update tries again */
    LMQ_ASSERT(sys_tree_topic(m->stored.topic.data, m->stored.topic.len));
    /* QoS 0 goes to connected subscribers only and writes nothing to the store. */
    (void)route_publish(b, m, NULL);
    retain_system_set(b, m);
    msg_unref(m);
}

struct sys_sessions {
    uint64_t queued;
};

static bool sys_sum_session(void *ctx, const uint8_t *key, size_t key_len, void *value)
{
    struct sys_sessions *t = ctx;
    const struct session *s = value;
    LMQ_UNUSED(key);
    LMQ_UNUSED(key_len);
    t->queued += s->queued_count;
    return true;
}

/* The values as they are now (one walk over the sessions, like a /metrics scrape). */
static void sys_read(struct broker *b, const struct sys_tree *t, uint64_t v[SYS_VALUE_COUNT])
{
    const struct broker_stats *st = &b->stats;
    struct sys_sessions q = {0};
    lmq_map_visit(b->sessions, sys_sum_session, &q);
    uint64_t connected = b->connected_count;
    uint64_t total = LMQ_MAX((uint64_t)b->session_count, connected);
    v[SYS_CLIENTS_TOTAL] = total;
    v[SYS_CLIENTS_MAXIMUM] = LMQ_MAX(t->values[SYS_CLIENTS_MAXIMUM], total);
    v[SYS_CLIENTS_DISCONNECTED] = total - connected;
    v[SYS_CLIENTS_CONNECTED] = connected;
    v[SYS_MESSAGES_STORED] = q.queued + retain_count(b);
    v[SYS_SUBSCRIPTIONS] = sub_tree_count(b->subs);
    v[SYS_RETAINED] = retain_count(b);
    v[SYS_MESSAGES_RECEIVED] = st->packets_in;
    v[SYS_MESSAGES_SENT] = st->packets_out;
    v[SYS_BYTES_RECEIVED] = st->bytes_in;
    v[SYS_BYTES_SENT] = st->bytes_out;
    v[SYS_PUBLISH_RECEIVED] = st->messages_in;
    v[SYS_PUBLISH_SENT] = st->messages_out;
    v[SYS_PUBLISH_DROPPED] = st->qos0_dropped + st->overflow_dropped;
    v[SYS_SOCKETS] = st->connections_accepted;
}

/*
 * mosquitto's load: the events of the last interval as a rate per minute, r, smoothed
 * exponentially, load = r + e^(-dt/period) * (load - r); published ("%.2f") when it moved by
 * 0.01 or more (and on the first update).
 */
static void sys_update_loads(struct sys_tree *t, const uint64_t v[SYS_VALUE_COUNT], double dt_s)
{
    LMQ_ASSERT(dt_s > 0);
    char topic[80], payload[SYS_PAYLOAD_MAX_BYTES];
    for (size_t i = 0; i < SYS_LOAD_COUNT; i++) {
        uint64_t delta = v[sys_loads[i].counter] - t->values[sys_loads[i].counter];
        double rate = (double)delta * 60.0 / dt_s;
        for (size_t k = 0; k < 3; k++) {
            double e = exp(-dt_s / (60.0 * sys_load_minutes[k]));
            double next = rate + e * (t->loads[i][k] - rate);
            bool moved = fabs(next - t->loads[i][k]) >= 0.01;
            t->loads[i][k] = next;
            if (!moved && !t->first)
                continue;
            snprintf(topic, sizeof(topic), "%s/%umin", sys_loads[i].topic, sys_load_minutes[k]);
            snprintf(payload, sizeof(payload), "%.2f", next);
            sys_publish(t->broker, topic, payload);
        }
    }
}

static void sys_update(struct sys_tree *t)
{
    struct broker *b = t->broker;
    uint64_t now_ms = clock_now_ms(b);
    char payload[SYS_PAYLOAD_MAX_BYTES];
    snprintf(payload, sizeof(payload), "%" PRIu64 " seconds", (now_ms - t->start_ms) / 1000);
    sys_publish(b, "$SYS/broker/uptime", payload);
    uint64_t v[SYS_VALUE_COUNT];
    sys_read(b, t, v);
    /* The loads compare with the previous values, so they go before those are replaced. */
    double dt_s = (double)(now_ms - t->last_ms) / 1000.0;
    sys_update_loads(t, v, dt_s > 0 ? dt_s : 1e-3);
    for (size_t i = 0; i < SYS_VALUE_COUNT; i++) {
        if (v[i] == t->values[i] && !t->first)
            continue;
        t->values[i] = v[i];
        snprintf(payload, sizeof(payload), "%" PRIu64, v[i]);
        for (size_t k = 0; k < 2 && sys_value_topics[i][k] != NULL; k++)
            sys_publish(b, sys_value_topics[i][k], payload);
    }
    t->first = false;
    t->last_ms = now_ms;
}

static void sys_on_timer(uv_timer_t *h)
{
    struct sys_tree *t = h->data;
    LMQ_ASSERT(t != NULL && t->broker->sys == t);
    if (!t->broker->stopping)
        sys_update(t);
}

int sys_tree_start(struct broker *b)
{
    LMQ_ASSERT(b != NULL && b->sys == NULL);
    uint32_t interval_s = b->cfg.sys_interval_s;
    if (interval_s == 0)
        return LMQ_OK;
    struct sys_tree *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return LMQ_ENOMEM;
    t->broker = b;
    t->start_ms = t->last_ms = clock_now_ms(b);
    t->first = true;
    b->sys = t;
    char version[SYS_PAYLOAD_MAX_BYTES];
    snprintf(version, sizeof(version), "ledgermq version %s", LMQ_VERSION);
    sys_publish(b, "$SYS/broker/version", version);
    sys_update(t);
    uv_timer_init(&b->loop, &t->timer);
    t->timer.data = t;
    uint64_t interval_ms = (uint64_t)interval_s * 1000;
    uv_timer_start(&t->timer, sys_on_timer, interval_ms, interval_ms);
    return LMQ_OK;
}

void sys_tree_stop(struct broker *b)
{
    if (b->sys != NULL && !uv_is_closing((uv_handle_t *)&b->sys->timer))
        uv_close((uv_handle_t *)&b->sys->timer, NULL);
}

void sys_tree_free(struct broker *b)
{
    if (b->sys == NULL)
        return;
    LMQ_ASSERT(uv_is_closing((uv_handle_t *)&b->sys->timer)); /* closed with the loop */
    free(b->sys);
    b->sys = NULL;
}
