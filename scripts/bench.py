#!/usr/bin/python3
"""`make bench`: LedgerMQ against the brokers users would pick instead, in one run.

    scripts/bench.py [--ledgermq build/ledgermq] [--out docs/BENCHMARKS.md] [--raw FILE]

Brokers: LedgerMQ --sync always, LedgerMQ --sync off, Debian's mosquitto and Debian's
nats-server (MQTT listener, JetStream file store). The transports part (idle memory per
connection over TCP, WebSocket, TLS and WebSocket over TLS; TLS handshakes/s with
`openssl s_time`) runs LedgerMQ --sync always and mosquitto only (nats-server 2.9 has no MQTT
over WebSocket). Each run starts its broker fresh, on free 127.0.0.1 ports, with a fresh data
directory, drives it with `ledgermq bench --json` (or the transports driver) and stops it.
Rounds alternate the brokers (the order rotates every round); the tables give medians.

Environment:
    BENCH_ROUNDS=3             rounds of the throughput/latency/idle/transports scenarios
    BENCH_QUICK=1              smoke check: 1 round, 2 s runs, 100k-message restart, 1,000 idle
                               connections; writes build/BENCHMARKS-quick.md unless BENCH_OUT
    BENCH_DURATION_S=5         measured seconds per run (after the warm-up)
    BENCH_WARMUP_S=1
    BENCH_FILL_MESSAGES=1000000
    BENCH_IDLE_CONNECTIONS=10000
    BENCH_TRANSPORT_CONNECTIONS=10000   idle connections per transport (quick: 1,000)
    BENCH_TLS_TIME_S=10        seconds per `openssl s_time` run (quick: 2)
    BENCH_BROKERS=ledgermq-always,ledgermq-off,mosquitto,nats   (a subset to run)
    BENCH_SCENARIOS=...        a subset of the parts to run, comma-separated: the scenario keys
                               (qos1-fan-in, qos0-fan-in, qos0-fan-out, qos2-pairs,
                               qos1-latency), long-topics, idle, restart, transports; e.g.
                               BENCH_SCENARIOS=transports. The
                               parts left out are "—" in the report, which goes to
                               build/BENCHMARKS-partial.md unless BENCH_OUT
    BENCH_OUT, BENCH_RAW       where the markdown and the raw JSON results go
    BENCH_BEFORE=PATH          an earlier ledgermq binary (e.g. built from an older commit):
                               it runs the 3.1.1 in-flight scenarios too (--sync always), as
                               "LedgerMQ before", so one report shows before and after

Every step has a time limit; every broker this script starts is killed (by pid) on exit.
Python standard library only (Debian's /usr/bin/python3).
"""

import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import bench_transports  # scripts/bench_transports.py: the idle-connection driver
import benchdoc  # scripts/benchdoc.py: the blocks other benchmarks keep in the page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if QUICK else "3"))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "2" if QUICK else "5"))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "0.5" if QUICK else "1"))
FILL_MESSAGES = int(os.environ.get("BENCH_FILL_MESSAGES", "100000" if QUICK else "1000000"))
IDLE_CONNECTIONS = int(os.environ.get("BENCH_IDLE_CONNECTIONS", "1000" if QUICK else "10000"))
TRANSPORT_CONNECTIONS = int(os.environ.get("BENCH_TRANSPORT_CONNECTIONS", str(IDLE_CONNECTIONS)))
TLS_TIME_S = int(os.environ.get("BENCH_TLS_TIME_S", "2" if QUICK else "10"))
MQTT_VERSION = "4"  # nats-server 2.9 speaks MQTT 3.1.1 only; every broker gets the same protocol

READY_TIMEOUT_S = 120   # start-up, including a restart that recovers a large backlog
STOP_TIMEOUT_S = 60     # SIGTERM: mosquitto writes its whole database at shutdown
BENCH_OVERHEAD_S = 75   # bench setup (30 s max) + drain (10 s) + close (3 s) + margin
FILL_LIMIT_S = 600      # 1M QoS 1 messages: seconds at every broker measured so far
PROBE_TIMEOUT_S = 2.0

BEFORE_BIN = os.environ.get("BENCH_BEFORE", "")
BROKERS = ["ledgermq-always", "ledgermq-off", "mosquitto", "nats"] + (
    ["ledgermq-before"] if BEFORE_BIN else [])
LABEL = {
    "ledgermq-before": "LedgerMQ before",
    "ledgermq-always": "LedgerMQ always",
    "ledgermq-off": "LedgerMQ off",
    "mosquitto": "mosquitto",
    "nats": "nats-server",
}
PEERS = ["mosquitto", "nats"]
OURS = ["ledgermq-always", "ledgermq-off"]

# The throughput and latency scenarios: `ledgermq bench` arguments (besides port, pid, time).
# QoS 1/2 subscribers have persistent sessions (clean session 0): a broker must keep what it
# acknowledged for them, so LedgerMQ writes (and, with --sync always, fsyncs) every message.
SCENARIOS = [
    {
        "key": "qos1-fan-in",
        "title": "QoS 1 fan-in 4→1, 64 B, persistent subscriber",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                 "--clean-start", "0"],
        "inflight": True,  # also the 64-in-flight reference of the persistent rows below
    },
    {
        "key": "qos0-fan-in",
        "title": "QoS 0 fan-in 4→1, 64 B",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "0", "--payload", "64"],
    },
    {
        "key": "qos0-fan-out",
        "title": "QoS 0 fan-out 1→100, 64 B",
        "args": ["--scenario", "fan-out", "--subscribers", "100", "--qos", "0", "--payload", "64"],
    },
    {
        "key": "qos2-pairs",
        "title": "QoS 2 pairs 4→4, 64 B, persistent subscribers",
        "args": ["--scenario", "pairs", "--publishers", "4", "--qos", "2", "--payload", "64",
                 "--clean-start", "0"],
    },
    # 3.1.1 has no Receive Maximum: publishers (MQTT.js, device SDKs) may keep more QoS 1
    # messages in flight than the broker's window (max_inflight 64 for LedgerMQ, mosquitto's
    # max_inflight_messages 64 limits only what it sends). "inflight": True marks the scenarios
    # BENCH_BEFORE's binary runs too.
    {
        "key": "qos1-inflight64-clean",
        "title": "QoS 1 fan-in 4→1, 64 B, clean subscriber, 64 in flight per publisher",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                 "--inflight", "64"],
        "inflight": True,
    },
    {
        "key": "qos1-inflight100-clean",
        "title": "QoS 1 fan-in 4→1, 64 B, clean subscriber, 100 in flight per publisher",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                 "--inflight", "100"],
        "inflight": True,
    },
    {
        "key": "qos1-inflight1000-clean",
        "title": "QoS 1 fan-in 4→1, 64 B, clean subscriber, 1,000 in flight per publisher",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                 "--inflight", "1000"],
        "inflight": True,
    },
    {
        "key": "qos1-inflight100",
        "title": "QoS 1 fan-in 4→1, 64 B, persistent subscriber, 100 in flight per publisher",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                 "--clean-start", "0", "--inflight", "100"],
        "inflight": True,
    },
    {
        "key": "qos1-inflight1000",
        "title": "QoS 1 fan-in 4→1, 64 B, persistent subscriber, 1,000 in flight per publisher",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                 "--clean-start", "0", "--inflight", "1000"],
        "inflight": True,
    },
    {
        "key": "qos1-latency",
        "title": "QoS 1 fan-in 4→1 at 10,000 msg/s, 64 B, persistent subscriber",
        "args": ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                 "--clean-start", "0", "--rate", "10000"],
    },
]
IDLE_KEY = "idle"
RESTART_KEY = "restart"
TRANSPORTS_KEY = "transports"
# Long topic names (docs/PROTOCOL.md, "Topic aliases towards clients"): MQTT 5, QoS 1 fan-in
# with 200-byte topics, the subscriber offering topic aliases; LedgerMQ with its outbound
# aliases on (the default) and off ([limits] max_topic_alias_out = 0), and mosquitto, which
# sends none. What is compared: the subscriber's bytes per message.
LONG_TOPICS_KEY = "long-topics"
LONG_TOPICS_TITLE = "QoS 1 fan-in 4→1, MQTT 5, 200-byte topic, 64 B, persistent subscriber"
LONG_TOPICS_ARGS = ["--scenario", "fan-in", "--publishers", "4", "--qos", "1", "--payload", "64",
                    "--clean-start", "0", "--session-expiry", "300", "--topic-length", "200",
                    "--topic-alias-max", "65535"]
# (column, broker, INI lines for LedgerMQ, label)
LONG_TOPICS_RUNS = [
    ("ledgermq-aliases", "ledgermq-always", "", "LedgerMQ always, aliases on (default)"),
    ("ledgermq-no-aliases", "ledgermq-always", "max_topic_alias_out = 0\n",
     "LedgerMQ always, aliases off"),
    ("mosquitto", "mosquitto", "", "mosquitto (sends no aliases)"),
]
PARTS = [sc["key"] for sc in SCENARIOS] + [LONG_TOPICS_KEY, IDLE_KEY, RESTART_KEY,
                                            TRANSPORTS_KEY]
# The transports part: which brokers (both have WebSocket and TLS listeners), which transports.
TRANSPORT_BROKERS = ["ledgermq-always", "mosquitto"]
TRANSPORTS = [("tcp", "TCP"), ("ws", "WebSocket"), ("tls", "TLS"), ("wss", "WebSocket over TLS")]
# `openssl s_time` modes: fresh full handshakes (the default protocol, TLS 1.3), and resumed
# sessions. Resumption is TLS 1.2: s_time never reads after the handshake, so it never sees the
# TLS 1.3 session tickets that arrive then and could not resume a TLS 1.3 session.
TLS_MODES = [("new", "full handshake, TLS 1.3", ["-new"]),
             ("reuse", "resumed session, TLS 1.2", ["-reuse", "-tls1_2"])]
# BENCH_SCENARIOS: the parts to run (all by default).
WANTED_PARTS = [p for p in os.environ.get("BENCH_SCENARIOS", "").split(",") if p] or PARTS
PARTIAL = WANTED_PARTS != PARTS

LIVE = {}  # pid -> Popen of every broker we started and have not reaped


def log(msg):
    print("bench: " + msg, flush=True)


def fail(msg):
    raise SystemExit("bench: " + msg)


# ------------------------------------------------------------------------------------------
# Processes, ports, probes


def cleanup():
    for pid, proc in list(LIVE.items()):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        LIVE.pop(pid, None)


def on_signal(signum, _frame):
    raise SystemExit("bench: interrupted by signal %d" % signum)


