/*
 * The streaming engine, through the series store (ap_series_append +
 * ap_series_latest, what a server does), against the shipped alphapulse-v1
 * reference files: edge_cases.csv and the first 3000 ttrc bars, all 101
 * columns, |a-e| <= 1e-9 + 1e-9*|e|, NaN only matching NaN
 * (tests/data/features/README.md). Also checks the engine alone (ap_features)
 * gives the same bits as the store.
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

#include "alphapulse.h"
#include "common/csv.h"
#include "series/bars_csv.h"

static const char *root(void)
{
    const char *r = getenv("AP_ROOT");
    return r ? r : ".";
}

/* Compare the first max_rows bars (the expected file has exactly want_rows),
   fed to a series of timeframe tf_s (the bars' own spacing). */
static void check_file(const char *bars_rel, const char *exp_rel, int64_t tf_s, long max_rows,
                       long want_rows)
{
    char bp[1024], ep[1024];
    snprintf(bp, sizeof bp, "%s/%s", root(), bars_rel);
    snprintf(ep, sizeof ep, "%s/%s", root(), exp_rel);
    ap_error err = {0};
    ap_bars_csv rd;
    ap_csv ex;
    assert_int_equal(ap__bars_csv_open(&rd, bp, &err), 0);
    assert_int_equal(ap__csv_open(&ex, ep, &err), 0);
    assert_int_equal(ap__csv_next(&ex, &err), 1);
    assert_int_equal((int)ex.nfields, 1 + AP_FEATURE_COUNT);
    assert_string_equal(ex.fields[0], "timestamp");
    for (int i = 0; i < AP_FEATURE_COUNT; i++)
        assert_string_equal(ex.fields[1 + i], ap_feature_name(i));

    ap_series_store *st;
    ap_series_config cfg = {.max_series = 4, .history = 100};
    assert_int_equal(ap_series_store_new(&cfg, &st, &err), 0);
    ap_series *s;
    assert_int_equal(ap_series_open(st, "REF", tf_s, 0, &s, &err), 0);
    ap_features *eng;
    assert_int_equal(ap_features_new(&eng, &err), 0);

    long rows = 0, bad = 0;
    double worst = 0;
    ap_bar bar;
    double got[AP_FEATURE_COUNT], alone[AP_FEATURE_COUNT];
    while (rows < max_rows && ap__bars_csv_next(&rd, &bar, &err) == 1) {
        assert_int_equal(ap_series_append(s, &bar, &err), 0);
        int64_t t;
        assert_int_equal(ap_series_latest(s, got, &t, &err), 0);
        assert_true(t == bar.t);
        assert_int_equal(ap_features_push(eng, &bar, alone, &err), 0);
        assert_memory_equal(got, alone, sizeof got);
        assert_int_equal(ap__csv_next(&ex, &err), 1);
        assert_string_equal(ex.fields[0], rd.ts_field);
        for (int i = 0; i < AP_FEATURE_COUNT; i++) {
            double e;
            assert_int_equal(ap__parse_double(ex.fields[1 + i], &e), 0);
            double a = got[i];
            int ok = isnan(e) ? isnan(a) : !isnan(a) && fabs(a - e) <= 1e-9 + 1e-9 * fabs(e);
            if (!isnan(e) && !isnan(a) && fabs(a - e) / (1 + fabs(e)) > worst)
                worst = fabs(a - e) / (1 + fabs(e));
            if (!ok && bad++ < 10)
                print_error("%s row %ld %s: got %.17g expected %.17g\n", bars_rel, rows,
                            ap_feature_name(i), a, e);
        }
        rows++;
    }
    print_message("%s: %ld rows x %d features, worst |a-e|/(1+|e|) %.3g, %ld mismatches\n",
                  bars_rel, rows, AP_FEATURE_COUNT, worst, bad);
    assert_int_equal(ap__csv_next(&ex, &err), 0); /* every expected row was compared */
    assert_int_equal(bad, 0);
    assert_true(rows == want_rows);
    ap_features_free(eng);
    ap_series_store_free(st);
    ap__csv_close(&ex);
    ap__bars_csv_close(&rd);
}

static void edge_cases(void **state)
{
    (void)state;
    check_file("tests/data/features/edge_cases.csv",
               "tests/data/features/edge_cases_alphapulse_v1.csv", 60, 1000000, 300);
}

static void ttrc_first_3000(void **state)
{
    (void)state;
    check_file("tests/data/market/ttrc_daily.csv",
               "tests/data/features/ttrc_daily_alphapulse_v1.csv", 86400, 3000, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edge_cases),
        cmocka_unit_test(ttrc_first_3000),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
