/*
 * ap_onnx_set_precision (issue 12): MLP (Gemm/Relu, MatMul/Add) and linear
 * (LinearRegressor, LinearClassifier) graphs reduce to half weights with a
 * measured deviation <= the tolerance, and their outputs stay within it of
 * FP32; a tiny tolerance is refused with AP_ERANGE and the graph stays FULL
 * with bit-identical outputs; a weight beyond the half range is refused;
 * FULL after REDUCED is refused; "nothing to reduce"; model bytes; the tree
 * ensemble part through ap_forest_set_precision (exact when built, else its
 * refusal leaves the whole graph FULL); ONNX Runtime refused. Graphs are
 * built here with the protobuf-c structs.
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

#include "alphapulse/onnx.h"
#include "onnx.pb-c.h"

/* ---- a tiny graph builder over a bump arena ---- */

static _Alignas(16) unsigned char arena[1 << 22];
static size_t used;
static void *A(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    assert_true(used + n <= sizeof arena);
    void *p = arena + used;
    used += n;
    memset(p, 0, n);
    return p;
}

typedef struct gb {
    Onnx__NodeProto *nodes[16];
    size_t nn;
    Onnx__TensorProto *inits[16];
    size_t ni;
} gb;

static void gb_reset(gb *g)
{
    used = 0;
    memset(g, 0, sizeof *g);
}

static Onnx__NodeProto *node(gb *g, const char *op, int ml, const char *in0, const char *in1,
                             const char *in2, const char *out)
{
    Onnx__NodeProto *n = A(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)out;
    n->domain = ml ? "ai.onnx.ml" : "";
    n->input = A(3 * sizeof(char *));
    const char *in[3] = {in0, in1, in2};
    for (int i = 0; i < 3 && in[i]; i++)
        n->input[n->n_input++] = (char *)in[i];
    n->output = A(2 * sizeof(char *));
    n->output[0] = (char *)out;
    n->n_output = 1;
    n->attribute = A(16 * sizeof(Onnx__AttributeProto *));
    g->nodes[g->nn++] = n;
    return n;
}

static Onnx__AttributeProto *attr(Onnx__NodeProto *n, const char *name, int type)
{
    Onnx__AttributeProto *a = A(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void a_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void a_ints(Onnx__NodeProto *n, const char *name, const int64_t *v, size_t k)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->ints = A(k * sizeof *v);
    memcpy(a->ints, v, k * sizeof *v);
    a->n_ints = k;
}

static void a_floats(Onnx__NodeProto *n, const char *name, const float *v, size_t k)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->floats = A(k * sizeof *v);
    memcpy(a->floats, v, k * sizeof *v);
    a->n_floats = k;
}

static void a_strings(Onnx__NodeProto *n, const char *name, const char *const *v, size_t k)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    a->strings = A(k * sizeof *a->strings);
    for (size_t i = 0; i < k; i++) {
        a->strings[i].data = (uint8_t *)v[i];
        a->strings[i].len = strlen(v[i]);
    }
    a->n_strings = k;
}

static void a_string(Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)v;
    a->s.len = strlen(v);
}

