"""Receive Maximum (both directions) and Maximum Packet Size (both directions)."""

import pytest

import mqttraw as m


def offline_backlog(broker, cid, n, qos=1, props=None):
    """A persistent v5 session subscribed to fc/t with n messages queued for it."""
    c = broker.connect_persistent(cid, 5, props=props)
    c.subscribe([("fc/t", qos)])
    c.disconnect()
    pub = broker.connect("pub-" + cid, version=5)
    for i in range(n):
        pub.publish_acked("fc/t", b"%d" % i, qos=qos)
    return pub


def assert_window_full(c):
    """Nothing more may arrive while the client's window is full."""
    assert c.ping().type == m.PINGRESP
    assert not c.pending, "PUBLISH beyond Receive Maximum: %r" % c.pending
    c.expect_nothing(timeout=0.3)


# mosquitto 2.0.11, resuming a session with receive maximum 2, sends two more
# PUBLISHes after the first PUBACK (3 unacknowledged): a mosquitto bug.
@pytest.mark.ledgermq_only
def test_receive_maximum_limits_unacknowledged_qos1_publishes(broker):
    offline_backlog(broker, "rm", 5)
    c = broker.connect_persistent("rm", 5, props={"receive_maximum": 2})
    got = c.publishes(2, ack=False)
    assert_window_full(c)
    c.puback(got[0].pid)
    got.append(c.expect_publish(ack=False))
    assert_window_full(c)
    for p in got[1:]:
        c.puback(p.pid)
    got += c.publishes(2, ack=False)
    assert_window_full(c)
    for p in got[3:]:
        c.puback(p.pid)
    assert [p.payload for p in got] == [b"%d" % i for i in range(5)]


def test_receive_maximum_counts_qos2_until_pubcomp(broker):
    offline_backlog(broker, "rm2", 3, qos=2)
    c = broker.connect_persistent("rm2", 5, props={"receive_maximum": 1})
    first = c.expect_publish(ack=False)
    c.pubrec(first.pid)
    assert c._expect_ack(m.PUBREL).pid == first.pid
    assert_window_full(c)  # PUBREC'd but not PUBCOMP'd still counts
    c.pubcomp(first.pid)
    rest = c.publishes(2)
    assert [p.payload for p in [first] + rest] == [b"0", b"1", b"2"]


def test_receive_maximum_applies_to_live_messages(broker):
    c = broker.connect("live", version=5, props={"receive_maximum": 1})
    c.subscribe([("fc/live", 1)])
    pub = broker.connect("pub", version=5)
    for i in range(3):
        pub.publish_acked("fc/live", b"%d" % i)
    first = c.expect_publish(ack=False)
    assert_window_full(c)
    c.puback(first.pid)
    rest = c.publishes(2)
    assert [p.payload for p in [first] + rest] == [b"0", b"1", b"2"]


def test_qos0_published_while_window_is_full_is_delivered(broker):
    # [MQTT-4.9.0-2]: with no send quota left the server MAY go on sending QoS 0
    # or hold it back too; either way it must arrive once the window opens.
    c = broker.connect("q0", version=5, props={"receive_maximum": 1})
    c.subscribe([("fc/one", 1), ("fc/zero", 0)])
    pub = broker.connect("pub", version=5)
    pub.publish_acked("fc/one", b"a")
    pub.publish_acked("fc/one", b"b")  # waits for the window
    pub.publish("fc/zero", b"z", qos=0)
    pub.ping()
    first = c.expect_publish(ack=False)
    assert first.payload == b"a"
    c.puback(first.pid)
    rest = c.publishes(2)
    assert sorted(p.payload for p in rest) == [b"b", b"z"]
    assert [p.qos for p in rest if p.payload == b"z"] == [0]


@pytest.mark.ledgermq_only  # mosquitto's max_inflight_messages only limits outgoing messages
def test_inbound_qos2_beyond_server_receive_maximum_disconnects_0x93(start_broker):
    b = start_broker("[limits]\nmax_inflight = 2\n")
    c = b.connect("flood", version=5)
    assert c.connack.props.get("receive_maximum") == 2
    for pid in (1, 2):
        c.publish("fc/in", b"x", qos=2, pid=pid)
        assert c.expect(m.PUBREC).pid == pid
    c.publish("fc/in", b"x", qos=2, pid=3)
    c.expect_disconnect(rc=0x93)  # Receive Maximum exceeded


@pytest.mark.ledgermq_only  # as above
def test_inbound_qos2_within_receive_maximum_after_pubrel_accepted(start_broker):
    b = start_broker("[limits]\nmax_inflight = 2\n")
    c = b.connect("steady", version=5)
    for pid in range(1, 10):
        c.publish("fc/in", b"x", qos=2, pid=pid)
        assert c.expect(m.PUBREC).pid == pid
        if pid >= 2:
            c.pubrel(pid - 1)
            assert c.expect(m.PUBCOMP).pid == pid - 1
    assert c.ping().type == m.PINGRESP


# ---- Maximum Packet Size

SIZE_CONFIG = "[limits]\nmax_packet_size = 1024\n"


def test_connack_advertises_maximum_packet_size(start_broker):
    b = start_broker(SIZE_CONFIG)
    assert b.raw(5).connect("x").props.get("maximum_packet_size") == 1024


def test_inbound_packet_over_maximum_size_disconnects(start_broker, version):
    b = start_broker(SIZE_CONFIG)
    c = b.connect("big", version=version)
    c.publish("fc/big", b"x" * 2000, qos=1)
    c.expect_disconnect(rc=0x95)  # v5: Packet too large; 3.1.1: close
    b.connect("after", version=version).ping()


def test_inbound_packet_under_maximum_size_accepted(start_broker, version):
    b = start_broker(SIZE_CONFIG)
    sub = b.connect("sub", version=version)
    sub.subscribe([("fc/ok", 1)])
    c = b.connect("ok", version=version)
    c.publish_acked("fc/ok", b"x" * 900, qos=1)
    assert len(sub.expect_publish().payload) == 900


def test_client_maximum_packet_size_respected(broker):
    sub = broker.connect("small", version=5, props={"maximum_packet_size": 100})
    sub.subscribe([("fc/s", 1)])
    pub = broker.connect("pub", version=5)
    pub.publish_acked("fc/s", b"a" * 20)
    pub.publish_acked("fc/s", b"b" * 500)  # too big for the subscriber: dropped
    pub.publish_acked("fc/s", b"c" * 20)
    got = sub.publishes(2)
    assert [p.payload for p in got] == [b"a" * 20, b"c" * 20]
    assert sub.ping().type == m.PINGRESP
    assert not sub.pending


def test_client_maximum_packet_size_other_subscribers_still_get_big_message(broker):
    small = broker.connect("small", version=5, props={"maximum_packet_size": 100})
    small.subscribe([("fc/s", 1)])
    big = broker.connect("big", version=5)
    big.subscribe([("fc/s", 1)])
    pub = broker.connect("pub", version=5)
    pub.publish_acked("fc/s", b"b" * 500)
    assert len(big.expect_publish().payload) == 500
    pub.publish_acked("fc/s", b"s")
    assert small.expect_publish().payload == b"s"
