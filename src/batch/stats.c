/* Fixed-bucket histograms for the batcher statistics (Prometheus-friendly). */
#include "batch/batch_internal.h"

#include <time.h>

/* Bucket bounds chosen for an inference service: 10 us .. 1 s, roughly 1-2.5-5 steps. */
static const uint64_t lat_bounds_us[AP_BATCH_LAT_BUCKETS - 1] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};

uint64_t ap_batch_latency_bound_us(int i)
{
    if (i < 0 || i >= AP_BATCH_LAT_BUCKETS - 1)
        return UINT64_MAX;
    return lat_bounds_us[i];
}

uint64_t ap_batch_size_bound(int i)
{
    if (i < 0 || i >= AP_BATCH_SIZE_BUCKETS - 1)
        return UINT64_MAX;
    return (uint64_t)1 << i;
}

void ap_batch_hist_add(ap_batch_hist *h, uint64_t ns)
{
    if (h->count == 0 || ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    h->count++;
    h->sum_ns += ns;
    int i = 0;
    /* "le" buckets: a value equal to a bound belongs to that bound's bucket. */
    while (i < AP_BATCH_LAT_BUCKETS - 1 && ns > lat_bounds_us[i] * 1000u)
        i++;
    h->bucket[i]++;
}

void ap_batch_hist_merge(ap_batch_hist *into, const ap_batch_hist *from)
{
    if (from->count == 0)
        return;
    if (into->count == 0 || from->min_ns < into->min_ns)
        into->min_ns = from->min_ns;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
    into->count += from->count;
    into->sum_ns += from->sum_ns;
    for (int i = 0; i < AP_BATCH_LAT_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
}

void ap_batch_size_add(uint64_t bucket[AP_BATCH_SIZE_BUCKETS], uint64_t rows)
{
    int i = 0;
    while (i < AP_BATCH_SIZE_BUCKETS - 1 && rows > ((uint64_t)1 << i))
        i++;
    bucket[i]++;
}
