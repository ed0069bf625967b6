"""Binary tensor data vs JSON tensors: POST /v2/models/wide/infer of one
1000 x 50 FP32 tensor, the same rows both ways, on one keep-alive loopback
connection (the body is built once: what is timed is the transport, the
server's parsing and conversion, the model and the answer).

The model: a raw XGBoost model over 50 features (100 depth-3 trees written
here with a fixed seed, in XGBoost's JSON format), in a repository under
build/bench/v2. Prints
  bench: v2-infer-1000x50 json_rps=.. json_us=.. binary_rps=.. binary_us=.. speedup=..
(us: mean per request; p50 in the detail line). First checks that both
forms answer the same predictions.

usage: bench_v2_binary.py [REQUESTS]   (default 200 per form)
"""
import http.client
import json
import os
import random
import re
import struct
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("AP_BIN") or os.path.join(ROOT, "build", "alphapulse")
OUT = os.path.join(ROOT, "build", "bench", "v2")
NF, NR, NTREES, DEPTH = 50, 1000, 100, 3
REQS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def tree(rng, tid):
    n = 2 ** (DEPTH + 1) - 1
    left, right, parents, cond, idx = [], [], [], [], []
    for i in range(n):
        inner = i < 2 ** DEPTH - 1
        left.append(2 * i + 1 if inner else -1)
        right.append(2 * i + 2 if inner else -1)
        parents.append(2147483647 if i == 0 else (i - 1) // 2)
        cond.append(round(rng.gauss(0, 1), 4) if inner else round(rng.uniform(-0.1, 0.1), 5))
        idx.append(rng.randrange(NF) if inner else 0)
    z = [0.0] * n
    return {"base_weights": z, "categories": [], "categories_nodes": [],
            "categories_segments": [], "categories_sizes": [], "default_left": [1] * n,
            "id": tid, "left_children": left, "loss_changes": z, "parents": parents,
            "right_children": right, "split_conditions": cond, "split_indices": idx,
            "split_type": [0] * n, "sum_hessian": [1.0] * n,
            "tree_param": {"num_deleted": "0", "num_feature": str(NF), "num_nodes": str(n),
                           "size_leaf_vector": "0"}}


def make_repo():
    d = os.path.join(OUT, "repo", "wide")
    os.makedirs(os.path.join(d, "1"), exist_ok=True)
    rng = random.Random(19)
    model = {"learner": {"attributes": {}, "feature_names": [], "feature_types": [],
                         "gradient_booster": {"model": {
                             "gbtree_model_param": {"num_parallel_tree": "1",
                                                    "num_trees": str(NTREES),
                                                    "size_leaf_vector": "0"},
                             "tree_info": [0] * NTREES,
                             "trees": [tree(rng, t) for t in range(NTREES)]}, "name": "gbtree"},
                         "learner_model_param": {"base_score": "5E-1", "boost_from_average": "1",
                                                 "num_class": "0", "num_feature": str(NF),
                                                 "num_target": "1"},
                         "objective": {"name": "binary:logistic",
                                       "reg_loss_param": {"scale_pos_weight": "1"}}},
             "version": [1, 7, 4]}
    json.dump(model, open(os.path.join(d, "1", "model.json"), "w"))
    json.dump({"format": "xgboost", "file": "model.json", "input_width": NF,
               "pipeline": [{"op": "fillna", "value": 0}]},
              open(os.path.join(d, "1", "version.json"), "w"))
    json.dump({"name": "wide", "kind": "raw", "target": "wide"},
              open(os.path.join(d, "manifest.json"), "w"))
    return os.path.join(OUT, "repo")


def main():
    repo = make_repo()
    log = open(os.path.join(OUT, "server.log"), "w+")
    p = subprocess.Popen([BIN, "serve", "--port", "0", "--repository", repo,
                          "--max-body-bytes", str(8 << 20), "--http-threads", "1"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(300):
            m = re.search(r"listening on http://[^:]+:(\d+)", open(log.name).read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.02)
        if not port:
            sys.exit("bench_v2_binary: server did not start:\n" + open(log.name).read())
        rng = random.Random(7)
        vals = [struct.unpack("<f", struct.pack("<f", rng.gauss(0, 1)))[0]
                for _ in range(NR * NF)]
        js_body = json.dumps({"inputs": [{"name": "input", "shape": [NR, NF],
                                          "datatype": "FP32", "data": vals}]}).encode()
        raw = struct.pack("<%df" % len(vals), *vals)
        head = json.dumps({"inputs": [{"name": "input", "shape": [NR, NF], "datatype": "FP32",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "parameters": {"binary_data_output": True}}).encode()
        bin_body = head + raw
        bin_hdr = {"Inference-Header-Content-Length": str(len(head))}
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def post(body, hdr):
            c.request("POST", "/v2/models/wide/infer", body=body, headers=hdr)
            r = c.getresponse()
            d = r.read()
            if r.status != 200:
                sys.exit("bench_v2_binary: %d %s" % (r.status, d[:300]))
            return r, d

        r, d = post(js_body, {})
        pj = json.loads(d)["outputs"][0]["data"]
        r, d = post(bin_body, bin_hdr)
        n = int(r.getheader("Inference-Header-Content-Length"))
        pb = list(struct.unpack("<%dd" % NR, d[n:n + 8 * NR]))
        if pj != pb:
            sys.exit("bench_v2_binary: JSON and binary predictions differ")
        res = {}
        for name, body, hdr in (("json", js_body, {}), ("binary", bin_body, bin_hdr)):
            for _ in range(10):
                post(body, hdr)
            ts = []
            t0 = time.perf_counter()
            for _ in range(REQS):
                t = time.perf_counter()
                post(body, hdr)
                ts.append(time.perf_counter() - t)
            wall = time.perf_counter() - t0
            ts.sort()
            res[name] = (REQS / wall, wall / REQS * 1e6, ts[len(ts) // 2] * 1e6)
        print("bench: v2-infer-1000x50 json_rps=%.0f json_us=%.0f binary_rps=%.0f binary_us=%.0f "
              "speedup=%.2f" % (res["json"][0], res["json"][1], res["binary"][0],
                                res["binary"][1], res["json"][1] / res["binary"][1]))
        print("bench: v2-infer-1000x50 detail: p50 json_us=%.0f binary_us=%.0f; bodies "
              "json=%d bytes binary=%d bytes; %d requests each, one connection, "
              "--http-threads 1" % (res["json"][2], res["binary"][2], len(js_body),
                                    len(bin_body), REQS))
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
