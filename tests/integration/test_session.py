"""Sessions: clean session / clean start, v5 session expiry, offline queueing,
client-id takeover."""

import time

import pytest

import mqttraw as m


def sentinel_is_next(sub, pub, topic):
    pub.publish_acked(topic, b"sentinel", qos=1)
    p = sub.expect_publish()
    assert p.payload == b"sentinel", "expected the sentinel, got %r" % p


def test_persistent_session_reports_session_present(broker, version):
    c = broker.connect_persistent("p1", version)
    assert c.connack.session_present is False
    c.subscribe([("s/a", 1)])
    c.disconnect()
    c2 = broker.connect_persistent("p1", version)
    assert c2.connack.session_present is True


def test_subscriptions_survive_reconnect_of_persistent_session(broker, version):
    c = broker.connect_persistent("p2", version)
    c.subscribe([("s/keep", 1)])
    c.disconnect()
    c2 = broker.connect_persistent("p2", version)
    pub = broker.connect("pub", version=version)
    pub.publish_acked("s/keep", b"still-subscribed", qos=1)
    assert c2.expect_publish().payload == b"still-subscribed"


def test_offline_qos1_and_qos2_messages_delivered_on_return(broker, version):
    c = broker.connect_persistent("p3", version)
    c.subscribe([("s/off", 2)])
    c.disconnect()
    pub = broker.connect("pub", version=version)
    pub.publish_acked("s/off", b"one", qos=1)
    pub.publish_acked("s/off", b"two", qos=2)
    pub.publish_acked("s/off", b"three", qos=1)
    c2 = broker.connect_persistent("p3", version)
    assert c2.connack.session_present is True
    got = c2.publishes(3)
    assert [(p.payload, p.qos) for p in got] == [(b"one", 1), (b"two", 2), (b"three", 1)]
    sentinel_is_next(c2, pub, "s/off")


def test_offline_qos0_messages_not_queued(broker, version):
    c = broker.connect_persistent("p4", version)
    c.subscribe([("s/q0", 1)])
    c.disconnect()
    pub = broker.connect("pub", version=version)
    pub.publish("s/q0", b"qos0-while-offline", qos=0)
    pub.publish_acked("s/q0", b"qos1-while-offline", qos=1)
    c2 = broker.connect_persistent("p4", version)
    p = c2.expect_publish()
    assert p.payload == b"qos1-while-offline", "QoS 0 message was queued: %r" % p
    sentinel_is_next(c2, pub, "s/q0")


def test_clean_session_discards_previous_session(broker, version):
    c = broker.connect_persistent("p5", version)
    c.subscribe([("s/clean", 1)])
    c.disconnect()
    pub = broker.connect("pub", version=version)
    pub.publish_acked("s/clean", b"queued-for-old-session", qos=1)
    if version == 5:
        c2 = broker.connect("p5", version=5, clean=True)
    else:
        c2 = broker.connect("p5", version=4, clean=True)
    assert c2.connack.session_present is False
    # The old subscription is gone: a fresh one gets only new messages.
    pub.publish_acked("s/clean", b"not-subscribed-yet", qos=1)
    c2.subscribe([("s/clean", 1)])
    sentinel_is_next(c2, pub, "s/clean")


def test_v311_clean_session_client_leaves_no_session_behind(broker):
    c = broker.connect("p6", version=4, clean=True)
    c.subscribe([("s/x", 1)])
    c.disconnect()
    c2 = broker.connect("p6", version=4, clean=False)
    assert c2.connack.session_present is False


def test_v5_session_expiry_zero_ends_session_on_disconnect(broker):
    c = broker.connect("e0", version=5, clean=False, props={"session_expiry_interval": 0})
    c.subscribe([("s/e0", 1)])
    c.disconnect()
    c2 = broker.connect("e0", version=5, clean=False, props={"session_expiry_interval": 60})
    assert c2.connack.session_present is False


def test_v5_session_kept_until_expiry_then_gone(broker):
    c = broker.connect_persistent("e2", 5, clean=True, expiry_s=2)
    c.subscribe([("s/e2", 1)])
    c.disconnect()
    # Within the interval: session present, queued message delivered.
    pub = broker.connect("pub", version=5)
    pub.publish_acked("s/e2", b"within", qos=1)
    c2 = broker.connect_persistent("e2", 5, expiry_s=2)
    assert c2.connack.session_present is True
    assert c2.expect_publish().payload == b"within"
    c2.disconnect()
    # After the interval: no session, nothing queued.
    pub.publish_acked("s/e2", b"after-expiry", qos=1)
    time.sleep(3.5)
    c3 = broker.connect_persistent("e2", 5, expiry_s=2)
    assert c3.connack.session_present is False
    c3.subscribe([("s/e2", 1)])
    sentinel_is_next(c3, pub, "s/e2")