/* a float initializer of shape [d0] (d1 == 0) or [d0, d1] */
static void init(gb *g, const char *name, const float *v, int d0, int d1)
{
    Onnx__TensorProto *t = A(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->dims = A(2 * sizeof *t->dims);
    t->dims[0] = d0;
    t->n_dims = 1;
    if (d1) {
        t->dims[1] = d1;
        t->n_dims = 2;
    }
    size_t k = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    t->float_data = A(k * sizeof *v);
    memcpy(t->float_data, v, k * sizeof *v);
    t->n_float_data = k;
    g->inits[g->ni++] = t;
}

static Onnx__TypeProto *tensor_type(int width)
{
    Onnx__TensorShapeProto__Dimension *d = A(2 * sizeof *d);
    Onnx__TensorShapeProto__Dimension **dp = A(2 * sizeof *dp);
    for (int i = 0; i < 2; i++) {
        onnx__tensor_shape_proto__dimension__init(&d[i]);
        dp[i] = &d[i];
    }
    d[0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d[0].dim_param = "N";
    d[1].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d[1].dim_value = width;
    Onnx__TensorShapeProto *s = A(sizeof *s);
    onnx__tensor_shape_proto__init(s);
    s->dim = dp;
    s->n_dim = 2;
    Onnx__TypeProto__Tensor *tt = A(sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = s;
    Onnx__TypeProto *tp = A(sizeof *tp);
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    return tp;
}

/* input X [N, nf] -> nodes -> output "Y" [N, nout]; loaded natively */
static ap_onnx *gb_load(gb *g, int nf, int nout)
{
    Onnx__ValueInfoProto vin = ONNX__VALUE_INFO_PROTO__INIT, vout = ONNX__VALUE_INFO_PROTO__INIT;
    vin.name = "X";
    vin.type = tensor_type(nf);
    vout.name = "Y";
    vout.type = tensor_type(nout);
    Onnx__ValueInfoProto *vins[1] = {&vin}, *vouts[1] = {&vout};
    Onnx__OperatorSetIdProto ops[2] = {ONNX__OPERATOR_SET_ID_PROTO__INIT,
                                       ONNX__OPERATOR_SET_ID_PROTO__INIT};
    Onnx__OperatorSetIdProto *opp[2] = {&ops[0], &ops[1]};
    ops[0].domain = "";
    ops[0].has_version = 1;
    ops[0].version = 13;
    ops[1].domain = "ai.onnx.ml";
    ops[1].has_version = 1;
    ops[1].version = 1;
    Onnx__GraphProto gr = ONNX__GRAPH_PROTO__INIT;
    gr.name = "g";
    gr.node = g->nodes;
    gr.n_node = g->nn;
    gr.input = vins;
    gr.n_input = 1;
    gr.output = vouts;
    gr.n_output = 1;
    gr.initializer = g->inits;
    gr.n_initializer = g->ni;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = 8;
    m.graph = &gr;
    m.opset_import = opp;
    m.n_opset_import = 2;
    size_t len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(len);
    onnx__model_proto__pack(&m, buf);
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    o.backend = AP_ONNX_NATIVE;
    ap_onnx *mod = NULL;
    ap_error err;
    int rc = ap_onnx_load_mem(buf, len, "t.onnx", &o, &mod, &err);
    free(buf);
    if (rc != AP_OK)
        fail_msg("load: %s", err.msg);
    return mod;
}

/* ---- data ---- */

static uint64_t rs = 0x2545f4914f6cdd1dull;
static double urand(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return ((rs * 2685821657736338717ull >> 11) + 0.5) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }

static float *randn(size_t n, double scale)
{
    float *v = A(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(scale * nrand());
    return v;
}

static double *rows(size_t n, int nf)
{
    double *X = malloc(n * (size_t)nf * sizeof *X);
    for (size_t i = 0; i < n * (size_t)nf; i++)
        X[i] = nrand();
    return X;
}

static double *predict(const ap_onnx *m, const double *X, size_t n)
{
    double *Y = malloc(n * (size_t)ap_onnx_num_outputs(m) * sizeof *Y);
    ap_error err;
    assert_int_equal(ap_onnx_predict(m, X, n, Y, &err), AP_OK);
    return Y;
}

static double maxdiff(const double *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

static void expect_msg(const ap_error *err, const char *needle)
{
    if (!strstr(err->msg, needle))
        fail_msg("message '%s' lacks '%s'", err->msg, needle);
}

enum { NF = 20, H1 = 32, H2 = 16, NO = 3 };

/* X -> Gemm(W1^T, transB) -> Relu -> MatMul(W2) -> Add(b2) -> Relu -> Gemm(W3) -> Y */
static ap_onnx *mlp(double w3_scale)
{
    gb g;
    gb_reset(&g);
    init(&g, "W1", randn(H1 * NF, 1 / sqrt(NF)), H1, NF);   /* [M, K]: transB = 1 */
    init(&g, "b1", randn(H1, 0.1), H1, 0);
    init(&g, "W2", randn(H1 * H2, 1 / sqrt(H1)), H1, H2);   /* MatMul: [K, M] */
    init(&g, "b2", randn(H2, 0.1), 1, H2);
    float *w3 = randn(H2 * NO, w3_scale / sqrt(H2));
    init(&g, "W3", w3, H2, NO);
    init(&g, "b3", randn(NO, 0.1), NO, 0);
    a_int(node(&g, "Gemm", 0, "X", "W1", "b1", "h1"), "transB", 1);
    node(&g, "Relu", 0, "h1", NULL, NULL, "r1");
    node(&g, "MatMul", 0, "r1", "W2", NULL, "m2");
    node(&g, "Add", 0, "m2", "b2", NULL, "h2");
    node(&g, "Relu", 0, "h2", NULL, NULL, "r2");
    node(&g, "Gemm", 0, "r2", "W3", "b3", "Y");
    return gb_load(&g, NF, NO);
}

/* weights and biases of the three dense stages (the MatMul's stage has a
   zero bias of H2 floats; b2 is the Add's constant, not counted) */
static const size_t MLP_BYTES_FULL = (size_t)(H1 * NF + H1 + H1 * H2 + H2 + H2 * NO + NO) * 4;

/* the MLP reduces: deviation measured on the rows, <= tolerance; outputs
   on those rows within it; bytes; FULL after REDUCED refused */
static void test_mlp_reduces(void **state)
{
    (void)state;
    ap_onnx *m = mlp(1);
    const size_t n = 64;
    double *X = rows(n, NF), *Y32 = predict(m, X, n);
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_FULL);
    size_t full = ap_onnx_model_bytes(m, AP_PRECISION_FULL);
    assert_int_equal(full, MLP_BYTES_FULL);
    assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_REDUCED), 0);
    double dev = -1;
    ap_error err;
    int rc = ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 1e-2, X, n, &dev, &err);
    if (rc != AP_OK)
        fail_msg("reduce: %s", err.msg);
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_REDUCED);
    double *Y16 = predict(m, X, n);
    double d = maxdiff(Y16, Y32, n * NO);
    print_message("mlp %dx%dx%dx%d: max abs deviation %.3g\n", NF, H1, H2, NO, d);
    assert_true(dev == d);          /* what it measured is what predict now gives */
    assert_true(d > 0 && d <= 1e-2);
    size_t half = ap_onnx_model_bytes(m, AP_PRECISION_REDUCED);
    assert_int_equal(half, full - (size_t)(H1 * NF + H1 * H2 + H2 * NO) * 2);
    assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_FULL), 0);  /* freed */
    /* again: a no-op giving the same deviation */
    double dev2 = -1;
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, NULL, 0, &dev2, &err), AP_OK);
    assert_true(dev2 == dev);
    /* FULL (and AUTO, which is FULL) refused: the FP32 weights are gone */
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_FULL, 0, NULL, 0, NULL, &err),
                     AP_ECONFLICT);
    expect_msg(&err, "node 'h1' (Gemm)");
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_AUTO, 0, NULL, 0, NULL, &err),
                     AP_ECONFLICT);
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_REDUCED);
    double *Y16b = predict(m, X, n);
    assert_memory_equal(Y16, Y16b, n * NO * sizeof *Y16);
    assert_int_equal(ap_onnx_set_precision(m, (ap_precision)7, 0, NULL, 0, NULL, &err), AP_EINVAL);
    free(X);
    free(Y32);
    free(Y16);
    free(Y16b);
    ap_onnx_free(m);
}

