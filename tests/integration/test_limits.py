"""Configured limits ([limits] in the ledgermq INI): what happens at the bound.
All ledgermq_only: the keys and reason codes are ledgermq's."""

import time
import urllib.request

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only


def test_max_connections_refuses_the_next_connect(start_broker, version):
    b = start_broker("[limits]\nmax_connections = 2\n")
    first = b.connect("c1", version=version)
    b.connect("c2", version=version)
    c3 = b.raw(version)
    ack = c3.connect("c3", check=False)
    assert ack.rc == (0x97 if version == 5 else 0x03), ack  # Quota exceeded / unavailable
    c3.expect_close()
    # A freed slot can be used again.
    first.disconnect()
    b.connect("c4", version=version).ping()


def connect_when_admitted(b, version, client_id, timeout_s=5.0):
    """Connects once the broker admits it again (a closed socket is uncounted asynchronously)."""
    deadline = time.monotonic() + timeout_s
    refused = 0
    while True:
        c = b.raw(version)
        ack = c.connect(client_id, check=False)
        if ack.rc == 0 or time.monotonic() > deadline:
            return c, ack, refused
        refused += 1
        c.close()
        time.sleep(0.05)


def test_max_connections_per_address_refuses_the_next_connect(start_broker, version):
    b = start_broker("[limits]\nmax_connections_per_address = 2\n")
    first = b.connect("a1", version=version)
    b.connect("a2", version=version)
    c3 = b.raw(version)
    ack = c3.connect("a3", check=False)
    assert ack.rc == (0x97 if version == 5 else 0x03), ack  # Quota exceeded / unavailable
    c3.expect_close()
    b.wait_event("connection_refused",
                 pred=lambda e: e.get("detail") == "max_connections_per_address")
    # Closing one frees the address's slot.
    first.disconnect()
    c4, ack, _ = connect_when_admitted(b, version, "a4")
    assert ack.rc == 0, ack
    c4.ping()


def test_connection_rate_per_address_refuses_with_0x9f_then_recovers(start_broker):
    b = start_broker("[limits]\nmax_connection_rate_per_address = 5\n",
                     extra_args=["--http", "127.0.0.1:0"])
    codes = []
    for i in range(8):
        c = b.raw(5)
        codes.append(c.connect("r%d" % i, check=False).rc)
        c.close()
    # One window admits at most 5 (8 connects may straddle two windows); the rest hear 0x9F.
    assert 0x9F in codes and all(rc in (0, 0x9F) for rc in codes), codes
    assert codes.count(0) <= 10, codes
    # Refused attempts count against the window too: a client that keeps hammering stays out.
    c, ack, retries_refused = connect_when_admitted(b, 5, "after-window")
    assert ack.rc == 0, ack
    addr = b.events("ready")[-1]["http"][0]
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=10) as resp:
        text = resp.read().decode()
    refused = [l for l in text.splitlines()
               if l.startswith('ledgermq_connections_refused_total{reason="address"} ')]
    assert refused and int(refused[0].split()[-1]) == codes.count(0x9F) + retries_refused, \
        (refused, codes, retries_refused)


def test_max_queued_messages_v5_publisher_gets_0x97_and_accepted_ones_survive(start_broker):
    b = start_broker("[limits]\nmax_queued_messages = 3\nqueue_overflow = refuse\n")
    sub = b.connect_persistent("slow", 5)
    sub.subscribe([("lim/q", 1)])
    sub.disconnect()
    pub = b.connect("pub", version=5)
    codes = []
    for i in range(5):
        pid = pub.publish("lim/q", b"%d" % i, qos=1)
        ack = pub.expect(m.PUBACK)
        assert ack.pid == pid
        codes.append(ack.rc)
    assert codes == [0, 0, 0, 0x97, 0x97], codes
    sub2 = b.connect_persistent("slow", 5)
    assert [p.payload for p in sub2.publishes(3)] == [b"0", b"1", b"2"]
    pub.publish_acked("lim/q", b"sentinel")
    assert sub2.expect_publish().payload == b"sentinel"


