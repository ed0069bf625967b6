/*
 * Forest IR (ir.h): building it (trees, bitsets, linear terms, vector
 * leaves), validating it, the split rule and the reference predictor.
 */
#include "forest/ir.h"
#include "forest/transform.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ap__forest_ir_init(ap_forest_ir *ir)
{
    memset(ir, 0, sizeof *ir);
    ir->num_groups = 1;
    ir->sigmoid_scale = 1.0;
}

void ap__forest_ir_free(ap_forest_ir *ir)
{
    if (!ir)
        return;
    for (int32_t i = 0; i < ir->ntrees; i++)
        free(ir->trees[i].nodes);
    free(ir->trees);
    free(ir->base_score);
    free(ir->cat_words);
    free(ir->lin_feat);
    free(ir->lin_coeff);
    free(ir->leaf_vec);
    if (ir->feature_names) {
        for (int32_t i = 0; i < ir->num_features; i++)
            free(ir->feature_names[i]);
        free(ir->feature_names);
    }
    memset(ir, 0, sizeof *ir);
}

ap_ir_tree *ap__forest_ir_add_tree(ap_forest_ir *ir, int32_t nnodes, ap_error *err)
{
    if (nnodes <= 0 || nnodes > AP_IR_MAX_NODES) {
        ap__error_set(err, AP_ERANGE, "tree %d: node count %d out of range [1, %d]", ir->ntrees,
                     nnodes, AP_IR_MAX_NODES);
        return NULL;
    }
    if (ir->ntrees >= AP_IR_MAX_TREES) {
        ap__error_set(err, AP_ERANGE, "more than %d trees", AP_IR_MAX_TREES);
        return NULL;
    }
    if (ir->ntrees == ir->trees_cap) {
        int32_t ncap = ir->trees_cap ? ir->trees_cap * 2 : 16;
        ap_ir_tree *nt = realloc(ir->trees, (size_t)ncap * sizeof *nt);
        if (!nt) {
            ap__error_set(err, AP_ENOMEM, "out of memory adding tree %d", ir->ntrees);
            return NULL;
        }
        ir->trees = nt;
        ir->trees_cap = ncap;
    }
    ap_ir_node *nodes = calloc((size_t)nnodes, sizeof *nodes);
    if (!nodes) {
        ap__error_set(err, AP_ENOMEM, "out of memory for tree %d (%d nodes)", ir->ntrees, nnodes);
        return NULL;
    }
    ap_ir_tree *t = &ir->trees[ir->ntrees++];
    t->nodes = nodes;
    t->nnodes = nnodes;
    t->group = 0;
    t->weight = 1.0;
    return t;
}

int ap__forest_ir_add_cat(ap_forest_ir *ir, const uint32_t *words, uint32_t n, uint32_t *off,
                         ap_error *err)
{
    if (n > AP_IR_MAX_CAT_WORDS || ir->ncat_words > UINT32_MAX - n)
        return ap__error_set(err, AP_ERANGE, "categorical bitset of %u words too large", n);
    uint32_t *nw = realloc(ir->cat_words, ((size_t)ir->ncat_words + n + 1) * sizeof *nw);
    if (!nw)
        return ap__error_set(err, AP_ENOMEM, "out of memory for categorical bitsets");
    ir->cat_words = nw;
    if (n)
        memcpy(nw + ir->ncat_words, words, n * sizeof *nw);
    *off = ir->ncat_words;
    ir->ncat_words += n;
    return AP_OK;
}

int ap__forest_ir_add_lin(ap_forest_ir *ir, const int32_t *feat, const double *coeff, uint32_t n,
                         uint32_t *off, ap_error *err)
{
    if (n > (uint32_t)AP_IR_MAX_FEATURES || ir->nlin > UINT32_MAX - n)
        return ap__error_set(err, AP_ERANGE, "linear leaf with %u terms too large", n);
    size_t cnt = (size_t)ir->nlin + n + 1;
    int32_t *nf = realloc(ir->lin_feat, cnt * sizeof *nf);
    if (!nf)
        return ap__error_set(err, AP_ENOMEM, "out of memory for linear leaves");
    ir->lin_feat = nf;
    double *nc = realloc(ir->lin_coeff, cnt * sizeof *nc);
    if (!nc)
        return ap__error_set(err, AP_ENOMEM, "out of memory for linear leaves");
    ir->lin_coeff = nc;
    if (n) {
        memcpy(nf + ir->nlin, feat, n * sizeof *nf);
        memcpy(nc + ir->nlin, coeff, n * sizeof *nc);
    }
    *off = ir->nlin;
    ir->nlin += n;
    return AP_OK;
}

