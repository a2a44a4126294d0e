"""Security events in the event stream are bounded (docs/SECURITY.md "Webhooks and the event
stream"): anyone can cause them, so at most [events] security_per_s are recorded a second and
the rest of each second become one security.suppressed event with their count; the log and
/metrics still count every one. A flood of refused admin calls (two recordable events each: the
admin_denied security event and the admin.call) is the attacker here; a run with a limit above
the flood records every event (the control: the check sees what is recorded)."""

import http.client
import json
import os
import sqlite3
import time

import pytest

from test_webhooks import wait_for

pytestmark = pytest.mark.ledgermq_only

FLOOD = 300


def flood(addr):
    """FLOOD requests to /admin/v1/status without a token on one keep-alive connection; the
    seconds they took."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    start = time.monotonic()
    for _ in range(FLOOD):
        conn.request("GET", "/admin/v1/status")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401
    conn.close()
    return time.monotonic() - start


def recorded(b):
    """Types of the recorded events and the counts of the security.suppressed ones."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.data_dir, "ledgermq.db"), uri=True)
    try:
        rows = db.execute("SELECT type, data FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    types = [t for t, _ in rows]
    suppressed = [json.loads(d)["data"] for t, d in rows if t == "security.suppressed"]
    return types, suppressed


def run(start_broker, per_s):
    b = start_broker("[events]\nrecord = true\nsecurity_per_s = %d\n" % per_s,
                     extra_args=["--http", "127.0.0.1:0"])
    addr = b.events("ready")[-1]["http"][0]
    seconds = flood(addr)
    assert b.metric("ledgermq_security_events_total", '{kind="admin_denied"}') == FLOOD
    total = b.metric("ledgermq_security_events_suppressed_total")

    # Every event is either recorded or counted as suppressed, never both, never neither: once
    # the last batch is durable and the second after the flood's last one has ended (the tick
    # then records what that second suppressed).
    def settled():
        types, suppressed = recorded(b)
        kept = sum(t in ("security.admin_denied", "admin.call") for t in types)
        done = sum(s["count"] for s in suppressed) == total and kept + total == 2 * FLOOD
        return (kept, suppressed) if done else None
    kept, suppressed = wait_for(settled, "every event recorded or counted", timeout=10)
    return seconds, total, kept, suppressed


def test_a_flood_of_refused_calls_records_at_most_the_budget(start_broker):
    seconds, total, kept, suppressed = run(start_broker, 5)
    # At most 5 a second: the windows the flood spanned (at most its length + 2 partial ones).
    assert kept <= 5 * (int(seconds) + 2), (kept, seconds)
    assert total > 0 and len(suppressed) >= 1
    assert all(s["limit_per_s"] == 5 and s["count"] > 0 and s["since_ms"] > 0
               for s in suppressed), suppressed


def test_control_a_budget_above_the_flood_records_every_event(start_broker):
    _, total, kept, suppressed = run(start_broker, 100000)
    assert total == 0 and suppressed == []
    assert kept == 2 * FLOOD


def test_security_per_s_out_of_range_is_a_config_error(start_broker):
    for value in ("0", "100001", "x"):
        b = start_broker("[events]\nsecurity_per_s = %s\n" % value, expect_exit=1,
                         wait_ready=False)
        b.wait_exit(1)
        text = "\n".join(b.stderr_lines())
        assert "[events] security_per_s: expected an integer 1..100000" in text, (value, text)
