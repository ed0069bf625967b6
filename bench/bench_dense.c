/*
 * bench_dense NAME=MODEL.onnx...: FP16 dense weights (issue 12) against FP32
 * on linear / MLP ONNX graphs, native backend, single-threaded. Each model is
 * loaded twice; one copy is reduced with ap_onnx_set_precision on 256
 * warm-up rows (standard normal, tolerance 1e-3 unless the model needs
 * more: then the line says refused). Both copies predict the same 20 000
 * other rows: the held-out deviation is max |fp16 - fp32| over those. Prints
 * per model and batch size (1 and 1000 rows per call):
 *   bench: fp16-NAME batch=B fp16_ns_per_row=<x> fp32_ns_per_row=<y>
 *          max_abs_dev=<warm-up> heldout_max_abs_dev=<d> weight_bytes_fp16=<b>
 *          weight_bytes_fp32=<b> tolerance=<t>
 * (one line; a model refused at 1e-3 says so, then is timed reduced at twice
 * its deviation). Time is process CPU time, best of 5 interleaved repetitions.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alphapulse/onnx.h"
#include "dense/dense.h"   /* ap__dense_cpu_simd: which kernel runs */

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

static double run(const ap_onnx *m, const double *X, size_t n, size_t batch, double *Y)
{
    int nf = ap_onnx_num_features(m), nout = ap_onnx_num_outputs(m);
    ap_error err;
    double t0 = now_ns();
    for (size_t r = 0; r < n; r += batch)
        if (ap_onnx_predict(m, X + r * (size_t)nf, n - r < batch ? n - r : batch,
                            Y + r * (size_t)nout, &err)) {
            fprintf(stderr, "bench_dense: %s\n", err.msg);
            exit(1);
        }
    return (now_ns() - t0) / (double)n;
}

static int bench_model(const char *name, const char *path)
{
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    o.backend = AP_ONNX_NATIVE;
    ap_onnx *m32, *m16;
    ap_error err;
    if (ap_onnx_load(path, &o, &m32, &err) || ap_onnx_load(path, &o, &m16, &err)) {
        fprintf(stderr, "bench_dense: %s\n", err.msg);
        return 1;
    }
    int nf = ap_onnx_num_features(m32), nout = ap_onnx_num_outputs(m32);
    const size_t nwarm = 256, n = 20000;
    double *W = malloc(nwarm * (size_t)nf * sizeof *W), *X = malloc(n * (size_t)nf * sizeof *X);
    double *Y32 = malloc(n * (size_t)nout * sizeof *Y32), *Y16 = malloc(n * (size_t)nout * sizeof *Y16);
    for (size_t i = 0; i < nwarm * (size_t)nf; i++)
        W[i] = nrand();
    for (size_t i = 0; i < n * (size_t)nf; i++)
        X[i] = nrand();
    size_t b32 = ap_onnx_model_bytes(m32, AP_PRECISION_FULL);
    double dev = 0, tol = 1e-3;
    int rc = ap_onnx_set_precision(m16, AP_PRECISION_REDUCED, tol, W, nwarm, &dev, &err);
    if (rc != AP_OK) {
        printf("bench: fp16-%s refused at tolerance %g (%s)\n", name, tol, err.msg);
        /* still time it at the tolerance it needs, for the record */
        tol = 2 * dev;
        if (rc != AP_ERANGE ||
            ap_onnx_set_precision(m16, AP_PRECISION_REDUCED, tol, W, nwarm, &dev, &err)) {
            ap_onnx_free(m32);
            ap_onnx_free(m16);
            return rc == AP_ERANGE ? 1 : 0;
        }
    }
    size_t b16 = ap_onnx_model_bytes(m16, AP_PRECISION_REDUCED);
    run(m32, X, n, 1000, Y32);
    run(m16, X, n, 1000, Y16);
    double held = 0;
    for (size_t i = 0; i < n * (size_t)nout; i++)
        held = fmax(held, fabs(Y16[i] - Y32[i]));
    static const size_t batches[2] = {1, 1000};
    for (int b = 0; b < 2; b++) {
        double t32 = INFINITY, t16 = INFINITY;
        for (int rep = 0; rep < 5; rep++) {
            t32 = fmin(t32, run(m32, X, n, batches[b], Y32));
            t16 = fmin(t16, run(m16, X, n, batches[b], Y16));
        }
        printf("bench: fp16-%s batch=%zu fp16_ns_per_row=%.0f fp32_ns_per_row=%.0f "
               "max_abs_dev=%.3g heldout_max_abs_dev=%.3g weight_bytes_fp16=%zu "
               "weight_bytes_fp32=%zu tolerance=%.3g\n", name, batches[b], t16, t32, dev, held,
               b16, b32, tol);
    }
    printf("bench: fp16-%s detail: %s, %d features, %d outputs; weights %.2fx smaller\n", name,
           ap_onnx_summary(m32), nf, nout, (double)b32 / (double)b16);
    free(W);
    free(X);
    free(Y32);
    free(Y16);
    ap_onnx_free(m32);
    ap_onnx_free(m16);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_dense NAME=MODEL.onnx...\n");
        return 2;
    }
    printf("bench: fp16 kernel: %s\n", ap__dense_cpu_simd() ? "AVX + F16C (runtime dispatch)"
                                                             : "portable C (no AVX/F16C)");
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        char name[128];
        const char *eq = strchr(argv[i], '=');
        if (!eq || (size_t)(eq - argv[i]) >= sizeof name) {
            fprintf(stderr, "bench_dense: expected NAME=PATH, got %s\n", argv[i]);
            return 2;
        }
        memcpy(name, argv[i], (size_t)(eq - argv[i]));
        name[eq - argv[i]] = 0;
        rc |= bench_model(name, eq + 1);
    }
    return rc;
}