int ap__forest_ir_add_vec(ap_forest_ir *ir, const double *v, uint32_t *off, ap_error *err)
{
    uint32_t n = (uint32_t)ir->num_groups;
    if (ir->num_groups <= 0 || ir->num_groups > AP_IR_MAX_GROUPS || ir->nleaf_vec > UINT32_MAX - n)
        return ap__error_set(err, AP_ERANGE, "too many vector leaf values");
    if (ir->nleaf_vec + n > ir->leaf_vec_cap) {
        /* doubling: importers add one leaf at a time */
        uint64_t ncap = (uint64_t)ir->leaf_vec_cap * 2;
        if (ncap < (uint64_t)ir->nleaf_vec + n)
            ncap = (uint64_t)ir->nleaf_vec + n + 64;
        if (ncap > UINT32_MAX)
            ncap = UINT32_MAX;
        double *nv = realloc(ir->leaf_vec, (size_t)ncap * sizeof *nv);
        if (!nv)
            return ap__error_set(err, AP_ENOMEM, "out of memory for vector leaves");
        ir->leaf_vec = nv;
        ir->leaf_vec_cap = (uint32_t)ncap;
    }
    memcpy(ir->leaf_vec + ir->nleaf_vec, v, n * sizeof *v);
    *off = ir->nleaf_vec;
    ir->nleaf_vec += n;
    return AP_OK;
}

