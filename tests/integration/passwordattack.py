"""Attack and measurement helpers for the password-check starvation tests (security finding
8): bad-password CONNECTs flooded from 127.0.0.2 and a real user's CONNECTs from 127.0.0.1.
Shared by tests/integration/test_security_password.py and tests/attack/test_password.py."""

import os
import socket
import subprocess
import threading
import time

import mqttraw
from httpattack import _readable

ATTACKER = "127.0.0.2"
LEGIT = "127.0.0.1"
CONNECT_TIMEOUT_S = 10.0  # generous: a check waits for an scrypt slot on a loaded machine


def make_password_file(path, users):
    binary = os.environ["LEDGERMQ_BIN"]
    for user, secret in users:
        r = subprocess.run([binary, "passwd", "--file", str(path), user],
                           input=(secret + "\n").encode(), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr


def connack_code(port, user, password, source, version=4, timeout=CONNECT_TIMEOUT_S):
    """One CONNECT from `source`: the CONNACK's return/reason code, or a string saying what
    happened instead (no answer, closed)."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((source, 0))
            s.settimeout(timeout)
            s.connect(("127.0.0.1", port))
            s.sendall(mqttraw.encode_connect(version, "", True, 60, username=user,
                                             password=password.encode()))
            buf = b""
            while len(buf) < 4:
                data = s.recv(64)
                if not data:
                    return "closed"
                buf += data
            if buf[0] >> 4 != mqttraw.CONNACK:
                return "not a CONNACK: %r" % buf[:8]
            return buf[3]
        finally:
            s.close()
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e)


class Flooder(threading.Thread):
    """Bad-password CONNECTs from 127.0.0.2 at `rate_per_s`, each on its own connection,
    sent without waiting for the answer (as the original attack did); CONNACKs are read as
    they come and counted by code, and a connection unanswered after `give_up_s` is closed."""

    def __init__(self, port, user, rate_per_s=145, give_up_s=5.0, max_open=800):
        super().__init__(daemon=True)
        self.port, self.user, self.rate = port, user, rate_per_s
        self.give_up_s, self.max_open = give_up_s, max_open
        self._halt = threading.Event()
        self.sent = 0
        self.codes = {}

    def _count(self, key):
        self.codes[key] = self.codes.get(key, 0) + 1

    def _open(self, n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((ATTACKER, 0))
            s.settimeout(2.0)
            s.connect(("127.0.0.1", self.port))
            s.sendall(mqttraw.encode_connect(4, "", True, 60, username=self.user,
                                             password=b"wrong-%d" % n))
            s.setblocking(False)
        except OSError:
            s.close()
            self._count("connect_failed")
            return None
        self.sent += 1
        return s

    def run(self):
        pending = {}  # socket -> time sent
        start = time.monotonic()
        n = 0
        try:
            while not self._halt.is_set():
                now = time.monotonic()
                while n < (now - start) * self.rate and len(pending) < self.max_open:
                    s = self._open(n)
                    n += 1
                    if s is not None:
                        pending[s] = now
                ready = _readable(list(pending), 0.005)
                for s in ready:
                    try:
                        data = s.recv(64)
                    except OSError:
                        data = b""
                    self._count(data[3] if len(data) >= 4 and data[0] >> 4 == mqttraw.CONNACK
                                else "closed")
                    s.close()
                    del pending[s]
                for s, sent in list(pending.items()):
                    if now - sent > self.give_up_s:
                        self._count("no_answer")
                        s.close()
                        del pending[s]
                if not ready:
                    time.sleep(0.002)
        finally:
            for s in pending:
                s.close()

    def stop(self):
        self._halt.set()
        self.join(timeout=15)


def measure_connects(port, user, password, count, pause_s=0.05):
    """count CONNECTs with the right password from 127.0.0.1; returns (ok, failures)."""
    failures = []
    for _ in range(count):
        code = connack_code(port, user, password, LEGIT)
        if code != 0:
            failures.append(code)
        time.sleep(pause_s)
    return count - len(failures), failures
