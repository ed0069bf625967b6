/* ONNX import: a hand-computed tiny tree, and hostile files refused with a
   clear error (never a crash): truncation, deep nesting, bad structure,
   unknown operators, cycles, out-of-range ids. Models are built with the
   protobuf-c generated structs and packed, then damaged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse/onnx.h"
#include "onnx.pb-c.h"

/* one regressor tree: node 0 "x[feat] MODE thr" -> node 1 (1.5) else node 2 (-2.0) */
typedef struct spec {
    const char *op;            /* operator type */
    const char *mode;          /* branch mode of node 0 */
    int64_t feat;              /* feature of node 0 */
    int64_t true_id;           /* true child of node 0 */
    int64_t false_id;
    int in_width;              /* input shape [N, in_width] */
    Onnx__AttributeProto *const *extra; /* more attributes of the tree node */
    int nextra;
} spec;

static uint8_t *build(const spec *s, size_t *len)
{
    Onnx__AttributeProto at[12];
    Onnx__AttributeProto *atp[12 + 8];
    for (int i = 0; i < 12; i++) {
        onnx__attribute_proto__init(&at[i]);
        atp[i] = &at[i];
    }
    int64_t treeids[3] = {0, 0, 0}, nodeids[3] = {0, 1, 2}, feats[3] = {s->feat, 0, 0};
    int64_t tids[3] = {s->true_id, 0, 0}, fids[3] = {s->false_id, 0, 0};
    float values[3] = {0.5f, 0, 0};
    ProtobufCBinaryData modes[3] = {{strlen(s->mode), (uint8_t *)s->mode},
                                    {4, (uint8_t *)"LEAF"}, {4, (uint8_t *)"LEAF"}};
    int64_t wt[2] = {0, 0}, wn[2] = {1, 2}, wi[2] = {0, 0};
    float wv[2] = {1.5f, -2.0f}, base[1] = {0.25f};
    const char *names[12] = {"nodes_treeids", "nodes_nodeids", "nodes_featureids",
                             "nodes_truenodeids", "nodes_falsenodeids", "nodes_values",
                             "nodes_modes", "target_treeids", "target_nodeids", "target_ids",
                             "target_weights", "base_values"};
    int64_t *ints[12] = {treeids, nodeids, feats, tids, fids, NULL, NULL, wt, wn, wi, NULL, NULL};
    for (int i = 0; i < 12; i++) {
        at[i].name = (char *)names[i];
        at[i].has_type = 1;
        if (ints[i]) {
            at[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
            at[i].ints = ints[i];
            at[i].n_ints = i >= 7 ? 2 : 3;
        }
    }
    at[5].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    at[5].floats = values;
    at[5].n_floats = 3;
    at[6].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    at[6].strings = modes;
    at[6].n_strings = 3;
    at[10].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    at[10].floats = wv;
    at[10].n_floats = 2;
    at[11].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    at[11].floats = base;
    at[11].n_floats = 1;

    Onnx__NodeProto node = ONNX__NODE_PROTO__INIT;
    char *in[1] = {"X"}, *out[1] = {"Y"};
    node.op_type = (char *)s->op;
    node.domain = "ai.onnx.ml";
    node.input = in;
    node.n_input = 1;
    node.output = out;
    node.n_output = 1;
    for (int i = 0; i < s->nextra && i < 8; i++)
        atp[12 + i] = s->extra[i];
    node.attribute = atp;
    node.n_attribute = 12 + (size_t)(s->nextra < 8 ? s->nextra : 8);
    Onnx__NodeProto *nodes[1] = {&node};

    Onnx__TensorShapeProto__Dimension d0 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT,
                                      d1 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    d0.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0.dim_param = "N";
    d1.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1.dim_value = s->in_width;
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
    Onnx__ValueInfoProto *ins[1] = {&vin}, *outs[1] = {&vout};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "g";
    g.node = nodes;
    g.n_node = 1;
    g.input = ins;
    g.n_input = 1;
    g.output = outs;
    g.n_output = 1;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = 8;
    m.graph = &g;
    *len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(*len);
    onnx__model_proto__pack(&m, buf);
    return buf;
}

static const spec good = {"TreeEnsembleRegressor", "BRANCH_LEQ", 0, 1, 2, 2, NULL, 0};

static int load(const uint8_t *buf, size_t len, ap_onnx **m, ap_error *err)
{
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    o.backend = AP_ONNX_NATIVE;
    return ap_onnx_load_mem(buf, len, "t.onnx", &o, m, err);
}

static void expect_error(const spec *s, const char *needle)
{
    size_t len;
    uint8_t *buf = build(s, &len);
    ap_onnx *m = NULL;
    ap_error err;
    int rc = load(buf, len, &m, &err);
    free(buf);
    if (rc == AP_OK)
        ap_onnx_free(m);
    assert_true(rc < 0);
    assert_null(m);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

/* x0 <= 0.5 -> 1.5 else -2.0, plus base 0.25 (by hand: 1.75 / -1.75; NaN goes
   false -> -1.75; 0.5 itself is <= 0.5 -> 1.75) */
static void test_hand_tree(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build(&good, &len);
    ap_onnx *m;
    ap_error err;
    assert_int_equal(load(buf, len, &m, &err), AP_OK);
    free(buf);
    assert_int_equal(ap_onnx_num_features(m), 2);
    assert_int_equal(ap_onnx_num_outputs(m), 1);
    double X[8] = {0.2, 0, 0.7, 0, 0.5, 9, NAN, 1};
    double y[4];
    assert_int_equal(ap_onnx_predict(m, X, 4, y, &err), AP_OK);
    assert_true(y[0] == 1.75 && y[1] == -1.75 && y[2] == 1.75 && y[3] == -1.75);
    ap_onnx_free(m);
    /* GT swaps the outcome: x0 > 0.5 -> 1.5 */
    spec gt = good;
    gt.mode = "BRANCH_GT";
    buf = build(&gt, &len);
    assert_int_equal(load(buf, len, &m, &err), AP_OK);
    free(buf);
    assert_int_equal(ap_onnx_predict(m, X, 4, y, &err), AP_OK);
    assert_true(y[0] == -1.75 && y[1] == 1.75 && y[2] == -1.75 && y[3] == -1.75);
    ap_onnx_free(m);
}

static void test_bad_structure(void **state)
{
    (void)state;
    spec s = good;
    s.feat = 5;
    expect_error(&s, "feature 5 out of range");
    s = good;
    s.true_id = 7;
    expect_error(&s, "child node 7 is not in the tree");
    s = good;
    s.true_id = 0; /* node 0 -> node 0: a cycle */
    expect_error(&s, "reached twice");
    s = good;
    s.false_id = 1; /* both children node 1: shared, node 2 unreachable */
    expect_error(&s, "reached twice");
    s = good;
    s.mode = "BRANCH_SOMETIMES";
    expect_error(&s, "unknown mode");
    s = good;
    s.op = "TreeEnsembleMystery";
    expect_error(&s, "TreeEnsembleMystery is not supported");
    s = good;
    s.in_width = 0;
    expect_error(&s, "shape [N, F]");
}

static void test_truncated(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build(&good, &len);
    ap_onnx *m;
    ap_error err;
    for (size_t cut = 0; cut < len; cut += 7) {
        int rc = load(buf, cut, &m, &err);
        if (rc == AP_OK)
            ap_onnx_free(m); /* a prefix can be a valid message; it must not crash */
        else
            assert_non_null(strstr(err.msg, "t.onnx"));
    }
    free(buf);
}

/* 30000 nested AttributeProto.g / GraphProto.node / NodeProto.attribute:
   refused by the nesting check before protobuf-c recurses into it. */
static void test_deep_nesting(void **state)
{
    (void)state;
    enum { LEVELS = 30000 };
    /* innermost first: each level wraps the previous bytes in a field */
    size_t cap = (size_t)LEVELS * 16 + 16, len = 0;
    uint8_t *a = malloc(cap), *b = malloc(cap);
    for (int i = 0; i < LEVELS; i++) {
        /* a Graph wrapped as Attribute.g (field 6), as Node.attribute (5),
           as Graph.node (1), and again */
        uint8_t tag = i % 3 == 0 ? 0x32 : i % 3 == 1 ? 0x2a : 0x0a;
        size_t n = 0;
        b[n++] = tag;
        size_t v = len;
        do {
            b[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
        memcpy(b + n, a, len);
        len += n;
        uint8_t *t = a;
        a = b;
        b = t;
    }
    /* wrap into ModelProto.graph (field 7) */
    size_t n = 0;
    b[n++] = 0x3a;
    size_t v = len;
    do {
        b[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    memcpy(b + n, a, len);
    ap_onnx *m;
    ap_error err;
    assert_true(load(b, len + n, &m, &err) < 0);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    free(a);
    free(b);
}

static void test_garbage(void **state)
{
    (void)state;
    ap_onnx *m;
    ap_error err;
    const uint8_t huge_len[] = {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    assert_true(load(huge_len, sizeof huge_len, &m, &err) < 0);
    assert_non_null(strstr(err.msg, "runs past"));
    const uint8_t group[] = {0x0b, 0x0c};
    assert_true(load(group, sizeof group, &m, &err) < 0);
    assert_true(load((const uint8_t *)"", 0, &m, &err) < 0);
    assert_non_null(strstr(err.msg, "empty"));
    const uint8_t nograph[] = {0x08, 0x08};
    assert_true(load(nograph, sizeof nograph, &m, &err) < 0);
    assert_non_null(strstr(err.msg, "no graph"));
}

static void test_ort_missing(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build(&good, &len);
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    o.backend = AP_ONNX_ORT;
    o.ort_library = "/nonexistent/libonnxruntime.so.1";
    ap_onnx *m = NULL;
    ap_error err;
    assert_true(ap_onnx_load_mem(buf, len, "t.onnx", &o, &m, &err) < 0);
    if (!strstr(err.msg, "cannot load"))
        fail_msg("unexpected message: %s", err.msg);
    free(buf);
}

/* ---- elementwise chains over typed tensors ---- */

typedef struct cnode {
    const char *op, *in0, *in1, *out;
    int64_t to;               /* Cast: target type, else 0 */
    const char *aname;        /* one more int attribute, or NULL */
    int64_t aval;
} cnode;

/* input X [N, 1] of type elem, a scalar constant "c" = 1 of that type,
   the nodes in order, output Y */
static uint8_t *build_chain(int elem, const cnode *cn, int nn, size_t *len)
{
    Onnx__NodeProto nodes[8];
    Onnx__NodeProto *np[8];
    Onnx__AttributeProto to[8][2];
    Onnx__AttributeProto *top[8][2];
    char *ins[8][2], *outs[8][1];
    for (int i = 0; i < nn; i++) {
        onnx__node_proto__init(&nodes[i]);
        np[i] = &nodes[i];
        nodes[i].op_type = (char *)cn[i].op;
        ins[i][0] = (char *)cn[i].in0;
        ins[i][1] = (char *)cn[i].in1;
        outs[i][0] = (char *)cn[i].out;
        nodes[i].input = ins[i];
        nodes[i].n_input = cn[i].in1 ? 2 : cn[i].in0 ? 1 : 0;
        nodes[i].output = outs[i];
        nodes[i].n_output = 1;
        const char *an[2] = {cn[i].to ? "to" : NULL, cn[i].aname};
        int64_t av[2] = {cn[i].to, cn[i].aval};
        int na = 0;
        for (int k = 0; k < 2; k++) {
            if (!an[k])
                continue;
            onnx__attribute_proto__init(&to[i][na]);
            to[i][na].name = (char *)an[k];
            to[i][na].has_type = 1;
            to[i][na].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
            to[i][na].has_i = 1;
            to[i][na].i = av[k];
            top[i][na] = &to[i][na];
            na++;
        }
        nodes[i].attribute = top[i];
        nodes[i].n_attribute = (size_t)na;
    }
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
    tt.elem_type = elem;
    tt.shape = &shape;
    Onnx__TypeProto tp = ONNX__TYPE_PROTO__INIT;
    tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp.tensor_type = &tt;
    Onnx__ValueInfoProto vin = ONNX__VALUE_INFO_PROTO__INIT, vout = ONNX__VALUE_INFO_PROTO__INIT;
    vin.name = "X";
    vin.type = &tp;
    vout.name = "Y";
    Onnx__ValueInfoProto *vins[1] = {&vin}, *vouts[1] = {&vout};
    float one_f = 1.0f;
    double one_d = 1.0;
    Onnx__TensorProto c = ONNX__TENSOR_PROTO__INIT;
    Onnx__TensorProto *cp[1] = {&c};
    c.name = "c";
    c.has_data_type = 1;
    c.data_type = elem;
    if (elem == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
        c.double_data = &one_d;
        c.n_double_data = 1;
    } else {
        c.float_data = &one_f;
        c.n_float_data = 1;
    }
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "g";
    g.node = np;
    g.n_node = (size_t)nn;
    g.input = vins;
    g.n_input = 1;
    g.output = vouts;
    g.n_output = 1;
    g.initializer = cp;
    g.n_initializer = 1;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = 8;
    m.graph = &g;
    *len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(*len);
    onnx__model_proto__pack(&m, buf);
    return buf;
}

enum {
    T_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    T_DOUBLE = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
};

/* run the chain natively on n rows of X */
static void chain_run(int elem, const cnode *cn, int nn, const double *X, size_t n, double *Y)
{
    size_t len;
    uint8_t *buf = build_chain(elem, cn, nn, &len);
    ap_onnx *m = NULL;
    ap_error err;
    int rc = load(buf, len, &m, &err);
    free(buf);
    if (rc != AP_OK)
        fail_msg("load: %s", err.msg);
    assert_int_equal(ap_onnx_predict(m, X, n, Y, &err), AP_OK);
    ap_onnx_free(m);
}

static void chain_error(int elem, const cnode *cn, int nn, const char *needle)
{
    size_t len;
    uint8_t *buf = build_chain(elem, cn, nn, &len);
    ap_onnx *m = NULL;
    ap_error err;
    int rc = load(buf, len, &m, &err);
    free(buf);
    assert_true(rc < 0);
    assert_null(m);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

/* Double tensors compute in double: x - 1 for x = 1 + 2^-40 is 2^-40
   exactly (in float the row rounds to 1 and it is 0); Abs, Neg keep it.
   A Cast to float then rounds: 1 + 2^-40 -> 1 -> Sub gives 0. */
static void test_double_chain(void **state)
{
    (void)state;
    const cnode dbl[] = {{"Sub", "X", "c", "d", 0, NULL, 0}, {"Abs", "d", NULL, "a", 0, NULL, 0},
                         {"Neg", "a", NULL, "Y", 0, NULL, 0}};
    double X[3] = {1 + ldexp(1, -40), 1 - ldexp(1, -30), 3.5}, Y[3];
    chain_run(T_DOUBLE, dbl, 3, X, 3, Y);
    assert_true(Y[0] == -ldexp(1, -40));
    assert_true(Y[1] == -ldexp(1, -30));
    assert_true(Y[2] == -2.5);
    const cnode cast[] = {{"Cast", "X", NULL, "f", T_FLOAT, NULL, 0},
                          {"Cast", "f", NULL, "x2", T_DOUBLE, NULL, 0},
                          {"Sub", "x2", "c", "Y", 0, NULL, 0}};
    chain_run(T_DOUBLE, cast, 3, X, 3, Y);
    assert_true(Y[0] == 0.0);
    assert_true(Y[2] == 2.5);
}

/* Float Softplus as ORT: x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)), so
   no overflow at 100 (log(exp(100) + 1) is inf in float): by hand
   softplus(0) = ln 2 = 0.693147182f, softplus(100) = 100, softplus(-200)
   = 0 (exp underflows); Exp(0) = 1 then Softplus(1) = ln(1 + e) =
   1.3132616875 (float: within one ulp, 1.2e-7; it lies almost halfway
   between two floats). */
static void test_float_softplus(void **state)
{
    (void)state;
    const cnode sp[] = {{"Softplus", "X", NULL, "Y", 0, NULL, 0}};
    double X[3] = {0, 100, -200}, Y[3];
    chain_run(T_FLOAT, sp, 1, X, 3, Y);
    assert_true(Y[0] == (double)0.693147182f);
    assert_true(Y[1] == 100.0);
    assert_true(Y[2] == 0.0);
    const cnode esp[] = {{"Exp", "X", NULL, "e", 0, NULL, 0},
                         {"Softplus", "e", NULL, "Y", 0, NULL, 0}};
    chain_run(T_FLOAT, esp, 2, X, 1, Y);
    assert_true(fabs(Y[0] - 1.3132616875182228) <= 1.2e-7);
}

/* mixed float/double operands are malformed; float-only kernels refuse
   double tensors (so AUTO hands the graph to ORT) */
static void test_typed_refusals(void **state)
{
    (void)state;
    const cnode mix[] = {{"Cast", "X", NULL, "f", T_FLOAT, NULL, 0},
                         {"Mul", "X", "f", "Y", 0, NULL, 0}};
    chain_error(T_DOUBLE, mix, 2, "operands of different types");
    const cnode mm[] = {{"MatMul", "X", "c", "Y", 0, NULL, 0}};
    chain_error(T_DOUBLE, mm, 1, "(MatMul): operator on a double tensor is not supported");
}


/* ---- attributes: each native operator knows its own ---- */

static Onnx__AttributeProto int_attr(const char *name, int64_t v)
{
    Onnx__AttributeProto a = ONNX__ATTRIBUTE_PROTO__INIT;
    a.name = (char *)name;
    a.has_type = 1;
    a.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a.has_i = 1;
    a.i = v;
    return a;
}

static void expect_code(const spec *s, int code, const char *needle)
{
    size_t len;
    uint8_t *buf = build(s, &len);
    ap_onnx *m = NULL;
    ap_error err;
    int rc = load(buf, len, &m, &err);
    free(buf);
    if (rc == AP_OK)
        ap_onnx_free(m);
    if (rc != code)
        fail_msg("expected %d, got %d (%s)", code, rc, rc ? err.msg : "loaded");
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

/* An attribute the importer does not know is refused with node, operator
   and attribute named (AP_EUNSUPPORTED: AUTO then asks ONNX Runtime); one
   that cannot change a score (nodes_hitrates) is read past. All of the
   refusals below loaded before, the attribute ignored. */
static void test_unknown_attributes(void **state)
{
    (void)state;
    Onnx__AttributeProto frob = int_attr("nodes_frobnicate", 1);
    Onnx__AttributeProto *x1[1] = {&frob};
    spec s = good;
    s.extra = x1;
    s.nextra = 1;
    expect_code(&s, AP_EUNSUPPORTED,
                "t.onnx: node 'Y' (TreeEnsembleRegressor): unknown attribute 'nodes_frobnicate'");
    /* a classifier's attribute on a regressor */
    Onnx__AttributeProto cls = int_attr("class_ids", 0);
    x1[0] = &cls;
    expect_code(&s, AP_EUNSUPPORTED, "unknown attribute 'class_ids'");
    /* twice the same attribute: which would count? */
    Onnx__AttributeProto nt = int_attr("n_targets", 1), nt2 = int_attr("n_targets", 2);
    Onnx__AttributeProto *x2[2] = {&nt, &nt2};
    s.extra = x2;
    s.nextra = 2;
    expect_code(&s, AP_EFORMAT, "attribute 'n_targets' given twice");
    /* a reference to a function's attribute is not a value */
    Onnx__AttributeProto ref = int_attr("n_targets", 1);
    ref.ref_attr_name = "outer";
    x1[0] = &ref;
    s.extra = x1;
    s.nextra = 1;
    expect_code(&s, AP_EUNSUPPORTED, "refers to a function attribute");
    /* base_values (good has them) and base_values_as_tensor together */
    float bv = 9.0f;
    int64_t one = 1;
    Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
    t.has_data_type = 1;
    t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t.dims = &one;
    t.n_dims = 1;
    t.float_data = &bv;
    t.n_float_data = 1;
    Onnx__AttributeProto bt = ONNX__ATTRIBUTE_PROTO__INIT;
    bt.name = "base_values_as_tensor";
    bt.has_type = 1;
    bt.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    bt.t = &t;
    x1[0] = &bt;
    expect_code(&s, AP_EFORMAT, "both base_values and base_values_as_tensor");

    /* nodes_hitrates: read past, the same scores as test_hand_tree */
    float hr[3] = {1, 0.5f, 0.5f};
    Onnx__AttributeProto hit = ONNX__ATTRIBUTE_PROTO__INIT;
    hit.name = "nodes_hitrates";
    hit.has_type = 1;
    hit.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    hit.floats = hr;
    hit.n_floats = 3;
    x1[0] = &hit;
    size_t len;
    uint8_t *buf = build(&s, &len);
    ap_onnx *m;
    ap_error err;
    if (load(buf, len, &m, &err) != AP_OK)
        fail_msg("%s", err.msg);
    double X[4] = {0.2, 0, 0.7, 0}, y[2];
    assert_int_equal(ap_onnx_predict(m, X, 2, y, &err), AP_OK);
    assert_true(y[0] == 1.75 && y[1] == -1.75);
    ap_onnx_free(m);
    free(buf);

    /* AUTO: the native refusal is handed to ONNX Runtime; with no ORT the
       error gives both reasons, once each */
    x1[0] = &frob;
    buf = build(&s, &len);
    ap_onnx_options o;
    ap_onnx_options_default(&o);
    o.backend = AP_ONNX_AUTO;
    o.ort_library = "/nonexistent/libonnxruntime.so.1";
    m = NULL;
    assert_true(ap_onnx_load_mem(buf, len, "t.onnx", &o, &m, &err) < 0);
    free(buf);
    const char *first = strstr(err.msg, "unknown attribute 'nodes_frobnicate'");
    if (!first || strstr(first + 1, "unknown attribute") || !strstr(err.msg, "cannot load"))
        fail_msg("unexpected message: %s", err.msg);
}

/* Attributes of elementwise and shape operators: known ones with values
   the kernels do not implement, and ones from older opsets or other
   operators, are refused natively. */
static void test_operator_attributes(void **state)
{
    (void)state;
    const cnode sat0[] = {{"Cast", "X", NULL, "Y", T_FLOAT, "saturate", 0}};
    chain_error(T_FLOAT, sat0, 1, "(Cast): saturate=0 is not supported natively");
    const cnode sat1[] = {{"Cast", "X", NULL, "d", T_DOUBLE, "saturate", 1},
                          {"Sub", "d", "c", "Y", 0, NULL, 0}};
    double X[2] = {3.5, -1}, Y[2];
    chain_run(T_FLOAT, sat1, 2, X, 2, Y);
    assert_true(Y[0] == 2.5 && Y[1] == -2.0);
    const cnode az[] = {{"Reshape", "X", "c", "Y", 0, "allowzero", 1}};
    chain_error(T_FLOAT, az, 1, "(Reshape): allowzero=1 is not supported natively");
    /* opset 1-6 attributes */
    const cnode bc[] = {{"Add", "X", "c", "Y", 0, "broadcast", 1}};
    chain_error(T_FLOAT, bc, 1, "(Add): unknown attribute 'broadcast'");
    const cnode ci[] = {{"Relu", "X", NULL, "Y", 0, "consumed_inputs", 0}};
    chain_error(T_FLOAT, ci, 1, "(Relu): unknown attribute 'consumed_inputs'");
    const cnode ax[] = {{"Softmax", "X", NULL, "Y", 0, "axes", 1}};
    chain_error(T_FLOAT, ax, 1, "(Softmax): unknown attribute 'axes'");
    /* a Constant given as value_int: not the `value` tensor read here */
    const cnode k[] = {{"Constant", NULL, NULL, "k", 0, "value_int", 2},
                       {"Add", "X", "k", "Y", 0, NULL, 0}};
    chain_error(T_FLOAT, k, 2, "(Constant): unknown attribute 'value_int'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_tree),     cmocka_unit_test(test_bad_structure),
        cmocka_unit_test(test_truncated),     cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_garbage),       cmocka_unit_test(test_ort_missing),
        cmocka_unit_test(test_double_chain),  cmocka_unit_test(test_float_softplus),
        cmocka_unit_test(test_typed_refusals),
        cmocka_unit_test(test_unknown_attributes),
        cmocka_unit_test(test_operator_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
