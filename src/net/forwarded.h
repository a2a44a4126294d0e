/*
 * Who an HTTP request came from when a reverse proxy stands in between: the TCP peer, unless it
 * is one of [http] trusted_proxies, in which case X-Forwarded-For says it. Only the proxy's own
 * entry is believed: the walk goes from the right (the entry the nearest proxy appended) and
 * stops at the first address that is not a trusted proxy, so addresses a client put in the
 * header itself (on the left) are never taken.
 */
#ifndef LMQ_FORWARDED_H
#define LMQ_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/lmq.h"

/* X-Forwarded-For entries examined at most (trusted hops skipped); more -> LMQ_EINVAL. */
#define NET_FORWARDED_HOPS_MAX 32

/* The raw IP of a socket address (4 or 16 bytes); false for other families. */
bool net_sockaddr_raw(const struct sockaddr_storage *ss, uint8_t out[16], uint8_t *len_bytes);
/* The key per-address accounting groups a raw IP (raw_len 4 or 16) under: an IPv4 address
 * (IPv4-mapped included) whole, an IPv6 address by its /64, since one host commonly holds a
 * whole /64 to pick source addresses from. Returns the key's length (4 or 8), 0 for another
 * raw_len. */
uint8_t net_address_group(const uint8_t *raw, uint8_t raw_len, uint8_t key[8]);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool net_sockaddr_is_loopback(const struct sockaddr_storage *ss);

/* True when ss is in [server] proxy_protocol (its connections start with a PROXY header). */
bool net_proxy_peer_listed(const struct lmq_http_config *cfg, const struct sockaddr_storage *ss);

/* True when ss is in [http] trusted_proxies. */
bool net_forwarded_peer_trusted(const struct lmq_http_config *cfg,
                                const struct sockaddr_storage *ss);

/*
 * The client behind a trusted proxy from the X-Forwarded-For values (header fields in the
 * order received, each a comma-separated list): the rightmost entry that is not a trusted
 * proxy, or the leftmost when all are. Entries may carry a port ("1.2.3.4:80", "[::1]:80").
 * Returns 0 with *client (port 0); LMQ_ENOTFOUND when there is no entry; LMQ_EINVAL when the
 * entry the walk stops at is not an IP address, or after NET_FORWARDED_HOPS_MAX entries.
 */
int net_forwarded_client(const struct lmq_http_config *cfg, const char *const *values,
                         const size_t *value_lens, size_t value_count,
                         struct sockaddr_storage *client) LMQ_WUR;

#endif
