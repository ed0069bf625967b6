#!/usr/bin/python3
"""Integration test of `alphapulse serve` over real HTTP on loopback: the /v1
API (candles, predictions sync + async, results, models, stats), KServe v2
(health, metadata, readiness, infer FP32/FP64 flat/nested, repository
load/unload), /metrics checked by promtool, concurrent clients, hostile input.

Expected numbers come from the CLI, not from the server: `alphapulse features`
for the feature vectors of the posted bars and `alphapulse check-repo --model
M --input X.csv [--raw]` for predictions (same registry code, no HTTP)."""
import csv
import json
import math
import os
import random
import socket
import subprocess
import threading
import time

import srvlib
from srvlib import BIN, DATA, REPO, Server, check

work = srvlib.workdir()
srv = Server("--replay", "GOOG/1d=%s/goog_daily.csv" % DATA, "--replay-speed", "0",
             "--max-body-bytes", "1048576")


def cli(*args):
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (args, r.stderr))
    return r.stdout


def check_repo(model, rows, header, raw):
    """Predictions of check-repo for rows (list of lists): [(pred, conf, outs)]."""
    path = os.path.join(work, "x_%s_%d.csv" % (model, random.randrange(1 << 30)))
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join("nan" if v is None else repr(v) for v in row) + "\n")
    out = cli("check-repo", REPO, "--model", model, "--input", path, *(["--raw"] if raw else []))
    lines = out.strip().split("\n")[1:]
    res = []
    for ln in lines:
        v = [float(x) for x in ln.split(",")]
        res.append((v[0], v[1], v[2:]))
    return res


# ---- health, server metadata -------------------------------------------------------
st, js, _ = srv.get("/v2/health/live")
check(st == 200 and js == {"live": True}, "GET /v2/health/live -> 200 live")
st, js, _ = srv.get("/v2/health/ready")
check(st == 200 and js == {"ready": True}, "GET /v2/health/ready -> 200 ready")
st, js, _ = srv.get("/v2")
check(st == 200 and js["name"] == "alphapulse" and "model_repository" in js["extensions"],
      "GET /v2 server metadata")

# ---- /v1/models -----------------------------------------------------------------------
st, js, _ = srv.get("/v1/models")
models = {m["name"]: m for m in js["models"]}
check(st == 200 and len(models) == 7 and all(m["loaded"] for m in models.values()),
      "GET /v1/models lists the 7 demo models, all loaded")
check(models["reversal"]["version"] == 2 and models["reversal"]["kind"] == "pattern"
      and models["reversal"]["target"] == "reversal" and len(models["reversal"]["features"]) == 14,
      "reversal: version 2, pattern/reversal, 14 features")
check(models["meta"]["kind"] == "ensemble" and len(models["meta"]["members"]) == 6,
      "meta: ensemble of 6 members")

# ---- POST /v1/candles ---------------------------------------------------------------------
bars = list(csv.reader(open(os.path.join(DATA, "goog_daily.csv"))))[1:]


def epoch(day):
    return int(time.mktime(time.strptime(day, "%Y-%m-%d"))) - time.timezone


rows = [[epoch(b[0])] + [float(x) for x in b[1:]] for b in bars[:300]]
st, js, _ = srv.post("/v1/candles", {"symbol": "TEST", "timeframe": "1d", "candles": rows[:150]})
check(st == 200 and js["stored"] == 150 and js["total"] == 150, "candles: 150 bars (epoch s) stored")
ms = [[r[0] * 1000] + r[1:] for r in rows[150:]]
st, js, _ = srv.post("/v1/candles", {"symbol": "TEST", "timeframe": "1d", "candles": ms})
check(st == 200 and js["stored"] == 150 and js["total"] == 300, "candles: 150 more (epoch ms) stored")
# a batch whose bar 2 is invalid (high < low): bars 0 and 1 stay stored
t = rows[-1][0]
extra = [[t + 86400, 100, 101, 99, 100.5, 1000], ["2005-10-27T00:00:00Z", 100, 102, 99, 101, 900],
         [t + 3 * 86400, 100, 98, 99, 100, 10], [t + 4 * 86400, 100, 101, 99, 100, 10]]
