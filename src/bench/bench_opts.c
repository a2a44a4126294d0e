/*
 * Command line of `ledgermq bench`: long flags ("--name value" or
 * "--name=value"), every value checked, one-line errors
 * ("ledgermq: bench: ...") and exit code 1. Defaults depend on the
 * scenario, so they are applied after parsing for what was not given.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench_internal.h"
#include "cli/usage.h"
#include "core/lmq.h"

enum bench_flag_id {
    FLAG_HOST,
    FLAG_PORT,
    FLAG_SCENARIO,
    FLAG_PUBLISHERS,
    FLAG_SUBSCRIBERS,
    FLAG_QOS,
    FLAG_PAYLOAD,
    FLAG_VERSION,
    FLAG_DURATION,
    FLAG_WARMUP,
    FLAG_RATE,
    FLAG_INFLIGHT,
    FLAG_MESSAGES,
    FLAG_PID,
    FLAG_CLEAN_START,
    FLAG_SESSION_EXPIRY,
    FLAG_TOPIC_LENGTH,
    FLAG_TOPIC_ALIAS_MAX,
    FLAG_JSON,
    FLAG_HELP,
    FLAG_COUNT,
};

struct bench_flag {
    const char *name;
    enum bench_flag_id id;
    bool takes_value;
};

static const struct bench_flag bench__flags[] = {
    {"host", FLAG_HOST, true},
    {"port", FLAG_PORT, true},
    {"scenario", FLAG_SCENARIO, true},
    {"publishers", FLAG_PUBLISHERS, true},
    {"subscribers", FLAG_SUBSCRIBERS, true},
    {"qos", FLAG_QOS, true},
    {"payload", FLAG_PAYLOAD, true},
    {"mqtt-version", FLAG_VERSION, true},
    {"duration", FLAG_DURATION, true},
    {"warmup", FLAG_WARMUP, true},
    {"rate", FLAG_RATE, true},
    {"inflight", FLAG_INFLIGHT, true},
    {"messages", FLAG_MESSAGES, true},
    {"pid", FLAG_PID, true},
    {"clean-start", FLAG_CLEAN_START, true},
    {"session-expiry", FLAG_SESSION_EXPIRY, true},
    {"topic-length", FLAG_TOPIC_LENGTH, true},
    {"topic-alias-max", FLAG_TOPIC_ALIAS_MAX, true},
    {"json", FLAG_JSON, false},
    {"help", FLAG_HELP, false},
};

static const char *const bench__scenario_names[] = {"fan-in", "fan-out", "pairs", "fill"};

const char *bench_opts_scenario_name(enum bench_scenario s)
{
    LMQ_ASSERT((size_t)s < LMQ_ARRAY_LEN(bench__scenario_names));
    return bench__scenario_names[s];
}

void bench_opts_usage(FILE *f)
{
    cli_usage_print(f, "bench"); /* the text is in the table of src/cli/usage.c */
}

__attribute__((format(printf, 1, 2))) static int bench__usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = lmq_verrf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "ledgermq: bench: %s\n", n < 0 ? "error" : msg);
    return BENCH_EXIT_USAGE;
}

/* Unsigned decimal, whole string, within [min, max]. */
static bool bench__parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    LMQ_ASSERT(s != NULL && out != NULL);
    if (s[0] < '0' || s[0] > '9') {
        return false; /* no sign, no spaces */
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* Seconds: a finite decimal in [min, BENCH_SECONDS_MAX]. */
static bool bench__parse_seconds(const char *s, double min, double *out)
{
    if ((s[0] < '0' || s[0] > '9') && s[0] != '.') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min ||
        v > BENCH_SECONDS_MAX) {
        return false;
    }
    *out = v;
    return true;
}

static int bench__parse_scenario(const char *v, struct bench_opts *o)
{
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bench__scenario_names); i++) {
        if (strcmp(v, bench__scenario_names[i]) == 0) {
            o->scenario = (enum bench_scenario)i;
            return 0;
        }
    }
    return bench__usage_error("--scenario must be fan-in, fan-out, pairs or fill, got \"%s\"", v);
}

