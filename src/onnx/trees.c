/*
 * TreeEnsembleClassifier / TreeEnsembleRegressor (ai.onnx.ml 1 and 3).
 *
 * Semantics are ONNX Runtime's (tree_ensemble_common.h / _aggregator.h),
 * which every producer (skl2onnx, onnxmltools) targets:
 *  - float input: thresholds and leaf weights are floats, the row value is the
 *    float the input tensor holds, scores accumulate in float, tree by tree
 *    in the order the trees first appear, base_values added at the end.
 *    double input: the same in double (attributes *_as_tensor may carry
 *    double thresholds), the output rounded to float.
 *  - a branch goes to its true node when `x MODE threshold` holds, or when x
 *    is NaN and nodes_missing_value_tracks_true is 1 (NaN compares false, so
 *    it otherwise goes false; for NEQ, NaN != t holds: true).
 *  - aggregate SUM, AVERAGE (sum / number of trees, then + base), MIN, MAX
 *    (per target over the trees that reached a weight for it; none: 0).
 *  - post transforms: ORT applies none but PROBIT to a single-target
 *    regressor; the binary classifier with weights for one class only writes
 *    [1 - s, s] (all weights >= 0) or [logistic(-s), logistic(s)] / [-s, s].
 *
 * Fast path: when every branch is LEQ/LT/GTE/GT and aggregation is SUM or
 * AVERAGE, each ONNX tree becomes one IR vector tree (its leaves weigh
 * several outputs, densely: one walk for all of them) or one IR tree per
 * output it adds to, with
 * the comparison rewritten to the IR's exact rule (ir.h) and the children
 * swapped for GTE/GT:
 *   F32 (x < t left):   LEQ: x <= t  <=>  x < nextafterf(t, +inf)
 *                       GT: true when !(x < nextafterf(t, +inf))
 *   F64 (x <= t left):  LT:  x < t   <=>  x <= nextafter(t, -inf)
 *                       GTE: true when !(x <= nextafter(t, -inf))
 * and NaN sent to the side ORT sends it. The IR's base score is 0 and the
 * forest runs raw: base values, averaging and transforms are applied here,
 * in ORT's order. Anything else (EQ/NEQ, MIN/MAX, several weights for one
 * output in one leaf) runs on the generic evaluator below, a direct walk of
 * the ONNX nodes.
 */
#include "onnx/onnx_internal.h"
#include "forest/forest_internal.h"
#include "common/error.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_LEAF, M_LEQ, M_LT, M_GTE, M_GT, M_EQ, M_NEQ };
enum { AGG_SUM, AGG_AVERAGE, AGG_MIN, AGG_MAX };

#define MAX_TREE_NODES (1 << 26)   /* all trees together */
#define MAX_OUTPUTS 1024           /* classes or targets (the engine's bound) */

typedef struct tnode {
    int32_t feature;
    uint8_t mode, tracks_true;
    int32_t t, f;         /* true / false child, index within the tree */
    double thr;           /* rounded to float for float graphs */
    uint32_t w_off, w_len;
} tnode;

struct ap_onnx_trees {
    int classifier, f64, nf, G, nout;
    int binary_single;    /* 2 classes, weights for one class only */
    int single_class;     /* that class */
    int all_positive;     /* every class weight >= 0 */
    int post, agg;
    double *base;         /* nbase values */
    int nbase;
    int ntrees;
    ap_forest *forest;    /* fast path, or NULL: generic evaluator */
    tnode *nodes;         /* all trees' nodes; tree i at tree_off[i] */
    int32_t *tree_off, *tree_len;
    int32_t *w_target;
    double *w_value;
    /* import only: nodes sorted by (tree id, node id), and the node index of
       each listed position */
    struct entry *sorted;
    int32_t *pos_index;
};

typedef struct entry {
    int64_t tree, node;
    int32_t pos;
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->tree != y->tree)
        return x->tree < y->tree ? -1 : 1;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    return x->pos - y->pos;
}

/* index of (tree, node) among the sorted entries, or -1 */
static int32_t find(const entry *e, size_t n, int64_t tree, int64_t node)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e[mid].tree < tree || (e[mid].tree == tree && e[mid].node < node))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && e[lo].tree == tree && e[lo].node == node ? (int32_t)lo : -1;
}