st, js, _ = srv.post("/v1/candles", {"symbol": "TEST", "timeframe": "1d", "candles": extra})
check(st == 400 and js["stored"] == 2 and js["rejected"]["index"] == 2 and "high" in
      js["rejected"]["reason"] and js["total"] == 302,
      "candles: bar 2 rejected with index + reason, bars 0-1 kept (got %s)" % js)
st, js, _ = srv.post("/v1/candles", {"symbol": "TEST", "timeframe": "1d",
                                    "candles": [[t, 1, 2, 0.5, 1, 1]]})
check(st == 400 and js["stored"] == 0 and "older" in js["rejected"]["reason"],
      "candles: an older bar is rejected")
st, js, _ = srv.post("/v1/candles", {"symbol": "TEST", "timeframe": "1d", "candles": [[1, 2, 3]]})
check(st == 400 and js["rejected"]["index"] == 0, "candles: a 3-element candle is rejected")
st, js, _ = srv.post("/v1/candles", {"symbol": "TEST", "timeframe": "7x", "candles": []})
check(st == 400 and "error" in js, "candles: bad timeframe -> 400")
st, js, _ = srv.post("/v1/candles", {"symbol": "TEST", "candles": []})
check(st == 400 and "timeframe" in js["error"], "candles: missing timeframe -> 400")

# the features of the bars stored, computed by the CLI
stored = rows + [extra[0], [epoch("2005-10-27")] + extra[1][1:]]
bars_csv = os.path.join(work, "test_bars.csv")
with open(bars_csv, "w") as f:
    f.write("timestamp,open,high,low,close,volume\n")
    for r in stored:
        f.write(",".join(repr(v) for v in r) + "\n")
feats_csv = os.path.join(work, "test_feats.csv")
cli("features", "--input", bars_csv, "--output", feats_csv)
frows = list(csv.reader(open(feats_csv)))
last_feats = os.path.join(work, "last_feats.csv")
with open(last_feats, "w") as f:
    f.write(",".join(frows[0]) + "\n" + ",".join(frows[-1]) + "\n")


def expected(model):
    out = cli("check-repo", REPO, "--model", model, "--input", last_feats)
    v = [float(x) for x in out.strip().split("\n")[1].split(",")]
    return v[0], v[1], v[2:]


# ---- predictions, sync ----------------------------------------------------------------------
cases = [("pattern", "reversal", "reversal"), ("pattern", "continuation", "continuation"),
         ("regime", "bull", "bull"), ("regime", "volatile", "volatile"), ("ensemble", None, "meta")]
sync_pred = {}
for kind, target, model in cases:
    body = {"symbol": "TEST", "timeframe": "1d"}
    if target:
        body["target"] = target
    st, js, _ = srv.post("/v1/predict/" + kind, body)
    p, c, outs = expected(model)
    ok = st == 200 and js["model"] == model and js["prediction"] == p and js["confidence"] == c
    check(ok and js["bar_time"] == "2005-10-27T00:00:00Z" and int(js["request_id"]) > 0
          and js["latency_us"] >= 0 and js["symbol"] == "TEST" and js["timeframe"] == "1d",
          "predict/%s %s: prediction %r confidence %r == check-repo (%r, %r)" %
          (kind, target, js.get("prediction") if js else st, js.get("confidence") if js else None, p, c))
    sync_pred[model] = js
check(list(sync_pred["meta"]["members"].values()) ==
      [expected(m)[0] for m in models["meta"]["members"]],
      "predict/ensemble: member predictions == check-repo of each member")
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "GOOG", "timeframe": "1d",
                                            "target": "reversal", "model": "reversal"})
check(st == 200 and js["version"] == 2, "predict on the replayed series GOOG/1d with an explicit model")

# ---- predictions, async + results --------------------------------------------------------------
st, js, _ = srv.post("/v1/predict/regime", {"symbol": "TEST", "timeframe": "1d", "target": "bull",
                                           "async": True})
