#!/usr/bin/python3
"""Export trained models into an alphapulse model repository (docs/MODEL_REPOSITORY.md).

Writes <repo>/<name>/manifest.json (if absent) and a new version folder
<repo>/<name>/<N>/ holding version.json and the model file.

Sources:
  (a) a fitted sklearn Pipeline: SimpleImputer / StandardScaler / PCA /
      feature selectors (anything with get_support), then as the final step an
      XGBoost sklearn estimator (XGBClassifier, XGBRegressor: format xgboost)
      or a scikit-learn estimator that tools/export_onnx.py writes (random
      forests, gradient boosting, trees, LogisticRegression, MLP: format onnx,
      model.onnx holding the estimator alone; the steps before it go to the
      version's pipeline either way);
  (b) an XGBoost Booster (or a saved .json / .ubj model file);
  (c) a LightGBM text model file;
  (d) an ensemble: member names + a logistic meta-learner (coefficients,
      intercept) or weights.

As a library (tools/train_demo.py and the tests use it):
    from export_model import export_sklearn, export_xgboost, export_lightgbm, export_ensemble
As a command:
    tools/export_model.py --repository DIR --name NAME --kind pattern --target reversal \\
        (--sklearn PIPE.pkl | --xgboost MODEL.json | --lightgbm MODEL.txt) \\
        [--features a,b,c | --input-width N] [--ubj] [--output-index 0] \\
        [--confidence max_probability|margin] [--max-batch-size 64] [--max-queue-delay-us 1000]
    tools/export_model.py --repository DIR --name meta --kind ensemble --target reversal \\
        --members a,b,c (--coefficients 1,2,3 --intercept -0.5 | --weights 1,1,1)
"""
import argparse
import json
import os
import pickle
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import alphapulse  # noqa: E402  (the engine: feature names, and a load check of what we write)

FEATURE_SET = "alphapulse-v1"


class ExportError(Exception):
    pass


def _floats(a):
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ExportError("non-finite parameter values cannot be exported")
    return [float(x) for x in a.ravel()]


def _next_version(model_dir):
    nums = [int(d) for d in os.listdir(model_dir)
            if d.isdigit() and not d.startswith("0") and os.path.isdir(os.path.join(model_dir, d))]
    return max(nums, default=0) + 1


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")


def _prepare(repo, name, kind, target, version, batching, description):
    """Model folder + manifest.json (kept if present: it must agree); returns the version dir."""
    model_dir = os.path.join(repo, name)
    os.makedirs(model_dir, exist_ok=True)
    mpath = os.path.join(model_dir, "manifest.json")
    if os.path.exists(mpath):
        with open(mpath) as f:
            old = json.load(f)
        if old.get("name") != name or old.get("kind") != kind or old.get("target") != target:
            raise ExportError("%s exists with name/kind/target %s/%s/%s, not %s/%s/%s" % (
                mpath, old.get("name"), old.get("kind"), old.get("target"), name, kind, target))
    else:
        man = {"name": name, "kind": kind, "target": target, "version_policy": "latest",
               "batching": {"max_batch_size": batching[0], "max_queue_delay_us": batching[1]}}
        if description:
            man["description"] = description
        _write_json(mpath, man)
    if version is None:
        version = _next_version(model_dir)
    vdir = os.path.join(model_dir, str(version))
    if os.path.exists(vdir):
        raise ExportError("%s already exists" % vdir)
    os.makedirs(vdir)
    return vdir


def pipeline_steps(steps, width):
    """sklearn transformers (fitted) -> (pipeline steps as JSON, output width)."""
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler
    out = []
    for step in steps:
        if step is None or step == "passthrough":
            continue
        if isinstance(step, SimpleImputer):
            if not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
                raise ExportError("SimpleImputer: only missing_values=np.nan is supported")
            if step.add_indicator:
                raise ExportError("SimpleImputer: add_indicator is not supported")
            stats = np.asarray(step.statistics_, dtype=np.float64)
            if step.strategy == "constant":
                out.append({"op": "fillna", "value": float(stats[0])})
                continue
            empty = np.isnan(stats)
            out.append({"op": "fillna", "values": _floats(np.where(empty, 0.0, stats))})
            # sklearn drops columns that were all-NaN at fit time (unless keep_empty_features)
            if empty.any() and not getattr(step, "keep_empty_features", False):
                keep = [int(j) for j in np.flatnonzero(~empty)]
                out.append({"op": "select", "columns": keep})
                width = len(keep)
        elif isinstance(step, StandardScaler):
            # sklearn keeps mean_ even with with_mean=False: the flags decide
            mean = step.mean_ if step.with_mean else np.zeros(width)
            scale = step.scale_ if step.with_std else np.ones(width)
            out.append({"op": "standard_scaler", "mean": _floats(mean), "scale": _floats(scale)})
        elif isinstance(step, PCA):
            comp = np.asarray(step.components_, dtype=np.float64)
            if step.whiten:
                # sklearn divides the projection by sqrt(explained_variance_): fold it in
                comp = comp / np.sqrt(step.explained_variance_)[:, None]
            out.append({"op": "pca", "mean": _floats(step.mean_),
                        "components": [_floats(r) for r in comp]})
            width = comp.shape[0]
        elif hasattr(step, "get_support"):
            keep = [int(j) for j in np.flatnonzero(step.get_support())]
            out.append({"op": "select", "columns": keep})
            width = len(keep)
        else:
            raise ExportError("pipeline step %s is not supported (SimpleImputer, "
                              "StandardScaler, PCA, feature selectors)" % type(step).__name__)
    return out, width


