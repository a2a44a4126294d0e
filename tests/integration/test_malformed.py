"""Malformed and forbidden input closes the offending connection (v5: with a
DISCONNECT reason where one applies) and the broker keeps serving others."""

import struct

import pytest

import mqttraw as m

LMQ_ONLY = pytest.mark.ledgermq_only


def pub_body(topic_bytes, pid=None, props=b"\x00", payload=b"x", version=5):
    body = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if pid is not None:
        body += struct.pack("!H", pid)
    if version == 5:
        body += props
    return body + payload


# name -> (builder(version) -> bytes, expected v5 DISCONNECT reason or None).
# 0x81 Malformed Packet where the spec says "malformed", 0x82 Protocol Error
# where it says "protocol error" (SUBSCRIBE without filters, QoS 3 or retain
# handling 3 in subscription options, a property given twice).
CASES = {
    "subscribe_flags_0": (lambda v: m.packet(m.SUBSCRIBE, 0, m.encode_subscribe(v, 1, [("a", 0)])[2:]), 0x81),
    "unsubscribe_flags_0": (lambda v: m.packet(m.UNSUBSCRIBE, 0, m.encode_unsubscribe(v, 1, ["a"])[2:]), 0x81),
    "pubrel_flags_0": (lambda v: m.packet(m.PUBREL, 0, b"\x00\x01"), 0x81),
    "remaining_length_5_bytes": (lambda v: bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]), 0x81),
    "publish_qos3": (lambda v: m.packet(m.PUBLISH, 0x06, pub_body(b"a", 1, version=v)), 0x81),
    "topic_invalid_utf8": (lambda v: m.packet(m.PUBLISH, 0x02, pub_body(b"a/\xff\xfe", 1, version=v)), 0x81),
    "topic_utf16_surrogate": (lambda v: m.packet(m.PUBLISH, 0x02, pub_body(b"a/\xed\xa0\x80", 1, version=v)), 0x81),
    "topic_contains_nul": (lambda v: m.packet(m.PUBLISH, 0x02, pub_body(b"a/\x00b", 1, version=v)), 0x81),
    "topic_length_beyond_packet": (lambda v: m.packet(m.PUBLISH, 0x00, b"\x00\x64abc"), 0x81),
    "subscribe_without_filters": (lambda v: m.packet(m.SUBSCRIBE, 0x02, b"\x00\x01" + (b"\x00" if v == 5 else b"")), 0x82),
    "subscribe_qos3": (lambda v: m.packet(m.SUBSCRIBE, 0x02, b"\x00\x01" + (b"\x00" if v == 5 else b"") + m.encode_str("a") + b"\x03"), 0x82),
    "reserved_packet_type_0": (lambda v: bytes([0x00, 0x00]), None),
    "subscribe_filter_invalid_utf8": (lambda v: m.packet(m.SUBSCRIBE, 0x02, b"\x00\x01" + (b"\x00" if v == 5 else b"") + b"\x00\x02\xc3\x28\x01"), 0x81),
}

V5_CASES = {
    "unknown_property": (lambda v: m.packet(m.PUBLISH, 0x02, pub_body(b"a", 1, props=b"\x02\x7f\x00")), 0x81),
    "property_length_beyond_packet": (lambda v: m.packet(m.PUBLISH, 0x02, pub_body(b"a", 1, props=b"\x40\x01\x01", payload=b"")), 0x81),
    "duplicate_payload_format_indicator": (lambda v: m.packet(m.PUBLISH, 0x02, pub_body(b"a", 1, props=b"\x04\x01\x00\x01\x00")), 0x82),
    "subscribe_retain_handling_3": (lambda v: m.packet(m.SUBSCRIBE, 0x02, b"\x00\x01\x00" + m.encode_str("a") + b"\x30"), 0x82),
    "subscribe_reserved_option_bits": (lambda v: m.packet(m.SUBSCRIBE, 0x02, b"\x00\x01\x00" + m.encode_str("a") + b"\xc0"), 0x81),
    "auth_without_authentication": (lambda v: m.packet(m.AUTH, 0, b"\x18\x00"), 0x82),
}


