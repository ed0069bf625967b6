#!/usr/bin/python3
"""The device choice end to end (issue 17, docs/GPU.md), on whatever machine
runs it: the CLI's --device and the repository's manifest "device" with the
server's gpu_min_batch_rows, as /v1/models shows them.

Without a usable CUDA device (CI; a build with NVCC=false): --device gpu
exits 2 naming the reason ("built without CUDA" / "no CUDA device"), auto
runs on the CPU and says why, and every served model says "cpu (<why>)";
a manifest asking gpu is served on the CPU and the server logs it once.
With a device: gpu/auto give the CPU's outputs byte for byte and auto models
run on the GPU from the configured threshold. Bad manifests are refused
with messages naming the file and the field."""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import srvlib  # noqa: E402
from srvlib import BIN, REPO, ROOT, Server, check  # noqa: E402

work = srvlib.workdir()
M = os.path.join(ROOT, "tests/data/lightgbm/binary/model.txt")
X = os.path.join(ROOT, "tests/data/lightgbm/binary/input.csv")
REASON = r"(built without CUDA|no CUDA device)"


def predict(*args):
    return subprocess.run([BIN, "predict", "--model", M, "--input", X] + list(args),
                          capture_output=True, text=True)


cpu = predict()
check(cpu.returncode == 0 and cpu.stdout.count("\n") > 10, "predict on the CPU (default)")
check(predict("--device", "cpu").stdout == cpu.stdout, "--device cpu: the default's output")
gpu = predict("--device", "gpu")
have_gpu = gpu.returncode == 0
if have_gpu:
    check(gpu.stdout == cpu.stdout, "--device gpu: the CPU's outputs, byte for byte")
else:
    check(gpu.returncode == 2 and gpu.stdout == ""
          and re.match(r"alphapulse predict: --device gpu: %s" % REASON, gpu.stderr),
          "--device gpu without a device: exit 2 naming the reason (%s)" % gpu.stderr.strip())
auto = predict("--device", "auto")
check(auto.returncode == 0 and auto.stdout == cpu.stdout, "--device auto: the same outputs")
check(re.match(r"alphapulse predict: device (cpu|gpu) \(.+\)\n$", auto.stderr)
      and (have_gpu or re.search(REASON, auto.stderr)),
      "--device auto says where it ran and why (%s)" % auto.stderr.strip())
bad = predict("--device", "tpu")
check(bad.returncode == 2 and "--device 'tpu': expected cpu, gpu or auto" in bad.stderr,
      "--device tpu: exit 2, the accepted values")
raw = predict("--device", "auto", "--raw")
check(raw.returncode == 0 and raw.stdout == predict("--raw").stdout, "--raw on auto: the same")

# ---- the repository: a copy of the demo with manifests saying their device ------------------------
repo = os.path.join(work, "models")
shutil.copytree(REPO, repo)


def variant(name, src="bull", **kw):
    shutil.copytree(os.path.join(REPO, src), os.path.join(repo, name))
    path = os.path.join(repo, name, "manifest.json")
    doc = json.load(open(path))
    doc.update(name=name, **kw)
    json.dump(doc, open(path, "w"))


variant("asks_gpu", device="gpu")
variant("pinned_cpu", device="cpu")
srv = Server("--repository", repo, "--gpu-min-batch-rows", "500")
st, js, _ = srv.get("/v1/models")
models = {m["name"]: m for m in js["models"] if m.get("loaded")}
check(st == 200 and len(models) == 9, "9 models loaded (%d)" % len(models))
check(all("device" in m and "device_requested" in m and "gpu_min_batch_rows" in m
          for m in models.values()), "/v1/models: every model has device, device_requested, "
      "gpu_min_batch_rows")
