#!/usr/bin/python3
"""Issue #11, end to end against the real server on loopback: every item a
hostile user found, each checked so that it fails on the server before the
fix.

  1  GET / (HEAD /, /?x=1, /%00...) keeps the server alive
  2  (XGBoost 3.x DART: tests/forest/test_xgboost_load.c, test_xgboost_parity.py)
  3  failed loads take no registry capacity; failed models are UNAVAILABLE
     in /v2/repository/index with their reason
  4  bar times bounded (max_future_s, 1970), spacing fits the timeframe,
     DELETE /v1/series/{symbol}/{tf}, a 1d series does not block a 1m feed
  5  slow clients are cut after request_timeout; health answers meanwhile
  6  overload gets 504/429 in time, never a late 200 (default caller_runs)
  7  async request ids are unguessable; max_async_results bounds the store
  8  duplicate Content-Length / CL+TE refused; FP32 overflow refused; FIFO,
     device and escaping symlinks refused as model files; warm-up fields and
     manifest min_bars; ONNX Runtime failures are errors, not null answers
  9  MODEL_CACHE_SIZE is an LRU of resident models with hit/miss/eviction counts
  10 requests that arrive together batch with the defaults

Expected values: predictions are compared with `alphapulse check-repo` (same
registry code, no HTTP) where a value matters; the rest are rules written
down next to each check."""
import json
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import threading
import time

import srvlib
from srvlib import BIN, DATA, REPO, Server, check, raw_socket

work = srvlib.workdir()
ORT_LIB = os.path.join(srvlib.ROOT, "build", "ort", "libonnxruntime.so.1")
NOW = int(time.time())


def stats(srv):
    st, js, _ = srv.get("/v1/stats")
    assert st == 200, st
    return js


def metric(srv, name):
    st, _, data = srv.get("/metrics")
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), data.decode(), re.M)
    return float(m.group(1)) if m else None


def alive(srv):
    try:
        st, js, _ = srv.get("/v2/health/live", timeout=3)
        return st == 200
    except OSError:
        return False


def minute_bars(t0, n, px=100.0, step=60):
    out = []
    for i in range(n):
        p = px + 0.05 * i + ((i * 7919) % 13 - 6) * 0.03
        out.append([t0 + i * step, p, p * 1.004, p * 0.996, p * 1.001, 1000 + (i * 31) % 200])
    return out


# ---- a repository with hostile and special models -----------------------------------
repo = os.path.join(work, "repo")
shutil.copytree(REPO, repo, symlinks=True)


def clone_reversal(name, target, min_bars=None):
    """reversal's version 2 under a new name (its prediction is reversal's)."""
    d = os.path.join(repo, name)
    os.makedirs(d)
    shutil.copytree(os.path.join(REPO, "reversal", "2"), os.path.join(d, "1"))
    man = json.load(open(os.path.join(REPO, "reversal", "manifest.json")))
    man.update(name=name, target=target, description="test copy of reversal v2")
    if min_bars is not None:
        man["min_bars"] = min_bars
    json.dump(man, open(os.path.join(d, "manifest.json"), "w"))
    return os.path.join(d, "1", "model.json")


model_file = clone_reversal("broken", "broken")
open(model_file, "w").write('{"learner": {"gradient_booster": ')  # truncated JSON
fifo = clone_reversal("fifo", "fifo")
os.remove(fifo)
os.mkfifo(fifo)  # a FIFO with no writer: opening it for reading would hang
zero = clone_reversal("devzero", "devzero")
os.remove(zero)
os.symlink("/dev/zero", zero)  # a symlink to a device: reads for ever
outside = os.path.join(work, "outside")
os.makedirs(outside)
shutil.copy(os.path.join(REPO, "reversal", "2", "model.json"), outside)
esc = clone_reversal("escape", "escape")
os.remove(esc)
os.symlink(os.path.join(outside, "model.json"), esc)  # a valid model, outside the repository
clone_reversal("warmup", "warmup", min_bars=60)

