"""MQTT over WebSocket (GET /mqtt on the --http and --https listeners, subprotocol "mqtt",
binary frames): paho over ws:// and wss://, and a hand-written WebSocket client (wsclient.py)
for what paho cannot do on purpose: refused upgrades, MQTT packets split over frames and
fragments or packed into one, control frames, protocol violations, shutdown. All ledgermq_only:
the reference broker in test mode has no WebSocket listener.
"""
import json
import os
import signal
import ssl
import time
import urllib.request

import pytest

import mqttraw
import wsclient as ws

pytestmark = pytest.mark.ledgermq_only

CONNECT_TIMEOUT_MS = 500
BIG_PAYLOAD_BYTES = 1024 * 1024
BIG_LIMITS = "[limits]\nmax_packet_size = %d\n" % (2 * BIG_PAYLOAD_BYTES)
HTTP_TIMEOUT_S = 10


def ws_broker(start_broker, certs=None, config_text=None):
    """A broker with an http listener (and an https one when certs are given)."""
    args = ["--http", "127.0.0.1:0"]
    if certs is not None:
        args += ["--https", "127.0.0.1:0", "--tls-cert", str(certs / "server.pem"),
                 "--tls-key", str(certs / "server.key")]
    return start_broker(config_text, extra_args=args)


def listener(b, kind):
    ready = b.events("ready")[-1]
    addrs = ready.get(kind)
    assert isinstance(addrs, list) and addrs, ready
    host, _, port = addrs[0].rpartition(":")
    assert int(port) > 0, ready
    return host, int(port)


def tls_ctx(certs):
    return ssl.create_default_context(cafile=str(certs / "ca.pem"))


def ws_conn(b, certs=None):
    """A WsConn to the http listener (https with certs), not upgraded yet."""
    host, port = listener(b, "https" if certs is not None else "http")
    c = ws.WsConn(host, port, tls_context=tls_ctx(certs) if certs is not None else None)
    b._clients.append(c)
    return c


def ws_raw(b, version=5, certs=None):
    """A raw MQTT client over an upgraded WebSocket (no CONNECT sent yet); returns
    (RawClient, WsSocket)."""
    conn = ws_conn(b, certs)
    conn.upgrade()
    sock = conn.as_socket()
    c = mqttraw.RawClient(None, version=version, sock=sock)
    b._clients.append(c)
    return c, sock


def metrics_text(b):
    host, port = listener(b, "http")
    with urllib.request.urlopen("http://%s:%d/metrics" % (host, port),
                                timeout=HTTP_TIMEOUT_S) as resp:
        return resp.read().decode()


def metric(b, name):
    for line in metrics_text(b).splitlines():
        if line.startswith(name + " "):
            return int(line.split()[-1])
    raise AssertionError("no metric %s" % name)


def ws_paho(b, client_id, version, certs=None):
    kind = "https" if certs is not None else "http"
    _, port = listener(b, kind)
    tls = {"ca_certs": str(certs / "ca.pem")} if certs is not None else None
    return b.paho(client_id, version=version, port=port, transport="websockets", tls=tls,
                  ws_path="/mqtt")


# ------------------------------------------------------------------ paho
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_round_trip_over_ws(start_broker, version, qos):
    b = ws_broker(start_broker)
    sub = ws_paho(b, "ws-sub", version)
    pub = ws_paho(b, "ws-pub", version)
    assert sub.subscribe("ws/rt", qos=qos) == [qos]
    pub.publish("ws/rt", b"over ws", qos=qos)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("ws/rt", b"over ws", qos)


def test_paho_round_trip_over_wss(start_broker, certs, version):
    b = ws_broker(start_broker, certs)
    sub = ws_paho(b, "wss-sub", version, certs)
    pub = ws_paho(b, "wss-pub", version, certs)
    assert sub.subscribe("wss/rt", qos=1) == [1]
    pub.publish("wss/rt", b"over wss", qos=1)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("wss/rt", b"over wss", 1)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_one_megabyte_payload(start_broker, certs, secure):
    b = ws_broker(start_broker, certs if secure else None, BIG_LIMITS)
    c = certs if secure else None
    sub = ws_paho(b, "big-sub", 5, c)
    pub = ws_paho(b, "big-pub", 5, c)
    sub.subscribe("ws/big", qos=1)
    payload = os.urandom(BIG_PAYLOAD_BYTES)
    pub.publish("ws/big", payload, qos=1)
    m = sub.get(timeout=20)
    assert m.payload == payload


