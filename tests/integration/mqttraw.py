"""A small raw MQTT client for the integration tests.

paho hides the wire: DUP flags, packet ids, when an acknowledgement is sent,
exact reason codes, and it refuses to send malformed packets. This module
encodes and decodes MQTT 3.1.1 (protocol level 4) and MQTT 5 (level 5) packets
by hand over a plain socket, synchronously, so a test can say exactly what
goes on the wire and assert exactly what comes back.

Every read has a timeout; a timeout raises `Timeout`, a closed connection
raises `Closed` (carrying the packets read before the close is not needed:
`expect_close()` returns them).
"""

import socket
import struct
import time

# Packet types.
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

TYPE_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
    PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ", PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}

DEFAULT_TIMEOUT_S = 5.0

# ---------------------------------------------------------------- properties
# id: (name, kind) with kind one of byte, u16, u32, varint, str, bin, pair.
PROPERTY_DEFS = {
    0x01: ("payload_format_indicator", "byte"),
    0x02: ("message_expiry_interval", "u32"),
    0x03: ("content_type", "str"),
    0x08: ("response_topic", "str"),
    0x09: ("correlation_data", "bin"),
    0x0B: ("subscription_identifier", "varint"),
    0x11: ("session_expiry_interval", "u32"),
    0x12: ("assigned_client_identifier", "str"),
    0x13: ("server_keep_alive", "u16"),
    0x15: ("authentication_method", "str"),
    0x16: ("authentication_data", "bin"),
    0x17: ("request_problem_information", "byte"),
    0x18: ("will_delay_interval", "u32"),
    0x19: ("request_response_information", "byte"),
    0x1A: ("response_information", "str"),
    0x1C: ("server_reference", "str"),
    0x1F: ("reason_string", "str"),
    0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"),
    0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"),
    0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_subscription_available", "byte"),
    0x29: ("subscription_identifier_available", "byte"),
    0x2A: ("shared_subscription_available", "byte"),
}
PROPERTY_IDS = {name: pid for pid, (name, _) in PROPERTY_DEFS.items()}


class ProtocolError(Exception):
    """The server sent bytes this decoder cannot make sense of."""


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class Timeout(Exception):
    """Nothing (or not enough) arrived before the deadline."""


