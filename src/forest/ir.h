/*
 * Forest IR: the plain, loader-neutral description of a tree ensemble.
 *
 * Every loader (XGBoost JSON/UBJSON, LightGBM text, later ONNX) fills an
 * ap_forest_ir; the engine (engine.c) compiles it into its compact layout.
 * The IR is easy to build and validate, never used in the predict path.
 *
 * Semantics of one split node (the engine reproduces exactly this). For an
 * AP_PREC_F32 forest (XGBoost) the row value is first rounded to float, as
 * XGBoost's DMatrix stores float32 (ap__ir_round_f32: no UB past FLT_MAX);
 * everything below then uses that value.
 *
 *   numeric node (kind AP_SPLIT_NUM), x = row[feature]:
 *     if x is NaN:
 *        missing == AP_MISS_NAN   -> go default (left if default_left)
 *        missing == AP_MISS_NONE  -> x = 0.0, then compare   (LightGBM "None")
 *        missing == AP_MISS_ZERO  -> go default               (LightGBM "Zero":
 *                                    NaN is treated as 0, and 0 is missing)
 *     if missing == AP_MISS_ZERO and |x| <= (double)1e-35f -> go default
 *        (LightGBM's kZeroThreshold is the float literal 1e-35f widened:
 *        1.0000000180025095e-35, not the double 1e-35)
 *     compare in the forest's precision:
 *        AP_PREC_F32: (float)x <  (float)threshold -> left   (XGBoost)
 *        AP_PREC_F64:         x <= threshold       -> left   (LightGBM)
 *
 *   categorical node (kind AP_SPLIT_CAT), x = row[feature]:
 *     if x is NaN -> go default (left if default_left)
 *     out of range -> left if cat_oor_left else right, where out of range is
 *        AP_PREC_F32: x < 0             (XGBoost: any negative value)
 *        AP_PREC_F64: x <= -1           (LightGBM: (int)x < 0; -0.5 is category 0)
 *        both:        trunc(x) >= 32*cat_nwords
 *     else c = (int)trunc(x); bit c of the node's words set -> left, else right
 *   Loaders normalise their library's rule to this one (e.g. swap children
 *   when the library sends in-set categories right).
 *
 *   leaf: value, or for LightGBM linear trees:
 *     if any linear feature is NaN -> value
 *     else leaf_const + sum(coeff[k] * x[feat[k]])  (double, in that order)
 *
 * A tree's contribution to output group `group` is weight * leaf (weight is 1
 * except for XGBoost dart's weight_drop). Sum order is tree order.
 *
 * Vector trees (group == AP_GROUP_ALL): each leaf carries num_groups values,
 * leaf_vec[vec_off + g] (its `value` is unused, linear leaves are not
 * allowed), and the tree adds weight * leaf_vec[vec_off + g] to every group
 * g, exactly as num_groups scalar trees would at that place in tree order
 * (ONNX classifiers: one walk instead of one per class). For average_output a
 * vector tree counts as a tree of every group. Scalar and vector trees mix.
 *   AP_PREC_F32 (XGBoost): acc = (float)base_score[g]; per tree, in order,
 *       acc += (float)weight * (float)leaf   (float arithmetic throughout)
 *   AP_PREC_F64 (LightGBM): s = sum of weight*leaf in double, in tree order;
 *       for transformed output (not raw) average_output divides s by the
 *       number of trees of group g (LightGBM's raw score of an average_output
 *       model is the plain sum: GBDT::PredictRaw does not divide, only
 *       GBDT::Predict does, before ConvertOutput); then margin = s + base_score[g]
 * The objective transform of the source library then runs on the margins
 * (ap__transform_xgboost / ap__transform_lightgbm, transform.h).
 */
#ifndef AP_FOREST_IR_H
#define AP_FOREST_IR_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "alphapulse/common.h"

enum { AP_SPLIT_LEAF = 0, AP_SPLIT_NUM = 1, AP_SPLIT_CAT = 2 };
enum { AP_MISS_NAN = 0, AP_MISS_NONE = 1, AP_MISS_ZERO = 2 };
enum { AP_PREC_F32 = 0, AP_PREC_F64 = 1 };

/* x rounded to float (round to nearest even) as a double, for AP_PREC_F32
   rows. A plain (float) cast is undefined behaviour past FLT_MAX (a CSV may
   hold 1e300): beyond it IEEE rounding gives FLT_MAX up to the midpoint
   0x1.ffffffp127, infinity from there (ties to even: FLT_MAX is odd). */
static inline double ap__ir_round_f32(double x)
{
    if (!(fabs(x) > FLT_MAX)) /* NaN too */
        return (double)(float)x;
    return copysign(fabs(x) < 0x1.ffffffp127 ? (double)FLT_MAX : INFINITY, x);
}

typedef enum ap_transform {
    AP_TF_IDENTITY = 0,
    AP_TF_SIGMOID,        /* 1/(1+exp(-sigmoid_scale*x)) per output */
    AP_TF_SOFTMAX,        /* over the groups of a row */
    AP_TF_ARGMAX,         /* XGBoost multi:softmax: index of the max margin, one output */
    AP_TF_EXP,            /* poisson, gamma, tweedie */
    AP_TF_LOG1P_EXP,      /* LightGBM cross_entropy_lambda */
    AP_TF_SQUARE_SIGNED   /* LightGBM regression with sqrt: sign(x)*x*x */
} ap_transform;

