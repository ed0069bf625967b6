/*
 * The alphapulse-v1 features of one series, bar by bar.
 *
 * Every push costs O(1) amortised and yields the full 101-vector of that bar,
 * equal (within 1e-9 relative) to the batch pandas computation over the whole
 * history, and bit-equal where the spec demands exactness (flat EMAs, std 0
 * and mean == value over identical windows, comparisons).
 *
 * State is split in two so that a still-forming bar can be replaced:
 *   - `st`, the recursions (EMAs, Wilder sums, OBV, counters, deque heads):
 *     a few hundred bytes, copied to `prev` before each NEW bar. Replacing the
 *     last bar restores `prev` and re-applies the new version: the recursions
 *     are not invertible in floating point ((y - a*x)/(1-a) != y_prev), so a
 *     snapshot is the only exact "undo".
 *   - the per-bar rings (indexed by bar number): a bar only ever writes its own
 *     slot, and the slot it overwrites belongs to a bar older than every
 *     window, so rings need no undo. The monotonic deques write exactly one
 *     slot per push; that slot's previous content is remembered (dq_undo) and
 *     put back together with the heads.
 *
 * Windowed sums and standard deviations are recomputed from the window every
 * bar rather than kept as running sums: at most 50 values, contiguous in a
 * doubled ring, summed with four accumulators. This is exact to the last few
 * ulps at any point of any history (no drift, no cancellation after jumps:
 * running sums lose all relative accuracy when a window of 1e5-level prices
 * is followed by 1e-6-level ones); perf puts it at about a third of the
 * ~250 ns a whole bar costs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse/features.h"
#include "common/error.h"
#include "features/features_internal.h"

_Static_assert(F_COUNT_ == AP_FEATURE_COUNT, "feature list and AP_FEATURE_COUNT disagree");

#define RING 64u /* per-bar history; must exceed the longest window (50) */
#define RMASK (RING - 1u)
#define DQCAP 32u /* deque capacity; must be >= the longest deque window (20) */
#define DQMASK (DQCAP - 1u)

/* Deques: rolling extremes. Window lengths and which ring/direction they use. */
enum { DQ_HH14, DQ_LL14, DQ_HH20, DQ_LL20, DQ_CMAX5, DQ_CMIN5, DQ_CMAX10, DQ_CMIN10,
       DQ_CMAX20, DQ_CMIN20, DQ_N };

typedef struct dq_head {
    uint32_t head, tail; /* free-running positions; size = tail - head */
} dq_head;

/* Recursive state: everything a bar changes outside its own ring slots. */
typedef struct fstate {
    uint64_t n;     /* bars seen */
    int64_t t_last; /* time of the last bar */
    double ema[5];  /* ewm(span) of close for spans 9, 21, 50, 12, 26 */
    double sig;     /* ewm(span=9) of macd */
    uint32_t sig_n; /* macd values seen by sig */
    double up, dn;  /* RSI: ewm(alpha=1/14) of gains / losses */
    double atr;
    double sp, sm, str; /* Wilder sums of +DM1, -DM1, TR1 */
    double sum_dx, adx;
    double obv;
    /* lengths of the current runs of identical values (exact rolling means) */
    uint64_t run_c, run_v, run_a;
    uint32_t run_k;
    dq_head dq[DQ_N];
} fstate;

struct ap_features {
    fstate st, prev;
    /* doubled rings: value of bar i at (i & RMASK) and (i & RMASK) + RING so
       that any window of <= RING values is contiguous ending at slot + RING */
    double close[2 * RING], vol[2 * RING], cv[2 * RING], atr[2 * RING];
    double high[RING], low[RING], pc[RING], rsi[RING], macd[RING], stoch[RING];
    double tr0[14]; /* the first 14 true ranges (ATR seed) */
    uint32_t dq[DQ_N][DQCAP];
    uint32_t dq_undo_pos[DQ_N], dq_undo_val[DQ_N];
};

/* The alphas of pandas' ewm: it turns span/alpha into a centre of mass and
   back (alpha = 1/(1+com)); doing the same gives its bits exactly. */
static double alpha_span(double span)
{
    return 1.0 / (1.0 + (span - 1.0) / 2.0);
}

