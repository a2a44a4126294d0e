"""Attack and measurement helpers for the HTTP(S) availability tests (security finding 7):
an attacker on 127.0.0.2 holding connections open or flooding /auth/challenge, and a
legitimate client on 127.0.0.1 doing full logins (challenge + token) and counting successes.
Shared by tests/integration/test_security_http.py and tests/attack/test_http.py."""

import http.client
import json
import os
import select
import socket
import ssl
import threading
import time

import ledgerclient as lc

ATTACKER = "127.0.0.2"
LEGIT = "127.0.0.1"
LOGIN_TIMEOUT_S = 10.0  # generous: the machine is loaded; a refused login fails at once anyway


def listener(b, kind):
    """(host, port) of the first `kind` listener (http, https) in the ready line."""
    ready = b.events("ready")[-1]
    host, _, port = ready[kind][0].rpartition(":")
    return host.strip("[]"), int(port)


def _json_request(conn, path, body):
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data) if data else None


def try_login(host, port, ident, tls_ctx=None):
    """One full login from 127.0.0.1 on a fresh connection: None on success, else why not."""
    try:
        if tls_ctx is not None:
            conn = http.client.HTTPSConnection(host, port, timeout=LOGIN_TIMEOUT_S,
                                               source_address=(LEGIT, 0), context=tls_ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=LOGIN_TIMEOUT_S,
                                              source_address=(LEGIT, 0))
        try:
            status, ch = _json_request(conn, "/auth/challenge", {"pub": lc.b64url(ident.pub)})
            if status != 200:
                return "challenge %s %s" % (status, ch)
            sig = ident.key.sign(("ledgermq-auth-v1:" + ch["nonce"]).encode())
            status, tok = _json_request(conn, "/auth/token", {
                "pub": lc.b64url(ident.pub), "nonce": ch["nonce"], "sig": lc.b64url(sig)})
            if status != 200 or tok.get("id") != ident.id:
                return "token %s %s" % (status, tok)
            return None
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError) as e:
        return "%s: %s" % (type(e).__name__, e)


def measure_logins(host, port, count, tls_ctx=None, pause_s=0.05):
    """count logins one after the other (a fresh identity each); returns (ok, failures)."""
    failures = []
    for _ in range(count):
        why = try_login(host, port, lc.Identity(), tls_ctx)
        if why is not None:
            failures.append(why)
        time.sleep(pause_s)
    return count - len(failures), failures


def _readable(socks, timeout_s):
    """The sockets of socks that are readable (or closed) within timeout_s: poll(2), since
    select(2) can't watch descriptors past 1023."""
    if not socks:
        return []
    p = select.poll()
    by_fd = {}
    for s in socks:
        by_fd[s.fileno()] = s
        p.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
    return [by_fd[fd] for fd, _ in p.poll(timeout_s * 1000)]


class Holder(threading.Thread):
    """Keeps `count` connections from 127.0.0.2 open to (host, port), each having sent
    `payload` (b"" for none: a half-open TLS handshake or an idle connection), and opens a
    new one for every one the server closes, until stop()."""

    def __init__(self, host, port, count, payload=b"", source=ATTACKER):
        super().__init__(daemon=True)
        self.host, self.port, self.count, self.payload = host, port, count, payload
        self.source = source
        self._halt = threading.Event()
        self.opened = 0
        self.closed_by_server = 0
        self.peak = 0

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((self.source, 0))
            s.settimeout(2.0)
            s.connect((self.host, self.port))
            if self.payload:
                s.sendall(self.payload)
            s.setblocking(False)
        except OSError:
            s.close()
            return None
        self.opened += 1
        return s

    def run(self):
        alive = []
        try:
            while not self._halt.is_set():
                while len(alive) < self.count and not self._halt.is_set():
                    s = self._open()
                    if s is None:
                        break
                    alive.append(s)
                self.peak = max(self.peak, len(alive))
                readable = _readable(alive, 0.05)
                for s in readable:  # an answer (408, alert) or a close: either way, replace it
                    try:
                        s.recv(65536)
                    except OSError:
                        pass
                    s.close()
                    alive.remove(s)
                    self.closed_by_server += 1
                if not alive:
                    time.sleep(0.05)
        finally:
            for s in alive:
                s.close()

    def stop(self):
        self._halt.set()
        self.join(timeout=10)


def _challenge_request(pub_b64):
    body = json.dumps({"pub": pub_b64}).encode()
    return (b"POST /auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def challenge_flood(host, port, pub_b64, requests, connections=4, source=ATTACKER):
    """Pipelines `requests` POST /auth/challenge over `connections` keep-alive connections
    from `source` and reads every answer; returns {status: count}. pub_b64 None: a different
    random key in every request (as an attacker would, to dodge the per-key cap)."""
    per = requests // connections
    if pub_b64 is None:
        pubs = [lc.b64url(os.urandom(32)) for _ in range(per)]
        batch = b"".join(_challenge_request(p) for p in pubs)
    else:
        batch = _challenge_request(pub_b64) * per
    return pipeline_flood(host, port, batch, per, connections, source)


def pipeline_flood(host, port, batch, per, connections=4, source=ATTACKER):
    """Sends `batch` (`per` pipelined HTTP requests) on each of `connections` keep-alive
    connections from `source` and reads every answer; returns {status: count}."""
    statuses = {}
    lock = threading.Lock()

    def worker():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(15)
        s.connect((host, port))
        sender = threading.Thread(target=s.sendall, args=(batch,), daemon=True)
        sender.start()
        buf = b""
        seen = 0
        try:
            while seen < per:
                data = s.recv(1 << 16)
                if not data:
                    break
                buf += data
                while True:  # count complete responses: status line ... Content-Length body
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].decode("latin-1")
                    length = 0
                    for line in head.split("\r\n")[1:]:
                        k, _, v = line.partition(":")
                        if k.strip().lower() == "content-length":
                            length = int(v)
                    if len(buf) < end + 4 + length:
                        break
                    code = int(head.split(" ", 2)[1])
                    with lock:
                        statuses[code] = statuses.get(code, 0) + 1
                    buf = buf[end + 4 + length:]
                    seen += 1
        except OSError:
            pass
        finally:
            sender.join(timeout=15)
            s.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses


def metrics(host, port):
    """The /metrics text from 127.0.0.1 as {"name{labels}": value}."""
    conn = http.client.HTTPConnection(host, port, timeout=LOGIN_TIMEOUT_S)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def tls_client_ctx(certs):
    return ssl.create_default_context(cafile=str(certs / "ca.pem"))
