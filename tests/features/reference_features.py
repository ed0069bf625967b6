#!/usr/bin/python3
"""alphapulse-v1 in batch form with pandas/numpy: an independent reference.

Written from the spec (docs/FEATURES.md), not from the C engine, and checked
against the shipped reference files by test_pandas_reference.py before it is
trusted on other data. Vectorised pandas where the spec is a pandas idiom
(ewm, rolling extremes, shifts); numpy sliding windows for the exact two-pass
standard deviations; plain loops only for the TA-Lib / `ta` recursions (ATR,
directional movement), as the originals are loops too.

usage: reference_features.py BARS.csv [OUT.csv]   (OUT default: stdout)
"""
import sys

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

NAMES = """open high low close volume ema_9 ema_21 ema_50 sma_20 sma_50 macd macd_signal
macd_histogram rsi bb_middle bb_upper bb_lower bb_width bb_position atr stoch_k stoch_d williams_r
di_plus di_minus adx price_change price_change_abs high_low_ratio close_open_ratio""".split()
for _w in (5, 10, 20):
    NAMES += [f"{n}_{_w}" for n in ("price_mean", "price_std", "price_min", "price_max",
                                   "price_range", "volume_mean", "volume_std", "volume_ratio",
                                   "momentum", "volatility")]
for _k in (1, 2, 3, 5, 10):
    NAMES += [f"close_lag_{_k}", f"volume_lag_{_k}", f"price_change_lag_{_k}"]
for _k in (1, 2, 3):
    NAMES += [f"rsi_lag_{_k}", f"macd_lag_{_k}", f"atr_lag_{_k}"]
NAMES += """volume_sma volume_ratio volume_surge volume_price_trend volume_price_ratio obv vwap
volatility_regime_high trend_regime higher_highs higher_lows lower_highs lower_lows support
resistance price_to_support price_to_resistance""".split()
assert len(NAMES) == 101


def div(a, b):
    """a / b with NaN where b is exactly 0 (the spec's division rule)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, np.nan, a / b)


def ewm(s, span):
    return s.ewm(span=span, adjust=False, min_periods=span).mean()


def window_stats(x, w, pad):
    """Mean and exact two-pass population std of each window of w values.

    pad: windows exist from the first value (numpy edge padding); otherwise the
    first w-1 results are NaN. A window of identical values gets mean exactly
    that value and std exactly 0, as the spec requires (np.mean of identical
    values is not always exact)."""
    x = np.asarray(x, dtype=float)
    src = np.pad(x, (w - 1, 0), mode="edge") if pad else x
    n = len(x)
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    if len(src) < w:
        return mean, std
    win = sliding_window_view(src, w)
    m = win.mean(axis=1)
    sd = np.sqrt(((win - m[:, None]) ** 2).mean(axis=1))
    same = win.max(axis=1) == win.min(axis=1)
    m = np.where(same, win[:, -1], m)
    sd = np.where(same, 0.0, sd)
    mean[n - len(m):] = m
    std[n - len(m):] = sd
    return mean, std


def pad_extremes(x, w):
    src = np.pad(np.asarray(x, dtype=float), (w - 1, 0), mode="edge")
    win = sliding_window_view(src, w)
    return win.min(axis=1), win.max(axis=1), win[:, 0]


def atr_ta(high, low, close, n=14):
    """The `ta` package's AverageTrueRange: zeros, mean seed at bar n-1, Wilder."""
    m = len(close)
    tr = np.empty(m)
    if m:
        tr[0] = high[0] - low[0]
    for t in range(1, m):
        tr[t] = max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
    atr = np.zeros(m)
    if m >= n:
        atr[n - 1] = tr[0:n].mean()
        for t in range(n, m):
            atr[t] = (atr[t - 1] * (n - 1) + tr[t]) / float(n)
    return atr


