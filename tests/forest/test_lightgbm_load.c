/*
 * LightGBM text loader: tiny hand-written models with hand-computed
 * predictions (LightGBM 4.x Tree::NumericalDecision / CategoricalDecision and
 * ObjectiveFunction::ConvertOutput rules, worked out below), then hostile
 * variants that must fail with a message naming the file and the tree.
 * Everything goes through the public API (ap_forest_load_mem / predict).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alphapulse.h"

#define HEADER(objective, nclass, nfeat_minus1)                                                    \
    "tree\nversion=v4\nnum_class=" #nclass "\nnum_tree_per_iteration=" #nclass                    \
    "\nlabel_index=0\nmax_feature_idx=" #nfeat_minus1 "\nobjective=" objective "\n"

/*
 * Base model, 3 features a b c, objective regression, 3 trees:
 *  Tree 0: node0: a <= 0.5 (decision_type 2: default_left, missing None)
 *              left -> leaf0 = 1, right -> node1
 *          node1: b <= 1.5 (decision_type 6: default_left, missing Zero)
 *              left -> leaf1 = 2, right -> leaf2 = 4
 *  Tree 1: node0: categorical on c (decision_type 1), bitset 0 = {0, 1, 3}
 *              (word 11 = 0b1011): in set -> leaf0 = 10, else leaf1 = 20
 *  Tree 2: single leaf 0.25
 */
static const char BASE[] =
    HEADER("regression", 1, 2)
    "feature_names=a b c\n"
    "feature_infos=[0:1] [0:1] 0:1:3\n"
    "tree_sizes=269 182 138\n" /* byte length of each Tree= block */
    "\n"
    "Tree=0\n"
    "num_leaves=3\n"
    "num_cat=0\n"
    "split_feature=0 1\n"
    "split_gain=1 1\n"
    "threshold=0.5 1.5\n"
    "decision_type=2 6\n"
    "left_child=-1 -2\n"
    "right_child=1 -3\n"
    "leaf_value=1 2 4\n"
    "leaf_weight=1 1 1\n"
    "leaf_count=1 1 1\n"
    "internal_value=0 0\n"
    "internal_weight=0 0\n"
    "internal_count=3 2\n"
    "is_linear=0\n"
    "shrinkage=1\n"
    "\n\n"
    "Tree=1\n"
    "num_leaves=2\n"
    "num_cat=1\n"
    "split_feature=2\n"
    "threshold=0\n"
    "decision_type=1\n"
    "left_child=-1\n"
    "right_child=-2\n"
    "leaf_value=10 20\n"
    "cat_boundaries=0 1\n"
    "cat_threshold=11\n"
    "is_linear=0\n"
    "shrinkage=1\n"
    "\n\n"
    "Tree=2\n"
    "num_leaves=1\n"
    "num_cat=0\n"
    "split_feature=\n"
    "threshold=\n"
    "decision_type=\n"
    "left_child=\n"
    "right_child=\n"
    "leaf_value=0.25\n"
    "is_linear=0\n"
    "shrinkage=1\n"
    "\n\n"
    "end of trees\n"
    "\n"
    "feature_importances:\na=1\n\nparameters:\n[boosting: gbdt]\nend of parameters\n\n"
    "pandas_categorical:null\n";

static ap_forest *load_ok(const char *text)
{
    ap_forest *f = NULL;
    ap_error err = {0};
    int rc = ap_forest_load_mem(text, strlen(text), AP_FORMAT_LIGHTGBM, "t.txt", &f, &err);
    if (rc != AP_OK)
        fprintf(stderr, "unexpected load error: %s\n", err.msg);
    assert_int_equal(rc, AP_OK);
    assert_non_null(f);
    return f;
}

static void check_predictions(const char *text, const double *X, size_t nrows, unsigned flags,
                              const double *want, int nout)
{
    ap_forest *f = load_ok(text);
    assert_int_equal(ap_forest_num_outputs(f, flags), nout);
    double *out = calloc(nrows * (size_t)nout, sizeof *out);
    assert_non_null(out);
    ap_forest_predict(f, X, nrows, out, flags);
    for (size_t i = 0; i < nrows * (size_t)nout; i++) {
        if (out[i] != want[i])
            fprintf(stderr, "value %zu: got %.17g, want %.17g\n", i, out[i], want[i]);
        assert_true(out[i] == want[i]);
    }
    free(out);
    ap_forest_free(f);
}

