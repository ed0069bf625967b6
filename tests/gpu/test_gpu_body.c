/*
 * The GPU path without a GPU (issue 17, docs/GPU.md).
 *
 * 1. The kernel body (src/gpu/kernel_body.h), compiled here as plain C, on
 *    the flat GPU layout of every forest fixture of tests/data, against the
 *    CPU engine bit for bit: margins (raw) and outputs, on the fixture's
 *    input.csv plus rows aimed at every split (each threshold and one ulp
 *    either side, the float midpoints of F32 thresholds, NaN, +-inf, +-0,
 *    +-1e-35 and its neighbours, huge values, negative / fractional / out of
 *    range categories). The engine is itself checked against XGBoost and
 *    LightGBM by the parity tests. Linear trees: the documented refusal.
 * 2. A hand-built F32 forest with categorical splits, vector trees and dart
 *    weights (no fixture has those three in float32).
 * 3. The whole device path (ap_forest_set_device, chunking, transform,
 *    thresholds, fallback, refusal messages, memory freed) with a fake
 *    backend that runs the same body on the host, and with an absent one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse.h"
#include "forest/forest_internal.h"
#include "gpu/gpu.h"

static const char *fixtures[] = {
    "tests/data/xgboost/dart_1.7.json",          "tests/data/xgboost/dart_1.7.ubj",
    "tests/data/xgboost/dart_3x.json",           "tests/data/xgboost/dart_3x.ubj",
    "tests/data/lightgbm/binary/model.txt",      "tests/data/lightgbm/categorical/model.txt",
    "tests/data/lightgbm/large/model.txt",       "tests/data/lightgbm/multiclass/model.txt",
    "tests/data/lightgbm/multiclassova/model.txt", "tests/data/lightgbm/poisson/model.txt",
    "tests/data/lightgbm/random_forest/model.txt", "tests/data/lightgbm/regression/model.txt",
    "tests/data/lightgbm/regression_l1/model.txt", "tests/data/lightgbm/single_leaf/model.txt",
    "tests/data/lightgbm/zero_as_missing/model.txt",
};

/* ---- a fake device: the kernel body on the host, counted --------------- */

static struct {
    int present, fail_run, uploads, releases, runs;
    size_t max_rows, most_rows;
} fake;

typedef struct fake_dev {
    ap_gpu_hdr hdr;
    unsigned char *blob;
    size_t max_rows;
} fake_dev;

static int fake_probe(char *why, size_t cap)
{
    if (!fake.present)
        snprintf(why, cap, "no CUDA device");
    return fake.present;
}
static int fake_upload(const ap_gpu_hdr *h, const void *blob, size_t max_rows, void **dev,
                       char *msg, size_t cap)
{
    fake_dev *d = malloc(sizeof *d);
    assert_non_null(d);
    d->hdr = *h;
    d->blob = malloc(h->bytes);
    assert_non_null(d->blob);
    memcpy(d->blob, blob, h->bytes);
    d->max_rows = max_rows;
    fake.max_rows = max_rows;
    fake.uploads++;
    *dev = d;
    return 0;
}
static int fake_run(void *dev, const double *X, size_t nrows, int raw, double *margins, char *msg,
                    size_t cap)
{
    fake_dev *d = dev;
    fake.runs++;
    if (nrows > fake.most_rows)
        fake.most_rows = nrows;
    if (fake.fail_run || nrows > d->max_rows) {
        snprintf(msg, cap, "fake failure");
        return -1;
    }
    ap_gpu_layout l = {d->hdr, d->blob};
    ap__gpu_layout_run_host(&l, X, nrows, raw, margins);
    return 0;
}
static void fake_release(void *dev)
{
    fake_dev *d = dev;
    fake.releases++;
    free(d->blob);
    free(d);
}
static const ap_gpu_backend fake_be = {"fake", fake_probe, fake_upload, fake_run, fake_release, 1000};

static void fake_reset(int present)
{
    memset(&fake, 0, sizeof fake);
    fake.present = present;
}

/* ---- rows: input.csv (if any), then edge rows aimed at the splits ----- */

#include "forest/edge_rows.h"

