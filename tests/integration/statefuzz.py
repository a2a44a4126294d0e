"""A stateful fuzzer for the broker (docs/SECURITY.md, "Attacks the tests perform").

A seeded random walk drives a pool of raw MQTT clients (3.1.1 and 5, over TCP and WebSocket;
anonymous, password users and logged-in identities) against the real binary: connects (clean
and persistent, session expiry, wills of every QoS, retained wills, will delay, wills aimed at
other identities' topics), takeovers of a client id by another principal, subscriptions
(`#`, `+/+/inbox`, `$share/g/id/<victim>/inbox`, ...), publishes of every QoS (retained, empty
payloads to clear), real signed envelopes through the ledger pipeline, forged envelopes,
half-finished QoS 2 flows in both directions, dropped sockets, DISCONNECT with and without the
will, and broker restarts by SIGTERM and SIGKILL on the same data directory.

A model follows what the broker must do, and every packet the clients receive is checked
against it. The invariants (each violation names one; see INVARIANTS):

  alive        the broker never dies on its own (a sanitizer report kills it) and exits 0 on
               SIGTERM (checked by the conftest teardown too)
  forged       nothing a client published (PUBLISH or will) ever arrives on
               id/<x>/inbox|ack|reject|sync; an inbox message is a server envelope wrapper
               whose envelope verifies, is addressed to <x>, was sent by a fuzz identity, and
               whose position always names the same envelope
  leak         a message on id/<x>/... reaches only sessions of identity <x>
  origin       a message on any other topic carries a payload a fuzz client published on that
               very topic (as a PUBLISH or a will)
  refused      what must be refused is refused: a CONNECT whose will topic the client may not
               publish to, a client id owned by another principal, a filter naming another
               identity (also after `$share/<g>/`), a PUBLISH on another identity's topics or
               retained under id/
  accepted     what must be accepted is: CONNECTs, SUBSCRIBEs, PUBLISHes on ordinary topics
  present      CONNACK's session-present flag matches the model where the model is sure
  lost         a message acknowledged to its publisher (PUBACK, or PUBREC for QoS 2) on a topic
               that a persistent session had subscribed to at QoS >= 1 (SUBACK received before
               the PUBLISH) is delivered to that session, across reconnects, SIGTERM and
               SIGKILL, unless the session was discarded (clean start) or taken by another
               principal since; so is an envelope acknowledged on its first attempt, by its
               link, to the recipient's persistent sessions subscribed to its inbox
  duplicate    a message reaches a session once at QoS 0 and QoS 2 (a QoS 2 re-send with the
               packet id still awaiting PUBREL is the same delivery), and again at QoS 1 only
               on a later connection: as a DUP re-send, or (after a SIGKILL, when the record
               of the first send may not have been committed) as a new send

Claims are only as strong as the model can know them: after SIGKILL a session whose CONNECT or
end was not yet followed by a committed acknowledgement may or may not exist, a clean session
whose socket was dropped may still be ending when the next CONNECT with its id arrives, and so
on: such states are "maybe", and only the broker's answer resolves them.

Findings whose fix is not merged yet (PENDING_FINDINGS) have their invariants relaxed: the walk
still performs the attack, a violation attributed to such a finding is recorded and printed
(never failed), and either answer of the broker is accepted where the fix would refuse.
"""

import base64
import hashlib
import json
import os
import random
import select
import shutil
import subprocess
import time

import ledgerclient as lc
import mqttraw as m
import wsclient as ws

# Findings whose fix is not merged yet: their invariants are relaxed (none today: issue 12's
# findings 2, 3, 9 and N1, the one this fuzzer found, are fixed). To run the walk against an
# older build, name them in the environment: LMQ_FUZZ_PENDING="2,3,9,N1" (or "" for none).
PENDING_FINDINGS = frozenset()

ACK_TIMEOUT_S = 15.0  # generous: ASan build on a loaded 2-core machine
DRAIN_IDLE_S = 6.0  # final check: give up on a session after this long without progress
MAX_CONNS = 24  # open connections at once
CLIENT_IDS = ["c%d" % i for i in range(12)]
PLAIN_TOPICS = ["t/a", "t/b", "t/a/x", "s/1", "s/2/deep", "w/%s"]
PASSWORD_USERS = ("alice", "bob", "carol")
EXPIRY_NEVER = 0xFFFFFFFF
LONG_EXPIRY_S = 3600
SHORT_EXPIRY_S = 3
SERVER_LEAVES = ("inbox", "ack", "reject", "sync")


def pending_findings():
    v = os.environ.get("LMQ_FUZZ_PENDING")
    if v is None:
        return set(PENDING_FINDINGS)
    return {x for x in v.replace(" ", "").split(",") if x}


def topic_matches(flt, topic):
    """MQTT filter matching (no $share prefix); wildcards at the first level skip $ topics."""
    f = flt.split("/")
    t = topic.split("/")
    if topic.startswith("$") and f[0] in ("#", "+"):
        return False
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part != "+" and part != t[i]:
            return False
    return len(f) == len(t)


def split_shared(flt):
    """(group, filter) for $share/<g>/<filter>, else (None, flt)."""
    if flt.startswith("$share/"):
        parts = flt.split("/", 2)
        if len(parts) == 3:
            return parts[1], parts[2]
    return None, flt


def scrypt_line(user, password):
    """A password file line with cheap scrypt parameters (the broker accepts any n >= 2)."""
    salt = os.urandom(16)
    h = hashlib.scrypt(password.encode(), salt=salt, n=16, r=1, p=1, dklen=32)
    return "%s:$scrypt$N=16,r=1,p=1$%s$%s" % (
        user, base64.b64encode(salt).decode(), base64.b64encode(h).decode())


def broker_config(tmpdir):
    pw = os.path.join(tmpdir, "fuzz-passwd")
    with open(pw, "w") as f:
        for u in PASSWORD_USERS:
            f.write(scrypt_line(u, "pw-" + u) + "\n")
    # High queue limits: a refusal for a full queue would be legitimate, and the model
    # wants every refusal it sees to be a violation.
    return ("[limits]\nmax_queued_messages = 100000\nmax_queued_bytes = 1000000000\n"
            "max_inflight = 100\n[auth]\npassword_file = %s\n" % pw)


class Violation(AssertionError):
    def __init__(self, text, invariant=None):
        super().__init__(text)
        self.invariant = invariant


class Principal:
    def __init__(self, kind, name, ident=None):
        self.kind = kind  # anon, pw, id
        self.name = name
        self.ident = ident
        self.token = None
        self.token_at = 0.0

    @property
    def key(self):
        return "%s:%s" % (self.kind, self.name)

    def __repr__(self):
        return self.key