def dmi_talib(high, low, close, n=14):
    """TA-Lib 0.4 PLUS_DI, MINUS_DI, ADX (period n), bar by bar as TA-Lib loops."""
    m = len(close)
    dip = np.full(m, np.nan)
    dim = np.full(m, np.nan)
    adx = np.full(m, np.nan)

    def is_zero(v):
        return -1e-8 < v < 1e-8

    sp = sm = st = 0.0
    sum_dx = 0.0
    prev_adx = np.nan
    for t in range(1, m):
        up = high[t] - high[t - 1]
        dn = low[t - 1] - low[t]
        pdm = up if (up > 0 and up > dn) else 0.0
        mdm = dn if (dn > 0 and dn > up) else 0.0
        tr = max(high[t], close[t - 1]) - min(low[t], close[t - 1])
        if t < n:
            sp += pdm
            sm += mdm
            st += tr
            continue
        sp = sp - sp / n + pdm
        sm = sm - sm / n + mdm
        st = st - st / n + tr
        dx = None
        if is_zero(st):
            dip[t] = dim[t] = 0.0
        else:
            dip[t] = 100.0 * (sp / st)
            dim[t] = 100.0 * (sm / st)
            tot = dim[t] + dip[t]
            if not is_zero(tot):
                dx = 100.0 * (abs(dim[t] - dip[t]) / tot)
        if t <= 2 * n - 1:
            if dx is not None:
                sum_dx += dx
            if t == 2 * n - 1:
                prev_adx = sum_dx / n
        elif dx is not None:
            prev_adx = (prev_adx * (n - 1) + dx) / n
        if t >= 2 * n - 1:
            adx[t] = prev_adx
    return dip, dim, adx


