"""The admin API (docs/PROTOCOL.md "Admin API") and `ledgermq admin`: only [admin] ids get in
(401 without a token, 403 for another identity, both security events, every call an admin_call
log line); each subcommand's table and --json; kick really disconnects a paho client (MQTT 5
reason 0x98) and --end ends the session; log-level takes effect; a dead webhook event
redelivered reaches the receiver once it accepts, and leaves the dead-letter list."""

import json
import os
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

import ledgerclient as lc
from test_webhooks import Receiver, config as hook_config, wait_for

pytestmark = pytest.mark.ledgermq_only

ROUTES = [("GET", "/admin/v1/status", None), ("GET", "/admin/v1/sessions", None),
          ("POST", "/admin/v1/sessions/kick", {"client_id": "x"}),
          ("GET", "/admin/v1/identities", None), ("GET", "/admin/v1/webhooks", None),
          ("GET", "/admin/v1/webhooks/dead?webhook=test", None),
          ("POST", "/admin/v1/webhooks/redeliver", {"webhook": "test", "event_id": 1}),
          ("POST", "/admin/v1/log-level", {"level": "info"}), ("POST", "/admin/v1/reload", {}),
          ("GET", "/admin/v1/jobs", None), ("GET", "/admin/v1/jobs/history?job=export", None),
          ("POST", "/admin/v1/jobs/run", {"job": "export"}), ("GET", "/admin/v1/plugins", None),
          ("GET", "/admin/v1/nothing-here", None)]


def request(addr, method, path, token=None, body=None):
    """(status, decoded JSON body) of one request."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://%s%s" % (addr, path), data=data, headers=headers,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Admin:
    """A broker with a keygen'd admin identity and the CLI to call it."""

    def __init__(self, start_broker, tmp_path, extra=""):
        self.binary = os.environ["LEDGERMQ_BIN"]
        self.dir = tmp_path
        p = self.run("keygen", "--out", "admin.json", http=False)
        assert p.returncode == 0, p.stderr
        self.id = p.stdout.strip()
        self.broker = start_broker("[admin]\nids = %s\n%s" % (self.id, extra),
                                   extra_args=["--http", "127.0.0.1:0"])
        ready = self.broker.events("ready")[-1]
        self.http = ready["http"][0]
        self.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])

    def run(self, *args, http=True):
        argv = [self.binary, *args]
        if http:
            argv += ["--key", "admin.json", "--http", self.http]
        return subprocess.run(argv, cwd=self.dir, capture_output=True, text=True, timeout=60)

    def json(self, *args):
        p = self.run("admin", *args, "--json")
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        assert p.stdout.count("\n") == 1, p.stdout
        return json.loads(p.stdout)


