#!/bin/bash
# `make run`'s main job (tools/run-demo.sh) on the bundled demo: it starts
# the server with examples/alphapulse.conf, shows predictions and a few
# seconds of /v1/stream, and stops it cleanly. A demo config that no longer
# parses, or a demo that shows no prediction or event, fails here.
set -u
cd "$(dirname "$0")/../.."
out=$(AP_PORT=0 AP_DEMO_SECONDS=8 tools/run-demo.sh </dev/null 2>&1)
rc=$?
echo "$out"
fail=0
check() { # what, condition (a command)
    if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}
check "run-demo exits 0 (got $rc)" test "$rc" -eq 0
check "the server started with examples/alphapulse.conf" grep -q "listening on" <<<"$out"
check "a prediction is shown" grep -q '"prediction":' <<<"$out"
check "stream events are shown (ids of closed bars)" grep -qE '^  (GOOG/1d|USDCHF/4h):[0-9]+:(reversal|bull)$' <<<"$out"
check "the server stopped cleanly (exit 0)" grep -q "server stopped (exit 0)" <<<"$out"
exit $fail
