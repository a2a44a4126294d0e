/* Configuration: defaults, every key, every error path, listener parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "core/config.h"
#include "core/lmq.h"
#include "core/resolve.h"

#define AUDITOR_A "aa5b8e5bd40a7a4f3e0ddc1df2e0e9f00c93f0ea1e2b2d7c4f1e3b6f7a8c9d01"
#define AUDITOR_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

#define TEST_ERR_BYTES 1024

/* Writes text to a fresh temporary file; its path goes into path (caller unlinks). */
static void write_ini(char *path, size_t cap, const char *text)
{
    int n = snprintf(path, cap, "/tmp/test_config_XXXXXX");
    assert_true(n > 0 && (size_t)n < cap);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Loads text as an INI file on top of the defaults. */
static int load_text(struct lmq_config *cfg, const char *text, char *err, size_t err_len,
                     char *path_out, size_t path_cap)
{
    char path[64];
    lmq_config_defaults(cfg);
    write_ini(path, sizeof(path), text);
    int rc = lmq_config_load_file(cfg, path, err, err_len);
    if (path_out != NULL) {
        snprintf(path_out, path_cap, "%s", path);
    }
    unlink(path);
    return rc;
}

static void test_defaults_match_design(void **state)
{
    (void)state;
    struct lmq_config cfg;
    memset(&cfg, 0xA5, sizeof(cfg));
    lmq_config_defaults(&cfg);
    assert_string_equal(cfg.config_path, "");
    assert_string_equal(cfg.data_dir, "./data");
    assert_int_equal(cfg.mqtt_count, 1);
    assert_string_equal(cfg.mqtt[0].host, "127.0.0.1");
    assert_int_equal(cfg.mqtt[0].port, 1883);
    /* What send and listen log in to by default (127.0.0.1:8080); none turns it off. */
    assert_true(cfg.http_enabled);
    assert_string_equal(cfg.http.host, "127.0.0.1");
    assert_int_equal(cfg.http.port, 8080);
    assert_false(cfg.https_enabled);
    assert_int_equal(cfg.sync, LMQ_SYNC_ALWAYS);
    assert_int_equal(cfg.log_level, LMQ_LOG_INFO);
    assert_int_equal(cfg.sys_interval_s, 10); /* mosquitto's default */
    assert_int_equal(cfg.drain_grace_ms, 0);  /* a stop as quick as before */
    const struct lmq_limits *l = &cfg.limits;
    assert_int_equal(l->max_connections, 10000);
    assert_int_equal(l->max_sessions, 100000);
    assert_int_equal(l->max_packet_size_bytes, 1048576);
    assert_int_equal(l->max_inflight, 64);
    assert_int_equal(l->max_queued_messages, 10000);
    assert_int_equal(l->max_queued_bytes, 67108864);
    assert_int_equal(l->max_queued_qos0, 1000);
    assert_int_equal(l->queue_overflow, LMQ_OVERFLOW_DROP_OLDEST);
    assert_int_equal(cfg.overflow_rule_count, 0);
    assert_int_equal(l->max_subscriptions, 1000);
    assert_int_equal(l->max_topic_alias, 64);
    assert_int_equal(l->max_topic_alias_out, 16);
    assert_int_equal(l->max_keepalive_s, 0);
    assert_int_equal(l->max_session_expiry_s, 0xFFFFFFFFu);
    assert_int_equal(l->max_retained_messages, 100000);
    assert_int_equal(l->max_retained_bytes, 268435456);
    assert_int_equal(l->connect_timeout_ms, 10000);
    assert_int_equal(l->max_output_bytes, 4194304);
    assert_int_equal(l->max_memory_output_bytes, 268435456);
    assert_int_equal(l->slow_consumer_grace_ms, 10000);
    assert_int_equal(l->min_free_disk_bytes, 67108864);
    assert_int_equal(l->http_max_header_bytes, 8192);
    assert_int_equal(l->http_max_body_bytes, 65536);
    assert_int_equal(l->http_idle_timeout_ms, 30000);
    assert_int_equal(l->http_request_timeout_ms, 10000);
    assert_int_equal(l->http_max_connections, 1024);
    assert_int_equal(l->ledger_page_max_bytes, 1048576);
    assert_int_equal(cfg.auth.auditor_count, 0); /* nobody reads others' envelopes */
}

static void test_every_key_is_parsed_from_file(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    char path[64];
    const char *text = "; comment\n"
                       "[server]\n"
                       "data = /var/lib/ledgermq\n"
                       "mqtt = 0.0.0.0:1884\n"
                       "http = [::1]:8080\n"
                       "sync = off\n"
                       "log_level = debug\n"
                       "sys_interval = 86400\n"
                       "drain_grace_ms = 5000\n"
                       "\n"
                       "[limits]\n"
                       "max_connections = 5\n"
                       "max_sessions = 6\n"
                       "max_packet_size = 268435460\n"
                       "max_inflight = 65535\n"
                       "max_queued_messages = 7\n"
                       "max_queued_bytes = 18446744073709551615\n"
                       "max_queued_qos0 = 1\n"
                       "max_subscriptions = 8\n"
                       "max_topic_alias = 0\n"
                       "max_topic_alias_out = 0\n"
                       "max_keepalive = 65535\n"
                       "max_session_expiry = 3600\n"
                       "max_retained_messages = 9\n"
                       "max_retained_bytes = 10\n"
                       "connect_timeout_ms = 11\n"
                       "max_output_bytes = 12\n"
                       "max_memory_output_bytes = 4294967296\n"
                       "slow_consumer_grace_ms = 250\n"
                       "min_free_disk = 13\n"
                       "http_max_header_bytes = 81920\n"
                       "http_max_body_bytes = 14\n"
                       "http_idle_timeout_ms = 15\n"
                       "http_request_timeout_ms = 16\n"
                       "http_max_connections = 17\n"
                       "ledger_page_max_bytes = 131072\n"
                       "[auth]\n"
                       "auditors = " AUDITOR_A "\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), path, sizeof(path)), 0);
    assert_string_equal(cfg.config_path, path);
    assert_string_equal(cfg.data_dir, "/var/lib/ledgermq");
    assert_int_equal(cfg.mqtt_count, 1);
    assert_string_equal(cfg.mqtt[0].host, "0.0.0.0");
    assert_int_equal(cfg.mqtt[0].port, 1884);
    assert_true(cfg.http_enabled);
    assert_string_equal(cfg.http.host, "::1");
    assert_int_equal(cfg.http.port, 8080);
    assert_int_equal(cfg.sync, LMQ_SYNC_OFF);
    assert_int_equal(cfg.log_level, LMQ_LOG_DEBUG);
    const struct lmq_limits *l = &cfg.limits;
    assert_int_equal(l->max_connections, 5);
    assert_int_equal(l->max_sessions, 6);
    assert_int_equal(l->max_packet_size_bytes, 268435460);
    assert_int_equal(l->max_inflight, 65535);
    assert_int_equal(l->max_queued_messages, 7);
    assert_int_equal(cfg.sys_interval_s, 86400);
    assert_int_equal(cfg.drain_grace_ms, 5000);
    assert_true(l->max_queued_bytes == UINT64_MAX);
    assert_int_equal(l->max_queued_qos0, 1);
    assert_int_equal(l->max_subscriptions, 8);
    assert_int_equal(l->max_topic_alias, 0);
    assert_int_equal(l->max_topic_alias_out, 0);
    assert_int_equal(l->max_keepalive_s, 65535);
    assert_int_equal(l->max_session_expiry_s, 3600);
    assert_int_equal(l->max_retained_messages, 9);
    assert_int_equal(l->max_retained_bytes, 10);
    assert_int_equal(l->connect_timeout_ms, 11);
    assert_int_equal(l->max_output_bytes, 12);
    assert_true(l->max_memory_output_bytes == UINT64_C(4294967296));
    assert_int_equal(l->slow_consumer_grace_ms, 250);
    assert_int_equal(l->min_free_disk_bytes, 13);
    assert_int_equal(l->http_max_header_bytes, 81920);
    assert_int_equal(l->http_max_body_bytes, 14);
    assert_int_equal(l->http_idle_timeout_ms, 15);
    assert_int_equal(l->http_request_timeout_ms, 16);
    assert_int_equal(l->http_max_connections, 17);
    assert_int_equal(l->ledger_page_max_bytes, 131072);
    assert_int_equal(cfg.auth.auditor_count, 1);
    assert_string_equal(cfg.auth.auditors[0], AUDITOR_A);
}

/* Security findings 7 and 8: the per-address limits on logins, HTTP(S) and password checks. */
static void test_per_address_login_limits_defaults_keys_and_bounds(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    const struct lmq_limits *l = &cfg.limits;
    assert_int_equal(l->http_header_timeout_ms, 10000);
    assert_int_equal(l->http_handshake_timeout_ms, 5000);
    assert_int_equal(l->http_max_connections_per_address, 128);
    assert_int_equal(l->http_max_handshakes_per_address, 64);
    assert_int_equal(l->login_challenges_per_address, 32);
    assert_int_equal(l->login_challenges_per_key, 4);
    assert_int_equal(l->password_checks_per_address, 4);
    assert_int_equal(l->password_failures_before_backoff, 5);
    assert_int_equal(l->password_backoff_max_ms, 60000);
    const char *text = "[limits]\n"
                       "http_header_timeout_ms = 21\n"
                       "http_handshake_timeout_ms = 22\n"
                       "http_max_connections_per_address = 23\n"
                       "http_max_handshakes_per_address = 24\n"
                       "login_challenges_per_address = 25\n"
                       "login_challenges_per_key = 26\n"
                       "password_checks_per_address = 64\n"
                       "password_failures_before_backoff = 4294967295\n"
                       "password_backoff_max_ms = 86400000\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), NULL, 0), 0);
    assert_int_equal(l->http_header_timeout_ms, 21);
    assert_int_equal(l->http_handshake_timeout_ms, 22);
    assert_int_equal(l->http_max_connections_per_address, 23);
    assert_int_equal(l->http_max_handshakes_per_address, 24);
    assert_int_equal(l->login_challenges_per_address, 25);
    assert_int_equal(l->login_challenges_per_key, 26);
    assert_int_equal(l->password_checks_per_address, 64);
    assert_int_equal(l->password_failures_before_backoff, UINT32_MAX);
    assert_int_equal(l->password_backoff_max_ms, 86400000);
    /* Out of range: a share over the 64 slots, no slot at all, a back-off under the 1 s base,
     * a per-address challenge cap over the 10,000 in all, zero timeouts and caps. */
    static const char *const bad[] = {
        "[limits]\npassword_checks_per_address = 65\n",
        "[limits]\npassword_checks_per_address = 0\n",
        "[limits]\npassword_backoff_max_ms = 999\n",
        "[limits]\nlogin_challenges_per_address = 10001\n",
        "[limits]\nlogin_challenges_per_key = 0\n",
        "[limits]\nhttp_header_timeout_ms = 0\n",
        "[limits]\nhttp_max_connections_per_address = 0\n",
        "[limits]\nhttp_max_handshakes_per_address = 0\n",
        "[limits]\nhttp_handshake_timeout_ms = 0\n",
        "[limits]\npassword_failures_before_backoff = 0\n",
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        if (load_text(&cfg, bad[i], err, sizeof(err), NULL, 0) != LMQ_EINVAL) {
            print_error("case %zu accepted: %s", i, bad[i]);
            fail();
        }
    }
}

static void test_http_listener_is_one_address_and_port_zero_is_allowed(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_int_equal(lmq_config_set(&cfg, "server", "http", "localhost:0", err, sizeof(err)), 0);
    assert_true(cfg.http_enabled);
    assert_string_equal(cfg.http.host, "127.0.0.1");
    assert_int_equal(cfg.http.port, 0);
    /* A later setting replaces it (flags override the file). */
    assert_int_equal(lmq_config_set(&cfg, "server", "http", "0.0.0.0:8080", err, sizeof(err)), 0);
    assert_string_equal(cfg.http.host, "0.0.0.0");
    assert_int_equal(cfg.http.port, 8080);
    /* The MQTT listeners are untouched. */
    assert_int_equal(cfg.mqtt_count, 1);
    assert_int_equal(cfg.mqtt[0].port, 1883);
    /* A bad value leaves the listener as it was. */
    assert_int_equal(
        lmq_config_set(&cfg, "server", "http", "127.0.0.1:1,127.0.0.1:2", err, sizeof(err)),
        LMQ_EINVAL);
    assert_non_null(strstr(err, "[server] http: "));
    assert_string_equal(cfg.http.host, "0.0.0.0");
    assert_int_equal(cfg.http.port, 8080);
    /* none turns a listener off (http is on by default), and an address turns it on again. */
    assert_int_equal(lmq_config_set(&cfg, "server", "http", "none", err, sizeof(err)), 0);
    assert_false(cfg.http_enabled);
    assert_int_equal(lmq_config_set(&cfg, "server", "https", "none", err, sizeof(err)), 0);
    assert_false(cfg.https_enabled);
    assert_int_equal(lmq_config_set(&cfg, "server", "http", "127.0.0.1:0", err, sizeof(err)), 0);
    assert_true(cfg.http_enabled);
    assert_int_equal(lmq_config_set(&cfg, "server", "http", "None", err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "or none"));
}

static void test_session_expiry_accepts_never(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_int_equal(lmq_config_set(&cfg, "limits", "max_session_expiry", "0", err, sizeof(err)),
                     0);
    assert_int_equal(cfg.limits.max_session_expiry_s, 0);
    assert_int_equal(
        lmq_config_set(&cfg, "limits", "max_session_expiry", "never", err, sizeof(err)), 0);
    assert_int_equal(cfg.limits.max_session_expiry_s, 0xFFFFFFFFu);
    /* "never" is only a word for session expiry. */
    assert_int_equal(lmq_config_set(&cfg, "limits", "max_keepalive", "never", err, sizeof(err)),
                     LMQ_EINVAL);
}

static void test_set_leaves_neighbouring_fields_alone(void **state)
{
    (void)state;
    struct lmq_config cfg;
    struct lmq_config expect;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    lmq_config_defaults(&expect);
    /* A 16-bit field between 32-bit ones: a wrong-width store would spill over. */
    assert_int_equal(lmq_config_set(&cfg, "limits", "max_inflight", "65535", err, sizeof(err)), 0);
    expect.limits.max_inflight = 65535;
    assert_memory_equal(&cfg, &expect, sizeof(cfg));
    assert_int_equal(
        lmq_config_set(&cfg, "limits", "max_queued_bytes", "123456789012", err, sizeof(err)), 0);
    expect.limits.max_queued_bytes = 123456789012u;
    assert_memory_equal(&cfg, &expect, sizeof(cfg));
}

struct bad_ini {
    const char *text;
    int line;
    const char *must_contain; /* the key, or what the message is about */
};

/* Each entry is one error path; the bad line is always the last one. */
static const struct bad_ini bad_inis[] = {
    {"[limits]\nmax_inflight = zero\n", 2, "[limits] max_inflight: expected an integer 1..65535"},
    {"[limits]\nmax_inflight = 0\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight = 65536\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight = 10x\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight = -1\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight = +1\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight = 0x10\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight = 1.5\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight = 1 2\n", 2, "max_inflight"},
    {"[limits]\nmax_inflight =\n", 2, "max_inflight"},
    {"[limits]\nmax_packet_size = 15\n", 2, "max_packet_size: expected an integer 16..268435460"},
    {"[limits]\nmax_packet_size = 268435461\n", 2, "max_packet_size"},
    {"[limits]\nmax_connections = 0\n", 2, "max_connections"},
    {"[limits]\nmax_connections = 4294967296\n", 2, "max_connections"},
    {"[limits]\nmax_queued_bytes = 18446744073709551616\n", 2, "max_queued_bytes"},
    {"[limits]\nmax_queued_bytes = 99999999999999999999999\n", 2, "max_queued_bytes"},
    {"[limits]\nmax_queued_qos0 = 0\n", 2, "max_queued_qos0"},
    {"[limits]\nmax_topic_alias = 65536\n", 2, "max_topic_alias"},
    {"[limits]\nmax_topic_alias_out = 65536\n", 2,
     "[limits] max_topic_alias_out: expected an integer 0..65535"},
    {"[limits]\nmax_topic_alias_out = -1\n", 2, "max_topic_alias_out"},
    {"[limits]\nmax_keepalive = 70000\n", 2, "max_keepalive"},
    {"[limits]\nmax_session_expiry = forever\n", 2, "max_session_expiry"},
    {"[limits]\nmax_session_expiry = 4294967296\n", 2, "max_session_expiry"},
    {"[limits]\nconnect_timeout_ms = 0\n", 2, "connect_timeout_ms"},
    {"[limits]\nmax_output_bytes = 0\n", 2, "max_output_bytes"},
    {"[limits]\nmax_memory_output_bytes = 0\n", 2, "max_memory_output_bytes"},
    {"[limits]\nslow_consumer_grace_ms = 0\n", 2, "slow_consumer_grace_ms"},
    {"[limits]\nmax_sessions = abc\n", 2, "max_sessions"},
    {"[limits]\nmax_subscriptions = 0\n", 2, "max_subscriptions"},
    {"[limits]\nmax_queued_messages = x\n", 2, "max_queued_messages"},
    {"[limits]\nmax_retained_messages = 1e3\n", 2, "max_retained_messages"},
    {"[limits]\nmax_retained_bytes = 12MB\n", 2, "max_retained_bytes"},
    {"[limits]\nmax_bananas = 1\n", 2, "[limits] max_bananas: unknown key"},
    {"[server]\nsync = sometimes\n", 2, "[server] sync: expected always or off"},
    {"[server]\nlog_level = loud\n", 2, "[server] log_level"},
    {"[server]\ndata =\n", 2, "[server] data"},
    {"[server]\nmqtt = 1.2.3.4\n", 2, "[server] mqtt"},
    {"[server]\nmqtt = 1.2.3.4:70000\n", 2, "[server] mqtt"},
    {"[server]\nmqtt = 127.0.0.1:1883,\n", 2, "[server] mqtt"},
    {"[server]\nmqtt = 1:2:3:4\n", 2, "[server] mqtt"},
    {"[server]\ncolour = blue\n", 2, "[server] colour: unknown key"},
    {"[server]\nsys_interval = 86401\n", 2, "[server] sys_interval: expected 0..86400 seconds"},
    {"[server]\nsys_interval = -1\n", 2, "[server] sys_interval"},
    {"[server]\ndrain_grace_ms = 600001\n", 2, "[server] drain_grace_ms: expected 0..600000 ms"},
    {"[server]\ndrain_grace_ms = 5s\n", 2, "[server] drain_grace_ms"},
    {"[server]\nhttp = 1.2.3.4\n", 2, "[server] http: expected HOST:PORT"},
    {"[server]\nhttp = 127.0.0.1:65536\n", 2, "[server] http"},
    {"[server]\nhttp = bad_host:80\n", 2, "[server] http"},
    {"[server]\nhttp =\n", 2, "[server] http"},
    {"[limits]\nhttp_max_header_bytes = 255\n", 2,
     "http_max_header_bytes: expected an integer 256..81920"},
    {"[limits]\nhttp_max_header_bytes = 81921\n", 2, "http_max_header_bytes"},
    {"[limits]\nhttp_max_body_bytes = 0\n", 2, "http_max_body_bytes"},
    {"[limits]\nhttp_max_body_bytes = 67108865\n", 2, "http_max_body_bytes"},
    {"[limits]\nhttp_idle_timeout_ms = 0\n", 2, "http_idle_timeout_ms"},
    {"[limits]\nhttp_request_timeout_ms = 0\n", 2, "http_request_timeout_ms"},
    {"[limits]\nhttp_max_connections = 0\n", 2, "http_max_connections"},
    {"[http]\nallowed_origins = null\n", 2, "[http] allowed_origins: expected origins"},
    {"[http]\nallowed_origins = *\n", 2, "[http] allowed_origins"},
    {"[http]\nallowed_origins = https://a.example/app\n", 2, "[http] allowed_origins"},
    {"[http]\nallowed_origins = app.example.com\n", 2, "[http] allowed_origins"},
    {"[http]\nallowed_origins = https://\n", 2, "[http] allowed_origins"},
    {"[http]\nallowed_origins = https://a.example,,https://b.example\n", 2, "allowed_origins"},
    {"[http]\nallowed_origins = https://u@a.example\n", 2, "allowed_origins"},
    {"[http]\ntrusted_proxies = 10.0.0.0/33\n", 2, "[http] trusted_proxies: expected IP"},
    {"[http]\ntrusted_proxies = proxy.example\n", 2, "[http] trusted_proxies"},
    {"[http]\ntrusted_proxies = 127.0.0.1/\n", 2, "[http] trusted_proxies"},
    {"[http]\ntrusted_proxies = ::1/129\n", 2, "[http] trusted_proxies"},
    {"[http]\ntrusted_proxies = ::ffff:10.0.0.0/8\n", 2, "[http] trusted_proxies"},
    {"[http]\ncors = on\n", 2, "[http] cors: unknown key"},
    {"[http]\nproxy_protocol = 127.0.0.1\n", 2, "[http] proxy_protocol: unknown key"},
    {"[server]\nproxy_protocol = localhost\n", 2, "[server] proxy_protocol: expected IP"},
    {"[server]\nsync = off\n[acl]\nfile = x\n", 4, "[acl] file: unknown section"},
    {"[limits]\nqueue_overflow = drop_newest\n", 2,
     "[limits] queue_overflow: expected drop_oldest, refuse or end_session"},
    {"[limits]\nqueue_overflow =\n", 2, "[limits] queue_overflow"},
    {"[queue_overflow]\ndiscard = topic a/#\n", 2, "[queue_overflow] discard: unknown key"},
    {"[queue_overflow]\nrefuse = a/#\n", 2, "[queue_overflow] refuse: expected \"principal"},
    {"[queue_overflow]\nrefuse = topic\n", 2, "[queue_overflow] refuse"},
    {"[queue_overflow]\nrefuse = topic a/#/b\n", 2, "[queue_overflow] refuse"},
    {"[queue_overflow]\nrefuse = topic a/b+\n", 2, "[queue_overflow] refuse"},
    {"[queue_overflow]\nrefuse = topic $share/g/a\n", 2, "[queue_overflow] refuse"},
    {"[queue_overflow]\nrefuse = topic id/#\n", 2, "not under id/"},
    {"[queue_overflow]\nrefuse = principal bob\n", 2, "[queue_overflow] refuse"},
    {"[queue_overflow]\nrefuse = principal user:\n", 2, "[queue_overflow] refuse"},
    {"[queue_overflow]\nrefuse = principal " AUDITOR_A "0\n", 2, "[queue_overflow] refuse"},
    {"[tls]\nclient_cert = maybe\n", 2, "[tls] client_cert: expected none"},
    {"data = ./x\n", 1, "data: key outside any section"},
    {"[server]\nsync = off\nthis line has no equals sign\n", 3, "syntax error"},
    {"[server\n", 1, "syntax error"},
    {"[limits]\nledger_page_max_bytes = 131071\n", 2,
     "ledger_page_max_bytes: expected an integer 131072..4194304"},
    {"[limits]\nledger_page_max_bytes = 4194305\n", 2, "ledger_page_max_bytes"},
    {"[auth]\nauditors = alice\n", 2, "[auth] auditors: expected identity ids"},
    {"[auth]\nauditors = " AUDITOR_A ",\n", 2, "[auth] auditors: expected identity ids"},
    {"[auth]\nauditors = " AUDITOR_A ";" AUDITOR_B "\n", 2, "[auth] auditors"},
};

/* [limits] queue_overflow and the [queue_overflow] rules: kept in file order, each a principal
 * or a topic filter (spaces and ':' inside are part of it), bounded in number. */
static void test_queue_overflow_policy_and_rules(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    const char *text = "[limits]\n"
                       "queue_overflow = refuse\n"
                       "[queue_overflow]\n"
                       "end_session = topic sensors/+/raw\n"
                       "drop_oldest = principal cn:Field Device 7\n"
                       "refuse = principal user:billing\n"
                       "drop_oldest = principal anonymous\n"
                       "end_session = principal " AUDITOR_A "\n"
                       "drop_oldest = topic #\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), NULL, 0), 0);
    assert_int_equal(cfg.limits.queue_overflow, LMQ_OVERFLOW_REFUSE);
    assert_int_equal(cfg.overflow_rule_count, 6);
    const struct lmq_overflow_rule *r = cfg.overflow_rules;
    assert_true(r[0].topic && r[0].policy == LMQ_OVERFLOW_END_SESSION);
    assert_string_equal(r[0].pattern, "sensors/+/raw");
    assert_true(!r[1].topic && r[1].policy == LMQ_OVERFLOW_DROP_OLDEST);
    assert_string_equal(r[1].pattern, "cn:Field Device 7");
    assert_string_equal(r[2].pattern, "user:billing");
    assert_int_equal(r[2].policy, LMQ_OVERFLOW_REFUSE);
    assert_string_equal(r[3].pattern, "anonymous");
    assert_string_equal(r[4].pattern, AUDITOR_A);
    assert_true(r[5].topic);
    assert_string_equal(r[5].pattern, "#");
    assert_string_equal(lmq_overflow_policy_name(LMQ_OVERFLOW_END_SESSION), "end_session");
    /* The bound: LMQ_OVERFLOW_RULES_MAX rules, then a clear error and nothing added. */
    lmq_config_defaults(&cfg);
    for (int i = 0; i < LMQ_OVERFLOW_RULES_MAX; i++)
        assert_int_equal(
            lmq_config_set(&cfg, "queue_overflow", "refuse", "topic a/#", err, sizeof(err)), 0);
    assert_int_equal(
        lmq_config_set(&cfg, "queue_overflow", "refuse", "topic a/#", err, sizeof(err)),
        LMQ_EINVAL);
    assert_non_null(strstr(err, "at most 64 rules"));
    assert_int_equal(cfg.overflow_rule_count, LMQ_OVERFLOW_RULES_MAX);
    /* A filter of 255 bytes fits, 256 does not. */
    char value[6 + LMQ_OVERFLOW_PATTERN_MAX_BYTES + 1] = "topic ";
    memset(value + 6, 'a', LMQ_OVERFLOW_PATTERN_MAX_BYTES - 1);
    value[6 + LMQ_OVERFLOW_PATTERN_MAX_BYTES - 1] = '\0';
    lmq_config_defaults(&cfg);
    assert_int_equal(lmq_config_set(&cfg, "queue_overflow", "refuse", value, err, sizeof(err)), 0);
    value[6 + LMQ_OVERFLOW_PATTERN_MAX_BYTES - 1] = 'a';
    value[6 + LMQ_OVERFLOW_PATTERN_MAX_BYTES] = '\0';
    assert_int_equal(lmq_config_set(&cfg, "queue_overflow", "refuse", value, err, sizeof(err)),
                     LMQ_EINVAL);
    assert_int_equal(cfg.overflow_rule_count, 1);
}

/* [auth] auditors: a comma-separated list of identity ids, blanks ignored, empty for none;
 * a later setting replaces the list; more than LMQ_AUDITORS_MAX is refused. */
static void test_auditors_are_a_list_of_identity_ids(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_int_equal(
        lmq_config_set(&cfg, "auth", "auditors", " " AUDITOR_A " ,\t" AUDITOR_B, err, sizeof(err)),
        0);
    assert_int_equal(cfg.auth.auditor_count, 2);
    assert_string_equal(cfg.auth.auditors[0], AUDITOR_A);
    assert_string_equal(cfg.auth.auditors[1], AUDITOR_B);
    assert_int_equal(lmq_config_set(&cfg, "auth", "auditors", AUDITOR_B, err, sizeof(err)), 0);
    assert_int_equal(cfg.auth.auditor_count, 1);
    assert_string_equal(cfg.auth.auditors[0], AUDITOR_B);
    assert_string_equal(cfg.auth.auditors[1], "");
    assert_int_equal(lmq_config_set(&cfg, "auth", "auditors", "", err, sizeof(err)), 0);
    assert_int_equal(cfg.auth.auditor_count, 0);
    /* Upper-case hex is not an identity id; a failed set changes nothing. */
    assert_int_equal(lmq_config_set(&cfg, "auth", "auditors", AUDITOR_A, err, sizeof(err)), 0);
    char upper[80];
    snprintf(upper, sizeof(upper), "%s", AUDITOR_B);
    upper[0] = 'B';
    assert_int_equal(lmq_config_set(&cfg, "auth", "auditors", upper, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "64 lowercase hex"));
    assert_int_equal(cfg.auth.auditor_count, 1);
    assert_string_equal(cfg.auth.auditors[0], AUDITOR_A);
    /* The bound: LMQ_AUDITORS_MAX ids pass, one more is refused. */
    char list[(LMQ_AUDITORS_MAX + 1) * (LMQ_IDENTITY_ID_CHARS + 1) + 1];
    size_t used = 0;
    for (int i = 0; i <= LMQ_AUDITORS_MAX; i++) {
        if (i == LMQ_AUDITORS_MAX) {
            assert_int_equal(lmq_config_set(&cfg, "auth", "auditors", list, err, sizeof(err)), 0);
            assert_int_equal(cfg.auth.auditor_count, LMQ_AUDITORS_MAX);
        }
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "",
                         i % 2 ? AUDITOR_A : AUDITOR_B);
        assert_true(n > 0 && (size_t)n < sizeof(list) - used);
        used += (size_t)n;
    }
    assert_int_equal(lmq_config_set(&cfg, "auth", "auditors", list, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "more than 32"));
    assert_int_equal(cfg.auth.auditor_count, LMQ_AUDITORS_MAX);
}

