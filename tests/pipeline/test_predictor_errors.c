/*
 * A predictor that fails at run time reports it: ONNX Runtime refusing the
 * rows of a request comes back from the format table's predict and from
 * ap_model_predict with the model's name, instead of a 200 answer with a
 * null prediction.
 *
 * The failure is real, not injected: the graph is Cast(x -> int64) then
 * Gather(data = [10, 20, 30], indices = that int). The native importer does
 * not take a Cast to int64, so the default backend (auto) hands the graph
 * to ONNX Runtime, which runs it for x in {0, 1, 2} and refuses x = 7 at run
 * time ("indices element out of data bounds, idx=7 must be within the
 * inclusive range [-3,2]", ORT 1.30's Gather kernel). The version's
 * pipeline fills NaN with 0, so the registry's warm-up rows (NaN, 0) load.
 *
 * Needs ONNX Runtime (tools/fetch-onnxruntime.sh; ONNXRUNTIME_LIB or
 * build/ort/libonnxruntime.so.1): without it the tests are skipped, saying
 * so.
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
#include <sys/stat.h>
#include <unistd.h>

#include "alphapulse.h"
#include "onnx.pb-c.h"
#include "pipeline/predictor.h"

/* ONNX Runtime keeps 14 bytes of process-wide state it never frees
   (docs/ONNX.md); under LeakSanitizer suppress that library only, as
   tests/lsan-ort.supp does for the script tests (run.sh sets LSAN_OPTIONS
   only for those). LSan calls this hook if it is defined; other builds
   ignore it. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libonnxruntime.so\n"; }

static char ort_lib[4096];
static char dir[256];

/* the Cast -> Gather graph above, packed */
static uint8_t *build_gather(size_t *len)
{
    Onnx__AttributeProto to = ONNX__ATTRIBUTE_PROTO__INIT, axis = ONNX__ATTRIBUTE_PROTO__INIT;
    to.name = "to";
    to.has_type = 1;
    to.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    to.has_i = 1;
    to.i = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    axis.name = "axis";
    axis.has_type = 1;
    axis.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    axis.has_i = 1;
    axis.i = 0;
    Onnx__AttributeProto *to_p[1] = {&to}, *axis_p[1] = {&axis};
    Onnx__NodeProto cast = ONNX__NODE_PROTO__INIT, gather = ONNX__NODE_PROTO__INIT;
    char *cast_in[1] = {"X"}, *cast_out[1] = {"i"};
    char *gather_in[2] = {"data", "i"}, *gather_out[1] = {"Y"};
    cast.name = "to_index";
    cast.op_type = "Cast";
    cast.input = cast_in;
    cast.n_input = 1;
    cast.output = cast_out;
    cast.n_output = 1;
    cast.attribute = to_p;
    cast.n_attribute = 1;
    gather.name = "lookup_node";
    gather.op_type = "Gather";
    gather.input = gather_in;
    gather.n_input = 2;
    gather.output = gather_out;
    gather.n_output = 1;
    gather.attribute = axis_p;
    gather.n_attribute = 1;
    Onnx__NodeProto *nodes[2] = {&cast, &gather};

    float values[3] = {10, 20, 30};
    int64_t data_dims[1] = {3};
    Onnx__TensorProto data = ONNX__TENSOR_PROTO__INIT;
    data.name = "data";
    data.has_data_type = 1;
    data.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    data.dims = data_dims;
    data.n_dims = 1;
    data.float_data = values;
    data.n_float_data = 3;
    Onnx__TensorProto *inits[1] = {&data};

    Onnx__TensorShapeProto__Dimension d0 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT,
                                      d1 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    d0.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0.dim_param = "N";
    d1.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1.dim_value = 1;
    Onnx__TensorShapeProto__Dimension *dims[2] = {&d0, &d1};
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape.dim = dims;
    shape.n_dim = 2;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    tt.has_elem_type = 1;
    tt.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt.shape = &shape;
    Onnx__TypeProto tp = ONNX__TYPE_PROTO__INIT;
    tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp.tensor_type = &tt;
    Onnx__ValueInfoProto vin = ONNX__VALUE_INFO_PROTO__INIT, vout = ONNX__VALUE_INFO_PROTO__INIT;
    vin.name = "X";
    vin.type = &tp;
    vout.name = "Y";
    vout.type = &tp; /* [N, 1] float as well */
    Onnx__ValueInfoProto *ins[1] = {&vin}, *outs[1] = {&vout};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "g";
    g.node = nodes;
    g.n_node = 2;
    g.input = ins;
    g.n_input = 1;
    g.output = outs;
    g.n_output = 1;
    g.initializer = inits;
    g.n_initializer = 1;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = 7;
    m.opset_import = opsets;
    m.n_opset_import = 1;
    m.graph = &g;
    *len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    onnx__model_proto__pack(&m, buf);
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *sub, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    write_file(path, text, strlen(text));
}

