#!/usr/bin/python3
"""The chain follower's catch-up speed beside ethers.js doing the same walk, and its
block-to-inbox latency, against one local ganache (tests/integration/ganache.py: npm ganache 7,
instant mining, fixed accounts):

  the chain: a Transfer contract (test_chain_follow.py's TRANSFER_INITCODE) deployed in block 1,
  then --logs transfers (one log each, one block each), then empty blocks up to --blocks blocks
  in all (block 0 included); the same counts on every run;
  (a) LedgerMQ: a broker on a copy of a store holding one watch on the contract, [chain]
      start_block = 0 and batch_blocks = --batch; from its "ready" log line until the stored
      tip (chain_headers, read from SQLite) is the node's head; then every log must be
      notified: one committed ledgermq.chain.log envelope each (committed, i.e. in the ledger:
      they are written in the same commit as their block; the inbox is not read here);
  (b) ethers.js 6 (tests/js/chain_walk.js, JsonRpcProvider with its default batching): the
      same walk from block 0 to the head, --batch headers (eth_getBlockByNumber, sent as one
      JSON-RPC batch, each checked to link to its parent) then eth_getLogs over the same range
      for the contract; from its first request to its last answer;
  (b) runs twice: with ethers' default batchStallTime (10 ms) and with 0;
  (bare) the same batches sent from Python (urllib), counting only: the node's own share;
  --compare BIN: (a) again with another binary in each round (before/after a change);
  rounds run (a), (b), (b) with 0 and (bare) in turn, --rounds each; all must see every block
  and every log;
  (c) block to inbox: a fresh broker following from the latest block with one watch, --latency
      transfers one at a time, each sent after a random pause in [0, poll_ms) (seeded) so blocks
      fall at random points of the poll cycle; from eth_sendTransaction's answer (ganache has
      mined the block) to the ledgermq.chain.log notice on the watcher's MQTT session; for
      poll_ms 100 and 1000.

    scripts/bench-chain.py [--ledgermq build/ledgermq] [--blocks 2000] [--logs 300]
                           [--batch 100] [--rounds 3] [--latency 20] [--polls 100,1000]
                           [--compare OTHER_LEDGERMQ [--compare-name NAME]]
                           [--doc docs/BENCHMARKS.md]

Prints a Markdown section; --doc replaces the "chain" block of that file (scripts/benchdoc.py).
Python standard library + Debian's python3-cryptography (ledgerclient), node (tests/js).
"""

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import benchdoc  # noqa: E402  scripts/benchdoc.py

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import ledgerclient as lc  # noqa: E402
from ganache import CHAIN_ID, start_ganache  # noqa: E402
from test_chain_follow import TRANSFER_INITCODE  # noqa: E402

READY_TIMEOUT_S = 30.0
CATCH_UP_TIMEOUT_S = 120.0
NOTICE_TIMEOUT_S = 15.0
WALK_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
TIP_POLL_S = 0.005
SEED = 18
ETHERS_STALL_MS = 10  # JsonRpcProvider's default batchStallTime
START_NEVER = 10 ** 12  # a start block the node never reaches: the template store stays empty


