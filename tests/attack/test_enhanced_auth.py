"""In-band login flood at full size (make test-attack; LMQ_ATTACK_SECONDS, default 20): from
127.0.0.2, connections that each send CONNECT with the "ledgermq-ed25519" method and a random
key and, in the same write, an AUTH with a bogus signature, so that every one costs the server
a challenge and an Ed25519 verification without waiting for a round trip. Meanwhile the real
identity logs in in band from 127.0.0.1 once every 0.5 s; >= 95% must succeed. Prints what
the flood cost the broker (CPU per attacker connection, from /proc). With the default
max_connection_rate_per_address most attacker connections are refused before any challenge;
LMQ_ATTACK_CONFIG adds configuration text, e.g. "[limits]\nmax_connection_rate_per_address =
1000000\n" to measure what each whole exchange costs. The short version is
tests/integration/test_enhanced_auth.py::test_challenge_flood_from_one_address_shares_the_http_caps.
"""

import os
import socket
import threading
import time
import urllib.request

import ledgerclient as lc
import mqttraw as m

SECONDS = int(os.environ.get("LMQ_ATTACK_SECONDS", "20"))
ATTACKERS = 4
MIN_SUCCESS = 0.95
METHOD = "ledgermq-ed25519"
PREFIX = b"ledgermq-mqtt-auth-v1\n"


def auth_packet(rc, data):
    props = m.Props([("authentication_method", METHOD), ("authentication_data", data)])
    return m.packet(m.AUTH, 0, bytes([rc]) + props.encode())


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(addr, name):
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


class Flood:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.stop_at = None
        self.sent = 0
        self.codes = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(ATTACKERS)]

    def one(self):
        pub = os.urandom(32)
        data = m.encode_connect(5, "", props={"authentication_method": METHOD,
                                              "authentication_data": pub})
        data += auth_packet(0x18, os.urandom(64))
        with socket.create_connection((self.host, self.port), timeout=5,
                                      source_address=("127.0.0.2", 0)) as s:
            s.sendall(data)
            c = m.RawClient(self.port, sock=s)
            got = c.expect_close(timeout=5)
        code = next((p.rc for p in got if p.type == m.CONNACK), "closed")
        with self.lock:
            self.sent += 1
            self.codes[code] = self.codes.get(code, 0) + 1

    def run(self):
        while time.monotonic() < self.stop_at:
            try:
                self.one()
            except (OSError, m.Closed, m.Timeout):
                with self.lock:
                    self.codes["error"] = self.codes.get("error", 0) + 1

    def start(self, seconds):
        self.stop_at = time.monotonic() + seconds
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(timeout=30)


def login(b, server_id, ident, client_id):
    c = m.RawClient(b.port, 5)
    try:
        c.send_raw(m.encode_connect(5, client_id, props={"authentication_method": METHOD,
                                                         "authentication_data": ident.pub}))
        nonce = c.expect(m.AUTH).props.get("authentication_data")
        sig = ident.key.sign(PREFIX + server_id.encode() + nonce + client_id.encode())
        c.send_raw(auth_packet(0x18, sig))
        return c.expect(m.CONNACK).rc == 0
    except (OSError, m.Closed, m.Timeout, AssertionError):
        return False
    finally:
        c.close()


def test_in_band_login_flood_from_one_address(start_broker):
    b = start_broker("[auth]\nanonymous = never\n" + os.environ.get("LMQ_ATTACK_CONFIG", ""),
                     extra_args=["--http", "127.0.0.1:0", "--log-level", "info"])
    http = b.events("ready")[-1]["http"][0]
    server_id = lc.http_json(http, "/auth/key")[1]["id"]
    victim = lc.Identity()
    cpu0 = cpu_s(b.proc.pid)
    verified0 = metric(http, 'ledgermq_security_events_total{kind="bad_login"}')
    flood = Flood(b.host, b.port)
    flood.start(SECONDS)
    ok = tries = 0
    time.sleep(1)
    while time.monotonic() < flood.stop_at - 0.5:
        tries += 1
        ok += login(b, server_id, victim, "victim-%d" % tries)
        time.sleep(0.5)
    flood.join()
    cpu = cpu_s(b.proc.pid) - cpu0
    verified = metric(http, 'ledgermq_security_events_total{kind="bad_login"}') - verified0
    print("victim: %d/%d logins; attacker: %d connections %s; %d signatures verified; broker "
          "CPU %.2f s = %.1f us per attacker connection" % (
              ok, tries, flood.sent, flood.codes, verified, cpu,
              1e6 * cpu / max(flood.sent, 1)))
    assert tries >= 10 and ok >= MIN_SUCCESS * tries, (ok, tries, flood.codes)
    assert verified > 0
