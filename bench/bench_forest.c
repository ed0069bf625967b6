/*
 * Forest predict: alphapulse vs XGBoost's own C API on the same model file
 * and the same rows, single-threaded on both sides.
 *
 *   bench_forest SCENARIO MODEL.json ROWS_PER_CALL [NAN_FRACTION]
 *
 * Prints exactly one line
 *   bench: SCENARIO ours_ns_per_row=X xgboost_ns_per_row=Y
 * then extra lines (ratio, spread). Before timing it checks that both sides
 * agree on every prediction (ours rounded to float32 == XGBoost's float32),
 * for batch calls and for single-row calls, and exits 1 if not.
 *
 * Rows: 50-feature standard normal values from a fixed-seed generator (the
 * training distribution of bench/train.py), NAN_FRACTION of them missing.
 * Timing: REPS rounds, each timing ours then XGBoost for ~0.3 s of calls
 * cycling through the row set; the median round is reported, the best too.
 * Time is this thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a shared,
 * noisy machine it leaves out the time other processes hold the core,
 * which wall time does not. Both sides run in this thread (XGBoost with
 * nthread=1 predicts in the caller's thread).
 * XGBoost gets every advantage we can give it: its array-interface strings
 * are built before timing, nthread=1, and it is warmed up the same way.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xgboost/c_api.h>

#include "alphapulse.h"

#define REPS 5
#define ROUND_NS 3e8

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_s = 0x243F6A8885A308D3ull;
static double urand(void)
{
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return ((double)(rng_s >> 11) + 0.5) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }

#define XGB_CHECK(call)                                                                            \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            fprintf(stderr, "bench: xgboost: %s: %s\n", #call, XGBGetLastError());                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static const char *XGB_CONFIG = "{\"type\":0,\"training\":false,\"iteration_begin\":0,"
                                "\"iteration_end\":0,\"strict_shape\":false,\"missing\":NaN,"
                                "\"cache_id\":0}";

typedef struct ctx {
    ap_forest *f;
    ap_forest *fr;     /* the same model at reduced precision (issue 12) */
    BoosterHandle h;
    const double *X;   /* nset rows */
    size_t nset, nf, per_call;
    char **iface;      /* XGBoost array interface per call start (row index) */
    double *out;
} ctx;

static char *array_interface(const double *p, size_t rows, size_t cols)
{
    char *s = malloc(256);
    if (!s)
        exit(1);
    snprintf(s, 256,
             "{\"data\":[%llu,true],\"shape\":[%zu,%zu],\"typestr\":\"<f8\",\"version\":3}",
             (unsigned long long)(uintptr_t)p, rows, cols);
    return s;
}

/* One call per `per_call` rows, cycling through the set until ~ns elapse.
   Returns ns per row. */
