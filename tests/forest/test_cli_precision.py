#!/usr/bin/python3
"""`alphapulse predict --precision full|reduced` (issue 12).

For tree models (XGBoost JSON/UBJSON, LightGBM text, the demo's models, ONNX
forests) reduced precision is exact by construction: `--precision reduced`
must succeed and its output must be byte for byte the full output (and with
--raw too). ONNX graphs with dense layers (logreg, mlp) keep half weights
when reduced: they must reduce too (exit 0; the CLI measures the deviation
against the default tolerance 1e-3 before it predicts) and their outputs must
be within DENSE_TOL (that same 1e-3) of the full ones on these rows. Every
model here reduces: a refusal (exit 1 with the engine's reason, nothing
written -- an explicit request never runs full silently) is a failure; its
form is still checked so that the report says what was refused and why.

`--precision full` is the default (byte-identical output). Bad values of
--precision and --precision-tolerance stop with exit 2.

REFUSAL_OK: True accepted refusals while the reduced engine was a stub; the
engine has landed, so it is False and every model must reduce.

Env: AP_ROOT (repo root), AP_BIN (the alphapulse binary).
"""
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.environ.get("AP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
REFUSAL_OK = False
DENSE_TOL = 1e-3      # the default --precision-tolerance; half weights, float accumulation:
                      # about 1.5e-4 at most on these rows
failures = []


def expect(cond, what, detail=""):
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)
        if detail:
            print("    " + detail.strip().replace("\n", "\n    "))
    return cond


def run(*args):
    return subprocess.run([BIN, "predict"] + list(args), capture_output=True, text=True)


def rows_csv(path, width, n=200, seed=1):
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write(",".join("c%d" % j for j in range(width)) + "\n")
        for r in range(n):
            f.write(",".join("nan" if rng.random() < 0.05 else repr(rng.uniform(-3, 3))
                             for _ in range(width)) + "\n")


def close(a, b, tol):
    la, lb = a.splitlines(), b.splitlines()
    if len(la) != len(lb) or la[:1] != lb[:1]:
        return False
    for x, y in zip(la[1:], lb[1:]):
        for u, v in zip(x.split(","), y.split(",")):
            if u == v:
                continue
            if abs(float(u) - float(v)) > tol:
                return False
    return True


def check_model(label, model, inp, exact, raw=True):
    full = run("--model", model, "--input", inp)
    if not expect(full.returncode == 0 and full.stdout.count("\n") > 1,
                  "%s: full precision predicts" % label, full.stderr):
        return
    same = run("--model", model, "--input", inp, "--precision", "full")
    expect(same.returncode == 0 and same.stdout == full.stdout,
           "%s: --precision full is the default (same bytes)" % label, same.stderr)
    red = run("--model", model, "--input", inp, "--precision", "reduced")
    if red.returncode == 0:
        if exact:
            expect(red.stdout == full.stdout,
                   "%s: --precision reduced gives the full output byte for byte" % label)
        else:
            expect(close(red.stdout, full.stdout, DENSE_TOL),
                   "%s: --precision reduced within %g of full" % (label, DENSE_TOL))
        if raw:
            a = run("--model", model, "--input", inp, "--raw")
            b = run("--model", model, "--input", inp, "--raw", "--precision", "reduced")
            expect(a.returncode == 0 and b.returncode == 0 and a.stdout == b.stdout,
                   "%s: --raw --precision reduced: the same margins" % label, b.stderr)
        return
    prefix = "alphapulse predict: --precision reduced: "
    why = red.stderr.strip()
    expect(REFUSAL_OK, "%s: --precision reduced must succeed, refused (%s)" % (label, why))
    expect(red.returncode == 1 and why.startswith(prefix) and len(why) > len(prefix)
           and red.stdout == "",
           "%s: reduced refused -> exit 1 with the reason, no output (%s)" % (label, why),
           "rc %d stdout %r" % (red.returncode, red.stdout[:200]))
    out = os.path.join(os.path.dirname(inp), "refused.csv")
    red = run("--model", model, "--input", inp, "--precision", "reduced", "--output", out)
    expect(red.returncode == 1 and not os.path.exists(out),
           "%s: refused with --output: no file written" % label)


