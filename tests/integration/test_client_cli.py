"""The client commands (ledgermq keygen / send / listen, built on libledgermq) against the real
server: guaranteed delivery end to end, exactly once across listener restarts, and an envelope
whose sender was killed before the ack is delivered by the next send.

Needs the server side of "Identities and guaranteed delivery" (login over HTTP, the envelope
pipeline, resync); ledgermq-only, like test_identity.py."""

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
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
    # No server at this address: the envelope is stored, then the sender dies before any ack.
    dead = ["--server", "127.0.0.1:9", "--http", "127.0.0.1:9", "--state", "a-state"]
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


# --- issue 15: the state directory follows the key file; fork recovery; verify inputs ---------

def send_plain(b, cwd, key, to, body, extra=()):
    """send without --state: the state directory is chosen by the CLI."""
    return cli(["send", "--key", key, "--to", to, "--timeout-ms", "20000", "--server",
                b.mqtt_addr, "--http", b.http_addr] + list(extra) + [json.dumps(body)], cwd)


def listen_plain(b, cwd, key, extra):
    return cli(["listen", "--key", key, "--server", b.mqtt_addr, "--http", b.http_addr]
               + extra, cwd)


def test_state_follows_the_key_file_not_the_current_directory(start_broker, tmp_path):
    b = start(start_broker)
    keys = tmp_path / "keys"
    keys.mkdir()
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
    keygen(keys, "a.json")
    b_id = keygen(keys, "b.json")
    a_key, b_key = str(keys / "a.json"), str(keys / "b.json")
    for i, d in enumerate(("x", "y", "x")):
        proc = send_plain(b, tmp_path / d, a_key, b_id, {"n": i})
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["seq"] == i + 1  # one chain, whatever the directory
    assert (keys / "a.state" / "client.db").exists()
    assert not any(p.name.startswith("client-") for d in ("x", "y")
                   for p in (tmp_path / d).iterdir())
    proc = listen_plain(b, tmp_path / "x", b_key, ["--count", "3", "--timeout-ms", "20000"])
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3
    # Another directory: the inbox was handed over already.
    proc = listen_plain(b, tmp_path / "y", b_key, ["--timeout-ms", "1500"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_state_flag_overrides_the_default(start_broker, tmp_path):
    b = start(start_broker)
    keygen(tmp_path, "a.json")
    b_id = keygen(tmp_path, "b.json")
    proc = send_plain(b, tmp_path, "a.json", b_id, {"n": 1}, ["--state", "elsewhere"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "elsewhere" / "client.db").exists()
    assert not (tmp_path / "a.state").exists()


def test_old_state_directory_in_the_current_directory_is_still_used(start_broker, tmp_path):
    b = start(start_broker)
    a_id = keygen(tmp_path, "a.json")
    b_id = keygen(tmp_path, "b.json")
    old = "client-" + a_id[:16]
    assert send_plain(b, tmp_path, "a.json", b_id, {"n": 1}, ["--state", old]).returncode == 0
    proc = send_plain(b, tmp_path, "a.json", b_id, {"n": 2})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["seq"] == 2
    assert "note: using the old state directory ./" + old in proc.stderr
    assert not (tmp_path / "a.state").exists()


def test_read_only_key_directory_falls_back_to_xdg_state_home(start_broker, tmp_path):
    """A key in a directory the user can't write to: the state goes to
    $XDG_STATE_HOME/ledgermq/<id>/. As root every directory is writable, so then the CLI runs as
    `nobody` (setpriv) on copies of the keys in a directory of its own."""
    b = start(start_broker)
    made = tmp_path / "made"
    made.mkdir()
    a_id = keygen(made, "a.json")
    b_id = keygen(made, "b.json")
    base = tempfile.mkdtemp(prefix="lmq-ro-")  # outside pytest's 0700 root directory
    try:
        keys = os.path.join(base, "keys")
        os.mkdir(keys)
        shutil.copy(made / "a.json", keys)
        env_state = os.path.join(base, "xdg")
        os.mkdir(env_state)
        prefix = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in (os.path.join(keys, "a.json"), env_state):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            os.chmod(base, 0o755)
            prefix = ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                      "--clear-groups"]
        os.chmod(keys, 0o555)
        proc = subprocess.run(prefix + [os.environ["LEDGERMQ_BIN"], "send", "--key",
                                        os.path.join(keys, "a.json"), "--to", b_id, "--server",
                                        b.mqtt_addr, "--http", b.http_addr, "{}"],
                              cwd=base, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                              env=dict(os.environ, XDG_STATE_HOME=env_state))
        assert proc.returncode == 0, proc.stderr
        assert os.path.exists(os.path.join(env_state, "ledgermq", a_id, "client.db"))
        assert not os.path.exists(os.path.join(keys, "a.state"))
    finally:
        if os.path.isdir(os.path.join(base, "keys")):
            os.chmod(os.path.join(base, "keys"), 0o700)
        shutil.rmtree(base, ignore_errors=True)


def test_fork_from_a_fresh_state_directory_adopts_the_server_chain(start_broker, tmp_path):
    b = start(start_broker)
    keygen(tmp_path, "a.json")
    b_id = keygen(tmp_path, "b.json")
    for i in range(2):
        assert send(b, tmp_path, b_id, {"n": i}, state="s1").returncode == 0
    # A state directory that never sent: its seq 1 is a fork; it adopts the server's head
    # (seq 2) and sends the body again as seq 3.
    proc = send(b, tmp_path, b_id, {"n": 2}, state="s2")
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout)
    assert line["seq"] == 3 and line["envelope"]["seq"] == 3
    assert line["envelope"]["body"] == {"n": 2}
    assert "adopted the server's head" in proc.stderr, proc.stderr
    proc = send(b, tmp_path, b_id, {"n": 3}, state="s2")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["seq"] == 4
    # s1 has accepted envelopes of its own: it is not replaced; the CLI says what to do.
    proc = send(b, tmp_path, b_id, {"n": 4}, state="s1")
    assert proc.returncode == 3, proc.stderr
    rej = json.loads(proc.stdout)
    assert rej["reason"] == "fork" and rej["expected_seq"] == 5
    assert "chain of this identity is at seq 4" in proc.stderr
    assert "--state" in proc.stderr
    proc = listen(b, tmp_path, ["--count", "4", "--timeout-ms", "20000"])
    assert [json.loads(x)["envelope"]["body"]["n"] for x in proc.stdout.splitlines()] == \
        [0, 1, 2, 3]


def vkey_of(b):
    with urllib.request.urlopen("http://%s/ledger/key" % b.http_addr, timeout=10) as r:
        return json.loads(r.read())["vkey"]


def verify(args, cwd):
    return cli(["verify"] + args, cwd)


def test_send_prints_its_envelope_and_verify_takes_what_api_and_cli_print(start_broker,
                                                                          tmp_path):
    b = start(start_broker)
    a_id = keygen(tmp_path, "a.json")
    b_id = keygen(tmp_path, "b.json")
    proc = send(b, tmp_path, b_id, {"n": 1})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1
    line = json.loads(proc.stdout)
    assert line["envelope"]["from"] == a_id and line["envelope"]["body"] == {"n": 1}
    assert "receipt" in line and len(line["link"]) == 64
    (tmp_path / "send.json").write_text(proc.stdout)
    listened = listen(b, tmp_path, ["--count", "1", "--timeout-ms", "20000"])
    assert listened.returncode == 0, listened.stderr
    (tmp_path / "listen.json").write_text(listened.stdout)
    (tmp_path / "bare-env.json").write_text(json.dumps(line["envelope"]))
    with urllib.request.urlopen("http://%s/ledger/checkpoint" % b.http_addr, timeout=10) as r:
        (tmp_path / "cp.json").write_bytes(r.read())
    cp = json.loads((tmp_path / "cp.json").read_text())
    (tmp_path / "cp.note").write_text(cp["checkpoint"])
    (tmp_path / "cp-pretty.json").write_text(json.dumps(cp, indent=2))
    key = vkey_of(b)
    for args in (["--checkpoint", "cp.json"], ["--checkpoint", "cp.note"],
                 ["--checkpoint", "cp-pretty.json"], ["--checkpoint", "send.json"],
                 ["--receipt", "send.json"],
                 ["--receipt", "send.json", "--envelope", "listen.json"],
                 ["--receipt", "send.json", "--envelope", "send.json"],
                 ["--receipt", "send.json", "--envelope", "bare-env.json"]):
        proc = verify(["--key", key] + args, tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
        assert json.loads(proc.stdout)["ok"] is True
    # Unusable input: exit 1, one line saying so.
    (tmp_path / "garbage").write_text("hello\n")
    (tmp_path / "other.json").write_text('{"a":1}\n')
    (tmp_path / "broken.json").write_text('{"a":\n')
    for args in (["--checkpoint", "garbage"], ["--checkpoint", "other.json"],
                 ["--checkpoint", "broken.json"], ["--receipt", "other.json"],
                 ["--receipt", "garbage"],
                 ["--receipt", "send.json", "--envelope", "other.json"],
                 ["--checkpoint", "missing-file"]):
        proc = verify(["--key", key] + args, tmp_path)
        assert proc.returncode == 1, (args, proc.returncode, proc.stderr)
        assert proc.stderr.startswith("ledgermq: verify: ") and proc.stderr.count("\n") == 1
    # Well-formed but not verified: exit 3.
    forged = dict(line)
    forged["envelope"] = dict(line["envelope"], body={"n": 2})  # the signature no longer holds
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    other_env = dict(line["envelope"], seq=2)
    (tmp_path / "cp-bad.json").write_text(json.dumps(
        dict(cp, checkpoint=cp["checkpoint"].replace("\n1\n", "\n2\n", 1))))
    for args in (["--receipt", "forged.json"], ["--checkpoint", "cp-bad.json"]):
        proc = verify(["--key", key] + args, tmp_path)
        assert proc.returncode == 3, (args, proc.returncode, proc.stderr)
    del other_env