def _check_features(name, features):
    """Every name must be an alphapulse-v1 feature (the engine's own list)."""
    if features is None:
        return
    known = set(alphapulse.FEATURE_NAMES)
    unknown = [f for f in features if f not in known]
    if unknown:
        raise ExportError("%s: not alphapulse-v1 features: %s" % (name, ", ".join(unknown)))


def _check_loads(vdir, fname, name, width):
    """The engine must load the model file we wrote, at the width we expect:
    refuse at export time what the server would refuse at load time."""
    try:
        with alphapulse.Forest.load(os.path.join(vdir, fname)) as f:
            if width is not None and f.num_features != width:
                raise alphapulse.Error("%s takes %d features, expected %d" % (
                    fname, f.num_features, width))
    except alphapulse.Error as e:
        shutil.rmtree(vdir)
        model_dir = os.path.dirname(vdir)
        if not any(d.isdigit() for d in os.listdir(model_dir)):   # this export made the folder
            shutil.rmtree(model_dir)
        raise ExportError("%s: alphapulse cannot serve the exported model: %s" % (name, e))


def _version_json(fmt, fname, features, input_width, steps, output_index, confidence):
    v = {"format": fmt, "file": fname}
    if features is not None:
        v["feature_set"] = FEATURE_SET
        v["features"] = list(features)
    else:
        v["input_width"] = int(input_width)
    v["pipeline"] = steps
    v["output_index"] = 0 if output_index is None else int(output_index)
    v["confidence"] = confidence
    return v


def export_xgboost(booster, repo, name, kind, target, features=None, input_width=None,
                   steps=(), ubj=False, output_index=0, confidence="max_probability",
                   version=None, batching=(64, 1000), description=None):
    """An XGBoost Booster (or a path to a saved model), optionally behind pipeline steps."""
    import xgboost as xgb
    if isinstance(booster, str):
        path = booster
        booster = xgb.Booster()
        booster.load_model(path)
    if features is None and input_width is None:
        if not booster.feature_names:
            raise ExportError("%s: give the features (or input_width): the booster names none"
                              % name)
        features = booster.feature_names
    _check_features(name, features)
    vdir = _prepare(repo, name, kind, target, version, batching, description)
    fname = "model.ubj" if ubj else "model.json"
    booster.save_model(os.path.join(vdir, fname))
    _check_loads(vdir, fname, name, booster.num_features())
    _write_json(os.path.join(vdir, "version.json"),
                _version_json("xgboost", fname, features, input_width, list(steps),
                              output_index, confidence))
    return vdir


def _export_onnx_estimator(est, repo, name, kind, target, features, input_width, width, steps,
                           output_index=None, confidence="max_probability", version=None,
                           batching=(64, 1000), description=None):
    """A scikit-learn estimator as model.onnx (tools/export_onnx.py) behind pipeline steps."""
    import onnx
    from export_onnx import to_onnx
    # a binary classifier's graph outputs [P(class 0), P(class 1)]: serve class 1,
    # as an XGBoost binary model's single output is
    if output_index is None:
        output_index = 1 if len(getattr(est, "classes_", ())) == 2 else 0
    _check_features(name, features)
    model = to_onnx(est, width)
    vdir = _prepare(repo, name, kind, target, version, batching, description)
    onnx.save(model, os.path.join(vdir, "model.onnx"))
    _write_json(os.path.join(vdir, "version.json"),
                _version_json("onnx", "model.onnx", features, input_width, steps, output_index,
                              confidence))
    return vdir


def export_sklearn(pipe, repo, name, kind, target, features=None, input_width=None, **kw):
    """A fitted sklearn Pipeline (or estimator) ending in an XGBoost sklearn estimator
    (format xgboost) or another scikit-learn estimator (format onnx)."""
    from sklearn.pipeline import Pipeline
    stages = [s for _, s in pipe.steps] if isinstance(pipe, Pipeline) else [pipe]
    est = stages[-1]
    width = len(features) if features is not None else input_width
    if width is None:
        raise ExportError("%s: give the features (or input_width)" % name)
    # the transformers stay in the version's pipeline, computed in double as sklearn
    # does: in an ONNX graph they would run in float and could move a row across a
    # tree threshold
    steps, out_width = pipeline_steps(stages[:-1], width)
    if not hasattr(est, "get_booster"):
        if kw.pop("ubj", False):
            raise ExportError("%s: ubj applies to XGBoost models only" % name)
        return _export_onnx_estimator(est, repo, name, kind, target, features, input_width,
                                      out_width, steps, **kw)
    booster = est.get_booster()
    # the booster's names, if any, are the columns after the pipeline: keep them only
    # when the pipeline keeps the columns (the registry then checks them)
    if any(s["op"] in ("pca", "select") for s in steps):
        booster.feature_names = None
    return export_xgboost(booster, repo, name, kind, target, features=features,
                          input_width=input_width, steps=steps, **kw)


