#!/bin/bash
# The GPU path on a machine with a GPU (issue 17, docs/GPU.md): one prepared
# run, under 5 minutes on a 16-core machine.
#   1. build with nvcc (the plain build: library, CLI, the GPU unit test, bench_gpu)
#   2. the unit test of the kernel body (CPU) and of the selection logic
#   3. GPU parity: every forest fixture of tests/data on the GPU against the
#      CPU engine, bit for bit (bench_gpu parity)
#   4. the CLI on the GPU: --device gpu gives the CPU's bytes
#   5. bench: rows/s CPU vs GPU at 1, 1k, 10k, 100k rows on the 1000-tree
#      LightGBM model (and bench/train.py's XGBoost large.json when built)
#   6. the summary table
# Where there is no usable CUDA device it says so after step 2 and exits 3
# (nothing was run on a GPU). Exit 0: everything passed; 1: a failure.
set -u
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILD=${BUILD:-build}
OUT=${GPU_CHECK_OUT:-$BUILD/gpu-check}
mkdir -p "$OUT"
t0=$(date +%s)
summary=()
status=0
step() { # name, rc
    local r="PASS"
    [ "$2" -eq 0 ] || { r="FAIL"; status=1; }
    summary+=("$(printf '%-44s %s  (%ss)' "$1" "$r" "$(( $(date +%s) - t0 ))")")
    echo "== $1: $r"
}
finish() {
    echo
    echo "== summary ($(date -u +%FT%TZ), $(( $(date +%s) - t0 ))s)"
    printf '%s\n' "${summary[@]}"
    [ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"
    exit "$1"
}

NVCC=${NVCC:-$(command -v nvcc || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })}
echo "== machine: $(uname -m), $(nproc) cores; nvcc: ${NVCC:-none}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader 2>&1 | sed 's/^/   gpu: /'
if [ -z "$NVCC" ]; then
    echo "== no nvcc: the build would have no GPU backend"
    summary+=("nvcc                                         MISSING")
    finish 1
fi
make -s -j"$JOBS" NVCC="$NVCC" BUILD="$BUILD" all "$BUILD/tests/gpu/test_gpu_body" \
    "$BUILD/bench/bench_gpu" >"$OUT/build.log" 2>&1
rc=$?
step "build (nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))" $rc
[ $rc -eq 0 ] || { tail -30 "$OUT/build.log"; finish 1; }

"$BUILD/tests/gpu/test_gpu_body" >"$OUT/unit.log" 2>&1
step "unit: kernel body on the CPU, selection" $?
grep "this build" "$OUT/unit.log"

why=$("$BUILD/bench/bench_gpu" parity tests/data/lightgbm/binary/model.txt 2>&1)
if [ $? -eq 3 ]; then
    echo "== $why"
    summary+=("GPU                                          NONE: ${why#bench_gpu: }")
    finish 3
fi

fixtures=$(ls tests/data/xgboost/*.json tests/data/xgboost/*.ubj tests/data/lightgbm/*/model.txt)
"$BUILD/bench/bench_gpu" parity $fixtures | tee "$OUT/parity.log"
step "GPU parity: $(grep -c '^OK' "$OUT/parity.log") fixtures bitwise, $(grep -c '^CPU' "$OUT/parity.log") refused (linear)" \
    "${PIPESTATUS[0]}"

m=tests/data/lightgbm/large/model.txt
"$BUILD/alphapulse" predict --model $m --input tests/data/lightgbm/large/input.csv >"$OUT/cpu.csv" &&
    "$BUILD/alphapulse" predict --model $m --input tests/data/lightgbm/large/input.csv \
        --device gpu >"$OUT/gpu.csv" && cmp "$OUT/cpu.csv" "$OUT/gpu.csv"
step "CLI: predict --device gpu = cpu, byte for byte" $?
"$BUILD/alphapulse" predict --model $m --input tests/data/lightgbm/large/input.csv \
    --device auto 2>&1 >/dev/null | sed 's/^/   /'

: >"$OUT/bench.md"
for model in tests/data/lightgbm/large/model.txt "$BUILD/bench/large.json"; do
    [ -f "$model" ] || continue
    timeout 150 "$BUILD/bench/bench_gpu" bench "$model" 1 1000 10000 100000 | tee -a "$OUT/bench.md"
    step "bench $(basename "$(dirname "$model")")/$(basename "$model")" "${PIPESTATUS[0]}"
done
finish $status
