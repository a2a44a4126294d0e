"""Security finding 12 (docs/SECURITY.md "Tokens"): login tokens get no grace after exp, can be
revoked (POST /auth/revoke, `ledgermq revoke` + SIGHUP, durable across a crash), connections end
with their token, and one identity's appends to the permanent ledger are bounded per UTC day
([auth] ledger_bytes_per_day)."""

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

import ledgerclient as lc
import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

NOT_AUTHORIZED = 0x87
BAD_USER_OR_PASSWORD = 0x86
MAXIMUM_CONNECT_TIME = 0xA0
QUOTA_EXCEEDED = 0x97


def start(start_broker, config_text=None):
    b = start_broker(config_text, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])
    return b


def restart(b):
    b.kill9()
    b.restart()
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])


def claims(token):
    return json.loads(lc.b64url_decode(token.split(".")[1]))


def connect(b, ident, token, version=5, client_id=None):
    """A raw MQTT connection of ident with token; returns (client, CONNACK rc)."""
    c = m.RawClient(b.mqtt_port, version=version)
    ack = c.connect(client_id or "tok-%s-%d" % (ident.id[:8], version), username=ident.id,
                    password=token, check=False)
    return c, ack.rc


def revoke_http(b, token):
    req = urllib.request.Request("http://%s/auth/revoke" % b.http_addr, data=b"", method="POST",
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def login_after_revocation(b, ident, timeout_s=5):
    """A login in the second of a revocation is answered 503 (Retry-After: 1): retry."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, ch = lc.http_json(b.http_addr, "/auth/challenge", {"pub": lc.b64url(ident.pub)})
        assert status == 200, ch
        sig = lc.b64url(ident.key.sign(("ledgermq-auth-v1:" + ch["nonce"]).encode()))
        status, tok = lc.http_json(b.http_addr, "/auth/token", {
            "pub": lc.b64url(ident.pub), "nonce": ch["nonce"], "sig": sig})
        if status == 200:
            return tok["token"]
        assert status == 503 and "revoked" in tok["reason"], (status, tok)
        assert time.monotonic() < deadline, "login still refused after the revocation second"
        time.sleep(0.2)


def still_serves(b, ident, token):
    c, rc = connect(b, ident, token, client_id="alive-" + ident.id[:8])
    assert rc == 0
    c.ping()
    c.disconnect()


def test_token_is_refused_from_its_exp_on(start_broker):
    # Before the fix a token was accepted for 60 s after exp (an undocumented leeway).
    b = start(start_broker, "[auth]\ntoken_ttl_s = 2\n")
    alice = lc.Identity()
    token = lc.login(b.http_addr, alice)
    exp = claims(token)["exp"]
    c, rc = connect(b, alice, token)
    assert rc == 0
    c.disconnect()
    while time.time() < exp + 1:  # 1 s after exp
        time.sleep(0.1)
    for version in (5, 4):
        c, rc = connect(b, alice, token, version=version)
        assert rc == (BAD_USER_OR_PASSWORD if version == 5 else 4), rc
        c.close()
    b.wait_event("security", pred=lambda e: e.get("kind") == "expired_token"
                 and e.get("detail") == "expired")
    # Revoking needs a valid token too.
    status, err = revoke_http(b, token)
    assert status == 401 and err == {"error": 401, "reason": "token expired"}, err


def test_connections_end_when_their_token_expires(start_broker):
    b = start(start_broker, "[auth]\ntoken_ttl_s = 3\n")
    alice, bob = lc.Identity(), lc.Identity()
    token = lc.login(b.http_addr, alice)
    exp = claims(token)["exp"]
    c5, rc5 = connect(b, alice, token, version=5)
    c4, rc4 = connect(b, alice, token, version=4)
    assert rc5 == 0 and rc4 == 0
    c5.ping()
    c4.ping()
    # MQTT 5: DISCONNECT 0xA0 Maximum connect time; 3.1.1: closed without a packet.
    c5.expect_disconnect(rc=MAXIMUM_CONNECT_TIME, timeout=15)
    assert time.time() >= exp - 1, "ended before the token expired"
    c4.expect_disconnect(timeout=5)
    assert time.time() <= exp + 10
    assert b.metric("ledgermq_token_connections_ended_total") == 2
    assert len(b.events("token_expired")) == 2
    # The broker goes on serving: a fresh token connects.
    still_serves(b, bob, lc.login(b.http_addr, bob))


def test_revoked_token_is_refused_and_its_connections_end_also_after_a_crash(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    token = lc.login(b.http_addr, alice)
    bob_token = lc.login(b.http_addr, bob)
    c5, _ = connect(b, alice, token, version=5)
    c4, _ = connect(b, alice, token, version=4)
    cb, _ = connect(b, bob, bob_token, version=5)
    status, body = revoke_http(b, token)
    assert status == 200, body
    assert body["id"] == alice.id and body["revoked_before"] > claims(token)["iat"]
    c5.expect_disconnect(rc=NOT_AUTHORIZED, timeout=10)
    c4.expect_disconnect(timeout=10)
    cb.ping()  # another identity is not affected
    # The revoked token is refused at CONNECT, and can't revoke again.
    c, rc = connect(b, alice, token)
    assert rc == BAD_USER_OR_PASSWORD
    c.close()
    b.wait_event("security", pred=lambda e: e.get("kind") == "revoked_token")
    status, err = revoke_http(b, token)
    assert status == 401 and err["reason"] == "token revoked", err
    assert revoke_http(b, "not.a.token")[0] == 401
    req = urllib.request.Request("http://%s/auth/revoke" % b.http_addr, data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as no_header:
        urllib.request.urlopen(req, timeout=10)
    assert no_header.value.code == 401
    assert no_header.value.headers["WWW-Authenticate"] == "Bearer"
    assert json.loads(no_header.value.read()) == {
        "error": 401, "reason": "send Authorization: Bearer <token from POST /auth/token>"}
    with pytest.raises(urllib.error.HTTPError) as get:
        urllib.request.urlopen("http://%s/auth/revoke" % b.http_addr, timeout=10)
    assert get.value.code == 405
    # A new login works (after the revocation's second) and its token connects.
    fresh = login_after_revocation(b, alice)
    still_serves(b, alice, fresh)
    assert b.metric("ledgermq_token_revocations_total") == 1
    # Durable: after kill -9 the old token stays refused, the new one and Bob's work.
    cb.close()
    time.sleep(0.5)
    restart(b)
    c, rc = connect(b, alice, token)
    assert rc == BAD_USER_OR_PASSWORD
    c.close()
    still_serves(b, alice, fresh)
    still_serves(b, bob, bob_token)


def test_operator_revokes_offline_and_a_running_broker_applies_it_on_sighup(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    token = lc.login(b.http_addr, alice)
    bob_token = lc.login(b.http_addr, bob)
    c5, _ = connect(b, alice, token, version=5)
    cb, _ = connect(b, bob, bob_token, version=5)
    binary = os.environ["LEDGERMQ_BIN"]
    bad = subprocess.run([binary, "revoke", "--data", b.data_dir, "--identity", "nope"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "identity id" in bad.stderr
    done = subprocess.run([binary, "revoke", "--data", b.data_dir, "--identity", alice.id],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["id"] == alice.id and out["revoked_before"] > claims(token)["iat"]
    b.proc.send_signal(signal.SIGHUP)
    c5.expect_disconnect(rc=NOT_AUTHORIZED, timeout=10)
    b.wait_event("tokens_revoked", pred=lambda e: e.get("identity") == alice.id
                 and e.get("source") == "offline")
    c, rc = connect(b, alice, token)
    assert rc == BAD_USER_OR_PASSWORD
    c.close()
    cb.ping()


def send_envelope(c, ident, env):
    """Publishes env (QoS 1) on the identity's outbox; returns (PUBACK rc, leaf, payload) with
    the ack or reject message that answers it."""
    pid = c.publish("id/%s/outbox" % ident.id, lc.canonical(env).encode(), qos=1)
    puback, answer = None, None
    deadline = time.monotonic() + 15
    while puback is None or answer is None:
        assert time.monotonic() < deadline, "no answer to envelope seq %d" % env["seq"]
        p = c.recv(timeout=15)
        if p.type == m.PUBACK and p.pid == pid:
            puback = p.rc
        elif p.type == m.PUBLISH:
            c.ack_publish(p)
            answer = (p.topic.rsplit("/", 1)[1], json.loads(p.payload))
    return (puback,) + answer


def identity_client(b, ident, version=5):
    c, rc = connect(b, ident, lc.login(b.http_addr, ident), version=version)
    assert rc == 0
    c.subscribe([("id/%s/ack" % ident.id, 1), ("id/%s/reject" % ident.id, 1)])
    return c


def test_ledger_byte_quota_refuses_a_flood_and_survives_a_crash(start_broker):
    quota = 6000
    b = start(start_broker, "[auth]\nledger_bytes_per_day = %d\n" % quota)
    alice, bob, carol = lc.Identity(), lc.Identity(), lc.Identity()
    a = identity_client(b, alice)
    used, accepted = 0, []
    while True:  # envelopes of ~600 bytes until one does not fit
        env = alice.envelope(bob.id, {"memo": "x" * 200, "n": len(accepted)})
        size = len(lc.canonical(env).encode())
        rc, leaf, body = send_envelope(a, alice, env)
        if used + size > quota:
            break
        assert (rc, leaf) == (0, "ack"), (rc, leaf, body)
        alice.advance(env)
        accepted.append(env)
        used += size
    assert len(accepted) >= 5
    # Over the quota: PUBACK 0x97 and a reject with the documented reason.
    assert rc == QUOTA_EXCEEDED
    assert leaf == "reject" and body == {
        "detail": "ledger_bytes_per_day", "expected_seq": len(accepted) + 1,
        "link": lc.link(env), "reason": "quota_exceeded", "seq": len(accepted) + 1}, body
    # The flood: every further envelope (fresh bodies, 3.1.1 too) is refused, nothing appended.
    for i in range(40):
        env = alice.envelope(bob.id, {"flood": i, "pad": "y" * 100})
        assert send_envelope(a, alice, env)[:2] == (QUOTA_EXCEEDED, "reject")
    a4 = identity_client(b, alice, version=4)
    env = alice.envelope(bob.id, {"flood": "v311"})
    rc, leaf, body = send_envelope(a4, alice, env)
    assert (rc, leaf, body["reason"]) == (0, "reject", "quota_exceeded")
    b.wait_event("security", pred=lambda e: e.get("kind") == "ledger_quota")
    assert b.metric("ledgermq_ledger_quota_refused_total") == 42
    # Another identity is unaffected; Alice's earlier envelopes are intact in the ledger.
    c = identity_client(b, carol)
    env_c = carol.envelope(bob.id, {"ok": 1})
    assert send_envelope(c, carol, env_c)[:2] == (0, "ack")
    carol.advance(env_c)
    status, cp = lc.http_json(b.http_addr, "/ledger/checkpoint")
    assert cp["size"] == len(accepted) + 1
    r = identity_client(b, bob)
    r.publish("id/%s/resync" % bob.id, b'{"after":0}', qos=1)
    inbox = []
    while len(inbox) < len(accepted) + 1:
        p = r.expect(m.PUBLISH, timeout=15)
        r.ack_publish(p)
        if p.topic.endswith("/inbox"):
            inbox.append(json.loads(p.payload)["envelope"])
    assert [e for e in inbox if e["from"] == alice.id] == accepted
    for cl in (a, a4, c, r):
        cl.close()
    # A crash does not reset the day's count: recomputed from the ledger's rows at start.
    restart(b)
    a = identity_client(b, alice)
    env = alice.envelope(bob.id, {"after": "restart"})
    assert send_envelope(a, alice, env)[:2] == (QUOTA_EXCEEDED, "reject")
    c = identity_client(b, carol)
    assert send_envelope(c, carol, carol.envelope(bob.id, {"ok": 2}))[:2] == (0, "ack")


def test_libledgermq_reconnects_quietly_when_its_token_expires(start_broker, tmp_path):
    """The server ends a connection when its token expires (DISCONNECT 0xA0); the client
    library logs in again at once and goes on, without reporting an error: a listener started
    before the expiry gets envelopes sent after it, and says nothing on stderr."""
    b = start(start_broker, "[auth]\ntoken_ttl_s = 3\n")
    binary = os.environ["LEDGERMQ_BIN"]
    mqtt_addr = b.events("ready")[-1]["mqtt"][0]

    def cli(*args, **kw):
        return subprocess.run([binary] + list(args), cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, **kw)

    ids = {}
    for name in ("a", "b"):
        r = cli("keygen", "--out", name + ".json")
        assert r.returncode == 0, r.stderr
        ids[name] = r.stdout.strip()
    common = ["--server", mqtt_addr, "--http", b.http_addr]
    listener = subprocess.Popen([binary, "listen", "--key", "b.json", "--state", "b-state",
                                 "--count", "2", "--timeout-ms", "30000"] + common,
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        for n in (1, 2):
            r = cli("send", "--key", "a.json", "--state", "a-state", "--to", ids["b"],
                    "--type", "t", *common, json.dumps({"n": n}))
            assert r.returncode == 0, r.stderr
            if n == 1:  # the listener's connection outlives its token
                b.wait_event("token_expired", timeout=20)
        out, err = listener.communicate(timeout=40)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert listener.returncode == 0, err
    assert [json.loads(line)["envelope"]["body"]["n"] for line in out.splitlines()] == [1, 2]
    assert "connection lost" not in err and "disconnected" not in err, err
