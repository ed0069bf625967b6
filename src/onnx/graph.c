/*
 * ONNX graph -> native plan, and the public ap_onnx API.
 *
 * Tabular ONNX graphs are short chains over [N, W] tensors. We compile the
 * part of the graph the chosen output depends on (a classifier's label
 * output and whatever computes only it are skipped) into a list of stages
 * over "slots": each slot is a [rows, width] block of doubles, all slots of
 * a block of rows in one stack scratch, typed as its ONNX tensor: a float
 * slot holds float values (operators compute in float, as ORT), a double
 * slot full doubles (operators compute in double). A double-input graph
 * thus has a double input slot, and the float scores of its tree ensemble
 * (ORT's TreeEnsemble outputs are float) flow into float operators.
 * Identity, ZipMap, Flatten, Reshape to [N, W] and Cast to the slot's own
 * type are aliases; a Cast that changes the type is a rounding/copy stage.
 * A graph that is a tree ensemble reading the input directly skips the
 * scratch: rows go straight to the forest engine.
 *
 * Backends (ap_onnx_options.backend, ONNX_ENABLED): NATIVE refuses what it
 * cannot import (naming the operator), AUTO hands such graphs to ONNX
 * Runtime when the library loads, ORT always uses ONNX Runtime. For ORT the
 * ZipMap on the output is removed from the graph first (its input is the
 * probability tensor we return), so only plain tensors come back.
 */
#include "onnx/onnx_internal.h"
#include "dense/dense.h"
#include "ort/ort.h"
#include "forest/ir.h"
#include "common/csv.h"
#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_NODES 100000
#define MAX_WIDTH 16384      /* doubles of all slots of one row */
#define SCRATCH 32768        /* doubles of stack scratch per block */
#define TYPE_FLOAT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define TYPE_DOUBLE ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE

enum { ST_TREES, ST_DENSE, ST_LINCLS, ST_SCALER, ST_NORM, ST_ACT, ST_CAST, ST_CONCAT, ST_BINC,
       ST_BIN2 };
enum { ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX, ACT_EXP, ACT_SOFTPLUS, ACT_ABS, ACT_NEG };
enum { NORM_MAX, NORM_L1, NORM_L2 };
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

typedef struct stage {
    int kind;
    int in, in2, out;      /* slots (in2: second operand of ST_BIN2) */
    int *ins, nins;        /* ST_CONCAT */
    ap_onnx_trees *trees;
    ap_dense dense;
    int post, binary;      /* ST_LINCLS */
    int sub;               /* ACT_*, NORM_*, OP_* */
    int const_left;        /* ST_BINC: c OP x */
    float *c, *c2;         /* ST_SCALER constants (broadcast when nc == 1) */
    double *cd;            /* ST_BINC constant, in the operand's type (nc values) */
    int nc, nc2;
} stage;

struct ap_onnx {
    int nf, nout, f64;
    int nslots;
    int *width, *off;      /* per slot: width, column offset in a row of slots */
    unsigned char *dbl;    /* per slot: 1 = a double tensor, 0 = float values */
    int row_width;         /* sum of widths */
    int in_slot, out_slot;
    stage *st;
    int nst;
    int direct_trees;      /* plan is one tree stage on the input */
    int ntrees;
    ap_ort *ort;
    char summary[256];
    char backend[64];
};

/* ---- building context ---- */

typedef struct value {
    const char *name;
    int slot;
} value;

typedef struct ctx {
    const Onnx__GraphProto *g;
    const char *name;
    ap_onnx *m;
    value *vals;
    int nvals, capvals;
    int cap_st, cap_slots;
} ctx;

static int add_slot(ctx *c, int width, int dbl, ap_error *err)
{
    ap_onnx *m = c->m;
    if (width < 1 || width > MAX_WIDTH || m->row_width + width > MAX_WIDTH)
        return ap_error_set(err, AP_EUNSUPPORTED,
                            "%s: intermediate tensors wider than %d values per row in all are "
                            "not supported natively", c->name, MAX_WIDTH);
    if (m->nslots == c->cap_slots) {
        int cap = c->cap_slots ? 2 * c->cap_slots : 16;
        int *w = realloc(m->width, (size_t)cap * sizeof *w);
        if (!w)
            return ap_error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        m->width = w;
        int *o = realloc(m->off, (size_t)cap * sizeof *o);
        if (!o)
            return ap_error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        m->off = o;
        unsigned char *d = realloc(m->dbl, (size_t)cap * sizeof *d);
        if (!d)
            return ap_error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        m->dbl = d;
        c->cap_slots = cap;
    }
    m->dbl[m->nslots] = (unsigned char)dbl;
    m->width[m->nslots] = width;
    m->off[m->nslots] = m->row_width;
    m->row_width += width;
    return m->nslots++;
}

static int bind(ctx *c, const char *name, int slot, ap_error *err)
{
    if (c->nvals == c->capvals) {
        int cap = c->capvals ? 2 * c->capvals : 16;
        value *v = realloc(c->vals, (size_t)cap * sizeof *v);
        if (!v)
            return ap_error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        c->vals = v;
        c->capvals = cap;
    }
    c->vals[c->nvals++] = (value){name, slot};
    return AP_OK;
}

static int lookup(const ctx *c, const char *name)
{
    for (int i = c->nvals - 1; i >= 0; i--)
        if (!strcmp(c->vals[i].name, name))
            return c->vals[i].slot;
    return -1;
}

static stage *new_stage(ctx *c, int kind, ap_error *err)
{
    ap_onnx *m = c->m;
    if (m->nst == c->cap_st) {
        int cap = c->cap_st ? 2 * c->cap_st : 8;
        stage *s = realloc(m->st, (size_t)cap * sizeof *s);
        if (!s) {
            ap_error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
            return NULL;
        }
        m->st = s;
        c->cap_st = cap;
    }
    stage *s = &m->st[m->nst++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->in = s->in2 = s->out = -1;
    return s;
}

/* A constant: an initializer or a Constant node's value. */
static const Onnx__TensorProto *find_const(const ctx *c, const char *name)
{
    for (size_t i = 0; i < c->g->n_initializer; i++)
        if (c->g->initializer[i]->name && !strcmp(c->g->initializer[i]->name, name))
            return c->g->initializer[i];
    for (size_t i = 0; i < c->g->n_node; i++) {
        const Onnx__NodeProto *n = c->g->node[i];
        if (n->op_type && !strcmp(n->op_type, "Constant") && n->n_output == 1 &&
            (!n->domain || !n->domain[0] || !strcmp(n->domain, "ai.onnx")) &&
            !strcmp(n->output[0], name)) {
            const Onnx__AttributeProto *a = ap_onnx_attr(n, "value");
            return a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR ? a->t : NULL;
        }
    }
    return NULL;
}

static const char *label(const Onnx__NodeProto *n)
{
    return n->name && n->name[0] ? n->name : (n->n_output ? n->output[0] : "?");
}

static int node_err(const ctx *c, const Onnx__NodeProto *n, int code, const char *what,
                    ap_error *err)
{
    return ap_error_set(err, code, "%s: node '%s' (%s): %s", c->name, label(n), n->op_type, what);
}

/* Input i of node n as a slot; error if it is not a computed value. */
static int in_slot(const ctx *c, const Onnx__NodeProto *n, size_t i, ap_error *err)
{
    if (i >= n->n_input || !n->input[i][0])
        return node_err(c, n, AP_EFORMAT, "missing input", err);
    int s = lookup(c, n->input[i]);
    if (s < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "input '%.200s' is %s", n->input[i],
                 find_const(c, n->input[i]) ? "a constant where a computed value is expected"
                                            : "not defined before this node");
        return node_err(c, n, find_const(c, n->input[i]) ? AP_EUNSUPPORTED : AP_EFORMAT, msg,
                        err);
    }
    return s;
}

