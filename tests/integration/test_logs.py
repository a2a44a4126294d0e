"""Logs an operator can follow (docs/OBSERVABILITY.md "Log events"): every connection that logged
client_connected logs exactly one client_disconnected at info, naming the client id, user,
transport, protocol version, who ended it and why (MQTT reason codes as "0x8E"); security lines
name the user; a start that fails says so in one JSON line, exit 1, before the data directory
and the server key exist; server_key_created says what the key is; store_stats percentiles are
ordered and never above the max.
"""

import base64
import hashlib
import json
import os
import re
import socket
import subprocess

import pytest

import mqttraw
import wsclient as ws

pytestmark = pytest.mark.ledgermq_only  # LedgerMQ's own log format

KEEPALIVE_WAIT_S = 10
EXIT_TIMEOUT_S = 30


def binary():
    path = os.environ.get("LEDGERMQ_BIN")
    if not path:
        pytest.fail("LEDGERMQ_BIN is not set (path to the ledgermq binary)")
    return os.path.abspath(path)


def scrypt_line(user, password):
    """A password file line with cheap scrypt parameters, made here (not by `ledgermq passwd`)."""
    salt = os.urandom(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=16, r=1, p=1, dklen=32)
    return "%s:$scrypt$N=16,r=1,p=1$%s$%s" % (
        user, base64.b64encode(salt).decode(), base64.b64encode(h).decode())


def listener(b, kind):
    host, _, port = b.events("ready")[-1][kind][0].rpartition(":")
    return host, int(port)


def ws_client(b, version):
    host, port = listener(b, "http")
    conn = ws.WsConn(host, port)
    b._clients.append(conn)
    conn.upgrade()
    c = mqttraw.RawClient(None, version=version, sock=conn.as_socket())
    b._clients.append(c)
    return c


def connected(b, client_id):
    return b.wait_event("client_connected", pred=lambda e: e.get("client_id") == client_id)


def disconnected(b, conn_id, timeout=5.0):
    return b.wait_event("client_disconnected", timeout=timeout,
                        pred=lambda e: e.get("conn") == conn_id)


def assert_one_end_per_connect(b):
    """Every connection that logged client_connected logged exactly one client_disconnected."""
    ends = {}
    for e in b.events("client_disconnected"):
        ends[e["conn"]] = ends.get(e["conn"], 0) + 1
        assert e["level"] == "info", e
    starts = [e["conn"] for e in b.events("client_connected")]
    assert sorted(ends) == sorted(starts), (starts, ends)
    assert all(n == 1 for n in ends.values()), ends


def protocol_name(version):
    return "5.0" if version == 5 else "3.1.1"


# ------------------------------------------------------------------ connect / disconnect
def test_client_disconnect_is_logged_with_client_transport_protocol_and_code(start_broker,
                                                                             version):
    b = start_broker()
    c = b.connect("log-tcp", version=version)
    on = connected(b, "log-tcp")
    assert on["level"] == "info" and on["transport"] == "tcp", on
    assert on["protocol"] == protocol_name(version) and on["user"] == "", on
    # v5: DISCONNECT 0x04 (with will); 3.1.1 has no reason code.
    c.send_raw(mqttraw.encode_disconnect(version, rc=0x04 if version == 5 else 0))
    off = disconnected(b, on["conn"])
    assert off["client_id"] == "log-tcp" and off["user"] == "", off
    assert off["transport"] == "tcp" and off["protocol"] == protocol_name(version), off
    assert off["by"] == "client" and off["reason"] == "client_disconnect", off
    if version == 5:
        assert off["reason_code"] == "0x04", off
    else:
        assert "reason_code" not in off, off
    assert_one_end_per_connect(b)


def test_websocket_connection_closed_by_the_client_is_logged_once(start_broker, version):
    b = start_broker(extra_args=["--http", "127.0.0.1:0"])
    c = ws_client(b, version)
    c.connect("log-ws")
    on = connected(b, "log-ws")
    assert on["transport"] == "ws" and on["protocol"] == protocol_name(version), on
    c.close()  # no DISCONNECT: the socket (and the WebSocket) just end
    off = disconnected(b, on["conn"])
    assert off["client_id"] == "log-ws" and off["transport"] == "ws", off
    assert off["by"] in ("client", "network"), off
    assert off["reason"] in ("socket_closed", "transport_closed_by_peer", "socket_error"), off
    assert_one_end_per_connect(b)


