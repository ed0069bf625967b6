/*
 * XGBoost loader: hand-written tiny models (expected values by hand, and
 * confirmed with python3-xgboost 1.7.4 when the files were written), then
 * hostile variants that must fail with a clear message naming file, tree and
 * node, never a crash.
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

/* binary:logistic, base_score 0.5 (margin 0), features a, b.
   tree 0: b < 0.5 (NaN left) ? -0.5 : 0.75;  tree 1: leaf 0.25. */
static const char TINY[] =
    "{\"learner\":{\"attributes\":{},\"feature_names\":[\"a\",\"b\"],\"feature_types\":[],"
    "\"gradient_booster\":{\"model\":{\"gbtree_model_param\":{\"num_parallel_tree\":\"1\","
    "\"num_trees\":\"2\",\"size_leaf_vector\":\"0\"},\"tree_info\":[0,0],\"trees\":["
    "{\"categories\":[],\"categories_nodes\":[],\"categories_segments\":[],"
    "\"categories_sizes\":[],\"default_left\":[1,0,0],\"id\":0,\"left_children\":[1,-1,-1],"
    "\"right_children\":[2,-1,-1],\"split_conditions\":[5E-1,-5E-1,7.5E-1],"
    "\"split_indices\":[1,0,0],\"split_type\":[0,0,0],"
    "\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"2\",\"num_nodes\":\"3\","
    "\"size_leaf_vector\":\"0\"}},"
    "{\"categories\":[],\"categories_nodes\":[],\"categories_segments\":[],"
    "\"categories_sizes\":[],\"default_left\":[0],\"id\":1,\"left_children\":[-1],"
    "\"right_children\":[-1],\"split_conditions\":[2.5E-1],\"split_indices\":[0],"
    "\"split_type\":[0],\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"2\","
    "\"num_nodes\":\"1\",\"size_leaf_vector\":\"0\"}}]},\"name\":\"gbtree\"},"
    "\"learner_model_param\":{\"base_score\":\"5E-1\",\"boost_from_average\":\"1\","
    "\"num_class\":\"0\",\"num_feature\":\"2\",\"num_target\":\"1\"},"
    "\"objective\":{\"name\":\"binary:logistic\",\"reg_loss_param\":{\"scale_pos_weight\":"
    "\"1\"}}},\"version\":[1,7,4]}";

/* reg:squarederror, base 0, one categorical split on f0: categories {1, 3}
   go right (leaf 2), others left (leaf 1), NaN default (right here). */
static const char TINYCAT[] =
    "{\"learner\":{\"feature_names\":[],\"gradient_booster\":{\"model\":{"
    "\"gbtree_model_param\":{\"num_trees\":\"1\"},\"tree_info\":[0],\"trees\":["
    "{\"categories\":[1,3],\"categories_nodes\":[0],\"categories_segments\":[0],"
    "\"categories_sizes\":[2],\"default_left\":[0,0,0],\"left_children\":[1,-1,-1],"
    "\"right_children\":[2,-1,-1],\"split_conditions\":[NaN,1E0,2E0],"
    "\"split_indices\":[0,0,0],\"split_type\":[1,0,0],\"tree_param\":{\"num_nodes\":\"3\"}}"
    "]},\"name\":\"gbtree\"},\"learner_model_param\":{\"base_score\":\"0E0\","
    "\"num_class\":\"0\",\"num_feature\":\"1\"},\"objective\":{\"name\":\"reg:squarederror\"}}}";

/* TINY with the first occurrence of `from` replaced by `to` (caller frees). */
static char *edit(const char *base, const char *from, const char *to)
{
    const char *p = strstr(base, from);
    assert_non_null(p);
    size_t n = strlen(base) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    assert_non_null(s);
    size_t pre = (size_t)(p - base);
    memcpy(s, base, pre);
    strcpy(s + pre, to);
    strcat(s, p + strlen(from));
    return s;
}

static int load(const void *buf, size_t len, ap_forest **f, ap_error *err)
{
    return ap_forest_load_mem(buf, len, AP_FORMAT_AUTO, "tiny.json", f, err);
}

