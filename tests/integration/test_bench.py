"""`ledgermq bench`, the load generator: its report, its exit codes, its errors.

Runs the generator for about two seconds per scenario and QoS against a real
ledgermq and checks the JSON report's structure and what it counts: something
was delivered, and at QoS 1/2 nothing was lost. Two controls against a tiny
misbehaving broker written here show that the loss count and the exit code 2
can fail: one broker drops every 10th message, the other hangs up mid-run.
No timing or throughput assertions (those belong to `make bench`).

The broker runs with --log-level info: the "ready" line that carries the port
is an info line (at warn it is not printed), and debug would log every packet.
"""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

BIN = os.environ.get("LEDGERMQ_BIN", "ledgermq")
READY_TIMEOUT_S = 10.0
BENCH_TIMEOUT_S = 120  # a 2 s run: connect, 2.5 s, drain <= 10 s, close <= 3 s

SCENARIO_ARGS = {
    "fan-in": ["--publishers", "3"],
    "fan-out": ["--subscribers", "3"],
    "pairs": ["--publishers", "3"],
}

REPORT_KEYS = {
    "scenario", "host", "port", "mqtt_version", "qos", "publishers", "subscribers",
    "payload_bytes", "rate_target_per_s", "inflight", "warmup_s", "duration_s",
    "client_id_prefix", "topic_prefix", "window_s", "published", "acked", "refused",
    "delivered", "expected", "losses", "duplicates", "gaps", "foreign", "published_per_s",
    "delivered_per_s", "acked_per_s", "latency_us", "ack_latency_us", "drain_complete",
    "drain_ms", "bench_cpu_percent", "broker_cpu_percent", "broker_rss_bytes",
    "broker_rss_hwm_bytes", "interrupted", "exit_code", "error",
    "topic_length", "topic_alias_max", "sub_publishes", "sub_publish_bytes", "sub_bytes_per_msg",
    "alias_set", "alias_only",
}
HIST_KEYS = {"count", "p50", "p99", "p99_9", "max", "mean"}


