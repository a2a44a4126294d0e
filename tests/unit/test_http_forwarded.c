/* X-Forwarded-For from trusted proxies (net/forwarded.h): whose word is taken, which entry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/config.h"
#include "core/lmq.h"
#include "net/forwarded.h"
#include "net/proxy_protocol.h"

#define TEST_ERR_BYTES 256

static void trust(struct lmq_config *cfg, const char *proxies)
{
    char err[TEST_ERR_BYTES];
    lmq_config_defaults(cfg);
    assert_int_equal(lmq_config_set(cfg, "http", "trusted_proxies", proxies, err, sizeof(err)), 0);
}

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
        ss.ss_family = AF_INET6;
    }
    return ss;
}

/* The client for these X-Forwarded-For fields (NULL-terminated), as text; or "" with *rc. */
static const char *client_of(const struct lmq_config *cfg, const char *const *fields, int *rc)
{
    static char text[64];
    size_t lens[8];
    size_t count = 0;
    while (fields[count] != NULL) {
        lens[count] = strlen(fields[count]);
        count++;
    }
    struct sockaddr_storage ss;
    *rc = net_forwarded_client(&cfg->http_trust, fields, lens, count, &ss);
    text[0] = '\0';
    if (*rc != LMQ_OK)
        return text;
    const void *raw = ss.ss_family == AF_INET
                          ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                          : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    assert_non_null(inet_ntop(ss.ss_family, raw, text, sizeof(text)));
    return text;
}

static void test_rightmost_untrusted_entry_is_the_client(void **state)
{
    (void)state;
    struct lmq_config cfg;
    trust(&cfg, "127.0.0.1, 10.0.0.0/8");
    int rc = 0;
    /* The client claimed 127.0.0.1 itself; the proxy appended what it saw. */
    const char *spoof[] = {"127.0.0.1, 203.0.113.7", NULL};
    assert_string_equal(client_of(&cfg, spoof, &rc), "203.0.113.7");
    /* Trusted hops on the right are skipped; blanks and ports are tolerated. */
    const char *chain[] = {" 198.51.100.1 ,203.0.113.7:4711 , 10.1.1.1,10.2.2.2 ", NULL};
    assert_string_equal(client_of(&cfg, chain, &rc), "203.0.113.7");
    /* Several fields are one list, in order. */
    const char *fields[] = {"127.0.0.1", "203.0.113.9", "10.0.0.1", NULL};
    assert_string_equal(client_of(&cfg, fields, &rc), "203.0.113.9");
    /* Every entry trusted: the leftmost is the client. */
    const char *all[] = {"10.0.0.5, 127.0.0.1", NULL};
    assert_string_equal(client_of(&cfg, all, &rc), "10.0.0.5");
    /* IPv6, bracketed with a port or bare. */
    const char *v6[] = {"[2001:db8::1]:443", NULL};
    assert_string_equal(client_of(&cfg, v6, &rc), "2001:db8::1");
    const char *v6b[] = {"2001:db8::2", NULL};
    assert_string_equal(client_of(&cfg, v6b, &rc), "2001:db8::2");
    assert_int_equal(rc, LMQ_OK);
}

static void test_missing_and_bad_entries(void **state)
{
    (void)state;
    struct lmq_config cfg;
    trust(&cfg, "127.0.0.1");
    int rc = 0;
    const char *none[] = {NULL};
    (void)client_of(&cfg, none, &rc);
    assert_int_equal(rc, LMQ_ENOTFOUND);
    const char *blank[] = {" , ", NULL};
    (void)client_of(&cfg, blank, &rc);
    assert_int_equal(rc, LMQ_ENOTFOUND);
    /* The walk stops at junk where the client should be... */
    const char *junk[] = {"203.0.113.7, unknown", NULL};
    (void)client_of(&cfg, junk, &rc);
    assert_int_equal(rc, LMQ_EINVAL);
    /* ...but junk the client put further left is never reached. */
    const char *left_junk[] = {"<script>, 203.0.113.7", NULL};
    assert_string_equal(client_of(&cfg, left_junk, &rc), "203.0.113.7");
    const char *bad_bracket[] = {"[2001:db8::1", NULL};
    (void)client_of(&cfg, bad_bracket, &rc);
    assert_int_equal(rc, LMQ_EINVAL);
}

