"""MQTT 5 Reason Strings (docs/PROTOCOL.md "Connecting", "Reason Strings"): a refusal says why in
a short English sentence; Request Problem Information 0 keeps Reason Strings (and User
Properties) off everything but PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29]; a Reason String
that would make a packet larger than the client's Maximum Packet Size is left out."""

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only  # the texts are ledgermq's

NO_PROBLEM_INFO = {"request_problem_information": 0}


@pytest.fixture
def acl_broker(start_broker, tmp_path):
    """A broker with an ACL file: an anonymous client matches no rule, so every PUBLISH and
    SUBSCRIBE of one outside id/ is refused."""
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    return start_broker(extra_args=["--acl-file", str(acl)])


def refused_publish(c, qos):
    pid = c.publish("denied/t", b"x", qos=qos)
    ack = c._expect_ack(m.PUBACK if qos == 1 else m.PUBREC)
    assert ack.pid == pid and ack.rc == 0x87, ack
    return ack


@pytest.mark.parametrize("qos", [1, 2])
def test_publish_refused_by_the_acl_says_why(acl_broker, qos):
    c = acl_broker.connect("rs-pub", version=5)
    ack = refused_publish(c, qos)
    assert ack.props.get("reason_string") == "not authorized by the ACL", ack


# Another identity's topics: a SUBSCRIBE entry the broker refuses whatever the ACL (the ACL, as
# mosquitto's, never refuses a subscription: it filters each delivery).
OTHERS_INBOX = "id/" + "ab" * 32 + "/inbox"


def test_subscribe_refused_says_why(acl_broker):
    c = acl_broker.connect("rs-sub", version=5)
    ack = c.subscribe([(OTHERS_INBOX, 1)])
    assert ack.rcs == [0x87], ack
    assert "not authorized" in ack.props.get("reason_string", ""), ack


def test_no_reason_string_on_acks_without_problem_information(acl_broker):
    c = acl_broker.connect("rs-quiet", version=5, props=NO_PROBLEM_INFO)
    for qos in (1, 2):
        ack = refused_publish(c, qos)
        assert "reason_string" not in ack.props and "user_property" not in ack.props, ack
    ack = c.subscribe([(OTHERS_INBOX, 1)])
    assert ack.rcs == [0x87] and "reason_string" not in ack.props, ack
    c.pubrel(4242)  # unknown packet id: PUBCOMP 0x92, without its reason string
    comp = c._expect_ack(m.PUBCOMP)
    assert comp.rc == 0x92 and "reason_string" not in comp.props, comp


def test_pubcomp_for_an_unknown_packet_id_says_why(broker):
    c = broker.connect("rs-rel", version=5)
    c.pubrel(4242)
    comp = c._expect_ack(m.PUBCOMP)
    assert comp.rc == 0x92, comp
    assert comp.props.get("reason_string") == "packet identifier not found", comp


def test_publish_refused_for_a_full_queue_says_a_subscribers_queue_is_full(start_broker):
    b = start_broker("[limits]\nmax_queued_messages = 1\nqueue_overflow = refuse\n")
    sub = b.connect_persistent("rs-offline", 5)
    sub.subscribe([("rs/q", 1)])
    sub.disconnect()
    pub = b.connect("rs-publisher", version=5)
    assert pub.publish_acked("rs/q", b"1").rc == 0
    pid = pub.publish("rs/q", b"2", qos=1)
    ack = pub._expect_ack(m.PUBACK)
    assert ack.pid == pid and ack.rc == 0x97, ack
    assert ack.props.get("reason_string") == "a subscriber's queue is full", ack


def exceed_receive_maximum(c):
    """One QoS 2 PUBLISH more than Receive Maximum; returns the DISCONNECT 0x93 that follows
    the PUBRECs of those within it (nothing stores them, so they need no commit)."""
    n = c.server_receive_maximum() + 1
    c.send_raw(b"".join(m.encode_publish(5, "rs/t", b"x", qos=2, pid=i + 1) for i in range(n)))
    while True:
        p = c.recv()
        if p.type == m.DISCONNECT:
            assert p.rc == 0x93, p
            c.expect_close()
            return p
        assert p.type == m.PUBREC and p.pid < n, p


@pytest.mark.parametrize("props", [None, NO_PROBLEM_INFO], ids=["default", "no_problem_info"])
def test_disconnect_says_why_even_without_problem_information(start_broker, props):
    b = start_broker("[limits]\nmax_inflight = 3\n")
    c = b.connect("rs-flood", version=5, props=props)
    d = exceed_receive_maximum(c)
    assert "Receive Maximum" in d.props.get("reason_string", ""), d


def test_second_connect_disconnect_names_the_protocol_error(broker):
    c = broker.connect("rs-twice", version=5)
    c.send_raw(m.encode_connect(5, "rs-twice"))
    d = c.expect_disconnect(rc=0x82)
    assert d.props.get("reason_string") == "a second CONNECT", d


@pytest.mark.parametrize("props", [None, NO_PROBLEM_INFO], ids=["default", "no_problem_info"])
def test_refused_connack_says_why(start_broker, props):
    b = start_broker("[limits]\nmax_connections = 1\n")
    b.connect("rs-first", version=5)
    ack = b.raw(5).connect("rs-second", props=props, check=False)
    assert ack.rc == 0x97, ack
    assert "connections" in ack.props.get("reason_string", ""), ack


def test_reason_string_left_out_beyond_the_clients_maximum_packet_size(acl_broker):
    # A PUBACK with its code alone is 4 bytes, with the reason string over 30.
    small = acl_broker.connect("rs-small", version=5, props={"maximum_packet_size": 16})
    ack = refused_publish(small, 1)
    assert "reason_string" not in ack.props, ack
    roomy = acl_broker.connect("rs-roomy", version=5, props={"maximum_packet_size": 64})
    ack = refused_publish(roomy, 1)
    assert ack.props.get("reason_string") == "not authorized by the ACL", ack


def test_disconnect_fits_the_clients_maximum_packet_size(start_broker):
    b = start_broker("[limits]\nmax_inflight = 3\n")
    c = b.connect("rs-small-d", version=5, props={"maximum_packet_size": 8})
    d = exceed_receive_maximum(c)
    assert "reason_string" not in d.props, d


def test_refused_connack_fits_the_clients_maximum_packet_size(start_broker):
    b = start_broker("[limits]\nmax_connections = 1\n")
    b.connect("rs-holder", version=5)
    ack = b.raw(5).connect("rs-small-c", props={"maximum_packet_size": 8}, check=False)
    assert ack.rc == 0x97 and "reason_string" not in ack.props, ack
