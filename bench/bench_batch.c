/*
 * Dynamic batching under load. A fake model costs what a tree ensemble call
 * roughly costs: a fixed overhead per call plus a per-row cost (default
 * 20 us + 0.3 us/row, by spinning on the clock). Each configuration is driven
 *   - closed loop: C client threads each doing ap_batch_run back to back;
 *   - open loop: one generator submitting at a fixed rate (callback
 *     completion), latency measured from the SCHEDULED send time so a
 *     stalled generator cannot hide queueing (no coordinated omission).
 * Prints one line per run:
 *   bench: batch-<config> load=<closed-C|open> offered_rps=<x> throughput_rps=<y>
 *          p50_us=<a> p99_us=<b> mean_batch=<m> mean_queue_us=<q> rejected=<r> timed_out=<t>
 *
 * usage: bench_batch [seconds_per_run=0.5] [workers=1] [overhead_us=20] [per_row_ns=300]
 *                    [config-name-substring]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <pthread.h>
#include <time.h>

#include "alphapulse.h"

#define NCOLS 8

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct cost {
    uint64_t overhead_ns, per_row_ns;
} cost;

static int spin_model(void *ctx, const double *X, size_t nrows, size_t ncols, double *out,
                      size_t nout, ap_error *err)
{
    const cost *c = ctx;
    uint64_t until = now_ns() + c->overhead_ns + c->per_row_ns * nrows;
    while (now_ns() < until)
        ;
    for (size_t i = 0; i < nrows; i++)
        out[i * nout] = 2 * X[i * ncols] + 1;
    return 0;
}

typedef struct config {
    const char *name;
    size_t max_batch;
    uint64_t delay_us, adaptive_us;
    int caller_runs;
} config;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *cfg, const char *load, double offered, uint64_t n, double secs,
                   uint64_t *lat, ap_batcher *b)
{
    qsort(lat, n, sizeof *lat, cmp_u64);
    ap_batch_stats st;
    ap_batcher_stats(b, &st);
    char off[32];
    if (offered > 0)
        snprintf(off, sizeof off, "%.0f", offered);
    else
        snprintf(off, sizeof off, "-");
    printf("bench: batch-%s load=%s offered_rps=%s throughput_rps=%.0f p50_us=%.1f p99_us=%.1f "
           "mean_batch=%.1f mean_queue_us=%.1f rejected=%llu timed_out=%llu\n",
           cfg, load, off, (double)n / secs, n ? lat[n / 2] / 1e3 : 0,
           n ? lat[(size_t)((double)n * 0.99)] / 1e3 : 0,
           st.batches ? (double)st.rows / (double)st.batches : 0,
           st.queue_time.count ? (double)st.queue_time.sum_ns / (double)st.queue_time.count / 1e3 : 0,
           (unsigned long long)st.rejected, (unsigned long long)st.timed_out);
    fflush(stdout);
}

/* ---- closed loop --------------------------------------------------------- */

typedef struct client {
    ap_batcher *b;
    uint64_t end_ns;
    uint64_t *lat;
    size_t n, cap;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    double x[NCOLS] = {1}, out[1];
    ap_error err;
    while (now_ns() < c->end_ns && c->n < c->cap) {
        uint64_t t0 = now_ns();
        if (ap_batch_run(c->b, x, 1, out, 1, 0, &err) == AP_OK)
            c->lat[c->n++] = now_ns() - t0;
    }
    return NULL;
}

static void closed_loop(const config *cf, ap_batcher *b, int nclients, double secs)
{
    client cl[64];
    pthread_t th[64];
    size_t cap = 4000000 / (size_t)nclients;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    for (int i = 0; i < nclients; i++) {
        cl[i] = (client){b, end, malloc(cap * sizeof(uint64_t)), 0, cap};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    size_t total = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(th[i], NULL);
        total += cl[i].n;
    }
    double el = (double)(now_ns() - t0) / 1e9;
    uint64_t *lat = malloc((total ? total : 1) * sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < nclients; i++) {
        memcpy(lat + k, cl[i].lat, cl[i].n * sizeof *lat);
        k += cl[i].n;
        free(cl[i].lat);
    }
    char load[32];
    snprintf(load, sizeof load, "closed-%d", nclients);
    report(cf->name, load, 0, total, el, lat, b);
    free(lat);
}

/* ---- open loop ----------------------------------------------------------- */

typedef struct oslot {
    uint64_t t_sched;
    uint64_t lat;
    _Atomic int *done;
} oslot;

