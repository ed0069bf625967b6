#!/bin/bash
# alphapulse features: output shape, timestamps echoed as written, the three
# timestamp spellings giving the same features, and bad input stopping with
# the line number and reason (non-zero exit, nothing half-written unnoticed).
set -u
ROOT=${AP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${AP_BIN:-$ROOT/build/alphapulse}
mkdir -p "$ROOT/build"
T=$(mktemp -d "$ROOT/build/ap_cli_features.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail=0
check() { # description, condition-exit-status
    if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}

# 1. shape: header + one row per bar, 102 columns, timestamps echoed verbatim
"$BIN" features --input "$ROOT/tests/data/market/goog_daily.csv" --output "$T/goog.csv"
check "goog: exit 0" $?
[ "$(wc -l < "$T/goog.csv")" -eq 1048 ]; check "goog: 1047 rows + header" $?
[ "$(head -1 "$T/goog.csv" | tr ',' '\n' | wc -l)" -eq 102 ]; check "102 columns" $?
head -1 "$T/goog.csv" | grep -q '^timestamp,open,high,low,close,volume,ema_9,' ; check "header names" $?
cmp -s <(cut -d, -f1 "$T/goog.csv") <(cut -d, -f1 "$ROOT/tests/data/market/goog_daily.csv")
check "timestamps echoed as written" $?
sed -n 2p "$T/goog.csv" | grep -q ',nan,'; check "warm-up written as nan" $?

# 2. the same bars as epoch s, epoch ms, ISO with Z / +00:00 / space / fraction: same features
printf 'timestamp,open,high,low,close,volume\n' > "$T/s.csv"
cp "$T/s.csv" "$T/ms.csv"; cp "$T/s.csv" "$T/iso.csv"
for i in $(seq 0 59); do
    t=$((1700000000 + 60 * i))
    row="$((100 + i % 7)).5,$((102 + i % 5)),$((99 - i % 3)),$((100 + i % 11)).25,$((1000 + 37 * i))"
    echo "$t,$row" >> "$T/s.csv"
    echo "${t}000,$row" >> "$T/ms.csv"
    case $((i % 4)) in
        0) iso=$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%SZ) ;;
        1) iso=$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%S+00:00) ;;
        2) iso=$(date -u -d "@$t" '+%Y-%m-%d %H:%M:%S') ;;
        3) iso=$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%S.000Z) ;;
    esac
    echo "$iso,$row" >> "$T/iso.csv"
done
for k in s ms iso; do "$BIN" features --input "$T/$k.csv" --output "$T/$k.out"; done
cmp -s <(cut -d, -f2- "$T/s.out") <(cut -d, -f2- "$T/ms.out"); check "epoch s == epoch ms" $?
cmp -s <(cut -d, -f2- "$T/s.out") <(cut -d, -f2- "$T/iso.out"); check "epoch s == ISO forms" $?
sed -n 3p "$T/iso.out" | grep -q '^2023-11-14T22:14:20+00:00,'; check "ISO echoed verbatim" $?
"$BIN" features --input - < "$T/s.csv" > "$T/stdin.out"
cmp -s "$T/s.out" "$T/stdin.out"; check "stdin/stdout" $?

# 3. a repeated timestamp replaces the forming bar: its row equals the final-bar run's
{ head -31 "$T/s.csv"; echo "1700001800,100,200,50,150,99"; tail -n +32 "$T/s.csv"; } > "$T/upd.csv"
"$BIN" features --input "$T/upd.csv" --output "$T/upd.out"
check "update: exit 0" $?
[ "$(wc -l < "$T/upd.out")" -eq 62 ]; check "update: one row per input row" $?
cmp -s <(sed 32d "$T/upd.out") "$T/s.out"; check "update: later rows as if only the final bar came" $?

# 4. bad input: line number + reason, exit 1
expect_error() { # name, file content, pattern
    printf '%b' "$2" > "$T/bad.csv"
    "$BIN" features --input "$T/bad.csv" --output "$T/bad.out" 2> "$T/err"
    rc=$?
    if [ $rc -eq 1 ] && grep -q -- "$3" "$T/err"; then echo "ok   $1: $(cat "$T/err")"
    else echo "FAIL $1 (rc $rc): $(cat "$T/err")"; fail=1; fi
}
H='timestamp,open,high,low,close,volume\n'
expect_error "high < low" "${H}1,1,2,1,1.5,3\n2,1,2,1,1.5,3\n3,1,1,2,1.5,3\n" 'bad.csv:4: .*high 1 is below low 2'
expect_error "older time" "${H}10,1,2,1,1.5,3\n9,1,2,1,1.5,3\n" 'bad.csv:3: .*older'
expect_error "bad timestamp" "${H}2004-02-30,1,2,1,1.5,3\n" 'bad.csv:2: bad timestamp .2004-02-30.: month or day out of range'
expect_error "not a number" "${H}1,1,2,x,1.5,3\n" "bad.csv:2: low 'x' is not a number"
expect_error "missing close" "${H}1,1,2,1,,3\n" 'bad.csv:2: .*close nan'
expect_error "negative volume" "${H}1,1,2,1,1.5,-3\n" 'bad.csv:2: .*volume -3'
expect_error "zero price" "${H}1,0,2,1,1.5,3\n" 'bad.csv:2: .*open 0'
expect_error "field count" "${H}1,1,2,1,1.5\n" 'bad.csv:2: 5 fields, expected 6'
expect_error "header names" 'time,open,high,low,close,volume\n1,1,2,1,1.5,3\n' "column 1 is 'time', expected 'timestamp'"
expect_error "header order" 'timestamp,open,low,high,close,volume\n' "column 3 is 'low', expected 'high'"
expect_error "empty file" '' 'empty file'
"$BIN" features > /dev/null 2>&1; [ $? -eq 2 ]; check "no --input: usage, exit 2" $?
"$BIN" features --input "$T/nope.csv" 2> "$T/err"; [ $? -eq 1 ] && grep -q 'cannot open' "$T/err"
check "missing file" $?
exit $fail