/* a tolerance of 1e-12 is refused: AP_ERANGE with the numbers, still FULL,
   the same bits as before; then the default tolerance (<= 0: 1e-3) passes */
static void test_tiny_tolerance_refused(void **state)
{
    (void)state;
    ap_onnx *m = mlp(1);
    const size_t n = 32;
    double *X = rows(n, NF), *Y32 = predict(m, X, n);
    size_t full = ap_onnx_model_bytes(m, AP_PRECISION_FULL);
    double dev = -1;
    ap_error err;
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 1e-12, X, n, &dev, &err),
                     AP_ERANGE);
    expect_msg(&err, "exceeds the tolerance 1e-12");
    expect_msg(&err, "stays full precision");
    assert_true(dev > 1e-12);
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_FULL);
    assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_FULL), full);
    assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_REDUCED), 0);
    double *Y = predict(m, X, n);
    assert_memory_equal(Y, Y32, n * NO * sizeof *Y);
    /* FULL on a FULL graph: fine */
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_FULL, 0, NULL, 0, NULL, &err), AP_OK);
    double dev2 = -1;
    int rc = ap_onnx_set_precision(m, AP_PRECISION_REDUCED, -1, X, n, &dev2, &err);
    if (rc != AP_OK)
        fail_msg("default tolerance: %s", err.msg);
    assert_true(dev2 == dev && dev2 <= 1e-3);
    free(X);
    free(Y32);
    free(Y);
    ap_onnx_free(m);
}

