"""Benchmark models for bench_dense (FP16 dense weights, issue 12): sklearn
linear models and MLPs trained on one synthetic task (fixed seeds), written as
skl2onnx would (tools/export_onnx.py):

  logreg.onnx      LogisticRegression, 50 features (LinearClassifier + Normalizer)
  mlp-64.onnx      MLPClassifier (64, 64) relu, 50 features (MatMul + Add per layer)
  mlp-256.onnx     MLPRegressor (256, 256) relu, 50 features
  mlp-512.onnx     MLPRegressor (512, 512, 512) relu, 256 features (weights past L2)

The features are standard normal (what bench_dense feeds). A model already in
OUTDIR is kept, so reruns skip training.
usage: dense_models.py OUTDIR
"""
import os
import sys
import warnings

import numpy as np
import onnx
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import export_onnx  # noqa: E402


def data(n, nf, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, nf)).astype(np.float32)
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3:10].sum(axis=1) + 0.3 * rng.standard_normal(n)
    return X, y


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    warnings.simplefilter("ignore", ConvergenceWarning)
    models = [
        ("logreg", 50, lambda: LogisticRegression(max_iter=500), True),
        ("mlp-64", 50, lambda: MLPClassifier((64, 64), max_iter=30, random_state=0), True),
        ("mlp-256", 50, lambda: MLPRegressor((256, 256), max_iter=20, random_state=0), False),
        ("mlp-512", 256, lambda: MLPRegressor((512, 512, 512), max_iter=5, random_state=0), False),
    ]
    for name, nf, make, classify in models:
        path = os.path.join(out, name + ".onnx")
        if os.path.exists(path):
            continue
        X, y = data(20000 if nf <= 50 else 8000, nf, 0)
        est = make()
        est.fit(X, (y > 0).astype(int) if classify else y)
        onnx.save(export_onnx.to_onnx(est, nf), path)


if __name__ == "__main__":
    main()
