/*
 * Batcher statistics: the fixed-bucket histograms (Prometheus-friendly) the
 * batcher fills, and the snapshots of one batcher (ap_batcher_stats) or of
 * every batcher attached to a pool (ap_workers_stats). Reads batcher fields
 * under b->mu; calls nothing of the other batch files but the pool's
 * ap__pool_for_each.
 */
#include "batch/stats.h"
#include "batch/batch_internal.h"
#include "batch/pool.h"

#include <string.h>

uint64_t ap_batch_size_bound(int i)
{
    if (i < 0 || i >= AP_BATCH_SIZE_BUCKETS - 1)
        return UINT64_MAX;
    return (uint64_t)1 << i;
}

void ap__batch_hist_add(ap_batch_hist *h, uint64_t ns)
{
    if (h->count == 0 || ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    h->count++;
    h->sum_ns += ns;
    h->bucket[ap_latency_bucket(ns)]++;
}

void ap__batch_hist_merge(ap_batch_hist *into, const ap_batch_hist *from)
{
    if (from->count == 0)
        return;
    if (into->count == 0 || from->min_ns < into->min_ns)
        into->min_ns = from->min_ns;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
    into->count += from->count;
    into->sum_ns += from->sum_ns;
    for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
}

void ap__batch_size_add(uint64_t bucket[AP_BATCH_SIZE_BUCKETS], uint64_t rows)
{
    int i = 0;
    while (i < AP_BATCH_SIZE_BUCKETS - 1 && rows > ((uint64_t)1 << i))
        i++;
    bucket[i]++;
}

/* ---- snapshots ----------------------------------------------------------- */

static void snapshot_locked(const ap_batcher *b, ap_batch_stats *o)
{
    *o = b->st;
    o->queue_depth = b->qlen;
    o->queue_rows = b->qrows;
    o->running = b->running;
    o->current_delay_us = current_delay(b) / 1000;
}

int ap_batcher_stats(ap_batcher *b, ap_batch_stats *out)
{
    if (!b || !out)
        return AP_EINVAL;
    pthread_mutex_lock(&b->mu);
    snapshot_locked(b, out);
    pthread_mutex_unlock(&b->mu);
    return AP_OK;
}

/* ap__pool_for_each callback (pool mutex held, then b->mu: the lock order) */
static void add_batcher(void *src, void *arg)
{
    ap_batcher *b = src;
    ap_batch_stats *out = arg, s;
    pthread_mutex_lock(&b->mu);
    snapshot_locked(b, &s);
    pthread_mutex_unlock(&b->mu);
    out->submitted += s.submitted;
    out->rejected += s.rejected;
    out->completed += s.completed;
    out->failed += s.failed;
    out->timed_out += s.timed_out;
    out->cancelled += s.cancelled;
    out->batches += s.batches;
    out->rows += s.rows;
    out->queue_depth += s.queue_depth;
    out->queue_rows += s.queue_rows;
    out->running += s.running;
    if (s.current_delay_us > out->current_delay_us)
        out->current_delay_us = s.current_delay_us;
    ap__batch_hist_merge(&out->queue_time, &s.queue_time);
    ap__batch_hist_merge(&out->compute_time, &s.compute_time);
    for (int k = 0; k < AP_BATCH_SIZE_BUCKETS; k++)
        out->batch_size[k] += s.batch_size[k];
}

int ap_workers_stats(ap_workers *w, ap_batch_stats *out)
{
    if (!w || !out)
        return AP_EINVAL;
    memset(out, 0, sizeof *out);
    ap__pool_for_each(w, add_batcher, out);
    return AP_OK;
}