/* [admin] ids: the identities allowed on the admin API, at most LMQ_ADMIN_IDS_MAX, none by
 * default; a bad list keeps the old one. */
static void test_admin_ids_are_a_bounded_list_of_identity_ids(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[256];
    lmq_config_defaults(&cfg);
    assert_int_equal(cfg.admin.id_count, 0);
    assert_int_equal(
        lmq_config_set(&cfg, "admin", "ids", AUDITOR_A ", " AUDITOR_B, err, sizeof(err)), 0);
    assert_int_equal(cfg.admin.id_count, 2);
    assert_string_equal(cfg.admin.ids[1], AUDITOR_B);
    assert_int_equal(lmq_config_set(&cfg, "admin", "ids", "root", err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "[admin] ids: expected identity ids"));
    assert_int_equal(cfg.admin.id_count, 2);
    assert_int_equal(lmq_config_set(&cfg, "admin", "users", AUDITOR_A, err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "[admin] users: unknown key (expected ids)"));
    char list[(LMQ_ADMIN_IDS_MAX + 1) * (LMQ_IDENTITY_ID_CHARS + 1) + 1];
    size_t used = 0;
    for (int i = 0; i <= LMQ_ADMIN_IDS_MAX; i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "", AUDITOR_A);
        assert_true(n > 0 && (size_t)n < sizeof(list) - used);
        used += (size_t)n;
    }
    assert_int_equal(lmq_config_set(&cfg, "admin", "ids", list, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "more than 32"));
    list[used - LMQ_IDENTITY_ID_CHARS - 1] = '\0'; /* 32 ids */
    assert_int_equal(lmq_config_set(&cfg, "admin", "ids", list, err, sizeof(err)), 0);
    assert_int_equal(cfg.admin.id_count, LMQ_ADMIN_IDS_MAX);
    assert_int_equal(lmq_config_set(&cfg, "admin", "ids", "", err, sizeof(err)), 0);
    assert_int_equal(cfg.admin.id_count, 0);
}