# ------------------------------------------------------------------ the upgrade
def test_upgrade_answers_101_with_mqtt_and_the_accept_key(start_broker):
    b = ws_broker(start_broker)
    conn = ws_conn(b)
    r = conn.request()
    assert r.status == 101, r
    assert r.headers.get("sec-websocket-protocol") == "mqtt", r
    assert r.headers.get("sec-websocket-accept") == ws.accept_for(conn.key), r
    assert r.headers.get("upgrade", "").lower() == "websocket", r
    assert "upgrade" in r.headers.get("connection", "").lower(), r


def test_upgrade_offering_several_protocols_picks_mqtt(start_broker):
    b = ws_broker(start_broker)
    r = ws_conn(b).request(protocol="chat, mqtt")
    assert r.status == 101 and r.headers.get("sec-websocket-protocol") == "mqtt", r


def assert_json_error(r, code):
    assert r.status == code, r
    assert r.headers.get("content-type", "").startswith("application/json"), r
    doc = json.loads(r.body)
    assert doc["error"] == code and isinstance(doc["reason"], str) and doc["reason"], doc


def test_upgrade_without_subprotocol_is_400(start_broker):
    b = ws_broker(start_broker)
    assert_json_error(ws_conn(b).request(protocol=None), 400)
    ev = b.wait_event("ws_upgrade_refused")
    assert ev.get("status") == 400, ev


def test_upgrade_with_version_8_is_426(start_broker):
    b = ws_broker(start_broker)
    r = ws_conn(b).request(version="8")
    assert_json_error(r, 426)
    assert r.headers.get("sec-websocket-version") == "13", r


def test_get_mqtt_without_upgrade_headers_is_400(start_broker):
    b = ws_broker(start_broker)
    assert_json_error(ws_conn(b).request(upgrade=False), 400)


# ------------------------------------------------------------------ framing of MQTT
def test_connect_split_across_two_frames(start_broker):
    b = ws_broker(start_broker)
    conn = ws_conn(b)
    conn.upgrade()
    pkt = mqttraw.encode_connect(5, "split-frames")
    conn.send_frame(ws.OP_BINARY, pkt[:5])
    conn.send_frame(ws.OP_BINARY, pkt[5:])
    c = mqttraw.RawClient(None, version=5, sock=conn.as_socket())
    assert c.expect(mqttraw.CONNACK).rc == 0
    c.ping()


def test_connect_split_across_fragments_of_one_message(start_broker):
    b = ws_broker(start_broker)
    conn = ws_conn(b)
    conn.upgrade()
    pkt = mqttraw.encode_connect(4, "split-fragments")
    conn.send_frame(ws.OP_BINARY, pkt[:7], fin=False)
    conn.send_frame(ws.OP_CONT, pkt[7:], fin=True)
    c = mqttraw.RawClient(None, version=4, sock=conn.as_socket())
    assert c.expect(mqttraw.CONNACK).rc == 0
    c.ping()


def test_connect_subscribe_publish_in_one_frame(start_broker, version):
    b = ws_broker(start_broker)
    conn = ws_conn(b)
    conn.upgrade()
    data = (mqttraw.encode_connect(version, "packed") +
            mqttraw.encode_subscribe(version, 1, [("packed/t", 0)]) +
            mqttraw.encode_publish(version, "packed/t", b"to myself"))
    conn.send_frame(ws.OP_BINARY, data)
    c = mqttraw.RawClient(None, version=version, sock=conn.as_socket())
    assert c.expect(mqttraw.CONNACK).rc == 0
    suback = c.expect(mqttraw.SUBACK)
    assert suback.pid == 1 and suback.rcs == [0], suback
    p = c.expect_publish()
    assert (p.topic, p.payload) == ("packed/t", b"to myself"), p


