"""$SYS topics as mosquitto publishes them ([server] sys_interval; docs/PROTOCOL.md "$SYS
topics"): Debian's mosquitto_sub sees the common subset in mosquitto's formats, the values move,
clients can't write there, '#' does not match them, an ACL file needs a read rule for them, they
don't count against (or in) the retained limits and are never stored, sys_interval = 0 is off."""

import re
import subprocess
import time

import pytest

from mqttraw import PUBACK, Timeout, Will

pytestmark = pytest.mark.ledgermq_only

FAST = "[server]\nsys_interval = 1\n"
TIMEOUT_S = 10

INT = re.compile(r"^\d+$")
LOAD = re.compile(r"^\d+\.\d\d$")
VALUES = ["clients/total", "clients/maximum", "clients/connected", "clients/disconnected",
          "clients/active", "clients/inactive", "messages/received", "messages/sent",
          "messages/stored", "store/messages/count", "publish/messages/received",
          "publish/messages/sent", "publish/messages/dropped", "bytes/received", "bytes/sent",
          "subscriptions/count", "retained messages/count", "connections/socket/count"]
LOADS = ["load/%s/%s" % (what, span)
         for what in ("messages/received", "messages/sent", "publish/received", "publish/sent",
                      "publish/dropped", "bytes/received", "bytes/sent", "sockets")
         for span in ("1min", "5min", "15min")]
ALL_TOPICS = ["$SYS/broker/" + t for t in ["version", "uptime"] + VALUES + LOADS]


def sys_values(c, count, timeout=TIMEOUT_S):
    """Reads `count` PUBLISHes; returns {topic: payload} (the latest of each)."""
    got = {}
    for p in c.publishes(count, timeout=timeout):
        got[p.topic] = p.payload.decode()
    return got


def wait_values(c, conds, timeout=TIMEOUT_S):
    """Reads PUBLISHes until, for every topic in conds, one arrived whose payload satisfies
    conds[topic]; returns {topic: that payload}."""
    deadline = time.monotonic() + timeout
    found = {}
    while time.monotonic() < deadline and len(found) < len(conds):
        try:
            p = c.expect_publish(timeout=max(0.1, deadline - time.monotonic()))
        except Timeout:
            break
        if p.topic in conds and p.topic not in found and conds[p.topic](p.payload.decode()):
            found[p.topic] = p.payload.decode()
    missing = sorted(set(conds) - set(found))
    assert not missing, "no update satisfying the condition within %ss: %s" % (timeout, missing)
    return found


def wait_value(c, topic, pred, timeout=TIMEOUT_S):
    return wait_values(c, {topic: pred}, timeout)[topic]


def test_mosquitto_sub_sees_the_sys_topics_in_mosquittos_formats(start_broker):
    b = start_broker(FAST)
    r = subprocess.run(["mosquitto_sub", "-h", b.host, "-p", str(b.port), "-t", "$SYS/#", "-v",
                        "-C", str(len(ALL_TOPICS)), "-W", str(TIMEOUT_S)],
                       capture_output=True, timeout=TIMEOUT_S + 5)
    assert r.returncode == 0, r.stderr
    seen = {}
    for line in r.stdout.decode().splitlines():
        topic, _, payload = line.partition(" ")
        if topic == "$SYS/broker/retained":  # "retained messages/count" has a space
            rest, _, payload = payload.partition(" ")
            topic += " " + rest
        seen[topic] = payload
    # Every topic arrives once, as the retained message of its topic.
    assert sorted(seen) == sorted(ALL_TOPICS), r.stdout.decode()
    assert re.match(r"^ledgermq version \d+\.\d+\.\d+", seen["$SYS/broker/version"])
    assert re.match(r"^\d+ seconds$", seen["$SYS/broker/uptime"])
    for t in VALUES:
        assert INT.match(seen["$SYS/broker/" + t]), (t, seen["$SYS/broker/" + t])
    for t in LOADS:
        assert LOAD.match(seen["$SYS/broker/" + t]), (t, seen["$SYS/broker/" + t])


def test_values_move_with_the_traffic(start_broker):
    b = start_broker(FAST)
    c = b.raw(5)
    c.connect("watcher")
    c.subscribe([("$SYS/broker/publish/messages/received", 0),
                 ("$SYS/broker/messages/received", 0), ("$SYS/broker/uptime", 0)])
    first = sys_values(c, 3)
    pub_before = int(first["$SYS/broker/publish/messages/received"])
    pkt_before = int(first["$SYS/broker/messages/received"])
    p = b.raw(5)
    p.connect("publisher")
    for i in range(5):
        p.publish_acked("plain/t", b"m%d" % i, qos=1)
    # The next updates carry at least the 5 PUBLISHes (and their CONNECT, more packets).
    wait_values(c, {
        "$SYS/broker/publish/messages/received": lambda v: int(v) >= pub_before + 5,
        "$SYS/broker/messages/received": lambda v: int(v) >= pkt_before + 6,
        "$SYS/broker/uptime": lambda v: re.match(r"^\d+ seconds$", v) and int(v.split()[0]) >= 1,
    })


