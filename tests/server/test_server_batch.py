#!/usr/bin/python3
"""Integration test of POST /v1/predict/batch over real HTTP on loopback:
mixed good and bad items (per-item errors, order kept), every good item
bitwise the single endpoint's answer on the same bar (parsed floats compared
with == and the raw JSON number text), duplicates, the "symbols" shorthand,
the limits (max_batch_items, empty, not an array), async (202, then
/v1/results/{id}, DELETE), a group larger than the batcher's max_batch_size
(one submit), a group split by max_queue_rows, and tiny deadlines.

References come from the single endpoints (/v1/predict/{kind}), the
established path, never from the batch's own output. The replayed series
(GOOG/1d, USDCHF/4h) are fed once (--replay-loop false) and then stay put,
so a batch and the single calls read the same bar."""
import csv
import json
import os
import time

import srvlib
from srvlib import DATA, Server, check

REPLAY = ["--replay", "GOOG/1d=%s/goog_daily.csv,USDCHF/4h=%s/usdchf_4h.csv" % (DATA, DATA),
          "--replay-speed", "0", "--replay-loop", "false"]


def wait_replayed(s):
    for _ in range(500):
        st, js, _ = s.get("/v1/stats")
        if st == 200 and js["replay"] and all(r["done"] for r in js["replay"]):
            return True
        time.sleep(0.02)
    return False


def raw_json(data):
    """The answer with every non-integer number kept as its text."""
    return json.loads(data, parse_float=lambda t: t)


srv = Server(*REPLAY)
check(wait_replayed(srv), "replay of GOOG/1d and USDCHF/4h done")
# two more 1d series with distinct names, for the shorthand's order
bars = list(csv.reader(open(os.path.join(DATA, "goog_daily.csv"))))[1:]
for sym, off in (("AAA", 0), ("BBB", 100)):
    rows = [[1_500_000_000 + 86400 * i] + [float(x) for x in b[1:6]]
            for i, b in enumerate(bars[off:off + 300])]
    st, js, _ = srv.post("/v1/candles", {"symbol": sym, "timeframe": "1d", "candles": rows})
    check(st == 200 and js["stored"] == 300, "candles: 300 bars for %s" % sym)

ENDPOINT = {"pattern": "/v1/predict/pattern", "regime": "/v1/predict/regime",
            "ensemble": "/v1/predict/ensemble"}


def single(item):
    """The single endpoint's answer for a batch item: (status, parsed, raw-number parsed)."""
    body = {k: v for k, v in item.items() if k != "kind"}
    if item["kind"] != "ensemble" and "target" not in body:
        body["target"] = body["model"]  # the single endpoints want a target (demo: the name)
    st, js, data = srv.post(ENDPOINT[item["kind"]], body)
    return st, js, (raw_json(data) if data else None)


SAME = ("symbol", "timeframe", "model", "kind", "target", "version", "bar_time", "bar_time_ms",
        "bars", "warm", "undefined_features")


def same_as_single(got, got_raw, item, what):
    st, ref, ref_raw = single(item)
    ok = st == 200 and "error" not in got
    ok = ok and all(got[k] == ref[k] for k in SAME)
    # bitwise: the floats compare equal and their JSON text is the same
    ok = ok and got["prediction"] == ref["prediction"] and got["confidence"] == ref["confidence"]
    ok = ok and got_raw["prediction"] == ref_raw["prediction"]
    ok = ok and got_raw["confidence"] == ref_raw["confidence"]
    ok = ok and got.get("members") == ref.get("members")
    ok = ok and got_raw.get("members") == ref_raw.get("members")
    check(ok, "%s: == single %s (%s vs %s)" % (what, ENDPOINT[item["kind"]],
                                               got.get("prediction"), ref.get("prediction")))


def batch(s, body, **kw):
    st, js, data = s.post("/v1/predict/batch", body, **kw)
    return st, js, (raw_json(data) if data and js else None)


# ---- (a) + (b): mixed items, per-item errors, order kept, == single calls ---------------------
good = [{"kind": "pattern", "symbol": "GOOG", "timeframe": "1d", "target": "reversal"},
        {"kind": "regime", "symbol": "USDCHF", "timeframe": "4h", "target": "bull"},
        {"kind": "ensemble", "symbol": "GOOG", "timeframe": "1d"},
        {"kind": "pattern", "symbol": "USDCHF", "timeframe": "4h", "target": "continuation"},
        {"kind": "regime", "symbol": "GOOG", "timeframe": "1d", "model": "volatile"},
        {"kind": "ensemble", "symbol": "USDCHF", "timeframe": "4h"}]
