"""scripts/bench_transports.py, the idle-connection driver of `make bench`'s transports part,
and the s_time output parsing in scripts/bench.py.

Against a real ledgermq with all four listeners (MQTT, MQTT over TLS, HTTP and HTTPS with
WebSocket at /mqtt): every transport's connections all reach CONNACK 0. Controls show the
driver can fail: a WebSocket upgrade at the wrong path, and MQTT spoken to the HTTP port.
The WebSocket framing is checked on its own (masking, 16-bit lengths, partial frames).
No timing assertions.
"""
import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import bench  # noqa: E402
import bench_transports as bt  # noqa: E402

BIN = os.environ.get("LEDGERMQ_BIN", "ledgermq")
READY_TIMEOUT_S = 10.0
COUNT = 25  # per transport: more than one set-up window's worth is not needed here


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("transports")
    certs = str(work / "certs")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make-certs.sh"), certs],
                   check=True, capture_output=True, timeout=60)
    log_path = work / "broker.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            [BIN, "serve", "--mqtt", "127.0.0.1:0", "--mqtts", "127.0.0.1:0", "--http",
             "127.0.0.1:0", "--https", "127.0.0.1:0", "--tls-cert", certs + "/server.pem",
             "--tls-key", certs + "/server.key", "--data", str(work / "data"),
             "--log-level", "info"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=logf)
    ports = None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ports is None and time.monotonic() < deadline and proc.poll() is None:
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "ready":
                ports = {t: int(ev[k][0].rpartition(":")[2])
                         for t, k in (("tcp", "mqtt"), ("tls", "mqtts"), ("ws", "http"),
                                      ("wss", "https"))}
        time.sleep(0.05)
    if ports is None:
        proc.kill()
        proc.wait()
        pytest.fail("ledgermq not ready:\n" + log_path.read_text(errors="replace")[-3000:])
    yield {"proc": proc, "ports": ports, "ca": certs + "/ca.pem"}
    proc.terminate()
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("transport", bt.TRANSPORTS)
def test_every_connection_gets_connack(server, transport):
    res = bt.open_idle(transport, server["ports"][transport], COUNT, cafile=server["ca"],
                       limit_s=60)
    try:
        assert res["failed"] == {}
        assert res["connected"] == COUNT
        assert len(res["socks"]) == COUNT
        assert server["proc"].poll() is None
    finally:
        bt.close_all(res["socks"])


def test_wrong_path_is_a_failure(server):
    res = bt.open_idle("ws", server["ports"]["ws"], 3, path="/nope", limit_s=30)
    assert res["connected"] == 0
    assert sum(res["failed"].values()) == 3
    assert all(k.startswith("upgrade refused: HTTP/1.1 404") for k in res["failed"])


def test_mqtt_to_the_http_port_is_a_failure(server):
    res = bt.open_idle("tcp", server["ports"]["ws"], 3, limit_s=30)
    assert res["connected"] == 0
    assert sum(res["failed"].values()) == 3


def test_unverifiable_certificate_is_a_failure(server, tmp_path):
    other = str(tmp_path / "other")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make-certs.sh"), other],
                   check=True, capture_output=True, timeout=60)
    res = bt.open_idle("tls", server["ports"]["tls"], 2, cafile=other + "/ca.pem", limit_s=30)
    assert res["connected"] == 0
    assert all(k.startswith("tls: ") for k in res["failed"]), res["failed"]


def test_ws_frame_is_masked_and_parses_back():
    payload = bytes(range(200))  # 16-bit length form
    frame = bt.ws_frame(payload)
    assert frame[0] == 0x82 and frame[1] == 0x80 | 126
    assert int.from_bytes(frame[2:4], "big") == 200
    assert frame[8:] != payload  # masked (a zero mask has probability 2^-32)
    frames, rest = bt.ws_parse_frames(frame + b"\x82")
    assert frames == [(2, payload)]
    assert rest == b"\x82"


def test_ws_parse_waits_for_a_whole_frame():
    server_frame = b"\x82\x04\x20\x02\x00\x00"
    for cut in range(len(server_frame)):
        frames, rest = bt.ws_parse_frames(server_frame[:cut])
        assert frames == [] and rest == server_frame[:cut]
    frames, rest = bt.ws_parse_frames(server_frame + b"\x88\x00")
    assert frames == [(2, b"\x20\x02\x00\x00"), (8, b"")] and rest == b""


def test_connect_packet_is_mqtt_311():
    pkt = bt.mqtt_connect_packet("lmqt-tcp-7")
    assert pkt[0] == 0x10 and pkt[1] == len(pkt) - 2
    assert pkt[2:10] == b"\x00\x04MQTT\x04\x02"
    assert int.from_bytes(pkt[10:12], "big") == bt.KEEPALIVE_S
    assert pkt[14:] == b"lmqt-tcp-7"


def test_s_time_counts():
    out = ("Collecting connection statistics for 2 seconds\n" + "r" * 50 + "\n*" + "r" * 9 +
           "\n\n60 connections in 0.25s; 240.00 connections/user sec, bytes read 0\n"
           "60 connections in 3 real seconds, 0 bytes read per connection\n")
    assert bench.s_time_counts(out) == (60, 1, 59)
    assert bench.s_time_counts("connect: Connection refused\n") == (None, 0, 0)