/* rows NULL / 0: one zero row is the check */
static void test_zero_row(void **state)
{
    (void)state;
    ap_onnx *m = mlp(1);
    double zero[NF] = {0}, *Y32 = predict(m, zero, 1), dev = -1;
    ap_error err;
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, NULL, 0, &dev, &err), AP_OK);
    double *Y16 = predict(m, zero, 1);
    assert_true(dev == maxdiff(Y16, Y32, NO));
    free(Y32);
    free(Y16);
    ap_onnx_free(m);
}

/* a weight of 7e4 does not fit a half: refused naming the node, still FULL */
static void test_out_of_half_range(void **state)
{
    (void)state;
    gb g;
    gb_reset(&g);
    float *w = randn(4 * NF, 1);
    w[5] = -70000.0f;
    init(&g, "W", w, NF, 4);
    node(&g, "Gemm", 0, "X", "W", NULL, "Y");
    ap_onnx *m = gb_load(&g, NF, 4);
    const size_t n = 8;
    double *X = rows(n, NF), *Y32 = predict(m, X, n);
    ap_error err;
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 1e9, X, n, NULL, &err),
                     AP_ERANGE);
    expect_msg(&err, "reduced precision: node 'Y' (Gemm): dense layer 4x20: weight [1][1] = -70000");
    expect_msg(&err, "beyond the half range");
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_FULL);
    double *Y = predict(m, X, n);
    assert_memory_equal(Y, Y32, n * 4 * sizeof *Y);
    free(X);
    free(Y32);
    free(Y);
    ap_onnx_free(m);
}

/* LinearRegressor (2 targets) and LinearClassifier (binary, LOGISTIC; and
   3 classes SOFTMAX): reduce within 1e-3 of FP32 */
static void test_linear_models(void **state)
{
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        gb g;
        gb_reset(&g);
        int T = kind == 0 ? 2 : kind == 1 ? 1 : 3, nout = kind == 0 ? 2 : kind == 1 ? 2 : 3;
        Onnx__NodeProto *n;
        if (kind == 0) {
            n = node(&g, "LinearRegressor", 1, "X", NULL, NULL, "Y");
            a_int(n, "targets", T);
        } else {
            n = node(&g, "LinearClassifier", 1, "X", NULL, NULL, "label");
            n->output[1] = "Y";
            n->n_output = 2;
            int64_t labels[3] = {0, 1, 2};
            a_ints(n, "classlabels_ints", labels, kind == 1 ? 2 : 3);
            a_string(n, "post_transform", kind == 1 ? "LOGISTIC" : "SOFTMAX");
        }
        a_floats(n, "coefficients", randn((size_t)T * NF, 1 / sqrt(NF)), (size_t)T * NF);
        a_floats(n, "intercepts", randn((size_t)T, 0.3), (size_t)T);
        ap_onnx *m = gb_load(&g, NF, nout);
        assert_int_equal(ap_onnx_num_outputs(m), nout);
        const size_t nr = 100;
        double *X = rows(nr, NF), *Y32 = predict(m, X, nr), dev = -1;
        ap_error err;
        int rc = ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, X, nr, &dev, &err);
        if (rc != AP_OK)
            fail_msg("%s: %s", ap_onnx_summary(m), err.msg);
        double *Y16 = predict(m, X, nr);
        double d = maxdiff(Y16, Y32, nr * (size_t)nout);
        print_message("%s: max abs deviation %.3g\n", ap_onnx_summary(m), d);
        assert_true(d == dev && d <= 1e-3);
        assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_REDUCED), (size_t)T * NF * 2 + T * 4);
        free(X);
        free(Y32);
        free(Y16);
        ap_onnx_free(m);
    }
}

