"""Tree-ensemble semantics against ONNX Runtime (the reference every ONNX
producer targets): branch modes LEQ/LT/GTE/GT/EQ/NEQ, missing values with and
without nodes_missing_value_tracks_true, aggregate SUM/AVERAGE/MIN/MAX,
post transforms, base values, the binary one-class case, double inputs with
*_as_tensor thresholds. Random trees, rows with NaN and values on the
thresholds. Native (ONNX_ENABLED=0) must equal ORT (ONNX_ENABLED=ort) within
1e-5. Then attributes: nodes_hitrates and LinearClassifier multi_class change
nothing (in ORT either), an unknown attribute is refused by both. Skips (exit
0, SKIP line) only when ORT cannot be fetched."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.environ.get("AP_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
ORT_LIB = os.path.join(ROOT, "build", "ort", "libonnxruntime.so.1")
NF = 4


def random_trees(rng, ntrees, modes, nout, tracks):
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                         "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                         "nodes_missing_value_tracks_true")}
    w = []
    grid = np.round(np.linspace(-1, 1, 9), 3)
    for t in range(ntrees):
        nxt = [0]

        def grow(depth):
            me = nxt[0]
            nxt[0] += 1
            a["nodes_treeids"].append(t)
            a["nodes_nodeids"].append(me)
            k = len(a["nodes_modes"])
            if depth == 0 or rng.rand() < 0.15:
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_modes"].append("LEAF")
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                a["nodes_missing_value_tracks_true"].append(0)
                for o in rng.choice(nout, size=min(nout, 1 + rng.randint(nout)), replace=False):
                    w.append((t, me, int(o), float(rng.randn())))
                return me
            a["nodes_featureids"].append(int(rng.randint(NF)))
            a["nodes_values"].append(float(rng.choice(grid)))
            a["nodes_modes"].append(str(rng.choice(modes)))
            a["nodes_truenodeids"].append(-1)
            a["nodes_falsenodeids"].append(-1)
            a["nodes_missing_value_tracks_true"].append(int(tracks and rng.rand() < 0.5))
            a["nodes_truenodeids"][k] = grow(depth - 1)
            a["nodes_falsenodeids"][k] = grow(depth - 1)
            return me
        grow(4)
    return a, w


def model(rng, kind, modes, nout, agg="SUM", post="NONE", base=None, tracks=True,
          double=False, single_class=None, positive=False):
    a, w = random_trees(rng, 7, modes, nout, tracks)
    if single_class is not None:
        w = [(t, n, single_class, abs(v) / 10 if positive else v) for t, n, _, v in w]
    pre = "class" if kind == "cls" else "target"
    attrs = dict(a)
    attrs[pre + "_treeids"] = [x[0] for x in w]
    attrs[pre + "_nodeids"] = [x[1] for x in w]
    attrs[pre + "_ids"] = [x[2] for x in w]
    attrs[pre + "_weights"] = [x[3] for x in w]
    attrs["post_transform"] = post
    if base is not None:
        attrs["base_values"] = base
    if double:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(
            np.array(attrs.pop("nodes_values"), dtype=np.float64) + 1e-12)
    et = TensorProto.DOUBLE if double else TensorProto.FLOAT
    X = helper.make_tensor_value_info("X", et, [None, NF])
    ncls = 2 if single_class is not None else nout
    if kind == "cls":
        attrs["classlabels_int64s"] = list(range(ncls))
        node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "prob"],
                                domain="ai.onnx.ml", **attrs)
        outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("prob", TensorProto.FLOAT, [None, ncls])]
    else:
        attrs["n_targets"] = nout
        attrs["aggregate_function"] = agg
        node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml",
                                **attrs)
        outs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, nout])]
    g = helper.make_graph([node], "g", [X], outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    return m


def predict(path, xin, backend, fail=False):
    env = dict(os.environ, ONNX_ENABLED=backend, ONNXRUNTIME_LIB=ORT_LIB)
    r = subprocess.run([BIN, "predict", "--model", path, "--input", xin], capture_output=True,
                       text=True, env=env)
    if fail:
        return r.returncode, r.stderr
    if r.returncode != 0:
        raise AssertionError("%s predict failed: %s" % (backend, r.stderr))
    return np.loadtxt(r.stdout.splitlines()[1:], delimiter=",", ndmin=2)


def linear_classifier(multi_class, post="SOFTMAX"):
    X = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, NF])
    rng = np.random.RandomState(3)
    attrs = dict(coefficients=[float(v) for v in rng.randn(3 * NF)],
                 intercepts=[0.1, -0.2, 0.3], classlabels_ints=[0, 1, 2],
                 post_transform=post)
    if multi_class is not None:
        attrs["multi_class"] = multi_class
    node = helper.make_node("LinearClassifier", ["X"], ["label", "prob"], domain="ai.onnx.ml",
                            **attrs)
    outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, [None, 3])]
    g = helper.make_graph([node], "g", [X], outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 8
    return m


def attribute_checks(rng, tmp, xin):
    """Attributes the native import accepts without reading must not change
    ORT's scores (so they cannot change ours): nodes_hitrates, LinearClassifier
    multi_class. An attribute it does not know is refused by name natively,
    and ORT's schema check refuses it too."""
    failures = 0
    path = os.path.join(tmp, "a.onnx")
    X = np.loadtxt(xin, delimiter=",", skiprows=1, ndmin=2)
    xin0 = os.path.join(tmp, "x0.csv")   # NaN-free rows for the linear model
    with open(xin0, "w") as f:
        f.write(",".join("f%d" % i for i in range(NF)) + "\n")
        for row in np.nan_to_num(X):
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    m = model(rng, "reg", ["BRANCH_LEQ", "BRANCH_GT"], 2)
    onnx.save(m, path)
    plain = predict(path, xin, "ort")
    node = m.graph.node[0]
    nn = len([a for a in node.attribute if a.name == "nodes_modes"][0].strings)
    node.attribute.append(helper.make_attribute(
        "nodes_hitrates", [float(v) for v in rng.rand(nn) + 0.1]))
    onnx.save(m, path)
    for backend in ("0", "ort"):
        got = predict(path, xin, backend)
        ok = np.array_equal(got, plain)
        failures += not ok
        print("%-28s %-6s equal to the model without it: %s" % (
            "nodes_hitrates", "native" if backend == "0" else backend, "ok" if ok else "FAIL"))
    outs = {}
    for mc in (None, 0, 1):
        onnx.save(linear_classifier(mc), path)
        outs[mc] = (predict(path, xin0, "0"), predict(path, xin0, "ort"))
    for mc in (0, 1):
        nat, ort = outs[mc]
        err = np.max(np.abs(nat - ort))
        # ORT stores multi_class and never uses it (linearclassifier.cc)
        ok = err <= 1e-6 and np.array_equal(ort, outs[None][1])
        failures += not ok
        print("%-28s native vs ORT max err %.3g, ORT unchanged by it: %s" % (
            "LinearClassifier multi_class=%d" % mc, err, "ok" if ok else "FAIL"))
    node.attribute.append(helper.make_attribute("nodes_frobnicate", [1, 2, 3]))
    onnx.save(m, path)
    rc_n, msg_n = predict(path, xin, "0", fail=True)
    rc_o, msg_o = predict(path, xin, "ort", fail=True)
    ok = (rc_n != 0 and "unknown attribute 'nodes_frobnicate'" in msg_n and
          "(TreeEnsembleRegressor)" in msg_n and rc_o != 0 and "nodes_frobnicate" in msg_o)
    failures += not ok
    print("%-28s refused natively and by ORT: %s" % ("unknown attribute", "ok" if ok else
                                                     "FAIL: %s | %s" % (msg_n, msg_o)))
    return failures


