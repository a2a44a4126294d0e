"""Security findings about wills (docs/SECURITY.md): a client whose will comes back to its own
ending session must not crash the broker (finding 1)."""

import pytest

import mqttraw as m
import wsclient as ws

pytestmark = pytest.mark.ledgermq_only


def alive_after(b, version):
    """The broker still serves: a fresh client round-trips a QoS 1 message."""
    c = b.connect("alive-check", version=version)
    c.subscribe([("alive/t", 1)])
    c.publish_acked("alive/t", b"ok", qos=1)
    assert c.expect_publish().payload == b"ok"
    c.disconnect()
    assert b.alive()


@pytest.mark.parametrize("qos", [1, 2])
def test_will_to_own_subscription_of_clean_session_does_not_crash(broker, version, qos):
    # Finding 1: clean session, QoS>0 will on T, subscribed to T, socket dropped without
    # DISCONNECT: the will is routed back to the session that is ending.
    w = broker.connect("watcher", version=version)
    w.subscribe([("status/dev1", 1)])
    c = broker.connect("dev1", version=version, will=m.Will("status/dev1", b"offline", qos=qos))
    c.subscribe([("status/dev1", qos)])
    c.close()
    p = w.expect_publish()
    assert (p.topic, p.payload) == ("status/dev1", b"offline")
    alive_after(broker, version)


def test_delayed_will_to_own_subscription_does_not_crash(broker):
    c = broker.connect("dev2", version=5,
                       will=m.Will("status/dev2", b"late", qos=1,
                                   props={"will_delay_interval": 1}),
                       props={"session_expiry_interval": 2})
    c.subscribe([("status/#", 1)])
    c.close()
    w = broker.connect("watcher2", version=5)
    w.subscribe([("status/dev2", 1)])
    assert w.expect_publish(timeout=10).payload == b"late"
    alive_after(broker, 5)


def test_will_on_takeover_to_own_subscription_does_not_crash(broker, version):
    c = broker.connect("dev3", version=version, will=m.Will("status/dev3", b"gone", qos=1))
    c.subscribe([("status/dev3", 1)])
    c2 = broker.connect("dev3", version=version, clean=False)
    c.expect_close()
    c2.disconnect()
    alive_after(broker, version)


def test_will_to_own_subscription_over_websocket_does_not_crash(start_broker):
    b = start_broker(extra_args=["--http", "127.0.0.1:0"])
    host, port = b.events("ready")[-1]["http"][0].rsplit(":", 1)
    conn = ws.WsConn(host, int(port))
    conn.upgrade()
    c = m.RawClient(None, version=4, sock=conn.as_socket())
    c.connect("wsdev", will=m.Will("status/wsdev", b"offline", qos=1))
    c.subscribe([("status/wsdev", 1)])
    conn.sock.close()  # the TCP connection drops: no DISCONNECT, no WebSocket close
    alive_after(b, 4)
