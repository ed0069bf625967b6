/*
 * The series store: rejected bars change nothing, a same-timestamp update
 * equals a fresh computation with the final bar, roll-up buckets equal the
 * buckets aggregated from scratch, lookups with thousands of series, history
 * ring bounds, configuration limits.
 *
 * "Fresh computation" is a new ap_features engine that only ever sees the
 * final bars; the buckets are aggregated here from the raw 1-minute bars with
 * the spec's rule (open of first, max high, min low, close of last, sum of
 * volumes, time = UTC bucket start).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alphapulse.h"
#include "series/store_fixture.h"

typedef struct rng {
    uint64_t s;
} rng;

static double urand(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (double)(r->s >> 11) / 9007199254740992.0;
}

/* A random bar around px (px updated), time t. */
static ap_bar rbar(rng *r, double *px, int64_t t)
{
    double o = *px;
    *px *= exp(0.01 * (urand(r) - 0.5));
    double c = *px;
    double hi = fmax(o, c) * (1 + 0.002 * urand(r)), lo = fmin(o, c) * (1 - 0.002 * urand(r));
    ap_bar b = {t, o, hi, lo, c, floor(100 * urand(r))};
    return b;
}

static void latest(const ap_series *s, double *v, int64_t *t)
{
    ap_error err = {0};
    assert_int_equal(ap_series_latest(s, v, t, &err), 0);
}

#define MIN_US 60000000LL

static void rejections_change_nothing(void **state)
{
    (void)state;
    ap_series_store *st = mkstore(8, 16);
    ap_series *s;
    ap_error err = {0};
    assert_int_equal(ap_series_open(st, "AAA", 60, 0, &s, &err), 0);
    assert_int_equal(ap_series_latest(s, (double[AP_FEATURE_COUNT]){0}, NULL, &err),
                     AP_ENOTFOUND);
    ap_features *fresh;
    assert_int_equal(ap_features_new(&fresh, &err), 0);
    rng r = {42};
    double px = 100;
    ap_bar b;
    for (int i = 0; i < 40; i++) {
        b = rbar(&r, &px, 1000 * MIN_US + i * MIN_US);
        assert_int_equal(ap_series_append(s, &b, &err), 0);
        assert_int_equal(ap_features_push(fresh, &b, NULL, &err), 0);
    }
    double before[AP_FEATURE_COUNT], after[AP_FEATURE_COUNT];
    int64_t t0, t1;
    latest(s, before, &t0);
    ap_bar last;
    assert_int_equal(ap_series_bar(s, 0, &last, &err), 0);

    struct {
        ap_bar bar;
        const char *needle;
    } cases[] = {
        {{b.t - MIN_US, 1, 1, 1, 1, 1}, "older"},
        {{b.t + MIN_US, 1, 1, 1, NAN, 1}, "close"},
        {{b.t + MIN_US, 1, INFINITY, 1, 1, 1}, "high"},
        {{b.t + MIN_US, 1, 1, -INFINITY, 1, 1}, "low"},
        {{b.t + MIN_US, 0, 1, 1, 1, 1}, "open"},
        {{b.t + MIN_US, 1, 1, 1, -2, 1}, "close"},
        {{b.t + MIN_US, 1, 1, 1, 1, -1}, "volume"},
        {{b.t + MIN_US, 1, 1, 1, 1, NAN}, "volume"},
        {{b.t + MIN_US, 1, 1, 1, 1, INFINITY}, "volume"},
        {{b.t + MIN_US, 1, 1, 2, 1.5, 1}, "below low"},
        {{b.t, 1, 1, 2, 1.5, 1}, "below low"}, /* same-timestamp update, invalid */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(ap_series_append(s, &cases[i].bar, &err), AP_EINVAL);
        assert_int_equal(err.code, AP_EINVAL);
        if (!strstr(err.msg, cases[i].needle))
            print_error("case %zu: '%s' lacks '%s'\n", i, err.msg, cases[i].needle);
        assert_non_null(strstr(err.msg, cases[i].needle));
        assert_non_null(strstr(err.msg, "AAA"));
        latest(s, after, &t1);
        assert_memory_equal(before, after, sizeof before);
        assert_true(t0 == t1);
        assert_true(ap_series_total(s) == 40);
        ap_bar now;
        assert_int_equal(ap_series_bar(s, 0, &now, &err), 0);
        assert_memory_equal(&now, &last, sizeof now);
    }
    /* the engine state is untouched too: the next bar gives the fresh result */
    double want[AP_FEATURE_COUNT];
    b = rbar(&r, &px, b.t + MIN_US);
    assert_int_equal(ap_series_append(s, &b, &err), 0);
    assert_int_equal(ap_features_push(fresh, &b, want, &err), 0);
    latest(s, after, &t1);
    assert_memory_equal(want, after, sizeof want);
    /* the same through the bare engine */
    assert_int_equal(ap_features_push(fresh, &(ap_bar){b.t - 1, 1, 1, 1, 1, 1}, NULL, &err),
                     AP_EINVAL);
    assert_int_equal(ap_features_push(fresh, &(ap_bar){b.t + 1, 1, 1, 1, 1, -1}, NULL, &err),
                     AP_EINVAL);
    assert_true(ap_features_bars(fresh) == 41);
    ap_features_free(fresh);
    ap_series_store_free(st);
}

