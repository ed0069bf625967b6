"""GET /v1/stream (issue 13, part 2): predictions pushed as Server-Sent Events
on every closed bar, tested with a real client on loopback against the real
server.

References: every event's values must equal /v1/predict/* on the same bar,
asked while that bar was the series' latest (the established path), and the
closing rule is the documented one (a bar closes when a later bar of its
series arrives; a rolled-up bucket when a base bar past its end arrives).
Checked: exactly one event per (series, closed bar, model), in bar order per
series; filters; once per (series, bar, model) whatever the subscribers;
roll-ups; Last-Event-ID resume and gap; slow-consumer overflow; keep-alive;
shutdown closes streams cleanly; bad subscriptions."""
import csv
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import srvlib  # noqa: E402
from srvlib import check  # noqa: E402

DATA = srvlib.DATA
goog = list(csv.reader(open(os.path.join(DATA, "goog_daily.csv"))))[1:]
T0 = 1262304000  # 2010-01-01, epoch seconds: far enough in the past


def candle(i, b, step=86400):
    return [T0 + i * step] + [float(x) for x in b[1:]]


class Sse:
    """A minimal SSE client on a raw socket: HTTP/1.1 request, then its own
    chunked decoder (resumable after a timeout, unlike http.client's)."""

    def __init__(self, port, query, last_id=None, rcvbuf=None, timeout=10):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", port))
        req = "GET /v1/stream?%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" % query
        if last_id:
            req += "Last-Event-ID: %s\r\n" % last_id
        self.s.sendall((req + "\r\n").encode())
        self.raw = b""     # bytes from the socket, not decoded yet
        self.text = b""    # decoded body
        self.ended = False
        self.comments = 0
        while b"\r\n\r\n" not in self.raw:
            self._recv(until=time.time() + timeout)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        self.ctype = self.headers.get("content-type", "")
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        if not self.chunked:  # an error answer: Content-Length body
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n:
                self._recv(until=time.time() + timeout)
            self.text, self.ended = self.raw[:n], True

    def _recv(self, until):
        left = until - time.time()
        if left <= 0:
            raise socket.timeout()
        self.s.settimeout(left)
        d = self.s.recv(65536)
        if not d:
            raise EOFError()
        self.raw += d

    def _decode(self):
        while not self.ended:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            n = int(self.raw[:i], 16)
            if n == 0:
                self.ended = True
                return
            if len(self.raw) < i + 2 + n + 2:
                return
            self.text += self.raw[i + 2:i + 2 + n]
            self.raw = self.raw[i + 2 + n + 2:]

    def next(self, timeout=10):
        """The next event as a dict (event, id, data[, json]), None at the end
        of the stream, {} when none came within timeout (comments skipped)."""
        until = time.time() + timeout
        while True:
            self._decode()
            while b"\n\n" in self.text:
                block, self.text = self.text.split(b"\n\n", 1)
                ev = {}
                for line in block.decode().split("\n"):
                    if line.startswith(":"):
                        self.comments += 1
                    elif line:
                        k, _, v = line.partition(": ")
                        ev[k] = v
                if ev:
                    if "data" in ev:
                        ev["json"] = json.loads(ev["data"])
                    return ev
            if self.ended:
                return None
            try:
                self._recv(until)
            except socket.timeout:
                return {}
            except (EOFError, ConnectionResetError):
                self.ended = True

    def take(self, n, timeout=10, into=None):
        """Up to n events (fewer at the end or a timeout), appended to into."""
        out = [] if into is None else into
        for _ in range(n):
            e = self.next(timeout)
            if not e:
                break
            out.append(e)
        return out

    def close(self):
        self.s.close()


def predict(srv, ep, sym, tf, target):
    st, js, raw = srv.post("/v1/predict/" + ep, {"symbol": sym, "timeframe": tf, "target": target})
    return js if st == 200 else None


def metric(srv, name):
    st, _, raw = srv.get("/metrics")
    for ln in raw.decode().splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return None


srv = srvlib.Server("--stream-keepalive", "0.3")

# ---- bad subscriptions --------------------------------------------------------------------
for q, code, what in [("models=reversal", 400, "series is required"),
                      ("series=GOOG/1d&model=reversal", 400, "unknown query parameter"),
                      ("series=GOOG/7x", 400, "bad timeframe"),
                      ("series=GOOG", 400, "not SYMBOL/TIMEFRAME"),
                      ("series=GOOG/1d&models=nosuch", 404, "unknown model"),
                      ("series=GOOG/1d&models=pattern:nosuch", 404, "unknown kind:target")]:
    st, js, _ = srv.get("/v1/stream?" + q)
    check(st == code and js and "error" in js, "stream: %s -> %d (%s)" % (what, code, js))

# ---- warm-up, then subscribers ------------------------------------------------------------
WARM = 150
st, js, _ = srv.post("/v1/candles", {"symbol": "GOOG", "timeframe": "1d",
                                     "candles": [candle(i, goog[i]) for i in range(WARM)]})
