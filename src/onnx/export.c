/*
 * Export: a loaded XGBoost / LightGBM forest (its IR, forest/ir.h) as an
 * ONNX-ML graph that ONNX Runtime loads and predicts as the source library
 * does. Written with the protobuf-c code generated from onnx.proto.
 *
 * Graph: input `input` [N, F] -> ai.onnx.ml.TreeEnsembleRegressor (SUM,
 * n_targets = groups, post_transform NONE) -> the objective's transform as
 * standard operators (Sigmoid, Softmax, Exp, Softplus, Abs+Mul) -> `output`.
 * A regressor rather than a classifier because ORT's classifier post
 * transforms do not match the libraries' (ORT ignores LOGISTIC on one score,
 * XGBoost's softmax sums in double, ...); standard operators on the margins
 * are the transforms themselves.
 *
 * Precision, chosen so that ORT's arithmetic is the library's (ir.h):
 *  - XGBoost (AP_PREC_F32): float input, float thresholds, BRANCH_LT
 *    ((float)x < t goes left), float leaf weights. ORT sums trees in float,
 *    in order, starting from 0, and adds base_values last; XGBoost starts
 *    from base_score. So base_score is a first tree made of one leaf
 *    (0 + b = b exactly) and the sums are the same float operations. Dart
 *    weights are folded into the leaves as the float product XGBoost forms.
 *  - LightGBM (AP_PREC_F64): double input, double thresholds and weights
 *    (*_as_tensor), BRANCH_LEQ (x <= t goes left): ORT compares and sums in
 *    double, adds base_values, and rounds the margins to float (its output
 *    type), so outputs agree to float rounding. average_output (random
 *    forest) and the sigmoid scale are folded into the leaves in double.
 *
 * Missing values: ORT sends NaN to the true branch iff
 * nodes_missing_value_tracks_true, so
 *  - NaN (XGBoost default_left, LightGBM NaN type): tracks = default_left;
 *  - LightGBM None (NaN is 0.0): tracks = (0 <= threshold), NaN's fixed side;
 *  - LightGBM Zero (NaN and |x| <= z = (double)1e-35f take the default
 *    side): one node when [-z, z] already lies on the default side of the
 *    threshold (or the threshold is inside it: compare against the edge of
 *    the zero band instead); otherwise the number line reads L R L R or
 *    R L R L around t and the band, which three nodes with both subtrees
 *    written twice express exactly (a tree cannot share a subtree).
 * Refused, naming tree and node: categorical splits (ONNX's BRANCH_EQ tests
 * one value exactly, not LightGBM's (int)x set membership with its
 * negative/out-of-range rules), linear leaves, vector-leaf trees, XGBoost
 * multi:softmax (the output is a label, not a score).
 */
#include "onnx/onnx_internal.h"
#include "forest/forest_internal.h"
#include "common/error.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The importer's bounds (trees.c, ir.h), so every export reads back. */
#define MAX_NODES_TOTAL (1 << 26)
#define MAX_NODES_TREE AP_IR_MAX_NODES

enum { MODE_LEAF, MODE_LT, MODE_LEQ };
static const char *const mode_names[] = {"LEAF", "BRANCH_LT", "BRANCH_LEQ"};

/* LightGBM's kZeroThreshold (ir.h) */
#define ZERO_BAND ((double)1e-35f)

typedef struct pending {
    int32_t ir;       /* IR node to write */
    int64_t parent;   /* index of the ONNX node whose child it is (-1: root) */
    int side;         /* 1: the parent's true child, 0: false child */
} pending;

typedef struct exporter {
    const ap_forest_ir *ir;
    int f64;
    /* ONNX nodes, all trees, in order */
    int64_t *treeids, *nodeids, *featureids, *trueids, *falseids, *tracks;
    ProtobufCBinaryData *modes;
    double *values;
    size_t nn, cap;
    /* leaf weights */
    int64_t *w_tree, *w_node, *w_id;
    double *w_val;
    size_t nw, wcap;
    /* the tree being written */
    int64_t tree_id, next_id;
    pending *stack;
    size_t sp, stack_cap;
    double *leaf_mul;  /* per group: average_output and sigmoid scale folded in */
    ap_error *err;
} exporter;

static int oom(exporter *x) { return ap_error_set(x->err, AP_ENOMEM, "ONNX export: out of memory"); }

