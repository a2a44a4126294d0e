"""Bots over MQTT (docs/PROTOCOL.md "Bots"): a [bots] identity follows the event stream on
id/<bot>/events, paged after a resync and then live; its {"ack":N} is its durable position; it
resumes after its last ack across a disconnect and kill -9 (with a control run showing that the
same count catches an event deleted from the store); nobody else reads its events; malformed
requests get an error on events/sync."""

import json
import os
import queue
import sqlite3
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

TIMEOUT_S = 15
PAGE = 100


def start(start_broker, bots, extra=""):
    ini = "[bots]\nids = %s\n%s" % (", ".join(i.id for i in bots), extra)
    b = start_broker(ini, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    return b


class Bot:
    """An MQTT 5 connection of an identity subscribed to id/<id>/events and events/sync."""

    def __init__(self, b, ident, client_id=None, subscribe=True, clean=True, receive_max=None):
        self.ident = ident
        self.base = "id/%s/" % ident.id
        self.messages = queue.Queue()
        self.acks = queue.Queue()
        got = queue.Queue()
        c = mqtt.Client(client_id=client_id or ("bot-" + ident.id[:16]), protocol=mqtt.MQTTv5)
        c.username_pw_set(ident.id, lc.login(b.http_addr, ident))
        c.on_connect = lambda _c, _u, f, rc, p=None: got.put(rc.value)
        c.on_message = lambda _c, _u, m: self.messages.put((m.topic, json.loads(m.payload)))
        c.on_subscribe = lambda _c, _u, mid, codes, p=None: got.put(
            [getattr(x, "value", x) for x in codes])
        props = None
        if not clean or receive_max:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            if not clean:
                props.SessionExpiryInterval = 300
            if receive_max:
                props.ReceiveMaximum = receive_max
        c.connect("127.0.0.1", b.mqtt_port, clean_start=clean, properties=props)
        c.loop_start()
        self.client = c
        assert got.get(timeout=TIMEOUT_S) == 0
        if subscribe:
            c.subscribe([(self.base + "events", 1), (self.base + "events/sync", 1)])
            self.granted = got.get(timeout=TIMEOUT_S)
        self.got = got

    def request(self, leaf, body):
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self.client.publish(self.base + leaf, payload, qos=1)
        info.wait_for_publish(TIMEOUT_S)
        assert info.is_published()

    def next(self, timeout=TIMEOUT_S):
        topic, body = self.messages.get(timeout=timeout)
        assert topic.startswith(self.base), topic
        return topic[len(self.base):], body

    def catch_up(self, after=None, ack=False):
        """Resyncs (after N, or the stored position) until a marker says it is caught up: the
        events in order and the markers."""
        events, markers = [], []
        self.request("events/resync", {} if after is None else {"after": after})
        for _ in range(10000):
            leaf, body = self.next()
            if leaf == "events":
                events.append(body)
                continue
            assert leaf == "events/sync", (leaf, body)
            markers.append(body)
            if ack and body["count"] > 0:
                self.request("events/ack", {"ack": body["last"]})
            if not body["more"]:
                return events, markers
            self.request("events/resync", {"after": body["last"]})
        raise AssertionError("never caught up")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def session(b, ident):
    s = lc.Session(b.mqtt_port, ident, lc.login(b.http_addr, ident))
    assert s.rc == 0, s.rc
    return s


def send(s, to, body):
    env = s.ident.envelope(to, body)
    s.send(env)
    s.expect("ack")  # acked: durable, and so is its envelope.accepted event
    s.ident.advance(env)
    return env


def durable_last_id(b):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.data_dir, "ledgermq.db"), uri=True)
    try:
        return db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    finally:
        db.close()


