"""Scale-out on Redis Streams (docs/SCALE_OUT.md), against a redis-server of
its own and a single `serve` node as the reference:
  1. 3 workers, 20 symbols x 2 timeframes (4h + its 1d roll-up) of real bars;
     one worker kill -9'd in the middle: every (series, closed bar, model) has
     exactly one signal, bitwise the single node's; nothing left pending.
  2. the same with a worker joining late and one restarted (SIGTERM + start).
  3. Redis restarted under a running worker (SHUTDOWN SAVE, start again), and
     hostile entries in the bar streams: refused into ap:bars:dead with their
     reason, the partition goes on, and still nothing lost or doubled."""
import http.client
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import scale_util as u  # noqa: E402

NSYM, NBARS = 20, 240


def pending_total(r):
    n = 0
    for p in range(8):
        try:
            n += int(r.cmd("XPENDING", "ap:bars:%d" % p, "ap:workers")[0])
        except RuntimeError:
            pass
    return n


def settle(r, want, timeout=40):
    n = u.wait_signals(r, want, timeout)
    time.sleep(0.5)  # nothing more may come
    t0 = time.time()
    while pending_total(r) and time.time() - t0 < 10:
        time.sleep(0.1)
    return n


def scenario_kill(redis, specs, ref, tmp, want):
    r = redis.client()
    ws = [u.Worker(redis, "k%d" % i, tmp) for i in range(3)]
    time.sleep(1.2)  # they see each other and share the 8 partitions
    pub = u.publish(redis, specs, rate=2500)
    time.sleep(1.0)
    before = r.cmd("XLEN", "ap:signals")
    ws[1].kill9()
    t_kill = time.time()
    assert pub.wait(30) == 0, pub.stderr.read()
    n = settle(r, want)
    print("kill: %d signals before the kill, %d at the end (want %d), %.1f s after it"
          % (before, n, want, time.time() - t_kill))
    assert 0 < before < want, "the kill was not in the middle (%d of %d)" % (before, want)
    u.check(u.signals(r), ref)
    assert pending_total(r) == 0
    for w in (ws[0], ws[2]):
        assert w.term() == 0


def scenario_join_restart(redis, specs, ref, tmp, want):
    r = redis.client()
    ws = [u.Worker(redis, "j%d" % i, tmp) for i in range(2)]
    time.sleep(1.2)
    pub = u.publish(redis, specs, rate=2500)
    time.sleep(0.8)
    late = u.Worker(redis, "j2", tmp)  # joins late: takes its share
    time.sleep(1.0)
    assert ws[0].term() == 0  # restarted: stops cleanly, gives its leases back...
    ws[0] = u.Worker(redis, "j0", tmp)  # ...and comes back under its name
    assert pub.wait(30) == 0, pub.stderr.read()
    n = settle(r, want)
    print("join/restart: %d signals (want %d)" % (n, want))
    u.check(u.signals(r), ref)
    assert pending_total(r) == 0
    for w in ws + [late]:
        assert w.term() == 0
    log = open(os.path.join(tmp, "j2.log")).read()
    assert "live" in log, "the late node took no partition"


HOSTILE = [  # fields, a word of the reason
    ({"symbol": "S00", "timeframe": "4h", "t": "1", "open": "1"}, "missing"),
    ({"symbol": "S00", "timeframe": "4h", "t": "abc", "open": "1", "high": "1", "low": "1",
      "close": "1", "volume": "1"}, "integer"),
    ({"symbol": "S00", "timeframe": "4h", "t": "1000", "open": "x1", "high": "1", "low": "1",
      "close": "1", "volume": "1"}, "finite number"),
    ({"symbol": "S00", "timeframe": "7x", "t": "1000", "open": "1", "high": "1", "low": "1",
      "close": "1", "volume": "1"}, "timeframe"),
    ({"symbol": "S00", "timeframe": "4h", "t": "1000", "open": "1e300", "high": "1e300",
      "low": "1", "close": "1", "volume": "1"}, "beyond"),
    ({"symbol": "S00", "timeframe": "4h", "t": "1000", "open": "1", "high": "1", "low": "1",
      "close": "1", "volume": "1"}, "older"),  # out of order: 1970, after real bars
    ({"symbol": "S00", "timeframe": "4h", "t": "1000", "open": "1", "high": "1", "low": "1",
      "close": "1", "volume": "1", "extra": "1"}, "unknown field"),
]


