"""`alphapulse convert --to onnx`: exported files round-trip.

XGBoost models are trained here (binary:logistic, reg:squarederror with a
non-zero base_score, multi:softprob, count:poisson, dart; NaNs in training
and test rows); LightGBM models are the fixtures in tests/data/lightgbm.
Each is converted, checked with onnx.checker, then predicted by
 (a) our native ONNX import (ONNX_ENABLED=native) and
 (b) ONNX Runtime (ONNX_ENABLED=ort, build/ort/libonnxruntime.so.1),
and compared with the library's own predictions (xgboost's predict, the
fixtures' expected.csv from the LightGBM CLI): |diff| <= 1e-5 * max(1, |y|),
and native with ORT ("nat/ort", same bound; the counts of float32-equal
values show where they agree bit for bit).
Extra rows on the edges of the LightGBM split rules (zeros, values inside
and on the edge of the zero band, +-inf against LightGBM's "NaN vs rest"
threshold) compare the ONNX file with the model file predicted by our forest
engine (itself checked against LightGBM by tests/forest), natively and in ORT.
Refused kinds (categorical, linear trees, multi:softmax) must fail with
their reason. Every exported graph runs natively today; a graph listed in
NATIVE_GAPS (none now) must instead fail natively with the reason given and
still match through ORT and the AUTO backend. Hand-built graphs run the
elementwise operators on float and double tensors (operator_cases).
ORT missing and not fetchable: its legs print SKIP, the rest still runs."""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import xgboost as xgb