/* Each bar arrives as 1..4 versions with the same time; the last is final. */
static void same_timestamp_update_equals_fresh(void **state)
{
    (void)state;
    ap_series_store *st = mkstore(8, 64);
    ap_series *s;
    ap_error err = {0};
    assert_int_equal(ap_series_open(st, "UPD", 60, 0, &s, &err), 0);
    ap_features *fresh;
    assert_int_equal(ap_features_new(&fresh, &err), 0);
    rng r = {7};
    double px = 50, got[AP_FEATURE_COUNT], want[AP_FEATURE_COUNT];
    int updates = 0;
    for (int i = 0; i < 400; i++) {
        int64_t t = i * MIN_US;
        int versions = 1 + (int)(urand(&r) * 4);
        ap_bar b;
        for (int k = 0; k < versions; k++) {
            double p = px; /* versions wander from the same start */
            b = rbar(&r, &p, t);
            if (k == versions - 1)
                px = p;
            /* some versions jump far, to move every extreme and recursion */
            if (urand(&r) < 0.1) {
                b.high *= 3;
                b.close *= 2;
            }
            assert_int_equal(ap_series_append(s, &b, &err), 0);
            updates += k > 0;
        }
        assert_int_equal(ap_features_push(fresh, &b, want, &err), 0);
        latest(s, got, NULL);
        if (memcmp(got, want, sizeof got)) {
            for (int j = 0; j < AP_FEATURE_COUNT; j++)
                if (memcmp(&got[j], &want[j], sizeof got[j]))
                    print_error("bar %d %s: %.17g vs fresh %.17g\n", i, ap_feature_name(j),
                                got[j], want[j]);
            fail();
        }
        assert_true(ap_series_total(s) == (uint64_t)i + 1);
    }
    assert_true(updates > 300);
    ap_features_free(fresh);
    ap_series_store_free(st);
}

static const int64_t tfs[5] = {300, 900, 3600, 14400, 86400};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return q * b > a ? q - 1 : q;
}

/* Aggregate bars[0..n) into buckets of len seconds; returns the bucket count. */
static size_t buckets(const ap_bar *bars, size_t n, int64_t len, ap_bar *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t start = floor_div(bars[i].t, len * 1000000) * len * 1000000;
        if (m && out[m - 1].t == start) {
            ap_bar *k = &out[m - 1];
            k->high = fmax(k->high, bars[i].high);
            k->low = fmin(k->low, bars[i].low);
            k->close = bars[i].close;
            k->volume += bars[i].volume;
        } else {
            out[m] = bars[i];
            out[m++].t = start;
        }
    }
    return m;
}

