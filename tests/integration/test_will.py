"""Will messages: when they are sent, when not, retain, v5 will delay."""

import time

import pytest

import mqttraw as m


def watcher(broker, version, topic="will/t", qos=1):
    w = broker.connect("watcher", version=version)
    w.subscribe([(topic, qos)])
    return w


def no_will(w, broker, version, topic="will/t"):
    """Asserts the watcher's next message on `topic` is a marker, not a will."""
    pub = broker.connect("marker", version=version)
    pub.publish_acked(topic, b"marker", qos=1)
    p = w.expect_publish()
    assert p.payload == b"marker", "expected no will, got %r" % p


def test_will_sent_when_socket_closed_without_disconnect(broker, version):
    w = watcher(broker, version)
    c = broker.connect("dier", version=version, will=m.Will("will/t", b"gone", qos=1))
    c.close()
    p = w.expect_publish()
    assert (p.topic, p.payload, p.qos, p.retain) == ("will/t", b"gone", 1, False)


def test_will_not_sent_on_normal_disconnect(broker, version):
    w = watcher(broker, version)
    c = broker.connect("polite", version=version, will=m.Will("will/t", b"gone", qos=1))
    c.disconnect()
    no_will(w, broker, version)


def test_will_sent_on_keepalive_timeout(broker, version):
    w = watcher(broker, version)
    c = broker.connect("silent", version=version, keepalive=1,
                       will=m.Will("will/t", b"timed-out", qos=1))
    # The client sends nothing: after 1.5 x keepalive the broker closes it
    # (mosquitto checks keepalives only every few seconds: generous timeout).
    p = w.expect_publish(timeout=10)
    assert p.payload == b"timed-out"
    c.expect_close(timeout=3)


def test_will_sent_on_v5_disconnect_with_reason_0x04(broker):
    w = watcher(broker, 5)
    c = broker.connect("withwill", version=5, will=m.Will("will/t", b"asked-for", qos=1))
    c.disconnect(rc=0x04)
    p = w.expect_publish()
    assert p.payload == b"asked-for"


def test_will_sent_when_broker_closes_on_malformed_packet(broker, version):
    w = watcher(broker, version)
    c = broker.connect("bad", version=version, will=m.Will("will/t", b"malformed", qos=1))
    c.send_raw(bytes([0x36, 3, 0, 1, ord("a")]))  # PUBLISH with QoS 3
    c.expect_close()
    assert w.expect_publish().payload == b"malformed"


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 drops the will when it sees a second CONNECT
def test_will_sent_when_broker_closes_on_second_connect(broker, version):
    # MQTT 5 3.1.2-8 / 3.1.1 3.1.2.5: the will is published when the server
    # closes the connection because of a protocol error.
    w = watcher(broker, version)
    c = broker.connect("bad", version=version, will=m.Will("will/t", b"protocol-error", qos=1))
    c.send_raw(m.encode_connect(version, "bad"))
    c.expect_close()
    assert w.expect_publish().payload == b"protocol-error"


def test_will_retain_stored_as_retained_message(broker, version):
    c = broker.connect("ret", version=version,
                       will=m.Will("will/r", b"last-words", qos=1, retain=True))
    w = watcher(broker, version, topic="will/r")
    c.close()
    assert w.expect_publish().payload == b"last-words"
    late = broker.connect("late", version=version)
    late.subscribe([("will/r", 1)])
    p = late.expect_publish()
    assert (p.payload, p.retain) == (b"last-words", True)


# MQTT 5 3.1.3.2.2: on takeover the old connection's will is sent unless the new
# connection has Clean Start 0 and the will delay is > 0. mosquitto 2.0.11 does
# not send it when the session is resumed.
@pytest.mark.ledgermq_only
def test_will_sent_when_connection_is_taken_over(broker, version):
    w = watcher(broker, version)
    broker.connect_persistent("taken", version, will=m.Will("will/t", b"taken-over", qos=1))
    broker.connect_persistent("taken", version)
    assert w.expect_publish().payload == b"taken-over"


def test_will_qos_downgraded_to_subscription(broker, version):
    w = watcher(broker, version, qos=0)
    c = broker.connect("q2", version=version, will=m.Will("will/t", b"w", qos=2))
    c.close()
    p = w.expect_publish()
    assert (p.payload, p.qos) == (b"w", 0)


def test_will_v5_properties_reach_subscriber(broker):
    w = watcher(broker, 5)
    props = {"content_type": "application/json", "response_topic": "resp/x",
             "correlation_data": b"\x01\x02", "user_property": [("a", "1"), ("a", "2")]}
    c = broker.connect("wp", version=5, will=m.Will("will/t", b"{}", qos=1, props=props))
    c.close()
    p = w.expect_publish()
    assert p.props.get("content_type") == "application/json"
    assert p.props.get("response_topic") == "resp/x"
    assert p.props.get("correlation_data") == b"\x01\x02"
    assert p.props.all("user_property") == [("a", "1"), ("a", "2")]


def test_will_delay_interval_delays_the_will(broker):
    w = watcher(broker, 5)
    c = broker.connect("delayed", version=5, props={"session_expiry_interval": 60},
                       will=m.Will("will/t", b"late", qos=1, props={"will_delay_interval": 2}))
    c.close()
    closed_at = time.monotonic()
    w.expect_nothing(timeout=1.0)  # not before the delay (2 s)
    p = w.expect_publish(timeout=6)
    assert p.payload == b"late"
    assert time.monotonic() - closed_at >= 1.0


def test_will_delay_cancelled_when_client_reconnects_within_delay(broker):
    w = watcher(broker, 5)
    will = m.Will("will/t", b"should-not-appear", qos=1, props={"will_delay_interval": 2})
    c = broker.connect("comeback", version=5, props={"session_expiry_interval": 60}, will=will)
    c.close()
    c2 = broker.connect("comeback", version=5, clean=False,
                        props={"session_expiry_interval": 60})
    assert c2.connack.session_present is True
    time.sleep(3)  # past the will delay
    no_will(w, broker, 5)


def test_will_with_delay_sent_at_session_expiry_when_sooner(broker):
    w = watcher(broker, 5)
    will = m.Will("will/t", b"session-ended", qos=1, props={"will_delay_interval": 60})
    c = broker.connect("short", version=5, props={"session_expiry_interval": 1}, will=will)
    c.close()
    p = w.expect_publish(timeout=8)
    assert p.payload == b"session-ended"


def test_will_with_delay_not_sent_on_normal_disconnect(broker):
    w = watcher(broker, 5)
    will = m.Will("will/t", b"no", qos=1, props={"will_delay_interval": 1})
    c = broker.connect("normal", version=5, props={"session_expiry_interval": 2}, will=will)
    c.disconnect()
    time.sleep(2.5)  # past the delay and the session expiry
    no_will(w, broker, 5)


def test_paho_will_on_abrupt_close(broker, version):
    sub = broker.paho("pw-sub", version)
    sub.subscribe("will/paho", 1)
    dier = broker.paho("pw-dier", version,
                       will={"topic": "will/paho", "payload": b"paho-gone", "qos": 1})
    dier.close()  # closes the socket without DISCONNECT
    assert sub.get().payload == b"paho-gone"