have_ort = os.path.exists(ORT_LIB)
if have_ort:
    # Cast(x -> int64) then Gather(data = [10, 20, 30]): ONNX Runtime runs it
    # for x in {0, 1, 2} and refuses x = 7 at run time (index out of bounds).
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Cast", ["X"], ["i"], to=TensorProto.INT64, name="to_index"),
         helper.make_node("Gather", ["data", "i"], ["Y"], axis=0, name="lookup_node")],
        "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("data", TensorProto.FLOAT, [3], [10, 20, 30])])
    mdl = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    os.makedirs(os.path.join(repo, "lookup", "1"))
    onnx.save(mdl, os.path.join(repo, "lookup", "1", "model.onnx"))
    json.dump({"name": "lookup", "kind": "raw", "target": "lookup"},
              open(os.path.join(repo, "lookup", "manifest.json"), "w"))
    json.dump({"format": "onnx", "file": "model.onnx", "input_width": 1,
               "pipeline": [{"op": "fillna", "value": 0}]},
              open(os.path.join(repo, "lookup", "1", "version.json"), "w"))

t_start = time.time()
srv = Server("--repository", repo, "--replay", "GOOG/1d=%s/goog_daily.csv" % DATA,
             "--replay-speed", "0", "--max-async-results", "5",
             env={"ONNXRUNTIME_LIB": ORT_LIB} if have_ort else None)
check(time.time() - t_start < 10, "start-up does not hang on a FIFO model file (%.1f s)"
      % (time.time() - t_start))

# ---- 1. the root page and odd URLs ----------------------------------------------------
for method, path in (("GET", "/"), ("HEAD", "/"), ("GET", "/?x=1"), ("GET", "/%00abc"),
                     ("GET", "/%"), ("GET", "//"), ("OPTIONS", "/")):
    try:
        st, _, data = srv.request(method, path)
    except OSError as e:
        st, data = str(e), b""
    check(isinstance(st, int) and alive(srv), "%s %s -> %s, server alive" % (method, path, st))
st, _, data = srv.get("/")
check(st == 200 and b"/v2/health" in data, "GET / -> 200 with the endpoint list")

# ---- 3. failed loads take no capacity; UNAVAILABLE with the reason ------------------
st, js, _ = srv.post("/v2/repository/index", {})
idx = {m["name"]: m for m in js}
for name, word in (("broken", "model.json"), ("fifo", "regular file"),
                   ("devzero", "/dev/zero, outside the repository"),
                   ("escape", "outside the repository")):
    m = idx.get(name, {})
    check(m.get("state") == "UNAVAILABLE" and word in m.get("reason", ""),
          "index: %s UNAVAILABLE, reason names '%s' (%s)" % (name, word, m.get("reason")))
check(idx.get("reversal", {}).get("state") == "READY", "index: reversal READY")
st, js, _ = srv.post("/v2/repository/index", {"ready": True})
check(st == 200 and all(m["state"] == "READY" for m in js) and "broken" not in
      [m["name"] for m in js], "index {ready: true}: only READY models")
codes = set()
for i in range(250):
    st, js, _ = srv.post("/v2/repository/models/ghost_%d/load" % i, "")
    codes.add(st)
check(codes == {404}, "250 loads of models not in the repository -> 404 (%s)" % codes)
for i in range(30):  # failing loads of a model that is there
    st, js, _ = srv.post("/v2/repository/models/broken/load", "")
check(st in (400, 422, 500) and "broken" in js["error"], "load of a corrupt model -> %d: %s"
      % (st, js and js["error"]))
# a model added after start loads: capacity is intact
late = clone_reversal("late", "late")
st, js, _ = srv.post("/v2/repository/models/late/load", "")
check(st == 200, "a model added after 280 failed loads still loads -> %d %s" % (st, js))
st, js, _ = srv.post("/v2/repository/index", {})
names = [m["name"] for m in js]
check(not any(n.startswith("ghost_") for n in names) and "late" in names,
      "index: no ghost_* entries, 'late' listed")
st, js, _ = srv.post("/v2/repository/models/late/unload", "")
st3, js3, _ = srv.post("/v1/predict/pattern", {"symbol": "GOOG", "timeframe": "1d",
                                              "model": "late", "target": "late"})
