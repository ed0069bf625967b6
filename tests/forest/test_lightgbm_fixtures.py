#!/usr/bin/python3
"""Parity of `alphapulse predict` with LightGBM 4.6.0 on every fixture.

For each tests/data/lightgbm/<case>/ (model.txt, input.csv, expected.csv from
LightGBM's task=predict, expected_raw.csv from predict_raw_score=true), run
the CLI with and without --raw and compare every value:
    |got - expected| <= 1e-12 * max(1, |expected|).
Prints the largest relative error per case and output kind.

Env: AP_ROOT (repo root), AP_BIN (the alphapulse binary).
"""
import csv
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("AP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
DATA = os.path.join(ROOT, "tests", "data", "lightgbm")
TOL = 1e-12


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [[float(v) for v in r] for r in rows[1:]]


def compare(case, kind, got_path, exp_path):
    """Returns a list of failure lines (empty on success)."""
    ghead, got = read_csv(got_path)
    ehead, exp = read_csv(exp_path)
    fails = []
    if ghead != ehead:
        fails.append(f"{case} {kind}: header {ghead} != expected {ehead}")
    if len(got) != len(exp):
        fails.append(f"{case} {kind}: {len(got)} rows, expected {len(exp)}")
        return fails
    worst, worst_at = 0.0, None
    nbad = 0
    for i, (g, e) in enumerate(zip(got, exp)):
        if len(g) != len(e):
            fails.append(f"{case} {kind}: row {i + 1} has {len(g)} values, expected {len(e)}")
            return fails
        for j, (a, b) in enumerate(zip(g, e)):
            if math.isnan(a) or math.isnan(b):
                rel = 0.0 if (math.isnan(a) and math.isnan(b)) else math.inf
            else:
                rel = abs(a - b) / max(1.0, abs(b))
            if rel > worst:
                worst, worst_at = rel, (i + 1, j, a, b)
            if rel > TOL:
                nbad += 1
    print(f"  {case:16s} {kind:5s} rows={len(exp):6d} max_rel_err={worst:.3g}"
          + (f" at row {worst_at[0]} col {worst_at[1]}" if worst_at else ""))
    if nbad:
        r, c, a, b = worst_at
        fails.append(f"{case} {kind}: {nbad} values off by more than {TOL:g} (relative); "
                     f"worst row {r} col {c}: got {a!r}, expected {b!r}")
    return fails


def main():
    if not os.access(BIN, os.X_OK):
        print(f"no alphapulse binary at {BIN} (build it with make all)")
        return 1
    cases = sorted(d for d in os.listdir(DATA) if os.path.isfile(os.path.join(DATA, d, "model.txt")))
    if not cases:
        print(f"no fixtures under {DATA}")
        return 1
    print(f"LightGBM fixtures: {len(cases)} cases, tolerance {TOL:g} relative")
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            d = os.path.join(DATA, case)
            for kind, flags, expected in (("prob", [], "expected.csv"),
                                          ("raw", ["--raw"], "expected_raw.csv")):
                out = os.path.join(tmp, f"{case}_{kind}.csv")
                cmd = [BIN, "predict", "--model", os.path.join(d, "model.txt"),
                       "--input", os.path.join(d, "input.csv"), "--output", out] + flags
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    fails.append(f"{case} {kind}: exit {p.returncode}: {p.stderr.strip()}")
                    continue
                fails += compare(case, kind, out, os.path.join(d, expected))
                # issue 12: the reduced-precision engine prints the very same bytes
                red = os.path.join(tmp, f"{case}_{kind}_reduced.csv")
                p = subprocess.run([BIN, "predict", "--model", os.path.join(d, "model.txt"),
                                    "--input", os.path.join(d, "input.csv"), "--output", red,
                                    "--precision", "reduced"] + flags,
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    fails.append(f"{case} {kind} reduced: exit {p.returncode}: {p.stderr.strip()}")
                elif open(red, "rb").read() != open(out, "rb").read():
                    fails.append(f"{case} {kind}: --precision reduced output differs from full")
    if fails:
        print("FAILED:")
        for f in fails:
            print("  " + f)
        return 1
    print(f"all {len(cases)} cases match (transformed and raw; reduced precision byte-identical)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
