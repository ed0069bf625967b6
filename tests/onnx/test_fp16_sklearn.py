"""FP16 dense weights (issue 12) on trained sklearn models: MLPClassifier,
MLPRegressor and LogisticRegression written as ONNX (tools/export_onnx.py),
loaded by libalphapulse.so (ctypes, the public C API), reduced with
ap_onnx_set_precision on 200 warm-up rows. Checks: the measured deviation is
what predict then gives on those rows and is <= the tolerance; outputs stay
within tolerance + 1e-5 of sklearn's own; the weight bytes halve; a tolerance
of 1e-12 is refused (AP_ERANGE) leaving the outputs bit for bit as before."""
import ctypes as C
import os
import sys
import warnings

import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

ROOT = os.environ.get("AP_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_onnx  # noqa: E402

AP_OK, AP_ERANGE = 0, -9
FULL, REDUCED = 1, 2


class Err(C.Structure):
    _fields_ = [("code", C.c_int), ("msg", C.c_char * 512)]


class Opts(C.Structure):
    _fields_ = [("backend", C.c_int), ("ort_library", C.c_char_p), ("ort_threads", C.c_int)]


lib = C.CDLL(os.path.join(ROOT, "build", "libalphapulse.so"))
P = C.POINTER(C.c_double)
lib.ap_onnx_load_mem.argtypes = [C.c_char_p, C.c_size_t, C.c_char_p, C.POINTER(Opts),
                                 C.POINTER(C.c_void_p), C.POINTER(Err)]
lib.ap_onnx_predict.argtypes = [C.c_void_p, P, C.c_size_t, P, C.POINTER(Err)]
lib.ap_onnx_set_precision.argtypes = [C.c_void_p, C.c_int, C.c_double, P, C.c_size_t, P,
                                      C.POINTER(Err)]
lib.ap_onnx_precision.argtypes = [C.c_void_p]
lib.ap_onnx_model_bytes.argtypes = [C.c_void_p, C.c_int]
lib.ap_onnx_model_bytes.restype = C.c_size_t
lib.ap_onnx_num_outputs.argtypes = [C.c_void_p]
lib.ap_onnx_free.argtypes = [C.c_void_p]


def ptr(a):
    return a.ctypes.data_as(P)


def load(est, nf):
    buf = export_onnx.to_onnx(est, nf).SerializeToString()
    o = Opts(0, None, 1)  # native
    m, err = C.c_void_p(), Err()
    rc = lib.ap_onnx_load_mem(buf, len(buf), b"t.onnx", C.byref(o), C.byref(m), C.byref(err))
    assert rc == AP_OK, err.msg
    return m


def predict(m, X):
    X = np.ascontiguousarray(X, dtype=np.float64)
    Y = np.empty((X.shape[0], lib.ap_onnx_num_outputs(m)))
    err = Err()
    assert lib.ap_onnx_predict(m, ptr(X), X.shape[0], ptr(Y), C.byref(err)) == AP_OK
    return Y


def reduce(m, tol, X):
    X = np.ascontiguousarray(X, dtype=np.float64)
    dev, err = C.c_double(-1), Err()
    rc = lib.ap_onnx_set_precision(m, REDUCED, tol, ptr(X), X.shape[0], C.byref(dev),
                                   C.byref(err))
    return rc, dev.value, err.msg.decode()


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    Xc, yc = make_classification(3000, 16, n_informative=8, random_state=1)
    Xr, yr = make_regression(3000, 16, noise=5.0, random_state=3)
    Xc = StandardScaler().fit_transform(Xc).astype(np.float32).astype(np.float64)
    Xr = StandardScaler().fit_transform(Xr).astype(np.float32).astype(np.float64)
    yr = yr / yr.std()
    cases = [
        ("MLPClassifier(32,32)", MLPClassifier((32, 32), max_iter=300, random_state=0),
         Xc, yc, 1e-3, lambda e, X: e.predict_proba(X)),
        ("MLPRegressor(64,32)", MLPRegressor((64, 32), max_iter=300, random_state=0),
         Xr, yr, 1e-2, lambda e, X: e.predict(X).reshape(-1, 1)),
        ("LogisticRegression", LogisticRegression(max_iter=1000), Xc, yc, 1e-3,
         lambda e, X: e.predict_proba(X)),
    ]
    failed = 0
    for name, est, X, y, tol, ref in cases:
        est.fit(X[:2000], y[:2000])
        nf = X.shape[1]
        warm, test = X[2000:2200], X[2200:]
        m = load(est, nf)
        y32w, y32t = predict(m, warm), predict(m, test)
        full = lib.ap_onnx_model_bytes(m, FULL)
        # a tolerance no half weight can meet: refused, bits unchanged
        rc, dev_tiny, msg = reduce(m, 1e-12, warm)
        ok = rc == AP_ERANGE and "exceeds the tolerance" in msg and lib.ap_onnx_precision(m) == FULL
        ok = ok and np.array_equal(predict(m, test), y32t) and dev_tiny > 1e-12
        rc, dev, msg = reduce(m, tol, warm)
        if rc != AP_OK:
            print("FAIL %s: reduce: %s" % (name, msg))
            failed += 1
            lib.ap_onnx_free(m)
            continue
        y16w, y16t = predict(m, warm), predict(m, test)
        half = lib.ap_onnx_model_bytes(m, REDUCED)
        dw = float(np.max(np.abs(y16w - y32w)))
        dt = float(np.max(np.abs(y16t - y32t)))
        dsk = float(np.max(np.abs(y16w - ref(est, warm))))
        ok = ok and dw == dev and dev <= tol and dsk <= tol + 1e-5
        ok = ok and lib.ap_onnx_precision(m) == REDUCED and half < 0.55 * full
        ok = ok and lib.ap_onnx_model_bytes(m, FULL) == 0
        print("%s %s: tolerance %g, deviation %.3g on the warm-up rows (tiny tolerance: %.3g "
              "refused), %.3g on %d other rows, vs sklearn %.3g; weights %d -> %d bytes"
              % ("ok  " if ok else "FAIL", name, tol, dev, dev_tiny, dt, len(test), dsk, full, half))
        failed += not ok
        lib.ap_onnx_free(m)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