static void open_done(void *user, const ap_batch_completion *c)
{
    oslot *s = user;
    s->lat = c->status == AP_OK ? now_ns() - s->t_sched : UINT64_MAX;
    atomic_fetch_add_explicit(s->done, 1, memory_order_release);
}

static void open_loop(const config *cf, ap_batcher *b, double rps, double secs)
{
    size_t n = (size_t)(rps * secs);
    oslot *sl = calloc(n, sizeof *sl);
    _Atomic int done = 0;
    int sent = 0;
    double x[NCOLS] = {1};
    uint64_t period = (uint64_t)(1e9 / rps), t0 = now_ns();
    ap_error err;
    for (size_t i = 0; i < n; i++) {
        uint64_t t = t0 + i * period;
        /* sleep, not spin: on a small machine the generator must leave the
         * cores to the workers (timer slack set to 1 ns in main) */
        for (uint64_t nw = now_ns(); nw < t; nw = now_ns()) {
            if (t - nw > 5000) {
                struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            }
        }
        sl[i].t_sched = t;
        sl[i].done = &done;
        ap_batch_submit_opts o = {.on_done = open_done, .user = &sl[i]};
        uint64_t id;
        if (ap_batch_submit(b, x, 1, &o, &id, &err) == AP_OK)
            sent++;
        else
            sl[i].lat = UINT64_MAX; /* rejected: counted by the batcher */
    }
    while (atomic_load_explicit(&done, memory_order_acquire) < sent) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    double el = (double)(now_ns() - t0) / 1e9;
    uint64_t *lat = malloc((n ? n : 1) * sizeof *lat);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (sl[i].lat != UINT64_MAX)
            lat[k++] = sl[i].lat;
    report(cf->name, "open", rps, k, el, lat, b);
    free(lat);
    free(sl);
}

int main(int argc, char **argv)
{
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    double secs = argc > 1 ? atof(argv[1]) : 0.5;
    unsigned workers = argc > 2 ? (unsigned)atoi(argv[2]) : 1;
    cost c = {argc > 3 ? strtoull(argv[3], NULL, 10) * 1000 : 20000,
              argc > 4 ? strtoull(argv[4], NULL, 10) : 300};
    ap_workers *w;
    ap_error err;
    if (ap_workers_create(workers, &w, &err) != AP_OK) {
        fprintf(stderr, "bench_batch: %s\n", err.msg);
        return 1;
    }
    printf("bench: batch model cost %llu us + %llu ns/row, %u worker(s), %.2f s per run\n",
           (unsigned long long)(c.overhead_ns / 1000), (unsigned long long)c.per_row_ns,
           workers, secs);
    static const config configs[] = {
        {"nobatch", 1, 0, 0, 0},
        {"b64-d0", 64, 0, 0, 0},
        {"b64-d0-caller", 64, 0, 0, 1},
        {"b64-d200", 64, 200, 0, 0},
        {"b64-adaptive300", 64, 200, 300, 0},
    };
    static const double rates[] = {10000, 40000, 100000, 200000};
    for (size_t k = 0; k < sizeof configs / sizeof *configs; k++) {
        const config *cf = &configs[k];
        if (argc > 5 && !strstr(cf->name, argv[5]))
            continue;
        ap_batcher_config bc;
        ap_batcher_config_default(&bc);
        bc.name = cf->name;
        bc.ncols = NCOLS;
        bc.nout = 1;
        bc.max_batch_rows = cf->max_batch;
        bc.max_queue_delay_us = cf->delay_us;
        bc.adaptive_target_us = cf->adaptive_us;
        bc.caller_runs = cf->caller_runs;
        bc.max_queue_rows = 8192;
        /* one batcher per run so its stats (mean batch) are per run */
        for (int r = 0; r < 2 + (int)(sizeof rates / sizeof *rates); r++) {
            ap_batch_model m = {.run = spin_model, .ctx = &c};
            ap_batcher *b;
            if (ap_batcher_create(w, &bc, &m, &b, &err) != AP_OK) {
                fprintf(stderr, "bench_batch: %s\n", err.msg);
                return 1;
            }
            if (r == 0)
                closed_loop(cf, b, 1, secs);
            else if (r == 1)
                closed_loop(cf, b, 16, secs);
            else
                open_loop(cf, b, rates[r - 2], secs);
            ap_batcher_free(b);
        }
    }
    ap_workers_free(w);
    return 0;
}
