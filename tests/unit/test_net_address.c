/*
 * Socket addresses as text (net/address.h): the exact strings the logs ("remote") and the
 * ready line / HTTP bound address have always carried, for IPv4, IPv6 and unknown peers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <uv.h>

#include "net/address.h"

static struct sockaddr_storage v4(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    assert_int_equal(uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss), 0);
    return ss;
}

static struct sockaddr_storage v6(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    assert_int_equal(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss), 0);
    return ss;
}

static void test_ipv4_is_host_colon_port_in_both_styles(void **state)
{
    (void)state;
    struct sockaddr_storage ss = v4("203.0.113.7", 4711);
    char out[NET_ADDRESS_TEXT_MAX_BYTES];
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BARE, out, sizeof(out)), LMQ_OK);
    assert_string_equal(out, "203.0.113.7:4711");
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BRACKETED, out, sizeof(out)), LMQ_OK);
    assert_string_equal(out, "203.0.113.7:4711");
}

static void test_ipv6_is_bare_in_logs_and_bracketed_when_asked(void **state)
{
    (void)state;
    struct sockaddr_storage ss = v6("::1", 1883);
    char out[NET_ADDRESS_TEXT_MAX_BYTES];
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BARE, out, sizeof(out)), LMQ_OK);
    assert_string_equal(out, "::1:1883");
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BRACKETED, out, sizeof(out)), LMQ_OK);
    assert_string_equal(out, "[::1]:1883");
    ss = v6("::ffff:127.0.0.1", 8080);
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BRACKETED, out, sizeof(out)), LMQ_OK);
    assert_string_equal(out, "[::ffff:127.0.0.1]:8080");
}

static void test_longest_ipv6_fits_the_documented_room(void **state)
{
    (void)state;
    struct sockaddr_storage ss = v6("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);
    char out[NET_ADDRESS_TEXT_MAX_BYTES];
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BRACKETED, out, sizeof(out)), LMQ_OK);
    assert_string_equal(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void test_unknown_peer_is_question_mark_port_zero(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    char out[NET_ADDRESS_TEXT_MAX_BYTES];
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BARE, out, sizeof(out)), LMQ_OK);
    assert_string_equal(out, "?:0");
    ss.ss_family = AF_UNIX;
    char host[NET_ADDRESS_HOST_MAX_BYTES];
    uint16_t port = 7;
    net_address_host(&ss, host, sizeof(host), &port);
    assert_string_equal(host, "?");
    assert_int_equal(port, 0);
}

static void test_host_alone_and_its_port(void **state)
{
    (void)state;
    struct sockaddr_storage ss = v6("2001:db8::1", 443);
    char host[NET_ADDRESS_HOST_MAX_BYTES];
    uint16_t port = 0;
    net_address_host(&ss, host, sizeof(host), &port);
    assert_string_equal(host, "2001:db8::1");
    assert_int_equal(port, 443);
}

static void test_small_buffer_is_too_big_and_still_terminated(void **state)
{
    (void)state;
    struct sockaddr_storage ss = v4("192.0.2.10", 1883);
    char out[8];
    assert_int_equal(net_address_format(&ss, NET_ADDRESS_BARE, out, sizeof(out)), LMQ_ETOOBIG);
    assert_string_equal(out, "192.0.2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_is_host_colon_port_in_both_styles),
        cmocka_unit_test(test_ipv6_is_bare_in_logs_and_bracketed_when_asked),
        cmocka_unit_test(test_longest_ipv6_fits_the_documented_room),
        cmocka_unit_test(test_unknown_peer_is_question_mark_port_zero),
        cmocka_unit_test(test_host_alone_and_its_port),
        cmocka_unit_test(test_small_buffer_is_too_big_and_still_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
