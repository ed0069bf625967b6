#!/usr/bin/python3
"""Fan-out bench (called by bench_server.sh; usage: bench_fanout.py URL).

Posts the first 300 GOOG daily bars to FANOUT_N symbols S0000.. (/v1/candles),
then times, client-side on keep-alive connections:
  batch:   one POST /v1/predict/batch of FANOUT_N items on one model
           (pattern/reversal, the "symbols" shorthand), median of FANOUT_REPS;
  singles: FANOUT_N POST /v1/predict/pattern one after another on one
           connection (N round trips), median of FANOUT_SINGLE_REPS runs.
Checks that every item of the batch answered and that it equals the single
endpoint's answer for the same symbol, then prints
  bench: fanout-N batch_us=B singles_us=S ratio=R (singles: sequential, 1 keep-alive connection)
"""
import csv
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
N = int(os.environ.get("FANOUT_N", "1000"))
REPS = int(os.environ.get("FANOUT_REPS", "20"))
SREPS = int(os.environ.get("FANOUT_SINGLE_REPS", "3"))
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def post(path, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


bars = list(csv.reader(open(os.path.join(root, "examples", "data", "goog_daily.csv"))))[1:301]
t0 = 1_600_000_000
candles = [[t0 + 86400 * i] + [float(x) for x in b[1:6]] for i, b in enumerate(bars)]
syms = ["S%04d" % i for i in range(N)]
for s in syms:
    st, body = post("/v1/candles", {"symbol": s, "timeframe": "1d", "candles": candles})
    if st != 200:
        sys.exit("bench_fanout: candles for %s answered %d: %s" % (s, st, body[:200]))

batch = json.dumps({"requests": [{"kind": "pattern", "target": "reversal", "symbols": syms,
                                  "timeframe": "1d"}]}).encode()
single = [json.dumps({"symbol": s, "timeframe": "1d", "target": "reversal"}).encode()
          for s in syms]

# warm up, and check the answers against the single endpoint
st, body = post("/v1/predict/batch", batch)
res = json.loads(body)["results"] if st == 200 else None
if not res or len(res) != N or any("error" in x for x in res):
    sys.exit("bench_fanout: the batch failed: %d %s" % (st, body[:300]))
for i in (0, N // 2, N - 1):
    st, body = post("/v1/predict/pattern", single[i])
    one = json.loads(body)
    if one["prediction"] != res[i]["prediction"] or one["confidence"] != res[i]["confidence"]:
        sys.exit("bench_fanout: item %d differs from the single endpoint" % i)

times = []
for _ in range(REPS):
    t = time.perf_counter_ns()
    st, body = post("/v1/predict/batch", batch)
    times.append((time.perf_counter_ns() - t) / 1000)
    if st != 200:
        sys.exit("bench_fanout: batch answered %d" % st)
batch_us = statistics.median(times)

stimes = []
for _ in range(SREPS):
    t = time.perf_counter_ns()
    for b in single:
        st, _ = post("/v1/predict/pattern", b)
        if st != 200:
            sys.exit("bench_fanout: single answered %d" % st)
    stimes.append((time.perf_counter_ns() - t) / 1000)
singles_us = statistics.median(stimes)
print("bench: fanout-%d batch_us=%.0f singles_us=%.0f ratio=%.1f "
      "(batch: median of %d, min %.0f; singles: %d sequential calls on 1 keep-alive "
      "connection, median of %d)" % (N, batch_us, singles_us, singles_us / batch_us, REPS,
                                     min(times), N, SREPS))
