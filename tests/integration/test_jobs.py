"""The durable job scheduler (src/jobs; docs/ARCHITECTURE.md "Scheduled jobs") against the real
binary: runs on their schedule with a row each (job_runs in the store), a log line and /metrics;
kill -9 during a run -> the next start marks that tick interrupted and never runs it again;
downtime over several ticks -> one coalesced run recording how many were skipped; a run over
its timeout ends "timeout"; the prune_sessions job ends idle (or too big) offline sessions and
leaves online and young ones alone; expire_messages drops expired messages from an offline
session's stored queue before it resumes.

The test jobs test_sleep (a run of LMQ_TEST_JOB_SLEEP_MS in 50 ms steps) and test_fail exist only
with LMQ_TEST_JOBS=1.
"""

import sqlite3
import time

import pytest

import mqttraw

WAIT_S = 15


def job_config(lines, http=True):
    return ("[server]\nhttp = 127.0.0.1:0\n" if http else "") + "[jobs]\n" + "\n".join(lines) + "\n"


def jobs_env(sleep_ms):
    return {"LMQ_TEST_JOBS": "1", "LMQ_TEST_JOB_SLEEP_MS": str(sleep_ms)}


def rows(broker, job):
    """The job's stored runs, oldest first, as dicts (read-only: the broker may be running)."""
    db = sqlite3.connect("file:%s/ledgermq.db?mode=ro" % broker.data_dir, uri=True, timeout=10)
    try:
        cur = db.execute("SELECT tick_ms, manual, skipped, state, started_ms, ended_ms, detail"
                         " FROM job_runs WHERE job = ? ORDER BY tick_ms", (job,))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        db.close()


