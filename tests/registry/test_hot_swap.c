/*
 * Hot reload under load (AP_TEST_THREADED: also runs under TSan).
 *
 * Four reader threads acquire, predict and release in a loop — "reversal"
 * directly and the ensemble "meta" that uses it — while the main thread swaps
 * reversal between versions 1 and 2 of the demo repository as fast as it
 * loads. Every request must succeed, and every answer must be exactly what
 * version 1 or version 2 gives (computed before the threads start), matching
 * the version the request holds: nobody sees a half-loaded model. ASan
 * checks that old versions are freed once, after their last holder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "alphapulse.h"

#define READERS 4
#define SWAP_SECONDS 1.5

static ap_registry *reg;
static double row[AP_FEATURE_COUNT];
static double want_rev[3], want_meta[3]; /* by reversal version 1, 2 */
static atomic_int stop, failures;
static atomic_long requests, seen[3];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *reader(void *arg)
{
    (void)arg;
    ap_error err;
    while (!atomic_load(&stop)) {
        ap_model *m;
        double p, c;
        if (ap_registry_acquire(reg, "reversal", &m, &err) != AP_OK) {
            atomic_fetch_add(&failures, 1);
            continue;
        }
        ap_model_info in;
        ap_model_describe(m, &in);
        if (ap_model_predict(m, row, 1, &p, &c, NULL, &err) != AP_OK || in.version < 1 ||
            in.version > 2 || p != want_rev[in.version])
            atomic_fetch_add(&failures, 1);
        else
            atomic_fetch_add(&seen[in.version], 1);
        ap_model_release(m);
        /* the ensemble evaluates whichever reversal is current: v1's or v2's answer */
        if (ap_registry_acquire(reg, "meta", &m, &err) != AP_OK ||
            ap_model_predict(m, row, 1, &p, &c, NULL, &err) != AP_OK ||
            (p != want_meta[1] && p != want_meta[2]))
            atomic_fetch_add(&failures, 1);
        ap_model_release(m);
        atomic_fetch_add(&requests, 2);
    }
    return NULL;
}

static double predict_now(const char *name)
{
    ap_model *m;
    ap_error err;
    double p;
    assert_int_equal(ap_registry_acquire(reg, name, &m, &err), AP_OK);
    assert_int_equal(ap_model_predict(m, row, 1, &p, NULL, NULL, &err), AP_OK);
    ap_model_release(m);
    return p;
}

static void test_swap_under_load(void **state)
{
    (void)state;
    char repo[4096];
    const char *root = getenv("AP_ROOT");
    snprintf(repo, sizeof repo, "%s/examples/models", root ? root : ".");
    ap_error err;
    assert_int_equal(ap_registry_open(repo, NULL, &reg, &err), AP_OK);
    assert_int_equal(ap_registry_load_all(reg, NULL, NULL, &err), 0);
    for (int j = 0; j < AP_FEATURE_COUNT; j++)
        row[j] = 0.01 * (j + 1);
    for (uint32_t v = 1; v <= 2; v++) {
        assert_int_equal(ap_registry_load(reg, "reversal", v, &err), AP_OK);
        want_rev[v] = predict_now("reversal");
        want_meta[v] = predict_now("meta");
    }
    assert_true(want_rev[1] != want_rev[2]);

    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, NULL), 0);
    int swaps = 0, swap_errors = 0;
    double t0 = now_s();
    while (now_s() - t0 < SWAP_SECONDS) {
        if (ap_registry_load(reg, "reversal", (uint32_t)(swaps % 2) + 1, &err) != AP_OK) {
            swap_errors++;
            print_error("swap failed: %s\n", err.msg);
        }
        swaps++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    ap_model_stats st;
    assert_int_equal(ap_registry_stats(reg, "reversal", &st, &err), AP_OK);
    print_message("%d swaps, %ld requests (v1 answers %ld, v2 answers %ld), %d failed; "
                  "reversal: %llu predictions, last load %.2f ms\n",
                  swaps, atomic_load(&requests), atomic_load(&seen[1]), atomic_load(&seen[2]),
                  atomic_load(&failures), (unsigned long long)st.predictions,
                  (double)st.load_time_ns / 1e6);
    assert_int_equal(swap_errors, 0);
    assert_int_equal(atomic_load(&failures), 0);
    assert_true(swaps >= 4);
    assert_true(atomic_load(&seen[1]) > 0 && atomic_load(&seen[2]) > 0);
    assert_int_equal(st.loads, (uint64_t)swaps + 3);
    ap_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_swap_under_load)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
