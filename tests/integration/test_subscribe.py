"""SUBSCRIBE / UNSUBSCRIBE: grants, replacement, subscription identifiers, no-local."""

import pytest

import mqttraw as m


def sentinel_is_next(sub, pub, topic):
    pub.publish_acked(topic, b"sentinel", qos=1)
    p = sub.expect_publish()
    assert p.payload == b"sentinel", "expected the sentinel, got %r" % p


def test_suback_grants_requested_qos_per_entry(broker, version):
    c = broker.connect("s", version=version)
    ack = c.subscribe([("g/0", 0), ("g/1", 1), ("g/2", 2)])
    assert ack.rcs == [0, 1, 2]


def test_resubscribe_replaces_subscription_without_duplicates(broker, version):
    c = broker.connect("s", version=version)
    c.subscribe([("rs/t", 0)])
    assert c.subscribe([("rs/t", 1)]).rcs == [1]
    pub = broker.connect("pub", version=version)
    pub.publish_acked("rs/t", b"once", qos=1)
    p = c.expect_publish()
    assert (p.payload, p.qos) == (b"once", 1)
    sentinel_is_next(c, pub, "rs/t")


def test_unsubscribe_stops_delivery(broker, version):
    c = broker.connect("s", version=version)
    c.subscribe([("us/a", 1), ("us/b", 1)])
    ack = c.unsubscribe(["us/a"])
    if version == 5:
        assert ack.rcs == [0x00]
    pub = broker.connect("pub", version=version)
    pub.publish_acked("us/a", b"not-for-you", qos=1)
    pub.publish_acked("us/b", b"still-subscribed", qos=1)
    assert c.expect_publish().payload == b"still-subscribed"


def test_unsubscribe_v5_reason_codes_per_filter(broker):
    c = broker.connect("s", version=5)
    c.subscribe([("uv/a", 1)])
    ack = c.unsubscribe(["uv/a", "uv/never", "uv/a"])
    assert ack.rcs == [0x00, 0x11, 0x11]  # success, no subscription existed (twice)


def test_unsubscribe_v311_unsuback_has_no_payload(broker):
    c = broker.connect("s", version=4)
    c.subscribe([("uo/a", 1)])
    ack = c.unsubscribe(["uo/a", "uo/never"])
    assert ack.rcs == []


def test_subscription_identifier_delivered_with_message(broker):
    c = broker.connect("s", version=5)
    c.subscribe([("sid/t", 1)], props={"subscription_identifier": 7})
    pub = broker.connect("pub", version=5)
    pub.publish_acked("sid/t", b"x")
    assert c.expect_publish().props.all("subscription_identifier") == [7]


def test_large_subscription_identifier_delivered(broker):
    c = broker.connect("s", version=5)
    c.subscribe([("sid/big", 1)], props={"subscription_identifier": 268_435_455})
    pub = broker.connect("pub", version=5)
    pub.publish_acked("sid/big", b"x")
    assert c.expect_publish().props.all("subscription_identifier") == [268_435_455]


def test_each_subscription_identifier_present_for_overlapping_subscriptions(broker):
    # The spec allows one copy with both ids or one copy per subscription.
    c = broker.connect("s", version=5)
    c.subscribe([("sid/#", 0)], props={"subscription_identifier": 1})
    c.subscribe([("sid/+", 1)], props={"subscription_identifier": 2})
    pub = broker.connect("pub", version=5)
    pub.publish_acked("sid/x", b"x")
    first = c.expect_publish()
    ids = set(first.props.all("subscription_identifier"))
    if ids != {1, 2}:
        second = c.expect_publish()
        ids |= set(second.props.all("subscription_identifier"))
    assert ids == {1, 2}


@pytest.mark.ledgermq_only  # mosquitto sends one copy per matching subscription (allowed)
def test_overlapping_subscriptions_one_copy_with_all_ids_and_max_qos(broker):
    c = broker.connect("s", version=5)
    c.subscribe([("sid/#", 0)], props={"subscription_identifier": 1})
    c.subscribe([("sid/+", 1)], props={"subscription_identifier": 2})
    pub = broker.connect("pub", version=5)
    pub.publish_acked("sid/x", b"x", qos=2)
    p = c.expect_publish()
    assert sorted(p.props.all("subscription_identifier")) == [1, 2]
    assert p.qos == 1
    # Next is a message matching only sid/# (id 1): no second copy came before it.
    pub.publish_acked("sid/a/b", b"sentinel")
    p = c.expect_publish()
    assert p.payload == b"sentinel", "second copy delivered: %r" % p
    assert p.props.all("subscription_identifier") == [1]


