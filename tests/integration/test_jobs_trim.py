"""The expire_messages job deletes what huge ended sessions left (docs/ARCHITECTURE.md "Scheduled
jobs"): while the job is scheduled, a session that ends (here: a clean start over it) with more
than 1000 stored queue rows leaves them to the job, which deletes expire_messages.batch rows per
transaction, one transaction per loop turn, so the broker answers other clients meanwhile; a
kill -9 in the middle loses nothing and the next run finishes. The new session of the same
client id never sees a row of the old one, across the restart too. Without the job scheduled,
the session's rows go in its own transaction, as before (the control)."""

import sqlite3
import time

import mqttraw

WAIT_S = 20
ROWS = 3000
BATCH = 20


def db_read(broker, sql, args=()):
    db = sqlite3.connect("file:%s/ledgermq.db?mode=ro" % broker.data_dir, uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def queue_rows(broker, client_id):
    return db_read(broker, "SELECT count(*) FROM queue WHERE client_id = ?",
                   (client_id.encode(),))[0][0]


def ended_rows(broker):
    return db_read(broker, "SELECT client_id, seq_max FROM queue_ended")


def fill_and_end(b, client_id, rows):
    """client_id's persistent session gets `rows` stored messages offline, then a clean start
    ends it (its new session subscribes again and goes offline). Returns the publisher."""
    c = b.connect_persistent(client_id, expiry_s=3600)
    c.subscribe([("big/#", 1)])
    c.disconnect()
    pub = b.connect("pub-" + client_id)
    rcs = pub.publish_pipelined("big/old", [b"old%05d" % i for i in range(rows)])
    assert rcs == [0] * rows, set(rcs)
    assert queue_rows(b, client_id) == rows
    c = b.connect_persistent(client_id, expiry_s=3600, clean=True)
    assert not c.connack.session_present
    c.subscribe([("big/#", 1)])
    c.disconnect()
    return pub


def test_a_huge_ended_session_is_deleted_in_batches_while_the_broker_answers(start_broker):
    b = start_broker("[limits]\nmax_queued_messages = 10000\n[jobs]\n"
                     "expire_messages = @every 1s\nexpire_messages.batch = %d\n" % BATCH)
    pub = fill_and_end(b, "huge", ROWS)
    pub.publish_acked("big/new", b"new-1")
    # The rows stay after the session's end (no one-statement delete) and go in batches.
    (cid, seq_max), = ended_rows(b)
    assert cid == b"huge" and seq_max >= ROWS, (cid, seq_max)
    seen, answered_mid = set(), 0
    other = b.connect("other")
    deadline = time.monotonic() + WAIT_S
    while answered_mid < 3:
        assert time.monotonic() < deadline, (sorted(seen), answered_mid, b.log_text())
        before = queue_rows(b, "huge")
        other.publish_acked("elsewhere", b"ping")  # the broker answers during the trimming
        after = queue_rows(b, "huge")
        seen |= {before, after}
        if 1 < after < before < ROWS + 1:
            answered_mid += 1
    # Several counts strictly between full and empty: many transactions, not one.
    assert len([n for n in seen if 1 < n < ROWS + 1]) >= 3, sorted(seen)
    b.kill9()  # in the middle of it
    # Restarted without the job: the old rows stay, and the new session pages in none of them.
    jobs = "expire_messages = @every 1s\n"
    b.config_text = b.config_text.replace(jobs, "")
    b.restart()
    left = queue_rows(b, "huge") - 1
    assert 0 < left < ROWS and ended_rows(b) == [(cid, seq_max)], (left, ended_rows(b))
    expiry = mqttraw.Props([("session_expiry_interval", 3600)])
    back = b.raw()
    assert back.connect("huge", clean=False, props=expiry).session_present
    assert [p.payload for p in back.publishes(1)] == [b"new-1"]
    back.expect_nothing(0.5)
    # Its next messages are queued above the old rows' seq.
    b.connect("pub2").publish_acked("big/new", b"new-2")
    assert [p.payload for p in back.publishes(1)] == [b"new-2"]
    back.disconnect()
    # The job again: its runs finish what the kill -9 interrupted.
    b.terminate()
    b.config_text = b.config_text.replace("[jobs]\n", "[jobs]\n" + jobs)
    b.restart()
    deadline = time.monotonic() + WAIT_S
    while ended_rows(b) or queue_rows(b, "huge") != 0:
        assert time.monotonic() < deadline, (ended_rows(b), queue_rows(b, "huge"))
        time.sleep(0.05)
    done = b.wait_event("job_run_ended", timeout=WAIT_S,
                        pred=lambda e: e["job"] == "expire_messages" and
                        "ended sessions" in e.get("detail", ""))
    assert done["result"] == "ok", done
    assert done["detail"] == ("dropped 0 expired messages; deleted %d stored rows of 1 ended "
                              "sessions" % left), done
    logged = b.wait_event("ended_session_rows_deleted", timeout=WAIT_S)
    assert logged == dict(logged, client_id="huge", rows=left), logged
    back = b.raw()
    assert back.connect("huge", clean=False, props=expiry).session_present
    back.expect_nothing(0.5)


def test_without_the_job_an_ended_session_goes_in_its_own_transaction(start_broker):
    b = start_broker("[limits]\nmax_queued_messages = 10000\n")
    pub = fill_and_end(b, "huge", 1500)
    pub.publish_acked("big/new", b"new-1")
    assert ended_rows(b) == [] and queue_rows(b, "huge") == 1