class Conn:
    """One connection of the walk."""

    def __init__(self, no, principal, client_id, version, websocket):
        self.no = no
        self.principal = principal
        self.client_id = client_id
        self.version = version
        self.websocket = websocket
        self.rc = None
        self.open = False
        self.noack = False  # hold acknowledgements of received messages
        self.acks = {}  # (type, pid) -> Packet, acks waited for
        self.subacks = {}
        self.held = []  # received QoS 1/2 PUBLISHes not acknowledged yet (noack)
        self.server_closed = False
        self.session_expiry = 0
        # Input after the CONNACK waits until the model has taken the CONNACK in: what
        # follows it (re-sent PUBLISHes, PUBRELs) belongs to the session as it is then.
        self.hold = False
        self.will = None

    def __repr__(self):
        return "#%d(%s %s v%d%s)" % (self.no, self.client_id, self.principal.key, self.version,
                                     " ws" if self.websocket else "")


class Session:
    """The model of one client id's session."""

    def __init__(self, cid):
        self.cid = cid
        self.exists = "no"  # yes, no, maybe
        self.owner = None
        self.persistent = False
        self.expiry = 0
        self.tracked = False
        self.tainted = False  # taken by another principal (a pending finding 3)
        self.ever_stored = False
        self.subs = {}  # filter -> granted QoS
        self.expected = {}  # payload -> topic: acked messages this session must get
        self.rx_q2 = {}  # pid -> payload: QoS 2 deliveries awaiting PUBREL
        self.seen = {}  # payload -> (qos, conn number) of the last delivery
        self.got = set()  # every payload delivered to this client id
        self.out_q2 = {}  # pid -> (topic, payload, stored): our QoS 2 publishes PUBREC'd
        self.unstored_subs = set()  # filters subscribed while not persistent (finding N1)
        self.n1_suspect_subs = set()  # such filters kept over a restart (strict N1 mode)
        self.n1_suspect_pids = set()
        self.conn = None
        self.dirty_seq = 0  # op sequence of the last state change not known committed

    def reset(self):
        self.subs = {}
        self.expected = {}
        self.rx_q2 = {}
        self.out_q2 = {}
        self.unstored_subs = set()
        self.n1_suspect_subs = set()
        self.n1_suspect_pids = set()
        self.tainted = False