static double alpha_alpha(double a)
{
    return 1.0 / (1.0 + (1.0 - a) / a);
}

/* One step of pandas' ewm(adjust=False) once started (see the spec). */
static inline double ewm_step(double y, double x, double alpha)
{
    if (x == y)
        return y;
    double old_wt = 1.0 - alpha;
    return (old_wt * y + alpha * x) / (old_wt + alpha);
}

static inline double div0(double a, double b)
{
    return b == 0.0 ? NAN : a / b;
}

static inline void ring2_put(double *r, uint64_t n, double v)
{
    r[n & RMASK] = v;
    r[(n & RMASK) + RING] = v;
}

/* The window of the last w values ending at bar n (contiguous). */
static inline const double *ring2_win(const double *r, uint64_t n, unsigned w)
{
    return r + (n & RMASK) + RING + 1 - w;
}

static double sum_w(const double *x, unsigned w)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    unsigned i = 0;
    for (; i + 4 <= w; i += 4) {
        a0 += x[i];
        a1 += x[i + 1];
        a2 += x[i + 2];
        a3 += x[i + 3];
    }
    for (; i < w; i++)
        a0 += x[i];
    return (a0 + a1) + (a2 + a3);
}

static double ssd_w(const double *x, unsigned w, double m)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    unsigned i = 0;
    for (; i + 4 <= w; i += 4) {
        double d0 = x[i] - m, d1 = x[i + 1] - m, d2 = x[i + 2] - m, d3 = x[i + 3] - m;
        a0 += d0 * d0;
        a1 += d1 * d1;
        a2 += d2 * d2;
        a3 += d3 * d3;
    }
    for (; i < w; i++) {
        double d = x[i] - m;
        a0 += d * d;
    }
    return (a0 + a1) + (a2 + a3);
}

/*
 * Mean and population std of pad_w(x) at bar n: the last w values, positions
 * before bar 0 repeating bar 0. `run` is the length of the run of identical
 * values ending at bar n: when it covers the window the result is exact
 * (mean = value, std = 0), as the spec requires.
 */
static void pad_stats(const double *ring, uint64_t n, unsigned w, uint64_t run, double *mean,
                      double *sd)
{
    uint64_t have = n + 1 < w ? n + 1 : w;
    const double *x = ring2_win(ring, n, (unsigned)have);
    if (run >= have) {
        *mean = x[have - 1];
        *sd = 0.0;
        return;
    }
    double m, ss;
    if (have == w) {
        m = sum_w(x, w) / w;
        ss = ssd_w(x, w, m);
    } else {
        double x0 = x[0], pads = (double)(w - have); /* x[0] is bar 0 here */
        m = (sum_w(x, (unsigned)have) + pads * x0) / w;
        ss = ssd_w(x, (unsigned)have, m) + pads * (x0 - m) * (x0 - m);
    }
    *mean = m;
    *sd = sqrt(ss / w);
}

/* Rolling mean over exactly w values (caller checks n + 1 >= w). */
static inline double roll_mean(const double *ring, uint64_t n, unsigned w, uint64_t run)
{
    const double *x = ring2_win(ring, n, w);
    if (run >= w)
        return x[w - 1];
    return sum_w(x, w) / w;
}

/* ---- monotonic deques --------------------------------------------------- */

/* Push bar n (value v, read back from `vals` by bar number) into deque k with
   window w; is_max keeps a decreasing deque (max at head), else increasing. */
static inline void dq_push(ap_features *f, int k, const double *vals, unsigned vmask, uint64_t n,
                           double v, unsigned w, int is_max)
{
    dq_head *h = &f->st.dq[k];
    uint32_t *q = f->dq[k];
    uint32_t nn = (uint32_t)n;
    if (h->tail != h->head && (uint32_t)(nn - q[h->head & DQMASK]) >= w)
        h->head++; /* the window slides by one: at most one expires */
    while (h->tail != h->head) {
        double b = vals[q[(h->tail - 1) & DQMASK] & vmask];
        if (is_max ? b <= v : b >= v)
            h->tail--;
        else
            break;
    }
    uint32_t pos = h->tail & DQMASK;
    f->dq_undo_pos[k] = pos;
    f->dq_undo_val[k] = q[pos];
    q[pos] = nn;
    h->tail++;
}