def check_closed(broker, version, data, rc):
    c = broker.connect("victim", version=version)
    bystander = broker.connect("bystander", version=version)
    bystander.subscribe([("mf/alive", 1)])
    try:
        c.send_raw(data)
    except m.Closed:
        pass
    c.expect_disconnect(rc=rc if version == 5 else None)
    # The broker still serves: an existing client and a new one.
    newcomer = broker.connect("newcomer", version=version)
    newcomer.publish_acked("mf/alive", b"still-serving", qos=1)
    assert bystander.expect_publish().payload == b"still-serving"


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_packet_closes_connection(broker, version, case):
    build, _ = CASES[case]
    check_closed(broker, version, build(version), None)


@pytest.mark.parametrize("case", sorted(V5_CASES))
def test_malformed_v5_packet_closes_connection(broker, case):
    build, _ = V5_CASES[case]
    check_closed(broker, 5, build(5), None)


@LMQ_ONLY  # the reason code in the DISCONNECT: mosquitto closes some cases silently
@pytest.mark.parametrize("case", sorted(set(CASES) | set(V5_CASES)))
def test_malformed_packet_v5_disconnect_reason(broker, case):
    build, rc = CASES.get(case) or V5_CASES[case]
    check_closed(broker, 5, build(5), rc)


@LMQ_ONLY  # mosquitto 2.0.11 ignores reserved flag bits on PINGREQ
def test_pingreq_with_reserved_flags_closes_connection(broker, version):
    check_closed(broker, version, bytes([0xC1, 0x00]), 0x81)


def test_connect_with_reserved_flag_set_closed(broker, version):
    c = broker.raw(version)
    c.send_raw(m.encode_connect(version, "resv", reserved_flag=True))
    got = c.expect_close()
    assert all(p.type == m.CONNACK and p.rc != 0 for p in got), got
    broker.connect("after", version=version).ping()


def test_connect_with_unknown_protocol_name_closed(broker):
    c = broker.raw(4)
    c.send_raw(m.encode_connect(4, "who", proto_name="MQTX"))
    got = c.expect_close()
    assert all(p.type == m.CONNACK and p.rc != 0 for p in got), got
    broker.connect("after", version=4).ping()


def test_connect_with_unsupported_protocol_level_refused(broker):
    c = broker.raw(4)
    c.send_raw(m.encode_connect(4, "future", proto_level=6))
    got = c.expect_close()
    assert all(p.type == m.CONNACK and p.rc != 0 for p in got), got


def test_truncated_connect_then_close_is_harmless(broker, version):
    data = m.encode_connect(version, "half")
    c = broker.raw(version)
    c.send_raw(data[: len(data) // 2])
    c.close()
    broker.connect("after", version=version).ping()


def test_garbage_bytes_instead_of_connect_closed_before_connect_timeout(broker):
    # "G" is packet type 4, not CONNECT: the first byte is enough to refuse;
    # the broker must not wait for the rest of a bogus packet (or a timeout).
    c = broker.raw(4)
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [p for p in c.expect_close(timeout=3) if p.type != m.CONNACK] == []
    broker.connect("after", version=4).ping()


def test_packets_split_across_writes_are_reassembled(broker, version):
    sub = broker.connect("sub", version=version)
    sub.subscribe([("mf/split", 1)])
    c = broker.connect("slow", version=version)
    data = m.encode_publish(version, "mf/split", b"byte-by-byte", qos=1, pid=3)
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
    assert c.expect(m.PUBACK).pid == 3
    assert sub.expect_publish().payload == b"byte-by-byte"


def test_many_packets_in_one_write_all_processed(broker, version):
    sub = broker.connect("sub", version=version)
    sub.subscribe([("mf/batch", 1)])
    c = broker.connect("batch", version=version)
    data = b"".join(m.encode_publish(version, "mf/batch", b"%d" % i, qos=1, pid=i + 1)
                    for i in range(30))
    c.send_raw(data)
    assert [c.expect(m.PUBACK).pid for _ in range(30)] == list(range(1, 31))
    assert [p.payload for p in sub.publishes(30)] == [b"%d" % i for i in range(30)]
