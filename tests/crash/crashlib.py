"""The crash workload shared by killloop.py and powerloss.py.

One data directory lives through every cycle. A cycle starts the broker, lets
persistent subscribers reconnect and publishers publish as fast as their acks
come back, and kills the broker (SIGKILL) after a seeded random delay. The
harness process itself is never killed: it is the ground truth for what was
acknowledged (PUBACK, PUBREC, PUBCOMP) and what was received.

Clients (fixed client ids, so their sessions span every cycle):
  sub-q1   subscribes crash/# at QoS 1   (MQTT 5 or 3.1.1, by seed parity)
  sub-q2   subscribes crash/# at QoS 2   (the other version)
  pub-1    QoS 1 on crash/q1, persistent session: re-sends unacked PUBLISHes (DUP)
  pub-2    QoS 2 on crash/q2, persistent session: re-sends PUBLISH (DUP) before
           PUBREC and PUBREL after it, so the broker's inbound QoS 2 state is used
  pub-3    QoS 1 retained on crash/retained/<k>, clean session: unacked ones abandoned
Payloads are unique: "p<pub>-<n>" (pub-3: topic crash/retained/<n % RETAINED_TOPICS>).

After the last cycle the broker is started once more, publishers finish their
open flows (no new messages), subscribers drain until nothing new arrives for
DRAIN_QUIET_S, a fresh client reads the retained messages, and the broker is
stopped with SIGTERM (it must exit 0). Checks:
  - every acknowledged QoS 1 payload reached each subscriber at least once;
  - every QoS 2 payload acknowledged (PUBREC or PUBCOMP) reached sub-q1 at
    least once and sub-q2 exactly once (any QoS 2 payload twice is a duplicate);
  - every retained topic holds its last acknowledged value or a later one;
  - no payload arrives that was never published; no persistent session is
    reported absent (CONNACK session present = 0) after a restart; the broker
    never dies on its own and never refuses to start.
Every wait has a timeout and the whole run has a deadline.
"""

import argparse
import json
import os
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import mqttraw  # noqa: E402  (tests/integration/mqttraw.py: encoders and decoder)

READY_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 15.0
DRAIN_QUIET_S = 2.0
DRAIN_TIMEOUT_S = 180.0
RETAINED_QUIET_S = 1.5
RETAINED_TIMEOUT_S = 15.0
RECORD_FSYNC_EVERY_S = 0.2
PUBLISH_WINDOW = 8  # messages in flight per publisher
RETAINED_TOPICS = 8
SUB_OFFLINE_CHANCE = 0.25  # a subscriber sits out a cycle: its messages queue durably
SESSION_EXPIRY_MAX = 0xFFFFFFFF
EXAMPLES_MAX = 10
LOG_TAIL_LINES = 15


class HarnessError(Exception):
    """The run cannot go on (broker will not start, run deadline passed)."""


# ---------------------------------------------------------------- records
class Records:
    """Append-only record files; fsynced every RECORD_FSYNC_EVERY_S and at every kill."""

    def __init__(self, workdir):
        self.acked = open(os.path.join(workdir, "acked.log"), "a", encoding="utf-8")
        self.received = open(os.path.join(workdir, "received.log"), "a", encoding="utf-8")
        self.last_sync = time.monotonic()

    def ack(self, cycle, kind, payload, topic):
        self.acked.write("%d %s %s %s\n" % (cycle, kind, payload, topic))

    def recv(self, cycle, sub, qos, payload, dup, pid):
        self.received.write("%d %s PUBLISH qos=%d %s dup=%d pid=%s\n" % (
            cycle, sub, qos, payload, int(dup), pid))

    def resent(self, cycle, sub, payload, dup, pid, held):
        self.received.write("%d %s RESENT qos=2 %s dup=%d pid=%d (pid held for %s)\n" % (
            cycle, sub, payload, int(dup), pid, held))

    def pubrel(self, cycle, sub, pid):
        self.received.write("%d %s PUBREL pid=%d\n" % (cycle, sub, pid))

    def sync(self, force=False):
        now = time.monotonic()
        if not force and now - self.last_sync < RECORD_FSYNC_EVERY_S:
            return
        for f in (self.acked, self.received):
            f.flush()
            os.fsync(f.fileno())
        self.last_sync = now

    def close(self):
        self.sync(force=True)
        self.acked.close()
        self.received.close()


