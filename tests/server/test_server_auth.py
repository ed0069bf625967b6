"""Security (issue 15): bearer tokens with roles, TLS, rate limits, and the
refusal to serve a non-loopback address open — against the real server.

The role matrix's expectations are the documented table (docs/SERVER.md,
Security), written out here by hand: every endpoint x no token, a bad
token and each role. With too low a role: 403; without a valid token: 401
with WWW-Authenticate: Bearer; with enough: whatever the endpoint answers,
never 401/403. The TLS round trip uses a certificate made here with
openssl and a client that verifies it (Python's ssl, and curl --cacert)."""
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import srvlib  # noqa: E402
from srvlib import check  # noqa: E402

work = srvlib.workdir()
TOK = {r: "%s-token-0123456789abcdef" % r for r in ("read", "predict", "ingest", "admin")}
tokfile = os.path.join(work, "tokens")


def write_tokens(lines):
    with open(tokfile, "w") as f:
        f.write("# TOKEN ROLE NAME\n" + "".join(lines))


write_tokens("%s %s %s-user\n" % (TOK[r], r, r) for r in TOK)
RANK = {"public": 0, "read": 1, "predict": 2, "ingest": 3, "admin": 4}
CANDLES = {"symbol": "GOOG", "timeframe": "1d", "candles": [[1600000000, 1, 2, 0.5, 1.5, 10]]}
PRED = {"symbol": "GOOG", "timeframe": "1d", "target": "reversal"}
INFER = {"inputs": [{"name": "input", "shape": [1, 14], "datatype": "FP64", "data": [0.0] * 14}]}
# (method, path, body, least role): docs/SERVER.md, Security
MATRIX = [
    ("GET", "/", None, "public"),
    ("GET", "/v2/health/live", None, "public"),
    ("GET", "/v2/health/ready", None, "public"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/v1/status", None, "read"),
    ("GET", "/v1/status?series=GOOG/1d", None, "read"),
    ("GET", "/v1/models", None, "read"),
    ("GET", "/v1/stats", None, "read"),
    ("GET", "/v2", None, "read"),
    ("GET", "/v2/models/reversal", None, "read"),
    ("GET", "/v2/models/reversal/ready", None, "read"),
    ("GET", "/v2/repository/index", None, "read"),
    ("GET", "/v2/", None, "read"),
    ("GET", "/v2/models/stats", None, "read"),
    ("GET", "/v2/models/reversal/stats", None, "read"),
    ("GET", "/v2/models/reversal/versions/2/stats", None, "read"),
    ("GET", "/v2/models/reversal/config", None, "read"),
    ("GET", "/v2/models/reversal/versions/2/config", None, "read"),
    ("GET", "/v1/nosuch", None, "read"),
    ("POST", "/v1/predict/pattern", PRED, "predict"),
    ("POST", "/v1/predict/regime", dict(PRED, target="bull"), "predict"),
    ("POST", "/v1/predict/ensemble", {"symbol": "GOOG", "timeframe": "1d"}, "predict"),
    ("POST", "/v1/predict/batch", {"requests": [dict(PRED, kind="pattern")]}, "predict"),
    ("GET", "/v1/results/12345", None, "predict"),
    ("DELETE", "/v1/results/12345", None, "predict"),
    ("POST", "/v2/models/reversal/infer", INFER, "predict"),
    ("HEAD", "/v1/stream?series=GOOG/1d", None, "predict"),  # HEAD: the stream's headers only
    ("POST", "/v1/candles", CANDLES, "ingest"),
    ("POST", "/v2/repository/models/reversal/load", {}, "admin"),
    ("DELETE", "/v1/series/NOPE/1d", None, "admin"),
]

srv = srvlib.Server("--auth-tokens-file", tokfile, "--access-log", "true",
                    "--replay", "GOOG/1d=" + os.path.join(srvlib.DATA, "goog_daily.csv"),
                    "--replay-speed", "0")
time.sleep(0.5)
bad = 0
for method, path, body, need in MATRIX:
    for who in [None, "bogus"] + list(TOK):
        hdr = {}
        if who == "bogus":
            hdr["Authorization"] = "Bearer not-a-real-token-0123456789"
        elif who:
            hdr["Authorization"] = "Bearer " + TOK[who]
        if path == "/":
            hdr["Accept"] = "text/html"  # the status page shell: public
        st, js, raw = srv.request(method, path, body=body, headers=hdr)
        if need == "public":
            ok = st not in (401, 403)
        elif who is None or who == "bogus":
            ok = st == 401
        elif RANK[who] < RANK[need]:
            ok = st == 403 and (method == "HEAD" or (need in js["error"] and
                                                     who + "-user" in js["error"]))
        else:
            ok = st not in (401, 403)
        if not ok:
            bad += 1
            print("  %s %s as %s -> %d %s" % (method, path, who, st, raw[:120]))
check(bad == 0, "role matrix: %d endpoints x (none, bad, 4 roles), %d wrong" % (len(MATRIX), bad))

c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
c.request("GET", "/v1/models")
r = c.getresponse()
r.read()
check(r.status == 401 and r.getheader("WWW-Authenticate", "").startswith("Bearer"),
      "401 carries WWW-Authenticate: Bearer (%s)" % r.getheader("WWW-Authenticate"))
c.request("GET", "/v1/models", headers={"Authorization": "Bearer " + TOK["read"]})
r = c.getresponse()
r.read()
check(r.status == 200, "the same keep-alive connection serves after a 401")
c.close()
log = srv.output()
check("token=read-user" in log and not any(t in log for t in TOK.values()),
      "access log names tokens (token=read-user), never shows one")

# ---- SIGHUP: reload the file ----------------------------------------------------------------
NEW = "rotated-token-0123456789abcdef"
write_tokens(["%s read rotated\n" % NEW, "%s admin admin-user\n" % TOK["admin"]])
srv.proc.send_signal(signal.SIGHUP)
time.sleep(0.5)
st1, _, _ = srv.get("/v1/models", headers={"Authorization": "Bearer " + TOK["read"]})
st2, _, _ = srv.get("/v1/models", headers={"Authorization": "Bearer " + NEW})
check(st1 == 401 and st2 == 200 and "SIGHUP: 2 token(s)" in srv.output(),
      "SIGHUP: the old read token is refused, the new one works (%d, %d)" % (st1, st2))
with open(tokfile, "w") as f:
    f.write("short read\n")
srv.proc.send_signal(signal.SIGHUP)
time.sleep(0.5)
st, _, _ = srv.get("/v1/models", headers={"Authorization": "Bearer " + NEW})
check(st == 200 and "previous tokens stay in force" in srv.output() and srv.proc.poll() is None,
      "SIGHUP with a bad file: logged, the tokens in force stay (%d)" % st)
check(srv.stop() == 0, "server exits 0")

# ---- rate limit --------------------------------------------------------------------------------
write_tokens(["%s read r\n" % TOK["read"], "%s admin a\n" % TOK["admin"]])
srv = srvlib.Server("--auth-tokens-file", tokfile, "--rate-limit-rps", "5")
h = {"Authorization": "Bearer " + TOK["read"]}
codes, retry = [], None
c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
for _ in range(12):
    c.request("GET", "/v1/models", headers=h)
    r = c.getresponse()
    r.read()
    codes.append(r.status)
    if r.status == 429:
        retry = r.getheader("Retry-After")
check(5 <= codes.count(200) <= 6 and codes.count(429) >= 6 and retry == "1",
      "rate limit 5/s: a burst of 12 -> %d x 200, %d x 429, Retry-After %s"
      % (codes.count(200), codes.count(429), retry))
st, _, _ = srv.get("/v1/models", headers={"Authorization": "Bearer " + TOK["admin"]})
check(st == 200, "another token has its own bucket")
time.sleep(1.05)
st, _, _ = srv.get("/v1/models", headers=h)
check(st == 200, "after Retry-After the token is served again")
st, _, _ = srv.get("/v2/health/ready")
check(st == 200, "health needs no token and is not limited")
srv.stop()

# ---- refusals at start ----------------------------------------------------------------------------


def start_fails(args, want, what):
    p = subprocess.run([srvlib.BIN, "serve", "--port", "0", "--grpc-port", "0", "--repository",
                        srvlib.REPO] + args,
                       capture_output=True, text=True, timeout=30)
    check(p.returncode != 0 and want in p.stderr, "%s (exit %d: %s)" % (what, p.returncode,
                                                                          p.stderr.strip()[-160:]))


start_fails(["--host", "0.0.0.0"], "without auth_tokens_file",
            "no tokens on a non-loopback address: refused")
start_fails(["--rate-limit-rps", "5"], "needs auth_tokens_file",
            "rate_limit_rps without tokens: refused (it would do nothing)")
start_fails(["--tls-cert-file", tokfile], "tls_key_file", "a certificate without a key: refused")
start_fails(["--auth-tokens-file", os.path.join(work, "missing")], "auth_tokens_file",
            "a missing tokens file: refused")
with open(os.path.join(work, "badtok"), "w") as f:
    f.write("%s superuser\n" % TOK["admin"])
start_fails(["--auth-tokens-file", os.path.join(work, "badtok")], "badtok:1: unknown role",
            "a bad tokens file: refused, naming file:line")
srv = srvlib.Server("--host", "0.0.0.0", "--allow-insecure", "true")
check("WARNING" in srv.output() and "without authentication" in srv.output(),
      "allow_insecure = true on 0.0.0.0: starts, and says so")
srv.stop()
srv = srvlib.Server("--host", "0.0.0.0", "--auth-tokens-file", tokfile)
check(srv.proc.poll() is None, "0.0.0.0 with tokens: starts")
srv.stop()

# ---- TLS -----------------------------------------------------------------------------------------
cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                "-out", cert, "-subj", "/CN=localhost", "-days", "2", "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
start_fails(["--tls-cert-file", tokfile, "--tls-key-file", key], "not a PEM file",
            "a certificate file that is not PEM: refused")
srv = srvlib.Server("--tls-cert-file", cert, "--tls-key-file", key,
                    "--replay", "GOOG/1d=" + os.path.join(srvlib.DATA, "goog_daily.csv"),
                    "--replay-speed", "0")
check("listening on https://" in srv.output(), "start-up line says https")
ctx = ssl.create_default_context(cafile=cert)
c = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=5)
ok = True
for _ in range(3):  # keep-alive over TLS
    c.request("POST", "/v1/predict/pattern", body=__import__("json").dumps(PRED))
    r = c.getresponse()
    ok &= r.status == 200 and b'"prediction"' in r.read()
