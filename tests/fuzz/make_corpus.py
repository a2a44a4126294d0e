#!/usr/bin/env python3
"""Writes the seed corpora for tests/fuzz: one valid packet of every MQTT packet type for
3.1.1 and 5.0 (built here from the spec, independently of the C encoder), topic seeds, Merkle
proofs in JSON (fuzz_proof_json) and JWTs signed with fuzz_jwt.c's fixed key (fuzz_jwt; needs
the cryptography module: Debian's python3-cryptography, which scripts/install-deps.sh installs).

Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py  (rewrites those directories; the
output is the same on every run: Ed25519 signatures are deterministic).
"""
import base64
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def vbi(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def s(text):
    raw = text.encode() if isinstance(text, str) else text
    return u16(len(raw)) + raw


def props(*items):
    body = b"".join(items)
    return vbi(len(body)) + body


def pkt(first, body):
    return bytes([first]) + vbi(len(body)) + body


def user(k, v):
    return b"\x26" + s(k) + s(v)


def v311():
    return {
        "connect": pkt(0x10, s("MQTT") + b"\x04\xee" + u16(60) + s("cid") + s("will/t")
                       + s(b"\x00bye") + s("user") + s(b"pw")),
        "connect_min": pkt(0x10, s("MQTT") + b"\x04\x02" + u16(0) + s("")),
        "connect_mqtt31": pkt(0x10, s("MQIsdp") + b"\x03\x02" + u16(60) + s("a")),
        "connack": pkt(0x20, b"\x01\x00"),
        "publish_qos0": pkt(0x31, s("a/b") + b"hello"),
        "publish_qos2": pkt(0x3C, s("a/\xc3\xa9") + u16(7) + b"\x00\x01"),
        "puback": pkt(0x40, u16(1)),
        "pubrec": pkt(0x50, u16(2)),
        "pubrel": pkt(0x62, u16(3)),
        "pubcomp": pkt(0x70, u16(4)),
        "subscribe": pkt(0x82, u16(5) + s("a/+/c") + b"\x01" + s("#") + b"\x02"),
        "suback": pkt(0x90, u16(5) + b"\x01\x80"),
        "unsubscribe": pkt(0xA2, u16(6) + s("a/+/c") + s("#")),
        "unsuback": pkt(0xB0, u16(6)),
        "pingreq": pkt(0xC0, b""),
        "pingresp": pkt(0xD0, b""),
        "disconnect": pkt(0xE0, b""),
    }


def v5():
    up = user("k", "v") + user("k2", "\xe2\x82\xac")
    connect_props = props(b"\x11" + u32(3600), b"\x15" + s("SCRAM"), b"\x16" + s(b"\x01\x02"),
                          b"\x17\x01", b"\x19\x01", b"\x21" + u16(10), b"\x22" + u16(5), up,
                          b"\x27" + u32(65536))
    will_props = props(b"\x01\x01", b"\x02" + u32(60), b"\x03" + s("text/plain"),
                       b"\x08" + s("reply/t"), b"\x09" + s(b"\xff\x00"), b"\x18" + u32(5), up)
    connack_props = props(b"\x11" + u32(0), b"\x12" + s("auto-1"), b"\x13" + u16(30),
                          b"\x1A" + s("resp"), b"\x1C" + s("srv:1883"), b"\x1F" + s("ok"),
                          b"\x21" + u16(100), b"\x22" + u16(8), b"\x24\x01", b"\x25\x01", up,
                          b"\x27" + u32(1 << 20), b"\x28\x01", b"\x29\x01", b"\x2A\x00")
    publish_props = props(b"\x01\x01", b"\x02" + u32(10), b"\x03" + s("json"),
                          b"\x08" + s("r/t"), b"\x09" + s(b"cd"), b"\x0B" + vbi(1),
                          b"\x0B" + vbi(200000), b"\x23" + u16(3), up)
    ack_props = props(b"\x1F" + s("why"), up)
    return {
        "connect": pkt(0x10, s("MQTT") + b"\x05\xee" + u16(60) + connect_props + s("cid")
                       + will_props + s("will/t") + s(b"\x00bye") + s("user") + s(b"pw")),
        "connect_min": pkt(0x10, s("MQTT") + b"\x05\x02" + u16(0) + b"\x00" + s("")),
        "connack": pkt(0x20, b"\x00\x00" + connack_props),
        "connack_refused": pkt(0x20, b"\x00\x87\x00"),
        "publish_props": pkt(0x3B, s("a/b") + u16(9) + publish_props + b"payload"),
        "publish_alias": pkt(0x30, s("") + props(b"\x23" + u16(1)) + b"x"),
        "puback_short": pkt(0x40, u16(1)),
        "puback": pkt(0x40, u16(1) + b"\x10" + ack_props),
        "pubrec": pkt(0x50, u16(2) + b"\x80"),
        "pubrel": pkt(0x62, u16(3) + b"\x92" + ack_props),
        "pubcomp": pkt(0x70, u16(4) + b"\x00\x00"),
        "subscribe": pkt(0x82, u16(5) + props(b"\x0B" + vbi(42), up) + s("$share/g/a/#")
                         + b"\x2e" + s("x/+") + b"\x01"),
        "suback": pkt(0x90, u16(5) + ack_props + b"\x01\x8f\xa2"),
        "unsubscribe": pkt(0xA2, u16(6) + props(up) + s("a/+/c") + s("#")),
        "unsuback": pkt(0xB0, u16(6) + ack_props + b"\x00\x11"),
        "pingreq": pkt(0xC0, b""),
        "pingresp": pkt(0xD0, b""),
        "disconnect": pkt(0xE0, b""),
        "disconnect_props": pkt(0xE0, b"\x04" + props(b"\x11" + u32(0), b"\x1C" + s("s"),
                                                      b"\x1F" + s("bye"), up)),
        "auth": pkt(0xF0, b"\x18" + props(b"\x15" + s("SCRAM"), b"\x16" + s(b"\x00"),
                                          b"\x1F" + s("more"), up)),
        "auth_empty": pkt(0xF0, b""),
        # Enhanced authentication "ledgermq-ed25519" (docs/PROTOCOL.md "Login over MQTT").
        "connect_ed25519": pkt(0x10, s("MQTT") + b"\x05\x02" + u16(60)
                               + props(b"\x15" + s("ledgermq-ed25519"), b"\x16" + s(bytes(32)))
                               + s("sensor-1")),
        "auth_ed25519_nonce": pkt(0xF0, b"\x18" + props(b"\x15" + s("ledgermq-ed25519"),
                                                        b"\x16" + s(bytes(range(32))))),
        "auth_ed25519_sig": pkt(0xF0, b"\x18" + props(b"\x15" + s("ledgermq-ed25519"),
                                                      b"\x16" + s(bytes(range(64))))),
        "auth_reauth": pkt(0xF0, b"\x19" + props(b"\x15" + s("ledgermq-ed25519"))),
    }


TOPIC_SEEDS = [
    (b"a/+/c", b"a/b/c"), (b"#", b"a/b"), (b"a/#", b"a"), (b"+/x", b"$SYS/x"),
    (b"$SYS/#", b"$SYS/x"), (b"$share/g/a/+", b"a/b"), (b"+/+", b"/"),
    (b"a/\xc3\xa9", b"a/\xc3\xa9"), (b"a/#/b", b"a/x/b"), (b"\xf4\x8f\xbf\xbf", b"\xed\xa0\x80"),
]


def proof_json_seeds():
    """Proofs as GET /ledger/proof/... and receipts carry them, and near misses."""
    hashes = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(65)]
    b64 = [base64.b64encode(h).decode() for h in hashes]

    def arr(items):
        return json.dumps(items, separators=(",", ":")).encode()

    unpadded = b64[0].rstrip("=")
    # The last character before '=' carries 2 unused bits: one set (strict base64 refuses it).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet[alphabet.index(b64[0][42]) | 1]  # the low 2 bits are unused for 32 bytes
    unused_bits = b64[0][:42] + (last if last != b64[0][42] else alphabet[alphabet.index(last) | 2]) + "="
    return {
        "empty": b"[]",
        "one": arr(b64[:1]),
        "two": arr(b64[:2]),
        "max": arr(b64[:64]),
        "over_max": arr(b64[:65]),
        "receipt": json.dumps({"index": 5, "proof": b64[:3], "size": 8,
                               "checkpoint": "example.org/ledger\n8\n..."},
                              separators=(",", ":")).encode(),
        "unpadded": arr([unpadded]),
        "unused_bits": arr([unused_bits]),
        "short_31": arr([base64.b64encode(hashes[0][:31]).decode()]),
        "long_33": arr([base64.b64encode(hashes[0] + b"x").decode()]),
        "urlsafe": arr([base64.urlsafe_b64encode(bytes([0xfb] * 32)).decode()]),
        "number": b"[5]",
        "nested": b"[[" + arr(b64[:1]) + b"]]",
        "nul": b'["' + b64[0][:20].encode() + b'\\u0000' + b64[0][26:].encode() + b'"]',
    }


