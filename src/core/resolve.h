/*
 * Host names and addresses for listeners and clients: "HOST" is a numeric IPv4 or IPv6
 * address, localhost (127.0.0.1) or a DNS host name, resolved once when the listener starts or
 * the client is created.
 */
#ifndef LMQ_CORE_RESOLVE_H
#define LMQ_CORE_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A host name's length (RFC 1035: 253 characters, without a trailing dot). */
#define LMQ_HOST_NAME_MAX_CHARS 253

/*
 * True when name is a host name by RFC 1123's syntax: dot-separated labels of 1..63 letters,
 * digits and hyphens, not starting or ending with a hyphen, 253 characters at most, an optional
 * final dot, and not all digits and dots (that is a numeric address, or a mistyped one).
 */
bool lmq_host_name_valid(const char *name);

/*
 * Resolves host and port into addr. A numeric address is taken as it is; "localhost" is
 * 127.0.0.1; any other name goes through getaddrinfo() (blocking: call it at start-up, not on a
 * loop that serves clients) and the first IPv4 or IPv6 address it returns is used (the system's
 * preference order, RFC 6724). Returns 0, or LMQ_EINVAL with the reason in err (getaddrinfo's
 * message) when it does not resolve.
 */
int lmq_resolve(const char *host, uint16_t port, struct sockaddr_storage *addr, char *err,
                size_t err_len);

#endif