typedef struct ap_ir_node {
    uint8_t kind;          /* AP_SPLIT_* */
    uint8_t missing;       /* AP_MISS_* (numeric nodes) */
    uint8_t default_left;  /* missing values go left */
    uint8_t cat_oor_left;  /* categorical: negative / too large categories go left */
    int32_t feature;       /* split feature index, 0-based */
    int32_t left, right;   /* child node indices within the tree */
    double threshold;      /* numeric threshold (F32 forests hold a float value) */
    double value;          /* leaf value */
    uint32_t cat_off;      /* categorical: first word in ap_forest_ir.cat_words */
    uint32_t cat_nwords;   /* number of 32-bit words of the category bitset */
    uint32_t lin_off;      /* linear leaf: first term in lin_feat/lin_coeff */
    uint32_t lin_len;      /* linear leaf: number of terms (0 = constant leaf) */
    double lin_const;      /* linear leaf: constant term */
    uint32_t vec_off;      /* leaf of a vector tree: first of its num_groups values in
                              ap_forest_ir.leaf_vec (unused in scalar trees) */
} ap_ir_node;

/* ap_ir_tree.group of a vector tree: its leaves add to every group */
#define AP_GROUP_ALL (-1)

typedef struct ap_ir_tree {
    ap_ir_node *nodes;     /* nodes[0] is the root */
    int32_t nnodes;
    int32_t group;         /* output group (class) this tree adds to, or AP_GROUP_ALL */
    double weight;         /* multiplier on its leaves (dart), normally 1.0 */
} ap_ir_tree;

typedef struct ap_forest_ir {
    int precision;         /* AP_PREC_F32 (XGBoost) or AP_PREC_F64 (LightGBM) */
    int32_t num_features;
    int32_t num_groups;    /* margins per row: 1, or the number of classes */
    ap_ir_tree *trees;
    int32_t ntrees;
    int32_t trees_cap;
    double *base_score;    /* num_groups entries, added to the margin */
    int average_output;    /* divide the tree sum by trees-per-group */
    ap_transform transform;
    double sigmoid_scale;  /* for AP_TF_SIGMOID (XGBoost: 1.0) */
    uint32_t *cat_words;   /* all categorical bitsets */
    uint32_t ncat_words;
    int32_t *lin_feat;     /* all linear-leaf terms */
    double *lin_coeff;
    uint32_t nlin;
    double *leaf_vec;      /* all vector-tree leaf values, num_groups per leaf */
    uint32_t nleaf_vec;
    uint32_t leaf_vec_cap;
    char **feature_names;  /* num_features entries or NULL */
    char objective[64];    /* the library's objective name, for display */
    char source[16];       /* "xgboost" or "lightgbm" */
} ap_forest_ir;

/* Limits that bound allocation on hostile files. */
#define AP_IR_MAX_TREES     (1 << 20)
#define AP_IR_MAX_NODES     (1 << 24)   /* per tree */
#define AP_IR_MAX_FEATURES  (1 << 20)
#define AP_IR_MAX_GROUPS    (1 << 16)
#define AP_IR_MAX_CAT_WORDS (1 << 20)   /* per node */
/* Output groups the engines accept (their stack scratch holds a row's). */
#define AP_IR_MAX_GROUPS_ROW 1024

void ap__forest_ir_init(ap_forest_ir *ir);
void ap__forest_ir_free(ap_forest_ir *ir);
/* Append a tree with nnodes zeroed nodes; returns it or NULL on ENOMEM. */
ap_ir_tree *ap__forest_ir_add_tree(ap_forest_ir *ir, int32_t nnodes, ap_error *err);
/* Append words to cat_words; sets *off. */
int ap__forest_ir_add_cat(ap_forest_ir *ir, const uint32_t *words, uint32_t n, uint32_t *off,
                         ap_error *err);
/* Append linear terms; sets *off. */
int ap__forest_ir_add_lin(ap_forest_ir *ir, const int32_t *feat, const double *coeff, uint32_t n,
                         uint32_t *off, ap_error *err);

/* Append the num_groups values of one vector leaf to leaf_vec; sets *off. */
int ap__forest_ir_add_vec(ap_forest_ir *ir, const double *v, uint32_t *off, ap_error *err);

/*
 * Check everything the engine relies on: child indices in range, every node
 * reachable exactly once from the root (no cycles, no sharing), features in
 * range, group in range (or AP_GROUP_ALL), bitsets and leaf vectors in range,
 * finite thresholds and leaves.
 * The message names the tree and node. `what` prefixes it (usually the path).
 */
int ap__forest_ir_validate(const ap_forest_ir *ir, const char *what, ap_error *err);

/* The split rule above for one node and row value: 1 = left. The engine's
   slow path (categorical, zero-as-missing, NaN) calls this same function. */
int ap__ir_go_left(const ap_forest_ir *ir, const ap_ir_node *n, double x);

/* The value of leaf n for a row: its value, or a linear leaf's sum as
   described above (in that order, NaN in a term -> value). One definition
   for the reference predictor and the engine; inline because the engine
   calls it per row and leaf of linear forests. */
static inline double ap__ir_leaf_value(const ap_forest_ir *ir, const ap_ir_node *n,
                                      const double *row)
{
    if (n->lin_len == 0)
        return n->value;
    double s = n->lin_const;
    for (uint32_t k = 0; k < n->lin_len; k++) {
        double x = row[ir->lin_feat[n->lin_off + k]];
        if (isnan(x))
            return n->value;
        s += ir->lin_coeff[n->lin_off + k] * x;
    }
    return s;
}

/* Reference predictor straight from the IR (slow, obviously correct): used by
   tests to check the compiled engine. out: num_outputs doubles per row. */
int ap__forest_ir_num_outputs(const ap_forest_ir *ir);
void ap__forest_ir_predict_ref(const ap_forest_ir *ir, const double *row, int raw, double *out);

#endif
