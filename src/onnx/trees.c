/*
 * trees.c: running TreeEnsembleClassifier / TreeEnsembleRegressor
 * (ai.onnx.ml 1 and 3), built by trees_import.c; and freeing them.
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
 * Rows go to the compiled forest (trees_forest.c, the fast path) for raw
 * sums, or to the generic evaluator below, a direct walk of the ONNX nodes
 * (EQ/NEQ, MIN/MAX, several weights for one output in one leaf); base
 * values, averaging and post transforms are applied here, in ORT's order.
 */
#include "onnx/trees.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>

void ap__onnx_trees_free(ap_onnx_trees *t)
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
    free(t);
}

int ap__onnx_trees_count(const ap_onnx_trees *t) { return t->ntrees; }
int ap__onnx_trees_native(const ap_onnx_trees *t) { return t->forest != NULL; }

int ap__onnx_trees_set_precision(ap_onnx_trees *t, ap_precision p, ap_error *err)
{
    if (t->forest)
        return ap_forest_set_precision(t->forest, p, err);
    if (p == AP_PRECISION_REDUCED)
        return ap__error_set(err, AP_EUNSUPPORTED,
                            "its trees run on the generic evaluator (EQ/NEQ branches, MIN/MAX "
                            "or several weights per output in a leaf): no quantized engine");
    return AP_OK;
}

size_t ap__onnx_trees_bytes(const ap_onnx_trees *t, ap_precision p)
{
    return t->forest ? ap_forest_model_bytes(t->forest, p) : 0;
}

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
                x = ap__ir_round_f32(x);
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
            v[i] = ap__onnx_logistic(v[i]);
        break;
    case AP_POST_SOFTMAX:
        ap__onnx_softmax(v, n);
        break;
    case AP_POST_SOFTMAX_ZERO:
        ap__onnx_softmax_zero(v, n);
        break;
    case AP_POST_PROBIT:
        for (int i = 0; i < n; i++)
            v[i] = ap__onnx_probit(v[i]);
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
            v[0] = ap__onnx_logistic(-sc);
            v[1] = ap__onnx_logistic(sc);
        } else {
            v[0] = -sc;
            v[1] = sc;
        }
    } else if (!t->classifier && G == 1) {
        if (t->post == AP_POST_PROBIT)
            v[0] = ap__onnx_probit(v[0]);
    } else {
        write_scores(t->post, v, G);
    }
    for (int g = 0; g < t->nout; g++)
        out[g] = v[g];
}

void ap__onnx_trees_run(const ap_onnx_trees *t, const double *X, size_t n, double *out)
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
