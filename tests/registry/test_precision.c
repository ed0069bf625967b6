/* Precision through the registry (issue 12): the manifest's request, "auto"
   by ap_registry_options.mixed_precision, and what ap_model_info says about
   it. The reduced engine has landed: under mixed precision every demo model
   with an engine of its own (bear's ONNX forest and the XGBoost forests)
   runs reduced, says nothing, keeps fewer bytes than at full precision and
   gives the full predictions bit for bit (quantized trees are exact); only
   the ensemble's combiner stays full, with its note. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alphapulse.h"

static char root_dir[4096], demo[4200];

static ap_registry *open_repo(const char *dir, int mixed)
{
    ap_registry *reg;
    ap_error err;
    ap_registry_options opt;
    ap_registry_options_default(&opt);
    assert_int_equal(opt.mixed_precision, 0);
    opt.mixed_precision = mixed;
    if (ap_registry_open(dir, &opt, &reg, &err) != AP_OK)
        fail_msg("%s", err.msg);
    int failed = ap_registry_load_all(reg, NULL, NULL, &err);
    if (failed != 0)
        fail_msg("%d model(s) refused", failed);
    return reg;
}

static void describe(ap_registry *reg, const char *name, ap_model_info *in, ap_model **m)
{
    ap_error err;
    if (ap_registry_acquire(reg, name, m, &err) != AP_OK)
        fail_msg("%s", err.msg);
    ap_model_describe(*m, in);
}

static const char *const demo_models[] = {"bear", "bull", "continuation", "reversal",
                                          "sideways", "volatile", "meta"};
#define NDEMO (sizeof demo_models / sizeof demo_models[0])

/* Without mixed precision every demo manifest's "auto" is full, and says so. */
static void test_default_full(void **state)
{
    (void)state;
    ap_registry *reg = open_repo(demo, 0);
    for (size_t i = 0; i < NDEMO; i++) {
        ap_model_info in;
        ap_model *m;
        describe(reg, demo_models[i], &in, &m);
        assert_string_equal(in.precision, "full");
        assert_string_equal(in.precision_requested, "auto");
        assert_string_equal(in.precision_note, "");
        assert_int_equal(in.model_bytes_reduced, 0);
        assert_true(in.precision_deviation == 0);
        if (!strcmp(in.format, "xgboost")) { /* the forest's compiled engine */
            assert_true(in.model_bytes_full > 0);
            assert_true(in.node_bytes > 0);
        }
        if (in.kind == AP_MODEL_ENSEMBLE) /* no engine of its own */
            assert_true(in.node_bytes == 0 && in.model_bytes_full == 0);
        ap_model_release(m);
    }
    ap_registry_free(reg);
}

/* Rows of plausible features, some missing. */
static void feature_rows(double *rows, int n)
{
    for (int r = 0; r < n; r++)
        for (int j = 0; j < AP_FEATURE_COUNT; j++)
            rows[r * AP_FEATURE_COUNT + j] =
                (r * 7 + j) % 11 == 0 ? NAN : 0.013 * (double)((j * 31 + r * 17) % 97) - 0.4;
}

/* mixed_precision: every demo model but the ensemble runs reduced (no note,
   reduced bytes built and fewer than the full ones, the same predictions);
   the ensemble stays full and says why. */