def free_port():
    """A port the kernel just handed out (and we released): free unless someone races us."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mqtt_connect(port, timeout_s=PROBE_TIMEOUT_S, client_id=b"lmqb-probe"):
    """Connects with MQTT 3.1.1 (clean session); returns the socket after CONNACK 0, else None."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    except OSError:
        return None
    try:
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
        s.sendall(bytes([0x10, len(body)]) + body)
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                break
            ack += chunk
        if len(ack) == 4 and ack[0] == 0x20 and ack[3] == 0:
            return s
    except OSError:
        pass
    s.close()
    return None


def wait_connack(port, proc, deadline):
    """Polls until the broker answers CONNECT with CONNACK 0; seconds from now or fail."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        s = mqtt_connect(port)
        if s is not None:
            s.close()
            return True
        time.sleep(0.01)
    return False


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("closed")
        buf += chunk
    return buf


def read_packet(s):
    """One MQTT packet: (first byte, body)."""
    first = read_exact(s, 1)[0]
    length, mult = 0, 1
    for _ in range(4):
        b = read_exact(s, 1)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, read_exact(s, length)


def mosquitto_stored_count(port):
    """mosquitto's $SYS/broker/store/messages/count (retained, so it arrives on subscribe)."""
    s = mqtt_connect(port, timeout_s=10, client_id=b"lmqb-sys-probe")
    if s is None:
        return None
    try:
        topic = b"$SYS/broker/store/messages/count"
        body = b"\x00\x01" + len(topic).to_bytes(2, "big") + topic + b"\x00"
        s.sendall(bytes([0x82, len(body)]) + body)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            first, body = read_packet(s)
            if first >> 4 == 3:
                tlen = int.from_bytes(body[:2], "big")
                if body[2:2 + tlen] == topic:
                    off = 2 + tlen + (2 if (first >> 1) & 3 else 0)
                    return int(body[off:].decode())
    except (OSError, ValueError):
        return None
    finally:
        s.close()
    return None


def proc_rss_bytes(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def proc_threads_cpu_s(pid):
    """{tid: cpu seconds} of every thread of pid."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return out


def machine_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


def sh(cmd):
    """Output of a read-only shell command, or '' if it fails."""
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ------------------------------------------------------------------------------------------
# Brokers


class Broker:
    """One broker process on a data directory. start() blocks until it accepts MQTT."""

    name = ""

    def __init__(self, workdir, tag, extra=None):
        self.dir = os.path.join(workdir, tag)
        self.data = os.path.join(self.dir, "data")
        self.extra = extra or {}
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "broker.log")
        self.ready_s = None
        self.tls_dir = None  # with server.pem/server.key: also TLS, WebSocket, WSS listeners
        self.ports = {}      # transport (tcp, ws, tls, wss) -> port, once started
        os.makedirs(self.data, exist_ok=True)

    @property
    def pid(self):
        return self.proc.pid

    def spawn(self, argv):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     cwd=self.dir)
        logf.close()
        LIVE[self.proc.pid] = self.proc

    def start(self):
        t0 = time.monotonic()
        self._start(t0 + READY_TIMEOUT_S)
        self.ready_s = time.monotonic() - t0
        return self

    def stop(self, sig=signal.SIGTERM):
        """Sends sig, waits (bounded); returns seconds to exit."""
        if self.proc is None:
            return 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log("%s did not stop within %d s (killed)" % (self.name, STOP_TIMEOUT_S))
                self.proc.kill()
                self.proc.wait(timeout=10)
        LIVE.pop(self.proc.pid, None)
        self.proc = None
        return time.monotonic() - t0

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def died(self, what):
        tail = "\n".join(self.log_text().splitlines()[-15:])
        fail("%s %s; log tail:\n%s" % (self.name, what, tail))


class LedgerMQ(Broker):
    def __init__(self, workdir, tag, binary, sync, ini_extra="", tls_dir=None, before=False):
        super().__init__(workdir, tag)
        self.tls_dir = tls_dir
        self.binary = binary
        self.sync = sync
        self.name = "ledgermq-" + sync
        self.ini = os.path.join(self.dir, "ledgermq.ini")
        # The broker refuses a configuration its open-file limit can't serve (docs/SECURITY.md,
        # "Memory and descriptors"): MQTT gets the idle test's connections and some room, each
        # HTTP(S) listener (WebSocket upgrades arrive there) half of what is left.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        mqtt_max = max(IDLE_CONNECTIONS, TRANSPORT_CONNECTIONS) + 1000
        http_max = max(64, min(20000, (hard - mqtt_max - 400) // 2))
        with open(self.ini, "w") as f:
            # max_connections: the default (10000) leaves no room for the idle test's extra
            # connections, all from 127.0.0.1 (hence the per-address limits). queue_overflow
            # = refuse: a subscriber slower than its publishers holds them back instead of
            # losing messages (the default drop_oldest would count as losses). Everything
            # else is the default, except what the fill test adds. (BENCH_BEFORE's binary
            # predates queue_overflow: it always refused.)
            f.write("[limits]\n" + ("" if before else "queue_overflow = refuse\n") +
                    "max_connections = %d\nmax_connections_per_address = %d\n"
                    "max_connection_rate_per_address = 100000\n"
                    # WebSocket upgrades arrive on the HTTP listeners, all from 127.0.0.1
                    "http_max_connections = %d\nhttp_max_connections_per_address = %d\n"
                    "http_max_handshakes_per_address = %d\n" % (
                        mqtt_max, mqtt_max, http_max, http_max, http_max) + ini_extra)

    def _events(self, event):
        out = []
        for line in self.log_text().splitlines():
            if ('"event":"%s"' % event) in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def last_event(self, event):
        ev = self._events(event)
        return ev[-1] if ev else None

    def _start(self, deadline):
        seen = len(self._events("ready"))
        argv = [self.binary, "serve", "--config", self.ini, "--mqtt", "127.0.0.1:0",
                "--data", self.data, "--sync", self.sync, "--log-level", "info"]
        if self.tls_dir:
            argv += ["--mqtts", "127.0.0.1:0", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0",
                     "--tls-cert", os.path.join(self.tls_dir, "server.pem"),
                     "--tls-key", os.path.join(self.tls_dir, "server.key")]
        else:
            argv += ["--http", "none"]  # serve's default HTTP listener is not measured
        self.spawn(argv)
        while time.monotonic() < deadline:
            ready = self._events("ready")
            if len(ready) > seen:
                self.port = int(ready[-1]["mqtt"][0].rsplit(":", 1)[1])
                for t, key in (("tcp", "mqtt"), ("tls", "mqtts"), ("ws", "http"),
                               ("wss", "https")):
                    if ready[-1].get(key):
                        self.ports[t] = int(ready[-1][key][0].rsplit(":", 1)[1])
                if not wait_connack(self.port, self.proc, deadline):
                    self.died("did not answer CONNECT")
                return
            if self.proc.poll() is not None:
                self.died("exited before it was ready")
            time.sleep(0.005)
        self.died("was not ready within %d s" % READY_TIMEOUT_S)

    def stored_count(self):
        ev = self.last_event("recovered")
        return ev.get("queued_messages") if ev else None


class Mosquitto(Broker):
    name = "mosquitto"

    def _start(self, deadline):
        if self.port is None:
            self.port = free_port()
            self.ports = {"tcp": self.port}
            if self.tls_dir:
                self.ports.update(ws=free_port(), tls=free_port(), wss=free_port())
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "listener %d 127.0.0.1" % self.port,
                "allow_anonymous true",
                "persistence true",
                "persistence_location %s/" % self.data,
                # Large enough for the 1M-message restart test: beyond it mosquitto drops QoS 1/2
                # messages for a session without telling the publisher.
                "max_queued_messages 2000000",
                "max_inflight_messages 64",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                # Run as the invoking user: as root, mosquitto would switch to the `mosquitto`
                # user, which cannot write our temporary data directory.
                "user %s" % pwd_name(),
                "",
            ] + self._tls_listeners()))
        self.spawn(["mosquitto", "-c", conf])
        if not wait_connack(self.port, self.proc, deadline):
            self.died("did not accept MQTT connections")

    def _tls_listeners(self):
        """WebSocket, TLS and WebSocket-over-TLS listeners (Debian's build has libwebsockets;
        a websockets-only mosquitto 2.0.11 refuses to start, hence also the plain listener)."""
        if not self.tls_dir:
            return []
        cert = ["certfile %s" % os.path.join(self.tls_dir, "server.pem"),
                "keyfile %s" % os.path.join(self.tls_dir, "server.key")]
        return (["listener %d 127.0.0.1" % self.ports["ws"], "protocol websockets",
                 "listener %d 127.0.0.1" % self.ports["tls"]] + cert +
                ["listener %d 127.0.0.1" % self.ports["wss"], "protocol websockets"] + cert + [""])

    def stored_count(self):
        return mosquitto_stored_count(self.port)


class Nats(Broker):
    name = "nats"

    def _start(self, deadline):
        if self.port is None:
            self.port, self.client_port, self.http_port = free_port(), free_port(), free_port()
        conf = os.path.join(self.dir, "nats.conf")
        with open(conf, "w") as f:
            f.write(
                "server_name: lmqbench\n"
                "listen: 127.0.0.1:%d\n"
                "http: 127.0.0.1:%d\n"
                "jetstream { store_dir: \"%s\" }\n"
                "mqtt { listen: 127.0.0.1:%d }\n" % (self.client_port, self.http_port,
                                                      self.data, self.port))
        self.spawn(["nats-server", "-c", conf])
        if not wait_connack(self.port, self.proc, deadline):
            self.died("did not accept MQTT connections")

    def stored_count(self):
        """Messages in JetStream's $MQTT_msgs stream (monitoring endpoint /jsz)."""
        url = "http://127.0.0.1:%d/jsz?streams=true" % self.http_port
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                jsz = json.load(r)
        except (OSError, ValueError):
            return None
        for acc in jsz.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") == "$MQTT_msgs":
                    return st.get("state", {}).get("messages")
        return None


def pwd_name():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def make_broker(name, workdir, tag, binary, fill=False, tls_dir=None, ini_extra=""):
    if name == "ledgermq-before":
        b = LedgerMQ(workdir, tag, os.path.abspath(BEFORE_BIN), "always", ini_extra, tls_dir,
                     before=True)
        b.name = name
        return b
    if name.startswith("ledgermq-"):
        extra = ini_extra
        if fill:  # room for the whole backlog in one session
            extra += "max_queued_messages = %d\nmax_queued_bytes = 4000000000\n" % (
                2 * FILL_MESSAGES)
        return LedgerMQ(workdir, tag, binary, name.split("-", 1)[1], extra, tls_dir)
    if name == "mosquitto":
        m = Mosquitto(workdir, tag)
        m.tls_dir = tls_dir
        return m
    if name == "nats":
        return Nats(workdir, tag)
    fail("unknown broker " + name)
    return None


# ------------------------------------------------------------------------------------------
# Running `ledgermq bench`


def run_bench(binary, broker, args, limit_s, version=MQTT_VERSION):
    """Runs `ledgermq bench --json` against broker; returns its report plus CPU figures."""
    argv = [binary, "bench", "--port", str(broker.port), "--mqtt-version", version,
            "--pid", str(broker.pid), "--json"] + args
    threads0 = proc_threads_cpu_s(broker.pid)
    m0 = machine_cpu()
    t0 = time.monotonic()
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=limit_s)
        out, err, rc = cp.stdout, cp.stderr, cp.returncode
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        out, err, rc = "", "timed out after %d s" % limit_s, -1
    wall = time.monotonic() - t0
    m1 = machine_cpu()
    threads1 = proc_threads_cpu_s(broker.pid)
    rep = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rep = json.loads(line)
            except ValueError:
                pass
    if rep is None:
        rep = {"error": (err.strip().splitlines() or ["no report"])[-1]}
    rep["exit_code"] = rc
    if rc != 0 and not rep.get("error"):
        rep["error"] = (err.strip().splitlines() or ["exit %d" % rc])[-1]
    # Per-thread CPU of the broker over the whole bench (set-up and drain included).
    per_thread = sorted(((threads1.get(t, 0) - threads0.get(t, 0)) / wall * 100.0
                         for t in threads1), reverse=True)
    rep["broker_busiest_thread_percent"] = round(per_thread[0], 1) if per_thread else None
    rep["broker_threads"] = len(threads1)
    if broker.name.startswith("ledgermq") and broker.pid in threads1:
        rep["ledgermq_network_thread_percent"] = round(
            (threads1[broker.pid] - threads0.get(broker.pid, 0)) / wall * 100.0, 1)
        rep["ledgermq_other_threads_percent"] = round(sum(
            threads1[t] - threads0.get(t, 0) for t in threads1 if t != broker.pid)
            / wall * 100.0, 1)
    # Everything else on the machine: busy CPU minus the broker and the bench (% of one core).
    busy = (m1[0] - m0[0]) / max(1, (m1[1] - m0[1])) * os.cpu_count() * 100.0
    broker_all = sum(threads1.get(t, 0) - threads0.get(t, 0) for t in threads1) / wall * 100
    rep["machine_busy_percent"] = round(busy, 1)
    rep["bench_wall_s"] = round(wall, 2)
    rep["other_cpu_percent_est"] = round(
        max(0.0, busy - broker_all - (rep.get("bench_cpu_percent") or 0)), 1)
    return rep