static int grow(void **p, size_t elem, size_t cap)
{
    void *q = realloc(*p, elem * cap);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

static int reserve_nodes(exporter *x)
{
    if (x->nn < x->cap)
        return AP_OK;
    size_t cap = x->cap ? 2 * x->cap : 1024;
    if (grow((void **)&x->treeids, sizeof *x->treeids, cap) ||
        grow((void **)&x->nodeids, sizeof *x->nodeids, cap) ||
        grow((void **)&x->featureids, sizeof *x->featureids, cap) ||
        grow((void **)&x->trueids, sizeof *x->trueids, cap) ||
        grow((void **)&x->falseids, sizeof *x->falseids, cap) ||
        grow((void **)&x->tracks, sizeof *x->tracks, cap) ||
        grow((void **)&x->modes, sizeof *x->modes, cap) ||
        grow((void **)&x->values, sizeof *x->values, cap))
        return oom(x);
    x->cap = cap;
    return AP_OK;
}

/* Append one node of the current tree as child `side` of `parent`; its
   index, or a negative status. */
static int64_t add_node(exporter *x, int mode, int32_t feature, double value, int tracks,
                        int64_t parent, int side)
{
    if (x->next_id >= MAX_NODES_TREE || x->nn >= MAX_NODES_TOTAL)
        return ap_error_set(x->err, AP_ERANGE,
                            "ONNX export: tree %lld needs more than %d nodes (the graph more "
                            "than %d), more than an ONNX importer accepts",
                            (long long)x->tree_id, MAX_NODES_TREE, MAX_NODES_TOTAL);
    int rc = reserve_nodes(x);
    if (rc != AP_OK)
        return rc;
    size_t i = x->nn++;
    x->treeids[i] = x->tree_id;
    x->nodeids[i] = x->next_id++;
    x->featureids[i] = feature;
    x->values[i] = value;
    x->tracks[i] = tracks;
    x->trueids[i] = 0;
    x->falseids[i] = 0;
    x->modes[i].data = (uint8_t *)mode_names[mode];
    x->modes[i].len = strlen(mode_names[mode]);
    if (parent >= 0) {
        if (side)
            x->trueids[parent] = x->nodeids[i];
        else
            x->falseids[parent] = x->nodeids[i];
    }
    return (int64_t)i;
}

static int add_weight(exporter *x, int64_t node, int32_t group, double v)
{
    if (x->nw == x->wcap) {
        size_t cap = x->wcap ? 2 * x->wcap : 1024;
        if (grow((void **)&x->w_tree, sizeof *x->w_tree, cap) ||
            grow((void **)&x->w_node, sizeof *x->w_node, cap) ||
            grow((void **)&x->w_id, sizeof *x->w_id, cap) ||
            grow((void **)&x->w_val, sizeof *x->w_val, cap))
            return oom(x);
        x->wcap = cap;
    }
    x->w_tree[x->nw] = x->tree_id;
    x->w_node[x->nw] = x->nodeids[node];
    x->w_id[x->nw] = group;
    x->w_val[x->nw] = v;
    x->nw++;
    return AP_OK;
}

static int push(exporter *x, int32_t ir_node, int64_t parent, int side)
{
    if (x->sp == x->stack_cap) {
        size_t cap = x->stack_cap ? 2 * x->stack_cap : 256;
        if (grow((void **)&x->stack, sizeof *x->stack, cap))
            return oom(x);
        x->stack_cap = cap;
    }
    x->stack[x->sp++] = (pending){ir_node, parent, side};
    return AP_OK;
}

/* The leaf as the ONNX weight: dart weight (and for LightGBM the folded
   averaging / sigmoid scale) applied as the library applies the weight. */
static double leaf_weight(const exporter *x, const ap_ir_tree *t, double leaf)
{
    double mul = x->leaf_mul[t->group];
    if (!x->f64) {
        /* XGBoost adds (float)weight * (float)leaf in float arithmetic */
        float v = (float)t->weight * (float)leaf;
        return mul == 1.0 ? (double)v : (double)(float)(v * mul);
    }
    return t->weight * leaf * mul;
}

/* One LightGBM split x <= t (NaN to the true side iff tracks), children
   pushed. t = +inf is LightGBM's "NaN against the rest" split; it is written
   with the finite threshold DBL_MAX (importers that compile thresholds,
   ours included, reject infinite ones): with NaN going left every row goes
   left, so the node vanishes; otherwise x <= DBL_MAX sends the finite rows
   left and a second node tells +inf (left) from NaN (right). */
static int emit_leq(exporter *x, int32_t f, double t, int tracks, const ap_ir_node *n,
                    const pending *it)
{
    int64_t a, b;
    int rc;
    if (t == INFINITY && tracks)
        return push(x, n->left, it->parent, it->side);
    if (t == INFINITY) {
        if ((a = add_node(x, MODE_LEQ, f, DBL_MAX, 0, it->parent, it->side)) < 0 ||
            (b = add_node(x, MODE_LEQ, f, DBL_MAX, 1, a, 0)) < 0)
            return (int)(a < 0 ? a : b);
        if ((rc = push(x, n->left, a, 1)) || (rc = push(x, n->right, b, 1)) ||
            (rc = push(x, n->left, b, 0)))
            return rc;
        return AP_OK;
    }
    if ((a = add_node(x, MODE_LEQ, f, t, tracks, it->parent, it->side)) < 0)
        return (int)a;
    if ((rc = push(x, n->right, a, 0)) || (rc = push(x, n->left, a, 1)))
        return rc;
    return AP_OK;
}

/* A LightGBM zero-as-missing split (see the header comment). */
static int zero_split(exporter *x, const ap_ir_node *n, const pending *it)
{
    double t = n->threshold, z = ZERO_BAND, below = nextafter(-z, -INFINITY);
    int32_t f = n->feature;
    int64_t a, b, c;
    int rc;
    if (n->default_left ? t >= z : t < -z)
        return emit_leq(x, f, t, n->default_left, n, it);
    if (t >= -z && t < z)  /* the band swallows the threshold: split at its edge */
        return emit_leq(x, f, n->default_left ? z : below, n->default_left, n, it);
    if (n->default_left) {
        /* t < -z: (-inf,t] L, (t,-z) R, [-z,z] L, (z,inf) R, NaN L */
        if ((a = add_node(x, MODE_LEQ, f, t, 1, it->parent, it->side)) < 0 ||
            (b = add_node(x, MODE_LEQ, f, below, 0, a, 0)) < 0 ||
            (c = add_node(x, MODE_LEQ, f, z, 0, b, 0)) < 0)
            return (int)(a < 0 ? a : b < 0 ? b : c);
        if ((rc = push(x, n->left, a, 1)) || (rc = push(x, n->right, b, 1)) ||
            (rc = push(x, n->left, c, 1)) || (rc = push(x, n->right, c, 0)))
            return rc;
        return AP_OK;
    }
    /* t >= z, default right: (-inf,-z) L, [-z,z] R, (z,t] L, (t,inf) R, NaN R */
    if ((a = add_node(x, MODE_LEQ, f, t, 0, it->parent, it->side)) < 0 ||
        (b = add_node(x, MODE_LEQ, f, below, 0, a, 1)) < 0 ||
        (c = add_node(x, MODE_LEQ, f, z, 0, b, 0)) < 0)
        return (int)(a < 0 ? a : b < 0 ? b : c);
    if ((rc = push(x, n->right, a, 0)) || (rc = push(x, n->left, b, 1)) ||
        (rc = push(x, n->right, c, 1)) || (rc = push(x, n->left, c, 0)))
        return rc;
    return AP_OK;
}

static int refuse(exporter *x, int k, int32_t i, const char *what)
{
    return ap_error_set(x->err, AP_EUNSUPPORTED, "ONNX export: tree %d node %d: %s", k, i, what);
}

/* One IR tree, depth first from its root (explicit stack: trees may be
   deep, and zero-as-missing splits write subtrees twice). */
static int emit_tree(exporter *x, int k)
{
    const ap_ir_tree *t = &x->ir->trees[k];
    x->next_id = 0;
    x->sp = 0;
    int rc = push(x, 0, -1, 0);
    while (rc == AP_OK && x->sp > 0) {
        pending it = x->stack[--x->sp];
        const ap_ir_node *n = &t->nodes[it.ir];
        int64_t i;
        switch (n->kind) {
        case AP_SPLIT_LEAF:
            if (n->lin_len > 0)
                return refuse(x, k, it.ir, "linear leaf (LightGBM linear_tree): ONNX tree "
                              "ensembles have constant leaves only");
            if ((i = add_node(x, MODE_LEAF, 0, 0.0, 0, it.parent, it.side)) < 0)
                return (int)i;
            rc = add_weight(x, i, t->group, leaf_weight(x, t, n->value));
            break;
        case AP_SPLIT_CAT:
            return refuse(x, k, it.ir, "categorical split: ONNX tree ensembles have no "
                          "category-set test that matches the library's rule");
        default:
            if (n->missing == AP_MISS_ZERO) {
                if (!x->f64)
                    return refuse(x, k, it.ir, "zero-as-missing split in a float32 model");
                rc = zero_split(x, n, &it);
                break;
            }
            int tracks = n->default_left;
            if (n->missing == AP_MISS_NONE)  /* NaN is 0.0: it goes where 0 goes */
                tracks = x->f64 ? 0.0 <= n->threshold : 0.0f < (float)n->threshold;
            if (x->f64) {
                rc = emit_leq(x, n->feature, n->threshold, tracks, n, &it);
                break;
            }
            if ((i = add_node(x, MODE_LT, n->feature, n->threshold, tracks, it.parent,
                              it.side)) < 0)
                return (int)i;
            if ((rc = push(x, n->right, i, 0)) == AP_OK)
                rc = push(x, n->left, i, 1);
            break;
        }
    }
    return rc;
}

/* A tree of one leaf adding v[g] to every group g (base score / no trees). */
static int emit_constant_tree(exporter *x, const double *v)
{
    x->next_id = 0;
    int64_t i = add_node(x, MODE_LEAF, 0, 0.0, 0, -1, 0);
    if (i < 0)
        return (int)i;
    for (int g = 0; g < x->ir->num_groups; g++) {
        int rc = add_weight(x, i, g, v[g]);
        if (rc != AP_OK)
            return rc;
    }
    x->tree_id++;
    return AP_OK;
}

static void exporter_free(exporter *x)
{
    free(x->treeids);
    free(x->nodeids);
    free(x->featureids);
    free(x->trueids);
    free(x->falseids);
    free(x->tracks);
    free(x->modes);
    free(x->values);
    free(x->w_tree);
    free(x->w_node);
    free(x->w_id);
    free(x->w_val);
    free(x->stack);
    free(x->leaf_mul);
}

/* Fill all nodes and weights from the IR. */
static int emit_forest(exporter *x)
{
    const ap_forest_ir *ir = x->ir;
    int G = ir->num_groups;
    int32_t *per_group = calloc((size_t)G, sizeof *per_group);
    double *base = calloc((size_t)G, sizeof *base);
    x->leaf_mul = malloc((size_t)G * sizeof *x->leaf_mul);
    if (!per_group || !base || !x->leaf_mul) {
        free(per_group);
        free(base);
        return oom(x);
    }
    int rc = AP_OK;
    for (int k = 0; k < ir->ntrees && rc == AP_OK; k++)
        if (ir->trees[k].group < 0)
            rc = ap_error_set(x->err, AP_EUNSUPPORTED, "ONNX export: tree %d is a vector-leaf "
                              "tree (one value per group), which the exporter does not write",
                              k);
        else
            per_group[ir->trees[k].group]++;
    double scale = ir->transform == AP_TF_SIGMOID ? ir->sigmoid_scale : 1.0;
    for (int g = 0; g < G; g++) {
        x->leaf_mul[g] = scale;
        if (ir->average_output && per_group[g] > 0)
            x->leaf_mul[g] = scale / per_group[g];
        base[g] = ir->base_score[g] * scale;
    }
    /* XGBoost: the base score starts the float sum (see the header). A model
       without trees gets one constant tree: ONNX tree ensembles need one. */
    if (rc == AP_OK && (!x->f64 || ir->ntrees == 0)) {
        if (x->f64)
            memset(base, 0, (size_t)G * sizeof *base);  /* LightGBM: in base_values */
        else
            for (int g = 0; g < G; g++)
                base[g] = (double)(float)base[g];
        rc = emit_constant_tree(x, base);
    }
    for (int k = 0; k < ir->ntrees && rc == AP_OK; k++) {
        rc = emit_tree(x, k);
        x->tree_id++;
    }
    free(per_group);
    free(base);
    return rc;
}

/* ---- protobuf assembly ---- */

#define MAX_ATTRS 16

typedef struct graph_parts {
    Onnx__AttributeProto attr[MAX_ATTRS], *attrp[MAX_ATTRS];
    size_t nattr;
    Onnx__TensorProto tens[3];
    int64_t tdims[3];
    size_t ntens;
    float *fvalues, *fweights;   /* float copies for AP_PREC_F32 */
    double *base;                /* LightGBM base values (scaled) */
} graph_parts;

static Onnx__AttributeProto *attr_new(graph_parts *p, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = &p->attr[p->nattr];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    p->attrp[p->nattr++] = a;
    return a;
}

static void attr_ints(graph_parts *p, const char *name, const int64_t *v, size_t n)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = n;
    a->ints = (int64_t *)v;
}