class Server:
    """`ledgermq serve` on a free port with its stderr drained in a thread."""

    def __init__(self, workdir):
        self.lines = []
        self.cond = threading.Condition()
        data = os.path.join(workdir, "data")
        os.makedirs(data, exist_ok=True)
        # Subscribers slower than their publishers must hold the publishers back, not lose
        # messages: the bench counts anything not delivered as a loss.
        ini = os.path.join(workdir, "ledgermq.ini")
        with open(ini, "w") as f:
            f.write("[limits]\nqueue_overflow = refuse\n")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", ini, "--mqtt", "127.0.0.1:0", "--data", data,
             "--http", "none", "--log-level", "info"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.port = self._wait_port()

    def _drain(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def _wait_port(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        seen = 0
        with self.cond:
            while time.monotonic() < deadline and self.proc.poll() is None:
                for line in self.lines[seen:]:
                    seen += 1
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(ev, dict) and ev.get("event") == "ready":
                        return int(ev["mqtt"][0].rpartition(":")[2])
                self.cond.wait(0.1)
        self.stop()
        pytest.fail("ledgermq did not log \"ready\":\n" + "\n".join(self.lines[-50:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("bench-broker")))
    yield s
    rc = s.stop()
    assert rc == 0, "ledgermq exited %s on SIGTERM:\n%s" % (rc, "\n".join(s.lines[-50:]))


def bench(args, timeout=BENCH_TIMEOUT_S):
    return subprocess.run([BIN, "bench", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def bench_json(port, args):
    proc = bench(["--port", str(port), "--json", *args])
    assert proc.stdout.count("\n") == 1, (proc.stdout, proc.stderr)
    return proc, json.loads(proc.stdout)


def assert_hist(h):
    assert set(h) == HIST_KEYS, h
    assert h["count"] > 0
    assert 0 <= h["p50"] <= h["p99"] <= h["p99_9"] <= h["max"], h


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("scenario", ["fan-in", "fan-out", "pairs"])
def test_bench_reports_deliveries_and_no_losses(server, scenario, qos):
    proc, r = bench_json(server.port, ["--scenario", scenario, "--qos", str(qos),
                                       "--duration", "2", "--warmup", "0.5",
                                       "--pid", str(server.proc.pid),
                                       *SCENARIO_ARGS[scenario]])
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stderr == ""
    assert set(r) == REPORT_KEYS, set(r) ^ REPORT_KEYS
    assert (r["scenario"], r["qos"], r["mqtt_version"]) == (scenario, qos, 5)
    assert r["exit_code"] == 0 and r["error"] is None and r["interrupted"] is False
    assert r["publishers"] == (1 if scenario == "fan-out" else 3)
    assert r["subscribers"] == (1 if scenario == "fan-in" else 3)
    assert r["window_s"] > 0
    assert r["published"] > 0
    assert r["delivered"] > 0
    assert r["delivered"] <= r["expected"]
    assert r["duplicates"] == 0 and r["foreign"] == 0
    assert_hist(r["latency_us"])
    assert r["broker_rss_bytes"] > 0 and r["broker_cpu_percent"] is not None
    if qos == 0:
        assert r["losses"] is None and r["acked_per_s"] is None and r["ack_latency_us"] is None
        assert r["acked"] == 0
    else:
        assert r["losses"] == 0, r
        assert r["drain_complete"] is True
        assert r["delivered"] == r["expected"]
        assert r["acked"] + r["refused"] == r["published"]
        fanout = 3 if scenario == "fan-out" else 1
        assert r["expected"] == r["acked"] * fanout
        assert_hist(r["ack_latency_us"])
        assert r["acked_per_s"] > 0


def test_bench_mqtt311_paced_publishes_what_it_was_asked(server):
    proc, r = bench_json(server.port, ["--mqtt-version", "4", "--qos", "1", "--rate", "500",
                                       "--duration", "2", "--warmup", "0",
                                       "--publishers", "2"])
    assert proc.returncode == 0, proc.stderr
    assert r["mqtt_version"] == 4 and r["rate_target_per_s"] == 500
    # Paced: about 500/s for 2 s (generous bounds; this is not a timing test).
    assert 200 <= r["published"] <= 1500, r
    assert r["losses"] == 0 and r["delivered"] == r["published"]


def test_bench_fill_queues_messages_for_persistent_sessions(server):
    proc, r = bench_json(server.port, ["--scenario", "fill", "--subscribers", "2",
                                       "--messages", "3000"])
    assert proc.returncode == 0, proc.stderr
    assert (r["scenario"], r["qos"], r["subscribers"]) == ("fill", 1, 2)
    assert r["published"] == 3000 and r["acked"] == 3000 and r["refused"] == 0
    assert r["delivered"] == 0 and r["latency_us"] is None
    assert r["acked_per_s"] > 0
    # The subscribers' sessions stayed and hold the backlog: one comes back and reads it.
    import mqttraw
    client_id = r["client_id_prefix"] + "-s0"
    c = mqttraw.RawClient(server.port, version=5)
    try:
        ack = c.connect(client_id, clean=False,
                        props=mqttraw.Props([("session_expiry_interval", 60)]))
        assert ack.session_present is True
        p = c.expect_publish(timeout=10)
        assert p.topic == r["topic_prefix"] + "all" and len(p.payload) == 64
    finally:
        c.close()


def test_bench_help_prints_usage(tmp_path):
    proc = bench(["--help"])
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: ledgermq bench")
    assert "--scenario" in proc.stdout and "--json" in proc.stdout


def test_bench_long_topics_with_aliases_count_fewer_bytes(server):
    """--topic-length pads the topic; with --topic-alias-max the broker sends alias-only
    PUBLISHes, which the subscriber resolves (none foreign, nothing lost) and counts."""
    common = ["--scenario", "fan-in", "--qos", "1", "--publishers", "2", "--rate", "2000",
              "--duration", "1", "--warmup", "0.2", "--topic-length", "200"]
    proc, on = bench_json(server.port, common + ["--topic-alias-max", "16"])
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    proc, off = bench_json(server.port, common)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    for r in (on, off):
        assert set(r) == REPORT_KEYS, set(r) ^ REPORT_KEYS
        assert r["topic_length"] == 200 and r["foreign"] == 0 and r["losses"] == 0, r
        assert r["sub_publishes"] == r["delivered"] > 0, r
    assert (on["topic_alias_max"], off["topic_alias_max"]) == (16, 0)
    # Plain: 1 + 2 (remaining length) + 202 (topic) + 2 (packet id) + 1 (properties) + 64.
    assert off["sub_bytes_per_msg"] == 272.0 and off["alias_only"] == off["alias_set"] == 0
    # The topic takes a free alias on its first PUBLISH; every later one is alias-only.
    assert on["alias_set"] == 1 and on["alias_only"] == on["sub_publishes"] - 1, on
    assert on["sub_bytes_per_msg"] < 80, on


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "--bogus"),
    (["stray"], "stray"),
    (["--qos", "3"], "--qos"),
    (["--qos"], "--qos needs a value"),
    (["--payload", "15"], "--payload"),
    (["--payload", "2000000"], "--payload"),
    (["--port", "0"], "--port"),
    (["--port", "65536"], "--port"),
    (["--scenario", "storm"], "--scenario"),
    (["--mqtt-version", "3"], "--mqtt-version"),
    (["--duration", "0"], "--duration"),
    (["--duration", "-1"], "--duration"),
    (["--warmup", "abc"], "--warmup"),
    (["--rate", "-5"], "--rate"),
    (["--inflight", "0"], "--inflight"),
    (["--inflight", "70000"], "--inflight"),
    (["--publishers", "0"], "--publishers"),
    (["--publishers", "20000"], "--publishers"),
    (["--clean-start", "2"], "--clean-start"),
    (["--json=1"], "--json"),
    (["--qos", "1", "--qos", "2"], "more than once"),
    (["--scenario", "fan-in", "--subscribers", "2"], "fan-in"),
    (["--scenario", "fan-out", "--publishers", "2"], "fan-out"),
    (["--scenario", "pairs", "--publishers", "2", "--subscribers", "3"], "pairs"),
    (["--scenario", "fill"], "--messages"),
    (["--scenario", "fill", "--messages", "10", "--qos", "0"], "fill"),
    (["--messages", "10"], "--messages"),
    (["--mqtt-version", "4", "--session-expiry", "10"], "--session-expiry"),
    (["--topic-length", "31"], "--topic-length"),
    (["--topic-length", "65536"], "--topic-length"),
    (["--topic-alias-max", "65536"], "--topic-alias-max"),
    (["--mqtt-version", "4", "--topic-alias-max", "5"], "--topic-alias-max"),
    (["--pid", "0"], "--pid"),
    (["--host", "no-such-host.invalid"], "--host"),
])
def test_bench_bad_flags_fail_with_one_line(args, needle):
    proc = bench(args, timeout=30)
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.startswith("ledgermq: bench: "), proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert needle in proc.stderr, proc.stderr


def test_bench_exits_2_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        proc, r = bench_json(port, ["--duration", "1"])
    assert proc.returncode == 2
    assert r["exit_code"] == 2 and "cannot connect" in r["error"]
    assert proc.stderr.startswith("ledgermq: bench: ") and proc.stderr.count("\n") == 1


# ------------------------------------------------------------------ controls
class FakeBroker:
    """A deliberately wrong MQTT 3.1.1 broker, just enough for the generator:
    acks every QoS 1 PUBLISH, forwards it to the subscriber except every
    `drop_every`-th one, and hangs up on a publisher after `hangup_after`
    messages when that is set."""

    def __init__(self, drop_every=0, hangup_after=0):
        self.drop_every = drop_every
        self.hangup_after = hangup_after
        self.lock = threading.Lock()
        self.subscriber = None
        self.count = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_packet(f):
        first = f.read(1)
        if not first:
            return None, None
        n, mult = 0, 1
        for _ in range(4):
            b = f.read(1)[0]
            n += (b & 0x7F) * mult
            mult *= 128
            if b < 0x80:
                break
        return first[0], f.read(n)

    def _forward(self, body):
        with self.lock:
            self.count += 1
            if self.drop_every and self.count % self.drop_every == 0:
                return
            if self.subscriber is not None:
                self.subscriber.sendall(bytes([0x32]) + _varint(len(body)) + body)

    def _serve(self, conn):
        f = conn.makefile("rb")
        published = 0
        try:
            while True:
                first, body = self._read_packet(f)
                if first is None or first >> 4 == 14:  # EOF or DISCONNECT
                    return
                kind = first >> 4
                if kind == 1:
                    conn.sendall(b"\x20\x02\x00\x00")
                elif kind == 8:
                    with self.lock:
                        self.subscriber = conn
                    conn.sendall(b"\x90\x03" + body[:2] + b"\x01")
                elif kind == 3:
                    topic_len = int.from_bytes(body[:2], "big")
                    pid = body[2 + topic_len:4 + topic_len]
                    published += 1
                    if self.hangup_after and published > self.hangup_after:
                        return
                    self._forward(body)
                    conn.sendall(b"\x40\x02" + pid)
                elif kind == 12:
                    conn.sendall(b"\xd0\x00")
        except OSError:
            pass
        finally:
            conn.close()


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_control_losses_are_counted_when_a_broker_drops_messages():
    fake = FakeBroker(drop_every=10)
    try:
        proc, r = bench_json(fake.port, ["--mqtt-version", "4", "--qos", "1", "--rate", "1000",
                                         "--duration", "1", "--warmup", "0",
                                         "--publishers", "2"])
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr
    assert r["acked"] == r["published"] > 100
    assert r["losses"] > 0 and r["gaps"] > 0, r
    assert r["delivered"] + r["losses"] == r["expected"]
    assert r["drain_complete"] is False  # waited (bounded) for what never came


class FakeAliasBroker(FakeBroker):
    """A deliberately wrong MQTT 5 broker that forwards with topic aliases: the first PUBLISH
    sets alias 1 to the topic and the rest are alias-only, except that every `other_every`-th
    goes alias-only through alias 2, set to another topic (mis-resolved by a client that
    ignores aliases), or, with `unset`, through alias 3, never set."""

    def __init__(self, other_every=0, unset=False):
        super().__init__()
        self.other_every = other_every
        self.unset = unset
        self.forwarded = 0

    def _forward_v5(self, topic, payload):
        with self.lock:
            self.forwarded += 1
            n = self.forwarded
            if self.subscriber is None:
                return
            pid = (n % 65535 + 1).to_bytes(2, "big")

            def send(t, alias, body=payload):
                props = b"\x03\x23" + alias.to_bytes(2, "big")
                pkt = len(t).to_bytes(2, "big") + t + pid + props + body
                self.subscriber.sendall(b"\x32" + _varint(len(pkt)) + pkt)

            if n == 1:
                send(topic, 1)
                send(b"other/topic", 2, b"")  # an empty payload: foreign, not a delivery
            elif self.unset and n == 20:
                send(b"", 3)
            elif self.other_every and n % self.other_every == 0:
                send(b"", 2)
            else:
                send(b"", 1)

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                first, body = self._read_packet(f)
                if first is None or first >> 4 == 14:
                    return
                kind = first >> 4
                if kind == 1:
                    conn.sendall(b"\x20\x03\x00\x00\x00")
                elif kind == 8:
                    with self.lock:
                        self.subscriber = conn
                    conn.sendall(b"\x90\x04" + body[:2] + b"\x00\x01")
                elif kind == 3:
                    tlen = int.from_bytes(body[:2], "big")
                    topic, pid = body[2:2 + tlen], body[2 + tlen:4 + tlen]
                    plen = body[4 + tlen]  # the bench sends no properties: one length byte
                    self._forward_v5(topic, body[5 + tlen + plen:])
                    conn.sendall(b"\x40\x02" + pid)
                elif kind == 12:
                    conn.sendall(b"\xd0\x00")
        except OSError:
            pass
        finally:
            conn.close()


def test_control_bench_resolves_topic_aliases():
    """Every 10th message comes through an alias set to another topic: the subscriber must
    count it foreign (and so lost), not delivered."""
    fake = FakeAliasBroker(other_every=10)
    try:
        proc, r = bench_json(fake.port, ["--qos", "1", "--rate", "1000", "--duration", "1",
                                         "--warmup", "0", "--publishers", "1",
                                         "--topic-alias-max", "4"])
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr
    assert r["alias_set"] == 2 and r["alias_only"] == r["published"] - 1, r
    assert r["foreign"] == 1 + r["published"] // 10, r
    assert r["delivered"] == r["published"] - r["published"] // 10, r
    assert r["losses"] == r["published"] // 10, r


def test_control_exit_2_on_an_alias_never_set():
    fake = FakeAliasBroker(unset=True)
    try:
        proc, r = bench_json(fake.port, ["--qos", "1", "--rate", "1000", "--duration", "1",
                                         "--warmup", "0", "--publishers", "1",
                                         "--topic-alias-max", "4"])
    finally:
        fake.close()
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "alias-only PUBLISH for topic alias 3, never set" in r["error"], r


def test_control_exit_2_when_the_broker_hangs_up():
    fake = FakeBroker(hangup_after=50)
    try:
        proc, r = bench_json(fake.port, ["--mqtt-version", "4", "--qos", "1", "--rate", "1000",
                                         "--duration", "2", "--warmup", "0"])
    finally:
        fake.close()
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert r["exit_code"] == 2 and "closed by the broker" in r["error"], r
    assert proc.stderr.startswith("ledgermq: bench: ")