static int parse_mode(const ProtobufCBinaryData *s)
{
    static const char *names[] = {"LEAF", "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE",
                                  "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"};
    for (int i = 0; i < 7; i++)
        if (s->len == strlen(names[i]) && !memcmp(s->data, names[i], s->len))
            return i;
    return -1;
}

void ap_onnx_trees_free(ap_onnx_trees *t)
{
    if (!t)
        return;
    ap_forest_free(t->forest);
    free(t->base);
    free(t->nodes);
    free(t->tree_off);
    free(t->tree_len);
    free(t->w_target);
    free(t->w_value);
    free(t->sorted);
    free(t->pos_index);
    free(t);
}

int ap_onnx_trees_count(const ap_onnx_trees *t) { return t->ntrees; }
int ap_onnx_trees_native(const ap_onnx_trees *t) { return t->forest != NULL; }

/* ---- generic evaluator ---- */

static int branch_true(const tnode *nd, double x)
{
    if (isnan(x))
        return nd->mode == M_NEQ || nd->tracks_true;
    switch (nd->mode) {
    case M_LEQ: return x <= nd->thr;
    case M_LT: return x < nd->thr;
    case M_GTE: return x >= nd->thr;
    case M_GT: return x > nd->thr;
    case M_EQ: return x == nd->thr;
    default: return x != nd->thr;
    }
}

/* scores (G) and has (G) of one row, in the input's precision */
static void generic_row(const ap_onnx_trees *t, const double *row, double *s, unsigned char *has)
{
    for (int g = 0; g < t->G; g++) {
        s[g] = 0;
        has[g] = 0;
    }
    for (int k = 0; k < t->ntrees; k++) {
        const tnode *nodes = t->nodes + t->tree_off[k];
        const tnode *nd = nodes;
        while (nd->mode != M_LEAF) {
            double x = row[nd->feature];
            if (!t->f64)
                x = ap_ir_round_f32(x);
            nd = nodes + (branch_true(nd, x) ? nd->t : nd->f);
        }
        for (uint32_t w = nd->w_off; w < nd->w_off + nd->w_len; w++) {
            int g = t->w_target[w];
            double v = t->w_value[w];
            switch (t->agg) {
            case AGG_MIN:
                s[g] = !has[g] || v < s[g] ? v : s[g];
                break;
            case AGG_MAX:
                s[g] = !has[g] || v > s[g] ? v : s[g];
                break;
            default:
                s[g] = t->f64 ? s[g] + v : (double)((float)s[g] + (float)v);
            }
            has[g] = 1;
        }
    }
}

/* ---- finalisation: base values, averaging, post transform (ORT's order) ---- */

static void write_scores(int post, float *v, int n)
{
    switch (post) {
    case AP_POST_LOGISTIC:
        for (int i = 0; i < n; i++)
            v[i] = ap_onnx_logistic(v[i]);
        break;
    case AP_POST_SOFTMAX:
        ap_onnx_softmax(v, n);
        break;
    case AP_POST_SOFTMAX_ZERO:
        ap_onnx_softmax_zero(v, n);
        break;
    case AP_POST_PROBIT:
        for (int i = 0; i < n; i++)
            v[i] = ap_onnx_probit(v[i]);
        break;
    default:
        break;
    }
}

static void finalize(const ap_onnx_trees *t, const double *s, double *out)
{
    float v[MAX_OUTPUTS];
    int G = t->G;
    for (int g = 0; g < G; g++) {
        double x = s[g];
        if (t->agg == AGG_AVERAGE)
            x = t->f64 ? x / t->ntrees : (double)((float)x / (float)t->ntrees);
        if (t->nbase == G)
            x = t->f64 ? x + t->base[g] : (double)((float)x + (float)t->base[g]);
        v[g] = (float)x;
    }
    if (t->binary_single) {
        /* one score for two classes (ORT's binary case): class 0's sum
           plus the first base value */
        double x = s[t->single_class];
        if (t->nbase >= 1) {
            double b = t->base[t->nbase == 2 ? t->single_class : 0];
            x = t->f64 ? x + b : (double)((float)x + (float)b);
        }
        float sc = (float)x;
        if (t->all_positive) {
            v[0] = 1.0f - sc;
            v[1] = sc;
        } else if (t->post == AP_POST_LOGISTIC) {
            v[0] = ap_onnx_logistic(-sc);
            v[1] = ap_onnx_logistic(sc);
        } else {
            v[0] = -sc;
            v[1] = sc;
        }
    } else if (!t->classifier && G == 1) {
        if (t->post == AP_POST_PROBIT)
            v[0] = ap_onnx_probit(v[0]);
    } else {
        write_scores(t->post, v, G);
    }
    for (int g = 0; g < t->nout; g++)
        out[g] = v[g];
}

