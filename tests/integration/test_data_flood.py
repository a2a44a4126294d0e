"""Floods against the data layer's routes (docs/SECURITY.md "Typed objects", "Data reads under
load"): one address (127.0.0.2) sends the most expensive GraphQL documents the limits allow,
pipelined on many connections, authenticated (an identity in readers_all, so every query reads
everything) and not, syntax errors, bodies over the limit, REST lists and the public documents,
slowloris request heads and more connections than its share, while a second address
(127.0.0.1) keeps using the broker: its REST and GraphQL reads and an MQTT client's QoS 1
publish/ack/delivery round trips must each complete within LIVENESS_S (a liveness bound, not a
benchmark). The flooder must be refused as documented (401, 413, 408, 429 with Retry-After,
connections over its share closed at accept), and the broker must answer correctly afterwards.
LMQ_FLOOD_BUDGET=0 (read_budget_ms_per_s = 0: no budget) is the control run that shows the
liveness check catches the starvation the budget prevents."""

import json
import os
import signal
import socket
import threading
import time
import urllib.parse

import pytest

import dataclient as dc
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

FLOODER_ADDR = "127.0.0.2"
FLOOD_S = 12.0
# The sanitizer build (make test-asan sets ASAN_OPTIONS) runs the same work several times
# slower: the bounds and graphql_max_ms scale with it, what is checked stays the same.
SLOWDOWN = 4 if os.environ.get("ASAN_OPTIONS") else 1
LIVENESS_S = 2.0 * SLOWDOWN
SEED_PAYMENTS = 300
SEED_ACCOUNTS = 20
PIPELINERS = 24  # connections pipelining expensive GraphQL documents
PIPELINE_DEPTH = 4  # requests in flight on each
MIXED_WORKERS = 4  # cheap, malformed and unauthenticated requests
SLOWLORIS = 8  # connections sending a request head one header every 0.5 s
STORM_CONNECTIONS = 160  # more than http_max_connections_per_address (128)
HEADER_TIMEOUT_MS = 2000

ACCOUNT = {
    "$id": "com.example.Account",
    "type": "object",
    "properties": {
        "iban": {"type": "string", "x-index": True},
        "rank": {"type": "integer", "minimum": 0, "maximum": 1000},
    },
    "required": ["iban"],
}
PAYMENT = {
    "$id": "com.example.Payment",
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "x-index": True},
        "currency": {"enum": ["EUR", "USD"], "x-index": True},
        "memo": {"type": "string", "x-index": True},
        "account": {"type": "string", "x-link": "com.example.Account", "x-index": True},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}
NODE = ("amount currency memo _permalink _author _time account { iban rank _permalink }")
# 17 fields an alias (rl, edges, node, 6 + account's 4, cursor, pageInfo's 3): 58 aliases stay
# within graphql_max_fields (1,000), each a distinct page of 100 payments and their accounts.
EXPENSIVE_ALIASES = 58
EXPENSIVE = "{ %s }" % " ".join(
    "a%d: rl_com_example_Payment(limit: 100, filter: {amount: {GTE: %d}}) { edges { node { %s } "
    "cursor } pageInfo { endCursor hasNextPage } }" % (i, i + 1, NODE)
    for i in range(EXPENSIVE_ALIASES))


