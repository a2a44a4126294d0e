"""Listener and server addresses may be host names (issue "operator experience", item 10).

A host name is resolved once, before the data directory is created: the listener binds the first
address it resolves to, and the "ready" line names that address. LOCALHOST (capitals) is not
the literal `localhost` the configuration maps to 127.0.0.1 itself, so it goes through the
system's resolver (/etc/hosts, whose look-up ignores case). A name that does not resolve stops
the start with a one-line error and exit 1. The clients' --server and --http take names too."""

import json
import os
import subprocess
import urllib.request

import pytest

pytestmark = pytest.mark.ledgermq_only

BIN = os.environ.get("LEDGERMQ_BIN", "ledgermq")
TIMEOUT_S = 60
LOOPBACK = ("127.0.0.1", "::1")
# A resolver that answers slowly or not at all (no network) gives up after about a second.
FAST_RESOLVER = {"RES_OPTIONS": "timeout:1 attempts:1"}


def cli(args, cwd):
    return subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=dict(os.environ, **FAST_RESOLVER))


def split(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def test_host_name_listeners_bind_what_the_name_resolves_to(start_broker):
    b = start_broker(None, extra_args=["--mqtt", "LOCALHOST:0", "--http", "LOCALHOST:0"])
    ready = b.events("ready")[-1]
    mqtt_host, _ = split(ready["mqtt"][0])
    http_host, http_port = split(ready["http"][0])
    assert mqtt_host in LOOPBACK and http_host in LOOPBACK, ready
    c = b.connect("named")
    c.disconnect()
    url_host = "[%s]" % http_host if ":" in http_host else http_host
    with urllib.request.urlopen("http://%s:%d/healthz" % (url_host, http_port), timeout=10) as r:
        assert r.status == 200


@pytest.mark.parametrize("args,needle", [
    (["--mqtt", "nonexistent.invalid:1883"], "mqtt listener nonexistent.invalid: cannot resolve"),
    (["--http", "nonexistent.invalid:8080"], "http listener nonexistent.invalid: cannot resolve"),
])
def test_a_name_that_does_not_resolve_stops_the_start(tmp_path, args, needle):
    proc = cli(["serve", "--data", "data", *args], tmp_path)
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    assert proc.stderr.startswith("ledgermq: serve: " + needle), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "data").exists()


def test_clients_reach_the_server_by_name(start_broker, tmp_path):
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    _, mqtt_port = split(ready["mqtt"][0])
    _, http_port = split(ready["http"][0])
    names = ["--server", "LOCALHOST:%d" % mqtt_port, "--http", "LOCALHOST:%d" % http_port]
    ids = []
    for name in ("a.json", "b.json"):
        proc = cli(["keygen", "--out", name], tmp_path)
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.strip())
    proc = cli(["send", "--key", "a.json", "--to", ids[1], "--type", "test.n", *names, "{}"],
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["to"] == ids[1]
    proc = cli(["listen", "--key", "b.json", "--count", "1", "--timeout-ms", "20000", *names],
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["envelope"]["from"] == ids[0]


def test_a_client_names_the_address_it_could_not_resolve(tmp_path):
    proc = cli(["keygen", "--out", "a.json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = cli(["send", "--key", "a.json", "--to", "a" * 64, "--server", "nonexistent.invalid:1883",
                "{}"], tmp_path)
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    assert "cannot resolve MQTT address nonexistent.invalid:1883" in proc.stderr, proc.stderr