def run_scenario(binary, workdir, broker_name, sc, rnd):
    tag = "r%d-%s-%s" % (rnd, sc["key"], broker_name)
    b = make_broker(broker_name, workdir, tag, binary).start()
    try:
        args = sc["args"] + ["--duration", str(DURATION_S), "--warmup", str(WARMUP_S)]
        rep = run_bench(binary, b, args, int(DURATION_S + WARMUP_S + BENCH_OVERHEAD_S))
    finally:
        b.stop()
    if isinstance(b, LedgerMQ):
        st = b.last_event("store_stats")
        if st:
            rep["store_stats"] = {k: st.get(k) for k in ("commits", "messages_in",
                                                          "commit_us_p50", "commit_us_p99")}
    shutil.rmtree(b.dir, ignore_errors=True)
    return rep


def run_long_topics(binary, workdir, col, broker_name, ini_extra, rnd):
    """One long-topics run (LONG_TOPICS_RUNS): the bench report, with the subscriber's bytes."""
    tag = "r%d-%s-%s" % (rnd, LONG_TOPICS_KEY, col)
    b = make_broker(broker_name, workdir, tag, binary, ini_extra=ini_extra).start()
    try:
        args = LONG_TOPICS_ARGS + ["--duration", str(DURATION_S), "--warmup", str(WARMUP_S)]
        rep = run_bench(binary, b, args, int(DURATION_S + WARMUP_S + BENCH_OVERHEAD_S),
                        version="5")
    finally:
        b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)
    return rep


def long_topics_report(long_topics):
    """The "Long topic names" section ([] when the part did not run)."""
    cols = [(col, label) for col, _b, _x, label in LONG_TOPICS_RUNS if long_topics.get(col)]
    if not cols:
        return []
    L = ["## Long topic names: bytes per message at the subscriber", ""]
    L.append("%s: `ledgermq bench %s`. The subscriber connects with Topic Alias Maximum 65535 "
             "and resolves the aliases it gets (an alias-only PUBLISH for an alias never set "
             "fails the run; one that resolves to another topic is counted foreign). Bytes "
             "per message = the PUBLISH packets the subscriber received (fixed header "
             "included) / their count; a plain PUBLISH here is 272 "
             "bytes (200-byte topic, packet id, property length, 64 B payload). LedgerMQ "
             "gives the topic a free alias on its first PUBLISH to the subscriber and sends "
             "alias-only PUBLISHes after that; with `max_topic_alias_out = 0` it sends the "
             "topic every time, as mosquitto does." % (
                 LONG_TOPICS_TITLE, " ".join(LONG_TOPICS_ARGS)))
    L.append("")
    L.append("| broker | subscriber bytes/msg | alias-only PUBLISHes | messages/s delivered | "
             "p50 / p99 ms |")
    L.append("| --- | --- | --- | --- | --- |")
    for col, label in cols:
        runs = long_topics[col]
        good = ok_runs(runs)
        if not good:
            L.append("| %s | failed: %s | — | — | — |" % (label, err_of(runs)))
            continue
        bpm = med([r.get("sub_bytes_per_msg") for r in good])
        share = med([100.0 * r["alias_only"] / r["sub_publishes"] for r in good
                     if r.get("sub_publishes")])
        L.append("| %s | %s | %s | %s | %s / %s |" % (
            label, "%.1f" % bpm if bpm is not None else "—",
            "%.1f%%" % share if share is not None else "—", fmt_rate(cell_rate(runs)),
            fmt_ms(lat_ms(runs, "p50")), fmt_ms(lat_ms(runs, "p99"))))
    L.append("")
    return L


def run_idle(binary, workdir, broker_name, rnd):
    """IDLE_CONNECTIONS connections (1 publisher at 1 msg/s + subscribers): RSS per connection."""
    tag = "r%d-idle-%s" % (rnd, broker_name)
    b = make_broker(broker_name, workdir, tag, binary).start()
    try:
        time.sleep(1.0)  # let start-up allocation settle
        before = proc_rss_bytes(b.pid)
        args = ["--scenario", "fan-out", "--subscribers", str(IDLE_CONNECTIONS - 1), "--qos", "0",
                "--payload", "64", "--rate", "1", "--duration", "3", "--warmup", "1"]
        rep = run_bench(binary, b, args, 4 + BENCH_OVERHEAD_S + 60)
    finally:
        b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)
    rep["rss_before_bytes"] = before
    rep["connections"] = IDLE_CONNECTIONS
    if rep.get("broker_rss_bytes") and before and not rep.get("error"):
        rep["rss_per_connection_bytes"] = (rep["broker_rss_bytes"] - before) / IDLE_CONNECTIONS
    return rep


def run_transports(binary, workdir, brokers):
    """The transports part, ROUNDS rounds (brokers alternating): {"idle": {broker: {transport:
    [runs]}}, "tls": {broker: [{mode: run}]}}; empty when not wanted."""
    out = {"idle": {}, "tls": {}}
    cols = [b for b in TRANSPORT_BROKERS if b in brokers]
    if TRANSPORTS_KEY not in WANTED_PARTS or not cols:
        return out
    certs = make_certs(workdir)
    if certs is None:
        return out
    for rnd in range(ROUNDS):
        order = cols[rnd % len(cols):] + cols[:rnd % len(cols)]
        for b in order:
            for t, _title in TRANSPORTS:
                rep = run_transport_idle(binary, workdir, b, t, rnd, certs)
                out["idle"].setdefault(b, {}).setdefault(t, []).append(rep)
                per = rep.get("rss_per_connection_bytes")
                log("round %d %-13s %-16s %s" % (
                    rnd + 1, "idle-" + t, b, "%.1f KiB/conn (rss %s → %s), set-up %s conn/s" % (
                        per / 1024, mib(rep.get("rss_before_bytes")),
                        mib(rep.get("rss_with_bytes")), fmt_rate(rep.get("setup_per_s")))
                    if per is not None else "failed: %s" % rep.get("error")))
        for b in order:
            res = run_tls_handshakes(binary, workdir, b, rnd, certs)
            out["tls"].setdefault(b, []).append(res)
            for mode, _title, _args in TLS_MODES:
                r = res.get(mode) or {}
                log("round %d %-13s %-16s %s" % (
                    rnd + 1, "tls-" + mode, b, "failed: %s" % r.get("error") if r.get("error")
                    else "%s handshakes/s (broker cpu %s, s_time cpu %s, %s resumed)" % (
                        fmt_rate(r.get("per_s")), pct(r.get("broker_cpu_percent")),
                        pct(r.get("s_time_cpu_percent")), fmt_count(r.get("resumed")))))
    return out


def run_restart(binary, workdir, broker_name, crash):
    """Fill FILL_MESSAGES QoS 1 messages for one offline persistent session, stop (SIGTERM, or
    SIGKILL when crash), start again: time to the first CONNACK, what it still holds, its RSS."""
    tag = "restart-%s-%s" % ("kill9" if crash else "term", broker_name)
    b = make_broker(broker_name, workdir, tag, binary, fill=True).start()
    res = {"messages": FILL_MESSAGES, "crash": crash}
    try:
        fill = run_bench(binary, b, ["--scenario", "fill", "--publishers", "4", "--payload", "64",
                                     "--messages", str(FILL_MESSAGES), "--duration",
                                     str(FILL_LIMIT_S)], FILL_LIMIT_S + BENCH_OVERHEAD_S)
        res["fill"] = {k: fill.get(k) for k in ("acked", "acked_per_s", "error", "window_s",
                                                "broker_cpu_percent", "broker_rss_bytes")}
        res["rss_full_bytes"] = fill.get("broker_rss_bytes")
        res["stop_s"] = round(b.stop(signal.SIGKILL if crash else signal.SIGTERM), 3)
        res["data_bytes"] = dir_bytes(b.data)
        b.start()
        res["ready_s"] = round(b.ready_s, 3)
        res["stored_after"] = b.stored_count()
        res["rss_after_bytes"] = proc_rss_bytes(b.pid)
        if isinstance(b, LedgerMQ):
            ev = b.last_event("recovered")
            res["recovery_ms"] = ev.get("recovery_ms") if ev else None
    finally:
        b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)
    return res


