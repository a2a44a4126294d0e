# Shared by run_smoke.sh and run_long.sh (sourced): the binary argument, a step
# runner with a time limit per step, and the closing "N passed, M failed" line.
# The caller sets STEP_KILL_AFTER_S (grace after a step's limit) before sourcing.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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
    if timeout --kill-after="$STEP_KILL_AFTER_S" "$limit" "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures="$failures $name"
        echo "FAILED: $name"
    fi
}

steps_summary() { # prints the closing line; returns non-zero when a step failed
    [ -n "$failures" ] && echo "failed steps:$failures"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
