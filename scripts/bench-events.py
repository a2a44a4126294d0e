#!/usr/bin/python3
"""The event stream's cost and webhook delivery rate, against the real binary:

  for 0, 1 and 10 webhooks (each taking envelope.accepted, max_in_flight 16, all to one local
  node receiver, tests/js/webhook_receiver.mjs), K identities publish pre-signed envelopes as
  bench-ledger.py's append rate does (QoS 1, --sync always, acks after the durable commit);
  measured: envelopes accepted per second (the durable path's cost of the hooks), and events
  delivered per second to the receiver (from the first envelope sent to the last delivery
  answered 200), with a check that every endpoint got every event;
  and for bots (--bots 1, the default): a C bot on libledgermq (tests/tools/bot_bench) following
  the stream live while the same envelopes are published, then a new bot resyncing from 0 over
  everything recorded: events delivered per second to each (each bot must get every
  envelope.accepted event or the run fails).

    scripts/bench-events.py [--ledgermq build/ledgermq] [--envelopes 4000] [--rounds 3]
                            [--hooks 0,1,10] [--bots 1] [--bot-bench build/tests/bot_bench]
                            [--doc docs/BENCHMARKS.md]

Python standard library + Debian's python3-cryptography, node (the receiver).
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
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
    if hooks == RECORD:  # the stream recorded, no consumer: the recording's own cost
        return "[events]\nrecord = true\n"
    return "".join(
        "[webhook.h%d]\nurl = http://127.0.0.1:%d/h%d\nsecret = bench-secret-0123456789\n"
        "events = envelope.accepted\nmax_in_flight = 16\n" % (i, port, i) for i in range(hooks))


# In --hooks: no webhook, the event stream recorded all the same ([events] record = true).
RECORD = "record"


def one_run(a, hooks):
    receiver = Receiver()
    delivered = {}

    def after(http, result):
        want = result["envelopes"]
        deadline = time.time() + 300
        while hooks != RECORD and hooks > 0 and time.time() < deadline:
            s = receiver.stats()
            if all(s["paths"].get("/h%d" % i, 0) >= want for i in range(hooks)):
                delivered["seconds"] = s["last"] / 1000.0 - result["started"]
                delivered["events"] = sum(s["paths"].values())
                return
            time.sleep(0.05)
        if hooks != RECORD and hooks > 0:
            raise SystemExit("not every event was delivered: %r" % receiver.stats())

    try:
        r = bench_ledger.append_rate(a.ledgermq, a.envelopes, a.identities, a.window,
                                     extra_ini=hooks_ini(receiver.port, hooks), after=after)
    finally:
        receiver.close()
    out = {"hooks": hooks, "envelopes_per_s": r["envelopes_per_s"], "envelopes": r["envelopes"]}
    if hooks != RECORD and hooks > 0:
        out["events_delivered_per_s"] = round(delivered["events"] / delivered["seconds"])
    return out


class BotBench:
    """tests/tools/bot_bench (a bot on libledgermq's on_event) as one process: it stops once it
    has handled `accepted` envelope.accepted events."""

    def __init__(self, a, workdir, name, port, http, accepted):
        key = os.path.join(workdir, name + ".json")
        self.proc = subprocess.Popen(
            [a.bot_bench, "--key", key, "--state", os.path.join(workdir, name + "-state"),
             "--server", "127.0.0.1:%d" % port, "--http", http, "--accepted", str(accepted)],
            stdout=subprocess.PIPE, text=True)

    def first(self):
        """Waits for the first event handled (the bot is connected and caught up on nothing)."""
        return json.loads(self.proc.stdout.readline())["first"]

    def result(self):
        out, _ = self.proc.communicate(timeout=300)
        if self.proc.returncode != 0:
            raise SystemExit("bot_bench exited %d: %s" % (self.proc.returncode, out[-500:]))
        return json.loads(out.strip().splitlines()[-1])


def keygen(a, workdir, name):
    p = subprocess.run([a.ledgermq, "keygen", "--out", os.path.join(workdir, name + ".json")],
                       capture_output=True, text=True, check=True)
    return p.stdout.strip()


def bot_run(a, workdir):
    """Two bots on one broker: `live` follows the stream while the envelopes are published
    (events delivered per second from the first envelope sent to its last event), then `replay`,
    new, resyncs from 0 over everything recorded (from its first event to its last)."""
    ids = {n: keygen(a, workdir, n) for n in ("live", "replay")}
    bots = {}

    def before(port, http, _data_dir):
        bots["live"] = BotBench(a, workdir, "live", port, http, a.envelopes)
        bots["live"].first()  # its own session.started: connected and following
        bots["port"], bots["http"] = port, http

    def after(http, result):
        live = bots["live"].result()
        bots["live_per_s"] = round(live["events"] / (live["last"] - result["started"]))
        replay = BotBench(a, workdir, "replay", bots["port"], http, a.envelopes)
        r = replay.result()
        bots["replay_per_s"] = round(r["events"] / (r["last"] - r["first"]))
        bots["replay_cpu"] = round(r["cpu_s"] / (r["last"] - r["first"]), 2)
        bots["replay_events"] = r["events"]

    r = bench_ledger.append_rate(a.ledgermq, a.envelopes, a.identities, a.window,
                                 extra_ini="[bots]\nids = %s, %s\n" % (ids["live"],
                                                                        ids["replay"]),
                                 before=before, after=after)
    return {"hooks": "bot", "envelopes_per_s": r["envelopes_per_s"], "envelopes": r["envelopes"],
            "live_events_per_s": bots["live_per_s"], "replay_events_per_s": bots["replay_per_s"],
            "replay_events": bots["replay_events"], "replay_bot_cpu": bots["replay_cpu"]}


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
        dps = (statistics.median(r["events_delivered_per_s"] for r in rs)
               if h != RECORD and h > 0 else None)
        lines.append("| %s | %.0f | %.2f× | %s | %s |" % (
            "0, stream recorded" if h == RECORD else h, eps, eps / base, "%.0f" % dps if dps is not None else "—",
            ", ".join(str(r["envelopes_per_s"]) for r in rs)))
    one = [r for r in runs if r["hooks"] == 1]
    if one:
        ratio = statistics.median(r["envelopes_per_s"] for r in one) / base
        lines += ["", "Target: one webhook on every envelope costs at most 10%% of the "
                  "throughput: %s (%.0f%% of it kept)." % ("met" if ratio >= 0.9 else "NOT met",
                                                          ratio * 100)]
    bots = [r for r in runs if r["hooks"] == "bot"]
    if bots:
        hook1 = [r["events_delivered_per_s"] for r in runs if r["hooks"] == 1]
        lines += [
            "",
            "Bots (`tests/tools/bot_bench`, a C bot on libledgermq's `on_event`: the events of "
            "one read share one synchronous SQLite commit with their ids, acks per page and every "
            "100 events), same envelopes, one broker with two bots in `[bots] ids`: **live**, "
            "following the stream while the envelopes are published (events handled per second "
            "from the first envelope sent to its last event), then **resync from 0**, a new bot "
            "paging through every recorded event (%d: the envelope.accepted events and the "
            "sessions'), from its first event to its last; that bot process used %.0f%% of one "
            "CPU meanwhile (the rest of the time it waits). Beside them, one webhook's delivery "
            "rate from the table above." % (
                statistics.median(r["replay_events"] for r in bots),
                100 * statistics.median(r["replay_bot_cpu"] for r in bots)),
            "",
            "| consumer | envelopes/s while it runs | events delivered/s | runs (events/s) |",
            "| --- | --- | --- | --- |",
            "| bot, live | %.0f | %.0f | %s |" % (
                statistics.median(r["envelopes_per_s"] for r in bots),
                statistics.median(r["live_events_per_s"] for r in bots),
                ", ".join(str(r["live_events_per_s"]) for r in bots)),
            "| bot, resync from 0 | — | %.0f | %s |" % (
                statistics.median(r["replay_events_per_s"] for r in bots),
                ", ".join(str(r["replay_events_per_s"]) for r in bots)),
        ]
        if hook1:
            lines.append("| 1 webhook (above) | %.0f | %.0f | %s |" % (
                statistics.median(r["envelopes_per_s"] for r in runs if r["hooks"] == 1),
                statistics.median(hook1), ", ".join(str(x) for x in hook1)))
    lines += ["", "Rerun: `make bench-events`."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ledgermq", default=os.path.join(ROOT, "build", "ledgermq"))
    # 4,000: the default run (3 rounds of 0, 1, 10 webhooks and the bots) stays under 2 minutes.
    ap.add_argument("--envelopes", type=int, default=4000)
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hooks", default="0,%s,1,10" % RECORD,
                    help="webhook counts, comma-separated; %s: none, the stream recorded" % RECORD)
    ap.add_argument("--bots", type=int, default=1, help="1: also the bot run (0: none)")
    ap.add_argument("--bot-bench", help="tests/tools/bot_bench (default: beside --ledgermq, "
                    "tests/bot_bench)")
    ap.add_argument("--doc", help="write the results into this page's bench:events block")
    a = ap.parse_args()
    a.hook_counts = [h if h == RECORD else int(h) for h in a.hooks.split(",")]
    a.bot_bench = a.bot_bench or os.path.join(os.path.dirname(os.path.abspath(a.ledgermq)),
                                              "tests", "bot_bench")
    runs = []
    for _ in range(a.rounds):
        for h in a.hook_counts:  # alternating, so drift hits every configuration alike
            r = one_run(a, h)
            print(json.dumps(r), flush=True)
            runs.append(r)
        if a.bots:
            with tempfile.TemporaryDirectory() as workdir:
                r = bot_run(a, workdir)
            print(json.dumps(r), flush=True)
            runs.append(r)
    text = markdown(a, runs)
    print(text)
    if a.doc:
        benchdoc.write_block(a.doc, "events", text)


if __name__ == "__main__":
    main()
