#!/usr/bin/python3
"""Train the demo model repository examples/models from the bars in examples/data.

Features come from the engine itself (the alphapulse Python package over
build/libalphapulse.so: the code `alphapulse serve` runs), so training and
serving read the same numbers. Labels follow the original AlphaPulse rules,
applied to the NEXT bar's features (a predictive label: the model at bar t says
what bar t+1 will look like; the last bar of each series has no label):
  pattern: reversal when |price_change| > 0.02 and volume_ratio > 1.5,
           otherwise continuation;
  regime:  volatile when volatility_20 > 0.03, otherwise bull when
           momentum_20 > 0.05, bear when momentum_20 < -0.05, otherwise sideways.
Each base model is a binary one-vs-rest classifier behind its sklearn pipeline:
XGBoost for five of them (served as XGBoost JSON or UBJSON), a scikit-learn
random forest for 'bear' (served as ONNX, written by tools/export_onnx.py), so
the demo holds its models in more than one format. The ensemble 'meta' is a logistic regression over the six base
models' probabilities, target: reversal at the next bar, fitted on the later
30% of each series (the base models are fitted on the first 70%).

Usage: tools/train_demo.py [--output examples/models]   (after `make`)
Deterministic (fixed seeds, single-threaded XGBoost and random forest, exact
PCA: sklearn would pick its randomized solver for these shapes).
"""
import argparse
import os
import shutil
import sys

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
import alphapulse  # noqa: E402
from export_model import export_ensemble, export_sklearn  # noqa: E402

SERIES = ["goog_daily.csv", "usdchf_4h.csv"]
WARMUP = 50      # first bars of a series: indicators still warming up, not trained on
TRAIN_FRAC = 0.7

PATTERN_FEATURES = ["price_change", "price_change_abs", "volume_ratio", "volume_ratio_5",
                    "volume_surge", "rsi", "bb_position", "atr", "volatility_5",
                    "volatility_20", "momentum_5", "williams_r", "stoch_k", "macd_histogram"]
REGIME_FEATURES = ["momentum_5", "momentum_10", "momentum_20", "trend_regime", "rsi", "adx",
                   "di_plus", "di_minus", "price_to_support", "price_to_resistance",
                   "bb_width", "volatility_10", "volatility_20", "macd_histogram"]
VOLATILITY_FEATURES = ["volatility_5", "volatility_10", "volatility_20", "bb_width",
                       "high_low_ratio", "price_change_abs", "volatility_regime_high",
                       "price_range_20", "close"]


def labels(f):
    """Labels of each bar from the next bar's features (NaN compares false)."""
    n = f.shift(-1)
    rev = (n["price_change"].abs() > 0.02) & (n["volume_ratio"] > 1.5)
    volatile = n["volatility_20"] > 0.03
    bull = ~volatile & (n["momentum_20"] > 0.05)
    bear = ~volatile & (n["momentum_20"] < -0.05)
    return pd.DataFrame({"reversal": rev, "continuation": ~rev, "volatile": volatile,
                         "bull": bull, "bear": bear, "sideways": ~volatile & ~bull & ~bear,
                         }).astype(int)


def xgb_clf(n):
    return xgb.XGBClassifier(n_estimators=n, max_depth=4, learning_rate=0.1, subsample=0.9,
                             random_state=0, n_jobs=1, tree_method="hist")


def pipe(steps, n_trees=60):
    fill = ("fill", SimpleImputer(strategy="constant", fill_value=0.0))
    return Pipeline([fill] + steps + [("xgb", xgb_clf(n_trees))])


def forest():
    # sklearn 1.2's forests refuse NaN: fill first, as the XGBoost pipelines do; the
    # scaler changes nothing for trees, it shows a pipeline in front of an ONNX model
    return Pipeline([("fill", SimpleImputer(strategy="constant", fill_value=0.0)),
                     ("scale", StandardScaler()),
                     ("rf", RandomForestClassifier(n_estimators=50, max_depth=6,
                                                   random_state=0, n_jobs=1))])


def pca(n):
    # exact SVD: for these shapes sklearn would pick its randomized solver (not reproducible)
    return ("pca", PCA(n_components=n, svd_solver="full"))


