"""Long versions of the retained-message attacks (security issue 12, findings 5 and 10): the
short ones are in tests/integration/test_security_retained.py, whose helpers are used here."""

import time

import pytest

import test_security_retained as t

pytestmark = pytest.mark.ledgermq_only


def test_many_subscribes_with_walking_filters_over_100k_retained(start_broker):
    """100,000 retained under r/ and s/<i>/v; 10 sessions SUBSCRIBE 1,000 filters each, a
    third of them wildcards that must walk all 50,000 children of r/ (r/+/nomatch...: 170
    million trie nodes in all), a third s/+/wN, the others literal misses. The control client's pings stay answered, every SUBACK comes, and then
    two '#' subscribers at once still get every retained message exactly once."""
    b = start_broker("[limits]\nmax_retained_messages = 200000\n",
                     extra_args=["--http", "127.0.0.1:0"])
    pub = t.attacker(b, "filler")
    topics = ["r/%d" % i for i in range(t.RETAINED_COUNT // 2)]
    topics += ["s/%d/v" % i for i in range(t.RETAINED_COUNT // 2)]
    t.publish_retained_burst(pub, topics, b"v")
    pinger = t.Pinger(b)
    for round_ in range(10):
        sub = t.attacker(b, "stall%d" % round_, timeout=300.0)
        filters = []
        for i in range(t.FILTERS_PER_SUBSCRIBE):
            if i % 3 == 0:
                filters.append(("r/+/nomatch%d" % i, 0))
            elif i % 3 == 1:
                filters.append(("s/+/w%d" % i, 0))
            else:
                filters.append(("nomatch/%d/%d" % (round_, i), 0))
        ack = sub.subscribe(filters)
        assert all(rc == 0 for rc in ack.rcs), ack
    readers = [t.attacker(b, "everything%d" % i, timeout=120.0) for i in range(2)]
    for r in readers:
        r.subscribe([("#", 0)])
    for r in readers:
        got = t.read_publishes(r, len(topics), timeout_s=300)
        assert set(got) == set(topics)
        r.expect_nothing(0.5)
    # The walking cursors finish too (while the control client is still pinging).
    deadline = time.monotonic() + 300
    while t.metrics(b)["ledgermq_retained_deliveries_running"] > 0:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    latencies = pinger.stop()
    print("pings", len(latencies), "max", max(latencies))
    assert not pinger.failures, pinger.failures
    assert max(latencies) < 1.0, max(latencies)


def test_300_non_reading_hash_subscribers_under_the_default_budget(start_broker):
    """The issue's figure: 300 non-reading '#' subscribers over 20 MiB retained took the broker
    from 31 MiB to 1.16 GiB. With the default budget (256 MiB) it stays near it, the slowest
    are closed after the grace time, and a control client is served throughout."""
    b = start_broker("[limits]\nslow_consumer_grace_ms = 3000\n",
                     extra_args=["--http", "127.0.0.1:0"])
    pub = b.connect("filler")
    payload = b"p" * t.RETAINED_BIG_BYTES
    for i in range(t.RETAINED_BIG_COUNT):
        pub.publish_acked("big/%d" % i, payload, qos=1, retain=True)
    base_mib = t.rss_mib(b)
    pinger = t.Pinger(b)
    socks = [t.non_reader(b, i) for i in range(300)]
    peak_mib = base_mib
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        peak_mib = max(peak_mib, t.rss_mib(b))
        time.sleep(0.1)
    print("RSS MiB: base %.0f, peak %.0f" % (base_mib, peak_mib))
    if not t.sanitized(b):
        assert peak_mib - base_mib < 256 + 96, (base_mib, peak_mib)
    assert t.metrics(b)["ledgermq_slow_consumers_closed_total"] >= 1
    reader = b.raw(5, timeout=60.0)
    reader.connect("reader")
    reader.subscribe([("#", 0)])
    assert len(t.read_publishes(reader, t.RETAINED_BIG_COUNT, timeout_s=60)) == \
        t.RETAINED_BIG_COUNT
    latencies = pinger.stop()
    assert not pinger.failures and max(latencies) < 1.0, (pinger.failures, max(latencies))
    for s in socks:
        s.close()
