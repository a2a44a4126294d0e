"""Validator bots (docs/PROTOCOL.md "Validator bots"): [bots] validators = TYPE:BOTID makes a
client's envelope of TYPE (or a typed object of model TYPE) wait for the bot's verdict, asked on id/<bot>/validate and answered on
id/<bot>/validate/verdict. Accepted: the normal ack; rejected: the normal reject with reason
bot:<reason>; no answer within verdict_timeout_ms, or no bot online: default_verdict. The
sender's later envelopes wait behind (order kept), other clients are served meanwhile, and only
the bot answers for itself."""

import json
import os
import subprocess
import threading
import time

import pytest

import ledgerclient as lc
import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

BOT = "ab" * 32
TYPE = "com.example.Onboarding"
OTHER = "com.example.Other"
TIMEOUT_S = 15


def start(start_broker, bots, validators, extra=""):
    ini = "[bots]\nids = %s\nvalidators = %s\n%s" % (
        ", ".join(i.id for i in bots), ", ".join("%s:%s" % (t, i.id) for t, i in validators),
        extra)
    b = start_broker(ini, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    return b


class Client:
    """A raw MQTT connection of an identity subscribed to its ack and reject topics (PUBACKs
    are not waited for: a publish may wait for a verdict)."""

    def __init__(self, b, ident, version=5, keepalive=60, leaves=("ack", "reject")):
        self.ident, self.version = ident, version
        self.c = m.RawClient(b.mqtt_port, version=version, timeout=TIMEOUT_S)
        self.c.connect("c-" + ident.id[:12] + str(version), keepalive=keepalive,
                       username=ident.id, password=lc.login(b.http_addr, ident))
        base = "id/%s/" % ident.id
        pid = self.c.next_pid()
        subs = [(base + leaf, m.SubOpts(1)) for leaf in leaves]
        self.c.send_raw(m.encode_subscribe(version, pid, subs))
        self.suback = self.c._expect_ack(m.SUBACK)
        self.pubacks = []

    def send(self, to, body, type_=TYPE, advance=True):
        env = self.ident.envelope(to, body, type_=type_)
        self.c.publish("id/%s/outbox" % self.ident.id, lc.canonical(env).encode(), qos=1)
        if advance:
            self.ident.advance(env)
        return env

    def next(self, timeout=TIMEOUT_S):
        """The next message on ack or reject: (leaf, body); PUBACKs are kept."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.c.recv(timeout=max(0.05, deadline - time.monotonic()))
            if p.type == m.PUBACK:
                self.pubacks.append(p.rc)
                continue
            assert p.type == m.PUBLISH, p
            self.c.ack_publish(p)
            return p.topic.rsplit("/", 1)[1], json.loads(p.payload)


class Validator(threading.Thread):
    """The validator bot: answers each request by the envelope body's "verdict" (accept,
    reject, silent, or slow: accept after 0.3 s) and records the requests."""

    def __init__(self, b, ident):
        super().__init__(daemon=True)
        self.who = ident
        self.c = m.RawClient(b.mqtt_port, version=5, timeout=TIMEOUT_S)
        self.c.connect("v-" + ident.id[:12], username=ident.id,
                       password=lc.login(b.http_addr, ident))
        pid = self.c.next_pid()
        self.c.send_raw(m.encode_subscribe(5, pid, [("id/%s/validate" % ident.id, m.SubOpts(1))]))
        assert self.c._expect_ack(m.SUBACK).rcs == [1]
        self.requests, self.stopping, self.lock = [], False, threading.Lock()
        self.start()

    def verdict(self, body):
        with self.lock:
            self.c.publish("id/%s/validate/verdict" % self.who.id, json.dumps(body).encode(),
                           qos=0)

    def run(self):
        while not self.stopping:
            try:
                p = self.c.recv(timeout=0.2)
            except (m.Timeout, OSError):
                continue
            except m.Closed:
                return
            if p.type != m.PUBLISH:
                continue
            with self.lock:
                self.c.ack_publish(p)
            req = json.loads(p.payload)
            self.requests.append(req)
            kind = req["envelope"]["body"].get("verdict")
            if kind == "accept":
                self.verdict({"request": req["request"], "accept": True})
            elif kind == "reject":
                self.verdict({"request": req["request"], "accept": False,
                              "reason": "form_incomplete"})
            elif kind == "slow":
                threading.Timer(0.3, self.verdict,
                                [{"request": req["request"], "accept": True}]).start()

    def close(self):
        self.stopping = True
        self.join(5)
        self.c.close()


def wait_requests(v, count):
    deadline = time.monotonic() + TIMEOUT_S
    while len(v.requests) < count:
        assert time.monotonic() < deadline, v.requests
        time.sleep(0.02)
    return v.requests[count - 1]


def test_validator_accepts_rejects_times_out_and_keeps_order(start_broker):
    bot, other_bot, a, r, x = (lc.Identity() for _ in range(5))
    b = start(start_broker, [bot, other_bot], [(TYPE, bot), (OTHER, other_bot)],
              "verdict_timeout_ms = 1500\ndefault_verdict = reject\n")
    alice = Client(b, a)
    # No validator online: the default verdict (reject) right away; other types pass.
    t0 = time.monotonic()
    alice.send(r.id, {"verdict": "accept"}, advance=False)
    leaf, rej = alice.next()
    assert (leaf, rej["reason"], rej["seq"]) == ("reject", "validator_unavailable", 1)
    assert time.monotonic() - t0 < 1.4
    alice.send(r.id, {"n": 1}, type_="note")
    assert alice.next()[0] == "ack"

    v = Validator(b, bot)
    # Accepted, then rejected with the bot's reason (the chain does not move), then accepted.
    env = alice.send(r.id, {"verdict": "accept"})
    leaf, ack = alice.next()
    assert leaf == "ack" and ack["seq"] == 2 and ack["link"] == lc.link(env)
    req = v.requests[-1]
    assert (req["link"], req["from"], req["type"], req["envelope"]) == (lc.link(env), a.id, TYPE,
                                                                        env)
    bad = alice.send(r.id, {"verdict": "reject"}, advance=False)
    leaf, rej = alice.next()
    assert (leaf, rej["reason"], rej["seq"], rej["link"]) == ("reject", "bot:form_incomplete", 3,
                                                               lc.link(bad))
    # Order: a slow verdict holds the envelopes behind it (a note, another validated one).
    seqs = []
    for body, type_ in (({"verdict": "slow"}, TYPE), ({"n": 2}, "note"),
                        ({"verdict": "accept"}, TYPE)):
        alice.send(r.id, body, type_=type_)
    for _ in range(3):
        leaf, ack = alice.next()
        assert leaf == "ack", ack
        seqs.append(ack["seq"])
    assert seqs == [3, 4, 5]
    assert alice.pubacks[-3:] == [0, 0, 0]

    # A silent bot: the default verdict after the timeout. Meanwhile another client is served,
    # another validator can't decide it, and nobody else can answer or listen for the bot.
    t0 = time.monotonic()
    silent = alice.send(r.id, {"verdict": "silent"}, advance=False)
    req = wait_requests(v, 5)
    assert req["link"] == lc.link(silent)
    xc = Client(b, x)
    xc.send(r.id, {"n": 1}, type_="note")
    assert xc.next()[0] == "ack"
    assert time.monotonic() - t0 < 1.4  # served while alice waits
    wv = m.RawClient(b.mqtt_port, version=5, timeout=TIMEOUT_S)
    wv.connect("w-" + other_bot.id[:12], username=other_bot.id,
               password=lc.login(b.http_addr, other_bot))
    wv.publish_acked("id/%s/validate/verdict" % other_bot.id,
                     json.dumps({"request": req["request"], "accept": True}).encode())
    thief = xc.c
    pid = thief.next_pid()
    thief.send_raw(m.encode_subscribe(5, pid, [("id/%s/validate" % bot.id, m.SubOpts(1))]))
    assert thief._expect_ack(m.SUBACK).rcs == [0x87]
    pid = thief.publish("id/%s/validate/verdict" % bot.id,
                        json.dumps({"request": req["request"], "accept": True}).encode(), qos=1)
    assert thief._expect_ack(m.PUBACK).rc == 0x87
    pid = thief.publish("id/%s/validate/verdict" % x.id,
                        json.dumps({"request": req["request"], "accept": True}).encode(), qos=1)
    assert thief._expect_ack(m.PUBACK).rc == 0x87  # x is no validator
    leaf, rej = alice.next()
    assert (leaf, rej["reason"], rej["link"]) == ("reject", "validator_timeout", lc.link(silent))
    assert time.monotonic() - t0 >= 1.4
    # A malformed verdict: 0x99; one for no waiting request: ignored.
    assert v.c is not None
    with v.lock:
        v.c.publish("id/%s/validate/verdict" % bot.id, b'{"request":"x"}', qos=0)
        v.c.publish("id/%s/validate/verdict" % bot.id, b'{"request":1,"accept":true}', qos=0)
    b.wait_event("verdict_refused")

    # An MQTT 3.1.1 sender: the same verdicts.
    old = Client(b, lc.Identity(), version=4)
    old.send(r.id, {"verdict": "accept"})
    assert old.next()[0] == "ack"
    old.send(r.id, {"verdict": "reject"}, advance=False)
    leaf, rej = old.next()
    assert (leaf, rej["reason"]) == ("reject", "bot:form_incomplete")
    # A typed object of the validated model under another envelope type is validated too.
    old.send(r.id, {"_t": TYPE, "verdict": "reject"}, type_="note", advance=False)
    leaf, rej = old.next()
    assert (leaf, rej["reason"]) == ("reject", "bot:form_incomplete")
    assert v.requests[-1]["type"] == "note"

    assert b.metric("ledgermq_validator_verdicts_total", '{result="accept"}') == 4
    assert b.metric("ledgermq_validator_verdicts_total", '{result="reject"}') == 3
    assert b.metric("ledgermq_validator_verdicts_total", '{result="timeout"}') == 1
    assert b.metric("ledgermq_validator_verdicts_total", '{result="unavailable"}') == 1
    assert b.metric("ledgermq_validator_verdicts_total", '{result="ignored"}') == 2
    assert b.metric("ledgermq_validator_verdicts_total", '{result="malformed"}') == 1
    assert b.metric("ledgermq_validator_requests_total") == 8
    assert b.metric("ledgermq_validator_pending") == 0
    v.close()


def test_default_accept_after_timeout_keeps_the_connection_and_a_crash_asks_again(start_broker):
    bot, a, r = lc.Identity(), lc.Identity(), lc.Identity()
    b = start(start_broker, [bot], [(TYPE, bot)],
              "verdict_timeout_ms = 4000\ndefault_verdict = accept\n")
    # No bot online: accepted right away.
    alice = Client(b, a, keepalive=2)
    alice.send(r.id, {"verdict": "silent"})
    assert alice.next(timeout=2)[0] == "ack"
    # A silent bot: accepted after the timeout, longer than 1.5 x alice's keepalive (which
    # does not count while the server holds her input).
    v = Validator(b, bot)
    t0 = time.monotonic()
    alice.send(r.id, {"verdict": "silent"})
    leaf, ack = alice.next()
    assert leaf == "ack" and ack["seq"] == 2 and time.monotonic() - t0 >= 3.9
    assert not b.events("keepalive_timeout")
    # kill -9 while a verdict is pending: nothing was appended; the resend is asked again.
    pending = alice.send(r.id, {"verdict": "silent"}, advance=False)
    wait_requests(v, 2)
    b.kill9()
    v.close()
    b.restart()
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    v = Validator(b, bot)
    alice = Client(b, a)
    alice.c.publish("id/%s/outbox" % a.id, lc.canonical(pending).encode(), qos=1)
    assert wait_requests(v, 1)["link"] == lc.link(pending)
    v.verdict({"request": v.requests[0]["request"], "accept": False, "reason": "late form"})
    leaf, rej = alice.next()
    assert (leaf, rej["reason"], rej["seq"]) == ("reject", "bot:late form", 3)
    v.close()


def test_one_address_holds_at_most_verdicts_per_address(start_broker):
    """Three senders from one address with verdicts_per_address = 2: two are asked, the third
    waits unasked (the table has room) until one of the first two is decided. The broker then
    stops on SIGTERM with a verdict still pending (its 30 s timer does not hold the loop)."""
    bot = lc.Identity()
    senders = [lc.Identity() for _ in range(3)]
    r = lc.Identity()
    b = start(start_broker, [bot], [(TYPE, bot)],
              "verdict_timeout_ms = 30000\nverdicts_per_address = 2\n")
    v = Validator(b, bot)
    clients = [Client(b, ident) for ident in senders]
    for c in clients[:2]:
        c.send(r.id, {"verdict": "silent"})
    wait_requests(v, 2)
    clients[2].send(r.id, {"verdict": "silent"})
    time.sleep(1.0)  # four retries of the third sender: still not asked
    assert len(v.requests) == 2 and b.metric("ledgermq_validator_pending") == 2
    v.verdict({"request": v.requests[0]["request"], "accept": True})
    third = wait_requests(v, 3)
    assert third["from"] == senders[2].id
    v.verdict({"request": third["request"], "accept": False, "reason": "no"})
    first = next(c for c in clients if c.ident.id == v.requests[0]["from"])
    assert first.next()[0] == "ack"
    leaf, rej = clients[2].next()
    assert (leaf, rej["reason"]) == ("reject", "bot:no")
    v.close()


@pytest.mark.parametrize("ini, message", [
    ("[bots]\nvalidators = %s:%s\n" % (TYPE, BOT),
     "[bots] validators: com.example.Onboarding's validator %s is not one of [bots] ids" % BOT),
    ("[bots]\nids = %s\nvalidators = %s:%s, %s:%s\n" % (BOT, TYPE, BOT, TYPE, BOT),
     "[bots] validators: type com.example.Onboarding has two validators"),
    ("[bots]\nids = %s\nvalidators = %s\n" % (BOT, TYPE), "[bots] validators: expected TYPE:BOTID"),
    ("[bots]\nids = %s\nvalidators = bad type:%s\n" % (BOT, BOT),
     "[bots] validators: expected TYPE:BOTID"),
    ("[bots]\nverdict_timeout_ms = 50\n",
     "[bots] verdict_timeout_ms: expected an integer 100..30000"),
    ("[bots]\ndefault_verdict = maybe\n", "[bots] default_verdict: expected accept or reject"),
    ("[bots]\nverdicts_per_address = 0\n",
     "[bots] verdicts_per_address: expected an integer 1..1024"),
])
def test_bad_validator_configuration_stops_the_start_with_one_line(tmp_path, ini, message):
    (tmp_path / "c.ini").write_text(ini)
    p = subprocess.run([os.environ["LEDGERMQ_BIN"], "serve", "--config", "c.ini", "--mqtt",
                        "127.0.0.1:0", "--http", "none"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.startswith("ledgermq: serve: ") and p.stderr.count("\n") == 1, p.stderr
    assert message in p.stderr, p.stderr
    assert not (tmp_path / "data").exists()