def http_request(method, path, host, body=None, token=None, ctype="application/json"):
    head = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
    if token is not None:
        head.append("Authorization: Bearer " + token)
    if body is not None:
        head += ["Content-Type: " + ctype, "Content-Length: %d" % len(body)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def gql_body(query):
    return json.dumps({"query": query}).encode()


class Reader:
    """Reads HTTP/1.1 responses (Content-Length framed, as the broker sends them) off a socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def response(self):
        """(status, headers dict with lower-case names, body bytes)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body


class Flood:
    """The flooder's threads (all from FLOODER_ADDR) and what they saw."""

    def __init__(self, b, token):
        self.host, port = b.http_addr.rsplit(":", 1)
        self.addr = (self.host, int(port))
        self.token = token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses = {}  # kind -> {status: count}
        self.retry_after = set()  # Retry-After values seen on 429
        self.closed_at_once = 0  # storm connections closed before sending anything
        self.errors = []
        self.threads = []

    def count(self, kind, status, headers=None):
        with self.lock:
            self.statuses.setdefault(kind, {})
            self.statuses[kind][status] = self.statuses[kind].get(status, 0) + 1
            if status == 429 and headers is not None:
                self.retry_after.add(headers.get("retry-after"))

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.bind((FLOODER_ADDR, 0))
        s.connect(self.addr)
        return s

    def run(self, target, *args):
        def body():
            while not self.stop.is_set():
                try:
                    target(*args)
                except (OSError, ConnectionError):
                    time.sleep(0.01)  # closed, refused or timed out: reconnect
                except Exception as e:  # noqa: BLE001 - reported by the test
                    self.errors.append(repr(e))
                    return
        t = threading.Thread(target=body, daemon=True)
        t.start()
        self.threads.append(t)

    def pipeliner(self):
        """PIPELINE_DEPTH expensive documents in flight on one keep-alive connection."""
        req = http_request("POST", "/graphql", self.host, gql_body(EXPENSIVE), self.token)
        with self.connect() as s:
            r = Reader(s)
            s.sendall(req * PIPELINE_DEPTH)
            while not self.stop.is_set():
                status, headers, body = r.response()
                self.count("expensive", status, headers)
                if status == 200:
                    assert b'"a0"' in body or b"errors" in body, body[:200]
                if headers.get("connection", "").lower() == "close":
                    return
                s.sendall(req)

    MIXED = [
        ("unauthenticated", http_request("POST", "/graphql", "x", gql_body(EXPENSIVE))),
        ("bad_token", http_request("POST", "/graphql", "x", gql_body("{ _types }"), "x.y.z")),
        ("syntax", http_request("POST", "/graphql", "x", gql_body("{ rl_com_example_Payment("),
                                "TOKEN")),
        ("too_deep", http_request("POST", "/graphql", "x",
                                  gql_body("{ " + "a { " * 40 + "b" + " }" * 41), "TOKEN")),
        ("get_query", http_request("GET", "/graphql?" + urllib.parse.urlencode(
            {"query": EXPENSIVE[:EXPENSIVE.index(" a4:")] + " }"}), "x", None, "TOKEN")),
        ("rest_list", http_request("GET", "/api/v1/com.example.Payment?limit=100", "x", None,
                                   "TOKEN")),
        ("rest_unindexed", http_request("GET", "/api/v1/com.example.Account?rank=5", "x", None,
                                        "TOKEN")),
        ("rest_unauthenticated", http_request("GET", "/api/v1/com.example.Payment", "x")),
        ("openapi", http_request("GET", "/openapi.json", "x")),
        ("graphiql", http_request("GET", "/graphiql", "x")),
        ("sdl", http_request("GET", "/graphql/schema.graphql", "x")),
        # Last: a head over http_max_header_bytes is answered 431 and the connection closes.
        ("head_too_large", http_request("GET", "/graphql?" + urllib.parse.urlencode(
            {"query": EXPENSIVE}), "x", None, "TOKEN")),
    ]

    def mixed(self):
        """Cheap and malformed requests, each pipelined 8 deep (the last once: it ends the
        connection), one kind after another."""
        with self.connect() as s:
            r = Reader(s)
            for kind, req in self.MIXED:
                req = req.replace(b"Bearer TOKEN", b"Bearer " + self.token.encode())
                depth = 1 if kind == "head_too_large" else 8
                s.sendall(req * depth)
                for _ in range(depth):
                    status, headers, _ = r.response()
                    self.count(kind, status, headers)
                if self.stop.is_set():
                    return

    def huge(self):
        """A body over http_max_body_bytes (64 KiB): 413, and the connection closes."""
        with self.connect() as s:
            body = gql_body("{ _types }" + " " * 200000)
            try:
                s.sendall(http_request("POST", "/graphql", self.host, body, self.token))
            except OSError:
                pass  # the broker answered and closed before taking it all
            status, headers, _ = Reader(s).response()
            self.count("huge", status, headers)

    def slowloris(self):
        """A request head never finished: one more header every 0.5 s until the broker ends it."""
        with self.connect() as s:
            s.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
            deadline = time.monotonic() + 3 * HEADER_TIMEOUT_MS / 1000
            while time.monotonic() < deadline and not self.stop.is_set():
                try:
                    s.sendall(b"X-Slow: %d\r\n" % int(time.monotonic() * 1000))
                except OSError:
                    break
                s.settimeout(0.5)
                try:
                    if s.recv(1, socket.MSG_PEEK):
                        break
                except socket.timeout:
                    continue
            s.settimeout(5)
            status, headers, _ = Reader(s).response()
            self.count("slowloris", status, headers)

    def storm(self):
        """STORM_CONNECTIONS idle connections at once; those over the address's share are closed
        at accept (before any byte is sent)."""
        socks = []
        try:
            for _ in range(STORM_CONNECTIONS):
                try:
                    socks.append(self.connect())
                except OSError:
                    pass
            time.sleep(0.5)
            for s in socks:
                s.settimeout(0)
                try:
                    if s.recv(1) == b"":
                        with self.lock:
                            self.closed_at_once += 1
                except BlockingIOError:
                    pass
                except OSError:  # reset
                    with self.lock:
                        self.closed_at_once += 1
        finally:
            for s in socks:
                s.close()
        self.stop.wait(0.5)

    def answered_in_full(self, attempts=6):
        """After the flood: EXPENSIVE from the flooder's address, answered in full once its
        budget has refilled (waiting out each 429's Retry-After)."""
        req = http_request("POST", "/graphql", self.host, gql_body(EXPENSIVE), self.token)
        for _ in range(attempts):
            with self.connect() as s:
                s.sendall(req)
                status, headers, raw = Reader(s).response()
            body = json.loads(raw)
            if status == 200 and "errors" not in body:
                return body
            assert status == 429 or "took longer than the limit" in str(body), (status, raw)
            time.sleep(int(headers.get("retry-after", "2")))
        raise AssertionError("the flooder is never served again: %s" % raw[:300])

    def start(self):
        for _ in range(PIPELINERS):
            self.run(self.pipeliner)
        for _ in range(MIXED_WORKERS):
            self.run(self.mixed)
        for _ in range(SLOWLORIS):
            self.run(self.slowloris)
        self.run(self.huge)
        self.run(self.storm)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)
        assert not any(t.is_alive() for t in self.threads), "flooder threads did not stop"


