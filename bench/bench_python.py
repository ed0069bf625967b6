#!/usr/bin/python3
"""alphapulse.Forest.predict vs xgboost.Booster.inplace_predict, from Python.

Usage: bench_python.py MODEL.json (bench/train.py's small.json: 100 trees,
depth 6, 50 features). Both sides get the same float64 rows (2% NaN) and
are first checked to agree exactly (float32). XGBoost runs with nthread=1,
as the engine does (one call, one thread); a second line gives XGBoost with
its default threads for reference. Timing: best of 7 rounds of the median
call time (time.perf_counter_ns around each call), wall time.

Prints:
  bench: python-single-row ours_us=A xgboost_us=B
  bench: python-batch-1k ours_us=A xgboost_us=B
"""
import os
import sys
import time

import numpy as np
import xgboost as xgb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import alphapulse  # noqa: E402


def per_call_us(fn, calls):
    best = float("inf")
    for _ in range(7):
        ts = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            ts.append(time.perf_counter_ns() - t0)
        best = min(best, float(np.median(ts)))
    return best / 1000.0


def main():
    path = sys.argv[1]
    forest = alphapulse.Forest.load(path)
    bst = xgb.Booster(model_file=path)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((1000, forest.num_features))
    X[rng.random(X.shape) < 0.02] = np.nan
    lines = []
    for nthread, label in ((1, ""), (0, "-xgboost-default-threads")):
        bst.set_param({"nthread": nthread} if nthread else {"nthread": os.cpu_count()})
        for name, rows, calls in (("single-row", X[:1], 2000), ("batch-1k", X, 60)):
            ours = forest.predict(rows)
            ref = bst.inplace_predict(rows, missing=np.nan)
            if not np.array_equal(ours.astype(np.float32), ref):
                print("bench: python-%s: predictions differ from xgboost" % name, file=sys.stderr)
                sys.exit(1)
            a = per_call_us(lambda: forest.predict(rows), calls)
            b = per_call_us(lambda: bst.inplace_predict(rows, missing=np.nan), calls)
            lines.append("bench: python-%s%s ours_us=%.2f xgboost_us=%.2f  (%.1fx)" % (
                name, label, a, b, b / a))
    print("\n".join(l for l in lines if "default-threads" not in l))
    print("\n".join(l for l in lines if "default-threads" in l))
    print("bench: python: %s, numpy %s, xgboost %s, nthread=1 unless said" % (
        sys.version.split()[0], np.__version__, xgb.__version__))


if __name__ == "__main__":
    main()
