"""MQTT over TLS (--mqtts) and HTTPS (--https) against the real binary: paho, mosquitto_pub/sub,
curl and openssl s_client as clients, plus python's ssl module where a test has to be rude on
purpose (plain bytes on the TLS port, half a ClientHello, no bytes at all). Certificates come
from tests/tls/make-certs.sh: a CA, server (SAN 127.0.0.1), client alice (CA-signed) and
mallory (self-signed). All ledgermq_only: the flags, log events and metrics are ledgermq's.
"""
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import mqttraw

pytestmark = pytest.mark.ledgermq_only

CURL = "/usr/bin/curl"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
TOOL_TIMEOUT_S = 20
SOCKET_TIMEOUT_S = 10
CONNECT_TIMEOUT_MS = 500  # [limits] connect_timeout_ms for the stalled-client tests
PROMPT_CLOSE_S = 2.0  # "promptly": far below the 8 s connect timeout those tests configure


def tls_broker(start_broker, certs, config_text=None, client_cert=None, extra=(),
               cert=None, key=None):
    """A broker with one mqtts and one https listener (and plain mqtt); client_cert is
    none|optional|required (with the CA as --tls-client-ca) or None for the default."""
    args = ["--mqtts", "127.0.0.1:0", "--https", "127.0.0.1:0",
            "--tls-cert", str(cert or certs / "server.pem"),
            "--tls-key", str(key or certs / "server.key")]
    if client_cert is not None:
        args += ["--tls-client-ca", str(certs / "ca.pem"), "--tls-client-cert", client_cert]
    return start_broker(config_text, extra_args=args + list(extra))


def listener(b, kind):
    """(host, port) of the first listener of `kind` (mqtts, https, http) in the ready line."""
    ready = b.events("ready")[-1]
    addrs = ready.get(kind)
    assert isinstance(addrs, list) and addrs, ready
    host, _, port = addrs[0].rpartition(":")
    assert int(port) > 0, ready
    return host, int(port)


def client_ctx(certs, who=None, max_version=None):
    """A verifying client context trusting the test CA; who = "client" (alice) or "rogue"
    (mallory) presents that certificate."""
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if who is not None:
        ctx.load_cert_chain(str(certs / ("%s.pem" % who)), str(certs / ("%s.key" % who)))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def tls_socket(b, ctx, kind="mqtts"):
    host, port = listener(b, kind)
    sock = socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S)
    return ctx.wrap_socket(sock, server_hostname=host)


def tls_raw(b, certs, version=5, who=None):
    """A raw MQTT client over TLS (no CONNECT sent yet)."""
    c = mqttraw.RawClient(None, version=version, sock=tls_socket(b, client_ctx(certs, who)))
    b._clients.append(c)
    return c


def peer_cn(sock):
    subject = dict(x[0] for x in sock.getpeercert()["subject"])
    return subject["commonName"]


def curl_https(b, certs, path, who=None):
    """curl --cacert against the https listener; returns (status, body bytes)."""
    host, port = listener(b, "https")
    args = [CURL, "-sS", "--max-time", str(TOOL_TIMEOUT_S), "--cacert", str(certs / "ca.pem"),
            "-o", "/dev/stderr", "-w", "%{http_code}"]
    if who is not None:
        args += ["--cert", str(certs / ("%s.pem" % who)), "--key", str(certs / ("%s.key" % who))]
    proc = subprocess.run(args + ["https://%s:%d%s" % (host, port, path)], capture_output=True,
                          timeout=TOOL_TIMEOUT_S + 5)
    assert proc.returncode == 0, proc
    return int(proc.stdout), proc.stderr


def metric(b, certs, name, who=None):
    status, body = curl_https(b, certs, "/metrics", who=who)
    assert status == 200, body
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    assert m, body.decode()
    return int(m.group(1))