def log_lines(b, event, count, pred=None):
    """The broker's log lines of event once there are count of them (the test reads its log
    from a pipe: a line may arrive after the HTTP answer it belongs to)."""
    def got():
        lines = [e for e in b.events(event) if pred is None or pred(e)]
        return lines if len(lines) >= count else None
    return wait_for(got, "%d %s lines" % (count, event), timeout=10)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_only_admin_ids_get_in_and_every_call_is_logged(start_broker, tmp_path):
    a = Admin(start_broker, tmp_path, "[events]\nrecord = true\n")
    b = a.broker
    other = lc.Identity()
    token = lc.login(a.http, other)
    for method, path, body in ROUTES:
        status, res = request(a.http, method, path, body=body)
        assert status == 401 and res["error"] == 401 and res["reason"], (path, status, res)
        status, res = request(a.http, method, path, token=token, body=body)
        assert status == 403 and res == {"error": 403, "reason": "not an admin"}, (path, res)
    n = len(ROUTES)
    assert b.metric("ledgermq_security_events_total", '{kind="admin_denied"}') == 2 * n
    denied = log_lines(b, "security", 2 * n, lambda e: e["kind"] == "admin_denied")
    assert sum(other.id in e["detail"] for e in denied) == n, denied
    # A bad token is a 401 and a bad_token event, as on every route.
    bad_before = b.metric("ledgermq_security_events_total", '{kind="bad_token"}')
    status, _ = request(a.http, "GET", "/admin/v1/status", token=token[:-4] + "AAAA")
    assert status == 401
    assert b.metric("ledgermq_security_events_total", '{kind="bad_token"}') == bad_before + 1
    calls = log_lines(b, "admin_call", 2 * n + 1)
    assert len(calls) == 2 * n + 1, calls
    assert [c["status"] for c in calls[:2]] == [401, 403]
    assert calls[1]["identity"] == other.id and "identity" not in calls[0]
    assert calls[1]["method"] == "GET" and calls[1]["path"] == "/admin/v1/status"
    # The admin's own calls: allowed, logged with its identity; unknown routes and wrong
    # methods answer as such only to an admin.
    assert a.run("admin", "status").returncode == 0
    last = log_lines(b, "admin_call", 2 * n + 2)[-1]
    assert last == {**last, "identity": a.id, "status": 200, "path": "/admin/v1/status"}
    admin_token = a.run("token").stdout.strip()
    status, res = request(a.http, "GET", "/admin/v1/nothing-here", token=admin_token)
    assert status == 404 and res["reason"] == "no such admin route"
    status, res = request(a.http, "POST", "/admin/v1/status", token=admin_token, body={})
    assert status == 405 and res["error"] == 405
    for body in ({"client_id": 5}, {"client_id": "x", "end": "yes"}, [1]):
        status, res = request(a.http, "POST", "/admin/v1/sessions/kick", token=admin_token,
                              body=body)
        assert status == 400 and res["error"] == 400, (body, res)
    assert log_lines(b, "admin_call", 2 * n + 7)[-1]["status"] == 400
    # The event stream has each call too, in order, with the same fields.
    def stored():
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.data_dir, "ledgermq.db"),
                             uri=True)
        try:
            return [json.loads(d)["data"] for (d,) in db.execute(
                "SELECT data FROM events WHERE type = 'admin.call' ORDER BY id")]
        finally:
            db.close()

    logged = log_lines(b, "admin_call", 2 * n + 7)
    # The answer may go out before its batch is committed: wait for the last row.
    rows = wait_for(lambda: (lambda r: r if len(r) >= len(logged) else None)(stored()),
                    "the admin.call events")
    assert len(rows) == len(logged) and len(rows) > 2 * n, (len(rows), len(logged))
    for row, line in zip(rows, logged):
        assert row == {"identity": line.get("identity"), "method": line["method"],
                       "path": line["path"], "status": line["status"]}, (row, line)


def test_status_sessions_and_identities_as_tables_and_json(start_broker, tmp_path):
    a = Admin(start_broker, tmp_path)
    alice, bob = lc.Identity(), lc.Identity()
    s = lc.Session(a.mqtt_port, alice, lc.login(a.http, alice))
    env = alice.envelope(bob.id, {"n": 1})
    s.send(env)
    s.expect("ack")
    clients = [a.broker.paho("dev-%d" % i, version=5) for i in range(3)]
    st = a.json("status")
    assert st["ledger"]["size"] == 1 and st["identities"] == 2, st
    assert st["connections"]["connected"] == 4 and st["sessions"]["total"] == 4, st
    assert st["version"] and st["uptime_s"] >= 0 and st["log_level"] == "debug", st
    p = a.run("admin", "status")
    assert p.returncode == 0 and "ledger.size: 1" in p.stdout.splitlines(), p.stdout
    # Sessions: by client id, paged.
    page = a.json("sessions", "list", "--limit", "2")
    ids = [x["client_id"] for x in page["sessions"]]
    assert ids == ["dev-0", "dev-1"] and page["next"] == "dev-1" and page["total"] == 4, page
    assert page["sessions"][0]["connected"] is True and page["sessions"][0]["owner"]
    rest = a.json("sessions", "list", "--limit", "2", "--after", "dev-1")
    assert [x["client_id"] for x in rest["sessions"]][0] == "dev-2", rest
    assert len(rest["sessions"]) == 2 and rest["next"] == rest["sessions"][1]["client_id"]
    table = a.run("admin", "sessions", "list", "--limit", "2").stdout.splitlines()
    assert table[0].split()[:3] == ["CLIENT_ID", "OWNER", "CONNECTED"], table
    assert table[1].split()[0] == "dev-0" and table[-1] == "(more: --after dev-1)", table
    # Identities: the pipeline's, with the sender's seq and the recipient's inbox position.
    ids = a.json("identities", "list")
    got = {x["id"]: x for x in ids["identities"]}
    assert got[alice.id]["last_seq"] == 1 and got[bob.id]["inbox_position"] == 1, ids
    assert [x["id"] for x in ids["identities"]] == sorted(got) and ids["next"] is None
    table = a.run("admin", "identities", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "LAST_SEQ", "INBOX_POSITION"] and len(table) == 3, table
    # Bad input: a clear refusal, never a crash.
    p = a.run("admin", "sessions", "list", "--limit", "0")
    assert p.returncode == 3 and "400" in p.stderr, p.stderr
    p = a.run("admin", "sessions", "frobnicate")
    assert p.returncode == 1 and "expected one of" in p.stderr, p.stderr
    p = a.run("admin", "sessions", "kick", "nobody")
    assert p.returncode == 3 and "404 no such session" in p.stderr, p.stderr
    for c in clients:
        c.close()
    s.close()


