#!/bin/bash
# `make test-crash`: the long crash runs (about 10-15 minutes on 2 cores: a short
# power-loss cycle takes ~0.27 s, measured with 60 cycles).
#   killloop.py   500 cycles, --sync always                      must lose nothing
#   powerloss.py 1000 cycles, --sync always (short cycles)       must lose nothing
#   powerloss.py  200 cycles, --sync always --tear (torn fsyncs) must lose nothing
#   killloop.py    10 cycles, --sync off (a plain kill -9 keeps the page cache:
#                             sync off must still lose nothing acknowledged)
#   powerloss.py   10 cycles, --sync off --expect-loss            control: must lose
# Short cycles (50-300 ms, at most 400 new messages per publisher per cycle)
# keep the record sets and the final drain bounded.
# Binary: first argument, else $LEDGERMQ_BIN. SEED (env) shifts every seed.
# Prints "N passed, M failed"; exit 1 on any failure.
set -u
STEP_KILL_AFTER_S=30
. "$(dirname "$0")/steps.sh"
seed="${SEED:-100}"
short=(--min-delay-ms 50 --max-delay-ms 300 --max-per-cycle 400)

step build-shim 60 bash "$here/build.sh"
step shimcheck 60 "$py" "$here/shimcheck.py"
step killloop-500 1800 "$py" "$here/killloop.py" --bin "$bin" --cycles 500 \
    --seed $((seed + 1)) --sync always "${short[@]}" --timeout-s 1750
step powerloss-1000 3000 "$py" "$here/powerloss.py" --bin "$bin" --cycles 1000 \
    --seed $((seed + 2)) --sync always "${short[@]}" --timeout-s 2950
step powerloss-tear-200 900 "$py" "$here/powerloss.py" --bin "$bin" --cycles 200 \
    --seed $((seed + 3)) --sync always --tear "${short[@]}" --timeout-s 850
step killloop-sync-off 200 "$py" "$here/killloop.py" --bin "$bin" --cycles 10 \
    --seed $((seed + 4)) --sync off --timeout-s 180
step powerloss-control 200 "$py" "$here/powerloss.py" --bin "$bin" --cycles 10 \
    --seed $((seed + 5)) --sync off --expect-loss --timeout-s 180

steps_summary
