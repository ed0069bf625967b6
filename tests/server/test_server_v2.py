"""Open Inference Protocol clients, unchanged (issue 19, HTTP): the bodies
tritonclient.http and the KServe Python SDK build, byte for byte as their
sources build them (neither is packaged here), on loopback.

  1  readiness: 503 {"ready": false} while a repository model failed to load,
     200 once it loads; the index lists it UNAVAILABLE with a reason that holds
     no server path, {"ready": true} only the READY ones
  2  GET /v2 and /v2/: the extensions
  3  tritonclient.http's default infer: JSON header + raw little-endian tensor
     bytes (Inference-Header-Content-Length), binary_data_output; binary
     outputs decoded here with struct and compared with the JSON path (which
     test_server_api checks against check-repo); every input datatype
  4  the KServe SDK's body: uuid id, model_name, compact JSON; id echoed, even
     empty; model_name / model_version must match; typos still refused
  5  statistics (deltas of counts against what this test sent), configuration
  6  Content-Encoding gzip / deflate (tritonclient's request compression),
     415, a gzip bomb 413, a truncated stream 400; 405 with Allow
  7  every response kind validated against the protocol's REST schema
     (tests/server/oip_rest_schema.json) with python3-jsonschema
"""
import gzip
import http.client
import json
import os
import shutil
import struct
import sys
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import REPO, Server, check, finish, workdir  # noqa: E402

import jsonschema  # noqa: E402

SCHEMA = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "oip_rest_schema.json")))


def valid(obj, kind, what):
    s = {"$ref": "#/$defs/" + kind, "$defs": SCHEMA["$defs"]}
    try:
        jsonschema.validate(obj, s)
        return check(True, "schema %s: %s" % (kind, what))
    except jsonschema.ValidationError as e:
        return check(False, "schema %s: %s: %s" % (kind, what, e.message))


work = workdir()
repo = os.path.join(work, "repo")
shutil.copytree(REPO, repo, symlinks=True)
os.makedirs(os.path.join(repo, "broken"))
shutil.copytree(os.path.join(REPO, "reversal", "2"), os.path.join(repo, "broken", "1"))
man = json.load(open(os.path.join(REPO, "reversal", "manifest.json")))
man.update(name="broken", target="broken")
json.dump(man, open(os.path.join(repo, "broken", "manifest.json"), "w"))
broken_file = os.path.join(repo, "broken", "1", "model.json")
good_model = open(broken_file, "rb").read()
open(broken_file, "w").write('{"learner": ')  # truncated: refused at start

srv = Server("--repository", repo)


