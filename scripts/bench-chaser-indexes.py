"""Cost of schema 10's chaser indexes (ledger_by_type, ledger_by_reply, ledger_by_reminder) on the
ledger's inserts: the same 50,000 envelope rows inserted in one statement into a ledger table
without and with them, best of 5 (docs/ARCHITECTURE.md "Scheduled jobs"). Run:
/usr/bin/python3 scripts/bench-chaser-indexes.py"""
import hashlib
import json
import os
import sqlite3
import tempfile
import time
IDX = ["CREATE INDEX ledger_by_type ON ledger(json_extract(CAST(envelope AS TEXT), '$.type'), idx)",
       "CREATE INDEX ledger_by_reply ON ledger(json_extract(CAST(envelope AS TEXT), '$.body.in_reply_to')) WHERE json_extract(CAST(envelope AS TEXT), '$.body.in_reply_to') IS NOT NULL",
       "CREATE INDEX ledger_by_reminder ON ledger(json_extract(CAST(envelope AS TEXT), '$.body.reminder_of')) WHERE json_extract(CAST(envelope AS TEXT), '$.body.reminder_of') IS NOT NULL"]
N = 50000
def run(with_idx):
    path = os.path.join(tempfile.gettempdir(), "chaser_idx_bench.db")
    if os.path.exists(path): os.remove(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE ledger(idx INTEGER PRIMARY KEY, link BLOB NOT NULL UNIQUE, sender BLOB NOT NULL, recipient BLOB NOT NULL, seq INTEGER NOT NULL, position INTEGER NOT NULL, envelope BLOB NOT NULL, created_ms INTEGER NOT NULL)")
    if with_idx:
        for s in IDX: db.execute(s)
    rows = []
    for i in range(N):
        env = {"body": {"amount": "10.00", "currency": "EUR", "memo": "x" * 200}, "from": "a" * 64, "key": "k" * 43, "prev": "p" * 64, "seq": i + 1, "sig": "s" * 86, "time": "2026-12-07T03:04:05.123456789Z", "to": "b" * 64, "type": "payment"}
        e = json.dumps(env, separators=(",", ":"), sort_keys=True).encode()
        rows.append((i, hashlib.sha256(e).hexdigest().encode(), b"a" * 64, b"b" * 64, i + 1, i + 1, e, i))
    db.execute("CREATE TEMP TABLE stage AS SELECT * FROM ledger WHERE 0")
    db.executemany("INSERT INTO stage VALUES(?,?,?,?,?,?,?,?)", rows)
    db.commit()
    t = time.perf_counter()
    db.execute("INSERT INTO ledger SELECT * FROM stage")
    db.commit()
    return time.perf_counter() - t
base = min(run(False) for _ in range(5)); idx = min(run(True) for _ in range(5))
print("sqlite %s, %d envelopes of ~%d bytes: insert without indexes %.3f s, with the 3 chaser indexes %.3f s (%.1f us/envelope more)" % (sqlite3.sqlite_version, N, 560, base, idx, (idx - base) / N * 1e6))
