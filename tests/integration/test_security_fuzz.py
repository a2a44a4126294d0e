"""The stateful fuzzer (statefuzz.py), short form: a fixed set of seeds, each a random walk of
connections, sessions, takeovers, wills, subscriptions, retained messages, envelopes and
restarts against the real binary, every received packet checked against the model's
invariants (docs/SECURITY.md, "Attacks the tests perform"). A failure prints the seed and the
step log; `LMQ_FUZZ_SEED=<seed> LMQ_FUZZ_STEPS=<n> make test-attack` (tests/attack/
test_fuzz_long.py) replays it."""

import pytest

import statefuzz

pytestmark = pytest.mark.ledgermq_only

# Bounded to ~40 s in all on a loaded machine: 4 seeds of 250 steps and two control runs take
# ~14 s (RelWithDebInfo) and ~20 s (ASan + UBSan build, make test-asan) on 2 busy cores.
SEEDS = [1, 2, 3, 8]  # 8 finds finding 1 (step 35) on the code before its fix
STEPS = 250
CONTROL_SEED = 2


@pytest.mark.parametrize("seed", SEEDS)
def test_stateful_fuzz_keeps_the_invariants(start_broker, tmp_path, seed):
    f = statefuzz.run_seed(start_broker, tmp_path, seed, STEPS)
    # The walk must have done what it is for: otherwise it proves nothing.
    assert f.stats.get("connect", 0) >= 10 and f.stats.get("deliveries", 0) >= 10, f.summary()


# A check that cannot fail is worse than none: break the broker's promises on purpose and the
# walk must say so. "wipe": SIGKILL and an empty data directory half way (persistent sessions,
# queued messages and the ledger vanish); "swallow": one client acknowledges an owed message
# without the model seeing it (as if the broker had never sent it).
@pytest.mark.parametrize("control,caught_by", [
    ("wipe", {"present", "lost", "forged"}),
    ("swallow", {"lost"}),
])
def test_stateful_fuzz_catches_lost_sessions_and_messages(start_broker, tmp_path, control,
                                                          caught_by):
    with pytest.raises(statefuzz.Violation) as e:
        statefuzz.run_seed(start_broker, tmp_path, CONTROL_SEED, STEPS, control=control)
    assert e.value.invariant in caught_by, str(e.value)
