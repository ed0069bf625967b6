#!/usr/bin/python3
"""Write fitted scikit-learn estimators and pipelines as ONNX, using only
python3-onnx's helper API (skl2onnx is not packaged in Debian).

Follows skl2onnx's conventions, so the files look like what users bring:
  - one input "X" float [None, F]; classifiers output "output_label" (int64)
    and "output_probability" through ZipMap; regressors "variable" [None, 1];
  - trees: TreeEnsembleClassifier/Regressor with BRANCH_LEQ, ai.onnx.ml opset
    1 (float attributes) - thresholds rounded DOWN to float32 so that
    x <= t in float32 is exactly sklearn's float32-x <= double-t;
    random forests: leaf probabilities / n_estimators summed (SUM);
    gradient boosting: learning_rate * leaf value, base_values = the init
    estimator's raw score, LOGISTIC (binary, weights on class 0 as skl2onnx)
    or SOFTMAX (multiclass);
  - StandardScaler -> Scaler; PCA -> Sub + MatMul (whiten folded in);
  - LogisticRegression -> LinearClassifier (binary: rows [-w, w], LOGISTIC,
    then Normalizer L1; multinomial: SOFTMAX);
  - MLPClassifier/Regressor -> MatMul + Add + activation per layer
    (binary classifier: Sigmoid, then [1 - p, p] via Sub + Concat).

usage: export_onnx.py MODEL.pkl OUT.onnx --features N
"""
import argparse
import pickle
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ML = "ai.onnx.ml"


class Builder:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return "%s_%d" % (base, self.n)

    def const(self, arr, base="c"):
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), nm))
        return nm

    def node(self, op, inputs, n_out=1, domain="", **attrs):
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), domain=domain,
                                           **attrs))
        return outs if n_out > 1 else outs[0]


def f32_down(t):
    """largest float32 <= t (x_f32 <= t  <=>  x_f32 <= f32_down(t))"""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def tree_attrs(trees, prefix, leaf_fn):
    """BRANCH_LEQ node lists + leaf weights for sklearn Tree objects.
    leaf_fn(tree_index, tree, node) -> list of (output id, weight)."""
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                         "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                         "nodes_hitrates")}
    w = {prefix + "_treeids": [], prefix + "_nodeids": [], prefix + "_ids": [],
         prefix + "_weights": []}
    for ti, tr in enumerate(trees):
        for i in range(tr.node_count):
            leaf = tr.children_left[i] == -1
            a["nodes_treeids"].append(ti)
            a["nodes_nodeids"].append(i)
            a["nodes_featureids"].append(0 if leaf else int(tr.feature[i]))
            a["nodes_values"].append(0.0 if leaf else f32_down(tr.threshold[i]))
            a["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            a["nodes_truenodeids"].append(0 if leaf else int(tr.children_left[i]))
            a["nodes_falsenodeids"].append(0 if leaf else int(tr.children_right[i]))
            a["nodes_hitrates"].append(1.0)
            if leaf:
                for out_id, weight in leaf_fn(ti, tr, i):
                    w[prefix + "_treeids"].append(ti)
                    w[prefix + "_nodeids"].append(i)
                    w[prefix + "_ids"].append(out_id)
                    w[prefix + "_weights"].append(float(weight))
    a.update(w)
    return a


def is_classifier(est):
    return hasattr(est, "classes_")


def convert_trees(b, x, est):
    name = type(est).__name__
    if name in ("DecisionTreeClassifier", "DecisionTreeRegressor"):
        trees, scale = [est.tree_], 1.0
    elif name in ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
                  "ExtraTreesRegressor"):
        trees, scale = [e.tree_ for e in est.estimators_], 1.0 / len(est.estimators_)
    else:
        trees = None
    if trees is not None:
        if is_classifier(est):
            def leaf(ti, tr, i):
                v = tr.value[i][0]
                p = v / v.sum()
                return [(k, p[k] * scale) for k in range(len(p))]
            a = tree_attrs(trees, "class", leaf)
            lab, prob = b.node("TreeEnsembleClassifier", [x], 2, ML,
                               classlabels_int64s=list(range(len(est.classes_))),
                               post_transform="NONE", **a)
            return prob, len(est.classes_)
        def leaf(ti, tr, i):
            return [(0, tr.value[i][0][0] * scale)]
        a = tree_attrs(trees, "target", leaf)
        return b.node("TreeEnsembleRegressor", [x], 1, ML, n_targets=1,
                      post_transform="NONE", aggregate_function="SUM", **a), 1
    if name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        stages = est.estimators_  # [n_stages, K]
        K = stages.shape[1]
        trees = [stages[s, k].tree_ for s in range(stages.shape[0]) for k in range(K)]
        lr = est.learning_rate
        base = est._raw_predict_init(np.zeros((1, est.n_features_in_)))[0]

        def leaf(ti, tr, i):
            return [(ti % K, tr.value[i][0][0] * lr)]
        if is_classifier(est):
            a = tree_attrs(trees, "class", leaf)
            lab, prob = b.node("TreeEnsembleClassifier", [x], 2, ML,
                               classlabels_int64s=list(range(len(est.classes_))),
                               post_transform="LOGISTIC" if K == 1 else "SOFTMAX",
                               base_values=[float(v) for v in base], **a)
            return prob, len(est.classes_)
        a = tree_attrs(trees, "target", leaf)
        return b.node("TreeEnsembleRegressor", [x], 1, ML, n_targets=1, post_transform="NONE",
                      aggregate_function="SUM", base_values=[float(base[0])], **a), 1
    return None


