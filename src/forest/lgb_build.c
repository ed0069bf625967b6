/*
 * One LightGBM tree into the IR: the split rules of LightGBM 4.x
 * (Tree::NumericalDecision / CategoricalDecision) mapped onto the IR's,
 * categorical bitsets, linear leaves, and thresholds moved for LightGBM's
 * zero handling.
 *
 * LightGBM's node numbering: internal nodes 0..L-2 (root 0), leaves 0..L-1;
 * a child c >= 0 is internal node c, c < 0 is leaf ~c. In the IR the leaves
 * follow the internal nodes: leaf j is node L-1+j (a one-leaf tree is node 0).
 */
#include "forest/lgb_load.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>

/* LightGBM's kZeroThreshold is declared `const double kZeroThreshold = 1e-35f`:
   the float literal widened, 1.0000000180025095e-35, not the double 1e-35. */
#define LGB_ZERO_THRESHOLD ((double)1e-35f)
/* A tree of L leaves has 2L-1 IR nodes. */
#define LGB_MAX_LEAVES ((AP_IR_MAX_NODES + 1) / 2)

/*
 * LightGBM's predictors drop every input with |x| <= kZeroThreshold (the
 * parsers and the C API keep only "non-zero" features), so the trees see 0.0
 * for such an x. For a numeric split x <= t this only matters when t itself
 * lies in [-k, k): move t so that x <= t' equals (x or 0) <= t for every x.
 * (LightGBM writes t = +-k often: 1.0000000180025095e-35 is a common threshold.)
 * Linear leaves still multiply the x as given: for |x| <= k, c*x instead of
 * LightGBM's c*0 changes the sum only when it is itself below ~1e-19.
 */
static double lgb_threshold(double t)
{
    const double k = LGB_ZERO_THRESHOLD;
    if (t >= 0 && t < k)
        return k;                   /* 0 <= t: every |x| <= k goes left */
    if (t >= -k && t < 0)
        return nextafter(-k, -INFINITY); /* 0 > t: every |x| <= k goes right */
    return t;
}

/*
 * Linear leaves (is_linear=1): how many terms each of the L leaves has, into
 * *lin_n_out (the caller frees it, also on error), and all of the tree's
 * terms appended to ir at *lin_base.
 */
static int read_linear(const lgb_tree *t, long long L, ap_forest_ir *ir, int32_t **lin_n_out,
                       uint32_t *lin_base, ap_error *err)
{
    int rc;
    *lin_n_out = NULL;
    if ((rc = ap__lgb_want_count(t, K_LEAF_CONST, (size_t)L, err)) != AP_OK ||
        (rc = ap__lgb_want_count(t, K_NUM_FEATURES, (size_t)L, err)) != AP_OK)
        return rc;
    int32_t *lin_n = malloc((size_t)L * sizeof *lin_n), *lin_feat = NULL;
    double *lin_coeff = NULL;
    size_t nterms = 0;
    if (!lin_n)
        return ap__lgb_tree_err(t, 0, err, AP_ENOMEM, "out of memory");
    *lin_n_out = lin_n;
    lgb_tokens it = lgb_tokens_of(t->f[K_NUM_FEATURES]);
    for (long long j = 0; j < L && rc == AP_OK; j++) {
        long long v;
        rc = ap__lgb_tree_int(t, K_NUM_FEATURES, &it, 0, ir->num_features, &v, err);
        lin_n[j] = (int32_t)v;
        nterms += (size_t)v;
    }
    if (rc == AP_OK && (rc = ap__lgb_want_count(t, K_LEAF_FEATURES, nterms, err)) == AP_OK)
        rc = ap__lgb_want_count(t, K_LEAF_COEFF, nterms, err);
    if (rc == AP_OK) {
        lin_feat = malloc((nterms + 1) * sizeof *lin_feat);
        lin_coeff = malloc((nterms + 1) * sizeof *lin_coeff);
        if (!lin_feat || !lin_coeff)
            rc = ap__lgb_tree_err(t, 0, err, AP_ENOMEM, "out of memory for linear leaves");
    }
    lgb_tokens itf = lgb_tokens_of(t->f[K_LEAF_FEATURES]);
    lgb_tokens itc = lgb_tokens_of(t->f[K_LEAF_COEFF]);
    for (size_t i = 0; i < nterms && rc == AP_OK; i++) {
        long long v;
        rc = ap__lgb_tree_int(t, K_LEAF_FEATURES, &itf, 0, ir->num_features - 1, &v, err);
        lin_feat[i] = (int32_t)v;
        if (rc == AP_OK)
            rc = ap__lgb_tree_double(t, K_LEAF_COEFF, &itc, 0, &lin_coeff[i], err);
    }
    if (rc == AP_OK) {
        rc = ap__forest_ir_add_lin(ir, lin_feat, lin_coeff, (uint32_t)nterms, lin_base, err);
        if (rc != AP_OK)
            ap__error_prefix(err, "%s: tree %d: ", t->name, t->index);
    }
    free(lin_feat);
    free(lin_coeff);
    return rc;
}