/* Load must fail with `code` and a message containing every given part. */
static void expect_fail(const void *model, size_t len, int code, ...)
{
    ap_forest *f = NULL;
    ap_error err;
    int rc = load(model, len, &f, &err);
    if (rc != code)
        fail_msg("expected %s, got %s: %s", ap_status_name(code), ap_status_name(rc),
                 rc ? err.msg : "(loaded)");
    assert_null(f);
    va_list ap;
    va_start(ap, code);
    for (const char *part; (part = va_arg(ap, const char *)) != NULL;)
        if (!strstr(err.msg, part))
            fail_msg("message '%s' lacks '%s'", err.msg, part);
    va_end(ap);
}

static void expect_edit_fail(const char *from, const char *to, int code, const char *part1,
                             const char *part2)
{
    char *m = edit(TINY, from, to);
    expect_fail(m, strlen(m), code, "tiny.json", part1, part2, NULL);
    free(m);
}

static void test_valid_tiny(void **state)
{
    (void)state;
    ap_forest *f;
    ap_error err;
    assert_int_equal(load(TINY, strlen(TINY), &f, &err), AP_OK);
    assert_int_equal(ap_forest_num_features(f), 2);
    assert_int_equal(ap_forest_num_trees(f), 2);
    assert_string_equal(ap_forest_feature_name(f, 1), "b");
    assert_string_equal(ap_forest_objective(f), "binary:logistic");
    assert_true(ap_forest_is_float32(f));
    double X[] = {0, 0.2, 0, NAN, 0, 0.5, 0, 0.49999999999};
    double m[4], p[4];
    ap_forest_predict(f, X, 4, m, AP_PREDICT_RAW);
    ap_forest_predict(f, X, 4, p, 0);
    /* b=0.2 < 0.5: -0.5 + 0.25; NaN: default left; b=0.5: 0.75 + 0.25;
       0.49999999999 rounds to 0.5f first, so it goes right too */
    assert_true(m[0] == -0.25 && m[1] == -0.25 && m[2] == 1.0 && m[3] == 1.0);
    /* sigmoid(-0.25) = 1/(1+e^0.25) = 0.437823499..., sigmoid(1) = 0.731058578... */
    assert_float_equal(p[0], 0.4378234991, 1e-7);
    assert_float_equal(p[2], 0.7310585786, 1e-7);
    ap_forest_free(f);
}

static void test_valid_base_score_forms(void **state)
{
    (void)state;
    /* 3.x list spelling, same margin; a number also accepted */
    const char *forms[] = {"\"[5E-1]\"", "\"[ 5E-1 ]\"", "0.5"};
    for (size_t k = 0; k < 3; k++) {
        char *m = edit(TINY, "\"5E-1\"", forms[k]);
        ap_forest *f;
        ap_error err;
        assert_int_equal(load(m, strlen(m), &f, &err), AP_OK);
        double X[] = {0, 0.2}, y;
        ap_forest_predict(f, X, 1, &y, AP_PREDICT_RAW);
        assert_true(y == -0.25);
        ap_forest_free(f);
        free(m);
    }
    /* reg:squarederror keeps base_score as the margin: 0.25 + 1.0 */
    char *m = edit(TINY, "binary:logistic", "reg:squarederror");
    char *m2 = edit(m, "\"5E-1\"", "\"[2.5E-1]\"");
    ap_forest *f;
    ap_error err;
    assert_int_equal(load(m2, strlen(m2), &f, &err), AP_OK);
    double X[] = {0, 0.7}, y;
    ap_forest_predict(f, X, 1, &y, 0);
    assert_true(y == 1.25);
    ap_forest_free(f);
    free(m);
    free(m2);
}

static void test_valid_categorical(void **state)
{
    (void)state;
    ap_forest *f;
    ap_error err;
    assert_int_equal(load(TINYCAT, strlen(TINYCAT), &f, &err), AP_OK);
    /* in set {1,3} -> right (2); else left (1); NaN default (right, 2);
       negative and past the 32-bit bitset -> left (1), as XGBoost 1.7.4 */
    double X[] = {1, 3, 0, 2, NAN, -1, 32, 31, 3.7, -0.0};
    double want[] = {2, 2, 1, 1, 2, 1, 1, 1, 2, 1};
    double y[10];
    ap_forest_predict(f, X, 10, y, 0);
    for (int i = 0; i < 10; i++)
        if (y[i] != want[i])
            fail_msg("category %g: got %g want %g", X[i], y[i], want[i]);
    ap_forest_free(f);
}

