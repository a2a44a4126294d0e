"""The typed-object parts of `make bench-data` (scripts/bench-data.py runs them):

ingest  Typed-object envelopes per second durably accepted beside the same envelopes without a
        model. Both carry the body {"_t"|"xt": "bench.Item", "k": .., "n": .., "pad": ".."}:
        with "_t" the envelope is a typed object (validated against the model, stored as a
        resource, indexed on k); with "xt" (same bytes, same size) it names no model and is a
        plain envelope. Same broker settings for both (the model loaded, --sync always), same
        connections: K identities (4 and 16), each its own process with its own MQTT 5
        connection, publish pre-signed envelopes (signed by tests/tools/data_bench with the
        project's builder, before the timed window) keeping W unacknowledged; an envelope counts
        when its ack with its receipt arrived on id/<me>/ack. Every run gets a fresh broker and
        data directory; the two kinds alternate. After each run: every seq acked exactly once,
        no reject, and the store holds exactly the resources sent (data_resources rows for the
        model: N for typed, 0 for plain; ledger rows: N for both).
query   rl_bench_Item(filter: {k: {EQ: v}}, limit: 50) over POST /graphql with a bearer token of
        a [data] readers_all identity, against RESOURCES (1,000,000) resources seeded through
        the broker (signed envelopes, --sync off to seed faster: the tables and indexes are the
        same), p50/p99/max over QUERIES varying v; then the bare SQL statement it compiles to
        (store_data_query_sql) on the same SQLite file (data_bench sql). The seeded directory is
        cached under build/bench-data-1m/KEY/ where KEY hashes the git trees of src/store and
        src/data at HEAD, the model and the sizes: a rerun does not reseed.
"""

import hashlib
import http.client
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import ledgerclient as lc  # noqa: E402
import mqttraw as m  # noqa: E402

MODEL_NAME = "bench.Item"
MODEL = {
    "$id": MODEL_NAME,
    "type": "object",
    "properties": {
        "k": {"type": "integer", "minimum": 0, "x-index": True},
        "n": {"type": "integer", "minimum": 1},
        "pad": {"type": "string", "maxLength": 1024},
    },
    "required": ["k", "n"],
    "additionalProperties": False,
}
PAD_BYTES = 64
RUN_TIMEOUT_S = 600
START_TIMEOUT_S = 300


class BenchError(Exception):
    pass


