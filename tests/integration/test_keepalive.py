"""Keepalive: silent clients are disconnected, active ones are not; v5 Server Keep Alive."""

import time

import pytest

import mqttraw as m

# mosquitto checks keepalives only every few seconds; ledgermq at 1.5 x keepalive.
CLOSE_TIMEOUT_S = 10


def test_silent_client_disconnected_after_keepalive(broker, version):
    c = broker.connect("silent", version=version, keepalive=1)
    c.expect_disconnect(timeout=CLOSE_TIMEOUT_S)  # v5 may carry 0x8D
    broker.connect("other", version=version).ping()


@pytest.mark.ledgermq_only  # mosquitto closes a timed-out client without a DISCONNECT
def test_silent_v5_client_gets_disconnect_0x8d(broker):
    c = broker.connect("silent", version=5, keepalive=1)
    c.expect_disconnect(rc=0x8D, timeout=CLOSE_TIMEOUT_S)  # Keep Alive timeout


def test_pinging_client_stays_connected_past_keepalive(broker, version):
    c = broker.connect("pinger", version=version, keepalive=1)
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        assert c.ping().type == m.PINGRESP
        time.sleep(0.4)
    assert c.ping().type == m.PINGRESP


def test_publishing_client_stays_connected_past_keepalive(broker, version):
    c = broker.connect("talker", version=version, keepalive=1)
    end = time.monotonic() + 3.5
    n = 0
    while time.monotonic() < end:
        c.publish_acked("ka/x", b"%d" % n, qos=1)
        n += 1
        time.sleep(0.4)
    assert c.ping().type == m.PINGRESP


def test_keepalive_zero_is_never_timed_out(broker, version):
    c = broker.connect("forever", version=version, keepalive=0)
    time.sleep(3)
    assert c.ping().type == m.PINGRESP


def test_max_keepalive_returns_server_keep_alive_for_larger_request(start_broker):
    b = start_broker("[limits]\nmax_keepalive = 10\n")
    ack = b.raw(5).connect("big", keepalive=60)
    assert ack.props.get("server_keep_alive") == 10, ack


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 leaves keepalive 0 uncapped
def test_max_keepalive_returns_server_keep_alive_for_zero_request(start_broker):
    b = start_broker("[limits]\nmax_keepalive = 10\n")
    ack = b.raw(5).connect("zero", keepalive=0)
    assert ack.props.get("server_keep_alive") == 10, ack


def test_max_keepalive_leaves_smaller_request_alone(start_broker):
    b = start_broker("[limits]\nmax_keepalive = 10\n")
    ack = b.raw(5).connect("small", keepalive=5)
    assert ack.props.get("server_keep_alive", 5) == 5, ack


@pytest.mark.ledgermq_only  # mosquitto documents max_keepalive below 10 s as unsupported
def test_server_keep_alive_is_enforced(start_broker):
    b = start_broker("[limits]\nmax_keepalive = 1\n")
    c = b.raw(5)
    ack = c.connect("capped", keepalive=60)
    assert ack.props.get("server_keep_alive") == 1
    c.expect_disconnect(timeout=CLOSE_TIMEOUT_S)


@pytest.mark.ledgermq_only  # the keepalive enforced must be the one the CONNACK returned
def test_v5_keepalive_zero_is_held_to_the_server_keep_alive(start_broker):
    b = start_broker("[limits]\nmax_keepalive = 1\n")
    c = b.raw(5)
    ack = c.connect("zero-capped", keepalive=0)
    assert ack.props.get("server_keep_alive") == 1, ack
    d = c.expect_disconnect(rc=0x8D, timeout=CLOSE_TIMEOUT_S)
    assert d.props.get("reason_string"), d


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 accepts them (later versions refuse, as we do)
@pytest.mark.parametrize("keepalive", [0, 11, 60])
def test_v311_keepalive_beyond_max_keepalive_is_refused(start_broker, keepalive):
    """3.1.1 has no Server Keep Alive: a client asking for none or for more than max_keepalive
    would be disconnected while doing everything right, so it is refused (identifier
    rejected, as mosquitto does) instead."""
    b = start_broker("[limits]\nmax_keepalive = 10\n")
    c = b.raw(4)
    ack = c.connect("ka311", keepalive=keepalive, check=False)
    assert ack.rc == 0x02, ack
    c.expect_close()
    assert b.connect("ka311-ok", version=4, keepalive=10).ping().type == m.PINGRESP
