#!/bin/bash
# `make run`: serve the demo repository (examples/models) with a replay of
# real bars (GOOG daily, USDCHF 4h) so predictions flow from the first second.
# Prints the URLs and sample requests, then runs in the foreground until
# Ctrl-C. When stdin is not a terminal, or AP_DEMO_SECONDS is set, it runs
# for that many seconds (default 20), shows some predictions and metrics, and
# stops the server cleanly (SIGTERM, graceful).
set -u
cd "$(dirname "$0")/.."
BIN=build/alphapulse
CONF=examples/alphapulse.conf
# gRPC: off unless AP_DEMO_GRPC_PORT names a port (tests run the demo beside
# other servers, and 8001 may be taken)
seconds=${AP_DEMO_SECONDS:-}
if [ -z "$seconds" ] && [ ! -t 0 ]; then seconds=20; fi
log=$(mktemp)
pid=

start() { # port
    "$BIN" serve --config "$CONF" --port "$1" --grpc-port "${AP_DEMO_GRPC_PORT:-0}" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$log" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid"
        echo "server stopped (exit $?)"
    fi
    [ -s "$log" ] && sed -n '/shutting down/,$p' "$log"
    rm -f "$log"
}
trap stop EXIT
trap 'exit 0' INT TERM

# 8080 unless taken (then any free port)
if ! start "${AP_PORT:-8080}"; then
    grep -q "cannot listen" "$log" || { cat "$log"; exit 1; }
    start 0 || { cat "$log"; exit 1; }
fi
cat "$log"
url=$(grep -o 'http://[^ ]*' "$log" | head -1)
cat <<TXT

alphapulse is serving $url  (docs/SERVER.md)
  $url/            the status page: open it in a browser
  $url/v1/models   $url/v1/stats   $url/metrics   $url/v2/health/ready

Try:
  curl -s -XPOST $url/v1/predict/pattern -d '{"symbol":"GOOG","timeframe":"1d","target":"reversal"}'
  curl -s -XPOST $url/v1/predict/regime -d '{"symbol":"USDCHF","timeframe":"4h","target":"sideways"}'
  curl -s -XPOST $url/v1/predict/ensemble -d '{"symbol":"USDCHF","timeframe":"1d","async":true}'
  curl -s -XPOST $url/v1/predict/batch -d '{"requests":[{"kind":"pattern","target":"reversal","symbols":["GOOG"],"timeframe":"1d"},{"kind":"regime","symbol":"USDCHF","timeframe":"4h","target":"bull"}]}'
  curl -N $url/v1/stream?series=*        # predictions pushed on every closed bar (Server-Sent Events)
  curl -s -XPOST $url/v1/candles -d '{"symbol":"BTCUSDT","timeframe":"1m","candles":[[1700000000,37000,37100,36950,37050,12.5]]}'
  curl -s -XPOST $url/v2/models/volatile/infer -d '{"inputs":[{"name":"input","shape":[1,9],"datatype":"FP32","data":[0.01,0.02,0.5,1.1,0.3,0.02,0.01,-0.01,1.2]}]}'
  curl -s -XPOST $url/v2/repository/models/reversal/load -d '{"parameters":{"version":1}}'
TXT

if [ -z "$seconds" ]; then
    echo; echo "Ctrl-C to stop."
    wait "$pid"
    exit 0
fi

echo; echo "running for $seconds s (AP_DEMO_SECONDS), then stopping"
show() { echo; echo "\$ $*"; "$@"; echo; }
sleep 1
show curl -s -XPOST "$url/v1/predict/pattern" -d '{"symbol":"GOOG","timeframe":"1d","target":"reversal"}'
show curl -s -XPOST "$url/v1/predict/ensemble" -d '{"symbol":"USDCHF","timeframe":"4h"}'
show curl -s -XPOST "$url/v2/models/volatile/infer" -d '{"inputs":[{"name":"input","shape":[1,9],"datatype":"FP32","data":[0.01,0.02,0.5,1.1,0.3,0.02,0.01,-0.01,1.2]}]}'
echo "\$ curl -N '$url/v1/stream?series=*&models=reversal,bull'   (4 s: events as the replay closes bars)"
timeout 4 curl -sN "$url/v1/stream?series=*&models=reversal,bull" |
    sed -n 's/^id: \(.*\)/  \1/p; s/^data: .*"prediction": \([^,]*\).*/    prediction=\1/p' | head -12
# predictions keep flowing while the replay advances
end=$((SECONDS + seconds - 2))
while [ $SECONDS -lt $end ]; do
    for s in GOOG/1d USDCHF/4h; do
        curl -s -XPOST "$url/v1/predict/regime" \
            -d "{\"symbol\":\"${s%/*}\",\"timeframe\":\"${s#*/}\",\"target\":\"volatile\"}" |
            sed 's/.*"symbol": "\([^"]*\)".*"prediction": \([^,]*\).*"bar_time": "\([^"]*\)".*/  \1 volatile p=\2 at bar \3/'
    done
    sleep 3
done
echo; echo "\$ curl -s $url/v1/stats   (replay progress)"
curl -s "$url/v1/stats" | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print(json.dumps({k: s[k] for k in ("models_loaded","requests","predictions","batching","replay")}, indent=1))' 2>/dev/null
echo; echo "\$ curl -s $url/metrics | grep ...   (excerpt)"
curl -s "$url/metrics" | grep -E '^alphapulse_(models_loaded|series|bars_ingested_total|http_requests_total\{endpoint="predict)' | head -12
exit 0
