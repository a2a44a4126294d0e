#!/bin/bash
# The crash smoke run of `make test` (about 2 minutes): builds the power-loss
# shim, proves it against SQLite (shimcheck.py), then
#   killloop.py  20 cycles, --sync always             must lose nothing
#   powerloss.py 20 cycles, --sync always             must lose nothing
#   powerloss.py  5 cycles, --sync off --expect-loss   control: must detect a loss
# Binary: first argument, else $LEDGERMQ_BIN. Prints "N passed, M failed";
# exit 1 on any failure. Each step has its own time limit.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-${LEDGERMQ_BIN:-}}"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "usage: $0 LEDGERMQ_BIN (or set LEDGERMQ_BIN)"
    echo "0 passed, 1 failed"
    exit 1
fi
py=/usr/bin/python3
passed=0
failed=0
failures=""

step() { # step NAME SECONDS COMMAND...
    local name="$1" limit="$2"
    shift 2
    echo "== $name"
    if timeout --kill-after=10 "$limit" "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures="$failures $name"
        echo "FAILED: $name"
    fi
}

step build-shim 60 bash "$here/build.sh"
step shimcheck 60 "$py" "$here/shimcheck.py"
step killloop 80 "$py" "$here/killloop.py" --bin "$bin" --cycles 20 --seed 1 \
    --sync always --quiet --timeout-s 70
step powerloss 80 "$py" "$here/powerloss.py" --bin "$bin" --cycles 20 --seed 2 \
    --sync always --quiet --timeout-s 70
step powerloss-control 40 "$py" "$here/powerloss.py" --bin "$bin" --cycles 5 --seed 3 \
    --sync off --expect-loss --quiet --timeout-s 30

[ -n "$failures" ] && echo "failed steps:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
