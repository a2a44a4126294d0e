#!/usr/bin/python3
"""Power-loss loop: the crash workload (crashlib.py) with the broker under the
power-loss shim, so every SIGKILL also loses what was written but not fsynced.

The broker runs with LD_PRELOAD=build-crash/libpowerloss.so (tests/crash/build.sh
builds it; powerloss.c says what it models). The shim reports every file it
tracks; with a durable store the run fails unless the shim tracked the
database and its WAL, so a shim that is not in the path cannot make the run
pass.

  powerloss.py --bin build/ledgermq --cycles 20 --seed 1 [--sync always|off] [--expect-loss]
               [--tear]   also let the shim tear a random fsync and _exit(137)
               [--shim PATH]

Control: --sync off --expect-loss must detect losses (nothing is ever fsynced).
Prints a summary and "N passed, M failed"; exit 0 on success.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SHIM = os.path.join(HERE, "..", "..", "build-crash", "libpowerloss.so")
TEAR_MAX_FSYNCS = 400  # the torn fsync is one of the first N of a run


class PowerLoss(crashlib.Harness):
    def __init__(self, opts):
        super().__init__(opts, "powerloss")
        self.shim = os.path.abspath(opts.shim)
        self.report = os.path.join(self.workdir, "shim-report.log")
        self.tracked = set()
        self.tears = []

    def server_env(self, label):
        env = {"LD_PRELOAD": self.shim, "POWERLOSS_REPORT": self.report,
               "POWERLOSS_SEED": str(self.opts.seed * 1000003 + self.cycle)}
        # The setup and the final run end with SIGTERM: no tear there.
        if self.opts.tear and label not in ("setup", "final"):
            env["POWERLOSS_TEAR"] = "1"
            env["POWERLOSS_TEAR_MAX"] = str(TEAR_MAX_FSYNCS)
        return env

    def after_stop(self, label):
        try:
            with open(self.report, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
            os.unlink(self.report)
        except FileNotFoundError:
            return
        for line in lines:
            if line.startswith("open "):
                self.tracked.add(os.path.basename(line[5:]))
            elif line.startswith("tear "):
                self.tears.append("cycle %s: %s" % (label, line[5:]))

    def verify(self, retained):
        if self.server.store not in (None, "memory"):
            if not any(t.endswith(".db") for t in self.tracked) or not any(
                    t.endswith("-wal") for t in self.tracked):
                self.fail_event("the shim did not track a .db and a -wal file (tracked: %s): "
                                "its simulation was not in the path" % sorted(self.tracked))
        lines, problems, loss_count = super().verify(retained)
        lines.insert(0, "shim: %s; tracked files: %s; torn fsyncs: %d" % (
            self.shim, ", ".join(sorted(self.tracked)) or "none", len(self.tears)))
        lines[1:1] = ["  torn " + t for t in self.tears[:crashlib.EXAMPLES_MAX]]
        return lines, problems, loss_count


def main():
    argv = sys.argv[1:]
    shim = DEFAULT_SHIM
    if "--shim" in argv:
        i = argv.index("--shim")
        shim = argv[i + 1]
        del argv[i:i + 2]
    opts = crashlib.parse_args(__doc__.splitlines()[0], argv)
    opts.shim = shim
    if not os.path.exists(shim):
        print("no shim at %s: run tests/crash/build.sh first" % shim)
        print("0 passed, 1 failed")
        return 1
    return PowerLoss(opts).run()


if __name__ == "__main__":
    sys.exit(main())
