#!/usr/bin/python3
"""`alphapulse check-repo` accepts the demo repository and names the culprit in
broken copies of it, while the healthy models still load.

Copies examples/models to a temp dir, breaks one model per way, runs
check-repo, and checks: exit status 1, the FAIL line of each broken model
with the reason, OK lines for the untouched ones.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("AP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
DEMO = os.path.join(ROOT, "examples", "models")
failures = []


def check_repo(repo, *args, env=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("MIXED_PRECISION_ENABLED", "AP_MIXED_PRECISION_ENABLED")}
    e.update(env or {})
    r = subprocess.run([BIN, "check-repo", repo] + list(args), capture_output=True, text=True,
                       env=e)
    lines = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] in ("OK", "FAIL"):
            lines[parts[1]] = (parts[0], parts[2])
    return r.returncode, lines, r.stdout + r.stderr


def expect(cond, what, output=""):
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)
        print(output)


def edit_json(path, fn):
    with open(path) as f:
        doc = json.load(f)
    fn(doc)
    with open(path, "w") as f:
        json.dump(doc, f)


def fields(msg):
    """The key=value fields of an OK line (pipeline=[...] and the quoted
    precision_note may hold spaces)."""
    d = {}
    for m in re.finditer(r'(\w+)=(\[[^\]]*\]|"[^"]*"|\S+)', msg):
        d[m.group(1)] = m.group(2).strip('"')
    return d


def precision_checks():
    """Issue 12: each OK line says its precision, the manifest's request, node
    and model bytes; with mixed precision every demo model but the ensemble
    (meta, full with its note) runs reduced: no note, reduced bytes built and
    fewer than the full ones."""
    n = 0
    rc, lines, out = check_repo(DEMO)
    for name, (st, msg) in sorted(lines.items()):
        f = fields(msg)
        tree = f.get("format") == "xgboost"
        expect(f.get("precision") == "full" and f.get("requested") == "auto"
               and "precision_note" not in f and f.get("bytes_reduced") == "0"
               and (not tree or (int(f.get("bytes_full", 0)) > 0 and int(f.get("node_bytes", 0)) > 0)),
               "%s: precision=full requested=auto, bytes shown (%s)" % (name, msg[-90:]), out)
        n += 1
    for how, args, env in (("--mixed-precision", ["--mixed-precision"], None),
                           ("MIXED_PRECISION_ENABLED=true", [], {"MIXED_PRECISION_ENABLED": "true"}),
                           ("AP_MIXED_PRECISION_ENABLED=on", [], {"AP_MIXED_PRECISION_ENABLED": "on"})):
        rc, lines, out = check_repo(DEMO, *args, env=env)
        expect(rc == 0 and len(lines) == 7, "%s: 7 models load, exit 0" % how, out)
        for name, (st, msg) in sorted(lines.items()):
            f = fields(msg)
            if name == "meta":
                ok = (f.get("format") == "ensemble" and f.get("precision") == "full"
                      and "ensemble" in f.get("precision_note", "")
                      and f.get("bytes_reduced") == "0")
            else:
                ok = (st == "OK" and f.get("precision") == "reduced"
                      and "precision_note" not in f
                      and 0 < int(f.get("bytes_reduced", 0)) < int(f.get("bytes_full", 0)))
            expect(ok and f.get("requested") == "auto",
                   "%s: %s runs %s%s" % (how, name, f.get("precision"),
                                         " (" + f["precision_note"] + ")" if "precision_note" in f
                                         else ""), out)
            n += 1
    # the AP_ name wins, as for serve; a bad value is named (exit 2)
    rc, lines, out = check_repo(DEMO, env={"AP_MIXED_PRECISION_ENABLED": "false",
                                           "MIXED_PRECISION_ENABLED": "true"})
    expect(rc == 0 and all("precision_note" not in v[1] for v in lines.values()),
           "AP_MIXED_PRECISION_ENABLED=false wins over MIXED_PRECISION_ENABLED=true", out)
    rc, lines, out = check_repo(DEMO, env={"MIXED_PRECISION_ENABLED": "perhaps"})
    expect(rc == 2 and "environment MIXED_PRECISION_ENABLED" in out and "'perhaps'" in out,
           "MIXED_PRECISION_ENABLED=perhaps: exit 2 naming it", out)
    # predictions with --mixed-precision: the same text (trees are exact)
    rows = os.path.join(ROOT, "build", "ap_check_repo_rows.csv")
    r = subprocess.run([BIN, "features", "--input",
                        os.path.join(ROOT, "examples", "data", "goog_daily.csv"), "--output", rows],
                       capture_output=True, text=True)
    expect(r.returncode == 0, "features for the prediction rows", r.stderr)
    for model in ("reversal", "bear", "meta"):
        a = subprocess.run([BIN, "check-repo", DEMO, "--model", model, "--input", rows],
                           capture_output=True, text=True)
        b = subprocess.run([BIN, "check-repo", DEMO, "--mixed-precision", "--model", model,
                            "--input", rows], capture_output=True, text=True)
        expect(a.returncode == 0 and b.returncode == 0 and a.stdout == b.stdout
               and len(a.stdout.splitlines()) > 1000,
               "check-repo --mixed-precision --model %s: the same predictions" % model,
               a.stderr + b.stderr)
        n += 1
    os.remove(rows)
    return n + 2


def main():
    npc = precision_checks()
    rc, lines, out = check_repo(DEMO)
    expect(rc == 0 and len(lines) == 7 and all(v[0] == "OK" for v in lines.values()),
           "demo repository: 7 models load, exit 0", out)
    expect(lines.get("reversal", ("", ""))[1].find("version=2") >= 0,
           "demo repository: reversal serves its highest version (2)", out)

    tmp = tempfile.mkdtemp(prefix="ap_repo_", dir=os.path.join(ROOT, "build"))
    repo = os.path.join(tmp, "models")
    shutil.copytree(DEMO, repo)
    # 1. missing model file
    os.remove(os.path.join(repo, "bull/1/model.json"))
    # 2. unknown feature name
    edit_json(os.path.join(repo, "sideways/1/version.json"),
              lambda d: d["features"].__setitem__(5, "rsi_bogus"))
    # 3. width mismatch: 13 features into a model (bear: ONNX) that reads 14; the
    #    scaler goes too, so only the fillna step stands between them
    edit_json(os.path.join(repo, "bear/1/version.json"),
              lambda d: (d["features"].pop(), d.update(pipeline=d["pipeline"][:1])))
    # 4. bad pipeline dims: a scaler mean of 13 values for 14 columns
    edit_json(os.path.join(repo, "continuation/1/version.json"),
              lambda d: d["pipeline"][1]["mean"].pop())
    # 5. malformed JSON
    with open(os.path.join(repo, "volatile/manifest.json"), "a") as f:
        f.write("{ trailing garbage")
    # 6. unknown member in the ensemble
    edit_json(os.path.join(repo, "meta/1/version.json"),
              lambda d: d["members"].__setitem__(0, "nosuch"))
    # 7. a second ensemble whose members did not load (continuation) is refused as well
    shutil.copytree(os.path.join(repo, "meta"), os.path.join(repo, "meta2"))
    edit_json(os.path.join(repo, "meta2/manifest.json"), lambda d: d.__setitem__("name", "meta2"))
    edit_json(os.path.join(repo, "meta2/1/version.json"),
              lambda d: d["members"].__setitem__(0, "reversal"))
    # 8. a pinned version that does not exist
    shutil.copytree(os.path.join(repo, "reversal"), os.path.join(repo, "pinned"))
    edit_json(os.path.join(repo, "pinned/manifest.json"),
              lambda d: d.update(name="pinned", version_policy={"pinned": 7}))
    # 9. a format we do not support, a file that is not what its format says,
    #    and a folder without a manifest
    shutil.copytree(os.path.join(repo, "reversal"), os.path.join(repo, "onnxy"))
    edit_json(os.path.join(repo, "onnxy/manifest.json"), lambda d: d.update(name="onnxy"))
    edit_json(os.path.join(repo, "onnxy/2/version.json"), lambda d: d.update(format="onnx"))
    shutil.copytree(os.path.join(repo, "reversal"), os.path.join(repo, "pmml"))
    edit_json(os.path.join(repo, "pmml/manifest.json"), lambda d: d.update(name="pmml"))
    edit_json(os.path.join(repo, "pmml/2/version.json"), lambda d: d.update(format="pmml"))
    os.makedirs(os.path.join(repo, "empty"))
    # 10. precision values the manifest does not know (issue 12)
    for name, key, value in (("halfy", "precision", "half"),
                             ("tolly", "precision_tolerance", 0),
                             ("metared", "precision", "reduced")):
        src = "meta" if name == "metared" else "sideways"
        shutil.copytree(os.path.join(DEMO, src), os.path.join(repo, name))
        edit_json(os.path.join(repo, name, "manifest.json"),
                  lambda d, name=name, key=key, value=value: d.update({"name": name, key: value}))

    rc, lines, out = check_repo(repo)
    print(out)
    expect(rc == 1, "broken repository: exit status 1", out)
    want = {
        "bull": "model file 'model.json' is missing",
        "sideways": "features[5] 'rsi_bogus' is not an alphapulse-v1 feature",
        "bear": "width mismatch: 13 inputs",
        "continuation": "pipeline step 1 (standard_scaler) mean has 13 values, expected 14",
        "volatile": "volatile/manifest.json: malformed JSON",
        "meta": "member 'nosuch' is not a loaded model",
        "meta2": "member 'continuation' is not a loaded model",
        "pinned": "version 7: no folder pinned/7",
        "onnxy": "not a valid ONNX protobuf",
        "pmml": "unknown format 'pmml'",
        "empty": "empty/manifest.json: cannot read",
        "halfy": "halfy/manifest.json: unknown precision 'half' (auto, full, reduced)",
        "tolly": "tolly/manifest.json: \"precision_tolerance\" must be a finite number > 0",
        "metared": "metared/manifest.json: precision 'reduced': an ensemble's combiner runs at "
                   "full precision",
    }
    for name, reason in want.items():
        st, msg = lines.get(name, ("missing", ""))
        expect(st == "FAIL" and reason in msg, "%s refused: %s" % (name, reason), msg)
    st, msg = lines.get("reversal", ("missing", ""))
    expect(st == "OK", "reversal still loads next to the broken models", msg)
    shutil.rmtree(tmp)
    if failures:
        print("FAILED: %d check(s)" % len(failures))
        return 1
    print("all %d checks passed" % (len(want) + 4 + npc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