bad = [({"kind": "pattern", "symbol": "NOPE", "timeframe": "1d", "target": "reversal"},
        404, "ENOTFOUND", "unknown series NOPE/1d"),
       ({"kind": "pattern", "symbol": "GOOG", "timeframe": "1d", "model": "zzz"},
        404, "ENOTFOUND", "unknown model 'zzz'"),
       ({"kind": "pattern", "symbol": "GOOG", "timeframe": "1d", "target": "nothing"},
        404, "ENOTFOUND", "no pattern model"),
       ({"kind": "pattern", "symbol": "GOOG", "timeframe": "1d", "model": "bull"},
        404, "ENOTFOUND", "another kind"),
       ({"kind": "sideways", "symbol": "GOOG", "timeframe": "1d"}, 400, "EINVAL", "kind"),
       ({"kind": "pattern", "symbol": "GOOG", "timeframe": "1d", "target": "reversal",
         "colour": 1}, 400, "EINVAL", "unknown field 'colour'"),
       ({"kind": "pattern", "symbol": 5, "timeframe": "1d", "target": "reversal"},
        400, "EINVAL", "symbol"),
       ({"kind": "regime", "symbol": "GOOG", "timeframe": "1d"}, 400, "EINVAL", "target"),
       ({"kind": "pattern", "symbol": "GOOG", "timeframe": "0m", "target": "reversal"},
        400, "EINVAL", ""),
       ([1, 2], 400, "EINVAL", "object")]
mixed = []
for i in range(max(len(good), len(bad))):  # interleaved: errors between good items
    if i < len(good):
        mixed.append(("good", good[i]))
    if i < len(bad):
        mixed.append(("bad", bad[i]))
st, js, jr = batch(srv, {"requests": [m[1] if m[0] == "good" else m[1][0] for m in mixed],
                         "timeout_ms": 5000})
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == len(mixed), "mixed batch of %d items -> 200, one result each (%d)"
      % (len(mixed), st))
for k, (what, m) in enumerate(mixed):
    if k >= len(res):
        break
    if what == "good":
        same_as_single(res[k], jr["results"][k], m, "item %d %s %s/%s" % (
            k, m["kind"], m["symbol"], m.get("target", m.get("model"))))
    else:
        item, code, name, word = m
        r = res[k]
        check(set(r) == {"error", "code", "status"} and r["status"] == code and r["code"] == name
              and word in r["error"], "item %d %s -> its own error %d %s (%s)" % (k, item, code,
                                                                             name, r))
# the error text of an item is the single endpoint's
st1, one, _ = srv.post("/v1/predict/pattern", {"symbol": "NOPE", "timeframe": "1d",
                                              "target": "reversal"})
check(st1 == 404 and res and one["error"] == res[1]["error"],
      "unknown series: same message as the single endpoint")

# ---- (c) duplicates --------------------------------------------------------------------------
dup = good[0]
st, js, jr = batch(srv, {"requests": [dup, good[2], dup, dup, good[2]]})
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == 5, "duplicates: 5 items, 5 results")
for k, it in enumerate([dup, good[2], dup, dup, good[2]][:len(res)]):
    same_as_single(res[k], jr["results"][k], it, "duplicate item %d" % k)

# ---- (d) the "symbols" shorthand expands in order ------------------------------------------------
syms = ["BBB", "AAA", "NOPE", "GOOG", "AAA"]
st, js, jr = batch(srv, {"requests": [
    {"kind": "pattern", "target": "reversal", "symbols": syms, "timeframe": "1d"},
    good[1]]})
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == 6, "symbols: 5 symbols + 1 item -> 6 results")
for k, sym in enumerate(syms):
    if k >= len(res):
        break
    if sym == "NOPE":
        check(res[k].get("status") == 404, "symbols[%d] NOPE -> its own 404" % k)
    else:
        same_as_single(res[k], jr["results"][k], {"kind": "pattern", "symbol": sym,
                                                  "timeframe": "1d", "target": "reversal"},
                       "symbols[%d] %s" % (k, sym))
if len(res) == 6:
    same_as_single(res[5], jr["results"][5], good[1], "the item after the shorthand")