static void check_rollup(int64_t t0, size_t n_min)
{
    ap_series_store *st = mkstore(16, 100000);
    ap_series *base, *kid[5];
    ap_error err = {0};
    assert_int_equal(ap_series_open(st, "ROLL", 60, AP_SERIES_ROLLUP, &base, &err), 0);
    assert_int_equal((int)ap_series_store_count(st), 6);
    for (int k = 0; k < 5; k++) {
        kid[k] = ap_series_find(st, "ROLL", tfs[k]);
        assert_non_null(kid[k]);
        assert_true(ap_series_timeframe(kid[k]) == tfs[k]);
    }
    ap_bar *raw = calloc(n_min, sizeof *raw), *agg = calloc(n_min, sizeof *agg);
    assert_non_null(raw);
    assert_non_null(agg);
    rng r = {99};
    double px = 20;
    size_t n = 0;
    int64_t t = t0;
    for (size_t i = 0; i < n_min; i++) {
        t += MIN_US * (urand(&r) < 0.05 ? 1 + (int64_t)(urand(&r) * 200) : 1); /* gaps */
        ap_bar b = rbar(&r, &px, t);
        if (urand(&r) < 0.3) { /* a forming 1m bar first, then its final version */
            ap_bar early = b;
            early.high = early.low = early.close = early.open;
            early.volume = 1e6;
            assert_int_equal(ap_series_append(base, &early, &err), 0);
        }
        assert_int_equal(ap_series_append(base, &b, &err), 0);
        raw[n++] = b;
        if (i % 97 == 0 || i == n_min - 1) {
            for (int k = 0; k < 5; k++) {
                size_t m = buckets(raw, n, tfs[k], agg);
                ap_features *fresh;
                double want[AP_FEATURE_COUNT], got[AP_FEATURE_COUNT];
                assert_int_equal(ap_features_new(&fresh, &err), 0);
                for (size_t j = 0; j < m; j++)
                    assert_int_equal(ap_features_push(fresh, &agg[j], want, &err), 0);
                int64_t lt;
                latest(kid[k], got, &lt);
                assert_true(lt == agg[m - 1].t);
                assert_memory_equal(got, want, sizeof got);
                assert_true(ap_series_total(kid[k]) == m);
                ap_bar kb;
                assert_int_equal(ap_series_bar(kid[k], 0, &kb, &err), 0);
                assert_memory_equal(&kb, &agg[m - 1], sizeof kb);
                if (m > 1) {
                    assert_int_equal(ap_series_bar(kid[k], 1, &kb, &err), 0);
                    assert_memory_equal(&kb, &agg[m - 2], sizeof kb);
                }
                ap_features_free(fresh);
            }
        }
    }
    /* only the base series takes bars */
    ap_bar b = rbar(&r, &px, t + MIN_US);
    assert_int_equal(ap_series_append(kid[0], &b, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "rolled up"));
    /* a bar whose bucket would overflow is refused everywhere */
    double v0[AP_FEATURE_COUNT], v1[AP_FEATURE_COUNT];
    latest(kid[4], v0, NULL);
    uint64_t tot = ap_series_total(base);
    b.volume = 1.7e308;
    assert_int_equal(ap_series_append(base, &b, &err), 0);
    ap_bar b2 = rbar(&r, &px, t + 2 * MIN_US);
    b2.volume = 1.7e308;
    if (floor_div(b2.t, 86400 * 1000000LL) == floor_div(b.t, 86400 * 1000000LL)) {
        latest(kid[4], v0, NULL);
        assert_int_equal(ap_series_append(base, &b2, &err), AP_EINVAL);
        assert_non_null(strstr(err.msg, "volume"));
        assert_true(ap_series_total(base) == tot + 1);
        latest(kid[4], v1, NULL);
        assert_memory_equal(v0, v1, sizeof v0);
    }
    free(raw);
    free(agg);
    ap_series_store_free(st);
}

static void rollup_buckets(void **state)
{
    (void)state;
    /* 2023-11-14 22:13 UTC: starts mid-bucket for every timeframe; ~4 days */
    check_rollup(1700000000LL * 1000000 - 7 * MIN_US, 5000);
    /* starting exactly on a day boundary (2023-11-15 00:00 UTC, minus the
       first step) */
    check_rollup(1700006400LL * 1000000 - MIN_US, 2000);
    /* bars before 1970 are refused (issue #11: bound timestamps) */
    ap_series_store *st = mkstore(16, 100);
    ap_series *base;
    ap_error err = {0};
    assert_int_equal(ap_series_open(st, "OLD", 60, AP_SERIES_ROLLUP, &base, &err), 0);
    ap_bar b = {-60 * 1000000LL, 1, 1, 1, 1, 1};
    assert_int_equal(ap_series_append(base, &b, &err), AP_EINVAL);
    assert_non_null(strstr(err.msg, "before 1970"));
    assert_int_equal((int)ap_series_length(base), 0);
    ap_series_store_free(st);
}