static void test_valid_ubj(void **state)
{
    (void)state;
    /* the seed corpus holds TINY / TINYCAT re-saved as UBJSON by xgboost */
    const char *root = getenv("AP_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/xgboost_ubj/tiny.ubj", root ? root : ".");
    ap_forest *f;
    ap_error err;
    if (ap_forest_load(path, AP_FORMAT_AUTO, &f, &err) != AP_OK)
        fail_msg("%s", err.msg);
    double X[] = {0, 0.2, 0, 0.5}, m[2];
    ap_forest_predict(f, X, 2, m, AP_PREDICT_RAW);
    assert_true(m[0] == -0.25 && m[1] == 1.0);
    ap_forest_free(f);
}

static void test_bad_children(void **state)
{
    (void)state;
    expect_edit_fail("\"right_children\":[2,-1,-1]", "\"right_children\":[7,-1,-1]", AP_EFORMAT,
                     "tree 0 node 0", "right child 7 out of range");
    expect_edit_fail("\"left_children\":[1,-1,-1]", "\"left_children\":[-5,-1,-1]", AP_EFORMAT,
                     "tree 0 node 0", "left child -5");
    /* node 1 points back at the root: a cycle */
    expect_edit_fail("\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1]",
                     "\"left_children\":[1,0,-1],\"right_children\":[2,2,-1]", AP_EFORMAT,
                     "tree 0 node 1", "out of range");
    /* node 1's children are node 2 (already the root's child) and itself */
    expect_edit_fail("\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1]",
                     "\"left_children\":[1,2,-1],\"right_children\":[2,1,-1]", AP_EFORMAT,
                     "tree 0 node 1", "reached twice");
}

static void test_bad_feature(void **state)
{
    (void)state;
    expect_edit_fail("\"split_indices\":[1,0,0]", "\"split_indices\":[9,0,0]", AP_EFORMAT,
                     "tree 0 node 0", "split feature 9 out of range [0, 2)");
    expect_edit_fail("\"split_indices\":[1,0,0]", "\"split_indices\":[1.5,0,0]", AP_EFORMAT,
                     "tree 0 node 0", "split_indices is not an integer");
}

static void test_bad_counts(void **state)
{
    (void)state;
    expect_edit_fail("\"num_nodes\":\"3\"", "\"num_nodes\":\"99999999999\"", AP_ERANGE,
                     "tree 0", "num_nodes");
    expect_edit_fail("\"num_nodes\":\"3\"", "\"num_nodes\":\"1000000\"", AP_EFORMAT, "tree 0",
                     "has 3 entries but num_nodes is 1000000");
    expect_edit_fail("\"num_trees\":\"2\"", "\"num_trees\":\"2000000000\"", AP_ERANGE,
                     "num_trees", "out of range");
    expect_edit_fail("\"num_trees\":\"2\"", "\"num_trees\":\"3\"", AP_EFORMAT, "num_trees is 3",
                     "trees has 2");
    expect_edit_fail("\"num_class\":\"0\"", "\"num_class\":\"1000000000\"", AP_ERANGE,
                     "num_class", "out of range");
    expect_edit_fail("\"num_feature\":\"2\",\"num_target", "\"num_feature\":\"-4\",\"num_target",
                     AP_ERANGE, "num_feature", "out of range");
    expect_edit_fail("\"split_conditions\":[5E-1,-5E-1,7.5E-1]",
                     "\"split_conditions\":[5E-1,-5E-1]", AP_EFORMAT, "tree 0",
                     "split_conditions has 2 entries but num_nodes is 3");
    expect_edit_fail("\"tree_info\":[0,0]", "\"tree_info\":[0,1]", AP_EFORMAT, "tree 1",
                     "tree_info");
}

