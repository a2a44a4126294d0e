"""QoS 0/1/2 in both directions: acknowledgement flows, packet identifiers,
QoS downgrade, redelivery with DUP after reconnect, exactly-once inbound."""

import pytest

import mqttraw as m


def sentinel_is_next(sub, pub, topic, qos=1):
    """Publishes a marker on `topic` from `pub` and asserts it is the very next
    PUBLISH `sub` sees: whatever should not have been delivered before it wasn't."""
    pub.publish_acked(topic, b"sentinel", qos=qos)
    p = sub.expect_publish()
    assert p.payload == b"sentinel", "expected the sentinel, got %r" % p


@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_delivered_at_min_of_publish_and_subscription_qos(broker, version, pub_qos, sub_qos):
    sub = broker.connect("sub", version=version)
    ack = sub.subscribe([("q/t", sub_qos)])
    assert ack.rcs == [sub_qos]
    pub = broker.connect("pub", version=version)
    pub.publish_acked("q/t", b"payload-%d" % pub_qos, qos=pub_qos)
    p = sub.expect_publish()
    assert p.topic == "q/t"
    assert p.payload == b"payload-%d" % pub_qos
    assert p.qos == min(pub_qos, sub_qos)
    assert p.dup is False
    assert p.retain is False
    if p.qos:
        assert p.pid and 1 <= p.pid <= 65535
    else:
        assert p.pid is None


def test_qos1_puback_carries_the_publish_packet_id(broker, version):
    c = broker.connect("p", version=version)
    for pid in (1, 300, 65535):
        c.publish("q/ack", b"x", qos=1, pid=pid)
        ack = c.expect(m.PUBACK)
        assert ack.pid == pid
        assert ack.rc in (0x00, 0x10)  # success / no matching subscribers


