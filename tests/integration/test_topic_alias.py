"""v5 inbound topic aliases."""

import pytest

import mqttraw as m

CONFIG = "[limits]\nmax_topic_alias = 4\n"


@pytest.fixture
def b(start_broker):
    return start_broker(CONFIG)


def subscriber(b, flt="ta/#"):
    s = b.connect("sub", version=5)
    s.subscribe([(flt, 1)])
    return s


def test_connack_advertises_topic_alias_maximum(b):
    assert b.raw(5).connect("x").props.get("topic_alias_maximum") == 4


def test_alias_with_topic_then_alias_only_both_delivered_on_the_topic(b):
    s = subscriber(b)
    c = b.connect("pub", version=5)
    c.publish("ta/x", b"first", qos=1, props={"topic_alias": 1})
    assert c.expect(m.PUBACK).rc in (0, 0x10)
    c.publish("", b"second", qos=1, props={"topic_alias": 1})
    assert c.expect(m.PUBACK).rc in (0, 0x10)
    got = s.publishes(2)
    assert [(p.topic, p.payload) for p in got] == [("ta/x", b"first"), ("ta/x", b"second")]
    # The subscriber did not offer topic aliases, so none are sent to it.
    assert all("topic_alias" not in p.props for p in got)


def test_alias_qos0_alias_only_delivered(b):
    s = subscriber(b)
    c = b.connect("pub", version=5)
    c.publish("ta/q0", b"a", qos=0, props={"topic_alias": 2})
    c.publish("", b"b", qos=0, props={"topic_alias": 2})
    got = s.publishes(2)
    assert [(p.topic, p.payload) for p in got] == [("ta/q0", b"a"), ("ta/q0", b"b")]


def test_alias_can_be_remapped_to_another_topic(b):
    s = subscriber(b)
    c = b.connect("pub", version=5)
    c.publish_acked("ta/one", b"1", props={"topic_alias": 3})
    c.publish_acked("ta/two", b"2", props={"topic_alias": 3})
    c.publish_acked("", b"3", props={"topic_alias": 3})
    got = s.publishes(3)
    assert [(p.topic, p.payload) for p in got] == [
        ("ta/one", b"1"), ("ta/two", b"2"), ("ta/two", b"3")]


def test_every_alias_up_to_the_maximum_is_accepted(b):
    s = subscriber(b)
    c = b.connect("pub", version=5)
    for alias in range(1, 5):
        c.publish_acked("ta/%d" % alias, b"set", props={"topic_alias": alias})
    for alias in range(1, 5):
        c.publish_acked("", b"use", props={"topic_alias": alias})
    got = s.publishes(8)
    assert [p.topic for p in got[4:]] == ["ta/%d" % a for a in range(1, 5)]


def test_alias_zero_disconnects(b):
    c = b.connect("pub", version=5)
    c.publish("ta/x", b"x", qos=1, props={"topic_alias": 0})
    c.expect_disconnect()
    b.connect("after", version=5).ping()


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 answers alias 0 with 0x81 (malformed)
def test_alias_zero_disconnects_with_0x94(b):
    c = b.connect("pub", version=5)
    c.publish("ta/x", b"x", qos=1, props={"topic_alias": 0})
    c.expect_disconnect(rc=0x94)


def test_alias_above_maximum_disconnects_with_0x94(b):
    c = b.connect("pub", version=5)
    c.publish("ta/x", b"x", qos=1, props={"topic_alias": 5})
    c.expect_disconnect(rc=0x94)


def test_alias_only_for_unknown_alias_disconnects_with_0x82(b):
    c = b.connect("pub", version=5)
    c.publish("", b"x", qos=1, props={"topic_alias": 2})
    c.expect_disconnect(rc=0x82)


def test_empty_topic_without_alias_disconnects_with_0x82(b):
    c = b.connect("pub", version=5)
    c.publish("", b"x", qos=1)
    c.expect_disconnect(rc=0x82)


def test_aliases_belong_to_one_connection(b):
    c1 = b.connect("pub1", version=5)
    c1.publish_acked("ta/mine", b"x", props={"topic_alias": 1})
    c2 = b.connect("pub2", version=5)
    c2.publish("", b"y", qos=1, props={"topic_alias": 1})
    c2.expect_disconnect(rc=0x82)


def test_aliases_forgotten_after_reconnect(b):
    c1 = b.connect_persistent("pubp", 5)
    c1.publish_acked("ta/mine", b"x", props={"topic_alias": 1})
    c1.disconnect()
    c2 = b.connect_persistent("pubp", 5)
    assert c2.connack.session_present is True
    c2.publish("", b"y", qos=1, props={"topic_alias": 1})
    c2.expect_disconnect(rc=0x82)


def test_alias_with_max_topic_alias_zero_disconnects_with_0x94(start_broker):
    b0 = start_broker("[limits]\nmax_topic_alias = 0\n")
    c = b0.connect("pub", version=5)
    assert c.connack.props.get("topic_alias_maximum", 0) == 0
    c.publish("ta/x", b"x", qos=1, props={"topic_alias": 1})
    c.expect_disconnect(rc=0x94)