static void make_dir(const char *sub)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    assert_int_equal(mkdir(path, 0700), 0);
}

/* repo/lookup (regime, reads rsi, fillna 0), repo/lookraw (raw, width 1),
   repo/meta (weighted mean over lookup) */
static int setup(void **state)
{
    (void)state;
    const char *env = getenv("ONNXRUNTIME_LIB");
    const char *root = getenv("AP_ROOT");
    if (env && *env)
        snprintf(ort_lib, sizeof ort_lib, "%s", env);
    else
        snprintf(ort_lib, sizeof ort_lib, "%s/build/ort/libonnxruntime.so.1", root ? root : ".");
    if (access(ort_lib, R_OK) != 0) {
        fprintf(stderr, "ONNX Runtime not found at %s (tools/fetch-onnxruntime.sh): skipping\n",
                ort_lib);
        ort_lib[0] = '\0';
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ap_pred_err_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    size_t len;
    uint8_t *onnx = build_gather(&len);
    make_dir("lookup");
    make_dir("lookup/1");
    make_dir("lookraw");
    make_dir("lookraw/1");
    make_dir("meta");
    make_dir("meta/1");
    char path[512];
    snprintf(path, sizeof path, "%s/lookup/1/model.onnx", dir);
    write_file(path, onnx, len);
    snprintf(path, sizeof path, "%s/lookraw/1/model.onnx", dir);
    write_file(path, onnx, len);
    free(onnx);
    write_text("lookup/manifest.json",
               "{\"name\": \"lookup\", \"kind\": \"regime\", \"target\": \"t\"}");
    write_text("lookup/1/version.json",
               "{\"format\": \"onnx\", \"file\": \"model.onnx\", \"feature_set\": "
               "\"alphapulse-v1\", \"features\": [\"rsi\"], "
               "\"pipeline\": [{\"op\": \"fillna\", \"value\": 0}]}");
    write_text("lookraw/manifest.json",
               "{\"name\": \"lookraw\", \"kind\": \"raw\", \"target\": \"t\"}");
    write_text("lookraw/1/version.json",
               "{\"format\": \"onnx\", \"file\": \"model.onnx\", \"input_width\": 1, "
               "\"pipeline\": [{\"op\": \"fillna\", \"value\": 0}]}");
    write_text("meta/manifest.json",
               "{\"name\": \"meta\", \"kind\": \"ensemble\", \"target\": \"t\"}");
    write_text("meta/1/version.json",
               "{\"members\": [\"lookup\"], \"combiner\": {\"type\": \"weighted_mean\", "
               "\"weights\": [1]}}");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (!dir[0])
        return 0;
    static const char *const files[] = {
        "lookup/1/model.onnx", "lookup/1/version.json", "lookup/manifest.json",
        "lookraw/1/model.onnx", "lookraw/1/version.json", "lookraw/manifest.json",
        "meta/1/version.json", "meta/manifest.json", "lookup/1", "lookraw/1", "meta/1",
        "lookup", "lookraw", "meta", ""};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    return 0;
}

static void need_ort(void)
{
    if (!ort_lib[0])
        skip();
}

/* The format table itself: ONNX's predict returns ORT's error; the forest
   predictors return AP_OK (they cannot fail). */
static void test_predictor_ops(void **state)
{
    (void)state;
    need_ort();
    const ap_predictor_ops *ops = ap__predictor_find("onnx");
    assert_non_null(ops);
    char path[512];
    snprintf(path, sizeof path, "%s/lookraw/1/model.onnx", dir);
    void *impl = NULL;
    ap_error err = {0};
    ap_registry_options opt;
    ap_registry_options_default(&opt);
    opt.onnx.ort_library = ort_lib;
    if (ops->load(path, &opt, &impl, &err) != AP_OK)
        fail_msg("load: %s", err.msg);
    ap_predictor_desc d;
    ops->describe(impl, &d);
    assert_int_equal(d.num_features, 1);
    assert_int_equal(d.num_outputs, 1);
    double ok_rows[3] = {0, 2, 1}, y[3];
    assert_int_equal(ops->predict(impl, ok_rows, 3, y, &err), AP_OK);
    /* data[0], data[2], data[1] */
    assert_true(y[0] == 10 && y[1] == 30 && y[2] == 20);
    double bad_row[1] = {7};
    int rc = ops->predict(impl, bad_row, 1, y, &err);
    assert_int_equal(rc, AP_EFORMAT);
    assert_int_equal(err.code, AP_EFORMAT);
    if (!strstr(err.msg, "onnxruntime run") || !strstr(err.msg, "out of data bounds"))
        fail_msg("unexpected message: %s", err.msg);
    ops->free(impl);

    /* a forest predictor: AP_OK (the tiny XGBoost model of the seed corpus) */
    const ap_predictor_ops *xgb = ap__predictor_find("xgboost");
    const char *root = getenv("AP_ROOT");
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/xgboost_json/tiny.json",
             root ? root : ".");
    if (xgb->load(path, &opt, &impl, &err) != AP_OK)
        fail_msg("load: %s", err.msg);
    double row[2] = {0, 0.2}, p;
    assert_int_equal(xgb->predict(impl, row, 1, &p, &err), AP_OK);
    /* sigmoid(-0.5 + 0.25) (test_xgboost_load.c's TINY) */
    assert_float_equal(p, 0.4378234991, 1e-7);
    xgb->free(impl);
}