def mqtt_over_tls_refused(b, ctx, version=5):
    """Tries a TLS handshake plus CONNECT; returns a description of how the server refused.
    Fails the test if a CONNACK comes back. (With TLS 1.3 the client's handshake completes
    before the server has checked the client certificate: the refusal is an alert on the
    first read.)"""
    try:
        sock = tls_socket(b, ctx)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return "handshake: %s" % e
    try:
        c = mqttraw.RawClient(None, version=version, sock=sock)
        c.send_raw(mqttraw.encode_connect(version, "refused"))
        p = c.recv(SOCKET_TIMEOUT_S)
        raise AssertionError("the server answered a refused TLS client: %r" % p)
    except (ssl.SSLError, mqttraw.Closed, ConnectionResetError, BrokenPipeError) as e:
        return "after handshake: %s" % e
    finally:
        sock.close()


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_round_trip_over_tls(start_broker, certs, version, qos):
    b = tls_broker(start_broker, certs)
    _, port = listener(b, "mqtts")
    tls = {"ca_certs": str(certs / "ca.pem")}
    sub = b.paho("tls-sub-%d" % qos, version=version, port=port, tls=tls)
    pub = b.paho("tls-pub-%d" % qos, version=version, port=port, tls=tls)
    assert sub.subscribe("tls/rt", qos=qos) == [qos]
    pub.publish("tls/rt", b"over tls %d" % qos, qos=qos)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("tls/rt", b"over tls %d" % qos, qos)
    b.wait_event("tls_established", pred=lambda e: e.get("detail") == "TLSv1.3")
    sub.disconnect()
    pub.disconnect()


def mosquitto(tool, b, certs, proto, *args, who=None):
    host, port = listener(b, "mqtts")
    argv = [tool, "-h", host, "-p", str(port), "-V", proto, "--cafile", str(certs / "ca.pem")]
    if who is not None:
        argv += ["--cert", str(certs / ("%s.pem" % who)), "--key", str(certs / ("%s.key" % who))]
    return argv + list(args)