static int bench__parse_pid(const char *v, struct bench_opts *o)
{
    uint64_t pid = 0;
    char path[64];
    struct stat st;
    if (!bench__parse_u64(v, 1, INT32_MAX, &pid)) {
        return bench__usage_error("--pid must be a process id, got \"%s\"", v);
    }
    snprintf(path, sizeof(path), "/proc/%llu/status", (unsigned long long)pid);
    if (stat(path, &st) != 0) {
        return bench__usage_error("--pid %s: no such process (%s)", v, strerror(errno));
    }
    o->pid = (int)pid;
    return 0;
}

/* Applies one numeric flag; 0 or the usage error. */
static int bench__apply_number(struct bench_opts *o, const struct bench_flag *f, const char *v)
{
    uint64_t n = 0;
    switch (f->id) {
    case FLAG_PORT:
        if (!bench__parse_u64(v, 1, UINT16_MAX, &n)) {
            return bench__usage_error("--port must be 1..65535, got \"%s\"", v);
        }
        o->port = (uint16_t)n;
        return 0;
    case FLAG_PUBLISHERS:
    case FLAG_SUBSCRIBERS:
        if (!bench__parse_u64(v, 1, BENCH_CONNS_MAX, &n)) {
            return bench__usage_error("--%s must be 1..%u, got \"%s\"", f->name, BENCH_CONNS_MAX,
                                      v);
        }
        *(f->id == FLAG_PUBLISHERS ? &o->publishers : &o->subscribers) = (uint32_t)n;
        return 0;
    case FLAG_QOS:
        if (!bench__parse_u64(v, 0, 2, &n)) {
            return bench__usage_error("--qos must be 0, 1 or 2, got \"%s\"", v);
        }
        o->qos = (uint8_t)n;
        return 0;
    case FLAG_PAYLOAD:
        if (!bench__parse_u64(v, BENCH_PAYLOAD_MIN_BYTES, BENCH_PAYLOAD_MAX_BYTES, &n)) {
            return bench__usage_error("--payload must be %u..%u bytes, got \"%s\"",
                                      BENCH_PAYLOAD_MIN_BYTES, BENCH_PAYLOAD_MAX_BYTES, v);
        }
        o->payload_bytes = (uint32_t)n;
        return 0;
    case FLAG_VERSION:
        if (!bench__parse_u64(v, MQTT_V311, MQTT_V5, &n)) {
            return bench__usage_error("--mqtt-version must be 4 or 5, got \"%s\"", v);
        }
        o->version = (uint8_t)n;
        return 0;
    default:
        break;
    }
    LMQ_UNREACHABLE("flag without a number handler");
}

