/*
 * AP_TEST_THREADED: the store's hardening (issue #11): bar spacing must fit
 * the timeframe, bars before 1970 are refused, series can be deleted and
 * created again (held pointers stay safe), tombstones and capacity, appends
 * from many threads without outside locking, and readers racing a delete.
 *
 * Expected values: a series deleted and fed again must equal a fresh store
 * fed the same bars (bitwise); counts below are worked out in comments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse.h"
#include "series/store_fixture.h"
#include "series/bars_csv.h"

#define MIN_US 60000000LL
#define DAY_US (86400 * 1000000LL)

static ap_bar bar_at(int64_t t, double px)
{
    ap_bar b = {t, px, px * 1.01, px * 0.99, px * 1.002, 1000};
    return b;
}

/* Feed a real file completely into SYM/tf: returns the bars appended. */
static size_t feed_file(const char *rel, int64_t tf)
{
    char path[4096];
    const char *root = getenv("AP_ROOT");
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    ap_series_store *st = mkstore(16, 100000);
    ap_series *s;
    ap_error err;
    assert_int_equal(ap_series_open(st, "SYM", tf, AP_SERIES_ROLLUP, &s, &err), 0);
    ap_bars_csv r;
    if (ap__bars_csv_open(&r, path, &err) != AP_OK)
        fail_msg("%s", err.msg);
    ap_bar b;
    size_t n = 0;
    int got;
    while ((got = ap__bars_csv_next(&r, &b, &err)) == 1) {
        if (ap_series_append(s, &b, &err) != AP_OK)
            fail_msg("%s bar %zu: %s", rel, n, err.msg);
        n++;
    }
    assert_int_equal(got, 0);
    ap__bars_csv_close(&r);
    assert_true(ap_series_total(s) == n);
    ap_series_store_free(st);
    return n;
}

static void spacing_fits_the_timeframe(void **state)
{
    (void)state;
    /* real feeds keep working: weekends and holidays are gaps, FX 4h bars
       move with daylight saving time (not aligned), none closer than tf */
    /* every data row is taken (line count minus the header, by wc -l) */
    assert_true(feed_file("tests/data/market/goog_daily.csv", 86400) == 1047);
    assert_true(feed_file("tests/data/market/ttrc_daily.csv", 86400) == 5550);
    assert_true(feed_file("tests/data/market/usdchf_4h.csv", 14400) == 7812);
    ap_series_store *st = mkstore(8, 100);
    ap_series *s;
    ap_error err;
    assert_int_equal(ap_series_open(st, "D", 86400, 0, &s, &err), 0);
    int64_t t0 = 1700006400LL * 1000000; /* 2023-11-15 00:00 UTC */
    ap_bar b = bar_at(t0, 10);
    assert_int_equal(ap_series_append(s, &b, &err), 0);
    /* 1 hour later on a daily series: a 1h feed posted as 1d */
    ap_bar c = bar_at(t0 + 3600 * 1000000LL, 11);
    assert_int_equal(ap_series_append(s, &c, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "less than the timeframe"));
    assert_true(ap_series_total(s) == 1);
    /* the same time updates the forming bar; a day later, or 3 days, is fine */
    c = bar_at(t0, 12);
    assert_int_equal(ap_series_append(s, &c, &err), 0);
    c = bar_at(t0 + DAY_US, 12);
    assert_int_equal(ap_series_append(s, &c, &err), 0);
    c = bar_at(t0 + 4 * DAY_US + 7 * 3600 * 1000000LL, 12); /* unaligned: allowed */
    assert_int_equal(ap_series_append(s, &c, &err), 0);
    assert_true(ap_series_total(s) == 3);
    /* before 1970 */
    ap_series *o;
    assert_int_equal(ap_series_open(st, "OLD", 60, 0, &o, &err), 0);
    b = bar_at(-1, 10);
    assert_int_equal(ap_series_append(o, &b, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "before 1970"));
    b = bar_at(0, 10); /* 1970-01-01 00:00:00 itself is fine */
    assert_int_equal(ap_series_append(o, &b, &err), 0);
    ap_series_store_free(st);
}

/* n bars, one a minute from t0, into s; the series' latest vector in v. */
static void feed(ap_series *s, int64_t t0, int n, double px, double *v)
{
    ap_error err;
    for (int i = 0; i < n; i++) {
        ap_bar b = bar_at(t0 + i * MIN_US, px + 0.01 * i + 0.3 * sin(i));
        if (ap_series_append(s, &b, &err) != AP_OK)
            fail_msg("%s", err.msg);
    }
    if (v)
        assert_int_equal(ap_series_latest(s, v, NULL, &err), 0);
}

