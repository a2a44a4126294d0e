"""A full queue affects only its own session ([limits] queue_overflow and the [queue_overflow]
rules; docs/PROTOCOL.md "Queue overflow"). One abandoned persistent subscriber with a full queue
must not stop the publishers of its topics for everyone else: by default (drop_oldest) it loses
its oldest queued messages, is told how many (MQTT 5 user property ledgermq-dropped) and the
drops show in /metrics; refuse keeps the old backpressure (0x97 / 3.1.1 held back); end_session
ends the full session. All ledgermq_only: the keys, reason codes and metrics are ledgermq's."""

import subprocess
import os
import time

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

QUEUE_MAX = 20
HTTP = ["--http", "127.0.0.1:0"]
PROMPT_S = 3.0  # an acknowledgement that is not held back comes well within this


# A connected session counts as consuming (a full queue then holds its publishers back) until
# it has completed no delivery for slow_consumer_grace_ms; the tests of stuck subscribers wait
# this long (GRACE_S) after their last progress.
GRACE_MS = 300
GRACE_S = GRACE_MS / 1000 + 0.2


def config(policy=None, rules=""):
    text = "[limits]\nmax_queued_messages = %d\nslow_consumer_grace_ms = %d\n" % (
        QUEUE_MAX, GRACE_MS)
    if policy is not None:
        text += "queue_overflow = %s\n" % policy
    if rules:
        text += "[queue_overflow]\n" + rules
    return text


def metric(b, name, label=None):
    return int(b.metric("ledgermq_" + name, '{reason="%s"}' % label if label else ""))


def dead_subscriber(b, client_id="deadsub", topic="bench/#", version=5, **kw):
    """mosquitto_sub -c -i deadsub -t 'bench/#' -q 1, then gone."""
    c = b.connect_persistent(client_id, version, **kw)
    c.subscribe([(topic, 1)])
    c.disconnect()


def fill(b, topic="bench/fill", count=QUEUE_MAX, prefix=b"f"):
    pub = b.connect("filler", 5)
    for i in range(count):
        assert pub.publish_acked(topic, b"%s%02d" % (prefix, i)).rc == 0
    pub.disconnect()


def dropped_prop(p):
    return [v for k, v in p.props.all("user_property") if k == "ledgermq-dropped"]


def overflow_events(b, client_id):
    return [e for e in b.events("queue_overflow") if e.get("client_id") == client_id]


# ---------------------------------------------------------------- default: drop_oldest
def test_default_drop_oldest_one_dead_subscriber_stops_no_publisher(start_broker):
    """The scenario of the issue: a dead persistent subscriber whose queue is full, a live
    subscriber, a 3.1.1 and an MQTT 5 publisher on the same topic. Nobody is held back, the
    live subscriber gets everything, the dead one gets the newest QUEUE_MAX and the count."""
    b = start_broker(config(), extra_args=HTTP)
    dead_subscriber(b)
    live = b.paho("live", 5)
    live.subscribe("bench/#", qos=1)
    v5 = b.connect("pub5", 5)
    v311 = b.connect("pub311", 4)
    total = 3 * QUEUE_MAX
    sent = []
    for i in range(total):
        payload = b"m%03d" % i
        pub = v5 if i % 2 == 0 else v311
        pid = pub.publish("bench/t", payload, qos=1)
        ack = pub.expect(m.PUBACK, timeout=PROMPT_S)  # never held back
        assert ack.pid == pid and ack.rc == 0, (i, ack)
        sent.append(payload)
    got = [live.get(timeout=10).payload for _ in range(total)]
    assert got == sent, "the live subscriber missed messages"

    sub = b.connect_persistent("deadsub", 5)
    assert sub.connack.session_present
    back = sub.publishes(QUEUE_MAX)
    assert [p.payload for p in back] == sent[-QUEUE_MAX:], "not the newest, in order"
    assert dropped_prop(back[0]) == [str(total - QUEUE_MAX)], back[0].props
    assert all(dropped_prop(p) == [] for p in back[1:]), "told more than once"
    v5.publish_acked("bench/t", b"sentinel")
    last = sub.expect_publish()
    assert last.payload == b"sentinel" and dropped_prop(last) == []

    assert metric(b, "dropped_total", "queue_overflow") == total - QUEUE_MAX
    assert metric(b, "refused_total", "quota") == 0
    events = overflow_events(b, "deadsub")
    assert len(events) == 1, "logged %d times, not once" % len(events)
    assert events[0]["policy"] == "drop_oldest" and events[0]["rule"] == "[limits] queue_overflow"
    live.disconnect()


