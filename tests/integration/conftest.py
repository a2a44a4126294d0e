"""Fixtures for the broker integration tests.

`broker` starts a fresh broker for one test and stops it after; `start_broker`
is the factory behind it (config text, extra arguments). Which broker:

  LMQ_TEST_BROKER unset or "ledgermq": $LEDGERMQ_BIN serve ... (the default)
  LMQ_TEST_BROKER=mosquitto: /usr/sbin/mosquitto with a generated config, to
      check the tests themselves against a reference broker. Tests marked
      `ledgermq_only` are skipped in that mode, and only in that mode: against
      ledgermq nothing is ever skipped.

Teardown fails the test if the broker died on its own during the test, or
did not exit 0 on SIGTERM; the broker's log is printed for failing tests.

Crash and fault tests (test_durability.py) use more of the factory:
start_broker(data_dir=..., env={...}, expect_exit=2, wait_ready=False) and, on
the Broker, kill9() (SIGKILL, an expected death), restart() (a new process on
the same data directory and configuration, on a new port) and wait_exit(code).
Every process a Broker runs is one "run"; a run may end only the way the test
said it would (kill9, an expected exit code, or SIGTERM with exit 0 at
teardown), anything else fails the test.
"""

import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import queue

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes  # noqa: F401 - re-exported for tests
from paho.mqtt.properties import Properties  # noqa: F401

import mqttraw

BROKER_KIND = os.environ.get("LMQ_TEST_BROKER", "ledgermq") or "ledgermq"
if BROKER_KIND not in ("ledgermq", "mosquitto"):
    raise RuntimeError("LMQ_TEST_BROKER must be ledgermq or mosquitto, not %r" % BROKER_KIND)
IS_MOSQUITTO = BROKER_KIND == "mosquitto"

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 400

