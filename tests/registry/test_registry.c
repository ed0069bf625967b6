/* The registry API on the demo repository (examples/models): loading,
   versions, unload rules, statistics, predict entry points. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alphapulse.h"

static char repo[4096];

static ap_registry *open_demo(void)
{
    ap_registry *reg;
    ap_error err;
    if (ap_registry_open(repo, NULL, &reg, &err) != AP_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(ap_registry_load_all(reg, NULL, NULL, &err), 0);
    return reg;
}

/* A full alphapulse-v1 row with plausible values (every feature finite). */
static void feature_row(double *row)
{
    for (int j = 0; j < AP_FEATURE_COUNT; j++)
        row[j] = 0.01 * (j + 1);
}

static void test_load_all_and_describe(void **state)
{
    (void)state;
    ap_registry *reg = open_demo();
    assert_int_equal(ap_registry_count(reg), 7);
    ap_model *m;
    ap_error err;
    assert_int_equal(ap_registry_acquire(reg, "reversal", &m, &err), AP_OK);
    ap_model_info in;
    ap_model_describe(m, &in);
    assert_int_equal(in.version, 2); /* highest version folder */
    assert_string_equal(in.kind_name, "pattern");
    assert_string_equal(in.format, "xgboost");
    assert_int_equal(in.num_inputs, 14);
    assert_int_equal(in.num_trees, 60);
    assert_int_equal(in.pipeline_steps, 3);
    assert_string_equal(ap_model_input_name(m, 0), "price_change");
    ap_model_release(m);
    assert_int_equal(ap_registry_acquire(reg, "nosuch", &m, &err), AP_ENOTFOUND);
    assert_null(m);
    ap_registry_free(reg);
}

static void test_versions_and_unload(void **state)
{
    (void)state;
    ap_registry *reg = open_demo();
    ap_error err;
    ap_model *m2, *m1;
    double row[AP_FEATURE_COUNT], p2, p1, p2b;
    feature_row(row);
    assert_int_equal(ap_registry_acquire(reg, "reversal", &m2, &err), AP_OK);
    assert_int_equal(ap_model_predict(m2, row, 1, &p2, NULL, NULL, &err), AP_OK);
    /* swap to version 1 while version 2 is held: the holder keeps a working v2 */
    assert_int_equal(ap_registry_load(reg, "reversal", 1, &err), AP_OK);
    assert_int_equal(ap_registry_acquire(reg, "reversal", &m1, &err), AP_OK);
    ap_model_info in;
    ap_model_describe(m1, &in);
    assert_int_equal(in.version, 1);
    assert_int_equal(ap_model_predict(m1, row, 1, &p1, NULL, NULL, &err), AP_OK);
    assert_int_equal(ap_model_predict(m2, row, 1, &p2b, NULL, NULL, &err), AP_OK);
    assert_true(p2 == p2b);
    assert_true(p1 != p2); /* 10 trees vs 60: different models */
    ap_model_release(m2);  /* frees version 2 */
    ap_model_release(m1);
    /* a missing version is refused; version 1 stays */
    assert_int_equal(ap_registry_load(reg, "reversal", 9, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "version 9"));
    ap_model_stats st;
    assert_int_equal(ap_registry_stats(reg, "reversal", &st, &err), AP_OK);
    assert_int_equal(st.version, 1);
    assert_int_equal(st.loads, 2);
    assert_int_equal(st.load_errors, 1);
    assert_true(st.load_time_ns > 0);
    /* members cannot be unloaded under a loaded ensemble */
    assert_int_equal(ap_registry_unload(reg, "bull", &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "ensemble 'meta' uses it"));
    assert_int_equal(ap_registry_unload(reg, "meta", &err), AP_OK);
    assert_int_equal(ap_registry_unload(reg, "bull", &err), AP_OK);
    assert_int_equal(ap_registry_acquire(reg, "bull", &m1, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "not loaded"));
    /* and the ensemble cannot come back without its member */
    assert_int_equal(ap_registry_load(reg, "meta", 0, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "member 'bull'"));
    ap_registry_free(reg);
}