static double *test_rows(const ap_forest *f, const char *model_path, size_t *nrows)
{
    size_t nin = 0;
    double *in = read_input(model_path, f->ir.num_features, &nin);
    double *X = edge_rows(f, in, nin, 1500, nrows);
    free(in);
    return X;
}

static void bitwise(const double *a, const double *b, size_t n, int w, const char *what,
                    const char *how)
{
    for (size_t i = 0; i < n * (size_t)w; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            fail_msg("%s (%s): row %zu output %zu: engine %.17g gpu body %.17g", what, how,
                     i / (size_t)w, i % (size_t)w, a[i], b[i]);
}

/* The body on the layout vs the CPU engine, raw and transformed; then the
   same through ap_forest_predict on the fake device. */
static void check_forest(ap_forest *f, const double *X, size_t n, const char *what)
{
    ap_gpu_layout lay;
    ap_error err = {0};
    if (ap__gpu_layout_build(&f->ir, &lay, &err) != AP_OK)
        fail_msg("%s: layout: %s", what, err.msg);
    int G = ap_forest_num_outputs(f, AP_PREDICT_RAW), W = ap_forest_num_outputs(f, 0);
    int w = G > W ? G : W;
    double *a = malloc(n * (size_t)w * sizeof *a), *b = malloc(n * (size_t)w * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    /* raw margins straight from the body */
    ap_forest_predict(f, X, n, a, AP_PREDICT_RAW);
    ap__gpu_layout_run_host(&lay, X, n, 1, b);
    bitwise(a, b, n, G, what, "raw, body");
    /* averaged margins (raw = 0) through the host transform: the device path */
    fake_reset(1);
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_GPU, 0, &fake_be, &err), AP_OK);
    assert_int_equal(ap_forest_device(f), AP_DEVICE_GPU);
    assert_int_equal(ap_forest_gpu_min_rows(f), 1);
    for (int raw = 0; raw < 2; raw++) {
        unsigned fl = raw ? AP_PREDICT_RAW : 0;
        int nout = raw ? G : W;
        ap_forest_predict(f, X, n, a, fl | AP_PREDICT_CPU);
        memset(b, 0xAB, n * (size_t)nout * sizeof *b);
        int runs = fake.runs;
        ap_forest_predict(f, X, n, b, fl);
        assert_int_equal(fake.runs, runs + (int)((n + 999) / 1000)); /* chunks of 1000 */
        bitwise(a, b, n, nout, what, raw ? "raw, device path" : "outputs, device path");
    }
    /* a single row too (where the CPU engine takes its one-row walk) */
    ap_forest_predict(f, X, 1, a, AP_PREDICT_CPU);
    ap_forest_predict(f, X, 1, b, 0);
    bitwise(a, b, 1, W, what, "one row");
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_CPU, 0, &fake_be, &err), AP_OK);
    assert_int_equal(fake.releases, 1);
    assert_int_equal(ap_forest_device(f), AP_DEVICE_CPU);
    ap__gpu_layout_free(&lay);
    free(a);
    free(b);
}

static void test_fixtures(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        ap_forest *f;
        ap_error err = {0};
        if (ap_forest_load(fixtures[i], AP_FORMAT_AUTO, &f, &err) != AP_OK)
            fail_msg("%s: %s", fixtures[i], err.msg);
        size_t n;
        double *X = test_rows(f, fixtures[i], &n);
        /* the 1000-tree model: its first 1000 input rows and the last 2000
           edge rows (the specials, NaN and infinities among them), to keep
           the sanitizer run short */
        size_t nf = (size_t)ap_forest_num_features(f);
        if (ap_forest_num_trees(f) > 200 && n > 3000) {
            memmove(X + 1000 * nf, X + (n - 2000) * nf, 2000 * nf * sizeof *X);
            n = 3000;
        }
        check_forest(f, X, n, fixtures[i]);
        printf("%-50s rows %6zu  bitwise\n", fixtures[i], n);
        free(X);
        ap_forest_free(f);
    }
}