static inline double dq_front(const ap_features *f, int k, const double *vals, unsigned vmask)
{
    return vals[f->dq[k][f->st.dq[k].head & DQMASK] & vmask];
}

/* ---- the step ----------------------------------------------------------- */

static const unsigned spans[5] = {9, 21, 50, 12, 26};

static void step(ap_features *f, const ap_bar *b, double *o)
{
    fstate *s = &f->st;
    const uint64_t n = s->n;
    const unsigned sl = (unsigned)(n & RMASK);
    const double c = b->close, h = b->high, l = b->low, v = b->volume;
    const double nan = NAN;
    const int first = n == 0;
    const double pcl = first ? nan : f->close[(n - 1) & RMASK];
    const double phi = first ? nan : f->high[(n - 1) & RMASK];
    const double plo = first ? nan : f->low[(n - 1) & RMASK];

    /* rings */
    ring2_put(f->close, n, c);
    ring2_put(f->vol, n, v);
    ring2_put(f->cv, n, c * v);
    f->high[sl] = h;
    f->low[sl] = l;
    s->run_c = !first && c == pcl ? s->run_c + 1 : 1;
    s->run_v = !first && v == f->vol[(n - 1) & RMASK] ? s->run_v + 1 : 1;

    o[F_OPEN] = b->open;
    o[F_HIGH] = h;
    o[F_LOW] = l;
    o[F_CLOSE] = c;
    o[F_VOLUME] = v;

    /* EMAs and MACD */
    double ema[5];
    for (int i = 0; i < 5; i++) {
        s->ema[i] = first ? c : ewm_step(s->ema[i], c, alpha_span(spans[i]));
        ema[i] = n + 1 >= spans[i] ? s->ema[i] : nan;
    }
    o[F_EMA_9] = ema[0];
    o[F_EMA_21] = ema[1];
    o[F_EMA_50] = ema[2];
    double macd = ema[3] - ema[4]; /* NaN before bar 25 */
    double sig = nan;
    if (n >= 25) {
        s->sig = s->sig_n == 0 ? macd : ewm_step(s->sig, macd, alpha_span(9));
        s->sig_n++;
        if (s->sig_n >= 9)
            sig = s->sig;
    }
    f->macd[sl] = macd;
    o[F_MACD] = macd;
    o[F_MACD_SIGNAL] = sig;
    o[F_MACD_HISTOGRAM] = macd - sig;

    /* RSI */
    {
        double d = c - pcl;
        double up = d > 0 ? d : 0.0, dn = d < 0 ? -d : 0.0;
        double a = alpha_alpha(1.0 / 14);
        s->up = first ? up : ewm_step(s->up, up, a);
        s->dn = first ? dn : ewm_step(s->dn, dn, a);
        double rsi = nan;
        if (n >= 13)
            rsi = s->dn == 0.0 ? 100.0 : 100.0 - 100.0 / (1.0 + s->up / s->dn);
        f->rsi[sl] = rsi;
        o[F_RSI] = rsi;
    }

    /* windows of close and volume (pad_w), reused by Bollinger and volume_sma */
    static const unsigned ws[3] = {5, 10, 20};
    static const int base[3] = {F_PRICE_MEAN_5, F_PRICE_MEAN_10, F_PRICE_MEAN_20};
    static const int dqmax[3] = {DQ_CMAX5, DQ_CMAX10, DQ_CMAX20};
    double pm[3], psd[3], vm[3], vsd[3];
    for (int i = 0; i < 3; i++) {
        unsigned w = ws[i];
        int k = base[i];
        pad_stats(f->close, n, w, s->run_c, &pm[i], &psd[i]);
        pad_stats(f->vol, n, w, s->run_v, &vm[i], &vsd[i]);
        dq_push(f, dqmax[i], f->close, RMASK, n, c, w, 1);
        dq_push(f, dqmax[i] + 1, f->close, RMASK, n, c, w, 0);
        double mx = dq_front(f, dqmax[i], f->close, RMASK);
        double mn = dq_front(f, dqmax[i] + 1, f->close, RMASK);
        double p0 = f->close[n + 1 >= w ? (n + 1 - w) & RMASK : 0];
        o[k + 0] = pm[i];
        o[k + 1] = psd[i];
        o[k + 2] = mn;
        o[k + 3] = mx;
        o[k + 4] = mx - mn;
        o[k + 5] = vm[i];
        o[k + 6] = vsd[i];
        o[k + 7] = div0(v, vm[i]);
        o[k + 8] = c / p0 - 1.0;
        o[k + 9] = psd[i] / pm[i];
    }

    /* SMAs and Bollinger (rolling_20 over exactly the pad_20 window from bar 19) */
    double sma20 = n >= 19 ? pm[2] : nan;
    double sd20 = n >= 19 ? psd[2] : nan;
    o[F_SMA_20] = sma20;
    o[F_SMA_50] = n >= 49 ? roll_mean(f->close, n, 50, s->run_c) : nan;
    o[F_BB_MIDDLE] = sma20;
    double bbu = sma20 + 2.0 * sd20, bbl = sma20 - 2.0 * sd20;
    o[F_BB_UPPER] = bbu;
    o[F_BB_LOWER] = bbl;
    o[F_BB_WIDTH] = div0(bbu - bbl, sma20);
    o[F_BB_POSITION] = div0(c - bbl, bbu - bbl);

    /* ATR (the `ta` package's: zeros, then a mean seed at bar 13, then Wilder) */
    {
        /* bar values are finite (checked), so plain comparisons replace the
           NaN-aware libm fmax/fmin calls */
        double tr = h - l;
        if (!first) {
            double a = fabs(h - pcl), z = fabs(l - pcl);
            tr = a > tr ? a : tr;
            tr = z > tr ? z : tr;
        }
        double atr;
        if (n < 13) {
            f->tr0[n] = tr;
            atr = 0.0;
        } else if (n == 13) {
            /* numpy's pairwise sum of 14 values: 8 accumulators, then the rest */
            const double *r = f->tr0;
            f->tr0[13] = tr;
            double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (int i = 8; i < 14; i++)
                sum += r[i];
            atr = sum / 14.0;
        } else {
            atr = (s->atr * 13.0 + tr) / 14.0;
        }
        s->run_a = !first && atr == s->atr ? s->run_a + 1 : 1;
        s->atr = atr;
        ring2_put(f->atr, n, atr);
        o[F_ATR] = atr;
    }

    /* stochastics (rolling_14 extremes) and support / resistance (rolling_20) */
    dq_push(f, DQ_HH14, f->high, RMASK, n, h, 14, 1);
    dq_push(f, DQ_LL14, f->low, RMASK, n, l, 14, 0);
    dq_push(f, DQ_HH20, f->high, RMASK, n, h, 20, 1);
    dq_push(f, DQ_LL20, f->low, RMASK, n, l, 20, 0);
    {
        double k = nan, wr = nan;
        if (n >= 13) {
            double hh = dq_front(f, DQ_HH14, f->high, RMASK);
            double ll = dq_front(f, DQ_LL14, f->low, RMASK);
            k = div0(100.0 * (c - ll), hh - ll);
            wr = div0(-100.0 * (hh - c), hh - ll);
        }
        double pk = n >= 1 ? f->stoch[(n - 1) & RMASK] : nan;
        s->run_k = k == pk ? s->run_k + 1 : 1;
        f->stoch[sl] = k;
        double d = nan;
        if (n >= 15) {
            double k1 = pk, k2 = f->stoch[(n - 2) & RMASK];
            if (!isnan(k) && !isnan(k1) && !isnan(k2))
                d = s->run_k >= 3 ? k : (k2 + k1 + k) / 3.0;
        }
        o[F_STOCH_K] = k;
        o[F_STOCH_D] = d;
        o[F_WILLIAMS_R] = wr;
        o[F_SUPPORT] = n >= 19 ? dq_front(f, DQ_LL20, f->low, RMASK) : nan;
        o[F_RESISTANCE] = n >= 19 ? dq_front(f, DQ_HH20, f->high, RMASK) : nan;
    }

    /* directional movement, TA-Lib 0.4 (period 14) */
    {
        double dip = nan, dim = nan, adx = nan;
        if (!first) {
            double up = h - phi, down = plo - l;
            double pdm = up > 0 && up > down ? up : 0.0;
            double mdm = down > 0 && down > up ? down : 0.0;
            double tr1 = (h > pcl ? h : pcl) - (l < pcl ? l : pcl);
            if (n < 14) {
                s->sp += pdm;
                s->sm += mdm;
                s->str += tr1;
            } else {
                s->sp = s->sp - s->sp / 14.0 + pdm;
                s->sm = s->sm - s->sm / 14.0 + mdm;
                s->str = s->str - s->str / 14.0 + tr1;
                int have_dx = 0;
                double dx = 0;
                if (-1e-8 < s->str && s->str < 1e-8) {
                    dip = dim = 0.0;
                } else {
                    dip = 100.0 * (s->sp / s->str);
                    dim = 100.0 * (s->sm / s->str);
                    double sum = dim + dip;
                    if (!(-1e-8 < sum && sum < 1e-8)) {
                        dx = 100.0 * (fabs(dim - dip) / sum);
                        have_dx = 1;
                    }
                }
                if (n <= 27) {
                    if (have_dx)
                        s->sum_dx += dx;
                    if (n == 27)
                        s->adx = s->sum_dx / 14.0;
                } else if (have_dx) {
                    s->adx = (s->adx * 13.0 + dx) / 14.0;
                }
                if (n >= 27)
                    adx = s->adx;
            }
        }
        o[F_DI_PLUS] = dip;
        o[F_DI_MINUS] = dim;
        o[F_ADX] = adx;
    }

    /* price change */
    double pchg = c / pcl - 1.0; /* NaN at bar 0 */
    f->pc[sl] = pchg;
    o[F_PRICE_CHANGE] = pchg;
    o[F_PRICE_CHANGE_ABS] = fabs(pchg);
    o[F_HIGH_LOW_RATIO] = h / l;
    o[F_CLOSE_OPEN_RATIO] = c / b->open;

    /* lags */
    {
        static const unsigned lags[5] = {1, 2, 3, 5, 10};
        for (int i = 0; i < 5; i++) {
            unsigned k = lags[i];
            int ok = n >= k;
            unsigned j = (unsigned)((n - k) & RMASK);
            o[F_CLOSE_LAG_1 + 3 * i] = ok ? f->close[j] : nan;
            o[F_VOLUME_LAG_1 + 3 * i] = ok ? f->vol[j] : nan;
            o[F_PRICE_CHANGE_LAG_1 + 3 * i] = ok ? f->pc[j] : nan;
        }
        for (unsigned k = 1; k <= 3; k++) {
            int ok = n >= k;
            unsigned j = (unsigned)((n - k) & RMASK);
            o[F_RSI_LAG_1 + 3 * (k - 1)] = ok ? f->rsi[j] : nan;
            o[F_MACD_LAG_1 + 3 * (k - 1)] = ok ? f->macd[j] : nan;
            o[F_ATR_LAG_1 + 3 * (k - 1)] = ok ? f->atr[j] : nan;
        }
    }

    /* volume */
    {
        double vsma = n >= 19 ? vm[2] : nan;
        o[F_VOLUME_SMA] = vsma;
        o[F_VOLUME_RATIO] = div0(v, vsma);
        o[F_VOLUME_SURGE] = v > 1.5 * vsma ? 1.0 : 0.0;
        o[F_VOLUME_PRICE_TREND] = (c - pcl) * v;
        o[F_VOLUME_PRICE_RATIO] = v / c;
        s->obv = (first ? 0.0 : s->obv) + (c < pcl ? -v : v);
        o[F_OBV] = s->obv;
        double vwap = nan;
        if (n >= 19)
            vwap = div0(sum_w(ring2_win(f->cv, n, 20), 20), sum_w(ring2_win(f->vol, n, 20), 20));
        o[F_VWAP] = vwap;
    }

    /* regime */
    {
        double atr_mean = n >= 49 ? roll_mean(f->atr, n, 50, s->run_a) : nan;
        o[F_VOLATILITY_REGIME_HIGH] = s->atr > atr_mean ? 1.0 : 0.0;
        double e9 = ema[0], e21 = ema[1], e50 = ema[2];
        double tr = 0.0;
        if (e9 > e21 && e21 > e50)
            tr = 3.0;
        else if (e9 > e21 && e21 <= e50)
            tr = 2.0;
        else if (e9 <= e21 && e21 < e50)
            tr = 1.0;
        o[F_TREND_REGIME] = tr;
        o[F_HIGHER_HIGHS] = h > phi ? 1.0 : 0.0;
        o[F_HIGHER_LOWS] = l > plo ? 1.0 : 0.0;
        o[F_LOWER_HIGHS] = h < phi ? 1.0 : 0.0;
        o[F_LOWER_LOWS] = l < plo ? 1.0 : 0.0;
        o[F_PRICE_TO_SUPPORT] = (c - o[F_SUPPORT]) / c;
        o[F_PRICE_TO_RESISTANCE] = (o[F_RESISTANCE] - c) / c;
    }

    s->t_last = b->t;
    s->n = n + 1;
}