static void rollup_open_rules(void **state)
{
    (void)state;
    ap_series_store *st = mkstore(6, 8);
    ap_series *s;
    ap_error err = {0};
    assert_int_equal(ap_series_open(st, "X", 900, 0, &s, &err), 0);
    /* X/60 rolls into the standard multiples that do not exist yet; X/900,
       which exists on its own, keeps its own feed (issue #11: a symbol
       first posted at 15m must not block a later 1m feed) */
    ap_series *x1;
    assert_int_equal(ap_series_open(st, "X", 60, AP_SERIES_ROLLUP, &x1, &err), 0);
    assert_int_equal((int)ap_series_store_count(st), 6); /* 900; 60 + 300, 3600, 14400, 86400 */
    ap_series *x86400 = ap_series_find(st, "X", 86400);
    assert_non_null(x86400);
    ap_bar b = {1700000040LL * 1000000, 1, 2, 0.5, 1.5, 10};
    assert_int_equal(ap_series_append(x1, &b, &err), 0);
    double v[AP_FEATURE_COUNT];
    assert_int_equal(ap_series_latest(x86400, v, NULL, &err), 0);      /* rolled up */
    assert_int_equal(ap_series_latest(s, v, NULL, &err), AP_ENOTFOUND); /* fed alone */
    assert_int_equal(ap_series_append(s, &b, &err), 0);                 /* still takes bars */
    /* room for 1 + 5 series is needed at once */
    assert_int_equal(ap_series_open(st, "Y", 60, AP_SERIES_ROLLUP, &s, &err), AP_EFULL);
    assert_non_null(strstr(err.msg, "full"));
    assert_int_equal((int)ap_series_store_count(st), 6);
    assert_int_equal(ap_series_delete(st, "X", 60, &err), 0);
    assert_int_equal((int)ap_series_store_count(st), 1);
    assert_int_equal(ap_series_open(st, "X", 900, 0, &s, &err), 0);
    /* a 4h base rolls into 1d only */
    assert_int_equal(ap_series_open(st, "Z", 14400, AP_SERIES_ROLLUP, &s, &err), 0);
    assert_int_equal((int)ap_series_store_count(st), 3);
    assert_non_null(ap_series_find(st, "Z", 86400));
    assert_null(ap_series_find(st, "Z", 3600));
    /* opening again finds the same series */
    ap_series *again;
    assert_int_equal(ap_series_open(st, "Z", 14400, AP_SERIES_ROLLUP, &again, &err), 0);
    assert_ptr_equal(s, again);
    assert_int_equal(ap_series_open(st, "X", 900, AP_SERIES_ROLLUP, &again, &err), AP_EINVAL);
    ap_series_store_free(st);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Mean ns per ap_series_find over the first nsym "SYM%05d" names. */
static double lookup_ns(ap_series_store *st, int nsym)
{
    char(*names)[16] = malloc((size_t)nsym * sizeof *names);
    assert_non_null(names);
    for (int i = 0; i < nsym; i++)
        snprintf(names[i], sizeof names[i], "SYM%05d", i);
    int rounds = 400000 / nsym + 1, found = 0;
    double t0 = now_ns();
    for (int k = 0; k < rounds; k++)
        for (int i = 0; i < nsym; i++)
            found += ap_series_find(st, names[i], 60) != NULL;
    double ns = (now_ns() - t0) / ((double)rounds * nsym);
    assert_int_equal(found, rounds * nsym);
    free(names);
    return ns;
}

static void thousands_of_series(void **state)
{
    (void)state;
    const int N = 6000;
    ap_series_store *st = mkstore(2 * N, 4);
    ap_error err = {0};
    char name[32];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "SYM%05d", i);
            ap_series *s;
            assert_int_equal(ap_series_open(st, name, k ? 3600 : 60, 0, &s, &err), 0);
            ap_bar b = {i, 1 + i, 2 + i, 1 + i, 1.5 + i, k};
            assert_int_equal(ap_series_append(s, &b, &err), 0);
        }
    assert_int_equal((int)ap_series_store_count(st), 2 * N);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "SYM%05d", i);
            ap_series *s = ap_series_find(st, name, k ? 3600 : 60);
            assert_non_null(s);
            assert_string_equal(ap_series_symbol(s), name);
            assert_true(ap_series_timeframe(s) == (k ? 3600 : 60));
            double v[AP_FEATURE_COUNT];
            latest(s, v, NULL);
            assert_true(v[ap_feature_index("close")] == 1.5 + i);
            assert_true(v[ap_feature_index("volume")] == k);
        }
    assert_null(ap_series_find(st, "SYM99999", 60));
    assert_null(ap_series_find(st, "SYM00001", 120));
    ap_series *s;
    assert_int_equal(ap_series_open(st, "ONE-TOO-MANY", 60, 0, &s, &err), AP_EFULL);
    /* O(1): a lookup among 12000 series costs about what it costs among 20
       (loose bound: shared CI machines are noisy) */
    ap_series_store *small = mkstore(64, 4);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "SYM%05d", i);
        assert_int_equal(ap_series_open(small, name, 60, 0, &s, &err), 0);
    }
    double few = lookup_ns(small, 20), many = lookup_ns(st, N);
    print_message("lookup: %.0f ns among 20 series, %.0f ns among %d\n", few, many, 2 * N);
    assert_true(many < 5 * few + 300);
    ap_series_store_free(small);
    ap_series_store_free(st);
}