class Broker:
    """One ledgermq serve on data_dir with [chain] keys; ready_t is the monotonic time its
    "ready" line was read."""

    def __init__(self, binary, data_dir, chain):
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        ini = os.path.join(data_dir, "bench-chain.ini")
        with open(ini, "w") as f:
            f.write("[chain]\n" + "".join("%s = %s\n" % kv for kv in chain.items()))
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", ini, "--data", data_dir, "--mqtt", "127.0.0.1:0",
             "--http", "127.0.0.1:0", "--log-level", "info"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self.lines = []
        self._ready = threading.Event()
        self.ready_t = None
        self.http = None
        self.mqtt_port = None
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise SystemExit("ledgermq did not start:\n" + "\n".join(self.lines[-20:]))

    def _drain(self):
        for line in self.proc.stderr:
            t = time.monotonic()
            self.lines.append(line.rstrip("\n"))
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "ready" and not self._ready.is_set():
                self.http = ev["http"][0]
                self.mqtt_port = int(ev["mqtt"][0].rsplit(":", 1)[1])
                self.ready_t = t
                self._ready.set()

    def db(self):
        return sqlite3.connect("file:%s/ledgermq.db?mode=ro" % self.data_dir, uri=True,
                               timeout=10)

    def server_id(self):
        status, key = lc.http_json(self.http, "/ledger/key")
        assert status == 200, key
        return key["id"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode not in (0, -15):
            raise SystemExit("ledgermq exited with %s:\n%s" % (self.proc.returncode,
                                                                "\n".join(self.lines[-20:])))


def watch(b, ident, contract):
    """ident's session on b with a watch on contract (acknowledged); returns the session."""
    s = lc.Session(b.mqtt_port, ident, lc.login(b.http, ident))
    assert s.rc == 0, s.rc
    env = ident.envelope(b.server_id(), {"address": contract}, type_="ledgermq.chain.watch")
    s.send(env)
    leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
    if leaf != "ack":
        raise SystemExit("the watch was refused: %s %r" % (leaf, msg))
    ident.advance(env)
    return s


def transfer_data(i):
    return "0x" + "00" * 31 + "01" + "%064x" % i


def build_chain(g, blocks, logs):
    """The deterministic chain; returns the contract's address."""
    _, contract = g.deploy(TRANSFER_INITCODE)
    for i in range(logs):
        g.send_tx(to=contract, data=transfer_data(i))
    left = blocks - 1 - g.block_number()
    if left < 0:
        raise SystemExit("--blocks %d is too few for %d logs" % (blocks, logs))
    if left > 0:
        g.rpc("evm_mine", [{"blocks": left}])  # ganache 7: n empty blocks in one call
    assert g.block_number() == blocks - 1, (g.block_number(), blocks)
    return contract


def chain_keys(g, **keys):
    chain = {"rpc": g.url, "poll_ms": 100, "timeout_ms": 10000, "confirmations": 12}
    chain.update(keys)
    return chain


def make_template(a, g, contract, path):
    """A store with one acknowledged watch on contract and no block yet."""
    b = Broker(a.ledgermq, path, chain_keys(g, start_block=START_NEVER))
    try:
        watch(b, lc.Identity(), contract).close()
    finally:
        b.stop()
    os.remove(os.path.join(path, "bench-chain.ini"))


def notices(b):
    conn = b.db()
    try:
        rows = conn.execute("SELECT envelope FROM ledger ORDER BY idx").fetchall()
    finally:
        conn.close()
    return sum(1 for (raw,) in rows if json.loads(bytes(raw))["type"] == "ledgermq.chain.log")


def run_ledgermq(a, g, template, work, head, binary, side="ledgermq"):
    data = os.path.join(work, "round")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(template, data)
    b = Broker(binary, data, chain_keys(g, start_block=0, batch_blocks=a.batch))
    try:
        conn = None
        deadline = b.ready_t + CATCH_UP_TIMEOUT_S
        while True:
            if conn is None and os.path.exists(os.path.join(data, "ledgermq.db")):
                conn = b.db()
            tip = conn.execute("SELECT MAX(number) FROM chain_headers").fetchone()[0] \
                if conn is not None else None
            now = time.monotonic()
            if tip is not None and tip >= head:
                break
            if now > deadline:
                raise SystemExit("catch-up did not reach %d (tip %s):\n%s" % (
                    head, tip, "\n".join(b.lines[-20:])))
            time.sleep(TIP_POLL_S)
        seconds = now - b.ready_t
        blocks = conn.execute("SELECT COUNT(*) FROM chain_headers").fetchone()[0]
        conn.close()
        logs = notices(b)
    finally:
        b.stop()
    return {"side": side, "blocks": blocks, "logs": logs, "seconds": seconds}


def run_ethers(a, g, contract, stall_ms):
    p = subprocess.run(["node", os.path.join(ROOT, "tests", "js", "chain_walk.js"), g.url,
                        contract, str(a.batch), str(CHAIN_ID), str(stall_ms)],
                       capture_output=True, text=True, timeout=WALK_TIMEOUT_S,
                       cwd=os.path.join(ROOT, "tests", "js"))
    if p.returncode != 0:
        raise SystemExit("chain_walk.js failed: %s" % p.stderr[-2000:])
    r = json.loads(p.stdout)
    return {"side": "ethers%d" % stall_ms, "blocks": r["blocks"], "logs": r["logs"],
            "seconds": r["seconds"]}


def rpc_batch(url, calls):
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                       for i, (m, p) in enumerate(calls)]).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=WALK_TIMEOUT_S) as r:
        answers = json.loads(r.read())
    if not isinstance(answers, list) or len(answers) != len(calls) or any(
            "result" not in x for x in answers):
        raise SystemExit("bad JSON-RPC batch answer: %r" % (answers,)[:500])
    return [x["result"] for x in sorted(answers, key=lambda x: x["id"])]