# ------------------------------------------------------------------------------------------
# Transports: idle memory per connection over TCP / WebSocket / TLS / WSS, TLS handshakes/s


def make_certs(workdir):
    """Test certificates (ECDSA P-256, tests/tls/make-certs.sh) in workdir/certs, or None."""
    out = os.path.join(workdir, "certs")
    try:
        subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make-certs.sh"), out],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        log("cannot make TLS certificates (%s): transports part left out" % e)
        return None
    return out


def run_transport_idle(binary, workdir, broker_name, transport, rnd, certs):
    """TRANSPORT_CONNECTIONS idle connections over transport on a fresh broker: its RSS."""
    tag = "r%d-idle-%s-%s" % (rnd, transport, broker_name)
    b = make_broker(broker_name, workdir, tag, binary, tls_dir=certs).start()
    rep = {"transport": transport, "connections": TRANSPORT_CONNECTIONS}
    try:
        time.sleep(1.0)  # let start-up allocation settle, as in the idle part
        rep["rss_before_bytes"] = proc_rss_bytes(b.pid)
        cpu0 = sum(proc_threads_cpu_s(b.pid).values())
        res = bench_transports.open_idle(transport, b.ports[transport], TRANSPORT_CONNECTIONS,
                                         cafile=os.path.join(certs, "ca.pem"))
        cpu1 = sum(proc_threads_cpu_s(b.pid).values())
        try:
            time.sleep(1.0)  # idle: nothing is sent either way
            rep["rss_with_bytes"] = proc_rss_bytes(b.pid)
            alive = b.proc.poll() is None
        finally:
            bench_transports.close_all(res["socks"])
    finally:
        b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)
    rep.update(connected=res["connected"], failed=res["failed"], setup_s=res["setup_s"],
               broker_setup_cpu_s=round(cpu1 - cpu0, 3))
    if res["setup_s"] > 0:
        rep["setup_per_s"] = round(res["connected"] / res["setup_s"], 1)
    if not alive:
        rep["error"] = "broker exited while holding the connections"
    elif res["connected"] < TRANSPORT_CONNECTIONS:
        rep["error"] = "%d of %d connected; failures: %s" % (
            res["connected"], TRANSPORT_CONNECTIONS,
            ", ".join("%s ×%d" % kv for kv in sorted(res["failed"].items())))
    elif rep["rss_before_bytes"] and rep["rss_with_bytes"]:
        rep["rss_per_connection_bytes"] = (
            rep["rss_with_bytes"] - rep["rss_before_bytes"]) / TRANSPORT_CONNECTIONS
    return rep


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def s_time_counts(text):
    """(connections, new, resumed) from s_time's output: the "N connections in X.XXs;" line and
    its progress marks ('*' a full handshake, 'r' a resumed session)."""
    conns = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] == "connections" and parts[3].endswith("s;"):
            conns = int(parts[0])
    marks = "".join(line.strip() for line in text.splitlines()
                    if line.strip() and set(line.strip()) <= set("*r"))
    return conns, marks.count("*"), marks.count("r")


def tls_cipher(port):
    """'TLSv1.3, TLS_AES_256_GCM_SHA384' as `openssl s_client` negotiates it, or None."""
    try:
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port],
                             input="", capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if line.startswith("New, "):
            return line[5:].replace("Cipher is ", "").strip()
    return None


def run_tls_handshakes(binary, workdir, broker_name, rnd, certs):
    """`openssl s_time` for TLS_TIME_S per mode against a fresh broker's TLS listener:
    handshakes/s (wall clock), the broker's and s_time's CPU over the same run."""
    tag = "r%d-tls-%s" % (rnd, broker_name)
    b = make_broker(broker_name, workdir, tag, binary, tls_dir=certs).start()
    out = {}
    try:
        port = b.ports["tls"]
        out["cipher"] = tls_cipher(port)
        for mode, _title, args in TLS_MODES:
            argv = ["openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-time",
                    str(TLS_TIME_S)] + args
            rep = {"argv": " ".join(argv[:3] + ["127.0.0.1:PORT"] + argv[4:])}
            srv0, cli0, t0 = sum(proc_threads_cpu_s(b.pid).values()), children_cpu_s(), \
                time.monotonic()
            try:
                cp = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                    timeout=TLS_TIME_S + 60)
                text, rc = cp.stdout + cp.stderr, cp.returncode
            except subprocess.TimeoutExpired:
                text, rc = "", -1
            wall = time.monotonic() - t0
            srv = sum(proc_threads_cpu_s(b.pid).values()) - srv0
            cli = children_cpu_s() - cli0
            conns, full, resumed = s_time_counts(text)
            rep.update(exit_code=rc, wall_s=round(wall, 3), connections=conns, full=full,
                       resumed=resumed, broker_cpu_s=round(srv, 3), s_time_cpu_s=round(cli, 3))
            if rc != 0 or not conns:
                rep["error"] = "s_time exit %d: %s" % (
                    rc, (text.strip().splitlines() or ["no output"])[-1][:200])
            else:
                rep["per_s"] = round(conns / wall, 1)
                rep["broker_cpu_percent"] = round(srv / wall * 100.0, 1)
                rep["s_time_cpu_percent"] = round(cli / wall * 100.0, 1)
                rep["per_broker_cpu_s"] = round(conns / srv, 1) if srv > 0 else None
            if b.proc.poll() is not None:
                rep["error"] = "broker exited during s_time"
            out[mode] = rep
    finally:
        b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)
    return out


def dir_bytes(path):
    total = 0
    for dp, _dn, files in os.walk(path):
        for fn in files:
            try:
                total += os.path.getsize(os.path.join(dp, fn))
            except OSError:
                pass
    return total


# ------------------------------------------------------------------------------------------
# Installing the peers


def dpkg_installed(pkg):
    out = sh("dpkg-query -W -f='${Status}' %s 2>/dev/null" % pkg)
    return "install ok installed" in out


def apt_candidate(pkg):
    for line in sh("apt-cache policy %s" % pkg).splitlines():
        if line.strip().startswith("Candidate:"):
            cand = line.split(":", 1)[1].strip()
            return None if cand == "(none)" else cand
    return None


def install_peers(wanted):
    """apt-get installs the missing peers (after apt-get update); returns {pkg: note}."""
    notes = {}
    pkgs = [p for p, b in (("mosquitto", "mosquitto"), ("nats-server", "nats")) if b in wanted]
    missing = [p for p in pkgs if not dpkg_installed(p)]
    if missing:
        sudo = [] if os.getuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        log("installing " + " ".join(missing))
        subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=False, timeout=600)
        for p in missing:
            if apt_candidate(p) is None:
                notes[p] = "not packaged in this Debian release: left out (nothing downloaded)"
                continue
            subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", p],
                           env=env, check=False, timeout=900)
    for p in pkgs:
        if not dpkg_installed(p):
            notes.setdefault(p, "could not be installed with apt-get: left out")
    return notes


def system_services():
    """Whether Debian's own mosquitto / nats-server services are running (we use other ports)."""
    out = []
    systemd = os.path.isdir("/run/systemd/system")
    for svc in ("mosquitto", "nats-server"):
        if systemd:
            state = sh("systemctl is-active %s" % svc) or "unknown"
        else:
            state = "no systemd: not running" if not sh("pgrep -x %s" % svc.split("-")[0]) else \
                "a %s process is running" % svc
        out.append("%s service: %s" % (svc, state))
    return out


# ------------------------------------------------------------------------------------------
# The machine


def fsync_latency_us(path, count=200):
    """p50 and p99 of write(4 KiB) + fdatasync on the data directory's file system."""
    fn = os.path.join(path, "fsync-probe")
    fd = os.open(fn, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat = []
    try:
        buf = b"x" * 4096
        for i in range(count):
            t0 = time.perf_counter()
            os.pwrite(fd, buf, (i % 64) * 4096)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t0) * 1e6)
    finally:
        os.close(fd)
        os.unlink(fn)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]


def machine_info(workdir, binary):
    info = {}
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    model = sh("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1")
    info["cpus"] = "%s (%s)" % (sh("nproc"), model or "unknown model")
    info["memory"] = sh("awk '/^MemTotal:/ { printf \"%.1f GiB\", $2 / 1048576 }' /proc/meminfo")
    info["kernel"] = sh("uname -srm")
    info["os"] = sh(". /etc/os-release && echo \"$PRETTY_NAME\"")
    info["df"] = sh("df -hT %s" % workdir)
    dev = sh("findmnt -no SOURCE --target %s" % workdir)
    info["device"] = dev
    info["lsblk"] = sh("lsblk -o NAME,SIZE,TYPE,ROTA,MOUNTPOINTS 2>/dev/null || lsblk")
    p50, p99 = fsync_latency_us(workdir)
    info["fsync"] = "write 4 KiB + fdatasync on the data dir: p50 %.0f µs, p99 %.0f µs (200 runs)" % (
        p50, p99)
    info["loadavg_start"] = sh("cat /proc/loadavg")
    info["versions"] = {
        "ledgermq": sh("%s version" % binary),
        "mosquitto": sh("mosquitto -h 2>&1 | head -n 1") + " (Debian " +
        sh("dpkg-query -W -f='${Version}' mosquitto 2>/dev/null") + ")",
        "nats-server": sh("nats-server --version 2>&1") + " (Debian " +
        sh("dpkg-query -W -f='${Version}' nats-server 2>/dev/null") + ")",
    }
    info["git"] = sh("git -C %s rev-parse --short HEAD" % ROOT)
    dirty = sh("git -C %s diff --name-only HEAD -- src CMakeLists.txt" % ROOT)
    if dirty:  # what the binary was built from, beyond the commit
        info["git"] += " with uncommitted changes in " + ", ".join(dirty.splitlines())
    info["services"] = system_services()
    return info


# ------------------------------------------------------------------------------------------
# Summaries


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ok_runs(runs):
    return [r for r in runs if not r.get("error")]


def cell_rate(runs):
    good = ok_runs(runs)
    if not good:
        return None
    return med([r.get("delivered_per_s") for r in good])