static void test_trusted_hops_are_bounded(void **state)
{
    (void)state;
    struct lmq_config cfg;
    trust(&cfg, "127.0.0.1");
    char list[NET_FORWARDED_HOPS_MAX * 12 + 16] = "";
    size_t used = 0;
    for (int i = 0; i <= NET_FORWARDED_HOPS_MAX; i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s127.0.0.1", i ? "," : "");
    const char *fields[] = {list, NULL};
    int rc = 0;
    (void)client_of(&cfg, fields, &rc);
    assert_int_equal(rc, LMQ_EINVAL);
}

static void test_peer_trust_and_loopback(void **state)
{
    (void)state;
    struct lmq_config cfg;
    trust(&cfg, "127.0.0.1, 2001:db8::/32");
    struct sockaddr_storage lo = addr("127.0.0.1"), lo2 = addr("127.0.0.2");
    struct sockaddr_storage mapped = addr("::ffff:127.0.0.1"), v6 = addr("2001:db8::9");
    struct sockaddr_storage one = addr("::1"), net = addr("203.0.113.7");
    assert_true(net_forwarded_peer_trusted(&cfg.http_trust, &lo));
    assert_true(net_forwarded_peer_trusted(&cfg.http_trust, &mapped));
    assert_true(net_forwarded_peer_trusted(&cfg.http_trust, &v6));
    assert_false(net_forwarded_peer_trusted(&cfg.http_trust, &lo2));
    assert_false(net_forwarded_peer_trusted(&cfg.http_trust, &net));
    assert_true(net_sockaddr_is_loopback(&lo2));
    assert_true(net_sockaddr_is_loopback(&mapped));
    assert_true(net_sockaddr_is_loopback(&one));
    assert_false(net_sockaddr_is_loopback(&net));
    assert_false(net_sockaddr_is_loopback(&v6));
    /* Nothing trusted by default. */
    lmq_config_defaults(&cfg);
    assert_false(net_forwarded_peer_trusted(&cfg.http_trust, &lo));
}

/* Parses a PROXY header; returns the result code, the bytes used and the client as text. */
static int proxy(const void *data, size_t len, size_t *used, char *text, size_t cap)
{
    bool known = false;
    struct sockaddr_storage ss;
    int rc = net_proxy_parse(data, len, used, &known, &ss);
    text[0] = '\0';
    if (rc == LMQ_OK && known) {
        const void *raw = ss.ss_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        uint16_t port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
        char ip[64];
        assert_non_null(inet_ntop(ss.ss_family, raw, ip, sizeof(ip)));
        snprintf(text, cap, "%s %u", ip, port);
    }
    return rc;
}

/* Per-address accounting keys: IPv4 (mapped too) whole, IPv6 by its /64. */
static void test_address_groups(void **state)
{
    (void)state;
    uint8_t key[8];
    const uint8_t v4[4] = {192, 0, 2, 7};
    const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, 192, 0, 2, 7};
    const uint8_t v6a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, [15] = 1};
    const uint8_t v6b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, [8] = 0xff, [15] = 9};
    assert_int_equal(net_address_group(v4, 4, key), 4);
    assert_memory_equal(key, v4, 4);
    assert_int_equal(net_address_group(mapped, 16, key), 4);
    assert_memory_equal(key, v4, 4);
    uint8_t other[8];
    assert_int_equal(net_address_group(v6a, 16, key), 8);
    assert_int_equal(net_address_group(v6b, 16, other), 8);
    assert_memory_equal(key, other, 8); /* one /64 */
    assert_int_equal(net_address_group(v4, 5, key), 0);
}

