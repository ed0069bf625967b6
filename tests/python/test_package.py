"""The Python package (python/alphapulse) against the CLI, pandas and the
training libraries. Run by tests/run.sh with Debian's pytest; every test
counts in the final tally.

References, none of them from the package itself:
  - `alphapulse features` / `check-repo --model` (the CLI, %.17g text, exact);
  - tests/features/reference_features.py (pandas), tolerance of
    tests/data/features/README.md: |a-e| <= 1e-9 + 1e-9*|e|;
  - python3-xgboost's Booster.predict on models trained here (float32, exact);
  - LightGBM 4.6.0's outputs shipped with tests/data/lightgbm (1e-12 relative).
"""
import calendar
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

ROOT = os.environ.get("AP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.path.join(ROOT, "build", "alphapulse")
LIBSO = os.path.join(ROOT, "build", "libalphapulse.so")
DATA = os.path.join(ROOT, "tests", "data")
MARKET = os.path.join(DATA, "market")
REPO = os.path.join(ROOT, "examples", "models")
PYTHON = sys.executable
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "features"))
import alphapulse as ap  # noqa: E402
import reference_features as ref  # noqa: E402

SERIES = ["goog_daily.csv", "usdchf_4h.csv", "ttrc_daily.csv"]


def cli(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def bitwise_equal(a, b):
    """Same float64 bits, NaN matching NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


@pytest.fixture(scope="module")
def cli_features(tmp_path_factory):
    """series -> DataFrame that `alphapulse features` wrote (text parsed exactly)."""
    d = tmp_path_factory.mktemp("features")
    out = {}
    for s in SERIES:
        p = d / s
        cli("features", "--input", os.path.join(MARKET, s), "--output", str(p))
        out[s] = pd.read_csv(p, float_precision="round_trip")
    return out


# ---- the package itself ---------------------------------------------------

def test_version_matches_header_and_library():
    with open(os.path.join(ROOT, "include", "alphapulse", "common.h")) as f:
        header = re.search(r'#define AP_VERSION "([^"]+)"', f.read()).group(1)
    assert ap.__version__ == header
    assert cli("--version").split() == ["alphapulse", header]


def test_import_from_checkout_prints_version():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    env.pop("ALPHAPULSE_LIB", None)
    r = subprocess.run([PYTHON, "-c", "import alphapulse; print(alphapulse.__version__)"],
                       capture_output=True, text=True, env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ap.__version__


def test_bad_library_path_is_a_clear_import_error():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"),
               ALPHAPULSE_LIB="/nonexistent/libalphapulse.so")
    r = subprocess.run([PYTHON, "-c", "import alphapulse"], capture_output=True, text=True,
                       env=env)
    assert r.returncode != 0
    assert "/nonexistent/libalphapulse.so" in r.stderr and "ALPHAPULSE_LIB" in r.stderr


def test_ctypes_releases_the_gil():
    # CDLL (unlike PyDLL) drops the GIL around every foreign call
    import ctypes
    assert type(ap._lib.lib) is ctypes.CDLL


def test_pip_install_offline(tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                        "--no-build-isolation", "--target", str(target),
                        os.path.join(ROOT, "python")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "alphapulse" / "libalphapulse.so").is_file()
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("ALPHAPULSE_LIB", None)
    code = ("import alphapulse, os; print(alphapulse.__version__); "
            "print(os.path.dirname(alphapulse._lib.lib._name) == "
            "os.path.dirname(alphapulse.__file__))")
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [ap.__version__, "True"]


def test_shared_library_exports_exactly_the_public_api(tmp_path):
    nm = subprocess.run(["nm", "-D", "--defined-only", LIBSO], capture_output=True, text=True,
                        check=True).stdout
    exported = {ln.split()[-1] for ln in nm.splitlines() if ln.split()[1:2] == ["T"]}
    others = [ln for ln in nm.splitlines() if ln.split()[1:2] != ["T"]]
    assert not others, "non-function symbols exported: %s" % others[:5]
    src = tmp_path / "all.c"
    src.write_text('#include "alphapulse.h"\n')
    aux = tmp_path / "aux.txt"
    subprocess.run(["gcc", "-std=c11", "-I", os.path.join(ROOT, "include"), "-fsyntax-only",
                    "-aux-info", str(aux), str(src)], check=True)
    declared = set()
    for ln in aux.read_text().splitlines():
        if "/include/alphapulse" in ln or "include/alphapulse" in ln.split("*/")[0]:
            m = re.search(r"\b(ap_[a-z0-9_]+) \(", ln)
            if m:
                declared.add(m.group(1))
    assert all(s.startswith("ap_") for s in exported), sorted(exported)
    assert declared, "no declarations found"
    assert exported == declared, ("declared, not exported: %s; exported, not declared: %s" % (
        sorted(declared - exported), sorted(exported - declared)))


# ---- features ---------------------------------------------------------------

@pytest.mark.parametrize("series", SERIES)
def test_features_bitwise_equal_to_cli(series, cli_features):
    bars = pd.read_csv(os.path.join(MARKET, series))
    got = ap.features(bars)
    exp = cli_features[series]
    assert list(got.columns) == list(ap.FEATURE_NAMES) == list(exp.columns[1:])
    assert got.index.equals(bars.index)
    assert bitwise_equal(got.to_numpy(), exp[list(ap.FEATURE_NAMES)].to_numpy())


@pytest.mark.parametrize("series", SERIES)
def test_features_match_pandas_reference(series):
    bars = pd.read_csv(os.path.join(MARKET, series))
    got = ap.features(bars).to_numpy()
    exp = ref.features(bars)[ref.NAMES].to_numpy(dtype=float)
    assert list(ap.FEATURE_NAMES) == ref.NAMES
    both_nan = np.isnan(got) & np.isnan(exp)
    with np.errstate(invalid="ignore"):
        ok = both_nan | (np.abs(got - exp) <= 1e-9 + 1e-9 * np.abs(exp))
    bad = np.argwhere(~ok)
    assert not len(bad), "first mismatch row %d %s: %r vs %r" % (
        bad[0][0], ref.NAMES[bad[0][1]], got[tuple(bad[0])], exp[tuple(bad[0])])


def test_features_input_forms_agree():
    bars = pd.read_csv(os.path.join(MARKET, "goog_daily.csv"))   # ISO dates
    base = ap.features(bars).to_numpy()
    t = pd.to_datetime(bars["timestamp"], utc=True)
    secs = (t.astype("int64") // 10**9).to_numpy()
    forms = {
        "epoch seconds": bars.assign(timestamp=secs),
        "epoch ms": bars.assign(timestamp=secs * 1000),
        "float seconds": bars.assign(timestamp=secs.astype(float)),
        "datetime64": bars.assign(timestamp=t.dt.tz_localize(None)),
        "tz-aware": bars.assign(timestamp=t.dt.tz_convert("America/New_York")),
        "DatetimeIndex": bars.drop(columns="timestamp").set_index(pd.DatetimeIndex(t)),
        "dict of arrays": {c: bars[c].to_numpy() for c in ap.BAR_COLUMNS},
        "(n, 6) array": np.column_stack([secs] + [bars[c].to_numpy(float)
                                                  for c in ap.BAR_COLUMNS[1:]]),
    }
    for name, b in forms.items():
        assert bitwise_equal(ap.features(b).to_numpy(), base), name
    us = ap.timestamps_us(bars["timestamp"])
    assert (us == secs * 10**6).all()
    # fractional seconds go through the same text parser as the CLI
    assert ap.timestamps_us(np.array([1092873600.25]))[0] == 1092873600250000
    # 13:45:00.5 at +02:00 is 11:45:00.5 UTC (calendar.timegm: the stdlib's own count)
    assert ap.timestamps_us(["2004-08-19T13:45:00.5+02:00"])[0] == \
        calendar.timegm((2004, 8, 19, 11, 45, 0)) * 10**6 + 500000


def test_features_repeated_timestamp_replaces_bar():
    bars = pd.read_csv(os.path.join(MARKET, "goog_daily.csv")).iloc[:300].reset_index(drop=True)
    forming = bars.iloc[[120]].copy()
    forming["close"] *= 1.01
    forming["high"] = np.maximum(forming["high"], forming["close"])
    stream = pd.concat([bars.iloc[:121], forming, bars.iloc[121:]], ignore_index=True)
    got = ap.features(stream)
    # row 121 is bar 120 again; row 120 the features with the first version
    assert bitwise_equal(got.iloc[120].to_numpy(), ap.features(bars.iloc[:121]).iloc[120])
    edited = bars.copy()
    edited.iloc[120] = stream.iloc[121]
    # every later row is as if only the replacement had been seen
    assert bitwise_equal(got.iloc[121:].to_numpy(), ap.features(edited).iloc[120:].to_numpy())


def test_features_bad_input_names_bar_and_index():
    bars = pd.read_csv(os.path.join(MARKET, "goog_daily.csv")).iloc[:20]
    bars.index = bars.index + 1000
    bad = bars.copy()
    bad.loc[1007, "high"] = bad.loc[1007, "low"] / 2
    with pytest.raises(ap.Error, match=r"bar 7 \(index 1007\): high .* below low"):
        ap.features(bad)
    with pytest.raises(ap.Error, match="missing column.*volume"):
        ap.features(bars.drop(columns="volume"))
    with pytest.raises(ap.Error, match="column close is not numeric"):
        ap.features(bars.assign(close="x"))
    with pytest.raises(ap.Error, match=r"bar 3 \(index 1003\): timestamp"):
        ap.features(bars.assign(timestamp=["2004-08-19"] * 3 + ["not a time"] * 17))
    with pytest.raises(ap.Error, match=r"bar 2 \(index 1000\).*older"):
        ap.features(bars.iloc[[0, 1, 0]])
    with pytest.raises(ap.Error, match="NaT"):
        ap.features(bars.assign(timestamp=pd.to_datetime(bars["timestamp"]).where(
            bars.index != 1004)))
    with pytest.raises(ap.Error, match="finite price"):
        ap.features(bars.assign(open=np.nan))
    with pytest.raises(ap.Error, match=r"\(n, 6\)"):
        ap.features(np.zeros((3, 5)))
    with pytest.raises(ap.Error, match="expected a DataFrame"):
        ap.features(42)
    empty = ap.features(bars.iloc[:0])
    assert empty.shape == (0, 101) and list(empty.columns) == list(ap.FEATURE_NAMES)


def test_feature_stream_equals_batch():
    bars = pd.read_csv(os.path.join(MARKET, "usdchf_4h.csv")).iloc[:500]
    batch = ap.features(bars).to_numpy()
    fs = ap.FeatureStream()
    assert fs.latest() is None
    for i, row in enumerate(bars.itertuples(index=False)):
        v = fs.push(row._asdict() if i % 2 else tuple(row))
        assert bitwise_equal(v, batch[i]), i
    last = fs.latest()
    assert bitwise_equal(last.to_numpy(), batch[-1])
    assert list(last.index) == list(ap.FEATURE_NAMES)
    assert last.name == pd.Timestamp(int(bars["timestamp"].iloc[-1]), unit="s", tz="UTC")
    assert fs.bars == 500
    # a bad bar changes nothing
    b = dict(bars.iloc[-1])
    with pytest.raises(ap.Error, match="older"):
        fs.push(dict(b, timestamp=b["timestamp"] - 14400))
    with pytest.raises(ap.Error, match="missing field"):
        fs.push({"open": 1})
    with pytest.raises(ap.Error, match="6 values"):
        fs.push((1, 2, 3))
    assert bitwise_equal(fs.latest().to_numpy(), batch[-1]) and fs.bars == 500
    fs.close()
    with pytest.raises(ap.Error, match="closed"):
        fs.push(b)
    fs.close()   # twice is fine


# ---- Forest -----------------------------------------------------------------

def _xgb_models(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 8))
    X[rng.random(X.shape) < 0.1] = np.nan
    names = ["f%d" % i for i in range(8)]
    y_bin = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 > 0.5).astype(int)
    y_mc = (np.nan_to_num(X[:, 2]) > 0).astype(int) + (np.nan_to_num(X[:, 3]) > 0.5)
    y_reg = np.nan_to_num(X[:, 4]) * 3 + np.nan_to_num(X[:, 5])
    cases = {
        "binary": ({"objective": "binary:logistic", "max_depth": 5}, y_bin),
        "softprob": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 4}, y_mc),
        "regression": ({"objective": "reg:squarederror", "max_depth": 6}, y_reg),
    }
    out = {}
    for name, (params, y) in cases.items():
        d = xgb.DMatrix(X, label=y, feature_names=names, missing=np.nan)
        bst = xgb.train(dict(params, seed=1, nthread=1), d, num_boost_round=30)
        for ext in ("json", "ubj"):
            p = tmp_path / ("%s.%s" % (name, ext))
            bst.save_model(str(p))
            out["%s.%s" % (name, ext)] = (str(p), bst)
    return X, names, out


@pytest.fixture(scope="module")
def xgb_models(tmp_path_factory):
    return _xgb_models(tmp_path_factory.mktemp("xgb"))


def test_forest_equals_xgboost(xgb_models):
    X, names, models = xgb_models
    d = xgb.DMatrix(X, feature_names=names, missing=np.nan)
    for key, (path, bst) in models.items():
        f = ap.Forest.load(path)
        assert f.source == "xgboost" and f.feature_names == names and f.num_features == 8
        exp = bst.predict(d)
        got = f.predict(X)
        assert got.shape == exp.shape, key
        assert np.array_equal(got.astype(np.float32), exp) and \
            np.array_equal(got, exp.astype(np.float64)), key
        margin = bst.predict(d, output_margin=True)
        assert np.array_equal(f.predict(X, raw=True), margin.astype(np.float64)), key
        assert f.num_outputs == (exp.shape[1] if exp.ndim == 2 else 1)


def test_forest_dataframe_columns_by_name(xgb_models):
    X, names, models = xgb_models
    path, bst = models["softprob.json"]
    f = ap.Forest.load(path, format="xgboost_json")
    df = pd.DataFrame(X, columns=names)
    exp = f.predict(X)
    shuffled = df[names[::-1]].assign(extra=1.0)
    assert np.array_equal(f.predict(shuffled), exp)
    with pytest.raises(ap.Error, match="missing column.*f3"):
        f.predict(df.drop(columns="f3"))
    with pytest.raises(ap.Error, match="more than once"):
        f.predict(pd.concat([df, df[["f1"]]], axis=1))


def test_forest_bad_and_odd_inputs(xgb_models):
    X, names, models = xgb_models
    path, _ = models["binary.ubj"]
    f = ap.Forest.load(path, format="xgboost_ubj")
    exp = f.predict(X)
    F = np.asfortranarray(X)
    assert not F.flags.c_contiguous and np.array_equal(f.predict(F), exp)
    wide = np.concatenate([X, X], axis=1)[:, ::2]          # strided view
    assert np.array_equal(f.predict(wide), f.predict(np.ascontiguousarray(wide)))
    x32 = X.astype(np.float32)
    assert np.array_equal(f.predict(x32), f.predict(x32.astype(np.float64)))
    assert np.array_equal(f.predict(X[3]), exp[3:4])       # 1-D: one row
    assert f.predict(X[:0]).shape == (0,)
    assert np.array_equal(f.predict(X.tolist()), exp)
    nan_row = np.full((1, 8), np.nan)
    assert np.isfinite(f.predict(nan_row)).all()
    with pytest.raises(ap.Error, match="9 columns, the model takes 8"):
        f.predict(np.zeros((2, 9)))
    with pytest.raises(ap.Error, match="not numeric"):
        f.predict(np.array([["a"] * 8]))
    with pytest.raises(ap.Error, match="not numeric"):
        f.predict(np.array([[object()] * 8], dtype=object))
    with pytest.raises(ap.Error, match="2-D"):
        f.predict(np.zeros((2, 2, 8)))
    # a forest loaded at full precision has no reduced engine to run
    with pytest.raises(ap.Error, match="loaded at full precision"):
        f.predict(X, precision="reduced")
    with pytest.raises(ap.Error, match="precision='half'"):
        f.predict(X, precision="half")
    assert bitwise_equal(f.predict(X, precision="full"), exp)
    f.close()
    assert f.closed
    with pytest.raises(ap.Error, match="Forest is closed"):
        f.predict(X)


def test_forest_precision(xgb_models):
    """precision="reduced" at load (issue 12): the quantized engine loads on
    every tree fixture (XGBoost and LightGBM) and gives the full predictions
    bit for bit (exact by construction), with fewer bytes than full."""
    X, names, models = xgb_models
    lgb_dir = os.path.join(DATA, "lightgbm", "binary")
    cases = [(p, X) for p, _ in models.values()]
    cases.append((os.path.join(lgb_dir, "model.txt"),
                  pd.read_csv(os.path.join(lgb_dir, "input.csv"), float_precision="round_trip")))
    for path, rows in cases:
        full = ap.Forest.load(path)
        assert full.precision == "full" and full.node_bytes > 0
        assert full.model_bytes["full"] > 0 and full.model_bytes["reduced"] == 0
        red = ap.Forest.load(path, precision="reduced")
        assert red.precision == "reduced" and "reduced precision" in repr(red)
        assert red.model_bytes["reduced"] > 0 and red.node_bytes > 0
        assert red.model_bytes["full"] == full.model_bytes["full"]
        assert red.model_bytes["reduced"] < red.model_bytes["full"], path
        want = full.predict(rows)
        assert bitwise_equal(red.predict(rows), want), path
        assert bitwise_equal(red.predict(rows, precision="reduced"), want), path
        assert bitwise_equal(red.predict(rows, precision="full"), want), path
        assert bitwise_equal(red.predict(rows, raw=True), full.predict(rows, raw=True)), path
        red.close()
        full.close()
    for bad in ("half", "auto", None, 2):
        with pytest.raises(ap.Error, match="precision=.*expected one of full, reduced"):
            ap.Forest.load(cases[0][0], precision=bad)


def test_forest_load_errors(tmp_path):
    with pytest.raises(ap.Error) as e:
        ap.Forest.load(tmp_path / "absent.json")
    assert "absent.json" in str(e.value) and e.value.status == "EIO"
    bad = tmp_path / "bad.json"
    bad.write_text('{"learner": 42}')
    with pytest.raises(ap.Error, match="bad.json"):
        ap.Forest.load(bad)
    with pytest.raises(ap.Error, match="format='onnx'"):
        ap.Forest.load(bad, format="onnx")


def _read_csv(path):
    return pd.read_csv(path, float_precision="round_trip")


@pytest.mark.parametrize("case", sorted(os.listdir(os.path.join(DATA, "lightgbm"))))
def test_forest_equals_lightgbm_fixtures(case):
    d = os.path.join(DATA, "lightgbm", case)
    f = ap.Forest.load(os.path.join(d, "model.txt"), format="lightgbm")
    assert f.source == "lightgbm"
    X = _read_csv(os.path.join(d, "input.csv"))
    for raw, name in ((False, "expected.csv"), (True, "expected_raw.csv")):
        exp = _read_csv(os.path.join(d, name)).to_numpy()
        got = f.predict(X.to_numpy(), raw=raw).reshape(exp.shape)
        assert np.all(np.abs(got - exp) <= 1e-12 * np.maximum(1, np.abs(exp))), (case, name)


def test_forest_threads_agree(xgb_models):
    X, names, models = xgb_models
    f = ap.Forest.load(models["softprob.json"][0])
    big = np.tile(X, (20, 1))
    exp = f.predict(big)
    results, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(25):
                r = f.predict(big)
                if not np.array_equal(r, exp):
                    errors.append("thread %d differs" % i)
            results[i] = True
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and all(results)


def test_forest_close_while_predicting(xgb_models):
    X, names, models = xgb_models
    f = ap.Forest.load(models["regression.json"][0])
    big = np.tile(X, (50, 1))
    outcome = []

    def work():
        try:
            for _ in range(200):
                f.predict(big)
            outcome.append("finished")
        except ap.Error as e:
            outcome.append(str(e))

    t = threading.Thread(target=work)
    t.start()
    f.close()
    t.join()
    assert outcome and outcome[0] in ("finished", "Forest is closed")


# ---- Repository -----------------------------------------------------------------

@pytest.fixture(scope="module")
def repo():
    r = ap.Repository(REPO)
    yield r
    r.close()


def test_repository_lists_models(repo):
    listed = [ln.split()[1] for ln in cli("check-repo", REPO).splitlines()
              if ln.startswith("OK ")]
    assert repo.models == sorted(listed) and not repo.failures
    info = repo.info("reversal")
    assert info["kind_name"] == "pattern" and info["version"] == 2
    assert info["input_names"] == info["features_used"] or \
        sorted(info["input_names"]) == sorted(info["features_used"])


def _check_repo_fields(*args):
    out = {}
    for ln in cli("check-repo", REPO, *args).splitlines():
        if ln.startswith("OK "):
            out[ln.split()[1]] = {m.group(1): m.group(2).strip('"') for m in re.finditer(
                r'(\w+)=(\[[^\]]*\]|"[^"]*"|\S+)', ln)}
    return out


def test_repository_precision(repo):
    """Repository.info says what check-repo prints (issue 12); with
    mixed_precision=True every demo model but the ensemble (meta: full, with
    its note) runs reduced, and each predicts the same numbers as at full
    precision (every demo model is a forest, or combines forests)."""
    cli_full, cli_mixed = _check_repo_fields(), _check_repo_fields("--mixed-precision")
    mixed = ap.Repository(REPO, mixed_precision=True)
    try:
        assert mixed.models == repo.models and not mixed.failures
        X = ap.features(pd.read_csv(os.path.join(MARKET, "goog_daily.csv")))
        for name in repo.models:
            a, b = repo.info(name), mixed.info(name)
            assert a["precision"] == "full" and a["precision_requested"] == "auto"
            assert a["precision_note"] == "" and a["model_bytes_reduced"] == 0
            assert b["precision_requested"] == "auto"
            if name == "meta":
                assert b["format"] == "ensemble" and b["precision"] == "full", b
                assert "ensemble" in b["precision_note"] and b["model_bytes_reduced"] == 0, b
            else:
                assert b["precision"] == "reduced" and b["precision_note"] == "", (name, b)
                assert 0 < b["model_bytes_reduced"] < b["model_bytes_full"], (name, b)
            for info, c in ((a, cli_full[name]), (b, cli_mixed[name])):
                assert c["precision"] == info["precision"], name
                assert c.get("precision_note", "") == info["precision_note"], name
                assert int(c["node_bytes"]) == info["node_bytes"], name
                assert int(c["bytes_full"]) == info["model_bytes_full"], name
                assert int(c["bytes_reduced"]) == info["model_bytes_reduced"], name
            if a["format"] == "xgboost":
                assert a["model_bytes_full"] > 0 and a["node_bytes"] > 0
            assert bitwise_equal(mixed.predict(name, X).to_numpy(),
                                 repo.predict(name, X).to_numpy()), name
    finally:
        mixed.close()


def test_repository_predict_equals_check_repo(repo, cli_features, tmp_path):
    feats = cli_features["goog_daily.csv"]
    path = tmp_path / "goog_features.csv"
    feats.to_csv(path, index=False, float_format="%.17g", na_rep="nan")
    X = ap.features(pd.read_csv(os.path.join(MARKET, "goog_daily.csv")))
    for name in repo.models:
        exp = pd.read_csv(subprocess.run(
            [BIN, "check-repo", REPO, "--model", name, "--input", str(path),
             "--output", str(tmp_path / (name + ".csv"))], check=True) and
            tmp_path / (name + ".csv"), float_precision="round_trip")
        got = repo.predict(name, X)
        assert list(got.columns) == list(exp.columns), name
        assert bitwise_equal(got.to_numpy(), exp.to_numpy()), name
        # only the columns the model reads, in another order: same answer
        used = repo.info(name)["features_used"]
        assert bitwise_equal(repo.predict(name, X[used[::-1]]).to_numpy(), exp.to_numpy()), name
    # a (n, 101) array in spec order works too
    assert bitwise_equal(repo.predict("bull", X.to_numpy()).to_numpy(),
                         repo.predict("bull", X).to_numpy())


def test_repository_raw_predict(repo):
    X = ap.features(pd.read_csv(os.path.join(MARKET, "usdchf_4h.csv")))
    full = repo.predict("meta", X)
    members = repo.info("meta")["input_names"]
    P = pd.DataFrame({m: repo.predict(m, X)["prediction"] for m in members})
    got = repo.predict("meta", P[members[::-1]], raw=True)
    assert bitwise_equal(got.to_numpy(), full.to_numpy())


def test_repository_errors(repo, tmp_path):
    X = ap.features(pd.read_csv(os.path.join(MARKET, "goog_daily.csv")).iloc[:50])
    with pytest.raises(ap.Error) as e:
        repo.predict("nosuch", X)
    assert e.value.status == "ENOTFOUND" and "nosuch" in str(e.value)
    with pytest.raises(ap.Error, match="missing feature column.*rsi"):
        repo.predict("reversal", X.drop(columns="rsi"))
    with pytest.raises(ap.Error, match="101"):
        repo.predict("reversal", X.to_numpy()[:, :50])
    # a broken model is reported, the others still serve
    broken = tmp_path / "models"
    shutil.copytree(REPO, broken)
    with open(broken / "bull" / "1" / "model.json", "w") as fp:
        fp.write("{ not json")
    r = ap.Repository(broken)
    assert "bull" in r.failures and "model.json" in r.failures["bull"]
    assert "bull" not in r.models and "reversal" in r.models
    r.close()
    with pytest.raises(ap.Error, match="Repository is closed"):
        r.predict("reversal", X)
    with pytest.raises(ap.Error, match="nonexistent"):
        ap.Repository(tmp_path / "nonexistent")


def test_repository_threads_agree(repo):
    X = ap.features(pd.read_csv(os.path.join(MARKET, "ttrc_daily.csv")))
    exp = {m: repo.predict(m, X).to_numpy() for m in repo.models}
    errors = []

    def work(i):
        for m in repo.models[i:] + repo.models[:i]:
            if not bitwise_equal(repo.predict(m, X).to_numpy(), exp[m]):
                errors.append((i, m))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


# ---- the tools use the package ------------------------------------------------

def test_export_model_checks_with_the_engine(tmp_path, xgb_models):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import export_model as em
    repo = tmp_path / "repo"
    _, _, models = xgb_models
    with pytest.raises(em.ExportError, match="not alphapulse-v1 features: f0, f1"):
        em.export_xgboost(models["binary.json"][1], str(repo), "m", "pattern", "reversal")
    assert not (repo / "m").exists()
    # a LightGBM file the engine refuses: refused at export, nothing left behind
    src = os.path.join(DATA, "lightgbm", "binary", "model.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text(open(src).read().replace("objective=binary", "objective=mystery", 1))
    with pytest.raises(em.ExportError, match="alphapulse cannot serve.*mystery"):
        em.export_lightgbm(str(bad), str(repo), "lgb", "raw", "score", input_width=30)
    assert not (repo / "lgb").exists()
    vdir = em.export_lightgbm(src, str(repo), "lgb", "raw", "score", input_width=30)
    assert os.path.isfile(os.path.join(vdir, "model.txt"))
    r = ap.Repository(repo)
    assert r.models == ["lgb"] and not r.failures
    X = _read_csv(os.path.join(DATA, "lightgbm", "binary", "input.csv"))
    exp = _read_csv(os.path.join(DATA, "lightgbm", "binary", "expected.csv")).to_numpy()[:, 0]
    got = r.predict("lgb", X, raw=True)["prediction"].to_numpy()
    assert np.all(np.abs(got - exp) <= 1e-12 * np.maximum(1, np.abs(exp)))
    r.close()


def test_train_demo_reproduces_the_demo_repository(tmp_path):
    out = tmp_path / "models"
    r = subprocess.run([PYTHON, os.path.join(ROOT, "tools", "train_demo.py"), "--output",
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for dirpath, _, files in os.walk(REPO):
        for fn in files:
            rel = os.path.relpath(os.path.join(dirpath, fn), REPO)
            with open(os.path.join(REPO, rel), "rb") as a, open(out / rel, "rb") as b:
                assert a.read() == b.read(), rel


def test_docs_example_runs(tmp_path):
    with open(os.path.join(ROOT, "docs", "PYTHON.md")) as f:
        doc = f.read()
    code = doc.split("## Train on alphapulse features")[1].split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 12
    code = code.replace("/tmp/up.json", str(tmp_path / "up.json"))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
