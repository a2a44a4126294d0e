"""Controls for the harness itself: a check that cannot fail is worse than none.
These prove the fixtures notice a crashed broker and a broker that never
becomes ready, so the other files' green results mean something."""

import os
import signal

import pytest

import conftest
import mqttraw as m


def test_harness_reports_broker_that_died_during_the_test(tmp_path):
    b = conftest.Broker(conftest.BROKER_KIND, str(tmp_path), None, [])
    b.start()
    b.connect("x", version=5).ping()
    os.kill(b.proc.pid, signal.SIGKILL)
    b.proc.wait(timeout=10)
    problems = b.stop()
    assert problems and "died during the test" in problems[0], problems


def test_harness_clean_stop_reports_no_problem(tmp_path):
    b = conftest.Broker(conftest.BROKER_KIND, str(tmp_path), None, [])
    b.start()
    b.connect("x", version=5).ping()
    assert b.stop() == []
    assert b.exit_code == 0


def test_harness_fails_when_broker_exits_before_ready(tmp_path):
    b = conftest.Broker(conftest.BROKER_KIND, str(tmp_path), None, ["--no-such-flag"])
    with pytest.raises(pytest.fail.Exception):
        b.start()
    assert b.proc.poll() is not None
    b.stop()


def test_raw_client_notices_server_close(broker):
    c = broker.connect("x", version=5)
    broker.connect("x", version=5)  # takeover closes the first connection
    c.expect_close()
    with pytest.raises(m.Closed):
        c.recv(timeout=1)