/* d (cnt doubles, malloc'd, consumed) as a malloc'd float vector */
static int doubles_to_floats(const ctx *c, double *d, size_t cnt, float **v, int *nv,
                             ap_error *err)
{
    *v = malloc((cnt ? cnt : 1) * sizeof **v);
    if (!*v) {
        free(d);
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
    }
    for (size_t i = 0; i < cnt; i++)
        (*v)[i] = (float)ap_ir_round_f32(d[i]);
    free(d);
    *nv = (int)cnt;
    return AP_OK;
}

/* constant as a float vector: *v malloc'd */
static int const_floats(const ctx *c, const Onnx__NodeProto *n, const char *name, float **v,
                        int *nv, int64_t dims[4], int *nd, ap_error *err)
{
    const Onnx__TensorProto *t = find_const(c, name);
    if (!t)
        return node_err(c, n, AP_EUNSUPPORTED, "operand must be a constant", err);
    double *d;
    size_t cnt;
    int rc = ap_onnx_tensor_values(t, &d, &cnt, dims, nd, c->name, err);
    if (rc != AP_OK)
        return rc;
    return doubles_to_floats(c, d, cnt, v, nv, err);
}

/* constant as doubles, rounded to float unless dbl: *v malloc'd */
static int const_reals(const ctx *c, const Onnx__NodeProto *n, const char *name, int dbl,
                       double **v, int *nv, ap_error *err)
{
    const Onnx__TensorProto *t = find_const(c, name);
    if (!t)
        return node_err(c, n, AP_EUNSUPPORTED, "operand must be a constant", err);
    size_t cnt;
    int64_t dims[4];
    int nd;
    int rc = ap_onnx_tensor_values(t, v, &cnt, dims, &nd, c->name, err);
    if (rc != AP_OK)
        return rc;
    if (!dbl)
        for (size_t i = 0; i < cnt; i++)
            (*v)[i] = ap_ir_round_f32((*v)[i]);
    *nv = (int)cnt;
    return AP_OK;
}

static int reals_as_floats(const ctx *c, const Onnx__NodeProto *n, const char *attr, float **v,
                           int *nv, ap_error *err)
{
    double *d;
    size_t cnt;
    int rc = ap_onnx_attr_reals(n, attr, &d, &cnt, NULL, c->name, err);
    if (rc != AP_OK)
        return rc;
    return doubles_to_floats(c, d, cnt, v, nv, err);
}

/* a new slot of `width` values (dbl: a double tensor) for output i */
static int out_slot(ctx *c, const Onnx__NodeProto *n, size_t i, int width, int dbl,
                    ap_error *err)
{
    if (i >= n->n_output || !n->output[i][0])
        return node_err(c, n, AP_EFORMAT, "missing output", err);
    int s = add_slot(c, width, dbl, err);
    if (s < 0)
        return s;
    int rc = bind(c, n->output[i], s, err);
    return rc < 0 ? rc : s;
}

static int is_op(const Onnx__NodeProto *n, const char *op) { return !strcmp(n->op_type, op); }

/* Operators whose kernels here are float-only: ORT runs them on double
   tensors in double (or with float attributes on double rows), which these
   kernels do not reproduce, so such graphs go to ORT. */
static int float_only(const ctx *c, const Onnx__NodeProto *n, int x, ap_error *err)
{
    if (c->m->dbl[x])
        return node_err(c, n, AP_EUNSUPPORTED,
                        "operator on a double tensor is not supported natively", err);
    return AP_OK;
}

/* ---- the attributes each operator may carry ----
 *
 * An attribute that can change a prediction and is not understood is never
 * ignored: each operator imported natively lists the attributes it reads
 * (and the few it may skip, with the reason); any other attribute, one
 * given twice, or a function-attribute reference makes the native import
 * refuse the node with AP_EUNSUPPORTED naming node, operator and attribute,
 * so the AUTO backend hands the graph to ONNX Runtime, whose schema check
 * knows every attribute of its opsets. Values the kernels here do not
 * implement (Gemm transA=1, Reshape allowzero=1, ...) are refused where the
 * attribute is read, the same way.
 */
typedef struct op_attrs {
    const char *op;
    int ml;                    /* domain ai.onnx.ml */
    const char *const *names;  /* NULL-terminated */
} op_attrs;

#define TREE_NODE_ATTRS                                                                          \
    "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",         \
        "nodes_values_as_tensor", "nodes_truenodeids", "nodes_falsenodeids",                     \
        "nodes_missing_value_tracks_true", "base_values", "base_values_as_tensor",               \
        "post_transform",                                                                        \
        /* not needed: how often each node is taken, a hint for ORT's tree layout   \
           that never changes a score */                                                         \
        "nodes_hitrates", "nodes_hitrates_as_tensor"

static const char *const a_tec[] = {TREE_NODE_ATTRS, "class_treeids", "class_nodeids",
                                    "class_ids", "class_weights", "class_weights_as_tensor",
                                    "classlabels_int64s", "classlabels_strings", NULL};
static const char *const a_ter[] = {TREE_NODE_ATTRS, "target_treeids", "target_nodeids",
                                    "target_ids", "target_weights", "target_weights_as_tensor",
                                    "n_targets", "aggregate_function", NULL};
/* multi_class: ONNX Runtime reads it and never uses it (linearclassifier.cc,
   1.30): it cannot change a score */
static const char *const a_lincls[] = {"coefficients", "intercepts", "post_transform",
                                       "classlabels_ints", "classlabels_strings", "multi_class",
                                       NULL};
static const char *const a_linreg[] = {"coefficients", "intercepts", "post_transform", "targets",
                                       NULL};
static const char *const a_scaler[] = {"offset", "scale", NULL};
static const char *const a_norm[] = {"norm", NULL};
static const char *const a_zipmap[] = {"classlabels_int64s", "classlabels_strings", NULL};
static const char *const a_gemm[] = {"alpha", "beta", "transA", "transB", NULL};
static const char *const a_axis[] = {"axis", NULL};
static const char *const a_reshape[] = {"allowzero", NULL};
static const char *const a_cast[] = {"to", "saturate", NULL};
static const char *const a_const[] = {"value", NULL};
static const char *const a_none[] = {NULL};

