#!/bin/bash
# Scale-out on Redis Streams: signals/s with 1, 2, 3 workers and the
# take-over time after kill -9 (bench/bench_scale.py; docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export AP_ROOT=$PWD AP_BIN=${AP_BIN:-$PWD/build/alphapulse}
exec /usr/bin/python3 bench/bench_scale.py "$@"