/* Linear trees: refused with the reason, the forest stays on the CPU. */
static void test_linear_refused(void **state)
{
    (void)state;
    ap_forest *f;
    ap_error err = {0};
    assert_int_equal(ap_forest_load("tests/data/lightgbm/linear_tree/model.txt", AP_FORMAT_AUTO,
                                    &f, &err), AP_OK);
    ap_gpu_layout lay;
    assert_int_equal(ap__gpu_layout_build(&f->ir, &lay, &err), AP_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "linear leaves"));
    fake_reset(1);
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_GPU, 0, &fake_be, &err),
                     AP_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "device gpu: "));
    assert_non_null(strstr(err.msg, "linear leaves"));
    assert_int_equal(ap_forest_device(f), AP_DEVICE_CPU);
    assert_int_equal(fake.uploads, 0);
    /* auto: fine, on the CPU, saying why */
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_AUTO, 0, &fake_be, &err), AP_OK);
    assert_int_equal(ap_forest_device(f), AP_DEVICE_CPU);
    assert_non_null(strstr(ap_forest_device_note(f), "linear leaves"));
    ap_forest_free(f);
}

/* An F32 forest of 1 + 3 groups with what no fixture has in float32:
   categorical splits (in range, negative, fractional, past the bitset),
   vector trees, dart weights, default directions both ways. */
static void test_handmade_f32(void **state)
{
    (void)state;
    for (int G = 1; G <= 3; G += 2) {
        ap_forest_ir ir;
        ap_error err = {0};
        ap__forest_ir_init(&ir);
        ir.precision = AP_PREC_F32;
        ir.num_features = 3;
        ir.num_groups = G;
        ir.transform = G > 1 ? AP_TF_SOFTMAX : AP_TF_SIGMOID;
        ir.sigmoid_scale = 1.0;
        snprintf(ir.source, sizeof ir.source, "xgboost");
        ir.base_score = calloc((size_t)G, sizeof *ir.base_score);
        assert_non_null(ir.base_score);
        for (int g = 0; g < G; g++)
            ir.base_score[g] = 0.1 * (g + 1);
        const uint32_t words[2] = {0xA5A5A5A5u, 0x0000F00Fu};
        uint32_t cat_off;
        assert_int_equal(ap__forest_ir_add_cat(&ir, words, 2, &cat_off, &err), AP_OK);
        for (int t = 0; t < 24; t++) {
            ap_ir_tree *tr = ap__forest_ir_add_tree(&ir, 5, &err);
            assert_non_null(tr);
            tr->group = (t % 3 == 2) ? AP_GROUP_ALL : t % G;
            tr->weight = t % 4 == 1 ? 0.37 + t * 0.01 : 1.0;
            ap_ir_node *nd = tr->nodes;
            /* root: categorical on feature 0; node 1: numeric on 1; leaves 2,3,4 */
            nd[0].kind = AP_SPLIT_CAT;
            nd[0].feature = 0;
            nd[0].left = 1;
            nd[0].right = 4;
            nd[0].default_left = (uint8_t)(t & 1);
            nd[0].cat_oor_left = (uint8_t)((t >> 1) & 1);
            nd[0].cat_off = cat_off;
            nd[0].cat_nwords = t % 2 ? 2 : 1;
            nd[1].kind = AP_SPLIT_NUM;
            nd[1].feature = 1 + t % 2;
            nd[1].missing = AP_MISS_NAN;
            nd[1].default_left = (uint8_t)(t % 3 == 0);
            nd[1].threshold = (double)(float)(0.1 * t - 1.0);
            nd[1].left = 2;
            nd[1].right = 3;
            for (int k = 2; k < 5; k++) {
                nd[k].kind = AP_SPLIT_LEAF;
                nd[k].value = 0.01 * (t + 1) * (k - 3) + 1e-7 * t;
                if (tr->group == AP_GROUP_ALL) {
                    double v[3];
                    for (int g = 0; g < G; g++)
                        v[g] = 0.013 * (k + g) - 0.021 * t;
                    assert_int_equal(ap__forest_ir_add_vec(&ir, v, &nd[k].vec_off, &err), AP_OK);
                }
            }
        }
        ap_forest *f;
        if (ap__forest_from_ir(&ir, "handmade", &f, &err) != AP_OK)
            fail_msg("handmade: %s", err.msg);
        size_t n;
        double *X = test_rows(f, NULL, &n);
        /* categories: -1, -0.5, -0, 0..70, fractional, NaN, inf */
        for (size_t r = 0; r < n; r++)
            X[r * 3] = r % 80 < 72 ? (double)(r % 80) - 1.0 + (r % 7 == 0 ? 0.5 : 0.0)
                       : r % 80 == 72 ? -0.5 : r % 80 == 73 ? -0.0 : r % 80 == 74 ? NAN
                       : r % 80 == 75 ? INFINITY : r % 80 == 76 ? -INFINITY : 1e12;
        check_forest(f, X, n, G > 1 ? "handmade f32, 3 groups" : "handmade f32, 1 group");
        free(X);
        ap_forest_free(f);
    }
}

