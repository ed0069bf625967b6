/*
 * Numerical stability over a long stream: > 1M bars of a random walk with
 * jumps (regimes around 50000, around 1e-6, x1000 jumps and crashes, flat
 * stretches of identical bars, zero-volume runs) streamed through the engine,
 * compared at every 10,007th bar and on the last 500 bars against a direct
 * recompute written here from the spec: every window (means, two-pass
 * standard deviations, extremes, sums) recomputed from the raw bars of that
 * window, the recursions (EMA, RSI, ATR, DMI, OBV) as plain loops over the
 * whole history. |a-e| <= 1e-9 + 1e-9*|e|, NaN only matching NaN: any drift
 * of a running sum or deque would show up here.
 *
 * Under sanitizers the stream is 150k bars (the point there is memory safety,
 * and ASan makes the 1M-bar run too slow for the "few seconds" rule).
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

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NBARS 150000
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NBARS 150000
#endif
#endif
#ifndef NBARS
#define NBARS 1100000
#endif

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

/* Raw bars and the per-bar series the recursions produce (whole history). */
static double *O, *H, *L, *C, *V, *ATR, *RSI, *MACD, *PC, *STK;

static void gen(size_t n)
{
    rng r = {20240601};
    double px = 50000;
    size_t flat = 0, zerov = 0;
    for (size_t i = 0; i < n; i++) {
        double u = urand(&r);
        if (flat == 0 && (u < 0.0002 || i == n - 400))
            flat = i == n - 400 ? 60 : 20 + (size_t)(urand(&r) * 60); /* identical bars */
        if (zerov == 0 && (urand(&r) < 0.0002 || i == n - 300))
            zerov = 30;
        if (i == n - 200 || i == n - 100) /* the checked tail has a jump and a crash */
            u = 0.99995;
        double o = px;
        if (flat) {
            flat--;
            O[i] = H[i] = L[i] = C[i] = px;
        } else {
            double jump = 0;
            if (u > 0.9999)
                jump = log(1000.0) * (i == n - 200 ? 1 : i == n - 100 ? -1
                                      : urand(&r) < 0.5 ? 1 : -1); /* x1000 or /1000 */
            px *= exp(0.004 * (urand(&r) - 0.5) + jump);
            if (i == n / 2)
                px = 1e-6; /* the second half starts in the tiny-price regime */
            /* keep the walk between ~1e-7 and ~1e6: tiny and huge regimes both occur */
            if (px < 1e-7)
                px *= 1000;
            if (px > 1e6)
                px /= 1000;
            O[i] = o;
            C[i] = px;
            H[i] = fmax(o, px) * (1 + 0.002 * urand(&r));
            L[i] = fmin(o, px) * (1 - 0.002 * urand(&r));
        }
        if (zerov) {
            zerov--;
            V[i] = 0;
        } else {
            V[i] = floor(1e4 * urand(&r));
        }
    }
}

/* Mean of x[a..b] (inclusive) with index clamped at 0 (pad = edge), or exact
   if all values are identical; population std by two passes. */
static void stats(const double *x, long a, long b, double *mean, double *sd)
{
    long w = b - a + 1;
    int same = 1;
    double first = x[a < 0 ? 0 : a], s = 0;
    for (long j = a; j <= b; j++) {
        double v = x[j < 0 ? 0 : j];
        same &= v == first;
        s += v;
    }
    double m = same ? first : s / w, ss = 0;
    for (long j = a; j <= b; j++) {
        double d = x[j < 0 ? 0 : j] - m;
        ss += d * d;
    }
    *mean = m;
    *sd = same ? 0 : sqrt(ss / w);
}

static double wmax(const double *x, long a, long b)
{
    double m = x[a < 0 ? 0 : a];
    for (long j = a; j <= b; j++)
        m = fmax(m, x[j < 0 ? 0 : j]);
    return m;
}

static double wmin(const double *x, long a, long b)
{
    double m = x[a < 0 ? 0 : a];
    for (long j = a; j <= b; j++)
        m = fmin(m, x[j < 0 ? 0 : j]);
    return m;
}

static double dv(double a, double b)
{
    return b == 0 ? NAN : a / b;
}

/* pandas ewm(adjust=False) step, as the spec words it */
static double ewm(double y, double x, double alpha)
{
    if (x == y)
        return y;
    return ((1 - alpha) * y + alpha * x) / ((1 - alpha) + alpha);
}