static void test_chain_keys_defaults_and_bounds(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[256];
    lmq_config_defaults(&cfg);
    const struct lmq_chain_config *c = &cfg.chain;
    assert_string_equal(c->rpc, ""); /* off */
    assert_true(c->start_latest && c->healthz_503_when_down);
    assert_int_equal(c->poll_ms, 1000);
    assert_int_equal(c->batch_blocks, 100);
    assert_int_equal(c->max_reorg_depth, 64);
    assert_int_equal(c->confirmations, 12);
    assert_int_equal(c->degraded_lag_blocks, 10);
    static const char *const good[][2] = {{"rpc", "https://node.example/v3"},
                                          {"start_block", "17"},
                                          {"poll_ms", "10"},
                                          {"timeout_ms", "600000"},
                                          {"batch_blocks", "1000"},
                                          {"max_reorg_depth", "1"},
                                          {"confirmations", "1"},
                                          {"healthz_503_when_down", "false"}};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(good); i++)
        assert_int_equal(lmq_config_set(&cfg, "chain", good[i][0], good[i][1], err, sizeof(err)),
                         0);
    assert_string_equal(c->rpc, "https://node.example/v3");
    assert_false(c->start_latest);
    assert_int_equal(c->start_block, 17);
    assert_int_equal(c->poll_ms, 10);
    assert_int_equal(c->timeout_ms, 600000);
    assert_int_equal(c->batch_blocks, 1000);
    assert_int_equal(c->max_reorg_depth, 1);
    assert_false(c->healthz_503_when_down);
    assert_int_equal(c->degraded_lag_blocks, 10); /* untouched */
    assert_int_equal(lmq_config_set(&cfg, "chain", "start_block", "latest", err, sizeof(err)), 0);
    assert_true(c->start_latest);
    static const char *const bad[][3] = {
        {"rpc", "ws://node", "[chain] rpc: expected an http:// or https:// URL"},
        {"rpc", "http://a b", "[chain] rpc: expected"},
        {"start_block", "-1", "[chain] start_block: expected a block number or latest"},
        {"poll_ms", "9", "[chain] poll_ms: expected an integer 10..600000"},
        {"batch_blocks", "1001", "[chain] batch_blocks: expected an integer 1..1000"},
        {"confirmations", "0", "[chain] confirmations: expected an integer 1..10000"},
        {"healthz_503_when_down", "yes", "expected true or false"},
        {"node", "x", "[chain] node: unknown key (expected rpc, start_block"},
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++) {
        assert_int_equal(lmq_config_set(&cfg, "chain", bad[i][0], bad[i][1], err, sizeof(err)),
                         LMQ_EINVAL);
        if (strstr(err, bad[i][2]) == NULL)
            fail_msg("%s = %s: got \"%s\"", bad[i][0], bad[i][1], err);
    }
    assert_int_equal(c->batch_blocks, 1000); /* a refused value changes nothing */
}

