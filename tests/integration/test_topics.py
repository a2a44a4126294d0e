"""Topic matching, $-topics, and topic / filter validation."""

import pytest

import mqttraw as m

SENTINEL_TOPIC = "sentinel/next"

MATCHES = [
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/b/d", False),
    ("a/+/c", "a/c", False),
    ("a/+/c", "a/b/c/d", False),
    ("a/#", "a", True),
    ("a/#", "a/b", True),
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("+", "a", True),
    ("+", "a/b", False),
    ("+/+", "/x", True),
    ("+/+", "/", True),
    ("/a", "/a", True),
    ("/a", "a", False),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("A/b", "a/b", False),
    ("a/b/#", "a/b", True),
    ("+/#", "x", True),
    ("#", "$test/x", False),
    ("+/x", "$test/x", False),
    ("+/#", "$test/x", False),
    ("$test/#", "$test/x", True),
    ("$test/+", "$test/x", True),
    ("ü/+", "ü/ß", True),
]


@pytest.mark.parametrize("flt,topic,should", MATCHES,
                         ids=["%s~%s" % (f, t) for f, t, _ in MATCHES])
def test_filter_matching(broker, flt, topic, should):
    sub = broker.connect("sub", version=5)
    sub.subscribe([(flt, 1), (SENTINEL_TOPIC, 1)])
    pub = broker.connect("pub", version=5)
    pub.publish_acked(topic, b"probe")
    pub.publish_acked(SENTINEL_TOPIC, b"sentinel")
    p = sub.expect_publish()
    if should:
        assert (p.topic, p.payload) == (topic, b"probe"), "%r should match %r" % (flt, topic)
        p = sub.expect_publish()
    assert p.payload == b"sentinel", "%r should not match %r, got %r" % (flt, topic, p)


def test_publish_to_dollar_topic_delivered_to_dollar_subscription(broker, version):
    sub = broker.connect("sub", version=version)
    sub.subscribe([("$test/#", 1), ("#", 1)])
    pub = broker.connect("pub", version=version)
    pub.publish_acked("$test/x", b"dollar", qos=1)
    pub.publish_acked("plain/x", b"plain", qos=1)
    got = sub.publishes(2)
    # $test/x only through "$test/#" (one copy); plain/x only through "#".
    assert [(p.topic, p.payload) for p in got] == [("$test/x", b"dollar"),
                                                    ("plain/x", b"plain")]


@pytest.mark.parametrize("topic", ["a/+", "a/#", "#", "+", "a/b+"])
def test_publish_with_wildcard_in_topic_closes_connection(broker, version, topic):
    c = broker.connect("bad", version=version)
    c.publish(topic, b"x", qos=1)
    c.expect_disconnect()
    broker.connect("after", version=version).ping()


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 uses 0x82 here; 0x90 is the specific code
def test_publish_with_wildcard_in_topic_v5_disconnect_0x90(broker):
    c = broker.connect("bad", version=5)
    c.publish("a/+/b", b"x", qos=1)
    c.expect_disconnect(rc=0x90)  # Topic Name invalid


def test_publish_with_wildcard_is_not_delivered(broker, version):
    sub = broker.connect("sub", version=version)
    sub.subscribe([("#", 1)])
    c = broker.connect("bad", version=version)
    c.publish("w/#", b"x", qos=1)
    c.expect_disconnect()
    pub = broker.connect("pub", version=version)
    pub.publish_acked("w/ok", b"sentinel", qos=1)
    assert sub.expect_publish().payload == b"sentinel"


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 disconnects on any invalid filter instead
@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a+/b", "#/a", "a/+b"])
def test_invalid_filter_refused_in_suback_while_valid_entries_granted(broker, version, bad):
    c = broker.connect("s", version=version)
    ack = c.subscribe([("ok/1", 1), (bad, 1), ("ok/2", 2)])
    failure = 0x8F if version == 5 else 0x80  # Topic Filter invalid / Failure
    assert ack.rcs == [1, failure, 2]
    pub = broker.connect("pub", version=version)
    pub.publish_acked("ok/2", b"granted", qos=1)
    assert c.expect_publish().payload == b"granted"


def test_invalid_filter_never_subscribed(broker, version):
    c = broker.connect("s", version=version)
    c.send_raw(m.encode_subscribe(version, 1, [("ok/1", 1), ("a/#/b", 1)]))
    try:
        ack = c.recv()
    except m.Closed:
        return  # closing the connection is allowed too
    if ack.type == m.DISCONNECT:
        assert ack.rc >= 0x80
        c.expect_close()
        return
    assert ack.type == m.SUBACK, ack
    assert ack.rcs[0] == 1 and ack.rcs[1] >= 0x80, ack


def test_topic_of_maximum_length_levels_delivered(broker, version):
    topic = "/".join(["lvl"] * 100)
    sub = broker.connect("sub", version=version)
    sub.subscribe([("lvl/#", 1)])
    pub = broker.connect("pub", version=version)
    pub.publish_acked(topic, b"deep", qos=1)
    assert sub.expect_publish().topic == topic


def test_long_topic_name_delivered(broker, version):
    topic = "long/" + "x" * 4000
    sub = broker.connect("sub", version=version)
    sub.subscribe([("long/+", 1)])
    pub = broker.connect("pub", version=version)
    pub.publish_acked(topic, b"x", qos=1)
    assert sub.expect_publish().topic == topic