ROOT = os.environ.get("AP_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
ORT_LIB = os.path.join(ROOT, "build", "ort", "libonnxruntime.so.1")
LGB = os.path.join(ROOT, "tests", "data", "lightgbm")
TOL = 1e-5

# graphs whose post-tree operators the native importer (src/onnx/compile.c)
# does not run yet: the reason its refusal must name
NATIVE_GAPS = {}

failures = []


def run(args, env=None):
    return subprocess.run(args, capture_output=True, text=True, env=env)


def predict(model, xin, backend):
    """(array, None) or (None, stderr)"""
    env = dict(os.environ, ONNXRUNTIME_LIB=ORT_LIB)
    if backend:
        env["ONNX_ENABLED"] = backend
    r = run([BIN, "predict", "--model", model, "--input", xin], env)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return np.loadtxt(r.stdout.splitlines()[1:], delimiter=",", ndmin=2), None


def write_csv(path, X):
    with open(path, "w") as f:
        f.write(",".join("f%d" % i for i in range(X.shape[1])) + "\n")
        for row in X:
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")


def close(name, what, got, want):
    want = np.asarray(want, dtype=np.float64).reshape(got.shape[0], -1)
    if got.shape != want.shape:
        failures.append("%s %s: shape %s, expected %s" % (name, what, got.shape, want.shape))
        return
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    ok = err.max() <= TOL
    same = int((got.astype(np.float32) == want.astype(np.float32)).sum())
    print("  %-26s %-8s max rel diff %.3g over %d values (%d equal as float32) %s" %
          (name, what, err.max(), err.size, same, "ok" if ok else "FAIL"))
    if not ok:
        failures.append("%s %s: max rel diff %.3g" % (name, what, err.max()))


def convert(name, model, out):
    r = run([BIN, "convert", "--to", "onnx", model, "-o", out])
    if r.returncode != 0:
        failures.append("%s: convert failed: %s" % (name, r.stderr.strip()))
        return False
    onnx.checker.check_model(onnx.load(out))
    return True


def check(name, model, out, xin, want, have_ort):
    if not convert(name, model, out):
        return
    run_graph(name, out, xin, want, have_ort)


def run_graph(name, out, xin, want, have_ort):
    got, err = predict(out, xin, "native")
    native = got
    if name in NATIVE_GAPS:
        if got is not None:
            print("  %-26s native   now runs natively: drop it from NATIVE_GAPS" % name)
            close(name, "native", got, want)
        elif NATIVE_GAPS[name] not in err:
            failures.append("%s native: unexpected error: %s" % (name, err))
        else:
            print("  %-26s native   not yet (%s)" % (name, NATIVE_GAPS[name]))
    elif got is None:
        failures.append("%s native: %s" % (name, err))
    else:
        close(name, "native", got, want)
    if not have_ort:
        return
    for backend in ("ort", None):  # None: AUTO, what a plain `predict` does
        got, err = predict(out, xin, backend)
        if got is None:
            failures.append("%s %s: %s" % (name, backend or "auto", err))
        else:
            close(name, backend or "auto", got, want)
            if backend == "ort" and native is not None:
                close(name, "nat/ort", native, got)


def refused(name, model, out, reason):
    r = run([BIN, "convert", "--to", "onnx", model, "-o", out])
    ok = r.returncode != 0 and reason in r.stderr and not os.path.exists(out)
    print("  %-26s refused  %s" % (name, "ok: " + r.stderr.strip() if ok else "FAIL"))
    if not ok:
        failures.append("%s: expected a refusal naming '%s', got rc %d: %s" %
                        (name, reason, r.returncode, r.stderr.strip()))


def xgboost_cases(tmp, have_ort):
    rng = np.random.RandomState(11)
    n, nf = 600, 8
    X = rng.randn(n, nf).astype(np.float32)
    X[:, 3] = np.round(X[:, 3] * 3)
    X[rng.rand(n, nf) < 0.15] = np.nan
    Xt = rng.randn(300, nf).astype(np.float32)
    Xt[rng.rand(300, nf) < 0.2] = np.nan
    Xt[:20, 3] = [-1, 0, 1, 2] * 5  # values on split thresholds of the rounded column
    xin = os.path.join(tmp, "xgb_input.csv")
    write_csv(xin, Xt.astype(np.float64))
    lin = X[:, 0] * 2 - np.nan_to_num(X[:, 1]) + np.nan_to_num(X[:, 3])
    y_bin = (np.nan_to_num(lin) + rng.randn(n) * 0.5 > 0).astype(int)
    y_reg = np.nan_to_num(lin) * 3 + 7
    y_cls = np.digitize(np.nan_to_num(lin), [-1.5, 0, 1.5])
    y_cnt = rng.poisson(np.exp(np.clip(np.nan_to_num(lin) * 0.3, -2, 2)))
    cases = [
        ("xgb binary:logistic", {"objective": "binary:logistic", "max_depth": 4}, y_bin, 30,
         ".json"),
        ("xgb reg:squarederror", {"objective": "reg:squarederror", "max_depth": 5,
                                  "base_score": 7.25}, y_reg, 40, ".ubj"),
        ("xgb multi:softprob", {"objective": "multi:softprob", "num_class": 4,
                                "max_depth": 3}, y_cls, 15, ".json"),
        ("xgb count:poisson", {"objective": "count:poisson", "max_depth": 3}, y_cnt, 20,
         ".json"),
        ("xgb dart", {"objective": "binary:logistic", "booster": "dart", "rate_drop": 0.3,
                      "skip_drop": 0.0, "max_depth": 3, "seed": 3}, y_bin, 25, ".json"),
        ("xgb binary:logitraw", {"objective": "binary:logitraw", "max_depth": 4}, y_bin, 10,
         ".json"),
    ]
    for name, params, y, rounds, ext in cases:
        params = dict(params, eta=0.3, seed=params.get("seed", 1))
        bst = xgb.train(params, xgb.DMatrix(X, label=y, missing=np.nan), rounds)
        path = os.path.join(tmp, name.replace(" ", "_").replace(":", "_") + ext)
        bst.save_model(path)
        # dart: predict with every tree at its weight (training=False)
        want = bst.predict(xgb.DMatrix(Xt, missing=np.nan))
        check(name, path, path.rsplit(".", 1)[0] + ".onnx", xin, want, have_ort)
    bst = xgb.train({"objective": "multi:softmax", "num_class": 4}, xgb.DMatrix(X, label=y_cls),
                    3)
    path = os.path.join(tmp, "softmax.json")
    bst.save_model(path)
    refused("xgb multi:softmax", path, os.path.join(tmp, "softmax.onnx"), "multi:softprob")


def lightgbm_cases(tmp, have_ort):
    for kind in ("binary", "regression", "regression_l1", "multiclass", "multiclassova",
                 "poisson", "random_forest", "single_leaf", "zero_as_missing", "large"):
        d = os.path.join(LGB, kind)
        want = np.loadtxt(os.path.join(d, "expected.csv"), delimiter=",", skiprows=1, ndmin=2)
        check("lgb " + kind, os.path.join(d, "model.txt"), os.path.join(tmp, kind + ".onnx"),
              os.path.join(d, "input.csv"), want, have_ort)
    refused("lgb categorical", os.path.join(LGB, "categorical", "model.txt"),
            os.path.join(tmp, "categorical.onnx"), "categorical split")
    refused("lgb linear_tree", os.path.join(LGB, "linear_tree", "model.txt"),
            os.path.join(tmp, "linear_tree.onnx"), "linear leaf")


def edge_rows(d, rng):
    """Fixture rows with columns replaced by split-rule edge values."""
    X = np.genfromtxt(os.path.join(d, "input.csv"), delimiter=",", skip_header=1)[:100]
    z = float(np.float32(1e-35))
    edges = np.array([0.0, -0.0, 1e-36, -1e-36, z, -z, np.nextafter(z, 1), -np.nextafter(z, 1),
                      1e-30, -1e-30, np.inf, -np.inf, np.nan, 1e300, -1e300])
    mask = rng.rand(*X.shape) < 0.3
    X[mask] = rng.choice(edges, size=int(mask.sum()))
    return X


def edge_cases(tmp, have_ort):
    rng = np.random.RandomState(5)
    for kind in ("zero_as_missing", "regression", "binary"):
        d = os.path.join(LGB, kind)
        xin = os.path.join(tmp, kind + "_edges.csv")
        write_csv(xin, edge_rows(d, rng))
        want, err = predict(os.path.join(d, "model.txt"), xin, None)
        if want is None:
            failures.append("lgb %s edges: the model file itself: %s" % (kind, err))
            continue
        check("lgb %s edges" % kind, os.path.join(d, "model.txt"),
              os.path.join(tmp, kind + "_edges.onnx"), xin, want, have_ort)


def objective_cases(tmp, have_ort):
    """The other transforms, on fixture trees with the objective line edited:
    reference = the edited model file, predicted by the forest engine."""
    d = os.path.join(LGB, "regression")
    text = open(os.path.join(d, "model.txt")).read()
    xin = os.path.join(d, "input.csv")
    for obj in ("regression sqrt", "cross_entropy_lambda", "gamma", "binary sigmoid:0.7"):
        path = os.path.join(tmp, obj.split()[0] + "_" + str(len(obj)) + ".txt")
        with open(path, "w") as f:
            f.write(text.replace("objective=regression\n", "objective=%s\n" % obj, 1))
        want, err = predict(path, xin, None)
        if want is None:
            failures.append("lgb objective %s: the model file itself: %s" % (obj, err))
            continue
        check("lgb " + obj, path, path[:-4] + ".onnx", xin, want, have_ort)


ELEMENTWISE = ("Exp", "Softplus", "Abs", "Neg", "Sigmoid", "Tanh", "Relu", "Softmax")


def numpy_op(op, d):
    """ONNX semantics in d's dtype (the reference for the hand-built graphs)"""
    one = d.dtype.type(1)
    if op == "Exp":
        return np.exp(d)
    if op == "Softplus":
        return np.log(np.exp(d) + one)
    if op == "Abs":
        return np.abs(d)
    if op == "Neg":
        return -d
    if op == "Sigmoid":
        return one / (one + np.exp(-d))
    if op == "Tanh":
        return np.tanh(d)
    if op == "Relu":
        return np.maximum(d, 0)
    e = np.exp(d - d.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def operator_cases(tmp, have_ort):
    """Hand-built graphs over the elementwise operators, on float and on
    double tensors: x -> d = Mul(Sub(c, x), 1e6) -> each operator,
    Mul(d, Abs(d)), Div(d, c2) -> Concat -> Cast(float). The rows are c
    plus offsets of 1e-5 and 1e-8: computed in float (the row rounded to
    float) d is off by up to 0.1, so the double graph checks that double
    tensors are computed in double. The reference is numpy in the tensor's
    type. ORT has no double Softplus: the double graph leaves it out."""
    from onnx import TensorProto, helper
    rng = np.random.RandomState(8)
    nf = 4
    c = np.array([1.0, -2.0, 0.5, 3.0])
    c2 = np.array([3.0, 0.25, -7.0, 1.5])
    off = np.concatenate([rng.randn(40, nf) * 8e-6, rng.randn(20, nf) * 1e-8,
                          np.full((1, nf), 25e-6), np.full((1, nf), -25e-6),
                          np.zeros((1, nf))])
    X = c + off
    xin = os.path.join(tmp, "ops_input.csv")
    write_csv(xin, X)
    for dtype, et in ((np.float32, TensorProto.FLOAT), (np.float64, TensorProto.DOUBLE)):
        d = (c.astype(dtype) - X.astype(dtype)) * dtype(1e6)
        nodes = [helper.make_node("Sub", ["c", "x"], ["d0"]),
                 helper.make_node("Mul", ["d0", "k"], ["d"])]
        outs, want = [], []
        for op in ELEMENTWISE:
            if op == "Softplus" and dtype == np.float64:
                continue
            nodes.append(helper.make_node(op, ["d"], [op.lower()]))
            outs.append(op.lower())
            want.append(numpy_op(op, d))
        nodes += [helper.make_node("Abs", ["d"], ["a"]),
                  helper.make_node("Mul", ["d", "a"], ["sq"]),
                  helper.make_node("Div", ["d", "c2"], ["q"]),
                  helper.make_node("Concat", outs + ["sq", "q"], ["all"], axis=1),
                  helper.make_node("Cast", ["all"], ["output"], to=TensorProto.FLOAT)]
        want += [d * np.abs(d), d / c2.astype(dtype)]
        graph = helper.make_graph(
            nodes, "ops", [helper.make_tensor_value_info("x", et, [None, nf])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                           [None, nf * (len(outs) + 2)])],
            [helper.make_tensor("c", et, [nf], c), helper.make_tensor("c2", et, [nf], c2),
             helper.make_tensor("k", et, [], [1e6])])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        path = os.path.join(tmp, "ops_%s.onnx" % np.dtype(dtype).name)
        onnx.save(m, path)
        want = np.concatenate(want, axis=1).astype(np.float32)
        run_graph("ops " + np.dtype(dtype).name, path, xin, want, have_ort)


def cli_cases(tmp):
    src = os.path.join(LGB, "regression", "model.txt")
    model = os.path.join(tmp, "reg.model.txt")
    shutil.copy(src, model)
    r = run([BIN, "convert", "--to", "onnx", model])
    want = os.path.join(tmp, "reg.model.onnx")
    ok = r.returncode == 0 and os.path.exists(want)
    r2 = run([BIN, "convert", "--to", "onnx", model, "-o", model])
    ok2 = r2.returncode != 0 and "refusing to overwrite" in r2.stderr and \
        open(model).read() == open(src).read()
    r3 = run([BIN, "convert", "--to", "pmml", model])
    ok3 = r3.returncode == 2 and "only 'onnx'" in r3.stderr
    print("  cli: default output %s, overwrite refused %s, unknown target %s" %
          (ok, ok2, ok3))
    if not (ok and ok2 and ok3):
        failures.append("cli: default output %s (%s), overwrite refused %s (%s), unknown "
                        "target %s" % (ok, r.stderr.strip(), ok2, r2.stderr.strip(), ok3))


def main():
    r = run([os.path.join(ROOT, "tools", "fetch-onnxruntime.sh")])
    have_ort = r.returncode == 0 and os.path.exists(ORT_LIB)
    if not have_ort:
        print("SKIP: ONNX Runtime legs (tools/fetch-onnxruntime.sh failed: %s)" %
              r.stderr.strip())
    tmp = tempfile.mkdtemp(prefix="ap_convert_")
    try:
        xgboost_cases(tmp, have_ort)
        lightgbm_cases(tmp, have_ort)
        edge_cases(tmp, have_ort)
        objective_cases(tmp, have_ort)
        operator_cases(tmp, have_ort)
        cli_cases(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("PASS: exported ONNX files match the libraries within %g (native and ORT)" % TOL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
