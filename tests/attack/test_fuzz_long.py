"""The stateful fuzzer (tests/integration/statefuzz.py), long form: many seeds and steps.

  LMQ_FUZZ_SEED   first seed (default: from the clock, printed)
  LMQ_FUZZ_SEEDS  how many consecutive seeds (default 10)
  LMQ_FUZZ_STEPS  steps per seed (default 1500)
  LMQ_FUZZ_PENDING  findings whose invariants stay relaxed (default: statefuzz.PENDING_FINDINGS)

A failing seed prints its step log and the command line that replays it."""

import os
import time

import pytest

import statefuzz

pytestmark = pytest.mark.ledgermq_only

FIRST = int(os.environ.get("LMQ_FUZZ_SEED") or int(time.time()) % 1000000)
COUNT = int(os.environ.get("LMQ_FUZZ_SEEDS") or 10)
STEPS = int(os.environ.get("LMQ_FUZZ_STEPS") or 1500)


@pytest.mark.parametrize("seed", range(FIRST, FIRST + COUNT))
def test_stateful_fuzz_long(start_broker, tmp_path, seed):
    print("LMQ_FUZZ_SEED=%d LMQ_FUZZ_STEPS=%d" % (seed, STEPS))
    statefuzz.run_seed(start_broker, tmp_path, seed, STEPS)