def stored_position(b, bot):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.data_dir, "ledgermq.db"), uri=True)
    try:
        row = db.execute("SELECT position FROM event_consumers WHERE consumer = ?",
                         ("bot:" + bot.id,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


def accepted_links(events):
    return [e["data"]["link"] for e in events if e["type"] == "envelope.accepted"]


def test_a_bot_gets_every_event_paged_in_order_then_live(start_broker):
    bot, alice, bob = lc.Identity(), lc.Identity(), lc.Identity()
    b = start(start_broker, [bot])
    sa = session(b, alice)
    envs = [send(sa, bob.id, {"n": i}) for i in range(230)]
    last = durable_last_id(b)
    assert last >= 231  # a session.started and 230 envelope.accepted
    bc = Bot(b, bot)
    assert bc.granted == [1, 1]
    events, markers = bc.catch_up(after=0)
    # Every event, once, in order, gap-free from 1; pages of at most PAGE.
    ids = [e["id"] for e in events]
    assert ids[:last] == list(range(1, last + 1)), ids[:5]
    assert accepted_links(events)[:230] == [lc.link(e) for e in envs]
    assert len(markers) >= 3 and all(m["count"] <= PAGE for m in markers)
    assert [m["more"] for m in markers][-1] is False and markers[0]["after"] == 0
    for prev, m in zip(markers, markers[1:]):
        assert m["after"] == prev["last"]
    assert markers[-1]["last"] == ids[-1]
    assert markers[-1]["position"] == 0  # nothing acknowledged yet
    # Live: new events follow without a request, in order, as they become durable.
    more = [send(sa, bob.id, {"live": i}) for i in range(5)]
    live = []
    while len(accepted_links(live)) < 5:
        leaf, body = bc.next()
        assert leaf == "events", (leaf, body)
        live.append(body)
    assert [e["id"] for e in live] == list(range(ids[-1] + 1, ids[-1] + 1 + len(live)))
    assert accepted_links(live) == [lc.link(e) for e in more]
    sa.close()
    bc.close()


def test_live_delivery_waits_for_acks_beyond_a_page(start_broker):
    bot, alice, bob = lc.Identity(), lc.Identity(), lc.Identity()
    b = start(start_broker, [bot])
    bc = Bot(b, bot)
    events, markers = bc.catch_up()
    caught = markers[-1]["last"]
    sa = session(b, alice)
    for i in range(PAGE + 20):
        send(sa, bob.id, {"n": i})
    live = []
    with pytest.raises(queue.Empty):
        while True:
            live.append(bc.next(timeout=1.5)[1])
    assert len(live) == PAGE  # the window: a page past the marker, no ack yet
    assert [e["id"] for e in live] == list(range(caught + 1, caught + 1 + PAGE))
    bc.request("events/ack", {"ack": live[-1]["id"]})
    rest = []
    while not rest or rest[-1]["id"] < durable_last_id(b):
        leaf, body = bc.next()
        assert leaf == "events"
        rest.append(body)
    assert [e["id"] for e in rest] == list(range(live[-1]["id"] + 1, rest[-1]["id"] + 1))
    assert stored_position(b, bot) == live[-1]["id"]
    assert b.metric("ledgermq_bot_lag_events", '{bot="%s"}' % bot.id) == \
        durable_last_id(b) - live[-1]["id"]
    sa.close()
    bc.close()


def test_a_bot_resumes_after_its_last_ack_across_kill9_and_the_harness_sees_a_loss(
        start_broker):
    """The bot handles and acks part of the stream, goes away, more envelopes are accepted,
    the broker is killed -9; after the restart a resync from the stored position gets every
    event after the ack, none twice, none skipped. Control: an event row deleted while the
    broker is down is reported missing by the same count."""
    def run(tamper):
        bot, alice, bob = lc.Identity(), lc.Identity(), lc.Identity()
        b = start(start_broker, [bot])
        sa = session(b, alice)
        first = [send(sa, bob.id, {"n": i}) for i in range(40)]
        bc = Bot(b, bot)
        events, _ = bc.catch_up(after=0)
        acked = accepted_links(events).index(lc.link(first[19]))  # handled up to the 20th
        position = next(e["id"] for e in events if e["type"] == "envelope.accepted"
                        and e["data"]["link"] == lc.link(first[19]))
        bc.request("events/ack", {"ack": position})  # its PUBACK: the position is durable
        bc.close()
        later = [send(sa, bob.id, {"m": i}) for i in range(60)]
        sa.close()
        last = durable_last_id(b)
        b.kill9()
        if tamper:
            db = sqlite3.connect(os.path.join(b.data_dir, "ledgermq.db"))
            db.execute("DELETE FROM events WHERE id = ?", (position + 7,))
            db.commit()
            db.close()
        b.restart()
        b.http_addr = b.events("ready")[-1]["http"][0]
        b.mqtt_port = int(b.events("ready")[-1]["mqtt"][0].rsplit(":", 1)[1])
        assert stored_position(b, bot) == position
        bc = Bot(b, bot)
        got, markers = bc.catch_up(ack=True)  # after the stored position
        bc.close()
        assert markers[0]["after"] == position and markers[0]["position"] == position
        want = [lc.link(e) for e in first[acked + 1:] + later]
        ids = [e["id"] for e in got]
        assert len(set(ids)) == len(ids)  # none twice
        ids_missing = len(set(range(position + 1, last + 1)) - set(ids))
        links_missing = len(set(want) - set(accepted_links(got)))
        assert stored_position(b, bot) == ids[-1]
        return ids_missing, links_missing

    assert run(tamper=False) == (0, 0)
    missing = run(tamper=True)
    assert missing[0] == 1  # the harness detects the lost event


def test_a_full_session_queue_ends_live_delivery_with_a_marker_and_nothing_is_skipped(
        start_broker):
    """A slow bot (Receive Maximum 1, 300 ms a message: slower than the sender even on a loaded
    machine, where each send waits for its durable ack) under [limits] max_queued_messages = 5:
    live delivery stops at the full queue with an unrequested marker saying more; the bot asks
    again after its last and, in the end, has every event once, in order."""
    bot, alice, bob = lc.Identity(), lc.Identity(), lc.Identity()
    b = start(start_broker, [bot], extra="[limits]\nmax_queued_messages = 5\n")
    bc = Bot(b, bot, receive_max=1)
    events, markers = bc.catch_up()
    caught = markers[-1]["last"]

    def slow(_c, _u, m):
        time.sleep(0.3)
        bc.messages.put((m.topic, json.loads(m.payload)))
    bc.client.on_message = slow
    sa = session(b, alice)
    sent = [send(sa, bob.id, {"n": i}) for i in range(20)]
    sa.close()
    got, unrequested = [], []
    for _ in range(1000):
        leaf, body = bc.next()
        if leaf == "events":
            got.append(body)
            continue
        unrequested.append(body)
        break
    assert unrequested and unrequested[0]["more"] is True, unrequested
    assert unrequested[0]["last"] == (got[-1]["id"] if got else caught)
    rest, _ = bc.catch_up(after=unrequested[0]["last"])
    got += rest
    ids = [e["id"] for e in got]
    assert ids == list(range(caught + 1, caught + 1 + len(ids))), ids  # in order, none skipped
    assert [lc.link(e) for e in sent] == accepted_links(got)
    bc.close()


def test_a_persistent_bot_session_dedupes_redelivered_events_by_id(start_broker):
    """A bot on a persistent session receives live events but handles none (paho PUBACKs
    them anyway: why the position is the bot's {"ack":N}, not the PUBACK) and goes away; after
    reconnecting to the same session, its resync from the stored position sends them again.
    Deduplicated by id, the bot has every event once, none skipped."""
    bot, alice, bob = lc.Identity(), lc.Identity(), lc.Identity()
    b = start(start_broker, [bot])
    bc = Bot(b, bot, client_id="bot-persistent", clean=False)
    events, markers = bc.catch_up()
    bc.request("events/ack", {"ack": markers[-1]["last"]})
    position = markers[-1]["last"]
    bc.client.on_message = lambda *a: None  # handles nothing more: the live ones stay unacked
    sa = session(b, alice)
    sent = [send(sa, bob.id, {"n": i}) for i in range(10)]
    time.sleep(0.5)
    bc.client.disconnect()
    bc.client.loop_stop()
    sa.close()
    last = durable_last_id(b)
    bc = Bot(b, bot, client_id="bot-persistent", clean=False, subscribe=False)
    got, _ = bc.catch_up()
    bc.close()
    ids = [e["id"] for e in got]
    assert markers[-1]["position"] == 0 and stored_position(b, bot) == position
    assert sorted(set(ids)) == list(range(position + 1, max(ids) + 1)) and max(ids) >= last
    assert [lc.link(e) for e in sent] == [l for l in dict.fromkeys(accepted_links(got))]


def test_only_the_bot_reads_and_asks_for_its_events(start_broker):
    bot, mallory, alice, bob = lc.Identity(), lc.Identity(), lc.Identity(), lc.Identity()
    b = start(start_broker, [bot])
    # Another identity: refused on the bot's topics (SUBACK 0x87), and gets nothing through
    # wildcards over identities.
    mc = Bot(b, mallory, subscribe=False)
    mc.client.subscribe([("id/%s/events" % bot.id, 1), ("id/%s/#" % bot.id, 1)])
    assert mc.got.get(timeout=TIMEOUT_S) == [0x87, 0x87]
    mc.client.subscribe([("id/+/events", 1), ("#", 1)])
    assert mc.got.get(timeout=TIMEOUT_S) == [1, 1]
    # Not a bot: its own events/resync is not authorized, nor the bot's (security events).
    info = mc.client.publish("id/%s/events/resync" % mallory.id, b"{}", qos=1)
    info.wait_for_publish(TIMEOUT_S)
    info = mc.client.publish("id/%s/events/resync" % bot.id, b"{}", qos=1)
    info.wait_for_publish(TIMEOUT_S)
    bc = Bot(b, bot)
    events, _ = bc.catch_up(after=0)
    sa = session(b, alice)
    send(sa, bob.id, {"x": 1})
    types = []
    while "envelope.accepted" not in types:
        leaf, ev = bc.next()
        assert leaf == "events"
        types.append(ev["type"])
    time.sleep(0.5)
    seen = []
    while not mc.messages.empty():
        seen.append(mc.messages.get()[0])
    assert not [t for t in seen if "/events" in t], seen
    denied = [e for e in b.events("security") if e.get("kind") == "acl_denied"
              and e.get("identity") == mallory.id]
    assert len(denied) == 4, denied  # two filters, two publishes
    sa.close()
    bc.close()
    mc.close()


@pytest.mark.parametrize("leaf,body,error", [
    ("events/resync", b"not json", "expected {\"after\":N} or {}"),
    ("events/resync", {"after": -1}, "expected {\"after\":N} or {}"),
    ("events/resync", {"after": "3"}, "expected {\"after\":N} or {}"),
    ("events/resync", {"after": 1, "x": 2}, "expected {\"after\":N} or {}"),
    ("events/resync", {"after": 10 ** 9}, "after: past the last event"),
    ("events/ack", {}, "expected {\"ack\":N}"),
    ("events/ack", {"ack": 10 ** 9}, "ack: past the last event"),
    ("events/ack", b"x" * 300, "request too large"),
], ids=["not_json", "negative", "string", "extra_member", "past_last", "ack_missing",
        "ack_past_last", "too_large"])
def test_a_bad_request_gets_an_error_on_events_sync(start_broker, leaf, body, error):
    bot = lc.Identity()
    b = start(start_broker, [bot])
    bc = Bot(b, bot)
    bc.request(leaf, body)
    got_leaf, reply = bc.next()
    assert (got_leaf, reply) == ("events/sync", {"error": error})
    events, markers = bc.catch_up()  # still served
    assert markers[-1]["more"] is False and [e["id"] for e in events] == [1]  # session.started
    assert b.alive()
    bc.close()


@pytest.mark.parametrize("ini,message", [
    ("[bots]\nids = nothex\n", "[bots] ids: expected identity ids"),
    ("[bots]\n" + "".join("ids = %064x, %064x\n" % (2 * i, 2 * i + 1) for i in range(16)) +
     "ids = %064x\n" % 99, "[bots] ids: more than 32 identities"),
    ("[bots]\nevents = *\n",
     "[bots] events: unknown key (expected ids, validators, verdict_timeout_ms, "
     "verdicts_per_address or "
     "default_verdict)"),
], ids=["not_hex", "33_over_17_lines", "unknown_key"])
def test_bad_bots_configuration_stops_the_start_with_one_line(tmp_path, ini, message):
    (tmp_path / "c.ini").write_text(ini)
    p = subprocess.run([os.environ["LEDGERMQ_BIN"], "serve", "--config", "c.ini", "--mqtt",
                        "127.0.0.1:0", "--http", "none"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert message in p.stderr, p.stderr


@pytest.mark.parametrize("validator", [False, True], ids=["follower", "validator"])
def test_the_example_onboarding_bot_answers_hello_checks_the_form_and_approves(start_broker,
                                                                              tmp_path, validator):
    """examples/bots/onboarding.py (written from the docs) against the real binary with make
    run's models: Hello -> form request; a form from a country it does not serve -> rejected
    with the reason (as the form's validator: refused before acceptance, reason bot:country);
    a good form -> approved. Each answer is a signed envelope from the bot."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    bot, ada = lc.Identity(), lc.Identity()
    seed = bot.key.private_bytes(lc.serialization.Encoding.Raw,
                                 lc.serialization.PrivateFormat.Raw,
                                 lc.serialization.NoEncryption())
    key = tmp_path / "bot.key.json"
    key.write_text(json.dumps({"crv": "Ed25519", "d": lc.b64url(seed), "id": bot.id,
                               "kty": "OKP", "x": lc.b64url(bot.pub)}))
    ini = "[bots]\nids = %s\n" % bot.id
    if validator:
        ini += "validators = com.example.Onboarding:%s\ndefault_verdict = reject\n" % bot.id
    b = start_broker(ini,
                     extra_args=["--http", "127.0.0.1:0", "--models",
                                 os.path.join(root, "examples", "models")])
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(root, "examples", "bots",
                                                              "onboarding.py"),
                             "--key", str(key), "--state", str(tmp_path / "bot.state.json"),
                             "--http", b.http_addr, "--mqtt", "127.0.0.1:%d" % b.mqtt_port,
                             "--max-answers", "2" if validator else "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sa = session(b, ada)
        hello = send(sa, bot.id, {"_t": "com.example.Hello", "name": "Ada"})

        def answer(type_):
            msg = sa.expect("inbox", timeout=30)
            env = msg["envelope"]
            lc.verify(env)
            assert env["from"] == bot.id and env["type"] == type_, env
            return env["body"]

        req = answer("com.example.form_request")
        assert req == {"form": "com.example.Onboarding", "hello": lc.link(hello), "name": "Ada"}
        form = {"_t": "com.example.Onboarding", "name": "Ada", "email": "ada@example.com",
                "status": "submitted"}
        if validator:
            bad = ada.envelope(bot.id, dict(form, country="US"))
            sa.send(bad)
            rej = sa.expect("reject")
            assert (rej["reason"], rej["link"]) == ("bot:country", lc.link(bad)), rej
        else:
            bad = send(sa, bot.id, dict(form, country="US"))
            verdict = answer("com.example.approval")
            assert verdict["form"] == lc.link(bad) and verdict["status"] == "rejected"
            assert any(e.startswith("country") for e in verdict["errors"]), verdict
        good = send(sa, bot.id, dict(form, country="DE"))
        assert answer("com.example.approval") == {"form": lc.link(good), "status": "approved"}
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        # It acknowledged what it handled: its stored position is the approved form's event.
        pos = stored_position(b, bot)
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.data_dir, "ledgermq.db"),
                             uri=True)
        row = db.execute("SELECT data FROM events WHERE id = ?", (pos,)).fetchone()
        db.close()
        assert json.loads(row[0])["data"]["link"] == lc.link(good)
        sa.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