static void test_nothing_to_reduce(void **state)
{
    (void)state;
    gb g;
    gb_reset(&g);
    node(&g, "Relu", 0, "X", NULL, NULL, "r");
    node(&g, "Sigmoid", 0, "r", NULL, NULL, "Y");
    ap_onnx *m = gb_load(&g, 3, 3);
    ap_error err;
    double dev = -1;
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, NULL, 0, &dev, &err),
                     AP_EUNSUPPORTED);
    expect_msg(&err, "nothing to reduce");
    assert_true(dev == 0);
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_FULL);
    assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_FULL), 0);
    ap_onnx_free(m);
}

/* one tree, x0 <= 0.5 -> 1.5 else -2.0, reading `in` (BRANCH_LEQ: the forest
   engine; BRANCH_EQ: the generic evaluator) */
static void tree(gb *g, const char *in, const char *out, const char *mode)
{
    Onnx__NodeProto *n = node(g, "TreeEnsembleRegressor", 1, in, NULL, NULL, out);
    int64_t z3[3] = {0, 0, 0}, ids[3] = {0, 1, 2}, t[3] = {1, 0, 0}, f[3] = {2, 0, 0};
    int64_t tt[2] = {0, 0}, tn[2] = {1, 2}, ti[2] = {0, 0};
    float v[3] = {0.5f, 0, 0}, w[2] = {1.5f, -2.0f};
    const char *modes[3] = {mode, "LEAF", "LEAF"};
    a_ints(n, "nodes_treeids", z3, 3);
    a_ints(n, "nodes_nodeids", ids, 3);
    a_ints(n, "nodes_featureids", z3, 3);
    a_ints(n, "nodes_truenodeids", t, 3);
    a_ints(n, "nodes_falsenodeids", f, 3);
    a_floats(n, "nodes_values", v, 3);
    a_strings(n, "nodes_modes", modes, 3);
    a_ints(n, "target_treeids", tt, 2);
    a_ints(n, "target_nodeids", tn, 2);
    a_ints(n, "target_ids", ti, 2);
    a_floats(n, "target_weights", w, 2);
}

/* X -> Gemm -> trees -> Y: the forest's answer decides. Today's
   ap_forest_set_precision may refuse (then the dense stage, reduced just
   before, must be back to FP32 and the graph FULL, bit for bit) or
   quantize (then exact: deviation 0 from the trees, the Gemm's only). */
static void test_trees_follow_the_forest(void **state)
{
    (void)state;
    gb g;
    gb_reset(&g);
    float W[6] = {1, 0.25f, -0.5f, 0.125f, 2, 1};
    init(&g, "W", W, 2, 3);
    a_int(node(&g, "Gemm", 0, "X", "W", NULL, "h"), "transB", 1);
    tree(&g, "h", "Y", "BRANCH_LEQ");
    ap_onnx *m = gb_load(&g, 3, 1);
    assert_int_equal(ap_onnx_num_trees(m), 1);
    const size_t n = 50;
    double *X = rows(n, 3), *Y32 = predict(m, X, n), dev = -1;
    size_t full = ap_onnx_model_bytes(m, AP_PRECISION_FULL);
    assert_true(full > 6 * 4 + 2 * 4);  /* the forest counts */
    ap_error err;
    int rc = ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, X, n, &dev, &err);
    double *Y = predict(m, X, n);
    if (rc == AP_OK) {
        print_message("forest quantized: deviation %g\n", dev);
        assert_int_equal(ap_onnx_precision(m), AP_PRECISION_REDUCED);
        assert_true(dev == maxdiff(Y, Y32, n) && dev <= 1e-3);
        assert_true(ap_onnx_model_bytes(m, AP_PRECISION_REDUCED) > 0);
    } else {
        print_message("forest refused: %s\n", err.msg);
        expect_msg(&err, "reduced precision: node 'Y' (TreeEnsembleRegressor): ");
        assert_int_equal(ap_onnx_precision(m), AP_PRECISION_FULL);
        assert_memory_equal(Y, Y32, n * sizeof *Y);
        assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_REDUCED), 0);
        assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_FULL), full);
    }
    free(X);
    free(Y32);
    free(Y);
    ap_onnx_free(m);

    /* the generic evaluator has no quantized engine: refused, FULL */
    gb_reset(&g);
    tree(&g, "X", "Y", "BRANCH_EQ");
    m = gb_load(&g, 3, 1);
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, NULL, 0, NULL, &err),
                     AP_EUNSUPPORTED);
    expect_msg(&err, "generic evaluator");
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_FULL);
    ap_onnx_free(m);
}

