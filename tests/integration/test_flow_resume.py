"""Inbound flow control without timers (docs/PROTOCOL.md "Publishing and delivery",
docs/ARCHITECTURE.md "Flow control and limits"): a 3.1.1 publisher that keeps more QoS 1/2
messages in flight than `max_inflight` is resumed the moment one of its acks goes out, QoS 2
beyond the window never deadlocks, and an ack that has nothing to make durable does not wait
for a store commit."""

import time

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

# The broker's safety-net tick (BROKER_TICK_MS): resuming on it instead of on the ack would
# take about this long per blocked PUBLISH.
TICK_S = 0.25


def start(start_broker, config_text=None):
    return start_broker(config_text, extra_args=["--http", "127.0.0.1:0"])  # for /metrics


def send_all(c, topic, count, qos):
    """Pipelines count PUBLISHes (packet ids 1..count) without waiting for any ack."""
    c.send_raw(b"".join(
        m.encode_publish(4, topic, b"m%d" % i, qos=qos, pid=i) for i in range(1, count + 1)))


def test_311_qos1_beyond_window_resumed_by_each_ack(start_broker):
    """max_inflight = 1 and a persistent subscriber (every message is stored, so every PUBACK
    waits for a commit): 80 pipelined QoS 1 PUBLISHes each wait for the previous ack. Resumed
    by the ack they take about one commit each; resumed by the 250 ms tick, 80 x ~125 ms."""
    b = start(start_broker, "[limits]\nmax_inflight = 1\n")
    sub = b.connect_persistent("fr-sub", version=4)
    sub.subscribe([("fr/q1", 1)])
    pub = b.connect("fr-pub", version=4)
    n = 80
    t0 = time.monotonic()
    send_all(pub, "fr/q1", n, 1)
    acked = [pub.expect(m.PUBACK, timeout=30).pid for _ in range(n)]
    elapsed = time.monotonic() - t0
    assert acked == list(range(1, n + 1))  # in the order of the PUBLISHes
    # 10 s would be the tick's expected cost; event-driven resumption needs a fraction of it.
    assert elapsed < n * TICK_S / 4, "80 acks took %.1f s: resumed by the tick?" % elapsed
    got = [p.payload for p in sub.publishes(n, timeout=30)]
    assert got == [b"m%d" % i for i in range(1, n + 1)]


def test_311_qos2_beyond_window_does_not_deadlock(start_broker):
    """A 3.1.1 client sends 50 QoS 2 PUBLISHes before any PUBREL (window 4): the PUBRELs sit in
    its input behind PUBLISHes the broker holds back. Counting ids awaiting PUBREL against the
    window would deadlock; the window counts only PUBRECs not yet sent."""
    b = start(start_broker, "[limits]\nmax_inflight = 4\n")
    sub = b.connect("fr2-sub", version=4)
    sub.subscribe([("fr/q2", 2)])
    pub = b.connect("fr2-pub", version=4)
    n = 50
    send_all(pub, "fr/q2", n, 2)
    comps = set()
    recs = 0
    while len(comps) < n:
        p = pub.recv(timeout=10)  # raises Timeout on a deadlock
        if p.type == m.PUBREC:
            recs += 1
            pub.pubrel(p.pid)
        else:
            assert p.type == m.PUBCOMP, p
            comps.add(p.pid)
    assert recs == n and comps == set(range(1, n + 1))
    got = []
    released = 0
    while len(got) < n or released < n:
        p = sub.recv(timeout=10)
        if p.type == m.PUBLISH:
            sub.pubrec(p.pid)
            got.append(p.payload)
        else:
            assert p.type == m.PUBREL, p
            sub.pubcomp(p.pid)
            released += 1
    assert sorted(got) == sorted(b"m%d" % i for i in range(1, n + 1))  # each exactly once
    sub.expect_nothing(timeout=0.5)