for it, word in [({"kind": "pattern", "target": "reversal", "symbols": [], "timeframe": "1d"},
                  "symbols"),
                 ({"kind": "pattern", "target": "reversal", "symbols": "GOOG", "timeframe": "1d"},
                  "symbols"),
                 ({"kind": "pattern", "target": "reversal", "symbols": ["GOOG"],
                   "symbol": "GOOG", "timeframe": "1d"}, "not both")]:
    st, js, _ = batch(srv, {"requests": [it, good[0]]})
    res = js["results"] if st == 200 else []
    check(st == 200 and len(res) == 2 and res[0].get("status") == 400 and word in
          res[0].get("error", "") and "prediction" in res[1],
          "malformed shorthand %s -> one error item, the next item fine" % it)
st, js, _ = batch(srv, {"requests": [{"kind": "pattern", "taroet": "reversal", "timeframe": "1d",
                                      "symbols": ["GOOG", "AAA"]}, good[0]]})
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == 3 and all(r.get("status") == 400 and "taroet" in r["error"]
                                          for r in res[:2]) and "prediction" in res[2],
      "a wrong shorthand item: each of its symbols gets the error, the next item fine")
st, js, _ = batch(srv, {"requests": [{"kind": "pattern", "target": "reversal", "timeframe": "1d",
                                      "symbols": ["GOOG", 7, "AAA"]}]})
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == 3 and "prediction" in res[0] and res[1].get("status") == 400
      and "symbols[1]" in res[1].get("error", "") and res[2].get("symbol") == "AAA",
      "a non-string symbol fails alone")

# ---- (e) the request's own errors: 400 ------------------------------------------------------------
for body, word in [({"requests": []}, "no items"), ({"requests": {"kind": "pattern"}}, "array"),
                   ({"requests": 3}, "array"), ({}, "required"),
                   ({"requests": [good[0]], "colour": 1}, "unknown field 'colour'"),
                   ({"requests": [good[0]], "async": "yes"}, "async"),
                   ({"requests": [good[0]], "timeout_ms": -1}, "timeout_ms"),
                   (b'{"requests": [', "malformed JSON"), (b"[1]", "object")]:
    st, js, _ = srv.post("/v1/predict/batch", body)
    check(st == 400 and js and word in js["error"], "batch %r -> 400 %s (%s)" % (body, word, js))
lim = Server("--max-batch-items", "3", *REPLAY)
wait_replayed(lim)
st, js, _ = lim.post("/v1/predict/batch", {"requests": [good[0]] * 3})
check(st == 200 and len(js["results"]) == 3, "max_batch_items 3: 3 items -> 200")
st, js, _ = lim.post("/v1/predict/batch", {"requests": [good[0]] * 4})
check(st == 400 and "max_batch_items" in js["error"] and "4" in js["error"],
      "max_batch_items 3: 4 items -> 400 naming the limit (%s)" % js)
st, js, _ = lim.post("/v1/predict/batch", {"requests": [
    {"kind": "pattern", "target": "reversal", "timeframe": "1d", "symbols": ["GOOG"] * 4}]})
check(st == 400 and "max_batch_items" in js["error"],
      "max_batch_items counts the expanded symbols (1 element of 4 symbols -> 400)")
check(lim.stop() == 0, "the max_batch_items server stops cleanly (exit 0)")

# ---- (f) async: one id for the batch ---------------------------------------------------------------
items = [good[0], bad[0][0], good[2], good[1]]
st, sync_js, _ = batch(srv, {"requests": items})
st, js, _ = batch(srv, {"requests": items, "async": True})
check(st == 202 and js["status"] == "pending" and js["request_id"].isdigit(),
      "async batch -> 202 + one request id")
rid = js["request_id"] if st == 202 else "0"
for _ in range(200):
    st, res, _ = srv.get("/v1/results/" + rid)
    if st != 200 or res.get("status") != "pending":
        break
    time.sleep(0.01)
VOLATILE = ("request_id", "latency_us", "queue_us", "compute_us")
strip = [{k: v for k, v in r.items() if k not in VOLATILE} for r in sync_js["results"]]
check(st == 200 and res["status"] == "done" and res["request_id"] == rid and
      [{k: v for k, v in r.items() if k not in VOLATILE} for r in res.get("results", [])] == strip,
      "GET /v1/results/{id}: done, the same results as the sync batch")
