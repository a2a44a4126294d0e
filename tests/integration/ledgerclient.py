"""A LedgerMQ identity client in Python written from docs/PROTOCOL.md alone ("Identities and
guaranteed delivery"): the second-language check of the wire format. Uses Debian's
python3-cryptography (Ed25519, SHA-256) and paho-mqtt.

Canonical JSON here covers what these tests send (objects, strings, integers, booleans):
member names sorted by UTF-16 code units, no whitespace, strings escaped as RFC 8785 says.
"""

import base64
import hashlib
import json
import queue
import time
import urllib.request

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

TIMEOUT_S = 10


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jcs_string(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(value):
    """RFC 8785 for objects, arrays, strings, integers, booleans and null."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_jcs_string(k) + ":" + canonical(value[k]) for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, str):
        return _jcs_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        assert abs(value) < 2 ** 53
        return str(value)
    raise TypeError("this test client canonicalizes no floats: %r" % (value,))


class Identity:
    def __init__(self, seed=None):
        self.key = (Ed25519PrivateKey.from_private_bytes(seed) if seed
                    else Ed25519PrivateKey.generate())
        self.pub = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)
        self.id = hashlib.sha256(self.pub).hexdigest()
        self.seq = 0
        self.prev = ""

    def envelope(self, to, body, type_="note", seq=None, prev=None, when=None):
        """A signed envelope continuing this identity's chain (or with seq/prev forced)."""
        seq = self.seq + 1 if seq is None else seq
        prev = self.prev if prev is None else prev
        now = time.time() if when is None else when
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + \
            ".%09dZ" % int((now % 1) * 1e9)
        env = {"from": self.id, "key": b64url(self.pub), "to": to, "seq": seq, "prev": prev,
               "time": stamp, "type": type_, "body": body}
        env["sig"] = b64url(self.key.sign(canonical(env).encode()))
        return env

    def advance(self, env):
        self.seq = env["seq"]
        self.prev = link(env)


def link(env):
    return hashlib.sha256(canonical(env).encode()).hexdigest()


def verify(env):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    unsigned = {k: v for k, v in env.items() if k != "sig"}
    pub = b64url_decode(env["key"])
    assert hashlib.sha256(pub).hexdigest() == env["from"]
    Ed25519PublicKey.from_public_bytes(pub).verify(b64url_decode(env["sig"]),
                                                   canonical(unsigned).encode())


def http_json(addr, path, body=None):
    """POST (with body) or GET; returns (status, decoded JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://%s%s" % (addr, path), data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def login(addr, ident):
    status, ch = http_json(addr, "/auth/challenge", {"pub": b64url(ident.pub)})
    assert status == 200, ch
    sig = ident.key.sign(("ledgermq-auth-v1:" + ch["nonce"]).encode())
    status, tok = http_json(addr, "/auth/token",
                            {"pub": b64url(ident.pub), "nonce": ch["nonce"], "sig": b64url(sig)})
    assert status == 200, tok
    assert tok["id"] == ident.id
    return tok["token"]


class Session:
    """An MQTT 5 connection of an identity, subscribed to its inbox, ack, reject and sync."""

    def __init__(self, mqtt_port, ident, token, client_id=None, clean=True, subscribe=True):
        self.ident = ident
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.client = mqtt.Client(client_id=client_id or ("py-" + ident.id[:16]),
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(ident.id, token)
        self.client.on_connect = lambda c, u, f, rc, p=None: self.connack.put(rc.value)
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic.rsplit("/", 1)[1], json.loads(m.payload)))
        self.client.connect("127.0.0.1", mqtt_port, clean_start=clean)
        self.client.loop_start()
        self.rc = self.connack.get(timeout=TIMEOUT_S)
        if self.rc == 0 and subscribe:
            base = "id/%s/" % ident.id
            self.subscribed = queue.Queue()
            self.client.on_subscribe = lambda c, u, mid, codes, p=None: self.subscribed.put(
                [getattr(x, "value", x) for x in codes])
            self.client.subscribe([(base + leaf, 1) for leaf in ("inbox", "ack", "reject", "sync")])
            self.granted = self.subscribed.get(timeout=TIMEOUT_S)

    def send(self, env, qos=1):
        info = self.client.publish("id/%s/outbox" % self.ident.id, canonical(env), qos=qos)
        info.wait_for_publish(TIMEOUT_S)
        return info

    def expect(self, leaf, timeout=TIMEOUT_S):
        """The next message on id/<me>/<leaf>, skipping none (fails on another leaf)."""
        got_leaf, body = self.messages.get(timeout=timeout)
        assert got_leaf == leaf, (got_leaf, body)
        return body

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