void ap_onnx_trees_run(const ap_onnx_trees *t, const double *X, size_t n, double *out)
{
    enum { SCRATCH = 8192 };
    double s[SCRATCH];
    unsigned char has[MAX_OUTPUTS];
    /* the forest writes its G raw scores per row; finalise row by row */
    size_t block = t->forest ? SCRATCH / (size_t)t->G : 1;
    for (size_t r0 = 0; r0 < n; r0 += block) {
        size_t nb = n - r0 < block ? n - r0 : block;
        const double *Xb = X + r0 * (size_t)t->nf;
        if (t->forest)
            ap_forest_predict(t->forest, Xb, nb, s, AP_PREDICT_RAW);
        for (size_t r = 0; r < nb; r++) {
            const double *sr = s + r * (size_t)t->G;
            if (!t->forest) {
                generic_row(t, Xb + r * (size_t)t->nf, s, has);
                sr = s;
            }
            finalize(t, sr, out + (r0 + r) * (size_t)t->nout);
        }
    }
}

/* ---- import ---- */

typedef struct attrs {
    const int64_t *treeids, *nodeids, *featureids, *truenodeids, *falsenodeids, *tracks;
    size_t n, ntracks;
    const ProtobufCBinaryData *modes;
    size_t nmodes;
    double *values;
    size_t nvalues;
    const int64_t *w_tree, *w_node, *w_id;
    size_t nw;
    double *w_val;
    size_t nw_val;
} attrs;

static int fail(const Onnx__NodeProto *node, const char *name, ap_error *err, int code,
                const char *what)
{
    return ap_error_set(err, code, "%s: %s node '%s': %s", name, node->op_type,
                        node->name && node->name[0] ? node->name : "(unnamed)", what);
}

static int read_attrs(const Onnx__NodeProto *node, int classifier, attrs *a, const char *name,
                      ap_error *err)
{
    size_t n[6];
    const char *pre = classifier ? "class" : "target";
    char b1[32], b2[32], b3[32], b4[32];
    snprintf(b1, sizeof b1, "%s_treeids", pre);
    snprintf(b2, sizeof b2, "%s_nodeids", pre);
    snprintf(b3, sizeof b3, "%s_ids", pre);
    snprintf(b4, sizeof b4, "%s_weights", pre);
    size_t nw[3];
    int rc;
    if ((rc = ap_onnx_attr_ints(node, "nodes_treeids", &a->treeids, &n[0], name, err)) ||
        (rc = ap_onnx_attr_ints(node, "nodes_nodeids", &a->nodeids, &n[1], name, err)) ||
        (rc = ap_onnx_attr_ints(node, "nodes_featureids", &a->featureids, &n[2], name, err)) ||
        (rc = ap_onnx_attr_ints(node, "nodes_truenodeids", &a->truenodeids, &n[3], name, err)) ||
        (rc = ap_onnx_attr_ints(node, "nodes_falsenodeids", &a->falsenodeids, &n[4], name,
                                err)) ||
        (rc = ap_onnx_attr_ints(node, "nodes_missing_value_tracks_true", &a->tracks,
                                &a->ntracks, name, err)) ||
        (rc = ap_onnx_attr_strings(node, "nodes_modes", &a->modes, &a->nmodes, name, err)) ||
        (rc = ap_onnx_attr_reals(node, "nodes_values", &a->values, &a->nvalues, NULL, name,
                                 err)) ||
        (rc = ap_onnx_attr_ints(node, b1, &a->w_tree, &nw[0], name, err)) ||
        (rc = ap_onnx_attr_ints(node, b2, &a->w_node, &nw[1], name, err)) ||
        (rc = ap_onnx_attr_ints(node, b3, &a->w_id, &nw[2], name, err)) ||
        (rc = ap_onnx_attr_reals(node, b4, &a->w_val, &a->nw_val, NULL, name, err)))
        return rc;
    a->n = n[0];
    if (a->n == 0)
        return fail(node, name, err, AP_EFORMAT, "no nodes (nodes_treeids is empty)");
    if (a->n > MAX_TREE_NODES)
        return fail(node, name, err, AP_ERANGE, "too many nodes");
    for (int i = 1; i < 5; i++)
        if (n[i] != a->n)
            return fail(node, name, err, AP_EFORMAT,
                        "nodes_* attributes differ in length (treeids, nodeids, featureids, "
                        "truenodeids, falsenodeids)");
    if (a->nmodes != a->n || a->nvalues != a->n)
        return fail(node, name, err, AP_EFORMAT,
                    "nodes_modes / nodes_values length differs from nodes_treeids");
    if (a->ntracks != 0 && a->ntracks != a->n)
        return fail(node, name, err, AP_EFORMAT,
                    "nodes_missing_value_tracks_true length differs from nodes_treeids");
    a->nw = nw[0];
    if (nw[1] != a->nw || nw[2] != a->nw || a->nw_val != a->nw)
        return ap_error_set(err, AP_EFORMAT,
                            "%s: %s node: %s_treeids/_nodeids/_ids/_weights differ in length",
                            name, node->op_type, pre);
    return AP_OK;
}

