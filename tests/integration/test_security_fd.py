"""Security finding 11: the open-file limit (docs/SECURITY.md "Memory and descriptors").
The broker raises its soft RLIMIT_NOFILE to the hard limit at start and logs both, lowers the
default connection limits to fit a limit too low for them, refuses to start with connection
limits the operator set that the limit can't serve (one line, exit 1), and when descriptors
still run out (here: the limit lowered from outside with prlimit while it runs) logs "emfile",
closes what it can't take instead of spinning, and serves new clients once others close."""

import json
import os
import socket
import stat
import subprocess
import time

import pytest

import mqttraw

pytestmark = pytest.mark.ledgermq_only

PRLIMIT = "/usr/bin/prlimit"


def wrapper(tmp_path, soft, hard):
    """A LEDGERMQ_BIN that runs the real binary under RLIMIT_NOFILE soft:hard (prlimit execs
    it, so the process is the broker itself)."""
    path = tmp_path / ("ledgermq-nofile-%d-%d" % (soft, hard))
    path.write_text("#!/bin/sh\nexec %s --nofile=%d:%d -- %s \"$@\"\n" % (
        PRLIMIT, soft, hard, os.environ["LEDGERMQ_BIN"]))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_soft_limit_is_raised_to_the_hard_limit_and_logged(start_broker, tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGERMQ_BIN", wrapper(tmp_path, 256, 4096))
    b = start_broker("[limits]\nmax_connections = 1000\n")
    ev = b.wait_event("fd_limit")
    assert ev["soft_at_start"] == 256 and ev["soft"] == 4096 and ev["hard"] == 4096, ev
    assert ev["needed"] <= 4096, ev
    with open("/proc/%d/limits" % b.proc.pid) as f:
        line = [x for x in f if x.startswith("Max open files")][0]
    assert line.split()[3:5] == ["4096", "4096"], line


def test_default_limits_are_fitted_to_a_low_limit_and_still_serve(start_broker, tmp_path,
                                                                    monkeypatch):
    # The defaults need ~11,000 descriptors; a host whose hard limit is 2048 still runs
    # `make run`: the default connection limits are lowered to fit, and say so.
    monkeypatch.setenv("LEDGERMQ_BIN", wrapper(tmp_path, 1024, 2048))
    b = start_broker(extra_args=["--http", "127.0.0.1:0"])
    fit = b.wait_event("fd_limit_fitted")
    assert fit["level"] == "warn", fit
    assert 64 <= fit["max_connections"] < 2048 and 0 < fit["http_max_connections"] <= 256, fit
    ev = b.wait_event("fd_limit")
    assert ev["soft"] == 2048 and ev["needed"] <= 2048, ev
    c = b.connect("fits", version=5)
    c.subscribe([("fd/t", 1)])
    c.publish_acked("fd/t", b"ok", qos=1)
    assert c.expect_publish().payload == b"ok"


def test_a_max_connections_the_limit_cannot_serve_is_refused_at_start(tmp_path):
    binary = os.environ["LEDGERMQ_BIN"]
    ini = tmp_path / "ledgermq.ini"
    ini.write_text("[limits]\nmax_connections = 1000\nhttp_max_connections = 100\n")
    r = subprocess.run([PRLIMIT, "--nofile=256:256", "--", binary, "serve", "--mqtt",
                        "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", str(tmp_path / "data"),
                        "--config", str(ini)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [json.loads(line) for line in r.stderr.splitlines()]  # one JSON log line
    assert len(lines) == 1 and lines[0]["event"] == "start_failed", lines
    msg = lines[0]["msg"]
    assert msg.startswith("the open-file limit is 256 (hard 256)"), lines
    assert "max_connections 1000" in msg and "http_max_connections 100" in msg, lines
    assert not (tmp_path / "data").exists(), "refused before opening anything"


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect_ok(port, timeout=5.0):
    """A CONNECT answered with CONNACK 0: the client, or None when refused or closed."""
    try:
        c = mqttraw.RawClient(port, version=5, timeout=timeout)
    except OSError:
        return None
    try:
        ack = c.connect("", check=False)
    except (OSError, mqttraw.Closed, mqttraw.Timeout):
        c.close()
        return None
    if ack.rc != 0:
        c.close()
        return None
    return c


def test_emfile_is_logged_and_the_broker_recovers(start_broker):
    b = start_broker("[limits]\nmax_connections = 200\n")
    b.wait_event("fd_limit")
    pid = b.proc.pid
    # Descriptors run out from outside the broker's own accounting: 8 more than it has open.
    base = open_fds(pid)
    limit = base + 8
    subprocess.run([PRLIMIT, "--pid", str(pid), "--nofile=%d:%d" % (limit, limit)], check=True,
                   timeout=10)
    clients = []
    refused = 0
    for _ in range(30):
        c = connect_ok(b.port, timeout=3.0)
        if c is None:
            refused += 1
        else:
            clients.append(c)
    assert 0 < len(clients) <= 8, len(clients)
    assert refused > 0
    ev = b.wait_event("emfile")
    assert ev["level"] == "error" and ev["listener"] == "mqtt", ev
    # Refused connections were accepted and closed, not left to spin the loop.
    before = cpu_s(pid)
    for _ in range(5):
        assert connect_ok(b.port, timeout=2.0) is None
    time.sleep(1.0)
    assert cpu_s(pid) - before < 0.8, "the broker spins on EMFILE"
    # Rate-limited: far fewer lines than failed accepts.
    assert len(b.events("emfile")) <= 3, b.events("emfile")
    # Others close: a new client is served again.
    for c in clients:
        c.close()
    deadline = time.monotonic() + 10
    c = None
    while c is None and time.monotonic() < deadline:
        c = connect_ok(b.port)
        if c is None:
            time.sleep(0.2)
    assert c is not None, "no client served after the others closed"
    c.close()
