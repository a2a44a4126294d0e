"""Security finding 7: one unauthenticated client must not be able to block logins
(docs/SECURITY.md "Logins, HTTP and TLS"). Each test performs the attack from 127.0.0.2 while
a legitimate client on 127.0.0.1 does full logins (challenge + token) and asserts that at
least 95% of them succeed during the attack. Attack sizes are scaled to caps lowered in each
test's configuration; tests/attack/test_http.py runs them at full size against the defaults."""

import socket
import threading
import time

import pytest

import httpattack as ha
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

LOGINS = 20
MIN_SUCCESS = 0.95


def http_broker(start_broker, limits="", tls_certs=None):
    args = ["--http", "127.0.0.1:0"]
    if tls_certs is not None:
        args += ["--https", "127.0.0.1:0", "--tls-cert", str(tls_certs / "server.pem"),
                 "--tls-key", str(tls_certs / "server.key")]
    return start_broker("[limits]\n" + limits, extra_args=args)


def assert_logins(ok, failures):
    print("%d/%d logins succeeded during the attack" % (ok, LOGINS))
    assert ok >= MIN_SUCCESS * LOGINS, "only %d of %d logins succeeded during the attack: %s" % (
        ok, LOGINS, failures[:5])


def test_challenge_flood_from_one_address_leaves_logins_working(start_broker):
    """10,500 pipelined challenges from one address (more than the 10,000 that fit in all),
    then more for the victim's own key, while the victim logs in: every login works, the
    attacker's address holds no more than its cap and the flood shows in /metrics."""
    b = http_broker(start_broker, "login_challenges_per_address = 16\n"
                                  "login_challenges_per_key = 4\n")
    host, port = ha.listener(b, "http")
    statuses = ha.challenge_flood(host, port, None, 10500)
    assert statuses.get(200, 0) >= 10000, statuses  # never refused: its own oldest went
    # Now the victim logs in while the attacker keeps asking for challenges for the victim's
    # key (per-key cap) and for its own (per-address cap).
    victim = lc.Identity()
    stop = threading.Event()

    def keep_flooding():
        while not stop.is_set():
            ha.challenge_flood(host, port, lc.b64url(victim.pub), 400, connections=2)
            ha.challenge_flood(host, port, None, 400, connections=2)

    t = threading.Thread(target=keep_flooding, daemon=True)
    t.start()
    failures = []
    try:
        for _ in range(LOGINS):
            why = ha.try_login(host, port, victim)
            if why is not None:
                failures.append(why)
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(timeout=30)
    assert_logins(LOGINS - len(failures), failures)
    m = ha.metrics(host, port)
    assert m["ledgermq_login_challenges"] <= 16 + 4 + 1, m["ledgermq_login_challenges"]
    assert m['ledgermq_login_challenges_evicted_total{cap="address"}'] >= 10500 - 16
    assert m['ledgermq_login_challenges_evicted_total{cap="key"}'] > 0
    b.wait_event("login_challenge_evicted")


def test_half_sent_requests_from_one_address_leave_logins_working(start_broker):
    """The attacker holds more half-sent requests (headers never finished) than the server
    takes in all; its address gets only http_max_connections_per_address of them, and a
    header that never completes is answered 408 after http_header_timeout_ms."""
    b = http_broker(start_broker, "http_max_connections = 200\n"
                                  "http_max_connections_per_address = 20\n"
                                  "http_header_timeout_ms = 3000\n")
    host, port = ha.listener(b, "http")
    slow = (b"POST /auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60\r\n")  # no blank line: the head never ends
    holder = ha.Holder(host, port, 250, slow)
    holder.start()
    try:
        time.sleep(1.0)
        ok, failures = ha.measure_logins(host, port, LOGINS)
    finally:
        holder.stop()
    assert_logins(ok, failures)
    assert holder.closed_by_server > 200, "the attacker's extra connections were not refused"
    b.wait_event("http_connection_refused",
                 pred=lambda e: e.get("detail") == "max_connections_per_address")
    m = ha.metrics(host, port)
    assert m['ledgermq_http_refused_total{reason="address"}'] > 0

    # A slowloris that got its slot is answered 408 once the header deadline passes, and one
    # that connects and sends nothing is closed by the same deadline (not the idle timeout).
    s = socket.create_connection((host, port), timeout=10, source_address=(ha.ATTACKER, 0))
    quiet = socket.create_connection((host, port), timeout=10, source_address=(ha.ATTACKER, 0))
    start = time.monotonic()
    s.sendall(slow)
    answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"error":408' in answer
    assert quiet.recv(4096) == b""
    assert time.monotonic() - start < 10, "the header deadline is 3 s"
    s.close()
    quiet.close()


