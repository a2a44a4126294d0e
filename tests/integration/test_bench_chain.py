"""scripts/bench-chain.py (make bench-chain) in its smallest form, so the script can't rot: a
120-block chain with 12 logs, batch_blocks 10, one round of each side (the LedgerMQ follower's
catch-up; the ethers.js walk, tests/js/chain_walk.js, with ethers' batch stall and without; the
bare JSON-RPC walk), and 2 transfers of block-to-inbox latency at poll_ms 100. The script itself
fails when a side misses a block or a log; here its table must have the four rows, each with
every block and every log, and numbers in every column."""

import os
import re
import subprocess

import pytest

pytestmark = pytest.mark.ledgermq_only

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIDES = {"LedgerMQ follower", "ethers.js walk", "ethers.js walk, batchStallTime 0",
         "bare JSON-RPC walk (Python)"}
ROW = re.compile(r"^\| ([^|]+) \| (\d+) \| (\d+) \| ([\d.]+) s \| (\d+) \| (\d+) \| ([\d.]+) \|$")
LATENCY_ROW = re.compile(r"^\| 100 \| (\d+) ms \| (\d+) ms \| (\d+) ms \| (\d+), (\d+) \|$")


def test_bench_chain_quick_run_every_side_sees_every_block_and_log():
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "bench-chain.py"),
                        "--ledgermq", os.environ["LEDGERMQ_BIN"], "--blocks", "120", "--logs",
                        "12", "--batch", "10", "--rounds", "1", "--latency", "2", "--polls",
                        "100"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = {m.group(1): m.groups()[1:] for m in map(ROW.match, p.stdout.splitlines()) if m}
    assert set(rows) == SIDES, p.stdout
    for side, (blocks, logs, seconds, blocks_per_s, _, runs) in rows.items():
        assert (int(blocks), int(logs)) == (120, 12), (side, p.stdout)
        assert float(seconds) > 0 and int(blocks_per_s) > 0 and float(runs) > 0, (side, p.stdout)
    lat = [m for m in map(LATENCY_ROW.match, p.stdout.splitlines()) if m]
    assert len(lat) == 1, p.stdout
    p50, p99, worst, first, second = (int(x) for x in lat[0].groups())
    assert 0 <= p50 <= p99 <= worst < 15000 and max(first, second) == worst, p.stdout
