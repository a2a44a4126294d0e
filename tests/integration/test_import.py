"""The import job (docs/ARCHITECTURE.md "Scheduled jobs", "import"): the JSON lines and CSV files
of [jobs] import.dir sent as server-signed "object" envelopes to import.to, bad rows logged with
file:line and skipped, finished files moved to done/, and exactly once per file line across
kill -9 (counted in the ledger by a unique row id, with a control that shows the count catches a
duplicate)."""

import collections
import glob
import json
import os
import sqlite3
import time

import pytest

import dataclient as dc
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

REF = {"$id": "com.example.Ref", "type": "object",
       "properties": {"code": {"type": "string", "x-index": True}}, "required": ["code"]}


def ini(d, to, batch=500):
    return ("[jobs]\nimport = @every 1s\nimport.dir = %s\nimport.to = %s\nimport.batch = %d\n"
            % (d, to, batch))


def ledger_bodies(data_dir, to):
    """The bodies of the envelopes to `to` in the ledger (read from the store file)."""
    bodies = []
    for path in glob.glob(os.path.join(data_dir, "*")):
        try:
            db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
            rows = db.execute("SELECT recipient, envelope FROM ledger").fetchall()
            db.close()
        except sqlite3.DatabaseError:
            continue
        for recipient, env in rows:
            e = json.loads(bytes(env))
            if e["to"] == to:
                bodies.append(e["body"])
    return bodies


def rest_wait(b, tok, path, want, timeout=10):
    """GET path until its results hold `want` of them (job_run_ended is logged before the last
    step's batch is durable, so the rows may become visible a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        page = dc.rest(b, tok, path)
        if len(page["results"]) >= want or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


def ledger_count(data_dir):
    """Entries in the ledger (a cheap look while the broker runs)."""
    n = 0
    for path in glob.glob(os.path.join(data_dir, "*")):
        try:
            db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
            n += db.execute("SELECT count(*) FROM ledger").fetchone()[0]
            db.close()
        except sqlite3.DatabaseError:
            continue
    return n


def wait_done(d, name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(os.path.join(d, "done", name)):
            return
        time.sleep(0.1)
    raise AssertionError("%s never moved to done/" % name)


def test_import_sends_jsonl_and_csv_rows_and_skips_bad_rows(start_broker, tmp_path):
    d = tmp_path / "drop"
    d.mkdir()
    bob = lc.Identity()
    (d / "a.jsonl").write_text(
        '{"rid":"a1","n":1}\n'
        '\n'
        'not json\n'
        '{"_t":"com.example.Ref","code":"X","rid":"a4"}\n'
        '{"_t":"com.example.Ref","rid":"a5"}\n'
        '[1,2]\n'
        '{"rid":"a7","_on_behalf_of":"' + bob.id + '"}\n')
    (d / "b.csv").write_text(
        '_t,code,rid\r\n'
        'com.example.Ref,C1,b1\r\n'
        'com.example.Ref,"two\nlines, quoted ""x""",b2\r\n'
        'com.example.Ref,C3\r\n'
        'com.example.Ref,C4,b5\r\n')
    (d / ".hidden.jsonl").write_text('{"rid":"h"}\n')
    b = dc.start(start_broker, tmp_path, {"ref.json": REF}, extra_ini=ini(d, bob.id))
    ended = b.wait_event("job_run_ended", timeout=20,
                         pred=lambda e: e["job"] == "import" and "sent 5" in e.get("detail", ""))
    assert ended["result"] == "ok", ended
    assert "refused 2" in ended["detail"] and "malformed 3" in ended["detail"], ended
    bad = {(e["file"], e["line"], e["event"]) for e in
           b.events("import_row_malformed") + b.events("import_row_refused")}
    assert bad == {("a.jsonl", 3, "import_row_malformed"), ("a.jsonl", 5, "import_row_refused"),
                   ("a.jsonl", 6, "import_row_malformed"), ("a.jsonl", 7, "import_row_refused"),
                   ("b.csv", 5, "import_row_malformed")}, bad
    # The typed rows are objects: bob, their recipient, reads them over /api/v1.
    tok = lc.login(b.http_addr, bob)
    page = rest_wait(b, tok, "/api/v1/com.example.Ref?code=X", 1)
    assert [o["rid"] for o in page["results"]] == ["a4"], page
    page = rest_wait(b, tok, "/api/v1/com.example.Ref", 4)
    codes = sorted((o["rid"], o["code"]) for o in page["results"])
    assert codes == [("a4", "X"), ("b1", "C1"), ("b2", 'two\nlines, quoted "x"'),
                     ("b5", "C4")], page
    # b.csv line 5: the quoted field of b2 spans lines 3-4, so the short row starts at line 5.
    # Finished files go to done/ at a later run, when their positions are durable.
    wait_done(str(d), "a.jsonl")
    wait_done(str(d), "b.csv")
    assert os.path.exists(d / ".hidden.jsonl")
    b.terminate()
    rids = sorted(x["rid"] for x in ledger_bodies(b.data_dir, bob.id))
    assert rids == ["a1", "a4", "b1", "b2", "b5"], rids