def test_half_open_tls_handshakes_from_one_address_leave_https_logins_working(start_broker,
                                                                              certs):
    """The attacker opens more TLS connections than the HTTPS server takes and never sends a
    ClientHello; only http_max_handshakes_per_address of them are held, each no longer than
    http_handshake_timeout_ms, and HTTPS logins from elsewhere keep working."""
    b = http_broker(start_broker, "http_max_connections = 200\n"
                                  "http_max_handshakes_per_address = 10\n"
                                  "http_handshake_timeout_ms = 2000\n", tls_certs=certs)
    host, port = ha.listener(b, "https")
    holder = ha.Holder(host, port, 250)
    holder.start()
    try:
        time.sleep(1.0)
        ok, failures = ha.measure_logins(host, port, LOGINS, tls_ctx=ha.tls_client_ctx(certs))
    finally:
        holder.stop()
    assert_logins(ok, failures)
    b.wait_event("http_connection_refused",
                 pred=lambda e: e.get("detail") == "max_handshakes_per_address")
    # A handshake that never starts is dropped after the deadline.
    s = socket.create_connection((host, port), timeout=10, source_address=(ha.ATTACKER, 0))
    start = time.monotonic()
    assert s.recv(4096) == b""
    assert time.monotonic() - start < 8, "the handshake deadline is 2 s"
    s.close()
    b.wait_event("tls_handshake_timeout")
    hhost, hport = ha.listener(b, "http")
    m = ha.metrics(hhost, hport)
    assert m['ledgermq_http_refused_total{reason="handshakes"}'] > 0
    assert m['ledgermq_http_timeouts_total{phase="handshake"}'] > 0


def test_behind_a_trusted_proxy_challenge_limits_count_the_forwarded_client(start_broker):
    """Behind a trusted proxy every request comes from the proxy's address: the per-address
    challenge cap must count the client X-Forwarded-For names, or one client behind the proxy
    evicts everyone's challenges."""
    import json
    import urllib.request
    b = start_broker("[limits]\nlogin_challenges_per_address = 2\n"
                     "[http]\ntrusted_proxies = 127.0.0.1\n",
                     extra_args=["--http", "127.0.0.1:0"])
    host, port = ha.listener(b, "http")

    def post(path, body, xff):
        req = urllib.request.Request("http://%s:%d%s" % (host, port, path),
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "X-Forwarded-For": xff})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    victim = lc.Identity()
    status, ch = post("/auth/challenge", {"pub": lc.b64url(victim.pub)}, "203.0.113.5")
    assert status == 200, ch
    for _ in range(5):  # another client behind the same proxy asks again and again
        attacker = lc.Identity()
        assert post("/auth/challenge", {"pub": lc.b64url(attacker.pub)}, "203.0.113.6")[0] == 200
    sig = victim.key.sign(("ledgermq-auth-v1:" + ch["nonce"]).encode())
    status, tok = post("/auth/token", {"pub": lc.b64url(victim.pub), "nonce": ch["nonce"],
                                       "sig": lc.b64url(sig)}, "203.0.113.5")
    assert status == 200, tok