class Fuzzer:
    def __init__(self, broker, seed, steps, pending=None, log_tail=400, control=None):
        """control: None for a real run, or a way to break the broker's promises on purpose
        so that a test can show the invariants catch it: "wipe" (SIGKILL and an empty data
        directory half way: sessions and acked messages vanish) or "swallow" (a client
        acknowledges one owed message without the model seeing it)."""
        self.control = control
        self.swallowed = None
        self.stop = False
        self.wiping = False
        self.b = broker
        self.seed = seed
        self.steps = steps
        self.rnd = random.Random(seed)
        self.pending = pending_findings() if pending is None else set(pending)
        self.log_lines = []
        self.log_tail = log_tail
        self.known = {}  # finding -> [messages] (relaxed invariants that fired)
        self.conns = []
        self.conn_no = 0
        self.sessions = {cid: Session(cid) for cid in CLIENT_IDS}
        self.sent = {}  # payload -> topic: everything fuzz clients published (and wills)
        self.will_payloads = set()
        self.retained_payloads = set()
        self.envelopes = {}  # link -> envelope (every envelope a fuzz identity published)
        self.positions = {}  # (recipient id, position) -> link
        self.inbox_seen = []  # inbox message payloads received (material for replays)
        self.counter = 0
        self.op_seq = 0
        self.committed_seq = 0
        self.stats = {}
        self.step_no = 0
        self.kill_conn_no = 0  # the last connection number before the last SIGKILL
        self._addresses()
        self.principals = [Principal("anon", "anon")]
        self.principals += [Principal("pw", u) for u in PASSWORD_USERS]
        self.idents = []
        for i in range(3):
            ident = lc.Identity(hashlib.sha256(b"fuzz-identity-%d" % i).digest())
            self.idents.append(ident)
            self.principals.append(Principal("id", ident.id[:8], ident))
        self.ident_pending = {}  # identity id -> envelope sent, not acknowledged yet

    # ------------------------------------------------------------------ plumbing
    def _addresses(self):
        ready = self.b.events("ready")[-1]
        self.http_addr = ready["http"][0]
        host, port = self.http_addr.rsplit(":", 1)
        self.http_host, self.http_port = host, int(port)

    def log(self, text):
        self.log_lines.append("[%d] %s" % (self.step_no, text))

    def bump(self, what):
        self.stats[what] = self.stats.get(what, 0) + 1

    def payload(self, tag):
        self.counter += 1
        return ("fz%d-%d-%s" % (self.seed, self.counter, tag)).encode()

    def violation(self, invariant, finding, text):
        """finding: the issue-12 finding this violation shows (None: unknown, always fails)."""
        msg = "%s: %s" % (invariant, text)
        finding = None if finding is None else str(finding)
        if finding is not None and finding in self.pending:
            self.known.setdefault(finding, []).append("[%d] %s" % (self.step_no, msg))
            self.bump("known_%s_%s" % (finding, invariant))
            self.log("KNOWN finding %s: %s" % (finding, msg))
            return
        # A broker that is dying shows first as closed connections: say what it is.
        try:
            self.b.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        self.check_alive()
        self.log("VIOLATION " + msg)
        raise Violation(self.report("%s%s" % (
            msg, "" if finding is None else " (finding %s)" % finding)), invariant)

    def report(self, headline):
        tail = self.log_lines[-self.log_tail:]
        return ("stateful fuzz seed=%d steps=%d failed at step %d: %s\n"
                "reproduce: LMQ_FUZZ_SEED=%d LMQ_FUZZ_SEEDS=1 LMQ_FUZZ_STEPS=%d make test-attack "
                "(pending findings %s)\n"
                "---- step log (last %d lines) ----\n%s" % (
                    self.seed, self.steps, self.step_no, headline, self.seed, self.steps,
                    ",".join(map(str, sorted(self.pending))) or "none", len(tail),
                    "\n".join(tail)))

    def check_alive(self):
        if not self.b.alive() and not self.b.killed:
            raise Violation(self.report("alive: the broker died (exit %s)\n%s" % (
                self.b.proc.returncode, self.b.log_text(120))), "alive")

    def token(self, p):
        if p.token is None or time.monotonic() - p.token_at > 600:
            p.token = lc.login(self.http_addr, p.ident)
            p.token_at = time.monotonic()
        return p.token

    # ------------------------------------------------------------------ I/O
    def _socket_of(self, c):
        return c.rc.sock.conn.sock if c.websocket else c.rc.sock

    def pump(self, duration=0.0, until=None):
        """Reads and handles whatever arrives on every open connection, for `duration`
        seconds or until until() is true (returns its value; None on timeout)."""
        deadline = time.monotonic() + duration
        while True:
            if until is not None:
                v = until()
                if v:
                    return v
            opened = [c for c in self.conns if c.open and not c.hold]
            ready = [c for c in opened if c.rc.buf or (c.websocket and c.rc.sock.conn.buf)]
            remaining = deadline - time.monotonic()
            if not ready and opened:
                socks = {self._socket_of(c): c for c in opened}
                try:
                    r, _, _ = select.select(list(socks), [], [], max(0.0, min(remaining, 0.05)))
                except (OSError, ValueError):
                    r = []
                ready = [socks[s] for s in r]
            elif not opened and remaining > 0:
                time.sleep(min(remaining, 0.05))
            for c in ready:
                self._read(c)
            if time.monotonic() >= deadline:
                return until() if until is not None else None

    def _read(self, c):
        if not c.open:
            return
        self._parse(c)
        if not c.open:
            return
        try:
            c.rc._fill(time.monotonic() + 0.05)
        except m.Timeout:
            pass
        except (m.Closed, OSError):
            self._parse(c)
            self._ended(c, "server closed")
            return
        self._parse(c)

    def _parse(self, c):
        while c.open and not c.hold:
            try:
                p = c.rc._try_parse()
            except m.ProtocolError as e:
                self.violation("protocol", None, "%r sent bytes we cannot parse: %s" % (c, e))
            if p is None:
                break
            self._packet(c, p)

    def send(self, c, data):
        try:
            c.rc.send_raw(data)
            return True
        except (m.Closed, OSError):
            self._ended(c, "send failed")
            return False

    # ------------------------------------------------------------------ packets in
    def _packet(self, c, p):
        if p.type == m.PUBLISH:
            self._publish_in(c, p)
        elif p.type == m.PUBREL:
            self.log("%r <- PUBREL %d" % (c, p.pid))
            if c.noack:
                c.held.append(p)
            else:
                self._ack_in(c, p)
        elif p.type in (m.PUBACK, m.PUBREC, m.PUBCOMP, m.SUBACK, m.UNSUBACK, m.PINGRESP):
            c.acks[(p.type, p.pid)] = p
        elif p.type == m.CONNACK:
            c.acks[(p.type, p.pid)] = p
            c.hold = True
        elif p.type == m.DISCONNECT:
            self.log("%r got DISCONNECT 0x%02x" % (c, p.rc))
            c.server_closed = True
        else:
            self.violation("protocol", None, "%r got unexpected %r" % (c, p))

    def _publish_in(self, c, p):
        s = self.sessions[c.client_id]
        self.bump("deliveries")
        if self.control == "swallow" and self.swallowed is None and p.qos > 0 and \
                s in self.expect_for(p.topic) and p.payload in self.sent and \
                p.payload not in self.retained_payloads and \
                p.payload not in self.will_payloads and p.payload not in s.got and \
                not c.noack and s.conn is c:
            self.swallowed = (s, p.payload)
            self.stop = True  # straight to the final check, which must miss it
            self.log("CONTROL: %r swallows %r" % (c, p.payload))
            self._ack_in(c, p)
            return
        self.check_delivery(c, s, p)
        if p.qos == 0:
            return
        if c.noack:
            c.held.append(p)
            return
        self._ack_in(c, p)

    def _ack_in(self, c, p):
        if p.type == m.PUBREL:
            s = self.sessions[c.client_id]
            if s.conn is c:
                s.rx_q2.pop(p.pid, None)
            self.send(c, m.encode_ack(c.version, m.PUBCOMP, p.pid))
        elif p.qos == 1:
            self.send(c, m.encode_ack(c.version, m.PUBACK, p.pid))
        else:
            self.send(c, m.encode_ack(c.version, m.PUBREC, p.pid))

    # ------------------------------------------------------------------ delivery checks
    def check_delivery(self, c, s, p):
        topic, payload = p.topic, p.payload
        self.log("%r <- %s q%d%s%s pid=%s %r" % (c, topic, p.qos, " r" if p.retain else "",
                                                " dup" if p.dup else "", p.pid, payload[:40]))
        if topic.startswith("id/"):
            self.check_identity_delivery(c, s, p)
        elif payload:
            origin = self.sent.get(payload)
            if origin != topic:
                self.violation("origin", None, "%r got %r on %s, published on %s" % (
                    c, payload[:60], topic, origin))
        s.expected.pop(payload, None)
        s.got.add(payload)
        if payload not in self.sent or payload in self.will_payloads or \
                payload in self.retained_payloads:
            # Server messages are not unique; retained ones come again on a later subscribe,
            # wills may go out again after a crash.
            return
        self.check_duplicate(c, s, p)

    def check_duplicate(self, c, s, p):
        payload = p.payload
        if p.qos == 2 and p.pid in s.rx_q2:
            if s.rx_q2[p.pid] != payload:
                self.violation("duplicate", None, "%r: QoS 2 packet id %d awaiting PUBREL "
                               "reused for another message" % (c, p.pid))
            return  # the same delivery re-sent
        prev = s.seen.get(payload)
        if prev is not None:
            # QoS 1 may come again on a later connection, as a DUP re-send; after a SIGKILL
            # also as a new send (the record of the first send may not have been committed).
            ok = p.qos == 1 and prev[0] == 1 and prev[1] != c.no and (
                p.dup or prev[1] <= self.kill_conn_no)
            if not ok:
                self.violation("duplicate", None, "%r got %r again at QoS %d dup=%s (first at "
                               "QoS %d on connection #%d)" % (c, payload[:60], p.qos, p.dup,
                                                              prev[0], prev[1]))
        s.seen[payload] = (p.qos, c.no)
        if p.qos == 2:
            s.rx_q2[p.pid] = payload

    def check_identity_delivery(self, c, s, p):
        parts = p.topic.split("/")
        owner = parts[1] if len(parts) > 1 else ""
        leaf = parts[2] if len(parts) == 3 else None
        pr = c.principal
        if not (pr.kind == "id" and pr.ident.id == owner):
            finding = None
            if s.tainted:
                finding = 3
            elif p.retain:
                finding = 2
            elif any(g is not None and topic_matches(f, p.topic)
                     for g, f in map(split_shared, s.subs)):
                finding = 9
            self.violation("leak", finding, "%r (%s) got %s (retain=%s)" % (
                c, pr.key, p.topic, p.retain))
        if leaf not in SERVER_LEAVES:
            return
        if p.payload in self.sent:
            self.violation("forged", 2 if p.payload in self.will_payloads else None,
                           "%r got a client's payload on %s: %r" % (c, p.topic, p.payload[:80]))
            return
        try:
            doc = json.loads(p.payload)
        except ValueError:
            self.violation("forged", None, "%r got non-JSON on %s: %r" % (
                c, p.topic, p.payload[:80]))
            return
        if leaf == "inbox":
            self.check_inbox(c, s, owner, doc)
        elif leaf == "ack":
            if doc.get("link") not in self.envelopes or \
                    self.envelopes[doc["link"]]["from"] != owner:
                self.violation("forged", None, "%r: ack on %s for an envelope %s did not "
                               "send: %r" % (c, p.topic, owner[:8], doc))

    def check_inbox(self, c, s, owner, doc):
        try:
            env, pos = doc["envelope"], doc["position"]
            assert set(doc) == {"envelope", "index", "position"}, sorted(doc)
            lc.verify(env)
            assert env["to"] == owner, "addressed to %s" % env["to"][:8]
            link = lc.link(env)
            assert link in self.envelopes, "an envelope no fuzz identity sent"
        except Exception as e:  # noqa: BLE001 - any failure of the checks is the finding
            self.violation("forged", None, "%r: inbox message on id/%s/inbox does not check "
                           "out (%s): %r" % (c, owner[:8], e, doc))
            return
        known = self.positions.setdefault((owner, pos), link)
        if known != link:
            self.violation("forged", None, "%r: inbox position %d of %s names two envelopes" % (
                c, pos, owner[:8]))
        self.inbox_seen.append(doc)
        s.expected.pop("link:" + link, None)
        s.got.add("link:" + link)

    # ------------------------------------------------------------------ waiting for answers
    def next_op(self):
        self.op_seq += 1
        return self.op_seq

    def wait_ack(self, c, ptype, pid, op):
        """The ack of type ptype for pid on c, or None if c closed first (a timeout with c
        open is a violation: the broker must answer)."""
        key = (ptype, pid)
        self.pump(ACK_TIMEOUT_S, until=lambda: key in c.acks or not c.open)
        if key in c.acks:
            p = c.acks.pop(key)
            if ptype not in (m.CONNACK, m.PINGRESP) and (p.rc is None or p.rc < 0x80):
                # Sent only after the store commit that holds it (docs/PROTOCOL.md,
                # Durability), which also holds every earlier write.
                self.committed_seq = max(self.committed_seq, op)
            return p
        self.check_alive()
        if c.open:
            self.violation("accepted", None, "%r: no %s for packet id %s within %.0fs" % (
                c, m.TYPE_NAMES[ptype], pid, ACK_TIMEOUT_S))
        return None

    # ------------------------------------------------------------------ connections
    def _ended(self, c, why):
        if not c.open:
            return
        c.open = False
        c.rc.close()
        self.log("%r ended: %s" % (c, why))
        s = self.sessions[c.client_id]
        if s.conn is not c:
            return
        s.conn = None
        s.dirty_seq = self.next_op()
        if not s.persistent:
            s.exists = "no" if why == "server closed" else "maybe"
            s.tracked = False
        elif s.expiry != EXPIRY_NEVER and s.expiry < LONG_EXPIRY_S:
            s.exists = "maybe"
            s.tracked = False

    def open_socket(self, websocket, version):
        if websocket:
            conn = ws.WsConn(self.http_host, self.http_port, timeout=ACK_TIMEOUT_S)
            conn.upgrade()
            return m.RawClient(None, version=version, sock=conn.as_socket(),
                               timeout=ACK_TIMEOUT_S)
        return m.RawClient(self.b.port, version=version, host=self.b.host, timeout=ACK_TIMEOUT_S)

    def may_publish(self, pr, topic, retain, will=False):
        """Whether principal pr may publish (will: set a will) on topic: True, False, or None
        when either answer is right (a will on the own outbox or resync topic: it passes the
        publish checks, but a server may refuse wills under id/ altogether)."""
        if not topic.startswith("id/"):
            return True
        parts = topic.split("/")
        own = pr.kind == "id" and len(parts) == 3 and parts[1] == pr.ident.id and \
            parts[2] in ("outbox", "resync")
        if own and not retain:
            return None if will else True
        return False

    def will_topic(self, pr, cid):
        victim = self.rnd.choice(self.idents).id
        r = self.rnd.random()
        if r < 0.35:
            return "w/" + cid
        if r < 0.55:
            return self.rnd.choice(["t/a", "t/b", "s/1"])
        if r < 0.85:
            return "id/%s/%s" % (victim, self.rnd.choice(SERVER_LEAVES))
        if pr.kind == "id":
            return "id/%s/outbox" % pr.ident.id
        return "id/%s/outbox" % victim

    def forged_payload(self, victim_id):
        """An inbox-looking payload never produced by the server: a replayed envelope at a
        position of our choosing, or a self-signed envelope the ledger never saw."""
        if self.inbox_seen and self.rnd.random() < 0.6:
            doc = dict(self.rnd.choice(self.inbox_seen))
            doc["position"] = doc["position"] + 1000 + self.counter
            self.counter += 1
            return lc.canonical(doc).encode()
        forger = lc.Identity()
        env = forger.envelope(victim_id, {"amount": self.counter, "memo": "forged"})
        self.counter += 1
        return lc.canonical({"envelope": env, "index": 0, "position": 1}).encode()

    def act_connect(self):
        if sum(1 for c in self.conns if c.open) >= MAX_CONNS:
            return self.act_drop()
        rnd = self.rnd
        cid = rnd.choice(CLIENT_IDS)
        s = self.sessions[cid]
        if s.owner is not None and rnd.random() < 0.7:
            # Mostly the owner comes back; otherwise someone else tries its id.
            pr = next((p for p in self.principals if p.key == s.owner), rnd.choice(self.principals))
        else:
            pr = rnd.choice(self.principals)
        version = rnd.choice([4, 5])
        websocket = rnd.random() < 0.25
        clean = rnd.random() < 0.35
        expiry = 0
        if version == 5:
            expiry = rnd.choice([0, 0, SHORT_EXPIRY_S, LONG_EXPIRY_S, EXPIRY_NEVER])
        elif not clean:
            expiry = EXPIRY_NEVER
        will = None
        will_ok = True
        if rnd.random() < 0.45:
            topic = self.will_topic(pr, cid)
            retain = rnd.random() < 0.25
            if topic.startswith("id/") and topic.split("/")[2] in SERVER_LEAVES:
                payload = self.forged_payload(topic.split("/")[1])
            else:
                payload = self.payload("will")
            props = None
            if version == 5 and rnd.random() < 0.3:
                props = {"will_delay_interval": rnd.choice([1, 2])}
            will = m.Will(topic, payload, qos=rnd.choice([0, 1, 2]), retain=retain, props=props)
            will_ok = self.may_publish(pr, topic, retain, will=True)
            self.sent[payload] = topic
            self.will_payloads.add(payload)
        self.connect(pr, cid, version, websocket, clean, expiry, will, will_ok)

    def connect(self, pr, cid, version, websocket, clean, expiry, will, will_ok, final=False):
        s = self.sessions[cid]
        self.conn_no += 1
        c = Conn(self.conn_no, pr, cid, version, websocket)
        c.will = will
        kw = {}
        if pr.kind == "pw":
            kw = {"username": pr.name, "password": ("pw-" + pr.name).encode()}
        elif pr.kind == "id":
            kw = {"username": pr.ident.id, "password": self.token(pr).encode()}
        props = {"session_expiry_interval": expiry} if version == 5 and expiry else None
        self.log("%r CONNECT clean=%d expiry=%s will=%s (session %s owner %s)" % (
            c, clean, expiry, will and "%s q%d%s%s %r" % (
                will.topic, will.qos, " r" if will.retain else "",
                " delay" if will.props else "", will.payload[:30]), s.exists, s.owner))
        try:
            c.rc = self.open_socket(websocket, version)
        except (OSError, ws.Closed, ws.Timeout, AssertionError) as e:
            self.check_alive()
            self.violation("accepted", None, "%r: cannot open the connection: %s" % (c, e))
        prior = s.exists
        op = self.next_op()
        c.open = True
        self.conns.append(c)
        self.send(c, m.encode_connect(version, cid, clean, 60, props, will, **kw))
        ack = self.wait_ack(c, m.CONNACK, None, op)
        cross = s.owner is not None and s.owner != pr.key
        # Expected answer: refusal for a will it may not publish, or for another principal's
        # session (identity sessions have been protected all along; the rest is finding 3).
        must_refuse = 2 if will_ok is False else None  # the finding whose fix refuses it
        # "maybe": after a SIGKILL an older state of the session (another owner's) may be back.
        sess_refuse = cross and s.exists == "yes" or s.exists == "maybe"
        if ack is None:
            self.violation("accepted", None, "%r: closed without CONNACK" % c)
        if ack.rc != 0:
            self.log("%r refused 0x%02x" % (c, ack.rc))
            self._ended(c, "refused")
            refused_code = 0x87 if version == 5 else 5
            if ack.rc != refused_code:
                self.violation("accepted", None, "%r refused with 0x%02x" % (c, ack.rc))
            if will_ok is True and not sess_refuse:
                self.violation("accepted", None, "%r refused (0x%02x) but nothing forbids it" % (
                    c, ack.rc))
            self.bump("connect_refused")
            return None
        self.bump("connect")
        if must_refuse is not None:
            self.violation("refused", must_refuse, "%r: will on %s%s accepted" % (
                c, will.topic, " (retained)" if will.retain else ""))
        old_conn = s.conn
        if old_conn is not None:
            s.conn = None  # the old connection's end is the takeover, not a session end
        if cross and s.exists == "yes" or (cross and s.exists == "maybe" and
                                           ack.session_present and not clean):
            # Identity sessions have been protected all along; the rest is finding 3, and so is
            # anything after an earlier cross-principal takeover (the stored owner and the
            # one in memory may differ then, and a SIGKILL may bring back either).
            identity_owned = s.owner.startswith("id:") and not s.tainted
            self.violation("refused", None if identity_owned else 3,
                           "%r (%s) got client id %s of %s" % (c, pr.key, cid, s.owner))
            s.tainted = True
            s.tracked = False
            s.expected = {}
        if old_conn is not None and old_conn.open:
            # Taken over: the old connection gets DISCONNECT 0x8E (v5) and is closed.
            self.pump(ACK_TIMEOUT_S, until=lambda: not old_conn.open)
            if old_conn.open:
                self.violation("accepted", None, "%r still open after takeover by %r" % (
                    old_conn, c))
        self.check_present(c, s, clean, ack, prior)
        if not clean and ack.session_present and not s.persistent and expiry > 0 and (
                s.unstored_subs or any(not e[2] for e in s.out_q2.values())):
            self.bump("n1_upgrade")  # made persistent with state it never stored (N1)
        if clean or not ack.session_present:
            tainted = s.tainted and not clean and ack.session_present
            if self.swallowed is not None and self.swallowed[0] is s:
                self.swallowed, self.stop = None, False  # the session is discarded: again
            s.reset()
            s.tainted = tainted
            s.ever_stored = False
        s.exists = "yes"
        s.owner = pr.key
        s.conn = c
        s.expiry = expiry
        s.persistent = expiry > 0
        s.ever_stored = s.ever_stored or s.persistent
        long_lived = expiry == EXPIRY_NEVER or expiry >= LONG_EXPIRY_S
        # The model knows the subscriptions of a session it saw continue (session present):
        # every SUBACK it counted was committed, and a subscription it is unsure of is left
        # out of it (no expectation is ever built on it).
        s.tracked = long_lived and not s.tainted
        if not s.tracked:
            s.expected = {}
        s.dirty_seq = op
        c.session_expiry = expiry
        c.noack = not final and self.rnd.random() < 0.15
        c.hold = False
        self._parse(c)
        return c

    def check_present(self, c, s, clean, ack, prior):
        if clean:
            if ack.session_present:
                self.violation("present", None, "%r: clean start answered session present" % c)
            return
        if prior == "yes" and not ack.session_present and not s.tainted:
            self.violation("present", None, "%r: session %s lost (session present 0)" % (
                c, s.cid))
        if prior == "no" and ack.session_present:
            self.violation("present", None, "%r: session %s should not exist" % (c, s.cid))

    # ------------------------------------------------------------------ actions
    def pid_for(self, c):
        """A packet id not awaiting our PUBREL in c's session (ids restart at 1 on each
        connection, the session's inbound QoS 2 ids do not)."""
        busy = self.sessions[c.client_id].out_q2
        while True:
            pid = c.rc.next_pid()
            if pid not in busy:
                return pid

    def pick_open(self, pred=None):
        opened = [c for c in self.conns if c.open and not c.server_closed and
                  (pred is None or pred(c))]
        return self.rnd.choice(opened) if opened else None

    def filters_for(self, pr):
        victim = self.rnd.choice(self.idents).id
        own = pr.ident.id if pr.kind == "id" else victim
        return [
            "t/a", "t/a", "t/+", "t/#", "s/#", "#", "+/+", "w/+", "t/a/x",
            "+/+/inbox", "id/#", "id/%s/inbox" % victim, "id/%s/#" % own,
            "id/%s/inbox" % own, "id/%s/ack" % own, "$share/g/t/a", "$share/g/s/#",
            "$share/g/id/%s/inbox" % victim, "$share/g/id/%s/inbox" % own,
            "$share/h/id/%s/#" % own,
        ]

    def may_subscribe(self, pr, flt):
        """True, False, or a pending finding number when only its fix refuses it."""
        group, inner = split_shared(flt)
        parts = inner.split("/")
        if parts[0] != "id" or len(parts) < 2 or parts[1] in ("#", "+"):
            return None if inner.startswith("id") else True  # id/# etc.: filtered at delivery
        mine = pr.kind == "id" and parts[1] == pr.ident.id
        if mine:
            return True
        return 9 if group is not None else False

    def act_subscribe(self):
        c = self.pick_open()
        if c is None:
            return self.act_connect()
        s = self.sessions[c.client_id]
        pool = self.filters_for(c.principal)
        if c.will is not None:
            pool += [c.will.topic] * 3  # its own will comes back to it (finding 1's shape)
        flts = list(dict.fromkeys(self.rnd.choice(pool) for _ in range(self.rnd.randint(1, 3))))
        subs = [(f, self.rnd.choice([0, 1, 1, 2])) for f in flts]
        pid = self.pid_for(c)
        self.log("%r SUBSCRIBE %s" % (c, subs))
        op = self.next_op()
        if not self.send(c, m.encode_subscribe(c.version, pid, subs)):
            return
        ack = self.wait_ack(c, m.SUBACK, pid, op)
        if ack is None:
            s.tracked = False
            s.expected = {}
            return
        self.log("%r SUBACK %s" % (c, ack.rcs))
        for (f, q), rc in zip(subs, ack.rcs):
            ok = self.may_subscribe(c.principal, f)
            granted = rc < 0x80
            if ok is True and not granted:
                self.violation("accepted", None, "%r: SUBSCRIBE %s refused 0x%02x" % (c, f, rc))
            if ok is False and granted:
                self.violation("refused", None, "%r (%s): SUBSCRIBE %s granted" % (
                    c, c.principal.key, f))
            if isinstance(ok, int) and not isinstance(ok, bool) and granted:
                self.violation("refused", ok, "%r (%s): SUBSCRIBE %s granted" % (
                    c, c.principal.key, f))
            if granted:
                if rc > q:
                    self.violation("accepted", None, "%r: granted QoS %d > %d" % (c, rc, q))
                s.subs[f] = rc
                if s.persistent:
                    s.unstored_subs.discard(f)
                else:
                    s.unstored_subs.add(f)
        self.bump("subscribe")

    def act_unsubscribe(self):
        c = self.pick_open(lambda c: self.sessions[c.client_id].subs)
        if c is None:
            return self.act_subscribe()
        s = self.sessions[c.client_id]
        f = self.rnd.choice(sorted(s.subs))
        pid = self.pid_for(c)
        self.log("%r UNSUBSCRIBE %s" % (c, f))
        op = self.next_op()
        if not self.send(c, m.encode_unsubscribe(c.version, pid, [f])):
            return
        s.subs.pop(f, None)
        s.unstored_subs.discard(f)
        if self.wait_ack(c, m.UNSUBACK, pid, op) is None:
            s.tracked = False
            s.expected = {}

    def expect_for(self, topic):
        """Sessions that must receive an acked message on topic, now."""
        out = []
        if topic.startswith("id/"):
            return out
        for s in self.sessions.values():
            if not s.tracked or s.exists != "yes":
                continue
            if any(g is None and q >= 1 and topic_matches(f, topic)
                   for (g, f), q in ((split_shared(k), v) for k, v in s.subs.items())):
                out.append(s)
        return out

    def act_publish(self):
        c = self.pick_open()
        if c is None:
            return self.act_connect()
        rnd = self.rnd
        r = rnd.random()
        if r < 0.75:
            topic = rnd.choice(PLAIN_TOPICS)
            if "%s" in topic:
                topic = topic % rnd.choice(CLIENT_IDS)
        elif r < 0.9:
            victim = rnd.choice(self.idents).id
            topic = "id/%s/%s" % (victim, rnd.choice(SERVER_LEAVES))
        else:
            victim = rnd.choice(self.idents).id
            topic = "id/%s/outbox" % (c.principal.ident.id if c.principal.kind == "id" and
                                      rnd.random() < 0.5 else victim)
        qos = rnd.choice([0, 1, 1, 2])
        retain = rnd.random() < 0.15
        if topic.startswith("id/") and topic.split("/")[2] in SERVER_LEAVES:
            payload = self.forged_payload(topic.split("/")[1])
        elif retain and rnd.random() < 0.25:
            payload = b""  # clears the retained message
        else:
            payload = self.payload("p")
        half = qos == 2 and rnd.random() < 0.3
        self.publish(c, topic, payload, qos, retain, half)

    def publish(self, c, topic, payload, qos, retain, half=False):
        if payload:
            self.sent[payload] = topic
            if retain:
                self.retained_payloads.add(payload)
        allowed = self.may_publish(c.principal, topic, retain)
        pending_rule = None
        if allowed is False and topic.startswith("id/") and retain and \
                self.may_publish(c.principal, topic, False):
            pending_rule = 2  # retained under the own outbox: refused only by the fix of 2
        expect = self.expect_for(topic) if allowed else []
        pid = self.pid_for(c) if qos else None
        self.log("%r PUBLISH %s q%d%s %r%s -> expect %s" % (
            c, topic, qos, " r" if retain else "", payload[:40], " (half)" if half else "",
            [s.cid for s in expect]))
        op = self.next_op()
        if not self.send(c, m.encode_publish(c.version, topic, payload, qos, retain, pid=pid)):
            return
        self.bump("publish_q%d" % qos)
        if qos == 0:
            if not allowed and c.version == 4 and pending_rule is None:
                # 3.1.1 has no way to refuse but to close.
                self.pump(ACK_TIMEOUT_S, until=lambda: not c.open)
                if c.open:
                    self.violation("refused", None, "%r: QoS 0 PUBLISH on %s not refused" % (
                        c, topic))
            return
        ack = self.wait_ack(c, m.PUBACK if qos == 1 else m.PUBREC, pid, op)
        refused = ack is None or ack.rc >= 0x80
        if ack is not None:
            self.log("%r %s 0x%02x" % (c, ack.name, ack.rc))
        if not allowed:
            if not refused:
                self.violation("refused", pending_rule, "%r (%s): PUBLISH on %s%s accepted" % (
                    c, c.principal.key, topic, " retained" if retain else ""))
            elif ack is not None and ack.rc != 0x87 and pending_rule is None:
                self.violation("refused", None, "%r: refused with 0x%02x, not 0x87" % (c, ack.rc))
        elif refused:
            self.violation("accepted", None, "%r: PUBLISH on %s refused (%s)" % (
                c, topic, "closed" if ack is None else "0x%02x" % ack.rc))
        if refused:
            return
        for s in expect:
            if payload not in s.got:  # it may arrive before the publisher's ack
                s.expected[payload] = topic
                self.bump("owed_message")
        if qos == 2:
            s = self.sessions[c.client_id]
            if half:
                s.out_q2[pid] = (topic, payload, s.persistent)
                return
            self.release(c, pid, self.next_op())

    def release(self, c, pid, op):
        # Once PUBREL may have reached the broker, the id may be free again there: a re-sent
        # PUBLISH with it would be a new message. So it leaves out_q2 now.
        s = self.sessions[c.client_id]
        entry = s.out_q2.pop(pid, None)
        if not self.send(c, m.encode_ack(c.version, m.PUBREL, pid)):
            return
        comp = self.wait_ack(c, m.PUBCOMP, pid, op)
        if comp is not None and comp.rc != 0:
            n1 = entry is not None and pid in s.n1_suspect_pids
            self.violation("accepted", "N1" if n1 else None, "%r: PUBCOMP 0x%02x for %d%s" % (
                c, comp.rc, pid, " (PUBREC'd while the session was not persistent, then a "
                "restart)" if n1 else ""))

    def act_finish_q2(self):
        """Completes a half-finished inbound QoS 2 flow: PUBREL, or the PUBLISH again (DUP)
        first, which must be answered with PUBREC and not routed again."""
        c = self.pick_open(lambda c: self.sessions[c.client_id].out_q2 and
                           self.sessions[c.client_id].conn is c)
        if c is None:
            return self.act_publish()
        s = self.sessions[c.client_id]
        pid = self.rnd.choice(sorted(s.out_q2))
        topic, payload, stored = s.out_q2[pid]
        self.log("%r finish QoS 2 pid %d" % (c, pid))
        if self.rnd.random() < 0.5:
            op = self.next_op()
            if not self.send(c, m.encode_publish(c.version, topic, payload, 2, False, dup=True,
                                                 pid=pid)):
                return
            rec = self.wait_ack(c, m.PUBREC, pid, op)
            if rec is None:
                return
            if rec.rc >= 0x80:
                self.violation("accepted", None, "%r: re-sent QoS 2 PUBLISH got 0x%02x" % (
                    c, rec.rc))
        self.release(c, pid, self.next_op())

    def act_envelope(self):
        c = self.pick_open(lambda c: c.principal.kind == "id")
        if c is None:
            return self.act_connect()
        ident = c.principal.ident
        env = self.ident_pending.get(ident.id)
        first = env is None  # a re-sent envelope may have been accepted (and queued) earlier
        if env is None:
            to = self.rnd.choice(self.idents).id
            env = ident.envelope(to, {"n": self.counter, "memo": "fuzz"})
            self.counter += 1
            self.ident_pending[ident.id] = env
            self.envelopes[lc.link(env)] = env
        payload = lc.canonical(env).encode()
        self.sent[payload] = "id/%s/outbox" % ident.id
        qos = self.rnd.choice([1, 2])
        pid = self.pid_for(c)
        self.log("%r ENVELOPE seq %d to %s q%d" % (c, env["seq"], env["to"][:8], qos))
        op = self.next_op()
        if not self.send(c, m.encode_publish(c.version, "id/%s/outbox" % ident.id, payload, qos,
                                             pid=pid)):
            return
        ack = self.wait_ack(c, m.PUBACK if qos == 1 else m.PUBREC, pid, op)
        if ack is None:
            return
        if ack.rc >= 0x80:
            self.violation("accepted", None, "%r: envelope refused 0x%02x" % (c, ack.rc))
        ident.advance(env)
        del self.ident_pending[ident.id]
        self.bump("envelope")
        if first:
            self.expect_envelope(env)
        if qos == 2:
            self.release(c, pid, self.next_op())

    def expect_envelope(self, env):
        """An accepted envelope is queued on id/<to>/inbox in the commit its ack waited for:
        the recipient's persistent sessions subscribed to it must get it (by its link)."""
        topic = "id/%s/inbox" % env["to"]
        key = "link:" + lc.link(env)
        for s in self.sessions.values():
            if not s.tracked or s.exists != "yes" or s.owner != "id:" + env["to"][:8]:
                continue
            if key not in s.got and any(
                    g is None and q >= 1 and topic_matches(f, topic)
                    for (g, f), q in ((split_shared(k), v) for k, v in s.subs.items())):
                s.expected[key] = topic
                self.bump("owed_envelope")

    def act_resync(self):
        c = self.pick_open(lambda c: c.principal.kind == "id")
        if c is None:
            return self.act_connect()
        ident = c.principal.ident
        payload = json.dumps({"after": self.rnd.randint(0, 3)}).encode()
        pid = self.pid_for(c)
        self.log("%r RESYNC %r" % (c, payload))
        op = self.next_op()
        if self.send(c, m.encode_publish(c.version, "id/%s/resync" % ident.id, payload, 1,
                                         pid=pid)):
            self.wait_ack(c, m.PUBACK, pid, op)

    def act_upgrade(self):
        """The same principal takes over a connected session that is not persistent, making it
        persistent (clean start 0, a long expiry): what it holds must now survive restarts."""
        c = self.pick_open(lambda c: not self.sessions[c.client_id].persistent and
                           self.sessions[c.client_id].conn is c)
        if c is None:
            return self.act_connect()
        version = self.rnd.choice([4, 5])
        expiry = EXPIRY_NEVER if version == 4 else self.rnd.choice([LONG_EXPIRY_S, EXPIRY_NEVER])
        self.connect(c.principal, c.client_id, version, self.rnd.random() < 0.25, False, expiry,
                     None, True)

    def act_drop(self):
        c = self.pick_open()
        if c is None:
            return self.act_connect()
        self.log("%r drop socket" % c)
        self._ended(c, "dropped")

    def act_disconnect(self):
        c = self.pick_open()
        if c is None:
            return self.act_connect()
        s = self.sessions[c.client_id]
        rcode, props = 0, None
        r = self.rnd.random()
        if c.version == 5 and r < 0.35:
            rcode = 0x04  # with will
        elif c.version == 5 and r < 0.5 and c.session_expiry:
            props = {"session_expiry_interval": 0}
        self.log("%r DISCONNECT 0x%02x %s" % (c, rcode, props or ""))
        if not self.send(c, m.encode_disconnect(c.version, rcode, props)):
            return
        self.pump(ACK_TIMEOUT_S, until=lambda: not c.open)
        if c.open:
            self.violation("accepted", None, "%r still open after DISCONNECT" % c)
        if props and s.conn is None and s.exists != "maybe":
            s.persistent = False
            s.exists = "no"
            s.tracked = False
            s.expected = {}

    def act_toggle_ack(self):
        c = self.pick_open()
        if c is None:
            return
        c.noack = not c.noack
        self.log("%r noack=%s" % (c, c.noack))
        if not c.noack:
            held, c.held = c.held, []
            for p in held:
                if c.open:
                    self._ack_in(c, p)

    def act_restart(self):
        kill = self.rnd.random() < 0.5
        self.log("RESTART %s" % ("SIGKILL" if kill else "SIGTERM"))
        self.bump("restart_kill" if kill else "restart_term")
        self.check_alive()
        if self.wiping:
            kill = True
        if kill:
            self.b.kill9()
            self.kill_conn_no = self.conn_no
            if self.wiping:
                self.log("CONTROL: data directory wiped")
                shutil.rmtree(self.b.data_dir)
                os.makedirs(self.b.data_dir)
                for p in self.principals:
                    p.token = None  # a new server key
        else:
            self.b.terminate()
        for c in self.conns:
            if c.open:
                c.open = False
                c.rc.close()
                s = self.sessions[c.client_id]
                if s.conn is c:
                    s.conn = None
        self.b.restart()
        self._addresses()
        for s in self.sessions.values():
            unstored_pids = {pid for pid, e in s.out_q2.items() if not e[2]}
            if "N1" in self.pending:
                # What the session got while not persistent is gone (finding N1).
                for f in s.unstored_subs:
                    s.subs.pop(f, None)
                for pid in unstored_pids:
                    del s.out_q2[pid]
            else:
                s.n1_suspect_subs |= s.unstored_subs
                s.n1_suspect_pids |= unstored_pids
            s.unstored_subs = set()
            s.out_q2 = {pid: (t, p, True) for pid, (t, p, _) in s.out_q2.items()}
            uncertain = kill and s.dirty_seq > self.committed_seq
            long_lived = s.expiry == EXPIRY_NEVER or s.expiry >= LONG_EXPIRY_S
            if uncertain or (s.persistent and not long_lived) or \
                    (not s.persistent and s.ever_stored) or s.exists == "maybe":
                s.exists = "maybe"
                s.tracked = False
                s.expected = {}
            elif s.persistent and s.exists == "yes":
                s.exists = "yes"
            else:
                s.exists = "no"
                s.tracked = False
        self.log("restarted on port %d" % self.b.port)

    # ------------------------------------------------------------------ the walk
    ACTIONS = [
        ("connect", 16), ("subscribe", 14), ("unsubscribe", 4), ("publish", 30),
        ("envelope", 6), ("resync", 2), ("drop", 6), ("disconnect", 6), ("finish_q2", 4),
        ("toggle_ack", 3), ("pump", 5), ("restart", 1), ("upgrade", 2),
    ]

    def run(self):
        names = [a for a, _ in self.ACTIONS]
        weights = [w for _, w in self.ACTIONS]
        self.log("seed %d, %d steps, pending findings %s" % (self.seed, self.steps,
                                                              sorted(self.pending)))
        # A control run goes on (up to 4 times as long) until it has broken its promise.
        limit = self.steps * (4 if self.control else 1)
        for self.step_no in range(1, limit + 1):
            if self.step_no > self.steps and not (
                    self.control == "swallow" and self.swallowed is None or
                    self.control == "wipe" and not self.wiping):
                break
            action = self.rnd.choices(names, weights)[0]
            if self.control == "wipe" and self.step_no >= self.steps // 2 and any(
                    s.tracked and s.exists == "yes" and s.dirty_seq <= self.committed_seq
                    for s in self.sessions.values()):
                action = "restart"
                self.wiping = self.stop = True
            if action == "pump":
                self.pump(0.05)
            else:
                getattr(self, "act_" + action)()
            self.pump(0.0)
            self.check_alive()
            if self.stop:
                break
        self.step_no += 1
        self.final_check()
        return self

    def final_check(self):
        """Every tracked session gets what it is owed: reconnect each (as its owner, clean
        start 0) and read until nothing is missing or nothing arrives for DRAIN_IDLE_S."""
        self.log("FINAL CHECK")
        self.pump(1.0)
        for c in self.conns:
            if c.open:
                self._ended(c, "closed for the final check")
        for s in self.sessions.values():
            if not s.tracked or s.exists != "yes":
                continue
            pr = next(p for p in self.principals if p.key == s.owner)
            c = self.connect(pr, s.cid, self.rnd.choice([4, 5]), False, False, s.expiry, None,
                             True, final=True)
            if c is None:
                continue
            missing = len(s.expected)
            while s.expected:
                self.pump(DRAIN_IDLE_S, until=lambda: len(s.expected) < missing or not c.open)
                if len(s.expected) == missing or not c.open:
                    break
                missing = len(s.expected)
            if s.expected:
                lost = sorted(s.expected.items())
                n1 = s.n1_suspect_subs and all(
                    all(f in s.n1_suspect_subs for f, q in s.subs.items()
                        if q >= 1 and split_shared(f)[0] is None and topic_matches(f, t))
                    for _, t in lost)
                self.violation("lost", "N1" if n1 else None, "session %s (owner %s) never got %d acked "
                               "message(s): %s" % (s.cid, s.owner, len(lost), lost[:5]))
            self.bump("sessions_checked")
        self.check_alive()

    def summary(self):
        return "seed %d: %s; known findings seen: %s" % (
            self.seed, ", ".join("%s=%d" % kv for kv in sorted(self.stats.items())),
            {k: len(v) for k, v in sorted(self.known.items())} or "none")