check(st == 200 and js["stored"] == WARM, "warm-up: %d GOOG bars stored" % WARM)

a = Sse(srv.port, "series=GOOG/1d&models=reversal,regime:bull")
check(a.status == 200 and a.ctype.startswith("text/event-stream"),
      "stream: 200 text/event-stream (%s %s)" % (a.status, a.ctype))
b = Sse(srv.port, "series=*&models=reversal")
c = Sse(srv.port, "series=USDCHF/4h")
time.sleep(0.2)
check(metric(srv, "alphapulse_stream_subscribers") == 3, "metrics: 3 subscribers")

# one bar at a time; after each, the single endpoints on the new latest bar
N = 12
ref = {}  # bar_time_ms -> {model: answer}
last_t = T0 + (WARM - 1) * 86400
ref[last_t * 1000] = {"reversal": predict(srv, "pattern", "GOOG", "1d", "reversal"),
                      "bull": predict(srv, "regime", "GOOG", "1d", "bull")}
for i in range(WARM, WARM + N):
    st, js, _ = srv.post("/v1/candles", {"symbol": "GOOG", "timeframe": "1d",
                                         "candles": [candle(i, goog[i])]})
    assert st == 200, js
    if i < WARM + N - 1:
        t = (T0 + i * 86400) * 1000
        ref[t] = {"reversal": predict(srv, "pattern", "GOOG", "1d", "reversal"),
                  "bull": predict(srv, "regime", "GOOG", "1d", "bull")}

ev_a = a.take(2 * N)
check(len(ev_a) == 2 * N and all(e["event"] == "prediction" for e in ev_a),
      "A: %d events for %d closed bars x 2 models (got %d)" % (2 * N, N, len(ev_a)))
keys = [(e["json"]["bar_time_ms"], e["json"]["model"]) for e in ev_a]
check(len(set(keys)) == len(keys) and sorted(set(t for t, _ in keys)) == sorted(ref),
      "A: exactly one event per (closed bar, model), every closed bar")
times = [t for t, _ in keys]
check(times == sorted(times), "A: events in bar order")
same = all(e["json"]["prediction"] == ref[e["json"]["bar_time_ms"]][e["json"]["model"]]["prediction"]
           and e["json"]["confidence"] == ref[e["json"]["bar_time_ms"]][e["json"]["model"]]["confidence"]
           and e["json"]["bars"] == ref[e["json"]["bar_time_ms"]][e["json"]["model"]]["bars"]
           for e in ev_a)
check(same, "A: every event equals /v1/predict on that bar (prediction, confidence, bars)")
check(all(e["json"]["closed"] is True and e["id"] == "GOOG/1d:%d:%s" % (
    e["json"]["bar_time_ms"], e["json"]["model"]) for e in ev_a),
      "A: id is <series>:<bar_time_ms>:<model>, data has closed: true")
ev_b = b.take(N)
check(len(ev_b) == N and all(e["json"]["model"] == "reversal" for e in ev_b),
      "B (series=*, models=reversal): %d reversal events" % N)
check([e["data"] for e in ev_b] == [e["data"] for e in ev_a if e["json"]["model"] == "reversal"],
      "B: the same events as A (predicted once, not once per subscriber)")
time.sleep(0.3)
check(metric(srv, "alphapulse_stream_events_total") == 2 * N,
      "metrics: %d events made for 2 subscribers of reversal (once per series, bar, model)" % (2 * N))
e = c.next(timeout=1.5)
check(e is None or "event" not in e, "C (USDCHF/4h only): no GOOG event")
check(c.comments >= 1, "C: keep-alive comments on an idle stream (stream_keepalive 0.3 s)")

# ---- an update of the forming bar does not close it -------------------------------------
i = WARM + N - 1
upd = candle(i, goog[i])
upd[4] = upd[4] * 1.001
st, js, _ = srv.post("/v1/candles", {"symbol": "GOOG", "timeframe": "1d", "candles": [upd]})
time.sleep(0.3)
e = b.next(timeout=0.8)
check(st == 200 and (e is None or "event" not in e), "an update of the latest bar sends nothing")

# ---- Last-Event-ID: resume after a disconnect ----------------------------------------------
last_id = ev_a[-1]["id"]
a.close()
for i in range(WARM + N, WARM + N + 3):
    srv.post("/v1/candles", {"symbol": "GOOG", "timeframe": "1d", "candles": [candle(i, goog[i])]})
a2 = Sse(srv.port, "series=GOOG/1d&models=reversal,bull", last_id=last_id)
got = a2.take(6)
want_t = [(T0 + i * 86400) * 1000 for i in range(WARM + N - 1, WARM + N + 2)]
check(len(got) == 6 and sorted(set(x["json"]["bar_time_ms"] for x in got)) == want_t,
      "Last-Event-ID: the 6 missed events (3 bars x 2 models) come first (%s, want %s)"
      % ([x["id"] for x in got], want_t))
