"""One mosquitto ACL file, two brokers: Debian's mosquitto and LedgerMQ run the SAME acl_file
(and equivalent password files) and the SAME client actions, and their outcome tables must be
equal (docs/PROTOCOL.md "Password file and ACL"): which SUBSCRIBEs are granted, which PUBLISHes
are refused, which messages each client receives live, and which retained messages a later
subscriber gets. Anonymous and password users, deny rules, %u/%c patterns, a pattern inside a
user section, a client id holding '+', wildcard subscriptions over denied topics, $SYS.

The documented differences get their own test, which asserts that they are what the docs say.

mosquitto comes from scripts/install-deps.sh; each broker here listens on a free loopback port
and is stopped at the end of the test."""

import os
import shutil
import subprocess
import time

import pytest

import mqttraw
from conftest import Broker, LOG_TAIL_LINES
from mqttraw import PUBACK, PUBLISH

pytestmark = pytest.mark.ledgermq_only  # it runs mosquitto itself

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

ACL = """\
# The ACL file both brokers load. Comments, blank lines and stray whitespace as real files
# have them.

# Anonymous clients: the topic lines before the first "user" line.
topic read public/#
topic deny public/secret
   topic readwrite anon/#   \t
topic read $SYS/#

# Patterns apply to every client, here or inside a user section.
pattern readwrite clients/%c/#
pattern deny clients/%c/locked
pattern readwrite users/%u/#
pattern deny users/%u/private/#

user alice
topic readwrite a/#
topic deny a/secret
topic deny a/+/hidden
topic write public/#
topic read shared/#
topic write $SYS/test
topic readwrite users/bob/inbox
topic write users/alice/private/#

user bob
topic write a/#
topic readwrite b/#
topic write shared/#
topic deny clients/c-bob/#
topic write everyone/#
pattern read everyone/%u
topic read users/alice/#
"""

# (name, user, client id, MQTT version, filters, publishes every topic)
CLIENTS = [
    ("anon-all", None, "c-anon", 5, ["#"], True),
    ("anon-some", None, "c-anon2", 5, ["public/#", "clients/#", "anon/+"], True),
    ("alice-a", "alice", "c-alice", 5, ["a/#", "users/#"], True),
    ("alice-all", "alice", "c-alice-all", 5, ["#"], True),
    # 3.1.1 only subscribes: a refused 3.1.1 PUBLISH is answered differently (see below).
    ("alice-311", "alice", "c-alice-311", 4, ["a/#", "shared/#", "clients/#"], False),
    ("bob-all", "bob", "c-bob", 5, ["#", "+/secret"], True),
    ("bob-plus", "bob", "bob+x", 5, ["#"], True),  # '+' in the client id: no pattern applies
    ("carol-all", "carol", "c-carol", 5, ["#", "everyone/+"], True),  # no section of her own
]

TOPICS = [
    "public/news", "public/secret", "anon/x", "a/x", "a/secret", "a/b/hidden", "a/b/c", "b/x",
    "shared/x", "clients/c-anon/x", "clients/c-anon/locked", "clients/c-alice/x",
    "clients/c-alice/locked", "clients/c-alice-all/x", "clients/c-bob/x", "clients/c-carol/x",
    "users/alice/x", "users/alice/private/x", "users/bob/x", "users/bob/inbox", "users/carol/x",
    "users/carol/private/x", "everyone/alice", "everyone/bob", "everyone/carol", "$SYS/test",
    "other/x",
]

# Later subscribers to "#", for the retained messages the publishes above left.
LATE = [("late-anon", None, "r-anon"), ("late-alice", "alice", "r-alice"),
        ("late-bob", "bob", "r-bob"), ("late-carol", "carol", "r-carol")]

QUIET_S = 0.7     # a client has received everything once nothing came for this long
DRAIN_MAX_S = 20  # bound on one client's draining


class AclMosquitto(Broker):
    """Debian's mosquitto with the test's acl_file and password_file."""

    def __init__(self, workdir, acl, passwd):
        super().__init__("mosquitto", workdir, None, [])
        self.acl, self.passwd = acl, passwd

    def _mosquitto_conf(self, port):
        # Run as the invoking user: as root mosquitto would switch to the `mosquitto` user,
        # which cannot read the test's files.
        import pwd
        me = pwd.getpwuid(os.getuid()).pw_name
        return super()._mosquitto_conf(port) + "acl_file %s\npassword_file %s\nuser %s\n" % (
            self.acl, self.passwd, me)


