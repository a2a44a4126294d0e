"""Shared subscriptions ($share/group/filter), in 3.1.1 and 5."""

import time

import pytest

import mqttraw as m

N = 20


def collect(members, total, timeout=8.0):
    """Reads (and acknowledges) PUBLISHes from several clients until `total`
    arrived in all. Returns {index: [payloads]}."""
    got = {i: [] for i in range(len(members))}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < total:
        assert time.monotonic() < deadline, "only %r of %d arrived" % (got, total)
        for i, c in enumerate(members):
            try:
                p = c.recv(timeout=0.05)
            except m.Timeout:
                continue
            assert p.type == m.PUBLISH, p
            c.ack_publish(p)
            got[i].append(p.payload)
    return got


def group(broker, version, n=2, flt="$share/g/sh/t", qos=1):
    members = []
    for i in range(n):
        c = broker.connect("member%d" % i, version=version)
        ack = c.subscribe([(flt, qos)])
        assert ack.rcs == [qos], ack
        members.append(c)
    return members


def test_shared_group_delivers_each_message_to_exactly_one_member(broker, version):
    members = group(broker, version)
    plain = broker.connect("plain", version=version)
    plain.subscribe([("sh/t", 1)])
    pub = broker.connect("pub", version=version)
    sent = [b"m%02d" % i for i in range(N)]
    for pl in sent:
        pub.publish_acked("sh/t", pl, qos=1)
    got = collect(members, N)
    everything = got[0] + got[1]
    assert sorted(everything) == sent, "duplicates or losses: %r" % got
    assert got[0] and got[1], "one member got nothing: %r" % got
    # Order is kept within each member.
    assert got[0] == sorted(got[0]) and got[1] == sorted(got[1])
    # A plain subscriber on the same topic gets every message.
    assert [p.payload for p in plain.publishes(N)] == sent


def test_shared_group_with_wildcard_filter(broker, version):
    members = group(broker, version, flt="$share/wg/sh/+")
    pub = broker.connect("pub", version=version)
    for i in range(10):
        pub.publish_acked("sh/%d" % i, b"%d" % i, qos=1)
    got = collect(members, 10)
    assert sorted(got[0] + got[1]) == sorted(b"%d" % i for i in range(10))


def test_two_groups_each_get_every_message_once(broker, version):
    g1 = group(broker, version, flt="$share/one/sh/t")
    g2 = [broker.connect("g2m%d" % i, version=version) for i in range(2)]
    for c in g2:
        c.subscribe([("$share/two/sh/t", 1)])
    pub = broker.connect("pub", version=version)
    for i in range(10):
        pub.publish_acked("sh/t", b"%d" % i, qos=1)
    want = sorted(b"%d" % i for i in range(10))
    a = collect(g1, 10)
    b = collect(g2, 10)
    assert sorted(a[0] + a[1]) == want
    assert sorted(b[0] + b[1]) == want


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 sends retained messages on shared subscribe
def test_shared_subscribe_gets_no_retained_messages(broker, version):
    pub = broker.connect("pub", version=version)
    pub.publish_acked("sh/ret", b"retained", qos=1, retain=True)
    c = broker.connect("member", version=version)
    c.subscribe([("$share/g/sh/ret", 1)])
    pub.publish_acked("sh/ret", b"live", qos=1)
    p = c.expect_publish()
    assert p.payload == b"live", "retained message sent on a shared subscribe: %r" % p


def test_shared_member_leaving_sends_everything_to_the_other(broker, version):
    a, b = group(broker, version)
    a.unsubscribe(["$share/g/sh/t"])
    pub = broker.connect("pub", version=version)
    for i in range(6):
        pub.publish_acked("sh/t", b"%d" % i, qos=1)
    assert [p.payload for p in b.publishes(6)] == [b"%d" % i for i in range(6)]


def test_shared_member_disconnecting_sends_everything_to_the_other(broker, version):
    a, b = group(broker, version)
    a.disconnect()
    pub = broker.connect("pub", version=version)
    for i in range(6):
        pub.publish_acked("sh/t", b"%d" % i, qos=1)
    assert [p.payload for p in b.publishes(6)] == [b"%d" % i for i in range(6)]


def test_shared_subscription_qos_downgrade(broker, version):
    (c,) = group(broker, version, n=1, qos=0)
    pub = broker.connect("pub", version=version)
    pub.publish_acked("sh/t", b"x", qos=2)
    p = c.expect_publish()
    assert (p.payload, p.qos) == (b"x", 0)


@pytest.mark.ledgermq_only  # mosquitto 2.0.11 accepts no-local on a shared subscription
def test_shared_no_local_disconnects_with_0x82(broker):
    c = broker.connect("nl", version=5)
    c.send_raw(m.encode_subscribe(5, 1, [("$share/g/sh/t", m.SubOpts(qos=1, no_local=True))]))
    c.expect_disconnect(rc=0x82)
    broker.connect("after", version=5).ping()


def test_paho_shared_subscription(broker, version):
    members = [broker.paho("pm%d" % i, version) for i in range(2)]
    for c in members:
        c.subscribe("$share/pg/sh/paho", 1)
    pub = broker.paho("ppub", version)
    for i in range(10):
        pub.publish("sh/paho", b"%d" % i, qos=1)
    got = []
    deadline = time.monotonic() + 8
    while len(got) < 10 and time.monotonic() < deadline:
        for c in members:
            try:
                got.append(c.get(timeout=0.05).payload)
            except AssertionError:
                pass
    assert sorted(got) == sorted(b"%d" % i for i in range(10))
