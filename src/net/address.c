/* Socket addresses as text (see address.h). Never allocates. */
#include "net/address.h"

#include <stdbool.h>
#include <stdio.h>

#include <uv.h>

void net_address_host(const struct sockaddr_storage *ss, char *host, size_t host_cap,
                      uint16_t *port)
{
    LMQ_ASSERT(ss != NULL && host != NULL && port != NULL);
    LMQ_ASSERT(host_cap > 1);
    snprintf(host, host_cap, "?");
    *port = 0;
    if (ss->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)ss, host, host_cap);
        *port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    } else if (ss->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)ss, host, host_cap);
        *port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    }
}

int net_address_format(const struct sockaddr_storage *ss, enum net_address_style style, char *out,
                       size_t out_cap)
{
    LMQ_ASSERT(out != NULL && out_cap > 0);
    LMQ_ASSERT(style == NET_ADDRESS_BARE || style == NET_ADDRESS_BRACKETED);
    char host[NET_ADDRESS_HOST_MAX_BYTES];
    uint16_t port = 0;
    net_address_host(ss, host, sizeof(host), &port);
    bool brackets = style == NET_ADDRESS_BRACKETED && ss->ss_family == AF_INET6;
    int n = snprintf(out, out_cap, "%s%s%s:%u", brackets ? "[" : "", host, brackets ? "]" : "",
                     (unsigned)port);
    return n > 0 && (size_t)n < out_cap ? LMQ_OK : LMQ_ETOOBIG;
}
