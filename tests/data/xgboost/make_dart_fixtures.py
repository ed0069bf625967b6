#!/usr/bin/python3
"""Writes the DART fixtures of this folder (see README.md): one small DART
model trained with python3-xgboost (1.7.4), saved as XGBoost writes it
(dart_1.7.json / .ubj) and in XGBoost 3.x's layout (dart_3x.json / .ubj,
made with the edit and UBJSON codec of tests/forest/xgb_layouts.py),
input.csv, and XGBoost's own predictions of the 1.7 file on it (expected.csv,
expected_raw.csv: %.9g, the float32 values). Run from the repository root:
    /usr/bin/python3 tests/data/xgboost/make_dart_fixtures.py
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "forest"))
from xgb_layouts import to_3x_dart, ubj_decode, ubj_encode  # noqa: E402


def main():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] - 0.7 * X[:, 1] + 0.3 * rng.normal(size=300) > 0).astype(float)
    params = {"objective": "binary:logistic", "booster": "dart", "rate_drop": 0.5,
              "skip_drop": 0.0, "max_depth": 3, "eta": 0.5, "seed": 3, "base_score": 0.4}
    bst = xgb.train(params, xgb.DMatrix(X, y, feature_names=["a", "b", "c"]), 6)
    p = lambda name: os.path.join(HERE, name)
    bst.save_model(p("dart_1.7.json"))
    bst.save_model(p("dart_1.7.ubj"))
    mj = json.load(open(p("dart_1.7.json")))
    w = mj["learner"]["gradient_booster"]["weight_drop"]
    assert any(abs(v - 1.0) > 1e-3 for v in w), "weights all 1: pick other parameters"
    json.dump(to_3x_dart(mj), open(p("dart_3x.json"), "w"), separators=(",", ":"))
    raw = open(p("dart_1.7.ubj"), "rb").read()
    mu = ubj_decode(raw)
    assert ubj_encode(mu) == raw
    open(p("dart_3x.ubj"), "wb").write(ubj_encode(to_3x_dart(mu)))
    Xt = np.vstack([rng.normal(size=(18, 3)), [[np.nan, 0.0, 1.0], [0.5, np.nan, np.nan]]])
    with open(p("input.csv"), "w") as f:
        f.write("a,b,c\n")
        for row in Xt:
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + "\n")
    ref = xgb.Booster(model_file=p("dart_1.7.json"))
    dm = xgb.DMatrix(Xt, feature_names=["a", "b", "c"])
    for name, out in (("expected.csv", ref.predict(dm)),
                      ("expected_raw.csv", ref.predict(dm, output_margin=True))):
        with open(p(name), "w") as f:
            f.write("prediction\n")
            for v in out:
                f.write("%.9g\n" % v)
    # the weights must matter: unit weights predict otherwise
    mj["learner"]["gradient_booster"]["weight_drop"] = [1.0] * len(w)
    json.dump(mj, open(p("unit.tmp.json"), "w"))
    unit = xgb.Booster(model_file=p("unit.tmp.json")).predict(dm, output_margin=True)
    os.remove(p("unit.tmp.json"))
    margins = ref.predict(dm, output_margin=True)
    assert (unit != margins).all(), "some rows do not depend on the weights"
    print("weight_drop", w, "distinct margins", len(set(margins.tolist())))


if __name__ == "__main__":
    main()
