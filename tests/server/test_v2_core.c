/* Unit tests of the Open Inference Protocol core (src/server/v2_core.c):
   expected values are hand calculations written down here (bit patterns of
   IEEE numbers, two's complement bytes), not outputs of the code. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/v2_core.h"

static ap_v2_model_meta meta_of(int f, int nout)
{
    ap_model_info in;
    memset(&in, 0, sizeof in);
    in.name = "m";
    in.format = "xgboost";
    in.version = 3;
    in.num_inputs = f;
    in.num_outputs = nout;
    in.max_batch_size = 64;
    ap_v2_model_meta m;
    ap__v2_model_meta(&in, &m);
    return m;
}

static void test_dtypes(void **state)
{
    (void)state;
    assert_int_equal(ap__v2_dtype_parse("FP32"), AP_V2_FP32);
    assert_int_equal(ap__v2_dtype_parse("UINT64"), AP_V2_UINT64);
    assert_int_equal(ap__v2_dtype_parse("fp32"), AP_V2_INVALID); /* exact spelling */
    assert_int_equal(ap__v2_dtype_parse(NULL), AP_V2_INVALID);
    assert_int_equal(ap__v2_dtype_size(AP_V2_FP16), 2);
    assert_int_equal(ap__v2_dtype_size(AP_V2_INT64), 8);
    assert_int_equal(ap__v2_dtype_size(AP_V2_BOOL), 1);
    assert_int_equal(ap__v2_dtype_size(AP_V2_BYTES), 0);
    assert_string_equal(ap__v2_dtype_name(AP_V2_INT16), "INT16");
}

static void test_meta(void **state)
{
    (void)state;
    ap_v2_model_meta m = meta_of(5, 4);
    assert_string_equal(m.platform, "alphapulse_xgboost");
    assert_string_equal(m.version_str, "3");
    assert_string_equal(m.input.name, "input");
    assert_int_equal(m.input.shape[0], -1);
    assert_int_equal(m.input.shape[1], 5);
    assert_int_equal(m.noutputs, 3);
    assert_int_equal(m.outputs[2].shape[1], 4);
}

static void test_check_input(void **state)
{
    (void)state;
    ap_v2_model_meta m = meta_of(5, 4);
    char why[256];
    ap_v2_input_plan p;
    int64_t ok[2] = {3, 5}, wide[2] = {3, 6}, zero[2] = {0, 5};
    ap_v2_input in = {"input", "INT16", ok, 2};
    assert_int_equal(ap__v2_check_input(&m, &in, 100, &p, why, sizeof why), 0);
    assert_int_equal(p.dtype, AP_V2_INT16);
    assert_int_equal(p.count, 15);
    in.name = "INPUT0";
    assert_int_equal(ap__v2_check_input(&m, &in, 100, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "unknown input 'INPUT0'"));
    in.name = "input";
    in.datatype = "BYTES";
    assert_int_equal(ap__v2_check_input(&m, &in, 100, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "not BYTES"));
    in.datatype = "FP32";
    in.shape = wide;
    assert_int_equal(ap__v2_check_input(&m, &in, 100, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "[N, 5]"));
    in.shape = zero;
    assert_int_equal(ap__v2_check_input(&m, &in, 100, &p, why, sizeof why), -1);
    in.shape = ok;
    in.rank = 1;
    assert_int_equal(ap__v2_check_input(&m, &in, 100, &p, why, sizeof why), -1);
    in.rank = 2;
    assert_int_equal(ap__v2_check_input(&m, &in, 2, &p, why, sizeof why), -1);
    assert_non_null(strstr(why, "max_queue_rows"));
    assert_int_equal(ap__v2_check_input(&m, &in, 3, &p, why, sizeof why), 0);
    assert_int_equal(ap__v2_check_raw_size(&p, 60, why, sizeof why), 0);
    assert_int_equal(ap__v2_check_raw_size(&p, 59, why, sizeof why), -1);
    assert_non_null(strstr(why, "needs 60"));
}

