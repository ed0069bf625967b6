/* The registry API on the demo repository (examples/models): loading,
   versions, unload rules, statistics, predict entry points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse.h"

static char repo[4096];

static ap_registry *open_demo(void)
{
    ap_registry *reg;
    ap_error err;
    if (ap_registry_open(repo, &reg, &err) != AP_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(ap_registry_load_all(reg, NULL, NULL, &err), 0);
    return reg;
}

/* A full alphapulse-v1 row with plausible values (every feature finite). */
static void feature_row(double *row)
{
    for (int j = 0; j < AP_FEATURE_COUNT; j++)
        row[j] = 0.01 * (j + 1);
}

static void test_load_all_and_describe(void **state)
{
    (void)state;
    ap_registry *reg = open_demo();
    assert_int_equal(ap_registry_count(reg), 7);
    ap_model *m;
    ap_error err;
    assert_int_equal(ap_registry_acquire(reg, "reversal", &m, &err), AP_OK);
    ap_model_info in;
    ap_model_describe(m, &in);
    assert_int_equal(in.version, 2); /* highest version folder */
    assert_string_equal(in.kind_name, "pattern");
    assert_string_equal(in.format, "xgboost");
    assert_int_equal(in.num_inputs, 14);
    assert_int_equal(in.num_trees, 60);
    assert_int_equal(in.pipeline_steps, 3);
    assert_string_equal(ap_model_input_name(m, 0), "price_change");
    ap_model_release(m);
    assert_int_equal(ap_registry_acquire(reg, "nosuch", &m, &err), AP_ENOTFOUND);
    assert_null(m);
    ap_registry_free(reg);
}

static void test_versions_and_unload(void **state)
{
    (void)state;
    ap_registry *reg = open_demo();
    ap_error err;
    ap_model *m2, *m1;
    double row[AP_FEATURE_COUNT], p2, p1, p2b;
    feature_row(row);
    assert_int_equal(ap_registry_acquire(reg, "reversal", &m2, &err), AP_OK);
    assert_int_equal(ap_model_predict(m2, row, 1, &p2, NULL, NULL, &err), AP_OK);
    /* swap to version 1 while version 2 is held: the holder keeps a working v2 */
    assert_int_equal(ap_registry_load(reg, "reversal", 1, &err), AP_OK);
    assert_int_equal(ap_registry_acquire(reg, "reversal", &m1, &err), AP_OK);
    ap_model_info in;
    ap_model_describe(m1, &in);
    assert_int_equal(in.version, 1);
    assert_int_equal(ap_model_predict(m1, row, 1, &p1, NULL, NULL, &err), AP_OK);
    assert_int_equal(ap_model_predict(m2, row, 1, &p2b, NULL, NULL, &err), AP_OK);
    assert_true(p2 == p2b);
    assert_true(p1 != p2); /* 10 trees vs 60: different models */
    ap_model_release(m2);  /* frees version 2 */
    ap_model_release(m1);
    /* a missing version is refused; version 1 stays */
    assert_int_equal(ap_registry_load(reg, "reversal", 9, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "version 9"));
    ap_model_stats st;
    assert_int_equal(ap_registry_stats(reg, "reversal", &st, &err), AP_OK);
    assert_int_equal(st.version, 1);
    assert_int_equal(st.loads, 2);
    assert_int_equal(st.load_errors, 1);
    assert_true(st.load_time_ns > 0);
    /* members cannot be unloaded under a loaded ensemble */
    assert_int_equal(ap_registry_unload(reg, "bull", &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "ensemble 'meta' uses it"));
    assert_int_equal(ap_registry_unload(reg, "meta", &err), AP_OK);
    assert_int_equal(ap_registry_unload(reg, "bull", &err), AP_OK);
    assert_int_equal(ap_registry_acquire(reg, "bull", &m1, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "not loaded"));
    /* and the ensemble cannot come back without its member */
    assert_int_equal(ap_registry_load(reg, "meta", 0, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "member 'bull'"));
    ap_registry_free(reg);
}

static void test_predict_and_stats(void **state)
{
    (void)state;
    ap_registry *reg = open_demo();
    ap_error err;
    ap_model *m;
    enum { N = 5 };
    double rows[N * AP_FEATURE_COUNT], pred[N], conf[N], outs[N * 6];
    for (int r = 0; r < N; r++)
        feature_row(rows + r * AP_FEATURE_COUNT);
    rows[2 * AP_FEATURE_COUNT + 13] = NAN; /* a missing rsi */
    assert_int_equal(ap_registry_acquire(reg, "meta", &m, &err), AP_OK);
    assert_int_equal(ap_model_predict(m, rows, N, pred, conf, outs, &err), AP_OK);
    for (int r = 0; r < N; r++) {
        assert_true(pred[r] > 0 && pred[r] < 1);
        /* confidence = 1 - population std of the six member outputs */
        double mean = 0, var = 0;
        for (int k = 0; k < 6; k++)
            mean += outs[r * 6 + k] / 6;
        for (int k = 0; k < 6; k++)
            var += (outs[r * 6 + k] - mean) * (outs[r * 6 + k] - mean) / 6;
        assert_true(fabs(conf[r] - (1 - sqrt(var))) < 1e-12);
    }
    /* the raw entry of an ensemble combines given member outputs: same result */
    double p2;
    assert_int_equal(ap_model_predict_raw(m, outs + 6, 1, &p2, NULL, NULL, &err), AP_OK);
    assert_true(p2 == pred[1]);
    ap_model_release(m);

    assert_int_equal(ap_registry_acquire(reg, "bull", &m, &err), AP_OK);
    double x[14], pb, cb;
    for (int j = 0; j < 14; j++) /* bull's own features, in manifest order */
        x[j] = rows[ap_feature_index(ap_model_input_name(m, j))];
    assert_int_equal(ap_model_predict_raw(m, x, 1, &pb, &cb, NULL, &err), AP_OK);
    double pf;
    assert_int_equal(ap_model_predict(m, rows, 1, &pf, NULL, NULL, &err), AP_OK);
    assert_true(pf == pb); /* selecting the features = giving them */
    assert_true(cb == (pb > 0.5 ? pb : 1 - pb));
    ap_model_release(m);

    ap_model_stats st;
    assert_int_equal(ap_registry_stats(reg, "meta", &st, &err), AP_OK);
    assert_int_equal(st.predictions, N + 1);
    assert_int_equal(st.latency_count, 2);
    assert_int_equal(st.errors, 0);
    uint64_t sum = 0;
    for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
        sum += st.latency_buckets[i];
    assert_int_equal(sum, 2);
    assert_true(st.latency_min_ns > 0 && st.latency_min_ns <= st.latency_max_ns);
    assert_true(st.latency_sum_ns >= st.latency_max_ns);
    assert_true(isinf(ap_latency_bucket_bound(AP_LATENCY_BUCKETS - 1)));
    assert_true(ap_latency_bucket_bound(0) == 1e-6);
    /* an error is counted */
    assert_int_equal(ap_model_predict(NULL, rows, 1, pred, NULL, NULL, &err), AP_EINVAL);
    ap_registry_free(reg);
}

int main(void)
{
    const char *root = getenv("AP_ROOT");
    snprintf(repo, sizeof repo, "%s/examples/models", root ? root : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_all_and_describe),
        cmocka_unit_test(test_versions_and_unload),
        cmocka_unit_test(test_predict_and_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
