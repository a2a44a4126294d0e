#!/usr/bin/python3
"""Proves the power-loss shim does what powerloss.py relies on, without the broker.

Each check runs a child /usr/bin/python3 under LD_PRELOAD=libpowerloss.so,
lets it write, fsync some things and not others, SIGKILLs it (or lets the
shim tear an fsync), and then looks at what is really on disk:

  test_unsynced_writes_are_lost      raw pwrite/ftruncate/fstat/read-back semantics
  test_synced_writes_survive         fsync applies overlay and truncation
  test_sqlite_full_loses_no_commit   SQLite WAL + synchronous=FULL: every commit the
                                     child reported is on disk after the kill
  test_sqlite_off_loses_commits      control: synchronous=OFF under the shim loses them
  test_sqlite_off_without_shim_keeps control of the control: without the shim a kill -9
                                     loses nothing (page cache), so the loss above is the shim's
  test_sqlite_torn_fsync             POWERLOSS_TEAR=1: the child dies inside an fsync;
                                     the db passes integrity_check and keeps every reported commit

Usage: shimcheck.py [--lib PATH]. Prints "N passed, M failed"; exit 1 on any failure.
"""

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

CHILD_TIMEOUT_S = 20.0

RAW_CHILD = r"""
import os, sys, signal
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"A" * 10000, 0)
os.fsync(fd)
os.pwrite(fd, b"B" * 5000, 8000)           # overlaps the synced part, extends the file
assert os.fstat(fd).st_size == 13000, os.fstat(fd).st_size
assert os.pread(fd, 13000, 0) == b"A" * 8000 + b"B" * 5000
fd2 = os.open(path, os.O_RDONLY)             # a second descriptor sees the overlay too
assert os.pread(fd2, 13000, 0) == b"A" * 8000 + b"B" * 5000
os.ftruncate(fd, 9000)
assert os.fstat(fd2).st_size == 9000
os.pwrite(fd, b"C", 11999)                   # regrow: the truncated range reads as zeros
assert os.pread(fd, 12000, 0) == b"A" * 8000 + b"B" * 1000 + b"\0" * 2999 + b"C"
os.lseek(fd, 0, os.SEEK_SET)
assert os.read(fd, 3) == b"AAA"
assert os.lseek(fd, 0, os.SEEK_END) == 12000
if sys.argv[2] == "sync":
    os.fsync(fd)
print("ready", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

SQL_CHILD = r"""
import sqlite3, sys
path, sync = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=" + sync)
db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
reader = sqlite3.connect(path, isolation_level=None)
i = 0
while True:
    i += 1
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (?, randomblob(3000))", (i,))
    db.execute("COMMIT")
    if i % 50 == 0:  # a second connection (another descriptor) must see every commit
        assert reader.execute("SELECT max(id) FROM t").fetchone()[0] == i
    print(i, flush=True)
