"""Train the benchmark models with python3-xgboost (fixed seeds) and save them
as XGBoost JSON. Usage: train.py OUTDIR. A model already in OUTDIR is kept,
so reruns of `make bench` skip training.

  small.json  100 trees, depth 6, 50 features  (single-row and batch-1k)
  large.json  1000 trees, depth 8, 50 features (large)

The data: 50 standard normal features with 2% missing values (so the trees
learn default directions), target a nonlinear function of a few features
plus noise.
"""
import os
import sys

import numpy as np
import xgboost as xgb

NF = 50


def data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, NF))
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + np.abs(X[:, 3]) + 0.5 * X[:, 4:10].sum(axis=1)
         + 0.3 * rng.standard_normal(n))
    X[rng.random(X.shape) < 0.02] = np.nan
    return X, y


def train(path, ntrees, depth, nrows, seed):
    if os.path.exists(path):
        print(f"bench: using cached {path}", file=sys.stderr)
        return
    X, y = data(nrows, seed)
    params = {"objective": "reg:squarederror", "max_depth": depth, "eta": 0.1,
              "tree_method": "hist", "nthread": 2, "seed": seed}
    print(f"bench: training {path} ({ntrees} trees, depth {depth}, {nrows} rows)",
          file=sys.stderr)
    bst = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=ntrees)
    tmp = path + ".tmp.json"
    bst.save_model(tmp)
    os.replace(tmp, path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    train(os.path.join(out, "small.json"), 100, 6, 20000, 1)
    train(os.path.join(out, "large.json"), 1000, 8, 50000, 2)


if __name__ == "__main__":
    main()