def lat_ms(runs, pct):
    """Median over the runs that have latency samples (count 0: nothing published in the
    window was delivered before the bench's drain limit)."""
    good = [r for r in ok_runs(runs) if (r.get("latency_us") or {}).get("count")]
    return med([r["latency_us"].get(pct) for r in good]) if good else None


def fmt_rate(v):
    return "—" if v is None else "{:,.0f}".format(v)


def fmt_ms(v):
    if v is None:
        return "—"
    v = v / 1000.0
    return "%.2f" % v if v < 10 else "%.0f" % v


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return "%.2f×" % (a / b)


def err_of(runs):
    for r in runs:
        if r.get("error"):
            return r["error"]
    return None


def transports_report(transports, brokers):
    """The "Transports" section: idle memory per transport, TLS handshakes/s ([] if not run)."""
    cols = [b for b in TRANSPORT_BROKERS if b in brokers and
            (transports.get("idle", {}).get(b) or transports.get("tls", {}).get(b))]
    if not cols:
        return []
    n = TRANSPORT_CONNECTIONS
    L = ["## Transports", ""]
    L.append("### %s idle connections per transport: broker memory" % "{:,}".format(n))
    L.append("")
    L.append("`scripts/bench_transports.py` (one Python process, non-blocking sockets, at most %d "
             "set-ups in flight) opens %s connections to a fresh broker and sends MQTT 3.1.1 "
             "CONNECT on each (clean session, keep alive %d s, no subscriptions), waits for every "
             "CONNACK, then holds them 1 s. WebSocket: `GET /mqtt`, subprotocol `mqtt`, one "
             "masked binary frame per packet. TLS: ECDSA P-256 certificate from "
             "`tests/tls/make-certs.sh`, verified by the client. RSS before = the broker 1 s "
             "after start (with all four listeners open); RSS with = all connected, after the "
             "hold. Set-up = connections/s while opening them (for TLS: concurrent full "
             "handshakes, the Python client sharing the 2 cores)." % (
                 bench_transports.WINDOW, "{:,}".format(n), bench_transports.KEEPALIVE_S))
    L.append("")
    hdr = ["transport"]
    for b in cols:
        hdr += ["%s: RSS before → with" % LABEL[b], "%s: per connection" % LABEL[b],
                "%s: set-up conn/s" % LABEL[b]]
    if len(cols) > 1:
        hdr.append("%s / %s per connection" % (LABEL[cols[0]], LABEL[cols[1]]))
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + " --- |" * len(hdr))
    idle = transports.get("idle", {})
    for t, title in TRANSPORTS:
        row, per = [title], {}
        for b in cols:
            runs = idle.get(b, {}).get(t, [])
            good = ok_runs(runs)
            if not good:
                row += ["—", "failed: %s" % err_of(runs) if runs else "—", "—"]
                continue
            per[b] = med([r.get("rss_per_connection_bytes") for r in good])
            row += ["%s → %s" % (mib(med([r.get("rss_before_bytes") for r in good])),
                                 mib(med([r.get("rss_with_bytes") for r in good]))),
                    "%.1f KiB" % (per[b] / 1024) if per[b] is not None else "—",
                    fmt_rate(med([r.get("setup_per_s") for r in good]))]
        if len(cols) > 1:
            row.append(fmt_ratio(per.get(cols[0]), per.get(cols[1])) + " (lower is better)")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Per connection, each round (KiB): " + "; ".join(
        "%s %s: %s" % (LABEL[b], t, ", ".join(
            "%.1f" % (r["rss_per_connection_bytes"] / 1024) if r.get("rss_per_connection_bytes")
            is not None else "failed" for r in idle.get(b, {}).get(t, [])))
        for b in cols for t, _ in TRANSPORTS if idle.get(b, {}).get(t)) + ".")
    L.append("")
    tls = transports.get("tls", {})
    if any(tls.get(b) for b in cols):
        L.extend(tls_report(tls, cols))
    return L


def tls_report(tls, cols):
    L = ["### TLS handshakes per second (`openssl s_time`, %d s per run)" % TLS_TIME_S, ""]
    ciphers = ["%s: %s" % (LABEL[b], next((r.get("cipher") for r in tls.get(b, [])
                                           if r.get("cipher")), "?")) for b in cols]
    L.append("One `openssl s_time` process, one connection at a time, against the TLS listener "
             "of a fresh broker; it shares the machine's %d cores with the broker, so the rate "
             "is bounded by both (their CPU over the same run is given, %% of one core). "
             "Handshakes/s = connections / wall time of the s_time run; per broker CPU-second = "
             "connections / the broker's CPU time over the run (what one core of broker could "
             "do with a faster client). Negotiated with `openssl s_client`: %s. "
             "Resumed sessions are TLS 1.2: s_time never reads after the handshake, so never "
             "receives the TLS 1.3 session tickets it would need." % (
                 os.cpu_count(), "; ".join(ciphers)))
    L.append("")
    L.append("| broker | mode | handshakes/s | broker CPU | s_time CPU | per broker CPU-second | "
             "resumed | each round (handshakes/s) |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for b in cols:
        for mode, title, _args in TLS_MODES:
            runs = [r.get(mode) or {"error": "not run"} for r in tls.get(b, [])]
            good = ok_runs(runs)
            if not good:
                L.append("| %s | %s | failed: %s | — | — | — | — | — |" % (
                    LABEL[b], title, err_of(runs) or "not run"))
                continue
            resumed = sum(r.get("resumed") or 0 for r in good)
            total = resumed + sum(r.get("full") or 0 for r in good)
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                LABEL[b], title, fmt_rate(med([r.get("per_s") for r in good])),
                pct(med([r.get("broker_cpu_percent") for r in good])),
                pct(med([r.get("s_time_cpu_percent") for r in good])),
                fmt_rate(med([r.get("per_broker_cpu_s") for r in good])),
                "%.0f%%" % (100.0 * resumed / total) if total else "—",
                ", ".join(fmt_rate(r.get("per_s")) if not r.get("error") else "failed"
                          for r in runs)))
    L.append("")
    return L


def inflight_section(results, cols):
    """3.1.1 publishers keeping 100 and 1,000 QoS 1 messages in flight, each against the same
    subscriber kind at 64 in flight (the broker's window): the ratio shows whether going past
    the window costs throughput."""
    L = ["## 3.1.1 publishers beyond the window: msg/s delivered (median), ratio to 64 in "
         "flight", ""]
    hdr = ["subscriber", "in flight"] + [LABEL[b] for b in cols]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + " --- |" * len(hdr))
    rows = [("clean", "64", "qos1-inflight64-clean", "qos1-inflight64-clean"),
            ("clean", "100", "qos1-inflight100-clean", "qos1-inflight64-clean"),
            ("clean", "1,000", "qos1-inflight1000-clean", "qos1-inflight64-clean"),
            ("persistent", "64", "qos1-fan-in", "qos1-fan-in"),
            ("persistent", "100", "qos1-inflight100", "qos1-fan-in"),
            ("persistent", "1,000", "qos1-inflight1000", "qos1-fan-in")]
    for sub, inflight, key, ref in rows:
        row = [sub, inflight]
        for b in cols:
            v = cell_rate(results.get(key, {}).get(b, []))
            r = cell_rate(results.get(ref, {}).get(b, []))
            if v is None:
                row.append("—")
            elif key == ref or not r:
                row.append(fmt_rate(v))
            else:
                row.append("%s (%.2f×)" % (fmt_rate(v), v / r))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if "ledgermq-before" in cols and "ledgermq-always" in cols:
        gains = []
        for sub, inflight, key, _ref in rows:
            now = cell_rate(results.get(key, {}).get("ledgermq-always", []))
            then = cell_rate(results.get(key, {}).get("ledgermq-before", []))
            if now and then:
                gains.append("%s subscriber, %s in flight: %s → %s msg/s (%s)" % (
                    sub, inflight, fmt_rate(then), fmt_rate(now),
                    "%.2f×" % (now / then) if now / then < 10 else "%.0f×" % (now / then)))
        if gains:
            L.append("Before → after (LedgerMQ before → LedgerMQ always, same rounds): " +
                     "; ".join(gains) + ".")
            L.append("")
    L.append("Target: 100 and 1,000 in flight within 10% of 64 in flight. The "
             "persistent 64 row is the QoS 1 fan-in scenario above. \"LedgerMQ before\" (when "
             "present) is the binary BENCH_BEFORE named, run in the same rounds.")
    L.append("")
    return L


