"""v5 PUBLISH properties pass through the broker unchanged; payload format
indicator 1 is checked."""

import pytest

import mqttraw as m


def pair(broker, flt="pp/#", sub_version=5):
    sub = broker.connect("sub", version=sub_version)
    sub.subscribe([(flt, 1)])
    pub = broker.connect("pub", version=5)
    return sub, pub


def test_user_properties_keep_order_and_duplicates(broker):
    sub, pub = pair(broker)
    ups = [("z", "1"), ("a", "2"), ("z", "3"), ("same", "x"), ("same", "x"), ("", ""),
           ("ünï", "cødé")]
    pub.publish_acked("pp/up", b"u", props={"user_property": ups})
    p = sub.expect_publish()
    assert p.props.all("user_property") == ups


def test_content_type_response_topic_correlation_data_pass_through(broker):
    sub, pub = pair(broker)
    props = [("content_type", "application/cbor"), ("response_topic", "reply/here"),
             ("correlation_data", bytes(range(256)))]
    pub.publish_acked("pp/req", b"r", props=props)
    p = sub.expect_publish()
    assert p.props.get("content_type") == "application/cbor"
    assert p.props.get("response_topic") == "reply/here"
    assert p.props.get("correlation_data") == bytes(range(256))


@pytest.mark.parametrize("pfi", [0, 1])
def test_payload_format_indicator_passes_through(broker, pfi):
    sub, pub = pair(broker)
    pub.publish_acked("pp/pfi", "héllo".encode(), props={"payload_format_indicator": pfi})
    p = sub.expect_publish()
    assert p.props.get("payload_format_indicator", 0) == pfi
    assert p.payload == "héllo".encode()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_properties_pass_through_at_every_qos(broker, qos):
    sub = broker.connect("sub", version=5)
    sub.subscribe([("pp/q", 2)])
    pub = broker.connect("pub", version=5)
    props = {"user_property": [("k", "v%d" % qos)], "content_type": "t/%d" % qos}
    pub.publish_acked("pp/q", b"x", qos=qos, props=props)
    if qos == 0:
        pub.ping()
    p = sub.expect_publish()
    assert p.props.all("user_property") == [("k", "v%d" % qos)]
    assert p.props.get("content_type") == "t/%d" % qos


def test_properties_kept_for_offline_queued_message(broker):
    sub = broker.connect_persistent("off", 5)
    sub.subscribe([("pp/off", 1)])
    sub.disconnect()
    pub = broker.connect("pub", version=5)
    props = [("user_property", ("a", "1")), ("user_property", ("b", "2")),
             ("correlation_data", b"\x00\xff"), ("response_topic", "r/t")]
    pub.publish_acked("pp/off", b"q", props=props)
    sub2 = broker.connect_persistent("off", 5)
    p = sub2.expect_publish()
    assert p.props.all("user_property") == [("a", "1"), ("b", "2")]
    assert p.props.get("correlation_data") == b"\x00\xff"
    assert p.props.get("response_topic") == "r/t"


def test_v5_message_reaches_v311_subscriber_without_properties(broker):
    sub, pub = pair(broker, sub_version=4)
    pub.publish_acked("pp/old", b"plain", props={"user_property": [("k", "v")]})
    p = sub.expect_publish()
    assert (p.topic, p.payload) == ("pp/old", b"plain")


@pytest.mark.ledgermq_only  # validation is a MAY in the spec; mosquitto 2.0.11 does not check
def test_invalid_utf8_with_format_indicator_qos1_gets_puback_0x99_not_delivered(broker):
    sub, pub = pair(broker)
    pid = pub.publish("pp/bad", b"\xff\xfe\xc0", qos=1, props={"payload_format_indicator": 1})
    ack = pub.expect(m.PUBACK)
    assert (ack.pid, ack.rc) == (pid, 0x99)  # Payload format invalid
    pub.publish_acked("pp/bad", b"sentinel")
    assert sub.expect_publish().payload == b"sentinel"


@pytest.mark.ledgermq_only  # validation is a MAY in the spec; mosquitto 2.0.11 does not check
def test_invalid_utf8_with_format_indicator_qos0_disconnects_0x99(broker):
    sub, pub = pair(broker)
    pub.publish("pp/bad0", b"\xff\xfe", qos=0, props={"payload_format_indicator": 1})
    pub.expect_disconnect(rc=0x99)
    other = broker.connect("other", version=5)
    other.publish_acked("pp/bad0", b"sentinel")
    assert sub.expect_publish().payload == b"sentinel"


def test_invalid_utf8_without_format_indicator_is_delivered(broker):
    sub, pub = pair(broker)
    pub.publish_acked("pp/bin", b"\xff\xfe\xc0")
    assert sub.expect_publish().payload == b"\xff\xfe\xc0"


def test_paho_user_properties_round_trip(broker):
    from conftest import PacketTypes, Properties
    sub = broker.paho("psub", 5)
    sub.subscribe("pp/paho", 1)
    pub = broker.paho("ppub", 5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("a", "1"), ("a", "2")]
    props.ContentType = "text/plain"
    pub.publish("pp/paho", b"x", qos=1, props=props)
    msg = sub.get()
    assert msg.properties.UserProperty == [("a", "1"), ("a", "2")]
    assert msg.properties.ContentType == "text/plain"