check(st == 202 and js["status"] == "pending" and js["request_id"].isdigit(), "async predict -> 202 + id")
rid = js["request_id"]
for _ in range(100):
    st, res, _ = srv.get("/v1/results/" + rid)
    if res.get("status") != "pending":
        break
    time.sleep(0.01)
check(st == 200 and res["status"] == "done" and res["prediction"] == sync_pred["bull"]["prediction"]
      and res["request_id"] == rid, "GET /v1/results/{id}: done, same prediction as sync")
st, res2, _ = srv.get("/v1/results/" + rid)
check(st == 200 and res2["prediction"] == res["prediction"], "GET is repeatable until deleted")
st, js, _ = srv.request("DELETE", "/v1/results/" + rid)
check(st == 200 and js["status"] == "deleted", "DELETE /v1/results/{id} of a done result")
st, js, _ = srv.get("/v1/results/" + rid)
check(st == 404 and "error" in js, "GET after DELETE -> 404")
st, js, _ = srv.get("/v1/results/123")
check(st == 404, "unknown result id -> 404")
st, js, _ = srv.get("/v1/results/abc")
check(st == 404, "malformed result id -> 404")
for kind, target in [("ensemble", None), ("pattern", "reversal")]:
    body = {"symbol": "TEST", "timeframe": "1d", "async": True}
    if target:
        body["target"] = target
    st, js, _ = srv.post("/v1/predict/" + kind, body)
    check(st == 202, "async predict/%s -> 202" % kind)

# ---- predict errors ---------------------------------------------------------------------------
bad = [
    ({"symbol": "NOPE", "timeframe": "1d", "target": "reversal"}, 404, "unknown series"),
    ({"symbol": "TEST", "timeframe": "1d", "target": "nothing"}, 404, "no pattern model"),
    ({"symbol": "TEST", "timeframe": "1d"}, 400, "target"),
    ({"symbol": 5, "timeframe": "1d", "target": "reversal"}, 400, "symbol"),
    ({"symbol": "TEST", "timeframe": "1d", "target": "reversal", "colour": 1}, 400, "unknown field"),
    ({"symbol": "TEST", "timeframe": "1d", "target": "reversal", "async": "yes"}, 400, "async"),
    ({"symbol": "TEST", "timeframe": "1d", "target": "reversal", "model": "bull"}, 404, "another kind"),
    ({"symbol": "TEST", "timeframe": "1d", "target": "reversal", "model": "zzz"}, 404, "unknown model"),
    ({"symbol": "TEST", "timeframe": "0m", "target": "reversal"}, 400, ""),
]
for body, code, word in bad:
    st, js, _ = srv.post("/v1/predict/pattern", body)
    check(st == code and js and word in js["error"], "predict %s -> %d (%s)" % (body, code, js))
for raw_body, word in [(b'{"symbol": "TEST",', "malformed JSON"), (b"[1,2]", "object"),
                       (b"", "malformed JSON"), (b'{"a":1,"a":2}', "malformed JSON")]:
    st, js, _ = srv.post("/v1/predict/pattern", raw_body)
    check(st == 400 and word in js["error"], "predict body %r -> 400 %s" % (raw_body, word))

# ---- KServe v2: metadata, readiness -----------------------------------------------------------
for name, m in models.items():
    st, js, _ = srv.get("/v2/models/" + name)
    n = len(m["members"] if m["kind"] == "ensemble" else m["features"])
    check(st == 200 and js["inputs"][0]["shape"] == [-1, n] and js["versions"] == [str(m["version"])]
          and [o["name"] for o in js["outputs"]] == ["prediction", "confidence", "outputs"],
          "GET /v2/models/%s: input shape [-1, %d], outputs" % (name, n))
    st, js, _ = srv.get("/v2/models/%s/ready" % name)
    check(st == 200 and js["ready"] is True, "GET /v2/models/%s/ready" % name)
st, js, _ = srv.get("/v2/models/reversal/versions/2/ready")
check(st == 200, "versions/2/ready of reversal -> 200")
st, js, _ = srv.get("/v2/models/reversal/versions/1")
check(st == 404 and "not served" in js["error"], "versions/1 of reversal (not served) -> 404")
st, js, _ = srv.get("/v2/models/nope")
check(st == 404 and "unknown model" in js["error"], "unknown model metadata -> 404")

