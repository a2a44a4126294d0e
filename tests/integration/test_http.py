"""HTTP endpoints of the real binary, checked with curl (and a raw socket where curl can't be
slow or rude on purpose): `serve --http 127.0.0.1:0` announces its address in the "ready" log
line, answers /healthz, /version and /metrics, and every error path is a JSON error body.
"""
import json
import os
import re
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.ledgermq_only  # the reference broker has no HTTP endpoints

CURL = "/usr/bin/curl"
CURL_TIMEOUT_S = 20
SOCKET_TIMEOUT_S = 10


def http_broker(start_broker, config_text=None):
    """A broker with an HTTP listener; returns (broker, "127.0.0.1:PORT")."""
    b = start_broker(config_text, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    addrs = ready.get("http")
    assert isinstance(addrs, list) and len(addrs) == 1, ready
    assert re.fullmatch(r"127\.0\.0\.1:\d+", addrs[0]) and not addrs[0].endswith(":0"), ready
    return b, addrs[0]


def curl(addr, path, *args, tmp_path=None):
    """Runs curl; returns (status, headers dict lower-cased, body bytes)."""
    proc = subprocess.run([CURL, "-sS", "-D", "-", "-o", "/dev/stderr", "--max-time",
                           str(CURL_TIMEOUT_S), *args, "http://%s%s" % (addr, path)],
                          capture_output=True, timeout=CURL_TIMEOUT_S + 5)
    assert proc.returncode == 0, proc
    blocks = [b for b in proc.stdout.split(b"\r\n\r\n") if b.strip()]
    final = [b for b in blocks if not b.startswith(b"HTTP/1.1 100")][-1]
    lines = final.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, proc.stderr


def assert_json_error(status, headers, body, code, reason):
    assert status == code, (status, headers, body)
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {"error": code, "reason": reason}


def raw_exchange(addr, data, read_until_close=True):
    """Sends data on a fresh socket and returns everything read until the server closes."""
    host, _, port = addr.rpartition(":")
    s = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
    try:
        if data:
            s.sendall(data)
        out = b""
        while read_until_close:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def test_ready_line_lists_the_http_listener(start_broker):
    b, addr = http_broker(start_broker)
    assert b.events("ready")[-1]["mqtt"], "the MQTT listener is still there"


def test_healthz_is_ready(start_broker):
    _, addr = http_broker(start_broker)
    status, headers, body = curl(addr, "/healthz")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"status": "ready"}
    assert int(headers["content-length"]) == len(body)


def test_version_is_json_with_the_version(start_broker):
    _, addr = http_broker(start_broker)
    status, headers, body = curl(addr, "/version")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert isinstance(doc, dict) and re.fullmatch(r"\d+\.\d+\.\d+", doc["version"]), doc


def test_metrics_is_prometheus_text_with_connections(start_broker):
    b, addr = http_broker(start_broker)
    c = b.connect("metrics-client")  # one MQTT connection to count
    status, headers, body = curl(addr, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = body.decode()
    m = re.search(r"^ledgermq_connections(\{[^}]*\})? (\d+)$", text, re.M)
    assert m, text
    assert int(m.group(2)) >= 1, text
    c.close()


def test_unknown_path_is_404_json(start_broker):
    _, addr = http_broker(start_broker)
    assert_json_error(*curl(addr, "/nope"), 404, "Not Found")


def test_wrong_method_is_405_with_allow(start_broker):
    _, addr = http_broker(start_broker)
    status, headers, body = curl(addr, "/healthz", "-X", "DELETE")
    assert_json_error(status, headers, body, 405, "Method Not Allowed")
    assert "GET" in headers["allow"]


def test_head_healthz_has_length_and_no_body(start_broker):
    _, addr = http_broker(start_broker)
    out = raw_exchange(addr, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n"), out
    assert b"\r\nContent-Length: %d\r\n" % len(b'{"status":"ready"}') in out, out
    assert out.endswith(b"\r\n\r\n"), out  # headers only


def test_long_header_is_431(start_broker):
    _, addr = http_broker(start_broker)  # http_max_header_bytes defaults to 8192
    status, headers, body = curl(addr, "/healthz", "-H", "X-Big: " + "a" * 10000)
    assert_json_error(status, headers, body, 431, "Request Header Fields Too Large")
    assert headers["connection"] == "close"


def test_long_body_is_413(start_broker, tmp_path):
    _, addr = http_broker(start_broker)  # http_max_body_bytes defaults to 65536
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"x" * 70000)
    status, headers, body = curl(addr, "/healthz", "--data-binary", "@%s" % payload,
                                 "-H", "Content-Type: application/octet-stream")
    assert_json_error(status, headers, body, 413, "Payload Too Large")
    assert headers["connection"] == "close"


def test_limits_come_from_the_config_file(start_broker):
    _, addr = http_broker(start_broker, "[limits]\nhttp_max_header_bytes = 512\n"
                                        "http_max_body_bytes = 16\n")
    assert_json_error(*curl(addr, "/healthz", "-H", "X-Big: " + "a" * 600), 431,
                      "Request Header Fields Too Large")
    assert_json_error(*curl(addr, "/healthz", "--data-binary", "x" * 17), 413,
                      "Payload Too Large")
    assert curl(addr, "/healthz", "-H", "X-Small: " + "a" * 100)[0] == 200


def test_garbage_is_400_and_closed(start_broker):
    _, addr = http_broker(start_broker)
    out = raw_exchange(addr, b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), out
    assert out.endswith(b'{"error":400,"reason":"Bad Request"}'), out


def test_keep_alive_and_pipelining_answer_in_order(start_broker):
    _, addr = http_broker(start_broker)
    out = raw_exchange(addr, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)  # bodies don't end in a newline
    assert statuses == [b"200", b"404", b"200"], out
    assert out.endswith(b'{"status":"ready"}'), out


def test_curl_reuses_one_connection_for_two_requests(start_broker):
    _, addr = http_broker(start_broker)
    proc = subprocess.run([CURL, "-sS", "-v", "-o", "/dev/null", "-o", "/dev/null",
                           "--max-time", str(CURL_TIMEOUT_S), "http://%s/healthz" % addr,
                           "http://%s/version" % addr],
                          capture_output=True, text=True, timeout=CURL_TIMEOUT_S + 5)
    assert proc.returncode == 0, proc
    assert "Re-using existing connection" in proc.stderr or "Reusing existing" in proc.stderr, \
        proc.stderr


def test_slow_request_gets_408(start_broker):
    _, addr = http_broker(start_broker, "[limits]\nhttp_request_timeout_ms = 300\n")
    started = time.monotonic()
    out = raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never end
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), out
    assert out.endswith(b'{"error":408,"reason":"Request Timeout"}'), out
    assert time.monotonic() - started < SOCKET_TIMEOUT_S


def test_idle_connection_is_closed(start_broker):
    _, addr = http_broker(start_broker, "[limits]\nhttp_idle_timeout_ms = 300\n")
    assert raw_exchange(addr, b"") == b""  # closed by the server, nothing written


def test_connections_past_the_maximum_get_503(start_broker):
    _, addr = http_broker(start_broker, "[limits]\nhttp_max_connections = 1\n")
    host, _, port = addr.rpartition(":")
    held = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
    try:
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held.recv(65536).startswith(b"HTTP/1.1 200 ")
        out = raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), out
        assert out.endswith(b'{"error":503,"reason":"Service Unavailable"}'), out
    finally:
        held.close()


def test_http_listener_is_off_without_the_flag(broker):
    ready = broker.events("ready")[-1]
    assert not ready.get("http"), ready
