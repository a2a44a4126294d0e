#!/usr/bin/python3
"""kill -9 loop: the crash workload (crashlib.py) with a plain SIGKILL ending each cycle.

A SIGKILL loses what the broker had in memory but not what it wrote: the page
cache survives. So this proves recovery and "ack only after the commit", not
fsync; powerloss.py covers fsync.

  killloop.py --bin build/ledgermq --cycles 20 --seed 1 [--sync always|off] [--expect-loss]

Prints a summary and "N passed, M failed"; exit 0 when nothing acknowledged
was lost (with --expect-loss: exit 0 only when a loss was detected).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashlib  # noqa: E402


def main():
    opts = crashlib.parse_args(__doc__.splitlines()[0])
    return crashlib.Harness(opts, "killloop").run()


if __name__ == "__main__":
    sys.exit(main())
