#!/bin/sh
# Fetch playwright-core (the browser test of the status page drives Debian's
# chromium with it: tests/server/test_status_page.sh). `npm pack` only
# downloads the tarball (no install scripts run, no browser is downloaded:
# the test names /usr/bin/chromium); it is unpacked into build/node/.
# Idempotent: does nothing when build/node/playwright-core/package.json exists.
# Exit status: 0 = present, 1 = could not fetch (e.g. npm unreachable).
set -eu
cd "$(dirname "$0")/.."
VERSION=1.65.2
DEST=build/node/playwright-core
[ -f "$DEST/package.json" ] && exit 0
command -v npm >/dev/null 2>&1 || { echo "fetch-playwright: npm not found" >&2; exit 1; }
mkdir -p build/node
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && timeout 600 npm pack --silent "playwright-core@$VERSION" >/dev/null 2>&1); then
    echo "fetch-playwright: npm pack playwright-core@$VERSION failed (registry unreachable?)" >&2
    exit 1
fi
mkdir -p "$tmp/x"
tar -xzf "$tmp/playwright-core-$VERSION.tgz" -C "$tmp/x"
# move into place whole: a half-unpacked package never looks present
rm -rf "$DEST.part"
mv "$tmp/x/package" "$DEST.part"
mv "$DEST.part" "$DEST"
echo "fetch-playwright: $DEST (playwright-core $VERSION)"