def test_drop_oldest_slow_online_then_offline_keeps_inflight_and_newest(start_broker):
    """A connected subscriber that stops acknowledging (window of 5 full) loses queued messages
    from memory; once it is gone, from its stored backlog. What is in flight is never dropped:
    on reconnect it gets the 5 again (DUP) and then exactly the newest."""
    b = start_broker(config(), extra_args=HTTP)
    slow = b.connect_persistent("slow", 5, props=[("receive_maximum", 5)])
    slow.subscribe([("bench/#", 1)])
    pub = b.connect("pub", 5)
    time.sleep(GRACE_S)  # connected, but it has taken nothing: stuck, not consuming
    sent = [b"s%03d" % i for i in range(30)]
    for p in sent:
        assert pub.publish_acked("bench/s", p).rc == 0
    inflight = [slow.expect_publish(ack=False).payload for _ in range(5)]
    assert inflight == sent[:5]
    slow.close()  # gone without DISCONNECT; its queue goes back to the store
    time.sleep(0.3)
    more = [b"t%03d" % i for i in range(30)]
    rcs = pub.publish_pipelined("bench/s", more, window=30)  # drops rows still being committed
    assert rcs == [0] * len(more)
    again = b.connect_persistent("slow", 5)
    assert again.connack.session_present
    resent = again.publishes(5)
    assert [p.payload for p in resent] == inflight and all(p.dup for p in resent)
    rest = again.publishes(QUEUE_MAX - 5)
    assert [p.payload for p in rest] == more[-(QUEUE_MAX - 5):]
    assert dropped_prop(rest[0]) == [str(len(sent) + len(more) - QUEUE_MAX)]
    pub.publish_acked("bench/s", b"sentinel")
    assert again.expect_publish().payload == b"sentinel"
    assert metric(b, "dropped_total", "queue_overflow") == len(sent) + len(more) - QUEUE_MAX


def test_a_connected_consuming_subscriber_holds_publishers_back_and_loses_nothing(start_broker):
    """Default policy, a live subscriber slower than its publishers (it acknowledges, late):
    its full queue holds the publishers to its pace (v5 0x97, 3.1.1 not read) instead of
    dropping what they were told was accepted; nothing is dropped, everything arrives."""
    b = start_broker("[limits]\nmax_queued_messages = %d\n" % QUEUE_MAX, extra_args=HTTP)
    reader = b.connect_persistent("reader", 5, props=[("receive_maximum", 5)])
    reader.subscribe([("bench/#", 1)])
    pub5 = b.connect("pub5", 5)
    sent = [b"r%02d" % i for i in range(QUEUE_MAX)]
    for p in sent:  # 5 in flight + 15 queued: full
        assert pub5.publish_acked("bench/r", p).rc == 0
    first = reader.expect_publish()  # it consumes: one delivery completed
    assert first.payload == sent[0]
    assert pub5.publish_acked("bench/r", b"one more").rc == 0  # the room it made
    pid = pub5.publish("bench/r", b"refused", qos=1)
    ack = pub5.expect(m.PUBACK)
    assert (ack.pid, ack.rc) == (pid, 0x97), ack  # held to its pace, not dropped from it
    pub311 = b.connect("pub311", 4)
    pub311.publish("bench/r", b"held", qos=1, pid=7)
    with pytest.raises(m.Timeout):
        pub311.expect(m.PUBACK, timeout=0.5)
    got = [first.payload] + [p.payload for p in reader.publishes(QUEUE_MAX + 1, timeout=10)]
    assert got == sent + [b"one more", b"held"]
    assert pub311.expect(m.PUBACK, timeout=5).pid == 7
    assert metric(b, "dropped_total", "queue_overflow") == 0


def test_drop_oldest_backlog_drops_survive_kill9(start_broker):
    """Drops of stored rows are deleted in the batch of the message that made them: after
    kill -9 and a restart the dropped messages do not come back, and a live persistent
    subscriber that acknowledged everything is owed nothing and loses nothing."""
    b = start_broker(config(), extra_args=HTTP)
    dead_subscriber(b)
    live = b.connect_persistent("livesub", 5)
    live.subscribe([("bench/#", 1)])
    pub = b.connect("pub", 5)
    sent = [b"k%03d" % i for i in range(200)]
    got = []
    for start in range(0, len(sent), 10):  # the live one keeps up, rows are dropped in bursts
        chunk = sent[start:start + 10]
        assert pub.publish_pipelined("bench/k", chunk, window=10) == [0] * len(chunk)
        got += [p.payload for p in live.publishes(len(chunk))]
    assert got == sent
    live.ping()  # its PUBACKs are read; a retained publish is stored, so its PUBACK follows
    pub.publish_acked("flush/k", b"x", retain=True)  # a commit of everything before it
    b.kill9()
    b.restart()
    live = b.connect_persistent("livesub", 5)
    dead = b.connect_persistent("deadsub", 5)
    assert live.connack.session_present and dead.connack.session_present
    assert [p.payload for p in dead.publishes(QUEUE_MAX)] == sent[-QUEUE_MAX:]
    pub = b.connect("pub", 5)
    pub.publish_acked("bench/k", b"sentinel")
    assert dead.expect_publish().payload == b"sentinel", "a dropped message came back"
    assert live.expect_publish().payload == b"sentinel", "an acknowledged message came back"