/* ---- public ------------------------------------------------------------- */

int ap_features_new(ap_features **out, ap_error *err)
{
    ap_features *f = calloc(1, sizeof *f);
    if (!f)
        return ap__error_set(err, AP_ENOMEM, "features: out of memory");
    *out = f;
    return AP_OK;
}

void ap_features_free(ap_features *f)
{
    free(f);
}

void ap_features_reset(ap_features *f)
{
    memset(f, 0, sizeof *f);
}

uint64_t ap_features_bars(const ap_features *f)
{
    return f->st.n;
}

int ap_bar_check(const ap_bar *b, ap_error *err)
{
    static const char *const pn[4] = {"open", "high", "low", "close"};
    const double p[4] = {b->open, b->high, b->low, b->close};
    for (int i = 0; i < 4; i++)
        if (!isfinite(p[i]) || !(p[i] > 0))
            return ap__error_set(err, AP_EINVAL, "bar: %s %.17g is not a finite price > 0", pn[i],
                                p[i]);
    if (!isfinite(b->volume) || !(b->volume >= 0))
        return ap__error_set(err, AP_EINVAL, "bar: volume %.17g is not finite and >= 0", b->volume);
    if (b->high < b->low)
        return ap__error_set(err, AP_EINVAL, "bar: high %.17g is below low %.17g", b->high, b->low);
    return AP_OK;
}

