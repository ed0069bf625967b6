#!/bin/sh
# Fetch ONNX Runtime's shared library for the optional ORT backend (src/ort)
# and the ONNX parity tests/bench. No Debian package ships it; the npm package
# onnxruntime-node carries the plain C library. `npm pack` only downloads the
# tarball (no install scripts run); we extract that one .so into build/ort/.
# Idempotent: does nothing when build/ort/libonnxruntime.so.1 exists.
# Exit status: 0 = library present, 1 = could not fetch (e.g. npm unreachable).
set -eu
cd "$(dirname "$0")/.."
VERSION=1.30.0
DEST=build/ort
LIB=$DEST/libonnxruntime.so.1
[ -f "$LIB" ] && exit 0
command -v npm >/dev/null 2>&1 || { echo "fetch-onnxruntime: npm not found" >&2; exit 1; }
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && timeout 600 npm pack --silent "onnxruntime-node@$VERSION" >/dev/null 2>&1); then
    echo "fetch-onnxruntime: npm pack onnxruntime-node@$VERSION failed (registry unreachable?)" >&2
    exit 1
fi
tar -xzf "$tmp/onnxruntime-node-$VERSION.tgz" -C "$tmp" \
    package/bin/napi-v6/linux/x64/libonnxruntime.so.1
# write under a temporary name first: a half-copied library never looks present
cp "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$LIB.part"
mv "$LIB.part" "$LIB"
echo "fetch-onnxruntime: $LIB (onnxruntime $VERSION)"