def build_report(info, results, idle, restart, brokers, notes, elapsed_s, cmdline,
                 transports=None, long_topics=None):
    transports = transports or {}
    L = []
    have = lambda b: b in brokers  # noqa: E731
    L.append("# Benchmarks")
    L.append("")
    L.append("Written by `make bench` (`scripts/bench.py`) — do not edit by hand; rerun it (the "
             "sections after \"Commands\" are written by `make bench-ledger`, `make bench-data` "
             "(two), `make bench-events` and `tests/store_asof_bench`, as each says). "
             "%s run: %d round(s), %g s measured after a %g s warm-up per run, brokers "
             "alternating (order rotated every round), each run on a freshly started broker "
             "with a fresh data directory. Cells are medians over the rounds." % (
                 "QUICK (smoke)" if QUICK else "Full", ROUNDS, DURATION_S, WARMUP_S))
    L.append("")
    L.append("Date %s; the run took %.1f minutes." % (info["date"], elapsed_s / 60))
    L.append("")

    # ---- targets
    L.append("## Targets")
    L.append("")
    L.append("| target | measured | met? |")
    L.append("| --- | --- | --- |")
    for row in targets(results, idle, restart, brokers):
        L.append("| %s | %s | %s |" % row)
    L.append("")

    # ---- throughput
    cols = [b for b in BROKERS if have(b)]
    ratio_cols = [(o, p) for o in OURS for p in PEERS if have(o) and have(p)]
    L.append("## Throughput: messages/s delivered (median)")
    L.append("")
    hdr = ["scenario"] + [LABEL[b] for b in cols] + [
        "%s / %s" % (LABEL[o].replace("LedgerMQ ", "LMQ "), LABEL[p]) for o, p in ratio_cols]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + " --- |" * len(hdr))
    footnotes = []
    for sc in SCENARIOS:
        row = [sc["title"]]
        for b in cols:
            runs = results[sc["key"]].get(b, [])
            v = cell_rate(runs)
            if v is None and err_of(runs):
                footnotes.append("%s, %s: %s" % (sc["title"], LABEL[b], err_of(runs)))
                row.append("failed [%d]" % len(footnotes))
            else:
                row.append(fmt_rate(v))
        for o, p in ratio_cols:
            row.append(fmt_ratio(cell_rate(results[sc["key"]].get(o, [])),
                                 cell_rate(results[sc["key"]].get(p, []))))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    for i, f in enumerate(footnotes, 1):
        L.append("[%d] %s  " % (i, f))
    if footnotes:
        L.append("")
    L.append("The rate is deliveries counted at the subscribers during the measured window "
             "divided by its length. At QoS 0 without `--rate`, publishers write as fast as "
             "the broker reads; a broker that reads faster than it delivers buffers "
             "(latency below is then queueing delay, and QoS 0 may drop).")
    L.append("")

    # ---- 3.1.1 publishers beyond the broker's window
    L.extend(inflight_section(results, cols))

    # ---- latency
    L.append("## Publish → delivery latency, ms: p50 / p99 / p99.9 (median over rounds)")
    L.append("")
    hdr = ["scenario"] + [LABEL[b] for b in cols]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + " --- |" * len(hdr))
    late = False
    for sc in SCENARIOS:
        row = [sc["title"]]
        for b in cols:
            runs = results[sc["key"]].get(b, [])
            if not ok_runs(runs):
                row.append("—")
                continue
            if lat_ms(runs, "p50") is None:
                row.append("not delivered in time ‡")
                late = True
                continue
            row.append("%s / %s / %s" % (fmt_ms(lat_ms(runs, "p50")), fmt_ms(lat_ms(runs, "p99")),
                                         fmt_ms(lat_ms(runs, "p99_9"))))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if late:
        L.append("‡ no message published during the measured window reached its subscribers "
                 "before the bench's drain limit (10 s after publishing stopped): the broker "
                 "had queued more than it could deliver.")
        L.append("")

    # ---- idle
    L.append("## %s idle connections: broker memory" % "{:,}".format(IDLE_CONNECTIONS))
    L.append("")
    L.append("1 publisher at 1 msg/s (QoS 0) and %s subscribers (each subscribed to the same "
             "topic, so one message per second each). RSS before = the fresh broker 1 s after "
             "start; RSS with = while all are connected (bench, before disconnecting)." %
             "{:,}".format(IDLE_CONNECTIONS - 1))
    L.append("")
    L.append("| broker | RSS before | RSS with | per connection | LMQ always / this |")
    L.append("| --- | --- | --- | --- | --- |")
    per = {b: med([r.get("rss_per_connection_bytes") for r in idle.get(b, [])]) for b in cols}
    for b in cols:
        runs = idle.get(b, [])
        if not ok_runs(runs):
            L.append("| %s | — | — | failed: %s | — |" % (LABEL[b], err_of(runs) or "not run"))
            continue
        L.append("| %s | %.1f MiB | %.1f MiB | %.1f KiB | %s |" % (
            LABEL[b], med([r.get("rss_before_bytes") for r in ok_runs(runs)]) / 2**20,
            med([r.get("broker_rss_bytes") for r in ok_runs(runs)]) / 2**20,
            per[b] / 1024 if per[b] is not None else float("nan"),
            fmt_ratio(per.get("ledgermq-always"), per[b]) + " (lower is better)"
            if b != "ledgermq-always" else "—"))
    L.append("")

    # ---- restart
    L.append("## Restart with %s queued messages" % "{:,}".format(FILL_MESSAGES))
    L.append("")
    L.append("`ledgermq bench --scenario fill --publishers 4`: one persistent subscriber "
             "(clean session 0) subscribes with QoS 1 and leaves; %s QoS 1 messages of 64 B are "
             "published for it. Then the broker is stopped — SIGTERM (clean), or SIGKILL "
             "(crash) in a second, separate fill — and started again on the same data: "
             "*time to ready* is from the process start to the first CONNACK. *Still queued* "
             "is what the restarted broker holds: LedgerMQ's `recovered` line, mosquitto's "
             "`$SYS/broker/store/messages/count` (which also counts its own retained `$SYS` "
             "messages), nats' `$MQTT_msgs` stream (`/jsz`)." % "{:,}".format(FILL_MESSAGES))
    L.append("")
    L.append("| broker | fill msg/s (acked) | RSS full | stop | data on disk | time to ready "
             "(SIGTERM) | still queued | RSS after | time to ready (kill -9) | still queued |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for b in cols:
        t = restart.get(b, {}).get("term")
        k = restart.get(b, {}).get("kill9")
        if not t:
            continue
        fillrate = (t.get("fill") or {}).get("acked_per_s")
        ferr = (t.get("fill") or {}).get("error")
        ready = "%.2f s" % t["ready_s"] if t.get("ready_s") is not None else "—"
        if t.get("recovery_ms") is not None:
            ready += " (recovery_ms %d)" % t["recovery_ms"]
        kready = "%.2f s" % k["ready_s"] if k and k.get("ready_s") is not None else "—"
        L.append("| %s | %s | %s | %.2f s | %s | %s | %s | %s | %s | %s |" % (
            LABEL[b], fmt_rate(fillrate) + (" (%s)" % ferr if ferr else ""),
            mib(t.get("rss_full_bytes")), t.get("stop_s", 0), mib(t.get("data_bytes")), ready,
            fmt_count(t.get("stored_after")), mib(t.get("rss_after_bytes")), kready,
            fmt_count(k.get("stored_after") if k else None)))
    L.append("")

    L.extend(long_topics_report(long_topics or {}))
    L.extend(transports_report(transports, brokers))

    # ---- cpu
    L.append("## CPU during the measured window (median, % of one core)")
    L.append("")
    L.append("broker = the broker process, all threads (from the bench, over the window); "
             "busiest = its busiest thread, over the whole bench run (set-up and drain "
             "included); bench = `ledgermq bench`; other = the machine's busy time (%d cores "
             "= %d %%) minus broker and bench: other processes on the host, and kernel work "
             "charged to no process (loopback network soft interrupts, file system journal "
             "and writeback threads). An estimate." % (os.cpu_count(), 100 * os.cpu_count()))
    L.append("")
    hdr = ["scenario"] + [LABEL[b] + ": broker / busiest / bench / other" for b in cols]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + " --- |" * len(hdr))
    for sc in SCENARIOS + [{"key": IDLE_KEY, "title": "idle connections"}]:
        row = [sc["title"]]
        src = idle if sc["key"] == IDLE_KEY else results[sc["key"]]
        for b in cols:
            runs = ok_runs(src.get(b, []))
            if not runs:
                row.append("—")
                continue
            row.append("%s / %s / %s / %s" % tuple(
                pct(med([r.get(k) for r in runs])) for k in (
                    "broker_cpu_percent", "broker_busiest_thread_percent", "bench_cpu_percent",
                    "other_cpu_percent_est")))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    lmq_rows = []
    for sc in SCENARIOS:
        if "--qos" in sc["args"] and sc["args"][sc["args"].index("--qos") + 1] == "0":
            continue  # QoS 0 writes nothing: messages per commit means nothing
        for b in OURS:
            runs = ok_runs(results[sc["key"]].get(b, []))
            if not runs:
                continue
            st = [r.get("store_stats") or {} for r in runs]
            per_commit = med([s["messages_in"] / s["commits"] for s in st
                              if s.get("commits") and s.get("messages_in") is not None])
            lmq_rows.append("| %s | %s | %s | %s | %s | %s |" % (
                sc["title"], LABEL[b],
                pct(med([r.get("ledgermq_network_thread_percent") for r in runs])),
                pct(med([r.get("ledgermq_other_threads_percent") for r in runs])),
                "%.1f" % per_commit if per_commit is not None else "—",
                fmt_ms(med([s.get("commit_us_p50") for s in st]))))
    if lmq_rows:
        L.append("LedgerMQ's two threads over the whole bench run, and its group commit "
                 "(`store_stats` at shutdown: messages_in / commits; one commit = one fsync "
                 "with `--sync always`):")
        L.append("")
        L.append("| scenario | broker | network thread | storage thread | messages per commit | "
                 "commit p50 ms |")
        L.append("| --- | --- | --- | --- | --- | --- |")
        L.extend(lmq_rows)
        L.append("")

    # ---- every run
    L.append("## Every round (messages/s delivered, in round order)")
    L.append("")
    L.append("| scenario | " + " | ".join(LABEL[b] for b in cols) + " |")
    L.append("|" + " --- |" * (len(cols) + 1))
    for sc in SCENARIOS:
        L.append("| %s | %s |" % (sc["title"], " | ".join(
            ", ".join(fmt_rate(r.get("delivered_per_s")) if not r.get("error") else "failed"
                      for r in results[sc["key"]].get(b, [])) for b in cols)))
    L.append("")
    L.append("p99 latency, ms, each round:")
    L.append("")
    L.append("| scenario | " + " | ".join(LABEL[b] for b in cols) + " |")
    L.append("|" + " --- |" * (len(cols) + 1))
    for sc in SCENARIOS:
        L.append("| %s | %s |" % (sc["title"], " | ".join(
            ", ".join(fmt_ms(lat_ms([r], "p99")) for r in results[sc["key"]].get(b, []))
            for b in cols)))
    L.append("")
    lost = []
    for sc in SCENARIOS:
        for b in cols:
            for r in ok_runs(results[sc["key"]].get(b, [])):
                bad = ", ".join("%s %s" % (k, r[k]) for k in ("losses", "duplicates", "gaps")
                                if r.get(k))
                if bad:
                    lost.append("%s, %s: %s" % (sc["title"], LABEL[b], bad))
    L.append("Losses / duplicates / gaps reported by the bench: " +
             ("none." if not lost else "; ".join(lost) + " (QoS 0 may drop)."))
    L.append("")

    # ---- brokers
    L.append("## The brokers and what they do with the data")
    L.append("")
    v = info["versions"]
    L.append("- **LedgerMQ** `%s` (git %s). `ledgermq serve --config INI --mqtt 127.0.0.1:0 "
             "--data DIR --sync always|off --log-level info --http none`, INI `[limits] max_connections` "
             "and `max_connections_per_address` = the idle connections + 1,000, "
             "`max_connection_rate_per_address = 100000`, `queue_overflow = refuse` (a "
             "subscriber slower than its publishers holds them back rather than drop the "
             "oldest, the default), the HTTP(S) connection and handshake "
             "limits to what the open-file limit leaves (the restart test adds `max_queued_messages = %d`, `max_queued_bytes = "
             "4000000000`), every other limit at its default (inflight 64, 10,000 queued per "
             "session: beyond it a 3.1.1 publisher is not read until the queue drains). "
             "Messages for persistent sessions (QoS 1/2, clean session 0) are written to "
             "SQLite (WAL) before the PUBACK/PUBREC; `--sync always`: "
             "`synchronous=FULL`, one fsync per group commit, the ack waits for it; "
             "`--sync off`: `synchronous=OFF`, the same writes, no fsync. QoS 0 and clean "
             "sessions are not written." % (v["ledgermq"], info["git"], 2 * FILL_MESSAGES))
    L.append("- **mosquitto** %s: `listener PORT 127.0.0.1`, `allow_anonymous true`, "
             "`persistence true` (fresh `persistence_location`), `max_queued_messages 2000000`, "
             "`max_inflight_messages 64`, everything else default. Messages live in memory; "
             "the database is written whole (and fsynced once, then renamed) only at "
             "`autosave_interval` (default 1800 s, never reached in these runs) and at "
             "shutdown: nothing is on disk when it acknowledges, and a kill -9 loses "
             "everything since the last save (see the restart table)." % v["mosquitto"])
    if have("nats") or "nats-server" in notes:
        L.append("- **nats-server** %s: `server_name`, `listen` on a free port, `http` "
                 "(monitoring, for `/jsz`), `jetstream { store_dir: fresh }`, `mqtt { listen: "
                 "127.0.0.1:PORT }`. MQTT QoS 1 messages for sessions go to the JetStream file "
                 "store (stream `$MQTT_msgs`); it writes through the OS page cache and fsyncs "
                 "on its sync interval, 2 minutes by default (2.9 has no setting for it: "
                 "`sync_interval` is refused as an unknown field). 2.9 speaks MQTT 3.1.1 only "
                 "and does not support QoS 2 (it grants QoS 1 to a QoS 2 SUBSCRIBE), so every "
                 "scenario uses MQTT 3.1.1 for every broker." % v["nats-server"])
    for pkg, note in notes.items():
        L.append("- %s: %s." % (pkg, note))
    L.append("- The load generator is `ledgermq bench` (one libuv process, the project's "
             "codec), on the same 2-core machine as the broker: see the CPU table for what it "
             "took. Timestamps travel in the payload (CLOCK_MONOTONIC).")
    L.append("")

    # ---- machine
    L.append("## Machine")
    L.append("")
    L.append("- date: %s" % info["date"])
    L.append("- CPUs: %s" % info["cpus"])
    L.append("- memory: %s" % info["memory"])
    L.append("- kernel: %s; %s" % (info["kernel"], info["os"]))
    L.append("- data directories on: %s" % (info["device"] or "?"))
    L.append("- %s" % info["fsync"])
    L.append("- load average at the start: %s; at the end: %s" % (
        info["loadavg_start"], info.get("loadavg_end", "?")))
    L.append("- %s" % "; ".join(info["services"]) + " (the brokers here use free ports anyway)")
    L.append("- file descriptors: soft limit %s" % info.get("nofile", "?"))
    L.append("")
    L.append("```")
    L.append(info["df"])
    L.append("")
    L.append(info["lsblk"])
    L.append("```")
    L.append("")

    # ---- commands
    L.append("## Commands")
    L.append("")
    L.append("Rerun: `make bench` (= `%s`). Per run, with PORT/PID of the fresh broker:" %
             cmdline)
    L.append("")
    L.append("```sh")
    base = "ledgermq bench --port PORT --mqtt-version %s --pid PID --json" % MQTT_VERSION
    for sc in SCENARIOS:
        L.append("# %s" % sc["title"])
        L.append("%s %s --duration %g --warmup %g" % (base, " ".join(sc["args"]), DURATION_S,
                                                       WARMUP_S))
    L.append("# %s (LedgerMQ also with [limits] max_topic_alias_out = 0)" % LONG_TOPICS_TITLE)
    L.append("%s %s --duration %g --warmup %g" % (base.replace(
        "--mqtt-version %s" % MQTT_VERSION, "--mqtt-version 5"), " ".join(LONG_TOPICS_ARGS),
        DURATION_S, WARMUP_S))
    L.append("# idle connections")
    L.append("%s --scenario fan-out --subscribers %d --qos 0 --payload 64 --rate 1 --duration 3 "
             "--warmup 1" % (base, IDLE_CONNECTIONS - 1))
    L.append("# restart: fill, then stop (SIGTERM or SIGKILL) and start again on the same data")
    L.append("%s --scenario fill --publishers 4 --payload 64 --messages %d --duration %d" % (
        base, FILL_MESSAGES, FILL_LIMIT_S))
    L.append("# transports (BENCH_SCENARIOS=transports): broker with --mqtts/--http/--https, "
             "certs from tests/tls/make-certs.sh CERTS")
    L.append("scripts/bench_transports.py --transport tcp|ws|tls|wss --port PORT --count %d "
             "--cafile CERTS/ca.pem --pid PID" % TRANSPORT_CONNECTIONS)
    for _mode, _title, args in TLS_MODES:
        L.append("openssl s_time -connect 127.0.0.1:TLS_PORT -time %d %s" % (
            TLS_TIME_S, " ".join(args)))
    L.append("```")
    L.append("")
    L.append("Raw results of every run (the bench's JSON report plus CPU figures): `%s`." %
             info.get("raw", "?"))
    L.append("")
    return "\n".join(L)


