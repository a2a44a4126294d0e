#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_ws.c: client frame sequences (masked, built here from
RFC 6455 independently of the C code), each behind the first byte that picks the split and
app_in's bound.

Run from anywhere: python3 tests/fuzz/make_corpus_ws.py  (rewrites tests/fuzz/corpus/ws/).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True):
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = bytes([first, bit | n])
    elif n < 65536:
        head = bytes([first, bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


PUBLISH = bytes([0x30, 0x07, 0x00, 0x03]) + b"a/bhi"
PINGREQ = bytes([0xC0, 0x00])

SEEDS = {
    "binary": frame(2, PUBLISH),
    "two_packets": frame(2, PUBLISH + PINGREQ),
    "fragmented_ping": frame(2, PUBLISH[:3], fin=False) + frame(9, b"hello?")
    + frame(0, PUBLISH[3:6], fin=False) + frame(0, PUBLISH[6:]),
    "split_packet": frame(2, PUBLISH[:4]) + frame(2, PUBLISH[4:]),
    "len16": frame(2, bytes(range(256)) * 2),
    "close_1000": frame(2, PINGREQ) + frame(8, struct.pack(">H", 1000) + b"bye"),
    "close_empty": frame(8),
    "pong_then_data": frame(10, b"x") + frame(2, PINGREQ),
    "text": frame(1, b"hello"),
    "unmasked": frame(2, PINGREQ, masked=False),
    "too_big": frame(2, bytes(1100)),
}


def main():
    path = os.path.join(HERE, "corpus", "ws")
    os.makedirs(path, exist_ok=True)
    for old in os.listdir(path):
        os.remove(os.path.join(path, old))
    for i, (name, data) in enumerate(sorted(SEEDS.items())):
        with open(os.path.join(path, name), "wb") as f:
            f.write(bytes([(i * 37 + 100) & 0xFF]) + data)
    print("wrote %d ws seeds" % len(SEEDS))


if __name__ == "__main__":
    main()