static const op_attrs op_table[] = {
    {"TreeEnsembleClassifier", 1, a_tec}, {"TreeEnsembleRegressor", 1, a_ter},
    {"LinearClassifier", 1, a_lincls},    {"LinearRegressor", 1, a_linreg},
    {"Scaler", 1, a_scaler},              {"Normalizer", 1, a_norm},
    {"ZipMap", 1, a_zipmap},              {"Gemm", 0, a_gemm},
    {"MatMul", 0, a_none},                {"Add", 0, a_none},
    {"Sub", 0, a_none},                   {"Mul", 0, a_none},
    {"Div", 0, a_none},                   {"Relu", 0, a_none},
    {"Sigmoid", 0, a_none},               {"Tanh", 0, a_none},
    {"Softmax", 0, a_axis},               {"Exp", 0, a_none},
    {"Softplus", 0, a_none},              {"Abs", 0, a_none},
    {"Neg", 0, a_none},                   {"Flatten", 0, a_axis},
    {"Reshape", 0, a_reshape},            {"Concat", 0, a_axis},
    {"Identity", 0, a_none},              {"Cast", 0, a_cast},
    {"Constant", 0, a_const},
};

/* n's attributes against its operator's list; operators not in the table
   are refused later, by name. */
static int check_attrs(const ctx *c, const Onnx__NodeProto *n, int ml, ap_error *err)
{
    const op_attrs *oa = NULL;
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0] && !oa; i++)
        if (op_table[i].ml == ml && !strcmp(op_table[i].op, n->op_type))
            oa = &op_table[i];
    if (!oa)
        return AP_OK;
    char msg[200];
    for (size_t i = 0; i < n->n_attribute; i++) {
        const Onnx__AttributeProto *a = n->attribute[i];
        const char *an = a->name ? a->name : "";
        if (a->ref_attr_name && a->ref_attr_name[0]) {
            snprintf(msg, sizeof msg, "attribute '%.64s' refers to a function attribute", an);
            return node_err(c, n, AP_EUNSUPPORTED, msg, err);
        }
        size_t k;
        for (k = 0; oa->names[k] && strcmp(oa->names[k], an); k++)
            ;
        if (!oa->names[k]) {
            snprintf(msg, sizeof msg,
                     "unknown attribute '%.64s' (not imported natively; refusing rather than "
                     "ignoring it)", an);
            return node_err(c, n, AP_EUNSUPPORTED, msg, err);
        }
        for (size_t j = 0; j < i; j++)
            if (n->attribute[j]->name && !strcmp(n->attribute[j]->name, an)) {
                snprintf(msg, sizeof msg, "attribute '%.64s' given twice", an);
                return node_err(c, n, AP_EFORMAT, msg, err);
            }
    }
    return AP_OK;
}

/* ---- one node ---- */

static int compile_gemm(ctx *c, const Onnx__NodeProto *n, int x, ap_error *err)
{
    int gemm = is_op(n, "Gemm");
    int64_t ta = 0, tb = 0;
    float alpha = 1.0f, beta = 1.0f;
    int rc;
    if (gemm && ((rc = ap_onnx_attr_int(n, "transA", &ta, c->name, err)) ||
                 (rc = ap_onnx_attr_int(n, "transB", &tb, c->name, err)) ||
                 (rc = ap_onnx_attr_float(n, "alpha", &alpha, c->name, err)) ||
                 (rc = ap_onnx_attr_float(n, "beta", &beta, c->name, err))))
        return rc;
    if (ta)
        return node_err(c, n, AP_EUNSUPPORTED, "transA=1 is not supported natively", err);
    if ((rc = float_only(c, n, x, err)))
        return rc;
    if (n->n_input < 2)
        return node_err(c, n, AP_EFORMAT, "needs 2 inputs", err);
    float *B;
    int nb, nd;
    int64_t dims[4];
    if ((rc = const_floats(c, n, n->input[1], &B, &nb, dims, &nd, err)))
        return rc;
    int K = c->m->width[x];
    if (nd != 2 || dims[tb ? 1 : 0] != K) {
        free(B);
        return node_err(c, n, AP_EFORMAT, "weight shape does not match the input width", err);
    }
    int M = (int)dims[tb ? 0 : 1];
    stage *s = new_stage(c, ST_DENSE, err);
    if (!s) {
        free(B);
        return AP_ENOMEM;
    }
    s->in = x;
    if ((rc = ap_dense_init(&s->dense, K, M, err))) {
        free(B);
        return rc;
    }
    for (int o = 0; o < M; o++)
        for (int i = 0; i < K; i++)
            s->dense.w[(size_t)o * K + i] =
                alpha * (tb ? B[(size_t)o * K + i] : B[(size_t)i * M + o]);
    free(B);
    if (gemm && n->n_input >= 3 && n->input[2][0]) {
        float *C;
        int ncv;
        if ((rc = const_floats(c, n, n->input[2], &C, &ncv, dims, &nd, err)))
            return rc;
        if (ncv != 1 && ncv != M) {
            free(C);
            return node_err(c, n, AP_EUNSUPPORTED, "C must broadcast over rows ([M] or [1, M])",
                            err);
        }
        for (int o = 0; o < M; o++)
            s->dense.b[o] = beta * C[ncv == 1 ? 0 : o];
        free(C);
    }
    int o = out_slot(c, n, 0, M, 0, err);
    if (o < 0)
        return o;
    c->m->st[c->m->nst - 1].out = o;
    return AP_OK;
}

static int compile_linear(ctx *c, const Onnx__NodeProto *n, int x, ap_error *err)
{
    int cls = is_op(n, "LinearClassifier");
    float *coef = NULL, *icpt = NULL;
    int ncoef, nicpt;
    char post[32] = "NONE";
    int rc;
    if ((rc = float_only(c, n, x, err)) ||
        (rc = reals_as_floats(c, n, "coefficients", &coef, &ncoef, err)))
        return rc;
    if ((rc = reals_as_floats(c, n, "intercepts", &icpt, &nicpt, err)) ||
        (rc = ap_onnx_attr_string(n, "post_transform", post, sizeof post, c->name, err)))
        goto out;
    int K = c->m->width[x];
    int T = ncoef / K;
    int postv;
    if (ap_onnx_post_parse(post, &postv)) {
        rc = node_err(c, n, AP_EFORMAT, "unknown post_transform", err);
        goto out;
    }
    if (T < 1 || T * K != ncoef || (nicpt != 0 && nicpt != T)) {
        rc = node_err(c, n, AP_EFORMAT,
                      "coefficients/intercepts do not match the input width", err);
        goto out;
    }
    int ncls = T;
    if (!cls) {
        /* ORT sizes its output and GEMM by `targets` (default 1) */
        int64_t targets = 1;
        if ((rc = ap_onnx_attr_int(n, "targets", &targets, c->name, err)))
            goto out;
        if (targets != T) {
            rc = node_err(c, n, AP_EFORMAT,
                          "targets does not match the coefficients and the input width", err);
            goto out;
        }
    }
    if (cls) {
        const int64_t *li;
        const ProtobufCBinaryData *ls;
        size_t nli, nls;
        if ((rc = ap_onnx_attr_ints(n, "classlabels_ints", &li, &nli, c->name, err)) ||
            (rc = ap_onnx_attr_strings(n, "classlabels_strings", &ls, &nls, c->name, err)))
            goto out;
        ncls = (int)(nli + nls);
        if (!(ncls == T || (ncls == 2 && T == 1))) {
            rc = node_err(c, n, AP_EFORMAT, "class labels do not match the coefficients", err);
            goto out;
        }
    }
    stage *s = new_stage(c, ST_LINCLS, err);
    if (!s) {
        rc = AP_ENOMEM;
        goto out;
    }
    s->in = x;
    s->post = postv;
    s->binary = cls && ncls == 2 && T == 1;
    s->sub = cls;
    if ((rc = ap_dense_init(&s->dense, K, T, err)))
        goto out;
    memcpy(s->dense.w, coef, (size_t)ncoef * sizeof *coef);
    if (nicpt)
        memcpy(s->dense.b, icpt, (size_t)T * sizeof *icpt);
    int o = out_slot(c, n, cls ? 1 : 0, ncls, 0, err);
    if (o < 0) {
        rc = o;
        goto out;
    }
    c->m->st[c->m->nst - 1].out = o;
out:
    free(coef);
    free(icpt);
    return rc;
}

