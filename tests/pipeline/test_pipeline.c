/* Pipeline steps: hand-computed values, and the width checks of parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "pipeline/pipeline.h"

static ap_pipeline *parse(const char *json, int width, int want_rc, const char *want_msg)
{
    json_error_t je;
    json_t *steps = json_loads(json, 0, &je);
    assert_non_null(steps);
    ap_pipeline *p = NULL;
    ap_error err = {0};
    int rc = ap__pipeline_parse(steps, width, "t.json", &p, &err);
    json_decref(steps);
    assert_int_equal(rc, want_rc);
    if (want_msg)
        assert_non_null(strstr(err.msg, want_msg));
    return p;
}

static void test_fill_scale_pca(void **state)
{
    (void)state;
    ap_pipeline *p = parse("[{\"op\":\"fillna\",\"value\":1},"
                           "{\"op\":\"standard_scaler\",\"mean\":[1,2],\"scale\":[2,4]},"
                           "{\"op\":\"pca\",\"mean\":[0,1],\"components\":[[1,1],[2,-1]]}]",
                           2, AP_OK, NULL);
    assert_int_equal(ap__pipeline_out_width(p), 2);
    assert_int_equal(ap__pipeline_num_steps(p), 3);
    assert_int_equal(ap__pipeline_keeps_columns(p), 0);
    /* row 0 [NaN, 6]: fill [1, 6]; scale [(1-1)/2, (6-2)/4] = [0, 1];
       pca centred [0, 0] -> [0, 0].  row 1 [3, NaN]: fill [3, 1]; scale
       [1, -0.25]; centred [1, -1.25] -> [1 - 1.25, 2 + 1.25] = [-0.25, 3.25] */
    double a[4] = {NAN, 6, 3, NAN}, b[4];
    double *y = ap__pipeline_run(p, a, b, 2);
    assert_true(y[0] == 0.0 && y[1] == 0.0);
    assert_true(y[2] == -0.25 && y[3] == 3.25);
    assert_string_equal(ap__pipeline_describe(p),
                        "fillna(1) -> standard_scaler(2) -> pca(2->2)");
    ap__pipeline_free(p);
}

static void test_per_column_fill_and_select(void **state)
{
    (void)state;
    ap_pipeline *p = parse("[{\"op\":\"fillna\",\"values\":[10,20,30]},"
                           "{\"op\":\"select\",\"columns\":[2,0]}]",
                           3, AP_OK, NULL);
    assert_int_equal(ap__pipeline_out_width(p), 2);
    assert_int_equal(ap__pipeline_max_width(p), 3);
    double a[3] = {NAN, 5, NAN}, b[3];
    double *y = ap__pipeline_run(p, a, b, 1);
    assert_true(y[0] == 30.0 && y[1] == 10.0);
    ap__pipeline_free(p);
}

static void test_empty_pipeline(void **state)
{
    (void)state;
    ap_pipeline *p = NULL;
    assert_int_equal(ap__pipeline_parse(NULL, 4, "t", &p, NULL), AP_OK);
    assert_int_equal(ap__pipeline_out_width(p), 4);
    assert_int_equal(ap__pipeline_keeps_columns(p), 1);
    double a[4] = {1, NAN, 3, 4}, b[4];
    assert_ptr_equal(ap__pipeline_run(p, a, b, 1), a);
    assert_true(isnan(a[1])); /* no fillna: NaN passes through to the predictor */
    ap__pipeline_free(p);
}

static void test_errors(void **state)
{
    (void)state;
    parse("[{\"op\":\"standard_scaler\",\"mean\":[1],\"scale\":[1,1]}]", 2, AP_EFORMAT,
          "step 0 (standard_scaler) mean has 1 values, expected 2");
    parse("[{\"op\":\"standard_scaler\",\"mean\":[1,1],\"scale\":[1,0]}]", 2, AP_EFORMAT,
          "scale[1] is 0");
    parse("[{\"op\":\"pca\",\"mean\":[0,0],\"components\":[[1,1],[1]]}]", 2, AP_EFORMAT,
          "components[1] has 1 values, expected 2");
    /* widths follow the steps: after pca(2->1), a scaler of 2 is wrong */
    parse("[{\"op\":\"pca\",\"mean\":[0,0],\"components\":[[1,1]]},"
          "{\"op\":\"standard_scaler\",\"mean\":[0,0],\"scale\":[1,1]}]", 2, AP_EFORMAT,
          "step 1 (standard_scaler) mean has 2 values, expected 1");
    parse("[{\"op\":\"select\",\"columns\":[0,2]}]", 2, AP_ERANGE, "columns[1]");
    parse("[{\"op\":\"fillna\"}]", 2, AP_EFORMAT, "exactly one of");
    parse("[{\"op\":\"fillna\",\"value\":0,\"colour\":1}]", 2, AP_EFORMAT, "unknown key 'colour'");
    parse("[{\"op\":\"log\"}]", 2, AP_EFORMAT, "unknown op 'log'");
    parse("[{\"op\":\"fillna\",\"value\":\"zero\"}]", 2, AP_EFORMAT, "not a finite number");
    parse("[3]", 2, AP_EFORMAT, "step 0 is not an object");
    parse("{}", 2, AP_EFORMAT, "must be an array");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill_scale_pca),
        cmocka_unit_test(test_per_column_fill_and_select),
        cmocka_unit_test(test_empty_pipeline),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
