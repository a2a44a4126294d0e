"""The command line a newcomer meets (issue 15, items 2 and 4): every command answers --help and
-h with its own usage and exit 0; errors are one line "ledgermq: <command>: <message>" naming the
actual fault; the README's command-line block lists every command and flag, and its INI example
starts a broker when pasted; a plain `serve` listens where the clients look (HTTP
127.0.0.1:8080), and a client that can't reach the server says which address and which flag,
once, with exit code 4.

Brokers here listen on free ports (port 0) except in the one test of the default HTTP address,
which uses 127.0.0.1:8080 only when it is free."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

import configkeys

BIN = os.environ.get("LEDGERMQ_BIN", "ledgermq")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TIMEOUT_S = 60
READY_TIMEOUT_S = 20
COMMANDS = ["serve", "passwd", "keygen", "send", "listen", "token", "verify", "revoke",
            "validate", "bench", "admin", "version", "help"]


def run(args, cwd, timeout=TIMEOUT_S, stdin=None):
    return subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def flags_in(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", text))


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def readme_command_block():
    """{command: its lines} from the README's "Command line" code block."""
    text = readme()
    start = text.index("```\n", text.index("\n## Command line\n")) + 4
    block = text[start:text.index("```", start)]
    entries, cur = {}, None
    for line in block.splitlines():
        m = re.match(r"ledgermq (\w+)", line)
        if m:
            cur = m.group(1)
            assert cur not in entries, "listed twice: " + cur
            entries[cur] = ""
        assert cur is not None, line
        entries[cur] += line + "\n"
    return entries


def exit_codes_of_usage(text):
    section = text.split("\nexit codes:\n", 1)[1]
    return {int(m) for m in re.findall(r"^  (\d)  ", section, re.M)}


