#!/usr/bin/python3
"""`alphapulse serve` life cycle: configuration sources and errors, --help,
async cancel of a queued request, queue overload (429), and SIGTERM with a
request in flight (answered, then exit 0, new connections refused)."""
import os
import signal
import socket
import subprocess
import threading
import time

import srvlib
from srvlib import BIN, REPO, Server, check

work = srvlib.workdir()


def run(args, env=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AP_") or k in ("AP_ROOT", "AP_BIN")}
    for k in ("BATCH_SIZE", "INFERENCE_TIMEOUT", "MODEL_CACHE_SIZE", "ONNX_ENABLED",
              "MIXED_PRECISION_ENABLED"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([BIN, "serve", "--grpc-port", "0"] + args, capture_output=True, text=True, env=e,
                          timeout=timeout)


# ---- --help lists every setting with its default and environment name -----------------------------
r = run(["--help"])
keys = ["host", "port", "repository", "http_threads", "workers", "batch_size", "max_queue_delay_us",
        "max_queue_rows", "inference_timeout", "model_cache_size", "result_ttl", "onnx_enabled",
        "mixed_precision_enabled", "history", "max_body_bytes", "replay", "replay_speed", "caller_runs",
        "inline_inference"]
check(r.returncode == 0 and all(k in r.stdout for k in keys) and "AP_PORT" in r.stdout
      and "INFERENCE_TIMEOUT" in r.stdout and "BATCH_SIZE" in r.stdout,
      "serve --help lists the settings with their environment names")

# ---- configuration errors stop start-up with the key and where it came from -------------------------
conf = os.path.join(work, "bad.conf")
open(conf, "w").write("# comment\nport = 0\nbatch_sise = 3\n")
r = run(["--config", conf])
check(r.returncode == 2 and "bad.conf:3" in r.stderr and "batch_sise" in r.stderr,
      "unknown key in the config file -> exit 2 naming file:line and key: %s" % r.stderr.strip())
open(conf, "w").write("port = 0\nhttp_threads = many\n")
r = run(["--config", conf])
check(r.returncode == 2 and "bad.conf:2" in r.stderr and "http_threads" in r.stderr,
      "bad value in the config file -> exit 2: %s" % r.stderr.strip())
open(conf, "w").write("port 8080\n")
r = run(["--config", conf])
check(r.returncode == 2 and "bad.conf:1" in r.stderr, "line without '=' -> exit 2: %s" % r.stderr.strip())
r = run(["--config", os.path.join(work, "missing.conf")])
check(r.returncode == 2 and "missing.conf" in r.stderr, "missing config file -> exit 2")
r = run(["--port", "0"], env={"AP_PORT": "x80"})
check(r.returncode == 2 and "environment AP_PORT" in r.stderr, "bad AP_PORT -> exit 2: %s" % r.stderr.strip())
r = run(["--port", "0"], env={"BATCH_SIZE": "0"})
check(r.returncode == 2 and "BATCH_SIZE" in r.stderr and "batch_size" in r.stderr,
      "original name BATCH_SIZE=0 -> exit 2: %s" % r.stderr.strip())
r = run(["--port", "0", "--inference-timeout", "-1"])
check(r.returncode == 2 and "inference_timeout" in r.stderr, "bad --inference-timeout -> exit 2")
r = run(["--port", "0", "--no-such-option", "1"])
check(r.returncode == 2 and "no-such-option" in r.stderr, "unknown option -> exit 2: %s" % r.stderr.strip())
r = run(["--port", "0", "--replay", "GOOG=examples/data/goog_daily.csv"])
check(r.returncode == 2 and "replay" in r.stderr, "malformed replay list -> exit 2")
r = run(["--port", "0", "--repository", os.path.join(work, "no-repo")])
check(r.returncode == 1 and "no-repo" in r.stderr, "unreadable repository -> exit 1: %s" % r.stderr.strip())
r = run(["--port", "0", "--replay", "X/1d=" + os.path.join(work, "none.csv")])
check(r.returncode == 1 and "none.csv" in r.stderr, "missing replay file -> exit 1")

# ---- precedence: defaults < file < environment < command line -------------------------------------
conf = os.path.join(work, "good.conf")
open(conf, "w").write('batch_size = 32   # a comment\nmodel_cache_size = 77\nhistory = 500\n'
                      'inference_timeout = "2.5"\nonnx_enabled = no\n')
srv = Server("--config", conf, "--history", "300",
             env={"AP_MODEL_CACHE_SIZE": "88", "INFERENCE_TIMEOUT": "3", "AP_BATCH_SIZE": "16",
                  "BATCH_SIZE": "4"})
st, js, _ = srv.get("/v1/stats")
c = js["config"]
check(c["batch_size"] == "16" and c["model_cache_size"] == "88" and c["history"] == "300"
      and c["inference_timeout"] == "3" and c["onnx_enabled"] == "native" and c["result_ttl"] == "60",
      "precedence default < file < env (AP_ wins over the original name) < CLI: %s" %
      {k: c[k] for k in ("batch_size", "model_cache_size", "history", "inference_timeout")})
check(srv.stop() == 0, "stopped with exit 0")

# ---- a slow batch: async cancel, overload ------------------------------------------------------------
# max_queue_delay_us 1.5 s and batch_size 64: a lone request waits in the queue
srv = Server("--max-queue-delay-us", "1500000", "--max-queue-rows", "2",
             "--inference-timeout", "10", "--shutdown-timeout", "10")
f = 14
body = {"inputs": [{"name": "input", "shape": [1, f], "datatype": "FP64", "data": [0.1] * f}]}
srv.post("/v1/candles", {"symbol": "S", "timeframe": "1h",
                         "candles": [[3600 * i, 10, 11, 9, 10 + (i % 3), 100] for i in range(60)]})
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "S", "timeframe": "1h", "target": "reversal",
                                            "async": True})