static void test_bad_types_and_values(void **state)
{
    (void)state;
    expect_edit_fail("\"left_children\":[1,-1,-1]", "\"left_children\":\"abc\"", AP_EFORMAT,
                     "tree 0", "left_children: expected array, found string");
    expect_edit_fail("\"split_conditions\":[5E-1,-5E-1,7.5E-1]",
                     "\"split_conditions\":[5E-1,\"x\",7.5E-1]", AP_EFORMAT, "tree 0 node 1",
                     "split_conditions is not a finite float");
    expect_edit_fail("\"split_conditions\":[5E-1,-5E-1,7.5E-1]",
                     "\"split_conditions\":[5E-1,1E300,7.5E-1]", AP_EFORMAT, "tree 0 node 1",
                     "not a finite float");
    expect_edit_fail("\"split_conditions\":[5E-1,-5E-1,7.5E-1]",
                     "\"split_conditions\":[5E-1,NaN,7.5E-1]", AP_EFORMAT, "tree 0 node 1",
                     "not a finite float");
    expect_edit_fail("\"default_left\":[1,0,0]", "\"default_left\":[7,0,0]", AP_EFORMAT,
                     "tree 0 node 0", "default_left");
    expect_edit_fail("\"num_nodes\":\"3\"", "\"num_nodes\":[3]", AP_EFORMAT, "tree 0",
                     "num_nodes: expected an integer");
    expect_edit_fail("\"base_score\":\"5E-1\"", "\"base_score\":\"abc\"", AP_EFORMAT,
                     "base_score", "expected a number");
    expect_edit_fail("\"base_score\":\"5E-1\"", "\"base_score\":\"1.5\"", AP_EFORMAT,
                     "base_score", "(0, 1)");
    expect_edit_fail("\"learner_model_param\":{", "\"learner_model_param\":[],\"x\":{", AP_EFORMAT,
                     "learner", "expected object, found array");
    expect_edit_fail("\"binary:logistic\"", "\"reg:frobnicate\"", AP_EUNSUPPORTED,
                     "reg:frobnicate", "not supported");
    expect_edit_fail("\"name\":\"gbtree\"", "\"name\":\"gblinear\"", AP_EUNSUPPORTED,
                     "gblinear", "not supported");
    expect_edit_fail("\"feature_names\":[\"a\",\"b\"]", "\"feature_names\":[\"a\"]", AP_EFORMAT,
                     "feature_names has 1 names", "num_feature is 2");
    /* categorical split whose categories segment runs past the array */
    char *m = edit(TINYCAT, "\"categories_sizes\":[2]", "\"categories_sizes\":[5]");
    expect_fail(m, strlen(m), AP_EFORMAT, "tree 0 node 0", "categories segment", NULL);
    free(m);
    m = edit(TINYCAT, "\"categories\":[1,3]", "\"categories\":[1,300000000]");
    expect_fail(m, strlen(m), AP_ERANGE, "tree 0 node 0", "category 300000000", NULL);
    free(m);
    m = edit(TINYCAT, "\"categories_nodes\":[0]", "\"categories_nodes\":[2]");
    expect_fail(m, strlen(m), AP_EFORMAT, "tree 0 node 0", "without an entry", NULL);
    free(m);
}

static void test_truncated(void **state)
{
    (void)state;
    size_t n = strlen(TINY);
    for (size_t cut = 1; cut < n; cut += 37)
        expect_fail(TINY, cut, AP_EFORMAT, "tiny.json", NULL);
}

