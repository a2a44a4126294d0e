"""Security finding 8: bad-password CONNECTs from one address must not starve the password
checks of others (docs/SECURITY.md "Logins, HTTP and TLS"). The attacker floods from
127.0.0.2 at the rate of the original finding (~145/s, more than the thread pool can hash)
while the real user connects 20 times from 127.0.0.1 with the right password: at least 95%
must succeed. Once with the back-off as configured by default, once with the back-off out of
reach, so that the fair share of the check slots is shown to hold on its own."""

import time

import pytest

import httpattack as ha
import passwordattack as pa

pytestmark = pytest.mark.ledgermq_only

CONNECTS = 20
MIN_SUCCESS = 0.95
RC_V311_SERVER_UNAVAILABLE = 3
RC_V5_CONNECTION_RATE_EXCEEDED = 0x9F


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "passwd"
    pa.make_password_file(path, [("alice", "alice-pw"), ("mallory", "mallory-pw")])
    return path


def run_attack(b, password_file):
    flood = pa.Flooder(b.port, "alice")
    flood.start()
    try:
        time.sleep(1.0)  # the queue is as full as the attacker can make it
        ok, failures = pa.measure_connects(b.port, "alice", "alice-pw", CONNECTS)
    finally:
        flood.stop()
    print("%d/%d right-password CONNECTs succeeded; attacker sent %d, answers %s" % (
        ok, CONNECTS, flood.sent, flood.codes))
    assert ok >= MIN_SUCCESS * CONNECTS, (
        "only %d of %d CONNECTs with the right password succeeded during the attack: %s "
        "(attacker: %s)" % (ok, CONNECTS, failures[:5], flood.codes))
    return flood


def test_bad_password_flood_backs_off_and_the_real_user_gets_in(start_broker, password_file):
    b = start_broker("[limits]\npassword_failures_before_backoff = 5\n"
                     "password_backoff_max_ms = 60000\n",
                     extra_args=["--password-file", str(password_file), "--http",
                                 "127.0.0.1:0"])
    flood = run_attack(b, password_file)
    # The attacker was backed off: refused at once (3.1.1: server unavailable) without a hash.
    assert flood.codes.get(RC_V311_SERVER_UNAVAILABLE, 0) > 0, flood.codes
    b.wait_event("password_backoff_started", pred=lambda e: e["remote"].startswith("127.0.0.2:"))
    assert not [e for e in b.events("password_backoff_started")
                if e["remote"].startswith("127.0.0.1:")], "the real user was backed off"
    host, port = ha.listener(b, "http")
    m = ha.metrics(host, port)
    assert m['ledgermq_password_connects_total{outcome="backoff"}'] > 0
    # MQTT 5 says why: connection rate exceeded.
    code = pa.connack_code(b.port, "alice", "wrong", pa.ATTACKER, version=5)
    assert code == RC_V5_CONNECTION_RATE_EXCEEDED, code


def test_fair_share_of_check_slots_without_back_off(start_broker, password_file):
    b = start_broker("[limits]\npassword_failures_before_backoff = 4294967295\n"
                     "password_checks_per_address = 4\n",
                     extra_args=["--password-file", str(password_file), "--http",
                                 "127.0.0.1:0"])
    run_attack(b, password_file)
    host, port = ha.listener(b, "http")
    m = ha.metrics(host, port)
    # The attacker's CONNECTs over its share waited (or were refused once too many waited)
    # instead of taking every slot.
    assert m['ledgermq_password_connects_total{outcome="waited"}'] > 0
    assert m['ledgermq_password_connects_total{outcome="backoff"}'] == 0