static double time_side(ctx *c, int side, double budget_ns)
{
    size_t calls = 0, start = 0;
    /* reading the thread CPU clock is a system call: not after every
       single-row call, but after every batch call */
    const int between = c->per_call >= 100 ? 1 : 1024;
    double t0 = now_ns(), t;
    do {
        for (int k = 0; k < between; k++) {
            if (side == 1) {
                bst_ulong const *shape;
                bst_ulong dim;
                const float *res;
                XGB_CHECK(XGBoosterPredictFromDense(c->h, c->iface[start], XGB_CONFIG, NULL,
                                                    &shape, &dim, &res));
            } else {
                ap_forest_predict(side == 2 ? c->fr : c->f, c->X + start * c->nf, c->per_call,
                                  c->out, 0);
            }
            calls++;
            start += c->per_call;
            if (start + c->per_call > c->nset)
                start = 0;
        }
        t = now_ns();
    } while (t - t0 < budget_ns);
    return (t - t0) / ((double)calls * (double)c->per_call);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Both sides must agree (as float32) on every row, batch and single-row. */
static void check_agree(ctx *c, const char *scenario)
{
    double *ours = malloc(c->nset * sizeof *ours);
    double *one = malloc(sizeof *one);
    if (!ours || !one)
        exit(1);
    ap_forest_predict(c->f, c->X, c->nset, ours, 0);
    char *all = array_interface(c->X, c->nset, c->nf);
    bst_ulong const *shape;
    bst_ulong dim;
    const float *res;
    XGB_CHECK(XGBoosterPredictFromDense(c->h, all, XGB_CONFIG, NULL, &shape, &dim, &res));
    size_t bad = 0;
    for (size_t r = 0; r < c->nset; r++) {
        ap_forest_predict(c->f, c->X + r * c->nf, 1, one, 0);
        if ((float)ours[r] != res[r] || one[0] != ours[r]) {
            if (bad++ < 5)
                fprintf(stderr, "bench: %s: row %zu: ours %.9g (single-row %.9g) xgboost %.9g\n",
                        scenario, r, ours[r], one[0], (double)res[r]);
        }
    }
    /* the reduced engine: bit for bit the full engine, batch and single-row */
    double *red = malloc(c->nset * sizeof *red);
    if (!red)
        exit(1);
    ap_forest_predict(c->fr, c->X, c->nset, red, 0);
    for (size_t r = 0; r < c->nset; r++) {
        ap_forest_predict(c->fr, c->X + r * c->nf, 1, one, 0);
        if (memcmp(&red[r], &ours[r], sizeof red[r]) || memcmp(one, &ours[r], sizeof *one)) {
            if (bad++ < 5)
                fprintf(stderr, "bench: %s: row %zu: reduced %.17g (single-row %.17g) full %.17g\n",
                        scenario, r, red[r], one[0], ours[r]);
        }
    }
    free(red);
    free(all);
    free(ours);
    free(one);
    if (bad) {
        fprintf(stderr, "bench: %s: %zu of %zu predictions differ from XGBoost\n", scenario,
                bad, c->nset);
        exit(1);
    }
}

/* Full vs reduced on a model no reference library here can load. */
static int bench_no_reference(ctx *c, const char *scenario, int tty)
{
    double *a = malloc(c->nset * sizeof *a), *b = malloc(c->nset * sizeof *b);
    if (!a || !b)
        return 1;
    ap_forest_predict(c->f, c->X, c->nset, a, 0);
    ap_forest_predict(c->fr, c->X, c->nset, b, 0);
    if (memcmp(a, b, c->nset * sizeof *a) != 0) {
        fprintf(stderr, "bench: %s: reduced differs from full\n", scenario);
        return 1;
    }
    free(a);
    free(b);
    time_side(c, 0, 5e7);
    time_side(c, 2, 5e7);
    double ours[REPS], red[REPS];
    for (int r = 0; r < REPS; r++) {
        if (tty)
            fprintf(stderr, "\rbench: %s: round %d/%d ", scenario, r + 1, REPS);
        ours[r] = time_side(c, 0, ROUND_NS);
        red[r] = time_side(c, 2, ROUND_NS);
    }
    if (tty)
        fprintf(stderr, "\r%60s\r", "");
    qsort(ours, REPS, sizeof ours[0], cmp_double);
    qsort(red, REPS, sizeof red[0], cmp_double);
    double om = ours[REPS / 2], rm = red[REPS / 2];
    printf("bench: reduced-%s reduced_ns_per_row=%.1f full_ns_per_row=%.1f "
           "xgboost_ns_per_row=none model_bytes_reduced=%zu model_bytes_full=%zu\n",
           scenario, rm, om, ap_forest_model_bytes(c->fr, AP_PRECISION_REDUCED),
           ap_forest_model_bytes(c->f, AP_PRECISION_FULL));
    printf("bench: reduced-%s speedup_vs_full=%.2fx (no reference library: LightGBM's C API "
           "is not in the Debian/npm reach; %zu rows per call)\n",
           scenario, om / rm, c->per_call);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_forest SCENARIO MODEL.json ROWS_PER_CALL [NAN_FRACTION]\n");
        return 2;
    }
    const char *scenario = argv[1], *model = argv[2];
    size_t per_call = (size_t)atol(argv[3]);
    double nan_frac = argc > 4 ? atof(argv[4]) : 0.0;
    int tty = isatty(2);
    /* a LightGBM text model: no reference library here (LightGBM's C API is
       neither in Debian nor on npm), so full vs reduced only */
    size_t ml = strlen(model);
    const int noxgb = ml > 4 && strcmp(model + ml - 4, ".txt") == 0;

    ctx c = {.per_call = per_call};
    ap_error err;
    if (ap_forest_load(model, AP_FORMAT_AUTO, &c.f, &err) != AP_OK) {
        fprintf(stderr, "bench: %s: %s\n", scenario, err.msg);
        return 1;
    }
    c.nf = (size_t)ap_forest_num_features(c.f);
    if (ap_forest_load(model, AP_FORMAT_AUTO, &c.fr, &err) != AP_OK ||
        ap_forest_set_precision(c.fr, AP_PRECISION_REDUCED, &err) != AP_OK) {
        fprintf(stderr, "bench: %s: reduced precision: %s\n", scenario, err.msg);
        return 1;
    }
    if (!noxgb) {
        XGB_CHECK(XGBoosterCreate(NULL, 0, &c.h));
        XGB_CHECK(XGBoosterLoadModel(c.h, model));
        XGB_CHECK(XGBoosterSetParam(c.h, "nthread", "1"));
    }

    /* at least 1000 distinct rows, a whole number of calls */
    c.nset = per_call >= 1000 ? per_call : (1000 / per_call) * per_call;
    double *X = malloc(c.nset * c.nf * sizeof *X);
    c.out = malloc(per_call * sizeof *c.out);
    size_t ncalls = c.nset / per_call;
    c.iface = calloc(c.nset, sizeof *c.iface); /* by the row a call starts at */
    if (!X || !c.out || !c.iface)
        return 1;
    for (size_t i = 0; i < c.nset * c.nf; i++)
        X[i] = urand() < nan_frac ? NAN : nrand();
    c.X = X;
    for (size_t k = 0; k < ncalls; k++)
        c.iface[k * per_call] = array_interface(X + k * per_call * c.nf, per_call, c.nf);

    if (noxgb)
        return bench_no_reference(&c, scenario, tty);
    check_agree(&c, scenario);

    /* warm up both (XGBoost builds its predictor state on first use) */
    time_side(&c, 0, 5e7);
    time_side(&c, 1, 5e7);
    time_side(&c, 2, 5e7);
    double ours[REPS], xgb[REPS], red[REPS];
    for (int r = 0; r < REPS; r++) {
        if (tty)
            fprintf(stderr, "\rbench: %s: round %d/%d ", scenario, r + 1, REPS);
        ours[r] = time_side(&c, 0, ROUND_NS);
        xgb[r] = time_side(&c, 1, ROUND_NS);
        red[r] = time_side(&c, 2, ROUND_NS);
    }
    if (tty)
        fprintf(stderr, "\r%60s\r", "");
    double ob = ours[0], xb = xgb[0];
    for (int r = 1; r < REPS; r++) {
        ob = ours[r] < ob ? ours[r] : ob;
        xb = xgb[r] < xb ? xgb[r] : xb;
    }
    qsort(ours, REPS, sizeof ours[0], cmp_double);
    qsort(xgb, REPS, sizeof xgb[0], cmp_double);
    qsort(red, REPS, sizeof red[0], cmp_double);
    double om = ours[REPS / 2], xm = xgb[REPS / 2], rm = red[REPS / 2];
    printf("bench: %s ours_ns_per_row=%.1f xgboost_ns_per_row=%.1f\n", scenario, om, xm);
    printf("bench: reduced-%s reduced_ns_per_row=%.1f full_ns_per_row=%.1f "
           "xgboost_ns_per_row=%.1f model_bytes_reduced=%zu model_bytes_full=%zu\n",
           scenario, rm, om, xm, ap_forest_model_bytes(c.fr, AP_PRECISION_REDUCED),
           ap_forest_model_bytes(c.f, AP_PRECISION_FULL));
    printf("bench: reduced-%s speedup_vs_full=%.2fx speedup_vs_xgboost=%.1fx node_bytes "
           "reduced=%d full=%d\n",
           scenario, om / rm, xm / rm, ap_forest_node_bytes(c.fr, AP_PRECISION_REDUCED),
           ap_forest_node_bytes(c.f, AP_PRECISION_FULL));
    printf("bench: %s speedup=%.1fx (median of %d rounds; best: ours %.1f xgboost %.1f = %.1fx; "
           "%zu rows per call, %.0f%% missing)\n",
           scenario, xm / om, REPS, ob, xb, xb / ob, per_call, nan_frac * 100);
    fflush(stdout);

    for (size_t k = 0; k < ncalls; k++)
        free(c.iface[k * per_call]);
    free(c.iface);
    free(X);
    free(c.out);
    XGB_CHECK(XGBoosterFree(c.h));
    ap_forest_free(c.f);
    ap_forest_free(c.fr);
    return 0;
}
