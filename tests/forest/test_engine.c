/*
 * Compiled engine vs the IR reference predictor (ap__forest_ir_predict_ref),
 * bit for bit, on many random IRs and adversarial rows.
 *
 * The reference is the spec (ir.h) written as plainly as possible; the
 * engine rewrites every split (float bounds, nextafter, self-looping leaves,
 * blocks of rows), so any difference is an engine bug. Rows are drawn to hit
 * the edges: NaN, +-0, |x| <= 1e-35, values equal to thresholds and one
 * double ulp either side, the float rounding midpoints of F32 thresholds,
 * negative / fractional / huge categories. Forests mix scalar trees with
 * vector trees (group AP_GROUP_ALL: one leaf value per group, as ONNX
 * classifiers are imported).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forest/forest_internal.h"
#include "forest/ir.h"
#include "forest/quant.h"

/* xorshift64*: deterministic, so a failure names a reproducible seed */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}
static int rint_(rng *r, int n) { return (int)(rnext(r) % (uint64_t)n); }
static double runif(rng *r) { return (double)(rnext(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Per-feature pools of split values: rows draw from them too, so exact
   ties and duplicates are common. */
#define POOL 6
typedef struct gen {
    rng r;
    rng rv;        /* vector trees draw from their own stream: forests without
                      them are the same as before vector trees existed */
    ap_forest_ir *ir;
    double pool[16][POOL];
    int allow_cat, allow_lin, miss_types; /* missing types beyond AP_MISS_NAN: 0..2 */
    int vec_tree;  /* the tree being built is a vector tree */
} gen;

/* A vector leaf's num_groups values: zeros (an output the leaf does not
   weigh), -0.0, float values, and plain doubles. */
static void vector_leaf(gen *g, ap_ir_node *n)
{
    double v[8];
    for (int32_t k = 0; k < g->ir->num_groups; k++) {
        int c = rint_(&g->rv, 6);
        v[k] = c == 0 ? 0.0 : c == 1 ? -0.0 : (runif(&g->rv) - 0.5) * 2.0;
        if (c == 2)
            v[k] = (double)(float)v[k];
    }
    assert_int_equal(ap__forest_ir_add_vec(g->ir, v, &n->vec_off, NULL), AP_OK);
}

static double special_value(rng *r)
{
    static const double v[] = {0.0,   -0.0,   1e-36, -1e-36, 1e-35, 2e-35, 1.0,  -1.0,
                               0.5,   -0.5,   1e30,  -1e30,  1e39,  -1e39, 3.0,  31.0,
                               32.0,  63.9,   64.0,  95.5,   -0.99, 1e10,  0.1,  (double)FLT_MAX,
                               /* (double)1e-35f, LightGBM's zero threshold, and its neighbour */
                               1.0000000180025095e-35, -1.0000000180025095e-35,
                               1.0000000180025096e-35};
    return v[rint_(r, (int)(sizeof v / sizeof v[0]))];
}

static double random_threshold(rng *r, int prec)
{
    int k = rint_(r, 10);
    double t;
    if (k < 3)
        t = special_value(r);
    else if (k == 3)
        t = rint_(r, 2) ? INFINITY : -INFINITY;
    else
        t = (runif(r) - 0.5) * 8.0;
    if (prec == AP_PREC_F32)
        t = (double)(float)t; /* XGBoost thresholds are float values */
    return t;
}

static void build_node(gen *g, ap_ir_tree *tr, int32_t *nnext, int32_t k, int depth, int maxdepth)
{
    ap_forest_ir *ir = g->ir;
    ap_ir_node *n = &tr->nodes[k];
    int leaf = depth >= maxdepth || *nnext + 2 > tr->nnodes || (depth > 0 && rint_(&g->r, 4) == 0);
    if (leaf && g->vec_tree) {
        n->kind = AP_SPLIT_LEAF;
        vector_leaf(g, n);
        return;
    }
    if (leaf) {
        n->kind = AP_SPLIT_LEAF;
        n->value = (runif(&g->r) - 0.5) * 2.0;
        if (rint_(&g->r, 8) == 0)
            n->value = (double)(float)n->value;
        if (g->allow_lin && rint_(&g->r, 3) == 0) {
            int32_t feat[3];
            double coeff[3];
            uint32_t len = (uint32_t)rint_(&g->r, 4);
            for (uint32_t i = 0; i < len; i++) {
                feat[i] = rint_(&g->r, ir->num_features);
                coeff[i] = runif(&g->r) - 0.5;
            }
            assert_int_equal(ap__forest_ir_add_lin(ir, feat, coeff, len, &n->lin_off, NULL), AP_OK);
            n->lin_len = len;
            n->lin_const = runif(&g->r) - 0.5;
        }
        return;
    }
    n->feature = rint_(&g->r, ir->num_features);
    n->default_left = (uint8_t)rint_(&g->r, 2);
    if (g->allow_cat && rint_(&g->r, 4) == 0) {
        n->kind = AP_SPLIT_CAT;
        uint32_t words[4];
        uint32_t nw = 1 + (uint32_t)rint_(&g->r, 3);
        for (uint32_t i = 0; i < nw; i++)
            words[i] = (uint32_t)rnext(&g->r);
        assert_int_equal(ap__forest_ir_add_cat(ir, words, nw, &n->cat_off, NULL), AP_OK);
        n->cat_nwords = nw;
        n->cat_oor_left = (uint8_t)rint_(&g->r, 2);
    } else {
        n->kind = AP_SPLIT_NUM;
        n->missing = (uint8_t)rint_(&g->r, 1 + g->miss_types); /* NAN, NONE, ZERO */
        n->threshold = rint_(&g->r, 2) ? g->pool[n->feature % 16][rint_(&g->r, POOL)]
                                       : random_threshold(&g->r, ir->precision);
    }
    n->left = (*nnext)++;
    n->right = (*nnext)++;
    /* tr->nodes may not move: build_node only writes inside the tree */
    build_node(g, tr, nnext, n->left, depth + 1, maxdepth);
    build_node(g, tr, nnext, tr->nodes[k].right, depth + 1, maxdepth);
}

/* A random forest; the IR's own validator must accept it. vec: -1 random,
   else the vector-tree mode below. */
static void random_ir_v(ap_forest_ir *ir, uint64_t seed, int prec, int big, int vec)
{
    gen g = {.r = {seed * 0x9E3779B97F4A7C15ull + 1},
             .rv = {seed * 0xBF58476D1CE4E5B9ull + 3},
             .ir = ir};
    /* 0: scalar trees only; 1: some vector trees; 2: all vector trees */
    int vec_mode = rint_(&g.rv, 3);
    if (vec >= 0)
        vec_mode = vec;
    ap__forest_ir_init(ir);
    ir->precision = prec;
    ir->num_features = 1 + rint_(&g.r, big ? 40 : 12);
    ir->num_groups = rint_(&g.r, 3) ? 1 : 2 + rint_(&g.r, 3);
    if (vec_mode && ir->num_groups == 1 && rint_(&g.rv, 4))
        ir->num_groups = 2 + rint_(&g.rv, 3);
    g.allow_cat = rint_(&g.r, 2);
    g.allow_lin = rint_(&g.r, 3) == 0;
    g.miss_types = rint_(&g.r, 3);
    for (int f = 0; f < 16; f++)
        for (int k = 0; k < POOL; k++)
            g.pool[f][k] = random_threshold(&g.r, prec);
    ir->base_score = malloc((size_t)ir->num_groups * sizeof *ir->base_score);
    assert_non_null(ir->base_score);
    for (int32_t k = 0; k < ir->num_groups; k++)
        ir->base_score[k] = rint_(&g.r, 3) ? runif(&g.r) - 0.5 : 0.0;
    ir->average_output = prec == AP_PREC_F64 && rint_(&g.r, 4) == 0;
    ir->transform = (ap_transform)rint_(&g.r, 7);
    ir->sigmoid_scale = rint_(&g.r, 2) ? 1.0 : 0.5 + runif(&g.r);
    int ntrees = 1 + rint_(&g.r, big ? 120 : 30);
    int dart = rint_(&g.r, 4) == 0;
    for (int t = 0; t < ntrees; t++) {
        int maxdepth = rint_(&g.r, big ? 9 : 7);
        int32_t cap = (1 << (maxdepth + 1)) - 1;
        ap_ir_tree *tr = ap__forest_ir_add_tree(ir, cap, NULL);
        assert_non_null(tr);
        tr->group = t % ir->num_groups;
        g.vec_tree = vec_mode == 2 || (vec_mode == 1 && rint_(&g.rv, 2));
        if (g.vec_tree)
            tr->group = AP_GROUP_ALL;
        if (dart)
            tr->weight = runif(&g.r) * 1.5;
        int32_t nnext = 1;
        build_node(&g, tr, &nnext, 0, 0, maxdepth);
        tr->nnodes = nnext; /* trailing unused slots dropped */
    }
    ap_error err = {0};
    int rc = ap__forest_ir_validate(ir, "random", &err);
    if (rc != AP_OK)
        fail_msg("seed %llu: generated IR invalid: %s", (unsigned long long)seed, err.msg);
}

static void random_ir(ap_forest_ir *ir, uint64_t seed, int prec, int big)
{
    random_ir_v(ir, seed, prec, big, -1);
}

/* Row values aimed at the edges of this forest's splits. */
static double row_value(rng *r, const ap_forest_ir *ir)
{
    int k = rint_(r, 12);
    if (k == 0)
        return NAN;
    if (k <= 2)
        return special_value(r);
    if (k <= 4)
        return (runif(r) - 0.5) * 8.0;
    if (k == 5)
        return (double)(rint_(r, 100) - 2) + (rint_(r, 2) ? 0.0 : runif(r) - 0.5);
    /* a threshold of the forest, maybe nudged */
    const ap_ir_tree *tr = &ir->trees[rint_(r, ir->ntrees)];
    const ap_ir_node *n = &tr->nodes[rint_(r, tr->nnodes)];
    double t = n->kind == AP_SPLIT_NUM ? n->threshold : special_value(r);
    if (!isfinite(t))
        return t;
    switch (rint_(r, 6)) {
    case 0:
        return nextafter(t, INFINITY);
    case 1:
        return nextafter(t, -INFINITY);
    case 2: { /* float rounding midpoints of F32 thresholds, and their neighbours */
        float tf = (float)t;
        double m = ((double)nextafterf(tf, -INFINITY) + (double)tf) / 2;
        int s = rint_(r, 3);
        return s == 0 ? m : nextafter(m, s == 1 ? INFINITY : -INFINITY);
    }
    case 3: {
        float tf = (float)t;
        double m = ((double)nextafterf(tf, INFINITY) + (double)tf) / 2;
        int s = rint_(r, 3);
        return s == 0 ? m : nextafter(m, s == 1 ? INFINITY : -INFINITY);
    }
    default:
        return t;
    }
}

/* nan_free: no NaN at all (the engine's unchecked fast paths); otherwise
   NaN in odd rows only, so blocks mix both. */
static double *random_rows(const ap_forest_ir *ir, size_t nrows, uint64_t seed, int nan_free)
{
    rng r = {seed * 0xD1B54A32D192ED03ull + 7};
    double *X = malloc(nrows * (size_t)ir->num_features * sizeof *X);
    assert_non_null(X);
    for (size_t i = 0; i < nrows * (size_t)ir->num_features; i++)
        X[i] = row_value(&r, ir);
    for (size_t i = 0; i < nrows; i += nan_free ? 1 : 2)
        for (int32_t f = 0; f < ir->num_features; f++)
            if (isnan(X[i * ir->num_features + f]))
                X[i * ir->num_features + f] = 0.25;
    return X;
}

static void compare(const ap_forest_ir *ir, const ap_engine *e, const double *X, size_t nrows,
                    int raw, uint64_t seed)
{
    int nout = raw ? ir->num_groups : ap__forest_ir_num_outputs(ir);
    /* slack: the transforms write num_groups values in some builds */
    size_t cap = nrows * (size_t)nout + (size_t)ir->num_groups;
    double *got = calloc(cap, sizeof *got), *want = calloc(cap, sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    for (size_t r = 0; r < nrows; r++)
        ap__forest_ir_predict_ref(ir, X + r * (size_t)ir->num_features, raw, want + r * nout);
    /* the full engine, then the quantized one with each binning (issue 12:
       bitwise identical to the reference, as the full engine is) */
    ap_qengine *q = NULL;
    ap_error err = {0};
    if (ap__qengine_compile(ir, &q, &err) != AP_OK)
        fail_msg("seed %llu: quantized engine refused: %s", (unsigned long long)seed, err.msg);
    for (int pass = 0; pass < 3; pass++) {
        const char *which = pass == 0 ? "engine" : pass == 1 ? "quantized" : "quantized-scalar";
        memset(got, 0, cap * sizeof *got);
        if (pass == 0) {
            ap__engine_predict(e, X, nrows, got, raw ? AP_PREDICT_RAW : 0);
        } else {
            ap__qengine_force_scalar(q, pass == 2);
            ap__qengine_predict(q, X, nrows, got, raw ? AP_PREDICT_RAW : 0);
        }
        for (size_t i = 0; i < nrows * (size_t)nout; i++)
            if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
                fail_msg("seed %llu prec %d raw %d nrows %zu: row %zu output %zu: %s %.17g "
                         "reference %.17g",
                         (unsigned long long)seed, ir->precision, raw, nrows, i / nout, i % nout,
                         which, got[i], want[i]);
    }
    ap__qengine_free(q);
    free(got);
    free(want);
}

static void check_seed_v(uint64_t seed, int prec, int big, int vec, const size_t *sizes,
                         int nsizes)
{
    ap_forest_ir ir;
    random_ir_v(&ir, seed, prec, big, vec);
    ap_engine *e = NULL;
    ap_error err = {0};
    assert_int_equal(ap__engine_compile(&ir, &e, &err), AP_OK);
    for (int s = 0; s < nsizes; s++) {
        for (int nan_free = 0; nan_free < 2; nan_free++) {
            double *X = random_rows(&ir, sizes[s], seed + (uint64_t)s, nan_free);
            compare(&ir, e, X, sizes[s], 1, seed);
            compare(&ir, e, X, sizes[s], 0, seed);
            free(X);
        }
    }
    ap__engine_free(e);
    ap__forest_ir_free(&ir);
}

static void check_seed(uint64_t seed, int prec, int big, const size_t *sizes, int nsizes)
{
    check_seed_v(seed, prec, big, -1, sizes, nsizes);
}

static void test_random_f32(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 64};
    for (uint64_t seed = 1; seed <= 150; seed++)
        check_seed(seed, AP_PREC_F32, 0, sizes, 3);
}

static void test_random_f64(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 64};
    for (uint64_t seed = 1; seed <= 150; seed++)
        check_seed(seed, AP_PREC_F64, 0, sizes, 3);
}

static void test_random_big_batches(void **state)
{
    (void)state;
    static const size_t sizes[] = {1000};
    for (uint64_t seed = 500; seed < 506; seed++) {
        check_seed(seed, AP_PREC_F32, 1, sizes, 1);
        check_seed(seed, AP_PREC_F64, 1, sizes, 1);
    }
}

/* Vector trees in every walk: mixed with scalar trees and alone, every
   block and tile remainder, with and without NaN. */
static void test_vector_trees(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 64, 1000};
    for (uint64_t seed = 600; seed < 604; seed++)
        for (int vec = 1; vec <= 2; vec++) {
            check_seed_v(seed, AP_PREC_F32, 1, vec, sizes, 4);
            check_seed_v(seed, AP_PREC_F64, 1, vec, sizes, 4);
        }
}

/* The IR's definition of a vector tree: the same as num_groups scalar trees
   (one per group, leaf value leaf_vec[vec_off + g]) at its place in tree
   order. Each random forest with vector trees is expanded that way; the
   reference on the expansion must equal the reference and the engine on the
   vector forest, bit for bit, average_output included. */
static void expand_vectors(const ap_forest_ir *ir, ap_forest_ir *x)
{
    ap__forest_ir_init(x);
    x->precision = ir->precision;
    x->num_features = ir->num_features;
    x->num_groups = ir->num_groups;
    x->average_output = ir->average_output;
    x->transform = ir->transform;
    x->sigmoid_scale = ir->sigmoid_scale;
    x->base_score = malloc((size_t)ir->num_groups * sizeof *x->base_score);
    assert_non_null(x->base_score);
    memcpy(x->base_score, ir->base_score, (size_t)ir->num_groups * sizeof *x->base_score);
    uint32_t off;
    assert_int_equal(ap__forest_ir_add_cat(x, ir->cat_words, ir->ncat_words, &off, NULL), AP_OK);
    assert_int_equal(ap__forest_ir_add_lin(x, ir->lin_feat, ir->lin_coeff, ir->nlin, &off, NULL),
                     AP_OK);
    for (int32_t t = 0; t < ir->ntrees; t++) {
        const ap_ir_tree *tr = &ir->trees[t];
        int vec = tr->group == AP_GROUP_ALL;
        for (int32_t g = 0; g < (vec ? ir->num_groups : 1); g++) {
            ap_ir_tree *d = ap__forest_ir_add_tree(x, tr->nnodes, NULL);
            assert_non_null(d);
            memcpy(d->nodes, tr->nodes, (size_t)tr->nnodes * sizeof *d->nodes);
            d->group = vec ? g : tr->group;
            d->weight = tr->weight;
            for (int32_t i = 0; vec && i < tr->nnodes; i++)
                if (d->nodes[i].kind == AP_SPLIT_LEAF)
                    d->nodes[i].value = ir->leaf_vec[d->nodes[i].vec_off + (uint32_t)g];
        }
    }
    assert_int_equal(ap__forest_ir_validate(x, "expanded", NULL), AP_OK);
}

static void test_vector_equals_scalar_trees(void **state)
{
    (void)state;
    int checked = 0;
    for (uint64_t seed = 1; seed <= 60; seed++) {
        ap_forest_ir ir, x;
        random_ir_v(&ir, seed, seed % 2 ? AP_PREC_F32 : AP_PREC_F64, 0, 1 + (int)(seed % 2));
        expand_vectors(&ir, &x);
        assert_true(x.ntrees >= ir.ntrees);
        checked += x.ntrees > ir.ntrees;
        ap_engine *e;
        assert_int_equal(ap__engine_compile(&ir, &e, NULL), AP_OK);
        const size_t nrows = 40;
        double *X = random_rows(&ir, nrows, seed, 0);
        for (int raw = 0; raw < 2; raw++) {
            int nout = raw ? ir.num_groups : ap__forest_ir_num_outputs(&ir);
            double want[8], ref[8], got[8];
            for (size_t r = 0; r < nrows; r++) {
                const double *row = X + r * (size_t)ir.num_features;
                ap__forest_ir_predict_ref(&x, row, raw, want);
                ap__forest_ir_predict_ref(&ir, row, raw, ref);
                ap__engine_predict(e, row, 1, got, raw ? AP_PREDICT_RAW : 0);
                if (memcmp(want, ref, (size_t)nout * sizeof *want) ||
                    memcmp(want, got, (size_t)nout * sizeof *want))
                    fail_msg("seed %llu raw %d row %zu: expanded %.17g, vector ref %.17g, "
                             "engine %.17g (output 0)",
                             (unsigned long long)seed, raw, r, want[0], ref[0], got[0]);
            }
        }
        free(X);
        ap__engine_free(e);
        ap__forest_ir_free(&ir);
        ap__forest_ir_free(&x);
    }
    assert_true(checked > 20); /* most forests had vector trees with several groups */
}

/* A vector leaf's values must lie inside leaf_vec and be finite. */
static void test_vector_validate(void **state)
{
    (void)state;
    ap_forest_ir ir;
    ap__forest_ir_init(&ir);
    ir.num_features = 1;
    ir.num_groups = 3;
    ir.base_score = calloc(3, sizeof *ir.base_score);
    ap_ir_tree *tr = ap__forest_ir_add_tree(&ir, 3, NULL);
    assert_non_null(tr);
    tr->group = AP_GROUP_ALL;
    tr->nodes[0] = (ap_ir_node){.kind = AP_SPLIT_NUM, .feature = 0, .left = 1, .right = 2};
    tr->nodes[1] = (ap_ir_node){.kind = AP_SPLIT_LEAF};
    tr->nodes[2] = (ap_ir_node){.kind = AP_SPLIT_LEAF};
    const double v[3] = {1, 2, 3};
    assert_int_equal(ap__forest_ir_add_vec(&ir, v, &tr->nodes[1].vec_off, NULL), AP_OK);
    assert_int_equal(ap__forest_ir_add_vec(&ir, v, &tr->nodes[2].vec_off, NULL), AP_OK);
    assert_int_equal(ap__forest_ir_validate(&ir, "vec", NULL), AP_OK);
    ap_error err = {0};
    tr->nodes[2].vec_off = 4; /* 4 + 3 > 6 values */
    assert_int_equal(ap__forest_ir_validate(&ir, "vec", &err), AP_EFORMAT);
    assert_non_null(strstr(err.msg, "tree 0 node 2: leaf vector out of range"));
    tr->nodes[2].vec_off = 3;
    ir.leaf_vec[4] = NAN;
    assert_int_equal(ap__forest_ir_validate(&ir, "vec", &err), AP_EFORMAT);
    assert_non_null(strstr(err.msg, "leaf value of group 1 not finite"));
    ir.leaf_vec[4] = 2;
    tr->nodes[1].lin_len = 1;
    assert_int_equal(ap__forest_ir_validate(&ir, "vec", &err), AP_EFORMAT);
    assert_non_null(strstr(err.msg, "linear leaf in a vector tree"));
    tr->nodes[1].lin_len = 0;
    tr->group = -2;
    assert_int_equal(ap__forest_ir_validate(&ir, "vec", &err), AP_EFORMAT);
    assert_non_null(strstr(err.msg, "output group -2 out of range"));
    ap__forest_ir_free(&ir);
}

/* Hand-checked F32 edges: XGBoost compares (float)x < (float)t. With
   t = 1.0f, x = 1 - 2^-25 is the midpoint between 1 and the float below it;
   ties-to-even rounds it up to 1.0f (mantissa of 1 is even), so it goes
   right; one double ulp below, it rounds down and goes left. A single stump
   with leaves -1 (left) and +1 (right) and base score 0. */
static void test_f32_rounding_edges(void **state)
{
    (void)state;
    ap_forest_ir ir;
    ap__forest_ir_init(&ir);
    ir.precision = AP_PREC_F32;
    ir.num_features = 1;
    ir.base_score = calloc(1, sizeof *ir.base_score);
    ap_ir_tree *tr = ap__forest_ir_add_tree(&ir, 3, NULL);
    assert_non_null(tr);
    tr->nodes[0] = (ap_ir_node){.kind = AP_SPLIT_NUM, .feature = 0, .left = 1, .right = 2,
                                .threshold = 1.0, .default_left = 1};
    tr->nodes[1] = (ap_ir_node){.kind = AP_SPLIT_LEAF, .value = -1.0};
    tr->nodes[2] = (ap_ir_node){.kind = AP_SPLIT_LEAF, .value = 1.0};
    assert_int_equal(ap__forest_ir_validate(&ir, "stump", NULL), AP_OK);
    ap_engine *e;
    assert_int_equal(ap__engine_compile(&ir, &e, NULL), AP_OK);
    const double mid = 1.0 - ldexp(1.0, -25);
    const double X[] = {mid, nextafter(mid, 0.0), 1.0, 0.5, NAN, 1e39};
    const double want[] = {1.0, -1.0, 1.0, -1.0, -1.0 /* default left */, 1.0};
    double got[6];
    ap__engine_predict(e, X, 6, got, AP_PREDICT_RAW);
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == want[i]);
    ap__engine_free(e);
    ap__forest_ir_free(&ir);
}