def mosquitto_tools():
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    tool = shutil.which("mosquitto_passwd")
    if not os.path.exists(exe) or tool is None:
        pytest.fail("mosquitto is not installed: run scripts/install-deps.sh (Debian's "
                    "`mosquitto` package)")
    return tool


@pytest.fixture
def brokers(tmp_path, request):
    """start(acl_text) -> (mosquitto, ledgermq), both with the alice/bob/carol passwords."""
    tool = mosquitto_tools()
    binary = os.environ.get("LEDGERMQ_BIN")
    if not binary:
        pytest.fail("LEDGERMQ_BIN is not set (path to the ledgermq binary)")
    started = []

    def start(acl_text):
        n = len(started) // 2
        acl = tmp_path / ("acl%d" % n)
        acl.write_text(acl_text)
        mpw, lpw = tmp_path / ("mosquitto.pw%d" % n), tmp_path / ("ledgermq.pw%d" % n)
        for user, secret in PASSWORDS.items():
            subprocess.run([tool, "-b"] + ([] if mpw.exists() else ["-c"]) +
                           [str(mpw), user, secret], check=True, capture_output=True,
                           timeout=30)
            r = subprocess.run([binary, "passwd", "--file", str(lpw), user],
                               input=(secret + "\n").encode(), capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr
        pair = []
        for kind in ("mosquitto", "ledgermq"):
            workdir = tmp_path / ("%s%d" % (kind, n))
            workdir.mkdir()
            if kind == "mosquitto":
                b = AclMosquitto(str(workdir), acl, mpw)
            else:
                b = Broker("ledgermq", str(workdir), None,
                           ["--acl-file", str(acl), "--password-file", str(lpw)])
            started.append(b)
            b.start()
            pair.append(b)
        return pair

    yield start

    problems = []
    for b in started:
        problems += ["%s: %s" % (b.kind, p) for p in b.stop()]
    if problems or getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        for b in started:
            print("----- %s log (last %d lines) -----\n%s" % (b.kind, LOG_TAIL_LINES,
                                                             b.log_text()))
    if problems:
        pytest.fail("\n".join(problems))


def connect(b, user, client_id, version=5):
    c = b.raw(version)
    password = PASSWORDS[user].encode() if user else None
    c.connect(client_id, username=user, password=password)
    return c


def drain(c):
    """Every PUBLISH c receives until it has been quiet for QUIET_S: {(topic, payload)}."""
    got = set()
    deadline = time.monotonic() + DRAIN_MAX_S
    while time.monotonic() < deadline:
        try:
            p = c.recv(QUIET_S)
        except mqttraw.Timeout:
            return got
        assert p.type == PUBLISH, "unexpected packet %r" % p
        c.ack_publish(p)
        got.add((p.topic, p.payload.decode()))
    raise AssertionError("still receiving after %d s" % DRAIN_MAX_S)


def outcome(b):
    """Runs the scenario against broker b and returns its outcome table (a dict)."""
    table = {}
    conns = {}
    for name, user, cid, version, filters, _ in CLIENTS:
        c = connect(b, user, cid, version)
        table[("suback", name)] = c.subscribe([(f, 1) for f in filters]).rcs
        conns[name] = c
    for name, _, _, _, _, publishes in CLIENTS:
        if not publishes:
            continue
        c = conns[name]
        for topic in TOPICS:
            pid = c.publish(topic, name.encode(), qos=1, retain=True)
            ack = c._expect_ack(PUBACK)  # deliveries meanwhile are kept for drain()
            assert ack.pid == pid, ack
            table[("publish", name, topic)] = "0x%02x" % ack.rc
    for name, c in conns.items():
        table[("received", name)] = sorted(drain(c))
    for name, user, cid in LATE:
        c = connect(b, user, cid)
        table[("suback", name)] = c.subscribe([("#", 1)]).rcs
        table[("retained", name)] = sorted(drain(c))
    return table


def diff(want, got):
    lines = []
    for k in sorted(set(want) | set(got), key=repr):
        if want.get(k) != got.get(k):
            lines.append("%r:\n  mosquitto %r\n  ledgermq  %r" % (k, want.get(k), got.get(k)))
    return "\n".join(lines)


def test_same_acl_file_same_outcomes_as_mosquitto(brokers):
    mosq, lmq = brokers(ACL)
    want, got = outcome(mosq), outcome(lmq)
    assert want == got, "outcome tables differ:\n" + diff(want, got)

    # The tables are not vacuous, and say what mosquitto's documentation says.
    t = got
    assert all(rc == [1] * len(rc) for k, rc in t.items() if k[0] == "suback"), t
    refused = {k[1:] for k, v in t.items() if k[0] == "publish" and int(v, 16) >= 0x80}
    allowed = {k[1:] for k, v in t.items() if k[0] == "publish" and int(v, 16) < 0x80}
    assert ("alice-a", "a/secret") in refused and ("alice-a", "a/x") in allowed  # deny wins
    assert ("bob-all", "a/secret") in allowed       # bob writes a/# with no deny
    assert ("anon-all", "anon/x") in allowed         # before the first user line: anonymous
    assert ("alice-a", "anon/x") in refused          # ... and not alice's
    assert ("carol-all", "users/carol/x") in allowed and ("carol-all", "b/x") in refused
    assert ("bob-all", "clients/c-bob/x") in refused  # a user's deny beats a pattern allow
    assert ("alice-a", "users/alice/private/x") in allowed  # a user's allow beats a pattern deny
    assert ("anon-all", "users/alice/x") in refused  # no %u pattern for anonymous
    assert ("bob-plus", "users/bob/x") in refused    # '+' in the client id: no pattern
    assert all(int(v, 16) >= 0x80 for k, v in t.items() if k[0] == "publish" and k[2] == "$SYS/test")

    def received(name):
        return {topic for topic, _ in t[("received", name)]}
    # A wildcard subscription over denied topics delivers only the readable ones.
    assert {"a/x", "a/b/c"} <= received("alice-a")
    assert not {"a/secret", "a/b/hidden"} & received("alice-a")
    assert "public/news" in received("anon-all") and "public/secret" not in received("anon-all")
    assert "users/alice/private/x" not in received("alice-all")  # write-only rule, then deny
    assert "users/alice/private/x" in received("bob-all")        # bob's own read rule
    assert "everyone/carol" in received("carol-all")  # a pattern from bob's section
    assert received("bob-plus") <= {"a/x", "b/x", "users/alice/x", "users/alice/private/x"}
    assert {"a/x", "shared/x"} <= received("alice-311")

    def retained(name):
        return {topic for topic, _ in t[("retained", name)]}
    assert "a/x" in retained("late-alice") and "a/secret" not in retained("late-alice")
    assert "public/news" in retained("late-anon") and "public/secret" not in retained("late-anon")


DIFF_ACL = """\
pattern readwrite clients/%c/#
topic readwrite all/#
"""


def test_documented_differences_from_mosquitto(brokers):
    """docs/PROTOCOL.md, "Differences from mosquitto": exactly these, nothing else here."""
    mosq, lmq = brokers(DIFF_ACL)
    rcs = {}
    for b in (mosq, lmq):
        # A client id with '/': mosquitto substitutes it into an allow pattern, reaching into
        # clients/x/...; LedgerMQ does not apply the pattern.
        c = connect(b, None, "x/y")
        pid = c.publish("clients/x/y/z", b"1", qos=1)
        rcs[(b.kind, "slash client id")] = c._expect_ack(PUBACK).rc >= 0x80
        c.publish("all/x", b"1", qos=1)
        rcs[(b.kind, "plain rule")] = c._expect_ack(PUBACK).rc >= 0x80
        # A refused 3.1.1 PUBLISH: mosquitto acknowledges and drops it, LedgerMQ closes.
        c = connect(b, None, "v4", version=4)
        c.publish("denied/x", b"1", qos=1)
        if b.kind == "mosquitto":
            assert c._expect_ack(PUBACK).pid is not None
            rcs[(b.kind, "3.1.1 refused")] = "acked"
        else:
            c.expect_disconnect()
            rcs[(b.kind, "3.1.1 refused")] = "closed"
        del pid
    assert rcs == {
        ("mosquitto", "slash client id"): False, ("ledgermq", "slash client id"): True,
        ("mosquitto", "plain rule"): False, ("ledgermq", "plain rule"): False,
        ("mosquitto", "3.1.1 refused"): "acked", ("ledgermq", "3.1.1 refused"): "closed",
    }, rcs

