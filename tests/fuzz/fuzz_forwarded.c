/*
 * libFuzzer target for who a request came from behind a proxy: the X-Forwarded-For walk
 * (src/net/forwarded.c), the PROXY protocol header (src/net/proxy_protocol.c) and the [http]
 * allowed_origins / trusted_proxies parsers (src/core/config.c). Input byte 0 picks the mode;
 * the rest is header fields separated by '\n' (walk), raw bytes (PROXY) or a config value
 * (parsers). Oracles:
 *   - every result is deterministic;
 *   - a client found is an IPv4 or IPv6 address with port 0 (X-Forwarded-For);
 *   - a PROXY header taken is within the input and the bound, and parses the same alone;
 *     "need more" only below the bound;
 *   - a parsed list stays within its bound; origins are lower-case, carry "://" and nothing
 *     after the host but a port; a failed parse leaves the configuration as it was.
 * fuzz-sources: src/net/forwarded.c src/net/proxy_protocol.c src/core/config.c
 * fuzz-sources: src/core/resolve.c src/core/log.c
 * fuzz-sources: src/core/config_webhooks.c src/core/config_plugins.c src/jobs/jobs_schedule.c
 * fuzz-sources: src/core/config_seal.c src/core/config_chain.c
 * fuzz-libs: -linih
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "net/forwarded.h"
#include "net/proxy_protocol.h"

#include "fuzz_check.h"

#define FUZZ_FIELDS_MAX 8
#define FUZZ_VALUE_MAX_BYTES 4096

static const char *const trusted_sets[] = {"", "127.0.0.1", "10.0.0.0/8, ::1", "0.0.0.0/0, ::/0",
                                           "192.0.2.0/24, 2001:db8::/32"};

static void fuzz_walk(const uint8_t *data, size_t size)
{
    struct lmq_config cfg;
    char err[256];
    lmq_config_defaults(&cfg);
    const char *set = trusted_sets[size > 0 ? data[0] % 5 : 0];
    CHECK(lmq_config_set(&cfg, "http", "trusted_proxies", set, err, sizeof(err)) == 0);
    const char *fields[FUZZ_FIELDS_MAX];
    size_t lens[FUZZ_FIELDS_MAX];
    size_t count = 0;
    size_t start = size > 0 ? 1 : 0;
    for (size_t i = start; i <= size && count < FUZZ_FIELDS_MAX; i++) {
        if (i == size || data[i] == '\n') {
            fields[count] = (const char *)data + start;
            lens[count] = i - start;
            count++;
            start = i + 1;
        }
    }
    struct sockaddr_storage a, b;
    int rc1 = net_forwarded_client(&cfg.http_trust, fields, lens, count, &a);
    int rc2 = net_forwarded_client(&cfg.http_trust, fields, lens, count, &b);
    CHECK(rc1 == rc2);
    CHECK(rc1 == LMQ_OK || rc1 == LMQ_EINVAL || rc1 == LMQ_ENOTFOUND);
    if (rc1 == LMQ_OK) {
        CHECK(a.ss_family == AF_INET || a.ss_family == AF_INET6);
        CHECK(memcmp(&a, &b, sizeof(a)) == 0);
        CHECK(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port == 0
                                     : ((struct sockaddr_in6 *)&a)->sin6_port == 0);
        (void)net_sockaddr_is_loopback(&a);
        (void)net_forwarded_peer_trusted(&cfg.http_trust, &a);
    }
}

static void fuzz_parse(const uint8_t *data, size_t size, const char *key)
{
    char value[FUZZ_VALUE_MAX_BYTES];
    size_t len = size < sizeof(value) - 1 ? size : sizeof(value) - 1;
    memcpy(value, data, len);
    value[len] = '\0';
    value[strcspn(value, "\n")] = '\0'; /* a config value is one line */
    struct lmq_config cfg, before;
    char err[512];
    lmq_config_defaults(&cfg);
    int rc = lmq_config_set(&cfg, "http", key, value, err, sizeof(err));
    CHECK(rc == 0 || (err[0] != '\0' && strchr(err, '\n') == NULL));
    before = cfg;
    int again = lmq_config_append_http_list(&cfg, key, value, err, sizeof(err));
    const struct lmq_http_config *h = &cfg.http_trust;
    CHECK(h->allowed_origin_count <= LMQ_HTTP_ORIGINS_MAX);
    CHECK(h->trusted_proxy_count <= LMQ_HTTP_PROXIES_MAX);
    if (again != 0) {
        CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
        CHECK(memcmp(&before, &cfg, sizeof(cfg)) == 0); /* unchanged on error */
    }
    if (rc != 0 || again != 0)
        return;
    for (size_t i = 0; i < h->allowed_origin_count; i++) {
        const char *o = h->allowed_origins[i];
        const char *sep = strstr(o, "://");
        CHECK(sep != NULL && sep[3] != '\0' && strchr(sep + 3, '/') == NULL);
        for (const char *p = o; *p != '\0'; p++)
            CHECK(!(*p >= 'A' && *p <= 'Z'));
    }
    for (size_t i = 0; i < h->trusted_proxy_count; i++) {
        const struct lmq_ip_prefix *p = &h->trusted_proxies[i];
        CHECK((p->len_bytes == 4 || p->len_bytes == 16) && p->prefix_bits <= p->len_bytes * 8);
        CHECK(lmq_ip_prefix_match(p, p->addr, p->len_bytes)); /* a prefix holds its own address */
    }
}

static void fuzz_proxy(const uint8_t *data, size_t size)
{
    size_t used = 0, used2 = 0;
    bool known = false, known2 = false;
    struct sockaddr_storage a, b;
    int rc = net_proxy_parse(data, size, &used, &known, &a);
    CHECK(rc == LMQ_OK || rc == LMQ_EAGAIN || rc == LMQ_EPROTO);
    if (rc == LMQ_EAGAIN)
        CHECK(size < NET_PROXY_MAX_BYTES);
    if (rc != LMQ_OK)
        return;
    CHECK(used > 0 && used <= size && used <= NET_PROXY_MAX_BYTES);
    CHECK(!known || a.ss_family == AF_INET || a.ss_family == AF_INET6);
    /* The header alone, without what followed it, reads the same. */
    CHECK(net_proxy_parse(data, used, &used2, &known2, &b) == LMQ_OK);
    CHECK(used2 == used && known2 == known && (!known || memcmp(&a, &b, sizeof(a)) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] % 4 == 3) {
        fuzz_proxy(data + 1, size - 1);
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        fuzz_walk(data + 1, size - 1);
        break;
    case 1:
        fuzz_parse(data + 1, size - 1, "allowed_origins");
        break;
    default:
        fuzz_parse(data + 1, size - 1, "trusted_proxies");
        break;
    }
    return 0;
}
