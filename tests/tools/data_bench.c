/*
 * The C side of `make bench-data`'s ingest and query parts (scripts/bench-data.py): a
 * measurement tool, not a test, so ctest doesn't run it (test_bench_data.py runs the script).
 *
 *   data_bench sign SEED_HEX TO_ID COUNT MEMBER MODEL KEYS PAD_BYTES OUT
 *       Signs COUNT envelopes of the identity whose Ed25519 seed is SEED_HEX (64 hex), seq 1..COUNT
 *       chained by prev, to TO_ID, type "object", with the project's builder (src/ledger) and
 *       writes their canonical JSON to OUT, one a line. Body:
 *         {MEMBER: MODEL, "k": <0..KEYS-1>, "n": <seq>, "pad": <PAD_BYTES x "p">}
 *       MEMBER "_t" makes a typed object; any other two-character member (the bench uses "xt")
 *       gives an envelope of the same size that names no model. k runs through the KEYS values
 *       from an offset taken from the seed, so every value is used about COUNT/KEYS times.
 *       Prints {"id":..,"count":..,"ms":..}.
 *   data_bench sql DB MODEL PATH KEYS QUERIES LIMIT
 *       The bare statement an rl_MODEL(filter: {PATH: {EQ: v}}, limit: LIMIT) compiles to
 *       (store_data_query_sql, reader: everything, as for [data] readers_all), run on the SQLite
 *       file DB (read-only) QUERIES times with v = pseudo-random integers 0..KEYS-1, every column
 *       of every row read. After an untimed warm-up of QUERIES/10, timed twice, each pass with
 *       its own values: prepared each time as the server does ("prepare"), then prepared once
 *       and reset between queries ("step"). Prints one JSON line
 *       with the SQL, its EXPLAIN QUERY PLAN, the rows per query and p50/p99/max in µs.
 * Exit 1 on a usage error or any failure (a message on stderr).
 */
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/keyfile.h"
#include "ledger/envelope.h"
#include "store/store.h"

/* Envelopes one `sign` writes: the 1,000,000-resource seed is split over identities. */
#define DATA_BENCH_SIGN_MAX 10000000u
#define DATA_BENCH_PAD_MAX_BYTES 4096u
#define DATA_BENCH_QUERIES_MAX 1000000u
#define DATA_BENCH_LIMIT_MAX 1000u
#define DATA_BENCH_SQL_MAX_BYTES 65536u
#define DATA_BENCH_PLAN_MAX_BYTES 4096u

static uint64_t bench__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bench__fail(const char *what, int rc)
{
    fprintf(stderr, "data_bench: %s (%d)\n", what, rc);
    return 1;
}

static bool bench__u64(const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* The envelope time now (CLOCK_REALTIME). */
static int bench__time(char out[LEDGER_ENVELOPE_TIME_CHARS + 1])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ledger_envelope_format_time((int64_t)ts.tv_sec, (uint32_t)ts.tv_nsec, out);
}

struct sign_args {
    uint8_t seed[CRYPTO_ED25519_SEED_BYTES];
    const char *to, *member, *model;
    uint64_t count, keys, pad_bytes;
};

/* Signs envelope seq (prev: the link of seq - 1, "" for 1) into line; updates prev. */
static int bench__sign_one(const struct sign_args *a, uint64_t seq, uint64_t k, const char *pad,
                           char prev[LEDGER_ENVELOPE_LINK_BYTES], struct lmq_buf *line)
{
    char when[LEDGER_ENVELOPE_TIME_CHARS + 1];
    int rc = bench__time(when);
    json_t *body = json_pack("{sssIsIss}", a->member, a->model, "k", (json_int_t)k, "n",
                             (json_int_t)seq, "pad", pad);
    if (rc != LMQ_OK || body == NULL) {
        json_decref(body);
        return rc != LMQ_OK ? rc : LMQ_ENOMEM;
    }
    struct ledger_envelope_draft d = {
        .to = a->to, .seq = seq, .prev = prev, .time = when, .type = "object", .body = body};
    const char *reason = NULL;
    line->len = 0;
    rc = ledger_envelope_build(a->seed, &d, line, &reason);
    json_decref(body);
    if (rc != LMQ_OK) {
        fprintf(stderr, "data_bench: build: %s\n", reason != NULL ? reason : "?");
        return rc;
    }
    uint8_t h[CRYPTO_SHA256_BYTES];
    rc = crypto_sha256(line->data, line->len, h);
    if (rc == LMQ_OK)
        rc = crypto_hex_encode(h, sizeof(h), prev, LEDGER_ENVELOPE_LINK_BYTES);
    LMQ_ASSERT(rc != LMQ_OK || strlen(prev) == 64);
    return rc;
}