static void test_mixed_reduces_every_forest(void **state)
{
    (void)state;
    ap_registry *full = open_repo(demo, 0), *mixed = open_repo(demo, 1);
    enum { N = 16 };
    double *rows = malloc(sizeof(double) * N * AP_FEATURE_COUNT);
    assert_non_null(rows);
    feature_rows(rows, N);
    for (size_t i = 0; i < NDEMO; i++) {
        ap_model_info a, b;
        ap_model *ma, *mb;
        describe(full, demo_models[i], &a, &ma);
        describe(mixed, demo_models[i], &b, &mb);
        assert_string_equal(b.precision_requested, "auto");
        if (b.kind == AP_MODEL_ENSEMBLE) { /* the combiner is full, and says so */
            assert_string_equal(b.name, "meta");
            assert_string_equal(b.precision, "full");
            assert_non_null(strstr(b.precision_note, "ensemble"));
            assert_int_equal(b.model_bytes_reduced, 0);
        } else {
            if (strcmp(b.precision, "reduced"))
                fail_msg("%s stayed %s under mixed precision: %s", b.name, b.precision,
                         b.precision_note);
            assert_string_equal(b.precision_note, "");
            assert_true(b.model_bytes_reduced > 0);
            if (!(b.model_bytes_reduced < b.model_bytes_full))
                fail_msg("%s: %zu reduced bytes, not fewer than %zu full", b.name,
                         (size_t)b.model_bytes_reduced, (size_t)b.model_bytes_full);
            if (!strcmp(b.format, "xgboost")) /* the quantized engine's nodes */
                assert_true(b.node_bytes > 0 && b.node_bytes < a.node_bytes);
        }
        assert_int_equal(b.model_bytes_full, a.model_bytes_full);
        /* every demo model is a forest (or combines forests): the same numbers */
        double pa[N], pb[N], ca[N], cb[N];
        ap_error err;
        assert_int_equal(ap_model_predict(ma, rows, N, pa, ca, NULL, &err), AP_OK);
        assert_int_equal(ap_model_predict(mb, rows, N, pb, cb, NULL, &err), AP_OK);
        if (memcmp(pa, pb, sizeof pa) || memcmp(ca, cb, sizeof ca))
            fail_msg("%s: %s predictions differ from full", b.name, b.precision);
        ap_model_release(ma);
        ap_model_release(mb);
    }
    free(rows);
    ap_registry_free(full);
    ap_registry_free(mixed);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

/* A model folder <dir>/<name> holding the demo's bull with this precision. */
static void add_model(const char *dir, const char *name, const char *precision)
{
    char path[4800], from[4800], man[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/%s/1", dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
    static const char *files[] = {"1/version.json", "1/model.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/bull/%s", demo, files[i]);
        snprintf(path, sizeof path, "%s/%s/%s", dir, name, files[i]);
        copy_file(from, path);
    }
    snprintf(path, sizeof path, "%s/%s/manifest.json", dir, name);
    snprintf(man, sizeof man, "{\"name\": \"%s\", \"kind\": \"regime\", \"target\": \"bull\", "
             "\"precision\": \"%s\", \"precision_tolerance\": 0.01}", name, precision);
    write_text(path, man);
}

/* A manifest's "full" stays full under mixed precision; its "reduced" runs
   reduced without it. */
static void test_manifest_overrides_auto(void **state)
{
    (void)state;
    char dir[4600], path[4800];
    snprintf(path, sizeof path, "%s/build/test-registry", root_dir);
    mkdir(path, 0755);
    snprintf(dir, sizeof dir, "%s/build/test-registry/precXXXXXX", root_dir);
    assert_non_null(mkdtemp(dir));
    add_model(dir, "pinned_full", "full");
    add_model(dir, "asks_reduced", "reduced");
    for (int mixed = 0; mixed < 2; mixed++) {
        ap_registry *reg = open_repo(dir, mixed);
        ap_model_info in;
        ap_model *m;
        describe(reg, "pinned_full", &in, &m);
        assert_string_equal(in.precision, "full");
        assert_string_equal(in.precision_requested, "full");
        assert_string_equal(in.precision_note, "");
        ap_model_release(m);
        describe(reg, "asks_reduced", &in, &m);
        assert_string_equal(in.precision_requested, "reduced");
        assert_string_equal(in.precision, "reduced"); /* the demo's bull: exact trees */
        assert_string_equal(in.precision_note, "");
        assert_true(in.model_bytes_reduced > 0 && in.node_bytes > 0);
        assert_true(in.model_bytes_reduced < in.model_bytes_full);
        ap_model_release(m);
        ap_registry_free(reg);
    }
}

int main(void)
{
    const char *root = getenv("AP_ROOT");
    snprintf(root_dir, sizeof root_dir, "%s", root ? root : ".");
    snprintf(demo, sizeof demo, "%s/examples/models", root_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_full),
        cmocka_unit_test(test_mixed_reduces_every_forest),
        cmocka_unit_test(test_manifest_overrides_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