def test_a_client_publish_to_sys_is_dropped(start_broker, version):
    b = start_broker(FAST)
    live = b.raw(5)
    live.connect("live")
    live.subscribe("$SYS/broker/uptime")
    assert re.match(r"^\d+ seconds$", live.expect_publish().payload.decode())
    c = b.raw(version)
    c.connect("forger")
    pid = c.publish("$SYS/broker/uptime", b"forged", qos=1, retain=True)
    ack = c.expect(PUBACK)
    assert ack.pid == pid
    # MQTT 5 hears 0x87; 3.1.1 gets its PUBACK (as from mosquitto) and stays connected.
    assert ack.rc == (0x87 if version == 5 else 0), ack
    c.publish("$SYS/broker/uptime", b"forged0", qos=0, retain=True)
    c.publish("$SYS", b"forged-root", qos=0)
    c.ping()
    # Never delivered, never retained: later values are the broker's.
    for _ in range(3):
        v = live.expect_publish().payload.decode()
        assert re.match(r"^\d+ seconds$", v), v
    late = b.raw(5)
    late.connect("late")
    late.subscribe("$SYS/broker/uptime")
    assert re.match(r"^\d+ seconds$", late.expect_publish().payload.decode())
    assert any("$SYS" in e.get("msg", "") + e.get("detail", "")
               for e in b.events("security")), "no security event for the forged PUBLISH"


def test_a_will_under_sys_is_refused_at_connect(start_broker, version):
    b = start_broker(FAST)
    c = b.raw(version)
    ack = c.connect("w", will=Will("$SYS/broker/version", b"forged", retain=True), check=False)
    assert ack.rc == (0x87 if version == 5 else 5), ack


def test_wildcards_at_the_first_level_do_not_match_sys(start_broker, version):
    b = start_broker(FAST)
    c = b.raw(version)
    c.connect("all")
    c.subscribe([("#", 0), ("+/broker/uptime", 0)])
    time.sleep(2.5)  # at least two updates published meanwhile
    p = b.raw(5)
    p.connect("p")
    p.publish_acked("plain/sentinel", b"s", qos=1)
    got = c.expect_publish()
    assert got.topic == "plain/sentinel", got  # nothing under $SYS came first
    c.expect_nothing(timeout=1.5)  # and nothing after (another update is published meanwhile)


def _acl_broker(start_broker, tmp_path, rules):
    acl = tmp_path / "acl"
    acl.write_text(rules)
    return start_broker(FAST, extra_args=["--acl-file", str(acl)])


def test_an_acl_file_needs_a_read_rule_for_sys(start_broker, tmp_path):
    # '#' in an ACL rule does not cover $SYS either (as mosquitto): it needs its own rule.
    b = _acl_broker(start_broker, tmp_path, "topic readwrite #\n")
    c = b.raw(5)
    c.connect("reader")
    assert c.subscribe([("$SYS/#", 0), ("plain/#", 0)]).rcs == [0, 0]  # granted, as mosquitto
    time.sleep(2.5)
    c.publish("plain/sentinel", b"s", qos=0)
    got = c.expect_publish()
    assert got.topic == "plain/sentinel", got
    c.expect_nothing(timeout=1.5)


def test_an_acl_read_rule_for_sys_lets_it_through(start_broker, tmp_path):
    b = _acl_broker(start_broker, tmp_path, "topic read $SYS/#\n")
    c = b.raw(5)
    c.connect("reader")
    c.subscribe("$SYS/broker/uptime")
    assert re.match(r"^\d+ seconds$", c.expect_publish().payload.decode())
    assert re.match(r"^\d+ seconds$", c.expect_publish().payload.decode())  # and the updates


def test_sys_interval_zero_publishes_nothing(start_broker):
    b = start_broker("[server]\nsys_interval = 0\n")
    c = b.raw(5)
    c.connect("reader")
    c.subscribe([("$SYS/#", 0), ("plain/#", 0)])
    time.sleep(1.5)
    c.publish("plain/sentinel", b"s", qos=0)
    assert c.expect_publish().topic == "plain/sentinel"
    c.expect_nothing(timeout=1.0)


def test_sys_messages_take_no_retained_room_and_are_not_stored(start_broker):
    b = start_broker(FAST + "[limits]\nmax_retained_messages = 1\n")
    c = b.raw(5)
    c.connect("retainer")
    # 44 $SYS messages are retained, yet the client's one retained message fits ...
    c.publish_acked("plain/r1", b"x", qos=1, retain=True)  # asserts a success code
    # ... and the limit still holds for the clients' messages.
    pid = c.publish("plain/r2", b"y", qos=1, retain=True)
    ack = c.expect(PUBACK)
    assert ack.pid == pid and ack.rc == 0x97, ack
    w = b.raw(5)
    w.connect("w")
    w.subscribe("$SYS/broker/retained messages/count")
    wait_value(w, "$SYS/broker/retained messages/count", lambda v: v == "1")
    c.close()
    w.close()
    b.terminate()
    b.restart()
    # Only the client's message was stored.
    assert b.events("recovered")[-1]["retained"] == 1, b.events("recovered")
