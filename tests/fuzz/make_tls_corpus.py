#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_tls_server.c: ClientHellos recorded from Python's
ssl module (OpenSSL underneath) over memory BIOs, for TLS 1.3 and TLS 1.2, whole and in small
reads, plus plain text and garbage. Each file is 3 parameter bytes (plain_max, wire_max, read
size; see the target) followed by what the client sends.

Run from anywhere: python3 tests/fuzz/make_tls_corpus.py  (rewrites corpus/tls_server/).
"""
import os
import random
import ssl
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.1 on purpose

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "tls_server")


def client_hello(max_version, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 offers TLS 1.1 only at security level 0.
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    rng = random.Random(1)
    seeds = {
        "hello13_whole": b"\x3f\x1f\xff" + client_hello(ssl.TLSVersion.TLSv1_3),
        "hello13_small_reads": b"\x00\x00\x01" + client_hello(ssl.TLSVersion.TLSv1_3),
        "hello12_whole": b"\x10\x04\xff" + client_hello(ssl.TLSVersion.TLSv1_2),
        "hello13_alpn": b"\x3f\x1f\x20" + client_hello(ssl.TLSVersion.TLSv1_3, ["mqtt"]),
        "hello11": b"\x3f\x1f\xff" + client_hello(ssl.TLSVersion.TLSv1_1),
        "mqtt_connect": b"\x3f\x1f\xff\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
        "http_get": b"\x3f\x1f\xff" + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "handshake_garbage": b"\x3f\x1f\xff\x16\x03\x01\x00\x40" + rng.randbytes(64),
        "garbage": b"\x3f\x1f\xff" + rng.randbytes(256),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
