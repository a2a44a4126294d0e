"""Long version of security finding 13 (docs/SECURITY.md, "Memory and descriptors"): an attacker
on another address (127.0.0.2) floods QoS 0 at a subscriber that does not read, for
LMQ_ATTACK_SECONDS (default 60), while a legitimate publisher sends QoS 1 to the same
subscriber the whole time. Every QoS 1 publish must be accepted (PUBACK 0) and delivered, in
order, once the subscriber reads; the QoS 0 budget holds (queued QoS 0 stays within it)."""

import os
import socket
import threading
import time
import urllib.request

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

SECONDS = float(os.environ.get("LMQ_ATTACK_SECONDS", "60"))
QOS0_BUDGET = 100
PAYLOAD = b"x" * 1000
QOS1_INTERVAL_S = 0.01


def metric(b, line_prefix):
    addr = b.events("ready")[-1]["http"][0]
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(line_prefix + " "):
                return int(line.split()[-1])
    raise AssertionError("no %s in /metrics" % line_prefix)


def test_sustained_qos0_flood_never_refuses_qos1(start_broker):
    # refuse: a QoS 1 publish without room would be refused, not hidden as a drop.
    b = start_broker("[limits]\nmax_queued_qos0 = %d\nmax_output_bytes = 65536\n"
                     "queue_overflow = refuse\n" % QOS0_BUDGET,
                     extra_args=["--http", "127.0.0.1:0"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((b.host, b.port))
    sub = m.RawClient(b.port, version=5, sock=sock, timeout=30)
    sub.connect("victim")
    sub.subscribe([("victim/t", 1)])

    stop = threading.Event()
    flooded = [0]

    def flood():
        s = socket.create_connection((b.host, b.port), timeout=30, source_address=("127.0.0.2", 0))
        attacker = m.RawClient(b.port, version=5, sock=s, timeout=30)
        attacker.connect("attacker")
        while not stop.is_set():
            for _ in range(200):
                attacker.publish("victim/t", PAYLOAD, qos=0)
            flooded[0] += 200
        attacker.close()

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    pub = b.connect("legit", version=5)
    codes = []
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        pid = pub.publish("victim/t", b"q1-%d" % len(codes), qos=1)
        ack = pub.expect(m.PUBACK, timeout=30)
        assert ack.pid == pid, ack
        codes.append(ack.rc)
        time.sleep(QOS1_INTERVAL_S)
    stop.set()
    t.join(timeout=30)

    dropped = metric(b, 'ledgermq_dropped_total{reason="qos0_queue_full"}')
    assert dropped > 0, "the flood never filled the QoS 0 budget: not an attack"
    ok = codes.count(0)
    print("QoS 1 accepted %d/%d during %.0f s of QoS 0 flood (%d sent, %d dropped)" % (
        ok, len(codes), SECONDS, flooded[0], dropped))
    assert ok == len(codes), "QoS 1 refused during a QoS 0 flood: %r" % sorted(set(codes))

    got = []
    end = time.monotonic() + 120
    while len(got) < len(codes) and time.monotonic() < end:
        p = sub.expect_publish(timeout=30)
        if p.qos == 1:
            got.append(p.payload)
    assert got == [b"q1-%d" % i for i in range(len(codes))]