def features(df):
    o = df["open"].astype(float)
    h = df["high"].astype(float)
    lo = df["low"].astype(float)
    c = df["close"].astype(float)
    v = df["volume"].astype(float)
    C, H, L, V = c.to_numpy(), h.to_numpy(), lo.to_numpy(), v.to_numpy()
    f = {"open": o, "high": h, "low": lo, "close": c, "volume": v}

    for n in (9, 21, 50):
        f[f"ema_{n}"] = ewm(c, n)
    mean20, std20 = window_stats(C, 20, pad=False)
    mean50, _ = window_stats(C, 50, pad=False)
    f["sma_20"] = mean20
    f["sma_50"] = mean50
    macd = ewm(c, 12) - ewm(c, 26)
    sig = ewm(macd, 9)
    f["macd"] = macd
    f["macd_signal"] = sig
    f["macd_histogram"] = macd - sig

    d = c.diff()
    up = d.where(d > 0, 0.0)
    dn = (-d).where(d < 0, 0.0)
    U = up.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean().to_numpy()
    D = dn.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(D == 0, 100.0, 100.0 - 100.0 / (1.0 + U / D))
    rsi[np.isnan(U) | np.isnan(D)] = np.nan
    f["rsi"] = rsi

    upper = mean20 + 2 * std20
    lower = mean20 - 2 * std20
    f["bb_middle"] = mean20
    f["bb_upper"] = upper
    f["bb_lower"] = lower
    f["bb_width"] = div(upper - lower, mean20)
    f["bb_position"] = div(C - lower, upper - lower)

    atr = atr_ta(H, L, C)
    f["atr"] = atr
    ll14 = lo.rolling(14).min().to_numpy()
    hh14 = h.rolling(14).max().to_numpy()
    stoch_k = div(100 * (C - ll14), hh14 - ll14)
    f["stoch_k"] = stoch_k
    f["stoch_d"] = pd.Series(stoch_k).rolling(3).mean().to_numpy()
    f["williams_r"] = div(-100 * (hh14 - C), hh14 - ll14)
    f["di_plus"], f["di_minus"], f["adx"] = dmi_talib(H, L, C)

    pc = (c / c.shift(1) - 1).to_numpy()
    f["price_change"] = pc
    f["price_change_abs"] = np.abs(pc)
    f["high_low_ratio"] = H / L
    f["close_open_ratio"] = C / o.to_numpy()

    for w in (5, 10, 20):
        pm, ps = window_stats(C, w, pad=True)
        vm, vs = window_stats(V, w, pad=True)
        mn, mx, first = pad_extremes(C, w)
        f[f"price_mean_{w}"] = pm
        f[f"price_std_{w}"] = ps
        f[f"price_min_{w}"] = mn
        f[f"price_max_{w}"] = mx
        f[f"price_range_{w}"] = mx - mn
        f[f"volume_mean_{w}"] = vm
        f[f"volume_std_{w}"] = vs
        f[f"volume_ratio_{w}"] = div(V, vm)
        f[f"momentum_{w}"] = C / first - 1
        f[f"volatility_{w}"] = div(ps, pm)

    for k in (1, 2, 3, 5, 10):
        f[f"close_lag_{k}"] = c.shift(k)
        f[f"volume_lag_{k}"] = v.shift(k)
        f[f"price_change_lag_{k}"] = pd.Series(pc).shift(k).to_numpy()
    for k in (1, 2, 3):
        f[f"rsi_lag_{k}"] = pd.Series(rsi).shift(k).to_numpy()
        f[f"macd_lag_{k}"] = macd.shift(k)
        f[f"atr_lag_{k}"] = pd.Series(atr).shift(k).to_numpy()

    vsma, _ = window_stats(V, 20, pad=False)
    f["volume_sma"] = vsma
    f["volume_ratio"] = div(V, vsma)
    with np.errstate(invalid="ignore"):
        f["volume_surge"] = (V > 1.5 * vsma).astype(float)
    f["volume_price_trend"] = c.diff().to_numpy() * V
    f["volume_price_ratio"] = V / C
    f["obv"] = np.cumsum(np.where(C < c.shift(1).to_numpy(), -V, V))
    f["vwap"] = div((c * v).rolling(20).sum(), v.rolling(20).sum())

    atr_mean, _ = window_stats(atr, 50, pad=False)
    with np.errstate(invalid="ignore"):
        f["volatility_regime_high"] = (atr > atr_mean).astype(float)
        e9, e21, e50 = (f[f"ema_{n}"].to_numpy() for n in (9, 21, 50))
        tr = np.zeros(len(C))
        tr = np.where((e9 <= e21) & (e21 < e50), 1.0, tr)
        tr = np.where((e9 > e21) & (e21 <= e50), 2.0, tr)
        tr = np.where((e9 > e21) & (e21 > e50), 3.0, tr)
        f["trend_regime"] = tr
        ph, pl = h.shift(1).to_numpy(), lo.shift(1).to_numpy()
        f["higher_highs"] = (H > ph).astype(float)
        f["higher_lows"] = (L > pl).astype(float)
        f["lower_highs"] = (H < ph).astype(float)
        f["lower_lows"] = (L < pl).astype(float)
    sup = lo.rolling(20).min().to_numpy()
    res = h.rolling(20).max().to_numpy()
    f["support"] = sup
    f["resistance"] = res
    f["price_to_support"] = (C - sup) / C
    f["price_to_resistance"] = (res - C) / C

    out = pd.DataFrame({k: np.asarray(f[k], dtype=float) for k in NAMES})
    return out


def write_csv(ts, feats, fp):
    fp.write("timestamp," + ",".join(NAMES) + "\n")
    vals = feats.to_numpy()
    for t, row in zip(ts, vals):
        fp.write(t + "," + ",".join("nan" if x != x else "%.17g" % x for x in row) + "\n")


def main():
    df = pd.read_csv(sys.argv[1], dtype={"timestamp": str})
    feats = features(df)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as fp:
            write_csv(df["timestamp"], feats, fp)
    else:
        write_csv(df["timestamp"], feats, sys.stdout)


if __name__ == "__main__":
    main()