static int float_threshold(double t, int mode, int f64, double *out)
{
    if (f64) {
        /* IR F64: x <= thr goes left */
        *out = (mode == M_LT || mode == M_GTE) ? nextafter(t, -INFINITY) : t;
    } else {
        /* IR F32: x < thr goes left; t is already a float */
        *out = (mode == M_LEQ || mode == M_GT) ? (double)nextafterf((float)t, INFINITY) : t;
    }
    return isfinite(*out) ? 0 : -1;
}

/* Fast path: one IR vector tree per ONNX tree whose leaves weigh several
   outputs (one walk gives all of them), else one IR tree per output it adds
   to. Vector leaves hold 0 for an output the leaf does not weigh, which adds
   exactly nothing (the sums start at +0 and +0 + -0 is +0), so both forms
   give the scalar trees' sums bit for bit. */
static int build_forest(ap_onnx_trees *t, const char *name, ap_error *err)
{
    ap_forest_ir ir;
    ap_forest_ir_init(&ir);
    ir.precision = t->f64 ? AP_PREC_F64 : AP_PREC_F32;
    ir.num_features = t->nf;
    ir.num_groups = t->binary_single ? 2 : t->G;
    ir.transform = AP_TF_IDENTITY;
    ir.sigmoid_scale = 1.0;
    snprintf(ir.source, sizeof ir.source, "onnx");
    snprintf(ir.objective, sizeof ir.objective, "%s",
             t->classifier ? "TreeEnsembleClassifier" : "TreeEnsembleRegressor");
    int rc = AP_OK;
    ir.base_score = calloc((size_t)ir.num_groups, sizeof *ir.base_score);
    unsigned char *uses = malloc((size_t)t->G);
    double *vec = malloc((size_t)t->G * sizeof *vec);
    if (!ir.base_score || !uses || !vec)
        rc = ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    for (int k = 0; rc == AP_OK && k < t->ntrees; k++) {
        const tnode *nodes = t->nodes + t->tree_off[k];
        int32_t nn = t->tree_len[k];
        memset(uses, 0, (size_t)t->G);
        uint64_t nleaves = 0, nweights = 0;
        int nused = 0;
        for (int32_t i = 0; i < nn; i++) {
            nleaves += nodes[i].mode == M_LEAF;
            nweights += nodes[i].w_len;
            for (uint32_t w = nodes[i].w_off; w < nodes[i].w_off + nodes[i].w_len; w++) {
                nused += !uses[t->w_target[w]];
                uses[t->w_target[w]] = 1;
            }
        }
        /* a vector tree when its leaves weigh several outputs, densely: its
           G values per leaf then cost at most twice the file's weights (a
           sparse tree, e.g. 2 of 1000 classes, stays scalar trees) */
        int vector = nused >= 2 && 2 * nweights >= nleaves * (uint64_t)t->G;
        for (int g = vector ? -1 : 0; rc == AP_OK && g < (vector ? 0 : t->G); g++) {
            if (g >= 0 && !uses[g])
                continue;
            ap_ir_tree *tr = ap_forest_ir_add_tree(&ir, nn, err);
            if (!tr) {
                rc = err->code;
                break;
            }
            tr->group = vector ? AP_GROUP_ALL : g;
            tr->weight = 1.0;
            for (int32_t i = 0; rc == AP_OK && i < nn; i++) {
                const tnode *s = &nodes[i];
                ap_ir_node *d = &tr->nodes[i];
                if (s->mode == M_LEAF) {
                    d->kind = AP_SPLIT_LEAF;
                    d->value = 0;
                    if (vector) {
                        memset(vec, 0, (size_t)t->G * sizeof *vec);
                        for (uint32_t w = s->w_off; w < s->w_off + s->w_len; w++)
                            vec[t->w_target[w]] = t->w_value[w];
                        rc = ap_forest_ir_add_vec(&ir, vec, &d->vec_off, err);
                        continue;
                    }
                    for (uint32_t w = s->w_off; w < s->w_off + s->w_len; w++)
                        if (t->w_target[w] == g)
                            d->value = t->w_value[w];
                    continue;
                }
                d->kind = AP_SPLIT_NUM;
                d->missing = AP_MISS_NAN;
                d->feature = s->feature;
                /* IR goes left when the comparison holds; GTE/GT are the
                   negation of LT/LEQ, so their true node goes right */
                int swap = s->mode == M_GTE || s->mode == M_GT;
                d->left = swap ? s->f : s->t;
                d->right = swap ? s->t : s->f;
                d->default_left = swap ? !s->tracks_true : s->tracks_true;
                if (float_threshold(s->thr, s->mode, t->f64, &d->threshold))
                    rc = ap_error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: threshold %g has no finite "
                                      "equivalent for the engine",
                                      name, k, i, s->thr);
            }
        }
    }
    free(uses);
    free(vec);
    if (rc != AP_OK) {
        ap_forest_ir_free(&ir);
        return rc;
    }
    return ap_forest_from_ir(&ir, name, &t->forest, err);
}