static int bench__sign(const struct sign_args *a, const char *out_path)
{
    LMQ_ASSERT(a->count >= 1 && a->keys >= 1);
    struct crypto_identity ident;
    int rc = crypto_identity_from_seed(a->seed, &ident);
    if (rc != LMQ_OK)
        return bench__fail("bad seed", rc);
    char *pad = malloc(a->pad_bytes + 1);
    FILE *out = fopen(out_path, "w");
    struct lmq_buf line = {0};
    int code = 1;
    if (pad == NULL || out == NULL) {
        fprintf(stderr, "data_bench: cannot write %s\n", out_path);
        goto out;
    }
    memset(pad, 'p', a->pad_bytes);
    pad[a->pad_bytes] = '\0';
    uint64_t offset = ((uint64_t)a->seed[0] << 16 | (uint64_t)a->seed[1] << 8 | a->seed[2]);
    char prev[LEDGER_ENVELOPE_LINK_BYTES] = "";
    uint64_t t0 = bench__now_ns();
    for (uint64_t seq = 1; seq <= a->count; seq++) {
        rc = bench__sign_one(a, seq, (offset + seq) % a->keys, pad, prev, &line);
        if (rc != LMQ_OK) {
            bench__fail("signing failed", rc);
            goto out;
        }
        if (fwrite(line.data, 1, line.len, out) != line.len || fputc('\n', out) == EOF) {
            fprintf(stderr, "data_bench: write %s failed\n", out_path);
            goto out;
        }
    }
    double ms = (double)(bench__now_ns() - t0) / 1e6;
    printf("{\"id\":\"%s\",\"count\":%" PRIu64 ",\"ms\":%.1f}\n", ident.id, a->count, ms);
    code = 0;
out:
    if (out != NULL && fclose(out) != 0 && code == 0) {
        fprintf(stderr, "data_bench: close %s failed\n", out_path);
        code = 1;
    }
    lmq_buf_release(&line);
    free(pad);
    return code;
}

static int bench__sign_main(int argc, char **argv)
{
    struct sign_args a = {.to = argv[3], .member = argv[5], .model = argv[6]};
    size_t seed_len = 0;
    if (argc != 10 || strlen(argv[2]) != 64 ||
        crypto_hex_decode(argv[2], 64, a.seed, sizeof(a.seed), &seed_len) != LMQ_OK ||
        seed_len != sizeof(a.seed) || !crypto_identity_id_valid(a.to, strlen(a.to)) ||
        !bench__u64(argv[4], DATA_BENCH_SIGN_MAX, &a.count) || a.count == 0 ||
        strlen(a.member) != 2 || !bench__u64(argv[7], UINT32_MAX, &a.keys) || a.keys == 0 ||
        !bench__u64(argv[8], DATA_BENCH_PAD_MAX_BYTES, &a.pad_bytes)) {
        fprintf(stderr, "usage: data_bench sign SEED_HEX TO_ID COUNT MEMBER MODEL KEYS "
                        "PAD_BYTES OUT\n");
        return 1;
    }
    return bench__sign(&a, argv[9]);
}

/* ---- sql ---- */