def start_fuzz_broker(start_broker, tmp_path):
    return start_broker(broker_config(str(tmp_path)), extra_args=["--http", "127.0.0.1:0"])


def run_seed(start_broker, tmp_path, seed, steps, pending=None, control=None):
    b = start_fuzz_broker(start_broker, tmp_path)
    f = Fuzzer(b, seed, steps, pending=pending, control=control)
    failed = True
    try:
        f.run()
        failed = False
    finally:
        # The whole step log (a failure message holds its tail): kept on failure, or always
        # in LMQ_FUZZ_LOG_DIR.
        if failed or os.environ.get("LMQ_FUZZ_LOG_DIR"):
            where = os.environ.get("LMQ_FUZZ_LOG_DIR") or str(tmp_path)
            os.makedirs(where, exist_ok=True)
            path = os.path.join(where, "fuzz-seed-%d%s.log" % (
                seed, "-" + control if control else ""))
            with open(path, "w") as out:
                out.write("\n".join(f.log_lines) + "\n")
            print("full step log: %s" % path)
        print(f.summary())
        for finding, msgs in sorted(f.known.items()):
            print("known finding %s (relaxed) seen %d time(s), first: %s" % (
                finding, len(msgs), msgs[0]))
        for c in f.conns:
            if c.open:
                c.rc.close()
    return f