# ---------------------------------------------------------------- refuse
def test_refuse_keeps_backpressure_0x97_and_311_held_back(start_broker):
    b = start_broker(config("refuse"), extra_args=HTTP)
    dead_subscriber(b)
    fill(b)
    v5 = b.connect("pub5", 5)
    pid = v5.publish("bench/t", b"over", qos=1)
    ack = v5.expect(m.PUBACK)
    assert (ack.pid, ack.rc) == (pid, 0x97)
    v311 = b.connect("pub311", 4)
    v311.publish("bench/t", b"held", qos=1, pid=7)
    with pytest.raises(m.Timeout):
        v311.expect(m.PUBACK, timeout=1.0)  # held back, not refused, not lost
    sub = b.connect_persistent("deadsub", 5)
    got = [p.payload for p in sub.publishes(QUEUE_MAX + 1, timeout=10)]
    assert got == [b"f%02d" % i for i in range(QUEUE_MAX)] + [b"held"]
    assert v311.expect(m.PUBACK, timeout=5).pid == 7
    assert metric(b, "dropped_total", "queue_overflow") == 0
    assert metric(b, "refused_total", "quota") >= 2
    assert [e["policy"] for e in overflow_events(b, "deadsub")] == ["refuse"]


# ---------------------------------------------------------------- end_session
def test_end_session_ends_the_full_session_only(start_broker):
    b = start_broker(config("end_session"), extra_args=HTTP)
    dead_subscriber(b)
    fill(b)
    live = b.connect("live", 5)
    live.subscribe([("bench/#", 1)])
    pub = b.connect("pub5", 5)
    assert pub.publish_acked("bench/t", b"over").rc == 0  # accepted: the full session ends
    assert live.expect_publish().payload == b"over"
    b.wait_event("session_ended_overflow", pred=lambda e: e.get("client_id") == "deadsub")
    assert metric(b, "sessions_ended_total", "queue_overflow") == 1
    again = b.raw(5)
    ack = again.connect("deadsub", clean=False,
                        props=m.Props([("session_expiry_interval", 300)]))
    assert not ack.session_present, "the ended session came back"
    pub.publish_acked("bench/t", b"after")
    again.expect_nothing(timeout=0.5)  # its subscription ended with it
    assert live.expect_publish().payload == b"after"


def test_end_session_disconnects_a_connected_v5_session_with_0x97(start_broker):
    b = start_broker(config("end_session"), extra_args=HTTP)
    stuck = b.connect_persistent("stuck", 5, props=[("receive_maximum", 5)])
    stuck.subscribe([("bench/#", 1)])
    pub = b.connect("pub", 5)
    time.sleep(GRACE_S)  # connected, but it has taken nothing: stuck, not consuming
    for i in range(QUEUE_MAX + 1):
        assert pub.publish_acked("bench/t", b"x%02d" % i).rc in (0, 0x10)
    stuck.expect_disconnect(rc=0x97)
    assert metric(b, "sessions_ended_total", "queue_overflow") == 1
    again = b.connect_persistent("stuck", 5)
    assert not again.connack.session_present