typedef struct group {
    int32_t minpos, start, len;
} group;

static int cmp_group(const void *a, const void *b)
{
    const group *x = a, *y = b;
    return x->minpos - y->minpos;
}

/* Trees in order of their first listed node; within a tree, nodes in listing
   order (so the first listed node, index 0, is the root, as ORT takes it). */
static int place_nodes(ap_onnx_trees *t, const Onnx__NodeProto *node, const attrs *a, int nf,
                       const char *name, ap_error *err)
{
    size_t n = a->n;
    int rc = AP_OK;
    entry *e = malloc(n * sizeof *e);
    int32_t *tree_of = malloc(n * sizeof *tree_of);
    int32_t *local = malloc(n * sizeof *local);
    group *g = malloc(n * sizeof *g);
    t->nodes = calloc(n, sizeof *t->nodes);
    if (!e || !tree_of || !local || !g || !t->nodes) {
        rc = ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        e[i] = (entry){a->treeids[i], a->nodeids[i], (int32_t)i};
    qsort(e, n, sizeof *e, cmp_entry);
    size_t ng = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int32_t minpos = e[i].pos;
        for (; j < n && e[j].tree == e[i].tree; j++) {
            if (j > i && e[j].node == e[j - 1].node) {
                rc = ap_error_set(err, AP_EFORMAT, "%s: %s: tree %lld node %lld is defined twice",
                                  name, node->op_type, (long long)e[j].tree,
                                  (long long)e[j].node);
                goto out;
            }
            if (e[j].pos < minpos)
                minpos = e[j].pos;
        }
        g[ng++] = (group){minpos, (int32_t)i, (int32_t)(j - i)};
        i = j;
    }
    if (ng > AP_IR_MAX_TREES) {
        rc = fail(node, name, err, AP_ERANGE, "too many trees");
        goto out;
    }
    qsort(g, ng, sizeof *g, cmp_group);
    t->ntrees = (int)ng;
    t->tree_off = malloc(ng * sizeof *t->tree_off);
    t->tree_len = malloc(ng * sizeof *t->tree_len);
    if (!t->tree_off || !t->tree_len) {
        rc = ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    int32_t off = 0;
    for (size_t k = 0; k < ng; k++) {
        t->tree_off[k] = off;
        t->tree_len[k] = g[k].len;
        off += g[k].len;
        for (int32_t m = g[k].start; m < g[k].start + g[k].len; m++)
            tree_of[e[m].pos] = (int32_t)k;
        g[k].len = 0;  /* reused as fill counter */
    }
    for (size_t p = 0; p < n; p++)
        local[p] = g[tree_of[p]].len++;
    for (size_t p = 0; p < n; p++) {
        int mode = parse_mode(&a->modes[p]);
        long long tid = (long long)a->treeids[p], nid = (long long)a->nodeids[p];
        if (mode < 0) {
            rc = ap_error_set(err, AP_EFORMAT, "%s: %s: tree %lld node %lld: unknown mode", name,
                              node->op_type, tid, nid);
            goto out;
        }
        tnode *nd = &t->nodes[t->tree_off[tree_of[p]] + local[p]];
        nd->mode = (uint8_t)mode;
        nd->tracks_true = a->ntracks ? a->tracks[p] != 0 : 0;
        if (mode == M_LEAF)
            continue;
        int32_t ti = find(e, n, a->treeids[p], a->truenodeids[p]);
        int32_t fi = find(e, n, a->treeids[p], a->falsenodeids[p]);
        if (ti < 0 || fi < 0) {
            rc = ap_error_set(err, AP_EFORMAT,
                              "%s: %s: tree %lld node %lld: child node %lld is not in the tree",
                              name, node->op_type, tid, nid,
                              (long long)(ti < 0 ? a->truenodeids[p] : a->falsenodeids[p]));
            goto out;
        }
        if (a->featureids[p] < 0 || a->featureids[p] >= nf) {
            rc = ap_error_set(err, AP_EFORMAT,
                              "%s: %s: tree %lld node %lld: feature %lld out of range (the "
                              "input has %d)",
                              name, node->op_type, tid, nid, (long long)a->featureids[p], nf);
            goto out;
        }
        double thr = t->f64 ? a->values[p] : ap_ir_round_f32(a->values[p]);
        if (isnan(thr)) {
            rc = ap_error_set(err, AP_EFORMAT, "%s: %s: tree %lld node %lld: NaN threshold",
                              name, node->op_type, tid, nid);
            goto out;
        }
        nd->feature = (int32_t)a->featureids[p];
        nd->thr = thr;
        nd->t = local[e[ti].pos];
        nd->f = local[e[fi].pos];
    }
    /* weights need the (tree, node) -> node index map: keep it in the attrs
       order, as a global index per listed position */
    for (size_t p = 0; p < n; p++)
        tree_of[p] = t->tree_off[tree_of[p]] + local[p];
    t->pos_index = tree_of;
    tree_of = NULL;
    t->sorted = e;
    e = NULL;
out:
    free(e);
    free(tree_of);
    free(local);
    free(g);
    return rc;
}

static int place_weights(ap_onnx_trees *t, const Onnx__NodeProto *node, const attrs *a,
                         const char *name, ap_error *err)
{
    size_t n = a->n, nw = a->nw;
    int32_t *at = malloc((nw ? nw : 1) * sizeof *at);
    t->w_target = malloc((nw ? nw : 1) * sizeof *t->w_target);
    t->w_value = malloc((nw ? nw : 1) * sizeof *t->w_value);
    if (!at || !t->w_target || !t->w_value) {
        free(at);
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    int used_class = -1, classes_used = 0;
    t->all_positive = 1;
    for (size_t i = 0; i < nw; i++) {
        int32_t s = find(t->sorted, n, a->w_tree[i], a->w_node[i]);
        long long tid = (long long)a->w_tree[i], nid = (long long)a->w_node[i];
        if (s < 0) {
            free(at);
            return ap_error_set(err, AP_EFORMAT, "%s: %s: weight %zu names tree %lld node %lld, "
                                "which does not exist", name, node->op_type, i, tid, nid);
        }
        at[i] = t->pos_index[t->sorted[s].pos];
        if (t->nodes[at[i]].mode != M_LEAF) {
            free(at);
            return ap_error_set(err, AP_EFORMAT, "%s: %s: weight %zu on tree %lld node %lld, "
                                "which is not a leaf", name, node->op_type, i, tid, nid);
        }
        if (a->w_id[i] < 0 || a->w_id[i] >= t->G) {
            free(at);
            return ap_error_set(err, AP_EFORMAT, "%s: %s: weight %zu: %s id %lld out of range "
                                "(%d outputs)", name, node->op_type, i,
                                t->classifier ? "class" : "target", (long long)a->w_id[i], t->G);
        }
        if (!isfinite(a->w_val[i])) {
            free(at);
            return ap_error_set(err, AP_EFORMAT, "%s: %s: weight %zu is not finite", name,
                                node->op_type, i);
        }
        if (a->w_val[i] < 0)
            t->all_positive = 0;
        if (used_class < 0) {
            used_class = (int)a->w_id[i];
            classes_used = 1;
        } else if (a->w_id[i] != used_class) {
            classes_used = 2;
        }
        t->nodes[at[i]].w_len++;
    }
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        t->nodes[i].w_off = off;
        off += t->nodes[i].w_len;
        t->nodes[i].w_len = 0;
    }
    for (size_t i = 0; i < nw; i++) {
        tnode *nd = &t->nodes[at[i]];
        uint32_t w = nd->w_off + nd->w_len++;
        t->w_target[w] = (int32_t)a->w_id[i];
        t->w_value[w] = t->f64 ? a->w_val[i] : ap_ir_round_f32(a->w_val[i]);
    }
    free(at);
    t->nout = t->G;
    /* ORT's binary case needs the weights on class 0 (checked against ORT:
       with class 1 only, class 0 simply scores 0 and the post transform
       runs on both) */
    if (t->classifier && t->G == 2 && classes_used == 1 && used_class == 0) {
        t->binary_single = 1;
        t->single_class = used_class;
        if (t->post == AP_POST_PROBIT)
            return fail(node, name, err, AP_EFORMAT,
                        "PROBIT on a binary classifier with weights for one class is not "
                        "supported natively");
    }
    return AP_OK;
}

/* Every tree: each node reached exactly once from its root. */
static int check_trees(ap_onnx_trees *t, const Onnx__NodeProto *node, const char *name,
                       ap_error *err)
{
    int32_t maxlen = 0;
    for (int k = 0; k < t->ntrees; k++)
        if (t->tree_len[k] > maxlen)
            maxlen = t->tree_len[k];
    int32_t *stack = malloc((size_t)maxlen * sizeof *stack);
    unsigned char *seen = malloc((size_t)maxlen);
    if (!stack || !seen) {
        free(stack);
        free(seen);
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    }
    int rc = AP_OK;
    for (int k = 0; k < t->ntrees && rc == AP_OK; k++) {
        const tnode *nodes = t->nodes + t->tree_off[k];
        int32_t nn = t->tree_len[k], sp = 0, visited = 0;
        memset(seen, 0, (size_t)nn);
        stack[sp++] = 0;
        seen[0] = 1;
        while (sp > 0 && rc == AP_OK) {
            const tnode *nd = &nodes[stack[--sp]];
            visited++;
            if (nd->mode == M_LEAF)
                continue;
            int32_t ch[2] = {nd->t, nd->f};
            for (int c = 0; c < 2; c++) {
                if (seen[ch[c]]) {
                    rc = ap_error_set(err, AP_EFORMAT, "%s: %s: tree %d: node %d is reached "
                                      "twice (a cycle or a shared subtree)",
                                      name, node->op_type, k, ch[c]);
                    break;
                }
                seen[ch[c]] = 1;
                stack[sp++] = ch[c];
            }
        }
        if (rc == AP_OK && visited != nn)
            rc = ap_error_set(err, AP_EFORMAT,
                              "%s: %s: tree %d: %d of its %d nodes are not reachable from its "
                              "first node", name, node->op_type, k, nn - visited, nn);
    }
    free(stack);
    free(seen);
    return rc;
}

int ap_onnx_trees_build(const Onnx__NodeProto *node, int nf, int input_double, const char *name,
                        ap_onnx_trees **out, int *nout, ap_error *err)
{
    *out = NULL;
    int classifier = !strcmp(node->op_type, "TreeEnsembleClassifier");
    ap_onnx_trees *t = calloc(1, sizeof *t);
    if (!t)
        return ap_error_set(err, AP_ENOMEM, "%s: out of memory", name);
    t->classifier = classifier;
    t->f64 = input_double;
    t->nf = nf;
    attrs a;
    memset(&a, 0, sizeof a);
    int rc = read_attrs(node, classifier, &a, name, err);
    if (rc != AP_OK)
        goto done;

    /* outputs, post transform, aggregation, base values */
    char post[32] = "NONE", agg[32] = "SUM";
    int64_t n_targets = 1;
    size_t nlab_i = 0, nlab_s = 0;
    const int64_t *lab_i;
    const ProtobufCBinaryData *lab_s;
    /* each operator's own attributes only (graph.c's check_attrs has refused
       any other): the classifier has no aggregate_function (ORT sums) */
    if ((rc = ap_onnx_attr_string(node, "post_transform", post, sizeof post, name, err)))
        goto done;
    if (!classifier &&
        ((rc = ap_onnx_attr_string(node, "aggregate_function", agg, sizeof agg, name, err)) ||
         (rc = ap_onnx_attr_int(node, "n_targets", &n_targets, name, err))))
        goto done;
    if (classifier &&
        ((rc = ap_onnx_attr_ints(node, "classlabels_int64s", &lab_i, &nlab_i, name, err)) ||
         (rc = ap_onnx_attr_strings(node, "classlabels_strings", &lab_s, &nlab_s, name, err))))
        goto done;
    if (ap_onnx_post_parse(post, &t->post)) {
        rc = fail(node, name, err, AP_EFORMAT, "unknown post_transform");
        goto done;
    }
    if (!strcmp(agg, "SUM"))
        t->agg = AGG_SUM;
    else if (!strcmp(agg, "AVERAGE"))
        t->agg = AGG_AVERAGE;
    else if (!strcmp(agg, "MIN"))
        t->agg = AGG_MIN;
    else if (!strcmp(agg, "MAX"))
        t->agg = AGG_MAX;
    else {
        rc = fail(node, name, err, AP_EFORMAT, "unknown aggregate_function");
        goto done;
    }
    int64_t G = classifier ? (int64_t)(nlab_i + nlab_s) : n_targets;
    if (G < 1 || G > MAX_OUTPUTS) {
        rc = fail(node, name, err, AP_EFORMAT,
                  classifier ? "needs 1..1024 class labels (classlabels_int64s or _strings)"
                             : "n_targets must be 1..1024");
        goto done;
    }
    if (classifier && G == 1) {
        rc = fail(node, name, err, AP_EFORMAT, "a classifier needs at least 2 class labels");
        goto done;
    }
    t->G = (int)G;
    size_t nbase;
    if ((rc = ap_onnx_attr_reals(node, "base_values", &t->base, &nbase, NULL, name, err)))
        goto done;
    t->nbase = (int)nbase;
    if (nbase != 0 && nbase != (size_t)G && !(classifier && G == 2 && nbase == 1)) {
        rc = fail(node, name, err, AP_EFORMAT,
                  "base_values must have one value per class/target");
        goto done;
    }
    for (size_t i = 0; i < nbase; i++)
        if (!isfinite(t->base[i])) {
            rc = fail(node, name, err, AP_EFORMAT, "base_values must be finite");
            goto done;
        }

    rc = place_nodes(t, node, &a, nf, name, err);
    if (rc == AP_OK)
        rc = place_weights(t, node, &a, name, err);
    if (rc == AP_OK)
        rc = check_trees(t, node, name, err);
    if (rc != AP_OK)
        goto done;
    int generic = t->agg == AGG_MIN || t->agg == AGG_MAX;
    for (size_t i = 0; i < a.n; i++)
        if (t->nodes[i].mode == M_EQ || t->nodes[i].mode == M_NEQ)
            generic = 1;
    for (size_t i = 0; i < a.n && !generic; i++)
        for (uint32_t w = t->nodes[i].w_off + 1; w < t->nodes[i].w_off + t->nodes[i].w_len; w++)
            for (uint32_t v = t->nodes[i].w_off; v < w; v++)
                if (t->w_target[v] == t->w_target[w])
                    generic = 1;  /* ORT adds them one by one: not one leaf value */
    free(t->sorted);
    free(t->pos_index);
    t->sorted = NULL;
    t->pos_index = NULL;
    if (!generic)
        rc = build_forest(t, name, err);
done:
    free(a.values);
    free(a.w_val);
    if (rc != AP_OK) {
        ap_onnx_trees_free(t);
        return rc;
    }
    *out = t;
    *nout = t->nout;
    return AP_OK;
}
