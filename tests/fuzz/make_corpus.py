#!/usr/bin/env python3
"""Writes the seed corpora for tests/fuzz: one valid packet of every MQTT packet type for
3.1.1 and 5.0 (built here from the spec, independently of the C encoder), plus topic seeds.

Run from anywhere: python3 tests/fuzz/make_corpus.py  (rewrites the corpus directories).
"""
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
    print("wrote %d decode seeds, %d topic seeds" % (len(decode), len(topic)))


if __name__ == "__main__":
    main()
