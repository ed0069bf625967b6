/*
 * AP_TEST_THREADED: ap_series_store_list (every live series once, roll-ups
 * included, deleted ones skipped, stopping when asked) and ap_series_tail
 * (the latest bars oldest first, equal to what was appended, also on a
 * roll-up and while another thread appends: run under TSan too).
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
#include "series/store_fixture.h"

#define MIN_US 60000000LL

static ap_bar bar_at(int64_t t, double px)
{
    ap_bar b = {t, px, px + 1, px - 1, px + 0.5, 100};
    return b;
}

typedef struct seen {
    char key[16][80];
    int n, stop_after;
} seen;

static int visit(void *ctx, const ap_series *s)
{
    seen *v = ctx;
    snprintf(v->key[v->n++], sizeof v->key[0], "%s/%lld", ap_series_symbol(s),
             (long long)ap_series_timeframe(s));
    return v->stop_after && v->n == v->stop_after;
}

static int has(const seen *v, const char *k)
{
    int c = 0;
    for (int i = 0; i < v->n; i++)
        c += !strcmp(v->key[i], k);
    return c;
}

static void list_live_series(void **state)
{
    ap_series_store *st = mkstore(64, 100);
    ap_series *a, *b, *c;
    ap_error err;
    /* 1m with roll-up: 5m, 15m, 1h, 4h, 1d too (6 series); two plain ones */
    assert_int_equal(ap_series_open(st, "A", 60, AP_SERIES_ROLLUP, &a, &err), 0);
    assert_int_equal(ap_series_open(st, "B", 86400, 0, &b, &err), 0);
    assert_int_equal(ap_series_open(st, "C", 3600, 0, &c, &err), 0);
    seen v = {0};
    assert_int_equal(ap_series_store_list(st, visit, &v), 8);
    assert_int_equal(v.n, 8);
    assert_int_equal(has(&v, "A/60") + has(&v, "A/300") + has(&v, "A/86400"), 3);
    assert_int_equal(has(&v, "B/86400") + has(&v, "C/3600"), 2);
    assert_int_equal(ap_series_delete(st, "C", 3600, &err), 0);
    memset(&v, 0, sizeof v);
    assert_int_equal(ap_series_store_list(st, visit, &v), 7);
    assert_int_equal(has(&v, "C/3600"), 0);
    assert_int_equal(ap_series_store_count(st), 7);
    memset(&v, 0, sizeof v);
    v.stop_after = 2;
    assert_int_equal(ap_series_store_list(st, visit, &v), 2);
    ap_series_store_free(st);
}

static void tail_oldest_first(void **state)
{
    ap_series_store *st = mkstore(64, 50);
    ap_series *s;
    ap_error err;
    assert_int_equal(ap_series_open(st, "T", 60, AP_SERIES_ROLLUP, &s, &err), 0);
    ap_bar out[80];
    assert_int_equal(ap_series_tail(s, 10, out), 0); /* no bar yet */
    /* 70 bars: they wrap the ring of 50 */
    for (int i = 0; i < 70; i++) {
        ap_bar b = bar_at(i * MIN_US, 100 + i);
        assert_int_equal(ap_series_append(s, &b, &err), 0);
    }
    assert_int_equal(ap_series_tail(s, 80, out), 50); /* no more than held */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(out[i].t, (20 + i) * MIN_US);
        assert_true(out[i].close == 100 + 20 + i + 0.5);
    }
    assert_int_equal(ap_series_tail(s, 3, out), 3);
    assert_int_equal(out[2].t, 69 * MIN_US);
    assert_int_equal(out[0].t, 67 * MIN_US);
    /* a roll-up: 5m buckets of the 70 minutes, the last one forming */
    ap_series *r = ap_series_find(st, "T", 300);
    assert_non_null(r);
    assert_int_equal(ap_series_tail(r, 80, out), 14);
    assert_int_equal(out[13].t, 65 * MIN_US);
    assert_true(out[13].close == 100 + 69 + 0.5);
    ap_series_store_free(st);
}

typedef struct feeder {
    ap_series *s;
    atomic_int done;
} feeder;

static void *feed(void *arg)
{
    feeder *f = arg;
    ap_error err;
    for (int i = 0; i < 3000; i++) {
        ap_bar b = bar_at(i * MIN_US, 100 + i);
        if (ap_series_append(f->s, &b, &err) != AP_OK)
            break;
    }
    atomic_store(&f->done, 1);
    return NULL;
}

static void tail_while_appending(void **state)
{
    ap_series_store *st = mkstore(64, 200);
    feeder f = {0};
    ap_error err;
    assert_int_equal(ap_series_open(st, "R", 60, AP_SERIES_ROLLUP, &f.s, &err), 0);
    ap_series *r5 = NULL;
    pthread_t th;
    pthread_create(&th, NULL, feed, &f);
    ap_bar out[200];
    int rounds = 0;
    while (!atomic_load(&f.done) || rounds < 10) {
        size_t n = ap_series_tail(f.s, 200, out);
        for (size_t i = 1; i < n; i++) /* consecutive minutes: never a torn copy */
            assert_int_equal(out[i].t - out[i - 1].t, MIN_US);
        if (!r5)
            r5 = ap_series_find(st, "R", 300);
        if (r5)
            ap_series_tail(r5, 200, out);
        rounds++;
    }
    pthread_join(th, NULL);
    assert_int_equal(ap_series_tail(f.s, 200, out), 200);
    assert_int_equal(out[199].t, 2999 * MIN_US);
    ap_series_store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_live_series),
        cmocka_unit_test(tail_oldest_first),
        cmocka_unit_test(tail_while_appending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