static int bench__cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Nearest-rank percentile of sorted[0..n). */
static uint64_t bench__pct(const uint64_t *sorted, size_t n, double p)
{
    LMQ_ASSERT(n > 0 && p > 0 && p <= 100);
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
    return sorted[(rank == 0 ? 1 : rank) - 1];
}

/* Steps st to the end, reading every column; the row count into *rows. */
static int bench__drain(sqlite3_stmt *st, uint64_t limit, uint64_t *rows, uint64_t *bytes)
{
    int rc;
    int cols = sqlite3_column_count(st);
    *rows = 0;
    /* Bounded by LIMIT (the statement's own) plus the SQLITE_DONE step. */
    for (uint64_t i = 0; i <= limit; i++) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            return rc == SQLITE_DONE ? SQLITE_OK : rc;
        for (int c = 0; c < cols; c++) {
            (void)sqlite3_column_blob(st, c);
            *bytes += (uint64_t)sqlite3_column_bytes(st, c);
        }
        (*rows)++;
    }
    return SQLITE_ERROR; /* more rows than LIMIT: not the statement we think */
}

struct sql_run {
    sqlite3 *db;
    const char *sql, *model;
    uint64_t keys, queries, limit;
    uint64_t *lat_step_ns, *lat_prepare_ns;
    uint64_t rows_min, rows_max, bytes;
};

static void bench__bind(sqlite3_stmt *st, const struct sql_run *r, uint64_t v)
{
    sqlite3_bind_text(st, 1, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, (int64_t)v);
    sqlite3_bind_int64(st, 4, (int64_t)r->limit);
}

/* One pass: prepared once (reuse) or for each query. */
static int bench__sql_pass(struct sql_run *r, bool reuse, uint64_t x, uint64_t *lat_ns)
{
    LMQ_ASSERT(x != 0 && lat_ns != NULL);
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_OK;
    if (reuse)
        rc = sqlite3_prepare_v2(r->db, r->sql, -1, &st, NULL);
    for (uint64_t q = 0; rc == SQLITE_OK && q < r->queries; q++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t v = x % r->keys, rows = 0;
        uint64_t t0 = bench__now_ns();
        if (!reuse)
            rc = sqlite3_prepare_v2(r->db, r->sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            bench__bind(st, r, v);
            rc = bench__drain(st, r->limit, &rows, &r->bytes);
        }
        if (reuse)
            sqlite3_reset(st);
        else
            sqlite3_finalize(st), st = NULL;
        lat_ns[q] = bench__now_ns() - t0;
        r->rows_min = rows < r->rows_min ? rows : r->rows_min;
        r->rows_max = rows > r->rows_max ? rows : r->rows_max;
    }
    sqlite3_finalize(st);
    return rc;
}

static int bench__explain(sqlite3 *db, const char *sql, char *plan, size_t cap)
{
    char q[DATA_BENCH_SQL_MAX_BYTES + 32];
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    size_t used = 0;
    plan[0] = '\0';
    /* A handful of plan rows; bounded by cap. */
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && used + 2 < cap) {
        const char *d = (const char *)sqlite3_column_text(st, 3);
        int n = snprintf(plan + used, cap - used, "%s%s", used ? "; " : "", d ? d : "");
        used = n < 0 ? cap : used + (size_t)n;
    }
    sqlite3_finalize(st);
    return rc;
}

static void bench__print_lat(const char *name, uint64_t *lat, size_t n)
{
    qsort(lat, n, sizeof(*lat), bench__cmp_u64);
    printf(",\"%s_p50_us\":%.1f,\"%s_p99_us\":%.1f,\"%s_max_us\":%.1f", name,
           (double)bench__pct(lat, n, 50) / 1e3, name, (double)bench__pct(lat, n, 99) / 1e3, name,
           (double)lat[n - 1] / 1e3);
}

