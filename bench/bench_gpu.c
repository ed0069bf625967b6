/*
 * bench_gpu: the GPU path on a machine that has one (tools/gpu-check.sh).
 *
 *   bench_gpu parity MODEL...   every model on the GPU against the CPU
 *                               engine, bit for bit: its folder's input.csv
 *                               (when there is one) and generated rows (NaN,
 *                               +-0, +-inf, huge values), raw and
 *                               transformed, calls of 1, 7, 1000 and all
 *                               rows. A model the GPU kernel refuses (linear
 *                               trees) is reported and stays on the CPU.
 *   bench_gpu bench MODEL [ROWS...]  rows/s on the CPU engine and the GPU
 *                               for each batch size (default 1 1000 10000
 *                               100000), best of several rounds, outputs
 *                               compared bitwise.
 *
 * Exit: 0 all good, 1 a mismatch or an error, 3 no usable CUDA device (the
 * reason printed): nothing was run on a GPU.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alphapulse.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Generated rows: values in [-3, 3), one in 16 NaN, one in 64 a special. */
static void gen_rows(double *X, size_t n, uint64_t seed)
{
    static const double sp[] = {0.0, -0.0, INFINITY, -INFINITY, 1e300, -1e300, 1e-35, 3.0e38,
                                3.5e38, -1.0, 0.5};
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        X[i] = (s & 15) == 0   ? NAN
               : (s & 63) == 1 ? sp[(s >> 8) % (sizeof sp / sizeof sp[0])]
                               : (double)(s >> 11) * 0x1p-53 * 6.0 - 3.0;
    }
}

/* The model folder's input.csv (header, comma-separated, empty = NaN). */
static double *read_input(const char *model, int nf, size_t *n)
{
    *n = 0;
    char path[1024];
    const char *sl = strrchr(model, '/');
    snprintf(path, sizeof path, "%.*s/input.csv", sl ? (int)(sl - model) : 1, sl ? model : ".");
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    static char line[1 << 20];
    size_t cap = 1024;
    double *X = malloc(cap * (size_t)nf * sizeof *X);
    if (!X || !fgets(line, sizeof line, fp)) {
        fclose(fp);
        free(X);
        return NULL;
    }
    while (fgets(line, sizeof line, fp)) {
        if (*n == cap) {
            cap *= 2;
            double *nx = realloc(X, cap * (size_t)nf * sizeof *X);
            if (!nx)
                break;
            X = nx;
        }
        char *p = line;
        for (int c = 0; c < nf; c++) {
            char *end;
            double v = strtod(p, &end);
            X[*n * (size_t)nf + c] = end == p ? NAN : v;
            p = strchr(end, ',');
            p = p ? p + 1 : end;
        }
        (*n)++;
    }
    fclose(fp);
    return X;
}

static int parity(const char *path)
{
    ap_forest *f;
    ap_error err = {0};
    if (ap_forest_load(path, AP_FORMAT_AUTO, &f, &err) != AP_OK) {
        printf("FAIL %s: %s\n", path, err.msg);
        return 1;
    }
    if (ap_forest_set_device(f, AP_DEVICE_GPU, 1, &err) != AP_OK) {
        int linear = strstr(err.msg, "linear leaves") != NULL;
        printf("%s %s: %s\n", linear ? "CPU " : "FAIL", path, err.msg);
        ap_forest_free(f);
        return linear ? 0 : 1;
    }
    int nf = ap_forest_num_features(f);
    size_t nin, ngen = 5000;
    double *in = read_input(path, nf, &nin);
    size_t n = nin + ngen;
    double *X = malloc(n * (size_t)nf * sizeof *X);
    int w = ap_forest_num_outputs(f, 0), wr = ap_forest_num_outputs(f, AP_PREDICT_RAW);
    if (w < wr)
        w = wr;
    double *a = malloc(n * (size_t)w * sizeof *a), *b = malloc(n * (size_t)w * sizeof *b);
    if (!X || !a || !b) {
        printf("FAIL %s: out of memory\n", path);
        return 1;
    }
    if (nin)
        memcpy(X, in, nin * (size_t)nf * sizeof *X);
    gen_rows(X + nin * (size_t)nf, ngen * (size_t)nf, 42);
    int bad = 0;
    static const size_t per_call[] = {1, 7, 1000, 0};
    for (int raw = 0; raw < 2 && !bad; raw++) {
        unsigned fl = raw ? AP_PREDICT_RAW : 0;
        size_t nout = (size_t)ap_forest_num_outputs(f, fl);
        ap_forest_predict(f, X, n, a, fl | AP_PREDICT_CPU);
        for (int k = 0; k < 4 && !bad; k++) {
            size_t per = per_call[k] ? per_call[k] : n;
            size_t upto = per < 16 && n > 1500 ? 1500 : n; /* one-row calls: 1500 rows */
            memset(b, 0xAB, upto * nout * sizeof *b);
            for (size_t r = 0; r < upto; r += per) {
                size_t m = upto - r < per ? upto - r : per;
                ap_forest_predict(f, X + r * (size_t)nf, m, b + r * nout, fl);
            }
            for (size_t i = 0; i < upto * nout; i++)
                if (memcmp(&a[i], &b[i], sizeof a[i])) {
                    printf("FAIL %s: %s, %zu rows per call: row %zu output %zu: cpu %.17g "
                           "gpu %.17g\n", path, raw ? "raw" : "outputs", per, i / nout,
                           i % nout, a[i], b[i]);
                    bad = 1;
                    break;
                }
        }
    }
    if (!bad)
        printf("OK   %s: %zu rows, raw and outputs, bitwise\n", path, n);
    free(in);
    free(X);
    free(a);
    free(b);
    ap_forest_free(f);
    return bad;
}