def test_kick_disconnects_with_0x98_and_end_ends_the_session(start_broker, tmp_path):
    a = Admin(start_broker, tmp_path)
    gone = threading.Event()
    reasons = []

    def on_disconnect(_c, _u, rc, props=None):
        reasons.append(rc.value if hasattr(rc, "value") else rc)
        gone.set()

    c = paho.Client(client_id="kick-me", protocol=paho.MQTTv5, reconnect_on_failure=False)
    c.on_disconnect = on_disconnect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    c.connect("127.0.0.1", a.mqtt_port, 60, clean_start=True, properties=props)
    c.loop_start()
    try:
        wait_for(lambda: c.is_connected(), "paho connected", timeout=10)
        p = a.run("admin", "sessions", "kick", "kick-me")
        assert p.returncode == 0 and "disconnected: yes" in p.stdout, (p.stdout, p.stderr)
        assert gone.wait(10), "the client was not disconnected"
        assert reasons == [0x98], reasons
    finally:
        c.loop_stop()
    # The session stays (offline), then --end ends it.
    page = a.json("sessions", "list")
    assert [(x["client_id"], x["connected"]) for x in page["sessions"]] == [("kick-me", False)]
    out = a.json("sessions", "kick", "kick-me", "--end")
    assert out == {"client_id": "kick-me", "disconnected": False, "ended": True}, out
    assert a.json("sessions", "list")["sessions"] == []
    # MQTT 3.1.1: the connection is closed (no DISCONNECT exists to carry a reason).
    v3 = a.broker.paho("old-one", version=4)
    closed = threading.Event()
    v3.client.on_disconnect = lambda *args: closed.set()
    assert a.json("sessions", "kick", "old-one")["disconnected"] is True
    assert closed.wait(10), "the 3.1.1 client was not disconnected"
    v3.close()


def test_log_level_set_takes_effect_at_once(start_broker, tmp_path):
    a = Admin(start_broker, tmp_path)
    b = a.broker
    out = a.json("log-level", "set", "warn")
    assert out == {"before": "debug", "level": "warn"}, out

    def debug_lines():
        return [e for e in b.events() if e.get("level") == "debug"]

    c = b.paho("quiet", version=5)
    c.disconnect()
    time.sleep(0.5)
    before = len(debug_lines())
    c = b.paho("quiet", version=5)
    c.disconnect()
    time.sleep(0.5)
    assert len(debug_lines()) == before  # nothing at debug while at warn
    p = a.run("admin", "log-level", "set", "debug")
    assert p.returncode == 0 and "level: debug" in p.stdout.splitlines(), p.stdout
    c = b.paho("loud", version=5)
    c.disconnect()
    wait_for(lambda: len(debug_lines()) > before, "debug lines")
    p = a.run("admin", "log-level", "set", "loud")
    assert p.returncode == 3 and "400" in p.stderr, p.stderr


def test_reload_rereads_the_admin_ids(start_broker, tmp_path):
    a = Admin(start_broker, tmp_path)
    other = lc.Identity()
    token = lc.login(a.http, other)
    assert request(a.http, "GET", "/admin/v1/status", token=token)[0] == 403
    ini = os.path.join(a.broker.workdir, "ledgermq.ini")
    with open(ini, "w") as f:
        f.write("[admin]\nids = %s, %s\n" % (a.id, other.id))
    out = a.json("reload")
    assert out["reloaded"] is True and out["admins"] == 2, out
    assert request(a.http, "GET", "/admin/v1/status", token=token)[0] == 200
    # A config file that does not load: 422 with the file's message, the old settings stay.
    with open(ini, "w") as f:
        f.write("[admin]\nids = not-an-id\n")
    p = a.run("admin", "reload")
    assert p.returncode == 3 and "422" in p.stderr and "[admin] ids" in p.stderr, p.stderr
    assert request(a.http, "GET", "/admin/v1/status", token=token)[0] == 200