static void delete_and_recreate(void **state)
{
    (void)state;
    ap_series_store *st = mkstore(16, 500);
    ap_series *s, *held5m;
    ap_error err;
    assert_int_equal(ap_series_open(st, "P", 60, AP_SERIES_ROLLUP, &s, &err), 0);
    assert_int_equal((int)ap_series_store_count(st), 6); /* 1m + 5m 15m 1h 4h 1d */
    /* the poison of issue #11: a bar from year 5138; every real bar after it
       is refused until the series is dropped */
    int64_t t0 = 1700000040LL * 1000000;
    feed(s, t0, 10, 50, NULL);
    ap_bar poison = bar_at(99999999999LL * 1000000, 50);
    assert_int_equal(ap_series_append(s, &poison, &err), 0);
    ap_bar real = bar_at(t0 + 10 * MIN_US, 50);
    assert_int_equal(ap_series_append(s, &real, &err), AP_EINVAL);
    held5m = ap_series_find(st, "P", 300);
    assert_non_null(held5m);
    /* a rolled-up series alone cannot be dropped */
    assert_int_equal(ap_series_delete(st, "P", 300, &err), AP_ECONFLICT);
    assert_non_null(strstr(err.msg, "rolled up from"));
    assert_int_equal(ap_series_delete(st, "P", 60, &err), 0);
    assert_int_equal((int)ap_series_store_count(st), 0);
    assert_null(ap_series_find(st, "P", 60));
    assert_null(ap_series_find(st, "P", 300));
    assert_int_equal(ap_series_delete(st, "P", 60, &err), AP_ENOTFOUND);
    /* pointers held across the delete stay safe and say so */
    double v[AP_FEATURE_COUNT];
    assert_int_equal(ap_series_latest(s, v, NULL, &err), AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "deleted"));
    assert_int_equal(ap_series_append(s, &real, &err), AP_ENOTFOUND);
    assert_int_equal(ap_series_latest(held5m, v, NULL, &err), AP_ENOTFOUND);
    ap_series_info_t in;
    assert_int_equal(ap_series_info(s, &in), 0);
    assert_int_equal(in.deleted, 1);
    /* opened again: a fresh series (same slot), equal to a new store's */
    ap_series *s2;
    assert_int_equal(ap_series_open(st, "P", 60, AP_SERIES_ROLLUP, &s2, &err), 0);
    assert_ptr_equal(s2, s);
    double got[AP_FEATURE_COUNT], want[AP_FEATURE_COUNT];
    feed(s2, t0, 300, 60, got);
    ap_series_store *ref = mkstore(16, 500);
    ap_series *r;
    assert_int_equal(ap_series_open(ref, "P", 60, AP_SERIES_ROLLUP, &r, &err), 0);
    feed(r, t0, 300, 60, want);
    assert_memory_equal(got, want, sizeof got);
    ap_series *r5 = ap_series_find(ref, "P", 300);
    assert_int_equal(ap_series_latest(held5m, got, NULL, &err), 0); /* revived as a child */
    assert_int_equal(ap_series_latest(r5, want, NULL, &err), 0);
    assert_memory_equal(got, want, sizeof got);
    assert_int_equal(ap_series_info(held5m, &in), 0);
    assert_int_equal(in.rolled_up, 1);
    assert_true(in.base_timeframe_s == 60);
    /* t0 = 1700000040 s is 240 s into its 5-minute bucket (1700000040 mod
       300 = 240); the last bar is 240 + 299*60 = 18180 s after that bucket's
       start, in bucket floor(18180/300) = 60: buckets 0..60, 61 in all */
    assert_true(in.total == 61);
    ap_series_store_free(ref);
    /* a deleted independent series revived as a roll-up child of a new base */
    ap_series *q1d, *q1m;
    assert_int_equal(ap_series_open(st, "Q", 86400, 0, &q1d, &err), 0);
    assert_int_equal(ap_series_delete(st, "Q", 86400, &err), 0);
    assert_int_equal(ap_series_open(st, "Q", 60, AP_SERIES_ROLLUP, &q1m, &err), 0);
    assert_ptr_equal(ap_series_find(st, "Q", 86400), q1d);
    assert_int_equal(ap_series_append(q1d, &real, &err), AP_EINVAL); /* now rolled up */
    ap_series_store_free(st);
}

static void tombstones_and_capacity(void **state)
{
    (void)state;
    /* max_series 4: live series at most 4, keys (live + deleted) at most 8 */
    ap_series_store *st = mkstore(4, 10);
    ap_series *s;
    ap_error err;
    char name[16];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "K%d", i);
        assert_int_equal(ap_series_open(st, name, 60, 0, &s, &err), 0);
        assert_int_equal(ap_series_delete(st, name, 60, &err), 0);
    }
    assert_int_equal((int)ap_series_store_count(st), 0);
    /* a 9th new key: refused, saying why */
    assert_int_equal(ap_series_open(st, "K8", 60, 0, &s, &err), AP_EFULL);
    assert_non_null(strstr(err.msg, "deleted series keeps its slot"));
    /* deleted keys come back, up to max_series live */
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "K%d", i);
        assert_int_equal(ap_series_open(st, name, 60, 0, &s, &err), 0);
    }
    assert_int_equal(ap_series_open(st, "K4", 60, 0, &s, &err), AP_EFULL);
    assert_non_null(strstr(err.msg, "full"));
    assert_int_equal((int)ap_series_store_count(st), 4);
    ap_series_store_free(st);
}

