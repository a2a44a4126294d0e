#!/usr/bin/python3
"""The verifiable ledger's costs, measured against the real binary:

  1. envelope append rate: K identities each publish pre-signed envelopes (QoS 1, raw MQTT 5
     over TCP, a window of W unacknowledged publishes) to their outbox; the rate is accepted
     envelopes (acks with receipts received) per second, with --sync always.
  2. proof latency at 1,000,000 leaves: a data directory holding a 1,000,000-envelope ledger is
     written directly (rows and every Merkle node, computed here), the server recovers it, and
     GET /ledger/proof/inclusion is timed for random indexes (p50/p99, HTTP included).

    scripts/bench-ledger.py [--ledgermq build/ledgermq] [--envelopes 20000] [--leaves 1000000]

Python standard library + Debian's python3-cryptography. Prints a JSON summary.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import threading
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchdoc  # noqa: E402  scripts/benchdoc.py
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import ledgerclient as lc  # noqa: E402
import mqttraw as m  # noqa: E402


def start(binary, data_dir, extra_ini=""):
    # The per-identity envelope rate (default 1,000/s) and daily ledger bytes (default 64 MiB)
    # would measure the limits, not the ledger.
    os.makedirs(data_dir, exist_ok=True)
    ini = os.path.join(data_dir, "bench.ini")
    with open(ini, "w") as f:
        f.write("[auth]\nenvelope_rate_per_s = 10000000\nledger_bytes_per_day = 0\n" + extra_ini)
    proc = subprocess.Popen([binary, "serve", "--config", ini, "--data", data_dir,
                             "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0",
                             "--log-level", "info"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        ev = json.loads(line)
        if ev.get("event") == "ready":
            return proc, int(ev["mqtt"][0].rsplit(":", 1)[1]), ev["http"][0]
    proc.kill()
    raise SystemExit("ledgermq did not start")


def append_rate(binary, envelopes, identities, window, extra_ini="", after=None, before=None):
    """Envelopes accepted per second. extra_ini: more configuration (bench-events.py: webhooks,
    bots); before(port, http, data_dir): called once the broker is up, before anything is
    signed or sent; after(http, result): called once the run is measured, before the broker
    stops."""
    with tempfile.TemporaryDirectory() as d:
        proc, port, http = start(binary, d, extra_ini)
        try:
            if before is not None:
                before(port, http, d)
            recipient = lc.Identity()
            senders = [lc.Identity() for _ in range(identities)]
            per = envelopes // identities
            t0 = time.time()
            payloads = []
            for s in senders:
                envs = []
                for _ in range(per):
                    e = s.envelope(recipient.id, {"n": s.seq + 1})
                    s.advance(e)
                    envs.append(lc.canonical(e).encode())
                payloads.append(envs)
            sign_s = time.time() - t0
            clients = []
            for s in senders:
                c = m.RawClient(port, version=5, timeout=60)
                c.connect("b-" + s.id[:8], username=s.id, password=lc.login(http, s))
                clients.append(c)
            errors = []

            def pump(i):
                try:
                    rcs = clients[i].publish_pipelined("id/%s/outbox" % senders[i].id,
                                                       payloads[i], window=window, timeout=60)
                    if any(rc != 0 for rc in rcs):
                        errors.append("refused: %r" % [rc for rc in rcs if rc][:3])
                except Exception as e:  # reported below
                    errors.append(repr(e))

            threads = [threading.Thread(target=pump, args=(i,)) for i in range(len(clients))]
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.time() - t0
            if errors:
                raise SystemExit("append run failed: %s" % errors[0])
            status, cp = lc.http_json(http, "/ledger/checkpoint")
            assert cp["size"] == per * len(clients), cp
            result = {"envelopes": per * len(clients), "identities": identities,
                      "window": window, "seconds": round(elapsed, 3),
                      "envelopes_per_s": round(per * len(clients) / elapsed),
                      "client_signing_s": round(sign_s, 2), "started": t0}
            if after is not None:
                after(http, result)
            return result
        finally:
            proc.terminate()
            proc.wait(60)


def write_ledger(data_dir, binary, leaves):
    """A ledger of `leaves` envelopes written directly: rows with distinct links (their
    envelope bytes are placeholders: this measures proofs, `verify --data` would refuse it)."""
    proc, _, _ = start(binary, data_dir)  # creates the schema and the server key
    proc.terminate()
    proc.wait(60)
    db = sqlite3.connect(os.path.join(data_dir, "ledgermq.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    level = []
    rows = []
    frontier = {}
    a = "a" * 64
    for i in range(leaves):
        link = hashlib.sha256(struct.pack(">Q", i)).digest()
        rows.append((i, link.hex().encode(), a.encode(), a.encode(), i + 1, i + 1, b"{}", 0))
        h = hashlib.sha256(b"\x00" + link).digest()
        lvl, idx = 0, i
        level.append((0, idx, h))
        while idx & 1:
            left = frontier[lvl]
            h = hashlib.sha256(b"\x01" + left + h).digest()
            lvl += 1
            idx >>= 1
            level.append((lvl, idx, h))
        frontier[lvl] = h
        if len(rows) >= 100000:
            db.executemany("INSERT INTO ledger VALUES(?,?,?,?,?,?,?,?)", rows)
            db.executemany("INSERT INTO ledger_nodes VALUES(?,?,?)", level)
            rows, level = [], []
    db.executemany("INSERT INTO ledger VALUES(?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO ledger_nodes VALUES(?,?,?)", level)
    db.commit()
    db.close()


def proof_latency(binary, leaves, samples):
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        write_ledger(d, binary, leaves)
        fill_s = time.time() - t0
        t0 = time.time()
        proc, _, http = start(binary, d)
        start_s = time.time() - t0
        try:
            status, cp = lc.http_json(http, "/ledger/checkpoint")
            assert cp["size"] == leaves, cp
            root = base64.b64decode(cp["root"])
            rng = random.Random(1)
            lat = []
            for _ in range(samples):
                i = rng.randrange(leaves)
                t = time.perf_counter()
                with urllib.request.urlopen("http://%s/ledger/proof/inclusion?index=%d" % (http, i),
                                            timeout=30) as r:
                    body = json.loads(r.read())
                lat.append((time.perf_counter() - t) * 1e6)
                link = hashlib.sha256(struct.pack(">Q", i)).hexdigest()
                proof = [base64.b64decode(h) for h in body["proof"]]
                assert lc.root_from_inclusion(lc.leaf_hash(link), i, leaves, proof) == root, i
            lat.sort()
            return {"leaves": leaves, "samples": samples, "fill_s": round(fill_s, 1),
                    "restart_s": round(start_s, 2),
                    "proof_us_p50": round(lat[len(lat) // 2]),
                    "proof_us_p99": round(lat[int(len(lat) * 0.99)]),
                    "proof_hashes": len(body["proof"])}
        finally:
            proc.terminate()
            proc.wait(60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ledgermq", default=os.path.join(HERE, "..", "build", "ledgermq"))
    ap.add_argument("--envelopes", type=int, default=20000)
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--leaves", type=int, default=1000000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="runs; the table shows the median")
    ap.add_argument("--doc", help="also write the results into this page's bench:ledger block "
                    "(make bench-ledger: docs/BENCHMARKS.md)")
    a = ap.parse_args()
    runs = []
    for _ in range(a.rounds):
        out = {"append": append_rate(a.ledgermq, a.envelopes, a.identities, a.window),
               "proof": proof_latency(a.ledgermq, a.leaves, a.samples),
               "nproc": os.cpu_count()}
        print(json.dumps(out), flush=True)
        runs.append(out)
    if a.doc:
        benchdoc.write_block(a.doc, "ledger", ledger_markdown(a, runs))


def ledger_markdown(a, runs):
    """The bench:ledger block of docs/BENCHMARKS.md: medians and every run."""
    def med(f):
        return statistics.median(f(r) for r in runs)
    version = subprocess.run([a.ledgermq, "version"], capture_output=True, text=True).stdout
    git = subprocess.run(["git", "-C", os.path.join(HERE, ".."), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    lines = [
        "## Ledger: envelope append rate and inclusion proofs",
        "",
        "Written by `make bench-ledger` (`scripts/bench-ledger.py`, %d runs, medians), %s, %s "
        "(git %s), %d CPUs, `--sync always`." % (
            len(runs), time.strftime("%Y-%m-%d %H:%MZ", time.gmtime()), version.strip(), git,
            os.cpu_count() or 0),
        "",
        "| measure | median | runs |",
        "| --- | --- | --- |",
        "| envelopes accepted per second: %d identities publish %d pre-signed envelopes (QoS 1, "
        "MQTT 5, %d unacknowledged each), PUBACK after the durable commit | %.0f | %s |" % (
            a.identities, a.window, a.envelopes, med(lambda r: r["append"]["envelopes_per_s"]),
            ", ".join("%d" % r["append"]["envelopes_per_s"] for r in runs)),
        "| `GET /ledger/proof/inclusion` at %d leaves, p50 µs (HTTP included) | %.0f | %s |" % (
            a.leaves, med(lambda r: r["proof"]["proof_us_p50"]),
            ", ".join("%d" % r["proof"]["proof_us_p50"] for r in runs)),
        "| the same, p99 µs | %.0f | %s |" % (
            med(lambda r: r["proof"]["proof_us_p99"]),
            ", ".join("%d" % r["proof"]["proof_us_p99"] for r in runs)),
        "| start on that ledger, process start to ready, s | %.2f | %s |" % (
            med(lambda r: r["proof"]["restart_s"]),
            ", ".join("%.2f" % r["proof"]["restart_s"] for r in runs)),
        "",
        "The clients are Python threads on the same 2 cores (signing happens before the "
        "timed window, %.1f s per run), so the append rate is a floor for the server. The "
        "ledger for the proofs is written directly (rows and Merkle nodes), then the server "
        "starts on it; a proof has %d hashes. Rerun: `make bench-ledger`." % (
            med(lambda r: r["append"]["client_signing_s"]),
            runs[0]["proof"]["proof_hashes"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
