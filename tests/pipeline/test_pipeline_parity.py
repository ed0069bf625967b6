#!/usr/bin/python3
"""Pipelines and ensembles served from a repository match scikit-learn / XGBoost.

Fits sklearn pipelines (imputer, scaler, PCA, selector, XGBoost estimator) at
test time on the reference alphapulse-v1 features, exports them with
tools/export_model.py into a temporary repository, then runs
`alphapulse check-repo REPO --model NAME --input X.csv [--transform|--raw]`
on the same rows and compares, to 1e-6:
  - the pipeline output with pipeline[:-1].transform(X)
  - prediction / outputs with predict_proba (binary: class 1; multiclass: all)
  - confidence with max(p, 1-p) / |2p-1| / the max class probability
  - a LightGBM text model (fixture) with LightGBM's own predictions
  - ensembles with a numpy computation: expit(coef . p + b), weighted mean,
    and 1 - population std of the member probabilities.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.decomposition import PCA
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ROOT = os.environ.get("AP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from export_model import export_ensemble, export_lightgbm, export_sklearn  # noqa: E402

TOL = 1e-6
failures = []


def check(label, got, want):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        failures.append("%s: shape %s vs %s" % (label, got.shape, want.shape))
        print("FAIL %s: shape %s vs expected %s" % (label, got.shape, want.shape))
        return
    nan_ok = np.array_equal(np.isnan(got), np.isnan(want))
    diff = np.nanmax(np.abs(got - want)) if got.size else 0.0
    ok = nan_ok and diff <= TOL
    print("%s %-44s rows=%d max|diff|=%.3g" % ("ok  " if ok else "FAIL", label, len(got), diff))
    if not ok:
        failures.append(label)


def run(repo, model, inp, *extra):
    # outputs go beside the temporary repository, never into the source tree
    out = os.path.join(os.path.dirname(repo), "%s%s.csv" % (model, "".join(extra)))
    r = subprocess.run([BIN, "check-repo", repo, "--model", model, "--input", inp,
                        "--output", out] + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        raise SystemExit("check-repo --model %s failed (rc %d)" % (model, r.returncode))
    return pd.read_csv(out)


def main():
    df = pd.read_csv(os.path.join(ROOT, "tests/data/features/ttrc_daily_alphapulse_v1.csv"))
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="ap_pipe_", dir=os.path.join(ROOT, "build"))
    repo = os.path.join(tmp, "repo")
    feats_csv = os.path.join(tmp, "features.csv")
    df.to_csv(feats_csv, index=False, na_rep="nan", float_format="%.17g")
    # labels: next close up (binary), and a 3-class version of the next move
    nxt = df["close"].shift(-1) / df["close"] - 1
    y2 = (nxt > 0).astype(int).to_numpy()
    y3 = np.digitize(nxt.fillna(0).to_numpy(), [-0.01, 0.01])

    fa = ["rsi", "macd", "macd_signal", "atr", "volume_ratio", "momentum_20", "volatility_20",
          "price_change", "bb_position", "adx", "stoch_k", "obv"]
    fb = ["close", "ema_9", "ema_50", "sma_50", "volume", "williams_r", "price_to_support",
          "volume_surge", "trend_regime", "higher_highs"]
    pipes = {
        # constant fill, scaler, PCA: the demo's usual pipeline
        "p_scaler_pca": (Pipeline([
            ("fill", SimpleImputer(strategy="constant", fill_value=0.0)),
            ("scale", StandardScaler()), ("pca", PCA(n_components=6)),
            ("xgb", xgb.XGBClassifier(n_estimators=30, max_depth=4))]), fa, y2,
            dict(ubj=False)),
        # mean fill (per-column values), scaler without mean, variance selector, UBJSON
        "p_mean_select": (Pipeline([
            ("fill", SimpleImputer(strategy="median")),
            ("scale", StandardScaler(with_mean=False)),
            ("sel", VarianceThreshold(threshold=0.0)),
            ("xgb", xgb.XGBClassifier(n_estimators=25, max_depth=3))]), fb, y2,
            dict(ubj=True, confidence="margin")),
        # whitened PCA, multiclass, prediction = class 2
        "p_multiclass": (Pipeline([
            ("fill", SimpleImputer(strategy="constant", fill_value=-1.0)),
            ("scale", StandardScaler()), ("pca", PCA(n_components=4, whiten=True)),
            ("xgb", xgb.XGBClassifier(n_estimators=15, max_depth=3))]), fa[:8], y3,
            dict(output_index=2)),
        # no pipeline: NaN goes to XGBoost as missing
        "p_none": (Pipeline([("xgb", xgb.XGBClassifier(n_estimators=20, max_depth=4))]), fb,
                   y2, dict(ubj=True)),
    }
    probs = {}
    for name, (pipe, feats, y, kw) in pipes.items():
        X = df[feats].to_numpy()
        pipe.fit(X, y)
        export_sklearn(pipe, repo, name, "pattern", "next_up", features=feats, **kw)
        proba = pipe.predict_proba(X)
        oi = kw.get("output_index", 1 if proba.shape[1] == 2 else 0)
        # in double, as the engine computes 1 - p (sklearn's class-0 column is float32)
        proba = proba.astype(np.float64)
        if proba.shape[1] == 2:
            proba[:, 0] = 1.0 - proba[:, 1]
        p = proba[:, oi] if proba.shape[1] > 2 else proba[:, 1]
        probs[name] = p
        got = run(repo, name, feats_csv)
        check(name + " prediction", got["prediction"], p)
        outs = got[[c for c in got.columns if c.startswith("output_")]].to_numpy()
        check(name + " outputs", outs, proba if proba.shape[1] > 2 else proba[:, 1:])
        if kw.get("confidence") == "margin":
            want_conf = np.abs(2 * p - 1)
        elif proba.shape[1] > 2:
            want_conf = proba.max(axis=1)
        else:
            want_conf = np.maximum(p, 1 - p)
        check(name + " confidence", got["confidence"], want_conf)
        if len(pipe.steps) > 1:
            check(name + " transform", run(repo, name, feats_csv, "--transform").to_numpy(),
                  pipe[:-1].transform(X))

    # raw model: a tensor with an all-NaN column at fit time (median imputer drops it)
    Xr = rng.normal(size=(400, 6))
    Xr[:, 2] = np.nan
    Xr[rng.random(Xr.shape) < 0.1] = np.nan
    yr = (np.nan_to_num(Xr[:, 0]) + np.nan_to_num(Xr[:, 3]) > 0).astype(int)
    raw = Pipeline([("fill", SimpleImputer(strategy="mean")), ("scale", StandardScaler()),
                    ("xgb", xgb.XGBClassifier(n_estimators=10, max_depth=3))]).fit(Xr, yr)
    export_sklearn(raw, repo, "p_raw", "raw", "synthetic", input_width=6)
    raw_csv = os.path.join(tmp, "raw.csv")
    pd.DataFrame(Xr, columns=["c%d" % j for j in range(6)]).to_csv(raw_csv, index=False,
                                                                   na_rep="nan",
                                                                   float_format="%.17g")
    check("p_raw prediction", run(repo, "p_raw", raw_csv, "--raw")["prediction"],
          raw.predict_proba(Xr)[:, 1])
    check("p_raw transform", run(repo, "p_raw", raw_csv, "--raw", "--transform").to_numpy(),
          raw[:-1].transform(Xr))

    # LightGBM text model as a raw model (30 inputs), against LightGBM's own outputs
    lgb = os.path.join(ROOT, "tests/data/lightgbm/binary")
    export_lightgbm(os.path.join(lgb, "model.txt"), repo, "p_lightgbm", "raw", "fixture",
                    input_width=30, confidence="margin")
    want = pd.read_csv(os.path.join(lgb, "expected.csv"))["prediction"].to_numpy()
    got = run(repo, "p_lightgbm", os.path.join(lgb, "input.csv"), "--raw")
    check("p_lightgbm prediction (LightGBM's own)", got["prediction"], want)
    check("p_lightgbm confidence", got["confidence"], np.abs(2 * want - 1))

    # ensembles: a logistic meta-learner fitted by sklearn, and a weighted mean
    members = ["p_scaler_pca", "p_mean_select", "p_none"]
    P = np.column_stack([probs[m] for m in members])
    meta = LogisticRegression().fit(P, y2)
    export_ensemble(repo, "ens_logistic", "next_up", members, coefficients=meta.coef_[0],
                    intercept=meta.intercept_)
    w = np.array([0.5, 0.3, 0.2])
    export_ensemble(repo, "ens_mean", "next_up", members, weights=w)
    conf = 1 - P.std(axis=1)  # numpy std is the population std (ddof=0)
    got = run(repo, "ens_logistic", feats_csv)
    check("ens_logistic prediction", got["prediction"], meta.predict_proba(P)[:, 1])
    check("ens_logistic confidence", got["confidence"], conf)
    check("ens_logistic member outputs", got[["output_0", "output_1", "output_2"]], P)
    got = run(repo, "ens_mean", feats_csv)
    check("ens_mean prediction", got["prediction"], P @ w / w.sum())
    check("ens_mean confidence", got["confidence"], conf)
    # raw path of an ensemble: only the combiner, on given member probabilities
    Pq = rng.random((50, 3))
    pq_csv = os.path.join(tmp, "members.csv")
    pd.DataFrame(Pq, columns=members).to_csv(pq_csv, index=False, float_format="%.17g")
    got = run(repo, "ens_logistic", pq_csv, "--raw")
    check("ens_logistic --raw prediction", got["prediction"], meta.predict_proba(Pq)[:, 1])
    check("ens_logistic --raw confidence", got["confidence"], 1 - Pq.std(axis=1))

    # the whole repository loads
    r = subprocess.run([BIN, "check-repo", repo], capture_output=True, text=True)
    print(r.stdout.strip().splitlines()[-1])
    if r.returncode != 0:
        failures.append("check-repo on the exported repository")
        print(r.stdout)
    if failures:
        print("FAILED: %s (files kept in %s)" % (", ".join(failures), tmp))
        return 1
    shutil.rmtree(tmp)
    print("all comparisons within %g" % TOL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
