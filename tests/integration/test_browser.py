"""MQTT over WebSocket from a real browser: headless Chromium loads tests/js/browser/index.html
(served here by a tiny http.server together with MQTT.js's browser bundle from
tests/js/node_modules), which connects to the broker's ws://.../mqtt, subscribes, publishes a
few QoS 1 messages, times each round trip and writes the outcome as JSON into <pre id="result">.

Chromium is driven over the DevTools pipe (chromium.py says why not --dump-dom). A screenshot
of the finished page is checked to be a PNG; LMQ_UPDATE_SCREENSHOT=1 also copies it to
docs/img/browser-roundtrip.png."""

import html
import http.server
import json
import os
import re
import shutil
import struct
import threading
import urllib.parse

import pytest

import chromium
import jsdeps

# The broker is started with ledgermq's --http listener flag.
pytestmark = pytest.mark.ledgermq_only

COUNT = 5
PAGE_WAIT_S = 30  # the page gives up by itself after 15 s
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCREENSHOT_DOC = os.path.join(jsdeps.ROOT, "docs", "img", "browser-roundtrip.png")
RESULT_RE = re.compile(r'<pre id="result">(.*?)</pre>', re.S)


def browser_bundle(node_modules):
    """MQTT.js's browser build (dist/mqtt.min.js in 5.x)."""
    path = os.path.join(node_modules, "mqtt", "dist", "mqtt.min.js")
    assert os.path.isfile(path), "MQTT.js ships no browser bundle at %s" % path
    return path


@pytest.fixture(scope="module")
def page_server():
    """http://127.0.0.1:PORT serving /index.html and /mqtt.min.js, nothing else."""
    files = {
        "/index.html": (os.path.join(jsdeps.JS_DIR, "browser", "index.html"), "text/html"),
        "/mqtt.min.js": (browser_bundle(jsdeps.node_modules()), "text/javascript"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            entry = files.get(urllib.parse.urlsplit(self.path).path)
            if entry is None:
                self.send_error(404)
                return
            with open(entry[0], "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", entry[1] + "; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def page_url(server, broker_url, client_id):
    q = urllib.parse.urlencode({"broker": broker_url, "count": COUNT, "client": client_id})
    return "%s/index.html?%s" % (server, q)


def run_page(tmp_path, url, screenshot=None):
    """Loads the page, waits for #result and returns it parsed from the serialised DOM (what
    --dump-dom would print); writes a screenshot to `screenshot` if given."""
    with chromium.Chromium(tmp_path / "chromium", window_size=(900, 400)) as ch:
        ch.navigate(url)
        # The old document (about:blank) may still be there right after navigate().
        ch.wait_for("(document.getElementById('result') || {}).textContent", timeout_s=PAGE_WAIT_S)
        dom = ch.dom()
        if screenshot is not None:
            with open(screenshot, "wb") as f:
                f.write(ch.screenshot())
    m = RESULT_RE.search(dom)
    assert m, "no <pre id=\"result\"> in the page:\n%s" % dom
    return json.loads(html.unescape(m.group(1)))


def png_size(path):
    """(width, height) of a PNG file; asserts the signature and IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert len(head) == 24 and head[:8] == PNG_MAGIC and head[12:16] == b"IHDR", head
    return struct.unpack(">II", head[16:24])


def test_browser_mqttjs_over_websocket_round_trip(start_broker, page_server, tmp_path):
    # The page comes from another origin than the broker: it may use the anonymous loopback
    # access only because its origin is allowed (test_security_origin.py has the refusal).
    broker = start_broker("[http]\nallowed_origins = %s\n" % page_server,
                          extra_args=["--http", "127.0.0.1:0"])
    ws_url = "ws://%s/mqtt" % jsdeps.listener(broker, "http")
    shot = str(tmp_path / "browser-roundtrip.png")

    result = run_page(tmp_path, page_url(page_server, ws_url, "lmq-browser-1"), shot)

    assert result.get("ok") is True, "browser round trip failed: %r" % result
    assert result["received"] == COUNT
    assert result["messages"] == ["msg-%d" % i for i in range(COUNT)]
    assert isinstance(result["rtt_ms"], (int, float)) and result["rtt_ms"] > 0
    assert "HeadlessChrome" in result["user_agent"]
    # The page spoke to this broker, not something else on the port.
    broker.wait_event("client_connected", pred=lambda e: e.get("client_id") == "lmq-browser-1")

    width, height = png_size(shot)
    assert width > 0 and height > 0 and os.path.getsize(shot) > 1000
    if os.environ.get("LMQ_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.dirname(SCREENSHOT_DOC), exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT_DOC)


def test_browser_page_reports_failure_when_websocket_path_is_wrong(start_broker, page_server,
                                                                   tmp_path):
    """Control: the page does not claim success when it cannot reach MQTT (the broker answers
    any path but /mqtt without an upgrade)."""
    broker = start_broker(extra_args=["--http", "127.0.0.1:0"])
    ws_url = "ws://%s/not-mqtt" % jsdeps.listener(broker, "http")

    result = run_page(tmp_path, page_url(page_server, ws_url, "lmq-browser-2"))

    assert result.get("ok") is False, result
    assert result.get("error"), result
    assert not [e for e in broker.events("client_connected")
                if e.get("client_id") == "lmq-browser-2"]