/*
 * Categorical bitsets (num_cat > 0): cat_boundaries into *bounds_out (ncat+1
 * word offsets, the caller frees it, also on error), and all of the tree's
 * bitset words appended to ir at once at *cat_base; nodes point into them.
 */
static int read_bitsets(const lgb_tree *t, long long ncat, ap_forest_ir *ir, uint32_t **bounds_out,
                        uint32_t *cat_base, ap_error *err)
{
    int rc = AP_OK;
    size_t nwords = t->cnt[K_CAT_THRESHOLD];
    uint32_t *bounds = malloc(((size_t)ncat + 1) * sizeof *bounds);
    *bounds_out = bounds;
    uint32_t *words = malloc(nwords * sizeof *words);
    if (!bounds || !words)
        rc = ap__lgb_tree_err(t, 0, err, AP_ENOMEM, "out of memory for categorical bitsets");
    lgb_tokens it = lgb_tokens_of(t->f[K_CAT_BOUNDARIES]);
    for (long long i = 0; i <= ncat && rc == AP_OK; i++) {
        long long v;
        rc = ap__lgb_tree_int(t, K_CAT_BOUNDARIES, &it, i ? bounds[i - 1] : 0, (long long)nwords, &v,
                             err);
        bounds[i] = (uint32_t)v;
    }
    it = lgb_tokens_of(t->f[K_CAT_THRESHOLD]);
    for (size_t i = 0; i < nwords && rc == AP_OK; i++) {
        long long v;
        rc = ap__lgb_tree_int(t, K_CAT_THRESHOLD, &it, 0, UINT32_MAX, &v, err);
        words[i] = (uint32_t)v;
    }
    if (rc == AP_OK) {
        rc = ap__forest_ir_add_cat(ir, words, (uint32_t)nwords, cat_base, err);
        if (rc != AP_OK)
            ap__error_prefix(err, "%s: tree %d: ", t->name, t->index);
    }
    free(words);
    return rc;
}

