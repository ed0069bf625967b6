/*
 * Ingestion with and without stream subscribers (issue 13): the server core
 * in-process on the demo repository (no sockets: what is timed is the
 * append path the HTTP handler and the replay thread share), 100 series of
 * 1-minute bars with roll-up (5m, 15m, 1h, 4h, 1d), bars appended round
 * robin from one thread.
 *
 *   plain:       nobody subscribed (the close hook costs one atomic load)
 *   subscribed:  one subscription naming the 100 base series x 3 models,
 *                drained by a reader thread as the HTTP front would
 *
 * Prints bars/s for both (wall clock, the ingesting thread's time per bar),
 * then how long the hub took to make and deliver every event after the last
 * bar, and the events made/dropped:
 *   bench: stream-ingest plain_bars_per_s=X subscribed_bars_per_s=Y ratio=Y/X ...
 * Usage: bench_stream [bars_per_series] (default 2000), from the repository root.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "server/server_internal.h"
#include "server/stream.h"

#define NSERIES 100

typedef struct drain {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken, stop;
    ap_srv_sub *sub;
    uint64_t bytes;
} drain;

static void d_park(void *ctx) { (void)ctx; }

static void d_wake(void *ctx)
{
    drain *d = ctx;
    pthread_mutex_lock(&d->mu);
    d->woken = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void *drain_main(void *arg)
{
    drain *d = arg;
    char buf[65536];
    for (;;) {
        long n = ap__stream_read(d->sub, buf, sizeof buf);
        if (n > 0) {
            d->bytes += (uint64_t)n;
            continue;
        }
        if (n < 0)
            return NULL;
        pthread_mutex_lock(&d->mu);
        while (!d->woken && !d->stop)
            pthread_cond_wait(&d->cv, &d->mu);
        int stop = d->stop && !d->woken;
        d->woken = 0;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            return NULL;
    }
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Append bars [from, to) of every series, round robin; returns wall
   seconds, and the ingesting thread's CPU seconds in *cpu. */
static double ingest(ap_server *s, ap_series **series, int from, int to, double *cpu)
{
    double c0 = thread_cpu_s();
    const int64_t t0 = 1262304000LL * 1000000, minute = 60000000LL;
    ap_error err;
    uint64_t a = ap__clock_ns();
    for (int i = from; i < to; i++)
        for (int k = 0; k < NSERIES; k++) {
            double px = 100 + k + 5 * sin((i + k) / 13.0);
            ap_bar b = {t0 + i * minute, px, px * 1.001, px * 0.999, px * 1.0002, 100 + i % 7};
            if (ap__srv_ingest(s, series[k], &b, &err)) {
                fprintf(stderr, "bench_stream: %s\n", err.msg);
                exit(1);
            }
        }
    *cpu = thread_cpu_s() - c0;
    return (double)(ap__clock_ns() - a) / 1e9;
}

int main(int argc, char **argv)
{
    int nbars = argc > 1 ? atoi(argv[1]) : 2000;
    if (nbars < 10) {
        fprintf(stderr, "usage: bench_stream [bars_per_series >= 10]\n");
        return 2;
    }
    ap_server_config cfg;
    ap__server_config_default(&cfg);
    snprintf(cfg.repository, sizeof cfg.repository, "examples/models");
    cfg.max_series = NSERIES * 6 + 16;
    cfg.stream_buffer = 1 << 20; /* the drain keeps up; nothing is cut off */
    cfg.stream_queue = 1 << 24;
    ap_server *s;
    ap_error err;
    if (ap__srv_create(&cfg, NULL, NULL, 0, NULL, &s, &err) != AP_OK) {
        fprintf(stderr, "bench_stream: %s (run from the repository root)\n", err.msg);
        return 1;
    }
    ap_series *series[NSERIES];
    ap_srv_stream_key keys[NSERIES];
    for (int k = 0; k < NSERIES; k++) {
        snprintf(keys[k].symbol, sizeof keys[k].symbol, "S%03d", k);
        keys[k].tf = 60;
        if (ap_series_open(s->store, keys[k].symbol, 60, AP_SERIES_ROLLUP, &series[k], &err)) {
            fprintf(stderr, "bench_stream: %s\n", err.msg);
            return 1;
        }
    }
    double plain_cpu, sub_cpu;
    ingest(s, series, 0, 200, &plain_cpu); /* warm-up: features past their windows */
    double plain = ingest(s, series, 200, 200 + nbars, &plain_cpu);

    drain d = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    const char models[3][65] = {"reversal", "bull", "continuation"};
    ap_srv_sub_spec spec = {models, 3, keys, NSERIES, NULL};
    ap_srv_sub_io io = {d_park, d_wake, &d};
    if (ap__stream_subscribe(s->stream, &spec, &io, &d.sub, &err)) {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, drain_main, &d);
    double sub = ingest(s, series, 200 + nbars, 200 + 2 * nbars, &sub_cpu);
    uint64_t a = ap__clock_ns();
    uint64_t want = (uint64_t)NSERIES * (uint64_t)nbars * 3;
    ap_srv_stream_counts c;
    for (;;) {
        ap__stream_counts(s->stream, &c);
        if (c.events + c.failed >= want || c.closed_dropped ||
            ap__clock_ns() - a > 60000000000ull)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    double drain_s = (double)(ap__clock_ns() - a) / 1e9;
    pthread_mutex_lock(&d.mu);
    d.stop = 1;
    pthread_cond_signal(&d.cv);
    pthread_mutex_unlock(&d.mu);
    pthread_join(th, NULL);
    double n = (double)NSERIES * nbars;
    printf("bench: stream-ingest plain_bars_per_s=%.0f subscribed_bars_per_s=%.0f ratio=%.2f "
           "ingest_cpu_ns_per_bar plain=%.0f subscribed=%.0f\n",
           n / plain, n / sub, plain / sub, plain_cpu / n * 1e9, sub_cpu / n * 1e9);
    printf("bench: stream-ingest detail: series=%d models=3 bars=%.0f events=%" PRIu64
           " (want %" PRIu64 ") failed=%" PRIu64 " dropped=%" PRIu64 " rounds=%" PRIu64
           " drain_after_last_bar_ms=%.1f events_per_s=%.0f (wall clock; the hub, the batch "
           "workers and the ingesting thread share the machine's cores)\n",
           NSERIES, n, c.events, want, c.failed, c.closed_dropped, c.rounds, drain_s * 1e3,
           (double)c.events / (sub + drain_s));
    ap__stream_unsubscribe(d.sub);
    ap__server_free(s);
    return c.events == want ? 0 : 1;
}
