/*
 * Reduced precision (issue 12): the quantized engine against the full one,
 * bit for bit, through the public API (ap_forest_set_precision), on every
 * forest fixture of tests/data (XGBoost JSON/UBJSON, dart; LightGBM: every
 * objective, categorical, linear trees, zero_as_missing, random forest,
 * the 1000-tree model) and on generated forests that force each code width
 * and the refusal.
 *
 * Rows: the fixture's input.csv, then rows aimed at every split: each
 * threshold, one double ulp either side, the float rounding midpoints of
 * F32 thresholds, NaN, +-inf, +-0, +-1e-35 and its neighbours, huge
 * magnitudes. The reference is the full engine, itself checked against the
 * training libraries by the parity tests and against the IR by
 * test_engine; test_engine also runs the quantized engine against the IR on
 * random forests, with both binnings.
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
#include "forest/quant.h"

static const char *fixtures[] = {
    "tests/data/xgboost/dart_1.7.json",          "tests/data/xgboost/dart_1.7.ubj",
    "tests/data/xgboost/dart_3x.json",           "tests/data/xgboost/dart_3x.ubj",
    "tests/data/lightgbm/binary/model.txt",      "tests/data/lightgbm/categorical/model.txt",
    "tests/data/lightgbm/large/model.txt",       "tests/data/lightgbm/linear_tree/model.txt",
    "tests/data/lightgbm/multiclass/model.txt",  "tests/data/lightgbm/multiclassova/model.txt",
    "tests/data/lightgbm/poisson/model.txt",     "tests/data/lightgbm/random_forest/model.txt",
    "tests/data/lightgbm/regression/model.txt",  "tests/data/lightgbm/regression_l1/model.txt",
    "tests/data/lightgbm/single_leaf/model.txt", "tests/data/lightgbm/zero_as_missing/model.txt",
};

#include "forest/edge_rows.h"

static void same(const ap_forest *full, const ap_forest *red, const double *X, size_t nrows,
                 unsigned flags, const char *what)
{
    int nout = ap_forest_num_outputs(full, flags);
    static const size_t calls[] = {1, 7, 16, 100, 1000};
    double *a = malloc(nrows * (size_t)nout * sizeof *a);
    double *b = malloc(nrows * (size_t)nout * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    ap_forest_predict(full, X, nrows, a, flags);
    for (size_t k = 0; k < sizeof calls / sizeof calls[0]; k++) {
        size_t per = calls[k];
        memset(b, 0xAB, nrows * (size_t)nout * sizeof *b);
        /* row by row (the single-row walk): the first 1500 rows */
        size_t upto = per < 16 && nrows > 1500 ? 1500 : nrows;
        for (size_t r = 0; r < upto; r += per) {
            size_t m = upto - r < per ? upto - r : per;
            ap_forest_predict(red, X + r * (size_t)ap_forest_num_features(full), m,
                              b + r * (size_t)nout, flags);
        }
        for (size_t i = 0; i < upto * (size_t)nout; i++)
            if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
                fail_msg("%s flags %u, %zu rows per call: row %zu output %zu: full %.17g "
                         "reduced %.17g",
                         what, flags, per, i / (size_t)nout, i % (size_t)nout, a[i], b[i]);
    }
    free(a);
    free(b);
}

static void check_pair(ap_forest *full, ap_forest *red, const double *X, size_t n,
                       const char *what)
{
    assert_int_equal(ap_forest_precision(red), AP_PRECISION_REDUCED);
    assert_int_equal(ap_forest_precision(full), AP_PRECISION_FULL);
    for (int scalar = 0; scalar < 2; scalar++) {
        ap__qengine_force_scalar(red->quant, scalar);
        same(full, red, X, n, 0, what);
        same(full, red, X, n, AP_PREDICT_RAW, what);
    }
    /* the full engine stays reachable from a reduced forest */
    same(full, red, X, n < 64 ? n : 64, AP_PREDICT_FULL, what);
}

static void test_fixtures(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        ap_forest *full, *red;
        ap_error err = {0};
        if (ap_forest_load(fixtures[i], AP_FORMAT_AUTO, &full, &err) != AP_OK)
            fail_msg("%s: %s", fixtures[i], err.msg);
        assert_int_equal(ap_forest_load(fixtures[i], AP_FORMAT_AUTO, &red, &err), AP_OK);
        if (ap_forest_set_precision(red, AP_PRECISION_REDUCED, &err) != AP_OK)
            fail_msg("%s: reduced precision refused: %s", fixtures[i], err.msg);
        int nf = ap_forest_num_features(full);
        size_t nin, n;
        double *in = read_input(fixtures[i], nf, &nin);
        double *X = edge_rows(full, in, nin, 1000, &n);
        check_pair(full, red, X, n, fixtures[i]);
        /* memory: the reduced layout is reported, and smaller */
        size_t bf = ap_forest_model_bytes(full, AP_PRECISION_FULL);
        size_t br = ap_forest_model_bytes(red, AP_PRECISION_REDUCED);
        assert_true(bf > 0 && br > 0);
        assert_int_equal(ap_forest_model_bytes(full, AP_PRECISION_REDUCED), 0);
        assert_true(ap_forest_node_bytes(red, AP_PRECISION_REDUCED) <
                    ap_forest_node_bytes(full, AP_PRECISION_FULL));
        printf("%-50s rows %6zu  bytes full %9zu reduced %9zu  node %d -> %d  codes %d-bit\n",
               fixtures[i], n, bf, br, ap_forest_node_bytes(full, AP_PRECISION_FULL),
               ap_forest_node_bytes(red, AP_PRECISION_REDUCED),
               ap__qengine_wide(red->quant) ? 16 : 8);
        /* back to full: the quantized engine is dropped */
        assert_int_equal(ap_forest_set_precision(red, AP_PRECISION_FULL, &err), AP_OK);
        assert_int_equal(ap_forest_precision(red), AP_PRECISION_FULL);
        assert_int_equal(ap_forest_model_bytes(red, AP_PRECISION_REDUCED), 0);
        free(in);
        free(X);
        ap_forest_free(full);
        ap_forest_free(red);
    }
}