class Victim:
    """127.0.0.1: timed REST and GraphQL reads and MQTT QoS 1 round trips."""

    def __init__(self, b, token, permalink, amount, mqtt):
        self.b, self.token, self.permalink, self.amount, self.mqtt = b, token, permalink, amount, mqtt
        self.latencies = {"rest": [], "graphql": [], "mqtt": []}
        self.failures = []

    def timed(self, kind, fn):
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a failed round trip is what the test reports
            self.failures.append("%s: %r" % (kind, e))
        self.latencies[kind].append(time.monotonic() - t0)

    def rest(self):
        status, res = dc.api(self.b, self.token, "/api/v1/com.example.Payment/" + self.permalink)
        assert status == 200 and res["amount"] == self.amount, (status, res)

    def graphql(self):
        status, body, _ = dc.post(self.b, '{ r_com_example_Payment(_permalink: "%s") { amount } }'
                                  % self.permalink, self.token)
        assert status == 200, (status, body)
        assert body["data"]["r_com_example_Payment"] == {"amount": self.amount}, body

    def mqtt_round_trip(self, n):
        payload = b"ping %d" % n
        self.mqtt.publish("victim/ping", payload, qos=1)
        msg = self.mqtt.get(timeout=LIVENESS_S * 2)
        assert msg.payload == payload, msg.payload

    def run_for(self, seconds):
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            self.timed("rest", self.rest)
            self.timed("graphql", self.graphql)
            self.timed("mqtt", lambda: self.mqtt_round_trip(n))
            n += 1
            time.sleep(0.1)

    def worst(self):
        return {k: max(v) if v else None for k, v in self.latencies.items()}


def flood_broker(start_broker, tmp_path, budget, auditor):
    ini = "readers_all = %s\n" % auditor.id
    if budget is not None:
        ini += "read_budget_ms_per_s = %d\n" % budget
    if SLOWDOWN > 1:
        ini += "graphql_max_ms = %d\n" % (250 * SLOWDOWN)
    ini += "[limits]\nhttp_header_timeout_ms = %d\n" % HEADER_TIMEOUT_MS
    return dc.start(start_broker, tmp_path, {"account.json": ACCOUNT, "payment.json": PAYMENT},
                    ini)