static void test_bots_ids_add_up_over_lines_and_are_bounded(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    /* One line replaces (lmq_config_set); in a file, each further ids line adds to the list. */
    assert_int_equal(load_text(&cfg, "[bots]\nids = " AUDITOR_A "\nids = " AUDITOR_B "\n", err,
                               sizeof(err), NULL, 0),
                     0);
    assert_int_equal(cfg.bot_count, 2);
    assert_string_equal(cfg.bots[0], AUDITOR_A);
    assert_string_equal(cfg.bots[1], AUDITOR_B);
    assert_int_equal(lmq_config_set(&cfg, "bots", "ids", AUDITOR_B, err, sizeof(err)), 0);
    assert_int_equal(cfg.bot_count, 1);
    assert_string_equal(cfg.bots[0], AUDITOR_B);
    assert_int_equal(lmq_config_set(&cfg, "bots", "events", "*", err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "[bots] events: unknown key (expected ids, validators, "
                                "verdict_timeout_ms, verdicts_per_address or default_verdict)"));
    assert_int_equal(lmq_config_set(&cfg, "bots", "ids", "abc", err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "[bots] ids: expected identity ids"));
    assert_int_equal(cfg.bot_count, 1); /* a failed set changes nothing */
    /* The bound over lines: LMQ_BOTS_MAX ids pass, one more is refused. */
    char text[(LMQ_BOTS_MAX + 2) * (LMQ_IDENTITY_ID_CHARS + 8)];
    size_t used = (size_t)snprintf(text, sizeof(text), "[bots]\n");
    for (int i = 0; i < LMQ_BOTS_MAX; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "ids = %s\n",
                                 i % 2 ? AUDITOR_A : AUDITOR_B);
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), NULL, 0), 0);
    assert_int_equal(cfg.bot_count, LMQ_BOTS_MAX);
    snprintf(text + used, sizeof(text) - used, "ids = %s\n", AUDITOR_A);
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), NULL, 0), LMQ_EINVAL);
    assert_non_null(strstr(err, "[bots] ids: more than 32 identities"));
}