/* The L-1 internal nodes of tree t into tr: LightGBM's split rules in IR terms. */
static int build_splits(const lgb_tree *t, long long L, long long ncat, const uint32_t *bounds,
                        uint32_t cat_base, const ap_forest_ir *ir, ap_ir_tree *tr, ap_error *err)
{
    int rc = AP_OK;
    size_t ni = (size_t)L - 1;
    lgb_tokens sf = lgb_tokens_of(t->f[K_SPLIT_FEATURE]), th = lgb_tokens_of(t->f[K_THRESHOLD]),
               dt = lgb_tokens_of(t->f[K_DECISION_TYPE]), lc = lgb_tokens_of(t->f[K_LEFT_CHILD]),
               rcs = lgb_tokens_of(t->f[K_RIGHT_CHILD]);
    for (size_t i = 0; i < ni && rc == AP_OK; i++) {
        ap_ir_node *n = &tr->nodes[i];
        long long feat, d = 0, kid[2];
        double thr;
        if ((rc = ap__lgb_tree_int(t, K_SPLIT_FEATURE, &sf, 0, ir->num_features - 1, &feat, err)) ||
            (rc = ap__lgb_tree_double(t, K_THRESHOLD, &th, 1, &thr, err)) ||
            (t->f[K_DECISION_TYPE].p &&
             (rc = ap__lgb_tree_int(t, K_DECISION_TYPE, &dt, 0, 15, &d, err))) ||
            (rc = ap__lgb_tree_int(t, K_LEFT_CHILD, &lc, -L, L - 2, &kid[0], err)) ||
            (rc = ap__lgb_tree_int(t, K_RIGHT_CHILD, &rcs, -L, L - 2, &kid[1], err)))
            break;
        n->feature = (int32_t)feat;
        for (int k = 0; k < 2; k++) {
            if (kid[k] == 0) {
                rc = ap__lgb_tree_err(t, t->f[k ? K_RIGHT_CHILD : K_LEFT_CHILD].line, err,
                                     AP_EFORMAT, "node %zu: child 0 is the root (cycle)", i);
                break;
            }
            /* leaf ~c lives at IR node L-1+~c */
            int32_t c = kid[k] > 0 ? (int32_t)kid[k] : (int32_t)(L - 1 + ~kid[k]);
            if (k)
                n->right = c;
            else
                n->left = c;
        }
        if (rc != AP_OK)
            break;
        if (d & 1) {
            /*
             * Categorical (CategoricalDecision): NaN -> right; (int)x < 0
             * -> right; bit (int)x of bitset cat_idx set -> left, else
             * right (also past the bitset's end). cat_idx = (int)threshold.
             * default_left and the missing type play no part. In IR terms:
             * default_left = 0, cat_oor_left = 0 (x <= -1 and x >= 32*nwords
             * are the out of range values), in-set left: no swap.
             */
            if (thr != floor(thr) || thr < 0 || thr >= (double)ncat) {
                rc = ap__lgb_tree_err(t, t->f[K_THRESHOLD].line, err, AP_EFORMAT,
                                     "node %zu: categorical threshold %.17g is not a category "
                                     "index in [0, num_cat=%lld)",
                                     i, thr, ncat);
                break;
            }
            uint32_t ci = (uint32_t)thr;
            if (bounds[ci + 1] == bounds[ci]) {
                rc = ap__lgb_tree_err(t, t->f[K_CAT_BOUNDARIES].line, err, AP_EFORMAT,
                                     "node %zu: categorical split %u has an empty bitset", i, ci);
                break;
            }
            n->kind = AP_SPLIT_CAT;
            n->cat_off = cat_base + bounds[ci];
            n->cat_nwords = bounds[ci + 1] - bounds[ci];
            n->default_left = 0;
            n->cat_oor_left = 0;
            continue;
        }
        /*
         * Numeric (NumericalDecision), missing type = bits 2-3:
         *   0 None: NaN -> 0.0, then x <= threshold      (IR AP_MISS_NONE)
         *   1 Zero: NaN or |x| <= kZeroThreshold -> default (AP_MISS_ZERO)
         *   2 NaN:  NaN -> default                         (AP_MISS_NAN)
         * default = left if bit 1 (default_left), then x <= threshold -> left.
         */
        static const uint8_t miss_map[3] = {AP_MISS_NONE, AP_MISS_ZERO, AP_MISS_NAN};
        int mt = (int)((d >> 2) & 3);
        if (mt == 3) {
            rc = ap__lgb_tree_err(t, t->f[K_DECISION_TYPE].line, err, AP_EFORMAT,
                                 "node %zu: decision_type %lld has missing type 3 (0 None, 1 Zero, "
                                 "2 NaN)",
                                 i, d);
            break;
        }
        n->kind = AP_SPLIT_NUM;
        n->missing = miss_map[mt];
        n->default_left = (uint8_t)((d >> 1) & 1);
        n->threshold = lgb_threshold(thr);
    }
    return rc;
}