static void test_proxy_protocol_v1(void **state)
{
    (void)state;
    char text[80];
    size_t used = 0;
    const char v4[] = "PROXY TCP4 203.0.113.7 127.0.0.1 4711 1883\r\nMQTT";
    assert_int_equal(proxy(v4, sizeof(v4) - 1, &used, text, sizeof(text)), LMQ_OK);
    assert_string_equal(text, "203.0.113.7 4711");
    assert_int_equal(used, sizeof(v4) - 1 - 4); /* what follows is the client's */
    const char v6[] = "PROXY TCP6 2001:db8::1 ::1 443 1883\r\n";
    assert_int_equal(proxy(v6, sizeof(v6) - 1, &used, text, sizeof(text)), LMQ_OK);
    assert_string_equal(text, "2001:db8::1 443");
    const char unknown[] = "PROXY UNKNOWN whatever\r\n";
    assert_int_equal(proxy(unknown, sizeof(unknown) - 1, &used, text, sizeof(text)), LMQ_OK);
    assert_string_equal(text, ""); /* no client named */
    /* Incomplete: wait; wrong: refuse. */
    assert_int_equal(proxy(v4, 20, &used, text, sizeof(text)), LMQ_EAGAIN);
    assert_int_equal(proxy("PRO", 3, &used, text, sizeof(text)), LMQ_EAGAIN);
    static const char *const bad[] = {
        "PROXY TCP4 203.0.113.7 127.0.0.1 4711\r\n",       /* a field missing */
        "PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n",        /* family mismatch */
        "PROXY TCP4 203.0.113.7 127.0.0.1 70000 1883\r\n", /* port out of range */
        "PROXY TCP4  203.0.113.7 127.0.0.1 1 2\r\n",       /* two spaces */
        "PROXY TCP4 203.0.113.7 127.0.0.1 1 2\rX",         /* CR without LF */
        "\x10\x0c\x00\x04MQTT\x05\x02\x00\x3c\x00\x00",    /* a CONNECT, no header */
    };
    for (size_t i = 0; i < LMQ_ARRAY_LEN(bad); i++)
        assert_int_equal(proxy(bad[i], strlen(bad[i]), &used, text, sizeof(text)), LMQ_EPROTO);
    char endless[NET_PROXY_V1_MAX_BYTES + 8];
    memset(endless, 'A', sizeof(endless));
    memcpy(endless, "PROXY ", 6);
    assert_int_equal(proxy(endless, sizeof(endless), &used, text, sizeof(text)), LMQ_EPROTO);
}

static void test_proxy_protocol_v2(void **state)
{
    (void)state;
    char text[80];
    size_t used = 0;
    uint8_t h[64] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                     0x54, 0x0A, 0x21, 0x11, 0x00, 12,   198,  51,   100,  1,
                     127,  0,    0,    1,    0x12, 0x67, 0x07, 0x5B};
    assert_int_equal(proxy(h, 28, &used, text, sizeof(text)), LMQ_OK);
    assert_string_equal(text, "198.51.100.1 4711");
    assert_int_equal(used, 28);
    assert_int_equal(proxy(h, 27, &used, text, sizeof(text)), LMQ_EAGAIN);
    h[12] = 0x20; /* LOCAL: no client */
    assert_int_equal(proxy(h, 28, &used, text, sizeof(text)), LMQ_OK);
    assert_string_equal(text, "");
    h[12] = 0x31; /* version 3 */
    assert_int_equal(proxy(h, 28, &used, text, sizeof(text)), LMQ_EPROTO);
    h[12] = 0x21;
    h[15] = 8; /* too short for two IPv4 addresses and ports */
    assert_int_equal(proxy(h, 28, &used, text, sizeof(text)), LMQ_EPROTO);
    h[14] = 0xFF; /* longer than we take */
    assert_int_equal(proxy(h, 28, &used, text, sizeof(text)), LMQ_EPROTO);
    h[5] = 0x00; /* a broken signature */
    assert_int_equal(proxy(h, 28, &used, text, sizeof(text)), LMQ_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rightmost_untrusted_entry_is_the_client),
        cmocka_unit_test(test_missing_and_bad_entries),
        cmocka_unit_test(test_trusted_hops_are_bounded),
        cmocka_unit_test(test_peer_trust_and_loopback),
        cmocka_unit_test(test_address_groups),
        cmocka_unit_test(test_proxy_protocol_v1),
        cmocka_unit_test(test_proxy_protocol_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
