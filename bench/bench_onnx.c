/*
 * bench_onnx MODEL.onnx ORT_LIB: the same .onnx file through the native
 * importer and through ONNX Runtime (intra-op threads 1), single-threaded.
 * First checks that both give the same outputs (max |diff| <= 1e-5 on
 * 2000 random rows, 5% missing), then times single-row calls and
 * 1000-row calls. Prints:
 *   bench: onnx-batch-1 ours_ns_per_row=<x> ort_ns_per_row=<y>
 *   bench: onnx-batch-1000 ours_ns_per_row=<x> ort_ns_per_row=<y>
 * Time is process CPU time (CLOCK_PROCESS_CPUTIME_ID: counts any thread ORT
 * might start), best of 5 repetitions.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "alphapulse/onnx.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}

static double nrand(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }

/* ns per row of predicting n rows in calls of `batch` rows, best of 5 */
static double time_it(const ap_onnx *m, const double *X, size_t n, size_t batch, double *Y)
{
    int nf = ap_onnx_num_features(m), nout = ap_onnx_num_outputs(m);
    double best = INFINITY;
    ap_error err;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns();
        for (size_t r = 0; r < n; r += batch)
            if (ap_onnx_predict(m, X + r * (size_t)nf, batch, Y + r * (size_t)nout, &err)) {
                fprintf(stderr, "bench_onnx: %s\n", err.msg);
                exit(1);
            }
        double t = (now_ns() - t0) / (double)n;
        if (t < best)
            best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_onnx MODEL.onnx LIBONNXRUNTIME\n");
        return 2;
    }
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    ap_onnx *nat, *ort;
    ap_error err;
    o.backend = AP_ONNX_NATIVE;
    if (ap_onnx_load(argv[1], &o, &nat, &err)) {
        fprintf(stderr, "bench_onnx: %s\n", err.msg);
        return 1;
    }
    o.backend = AP_ONNX_ORT;
    o.ort_library = argv[2];
    o.ort_threads = 1;
    if (ap_onnx_load(argv[1], &o, &ort, &err)) {
        fprintf(stderr, "bench_onnx: %s\n", err.msg);
        return 1;
    }
    int nf = ap_onnx_num_features(nat), nout = ap_onnx_num_outputs(nat);
    if (nout != ap_onnx_num_outputs(ort)) {
        fprintf(stderr, "bench_onnx: output widths differ (%d vs %d)\n", nout,
                ap_onnx_num_outputs(ort));
        return 1;
    }
    const size_t n = 20000, ncheck = 2000;
    double *X = malloc(n * (size_t)nf * sizeof *X);
    double *Y1 = malloc(n * (size_t)nout * sizeof *Y1), *Y2 = malloc(n * (size_t)nout * sizeof *Y2);
    for (size_t i = 0; i < n * (size_t)nf; i++)
        X[i] = urand() < 0.05 && i < ncheck * (size_t)nf ? NAN : nrand();
    /* parity */
    ap_onnx_predict(nat, X, ncheck, Y1, &err);
    if (ap_onnx_predict(ort, X, ncheck, Y2, &err)) {
        fprintf(stderr, "bench_onnx: %s\n", err.msg);
        return 1;
    }
    double maxd = 0;
    for (size_t i = 0; i < ncheck * (size_t)nout; i++)
        maxd = fmax(maxd, fabs(Y1[i] - Y2[i]));
    if (!(maxd <= 1e-5)) {
        fprintf(stderr, "bench_onnx: native and ORT differ by %g\n", maxd);
        return 1;
    }
    double o1 = time_it(nat, X, n, 1, Y1), r1 = time_it(ort, X, n, 1, Y2);
    double ok = time_it(nat, X, n, 1000, Y1), rk = time_it(ort, X, n, 1000, Y2);
    printf("bench: onnx-batch-1 ours_ns_per_row=%.0f ort_ns_per_row=%.0f\n", o1, r1);
    printf("bench: onnx-batch-1000 ours_ns_per_row=%.0f ort_ns_per_row=%.0f\n", ok, rk);
    printf("bench: onnx detail: %s, %d trees, %d features; speedup batch-1 %.1fx, batch-1000 "
           "%.1fx; parity max |native - ort| = %.3g on %zu rows (5%% missing)\n",
           ap_onnx_backend_name(ort), ap_onnx_num_trees(nat), nf, r1 / o1, rk / ok, maxd, ncheck);
    free(X);
    free(Y1);
    free(Y2);
    ap_onnx_free(nat);
    ap_onnx_free(ort);
    return 0;
}