def test_v5_disconnect_can_shorten_session_expiry_to_zero(broker):
    c = broker.connect_persistent("d0", 5, expiry_s=300)
    c.subscribe([("s/d0", 1)])
    c.disconnect(props={"session_expiry_interval": 0})
    c2 = broker.connect_persistent("d0", 5)
    assert c2.connack.session_present is False


def test_v5_disconnect_can_lengthen_session_expiry(broker):
    c = broker.connect_persistent("dl", 5, expiry_s=1)
    c.subscribe([("s/dl", 1)])
    c.disconnect(props={"session_expiry_interval": 300})
    time.sleep(2)
    c2 = broker.connect_persistent("dl", 5)
    assert c2.connack.session_present is True


def test_v5_disconnect_setting_expiry_after_connecting_with_zero_is_protocol_error(broker):
    c = broker.connect("z", version=5, props={"session_expiry_interval": 0})
    c.disconnect(props={"session_expiry_interval": 60}, close=False)
    c.expect_disconnect(rc=0x82)


def test_takeover_closes_first_connection_and_session_continues(broker, version):
    first = broker.connect_persistent("dup-id", version)
    first.subscribe([("s/take", 1)])
    second = broker.connect_persistent("dup-id", version)
    assert second.connack.session_present is True
    got = first.expect_close()
    others = [p for p in got if p.type != m.DISCONNECT]
    assert not others, got
    pub = broker.connect("pub", version=version)
    pub.publish_acked("s/take", b"to-second", qos=1)
    assert second.expect_publish().payload == b"to-second"


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 closes the old connection without a DISCONNECT
def test_takeover_v5_first_connection_gets_disconnect_0x8e(broker):
    first = broker.connect("dup-id", version=5)
    broker.connect("dup-id", version=5)
    first.expect_disconnect(rc=0x8E)  # Session taken over


def test_takeover_moves_unacknowledged_messages_to_new_connection(broker, version):
    first = broker.connect_persistent("mover", version)
    first.subscribe([("s/move", 1)])
    pub = broker.connect("pub", version=version)
    pub.publish_acked("s/move", b"inflight", qos=1)
    p = first.expect_publish(ack=False)
    second = broker.connect_persistent("mover", version)
    again = second.expect_publish()
    assert (again.payload, again.dup, again.pid) == (b"inflight", True, p.pid)


def test_takeover_with_clean_start_discards_session(broker, version):
    first = broker.connect_persistent("fresh", version)
    first.subscribe([("s/fresh", 1)])
    second = broker.connect("fresh", version=version, clean=True)
    assert second.connack.session_present is False
    first.expect_close()


def test_many_offline_messages_delivered_in_order(broker, version):
    c = broker.connect_persistent("bulk", version)
    c.subscribe([("s/bulk", 1)])
    c.disconnect()
    pub = broker.connect("pub", version=version)
    for i in range(100):
        pub.publish_acked("s/bulk", b"%03d" % i, qos=1)
    c2 = broker.connect_persistent("bulk", version)
    got = [p.payload for p in c2.publishes(100)]
    assert got == [b"%03d" % i for i in range(100)]


@pytest.mark.ledgermq_only  # max_session_expiry is a ledgermq config key
def test_session_expiry_capped_by_max_session_expiry(start_broker):
    b = start_broker("[limits]\nmax_session_expiry = 1\n")
    c = b.connect_persistent("cap", 5, expiry_s=3600)
    # The broker says it lowered the interval.
    assert c.connack.props.get("session_expiry_interval") == 1, c.connack
    c.disconnect()
    time.sleep(2.5)
    c2 = b.connect_persistent("cap", 5)
    assert c2.connack.session_present is False


@pytest.mark.ledgermq_only  # max_session_expiry is a ledgermq config key
def test_v311_persistent_session_ends_after_max_session_expiry(start_broker):
    b = start_broker("[limits]\nmax_session_expiry = 1\n")
    c = b.connect_persistent("cap311", 4)
    c.subscribe([("s/cap", 1)])
    c.disconnect()
    c2 = b.connect_persistent("cap311", 4)
    assert c2.connack.session_present is True
    c2.disconnect()
    time.sleep(2.5)
    c3 = b.connect_persistent("cap311", 4)
    assert c3.connack.session_present is False


def test_paho_persistent_session_receives_offline_messages(broker, version):
    props = None
    if version == 5:
        from conftest import Properties, PacketTypes
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
    sub = broker.paho("paho-persist", version, clean=False, props=props)
    sub.subscribe("s/paho", 1)
    sub.disconnect()
    pub = broker.paho("paho-pub", version)
    pub.publish("s/paho", b"while-away", qos=1)
    sub2 = broker.paho("paho-persist", version, clean=False, props=props)
    assert sub2.get().payload == b"while-away"
