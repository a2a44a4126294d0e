"""The C echo bot (examples/bots/echo/echo.c, on libledgermq's on_event) against the real broker
with [bots] ids = <its id>: every envelope sent to it comes back echoed exactly once - for
envelopes recorded before it started (paged), live ones, across its own abrupt exit in the middle
of a handling transaction (--exit-after), a kill -9 of it while envelopes flow, and a kill -9 and
restart of the broker. Echoes are counted on the server's ledger (GET /ledger/envelopes).

Controls: the same count reports an envelope sent while the bot is down as missing, and, after
the bot's stored event position is set back by hand (as if its handling had not been committed
with it), reports exactly the re-echoed envelopes as duplicates."""

import collections
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

TIMEOUT_S = 20
ECHO = "com.example.Echo"
PING = "com.example.Ping"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bot_path():
    path = os.environ.get("LMQ_ECHO_BOT")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("LMQ_ECHO_BOT is not set to the echo-bot executable")
    return path


def problems(ns, expected):
    """(missing, duplicated, foreign) n's among echoed bodies, for n in range(expected)."""
    counts = collections.Counter(ns)
    missing = [n for n in range(expected) if counts[n] == 0]
    duplicated = sorted(n for n, k in counts.items() if k > 1)
    foreign = sorted(n for n in counts if not 0 <= n < expected)
    return missing, duplicated, foreign


class Rig:
    """A broker on fixed ports (restarts keep them; the bot follows), the bot's key, and alice,
    who sends {"n": i} to the bot."""

    def __init__(self, start_broker, tmp_path):
        self.tmp = tmp_path
        self.mqtt = "127.0.0.1:%d" % free_port()
        self.http = "127.0.0.1:%d" % free_port()
        proc = subprocess.run([os.environ["LEDGERMQ_BIN"], "keygen", "--out", "echo.json"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        self.bot_id = proc.stdout.strip()
        self.b = start_broker("[bots]\nids = %s\n" % self.bot_id,
                              extra_args=["--mqtt", self.mqtt, "--http", self.http])
        self.alice = lc.Identity()
        self.sent = 0
        self.bot = None
        self.runs = 0
        self.connect()

    def connect(self):
        if getattr(self, "session", None) is not None:
            self.session.close()  # or paho reconnects it and fights the new one for its id
        self.token = lc.login(self.http, self.alice)
        self.session = lc.Session(int(self.mqtt.rsplit(":", 1)[1]), self.alice, self.token)

    def send(self, count):
        for _ in range(count):
            env = self.alice.envelope(self.bot_id, {"n": self.sent}, type_=PING)
            self.session.send(env)
            while True:  # echoes arrive on alice's inbox meanwhile: not what we wait for here
                leaf, body = self.session.messages.get(timeout=TIMEOUT_S)
                if leaf != "inbox":
                    break
            assert leaf == "ack", (leaf, body)
            self.alice.advance(env)
            self.sent += 1

    def start_bot(self, *extra):
        self.runs += 1
        self.out = self.tmp / ("bot-%d.out" % self.runs)
        with open(self.out, "w") as out, open(self.tmp / ("bot-%d.err" % self.runs), "w") as err:
            self.bot = subprocess.Popen(
                [bot_path(), "--key", "echo.json", "--state", "echo-state", "--server", self.mqtt,
                 "--http", self.http] + list(extra), cwd=self.tmp, stdout=out, stderr=err)

    def bot_log(self):
        return (self.tmp / ("bot-%d.err" % self.runs)).read_text()[-3000:]

    def wait_bot(self, code):
        assert self.bot.wait(timeout=TIMEOUT_S) == code, self.bot_log()

    def stop_bot(self):
        self.bot.send_signal(signal.SIGTERM)
        self.wait_bot(0)

    def echoed(self, run):
        """(event id, echo link) of each echo the bot printed in run."""
        text = (self.tmp / ("bot-%d.out" % run)).read_text()
        return [(int(e), link) for e, link in re.findall(r"echo event=(\d+) to=\w+ link=(\w+)",
                                                         text)]

    def echoes(self):
        """Echoes on the ledger: {link: n}, and the n's in ledger order."""
        by_link, ns = {}, []
        for item in lc.ledger_envelopes(self.http, self.token):
            env = item["envelope"]
            if env["from"] == self.bot_id and env["type"] == ECHO:
                assert env["to"] == self.alice.id and set(env["body"]) == {"echo"}, env
                lc.verify(env)
                by_link[item["link"]] = env["body"]["echo"]["n"]
                ns.append(env["body"]["echo"]["n"])
        return by_link, ns

    def wait_echoes(self, count):
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            _, ns = self.echoes()
            if len(ns) >= count:
                return ns
            assert self.bot.poll() is None, "bot exited %s\n%s" % (self.bot.returncode,
                                                                  self.bot_log())
            assert time.monotonic() < deadline, "%d of %d echoes\n%s" % (len(ns), count,
                                                                          self.bot_log())
            time.sleep(0.05)


def test_each_envelope_echoed_exactly_once_across_bot_and_broker_crashes(start_broker, tmp_path):
    r = Rig(start_broker, tmp_path)
    # Recorded before the bot's first start: it pages through them. It dies (exit 9, no
    # cleanup) inside the handling of the 16th, after that echo was stored in the open
    # transaction: the rollback takes the echo with the event.
    r.send(40)
    r.start_bot("--exit-after", "15")
    r.wait_bot(9)
    assert len(r.echoed(1)) == 15
    r.start_bot()
    assert problems(r.wait_echoes(40), 40) == ([], [], [])
    # Live: 20 while the bot runs, then the broker is killed (-9) and restarted, 10 more, the
    # bot is killed (-9) and restarted, 10 more.
    r.send(20)
    r.b.kill9()
    r.b.restart()
    r.connect()
    r.send(10)
    r.wait_echoes(r.sent - 5)  # the bot is handling live events when it dies
    r.bot.send_signal(signal.SIGKILL)
    r.wait_bot(-signal.SIGKILL)
    r.start_bot()
    r.send(10)
    ns = r.wait_echoes(80)
    r.stop_bot()
    _, ns = r.echoes()
    assert problems(ns, 80) == ([], [], [])
    assert len(ns) == 80

    # Control, missing: an envelope sent while the bot is down is reported missing.
    r.send(1)
    assert problems(r.echoes()[1], 81) == ([80], [], [])
    # Control, duplicates: the bot's stored event position set back before its last three
    # echoes (as if they had not been committed with their events): the bot handles those
    # events again and the count reports exactly their envelopes twice.
    last_three = r.echoed(r.runs)[-3:]
    assert len(last_three) == 3
    db = sqlite3.connect(str(tmp_path / "echo-state" / "client.db"))
    db.execute("UPDATE meta SET v = ? WHERE k = 'event_position'", (last_three[0][0] - 1,))
    db.commit()
    db.close()
    r.start_bot()
    r.wait_echoes(84)
    r.stop_bot()
    by_link, ns = r.echoes()
    again = sorted(by_link[link] for _, link in last_three)
    assert problems(ns, 81) == ([], again, [])
    assert len(ns) == 84
