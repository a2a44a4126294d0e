"""CONNECT / CONNACK: protocol levels, client identifiers, CONNACK properties."""

import pytest

import mqttraw as m


def test_connect_accepted_with_rc0_and_no_session_present(broker, version):
    c = broker.raw(version)
    ack = c.connect("c1", clean=True)
    assert ack.rc == 0
    assert ack.session_present is False
    assert c.ping().type == m.PINGRESP


@pytest.mark.ledgermq_only  # mosquitto 2.0 still speaks MQTT 3.1 (MQIsdp) and accepts it
def test_protocol_level_3_refused_with_0x01_then_closed(broker):
    c = broker.raw(version=3)
    ack = c.connect("old", check=False)
    assert ack.rc == 0x01, ack
    assert c.expect_close() == []


def test_second_connect_on_same_connection_closes_it(broker, version):
    c = broker.connect("twice", version=version)
    c.send_raw(m.encode_connect(version, "twice"))
    c.expect_disconnect()
    # ...and the broker keeps serving.
    broker.connect("after", version=version).ping()


@pytest.mark.ledgermq_only  # mosquitto closes without sending a DISCONNECT reason (allowed)
def test_second_connect_v5_gets_disconnect_0x82(broker):
    c = broker.connect("twice", version=5)
    c.send_raw(m.encode_connect(5, "twice"))
    c.expect_disconnect(rc=0x82)


@pytest.mark.parametrize("first", [
    pytest.param(m.packet(m.PINGREQ, 0, b""), id="pingreq"),
    pytest.param(m.encode_publish(4, "a", b"x"), id="publish"),
    pytest.param(m.encode_subscribe(4, 1, [("a", 0)]), id="subscribe"),
])
def test_first_packet_not_connect_closes_without_connack(broker, first):
    c = broker.raw(4)
    c.send_raw(first)
    got = c.expect_close()
    assert not [p for p in got if p.type == m.CONNACK], got
    broker.connect("after", version=4).ping()


def test_empty_client_id_v5_gets_assigned_client_identifier(broker):
    c = broker.raw(5)
    ack = c.connect("", clean=True)
    assigned = ack.props.get("assigned_client_identifier")
    assert assigned, "CONNACK without Assigned Client Identifier: %r" % ack
    # Two anonymous clients get different identifiers.
    ack2 = broker.raw(5).connect("")
    assert ack2.props.get("assigned_client_identifier") not in (None, assigned)


def test_empty_client_id_v311_with_clean_session_accepted(broker):
    c = broker.raw(4)
    ack = c.connect("", clean=True)
    assert ack.rc == 0
    assert c.ping().type == m.PINGRESP


def test_empty_client_id_v311_without_clean_session_refused_0x02(broker):
    c = broker.raw(4)
    ack = c.connect("", clean=False, check=False)
    assert ack.rc == 0x02, ack
    assert ack.session_present is False
    c.expect_close()


def test_authentication_method_refused_with_0x8c(broker):
    c = broker.raw(5)
    ack = c.connect("auth", props={"authentication_method": "SCRAM-SHA-1"}, check=False)
    assert ack.rc == 0x8C, ack
    c.expect_close()


def test_connack_v5_advertises_configured_limits(start_broker):
    b = start_broker("[limits]\nmax_inflight = 7\nmax_packet_size = 4096\nmax_topic_alias = 5\n")
    ack = b.raw(5).connect("limits")
    p = ack.props
    assert p.get("receive_maximum") == 7, p
    assert p.get("maximum_packet_size") == 4096, p
    assert p.get("topic_alias_maximum") == 5, p
    # Absent means "available" (1); when sent, it must say 1.
    for name in ("retain_available", "wildcard_subscription_available",
                 "subscription_identifier_available", "shared_subscription_available"):
        assert p.get(name, 1) == 1, (name, p)
    # QoS 2 supported: Maximum QoS must be absent.
    assert "maximum_qos" not in p, p


@pytest.mark.ledgermq_only  # ledgermq sends every availability flag explicitly
def test_connack_v5_sends_availability_flags_explicitly(broker):
    p = broker.raw(5).connect("flags").props
    for name in ("retain_available", "wildcard_subscription_available",
                 "subscription_identifier_available", "shared_subscription_available"):
        assert p.get(name) == 1, (name, p)


def test_pingreq_answered_with_pingresp(broker, version):
    c = broker.connect("pinger", version=version)
    for _ in range(3):
        assert c.ping().type == m.PINGRESP


def test_paho_client_connects_and_round_trips(broker, version):
    sub = broker.paho("paho-sub", version)
    assert sub.subscribe("paho/t", 1) == [1]
    pub = broker.paho("paho-pub", version)
    pub.publish("paho/t", b"hello", qos=1)
    msg = sub.get()
    assert (msg.topic, msg.payload, msg.qos) == ("paho/t", b"hello", 1)


@pytest.mark.ledgermq_only  # connect_timeout_ms is a ledgermq config key
def test_connection_without_connect_closed_after_connect_timeout(start_broker):
    b = start_broker("[limits]\nconnect_timeout_ms = 300\n")
    c = b.raw(5)
    assert c.expect_close(timeout=5) == []
    b.connect("after").ping()


@pytest.mark.ledgermq_only  # the Response Information value is ledgermq's choice
def test_response_information_returned_when_requested(broker):
    ack = broker.raw(5).connect("asker", props={"request_response_information": 1})
    assert ack.props.get("response_information") == "response/asker/", ack


def test_response_information_absent_when_not_requested(broker):
    ack = broker.raw(5).connect("quiet")
    assert "response_information" not in ack.props, ack