def convert(b, x, width, est):
    """Append est applied to value x (width columns); return (value, width, is_proba)."""
    name = type(est).__name__
    if name == "StandardScaler":
        mean = est.mean_ if est.with_mean else np.zeros(width)
        scale = 1.0 / est.scale_ if est.with_std else np.ones(width)
        return b.node("Scaler", [x], 1, ML, offset=[float(v) for v in mean],
                      scale=[float(v) for v in scale]), width, False
    if name == "PCA":
        comp = est.components_
        if est.whiten:
            comp = comp / np.sqrt(est.explained_variance_)[:, None]
        y = b.node("Sub", [x, b.const(est.mean_.reshape(1, -1), "mean")])
        return b.node("MatMul", [y, b.const(comp.T, "components")]), comp.shape[0], False
    if name == "LogisticRegression":
        coef, icpt = est.coef_, est.intercept_
        ncls = len(est.classes_)
        labels = list(range(ncls))
        if ncls == 2:
            coef = np.vstack([-coef, coef])
            icpt = np.concatenate([-icpt, icpt])
        multinomial = ncls > 2 and getattr(est, "multi_class", "auto") in ("auto", "multinomial") \
            and est.solver != "liblinear"
        lab, sc = b.node("LinearClassifier", [x], 2, ML,
                         coefficients=[float(v) for v in coef.ravel()],
                         intercepts=[float(v) for v in icpt], classlabels_ints=labels,
                         multi_class=1 if multinomial else 0,
                         post_transform="SOFTMAX" if multinomial else "LOGISTIC")
        if not multinomial:
            sc = b.node("Normalizer", [sc], 1, ML, norm="L1")
        return sc, ncls, True
    if name in ("MLPClassifier", "MLPRegressor"):
        act = {"relu": "Relu", "logistic": "Sigmoid", "tanh": "Tanh", "identity": None}
        h = x
        n = len(est.coefs_)
        for i, (W, bias) in enumerate(zip(est.coefs_, est.intercepts_)):
            h = b.node("MatMul", [h, b.const(W, "W")])
            h = b.node("Add", [h, b.const(bias, "b")])
            if i < n - 1 and act[est.activation]:
                h = b.node(act[est.activation], [h])
        out = est.coefs_[-1].shape[1]
        if name == "MLPRegressor":
            return h, out, False
        if est.out_activation_ == "logistic":
            p = b.node("Sigmoid", [h])
            q = b.node("Sub", [b.const(np.ones((1, 1)), "one"), p])
            return b.node("Concat", [q, p], axis=1), 2, True
        return b.node("Softmax", [h], axis=1), out, True
    r = convert_trees(b, x, est)
    if r is not None:
        return r[0], r[1], is_classifier(est)
    raise SystemExit("export_onnx: %s is not supported" % name)


def zipmap_type():
    """seq(map(int64, float)); built by hand: onnx 1.12 has no make_map_type_proto"""
    t = onnx.TypeProto()
    m = t.sequence_type.elem_type.map_type
    m.key_type = TensorProto.INT64
    m.value_type.tensor_type.elem_type = TensorProto.FLOAT
    return t


def to_onnx(est, n_features):
    """ModelProto for a fitted estimator or Pipeline reading n_features floats."""
    steps = [s for _, s in est.steps] if type(est).__name__ == "Pipeline" else [est]
    b = Builder()
    x, width, proba = "X", n_features, False
    for s in steps:
        x, width, proba = convert(b, x, width, s)
    last = steps[-1]
    outputs = []
    if is_classifier(last):
        labels = list(range(len(last.classes_)))
        lab = b.node("ArgMax", [x], axis=1, keepdims=0)
        b.nodes.append(helper.make_node("Identity", [lab], ["output_label"], name="label"))
        b.nodes.append(helper.make_node("ZipMap", [x], ["output_probability"], name="zipmap",
                                        domain=ML, classlabels_int64s=labels))
        outputs = [
            helper.make_tensor_value_info("output_label", TensorProto.INT64, [None]),
            helper.make_value_info("output_probability", zipmap_type()),
        ]
    else:
        b.nodes.append(helper.make_node("Identity", [x], ["variable"], name="variable"))
        outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, width])]
    graph = helper.make_graph(b.nodes, "alphapulse_export",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                             [None, n_features])],
                              outputs, initializer=b.inits)
    model = helper.make_model(graph, producer_name="alphapulse-export-onnx",
                              opset_imports=[helper.make_opsetid("", 13),
                                             helper.make_opsetid(ML, 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="pickled fitted sklearn estimator or Pipeline")
    ap.add_argument("out", help="ONNX file to write")
    ap.add_argument("--features", type=int, required=True, help="input width")
    a = ap.parse_args()
    with open(a.model, "rb") as f:
        est = pickle.load(f)
    onnx.save(to_onnx(est, a.features), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
