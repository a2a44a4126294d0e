"""MQTT 5 enhanced authentication "ledgermq-ed25519" (docs/PROTOCOL.md "Login over MQTT"): an
identity logs in in band (CONNECT with its key, AUTH challenge, AUTH signature) and
re-authenticates on the live connection to outlive the lifetime a login gives, with raw packets
(mqttraw), paho-mqtt 1.6 (as far as it can go) and MQTT.js. Every refusal path, replays, nonce
reuse, the connect timeout, revocation and a challenge flood from one address."""

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import jsdeps
import ledgerclient as lc
import mqttraw as m
import wsclient

pytestmark = pytest.mark.ledgermq_only

METHOD = "ledgermq-ed25519"
PREFIX = b"ledgermq-mqtt-auth-v1\n"
CONTINUE = 0x18
REAUTH = 0x19
PROTOCOL_ERROR = 0x82
BAD_USER_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_BUSY = 0x89
BAD_METHOD = 0x8C
MAXIMUM_CONNECT_TIME = 0xA0
ATTACKER = "127.0.0.2"
NO_ANONYMOUS = "[auth]\nanonymous = never\n"


def start(start_broker, config_text=NO_ANONYMOUS):
    b = start_broker(config_text, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    status, key = lc.http_json(b.http_addr, "/auth/key")
    assert status == 200, key
    b.server_id = key["id"]
    return b


def security_events(b, kind):
    return [e for e in b.events("security") if e.get("kind") == kind]


def assert_security_events(b, kind, count, timeout=5.0):
    """Exactly count events of kind: waits for the log reader to catch up, then checks that no
    more came."""
    deadline = time.monotonic() + timeout
    while len(security_events(b, kind)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    got = security_events(b, kind)
    assert len(got) == count, got


def message(server_id, nonce, client_id):
    """The bytes an identity signs (docs/PROTOCOL.md "Login over MQTT")."""
    if isinstance(client_id, str):
        client_id = client_id.encode()
    return PREFIX + server_id.encode() + nonce + client_id


def auth_packet(rc, data=None, method=METHOD):
    props = []
    if method is not None:
        props.append(("authentication_method", method))
    if data is not None:
        props.append(("authentication_data", data))
    return m.packet(m.AUTH, 0, bytes([rc]) + m.Props(props).encode())


def raw(b, source=None):
    if source is None:
        return b.raw(5)
    sock = socket.create_connection((b.host, b.port), timeout=5, source_address=(source, 0))
    c = m.RawClient(b.port, version=5, sock=sock)
    b._clients.append(c)
    return c


def begin(b, ident, client_id, source=None, pub=None, client=None, **kw):
    """Sends CONNECT with the method and ident's key (on client, default a new TCP connection);
    returns (client, the server's nonce)."""
    c = client if client is not None else raw(b, source)
    props = {"authentication_method": METHOD,
             "authentication_data": ident.pub if pub is None else pub}
    props.update(kw.pop("props", {}))
    c.send_raw(m.encode_connect(5, client_id, props=props, **kw))
    challenge = c.recv()
    assert challenge.type == m.AUTH and challenge.rc == CONTINUE, challenge
    assert challenge.props.get("authentication_method") == METHOD, challenge
    nonce = challenge.props.get("authentication_data")
    assert isinstance(nonce, bytes) and len(nonce) == 32, challenge
    return c, nonce


def answer(b, c, ident, nonce, client_id, sig=None):
    """Sends the client's AUTH 0x18; returns the CONNACK."""
    if sig is None:
        sig = ident.key.sign(message(b.server_id, nonce, client_id))
    c.send_raw(auth_packet(CONTINUE, sig))
    ack = c.expect(m.CONNACK)
    c.connack = ack
    return ack


def login(b, ident, client_id, **kw):
    """A whole in-band login (CONNACK 0x00 with the method asserted); returns the client."""
    c, nonce = begin(b, ident, client_id, **kw)
    ack = answer(b, c, ident, nonce, client_id)
    assert ack.rc == 0, ack
    assert ack.props.get("authentication_method") == METHOD, ack
    return c


def refused(c, rc, reason=None):
    """The next packet is CONNACK rc (with a reason string containing reason), then close."""
    ack = c.expect(m.CONNACK)
    assert ack.rc == rc, ack
    if reason is not None:
        assert reason in ack.props.get("reason_string", ""), ack
    c.expect_close()
    return ack


def reauth(b, c, ident, client_id):
    """A whole re-authentication; returns the server's AUTH 0x00."""
    c.send_raw(auth_packet(REAUTH))
    challenge = c.expect(m.AUTH)
    assert challenge.rc == CONTINUE and challenge.props.get("authentication_method") == METHOD
    nonce = challenge.props.get("authentication_data")
    c.send_raw(auth_packet(CONTINUE, ident.key.sign(message(b.server_id, nonce, client_id))))
    done = c.expect(m.AUTH)
    assert done.rc == 0 and done.props.get("authentication_method") == METHOD, done
    return done


def wait_disconnect(c, rc, timeout):
    """Waits up to timeout for DISCONNECT rc and the close; returns when it came."""
    got = c.expect_close(timeout=timeout)
    discs = [p for p in got if p.type == m.DISCONNECT]
    assert discs and discs[-1].rc == rc, got
    return time.monotonic()


# ------------------------------------------------------------------------------------ success

def test_in_band_login_has_the_identitys_rights_and_session(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    a = login(b, alice, "alice-1")
    ev = b.wait_event("login", pred=lambda e: e.get("method") == METHOD)
    assert ev["identity"] == alice.id
    # Identity topics: her own yes, bob's no (anonymous access is off: this is a login).
    ack = a.subscribe([("id/%s/ack" % alice.id, 1), ("id/%s/inbox" % bob.id, 1)])
    assert ack.rcs == [1, NOT_AUTHORIZED], ack
    # Bob logged in over HTTP with a token; alice's envelope reaches him through the ledger.
    r = lc.Session(b.port, bob, lc.login(b.http_addr, bob))
    assert r.rc == 0
    env = alice.envelope(bob.id, {"memo": "in band"})
    a.publish("id/%s/outbox" % alice.id, lc.canonical(env), qos=1, pid=7)
    puback = a._expect_ack(m.PUBACK)
    assert puback.pid == 7 and puback.rc == 0, puback
    got = a.expect_publish()
    assert got.topic == "id/%s/ack" % alice.id and json.loads(got.payload)["link"] == lc.link(env)
    assert r.expect("inbox")["envelope"] == env
    r.close()
    a.disconnect()
    # A persistent session belongs to alice's identity: her token login resumes it, another
    # identity's in-band login is refused it.
    p = m.RawClient(b.port, 5)
    p.send_raw(m.encode_connect(5, "alice-p", clean=True, props={
        "authentication_method": METHOD, "authentication_data": alice.pub,
        "session_expiry_interval": 300}))
    nonce = p.expect(m.AUTH).props.get("authentication_data")
    assert answer(b, p, alice, nonce, "alice-p").rc == 0
    p.disconnect()
    t = m.RawClient(b.port, 5)
    ack = t.connect("alice-p", clean=False, username=alice.id,
                    password=lc.login(b.http_addr, alice), props={"session_expiry_interval": 300})
    assert ack.session_present, ack
    t.disconnect()
    c, nonce = begin(b, bob, "alice-p", clean=False, props={"session_expiry_interval": 300})
    assert answer(b, c, bob, nonce, "alice-p").rc == NOT_AUTHORIZED
    b.wait_event("security", pred=lambda e: e.get("kind") == "session_owner")


def test_envelope_rate_is_the_identitys_across_token_and_in_band_logins(start_broker):
    b = start(start_broker, NO_ANONYMOUS + "envelope_rate_per_s = 5\n")
    alice, bob = lc.Identity(), lc.Identity()
    t = m.RawClient(b.port, 5)
    t.connect("rate-token", username=alice.id, password=lc.login(b.http_addr, alice))
    c = login(b, alice, "rate-in-band")
    topic = "id/%s/outbox" % alice.id
    got = []
    for i in range(8):  # within the 1 s window: 3 on the token connection, then in band
        conn = t if i < 3 else c
        env = alice.envelope(bob.id, {"n": i})
        conn.publish(topic, lc.canonical(env).encode(), qos=1)
        p = conn.recv()
        got.append((p.type, p.rc))
        if p.type == m.DISCONNECT:
            break
        alice.advance(env)
    assert got == [(m.PUBACK, 0)] * 5 + [(m.DISCONNECT, 0x96)], got
    b.wait_event("security", pred=lambda e: e.get("kind") == "rate_limited")


def test_empty_client_id_is_signed_empty_and_assigned(start_broker):
    b = start(start_broker)
    alice = lc.Identity()
    c = login(b, alice, "")
    assigned = c.connack.props.get("assigned_client_identifier")
    assert assigned and assigned.startswith("auto-"), c.connack
    # Re-authentication signs the session's client id: the assigned one.
    reauth(b, c, alice, assigned)
    c.ping()


def test_in_band_login_and_reauthentication_over_websocket(start_broker):
    b = start(start_broker)
    alice = lc.Identity()
    host, port = b.http_addr.rsplit(":", 1)
    ws = wsclient.WsConn(host, int(port))
    ws.upgrade()
    c = m.RawClient(None, version=5, sock=ws.as_socket())
    b._clients.append(c)
    c = login(b, alice, "ws-1", client=c)
    assert c.subscribe([("id/%s/inbox" % alice.id, 1)]).rcs == [1]
    reauth(b, c, alice, "ws-1")
    c.ping()


# ----------------------------------------------------------------- refusals at CONNECT

def test_wrong_or_missing_method_and_malformed_key_are_refused(start_broker):
    b = start(start_broker)
    alice = lc.Identity()
    c = b.raw(5)
    c.connect("x1", props={"authentication_method": "SCRAM-SHA-1"}, check=False)
    assert c.connack.rc == BAD_METHOD and METHOD in c.connack.props.get("reason_string"), c.connack
    c.expect_close()
    c = b.raw(5)
    c.connect("x2", props={"authentication_data": alice.pub}, check=False)  # MQTT 5 §3.1.2.11.10
    assert c.connack.rc == PROTOCOL_ERROR, c.connack
    c.expect_close()
    for data in (alice.pub[:31], alice.pub + b"\x00", b""):
        c = b.raw(5)
        c.connect("x3", props={"authentication_method": METHOD, "authentication_data": data},
                  check=False)
        assert c.connack.rc == NOT_AUTHORIZED, c.connack
        assert "32-byte" in c.connack.props.get("reason_string"), c.connack
        c.expect_close()
    c = b.raw(5)  # the method without any data
    c.connect("x4", props={"authentication_method": METHOD}, check=False)
    assert c.connack.rc == NOT_AUTHORIZED, c.connack
    c.expect_close()
    assert_security_events(b, "bad_login", 4)
    # A password (token) without the user name it belongs to.
    c = b.raw(5)
    c.connect("x5", props={"authentication_method": METHOD, "authentication_data": alice.pub},
              password=b"token", check=False)
    assert c.connack.rc == BAD_USER_OR_PASSWORD, c.connack
    # No AUTH ever came to any of them.
    assert not b.events("auth_challenge")


def test_bad_signatures_are_refused_with_a_security_event(start_broker):
    b = start(start_broker)
    alice, mallory = lc.Identity(), lc.Identity()
    other_server = hashlib.sha256(b"another server").hexdigest()
    cases = {
        "another key": lambda n: mallory.key.sign(message(b.server_id, n, "sig")),
        "another server": lambda n: alice.key.sign(message(other_server, n, "sig")),
        "another client id": lambda n: alice.key.sign(message(b.server_id, n, "sig2")),
        "another nonce": lambda n: alice.key.sign(message(b.server_id, bytes(32), "sig")),
        "the HTTP login's bytes": lambda n: alice.key.sign(
            b"ledgermq-auth-v1:" + lc.b64url(n).encode()),
        "truncated": lambda n: alice.key.sign(message(b.server_id, n, "sig"))[:63],
        "none": None,
    }
    for name, make in cases.items():
        c, nonce = begin(b, alice, "sig")
        if make is None:
            c.send_raw(auth_packet(CONTINUE))
        else:
            c.send_raw(auth_packet(CONTINUE, make(nonce)))
        ack = refused(c, NOT_AUTHORIZED)
        assert ack.props.get("reason_string") in ("bad signature", (
            "Authentication Data must be the 64-byte Ed25519 signature")), (name, ack)
    assert_security_events(b, "bad_login", len(cases))
    # The right signature still works, and every challenge was consumed.
    login(b, alice, "sig").disconnect()
    assert b.metric("ledgermq_login_challenges") == 0


def test_out_of_order_packets_during_the_exchange_are_protocol_errors(start_broker):
    b = start(start_broker)
    alice = lc.Identity()
    sig_of = {}
    cases = {
        "publish": lambda n: m.encode_publish(5, "t", b"x"),
        "pingreq": lambda n: m.packet(m.PINGREQ, 0, b""),
        "second connect": lambda n: m.encode_connect(5, "ooo"),
        "reauthenticate": lambda n: auth_packet(REAUTH),
        "success from the client": lambda n: auth_packet(0x00),
        "another method": lambda n: auth_packet(CONTINUE, sig_of["s"](n), method="SCRAM-SHA-1"),
        "no method": lambda n: auth_packet(CONTINUE, sig_of["s"](n), method=None),
    }
    sig_of["s"] = lambda n: alice.key.sign(message(b.server_id, n, "ooo"))
    for name, make in cases.items():
        c, nonce = begin(b, alice, "ooo")
        c.send_raw(make(nonce))
        ack = refused(c, PROTOCOL_ERROR)
        assert ack.props.get("reason_string"), (name, ack)
    # DISCONNECT just ends it, without a CONNACK; the challenge is dropped.
    c, nonce = begin(b, alice, "ooo")
    c.send_raw(m.encode_disconnect(5))
    assert c.expect_close() == []
    time.sleep(0.2)
    assert b.metric("ledgermq_login_challenges") == 0
    # AUTH where no method was named: MQTT-4.12.0-7 (v5: DISCONNECT 0x82; 3.1.1 has no AUTH).
    b2 = start(start_broker, None)
    c = b2.connect("plain", version=5)
    c.send_raw(auth_packet(REAUTH))
    c.expect_disconnect(rc=PROTOCOL_ERROR)
    c = b2.connect("plain311", version=4)
    c.send_raw(auth_packet(REAUTH))
    c.expect_disconnect()
    # Nor may AUTH come first.
    c = b2.raw(5)
    c.send_raw(auth_packet(CONTINUE, bytes(64)))
    assert c.expect_close() == []


# ------------------------------------------------------------ replay, nonce reuse, timeout

def test_replayed_signature_and_reused_nonce_are_refused(start_broker):
    b = start(start_broker)
    alice = lc.Identity()
    # A recorded exchange can't be replayed: the next connection gets another nonce.
    c, nonce = begin(b, alice, "rp")
    sig = alice.key.sign(message(b.server_id, nonce, "rp"))
    assert answer(b, c, alice, nonce, "rp", sig).rc == 0
    c.disconnect()
    c, nonce2 = begin(b, alice, "rp")
    assert nonce2 != nonce
    assert answer(b, c, alice, nonce2, "rp", sig).rc == NOT_AUTHORIZED
    # Two exchanges at once: one's signature does not open the other.
    x, nx = begin(b, alice, "rp-x")
    y, ny = begin(b, alice, "rp-x")
    assert answer(b, y, alice, ny, "rp-x", alice.key.sign(message(b.server_id, nx, "rp-x"))).rc \
        == NOT_AUTHORIZED
    assert answer(b, x, alice, nx, "rp-x").rc == 0
    x.disconnect()
    # An in-band nonce is not an HTTP challenge: POST /auth/token refuses it (whatever is
    # signed), and that burns it: the MQTT exchange then fails as with an expired nonce.
    c, nonce = begin(b, alice, "rp-h")
    text = lc.b64url(nonce)
    for signed in (b"ledgermq-auth-v1:" + text.encode(), message(b.server_id, nonce, "rp-h")):
        status, err = lc.http_json(b.http_addr, "/auth/token", {
            "pub": lc.b64url(alice.pub), "nonce": text, "sig": lc.b64url(alice.key.sign(signed))})
        assert status == 401 and err["reason"] == "unknown, used or expired nonce", err
    ack = answer(b, c, alice, nonce, "rp-h")
    assert ack.rc == NOT_AUTHORIZED and "expired" in ack.props.get("reason_string"), ack
    assert_security_events(b, "reused_nonce", 3)
    # And an HTTP challenge signed the MQTT way is no token either.
    status, ch = lc.http_json(b.http_addr, "/auth/challenge", {"pub": lc.b64url(alice.pub)})
    n = lc.b64url_decode(ch["nonce"])
    status, err = lc.http_json(b.http_addr, "/auth/token", {
        "pub": lc.b64url(alice.pub), "nonce": ch["nonce"],
        "sig": lc.b64url(alice.key.sign(message(b.server_id, n, "")))})
    assert status == 401 and err["reason"] == "bad signature", err


def test_exchange_must_end_within_connect_timeout(start_broker):
    b = start(start_broker, NO_ANONYMOUS + "[limits]\nconnect_timeout_ms = 1500\n")
    alice = lc.Identity()
    t0 = time.monotonic()
    c, nonce = begin(b, alice, "slow")
    assert b.metric("ledgermq_login_challenges") == 1
    got = c.expect_close(timeout=10)
    elapsed = time.monotonic() - t0
    assert got == [], got  # no CONNACK: closed like any CONNECT that does not finish in time
    assert 1.0 < elapsed < 5.0, elapsed
    b.wait_event("connect_timeout")
    assert b.metric("ledgermq_login_challenges") == 0
    # An exchange finished in time works.
    login(b, alice, "quick").ping()


# ------------------------------------------------------------------------------- flood

def test_challenge_flood_from_one_address_shares_the_http_caps(start_broker):
    per_address = 8
    b = start(start_broker, NO_ANONYMOUS + "[limits]\nlogin_challenges_per_address = %d\n"
              "connect_timeout_ms = 20000\n" % per_address)
    victim = lc.Identity()
    # The victim starts an exchange first and answers after the flood.
    v, v_nonce = begin(b, victim, "victim-0")
    # 120 in-band challenges from 127.0.0.2: random keys and the victim's key, never answered.
    flood = []
    for i in range(120):
        ident = victim if i % 2 else lc.Identity()
        flood.append(begin(b, ident, "flood-%d" % i, source=ATTACKER) + (ident,))
    outstanding = b.metric("ledgermq_login_challenges")
    assert outstanding <= per_address + 1, outstanding
    evicted = (b.metric('ledgermq_login_challenges_evicted_total{cap="address"}') +
               b.metric('ledgermq_login_challenges_evicted_total{cap="key"}'))
    assert evicted >= 120 - per_address, evicted
    # The victim's challenge survived the flood on her key, and more logins of hers work.
    assert answer(b, v, victim, v_nonce, "victim-0").rc == 0
    for i in range(1, 21):
        login(b, victim, "victim-%d" % i).disconnect()
    # The attacker's early challenges were evicted by its own later ones: answering fails.
    c, nonce, ident = flood[0]
    assert answer(b, c, ident, nonce, "flood-0").rc == NOT_AUTHORIZED
    c, nonce, ident = flood[-1]
    assert answer(b, c, ident, nonce, "flood-%d" % (len(flood) - 1)).rc == 0
    # In-band and HTTP challenges of one address share its cap: per_address fresh in-band
    # exchanges from 127.0.0.2 (random keys) fill it, then one HTTP challenge from there evicts
    # the oldest of them.
    waiting = []
    for i in range(per_address):
        ident = lc.Identity()
        waiting.append(begin(b, ident, "wait-%d" % i, source=ATTACKER) + (ident,))
    h = http.client.HTTPConnection(*b.http_addr.rsplit(":", 1), timeout=10,
                                   source_address=(ATTACKER, 0))
    h.request("POST", "/auth/challenge", json.dumps({"pub": lc.b64url(lc.Identity().pub)}),
              {"Content-Type": "application/json"})
    resp = h.getresponse()
    assert resp.status == 200, resp.read()
    h.close()
    c, nonce, ident = waiting[0]
    assert answer(b, c, ident, nonce, "wait-0").rc == NOT_AUTHORIZED
    c, nonce, ident = waiting[1]
    assert answer(b, c, ident, nonce, "wait-1").rc == 0
    assert_security_events(b, "reused_nonce", 2)


# --------------------------------------------------------------------------- revocation

def revoke(b, ident):
    token = lc.login(b.http_addr, ident)
    req = urllib.request.Request("http://%s/auth/revoke" % b.http_addr, data=b"", method="POST",
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["revoked_before"]


def test_revocation_ends_in_band_connections_and_refuses_that_second(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    a = login(b, alice, "rv-a")
    other = login(b, bob, "rv-b")
    revoke(b, alice)
    wait_disconnect(a, NOT_AUTHORIZED, timeout=5)
    other.ping()  # bob is not affected
    # An in-band login in the second of a revocation is refused with "retry" (as POST
    # /auth/token answers 503 then). Revoke early in a second; an answer that came back before
    # revoked_before was decided in that second. A slow machine may miss it: try again.
    decided = []
    before = time.time() + 1  # the first revocation's second is over by then
    for attempt in range(5):
        while time.time() < before or time.time() % 1 > 0.2:
            time.sleep(0.01)
        before = revoke(b, alice)
        c, nonce = begin(b, alice, "rv-a2")
        ack = answer(b, c, alice, nonce, "rv-a2")
        if time.time() < before:
            decided.append(ack)
            break
    assert decided, "no in-band login within the revocation's second in 5 tries"
    ack = decided[0]
    assert ack.rc == SERVER_BUSY and "retry in 1 s" in ack.props.get("reason_string"), ack
    while time.time() < before:
        time.sleep(0.05)
    again = login(b, alice, "rv-a3")  # from the next second on it works, and lasts
    time.sleep(0.5)
    again.ping()
    # The operator's `ledgermq revoke` + SIGHUP ends it the same way (its login is before T).
    time.sleep(max(0.0, before + 1 - time.time()))
    done = subprocess.run([os.environ["LEDGERMQ_BIN"], "revoke", "--data", b.data_dir,
                           "--identity", alice.id], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    b.proc.send_signal(signal.SIGHUP)
    wait_disconnect(again, NOT_AUTHORIZED, timeout=10)
    b.wait_event("tokens_revoked", pred=lambda e: e.get("source") == "offline")


# ---------------------------------------------------------------------- re-authentication

def test_reauthentication_extends_the_connection_past_its_lifetime(start_broker):
    # Lifetimes are whole seconds (like a token's iat and exp): a login at L ends in
    # [L + ttl - 1, L + ttl]. Re-authenticating at L + 2.5 moves the end to at least L + 6.5, so
    # at L + 5.5 the first lifetime is over and the new one is not.
    ttl = 5
    b = start(start_broker, NO_ANONYMOUS + "token_ttl_s = %d\n" % ttl)
    alice = lc.Identity()
    control = login(b, alice, "ra-control")
    t_control = time.monotonic()
    c = login(b, alice, "ra-live", keepalive=0)
    t_login = time.monotonic()
    time.sleep(2.5)
    # During the exchange the connection keeps working.
    c.send_raw(auth_packet(REAUTH))
    challenge = c.expect(m.AUTH)
    assert challenge.rc == CONTINUE
    assert c.ping().type == m.PINGRESP
    c.subscribe([("ra/t", 1)])
    c.publish_acked("ra/t", b"during", qos=1)
    assert c.expect_publish().payload == b"during"
    nonce = challenge.props.get("authentication_data")
    c.send_raw(auth_packet(CONTINUE, alice.key.sign(message(b.server_id, nonce, "ra-live"))))
    done = c.expect(m.AUTH)
    assert done.rc == 0 and done.props.get("authentication_method") == METHOD, done
    t_reauth = time.monotonic()
    b.wait_event("reauthenticated")
    # The control connection ends at its lifetime; the re-authenticated one goes on past it.
    t_end = wait_disconnect(control, MAXIMUM_CONNECT_TIME, timeout=ttl + 3)
    assert t_end - t_control < ttl + 1.5
    time.sleep(max(0.0, t_login + ttl + 0.5 - time.monotonic()))
    assert c.ping().type == m.PINGRESP, "ended at the first lifetime"
    # Then it ends at the new one (ttl after the re-authentication, within a second).
    t_end = wait_disconnect(c, MAXIMUM_CONNECT_TIME, timeout=ttl + 3)
    assert ttl - 1.2 < t_end - t_reauth < ttl + 1.5, t_end - t_reauth


def test_token_login_with_the_method_reauthenticates_in_band(start_broker):
    ttl = 5
    b = start(start_broker, NO_ANONYMOUS + "token_ttl_s = %d\n" % ttl)
    alice, bob = lc.Identity(), lc.Identity()
    token = lc.login(b.http_addr, alice)
    c = b.raw(5)
    ack = c.connect("tk", username=alice.id, password=token, keepalive=0,
                    props={"authentication_method": METHOD, "authentication_data": alice.pub})
    assert ack.props.get("authentication_method") == METHOD, ack  # at once: no AUTH
    t0 = time.monotonic()
    # The key must be the token's identity's.
    d = b.raw(5)
    d.connect("tk2", username=alice.id, password=token, check=False,
              props={"authentication_method": METHOD, "authentication_data": bob.pub})
    assert d.connack.rc == BAD_USER_OR_PASSWORD, d.connack
    b.wait_event("security", pred=lambda e: e.get("kind") == "bad_token"
                 and "not the token's key" in e.get("detail", ""))
    time.sleep(max(0.0, t0 + 2 - time.monotonic()))
    reauth(b, c, alice, "tk")  # the token ends by t0 + 5, the re-authentication at >= t0 + 6
    time.sleep(max(0.0, t0 + ttl + 0.5 - time.monotonic()))
    assert c.ping().type == m.PINGRESP, "ended with its token"
    # A token connection without the method may not re-authenticate (MQTT-4.12.0-7).
    e = b.raw(5)
    e.connect("tk3", username=alice.id, password=lc.login(b.http_addr, alice))
    e.send_raw(auth_packet(REAUTH))
    e.expect_disconnect(rc=PROTOCOL_ERROR)


def test_failed_or_out_of_order_reauthentication_disconnects(start_broker):
    b = start(start_broker)
    alice, mallory = lc.Identity(), lc.Identity()

    def bad_signature(c):
        c.send_raw(auth_packet(REAUTH))
        nonce = c.expect(m.AUTH).props.get("authentication_data")
        c.send_raw(auth_packet(CONTINUE, mallory.key.sign(message(b.server_id, nonce, "rf"))))

    def replayed(c):
        c.send_raw(auth_packet(REAUTH))
        nonce = c.expect(m.AUTH).props.get("authentication_data")
        sig = alice.key.sign(message(b.server_id, nonce, "rf"))
        c.send_raw(auth_packet(CONTINUE, sig))
        assert c.expect(m.AUTH).rc == 0
        c.send_raw(auth_packet(CONTINUE, sig))  # again: no exchange is running

    cases = {
        "bad signature": (bad_signature, NOT_AUTHORIZED),
        "another key": (lambda c: c.send_raw(auth_packet(REAUTH, mallory.pub)), NOT_AUTHORIZED),
        "another method": (lambda c: c.send_raw(auth_packet(REAUTH, method="SCRAM-SHA-1")),
                           PROTOCOL_ERROR),
        "no method": (lambda c: c.send_raw(auth_packet(REAUTH, method=None)), PROTOCOL_ERROR),
        "continue first": (lambda c: c.send_raw(auth_packet(CONTINUE, bytes(64))),
                           PROTOCOL_ERROR),
        "success from the client": (lambda c: c.send_raw(auth_packet(0x00)), PROTOCOL_ERROR),
        "reauthenticate twice": (lambda c: (c.send_raw(auth_packet(REAUTH)), c.expect(m.AUTH),
                                            c.send_raw(auth_packet(REAUTH))), PROTOCOL_ERROR),
        "replayed signature": (replayed, PROTOCOL_ERROR),
    }
    for name, (act, rc) in cases.items():
        c = login(b, alice, "rf")
        act(c)
        c.expect_disconnect(rc=rc)
    assert_security_events(b, "bad_login", 2)
    time.sleep(0.2)
    assert b.metric("ledgermq_login_challenges") == 0


# ------------------------------------------------------------------- paho-mqtt 1.6, MQTT.js

def paho_connect(b, props, username=None, password=None, timeout=5):
    """paho 1.6 CONNECT; returns (CONNACK reason code or None, CONNACK properties, the
    disconnect rc or None, the error paho logged or None)."""
    got = {"connack": None, "props": None, "disconnect": None, "errors": []}
    done = threading.Event()
    c = paho.Client(client_id="paho-ea", protocol=paho.MQTTv5, reconnect_on_failure=False)
    if username is not None:
        c.username_pw_set(username, password)

    def on_connect(_c, _u, _f, rc, p=None):
        got["connack"], got["props"] = rc.value, p
        done.set()

    def on_disconnect(_c, _u, rc, p=None):
        got["disconnect"] = rc if isinstance(rc, int) else rc.value
        done.set()

    def on_log(_c, _u, level, text):
        if level == paho.MQTT_LOG_ERR:
            got["errors"].append(text)

    c.on_connect, c.on_disconnect, c.on_log = on_connect, on_disconnect, on_log
    c.connect(b.host, b.port, 60, properties=props)
    c.loop_start()
    try:
        assert done.wait(timeout), "paho: neither CONNACK nor disconnect"
        time.sleep(0.2)
    finally:
        c.disconnect()
        c.loop_stop()
    return got


def test_paho_sends_the_method_but_cannot_answer_auth(start_broker):
    """paho-mqtt 1.6 sends Authentication Method/Data in CONNECT and reads them in CONNACK,
    but has no AUTH packet: it gets as far as the server's AUTH 0x18, which it drops the
    connection on ("Unrecognised command"). With a token it connects with the method."""
    b = start(start_broker)
    alice = lc.Identity()
    props = Properties(PacketTypes.CONNECT)
    props.AuthenticationMethod = "SCRAM-SHA-1"
    got = paho_connect(b, props)
    assert got["connack"] == BAD_METHOD, got
    props = Properties(PacketTypes.CONNECT)
    props.AuthenticationMethod = METHOD
    props.AuthenticationData = alice.pub
    got = paho_connect(b, props, username=alice.id, password=lc.login(b.http_addr, alice))
    assert got["connack"] == 0 and got["props"].AuthenticationMethod == METHOD, got
    got = paho_connect(b, props)
    b.wait_event("auth_challenge")
    assert got["connack"] is None and got["disconnect"] == paho.MQTT_ERR_PROTOCOL, got
    assert any("Unrecognised command" in e for e in got["errors"]), got


@pytest.fixture(scope="module")
def node():
    return jsdeps.node()


def test_mqttjs_logs_in_and_reauthenticates_with_handle_auth(start_broker, node):
    b = start(start_broker, NO_ANONYMOUS + "token_ttl_s = 5\n")
    seed = os.urandom(32)
    alice = lc.Identity(seed)
    argv = [node, os.path.join(jsdeps.JS_DIR, "mqttjs_enhanced_auth.js"),
            "mqtt://%s:%d" % (b.host, b.port), "--seed", seed.hex(), "--server-id", b.server_id,
            "--client-id", "mqttjs-ea", "--reauth-ms", "2500", "--hold-ms", "5500",
            "--timeout-ms", "20000"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    lines = r.stdout.strip().splitlines()
    assert lines, "mqttjs_enhanced_auth.js printed nothing (exit %d): %s" % (r.returncode,
                                                                              r.stderr)
    result = json.loads(lines[-1])
    assert r.returncode == 0 and result.get("ok") is True, (result, r.stderr)
    assert result["identity"] == alice.id
    assert result["connack_method"] == METHOD
    assert result["granted"] == [1]
    assert result["other_inbox"] == "Subscribe error: Not authorized", result
    assert result["reauth_rc"] == 0
    assert result["challenges"] == 2  # the login's and the re-authentication's
    assert result["alive_after_ms"] >= 5500  # past the <= 5 s the login gave, thanks to re-auth
    ev = b.wait_event("reauthenticated")
    assert ev["identity"] == alice.id
