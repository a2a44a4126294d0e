"""Helpers for the tests that drive JavaScript clients (MQTT.js in Node, Chromium).

node_modules() installs tests/js's locked npm dependencies once (scripts/npm-deps.sh, which does
nothing when they are current) and returns the directory; tls_certs() writes the test
certificates with tests/tls/make-certs.sh; all_listeners_args() are the broker arguments for
plain, TLS and WebSocket listeners on free ports; listener() reads one from the ready line.
"""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
JS_DIR = os.path.join(ROOT, "tests", "js")
NPM_DEPS_TIMEOUT_S = 300
CERTS_TIMEOUT_S = 60

_installed = []


def node_modules():
    """tests/js/node_modules, installed from package-lock.json if missing or stale; fails the
    test (not skips) when that is impossible."""
    if not _installed:
        r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "npm-deps.sh")],
                           capture_output=True, text=True, timeout=NPM_DEPS_TIMEOUT_S)
        if r.returncode != 0:
            pytest.fail("scripts/npm-deps.sh failed (exit %d):\n%s%s" % (
                r.returncode, r.stdout, r.stderr))
        _installed.append(True)
    path = os.path.join(JS_DIR, "node_modules")
    assert os.path.isdir(os.path.join(path, "mqtt")), "npm-deps.sh left no %s/mqtt" % path
    return path


def node():
    """The node executable, with tests/js/node_modules installed; fails the test (not skips)
    when either is missing."""
    node_modules()
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is not installed (run scripts/install-deps.sh)")
    return exe


def tls_certs(outdir):
    """Writes ca.pem, server.pem/key, client.pem/key into outdir; returns outdir."""
    r = subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "make-certs.sh"), str(outdir)],
                       capture_output=True, text=True, timeout=CERTS_TIMEOUT_S)
    assert r.returncode == 0, "make-certs.sh failed: %s" % r.stderr
    return str(outdir)


def all_listeners_args(certs):
    """serve arguments adding TLS, HTTP (WebSocket) and HTTPS listeners on free ports."""
    return ["--mqtts", "127.0.0.1:0", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0",
            "--tls-cert", os.path.join(certs, "server.pem"),
            "--tls-key", os.path.join(certs, "server.key")]


def listener(broker, kind):
    """"127.0.0.1:PORT" of the broker's first `kind` listener (mqtt, mqtts, http, https)."""
    ready = broker.events("ready")[-1]
    addrs = ready.get(kind)
    assert isinstance(addrs, list) and addrs, "ready line without a %s listener: %r" % (
        kind, ready)
    return addrs[0]
