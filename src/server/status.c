/*
 * The status sampler: one thread, woken once a second (a timed wait on its
 * condition variable, so that stopping it is immediate), takes the
 * cumulative counters the server keeps anyway — rows predicted and the
 * predict-time histogram per model (registry), batches, rows and queue
 * depth per model (its batchers), bars ingested (metrics) — and stores the
 * difference to the previous sample as one point of a ring of
 * STATUS_HISTORY points: rates per second and the latency quantiles of the
 * calls made in that second. The ring is fixed at creation (about 400 KB);
 * the previous sample belongs to the thread alone; the ring is written and
 * read under the mutex. A thread rather than sampling when /v1/status is
 * asked: the history is there when the first page opens, and a second of
 * history costs the same whether ten pages poll or none.
 */
#include "server/status.h"
#include "server/server_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"

enum { F_PRED, F_P50, F_P99, F_ROWS, F_QUEUE, NF };
static const char *const field_names[NF] = {"predictions_s", "p50_us", "p99_us", "batch_rows",
                                            "queue_depth"};

typedef struct cum { /* one model's cumulative counters at the previous sample */
    uint64_t preds, batches, rows;
    uint64_t lat[AP_LATENCY_BUCKETS];
} cum;

typedef struct point {
    int64_t t_ms; /* wall clock of the sample */
    float ingest; /* bars/s */
    float m[STATUS_MAX_MODELS][NF];
} point;

struct ap_srv_status {
    ap_server *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int started, stop; /* under mu */
    /* the thread's own */
    uint64_t prev_ns, prev_bars;
    cum prev[STATUS_MAX_MODELS];
    /* the ring (under mu): n points, the newest at (head + n - 1) % STATUS_HISTORY */
    size_t head, n;
    point ring[STATUS_HISTORY];
};

double ap__srv_latency_quantile_us(const uint64_t *bucket, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
        total += bucket[i];
    if (!total)
        return NAN;
    double want = q * (double)total, cum_before = 0;
    for (int i = 0; i < AP_LATENCY_BUCKETS; i++) {
        double c = (double)bucket[i];
        if (c > 0 && cum_before + c >= want) {
            double lo = i ? ap_latency_bucket_bound(i - 1) : 0;
            double hi = ap_latency_bucket_bound(i);
            if (isinf(hi))
                return lo * 1e6;
            return (lo + (hi - lo) * ((want - cum_before) / c)) * 1e6;
        }
        cum_before += c;
    }
    return ap_latency_bucket_bound(AP_LATENCY_BUCKETS - 2) * 1e6;
}

/* The counters of slot i now; 0 when it has no statistics. */
static int read_model(ap_server *s, int i, cum *c, double *queue)
{
    memset(c, 0, sizeof *c);
    *queue = 0;
    ap_model_stats ms;
    if (ap_registry_stats(ap__service_registry(s->svc), ap__service_slot_name(s->svc, i), &ms,
                          NULL) != AP_OK)
        return 0;
    c->preds = ms.predictions;
    memcpy(c->lat, ms.latency_buckets, sizeof c->lat);
    for (int raw = 0; raw < 2; raw++) {
        ap_batch_stats bs;
        if (ap__service_batch_stats(s->svc, i, raw, &bs) != AP_OK)
            continue;
        c->batches += bs.batches;
        c->rows += bs.rows;
        *queue += (double)bs.queue_depth;
    }
    return 1;
}

static void sample(ap_srv_status *st)
{
    ap_server *s = st->s;
    uint64_t now = ap__clock_ns();
    double dt = (double)(now - st->prev_ns) / 1e9;
    int first = st->prev_ns == 0;
    point p;
    memset(&p, 0, sizeof p);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p.t_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    uint64_t bars = atomic_load_explicit(&s->metrics->bars_ingested, memory_order_relaxed);
    p.ingest = first || dt <= 0 ? 0.0f : (float)((double)(bars - st->prev_bars) / dt);
    int n = ap__service_slots(s->svc);
    if (n > STATUS_MAX_MODELS)
        n = STATUS_MAX_MODELS;
    for (int i = 0; i < n; i++) {
        cum c, *o = &st->prev[i];
        double queue;
        float *f = p.m[i];
        int ok = read_model(s, i, &c, &queue);
        f[F_P50] = f[F_P99] = f[F_ROWS] = NAN;
        f[F_QUEUE] = (float)queue;
        /* a reload starts the registry's counters afresh: no delta then */
        if (ok && !first && dt > 0 && c.preds >= o->preds && c.batches >= o->batches) {
            uint64_t d[AP_LATENCY_BUCKETS];
            for (int k = 0; k < AP_LATENCY_BUCKETS; k++)
                d[k] = c.lat[k] >= o->lat[k] ? c.lat[k] - o->lat[k] : 0;
            f[F_PRED] = (float)((double)(c.preds - o->preds) / dt);
            f[F_P50] = (float)ap__srv_latency_quantile_us(d, 0.5);
            f[F_P99] = (float)ap__srv_latency_quantile_us(d, 0.99);
            uint64_t nb = c.batches - o->batches;
            f[F_ROWS] = nb ? (float)((double)(c.rows - o->rows) / (double)nb) : NAN;
        }
        *o = c;
    }
    st->prev_ns = now;
    st->prev_bars = bars;
    pthread_mutex_lock(&st->mu);
    if (st->n < STATUS_HISTORY)
        st->ring[(st->head + st->n++) % STATUS_HISTORY] = p;
    else {
        st->ring[st->head] = p;
        st->head = (st->head + 1) % STATUS_HISTORY;
    }
    pthread_mutex_unlock(&st->mu);
}

