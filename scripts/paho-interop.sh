#!/usr/bin/env bash
# Runs the Eclipse Paho interoperability client suites (MQTT 5: client_test5.py, MQTT 3.1.1:
# client_test.py) against a fresh ledgermq broker; docs/PROTOCOL.md "Interoperability".
#
#   scripts/paho-interop.sh PAHO_TESTING_DIR [LEDGERMQ_BINARY] [v5|v311|both]
#
# PAHO_TESTING_DIR is a checkout of https://github.com/eclipse/paho.mqtt.testing (its code is
# not part of this repository). Each suite gets a broker of its own on a free 127.0.0.1 port
# with a temporary data directory: MQTT 5 with max_keepalive = 60 (the Server Keep Alive its
# test_server_keep_alive expects), 3.1.1 with the defaults (its client connects with keepalive
# 0, which max_keepalive refuses for 3.1.1). Prints each suite's outcome; exit status 0 when
# every test passed (see docs/PROTOCOL.md for the ones that don't, and why).
set -uo pipefail

PAHO=${1:?usage: $0 PAHO_TESTING_DIR [LEDGERMQ_BINARY] [v5|v311|both]}
BIN=${2:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/ledgermq"}
WHICH=${3:-both}
PY=/usr/bin/python3
SUITE_TIMEOUT_S=900
INTEROP="$PAHO/interoperability"
[ -f "$INTEROP/client_test5.py" ] || { echo "paho-interop: no $INTEROP/client_test5.py" >&2; exit 1; }
[ -x "$BIN" ] || { echo "paho-interop: $BIN is not executable (build first)" >&2; exit 1; }
BIN=$(realpath "$BIN")

WORK=$(mktemp -d)
BROKER=
trap 'stop_broker; rm -rf "$WORK"' EXIT

stop_broker() {
    if [ -n "$BROKER" ]; then
        kill "$BROKER" 2>/dev/null
        wait "$BROKER" 2>/dev/null
        BROKER=
    fi
}

# start_broker NAME CONFIG_TEXT: a broker of its own on a free port (in $PORT).
start_broker() {
    mkdir -p "$WORK/$1"
    printf '%b' "$2" >"$WORK/$1/broker.conf"
    PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    timeout $((2 * SUITE_TIMEOUT_S)) "$BIN" serve --config "$WORK/$1/broker.conf" \
        --data "$WORK/$1/data" --mqtt "127.0.0.1:$PORT" --http none --log-level info 2>"$WORK/$1/broker.log" &
    BROKER=$!
    for _ in $(seq 50); do
        grep -q '"event":"ready"' "$WORK/$1/broker.log" && return 0
        sleep 0.1
    done
    echo "paho-interop: the broker did not start:" >&2
    cat "$WORK/$1/broker.log" >&2
    exit 1
}

status=0
cd "$INTEROP" || exit 1
if [ "$WHICH" != v311 ]; then
    start_broker v5 '[limits]\nmax_keepalive = 60\n'
    echo "== MQTT 5: client_test5.py (port $PORT, max_keepalive = 60)"
    timeout "$SUITE_TIMEOUT_S" "$PY" client_test5.py -p "$PORT" || status=1
    stop_broker
fi
if [ "$WHICH" != v5 ]; then
    # The defaults: its client asks for keepalive 0, which max_keepalive refuses for 3.1.1.
    start_broker v311 ''
    echo "== MQTT 3.1.1: client_test.py (port $PORT, default configuration)"
    # client_test.py hands its own -p option on to unittest, which refuses it: unittest gets
    # only what follows the port (test names, if any).
    timeout "$SUITE_TIMEOUT_S" "$PY" -c 'import runpy, sys, unittest
main = unittest.main
unittest.main = lambda *a, **k: main(*a, argv=sys.argv[:1] + sys.argv[3:], **k)
runpy.run_path("client_test.py", run_name="__main__")' -p "$PORT" || status=1
    stop_broker
fi
exit $status
