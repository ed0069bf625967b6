#!/usr/bin/python3
"""XGBoost parity: models trained here with python3-xgboost (1.7.x), saved as
JSON and UBJSON, predicted by `$AP_BIN predict`, must equal Booster.predict
exactly as float32 (transformed outputs and --raw margins).

Besides plain training, some models are edited and reloaded into XGBoost so
its own predict pins down a rule: sigmoid clamp on huge margins, categorical
default direction for out-of-range categories, pruned (deleted) nodes,
objective alias reg:linear. Also checks that the 2.x/3.x spellings
(base_score "[5E-1]", per-class lists) load to the same predictions.

DART layouts: XGBoost 1.7 writes {"name": "dart", "gbtree": {...}, "weight_drop"};
3.x writes {"name": "gbtree", "model": {..., "weight_drop"}} (src/gbm/gbtree.cc,
gbtree_model.cc). python3-xgboost is 1.7, so the 3.x files are made here by
moving the fields, in JSON and, through the small UBJSON codec of
xgb_layouts.py, in UBJSON (the rest of the file stays byte for byte what
XGBoost wrote), and
predicted against XGBoost's predictions of the 1.7 file.
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xgb_layouts import to_3x_dart, ubj_decode, ubj_encode  # noqa: E402

warnings.filterwarnings("ignore")
ROOT = os.environ.get("AP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
AP_BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
TMP = tempfile.mkdtemp(prefix="ap_xgb_parity_")
N = 300
failures = []
n_compared = 0


def f32_ulp(a, b):
    """Largest distance in float32 ulps between two float32 arrays."""
    def key(x):
        i = x.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.abs(key(a) - key(b))
    d[both_nan] = 0
    return int(d.max()) if d.size else 0


def write_csv(path, X, names):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in X:
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")


def run_cli(model, csv, raw):
    out = csv + (".raw" if raw else "") + ".out.csv"
    cmd = [AP_BIN, "predict", "--model", model, "--input", csv, "--output", out]
    if raw:
        cmd.append("--raw")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    # issue 12: the reduced-precision engine must print the very same bytes
    red = out + ".reduced.csv"
    cmd[cmd.index("--output") + 1] = red
    r = subprocess.run(cmd + ["--precision", "reduced"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, "--precision reduced: " + r.stderr.strip()
    with open(out, "rb") as a, open(red, "rb") as b:
        if a.read() != b.read():
            return None, "--precision reduced output differs from full precision"
    y = np.loadtxt(out, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    return y.astype(np.float32), None


def compare(label, got, want, err):
    global n_compared
    if got is None:
        failures.append(f"{label}: CLI failed: {err}")
        print(f"FAIL {label}: {err}")
        return
    want = np.asarray(want, dtype=np.float32).reshape(got.shape[0], -1)
    if got.shape != want.shape:
        failures.append(f"{label}: shape {got.shape} != {want.shape}")
        print(f"FAIL {label}: shape {got.shape} != {want.shape}")
        return
    n_compared += got.size
    bad = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    if bad.any():
        r = int(np.argwhere(bad)[0][0])
        failures.append(f"{label}: {int(bad.sum())}/{got.size} differ, max {f32_ulp(got, want)} ulp")
        print(f"FAIL {label}: {int(bad.sum())}/{got.size} values differ, max {f32_ulp(got, want)} "
              f"ulp; first row {r}: got {got[r]} want {want[r]}")
    else:
        print(f"ok   {label}: {got.shape[0]} rows x {got.shape[1]} exact (0 ulp)")


def edge_rows(model_json, X, rng, k=40):
    """Rows that sit exactly on split thresholds, just off them in double
    (same float), and far out: the comparisons most likely to differ."""
    rows = []
    trees = model_json["learner"]["gradient_booster"]
    trees = (trees.get("model") or trees["gbtree"]["model"])["trees"]
    splits = [(t["split_indices"][i], t["split_conditions"][i])
              for t in trees for i in range(len(t["left_children"]))
              if t["left_children"][i] != -1 and t.get("split_type", [0] * 99999)[i] == 0]
    for j in rng.permutation(len(splits))[:k]:
        f, thr = splits[j]
        thr = float(np.float32(thr))
        for v in (thr, thr * (1 + 1e-12) + 1e-300, np.nextafter(np.float32(thr), np.float32(-np.inf))):
            r = X[rng.integers(len(X))].copy()
            r[f] = float(v)
            rows.append(r)
    far = X[:4].copy()
    far[0, :] = 1e30
    far[1, :] = -1e30
    far[2, :] = np.nan
    far[3, :] = 0.0
    return np.vstack([X] + ([np.array(rows)] if rows else []) + [far])


def check(label, bst, X, names=None, dm_kw=None, csv_names=None, extra=None):
    """Predict X with XGBoost and with the CLI from .json and .ubj."""
    dm_kw = dm_kw or {}
    base = os.path.join(TMP, label.replace(":", "_").replace(" ", "_"))
    bst.save_model(base + ".json")
    bst.save_model(base + ".ubj")
    with open(base + ".json") as f:
        mj = json.load(f)
    if extra != "no-edge":
        X = edge_rows(mj, X, np.random.default_rng(7))
    dm = xgb.DMatrix(X, feature_names=names, **dm_kw)
    want = bst.predict(dm)
    want_m = bst.predict(dm, output_margin=True)
    cols = names or [f"c{i}" for i in range(X.shape[1])]
    order = list(range(X.shape[1]))
    if csv_names and names:
        # header in another order: the CLI must map columns by name
        order = list(reversed(range(X.shape[1])))
        cols = [names[i] for i in order]
    csv = base + ".csv"
    write_csv(csv, X[:, order], cols)
    for ext in (".json", ".ubj"):
        got, err = run_cli(base + ext, csv, raw=False)
        compare(f"{label} {ext[1:]} predict", got, want, err)
        got, err = run_cli(base + ext, csv, raw=True)
        compare(f"{label} {ext[1:]} --raw", got, want_m, err)
    return mj, X, csv, want, want_m


def check_edited(label, mj, X, csv, names=None, dm_kw=None, raw=True):
    """Save an edited model dict, let XGBoost load and predict it, compare."""
    path = os.path.join(TMP, label.replace(":", "_").replace(" ", "_") + ".json")
    with open(path, "w") as f:
        json.dump(mj, f)
    bst = xgb.Booster(model_file=path)
    dm = xgb.DMatrix(X, feature_names=names, **(dm_kw or {}))
    got, err = run_cli(path, csv, raw=False)
    compare(f"{label} predict", got, bst.predict(dm), err)
    if raw:
        got, err = run_cli(path, csv, raw=True)
        compare(f"{label} --raw", got, bst.predict(dm, output_margin=True), err)


def check_dart_layouts(label, bst, X, names=None, dm_kw=None):
    """The DART model as 1.7 wrote it and in 3.x's layouts (weights inside the
    model; inside and beside, equal), JSON and UBJSON: every file must give
    XGBoost's predictions of the 1.7 file. The weights must matter (unit
    weights predict otherwise), or this would not test them."""
    base = os.path.join(TMP, label.replace(":", "_").replace(" ", "_"))
    bst.save_model(base + ".json")
    bst.save_model(base + ".ubj")
    mj = json.load(open(base + ".json"))
    raw = open(base + ".ubj", "rb").read()
    mu = ubj_decode(raw)
    if ubj_encode(mu) != raw:
        failures.append(f"{label}: UBJSON codec does not round-trip XGBoost's file")
        print(f"FAIL {label}: UBJSON codec does not round-trip XGBoost's file")
        return
    w = mj["learner"]["gradient_booster"]["weight_drop"]
    dm = xgb.DMatrix(X, feature_names=names, **(dm_kw or {}))
    want, want_m = bst.predict(dm), bst.predict(dm, output_margin=True)
    unit = copy.deepcopy(mj)
    unit["learner"]["gradient_booster"]["weight_drop"] = [1.0] * len(w)
    json.dump(unit, open(base + "_unit.json", "w"))
    if np.array_equal(xgb.Booster(model_file=base + "_unit.json").predict(dm), want):
        failures.append(f"{label}: weight_drop does not change the predictions")
        print(f"FAIL {label}: weight_drop {w[:4]}... does not change the predictions")
    cols = names or [f"c{i}" for i in range(X.shape[1])]
    csv = base + "_layouts.csv"
    write_csv(csv, X, cols)
    files = {"1.7": (mj, mu), "3.x": (to_3x_dart(mj), to_3x_dart(mu)),
             "both": (to_3x_dart(mj, both=True), to_3x_dart(mu, both=True))}
    for lay, (j, u) in files.items():
        path = f"{base}_{lay}"
        json.dump(j, open(path + ".json", "w"))
        open(path + ".ubj", "wb").write(ubj_encode(u))
        for ext in (".json", ".ubj"):
            got, err = run_cli(path + ext, csv, raw=False)
            compare(f"{label} {lay} layout {ext[1:]} predict", got, want, err)
            got, err = run_cli(path + ext, csv, raw=True)
            compare(f"{label} {lay} layout {ext[1:]} --raw", got, want_m, err)


def data(rng, n=N, p=6, nan=0.1):
    X = rng.normal(size=(n, p)) * rng.choice([0.01, 1.0, 100.0], size=p)
    X[rng.random(size=X.shape) < nan] = np.nan
    return X


def main():
    t0 = time.time()
    rng = np.random.default_rng(42)
    names = [f"f{i}" for i in range(6)]
    X = data(rng)
    Z = np.nan_to_num(X / np.nanstd(X, axis=0))
    lin = Z[:, 0] - 0.5 * Z[:, 1] + 0.3 * Z[:, 2] * Z[:, 3]
    p = {"max_depth": 4, "eta": 0.3, "seed": 1}
    ybin = (lin + 0.5 * rng.normal(size=N) > 0).astype(float)

    def train(obj, y, rounds=15, dm_kw=None, **extra):
        dm = xgb.DMatrix(X, y, feature_names=names, **(dm_kw or {}))
        return xgb.train(dict(p, objective=obj, **extra), dm, rounds)

    # -- objectives, base scores away from the defaults where ProbToMargin matters
    bst = train("binary:logistic", ybin, base_score=0.3)
    mj, Xe, csv, _, _ = check("binary:logistic", bst, X, names, csv_names=True)
    # huge margins: XGBoost's sigmoid clamps -x at 88.7f (gives ~3e-39, not 0)
    m2 = copy.deepcopy(mj)
    for t in m2["learner"]["gradient_booster"]["model"]["trees"][:3]:
        t["split_conditions"] = [v * 1e3 if t["left_children"][i] == -1 else v
                                 for i, v in enumerate(t["split_conditions"])]
    check_edited("binary:logistic huge margins", m2, Xe, csv, names)
    # 2.x/3.x spelling of base_score: same predictions as the original
    m3 = copy.deepcopy(mj)
    m3["learner"]["learner_model_param"]["base_score"] = "[3E-1]"
    path = os.path.join(TMP, "bs_list.json")
    json.dump(m3, open(path, "w"))
    want = xgb.Booster(model_file=os.path.join(TMP, "binary_logistic.json")).predict(
        xgb.DMatrix(Xe, feature_names=names))
    got, err = run_cli(path, csv, raw=False)
    compare("binary:logistic base_score \"[3E-1]\" (3.x)", got, want, err)
    check("binary:logitraw", train("binary:logitraw", ybin, base_score=0.7), X, names)
    check("reg:logistic", train("reg:logistic", 1 / (1 + np.exp(-lin)), base_score=0.45), X, names)
    mj, Xe, csv, _, _ = check("reg:squarederror", train("reg:squarederror", lin * 10), X, names)
    m2 = copy.deepcopy(mj)
    m2["learner"]["objective"]["name"] = "reg:linear"
    check_edited("reg:linear (alias)", m2, Xe, csv, names)
    check("reg:absoluteerror", train("reg:absoluteerror", lin * 3 + 7), X, names)
    ycount = rng.poisson(np.exp(0.5 * lin))
    check("count:poisson", train("count:poisson", ycount, base_score=1.7), X, names)
    ypos = np.exp(0.3 * lin) * rng.gamma(2.0, size=N)
    check("reg:gamma", train("reg:gamma", ypos, base_score=2.5), X, names)
    check("reg:tweedie", train("reg:tweedie", ycount * 1.5, tweedie_variance_power=1.3), X, names)

    # -- multi-class
    ycls = np.digitize(lin, np.quantile(lin, [0.33, 0.66]))
    mj, Xe, csv, _, _ = check("multi:softprob", train("multi:softprob", ycls, num_class=3), X,
                              names)
    m3 = copy.deepcopy(mj)
    m3["learner"]["learner_model_param"]["base_score"] = "[5E-1,5E-1,5E-1]"
    path = os.path.join(TMP, "bs_list3.json")
    json.dump(m3, open(path, "w"))
    want = xgb.Booster(model_file=os.path.join(TMP, "multi_softprob.json")).predict(
        xgb.DMatrix(Xe, feature_names=names))
    got, err = run_cli(path, csv, raw=False)
    compare("multi:softprob base_score per class list (3.x)", got, want, err)
    ycls4 = np.digitize(lin, np.quantile(lin, [0.25, 0.5, 0.75]))
    check("multi:softmax", train("multi:softmax", ycls4, num_class=4), X, names)

    # -- ranking with query groups
    dm = xgb.DMatrix(X, np.digitize(lin, [-1, 0, 1]), feature_names=names)
    dm.set_group([10] * (N // 10))
    check("rank:pairwise", xgb.train(dict(p, objective="rank:pairwise"), dm, 10), X, names)

    # -- dart: leaves scaled by weight_drop, in the 1.7 and the 3.x layouts
    bst = train("binary:logistic", ybin, 20, booster="dart", rate_drop=0.3, skip_drop=0.0)
    _, Xe, _, _, _ = check("dart binary:logistic", bst, X, names)
    check_dart_layouts("dart binary:logistic", bst, Xe, names)
    bst = train("multi:softprob", ycls, 8, booster="dart", rate_drop=0.5, num_class=3,
                normalize_type="forest")
    _, Xe, _, _, _ = check("dart multi:softprob", bst, X, names)
    check_dart_layouts("dart multi:softprob", bst, Xe, names)
    bst = train("reg:squarederror", lin * 10, 12, booster="dart", rate_drop=0.4,
                skip_drop=0.0, base_score=0.3)
    _, Xe, _, _, _ = check("dart reg:squarederror", bst, X, names)
    check_dart_layouts("dart reg:squarederror", bst, Xe, names)

    # -- pruned trees: XGBoost keeps deleted nodes in the arrays (num_deleted > 0)
    bst = train("reg:squarederror", lin, 6, gamma=2.0, max_depth=6, tree_method="exact")
    mj, _, _, _, _ = check("pruned (num_deleted>0)", bst, X, names)
    nd = sum(int(t["tree_param"]["num_deleted"]) for t in mj["learner"]["gradient_booster"]
             ["model"]["trees"])
    print(f"     (pruned model holds {nd} deleted nodes)")

    # -- no feature names: columns by position
    check("no feature names", xgb.train(dict(p, objective="reg:squarederror"),
                                        xgb.DMatrix(X, lin), 5), X)

    # -- categorical (pandas category dtype, hist), partition and one-hot splits
    ncat = 7
    c1 = rng.integers(0, ncat, N)
    c2 = rng.integers(0, 40, N)
    df = pd.DataFrame({"c1": pd.Categorical(c1, categories=range(ncat)),
                       "x": X[:, 0], "c2": pd.Categorical(c2, categories=range(40)),
                       "y": X[:, 1]})
    df.loc[rng.random(N) < 0.1, "c1"] = np.nan
    ycat = np.isin(c1, [1, 3, 4]) * 2.0 + np.isin(c2, [5, 17, 33, 38]) + 0.1 * Z[:, 0]
    cnames = list(df.columns)
    # values a CSV can carry for a categorical column: codes, NaN, unseen,
    # negative, fractional, past the bitset
    special = [0, 1, 2, 3, 4, 5, 6, 7, 8, 31, 32, 33, 39, 40, 63, 64, 100, 1e6, -1, -0.5, -0.0,
               2.5, 3.99, np.nan]
    Xc = df.apply(lambda s: s.cat.codes.astype(float).where(s.cat.codes >= 0)
                  if s.dtype.name == "category" else s).to_numpy()
    Xs = np.array([[a, 0.1, b, -0.2] for a in special for b in special[::3]])
    Xall = np.vstack([Xc, Xs])
    ckw = {"feature_types": ["c", "q", "c", "q"], "enable_categorical": True}
    for lbl, onehot in (("categorical partition", 1), ("categorical one-hot", 64)):
        bst = xgb.train({"tree_method": "hist", "max_depth": 4, "max_cat_to_onehot": onehot,
                         "objective": "reg:squarederror", "seed": 1},
                        xgb.DMatrix(df, ycat, enable_categorical=True), 10)
        mj, _, csv, _, _ = check(lbl, bst, Xall, cnames, dm_kw=ckw, extra="no-edge")
        ncs = sum(sum(t["split_type"]) for t in mj["learner"]["gradient_booster"]["model"]["trees"])
        print(f"     ({lbl}: {ncs} categorical splits)")
        # flip default_left on categorical nodes: XGBoost 1.7 then sends NaN,
        # negative and past-the-bitset categories the other way
        m2 = copy.deepcopy(mj)
        for t in m2["learner"]["gradient_booster"]["model"]["trees"]:
            t["default_left"] = [1 - d if s == 1 else d
                                 for d, s in zip(t["default_left"], t["split_type"])]
        check_edited(lbl + " flipped default_left", m2, Xall, csv, cnames, ckw)
    # categorical + binary:logistic + dart in one model
    bst = xgb.train({"tree_method": "hist", "max_depth": 3, "objective": "binary:logistic",
                     "booster": "dart", "rate_drop": 0.2, "seed": 2},
                    xgb.DMatrix(df, (ycat > 1.5).astype(float), enable_categorical=True), 10)
    check("categorical dart binary:logistic", bst, Xall, cnames, dm_kw=ckw, extra="no-edge")
    check_dart_layouts("categorical dart binary:logistic", bst, Xall, cnames, dm_kw=ckw)

    print(f"\ncompared {n_compared} values in {time.time() - t0:.1f} s (xgboost {xgb.__version__}); "
          f"{len(failures)} failures")
    for f in failures:
        print("  " + f)
    if failures:
        print(f"models and CSVs kept in {TMP}")
        return 1
    shutil.rmtree(TMP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
