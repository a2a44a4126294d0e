#!/bin/bash
# The crash smoke run of `make test` (about 2 minutes): builds the power-loss
# shim, proves it against SQLite (shimcheck.py), then
#   killloop.py  20 cycles, --sync always             must lose nothing
#   powerloss.py 20 cycles, --sync always             must lose nothing
#   powerloss.py  5 cycles, --sync off --expect-loss   control: must detect a loss
# Binary: first argument, else $LEDGERMQ_BIN. Prints "N passed, M failed";
# exit 1 on any failure. Each step has its own time limit.
set -u
STEP_KILL_AFTER_S=10
. "$(dirname "$0")/steps.sh"

step build-shim 60 bash "$here/build.sh"
step shimcheck 60 "$py" "$here/shimcheck.py"
step killloop 80 "$py" "$here/killloop.py" --bin "$bin" --cycles 20 --seed 1 \
    --sync always --quiet --timeout-s 70
step powerloss 80 "$py" "$here/powerloss.py" --bin "$bin" --cycles 20 --seed 2 \
    --sync always --quiet --timeout-s 70
step powerloss-control 40 "$py" "$here/powerloss.py" --bin "$bin" --cycles 5 --seed 3 \
    --sync off --expect-loss --quiet --timeout-s 30

steps_summary
