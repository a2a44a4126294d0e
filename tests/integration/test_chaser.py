"""The chaser job (src/jobs/jobs_chaser.c; docs/ARCHITECTURE.md "Scheduled jobs") against the
real binary: a request (an envelope of [jobs] chaser.type) its recipient has not answered (no
envelope back to the sender with body.in_reply_to = the request's link) gets server-signed
ledgermq.reminder envelopes 1..chaser.max, at least chaser.after_s apart, then no more; an
answered one gets none (or none after the answer); the count is read from the ledger, so a
kill -9 and restart never exceed chaser.max; the three queries use schema 10's indexes; bad
[jobs] chaser.* lines stop the start."""

import json
import sqlite3
import time

import pytest

import dataclient as dc
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

REQ = "com.example.FormRequest"
WAIT_S = 20


def config(extra=(), max_=3):
    return ("[server]\nhttp = 127.0.0.1:0\n[jobs]\nchaser = @every 1s\nchaser.type = %s\n"
            "chaser.after_s = 1\nchaser.max = %d\n" % (REQ, max_)) + "".join(
                line + "\n" for line in extra)


def db(broker):
    return sqlite3.connect("file:%s/ledgermq.db?mode=ro" % broker.data_dir, uri=True, timeout=10)


def reminders(broker):
    """The committed reminders: {request link: [(n, created_ms, to, request_type)...]}."""
    conn = db(broker)
    try:
        rows = conn.execute("SELECT envelope, created_ms FROM ledger ORDER BY idx").fetchall()
    finally:
        conn.close()
    out = {}
    for env_bytes, created in rows:
        env = json.loads(bytes(env_bytes))
        if env["type"] == "ledgermq.reminder":
            b = env["body"]
            out.setdefault(b["reminder_of"], []).append(
                (b["n"], created, env["to"], b["request_type"], env["from"]))
    return out


def runs_ended(broker):
    return len([e for e in broker.events("job_run_ended") if e["job"] == "chaser"])


def wait_runs(broker, n):
    """Waits for n more chaser runs to end."""
    target = runs_ended(broker) + n
    deadline = time.monotonic() + WAIT_S
    while runs_ended(broker) < target:
        assert time.monotonic() < deadline, broker.log_text()
        time.sleep(0.1)


def wait_count(broker, link, n):
    deadline = time.monotonic() + WAIT_S
    while len(reminders(broker).get(link, [])) < n:
        assert time.monotonic() < deadline, (reminders(broker), broker.log_text())
        time.sleep(0.1)


def send(s, to, body, type_):
    """Sends an envelope that must be accepted; returns its link."""
    env = s.ident.envelope(to, body, type_=type_)
    s.send(env)
    while True:
        leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
        if leaf != "inbox":
            break
    assert leaf == "ack", msg
    s.ident.advance(env)
    return lc.link(env)


def check_series(series, to, max_):
    assert [r[0] for r in series] == list(range(1, max_ + 1)), series
    assert all(r[2] == to and r[3] == REQ for r in series), series
    gaps = [b[1] - a[1] for a, b in zip(series, series[1:])]
    assert all(g >= 1000 for g in gaps), gaps  # at least after_s apart


def test_an_unanswered_request_gets_reminders_1_to_max_then_no_more(start_broker):
    b = dc.ready_addresses(start_broker(config()))
    alice, bob = lc.Identity(), lc.Identity()
    sa, sb = dc.session(b, alice), dc.session(b, bob)
    link = send(sa, bob.id, {"form": "tax"}, REQ)
    other = send(sa, bob.id, {"just": "a note"}, "note")  # not the chaser's type: never reminded
    wait_count(b, link, 3)
    wait_runs(b, 3)
    got = reminders(b)
    assert other not in got, got
    series = got[link]
    check_series(series, bob.id, 3)
    assert all(r[4] != alice.id and r[4] != bob.id for r in series)  # server-signed
    # Bob got them in his inbox, signed by the server, naming the request.
    inbox = [sb.expect("inbox")["envelope"] for _ in range(2 + 3)]  # request, note, reminders
    assert [e["type"] for e in inbox] == [REQ, "note"] + ["ledgermq.reminder"] * 3, inbox
    env = inbox[2]
    lc.verify(env)  # raises on a bad signature
    assert env["type"] == "ledgermq.reminder", env
    assert env["body"] == {"n": 1, "reminder_of": link, "request_type": REQ}, env
    ev = [e for e in b.events("job_run_ended") if e["job"] == "chaser" and e["result"] == "ok"]
    assert any(e["detail"] == "sent 1 reminders" for e in ev), ev
    sa.close(), sb.close()