static void test_bad_ubj(void **state)
{
    (void)state;
    /* typed float array claiming 2^62 elements: refused before allocating */
    static const unsigned char huge[] = {'{', 'L', 0, 0, 0, 0, 0, 0, 0, 1, 'x', '[', '$', 'd',
                                         '#', 'L', 0x40, 0, 0, 0, 0, 0, 0, 0, '}'};
    expect_fail(huge, sizeof huge, AP_EFORMAT, "larger than the remaining data", NULL);
    /* an uncounted array of 2^31 arrays in a few bytes: count vs bytes */
    static const unsigned char cnt[] = {'{', 'i', 1, 'x', '[', '#', 'l', 0x7f, 0, 0, 0, 'Z', '}'};
    expect_fail(cnt, sizeof cnt, AP_EFORMAT, "count larger than the remaining data", NULL);
    /* negative string length */
    static const unsigned char neg[] = {'{', 'i', 1, 'x', 'S', 'i', 0xff, '}'};
    expect_fail(neg, sizeof neg, AP_EFORMAT, "negative", NULL);
    /* nesting 200 deep */
    unsigned char deep[1 + 3 + 200 + 200 + 1];
    size_t k = 0;
    deep[k++] = '{';
    deep[k++] = 'i';
    deep[k++] = 1;
    deep[k++] = 'x';
    for (int i = 0; i < 200; i++)
        deep[k++] = '[';
    for (int i = 0; i < 200; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    expect_fail(deep, k, AP_EFORMAT, "nesting", NULL);
    /* typed container of zero-size elements */
    static const unsigned char zs[] = {'{', 'i', 1, 'x', '[', '$', 'Z', '#', 'L', 0x7f, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, '}'};
    expect_fail(zs, sizeof zs, AP_EUNSUPPORTED, "typed container", NULL);
    /* a valid UBJ document that is not a model */
    static const unsigned char notmodel[] = {'{', 'i', 1, 'x', 'i', 5, '}'};
    expect_fail(notmodel, sizeof notmodel, AP_EFORMAT, "missing field 'learner'", NULL);
    /* every truncation of a real model fails cleanly */
    const char *root = getenv("AP_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/xgboost_ubj/tinycat.ubj",
             root ? root : ".");
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n > 100);
    for (size_t cut = 1; cut < n; cut += 13)
        expect_fail(buf, cut, AP_EFORMAT, "tiny.json", "UBJSON byte", NULL);
}


/* ---- XGBoost 3.x DART layout, and keys the loader refuses to ignore ---- */

