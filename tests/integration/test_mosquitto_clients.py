"""Interoperability with the mosquitto command-line clients (mosquitto-clients)."""

import subprocess
import time

import pytest

VERSIONS = [pytest.param("mqttv311", id="v311"), pytest.param("mqttv5", id="v5")]
TIMEOUT_S = 10


def base(broker, proto):
    return ["-h", broker.host, "-p", str(broker.port), "-V", proto]


def pub(broker, proto, *args):
    r = subprocess.run(["mosquitto_pub"] + base(broker, proto) + list(args),
                       capture_output=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, "mosquitto_pub %s failed: %r" % (args, r.stderr)


def sub_until_one(broker, proto, sub_args, pub_args):
    """Starts mosquitto_sub -C 1 and keeps publishing with mosquitto_pub until it
    exits (it has no "subscribed" signal). Returns its stdout."""
    s = subprocess.Popen(["mosquitto_sub"] + base(broker, proto) + list(sub_args) + ["-C", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while s.poll() is None:
            assert time.monotonic() < deadline, "mosquitto_sub received nothing"
            pub(broker, proto, *pub_args)
            try:
                s.wait(timeout=0.3)
            except subprocess.TimeoutExpired:
                pass
        out, err = s.communicate(timeout=TIMEOUT_S)
        assert s.returncode == 0, "mosquitto_sub failed: %r" % err
        return out
    finally:
        if s.poll() is None:
            s.kill()
            s.wait()


@pytest.mark.parametrize("proto", VERSIONS)
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_mosquitto_sub_receives_what_mosquitto_pub_sends(broker, proto, qos):
    out = sub_until_one(broker, proto, ["-t", "cli/a", "-q", qos],
                        ["-t", "cli/a", "-m", "hi", "-q", qos])
    assert out == b"hi\n"


@pytest.mark.parametrize("proto", VERSIONS)
def test_mosquitto_retained_message_delivered_to_later_subscriber(broker, proto):
    pub(broker, proto, "-t", "cli/r", "-m", "kept", "-q", "1", "-r")
    r = subprocess.run(["mosquitto_sub"] + base(broker, proto) +
                       ["-t", "cli/r", "-q", "1", "-C", "1", "-v", "-W", str(TIMEOUT_S)],
                       capture_output=True, timeout=TIMEOUT_S + 5)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"cli/r kept\n"


@pytest.mark.parametrize("proto", VERSIONS)
def test_mosquitto_pub_clears_retained_with_null_message(broker, proto):
    pub(broker, proto, "-t", "cli/c", "-m", "doomed", "-q", "1", "-r")
    pub(broker, proto, "-t", "cli/c", "-n", "-q", "1", "-r")
    # The first message the subscriber sees is a live one, not the cleared retained.
    out = sub_until_one(broker, proto, ["-t", "cli/c", "-q", "1"],
                        ["-t", "cli/c", "-m", "live", "-q", "1"])
    assert out == b"live\n"


def test_mosquitto_sub_sees_message_from_raw_client(broker):
    s = subprocess.Popen(["mosquitto_sub"] + base(broker, "mqttv5") +
                         ["-t", "cli/raw", "-q", "1", "-C", "1", "-v"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        c = broker.connect("raw", version=5)
        deadline = time.monotonic() + TIMEOUT_S
        while s.poll() is None:
            assert time.monotonic() < deadline
            c.publish_acked("cli/raw", b"from-raw", qos=1)
            try:
                s.wait(timeout=0.3)
            except subprocess.TimeoutExpired:
                pass
        assert s.stdout.read() == b"cli/raw from-raw\n"
    finally:
        if s.poll() is None:
            s.kill()
        s.wait()


def test_mosquitto_pub_v5_user_property_reaches_raw_subscriber(broker):
    c = broker.connect("raw", version=5)
    c.subscribe([("cli/up", 1)])
    pub(broker, "mqttv5", "-t", "cli/up", "-m", "x", "-q", "1",
        "-D", "publish", "user-property", "key", "value",
        "-D", "publish", "content-type", "text/plain")
    p = c.expect_publish()
    assert p.payload == b"x"
    assert p.props.all("user_property") == [("key", "value")]
    assert p.props.get("content_type") == "text/plain"


def test_mosquitto_pub_large_file_payload(broker, tmp_path):
    data = bytes(range(256)) * 200
    f = tmp_path / "payload.bin"
    f.write_bytes(data)
    c = broker.connect("raw", version=4)
    c.subscribe([("cli/file", 1)])
    pub(broker, "mqttv311", "-t", "cli/file", "-f", str(f), "-q", "1")
    assert c.expect_publish().payload == data