static void test_base_model(void **state)
{
    (void)state;
    ap_forest *f = load_ok(BASE);
    assert_int_equal(ap_forest_num_features(f), 3);
    assert_int_equal(ap_forest_num_trees(f), 3);
    assert_int_equal(ap_forest_num_outputs(f, 0), 1);
    assert_int_equal(ap_forest_is_float32(f), 0);
    assert_string_equal(ap_forest_source(f), "lightgbm");
    assert_string_equal(ap_forest_objective(f), "regression");
    assert_string_equal(ap_forest_feature_name(f, 2), "c");
    ap_forest_free(f);

    const double N = NAN;
    const double X[] = {
        0.0, 3.0, 1.0,  /* T0 a<=.5 -> 1; T1 c=1 in set -> 10; +.25 */
        1.0, 0.0, 2.0,  /* T0 right, b=0 is missing (Zero) -> default left 2; c=2 -> 20 */
        N, N, N,        /* a NaN, None: -> 0.0 <= .5 -> 1; c NaN -> right 20 */
        2.0, 1.0, 3.0,  /* right, 1 <= 1.5 -> 2; c=3 in set -> 10 */
        2.0, N, -0.5,   /* right, b NaN (Zero) -> default left 2; (int)-0.5 = 0 in set -> 10 */
        2.0, 5.0, -1.0, /* right, 5 > 1.5 -> 4; c=-1 negative -> right 20 */
        0.5, 0.0, 40.0, /* .5 <= .5 -> 1; c=40 past the bitset -> right 20 */
        2.0, 1e-36, 3.9 /* right, |b| <= kZeroThreshold: missing -> 2; (int)3.9 = 3 -> 10 */
    };
    const double want[] = {11.25, 22.25, 21.25, 12.25, 12.25, 24.25, 21.25, 12.25};
    check_predictions(BASE, X, 8, 0, want, 1);
    check_predictions(BASE, X, 8, AP_PREDICT_RAW, want, 1);
}

/* A one-tree model: f0 <= threshold, decision_type dt, leaves 1 (left) and 2 (right). */
static char *stump(const char *threshold, int dt)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             HEADER("regression", 1, 0) "\nTree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=%s\n"
             "decision_type=%d\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\nend of trees\n",
             threshold, dt);
    return buf;
}

static void test_zero_threshold_edges(void **state)
{
    (void)state;
    /* kZeroThreshold is (double)1e-35f = 1.0000000180025095e-35 */
    const double k = (double)1e-35f;
    /* Zero missing (dt 4, default right): |x| <= k is missing -> right (2),
       also for k itself, which is above the double 1e-35 */
    const double X1[] = {k, -k, 2e-35, 0.0, NAN, 0.25, 0.75};
    const double W1[] = {2, 2, 1, 2, 2, 1, 2};
    check_predictions(stump("0.5", 4), X1, 7, 0, W1, 1);
    /* LightGBM's predictors drop |x| <= k to 0.0 before the trees: with the
       common threshold -k and missing None (dt 0), x = -k becomes 0 > -k ->
       right; only x < -k goes left; NaN -> 0.0 -> right */
    const double X2[] = {-k, -2e-35, 0.0, -0.0, NAN, 1e-36, -1.0};
    const double W2[] = {2, 1, 2, 2, 2, 2, 1};
    check_predictions(stump("-1.0000000180025095e-35", 0), X2, 7, 0, W2, 1);
    /* threshold in [0, k): every |x| <= k is 0 <= t -> left; x > k right */
    const double X3[] = {k, -k, 2e-35, 0.0};
    const double W3[] = {1, 1, 2, 1};
    check_predictions(stump("5e-36", 0), X3, 4, 0, W3, 1);
    /* missing NaN (dt 8 right, dt 10 left): NaN -> default, 0 compares */
    const double X4[] = {NAN, 0.0, 1.0};
    const double W4[] = {2, 1, 2};
    check_predictions(stump("0.5", 8), X4, 3, 0, W4, 1);
    const double W5[] = {1, 1, 2};
    check_predictions(stump("0.5", 10), X4, 3, 0, W5, 1);
}

