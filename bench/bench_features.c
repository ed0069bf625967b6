/*
 * Per-bar cost of the streaming alphapulse-v1 engine: push one bar and copy
 * the full 101-vector out, over a long series (the ttrc daily bars, then a
 * synthetic random walk with jumps up to 1M bars). Prints
 *   bench: features ours_ns_per_bar=<x>
 * plus a line for the same work through the series store (append + the
 * seqlock'd ap_series_latest copy-out a reader would do), and one for a
 * roll-up series (1m bars feeding 5m..1d).
 *
 * usage: bench_features [BARS.csv] [N]   (defaults tests/data/market/ttrc_daily.csv, 1000000)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "alphapulse.h"
#include "series/bars_csv.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/data/market/ttrc_daily.csv";
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    if (n < 1000)
        n = 1000;
    ap_bar *bars = malloc(n * sizeof *bars);
    double *sink = malloc(AP_FEATURE_COUNT * sizeof *sink);
    if (!bars || !sink)
        return 1;
    ap_error err = {0};
    ap_bars_csv rd;
    size_t have = 0;
    if (ap__bars_csv_open(&rd, path, &err)) {
        fprintf(stderr, "bench_features: %s\n", err.msg);
        return 1;
    }
    int r;
    while (have < n && (r = ap__bars_csv_next(&rd, &bars[have], &err)) == 1)
        have++;
    ap__bars_csv_close(&rd);
    /* continue as a 1-minute random walk with occasional jumps */
    double px = have ? bars[have - 1].close : 100.0;
    int64_t t = have ? bars[have - 1].t : 0;
    t = (t / 60000000 + 1) * 60000000;
    for (size_t i = have; i < n; i++, t += 60000000) {
        double o = px;
        px *= exp(0.002 * (urand() - 0.5) + (urand() < 0.001 ? 0.2 * (urand() - 0.5) : 0));
        double hi = fmax(o, px) * (1 + 0.001 * urand()), lo = fmin(o, px) * (1 - 0.001 * urand());
        bars[i] = (ap_bar){t, o, hi, lo, px, floor(1000 * urand())};
    }

    /* 1. the engine: push + full vector out */
    ap_features *f;
    if (ap_features_new(&f, &err))
        return 1;
    double best = 1e300, check = 0;
    for (int rep = 0; rep < 3; rep++) {
        ap_features_reset(f);
        double t0 = now_ns();
        for (size_t i = 0; i < n; i++) {
            ap_features_push(f, &bars[i], sink, NULL);
            check += sink[AP_FEATURE_COUNT - 1];
        }
        double dt = (now_ns() - t0) / (double)n;
        best = dt < best ? dt : best;
    }
    ap_features_free(f);

    /* 2. the store: append + ap_series_latest (what a predictor thread copies) */
    ap_series_store *st;
    ap_series_config cfg = {.max_series = 16, .history = 1024};
    if (ap_series_store_new(&cfg, &st, &err))
        return 1;
    ap_series *s, *roll;
    if (ap_series_open(st, "BENCH", 86400, 0, &s, &err) ||
        ap_series_open(st, "ROLL", 60, AP_SERIES_ROLLUP, &roll, &err)) {
        fprintf(stderr, "bench_features: %s\n", err.msg);
        return 1;
    }
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        ap_series_append(s, &bars[i], NULL);
        ap_series_latest(s, sink, NULL, NULL);
        check += sink[0];
    }
    double store_ns = (now_ns() - t0) / (double)n;
    /* 3. roll-up: only the synthetic 1-minute part is on a minute grid */
    t0 = now_ns();
    for (size_t i = have; i < n; i++)
        ap_series_append(roll, &bars[i], NULL);
    double roll_ns = (now_ns() - t0) / (double)(n - have);
    ap_series_store_free(st);

    printf("bars=%zu (ttrc %zu + synthetic %zu), checksum %g\n", n, have, n - have, check);
    printf("store: append+latest ns_per_bar=%.1f; roll-up 1m->5m..1d ns_per_1m_bar=%.1f\n",
           store_ns, roll_ns);
    printf("bench: features ours_ns_per_bar=%.1f\n", best);
    free(bars);
    free(sink);
    return 0;
}
