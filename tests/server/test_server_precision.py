#!/usr/bin/python3
"""Precision per model over HTTP (issue 12): `mixed_precision_enabled` reaches
the registry, and every view shows what each model runs: /v1/models,
/v2/models/{m} parameters, /metrics (alphapulse_model_info's precision label,
alphapulse_model_bytes per precision, alphapulse_model_node_bytes), the same
values check-repo prints.

With mixed precision every model with an engine of its own -- the demo's
XGBoost forests and bear's ONNX forest -- runs "reduced" (no note, reduced
bytes built and fewer than the full ones, the same predictions: quantized
trees are exact). Only an ensemble's combiner stays "full", says why
(precision_note non-empty) and the server logs it; a manifest's "full"
stays full without a note."""
import json
import os
import re
import shutil
import subprocess

import srvlib
from srvlib import BIN, REPO, Server, check

for k in ("MIXED_PRECISION_ENABLED", "AP_MIXED_PRECISION_ENABLED"):
    os.environ.pop(k, None)
work = srvlib.workdir()
FIELDS = ("precision", "precision_requested", "precision_note", "node_bytes", "model_bytes_full",
          "model_bytes_reduced", "precision_deviation")


def check_repo_lines(repo, *args):
    """check-repo's OK lines as {model: {key: value}} (FAIL lines left out)."""
    r = subprocess.run([BIN, "check-repo", repo] + list(args), capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("OK "):
            name = line.split()[1]
            out[name] = {m.group(1): m.group(2).strip('"') for m in
                         re.finditer(r'(\w+)=(\[[^\]]*\]|"[^"]*"|\S+)', line)}
    return out


def metric_lines(srv):
    st, _, text = srv.get("/metrics")
    path = os.path.join(work, "metrics_%d.txt" % srv.port)
    open(path, "wb").write(text)
    pc = subprocess.run(["promtool", "check", "metrics"], stdin=open(path, "rb"),
                        capture_output=True, text=True)
    check(st == 200 and pc.returncode == 0,
          "promtool check metrics: %s" % (pc.stdout + pc.stderr).strip())
    return text.decode()


def metric(text, name, **labels):
    """The value of the sample name{labels} (labels in any order), or None."""
    for ln in text.split("\n"):
        m = re.match(r"^%s\{([^}]*)\} (\S+)$" % re.escape(name), ln)
        if not m:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if got == labels:
            return float(m.group(2))
    return None


def views(srv, label, cli):
    """/v1/models, /v2 parameters, metrics and check-repo agree; returns
    {name: /v1/models entry}."""
    st, js, _ = srv.get("/v1/models")
    models = {m["name"]: m for m in js["models"] if m.get("loaded")}
    check(st == 200 and all(all(f in m for f in FIELDS) for m in models.values()),
          "%s: /v1/models: every loaded model has %s" % (label, ", ".join(FIELDS)))
    text = metric_lines(srv)
    for name, m in sorted(models.items()):
        st, v2, _ = srv.get("/v2/models/" + name)
        p = v2.get("parameters", {}) if st == 200 else {}
        check(all(p.get(f) == m[f] for f in FIELDS),
              "%s: /v2/models/%s parameters carry the same precision fields" % (label, name))
        c = cli.get(name, {})
        check(c.get("precision") == m["precision"]
              and c.get("requested") == m["precision_requested"]
              and c.get("precision_note", "") == m["precision_note"]
              and int(c.get("node_bytes", -1)) == m["node_bytes"]
              and int(c.get("bytes_full", -1)) == m["model_bytes_full"]
              and int(c.get("bytes_reduced", -1)) == m["model_bytes_reduced"],
              "%s: %s: check-repo prints the same precision, note and bytes" % (label, name))
        check(metric(text, "alphapulse_model_info", model=name, version=str(m["version"]),
                     precision=m["precision"], precision_requested=m["precision_requested"]) == 1,
              "%s: alphapulse_model_info{model=%s,precision=%s} 1" % (label, name, m["precision"]))
        for prec in ("full", "reduced"):
            n = m["model_bytes_" + prec]
            got = metric(text, "alphapulse_model_bytes", model=name, precision=prec)
            check(got == (n if n else None),
                  "%s: alphapulse_model_bytes{model=%s,precision=%s} = %d" % (label, name, prec, n))
        nb = metric(text, "alphapulse_model_node_bytes", model=name, precision=m["precision"])
        check(nb == (m["node_bytes"] if m["node_bytes"] else None),
              "%s: alphapulse_model_node_bytes{model=%s} = %d" % (label, name, m["node_bytes"]))
    return models


# ---- default: auto means full ---------------------------------------------------------------------
srv = Server()
models = views(srv, "default", check_repo_lines(REPO))
check(len(models) == 7, "default: the 7 demo models are loaded")
for name, m in sorted(models.items()):
    tree = m["format"] == "xgboost"
    check(m["precision"] == "full" and m["precision_requested"] == "auto"
          and m["precision_note"] == "" and m["model_bytes_reduced"] == 0
          and m["precision_deviation"] == 0
          and (not tree or (m["model_bytes_full"] > 0 and m["node_bytes"] > 0))
          and (m["format"] != "onnx" or m["model_bytes_full"] > 0),
          "default: %s runs full (auto), %d bytes, %d per node" % (
              name, m["model_bytes_full"], m["node_bytes"]))
st, js, _ = srv.get("/v1/stats")
check(js["config"]["mixed_precision_enabled"] == "false", "default: mixed_precision_enabled false")
check("not used" not in srv.output(), "the server no longer says mixed precision is not used")
body = {"inputs": [{"name": "input", "shape": [3, 14], "datatype": "FP64",
                    "data": [[0.01 * (i + j) - 0.05 for j in range(14)] for i in range(3)]}]}
want = {n: srv.post("/v2/models/%s/infer" % n, body)[1] for n in ("reversal", "bear", "bull")}
check(srv.stop() == 0, "default server: SIGTERM, exit 0")

# ---- mixed_precision_enabled: a copy of the demo with two manifests that say their own ------------
repo = os.path.join(work, "models")
shutil.copytree(REPO, repo)
for name, prec in (("pinned_full", "full"), ("asks_reduced", "reduced")):
    shutil.copytree(os.path.join(REPO, "bull"), os.path.join(repo, name))
    path = os.path.join(repo, name, "manifest.json")
    doc = json.load(open(path))
    doc.update(name=name, precision=prec, precision_tolerance=0.01)
    json.dump(doc, open(path, "w"))
# and one that cannot load (its model file is gone): not counted below
shutil.copytree(os.path.join(REPO, "bull"), os.path.join(repo, "nofile"))
path = os.path.join(repo, "nofile", "manifest.json")
doc = json.load(open(path))
doc.update(name="nofile")
json.dump(doc, open(path, "w"))
os.remove(os.path.join(repo, "nofile", "1", "model.json"))
srv = Server("--repository", repo, "--mixed-precision-enabled", "true")
# a load on first use that fails answers 500 with the loader's message (it
# used to be {"error": ""}: the message was printed into itself)
st, js, _ = srv.get("/v2/models/nofile")
check(st == 500 and "model file 'model.json' is missing" in (js or {}).get("error", ""),
      "a model failing its load on first use: 500 with the loader's message (%s)" % js)
models = views(srv, "mixed", check_repo_lines(repo, "--mixed-precision"))
check(len(models) == 9, "mixed: 9 models loaded")
st, js, _ = srv.get("/v1/stats")
check(js["config"]["mixed_precision_enabled"] == "true", "mixed: mixed_precision_enabled true")
stayed = []
for name, m in sorted(models.items()):
    if name == "pinned_full":
        check(m["precision"] == "full" and m["precision_requested"] == "full"
              and m["precision_note"] == "",
              "mixed: pinned_full: the manifest's full wins over mixed precision, no note")
        continue
    want_req = "reduced" if name == "asks_reduced" else "auto"
    if m["kind"] == "ensemble":
        check(m["precision"] == "full" and "ensemble" in m["precision_note"]
              and m["model_bytes_reduced"] == 0 and m["precision_requested"] == want_req,
              "mixed: %s: an ensemble's combiner stays full and says so" % name)
        stayed.append(name)
        continue
    check(m["precision_requested"] == want_req and m["precision"] == "reduced"
          and m["precision_note"] == ""
          and 0 < m["model_bytes_reduced"] < m["model_bytes_full"],
          "mixed: %s (%s) runs reduced, %d bytes (full %d)%s" % (
              name, want_req, m["model_bytes_reduced"], m["model_bytes_full"],
              "" if m["precision_note"] == "" else ": " + m["precision_note"]))
    if m["format"] == "onnx":
        check(m["model_bytes_full"] > 0 and m["model_bytes_reduced"] > 0,
              "mixed: %s (ONNX): model bytes counted at both precisions" % name)
check(stayed == ["meta"], "mixed: only the ensemble (meta) stays full (%s)" % stayed)
log = srv.output()
for name in stayed:
    check(re.search(r"model %s version \d+: full precision \((mixed_precision_enabled|its manifest) "
                    r"asked reduced\): ." % re.escape(name), log) is not None,
          "mixed: the server logs why %s stayed full" % name)
for n, w in want.items():
    st, js, _ = srv.post("/v2/models/%s/infer" % n, body)
    check(st == 200 and js["outputs"] == w["outputs"],
          "mixed: %s (%s) infers exactly what full precision does" % (n, models[n]["precision"]))
check(srv.stop() == 0, "mixed server: SIGTERM, exit 0")

# ---- the environment's name, as for every setting --------------------------------------------------
srv = Server(env={"MIXED_PRECISION_ENABLED": "1"})
st, js, _ = srv.get("/v1/models")
for m in sorted(js["models"], key=lambda m: m["name"]):
    if m["kind"] == "ensemble":
        check(m["precision"] == "full" and "ensemble" in m["precision_note"],
              "MIXED_PRECISION_ENABLED=1: %s (ensemble) stays full and says so" % m["name"])
    else:
        check(m["precision"] == "reduced" and m["precision_note"] == ""
              and m["model_bytes_reduced"] > 0,
              "MIXED_PRECISION_ENABLED=1: %s runs reduced (%s)" % (m["name"],
                                                                 m["precision_note"]))
check(any(m["name"] == "bull" for m in js["models"]), "MIXED_PRECISION_ENABLED=1: bull listed")
check(srv.stop() == 0, "env server: SIGTERM, exit 0")
srvlib.finish()
