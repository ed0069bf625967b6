#!/bin/bash
# Server benchmark: wrk on loopback against `alphapulse serve` on the demo
# repository. Single-row POST /v2/models/reversal/infer and
# /v1/predict/pattern (GOOG/1d, replayed at start), BENCH_SECONDS each (10),
# 2 wrk threads, with BENCH_CONNS connections (default "64 128"), the
# server's default settings unless BENCH_SERVER_ARGS says otherwise (e.g.
# "--http-threads 1 --workers 1").
# Prints one line per run: endpoint, connections, req/s, p50, p99, errors,
# and the batches the server ran during the run with their mean size (from
# /v1/stats before and after: requests that arrive together batch).
# Then the fan-out bench (bench/bench_fanout.py): 1,000 series, one
# POST /v1/predict/batch of 1,000 items on one model against 1,000 single
# /v1/predict/pattern calls on one keep-alive connection; prints
#   bench: fanout-1000 batch_us=B singles_us=S ratio=R (...)
# BENCH_FANOUT_ONLY=1 runs only that (no wrk runs).
set -u
cd "$(dirname "$0")/.."
BIN=${AP_BIN:-build/alphapulse}
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-64 128}
FANOUT_ONLY=${BENCH_FANOUT_ONLY:-0}
[ "$FANOUT_ONLY" = 1 ] || command -v wrk >/dev/null ||
    { echo "bench_server: wrk is not installed (apt-get install wrk)"; exit 1; }
log=$(mktemp)
# shellcheck disable=SC2086
"$BIN" serve --port 0 --grpc-port 0 --replay GOOG/1d=examples/data/goog_daily.csv --replay-speed 0 \
    ${BENCH_SERVER_ARGS:-} >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 200); do grep -q "listening on" "$log" && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*' "$log" | head -1)
[ -n "$url" ] || { cat "$log"; exit 1; }

infer='{"inputs":[{"name":"input","shape":[1,14],"datatype":"FP64","data":[0.01,0.01,1.2,1.1,0,55,0.5,1.5,0.01,0.02,0.03,-20,60,0.1]}]}'
pattern='{"symbol":"GOOG","timeframe":"1d","target":"reversal"}'
curl -sf -XPOST "$url/v2/models/reversal/infer" -d "$infer" >/dev/null || { echo "infer failed"; exit 1; }
curl -sf -XPOST "$url/v1/predict/pattern" -d "$pattern" >/dev/null || { echo "predict failed"; exit 1; }

batching() { # "batches rows" so far
    curl -s "$url/v1/stats" | /usr/bin/python3 -c 'import json,sys; b=json.load(sys.stdin)["batching"]; print(b["batches"], b["rows"])'
}
[ "$FANOUT_ONLY" = 1 ] || printf '%-28s %6s %10s %9s %9s %7s %9s %10s\n' endpoint conns req/s p50 p99 errors batches mean_batch
run() { # name path body conns
    read -r b0 r0 <<<"$(batching)"
    out=$(WRK_BODY=$3 wrk -t2 -c"$4" -d"${SECS}s" --latency -s bench/wrk_post.lua "$url$2")
    read -r b1 r1 <<<"$(batching)"
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    bad=$(echo "$out" | awk '/non2xx/ {print $2}')
    sock=$(echo "$out" | awk '/Socket errors/ {print $0}')
    mean=$(awk -v b=$((b1 - b0)) -v r=$((r1 - r0)) 'BEGIN { printf "%.2f", b ? r / b : 0 }')
    printf '%-28s %6s %10s %9s %9s %7s %9s %10s %s\n' "$1" "$4" "$rps" "$p50" "$p99" "${bad:-0}" \
        "$((b1 - b0))" "$mean" "$sock"
}
[ "$FANOUT_ONLY" = 1 ] && CONNS=
for c in $CONNS; do
    run "v2 infer (reversal, 1 row)" /v2/models/reversal/infer "$infer" "$c"
    run "v1 predict/pattern (GOOG)" /v1/predict/pattern "$pattern" "$c"
done
/usr/bin/python3 bench/bench_fanout.py "$url" || exit 1

# TLS: keep-alive req/s over HTTPS against plain HTTP, same endpoint, same
# wrk settings, one after the other (a certificate made here with openssl)
[ "$FANOUT_ONLY" = 1 ] && exit 0
command -v openssl >/dev/null || { echo "bench: tls: SKIP (no openssl)"; exit 0; }
tdir=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tdir/key.pem" -out "$tdir/cert.pem" \
    -subj /CN=localhost -days 2 2>/dev/null || { echo "bench: tls: openssl failed"; exit 1; }
# shellcheck disable=SC2086
"$BIN" serve --port 0 --grpc-port 0 --tls-cert-file "$tdir/cert.pem" --tls-key-file "$tdir/key.pem" \
    ${BENCH_SERVER_ARGS:-} >"$tdir/log" 2>&1 &
tpid=$!
for _ in $(seq 200); do grep -q "listening on" "$tdir/log" && break; sleep 0.05; done
turl=$(grep -o 'https://[^ ]*' "$tdir/log" | head -1)
c=${CONNS_TLS:-64}
rps() { WRK_BODY=$infer wrk -t2 -c"$c" -d"${SECS}s" -s bench/wrk_post.lua "$1/v2/models/reversal/infer" |
    awk '/Requests\/sec/ {print $2}'; }
plain=$(rps "$url")
tls=$(rps "$turl")
kill -TERM $tpid; wait $tpid 2>/dev/null; rm -rf "$tdir"
echo "bench: tls keep-alive req_per_s=$tls plain req_per_s=$plain ratio=$(awk -v a="$tls" -v b="$plain" 'BEGIN { printf "%.2f", b ? a / b : 0 }') (v2 infer, $c connections, ${SECS}s each)"