static int compile_binop(ctx *c, const Onnx__NodeProto *n, ap_error *err)
{
    int op = is_op(n, "Add") ? OP_ADD : is_op(n, "Sub") ? OP_SUB : is_op(n, "Mul") ? OP_MUL : OP_DIV;
    if (n->n_input != 2)
        return node_err(c, n, AP_EFORMAT, "needs 2 inputs", err);
    int a = lookup(c, n->input[0]), b = lookup(c, n->input[1]);
    int rc;
    if (a >= 0 && b >= 0) {
        if (c->m->width[a] != c->m->width[b])
            return node_err(c, n, AP_EUNSUPPORTED, "operands of different widths", err);
        if (c->m->dbl[a] != c->m->dbl[b])
            return node_err(c, n, AP_EFORMAT, "operands of different types", err);
        stage *s = new_stage(c, ST_BIN2, err);
        if (!s)
            return AP_ENOMEM;
        s->in = a;
        s->in2 = b;
        s->sub = op;
        int o = out_slot(c, n, 0, c->m->width[a], c->m->dbl[a], err);
        if (o < 0)
            return o;
        c->m->st[c->m->nst - 1].out = o;
        return AP_OK;
    }
    int x = a >= 0 ? a : b;
    if (x < 0)
        return node_err(c, n, AP_EUNSUPPORTED, "no computed operand (constant folding is not "
                        "supported)", err);
    double *v;
    int nv = 0;
    if ((rc = const_reals(c, n, n->input[a >= 0 ? 1 : 0], c->m->dbl[x], &v, &nv, err)))
        return rc;
    if (nv != 1 && nv != c->m->width[x]) {
        free(v);
        return node_err(c, n, AP_EUNSUPPORTED, "constant must broadcast over rows", err);
    }
    stage *s = new_stage(c, ST_BINC, err);
    if (!s) {
        free(v);
        return AP_ENOMEM;
    }
    s->in = x;
    s->sub = op;
    s->const_left = a < 0;
    s->cd = v;
    s->nc = nv;
    int o = out_slot(c, n, 0, c->m->width[x], c->m->dbl[x], err);
    if (o < 0)
        return o;
    c->m->st[c->m->nst - 1].out = o;
    return AP_OK;
}