"""


class Check:
    def __init__(self, lib):
        self.lib = lib
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        with tempfile.TemporaryDirectory(prefix="shimcheck-") as d:
            try:
                fn(d)
            except AssertionError as e:
                self.failed += 1
                print("FAIL %s: %s" % (name, e))
                return
        self.passed += 1
        print("ok   %s" % name)

    def child(self, code, args, shim=True, env_extra=None):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        if shim:
            env["LD_PRELOAD"] = self.lib
        env.update(env_extra or {})
        return subprocess.Popen(["/usr/bin/python3", "-c", code] + args, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def raw(self, d, mode):
        path = os.path.join(d, "x.db")
        p = self.child(RAW_CHILD, [path, mode])
        out, err = p.communicate(timeout=CHILD_TIMEOUT_S)
        assert out.strip() == b"ready", "child failed: %r %r" % (out, err[-2000:])
        assert p.returncode == -signal.SIGKILL, p.returncode
        with open(path, "rb") as f:
            return f.read()

    def test_unsynced_writes_are_lost(self, d):
        data = self.raw(d, "nosync")
        assert data == b"A" * 10000, "disk holds %d bytes, not the 10000 synced A's" % len(data)

    def test_synced_writes_survive(self, d):
        data = self.raw(d, "sync")
        want = b"A" * 8000 + b"B" * 1000 + b"\0" * 2999 + b"C"
        assert data == want, "disk holds %d bytes, not the synced view" % len(data)

    def sqlite_run(self, d, sync, shim=True, env_extra=None, kill_after_s=0.6):
        """Returns (reported commits, rows on disk, exit code, db path)."""
        path = os.path.join(d, "t.db")
        p = self.child(SQL_CHILD, [path, sync], shim, env_extra)
        reported = 0
        deadline = time.monotonic() + kill_after_s
        os.set_blocking(p.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.01)
            chunk = p.stdout.read() or b""
            buf += chunk
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=CHILD_TIMEOUT_S)
        buf += p.stdout.read() or b""
        lines = [x for x in buf.split(b"\n") if x.strip()]
        if lines and not buf.endswith(b"\n"):
            lines = lines[:-1]  # a number cut in the middle was not fully reported
        reported = int(lines[-1]) if lines else 0
        err = p.stderr.read() or b""
        db = sqlite3.connect(path)  # no shim here: what the disk really holds
        try:
            ok = db.execute("PRAGMA integrity_check").fetchone()[0]
            assert ok == "ok", "integrity_check: %s" % ok
            try:
                rows = db.execute("SELECT count(*), coalesce(max(id), 0) FROM t").fetchone()
            except sqlite3.OperationalError:
                rows = (0, 0)  # not even the table reached the disk
        finally:
            db.close()
        assert rows[0] == rows[1], "rows are not 1..max: %r" % (rows,)
        return reported, rows[0], p.returncode, err

    def test_sqlite_full_loses_no_commit(self, d):
        reported, on_disk, rc, err = self.sqlite_run(d, "FULL")
        assert rc == -signal.SIGKILL, "child ended by itself (%r): %r" % (rc, err[-2000:])
        assert reported > 20, "too few commits to mean anything: %d" % reported
        assert on_disk >= reported, "reported %d commits, disk has %d" % (reported, on_disk)

    def test_sqlite_off_loses_commits(self, d):
        reported, on_disk, rc, err = self.sqlite_run(d, "OFF")
        assert rc == -signal.SIGKILL, "child ended by itself (%r): %r" % (rc, err[-2000:])
        assert reported > 20, "too few commits to mean anything: %d" % reported
        assert on_disk < reported, "sync=OFF under the shim lost nothing (%d/%d)" % (
            on_disk, reported)

    def test_sqlite_off_without_shim_keeps(self, d):
        reported, on_disk, rc, _ = self.sqlite_run(d, "OFF", shim=False)
        assert on_disk >= reported > 20, "without the shim: reported %d, disk %d" % (
            reported, on_disk)

    def test_sqlite_torn_fsync(self, d):
        for seed in range(1, 6):
            sub = os.path.join(d, str(seed))
            os.mkdir(sub)
            reported, on_disk, rc, err = self.sqlite_run(
                sub, "FULL", env_extra={"POWERLOSS_TEAR": "1", "POWERLOSS_SEED": str(seed),
                                        "POWERLOSS_TEAR_MAX": "60"}, kill_after_s=5.0)
            assert rc == 137, "seed %d: expected the shim's _exit(137), got %r %r" % (
                seed, rc, err[-2000:])
            assert on_disk >= reported, "seed %d: reported %d commits, disk has %d" % (
                seed, reported, on_disk)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(here, "..", "..", "build-crash",
                                                  "libpowerloss.so"))
    args = ap.parse_args()
    lib = os.path.abspath(args.lib)
    if not os.path.exists(lib):
        print("no shim at %s (run tests/crash/build.sh)" % lib)
        print("0 passed, 1 failed")
        return 1
    c = Check(lib)
    for name in ("test_unsynced_writes_are_lost", "test_synced_writes_survive",
                 "test_sqlite_full_loses_no_commit", "test_sqlite_off_loses_commits",
                 "test_sqlite_off_without_shim_keeps", "test_sqlite_torn_fsync"):
        c.run(name, getattr(c, name))
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
