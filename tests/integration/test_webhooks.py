"""The event stream and webhooks (docs/PROTOCOL.md "Events and webhooks"): events POSTed to a
local receiver the test starts, signed (HMAC-SHA256 over "<t>.<body>"), in order and gap-free,
at least once across an endpoint that is down and across kill -9, dead letters after
max_attempts, and hostile endpoints (silent, redirecting, huge answers) bounded without
stalling the broker."""

import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import subprocess
import threading
import time

import pytest

import dataclient as dc
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

SECRET = "s3cret-for-tests-0123456789"


class Receiver:
    """An HTTP receiver on 127.0.0.1: records each POST; mode() says how to answer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.status = 200
        self.behaviour = "answer"  # or "silent", "redirect", "huge"
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with rec.lock:
                    rec.requests.append((dict(self.headers), body, time.time()))
                    status, behaviour = rec.status, rec.behaviour
                if behaviour == "silent":
                    time.sleep(3)
                    return
                if behaviour == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                out = b"x" * (200 * 1024) if behaviour == "huge" else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                try:
                    self.wfile.write(out)
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, status=200, behaviour="answer"):
        with self.lock:
            self.status, self.behaviour = status, behaviour

    def events(self):
        with self.lock:
            return [(h, json.loads(b)) for h, b, _ in self.requests]

    def delivered(self):
        """The events the receiver answered 2xx to, deduplicated by delivery id."""
        with self.lock:
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def config(port, events="*", extra=""):
    keys = {"url": "http://127.0.0.1:%d/hook" % port, "secret": SECRET, "events": events,
            "retry_base_ms": "50", "retry_max_ms": "200", "timeout_ms": "2000"}
    for line in extra.splitlines():
        k, v = line.split(" = ", 1)
        keys[k] = v
    return "[webhook.test]\n" + "".join("%s = %s\n" % kv for kv in keys.items())


def start(start_broker, ini):
    return dc.ready_addresses(start_broker(ini, extra_args=["--http", "127.0.0.1:0"]))


session = dc.session


def send(s, to, body):
    env = s.ident.envelope(to, body)
    s.send(env)
    s.expect("ack")
    s.ident.advance(env)
    return env


def wait_for(pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def check_signature(headers, body):
    sig = headers["X-LedgerMQ-Signature"]
    parts = dict(p.split("=", 1) for p in sig.split(","))
    t = int(parts["t"])
    assert abs(time.time() - t) < 300
    want = hmac.new(SECRET.encode(), ("%d." % t).encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], want), (sig, want)


def test_events_reach_a_webhook_signed_in_order_and_gap_free(start_broker, receiver):
    b = start(start_broker, config(receiver.port))
    alice, bob = lc.Identity(), lc.Identity()
    sa = session(b, alice)
    envs = [send(sa, bob.id, {"n": i}) for i in range(5)]
    sa.close()
    got = wait_for(lambda: [e for _, e in receiver.events() if e["type"] == "session.ended"],
                   "session.ended")
    events = receiver.events()
    ids = [e["id"] for _, e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # in order, no gaps
    types = [e["type"] for _, e in events]
    assert types[0] == "session.started" and types[-1] == "session.ended", types
    accepted = [e for _, e in events if e["type"] == "envelope.accepted"]
    assert [e["data"]["envelope"] for e in accepted] == envs
    assert [e["data"]["link"] for e in accepted] == [lc.link(env) for env in envs]
    for (headers, _), (_, body, _) in zip(events, receiver.delivered()):
        check_signature(headers, body)
        event = json.loads(body)
        assert headers["X-LedgerMQ-Event"] == event["type"]
        assert headers["X-LedgerMQ-Delivery"] == str(event["id"])
        assert headers["X-LedgerMQ-Webhook"] == "test"
        assert headers["Content-Type"] == "application/json"
    assert got[0]["data"]["identity"] == alice.id
    # A changed byte no longer verifies: what a receiver must check.
    headers, body, _ = receiver.delivered()[0]
    with pytest.raises(AssertionError):
        check_signature(headers, body.replace(b'"id"', b'"Id"'))


def test_an_endpoint_down_gets_every_event_afterwards_in_order(start_broker, receiver):
    b = start(start_broker, config(receiver.port, events="envelope.accepted",
                                   extra="breaker_failures = 3\nbreaker_open_ms = 200\n"
                                         "max_attempts = 1000\n"))
    receiver.set(status=503)
    alice, bob = lc.Identity(), lc.Identity()
    sa = session(b, alice)
    envs = [send(sa, bob.id, {"n": i}) for i in range(20)]
    wait_for(lambda: len(receiver.events()) >= 3, "failed attempts")
    b.wait_event("webhook_circuit_open")
    receiver.set(status=200)
    b.wait_event("webhook_circuit_closed", timeout=20)
    ok = wait_for(lambda: (lambda seen: seen if len(seen) == 20 else None)(
        sorted({e["id"] for h, e in receiver.events()})), "20 events", timeout=30)
    # Every envelope, in order: after the first answered 2xx, each id once and increasing.
    events = [e for _, e in receiver.events()]
    firsts = {}
    for i, e in enumerate(events):
        firsts.setdefault(e["id"], i)
    order = sorted(firsts, key=firsts.get)
    assert order == ok, order
    assert [e["data"]["envelope"] for e in
            sorted({e["id"]: e for e in events}.values(), key=lambda e: e["id"])] == envs
    def metrics():
        text = lc.http_get(b.http_addr, "/metrics")[1].decode()
        return ('ledgermq_webhook_lag_events{webhook="test"} 0' in text and
                'ledgermq_webhook_deliveries_total{webhook="test",result="ok"} 20' in text)
    wait_for(metrics, "lag 0 and 20 delivered in /metrics")
    sa.close()


def deliveries_by_id(receiver):
    return {e["id"]: e for _, e in receiver.events()}


def test_kill9_loses_no_event_and_the_harness_sees_a_loss(start_broker, receiver):
    """Events accepted while the endpoint is down survive kill -9: after the restart the
    endpoint gets each of them. Control: an event deleted from the store while the broker is
    down is reported missing by the same check."""
    def run(tamper):
        receiver.requests.clear()
        receiver.set(status=500)
        b = start(start_broker, config(receiver.port, events="envelope.accepted",
                                       extra="max_attempts = 1000\n"))
        alice, bob = lc.Identity(), lc.Identity()
        sa = session(b, alice)
        envs = [send(sa, bob.id, {"n": i}) for i in range(30)]  # acked: durable
        sa.close()
        b.kill9()
        if tamper:
            db = sqlite3.connect(os.path.join(b.data_dir, "ledgermq.db"))
            db.execute("DELETE FROM events WHERE id = (SELECT min(id) + 5 FROM events "
                       "WHERE type = 'envelope.accepted')")
            db.commit()
            db.close()
        receiver.set(status=200)
        b.restart()
        links = {lc.link(env) for env in envs}
        try:
            wait_for(lambda: links <= {e["data"]["link"] for e in
                                       deliveries_by_id(receiver).values()},
                     "every accepted envelope", timeout=15)
            return None
        except AssertionError as e:
            got = {e["data"]["link"] for e in deliveries_by_id(receiver).values()}
            return len(links - got)

    assert run(tamper=False) is None
    assert run(tamper=True) == 1  # the harness detects a lost event


def test_dead_letters_after_max_attempts_then_the_next_event(start_broker, receiver):
    b = start(start_broker, config(receiver.port, events="envelope.accepted",
                                   extra="max_attempts = 2\nbreaker_failures = 100\n"))
    receiver.set(status=500)
    alice, bob = lc.Identity(), lc.Identity()
    sa = session(b, alice)
    send(sa, bob.id, {"n": 1})
    dead = b.wait_event("webhook_dead_letter")
    assert dead["webhook"] == "test" and dead["attempt"] == 2 and "500" in dead["error"]
    receiver.set(status=200)
    env = send(sa, bob.id, {"n": 2})
    wait_for(lambda: [e for _, e in receiver.events()
                      if e["data"]["link"] == lc.link(env)], "the next event")
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.data_dir, "ledgermq.db"), uri=True)
    rows = db.execute("SELECT consumer, event_id, attempts FROM event_dead").fetchall()
    db.close()
    assert rows == [("webhook:test", dead["event_id"], 2)], rows
    sa.close()


@pytest.mark.parametrize("behaviour", ["silent", "redirect", "huge"])
def test_hostile_endpoints_fail_the_attempt_and_never_stall_the_broker(start_broker, receiver,
                                                                       behaviour):
    b = start(start_broker, config(receiver.port, events="envelope.accepted",
                                   extra="timeout_ms = 500\nmax_attempts = 1000\n"))
    receiver.set(behaviour=behaviour)
    alice, bob = lc.Identity(), lc.Identity()
    sa = session(b, alice)
    send(sa, bob.id, {"n": 0})
    failed = b.wait_event("webhook_failed")
    want = {"silent": "timed out", "redirect": "302", "huge": "64 KiB"}[behaviour]
    assert want.lower() in (failed.get("error", "") + str(failed.get("status", ""))).lower(), \
        failed
    # Meanwhile the broker answers at once: envelopes keep being accepted.
    for i in range(5):
        t0 = time.monotonic()
        send(sa, bob.id, {"n": i + 1})
        assert time.monotonic() - t0 < 2
    sa.close()


@pytest.mark.parametrize("ini, message", [
    ("[webhook.x]\nurl = http://127.0.0.1:1/\n", "[webhook.x] needs url and secret"),
    ("[webhook.x]\nurl = ftp://h/\nsecret = %s\n" % SECRET, "[webhook.x] url: expected"),
    ("[webhook.x]\nurl = http://h/\nsecret = short\n", "[webhook.x] secret: expected 16..255"),
    ("[webhook.bad name]\nurl = http://h/\n", "a webhook's name is"),
    ("[webhook.x]\nevents = Envelope.Accepted\n", "[webhook.x] events: expected"),
    ("[webhook.x]\ntimeout_ms = 5\n", "[webhook.x] timeout_ms: expected an integer 100..600000"),
    ("[webhook.x]\ncolour = red\n", "[webhook.x] colour: unknown key"),
    ("[events]\nrecord = yes\n", "[events] record: expected true or false"),
])
def test_bad_webhook_configuration_stops_the_start_with_one_line(tmp_path, ini, message):
    (tmp_path / "c.ini").write_text(ini)
    p = subprocess.run([os.environ["LEDGERMQ_BIN"], "serve", "--config", "c.ini", "--mqtt",
                        "127.0.0.1:0", "--http", "none"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.startswith("ledgermq: serve: ") and p.stderr.count("\n") == 1, p.stderr
    assert message in p.stderr, p.stderr
    assert not (tmp_path / "data").exists()


def test_a_finished_job_is_an_event(start_broker, receiver):
    b = start(start_broker, config(receiver.port, events="job.*") +
              "[jobs]\nexpire_messages = @every 1s\n")
    got = wait_for(lambda: [e for _, e in receiver.events() if e["type"] == "job.finished"],
                   "job.finished")
    data = got[0]["data"]
    assert data["job"] == "expire_messages" and data["state"] == "ok", data
    assert data["ended_ms"] >= data["started_ms"] > 0 and data["manual"] is False
    assert b.events("job_run_ended")