int ap__forest_ir_validate(const ap_forest_ir *ir, const char *what, ap_error *err)
{
    if (!what)
        what = "model";
    if (ir->num_features <= 0 || ir->num_features > AP_IR_MAX_FEATURES)
        return ap__error_set(err, AP_EFORMAT, "%s: number of features %d out of range [1, %d]",
                            what, ir->num_features, AP_IR_MAX_FEATURES);
    if (ir->num_groups <= 0 || ir->num_groups > AP_IR_MAX_GROUPS)
        return ap__error_set(err, AP_EFORMAT, "%s: number of output groups %d out of range", what,
                            ir->num_groups);
    if (!ir->base_score)
        return ap__error_set(err, AP_EFORMAT, "%s: no base score", what);
    for (int32_t g = 0; g < ir->num_groups; g++)
        if (!isfinite(ir->base_score[g]))
            return ap__error_set(err, AP_EFORMAT, "%s: base score of group %d is not finite", what,
                                g);
    if (ir->ntrees == 0)
        return ap__error_set(err, AP_EFORMAT, "%s: model has no trees", what);
    if (ir->transform == AP_TF_SIGMOID && !isfinite(ir->sigmoid_scale))
        return ap__error_set(err, AP_EFORMAT, "%s: sigmoid scale is not finite", what);

    /* one scratch buffer for reachability marks, sized to the largest tree */
    int32_t maxn = 0;
    for (int32_t t = 0; t < ir->ntrees; t++)
        if (ir->trees[t].nnodes > maxn)
            maxn = ir->trees[t].nnodes;
    uint8_t *seen = malloc((size_t)maxn);
    int32_t *stack = malloc((size_t)maxn * sizeof *stack);
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory validating", what);
    }
    int rc = AP_OK;
    for (int32_t t = 0; t < ir->ntrees && rc == AP_OK; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        const int vec = tr->group == AP_GROUP_ALL;
        if (!vec && (tr->group < 0 || tr->group >= ir->num_groups)) {
            rc = ap__error_set(err, AP_EFORMAT, "%s: tree %d: output group %d out of range [0, %d)",
                              what, t, tr->group, ir->num_groups);
            break;
        }
        if (!isfinite(tr->weight)) {
            rc = ap__error_set(err, AP_EFORMAT, "%s: tree %d: weight is not finite", what, t);
            break;
        }
        memset(seen, 0, (size_t)tr->nnodes);
        int32_t sp = 0;
        stack[sp++] = 0;
        seen[0] = 1;
        int32_t visited = 0;
        while (sp > 0 && rc == AP_OK) {
            int32_t i = stack[--sp];
            const ap_ir_node *n = &tr->nodes[i];
            visited++;
            if (n->kind == AP_SPLIT_LEAF && vec) {
                if (n->lin_len)
                    rc = ap__error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: linear leaf in a vector tree", what, t,
                                      i);
                else if ((uint64_t)n->vec_off + (uint64_t)ir->num_groups > ir->nleaf_vec)
                    rc = ap__error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: leaf vector out of range", what, t, i);
                for (int32_t g = 0; rc == AP_OK && g < ir->num_groups; g++)
                    if (!isfinite(ir->leaf_vec[n->vec_off + (uint32_t)g]))
                        rc = ap__error_set(err, AP_EFORMAT,
                                          "%s: tree %d node %d: leaf value of group %d not finite",
                                          what, t, i, g);
                continue;
            }
            if (n->kind == AP_SPLIT_LEAF) {
                if (!isfinite(n->value))
                    rc = ap__error_set(err, AP_EFORMAT, "%s: tree %d node %d: leaf value not finite",
                                      what, t, i);
                else if (n->lin_len && ((uint64_t)n->lin_off + n->lin_len > ir->nlin))
                    rc = ap__error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: linear terms out of range", what, t, i);
                for (uint32_t k = 0; rc == AP_OK && k < n->lin_len; k++) {
                    int32_t f = ir->lin_feat[n->lin_off + k];
                    if (f < 0 || f >= ir->num_features)
                        rc = ap__error_set(err, AP_EFORMAT,
                                          "%s: tree %d node %d: linear feature %d out of range "
                                          "[0, %d)",
                                          what, t, i, f, ir->num_features);
                    else if (!isfinite(ir->lin_coeff[n->lin_off + k]))
                        rc = ap__error_set(err, AP_EFORMAT,
                                          "%s: tree %d node %d: linear coefficient not finite",
                                          what, t, i);
                }
                if (rc == AP_OK && n->lin_len && !isfinite(n->lin_const))
                    rc = ap__error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: linear constant not finite", what, t, i);
                continue;
            }
            if (n->kind != AP_SPLIT_NUM && n->kind != AP_SPLIT_CAT) {
                rc = ap__error_set(err, AP_EFORMAT, "%s: tree %d node %d: bad node kind %d", what, t,
                                  i, n->kind);
                break;
            }
            if (n->feature < 0 || n->feature >= ir->num_features) {
                rc = ap__error_set(err, AP_EFORMAT,
                                  "%s: tree %d node %d: split feature %d out of range [0, %d)",
                                  what, t, i, n->feature, ir->num_features);
                break;
            }
            if (n->kind == AP_SPLIT_NUM) {
                if (isnan(n->threshold)) {
                    rc = ap__error_set(err, AP_EFORMAT, "%s: tree %d node %d: threshold is NaN",
                                      what, t, i);
                    break;
                }
                if (n->missing > AP_MISS_ZERO) {
                    rc = ap__error_set(err, AP_EFORMAT, "%s: tree %d node %d: bad missing type %d",
                                      what, t, i, n->missing);
                    break;
                }
            } else if (n->cat_nwords == 0 || n->cat_nwords > AP_IR_MAX_CAT_WORDS ||
                       (uint64_t)n->cat_off + n->cat_nwords > ir->ncat_words) {
                rc = ap__error_set(err, AP_EFORMAT,
                                  "%s: tree %d node %d: categorical bitset out of range", what, t,
                                  i);
                break;
            }
            int32_t kids[2] = {n->left, n->right};
            for (int k = 0; k < 2; k++) {
                int32_t c = kids[k];
                if (c <= 0 || c >= tr->nnodes) {
                    rc = ap__error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: %s child %d out of range (1..%d)", what,
                                      t, i, k ? "right" : "left", c, tr->nnodes - 1);
                    break;
                }
                if (seen[c]) {
                    rc = ap__error_set(err, AP_EFORMAT,
                                      "%s: tree %d node %d: node %d is reached twice (cycle or "
                                      "shared child)",
                                      what, t, i, c);
                    break;
                }
                seen[c] = 1;
                stack[sp++] = c;
            }
        }
        if (rc == AP_OK && visited != tr->nnodes)
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s: tree %d: %d of its %d nodes are unreachable from the root", what,
                              t, tr->nnodes - visited, tr->nnodes);
    }
    free(seen);
    free(stack);
    return rc;
}