def seed(b, author, recipient):
    s = dc.session(b, author)
    accounts = dc.send_many(s, recipient.id, [
        {"_t": "com.example.Account", "iban": "DE%02d" % i, "rank": i}
        for i in range(SEED_ACCOUNTS)])
    links = dc.send_many(s, recipient.id, [
        {"_t": "com.example.Payment", "amount": i + 1, "currency": "EUR" if i % 2 else "USD",
         "memo": "payment %d" % i, "account": accounts[i % SEED_ACCOUNTS]}
        for i in range(SEED_PAYMENTS)])
    s.close()
    return links


def expensive_complete(b, token, attempts=6):
    """EXPENSIVE answered in full (every alias a page of 100) and how long it took; on a loaded
    machine a run may hit graphql_max_ms (250 ms) or the caller's budget: tried again."""
    for _ in range(attempts):
        t0 = time.monotonic()
        status, body, headers = dc.post(b, EXPENSIVE, token)
        took_s = time.monotonic() - t0
        if status == 200 and "errors" not in body:
            assert all(len(body["data"]["a%d" % i]["edges"]) == 100
                       for i in range(EXPENSIVE_ALIASES)), str(body)[:300]
            return body, took_s
        if status == 429:
            time.sleep(int(headers["Retry-After"]))
            continue
        assert status == 200 and "took longer than the limit" in str(body["errors"]), \
            (status, str(body)[:300])
        time.sleep(2)
    raise AssertionError("EXPENSIVE never completed: %s" % str(body)[:300])


def flood_budget():
    """The budget under test: the default unless LMQ_FLOOD_BUDGET names one (0: off)."""
    value = os.environ.get("LMQ_FLOOD_BUDGET")
    return None if value is None else int(value)


def test_a_flood_of_data_reads_from_one_address_leaves_another_served(start_broker, tmp_path):
    auditor, victim = lc.Identity(), lc.Identity()
    budget = flood_budget()
    b = flood_broker(start_broker, tmp_path, budget, auditor)
    links = seed(b, auditor, victim)
    flooder_token = lc.login(b.http_addr, auditor)
    victim_token = lc.login(b.http_addr, victim)
    # The expensive document is accepted and reads what was seeded (on an idle broker).
    body, one_query_s = expensive_complete(b, flooder_token)
    assert body["data"]["a0"]["pageInfo"]["hasNextPage"]
    assert body["data"]["a0"]["edges"][0]["node"]["account"]["iban"].startswith("DE")
    print("one expensive document: %.3f s" % one_query_s)
    time.sleep(1 + one_query_s * 5)  # 127.0.0.1's budget pays that document back (200 ms/s)

    mqtt = b.paho("victim-mqtt")
    mqtt.subscribe("victim/#", qos=1)
    v = Victim(b, victim_token, links[7], 8, mqtt)
    v.run_for(1.0)  # baseline
    assert not v.failures, v.failures
    flood = Flood(b, flooder_token)
    flood.start()
    try:
        v.run_for(FLOOD_S)
    finally:
        flood.finish()
    print("victim worst round trips (s):", v.worst(), "requests:",
          {k: len(x) for k, x in v.latencies.items()})
    print("flooder statuses:", flood.statuses, "retry-after:", flood.retry_after,
          "closed at accept:", flood.closed_at_once)
    assert not flood.errors, flood.errors
    assert b.alive()

    # The victim was served throughout.
    assert not v.failures, v.failures[:5]
    slow = {k: max(x) for k, x in v.latencies.items() if max(x) > LIVENESS_S}
    assert not slow, "round trips over %.1f s during the flood: %s" % (LIVENESS_S, slow)

    # The flooder was refused the documented way, and nothing answered 5xx.
    st = flood.statuses
    allowed = {
        "expensive": {200, 429},
        "unauthenticated": {401, 429},
        "bad_token": {401, 429},
        "syntax": {200, 400, 429},
        "too_deep": {200, 400, 429},
        "get_query": {200, 429},
        "head_too_large": {431},
        "rest_list": {200, 429},
        "rest_unindexed": {400, 429},
        "rest_unauthenticated": {401, 429},
        "openapi": {200, 429},
        "graphiql": {200, 429},
        "sdl": {200, 429},
        "huge": {413},
        "slowloris": {408},
    }
    for kind, counts in st.items():
        assert set(counts) <= allowed[kind], (kind, counts)
    for kind in ("expensive", "unauthenticated", "syntax", "huge", "slowloris"):
        assert st.get(kind), "no %s request was answered: %s" % (kind, st)
    assert flood.closed_at_once > 0 or b.metric("ledgermq_http_refused_total",
                                                '{reason="address"}') > 0
    if budget != 0:
        assert st["expensive"].get(429), st["expensive"]
        assert flood.retry_after and all(r is not None and r.isdigit() and int(r) >= 1
                                         for r in flood.retry_after), flood.retry_after
        assert b.metric("ledgermq_data_reads_refused_total") > 0

    # Afterwards: the broker answers correctly, the flooder included once its budget refilled.
    v.failures.clear()
    v.run_for(0.5)
    assert not v.failures, v.failures
    page = dc.rest(b, victim_token, "/api/v1/com.example.Payment?limit=100")
    assert len(page["results"]) == 100 and page["next"]
    body = flood.answered_in_full()
    assert body["data"]["a57"]["edges"][0]["node"]["amount"] == 58
    status, raw, _ = lc.http_get(b.http_addr, "/healthz")
    assert status == 200, raw
    mqtt.close()