/* One single-leaf tree per class with the given leaf values. */
static char *leaves(const char *objective, int nclass, const double *v, int avg)
{
    static char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "tree\nversion=v4\nnum_class=%d\nnum_tree_per_iteration=%d\n"
                     "max_feature_idx=0\nobjective=%s\n%s",
                     nclass, nclass, objective, avg ? "average_output\n" : "");
    int ntrees = avg ? 2 : nclass;
    for (int t = 0; t < ntrees; t++)
        n += snprintf(buf + n, sizeof buf - (size_t)n,
                      "\nTree=%d\nnum_leaves=1\nnum_cat=0\nleaf_value=%.17g\nis_linear=0\n", t,
                      v[t]);
    snprintf(buf + n, sizeof buf - (size_t)n, "\nend of trees\n");
    return buf;
}

static void test_transforms(void **state)
{
    (void)state;
    const double x[1] = {0.0};
    double v[4];
    double w[4];

    v[0] = 2.0; /* binary: 1 / (1 + exp(-sigmoid * x)), sigmoid 0.5 */
    w[0] = 1.0 / (1.0 + exp(-1.0));
    check_predictions(leaves("binary sigmoid:0.5", 1, v, 0), x, 1, 0, w, 1);
    check_predictions(leaves("binary sigmoid:0.5", 1, v, 0), x, 1, AP_PREDICT_RAW, v, 1);
    v[0] = 1.0; /* cross_entropy: 1 / (1 + exp(-x)) */
    w[0] = 1.0 / (1.0 + exp(-1.0));
    check_predictions(leaves("cross_entropy", 1, v, 0), x, 1, 0, w, 1);
    v[0] = 0.3; /* cross_entropy_lambda: log(1 + exp(x)) */
    w[0] = log(1.0 + exp(0.3));
    check_predictions(leaves("cross_entropy_lambda", 1, v, 0), x, 1, 0, w, 1);
    v[0] = 0.5; /* poisson, gamma, tweedie: exp(x) */
    w[0] = exp(0.5);
    check_predictions(leaves("poisson", 1, v, 0), x, 1, 0, w, 1);
    check_predictions(leaves("gamma", 1, v, 0), x, 1, 0, w, 1);
    check_predictions(leaves("tweedie", 1, v, 0), x, 1, 0, w, 1);
    v[0] = -3.0; /* regression sqrt: sign(x) * x * x */
    w[0] = -9.0;
    check_predictions(leaves("regression sqrt", 1, v, 0), x, 1, 0, w, 1);
    check_predictions(leaves("regression_l1 sqrt", 1, v, 0), x, 1, 0, w, 1);
    check_predictions(leaves("regression", 1, v, 0), x, 1, 0, v, 1);
    check_predictions(leaves("huber", 1, v, 0), x, 1, 0, v, 1);
    check_predictions(leaves("lambdarank", 1, v, 0), x, 1, 0, v, 1);
    check_predictions(leaves("rank_xendcg", 1, v, 0), x, 1, 0, v, 1);

    /* multiclass: softmax with the max subtracted first */
    v[0] = 1.0, v[1] = 2.0, v[2] = 3.0;
    double s = exp(1.0 - 3.0) + exp(2.0 - 3.0) + exp(0.0);
    w[0] = exp(-2.0) / s, w[1] = exp(-1.0) / s, w[2] = 1.0 / s;
    check_predictions(leaves("multiclass num_class:3", 3, v, 0), x, 1, 0, w, 3);
    check_predictions(leaves("multiclass num_class:3", 3, v, 0), x, 1, AP_PREDICT_RAW, v, 3);
    /* multiclassova: an independent sigmoid per class */
    v[0] = -1.0, v[1] = 0.5;
    w[0] = 1.0 / (1.0 + exp(1.0)), w[1] = 1.0 / (1.0 + exp(-0.5));
    check_predictions(leaves("multiclassova num_class:2 sigmoid:1", 2, v, 0), x, 1, 0, w, 2);

    /* average_output (random forest): mean before the transform, but the
       raw score is LightGBM's plain sum (GBDT::PredictRaw does not divide) */
    v[0] = 1.0, v[1] = 2.0;
    w[0] = 1.5;
    check_predictions(leaves("regression", 1, v, 1), x, 1, 0, w, 1);
    w[0] = 3.0;
    check_predictions(leaves("regression", 1, v, 1), x, 1, AP_PREDICT_RAW, w, 1);
}

/* Linear tree: a <= 0 -> leaf0, else leaf1.
   leaf0: 0.5 + 2*b - 1*c (features 1 2), plain value 7 if b or c is NaN
   leaf1: no terms: leaf_const 3 (not its leaf_value 9) */
