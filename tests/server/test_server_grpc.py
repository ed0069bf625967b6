#!/usr/bin/env python3
"""The gRPC front (inference.GRPCInferenceService, src/grpc) against the real
server, with Debian's python3-grpcio. Message classes come from our
proto/grpc_service.proto through `protoc --python_out` at test time (the
packaged grpc_tools is too old for protobuf 3.21); calls go through grpcio's
generic unary_unary with the method paths of the published protocol.

References: inference results are compared bitwise with the REST /v2 infer
of the same server (JSON numbers with 17 significant digits round-trip a
double exactly); the raw tensors are packed here with struct."""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import srvlib
from srvlib import check

import grpc

gen = tempfile.mkdtemp(dir=srvlib.workdir())
subprocess.run(["protoc", "-I" + os.path.join(srvlib.ROOT, "proto"), "--python_out=" + gen,
                os.path.join(srvlib.ROOT, "proto", "grpc_service.proto")], check=True)
sys.path.insert(0, gen)
import grpc_service_pb2 as pb  # noqa: E402

SVC = "/inference.GRPCInferenceService/"
RESP = {"ServerLive": pb.ServerLiveResponse, "ServerReady": pb.ServerReadyResponse,
        "ServerMetadata": pb.ServerMetadataResponse, "ModelReady": pb.ModelReadyResponse,
        "ModelMetadata": pb.ModelMetadataResponse, "ModelInfer": pb.ModelInferResponse,
        "ModelStatistics": pb.ModelStatisticsResponse,
        "RepositoryIndex": pb.RepositoryIndexResponse,
        "RepositoryModelLoad": pb.RepositoryModelLoadResponse,
        "RepositoryModelUnload": pb.RepositoryModelUnloadResponse}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Client:
    def __init__(self, port, token=None):
        self.ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        self.md = [("authorization", "Bearer " + token)] if token else None

    def call(self, name, req, timeout=10, **kw):
        f = self.ch.unary_unary(SVC + name, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=RESP.get(name, pb.ServerLiveResponse)
                                .FromString)
        return f(req, timeout=timeout, metadata=self.md, **kw)

    def error(self, name, req, **kw):
        """(code, details) of a call that must fail; (None, response) if it did not."""
        try:
            return None, self.call(name, req, **kw)
        except grpc.RpcError as e:
            return e.code(), e.details()


def infer_req(model, rows, dtype="FP64", raw=True, name="input", outputs=None, id=""):
    n, f = len(rows), len(rows[0])
    flat = [x for r in rows for x in r]
    t = pb.ModelInferRequest.InferInputTensor(name=name, datatype=dtype, shape=[n, f])
    rq = pb.ModelInferRequest(model_name=model, id=id, inputs=[t])
    t = rq.inputs[0]  # the request holds a copy
    if outputs:
        rq.outputs.extend(pb.ModelInferRequest.InferRequestedOutputTensor(name=o)
                          for o in outputs)
    if raw:
        rq.raw_input_contents.append(struct.pack("<%d%s" % (len(flat), "d" if dtype == "FP64"
                                                            else "f"), *flat))
    elif dtype == "FP64":
        t.contents.fp64_contents.extend(flat)
    else:
        t.contents.fp32_contents.extend(flat)
    return rq