def mosquitto_sub_until_one(b, certs, proto, who=None):
    """mosquitto_sub -C 1 over TLS, fed by mosquitto_pub over TLS until it gets one
    message (it has no "subscribed" signal). Returns its stdout."""
    s = subprocess.Popen(mosquitto("mosquitto_sub", b, certs, proto, "-t", "tls/cli", "-q", "1",
                                   "-C", "1", who=who),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TOOL_TIMEOUT_S
        while s.poll() is None:
            assert time.monotonic() < deadline, "mosquitto_sub received nothing"
            r = subprocess.run(mosquitto("mosquitto_pub", b, certs, proto, "-t", "tls/cli",
                                         "-m", "secret", "-q", "1", who=who),
                               capture_output=True, timeout=TOOL_TIMEOUT_S)
            assert r.returncode == 0, r.stderr
            try:
                s.wait(timeout=0.3)
            except subprocess.TimeoutExpired:
                pass
        out, err = s.communicate(timeout=TOOL_TIMEOUT_S)
        assert s.returncode == 0, err
        return out
    finally:
        if s.poll() is None:
            s.kill()
            s.wait()


@pytest.mark.parametrize("proto", ["mqttv311", "mqttv5"])
def test_mosquitto_clients_over_tls_with_cafile(start_broker, certs, proto):
    b = tls_broker(start_broker, certs)
    assert mosquitto_sub_until_one(b, certs, proto) == b"secret\n"


def test_mosquitto_clients_over_tls_with_client_certificate(start_broker, certs):
    b = tls_broker(start_broker, certs, client_cert="required")
    assert mosquitto_sub_until_one(b, certs, "mqttv5", who="client") == b"secret\n"
    assert not b.events("tls_handshake_failed"), b.events("tls_handshake_failed")


# ------------------------------------------------------------------ client certificates
def test_required_client_certificate(start_broker, certs):
    b = tls_broker(start_broker, certs, client_cert="required")
    assert metric(b, certs, "ledgermq_tls_handshake_failures_total", who="client") == 0

    how = mqtt_over_tls_refused(b, client_ctx(certs))
    b.wait_event("tls_handshake_failed", what="tls_handshake_failed for a client without a cert")
    assert metric(b, certs, "ledgermq_tls_handshake_failures_total", who="client") == 1, how

    how = mqtt_over_tls_refused(b, client_ctx(certs, "rogue"))
    deadline = time.monotonic() + 5
    while len(b.events("tls_handshake_failed")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    failed = b.events("tls_handshake_failed")
    assert len(failed) == 2, (how, failed)
    assert all(e.get("detail") for e in failed), failed
    assert "certificate" in failed[1]["detail"], failed  # mallory: verify failed
    assert metric(b, certs, "ledgermq_tls_handshake_failures_total", who="client") == 2

    alice = tls_raw(b, certs, who="client")
    alice.connect("alice")
    alice.ping()
    assert metric(b, certs, "ledgermq_tls_handshake_failures_total", who="client") == 2
    assert metric(b, certs, 'ledgermq_connections{transport="tls"}', who="client") == 1
    alice.disconnect()


def test_optional_client_certificate(start_broker, certs, version):
    b = tls_broker(start_broker, certs, client_cert="optional")
    anon = tls_raw(b, certs, version=version)
    anon.connect("anonymous")
    alice = tls_raw(b, certs, version=version, who="client")
    alice.connect("alice")
    anon.subscribe([("opt/t", 1)])
    alice.publish_acked("opt/t", b"from alice")
    assert anon.expect_publish().payload == b"from alice"
    assert metric(b, certs, "ledgermq_tls_handshake_failures_total") == 0
    assert not b.events("tls_handshake_failed")
    # Optional means "may present none", not "may present one the CA never issued".
    how = mqtt_over_tls_refused(b, client_ctx(certs, "rogue"), version=version)
    ev = b.wait_event("tls_handshake_failed")
    assert "certificate" in ev.get("detail", ""), (how, ev)
    assert metric(b, certs, "ledgermq_tls_handshake_failures_total") == 1


# ------------------------------------------------------------------ rude clients
def closed_within(sock, data, limit_s):
    """Sends data and reads until the server closes; returns (seconds, bytes read)."""
    started = time.monotonic()
    if data:
        sock.sendall(data)
    got = b""
    sock.settimeout(limit_s)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("still open %.1fs later (read %r)" % (limit_s, got)) from None
    return time.monotonic() - started, got


@pytest.mark.parametrize("what", ["mqtt_connect", "http_request"])
def test_plaintext_on_the_tls_port_is_closed_promptly(start_broker, certs, what):
    b = tls_broker(start_broker, certs, "[limits]\nconnect_timeout_ms = 8000\n")
    good = tls_raw(b, certs)
    good.connect("tls-bystander")
    data = mqttraw.encode_connect(5, "plain") if what == "mqtt_connect" else \
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    host, port = listener(b, "mqtts")
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as s:
        elapsed, got = closed_within(s, data, PROMPT_CLOSE_S)
    assert not got.startswith(b"HTTP/") and not got.startswith(b"\x20"), got  # no CONNACK
    b.wait_event("tls_handshake_failed")
    good.subscribe([("bystander/t", 1)])
    good.publish_acked("bystander/t", b"still here")
    assert good.expect_publish().payload == b"still here"


def half_client_hello():
    """The first half of a real TLS ClientHello record."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello  # handshake record
    return hello[:len(hello) // 2]


@pytest.mark.parametrize("what", ["nothing", "half_client_hello"])
def test_stalled_tls_client_is_closed_after_connect_timeout(start_broker, certs, what):
    b = tls_broker(start_broker, certs, "[limits]\nconnect_timeout_ms = %d\n" % CONNECT_TIMEOUT_MS)
    data = b"" if what == "nothing" else half_client_hello()
    host, port = listener(b, "mqtts")
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as s:
        elapsed, _ = closed_within(s, data, SOCKET_TIMEOUT_S)
    assert CONNECT_TIMEOUT_MS / 1000 * 0.8 <= elapsed < CONNECT_TIMEOUT_MS / 1000 + 3, elapsed
    b.wait_event("connect_timeout")


def test_tls_1_1_is_refused(start_broker, certs):
    b = tls_broker(start_broker, certs)
    host, port = listener(b, "mqtts")
    # SECLEVEL=0 lets the local OpenSSL offer TLS 1.1 at all; the refusal must be the server's.
    proc = subprocess.run([OPENSSL, "s_client", "-connect", "%s:%d" % (host, port), "-tls1_1",
                           "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", str(certs / "ca.pem")],
                          input=b"", capture_output=True, timeout=TOOL_TIMEOUT_S)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    assert proc.returncode != 0, out
    assert "alert protocol version" in out, out  # the server's alert, not a local refusal
    ev = b.wait_event("tls_handshake_failed")
    assert "protocol" in ev.get("detail", ""), ev
    # TLS 1.2 is still accepted.
    s = tls_socket(b, client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2))
    assert s.version() == "TLSv1.2"
    s.close()


# ------------------------------------------------------------------ SIGHUP reload
def make_server_cert(certs, outdir, cn):
    """A second server certificate (SAN 127.0.0.1) for `cn`, signed by the test CA."""
    key, csr, pem, ext = (outdir / ("%s.%s" % (cn, s)) for s in ("key", "csr", "pem", "ext"))
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for argv in (
            [OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(key)],
            [OPENSSL, "req", "-new", "-key", str(key), "-subj", "/CN=%s" % cn, "-out", str(csr)],
            [OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(certs / "ca.pem"), "-CAkey",
             str(certs / "ca.key"), "-set_serial", "4242", "-sha256", "-days", "30",
             "-extfile", str(ext), "-out", str(pem)]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
        assert r.returncode == 0, (argv, r.stderr)
    return pem, key


def test_sighup_reloads_the_certificate(start_broker, certs, tmp_path):
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(certs / "server.pem", live_cert)
    shutil.copy(certs / "server.key", live_key)
    b = tls_broker(start_broker, certs, cert=live_cert, key=live_key)
    old_sock = tls_socket(b, client_ctx(certs))
    assert peer_cn(old_sock) == "localhost"
    old = mqttraw.RawClient(None, version=5, sock=old_sock)
    b._clients.append(old)
    old.connect("before-reload")
    old.subscribe([("reload/t", 1)])

    new_pem, new_key = make_server_cert(certs, tmp_path, "reloaded.test")
    shutil.copy(new_pem, live_cert)
    shutil.copy(new_key, live_key)
    b.proc.send_signal(signal.SIGHUP)
    b.wait_event("tls_reloaded")
    s = tls_socket(b, client_ctx(certs))
    assert peer_cn(s) == "reloaded.test"
    new = mqttraw.RawClient(None, version=5, sock=s)
    b._clients.append(new)
    new.connect("after-reload")
    new.publish_acked("reload/t", b"across the reload")
    # The session opened before the reload keeps its certificate and keeps working.
    assert old.expect_publish().payload == b"across the reload"
    assert peer_cn(old_sock) == "localhost"
    old.ping()

    # A key that does not match the certificate: refused, the previous pair stays in use.
    shutil.copy(certs / "rogue.key", live_key)
    b.proc.send_signal(signal.SIGHUP)
    b.wait_event("tls_reload_failed")
    s2 = tls_socket(b, client_ctx(certs))
    assert peer_cn(s2) == "reloaded.test"
    c2 = mqttraw.RawClient(None, version=5, sock=s2)
    b._clients.append(c2)
    c2.connect("after-failed-reload")
    c2.ping()
    assert len(b.events("tls_reloaded")) == 1, b.events("tls_reloaded")


# ------------------------------------------------------------------ HTTPS
def test_https_endpoints(start_broker, certs):
    b = tls_broker(start_broker, certs)
    status, body = curl_https(b, certs, "/healthz")
    assert (status, body) == (200, b'{"status":"ready"}')
    status, body = curl_https(b, certs, "/version")
    assert status == 200 and re.fullmatch(rb'\{"version":"\d+\.\d+\.\d+"\}', body), body
    status, body = curl_https(b, certs, "/metrics")
    assert status == 200 and b"ledgermq_tls_handshake_failures_total 0" in body, body
    status, body = curl_https(b, certs, "/nope")
    assert (status, body) == (404, b'{"error":404,"reason":"Not Found"}')


def test_plain_http_on_the_https_port_is_closed(start_broker, certs):
    b = tls_broker(start_broker, certs)
    host, port = listener(b, "https")
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as s:
        _, got = closed_within(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", PROMPT_CLOSE_S)
    assert not got.startswith(b"HTTP/"), got
    # Still serving TLS clients.
    assert curl_https(b, certs, "/healthz")[0] == 200


# ------------------------------------------------------------------ startup errors
def assert_tls_startup_error(start_broker, args):
    b = start_broker(extra_args=args, expect_exit=1, wait_ready=False)
    b.wait_exit(1)
    lines = [json.loads(l) for l in b.stderr_lines() if l.strip()]  # a JSON log line
    assert len(lines) == 1 and lines[0]["event"] == "start_failed", lines
    assert lines[0]["msg"].startswith("TLS: "), lines
    return lines[0]["msg"]


def test_missing_certificate_file_exits_1(start_broker, certs, tmp_path):
    line = assert_tls_startup_error(start_broker, [
        "--mqtts", "127.0.0.1:0", "--tls-cert", str(tmp_path / "missing.pem"),
        "--tls-key", str(certs / "server.key")])
    assert "missing.pem" in line, line


def test_key_not_matching_the_certificate_exits_1(start_broker, certs):
    assert_tls_startup_error(start_broker, [
        "--mqtts", "127.0.0.1:0", "--tls-cert", str(certs / "server.pem"),
        "--tls-key", str(certs / "client.key")])