typedef struct rec {
    double ema[5], sig, up, dn, sp, sm, st, sum_dx, adx, obv;
    long sig_n;
} rec;

static const int spans[5] = {9, 21, 50, 12, 26};

/* Advance the recursions over bar i and fill the per-bar series. */
static void advance(rec *r, long i)
{
    for (int k = 0; k < 5; k++) {
        double a = 1.0 / (1.0 + (spans[k] - 1) / 2.0);
        r->ema[k] = i == 0 ? C[i] : ewm(r->ema[k], C[i], a);
    }
    double macd = i >= 25 ? r->ema[3] - r->ema[4] : NAN;
    MACD[i] = macd;
    if (i >= 25) {
        r->sig = r->sig_n ? ewm(r->sig, macd, 1.0 / (1.0 + 4.0)) : macd;
        r->sig_n++;
    }
    double d = i ? C[i] - C[i - 1] : NAN;
    double a14 = 1.0 / (1.0 + (1.0 - 1.0 / 14) / (1.0 / 14));
    r->up = i ? ewm(r->up, d > 0 ? d : 0, a14) : 0;
    r->dn = i ? ewm(r->dn, d < 0 ? -d : 0, a14) : 0;
    RSI[i] = i < 13 ? NAN : r->dn == 0 ? 100 : 100 - 100 / (1 + r->up / r->dn);
    /* ATR: `ta` definition */
    if (i < 13) {
        ATR[i] = 0;
    } else if (i == 13) {
        double s = H[0] - L[0];
        for (long j = 1; j <= 13; j++)
            s += fmax(H[j] - L[j], fmax(fabs(H[j] - C[j - 1]), fabs(L[j] - C[j - 1])));
        ATR[i] = s / 14;
    } else {
        double tr = fmax(H[i] - L[i], fmax(fabs(H[i] - C[i - 1]), fabs(L[i] - C[i - 1])));
        ATR[i] = (ATR[i - 1] * 13 + tr) / 14;
    }
    /* DMI: TA-Lib */
    if (i >= 1) {
        double up = H[i] - H[i - 1], dn = L[i - 1] - L[i];
        double p = up > 0 && up > dn ? up : 0, m = dn > 0 && dn > up ? dn : 0;
        double tr = fmax(H[i], C[i - 1]) - fmin(L[i], C[i - 1]);
        if (i < 14) {
            r->sp += p;
            r->sm += m;
            r->st += tr;
        } else {
            r->sp += p - r->sp / 14;
            r->sm += m - r->sm / 14;
            r->st += tr - r->st / 14;
            if (fabs(r->st) >= 1e-8) {
                double dp = 100 * r->sp / r->st, dm = 100 * r->sm / r->st;
                if (fabs(dp + dm) >= 1e-8) {
                    double dx = 100 * fabs(dp - dm) / (dp + dm);
                    if (i <= 27)
                        r->sum_dx += dx;
                    else
                        r->adx = (r->adx * 13 + dx) / 14;
                }
            }
            if (i == 27)
                r->adx = r->sum_dx / 14;
        }
    }
    r->obv += i && C[i] < C[i - 1] ? -V[i] : V[i];
    PC[i] = i ? C[i] / C[i - 1] - 1 : NAN;
    STK[i] = NAN;
    if (i >= 13) {
        double hh = wmax(H, i - 13, i), ll = wmin(L, i - 13, i);
        STK[i] = dv(100 * (C[i] - ll), hh - ll);
    }
}

static int ix(const char *name)
{
    int k = ap_feature_index(name);
    assert_true(k >= 0);
    return k;
}