static void test_bots_validators_name_a_bot_once_per_type(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_int_equal(cfg.verdict_timeout_ms, LMQ_VERDICT_TIMEOUT_DEFAULT_MS);
    assert_false(cfg.default_verdict_accept);
    /* The type is everything before the last ':' (types may hold ':'); lines add up. */
    assert_int_equal(load_text(&cfg,
                               "[bots]\nvalidators = a.B:c-1:" AUDITOR_A ", x:" AUDITOR_B
                               "\nvalidators = y:" AUDITOR_A "\nids = " AUDITOR_A ", " AUDITOR_B
                               "\nverdict_timeout_ms = 100\ndefault_verdict = accept\n",
                               err, sizeof(err), NULL, 0),
                     0);
    assert_int_equal(cfg.validator_count, 3);
    assert_string_equal(cfg.validators[0].type, "a.B:c-1");
    assert_string_equal(cfg.validators[0].bot, AUDITOR_A);
    assert_string_equal(cfg.validators[1].type, "x");
    assert_string_equal(cfg.validators[2].bot, AUDITOR_A);
    assert_int_equal(cfg.verdict_timeout_ms, 100);
    assert_true(cfg.default_verdict_accept);
    assert_int_equal(lmq_config_validate(&cfg, err, sizeof(err)), 0);
    /* Each names one of [bots] ids (checked once the whole file is read). */
    assert_int_equal(lmq_config_set(&cfg, "bots", "ids", AUDITOR_B, err, sizeof(err)), 0);
    assert_int_equal(lmq_config_validate(&cfg, err, sizeof(err)), LMQ_EINVAL);
    assert_non_null(strstr(err, "[bots] validators: a.B:c-1's validator " AUDITOR_A
                                " is not one of [bots] ids"));
    static const char *const bad[] = {"x",
                                      ":" AUDITOR_A,
                                      "x:" AUDITOR_A "0",
                                      "a b:" AUDITOR_A,
                                      "x:ABCD",
                                      "x:" AUDITOR_A ", x:" AUDITOR_B};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(lmq_config_set(&cfg, "bots", "validators", bad[i], err, sizeof(err)),
                         LMQ_EINVAL);
        assert_non_null(strstr(err, "[bots] validators: "));
    }
    assert_non_null(strstr(err, "type x has two validators"));
    assert_int_equal(cfg.validator_count, 3); /* a failed set changes nothing */
    assert_int_equal(lmq_config_set(&cfg, "bots", "verdict_timeout_ms", "30001", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_int_equal(lmq_config_set(&cfg, "bots", "default_verdict", "yes", err, sizeof(err)),
                     LMQ_EINVAL);
}

static void test_http_origins_and_trusted_proxies(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    const char *text = "[http]\n"
                       "allowed_origins = HTTPS://App.Example.com/, http://[::1]:8080\n"
                       "allowed_origins = http://localhost:3000\n" /* a repeated key adds */
                       "trusted_proxies = 127.0.0.1, 10.0.0.0/8\n"
                       "trusted_proxies = ::ffff:192.0.2.0/120, 2001:db8::/32\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), NULL, 0), 0);
    const struct lmq_http_config *h = &cfg.http_trust;
    assert_int_equal(h->allowed_origin_count, 3);
    assert_string_equal(h->allowed_origins[0], "https://app.example.com");
    assert_string_equal(h->allowed_origins[1], "http://[::1]:8080");
    assert_string_equal(h->allowed_origins[2], "http://localhost:3000");
    assert_int_equal(h->trusted_proxy_count, 4);
    const struct lmq_ip_prefix *p = h->trusted_proxies;
    const uint8_t lo1[4] = {127, 0, 0, 1}, lo2[4] = {127, 0, 0, 2};
    const uint8_t ten[4] = {10, 200, 3, 4}, eleven[4] = {11, 0, 0, 1};
    const uint8_t doc4[4] = {192, 0, 2, 77}, doc4_other[4] = {192, 0, 3, 1};
    const uint8_t doc4_mapped[16] = {[10] = 0xff, [11] = 0xff, 192, 0, 2, 77};
    const uint8_t v6_in[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    const uint8_t v6_out[16] = {0x20, 0x01, 0x0d, 0xb9, [15] = 1};
    assert_true(lmq_ip_prefix_match(&p[0], lo1, 4));
    assert_false(lmq_ip_prefix_match(&p[0], lo2, 4)); /* a single address is /32 */
    assert_true(lmq_ip_prefix_match(&p[1], ten, 4));
    assert_false(lmq_ip_prefix_match(&p[1], eleven, 4));
    assert_true(lmq_ip_prefix_match(&p[2], doc4, 4)); /* ::ffff:a.b.c.d/120 is a.b.c.d/24 */
    assert_true(lmq_ip_prefix_match(&p[2], doc4_mapped, 16));
    assert_false(lmq_ip_prefix_match(&p[2], doc4_other, 4));
    assert_true(lmq_ip_prefix_match(&p[3], v6_in, 16));
    assert_false(lmq_ip_prefix_match(&p[3], v6_out, 16));
    assert_false(lmq_ip_prefix_match(&p[3], lo1, 4));
    /* Setting a key replaces its list; an empty value empties it. */
    assert_int_equal(lmq_config_set(&cfg, "http", "allowed_origins", "", err, sizeof(err)), 0);
    assert_int_equal(cfg.http_trust.allowed_origin_count, 0);
    assert_int_equal(cfg.http_trust.trusted_proxy_count, 4);
    assert_int_equal(lmq_config_set(&cfg, "http", "trusted_proxies", "::1", err, sizeof(err)), 0);
    assert_int_equal(cfg.http_trust.trusted_proxy_count, 1);
    /* [server] proxy_protocol is a list of its own. */
    assert_int_equal(
        lmq_config_set(&cfg, "server", "proxy_protocol", "10.0.0.0/8, 127.0.0.1", err, sizeof(err)),
        0);
    assert_int_equal(cfg.http_trust.proxy_protocol_count, 2);
    assert_int_equal(cfg.http_trust.trusted_proxy_count, 1);
    assert_true(lmq_ip_prefix_match(&cfg.http_trust.proxy_protocol[1], lo1, 4));
    /* Defaults: all empty. */
    lmq_config_defaults(&cfg);
    assert_int_equal(cfg.http_trust.allowed_origin_count, 0);
    assert_int_equal(cfg.http_trust.trusted_proxy_count, 0);
    assert_int_equal(cfg.http_trust.proxy_protocol_count, 0);
}

static void test_http_lists_are_bounded(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    char value[LMQ_HTTP_PROXIES_MAX * 16 + 16] = "";
    size_t used = 0;
    for (int i = 0; i <= LMQ_HTTP_PROXIES_MAX; i++)
        used +=
            (size_t)snprintf(value + used, sizeof(value) - used, "%s10.0.0.%d", i ? "," : "", i);
    lmq_config_defaults(&cfg);
    assert_int_equal(lmq_config_set(&cfg, "http", "trusted_proxies", value, err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "at most 32 entries"));
    assert_int_equal(cfg.http_trust.trusted_proxy_count, 0); /* unchanged */
}

static void test_every_bad_value_names_line_and_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad_inis); i++) {
        struct lmq_config cfg;
        struct lmq_config defaults;
        char err[TEST_ERR_BYTES];
        char path[64];
        char where[96];
        lmq_config_defaults(&defaults);
        int rc = load_text(&cfg, bad_inis[i].text, err, sizeof(err), path, sizeof(path));
        snprintf(where, sizeof(where), "%s:%d: ", path, bad_inis[i].line);
        if (rc != LMQ_EINVAL || strncmp(err, where, strlen(where)) != 0 ||
            strstr(err, bad_inis[i].must_contain) == NULL || strchr(err, '\n') != NULL) {
            print_error("case %zu (%s): rc %d, message \"%s\"\n", i, bad_inis[i].text, rc, err);
            fail();
        }
        /* A failed load changes nothing. */
        assert_memory_equal(&cfg, &defaults, sizeof(cfg));
    }
}

