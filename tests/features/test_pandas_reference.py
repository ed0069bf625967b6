#!/usr/bin/python3
"""The CLI's streaming features against our pandas batch reference.

1. Trust the reference: reference_features.py over the shipped bar files must
   reproduce the shipped expected features (edge cases; first 3000 ttrc rows).
2. Then, on real data the shipped files do not cover (GOOG daily, USDCHF 4h,
   all 5550 ttrc rows), `alphapulse features` must match the reference.
Tolerance (tests/data/features/README.md): |a-e| <= 1e-9 + 1e-9*|e|, NaN only
matches NaN; the timestamp column must be echoed exactly.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_features as ref  # noqa: E402

ROOT = os.environ.get("AP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build/alphapulse"))
DATA = os.path.join(ROOT, "tests/data")


def compare(name, got, exp):
    """got/exp: DataFrames with timestamp + 101 columns. Returns failures."""
    fails = []
    if list(got.columns) != ["timestamp"] + ref.NAMES:
        return [f"{name}: header differs"]
    if list(exp.columns) != ["timestamp"] + ref.NAMES:
        return [f"{name}: expected header differs"]
    if len(got) != len(exp):
        return [f"{name}: {len(got)} rows, expected {len(exp)}"]
    if not (got["timestamp"].to_numpy() == exp["timestamp"].to_numpy()).all():
        fails.append(f"{name}: timestamp column differs")
    worst = 0.0
    for col in ref.NAMES:
        a = got[col].to_numpy(dtype=float)
        e = exp[col].to_numpy(dtype=float)
        both_nan = np.isnan(a) & np.isnan(e)
        with np.errstate(invalid="ignore"):
            err = np.abs(a - e) / (1.0 + np.abs(e))
            ok = both_nan | (np.abs(a - e) <= 1e-9 + 1e-9 * np.abs(e))
        if not ok.all():
            i = int(np.where(~ok)[0][0])
            fails.append(f"{name}: {col}: {int((~ok).sum())} rows differ, first row {i}: "
                         f"got {a[i]!r} expected {e[i]!r}")
        err = err[~both_nan]
        if err.size and np.nanmax(err) > worst:
            worst = float(np.nanmax(err))
    print(f"{name}: {len(got)} rows x 101 features compared, worst |a-e|/(1+|e|) = {worst:.3g}"
          f", {'OK' if not fails else 'FAIL'}")
    return fails


def read(path):
    return pd.read_csv(path, dtype={"timestamp": str}, keep_default_na=False,
                       na_values=["nan"])


def main():
    fails = []
    tmp = tempfile.mkdtemp(prefix="ap_features_", dir=os.path.join(ROOT, "build"))
    # 1. the reference against the shipped expected files
    bars = pd.read_csv(os.path.join(DATA, "features/edge_cases.csv"), dtype={"timestamp": str})
    got = pd.concat([bars[["timestamp"]], ref.features(bars)], axis=1)
    fails += compare("reference vs shipped edge_cases", got,
                     read(os.path.join(DATA, "features/edge_cases_alphapulse_v1.csv")))
    bars = pd.read_csv(os.path.join(DATA, "market/ttrc_daily.csv"), dtype={"timestamp": str})
    head = bars.iloc[:3000].reset_index(drop=True)
    got = pd.concat([head[["timestamp"]], ref.features(head)], axis=1)
    fails += compare("reference vs shipped ttrc[:3000]", got,
                     read(os.path.join(DATA, "features/ttrc_daily_alphapulse_v1.csv")))
    if fails:
        print("\n".join(fails))
        print("the pandas reference does not reproduce the shipped files: not trusted")
        return 1
    # 2. the CLI against the reference
    for name in ("goog_daily", "usdchf_4h", "ttrc_daily"):
        src = os.path.join(DATA, "market", name + ".csv")
        out = os.path.join(tmp, name + "_features.csv")
        subprocess.run([BIN, "features", "--input", src, "--output", out], check=True)
        bars = pd.read_csv(src, dtype={"timestamp": str})
        exp = pd.concat([bars[["timestamp"]], ref.features(bars)], axis=1)
        fails += compare(f"alphapulse features vs pandas reference: {name}", read(out), exp)
        os.remove(out)
    os.rmdir(tmp)
    if fails:
        print("\n".join(fails))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