/* ONNX Runtime runs the graph: reduced is refused (skipped without ORT, and
   under ASan: ORT's 14 bytes of process state would fail LeakSanitizer, see
   docs/ONNX.md; the plain build runs it) */
static void test_ort_refused(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    print_message("ASan build: the ONNX Runtime case runs in the plain build only\n");
    return;
#endif
    gb g;
    gb_reset(&g);
    init(&g, "W", randn(2 * NF, 1), NF, 2);
    node(&g, "MatMul", 0, "X", "W", NULL, "Y");
    Onnx__ValueInfoProto vin = ONNX__VALUE_INFO_PROTO__INIT, vout = ONNX__VALUE_INFO_PROTO__INIT;
    vin.name = "X";
    vin.type = tensor_type(NF);
    vout.name = "Y";
    vout.type = tensor_type(2);
    Onnx__ValueInfoProto *vins[1] = {&vin}, *vouts[1] = {&vout};
    Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opp[1] = {&op};
    op.domain = "";
    op.has_version = 1;
    op.version = 13;
    Onnx__GraphProto gr = ONNX__GRAPH_PROTO__INIT;
    gr.name = "g";
    gr.node = g.nodes;
    gr.n_node = g.nn;
    gr.input = vins;
    gr.n_input = 1;
    gr.output = vouts;
    gr.n_output = 1;
    gr.initializer = g.inits;
    gr.n_initializer = g.ni;
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    mp.has_ir_version = 1;
    mp.ir_version = 8;
    mp.graph = &gr;
    mp.opset_import = opp;
    mp.n_opset_import = 1;
    size_t len = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = malloc(len);
    onnx__model_proto__pack(&mp, buf);
    char lib[4096];
    const char *root = getenv("AP_ROOT");
    snprintf(lib, sizeof lib, "%s/build/ort/libonnxruntime.so.1", root ? root : ".");
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    o.backend = AP_ONNX_ORT;
    o.ort_library = lib;
    ap_onnx *m = NULL;
    ap_error err;
    int rc = ap_onnx_load_mem(buf, len, "t.onnx", &o, &m, &err);
    free(buf);
    if (rc != AP_OK) {
        print_message("ONNX Runtime not available (%s): skipped\n", err.msg);
        return;
    }
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_REDUCED, 0, NULL, 0, NULL, &err),
                     AP_EUNSUPPORTED);
    expect_msg(&err, "reduced precision needs the native backend");
    assert_int_equal(ap_onnx_precision(m), AP_PRECISION_FULL);
    assert_int_equal(ap_onnx_set_precision(m, AP_PRECISION_FULL, 0, NULL, 0, NULL, &err), AP_OK);
    assert_int_equal(ap_onnx_model_bytes(m, AP_PRECISION_FULL), 0);
    ap_onnx_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_reduces),
        cmocka_unit_test(test_tiny_tolerance_refused),
        cmocka_unit_test(test_zero_row),
        cmocka_unit_test(test_out_of_half_range),
        cmocka_unit_test(test_linear_models),
        cmocka_unit_test(test_nothing_to_reduce),
        cmocka_unit_test(test_trees_follow_the_forest),
        cmocka_unit_test(test_ort_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