check(st3 == 404 and "not loaded" in js3["error"],
      "an unloaded model is held out: predict -> 404 (%s)" % (js3 and js3["error"]))
st2, js2, _ = srv.post("/v2/repository/models/late/load", "")
st4, js4, _ = srv.post("/v1/predict/pattern", {"symbol": "GOOG", "timeframe": "1d",
                                              "model": "late", "target": "late"})
check(st == 200 and st2 == 200 and st4 == 200, "unload, then load again serves it")

# ---- 4. bar times, spacing, delete, 1d then 1m ---------------------------------------
good = minute_bars(NOW - 3 * 3600, 30)
st, js, _ = srv.post("/v1/candles", {"symbol": "POI", "timeframe": "1m", "candles": good[:10]})
check(st == 200 and js["stored"] == 10, "candles: 10 real 1m bars stored")
st, js, _ = srv.post("/v1/candles", {"symbol": "POI", "timeframe": "1m",
                                    "candles": [[99999999999, 10, 11, 9, 10, 1]]})
check(st == 400 and "max_future_s" in js["rejected"]["reason"] and js["total"] == 10,
      "candles: a bar from year 5138 refused (%s)" % (js and js["rejected"]["reason"]))
st, js, _ = srv.post("/v1/candles", {"symbol": "POI", "timeframe": "1m",
                                    "candles": [[NOW + 86400 + 600, 10, 11, 9, 10, 1]]})
check(st == 400 and "max_future_s" in js["rejected"]["reason"],
      "candles: a bar a day and 10 minutes ahead refused")
st, js, _ = srv.post("/v1/candles", {"symbol": "POI", "timeframe": "1m",
                                    "candles": [[NOW + 3600, 10, 11, 9, 10, 1]]})
check(st == 200, "candles: a bar an hour ahead is within max_future_s (1 day)")
st, js, _ = srv.post("/v1/candles", {"symbol": "POI", "timeframe": "1m", "candles": good[10:]})
check(st == 400 and js["stored"] == 0, "after the future bar, real bars are refused (older)")
st, js, _ = srv.request("DELETE", "/v1/series/POI/5m")
check(st == 409 and "rolled up" in js["error"], "DELETE a rolled-up series alone -> 409: %s"
      % (js and js["error"]))
st, js, _ = srv.request("DELETE", "/v1/series/POI/1m")
check(st == 200 and js["deleted"] is True and js["total"] == 11, "DELETE /v1/series/POI/1m -> 200")
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "POI", "timeframe": "1m",
                                            "target": "reversal"})
check(st == 404, "predict on a deleted series -> 404")
st, js, _ = srv.request("DELETE", "/v1/series/POI/1m")
check(st == 404, "DELETE again -> 404")
st, js, _ = srv.get("/v1/series/POI/1m")
check(st == 405, "GET /v1/series/... -> 405")
st, js, _ = srv.post("/v1/candles", {"symbol": "POI", "timeframe": "1m", "candles": good})
check(st == 200 and js["stored"] == 30 and js["total"] == 30,
      "the dropped series starts again: 30 real bars stored")
st, js, _ = srv.post("/v1/candles", {"symbol": "OLD", "timeframe": "1m",
                                    "candles": [[-60, 10, 11, 9, 10, 1]]})