static char *read_all(const char *rel, size_t *len)
{
    const char *root = getenv("AP_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, fp);
    buf[*len] = '\0';
    fclose(fp);
    return buf;
}

/* A CSV of numbers after a header line; an empty field is NaN. */
static int read_csv(const char *rel, double *v, int cap, int *ncols)
{
    size_t len;
    char *buf = read_all(rel, &len);
    char *p = strchr(buf, '\n');
    assert_non_null(p);
    *ncols = 1;
    for (char *q = buf; q < p; q++)
        *ncols += *q == ',';
    int n = 0;
    for (p++; *p; p++) {
        assert_true(n < cap);
        if (*p == ',' || *p == '\n') { /* an empty field */
            v[n++] = NAN;
            continue;
        }
        char *end;
        v[n++] = strtod(p, &end);
        p = end;
        if (*p == '\0')
            break;
    }
    free(buf);
    return n;
}

/* The DART fixtures (tests/data/xgboost/README.md): the 1.7 files and their
   3.x-layout copies, JSON and UBJSON, give python3-xgboost 1.7.4's
   predictions of the 1.7 file, exactly (float32). Before the 3.x layout was
   read, the 3.x files predicted as if every weight were 1. */
static void test_dart_fixtures(void **state)
{
    (void)state;
    double X[256], want[64], want_raw[64];
    int nc, nc1, nc2;
    int nx = read_csv("tests/data/xgboost/input.csv", X, 256, &nc);
    int nw = read_csv("tests/data/xgboost/expected.csv", want, 64, &nc1);
    int nr = read_csv("tests/data/xgboost/expected_raw.csv", want_raw, 64, &nc2);
    assert_int_equal(nc, 3);
    assert_int_equal(nx, 3 * nw);
    assert_int_equal(nw, nr);
    static const char *const files[] = {"dart_1.7.json", "dart_1.7.ubj", "dart_3x.json",
                                        "dart_3x.ubj"};
    for (int k = 0; k < 4; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/data/xgboost/%s", files[k]);
        size_t len;
        char *buf = read_all(rel, &len);
        ap_forest *f;
        ap_error err;
        if (ap_forest_load_mem(buf, len, AP_FORMAT_AUTO, files[k], &f, &err) != AP_OK)
            fail_msg("%s", err.msg);
        free(buf);
        double y[64], m[64];
        ap_forest_predict(f, X, (size_t)nw, y, 0);
        ap_forest_predict(f, X, (size_t)nw, m, AP_PREDICT_RAW);
        for (int i = 0; i < nw; i++)
            if (y[i] != (float)want[i] || m[i] != (float)want_raw[i])
                fail_msg("%s row %d: got %.9g / %.9g, python3-xgboost %.9g / %.9g", files[k], i,
                         y[i], m[i], want[i], want_raw[i]);
        ap_forest_free(f);
    }
}

static double tiny_margin(const char *model, double b)
{
    ap_forest *f;
    ap_error err;
    if (load(model, strlen(model), &f, &err) != AP_OK)
        fail_msg("%s", err.msg);
    double X[2] = {0, b}, y;
    ap_forest_predict(f, X, 1, &y, AP_PREDICT_RAW);
    ap_forest_free(f);
    return y;
}

/* TINY in the 1.x dart layout: {"name":"dart","gbtree":{"name":"gbtree",
   "model":{...}},"weight_drop":outer} (outer NULL: no weight_drop). */
static char *tiny_dart(const char *outer)
{
    char head[128];
    snprintf(head, sizeof head, "\"gradient_booster\":{%s%s%s\"gbtree\":{\"name\":\"gbtree\","
             "\"model\":", outer ? "\"weight_drop\":" : "", outer ? outer : "",
             outer ? "," : "");
    char *a = edit(TINY, "\"gradient_booster\":{\"model\":", head);
    char *b = edit(a, "]},\"name\":\"gbtree\"}", "]}},\"name\":\"dart\"}");
    free(a);
    return b;
}

/* Tree weights, by hand (float products, summed from base 0): TINY's tree 0
   gives -0.5 (b < 0.5) or 0.75, tree 1 0.25. Weights [0.5, 2]:
   b = 0.2: 0.5 * -0.5 + 2 * 0.25 = 0.25;  b = 0.7: 0.5 * 0.75 + 0.5 = 0.875.
   Unweighted: -0.25 and 1.0. */
static void test_weight_drop_layouts(void **state)
{
    (void)state;
    const char *model_at = "\"gbtree_model_param\":";
    /* 3.x: inside the model of a "gbtree" booster */
    char *m = edit(TINY, model_at, "\"weight_drop\":[0.5,2],\"gbtree_model_param\":");
    assert_true(tiny_margin(m, 0.2) == 0.25);
    assert_true(tiny_margin(m, 0.7) == 0.875);
    free(m);
    /* empty list: unit weights */
    m = edit(TINY, model_at, "\"weight_drop\":[],\"gbtree_model_param\":");
    assert_true(tiny_margin(m, 0.2) == -0.25);
    free(m);
    /* 1.x dart layout, and the two together when they agree */
    m = tiny_dart("[0.5,2]");
    assert_true(tiny_margin(m, 0.2) == 0.25);
    char *m2 = edit(m, model_at, "\"weight_drop\":[0.5,2],\"gbtree_model_param\":");
    assert_true(tiny_margin(m2, 0.7) == 0.875);
    free(m2);
    /* ... and when they do not: refused (3.x would take the outer one) */
    m2 = edit(m, model_at, "\"weight_drop\":[1,1],\"gbtree_model_param\":");
    expect_fail(m2, strlen(m2), AP_EFORMAT, "learner.gradient_booster.gbtree.model.weight_drop",
                "differ", NULL);
    free(m2);
    m2 = edit(m, "\"name\":\"gbtree\",\"model\"", "\"name\":\"forest\",\"model\"");
    expect_fail(m2, strlen(m2), AP_EUNSUPPORTED, "gbtree.name is 'forest'", NULL);
    free(m2);
    free(m);
    /* dart layout with the weights only in the model */
    m = tiny_dart(NULL);
    m2 = edit(m, model_at, "\"weight_drop\":[0.5,2],\"gbtree_model_param\":");
    assert_true(tiny_margin(m2, 0.2) == 0.25);
    free(m2);
    free(m);
    /* a list that is not one weight per tree */
    expect_edit_fail(model_at, "\"weight_drop\":[0.5,2,3],\"gbtree_model_param\":", AP_EFORMAT,
                     "weight_drop has 3 weights", "has 2 trees");
    expect_edit_fail(model_at, "\"weight_drop\":[0.5],\"gbtree_model_param\":", AP_EFORMAT,
                     "weight_drop has 1 weights", "has 2 trees");
    expect_edit_fail(model_at, "\"weight_drop\":[0.5,\"x\"],\"gbtree_model_param\":",
                     AP_EFORMAT, "weight_drop[1]", "not a finite float");
    expect_edit_fail(model_at, "\"weight_drop\":{},\"gbtree_model_param\":", AP_EFORMAT,
                     "weight_drop", "expected array");
    m = tiny_dart("[0.5,2,1]");
    expect_fail(m, strlen(m), AP_EFORMAT, "learner.gradient_booster.weight_drop has 3", NULL);
    free(m);
    /* beside a gbtree model: 1.x ignores it, 3.x applies it */
    expect_edit_fail("\"gradient_booster\":{", "\"gradient_booster\":{\"weight_drop\":[0.5,2],",
                     AP_EUNSUPPORTED, "learner.gradient_booster.weight_drop beside a gbtree",
                     NULL);
}

/* XGBoost 3.x's category container: accepted when it records nothing */
static void test_cats(void **state)
{
    (void)state;
    const char *model_at = "\"gbtree_model_param\":";
    const char *empty[] = {"{\"enc\":[],\"feature_segments\":[],\"sorted_idx\":[]}",
                           "{\"enc\":[],\"feature_segments\":[0],\"sorted_idx\":[]}"};
    for (int k = 0; k < 2; k++) {
        char to[160];
        snprintf(to, sizeof to, "\"cats\":%s,%s", empty[k], model_at);
        char *m = edit(TINY, model_at, to);
        assert_true(tiny_margin(m, 0.2) == -0.25);
        free(m);
    }
    expect_edit_fail(model_at,
                     "\"cats\":{\"enc\":[{\"type\":13,\"values\":[3,7]}],\"feature_segments\":"
                     "[0,2],\"sorted_idx\":[0,1]},\"gbtree_model_param\":",
                     AP_EUNSUPPORTED, "learner.gradient_booster.model.cats records categories",
                     "1 encoded features");
    expect_edit_fail(model_at,
                     "\"cats\":{\"enc\":[],\"feature_segments\":[],\"sorted_idx\":[],\"x\":1},"
                     "\"gbtree_model_param\":",
                     AP_EUNSUPPORTED, "unknown key 'x' in learner.gradient_booster.model.cats",
                     NULL);
}

/* Every object refuses a key it does not know, naming key and object; a
   training-only key XGBoost writes is read past. All of these loaded
   before (the keys were ignored). */
static void test_unknown_keys(void **state)
{
    (void)state;
    static const struct {
        const char *at, *where;
    } objs[] = {
        {"{", "the top level"},
        {"\"learner\":{", "in learner "},
        {"\"learner_model_param\":{", "in learner.learner_model_param"},
        {"\"objective\":{", "in learner.objective"},
        {"\"gradient_booster\":{", "in learner.gradient_booster "},
        {"\"model\":{", "in learner.gradient_booster.model "},
        {"\"gbtree_model_param\":{", "in learner.gradient_booster.model.gbtree_model_param"},
        {"{\"categories\":[],", "in learner.gradient_booster.model.trees[0] "},
        {"\"tree_param\":{", "in learner.gradient_booster.model.trees[0].tree_param"},
    };
    for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++) {
        char to[96];
        snprintf(to, sizeof to, "%s\"frob\":1,", objs[k].at);
        char *m = edit(TINY, objs[k].at, to);
        expect_fail(m, strlen(m), AP_EUNSUPPORTED, "unknown key 'frob'", objs[k].where,
                    "refusing rather than ignoring", NULL);
        free(m);
    }
    /* the second tree, and the dart layout's own objects */
    char *m = edit(TINY, "\"id\":1,", "\"id\":1,\"leaf_scale\":[2],");
    expect_fail(m, strlen(m), AP_EUNSUPPORTED,
                "unknown key 'leaf_scale' in learner.gradient_booster.model.trees[1]", NULL);
    free(m);
    char *d = tiny_dart("[0.5,2]");
    m = edit(d, "\"gbtree\":{", "\"gbtree\":{\"frob\":1,");
    expect_fail(m, strlen(m), AP_EUNSUPPORTED,
                "unknown key 'frob' in learner.gradient_booster.gbtree", NULL);
    free(m);
    m = edit(d, "\"gradient_booster\":{", "\"gradient_booster\":{\"frob\":1,");
    expect_fail(m, strlen(m), AP_EUNSUPPORTED, "unknown key 'frob' in learner.gradient_booster ",
                NULL);
    free(m);
    m = edit(d, "\"trees\":[{", "\"trees\":[{\"frob\":1,");
    expect_fail(m, strlen(m), AP_EUNSUPPORTED,
                "unknown key 'frob' in learner.gradient_booster.gbtree.model.trees[0]", NULL);
    free(m);
    free(d);
    /* objective parameter objects are training settings: read past; but a
       *_param that is not an object is not one of them */
    m = edit(TINY, "\"objective\":{", "\"objective\":{\"frob_param\":{\"x\":\"1\"},");
    assert_true(tiny_margin(m, 0.2) == -0.25);
    free(m);
    expect_edit_fail("\"objective\":{", "\"objective\":{\"frob_param\":1,", AP_EUNSUPPORTED,
                     "unknown key 'frob_param' in learner.objective", NULL);
    /* keys XGBoost writes that cannot change a prediction load */
    m = edit(TINY, "\"id\":0,", "\"id\":0,\"loss_changes\":[1,0,0],\"sum_hessian\":[3,1,2],"
             "\"base_weights\":[0,1,2],\"parents\":[2147483647,0,0],");
    char *m2 = edit(m, "\"tree_info\":[0,0]", "\"tree_info\":[0,0],\"iteration_indptr\":[0,1,2]");
    free(m);
    assert_true(tiny_margin(m2, 0.7) == 1.0);
    free(m2);
    /* 1.x places a tree at its id: out of order is refused (3.x refuses too) */
    expect_edit_fail("\"id\":1,", "\"id\":0,", AP_EFORMAT, "tree 1: id is not 1", NULL);
}