def scenario_redis_restart(redis, specs, ref, tmp):
    r = redis.client()
    names = sorted(specs)[:4]
    first = {s: (specs[s][0] + ".a", specs[s][1][:120]) for s in names}
    second = {s: (specs[s][0] + ".b", specs[s][1][120:]) for s in names}
    for half in (first, second):
        for s, (path, rows) in half.items():
            with open(path, "w") as f:
                f.write("timestamp,open,high,low,close,volume\n")
                f.writelines(",".join(x) + "\n" for x in rows)
    w = u.Worker(redis, "r0", tmp, port=True)
    time.sleep(1.0)
    assert u.publish(redis, first, names=names).wait(30) == 0
    p0 = u.ap_partition("S00", 8)
    for fields, _ in HOSTILE:
        flat = [x for kv in fields.items() for x in kv]
        r.cmd("XADD", "ap:bars:%d" % p0, "*", *flat)
    half = sum(u.expected_closed(rows) for _, rows in first.values()) * u.NMODELS
    u.wait_signals(r, half - 4 * u.NMODELS, 30)  # the last bars still form
    r.close()
    redis.restart(down_s=1.5)
    r = redis.client()
    assert u.publish(redis, second, names=names).wait(30) == 0
    want = sum(u.expected_closed(specs[s][1]) for s in names) * u.NMODELS
    n = settle(r, want)
    print("redis restart: %d signals (want %d)" % (n, want))
    u.check(u.signals(r), ref, subset=set(names))
    dead = r.cmd("XRANGE", "ap:bars:dead", "-", "+")
    reasons = [dict(zip(f[::2], f[1::2]))["reason"] for _, f in dead]
    print("dead letters:", reasons)
    assert len(reasons) == len(HOSTILE), reasons
    for (_, word), why in zip(HOSTILE, reasons):
        assert word in why, (word, why)
    assert pending_total(r) == 0
    log = open(os.path.join(tmp, "r0.log")).read()
    port = int(re.search(r"listening on http://127.0.0.1:(\d+)", log).group(1))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    m = c.getresponse().read().decode()
    val = {ln.split()[0]: float(ln.split()[1]) for ln in m.splitlines()
           if ln.startswith("alphapulse_redis_") and "{" not in ln}
    assert val["alphapulse_redis_reconnects_total"] >= 1, val
    assert val["alphapulse_redis_dead_lettered_total"] == len(HOSTILE), val
    assert val["alphapulse_redis_signals_total"] == want, val
    assert w.term() == 0
    assert "refused" in open(os.path.join(tmp, "r0.log")).read()


def scenario_refusals(redis):
    """Settings that cannot work are refused at start, naming what is wrong."""
    import subprocess

    def run(*args):
        p = subprocess.run([u.BIN] + list(args), capture_output=True, text=True, timeout=30)
        return p.returncode, p.stderr

    rc, err = run("serve", "--redis", redis.url, "--port", "0")
    assert rc == 2 and "alphapulse worker" in err, (rc, err)
    rc, err = run("worker", "--repository", u.REPO)
    assert rc == 1 and "redis is required" in err, (rc, err)
    rc, err = run("worker", "--redis", "http://x", "--repository", u.REPO)
    assert rc == 1 and "redis://HOST" in err, (rc, err)
    redis.client().cmd("SET", "ap:partitions", "8")
    rc, err = run("worker", "--redis", redis.url, "--partitions", "5", "--repository", u.REPO)
    assert rc == 1 and "same count" in err, (rc, err)
    rc, err = run("publish", "--redis", redis.url, "--partitions", "5", "--bars",
                  "X/4h=" + u.MARKET)
    assert rc == 1 and "same count" in err, (rc, err)
    rc, err = run("publish", "--redis", redis.url, "--bars", "X=" + u.MARKET)
    assert rc == 2 and "SYMBOL/TF=FILE" in err, (rc, err)


def main():
    tmp = tempfile.mkdtemp(prefix="ap_scale_")
    specs = u.make_bars(tmp, NSYM, NBARS)
    want = sum(u.expected_closed(p) for _, p in specs.values()) * u.NMODELS
    t0 = time.time()
    ref = u.reference(specs, tmp)
    print("reference: %d signals from one serve node in %.1f s" % (len(ref), time.time() - t0))
    # a sanitizer build runs the kill scenario alone (the test budget)
    only = sys.argv[1] if len(sys.argv) > 1 else (
        "kill" if "/asan/" in u.BIN or "/tsan/" in u.BIN else None)
    redis = u.Redis()
    try:
        for name, fn in (("refusals", lambda: scenario_refusals(redis)),
                         ("kill", lambda: scenario_kill(redis, specs, ref, tmp, want)),
                         ("join_restart",
                          lambda: scenario_join_restart(redis, specs, ref, tmp, want)),
                         ("redis_restart",
                          lambda: scenario_redis_restart(redis, specs, ref, tmp))):
            if only and only not in name:
                continue
            redis.client().cmd("FLUSHALL")
            t = time.time()
            fn()
            print("PASS %s %.1f s" % (name, time.time() - t))
    finally:
        for w in u.STARTED:
            w.kill_if_running()
        redis.stop()
    shutil.rmtree(tmp, ignore_errors=True)  # kept when a scenario failed: its logs


if __name__ == "__main__":
    main()
