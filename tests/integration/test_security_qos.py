"""Security finding 13 (docs/SECURITY.md, "Memory and descriptors"): a QoS 0 flood to a slow
subscriber must not make QoS 1 publishes to it fail. QoS 0 has its own budget per session
([limits] max_queued_qos0) and gives way: queued QoS 0 is dropped (counted in /metrics) when
QoS 1/2 needs the room."""

import socket
import time
import urllib.request

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

QOS0_BUDGET = 100
QUEUE_MAX = 200
FLOOD_CHUNK = 1000  # QoS 0 messages per round of the flood
FLOOD_ROUNDS_MAX = 30  # the socket buffers (up to tcp_wmem's maximum) fill well before this
FLOOD_PAYLOAD = b"x" * 1000
QOS1_COUNT = 150  # more than QUEUE_MAX - QOS0_BUDGET: queued QoS 0 must give way

# refuse: a QoS 1 publish that found no room would be refused (0x97 / held back), which is
# what the tests assert never happens; drop_oldest would hide it as a drop.
CONFIG = ("[limits]\nmax_queued_messages = %d\nmax_queued_qos0 = %d\nmax_output_bytes = 8192\n"
          "queue_overflow = refuse\n" % (QUEUE_MAX, QOS0_BUDGET))


def metrics(b):
    addr = b.events("ready")[-1]["http"][0]
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=10) as resp:
        return resp.read().decode()


def metric(b, name, label=None):
    prefix = "ledgermq_%s%s " % (name, '{reason="%s"}' % label if label else "")
    lines = [l for l in metrics(b).splitlines() if l.startswith(prefix)]
    assert lines, "no %s in /metrics" % prefix
    return int(lines[0].split()[-1])


def flood(b, attacker):
    """QoS 0 to the slow subscriber until its QoS 0 queue is full and stays full: beyond
    whatever the kernel's socket buffers absorb (up to tcp_wmem's maximum) and beyond the QoS 0
    budget, so that the broker drops QoS 0. Returns the count sent."""
    sent = 0
    for _ in range(FLOOD_ROUNDS_MAX):
        for _ in range(FLOOD_CHUNK):
            attacker.publish("flood/t", FLOOD_PAYLOAD, qos=0)
        sent += FLOOD_CHUNK
        attacker.ping()  # every flood message has been routed
        time.sleep(0.05)  # the socket takes what it still can
        if (metric(b, "dropped_total", "qos0_queue_full") > 0 and
                metric(b, "queued_messages") >= QOS0_BUDGET):
            return sent
    pytest.fail("no full QoS 0 queue after %d messages to a subscriber that does not read" % sent)


def slow_subscriber(b, version, client_id):
    """A subscriber whose receive buffer is tiny and who does not read (yet)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((b.host, b.port))
    c = m.RawClient(b.port, version=version, sock=sock, timeout=10)
    c.connect(client_id)
    c.subscribe([("flood/t", 1)])
    return c


def test_qos0_flood_does_not_refuse_qos1_to_slow_subscriber(start_broker, version):
    b = start_broker(CONFIG, extra_args=["--http", "127.0.0.1:0"])
    sub = slow_subscriber(b, version, "slow-sub")
    attacker = b.connect("flooder", version=version)
    # The flood goes beyond the QoS 0 budget: the broker drops QoS 0 (the precondition).
    flood(b, attacker)
    for _ in range(3):  # and the QoS 0 queue is full now, not just once
        attacker.publish("flood/t", FLOOD_PAYLOAD, qos=0)
    ev = b.wait_event("qos0_dropped", pred=lambda e: e.get("client_id") == "slow-sub")
    assert ev["limit"] == "max_queued_qos0", ev

    # The legitimate QoS 1 publishes to the same subscriber on the same topic: all accepted
    # (v5 PUBACK 0; 3.1.1 acknowledged rather than held back).
    pub = b.connect("legit", version=version)
    codes = []
    for i in range(QOS1_COUNT):
        pid = pub.publish("flood/t", b"q1-%d" % i, qos=1)
        ack = pub.expect(m.PUBACK, timeout=10)
        assert ack.pid == pid, ack
        codes.append(ack.rc)
    assert codes == [0] * QOS1_COUNT, "QoS 1 refused after a QoS 0 flood: %r" % codes
    # Making that room cost queued QoS 0 messages, not QoS 1.
    assert metric(b, "dropped_total", "qos0_gave_way") > 0

    # Once the subscriber reads, every QoS 1 message arrives, in order (QoS 0 may come first).
    got = []
    deadline = time.monotonic() + 30
    while len(got) < QOS1_COUNT and time.monotonic() < deadline:
        p = sub.expect_publish(timeout=10)
        if p.qos == 1:
            got.append(p.payload)
        else:
            assert p.payload == FLOOD_PAYLOAD
    assert got == [b"q1-%d" % i for i in range(QOS1_COUNT)]
    sub.disconnect()
    assert b.alive()


def test_qos0_budget_bounds_what_a_slow_subscriber_gets_queued(start_broker):
    """max_queued_qos0 bounds the QoS 0 queue on its own, far below max_queued_messages: once
    the socket is full, a further burst is dropped but for at most the budget; and everything
    counted as queued is then delivered (the counts add up)."""
    b = start_broker("[limits]\nmax_queued_qos0 = %d\nmax_output_bytes = 8192\n" % QOS0_BUDGET,
                     extra_args=["--http", "127.0.0.1:0"])
    sub = slow_subscriber(b, 5, "slow-sub0")
    attacker = b.connect("flooder0", version=5)
    sent = flood(b, attacker)
    before = metric(b, "dropped_total", "qos0_queue_full")
    for _ in range(FLOOD_CHUNK):
        attacker.publish("flood/t", FLOOD_PAYLOAD, qos=0)
    sent += FLOOD_CHUNK
    attacker.ping()
    dropped = metric(b, "dropped_total", "qos0_queue_full")
    # The queue was full: of the burst, at most the budget (refilled as the socket drains a
    # little) is queued, the rest dropped (10,000 max_queued_messages would have taken all).
    assert dropped - before >= FLOOD_CHUNK - 2 * QOS0_BUDGET, (before, dropped)
    # A sentinel proves the end of what was queued; QoS 1 is never dropped.
    attacker.publish_acked("flood/t", b"sentinel", qos=1)
    received = 0
    while True:
        p = sub.expect_publish(timeout=10)
        if p.payload == b"sentinel":
            break
        received += 1
    assert received + dropped == sent, (received, dropped, sent)