static const char LINEAR[] =
    HEADER("regression", 1, 2)
    "\nTree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0\ndecision_type=2\n"
    "left_child=-1\nright_child=-2\nleaf_value=7 9\nis_linear=1\n"
    "leaf_const=0.5 3\nnum_features=2 0\nleaf_features=1 2  \nleaf_coeff=2 -1  \n"
    "shrinkage=1\n\nend of trees\n";

static void test_linear_tree(void **state)
{
    (void)state;
    const double X[] = {
        -1.0, 3.0, 1.0,   /* 0.5 + 6 - 1 */
        -1.0, NAN, 1.0,   /* NaN in a used feature -> 7 */
        -1.0, 3.0, NAN,   /* -> 7 */
        NAN, 1.0, 0.25,   /* a NaN (None) -> 0 <= 0 -> leaf0: 0.5 + 2 - 0.25 */
        1.0, NAN, NAN,    /* leaf1: 3 */
    };
    const double want[] = {5.5, 7.0, 7.0, 2.25, 3.0};
    check_predictions(LINEAR, X, 5, 0, want, 1);
}

/* ---- hostile files ------------------------------------------------------ */

/* Copy of s with the first occurrence of `from` replaced by `to`. */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    assert_non_null(at);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    assert_non_null(out);
    size_t pre = (size_t)(at - s);
    memcpy(out, s, pre);
    strcpy(out + pre, to);
    strcat(out, at + strlen(from));
    return out;
}

static void expect_fail_len(const char *text, size_t len, int code, const char *must1,
                            const char *must2)
{
    ap_forest *f = (ap_forest *)1;
    ap_error err = {0};
    int rc = ap_forest_load_mem(text, len, AP_FORMAT_LIGHTGBM, "bad.txt", &f, &err);
    fprintf(stderr, "  -> %s: %s\n", ap_status_name(rc), err.msg);
    assert_int_equal(rc, code);
    assert_null(f);
    assert_non_null(strstr(err.msg, "bad.txt"));
    if (must1)
        assert_non_null(strstr(err.msg, must1));
    if (must2)
        assert_non_null(strstr(err.msg, must2));
}

static void expect_fail(const char *text, int code, const char *must1, const char *must2)
{
    expect_fail_len(text, strlen(text), code, must1, must2);
}

/* t (malloc'd) with its tree_sizes line rewritten to the real byte length
   of each "Tree=" block, from its line to the next "Tree=" or "end of trees"
   line: what LightGBM's writer puts there. An edit to one tree then fails
   for its own reason, not because the trees after it moved. */
static char *resize_trees(char *t)
{
    char *ts = strstr(t, "tree_sizes=");
    if (!ts)
        return t;
    char sizes[256] = "";
    size_t o = 0;
    const char *first = strstr(t, "\nTree=");
    const char *p = first ? first + 1 : NULL;
    while (p) {
        const char *next = strstr(p + 1, "\nTree="), *eot = strstr(p + 1, "\nend of trees");
        const char *end = next && (!eot || next < eot) ? next : eot;
        if (!end)
            break;
        o += (size_t)snprintf(sizes + o, sizeof sizes - o, "%s%zu", o ? " " : "",
                              (size_t)(end + 1 - p));
        assert_true(o < sizeof sizes);
        p = end == next ? next + 1 : NULL;
    }
    char line[300];
    snprintf(line, sizeof line, "tree_sizes=%s", sizes);
    const char *eol = strchr(ts, '\n');
    size_t old_len = (size_t)(eol - ts);
    char from[300];
    assert_true(old_len < sizeof from);
    memcpy(from, ts, old_len);
    from[old_len] = '\0';
    char *r = replace(t, from, line);
    free(t);
    return r;
}

/* Replace `from` with `to` in BASE and expect a failure. */
static void bad(const char *from, const char *to, int code, const char *must1, const char *must2)
{
    char *t = resize_trees(replace(BASE, from, to));
    expect_fail(t, code, must1, must2);
    free(t);
}

