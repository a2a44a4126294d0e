/*
 * X-Forwarded-For from trusted proxies (see forwarded.h). Never allocates; every walk is
 * bounded by NET_FORWARDED_HOPS_MAX.
 */
#include "net/forwarded.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Longest entry taken: "[ffff:...:ffff]:65535" with room to spare. */
#define FORWARDED_ENTRY_MAX_BYTES 64

bool net_sockaddr_raw(const struct sockaddr_storage *ss, uint8_t out[16], uint8_t *len_bytes)
{
    LMQ_ASSERT(ss != NULL && out != NULL && len_bytes != NULL);
    if (ss->ss_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        *len_bytes = 4;
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        *len_bytes = 16;
        return true;
    }
    return false;
}

uint8_t net_address_group(const uint8_t *raw, uint8_t raw_len, uint8_t key[8])
{
    LMQ_ASSERT(raw != NULL && key != NULL);
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (raw_len == 16 && memcmp(raw, v4_mapped, sizeof(v4_mapped)) == 0) {
        memcpy(key, raw + 12, 4);
        return 4;
    }
    if (raw_len == 4) {
        memcpy(key, raw, 4);
        return 4;
    }
    if (raw_len != 16)
        return 0;
    memcpy(key, raw, 8);
    return 8;
}

bool net_sockaddr_is_loopback(const struct sockaddr_storage *ss)
{
    static const struct lmq_ip_prefix loopbacks[] = {
        {.addr = {127}, .len_bytes = 4, .prefix_bits = 8},
        {.addr = {[15] = 1}, .len_bytes = 16, .prefix_bits = 128},
    };
    uint8_t raw[16];
    uint8_t len = 0;
    if (!net_sockaddr_raw(ss, raw, &len))
        return false;
    for (size_t i = 0; i < LMQ_ARRAY_LEN(loopbacks); i++) {
        if (lmq_ip_prefix_match(&loopbacks[i], raw, len)) /* IPv4-mapped counts as IPv4 */
            return true;
    }
    return false;
}

static bool forwarded_raw_trusted(const struct lmq_http_config *cfg, const uint8_t *raw, size_t len)
{
    LMQ_ASSERT(cfg->trusted_proxy_count <= LMQ_HTTP_PROXIES_MAX);
    for (size_t i = 0; i < cfg->trusted_proxy_count; i++) {
        if (lmq_ip_prefix_match(&cfg->trusted_proxies[i], raw, len))
            return true;
    }
    return false;
}

bool net_proxy_peer_listed(const struct lmq_http_config *cfg, const struct sockaddr_storage *ss)
{
    LMQ_ASSERT(cfg != NULL && ss != NULL);
    LMQ_ASSERT(cfg->proxy_protocol_count <= LMQ_HTTP_PROXIES_MAX);
    uint8_t raw[16];
    uint8_t len = 0;
    if (!net_sockaddr_raw(ss, raw, &len))
        return false;
    for (size_t i = 0; i < cfg->proxy_protocol_count; i++) {
        if (lmq_ip_prefix_match(&cfg->proxy_protocol[i], raw, len))
            return true;
    }
    return false;
}

bool net_forwarded_peer_trusted(const struct lmq_http_config *cfg,
                                const struct sockaddr_storage *ss)
{
    LMQ_ASSERT(cfg != NULL && ss != NULL);
    uint8_t raw[16];
    uint8_t len = 0;
    return net_sockaddr_raw(ss, raw, &len) && forwarded_raw_trusted(cfg, raw, len);
}

/* One entry (blanks trimmed by the caller) into a socket address; false when not an IP. */
static bool forwarded_parse(const char *s, size_t len, struct sockaddr_storage *out)
{
    char text[FORWARDED_ENTRY_MAX_BYTES];
    if (len == 0 || len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    char *host = text;
    if (text[0] == '[') { /* "[v6]" or "[v6]:port" */
        char *close = strchr(text, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return false;
        *close = '\0';
        host = text + 1;
    } else {
        char *colon = strchr(text, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL)
            *colon = '\0'; /* "v4:port" (a bare IPv6 address has several colons) */
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* The entry before end in value (after the previous comma), blanks trimmed; *next_end is
 * where the one before it ends (-1 when this was the first). */
static void forwarded_prev_entry(const char *value, long end, const char **entry, size_t *len,
                                 long *next_end)
{
    long start = end;
    while (start > 0 && value[start - 1] != ',')
        start--;
    *next_end = start - 1; /* the comma's index, or -1 */
    long a = start, b = end;
    while (a < b && (value[a] == ' ' || value[a] == '\t'))
        a++;
    while (b > a && (value[b - 1] == ' ' || value[b - 1] == '\t'))
        b--;
    *entry = value + a;
    *len = (size_t)(b - a);
}

int net_forwarded_client(const struct lmq_http_config *cfg, const char *const *values,
                         const size_t *value_lens, size_t value_count,
                         struct sockaddr_storage *client)
{
    LMQ_ASSERT(cfg != NULL && client != NULL);
    LMQ_ASSERT(values != NULL || value_count == 0);
    size_t hops = 0;
    bool found = false;
    for (size_t v = value_count; v-- > 0;) {
        long end = (long)value_lens[v];
        while (end >= 0) {
            const char *entry = NULL;
            size_t len = 0;
            long next_end = -1;
            forwarded_prev_entry(values[v], end, &entry, &len, &next_end);
            end = next_end;
            if (len == 0)
                continue; /* "a, , b" or an empty field: nothing to believe or skip */
            if (++hops > NET_FORWARDED_HOPS_MAX || !forwarded_parse(entry, len, client))
                return LMQ_EINVAL;
            found = true;
            uint8_t raw[16];
            uint8_t raw_len = 0;
            bool ok = net_sockaddr_raw(client, raw, &raw_len);
            LMQ_ASSERT(ok);
            if (!forwarded_raw_trusted(cfg, raw, raw_len))
                return LMQ_OK; /* the first address no trusted proxy vouches for */
        }
    }
    /* Every entry was a trusted proxy: the leftmost (last parsed) is the client. */
    return found ? LMQ_OK : LMQ_ENOTFOUND;
}
