"""Security finding 8 at full size (make test-attack): ~145 bad-password CONNECTs/s from
127.0.0.2 for a minute, with the default limits, while the real user connects 60 times from
127.0.0.1; >= 95% must succeed. The short version is
tests/integration/test_security_password.py."""

import time

import passwordattack as pa

CONNECTS = 60
MIN_SUCCESS = 0.95


def test_bad_password_flood_for_a_minute(start_broker, tmp_path):
    path = tmp_path / "passwd"
    pa.make_password_file(path, [("alice", "alice-pw")])
    b = start_broker(None, extra_args=["--password-file", str(path), "--log-level", "info"])
    flood = pa.Flooder(b.port, "alice")
    flood.start()
    try:
        time.sleep(2)
        ok, failures = pa.measure_connects(b.port, "alice", "alice-pw", CONNECTS, pause_s=1.0)
    finally:
        flood.stop()
    print("real user: %d/%d; attacker sent %d, answers %s" % (ok, CONNECTS, flood.sent,
                                                              flood.codes))
    assert ok >= MIN_SUCCESS * CONNECTS, (ok, failures[:5], flood.codes)