static int compile_node(ctx *c, const Onnx__NodeProto *n, ap_error *err)
{
    ap_onnx *m = c->m;
    const char *dom = n->domain ? n->domain : "";
    int ml = !strcmp(dom, "ai.onnx.ml");
    if (!ml && dom[0] && strcmp(dom, "ai.onnx"))
        return ap_error_set(err, AP_EUNSUPPORTED, "%s: node '%s': operator %s of domain '%s' is "
                            "not supported natively", c->name, label(n), n->op_type, dom);
    int rc;
    if ((rc = check_attrs(c, n, ml, err)))
        return rc;
    if (ml && (is_op(n, "TreeEnsembleClassifier") || is_op(n, "TreeEnsembleRegressor"))) {
        int x = in_slot(c, n, 0, err);
        if (x < 0)
            return x;
        stage *s = new_stage(c, ST_TREES, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        int nout;
        /* double rows run the double kernel; its scores are float (ORT's
           Y / Z outputs are tensor(float) for either input type) */
        if ((rc = ap_onnx_trees_build(n, m->width[x], m->dbl[x], c->name, &s->trees, &nout,
                                      err)))
            return rc;
        m->ntrees += ap_onnx_trees_count(s->trees);
        int o = out_slot(c, n, is_op(n, "TreeEnsembleClassifier") ? 1 : 0, nout, 0, err);
        if (o < 0)
            return o;
        m->st[m->nst - 1].out = o;
        return AP_OK;
    }
    if (ml && (is_op(n, "LinearClassifier") || is_op(n, "LinearRegressor"))) {
        int x = in_slot(c, n, 0, err);
        return x < 0 ? x : compile_linear(c, n, x, err);
    }
    if (ml && is_op(n, "ZipMap")) {
        int x = in_slot(c, n, 0, err);
        return x < 0 ? x : bind(c, n->output[0], x, err);
    }
    if (ml && is_op(n, "Scaler")) {
        int x = in_slot(c, n, 0, err);
        if (x < 0)
            return x;
        if ((rc = float_only(c, n, x, err)))
            return rc;
        stage *s = new_stage(c, ST_SCALER, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        if ((rc = reals_as_floats(c, n, "offset", &s->c, &s->nc, err)) ||
            (rc = reals_as_floats(c, n, "scale", &s->c2, &s->nc2, err)))
            return rc;
        if ((s->nc != 1 && s->nc != m->width[x]) || (s->nc2 != 1 && s->nc2 != m->width[x]))
            return node_err(c, n, AP_EFORMAT, "offset/scale must have 1 or W values", err);
        int o = out_slot(c, n, 0, m->width[x], 0, err);
        if (o < 0)
            return o;
        m->st[m->nst - 1].out = o;
        return AP_OK;
    }
    if (ml && is_op(n, "Normalizer")) {
        int x = in_slot(c, n, 0, err);
        if (x < 0)
            return x;
        char norm[16] = "MAX";
        if ((rc = float_only(c, n, x, err)) ||
            (rc = ap_onnx_attr_string(n, "norm", norm, sizeof norm, c->name, err)))
            return rc;
        stage *s = new_stage(c, ST_NORM, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        if (!strcmp(norm, "MAX"))
            s->sub = NORM_MAX;
        else if (!strcmp(norm, "L1"))
            s->sub = NORM_L1;
        else if (!strcmp(norm, "L2"))
            s->sub = NORM_L2;
        else
            return node_err(c, n, AP_EFORMAT, "norm must be MAX, L1 or L2", err);
        int o = out_slot(c, n, 0, m->width[x], 0, err);
        if (o < 0)
            return o;
        m->st[m->nst - 1].out = o;
        return AP_OK;
    }
    if (ml)
        return ap_error_set(err, AP_EUNSUPPORTED, "%s: node '%s': operator ai.onnx.ml.%s is not "
                            "supported natively", c->name, label(n), n->op_type);
    if (is_op(n, "Gemm") || is_op(n, "MatMul")) {
        int x = in_slot(c, n, 0, err);
        return x < 0 ? x : compile_gemm(c, n, x, err);
    }
    if (is_op(n, "Add") || is_op(n, "Sub") || is_op(n, "Mul") || is_op(n, "Div"))
        return compile_binop(c, n, err);
    static const char *acts[] = {"Relu", "Sigmoid", "Tanh", "Softmax", "Exp", "Softplus", "Abs",
                                 "Neg"};  /* ACT_* order */
    int act_kind = -1;
    for (int i = 0; i < (int)(sizeof acts / sizeof *acts); i++)
        if (is_op(n, acts[i]))
            act_kind = i;
    if (act_kind >= 0) {
        int x = in_slot(c, n, 0, err);
        if (x < 0)
            return x;
        if (is_op(n, "Softmax")) {
            int64_t axis = -1;
            if ((rc = ap_onnx_attr_int(n, "axis", &axis, c->name, err)))
                return rc;
            if (axis != 1 && axis != -1)
                return node_err(c, n, AP_EUNSUPPORTED, "only axis 1 / -1 is supported", err);
        }
        stage *s = new_stage(c, ST_ACT, err);
        if (!s)
            return AP_ENOMEM;
        s->in = x;
        s->sub = act_kind;
        int o = out_slot(c, n, 0, m->width[x], m->dbl[x], err);
        if (o < 0)
            return o;
        m->st[m->nst - 1].out = o;
        return AP_OK;
    }
    if (is_op(n, "Identity") || is_op(n, "Flatten") || is_op(n, "Reshape") ||
        is_op(n, "Cast")) {
        int x = in_slot(c, n, 0, err);
        if (x < 0)
            return x;
        if (is_op(n, "Flatten")) {
            int64_t axis = 1;
            if ((rc = ap_onnx_attr_int(n, "axis", &axis, c->name, err)))
                return rc;
            if (axis != 1)
                return node_err(c, n, AP_EUNSUPPORTED, "only axis 1 is supported", err);
        }
        if (is_op(n, "Reshape")) {
            float *shape;
            int ns, nd;
            int64_t dims[4], allowzero = 0;
            /* allowzero=1 makes a 0 in the shape a zero-size dimension
               instead of "copy the input's": not the [N, W] case below */
            if ((rc = ap_onnx_attr_int(n, "allowzero", &allowzero, c->name, err)))
                return rc;
            if (allowzero != 0)
                return node_err(c, n, AP_EUNSUPPORTED, "allowzero=1 is not supported natively",
                                err);
            if (n->n_input < 2)
                return node_err(c, n, AP_EFORMAT, "needs a shape input", err);
            if ((rc = const_floats(c, n, n->input[1], &shape, &ns, dims, &nd, err)))
                return rc;
            int ok = ns == 2 && (shape[0] == -1 || shape[0] == 0) &&
                     (shape[1] == m->width[x] || (shape[1] == -1 && shape[0] == 0));
            free(shape);
            if (!ok)
                return node_err(c, n, AP_EUNSUPPORTED, "only reshapes to [N, W] are supported",
                                err);
        }
        if (is_op(n, "Cast")) {
            int64_t to = 0, saturate = 1;
            if ((rc = ap_onnx_attr_int(n, "to", &to, c->name, err)) ||
                (rc = ap_onnx_attr_int(n, "saturate", &saturate, c->name, err)))
                return rc;
            /* saturate only concerns float8 targets; anything but its
               default is refused rather than assumed harmless */
            if (saturate != 1)
                return node_err(c, n, AP_EUNSUPPORTED, "saturate=0 is not supported natively",
                                err);
            if (to != TYPE_FLOAT && to != TYPE_DOUBLE)
                return node_err(c, n, AP_EUNSUPPORTED, "only casts to float or double", err);
            int dbl = to == TYPE_DOUBLE;
            if (dbl != m->dbl[x]) {
                /* a new slot, not an alias: the type decides how later
                   operators compute (double -> float rounds) */
                stage *s = new_stage(c, ST_CAST, err);
                if (!s)
                    return AP_ENOMEM;
                s->in = x;
                int o = out_slot(c, n, 0, m->width[x], dbl, err);
                if (o < 0)
                    return o;
                m->st[m->nst - 1].out = o;
                return AP_OK;
            }
        }
        return bind(c, n->output[0], x, err);
    }
    if (is_op(n, "Concat")) {
        int64_t axis = 0;
        if ((rc = ap_onnx_attr_int(n, "axis", &axis, c->name, err)))
            return rc;
        if (axis != 1 && axis != -1)
            return node_err(c, n, AP_EUNSUPPORTED, "only axis 1 / -1 is supported", err);
        if (n->n_input < 1 || n->n_input > 1024)
            return node_err(c, n, AP_EFORMAT, "needs 1..1024 inputs", err);
        stage *s = new_stage(c, ST_CONCAT, err);
        if (!s)
            return AP_ENOMEM;
        s->ins = malloc(n->n_input * sizeof *s->ins);
        if (!s->ins)
            return ap_error_set(err, AP_ENOMEM, "%s: out of memory", c->name);
        int w = 0;
        for (size_t i = 0; i < n->n_input; i++) {
            int x = in_slot(c, n, i, err);
            if (x < 0)
                return x;
            if (i > 0 && m->dbl[x] != m->dbl[s->ins[0]])
                return node_err(c, n, AP_EFORMAT, "inputs of different types", err);
            s->ins[s->nins++] = x;
            w += m->width[x];
        }
        int o = out_slot(c, n, 0, w, m->dbl[s->ins[0]], err);
        if (o < 0)
            return o;
        m->st[m->nst - 1].out = o;
        return AP_OK;
    }
    return ap_error_set(err, AP_EUNSUPPORTED, "%s: node '%s': operator %s is not supported "
                        "natively", c->name, label(n), n->op_type);
}

/* ---- graph-level checks: the input, the output ---- */

typedef struct io {
    const char *input, *output;  /* graph input and chosen output */
    int elem;                    /* input element type */
    int nf;
    const Onnx__NodeProto *zipmap;  /* ZipMap producing the output, if any */
} io;

static int tensor_elem(const Onnx__ValueInfoProto *v)
{
    if (!v->type || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !v->type->tensor_type)
        return -1;
    return v->type->tensor_type->elem_type;
}

static int find_io(const Onnx__ModelProto *mp, const char *name, io *r, ap_error *err)
{
    memset(r, 0, sizeof *r);
    const Onnx__GraphProto *g = mp->graph;
    if (!g)
        return ap_error_set(err, AP_EFORMAT, "%s: ONNX model has no graph", name);
    if (g->n_node > MAX_NODES)
        return ap_error_set(err, AP_ERANGE, "%s: graph has %zu nodes (at most %d)", name,
                            g->n_node, MAX_NODES);
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!n->op_type || !n->op_type[0])
            return ap_error_set(err, AP_EFORMAT, "%s: node %zu has no op_type", name, i);
        for (size_t k = 0; k < n->n_input; k++)
            if (!n->input[k])
                return ap_error_set(err, AP_EFORMAT, "%s: node %zu: bad input", name, i);
        for (size_t k = 0; k < n->n_output; k++)
            if (!n->output[k])
                return ap_error_set(err, AP_EFORMAT, "%s: node %zu: bad output", name, i);
    }
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *v = g->input[i];
        if (!v->name)
            return ap_error_set(err, AP_EFORMAT, "%s: graph input %zu has no name", name, i);
        int is_init = 0;
        for (size_t k = 0; k < g->n_initializer; k++)
            if (g->initializer[k]->name && !strcmp(g->initializer[k]->name, v->name))
                is_init = 1;
        if (is_init)
            continue;
        if (in)
            return ap_error_set(err, AP_EUNSUPPORTED,
                                "%s: graph has several inputs ('%s', '%s'); one [N, F] tensor "
                                "input is supported", name, in->name, v->name);
        in = v;
    }
    if (!in)
        return ap_error_set(err, AP_EFORMAT, "%s: graph has no input", name);
    r->input = in->name;
    r->elem = tensor_elem(in);
    if (r->elem != TYPE_FLOAT && r->elem != TYPE_DOUBLE)
        return ap_error_set(err, AP_EUNSUPPORTED,
                            "%s: input '%s' must be a float or double tensor", name, in->name);
    const Onnx__TensorShapeProto *sh = in->type->tensor_type->shape;
    if (!sh || sh->n_dim != 2 ||
        sh->dim[1]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
        sh->dim[1]->dim_value < 1 || sh->dim[1]->dim_value > AP_IR_MAX_FEATURES)
        return ap_error_set(err, AP_EUNSUPPORTED,
                            "%s: input '%s' must have shape [N, F] with F known", name, in->name);
    r->nf = (int)sh->dim[1]->dim_value;
    /* the prediction: the first output that is not an integer/string label */
    for (size_t i = 0; i < g->n_output && !r->output; i++) {
        const Onnx__ValueInfoProto *v = g->output[i];
        if (!v->name)
            return ap_error_set(err, AP_EFORMAT, "%s: graph output %zu has no name", name, i);
        int e = tensor_elem(v);
        if (e == TYPE_FLOAT || e == TYPE_DOUBLE || e == -1)
            r->output = v->name;
    }
    if (!r->output)
        return ap_error_set(err, AP_EUNSUPPORTED, "%s: graph has no float output", name);
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!strcmp(n->op_type, "ZipMap") && n->n_output == 1 && n->n_input == 1 &&
            !strcmp(n->output[0], r->output))
            r->zipmap = n;
    }
    return AP_OK;
}

