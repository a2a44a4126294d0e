#!/usr/bin/python3
"""The event stream's cost and webhook delivery rate, against the real binary:

  for 0, 1 and 10 webhooks (each taking envelope.accepted, max_in_flight 16, all to one local
  node receiver, tests/js/webhook_receiver.mjs), K identities publish pre-signed envelopes as
  bench-ledger.py's append rate does (QoS 1, --sync always, acks after the durable commit);
  measured: envelopes accepted per second (the durable path's cost of the hooks), and events
  delivered per second to the receiver (from the first envelope sent to the last delivery
  answered 200), with a check that every endpoint got every event.

    scripts/bench-events.py [--ledgermq build/ledgermq] [--envelopes 8000] [--rounds 3]
                            [--hooks 0,1,10] [--doc docs/BENCHMARKS.md]

Python standard library + Debian's python3-cryptography, node (the receiver).
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import benchdoc  # noqa: E402  scripts/benchdoc.py

_spec = importlib.util.spec_from_file_location("bench_ledger",
                                               os.path.join(HERE, "bench-ledger.py"))
bench_ledger = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_ledger)


class Receiver:
    def __init__(self):
        self.proc = subprocess.Popen(["node", os.path.join(ROOT, "tests", "js",
                                                           "webhook_receiver.mjs")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def stats(self):
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        self.proc.wait(10)


def hooks_ini(port, hooks):
    return "".join(
        "[webhook.h%d]\nurl = http://127.0.0.1:%d/h%d\nsecret = bench-secret-0123456789\n"
        "events = envelope.accepted\nmax_in_flight = 16\n" % (i, port, i) for i in range(hooks))


def one_run(a, hooks):
    receiver = Receiver()
    delivered = {}

    def after(http, result):
        want = result["envelopes"]
        deadline = time.time() + 300
        while hooks > 0 and time.time() < deadline:
            s = receiver.stats()
            if all(s["paths"].get("/h%d" % i, 0) >= want for i in range(hooks)):
                delivered["seconds"] = s["last"] / 1000.0 - result["started"]
                delivered["events"] = sum(s["paths"].values())
                return
            time.sleep(0.05)
        if hooks > 0:
            raise SystemExit("not every event was delivered: %r" % receiver.stats())

    try:
        r = bench_ledger.append_rate(a.ledgermq, a.envelopes, a.identities, a.window,
                                     extra_ini=hooks_ini(receiver.port, hooks), after=after)
    finally:
        receiver.close()
    out = {"hooks": hooks, "envelopes_per_s": r["envelopes_per_s"], "envelopes": r["envelopes"]}
    if hooks > 0:
        out["events_delivered_per_s"] = round(delivered["events"] / delivered["seconds"])
    return out


def markdown(a, runs):
    version = subprocess.run([a.ledgermq, "version"], capture_output=True, text=True).stdout
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    by = {h: [r for r in runs if r["hooks"] == h] for h in a.hook_counts}
    base = statistics.median(r["envelopes_per_s"] for r in by[a.hook_counts[0]])
    lines = [
        "## Events: webhooks' cost to the durable path, and delivery rate",
        "",
        "Written by `make bench-events` (`scripts/bench-events.py`, %d rounds, medians), %s, %s "
        "(git %s), %d CPUs, `--sync always`. %d identities publish %d pre-signed envelopes "
        "(QoS 1, %d unacknowledged each, acks after the durable commit); each webhook takes "
        "`envelope.accepted` with `max_in_flight = 16`, all to one local node receiver answering "
        "200. Delivered: events answered by the receiver per second, from the first envelope "
        "sent to the last delivery; every endpoint must get every event or the run fails." % (
            a.rounds, time.strftime("%Y-%m-%d %H:%MZ", time.gmtime()), version.strip(), git,
            os.cpu_count() or 0, a.identities, a.envelopes, a.window),
        "",
        "| webhooks | envelopes/s | vs no webhook | events delivered/s | runs (envelopes/s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for h in a.hook_counts:
        rs = by[h]
        eps = statistics.median(r["envelopes_per_s"] for r in rs)
        dps = (statistics.median(r["events_delivered_per_s"] for r in rs) if h > 0 else None)
        lines.append("| %d | %.0f | %.2f× | %s | %s |" % (
            h, eps, eps / base, "%.0f" % dps if dps is not None else "—",
            ", ".join(str(r["envelopes_per_s"]) for r in rs)))
    one = [r for r in runs if r["hooks"] == 1]
    if one:
        ratio = statistics.median(r["envelopes_per_s"] for r in one) / base
        lines += ["", "Target: one webhook on every envelope costs at most 10%% of the "
                  "throughput: %s (%.0f%% of it kept)." % ("met" if ratio >= 0.9 else "NOT met",
                                                          ratio * 100)]
    lines += ["", "Rerun: `make bench-events`."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ledgermq", default=os.path.join(ROOT, "build", "ledgermq"))
    ap.add_argument("--envelopes", type=int, default=8000)
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hooks", default="0,1,10", help="webhook counts, comma-separated")
    ap.add_argument("--doc", help="write the results into this page's bench:events block")
    a = ap.parse_args()
    a.hook_counts = [int(h) for h in a.hooks.split(",")]
    runs = []
    for _ in range(a.rounds):
        for h in a.hook_counts:  # alternating, so drift hits every configuration alike
            r = one_run(a, h)
            print(json.dumps(r), flush=True)
            runs.append(r)
    text = markdown(a, runs)
    print(text)
    if a.doc:
        benchdoc.write_block(a.doc, "events", text)


if __name__ == "__main__":
    main()