/* Applies flags whose value is a count, a rate or seconds; 0 or the usage error. */
static int bench__apply_amount(struct bench_opts *o, const struct bench_flag *f, const char *v)
{
    uint64_t n = 0;
    switch (f->id) {
    case FLAG_DURATION:
        if (!bench__parse_seconds(v, 0.001, &o->duration_s)) {
            return bench__usage_error("--duration must be seconds > 0, got \"%s\"", v);
        }
        return 0;
    case FLAG_WARMUP:
        if (!bench__parse_seconds(v, 0.0, &o->warmup_s)) {
            return bench__usage_error("--warmup must be seconds >= 0, got \"%s\"", v);
        }
        return 0;
    case FLAG_RATE:
        if (!bench__parse_u64(v, 0, BENCH_RATE_MAX, &o->rate_per_s)) {
            return bench__usage_error("--rate must be 0..%llu messages/s, got \"%s\"",
                                      BENCH_RATE_MAX, v);
        }
        return 0;
    case FLAG_INFLIGHT:
        if (!bench__parse_u64(v, 1, BENCH_INFLIGHT_MAX, &n)) {
            return bench__usage_error("--inflight must be 1..%u, got \"%s\"", BENCH_INFLIGHT_MAX,
                                      v);
        }
        o->inflight = (uint32_t)n;
        return 0;
    case FLAG_MESSAGES:
        if (!bench__parse_u64(v, 1, BENCH_MESSAGES_MAX, &o->messages)) {
            return bench__usage_error("--messages must be 1..%llu, got \"%s\"", BENCH_MESSAGES_MAX,
                                      v);
        }
        return 0;
    case FLAG_CLEAN_START:
        if (!bench__parse_u64(v, 0, 1, &n)) {
            return bench__usage_error("--clean-start must be 0 or 1, got \"%s\"", v);
        }
        o->clean_start = n == 1;
        return 0;
    case FLAG_SESSION_EXPIRY:
        if (!bench__parse_u64(v, 0, UINT32_MAX, &n)) {
            return bench__usage_error("--session-expiry must be 0..4294967295 s, got \"%s\"", v);
        }
        o->session_expiry_s = (uint32_t)n;
        return 0;
    case FLAG_TOPIC_LENGTH:
        if (!bench__parse_u64(v, BENCH_TOPIC_LENGTH_MIN, BENCH_TOPIC_LENGTH_MAX, &n)) {
            return bench__usage_error("--topic-length must be %u..%u bytes, got \"%s\"",
                                      BENCH_TOPIC_LENGTH_MIN, BENCH_TOPIC_LENGTH_MAX, v);
        }
        o->topic_length = (uint32_t)n;
        return 0;
    case FLAG_TOPIC_ALIAS_MAX:
        if (!bench__parse_u64(v, 0, UINT16_MAX, &n)) {
            return bench__usage_error("--topic-alias-max must be 0..65535, got \"%s\"", v);
        }
        o->topic_alias_max = (uint16_t)n;
        return 0;
    default:
        break;
    }
    return bench__apply_number(o, f, v);
}

static int bench__apply(struct bench_opts *o, const struct bench_flag *f, const char *v)
{
    switch (f->id) {
    case FLAG_HOST:
        if (strlen(v) >= sizeof(o->host)) {
            return bench__usage_error("--host is longer than %zu bytes", sizeof(o->host) - 1);
        }
        memcpy(o->host, v, strlen(v) + 1);
        return 0;
    case FLAG_SCENARIO:
        return bench__parse_scenario(v, o);
    case FLAG_PID:
        return bench__parse_pid(v, o);
    case FLAG_JSON:
        o->json = true;
        return 0;
    case FLAG_HELP:
        o->help = true;
        return 0;
    default:
        return bench__apply_amount(o, f, v);
    }
}

static const struct bench_flag *bench__find(const char *name, size_t len)
{
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bench__flags); i++) {
        if (strlen(bench__flags[i].name) == len && memcmp(bench__flags[i].name, name, len) == 0) {
            return &bench__flags[i];
        }
    }
    return NULL;
}

/* Reads the flag at argv[*i], advances *i past it and its value, and records it in seen. */
static int bench__next(int argc, char **argv, int *i, struct bench_opts *o, bool *seen)
{
    LMQ_ASSERT(*i < argc);
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        return bench__usage_error("unexpected argument \"%s\" (see ledgermq bench --help)", arg);
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct bench_flag *f = bench__find(name, len);
    if (f == NULL) {
        return bench__usage_error("unknown flag --%.*s (see ledgermq bench --help)", (int)len,
                                  name);
    }
    if (seen[f->id]) {
        return bench__usage_error("--%s given more than once", f->name);
    }
    seen[f->id] = true;
    const char *value = "";
    if (!f->takes_value) {
        if (eq != NULL) {
            return bench__usage_error("--%s takes no value", f->name);
        }
    } else if (eq != NULL) {
        value = eq + 1;
    } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        *i += 1;
        value = argv[*i];
    }
    if (f->takes_value && value[0] == '\0') {
        return bench__usage_error("--%s needs a value", f->name);
    }
    *i += 1;
    return bench__apply(o, f, value);
}