/* ---- native compile ---- */

static int compile_native(ap_onnx *m, const Onnx__ModelProto *mp, const io *r, const char *name,
                          ap_error *err)
{
    const Onnx__GraphProto *g = mp->graph;
    ctx c = {.g = g, .name = name, .m = m};
    m->f64 = r->elem == TYPE_DOUBLE;
    int rc = AP_OK;
    /* which nodes the output needs: walk backwards from it */
    unsigned char *need = calloc(g->n_node ? g->n_node : 1, 1);
    size_t nwant = 0, capwant = 1;
    for (size_t i = 0; i < g->n_node; i++)
        capwant += g->node[i]->n_input;
    const char **want = malloc(capwant * sizeof *want);
    if (!need || !want) {
        rc = ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    want[nwant++] = r->output;
    for (size_t i = g->n_node; i-- > 0;) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_output && !need[i]; k++)
            for (size_t w = 0; w < nwant; w++)
                if (n->output[k][0] && !strcmp(n->output[k], want[w])) {
                    need[i] = 1;
                    break;
                }
        if (!need[i])
            continue;
        for (size_t k = 0; k < n->n_input; k++)
            want[nwant++] = n->input[k];  /* capwant counts every input once */
    }
    int x = add_slot(&c, r->nf, m->f64, err);
    if (x < 0 || (rc = bind(&c, r->input, x, err))) {
        rc = x < 0 ? x : rc;
        goto out;
    }
    m->in_slot = x;
    size_t pos = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        if (!need[i])
            continue;
        if (!strcmp(g->node[i]->op_type, "Constant")) {
            /* read by find_const when an operator needs it: only `value` */
            const char *dom = g->node[i]->domain ? g->node[i]->domain : "";
            if ((!dom[0] || !strcmp(dom, "ai.onnx")) &&
                (rc = check_attrs(&c, g->node[i], 0, err)))
                goto out;
            continue;
        }
        if ((rc = compile_node(&c, g->node[i], err)))
            goto out;
        pos += (size_t)snprintf(m->summary + pos, pos < sizeof m->summary ? sizeof m->summary - pos : 0,
                                "%s%s", pos ? "+" : "", g->node[i]->op_type);
        if (pos >= sizeof m->summary)
            pos = sizeof m->summary;
    }
    m->out_slot = lookup(&c, r->output);
    if (m->out_slot < 0) {
        rc = ap_error_set(err, AP_EFORMAT, "%s: output '%s' is not computed by any node", name,
                          r->output);
        goto out;
    }
    m->nout = m->width[m->out_slot];
    m->direct_trees = m->nst == 1 && m->st[0].kind == ST_TREES && m->st[0].in == m->in_slot;
out:
    free(need);
    free(want);
    free(c.vals);
    return rc;
}

/* ---- ORT ---- */

/* Serialize the model for ONNX Runtime with the output's ZipMap removed and
   the graph output renamed to the ZipMap's input (a float tensor). */
static int pack_for_ort(Onnx__ModelProto *mp, const io *r, uint8_t **buf, size_t *len,
                        const char **out_name, const char *name, ap_error *err)
{
    Onnx__GraphProto *g = mp->graph;
    Onnx__ValueInfoProto *ov = NULL;
    size_t zi = 0;
    *out_name = r->output;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TypeProto tp = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto *saved_type = NULL;
    char *saved_name = NULL;
    if (r->zipmap) {
        for (size_t i = 0; i < g->n_output; i++)
            if (!strcmp(g->output[i]->name, r->output))
                ov = g->output[i];
        for (zi = 0; g->node[zi] != r->zipmap; zi++)
            ;
        /* take the ZipMap node out (moved to the end, count decremented) */
        Onnx__NodeProto *z = g->node[zi];
        memmove(&g->node[zi], &g->node[zi + 1], (g->n_node - zi - 1) * sizeof *g->node);
        g->node[g->n_node - 1] = z;
        g->n_node--;
        tt.has_elem_type = 1;
        tt.elem_type = TYPE_FLOAT;
        tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        tp.tensor_type = &tt;
        saved_type = ov->type;
        saved_name = ov->name;
        ov->type = &tp;
        ov->name = z->input[0];
        *out_name = z->input[0];
    }
    *len = onnx__model_proto__get_packed_size(mp);
    *buf = malloc(*len ? *len : 1);
    if (*buf)
        onnx__model_proto__pack(mp, *buf);
    if (r->zipmap) {
        /* put everything back: free_unpacked walks the original structure */
        ov->type = saved_type;
        ov->name = saved_name;
        g->n_node++;
        Onnx__NodeProto *z = g->node[g->n_node - 1];
        memmove(&g->node[zi + 1], &g->node[zi], (g->n_node - zi - 1) * sizeof *g->node);
        g->node[zi] = z;
    }
    if (!*buf)
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    return AP_OK;
}

