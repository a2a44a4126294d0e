/*
 * The broker's HTTP server (the [http] listeners): the routes /healthz and /version, /metrics
 * (metrics.c), /mqtt (websocket.c), /auth/... (identity.c) and /ledger/... (ledger_http.c),
 * /graphql, /graphiql, /api/v1 and /openapi.json (src/data), /admin/v1 (admin.c); who an HTTP
 * request's client is, for per-address limits; the HTTP servers' TLS failures.
 */
#include "broker/broker_internal.h"
#include "chain/chain.h"
#include "data/data.h"

#include <string.h>

#include "net/forwarded.h"
#include "net/http.h"

/* What X-Forwarded-For (every field, in order) of a request from a trusted proxy names as its
 * client: see net_forwarded_client(). */
int broker_http_forwarded_client(const struct lmq_http_config *h, const struct http_request *req,
                                 struct sockaddr_storage *client)
{
    const char *values[HTTP_HEADERS_MAX];
    size_t lens[HTTP_HEADERS_MAX];
    size_t count = 0;
    while (count < HTTP_HEADERS_MAX &&
           http_request_header_at(req, "X-Forwarded-For", count, &values[count], &lens[count]))
        count++;
    return net_forwarded_client(h, values, lens, count, client);
}

const struct sockaddr *broker_http_client(const struct broker *b, const struct http_request *req,
                                          struct sockaddr_storage *storage)
{
    LMQ_ASSERT(b != NULL && req != NULL && storage != NULL);
    if (req->peer == NULL)
        return NULL;
    const struct lmq_http_config *h = &b->cfg.http_trust;
    if (net_forwarded_peer_trusted(h, req->peer) &&
        broker_http_forwarded_client(h, req, storage) == LMQ_OK)
        return (const struct sockaddr *)storage;
    return (const struct sockaddr *)req->peer;
}

uint64_t broker_http_tls_failures(const struct broker *b)
{
    return http_server_tls_failures(b->http) + http_server_tls_failures(b->https);
}

int broker_http_route(void *ctx, const struct http_request *req, struct http_response *resp,
                      struct lmq_buf *out)
{
    struct broker *b = ctx;
    LMQ_ASSERT(b != NULL && req != NULL);
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    const char *path = req->path;
    size_t len = req->path_len;
    bool healthz = len == 8 && memcmp(path, "/healthz", 8) == 0;
    bool metrics = len == 8 && memcmp(path, "/metrics", 8) == 0;
    bool version = len == 8 && memcmp(path, "/version", 8) == 0;
    if (len == 5 && memcmp(path, "/mqtt", 5) == 0)
        return websocket_route(b, req, resp, out);
    if ((len > 6 && memcmp(path, "/auth/", 6) == 0) ||
        (len > 8 && memcmp(path, "/ledger/", 8) == 0))
        return pipeline_http_route(b, req, resp, out);
    if (admin_path(req)) /* authenticated and few: no read budget (docs/SECURITY.md) */
        return admin_route(b, req, resp, out);
    /* The data layer's routes run under the client's read budget (read_budget.c). */
    if (data_graphql_path(req))
        return read_budget_route(b, req, resp, out, data_graphql_route);
    if (data_graphiql_path(req))
        return read_budget_route(b, req, resp, out, data_graphiql_route);
    if (data_http_path(req))
        return read_budget_route(b, req, resp, out, data_http_route);
    if (len == 13 && memcmp(path, "/openapi.json", 13) == 0)
        return read_budget_route(b, req, resp, out, data_openapi_route);
    if (!healthz && !metrics && !version) {
        resp->status = 404;
        return 0;
    }
    if (!get) {
        resp->status = 405;
        resp->allow = "GET, HEAD";
        return 0;
    }
    resp->status = 200;
    resp->content_type = "application/json";
    if (healthz) { /* "starting" is answered by lifecycle.c while recovery runs */
        bool draining = b->stopping || b->draining;
        bool chain_down = false;
        const char *chain = chain_health(b, &chain_down);
        if (draining || chain_down)
            resp->status = 503;
        if (chain != NULL)
            return http_body_printf(out, "{\"chain\":\"%s\",\"status\":\"%s\"}", chain,
                                    draining ? "draining" : "ready");
        return http_body_printf(out, "{\"status\":\"%s\"}", draining ? "draining" : "ready");
    }
    if (version)
        return http_body_printf(out, "{\"version\":\"%s\"}", LMQ_VERSION);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return metrics_render(b, out);
}
