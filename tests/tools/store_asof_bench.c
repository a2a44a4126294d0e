/*
 * What a read as of a checkpoint costs beside a latest read (docs/BENCHMARKS.md "Reads as of a
 * checkpoint"): a measurement, not a test, so ctest doesn't run it.
 * Run: ./build/tests/store_asof_bench [RESOURCES]   (default 100000)
 *
 * Writes RESOURCES resources of one model (amount = i % 1000, an x-index property), all created
 * at ledger indexes 0..R-1 and all updated at R..2R-1, by one author to one recipient, in a
 * temporary store (synchronous=OFF). Then times, on the reader connection, pages of 50 in
 * creation order starting at a random resource (latest; as of size R, i.e. before the updates,
 * for everything and for the recipient), one resource as of R, and an EQ filter on the indexed
 * property latest (an index range) and as of R (no index covers old versions: every resource
 * created before R is looked at). Prints p50 and p99 per read in microseconds; exit 1 when a
 * read fails or answers the wrong rows.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/lmq.h"
#include "store/store.h"

#define BENCH_BYTES(s) ((struct lmq_bytes){(const uint8_t *)(s), strlen(s)})
#define BENCH_AUTHOR "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define BENCH_READER "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
#define BENCH_MODEL "com.example.Payment"
#define BENCH_PAGE 50
#define BENCH_RUNS 200
#define BENCH_COMMIT_EVERY 20000
#define BENCH_RESOURCES_MAX 10000000

struct bench_commit {
    int calls, status;
};

static void bench_on_commit(void *arg, int status)
{
    struct bench_commit *c = arg;
    c->calls++;
    c->status = status;
}

static int bench_commit(uv_loop_t *loop, struct store *store)
{
    struct bench_commit c = {0, 0};
    if (store_commit(store, bench_on_commit, &c) != LMQ_OK)
        return -1;
    /* Each pass runs the loop once; a commit of 20,000 rows is done long before this bound. */
    for (int i = 0; i < 1000000 && c.calls == 0; i++)
        uv_run(loop, UV_RUN_ONCE);
    return c.calls == 1 ? c.status : -1;
}

/* The 64-character link of resource i: 'a' then i in hex for its creation, 'b' for its update. */
static void bench_link(char out[65], char kind, size_t i)
{
    int n = snprintf(out, 65, "%c%063zx", kind, i);
    LMQ_ASSERT(n == 64);
}

static int bench_write(uv_loop_t *loop, struct store *store, size_t resources)
{
    struct store_record idx = {.type = STORE_DATA_INDEX};
    idx.u.data_index.path = BENCH_BYTES("$.amount");
    if (store_write(store, &idx) != LMQ_OK)
        return -1;
    for (size_t k = 0; k < 2 * resources; k++) {
        size_t i = k % resources;
        char link[65], permalink[65], prev[65], body[64];
        bench_link(permalink, 'a', i);
        bench_link(prev, 'a', i);
        bench_link(link, k < resources ? 'a' : 'b', i);
        snprintf(body, sizeof(body), "{\"amount\":%zu,\"v\":%d}", i % 1000, k < resources ? 1 : 2);
        struct store_record rec = {.type = STORE_DATA_VERSION};
        rec.u.data_version = (struct store_rec_data_version){
            .ledger_index = k,
            .link = BENCH_BYTES(link),
            .permalink = BENCH_BYTES(permalink),
            .prevlink = k < resources ? BENCH_BYTES("") : BENCH_BYTES(prev),
            .model = BENCH_BYTES(BENCH_MODEL),
            .author = BENCH_BYTES(BENCH_AUTHOR),
            .recipient = BENCH_BYTES(BENCH_READER),
            .time = BENCH_BYTES("2026-12-07T00:00:00.000000000Z"),
            .body = BENCH_BYTES(body),
        };
        if (store_write(store, &rec) != LMQ_OK)
            return -1;
        if ((k + 1) % BENCH_COMMIT_EVERY == 0 && bench_commit(loop, store) != 0)
            return -1;
    }
    return bench_commit(loop, store);
}

/* Counts rows and checks each is the version the read asked for (v then). */
struct bench_rows {
    size_t count;
    int want_v;
    bool wrong;
};

static int bench_row(void *ctx, const struct store_data_row *r)
{
    struct bench_rows *b = ctx;
    char want[8], body[64];
    snprintf(want, sizeof(want), "\"v\":%d", b->want_v);
    snprintf(body, sizeof(body), "%.*s", (int)r->body.len, (const char *)r->body.data);
    b->count++;
    b->wrong |= strstr(body, want) == NULL;
    return 0;
}

static uint64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int bench_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

enum bench_kind { BENCH_PAGE_KIND, BENCH_ONE_KIND };

/* Runs q (or, for BENCH_ONE_KIND, one resource as of q->as_of_size) runs times from random
 * starting points; prints the line. -1 when a read fails or answers wrong rows. */