static void *sampler_main(void *arg)
{
    ap_srv_status *st = arg;
    pthread_mutex_lock(&st->mu);
    while (!st->stop) {
        pthread_mutex_unlock(&st->mu);
        sample(st);
        pthread_mutex_lock(&st->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        while (!st->stop && pthread_cond_timedwait(&st->cv, &st->mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

int ap__srv_status_new(ap_server *s, int thread, ap_srv_status **out, ap_error *err)
{
    ap_srv_status *st = calloc(1, sizeof *st);
    if (!st)
        return ap__error_set(err, AP_ENOMEM, "server: out of memory for the status sampler");
    st->s = s;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    if (thread) {
        int e = pthread_create(&st->th, NULL, sampler_main, st);
        if (e) {
            ap__srv_status_free(st);
            return ap__error_set(err, AP_ENOMEM, "server: cannot start the status sampler: %s",
                                 strerror(e));
        }
        st->started = 1;
    }
    *out = st;
    return AP_OK;
}

void ap__srv_status_stop(ap_srv_status *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->mu);
    st->stop = 1;
    int join = st->started;
    st->started = 0;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (join)
        pthread_join(st->th, NULL);
}

void ap__srv_status_free(ap_srv_status *st)
{
    if (!st)
        return;
    ap__srv_status_stop(st);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
}

double ap__srv_status_ingest_rate(ap_srv_status *st)
{
    pthread_mutex_lock(&st->mu);
    double v = st->n ? st->ring[(st->head + st->n - 1) % STATUS_HISTORY].ingest : 0.0;
    pthread_mutex_unlock(&st->mu);
    return v;
}

int ap__srv_status_model_now(ap_srv_status *st, int i, ap_srv_status_now *out)
{
    memset(out, 0, sizeof *out);
    out->p50_us = out->p99_us = NAN;
    if (i < 0 || i >= STATUS_MAX_MODELS)
        return 0;
    pthread_mutex_lock(&st->mu);
    int have = st->n > 0;
    if (have) {
        const float *f = st->ring[(st->head + st->n - 1) % STATUS_HISTORY].m[i];
        *out = (ap_srv_status_now){f[F_PRED], f[F_P50], f[F_P99], f[F_ROWS], f[F_QUEUE]};
    }
    pthread_mutex_unlock(&st->mu);
    return have;
}

/* A float of the ring, short (%.4g is plenty for a chart), or null. */
static void small_num(jbuf *b, double v)
{
    if (isfinite(v))
        ap__jb_printf(b, "%.4g,", v);
    else
        ap__jb_puts(b, "null,");
}

void ap__srv_status_history_json(ap_srv_status *st, jbuf *b, const char *const *names, int n)
{
    if (n > STATUS_MAX_MODELS)
        n = STATUS_MAX_MODELS;
    pthread_mutex_lock(&st->mu);
    size_t np = st->n;
    ap__jb_printf(b, "{\"interval_s\": 1, \"capacity\": %d, \"points\": %zu, \"t_ms\": [",
                  STATUS_HISTORY, np);
    for (size_t k = 0; k < np; k++)
        ap__jb_printf(b, "%lld,", (long long)st->ring[(st->head + k) % STATUS_HISTORY].t_ms);
    ap__jb_uncomma(b);
    ap__jb_puts(b, "], \"ingest_bars_s\": [");
    for (size_t k = 0; k < np; k++)
        small_num(b, st->ring[(st->head + k) % STATUS_HISTORY].ingest);
    ap__jb_uncomma(b);
    ap__jb_puts(b, "], \"models\": {");
    for (int i = 0; i < n; i++) {
        ap__jb_str(b, names[i]);
        ap__jb_puts(b, ": {");
        for (int f = 0; f < NF; f++) {
            ap__jb_printf(b, "\"%s\": [", field_names[f]);
            for (size_t k = 0; k < np; k++)
                small_num(b, st->ring[(st->head + k) % STATUS_HISTORY].m[i][f]);
            ap__jb_uncomma(b);
            ap__jb_puts(b, "],");
        }
        ap__jb_uncomma(b);
        ap__jb_puts(b, "},");
    }
    ap__jb_uncomma(b);
    pthread_mutex_unlock(&st->mu);
    ap__jb_puts(b, "}}");
}