static void test_bad_arrays(void **state)
{
    (void)state;
    /* lengths that disagree with num_leaves (line numbers: Tree=0 is line 11) */
    bad("leaf_value=1 2 4", "leaf_value=1 2", AP_EFORMAT, "tree 0",
        "leaf_value has 2 values, expected 3");
    bad("threshold=0.5 1.5", "threshold=0.5", AP_EFORMAT, "tree 0", "threshold");
    bad("left_child=-1 -2", "left_child=-1 -2 -3", AP_EFORMAT, "tree 0", "left_child");
    bad("decision_type=1\n", "decision_type=1 1\n", AP_EFORMAT, "tree 1", "decision_type");
    bad("right_child=1 -3\n", "", AP_EFORMAT, "tree 0", "missing right_child");
    bad("leaf_value=0.25\n", "", AP_EFORMAT, "tree 2", "missing leaf_value");
    bad("leaf_value=0.25", "leaf_value=0.25 1", AP_EFORMAT, "tree 2", "leaf_value");
    bad("split_feature=0 1\n", "split_feature=0 1\nsplit_feature=0 1\n", AP_EFORMAT, "tree 0",
        "appears twice");
    /* line number of the faulty array: line 17 of BASE */
    bad("threshold=0.5 1.5", "threshold=0.5 x1.5", AP_EFORMAT, "bad.txt:17: tree 0",
        "is not a number");
    bad("leaf_value=1 2 4", "leaf_value=1 2 nan", AP_EFORMAT, "tree 0", "not finite");
    bad("leaf_value=1 2 4", "leaf_value=1 2 1e999", AP_EFORMAT, "tree 0", "not finite");
    bad("threshold=0.5 1.5", "threshold=0.5 nan", AP_EFORMAT, "tree 0", "not finite");
    bad("split_feature=0 1", "split_feature=0 1.5", AP_EFORMAT, "tree 0", "not an integer");
    bad("num_leaves=3", "num_leaves=three", AP_EFORMAT, "tree 0", "num_leaves");
    bad("num_leaves=3\n", "", AP_EFORMAT, "tree 0", "missing num_leaves");
}

static void test_bad_structure(void **state)
{
    (void)state;
    bad("left_child=-1 -2", "left_child=-1 5", AP_EFORMAT, "tree 0", "left_child");
    bad("right_child=1 -3", "right_child=1 -4", AP_EFORMAT, "tree 0", "right_child");
    bad("right_child=1 -3", "right_child=0 -3", AP_EFORMAT, "tree 0", "root");
    /* node 1 is its own child: a cycle */
    bad("left_child=-1 -2", "left_child=-1 1", AP_EFORMAT, "tree 0", "reached twice");
    /* leaf 0 used twice, leaf 1 never: a shared child */
    bad("left_child=-1 -2", "left_child=-1 -1", AP_EFORMAT, "tree 0", "reached twice");
    bad("split_feature=0 1", "split_feature=0 3", AP_EFORMAT, "tree 0", "split_feature");
    bad("split_feature=0 1", "split_feature=0 -1", AP_EFORMAT, "tree 0", "split_feature");
    bad("decision_type=2 6", "decision_type=2 14", AP_EFORMAT, "tree 0", "missing type 3");
    bad("decision_type=2 6", "decision_type=2 16", AP_EFORMAT, "tree 0", "decision_type");
    bad("decision_type=2 6", "decision_type=2 -1", AP_EFORMAT, "tree 0", "decision_type");
    /* categorical index out of range, not an index, empty bitset, no num_cat */
    bad("threshold=0\n", "threshold=1\n", AP_EFORMAT, "tree 1", "num_cat=1");
    bad("threshold=0\n", "threshold=0.5\n", AP_EFORMAT, "tree 1", "category index");
    bad("cat_boundaries=0 1", "cat_boundaries=0 0", AP_EFORMAT, "tree 1", "empty bitset");
    bad("cat_boundaries=0 1", "cat_boundaries=0 2", AP_EFORMAT, "tree 1", "cat_boundaries");
    bad("cat_boundaries=0 1", "cat_boundaries=0", AP_EFORMAT, "tree 1", "cat_boundaries");
    bad("cat_threshold=11", "cat_threshold=-11", AP_EFORMAT, "tree 1", "cat_threshold");
    bad("cat_threshold=11", "cat_threshold=4294967296", AP_EFORMAT, "tree 1", "cat_threshold");
    bad("num_cat=1", "num_cat=0", AP_EFORMAT, "tree 1", "num_cat=0");
    bad("num_cat=1", "num_cat=2", AP_EFORMAT, "tree 1", "num_cat");
    /* tree numbering and counts */
    bad("Tree=1\n", "Tree=7\n", AP_EFORMAT, "Tree=1", NULL);
    bad("Tree=2\n", "Tree=-2\n", AP_EFORMAT, "Tree=2", NULL);
}