def test_import_is_exactly_once_per_line_across_kill9(start_broker, tmp_path):
    total = 30000
    d = tmp_path / "drop"
    d.mkdir()
    bob = lc.Identity()
    with open(d / "big.jsonl", "w") as f:
        for i in range(total):
            f.write('{"rid":%d,"pad":"%s"}\n' % (i, "x" * 40))
    b = dc.start(start_broker, tmp_path, {"ref.json": REF}, extra_ini=ini(d, bob.id, 100))
    b.wait_event("job_run_started", timeout=20, pred=lambda e: e["job"] == "import")
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline and seen == 0:
        seen = ledger_count(b.data_dir)
        time.sleep(0.01)
    b.kill9()
    at_kill = len(ledger_bodies(b.data_dir, bob.id))
    assert 0 < at_kill < total, at_kill  # killed in the middle of the file
    b.restart()
    wait_done(str(d), "big.jsonl", timeout=120)
    b.terminate()
    counts = collections.Counter(x["rid"] for x in ledger_bodies(b.data_dir, bob.id))
    assert len(counts) == total and set(counts.values()) == {1}, \
        [r for r, n in counts.items() if n != 1][:10]
    # Control: the same check catches a duplicate. Forget the stored position while stopped and
    # put the file back: the next run imports it again.
    for path in glob.glob(os.path.join(b.data_dir, "*")):
        try:
            db = sqlite3.connect(path)
            db.execute("DELETE FROM event_consumers WHERE CAST(consumer AS TEXT) LIKE 'import:%'")
            db.commit()
            db.close()
        except sqlite3.DatabaseError:
            continue
    os.rename(d / "done" / "big.jsonl", d / "big.jsonl")
    b.restart()
    wait_done(str(d), "big.jsonl", timeout=120)
    b.terminate()
    counts = collections.Counter(x["rid"] for x in ledger_bodies(b.data_dir, bob.id))
    assert set(counts.values()) == {2}, "the control found no duplicate"


def test_import_type_makes_untyped_rows_objects_of_that_model(start_broker, tmp_path):
    d = tmp_path / "drop"
    d.mkdir()
    bob = lc.Identity()
    (d / "r.jsonl").write_text('{"code":"T1","rid":"r1"}\n{"rid":"r2"}\n')
    b = dc.start(start_broker, tmp_path, {"ref.json": REF},
                 extra_ini=ini(d, bob.id) + "import.type = com.example.Ref\n")
    ended = b.wait_event("job_run_ended", timeout=20,
                         pred=lambda e: e["job"] == "import" and "sent 1" in e.get("detail", ""))
    assert "refused 1" in ended["detail"], ended  # r2 has no code: the model refuses it
    page = rest_wait(b, lc.login(b.http_addr, bob), "/api/v1/com.example.Ref?code=T1", 1)
    assert [o["rid"] for o in page["results"]] == ["r1"], page


def test_import_without_a_recipient_fails_its_runs(start_broker, tmp_path):
    b = start_broker("[jobs]\nimport = @every 1s\nimport.dir = %s\n" % tmp_path)
    ended = b.wait_event("job_run_ended", timeout=10, pred=lambda e: e["job"] == "import")
    assert ended["result"] == "failed" and "import.to" in ended["detail"], ended


@pytest.mark.parametrize("line", ["import.batch = 0", "import.max_file_bytes = x",
                                  "import.to = ", "import.nope = 1"])
def test_import_bad_settings_stop_the_start(start_broker, line):
    b = start_broker("[jobs]\n%s\n" % line, wait_ready=False, expect_exit=1)
    b.wait_exit(1)
    assert "[jobs] import." in b.log_text(), b.log_text()