def pct(v):
    return "—" if v is None else "%.0f%%" % v


def mib(v):
    return "—" if v is None else "%.1f MiB" % (v / 2**20)


def fmt_count(v):
    return "—" if v is None else "{:,}".format(v)


def targets(results, idle, restart, brokers):
    rows = []

    def r(key, b):
        return cell_rate(results.get(key, {}).get(b, []))

    a = "ledgermq-always"
    if a in brokers and "mosquitto" in brokers:
        x = r("qos1-fan-in", a), r("qos1-fan-in", "mosquitto")
        ratio = x[0] / x[1] if x[0] and x[1] else None
        rows.append(("QoS 1 fan-in, LedgerMQ `--sync always` ≥ 1.0× mosquitto",
                     "%s vs %s msg/s = %s" % (fmt_rate(x[0]), fmt_rate(x[1]),
                                              fmt_ratio(x[0], x[1])),
                     yesno(ratio is not None and ratio >= 1.0, ratio)))
        for key in ("qos0-fan-in", "qos0-fan-out"):
            vals = []
            ok = True
            for o in OURS:
                if o in brokers:
                    rr = r(key, o), r(key, "mosquitto")
                    vals.append("%s %s" % (LABEL[o], fmt_ratio(*rr)))
                    ok = ok and rr[0] is not None and rr[1] and rr[0] / rr[1] >= 1.5
            rows.append(("%s ≥ 1.5× mosquitto" % key.replace("qos0-", "QoS 0 "),
                         ", ".join(vals), yesno(ok, 0)))
    if a in brokers:
        lruns = results.get("qos1-latency", {}).get(a, [])
        p99 = lat_ms(lruns, "p99")
        rows.append(("p99 latency, durable QoS 1 at 10,000 msg/s ≤ 5 ms",
                     "%s ms (p50 %s, p99.9 %s); p99 of each round: %s ms" % (
                         fmt_ms(p99), fmt_ms(lat_ms(lruns, "p50")), fmt_ms(lat_ms(lruns, "p99_9")),
                         ", ".join(fmt_ms(lat_ms([r], "p99")) for r in lruns)),
                     yesno(p99 is not None and p99 <= 5000, p99)))
        per = med([x.get("rss_per_connection_bytes") for x in idle.get(a, [])])
        rows.append(("≤ 10 KiB broker memory per idle connection",
                     "%.1f KiB" % (per / 1024) if per is not None else "—",
                     yesno(per is not None and per <= 10 * 1024, per)))
    if a in brokers and "nats" in brokers:
        behind = []
        details = []
        for sc in SCENARIOS:
            ours, theirs = r(sc["key"], a), r(sc["key"], "nats")
            if theirs is None:
                details.append("%s: nats n/a (%s)" % (
                    sc["key"], err_of(results[sc["key"]].get("nats", [])) or "no result"))
                continue
            if sc["key"] != "qos1-latency":  # fixed rate: both deliver 10,000/s
                details.append("%s %s" % (sc["key"], fmt_ratio(ours, theirs)))
            if sc["key"] == "qos1-latency":
                lo = lat_ms(results[sc["key"]].get(a, []), "p99")
                ln = lat_ms(results[sc["key"]].get("nats", []), "p99")
                details.append("latency p99 %s vs %s ms" % (fmt_ms(lo), fmt_ms(ln)))
                if lo is None or ln is None or lo > ln:
                    behind.append("qos1-latency p99")
            elif ours is None or ours < theirs:
                behind.append(sc["key"])
        pa = med([x.get("rss_per_connection_bytes") for x in idle.get(a, [])])
        pn = med([x.get("rss_per_connection_bytes") for x in idle.get("nats", [])])
        if pa is not None and pn is not None:
            details.append("idle RSS/conn %s" % fmt_ratio(pa, pn))
            if pa > pn:
                behind.append("idle memory")
        ta = (restart.get(a, {}).get("term") or {}).get("ready_s")
        tn = (restart.get("nats", {}).get("term") or {}).get("ready_s")
        if ta is not None and tn is not None:
            details.append("restart %.2f vs %.2f s" % (ta, tn))
            if ta > tn:
                behind.append("restart time")
        rows.append(("LedgerMQ `--sync always` ahead of nats-server MQTT in every scenario",
                     "; ".join(details) + (" — behind in: " + ", ".join(behind) if behind
                                            else ""),
                     "yes" if not behind else "**no**"))
    return rows


def yesno(ok, value):
    if value is None:
        return "—"
    return "yes" if ok else "**no**"