check(st == 400 and "1970" in js["rejected"]["reason"], "a bar before 1970 refused")
# spacing: a 1h feed posted as 1d
d0 = (NOW // 86400 - 5) * 86400
st, js, _ = srv.post("/v1/candles", {"symbol": "SPC", "timeframe": "1d",
                                    "candles": [[d0, 10, 11, 9, 10, 1], [d0 + 3600, 10, 11, 9, 10, 1]]})
check(st == 400 and js["stored"] == 1 and "less than the timeframe" in js["rejected"]["reason"],
      "1d series: a bar one hour after the last refused (%s)" % (js and js["rejected"]["reason"]))
# 1d first, then 1m for the same symbol: both live, the 1d feed is not rolled into
days = [[d0 - 86400 * k, 50, 51, 49, 50.5, 10] for k in range(5, 0, -1)]
st, js, _ = srv.post("/v1/candles", {"symbol": "MIX", "timeframe": "1d", "candles": days})
check(st == 200 and js["total"] == 5, "MIX/1d: 5 daily bars")
st, js, _ = srv.post("/v1/candles", {"symbol": "MIX", "timeframe": "1m",
                                    "candles": minute_bars(NOW - 7200, 100)})
check(st == 200 and js["stored"] == 100, "MIX/1m after MIX/1d: 100 minute bars stored")
st, js, _ = srv.post("/v1/candles", {"symbol": "MIX", "timeframe": "1d", "candles": []})
check(st == 200 and js["total"] == 5, "MIX/1d keeps its own feed (still 5 bars)")
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "MIX", "timeframe": "5m",
                                            "target": "reversal"})
check(st == 200 and js["bars"] >= 20, "MIX/5m rolled up from 1m (%s bars)" % (js and js.get("bars")))

# ---- 8. warm-up fields and min_bars ------------------------------------------------------
st, js, _ = srv.post("/v1/candles", {"symbol": "WRM", "timeframe": "1m",
                                    "candles": minute_bars(NOW - 4 * 3600, 5)})
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "WRM", "timeframe": "1m",
                                            "target": "reversal"})
check(st == 200 and js["warm"] is False and js["bars"] == 5 and js["undefined_features"] > 0,
      "5 bars: warm false, %s undefined features" % (js and js.get("undefined_features")))
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "WRM", "timeframe": "1m",
                                            "target": "warmup"})
check(st == 409 and "min_bars" in js["error"], "manifest min_bars 60, 5 bars -> 409: %s"
      % (js and js["error"]))
st, js, _ = srv.post("/v1/candles", {"symbol": "WRM", "timeframe": "1m",
                                    "candles": minute_bars(NOW - 4 * 3600 + 300, 75)})
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "WRM", "timeframe": "1m",
                                            "target": "warmup"})
st2, js2, _ = srv.post("/v1/predict/pattern", {"symbol": "WRM", "timeframe": "1m",
                                              "target": "reversal"})
check(st == 200 and js["warm"] is True and js["undefined_features"] == 0 and js["bars"] == 80
      and st2 == 200 and js["prediction"] == js2["prediction"],
      "80 bars: min_bars met, warm, same prediction as reversal v2 (%s)" % js)
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "WRM", "timeframe": "1m",
                                            "target": "reversal", "async": True})
rid = js["request_id"]
for _ in range(100):
    st, res, _ = srv.get("/v1/results/" + rid)
    if res.get("status") == "done":
        break
    time.sleep(0.01)
check(res.get("warm") is True and res.get("undefined_features") == 0,
      "async result carries warm / undefined_features")

# ---- 8. FP32 range ---------------------------------------------------------------------------
f = 14
st, js, _ = srv.post("/v2/models/reversal/infer", {"inputs": [
    {"name": "input", "shape": [1, f], "datatype": "FP32", "data": [1e39] + [0.5] * (f - 1)}]})
check(st == 400 and "FP32" in js["error"], "FP32 value 1e39 -> 400: %s" % (js and js["error"]))
st, js, _ = srv.post("/v2/models/reversal/infer", {"inputs": [
    {"name": "input", "shape": [1, f], "datatype": "FP32", "data": [3.4e38] + [0.5] * (f - 1)}]})
check(st == 200, "FP32 value 3.4e38 (in range) -> 200")

# ---- 8. ONNX Runtime failures are errors ---------------------------------------------
if have_ort:
    def lookup(x):
        return srv.post("/v2/models/lookup/infer", {"inputs": [
            {"name": "input", "shape": [1, 1], "datatype": "FP64", "data": [x]}]})
    st, js, _ = lookup(1)
    check(st == 200 and js["outputs"][0]["data"] == [20.0], "ORT graph, x = 1 -> 20")
    st, js, _ = lookup(7)
    check(st == 500 and "lookup" in js["error"] and "out of" in js["error"] and "outputs" not in js,
          "ORT refusing x = 7 -> 500 naming the model: %s" % (js and js["error"]))
    st, js, _ = lookup(2)
    check(st == 200 and js["outputs"][0]["data"] == [30.0], "and the model still serves (x = 2)")