def test_qos2_inbound_flow_pubrec_pubrel_pubcomp(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/2", 2)])
    c = broker.connect("p", version=version)
    c.publish("q/2", b"exactly-once", qos=2, pid=42)
    rec = c.expect(m.PUBREC)
    assert (rec.pid, rec.rc) == (42, 0)
    c.pubrel(42)
    comp = c.expect(m.PUBCOMP)
    assert (comp.pid, comp.rc) == (42, 0)
    p = sub.expect_publish()
    assert (p.payload, p.qos) == (b"exactly-once", 2)


def test_qos2_outbound_flow_completes_with_pubcomp(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/2", 2)])
    pub = broker.connect("p", version=version)
    pub.publish_acked("q/2", b"a", qos=2)
    p = sub.expect_publish(ack=False)
    assert p.qos == 2
    sub.pubrec(p.pid)
    rel = sub.expect(m.PUBREL)
    assert rel.pid == p.pid
    assert rel.flags == 0x02  # PUBREL fixed-header flags are 0010
    sub.pubcomp(p.pid)
    sentinel_is_next(sub, pub, "q/2")


def test_outbound_packet_ids_distinct_while_unacknowledged(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/ids", 1)])
    pub = broker.connect("p", version=version)
    for i in range(5):
        pub.publish_acked("q/ids", b"%d" % i, qos=1)
    got = sub.publishes(5, ack=False)
    assert [p.payload for p in got] == [b"%d" % i for i in range(5)]
    pids = [p.pid for p in got]
    assert all(1 <= pid <= 65535 for pid in pids)
    assert len(set(pids)) == 5, pids
    for p in got:
        sub.puback(p.pid)


def test_qos1_order_preserved_for_one_publisher(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/order", 1)])
    pub = broker.connect("p", version=version)
    for i in range(50):
        pub.publish("q/order", b"%03d" % i, qos=1)
    for i in range(50):
        assert pub.expect(m.PUBACK).pid
    got = [p.payload for p in sub.publishes(50)]
    assert got == [b"%03d" % i for i in range(50)]


def test_payloads_delivered_byte_for_byte(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/bin", 1)])
    pub = broker.connect("p", version=version)
    payloads = [bytes(range(256)), b"", b"\x00" * 10, bytes(60_000)]
    for pl in payloads:
        pub.publish_acked("q/bin", pl, qos=1)
    for pl in payloads:
        assert sub.expect_publish().payload == pl


def test_qos1_redelivered_with_dup_and_same_packet_id_after_reconnect(broker, version):
    sub = broker.connect_persistent("dupsub", version)
    sub.subscribe([("q/dup", 1)])
    pub = broker.connect("p", version=version)
    pub.publish_acked("q/dup", b"m1", qos=1)
    first = sub.expect_publish(ack=False)
    assert first.dup is False
    sub.close()  # no PUBACK

    sub2 = broker.connect_persistent("dupsub", version)
    assert sub2.connack.session_present is True
    again = sub2.expect_publish(ack=False)
    assert again.payload == b"m1"
    assert again.dup is True
    assert again.pid == first.pid
    assert again.qos == 1
    sub2.puback(again.pid)
    sentinel_is_next(sub2, pub, "q/dup")


def test_qos2_unacknowledged_publish_redelivered_with_dup_after_reconnect(broker, version):
    sub = broker.connect_persistent("dupsub2", version)
    sub.subscribe([("q/dup2", 2)])
    pub = broker.connect("p", version=version)
    pub.publish_acked("q/dup2", b"m2", qos=2)
    first = sub.expect_publish(ack=False)
    sub.close()  # no PUBREC

    sub2 = broker.connect_persistent("dupsub2", version)
    assert sub2.connack.session_present is True
    again = sub2.expect_publish(ack=False)
    assert (again.payload, again.qos, again.dup, again.pid) == (b"m2", 2, True, first.pid)
    sub2.ack_publish(again)
    sentinel_is_next(sub2, pub, "q/dup2")


def test_qos2_pubrecd_message_resumed_with_pubrel_after_reconnect(broker, version):
    sub = broker.connect_persistent("relsub", version)
    sub.subscribe([("q/rel", 2)])
    pub = broker.connect("p", version=version)
    pub.publish_acked("q/rel", b"m3", qos=2)
    first = sub.expect_publish(ack=False)
    sub.pubrec(first.pid)
    rel = sub.expect(m.PUBREL)
    assert rel.pid == first.pid
    sub.close()  # no PUBCOMP

    sub2 = broker.connect_persistent("relsub", version)
    assert sub2.connack.session_present is True
    p = sub2.recv()
    assert p.type == m.PUBREL, "expected the PUBREL to be resumed, got %r" % p
    assert p.pid == first.pid
    sub2.pubcomp(p.pid)
    sentinel_is_next(sub2, pub, "q/rel")


def test_inbound_qos2_duplicate_before_pubrel_delivered_once(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/once", 2)])
    pub = broker.connect("p", version=version)
    pub.publish("q/once", b"only-once", qos=2, pid=9)
    assert pub.expect(m.PUBREC).pid == 9
    pub.publish("q/once", b"only-once", qos=2, pid=9, dup=True)
    assert pub.expect(m.PUBREC).pid == 9
    pub.pubrel(9)
    assert pub.expect(m.PUBCOMP).pid == 9
    assert sub.expect_publish().payload == b"only-once"
    sentinel_is_next(sub, pub, "q/once")


def test_inbound_qos2_duplicate_after_reconnect_before_pubrel_delivered_once(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/once", 2)])
    pub = broker.connect_persistent("pubp", version)
    pub.publish("q/once", b"only-once", qos=2, pid=11)
    assert pub.expect(m.PUBREC).pid == 11
    pub.close()
    pub2 = broker.connect_persistent("pubp", version)
    assert pub2.connack.session_present is True
    pub2.publish("q/once", b"only-once", qos=2, pid=11, dup=True)
    assert pub2.expect(m.PUBREC).pid == 11
    pub2.pubrel(11)
    assert pub2.expect(m.PUBCOMP).pid == 11
    assert sub.expect_publish().payload == b"only-once"
    sentinel_is_next(sub, pub2, "q/once")


def test_pubrel_for_unknown_packet_id_answered_with_pubcomp(broker, version):
    c = broker.connect("p", version=version)
    c.pubrel(1234)
    comp = c.expect(m.PUBCOMP)
    assert comp.pid == 1234
    assert c.ping().type == m.PINGRESP


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 answers with reason 0x00, the spec says 0x92
def test_pubrel_for_unknown_packet_id_v5_pubcomp_reason_0x92(broker):
    c = broker.connect("p", version=5)
    c.pubrel(1234)
    comp = c.expect(m.PUBCOMP)
    assert (comp.pid, comp.rc) == (1234, 0x92)  # Packet Identifier not found


def test_qos1_publish_reusing_packet_id_after_puback_is_new_message(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/reuse", 1)])
    pub = broker.connect("p", version=version)
    for payload in (b"one", b"two"):
        pub.publish("q/reuse", payload, qos=1, pid=5)
        assert pub.expect(m.PUBACK).pid == 5
    assert [p.payload for p in sub.publishes(2)] == [b"one", b"two"]


def test_qos0_publish_delivered_without_ack(broker, version):
    sub = broker.connect("s", version=version)
    sub.subscribe([("q/0", 0)])
    pub = broker.connect("p", version=version)
    pub.publish("q/0", b"fire-and-forget", qos=0)
    p = sub.expect_publish()
    assert (p.payload, p.qos, p.pid) == (b"fire-and-forget", 0, None)
    # Nothing came back to the publisher: its next packet is our PINGRESP.
    assert pub.ping().type == m.PINGRESP
