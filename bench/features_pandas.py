#!/usr/bin/python3
"""What the Python original paid per prediction: recompute the alphapulse-v1
101-vector with pandas over a 500-bar window, keep the last row.

The pandas implementation is tests/features/reference_features.py (the spec
in batch form, checked against the shipped reference files), i.e. a faithful
pandas FeatureExtractor. Requests slide the 500-bar window over the ttrc bars;
the mean over `--requests` of them is reported.

usage: features_pandas.py [--requests N] [--ours BENCH_BINARY]
  prints  pandas_ns_per_request=<y>
  with --ours, runs the C benchmark too and prints
  bench: features ours_ns_per_bar=<x> pandas_ns_per_request=<y>
"""
import argparse
import os
import re
import subprocess
import sys
import time

import pandas as pd

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "features"))
import reference_features as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--ours", help="build/bench/bench_features, run for the combined line")
    args = ap.parse_args()
    bars = pd.read_csv(os.path.join(ROOT, "tests/data/market/ttrc_daily.csv"),
                       dtype={"timestamp": str})
    ref.features(bars.iloc[:args.window].reset_index(drop=True))  # warm imports and caches
    total = 0.0
    for k in range(args.requests):
        start = (k * 97) % (len(bars) - args.window)
        window = bars.iloc[start:start + args.window].reset_index(drop=True)
        t0 = time.perf_counter_ns()
        vec = ref.features(window).iloc[-1].to_numpy()
        total += time.perf_counter_ns() - t0
        assert len(vec) == 101
    pandas_ns = total / args.requests
    print(f"pandas: {args.requests} requests over a {args.window}-bar window, "
          f"pandas {pd.__version__}")
    if not args.ours:
        print(f"pandas_ns_per_request={pandas_ns:.0f}")
        return 0
    out = subprocess.run([args.ours], check=True, capture_output=True, text=True,
                         cwd=ROOT).stdout
    sys.stdout.write(out)
    m = re.search(r"ours_ns_per_bar=([0-9.]+)", out)
    ours = float(m.group(1))
    print(f"speed-up per request: {pandas_ns / ours:.0f}x")
    print(f"bench: features ours_ns_per_bar={ours:.1f} pandas_ns_per_request={pandas_ns:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