# ---- KServe v2: infer parity -------------------------------------------------------------------
def same(got, want):
    """Exact equality; the server writes a NaN as null (JSON has no NaN)."""
    return len(got) == len(want) and all(
        (g is None and math.isnan(w)) or g == w for g, w in zip(got, want))


rng = random.Random(7)
for name, m in models.items():
    header = m["members"] if m["kind"] == "ensemble" else m["features"]
    f = len(header)
    rows_x = [[rng.uniform(0, 1) if m["kind"] == "ensemble" else rng.gauss(0, 2) for _ in range(f)]
              for _ in range(5)]
    rows_x[1][0] = None  # missing value
    exp = check_repo(name, rows_x, header, raw=True)
    flat = [v for r in rows_x for v in r]
    st, js, _ = srv.post("/v2/models/%s/infer" % name, {
        "id": "req-" + name,
        "inputs": [{"name": "input", "shape": [5, f], "datatype": "FP64", "data": flat}]})
    outs = {o["name"]: o for o in js["outputs"]} if st == 200 else {}
    ok = (st == 200 and js["model_name"] == name and js["id"] == "req-" + name
          and js["model_version"] == str(m["version"])
          and same(outs["prediction"]["data"], [e[0] for e in exp])
          and same(outs["confidence"]["data"], [e[1] for e in exp])
          and same(outs["outputs"]["data"], [v for e in exp for v in e[2]])
          and outs["outputs"]["shape"] == [5, len(exp[0][2])])
    check(ok, "infer %s FP64 flat [5, %d] == check-repo --raw" % (name, f))
    # FP32 nested: the server rounds inputs to float32 first
    rows32 = [[None if v is None else float(__import__("numpy").float32(v)) for v in r] for r in rows_x]
    exp32 = check_repo(name, rows32, header, raw=True)
    st, js, _ = srv.post("/v2/models/%s/infer" % name, {
        "inputs": [{"name": "input", "shape": [5, f], "datatype": "FP32", "data": rows_x}],
        "outputs": [{"name": "prediction"}]})
    check(st == 200 and len(js["outputs"]) == 1 and "id" not in js
          and same(js["outputs"][0]["data"], [e[0] for e in exp32]),
          "infer %s FP32 nested == check-repo on float32-rounded inputs; outputs filter" % name)

# infer errors
f = len(models["reversal"]["features"])
one = [0.5] * f
infer_bad = [
    ({"inputs": [{"name": "input", "shape": [1, f + 1], "datatype": "FP64", "data": one + [1]}]}, "shape"),
    ({"inputs": [{"name": "input", "shape": [1, f], "datatype": "BYTES", "data": one}]}, "datatype"),
    ({"inputs": [{"name": "input", "shape": [1, f], "datatype": "INT32", "data": one}]}, "not a INT32 value"),
    ({"inputs": [{"name": "INPUT0", "shape": [1, f], "datatype": "FP64", "data": one}]}, "unknown input 'INPUT0'"),
    ({"inputs": [{"name": "input", "shape": [2, f], "datatype": "FP64", "data": one}]}, "values"),
    ({"inputs": [{"name": "input", "shape": [1, f], "datatype": "FP64", "data": ["x"] * f}]}, "not a number"),
    ({"inputs": [{"name": "input", "shape": [1, f], "datatype": "FP64", "data": [one[:-1]]}]}, "row 0"),
    ({"inputs": []}, "inputs"),
    ({"inputs": [{"name": "input", "shape": [1, f], "datatype": "FP64", "data": one}],
      "outputs": [{"name": "logits"}]}, "unknown output"),
    ({"inputs": [{"name": "input", "shape": [0, f], "datatype": "FP64", "data": []}]}, "shape"),
    ({"inputs": [{"name": "input", "shape": [1, f], "datatype": "FP64", "data": one}], "x": 1}, "unknown field"),
]
for body, word in infer_bad:
    st, js, _ = srv.post("/v2/models/reversal/infer", body)
    check(st == 400 and word in js["error"], "infer bad (%s) -> 400: %s" % (word, js and js["error"]))