/* Put back the state from before the last bar (see the top of this file). */
static void undo_last(ap_features *f)
{
    f->st = f->prev;
    for (int k = 0; k < DQ_N; k++)
        f->dq[k][f->dq_undo_pos[k]] = f->dq_undo_val[k];
}

int ap_features_push(ap_features *f, const ap_bar *bar, double *out, ap_error *err)
{
    int rc = ap_bar_check(bar, err);
    if (rc)
        return rc;
    if (f->st.n > 0 && bar->t < f->st.t_last) {
        char a[40], b[40];
        return ap__error_set(err, AP_EINVAL, "bar: time %s is older than the last bar's (%s)",
                            ap_format_timestamp(bar->t, a, sizeof a),
                            ap_format_timestamp(f->st.t_last, b, sizeof b));
    }
    if (f->st.n > 0 && bar->t == f->st.t_last)
        undo_last(f);
    else
        f->prev = f->st;
    double tmp[AP_FEATURE_COUNT];
    step(f, bar, out ? out : tmp);
    return AP_OK;
}

int ap_features_compute(const ap_bar *bars, size_t n, double *out, ap_error *err)
{
    if (n == 0)
        return AP_OK;
    if (!bars || !out)
        return ap__error_set(err, AP_EINVAL, "features: NULL bars or output for %zu bars", n);
    if (n > SIZE_MAX / (AP_FEATURE_COUNT * sizeof(double)))
        return ap__error_set(err, AP_ERANGE, "features: %zu bars overflow the output size", n);
    ap_features *f = NULL;
    int rc = ap_features_new(&f, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        ap_error e = {0};
        rc = ap_features_push(f, &bars[i], out + i * AP_FEATURE_COUNT, &e);
        if (rc) {
            const char *why = strncmp(e.msg, "bar: ", 5) ? e.msg : e.msg + 5;
            ap__error_set(err, rc, "bar %zu: %s", i, why);
            break;
        }
    }
    ap_features_free(f);
    return rc;
}
