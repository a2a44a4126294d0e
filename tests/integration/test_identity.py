"""Identities and guaranteed delivery (docs/PROTOCOL.md), driven by a Python client written from
the protocol document alone (ledgerclient.py): login, envelopes, chain rules, permissions,
resync, security events, restart."""

import base64
import json
import time

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import ledgerclient as lc
import mqttraw as m

pytestmark = pytest.mark.ledgermq_only


def start(start_broker, config_text=None):
    b = start_broker(config_text, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])
    return b


def session(b, ident, **kw):
    s = lc.Session(b.mqtt_port, ident, lc.login(b.http_addr, ident), **kw)
    assert s.rc == 0, s.rc
    return s


def security_events(b, kind):
    return [e for e in b.events("security") if e.get("kind") == kind]


@pytest.fixture
def pair(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    a, r = session(b, alice), session(b, bob)
    yield b, alice, bob, a, r
    a.close()
    r.close()


def test_envelope_is_acked_delivered_once_and_verifiable(pair):
    b, alice, bob, a, r = pair
    assert a.granted == [1, 1, 1, 1]
    for i in range(3):
        env = alice.envelope(bob.id, {"n": i, "text": "héllo"})
        a.send(env)
        ack = a.expect("ack")
        receipt = ack.pop("receipt")
        assert ack == {"index": i, "link": lc.link(env), "position": i + 1, "seq": i + 1,
                       "to": bob.id}
        ack["receipt"] = receipt
        lc.check_receipt(ack, *lc.server_key(b.http_addr))
        alice.advance(env)
        got = r.expect("inbox")
        assert got["position"] == i + 1 and got["index"] == i
        assert got["envelope"] == env
        lc.verify(got["envelope"])
    assert b.metric("ledgermq_ledger_envelopes") == 3


def test_resend_is_acked_again_and_not_delivered_twice(pair):
    b, alice, bob, a, r = pair
    env = alice.envelope(bob.id, {"x": 1})
    a.send(env)
    first = a.expect("ack")
    alice.advance(env)
    r.expect("inbox")
    a.send(env)  # the same envelope again: e.g. the client never saw the ack
    again = a.expect("ack")
    assert again["index"] == first["index"] and again["link"] == first["link"]
    lc.check_receipt(again, *lc.server_key(b.http_addr))
    nxt = alice.envelope(bob.id, {"x": 2})
    a.send(nxt)
    assert a.expect("ack")["seq"] == 2
    got = r.expect("inbox")
    assert got["position"] == 2, "the resend was not delivered a second time"


def test_gap_and_fork_are_rejected_with_the_expected_seq(pair):
    b, alice, bob, a, r = pair
    first = alice.envelope(bob.id, {"x": 1})
    a.send(first)
    a.expect("ack")
    alice.advance(first)
    a.send(alice.envelope(bob.id, {"x": 3}, seq=3))
    rej = a.expect("reject")
    assert rej["reason"] == "gap" and rej["seq"] == 3 and rej["expected_seq"] == 2
    a.send(alice.envelope(bob.id, {"x": "other"}, seq=1, prev=""))
    rej = a.expect("reject")
    assert rej["reason"] == "fork" and rej["expected_seq"] == 2
    a.send(alice.envelope(bob.id, {"x": 2}, prev="0" * 64))
    assert a.expect("reject")["reason"] == "fork"
    r.expect("inbox")
    with pytest.raises(Exception):
        r.expect("inbox", timeout=0.5)


def test_forged_signature_and_foreign_sender_are_refused_and_logged(pair):
    b, alice, bob, a, r = pair
    env = alice.envelope(bob.id, {"amount": 10})
    env["body"] = {"amount": 1000}  # changed after signing
    a.send(env)
    assert a.expect("reject")["reason"] == "bad_signature"
    b.wait_event("security", pred=lambda e: e.get("kind") == "bad_signature")
    # Bob's properly signed envelope, published by Alice on her own outbox.
    a.send(bob.envelope(alice.id, {"x": 1}))
    assert a.expect("reject")["reason"] == "not_sender"
    b.wait_event("security", pred=lambda e: e.get("kind") == "not_sender")
    bad = dict(alice.envelope(bob.id, {}), time="yesterday")
    a.send(bad)
    rej = a.expect("reject")
    assert rej["reason"] == "bad_envelope" and rej["detail"] == "bad_time", rej
    assert b.metric('ledgermq_security_events_total{kind="bad_signature"}') == 1


def test_one_identity_cannot_publish_or_subscribe_as_another(pair):
    b, alice, bob, a, r = pair
    info = a.client.publish("id/%s/outbox" % bob.id, lc.canonical(alice.envelope(bob.id, {})),
                            qos=1)
    info.wait_for_publish(10)
    b.wait_event("security", pred=lambda e: e.get("kind") == "acl_denied")
    codes = []
    a.client.on_subscribe = lambda c, u, mid, rc, p=None: codes.append(
        [getattr(x, "value", x) for x in rc])
    a.client.subscribe([("id/%s/inbox" % bob.id, 1)])
    a.client.subscribe([("id/#", 1)])  # allowed: delivers only Alice's own topics
    deadline = time.time() + 10
    while len(codes) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert codes == [[0x87], [1]], codes
    env = bob.envelope(alice.id, {"for": "alice"})
    r.send(env)
    r.expect("ack")
    topic_seen = a.expect("inbox")
    assert topic_seen["envelope"] == env
    # Alice's id/# never shows Bob's ack or inbox.
    time.sleep(0.3)
    while not a.messages.empty():
        leaf, body = a.messages.get()
        assert "to" not in body or body.get("to") == alice.id, body


def test_bad_and_expired_tokens_and_reused_challenges_are_refused(start_broker):
    b = start(start_broker)
    alice = lc.Identity()
    token = lc.login(b.http_addr, alice)
    s = lc.Session(b.mqtt_port, alice, token[:-4] + "AAAA", subscribe=False)
    assert s.rc == 0x86
    s.close()
    bob = lc.Identity()
    s = lc.Session(b.mqtt_port, bob, token, subscribe=False)  # Alice's token, Bob's id
    assert s.rc == 0x86
    s.close()
    # A token the server signed that has expired: made with the server's own key file.
    with open(b.data_dir + "/server.key.json") as f:
        server = json.load(f)
    key = Ed25519PrivateKey.from_private_bytes(lc.b64url_decode(server["d"]))
    now = int(time.time())
    header = lc.b64url(b'{"alg":"EdDSA","typ":"JWT"}')
    claims = lc.b64url(json.dumps({"sub": alice.id, "iat": now - 7200, "exp": now - 3600,
                                   "iss": "ledgermq", "jti": "x" * 22}).encode())
    expired = header + "." + claims + "." + lc.b64url(key.sign((header + "." + claims).encode()))
    s = lc.Session(b.mqtt_port, alice, expired, subscribe=False)
    assert s.rc == 0x86
    s.close()
    b.wait_event("security", pred=lambda e: e.get("kind") == "expired_token")
    # One challenge, one attempt.
    status, ch = lc.http_json(b.http_addr, "/auth/challenge", {"pub": lc.b64url(alice.pub)})
    sig = lc.b64url(alice.key.sign(("ledgermq-auth-v1:" + ch["nonce"]).encode()))
    body = {"pub": lc.b64url(alice.pub), "nonce": ch["nonce"], "sig": sig}
    assert lc.http_json(b.http_addr, "/auth/token", body)[0] == 200
    status, err = lc.http_json(b.http_addr, "/auth/token", body)
    assert status == 401 and err["error"] == 401, err
    b.wait_event("security", pred=lambda e: e.get("kind") == "reused_nonce")
    # A signature by another key over a valid nonce.
    status, ch = lc.http_json(b.http_addr, "/auth/challenge", {"pub": lc.b64url(alice.pub)})
    sig = lc.b64url(bob.key.sign(("ledgermq-auth-v1:" + ch["nonce"]).encode()))
    status, err = lc.http_json(b.http_addr, "/auth/token",
                               {"pub": lc.b64url(alice.pub), "nonce": ch["nonce"], "sig": sig})
    assert status == 401
    assert lc.http_json(b.http_addr, "/auth/challenge", {"pub": "nope"})[0] == 400
    # By reason: the two bad tokens, the expired one, the reused nonce, the wrong signature.
    for reason, n in (("bad_token", 2), ("expired_token", 1), ("reused_nonce", 1),
                      ("bad_login", 1), ("bad_password", 0), ("anonymous_refused", 0)):
        assert b.metric("ledgermq_auth_failures_total", '{reason="%s"}' % reason) == n, reason


def test_auth_token_names_the_faulty_field(start_broker):
    """A 400 from /auth/token says which of pub, nonce and sig is wrong; a malformed signature
    does not consume the nonce, so the corrected request still logs in."""
    b = start(start_broker)
    alice = lc.Identity()
    pub = lc.b64url(alice.pub)
    status, ch = lc.http_json(b.http_addr, "/auth/challenge", {"pub": pub})
    assert status == 200, ch
    good = lc.b64url(alice.key.sign(("ledgermq-auth-v1:" + ch["nonce"]).encode()))
    cases = [
        ({"pub": pub, "nonce": ch["nonce"], "sig": good[:-3] + "!!!"}, "sig: malformed"),
        ({"pub": pub, "nonce": ch["nonce"], "sig": good[:40]}, "sig: malformed"),
        ({"pub": pub, "nonce": ch["nonce"]}, "sig: missing"),
        ({"pub": pub, "nonce": "short", "sig": good}, "nonce: "),
        ({"pub": "nope", "nonce": ch["nonce"], "sig": good}, "pub: "),
    ]
    for body, reason in cases:
        status, err = lc.http_json(b.http_addr, "/auth/token", body)
        assert status == 400 and err["reason"].startswith(reason), (body, err)
        assert "expected pub, nonce and sig" not in err["reason"]
    status, tok = lc.http_json(b.http_addr, "/auth/token",
                               {"pub": pub, "nonce": ch["nonce"], "sig": good})
    assert status == 200 and tok["id"] == alice.id, tok


def test_anonymous_clients_are_refused_when_configured(start_broker):
    b = start(start_broker, "[auth]\nanonymous = never\n")
    c = mqtt.Client(client_id="anon", protocol=mqtt.MQTTv5)
    rcs = []
    c.on_connect = lambda cl, u, f, rc, p=None: rcs.append(rc.value)
    c.connect("127.0.0.1", b.mqtt_port)
    c.loop_start()
    deadline = time.time() + 10
    while not rcs and time.time() < deadline:
        time.sleep(0.05)
    c.loop_stop()
    assert rcs and rcs[0] == 0x87, rcs
    alice = lc.Identity()
    session(b, alice).close()  # identities still get in


def test_session_of_one_identity_cannot_be_taken_by_another(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    a = session(b, alice, client_id="shared-id", clean=False)
    s = lc.Session(b.mqtt_port, bob, lc.login(b.http_addr, bob), client_id="shared-id",
                   subscribe=False)
    assert s.rc == 0x87
    a.client.publish("id/%s/resync" % alice.id, '{"after":0}', qos=1).wait_for_publish(10)
    assert a.expect("sync")["count"] == 0, "Alice's connection survived"
    a.close()


def test_resync_returns_the_inbox_after_a_position(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    a = session(b, alice)
    for i in range(5):
        env = alice.envelope(bob.id, {"n": i})
        a.send(env)
        a.expect("ack")
        alice.advance(env)
    r = session(b, bob)  # was never connected: everything comes from the ledger
    r.client.publish("id/%s/resync" % bob.id, '{"after":0}', qos=1).wait_for_publish(10)
    got = [r.expect("inbox")["position"] for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]
    assert r.expect("sync") == {"after": 0, "count": 5, "last": 5, "more": False}
    r.client.publish("id/%s/resync" % bob.id, '{"after":3}', qos=1).wait_for_publish(10)
    assert [r.expect("inbox")["envelope"]["body"]["n"] for _ in range(2)] == [3, 4]
    assert r.expect("sync")["last"] == 5


def test_chain_and_ledger_survive_kill_9(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    a = session(b, alice)
    sent, envs = [], []
    for i in range(3):
        env = alice.envelope(bob.id, {"n": i})
        a.send(env)
        sent.append(a.expect("ack"))
        envs.append(env)
        alice.advance(env)
    a.close()
    b.kill9()
    b.restart()
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])
    a = session(b, alice)
    key = lc.server_key(b.http_addr)
    a.send(envs[2])  # a resend of the last acked envelope: the same ack
    again = a.expect("ack")
    assert again["index"] == sent[2]["index"] and again["link"] == sent[2]["link"]
    lc.check_receipt(again, *key)
    a.send(envs[0])  # an older one, read back from the store: the same ack, a replay event
    again = a.expect("ack")
    assert again["index"] == 0 and again["position"] == 1
    lc.check_receipt(again, *key)
    b.wait_event("security", pred=lambda e: e.get("kind") == "replay")
    # The same seq with other content is a fork, even after a restart.
    a.send(alice.envelope(bob.id, {"n": "changed"}, seq=3, prev=sent[1]["link"]))
    assert a.expect("reject")["reason"] == "fork"
    env = alice.envelope(bob.id, {"n": 3})
    a.send(env)
    assert a.expect("ack")["index"] == 3
    r = session(b, bob)
    r.client.publish("id/%s/resync" % bob.id, '{"after":0}', qos=1).wait_for_publish(10)
    assert [r.expect("inbox")["position"] for _ in range(4)] == [1, 2, 3, 4]
    a.close()
    r.close()


def test_envelope_rate_per_identity_disconnects_v5_and_slows_v311(start_broker):
    b = start(start_broker, "[auth]\nenvelope_rate_per_s = 5\n")
    alice, bob = lc.Identity(), lc.Identity()
    token = lc.login(b.http_addr, alice)
    c = m.RawClient(b.mqtt_port, version=5)
    c.connect("rate5", username=alice.id, password=token)
    topic = "id/%s/outbox" % alice.id
    acked = 0
    for i in range(10):
        env = alice.envelope(bob.id, {"n": i})
        c.publish(topic, lc.canonical(env).encode(), qos=1)
        p = c.recv()
        if p.type == m.DISCONNECT:
            assert p.rc == 0x96, p
            break
        assert p.type == m.PUBACK and p.rc == 0, p
        alice.advance(env)
        acked += 1
    assert acked == 5, acked
    b.wait_event("security", pred=lambda e: e.get("kind") == "rate_limited")
    # MQTT 3.1.1 cannot be told: it is held back, and every envelope still gets through.
    carol = lc.Identity()
    c3 = m.RawClient(b.mqtt_port, version=4)
    c3.connect("rate311", username=carol.id, password=lc.login(b.http_addr, carol))
    envs = []
    for i in range(8):
        env = carol.envelope(bob.id, {"n": i})
        carol.advance(env)
        envs.append(lc.canonical(env).encode())
    t0 = time.monotonic()
    rcs = c3.publish_pipelined("id/%s/outbox" % carol.id, envs, window=8, timeout=30)
    assert rcs == [0] * 8
    assert time.monotonic() - t0 >= 0.5, "8 envelopes at 5/s take more than one window"
    status, cp = lc.http_json(b.http_addr, "/ledger/checkpoint")
    assert cp["size"] == 13
