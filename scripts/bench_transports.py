#!/usr/bin/python3
"""Idle MQTT connections over TCP, WebSocket, TLS and WebSocket over TLS, for `make bench`.

    scripts/bench_transports.py --transport tcp|ws|tls|wss --port PORT [--count N]
                                [--hold-s S] [--cafile FILE] [--pid BROKER_PID]

Opens N connections from one process (non-blocking sockets on `selectors`, at most WINDOW
connection set-ups in flight at a time), sends MQTT 3.1.1 CONNECT on each (clean session, keep
alive KEEPALIVE_S, client ids lmqt-<transport>-<i>), waits for CONNACK 0, then holds them all
idle. Over WebSocket: `GET /mqtt` with subprotocol `mqtt`, then every MQTT packet in one masked
binary frame; the server's frames are parsed (header, length), never expected to be masked.
TLS verifies the server certificate against --cafile (name localhost) when given.

Prints one JSON line: connected, failed (by reason), setup_s, and with --pid the broker's RSS
before the first connection and with all of them connected (after the hold).

bench.py imports open_idle() from here. Python standard library only.
"""

import argparse
import base64
import collections
import errno
import json
import os
import selectors
import socket
import ssl
import sys
import time

WINDOW = 64               # set-ups in flight: below every listen backlog (mosquitto: 100), so
                          # no SYN is dropped and retried a second later
CONNECT_TIMEOUT_S = 20.0  # per connection, from socket() to CONNACK
KEEPALIVE_S = 600         # longer than any set-up + hold here, so no PINGREQ is needed
RECV_BYTES = 4096
WS_HEADER_MAX_BYTES = 8192
MQTT_CONNACK = b"\x20\x02"
TRANSPORTS = ("tcp", "ws", "tls", "wss")