static int bench__sql_main(int argc, char **argv)
{
    struct sql_run r = {.model = argc == 8 ? argv[3] : NULL, .rows_min = UINT64_MAX};
    const char *path = argc == 8 ? argv[4] : "";
    if (argc != 8 || !bench__u64(argv[5], UINT32_MAX, &r.keys) || r.keys == 0 ||
        !bench__u64(argv[6], DATA_BENCH_QUERIES_MAX, &r.queries) || r.queries == 0 ||
        !bench__u64(argv[7], DATA_BENCH_LIMIT_MAX, &r.limit) || r.limit == 0) {
        fprintf(stderr, "usage: data_bench sql DB MODEL PATH KEYS QUERIES LIMIT\n");
        return 1;
    }
    struct store_data_value value = {.type = STORE_DATA_INT};
    struct store_data_filter f = {.path = {(const uint8_t *)path, strlen(path)},
                                  .op = STORE_DATA_EQ,
                                  .values = &value,
                                  .value_count = 1};
    struct store_data_query q = {.model = {(const uint8_t *)r.model, strlen(r.model)},
                                 .filters = &f,
                                 .filter_count = 1,
                                 .limit = (size_t)r.limit};
    static char sql[DATA_BENCH_SQL_MAX_BYTES];
    char plan[DATA_BENCH_PLAN_MAX_BYTES];
    int rc = store_data_query_sql(&q, sql, sizeof(sql));
    if (rc != LMQ_OK)
        return bench__fail("store_data_query_sql refused the query", rc);
    int code = 1;
    r.lat_step_ns = calloc(r.queries, sizeof(uint64_t));
    r.lat_prepare_ns = calloc(r.queries, sizeof(uint64_t));
    r.sql = sql;
    if (r.lat_step_ns == NULL || r.lat_prepare_ns == NULL ||
        sqlite3_open_v2(argv[2], &r.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "data_bench: cannot open %s: %s\n", argv[2],
                r.db ? sqlite3_errmsg(r.db) : "out of memory");
        goto out;
    }
    /* A warm-up tenth (untimed, as the GraphQL side has), then each pass with its own values
     * (xorshift seeds), so neither finds the other's rows in the cache. */
    uint64_t queries = r.queries;
    r.queries = queries / 10 > 0 ? queries / 10 : 1;
    rc = bench__explain(r.db, sql, plan, sizeof(plan));
    rc = rc == SQLITE_OK ? bench__sql_pass(&r, false, 88172645463325252u, r.lat_prepare_ns) : rc;
    r.queries = queries;
    r.rows_min = UINT64_MAX, r.rows_max = 0, r.bytes = 0;
    rc = rc == SQLITE_OK ? bench__sql_pass(&r, false, 2463534242u, r.lat_prepare_ns) : rc;
    rc = rc == SQLITE_OK ? bench__sql_pass(&r, true, 521288629u, r.lat_step_ns) : rc;
    if (rc != SQLITE_OK) {
        fprintf(stderr, "data_bench: query failed: %s\n", sqlite3_errmsg(r.db));
        goto out;
    }
    json_t *s = json_pack("{ssss}", "sql", sql, "plan", plan);
    char *head = s ? json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(s);
    if (head == NULL)
        goto out;
    head[strlen(head) - 1] = '\0'; /* the closing brace: more members follow */
    printf("%s,\"queries\":%" PRIu64 ",\"rows_min\":%" PRIu64 ",\"rows_max\":%" PRIu64
           ",\"bytes\":%" PRIu64,
           head, r.queries, r.rows_min, r.rows_max, r.bytes);
    free(head);
    bench__print_lat("step", r.lat_step_ns, r.queries);
    bench__print_lat("prepare", r.lat_prepare_ns, r.queries);
    printf("}\n");
    code = 0;
out:
    sqlite3_close(r.db);
    free(r.lat_step_ns);
    free(r.lat_prepare_ns);
    return code;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "sign") == 0)
        return bench__sign_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "sql") == 0)
        return bench__sql_main(argc, argv);
    fprintf(stderr, "usage: data_bench sign ... | data_bench sql ... (see the source's top)\n");
    return 1;
}
