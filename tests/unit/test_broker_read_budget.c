/* Unit tests of the data reads' budget (src/broker/read_budget.c, [data] read_budget_ms_per_s):
 * charging, 429 with Retry-After without running the route, one address apart from another,
 * refill, off at 0, and the bounded table of addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_internal.h"
#include "net/http.h"

/* What the fake route costs (busy loop time, µs) and how often it ran. */
static uint64_t route_cost_us;
static int route_calls;

static int fake_route(struct broker *b, const struct http_request *req, struct http_response *resp,
                      struct lmq_buf *out)
{
    LMQ_UNUSED(b), LMQ_UNUSED(req), LMQ_UNUSED(out);
    uint64_t end_ns = uv_hrtime() + route_cost_us * 1000u;
    while (uv_hrtime() < end_ns)
        ;
    resp->status = 200;
    route_calls++;
    return 0;
}

static int setup(void **state)
{
    struct broker *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    lmq_config_defaults(&b->cfg);
    assert_int_equal(uv_loop_init(&b->loop), 0);
    assert_int_equal(read_budget_init(b), 0);
    route_cost_us = 0;
    route_calls = 0;
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    struct broker *b = *state;
    read_budget_destroy(b);
    read_budget_destroy(b); /* safe twice */
    assert_int_equal(uv_loop_close(&b->loop), 0);
    free(b);
    return 0;
}

/* One request to path from IPv4 address ip (host order): its status, with Retry-After's value
 * in *retry_s (0 when none). */
static int request(struct broker *b, uint32_t ip, const char *path, unsigned *retry_s)
{
    struct sockaddr_storage peer = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&peer;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(ip);
    struct http_request req = {
        .method = "GET", .path = path, .path_len = strlen(path), .peer = &peer};
    struct http_response resp = {.status = 200};
    struct lmq_buf out = {NULL, 0, 0};
    assert_int_equal(read_budget_route(b, &req, &resp, &out, fake_route), 0);
    *retry_s = 0;
    if (resp.status == 429) {
        assert_non_null(resp.extra_headers);
        assert_int_equal(sscanf(resp.extra_headers, "Retry-After: %u\r\n", retry_s), 1);
        assert_non_null(out.data);
        const char *want = strcmp(path, "/graphql") == 0 ? "{\"errors\":[{\"message\":\"read "
                                                           "budget exceeded: retry after "
                                                         : "{\"error\":429,\"reason\":\"read "
                                                           "budget exceeded: retry after ";
        assert_memory_equal(out.data, want, strlen(want));
    }
    lmq_buf_release(&out);
    return resp.status;
}

static void test_an_address_in_debt_is_refused_until_it_paid_and_others_are_served(void **state)
{
    struct broker *b = *state;
    b->cfg.data.read_budget_ms_per_s = 100;
    const uint32_t a = 0x0a000001u, other = 0x0a000002u;
    unsigned retry_s = 0;
    route_cost_us = 150000; /* 150 ms: 50 ms of debt at 100 ms a second */
    assert_int_equal(request(b, a, "/graphql", &retry_s), 200);
    assert_int_equal(route_calls, 1);
    route_cost_us = 0;
    assert_int_equal(request(b, a, "/graphql", &retry_s), 429);
    assert_int_equal(retry_s, 1); /* 0.5 s rounded up */
    assert_int_equal(request(b, a, "/api/v1/x", &retry_s), 429);
    assert_int_equal(route_calls, 1); /* refusals run nothing */
    assert_int_equal(request(b, other, "/api/v1/x", &retry_s), 200);
    assert_int_equal(route_calls, 2);
    struct read_budget_stats st;
    read_budget_counts(b, &st);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.clients, 2);
    assert_true(st.spent_us >= 150000 && st.spent_us < 1000000);
    usleep(600000); /* the debt is paid after 0.5 s */
    assert_int_equal(request(b, a, "/graphql", &retry_s), 200);
    assert_int_equal(route_calls, 3);
}

static void test_retry_after_follows_the_debt_up_to_60_seconds_worth(void **state)
{
    struct broker *b = *state;
    b->cfg.data.read_budget_ms_per_s = 10;
    unsigned retry_s = 0;
    route_cost_us = 30000; /* 30 ms, 10 ms at hand: 20 ms of debt = 2 s at 10 ms a second */
    assert_int_equal(request(b, 1, "/openapi.json", &retry_s), 200);
    route_cost_us = 0;
    assert_int_equal(request(b, 1, "/openapi.json", &retry_s), 429);
    /* At least 2 s; more when a loaded machine ran the route longer than 30 ms. */
    assert_true(retry_s >= 2 && retry_s <= 10);
    b->cfg.data.read_budget_ms_per_s = 1; /* SIGHUP lowers it: the same debt is 20 s */
    assert_int_equal(request(b, 1, "/openapi.json", &retry_s), 429);
    assert_true(retry_s >= 20 && retry_s <= 60); /* the route ran 30 ms or a little more */
    route_cost_us = 100000; /* 99 ms of debt at 1 ms a second: kept at 60 ms, 60 s */
    assert_int_equal(request(b, 2, "/openapi.json", &retry_s), 200);
    route_cost_us = 0;
    assert_int_equal(request(b, 2, "/openapi.json", &retry_s), 429);
    assert_true(retry_s >= 59 && retry_s <= 61);
    b->cfg.data.read_budget_ms_per_s = 0; /* and 0 turns the budget off */
    assert_int_equal(request(b, 1, "/openapi.json", &retry_s), 200);
    assert_int_equal(route_calls, 3);
}

static void test_the_table_of_addresses_stays_bounded(void **state)
{
    struct broker *b = *state;
    b->cfg.data.read_budget_ms_per_s = 200;
    unsigned retry_s = 0;
    const uint32_t count = 70000; /* over READ_BUDGET_CLIENTS_MAX (65,536) */
    for (uint32_t i = 0; i < count; i++)
        assert_int_equal(request(b, 0x0b000000u + i, "/graphql", &retry_s), 200);
    struct read_budget_stats st;
    read_budget_counts(b, &st);
    assert_true(st.clients <= 65536u + 2u);
    assert_true(st.swept > 0);
    assert_int_equal(st.clients + st.swept, count);
    assert_int_equal(st.refused, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_an_address_in_debt_is_refused_until_it_paid_and_others_are_served, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_follows_the_debt_up_to_60_seconds_worth,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_table_of_addresses_stays_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
