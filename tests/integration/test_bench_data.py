"""`make bench-data`'s typed-object parts (scripts/bench-data.py --parts ingest,query) in their
--quick form against the real binary, so the script can't rot: the ingest runs (typed and plain
envelopes, every ack with its receipt, the store's counts checked), the seeded directory and its
cache, the GraphQL query and its bare SQL on the same file. No figure is asserted (timing belongs
to benchmarks); only that each part ran and checked what it claims to check."""

import json
import os
import sqlite3
import subprocess

import pytest

pytestmark = pytest.mark.ledgermq_only

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "bench-data.py")


def data_bench():
    path = os.environ.get("LMQ_DATA_BENCH",
                          os.path.join(ROOT, "build", "tests", "data_bench"))
    if not os.path.exists(path):
        pytest.skip("no data_bench (LMQ_DATA_BENCH)")
    return path


def run(cache, parts, expect_ok=True):
    r = subprocess.run(["/usr/bin/python3", SCRIPT, "--quick", "--parts", parts, "--json",
                        "--ledgermq", os.environ["LEDGERMQ_BIN"], "--data-bench", data_bench(),
                        "--cache", str(cache)], capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) == expect_ok, r.stdout + r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return lines, r.stdout + r.stderr


def test_ingest_compares_typed_and_plain_envelopes_with_every_ack_counted(tmp_path):
    lines, _ = run(tmp_path / "cache", "ingest")
    rows = [x["ingest"] for x in lines]
    assert [r["connections"] for r in rows] == [4, 16]
    for r in rows:
        assert r["typed"]["per_s"] > 0 and r["plain"]["per_s"] > 0
        assert r["envelopes"] == 200 // r["connections"] * r["connections"]


def test_query_seeds_once_then_reuses_the_cache_and_times_graphql_beside_sql(tmp_path):
    cache = tmp_path / "cache"
    (first,), out = run(cache, "query")
    q = first["query"]
    assert q["seed"]["cached"] is False and "seeded 2000 resources" in out
    assert q["resources"] == 2000 and q["limit"] == 50 and q["queries"] == 100
    # The statement is the one the server runs, and it searches the x-index index.
    assert "json_extract(r.body, '$.k') = ?3" in q["sql"]["sql"]
    assert "USING INDEX data_by_" in q["sql"]["plan"], q["sql"]["plan"]
    assert q["sql"]["rows_min"] == q["sql"]["rows_max"] == 50
    for part in ("graphql", "healthz"):
        assert 0 < q[part]["p50_us"] <= q[part]["p99_us"] <= q[part]["max_us"]
    (second,), out = run(cache, "query")
    assert second["query"]["seed"]["cached"] is True and "seeded" not in out
    assert second["query"]["seed"]["date"] == q["seed"]["date"]


def test_query_fails_when_the_seeded_resources_are_missing(tmp_path):
    """The control: the query check catches a store that lost its resources."""
    cache = tmp_path / "cache"
    run(cache, "query")
    (key,) = os.listdir(cache)
    db = sqlite3.connect(str(cache / key / "data" / "ledgermq.db"))
    db.execute("DELETE FROM data_resources WHERE json_extract(body, '$.k') % 2 = 0")
    db.commit()
    db.close()
    _, out = run(cache, "query", expect_ok=False)
    assert "bench-data: query k=" in out, out