def stored_state(broker, job, tick, state):
    """Waits for the row of (job, tick) to say state (the end row commits after the log line)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = [r for r in rows(broker, job) if r["tick_ms"] == tick]
        if found and found[0]["state"] == state:
            return found[0]
        assert time.monotonic() < deadline, (job, tick, state, found)
        time.sleep(0.05)


def ended(broker, job, n, pred=None):
    """Waits for n job_run_ended lines of job in the current run; returns them."""
    deadline = time.monotonic() + WAIT_S
    while True:
        evs = [e for e in broker.events("job_run_ended") if e["job"] == job and
               (pred is None or pred(e))]
        if len(evs) >= n:
            return evs
        assert time.monotonic() < deadline, "only %d of %d runs of %s ended:\n%s" % (
            len(evs), n, job, broker.log_text())
        time.sleep(0.05)


def test_every_1s_job_runs_each_tick_with_a_row_a_log_line_and_metrics(start_broker):
    b = start_broker(job_config(["test_sleep = @every 1s", "test_fail = @every 1s"]),
                     env=jobs_env(100))
    evs = ended(b, "test_sleep", 3)
    ticks = [e["tick"] for e in evs]
    assert all(t % 1000 == 0 for t in ticks), ticks
    assert all(b2 - a == 1000 for a, b2 in zip(ticks, ticks[1:])), ticks  # one run per tick
    assert all(e["result"] == "ok" and e["detail"] == "slept 2 steps" and e["ms"] >= 50
               for e in evs), evs
    fails = ended(b, "test_fail", 1)
    assert fails[0]["result"] == "failed" and fails[0]["detail"] == "test_fail fails on purpose"
    for e in evs:
        r = stored_state(b, "test_sleep", e["tick"], "ok")
        assert r["manual"] == 0 and r["skipped"] == 0, r
        assert r["started_ms"] >= e["tick"] and r["ended_ms"] >= r["started_ms"], r
    assert stored_state(b, "test_fail", fails[0]["tick"], "failed")["detail"] == fails[0]["detail"]
    ok = b.metric("ledgermq_job_runs_total", '{job="test_sleep",result="ok"}')
    assert ok >= 3
    assert b.metric("ledgermq_job_runs_total", '{job="test_fail",result="failed"}') >= 1
    assert b.metric("ledgermq_job_runs_total", '{job="test_sleep",result="timeout"}') == 0
    last = b.metric("ledgermq_job_last_success_timestamp_seconds", '{job="test_sleep"}')
    assert abs(last - time.time()) < 10, last
    assert b.metric("ledgermq_job_last_success_timestamp_seconds", '{job="test_fail"}') == 0
    assert b.metric("ledgermq_job_running", '{job="test_sleep"}') in (0, 1)
    assert b.metric("ledgermq_job_running", '{job="prune_sessions"}') == 0


def test_kill9_during_a_run_marks_it_interrupted_and_never_reruns_the_tick(start_broker):
    b = start_broker(job_config(["test_sleep = @every 2s", "test_sleep.timeout_ms = 600000"],
                                http=False), env=jobs_env(600000))
    started = b.wait_event("job_run_started", timeout=WAIT_S,
                           pred=lambda e: e["job"] == "test_sleep")
    tick = started["tick"]
    time.sleep(0.3)  # a few steps into the run
    b.kill9()
    cut = [r for r in rows(b, "test_sleep") if r["tick_ms"] == tick]
    assert len(cut) == 1 and cut[0]["state"] == "running", cut  # committed before it started
    b.restart(env=jobs_env(100))
    intr = b.wait_event("job_run_interrupted", timeout=WAIT_S)
    assert intr["job"] == "test_sleep" and intr["tick"] == tick, intr
    later = ended(b, "test_sleep", 2)
    assert all(e["tick"] > tick for e in later), (tick, later)
    assert not [e for e in b.events("job_run_started") if e["tick"] == tick]
    stored = stored_state(b, "test_sleep", tick, "interrupted")
    assert "not rerun" in stored["detail"] and stored["ended_ms"] > 0, stored


def test_downtime_over_several_ticks_runs_once_for_the_latest_with_the_skipped_count(
        start_broker):
    b = start_broker(job_config(["test_sleep = @every 1s"], http=False), env=jobs_env(50))
    first = ended(b, "test_sleep", 1)[-1]
    b.terminate()
    last_tick = max(r["tick_ms"] for r in rows(b, "test_sleep"))
    time.sleep(4.5)
    b.restart(env=jobs_env(50))
    restarted_ms = int(time.time() * 1000)
    caught = ended(b, "test_sleep", 1)[0]
    assert caught["skipped"] >= 3, caught
    assert caught["tick"] <= restarted_ms and caught["tick"] >= last_tick + 4000, (
        caught, last_tick)
    # Exactly the coalesced tick ran of the missed ones: no row between the two runs.
    ticks = [r["tick_ms"] for r in rows(b, "test_sleep")]
    assert [t for t in ticks if last_tick < t < caught["tick"]] == [], ticks
    assert caught["skipped"] == (caught["tick"] - last_tick) // 1000 - 1, (caught, last_tick)
    assert first["tick"] <= last_tick


def test_a_run_over_its_timeout_ends_timeout_between_steps(start_broker):
    b = start_broker(job_config(["test_sleep = @every 2s", "test_sleep.timeout_ms = 300"]),
                     env=jobs_env(60000))
    e = ended(b, "test_sleep", 1)[0]
    assert e["result"] == "timeout", e
    assert e["detail"].startswith("timed out after ") and "timeout_ms 300" in e["detail"], e
    assert 300 <= e["ms"] < 2000, e
    stored_state(b, "test_sleep", e["tick"], "timeout")
    assert b.metric("ledgermq_job_runs_total", '{job="test_sleep",result="timeout"}') >= 1


def test_prune_sessions_ends_idle_offline_sessions_only(start_broker):
    b = start_broker(job_config(["prune_sessions = @every 1s", "prune_sessions.idle_s = 2"],
                                http=False))
    idle = b.connect_persistent("idle-one", expiry_s=3600)
    idle.disconnect()
    online = b.connect_persistent("online-one", expiry_s=3600)
    time.sleep(2.2)
    young = b.connect_persistent("young-one", expiry_s=3600)
    young.disconnect()
    pruned = b.wait_event("session_pruned", timeout=WAIT_S,
                          pred=lambda e: e["client_id"] == "idle-one")
    assert pruned["why"] == "idle", pruned
    assert not [e for e in b.events("session_pruned") if e["client_id"] != "idle-one"]
    expiry = mqttraw.Props([("session_expiry_interval", 3600)])
    assert b.raw().connect("young-one", clean=False, props=expiry).session_present
    assert not b.raw().connect("idle-one", clean=False, props=expiry).session_present
    run = ended(b, "prune_sessions", 1, pred=lambda e: e["count"] > 0)[0]
    assert run["detail"] == "ended 1 sessions (1 idle, 0 max_bytes)", run
    time.sleep(2.5)  # more runs: the connected session outlives them all
    assert not [e for e in b.events("session_pruned") if e["client_id"] == "online-one"]
    assert b.raw().connect("online-one", clean=False, props=expiry).session_present


def test_unknown_job_in_config_stops_the_start(start_broker):
    b = start_broker(job_config(["no_such_job = @every 1m"], http=False), wait_ready=False,
                     expect_exit=1)
    b.wait_exit(1)
    assert ("[jobs] no_such_job: no such job (known: prune_sessions, expire_messages, export, "
            "chaser, import, prune_events)") in b.log_text()


def test_settings_alone_enable_no_job(start_broker):
    b = start_broker(job_config(["expire_messages.batch = 10", "prune_sessions.idle_s = 1"],
                                http=False))
    time.sleep(1.5)
    assert not b.events("job_run_ended") and not b.events("job_run_started")


@pytest.mark.parametrize("line,message", [
    ("prune_sessions = 61 * * * *", "[jobs] prune_sessions: minute: 61 is out of range 0-59"),
    ("prune_sessions = @every 0s", "[jobs] prune_sessions: @every: expected"),
    ("prune_sessions.idle_s = 0", "[jobs] prune_sessions.idle_s: expected an integer 1.."),
    ("prune_sessions.nope = 1", "[jobs] prune_sessions.nope: unknown key (expected NAME,"),
    ("Bad-Name = @daily", "[jobs] Bad-Name: unknown key"),
])
def test_bad_jobs_lines_are_config_errors_with_the_line(start_broker, line, message):
    b = start_broker(job_config([line], http=False), wait_ready=False, expect_exit=1)
    b.wait_exit(1)
    text = b.log_text()
    assert message in text and "ledgermq.ini:" in text, text


def test_prune_sessions_ends_offline_sessions_over_max_bytes_only(start_broker):
    b = start_broker(job_config(["prune_sessions = @every 1s", "prune_sessions.max_bytes = 1500"],
                                http=False))
    for cid, topic in (("fat-one", "fat/#"), ("thin-one", "thin/#")):
        c = b.connect_persistent(cid, expiry_s=3600)
        c.subscribe([(topic, 1)])
        c.disconnect()
    online = b.connect_persistent("fat-online", expiry_s=3600)
    online.subscribe([("fat/#", 1)])
    pub = b.connect("publisher")
    for i in range(5):
        pub.publish_acked("fat/%d" % i, b"x" * 400, qos=1)
    pub.publish_acked("thin/0", b"y" * 400, qos=1)
    pruned = b.wait_event("session_pruned", timeout=WAIT_S,
                          pred=lambda e: e["client_id"] == "fat-one")
    assert pruned["why"] == "max_bytes" and pruned["queued_bytes"] > 1500, pruned
    ended(b, "prune_sessions", 2, pred=lambda e: e["tick"] > 0)
    assert {e["client_id"] for e in b.events("session_pruned")} == {"fat-one"}
    expiry = mqttraw.Props([("session_expiry_interval", 3600)])
    assert b.raw().connect("thin-one", clean=False, props=expiry).session_present
    assert not b.raw().connect("fat-one", clean=False, props=expiry).session_present
    assert online is not None  # connected all along: never ended, however much it holds


def queued_rows(broker, client_id):
    db = sqlite3.connect("file:%s/ledgermq.db?mode=ro" % broker.data_dir, uri=True, timeout=10)
    try:
        return db.execute("SELECT count(*) FROM queue WHERE client_id = ?",
                          (client_id.encode(),)).fetchone()[0]
    finally:
        db.close()


def test_expire_messages_sweeps_expired_messages_from_an_offline_queue(start_broker):
    b = start_broker(job_config(["expire_messages = @every 1s"]))
    sub = b.connect_persistent("exp-sub", expiry_s=3600)
    sub.subscribe([("e/#", 1)])
    sub.disconnect()
    pub = b.connect("exp-pub")
    short = mqttraw.Props([("message_expiry_interval", 1)])
    for i in range(3):
        pub.publish_acked("e/%d" % i, b"short%d" % i, qos=1, props=short)
    for i in range(2):
        pub.publish_acked("e/k%d" % i, b"keep%d" % i, qos=1)
    assert queued_rows(b, "exp-sub") == 5  # none can have expired yet (1 s)
    assert b.metric("ledgermq_dropped_total", '{reason="expired"}') == 0
    run = ended(b, "expire_messages", 1, pred=lambda e: e["count"] > 0)[0]
    assert run["count"] == 3 and run["detail"] == "dropped 3 expired messages", run
    # Swept while the session is offline: the rows are gone and counted, before any resume.
    deadline = time.monotonic() + WAIT_S
    while queued_rows(b, "exp-sub") != 2:
        assert time.monotonic() < deadline, queued_rows(b, "exp-sub")
        time.sleep(0.05)
    assert b.metric("ledgermq_dropped_total", '{reason="expired"}') == 3
    expiry = mqttraw.Props([("session_expiry_interval", 3600)])
    back = b.raw()
    assert back.connect("exp-sub", clean=False, props=expiry).session_present
    got = back.publishes(2)
    assert [p.payload for p in got] == [b"keep0", b"keep1"]
    back.expect_nothing(0.5)


def test_kill9_at_many_points_never_begins_a_tick_twice(start_broker, tmp_path):
    """Six kill -9s at different points of runs (right after a run started, mid-run, near its
    end), then a clean run: the work of every tick began at most once (the job writes each tick
    it begins to a file that survives the kill), each begun tick has its row, and no row is left
    "running"."""
    marks = tmp_path / "marks.txt"
    env = dict(jobs_env(300), LMQ_TEST_JOB_MARK_FILE=str(marks))
    b = start_broker(job_config(["test_sleep = @every 1s"], http=False), env=env)
    for i in range(6):
        b.wait_event("job_run_started", timeout=WAIT_S, pred=lambda e: e["job"] == "test_sleep")
        time.sleep((i % 3) * 0.12)
        b.kill9()
        b.restart(env=env)
    ended(b, "test_sleep", 2)
    b.terminate()
    begun = [int(line) for line in marks.read_text().split()]
    assert len(begun) >= 6, begun
    dup = {t for t in begun if begun.count(t) > 1}
    assert not dup, ("ticks begun twice", sorted(dup))
    stored = {r["tick_ms"]: r for r in rows(b, "test_sleep")}
    assert set(begun) <= set(stored), set(begun) - set(stored)
    assert not [r for r in stored.values() if r["state"] == "running"], stored
    interrupted = [r for r in stored.values() if r["state"] == "interrupted"]
    assert len(interrupted) >= 4, stored  # most kills landed inside a run
