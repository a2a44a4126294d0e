"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

Why not `chromium --dump-dom`: it dumps the DOM as soon as the page has loaded, and
--virtual-time-budget does not wait for WebSocket traffic either (both tried with Chromium 156),
so a page that talks MQTT over WebSocket is dumped before it has done anything. Over the pipe
the test can wait for the page's own "done" signal with a real deadline, read the DOM and take
a screenshot, with nothing but the standard library (no WebDriver, no websocket client).

Chromium reads protocol messages from fd 3 and writes to fd 4, each a JSON object followed by
a NUL byte.

    with Chromium(profile_dir) as ch:
        ch.navigate(url)
        text = ch.wait_for("document.getElementById('result').textContent", timeout_s=20)
        png = ch.screenshot()
"""

import base64
import json
import os
import select
import shutil
import subprocess
import time

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05
MESSAGE_BYTES_MAX = 64 * 1024 * 1024  # a full-page PNG in base64 stays far below this
STDERR_TAIL_BYTES = 4000
EVENTS_MAX = 10000  # events kept for a test (keep_events); more is a test bug: it asserts


class ChromiumError(AssertionError):
    """Chromium failed, answered with an error, or did not answer in time."""


class Chromium:
    def __init__(self, profile_dir, window_size=(900, 600), exe=CHROMIUM):
        if not os.access(exe, os.X_OK):
            raise ChromiumError("%s is not installed (run scripts/install-deps.sh)" % exe)
        self.profile_dir = str(profile_dir)
        self.window_size = window_size
        self.exe = exe
        self.proc = None
        self._next_id = 0
        self._buf = b""
        self._session = None
        # Protocol events (e.g. "Network.requestWillBeSent") to keep in self.events, in order,
        # as they arrive during calls; others are dropped.
        self.keep_events = set()
        self.events = []

    # ---- process
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        self._stderr_path = os.path.join(self.profile_dir, "chromium.stderr")
        os.makedirs(self.profile_dir, exist_ok=True)
        stderr = open(self._stderr_path, "wb")
        args = ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--hide-scrollbars", "--remote-debugging-pipe",
                "--user-data-dir=" + os.path.join(self.profile_dir, "profile"),
                "--window-size=%d,%d" % self.window_size, "about:blank"]
        # bash moves the pipe ends to fds 3 and 4 and execs Chromium: subprocess can only keep
        # fds at the numbers they already have, and dash takes one-digit fds only.
        script = 'exec "$0" "$@" 3<&%d 4>&%d' % (to_child_r, from_child_w)
        try:
            self.proc = subprocess.Popen(["/bin/bash", "-c", script, self.exe] + args,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=stderr, pass_fds=(to_child_r, from_child_w))
        finally:
            stderr.close()
            os.close(to_child_r)
            os.close(from_child_w)
        targets = self.call("Target.getTargets", timeout_s=START_TIMEOUT_S)["targetInfos"]
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise ChromiumError("no page target: %r" % targets)
        self._session = self.call("Target.attachToTarget", targetId=pages[0]["targetId"],
                                  flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        # The viewport exactly window_size (the window's own size leaves less for the page).
        self.call("Emulation.setDeviceMetricsOverride", session=True,
                  width=self.window_size[0], height=self.window_size[1],
                  deviceScaleFactor=1, mobile=False)

    def stderr_tail(self):
        try:
            with open(self._stderr_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")

    def close(self):
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self._send("Browser.close", {}, None)
                self.proc.wait(timeout=CLOSE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._to_child)
            os.close(self._from_child)
            self.proc = None
            # The profile is throwaway; keep only the stderr log beside it.
            shutil.rmtree(os.path.join(self.profile_dir, "profile"), ignore_errors=True)

    # ---- protocol
    def _send(self, method, params, session):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self._to_child, data)
            data = data[n:]
        return self._next_id

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._from_child], [], [], min(remaining, 0.5))
            if not ready:
                if self.proc.poll() is not None:
                    raise ChromiumError("chromium exited (code %s)\n%s" % (
                        self.proc.returncode, self.stderr_tail()))
                continue
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise ChromiumError("chromium closed the pipe\n%s" % self.stderr_tail())
            self._buf += chunk
            if len(self._buf) > MESSAGE_BYTES_MAX:
                raise ChromiumError("protocol message over %d bytes" % MESSAGE_BYTES_MAX)
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method, session=False, timeout_s=CALL_TIMEOUT_S, **params):
        """Sends one command (to the attached page if session) and returns its result;
        events that arrive meanwhile are dropped."""
        msg_id = self._send(method, params, self._session if session else None)
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self._read_message(deadline)
            if msg is None:
                raise ChromiumError("no answer to %s within %.0fs\n%s" % (
                    method, timeout_s, self.stderr_tail()))
            if msg.get("id") != msg_id:
                if msg.get("method") in self.keep_events:
                    if len(self.events) >= EVENTS_MAX:
                        raise ChromiumError("over %d events kept" % EVENTS_MAX)
                    self.events.append(msg)
                continue
            if "error" in msg:
                raise ChromiumError("%s failed: %r" % (method, msg["error"]))
            return msg.get("result", {})

    # ---- page
    def navigate(self, url):
        res = self.call("Page.navigate", session=True, url=url)
        if res.get("errorText"):
            raise ChromiumError("navigating to %s: %s" % (url, res["errorText"]))

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (JSON-serialisable values; a promise
        is awaited)."""
        res = self.call("Runtime.evaluate", session=True, expression=expression,
                        returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise ChromiumError("evaluating %s: %r" % (expression, res["exceptionDetails"]))
        return res["result"].get("value")

    def wait_for(self, expression, timeout_s):
        """Polls the expression until it is truthy; returns its value. Raises ChromiumError
        with the last value after timeout_s."""
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(POLL_INTERVAL_S)
        raise ChromiumError("%s still %r after %.0fs" % (expression, value, timeout_s))

    def dom(self):
        """The page's serialised DOM, as --dump-dom prints it."""
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self):
        """The visible viewport as PNG bytes."""
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        return base64.b64decode(data)
