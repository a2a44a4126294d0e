#!/usr/bin/env bash
# Measures LedgerMQ's durable store with `ledgermq bench` against ledgermq itself.
#
#   scripts/bench-store.sh [LEDGERMQ_BIN]      (default build/ledgermq)
#
# 1. QoS 1 fan-in, 4 publishers -> 1 subscriber, 64 B, 10 s, with --sync always and
#    then --sync off: the bench report, then the server's store_stats line after
#    SIGTERM (messages per fsync = messages_in / commits). The subscriber has a
#    persistent session (clean start 0, expiry 600 s): messages for clean
#    sessions are not written to the store, so they would measure no disk at all.
# 2. Restart: 1,000,000 QoS 1 messages queued for 1 persistent subscriber
#    (fill), SIGTERM, restart: the `recovered` line (recovery_ms) and the RSS of
#    the restarted server once it is ready.
# Every step has a time limit; the script stops the servers it started (by
# pid), removes its data directory and prints the machine it ran on.
set -euo pipefail

BIN="${1:-build/ledgermq}"
DURATION_S="${BENCH_DURATION_S:-10}"
FILL_MESSAGES="${BENCH_FILL_MESSAGES:-1000000}"
READY_TIMEOUT_S=60     # includes recovering a large backlog
STOP_TIMEOUT_S=60      # SIGTERM: drain and close the store
BENCH_LIMIT_S=120      # one 10 s run: setup, warm-up, drain and close are bounded inside
FILL_LIMIT_S=900       # 1M messages at a few thousand fsyncs/s

if [ ! -x "$BIN" ]; then
    echo "bench-store: $BIN is not an executable (usage: $0 [LEDGERMQ_BIN])" >&2
    exit 1
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ledgermq-bench-store.XXXXXX")"
SERVER_PID=""
SERVER_LOG=""

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints the last JSON log line of $SERVER_LOG whose event is $1.
log_event() {
    grep -F "\"event\":\"$1\"" "$SERVER_LOG" | tail -n 1 || true
}

# start_server NAME ARGS...: starts `ledgermq serve`, waits for "ready", sets SERVER_PID and PORT.
start_server() {
    local name="$1"
    shift
    SERVER_LOG="$WORK/$name.log"
    "$BIN" serve --mqtt 127.0.0.1:0 --http none --log-level info "$@" 2>"$SERVER_LOG" >/dev/null &
    SERVER_PID=$!
    local waited=0 line=""
    while [ "$waited" -lt $((READY_TIMEOUT_S * 10)) ]; do
        line="$(log_event ready)"
        [ -n "$line" ] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench-store: ledgermq exited before it was ready:" >&2
            tail -n 20 "$SERVER_LOG" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    PORT="$(printf '%s' "$line" | sed -n 's/.*"mqtt":\["[^"]*:\([0-9]*\)".*/\1/p')"
    if [ -z "$PORT" ]; then
        echo "bench-store: no ready line with a port within ${READY_TIMEOUT_S}s" >&2
        tail -n 20 "$SERVER_LOG" >&2
        exit 1
    fi
}

# Sends SIGTERM and waits (bounded) for the server to exit.
stop_server() {
    kill -TERM "$SERVER_PID"
    local waited=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT_S * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "bench-store: ledgermq did not stop within ${STOP_TIMEOUT_S}s of SIGTERM (killed)"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

rss_of() {
    awk '/^VmRSS:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$1/status"
}

# "messages per fsync = messages_in / commits" from a store_stats line.
per_fsync() {
    /usr/bin/python3 -c 'import json,sys
s = json.loads(sys.argv[1])
c = s.get("commits", 0)
print("messages per fsync: %.1f (messages_in %d / commits %d)" % (
    s.get("messages_in", 0) / c if c else 0.0, s.get("messages_in", 0), c))' "$1"
}

echo "== machine"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpus:    $(nproc) ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))"
echo "memory:  $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:  $(uname -sr)"
echo "binary:  $BIN ($("$BIN" version))"
echo "data dir:"
df -hT "$WORK" | sed 's/^/  /'

for sync in always off; do
    echo
    echo "== QoS 1 fan-in 4 -> 1, 64 B, ${DURATION_S} s, --sync $sync"
    start_server "fanin-$sync" --data "$WORK/data-$sync" --sync "$sync"
    rc=0
    timeout --kill-after=10 "$BENCH_LIMIT_S" "$BIN" bench --port "$PORT" --scenario fan-in \
        --publishers 4 --qos 1 --payload 64 --duration "$DURATION_S" --warmup 1 \
        --clean-start 0 --session-expiry 600 --pid "$SERVER_PID" || rc=$?
    [ "$rc" -ne 0 ] && echo "bench exited with $rc"
    stop_server
    stats="$(log_event store_stats)"
    echo "store_stats: ${stats:-(none logged)}"
    [ -n "$stats" ] && per_fsync "$stats"
done

echo
echo "== restart with a backlog: $FILL_MESSAGES QoS 1 messages for 1 persistent subscriber"
cat >"$WORK/backlog.ini" <<'EOF'
[limits]
max_queued_messages = 2000000
max_queued_bytes = 4000000000
EOF
start_server fill --data "$WORK/data-fill" --config "$WORK/backlog.ini"
rc=0
timeout --kill-after=10 "$FILL_LIMIT_S" "$BIN" bench --port "$PORT" --scenario fill \
    --subscribers 1 --messages "$FILL_MESSAGES" --qos 1 --duration $((FILL_LIMIT_S - 30)) \
    --pid "$SERVER_PID" || rc=$?
[ "$rc" -ne 0 ] && echo "bench exited with $rc"
stop_server
echo "store_stats: $(log_event store_stats)"
echo "data dir after the fill: $(du -sh "$WORK/data-fill" | cut -f1)"

start_server restart --data "$WORK/data-fill" --config "$WORK/backlog.ini"
echo "recovered: $(log_event recovered)"
echo "rss of the restarted server after recovery: $(rss_of "$SERVER_PID")"
stop_server
echo
echo "bench-store: done"