@pytest.mark.parametrize("version", [4, 5])
def test_ack_with_nothing_to_store_needs_no_commit(start_broker, version):
    """QoS 1 to a clean subscriber, to nobody, and QoS 2 from a clean session: nothing is
    written, so the acks go out without a store commit (ledgermq_store_commits_total stays)."""
    b = start(start_broker)
    sub = b.connect("fr3-sub", version=version)
    sub.subscribe([("fr/clean", 1)])
    pub = b.connect("fr3-pub", version=version)
    pub.publish_acked("fr/warm", b"w")  # connection set-up settled
    before = b.metric("ledgermq_store_commits_total")
    for i in range(20):
        pub.publish_acked("fr/clean", b"c%d" % i, qos=1)
        pub.publish_acked("fr/nobody", b"n%d" % i, qos=1)
        pub.publish_acked("fr/clean", b"q%d" % i, qos=2)
    assert len(sub.publishes(40, timeout=10)) == 40
    assert b.metric("ledgermq_store_commits_total") == before


def test_ack_of_stored_message_waits_for_commit(start_broker):
    """Control for the test above: a persistent subscriber stores every message, and each
    PUBACK follows a commit."""
    b = start(start_broker)
    sub = b.connect_persistent("fr4-sub", version=5)
    sub.subscribe([("fr/durable", 1)])
    pub = b.connect("fr4-pub", version=5)
    pub.publish_acked("fr/warm", b"w")
    before = b.metric("ledgermq_store_commits_total")
    for i in range(20):
        pub.publish_acked("fr/durable", b"d%d" % i, qos=1)
    assert b.metric("ledgermq_store_commits_total") >= before + 20
    assert len(sub.publishes(20, timeout=10)) == 20


def test_acks_keep_publish_order_when_stored_and_unstored_mix(start_broker):
    """A stored message's PUBACK waits for its commit; the PUBACK of an unstored message sent
    right after it must not overtake it [MQTT-4.6.0-2]."""
    b = start(start_broker)
    sub = b.connect_persistent("fr5-sub", version=4)
    sub.subscribe([("fr/stored", 1)])
    pub = b.connect("fr5-pub", version=4)
    msgs = []
    for i in range(1, 201):
        topic = "fr/stored" if i % 3 == 0 else "fr/unstored"
        msgs.append(m.encode_publish(4, topic, b"x", qos=1, pid=i))
    pub.send_raw(b"".join(msgs))
    acked = [pub.expect(m.PUBACK, timeout=10).pid for _ in range(200)]
    assert acked == list(range(1, 201))


def test_a_live_subscriber_far_behind_holds_its_publishers(start_broker):
    """Live flow control: a connected subscriber that consumes, but more than its in-memory
    queue (512) behind, holds its publishers (3.1.1 and MQTT 5 alike: not read, not refused)
    until it catches up; nothing is dropped or refused, everything arrives in order."""
    b = start(start_broker)
    sub = b.connect("lf-sub", version=5, props=[("receive_maximum", 10)])
    sub.subscribe([("lf/t", 1)])
    p311 = b.connect("lf-pub311", version=4)
    n = 1000
    send_all(p311, "lf/t", n, 1)
    acked = []
    with pytest.raises(m.Timeout):
        while True:
            acked.append(p311.expect(m.PUBACK, timeout=1.0).pid)
    assert 512 <= len(acked) < 600, len(acked)  # held once 512 wait behind its window
    p5 = b.connect("lf-pub5", version=5)
    window = p5.server_receive_maximum()
    p5.send_raw(b"".join(m.encode_publish(5, "lf/t", b"v5-%d" % i, qos=1, pid=i)
                         for i in range(1, window + 1)))
    with pytest.raises(m.Timeout):
        p5.expect(m.PUBACK, timeout=0.5)  # held too: no 0x97
    got = [p.payload for p in sub.publishes(n + window, timeout=30)]
    assert [x for x in got if x.startswith(b"m")] == [b"m%d" % i for i in range(1, n + 1)]
    assert [x for x in got if x.startswith(b"v5-")] == [b"v5-%d" % i for i in range(1, window + 1)]
    acked += [p311.expect(m.PUBACK, timeout=10).pid for _ in range(n - len(acked))]
    assert acked == list(range(1, n + 1))
    rcs = [p5.expect(m.PUBACK, timeout=10).rc for _ in range(window)]
    assert rcs == [0] * window
    assert b.metric("ledgermq_refused_total", '{reason="quota"}') == 0
    assert b.metric("ledgermq_dropped_total", '{reason="queue_overflow"}') == 0
