/*
 * Host names: syntax (RFC 1123) and resolution to one socket address (see resolve.h).
 */
#include "core/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

#include "core/lmq.h"

/* RFC 1035: a label is at most 63 octets. */
#define RESOLVE_LABEL_MAX_CHARS 63

static bool resolve__label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool lmq_host_name_valid(const char *name)
{
    LMQ_ASSERT(name != NULL);
    size_t len = strnlen(name, LMQ_HOST_NAME_MAX_CHARS + 2);
    if (len > 0 && name[len - 1] == '.') {
        len--; /* a fully qualified name's final dot */
    }
    if (len == 0 || len > LMQ_HOST_NAME_MAX_CHARS) {
        return false;
    }
    bool all_numeric = true;
    size_t label = 0;
    /* One pass over the characters, each checked once: bounded by len. */
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0 || name[i - 1] == '-') {
                return false;
            }
            label = 0;
            continue;
        }
        if (!resolve__label_char(c) || (label == 0 && c == '-') ||
            ++label > RESOLVE_LABEL_MAX_CHARS) {
            return false;
        }
        all_numeric = all_numeric && c >= '0' && c <= '9';
    }
    return label > 0 && name[len - 1] != '-' && !all_numeric;
}

/* Copies a getaddrinfo result with the port set into addr. */
static void resolve__copy(const struct addrinfo *ai, uint16_t port, struct sockaddr_storage *addr)
{
    memset(addr, 0, sizeof(*addr));
    LMQ_ASSERT(ai->ai_addrlen <= sizeof(*addr));
    memcpy(addr, ai->ai_addr, ai->ai_addrlen);
    if (ai->ai_family == AF_INET) {
        ((struct sockaddr_in *)addr)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
    }
}

int lmq_resolve(const char *host, uint16_t port, struct sockaddr_storage *addr, char *err,
                size_t err_len)
{
    LMQ_ASSERT(host != NULL && addr != NULL && err != NULL && err_len > 0);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (!lmq_host_name_valid(host)) {
        hints.ai_flags = AI_NUMERICHOST; /* an address, or neither */
    }
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        lmq_errf(err, err_len, "%s",
                 hints.ai_flags == AI_NUMERICHOST ? "not an address or host name"
                                                  : gai_strerror(rc));
        return LMQ_EINVAL;
    }
    const struct addrinfo *found = NULL;
    /* getaddrinfo's list is finite; the first IPv4 or IPv6 entry wins. */
    for (const struct addrinfo *ai = res; ai != NULL && found == NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) {
            found = ai;
        }
    }
    if (found != NULL) {
        resolve__copy(found, port, addr);
    } else {
        lmq_errf(err, err_len, "no IPv4 or IPv6 address");
    }
    freeaddrinfo(res);
    return found != NULL ? 0 : LMQ_EINVAL;
}