else:
    print("skip ONNX Runtime failure checks: %s missing (tools/fetch-onnxruntime.sh)" % ORT_LIB)

# ---- 8. request smuggling -------------------------------------------------------------
smuggled = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
body = b'{"symbol": "GOOG", "timeframe": "1d", "candles": []}'
for label, hdrs in (("two Content-Length",
                     b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body) + len(smuggled))),
                    ("two different Content-Length",
                     b"Content-Length: %d\r\nContent-Length: 3\r\n" % len(body)),
                    ("Content-Length + chunked",
                     b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body))):
    out = raw_socket(srv.port, b"POST /v1/candles HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n" +
                     body + smuggled)
    n = out.count(b"HTTP/1.1 ")
    check(out.startswith(b"HTTP/1.1 400") and n == 1 and b'"live"' not in out,
          "%s -> one 400 answer, connection closed, nothing smuggled (%d answers)" % (label, n))
# values libmicrohttpd itself refuses before any handler runs: it answers 400
# and closes (0.9.75 writes its error header twice; nothing after it runs)
for cl in (b"1,2", b"+5", b"abc", b"%d, %d" % (len(body), len(body))):
    out = raw_socket(srv.port, b"POST /v1/candles HTTP/1.1\r\nHost: x\r\nContent-Length: " + cl +
                     b"\r\n\r\n" + smuggled)
    check(out.startswith(b"HTTP/1.1 400") and b'"live"' not in out,
          "Content-Length %r -> 400, the request after it is not run" % cl.decode())
out = raw_socket(srv.port, b"POST /v1/candles HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                 % len(body) + body)
check(out.startswith(b"HTTP/1.1 200"), "a single Content-Length still works")

# ---- 7. unguessable async ids, max_async_results -----------------------------------------
ids = []
for _ in range(8):
    st, js, _ = srv.post("/v1/predict/regime", {"symbol": "GOOG", "timeframe": "1d",
                                               "target": "bull", "async": True})
    ids.append(int(js["request_id"]))
time.sleep(0.3)
srt = sorted(ids)
check(len(set(ids)) == 8 and min(b - a for a, b in zip(srt, srt[1:])) > 1 << 20
      and max(ids) > 1 << 40, "8 async ids distinct, far apart, 64-bit (%s)" % ids[:3])
st1 = [srv.get("/v1/results/%d" % i)[0] for i in ids]
check(st1 == [404] * 3 + [200] * 5, "max_async_results 5: the 3 oldest evicted (%s)" % st1)
probe = [srv.get("/v1/results/%d" % (ids[-1] + d))[0] for d in (-2, -1, 1, 2)]
probe += [srv.request("DELETE", "/v1/results/%d" % (ids[-1] + 1))[0]]
check(probe == [404] * 5, "neighbouring ids are unknown (read and DELETE)")
st, js, _ = srv.get("/v1/results/%d" % ids[-1])
check(st == 200, "the real id still answers after the probes")

# ---- 10. requests that arrive together batch -----------------------------------------
def burst_round(port, n, path, body):
    req = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body))) + body
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    out = []
    for _ in range(20):
        for s in socks:
            s.sendall(req)
        for s in socks:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, rest = buf.split(b"\r\n\r\n", 1)
            ln = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(rest) < ln:
                rest += s.recv(65536)
            out.append(int(head.split()[1]))
    for s in socks:
        s.close()
    return out


b0 = stats(srv)["batching"]
codes = burst_round(srv.port, 64, "/v1/predict/pattern",
                    b'{"symbol": "GOOG", "timeframe": "1d", "target": "reversal"}')
b1 = stats(srv)["batching"]
mean = (b1["rows"] - b0["rows"]) / max(1, b1["batches"] - b0["batches"])
check(codes.count(200) == len(codes) and mean > 1.2,
      "64 connections x 20 bursts on /v1/predict/pattern, defaults: mean batch %.2f rows > 1.2"
      % mean)