def run_bare(a, g, contract):
    """The node's share: the same walk with bare JSON-RPC batches (urllib, json) and no other
    work than counting and the parent check."""
    t0 = time.monotonic()
    head = int(rpc_batch(g.url, [("eth_blockNumber", [])])[0], 16)
    blocks = logs = 0
    parent = None
    for first in range(0, head + 1, a.batch):
        last = min(first + a.batch - 1, head)
        for h in rpc_batch(g.url, [("eth_getBlockByNumber", [hex(n), False])
                                   for n in range(first, last + 1)]):
            if parent is not None and h["parentHash"] != parent:
                raise SystemExit("block %s does not link to its parent" % h["number"])
            parent = h["hash"]
            blocks += 1
        logs += len(rpc_batch(g.url, [("eth_getLogs", [{"address": contract, "fromBlock": hex(
            first), "toBlock": hex(last)}])])[0])
    return {"side": "bare", "blocks": blocks, "logs": logs, "seconds": time.monotonic() - t0}


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_latency(a, g, contract, work, poll_ms, rng):
    data = os.path.join(work, "latency-%d" % poll_ms)
    b = Broker(a.ledgermq, data, chain_keys(g, start_block="latest", poll_ms=poll_ms))
    lat_ms = []
    try:
        s = watch(b, lc.Identity(), contract)
        try:
            for i in range(a.latency):
                time.sleep(rng.uniform(0, poll_ms / 1000.0))
                tx = g.send_tx(to=contract, data="0x" + "00" * 31 + "02" + "%064x" % i)
                t0 = time.monotonic()
                while True:
                    body = s.expect("inbox", timeout=NOTICE_TIMEOUT_S)["envelope"]
                    if body["type"] == "ledgermq.chain.log":
                        break  # else a confirmed notice of an earlier transfer
                lat_ms.append((time.monotonic() - t0) * 1000.0)
                if body["body"]["tx_hash"] != tx:
                    raise SystemExit("notice for %s, not for %s" % (body["body"]["tx_hash"], tx))
        finally:
            s.close()
    finally:
        b.stop()
    return {"poll_ms": poll_ms, "p50": statistics.median(lat_ms), "p99": pct(lat_ms, 0.99),
            "max": max(lat_ms), "runs": lat_ms}


