"""v5 Message Expiry Interval: queued and retained messages expire; the
interval forwarded is what remains."""

import time


def sentinel_is_next(sub, pub, topic):
    pub.publish_acked(topic, b"sentinel", qos=1)
    p = sub.expect_publish()
    assert p.payload == b"sentinel", "expected the sentinel, got %r" % p


def test_live_message_forwarded_with_expiry_interval(broker):
    sub = broker.connect("sub", version=5)
    sub.subscribe([("x/live", 1)])
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/live", b"a", props={"message_expiry_interval": 30})
    p = sub.expect_publish()
    assert 0 < p.props.get("message_expiry_interval") <= 30, p


def test_message_without_expiry_forwarded_without_expiry(broker):
    sub = broker.connect("sub", version=5)
    sub.subscribe([("x/none", 1)])
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/none", b"a")
    assert "message_expiry_interval" not in sub.expect_publish().props


def test_expired_message_dropped_from_offline_queue(broker):
    sub = broker.connect_persistent("offline", 5)
    sub.subscribe([("x/q", 1)])
    sub.disconnect()
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/q", b"expires", props={"message_expiry_interval": 1})
    pub.publish_acked("x/q", b"durable")
    time.sleep(2.5)
    sub2 = broker.connect_persistent("offline", 5)
    assert sub2.connack.session_present is True
    p = sub2.expect_publish()
    assert p.payload == b"durable", "expired message was delivered: %r" % p
    sentinel_is_next(sub2, pub, "x/q")


def test_queued_message_delivered_with_remaining_expiry(broker):
    sub = broker.connect_persistent("offline", 5)
    sub.subscribe([("x/rem", 1)])
    sub.disconnect()
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/rem", b"ticking", props={"message_expiry_interval": 10})
    time.sleep(1.5)
    sub2 = broker.connect_persistent("offline", 5)
    p = sub2.expect_publish()
    assert p.payload == b"ticking"
    remaining = p.props.get("message_expiry_interval")
    assert remaining is not None, p
    assert 1 <= remaining <= 9, "1.5 s queued, expiry 10: remaining %r" % remaining


def test_retained_message_expires(broker):
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/ret", b"short-lived", retain=True,
                      props={"message_expiry_interval": 1})
    time.sleep(2.5)
    sub = broker.connect("sub", version=5)
    sub.subscribe([("x/ret", 1)])
    sentinel_is_next(sub, pub, "x/ret")


def test_retained_message_delivered_with_remaining_expiry(broker):
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/ret2", b"r", retain=True, props={"message_expiry_interval": 10})
    time.sleep(1.5)
    sub = broker.connect("sub", version=5)
    sub.subscribe([("x/ret2", 1)])
    p = sub.expect_publish()
    assert p.retain is True
    remaining = p.props.get("message_expiry_interval")
    assert remaining is not None and 1 <= remaining <= 9, p


def test_unexpired_retained_message_still_delivered(broker):
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/ret3", b"long-lived", retain=True,
                      props={"message_expiry_interval": 60})
    sub = broker.connect("sub", version=5)
    sub.subscribe([("x/ret3", 1)])
    assert sub.expect_publish().payload == b"long-lived"


def test_expiry_applies_to_v311_subscriber_queue(broker):
    # The publisher is v5 (sets the expiry); the offline subscriber is 3.1.1.
    sub = broker.connect_persistent("old", 4)
    sub.subscribe([("x/v3", 1)])
    sub.disconnect()
    pub = broker.connect("pub", version=5)
    pub.publish_acked("x/v3", b"expires", props={"message_expiry_interval": 1})
    pub.publish_acked("x/v3", b"durable")
    time.sleep(2.5)
    sub2 = broker.connect_persistent("old", 4)
    assert sub2.expect_publish().payload == b"durable"
    pub.publish_acked("x/v3", b"sentinel")
    assert sub2.expect_publish().payload == b"sentinel"