def test_keepalive_timeout_is_logged_with_0x8d(start_broker, version):
    b = start_broker()
    c = b.connect("log-silent", version=version, keepalive=1)
    on = connected(b, "log-silent")
    off = disconnected(b, on["conn"], timeout=KEEPALIVE_WAIT_S)
    assert off["by"] == "server" and off["reason"] == "keepalive_timeout", off
    assert off["reason_code"] == "0x8D" and off["client_id"] == "log-silent", off
    c.close()
    assert_one_end_per_connect(b)


def test_takeover_and_shutdown_end_every_connection_with_one_line(start_broker):
    b = start_broker()
    first = b.connect("log-dup", version=5)
    a = connected(b, "log-dup")
    b.connect("log-dup", version=5)
    off = disconnected(b, a["conn"])
    assert off["reason"] == "session_taken_over" and off["reason_code"] == "0x8E", off
    first.close()
    b.connect("log-other", version=4)
    b.terminate()
    ends = b.events("client_disconnected")
    shut = [e for e in ends if e["reason"] == "server_shutdown"]
    assert {e["client_id"] for e in shut} == {"log-dup", "log-other"}, ends
    assert all(e["reason_code"] == "0x8B" and e["by"] == "server" for e in shut), shut
    assert_one_end_per_connect(b)


# ------------------------------------------------------------------ users
def test_security_lines_and_connection_lines_name_the_user(start_broker, tmp_path):
    pw = tmp_path / "passwd"
    pw.write_text(scrypt_line("alice", "alice-pw") + "\n")
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    b = start_broker(extra_args=["--password-file", str(pw), "--acl-file", str(acl)])
    c = b.raw(5)
    c.connect("log-alice", username="alice", password=b"alice-pw")
    on = connected(b, "log-alice")
    assert on["user"] == "alice", on
    c.publish("elsewhere/x", b"no", qos=1)
    assert c.expect(mqttraw.PUBACK).rc == 0x87
    ev = b.wait_event("security", pred=lambda e: e.get("kind") == "acl_denied")
    assert ev["user"] == "alice" and ev["client_id"] == "log-alice", ev
    # A refused CONNECT: its reason code in hex, as the docs write it.
    bad = b.raw(5)
    assert bad.connect("log-mallory", username="alice", password=b"wrong",
                       check=False).rc == 0x86
    ref = b.wait_event("connect_refused")
    assert ref["reason_code"] == "0x86", ref
    c.send_raw(mqttraw.encode_disconnect(5))
    off = disconnected(b, on["conn"])
    assert off["user"] == "alice", off


# ------------------------------------------------------------------ start-up
def run_serve(tmp_path, *args):
    data = tmp_path / "data"
    r = subprocess.run([binary(), "serve", "--data", str(data)] + list(args),
                       capture_output=True, text=True, timeout=EXIT_TIMEOUT_S, cwd=str(tmp_path))
    lines = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]  # all JSON
    return r, lines, data


@pytest.mark.parametrize("which", ["mqtt", "http"])
def test_address_in_use_is_one_json_line_exit_1_and_no_data_dir(tmp_path, which):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        args = ["--mqtt", "127.0.0.1:%d" % port] if which == "mqtt" else \
            ["--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:%d" % port]
        r, lines, data = run_serve(tmp_path, *args)
    finally:
        taken.close()
    assert r.returncode == 1, (r.returncode, r.stderr)
    failed = [e for e in lines if e["event"] == "start_failed"]
    assert len(failed) == 1 and failed[0]["level"] == "error", lines
    assert "address already in use" in failed[0]["msg"].lower(), failed
    assert str(port) in failed[0]["msg"], failed
    assert not data.exists(), "a start that can't listen must leave no data directory"
    assert not [e for e in lines if e["event"] == "server_key_created"], lines


def test_server_key_created_says_what_the_key_is(start_broker):
    b = start_broker()
    ev = b.wait_event("server_key_created")
    assert re.fullmatch(r"[0-9a-f]{64}", ev["id"]), ev
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", ev["pub"]), ev
    assert ev["path"].endswith("server.key.json") and os.path.isfile(ev["path"]), ev
    assert "login tokens" in ev["msg"] and "checkpoints" in ev["msg"], ev
    with open(ev["path"]) as f:
        assert json.load(f)["x"] == ev["pub"]


def test_store_stats_percentiles_are_ordered_and_within_the_max(start_broker):
    b = start_broker()
    c = b.connect("log-stats", version=5)
    for i in range(30):
        c.publish_acked("stats/t", b"%d" % i, qos=1, retain=(i % 3 == 0))
    b.terminate()
    st = b.events("store_stats")[-1]
    assert st["commits"] > 0, st
    assert st["commit_us_p50"] <= st["commit_us_p99"] <= st["commit_us_max"], st
