"""A minimal WebSocket client (RFC 6455) for the integration tests, written by hand so a test
can say exactly which frames go on the wire: the upgrade request, masked (or unmasked) frames,
fragmentation, control frames. `WsConn` is one connection (plain or TLS); `WsConn.as_socket()`
turns it into a socket-like object that mqttraw.RawClient can drive (each sendall is one binary
frame, recv returns binary payloads, a close frame reads as EOF).
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DEFAULT_TIMEOUT_S = 5.0
MAX_HEADER_BYTES = 16384  # bound on the HTTP response head we are willing to read
RECV_CHUNK_BYTES = 65536


class Closed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


class Timeout(Exception):
    """Nothing (or not enough) arrived before the deadline."""


def accept_for(key):
    """The Sec-WebSocket-Accept a server must answer to Sec-WebSocket-Key `key`."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One frame; client frames are masked unless mask=False (a protocol violation)."""
    payload = bytes(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
        _mask_fast(payload, key)
    return head + key + masked


def _mask_fast(payload, key):
    """XOR with the 4-byte key for large payloads (int arithmetic instead of a byte loop)."""
    n = len(payload)
    reps = (n + 3) // 4
    k = int.from_bytes((key * reps)[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Response:
    """The server's HTTP answer to the upgrade request."""

    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body
        self.raw = raw

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers, self.body)


class WsConn:
    """One TCP (or TLS) connection that speaks HTTP, then WebSocket frames."""

    def __init__(self, host, port, tls_context=None, timeout=DEFAULT_TIMEOUT_S, source=None):
        """source: local address to connect from (e.g. "127.0.0.2", another loopback address
        standing for another host)."""
        self.timeout = timeout
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_context is not None:
            sock = tls_context.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.key = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed("send failed: %s" % e) from e

    def _fill(self, deadline):
        if self.eof:
            raise Closed("connection closed by the server")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("nothing within the timeout")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(RECV_CHUNK_BYTES)
        except socket.timeout as e:
            raise Timeout("nothing within the timeout") from e
        except (ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError) as e:
            self.eof = True
            raise Closed("connection reset by the server") from e
        if not chunk:
            self.eof = True
            raise Closed("connection closed by the server")
        self.buf += chunk

    # ---- HTTP
    def request(self, path="/mqtt", protocol="mqtt", version="13", key=None, upgrade=True,
                extra=(), timeout=None, origin=None, headers=None):
        """Sends a GET (with the upgrade headers unless upgrade=False; protocol=None leaves
        Sec-WebSocket-Protocol out) and reads the response head (and its Content-Length
        body). Bytes after it stay buffered for the frames. origin: an Origin header, as a
        browser sends it ("https://app.example.com"); headers: more fields as (name, value)
        pairs (a name may repeat); extra: raw header lines."""
        self.key = key or base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1"]
        if upgrade:
            lines += ["Upgrade: websocket", "Connection: Upgrade",
                      "Sec-WebSocket-Key: %s" % self.key, "Sec-WebSocket-Version: %s" % version]
            if protocol is not None:
                lines.append("Sec-WebSocket-Protocol: %s" % protocol)
        if origin is not None:
            lines.append("Origin: %s" % origin)
        lines += ["%s: %s" % (name, value) for name, value in (headers or ())]
        lines += list(extra)
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.read_response(timeout)

    def read_response(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\r\n\r\n" not in self.buf:
            assert len(self.buf) < MAX_HEADER_BYTES, "response head too long: %r" % self.buf
            self._fill(deadline)
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill(deadline)
        body = bytes(self.buf[:length])
        del self.buf[:length]
        return Response(status, headers, body, head)

    def upgrade(self, **kw):
        """request() that must succeed with 101; returns the Response."""
        r = self.request(**kw)
        assert r.status == 101, r
        return r

    # ---- frames
    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self.send_raw(encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def _try_frame(self):
        b = self.buf
        if len(b) < 2:
            return None
        fin = bool(b[0] & 0x80)
        opcode = b[0] & 0x0F
        masked = bool(b[1] & 0x80)
        n = b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            (n,) = struct.unpack_from("!H", b, 2)
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            (n,) = struct.unpack_from("!Q", b, 2)
            pos = 10
        assert not masked, "server frames must not be masked: %r" % bytes(b[:pos])
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        return fin, opcode, payload

    def recv_frame(self, timeout=None):
        """Next frame as (fin, opcode, payload). Raises Timeout or Closed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self._try_frame()
            if f is not None:
                return f
            self._fill(deadline)

    def expect_close_frame(self, timeout=None):
        """Skips binary/pong frames until a close frame; returns its status code (None if
        the frame carries none) and the frames skipped."""
        skipped = []
        while True:
            fin, opcode, payload = self.recv_frame(timeout)
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, skipped
            skipped.append((fin, opcode, payload))

    def expect_eof(self, timeout=None):
        """Reads until the server closes the TCP connection; returns the bytes read."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        start = len(self.buf)
        while True:
            try:
                self._fill(deadline)
            except Closed:
                return bytes(self.buf[start:])

    def as_socket(self):
        return WsSocket(self)


class WsSocket:
    """Socket-like view of an upgraded WsConn for mqttraw.RawClient: sendall = one masked
    binary frame; recv = the next binary payload; a close frame reads as EOF and is kept in
    close_code. Every frame received is recorded in `frames` (opcode, payload) in order."""

    def __init__(self, conn):
        self.conn = conn
        self.frames = []
        self.close_code = None
        self._timeout = conn.timeout

    def settimeout(self, t):
        self._timeout = t

    def setsockopt(self, *a):
        pass

    def sendall(self, data):
        try:
            self.conn.send_frame(OP_BINARY, data)
        except Closed as e:
            raise BrokenPipeError(str(e)) from e

    def recv(self, _n):
        while True:
            try:
                fin, opcode, payload = self.conn.recv_frame(self._timeout)
            except Timeout as e:
                raise socket.timeout(str(e)) from e
            except Closed:
                return b""
            self.frames.append((opcode, payload))
            if opcode in (OP_BINARY, OP_CONT):
                if payload:
                    return payload
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 \
                    else None
                return b""

    def close(self):
        self.conn.close()