static int bench(const char *path, const size_t *sizes, int ns)
{
    ap_forest *f;
    ap_error err = {0};
    if (ap_forest_load(path, AP_FORMAT_AUTO, &f, &err) != AP_OK ||
        ap_forest_set_device(f, AP_DEVICE_GPU, 1, &err) != AP_OK) {
        printf("FAIL %s: %s\n", path, err.msg);
        return 1;
    }
    size_t top = 0;
    for (int i = 0; i < ns; i++)
        if (sizes[i] > top)
            top = sizes[i];
    int nf = ap_forest_num_features(f), w = ap_forest_num_outputs(f, 0);
    double *X = malloc(top * (size_t)nf * sizeof *X);
    double *a = malloc(top * (size_t)w * sizeof *a), *b = malloc(top * (size_t)w * sizeof *b);
    if (!X || !a || !b)
        return 1;
    gen_rows(X, top * (size_t)nf, 7);
    printf("model %s: %d trees, %d features\n", path, ap_forest_num_trees(f), nf);
    printf("| rows per call | CPU rows/s | GPU rows/s | GPU/CPU | bitwise |\n");
    printf("|---:|---:|---:|---:|:---:|\n");
    int bad = 0;
    for (int i = 0; i < ns; i++) {
        size_t n = sizes[i];
        double best[2] = {1e30, 1e30};
        for (int dev = 0; dev < 2; dev++) {
            double spent = 0;
            for (int round = 0; round < 20 && (round < 3 || spent < 1.0); round++) {
                double t0 = now_s();
                /* small batches: enough calls for ~10 ms a round */
                size_t calls = 0;
                do {
                    ap_forest_predict(f, X, n, dev ? b : a, dev ? 0 : AP_PREDICT_CPU);
                    calls++;
                } while (now_s() - t0 < 0.01 && calls < 100000);
                double dt = (now_s() - t0) / (double)calls;
                spent += dt * (double)calls;
                if (dt < best[dev])
                    best[dev] = dt;
            }
        }
        int same = memcmp(a, b, n * (size_t)w * sizeof *a) == 0;
        bad |= !same;
        printf("| %zu | %.0f | %.0f | %.2f | %s |\n", n, (double)n / best[0],
               (double)n / best[1], best[0] / best[1], same ? "yes" : "NO");
    }
    free(X);
    free(a);
    free(b);
    ap_forest_free(f);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "parity") && strcmp(argv[1], "bench"))) {
        fprintf(stderr, "usage: bench_gpu parity MODEL... | bench_gpu bench MODEL [ROWS...]\n");
        return 2;
    }
    char why[256];
    int ndev = ap_gpu_available(why, sizeof why);
    if (ndev == 0) {
        printf("bench_gpu: %s: nothing run on a GPU\n", why);
        return 3;
    }
    int bad = 0;
    if (!strcmp(argv[1], "parity")) {
        for (int i = 2; i < argc; i++)
            bad |= parity(argv[i]);
        return bad;
    }
    size_t sizes[16] = {1, 1000, 10000, 100000};
    int ns = 4;
    if (argc > 3) {
        ns = 0;
        for (int i = 3; i < argc && ns < 16; i++)
            sizes[ns++] = (size_t)strtoull(argv[i], NULL, 10);
    }
    return bench(argv[2], sizes, ns);
}