c.close()
check(ok, "TLS: 3 predictions on one verified keep-alive connection")
if shutil.which("curl"):
    p = subprocess.run(["curl", "-sS", "--cacert", cert, "https://localhost:%d/v1/models" % srv.port],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 0 and '"reversal"' in p.stdout, "TLS: curl --cacert round trip")
    p = subprocess.run(["curl", "-sS", "https://localhost:%d/v1/models" % srv.port],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode != 0, "TLS: curl without the CA refuses the certificate")
s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
try:
    got = s.recv(4096)
except (ConnectionResetError, socket.timeout):
    got = b""
s.close()
check(not got.startswith(b"HTTP/1.1 200"), "plain HTTP to the TLS port is not served (%r)" % got[:40])
c = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=5)
c.request("GET", "/v1/stream?series=GOOG/1d&models=reversal")
r = c.getresponse()
check(r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream"),
      "TLS: /v1/stream answers an event stream")
c.close()
st = subprocess.run(["curl", "-s", "--cacert", cert, "-o", "/dev/null", "-w", "%{http_code}",
                     "https://localhost:%d/v2/health/live" % srv.port], capture_output=True,
                    text=True).stdout
check(st == "200", "TLS: the server still serves after the plain-HTTP attempt (%s)" % st)
check(srv.stop() == 0, "TLS server exits 0")

srvlib.finish()
