"""The export job (docs/ARCHITECTURE.md "Scheduled jobs", "export"): the ledger's new entries as
JSON lines files with manifests in [jobs] export.dir, each run after the last manifest, checked
here by an independent reader: contiguous indexes, links that hash the envelopes, the manifest's
SHA-256 of the file, a checkpoint signed by the server's key covering every entry, the typed
object of an object envelope; resumed after a restart. With export.gzip the files are .jsonl.gz,
read back with Python's gzip and compared with a plain export of the same ledger."""

import glob
import gzip
import hashlib
import json
import os
import time

import pytest

import dataclient as dc
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

NOTE = {"$id": "com.example.Note", "type": "object",
        "properties": {"text": {"type": "string"}}, "required": ["text"]}


def manifests(d):
    out = []
    for path in sorted(glob.glob(os.path.join(d, "ledger-*.manifest.json"))):
        with open(path) as f:
            out.append((path, json.load(f)))
    return out


def wait_exported(d, last, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ms = manifests(d)
        if ms and ms[-1][1]["last"] >= last:
            return ms
        time.sleep(0.1)
    raise AssertionError("no manifest reached %d: %r" % (last, manifests(d)))


def check_files(b, d, gz=False, plain_out=None):
    """Every manifest's file, read as a consumer would; returns the entries in order. gz: the
    files are .jsonl.gz (and no .jsonl is there); plain_out: a list that gets the lines' bytes."""
    name, pub = lc.server_key(b.http_addr)
    entries = []
    for path, m in manifests(d):
        data_path = path.replace(".manifest.json", ".jsonl.gz" if gz else ".jsonl")
        assert not os.path.exists(path.replace(".manifest.json", ".jsonl" if gz else ".jsonl.gz"))
        with open(data_path, "rb") as f:
            raw = f.read()
        assert hashlib.sha256(raw).hexdigest() == m["sha256"], path
        assert m.get("compression") == ("gzip" if gz else None), m
        if gz:
            assert raw[:2] == b"\x1f\x8b", path
            raw = gzip.decompress(raw)
        if plain_out is not None:
            plain_out.append(raw)
        lines = [json.loads(line) for line in raw.decode().splitlines()]
        assert len(lines) == m["count"] == m["last"] - m["first"] + 1
        assert [e["index"] for e in lines] == list(range(m["first"], m["last"] + 1))
        origin, size, root = lc.parse_checkpoint(m["checkpoint"], name, pub)
        assert size == m["tree_size"] > m["last"]
        for e in lines:
            assert e["link"] == lc.link(e["envelope"])
            assert e["from"] == e["envelope"]["from"] and e["to"] == e["envelope"]["to"]
        entries += lines
    return entries


def test_export_writes_the_ledger_in_verified_files_and_resumes(start_broker, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    b = dc.start(start_broker, tmp_path, {"note.json": NOTE},
                 extra_ini="[jobs]\nexport = @every 1s\nexport.dir = %s\nexport.max_rows = 5\n"
                 % out)
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    for i in range(11):
        env = sa.ident.envelope(bob.id, {"n": i})
        sa.send(env)
        assert sa.expect("ack")["link"] == lc.link(env)
        sa.ident.advance(env)
    link = dc.send(sa, bob.id, {"_t": "com.example.Note", "text": "hello"})
    wait_exported(str(out), 11)
    entries = check_files(b, str(out))
    assert [e["index"] for e in entries] == list(range(12))
    assert max(m["count"] for _, m in manifests(str(out))) <= 5  # export.max_rows per run
    obj = entries[11]["object"]
    assert obj["_link"] == link and obj["text"] == "hello" and obj["_author"] == alice.id
    assert entries[0]["object"] is None
    ended = b.wait_event("job_run_ended", pred=lambda e: e["job"] == "export" and
                         "exported" in e.get("detail", ""))
    assert ended["result"] == "ok"
    sa.close()
    # After a restart the next run starts after the last manifest: no entry twice, none missed.
    b.terminate()
    b.restart()
    dc.ready_addresses(b)
    sa = dc.session(b, alice)
    for i in range(3):
        dc.send_object(sa, bob.id, {"n": 100 + i})
    wait_exported(str(out), 14)
    entries = check_files(b, str(out))
    assert [e["index"] for e in entries] == list(range(15))
    assert not glob.glob(os.path.join(str(out), ".*tmp"))
    sa.close()


def test_export_without_a_directory_fails_its_runs(start_broker, tmp_path):
    b = start_broker("[jobs]\nexport = @every 1s\n")
    ended = b.wait_event("job_run_ended", timeout=10, pred=lambda e: e["job"] == "export")
    assert ended["result"] == "failed" and "export.dir" in ended["detail"], ended


def test_gzip_export_holds_the_same_lines_as_a_plain_export_and_resumes(start_broker, tmp_path):
    gz_dir, plain_dir = tmp_path / "gz", tmp_path / "plain"
    gz_dir.mkdir()
    plain_dir.mkdir()
    ini = "[jobs]\nexport = @every 1s\nexport.dir = %s\nexport.max_rows = 4\n%s"
    b = dc.start(start_broker, tmp_path, {"note.json": NOTE},
                 extra_ini=ini % (gz_dir, "export.gzip = true\n"))
    alice, bob = lc.Identity(), lc.Identity()
    sa = dc.session(b, alice)
    for i in range(7):
        dc.send(sa, bob.id, {"n": i})
    dc.send(sa, bob.id, {"_t": "com.example.Note", "text": "zipped"})
    wait_exported(str(gz_dir), 7)
    gz_raw = []
    entries = check_files(b, str(gz_dir), gz=True, plain_out=gz_raw)
    assert [e["index"] for e in entries] == list(range(8))
    assert entries[7]["object"]["text"] == "zipped"
    sa.close()
    # The same ledger exported plain (another directory: from index 0): the same bytes.
    b.terminate()
    b.config_text = b.config_text.replace("export.dir = %s" % gz_dir, "export.dir = %s" % plain_dir)
    b.config_text = b.config_text.replace("export.gzip = true", "export.gzip = false")
    b.restart()
    dc.ready_addresses(b)
    wait_exported(str(plain_dir), 7)
    plain_raw = []
    check_files(b, str(plain_dir), plain_out=plain_raw)
    assert b"".join(plain_raw) == b"".join(gz_raw) and len(b"".join(gz_raw)) > 0
    # gzip again, into its own directory: it resumes after its own last manifest.
    b.terminate()
    b.config_text = b.config_text.replace("export.dir = %s" % plain_dir, "export.dir = %s" % gz_dir)
    b.config_text = b.config_text.replace("export.gzip = false", "export.gzip = true")
    b.restart()
    dc.ready_addresses(b)
    sa = dc.session(b, alice)
    for i in range(2):
        dc.send(sa, bob.id, {"n": 50 + i})
    wait_exported(str(gz_dir), 9)
    entries = check_files(b, str(gz_dir), gz=True)
    assert [e["index"] for e in entries] == list(range(10))
    assert not glob.glob(os.path.join(str(gz_dir), ".*tmp"))
    sa.close()