def test_a_dead_event_redelivered_reaches_the_receiver(start_broker, tmp_path, receiver):
    receiver.set(status=500)
    a = Admin(start_broker, tmp_path,
              hook_config(receiver.port, events="envelope.accepted", extra="max_attempts = 2\nbreaker_failures = 100"))
    alice, bob = lc.Identity(), lc.Identity()
    s = lc.Session(a.mqtt_port, alice, lc.login(a.http, alice))
    for i in range(2):
        env = alice.envelope(bob.id, {"n": i})
        s.send(env)
        s.expect("ack")
        alice.advance(env)
    wait_for(lambda: len(a.broker.events("webhook_dead_letter")) >= 2, "two dead letters")
    hooks = a.json("webhooks", "list")["webhooks"]
    assert [h["name"] for h in hooks] == ["test"] and hooks[0]["dead"] == 2, hooks
    assert hooks[0]["failed"] == 4 and hooks[0]["delivered"] == 0 and hooks[0]["lag"] == 0
    table = a.run("admin", "webhooks", "list").stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "URL", "POSITION", "LAG"], table
    dead = a.json("webhooks", "dead", "test")
    ids = [d["event_id"] for d in dead["dead"]]
    assert len(ids) == 2 and dead["dead"][0]["error"] == "HTTP status 500", dead
    assert dead["dead"][0]["attempts"] == 2 and dead["next"] is None
    page = a.json("webhooks", "dead", "test", "--limit", "1")
    assert [d["event_id"] for d in page["dead"]] == ids[:1] and page["next"] == ids[0]
    page = a.json("webhooks", "dead", "test", "--after", str(ids[0]))
    assert [d["event_id"] for d in page["dead"]] == ids[1:]
    # Redelivered while the receiver still fails: tried again, stays dead.
    seen = len(receiver.events())
    out = a.json("webhooks", "redeliver", "test", str(ids[1]))
    assert out == {"webhook": "test", "event_id": ids[1], "queued": True}, out
    wait_for(lambda: len(receiver.events()) >= seen + 2, "two more attempts")
    wait_for(lambda: len(a.broker.events("webhook_dead_letter")) >= 3, "dead again")
    assert [d["event_id"] for d in a.json("webhooks", "dead", "test")["dead"]] == ids
    # Once the receiver accepts, the redelivered event reaches it and leaves the list.
    receiver.set(status=200)
    seen = len(receiver.events())
    p = a.run("admin", "webhooks", "redeliver", "test", str(ids[1]))
    assert p.returncode == 0, p.stderr
    wait_for(lambda: [e for _, e in receiver.events()[seen:] if e["id"] == ids[1]],
             "the redelivered event")
    a.broker.wait_event("webhook_redelivered")
    assert [d["event_id"] for d in a.json("webhooks", "dead", "test")["dead"]] == ids[:1]
    got = [e for _, e in receiver.events()[seen:]]
    assert [e["id"] for e in got] == [ids[1]] and got[0]["type"] == "envelope.accepted"
    assert got[0]["data"]["envelope"]["body"] == {"n": 1}
    # Not dead (any more), no such webhook, malformed: refused with a reason.
    p = a.run("admin", "webhooks", "redeliver", "test", str(ids[1]))
    assert p.returncode == 3 and "404" in p.stderr and "dead-letter" in p.stderr, p.stderr
    p = a.run("admin", "webhooks", "dead", "nope")
    assert p.returncode == 3 and "no such webhook" in p.stderr, p.stderr
    p = a.run("admin", "webhooks", "redeliver", "test", "x1")
    assert p.returncode == 1 and "EVENT_ID" in p.stderr, p.stderr
    s.close()