rid = js["request_id"]
st, js, _ = srv.get("/v1/results/" + rid)
check(st == 200 and js["status"] == "pending", "async request queued behind the delay: pending")
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "S", "timeframe": "1h", "target": "reversal",
                                            "async": True})
rid2 = js["request_id"]
st, js, _ = srv.post("/v1/predict/pattern", {"symbol": "S", "timeframe": "1h", "target": "reversal"})
check(st == 429 and "error" in js, "third request with max_queue_rows 2 -> 429 (%s)" % js)
st, js, _ = srv.request("DELETE", "/v1/results/" + rid)
check(st == 200 and js["status"] == "cancelled", "DELETE of the pending request -> cancelled")
st, js, _ = srv.get("/v1/results/" + rid)
check(st == 404, "cancelled request is gone -> 404")
st, _, text = srv.get("/metrics")
check(b'alphapulse_batch_cancelled_total{model="reversal",batcher="features"} 1' in text
      and b'alphapulse_batch_rejected_total{model="reversal",batcher="features"} 1' in text,
      "metrics count the cancel and the rejection")

# ---- SIGTERM with a request in flight ----------------------------------------------------------------
result = {}


def inflight():
    result["r"] = srv.post("/v2/models/reversal/infer", body, timeout=20)


t = threading.Thread(target=inflight)
t0 = time.time()
t.start()
time.sleep(0.3)  # the request now waits in the batcher (1.5 s delay)
srv.proc.send_signal(signal.SIGTERM)
time.sleep(0.2)
refused = False
try:
    socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
except OSError:
    refused = True
check(refused, "after SIGTERM new connections are refused")
t.join(20)
st, js, _ = result.get("r", (None, None, None))
check(st == 200 and js["outputs"][0]["data"][0] is not None,
      "the in-flight infer was answered 200 after SIGTERM (%.2f s)" % (time.time() - t0))
rc = srv.proc.wait(timeout=15)
check(rc == 0 and "stopped" in srv.output(), "exit status 0 after a graceful stop (rc %s)" % rc)
srvlib.finish()
