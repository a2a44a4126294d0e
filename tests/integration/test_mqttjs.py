"""Interoperability with MQTT.js (Node): tests/js/mqttjs_roundtrip.js over every transport
(TCP, TLS, WebSocket, WebSocket over TLS) and both protocol versions. The script publishes
COUNT messages at each QoS (one of them 256 KiB), checks each arrives once, in order and
intact, plus a retained round trip and (v5) a user property; it prints one JSON line."""

import json
import os
import subprocess

import pytest

import jsdeps

# The broker is started with ledgermq's TLS and WebSocket listener flags.
pytestmark = pytest.mark.ledgermq_only

COUNT = 20
BIG_BYTES = 256 * 1024
SCRIPT_TIMEOUT_MS = 30000
# The script stops itself at SCRIPT_TIMEOUT_MS; this only catches a hung node.
PROCESS_TIMEOUT_S = SCRIPT_TIMEOUT_MS / 1000 + 30

TRANSPORTS = {
    # id: (ready-line listener kind, URL scheme, path, needs the CA)
    "tcp": ("mqtt", "mqtt", "", False),
    "tls": ("mqtts", "mqtts", "", True),
    "ws": ("http", "ws", "/mqtt", False),
    "wss": ("https", "wss", "/mqtt", True),
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return jsdeps.tls_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def node():
    return jsdeps.node()


def run_roundtrip(node, url, protocol, ca=None):
    argv = [node, os.path.join(jsdeps.JS_DIR, "mqttjs_roundtrip.js"), url,
            "--protocol", str(protocol), "--count", str(COUNT), "--big-bytes", str(BIG_BYTES),
            "--timeout-ms", str(SCRIPT_TIMEOUT_MS)]
    if ca is not None:
        argv += ["--ca", ca]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    lines = r.stdout.strip().splitlines()
    assert lines, "mqttjs_roundtrip.js printed nothing (exit %d): %s" % (r.returncode, r.stderr)
    result = json.loads(lines[-1])
    assert r.returncode == 0 and result.get("ok") is True, (
        "MQTT.js round trip over %s (v%d) failed, exit %d: %s\nstderr: %s" % (
            url, protocol, r.returncode, result.get("error", result), r.stderr))
    return result


@pytest.mark.parametrize("protocol", [4, 5], ids=["v311", "v5"])
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_mqttjs_roundtrip_all_qos_retained_and_properties(start_broker, certs, node, transport,
                                                          protocol):
    kind, scheme, path, needs_ca = TRANSPORTS[transport]
    broker = start_broker(extra_args=jsdeps.all_listeners_args(certs))
    url = "%s://%s%s" % (scheme, jsdeps.listener(broker, kind), path)
    ca = os.path.join(certs, "ca.pem") if needs_ca else None

    result = run_roundtrip(node, url, protocol, ca)

    assert result["url"] == url and result["protocol"] == protocol
    assert result["received"] == {"0": COUNT, "1": COUNT, "2": COUNT}
    assert result["big_bytes"] == BIG_BYTES
    assert result["retained_ok"] is True
    assert result["user_property_ok"] is (True if protocol == 5 else None)


def test_mqttjs_tls_refuses_broker_cert_without_ca(start_broker, certs, node):
    """Control: the TLS runs above prove certificate checking, since without the CA the same
    client must refuse the broker's certificate."""
    broker = start_broker(extra_args=jsdeps.all_listeners_args(certs))
    url = "mqtts://%s" % jsdeps.listener(broker, "mqtts")
    argv = [node, os.path.join(jsdeps.JS_DIR, "mqttjs_roundtrip.js"), url, "--timeout-ms", "10000"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 1 and result["ok"] is False
    assert "certificate" in result["error"], result