static void history_ring(void **state)
{
    (void)state;
    ap_series_store *st = mkstore(2, 10);
    ap_series *s;
    ap_error err = {0};
    assert_int_equal(ap_series_open(st, "H", 60, 0, &s, &err), 0);
    assert_int_equal((int)ap_series_length(s), 0);
    ap_bar b;
    assert_int_equal(ap_series_bar(s, 0, &b, &err), AP_ERANGE);
    for (int i = 0; i < 25; i++) {
        b = (ap_bar){i * MIN_US, 10 + i, 11 + i, 9 + i, 10.5 + i, i};
        assert_int_equal(ap_series_append(s, &b, &err), 0);
        assert_int_equal((int)ap_series_length(s), i + 1 < 10 ? i + 1 : 10);
    }
    assert_true(ap_series_total(s) == 25);
    for (int back = 0; back < 10; back++) {
        assert_int_equal(ap_series_bar(s, (size_t)back, &b, &err), 0);
        assert_true(b.t == (24 - back) * MIN_US);
        assert_true(b.close == 10.5 + 24 - back);
    }
    assert_int_equal(ap_series_bar(s, 10, &b, &err), AP_ERANGE);
    assert_non_null(strstr(err.msg, "not held"));
    /* an update replaces the latest bar in place */
    b = (ap_bar){24 * MIN_US, 1, 2, 1, 2, 3};
    assert_int_equal(ap_series_append(s, &b, &err), 0);
    assert_true(ap_series_total(s) == 25);
    assert_int_equal((int)ap_series_length(s), 10);
    ap_bar got;
    assert_int_equal(ap_series_bar(s, 0, &got, &err), 0);
    assert_memory_equal(&got, &b, sizeof b);
    assert_int_equal(ap_series_bar(s, 1, &got, &err), 0);
    assert_true(got.t == 23 * MIN_US);
    ap_series_store_free(st);
}

static void config_and_names(void **state)
{
    (void)state;
    ap_series_store *st = NULL;
    ap_error err = {0};
    ap_series_config bad[] = {{.max_series = 0, .history = 10},
                              {.max_series = 10, .history = 0},
                              {.max_series = 10, .history = (size_t)AP_SERIES_MAX_HISTORY + 1},
                              {.max_series = (size_t)AP_SERIES_MAX_COUNT + 1, .history = 10}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(ap_series_store_new(&bad[i], &st, &err), AP_ERANGE);
        assert_null(st);
    }
    st = mkstore(4, 4);
    ap_series *s;
    char long_sym[AP_SYMBOL_MAX + 1];
    memset(long_sym, 'A', sizeof long_sym - 1);
    long_sym[AP_SYMBOL_MAX] = '\0';
    assert_int_equal(ap_series_open(st, long_sym, 60, 0, &s, &err), AP_EINVAL);
    assert_int_equal(ap_series_open(st, "", 60, 0, &s, &err), AP_EINVAL);
    assert_int_equal(ap_series_open(st, "A", 0, 0, &s, &err), AP_EINVAL);
    assert_int_equal(ap_series_open(st, "A", 60, 8, &s, &err), AP_EINVAL);
    assert_int_equal((int)ap_series_store_count(st), 0);
    ap_series_store_free(st);
    ap_series_store_free(NULL);

    int64_t sec;
    const char *tf[] = {"1m", "5m", "15m", "1h", "4h", "1d", "30s"};
    const int64_t want[] = {60, 300, 900, 3600, 14400, 86400, 30};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(ap_timeframe_parse(tf[i], &sec, &err), 0);
        assert_true(sec == want[i]);
    }
    const char *tf_bad[] = {"", "m", "0m", "1x", "1mm", "-1m", "367d", "99999999999d"};
    for (int i = 0; i < 8; i++)
        assert_int_equal(ap_timeframe_parse(tf_bad[i], &sec, &err), AP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejections_change_nothing),
        cmocka_unit_test(same_timestamp_update_equals_fresh),
        cmocka_unit_test(rollup_buckets),
        cmocka_unit_test(rollup_open_rules),
        cmocka_unit_test(thousands_of_series),
        cmocka_unit_test(history_ring),
        cmocka_unit_test(config_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