def _proc_cpu_s(pid):
    """utime + stime of pid in seconds (0 when unreadable)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Broker:
    """`ledgermq serve` on a data directory with the bench model loaded."""

    def __init__(self, binary, data_dir, models_dir, reader_id, sync):
        os.makedirs(data_dir, exist_ok=True)
        ini = os.path.join(data_dir, "bench-data.ini")
        with open(ini, "w") as f:
            # The per-identity envelope rate, the daily ledger bytes and the per-address read
            # budget (one client address runs every query) would measure the limits.
            f.write("[auth]\nenvelope_rate_per_s = 10000000\nledger_bytes_per_day = 0\n"
                    "[data]\nmodels = %s\nreaders_all = %s\nread_budget_ms_per_s = 0\n"
                    % (models_dir, reader_id))
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", ini, "--data", data_dir, "--mqtt", "127.0.0.1:0",
             "--http", "127.0.0.1:0", "--sync", sync, "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            ev = json.loads(line)
            if ev.get("event") == "ready":
                self.port = int(ev["mqtt"][0].rsplit(":", 1)[1])
                self.http = ev["http"][0]
                # Keep reading stderr so the broker never blocks on a full pipe.
                threading.Thread(target=_drain, args=(self.proc.stderr,), daemon=True).start()
                return
        self.proc.kill()
        self.proc.wait(60)
        raise BenchError("ledgermq did not start on %s" % data_dir)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(60)
            raise BenchError("ledgermq did not stop within 120 s")
        if self.proc.returncode != 0:
            raise BenchError("ledgermq exited %d" % self.proc.returncode)

    def db(self):
        return os.path.join(self.data_dir, "ledgermq.db")


def _drain(stream):
    for _ in stream:
        pass


def write_model(models_dir):
    os.makedirs(models_dir, exist_ok=True)
    with open(os.path.join(models_dir, "item.json"), "w") as f:
        json.dump(MODEL, f)


def sign(data_bench, seeds, to_id, per, member, keys, out_dir, jobs=2):
    """Envelope files (one per seed) signed by data_bench, `jobs` at a time. Returns
    (paths, seconds)."""
    t0 = time.time()
    paths, running = [], []
    for i, seed in enumerate(seeds):
        path = os.path.join(out_dir, "%s-%d.jsonl" % (member.strip("_"), i))
        paths.append(path)
        running.append(subprocess.Popen(
            [data_bench, "sign", seed.hex(), to_id, str(per), member, MODEL_NAME, str(keys),
             str(PAD_BYTES), path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        while len(running) >= jobs or (i == len(seeds) - 1 and running):
            p = running.pop(0)
            _, err = p.communicate(timeout=RUN_TIMEOUT_S)
            if p.returncode != 0:
                raise BenchError("data_bench sign failed: %s" % err.decode().strip())
    return paths, time.time() - t0


def _pump(port, http, seed, path, window, barrier, results):
    """One sender (its own process): publish every envelope of path, keeping `window`
    unacknowledged PUBLISHes, until every ack (with a receipt) arrived."""
    try:
        ident = lc.Identity(seed)
        c = m.RawClient(port, version=5, timeout=RUN_TIMEOUT_S)
        c.connect("bd-" + ident.id[:16], username=ident.id, password=lc.login(http, ident))
        base = "id/%s/" % ident.id
        c.subscribe([(base + "ack", 1), (base + "reject", 1)])
        with open(path, "rb") as f:
            payloads = f.read().split(b"\n")[:-1]
        window = max(1, min(window, c.server_receive_maximum()))
        barrier.wait(RUN_TIMEOUT_S)
        cpu0, t0 = time.process_time(), time.time()
        inflight, sent, pubacks, seqs = set(), 0, 0, set()
        # Each turn sends what the window allows and reads one packet: bounded by the packets.
        for _ in range(4 * len(payloads) + 16):
            if len(seqs) == len(payloads) and pubacks == len(payloads):
                break
            while sent < len(payloads) and len(inflight) < window:
                pid = c.next_pid()
                inflight.add(pid)
                c.publish(base + "outbox", payloads[sent], qos=1, pid=pid)
                sent += 1
            p = c.recv(RUN_TIMEOUT_S)
            if p.type == m.PUBACK:
                if p.rc != 0:
                    raise BenchError("PUBACK 0x%02x" % p.rc)
                inflight.remove(p.pid)
                pubacks += 1
            elif p.type == m.PUBLISH:
                if p.qos == 1:
                    c.puback(p.pid)
                msg = json.loads(p.payload)
                if p.topic.endswith("/reject"):
                    raise BenchError("rejected: %r" % msg)
                if "receipt" not in msg or msg["seq"] in seqs:
                    raise BenchError("an ack without a receipt or twice: %r" % msg)
                seqs.add(msg["seq"])
        t1 = time.time()
        if seqs != set(range(1, len(payloads) + 1)):
            raise BenchError("acks missing: %d of %d" % (len(seqs), len(payloads)))
        results.put({"ok": True, "t0": t0, "t1": t1, "count": len(payloads),
                     "cpu_s": time.process_time() - cpu0})
        c.disconnect()
    except Exception as e:  # reported by the parent
        results.put({"ok": False, "error": repr(e)})
        barrier.abort()  # a sender that never reached the start: the parent stops waiting


def send_all(broker, seeds, paths, window):
    """Runs one sender process per identity; returns (envelopes, seconds, client CPU s,
    broker CPU s)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(seeds) + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_pump, args=(broker.port, broker.http, s, p, window, barrier,
                                             results)) for s, p in zip(seeds, paths)]
    for p in procs:
        p.start()
    try:
        barrier.wait(START_TIMEOUT_S)
    except Exception:
        for p in procs:
            p.kill()
        raise BenchError("a sender did not connect: %r" % results.get(timeout=5))
    cpu0 = _proc_cpu_s(broker.proc.pid)
    got = [results.get(timeout=RUN_TIMEOUT_S) for _ in procs]
    cpu1 = _proc_cpu_s(broker.proc.pid)
    for p in procs:
        p.join(60)
    bad = [r for r in got if not r["ok"]]
    if bad:
        raise BenchError("sender failed: %s" % bad[0]["error"])
    total = sum(r["count"] for r in got)
    seconds = max(r["t1"] for r in got) - min(r["t0"] for r in got)
    return total, seconds, sum(r["cpu_s"] for r in got), cpu1 - cpu0