def test_answered_requests_get_no_reminder_or_none_after_the_answer(start_broker):
    b = dc.ready_addresses(start_broker(config()))
    alice, bob, carol = lc.Identity(), lc.Identity(), lc.Identity()
    sa, sb, sc = dc.session(b, alice), dc.session(b, bob), dc.session(b, carol)
    r1 = send(sa, bob.id, {"form": 1}, REQ)
    r2 = send(sa, bob.id, {"form": 2}, REQ)
    r3 = send(sa, bob.id, {"form": 3}, REQ)
    send(sb, alice.id, {"in_reply_to": r1, "ok": True}, "reply")  # answers r1 at once
    send(sc, alice.id, {"in_reply_to": r2}, "reply")  # carol is not r2's recipient
    send(sb, carol.id, {"in_reply_to": r2}, "reply")  # nor is carol r2's sender
    wait_count(b, r3, 1)
    send(sb, alice.id, {"in_reply_to": r3}, "reply")  # r3 answered after its first reminder
    wait_count(b, r2, 3)
    wait_runs(b, 3)
    got = reminders(b)
    assert r1 not in got, got
    check_series(got[r2], bob.id, 3)
    assert [r[0] for r in got[r3]] == [1], got[r3]
    sa.close(), sb.close(), sc.close()


def test_reminders_survive_kill9_and_restart_without_exceeding_max(start_broker):
    b = dc.ready_addresses(start_broker(config(max_=3)))
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    link = send(sa, bob.id, {"form": "kill"}, REQ)
    sa.close()
    wait_count(b, link, 1)
    b.kill9()
    b.restart()
    wait_count(b, link, 2)
    b.kill9()
    b.restart()
    wait_count(b, link, 3)
    wait_runs(b, 3)
    check_series(reminders(b)[link], bob.id, 3)


def test_the_chaser_queries_use_the_schema_10_indexes(start_broker):
    b = start_broker(config())
    conn = db(b)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 10
        plans = {}
        for name, sql in {
            "ledger_by_type": "SELECT idx FROM ledger WHERE json_extract(CAST(envelope AS TEXT),"
                              " '$.type') = 'x' AND idx >= 0 ORDER BY idx LIMIT 10",
            "ledger_by_reply": "SELECT 1 FROM ledger WHERE json_extract(CAST(envelope AS TEXT),"
                               " '$.body.in_reply_to') = 'x' AND sender = x'00' AND"
                               " recipient = x'00' LIMIT 1",
            "ledger_by_reminder": "SELECT count(*) FROM ledger WHERE json_extract(CAST(envelope"
                                  " AS TEXT), '$.body.reminder_of') = 'x' AND sender = x'00'",
        }.items():
            plans[name] = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
            assert "USING INDEX " + name in plans[name], plans
    finally:
        conn.close()


@pytest.mark.parametrize("lines,message", [
    (["chaser = @every 1s"], "[jobs] chaser is scheduled but chaser.type is not set"),
    (["chaser.type = bad type"], "[jobs] chaser.type: expected an envelope type"),
    (["chaser.type = " + "x" * 65], "[jobs] chaser.type: expected an envelope type"),
    (["chaser.type = ledgermq.reminder"], "ledgermq.reminder is the reminders' own type"),
    (["chaser.max = 0"], "[jobs] chaser.max: expected an integer 1..1000"),
    (["chaser.after_s = soon"], "[jobs] chaser.after_s: expected an integer"),
    (["chaser.batch = 0"], "[jobs] chaser.batch: expected an integer 1..10000"),
    (["chaser.color = red"], "[jobs] chaser.color: unknown key"),
])
def test_bad_chaser_lines_are_config_errors(start_broker, lines, message):
    text = "[jobs]\n" + "".join(line + "\n" for line in lines)
    b = start_broker(text, wait_ready=False, expect_exit=1)
    b.wait_exit(1)
    assert message in b.log_text(), b.log_text()


def test_a_run_goes_through_all_requests_in_steps_of_chaser_batch(start_broker):
    b = dc.ready_addresses(start_broker(config(["chaser.batch = 2"], max_=1)))
    alice = lc.Identity()
    others = [lc.Identity() for _ in range(5)]
    sa = dc.session(b, alice)
    links = [send(sa, o.id, {"form": i}, REQ) for i, o in enumerate(others)]
    sa.close()
    for link in links:
        wait_count(b, link, 1)
    wait_runs(b, 2)
    got = reminders(b)
    assert all([r[0] for r in got[link]] == [1] for link in links), got
    assert [got[link][0][2] for link in links] == [o.id for o in others]
    sent = [e["count"] for e in b.events("job_run_ended") if e["job"] == "chaser"]
    # 5 in all, by one run (or two, if the requests straddled a tick): a run reminded more than
    # one step's 2 requests, so its steps went on from where the last one stopped.
    assert sum(sent) == 5 and max(sent) > 2, sent
