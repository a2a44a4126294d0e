"""Exactly once across crashes, end to end (tests/tools/client_app.c on libledgermq): two
identities exchange 1,000 envelopes while the server is killed with SIGKILL several times and the
receiving application is killed too. The receiver stores each envelope in its own table inside
on_envelope (atomic with the acknowledgement); it must end with exactly 1,000 rows, each once, in
order. Every ack's receipt is verified by the sender (it exits 5 otherwise), across server restarts.

Controls: the checker reports a deleted or duplicated row, and a receiver that acknowledges before
storing (--unsafe-ack-first), killed while rows are acknowledged but not stored, ends with rows
missing - which the checker reports."""

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

pytestmark = pytest.mark.ledgermq_only

COUNT = 1000
SERVER_KILLS = 4
RECEIVER_KILLS = 4
APP_EXIT_TIMEOUT_S = 90
KILL_PHASE_MAX_S = 90
CONTROL_COUNT = 200


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_path():
    path = os.environ.get("LMQ_CLIENT_APP")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("LMQ_CLIENT_APP is not set to the client_app executable")
    return path


class Pair:
    """A server on fixed ports (so that restarts keep them and the clients follow) and two
    identities."""

    def __init__(self, start_broker, tmp_path):
        self.mqtt = "127.0.0.1:%d" % free_port()
        self.http = "127.0.0.1:%d" % free_port()
        self.b = start_broker(None, extra_args=["--mqtt", self.mqtt, "--http", self.http])
        self.tmp = tmp_path
        self.a_id = self.keygen("a.json")
        self.b_id = self.keygen("b.json")
        self.receiver_db = str(tmp_path / "b-state" / "client.db")

    def keygen(self, name):
        proc = subprocess.run([os.environ["LEDGERMQ_BIN"], "keygen", "--out", name],
                              cwd=self.tmp, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def spawn(self, args):
        return subprocess.Popen([app_path()] + args + ["--server", self.mqtt, "--http", self.http],
                                cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def sender(self, count):
        # Paced (one envelope per 5 ms tick) so that the kills land while envelopes flow.
        return self.spawn(["send", "--key", "a.json", "--to", self.b_id, "--count", str(count),
                           "--state", "a-state", "--per-tick", "1"])

    def receiver(self, count, unsafe=False):
        return self.spawn(["receive", "--key", "b.json", "--count", str(count), "--state",
                           "b-state"] + (["--unsafe-ack-first"] if unsafe else []))

    def kill_server(self):
        self.b.kill9()
        self.b.restart()


def finish(proc, what):
    try:
        out, err = proc.communicate(timeout=APP_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("%s did not finish\n%s" % (what, err[-4000:]))
    assert proc.returncode == 0, "%s exited %s\n%s" % (what, proc.returncode, err[-4000:])
    return json.loads(out.strip().splitlines()[-1])


def kill_proc(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def read_inbox(db_path):
    db = sqlite3.connect(db_path, timeout=30)
    try:
        return db.execute("SELECT position, n FROM app_inbox ORDER BY id").fetchall()
    finally:
        db.close()


def stored_state(db_path):
    """(library's stored inbox position, application rows) as committed on disk."""
    if not os.path.exists(db_path):
        return 0, 0
    db = sqlite3.connect(db_path, timeout=30)
    try:
        pos = db.execute("SELECT v FROM meta WHERE k = 'inbox_position'").fetchone()
        rows = db.execute("SELECT COUNT(*) FROM app_inbox").fetchone()[0]
        return (int(pos[0]) if pos else 0), rows
    except sqlite3.OperationalError:
        return 0, 0  # the receiver has not created its table yet
    finally:
        db.close()


def inbox_problems(rows, count):
    """What is wrong with the application's rows (stored order) against 1..count, each once, in
    order, with n == position (the sender's n is its chain seq)."""
    problems = []
    positions = [p for p, _ in rows]
    seen = set()
    for p in positions:
        if p in seen:
            problems.append("position %d stored twice" % p)
        seen.add(p)
    missing = sorted(set(range(1, count + 1)) - seen)
    if missing:
        problems.append("%d positions missing (first %s)" % (len(missing), missing[:5]))
    if positions != sorted(positions):
        problems.append("positions stored out of order")
    problems += ["position %d carries n=%d" % (p, n) for p, n in rows if p != n][:5]
    if len(rows) != count:
        problems.append("%d rows, expected %d" % (len(rows), count))
    return problems


def test_thousand_envelopes_exactly_once_through_server_and_receiver_kills(start_broker,
                                                                           tmp_path):
    pair = Pair(start_broker, tmp_path)
    rng = random.Random(20261125)
    sender = pair.sender(COUNT)
    receiver = pair.receiver(COUNT)
    kills = ["server"] * SERVER_KILLS + ["receiver"] * RECEIVER_KILLS
    rng.shuffle(kills)
    # Kill number i once the receiver has stored about (i + 1) / 10 of the envelopes: every
    # kill lands while envelopes are flowing, however fast this machine is.
    during = []  # (kind, receiver's stored position at the kill)
    deadline = time.monotonic() + KILL_PHASE_MAX_S
    for i, kind in enumerate(kills):
        threshold = (i + 1) * COUNT // (len(kills) + 2) + rng.randrange(COUNT // 20)
        pos = 0
        while (time.monotonic() < deadline and receiver.poll() is None
               and sender.poll() in (None, 0)):
            pos, _ = stored_state(pair.receiver_db)
            if pos >= threshold:
                break
            time.sleep(0.01)
        if kind == "server":
            pair.kill_server()
        elif receiver.poll() is None:
            kill_proc(receiver)
            receiver = pair.receiver(COUNT)  # same state directory
        else:
            continue  # finished already: nothing left to kill
        if pos < COUNT:
            during.append((kind, pos))
    sent = finish(sender, "sender")
    got = finish(receiver, "receiver")
    assert sent["sent"] == COUNT
    assert got == {"position": COUNT, "rows": COUNT}
    rows = read_inbox(pair.receiver_db)
    assert inbox_problems(rows, COUNT) == []
    assert rows == [(i, i) for i in range(1, COUNT + 1)]
    # The harness did crash both while envelopes were in flight.
    print("kills (kind, receiver position):", during)
    assert sum(1 for k, _ in during if k == "server") == SERVER_KILLS, during
    assert sum(1 for k, _ in during if k == "receiver") == RECEIVER_KILLS, during

    # Control: the checker sees a lost row and a duplicated one.
    assert inbox_problems(rows[:500] + rows[501:], COUNT) != []
    assert inbox_problems(rows[:501] + rows[500:], COUNT) != []


def test_control_ack_before_store_loses_envelopes_and_is_caught(start_broker, tmp_path):
    pair = Pair(start_broker, tmp_path)
    sender = pair.sender(CONTROL_COUNT)
    receiver = pair.receiver(CONTROL_COUNT, unsafe=True)
    # Kill the receiver while the library has acknowledged envelopes the application has not
    # stored; the state after the kill (on disk) must show that gap, else try again.
    gap = False
    deadline = time.monotonic() + 60
    while not gap and time.monotonic() < deadline:
        pos, rows = stored_state(pair.receiver_db)
        if pos > rows and receiver.poll() is None:
            kill_proc(receiver)
            pos, rows = stored_state(pair.receiver_db)
            gap = pos > rows
            receiver = pair.receiver(CONTROL_COUNT, unsafe=True)
        time.sleep(0.02)
    assert gap, "never caught the unsafe receiver between acknowledgement and store"
    finish(sender, "sender")
    got = finish(receiver, "unsafe receiver")
    assert got["position"] == CONTROL_COUNT
    problems = inbox_problems(read_inbox(pair.receiver_db), CONTROL_COUNT)
    assert any("missing" in p for p in problems), problems