static void test_raw(void **state)
{
    (void)state;
    char why[256];
    double X[4];
    /* FP32 1.5 = 0x3fc00000, -2 = 0xc0000000, little-endian */
    const unsigned char f32[] = {0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0};
    assert_int_equal(ap__v2_from_raw(AP_V2_FP32, f32, 8, 2, X, why, sizeof why), 0);
    assert_true(X[0] == 1.5 && X[1] == -2.0);
    assert_int_equal(ap__v2_from_raw(AP_V2_FP32, f32, 7, 2, X, why, sizeof why), -1);
    /* FP64 0.1 = 0x3fb999999999999a */
    const unsigned char f64[] = {0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f};
    assert_int_equal(ap__v2_from_raw(AP_V2_FP64, f64, 8, 1, X, why, sizeof why), 0);
    assert_true(X[0] == 0.1);
    /* INT16 -2 = 0xfffe, 300 = 0x012c */
    const unsigned char i16[] = {0xfe, 0xff, 0x2c, 0x01};
    assert_int_equal(ap__v2_from_raw(AP_V2_INT16, i16, 4, 2, X, why, sizeof why), 0);
    assert_true(X[0] == -2.0 && X[1] == 300.0);
    assert_int_equal(ap__v2_from_raw(AP_V2_UINT16, i16, 4, 2, X, why, sizeof why), 0);
    assert_true(X[0] == 65534.0);
    /* INT64 -1 */
    const unsigned char i64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ap__v2_from_raw(AP_V2_INT64, i64, 8, 1, X, why, sizeof why), 0);
    assert_true(X[0] == -1.0);
    /* FP16 1.0 = 0x3c00, -0.5 = 0xb800, 65504 = 0x7bff */
    const unsigned char f16[] = {0x00, 0x3c, 0x00, 0xb8, 0xff, 0x7b};
    assert_int_equal(ap__v2_from_raw(AP_V2_FP16, f16, 6, 3, X, why, sizeof why), 0);
    assert_true(X[0] == 1.0 && X[1] == -0.5 && X[2] == 65504.0);
    const unsigned char b[] = {1, 0, 2};
    assert_int_equal(ap__v2_from_raw(AP_V2_BOOL, b, 2, 2, X, why, sizeof why), 0);
    assert_true(X[0] == 1.0 && X[1] == 0.0);
    assert_int_equal(ap__v2_from_raw(AP_V2_BOOL, b, 3, 3, X, why, sizeof why), -1);
    assert_non_null(strstr(why, "not 0 or 1"));
    /* NaN passes through (a missing value) */
    const unsigned char nan32[] = {0x00, 0x00, 0xc0, 0x7f};
    assert_int_equal(ap__v2_from_raw(AP_V2_FP32, nan32, 4, 1, X, why, sizeof why), 0);
    assert_true(isnan(X[0]));
}