/* A LightGBM text model of one feature and `ntrees` stumps, tree i split
   at threshold base + i * step: ntrees distinct bounds on feature 0. */
static char *stumps(int ntrees, double step, size_t *len)
{
    size_t cap = (size_t)ntrees * 400 + 4096, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    n += (size_t)snprintf(s + n, cap - n,
                          "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n"
                          "label_index=0\nmax_feature_idx=1\nobjective=regression\n"
                          "feature_names=a b\nfeature_infos=[-1e9:1e9] [-1:1]\n\n");
    for (int t = 0; t < ntrees; t++)
        n += (size_t)snprintf(s + n, cap - n,
                              "Tree=%d\nnum_leaves=2\nnum_cat=0\nsplit_feature=%d\n"
                              "split_gain=1\nthreshold=%.17g\ndecision_type=%d\n"
                              "left_child=-1\nright_child=-2\nleaf_value=%.17g %.17g\n"
                              "leaf_weight=1 1\nleaf_count=1 1\ninternal_value=0\n"
                              "internal_weight=1\ninternal_count=2\nis_linear=0\n"
                              "shrinkage=1\n\n",
                              t, t % 3 == 0 ? 1 : 0, -1e3 + t * step, t % 2 ? 2 : 10,
                              0.001 * (t % 17), -0.002 * (t % 13));
    n += (size_t)snprintf(s + n, cap - n, "end of trees\n");
    *len = n;
    return s;
}

/* > 252 bounds on a feature: 16-bit codes, still exact; > 65532: refused,
   with a message, and the forest stays full precision and predicts. */
static void test_code_widths(void **state)
{
    (void)state;
    static const int sizes[] = {200, 1000, 100000};
    for (size_t k = 0; k < 3; k++) {
        size_t len;
        char *txt = stumps(sizes[k], 0.0173, &len);
        ap_forest *full, *red;
        ap_error err = {0};
        if (ap_forest_load_mem(txt, len, AP_FORMAT_LIGHTGBM, "stumps", &full, &err) != AP_OK)
            fail_msg("stumps %d: %s", sizes[k], err.msg);
        assert_int_equal(ap_forest_load_mem(txt, len, AP_FORMAT_LIGHTGBM, "stumps", &red, &err),
                         AP_OK);
        free(txt);
        int rc = ap_forest_set_precision(red, AP_PRECISION_REDUCED, &err);
        size_t n;
        double *X = edge_rows(full, NULL, 0, 1000, &n);
        if (sizes[k] == 100000) {
            /* 2 of 3 stumps split feature 0: 66667 bounds */
            assert_int_equal(rc, AP_ERANGE);
            assert_non_null(strstr(err.msg, "distinct split bounds"));
            assert_int_equal(ap_forest_precision(red), AP_PRECISION_FULL);
            same(full, red, X, n < 2000 ? n : 2000, 0, "refused stumps");
        } else {
            if (rc != AP_OK)
                fail_msg("stumps %d: %s", sizes[k], err.msg);
            assert_int_equal(ap__qengine_wide(red->quant), sizes[k] > 300);
            check_pair(full, red, X, n, sizes[k] > 300 ? "stumps 16-bit" : "stumps 8-bit");
        }
        free(X);
        ap_forest_free(full);
        ap_forest_free(red);
    }
}

static void test_bad_precision(void **state)
{
    (void)state;
    ap_forest *f;
    ap_error err = {0};
    assert_int_equal(ap_forest_load(fixtures[4], AP_FORMAT_AUTO, &f, &err), AP_OK);
    assert_int_equal(ap_forest_set_precision(f, (ap_precision)7, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "precision"));
    assert_int_equal(ap_forest_precision(f), AP_PRECISION_FULL);
    ap_precision p;
    assert_int_equal(ap_precision_parse("reduced", &p, &err), AP_OK);
    assert_int_equal(p, AP_PRECISION_REDUCED);
    assert_int_equal(ap_precision_parse("fp16", &p, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "fp16"));
    assert_string_equal(ap_precision_name(AP_PRECISION_AUTO), "auto");
    ap_forest_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_code_widths),
        cmocka_unit_test(test_bad_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