static int zipmap_width(const io *r)
{
    const Onnx__AttributeProto *a = ap_onnx_attr(r->zipmap, "classlabels_int64s");
    if (a && a->n_ints)
        return (int)a->n_ints;
    a = ap_onnx_attr(r->zipmap, "classlabels_strings");
    return a ? (int)a->n_strings : 0;
}

static int output_width(const Onnx__GraphProto *g, const char *out)
{
    for (size_t i = 0; i < g->n_output; i++) {
        const Onnx__ValueInfoProto *v = g->output[i];
        if (strcmp(v->name, out) || tensor_elem(v) < 0)
            continue;
        const Onnx__TensorShapeProto *sh = v->type->tensor_type->shape;
        if (sh && sh->n_dim == 1)
            return 1;
        if (sh && sh->n_dim == 2 &&
            sh->dim[1]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            return (int)sh->dim[1]->dim_value;
    }
    return 0;
}

static int open_ort(ap_onnx *m, Onnx__ModelProto *mp, const io *r, const ap_onnx_options *o,
                    const char *name, ap_error *err)
{
    uint8_t *buf;
    size_t len;
    const char *out_name;
    int rc = pack_for_ort(mp, r, &buf, &len, &out_name, name, err);
    if (rc != AP_OK)
        return rc;
    ap_ort_config cfg = {
        .library = o->ort_library,
        .input = r->input,
        .output = out_name,
        .input_is_double = r->elem == TYPE_DOUBLE,
        .num_features = r->nf,
        .num_outputs = r->zipmap ? zipmap_width(r) : output_width(mp->graph, r->output),
        .intra_threads = o->ort_threads,
    };
    rc = ap_ort_open(buf, len, &cfg, name, &m->ort, err);
    free(buf);
    if (rc != AP_OK)
        return rc;
    m->nf = r->nf;
    m->nout = ap_ort_num_outputs(m->ort);
    m->f64 = 0;
    snprintf(m->backend, sizeof m->backend, "%s", ap_ort_version(m->ort));
    return AP_OK;
}

/* ---- public API ---- */

void ap_onnx_options_default(ap_onnx_options *o)
{
    o->backend = AP_ONNX_AUTO;
    o->ort_library = NULL;
    o->ort_threads = 1;
}

int ap_onnx_options_parse(ap_onnx_options *o, const char *e, const char *lib, ap_error *err)
{
    ap_onnx_options_default(o);
    if (!e || !*e || !strcmp(e, "1") || !strcasecmp(e, "on") || !strcasecmp(e, "true") ||
        !strcasecmp(e, "auto"))
        o->backend = AP_ONNX_AUTO;
    else if (!strcmp(e, "0") || !strcasecmp(e, "off") || !strcasecmp(e, "false") ||
             !strcasecmp(e, "native"))
        o->backend = AP_ONNX_NATIVE;
    else if (!strcasecmp(e, "ort"))
        o->backend = AP_ONNX_ORT;
    else
        return ap_error_set(err, AP_EINVAL,
                            "ONNX backend '%s': expected 0/off/native, 1/auto or ort", e);
    if (lib && *lib)
        o->ort_library = lib;
    return AP_OK;
}

int ap_onnx_sniff(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    /* field 1 (ir_version, varint) comes first in every writer we know */
    return len >= 2 && b[0] == 0x08 && b[1] >= 1 && b[1] < 0x40;
}

void ap_onnx_free(ap_onnx *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nst; i++) {
        stage *s = &m->st[i];
        ap_onnx_trees_free(s->trees);
        ap_dense_free(&s->dense);
        free(s->ins);
        free(s->c);
        free(s->c2);
        free(s->cd);
    }
    free(m->st);
    free(m->width);
    free(m->dbl);
    free(m->off);
    ap_ort_close(m->ort);
    free(m);
}

int ap_onnx_load_mem(const void *buf, size_t len, const char *name, const ap_onnx_options *opt,
                     ap_onnx **out, ap_error *err)
{
    *out = NULL;
    if (!name)
        name = "model";
    ap_onnx_options def;
    if (!opt) {
        ap_onnx_options_default(&def);
        opt = &def;
    }
    Onnx__ModelProto *mp;
    int rc = ap_onnx_pb_parse(buf, len, name, &mp, err);
    if (rc != AP_OK)
        return rc;
    ap_onnx *m = calloc(1, sizeof *m);
    if (!m) {
        ap_onnx_pb_free(mp);
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    io r;
    rc = find_io(mp, name, &r, err);
    if (rc == AP_OK && opt->backend != AP_ONNX_ORT) {
        m->nf = r.nf;
        rc = compile_native(m, mp, &r, name, err);
        if (rc == AP_OK)
            snprintf(m->backend, sizeof m->backend, "native");
        if (rc == AP_EUNSUPPORTED && opt->backend == AP_ONNX_AUTO) {
            /* keep the native reason: it is what the user must know when
               ONNX Runtime is missing too */
            ap_error why = *err;
            ap_onnx_free(m);
            m = calloc(1, sizeof *m);
            if (!m) {
                ap_onnx_pb_free(mp);
                return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
            }
            rc = open_ort(m, mp, &r, opt, name, err);
            if (rc != AP_OK) {
                ap_error ort_why = *err; /* err->msg cannot be read while written */
                rc = ap_error_set(err, rc, "%s; ONNX Runtime fallback failed: %s", why.msg,
                                  ort_why.msg);
            }
        }
    } else if (rc == AP_OK) {
        rc = open_ort(m, mp, &r, opt, name, err);
    }
    ap_onnx_pb_free(mp);
    if (rc != AP_OK) {
        ap_onnx_free(m);
        return rc;
    }
    *out = m;
    return AP_OK;
}

int ap_onnx_load(const char *path, const ap_onnx_options *opt, ap_onnx **out, ap_error *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = ap_read_file(path, AP_ONNX_MAX_FILE, &buf, &len, err);
    if (rc != AP_OK)
        return rc;
    rc = ap_onnx_load_mem(buf, len, path, opt, out, err);
    free(buf);
    return rc;
}

int ap_onnx_num_features(const ap_onnx *m) { return m->nf; }
int ap_onnx_num_outputs(const ap_onnx *m) { return m->nout; }
int ap_onnx_is_float32(const ap_onnx *m) { return 1; }
const char *ap_onnx_backend_name(const ap_onnx *m) { return m->backend; }
const char *ap_onnx_summary(const ap_onnx *m) { return m->ort ? "onnxruntime" : m->summary; }
int ap_onnx_num_trees(const ap_onnx *m) { return m->ntrees; }

/* ---- native predict ---- */

/* elementwise operators on float tensors: in float, as ORT */
static float act(int kind, float x)
{
    switch (kind) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_SIGMOID: return ap_onnx_logistic(x);
    case ACT_EXP: return expf(x);
    case ACT_SOFTPLUS: return ap_onnx_softplus(x);
    case ACT_ABS: return fabsf(x);
    case ACT_NEG: return -x;
    default: return tanhf(x);
    }
}