static void test_numbers(void **state)
{
    (void)state;
    char why[256];
    double x;
    /* FP32 rounds through float: 0.1f = 0x3dcccccd = 0.100000001490116119384765625 */
    assert_int_equal(ap__v2_elem_from_number(AP_V2_FP32, 0.1, 0, &x, "[0]", why, sizeof why), 0);
    assert_true(x == 0.100000001490116119384765625);
    assert_int_equal(ap__v2_elem_from_number(AP_V2_FP32, 1e39, 0, &x, "[0]", why, sizeof why), -1);
    assert_non_null(strstr(why, "FP32 range"));
    assert_int_equal(ap__v2_elem_from_number(AP_V2_FP64, 0.1, 0, &x, "[0]", why, sizeof why), 0);
    assert_true(x == 0.1);
    assert_int_equal(ap__v2_elem_from_number(AP_V2_FP64, 0, 1, &x, "[0]", why, sizeof why), 0);
    assert_true(isnan(x));
    /* FP16: 0.1 rounds to 0x2e66 = 1638/16384 = 0.0999755859375 */
    assert_int_equal(ap__v2_elem_from_number(AP_V2_FP16, 0.1, 0, &x, "[0]", why, sizeof why), 0);
    assert_true(x == 0.0999755859375);
    assert_int_equal(ap__v2_elem_from_number(AP_V2_FP16, 70000, 0, &x, "[0]", why, sizeof why), -1);
    assert_int_equal(ap__v2_elem_from_number(AP_V2_INT8, 127, 0, &x, "[2]", why, sizeof why), 0);
    assert_int_equal(ap__v2_elem_from_number(AP_V2_INT8, 128, 0, &x, "[2]", why, sizeof why), -1);
    assert_non_null(strstr(why, "'data'[2] = 128 is not a INT8 value"));
    assert_int_equal(ap__v2_elem_from_number(AP_V2_INT32, 1.5, 0, &x, "[0]", why, sizeof why), -1);
    assert_int_equal(ap__v2_elem_from_number(AP_V2_UINT8, -1, 0, &x, "[0]", why, sizeof why), -1);
    assert_int_equal(ap__v2_elem_from_number(AP_V2_BOOL, 2, 0, &x, "[0]", why, sizeof why), -1);
    assert_int_equal(ap__v2_elem_from_int(AP_V2_UINT64, -1, 1, &x, "[0]", why, sizeof why), 0);
    assert_true(x == 18446744073709551615.0);
    assert_int_equal(ap__v2_elem_from_int(AP_V2_UINT64, -1, 0, &x, "[0]", why, sizeof why), -1);
    assert_int_equal(ap__v2_elem_from_int(AP_V2_INT64, -1, 1, &x, "[0]", why, sizeof why), -1);
    assert_int_equal(ap__v2_elem_from_int(AP_V2_UINT32, 4294967296LL, 0, &x, "[0]", why,
                                          sizeof why), -1);
    int32_t iv[] = {1, -7};
    double X[2];
    assert_int_equal(ap__v2_from_i32(AP_V2_INT32, iv, 2, 2, X, why, sizeof why), 0);
    assert_true(X[0] == 1 && X[1] == -7);
    assert_int_equal(ap__v2_from_i32(AP_V2_UINT8, iv, 2, 2, X, why, sizeof why), -1);
    assert_int_equal(ap__v2_from_i32(AP_V2_INT32, iv, 2, 3, X, why, sizeof why), -1);
    assert_non_null(strstr(why, "needs 3"));
}

static void test_outputs(void **state)
{
    (void)state;
    ap_v2_output o[AP_V2_MAX_OUTPUTS];
    /* 2 rows of [pred, conf, o1, o2] */
    const double out[] = {1, 0.5, 10, 11, 2, 0.25, 20, 21};
    assert_int_equal(ap__v2_outputs(AP_V2_OUT_CONF | AP_V2_OUT_OUTS, 4, o), 2);
    assert_string_equal(o[0].name, "confidence");
    assert_int_equal(ap__v2_output_count(&o[1], 2), 4);
    double v[4];
    ap__v2_output_values(&o[1], out, 2, 4, v);
    assert_true(v[0] == 10 && v[1] == 11 && v[2] == 20 && v[3] == 21);
    ap__v2_output_values(&o[0], out, 2, 4, v);
    assert_true(v[0] == 0.5 && v[1] == 0.25);
    unsigned char raw[16];
    ap__v2_output_raw(&o[0], out, 2, 4, raw);
    /* 0.5 = 0x3fe0000000000000, 0.25 = 0x3fd0000000000000 */
    const unsigned char want[16] = {0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0, 0, 0, 0, 0, 0, 0xd0, 0x3f};
    assert_memory_equal(raw, want, 16);
    assert_int_equal(ap__v2_output_bit("outputs"), AP_V2_OUT_OUTS);
    assert_int_equal(ap__v2_output_bit("OUTPUT0"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes),  cmocka_unit_test(test_meta),
        cmocka_unit_test(test_check_input), cmocka_unit_test(test_raw),
        cmocka_unit_test(test_numbers), cmocka_unit_test(test_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
