"""Security issue 12, retained messages: findings 5 (one SUBSCRIBE stalled the broker), 10
(non-reading subscribers pinned memory) and the retained part of 2 (no retained delivery under
id/). Each test performs the attack against the real binary and asserts the secure outcome.
Long versions: tests/attack/test_retained.py."""

import glob
import os
import socket
import sqlite3
import threading
import time
import urllib.request

import pytest

import mqttraw as m

pytestmark = pytest.mark.ledgermq_only

ATTACKER_HOST = "127.0.0.2"


def attacker_socket(port, rcvbuf_bytes=None):
    """A TCP connection to the broker from the attacker's loopback address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf_bytes is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
    s.bind((ATTACKER_HOST, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def attacker(b, client_id, version=5, timeout=60.0):
    c = m.RawClient(None, version=version, sock=attacker_socket(b.port), timeout=timeout)
    b._clients.append(c)
    c.connect(client_id)
    return c


class Pinger:
    """A control client that pings in a loop and records each round trip (with http, a GET
    /healthz on the HTTP listener too: one loop serves both)."""

    def __init__(self, b, http=False):
        self.client = b.raw(5, timeout=30.0)
        self.client.connect("control")
        self.health_url = None
        if http:
            self.health_url = "http://%s/healthz" % b.events("ready")[-1]["http"][0]
        self.latencies_s = []
        self.failures = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.client.ping()
                if self.health_url is not None:
                    with urllib.request.urlopen(self.health_url, timeout=30) as resp:
                        assert resp.status == 200, resp.status
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                self.failures.append(repr(e))
                return
            self.latencies_s.append(time.monotonic() - t0)
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=60)
        return self.latencies_s


def metrics(b):
    addr = b.events("ready")[-1]["http"][0]
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=30) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def publish_retained_burst(c, topics, payload):
    """QoS 0 retained publishes pipelined in one write, then a QoS 1 sentinel on the same
    connection: its PUBACK means every earlier publish was handled."""
    blob = b"".join(m.encode_publish(c.version, t, payload, 0, True) for t in topics)
    c.send_raw(blob)
    c.publish_acked("sentinel/burst", b"x", qos=1)


def read_publishes(c, count, timeout_s):
    """count PUBLISHes, acking QoS 1; returns {topic: packet}."""
    got = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        p = c.expect_publish(timeout=max(0.1, deadline - time.monotonic()))
        got[p.topic] = p
    return got


# ---------------------------------------------------------------- finding 5
RETAINED_COUNT = 100000
FILTERS_PER_SUBSCRIBE = 1000


def test_subscribe_with_1000_filters_over_100k_retained_does_not_stall_others(start_broker):
    b = start_broker("[limits]\nmax_retained_messages = 200000\n",
                     extra_args=["--http", "127.0.0.1:0"])
    pub = attacker(b, "filler")
    topics = ["r/%d" % i for i in range(RETAINED_COUNT)]
    publish_retained_burst(pub, topics, b"v")
    assert metrics(b)["ledgermq_retained_messages"] == RETAINED_COUNT

    pinger = Pinger(b, http=True)
    time.sleep(0.3)
    # The attack: SUBSCRIBEs of 1,000 filters that match nothing (literal and wildcard), which
    # used to cost 1,000 x 100,000 topic matches on the network thread each.
    sub = attacker(b, "stall")
    filters = []
    for i in range(FILTERS_PER_SUBSCRIBE):
        filters.append(("nomatch/%d" % i, 0) if i % 2 else ("+/x/%d" % i, 0))
    t0 = time.monotonic()
    for _ in range(3):
        ack = sub.subscribe(filters)
        assert len(ack.rcs) == FILTERS_PER_SUBSCRIBE
        assert all(rc == 0 for rc in ack.rcs), ack
    suback_s = time.monotonic() - t0
    time.sleep(0.3)

    # And a "#" subscriber gets every retained message, while the control keeps working.
    everything = attacker(b, "everything")
    everything.subscribe([("#", 0)])
    got = read_publishes(everything, RETAINED_COUNT, timeout_s=60)
    latencies = pinger.stop()

    assert not pinger.failures, pinger.failures
    assert len(latencies) >= 10, latencies
    assert max(latencies) < 1.0, "control ping took %.2f s (max of %d)" % (
        max(latencies), len(latencies))
    assert suback_s < 10, suback_s
    assert set(got) == set(topics)
    assert all(p.retain and p.payload == b"v" for p in got.values())
    everything.expect_nothing(0.3)  # each exactly once
    assert metrics(b).get("ledgermq_retained_deliveries_running", 0) == 0


def test_retained_semantics_hold_with_incremental_delivery(start_broker):
    """The SUBACK comes first, '$' topics are not matched by a first-level wildcard, shared
    subscriptions get none, expired ones are skipped, '+' walks only its level, 'a/#' matches
    'a', a message retained after the SUBSCRIBE is delivered once (live)."""
    b = start_broker()
    pub = b.connect("pub")
    for t in ("a", "a/b", "a/b/c", "a/x/c", "$sys/x", "b/c"):
        pub.publish_acked(t, t.encode(), qos=1, retain=True)
    pub.publish_acked("a/gone", b"old", qos=1, retain=True,
                      props=m.Props([("message_expiry_interval", 1)]))
    time.sleep(2.1)
    c = b.connect("sub")
    pid = c.next_pid()
    c.send_raw(m.encode_subscribe(5, pid, [("a/#", 1), ("+/+/c", 0), ("$share/g/a/b", 0)]))
    first = c.recv(timeout=5)
    assert first.type == m.SUBACK, first  # before any retained message
    got = {}
    for _ in range(6):  # a, a/b, and a/b/c and a/x/c twice (both filters match them)
        p = c.expect_publish()
        got.setdefault(p.topic, []).append(p)
    c.expect_nothing(0.5)
    assert sorted(got) == ["a", "a/b", "a/b/c", "a/x/c"], got
    assert len(got["a/b/c"]) == 2 and len(got["a/x/c"]) == 2
    assert all(p.retain for ps in got.values() for p in ps)
    pub.publish_acked("a/new", b"n", qos=1, retain=True)
    live = c.expect_publish()
    assert live.topic == "a/new" and not live.retain
    c.expect_nothing(0.5)
    # Retain handling 2: nothing; the '$' topic only for a filter naming it.
    c2 = b.connect("sub2")
    c2.subscribe([("#", m.SubOpts(qos=0, retain_handling=2))])
    c2.expect_nothing(0.5)
    c2.subscribe([("$sys/#", 0)])
    assert c2.expect_publish().topic == "$sys/x"


# ---------------------------------------------------------------- finding 10
RETAINED_BIG_COUNT = 320
RETAINED_BIG_BYTES = 64 * 1024  # 320 x 64 KiB = 20 MiB retained
NON_READERS = 60
BUDGET_MIB = 16


def rss_mib(b):
    with open("/proc/%d/status" % b.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


def sanitized(b):
    """True for an ASan build, whose quarantine and shadow memory make RSS meaningless here."""
    with open(b.argv[0], "rb") as f:
        return b"__asan_init" in f.read()


def non_reader(b, i):
    """Connects and subscribes to '#' at QoS 0, and then never reads."""
    s = attacker_socket(b.port, rcvbuf_bytes=4096)
    s.sendall(m.encode_connect(5, "slow%d" % i) + m.encode_subscribe(5, 1, [("#", 0)]))
    return s


def test_non_reading_hash_subscribers_do_not_pin_memory(start_broker):
    b = start_broker("[limits]\nmax_memory_output_bytes = %d\nslow_consumer_grace_ms = 2000\n"
                     % (BUDGET_MIB * 1024 * 1024), extra_args=["--http", "127.0.0.1:0"])
    pub = b.connect("filler")
    payload = b"p" * RETAINED_BIG_BYTES
    for i in range(RETAINED_BIG_COUNT):
        pub.publish_acked("big/%d" % i, payload, qos=1, retain=True)
    time.sleep(0.5)
    base_mib = rss_mib(b)
    pinger = Pinger(b)
    socks = [non_reader(b, i) for i in range(NON_READERS)]
    peak_mib = base_mib
    peak_output = 0
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        peak_mib = max(peak_mib, rss_mib(b))
        peak_output = max(peak_output, metrics(b)["ledgermq_output_bytes"])
        time.sleep(0.05)
    # Unbounded, each would hold max_output_bytes (4 MiB): 60 x 4 = 240 MiB over the base.
    if not sanitized(b):
        assert peak_mib - base_mib < BUDGET_MIB + 40, (base_mib, peak_mib)
    # Over the budget, each may still fill up to 64 KiB plus one message.
    fair_mib = NON_READERS * (64 + RETAINED_BIG_BYTES / 1024 + 1) / 1024
    assert peak_output < (BUDGET_MIB + fair_mib) * 1024 * 1024, peak_output
    b.wait_event("output_budget_exceeded", timeout=10)
    b.wait_event("slow_consumer_closed", timeout=10)
    mt = metrics(b)
    assert mt["ledgermq_slow_consumers_closed_total"] >= 1, mt
    assert mt["ledgermq_output_bytes"] < 2 * BUDGET_MIB * 1024 * 1024, mt
    # The broker still serves: a reading "#" subscriber gets every retained message.
    reader = b.raw(5, timeout=30.0)
    reader.connect("reader")
    reader.subscribe([("#", 0)])
    got = read_publishes(reader, RETAINED_BIG_COUNT, timeout_s=30)
    assert all(len(p.payload) == RETAINED_BIG_BYTES for p in got.values())
    latencies = pinger.stop()
    assert not pinger.failures and latencies and max(latencies) < 1.0, (pinger.failures,
                                                                         latencies[-5:])
    for s in socks:
        s.close()


QUEUE_TEST_COUNT = 512


def test_retained_delivery_stops_at_a_full_socket_and_resumes(start_broker):
    """One subscriber that does not read: retained messages stop being pulled when its output
    is full (max_output_bytes), and the rest follows once it reads."""
    b = start_broker("[limits]\nmax_output_bytes = 262144\n",
                     extra_args=["--http", "127.0.0.1:0"])
    pub = b.connect("filler")
    payload = b"q" * 16384
    for i in range(QUEUE_TEST_COUNT):  # 8 MiB retained
        pub.publish_acked("q/%d" % i, payload, qos=1, retain=True)
    s = non_reader(b, 0)
    time.sleep(1.0)
    mt = metrics(b)
    # Still running, and what was written (the output bound, the kernel's socket buffers) or
    # queued (a few) is far from all of it.
    assert mt["ledgermq_retained_deliveries_running"] == 1, mt
    assert mt["ledgermq_queued_messages"] <= 64, mt
    assert mt['ledgermq_messages_total{direction="out",qos="0"}'] < QUEUE_TEST_COUNT / 2, mt
    c = m.RawClient(None, version=5, sock=s, timeout=30)
    c.recv()  # CONNACK
    c.expect(m.SUBACK)
    got = read_publishes(c, QUEUE_TEST_COUNT, timeout_s=30)
    assert len(got) == QUEUE_TEST_COUNT
    c.close()


# ---------------------------------------------------------------- finding 2 (retained part)
def test_hash_subscriber_never_gets_a_stored_retained_message_under_id(start_broker):
    """An old database may hold a retained forgery under id/<X>/inbox (from before retained
    publishes there were refused): a '#' subscriber that isn't X never receives it."""
    b = start_broker()
    pub = b.connect("pub")
    pub.publish_acked("plain/x", b"ok", qos=1, retain=True)
    pub.disconnect()
    b.terminate()
    dbs = [p for p in glob.glob(os.path.join(b.data_dir, "**", "*"), recursive=True)
           if os.path.isfile(p) and open(p, "rb").read(16) == b"SQLite format 3\x00"]
    assert len(dbs) == 1, dbs
    victim = "ab" * 32
    forged = ("id/%s/inbox" % victim).encode()
    db = sqlite3.connect(dbs[0])
    with db:
        next_id = db.execute("SELECT coalesce(max(id), 0) + 1000 FROM messages").fetchone()[0]
        db.execute("INSERT INTO messages(id, qos, retain, created_ms, topic, payload,"
                   " user_prop_count) VALUES (?, 1, 1, ?, ?, ?, 0)",
                   (next_id, int(time.time() * 1000), forged, b'{"forged":true}'))
        db.execute("INSERT INTO retained(topic, msg_id) VALUES (?, ?)", (forged, next_id))
        db.execute("INSERT INTO messages(id, qos, retain, created_ms, topic, payload,"
                   " user_prop_count) VALUES (?, 1, 1, ?, ?, ?, 0)",
                   (next_id + 1, int(time.time() * 1000), b"id/other", b"forged2"))
        db.execute("INSERT INTO retained(topic, msg_id) VALUES (?, ?)", (b"id/other", next_id + 1))
    db.close()
    b.restart()
    rec = b.wait_event("recovered")
    assert rec["dropped_under_id"] == 2, rec
    for version in (4, 5):
        c = b.connect("watcher%d" % version, version=version)
        c.subscribe([("#", 1)])
        p = c.expect_publish()
        assert p.topic == "plain/x" and p.payload == b"ok", p
        c.expect_nothing(1.0)
        c.subscribe([("id/#", 1)])
        c.expect_nothing(1.0)