def main():
    r = subprocess.run([os.path.join(ROOT, "tools", "fetch-onnxruntime.sh")])
    if r.returncode != 0 or not os.path.exists(ORT_LIB):
        print("SKIP: ONNX Runtime not available (tools/fetch-onnxruntime.sh failed)")
        return 0
    rng = np.random.RandomState(7)
    cmp_modes = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"]
    all_modes = cmp_modes + ["BRANCH_EQ", "BRANCH_NEQ"]
    cases = [
        ("reg LEQ..GT SUM", dict(kind="reg", modes=cmp_modes, nout=1)),
        ("reg base+PROBIT", dict(kind="reg", modes=cmp_modes, nout=1, base=[0.1],
                                 post="PROBIT")),
        ("reg LOGISTIC (ignored by ORT)", dict(kind="reg", modes=cmp_modes, nout=1,
                                               post="LOGISTIC")),
        ("reg 3 targets AVERAGE", dict(kind="reg", modes=cmp_modes, nout=3, agg="AVERAGE",
                                       base=[0.5, -1.0, 2.0])),
        ("reg 3 targets SOFTMAX", dict(kind="reg", modes=cmp_modes, nout=3, post="SOFTMAX")),
        ("reg EQ/NEQ", dict(kind="reg", modes=all_modes, nout=2)),
        ("reg MIN", dict(kind="reg", modes=cmp_modes, nout=2, agg="MIN", base=[1.0, 2.0])),
        ("reg MAX", dict(kind="reg", modes=all_modes, nout=1, agg="MAX")),
        ("reg no tracks", dict(kind="reg", modes=cmp_modes, nout=1, tracks=False)),
        ("reg double", dict(kind="reg", modes=cmp_modes, nout=1, double=True)),
        ("cls 3 SOFTMAX", dict(kind="cls", modes=cmp_modes, nout=3, post="SOFTMAX",
                               base=[0.1, 0.2, 0.3])),
        ("cls 3 SOFTMAX_ZERO", dict(kind="cls", modes=cmp_modes, nout=3,
                                    post="SOFTMAX_ZERO")),
        ("cls 4 LOGISTIC", dict(kind="cls", modes=all_modes, nout=4, post="LOGISTIC")),
        ("cls 3 PROBIT", dict(kind="cls", modes=cmp_modes, nout=3, post="PROBIT")),
        ("cls 2 both classes", dict(kind="cls", modes=cmp_modes, nout=2)),
        ("cls binary class0 LOGISTIC", dict(kind="cls", modes=cmp_modes, nout=2,
                                            single_class=0, post="LOGISTIC", base=[0.3])),
        ("cls binary class1 LOGISTIC", dict(kind="cls", modes=cmp_modes, nout=2,
                                            single_class=1, post="LOGISTIC")),
        ("cls binary class0 NONE", dict(kind="cls", modes=cmp_modes, nout=2, single_class=0)),
        ("cls binary positive", dict(kind="cls", modes=cmp_modes, nout=2, single_class=0,
                                     positive=True)),
        ("cls double", dict(kind="cls", modes=cmp_modes, nout=3, double=True,
                            post="SOFTMAX")),
    ]
    X = rng.choice(np.round(np.linspace(-1, 1, 9), 3), size=(300, NF)) + \
        (rng.rand(300, NF) < 0.5) * rng.randn(300, NF) * 0.3
    X[rng.rand(300, NF) < 0.1] = np.nan
    failures = 0
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "build")) as tmp:
        xin = os.path.join(tmp, "x.csv")
        with open(xin, "w") as f:
            f.write(",".join("f%d" % i for i in range(NF)) + "\n")
            for row in X:
                f.write(",".join("nan" if np.isnan(v) else repr(float(v)) for v in row) + "\n")
        for name, kw in cases:
            path = os.path.join(tmp, "m.onnx")
            onnx.save(model(rng, **kw), path)
            nat = predict(path, xin, "0")
            ort = predict(path, xin, "ort")
            # PROBIT of a score outside (0, 1) is NaN on both sides: NaN == NaN here
            same_nan = np.isnan(nat) == np.isnan(ort) if nat.shape == ort.shape else False
            err = np.nanmax(np.abs(nat - ort)) if np.all(same_nan) else np.inf
            ok = err <= 1e-5
            failures += not ok
            if not ok and os.environ.get("VERBOSE"):
                print(np.hstack([nat, ort])[:8])
            print("%-28s native vs ORT: shape %s max err %.3g %s" % (name, nat.shape, err,
                                                                  "ok" if ok else "FAIL"))
        failures += attribute_checks(rng, tmp, xin)
    print("%d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
