/*
 * trees_forest.c: the fast path of a tree ensemble (trees_import.c decides
 * when it applies): when every branch is LEQ/LT/GTE/GT and aggregation is
 * SUM or AVERAGE, each ONNX tree becomes one IR vector tree (its leaves
 * weigh several outputs, densely: one walk for all of them) or one IR tree
 * per output it adds to, with the comparison rewritten to the IR's exact
 * rule (ir.h) and the children swapped for GTE/GT:
 *   F32 (x < t left):   LEQ: x <= t  <=>  x < nextafterf(t, +inf)
 *                       GT: true when !(x < nextafterf(t, +inf))
 *   F64 (x <= t left):  LT:  x < t   <=>  x <= nextafter(t, -inf)
 *                       GTE: true when !(x <= nextafter(t, -inf))
 * and NaN sent to the side ORT sends it. The IR's base score is 0 and the
 * forest runs raw: base values, averaging and transforms are applied by
 * trees.c, in ORT's order.
 */
#include "onnx/trees.h"
#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int ap__onnx_trees_to_forest(ap_onnx_trees *t, const char *name, ap_error *err)
{
    ap_forest_ir ir;
    ap__forest_ir_init(&ir);
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
        rc = ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
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
            ap_ir_tree *tr = ap__forest_ir_add_tree(&ir, nn, err);
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
                        rc = ap__forest_ir_add_vec(&ir, vec, &d->vec_off, err);
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
                    rc = ap__error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: threshold %g has no finite "
                                      "equivalent for the engine",
                                      name, k, i, s->thr);
            }
        }
    }
    free(uses);
    free(vec);
    if (rc != AP_OK) {
        ap__forest_ir_free(&ir);
        return rc;
    }
    return ap__forest_from_ir(&ir, name, &t->forest, err);
}