static void test_predict_and_stats(void **state)
{
    (void)state;
    ap_registry *reg = open_demo();
    ap_error err;
    ap_model *m;
    enum { N = 5 };
    double rows[N * AP_FEATURE_COUNT], pred[N], conf[N], outs[N * 6];
    for (int r = 0; r < N; r++)
        feature_row(rows + r * AP_FEATURE_COUNT);
    rows[2 * AP_FEATURE_COUNT + 13] = NAN; /* a missing rsi */
    assert_int_equal(ap_registry_acquire(reg, "meta", &m, &err), AP_OK);
    assert_int_equal(ap_model_predict(m, rows, N, pred, conf, outs, &err), AP_OK);
    for (int r = 0; r < N; r++) {
        assert_true(pred[r] > 0 && pred[r] < 1);
        /* confidence = 1 - population std of the six member outputs */
        double mean = 0, var = 0;
        for (int k = 0; k < 6; k++)
            mean += outs[r * 6 + k] / 6;
        for (int k = 0; k < 6; k++)
            var += (outs[r * 6 + k] - mean) * (outs[r * 6 + k] - mean) / 6;
        assert_true(fabs(conf[r] - (1 - sqrt(var))) < 1e-12);
    }
    /* the raw entry of an ensemble combines given member outputs: same result */
    double p2;
    assert_int_equal(ap_model_predict_raw(m, outs + 6, 1, &p2, NULL, NULL, &err), AP_OK);
    assert_true(p2 == pred[1]);
    ap_model_release(m);

    assert_int_equal(ap_registry_acquire(reg, "bull", &m, &err), AP_OK);
    double x[14], pb, cb;
    for (int j = 0; j < 14; j++) /* bull's own features, in manifest order */
        x[j] = rows[ap_feature_index(ap_model_input_name(m, j))];
    assert_int_equal(ap_model_predict_raw(m, x, 1, &pb, &cb, NULL, &err), AP_OK);
    double pf;
    assert_int_equal(ap_model_predict(m, rows, 1, &pf, NULL, NULL, &err), AP_OK);
    assert_true(pf == pb); /* selecting the features = giving them */
    assert_true(cb == (pb > 0.5 ? pb : 1 - pb));
    ap_model_release(m);

    ap_model_stats st;
    assert_int_equal(ap_registry_stats(reg, "meta", &st, &err), AP_OK);
    assert_int_equal(st.predictions, N + 1);
    assert_int_equal(st.latency_count, 2);
    assert_int_equal(st.errors, 0);
    uint64_t sum = 0;
    for (int i = 0; i < AP_LATENCY_BUCKETS; i++)
        sum += st.latency_buckets[i];
    assert_int_equal(sum, 2);
    assert_true(st.latency_min_ns > 0 && st.latency_min_ns <= st.latency_max_ns);
    assert_true(st.latency_sum_ns >= st.latency_max_ns);
    assert_true(isinf(ap_latency_bucket_bound(AP_LATENCY_BUCKETS - 1)));
    assert_true(ap_latency_bucket_bound(0) == 1e-6);
    /* an error is counted */
    assert_int_equal(ap_model_predict(NULL, rows, 1, pred, NULL, NULL, &err), AP_EINVAL);
    ap_registry_free(reg);
}

/* ---- hostile repositories ----------------------------------------------------- */

static char root_dir[4096];

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

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A fresh folder under build/test-registry holding a copy of the demo's
   "bull" model as <name>. */
static void make_repo(char *dir, size_t size, const char *name)
{
    char path[4600], from[4600];
    snprintf(path, sizeof path, "%s/build/test-registry", root_dir);
    mkdir(path, 0755);
    snprintf(dir, size, "%s/build/test-registry/repoXXXXXX", root_dir);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/%s/1", dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
    static const char *files[] = {"1/version.json", "1/model.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/bull/%s", repo, files[i]);
        snprintf(path, sizeof path, "%s/%s/%s", dir, name, files[i]);
        copy_file(from, path);
    }
    snprintf(path, sizeof path, "%s/%s/manifest.json", dir, name);
    char man[256];
    snprintf(man, sizeof man, "{\"name\": \"%s\", \"kind\": \"regime\", \"target\": \"bull\"}",
             name);
    write_text(path, man);
}

/* Issue #11: loads that fail take no registry room (today 250 ghost loads
   filled the 256 slots for good), and say why in ap_registry_failure. */