static void test_bad_sizes(void **state)
{
    (void)state;
    /* absurd sizes are rejected before anything is allocated */
    bad("num_leaves=3", "num_leaves=1000000000", AP_EFORMAT, "tree 0", "num_leaves");
    bad("num_leaves=3", "num_leaves=99999999999999999999", AP_EFORMAT, "tree 0", "num_leaves");
    bad("num_leaves=3", "num_leaves=0", AP_EFORMAT, "tree 0", "num_leaves");
    /* within the bound but the arrays are short: no 8M-node allocation */
    bad("num_leaves=3", "num_leaves=8000000", AP_EFORMAT, "tree 0", "expected 7999999");
    bad("num_class=1", "num_class=100000000", AP_ERANGE, "num_class", NULL);
    bad("num_tree_per_iteration=1", "num_tree_per_iteration=0", AP_ERANGE,
        "num_tree_per_iteration", NULL);
    bad("num_tree_per_iteration=1", "num_tree_per_iteration=2", AP_EUNSUPPORTED,
        "num_tree_per_iteration", NULL);
    bad("max_feature_idx=2", "max_feature_idx=2000000000", AP_ERANGE, "max_feature_idx", NULL);
    bad("max_feature_idx=2", "max_feature_idx=-1", AP_ERANGE, "max_feature_idx", NULL);
    bad("max_feature_idx=2", "max_feature_idx=3", AP_EFORMAT, "feature_names", NULL);
    /* 3 trees cannot be whole iterations of 2 classes */
    char *t = replace(BASE, "num_class=1\nnum_tree_per_iteration=1",
                      "num_class=2\nnum_tree_per_iteration=2");
    expect_fail(t, AP_EFORMAT, "objective regression with num_class=2", NULL);
    char *t2 = replace(t, "objective=regression", "objective=custom");
    expect_fail(t2, AP_EFORMAT, "3 trees", NULL);
    free(t2);
    free(t);
}

static void test_bad_header(void **state)
{
    (void)state;
    bad("tree\n", "forest\n", AP_EFORMAT, "not a LightGBM", NULL);
    bad("version=v4", "version=v2", AP_EUNSUPPORTED, "version", NULL);
    bad("version=v4\n", "", AP_EFORMAT, "version", NULL);
    bad("num_class=1\n", "", AP_EFORMAT, "num_class", NULL);
    bad("max_feature_idx=2\n", "", AP_EFORMAT, "max_feature_idx", NULL);
    bad("objective=regression", "objective=regresion", AP_EUNSUPPORTED, "objective", NULL);
    bad("objective=regression", "objective=binary", AP_EFORMAT, "sigmoid", NULL);
    bad("objective=regression", "objective=binary sigmoid:-1", AP_EFORMAT, "sigmoid", NULL);
    bad("objective=regression", "objective=binary sigmoid:x", AP_EFORMAT, "sigmoid", NULL);
    bad("objective=regression", "objective=multiclass num_class:3", AP_EFORMAT, "num_class", NULL);
    bad("objective=regression", "objective=multiclass", AP_EFORMAT, "num_class", NULL);
    /* no trees at all */
    char *t = malloc(sizeof BASE);
    assert_non_null(t);
    const char *first = strstr(BASE, "Tree=0");
    memcpy(t, BASE, (size_t)(first - BASE));
    strcpy(t + (first - BASE), "end of trees\n");
    expect_fail(t, AP_EFORMAT, "no trees", NULL);
    free(t);
}