def test_an_address_over_its_budget_gets_429_with_retry_after_until_sighup_lifts_it(
        start_broker, tmp_path):
    """read_budget_ms_per_s = 1: one expensive document puts 127.0.0.1 seconds into debt; every
    data route then answers 429 in its own error shape with Retry-After, without running, while
    /healthz and the login are not budgeted; SIGHUP with 0 lifts the budget."""
    auditor, victim = lc.Identity(), lc.Identity()
    b = flood_broker(start_broker, tmp_path, 1, auditor)
    links = seed(b, auditor, victim)
    token = lc.login(b.http_addr, auditor)
    status, body, _ = dc.post(b, EXPENSIVE, token)  # admitted: the bucket starts full (1 ms)
    assert status == 200, str(body)[:300]
    spent = b.metric("ledgermq_data_read_seconds_total")
    assert spent > 0.005, spent
    status, body, headers = dc.post(b, "{ _types }", token)
    assert status == 429 and body == {"errors": [{"message": "read budget exceeded: retry after "
                                                  "%s s" % headers["Retry-After"]}]}, body
    # Retry-After is the debt at 1 ms a second (each ms spent is a second to wait), up to the
    # deepest debt kept: 60 s worth.
    assert abs(int(headers["Retry-After"]) - min(60, spent * 1000)) <= 2, \
        (headers["Retry-After"], spent)
    for path in ("/api/v1/com.example.Payment/" + links[0], "/openapi.json", "/graphiql",
                 "/graphql/schema.graphql"):
        status, raw, headers = lc.http_get(b.http_addr, path, token)
        assert status == 429 and int(headers["Retry-After"]) >= 1, (path, status, raw[:200])
        if path.startswith("/api/"):
            assert json.loads(raw)["error"] == 429, raw
    assert b.metric("ledgermq_data_reads_refused_total") == 5
    assert b.metric("ledgermq_data_read_seconds_total") == spent  # refusals run nothing
    assert b.events("read_budget_exceeded"), "no read_budget_exceeded line"
    assert lc.http_get(b.http_addr, "/healthz")[0] == 200
    lc.login(b.http_addr, victim)
    # SIGHUP re-reads the budget: 0 turns it off.
    with open(os.path.join(b.workdir, "ledgermq.ini")) as f:
        ini = f.read()
    with open(os.path.join(b.workdir, "ledgermq.ini"), "w") as f:
        f.write(ini.replace("read_budget_ms_per_s = 1\n", "read_budget_ms_per_s = 0\n"))
    os.kill(b.proc.pid, signal.SIGHUP)
    b.wait_event("reload")
    assert dc.gql(b, token, "{ _types }")["_types"]
    assert dc.rest(b, token, "/api/v1/com.example.Payment/" + links[0])["amount"] == 1