def test_bad_input_gets_a_clear_error_and_never_a_crash(start_broker, tmp_path):
    a = Admin(start_broker, tmp_path)
    token = a.run("token").stdout.strip()
    gets = ["/admin/v1/sessions?limit=1001", "/admin/v1/sessions?limit=-1",
            "/admin/v1/sessions?limit=99999999999999999999", "/admin/v1/sessions?after=%00",
            "/admin/v1/sessions?after=%G1", "/admin/v1/sessions?after=%4",
            "/admin/v1/sessions?after=" + "x" * 2000, "/admin/v1/identities?limit=abc",
            "/admin/v1/webhooks/dead", "/admin/v1/webhooks/dead?webhook=test&after=x",
            "/admin/v1/webhooks/dead?webhook=test&after=99999999999999999999",
            "/admin/v1/webhooks/dead?webhook=" + "n" * 100]
    for path in gets:
        status, res = request(a.http, "GET", path, token=token)
        assert status in (400, 404) and res["error"] == status and res["reason"], (path, res)
    posts = [("/admin/v1/sessions/kick", {"client_id": None}),
             ("/admin/v1/sessions/kick", {"end": True}),
             ("/admin/v1/webhooks/redeliver", {"webhook": "test", "event_id": -5}),
             ("/admin/v1/webhooks/redeliver", {"webhook": "test", "event_id": "1"}),
             ("/admin/v1/webhooks/redeliver", {"webhook": "test", "event_id": 2 ** 63 - 1}),
             ("/admin/v1/log-level", {"level": 3}), ("/admin/v1/log-level", {}),
             ("/admin/v1/log-level", "debug")]
    for path, body in posts:
        status, res = request(a.http, "POST", path, token=token, body=body)
        assert status in (400, 404) and res["error"] == status and res["reason"], (path, res)
    # Not JSON at all.
    req = urllib.request.Request("http://%s/admin/v1/log-level" % a.http, data=b"{nope",
                                 headers={"Authorization": "Bearer " + token}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert a.json("status")["log_level"] == "debug"  # still serving, nothing changed


def test_a_redelivery_waiting_is_not_queued_twice(start_broker, tmp_path, receiver):
    receiver.set(status=500)
    a = Admin(start_broker, tmp_path,
              hook_config(receiver.port, events="envelope.accepted",
                          extra="max_attempts = 2\nbreaker_failures = 100"))
    alice, bob = lc.Identity(), lc.Identity()
    s = lc.Session(a.mqtt_port, alice, lc.login(a.http, alice))
    env = alice.envelope(bob.id, {"n": 0})
    s.send(env)
    s.expect("ack")
    wait_for(lambda: a.broker.events("webhook_dead_letter"), "a dead letter")
    event_id = a.json("webhooks", "dead", "test")["dead"][0]["event_id"]
    receiver.set(behaviour="silent")  # holds each attempt for 3 s, then no answer
    a.json("webhooks", "redeliver", "test", str(event_id))
    assert a.json("webhooks", "list")["webhooks"][0]["redeliveries"] == 1
    p = a.run("admin", "webhooks", "redeliver", "test", str(event_id))
    assert p.returncode == 3 and "409 already queued" in p.stderr, p.stderr
    receiver.set(status=200)  # the second attempt is answered
    wait_for(lambda: a.broker.events("webhook_redelivered"), "the redelivery", timeout=30)
    assert a.json("webhooks", "list")["webhooks"][0]["redeliveries"] == 0
    assert a.json("webhooks", "dead", "test")["dead"] == []
    s.close()


def test_jobs_and_plugins_through_the_admin_api(start_broker, tmp_path):
    guard = os.path.join(os.path.dirname(os.environ["LEDGERMQ_BIN"]), "plugins", "guard.so")
    (tmp_path / "export").mkdir()
    a = Admin(start_broker, tmp_path, extra="[jobs]\nexport = @daily\nexport.dir = %s\n"
              "[plugins]\nload = %s\n" % (tmp_path / "export", guard))
    jobs = {j["name"]: j for j in a.json("jobs", "list")["jobs"]}
    assert jobs["export"]["schedule"] == "@daily" and jobs["export"]["next_tick_ms"] > 0
    assert jobs["prune_sessions"]["schedule"] == "" and "guard_tick" in jobs
    out = a.json("jobs", "run", "export")
    assert out == {"job": "export", "started": True}, out
    a.broker.wait_event("job_run_ended", pred=lambda e: e["job"] == "export")
    runs = a.json("jobs", "history", "export")["runs"]
    assert runs[0]["manual"] is True and runs[0]["state"] == "ok", runs
    p = a.run("admin", "jobs", "history", "export")
    assert p.returncode == 0 and p.stdout.startswith("TICK_MS"), p.stdout
    p = a.run("admin", "jobs", "run", "no_such_job")
    assert p.returncode == 3 and "404" in p.stderr, p.stderr
    plugins = a.json("plugins", "list")["plugins"]
    assert [pl["name"] for pl in plugins] == ["guard"]
    assert plugins[0]["hooks"].split() == ["validate", "on_event", "will_send"]
    p = a.run("admin", "plugins", "list")
    assert p.returncode == 0 and "guard" in p.stdout, p.stdout
