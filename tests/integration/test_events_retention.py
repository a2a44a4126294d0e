"""Retention of the event stream (docs/ARCHITECTURE.md "Scheduled jobs", prune_events;
docs/PROTOCOL.md "Events and webhooks"): with [events] keep set and prune_events scheduled,
events older than keep that every consumer has passed are deleted in batches; a consumer that
is behind (here a bot that acknowledged nothing yet) holds every event after its position; the
newest event and events a dead letter refers to stay; ids are never reused after a restart; a
bot asking for events after a deleted range gets an error that says so."""

import os
import sqlite3
import time

import pytest

import ledgerclient as lc
from test_bots import Bot, start

pytestmark = pytest.mark.ledgermq_only

WAIT_S = 20
CONFIG = ("[events]\nkeep = 1s\n[jobs]\nprune_events = @every 1s\n"
          "prune_events.batch = 5\n")


def db_all(b, sql, args=()):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(b.data_dir, "ledgermq.db"), uri=True,
                         timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def event_ids(b):
    return [r[0] for r in db_all(b, "SELECT id FROM events ORDER BY id")]


def pruned(b):
    rows = db_all(b, "SELECT position FROM event_consumers WHERE consumer = 'events:pruned'")
    return rows[0][0] if rows else 0


def make_events(b, n):
    """2n events (session.started and session.ended of n raw clients)."""
    for i in range(n):
        b.connect("gen-%d-%f" % (i, time.time())).disconnect()


def wait_for(pred, what):
    deadline = time.monotonic() + WAIT_S
    while not pred():
        assert time.monotonic() < deadline, what()
        time.sleep(0.05)


def test_events_past_every_consumer_and_older_than_keep_are_deleted(start_broker):
    ident = lc.Identity()
    b = start(start_broker, [ident], CONFIG)
    make_events(b, 10)
    wait_for(lambda: len(event_ids(b)) >= 20, lambda: event_ids(b))
    newest_ms = db_all(b, "SELECT max(time_ms) FROM events")[0][0]
    # The bot acknowledged nothing: a run when every event is older than keep deletes none.
    run = b.wait_event("job_run_ended", timeout=WAIT_S,
                       pred=lambda e: e["job"] == "prune_events" and e["tick"] > newest_ms + 1000)
    assert run["result"] == "ok" and run["count"] == 0, run
    ids = event_ids(b)
    assert ids == list(range(1, len(ids) + 1)) and pruned(b) == 0
    # The bot passes 12: the events up to 12 go (in batches of 5), none after.
    bot = Bot(b, ident)
    bot.request("events/ack", {"ack": 12})
    wait_for(lambda: pruned(b) == 12, lambda: (pruned(b), event_ids(b)))
    assert event_ids(b)[0] == 13 and event_ids(b)[:len(ids) - 12] == ids[12:]
    done = b.wait_event("job_run_ended", timeout=WAIT_S,
                        pred=lambda e: e["job"] == "prune_events" and e["count"] > 0)
    assert done["count"] == 12 and done["detail"] == "deleted 12 events, up to id 12", done
    # Asking for what is gone is an error that says so; from the mark on it works.
    bot.request("events/resync", {"after": 3})
    leaf, body = bot.next()
    assert leaf == "events/sync" and "events up to 12 were deleted" in body["error"], body
    events, _ = bot.catch_up(after=12)
    assert [e["id"] for e in events][:3] == [13, 14, 15]
    bot.close()
    # A dead letter keeps its event; ids go on after a restart (none reused).
    b.terminate()
    db = sqlite3.connect(os.path.join(b.data_dir, "ledgermq.db"))
    with db:
        db.execute("INSERT INTO event_dead(consumer, event_id, attempts, error, time_ms) "
                   "VALUES('webhook:gone', 15, 1, 'test', 0)")
    db.close()
    last_before = event_ids(b)[-1]
    b.restart()
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    make_events(b, 2)
    wait_for(lambda: event_ids(b)[-1] >= last_before + 4, lambda: event_ids(b))
    assert [i for i in event_ids(b) if i > last_before][0] == last_before + 1  # none reused
    bot = Bot(b, ident)
    bot.catch_up(ack=True)
    newest = event_ids(b)[-1]
    wait_for(lambda: pruned(b) >= newest - 1, lambda: (pruned(b), newest, event_ids(b)))
    left = event_ids(b)
    assert 15 in left and left[-1] >= newest and [i for i in left if i != 15][0] >= newest, left
    bot.close()
    # Everything but the newest and the dead-lettered one is gone: the next ids count on.
    top = event_ids(b)[-1]
    make_events(b, 1)
    wait_for(lambda: len([i for i in event_ids(b) if i > top]) >= 2, lambda: event_ids(b))
    assert [i for i in event_ids(b) if i > top][:2] == [top + 1, top + 2]


def test_keep_0_and_bad_values(start_broker):
    b = start_broker("[events]\nkeep = 7x\n", wait_ready=False, expect_exit=1)
    b.wait_exit(1)
    assert "[events] keep: expected 0 or <n>s|m|h|d" in b.log_text()
    b = start_broker("[events]\nrecord = true\nkeep = 0\n[jobs]\nprune_events = @every 1s\n")
    make_events(b, 2)
    run = b.wait_event("job_run_ended", timeout=WAIT_S,
                       pred=lambda e: e["job"] == "prune_events")
    assert run["result"] == "ok" and run["detail"] == "[events] keep is 0: all are kept", run


def test_a_bot_added_after_a_prune_starts_from_the_mark(start_broker):
    # A bot added to [bots] ids once events were deleted has position 0: its `{}` (what a
    # state directory that has handled nothing sends, libledgermq's first request) starts
    # after the mark P instead of being refused, which would leave such a bot stuck for good.
    old, new = lc.Identity(), lc.Identity()
    b = start(start_broker, [old], CONFIG)
    make_events(b, 4)
    wait_for(lambda: len(event_ids(b)) >= 8, lambda: event_ids(b))
    bot = Bot(b, old)
    bot.catch_up(ack=True)
    bot.close()
    wait_for(lambda: pruned(b) >= 7, lambda: (pruned(b), event_ids(b)))
    b.terminate()
    mark = pruned(b)
    b.config_text = b.config_text.replace("ids = %s" % old.id, "ids = %s, %s" % (old.id, new.id))
    b.restart()
    ready = b.events("ready")[-1]
    b.http_addr, b.mqtt_port = ready["http"][0], int(ready["mqtt"][0].rsplit(":", 1)[1])
    bot = Bot(b, new)
    events, markers = bot.catch_up()
    assert "error" not in markers[0] and markers[0]["after"] == mark, markers
    assert events and all(e["id"] > mark for e in events), events
    # Asking explicitly for what is gone is still the error.
    bot.request("events/resync", {"after": 0})
    leaf, body = bot.next()
    assert leaf == "events/sync" and "were deleted" in body.get("error", ""), body
    bot.close()
