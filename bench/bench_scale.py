"""Scale-out bench (docs/SCALE_OUT.md, docs/BENCHMARKS.md): end-to-end
signals/s with 1, 2 and 3 workers (bars already in the partition streams,
from the start of the workers to the last signal in ap:signals), and the
take-over time after a kill -9 (kill -> the survivor has made every
partition of the dead node live again: alphapulse_redis_takeovers_total).
Uses a redis-server of its own; tests/scale/scale_util.py does the work."""
import http.client
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "scale"))
import scale_util as u  # noqa: E402

NSYM = int(os.environ.get("BENCH_SCALE_SYMBOLS", "20"))
NBARS = int(os.environ.get("BENCH_SCALE_BARS", "360"))
LEASE = int(os.environ.get("BENCH_SCALE_LEASE_MS", "1000"))


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    for ln in c.getresponse().read().decode().splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return 0.0


def port_of(tmp, name):
    for _ in range(200):
        m = re.search(r"listening on http://127.0.0.1:(\d+)",
                      open(os.path.join(tmp, name + ".log")).read())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise RuntimeError("no port in the log of " + name)


def main():
    tmp = tempfile.mkdtemp(prefix="ap_bench_scale_")
    specs = u.make_bars(tmp, NSYM, NBARS)
    want = sum(u.expected_closed(p) for _, p in specs.values()) * u.NMODELS
    nbars = NSYM * NBARS
    redis = u.Redis()
    try:
        for k in (1, 2, 3):
            r = redis.client()
            r.cmd("FLUSHALL")
            assert u.publish(redis, specs).wait(60) == 0
            t0 = time.time()
            ws = [u.Worker(redis, "b%d_%d" % (k, i), tmp, lease_ms=LEASE) for i in range(k)]
            n = u.wait_signals(r, want, 120)
            dt = time.time() - t0
            assert n == want, (n, want)
            print("scale: %d worker(s): %d bars, %d signals in %.2f s (incl. start and the "
                  "first lease round): %.0f signals/s, %.0f bars/s"
                  % (k, nbars, want, dt, want / dt, nbars / dt))
            for w in ws:
                w.term()
        # take-over: 2 nodes share the partitions, one is killed
        r = redis.client()
        r.cmd("FLUSHALL")
        a = u.Worker(redis, "ta", tmp, lease_ms=LEASE, port=True)
        b = u.Worker(redis, "tb", tmp, lease_ms=LEASE)
        pa = port_of(tmp, "ta")
        time.sleep(3 * LEASE / 1000)
        assert u.publish(redis, specs).wait(60) == 0
        u.wait_signals(r, want, 60)
        owned_b = sum(1 for p in range(8) if r.cmd("GET", "ap:lease:%d" % p) == "tb")
        base = metric(pa, "alphapulse_redis_takeovers_total")
        b.kill9()
        t0 = time.time()
        while metric(pa, "alphapulse_redis_takeovers_total") < base + owned_b:
            if time.time() - t0 > 10 * LEASE / 1000:
                raise RuntimeError("no take-over")
            time.sleep(0.01)
        dt = time.time() - t0
        print("scale: take-over after kill -9: %d partitions live on the survivor %.2f s "
              "after the kill (lease_ms %d: %.2f x the lease; rebuild of the last step %.3f s)"
              % (owned_b, dt, LEASE, dt * 1000 / LEASE,
                 metric(pa, "alphapulse_redis_takeover_seconds")))
        a.term()
    finally:
        for w in u.STARTED:
            w.kill_if_running()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