/* Scenario-dependent defaults for what was not given. */
static void bench__defaults_after(struct bench_opts *o, const bool *seen)
{
    bool single_pub = o->scenario == BENCH_FAN_OUT || o->scenario == BENCH_FILL;
    if (!seen[FLAG_PUBLISHERS]) {
        o->publishers =
            single_pub
                ? 1
                : (o->scenario == BENCH_PAIRS && seen[FLAG_SUBSCRIBERS] ? o->subscribers : 4);
    }
    if (!seen[FLAG_SUBSCRIBERS]) {
        o->subscribers = o->scenario == BENCH_FAN_OUT ? 4
                         : o->scenario == BENCH_PAIRS ? o->publishers
                                                      : 1;
    }
    if (o->scenario == BENCH_FILL) {
        o->qos = seen[FLAG_QOS] ? o->qos : 1;
        o->duration_s = seen[FLAG_DURATION] ? o->duration_s : BENCH_FILL_TIMEOUT_S;
        o->warmup_s = 0;
        o->clean_start = false;
        o->session_expiry_s = seen[FLAG_SESSION_EXPIRY] ? o->session_expiry_s : UINT32_MAX;
    }
}

/* Checks that the flags fit together; 0 or the usage error. */
static int bench__validate(const struct bench_opts *o, const bool *seen)
{
    bool fill = o->scenario == BENCH_FILL;
    if (o->scenario == BENCH_FAN_IN && o->subscribers != 1) {
        return bench__usage_error("--scenario fan-in has exactly 1 subscriber");
    }
    if (o->scenario == BENCH_FAN_OUT && o->publishers != 1) {
        return bench__usage_error("--scenario fan-out has exactly 1 publisher");
    }
    if (o->scenario == BENCH_PAIRS && o->publishers != o->subscribers) {
        return bench__usage_error("--scenario pairs needs as many subscribers as publishers");
    }
    if ((uint64_t)o->publishers + o->subscribers > BENCH_CONNS_MAX) {
        return bench__usage_error("at most %u connections (publishers + subscribers)",
                                  BENCH_CONNS_MAX);
    }
    if (fill && !seen[FLAG_MESSAGES]) {
        return bench__usage_error("--scenario fill needs --messages M");
    }
    if (fill && o->qos == 0) {
        return bench__usage_error("--scenario fill needs --qos 1 or 2 (QoS 0 is not queued)");
    }
    if (fill && (seen[FLAG_WARMUP] || seen[FLAG_RATE] || seen[FLAG_CLEAN_START])) {
        return bench__usage_error("--warmup, --rate and --clean-start do not apply to fill");
    }
    if (!fill && seen[FLAG_MESSAGES]) {
        return bench__usage_error("--messages only applies to --scenario fill");
    }
    if (o->version == MQTT_V311 && seen[FLAG_SESSION_EXPIRY]) {
        return bench__usage_error("--session-expiry needs --mqtt-version 5");
    }
    if (o->version == MQTT_V311 && seen[FLAG_TOPIC_ALIAS_MAX]) {
        return bench__usage_error("--topic-alias-max needs --mqtt-version 5");
    }
    return 0;
}

int bench_opts_parse(int argc, char **argv, struct bench_opts *o)
{
    bool seen[FLAG_COUNT] = {false};
    LMQ_ASSERT(o != NULL && argc >= 0);
    memset(o, 0, sizeof(*o));
    memcpy(o->host, "127.0.0.1", sizeof("127.0.0.1"));
    o->port = 1883;
    o->scenario = BENCH_FAN_IN;
    o->payload_bytes = 64;
    o->version = MQTT_V5;
    o->duration_s = 10;
    o->warmup_s = 1;
    o->inflight = 64;
    o->clean_start = true;
    for (int i = 0; i < argc;) { /* bench__next advances i by 1 or 2 */
        if (bench__next(argc, argv, &i, o, seen) != 0) {
            return BENCH_EXIT_USAGE;
        }
        if (o->help) {
            return 0;
        }
    }
    bench__defaults_after(o, seen);
    if (bench__validate(o, seen) != 0) {
        return BENCH_EXIT_USAGE;
    }
    LMQ_ASSERT(o->publishers >= 1 && o->subscribers >= 1);
    return 0;
}
