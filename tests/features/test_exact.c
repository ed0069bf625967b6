/*
 * Where the spec demands exact values, not 1e-9: a window of identical values
 * has mean exactly that value and std exactly 0 (so bb_position is NaN, not a
 * huge number), an EMA over a flat stretch equals the flat price, and flags
 * compare those exact values. 123.456 is a price whose plain sum over 5, 10,
 * 20 or 50 copies, divided by the count, is NOT 123.456 (checked in Python:
 * sum([123.456]*w)/w != 123.456 for each w), so only an exact rule passes.
 * Expected values are the spec's, worked out by hand for a flat series.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "alphapulse.h"

#define X 123.456

static double get(const double *v, const char *name)
{
    int i = ap_feature_index(name);
    assert_true(i >= 0);
    return v[i];
}

#define EQ(v, name, want) assert_true(get(v, name) == (want))
#define ISNAN(v, name) assert_true(isnan(get(v, name)))

static void flat_from_the_start(void **state)
{
    (void)state;
    ap_features *f;
    ap_error err = {0};
    assert_int_equal(ap_features_new(&f, &err), 0);
    double v[AP_FEATURE_COUNT];
    for (int i = 0; i < 80; i++) {
        ap_bar b = {i, X, X, X, X, X};
        assert_int_equal(ap_features_push(f, &b, v, &err), 0);
        static const char *const w[3] = {"5", "10", "20"};
        for (int k = 0; k < 3; k++) {
            char nm[32];
#define W(fmt) (strcpy(nm, fmt), strcat(nm, w[k]), nm)
            EQ(v, W("price_mean_"), X);
            EQ(v, W("price_std_"), 0.0);
            EQ(v, W("volume_mean_"), X);
            EQ(v, W("volume_std_"), 0.0);
            EQ(v, W("volume_ratio_"), 1.0);
            EQ(v, W("volatility_"), 0.0);
            EQ(v, W("price_range_"), 0.0);
            EQ(v, W("momentum_"), 0.0);
        }
        EQ(v, "atr", 0.0);
        EQ(v, "volatility_regime_high", 0.0);
        EQ(v, "trend_regime", 0.0);
        if (i >= 8)
            EQ(v, "ema_9", X);
        if (i >= 49) {
            EQ(v, "ema_50", X);
            EQ(v, "sma_50", X);
        }
        if (i >= 13) {
            EQ(v, "rsi", 100.0); /* no losses: D == 0 */
            ISNAN(v, "stoch_k");  /* highest high == lowest low */
            ISNAN(v, "williams_r");
        }
        if (i >= 14) {
            EQ(v, "di_plus", 0.0); /* smoothed true range 0 < 1e-8 */
            EQ(v, "di_minus", 0.0);
        }
        if (i >= 27)
            EQ(v, "adx", 0.0); /* no DX was ever computed */
        if (i >= 19) {
            EQ(v, "sma_20", X);
            EQ(v, "bb_middle", X);
            EQ(v, "bb_upper", X);
            EQ(v, "bb_lower", X);
            EQ(v, "bb_width", 0.0);
            ISNAN(v, "bb_position");
            EQ(v, "volume_sma", X);
            EQ(v, "volume_ratio", 1.0);
            EQ(v, "volume_surge", 0.0);
        }
        if (i >= 33) {
            EQ(v, "macd", 0.0);
            EQ(v, "macd_signal", 0.0);
        }
    }
    ap_features_free(f);
}

/* A walk, then a flat stretch: the exact values appear once the window is
   entirely inside the flat part, not only when the series starts flat. */
static void flat_after_a_walk(void **state)
{
    (void)state;
    ap_features *f;
    ap_error err = {0};
    assert_int_equal(ap_features_new(&f, &err), 0);
    double v[AP_FEATURE_COUNT];
    for (int i = 0; i < 30; i++) {
        double p = 100 + (i * 37 % 11);
        ap_bar b = {i, p, p + 1, p - 1, p + 0.5, 10 + i};
        assert_int_equal(ap_features_push(f, &b, v, &err), 0);
    }
    for (int j = 0; j < 60; j++) {
        ap_bar b = {30 + j, X, X, X, X, 2 * X};
        assert_int_equal(ap_features_push(f, &b, v, &err), 0);
        int run = j + 1;
        if (run >= 5) {
            EQ(v, "price_mean_5", X);
            EQ(v, "price_std_5", 0.0);
            EQ(v, "volume_ratio_5", 1.0);
        } else {
            assert_true(get(v, "price_std_5") > 0);
        }
        if (run >= 20) {
            EQ(v, "sma_20", X);
            EQ(v, "price_std_20", 0.0);
            ISNAN(v, "bb_position");
            EQ(v, "volume_sma", 2 * X);
        } else {
            assert_false(isnan(get(v, "bb_position")));
        }
        if (run >= 50)
            EQ(v, "sma_50", X);
        if (run >= 14)
            ISNAN(v, "stoch_k");
    }
    ap_features_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flat_from_the_start),
        cmocka_unit_test(flat_after_a_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
