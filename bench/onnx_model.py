"""Benchmark model for bench_onnx: a 100-tree random forest, max_depth 10,
50 features, written as skl2onnx would (tools/export_onnx.py). Also checks
ONNX-vs-sklearn parity is left to tests/onnx; here only the file is made.
usage: onnx_model.py OUT.onnx (skips work when OUT exists)"""
import os
import sys

import numpy as np
import onnx
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import export_onnx  # noqa: E402

out = sys.argv[1]
if not os.path.exists(out):
    X, y = make_classification(20000, 50, n_informative=20, random_state=0)
    rf = RandomForestClassifier(100, max_depth=10, random_state=0, n_jobs=1)
    rf.fit(X.astype(np.float32), y)
    onnx.save(export_onnx.to_onnx(rf, 50), out)