# fuzz_jwt.c's key (seed bytes 1..32) and clock (2026-01-01T00:00:00Z).
JWT_SEED = bytes(range(1, 33))
JWT_NOW_S = 1767225600


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def jcs(obj):
    """RFC 8785 for the plain objects here (ASCII strings, integers): sorted keys, no blanks."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def jwt_seeds():
    """Tokens for mode 0 (first byte 3 * leeway_step + mode), claims for 1 and headers for 2."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(JWT_SEED)
    header = {"alg": "EdDSA", "typ": "JWT"}
    sub = hashlib.sha256(b"fuzz identity").hexdigest()
    jti = b64url(bytes(range(16))).decode()

    def claims(**kw):
        c = {"sub": sub, "iat": JWT_NOW_S - 60, "exp": JWT_NOW_S + 3600, "jti": jti}
        c.update(kw)
        return {k: v for k, v in c.items() if v is not None}

    def token(hdr, cl, sign=True):
        signing = b64url(jcs(hdr)) + b"." + b64url(jcs(cl))
        sig = key.sign(signing) if sign else bytes(64)
        return signing + b"." + b64url(sig)

    def mode(m, leeway_step=0):
        return bytes([3 * leeway_step + m])

    bad_sig = bytearray(token(header, claims()))
    bad_sig[-5] = ord("A") if bad_sig[-5] != ord("A") else ord("B")
    return {
        "token_valid": mode(0) + token(header, claims()),
        "token_valid_iss": mode(0) + token(header, claims(iss="ledgermq")),
        "token_expired": mode(0) + token(header, claims(exp=JWT_NOW_S - 10)),
        "token_expired_within_leeway": mode(0, 10) + token(header, claims(exp=JWT_NOW_S - 10)),
        "token_not_yet_valid": mode(0) + token(header, claims(iat=JWT_NOW_S + 100)),
        "token_bad_signature": mode(0) + bytes(bad_sig),
        "token_unsigned": mode(0) + token(header, claims(), sign=False),
        "token_alg_none": mode(0) + token({"alg": "none", "typ": "JWT"}, claims()),
        "token_crit": mode(0) + token({"alg": "EdDSA", "crit": ["exp"]}, claims()),
        "token_two_dots": mode(0) + b"a.b",
        "claims_valid": mode(1) + jcs(claims()),
        "claims_iss": mode(1, 5) + jcs(claims(iss="ledgermq")),
        "claims_no_jti": mode(1) + jcs(claims(jti=None)),
        "claims_short_jti": mode(1) + jcs(claims(jti="abc")),
        "claims_exp_string": mode(1) + jcs(claims(exp="never")),
        "claims_exp_before_iat": mode(1) + jcs(claims(exp=JWT_NOW_S - 120)),
        "claims_duplicate_sub": mode(1) + b'{"sub":"a","sub":"b","iat":1,"exp":2,"jti":"'
        + jti.encode() + b'"}',
        "claims_array": mode(1) + b"[1,2]",
        "header_valid": mode(2) + jcs(header),
        "header_no_typ": mode(2) + jcs({"alg": "EdDSA"}),
        "header_typ_jwt_lower": mode(2) + jcs({"alg": "EdDSA", "typ": "jwt"}),
        "header_alg_hs256": mode(2) + jcs({"alg": "HS256", "typ": "JWT"}),
        "header_crit": mode(2) + jcs({"alg": "EdDSA", "crit": []}),
    }


def write_dir(name, files):
    path = os.path.join(HERE, "corpus", name)
    os.makedirs(path, exist_ok=True)
    for old in os.listdir(path):
        os.remove(os.path.join(path, old))
    for fname, data in files.items():
        with open(os.path.join(path, fname), "wb") as f:
            f.write(data)


def main():
    decode = {}
    for name, data in v311().items():
        decode["v311_" + name] = data
    for name, data in v5().items():
        decode["v5_" + name] = data
    write_dir("mqtt_decode", decode)
    topic = {}
    for i, (flt, top) in enumerate(TOPIC_SEEDS):
        topic["seed_%02d" % i] = bytes([len(flt)]) + flt + top
    write_dir("mqtt_topic", topic)
    proofs = proof_json_seeds()
    write_dir("proof_json", proofs)
    jwts = jwt_seeds()
    write_dir("jwt", jwts)
    print("wrote %d decode seeds, %d topic seeds, %d proof seeds, %d jwt seeds"
          % (len(decode), len(topic), len(proofs), len(jwts)))


if __name__ == "__main__":
    main()