/* Through the registry: ap_model_predict(_raw) fails with the model name,
   counts an error in the model's statistics, and an ensemble says which
   member failed. */
static void test_registry_predict(void **state)
{
    (void)state;
    need_ort();
    ap_registry *reg;
    ap_error err = {0};
    ap_registry_options opt;
    ap_registry_options_default(&opt);
    opt.onnx.backend = AP_ONNX_AUTO;
    opt.onnx.ort_library = ort_lib;
    if (ap_registry_open(dir, &opt, &reg, &err) != AP_OK)
        fail_msg("open: %s", err.msg);
    int failed = ap_registry_load_all(reg, NULL, NULL, &err);
    if (failed != 0)
        fail_msg("%d model(s) failed to load: %s", failed, err.msg);

    ap_model *m;
    assert_int_equal(ap_registry_acquire(reg, "lookraw", &m, &err), AP_OK);
    double rows[2] = {1, NAN}, pred[2], conf[2];
    assert_int_equal(ap_model_predict_raw(m, rows, 2, pred, conf, NULL, &err), AP_OK);
    assert_true(pred[0] == 20 && pred[1] == 10); /* NaN filled with 0 -> data[0] */
    double bad = 7;
    int rc = ap_model_predict_raw(m, &bad, 1, pred, conf, NULL, &err);
    assert_int_equal(rc, AP_EFORMAT);
    if (strncmp(err.msg, "lookraw: ", 9) || !strstr(err.msg, "out of data bounds"))
        fail_msg("unexpected message: %s", err.msg);
    ap_model_release(m);
    ap_model_stats st;
    assert_int_equal(ap_registry_stats(reg, "lookraw", &st, &err), AP_OK);
    assert_int_equal(st.errors, 1);

    /* a feature row whose rsi is 7 */
    double feat[AP_FEATURE_COUNT];
    for (int j = 0; j < AP_FEATURE_COUNT; j++)
        feat[j] = 0;
    int rsi = ap_feature_index("rsi");
    assert_true(rsi >= 0);
    feat[rsi] = 7;
    assert_int_equal(ap_registry_acquire(reg, "lookup", &m, &err), AP_OK);
    rc = ap_model_predict(m, feat, 1, pred, conf, NULL, &err);
    assert_int_equal(rc, AP_EFORMAT);
    if (strncmp(err.msg, "lookup: ", 8) || !strstr(err.msg, "out of data bounds"))
        fail_msg("unexpected message: %s", err.msg);
    feat[rsi] = 2;
    assert_int_equal(ap_model_predict(m, feat, 1, pred, conf, NULL, &err), AP_OK);
    assert_true(pred[0] == 30);
    ap_model_release(m);

    feat[rsi] = 7;
    assert_int_equal(ap_registry_acquire(reg, "meta", &m, &err), AP_OK);
    rc = ap_model_predict(m, feat, 1, pred, conf, NULL, &err);
    assert_int_equal(rc, AP_EFORMAT);
    if (strncmp(err.msg, "meta: member lookup: ", 21) || !strstr(err.msg, "out of data bounds"))
        fail_msg("unexpected message: %s", err.msg);
    ap_model_release(m);
    ap_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predictor_ops),
        cmocka_unit_test(test_registry_predict),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
