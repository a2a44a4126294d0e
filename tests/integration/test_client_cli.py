"""The client commands (ledgermq keygen / send / listen, built on libledgermq) against the real
server: guaranteed delivery end to end, exactly once across listener restarts, and an envelope
whose sender was killed before the ack is delivered by the next send.

Needs the server side of "Identities and guaranteed delivery" (login over HTTP, the envelope
pipeline, resync); ledgermq-only, like test_identity.py."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.ledgermq_only

CLI_TIMEOUT_S = 60


def start(start_broker):
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_addr = ready["mqtt"][0]
    return b


def cli(args, cwd, timeout=CLI_TIMEOUT_S):
    return subprocess.run([os.environ["LEDGERMQ_BIN"]] + args, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def keygen(tmp_path, name):
    proc = cli(["keygen", "--out", name], tmp_path)
    assert proc.returncode == 0, proc.stderr
    ident = proc.stdout.strip()
    assert len(ident) == 64 and proc.stdout == ident + "\n"
    return ident


def addr_args(b, state):
    return ["--server", b.mqtt_addr, "--http", b.http_addr, "--state", state]


def send(b, tmp_path, to, body, state="a-state", key="a.json", timeout_ms=20000):
    return cli(["send", "--key", key, "--to", to, "--type", "test.n",
                "--timeout-ms", str(timeout_ms)] + addr_args(b, state) + [json.dumps(body)],
               tmp_path)


def listen(b, tmp_path, extra, state="b-state", key="b.json"):
    return cli(["listen", "--key", key] + addr_args(b, state) + extra, tmp_path)


def test_keygen_refuses_to_overwrite(tmp_path):
    keygen(tmp_path, "k.json")
    before = (tmp_path / "k.json").read_text()
    proc = cli(["keygen", "--out", "k.json"], tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("ledgermq: ") and proc.stderr.count("\n") == 1
    assert (tmp_path / "k.json").read_text() == before
    assert oct(os.stat(tmp_path / "k.json").st_mode & 0o777) == "0o600"


def test_send_ten_listen_prints_them_once_in_order(start_broker, tmp_path):
    b = start(start_broker)
    a_id, b_id = keygen(tmp_path, "a.json"), keygen(tmp_path, "b.json")
    for i in range(10):
        proc = send(b, tmp_path, b_id, {"n": i})
        assert proc.returncode == 0, proc.stderr
        ack = json.loads(proc.stdout)
        assert proc.stdout.count("\n") == 1
        assert ack["seq"] == i + 1 and ack["position"] == i + 1 and ack["to"] == b_id
        assert len(ack["link"]) == 64
    proc = listen(b, tmp_path, ["--count", "10", "--timeout-ms", "20000"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 10
    for i, line in enumerate(lines):
        msg = json.loads(line)
        assert msg["position"] == i + 1
        env = msg["envelope"]
        assert env["from"] == a_id and env["to"] == b_id and env["seq"] == i + 1
        assert env["body"] == {"n": i} and env["type"] == "test.n"
    # Same state directory again: everything was handed over already.
    proc = listen(b, tmp_path, ["--timeout-ms", "2000"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    # A new envelope is the only thing the next listener prints.
    assert send(b, tmp_path, b_id, {"n": 10}).returncode == 0
    proc = listen(b, tmp_path, ["--count", "1", "--timeout-ms", "20000"])
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["position"] for line in proc.stdout.splitlines()] == [11]


def test_killed_send_is_delivered_by_the_next_send(start_broker, tmp_path):
    b = start(start_broker)
    keygen(tmp_path, "a.json")
    b_id = keygen(tmp_path, "b.json")
    # A server that accepts connections and never answers (a refused address ends send at
    # once, exit 4): the envelope is stored, then the sender dies before any ack.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    addr = "127.0.0.1:%d" % hole.getsockname()[1]
    dead = ["--server", addr, "--http", addr, "--state", "a-state"]
    p = subprocess.Popen([os.environ["LEDGERMQ_BIN"], "send", "--key", "a.json", "--to", b_id]
                         + dead + ['{"n":"first"}'], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    # A timed-out send keeps its envelope too (exit 4).
    proc = cli(["send", "--key", "a.json", "--to", b_id, "--timeout-ms", "500"] + dead
               + ['{"n":"second"}'], tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "timed out" in proc.stderr
    hole.close()
    # The next send against the real server delivers both, then its own, in chain order.
    proc = send(b, tmp_path, b_id, {"n": "third"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["seq"] == 3
    proc = listen(b, tmp_path, ["--count", "3", "--timeout-ms", "20000"])
    assert proc.returncode == 0, proc.stderr
    bodies = [json.loads(line)["envelope"]["body"]["n"] for line in proc.stdout.splitlines()]
    assert bodies == ["first", "second", "third"]


def test_listen_times_out_before_count(start_broker, tmp_path):
    b = start(start_broker)
    keygen(tmp_path, "b.json")
    proc = listen(b, tmp_path, ["--count", "1", "--timeout-ms", "1500"])
    assert proc.returncode == 4
    assert proc.stdout == ""


def test_send_usage_errors_exit_1(tmp_path):
    keygen(tmp_path, "a.json")
    for args in (["send"], ["send", "--key", "a.json", "{}"],
                 ["send", "--key", "a.json", "--to", "x" * 64, "{}"],
                 ["send", "--key", "a.json", "--to", "a" * 64, "--server", "nope", "{}"],
                 ["send", "--key", "a.json", "--to", "a" * 64, "[1]"],
                 ["send", "--key", "missing.json", "--to", "a" * 64, "{}"]):
        proc = cli(args, tmp_path)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.startswith("ledgermq: ") and proc.stderr.count("\n") == 1, args


def test_send_exits_5_when_the_server_ledger_key_changed(start_broker, tmp_path):
    b = start(start_broker)
    keygen(tmp_path, "a.json")
    b_id = keygen(tmp_path, "b.json")
    # A listener with a's state directory connects once: the server's key is pinned there.
    proc = listen(b, tmp_path, ["--timeout-ms", "1500"], state="a-state", key="a.json")
    assert proc.returncode == 0, proc.stderr
    # Another server (its own data directory, so its own ledger key): the client notices the
    # key on connect and stops before it hands the envelope to a server it can't check.
    other = start(start_broker)
    proc = send(other, tmp_path, b_id, {"n": 1})
    assert proc.returncode == 5, proc.stderr
    assert "is not the pinned" in proc.stderr, proc.stderr
    assert proc.stdout == ""
    with urllib.request.urlopen("http://%s/ledger/checkpoint" % other.http_addr,
                                timeout=10) as r:
        assert json.loads(r.read())["size"] == 0, "the envelope reached the other server"
    # The envelope stayed pending: the pinned server (which never saw it) takes it with the
    # next one, and both receipts verify.
    proc = send(b, tmp_path, b_id, {"n": 2})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["seq"] == 2


def test_send_detects_a_rewritten_history_on_connect(start_broker, tmp_path):
    """The client keeps the last checkpoint it verified: a server whose database was replaced
    by an older copy (and which went on with other envelopes) is caught on the next connect."""
    data = str(tmp_path / "data")
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0"], data_dir=data)

    def addresses():
        ready = b.events("ready")[-1]
        b.http_addr, b.mqtt_addr = ready["http"][0], ready["mqtt"][0]

    addresses()
    keygen(tmp_path, "a.json")
    b_id = keygen(tmp_path, "b.json")
    c_id = keygen(tmp_path, "c.json")
    assert send(b, tmp_path, b_id, {"n": 1}).returncode == 0
    b.terminate()
    import shutil
    shutil.copytree(data, str(tmp_path / "saved"))  # the ledger at one entry
    b.restart()
    addresses()
    assert send(b, tmp_path, b_id, {"n": 2}).returncode == 0  # Alice's client saw size 2
    b.terminate()
    shutil.rmtree(data)
    shutil.copytree(str(tmp_path / "saved"), data)
    b.restart()
    addresses()
    for i in range(3):  # another identity's envelopes take the place of Alice's second
        proc = send(b, tmp_path, b_id, {"c": i}, state="c-state", key="c.json")
        assert proc.returncode == 0, proc.stderr
    proc = send(b, tmp_path, c_id, {"n": 3})
    assert proc.returncode == 5, (proc.returncode, proc.stdout, proc.stderr)
    assert "history rewritten" in proc.stderr, proc.stderr
