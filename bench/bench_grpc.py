#!/usr/bin/env python3
"""gRPC vs HTTP, single-row /v2 infer (issue 19): the same server, the same
model (bull), the same row, the same concurrency; Python clients on both
sides (grpcio's generic unary_unary with raw_input_contents, and
http.client keep-alive POSTing the REST JSON body), so the difference is the
transport and the encoding, not the client language. Both answers are
checked equal first. Prints req/s and mean µs per request.

  bench/bench_grpc.py [SECONDS] [CONCURRENCY...]     (default 3 s, 1 and 8)
"""
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import grpc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, "build", "alphapulse")
secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
concs = [int(x) for x in sys.argv[2:]] or [1, 8]

gen = tempfile.mkdtemp()
subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "--python_out=" + gen,
                os.path.join(ROOT, "proto", "grpc_service.proto")], check=True)
sys.path.insert(0, gen)
import grpc_service_pb2 as pb  # noqa: E402

s = socket.socket()
s.bind(("127.0.0.1", 0))
gport = s.getsockname()[1]
s.close()
log = tempfile.NamedTemporaryFile("w+", delete=False)
proc = subprocess.Popen([BIN, "serve", "--port", "0", "--grpc-port", str(gport), "--repository",
                         os.path.join(ROOT, "examples", "models")], stdout=log,
                        stderr=subprocess.STDOUT, cwd=ROOT)
try:
    port = None
    for _ in range(300):
        m = re.search(r"listening on http://[^:]+:(\d+)", open(log.name).read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.02)
    assert port, open(log.name).read()
    ch0 = grpc.insecure_channel("127.0.0.1:%d" % gport)
    meta = ch0.unary_unary("/inference.GRPCInferenceService/ModelMetadata",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=pb.ModelMetadataResponse.FromString)(
        pb.ModelMetadataRequest(name="bull"), timeout=10)
    F = meta.inputs[0].shape[1]
    row = [0.01 * (k + 1) for k in range(F)]
    greq = pb.ModelInferRequest(
        model_name="bull", inputs=[pb.ModelInferRequest.InferInputTensor(
            name="input", datatype="FP64", shape=[1, F])],
        raw_input_contents=[struct.pack("<%dd" % F, *row)])
    hbody = json.dumps({"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, F],
                                    "data": row}]})

    def grpc_client():
        ch = grpc.insecure_channel("127.0.0.1:%d" % gport)
        f = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=pb.ModelInferResponse.FromString)

        def one():
            r = f(greq, timeout=10)
            return struct.unpack("<d", r.raw_output_contents[0])[0]
        return one

    def http_client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def one():
            c.request("POST", "/v2/models/bull/infer", body=hbody,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return json.loads(r.read())["outputs"][0]["data"][0]
        return one

    a, b = grpc_client()(), http_client()()
    assert a == b, (a, b)

    def run(make, conc):
        counts, lat = [0] * conc, [0.0] * conc
        stop = time.monotonic() + secs

        def w(i):
            one = make()
            one()  # connect outside the clock
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                one()
                lat[i] += time.perf_counter() - t0
                counts[i] += 1
        ths = [threading.Thread(target=w, args=(i,)) for i in range(conc)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        el = time.monotonic() - t0
        n = sum(counts)
        return n / el, sum(lat) / n * 1e6

    print("bench: gRPC vs HTTP single-row infer (bull, %d features; %g s per run; python "
          "clients)" % (F, secs))
    for conc in concs:
        for name, make in (("gRPC", grpc_client), ("HTTP", http_client)):
            rps, us = run(make, conc)
            print("  %-4s concurrency %2d: %8.0f req/s  %8.0f us/request" % (name, conc, rps, us))
finally:
    proc.terminate()
    proc.wait()
    os.unlink(log.name)