/* UBJSON may repeat a key; which one would XGBoost take? Refused. */
static void test_ubj_duplicate_key(void **state)
{
    (void)state;
    size_t len;
    char *ubj = read_all("tests/fuzz/corpus/xgboost_ubj/tiny.ubj", &len);
    /* a second "version" at the top: L <len 7> "version" i 1 */
    static const unsigned char extra[] = {'L', 0, 0, 0, 0, 0, 0, 0, 7, 'v', 'e', 'r', 's',
                                          'i', 'o', 'n', 'i', 1};
    char *dup = malloc(len + sizeof extra);
    assert_non_null(dup);
    assert_true(ubj[0] == '{');
    dup[0] = '{';
    memcpy(dup + 1, extra, sizeof extra);
    memcpy(dup + 1 + sizeof extra, ubj + 1, len - 1);
    expect_fail(dup, len + sizeof extra, AP_EFORMAT, "key 'version' appears twice in the top level",
                NULL);
    /* an unknown key, in UBJSON too */
    memcpy(dup + 1 + 9, "vorsion", 7);
    expect_fail(dup, len + sizeof extra, AP_EUNSUPPORTED, "unknown key 'vorsion'", NULL);
    free(dup);
    free(ubj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tiny),
        cmocka_unit_test(test_valid_base_score_forms),
        cmocka_unit_test(test_valid_categorical),
        cmocka_unit_test(test_valid_ubj),
        cmocka_unit_test(test_bad_children),
        cmocka_unit_test(test_bad_feature),
        cmocka_unit_test(test_bad_counts),
        cmocka_unit_test(test_bad_types_and_values),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_ubj),
        cmocka_unit_test(test_dart_fixtures),
        cmocka_unit_test(test_weight_drop_layouts),
        cmocka_unit_test(test_cats),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_ubj_duplicate_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