st, js, _ = srv.post("/v2/models/nope/infer", {"inputs": []})
check(st == 404, "infer on an unknown model -> 404")
st, js, _ = srv.get("/v2/models/reversal/infer")
check(st == 405, "GET on infer -> 405")

# ---- repository: load / unload -------------------------------------------------------------------
body1 = {"inputs": [{"name": "input", "shape": [1, f], "datatype": "FP64", "data": one}]}
_, v2res, _ = srv.post("/v2/models/reversal/infer", body1)
st, js, _ = srv.post("/v2/repository/models/reversal/load", {"parameters": {"version": 1}})
check(st == 200 and js["version"] == "1", "load reversal version 1 -> 200")
st, js, _ = srv.post("/v2/models/reversal/infer", body1)
check(st == 200 and js["model_version"] == "1" and js["outputs"][0]["data"] != v2res["outputs"][0]["data"],
      "infer now answers from version 1 (10 trees: another prediction)")
st, js, _ = srv.post("/v2/repository/models/reversal/load")
check(st == 200 and js["version"] == "2", "load reversal (policy: latest) -> version 2")
st, js, _ = srv.post("/v2/models/reversal/infer", body1)
check(js["outputs"][0]["data"] == v2res["outputs"][0]["data"], "version 2 predictions are back")
st, js, _ = srv.post("/v2/repository/models/bull/unload")
check(st == 400 and "meta" in js["error"], "unload bull, a member of meta -> 400")
st, js, _ = srv.post("/v2/repository/models/meta/unload")
check(st == 200 and js["state"] == "UNAVAILABLE", "unload meta -> 200")
st, js, _ = srv.get("/v2/models/meta/ready")
check(st == 404, "meta not ready after unload -> 404")
st, js, _ = srv.post("/v1/predict/ensemble", {"symbol": "TEST", "timeframe": "1d"})
check(st == 404 and "no ensemble model" in js["error"], "predict/ensemble with meta unloaded -> 404")
st, js, _ = srv.post("/v2/repository/index")
check(st == 200 and {m["name"]: m["state"] for m in js}["meta"] == "UNAVAILABLE", "repository index")
st, js, _ = srv.post("/v2/repository/models/meta/load")
check(st == 200 and js["state"] == "READY", "load meta again -> 200")
st, js, _ = srv.post("/v1/predict/ensemble", {"symbol": "TEST", "timeframe": "1d"})
check(st == 200 and js["prediction"] == sync_pred["meta"]["prediction"], "ensemble predicts again, same value")
for bad_name in ["nope", "..", "a%2Fb"]:
    st, js, _ = srv.post("/v2/repository/models/%s/load" % bad_name)
    check(st == 404, "load of model '%s' -> 404 (%s)" % (bad_name, js))

# ---- concurrent clients ---------------------------------------------------------------------------
errors = []


def client(k):
    try:
        for i in range(40):
            if (i + k) % 2:
                st, js, _ = srv.post("/v2/models/reversal/infer", body1)
                if st != 200 or js["outputs"][0]["data"] != v2res["outputs"][0]["data"]:
                    errors.append((st, js))
            else:
                st, js, _ = srv.post("/v1/predict/regime", {"symbol": "TEST", "timeframe": "1d",
                                                           "target": "bull"})
                if st != 200 or js["prediction"] != sync_pred["bull"]["prediction"]:
                    errors.append((st, js))
    except Exception as e:  # noqa: BLE001 - any failure counts
        errors.append(repr(e))


ths = [threading.Thread(target=client, args=(k,)) for k in range(8)]
for t in ths:
    t.start()
for t in ths:
    t.join()
check(not errors, "8 concurrent clients x 40 requests: all 200 with the right answers (%s)" % errors[:2])

# ---- hostile input ----------------------------------------------------------------------------------
# announced too large: answered at the headers, before any body is sent
out = srvlib.raw_socket(srv.port, b"POST /v1/candles HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 1126400\r\n\r\n")
check(out.startswith(b"HTTP/1.1 413") and b"max_body_bytes" in out,
      "Content-Length 1.1 MB -> 413 at once: %r" % out[:60])