# ---- 5. slow clients ----------------------------------------------------------------------
slow_srv = Server("--max-connections", "100", "--request-timeout", "4")
slow = []
t0 = time.time()
for i in range(120):
    try:
        slow.append(socket.create_connection(("127.0.0.1", slow_srv.port), timeout=5))
    except OSError:
        break
closed_at = [None] * len(slow)
stop = threading.Event()
msg = b"POST /v1/candles HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000


def trickle():
    k = 0
    while not stop.is_set() and any(c is None for c in closed_at):
        for i, s in enumerate(slow):
            if closed_at[i] is not None:
                continue
            try:
                s.send(msg[k:k + 1])
                s.setblocking(False)
                try:
                    if s.recv(4096) == b"":
                        closed_at[i] = time.time() - t0
                except BlockingIOError:
                    pass
                s.setblocking(True)
            except OSError:
                closed_at[i] = time.time() - t0
        k = (k + 1) % len(msg)
        time.sleep(0.5)


th = threading.Thread(target=trickle, daemon=True)
th.start()
time.sleep(0.8)
health = None
while time.time() - t0 < 3.0:
    try:
        st, js, _ = slow_srv.get("/v2/health/ready", timeout=1)
        if st == 200:
            health = time.time() - t0
            break
    except OSError:
        pass
    time.sleep(0.1)
check(health is not None and health < 3.0,
      "120 byte-a-second clients vs max_connections 100: health answers at %s s"
      % (health and round(health, 2)))
try:
    st, js, _ = slow_srv.get("/v1/stats", timeout=1)
    check(st in (200, 503), "a non-health request while slots are full -> %d" % st)
except OSError as e:
    check(False, "a non-health request while slots are full: %s" % e)
th.join(timeout=12)
stop.set()
done = [c for c in closed_at if c is not None]
check(len(done) == len(slow) and max(done) < 7.0,
      "every slow client cut (%d of %d, last at %.1f s; request_timeout 4 s)"
      % (len(done), len(slow), max(done) if done else -1))
check(all(c >= 3.5 for c in sorted(done)[20:]) if len(done) > 20 else False,
      "the ordinary slow clients had their full request_timeout")
for s in slow:
    s.close()
js = stats(slow_srv)
check(js["connections"]["timed_out"] >= 100 and js["connections"]["reserve_used"] >= 1,
      "stats: connections timed_out %d, reserve_used %d" %
      (js["connections"]["timed_out"], js["connections"]["reserve_used"]))
st, _, _ = slow_srv.get("/v1/models")
check(st == 200, "the server serves normally afterwards")
slow_srv.stop()

# ---- 6. overload: deadlines hold with the defaults ------------------------------------
DEADLINE = 0.3
SLACK = 0.3  # response transfer and this client's own scheduling
ov = Server("--inference-timeout", str(DEADLINE), "--max-body-bytes", "4194304")
rng = random.Random(3)
rows = 2000
data = [round(rng.gauss(0, 1), 6) for _ in range(rows * f)]
body = json.dumps({"inputs": [{"name": "input", "shape": [rows, f], "datatype": "FP64",
                               "data": data}]}).encode()
req = (b"POST /v2/models/reversal/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body


def overload(port, nconn, seconds):
    sel = selectors.DefaultSelector()
    res = []
    for _ in range(nconn):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE, {"off": 0, "buf": b"", "sent": 0.0})
    end = time.time() + seconds
    while sel.get_map():
        for key, ev in sel.select(timeout=1):
            s, st = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE:
                try:
                    st["off"] += s.send(memoryview(req)[st["off"]:st["off"] + 262144])
                except BlockingIOError:
                    continue
                if st["off"] == len(req):
                    st["sent"] = time.time()
                    sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                chunk = s.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(s)
                s.close()
                res.append(("closed", time.time() - st["sent"]))
                continue
            st["buf"] += chunk
            if b"\r\n\r\n" not in st["buf"]:
                continue
            head, rest = st["buf"].split(b"\r\n\r\n", 1)
            ln = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            if len(rest) < ln:
                continue
            res.append((int(head.split()[1]), time.time() - st["sent"]))
            st["buf"], st["off"] = b"", 0
            if time.time() > end:
                sel.unregister(s)
                s.close()
            else:
                sel.modify(s, selectors.EVENT_WRITE, st)
    return res