def main():
    if not os.access(BIN, os.X_OK):
        print("no alphapulse binary at %s (make all)" % BIN)
        return 1
    lgb = os.path.join(ROOT, "tests", "data", "lightgbm")
    xgb = os.path.join(ROOT, "tests", "data", "xgboost")
    onnx = os.path.join(ROOT, "tests", "fuzz", "corpus", "onnx")
    demo = os.path.join(ROOT, "examples", "models")
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "build")) as tmp:
        x4, x8 = os.path.join(tmp, "x4.csv"), os.path.join(tmp, "x8.csv")
        rows_csv(x4, 4)
        rows_csv(x8, 8)
        for case in ("binary", "multiclass", "regression", "linear_tree", "categorical"):
            check_model("lightgbm " + case, os.path.join(lgb, case, "model.txt"),
                        os.path.join(lgb, case, "input.csv"), exact=True)
        for f in ("dart_1.7.json", "dart_3x.ubj"):
            check_model("xgboost " + f, os.path.join(xgb, f), os.path.join(xgb, "input.csv"),
                        exact=True)
        # the demo's reversal (PCA to 8 columns) and the ONNX corpus (4 features)
        check_model("demo reversal", os.path.join(demo, "reversal", "2", "model.json"), x8,
                    exact=True)
        for f in ("rf", "gbr"):
            check_model("onnx " + f, os.path.join(onnx, f + ".onnx"), x4, exact=True, raw=False)
        for f in ("logreg", "mlp"):
            check_model("onnx " + f, os.path.join(onnx, f + ".onnx"), x4, exact=False, raw=False)

        model = os.path.join(xgb, "dart_1.7.json")
        inp = os.path.join(xgb, "input.csv")
        for bad in ("half", "auto", "FULL", ""):
            r = run("--model", model, "--input", inp, "--precision", bad)
            expect(r.returncode == 2 and "--precision '%s': expected full or reduced" % bad
                   in r.stderr, "--precision %r -> exit 2 naming it" % bad, r.stderr)
        for bad in ("0", "-1e-3", "nan", "inf", "x", "1e-3x"):
            r = run("--model", model, "--input", inp, "--precision", "reduced",
                    "--precision-tolerance", bad)
            expect(r.returncode == 2 and "--precision-tolerance '%s'" % bad in r.stderr,
                   "--precision-tolerance %r -> exit 2 naming it" % bad, r.stderr)
        mlp = os.path.join(onnx, "mlp.onnx")
        full = run("--model", mlp, "--input", x4)
        for tol in ("0.5", "1e-2"):
            r = run("--model", mlp, "--input", x4, "--precision", "reduced",
                    "--precision-tolerance", tol)
            expect(r.returncode == 0 and full.returncode == 0
                   and close(r.stdout, full.stdout, DENSE_TOL),
                   "mlp: --precision-tolerance %s accepted, reduced within %g of full"
                   % (tol, DENSE_TOL), r.stderr)
        # the tolerance is checked on the rows being predicted (a zero row
        # would test only the biases): a tolerance below the half-weight
        # deviation is refused, saying by how much, and nothing is written
        r = run("--model", mlp, "--input", x4, "--precision", "reduced",
                "--precision-tolerance", "1e-9")
        expect(r.returncode == 1 and "exceeds the tolerance 1e-09" in r.stderr
               and "on 200 rows" in r.stderr and r.stdout == "",
               "mlp: --precision-tolerance 1e-9 refused with the measured deviation", r.stderr)
        r = run("--help")
        expect(r.returncode == 0 and "--precision" in r.stdout, "predict --help names --precision")
    if failures:
        print("FAILED: %d check(s)" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