def chunks():
    for _ in range(40):
        yield b" " * 32768


c = __import__("http.client").client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
c.request("POST", "/v1/candles", body=chunks(), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
r = c.getresponse()
check(r.status == 413, "1.3 MB chunked body (no Content-Length) -> 413")
c.close()
for junk in [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
             b"GET / HTTP/9.9\r\n\r\n", b"\x00\xff\x16\x03\x01" * 50,
             b"POST /v1/candles HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
             b"POST /v1/candles HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]:
    out = srvlib.raw_socket(srv.port, junk, timeout=2)
    check(out[:10] in (b"HTTP/1.1 4", b"HTTP/1.1 5") or out == b"",
          "malformed HTTP %r -> error status or close: %r" % (junk[:24], out[:40]))
st, _, _ = srv.get("/v2/health/live")
check(st == 200, "server alive after malformed HTTP")
out = srvlib.raw_socket(srv.port, b"GET /v2 HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
check(out.startswith(b"HTTP/1.1 4") or out == b"", "70 kB header -> 4xx or close: %r" % out[:40])
st, js, _ = srv.get("/v1/candles")
check(st == 405 and "not allowed" in js["error"], "GET /v1/candles -> 405")
st, js, _ = srv.get("/nothing/here")
check(st == 404 and "no such endpoint" in js["error"], "unknown path -> 404 JSON")
# a slow client (half a request line) does not hold up the others
slow = socket.create_connection(("127.0.0.1", srv.port))
slow.sendall(b"POST /v1/candles HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"sym")
t0 = time.time()
for _ in range(20):
    st, _, _ = srv.get("/v2/health/live")
check(st == 200 and time.time() - t0 < 2, "20 requests answered while a slow client holds a request open")
slow.close()

# ---- stats, metrics ----------------------------------------------------------------------------------
st, js, _ = srv.get("/v1/stats")
rp = js["replay"][0]
check(st == 200 and rp["symbol"] == "GOOG" and rp["bars_fed"] == 1047 and rp["done"] is True
      and js["models_loaded"] == 7 and js["predictions"] > 0 and js["requests"] > 100
      and js["config"]["max_body_bytes"] == "1048576",
      "GET /v1/stats: replay fed 1047 GOOG bars, totals, effective config")
st, _, text = srv.get("/metrics")
mpath = os.path.join(work, "metrics.txt")
open(mpath, "wb").write(text)
pc = subprocess.run(["promtool", "check", "metrics"], stdin=open(mpath, "rb"),
                    capture_output=True, text=True)
check(st == 200 and pc.returncode == 0, "promtool check metrics: %s" % (pc.stdout + pc.stderr).strip())
t = text.decode()
for needle in ['alphapulse_http_requests_total{endpoint="v2_infer",model="reversal",code="200"}',
               'alphapulse_http_requests_total{endpoint="v2_infer",model="reversal",code="400"}',
               'alphapulse_http_request_duration_seconds_bucket{endpoint="v2_infer",le="+Inf"}',
               'alphapulse_batch_queue_time_seconds_bucket{model="reversal",batcher="raw",le="+Inf"}',
               'alphapulse_batch_size_rows_count{model="reversal",batcher="raw"}',
               'alphapulse_batch_queue_depth{model="bull",batcher="features"} 0',
               'alphapulse_model_predictions_total{model="meta"}',
               'alphapulse_models_loaded 7', 'alphapulse_replay_bars_total{symbol="GOOG",timeframe="1d"} 1047']:
    check(needle in t, "metrics has %s" % needle)
n200 = [ln for ln in t.split("\n") if ln.startswith(
    'alphapulse_http_requests_total{endpoint="v2_infer",model="reversal",code="200"}')]
check(n200 and int(n200[0].split()[-1]) >= 160 + 5, "v2_infer/reversal/200 count covers the requests made")

check(srv.stop() == 0, "SIGTERM: exit status 0")
srvlib.finish()