static void test_error_message_quotes_the_bad_value(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    char path[64];
    char expect[TEST_ERR_BYTES];
    const char *text = "[server]\nsync = off\n\n[limits]\nmax_connections = 10\n"
                       "max_sessions = 10\nmax_inflight = zero\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), path, sizeof(path)), LMQ_EINVAL);
    snprintf(expect, sizeof(expect),
             "%s:7: [limits] max_inflight: expected an integer 1..65535, got \"zero\"", path);
    assert_string_equal(err, expect);
}

static void test_first_error_wins_over_later_ones(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    char path[64];
    char where[96];
    const char *text = "[server]\nno equals here\nsync = bad\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), path, sizeof(path)), LMQ_EINVAL);
    snprintf(where, sizeof(where), "%s:2: syntax error", path);
    assert_true(strncmp(err, where, strlen(where)) == 0);

    text = "[server]\nsync = bad\nno equals here\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), path, sizeof(path)), LMQ_EINVAL);
    snprintf(where, sizeof(where), "%s:2: [server] sync", path);
    assert_true(strncmp(err, where, strlen(where)) == 0);
}

static void test_overlong_line_is_refused_not_split(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    char path[64];
    char text[1200];
    char where[96];
    /* libinih would parse the tail of a long line as a line of its own. */
    int n = snprintf(text, sizeof(text), "[server]\ndata = /%0900d\n", 0);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), path, sizeof(path)), LMQ_EINVAL);
    snprintf(where, sizeof(where), "%s:2: line longer than", path);
    assert_true(strncmp(err, where, strlen(where)) == 0);
    assert_string_equal(cfg.data_dir, "./data");
}

static void test_missing_file_is_eio(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_int_equal(lmq_config_load_file(&cfg, "/nonexistent/ledgermq.ini", err, sizeof(err)),
                     LMQ_EIO);
    assert_non_null(strstr(err, "/nonexistent/ledgermq.ini"));
    assert_int_equal(lmq_config_load_file(&cfg, "/", err, sizeof(err)), LMQ_EIO);
}

