#!/bin/bash
# The one test list runner (libuv-style): every test program and script under
# tests/, then the ASan/UBSan build of the C tests, TSan for the threaded ones,
# and short fuzz runs. Each is one test: PASS or FAIL, output kept in
# build/test-logs/. Ends with "N passed, N failed".
#
# Filter: tests/run.sh PATTERN  runs only tests whose name contains PATTERN.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export AP_ROOT=$ROOT
export AP_BIN=$ROOT/build/alphapulse
export PYTHON=${PYTHON:-/usr/bin/python3}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
filter=${1:-}
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"
pass=0
fail=0
failed=()

run_one() { # name, command...
    local name=$1; shift
    if [ -n "$filter" ] && [[ "$name" != *"$filter"* ]]; then return; fi
    local log="$LOGS/$(echo "$name" | tr '/ ' '__').log"
    local t0=$(date +%s%N)
    if "$@" >"$log" 2>&1; then
        pass=$((pass + 1))
        printf 'PASS %-50s %6.1fs\n' "$name" "$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{print (b-a)/1e9}')"
    else
        fail=$((fail + 1))
        failed+=("$name")
        printf 'FAIL %-50s (log: %s)\n' "$name" "${log#$ROOT/}"
        tail -n 30 "$log" | sed 's/^/    | /'
    fi
}

# 1. C unit tests, plain build
for t in $(ls build/tests/*/test_* 2>/dev/null | grep -v '\.d$' | sort); do
    run_one "unit:${t#build/tests/}" "$t"
done
# 2. script tests: parity against the real libraries, CLI, integration
for t in $(ls tests/*/test_*.sh tests/*/test_*.py 2>/dev/null | grep -v '^tests/python/' | sort); do
    case "$t" in
        *.py) run_one "script:${t#tests/}" "$PYTHON" "$t" ;;
        *.sh) run_one "script:${t#tests/}" bash "$t" ;;
    esac
done
# 2b. the Python package (tests/python, pytest): every pytest test counts as
#     one here; a run that cannot start (no pytest, import error) is a FAIL
#     (a filter that is a plain word selects tests by name with pytest -k)
if [ -z "$filter" ] || [[ "python:" == *"$filter"* ]] || [[ "$filter" =~ ^[A-Za-z0-9_]+$ ]]; then
    log=$LOGS/python_pytest.log
    pyfilter=()
    [ -n "$filter" ] && [[ "python:" != *"$filter"* ]] && pyfilter=(-k "$filter")
    t0=$(date +%s)
    PYTHONDONTWRITEBYTECODE=1 "$PYTHON" -m pytest -p no:cacheprovider -v -rf --tb=short \
        "${pyfilter[@]}" tests/python >"$log" 2>&1
    prc=$?
    np=$(grep -cE '::.* PASSED' "$log")
    nf=$(grep -cE '::.* (FAILED|ERROR)' "$log")
    pass=$((pass + np))
    fail=$((fail + nf))
    grep -E '::.* (FAILED|ERROR)' "$log" | sed 's/ \[.*//' | while read -r ln; do
        echo "FAIL python:${ln#tests/python/}"; done
    failed+=($(grep -E '::.* (FAILED|ERROR)' "$log" | awk '{print "python:"$1}'))
    if [ "$prc" -ne 0 ] && [ "$nf" -eq 0 ] && [ "$prc" -ne 5 ]; then
        fail=$((fail + 1)); failed+=("python:pytest (exit $prc)")
        echo "FAIL python:pytest could not run (log: ${log#$ROOT/})"; tail -n 30 "$log" | sed 's/^/    | /'
    fi
    [ "$nf" -gt 0 ] && grep -A 25 '^=* FAILURES' "$log" | head -60 | sed 's/^/    | /'
    printf '     %-50s %6ss\n' "python: $np passed, $nf failed (pytest)" "$(( $(date +%s) - t0 ))"
fi
# 3. the same C unit tests under ASan + UBSan
for t in $(ls build/asan/tests/*/test_* 2>/dev/null | grep -v '\.d$' | sort); do
    run_one "asan:${t#build/asan/tests/}" "$t"
done
# 4. threaded tests under TSan (tests that declare AP_TEST_THREADED in their source)
for t in $(ls build/tsan/tests/*/test_* 2>/dev/null | grep -v '\.d$' | sort); do
    src=tests/${t#build/tsan/tests/}.c
    grep -q AP_TEST_THREADED "$src" 2>/dev/null || continue
    run_one "tsan:${t#build/tsan/tests/}" "$t"
done
# 5. end-to-end scripts again, against the sanitizer builds of the CLI/server
#    (the C unit tests above cannot reach the CLI, the HTTP layer or signals)
SANITIZED_SCRIPTS="forest/test_lightgbm_fixtures.py features/test_cli.sh
registry/test_check_repo.py server/test_server_api.py server/test_server_lifecycle.py
onnx/test_tree_modes_ort.py forest/test_cli_precision.py server/test_server_precision.py
server/test_server_batch.py server/test_server_stream.py server/test_server_auth.py
server/test_server_status.py server/test_server_v2.py gpu/test_gpu_cli.py
scale/test_scale_out.py server/test_server_grpc.py"
# (gpu/test_gpu_cli.py against ASan is also the build without nvcc at run time:
#  the sanitizer builds pass NVCC=false)
# TSan: only the server has threads worth checking end to end
TSAN_SCRIPTS="server/test_server_api.py server/test_server_batch.py"
TSAN_SCRIPTS+=" server/test_server_stream.py server/test_server_auth.py server/test_server_status.py"
TSAN_SCRIPTS+=" server/test_server_v2.py"
TSAN_SCRIPTS+=" scale/test_scale_out.py server/test_server_grpc.py"
TSAN_SCRIPTS+=" server/test_server_grpc.py"
# ONNX Runtime leaks a few bytes at exit: suppress that library only (and
# nothing of ours) in LeakSanitizer.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan-ort.supp}
for variant in asan tsan; do
    [ -x build/$variant/alphapulse ] || continue
    for t in $SANITIZED_SCRIPTS; do
        [ $variant = tsan ] && [[ " $TSAN_SCRIPTS " != *" $t "* ]] && continue
        case "$t" in
            *.py) run_one "$variant:$t" env AP_BIN=$ROOT/build/$variant/alphapulse "$PYTHON" "tests/$t" ;;
            *.sh) run_one "$variant:$t" env AP_BIN=$ROOT/build/$variant/alphapulse bash "tests/$t" ;;
        esac
    done
done
# 6. short fuzz runs of every parser, from the seed corpus
for f in $(ls build/fuzz/fuzz_* 2>/dev/null | sort); do
    name=$(basename "$f")
    corpus=tests/fuzz/corpus/${name#fuzz_}
    work=build/fuzz-work/${name#fuzz_}
    mkdir -p "$work"
    run_one "fuzz:$name" "$f" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
        -timeout=10 -artifact_prefix="$work/" "$work" "$corpus"
done

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed:"
    printf '  %s\n' "${failed[@]}"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
