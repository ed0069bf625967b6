/*
 * AP_TEST_THREADED: one writer per series appends while readers copy the
 * latest vector with ap_series_latest, and a third thread creates series
 * while lookups run. Every copy a reader gets must be one whole published
 * vector: bar i has close = 100 + i % 997 / 8, volume = i % 13, time = i
 * minutes, so a torn copy (features of two different bars) is detected from
 * the copy alone (close, volume, close_lag_1, volume_lag_1 and the time must
 * all name the same i), and times must never go backwards for one reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alphapulse.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define NBARS 20000
#else
#define NBARS 200000
#endif
#define MIN_US 60000000LL

static double close_of(int64_t i)
{
    return 100 + (double)(i % 997) / 8;
}

typedef struct shared {
    ap_series_store *st;
    ap_series *s;
    atomic_int done;
    atomic_long reads, failures;
} shared;

static void *writer(void *arg)
{
    shared *sh = arg;
    ap_error err = {0};
    for (int64_t i = 0; i < NBARS; i++) {
        double c = close_of(i);
        ap_bar b = {i * MIN_US, c, c + 1, c - 1, c, (double)(i % 13)};
        if (i % 5 == 0) { /* a forming version first: readers may see it, whole */
            ap_bar early = b;
            early.close = early.open;
            early.volume = 0;
            if (ap_series_append(sh->s, &early, &err))
                atomic_fetch_add(&sh->failures, 1);
        }
        if (ap_series_append(sh->s, &b, &err))
            atomic_fetch_add(&sh->failures, 1);
    }
    atomic_store(&sh->done, 1);
    return NULL;
}

static void *reader(void *arg)
{
    shared *sh = arg;
    int ic = ap_feature_index("close"), iv = ap_feature_index("volume");
    int io = ap_feature_index("open");
    int ic1 = ap_feature_index("close_lag_1"), iv1 = ap_feature_index("volume_lag_1");
    double v[AP_FEATURE_COUNT];
    int64_t last_t = -1;
    long n = 0, bad = 0;
    while (!atomic_load(&sh->done) || n == 0) {
        int64_t t;
        ap_series *s = ap_series_find(sh->st, "W", 60);
        if (!s || ap_series_latest(s, v, &t, NULL))
            continue;
        int64_t i = t / MIN_US;
        int whole = v[io] == close_of(i) && (v[ic] == close_of(i) || v[ic] == v[io]) &&
                    (v[iv] == (double)(i % 13) || v[iv] == 0) &&
                    (i == 0 || (v[ic1] == close_of(i - 1) && v[iv1] == (double)((i - 1) % 13)));
        bad += !whole || t < last_t;
        last_t = t;
        n++;
    }
    atomic_fetch_add(&sh->reads, n);
    atomic_fetch_add(&sh->failures, bad);
    return NULL;
}

static void *creator(void *arg)
{
    shared *sh = arg;
    char name[32];
    for (int i = 0; i < 2000; i++) {
        ap_series *s;
        snprintf(name, sizeof name, "C%d", i);
        if (ap_series_open(sh->st, name, 60, 0, &s, NULL) ||
            ap_series_find(sh->st, name, 60) != s)
            atomic_fetch_add(&sh->failures, 1);
    }
    return NULL;
}

static void readers_never_see_torn_vectors(void **state)
{
    (void)state;
    shared sh = {0};
    ap_error err = {0};
    ap_series_config cfg = {.max_series = 4096, .history = 256};
    assert_int_equal(ap_series_store_new(&cfg, &sh.st, &err), 0);
    assert_int_equal(ap_series_open(sh.st, "W", 60, 0, &sh.s, &err), 0);
    pthread_t w, r[2], c;
    assert_int_equal(pthread_create(&r[0], NULL, reader, &sh), 0);
    assert_int_equal(pthread_create(&r[1], NULL, reader, &sh), 0);
    assert_int_equal(pthread_create(&c, NULL, creator, &sh), 0);
    assert_int_equal(pthread_create(&w, NULL, writer, &sh), 0);
    pthread_join(w, NULL);
    pthread_join(r[0], NULL);
    pthread_join(r[1], NULL);
    pthread_join(c, NULL);
    print_message("%ld consistent reads during %d appends\n", atomic_load(&sh.reads), NBARS);
    assert_int_equal(atomic_load(&sh.failures), 0);
    assert_true(atomic_load(&sh.reads) > 0);
    assert_int_equal((int)ap_series_store_count(sh.st), 2001);
    double v[AP_FEATURE_COUNT];
    int64_t t;
    assert_int_equal(ap_series_latest(sh.s, v, &t, &err), 0);
    assert_true(t == (NBARS - 1) * MIN_US);
    ap_series_store_free(sh.st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readers_never_see_torn_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
