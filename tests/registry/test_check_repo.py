#!/usr/bin/python3
"""`alphapulse check-repo` accepts the demo repository and names the culprit in
broken copies of it, while the healthy models still load.

Copies examples/models to a temp dir, breaks one model per way, runs
check-repo, and checks: exit status 1, the FAIL line of each broken model
with the reason, OK lines for the untouched ones.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("AP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
DEMO = os.path.join(ROOT, "examples", "models")
failures = []


def check_repo(repo):
    r = subprocess.run([BIN, "check-repo", repo], capture_output=True, text=True)
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


def main():
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
    print("all %d checks passed" % (len(want) + 4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