res = overload(ov.port, 128, 5.0)
ok = [t for c, t in res if c == 200]
late = [t for t in ok if t > DEADLINE + SLACK]
refused = [c for c, t in res if c in (429, 504)]
other = sorted(set(c for c, t in res if c not in (200, 429, 504)), key=str)
print("overload: %d answers: %d x 200 (max %.3f s), %d x 429/504, other %s" %
      (len(res), len(ok), max(ok) if ok else 0, len(refused), other))
check(len(res) > 128 and refused and not other,
      "128 connections x 2000-row bodies: some 429/504 (%d of %d), nothing else" %
      (len(refused), len(res)))
check(not late, "no 200 later than deadline %.1f s + %.1f s (%d late, max %.2f s)" %
      (DEADLINE, SLACK, len(late), max(ok) if ok else 0))
js = stats(ov)
check(js["deadlines"]["refused_before"] + js["deadlines"]["late_after"] +
      js["batching"]["rejected"] + js["batching"]["timed_out"] > 0 and alive(ov),
      "stats count the refusals (deadlines %s) and the server is alive" % js["deadlines"])
ov.stop()

# ---- 9. MODEL_CACHE_SIZE: an LRU of resident models ------------------------------------
cs = Server("--replay", "GOOG/1d=%s/goog_daily.csv" % DATA, "--replay-speed", "0",
            env={"MODEL_CACHE_SIZE": "3"})
js = stats(cs)
mc = js["model_cache"]
check(mc["capacity"] == 3 and mc["resident"] == 3 and js["config"]["model_cache_size"] == "3",
      "MODEL_CACHE_SIZE=3: capacity 3, 3 resident at start (%s)" % mc)
st, js, _ = cs.get("/v1/models")
check(st == 200 and len(js["models"]) == 7 and sum(m["loaded"] for m in js["models"]) == 3,
      "/v1/models lists all 7, 3 loaded")
seq = [("pattern", "reversal"), ("pattern", "continuation"), ("regime", "bull"),
       ("regime", "bear"), ("regime", "sideways"), ("regime", "volatile"),
       ("regime", "volatile"), ("regime", "sideways"), ("pattern", "reversal")]
answers = []
for kind, target in seq:
    st, js, _ = cs.post("/v1/predict/" + kind, {"symbol": "GOOG", "timeframe": "1d",
                                               "target": target})
    answers.append((st, js and js.get("model")))
check(all(st == 200 and m == t for (st, m), (_, t) in zip(answers, seq)),
      "predictions on 6 models through a cache of 3 all answer")
mc = stats(cs)["model_cache"]
# which of the 6 were resident at start depends on the start-up order, so
# count from the rule: a model not resident is a miss; every miss beyond the
# free room evicts one. The last 4 requests: volatile (hit: just loaded),
# sideways (hit: loaded 2 before), reversal (miss: evicted by then).
check(mc["resident"] == 3 and mc["misses"] >= 4 and mc["evictions"] == mc["misses"]
      and mc["hits"] >= 2 and mc["hits"] + mc["misses"] == len(seq),
      "stats model_cache: %s" % mc)
check(metric(cs, "alphapulse_model_cache_hits_total") == mc["hits"] and
      metric(cs, "alphapulse_model_cache_misses_total") == mc["misses"] and
      metric(cs, "alphapulse_model_cache_evictions_total") == mc["evictions"],
      "/metrics model cache counters equal /v1/stats")
st, js, _ = cs.post("/v1/predict/ensemble", {"symbol": "GOOG", "timeframe": "1d"})
check(st == 503 and "model_cache_size" in js["error"],
      "an ensemble of 6 members + itself cannot fit 3 -> 503: %s" % (js and js["error"]))
check(alive(cs), "cache server alive")
cs.stop()

srv.stop()
srvlib.finish()