LIMIT_KEYS = {
    "max_connections", "max_sessions", "max_packet_size", "max_inflight",
    "max_queued_messages", "max_queued_bytes", "max_subscriptions", "max_topic_alias",
    "max_topic_alias_out",  # ledgermq only: mosquitto sends no topic aliases to clients
    "max_keepalive", "max_session_expiry", "max_retained_messages", "max_retained_bytes",
    "connect_timeout_ms", "max_output_bytes",
    "min_free_disk",  # ledgermq only: not mapped for mosquitto
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ledgermq_only: asserts ledgermq-specific behaviour (reason codes, config keys, "
        "logs) that the reference broker does not share; skipped with LMQ_TEST_BROKER=mosquitto")


def pytest_collection_modifyitems(config, items):
    if not IS_MOSQUITTO:
        return  # never skip anything against ledgermq
    skip = pytest.mark.skip(reason="ledgermq_only (reference broker differs)")
    for item in items:
        if "ledgermq_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _sets_http(config_text, extra_args):
    """True when the test chose the HTTP listener itself: --http in its arguments or
    [server] http in its config."""
    if any(a == "--http" or a.startswith("--http=") for a in extra_args):
        return True
    section = None
    for line in (config_text or "").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[] ")
        elif section == "server" and line.split("=", 1)[0].strip() == "http":
            return True
    return False


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One running broker process."""

    def __init__(self, kind, workdir, config_text, extra_args, data_dir=None, env=None,
                 expect_exit=None, wait_ready=True):
        """data_dir: the --data directory (default WORKDIR/data, created here; an explicit
        one is passed as is, so a test can hand the broker a bad one). env: extra
        environment variables for the first run. expect_exit: the exit code this run
        must end with on its own (fault injection); teardown fails the test if it is
        still running or ended otherwise. wait_ready=False: don't wait for "ready"
        (for runs that must fail at start)."""
        self.kind = kind
        self.workdir = workdir
        self.config_text = config_text
        self.extra_args = list(extra_args)
        self.data_dir = data_dir if data_dir is not None else os.path.join(workdir, "data")
        self._default_data_dir = data_dir is None
        self.env = dict(env or {})
        self.expect_exit = expect_exit
        self.wait_ready = wait_ready
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.lines = []  # raw stderr lines (str) of the current run
        self.runs = []  # one list of stderr lines per run, the current one last
        self.problems = []  # how earlier runs ended when they should not have
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._reader = None
        self.stopped = False
        self.killed = False  # the current run was ended by kill9()
        self.exit_code = None
        self.limits = {}
        self._clients = []  # raw and paho clients to close before stopping
        if config_text:
            cp = configparser.ConfigParser()
            cp.read_string(config_text)
            if cp.has_section("limits"):
                self.limits = {k: v for k, v in cp.items("limits")}

    # ---- start
    def start(self):
        if self.kind == "mosquitto":
            self._start_mosquitto()
        else:
            self._start_ledgermq()

    def _spawn(self, argv):
        self.argv = argv
        lines = []
        with self._lock:
            self.lines = lines
            self.runs.append(lines)
        self.killed = False
        env = None
        if self.env:
            env = dict(os.environ)
            env.update({k: str(v) for k, v in self.env.items()})
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=self.workdir, env=env)
        # The reader owns this run's process and line list: a reader still draining
        # an old run can never append to the next run's lines.
        self._reader = threading.Thread(target=self._drain, args=(self.proc, lines), daemon=True)
        self._reader.start()

    def _drain(self, proc, lines):
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _start_ledgermq(self):
        binary = os.environ.get("LEDGERMQ_BIN")
        if not binary:
            pytest.fail("LEDGERMQ_BIN is not set (path to the ledgermq binary)")
        if not os.access(binary, os.X_OK):
            pytest.fail("LEDGERMQ_BIN=%s is not an executable file" % binary)
        data = self.data_dir
        if self._default_data_dir:
            os.makedirs(data, exist_ok=True)
        argv = [binary, "serve", "--mqtt", "127.0.0.1:0", "--data", data, "--log-level", "debug"]
        if self.config_text is not None:
            path = os.path.join(self.workdir, "ledgermq.ini")
            with open(path, "w") as f:
                f.write(self.config_text)
            argv += ["--config", path]
        argv += self.extra_args
        if not _sets_http(self.config_text, self.extra_args):
            # serve listens on HTTP 127.0.0.1:8080 by default: parallel tests would collide
            # there, and a test that asked for no HTTP listener gets none.
            argv += ["--http", "none"]
        self._spawn(argv)
        if not self.wait_ready:
            return
        ev = self.wait_event("ready", timeout=READY_TIMEOUT_S, what="the \"ready\" log line")
        addrs = ev.get("mqtt")
        assert isinstance(addrs, list) and addrs, "ready line without an mqtt list: %r" % ev
        host, _, port = addrs[0].rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        assert self.port > 0, ev

    def _mosquitto_conf(self, port):
        lim = self.limits
        g = ["persistence false", "allow_anonymous true", "log_dest stderr", "log_type all",
             "connection_messages true", "log_timestamp true", "set_tcp_nodelay true"]
        gmap = {"max_inflight": "max_inflight_messages",
                "max_queued_messages": "max_queued_messages",
                "max_queued_bytes": "max_queued_bytes",
                "max_packet_size": "max_packet_size",
                "max_keepalive": "max_keepalive"}
        lmap = {"max_connections": "max_connections", "max_topic_alias": "max_topic_alias"}
        for k, v in lim.items():
            if k not in LIMIT_KEYS:
                raise ValueError("unknown [limits] key %r" % k)
            if k == "max_keepalive" and v == "0":
                continue  # ledgermq: 0 = no cap; mosquitto's default is no cap
            if k in gmap:
                g.append("%s %s" % (gmap[k], v))
        listener = ["listener %d 127.0.0.1" % port]
        for k, v in lim.items():
            if k in lmap:
                listener.append("%s %s" % (lmap[k], v))
        return "\n".join(g + listener) + "\n"

    def _start_mosquitto(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            pytest.fail("LMQ_TEST_BROKER=mosquitto but /usr/sbin/mosquitto is not installed")
        last_err = None
        for _attempt in range(5):
            port = _free_port()
            path = os.path.join(self.workdir, "mosquitto.conf")
            with open(path, "w") as f:
                f.write(self._mosquitto_conf(port))
            self._spawn([exe, "-c", path] + self.extra_args)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    self.port = port
                    return
                except OSError as e:
                    last_err = e
                    time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._reader.join(timeout=2)
        pytest.fail("mosquitto did not start: %s\n%s" % (last_err, self.log_text()))

    # ---- logs
    def log_text(self, tail=LOG_TAIL_LINES):
        """The last `tail` stderr lines over every run, runs separated by a marker."""
        with self._lock:
            lines = []
            for i, run in enumerate(self.runs):
                if len(self.runs) > 1:
                    lines.append("----- run %d -----" % (i + 1))
                lines.extend(run)
        return "\n".join(lines[-tail:])

    def metric(self, name, labels=""):
        """One sample of /metrics from the HTTP listener in the latest ready line (start the
        broker with --http): name as printed (ledgermq_...), labels exactly as printed
        ('{reason="quota"}'), or no labels."""
        addr = self.events("ready")[-1]["http"][0]
        with urllib.request.urlopen("http://%s/metrics" % addr, timeout=10) as r:
            text = r.read().decode()
        prefix = name + labels + " "
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
        raise AssertionError("no %s in /metrics" % (name + labels))

    def events(self, name=None):
        """Parsed JSON log lines (ledgermq), optionally only those with event == name."""
        out = []
        with self._lock:
            lines = list(self.lines)
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and (name is None or obj.get("event") == name):
                out.append(obj)
        return out

    def wait_event(self, name, timeout=5.0, pred=None, what=None):
        """Waits for a JSON log line with event == name (and pred(obj) true)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and obj.get("event") == name and (
                            pred is None or pred(obj)):
                        return obj
                if self.proc.poll() is not None and seen >= len(self.lines):
                    pytest.fail("broker exited (code %s) while waiting for %s\n%s" % (
                        self.proc.returncode, what or name, "\n".join(self.lines[-LOG_TAIL_LINES:])))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail("timed out after %.0fs waiting for %s\n%s" % (
                        timeout, what or name, "\n".join(self.lines[-LOG_TAIL_LINES:])))
                self._cond.wait(min(remaining, 0.2))

    # ---- clients
    def raw(self, version=5, timeout=mqttraw.DEFAULT_TIMEOUT_S):
        """A raw client, TCP-connected, no CONNECT sent yet."""
        c = mqttraw.RawClient(self.port, version=version, host=self.host, timeout=timeout)
        self._clients.append(c)
        return c

    def connect(self, client_id="", version=5, **kw):
        """A raw client, connected (CONNACK rc 0 asserted)."""
        c = self.raw(version)
        c.connect(client_id, **kw)
        return c

    def connect_persistent(self, client_id, version=5, clean=False, expiry_s=300, props=None,
                           **kw):
        """A client whose session outlives the connection: 3.1.1 clean session 0,
        v5 Session Expiry Interval expiry_s (clean start as given)."""
        c = self.raw(version)
        if version == 5:
            p = mqttraw.Props(props)
            p.items.insert(0, ("session_expiry_interval", expiry_s))
            c.connect(client_id, clean=clean, props=p, **kw)
        else:
            c.connect(client_id, clean=clean, **kw)
        return c

    def paho(self, client_id="", version=5, **kw):
        """A paho-mqtt client, connected and running its network loop."""
        c = PahoClient(self, client_id, version, **kw)
        self._clients.append(c)
        return c

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- crash, restart, expected exits
    def _describe_exit(self, rc):
        return "exit code %s%s" % (rc, ", signal %s" % signal.Signals(-rc).name if rc < 0 else "")

    def _run_end_problem(self):
        """None if the current run ended (or is running) the way the test said it
        would; otherwise what went wrong. Only for a run whose process is gone."""
        rc = self.proc.poll()
        assert rc is not None
        if self.killed:
            return None
        if self.expect_exit is not None:
            if rc == self.expect_exit:
                return None
            return "broker exited with %s, expected exit code %s" % (
                self._describe_exit(rc), self.expect_exit)
        return "broker died during the test (%s)" % self._describe_exit(rc)

    def kill9(self, timeout=STOP_TIMEOUT_S):
        """SIGKILL the current run and wait for it: a crash the test asked for. Fails
        the test if the run had already ended on its own the wrong way."""
        assert self.proc is not None and not self.stopped
        if self.proc.poll() is not None:
            problem = self._run_end_problem()
            if problem:
                pytest.fail("kill9(): %s\n%s" % (problem, self.log_text()))
        else:
            self.killed = True
            self.proc.kill()
        self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.proc.returncode

    def wait_exit(self, expected, timeout=STOP_TIMEOUT_S):
        """Waits for the current run to exit on its own with code `expected` (fails the
        test on a timeout or another code). Returns the exit code."""
        assert self.proc is not None
        self.expect_exit = expected
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("broker still running %.0fs later, expected exit code %s\n%s" % (
                timeout, expected, self.log_text()))
        if self._reader is not None:
            self._reader.join(timeout=5)
        if rc != expected:
            self.expect_exit = rc  # reported here: teardown need not report it again
            pytest.fail("broker exited with %s, expected exit code %s\n%s" % (
                self._describe_exit(rc), expected, self.log_text()))
        return rc

    def terminate(self, timeout=STOP_TIMEOUT_S):
        """Graceful stop of the current run (SIGTERM), which must exit 0; restart()
        may follow."""
        assert self.proc is not None and not self.stopped
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(0, timeout=timeout)

    def restart(self, env=None, expect_exit=None, wait_ready=True):
        """Starts a new run on the same data directory and configuration (a new
        port: connect new clients afterwards). The current run must have ended the
        way the test said (kill9(), or wait_exit()/expect_exit). env is the extra
        environment of the new run only (default none: fault injection is per run)."""
        assert self.proc is not None and not self.stopped
        if self.proc.poll() is None:
            pytest.fail("restart(): the broker is still running (kill9() or wait_exit() first)")
        problem = self._run_end_problem()
        if problem:
            self.problems.append(problem)
            pytest.fail("restart(): %s\n%s" % (problem, self.log_text()))
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.env = dict(env or {})
        self.expect_exit = expect_exit
        self.wait_ready = wait_ready
        self.port = None
        self.start()
        return self

    def stderr_lines(self):
        """The current run's stderr lines."""
        with self._lock:
            return list(self.lines)

    # ---- stop
    def stop(self):
        """Ends the current run (SIGTERM, wait, SIGKILL; or checks the exit the test
        expected). Returns a list of problems (empty when every run ended as expected)."""
        problems = list(self.problems)
        if self.proc is None or self.stopped:
            return problems
        self.stopped = True
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        rc = self.proc.poll()
        if rc is not None:
            problem = self._run_end_problem()
            if problem:
                problems.append(problem)
        elif self.expect_exit is not None:
            self.proc.kill()
            rc = self.proc.wait()
            problems.append("broker still running at teardown, expected it to exit with "
                            "code %s (killed)" % self.expect_exit)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
                problems.append("broker did not exit within %.0fs of SIGTERM (killed)"
                                % STOP_TIMEOUT_S)
            else:
                if rc != 0:
                    problems.append("broker exited with code %s on SIGTERM" % rc)
        self.exit_code = rc
        if self._reader is not None:
            self._reader.join(timeout=5)
        return problems


class PahoClient:
    """paho-mqtt 1.6 wrapped into blocking calls with timeouts. Messages
    arrive in self.messages (a queue of paho MQTTMessage)."""

    def __init__(self, broker, client_id, version, clean=True, keepalive=60, props=None,
                 will=None, timeout=5.0, port=None, transport="tcp", tls=None, ws_path=None):
        """port: another listener than broker.port (mqtts, http, https); transport: "tcp"
        or "websockets" (with ws_path, e.g. "/mqtt"); tls: keyword arguments of paho's
        tls_set (ca_certs, certfile, keyfile), None for no TLS."""
        self.version = version
        self.timeout = timeout
        self.messages = queue.Queue()
        self._connected = threading.Event()
        self._subacks = {}
        self._sub_cond = threading.Condition()
        self.connack = None
        if version == 5:
            c = paho.Client(client_id=client_id, protocol=paho.MQTTv5, reconnect_on_failure=False,
                            transport=transport)
        else:
            c = paho.Client(client_id=client_id, clean_session=clean, protocol=paho.MQTTv311,
                            reconnect_on_failure=False, transport=transport)
        if ws_path is not None:
            c.ws_set_options(path=ws_path)
        if tls is not None:
            c.tls_set(**tls)
        c.on_message = lambda _c, _u, m: self.messages.put(m)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        if will is not None:
            c.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                       will.get("retain", False), properties=will.get("props"))
        self.client = c
        port = broker.port if port is None else port
        if version == 5:
            c.connect(broker.host, port, keepalive, clean_start=clean, properties=props)
        else:
            c.connect(broker.host, port, keepalive)
        c.loop_start()
        if not self._connected.wait(timeout):
            c.loop_stop()
            raise AssertionError("paho client %r: no CONNACK within %.0fs" % (client_id, timeout))
        rc = self.connack[1]
        assert rc == 0, "paho client %r refused: %s" % (client_id, rc)

    def _on_connect(self, _c, _u, flags, rc, props=None):
        self.connack = (flags, int(rc) if not hasattr(rc, "value") else rc.value, props)
        self._connected.set()

    def _on_subscribe(self, _c, _u, mid, granted, props=None):
        with self._sub_cond:
            self._subacks[mid] = [g if isinstance(g, int) else g.value for g in granted]
            self._sub_cond.notify_all()

    def subscribe(self, topic, qos=0, options=None, props=None):
        """Subscribes and waits for the SUBACK; returns the granted codes."""
        if self.version == 5:
            from paho.mqtt.subscribeoptions import SubscribeOptions
            opts = options or SubscribeOptions(qos=qos)
            _, mid = self.client.subscribe(topic, options=opts, properties=props)
        else:
            _, mid = self.client.subscribe(topic, qos)
        with self._sub_cond:
            ok = self._sub_cond.wait_for(lambda: mid in self._subacks, self.timeout)
        assert ok, "no SUBACK for %r" % topic
        return self._subacks[mid]

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None):
        """Publishes and waits until the flow for QoS 1/2 is complete."""
        info = self.client.publish(topic, payload, qos, retain, properties=props)
        info.wait_for_publish(self.timeout)
        assert info.is_published(), "publish to %r not completed" % topic
        return info

    def get(self, timeout=None):
        """Next received message (raises AssertionError after the timeout)."""
        try:
            return self.messages.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError("no message within the timeout") from None

    def disconnect(self, props=None, reasoncode=None):
        if self.version == 5:
            self.client.disconnect(reasoncode=reasoncode, properties=props)
        else:
            self.client.disconnect()
        self.client.loop_stop()

    def close(self):
        self.client.loop_stop()
        try:
            self.client.socket() and self.client.socket().close()
        except Exception:  # noqa: BLE001
            pass


