/*
 * Socket addresses as text, for logs and for the addresses the server reports: the one place
 * the MQTT connections (broker/conn.c) and the HTTP server (net/http.c) name a peer.
 */
#ifndef LMQ_NET_ADDRESS_H
#define LMQ_NET_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "core/lmq.h"

/* Room for any numeric host net_address_host writes, NUL included. */
#define NET_ADDRESS_HOST_MAX_BYTES INET6_ADDRSTRLEN
/* Room for anything net_address_format writes, NUL included: "[" host "]:65535". */
#define NET_ADDRESS_TEXT_MAX_BYTES (NET_ADDRESS_HOST_MAX_BYTES + 8)

/* How net_address_format writes an IPv6 address. */
enum net_address_style {
    /* "::1:1883": how connections name their remote in the logs, kept as it always was. */
    NET_ADDRESS_BARE,
    /* "[::1]:1883": what can be pasted back as an address (the ready line, HTTP's bound). */
    NET_ADDRESS_BRACKETED,
};

/* The numeric host of an IPv4 or IPv6 socket address into host (cut at host_cap), and its
 * port; "?" and port 0 for any other family (an unknown peer is a zeroed address). */
void net_address_host(const struct sockaddr_storage *ss, char *host, size_t host_cap,
                      uint16_t *port);
/* "host:port" of ss into out (see net_address_style; "?:0" for another family). Returns 0, or
 * LMQ_ETOOBIG when out_cap was too small (out then holds what fitted). */
int net_address_format(const struct sockaddr_storage *ss, enum net_address_style style, char *out,
                       size_t out_cap);

#endif