/* The L leaves of tree t into tr, after its internal nodes. */
static int build_leaves(const lgb_tree *t, long long L, int is_linear, const int32_t *lin_n,
                        uint32_t lin_base, ap_ir_tree *tr, ap_error *err)
{
    int rc = AP_OK;
    size_t ni = (size_t)L - 1;
    lgb_tokens lv = lgb_tokens_of(t->f[K_LEAF_VALUE]), lk = lgb_tokens_of(t->f[K_LEAF_CONST]);
    uint32_t off = 0;
    for (long long j = 0; j < L && rc == AP_OK; j++) {
        ap_ir_node *n = &tr->nodes[ni + (size_t)j];
        n->kind = AP_SPLIT_LEAF;
        if ((rc = ap__lgb_tree_double(t, K_LEAF_VALUE, &lv, 0, &n->value, err)) != AP_OK)
            break;
        if (!is_linear)
            continue;
        /*
         * Linear leaf (Tree::Predict, is_linear): leaf_const + sum of
         * coeff*x in order; if any of those x is NaN, leaf_value. With no
         * terms that is leaf_const (not leaf_value), so a term-less leaf
         * becomes a constant leaf holding leaf_const.
         */
        double c;
        if ((rc = ap__lgb_tree_double(t, K_LEAF_CONST, &lk, 0, &c, err)) != AP_OK)
            break;
        if (lin_n[j] == 0) {
            n->value = c;
            continue;
        }
        n->lin_const = c;
        n->lin_off = lin_base + off;
        n->lin_len = (uint32_t)lin_n[j];
        off += (uint32_t)lin_n[j];
    }
    return rc;
}

int ap__lgb_build_tree(const lgb_tree *t, ap_forest_ir *ir, ap_error *err)
{
    long long L, ncat, is_linear;
    int rc = ap__lgb_tree_scalar(t, K_NUM_LEAVES, 1, LGB_MAX_LEAVES, 0, &L, err);
    if (rc == AP_OK && !t->f[K_NUM_LEAVES].p)
        rc = ap__lgb_tree_err(t, 0, err, AP_EFORMAT, "missing num_leaves");
    if (rc == AP_OK)
        rc = ap__lgb_tree_scalar(t, K_NUM_CAT, 0, L - 1, 0, &ncat, err);
    if (rc == AP_OK)
        rc = ap__lgb_tree_scalar(t, K_IS_LINEAR, 0, 1, 0, &is_linear, err);
    if (rc != AP_OK)
        return rc;
    size_t ni = (size_t)L - 1;
    /* check every array's length before allocating anything: the counts are
       bounded by the file's size, L alone is not */
    static const int internal_keys[] = {K_SPLIT_FEATURE, K_THRESHOLD, K_LEFT_CHILD,
                                        K_RIGHT_CHILD};
    for (size_t i = 0; i < sizeof internal_keys / sizeof internal_keys[0]; i++)
        if ((rc = ap__lgb_want_count(t, internal_keys[i], ni, err)) != AP_OK)
            return rc;
    if (t->f[K_DECISION_TYPE].p && (rc = ap__lgb_want_count(t, K_DECISION_TYPE, ni, err)) != AP_OK)
        return rc;
    if ((rc = ap__lgb_want_count(t, K_LEAF_VALUE, (size_t)L, err)) != AP_OK)
        return rc;
    if (ncat > 0) {
        if ((rc = ap__lgb_want_count(t, K_CAT_BOUNDARIES, (size_t)ncat + 1, err)) != AP_OK)
            return rc;
        if (t->cnt[K_CAT_THRESHOLD] == 0)
            return ap__lgb_tree_err(t, 0, err, AP_EFORMAT, "num_cat=%lld but no cat_threshold",
                                   ncat);
    }
    int32_t *lin_n = NULL;
    uint32_t *bounds = NULL;
    uint32_t lin_base = 0, cat_base = 0;
    if (is_linear)
        rc = read_linear(t, L, ir, &lin_n, &lin_base, err);
    if (rc == AP_OK && ncat > 0)
        rc = read_bitsets(t, ncat, ir, &bounds, &cat_base, err);
    ap_ir_tree *tr = NULL;
    if (rc == AP_OK) {
        tr = ap__forest_ir_add_tree(ir, (int32_t)(2 * L - 1), err);
        if (!tr) {
            rc = err ? err->code : AP_ENOMEM;
            ap__error_prefix(err, "%s: ", t->name);
        }
    }
    if (rc == AP_OK) {
        tr->group = t->index % ir->num_groups;
        rc = build_splits(t, L, ncat, bounds, cat_base, ir, tr, err);
    }
    if (rc == AP_OK)
        rc = build_leaves(t, L, (int)is_linear, lin_n, lin_base, tr, err);
    free(lin_n);
    free(bounds);
    return rc;
}
