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


def http_get(addr, path, token=None):
    """GET, with "Authorization: Bearer <token>" when token is given: (status, raw body bytes,
    headers)."""
    headers = {} if token is None else {"Authorization": "Bearer " + token}
    req = urllib.request.Request("http://%s%s" % (addr, path), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def ledger_pages(addr, path, token=None, count=1000, start=0, pages_max=10000):
    """Follows a ledger page API (docs/PROTOCOL.md "HTTP API") from start until "next" reaches
    "size": yields (raw body, decoded page) for each page."""
    for _ in range(pages_max):
        status, raw, _ = http_get(addr, "%s?start=%d&count=%d" % (path, start, count), token)
        assert status == 200, (path, status, raw[:200])
        page = json.loads(raw)
        yield raw, page
        assert page["next"] >= start, page
        if page["next"] >= page["size"]:
            return
        assert page["next"] > start, "a page that does not advance"
        start = page["next"]
    raise AssertionError("more than %d pages" % pages_max)


def ledger_leaves(addr):
    """The public leaves, in index order: [(index, link hex)]."""
    leaves = []
    for _, page in ledger_pages(addr, "/ledger/entries"):
        leaves += [(e["index"], e["link"]) for e in page["entries"]]
    assert [i for i, _ in leaves] == list(range(len(leaves))), "leaves with gaps"
    return leaves


def ledger_envelopes(addr, token, count=1000):
    """The envelopes token's identity may read ({"envelope","index","link"}), in index order."""
    items = []
    for _, page in ledger_pages(addr, "/ledger/envelopes", token, count):
        items += page["envelopes"]
    return items


def jwt(seed, sub, iat, exp, jti="A" * 22):
    """A token as the server makes them (docs/PROTOCOL.md "Login"), signed with seed: for tests
    that forge or expire tokens."""
    header = b64url(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"exp": exp, "iat": iat, "iss": "ledgermq", "jti": jti,
                                "sub": sub}).encode())
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return header + "." + claims + "." + b64url(key.sign((header + "." + claims).encode()))


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


# ---- Receipts: RFC 9162 inclusion proofs against C2SP signed checkpoints ----

def leaf_hash(link_hex):
    return hashlib.sha256(b"\x00" + bytes.fromhex(link_hex)).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf, index, size, proof):
    """RFC 9162 §2.1.3.2; returns the root the proof leads to, or None."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def root_from_consistency(old_size, new_size, old_root, proof):
    """RFC 9162 §2.1.4.2; returns the new root the proof leads to (after checking old_root)."""
    if old_size == new_size:
        return old_root if not proof else None
    if old_size == 0 or not proof and old_size != new_size:
        return None
    if old_size & (old_size - 1) == 0:  # a power of two: old_root starts the proof
        proof = [old_root] + list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sr if sn == 0 and fr == old_root else None


def parse_checkpoint(note, name, pub):
    """Checks a C2SP signed note by (name, Ed25519 pub); returns (origin, size, root)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    body, sep, sigs = note.partition("\n\n")
    assert sep, "no blank line"
    body += "\n"
    origin, size, root_b64 = body.split("\n")[:3]
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
    for line in sigs.splitlines():
        dash, line_name, blob = line.split(" ")
        assert dash == "\u2014"
        raw = base64.b64decode(blob)
        if line_name == name and raw[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(pub).verify(raw[4:], body.encode())
            return origin, int(size), base64.b64decode(root_b64)
    raise AssertionError("no signature by %s" % name)


def server_key(http_addr):
    status, key = http_json(http_addr, "/ledger/key")
    assert status == 200, key
    return key["name"], b64url_decode(key["pub"])


def check_receipt(ack, name, pub):
    """Verifies an ack's receipt; returns the checkpoint (origin, size, root)."""
    r = ack["receipt"]
    origin, size, root = parse_checkpoint(r["checkpoint"], name, pub)
    assert size == r["tree_size"] and ack["index"] < size
    proof = [base64.b64decode(p) for p in r["proof"]]
    assert root_from_inclusion(leaf_hash(ack["link"]), ack["index"], size, proof) == root
    return origin, size, root