# ------------------------------------------------------------------ control frames, violations
def test_ping_frame_gets_a_pong_with_the_same_payload(start_broker):
    b = ws_broker(start_broker)
    c, sock = ws_raw(b)
    c.connect("pinger")
    sock.conn.send_frame(ws.OP_PING, b"are you there?")
    fin, opcode, payload = sock.conn.recv_frame()
    assert (fin, opcode, payload) == (True, ws.OP_PONG, b"are you there?")
    c.ping()  # MQTT still flows after the control frame


def test_text_frame_is_closed_with_1003(start_broker):
    b = ws_broker(start_broker)
    c, sock = ws_raw(b)
    c.connect("texter")
    sock.conn.send_frame(ws.OP_TEXT, b"hello")
    code, skipped = sock.conn.expect_close_frame()
    assert code == 1003, (code, skipped)
    sock.conn.expect_eof()


def test_unmasked_frame_is_closed_with_1002(start_broker):
    b = ws_broker(start_broker)
    c, sock = ws_raw(b)
    c.connect("unmasked")
    sock.conn.send_frame(ws.OP_BINARY, mqttraw.packet(mqttraw.PINGREQ, 0, b""), mask=False)
    code, skipped = sock.conn.expect_close_frame()
    assert code == 1002, (code, skipped)
    sock.conn.expect_eof()
    b.wait_event("ws_protocol_error")
    assert metric(b, "ledgermq_websocket_protocol_errors_total") == 1


def test_client_close_is_echoed(start_broker):
    b = ws_broker(start_broker)
    c, sock = ws_raw(b)
    c.connect("closer")
    sock.conn.send_frame(ws.OP_CLOSE, ws.close_payload(1000, b"bye"))
    code, skipped = sock.conn.expect_close_frame()
    assert code == 1000, (code, skipped)
    sock.conn.expect_eof()


def test_sigterm_sends_disconnect_0x8b_then_close_1001(start_broker):
    b = ws_broker(start_broker)
    c, sock = ws_raw(b, version=5)
    c.connect("shutdown-watcher")
    b.proc.send_signal(signal.SIGTERM)
    c.expect_disconnect(0x8B)
    assert sock.close_code == 1001, sock.frames
    kinds = [op for op, _ in sock.frames]
    assert kinds[-1] == ws.OP_CLOSE and ws.OP_BINARY in kinds[:-1], sock.frames
    b.wait_exit(0)


def test_metrics_count_ws_and_wss_connections(start_broker, certs):
    b = ws_broker(start_broker, certs)
    plain, _ = ws_raw(b)
    plain.connect("on-ws")
    assert metric(b, 'ledgermq_connections{transport="ws"}') == 1
    assert metric(b, 'ledgermq_connections{transport="wss"}') == 0
    secure, _ = ws_raw(b, certs=certs)
    secure.connect("on-wss")
    assert metric(b, 'ledgermq_connections{transport="ws"}') == 1
    assert metric(b, 'ledgermq_connections{transport="wss"}') == 1
    plain.disconnect()
    secure.disconnect()
    deadline = time.monotonic() + 5
    while metric(b, 'ledgermq_connections{transport="ws"}') != 0:
        assert time.monotonic() < deadline, metrics_text(b)
        time.sleep(0.05)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_connect_timeout_applies_after_the_upgrade(start_broker, certs, secure):
    b = ws_broker(start_broker, certs if secure else None,
                  "[limits]\nconnect_timeout_ms = %d\n" % CONNECT_TIMEOUT_MS)
    conn = ws_conn(b, certs if secure else None)
    started = time.monotonic()
    conn.upgrade()
    conn.expect_eof(timeout=10)
    elapsed = time.monotonic() - started
    assert CONNECT_TIMEOUT_MS / 1000 * 0.8 <= elapsed < CONNECT_TIMEOUT_MS / 1000 + 3, elapsed
    b.wait_event("connect_timeout")