static ap_forest *small_forest(void)
{
    ap_forest *f;
    ap_error err = {0};
    if (ap_forest_load("tests/data/lightgbm/binary/model.txt", AP_FORMAT_AUTO, &f, &err) != AP_OK)
        fail_msg("%s", err.msg);
    return f;
}

/* No device: auto runs on the CPU and says why; gpu is refused naming it. */
static void test_absent_device(void **state)
{
    (void)state;
    ap_forest *f = small_forest();
    ap_error err = {0};
    fake_reset(0);
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_AUTO, 0, &fake_be, &err), AP_OK);
    assert_int_equal(ap_forest_device(f), AP_DEVICE_CPU);
    assert_int_equal(ap_forest_gpu_min_rows(f), 0);
    assert_string_equal(ap_forest_device_note(f), "no CUDA device");
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_GPU, 0, &fake_be, &err),
                     AP_EUNSUPPORTED);
    assert_string_equal(err.msg, "device gpu: no CUDA device");
    assert_int_equal(fake.uploads, 0);
    /* the build's own backend: this machine may or may not have a device */
    char why[256];
    int n = ap_gpu_available(why, sizeof why);
    if (n == 0) {
        assert_true(strstr(why, "built without CUDA") || strstr(why, "no CUDA device"));
        int rc = ap_forest_set_device(f, AP_DEVICE_GPU, 0, &err);
        assert_int_equal(rc, AP_EUNSUPPORTED);
        assert_non_null(strstr(err.msg, why));
        assert_int_equal(ap_forest_set_device(f, AP_DEVICE_AUTO, 0, &err), AP_OK);
        assert_string_equal(ap_forest_device_note(f), why);
    }
    printf("this build: %d device(s)%s%s\n", n, n ? "" : ": ", why);
    ap_forest_free(f);
}

/* Thresholds: configured, requested, per call; a device failure runs the
   call on the CPU; chunks stay within the buffers; memory freed. */
static void test_selection(void **state)
{
    (void)state;
    ap_forest *f = small_forest();
    ap_error err = {0};
    int nf = ap_forest_num_features(f);
    size_t N = 4000;
    double *X = calloc(N * (size_t)nf, sizeof *X);
    double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    assert_non_null(X);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < N * (size_t)nf; i++)
        X[i] = (double)((i * 2654435761u) % 4001) / 1000.0 - 2.0;
    fake_reset(1);
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_AUTO, 100, &fake_be, &err), AP_OK);
    assert_int_equal(ap_forest_device(f), AP_DEVICE_GPU);
    assert_int_equal(ap_forest_gpu_min_rows(f), 100);
    assert_string_equal(ap_forest_device_note(f), "configured: batches of 100 rows or more");
    ap_forest_predict(f, X, 99, b, 0);
    assert_int_equal(fake.runs, 0);
    ap_forest_predict(f, X, 100, b, 0);
    assert_int_equal(fake.runs, 1);
    /* chunks: a call larger than the buffers is split, each within them */
    assert_int_equal(fake.max_rows, 1000); /* the backend's bound */
    size_t big = fake.max_rows * 2 + 17;
    assert_true(big <= N);
    fake.runs = 0;
    ap_forest_predict(f, X, big, b, 0);
    ap_forest_predict(f, X, big, a, AP_PREDICT_CPU);
    assert_int_equal(fake.runs, 3);
    assert_int_equal(fake.most_rows, fake.max_rows);
    bitwise(a, b, big, 1, "chunked", "outputs");
    /* the device fails: the call's results come from the CPU, counted */
    fake.fail_run = 1;
    memset(b, 0, 1000 * sizeof *b);
    ap_forest_predict(f, X, 1000, b, 0);
    bitwise(a, b, 1000, 1, "device failure", "CPU fallback");
    assert_int_equal(ap__gforest_failures(f->gpu), 1);
    fake.fail_run = 0;
    /* requested gpu: every batch, one row included */
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_GPU, 0, &fake_be, &err), AP_OK);
    assert_int_equal(fake.releases, 1);  /* the previous upload was freed */
    assert_int_equal(ap_forest_gpu_min_rows(f), 1);
    fake.runs = 0;
    ap_forest_predict(f, X, 1, b, 0);
    assert_int_equal(fake.runs, 1);
    ap_forest_predict(f, X, 1, b, AP_PREDICT_CPU);
    assert_int_equal(fake.runs, 1);
    /* auto with no threshold: calibrated now (the fake is slow or fast,
       either way the note says what was measured) */
    assert_int_equal(ap__forest_set_device_with(f, AP_DEVICE_AUTO, 0, &fake_be, &err), AP_OK);
    assert_int_equal(strncmp(ap_forest_device_note(f), "calibrated: GPU ", 16), 0);
    if (ap_forest_device(f) == AP_DEVICE_GPU)
        assert_true(ap_forest_gpu_min_rows(f) >= 256);
    else
        assert_int_equal(fake.releases, fake.uploads);  /* lost: its memory freed */
    ap_forest_free(f);
    assert_int_equal(fake.releases, fake.uploads);
    free(X);
    free(a);
    free(b);
}

