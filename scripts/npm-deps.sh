#!/usr/bin/env bash
# Installs the Node test dependencies (tests/js/package-lock.json) into tests/js/node_modules.
# Idempotent: runs `npm ci` only when node_modules is missing or older than package-lock.json.
# Called by the tests that need them (tests/integration/jsdeps.py), not at build time.
set -euo pipefail

JS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/js" && pwd)"
LOCK="$JS_DIR/package-lock.json"
# npm ci rewrites this file last, so its age tells whether the install finished after the lock.
STAMP="$JS_DIR/node_modules/.package-lock.json"

if ! command -v npm >/dev/null 2>&1; then
    echo "npm-deps: npm is not installed (run scripts/install-deps.sh)" >&2
    exit 1
fi
if [ ! -f "$LOCK" ]; then
    echo "npm-deps: $LOCK is missing" >&2
    exit 1
fi
up_to_date() { [ -f "$STAMP" ] && [ ! "$LOCK" -nt "$STAMP" ]; }
if up_to_date; then
    exit 0
fi
# Two test programs may start at once (ctest -j): one installs, the other waits and re-checks.
exec 9<"$JS_DIR"
flock 9
if up_to_date; then
    exit 0
fi

echo "npm-deps: npm ci in $JS_DIR" >&2
cd "$JS_DIR"
npm ci --no-audit --no-fund --loglevel=error >&2