def keygen(tmp_path, name):
    p = run(["keygen", "--out", name], tmp_path)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def closed_port():
    """A port nothing listens on (bound, then released: connections to it are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- help --------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_answers_help_and_h_with_its_own_usage(tmp_path, cmd):
    outs = []
    for args in ([cmd, "--help"], [cmd, "-h"], ["help", cmd], [cmd, "--bogus", "-h"]):
        p = run(args, tmp_path)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        assert p.stderr == "", (args, p.stderr)
        assert p.stdout.startswith("usage: ledgermq %s" % cmd), (args, p.stdout[:200])
        outs.append(p.stdout)
    assert outs[0] == outs[1] == outs[2] == outs[3]
    assert "\noptions:\n" in outs[0] and "-h, --help" in outs[0], outs[0]
    assert exit_codes_of_usage(outs[0]) >= {0, 1}, outs[0]
    assert os.listdir(tmp_path) == [], "help created files"


def test_help_lists_every_command(tmp_path):
    p = run(["help"], tmp_path)
    assert p.returncode == 0 and p.stderr == ""
    listed = []
    for name in re.findall(r"^  ledgermq (\w+)", p.stdout, re.M):
        if name not in listed:  # verify has one synopsis line per form
            listed.append(name)
    assert listed == COMMANDS, listed
    assert run(["--help"], tmp_path).stdout == p.stdout
    assert run(["-h"], tmp_path).stdout == p.stdout


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["serve", "--bogus"], ["passwd", "--bogus", "u"], ["keygen", "--bogus"],
    ["send", "--bogus"], ["listen", "--bogus"], ["token", "--bogus"], ["verify", "--bogus", "x"],
    ["revoke", "--bogus"], ["bench", "--bogus"], ["version", "--bogus"], ["help", "--bogus"],
])
def test_every_command_errors_with_one_prefix_and_exit_1(tmp_path, args):
    p = run(args, tmp_path)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stdout == ""
    first = p.stderr.splitlines()[0]
    assert first.startswith("ledgermq: %s: " % args[0]), first
    assert "--bogus" in first, first
    assert p.stderr.count("\n") == 1, p.stderr


def test_send_names_a_bad_type_and_a_bad_body_apart(tmp_path):
    keygen(tmp_path, "a.json")
    bob = keygen(tmp_path, "b.json")
    base = ["send", "--key", "a.json", "--to", bob, "--http", "127.0.0.1:%d" % closed_port()]
    cases = [
        (["--type", "no spaces"], '{"a":1}', "--type", "JSON"),
        ([], "not json", "not valid JSON", "--type"),
        ([], "[1,2]", "must be a JSON object", "--type"),
        ([], '{"a":1,"a":2}', "not valid JSON", "--type"),
    ]
    for extra, body, says, not_says in cases:
        p = run(base + extra + [body], tmp_path)
        assert p.returncode == 1, (body, p.returncode, p.stderr)
        assert p.stderr.startswith("ledgermq: send: ") and p.stderr.count("\n") == 1, p.stderr
        assert says in p.stderr and not_says not in p.stderr, (body, p.stderr)
    # Refused before the state was opened: no client directory was made.
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.json"]


# ---- unreachable server ------------------------------------------------------------------

def test_send_to_a_closed_http_port_says_the_address_and_the_flag_once(tmp_path):
    keygen(tmp_path, "a.json")
    bob = keygen(tmp_path, "b.json")
    port = closed_port()
    started = time.monotonic()
    p = run(["send", "--key", "a.json", "--to", bob, "--http", "127.0.0.1:%d" % port,
             "--server", "127.0.0.1:%d" % closed_port(), "--state", "st",
             "--timeout-ms", "60000", '{"a":1}'], tmp_path)
    elapsed = time.monotonic() - started
    assert p.returncode == 4, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ledgermq: send: cannot reach the HTTP login server at "
                               "127.0.0.1:%d: " % port), lines[0]
    assert "--http HOST:PORT" in lines[0] and "connection lost" not in lines[0], lines[0]
    assert "outbox" in lines[0], lines[0]
    # It did not wait for --timeout-ms (60 s) retrying the same address.
    assert elapsed < 30, elapsed


def test_listen_to_a_closed_http_port_says_the_address_and_the_flag(tmp_path):
    keygen(tmp_path, "b.json")
    port = closed_port()
    p = run(["listen", "--key", "b.json", "--http", "[::1]:%d" % port, "--state", "st",
             "--timeout-ms", "60000"], tmp_path)
    assert p.returncode == 4, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ledgermq: listen: cannot reach the HTTP login server at "
                               "[::1]:%d: " % port), lines[0]
    assert "--http HOST:PORT" in lines[0], lines[0]


@pytest.mark.ledgermq_only
def test_send_to_a_closed_mqtt_port_names_the_server_flag(start_broker, tmp_path):
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0"])
    http = b.events("ready")[-1]["http"][0]
    keygen(tmp_path, "a.json")
    bob = keygen(tmp_path, "b.json")
    port = closed_port()
    p = run(["send", "--key", "a.json", "--to", bob, "--http", http,
             "--server", "127.0.0.1:%d" % port, "--state", "st", "--timeout-ms", "60000",
             '{"a":1}'], tmp_path)
    assert p.returncode == 4, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ledgermq: send: cannot reach the MQTT server at "
                               "127.0.0.1:%d: " % port), lines[0]
    assert "--server HOST:PORT" in lines[0], lines[0]
    # The envelope stayed in the outbox: a send with the right address delivers it and its own.
    p = run(["send", "--key", "a.json", "--to", bob, "--http", http, "--server",
             "%s:%d" % (b.host, b.port), "--state", "st", "--timeout-ms", "30000",
             '{"a":2}'], tmp_path)
    assert p.returncode == 0, p.stderr
    p = run(["listen", "--key", "b.json", "--http", http, "--server", "%s:%d" % (b.host, b.port),
             "--state", "bst", "--count", "2", "--timeout-ms", "30000"], tmp_path)
    assert p.returncode == 0, p.stderr
    bodies = [json.loads(line)["envelope"]["body"] for line in p.stdout.splitlines()]
    assert bodies == [{"a": 1}, {"a": 2}], bodies


@pytest.mark.ledgermq_only
def test_listen_says_a_lost_server_once_and_keeps_waiting(start_broker, tmp_path):
    """After a first connection, the server going away is an outage, not a wrong address:
    listen keeps retrying (and exits 0 at --timeout-ms without --count), saying that it can't
    reach the server once, not once per retry."""
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0"])
    http = b.events("ready")[-1]["http"][0]
    keygen(tmp_path, "a.json")
    bob = keygen(tmp_path, "b.json")
    server = "%s:%d" % (b.host, b.port)
    p = run(["send", "--key", "a.json", "--to", bob, "--http", http, "--server", server,
             "--state", "ast", '{"a":1}'], tmp_path)
    assert p.returncode == 0, p.stderr
    listener = subprocess.Popen(
        [BIN, "listen", "--key", "b.json", "--http", http, "--server", server, "--state", "bst",
         "--timeout-ms", "8000"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    first = listener.stdout.readline()  # connected: the envelope came
    assert json.loads(first)["envelope"]["body"] == {"a": 1}, first
    b.kill9()
    out, err = listener.communicate(timeout=60)
    assert listener.returncode == 0, (listener.returncode, err)
    said = [line for line in err.splitlines() if "cannot reach" in line]
    assert len(said) == 1, err
    # A token still valid: straight to MQTT; else the login first.
    assert re.match(r"ledgermq: listen: connection lost: cannot reach the (MQTT server at %s|"
                    r"HTTP login server at %s): " % (re.escape(server), re.escape(http)),
                    said[0]), said


# ---- serve's default HTTP listener -------------------------------------------------------

class Serve:
    """`ledgermq serve ARGS` in cwd, until its ready line (or its exit)."""

    def __init__(self, args, cwd):
        self.proc = subprocess.Popen([BIN, "serve", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.ready = None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "ready":
                self.ready = ev
                return

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode


def test_plain_serve_listens_on_http_127_0_0_1_8080(tmp_path):
    """No --http: the HTTP listener is 127.0.0.1:8080, where send and listen log in."""
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the broker binds
    try:
        probe.bind(("127.0.0.1", 8080))
    except OSError:
        pytest.skip("127.0.0.1:8080 is in use on this machine: the default can't be observed "
                    "(the none cases below still run)")
    finally:
        probe.close()
    s = Serve(["--mqtt", "127.0.0.1:0", "--data", str(tmp_path / "data")], tmp_path)
    try:
        if s.ready is None and any("address already in use" in l.lower() for l in s.lines):
            pytest.skip("127.0.0.1:8080 was taken meanwhile: " + "".join(s.lines[-3:]))
        assert s.ready is not None, "".join(s.lines)
        assert s.ready.get("http") == ["127.0.0.1:8080"], s.ready
        with urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        assert s.stop() == 0, "".join(s.lines)


@pytest.mark.parametrize("how", ["flag", "config"])
def test_http_none_turns_the_listener_off(tmp_path, how):
    args = ["--mqtt", "127.0.0.1:0", "--data", str(tmp_path / "data")]
    if how == "flag":
        args += ["--http", "none"]
    else:
        (tmp_path / "c.ini").write_text("[server]\nhttp = none\n")
        args += ["--config", str(tmp_path / "c.ini")]
    s = Serve(args, tmp_path)
    try:
        assert s.ready is not None, "".join(s.lines)
        assert "http" not in s.ready and "https" not in s.ready, s.ready
    finally:
        assert s.stop() == 0, "".join(s.lines)


# ---- README ------------------------------------------------------------------------------

def test_readme_command_block_lists_every_command_and_flag(tmp_path):
    entries = readme_command_block()
    assert sorted(entries) == sorted(COMMANDS), sorted(entries)
    for cmd, text in entries.items():
        usage = run([cmd, "--help"], tmp_path).stdout
        listed, known = flags_in(text), flags_in(usage) | {"--help"}
        assert listed <= known, (cmd, "in the README, not in the usage", listed - known)
        if cmd != "bench":  # bench's README line points to bench --help for the rest
            missing = known - listed - {"--help"}
            assert not missing, (cmd, "in the usage, not in the README", missing)


@pytest.mark.parametrize("cmd", ["send", "listen", "verify", "passwd", "serve"])
def test_readme_gives_the_exit_codes_the_usage_gives(tmp_path, cmd):
    codes = exit_codes_of_usage(run([cmd, "--help"], tmp_path).stdout)
    text = readme()
    if cmd == "serve":
        para = text[text.index("\nExit codes: 0 clean"):]
        para = para[:para.index("\n\n")]
    else:
        m = re.search(r"^- `%s`: (.*?)(?=^- |^\S|\n\n)" % cmd, text, re.M | re.S)
        assert m, "no exit codes for %s in the README" % cmd
        para = m.group(1)
    readme_codes = {int(c) for c in re.findall(r"(?<![\w.-])([0-5])(?=\s[a-z(])", para)}
    assert readme_codes == codes, (cmd, readme_codes, codes, para)


def readme_ini():
    text = readme()
    start = text.index("```ini\n", text.index("\n## Configuration\n")) + len("```ini\n")
    return text[start:text.index("```", start)]


def config_keys(tmp_path):
    return configkeys.config_keys(BIN, tmp_path)


def test_readme_ini_example_has_every_key(tmp_path):
    ini = readme_ini()
    found, section = {}, None
    for line in ini.splitlines():
        m = re.match(r"\[(\w+)(?:\.[\w-]+)?\]", line)  # [webhook.NAME]: "webhook"
        if m:
            section = m.group(1)
        m = re.match(r"(\w+)\s*=", line)
        if m:
            found.setdefault(section, set()).add(m.group(1))
    for section, keys in config_keys(tmp_path).items():
        missing = keys - found.get(section, set())
        assert not missing, ("[%s] keys missing from the README example" % section, missing)


def test_readme_ini_example_starts_a_broker_when_pasted(tmp_path, certs):
    """The example as printed, on free ports (its listener lines' ports become 0), in a
    directory holding the files it names: serve starts, listens everywhere it says, stops."""
    ini = readme_ini()
    listen_keys = ("mqtt", "mqtts", "http", "https")
    lines = []
    for line in ini.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in listen_keys:
            line = re.sub(r"(\d|\]):\d+", r"\1:0", line)
        lines.append(line)
    (tmp_path / "ledgermq.ini").write_text("\n".join(lines) + "\n")
    for src, dst in (("server.pem", "server.pem"), ("server.key", "server.key"),
                     ("ca.pem", "ca.pem")):
        shutil.copy(certs / src, tmp_path / dst)
    p = run(["passwd", "--file", "passwd", "alice"], tmp_path, stdin="secret\n")
    assert p.returncode == 0, p.stderr
    (tmp_path / "acl").write_text("user alice\ntopic readwrite #\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "export").mkdir()
    p = run(["keygen", "--eth", "seal.key"], tmp_path)  # [seal] key_file (no node: it waits)
    assert p.returncode == 0, p.stderr
    shutil.copy(os.path.join(os.path.dirname(BIN), "plugins", "guard.so"), tmp_path / "plugins")
    s = Serve(["--config", "ledgermq.ini"], tmp_path)
    try:
        assert s.ready is not None, "".join(s.lines)
        assert len(s.ready["mqtt"]) == 2, s.ready
        for key in ("mqtts", "http", "https"):
            assert len(s.ready.get(key, [])) == 1, (key, s.ready)
        assert (tmp_path / "data" / "ledgermq.db").exists()
    finally:
        assert s.stop() == 0, "".join(s.lines)