static void test_pick_threshold(void **state)
{
    (void)state;
    const size_t sz[5] = {256, 1024, 4096, 16384, 65536};
    /* hand-made timings: GPU wins from 4096 on */
    const double cpu[5] = {1e-4, 4e-4, 1.6e-3, 6.4e-3, 2.6e-2};
    const double gpu1[5] = {5e-4, 6e-4, 1e-3, 2e-3, 5e-3};
    assert_int_equal(ap__gpu_pick_threshold(sz, cpu, gpu1, 5), 4096);
    /* wins at 1024 once, loses at 4096, then wins: only from 16384 */
    const double gpu2[5] = {5e-4, 3e-4, 2e-3, 2e-3, 5e-3};
    assert_int_equal(ap__gpu_pick_threshold(sz, cpu, gpu2, 5), 16384);
    /* never, ties included */
    const double gpu3[5] = {1e-4, 4e-4, 1.6e-3, 6.4e-3, 2.6e-2};
    assert_int_equal(ap__gpu_pick_threshold(sz, cpu, gpu3, 5), 0);
    /* always; a calibration cut short after 2 sizes */
    const double gpu4[5] = {1e-5, 1e-5, 1e-5, 1e-5, 1e-5};
    assert_int_equal(ap__gpu_pick_threshold(sz, cpu, gpu4, 5), 256);
    assert_int_equal(ap__gpu_pick_threshold(sz, cpu, gpu1, 2), 0);
}

static void test_device_names(void **state)
{
    (void)state;
    ap_device d;
    ap_error err = {0};
    assert_int_equal(ap_device_parse("gpu", &d, &err), AP_OK);
    assert_int_equal(d, AP_DEVICE_GPU);
    assert_int_equal(ap_device_parse("cpu", &d, &err), AP_OK);
    assert_int_equal(d, AP_DEVICE_CPU);
    assert_int_equal(ap_device_parse("auto", &d, &err), AP_OK);
    assert_int_equal(d, AP_DEVICE_AUTO);
    assert_int_equal(ap_device_parse("GPU", &d, &err), AP_EINVAL);
    assert_string_equal(err.msg, "device \"GPU\": expected auto, cpu or gpu");
    assert_string_equal(ap_device_name(AP_DEVICE_GPU), "gpu");
    assert_string_equal(ap_device_name((ap_device)7), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),      cmocka_unit_test(test_linear_refused),
        cmocka_unit_test(test_handmade_f32),  cmocka_unit_test(test_absent_device),
        cmocka_unit_test(test_selection),     cmocka_unit_test(test_pick_threshold),
        cmocka_unit_test(test_device_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
