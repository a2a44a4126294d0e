#!/usr/bin/python3
"""Validation throughput of LedgerMQ's JSON Schema engine (src/schema) beside ajv, in one run:

  small   5 properties (integer, string, boolean, number, array of strings), closed object
  medium  a payment: nested objects (payer, payee, amount), an array of line items, formats
          (uuid, date-time, email) asserted on both sides, patterns, an enum, a $ref
  large   60 properties spread over $defs reached through $ref and allOf, closed with
          unevaluatedProperties: false

For each model INSTANCES objects are generated from a fixed seed (about 1 in 10 made invalid)
and written as JSON lines; then tests/tools/schema_bench (C, linked to lmq_schema) and
tests/js/schema_bench.mjs (node + ajv 8, compiled once, allErrors) each validate them round after
round for --seconds. Only validation is timed on both sides: JSON parsing and process start-up
are not. The two must give the same verdicts (valid/invalid counts), or the run fails.

The typed-object parts, "ingest" and "query" (scripts/bench_data_objects.py says exactly what
they do): typed-object envelopes/s acknowledged with a receipt beside the same envelopes naming
no model, and rl_T with an EQ filter on an indexed property over 1,000,000 resources seeded
through the broker (cached under --cache), over HTTP beside the bare SQL it compiles to.

    scripts/bench-data.py [--parts validation,ingest,query] [--quick] [--seconds 3]
        [--instances 500] [--envelopes 20000] [--connections 4,16] [--window 32] [--rounds 3]
        [--resources 1000000] [--queries 2000] [--cache build/bench-data-1m]
        [--bench build/tests/schema_bench] [--data-bench build/tests/data_bench]
        [--ledgermq build/ledgermq] [--json] [--doc docs/BENCHMARKS.md]

--quick: tiny sizes, a run of seconds, no doc written (tests/integration/test_bench_data.py).
Prints tables (and --json: one JSON line per result). Python standard library, plus Debian's
python3-cryptography for the typed-object parts (logins).
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchdoc  # noqa: E402  scripts/benchdoc.py
import bench_data_objects as bdo  # noqa: E402  scripts/bench_data_objects.py
ROOT = os.path.abspath(os.path.join(HERE, ".."))
JS_DIR = os.path.join(ROOT, "tests", "js")
SEED = 2020
SCHEMA_2020 = "https://json-schema.org/draft/2020-12/schema"
LARGE_PROPERTY_COUNT = 60


def small_schema():
    return {
        "$schema": SCHEMA_2020,
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "active": {"type": "boolean"},
            "score": {"type": "number", "minimum": 0, "maximum": 100},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        },
        "required": ["id", "name"],
        "additionalProperties": False,
    }


def small_instance(rng):
    return {"id": rng.randint(1, 10 ** 6), "name": "sensor-%d" % rng.randint(0, 999),
            "active": rng.random() < 0.5, "score": round(rng.uniform(0, 100), 2),
            "tags": ["t%d" % i for i in range(rng.randint(0, 5))]}


def medium_schema():
    party = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "email": {"type": "string", "format": "email"},
            "account": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"},
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"}, "city": {"type": "string"},
                    "postcode": {"type": "string", "maxLength": 10},
                    "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                },
                "required": ["city", "country"],
                "additionalProperties": False,
            },
        },
        "required": ["name", "account"],
    }
    return {
        "$schema": SCHEMA_2020,
        "$defs": {"party": party},
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "created": {"type": "string", "format": "date-time"},
            "status": {"enum": ["pending", "settled", "failed", "refunded"]},
            "amount": {
                "type": "object",
                "properties": {
                    "value": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                },
                "required": ["value", "currency"],
                "additionalProperties": False,
            },
            "payer": {"$ref": "#/$defs/party"},
            "payee": {"$ref": "#/$defs/party"},
            "items": {
                "type": "array", "minItems": 1, "maxItems": 50,
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4,8}$"},
                        "qty": {"type": "integer", "minimum": 1},
                        "price": {"type": "number", "minimum": 0},
                    },
                    "required": ["sku", "qty", "price"],
                },
            },
            "note": {"type": "string", "maxLength": 280},
        },
        "required": ["id", "created", "status", "amount", "payer", "payee", "items"],
    }


def _party(rng):
    return {"name": "Person %d" % rng.randint(1, 9999),
            "email": "user%d@example.com" % rng.randint(1, 9999),
            "account": "DE%02d%s" % (rng.randint(0, 99), "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(18))),
            "address": {"street": "%d Main St" % rng.randint(1, 999), "city": "Berlin",
                        "postcode": "%05d" % rng.randint(0, 99999), "country": "DE"}}


def medium_instance(rng):
    return {
        "id": "%08x-%04x-4%03x-a%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                               rng.getrandbits(12), rng.getrandbits(12),
                                               rng.getrandbits(48)),
        "created": "2026-%02d-%02dT%02d:%02d:%02dZ" % (rng.randint(1, 12), rng.randint(1, 28),
                                                      rng.randint(0, 23), rng.randint(0, 59),
                                                      rng.randint(0, 59)),
        "status": rng.choice(["pending", "settled", "failed", "refunded"]),
        "amount": {"value": rng.randint(1, 10 ** 6) / 100, "currency": "EUR"},
        "payer": _party(rng), "payee": _party(rng),
        "items": [{"sku": "ABC-%06d" % rng.randint(0, 999999), "qty": rng.randint(1, 9),
                   "price": rng.randint(0, 10 ** 5) / 100} for _ in range(rng.randint(1, 6))],
        "note": "order %d" % rng.randint(0, 10 ** 6),
    }


def _large_kind(i):
    return ["money", "contact", "int", "str", "flag", "tags"][i % 6]


def large_schema():
    defs = {
        "money": {"type": "object", "properties": {
            "value": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}},
            "required": ["value", "currency"], "additionalProperties": False},
        "contact": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 64},
            "phone": {"type": "string", "pattern": "^\\+?[0-9 ]{6,20}$"}},
            "required": ["name"]},
        "int": {"type": "integer", "minimum": 0, "maximum": 1000000},
        "str": {"type": "string", "maxLength": 128},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    }
    half = LARGE_PROPERTY_COUNT // 2
    first = {"f%02d" % i: {"$ref": "#/$defs/" + _large_kind(i)} for i in range(half)}
    second = {"f%02d" % i: {"$ref": "#/$defs/" + _large_kind(i)}
              for i in range(half, LARGE_PROPERTY_COUNT)}
    defs["base"] = {"type": "object", "properties": first, "required": ["f00", "f01"]}
    return {
        "$schema": SCHEMA_2020,
        "$defs": defs,
        "allOf": [{"$ref": "#/$defs/base"}],
        "properties": second,
        "unevaluatedProperties": False,
    }


def large_instance(rng):
    out = {}
    for i in range(LARGE_PROPERTY_COUNT):
        kind = _large_kind(i)
        if i > 1 and rng.random() < 0.1:
            continue
        out["f%02d" % i] = {
            "money": lambda: {"value": rng.randint(0, 10 ** 6) / 100, "currency": "USD"},
            "contact": lambda: {"name": "n%d" % rng.randint(0, 99), "phone": "+49 30 1234567"},
            "int": lambda: rng.randint(0, 10 ** 6),
            "str": lambda: "s" * rng.randint(0, 40),
            "flag": lambda: rng.random() < 0.5,
            "tags": lambda: ["a%d" % k for k in range(rng.randint(0, 4))],
        }[kind]()
    return out


def break_instance(rng, inst):
    """One invalid variant: a member of the wrong type, an unknown member or a missing one."""
    inst = json.loads(json.dumps(inst))
    key = rng.choice(sorted(inst))
    pick = rng.random()
    if pick < 0.4:
        inst[key] = [] if not isinstance(inst[key], list) else "x"
    elif pick < 0.7:
        inst["unexpected_member"] = 1
    else:
        for k in ("id", "f00"):  # required in small, medium and large
            inst.pop(k, None)
    return inst


MODELS = [("small", small_schema, small_instance, False),
          ("medium", medium_schema, medium_instance, True),
          ("large", large_schema, large_instance, False)]


def run_json(argv, timeout_s):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise SystemExit("bench-data: %s failed (exit %d): %s" % (argv[0], r.returncode,
                                                                  r.stderr.strip()))
    return json.loads(r.stdout.strip().splitlines()[-1])


def validation(args):
    node = shutil.which("node")
    if node is None:
        raise SystemExit("bench-data: node is not installed (scripts/install-deps.sh)")
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "npm-deps.sh")], check=True)
    if not os.path.exists(args.bench):
        raise SystemExit("bench-data: no %s (build first: make build)" % args.bench)
    min_ms = str(int(args.seconds * 1000))
    timeout_s = args.seconds * 3 + 60
    rows = []
    with tempfile.TemporaryDirectory(prefix="lmq-bench-data.") as tmp:
        for name, schema_fn, instance_fn, formats in MODELS:
            rng = random.Random("%d-%s" % (SEED, name))
            schema_path = os.path.join(tmp, name + ".schema.json")
            inst_path = os.path.join(tmp, name + ".jsonl")
            with open(schema_path, "w") as f:
                json.dump(schema_fn(), f)
            with open(inst_path, "w") as f:
                for _ in range(args.instances):
                    inst = instance_fn(rng)
                    if rng.random() < 0.1:
                        inst = break_instance(rng, inst)
                    f.write(json.dumps(inst) + "\n")
            flag = ["--assert-formats"] if formats else []
            ours = run_json([args.bench, schema_path, inst_path, min_ms] + flag, timeout_s)
            ajv = run_json([node, os.path.join(JS_DIR, "schema_bench.mjs"), schema_path,
                            inst_path, min_ms] + flag, timeout_s)
            if (ours["valid"], ours["invalid"]) != (ajv["valid"], ajv["invalid"]):
                raise SystemExit("bench-data: %s: verdicts differ: ledgermq %d valid / %d "
                                 "invalid, ajv %d / %d" % (name, ours["valid"], ours["invalid"],
                                                          ajv["valid"], ajv["invalid"]))
            size = os.path.getsize(inst_path) / args.instances
            rows.append((name, args.instances, ours["invalid"], size, ours, ajv))
    with open(os.path.join(JS_DIR, "node_modules", "ajv", "package.json")) as f:
        ajv_version = json.load(f)["version"]
    node_version = subprocess.run([node, "--version"], capture_output=True,
                                  text=True).stdout.strip()
    print("JSON Schema validation, objects/s (validation only; parsing and start-up not timed)")
    print("ajv %s in node %s: Ajv2020, allErrors, compiled once; medium asserts formats on both "
          "sides (ajv-formats full)" % (ajv_version, node_version))
    print("%s, %d cores, %s, %s" % (platform.machine(), os.cpu_count() or 0,
                                    platform.processor() or platform.platform(),
                                    time.strftime("%Y-%m-%d")))
    print("%-7s %9s %8s %10s %14s %14s %8s" % ("model", "instances", "invalid", "bytes/obj",
                                               "ledgermq", "ajv", "ratio"))
    for name, count, invalid, size, ours, ajv in rows:
        print("%-7s %9d %8d %10.0f %14.0f %14.0f %7.2fx" % (
            name, count, invalid, size, ours["objects_per_s"], ajv["objects_per_s"],
            ours["objects_per_s"] / ajv["objects_per_s"]))
    if args.json:
        for name, count, invalid, size, ours, ajv in rows:
            print(json.dumps({"model": name, "instances": count, "ledgermq": ours, "ajv": ajv}))
    if args.doc and not args.quick:
        git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip() or "?"
        lines = ["## Data: JSON Schema validation beside ajv", "",
                 "Written by `make bench-data` (`scripts/bench-data.py`), %s, git %s, %d CPUs. "
                 "Objects validated per second, validation only (parsing and start-up not "
                 "timed), %g s per model and engine; ajv %s in node %s (Ajv2020, allErrors, "
                 "compiled once); the medium model asserts formats on both sides. Both engines "
                 "must give the same valid/invalid counts or the run fails." % (
                     time.strftime("%Y-%m-%d %H:%MZ", time.gmtime()), git, os.cpu_count() or 0,
                     args.seconds, ajv_version, node_version),
                 "", "| model | instances | invalid | bytes/object | ledgermq | ajv | ledgermq / ajv |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, count, invalid, size, ours, ajv in rows:
            lines.append("| %s | %d | %d | %.0f | %.0f | %.0f | %.2f× |" % (
                name, count, invalid, size, ours["objects_per_s"], ajv["objects_per_s"],
                ours["objects_per_s"] / ajv["objects_per_s"]))
        met = [name for name, _, _, _, ours, ajv in rows
               if ours["objects_per_s"] >= ajv["objects_per_s"]]
        missed = [name for name, _, _, _, ours, ajv in rows if name not in met]
        verdict = ("met for every model" if not missed else "not met for any model" if not met
                   else "met for %s, not for %s" % (", ".join(met), " and ".join(missed)))
        lines += ["", "The target is ledgermq ≥ ajv: %s; ajv compiles each schema to JavaScript "
                  "that V8 compiles to machine code, ledgermq walks its compiled nodes. Rerun: "
                  "`make bench-data`." % verdict]
        benchdoc.write_block(args.doc, "data", "\n".join(lines))



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="validation,ingest,query",
                    help="comma-separated: validation, ingest, query")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of seconds: tiny sizes (the figures mean nothing)")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "tests", "schema_bench"))
    ap.add_argument("--seconds", type=float, default=3.0, help="per model and engine")
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--ledgermq", default=os.path.join(ROOT, "build", "ledgermq"))
    ap.add_argument("--data-bench", default=os.path.join(ROOT, "build", "tests", "data_bench"))
    ap.add_argument("--envelopes", type=int, default=20000, help="ingest: per run")
    ap.add_argument("--connections", default="4,16", help="ingest: identities, one run each")
    ap.add_argument("--window", type=int, default=32, help="ingest: unacknowledged per sender")
    ap.add_argument("--rounds", type=int, default=3, help="ingest: runs of each kind")
    ap.add_argument("--ingest-sync", default="always", choices=["always", "off"],
                    help="ingest: the broker's --sync (off: to see what the fsyncs cost)")
    ap.add_argument("--resources", type=int, default=1000000, help="query: seeded resources")
    ap.add_argument("--queries", type=int, default=2000, help="query: timed queries")
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "bench-data-1m"),
                    help="query: where seeded data directories are kept")
    ap.add_argument("--results", default=os.path.join(ROOT, "build", "bench-data-results.json"),
                    help="the typed-object parts' raw results are written here")
    ap.add_argument("--redoc", action="store_true", help="measure nothing: rewrite the "
                    "bench:data-objects block of --doc from --results")
    ap.add_argument("--json", action="store_true", help="also print one JSON line per result")
    ap.add_argument("--doc", help="also write the tables into this page's bench:data and "
                    "bench:data-objects blocks (make bench-data: docs/BENCHMARKS.md)")
    args = ap.parse_args()
    if args.redoc:
        if not args.doc:
            raise SystemExit("bench-data: --redoc needs --doc")
        with open(args.results) as f:
            res = json.load(f)
        benchdoc.write_block(args.doc, "data-objects", objects_doc(res))
        return 0
    parts = set(args.parts.split(","))
    if not parts <= {"validation", "ingest", "query"}:
        raise SystemExit("bench-data: --parts takes validation, ingest, query")
    if args.quick:
        args.seconds, args.instances = 0.2, 50
        args.envelopes, args.rounds = 200, 1
        args.resources, args.queries = 2000, 100
    if "validation" in parts:
        validation(args)
    if parts & {"ingest", "query"}:
        if not os.path.exists(args.data_bench) or not os.path.exists(args.ledgermq):
            raise SystemExit("bench-data: no %s or %s (build first: make build)" % (
                args.data_bench, args.ledgermq))
        try:
            objects(args, parts)
        except bdo.BenchError as e:
            raise SystemExit("bench-data: %s" % e)
    return 0


def objects(args, parts):
    ingest, query = None, None
    if "ingest" in parts:
        conns = [int(c) for c in args.connections.split(",")]
        with tempfile.TemporaryDirectory(prefix="lmq-bench-ingest.") as tmp:
            ingest = bdo.ingest(args.ledgermq, args.data_bench, conns, args.envelopes,
                                args.window, args.rounds, tmp, args.ingest_sync)
        print("Ingest, envelopes/s acknowledged with a receipt (--sync %s), medians of %d"
              % (args.ingest_sync, args.rounds))
        print("%5s %6s %9s %9s %9s %7s" % ("conns", "window", "envelopes", "typed", "plain",
                                          "typed/plain"))
        for r in ingest:
            print("%5d %6d %9d %9d %9d %6.2f" % (r["connections"], r["window"], r["envelopes"],
                                                 r["typed"]["per_s"], r["plain"]["per_s"],
                                                 r["ratio"]))
            if args.json:
                print(json.dumps({"ingest": r}))
    if "query" in parts:
        keys = max(1, args.resources // 100)
        t0 = time.time()
        d, meta = bdo.seed(args.ledgermq, args.data_bench, args.cache, args.resources, keys,
                           16 if args.resources >= 16 * 100 else 1, args.window)
        if not meta["cached"]:
            print("seeded %d resources in %.0f s (signing %.0f s, sending %.0f s) into %s" % (
                meta["resources"], time.time() - t0, meta["sign_s"], meta["send_s"], d))
        query = bdo.query(args.ledgermq, args.data_bench, d, meta, args.queries, 50)
        g, s = query["graphql"], query["sql"]
        print("rl_bench_Item(filter: {k: {EQ: v}}, limit: 50) over %d resources, %d queries" % (
            query["resources"], query["queries"]))
        print("  POST /graphql   p50 %6d us  p99 %6d us  max %6d us" % (
            g["p50_us"], g["p99_us"], g["max_us"]))
        print("  GET /healthz    p50 %6d us  p99 %6d us  (the HTTP + client floor)" % (
            query["healthz"]["p50_us"], query["healthz"]["p99_us"]))
        print("  bare SQL        p50 %6.0f us  p99 %6.0f us  (prepared each time: p50 %.0f, "
              "p99 %.0f)" % (s["step_p50_us"], s["step_p99_us"], s["prepare_p50_us"],
                             s["prepare_p99_us"]))
        print("  plan: %s" % s["plan"])
        if args.json:
            print(json.dumps({"query": query}))
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    res = {"ingest": ingest, "query": query, "window": args.window, "rounds": args.rounds,
           "sync": args.ingest_sync,
           "when": time.strftime("%Y-%m-%d %H:%MZ", time.gmtime()), "git": git,
           "load": round(os.getloadavg()[0], 1), "quick": args.quick}
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(res, f)
    if args.doc and not args.quick:
        benchdoc.write_block(args.doc, "data-objects", objects_doc(res))


def _verdict(ok, text_ok, text_miss):
    return text_ok if ok else text_miss


def objects_doc(res):
    ingest, query = res["ingest"], res["query"]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out = ["## Data: typed-object ingest and the rl_T query at scale", "",
           "Written by `make bench-data` (`scripts/bench-data.py`, the typed-object parts in "
           "`scripts/bench_data_objects.py`), %s, git %s, %d CPUs (%s), shared with other work "
           "(load average %.1f at the end)." % (
               res["when"], res["git"], os.cpu_count() or 0, cpu, res["load"])]
    if ingest:
        out += ["", "### Ingest", "",
                "Envelopes per second durably accepted: the sender received the ack with its "
                "receipt on `id/<me>/ack`. K identities, each its own process and MQTT 5 "
                "connection, publish envelopes pre-signed by `tests/tools/data_bench` (the "
                "project's envelope builder; signing is not timed), %d unacknowledged each; "
                "`--sync %s`, a fresh broker and data directory per run, the kinds "
                "alternating, %d runs each, medians. *typed*: body `{\"_t\": \"bench.Item\", "
                "\"k\": .., \"n\": .., \"pad\": 64 bytes}`, validated against the model "
                "(k is `x-index`) and stored as a resource. *plain*: the same bytes with `xt` "
                "for `_t`, so the body names no model and is a plain envelope: same size, same "
                "broker (the model loaded), same connections. Every run checks every seq was "
                "acked once, nothing was rejected, and the store holds N resources (typed) or "
                "none (plain) and N ledger rows. CPU: broker and senders over the run (200 %% = "
                "both cores)." % (res["window"], res.get("sync", "always"), res["rounds"]), "",
                "| identities | envelopes | typed /s | plain /s | typed / plain | runs typed "
                "| runs plain | CPU broker / senders, typed |", "| --- | --- | --- | --- | --- "
                "| --- | --- | --- |"]
        for r in ingest:
            out.append("| %d | %d | %d | %d | %.2f | %s | %s | %d %% / %d %% |" % (
                r["connections"], r["envelopes"], r["typed"]["per_s"], r["plain"]["per_s"],
                r["ratio"], ", ".join(map(str, r["typed"]["runs"])),
                ", ".join(map(str, r["plain"]["runs"])), r["typed"]["broker_cpu_pct"],
                r["typed"]["client_cpu_pct"]))
        worst = min(r["ratio"] for r in ingest)
        out += ["", _verdict(worst >= 0.9, "Target typed ≥ 90 %% of plain: met (lowest %.2f)."
                             % worst, "Target typed ≥ 90 %% of plain: **not met** (lowest "
                             "%.2f). %s" % (worst, INGEST_MISS))]
    if query:
        g, s, seed = query["graphql"], query["sql"], query["seed"]
        ratio = g["p99_us"] / s["prepare_p99_us"]
        ratio50 = g["p50_us"] / s["prepare_p50_us"]
        out += ["", "### rl_T EQ over %s resources" % format(query["resources"], ","), "",
                "`rl_bench_Item(filter: {k: {EQ: v}}, limit: %d) { edges { node { _permalink k n "
                "pad } } }` by POST /graphql with the bearer token of a `[data] readers_all` "
                "identity, one keep-alive connection, %d queries (after %d untimed), v varying "
                "over %d values (each held by about %d resources, so every page is full: the "
                "script checks %d edges, all with k = v). Client: Python's http.client on the "
                "same machine; `GET /healthz` between the queries shows that floor. Bare SQL: "
                "the statement the query compiles to (`store_data_query_sql`), run by "
                "`data_bench sql` on the same SQLite file, read-only, every column of every row "
                "read, with the same number of queries." % (
                    query["limit"], query["queries"], query["queries"] // 10, query["keys"],
                    query["resources"] // query["keys"], query["limit"]), "",
                "| | p50 µs | p99 µs | max µs |", "| --- | --- | --- | --- |",
                "| POST /graphql (HTTP, token, GraphQL, JSON)%s | %d | %d | %d |" % (
                    "" if not query.get("over_limit") else ", %d refused by the 250 ms "
                    "`graphql_max_ms` (warm-up included)" % query["over_limit"],
                    g["p50_us"], g["p99_us"], g["max_us"]),
                "| GET /healthz (the HTTP + client floor) | %d | %d | %d |" % (
                    query["healthz"]["p50_us"], query["healthz"]["p99_us"],
                    query["healthz"]["max_us"]),
                "| bare SQL, prepared each time (as the server does) | %.0f | %.0f | %.0f |" % (
                    s["prepare_p50_us"], s["prepare_p99_us"], s["prepare_max_us"]),
                "| bare SQL, prepared once | %.0f | %.0f | %.0f |" % (
                    s["step_p50_us"], s["step_p99_us"], s["step_max_us"]), "",
                "The SQL: `%s`; its plan: `%s`." % (s["sql"], s["plan"]), "",
                "Seeding: %s resources from %d identities through the broker (signed envelopes, "
                "acks awaited; `--sync off`, which changes no table or index), signing %.0f s + "
                "sending %.0f s on %s; cached in `build/bench-data-1m/KEY/` (KEY: the git trees "
                "of src/store and src/data at HEAD, the model, the sizes), so a rerun reuses it." % (
                    format(seed["resources"], ","), seed["senders"], seed["sign_s"],
                    seed["send_s"], seed["date"]), "",
                _verdict(g["p99_us"] <= 5000, "Target p99 ≤ 5 ms: met (%.2f ms)." % (
                    g["p99_us"] / 1000), "Target p99 ≤ 5 ms: **not met** (%.2f ms)." % (
                    g["p99_us"] / 1000)) + " " +
                _verdict(max(ratio, ratio50) <= 2, "Within 2× of the bare SQL (prepared each "
                         "time): met (p50 %.1f×, p99 %.1f×)." % (ratio50, ratio),
                         "Within 2× of the bare SQL (prepared each time): **not met** (p50 "
                         "%.1f×, p99 %.1f×). %s" % (ratio50, ratio, QUERY_MISS)),
                "", NOISE]
    out += ["", "Rerun: `make bench-data` (`BENCH_DATA_ARGS=\"--parts ingest,query\"` for these "
            "parts alone)."]
    return "\n".join(out)


# Why a target is missed, from profiling (docs/BENCHMARKS.md repeats it with the figures).
INGEST_MISS = (
    "Where it goes: 16 identities x 1,000 envelopes of each kind under `perf record -p BROKER`: "
    "the broker used 5.2 s of CPU for typed objects against 3.2 s for plain envelopes, the "
    "difference being the kernel (1.7 s against 0.3 s: SQLite copying WAL and database pages in "
    "and out) and SQLite (0.6 s against 0.2 s), not validation (the schema engine is not among "
    "the top symbols) nor signatures (the same for both kinds); yet the broker stays well under "
    "its two cores: the run waits on the durable commits. Beside its ledger row, a typed object "
    "inserts a version, a resource and two reader rows, and five of those index entries are keyed "
    "by a SHA-256 (data_versions' link and its by_resource index, data_resources' permalink, "
    "data_readers_by_resource twice), so each lands on a random page: a group commit writes and "
    "fsyncs several WAL pages per object where a plain envelope dirties about one. Tried: a "
    "32 MiB page cache for the writer connection (PRAGMA cache_size) cut the broker's CPU for "
    "typed objects by about 15 % but not the wall time, so it is not kept. Not a cheap fix: it "
    "takes fewer hash-keyed B-trees per object (rows keyed by the ledger index, the hashes looked "
    "up through one index), a store schema change left for later. With `--ingest-sync off` the "
    "same run gave 0.75 (16 identities, 10,000 envelopes, one run).")
QUERY_MISS = (
    "Where the time goes: `perf record -g -p BROKER` during 1,500 of these queries on the "
    "1,000,000-resource set, shares of the broker's CPU: libc 23 % (mostly malloc/free), the "
    "kernel 20 % (SQLite reading pages out of the page cache: a copy per page), SQLite 19 %, "
    "jansson 19 %, OpenSSL 13 %, the broker's own code 5 %. Per request the server verifies the "
    "bearer token's Ed25519 signature (OpenSSL builds a key object each time); per row it parses "
    "the stored body into a jansson tree, adds the eight reserved members, the GraphQL engine "
    "copies the four selected ones into the result tree, and the response is serialized: tens of "
    "allocations a row. The bare statement does none of that, and an HTTP round trip alone "
    "(GET /healthz, Python client) costs about what the whole statement does, so 2x of the bare "
    "SQL is out of reach for a request over HTTP. What would close most of the gap: writing the "
    "selected members straight from the stored canonical body (no trees) and caching verified "
    "tokens (src/pipeline, outside the data layer); neither is a cheap fix and neither is done "
    "here. Tried and not kept: `PRAGMA mmap_size` on the store's reader connection took the bare "
    "statement's p50 (prepared once) from about 145 to 100-128 µs, a few per cent of the GraphQL "
    "request, not worth mapping the database (an I/O error would become SIGBUS).")
NOISE = (
    "p99 and max move with the machine's load (other work shares the 2 cores and preempts the "
    "process for milliseconds): back-to-back runs of the same bare SQL pass gave p99 from 0.25 to "
    "24 ms while p50 stayed within 140-300 µs; p50 is the steadier comparison. The four "
    "complete query runs on 2026-12-07 between 02:40Z and 03:02Z, on a machine shared with other "
    "builds and fuzzers, gave POST /graphql p50 1.0-3.3 ms and p99 3.5-54 ms, the bare statement "
    "(prepared each time) p50 160-240 µs; over five ingest runs the ratio typed / plain ranged "
    "0.41-0.98 (two of those runs were of a build with the 32 MiB writer cache tried above). Not "
    "explained yet: the slow GraphQL runs (p50 near 3 ms, stalls up to 0.3 s) came with a low "
    "load average too, and a check at load 0.7 gave p50 1.5-2.1 ms flat over the 45 s after a "
    "start (the broker idle between queries), so it is not a start-up phase; the next step is to "
    "profile a slow run beside a fast one (the virtual machine's share of the host is a suspect).")


if __name__ == "__main__":
    sys.exit(main())
