/*
 * Feature names: count, spec order (checked against the header of the
 * shipped reference file, which lists the 101 names in the spec's column
 * order), lookup by name, resolving a model's list with a clear error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse.h"
#include "common/csv.h"

static void count_and_order(void **state)
{
    (void)state;
    assert_int_equal(ap_feature_count(), 101);
    assert_int_equal(AP_FEATURE_COUNT, 101);
    const char *root = getenv("AP_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/features/edge_cases_alphapulse_v1.csv",
             root ? root : ".");
    ap_csv csv;
    ap_error err = {0};
    assert_int_equal(ap__csv_open(&csv, path, &err), 0);
    assert_int_equal(ap__csv_next(&csv, &err), 1);
    assert_int_equal((int)csv.nfields, 102);
    for (int i = 0; i < 101; i++) {
        assert_string_equal(ap_feature_name(i), csv.fields[i + 1]);
        assert_int_equal(ap_feature_index(csv.fields[i + 1]), i);
    }
    ap__csv_close(&csv);
    assert_null(ap_feature_name(-1));
    assert_null(ap_feature_name(101));
    /* a few by hand, from the spec's list */
    assert_int_equal(ap_feature_index("open"), 0);
    assert_int_equal(ap_feature_index("rsi"), 13);
    assert_int_equal(ap_feature_index("price_mean_5"), 30);
    assert_int_equal(ap_feature_index("close_lag_1"), 60);
    assert_int_equal(ap_feature_index("price_to_resistance"), 100);
}

static void unknown_names(void **state)
{
    (void)state;
    assert_int_equal(ap_feature_index("RSI"), -1);
    assert_int_equal(ap_feature_index("rsi "), -1);
    assert_int_equal(ap_feature_index(""), -1);
    assert_int_equal(ap_feature_index(NULL), -1);
    const char *ok[] = {"close", "rsi", "macd_histogram", "vwap"};
    int idx[4];
    ap_error err = {0};
    assert_int_equal(ap_feature_resolve(ok, 4, idx, &err), 0);
    assert_int_equal(idx[0], 3);
    assert_int_equal(idx[1], 13);
    assert_int_equal(idx[2], 12);
    assert_int_equal(idx[3], 90);
    const char *bad[] = {"close", "rsi_14", "vwap"};
    assert_int_equal(ap_feature_resolve(bad, 3, idx, &err), AP_ENOTFOUND);
    assert_int_equal(err.code, AP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'rsi_14'"));
    assert_non_null(strstr(err.msg, "2 of 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(count_and_order),
        cmocka_unit_test(unknown_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
