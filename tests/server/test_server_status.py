#!/usr/bin/python3
"""GET /v1/status (the status page's data) against a real server: every field
there, consistent with /v1/models, /v1/stats and /metrics; the sampler's
history fills once a second and stays bounded; prediction counts grow with
posted predictions; the series list matches the posted series; ?series=
gives the last bars with closes equal to the posted candles' closes; 400 on
a bad query, 404 on an unknown series; GET / serves the page to a browser
and the text index otherwise. The browser test is test_status_page.sh."""
import csv
import os
import re
import time

import srvlib
from srvlib import DATA, Server, check

srv = Server("--replay", "USDCHF/4h=%s/usdchf_4h.csv" % DATA, "--replay-speed", "20")

# ---- the page and the text index -------------------------------------------------------
st, _, data = srv.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
check(st == 200 and data.startswith(b"<!DOCTYPE html>") and b"/v1/status" in data,
      "GET / with Accept: text/html -> the status page")
check(not re.search(rb"(src|href)=\"(https?:)?//", data) and b"http://" not in
      data.replace(b"http://www.w3.org/2000/svg", b""),
      "the page names no external URL (self-contained)")
st, _, data = srv.get("/?format=html")
check(st == 200 and b"<html" in data, "GET /?format=html -> the page")
st, _, data = srv.get("/")
check(st == 200 and b"/v2/health" in data and b"/v1/status" in data, "GET / (no Accept) -> text index")
st, _, data = srv.get("/?format=text", headers={"Accept": "text/html"})
check(st == 200 and data.startswith(b"alphapulse:"), "GET /?format=text -> text index")
st, js, _ = srv.get("/?format=xml")
check(st == 400 and "format" in js["error"], "GET /?format=xml -> 400")

# ---- post a series, predictions ----------------------------------------------------------
rows = list(csv.reader(open(os.path.join(DATA, "goog_daily.csv"))))[1:]


def epoch(day):
    return int(time.mktime(time.strptime(day, "%Y-%m-%d"))) - time.timezone


candles = [[epoch(r[0])] + [float(x) for x in r[1:]] for r in rows[:260]]
st, js, _ = srv.post("/v1/candles", {"symbol": "STAT", "timeframe": "1d", "candles": candles})
check(st == 200 and js["stored"] == 260, "260 bars posted to STAT/1d")

st, js0, _ = srv.get("/v1/status")
check(st == 200, "GET /v1/status -> 200")
for key in ("server", "ingestion", "http", "batching", "models", "series", "series_count",
            "history", "models_loaded"):
    check(key in js0, "status has %s" % key)
check(js0["server"]["uptime_s"] > 0 and abs(js0["server"]["now_ms"] / 1000 - time.time()) < 5,
      "server: uptime and the time now")
before = {m["name"]: m.get("predictions", 0) for m in js0["models"]}

N = 25
for _ in range(N):
    st, _, _ = srv.post("/v1/predict/pattern", {"symbol": "STAT", "timeframe": "1d",
                                                "target": "reversal"})
check(st == 200, "predictions on STAT/1d")
srv.post("/v1/predict/pattern", {"symbol": "NOPE", "timeframe": "1d", "target": "reversal"})
time.sleep(2.2)  # two samples
st, js, _ = srv.get("/v1/status")
_, models, _ = srv.get("/v1/models")
_, stats, _ = srv.get("/v1/stats")
_, _, metrics = srv.get("/metrics")
metrics = metrics.decode()

# ---- models: consistent with /v1/models and /metrics -------------------------------------
sm = {m["name"]: m for m in js["models"]}
vm = {m["name"]: m for m in models["models"] if m.get("loaded")}
check(set(vm) <= set(sm) and len(sm) == 7, "status lists the 7 demo models (%s)" % sorted(sm))
check(all(sm[n]["version"] == vm[n]["version"] and sm[n]["kind"] == vm[n]["kind"] and
          sm[n]["target"] == vm[n]["target"] and sm[n]["precision"] == vm[n]["precision"]
          for n in vm), "version, kind, target, precision as /v1/models says")
check(js["models_loaded"] == stats["models_loaded"], "models_loaded as /v1/stats says")
rev = sm["reversal"]
check(rev["predictions"] - before["reversal"] == N,
      "reversal's predictions grew by the %d posted (%d -> %d)" % (N, before["reversal"],
                                                                  rev["predictions"]))
m = re.search(r'alphapulse_model_predictions_total\{model="reversal"\} (\d+)', metrics)
check(m and int(m.group(1)) >= rev["predictions"], "predictions as /metrics counts them")
check(rev["p50_us"] is not None and 0 < rev["p50_us"] <= rev["p99_us"],
      "reversal: p50 <= p99 from the predict-time histogram (%s, %s)" % (rev["p50_us"],
                                                                         rev["p99_us"]))
