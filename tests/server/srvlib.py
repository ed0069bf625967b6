"""Helpers for the server integration tests: start `alphapulse serve` on a free
loopback port (port 0; the port is read back from its start-up line), talk
HTTP with http.client, always kill the server at exit."""
import atexit
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("AP_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("AP_BIN") or os.path.join(ROOT, "build", "alphapulse")
REPO = os.path.join(ROOT, "examples", "models")
DATA = os.path.join(ROOT, "examples", "data")

_procs = []
failures = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)


def workdir():
    d = os.path.join(ROOT, "build", "test-server")
    os.makedirs(d, exist_ok=True)
    return tempfile.mkdtemp(dir=d)


class Server:
    def __init__(self, *args, env=None, wait=True):
        self.log_path = os.path.join(workdir(), "server.log")
        self.log = open(self.log_path, "w+")
        e = {k: v for k, v in os.environ.items()
             if not (k.startswith("AP_") and k not in ("AP_ROOT", "AP_BIN"))}
        e.update(env or {})
        # SERVER_TEST_ARGS: extra options for every server a test starts
        extra = os.environ.get("SERVER_TEST_ARGS", "").split()
        # --grpc-port 0: tests run several servers at once, none may take 8001
        # (a test that wants gRPC passes its own --grpc-port later, which wins)
        cmd = [BIN, "serve", "--port", "0", "--grpc-port", "0", "--repository", REPO] + \
            list(args) + extra
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=ROOT, env=e)
        _procs.append(self.proc)
        self.port = None
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=15):
        t0 = time.time()
        while time.time() - t0 < timeout:
            text = open(self.log_path).read()
            m = re.search(r"listening on https?://[^:]+:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("server exited at start:\n" + text)
            time.sleep(0.02)
        raise RuntimeError("server did not start:\n" + open(self.log_path).read())

    def output(self):
        return open(self.log_path).read()

    def request(self, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            js = json.loads(data) if data else None
        except ValueError:
            js = None
        return r.status, js, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body if body is not None else "", **kw)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def check(cond, what):
    """Record one assertion; print it either way."""
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def raw_socket(port, data, timeout=5):
    """Send raw bytes, return what comes back until the server closes or stalls."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def finish():
    if failures:
        print("\n%d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print("\nall checks passed")
    sys.exit(0)