check([x["json"]["bar_time_ms"] for x in got] == sorted(x["json"]["bar_time_ms"] for x in got),
      "Last-Event-ID: resumed in bar order")
srv.post("/v1/candles", {"symbol": "GOOG", "timeframe": "1d",
                         "candles": [candle(WARM + N + 3, goog[WARM + N + 3])]})
live = a2.take(2)
check(len(live) == 2 and all(x["json"]["bar_time_ms"] == (T0 + (WARM + N + 2) * 86400) * 1000
                             for x in live), "Last-Event-ID: then live events")
a3 = Sse(srv.port, "series=GOOG/1d&models=reversal", last_id="GOOG/1d:1:reversal")
g = a3.next(timeout=3)
check(g is not None and g["event"] == "gap" and "not held" in g["json"]["error"],
      "Last-Event-ID not held -> event: gap")
a3.close()

# ---- roll-up: 1h bars into a 4h series -------------------------------------------------------
r4 = Sse(srv.port, "series=RU/4h&models=reversal")
H = 3600
base = T0 - 400 * 86400  # 2008
rows = [[base + k * H] + [float(x) for x in goog[k][1:]] for k in range(4 * 30 + 1)]
refs = {}
for k, row in enumerate(rows):
    srv.post("/v1/candles", {"symbol": "RU", "timeframe": "1h", "candles": [row]})
    if k % 4 == 3:  # the bucket's last base bar: the 4h bar is complete, not yet closed
        js = predict(srv, "pattern", "RU", "4h", "reversal")
        refs[js["bar_time_ms"]] = js
ev_r = r4.take(30)
check(len(ev_r) == 30 and all(x["id"].startswith("RU/4h:") for x in ev_r),
      "roll-up: 30 closed 4h buckets from 121 1h bars (got %d)" % len(ev_r))
check(all(x["json"]["prediction"] == refs[x["json"]["bar_time_ms"]]["prediction"] and
          x["json"]["bar_time_ms"] % (4 * H * 1000) == 0 for x in ev_r),
      "roll-up: each 4h event equals /v1/predict on the complete bucket")
r4.close()

# ---- shutdown closes streams cleanly --------------------------------------------------------
t0 = time.time()
srv.proc.send_signal(signal.SIGTERM)
evs = b.take(10 ** 6, timeout=5)
check(evs and evs[-1]["event"] == "shutdown" and b.ended,
      "shutdown: event: shutdown, then the stream ends (%s)" % [x.get("event") for x in evs][-3:])
rc = srv.proc.wait(timeout=15)
check(rc == 0 and time.time() - t0 < 3, "shutdown: server exits 0 promptly (%.2f s)" % (time.time() - t0))

# ---- a slow consumer: overflow ------------------------------------------------------------------
srv2 = srvlib.Server("--stream-buffer", "1024")
slow = Sse(srv2.port, "series=*", rcvbuf=4096)
fast = Sse(srv2.port, "series=GOOG/1d")
time.sleep(0.2)
got_fast = []


def read_fast():
    fast.take(10 ** 6, timeout=3, into=got_fast)


reader = threading.Thread(target=read_fast)
reader.start()
# 900 bars of 3 symbols, two per post (a round: a few closed bars x 7 models <
# stream_buffer); the slow client (every series) reads nothing meanwhile: its ~11 MB
# of events exceed any socket buffer (tcp_wmem's maximum is 4 MB), then its queue fills
t0 = time.time()
ok = True
for i in range(0, 900, 2):
    for sym in ("GOOG", "GOOG2", "GOOG3"):
        ok &= srv2.post("/v1/candles", {"symbol": sym, "timeframe": "1d", "candles": [
            candle(i, goog[i]), candle(i + 1, goog[i + 1])]})[0] == 200
    if i % 40 == 38:  # pace the feed to the fast reader (sanitizer builds are slow)
        until = time.time() + 20
        while len(got_fast) < 7 * i and time.time() < until:
            time.sleep(0.005)
check(ok, "overflow: 3 x 900 bars ingested in 1350 posts (%.2f s)" % (time.time() - t0))
reader.join()
nm = len({x["json"]["model"] for x in got_fast if "json" in x})
check(len(got_fast) == 899 * nm and nm == 7 and all(x["event"] == "prediction" for x in got_fast),
      "overflow: the fast subscriber got every event (%d = 899 x %d)" % (len(got_fast), nm))
evs = slow.take(10 ** 6, timeout=10)
check(evs and evs[-1]["event"] == "overflow" and "stream_buffer" in evs[-1]["json"]["error"]
      and slow.ended and len(evs) < 3 * 899 * 7,
      "overflow: the slow subscriber got %d events, then event: overflow, and its stream ended"
      % (len(evs) - 1))
check(metric(srv2, "alphapulse_stream_overflows_total") == 1, "metrics: 1 overflow")
time.sleep(0.2)
check(metric(srv2, "alphapulse_stream_subscribers") == 1, "overflow: the slow subscriber is gone")
fast.close()
srv2.stop()

srvlib.finish()