_counter = [0]


@pytest.fixture
def start_broker(request, tmp_path):
    """Factory: start_broker(config_text=None, extra_args=[], data_dir=None, env=None,
    expect_exit=None, wait_ready=True) -> Broker (see Broker.__init__)."""
    started = []

    def factory(config_text=None, extra_args=(), data_dir=None, env=None, expect_exit=None,
                wait_ready=True):
        _counter[0] += 1
        workdir = tmp_path / ("broker%d" % _counter[0])
        workdir.mkdir()
        b = Broker(BROKER_KIND, str(workdir), config_text, extra_args, data_dir=data_dir,
                   env=env, expect_exit=expect_exit, wait_ready=wait_ready)
        started.append(b)
        b.start()
        return b

    yield factory

    problems = []
    for b in started:
        for p in b.stop():
            problems.append("%s [%s]: %s" % (b.kind, " ".join(getattr(b, "argv", [])), p))
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed or problems:
        for b in started:
            print("----- %s log (last %d lines) -----" % (b.kind, LOG_TAIL_LINES))
            print(b.log_text())
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def broker(start_broker):
    """A broker with the default configuration."""
    return start_broker()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A directory (pathlib.Path) with ca/server/client/rogue .pem and .key made by
    tests/tls/make-certs.sh, written once per module."""
    out = tmp_path_factory.mktemp("certs")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "make-certs.sh")
    r = subprocess.run(["bash", script, str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(params=[4, 5], ids=["v311", "v5"])
def version(request):
    """MQTT protocol level: 4 (3.1.1) or 5."""
    return request.param


@pytest.fixture
def clients():
    """Collects raw clients to close at teardown: clients.append(c) / clients.add(c)."""
    class Bag(list):
        def add(self, c):
            self.append(c)
            return c

    bag = Bag()
    yield bag
    for c in bag:
        c.close()
