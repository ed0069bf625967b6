/*
 * export_walk.c: a forest's IR (forest/ir.h) walked into the node and weight
 * lists of one ONNX TreeEnsembleRegressor (export.h); export.c writes them.
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
#include "onnx/export.h"
#include "common/error.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The importer's bounds (trees.h, ir.h), so every export reads back. */
#define MAX_NODES_TOTAL (1 << 26)
#define MAX_NODES_TREE AP_IR_MAX_NODES

enum { MODE_LEAF, MODE_LT, MODE_LEQ };
static const char *const mode_names[] = {"LEAF", "BRANCH_LT", "BRANCH_LEQ"};

/* LightGBM's kZeroThreshold (ir.h) */
#define ZERO_BAND ((double)1e-35f)

static int oom(exporter *x) { return ap__error_set(x->err, AP_ENOMEM, "ONNX export: out of memory"); }

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
        return ap__error_set(x->err, AP_ERANGE,
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
    return ap__error_set(x->err, AP_EUNSUPPORTED, "ONNX export: tree %d node %d: %s", k, i, what);
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

void ap__onnx_exporter_free(exporter *x)
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
int ap__onnx_export_walk(exporter *x)
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
            rc = ap__error_set(x->err, AP_EUNSUPPORTED, "ONNX export: tree %d is a vector-leaf "
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