static void test_failed_loads_take_no_room(void **state)
{
    (void)state;
    char dir[4600], path[4800], why[512];
    make_repo(dir, sizeof dir, "good");
    snprintf(path, sizeof path, "%s/broken", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/broken/manifest.json", dir);
    write_text(path, "{\"name\": \"broken\", \"kind\": \"regime\"");
    ap_registry *reg;
    ap_error err;
    assert_int_equal(ap_registry_open(dir, NULL, &reg, &err), AP_OK);
    for (int i = 0; i < 2 * AP_REGISTRY_MAX_MODELS; i++) {
        char name[32];
        snprintf(name, sizeof name, "ghost_%d", i);
        assert_int_equal(ap_registry_load(reg, name, 0, &err), AP_ENOTFOUND);
        assert_non_null(strstr(err.msg, "not in the repository"));
        assert_int_not_equal(ap_registry_load(reg, "broken", 0, &err), AP_OK);
    }
    assert_int_equal(ap_registry_count(reg), 0);
    /* a broken folder's reason is kept, a ghost's is not */
    assert_int_equal(ap_registry_failure(reg, "broken", why, sizeof why), 1);
    assert_non_null(strstr(why, "broken/manifest.json"));
    assert_int_equal(ap_registry_failure(reg, "ghost_1", why, sizeof why), 0);
    /* the real model still loads, and its failed attempt is forgotten */
    assert_int_equal(ap_registry_load(reg, "good", 7, &err), AP_ENOTFOUND);
    assert_int_equal(ap_registry_failure(reg, "good", why, sizeof why), 1);
    assert_int_equal(ap_registry_count(reg), 0);
    assert_int_equal(ap_registry_load(reg, "good", 0, &err), AP_OK);
    assert_int_equal(ap_registry_count(reg), 1);
    assert_int_equal(ap_registry_failure(reg, "good", why, sizeof why), 0);
    /* the listing names both folders, with what their manifests say */
    ap_repo_model *list;
    int n;
    assert_int_equal(ap_registry_list(reg, &list, &n, &err), AP_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "broken");
    assert_int_equal(list[0].ok, 0);
    assert_string_equal(list[1].name, "good");
    assert_int_equal(list[1].ok, 1);
    assert_int_equal(list[1].kind, AP_MODEL_REGIME);
    assert_string_equal(list[1].target, "bull");
    ap_registry_listing_free(list);
    ap_registry_free(reg);
}

/* Issue #11: FIFOs and devices are not read (a FIFO used to hang the load, a
   link to /dev/zero read 2 GiB); links are followed inside the repository
   only. */
static void test_fifo_device_symlink(void **state)
{
    (void)state;
    char dir[4600], path[4800], target[4800];
    ap_registry *reg;
    ap_error err;
    alarm(20); /* a blocking open of the FIFO would hang here */
    make_repo(dir, sizeof dir, "m");
    assert_int_equal(ap_registry_open(dir, NULL, &reg, &err), AP_OK);
    snprintf(path, sizeof path, "%s/m/1/model.json", dir);
    snprintf(target, sizeof target, "%s/m/1/real.json", dir);
    assert_int_equal(rename(path, target), 0);
    /* a FIFO in place of the model file */
    assert_int_equal(mkfifo(path, 0644), 0);
    assert_int_equal(ap_registry_load(reg, "m", 0, &err), AP_EIO);
    assert_non_null(strstr(err.msg, "not a regular file"));
    unlink(path);
    /* a link to a device */
    assert_int_equal(symlink("/dev/zero", path), 0);
    assert_int_equal(ap_registry_load(reg, "m", 0, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "outside the repository"));
    unlink(path);
    /* a link to a file outside the repository */
    char outside[4800];
    snprintf(outside, sizeof outside, "%s/outside.json", dir);
    snprintf(path, sizeof path, "%s/m/manifest.json", dir);
    assert_int_equal(rename(path, outside), 0);
    char moved[4800];
    snprintf(moved, sizeof moved, "%s.out", dir);
    assert_int_equal(rename(outside, moved), 0);
    assert_int_equal(symlink(moved, path), 0);
    assert_int_equal(ap_registry_load(reg, "m", 0, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "outside the repository"));
    assert_int_equal(ap_registry_count(reg), 0);
    /* links inside the repository are followed */
    unlink(path);
    assert_int_equal(rename(moved, path), 0);
    snprintf(path, sizeof path, "%s/m/1/model.json", dir);
    assert_int_equal(symlink("real.json", path), 0);
    snprintf(path, sizeof path, "%s/m/2", dir);
    assert_int_equal(symlink("1", path), 0); /* version 2 is a link to version 1 */
    assert_int_equal(ap_registry_load(reg, "m", 0, &err), AP_OK);
    ap_model *m;
    assert_int_equal(ap_registry_acquire(reg, "m", &m, &err), AP_OK);
    ap_model_info in;
    ap_model_describe(m, &in);
    assert_int_equal(in.version, 2);
    ap_model_release(m);
    alarm(0);
    ap_registry_free(reg);
}

int main(void)
{
    const char *root = getenv("AP_ROOT");
    snprintf(repo, sizeof repo, "%s/examples/models", root ? root : ".");
    snprintf(root_dir, sizeof root_dir, "%s", root ? root : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_all_and_describe),
        cmocka_unit_test(test_versions_and_unload),
        cmocka_unit_test(test_predict_and_stats),
        cmocka_unit_test(test_failed_loads_take_no_room),
        cmocka_unit_test(test_fifo_device_symlink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