def test_max_queued_messages_v311_publisher_held_back_until_subscriber_drains(start_broker):
    b = start_broker("[limits]\nmax_queued_messages = 3\nqueue_overflow = refuse\n")
    sub = b.connect_persistent("slow", 4)
    sub.subscribe([("lim/bp", 1)])
    sub.disconnect()
    pub = b.connect("pub", version=4)
    for i in range(5):
        pub.publish("lim/bp", b"%d" % i, qos=1, pid=i + 1)
    assert [pub.expect(m.PUBACK).pid for _ in range(3)] == [1, 2, 3]
    pub.expect_nothing(timeout=0.5)  # 4 and 5 are not acknowledged yet
    sub2 = b.connect_persistent("slow", 4)
    got = [p.payload for p in sub2.publishes(5)]
    assert got == [b"%d" % i for i in range(5)], "a held-back message was lost"
    assert sorted(pub.expect(m.PUBACK).pid for _ in range(2)) == [4, 5]


def test_max_queued_bytes_v5_publisher_gets_0x97(start_broker):
    b = start_broker("[limits]\nmax_queued_bytes = 1000\nqueue_overflow = refuse\n")
    sub = b.connect_persistent("slow", 5)
    sub.subscribe([("lim/b", 1)])
    sub.disconnect()
    pub = b.connect("pub", version=5)
    codes = []
    for i in range(4):
        pub.publish("lim/b", bytes([65 + i]) * 400, qos=1)
        codes.append(pub.expect(m.PUBACK).rc)
    assert codes[:2] == [0, 0] and codes[-1] == 0x97, codes
    sub2 = b.connect_persistent("slow", 5)
    accepted = codes.count(0)
    got = sub2.publishes(accepted)
    assert [p.payload[:1] for p in got] == [bytes([65 + i]) for i in range(accepted)]


def test_max_subscriptions_refuses_the_extra_filter(start_broker, version):
    b = start_broker("[limits]\nmax_subscriptions = 2\n")
    c = b.connect("s", version=version)
    ack = c.subscribe([("l/1", 1), ("l/2", 1), ("l/3", 1)])
    assert ack.rcs == [1, 1, 0x97 if version == 5 else 0x80], ack
    # Replacing an existing subscription is not a new one.
    assert c.subscribe([("l/1", 2)]).rcs == [2]


def test_max_sessions_refuses_a_new_session(start_broker, version):
    b = start_broker("[limits]\nmax_sessions = 2\n")
    for cid in ("s1", "s2"):
        b.connect_persistent(cid, version).disconnect()
    c = b.raw(version)
    props = {"session_expiry_interval": 300} if version == 5 else None
    ack = c.connect("s3", clean=False, props=props, check=False)
    assert ack.rc == (0x97 if version == 5 else 0x03), ack
    # max_sessions counts sessions that outlive their connection: a clean session, bounded by
    # max_connections, is still served.
    b.connect("clean-one", version=version).disconnect()
    # An existing session can still reconnect.
    again = b.connect_persistent("s1", version)
    assert again.connack.session_present is True


def test_max_retained_messages_refuses_more_and_keeps_existing(start_broker):
    b = start_broker("[limits]\nmax_retained_messages = 2\n")
    pub = b.connect("pub", version=5)
    codes = []
    for t in ("lr/1", "lr/2", "lr/3"):
        pub.publish(t, t.encode(), qos=1, retain=True)
        codes.append(pub.expect(m.PUBACK).rc)
    # No subscribers: 0x10 (or 0x00); the third new retained topic: 0x97.
    assert codes[:2] in ([0, 0], [0x10, 0x10]) and codes[2] == 0x97, codes
    # Replacing an existing retained message is allowed at the bound.
    pub.publish_acked("lr/1", b"replaced", retain=True)
    sub = b.connect("sub", version=5)
    sub.subscribe([("lr/#", 1)])
    got = sorted((p.topic, p.payload) for p in sub.publishes(2))
    assert got == [("lr/1", b"replaced"), ("lr/2", b"lr/2")]
    pub.publish_acked("lr/9", b"live")
    assert sub.expect_publish().payload == b"live"


def test_max_packet_size_v311_connection_closed(start_broker):
    b = start_broker("[limits]\nmax_packet_size = 512\n")
    c = b.connect("big", version=4)
    c.publish("lim/big", b"x" * 1000, qos=0)
    c.expect_disconnect()


def test_unknown_limits_key_refused_at_startup(tmp_path):
    # Not through the fixture: the broker must exit non-zero, not run.
    import os
    import subprocess
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[limits]\nmax_bananas = 3\n")
    r = subprocess.run([os.environ["LEDGERMQ_BIN"], "serve", "--mqtt", "127.0.0.1:0", "--http", "none",
                        "--data", str(tmp_path / "d"), "--config", str(cfg)],
                       capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"max_bananas" in r.stderr
