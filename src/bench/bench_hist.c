/*
 * Log-linear latency histogram in the manner of HdrHistogram: values below
 * 2^SUB_BITS ns get a bucket each; above, every power of two [2^m, 2^(m+1))
 * is split into 2^(SUB_BITS-1) equal buckets, so a reported value is within
 * 1/128 (< 0.8 %) of the true one. Fixed size (BENCH_HIST_BUCKETS counters),
 * no allocation; recording is a count-leading-zeros and an increment.
 */
#include <string.h>

#include "bench/bench_internal.h"
#include "core/lmq.h"

#define HIST_LINEAR (1u << BENCH_HIST_SUB_BITS)
#define HIST_HALF (1u << (BENCH_HIST_SUB_BITS - 1))

void bench_hist_init(struct bench_hist *h)
{
    LMQ_ASSERT(h != NULL);
    memset(h, 0, sizeof(*h));
}

static uint32_t hist__index(uint64_t v)
{
    if (v < HIST_LINEAR) {
        return (uint32_t)v;
    }
    uint32_t m = 63u - (uint32_t)__builtin_clzll(v); /* v >= 2^SUB_BITS, so m >= SUB_BITS */
    if (m >= BENCH_HIST_MAX_BITS) {
        return BENCH_HIST_BUCKETS - 1;
    }
    uint32_t shift = m - (BENCH_HIST_SUB_BITS - 1);
    uint32_t sub = (uint32_t)(v >> shift); /* in [HALF, LINEAR) */
    LMQ_ASSERT(sub >= HIST_HALF && sub < HIST_LINEAR);
    uint32_t idx = HIST_LINEAR + (m - BENCH_HIST_SUB_BITS) * HIST_HALF + (sub - HIST_HALF);
    LMQ_ASSERT(idx < BENCH_HIST_BUCKETS);
    return idx;
}

/* Largest value that lands in bucket idx. */
static uint64_t hist__highest(uint32_t idx)
{
    LMQ_ASSERT(idx < BENCH_HIST_BUCKETS);
    if (idx < HIST_LINEAR) {
        return idx;
    }
    uint32_t j = idx - HIST_LINEAR;
    uint32_t m = BENCH_HIST_SUB_BITS + j / HIST_HALF;
    uint64_t sub = HIST_HALF + j % HIST_HALF;
    uint32_t shift = m - (BENCH_HIST_SUB_BITS - 1);
    return (sub << shift) + ((UINT64_C(1) << shift) - 1);
}

void bench_hist_record(struct bench_hist *h, uint64_t value_ns)
{
    h->counts[hist__index(value_ns)]++;
    h->total_count++;
    h->sum_ns += (double)value_ns;
    if (value_ns > h->max_ns) {
        h->max_ns = value_ns;
    }
}

uint64_t bench_hist_percentile_ns(const struct bench_hist *h, double fraction)
{
    LMQ_ASSERT(h != NULL);
    LMQ_ASSERT(fraction > 0.0 && fraction <= 1.0);
    if (h->total_count == 0) {
        return 0;
    }
    double want = fraction * (double)h->total_count;
    uint64_t target = (uint64_t)want;
    if ((double)target < want || target == 0) {
        target++; /* ceil, and at least the first sample */
    }
    uint64_t seen = 0;
    for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= target) {
            uint64_t v = hist__highest(i);
            return v < h->max_ns ? v : h->max_ns;
        }
    }
    LMQ_UNREACHABLE("histogram counts do not add up to total_count");
}