/* ---- threads ------------------------------------------------------------------ */

#define NTHREADS 4
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define PER_THREAD 2000
#else
#define PER_THREAD 20000
#endif

typedef struct appender {
    ap_series *s;
    atomic_long *next; /* the next bar index to take */
    long ok, refused;
} appender;

/* Threads take increasing bar indexes from one counter and append without
   any outside lock: the store serialises them. A thread may be overtaken
   between taking an index and appending (its bar is then older: refused),
   so: every append either succeeds or is refused as older, and at the end
   total = successes, and the last bar is the highest index appended. */
static void *append_loop(void *arg)
{
    appender *a = arg;
    ap_error err;
    for (int k = 0; k < PER_THREAD; k++) {
        long i = atomic_fetch_add(a->next, 1);
        ap_bar b = bar_at(1700000040LL * 1000000 + i * MIN_US, 100 + (double)(i % 50));
        if (ap_series_append(a->s, &b, &err) == AP_OK)
            a->ok++;
        else if (strstr(err.msg, "older"))
            a->refused++;
        else
            fail_msg("unexpected: %s", err.msg);
    }
    return NULL;
}

static void concurrent_appenders(void **state)
{
    (void)state;
    ap_series_store *st = mkstore(16, 1000);
    ap_series *s;
    ap_error err;
    assert_int_equal(ap_series_open(st, "C", 60, AP_SERIES_ROLLUP, &s, &err), 0);
    atomic_long next = 0;
    pthread_t th[NTHREADS];
    appender a[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        a[i] = (appender){s, &next, 0, 0};
        pthread_create(&th[i], NULL, append_loop, &a[i]);
    }
    long ok = 0, refused = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        ok += a[i].ok;
        refused += a[i].refused;
    }
    assert_true(ok + refused == NTHREADS * PER_THREAD);
    ap_series_info_t in;
    assert_int_equal(ap_series_info(s, &in), 0);
    assert_true(in.total == (uint64_t)ok);
    assert_true(in.last_t <= 1700000040LL * 1000000 + (NTHREADS * PER_THREAD - 1) * MIN_US);
    ap_series_store_free(st);
}

typedef struct racer {
    ap_series_store *st;
    ap_series *s;
    atomic_int done;
    atomic_long reads, torn;
} racer;

/* Bar i of the racing writer: close and volume both name i, so a copy that
   mixes two bars is seen from the copy alone. */
static ap_bar race_bar(long i)
{
    ap_bar b = {1700000040LL * 1000000 + i * MIN_US, 0, 0, 0, 0, 0};
    b.close = 100 + (double)(i % 997) / 8;
    b.open = b.high = b.low = b.close;
    b.volume = (double)(i % 13);
    return b;
}

static void *race_reader(void *arg)
{
    racer *r = arg;
    int ic = ap_feature_index("close"), iv = ap_feature_index("volume");
    double v[AP_FEATURE_COUNT];
    int64_t t;
    ap_error err;
    while (!atomic_load(&r->done)) {
        if (ap_series_latest(r->s, v, &t, &err) != AP_OK)
            continue; /* deleted, or no bar yet */
        long i = (long)((t - 1700000040LL * 1000000) / MIN_US);
        ap_bar b = race_bar(i);
        if (v[ic] != b.close || v[iv] != b.volume)
            atomic_fetch_add(&r->torn, 1);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void readers_race_delete(void **state)
{
    (void)state;
    racer r = {.st = mkstore(16, 200)};
    ap_error err;
    assert_int_equal(ap_series_open(r.st, "R", 60, 0, &r.s, &err), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, race_reader, &r);
    for (int round = 0; round < 50; round++) {
        for (long i = 0; i < PER_THREAD / 20; i++) {
            ap_bar b = race_bar(i);
            assert_int_equal(ap_series_append(r.s, &b, &err), 0);
        }
        assert_int_equal(ap_series_delete(r.st, "R", 60, &err), 0);
        ap_series *again;
        assert_int_equal(ap_series_open(r.st, "R", 60, 0, &again, &err), 0);
        assert_ptr_equal(again, r.s);
    }
    atomic_store(&r.done, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.torn), 0);
    ap_series_store_free(r.st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spacing_fits_the_timeframe),
        cmocka_unit_test(delete_and_recreate),
        cmocka_unit_test(tombstones_and_capacity),
        cmocka_unit_test(concurrent_appenders),
        cmocka_unit_test(readers_race_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
