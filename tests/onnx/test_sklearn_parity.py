"""ONNX parity: sklearn models written as ONNX (tools/export_onnx.py, skl2onnx's
conventions) predicted by `alphapulse predict` natively, and through ONNX
Runtime (ONNX_ENABLED=ort) when tools/fetch-onnxruntime.sh can provide it.
Expected values: sklearn's own predict_proba / predict. Tolerance 1e-5
(absolute on probabilities, relative on regression values)."""
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

ROOT = os.environ.get("AP_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_onnx  # noqa: E402
import onnx  # noqa: E402

ORT_LIB = os.path.join(ROOT, "build", "ort", "libonnxruntime.so.1")


def have_ort():
    r = subprocess.run([os.path.join(ROOT, "tools", "fetch-onnxruntime.sh")],
                       capture_output=True, text=True)
    return r.returncode == 0 and os.path.exists(ORT_LIB)


def predict(path, X, tmp, backend):
    xin = os.path.join(tmp, "x.csv")
    with open(xin, "w") as f:
        f.write(",".join("f%d" % i for i in range(X.shape[1])) + "\n")
        for row in X:
            f.write(",".join("nan" if np.isnan(v) else repr(float(v)) for v in row) + "\n")
    env = dict(os.environ, ONNX_ENABLED=backend, ONNXRUNTIME_LIB=ORT_LIB)
    r = subprocess.run([BIN, "predict", "--model", path, "--input", xin], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        raise AssertionError("predict failed: " + r.stderr)
    return np.loadtxt(r.stdout.splitlines()[1:], delimiter=",", ndmin=2)


def main():
    rng = np.random.RandomState(0)
    Xc, yc = make_classification(600, 12, n_informative=6, random_state=1)
    Xm, ym = make_classification(600, 12, n_informative=6, n_classes=3, random_state=2)
    Xr, yr = make_regression(600, 12, noise=5.0, random_state=3)
    Xc = Xc.astype(np.float32).astype(np.float64)
    Xm = Xm.astype(np.float32).astype(np.float64)
    Xr = Xr.astype(np.float32).astype(np.float64)
    cases = [
        ("rf_binary", RandomForestClassifier(30, max_depth=8, random_state=0), Xc, yc),
        ("rf_multi", RandomForestClassifier(20, max_depth=6, random_state=0), Xm, ym),
        ("dt_binary", DecisionTreeClassifier(max_depth=7, random_state=0), Xc, yc),
        ("gb_binary", GradientBoostingClassifier(n_estimators=40, random_state=0), Xc, yc),
        ("gb_multi", GradientBoostingClassifier(n_estimators=20, random_state=0), Xm, ym),
        ("rf_reg", RandomForestRegressor(30, max_depth=8, random_state=0), Xr, yr),
        ("dt_reg", DecisionTreeRegressor(max_depth=8, random_state=0), Xr, yr),
        ("gb_reg", GradientBoostingRegressor(n_estimators=40, random_state=0), Xr, yr),
        ("logreg_binary", make_pipeline(StandardScaler(), LogisticRegression()), Xc, yc),
        ("logreg_multi", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
         Xm, ym),
        ("mlp_binary", make_pipeline(StandardScaler(), MLPClassifier((16, 8), max_iter=400,
                                                                    random_state=0)), Xc, yc),
        ("mlp_multi", make_pipeline(StandardScaler(), MLPClassifier((20,), max_iter=400,
                                                                   random_state=0)), Xm, ym),
        ("mlp_reg", make_pipeline(StandardScaler(), MLPRegressor((16,), activation="tanh",
                                                                max_iter=500,
                                                                random_state=0)), Xr, yr),
        ("scaler_pca_rf", make_pipeline(StandardScaler(), PCA(6),
                                        RandomForestClassifier(20, max_depth=6, random_state=0)),
         Xc, yc),
        ("scaler_pca_logreg", make_pipeline(StandardScaler(), PCA(5, whiten=True),
                                            LogisticRegression()), Xc, yc),
    ]
    ort = have_ort()
    if not ort:
        print("SKIP ONNX Runtime comparisons: tools/fetch-onnxruntime.sh could not fetch it")
    failures = 0
    import warnings
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "build")) as tmp:
        for name, est, X, y in cases:
            est.fit(X[:400], y[:400])
            Xt = X[400:]  # sklearn 1.2 trees take no NaN
            path = os.path.join(tmp, name + ".onnx")
            onnx.save(export_onnx.to_onnx(est, X.shape[1]), path)
            Xs = Xt.astype(np.float32)
            if hasattr(est, "predict_proba"):
                want = est.predict_proba(Xs)
            else:
                want = est.predict(Xs).reshape(-1, 1)
            scale = np.maximum(1.0, np.abs(want)) if not hasattr(est, "predict_proba") else 1.0
            backends = ["native"] + (["ort"] if ort else [])
            got = {}
            for be in backends:
                got[be] = predict(path, Xt, tmp, "0" if be == "native" else "ort")
                err = np.nanmax(np.abs(got[be] - want) / scale)
                ok = got[be].shape == want.shape and err <= 1e-5
                print("%-18s %-6s vs sklearn: max err %.3g %s" % (name, be, err,
                                                                 "ok" if ok else "FAIL"))
                failures += not ok
            if ort:
                err = np.max(np.abs(got["native"] - got["ort"]) / scale)
                ok = err <= 1e-5
                print("%-18s native vs ort: max err %.3g %s" % (name, err, "ok" if ok else "FAIL"))
                failures += not ok
    print("%d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
