/*
 * Test rows aimed at a forest's splits, shared by the reduced-precision
 * parity test (tests/forest/test_reduced.c) and the GPU kernel body test
 * (tests/gpu/test_gpu_body.c): every numeric threshold and one ulp either
 * side (and the float midpoints of F32 thresholds), special values (+-0,
 * +-1e-35 and its float neighbours, huge, +-inf, NaN), on a seeded
 * background of plain and edge values; and a fixture's input.csv. Static
 * helpers for one test program each (cmocka asserts).
 */
#ifndef AP_TESTS_FOREST_EDGE_ROWS_H
#define AP_TESTS_FOREST_EDGE_ROWS_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forest/forest_internal.h"

/* The values aimed at one split threshold t. */
static int edge_values(double t, int f32, double *v)
{
    int n = 0;
    v[n++] = t;
    v[n++] = nextafter(t, INFINITY);
    v[n++] = nextafter(t, -INFINITY);
    if (f32 && fabs(t) <= FLT_MAX) {
        float tf = (float)t;
        double lo = ((double)nextafterf(tf, -INFINITY) + (double)tf) / 2;
        double hi = ((double)nextafterf(tf, INFINITY) + (double)tf) / 2;
        v[n++] = lo;
        v[n++] = nextafter(lo, INFINITY);
        v[n++] = nextafter(lo, -INFINITY);
        v[n++] = hi;
        v[n++] = nextafter(hi, INFINITY);
        v[n++] = nextafter(hi, -INFINITY);
    }
    return n;
}

static const double specials[] = {
    0.0, -0.0, 1e-35, -1e-35, (double)1e-35f, -(double)1e-35f, 1.0000000180025096e-35,
    1e-300, -1e-300, 1e300, -1e300, DBL_MAX, -DBL_MAX, FLT_MAX, -FLT_MAX,
    (double)FLT_MAX * 1.0000001, 0x1.ffffffp127, 0.5, -0.5, -0.99, -1.0, 1.0, 3.0, 3.7, 31.0,
    32.0, 33.0, 100.0, 1e10,
};

/* nin input rows (in, may be NULL) then edge rows for forest f; past cap_n
   edge values, only a sample of the remaining splits (big forests, kept
   short for the sanitizer runs). */
static double *edge_rows(const ap_forest *f, const double *in, size_t nin, size_t cap_n,
                         size_t *nrows)
{
    const ap_forest_ir *ir = &f->ir;
    const int nf = ir->num_features, f32 = ir->precision == AP_PREC_F32;
    size_t cap = 64, n = 0;
    double *vals = malloc(cap * sizeof *vals);
    int *feat = malloc(cap * sizeof *feat);
    assert_non_null(vals);
    assert_non_null(feat);
    for (int32_t t = 0; t < ir->ntrees; t++)
        for (int32_t k = 0; k < ir->trees[t].nnodes; k++) {
            const ap_ir_node *nd = &ir->trees[t].nodes[k];
            if (nd->kind != AP_SPLIT_NUM || (n > cap_n && (t * 131 + k) % 61))
                continue;
            double v[9];
            int m = edge_values(nd->threshold, f32, v);
            if (n + (size_t)m > cap) {
                cap = 2 * cap + (size_t)m;
                vals = realloc(vals, cap * sizeof *vals);
                feat = realloc(feat, cap * sizeof *feat);
                assert_non_null(vals);
                assert_non_null(feat);
            }
            for (int i = 0; i < m; i++) {
                vals[n] = v[i];
                feat[n++] = nd->feature;
            }
        }
    size_t nsp = sizeof specials / sizeof specials[0];
    size_t nedge = n + nsp * 2 + 3;
    size_t total = nin + nedge;
    double *X = malloc(total * (size_t)nf * sizeof *X);
    assert_non_null(X);
    if (nin)
        memcpy(X, in, nin * (size_t)nf * sizeof *X);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t r = 0; r < nedge; r++) {
        double *row = X + (nin + r) * (size_t)nf;
        for (int c = 0; c < nf; c++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t pick = (size_t)(s >> 33);
            row[c] = pick % 5 == 0 ? NAN
                     : pick % 5 == 1 && n ? vals[pick % n]
                     : pick % 5 == 2 ? (pick & 64 ? -1 : 1) * specials[pick % nsp]
                                     : ((double)(pick % 2001) - 1000.0) / 100.0;
        }
        if (r < n)
            row[feat[r]] = vals[r];
        else if (r < n + nsp)
            for (int c = 0; c < nf; c++)
                row[c] = specials[(r - n + (size_t)c) % nsp];
        else if (r < n + 2 * nsp)
            for (int c = 0; c < nf; c++)
                row[c] = -specials[(r - n - nsp + (size_t)c) % nsp];
        else
            for (int c = 0; c < nf; c++)
                row[c] = r == nedge - 3 ? NAN : r == nedge - 2 ? INFINITY : -INFINITY;
    }
    free(vals);
    free(feat);
    *nrows = total;
    return X;
}

/* Rows of a fixture's input.csv (header, then comma-separated, empty = NaN). */
static double *read_input(const char *model_path, int nf, size_t *nrows)
{
    *nrows = 0;
    char path[512];
    const char *slash = model_path ? strrchr(model_path, '/') : NULL;
    if (!slash)
        return NULL;
    snprintf(path, sizeof path, "%.*s/input.csv", (int)(slash - model_path), model_path);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char line[65536];
    size_t cap = 256, n = 0;
    double *X = malloc(cap * (size_t)nf * sizeof *X);
    assert_non_null(X);
    assert_non_null(fgets(line, sizeof line, fp));   /* header */
    while (fgets(line, sizeof line, fp)) {
        if (n == cap) {
            cap *= 2;
            X = realloc(X, cap * (size_t)nf * sizeof *X);
            assert_non_null(X);
        }
        char *p = line;
        for (int c = 0; c < nf; c++) {
            char *end;
            double v = strtod(p, &end);
            X[n * (size_t)nf + c] = end == p ? NAN : v;
            p = strchr(end, ',');
            p = p ? p + 1 : end;
        }
        n++;
    }
    fclose(fp);
    *nrows = n;
    return X;
}

#endif