st, res2, _ = srv.get("/v1/results/" + rid)
check(st == 200 and res2.get("results") == res.get("results"), "the batch result reads again")
st, js, _ = srv.request("DELETE", "/v1/results/" + rid)
check(st == 200 and js["status"] == "deleted", "DELETE /v1/results/{id} of a done batch")
st, js, _ = srv.get("/v1/results/" + rid)
check(st == 404, "GET after DELETE -> 404")
# a pending one deleted: its answer is dropped when it completes, the id stays unknown
st, js, _ = batch(srv, {"requests": [good[0]] * 200, "async": True})
rid = js["request_id"]
st, js, _ = srv.request("DELETE", "/v1/results/" + rid)
check(st == 200 and js["status"] in ("deleted", "cancelled"), "DELETE right after the 202 -> 200")
time.sleep(0.2)
st, js, _ = srv.get("/v1/results/" + rid)
check(st == 404, "deleted batch stays deleted after its submits complete")

# ---- (g) a group of more rows than max_batch_size (64): one submit, one batch call -------------------
st, s0, _ = srv.get("/v1/stats")
st, js, jr = batch(srv, {"requests": [{"kind": "pattern", "target": "reversal", "timeframe": "1d",
                                       "symbols": ["GOOG", "AAA", "BBB"] * 100}]})
st2, s1, _ = srv.get("/v1/stats")
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == 300 and all("prediction" in r for r in res),
      "300 items on one model -> 300 predictions")
refs = {}
for sym in ("GOOG", "AAA", "BBB"):
    refs[sym] = single({"kind": "pattern", "symbol": sym, "timeframe": "1d", "target": "reversal"})
check(all(res[k]["prediction"] == refs[r["symbol"]][1]["prediction"] and
          jr["results"][k]["prediction"] == refs[r["symbol"]][2]["prediction"] and
          res[k]["confidence"] == refs[r["symbol"]][1]["confidence"] for k, r in enumerate(res)),
      "300 items: each == the single endpoint for its symbol")
check(s1["batching"]["submitted"] - s0["batching"]["submitted"] == 1 and
      s1["batching"]["rows"] - s0["batching"]["rows"] == 300,
      "300 items on one model were one submit of 300 rows (submitted +%d, rows +%d)" % (
          s1["batching"]["submitted"] - s0["batching"]["submitted"],
          s1["batching"]["rows"] - s0["batching"]["rows"]))
mq = Server("--max-queue-rows", "100", *REPLAY)
wait_replayed(mq)
st, s0, _ = mq.get("/v1/stats")
st, js, _ = mq.post("/v1/predict/batch", {"requests": [
    {"kind": "pattern", "target": "reversal", "timeframe": "1d", "symbols": ["GOOG"] * 250}]})
st2, s1, _ = mq.get("/v1/stats")
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == 250 and all(r.get("prediction") == refs["GOOG"][1]["prediction"]
                                            for r in res),
      "max_queue_rows 100: 250 items all answered, == single")
check(s1["batching"]["submitted"] - s0["batching"]["submitted"] == 3,
      "max_queue_rows 100: the group went in 3 submits (%d)" % (
          s1["batching"]["submitted"] - s0["batching"]["submitted"]))
check(mq.stop() == 0, "the max_queue_rows server stops cleanly (exit 0)")

# ---- (h) deadlines: per-item 504 errors in a 200 ---------------------------------------------------
st, js, _ = batch(srv, {"requests": [good[0], bad[0][0], good[2]], "timeout_ms": 0.001})
res = js["results"] if st == 200 else []
check(st == 200 and len(res) == 3 and res[0].get("status") == 504 and
      res[0].get("code") == "ETIMEDOUT" and "deadline" in res[0].get("error", "") and
      res[2].get("status") == 504 and res[1].get("status") == 404,
      "timeout_ms 0.001: 200, the items 504 ETIMEDOUT, the unknown series still 404 (%s)" % res)

# ---- metrics -------------------------------------------------------------------------------------
def items_total():
    st, _, text = srv.get("/metrics")
    text = text.decode()
    n = [ln for ln in text.split("\n") if ln.startswith("alphapulse_batch_items_total ")]
    return text, int(n[0].split()[1]) if n else -1


text, n0 = items_total()
check('endpoint="predict_batch"' in text, "/metrics: the endpoint label predict_batch")
batch(srv, {"requests": [good[0], {"kind": "pattern", "target": "reversal", "timeframe": "1d",
                                   "symbols": ["GOOG"] * 6}]})
text, n1 = items_total()
check(n0 > 0 and n1 - n0 == 7, "/metrics: alphapulse_batch_items_total counts the expanded items "
      "(+%d for 1 + 6)" % (n1 - n0))

check(srv.stop() == 0, "the server stops cleanly (exit 0: no sanitizer report)")
srvlib.finish()