static void direct(const rec *r, long i, double *o)
{
    for (int k = 0; k < AP_FEATURE_COUNT; k++)
        o[k] = -12345.678; /* every feature below must be set */
    o[ix("open")] = O[i];
    o[ix("high")] = H[i];
    o[ix("low")] = L[i];
    o[ix("close")] = C[i];
    o[ix("volume")] = V[i];
    double e[3];
    for (int k = 0; k < 3; k++)
        e[k] = i + 1 >= spans[k] ? r->ema[k] : NAN;
    o[ix("ema_9")] = e[0];
    o[ix("ema_21")] = e[1];
    o[ix("ema_50")] = e[2];
    double m20 = NAN, s20 = NAN, m50 = NAN, tmp;
    if (i >= 19)
        stats(C, i - 19, i, &m20, &s20);
    if (i >= 49)
        stats(C, i - 49, i, &m50, &tmp);
    o[ix("sma_20")] = m20;
    o[ix("sma_50")] = m50;
    double sig = r->sig_n >= 9 ? r->sig : NAN;
    o[ix("macd")] = MACD[i];
    o[ix("macd_signal")] = sig;
    o[ix("macd_histogram")] = MACD[i] - sig;
    o[ix("rsi")] = RSI[i];
    o[ix("bb_middle")] = m20;
    o[ix("bb_upper")] = m20 + 2 * s20;
    o[ix("bb_lower")] = m20 - 2 * s20;
    o[ix("bb_width")] = dv(4 * s20, m20);
    o[ix("bb_position")] = dv(C[i] - (m20 - 2 * s20), (m20 + 2 * s20) - (m20 - 2 * s20));
    o[ix("atr")] = ATR[i];
    o[ix("stoch_k")] = STK[i];
    double sd = NAN;
    if (i >= 15 && !isnan(STK[i]) && !isnan(STK[i - 1]) && !isnan(STK[i - 2]))
        stats(STK, i - 2, i, &sd, &tmp);
    o[ix("stoch_d")] = sd;
    double wr = NAN;
    if (i >= 13) {
        double hh = wmax(H, i - 13, i), ll = wmin(L, i - 13, i);
        wr = dv(-100 * (hh - C[i]), hh - ll);
    }
    o[ix("williams_r")] = wr;
    double dp = NAN, dm = NAN;
    if (i >= 14) {
        dp = fabs(r->st) < 1e-8 ? 0 : 100 * r->sp / r->st;
        dm = fabs(r->st) < 1e-8 ? 0 : 100 * r->sm / r->st;
    }
    o[ix("di_plus")] = dp;
    o[ix("di_minus")] = dm;
    o[ix("adx")] = i >= 27 ? r->adx : NAN;
    o[ix("price_change")] = PC[i];
    o[ix("price_change_abs")] = fabs(PC[i]);
    o[ix("high_low_ratio")] = H[i] / L[i];
    o[ix("close_open_ratio")] = C[i] / O[i];
    static const int ws[3] = {5, 10, 20};
    for (int k = 0; k < 3; k++) {
        long w = ws[k], a = i - w + 1;
        double pm, ps, vm, vs;
        stats(C, a, i, &pm, &ps);
        stats(V, a, i, &vm, &vs);
        char nm[32];
#define SETW(fmt, val) (snprintf(nm, sizeof nm, fmt, ws[k]), o[ix(nm)] = (val))
        SETW("price_mean_%d", pm);
        SETW("price_std_%d", ps);
        SETW("price_min_%d", wmin(C, a, i));
        SETW("price_max_%d", wmax(C, a, i));
        SETW("price_range_%d", wmax(C, a, i) - wmin(C, a, i));
        SETW("volume_mean_%d", vm);
        SETW("volume_std_%d", vs);
        SETW("volume_ratio_%d", dv(V[i], vm));
        SETW("momentum_%d", C[i] / C[a < 0 ? 0 : a] - 1);
        SETW("volatility_%d", ps / pm);
    }
    static const int lags[5] = {1, 2, 3, 5, 10};
    for (int k = 0; k < 5; k++) {
        char nm[32];
        long j = i - lags[k];
        snprintf(nm, sizeof nm, "close_lag_%d", lags[k]);
        o[ix(nm)] = j >= 0 ? C[j] : NAN;
        snprintf(nm, sizeof nm, "volume_lag_%d", lags[k]);
        o[ix(nm)] = j >= 0 ? V[j] : NAN;
        snprintf(nm, sizeof nm, "price_change_lag_%d", lags[k]);
        o[ix(nm)] = j >= 0 ? PC[j] : NAN;
    }
    for (int k = 1; k <= 3; k++) {
        char nm[32];
        long j = i - k;
        snprintf(nm, sizeof nm, "rsi_lag_%d", k);
        o[ix(nm)] = j >= 0 ? RSI[j] : NAN;
        snprintf(nm, sizeof nm, "macd_lag_%d", k);
        o[ix(nm)] = j >= 0 ? MACD[j] : NAN;
        snprintf(nm, sizeof nm, "atr_lag_%d", k);
        o[ix(nm)] = j >= 0 ? ATR[j] : NAN;
    }
    double vsma = NAN;
    if (i >= 19)
        stats(V, i - 19, i, &vsma, &tmp);
    o[ix("volume_sma")] = vsma;
    o[ix("volume_ratio")] = dv(V[i], vsma);
    o[ix("volume_surge")] = V[i] > 1.5 * vsma;
    o[ix("volume_price_trend")] = i ? (C[i] - C[i - 1]) * V[i] : NAN;
    o[ix("volume_price_ratio")] = V[i] / C[i];
    o[ix("obv")] = r->obv;
    double vwap = NAN;
    if (i >= 19) {
        double scv = 0, sv = 0;
        for (long j = i - 19; j <= i; j++) {
            scv += C[j] * V[j];
            sv += V[j];
        }
        vwap = dv(scv, sv);
    }
    o[ix("vwap")] = vwap;
    double am = NAN;
    if (i >= 49)
        stats(ATR, i - 49, i, &am, &tmp);
    o[ix("volatility_regime_high")] = ATR[i] > am;
    double tr = 0;
    if (e[0] > e[1] && e[1] > e[2])
        tr = 3;
    else if (e[0] > e[1] && e[1] <= e[2])
        tr = 2;
    else if (e[0] <= e[1] && e[1] < e[2])
        tr = 1;
    o[ix("trend_regime")] = tr;
    o[ix("higher_highs")] = i && H[i] > H[i - 1];
    o[ix("higher_lows")] = i && L[i] > L[i - 1];
    o[ix("lower_highs")] = i && H[i] < H[i - 1];
    o[ix("lower_lows")] = i && L[i] < L[i - 1];
    double sup = i >= 19 ? wmin(L, i - 19, i) : NAN, res = i >= 19 ? wmax(H, i - 19, i) : NAN;
    o[ix("support")] = sup;
    o[ix("resistance")] = res;
    o[ix("price_to_support")] = (C[i] - sup) / C[i];
    o[ix("price_to_resistance")] = (res - C[i]) / C[i];
    for (int k = 0; k < AP_FEATURE_COUNT; k++)
        assert_true(o[k] != -12345.678);
}