def req(method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdr = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdr, data


def js(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


# ---- 1. readiness, index, no server paths ------------------------------------------
st, h, d = req("GET", "/v2/health/ready")
check(st == 503 and js(d)["ready"] is False and "broken" in js(d)["error"],
      "ready while 'broken' failed to load -> 503 %s" % d)
valid(js(d), "server_ready_response", "ready (not ready)")
st, h, d = req("GET", "/v2/health/live")
check(st == 200 and js(d) == {"live": True}, "live -> 200")
valid(js(d), "server_live_response", "live")
st, h, d = req("POST", "/v2/repository/index", b"{}")
idx = {m["name"]: m for m in js(d)}
reason = idx["broken"].get("reason", "")
check(idx["broken"]["state"] == "UNAVAILABLE" and "model.json" in reason,
      "index: broken UNAVAILABLE with a reason (%s)" % reason)
check(work not in reason and not reason.startswith("/") and reason.startswith("broken/1/"),
      "index reason has no server path (%s)" % reason)
valid(js(d), "repository_index_response", "index")
st, h, d = req("POST", "/v2/repository/index", b'{"ready": true}')
check(st == 200 and js(d) and all(m["state"] == "READY" for m in js(d))
      and "broken" not in [m["name"] for m in js(d)], "index {ready: true}: only READY")
st, h, d = req("POST", "/v2/repository/index", b'{"ready": 1}')
check(st == 400, "index {ready: 1} -> 400")
valid(js(d), "error_response", "index error")
st, h, d = req("POST", "/v2/repository/models/broken/load")
check(st >= 400 and work not in js(d)["error"] and "broken/1/model.json" in js(d)["error"],
      "load of a corrupt model: the error has no server path (%d %s)" % (st, d))
open(broken_file, "wb").write(good_model)
st, h, d = req("POST", "/v2/repository/models/broken/load")
check(st == 200 and js(d)["state"] == "READY", "load of the fixed model -> 200")
valid(js(d), "repository_load_response", "load")
st, h, d = req("GET", "/v2/health/ready")
check(st == 200 and js(d) == {"ready": True}, "ready once it loaded -> 200 %s" % d)
valid(js(d), "server_ready_response", "ready")
st, h, d = req("POST", "/v2/repository/models/broken/unload")
check(st == 200, "unload broken -> 200")
valid(js(d), "repository_load_response", "unload")

# ---- 2. server metadata -------------------------------------------------------------
st, h, d = req("GET", "/v2")
st2, _, d2 = req("GET", "/v2/")
check(st == 200 and d == d2, "GET /v2/ answers like GET /v2")
ext = js(d)["extensions"]
check(all(e in ext for e in ("binary_tensor_data", "statistics", "model_repository",
                             "model_configuration")), "extensions advertised: %s" % ext)
valid(js(d), "metadata_server_response", "GET /v2")
st, h, d = req("GET", "/v2/models/reversal")
meta = js(d)
F = meta["inputs"][0]["shape"][1]
NOUT = meta["outputs"][2]["shape"][1]
valid(meta, "metadata_model_response", "model metadata")
st, h, d = req("GET", "/v2/models/reversal/ready")
valid(js(d), "server_ready_response", "model ready")

rows = [[0.01 * (i + 1) * (k + 1) - 0.05 * k for k in range(F)] for i in range(3)]
flat = [v for r in rows for v in r]
N = len(rows)


def json_infer(datatype, data, outputs=None):
    body = {"inputs": [{"name": "input", "shape": [N, F], "datatype": datatype, "data": data}]}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    st, h, d = req("POST", "/v2/models/reversal/infer", json.dumps(body).encode())
    assert st == 200, d
    valid(js(d), "inference_response", "JSON infer %s" % datatype)
    return {o["name"]: o["data"] for o in js(d)["outputs"]}


# ---- 3. tritonclient.http, binary tensors -----------------------------------------------
def triton_body(datatype, raw, outputs=None, shape=None, request_id=""):
    """tritonclient.http InferenceServerClient._get_inference_request: json.dumps
    (default separators) of {id?, inputs, outputs | parameters.binary_data_output},
    then the inputs' raw bytes; the header is the JSON's length."""
    req_ = {}
    if request_id != "":
        req_["id"] = request_id
    req_["inputs"] = [{"name": "input", "shape": shape or [N, F], "datatype": datatype,
                       "parameters": {"binary_data_size": len(raw)}}]
    if outputs:
        req_["outputs"] = [{"name": n, "parameters": {"binary_data": b}} for n, b in outputs]
    else:
        req_["parameters"] = {"binary_data_output": True}
    j = json.dumps(req_).encode()
    return j + raw, {"Inference-Header-Content-Length": str(len(j))}


def decode_binary(h, d):
    """tritonclient's InferResult: split at Inference-Header-Content-Length,
    each binary output's bytes in the order of the JSON's outputs."""
    n = int(h["inference-header-content-length"])
    head = json.loads(d[:n])
    valid(head, "inference_response_binary_header", "binary infer header")
    off, out = n, {}
    for o in head["outputs"]:
        p = o.get("parameters", {})
        if "binary_data_size" in p:
            size = p["binary_data_size"]
            check(o["datatype"] == "FP64" and size % 8 == 0, "binary output %s is FP64" % o["name"])
            out[o["name"]] = list(struct.unpack("<%dd" % (size // 8), d[off:off + size]))
            off += size
        else:
            out[o["name"]] = o["data"]
    check(off == len(d), "binary outputs fill the body exactly (%d of %d)" % (off, len(d)))
    return head, out


f32 = [struct.unpack("<f", struct.pack("<f", v))[0] for v in flat]
ref32 = json_infer("FP32", flat)
ref64 = json_infer("FP64", flat)
body, hdr = triton_body("FP32", struct.pack("<%df" % len(flat), *flat))
st, h, d = req("POST", "/v2/models/reversal/infer", body, hdr)
check(st == 200 and h.get("content-type") == "application/octet-stream",
      "tritonclient default infer (binary in, binary_data_output) -> 200 octet-stream (%d %s)"
      % (st, d[:200]))
head, out = decode_binary(h, d)
check(out == ref32 and len(out["prediction"]) == N and len(out["outputs"]) == N * NOUT,
      "binary FP32 outputs == the JSON path's on the same FP32 input")
check("id" not in head, "no id sent, none echoed")
# explicit outputs, mixed binary / JSON, with an id
body, hdr = triton_body("FP64", struct.pack("<%dd" % len(flat), *flat),
                        outputs=[("confidence", False), ("prediction", True)], request_id="r-7")
st, h, d = req("POST", "/v2/models/reversal/infer", body, hdr)
head, out = decode_binary(h, d)
check(st == 200 and head["id"] == "r-7" and set(out) == {"confidence", "prediction"}
      and out["prediction"] == ref64["prediction"] and out["confidence"] == ref64["confidence"],
      "binary FP64 in, prediction binary + confidence JSON")
check(not any("parameters" in o for o in head["outputs"] if o["name"] == "confidence"),
      "the JSON output carries data, no binary_data_size")
# every output JSON (binary_data false everywhere): a plain JSON answer
body, hdr = triton_body("FP64", struct.pack("<%dd" % len(flat), *flat),
                        outputs=[("prediction", False)])
st, h, d = req("POST", "/v2/models/reversal/infer", body, hdr)
check(st == 200 and "inference-header-content-length" not in h
      and js(d)["outputs"][0]["data"] == ref64["prediction"],
      "binary input, JSON output: no binary header in the answer")
# integer / bool / half inputs: the same rows as exact integers
irows = [[(i * 7 + k * 3) % 5 for k in range(F)] for i in range(N)]
iflat = [v for r in irows for v in r]
refint = json_infer("FP64", iflat)
for dt, fmt in (("INT32", "i"), ("INT64", "q"), ("UINT8", "B"), ("INT8", "b"), ("UINT16", "H"),
                ("FP16", "e"), ("UINT64", "Q"), ("INT16", "h"), ("UINT32", "I")):
    body, hdr = triton_body(dt, struct.pack("<%d%s" % (len(iflat), fmt), *iflat))
    st, h, d = req("POST", "/v2/models/reversal/infer", body, hdr)
    ok = st == 200
    if ok:
        _, out = decode_binary(h, d)
        ok = out == refint
    check(ok, "binary %s input == FP64 JSON of the same values (%d)" % (dt, st))
    check(json_infer(dt, iflat) == refint, "JSON %s input == FP64 JSON" % dt)
bools = [(i + k) % 2 for i in range(N) for k in range(F)]
refb = json_infer("FP64", bools)
body, hdr = triton_body("BOOL", bytes(bools))
st, h, d = req("POST", "/v2/models/reversal/infer", body, hdr)
check(st == 200 and decode_binary(h, d)[1] == refb, "binary BOOL input == FP64 JSON of 0/1")
check(json_infer("BOOL", [bool(b) for b in bools]) == refb, "JSON BOOL true/false == 0/1")

raw32 = struct.pack("<%df" % len(flat), *flat)
bad_binary = [
    (triton_body("FP32", raw32[:-4]), "needs %d" % (4 * N * F)),  # 4 bytes short of the shape
    ((triton_body("FP32", raw32)[0] + b"xx", triton_body("FP32", raw32)[1]), "binary_data_size is"),
    ((triton_body("FP32", raw32)[0], {"Inference-Header-Content-Length": "99999999"}),
     "Inference-Header-Content-Length"),
    ((triton_body("FP32", raw32)[0], {"Inference-Header-Content-Length": "-3"}),
     "Inference-Header-Content-Length"),
    ((triton_body("FP32", raw32)[0], {"Inference-Header-Content-Length": "12"}), "malformed JSON"),
    (triton_body("BOOL", bytes([2] * (N * F))), "not 0 or 1"),
    (triton_body("BYTES", raw32), "datatype"),
]
for (body, hdr), word in bad_binary:
    st, h, d = req("POST", "/v2/models/reversal/infer", body, hdr)
    check(st == 400 and word in js(d)["error"], "binary refused (%s): %s" % (word, js(d)))
    valid(js(d), "error_response", "infer error")

# ---- 4. the KServe SDK's bodies ---------------------------------------------------------
def compact(obj):  # orjson.dumps: no whitespace
    return json.dumps(obj, separators=(",", ":")).encode()


uid = str(uuid.uuid4())
kbody = {"id": uid, "model_name": "reversal",
         "inputs": [{"name": "input", "shape": [N, F], "datatype": "FP32", "data": flat}]}
st, h, d = req("POST", "/v2/models/reversal/infer", compact(kbody))
check(st == 200 and js(d)["id"] == uid and {o["name"]: o["data"] for o in js(d)["outputs"]}
      == ref32, "KServe SDK body (uuid id, model_name) -> 200, id echoed")
# KServe's binary form: to_rest with raw data, parameters.binary_data_size, outputs asked
kb = {"id": uid, "model_name": "reversal",
      "inputs": [{"name": "input", "shape": [N, F], "datatype": "FP32",
                  "parameters": {"binary_data_size": len(raw32)}}],
      "outputs": [{"name": "prediction", "parameters": {"binary_data": True}}],
      "parameters": {"binary_data_output": True}}
j = compact(kb)
st, h, d = req("POST", "/v2/models/reversal/infer", j + raw32,
               {"Inference-Header-Content-Length": str(len(j)),
                "content-type": "application/octet-stream"})
check(st == 200 and decode_binary(h, d)[1]["prediction"] == ref32["prediction"],
      "KServe SDK binary body -> 200")
st, h, d = req("POST", "/v2/models/reversal/infer", compact(dict(kbody, id="")))
check(st == 200 and js(d)["id"] == "", "empty id echoed as \"\"")
st, h, d = req("POST", "/v2/models/reversal/versions/2/infer",
               compact(dict(kbody, model_version="2")))
check(st == 200, "model_version matching the served version -> 200")
st, h, d = req("POST", "/v2/models/reversal/infer", compact(dict(kbody, model_version="")))
check(st == 200, "model_version \"\" -> 200")
sdk_bad = [
    (dict(kbody, model_name="bear"), "model_name"),
    (dict(kbody, model_version="1"), "model_version"),
    (dict(kbody, model_version=2), "model_version"),
    (dict(kbody, inptus=[]), "unknown field 'inptus'"),
    (dict(kbody, parameters={"binary_data_ouput": True}), "unknown request parameter"),
    (dict(kbody, parameters={"binary_data_output": "yes"}), "true or false"),
    (dict(kbody, inputs=[dict(kbody["inputs"][0], name="INPUT0")]), "unknown input 'INPUT0'"),
    (dict(kbody, inputs=[dict(kbody["inputs"][0], parameters={"binary_data_sise": 4})]),
     "unknown input parameter"),
    (dict(kbody, inputs=[dict(kbody["inputs"][0], shpae=[1])]), "unknown input field"),
    (dict(kbody, outputs=[{"name": "prediction", "parameters": {"classification": 2}}]),
     "unknown output parameter"),
    (dict(kbody, outputs=[{"name": "OUTPUT0"}]), "unknown output 'OUTPUT0'"),
    (dict(kbody, parameters={"timeout": -1}), "timeout"),
]
for body, word in sdk_bad:
    st, h, d = req("POST", "/v2/models/reversal/infer", compact(body))
    check(st == 400 and word in js(d)["error"], "refused (%s): %s" % (word, js(d)))

# ---- 5. statistics and configuration -------------------------------------------------------
def stats(path="/v2/models/reversal/stats"):
    st, h, d = req("GET", path)
    assert st == 200, d
    valid(js(d), "statistics_response", path)
    return js(d)["model_stats"]


s0 = stats()[0]
for _ in range(4):
    json_infer("FP64", flat)
s1 = stats()[0]
check(s1["name"] == "reversal" and s1["version"] == "2", "stats of reversal v2")
check(s1["inference_count"] - s0["inference_count"] == 4 * N,
      "inference_count grew by the rows sent (%d)" % (s1["inference_count"] - s0["inference_count"]))
check(s1["inference_stats"]["success"]["count"] - s0["inference_stats"]["success"]["count"] == 4,
      "success.count grew by the requests sent")
check(s1["execution_count"] > s0["execution_count"]
      and s1["inference_stats"]["compute_infer"]["ns"] > s0["inference_stats"]["compute_infer"]["ns"],
      "execution_count and compute_infer.ns grew")
def bucket(s, size):
    return sum(b["compute_infer"]["count"] for b in s["batch_stats"] if b["batch_size"] == size)


# 4 sequential requests of 3 rows: 4 batches of 3 rows, the bucket (2, 4] rows
check(bucket(s1, 4) - bucket(s0, 4) == 4, "batch_stats: 4 more batches of size bucket 4 (%d)"
      % (bucket(s1, 4) - bucket(s0, 4)))
check(sum(b["compute_infer"]["count"] for b in s1["batch_stats"]) == s1["execution_count"],
      "batch_stats count every execution")
all_ = stats("/v2/models/stats")
check("reversal" in [m["name"] for m in all_] and "bear" in [m["name"] for m in all_],
      "/v2/models/stats lists every model served")
check(len(stats("/v2/models/reversal/versions/2/stats")) == 1, "stats of version 2")
for path in ("/v2/models/reversal/versions/1/stats", "/v2/models/nope/stats"):
    st, h, d = req("GET", path)
    check(st == 404, "%s -> 404" % path)
    valid(js(d), "error_response", "stats 404")
st, h, d = req("GET", "/v2/models/reversal/config")
cfg = js(d)
valid(cfg, "model_config_response", "config")
check(st == 200 and cfg["name"] == "reversal" and cfg["platform"] == meta["platform"]
      and cfg["max_batch_size"] >= 1 and cfg["input"][0]["dims"] == [F]
      and [o["name"] for o in cfg["output"]] == ["prediction", "confidence", "outputs"]
      and cfg["output"][2]["dims"] == [NOUT] and "dynamic_batching" in cfg,
      "config: name, platform, max_batch_size, dims, dynamic_batching")

# ---- 6. Content-Encoding, 405 ----------------------------------------------------------------
plain = json.dumps({"inputs": [{"name": "input", "shape": [N, F], "datatype": "FP64",
                                "data": flat}]}).encode()
for enc, data in (("gzip", gzip.compress(plain)), ("deflate", zlib.compress(plain)),
                  ("GZIP", gzip.compress(plain)), ("identity", plain)):
    st, h, d = req("POST", "/v2/models/reversal/infer", data, {"Content-Encoding": enc})
    check(st == 200 and {o["name"]: o["data"] for o in js(d)["outputs"]} == ref64,
          "Content-Encoding %s -> 200, same outputs" % enc)
# tritonclient compresses the whole body, binary part included
body, hdr = triton_body("FP32", raw32)
st, h, d = req("POST", "/v2/models/reversal/infer", gzip.compress(body),
               dict(hdr, **{"Content-Encoding": "gzip"}))
check(st == 200 and decode_binary(h, d)[1] == ref32, "gzip of a binary body -> 200")
bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces: about 64 KB sent
enc_bad = [("br", plain, 415), ("gzip, deflate", plain, 415), ("gzip", bomb, 413),
           ("gzip", gzip.compress(plain)[:-6], 400), ("deflate", gzip.compress(plain), 400),
           ("gzip", gzip.compress(plain) + b"junk", 400)]
for enc, data, code in enc_bad:
    st, h, d = req("POST", "/v2/models/reversal/infer", data, {"Content-Encoding": enc})
    check(st == code and js(d) and js(d)["error"], "Content-Encoding %s (%d bytes) -> %d: %s"
          % (enc, len(data), st, js(d)))
    valid(js(d), "error_response", "Content-Encoding %s error" % enc)
st, h, d = req("GET", "/v2/health/live")
check(st == 200, "server alive after the bomb")
for method, path, allow in (("DELETE", "/v2/models/reversal", "GET, HEAD"),
                            ("PUT", "/v2/repository/index", "GET, HEAD, POST"),
                            ("POST", "/v2/health/live", "GET, HEAD"),
                            ("GET", "/v2/models/reversal/infer", "POST")):
    st, h, d = req(method, path)
    check(st == 405 and h.get("allow") == allow, "%s %s -> 405, Allow: %s (%s)"
          % (method, path, allow, h.get("allow")))
    valid(js(d), "error_response", "405")

srv.stop()
finish()