static void test_auth_password_and_acl_files_must_be_readable(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    char pw[64], acl[64], text[256];
    write_ini(pw, sizeof(pw), "alice:$scrypt$...\n"); /* content is the broker's business */
    write_ini(acl, sizeof(acl), "topic read a\n");
    lmq_config_defaults(&cfg);
    assert_string_equal(cfg.auth.password_file, "");
    assert_string_equal(cfg.auth.acl_file, "");
    int n = snprintf(text, sizeof(text), "[auth]\npassword_file = %s\nacl_file = %s\n", pw, acl);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), NULL, 0), LMQ_OK);
    assert_string_equal(cfg.auth.password_file, pw);
    assert_string_equal(cfg.auth.acl_file, acl);
    /* A missing file: one line naming the key and the path; the old value stays. */
    assert_int_equal(lmq_config_set(&cfg, "auth", "acl_file", "/nonexistent/acl", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_string_equal(
        err, "[auth] acl_file: cannot read \"/nonexistent/acl\": No such file or directory");
    assert_string_equal(cfg.auth.acl_file, acl);
    assert_int_equal(lmq_config_set(&cfg, "auth", "password_file", "", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "[auth] password_file: expected a file path"));
    assert_string_equal(cfg.auth.password_file, pw);
    assert_int_equal(lmq_config_set(&cfg, "auth", "password_files", pw, err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "password_file or acl_file"));
    assert_null(strchr(err, '\n'));
    unlink(pw);
    unlink(acl);
}

/* [auth] token_leeway_s and ledger_bytes_per_day: defaults, 0 accepted, bounds refused. */
static void test_auth_token_leeway_and_ledger_quota(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_int_equal(cfg.auth.token_leeway_s, 0);
    assert_int_equal(cfg.auth.ledger_bytes_per_day, 64ull * 1024 * 1024);
    assert_int_equal(load_text(&cfg, "[auth]\ntoken_leeway_s = 30\nledger_bytes_per_day = 0\n", err,
                               sizeof(err), NULL, 0),
                     LMQ_OK);
    assert_int_equal(cfg.auth.token_leeway_s, 30);
    assert_int_equal(cfg.auth.ledger_bytes_per_day, 0);
    assert_int_equal(lmq_config_set(&cfg, "auth", "token_leeway_s", "0", err, sizeof(err)), 0);
    assert_int_equal(cfg.auth.token_leeway_s, 0);
    assert_int_equal(lmq_config_set(&cfg, "auth", "token_leeway_s", "301", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_string_equal(err, "[auth] token_leeway_s: expected an integer 0..300, got \"301\"");
    assert_int_equal(cfg.auth.token_leeway_s, 0);
    assert_int_equal(
        lmq_config_set(&cfg, "auth", "ledger_bytes_per_day", "1099511627776", err, sizeof(err)), 0);
    assert_int_equal(cfg.auth.ledger_bytes_per_day, 1ull << 40);
    assert_int_equal(
        lmq_config_set(&cfg, "auth", "ledger_bytes_per_day", "1099511627777", err, sizeof(err)),
        LMQ_EINVAL);
    assert_int_equal(lmq_config_set(&cfg, "auth", "ledger_bytes_per_day", "-1", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "[auth] ledger_bytes_per_day: expected an integer"));
    assert_int_equal(cfg.auth.ledger_bytes_per_day, 1ull << 40);
}

static void test_events_keep_and_new_job_keys(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_int_equal(cfg.events_keep_s, 0); /* every event kept */
    assert_false(cfg.jobs.export_gzip);
    assert_int_equal(cfg.jobs.prune_events_batch, 1000);
    static const struct {
        const char *value;
        uint64_t s;
    } good[] = {{"0", 0},     {"90", 90},     {"15m", 900},
                {"2h", 7200}, {"7d", 604800}, {"3650d", 3650ULL * 86400}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(lmq_config_set(&cfg, "events", "keep", good[i].value, err, sizeof(err)),
                         0);
        assert_int_equal(cfg.events_keep_s, good[i].s);
    }
    static const char *const bad[] = {"", "7x", "d", "-1", "3651d", "1dd", "7 d", "999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(lmq_config_set(&cfg, "events", "keep", bad[i], err, sizeof(err)),
                         LMQ_EINVAL);
        assert_non_null(strstr(err, "[events] keep: expected 0 or <n>s|m|h|d"));
        assert_int_equal(cfg.events_keep_s, 3650ULL * 86400); /* unchanged */
    }
    assert_int_equal(load_text(&cfg,
                               "[jobs]\nexport.gzip = true\nprune_events = @hourly\n"
                               "prune_events.batch = 5\n",
                               err, sizeof(err), NULL, 0),
                     LMQ_OK);
    assert_true(cfg.jobs.export_gzip);
    assert_int_equal(cfg.jobs.prune_events_batch, 5);
    assert_int_equal(lmq_config_set(&cfg, "jobs", "export.gzip", "yes", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_string_equal(err, "[jobs] export.gzip: expected true or false");
    assert_int_equal(lmq_config_set(&cfg, "jobs", "prune_events.batch", "0", err, sizeof(err)),
                     LMQ_EINVAL);
}

static void test_data_graphql_auth_and_limits(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(&cfg);
    assert_true(cfg.data.graphql_auth);
    assert_int_equal(cfg.data.graphql_max_depth, 15);
    assert_int_equal(cfg.data.graphql_max_fields, 1000);
    assert_int_equal(cfg.data.graphql_max_ms, 250);
    assert_int_equal(cfg.data.read_budget_ms_per_s, 200);
    assert_int_equal(load_text(&cfg,
                               "[data]\ngraphql_auth = false\ngraphql_max_depth = 100\n"
                               "graphql_max_fields = 1\ngraphql_max_ms = 600000\n",
                               err, sizeof(err), NULL, 0),
                     LMQ_OK);
    assert_false(cfg.data.graphql_auth);
    assert_int_equal(cfg.data.graphql_max_depth, 100);
    assert_int_equal(cfg.data.graphql_max_fields, 1);
    assert_int_equal(cfg.data.graphql_max_ms, 600000);
    assert_int_equal(lmq_config_set(&cfg, "data", "graphql_max_depth", "101", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_string_equal(err, "[data] graphql_max_depth: expected an integer 1..100, got \"101\"");
    assert_int_equal(lmq_config_set(&cfg, "data", "graphql_max_ms", "0", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_int_equal(lmq_config_set(&cfg, "data", "graphql_auth", "no", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_int_equal(lmq_config_set(&cfg, "data", "graphql_max_nope", "1", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "unknown key (expected models,"));
    assert_int_equal(cfg.data.graphql_max_depth, 100); /* a refused value changes nothing */
    assert_int_equal(cfg.data.graphql_max_ms, 600000);
    assert_false(cfg.data.graphql_auth);
    /* The read budget: 0 (off) to 1000 ms a second. */
    assert_int_equal(lmq_config_set(&cfg, "data", "read_budget_ms_per_s", "0", err, sizeof(err)),
                     LMQ_OK);
    assert_int_equal(cfg.data.read_budget_ms_per_s, 0);
    assert_int_equal(lmq_config_set(&cfg, "data", "read_budget_ms_per_s", "1000", err, sizeof(err)),
                     LMQ_OK);
    assert_int_equal(cfg.data.read_budget_ms_per_s, 1000);
    assert_int_equal(lmq_config_set(&cfg, "data", "read_budget_ms_per_s", "1001", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_string_equal(err, "[data] read_budget_ms_per_s: expected an integer 0..1000 (0: no "
                             "budget), got \"1001\"");
    assert_int_equal(lmq_config_set(&cfg, "data", "read_budget_ms_per_s", "-1", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_int_equal(cfg.data.read_budget_ms_per_s, 1000);
}

static void test_small_error_buffer_is_terminated(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[8];
    lmq_config_defaults(&cfg);
    assert_int_equal(lmq_config_set(&cfg, "limits", "max_inflight", "no", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_string_equal(err, "[limits");
}

static void test_mqtt_first_key_replaces_later_keys_append(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    const char *text = "[server]\n"
                       "mqtt = 10.0.0.1:1, [::1]:2\n"
                       "mqtt = localhost:0\n";
    assert_int_equal(load_text(&cfg, text, err, sizeof(err), NULL, 0), 0);
    assert_int_equal(cfg.mqtt_count, 3);
    assert_string_equal(cfg.mqtt[0].host, "10.0.0.1");
    assert_int_equal(cfg.mqtt[0].port, 1);
    assert_string_equal(cfg.mqtt[1].host, "::1");
    assert_int_equal(cfg.mqtt[1].port, 2);
    assert_string_equal(cfg.mqtt[2].host, "127.0.0.1");
    assert_int_equal(cfg.mqtt[2].port, 0);

    /* Setting the key directly (as the first --mqtt does) replaces the list. */
    assert_int_equal(lmq_config_set(&cfg, "server", "mqtt", "127.0.0.2:5", err, sizeof(err)), 0);
    assert_int_equal(cfg.mqtt_count, 1);
    assert_string_equal(cfg.mqtt[0].host, "127.0.0.2");
    assert_int_equal(lmq_config_append_listeners(&cfg, "127.0.0.3:6", err, sizeof(err)), 0);
    assert_int_equal(cfg.mqtt_count, 2);
    assert_int_equal(cfg.mqtt[1].port, 6);
}

static void test_mqtt_listener_count_is_bounded(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES];
    char list[512];
    size_t used = 0;
    lmq_config_defaults(&cfg);
    for (int i = 0; i < LMQ_LISTENERS_MAX; i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s127.0.0.1:%d", i ? "," : "", i);
        assert_true(n > 0 && (size_t)n < sizeof(list) - used);
        used += (size_t)n;
    }
    assert_int_equal(lmq_config_set(&cfg, "server", "mqtt", list, err, sizeof(err)), 0);
    assert_int_equal(cfg.mqtt_count, LMQ_LISTENERS_MAX);
    assert_int_equal(lmq_config_append_listeners(&cfg, "127.0.0.1:99", err, sizeof(err)),
                     LMQ_EINVAL);
    assert_non_null(strstr(err, "[server] mqtt: at most"));
    assert_int_equal(cfg.mqtt_count, LMQ_LISTENERS_MAX);

    snprintf(list + used, sizeof(list) - used, ",127.0.0.1:99");
    lmq_config_defaults(&cfg);
    assert_int_equal(lmq_config_set(&cfg, "server", "mqtt", list, err, sizeof(err)), LMQ_EINVAL);
    assert_int_equal(cfg.mqtt_count, 1);
    assert_int_equal(cfg.mqtt[0].port, 1883);
}

struct listen_case {
    const char *text;
    const char *host; /* NULL: must be refused */
    uint16_t port;
};

static const struct listen_case listen_cases[] = {
    {"127.0.0.1:1883", "127.0.0.1", 1883},
    {"0.0.0.0:0", "0.0.0.0", 0},
    {"localhost:65535", "127.0.0.1", 65535},
    {"[::1]:1883", "::1", 1883},
    {"[::]:0", "::", 0},
    {"[2001:DB8:0:0::1]:8883", "2001:db8::1", 8883},
    {"[::ffff:10.0.0.1]:1", "::ffff:10.0.0.1", 1},
    {"127.0.0.1:65536", NULL, 0},
    {"127.0.0.1:-1", NULL, 0},
    {"127.0.0.1:", NULL, 0},
    {"127.0.0.1:80x", NULL, 0},
    {"127.0.0.1: 80", NULL, 0},
    {"127.0.0.1:99999999999999999999999", NULL, 0},
    {"127.0.0.1", NULL, 0},
    {":1883", NULL, 0},
    {"example.com:1883", "example.com", 1883},
    {"broker-1.example.COM.:8883", "broker-1.example.COM.", 8883},
    {"mqtt:1", "mqtt", 1},
    {"-bad.example:1883", NULL, 0},
    {"bad-.example:1883", NULL, 0},
    {"a..b:1883", NULL, 0},
    {"bad_host:1883", NULL, 0},
    {"[example.com]:1883", NULL, 0},
    {"1.2.3.4.5:1883", NULL, 0},
    {"1234:1883", NULL, 0},
    {"x.0123456789012345678901234567890123456789012345678901234567890123:1", NULL, 0},
    {"1.2.3:1883", NULL, 0},
    {"256.1.1.1:1883", NULL, 0},
    {"::1:1883", NULL, 0},
    {"[::1:1883", NULL, 0},
    {"[::1]1883", NULL, 0},
    {"[::1]:", NULL, 0},
    {"[]:1883", NULL, 0},
    {"[127.0.0.1]:1883", NULL, 0},
    {"[fe80::1%eth0]:1883", NULL, 0},
    {"", NULL, 0},
};

static void test_listen_addresses_ipv4_ipv6_and_bad_ports(void **state)
{
    (void)state;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(listen_cases); i++) {
        const struct listen_case *c = &listen_cases[i];
        struct lmq_listen_addr addr = {.host = "untouched", .port = 7};
        char err[TEST_ERR_BYTES] = "";
        int rc = lmq_config_parse_listen(c->text, &addr, err, sizeof(err));
        if (c->host != NULL) {
            if (rc != 0 || strcmp(addr.host, c->host) != 0 || addr.port != c->port) {
                print_error("\"%s\": rc %d host %s port %u err %s\n", c->text, rc, addr.host,
                            addr.port, err);
                fail();
            }
        } else if (rc != LMQ_EINVAL || strstr(err, "got \"") == NULL ||
                   strcmp(addr.host, "untouched") != 0) {
            print_error("\"%s\" accepted or bad message: rc %d err %s\n", c->text, rc, err);
            fail();
        }
    }
}

static void test_host_name_syntax(void **state)
{
    (void)state;
    char longest[LMQ_HOST_NAME_MAX_CHARS + 2];
    /* 63-character labels and dots up to exactly 253 characters. */
    memset(longest, 'a', LMQ_HOST_NAME_MAX_CHARS);
    for (size_t i = 63; i < LMQ_HOST_NAME_MAX_CHARS; i += 64) {
        longest[i] = '.';
    }
    longest[LMQ_HOST_NAME_MAX_CHARS] = '\0';
    assert_true(lmq_host_name_valid(longest));
    longest[LMQ_HOST_NAME_MAX_CHARS] = 'a';
    longest[LMQ_HOST_NAME_MAX_CHARS + 1] = '\0';
    assert_false(lmq_host_name_valid(longest));
    assert_true(lmq_host_name_valid("a"));
    assert_true(lmq_host_name_valid("x1.example."));
    assert_true(lmq_host_name_valid("1a.example"));
    assert_false(lmq_host_name_valid(""));
    assert_false(lmq_host_name_valid("."));
    assert_false(lmq_host_name_valid("example..com"));
    assert_false(lmq_host_name_valid("ex ample"));
    assert_false(lmq_host_name_valid("10.0.0.1"));
    assert_false(lmq_host_name_valid("caf\xc3\xa9.example"));
}

static void test_resolve_numeric_localhost_and_names(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    char err[TEST_ERR_BYTES] = "";
    assert_int_equal(lmq_resolve("127.0.0.1", 1883, &ss, err, sizeof(err)), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 1883);
    assert_int_equal(lmq_resolve("::1", 8, &ss, err, sizeof(err)), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8);
    assert_int_equal(lmq_resolve("localhost", 2, &ss, err, sizeof(err)), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    /* Through getaddrinfo: /etc/hosts names localhost, and its look-up ignores case. */
    assert_int_equal(lmq_resolve("LOCALHOST", 3, &ss, err, sizeof(err)), 0);
    assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    assert_int_equal(lmq_resolve("bad_host", 1, &ss, err, sizeof(err)), LMQ_EINVAL);
    assert_string_equal(err, "not an address or host name");
}

static void test_listener_names_resolve_once_to_addresses(void **state)
{
    (void)state;
    struct lmq_config cfg;
    char err[TEST_ERR_BYTES] = "";
    lmq_config_defaults(&cfg);
    assert_int_equal(
        lmq_config_set(&cfg, "server", "mqtt", "LOCALHOST:1, 10.0.0.1:2", err, sizeof(err)), 0);
    assert_string_equal(cfg.mqtt[0].host, "LOCALHOST");
    assert_int_equal(lmq_config_resolve_listeners(&cfg, err, sizeof(err)), 0);
    assert_true(strcmp(cfg.mqtt[0].host, "127.0.0.1") == 0 || strcmp(cfg.mqtt[0].host, "::1") == 0);
    assert_int_equal(cfg.mqtt[0].port, 1);
    assert_string_equal(cfg.mqtt[1].host, "10.0.0.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_design),
        cmocka_unit_test(test_host_name_syntax),
        cmocka_unit_test(test_resolve_numeric_localhost_and_names),
        cmocka_unit_test(test_listener_names_resolve_once_to_addresses),
        cmocka_unit_test(test_every_key_is_parsed_from_file),
        cmocka_unit_test(test_per_address_login_limits_defaults_keys_and_bounds),
        cmocka_unit_test(test_session_expiry_accepts_never),
        cmocka_unit_test(test_http_listener_is_one_address_and_port_zero_is_allowed),
        cmocka_unit_test(test_set_leaves_neighbouring_fields_alone),
        cmocka_unit_test(test_auditors_are_a_list_of_identity_ids),
        cmocka_unit_test(test_admin_ids_are_a_bounded_list_of_identity_ids),
        cmocka_unit_test(test_chain_keys_defaults_and_bounds),
        cmocka_unit_test(test_bots_ids_add_up_over_lines_and_are_bounded),
        cmocka_unit_test(test_bots_validators_name_a_bot_once_per_type),
        cmocka_unit_test(test_queue_overflow_policy_and_rules),
        cmocka_unit_test(test_every_bad_value_names_line_and_key),
        cmocka_unit_test(test_error_message_quotes_the_bad_value),
        cmocka_unit_test(test_first_error_wins_over_later_ones),
        cmocka_unit_test(test_overlong_line_is_refused_not_split),
        cmocka_unit_test(test_missing_file_is_eio),
        cmocka_unit_test(test_auth_password_and_acl_files_must_be_readable),
        cmocka_unit_test(test_auth_token_leeway_and_ledger_quota),
        cmocka_unit_test(test_events_keep_and_new_job_keys),
        cmocka_unit_test(test_data_graphql_auth_and_limits),
        cmocka_unit_test(test_small_error_buffer_is_terminated),
        cmocka_unit_test(test_http_origins_and_trusted_proxies),
        cmocka_unit_test(test_http_lists_are_bounded),
        cmocka_unit_test(test_mqtt_first_key_replaces_later_keys_append),
        cmocka_unit_test(test_mqtt_listener_count_is_bounded),
        cmocka_unit_test(test_listen_addresses_ipv4_ipv6_and_bad_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