static void test_truncated(void **state)
{
    (void)state;
    size_t n = strlen(BASE);
    /* cut at every byte: never a crash; a clear error wherever it lands
       before "end of trees" */
    const char *eot = strstr(BASE, "end of trees");
    for (size_t cut = 0; cut < (size_t)(eot - BASE); cut++) {
        ap_forest *f = NULL;
        ap_error err = {0};
        int rc = ap_forest_load_mem(BASE, cut, AP_FORMAT_LIGHTGBM, "cut.txt", &f, &err);
        assert_true(rc < 0);
        assert_null(f);
        assert_non_null(strstr(err.msg, "cut.txt"));
    }
    /* inside tree 1: names the tree and says why */
    const char *in1 = strstr(BASE, "leaf_value=10 20");
    expect_fail_len(BASE, (size_t)(in1 - BASE), AP_EFORMAT, "bad.txt:31: tree 1", "truncated");
    const char *after1 = strstr(BASE, "Tree=2");
    expect_fail_len(BASE, (size_t)(after1 - BASE), AP_EFORMAT, "tree 1", "truncated");
    expect_fail_len(BASE, (size_t)(strstr(BASE, "Tree=0") - BASE), AP_EFORMAT, "truncated",
                    NULL);
    /* whole file up to "end of trees" and beyond loads */
    for (size_t cut = (size_t)(eot - BASE) + 12; cut <= n; cut += 7) {
        ap_forest *f = NULL;
        ap_error err = {0};
        assert_int_equal(ap_forest_load_mem(BASE, cut, AP_FORMAT_LIGHTGBM, "c", &f, &err),
                         AP_OK);
        ap_forest_free(f);
    }
}

static void test_nul_and_crlf(void **state)
{
    (void)state;
    /* a NUL byte inside a number */
    char *t = replace(BASE, "leaf_value=1 2 4", "leaf_value=1 2 4");
    char *p = strstr(t, "leaf_value=1 2 4");
    p[14] = '\0'; /* "1 2\0" followed by "4": token "2\04" */
    expect_fail_len(t, strlen(BASE), AP_EFORMAT, "tree 0", "leaf_value");
    free(t);
    /* CRLF line ends load like LF */
    size_t n = strlen(BASE), lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += BASE[i] == '\n';
    char *crlf = malloc(n + lines + 1);
    assert_non_null(crlf);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (BASE[i] == '\n')
            crlf[j++] = '\r';
        crlf[j++] = BASE[i];
    }
    crlf[j] = '\0';
    const double X[] = {0.0, 3.0, 1.0};
    const double want[] = {11.25};
    check_predictions(crlf, X, 1, 0, want, 1);
    free(crlf);
}

static void test_bad_linear(void **state)
{
    (void)state;
    char *t = replace(LINEAR, "leaf_features=1 2", "leaf_features=1 3");
    expect_fail(t, AP_EFORMAT, "tree 0", "leaf_features");
    free(t);
    t = replace(LINEAR, "leaf_coeff=2 -1", "leaf_coeff=2");
    expect_fail(t, AP_EFORMAT, "tree 0", "leaf_coeff");
    free(t);
    t = replace(LINEAR, "num_features=2 0", "num_features=3 0");
    expect_fail(t, AP_EFORMAT, "tree 0", "leaf_features");
    free(t);
    t = replace(LINEAR, "num_features=2 0", "num_features=2 -1");
    expect_fail(t, AP_EFORMAT, "tree 0", "num_features");
    free(t);
    t = replace(LINEAR, "leaf_const=0.5 3\n", "");
    expect_fail(t, AP_EFORMAT, "tree 0", "leaf_const");
    free(t);
    t = replace(LINEAR, "is_linear=1", "is_linear=2");
    expect_fail(t, AP_EFORMAT, "tree 0", "is_linear");
    free(t);
}


/* Only what LightGBM writes is accepted: an unknown header key or line, an
   unknown tree key, a line LightGBM would not read, a parameter of the
   objective it does not write: refused, naming file:line and the key. Each
   of these loaded before (ignored). */
