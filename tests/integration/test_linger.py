"""Lingering close (docs/PROTOCOL.md "Connecting", docs/SECURITY.md "Lingering close"): when the
broker ends a connection itself (a DISCONNECT with a reason code, a 3.1.1 protocol violation, a
refused CONNECT) it writes its final packet, half-closes (WebSocket close frame, TLS
close_notify, then shutdown(SHUT_WR)) and reads and discards for at most 2 s or 64 KiB. A
client that is still writing then reads the reason and a clean end of stream instead of a
connection reset; one that closes is released at once; one that keeps writing is closed at the
bound, and counts against max_connections until then.

Each "no reset" test keeps writing for a second after the violation: before lingering, the
broker closed at once, the kernel answered the next write (or input still unread) with a reset
and the client's writes failed within milliseconds (Broken pipe / Connection reset), which is
what the Paho interoperability suite's test_flow_control2 tripped over."""

import socket
import ssl
import threading
import time

import pytest

import mqttraw as m
from test_tls import client_ctx, tls_broker
from test_tls import listener as tls_listener
from test_websocket import ws_broker, ws_raw

pytestmark = pytest.mark.ledgermq_only  # mosquitto closes at once

LINGER_S = 2.0  # CONN_LINGER_MS
LINGER_BYTES = 64 * 1024  # CONN_LINGER_MAX_BYTES
KEEP_WRITING_S = 1.0  # well inside the linger time; a broker that closes resets in ms
LIMITS = "[limits]\nmax_inflight = 5\nmax_packet_size = 1024\n"
PINGREQ = m.packet(m.PINGREQ, 0, b"")


def read_until_eof(c, timeout=LINGER_S + 3):
    """Every packet the server sends until the end of its stream, which must be a clean one
    (FIN, TLS close_notify, WebSocket close): a reset fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the server neither closed nor half-closed the connection"
        c.sock.settimeout(remaining)
        try:
            chunk = c.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError) as e:
            pytest.fail("connection reset instead of a clean end of stream: %r" % e)
        except socket.timeout:
            continue
        if not chunk:
            break
        c.buf += chunk
    got = []
    while True:
        p = c._try_parse()
        if p is None:
            break
        got.append(p)
    assert not c.buf, "bytes after the last packet: %r" % bytes(c.buf)
    return got


def keep_writing(c, seconds=KEEP_WRITING_S):
    """Writes a PINGREQ every 50 ms for `seconds`, as a client that has not yet noticed it was
    disconnected: every write must succeed (the broker is still reading, and discarding)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            c.sock.sendall(PINGREQ)
        except OSError as e:
            pytest.fail("write failed %.2f s after the violation: %r" % (time.monotonic() - t0, e))
        time.sleep(0.05)


def exceed_receive_maximum(c):
    """v5: one QoS 2 PUBLISH more than the server's Receive Maximum, in one write (QoS 2 counts
    until PUBREL, which never comes, so no ack timing can free the window in between)."""
    n = c.server_receive_maximum() + 1
    c.send_raw(b"".join(m.encode_publish(5, "linger/t", b"x", qos=2, pid=i + 1)
                        for i in range(n)))
    return 0x93


def send_too_large(c):
    c.send_raw(m.encode_publish(5, "linger/t", b"x" * 2000))  # max_packet_size = 1024
    return 0x95


def send_second_connect(c):
    c.send_raw(m.encode_connect(c.version, "again"))
    return 0x82


TRIGGERS = {"receive_maximum": exceed_receive_maximum, "packet_too_large": send_too_large,
            "second_connect": send_second_connect}


def assert_disconnect(got, rc):
    discs = [p for p in got if p.type == m.DISCONNECT]
    assert discs, "no DISCONNECT before the end of stream: %r" % got
    assert discs[-1].rc == rc, discs
    assert discs[-1].props.get("reason_string"), discs[-1]
    assert [p.type for p in got if p.type not in (m.DISCONNECT, m.PUBREC)] == [], got


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_client_still_writing_reads_disconnect_then_end_of_stream(start_broker, trigger):
    b = start_broker(LIMITS)
    c = b.connect("writer", version=5)
    rc = TRIGGERS[trigger](c)
    keep_writing(c)  # without lingering: Broken pipe / reset here
    got = read_until_eof(c)
    assert_disconnect(got, rc)


def test_v311_protocol_violation_ends_with_end_of_stream_not_reset(start_broker):
    b = start_broker(LIMITS)
    c = b.connect("writer311", version=4)
    send_second_connect(c)
    keep_writing(c)
    assert read_until_eof(c) == []  # 3.1.1: no DISCONNECT, just the end of the stream


def test_v311_qos1_publish_over_the_acl_ends_with_end_of_stream(start_broker, tmp_path):
    """3.1.1 can't refuse a PUBLISH but by closing: that close lingers too."""
    acl = tmp_path / "acl"
    acl.write_text("topic read nothing/#\n")
    b = start_broker(extra_args=["--acl-file", str(acl)])
    c = b.connect("denied311", version=4)
    c.publish("forbidden/t", b"x", qos=1)
    keep_writing(c)
    assert read_until_eof(c) == []


