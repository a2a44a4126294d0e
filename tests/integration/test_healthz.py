"""The lifecycle on /healthz (docs/PROTOCOL.md "Health and lifecycle"): starting (503, the HTTP
listener is up while recovery runs) -> ready (200) -> draining (503 for [server] drain_grace_ms
after SIGTERM, MQTT still served) -> stopped (the listener is gone)."""

import json
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.ledgermq_only

# Test-only: makes recovery last this long (lifecycle.c), so the starting state can be seen.
DELAY_MS = 3000


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/healthz"):
    """(status, parsed JSON body), or (None, None) when nothing listens."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except (ConnectionRefusedError, ConnectionResetError, urllib.error.URLError):
        return None, None


def poll(port, want, timeout=10.0):
    """Polls /healthz until its status field is `want`; returns the HTTP status and the list of
    states seen on the way."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, body = get(port)
        state = body.get("status") if body else None
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == want:
            return code, seen
        time.sleep(0.05)
    raise AssertionError("/healthz never said %r; seen %r" % (want, seen))


def test_healthz_says_starting_while_recovery_runs_then_ready(start_broker):
    port = free_port()
    b = start_broker(extra_args=["--http", "127.0.0.1:%d" % port],
                     env={"LMQ_TEST_RECOVERY_DELAY_MS": DELAY_MS}, wait_ready=False)
    code, seen = poll(port, "starting")
    assert code == 503, seen
    assert not b.events("ready"), "ready before /healthz said starting"
    # Every other route answers 503 with a JSON error while starting.
    for path in ("/metrics", "/version", "/ledger/checkpoint"):
        code, body = get(port, path)
        assert (code, body) == (503, {"error": 503, "reason": "starting"}), (path, code, body)
    code, seen = poll(port, "ready")
    assert code == 200 and seen[-2:] == ["starting", "ready"], seen
    b.wait_event("ready", timeout=5)
    assert get(port, "/version")[0] == 200
    # The broker's MQTT listener works once ready.
    host, _, p = b.events("ready")[-1]["mqtt"][0].rpartition(":")
    b.host, b.port = host.strip("[]"), int(p)
    c = b.raw(5)
    c.connect("after-start")


def test_sigterm_drains_for_the_grace_period_while_mqtt_still_serves(start_broker):
    port = free_port()
    b = start_broker("[server]\ndrain_grace_ms = 3000\n",
                     extra_args=["--http", "127.0.0.1:%d" % port])
    assert get(port) == (200, {"status": "ready"})
    before = b.raw(5)
    before.connect("before")
    b.proc.send_signal(signal.SIGTERM)
    code, seen = poll(port, "draining", timeout=2)
    assert code == 503, seen
    b.wait_event("draining", timeout=2)
    # Still serving: a new MQTT connection is accepted, an old one still works.
    during = b.raw(5)
    during.connect("during")
    before.ping()
    assert b.alive()
    assert not b.events("shutdown"), "the shutdown began before the grace period ended"
    b.wait_exit(0, timeout=10)
    assert get(port) == (None, None)  # stopped: nothing listens
    names = [e.get("event") for e in b.events()]
    assert names.index("draining") < names.index("shutdown") < names.index("stopped")


def test_a_second_sigterm_during_the_drain_stops_at_once(start_broker):
    port = free_port()
    b = start_broker("[server]\ndrain_grace_ms = 600000\n",
                     extra_args=["--http", "127.0.0.1:%d" % port])
    b.proc.send_signal(signal.SIGTERM)
    b.wait_event("draining", timeout=5)
    b.proc.send_signal(signal.SIGTERM)
    b.wait_exit(0, timeout=10)  # not the 10 minutes of the grace period


def test_without_a_grace_period_sigterm_stops_at_once(start_broker):
    port = free_port()
    b = start_broker(extra_args=["--http", "127.0.0.1:%d" % port])
    b.proc.send_signal(signal.SIGTERM)
    b.wait_exit(0, timeout=10)
    assert not b.events("draining")


def test_no_request_fails_at_the_switch_from_starting_to_ready(start_broker):
    """Four clients poll /healthz back to back through the end of recovery, over three starts:
    every request gets an answer (503 starting or 200 ready), none a reset, because the start-up
    loop stops accepting and finishes its answers before the broker's loop takes over. (Before:
    about two resets per switch.)"""
    import threading
    port = free_port()
    env = {"LMQ_TEST_RECOVERY_DELAY_MS": 700}
    b = start_broker(extra_args=["--http", "127.0.0.1:%d" % port], env=env, wait_ready=False)
    failed, answered, lock = [], [0], threading.Lock()
    for round_ in range(3):
        if round_ > 0:
            b.terminate()
            b.restart(env=env, wait_ready=False)
        poll(port, "starting")
        done = threading.Event()

        def hammer():
            while not done.is_set():
                code, _ = get(port)
                with lock:
                    if code is None:
                        failed.append(round_)
                    else:
                        answered[0] += 1

        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 20
            while get(port)[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # and a little after the switch
        finally:
            done.set()
            for t in threads:
                t.join(timeout=10)
    assert answered[0] > 100 and not failed, (answered[0], failed)
