"""scripts/bench-events.py (make bench-events) in its smallest form, so the script can't rot:
a few hundred envelopes with 0 webhooks (the stream off, then recorded), 1 webhook and the bot run (tests/tools/bot_bench, a C bot on
libledgermq); the run itself checks every event reached the receiver and each bot got every
envelope.accepted event, and the tables it prints have every row."""

import os
import subprocess

import pytest

pytestmark = pytest.mark.ledgermq_only

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_bench_events_quick_run():
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "bench-events.py"),
                        "--ledgermq", os.environ["LEDGERMQ_BIN"], "--envelopes", "200",
                        "--rounds", "1", "--hooks", "0,record,1", "--bots", "1"]
                       + (["--bot-bench", os.environ["LMQ_BOT_BENCH"]]
                          if os.environ.get("LMQ_BOT_BENCH") else []),
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    assert rows[2].startswith("| 0 |") and rows[3].startswith("| 0, stream recorded |"), p.stdout
    assert rows[4].startswith("| 1 |"), p.stdout
    assert "events delivered" in p.stdout
    assert any(r.startswith("| bot, live | ") for r in rows), p.stdout
    assert any(r.startswith("| bot, resync from 0 | ") for r in rows), p.stdout