def test_retained_walk_survives_changes_to_the_retained_set(start_broker):
    """A '#' walk paused by a subscriber that doesn't read while half the retained messages are
    cleared, others replaced and new ones added: every message is delivered at most once, the
    untouched ones all arrive (retained), the new and replaced ones arrive live, nothing else."""
    b = start_broker("[limits]\nmax_output_bytes = 16384\n")
    pub = b.connect("pub")
    payload = b"z" * 1024
    for i in range(2000):
        pub.publish("m/%d/x" % i, payload, qos=0, retain=True)
    pub.publish_acked("sync", b"", qos=1)
    s = attacker_socket(b.port, rcvbuf_bytes=4096)
    c = m.RawClient(None, version=5, sock=s, timeout=30)
    b._clients.append(c)
    c.send_raw(m.encode_connect(5, "walker") + m.encode_subscribe(5, 1, [("#", 0)]))
    time.sleep(0.5)  # the walk starts and stops at the full socket
    for i in range(0, 2000, 2):
        pub.publish("m/%d/x" % i, b"", qos=0, retain=True)  # cleared
    for i in range(1, 200, 2):
        pub.publish("m/%d/x" % i, b"new", qos=0, retain=True)  # replaced
    for i in range(100):
        pub.publish("m/%d/y" % i, b"added", qos=0, retain=True)  # under walked nodes
    pub.publish_acked("sync", b"", qos=1)
    assert c.recv().type == m.CONNACK
    assert c.expect(m.SUBACK)
    seen = {}
    while True:
        try:
            p = c.expect_publish(timeout=3.0)
        except m.Timeout:
            break
        key = (p.topic, p.payload, p.retain)
        assert key not in seen, key
        seen[key] = p
    untouched = {("m/%d/x" % i, payload, True) for i in range(201, 2000, 2)}
    assert untouched <= set(seen), sorted(untouched - set(seen))[:5]
    replaced_live = {("m/%d/x" % i, b"new", False) for i in range(1, 200, 2)}
    added_live = {("m/%d/y" % i, b"added", False) for i in range(100)}
    assert replaced_live <= set(seen) and added_live <= set(seen)
    old_odd = {("m/%d/x" % i, payload, True) for i in range(1, 200, 2)}
    old_even = {("m/%d/x" % i, payload, True) for i in range(0, 2000, 2)}
    live_cleared = {("m/%d/x" % i, b"", False) for i in range(0, 2000, 2)}
    # Sent before they changed (what the socket and its queue held) may also be there.
    assert set(seen) <= untouched | replaced_live | added_live | old_odd | old_even | \
        live_cleared | {("sync", b"", False)}, set(seen) - untouched
    assert not any(p.retain and p.payload in (b"new", b"added") for p in seen.values())
