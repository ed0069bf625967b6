#!/bin/sh
# Install the Debian packages alphapulse needs, if any is missing. Idempotent:
# when everything is there it does nothing and needs no network.
set -e
PKGS="build-essential clang libclang-rt-14-dev libcmocka-dev libjansson-dev \
libxgboost-dev python3-xgboost python3-sklearn python3-pandas python3-numpy curl \
libmicrohttpd-dev wrk prometheus \
libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx \
python3-pytest python3-pip python3-setuptools python3-wheel binutils openssl \
xxd chromium fonts-liberation zlib1g-dev python3-jsonschema \
redis-server libhiredis-dev \
libnghttp2-dev python3-grpcio python3-protobuf protobuf-compiler"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# npm (to fetch ONNX Runtime's library, tools/fetch-onnxruntime.sh): any npm
# will do; Debian's package would conflict with a Node.js installed otherwise.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
# node runs the status page's browser test (tests/server/status_page.js,
# with playwright-core from tools/fetch-playwright.sh and chromium above)
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
[ -z "$missing" ] && exit 0
echo "setup: installing missing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
