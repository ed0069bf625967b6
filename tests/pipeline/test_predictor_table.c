/*
 * The format table as the CLI uses it: a model file without a manifest gets
 * its entry by name and content (ap__predictor_for_file), margins come from
 * predict_raw where the format has them, and the description says how many
 * values each hook writes and whether they are float32.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse.h"
#include "pipeline/predictor.h"

static void fixture(char *path, size_t size, const char *rel)
{
    const char *root = getenv("AP_ROOT");
    snprintf(path, size, "%s/%s", root ? root : ".", rel);
}

static void test_find(void **state)
{
    (void)state;
    assert_string_equal(ap__predictor_find("xgboost")->title, "XGBoost");
    assert_string_equal(ap__predictor_find("lightgbm")->title, "LightGBM");
    assert_string_equal(ap__predictor_find("onnx")->title, "ONNX");
    /* the CLI's "any tree file" entry is not a manifest format */
    assert_null(ap__predictor_find("tree"));
    assert_null(ap__predictor_find("pickle"));
    assert_null(ap__predictor_find("onnx")->predict_raw);
    assert_true(ap__predictor_find("onnx")->uses_onnx_options);
    assert_non_null(ap__predictor_find("xgboost")->predict_raw);
    assert_false(ap__predictor_find("xgboost")->uses_onnx_options);
}

static void test_for_file(void **state)
{
    (void)state;
    char path[1024];
    /* by name, even when the file does not exist (load then says so) */
    assert_ptr_equal(ap__predictor_for_file("/nonexistent/m.onnx"), ap__predictor_find("onnx"));
    /* by content */
    fixture(path, sizeof path, "tests/fuzz/corpus/onnx/rf.onnx");
    assert_ptr_equal(ap__predictor_for_file(path), ap__predictor_find("onnx"));
    fixture(path, sizeof path, "tests/fuzz/corpus/xgboost_json/tiny.json");
    assert_string_equal(ap__predictor_for_file(path)->format, "tree");
    assert_string_equal(ap__predictor_for_file("/nonexistent/m.json")->format, "tree");
}

/* A tree file through the "tree" entry: margins and probabilities. */
static void test_tree_raw(void **state)
{
    (void)state;
    char path[1024];
    fixture(path, sizeof path, "tests/fuzz/corpus/xgboost_json/tiny.json");
    const ap_predictor_ops *ops = ap__predictor_for_file(path);
    ap_registry_options opt;
    ap_registry_options_default(&opt);
    void *impl = NULL;
    ap_error err = {0};
    if (ops->load(path, &opt, &impl, &err) != AP_OK)
        fail_msg("load: %s", err.msg);
    ap_predictor_desc d;
    ops->describe(impl, &d);
    assert_int_equal(d.num_features, 2);
    assert_int_equal(d.num_outputs, 1);
    assert_int_equal(d.num_raw_outputs, 1);
    assert_int_equal(d.float32, 1); /* XGBoost computes in float32 */
    double row[2] = {0, 0.2}, p, margin;
    assert_int_equal(ops->predict(impl, row, 1, &p, &err), AP_OK);
    assert_int_equal(ops->predict_raw(impl, row, 1, &margin, &err), AP_OK);
    /* sigmoid(-0.5 + 0.25) (test_xgboost_load.c's TINY) */
    assert_float_equal(margin, -0.25, 1e-7);
    assert_float_equal(p, 1.0 / (1.0 + exp(0.25)), 1e-7);
    ops->free(impl);
}

/* A missing file fails in load with a message, never crashes. */
static void test_load_error(void **state)
{
    (void)state;
    const ap_predictor_ops *ops = ap__predictor_for_file("/nonexistent/m.json");
    ap_registry_options opt;
    ap_registry_options_default(&opt);
    void *impl = (void *)1;
    ap_error err = {0};
    assert_int_not_equal(ops->load("/nonexistent/m.json", &opt, &impl, &err), AP_OK);
    assert_null(impl);
    assert_non_null(strstr(err.msg, "/nonexistent/m.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_for_file),
        cmocka_unit_test(test_tree_raw),
        cmocka_unit_test(test_load_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