def _count(db_path):
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        resources = db.execute("SELECT count(*) FROM data_resources WHERE model = ?",
                               (MODEL_NAME,)).fetchone()[0]
        ledger = db.execute("SELECT count(*) FROM ledger").fetchone()[0]
    finally:
        db.close()
    return resources, ledger


def ingest(binary, data_bench, conns_list, envelopes, window, rounds, tmp, sync="always"):
    """Rows: one per (connections, kind), medians over rounds."""
    rng = random.Random(17)
    models = os.path.join(tmp, "models")
    write_model(models)
    reader = lc.Identity(bytes(rng.getrandbits(8) for _ in range(32)))
    rows = []
    for conns in conns_list:
        per = max(1, envelopes // conns)
        seeds = [bytes(rng.getrandbits(8) for _ in range(32)) for _ in range(conns)]
        files = {}
        for kind, member in (("typed", "_t"), ("plain", "xt")):
            d = os.path.join(tmp, "env-%d" % conns)
            os.makedirs(d, exist_ok=True)
            files[kind], _ = sign(data_bench, seeds, reader.id, per, member, 1000, d)
        runs = {"typed": [], "plain": []}
        for r in range(rounds):
            for kind in (("typed", "plain") if r % 2 == 0 else ("plain", "typed")):
                data = tempfile.mkdtemp(prefix="run-", dir=tmp)
                b = Broker(binary, data, models, reader.id, sync)
                try:
                    total, secs, client_cpu, broker_cpu = send_all(b, seeds, files[kind], window)
                finally:
                    b.stop()
                resources, ledger = _count(b.db())
                want = total if kind == "typed" else 0
                if resources != want or ledger != total:
                    raise BenchError("%s run: %d resources, %d ledger rows after %d acked "
                                     "envelopes" % (kind, resources, ledger, total))
                shutil.rmtree(data)
                runs[kind].append({"rate": total / secs, "client_cpu": client_cpu / secs,
                                   "broker_cpu": broker_cpu / secs, "count": total})
        row = {"connections": conns, "window": window, "envelopes": per * conns}
        for kind in runs:
            rates = sorted(x["rate"] for x in runs[kind])
            mid = sorted(runs[kind], key=lambda x: x["rate"])[len(rates) // 2]
            row[kind] = {"per_s": round(mid["rate"]), "runs": [round(x) for x in rates],
                         "broker_cpu_pct": round(100 * mid["broker_cpu"]),
                         "client_cpu_pct": round(100 * mid["client_cpu"])}
        row["ratio"] = row["typed"]["per_s"] / row["plain"]["per_s"]
        rows.append(row)
    return rows


def cache_key(resources, keys):
    trees = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD:src/store", "HEAD:src/data"],
                           capture_output=True, text=True)
    h = hashlib.sha256()
    h.update(trees.stdout.encode() if trees.returncode == 0 else b"no-git")
    h.update(json.dumps(MODEL, sort_keys=True).encode())
    h.update(b"%d/%d/%d" % (resources, keys, PAD_BYTES))
    return h.hexdigest()[:16]


def seed(binary, data_bench, cache_root, resources, keys, senders, window):
    """The cached directory for (code, model, sizes), seeded through the broker if missing.
    Returns (dir, meta)."""
    d = os.path.join(cache_root, cache_key(resources, keys))
    meta_path = os.path.join(d, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        meta["cached"] = True
        return d, meta
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    rng = random.Random(resources)
    reader = bytes(rng.getrandbits(8) for _ in range(32))
    seeds = [bytes(rng.getrandbits(8) for _ in range(32)) for _ in range(senders)]
    reader_id = lc.Identity(reader).id
    write_model(os.path.join(d, "models"))
    per = resources // senders
    with tempfile.TemporaryDirectory(prefix="sign-", dir=d) as envs:
        paths, sign_s = sign(data_bench, seeds, reader_id, per, "_t", keys, envs)
        b = Broker(binary, os.path.join(d, "data"), os.path.join(d, "models"), reader_id, "off")
        try:
            total, send_s, _, _ = send_all(b, seeds, paths, window)
        finally:
            b.stop()
    count, _ = _count(os.path.join(d, "data", "ledgermq.db"))
    if count != per * senders:
        raise BenchError("seeding stored %d resources of %d" % (count, per * senders))
    meta = {"resources": count, "keys": keys, "reader": reader.hex(), "sign_s": round(sign_s, 1),
            "send_s": round(send_s, 1), "senders": senders,
            "date": time.strftime("%Y-%m-%d %H:%MZ", time.gmtime())}
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f)
    os.rename(meta_path + ".tmp", meta_path)  # written last: a complete seed
    meta["cached"] = False
    return d, meta


def _pct(sorted_us, p):
    rank = max(1, int(p / 100.0 * len(sorted_us) + 0.999999))
    return sorted_us[rank - 1]


def _timed(conn, method, path, body, headers):
    t0 = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    return (time.perf_counter() - t0) * 1e6, resp.status, raw


def _lat(values_us):
    s = sorted(values_us)
    return {"p50_us": round(_pct(s, 50)), "p99_us": round(_pct(s, 99)), "max_us": round(s[-1])}


def query(binary, data_bench, d, meta, queries, limit):
    """GraphQL over HTTP on the seeded directory, then the bare SQL on its file."""
    reader = lc.Identity(bytes.fromhex(meta["reader"]))
    b = Broker(binary, os.path.join(d, "data"), os.path.join(d, "models"), reader.id, "always")
    try:
        token = lc.login(b.http, reader)
        host, port = b.http.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
        rng = random.Random(2026)
        gql, floor, over_limit = [], [], 0
        for i in range(queries + queries // 10):  # the first tenth warms up, untimed
            v = rng.randrange(meta["keys"])
            q = ("{ rl_bench_Item(filter: {k: {EQ: %d}}, limit: %d) { edges { node { "
                 "_permalink k n pad } } } }" % (v, limit))
            us, status, raw = _timed(conn, "POST", "/graphql", json.dumps({"query": q}), headers)
            res = json.loads(raw)
            edges = res.get("data", {}).get("rl_bench_Item", {}).get("edges") \
                if status == 200 and "errors" not in res else None
            # [data] graphql_max_ms (250 ms) refusing a query is counted, not fatal: a stall
            # of the machine can do it, and its time is in the latencies all the same.
            if status == 200 and "errors" in res and "longer than the limit" in \
                    res["errors"][0].get("message", ""):
                over_limit += 1
            elif edges is None or len(edges) != limit or any(e["node"]["k"] != v
                                                             for e in edges):
                raise BenchError("query k=%d: HTTP %d, %s" % (v, status, raw[:300]))
            us_floor, status, _ = _timed(conn, "GET", "/healthz", None, {})
            if status != 200:
                raise BenchError("GET /healthz: %d" % status)
            if i >= queries // 10:
                gql.append(us)
                floor.append(us_floor)
        conn.close()
    finally:
        b.stop()
    r = subprocess.run([data_bench, "sql", b.db(), MODEL_NAME, "$.k", str(meta["keys"]),
                        str(queries), str(limit)], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT_S)
    if r.returncode != 0:
        raise BenchError("data_bench sql failed: %s" % r.stderr.strip())
    sql = json.loads(r.stdout)
    if sql["rows_min"] != limit or sql["rows_max"] != limit:
        raise BenchError("bare SQL returned %d..%d rows, not %d" % (sql["rows_min"],
                                                                     sql["rows_max"], limit))
    return {"resources": meta["resources"], "keys": meta["keys"], "queries": queries,
            "limit": limit, "graphql": _lat(gql), "over_limit": over_limit, "healthz": _lat(floor), "sql": sql,
            "seed": meta}