check(rev["batches"] >= 1 and rev["mean_batch_rows"] >= 1 and rev["queue_depth"] >= 0,
      "reversal: batches, mean rows per batch, queue depth")
check(all(k in rev["now"] for k in ("predictions_s", "p50_us", "p99_us", "batch_rows",
                                      "queue_depth")), "reversal: the last second's rates")

# ---- ingestion, http ----------------------------------------------------------------------
ing = js["ingestion"]
check(ing["bars_total"] <= stats["bars_ingested"] and ing["bars_total"] >= 260,
      "ingestion: bars_total consistent with /v1/stats (%d, %d)" % (ing["bars_total"],
                                                                 stats["bars_ingested"]))
check(ing["bars_per_s"] > 5, "ingestion rate with the replay at 20 bars/s (%.1f)" % ing["bars_per_s"])
h = js["http"]
check(h["errors_by_code"].get("404", 0) >= 1 and
      h["errors_by_endpoint"].get("predict_pattern", {}).get("404", 0) >= 1,
      "errors by code and endpoint count the 404 (%s)" % h["errors_by_endpoint"])
check(h["by_code"].get("200", 0) >= N and h["requests"] >= sum(h["by_code"].values()) - 1,
      "answers by code (%s)" % h["by_code"])
m = re.search(r'alphapulse_http_requests_total\{endpoint="predict_pattern",model="reversal",'
              r'code="200"\} (\d+)', metrics)
check(m and int(m.group(1)) == N, "/metrics agrees on the 200s of predict_pattern")

# ---- history: one point a second, bounded ------------------------------------------------
hist = js["history"]
n = hist["points"]
check(2 <= n <= hist["capacity"] == 300 and len(hist["t_ms"]) == n and
      len(hist["ingest_bars_s"]) == n, "history: %d points of at most 300" % n)
check(all(b - a >= 500 for a, b in zip(hist["t_ms"], hist["t_ms"][1:])),
      "history: points about a second apart")
hr = hist["models"]["reversal"]
check(all(len(hr[k]) == n for k in ("predictions_s", "p50_us", "p99_us", "batch_rows",
                                      "queue_depth")), "history: five series per model")
check(sum(hr["predictions_s"]) * 1.0 >= N * 0.5, "history: reversal's predictions/s shows the burst "
      "(%s)" % hr["predictions_s"][-4:])

# ---- series --------------------------------------------------------------------------------
ser = {(s["symbol"], s["timeframe"]): s for s in js["series"]}
check(("STAT", "1d") in ser and ("USDCHF", "4h") in ser and ("USDCHF", "1d") in ser,
      "series list: the posted series, the replay and its roll-up (%s)" % sorted(ser))
check(js["series_count"] == stats["series"] == len(ser), "series_count as /v1/stats says")
s = ser[("STAT", "1d")]
check(s["bars"] == 260 and s["total"] == 260 and s["latest_bar_t_us"] == candles[-1][0] * 10**6
      and s["latest_bar_time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(candles[-1][0])),
      "STAT/1d: bars and latest bar time (%s)" % s["latest_bar_time"])
check(ser[("USDCHF", "1d")]["rolled_up"] and not ser[("USDCHF", "4h")]["rolled_up"],
      "roll-ups are marked")
t1 = ser[("USDCHF", "4h")]["latest_bar_t_us"]
time.sleep(0.5)
_, js2, _ = srv.get("/v1/status")
t2 = [x for x in js2["series"] if x["symbol"] == "USDCHF" and x["timeframe"] == "4h"][0]
check(t2["latest_bar_t_us"] > t1, "the replayed series' latest bar advances")

# ---- ?series= --------------------------------------------------------------------------------
st, js, _ = srv.get("/v1/status?series=STAT/1d")
ch = js.get("chart", {})
check(st == 200 and ch.get("symbol") == "STAT" and ch.get("timeframe") == "1d" and
      ch.get("bars") == 200, "?series=STAT/1d -> chart of its last 200 bars")
check(ch.get("close") == [c[4] for c in candles[-200:]] and ch.get("t") == [c[0] for c in
      candles[-200:]], "chart: times and closes equal the posted candles'")
st, js, _ = srv.get("/v1/status?series=STAT%2F1d")
check(st == 200 and js["chart"]["bars"] == 200, "?series=STAT%2F1d (escaped) works too")
for q, code in (("?series=STAT", 400), ("?series=STAT/7x", 400), ("?series=/1d", 400),
                ("?series=", 400), ("?series=NOPE/1d", 404), ("?x=1", 400),
                ("?series=STAT/1d&x=1", 400)):
    st, js, _ = srv.get("/v1/status" + q)
    check(st == code and "error" in (js or {}), "GET /v1/status%s -> %d (%s)" % (q, code, st))
st, _, _ = srv.request("POST", "/v1/status", body="")
check(st == 405, "POST /v1/status -> 405")

check(srv.stop() == 0, "server stops cleanly")
srvlib.finish()