# ---------------------------------------------------------------- broker
class Server:
    """One broker process per cycle; its stdout+stderr go to server-<cycle>.log."""

    def __init__(self, opts, workdir):
        self.opts = opts
        self.workdir = workdir
        self.datadir = os.path.join(workdir, "data")
        self.proc = None
        self.log_path = None
        self.store = None
        self.port = None
        self.killed = False

    def start(self, label, env_extra=None):
        self.log_path = os.path.join(self.workdir, "server-%s.log" % label)
        # "Nothing acknowledged is lost" holds under queue_overflow = refuse: the default
        # (drop_oldest) drops the oldest messages of a subscriber offline for long enough,
        # by design (docs/PROTOCOL.md "Queue overflow").
        ini = os.path.join(self.workdir, "ledgermq.ini")
        with open(ini, "w") as f:
            f.write("[limits]\nqueue_overflow = refuse\n")
        cmd = [self.opts.bin, "serve", "--config", ini, "--mqtt", "127.0.0.1:0",
               "--data", self.datadir, "--log-level", self.opts.log_level, "--http", "none"]
        if self.opts.sync == "off":
            cmd += ["--sync", "off"]
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        env.update(env_extra or {})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env)
        self.killed = False
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            ready = self._find_ready()
            if ready is not None:
                self.port = int(ready["mqtt"][0].rsplit(":", 1)[1])
                self.store = ready.get("store")
                return self.port
            if self.proc.poll() is not None:
                raise HarnessError("broker exited with %d before ready (%s):\n%s" % (
                    self.proc.returncode, label, self.log_tail()))
            time.sleep(0.01)
        self.kill()
        raise HarnessError("no ready line within %.0f s (%s); note: the ready line is logged at "
                           "info level, --log-level %s may hide it\n%s" % (
                               READY_TIMEOUT_S, label, self.opts.log_level, self.log_tail()))

    def _find_ready(self):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        for line in data.split(b"\n"):
            if b'"ready"' not in line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if ev.get("event") == "ready" and ev.get("mqtt"):
                return ev
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.killed = True
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise HarnessError("broker did not die on SIGKILL within %.0f s" % STOP_TIMEOUT_S)
        return self.proc.returncode

    def terminate(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_tail(self, n=LOG_TAIL_LINES, path=None):
        try:
            with open(path or self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "  (no log)"
        return "\n".join("  | " + x for x in lines[-n:]) or "  (empty log)"


# ---------------------------------------------------------------- clients
class Conn:
    """A non-blocking MQTT connection driven by the harness's selector loop."""

    def __init__(self, client, sock):
        self.client = client
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.dead = False

    def send(self, data):
        if self.dead:
            return
        self.outbuf += data
        self.flush()

    def flush(self):
        while self.outbuf and not self.dead:
            try:
                n = self.sock.send(self.outbuf)
            except BlockingIOError:
                return
            except OSError:
                self.dead = True
                return
            del self.outbuf[:n]

    def read_packets(self):
        """Reads what the socket has; returns decoded packets (sets dead on EOF/reset)."""
        while not self.dead:
            try:
                chunk = self.sock.recv(262144)
            except BlockingIOError:
                break
            except OSError:
                self.dead = True
                break
            if not chunk:
                self.dead = True
                break
            self.inbuf += chunk
        out = []
        while True:
            p = _parse(self.inbuf, self.client.version)
            if p is None:
                return out
            out.append(p)

    def close(self):
        self.dead = True
        try:
            self.sock.close()
        except OSError:
            pass


def _parse(buf, version):
    if len(buf) < 2:
        return None
    mult, length, pos = 1, 0, 1
    while True:
        if pos >= len(buf):
            return None
        b = buf[pos]
        pos += 1
        length += (b & 0x7F) * mult
        if not b & 0x80:
            break
        mult *= 128
        if pos > 4:
            raise mqttraw.ProtocolError("remaining length over 4 bytes")
    if len(buf) < pos + length:
        return None
    first = buf[0]
    body = bytes(buf[pos:pos + length])
    del buf[:pos + length]
    return mqttraw.decode_packet(version, first, body)


class Client:
    """What a client id keeps across cycles (its side of the session)."""

    def __init__(self, h, name, version, persistent):
        self.h = h
        self.name = name
        self.client_id = "crash-" + name
        self.version = version
        self.persistent = persistent
        self.conn = None
        self.connected_before = False
        self.unexpected_close = False

    def connect(self, port):
        """Blocking CONNECT/CONNACK with a timeout, then the socket goes non-blocking."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        props = None
        if self.version == 5 and self.persistent:
            props = {"session_expiry_interval": SESSION_EXPIRY_MAX}
        sock.sendall(mqttraw.encode_connect(self.version, self.client_id,
                                            clean=not self.persistent, keepalive=0, props=props))
        buf = bytearray()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        ack = None
        while ack is None:
            if time.monotonic() > deadline:
                raise HarnessError("%s: no CONNACK within %.0f s" % (self.name, CONNECT_TIMEOUT_S))
            chunk = sock.recv(65536)
            if not chunk:
                raise HarnessError("%s: connection closed before CONNACK" % self.name)
            buf += chunk
            ack = _parse(buf, self.version)
        if ack.type != mqttraw.CONNACK or ack.rc != 0:
            raise HarnessError("%s: CONNECT refused: %r" % (self.name, ack))
        sock.setblocking(False)
        self.conn = Conn(self, sock)
        self.conn.inbuf = buf  # anything after the CONNACK
        self.unexpected_close = False
        first = not self.connected_before
        self.connected_before = True
        return ack.session_present, first

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Subscriber(Client):
    def __init__(self, h, name, version, qos):
        super().__init__(h, name, version, persistent=True)
        self.qos = qos
        self.counts = {}          # payload -> times received
        self.awaiting_rel = {}  # QoS 2 packet id PUBREC'd, PUBREL not yet seen -> payload
        self.pid_reuse = []     # (cycle, pid, payload held, payload of the other PUBLISH)
        self.received_total = 0
        self.dup_flagged = 0
        self.qos2_history = {}  # payload -> [(cycle, packet id, DUP flag)] of QoS 2 deliveries
        self.last_pubrel = {}   # packet id -> cycle of the last PUBREL seen for it

    def start(self, port):
        present, first = self.connect(port)
        if first:
            return  # subscribed in the setup phase
        if not present:
            self.h.fail_event("cycle %d: %s reconnected and its session was gone (CONNACK "
                              "session present = 0); subscribing again" % (self.h.cycle, self.name))
            self.awaiting_rel.clear()  # the spec: a new session starts empty on both sides
            self.subscribe()

    def subscribe(self):
        """Sends SUBSCRIBE; the SUBACK is checked when it arrives."""
        self.conn.send(mqttraw.encode_subscribe(self.version, 1, [("crash/#", self.qos)]))

    def on_packet(self, p):
        if p.type == mqttraw.PUBLISH:
            self.on_publish(p)
        elif p.type == mqttraw.PUBREL:
            self.awaiting_rel.pop(p.pid, None)
            self.h.records.pubrel(self.h.cycle, self.name, p.pid)
            self.last_pubrel[p.pid] = self.h.cycle
            self.conn.send(mqttraw.encode_ack(self.version, mqttraw.PUBCOMP, p.pid))
        elif p.type == mqttraw.SUBACK:
            if p.rcs != [self.qos]:
                self.h.fail_event("%s: SUBACK %r, wanted QoS %d" % (self.name, p.rcs, self.qos))
        else:
            self.h.fail_event("%s: unexpected packet %r" % (self.name, p))

    def on_publish(self, p):
        payload = p.payload.decode("ascii", "replace")
        if p.qos == 2 and p.pid in self.awaiting_rel:
            # A packet id we PUBREC'd and saw no PUBREL for: by the spec this is the same
            # message re-sent, not a new delivery (a broker that reuses the id for another
            # message makes that message lost; the record shows it).
            self.h.records.resent(self.h.cycle, self.name, payload, p.dup, p.pid,
                                  self.awaiting_rel[p.pid])
            self.conn.send(mqttraw.encode_ack(self.version, mqttraw.PUBREC, p.pid))
            if self.awaiting_rel[p.pid] != payload:
                self.pid_reuse.append((self.h.cycle, p.pid, self.awaiting_rel[p.pid], payload))
            return
        self.counts[payload] = self.counts.get(payload, 0) + 1
        self.received_total += 1
        self.dup_flagged += int(p.dup)
        self.h.records.recv(self.h.cycle, self.name, p.qos, payload, p.dup, p.pid)
        if p.qos == 2:
            self.qos2_history.setdefault(payload, []).append((self.h.cycle, p.pid, p.dup))
        self.h.last_delivery = time.monotonic()
        if p.qos == 1:
            self.conn.send(mqttraw.encode_ack(self.version, mqttraw.PUBACK, p.pid))
        elif p.qos == 2:
            self.awaiting_rel[p.pid] = payload
            self.conn.send(mqttraw.encode_ack(self.version, mqttraw.PUBREC, p.pid))


class Publisher(Client):
    def __init__(self, h, num, version, qos, persistent, retained):
        super().__init__(h, "pub-%d" % num, version, persistent)
        self.num = num
        self.qos = qos
        self.retained = retained
        self.next_n = 0
        self.next_pid = 0
        self.inflight = {}  # pid -> [payload, topic, state "sent"|"rec"], in send order
        self.published = 0
        self.refused = 0
        self.abandoned = 0
        self.acked = {}     # payload -> (cycle, kind, seconds since the cycle's start)
        self.stop_new = False
        self._rel_sent_before = set()  # ids whose PUBREL went out before the last restart
        self.cycle_budget = None  # new messages left this cycle (None: unlimited)

    def topic_for(self, n):
        if self.retained:
            return "crash/retained/%d" % (n % RETAINED_TOPICS)
        return "crash/q%d" % self.qos

    def start(self, port):
        present, first = self.connect(port)
        if not self.persistent:
            self.abandoned += len(self.inflight)
            self.inflight.clear()
            return
        # PUBREC'd ids whose PUBREL never left us: the broker must still hold their inbound
        # QoS 2 state. (Once our PUBREL was sent the broker may have completed the flow and
        # lost only its PUBCOMP in the kill: then "not found" is a fair answer.)
        owned = [pid for pid, e in self.inflight.items() if e[2] == "rec" and not e[3]]
        if owned and not present:
            self.h.fail_event("cycle %d: %s had PUBREC'd packet ids %s and its session (inbound "
                              "QoS 2 state) was gone after the restart" % (
                                  self.h.cycle, self.name, owned[:5]))
        for pid, (payload, topic, state, _) in self.inflight.items():
            if state == "sent":
                self.conn.send(mqttraw.encode_publish(self.version, topic, payload, self.qos,
                                                      self.retained, dup=True, pid=pid))
            else:
                self.conn.send(mqttraw.encode_ack(self.version, mqttraw.PUBREL, pid))
        self._rel_sent_before = {pid for pid, e in self.inflight.items() if e[3]}
        for e in self.inflight.values():
            if e[2] == "rec":
                e[3] = True

    def fill(self):
        while (not self.stop_new and self.conn is not None and not self.conn.dead
               and len(self.inflight) < PUBLISH_WINDOW and self.cycle_budget != 0):
            if self.cycle_budget is not None:
                self.cycle_budget -= 1
            self.next_n += 1
            payload = "p%d-%d" % (self.num, self.next_n)
            topic = self.topic_for(self.next_n)
            pid = self._alloc_pid()
            self.inflight[pid] = [payload, topic, "sent", False]  # [3]: PUBREL sent
            self.published += 1
            self.h.all_published[payload] = self.qos
            self.conn.send(mqttraw.encode_publish(self.version, topic, payload, self.qos,
                                                  self.retained, pid=pid))

    def _alloc_pid(self):
        for _ in range(65535):
            self.next_pid = self.next_pid % 65535 + 1
            if self.next_pid not in self.inflight:
                return self.next_pid
        raise HarnessError("%s: no free packet id" % self.name)

    def _acked(self, payload, topic, kind):
        if payload not in self.acked:
            self.acked[payload] = (self.h.cycle, kind, time.monotonic() - self.h.cycle_t0)
        self.h.records.ack(self.h.cycle, kind, payload, topic)

    def on_packet(self, p):
        e = self.inflight.get(p.pid) if p.pid is not None else None
        if p.type == mqttraw.PUBACK and e is not None and e[2] == "sent" and self.qos == 1:
            del self.inflight[p.pid]
            if p.rc < 0x80:
                self._acked(e[0], e[1], "puback")
            else:
                self.refused += 1
        elif p.type == mqttraw.PUBREC and e is not None and self.qos == 2:
            if p.rc >= 0x80:
                del self.inflight[p.pid]
                self.refused += 1
                return
            e[2] = "rec"
            self._acked(e[0], e[1], "pubrec")
            if not self.conn.dead:
                self.conn.send(mqttraw.encode_ack(self.version, mqttraw.PUBREL, p.pid))
                e[3] = True
        elif p.type == mqttraw.PUBCOMP and e is not None and e[2] == "rec":
            del self.inflight[p.pid]
            if p.rc == 0x92 and p.pid not in self._rel_sent_before:
                self.h.fail_event("cycle %d: %s: PUBCOMP 0x92 (packet id not found) for %s, "
                                  "PUBREC'd earlier: inbound QoS 2 state lost" % (
                                      self.h.cycle, self.name, e[0]))
            self._acked(e[0], e[1], "pubcomp")
        else:
            self.h.fail_event("cycle %d: %s: unexpected packet %r (inflight %r)" % (
                self.h.cycle, self.name, p, e))


# ---------------------------------------------------------------- the run
class Harness:
    def __init__(self, opts, kind):
        self.opts = opts
        self.kind = kind  # "killloop" or "powerloss"
        self.rng = random.Random(opts.seed)
        if opts.workdir:
            os.makedirs(opts.workdir, exist_ok=True)
            self.workdir = opts.workdir
        else:
            self.workdir = tempfile.mkdtemp(prefix="lmq-%s-" % kind)
        self.records = Records(self.workdir)
        self.server = Server(opts, self.workdir)
        self.cycle = 0
        self.cycle_t0 = time.monotonic()
        self.last_delivery = time.monotonic()
        self.events = []        # failures seen while running
        self.all_published = {}  # payload -> qos
        self.cycle_end = {}     # cycle -> how it ended ("kill", "tear", ...)
        self.deadline = time.monotonic() + opts.timeout_s
        even = opts.seed % 2 == 0
        v_a, v_b = (5, 4) if even else (4, 5)
        self.subs = [Subscriber(self, "sub-q1", v_a, 1), Subscriber(self, "sub-q2", v_b, 2)]
        self.pubs = [Publisher(self, 1, v_b, 1, persistent=True, retained=False),
                     Publisher(self, 2, v_a, 2, persistent=True, retained=False),
                     Publisher(self, 3, v_b, 1, persistent=False, retained=True)]
        self.shim_tracked = set()

    # hooks for powerloss.py
    def server_env(self, label):
        return {}

    def after_stop(self, label):
        pass

    def fail_event(self, msg):
        if len(self.events) < 1000:
            self.events.append(msg)

    def log(self, msg):
        if not self.opts.quiet:
            print(msg, flush=True)

    def check_deadline(self):
        if time.monotonic() > self.deadline:
            raise HarnessError("run deadline of %.0f s passed" % self.opts.timeout_s)

    # -- the selector loop
    def pump(self, until, stop_when=None):
        """Runs the clients until `until` (monotonic) or stop_when() is true."""
        sel = selectors.DefaultSelector()
        live = {}
        for c in self.subs + self.pubs:
            if c.conn is not None and not c.conn.dead:
                sel.register(c.conn.sock, selectors.EVENT_READ, c)
                live[c.name] = c
        for c in live.values():
            # Packets that arrived with the CONNACK sit in inbuf: the socket may never be
            # readable again for them.
            for p in c.conn.read_packets():
                c.on_packet(p)
        try:
            while True:
                now = time.monotonic()
                if now >= until or (stop_when is not None and stop_when()):
                    return
                self.check_deadline()
                for c in list(live.values()):
                    if not c.conn.dead and isinstance(c, Publisher):
                        c.fill()
                    if c.conn.dead:
                        self._lost_connection(c)
                        sel.unregister(c.conn.sock)
                        del live[c.name]
                        continue
                    want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.conn.outbuf else 0)
                    if sel.get_key(c.conn.sock).events != want:
                        sel.modify(c.conn.sock, want, c)
                for key, mask in sel.select(min(0.05, max(0.0, until - now))):
                    c = key.data
                    if mask & selectors.EVENT_WRITE:
                        c.conn.flush()
                    if mask & selectors.EVENT_READ and not c.conn.dead:
                        for p in c.conn.read_packets():
                            c.on_packet(p)
                self.records.sync()
        finally:
            sel.close()

    def _lost_connection(self, c):
        """The broker closed a connection before we killed it: fine if it is dying anyway."""
        try:
            self.server.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            c.unexpected_close = True
            self.fail_event("cycle %d: the broker closed %s's connection while running" % (
                self.cycle, c.name))

    def collect_after_kill(self):
        """Acks the broker wrote before it died may still sit in our sockets: they count."""
        for p in self.pubs:
            if p.conn is None:
                continue
            pkts = p.conn.read_packets()
            p.conn.dead = True  # nothing can be sent to a dead broker: record only
            for pkt in pkts:
                p.on_packet(pkt)

    def drop_all(self):
        for c in self.subs + self.pubs:
            c.drop()

    # -- phases
    def setup(self):
        """Creates the persistent subscriptions, then stops the broker cleanly."""
        self.server.start("setup", self.server_env("setup"))
        self.log("store=%s sync=%s data=%s" % (self.server.store, self.opts.sync,
                                               self.server.datadir))
        for s in self.subs:
            s.connect(self.server.port)
            s.conn.sock.setblocking(True)
            s.conn.sock.settimeout(CONNECT_TIMEOUT_S)
            s.conn.sock.sendall(mqttraw.encode_subscribe(s.version, 1, [("crash/#", s.qos)]))
            buf = bytearray()
            ack = None
            while ack is None:
                chunk = s.conn.sock.recv(65536)
                if not chunk:
                    raise HarnessError("%s: closed before SUBACK" % s.name)
                buf += chunk
                ack = _parse(buf, s.version)
            if ack.type != mqttraw.SUBACK or ack.rcs != [s.qos]:
                raise HarnessError("%s: bad SUBACK %r" % (s.name, ack))
            s.conn.sock.sendall(mqttraw.encode_disconnect(s.version))
            s.drop()
        time.sleep(0.1)  # let the broker read the DISCONNECTs
        rc = self.server.terminate()
        if rc != 0:
            self.fail_event("setup: broker exited %r on SIGTERM" % rc)
        self.after_stop("setup")

    def run_cycle(self):
        label = "%04d" % self.cycle
        delay_s = self.rng.uniform(self.opts.min_delay_ms, self.opts.max_delay_ms) / 1000.0
        offline = [self.rng.random() < SUB_OFFLINE_CHANCE for _ in self.subs]
        self.server.start(label, self.server_env(label))
        self.cycle_t0 = time.monotonic()
        for s, off in zip(self.subs, offline):
            if not off:
                s.start(self.server.port)
        for p in self.pubs:
            p.cycle_budget = self.opts.max_per_cycle or None
            p.start(self.server.port)
        self.pump(time.monotonic() + delay_s, stop_when=lambda: not self.server.alive())
        rc = self.server.kill()
        if not self.server.killed:
            if rc == 137 and self.opts.tear:
                self.cycle_end[self.cycle] = "torn fsync (_exit 137)"
            else:
                self.cycle_end[self.cycle] = "died by itself (%r)" % rc
                self.fail_event("cycle %d: the broker died by itself with %r before the kill:\n%s"
                                % (self.cycle, rc, self.server.log_tail()))
        else:
            self.cycle_end[self.cycle] = "SIGKILL after %.0f ms" % (delay_s * 1000)
        self.collect_after_kill()
        self.records.sync(force=True)
        self.drop_all()
        self.after_stop(label)

    def final(self):
        self.cycle += 1
        label = "final"
        self.server.start(label, self.server_env(label))
        self.cycle_t0 = time.monotonic()
        for s in self.subs:
            s.start(self.server.port)
        for p in self.pubs:
            p.stop_new = True
            p.start(self.server.port)
        self.last_delivery = time.monotonic()
        until = min(self.deadline, time.monotonic() + DRAIN_TIMEOUT_S)

        def drained():
            busy = any(p.inflight for p in self.pubs if p.persistent)
            return not busy and time.monotonic() - self.last_delivery > DRAIN_QUIET_S

        self.pump(until, stop_when=lambda: drained() or not self.server.alive())
        if not drained():
            self.fail_event("final: not drained within %.0f s (publishers' open flows: %s)" % (
                DRAIN_TIMEOUT_S, {p.name: len(p.inflight) for p in self.pubs}))
        retained = self.read_retained() if self.server.alive() else {}
        self.records.sync(force=True)
        for c in self.subs + self.pubs:
            if c.conn is not None and not c.conn.dead:
                c.conn.sock.setblocking(True)
                try:
                    c.conn.sock.sendall(mqttraw.encode_disconnect(c.version))
                except OSError:
                    pass
        time.sleep(0.1)
        self.drop_all()
        if not self.server.alive():
            self.fail_event("final: the broker died during the drain:\n%s" % self.server.log_tail())
            self.server.kill()
        else:
            rc = self.server.terminate()
            if rc != 0:
                self.fail_event("final: broker exited %r on SIGTERM (expected 0):\n%s" % (
                    rc, self.server.log_tail()))
        self.after_stop(label)
        return retained

    def read_retained(self):
        """A fresh client (clean start) reads crash/retained/#: topic -> payload."""
        fresh = Client(self, "fresh", 5, persistent=False)
        fresh.connect(self.server.port)
        sock = fresh.conn.sock
        sock.setblocking(True)
        sock.sendall(mqttraw.encode_subscribe(5, 1, [("crash/retained/#", 1)]))
        got = {}
        buf = fresh.conn.inbuf
        deadline = time.monotonic() + RETAINED_TIMEOUT_S
        quiet_until = time.monotonic() + RETAINED_QUIET_S
        while time.monotonic() < min(deadline, quiet_until):
            sock.settimeout(max(0.01, min(deadline, quiet_until) - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            while True:
                p = _parse(buf, 5)
                if p is None:
                    break
                if p.type == mqttraw.PUBLISH:
                    if p.retain:
                        got[p.topic] = p.payload.decode("ascii", "replace")
                    if p.qos:
                        sock.sendall(mqttraw.encode_ack(5, mqttraw.PUBACK, p.pid))
                    quiet_until = time.monotonic() + RETAINED_QUIET_S
        try:
            sock.sendall(mqttraw.encode_disconnect(5))
        except OSError:
            pass
        fresh.drop()
        return got

    # -- verdict
    def verify(self, retained):
        """Returns (lines of the summary, number of problems)."""
        out = []
        acked_q1 = {}
        acked_q2 = {}
        for p in self.pubs:
            (acked_q2 if p.qos == 2 else acked_q1).update(p.acked)
        lost = {}
        for s in self.subs:
            want = list(acked_q1) + list(acked_q2)
            lost[s.name] = [x for x in want if s.counts.get(x, 0) == 0]
        q2sub = [s for s in self.subs if s.qos == 2][0]
        dups = sorted(x for x, n in q2sub.counts.items()
                      if n > 1 and self.all_published.get(x) == 2)
        phantoms = sorted({x for s in self.subs for x in s.counts if x not in self.all_published})
        # Retained: last acknowledged n per topic.
        ret_pub = [p for p in self.pubs if p.retained][0]
        last = {}
        for payload in ret_pub.acked:
            n = int(payload.split("-")[1])
            t = ret_pub.topic_for(n)
            last[t] = max(last.get(t, 0), n)
        ret_bad = []
        for t, n in sorted(last.items()):
            have = retained.get(t)
            ok = False
            if have is not None and have.startswith("p%d-" % ret_pub.num):
                hn = int(have.split("-")[1])
                ok = hn >= n and ret_pub.topic_for(hn) == t and have in self.all_published
            if not ok:
                ret_bad.append("%s: last acknowledged p%d-%d, fresh subscriber got %r" % (
                    t, ret_pub.num, n, have))

        total_lost = sum(len(v) for v in lost.values())
        out.append("cycles: %d (%s)" % (self.opts.cycles, self._endings()))
        out.append("published: %d (%s)" % (sum(p.published for p in self.pubs), ", ".join(
            "%s %d" % (p.name, p.published) for p in self.pubs)))
        out.append("acknowledged: %d QoS 1 + %d QoS 2 (PUBREC or PUBCOMP); refused %d; "
                   "abandoned unacked (clean-session pub) %d" % (
                       len(acked_q1), len(acked_q2), sum(p.refused for p in self.pubs),
                       sum(p.abandoned for p in self.pubs)))
        out.append("received: " + ", ".join("%s (v%s, QoS %d) %d deliveries, %d distinct, "
                                             "%d with DUP" % (s.name, s.version if s.version == 5
                                                              else "3.1.1", s.qos,
                                                              s.received_total, len(s.counts),
                                                              s.dup_flagged)
                                             for s in self.subs))
        reuse_lost = sum(1 for s in self.subs for _, _, _, other in s.pid_reuse
                         if other in lost[s.name])
        out.append("lost: %d (%s)%s" % (total_lost, ", ".join(
            "%s %d" % (k, len(v)) for k, v in lost.items()), "" if not reuse_lost else
            "; %d of them dropped by the subscriber as re-sends because the broker reused a "
            "QoS 2 packet id still awaiting PUBREL (see PID-REUSE)" % reuse_lost))
        out.append("duplicates (QoS 2 on %s): %d" % (q2sub.name, len(dups)))
        out.append("retained topics checked: %d, wrong or missing: %d" % (len(last), len(ret_bad)))
        out.append("phantom payloads (never published): %d" % len(phantoms))
        out.append("other failures: %d" % len(self.events))
        for name, xs in lost.items():
            for x in self._sorted_payloads(xs)[:EXAMPLES_MAX]:
                out.append("  LOST %s never reached %s: %s" % (x, name, self._ack_info(x)))
        for x in dups[:EXAMPLES_MAX]:
            out.append("  DUP  %s reached %s %d times (%s): %s" % (
                x, q2sub.name, q2sub.counts[x], "; ".join(
                    "cycle %d pid %s dup=%d" % (c, pid, int(d))
                    for c, pid, d in q2sub.qos2_history.get(x, [])), self._ack_info(x)))
        for x in ret_bad[:EXAMPLES_MAX]:
            out.append("  RETAINED " + x)
        for x in phantoms[:EXAMPLES_MAX]:
            out.append("  PHANTOM %s" % x)
        for x in self.events[:EXAMPLES_MAX]:
            out.append("  " + x)
        for s in self.subs:
            for cyc, pid, held, other in s.pid_reuse[:EXAMPLES_MAX]:
                out.append("  PID-REUSE cycle %d: %s still held QoS 2 packet id %d for %s (PUBREC "
                           "sent, no PUBREL) when the broker sent %s with that id: by the spec "
                           "a re-send, so %s was not delivered" % (cyc, s.name, pid, held, other,
                                                                   other))
        problems = total_lost + len(dups) + len(ret_bad) + len(phantoms) + len(self.events)
        loss_count = total_lost + len(dups) + len(ret_bad)
        first = self._first_loss_cycle(lost)
        if first is not None:
            out.append("first cycle with a loss: %d (%s); its broker log: %s" % (
                first, self.cycle_end.get(first), self._log_for(first)))
            out.append(self.server.log_tail(path=self._log_for(first)))
            out.append("recovery log (next start): %s" % self._log_for(first + 1))
            out.append(self.server.log_tail(path=self._log_for(first + 1)))
        return out, problems, loss_count

    def _endings(self):
        kinds = {}
        for v in self.cycle_end.values():
            k = v.split(" after ")[0]
            kinds[k] = kinds.get(k, 0) + 1
        return ", ".join("%s: %d" % kv for kv in sorted(kinds.items()))

    def _ack_info(self, payload):
        for p in self.pubs:
            if payload in p.acked:
                cyc, kind, t = p.acked[payload]
                return "%s in cycle %d at +%.0f ms (cycle ended: %s)" % (
                    kind, cyc, t * 1000, self.cycle_end.get(cyc, "final drain"))
        return "never acknowledged"

    def _sorted_payloads(self, xs):
        return sorted(xs, key=lambda x: (x.split("-")[0], int(x.split("-")[1])))

    def _first_loss_cycle(self, lost):
        cycles = [p.acked[x][0] for p in self.pubs for v in lost.values() for x in v
                  if x in p.acked]
        return min(cycles) if cycles else None

    def _log_for(self, cycle):
        if cycle > self.opts.cycles:
            return os.path.join(self.workdir, "server-final.log")
        return os.path.join(self.workdir, "server-%04d.log" % cycle)

    def run(self):
        t0 = time.monotonic()
        retained = {}
        aborted = None
        try:
            self.setup()
            for self.cycle in range(1, self.opts.cycles + 1):
                self.run_cycle()
                if self.cycle % max(1, self.opts.cycles // 10) == 0:
                    self.log("cycle %d/%d: acked %d, received %s" % (
                        self.cycle, self.opts.cycles, sum(len(p.acked) for p in self.pubs),
                        "/".join(str(s.received_total) for s in self.subs)))
            retained = self.final()
        except (HarnessError, mqttraw.ProtocolError, OSError) as e:
            aborted = "%s: %s" % (type(e).__name__, e)
            self.fail_event("run aborted in cycle %d: %s" % (self.cycle, aborted))
        finally:
            try:
                if self.server.alive():
                    self.server.kill()
            except HarnessError:
                pass
            self.drop_all()
            self.records.close()
        lines, problems, loss_count = self.verify(retained)
        print("== %s store=%s seed=%d sync=%s%s (%.1f s), records in %s" % (
            self.kind, self.server.store, self.opts.seed, self.opts.sync, " tear" if self.opts.tear else "",
            time.monotonic() - t0, self.workdir))
        for line in lines:
            print(line)
        with open(os.path.join(self.workdir, "summary.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        if self.opts.expect_loss:
            other = problems - loss_count
            ok = loss_count > 0 and aborted is None
            if ok:
                print("control: %d losses detected, as expected with durability off%s" % (
                    loss_count, "" if not other else " (%d other failures listed above, not "
                    "counted: they follow from the lost state)" % other))
            else:
                print("control FAILED: %s" % ("the run aborted" if aborted else
                                               "no loss detected: this harness cannot see a loss"))
        else:
            ok = problems == 0
        print("%d passed, %d failed" % (int(ok), int(not ok)))
        if ok and not self.opts.keep and not self.opts.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return 0 if ok else 1


def parse_args(description, argv=None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bin", default=os.environ.get("LEDGERMQ_BIN"), help="the ledgermq binary")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sync", choices=("always", "off"), default="always")
    ap.add_argument("--expect-loss", action="store_true",
                    help="control run: pass only if losses are detected")
    ap.add_argument("--min-delay-ms", type=float, default=50.0)
    ap.add_argument("--max-delay-ms", type=float, default=800.0)
    ap.add_argument("--max-per-cycle", type=int, default=1500,
                    help="new messages per publisher per cycle, so that a subscriber that sits "
                         "out a cycle does not fill its queue at once (0: no limit)")
    ap.add_argument("--log-level", default="info",
                    help="broker log level (the ready line is logged at info)")
    ap.add_argument("--workdir", help="keep data, logs and records here (default: a temp dir, "
                                      "removed when the run passes)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir even on success")
    ap.add_argument("--timeout-s", type=float, default=None,
                    help="deadline for the whole run (default 10 s per cycle + 300 s)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--tear", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if not opts.bin:
        ap.error("--bin or LEDGERMQ_BIN is required")
    opts.bin = os.path.abspath(opts.bin)
    if not os.access(opts.bin, os.X_OK):
        ap.error("not an executable: %s" % opts.bin)
    if opts.timeout_s is None:
        opts.timeout_s = 10.0 * opts.cycles + 300.0
    if opts.cycles < 1 or not 0 <= opts.min_delay_ms <= opts.max_delay_ms:
        ap.error("need --cycles >= 1 and 0 <= --min-delay-ms <= --max-delay-ms")
    return opts