/* AP_TEST_THREADED: 8 threads predict on one shared engine at once; each
   must get the reference answers (the engine is read-only). */
typedef struct thread_arg {
    const ap_forest_ir *ir;
    const ap_engine *e;
    const double *X;
    size_t nrows;
    const double *want;
    int ok;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    double *got = malloc(a->nrows * (size_t)a->ir->num_groups * sizeof *got);
    a->ok = got != NULL;
    for (int rep = 0; rep < 20 && a->ok; rep++) {
        /* alternate single-row and batch calls */
        if (rep % 2)
            ap__engine_predict(a->e, a->X, a->nrows, got, AP_PREDICT_RAW);
        else
            for (size_t r = 0; r < a->nrows; r++)
                ap__engine_predict(a->e, a->X + r * (size_t)a->ir->num_features, 1,
                                  got + r * (size_t)a->ir->num_groups, AP_PREDICT_RAW);
        a->ok = memcmp(got, a->want, a->nrows * (size_t)a->ir->num_groups * sizeof *got) == 0;
    }
    free(got);
    return NULL;
}

static void test_threads_share_engine(void **state)
{
    (void)state;
    ap_forest_ir ir;
    random_ir(&ir, 77, AP_PREC_F64, 1);
    ap_engine *e;
    assert_int_equal(ap__engine_compile(&ir, &e, NULL), AP_OK);
    const size_t nrows = 50;
    double *X = random_rows(&ir, nrows, 78, 0);
    double *want = malloc(nrows * (size_t)ir.num_groups * sizeof *want);
    assert_non_null(want);
    for (size_t r = 0; r < nrows; r++)
        ap__forest_ir_predict_ref(&ir, X + r * (size_t)ir.num_features, 1,
                                 want + r * (size_t)ir.num_groups);
    pthread_t th[8];
    thread_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (thread_arg){&ir, e, X, nrows, want, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_true(args[i].ok);
    }
    free(X);
    free(want);
    ap__engine_free(e);
    ap__forest_ir_free(&ir);
}

static void test_too_many_groups(void **state)
{
    (void)state;
    ap_forest_ir ir;
    random_ir(&ir, 3, AP_PREC_F64, 0);
    int32_t groups = ir.num_groups;
    ir.num_groups = 5000; /* beyond the engine's stack scratch */
    ap_engine *e = NULL;
    ap_error err = {0};
    assert_int_equal(ap__engine_compile(&ir, &e, &err), AP_EUNSUPPORTED);
    assert_null(e);
    assert_non_null(strstr(err.msg, "5000"));
    ir.num_groups = groups;
    ap__forest_ir_free(&ir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_rounding_edges),
        cmocka_unit_test(test_random_f32),
        cmocka_unit_test(test_random_f64),
        cmocka_unit_test(test_random_big_batches),
        cmocka_unit_test(test_vector_trees),
        cmocka_unit_test(test_vector_equals_scalar_trees),
        cmocka_unit_test(test_vector_validate),
        cmocka_unit_test(test_threads_share_engine),
        cmocka_unit_test(test_too_many_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
