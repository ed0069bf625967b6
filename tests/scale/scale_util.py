"""Helpers of the scale-out tests: a redis-server of their own, a tiny RESP
client (no python3-redis needed), the bars, and the reference signals of one
`alphapulse serve` node (POST /v1/candles + GET /v1/stream)."""
import csv
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.environ.get("AP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AP_BIN", os.path.join(ROOT, "build", "alphapulse"))
REPO = os.path.join(ROOT, "examples", "models")
MARKET = os.path.join(ROOT, "tests", "data", "market", "usdchf_4h.csv")
NMODELS = 7  # examples/models, every one streamable


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Resp:
    """RESP2 over one socket: enough for the tests' commands."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def close(self):
        self.s.close()


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ap_redis_")
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                c = Resp(self.port)
                c.cmd("PING")
                c.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart(self, down_s=1.0):
        """SHUTDOWN SAVE (the data stays, as in any persistent setup), wait, start again."""
        c = Resp(self.port)
        try:
            c.cmd("SHUTDOWN", "SAVE")
        except (ConnectionError, OSError):
            pass
        self.proc.wait(10)
        time.sleep(down_s)
        self.start()

    def client(self):
        return Resp(self.port)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_bars(tmp, nsym, nbars):
    """nsym symbols of real 4h bars (USD/CHF, tests/data/market), each its own
    slice of the file; their 4h series roll up into 1d: 2 timeframes each."""
    with open(MARKET) as f:
        rows = list(csv.reader(f))
    head, rows = rows[0], rows[1:]
    specs = {}
    for i in range(nsym):
        sym = "S%02d" % i
        part = rows[i * 150: i * 150 + nbars]
        path = os.path.join(tmp, sym + ".csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(head)
            w.writerows(part)
        specs[sym] = (path, part)
    return specs


STARTED = []  # every worker started, killed at the end by its pid


class Worker:
    def __init__(self, redis, name, log_dir, lease_ms=1000, port=False, extra=()):
        self.name = name
        STARTED.append(self)
        self.log = open(os.path.join(log_dir, name + ".log"), "ab")
        args = [BIN, "worker", "--redis", redis.url, "--repository", REPO, "--name", name,
                "--lease_ms", str(lease_ms), "--partitions", "8", "--workers", "1"]
        if port:
            args += ["--port", "0"]
        self.proc = subprocess.Popen(args + list(extra), stdout=self.log, stderr=self.log)

    def kill_if_running(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def term(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode


def publish(redis, specs, rate=0, names=None):
    items = ",".join("%s/4h=%s" % (s, specs[s][0]) for s in (names or sorted(specs)))
    args = [BIN, "publish", "--redis", redis.url, "--bars", items, "--partitions", "8"]
    if rate:
        args += ["--rate", str(rate)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def signals(r):
    """ap:signals as {(symbol, tf, bar_ms, model): [(prediction, confidence, version, node)]}."""
    out = {}
    last = "-"
    while True:
        page = r.cmd("XRANGE", "ap:signals", last, "+", "COUNT", "10000")
        for eid, flat in page:
            d = dict(zip(flat[::2], flat[1::2]))
            k = (d["symbol"], d["timeframe"], int(d["bar_time_ms"]), d["model"])
            out.setdefault(k, []).append((float(d["prediction"]), float(d["confidence"]),
                                          int(d["version"]), d["node"]))
        if len(page) < 10000:
            return out
        last = "(" + page[-1][0]


def wait_signals(r, want, timeout):
    t0 = time.time()
    n = 0
    while time.time() - t0 < timeout:
        n = r.cmd("XLEN", "ap:signals")
        if n >= want:
            return n
        time.sleep(0.2)
    return n


def reference(specs, tmp):
    """The signals one `serve` node gives for the same bars: {key: (pred, conf)}."""
    port = free_port()
    log = open(os.path.join(tmp, "serve.log"), "ab")
    p = subprocess.Popen([BIN, "serve", "--port", str(port), "--repository", REPO,
                          "--stream_buffer", "1000000", "--stream_queue", "1000000"],
                         stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/health")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.05)
        want = sum(expected_closed(part) for _, part in specs.values()) * NMODELS
        got = {}
        sc = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        sc.request("GET", "/v1/stream?series=*&models=*")
        resp = sc.getresponse()
        assert resp.status == 200, resp.status
        done = threading.Event()

        def read():
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    d = json.loads(line[6:])
                    if "prediction" in d:
                        got[(d["symbol"], d["timeframe"], d["bar_time_ms"], d["model"])] = (
                            d["prediction"], d["confidence"])
                        if len(got) >= want:
                            break
            done.set()

        th = threading.Thread(target=read, daemon=True)
        th.start()
        time.sleep(0.3)
        for sym, (_, part) in sorted(specs.items()):
            body = json.dumps({"symbol": sym, "timeframe": "4h", "candles": [
                [int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])]
                for r in part]})
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/v1/candles", body, {"Content-Type": "application/json"})
            res = c.getresponse()
            assert res.status == 200, res.read()
            res.read()
        done.wait(60)
        assert len(got) == want, (len(got), want)
        return got
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(20)


def expected_closed(part):
    """Closed bars, counted by hand: every 4h bar but the last, and every UTC
    day bucket of them but the last (its bar is still forming)."""
    days = sorted({int(r[0]) // 86400 for r in part})
    return (len(part) - 1) + (len(days) - 1)


def check(sig, ref, subset=None):
    """Exactly one signal per (series, closed bar, model), each bitwise the reference's."""
    ref = {k: v for k, v in ref.items() if subset is None or k[0] in subset}
    extra = set(sig) - set(ref)
    assert not extra, "signals the reference lacks: %s" % sorted(extra)[:5]
    missing = set(ref) - set(sig)
    assert not missing, "%d missing, e.g. %s" % (len(missing), sorted(missing)[:5])
    twice = [k for k, v in sig.items() if len(v) != 1]
    assert not twice, "%d published more than once, e.g. %s" % (len(twice), twice[:3])
    for k, v in sig.items():
        p, c = ref[k]
        assert v[0][0] == p and v[0][1] == c, (k, v[0], (p, c))


def ap_partition(symbol, P):
    """FNV-1a 32 of the symbol mod P (docs/SCALE_OUT.md), written again here."""
    h = 2166136261
    for b in symbol.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h % P