def _lightgbm_feature_names(path):
    with open(path) as f:
        for line in f:
            if line.startswith("feature_names="):
                return line.strip().split("=", 1)[1].split(" ")
            if line.startswith("Tree="):
                break
    return None


def export_lightgbm(path, repo, name, kind, target, features=None, input_width=None, steps=(),
                    output_index=0, confidence="max_probability", version=None,
                    batching=(64, 1000), description=None):
    """A LightGBM text model file (model.save_model / booster.save_model output)."""
    if features is None and input_width is None:
        features = _lightgbm_feature_names(path)
        if not features:
            raise ExportError("%s: give the features: the model file names none" % path)
    _check_features(name, features)
    vdir = _prepare(repo, name, kind, target, version, batching, description)
    shutil.copyfile(path, os.path.join(vdir, "model.txt"))
    _check_loads(vdir, "model.txt", name, None)
    _write_json(os.path.join(vdir, "version.json"),
                _version_json("lightgbm", "model.txt", features, input_width, list(steps),
                              output_index, confidence))
    return vdir


def export_ensemble(repo, name, target, members, coefficients=None, intercept=None,
                    weights=None, version=None, batching=(64, 1000), description=None):
    """Members (model names in the repository) + a logistic meta-learner or weights."""
    if (coefficients is None) == (weights is None):
        raise ExportError("give either coefficients + intercept (logistic) or weights")
    if coefficients is not None:
        comb = {"type": "logistic", "coefficients": _floats(coefficients),
                "intercept": float(np.asarray(intercept, dtype=np.float64).ravel()[0])}
    else:
        comb = {"type": "weighted_mean", "weights": _floats(weights)}
    vdir = _prepare(repo, name, "ensemble", target, version, batching, description)
    _write_json(os.path.join(vdir, "version.json"),
                {"members": list(members), "combiner": comb, "confidence": "member_std"})
    return vdir


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repository", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--kind", required=True, choices=["pattern", "regime", "raw", "ensemble"])
    ap.add_argument("--target", required=True)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--sklearn", help="pickled fitted sklearn Pipeline")
    src.add_argument("--xgboost", help="XGBoost model file (.json or .ubj)")
    src.add_argument("--lightgbm", help="LightGBM text model file")
    ap.add_argument("--features", help="comma-separated alphapulse-v1 feature names")
    ap.add_argument("--input-width", type=int, help="raw models: the input width")
    ap.add_argument("--ubj", action="store_true", help="write the XGBoost model as UBJSON")
    ap.add_argument("--output-index", type=int,
                    help="output served (default: class 1 of a binary ONNX classifier, else 0)")
    ap.add_argument("--confidence", default="max_probability",
                    choices=["max_probability", "margin"])
    ap.add_argument("--members", help="ensembles: comma-separated member names")
    ap.add_argument("--coefficients", help="ensembles: logistic coefficients, comma-separated")
    ap.add_argument("--intercept", type=float, help="ensembles: logistic intercept")
    ap.add_argument("--weights", help="ensembles: weighted-mean weights, comma-separated")
    ap.add_argument("--version", type=int, help="version number (default: highest + 1)")
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--max-queue-delay-us", type=int, default=1000)
    ap.add_argument("--description")
    a = ap.parse_args(argv)
    common = dict(version=a.version, batching=(a.max_batch_size, a.max_queue_delay_us),
                  description=a.description)
    nums = lambda s: [float(x) for x in s.split(",")] if s else None
    feats = a.features.split(",") if a.features else None
    try:
        if a.kind == "ensemble":
            if not a.members:
                raise ExportError("an ensemble needs --members")
            vdir = export_ensemble(a.repository, a.name, a.target, a.members.split(","),
                                   coefficients=nums(a.coefficients), intercept=a.intercept,
                                   weights=nums(a.weights), **common)
        else:
            kw = dict(features=feats, input_width=a.input_width, output_index=a.output_index,
                      confidence=a.confidence, **common)
            if a.sklearn:
                with open(a.sklearn, "rb") as f:
                    pipe = pickle.load(f)
                vdir = export_sklearn(pipe, a.repository, a.name, a.kind, a.target,
                                      ubj=a.ubj, **kw)
            elif a.xgboost:
                vdir = export_xgboost(a.xgboost, a.repository, a.name, a.kind, a.target,
                                      ubj=a.ubj, **kw)
            elif a.lightgbm:
                vdir = export_lightgbm(a.lightgbm, a.repository, a.name, a.kind, a.target, **kw)
            else:
                raise ExportError("give --sklearn, --xgboost or --lightgbm")
    except ExportError as e:
        print("export_model: %s" % e, file=sys.stderr)
        return 1
    print(vdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