# name -> (kind, features, pipeline, export options)
MODELS = {
    "reversal": ("pattern", PATTERN_FEATURES,
                 lambda: pipe([("scale", StandardScaler()), pca(8)]),
                 dict(ubj=False)),
    "continuation": ("pattern", PATTERN_FEATURES,
                     lambda: pipe([("scale", StandardScaler())]), dict(ubj=True)),
    "bull": ("regime", REGIME_FEATURES,
             lambda: pipe([("scale", StandardScaler()), pca(6)]),
             dict(ubj=False)),
    "bear": ("regime", REGIME_FEATURES, forest, dict()),
    "sideways": ("regime", REGIME_FEATURES, lambda: pipe([("scale", StandardScaler())]),
                 dict(ubj=False, confidence="margin")),
    "volatile": ("regime", VOLATILITY_FEATURES,
                 lambda: pipe([("scale", StandardScaler()), pca(5)]),
                 dict(ubj=True)),
}


def main():
    ap = argparse.ArgumentParser(description="train the demo model repository")
    ap.add_argument("--data", default=os.path.join(ROOT, "examples", "data"))
    ap.add_argument("--output", default=os.path.join(ROOT, "examples", "models"))
    a = ap.parse_args()

    train, meta, full = [], [], []
    for s in SERIES:
        f = alphapulse.features(pd.read_csv(os.path.join(a.data, s)))
        lab = labels(f)
        rows = f.join(lab).iloc[WARMUP:-1]       # the last bar has no next bar
        cut = int(len(rows) * TRAIN_FRAC)
        train.append(rows.iloc[:cut])
        meta.append(rows.iloc[cut:])
        full.append(f)
        print("%s: %d bars, labelled %d; %s" % (s, len(f), len(rows), ", ".join(
            "%s=%d" % (k, lab[k].iloc[WARMUP:-1].sum()) for k in lab.columns)))
    train, meta = pd.concat(train), pd.concat(meta)

    if os.path.exists(a.output):
        shutil.rmtree(a.output)
    os.makedirs(a.output)
    fitted = {}
    for name, (kind, feats, make, opts) in MODELS.items():
        p = make().fit(train[feats].to_numpy(), train[name].to_numpy())
        if name == "reversal":
            # an older, smaller version 1, so the demo shows versions (2 is served)
            old = pipe([("scale", StandardScaler()), pca(8)], n_trees=10)
            old.fit(train[feats].to_numpy(), train[name].to_numpy())
            export_sklearn(old, a.output, name, kind, name, features=feats,
                           description="demo: %s at the next bar (version 1: an older "
                                       "10-tree model; version 2: 60 trees)" % name,
                           **opts)
        export_sklearn(p, a.output, name, kind, name, features=feats,
                       description="demo: %s at the next bar" % name, **opts)
        fitted[name] = (p, feats)
        pm = p.predict_proba(meta[feats].to_numpy())[:, 1]
        auc = roc_auc_score(meta[name], pm) if meta[name].nunique() > 1 else float("nan")
        print("%-13s %-7s %2d features  pipeline %-28s holdout AUC %.3f" % (
            name, kind, len(feats), "+".join(n for n, _ in p.steps[:-1]) or "-", auc))

    members = list(MODELS)
    P = np.column_stack([fitted[m][0].predict_proba(meta[fitted[m][1]].to_numpy())[:, 1]
                         for m in members])
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(P, meta["reversal"])
    export_ensemble(a.output, "meta", "reversal", members, coefficients=lr.coef_[0],
                    intercept=lr.intercept_,
                    description="demo: logistic meta-learner over the six base models")
    print("meta: logistic over %s, coefficients %s, intercept %.4f" % (
        members, np.round(lr.coef_[0], 3).tolist(), lr.intercept_[0]))

    # self-check: the engine serves what sklearn predicts, on every bar
    repo = alphapulse.Repository(a.output)
    if repo.failures:
        sys.exit("the engine refused: %s" % repo.failures)
    print("engine loads: %s" % ", ".join(repo.models))
    f = full[0]
    worst = 0.0
    for name, (p, feats) in fitted.items():
        got = repo.predict(name, f)["prediction"].to_numpy()
        worst = max(worst, np.abs(got - p.predict_proba(f[feats].to_numpy())[:, 1]).max())
    repo.close()
    print("served vs sklearn on %s: max |diff| %.3g" % (SERIES[0], worst))
    if worst > 1e-6:
        sys.exit("served predictions differ from sklearn")

if __name__ == "__main__":
    main()
