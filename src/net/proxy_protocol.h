/*
 * The PROXY protocol (HAProxy, versions 1 and 2) header a TCP proxy sends before the client's
 * bytes, naming the client. Parsing only: no sockets, no allocation. Believed only from the
 * peers in [server] proxy_protocol (the caller checks).
 */
#ifndef LMQ_PROXY_PROTOCOL_H
#define LMQ_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/lmq.h"

/* Longest version 1 header, CRLF included (the specification's bound). */
#define NET_PROXY_V1_MAX_BYTES 107
/* Longest version 2 header we take: the 16 fixed bytes and addresses with up to ~500 bytes of
 * TLVs (ignored). Longer -> LMQ_EPROTO. */
#define NET_PROXY_V2_MAX_BYTES 536
/* Bytes a caller must be ready to buffer before a header is complete or refused. */
#define NET_PROXY_MAX_BYTES NET_PROXY_V2_MAX_BYTES

/*
 * Parses the header at the start of data. Returns LMQ_OK with *consumed (the header's bytes)
 * and, when the proxy named a TCP client over IPv4 or IPv6, *known = true and *client (with
 * its port); *known = false for v1 UNKNOWN and v2 LOCAL or other families. LMQ_EAGAIN: data is
 * a correct beginning, more is needed. LMQ_EPROTO: not a valid header (or too long).
 */
int net_proxy_parse(const uint8_t *data, size_t len, size_t *consumed, bool *known,
                    struct sockaddr_storage *client) LMQ_WUR;

#endif