def outputs_of(resp):
    """{name: (shape, values)} from raw_output_contents or typed contents."""
    out = {}
    for i, o in enumerate(resp.outputs):
        if resp.raw_output_contents:
            b = resp.raw_output_contents[i]
            vals = list(struct.unpack("<%dd" % (len(b) // 8), b))
        else:
            vals = list(o.contents.fp64_contents)
        out[o.name] = (list(o.shape), vals)
    return out


def same_bits(a, b):
    return len(a) == len(b) and all(struct.pack("<d", x) == struct.pack("<d", y)
                                    for x, y in zip(a, b))


gport = free_port()
srv = srvlib.Server("--grpc-port", str(gport), "--grpc-max-message-bytes", "65536")
check(("gRPC listening on 127.0.0.1:%d" % gport) in srv.output(), "start-up line names the "
      "gRPC port")
c = Client(gport)

# ---- health, metadata, readiness ------------------------------------------------------------
check(c.call("ServerLive", pb.ServerLiveRequest()).live, "ServerLive: live")
st, js, _ = srv.get("/v2/health/ready")
check(c.call("ServerReady", pb.ServerReadyRequest()).ready == (st == 200),
      "ServerReady agrees with GET /v2/health/ready (%d)" % st)
md = c.call("ServerMetadata", pb.ServerMetadataRequest())
st, js, _ = srv.get("/v2")
check(md.name == js["name"] == "alphapulse" and md.version == js["version"],
      "ServerMetadata: name and version as GET /v2 (%s %s)" % (md.name, md.version))
check(c.call("ModelReady", pb.ModelReadyRequest(name="bull")).ready, "ModelReady bull: ready")
check(not c.call("ModelReady", pb.ModelReadyRequest(name="nope")).ready,
      "ModelReady of an unknown model: not ready (no error)")
mm = c.call("ModelMetadata", pb.ModelMetadataRequest(name="bull"))
st, js, _ = srv.get("/v2/models/bull")
check(mm.name == "bull" and list(mm.versions) == js["versions"] and mm.platform == js["platform"],
      "ModelMetadata: name, versions, platform as REST (%s %s)" % (list(mm.versions), mm.platform))
check([(t.name, t.datatype, list(t.shape)) for t in mm.inputs] ==
      [(t["name"], t["datatype"], t["shape"]) for t in js["inputs"]] and
      [(t.name, t.datatype, list(t.shape)) for t in mm.outputs] ==
      [(t["name"], t["datatype"], t["shape"]) for t in js["outputs"]],
      "ModelMetadata: the input and output tensors as REST")
F = mm.inputs[0].shape[1]
code, det = c.error("ModelMetadata", pb.ModelMetadataRequest(name="nope"))
check(code == grpc.StatusCode.NOT_FOUND and "nope" in det, "ModelMetadata nope: NOT_FOUND (%s)"
      % det)
code, det = c.error("ModelMetadata", pb.ModelMetadataRequest(name="bull", version="x"))
check(code == grpc.StatusCode.INVALID_ARGUMENT, "a version that is not a number: "
      "INVALID_ARGUMENT (%s)" % det)

# ---- inference: parity with REST /v2, bitwise ---------------------------------------------------
rows = [[0.37 * (i + 1) - 0.11 * k for k in range(F)] for i in range(3)]
rows[1][0] = float("nan")  # a missing value (JSON null)
st, js, _ = srv.post("/v2/models/bull/infer", {"inputs": [{
    "name": "input", "datatype": "FP64", "shape": [3, F],
    "data": [None if x != x else x for r in rows for x in r]}]})
check(st == 200, "REST infer (the reference) -> 200")
ref = {o["name"]: (o["shape"], [float("nan") if v is None else v for v in o["data"]])
       for o in js["outputs"]}
for raw in (True, False):
    r = c.call("ModelInfer", infer_req("bull", rows, raw=raw, id="req-7"))
    got = outputs_of(r)
    check(r.model_name == "bull" and r.model_version == js["model_version"] and r.id == "req-7",
          "ModelInfer (%s): model, version, id echoed" % ("raw" if raw else "typed"))
    check(bool(r.raw_output_contents) == raw, "outputs come %s" % ("raw, as the inputs"
                                                                   if raw else "typed"))
    check(sorted(got) == sorted(ref) and all(got[k][0] == ref[k][0] and
                                             same_bits(got[k][1], ref[k][1]) for k in ref),
          "ModelInfer (%s FP64) equals REST infer bitwise: %s" % (
              "raw" if raw else "typed", {k: got[k][1][:2] for k in got}))
# FP32: rounded through float on both sides
st, js, _ = srv.post("/v2/models/bull/infer", {"inputs": [{
    "name": "input", "datatype": "FP32", "shape": [1, F], "data": rows[0]}]})
ref32 = {o["name"]: o["data"] for o in js["outputs"]}
for raw in (True, False):
    got = outputs_of(c.call("ModelInfer", infer_req("bull", [rows[0]], "FP32", raw=raw)))
    check(all(same_bits(got[k][1], ref32[k]) for k in ref32),
          "ModelInfer FP32 (%s) equals REST FP32 bitwise" % ("raw" if raw else "typed"))
got = c.call("ModelInfer", infer_req("bull", [rows[0]], outputs=["confidence"]))
check([o.name for o in got.outputs] == ["confidence"] and len(got.raw_output_contents) == 1,
      "requested outputs: only confidence")

# ---- inference errors -----------------------------------------------------------------------------
INV = grpc.StatusCode.INVALID_ARGUMENT
bad = [
    (infer_req("nope", rows), grpc.StatusCode.NOT_FOUND, "nope", "unknown model"),
    (infer_req("bull", [r[:-1] for r in rows]), INV, "shape", "shape [N, F-1]"),
    (infer_req("bull", rows, name="INPUT0"), INV, "INPUT0", "input named INPUT0"),
    (infer_req("bull", rows, outputs=["nope"]), INV, "nope", "unknown output"),
]
rq = infer_req("bull", rows)
rq.inputs[0].datatype = "BYTES"
bad.append((rq, INV, "BYTES", "datatype BYTES"))
rq = infer_req("bull", rows)
rq.raw_input_contents[0] = rq.raw_input_contents[0][:-8]
bad.append((rq, INV, "", "raw bytes one element short"))
rq = infer_req("bull", rows, raw=False)
rq.inputs[0].datatype = "FP32"  # the elements are in fp64_contents
bad.append((rq, INV, "", "FP32 declared, elements in fp64_contents"))
rq = infer_req("bull", rows)
rq.inputs[0].contents.fp64_contents.append(1.0)
bad.append((rq, INV, "one or the other", "contents and raw_input_contents both"))
rq = infer_req("bull", rows)
rq.parameters["mystery"].bool_param = True
bad.append((rq, INV, "mystery", "an unknown request parameter"))
for rq, want, text, what in bad:
    code, det = c.error("ModelInfer", rq)
    check(code == want and text in (det or ""), "%s: %s (%s)" % (what, want, det))

# ---- transport: unknown method, oversize, compression, deadline ----------------------------------
code, det = c.error("NoSuchRpc", pb.ServerLiveRequest())
check(code == grpc.StatusCode.UNIMPLEMENTED and "NoSuchRpc" in det,
      "unknown method: UNIMPLEMENTED (%s)" % det)
big = infer_req("bull", [[0.5] * F] * 4000)  # ~ 4000 * F * 8 bytes > 65536
code, det = c.error("ModelInfer", big)
check(code == grpc.StatusCode.RESOURCE_EXHAUSTED and "grpc_max_message_bytes" in det,
      "a %d-byte message over grpc_max_message_bytes: RESOURCE_EXHAUSTED (%s)"
      % (big.ByteSize(), det))
code, det = c.error("ModelInfer", infer_req("bull", rows), compression=grpc.Compression.Gzip)
check(code == grpc.StatusCode.UNIMPLEMENTED and "compress" in det,
      "a gzip-compressed message: UNIMPLEMENTED (%s)" % det)


def nghttp(path, body, headers):
    """One HTTP/2 request with nghttp2's own client (nghttp2-client): the
    response headers and trailers it prints, as text."""
    f = os.path.join(srvlib.workdir(), "body")
    with open(f, "wb") as fh:
        fh.write(body)
    cmd = ["nghttp", "-v", "-d", f] + [a for h in headers for a in ("-H", h)]
    p = subprocess.run(cmd + ["http://127.0.0.1:%d%s" % (gport, path)], capture_output=True,
                       timeout=20)
    return (p.stdout + p.stderr).decode("latin-1")


msg = infer_req("bull", rows).SerializeToString()
framed = struct.pack(">BI", 0, len(msg)) + msg
out = nghttp(SVC + "ModelInfer", framed, [":method: POST", "content-type: application/grpc",
                                         "grpc-timeout: 1n"])
check("grpc-status: 4" in out, "grpc-timeout 1n: DEADLINE_EXCEEDED from the server (%s)"
      % [ln for ln in out.splitlines() if "grpc-" in ln][:2])
out = nghttp(SVC + "ModelInfer", framed, [":method: POST", "content-type: application/grpc",
                                         "grpc-timeout: 5S"])
check("grpc-status: 0" in out, "grpc-timeout 5S: answered (OK)")
out = nghttp(SVC + "ModelInfer", framed, [":method: POST", "content-type: application/grpc",
                                         "grpc-timeout: soon"])
check("grpc-status: 3" in out, "a malformed grpc-timeout: INVALID_ARGUMENT")
out = nghttp(SVC + "ModelInfer", framed, [":method: POST", "content-type: application/json"])
check(":status: 415" in out, "content-type application/json: HTTP 415")
out = nghttp(SVC + "ModelInfer", framed + framed, [":method: POST",
                                                   "content-type: application/grpc"])
check("grpc-status: 13" in out, "two messages in a unary call: INTERNAL")
out = nghttp(SVC + "ModelInfer", b"\0\0\0\0\x09abc", [":method: POST",
                                                    "content-type: application/grpc"])
check("grpc-status: 13" in out, "a message cut short: INTERNAL")
out = nghttp(SVC + "ModelInfer", b"\0\x7f\xff\xff\xff", [":method: POST",
                                                       "content-type: application/grpc"])
check("grpc-status: 8" in out, "a prefix declaring 2 GB: RESOURCE_EXHAUSTED, nothing read")
check(c.call("ServerLive", pb.ServerLiveRequest()).live, "still live after the errors")

# ---- concurrency: many calls at once on one channel and on several -------------------------------
results, errors = [], []


def worker(k):
    cl = c if k % 2 else Client(gport)
    try:
        for j in range(20):
            r = outputs_of(cl.call("ModelInfer", infer_req("bull", [rows[0]])))
            results.append(r["prediction"][1][0])
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


ths = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
for t in ths:
    t.start()
for t in ths:
    t.join()
check(not errors and len(results) == 160 and
      all(same_bits([x], [ref["prediction"][1][0]]) for x in results),
      "160 concurrent calls (8 threads): every answer equals REST's (%s)" % errors[:1])

# ---- statistics, repository ------------------------------------------------------------------------
ms = c.call("ModelStatistics", pb.ModelStatisticsRequest(name="bull")).model_stats
st, js, _ = srv.get("/v2/models/bull/stats")
rs = js["model_stats"][0]
check(len(ms) == 1 and ms[0].name == "bull" and ms[0].inference_count == rs["inference_count"]
      and ms[0].execution_count == rs["execution_count"] and
      ms[0].inference_stats.success.count == rs["inference_stats"]["success"]["count"],
      "ModelStatistics bull as REST stats (inference_count %d)" % ms[0].inference_count)
check(ms[0].inference_count >= 3 + 3 + 2 + 1 + 160, "inference_count counts every row sent "
      "(%d)" % ms[0].inference_count)
allst = c.call("ModelStatistics", pb.ModelStatisticsRequest()).model_stats
check(len(allst) >= 1 and "bull" in [m.name for m in allst], "ModelStatistics of every model")
code, det = c.error("ModelStatistics", pb.ModelStatisticsRequest(name="nope"))
check(code == grpc.StatusCode.NOT_FOUND, "ModelStatistics nope: NOT_FOUND")
idx = c.call("RepositoryIndex", pb.RepositoryIndexRequest()).models
st, js, _ = srv.post("/v2/repository/index", {})
check([(m.name, m.version, m.state) for m in idx] ==
      [(m["name"], m.get("version", ""), m["state"]) for m in js],
      "RepositoryIndex as REST's index (%d models)" % len(idx))
c.call("RepositoryModelUnload", pb.RepositoryModelUnloadRequest(model_name="meta"))
idx = {m.name: m for m in c.call("RepositoryIndex", pb.RepositoryIndexRequest()).models}
check(idx["meta"].state == "UNAVAILABLE" and idx["meta"].reason, "after Unload: meta "
      "UNAVAILABLE (%s)" % idx["meta"].reason)
check(not c.call("ModelReady", pb.ModelReadyRequest(name="meta")).ready, "meta not ready")
ready = c.call("RepositoryIndex", pb.RepositoryIndexRequest(ready=True)).models
check("meta" not in [m.name for m in ready] and all(m.state == "READY" for m in ready),
      "RepositoryIndex ready=true: only READY models")
c.call("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="meta"))
check(c.call("ModelReady", pb.ModelReadyRequest(name="meta")).ready, "after Load: meta ready")
code, det = c.error("RepositoryModelLoad", pb.RepositoryModelLoadRequest(model_name="nope"))
check(code == grpc.StatusCode.NOT_FOUND, "Load nope: NOT_FOUND (%s)" % det)
check(srvlib.REPO not in (det or ""), "the load error names no server path")
code, det = c.error("RepositoryIndex", pb.RepositoryIndexRequest(repository_name="other"))
check(code == INV, "RepositoryIndex of a named repository: INVALID_ARGUMENT")
check(srv.stop() == 0, "server exits 0 (SIGTERM with gRPC channels open)")

# ---- idle connections: closed after connection_timeout, as on the HTTP port -----------------------
gport = free_port()
srv = srvlib.Server("--grpc-port", str(gport), "--connection-timeout", "1")
c = Client(gport)
check(c.call("ServerLive", pb.ServerLiveRequest()).live, "a channel works")
time.sleep(2.5)
check(c.call("ServerLive", pb.ServerLiveRequest()).live, "and again after its idle connection "
      "was closed (the client reconnects)")
srv.stop()

# ---- auth: tokens and roles apply to gRPC -----------------------------------------------------------
work = srvlib.workdir()
TOK = {r: "%s-token-0123456789abcdef" % r for r in ("read", "predict", "admin")}
tokfile = os.path.join(work, "tokens")
with open(tokfile, "w") as f:
    f.write("".join("%s %s %s-user\n" % (TOK[r], r, r) for r in TOK))
gport = free_port()
srv = srvlib.Server("--grpc-port", str(gport), "--auth-tokens-file", tokfile)
anon, rd, pr, ad = (Client(gport), Client(gport, TOK["read"]), Client(gport, TOK["predict"]),
                    Client(gport, "x" * 20))
check(anon.call("ServerLive", pb.ServerLiveRequest()).live, "ServerLive needs no token")
code, det = anon.error("ModelMetadata", pb.ModelMetadataRequest(name="bull"))
check(code == grpc.StatusCode.UNAUTHENTICATED and "none was sent" in det,
      "no token: UNAUTHENTICATED (%s)" % det)
code, det = ad.error("ModelMetadata", pb.ModelMetadataRequest(name="bull"))
check(code == grpc.StatusCode.UNAUTHENTICATED, "an unknown token: UNAUTHENTICATED")
check(rd.call("ModelMetadata", pb.ModelMetadataRequest(name="bull")).name == "bull",
      "read token: ModelMetadata")
code, det = rd.error("ModelInfer", infer_req("bull", [rows[0]]))
check(code == grpc.StatusCode.PERMISSION_DENIED and "predict" in det,
      "read token: ModelInfer PERMISSION_DENIED (%s)" % det)
check(len(pr.call("ModelInfer", infer_req("bull", [rows[0]])).outputs) == 3,
      "predict token: ModelInfer")
code, det = pr.error("RepositoryModelUnload", pb.RepositoryModelUnloadRequest(model_name="bear"))
check(code == grpc.StatusCode.PERMISSION_DENIED, "predict token: Unload PERMISSION_DENIED")
check(Client(gport, TOK["admin"]).call("RepositoryModelLoad", pb.RepositoryModelLoadRequest(
      model_name="bear")) is not None, "admin token: Load")
srv.stop()

# ---- start-up refusals ---------------------------------------------------------------------------------
p = subprocess.run([srvlib.BIN, "serve", "--port", "0", "--repository", srvlib.REPO, "--host",
                    "0.0.0.0", "--auth-tokens-file", tokfile, "--grpc-port", str(free_port())],
                   capture_output=True, text=True, timeout=30)
check(p.returncode != 0 and "refusing gRPC" in p.stderr and "plaintext" in p.stderr,
      "gRPC on 0.0.0.0 without allow_insecure: refused even with tokens (%s)"
      % p.stderr.strip()[-120:])
p = subprocess.run([srvlib.BIN, "serve", "--port", "18555", "--grpc-port", "18555",
                    "--repository", srvlib.REPO], capture_output=True, text=True, timeout=30)
check(p.returncode != 0 and "grpc_port" in p.stderr, "grpc_port = port: refused")

if srvlib.failures:
    print("%d FAILED" % len(srvlib.failures))
    sys.exit(1)
print("all passed")
