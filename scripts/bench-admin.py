#!/usr/bin/python3
"""What admin API calls cost with N stored sessions (docs/SECURITY.md "Admin API"):
scripts/bench-admin.py BUILD/ledgermq N. Starts a broker in a temporary directory on free
ports, creates N offline persistent sessions (MQTT 3.1.1, clean session 0), then times 50 calls
of each route and prints ms per call and the answer's size."""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(port, cid):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    cidb = cid.encode()
    rem = b"\x00\x04MQTT\x04\x00\x00\x3c" + struct.pack("!H", len(cidb)) + cidb
    s.sendall(b"\x10" + bytes([len(rem)]) + rem)
    assert s.recv(4)[:2] == b"\x20\x02"
    s.sendall(b"\xe0\x00")
    s.close()


def main():
    binary, n = sys.argv[1], int(sys.argv[2])
    work = tempfile.mkdtemp(prefix="bench-admin-")
    key = os.path.join(work, "admin.json")
    admin = subprocess.run([binary, "keygen", "--out", key], capture_output=True, text=True,
                           check=True).stdout.strip()
    ini = os.path.join(work, "ledgermq.ini")
    with open(ini, "w") as f:
        f.write("[admin]\nids = %s\n[limits]\nmax_sessions_per_address = 10000000\n"
                "max_sessions_per_principal = 10000000\nmax_sessions = 10000000\n"
                "max_connection_rate_per_address = 10000000\n" % admin)
    mqtt, http = free_port(), free_port()
    p = subprocess.Popen([binary, "serve", "--mqtt", "127.0.0.1:%d" % mqtt, "--http",
                          "127.0.0.1:%d" % http, "--data", os.path.join(work, "data"),
                          "--config", ini, "--sync", "off", "--log-level", "error"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        for i in range(n):
            connect(mqtt, "c%07d" % i)
        token = subprocess.run([binary, "token", "--key", key, "--http", "127.0.0.1:%d" % http],
                               capture_output=True, text=True, check=True).stdout.strip()

        def call(path):
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (http, path),
                                         headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read()

        for path in ("/admin/v1/status", "/admin/v1/sessions?limit=10",
                     "/admin/v1/sessions?limit=1000", "/admin/v1/identities?limit=1000"):
            call(path)
            start, k = time.perf_counter(), 50
            for _ in range(k):
                body = call(path)
            ms = (time.perf_counter() - start) / k * 1000
            print("%d sessions  %-34s %6.2f ms/call  %7d bytes" % (n, path, ms, len(body)))
    finally:
        p.terminate()
        p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