/* ... and on double tensors, in double */
static double act_d(int kind, double x)
{
    switch (kind) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_SIGMOID: return ap_onnx_logistic_d(x);
    case ACT_EXP: return exp(x);
    case ACT_SOFTPLUS: return ap_onnx_softplus_d(x);
    case ACT_ABS: return fabs(x);
    case ACT_NEG: return -x;
    default: return tanh(x);
    }
}

static float binop(int op, float a, float b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    default: return a / b;
    }
}

static double binop_d(int op, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    default: return a / b;
    }
}

static void run_stage(const ap_onnx *m, const stage *s, double *sc, size_t nb, float *xf)
{
    const int wi = s->in >= 0 ? m->width[s->in] : 0, wo = m->width[s->out];
    double *in = s->in >= 0 ? sc + (size_t)m->off[s->in] * nb : NULL;
    double *out = sc + (size_t)m->off[s->out] * nb;
    switch (s->kind) {
    case ST_TREES:
        ap_onnx_trees_run(s->trees, in, nb, out);
        return;
    case ST_DENSE:
        ap_dense_forward(&s->dense, in, nb, out, xf);
        return;
    case ST_LINCLS: {
        ap_dense_forward(&s->dense, in, nb, out + (s->binary ? nb : 0), xf);
        float v[MAX_WIDTH];
        for (size_t r = 0; r < nb; r++) {
            if (s->binary) {
                /* one score for two classes, as ORT's LinearClassifier */
                float sc1 = (float)out[nb + r];
                float p = s->post == AP_POST_LOGISTIC ? ap_onnx_logistic(sc1)
                        : s->post == AP_POST_PROBIT ? ap_onnx_probit(sc1) : sc1;
                out[r * 2] = s->post == AP_POST_NONE ? -p : 1.0f - p;
                out[r * 2 + 1] = p;
                continue;
            }
            double *o = out + r * (size_t)wo;
            if (!s->sub && wo == 1) {
                /* LinearRegressor with one target: ORT applies only PROBIT */
                if (s->post == AP_POST_PROBIT)
                    o[0] = ap_onnx_probit((float)o[0]);
                continue;
            }
            for (int k = 0; k < wo; k++)
                v[k] = (float)o[k];
            switch (s->post) {
            case AP_POST_LOGISTIC:
                for (int k = 0; k < wo; k++)
                    v[k] = ap_onnx_logistic(v[k]);
                break;
            case AP_POST_SOFTMAX: ap_onnx_softmax(v, wo); break;
            case AP_POST_SOFTMAX_ZERO: ap_onnx_softmax_zero(v, wo); break;
            case AP_POST_PROBIT:
                for (int k = 0; k < wo; k++)
                    v[k] = ap_onnx_probit(v[k]);
                break;
            default: break;
            }
            for (int k = 0; k < wo; k++)
                o[k] = v[k];
        }
        return;
    }
    default:
        break;
    }
    for (size_t r = 0; r < nb; r++) {
        const double *x = in ? in + r * (size_t)wi : NULL;
        double *y = out + r * (size_t)wo;
        switch (s->kind) {
        case ST_SCALER:
            for (int k = 0; k < wo; k++)
                y[k] = ((float)x[k] - s->c[s->nc == 1 ? 0 : k]) * s->c2[s->nc2 == 1 ? 0 : k];
            break;
        case ST_NORM: {
            float a = 0;
            if (s->sub == NORM_MAX) {
                a = (float)x[0];
                for (int k = 1; k < wo; k++)
                    a = (float)x[k] > a ? (float)x[k] : a;
            } else {
                for (int k = 0; k < wo; k++)
                    a += s->sub == NORM_L1 ? fabsf((float)x[k]) : (float)x[k] * (float)x[k];
                if (s->sub == NORM_L2)
                    a = sqrtf(a);
            }
            for (int k = 0; k < wo; k++)
                y[k] = a != 0 ? (float)x[k] / a : (float)x[k];
            break;
        }
        case ST_ACT:
            if (m->dbl[s->in]) {
                for (int k = 0; k < wo; k++)
                    y[k] = x[k];
                if (s->sub == ACT_SOFTMAX)
                    ap_onnx_softmax_d(y, wo);
                else
                    for (int k = 0; k < wo; k++)
                        y[k] = act_d(s->sub, y[k]);
            } else if (s->sub == ACT_SOFTMAX) {
                float v[MAX_WIDTH];
                for (int k = 0; k < wo; k++)
                    v[k] = (float)x[k];
                ap_onnx_softmax(v, wo);
                for (int k = 0; k < wo; k++)
                    y[k] = v[k];
            } else {
                for (int k = 0; k < wo; k++)
                    y[k] = act(s->sub, (float)x[k]);
            }
            break;
        case ST_CAST:
            /* to float rounds; to double, float values are already exact */
            for (int k = 0; k < wo; k++)
                y[k] = m->dbl[s->out] ? x[k] : ap_ir_round_f32(x[k]);
            break;
        case ST_CONCAT: {
            int p = 0;
            for (int i = 0; i < s->nins; i++) {
                int w = m->width[s->ins[i]];
                memcpy(y + p, sc + (size_t)m->off[s->ins[i]] * nb + r * (size_t)w,
                       (size_t)w * sizeof *y);
                p += w;
            }
            break;
        }
        case ST_BINC:
            for (int k = 0; k < wo; k++) {
                double cv = s->cd[s->nc == 1 ? 0 : k];
                double a = s->const_left ? cv : x[k], b = s->const_left ? x[k] : cv;
                y[k] = m->dbl[s->in] ? binop_d(s->sub, a, b)
                                     : binop(s->sub, (float)a, (float)b);
            }
            break;
        case ST_BIN2: {
            const double *x2 = sc + (size_t)m->off[s->in2] * nb + r * (size_t)wo;
            for (int k = 0; k < wo; k++)
                y[k] = m->dbl[s->in] ? binop_d(s->sub, x[k], x2[k])
                                     : binop(s->sub, (float)x[k], (float)x2[k]);
            break;
        }
        default:
            break;
        }
    }
}

int ap_onnx_predict(const ap_onnx *m, const double *X, size_t nrows, double *out, ap_error *err)
{
    if (m->ort)
        return ap_ort_run(m->ort, X, nrows, out, err);
    if (m->direct_trees) {
        ap_onnx_trees_run(m->st[0].trees, X, nrows, out);
        return AP_OK;
    }
    double sc[SCRATCH];
    float xf[MAX_WIDTH];
    size_t block = SCRATCH / (size_t)m->row_width;
    if (block > 256)
        block = 256;
    for (size_t r0 = 0; r0 < nrows; r0 += block) {
        size_t nb = nrows - r0 < block ? nrows - r0 : block;
        double *in = sc + (size_t)m->off[m->in_slot] * nb;
        const double *Xb = X + r0 * (size_t)m->nf;
        for (size_t i = 0; i < nb * (size_t)m->nf; i++)
            in[i] = m->f64 ? Xb[i] : ap_ir_round_f32(Xb[i]);
        for (int i = 0; i < m->nst; i++)
            run_stage(m, &m->st[i], sc, nb, xf);
        memcpy(out + r0 * (size_t)m->nout, sc + (size_t)m->off[m->out_slot] * nb,
               nb * (size_t)m->nout * sizeof *out);
    }
    return AP_OK;
}