static int bench_run(struct store *store, const char *label, struct store_data_query *q,
                     enum bench_kind kind, size_t resources, size_t want_rows, int runs)
{
    uint64_t took[BENCH_RUNS];
    LMQ_ASSERT(runs > 0 && runs <= BENCH_RUNS);
    for (int i = 0; i < runs; i++) {
        size_t start = (size_t)rand() % (resources / 2);
        struct bench_rows rows = {.want_v = q->as_of ? 1 : 2};
        size_t count = 0;
        int rc;
        uint64_t t0 = bench_now_us();
        if (kind == BENCH_ONE_KIND) {
            char permalink[65];
            bench_link(permalink, 'a', start);
            bool found = false;
            rc = store_data_resource_at(store, BENCH_BYTES(permalink), q->reader, q->as_of_size,
                                        bench_row, &rows, &found);
            count = found ? 1 : 0;
        } else {
            q->has_cursor = q->filter_count == 0;
            q->cursor_created = start;
            rc = store_data_query(store, q, bench_row, &rows, &count);
        }
        took[i] = bench_now_us() - t0;
        if (rc != LMQ_OK || rows.wrong || count != want_rows) {
            fprintf(stderr, "%s: rc %d, %zu rows (want %zu), wrong version: %d\n", label, rc, count,
                    want_rows, rows.wrong);
            return -1;
        }
    }
    qsort(took, (size_t)runs, sizeof(took[0]), bench_cmp);
    printf("%-44s p50 %7" PRIu64 " us   p99 %7" PRIu64 " us   (%d reads)\n", label, took[runs / 2],
           took[(size_t)runs * 99 / 100], runs);
    return 0;
}

static int bench_reads(struct store *store, size_t resources)
{
    struct store_data_query q = {.model = BENCH_BYTES(BENCH_MODEL), .limit = BENCH_PAGE};
    int rc = bench_run(store, "page of 50, latest, everything", &q, BENCH_PAGE_KIND, resources,
                       BENCH_PAGE, BENCH_RUNS);
    q.as_of = true;
    q.as_of_size = resources;
    if (rc == 0)
        rc = bench_run(store, "page of 50, as of R, everything", &q, BENCH_PAGE_KIND, resources,
                       BENCH_PAGE, BENCH_RUNS);
    q.reader = BENCH_BYTES(BENCH_READER);
    if (rc == 0)
        rc = bench_run(store, "page of 50, as of R, one reader", &q, BENCH_PAGE_KIND, resources,
                       BENCH_PAGE, BENCH_RUNS);
    if (rc == 0)
        rc = bench_run(store, "one resource, as of R, one reader", &q, BENCH_ONE_KIND, resources, 1,
                       BENCH_RUNS);
    struct store_data_value v = {.type = STORE_DATA_INT, .i = 7};
    struct store_data_filter f = {
        .path = BENCH_BYTES("$.amount"), .op = STORE_DATA_EQ, .values = &v, .value_count = 1};
    q = (struct store_data_query){
        .model = BENCH_BYTES(BENCH_MODEL), .filters = &f, .filter_count = 1, .limit = BENCH_PAGE};
    size_t want = LMQ_MIN((size_t)BENCH_PAGE, (resources + 992) / 1000);
    if (rc == 0)
        rc = bench_run(store, "amount EQ, latest (property index)", &q, BENCH_PAGE_KIND, resources,
                       want, BENCH_RUNS);
    q.as_of = true;
    q.as_of_size = resources;
    if (rc == 0)
        rc = bench_run(store, "amount EQ, as of R (no index: all R looked at)", &q, BENCH_PAGE_KIND,
                       resources, want, 5);
    return rc;
}

int main(int argc, char **argv)
{
    size_t resources = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000;
    if (resources < 1000 || resources > BENCH_RESOURCES_MAX) {
        fprintf(stderr, "usage: store_asof_bench [RESOURCES: 1000..10000000]\n");
        return 1;
    }
    char dir[] = "/tmp/lmq-asof-bench-XXXXXX", path[64], err[256];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/ledgermq.db", dir);
    uv_loop_t loop;
    struct store *store = NULL;
    struct store_options opts = {.path = path, .sync = STORE_SYNC_OFF};
    int rc = uv_loop_init(&loop) == 0 && store_open(&loop, &opts, &store, err, sizeof(err)) == 0
                 ? 0
                 : -1;
    uint64_t t0 = bench_now_us();
    if (rc == 0)
        rc = bench_write(&loop, store, resources);
    if (rc == 0) {
        printf("%zu resources, 2 versions each, written in %.1f s\n", resources,
               (double)(bench_now_us() - t0) / 1e6);
        srand(1);
        rc = bench_reads(store, resources);
    }
    if (store != NULL) {
        store_close(store);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    char wal[96];
    unlink(path);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    rmdir(dir);
    return rc == 0 ? 0 : 1;
}
