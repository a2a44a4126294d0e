"""Security findings about wills and identity topics (docs/SECURITY.md): a client whose will
comes back to its own ending session must not crash the broker (finding 1); nothing but the
server's pipeline delivers on id/<x>/...: no will and no retained message there, not even from
an old store (finding 2)."""

import os
import sqlite3
import time

import pytest

import ledgerclient as lc
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


# ---------------------------------------------------------------- finding 2: forged deliveries


def identity_broker(start_broker):
    b = start_broker(extra_args=["--http", "127.0.0.1:0"])
    b.http_addr = b.events("ready")[-1]["http"][0]
    return b


def identity_raw(b, ident, version=5, client_id=None, **kw):
    c = b.raw(version)
    c.connect(client_id or "raw-" + ident.id[:12], username=ident.id,
              password=lc.login(b.http_addr, ident).encode(), **kw)
    return c


def refused_code(version):
    return 0x87 if version == 5 else 0x05


@pytest.mark.parametrize("leaf", ["inbox", "ack", "reject", "sync", "outbox", "resync", "other"])
def test_anonymous_will_on_a_victims_identity_topic_is_refused_at_connect(start_broker, version,
                                                                         leaf):
    b = identity_broker(start_broker)
    victim = lc.Identity()
    env = lc.canonical(victim.envelope(victim.id, {"forged": True}))
    for retain in (False, True):
        c = b.raw(version)
        ack = c.connect("forger", will=m.Will("id/%s/%s" % (victim.id, leaf), env, qos=1,
                                              retain=retain), check=False)
        assert ack.rc == refused_code(version), ack
        c.expect_close()
    deadline = time.monotonic() + 5
    while True:
        events = [e for e in b.events("security") if e.get("detail") == "will under id/"]
        if len(events) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(events) == 2, events


def test_identity_will_on_its_own_topics_is_refused(start_broker, version):
    # Even its own inbox or outbox: a will outlives the connection the pipeline needs.
    b = identity_broker(start_broker)
    me = lc.Identity()
    for leaf in ("inbox", "outbox"):
        c = b.raw(version)
        ack = c.connect("me-" + leaf, username=me.id,
                        password=lc.login(b.http_addr, me).encode(),
                        will=m.Will("id/%s/%s" % (me.id, leaf), b"{}", qos=1), check=False)
        assert ack.rc == refused_code(version), ack


def test_forged_will_never_reaches_the_victims_inbox(start_broker):
    # The attack of finding 2 end to end: the victim listens on its inbox while a forger's
    # connection with a will on it drops; nothing arrives, and the victim's real envelope
    # is delivered at position 1.
    b = identity_broker(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    rx = lc.Session(b.port, bob, lc.login(b.http_addr, bob))
    assert rx.rc == 0
    forged = lc.canonical(alice.envelope(bob.id, {"amount": "1000000.00"}))
    f = b.raw(4)
    ack = f.connect("forger", will=m.Will("id/%s/inbox" % bob.id, forged, qos=1, retain=True),
                    check=False)
    assert ack.rc == 0x05
    f.close()
    tx = lc.Session(b.port, alice, lc.login(b.http_addr, alice))
    assert tx.rc == 0
    real = alice.envelope(bob.id, {"amount": "1.00"})
    tx.send(real)
    assert tx.expect("ack")["seq"] == real["seq"]
    got = rx.expect("inbox")
    assert got["position"] == 1 and got["envelope"] == real, got
    with pytest.raises(Exception):
        rx.messages.get(timeout=1.0)
    tx.close()
    rx.close()


def test_retained_publish_under_id_is_refused(start_broker, version):
    b = identity_broker(start_broker)
    me = lc.Identity()
    c = identity_raw(b, me, version)
    env = lc.canonical(me.envelope(me.id, {"n": 1}))
    c.publish("id/%s/outbox" % me.id, env, qos=1, retain=True)
    if version == 5:
        assert c.expect(m.PUBACK).rc == 0x87
    else:
        c.expect_close()
    # Nothing was retained: a new subscriber to its own topics gets nothing.
    s = identity_raw(b, me, 5, client_id="after")
    s.subscribe([("id/%s/#" % me.id, 1)])
    with pytest.raises(m.Timeout):
        s.expect_publish(timeout=1.0)


def test_retained_and_wills_under_id_in_an_old_store_are_dropped_at_start(start_broker):
    # A database written before the fix may hold a forged retained message or will under id/:
    # recovery removes them, logs them, and delivers nothing.
    b = identity_broker(start_broker)
    victim = lc.Identity()
    b.terminate()
    db = sqlite3.connect(os.path.join(b.data_dir, "ledgermq.db"))
    topic = ("id/%s/inbox" % victim.id).encode()
    forged = lc.canonical(victim.envelope(victim.id, {"forged": 1}))
    for mid in (900001, 900002):
        db.execute("INSERT INTO messages(id, qos, retain, created_ms, topic, payload) "
                   "VALUES(?, 1, 1, ?, ?, ?)", (mid, int(time.time() * 1000), topic, forged))
    db.execute("INSERT INTO retained(topic, msg_id) VALUES(?, 900001)", (topic,))
    db.execute("INSERT INTO wills(client_id, msg_id, delay_s) VALUES(?, 900002, 0)", (b"ghost",))
    db.commit()
    db.close()
    b.restart()
    b.http_addr = b.events("ready")[-1]["http"][0]
    rec = b.events("recovered")[-1]
    assert rec["dropped_under_id"] == 2, rec
    c = identity_raw(b, victim, 5)
    c.subscribe([("id/%s/inbox" % victim.id, 1)])
    with pytest.raises(m.Timeout):
        c.expect_publish(timeout=1.0)
    b.terminate()
    db = sqlite3.connect(os.path.join(b.data_dir, "ledgermq.db"))
    left = db.execute("SELECT (SELECT count(*) FROM retained), (SELECT count(*) FROM wills), "
                      "(SELECT count(*) FROM messages WHERE id IN (900001, 900002))").fetchone()
    db.close()
    assert left == (0, 0, 0), left