static void long_stream_no_drift(void **state)
{
    (void)state;
    size_t n = NBARS;
    double **arrays[] = {&O, &H, &L, &C, &V, &ATR, &RSI, &MACD, &PC, &STK};
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++) {
        *arrays[k] = malloc(n * sizeof(double));
        assert_non_null(*arrays[k]);
    }
    gen(n);
    ap_features *f;
    ap_error err = {0};
    assert_int_equal(ap_features_new(&f, &err), 0);
    rec r = {0};
    double got[AP_FEATURE_COUNT], want[AP_FEATURE_COUNT];
    long checked = 0, bad = 0, flat_std = 0;
    double worst = 0, lo = INFINITY, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = fmin(lo, L[i]);
        hi = fmax(hi, H[i]);
        ap_bar b = {(int64_t)i * 60000000, O[i], H[i], L[i], C[i], V[i]};
        assert_int_equal(ap_features_push(f, &b, got, &err), 0);
        advance(&r, (long)i);
        if (i % 10007 != 0 && i + 500 < n && i >= 60)
            continue;
        direct(&r, (long)i, want);
        checked++;
        for (int k = 0; k < AP_FEATURE_COUNT; k++) {
            double a = got[k], e = want[k];
            int ok = isnan(e) ? isnan(a) : !isnan(a) && fabs(a - e) <= 1e-9 + 1e-9 * fabs(e);
            if (!isnan(e) && !isnan(a) && fabs(a - e) / (1e-300 + fabs(e)) > worst && e != 0)
                worst = fabs(a - e) / fabs(e);
            if (!ok && bad++ < 20)
                print_error("bar %zu %s: engine %.17g direct %.17g\n", i, ap_feature_name(k), a,
                            e);
        }
        flat_std += want[ix("price_std_20")] == 0 && got[ix("price_std_20")] == 0;
    }
    print_message("prices from %.3g to %.3g\n", lo, hi);
    print_message("%zu bars, %ld checkpoints x %d features, worst relative difference %.3g, "
                  "%ld mismatches, %ld checkpoints in flat windows (std exactly 0)\n",
                  n, checked, AP_FEATURE_COUNT, worst, bad, flat_std);
    assert_int_equal(bad, 0);
    assert_true(checked >= 500 + (long)(n / 10007));
    assert_true(flat_std >= 20);
    assert_true(lo < 1e-6 && hi > 50000);
    ap_features_free(f);
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++)
        free(*arrays[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(long_stream_no_drift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