int ap__forest_ir_num_outputs(const ap_forest_ir *ir)
{
    return ir->transform == AP_TF_ARGMAX ? 1 : ir->num_groups;
}

int ap__ir_go_left(const ap_forest_ir *ir, const ap_ir_node *n, double x)
{
    if (ir->precision == AP_PREC_F32)
        x = ap__ir_round_f32(x);
    if (n->kind == AP_SPLIT_CAT) {
        if (isnan(x))
            return n->default_left;
        if (ir->precision == AP_PREC_F32 ? x < 0 : x <= -1.0)
            return n->cat_oor_left;
        double c = trunc(x);
        if (c >= 32.0 * n->cat_nwords)
            return n->cat_oor_left;
        uint32_t ci = (uint32_t)c;
        return (ir->cat_words[n->cat_off + ci / 32] >> (ci % 32)) & 1u;
    }
    if (isnan(x)) {
        if (n->missing == AP_MISS_NONE)
            x = 0.0;
        else
            return n->default_left;
    }
    /* AP_MISS_ZERO is LightGBM's: its kZeroThreshold is the float 1e-35f */
    if (n->missing == AP_MISS_ZERO && fabs(x) <= (double)1e-35f)
        return n->default_left;
    if (ir->precision == AP_PREC_F32)
        return (float)x < (float)n->threshold;
    return x <= n->threshold;
}

void ap__forest_ir_predict_ref(const ap_forest_ir *ir, const double *row, int raw, double *out)
{
    int G = ir->num_groups;
    double *m = malloc((size_t)G * sizeof *m);
    float *mf = malloc((size_t)G * sizeof *mf);
    int32_t *per = calloc((size_t)G, sizeof *per);
    if (!m || !mf || !per) {
        free(m);
        free(mf);
        free(per);
        for (int g = 0; g < ap__forest_ir_num_outputs(ir); g++)
            out[g] = NAN;
        return;
    }
    for (int g = 0; g < G; g++) {
        m[g] = 0.0;
        mf[g] = (float)ir->base_score[g];
    }
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        int32_t i = 0;
        while (tr->nodes[i].kind != AP_SPLIT_LEAF)
            i = ap__ir_go_left(ir, &tr->nodes[i], row[tr->nodes[i].feature]) ? tr->nodes[i].left
                                                                      : tr->nodes[i].right;
        if (tr->group == AP_GROUP_ALL) {
            /* as num_groups scalar trees, one per group, at this place */
            const double *v = ir->leaf_vec + tr->nodes[i].vec_off;
            for (int g = 0; g < G; g++) {
                if (ir->precision == AP_PREC_F32)
                    mf[g] += (float)tr->weight * (float)v[g];
                else
                    m[g] += tr->weight * v[g];
                per[g]++;
            }
            continue;
        }
        double v = ap__ir_leaf_value(ir, &tr->nodes[i], row);
        if (ir->precision == AP_PREC_F32)
            mf[tr->group] += (float)tr->weight * (float)v;
        else
            m[tr->group] += tr->weight * v;
        per[tr->group]++;
    }
    for (int g = 0; g < G; g++) {
        if (ir->precision == AP_PREC_F32) {
            m[g] = (double)mf[g];
        } else {
            double s = m[g];
            /* LightGBM averages in Predict only: its raw score is the plain sum */
            if (ir->average_output && !raw && per[g] > 0)
                s /= per[g];
            m[g] = s + ir->base_score[g];
        }
    }
    if (raw) {
        for (int g = 0; g < G; g++)
            out[g] = m[g];
    } else if (ir->precision == AP_PREC_F32) {
        ap__transform_xgboost(ir, m, out);
    } else {
        ap__transform_lightgbm(ir, m, out);
    }
    free(m);
    free(mf);
    free(per);
}
