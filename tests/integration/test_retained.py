"""Retained messages: set, replace, clear, delivery on subscribe, v5 retain
handling and retain-as-published."""

import mqttraw as m


def no_more_retained(sub, pub, topic):
    """Publishes a live (non-retained) marker on `topic` and asserts it is the
    next PUBLISH `sub` sees: no (further) retained message was sent."""
    pub.publish_acked(topic, b"live-marker", qos=1)
    p = sub.expect_publish()
    assert p.payload == b"live-marker", "expected no retained message, got %r" % p


def test_retained_message_delivered_on_subscribe_with_retain_flag(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/a", b"kept", qos=1, retain=True)
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/a", 1)])
    p = sub.expect_publish()
    assert (p.topic, p.payload, p.retain, p.qos) == ("r/a", b"kept", True, 1)


def test_retained_message_survives_publisher_disconnect(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/gone", b"still-here", qos=1, retain=True)
    pub.disconnect()
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/gone", 0)])
    p = sub.expect_publish()
    assert (p.payload, p.retain) == (b"still-here", True)


def test_retained_message_replaced_by_newer(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/b", b"old", qos=1, retain=True)
    pub.publish_acked("r/b", b"new", qos=1, retain=True)
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/b", 1)])
    assert sub.expect_publish().payload == b"new"
    no_more_retained(sub, pub, "r/b")


def test_retained_message_cleared_by_empty_retained_publish(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/c", b"doomed", qos=1, retain=True)
    pub.publish_acked("r/c", b"", qos=1, retain=True)
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/c", 1)])
    no_more_retained(sub, pub, "r/c")


def test_empty_retained_publish_is_forwarded_to_live_subscribers(broker, version):
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/e", 1)])
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/e", b"", qos=1, retain=True)
    p = sub.expect_publish()
    assert p.payload == b""


def test_non_retained_publish_does_not_replace_retained(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/d", b"retained", qos=1, retain=True)
    pub.publish_acked("r/d", b"transient", qos=1, retain=False)
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/d", 1)])
    assert sub.expect_publish().payload == b"retained"


def test_retained_messages_delivered_for_wildcard_subscription(broker, version):
    pub = broker.connect("pub", version=version)
    topics = ["w/1", "w/2/x", "w/3"]
    for t in topics:
        pub.publish_acked(t, t.encode(), qos=1, retain=True)
    pub.publish_acked("other/1", b"no", qos=1, retain=True)
    sub = broker.connect("sub", version=version)
    sub.subscribe([("w/#", 1)])
    got = sub.publishes(3)
    assert sorted(p.topic for p in got) == sorted(topics)
    assert all(p.retain and p.payload == p.topic.encode() for p in got)
    no_more_retained(sub, pub, "w/1")


def test_retained_qos_downgraded_to_subscription_qos(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/q", b"q2", qos=2, retain=True)
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/q", 0)])
    p = sub.expect_publish()
    assert (p.payload, p.qos, p.retain) == (b"q2", 0, True)


def test_retained_qos0_message_is_kept(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish("r/q0", b"zero", qos=0, retain=True)
    pub.ping()  # the broker has processed the PUBLISH before the PINGREQ
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/q0", 1)])
    p = sub.expect_publish()
    assert (p.payload, p.qos, p.retain) == (b"zero", 0, True)


def test_live_forwarding_clears_retain_flag_by_default(broker, version):
    # 3.1.1: established subscriptions get RETAIN 0; v5: retain-as-published 0.
    sub = broker.connect("sub", version=version)
    sub.subscribe([("r/live", 1)])
    pub = broker.connect("pub", version=version)
    pub.publish_acked("r/live", b"x", qos=1, retain=True)
    p = sub.expect_publish()
    assert (p.payload, p.retain) == (b"x", False)


def test_retain_as_published_keeps_retain_flag_on_live_forwarding(broker):
    sub = broker.connect("sub", version=5)
    sub.subscribe([("r/rap", m.SubOpts(qos=1, retain_as_published=True))])
    pub = broker.connect("pub", version=5)
    pub.publish_acked("r/rap", b"kept-flag", qos=1, retain=True)
    pub.publish_acked("r/rap", b"plain", qos=1, retain=False)
    a, b = sub.publishes(2)
    assert (a.payload, a.retain) == (b"kept-flag", True)
    assert (b.payload, b.retain) == (b"plain", False)


def test_retain_handling_0_sends_retained_on_every_subscribe(broker):
    pub = broker.connect("pub", version=5)
    pub.publish_acked("r/rh0", b"ret", qos=1, retain=True)
    sub = broker.connect("sub", version=5)
    for _ in range(2):
        sub.subscribe([("r/rh0", m.SubOpts(qos=1, retain_handling=0))])
        p = sub.expect_publish()
        assert (p.payload, p.retain) == (b"ret", True)


def test_retain_handling_1_sends_retained_only_for_new_subscription(broker):
    pub = broker.connect("pub", version=5)
    pub.publish_acked("r/rh1", b"ret", qos=1, retain=True)
    sub = broker.connect("sub", version=5)
    sub.subscribe([("r/rh1", m.SubOpts(qos=1, retain_handling=1))])
    assert sub.expect_publish().payload == b"ret"
    sub.subscribe([("r/rh1", m.SubOpts(qos=1, retain_handling=1))])
    no_more_retained(sub, pub, "r/rh1")


def test_retain_handling_2_never_sends_retained(broker):
    pub = broker.connect("pub", version=5)
    pub.publish_acked("r/rh2", b"ret", qos=1, retain=True)
    sub = broker.connect("sub", version=5)
    sub.subscribe([("r/rh2", m.SubOpts(qos=1, retain_handling=2))])
    no_more_retained(sub, pub, "r/rh2")


def test_retained_message_with_properties_keeps_them(broker):
    pub = broker.connect("pub", version=5)
    props = {"content_type": "text/plain", "user_property": [("k", "v")]}
    pub.publish_acked("r/props", b"p", qos=1, retain=True, props=props)
    sub = broker.connect("sub", version=5)
    sub.subscribe([("r/props", 1)])
    p = sub.expect_publish()
    assert p.props.get("content_type") == "text/plain"
    assert p.props.all("user_property") == [("k", "v")]


def test_paho_retained_round_trip(broker, version):
    pub = broker.paho("pahopub", version)
    pub.publish("r/paho", b"retained-by-paho", qos=1, retain=True)
    sub = broker.paho("pahosub", version)
    sub.subscribe("r/paho", 1)
    msg = sub.get()
    assert (msg.payload, msg.retain) == (b"retained-by-paho", 1)