for name, m in sorted(models.items()):
    d = m["device"]
    if name == "pinned_cpu":
        check(d == "cpu (requested)" and m["device_requested"] == "cpu"
              and m["gpu_min_batch_rows"] == 0, "pinned_cpu: cpu (requested)")
    elif m["kind"] == "ensemble":
        check(d.startswith("cpu (an ensemble") and m["gpu_min_batch_rows"] == 0,
              "%s: an ensemble's combiner on the CPU, saying so (%s)" % (name, d))
    elif m["format"] == "onnx":
        check(d == "cpu (ONNX models have no GPU path)", "%s (ONNX): cpu, saying why" % name)
    elif not have_gpu:
        check(re.match(r"cpu \(%s" % REASON, d) and m["gpu_min_batch_rows"] == 0,
              "%s (%s): %s" % (name, m["device_requested"], d))
    elif name == "asks_gpu":
        check(d == "gpu (requested: batches of 1 rows or more)" and m["gpu_min_batch_rows"] == 1,
              "asks_gpu: every batch on the GPU (%s)" % d)
    else:
        check(d == "gpu (configured: batches of 500 rows or more)"
              and m["gpu_min_batch_rows"] == 500, "%s: on the GPU from 500 rows (%s)" % (name, d))
st, js, _ = srv.get("/v1/stats")
check(str(js["config"].get("gpu_min_batch_rows")) == "500", "/v1/stats: gpu_min_batch_rows 500")
st, v2, _ = srv.get("/v2/models/asks_gpu")
check(st == 200 and v2["parameters"]["device"] == models["asks_gpu"]["device"],
      "/v2/models/asks_gpu parameters carry the device")
body = {"inputs": [{"name": "input", "shape": [600, 14], "datatype": "FP64",
                    "data": [[0.01 * ((i * 7 + j) % 50) - 0.2 for j in range(14)]
                             for i in range(600)]}]}
a = srv.post("/v2/models/asks_gpu/infer", body)
b = srv.post("/v2/models/pinned_cpu/infer", body)
check(a[0] == 200 and b[0] == 200 and a[1]["outputs"][0]["data"] == b[1]["outputs"][0]["data"],
      "600 rows: asks_gpu and pinned_cpu infer the same values")
log = srv.output()
check(len(re.findall(r"gpu: (none \(%s.*\): every model runs on the CPU|\d+ CUDA device)" % REASON
                     if not have_gpu else r"gpu: \d+ CUDA device\(s\)", log)) == 1,
      "the server says once at start whether there is a GPU")
said = re.findall(r"model asks_gpu version \d+: device (.*) \(its manifest asked gpu\)", log)
check(have_gpu and not said or not have_gpu and len(said) == 1,
      "the server says once that asks_gpu runs elsewhere than asked (%s)" % said)
check(srv.stop() == 0, "server: SIGTERM, exit 0")
r = subprocess.run([BIN, "check-repo", repo], capture_output=True, text=True)
cr = {ln.split()[1]: re.search(r' device="([^"]*)"', ln) for ln in r.stdout.splitlines()
      if ln.startswith("OK ")}
# (with a GPU, check-repo calibrates where the server was given 500 rows)
check(set(cr) == set(models) and all(cr[n] and (have_gpu or cr[n].group(1) == models[n]["device"])
                                     for n in models),
      "check-repo prints each model's device as /v1/models does")

# ---- refused manifests -----------------------------------------------------------------------------
bad = os.path.join(work, "bad")
os.makedirs(bad)
for name, src, kw in (("tpu", "bull", {"device": "tpu"}), ("num", "bull", {"device": 1}),
                      ("ens_gpu", "meta", {"device": "gpu"})):
    shutil.copytree(os.path.join(REPO, src), os.path.join(bad, name))
    path = os.path.join(bad, name, "manifest.json")
    doc = json.load(open(path))
    doc.update(name=name, **kw)
    json.dump(doc, open(path, "w"))
r = subprocess.run([BIN, "check-repo", bad], capture_output=True, text=True)
out = r.stdout + r.stderr
check(r.returncode != 0 and "tpu/manifest.json: unknown device 'tpu' (auto, cpu, gpu)" in out,
      "manifest device 'tpu': refused naming the file and the values")
check("num/manifest.json" in out and "device" in out.split("num/manifest.json", 1)[1][:120],
      "manifest device 1 (not a string): refused naming the field")
check("ens_gpu/manifest.json: device 'gpu': an ensemble's combiner runs on the CPU" in out,
      "an ensemble asking gpu: refused, saying why")
srvlib.finish()