static void attr_int(graph_parts *p, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void attr_string(graph_parts *p, const char *name, const char *s)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)s;
    a->s.len = strlen(s);
}

static void attr_floats(graph_parts *p, const char *name, const float *v, size_t n)
{
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = n;
    a->floats = (float *)v;
}

/* a 1-D double tensor attribute (name ends in _as_tensor) */
static void attr_doubles(graph_parts *p, const char *name, const double *v, size_t n)
{
    Onnx__TensorProto *t = &p->tens[p->ntens];
    onnx__tensor_proto__init(t);
    p->tdims[p->ntens] = (int64_t)n;
    t->n_dims = 1;
    t->dims = &p->tdims[p->ntens];
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    t->n_double_data = n;
    t->double_data = (double *)v;
    p->ntens++;
    Onnx__AttributeProto *a = attr_new(p, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
}

static int tree_attrs(exporter *x, graph_parts *p)
{
    const ap_forest_ir *ir = x->ir;
    attr_int(p, "n_targets", ir->num_groups);
    attr_string(p, "aggregate_function", "SUM");
    attr_string(p, "post_transform", "NONE");
    attr_ints(p, "nodes_treeids", x->treeids, x->nn);
    attr_ints(p, "nodes_nodeids", x->nodeids, x->nn);
    attr_ints(p, "nodes_featureids", x->featureids, x->nn);
    Onnx__AttributeProto *m = attr_new(p, "nodes_modes",
                                       ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    m->n_strings = x->nn;
    m->strings = x->modes;
    attr_ints(p, "nodes_truenodeids", x->trueids, x->nn);
    attr_ints(p, "nodes_falsenodeids", x->falseids, x->nn);
    attr_ints(p, "nodes_missing_value_tracks_true", x->tracks, x->nn);
    attr_ints(p, "target_treeids", x->w_tree, x->nw);
    attr_ints(p, "target_nodeids", x->w_node, x->nw);
    attr_ints(p, "target_ids", x->w_id, x->nw);
    if (x->f64) {
        attr_doubles(p, "nodes_values_as_tensor", x->values, x->nn);
        attr_doubles(p, "target_weights_as_tensor", x->w_val, x->nw);
        int any = 0;
        p->base = malloc((size_t)ir->num_groups * sizeof *p->base);
        if (!p->base)
            return oom(x);
        double scale = ir->transform == AP_TF_SIGMOID ? ir->sigmoid_scale : 1.0;
        for (int g = 0; g < ir->num_groups; g++) {
            p->base[g] = ir->base_score[g] * scale;
            any |= p->base[g] != 0.0;
        }
        if (any)
            attr_doubles(p, "base_values_as_tensor", p->base, (size_t)ir->num_groups);
        return AP_OK;
    }
    p->fvalues = malloc((x->nn ? x->nn : 1) * sizeof *p->fvalues);
    p->fweights = malloc((x->nw ? x->nw : 1) * sizeof *p->fweights);
    if (!p->fvalues || !p->fweights)
        return oom(x);
    for (size_t i = 0; i < x->nn; i++)
        p->fvalues[i] = (float)x->values[i];  /* F32 IR thresholds are floats already */
    for (size_t i = 0; i < x->nw; i++)
        p->fweights[i] = (float)x->w_val[i];
    attr_floats(p, "nodes_values", p->fvalues, x->nn);
    attr_floats(p, "target_weights", p->fweights, x->nw);
    return AP_OK;
}

/* [N, width] tensor value info */
typedef struct vinfo {
    Onnx__ValueInfoProto v;
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor;
    Onnx__TensorShapeProto shape;
    Onnx__TensorShapeProto__Dimension dim[2], *dimp[2];
} vinfo;

static void vinfo_init(vinfo *vi, const char *name, int elem, int64_t width)
{
    onnx__value_info_proto__init(&vi->v);
    onnx__type_proto__init(&vi->type);
    onnx__type_proto__tensor__init(&vi->tensor);
    onnx__tensor_shape_proto__init(&vi->shape);
    for (int i = 0; i < 2; i++) {
        onnx__tensor_shape_proto__dimension__init(&vi->dim[i]);
        vi->dimp[i] = &vi->dim[i];
    }
    vi->dim[0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    vi->dim[0].dim_param = (char *)"N";
    vi->dim[1].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    vi->dim[1].dim_value = width;
    vi->shape.n_dim = 2;
    vi->shape.dim = vi->dimp;
    vi->tensor.has_elem_type = 1;
    vi->tensor.elem_type = elem;
    vi->tensor.shape = &vi->shape;
    vi->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    vi->type.tensor_type = &vi->tensor;
    vi->v.name = (char *)name;
    vi->v.type = &vi->type;
}

typedef struct onode {
    Onnx__NodeProto n;
    char *in[2], *out[1];
    Onnx__AttributeProto attr, *attrp;
} onode;

static Onnx__NodeProto *op_node(onode *o, const char *op, const char *domain, const char *name,
                                const char *in0, const char *in1, const char *out)
{
    onnx__node_proto__init(&o->n);
    o->in[0] = (char *)in0;
    o->in[1] = (char *)in1;
    o->out[0] = (char *)out;
    o->n.n_input = in1 ? 2 : 1;
    o->n.input = o->in;
    o->n.n_output = 1;
    o->n.output = o->out;
    o->n.op_type = (char *)op;
    o->n.domain = (char *)domain;
    o->n.name = (char *)name;
    return &o->n;
}

int ap_onnx_export_forest_mem(const struct ap_forest *f, unsigned char **buf, size_t *len,
                              ap_error *err)
{
    *buf = NULL;
    *len = 0;
    const ap_forest_ir *ir = &f->ir;
    if (ir->transform == AP_TF_ARGMAX)
        return ap_error_set(err, AP_EUNSUPPORTED,
                            "ONNX export: objective %s predicts a class label (argmax), not a "
                            "score; train with multi:softprob to export probabilities",
                            ir->objective);
    exporter x;
    memset(&x, 0, sizeof x);
    x.ir = ir;
    x.f64 = ir->precision == AP_PREC_F64;
    x.err = err;
    graph_parts p;
    memset(&p, 0, sizeof p);
    int rc = emit_forest(&x);
    if (rc == AP_OK)
        rc = tree_attrs(&x, &p);
    if (rc != AP_OK)
        goto out;

    int G = ir->num_groups;
    int in_elem = x.f64 ? ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
                        : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    int has_post = ir->transform != AP_TF_IDENTITY;
    onode nodes[3];
    Onnx__NodeProto *np[3];
    size_t nnodes = 0;
    np[nnodes] = op_node(&nodes[nnodes], "TreeEnsembleRegressor", "ai.onnx.ml", "trees", "input",
                         NULL, has_post ? "margin" : "output");
    nodes[nnodes].n.n_attribute = p.nattr;
    nodes[nnodes].n.attribute = p.attrp;
    nnodes++;
    switch (ir->transform) {
    case AP_TF_SIGMOID:  /* the scale is folded into the margins */
        np[nnodes] = op_node(&nodes[nnodes], "Sigmoid", "", "sigmoid", "margin", NULL, "output");
        nnodes++;
        break;
    case AP_TF_SOFTMAX:
        np[nnodes] = op_node(&nodes[nnodes], "Softmax", "", "softmax", "margin", NULL, "output");
        onnx__attribute_proto__init(&nodes[nnodes].attr);
        nodes[nnodes].attr.name = (char *)"axis";
        nodes[nnodes].attr.has_type = 1;
        nodes[nnodes].attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        nodes[nnodes].attr.has_i = 1;
        nodes[nnodes].attr.i = -1;
        nodes[nnodes].attrp = &nodes[nnodes].attr;
        nodes[nnodes].n.n_attribute = 1;
        nodes[nnodes].n.attribute = &nodes[nnodes].attrp;
        nnodes++;
        break;
    case AP_TF_EXP:
        np[nnodes] = op_node(&nodes[nnodes], "Exp", "", "exp", "margin", NULL, "output");
        nnodes++;
        break;
    case AP_TF_LOG1P_EXP:  /* log(1 + exp(x)) */
        np[nnodes] = op_node(&nodes[nnodes], "Softplus", "", "softplus", "margin", NULL,
                             "output");
        nnodes++;
        break;
    case AP_TF_SQUARE_SIGNED:  /* sign(x) * x * x = x * |x| */
        np[nnodes] = op_node(&nodes[nnodes], "Abs", "", "abs", "margin", NULL, "abs_margin");
        nnodes++;
        np[nnodes] = op_node(&nodes[nnodes], "Mul", "", "square_signed", "margin", "abs_margin",
                             "output");
        nnodes++;
        break;
    default:
        break;
    }

    vinfo vin, vout;
    vinfo_init(&vin, "input", in_elem, ir->num_features);
    vinfo_init(&vout, "output", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, G);
    Onnx__ValueInfoProto *vinp = &vin.v, *voutp = &vout.v;
    char doc[160];
    snprintf(doc, sizeof doc, "%s model, objective %s: %s", ir->source, ir->objective,
             has_post ? "transformed outputs" : "margins");
    Onnx__GraphProto graph;
    onnx__graph_proto__init(&graph);
    graph.name = (char *)"alphapulse_export";
    graph.doc_string = doc;
    graph.n_node = nnodes;
    graph.node = np;
    graph.n_input = 1;
    graph.input = &vinp;
    graph.n_output = 1;
    graph.output = &voutp;

    Onnx__OperatorSetIdProto ops[2], *opsp[2] = {&ops[0], &ops[1]};
    onnx__operator_set_id_proto__init(&ops[0]);
    onnx__operator_set_id_proto__init(&ops[1]);
    ops[0].domain = (char *)"";
    ops[0].has_version = 1;
    ops[0].version = 15;
    ops[1].domain = (char *)"ai.onnx.ml";
    ops[1].has_version = 1;
    ops[1].version = 3;  /* TreeEnsembleRegressor with *_as_tensor attributes */

    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.n_opset_import = 2;
    model.opset_import = opsp;
    model.producer_name = (char *)"alphapulse";
    model.producer_version = (char *)ap_version();
    model.graph = &graph;

    size_t size = onnx__model_proto__get_packed_size(&model);
    if (size > AP_ONNX_MAX_FILE) {
        rc = ap_error_set(err, AP_ERANGE, "ONNX export: the graph would take %zu bytes, more "
                          "than the %zu an ONNX model may have here", size,
                          (size_t)AP_ONNX_MAX_FILE);
        goto out;
    }
    *buf = malloc(size ? size : 1);
    if (!*buf) {
        rc = oom(&x);
        goto out;
    }
    *len = onnx__model_proto__pack(&model, *buf);
out:
    free(p.fvalues);
    free(p.fweights);
    free(p.base);
    exporter_free(&x);
    return rc;
}

int ap_onnx_export_forest(const struct ap_forest *f, const char *path, ap_error *err)
{
    unsigned char *buf;
    size_t len;
    int rc = ap_onnx_export_forest_mem(f, &buf, &len, err);
    if (rc != AP_OK)
        return rc;
    /* write beside the target and rename: a failed write never leaves a
       truncated model under the final name */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    if (!tmp) {
        free(buf);
        return ap_error_set(err, AP_ENOMEM, "ONNX export: out of memory");
    }
    snprintf(tmp, plen + 8, "%s.tmpXX", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = ap_error_set(err, AP_EIO, "%s: cannot open for writing: %s", tmp, strerror(errno));
    } else {
        int bad = fwrite(buf, 1, len, fp) != len;
        bad |= fclose(fp) != 0;
        if (bad)
            rc = ap_error_set(err, AP_EIO, "%s: write failed: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            rc = ap_error_set(err, AP_EIO, "%s: cannot rename to %s: %s", tmp, path,
                              strerror(errno));
        if (rc != AP_OK)
            remove(tmp);
    }
    free(tmp);
    free(buf);
    return rc;
}