def encode_varint(n):
    if n < 0 or n > 268_435_455:
        raise ValueError("varint out of range: %d" % n)
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf, pos):
    """Returns (value, new_pos). At most 4 bytes."""
    mult = 1
    value = 0
    for i in range(4):
        if pos >= len(buf):
            raise ProtocolError("truncated varint")
        b = buf[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128
    raise ProtocolError("varint longer than 4 bytes")


def encode_str(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack("!H", len(s)) + s


encode_bin = encode_str


def _decode_bin(buf, pos):
    if pos + 2 > len(buf):
        raise ProtocolError("truncated length prefix")
    (n,) = struct.unpack_from("!H", buf, pos)
    pos += 2
    if pos + n > len(buf):
        raise ProtocolError("truncated string/binary")
    return bytes(buf[pos:pos + n]), pos + n


def _decode_str(buf, pos):
    raw, pos = _decode_bin(buf, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as e:
        raise ProtocolError("server sent invalid UTF-8: %r" % raw) from e


class Props:
    """An ordered list of (name, value) pairs; duplicates allowed (user properties,
    subscription identifiers). Values: int, str, bytes, or (str, str) for user_property."""

    def __init__(self, items=None):
        self.items = []
        if items is None:
            return
        if isinstance(items, Props):
            self.items = list(items.items)
        elif isinstance(items, dict):
            for k, v in items.items():
                if k in ("user_property", "subscription_identifier") and isinstance(v, list):
                    for one in v:
                        self.items.append((k, one))
                else:
                    self.items.append((k, v))
        else:
            self.items = [(k, v) for k, v in items]
        for k, _ in self.items:
            if k not in PROPERTY_IDS:
                raise ValueError("unknown property %r" % k)

    def get(self, name, default=None):
        for k, v in self.items:
            if k == name:
                return v
        return default

    def all(self, name):
        return [v for k, v in self.items if k == name]

    def __contains__(self, name):
        return any(k == name for k, _ in self.items)

    def names(self):
        return [k for k, _ in self.items]

    def __repr__(self):
        return "Props(%r)" % (self.items,)

    def encode(self):
        body = bytearray()
        for name, value in self.items:
            pid = PROPERTY_IDS[name]
            kind = PROPERTY_DEFS[pid][1]
            body += encode_varint(pid)
            if kind == "byte":
                body += struct.pack("!B", value)
            elif kind == "u16":
                body += struct.pack("!H", value)
            elif kind == "u32":
                body += struct.pack("!I", value)
            elif kind == "varint":
                body += encode_varint(value)
            elif kind in ("str", "bin"):
                body += encode_str(value)
            elif kind == "pair":
                body += encode_str(value[0]) + encode_str(value[1])
        return encode_varint(len(body)) + bytes(body)

    @classmethod
    def decode(cls, buf, pos):
        """Returns (Props, new_pos)."""
        length, pos = decode_varint(buf, pos)
        end = pos + length
        if end > len(buf):
            raise ProtocolError("property length beyond packet")
        props = cls()
        while pos < end:
            pid, pos = decode_varint(buf, pos)
            if pid not in PROPERTY_DEFS:
                raise ProtocolError("unknown property id 0x%02x" % pid)
            name, kind = PROPERTY_DEFS[pid]
            if kind == "byte":
                value = buf[pos]
                pos += 1
            elif kind == "u16":
                (value,) = struct.unpack_from("!H", buf, pos)
                pos += 2
            elif kind == "u32":
                (value,) = struct.unpack_from("!I", buf, pos)
                pos += 4
            elif kind == "varint":
                value, pos = decode_varint(buf, pos)
            elif kind == "str":
                value, pos = _decode_str(buf, pos)
            elif kind == "bin":
                value, pos = _decode_bin(buf, pos)
            else:
                k, pos = _decode_str(buf, pos)
                v, pos = _decode_str(buf, pos)
                value = (k, v)
            props.items.append((name, value))
        if pos != end:
            raise ProtocolError("property overran its length")
        return props, pos


def _props_bytes(version, props):
    if version != 5:
        if props:
            raise ValueError("properties only exist in MQTT 5")
        return b""
    return Props(props).encode()


# ---------------------------------------------------------------- encoding
def packet(ptype, flags, body):
    """Fixed header + body."""
    return bytes([(ptype << 4) | flags]) + encode_varint(len(body)) + bytes(body)


class Will:
    def __init__(self, topic, payload=b"", qos=0, retain=False, props=None):
        self.topic = topic
        self.payload = payload.encode() if isinstance(payload, str) else payload
        self.qos = qos
        self.retain = retain
        self.props = props


def encode_connect(version=5, client_id="", clean=True, keepalive=60, props=None, will=None,
                   username=None, password=None, proto_name=None, proto_level=None,
                   reserved_flag=False):
    if proto_name is None:
        proto_name = "MQIsdp" if version == 3 else "MQTT"
    if proto_level is None:
        proto_level = version
    flags = 0
    if reserved_flag:
        flags |= 0x01
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = bytearray()
    body += encode_str(proto_name)
    body += bytes([proto_level, flags])
    body += struct.pack("!H", keepalive)
    if proto_level == 5:
        body += Props(props).encode()
    body += encode_str(client_id)
    if will is not None:
        if proto_level == 5:
            body += Props(will.props).encode()
        body += encode_str(will.topic)
        body += encode_bin(will.payload)
    if username is not None:
        body += encode_str(username)
    if password is not None:
        body += encode_bin(password)
    return packet(CONNECT, 0, body)


def encode_publish(version, topic, payload=b"", qos=0, retain=False, dup=False, pid=None,
                   props=None):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = bytearray(encode_str(topic))
    if qos > 0:
        body += struct.pack("!H", pid)
    body += _props_bytes(version, props)
    body += payload
    return packet(PUBLISH, flags, body)


def encode_ack(version, ptype, pid, rc=0, props=None):
    """PUBACK / PUBREC / PUBREL / PUBCOMP."""
    flags = 0x02 if ptype == PUBREL else 0
    body = bytearray(struct.pack("!H", pid))
    if version == 5 and (rc != 0 or props):
        body.append(rc)
        if props:
            body += Props(props).encode()
    return packet(ptype, flags, body)


class SubOpts:
    def __init__(self, qos=0, no_local=False, retain_as_published=False, retain_handling=0):
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling

    def byte(self, version):
        b = self.qos
        if version == 5:
            b |= (0x04 if self.no_local else 0) | (0x08 if self.retain_as_published else 0)
            b |= self.retain_handling << 4
        return b


def encode_subscribe(version, pid, subs, props=None):
    """subs: list of (filter, qos-int or SubOpts)."""
    body = bytearray(struct.pack("!H", pid))
    body += _props_bytes(version, props)
    for flt, opts in subs:
        if isinstance(opts, int):
            opts = SubOpts(qos=opts)
        body += encode_str(flt) + bytes([opts.byte(version)])
    return packet(SUBSCRIBE, 0x02, body)


def encode_unsubscribe(version, pid, filters, props=None):
    body = bytearray(struct.pack("!H", pid))
    body += _props_bytes(version, props)
    for flt in filters:
        body += encode_str(flt)
    return packet(UNSUBSCRIBE, 0x02, body)


def encode_disconnect(version, rc=0, props=None):
    if version != 5 or (rc == 0 and not props):
        return packet(DISCONNECT, 0, b"")
    body = bytearray([rc])
    if props:
        body += Props(props).encode()
    return packet(DISCONNECT, 0, body)


# ---------------------------------------------------------------- decoding
class Packet:
    """A decoded packet. Common fields: type, flags, rc (reason/return code,
    None where the packet has none), props (Props, empty for 3.1.1)."""

    def __init__(self, ptype, flags, body):
        self.type = ptype
        self.flags = flags
        self.body = bytes(body)
        self.rc = None
        self.props = Props()
        self.pid = None

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "TYPE%d" % self.type)

    def __repr__(self):
        fields = {k: v for k, v in self.__dict__.items() if k not in ("body", "type", "flags")}
        if not self.props.items:
            fields.pop("props", None)
        return "<%s flags=0x%x %s>" % (self.name, self.flags,
                                       " ".join("%s=%r" % kv for kv in fields.items()))


def decode_packet(version, first, body):
    ptype = first >> 4
    flags = first & 0x0F
    p = Packet(ptype, flags, body)
    pos = 0
    if ptype == CONNACK:
        p.session_present = bool(body[0] & 0x01)
        p.rc = body[1]
        pos = 2
        if version == 5 and len(body) > 2:
            p.props, pos = Props.decode(body, pos)
    elif ptype == PUBLISH:
        p.dup = bool(flags & 0x08)
        p.qos = (flags >> 1) & 0x03
        p.retain = bool(flags & 0x01)
        p.topic, pos = _decode_str(body, 0)
        if p.qos > 0:
            (p.pid,) = struct.unpack_from("!H", body, pos)
            pos += 2
        if version == 5:
            p.props, pos = Props.decode(body, pos)
        p.payload = bytes(body[pos:])
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        (p.pid,) = struct.unpack_from("!H", body, 0)
        p.rc = 0
        if version == 5 and len(body) > 2:
            p.rc = body[2]
            if len(body) > 3:
                p.props, pos = Props.decode(body, 3)
    elif ptype in (SUBACK, UNSUBACK):
        (p.pid,) = struct.unpack_from("!H", body, 0)
        pos = 2
        if version == 5:
            p.props, pos = Props.decode(body, pos)
        p.rcs = list(body[pos:])
    elif ptype == DISCONNECT:
        p.rc = 0
        if len(body) >= 1:
            p.rc = body[0]
        if len(body) > 1:
            p.props, _ = Props.decode(body, 1)
    elif ptype == AUTH:
        p.rc = body[0] if body else 0
        if len(body) > 1:
            p.props, _ = Props.decode(body, 1)
    return p


# ---------------------------------------------------------------- client
class RawClient:
    """One TCP connection. Synchronous: every call returns when its bytes are
    written or its answer is read (or a timeout / close is raised)."""

    def __init__(self, port, version=5, host="127.0.0.1", timeout=DEFAULT_TIMEOUT_S, sock=None):
        """sock: an already open socket-like object (a TLS socket, a WebSocket adapter) with
        sendall, recv, settimeout and close; port and host are then unused."""
        self.version = version
        self.timeout = timeout
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self._next_pid = 0
        self.connack = None
        self.pending = []  # PUBLISHes read while waiting for an ack; recv() returns them first

    # -- plumbing
    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        """Writes bytes; a peer that has closed may raise Closed."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed("send failed: %s" % e) from e

    def next_pid(self):
        self._next_pid = self._next_pid % 65535 + 1
        return self._next_pid

    def _fill(self, deadline):
        if self.eof:
            raise Closed("connection closed by the server")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("no packet within the timeout")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise Timeout("no packet within the timeout") from e
        except (ConnectionResetError, ConnectionAbortedError) as e:
            self.eof = True
            raise Closed("connection reset by the server") from e
        if not chunk:
            self.eof = True
            raise Closed("connection closed by the server")
        self.buf += chunk

    def _try_parse(self):
        if len(self.buf) < 2:
            return None
        mult, length, pos = 1, 0, 1
        while True:
            if pos >= len(self.buf):
                return None
            b = self.buf[pos]
            pos += 1
            length += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
            if pos > 4:
                raise ProtocolError("server sent a remaining length over 4 bytes")
        if len(self.buf) < pos + length:
            return None
        first = self.buf[0]
        body = self.buf[pos:pos + length]
        del self.buf[:pos + length]
        return decode_packet(self.version, first, body)

    def recv(self, timeout=None):
        """Next packet. Raises Timeout or Closed."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            p = self._try_parse()
            if p is not None:
                return p
            self._fill(deadline)

    def _expect_ack(self, ptype, timeout=None):
        """Next packet of type ptype; PUBLISHes arriving first are kept for recv()."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        stash = []
        try:
            while True:
                while True:
                    p = self._try_parse()
                    if p is not None:
                        break
                    self._fill(deadline)
                if p.type == PUBLISH:
                    stash.append(p)
                    continue
                assert p.type == ptype, "expected %s, got %r" % (TYPE_NAMES[ptype], p)
                return p
        finally:
            self.pending.extend(stash)

    def expect(self, ptype, timeout=None):
        """Next packet, asserting its type."""
        p = self.recv(timeout)
        assert p.type == ptype, "expected %s, got %r" % (TYPE_NAMES[ptype], p)
        return p

    def expect_publish(self, timeout=None, ack=True):
        """Next packet must be a PUBLISH. With ack=True, QoS 1 is PUBACKed and
        QoS 2 completed (PUBREC, wait PUBREL, PUBCOMP)."""
        p = self.expect(PUBLISH, timeout)
        if ack:
            self.ack_publish(p)
        return p

    def ack_publish(self, p):
        if p.qos == 1:
            self.puback(p.pid)
        elif p.qos == 2:
            self.pubrec(p.pid)
            rel = self._expect_ack(PUBREL)
            assert rel.pid == p.pid, "PUBREL for %d, expected %d" % (rel.pid, p.pid)
            self.pubcomp(p.pid)

    def publishes(self, count, timeout=None, ack=True):
        """Reads `count` PUBLISHes (and only PUBLISHes)."""
        return [self.expect_publish(timeout, ack=ack) for _ in range(count)]

    def expect_close(self, timeout=None):
        """Reads until the server closes; returns the packets read on the way.
        Raises Timeout if the connection is still open at the deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        got = list(self.pending)
        self.pending = []
        while True:
            try:
                p = self._try_parse()
                if p is not None:
                    got.append(p)
                    continue
                self._fill(deadline)
            except Closed:
                return got

    def expect_disconnect(self, rc=None, timeout=None):
        """v5: the server must send DISCONNECT (with reason `rc` when given) and
        close. 3.1.1: the server must close. Any other packets on the way are
        allowed only if they are PUBLISHes. Returns the DISCONNECT (or None)."""
        got = self.expect_close(timeout)
        others = [p for p in got if p.type not in (PUBLISH, DISCONNECT)]
        assert not others, "unexpected packets before close: %r" % others
        discs = [p for p in got if p.type == DISCONNECT]
        if self.version == 5 and rc is not None:
            assert discs, "connection closed without DISCONNECT (expected 0x%02x)" % rc
            assert discs[-1].rc == rc, "DISCONNECT reason 0x%02x, expected 0x%02x" % (
                discs[-1].rc, rc)
        if self.version != 5:
            assert not discs, "server sent DISCONNECT to a 3.1.1 client: %r" % discs
        return discs[-1] if discs else None

    def expect_nothing(self, timeout=0.5):
        """Asserts no packet arrives within `timeout` (and the connection stays
        open). Used sparingly: prefer a sentinel message that must arrive next."""
        try:
            p = self.recv(timeout)
        except Timeout:
            return
        raise AssertionError("expected no packet, got %r" % p)

    # -- packets
    def connect(self, client_id="", clean=True, keepalive=60, props=None, will=None,
                username=None, password=None, check=True, **kw):
        """Sends CONNECT, returns the CONNACK. With check=True asserts rc 0."""
        self.send_raw(encode_connect(self.version, client_id, clean, keepalive, props, will,
                                     username, password, **kw))
        ack = self.expect(CONNACK)
        self.connack = ack
        if check:
            assert ack.rc == 0, "CONNACK refused: %r" % ack
        return ack

    def publish(self, topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None):
        """Sends PUBLISH (no waiting). Returns the packet id used (None for QoS 0)."""
        if qos > 0 and pid is None:
            pid = self.next_pid()
        self.send_raw(encode_publish(self.version, topic, payload, qos, retain, dup, pid, props))
        return pid

    def publish_acked(self, topic, payload=b"", qos=1, retain=False, props=None):
        """Publishes and completes the flow; returns the PUBACK (QoS 1) / PUBCOMP (QoS 2)
        (for QoS 0 returns None). Asserts the ack is for our packet id and success."""
        pid = self.publish(topic, payload, qos, retain, props=props)
        if qos == 0:
            return None
        if qos == 1:
            ack = self._expect_ack(PUBACK)
            assert ack.pid == pid, ack
            assert ack.rc < 0x80, "PUBACK failure: %r" % ack
            return ack
        rec = self._expect_ack(PUBREC)
        assert rec.pid == pid, rec
        assert rec.rc < 0x80, "PUBREC failure: %r" % rec
        self.pubrel(pid)
        comp = self._expect_ack(PUBCOMP)
        assert comp.pid == pid, comp
        return comp

    def publish_pipelined(self, topic, payloads, window=100, timeout=None, props=None):
        """QoS 1 publishes of every payload with up to `window` unacknowledged at once
        (never more than the server's Receive Maximum). Returns the PUBACK reason
        codes in payload order. PUBLISHes arriving meanwhile are kept for recv()."""
        window = max(1, min(window, self.server_receive_maximum()))
        rcs = [None] * len(payloads)
        inflight = {}  # packet id -> index
        sent = 0
        done = 0
        # Bounded: each turn of the loop sends or reads one packet (or times out).
        while done < len(payloads):
            while sent < len(payloads) and len(inflight) < window:
                pid = self.next_pid()
                assert pid not in inflight, "packet id %d reused while in flight" % pid
                inflight[pid] = sent
                self.publish(topic, payloads[sent], qos=1, pid=pid, props=props)
                sent += 1
            ack = self._expect_ack(PUBACK, timeout)
            assert ack.pid in inflight, "PUBACK for %d, not in flight: %r" % (ack.pid, ack)
            rcs[inflight.pop(ack.pid)] = ack.rc
            done += 1
        return rcs

    def server_receive_maximum(self):
        """The Receive Maximum from the CONNACK (65535 when absent or 3.1.1)."""
        if self.connack is None:
            return 65535
        return self.connack.props.get("receive_maximum", 65535)

    def puback(self, pid, rc=0, props=None):
        self.send_raw(encode_ack(self.version, PUBACK, pid, rc, props))

    def pubrec(self, pid, rc=0, props=None):
        self.send_raw(encode_ack(self.version, PUBREC, pid, rc, props))

    def pubrel(self, pid, rc=0, props=None):
        self.send_raw(encode_ack(self.version, PUBREL, pid, rc, props))

    def pubcomp(self, pid, rc=0, props=None):
        self.send_raw(encode_ack(self.version, PUBCOMP, pid, rc, props))

    def subscribe(self, subs, props=None, pid=None):
        """subs: list of (filter, qos or SubOpts), or one filter string (QoS 0)
        Returns the SUBACK (asserting its packet id)."""
        if isinstance(subs, str):
            subs = [(subs, 0)]
        pid = pid or self.next_pid()
        self.send_raw(encode_subscribe(self.version, pid, subs, props))
        ack = self._expect_ack(SUBACK)
        assert ack.pid == pid, ack
        return ack

    def unsubscribe(self, filters, props=None):
        if isinstance(filters, str):
            filters = [filters]
        pid = self.next_pid()
        self.send_raw(encode_unsubscribe(self.version, pid, filters, props))
        ack = self._expect_ack(UNSUBACK)
        assert ack.pid == pid, ack
        return ack

    def ping(self):
        self.send_raw(packet(PINGREQ, 0, b""))
        return self._expect_ack(PINGRESP)

    def disconnect(self, rc=0, props=None, close=True):
        self.send_raw(encode_disconnect(self.version, rc, props))
        if close:
            # Wait for the server to close its side so that what the DISCONNECT
            # causes has happened before the test goes on.
            try:
                self.expect_close(timeout=self.timeout)
            finally:
                self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
