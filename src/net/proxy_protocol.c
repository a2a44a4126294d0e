/* PROXY protocol v1 and v2 headers (see proxy_protocol.h and haproxy's proxy-protocol.txt). */
#include "net/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t proxy_v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char proxy_v1_sig[] = "PROXY ";

/* A decimal port 0..65535 without sign or leading junk. */
static bool proxy_port(const char *s, uint16_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 5)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* "TCP4 SRC DST SPORT DPORT" or "TCP6 ..." (line without "PROXY " and CRLF) into client. */
static int proxy_v1_fields(char *line, bool *known, struct sockaddr_storage *client)
{
    char *fields[6];
    size_t n = 0;
    for (char *p = line; n < LMQ_ARRAY_LEN(fields);) { /* single spaces, as the spec says */
        fields[n++] = p;
        char *sp = strchr(p, ' ');
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    if (n >= 1 && strcmp(fields[0], "UNKNOWN") == 0) {
        *known = false; /* the rest of the line is to be ignored */
        return LMQ_OK;
    }
    bool v4 = n == 5 && strcmp(fields[0], "TCP4") == 0;
    bool v6 = n == 5 && strcmp(fields[0], "TCP6") == 0;
    uint16_t sport = 0, dport = 0;
    uint8_t dst[16];
    memset(client, 0, sizeof(*client));
    struct sockaddr_in *in4 = (struct sockaddr_in *)client;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)client;
    bool ok = (v4 || v6) && proxy_port(fields[3], &sport) && proxy_port(fields[4], &dport) &&
              inet_pton(v4 ? AF_INET : AF_INET6, fields[2], dst) == 1 &&
              inet_pton(v4 ? AF_INET : AF_INET6, fields[1],
                        v4 ? (void *)&in4->sin_addr : (void *)&in6->sin6_addr) == 1;
    if (!ok)
        return LMQ_EPROTO;
    if (v4) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(sport);
    } else {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(sport);
    }
    *known = true;
    return LMQ_OK;
}

static int proxy_v1(const uint8_t *data, size_t len, size_t *consumed, bool *known,
                    struct sockaddr_storage *client)
{
    size_t sig = sizeof(proxy_v1_sig) - 1;
    if (memcmp(data, proxy_v1_sig, LMQ_MIN(len, sig)) != 0)
        return LMQ_EPROTO;
    const uint8_t *cr = memchr(data, '\r', LMQ_MIN(len, (size_t)NET_PROXY_V1_MAX_BYTES));
    if (cr == NULL)
        return len >= NET_PROXY_V1_MAX_BYTES ? LMQ_EPROTO : LMQ_EAGAIN;
    size_t end = (size_t)(cr - data);
    if (end + 1 >= len)
        return LMQ_EAGAIN;
    if (end < sig || data[end + 1] != '\n')
        return LMQ_EPROTO;
    char line[NET_PROXY_V1_MAX_BYTES];
    size_t line_len = end - sig;
    memcpy(line, data + sig, line_len);
    line[line_len] = '\0';
    if (strlen(line) != line_len)
        return LMQ_EPROTO; /* a NUL inside */
    int rc = proxy_v1_fields(line, known, client);
    if (rc == LMQ_OK)
        *consumed = end + 2;
    return rc;
}

static int proxy_v2(const uint8_t *data, size_t len, size_t *consumed, bool *known,
                    struct sockaddr_storage *client)
{
    if (len < 16)
        return LMQ_EAGAIN;
    uint8_t version = data[12] >> 4, command = data[12] & 0x0F;
    size_t body = (size_t)data[14] << 8 | data[15];
    if (version != 2 || command > 1 || 16 + body > NET_PROXY_V2_MAX_BYTES)
        return LMQ_EPROTO;
    if (len < 16 + body)
        return LMQ_EAGAIN;
    const uint8_t *a = data + 16;
    uint8_t family = data[13];
    memset(client, 0, sizeof(*client));
    *known = false;
    if (command == 1 && family == 0x11) { /* PROXY, TCP over IPv4 */
        if (body < 12)
            return LMQ_EPROTO;
        struct sockaddr_in *in4 = (struct sockaddr_in *)client;
        in4->sin_family = AF_INET;
        memcpy(&in4->sin_addr, a, 4);
        memcpy(&in4->sin_port, a + 8, 2); /* network order on both sides */
        *known = true;
    } else if (command == 1 && family == 0x21) { /* PROXY, TCP over IPv6 */
        if (body < 36)
            return LMQ_EPROTO;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)client;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a, 16);
        memcpy(&in6->sin6_port, a + 32, 2);
        *known = true;
    }
    /* LOCAL (the proxy's own connection, a health check) or another family: no client. */
    *consumed = 16 + body;
    return LMQ_OK;
}

int net_proxy_parse(const uint8_t *data, size_t len, size_t *consumed, bool *known,
                    struct sockaddr_storage *client)
{
    LMQ_ASSERT(data != NULL || len == 0);
    LMQ_ASSERT(consumed != NULL && known != NULL && client != NULL);
    *consumed = 0;
    *known = false;
    if (len == 0)
        return LMQ_EAGAIN;
    if (data[0] == proxy_v2_sig[0]) {
        if (memcmp(data, proxy_v2_sig, LMQ_MIN(len, sizeof(proxy_v2_sig))) != 0)
            return LMQ_EPROTO;
        return proxy_v2(data, len, consumed, known, client);
    }
    return proxy_v1(data, len, consumed, known, client);
}