# ---------------------------------------------------------------- rules
def passwd_file(tmp_path, users):
    path = tmp_path / "passwd"
    for user in users:
        r = subprocess.run([os.environ["LEDGERMQ_BIN"], "passwd", "--file", str(path), user],
                           input=b"pw-" + user.encode() + b"\n", capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
    return path


def test_rules_first_match_by_topic_then_principal_then_default(start_broker, tmp_path):
    """[queue_overflow] rules are tried in order: a topic rule (by the message's topic) and a
    principal rule (the full session's owner) override [limits] queue_overflow."""
    pw = passwd_file(tmp_path, ["alice"])
    rules = ("refuse = topic strict/#\n"
             "end_session = principal user:alice\n")
    b = start_broker(config("drop_oldest", rules),
                     extra_args=HTTP + ["--password-file", str(pw)])
    # anonymous, default policy: drop_oldest; alice: end_session; strict/#: refuse for both.
    anon = b.connect_persistent("anon", 5)
    anon.subscribe([("bench/#", 1), ("strict/#", 1)])
    anon.disconnect()
    alice = b.raw(5)
    alice.connect("alice1", clean=False, username="alice", password=b"pw-alice",
                  props=m.Props([("session_expiry_interval", 300)]))
    alice.subscribe([("bench/#", 1), ("strict/#", 1)])
    alice.disconnect()
    fill(b)  # both full (bench/fill)
    pub = b.connect("pub", 5)
    pid = pub.publish("strict/x", b"strict", qos=1)
    assert pub.expect(m.PUBACK).rc == 0x97  # topic rule first: refused, for everyone
    assert metric(b, "sessions_ended_total", "queue_overflow") == 0
    assert pub.publish_acked("bench/x", b"loose").rc == 0
    b.wait_event("session_ended_overflow", pred=lambda e: e.get("client_id") == "alice1")
    assert metric(b, "dropped_total", "queue_overflow") == 1  # anon lost its oldest
    # Each full session logs its first overflow only: the refusal (whichever session was
    # looked at first refuses for all), and for the other its own policy.
    seen = [(e["client_id"], e["policy"], e["rule"]) for e in b.events("queue_overflow")]
    assert len(seen) == 2 and {c for c, _, _ in seen} == {"anon", "alice1"}, seen
    first = seen[0]
    assert first[1:] == ("refuse", "strict/#"), seen
    assert seen[1][1:] == {"anon": ("end_session", "user:alice"),
                           "alice1": ("drop_oldest", "[limits] queue_overflow")}[first[0]], seen
    again = b.connect_persistent("anon", 5)
    got = [p.payload for p in again.publishes(QUEUE_MAX)]
    assert got == [b"f%02d" % i for i in range(1, QUEUE_MAX)] + [b"loose"]
    alice = b.raw(5)
    ack = alice.connect("alice1", clean=False, username="alice", password=b"pw-alice",
                        props=m.Props([("session_expiry_interval", 300)]))
    assert not ack.session_present


@pytest.mark.parametrize("text,needle", [
    ("[limits]\nqueue_overflow = drop_newest\n", "queue_overflow: expected drop_oldest"),
    ("[queue_overflow]\ndiscard = topic a/#\n", "[queue_overflow] discard: unknown key"),
    ("[queue_overflow]\nrefuse = topic a/#/b\n", "expected \"principal"),
    ("[queue_overflow]\nrefuse = topic id/#\n", "not under id/"),
    ("[queue_overflow]\nrefuse = principal bob\n", "expected \"principal"),
    ("[queue_overflow]\nrefuse = a/#\n", "expected \"principal"),
])
def test_bad_overflow_config_is_a_one_line_error(start_broker, text, needle):
    b = start_broker(text, expect_exit=1, wait_ready=False)
    b.wait_exit(1)
    lines = [l for l in b.stderr_lines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0] and ":2: " in lines[0], lines


# ---------------------------------------------------------------- identity inboxes
def test_identity_inbox_never_refused_nor_lost_resync_brings_the_rest(start_broker):
    """Under id/ the ledger keeps the envelope: a full session never refuses an envelope sender
    (even under refuse) and nothing is dropped or ended; what did not fit is simply not queued
    for that session, and resync brings it back."""
    import json
    import ledgerclient as lc
    b = start_broker(config("refuse"), extra_args=HTTP)
    http = b.events("ready")[-1]["http"][0]
    alice, bob = lc.Identity(), lc.Identity()
    bob_token = lc.login(http, bob)

    def bob_connect():
        c = b.raw(5)
        ack = c.connect("bob1", clean=False, username=bob.id, password=bob_token.encode(),
                        props=m.Props([("session_expiry_interval", 300)]))
        return c, ack

    bs, _ = bob_connect()
    bs.subscribe([("id/%s/inbox" % bob.id, 1), ("id/%s/sync" % bob.id, 1)])
    bs.disconnect()
    a = lc.Session(b.port, alice, lc.login(http, alice))
    total = QUEUE_MAX + 5
    for i in range(total):
        env = alice.envelope(bob.id, {"n": i})
        a.send(env)
        assert "index" in a.expect("ack"), "envelope %d not accepted" % i
        alice.advance(env)
    bs, ack = bob_connect()
    assert ack.session_present
    got = [json.loads(p.payload)["position"] for p in bs.publishes(QUEUE_MAX)]
    assert got == list(range(1, QUEUE_MAX + 1))
    bs.publish_acked("id/%s/resync" % bob.id, b'{"after":%d}' % QUEUE_MAX)
    rest = [json.loads(p.payload) for p in bs.publishes(total - QUEUE_MAX + 1)]
    assert [r["position"] for r in rest[:-1]] == list(range(QUEUE_MAX + 1, total + 1))
    assert rest[-1]["count"] == total - QUEUE_MAX
    assert metric(b, "dropped_total", "queue_full_id_resync") == total - QUEUE_MAX
    assert metric(b, "dropped_total", "queue_overflow") == 0
    assert metric(b, "sessions_ended_total", "queue_overflow") == 0
    a.close()
