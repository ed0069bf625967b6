#!/bin/bash
# The status page (GET /) in a real browser: headless Debian chromium driven
# by playwright-core (fetched once with npm pack into build/node/, see
# tools/fetch-playwright.sh) against a running server: tests/server/status_page.js.
# Without chromium, node or playwright-core this FAILS, saying which.
set -u
cd "$(dirname "$0")/../.."
fail() { echo "FAIL $*"; exit 1; }
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing: run tools/setup-deps.sh (Debian package chromium)"
command -v node >/dev/null 2>&1 || fail "node is missing: run tools/setup-deps.sh"
tools/fetch-playwright.sh || fail "playwright-core could not be fetched (npm pack playwright-core)"
[ -x "${AP_BIN:-build/alphapulse}" ] || fail "${AP_BIN:-build/alphapulse} is not built (make)"
exec timeout 120 node tests/server/status_page.js