def print_summary(results, idle, restart, brokers, transports=None):
    cols = [b for b in BROKERS if b in brokers]
    w = 62
    print()
    print("%-*s" % (w, "messages/s delivered (median)") + "".join("%17s" % LABEL[b] for b in cols))
    for sc in SCENARIOS:
        print("%-*s" % (w, sc["title"]) + "".join(
            "%17s" % fmt_rate(cell_rate(results[sc["key"]].get(b, []))) for b in cols))
    print()
    print("%-*s" % (w, "latency p50/p99 ms (median)") + "".join("%17s" % LABEL[b] for b in cols))
    for sc in SCENARIOS:
        print("%-*s" % (w, sc["title"]) + "".join("%17s" % (
            "%s/%s" % (fmt_ms(lat_ms(results[sc["key"]].get(b, []), "p50")),
                       fmt_ms(lat_ms(results[sc["key"]].get(b, []), "p99")))) for b in cols))
    print()
    print("%-*s" % (w, "ratios (msgs/s)") + "".join(
        "%17s" % ("%s/%s" % (o.replace("ledgermq-", ""), p)) for o in OURS for p in PEERS
        if o in brokers and p in brokers))
    for sc in SCENARIOS:
        print("%-*s" % (w, sc["title"]) + "".join(
            "%17s" % fmt_ratio(cell_rate(results[sc["key"]].get(o, [])),
                               cell_rate(results[sc["key"]].get(p, [])))
            for o in OURS for p in PEERS if o in brokers and p in brokers))
    print()
    print("%-*s" % (w, "idle: KiB per connection") + "".join("%17s" % (
        "%.1f" % (med([x.get("rss_per_connection_bytes") for x in idle.get(b, [])]) / 1024)
        if med([x.get("rss_per_connection_bytes") for x in idle.get(b, [])]) is not None
        else "—") for b in cols))
    print("%-*s" % (w, "restart: s to CONNACK after SIGTERM") + "".join("%17s" % (
        "%.2f" % restart[b]["term"]["ready_s"]
        if restart.get(b, {}).get("term", {}).get("ready_s") is not None else "—")
        for b in cols))
    tcols = [b for b in TRANSPORT_BROKERS if b in cols]
    for t, title in TRANSPORTS:
        print("%-*s" % (w, "idle %s: KiB per connection" % title) + "".join("%17s" % (
            "%.1f" % (v / 1024) if v is not None else "—") for v in (
            med([r.get("rss_per_connection_bytes") for r in ok_runs(
                ((transports or {}).get("idle", {}).get(b, {})).get(t, []))]) for b in tcols)))
    for mode, title, _args in TLS_MODES:
        print("%-*s" % (w, "TLS handshakes/s, %s" % title) + "".join("%17s" % fmt_rate(med([
            (r.get(mode) or {}).get("per_s") for r in (transports or {}).get("tls", {}).get(b, [])
            if not (r.get(mode) or {}).get("error")])) for b in tcols))
    print()


# ------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ledgermq", default=os.path.join(ROOT, "build", "ledgermq"))
    quick_out = os.path.join(ROOT, "build", "BENCHMARKS-quick.md")
    partial_out = os.path.join(ROOT, "build", "BENCHMARKS-partial.md")
    ap.add_argument("--out", default=os.environ.get(
        "BENCH_OUT", partial_out if PARTIAL else quick_out if QUICK
        else os.path.join(ROOT, "docs", "BENCHMARKS.md")))
    ap.add_argument("--raw", default=os.environ.get("BENCH_RAW"))
    ap.add_argument("--render", metavar="RAW_JSON",
                    help="measure nothing: rewrite --out from the raw results of an earlier run")
    opts = ap.parse_args()
    if opts.render:
        render(opts.render, opts.out)
        return
    binary = os.path.abspath(opts.ledgermq)
    if not os.access(binary, os.X_OK):
        fail("%s is not an executable (build first, or pass --ledgermq)" % binary)
    raw_path = opts.raw or os.path.join(os.path.dirname(binary), "bench-results.json")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    wanted = [b for b in os.environ.get("BENCH_BROKERS", ",".join(BROKERS)).split(",") if b]
    for b in wanted:
        if b not in BROKERS:
            fail("BENCH_BROKERS: unknown broker %s (known: %s)" % (b, ", ".join(BROKERS)))
    for p in WANTED_PARTS:
        if p not in PARTS:
            fail("BENCH_SCENARIOS: unknown part %s (known: %s)" % (p, ", ".join(PARTS)))
    notes = install_peers(wanted)
    brokers = [b for b in wanted if not (
        (b == "mosquitto" and "mosquitto" in notes) or (b == "nats" and "nats-server" in notes))]

    # 10,000 connections: the bench holds one descriptor each, and so does the broker.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(IDLE_CONNECTIONS, TRANSPORT_CONNECTIONS) + 1000
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
        except (ValueError, OSError):
            pass
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        fail("open-file limit %d < %d needed for %d idle connections (raise `ulimit -n`)" % (
            resource.getrlimit(resource.RLIMIT_NOFILE)[0], want, IDLE_CONNECTIONS))

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    workdir = tempfile.mkdtemp(prefix="ledgermq-bench.", dir=os.environ.get("BENCH_WORKDIR"))
    started = time.monotonic()
    try:
        info = machine_info(workdir, binary)
        info["nofile"] = nofile
        info["raw"] = os.path.relpath(raw_path, ROOT) if raw_path.startswith(ROOT) else raw_path
        log("%s; brokers: %s; %d round(s) of %g+%g s" % (
            info["cpus"], ", ".join(brokers), ROUNDS, WARMUP_S, DURATION_S))
        results = {sc["key"]: {b: [] for b in brokers} for sc in SCENARIOS}
        idle = {b: [] for b in brokers}
        long_topics = {col: [] for col, b, _x, _l in LONG_TOPICS_RUNS if b in brokers}
        for rnd in range(ROUNDS):
            order = brokers[rnd % len(brokers):] + brokers[:rnd % len(brokers)]
            for sc in SCENARIOS:
                if sc["key"] not in WANTED_PARTS:
                    continue
                for b in order:
                    if b == "ledgermq-before" and not sc.get("inflight"):
                        continue  # the earlier binary runs only the in-flight scenarios
                    rep = run_scenario(binary, workdir, b, sc, rnd)
                    results[sc["key"]][b].append(rep)
                    log("round %d %-13s %-16s %s" % (rnd + 1, sc["key"], b, brief(rep)))
            runs = [r for r in LONG_TOPICS_RUNS if r[0] in long_topics]
            for col, b, ini_extra, _label in (runs if LONG_TOPICS_KEY in WANTED_PARTS else []):
                rep = run_long_topics(binary, workdir, col, b, ini_extra, rnd)
                long_topics[col].append(rep)
                log("round %d %-13s %-16s %s, %s B/msg at the subscriber (%s alias-only)" % (
                    rnd + 1, LONG_TOPICS_KEY, col, brief(rep), rep.get("sub_bytes_per_msg"),
                    fmt_count(rep.get("alias_only"))))
            for b in (order if IDLE_KEY in WANTED_PARTS else []):
                if b == "ledgermq-before":
                    continue
                rep = run_idle(binary, workdir, b, rnd)
                idle[b].append(rep)
                per = rep.get("rss_per_connection_bytes")
                log("round %d %-13s %-16s %s" % (
                    rnd + 1, IDLE_KEY, b, "%.1f KiB/conn (rss %s)" % (
                        per / 1024, mib(rep.get("broker_rss_bytes"))) if per is not None
                    else "failed: %s" % rep.get("error")))
        transports = run_transports(binary, workdir, brokers)
        restart = {}
        for b in brokers:
            if b == "ledgermq-before":
                continue
            restart[b] = {}
            for crash in ((False, True) if RESTART_KEY in WANTED_PARTS else ()):
                res = run_restart(binary, workdir, b, crash)
                restart[b]["kill9" if crash else "term"] = res
                log("restart %-16s %-7s fill %s msg/s, ready in %s s, still queued %s" % (
                    b, "kill -9" if crash else "SIGTERM",
                    fmt_rate((res.get("fill") or {}).get("acked_per_s")), res.get("ready_s"),
                    fmt_count(res.get("stored_after"))))
        info["loadavg_end"] = sh("cat /proc/loadavg")
        finished = time.monotonic()
        cmdline = "/usr/bin/python3 scripts/bench.py --ledgermq %s" % (
            os.path.relpath(binary, ROOT) if binary.startswith(ROOT) else binary)
        if QUICK:
            cmdline = "BENCH_QUICK=1 " + cmdline
        raw = {"machine": info, "results": results, "idle": idle, "restart": restart,
               "transports": transports, "long_topics": long_topics,
               "brokers": brokers, "notes": notes, "elapsed_s": round(finished - started, 1),
               "cmdline": cmdline,
               "settings": {"rounds": ROUNDS, "duration_s": DURATION_S, "warmup_s": WARMUP_S,
                            "fill_messages": FILL_MESSAGES, "idle_connections": IDLE_CONNECTIONS,
                            "transport_connections": TRANSPORT_CONNECTIONS,
                            "tls_time_s": TLS_TIME_S, "quick": QUICK}}
        with open(raw_path, "w") as f:
            json.dump(raw, f, indent=1)
        md = build_report(info, results, idle, restart, brokers, notes, finished - started,
                          cmdline, transports, long_topics)
        os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
        write_report(opts.out, md)
        print_summary(results, idle, restart, brokers, transports)
        log("wrote %s and %s (%.1f min)" % (opts.out, raw_path, (finished - started) / 60))
    finally:
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def write_report(out, md):
    """Writes the page, keeping the blocks bench-ledger.py and bench-data.py wrote there."""
    kept = benchdoc.blocks(out)
    with open(out, "w") as f:
        f.write(md.rstrip("\n") + "\n")
        for block in kept:
            f.write("\n" + block)


def render(raw_path, out):
    """Rewrites the markdown from a raw results file (after a change to the report's layout)."""
    global ROUNDS, DURATION_S, WARMUP_S, FILL_MESSAGES, IDLE_CONNECTIONS, QUICK
    global TRANSPORT_CONNECTIONS, TLS_TIME_S
    with open(raw_path) as f:
        raw = json.load(f)
    st = raw["settings"]
    ROUNDS, DURATION_S, WARMUP_S = st["rounds"], st["duration_s"], st["warmup_s"]
    FILL_MESSAGES, IDLE_CONNECTIONS, QUICK = (st["fill_messages"], st["idle_connections"],
                                              st["quick"])
    TRANSPORT_CONNECTIONS = st.get("transport_connections", TRANSPORT_CONNECTIONS)
    TLS_TIME_S = st.get("tls_time_s", TLS_TIME_S)
    brokers = raw.get("brokers") or [b for b in BROKERS if b in raw["idle"]]
    md = build_report(raw["machine"], raw["results"], raw["idle"], raw["restart"], brokers,
                      raw.get("notes") or {}, raw["elapsed_s"], raw["cmdline"],
                      raw.get("transports"), raw.get("long_topics"))
    write_report(out, md)
    print_summary(raw["results"], raw["idle"], raw["restart"], brokers, raw.get("transports"))
    log("wrote %s from %s" % (out, raw_path))


def brief(rep):
    if rep.get("error"):
        return "failed: %s" % rep["error"]
    lat = rep.get("latency_us") or {}
    return "%s msg/s, p50 %s ms, p99 %s ms, broker cpu %s, bench cpu %s" % (
        fmt_rate(rep.get("delivered_per_s")), fmt_ms(lat.get("p50")), fmt_ms(lat.get("p99")),
        pct(rep.get("broker_cpu_percent")), pct(rep.get("bench_cpu_percent")))


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