def mqtt_connect_packet(client_id):
    """MQTT 3.1.1 CONNECT, clean session, keep alive KEEPALIVE_S."""
    cid = client_id.encode()
    body = (b"\x00\x04MQTT\x04\x02" + KEEPALIVE_S.to_bytes(2, "big") +
            len(cid).to_bytes(2, "big") + cid)
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def ws_frame(payload):
    """One masked binary frame (a client must mask: RFC 6455 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 65536:
        head = bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x82, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_parse_frames(buf):
    """Splits complete frames off buf: ([(opcode, payload)], rest)."""
    frames = []
    while len(buf) >= 2:
        opcode, n, off = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, off = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, off = int.from_bytes(buf[2:10], "big"), 10
        mask = None
        if buf[1] & 0x80:
            if len(buf) < off + 4:
                break
            mask, off = buf[off:off + 4], off + 4
        if len(buf) < off + n:
            break
        payload = buf[off:off + n]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append((opcode, payload))
        buf = buf[off + n:]
    return frames, buf


class Conn:
    """One connection's set-up: tcp connect, [tls handshake], [ws upgrade], CONNECT, CONNACK."""

    def __init__(self, idx, transport, host, port, ctx, path):
        self.tls = transport in ("tls", "wss")
        self.ws = transport in ("ws", "wss")
        self.host, self.path, self.ctx = host, path, ctx
        self.deadline = time.monotonic() + CONNECT_TIMEOUT_S
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.state = "connect"
        self.out = b""
        self.inbuf = b""
        self.mqtt = b""
        self.packet = mqtt_connect_packet("lmqt-%s-%d" % (transport, idx))
        rc = self.sock.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, "connect: " + os.strerror(rc))

    def events(self):
        if self.state == "connect" or self.out:
            return selectors.EVENT_WRITE
        return self.want

    want = selectors.EVENT_READ

    def step(self):
        """Advances as far as the socket allows; True once CONNACK 0 arrived. Raises on failure."""
        if self.state == "connect":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect: " + os.strerror(err))
            if self.tls:
                self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost",
                                                 do_handshake_on_connect=False)
                self.state = "handshake"
            else:
                self._start_app()
        if self.state == "handshake":
            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                self.want = selectors.EVENT_READ
                return False
            except ssl.SSLWantWriteError:
                self.want = selectors.EVENT_WRITE
                return False
            self.want = selectors.EVENT_READ
            self._start_app()
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False
            self.out = self.out[sent:]
            if self.out:
                return False
        return self._read()

    def _start_app(self):
        if self.ws:
            key = base64.b64encode(os.urandom(16)).decode()
            self.out = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n" % (
                            self.path, self.host, key)).encode()
            self.state = "upgrade"
        else:
            self.out = self.packet
            self.state = "connack"

    def _read(self):
        for _ in range(64):  # bounded: a CONNACK (plus TLS tickets) is a few records at most
            try:
                chunk = self.sock.recv(RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            if not chunk:
                raise OSError(errno.ECONNRESET, "closed by the server in state " + self.state)
            self.inbuf += chunk
            if self._consume():
                return True
            if self.out:  # the upgrade was accepted: send CONNECT first
                return self.step()
        return False

    def _consume(self):
        if self.state == "upgrade":
            end = self.inbuf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.inbuf) > WS_HEADER_MAX_BYTES:
                    raise OSError(errno.EPROTO, "upgrade response too long")
                return False
            status = self.inbuf.split(b"\r\n", 1)[0]
            if not status.startswith(b"HTTP/1.1 101"):
                raise OSError(errno.EPROTO, "upgrade refused: " + status.decode("latin-1"))
            self.inbuf = self.inbuf[end + 4:]
            self.state = "connack"
            self.out = ws_frame(self.packet)
            return False
        if self.ws:
            frames, self.inbuf = ws_parse_frames(self.inbuf)
            for opcode, payload in frames:
                if opcode == 8:
                    raise OSError(errno.ECONNRESET, "websocket close frame")
                if opcode in (0, 1, 2):
                    self.mqtt += payload
        else:
            self.mqtt, self.inbuf = self.mqtt + self.inbuf, b""
        if len(self.mqtt) < 4:
            return False
        if self.mqtt[:2] != MQTT_CONNACK or self.mqtt[3] != 0:
            raise OSError(errno.EPROTO, "not CONNACK 0: " + self.mqtt[:4].hex())
        self.state = "idle"
        return True


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.SSLContext(
        ssl.PROTOCOL_TLS_CLIENT)
    if not cafile:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def open_idle(transport, port, count, host="127.0.0.1", cafile=None, path="/mqtt",
              limit_s=600.0):
    """Opens count connections; returns {"socks": [...], "connected", "failed": {reason: n},
    "setup_s"}. The caller closes the sockets (close_all)."""
    if transport not in TRANSPORTS:
        raise ValueError("transport must be one of " + ", ".join(TRANSPORTS))
    ctx = client_context(cafile) if transport in ("tls", "wss") else None
    sel = selectors.DefaultSelector()
    done, failed = [], collections.Counter()
    t0 = time.monotonic()
    give_up = t0 + limit_s
    started = 0
    pending = {}

    def fail(c, why):
        failed[why] += 1
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        pending.pop(id(c), None)

    while (started < count or pending) and time.monotonic() < give_up:
        while started < count and len(pending) < WINDOW:
            try:
                c = Conn(started, transport, host, port, ctx, path)
            except OSError as e:
                failed[short_reason(e)] += 1
                started += 1
                continue
            started += 1
            pending[id(c)] = c
            sel.register(c.sock, c.events(), c)
        for key, _ in sel.select(timeout=0.2):
            c = key.data
            sel.unregister(key.fileobj)
            try:
                ok = c.step()
            except (OSError, ssl.SSLError) as e:
                c.sock.close()
                pending.pop(id(c), None)
                failed[short_reason(e)] += 1
                continue
            if ok:
                pending.pop(id(c), None)
                done.append(c.sock)
            else:
                sel.register(c.sock, c.events(), c)
        now = time.monotonic()
        for c in [c for c in pending.values() if c.deadline < now]:
            fail(c, "timed out in state " + c.state)
    for c in list(pending.values()):
        fail(c, "not set up within %g s" % limit_s)
    sel.close()
    return {"socks": done, "connected": len(done), "failed": dict(failed),
            "setup_s": round(time.monotonic() - t0, 3)}


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def short_reason(e):
    if isinstance(e, ssl.SSLError):
        return "tls: " + (e.reason or str(e))
    return (e.strerror or str(e)) if isinstance(e, OSError) else str(e)


def rss_bytes(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--transport", choices=TRANSPORTS, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--hold-s", type=float, default=1.0)
    ap.add_argument("--cafile")
    ap.add_argument("--path", default="/mqtt")
    ap.add_argument("--pid", type=int, help="broker pid: report its RSS before and with")
    opts = ap.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < opts.count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(opts.count + 100, hard), hard))
    before = rss_bytes(opts.pid) if opts.pid else None
    res = open_idle(opts.transport, opts.port, opts.count, opts.host, opts.cafile, opts.path)
    time.sleep(opts.hold_s)
    rep = {k: v for k, v in res.items() if k != "socks"}
    rep.update(transport=opts.transport, count=opts.count)
    if opts.pid:
        rep["rss_before_bytes"], rep["rss_with_bytes"] = before, rss_bytes(opts.pid)
    close_all(res["socks"])
    print(json.dumps(rep))
    return 0 if res["connected"] == opts.count else 1


if __name__ == "__main__":
    sys.exit(main())