def machine():
    """The CPU model and the load average now (other work shares the machine)."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "?")
    except OSError:
        pass
    return "%d CPUs (%s)" % (os.cpu_count() or 0, model), "%.1f" % os.getloadavg()[0]


def markdown(a, ganache_v, head, runs, lats, load_start):
    version = subprocess.run([a.ledgermq, "version"], capture_output=True, text=True).stdout
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    ethers_v = json.load(open(os.path.join(ROOT, "tests", "js", "node_modules", "ethers",
                                           "package.json")))["version"]
    lines = [
        "## Chain follower: catch-up beside ethers.js, and block-to-inbox latency",
        "",
        "Written by `make bench-chain` (`scripts/bench-chain.py`, %d rounds of each side, "
        "alternating, medians), %s, %s (git %s), %s, load average %s at the start and %s at "
        "the end (other work shares the machine), `--sync always`, ganache %s (npm, "
        "instant mining) and ethers %s on the same machine. The chain: %d blocks (0..%d), a "
        "Transfer contract deployed in block 1, %d transfers (one log each) in the next %d "
        "blocks, the rest empty. **LedgerMQ**: one watch on the contract stored, `start_block = "
        "0`, `batch_blocks = %d`; from the broker's `ready` line until the stored tip is the "
        "node's head, every log then notified (one committed `ledgermq.chain.log` envelope "
        "each, written in the same commit as its block; not read from an inbox). **ethers**: "
        "`tests/js/chain_walk.js`, one `JsonRpcProvider` (its default batching: up to 100 calls "
        "per JSON-RPC batch, gathered for `batchStallTime` = 10 ms; also run with 0 ms), the "
        "same walk: %d `getBlock` calls at once (one batch), each checked to link to its "
        "parent, then `getLogs` for the contract over the same range; from its first request "
        "to its last answer, nothing stored. **bare**: the same batches from Python (urllib, "
        "json), counting and the parent check only: about what ganache itself takes to answer "
        "the walk. Every run is a fresh process (broker, node); rounds run the sides in turn." % (
            a.rounds, time.strftime("%Y-%m-%d %H:%MZ", time.gmtime()), version.strip(), git,
            machine()[0], load_start, machine()[1], ganache_v, ethers_v, head + 1, head, a.logs,
            a.logs, a.batch, a.batch),
        "",
        "| side | blocks | logs | time (median) | blocks/s | logs/s | runs (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side, name in (("ledgermq", "LedgerMQ follower"),
                       ("compare", "LedgerMQ follower, %s" % (a.compare_name or a.compare)),
                       ("ethers%d" % ETHERS_STALL_MS, "ethers.js walk"),
                       ("ethers0", "ethers.js walk, batchStallTime 0"),
                       ("bare", "bare JSON-RPC walk (Python)")):
        rs = [r for r in runs if r["side"] == side]
        if not rs:
            continue
        t = statistics.median(r["seconds"] for r in rs)
        lines.append("| %s | %d | %d | %.3f s | %.0f | %.0f | %s |" % (
            name, rs[0]["blocks"], rs[0]["logs"], t, rs[0]["blocks"] / t, rs[0]["logs"] / t,
            ", ".join("%.3f" % r["seconds"] for r in rs)))
    if lats:
        lines += [
            "",
            "Block to inbox: a broker following from the latest block with one watch; %d "
            "transfers one at a time, each after a random pause in [0, `poll_ms`) (seeded), "
            "from `eth_sendTransaction`'s answer (the block is mined) to the "
            "`ledgermq.chain.log` notice on the watcher's MQTT session. A block waits for the "
            "next poll, `poll_ms / 2` on average.%s" % (
                a.latency, " With fewer than 100 transfers p99 is the largest." if a.latency < 100
                else ""),
            "",
            "| poll_ms | p50 | p99 | max | runs (ms, in order) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in lats:
            lines.append("| %d | %.0f ms | %.0f ms | %.0f ms | %s |" % (
                r["poll_ms"], r["p50"], r["p99"], r["max"],
                ", ".join("%.0f" % x for x in r["runs"])))
    if a.compare:
        lines += ["", "The \"LedgerMQ follower, %s\" row: another build of the broker "
                  "(`--compare`), run in the same rounds on the same chain, the two alternating "
                  "which goes first." % (
                      a.compare_name or a.compare)]
    lines += ["", "Rerun: `make bench-chain`%s." % (
        " with `BENCH_CHAIN_ARGS=\"--compare OTHER_BUILD/ledgermq --compare-name NAME\"`"
        if a.compare else "")]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ledgermq", default=os.path.join(ROOT, "build", "ledgermq"))
    ap.add_argument("--blocks", type=int, default=2000)
    ap.add_argument("--logs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency", type=int, default=20, help="transfers per poll_ms (0: none)")
    ap.add_argument("--polls", default="100,1000")
    ap.add_argument("--compare", help="another ledgermq binary run beside --ledgermq (a build "
                    "of another commit: before/after a change)")
    ap.add_argument("--compare-name", help="what the table calls --compare (e.g. its commit)")
    ap.add_argument("--doc")
    a = ap.parse_args()
    if a.blocks < a.logs + 2 or a.rounds < 1 or not 1 <= a.batch <= 1000 or a.latency < 0:
        ap.error("need --blocks >= --logs + 2, --rounds >= 1, --batch in 1..1000")
    polls = [int(x) for x in a.polls.split(",") if x]
    rng = random.Random(SEED)
    load_start = machine()[1]
    work = tempfile.mkdtemp(prefix="bench-chain-")
    g = start_ganache(max_seconds=600)
    try:
        ganache_v = json.load(open(os.path.join(ROOT, "tests", "js", "node_modules", "ganache",
                                                "package.json")))["version"]
        contract = build_chain(g, a.blocks, a.logs)
        head = g.block_number()
        template = os.path.join(work, "template")
        make_template(a, g, contract, template)
        runs = []
        for r in range(a.rounds):
            sides = [lambda: run_ledgermq(a, g, template, work, head, a.ledgermq)]
            if a.compare:
                sides.append(lambda: run_ledgermq(a, g, template, work, head, a.compare,
                                                  "compare"))
                if r % 2 == 1:
                    sides.reverse()  # neither binary always runs first
            for run in sides + [
                    lambda: run_ethers(a, g, contract, ETHERS_STALL_MS),
                    lambda: run_ethers(a, g, contract, 0),
                    lambda: run_bare(a, g, contract)]:
                got = run()
                print("round %d %-8s %d blocks %d logs %.3f s" % (
                    r + 1, got["side"], got["blocks"], got["logs"], got["seconds"]),
                    file=sys.stderr)
                if got["blocks"] != head + 1 or got["logs"] != a.logs:
                    raise SystemExit("%s saw %d blocks and %d logs, not %d and %d" % (
                        got["side"], got["blocks"], got["logs"], head + 1, a.logs))
                runs.append(got)
        lats = []
        if a.latency > 0:
            for poll_ms in polls:
                lats.append(run_latency(a, g, contract, work, poll_ms, rng))
                print("latency poll_ms %d: %s" % (poll_ms, ", ".join(
                    "%.0f" % x for x in lats[-1]["runs"])), file=sys.stderr)
    finally:
        g.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(a, ganache_v, head, runs, lats, load_start)
    print(text)
    if a.doc:
        benchdoc.write_block(a.doc, "chain", text)


if __name__ == "__main__":
    main()