def test_subscription_identifier_replaced_on_resubscribe(broker):
    c = broker.connect("s", version=5)
    c.subscribe([("sid/r", 1)], props={"subscription_identifier": 5})
    c.subscribe([("sid/r", 1)], props={"subscription_identifier": 6})
    pub = broker.connect("pub", version=5)
    pub.publish_acked("sid/r", b"x")
    assert c.expect_publish().props.all("subscription_identifier") == [6]


def test_resubscribe_without_identifier_removes_it(broker):
    c = broker.connect("s", version=5)
    c.subscribe([("sid/n", 1)], props={"subscription_identifier": 5})
    c.subscribe([("sid/n", 1)])
    pub = broker.connect("pub", version=5)
    pub.publish_acked("sid/n", b"x")
    assert "subscription_identifier" not in c.expect_publish().props


def test_subscription_identifier_on_retained_and_queued_messages(broker):
    pub = broker.connect("pub", version=5)
    pub.publish_acked("sid/ret", b"r", retain=True)
    c = broker.connect_persistent("s", 5)
    c.subscribe([("sid/ret", 1)], props={"subscription_identifier": 9})
    p = c.expect_publish()
    assert (p.payload, p.retain) == (b"r", True)
    assert p.props.all("subscription_identifier") == [9]
    c.disconnect()
    pub.publish_acked("sid/ret", b"queued")
    c2 = broker.connect_persistent("s", 5)
    p = c2.expect_publish()
    assert p.payload == b"queued"
    assert p.props.all("subscription_identifier") == [9]


def test_subscription_identifier_zero_is_a_protocol_error(broker):
    c = broker.connect("s", version=5)
    c.send_raw(m.encode_subscribe(5, 1, [("sid/z", 0)], props={"subscription_identifier": 0}))
    c.expect_disconnect()


@pytest.mark.ledgermq_only  # [MQTT-3.3.4-6]; mosquitto 2.0.11 does not check it
def test_publish_carrying_subscription_identifier_is_a_protocol_error(broker):
    c = broker.connect("s", version=5)
    c.publish("sid/p", b"x", qos=1, props={"subscription_identifier": 3})
    c.expect_disconnect(rc=0x82)


def test_no_local_suppresses_own_publishes(broker):
    c = broker.connect("self", version=5)
    c.subscribe([("nl/t", m.SubOpts(qos=1, no_local=True))])
    c.publish_acked("nl/t", b"mine")
    other = broker.connect("other", version=5)
    other.publish_acked("nl/t", b"theirs")
    p = c.expect_publish()
    assert p.payload == b"theirs", "own publish echoed despite no-local: %r" % p


def test_without_no_local_own_publishes_are_echoed(broker, version):
    c = broker.connect("self", version=version)
    c.subscribe([("nl/echo", 1)])
    c.publish_acked("nl/echo", b"mine")
    assert c.expect_publish().payload == b"mine"


def test_no_local_only_affects_its_own_subscription(broker):
    c = broker.connect("self", version=5)
    c.subscribe([("nl/a", m.SubOpts(qos=1, no_local=True))])
    c.subscribe([("nl/b", 1)])
    c.publish_acked("nl/a", b"a-mine")
    c.publish_acked("nl/b", b"b-mine")
    assert c.expect_publish().payload == b"b-mine"


def test_no_local_persists_in_session(broker):
    c = broker.connect_persistent("nlp", 5)
    c.subscribe([("nl/p", m.SubOpts(qos=1, no_local=True))])
    c.disconnect()
    c2 = broker.connect_persistent("nlp", 5)
    c2.publish_acked("nl/p", b"mine")
    other = broker.connect("other", version=5)
    other.publish_acked("nl/p", b"theirs")
    assert c2.expect_publish().payload == b"theirs"


def test_paho_subscribe_unsubscribe(broker, version):
    c = broker.paho("ps", version)
    assert c.subscribe("pu/t", 2) == [2]
    pub = broker.paho("pp", version)
    pub.publish("pu/t", b"one", qos=2)
    assert c.get().payload == b"one"