@pytest.mark.parametrize("version", [4, 5])
def test_refused_connect_still_writing_reads_the_connack(start_broker, version):
    b = start_broker("[limits]\nmax_connections = 1\n")
    b.connect("first", version=version)
    c = b.raw(version)
    # CONNECT and a PUBLISH behind it, as a client that doesn't wait for its CONNACK sends.
    c.send_raw(m.encode_connect(version, "second") + m.encode_publish(version, "t", b"x"))
    keep_writing(c)
    got = read_until_eof(c)
    assert [p.type for p in got] == [m.CONNACK], got
    if version == 5:
        assert got[0].rc == 0x97, got
        assert got[0].props.get("reason_string"), got
    else:
        assert got[0].rc == 3, got


def test_websocket_client_reads_disconnect_and_close_frame(start_broker):
    b = ws_broker(start_broker)
    c, sock = ws_raw(b, 5)
    c.connect("ws-writer")
    send_second_connect(c)
    keep_writing(c)
    got = read_until_eof(c)  # the close frame reads as the end of stream
    assert_disconnect(got, 0x82)
    assert sock.close_code == 1000, sock.frames
    assert sock.conn.expect_eof() == b""  # then the TCP end of stream, no reset


def test_tls_client_reads_disconnect_and_close_notify(start_broker, certs):
    b = tls_broker(start_broker, certs)
    host, port = tls_listener(b, "mqtts")
    raw_sock = socket.create_connection((host, port), timeout=5)
    tls = client_ctx(certs).wrap_socket(raw_sock, server_hostname=host)
    c = m.RawClient(None, version=5, sock=tls)
    b._clients.append(c)
    c.connect("tls-writer")
    send_second_connect(c)
    keep_writing(c)
    got = read_until_eof(c)  # b"" from recv: the server's close_notify
    assert_disconnect(got, 0x82)


def writer_thread(c, chunk_bytes, pause_s, result):
    """Writes QoS 0 PUBLISHes of chunk_bytes until a write fails; records when and how much."""
    def run():
        sent = 0
        pkt = m.encode_publish(5, "linger/junk", b"j" * chunk_bytes)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 3 * LINGER_S + 5:
                c.sock.sendall(pkt)
                sent += len(pkt)
                if pause_s:
                    time.sleep(pause_s)
        except OSError as e:
            result["error"] = e
        result["failed_after_s"] = time.monotonic() - t0
        result["sent"] = sent
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def connect_ok(b, client_id):
    c = b.raw(5)
    return c.connect(client_id, check=False).rc


def test_client_that_keeps_writing_is_closed_at_the_time_bound_and_counts_meanwhile(
        start_broker):
    b = start_broker(LIMITS + "max_connections = 1\n")
    c = b.connect("slow-writer", version=5)
    exceed_receive_maximum(c)
    t0 = time.monotonic()
    result = {}
    t = writer_thread(c, 100, 0.05, result)  # ~2.6 KB/s: the 64 KiB bound is far away
    got = read_until_eof(c)  # the half-close arrives at once
    assert time.monotonic() - t0 < LINGER_S / 2, "no prompt half-close"
    assert_disconnect(got, 0x93)
    # Still lingering: it holds the one connection max_connections allows.
    assert connect_ok(b, "next") == 0x97
    t.join(timeout=3 * LINGER_S + 10)
    assert "error" in result, "writes never failed: the broker kept the socket (%r)" % result
    # Closed at the bound (measured from the writer's start, just after the violation).
    assert LINGER_S - 0.3 <= result["failed_after_s"] <= LINGER_S + 2.0, result
    assert result["sent"] < LINGER_BYTES, result
    assert connect_ok(b, "later") == 0


def test_client_that_floods_is_closed_at_the_byte_bound(start_broker):
    b = start_broker(LIMITS)
    c = b.connect("fast-writer", version=5)
    exceed_receive_maximum(c)
    result = {}
    t = writer_thread(c, 1000, 0, result)
    got = read_until_eof(c)
    assert_disconnect(got, 0x93)
    t.join(timeout=3 * LINGER_S + 10)
    assert "error" in result, result
    # 64 KiB arrive in milliseconds: closed long before the time bound.
    assert result["failed_after_s"] < LINGER_S - 0.5, result
    assert result["sent"] >= LINGER_BYTES, result


def test_client_that_closes_is_released_at_once(start_broker):
    b = start_broker(LIMITS + "max_connections = 1\n")
    c = b.connect("closer", version=5)
    exceed_receive_maximum(c)
    got = read_until_eof(c)
    assert [p.rc for p in got if p.type == m.DISCONNECT] == [0x93], got
    c.close()
    t0 = time.monotonic()
    rc = None
    while time.monotonic() - t0 < LINGER_S / 2:
        rc = connect_ok(b, "next")
        if rc == 0:
            break
        time.sleep(0.05)
    assert rc == 0, "the closed connection still held its slot (CONNACK 0x%02x)" % rc
    assert time.monotonic() - t0 < LINGER_S / 2