static void test_unknown_keys(void **state)
{
    (void)state;
    /* header: line 9 of BASE is feature_infos */
    bad("feature_infos=", "boost_from_average=1\nfeature_infos=", AP_EUNSUPPORTED,
        "bad.txt:9: unknown header key 'boost_from_average'", "refusing rather than ignoring");
    bad("feature_infos=", "linear_tree\nfeature_infos=", AP_EUNSUPPORTED,
        "bad.txt:9: unknown header line 'linear_tree'", NULL);
    bad("feature_infos=", "objective=binary sigmoid:1\nfeature_infos=", AP_EFORMAT,
        "bad.txt:9: objective appears twice", NULL);
    bad("feature_infos=", "average_output\naverage_output\nfeature_infos=", AP_EFORMAT,
        "bad.txt:10: average_output appears twice", NULL);
    /* tree keys: line 22 of BASE is tree 0's leaf_weight */
    bad("leaf_weight=1 1 1\n", "leaf_scale=2\n", AP_EUNSUPPORTED,
        "bad.txt:22: tree 0: unknown key 'leaf_scale'", "refusing rather than ignoring");
    bad("leaf_weight=1 1 1\n", "leaf_weight=1 1 1\nleaf_weight=1 1 1\n", AP_EFORMAT,
        "bad.txt:23: tree 0", "leaf_weight appears twice");
    bad("leaf_weight=1 1 1\n", "num_leaves\n", AP_EFORMAT, "bad.txt:22: tree 0",
        "not a key=value line");
    /* LightGBM stops reading a tree at its first blank line: a key after one
       would be ignored by LightGBM and read here */
    bad("is_linear=0\nshrinkage=1\n\n\nTree=1", "is_linear=0\n\ndecision_type=0 0\n\nTree=1",
        AP_EFORMAT, "tree 0", "after the blank line that ends the tree");
    /* objective parameters: only those LightGBM writes for that objective */
    bad("objective=regression", "objective=binary sigmoid:1 scale_pos:2", AP_EUNSUPPORTED,
        "objective binary: unknown parameter 'scale_pos:2'", NULL);
    bad("objective=regression", "objective=huber sqrt", AP_EUNSUPPORTED,
        "objective huber: unknown parameter 'sqrt'", NULL);
    bad("objective=regression", "objective=regression sqrt sqrt", AP_EFORMAT,
        "'sqrt' given twice", NULL);
    bad("objective=regression", "objective=multiclass num_class:1 sigmoid:1", AP_EUNSUPPORTED,
        "objective multiclass: unknown parameter 'sigmoid:1'", NULL);
    /* what LightGBM writes but prediction does not use still loads */
    const double X[] = {0.0, 3.0, 1.0};
    const double want[] = {11.25};
    char *t = replace(BASE, "feature_infos=", "monotone_constraints=0 0 1\nfeature_infos=");
    check_predictions(t, X, 1, 0, want, 1);
    free(t);
}

/* tree_sizes: LightGBM reads exactly the trees it lists, each at the offset
   the sizes give (GBDT::LoadModelFromString): a list that does not describe
   the file would make LightGBM predict other trees. BASE's sizes are
   269 182 138 (the byte lengths of its three Tree= blocks). */
static void test_tree_sizes(void **state)
{
    (void)state;
    /* LightGBM would read only 2 trees */
    char *t = replace(BASE, "tree_sizes=269 182 138", "tree_sizes=269 182");
    expect_fail(t, AP_EFORMAT, "tree_sizes lists 2 trees but the file holds 3", NULL);
    free(t);
    t = replace(BASE, "tree_sizes=269 182 138", "tree_sizes=269 182 138 10");
    expect_fail(t, AP_EFORMAT, "tree_sizes lists 4 trees", NULL);
    free(t);
    /* LightGBM would look for tree 1 in the middle of tree 0 */
    t = replace(BASE, "tree_sizes=269 182 138", "tree_sizes=200 251 138");
    expect_fail(t, AP_EFORMAT, "bad.txt:31: tree_sizes puts tree 1 at byte 200",
                "it is at byte 269");
    free(t);
    t = replace(BASE, "tree_sizes=269 182 138", "tree_sizes=269 x 138");
    expect_fail(t, AP_EFORMAT, "tree_sizes value #1 'x' is not a size", NULL);
    free(t);
    t = replace(BASE, "tree_sizes=269 182 138", "tree_sizes=");
    expect_fail(t, AP_EFORMAT, "tree_sizes lists 0 trees but the file holds more", NULL);
    free(t);
    /* the last size is not used by LightGBM; no tree_sizes line at all is
       LightGBM's sequential read */
    const double X[] = {0.0, 3.0, 1.0};
    const double want[] = {11.25};
    t = replace(BASE, "tree_sizes=269 182 138", "tree_sizes=269 182 1");
    check_predictions(t, X, 1, 0, want, 1);
    free(t);
    t = replace(BASE, "tree_sizes=269 182 138\n", "");
    check_predictions(t, X, 1, 0, want, 1);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_model),
        cmocka_unit_test(test_zero_threshold_edges),
        cmocka_unit_test(test_transforms),
        cmocka_unit_test(test_linear_tree),
        cmocka_unit_test(test_bad_arrays),
        cmocka_unit_test(test_bad_structure),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_nul_and_crlf),
        cmocka_unit_test(test_bad_linear),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_tree_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
