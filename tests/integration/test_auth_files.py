"""Password file and ACL file ([auth] password_file, acl_file; docs/PROTOCOL.md "Password file
and ACL"): `ledgermq passwd`, password logins (checked off the event loop), topic permissions
with %u/%c patterns, SIGHUP reloads, 3.1.1 denials and startup errors."""

import base64
import hashlib
import json
import os
import select
import signal
import subprocess
import time

import pytest

import ledgerclient as lc
import mqttraw
from mqttraw import CONNACK, PUBACK, SUBACK

pytestmark = pytest.mark.ledgermq_only

ACL = """\
# anonymous clients only (before the first user line, as mosquitto)
topic read public/#
# every client
pattern readwrite users/%u/#
pattern write clients/%c/status
pattern deny users/%u/locked

user alice
topic readwrite shared/alice-only
topic readwrite public/#
topic deny public/secret
"""


def binary():
    path = os.environ.get("LEDGERMQ_BIN")
    if not path:
        pytest.fail("LEDGERMQ_BIN is not set (path to the ledgermq binary)")
    return path


def passwd(args, stdin):
    return subprocess.run([binary(), "passwd"] + list(args), input=stdin, capture_output=True,
                          timeout=60)


def scrypt_line_verifies(line, user, password):
    """Checks a password file line with Python's own scrypt, independently of the broker."""
    name, _, text = line.partition(":")
    assert name == user, line
    empty, scheme, params, salt, digest = text.split("$")
    assert empty == "" and scheme == "scrypt", line
    p = dict(kv.split("=") for kv in params.split(","))
    assert list(p) == ["N", "r", "p"], params
    n, r, par = int(p["N"]), int(p["r"]), int(p["p"])
    want = base64.b64decode(digest, validate=True)
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=n, r=r,
                         p=par, maxmem=256 * 1024 * 1024, dklen=len(want))
    return got == want


@pytest.fixture
def files(tmp_path):
    """A password file with alice and bob, and the ACL above."""
    pw = tmp_path / "passwd"
    for user, secret in (("alice", "alice-pw"), ("bob", "bob-pw")):
        r = passwd(["--file", str(pw), user], (secret + "\n").encode())
        assert r.returncode == 0, r.stderr
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return pw, acl


@pytest.fixture
def broker_files(start_broker, files):
    pw, acl = files
    b = start_broker(extra_args=["--password-file", str(pw), "--acl-file", str(acl)])
    return b, pw, acl


def login(b, user, password, client_id="", version=5, check=True, **kw):
    c = b.raw(version)
    ack = c.connect(client_id, username=user, password=password.encode(), check=check, **kw)
    return c, ack


def security_events(b, kind):
    return [e for e in b.events("security") if e.get("kind") == kind]


def wait_security(b, kind, count, timeout=5.0):
    """Waits until exactly `count` security events of `kind` were logged (no more)."""
    deadline = time.monotonic() + timeout
    while len(security_events(b, kind)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    got = security_events(b, kind)
    assert len(got) == count, "expected %d %s events, got %r" % (count, kind, got)


# ------------------------------------------------------------------ ledgermq passwd
def test_passwd_prints_a_line_that_scrypt_verifies():
    r = passwd(["alice"], b"correct horse\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1, out
    line = out.rstrip("\n")
    assert line.startswith("alice:$scrypt$N=32768,r=8,p=1$"), line
    assert scrypt_line_verifies(line, "alice", "correct horse")
    assert not scrypt_line_verifies(line, "alice", "correct horsE")
    # A fresh salt every time.
    again = passwd(["alice"], b"correct horse\n").stdout.decode().rstrip("\n")
    assert again != line and scrypt_line_verifies(again, "alice", "correct horse")


@pytest.mark.parametrize("args,stdin,code,needle", [
    ([], b"pw\n", 1, "expected USER"),
    (["a:b"], b"pw\n", 1, "bad user name"),
    (["has space"], b"pw\n", 1, "bad user name"),
    (["alice", "bob", "carol"], b"pw\n", 1, "expected USER"),
    (["-D", "alice"], b"", 1, "expected FILE USER"),
    (["-b", "f", "alice"], b"", 1, "expected FILE USER PASSWORD"),
    (["--file", "f", "-D", "alice"], b"", 1, "do not go together"),
    (["alice"], b"", 1, "expected the password on stdin"),
    (["alice"], b"\n", 1, "empty password"),
    (["alice"], b"x" * 2000 + b"\n", 1, "longer than"),
    (["--file", "/nonexistent-dir/passwd", "alice"], b"pw\n", 2, "cannot write"),
])
def test_passwd_errors_are_one_line_with_an_exit_code(args, stdin, code, needle):
    r = passwd(args, stdin)
    assert r.returncode == code, (r.returncode, r.stderr)
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ledgermq: passwd: ") and needle in err[0], err
    assert r.stdout == b""


def test_passwd_manages_a_file_as_mosquitto_passwd_does(tmp_path):
    """-c, FILE USER (set: replace or add), -b, -D and -U on a file that mosquitto_passwd made,
    comments and other users' lines kept; the result logs in (scrypt_line_verifies)."""
    f = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(f), "carol", "carol-pw"], check=True)
    carol = f.read_text()
    with open(f, "a") as out:
        out.write("# kept\ndave:dave-plain\n")
    r = passwd(["-b", str(f), "alice", "alice-1"], b"")
    assert r.returncode == 0 and r.stdout == b"", r.stderr
    r = passwd([str(f), "alice"], b"alice-2\n")  # not a terminal: one line of stdin
    assert r.returncode == 0, r.stderr
    lines = f.read_text().splitlines()
    assert lines[0] == carol.strip() and lines[1] == "# kept" and lines[2] == "dave:dave-plain"
    assert len(lines) == 4 and scrypt_line_verifies(lines[3], "alice", "alice-2"), lines
    assert os.stat(f).st_mode & 0o777 == 0o600
    # -U hashes the plain-text line only.
    assert passwd(["-U", str(f)], b"").returncode == 0
    lines = f.read_text().splitlines()
    assert lines[0] == carol.strip() and scrypt_line_verifies(lines[2], "dave", "dave-plain")
    assert scrypt_line_verifies(lines[3], "alice", "alice-2")
    # -D deletes; a user not in the file is an error and changes nothing.
    assert passwd(["-D", str(f), "carol"], b"").returncode == 0
    before = f.read_text()
    assert "carol:" not in before and "# kept" in before
    r = passwd(["--delete", str(f), "carol"], b"")
    assert r.returncode == 1 and b"carol is not in" in r.stderr
    assert f.read_text() == before
    # -c starts the file again with one user.
    assert passwd(["-c", "-b", str(f), "erin", "erin-pw"], b"").returncode == 0
    lines = f.read_text().splitlines()
    assert len(lines) == 1 and scrypt_line_verifies(lines[0], "erin", "erin-pw")
    # A file that can't be read: exit 2.
    r = passwd(["-D", str(tmp_path / "missing"), "erin"], b"")
    assert r.returncode == 2, r.stderr


def test_passwd_asks_twice_without_echo_on_a_terminal(tmp_path):
    """On a terminal: "Password: " and "Reenter password: ", nothing echoed; two different
    answers are refused and leave no file."""
    import pty

    def read_until(fd, deadline, done):
        """Reads the pty until done(seen) or the deadline (never blocks past it)."""
        seen = b""
        while not done(seen) and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return seen

    def run_on_pty(args, answers):
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(binary(), [binary(), "passwd"] + args)
        seen = b""
        deadline = time.monotonic() + 30
        for answer in answers:
            seen += read_until(fd, deadline, lambda s: b"assword: " in s)
            os.write(fd, answer + b"\n")
            seen += b"\n"  # the next prompt comes on a line of its own (ECHONL)
        seen += read_until(fd, deadline, lambda s: False)  # to the end (EOF/EIO) or the deadline
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), seen

    f = tmp_path / "pw"
    code, seen = run_on_pty([str(f), "alice"], [b"s3cret-one", b"s3cret-one"])
    assert code == 0, seen
    assert b"Password: " in seen and b"Reenter password: " in seen, seen
    assert b"s3cret-one" not in seen, "the password was echoed: %r" % seen
    assert scrypt_line_verifies(f.read_text().strip(), "alice", "s3cret-one")
    g = tmp_path / "pw2"
    code, seen = run_on_pty([str(g), "bob"], [b"first", b"second"])
    assert code == 1 and b"do not match" in seen, seen
    assert not g.exists()


def test_passwd_file_appends_and_refuses_a_second_line_for_a_user(tmp_path):
    f = tmp_path / "pw"
    f.write_text("# users\ncarol:" + passwd(["carol"], b"c\n").stdout.decode().split(":", 1)[1]
                 .rstrip("\n"))  # no final newline: the tool must add one
    assert passwd(["--file", str(f), "dave"], b"d\n").returncode == 0
    lines = f.read_text().splitlines()
    assert lines[0] == "# users" and len(lines) == 3, lines
    assert scrypt_line_verifies(lines[1], "carol", "c")
    assert scrypt_line_verifies(lines[2], "dave", "d")
    r = passwd(["--file", str(f), "dave"], b"other\n")
    assert r.returncode == 1 and b"already in" in r.stderr, r.stderr
    assert len(f.read_text().splitlines()) == 3
    new = tmp_path / "new"
    assert passwd(["--file=" + str(new), "erin"], b"e\n").returncode == 0
    assert new.stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------------------ password logins
def test_password_user_connects_and_bad_passwords_are_refused(start_broker, files):
    pw, _ = files
    b = start_broker(extra_args=["--password-file", str(pw)])
    c, ack = login(b, "alice", "alice-pw")
    assert ack.rc == 0
    c.ping()
    # Wrong password, unknown user, no password: 0x86 and a bad_password event each.
    _, ack = login(b, "alice", "bob-pw", check=False)
    assert ack.rc == 0x86, ack
    _, ack = login(b, "mallory", "alice-pw", check=False)
    assert ack.rc == 0x86, ack
    raw = b.raw(5)
    raw.send_raw(mqttraw.encode_connect(5, "", username="alice"))
    assert raw.expect(CONNACK).rc == 0x86
    wait_security(b, "bad_password", 3)
    # Each names the user it tried (an operator greps for the account under attack).
    assert [e["user"] for e in security_events(b, "bad_password")] == ["alice", "mallory",
                                                                       "alice"]
    # 3.1.1: return code 4.
    _, ack = login(b, "bob", "alice-pw", version=4, check=False)
    assert ack.rc == 4, ack
    _, ack = login(b, "bob", "bob-pw", version=4)
    assert ack.rc == 0
    wait_security(b, "bad_password", 4)


def test_a_password_file_from_mosquitto_passwd_works_as_it_is(start_broker, tmp_path):
    """A mosquitto deployment moves over with its users: Debian's mosquitto_passwd writes $7$
    (PBKDF2-SHA512) by default and $6$ (SHA-512) with -H sha512; both log in, wrong passwords
    are refused, and a scrypt line from `ledgermq passwd` can sit next to them."""
    pw = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "alice", "alice-pw"], check=True)
    subprocess.run(["mosquitto_passwd", "-H", "sha512", "-b", str(pw), "bob", "bob-pw"],
                   check=True)
    lines = pw.read_text().splitlines()
    assert lines[0].startswith("alice:$7$") and lines[1].startswith("bob:$6$"), lines
    with open(pw, "a") as f:
        f.write(passwd(["carol"], b"carol-pw\n").stdout.decode())
    b = start_broker(extra_args=["--password-file", str(pw)])
    for user, password in (("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")):
        for version in (4, 5):
            c, ack = login(b, user, password, version=version)
            assert ack.rc == 0, (user, version, ack)
            c.close()
    _, ack = login(b, "alice", "bob-pw", check=False)
    assert ack.rc == 0x86, ack
    _, ack = login(b, "bob", "alice-pw", version=4, check=False)
    assert ack.rc == 4, ack
    wait_security(b, "bad_password", 2)


def test_packets_sent_right_after_connect_wait_for_the_password_check(start_broker, files):
    """The CONNECT is paused while the hash runs; what the client pipelined after it is
    handled once the CONNACK is out, in order."""
    pw, _ = files
    b = start_broker(extra_args=["--password-file", str(pw)])
    c = b.raw(5)
    c.send_raw(mqttraw.encode_connect(5, "pipe", username="alice", password=b"alice-pw") +
               mqttraw.encode_subscribe(5, 7, [("t/#", 1)]) +
               mqttraw.encode_publish(5, "t/x", b"hello", qos=1, pid=8))
    assert c.expect(CONNACK).rc == 0
    sub = c.expect(SUBACK)
    assert sub.pid == 7 and sub.rcs == [1], sub
    got = [c.recv() for _ in range(2)]
    ack = [p for p in got if p.type == PUBACK]
    msg = [p for p in got if p.type == mqttraw.PUBLISH]
    assert len(ack) == 1 and ack[0].pid == 8 and len(msg) == 1 and msg[0].payload == b"hello", got


def test_connection_closed_during_the_password_check_is_released(start_broker, files):
    pw, _ = files
    b = start_broker(extra_args=["--password-file", str(pw)])
    for _ in range(5):
        c = b.raw(5)
        c.send_raw(mqttraw.encode_connect(5, "", username="alice", password=b"alice-pw"))
        c.close()
    # The broker keeps serving, and a clean SIGTERM at teardown proves nothing leaked.
    c, ack = login(b, "alice", "alice-pw")
    assert ack.rc == 0


# ------------------------------------------------------------------ ACL
def test_acl_allows_and_denies_publish_with_u_and_c_patterns(broker_files):
    b, _, _ = broker_files
    alice, _ = login(b, "alice", "alice-pw", client_id="c-alice")
    for topic in ("users/alice/x", "clients/c-alice/status", "shared/alice-only", "public/news"):
        assert alice.publish_acked(topic, b"ok").rc < 0x80, topic
    for n, topic in enumerate(("users/bob/x", "clients/other/status", "public/secret", "x",
                               "users/alice/locked"), 1):
        pid = alice.publish(topic, b"no", qos=1)
        ack = alice.expect(PUBACK)
        assert ack.pid == pid and ack.rc == 0x87, (topic, ack)
        wait_security(b, "acl_denied", n)
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    pid = bob.publish("shared/alice-only", b"no", qos=1)
    assert bob.expect(PUBACK).rc == 0x87
    # QoS 2 is refused in the PUBREC.
    pid = bob.publish("users/alice/y", b"no", qos=2)
    rec = bob._expect_ack(mqttraw.PUBREC)
    assert rec.pid == pid and rec.rc == 0x87, rec


def test_acl_grants_every_subscription_and_checks_each_delivery(broker_files):
    """As mosquitto: a SUBSCRIBE is never refused by the ACL; each message is delivered only
    when the subscriber may read its topic."""
    b, _, _ = broker_files
    alice, _ = login(b, "alice", "alice-pw", client_id="c-alice")
    ack = alice.subscribe([("#", 1), ("public/#", 1), ("users/+/x", 1), ("secret/#", 0),
                           ("$share/g/users/bob/#", 1)])
    assert ack.rcs == [1, 1, 1, 0, 1], ack
    assert not security_events(b, "acl_denied")
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    bob.publish_acked("users/bob/x", b"bob's")  # alice may not read it: not delivered
    bob.publish_acked("users/bob/y", b"bob's")
    alice.publish_acked("public/news", b"news")  # readable through #, public/#: once
    alice.publish_acked("users/alice/x", b"mine")
    got = [(p.topic, p.payload) for p in alice.publishes(2)]
    assert got == [("public/news", b"news"), ("users/alice/x", b"mine")], got
    alice.expect_nothing(0.3)


def test_acl_checks_a_wider_subscription_added_after_deliveries(broker_files):
    """A session whose subscriptions all deliver readable topics skips the per-message check
    (access.c); one more, wider subscription must turn the check on."""
    b, _, _ = broker_files
    alice, _ = login(b, "alice", "alice-pw", client_id="c-alice")
    assert alice.subscribe([("shared/alice-only", 1)]).rcs == [1]
    alice.publish_acked("shared/alice-only", b"1")
    assert alice.expect_publish().payload == b"1"
    assert alice.subscribe([("#", 1)]).rcs == [1]
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    bob.publish_acked("users/bob/x", b"bob's")  # not alice's to read
    alice.publish_acked("shared/alice-only", b"2")
    p = alice.expect_publish()
    assert (p.topic, p.payload) == ("shared/alice-only", b"2"), p
    alice.expect_nothing(0.3)


def test_acl_denials_close_a_311_publisher(broker_files):
    b, _, _ = broker_files
    c, _ = login(b, "alice", "alice-pw", client_id="c311", version=4)
    ack = c.subscribe([("public/#", 1), ("secret/#", 1)])
    assert ack.rcs == [1, 1], ack  # granted, as mosquitto (deliveries are checked)
    assert c.publish_acked("users/alice/a", b"ok").rc == 0
    c.publish("users/bob/a", b"no", qos=1)
    c.expect_disconnect()  # 3.1.1 has no negative PUBACK: the server closes
    wait_security(b, "acl_denied", 1)


def test_anonymous_clients_have_the_rules_before_the_first_user_line(broker_files):
    b, _, _ = broker_files
    anon = b.connect("anon")  # loopback anonymous is allowed to connect
    assert anon.subscribe([("public/#", 0)]).rcs == [0]
    pid = anon.publish("public/x", b"no", qos=1)  # read only
    assert anon.expect(PUBACK).rc == 0x87
    assert anon.publish_acked("clients/anon/status", b"up").rc < 0x80  # a %c pattern applies
    pid = anon.publish("users/anon/x", b"no", qos=1)  # a %u pattern never does
    assert anon.expect(PUBACK).rc == 0x87
    alice, _ = login(b, "alice", "alice-pw", client_id="c-alice")
    alice.publish_acked("public/news", b"news")
    p = anon.expect_publish()
    assert (p.topic, p.payload) == ("public/news", b"news")
    # Alice's section has her own public/# rules: the anonymous ones are not hers.
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    assert bob.subscribe([("public/#", 0)]).rcs == [0]
    alice.publish_acked("public/more", b"more")
    assert anon.expect_publish().payload == b"more"
    bob.expect_nothing(0.3)


def test_will_topics_follow_the_acl(broker_files):
    b, _, _ = broker_files
    will = mqttraw.Will("users/bob/will", b"x")
    _, ack = login(b, "alice", "alice-pw", client_id="w", will=will, check=False)
    assert ack.rc == 0x87, ack
    will = mqttraw.Will("users/alice/will", b"x")
    _, ack = login(b, "alice", "alice-pw", client_id="w2", will=will)
    assert ack.rc == 0


FEED_ACL = """\
user alice
topic read feed/#
user bob
topic write feed/#
"""


def test_sighup_reloads_the_acl_and_keeps_it_when_the_new_one_is_broken(broker_files):
    b, _, acl = broker_files
    acl.write_text(FEED_ACL)
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_event("acl_reloaded")["rules"] == 2
    alice, _ = login(b, "alice", "alice-pw", client_id="c-alice")
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    assert alice.subscribe([("feed/#", 1)]).rcs == [1]
    bob.publish_acked("feed/hidden", b"1")
    assert alice.expect_publish().payload == b"1"
    # A deny in a reloaded file applies to the subscriptions already made.
    acl.write_text(FEED_ACL + "user alice\ntopic deny feed/hidden\n")
    b.proc.send_signal(signal.SIGHUP)
    ev = b.wait_event("acl_reloaded", pred=lambda e: e.get("rules") == 3)
    assert ev["file"] == str(acl), ev
    bob.publish_acked("feed/hidden", b"2")
    bob.publish_acked("feed/open", b"3")
    assert alice.expect_publish().payload == b"3"
    acl.write_text("topic read news/#\nthis is not a rule\n")
    b.proc.send_signal(signal.SIGHUP)
    ev = b.wait_event("acl_reload_failed")
    assert "line 2" in ev["msg"], ev
    # The old rules stay.
    bob.publish_acked("feed/hidden", b"4")
    bob.publish_acked("feed/open", b"5")
    assert alice.expect_publish().payload == b"5"


def test_acl_checks_deliveries_to_an_offline_session_across_a_restart(broker_files):
    """Deliveries queued for an offline session are checked with the session's owner and
    client id, also for a session restored from the store."""
    b, _, acl = broker_files
    acl.write_text(FEED_ACL + "user alice\ntopic deny feed/hidden\n")
    b.proc.send_signal(signal.SIGHUP)
    b.wait_event("acl_reloaded")
    c = b.raw(5)
    props = mqttraw.Props([("session_expiry_interval", 300)])
    c.connect("c-alice", clean=True, props=props, username="alice", password=b"alice-pw")
    assert c.subscribe([("#", 1)]).rcs == [1]
    c.disconnect()
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    bob.publish_acked("feed/hidden", b"1")
    bob.publish_acked("feed/open", b"2")
    b.terminate()
    b.restart()
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    bob.publish_acked("feed/hidden", b"3")
    bob.publish_acked("feed/open", b"4")
    c = b.raw(5)
    ack = c.connect("c-alice", clean=False, props=mqttraw.Props([("session_expiry_interval", 300)]),
                    username="alice", password=b"alice-pw")
    assert ack.session_present, ack
    got = [(p.topic, p.payload) for p in c.publishes(2)]
    assert got == [("feed/open", b"2"), ("feed/open", b"4")], got
    c.expect_nothing(0.3)


def test_acl_shared_group_delivers_to_a_member_that_may_read(broker_files):
    """A shared group's message goes to a member that may read it when there is one (mosquitto
    would hand every other one to bob, who may not read it, and drop it)."""
    b, _, acl = broker_files
    acl.write_text(FEED_ACL)
    b.proc.send_signal(signal.SIGHUP)
    b.wait_event("acl_reloaded")
    alice, _ = login(b, "alice", "alice-pw", client_id="c-alice")
    bob, _ = login(b, "bob", "bob-pw", client_id="c-bob")
    assert alice.subscribe([("$share/g/feed/#", 1)]).rcs == [1]
    assert bob.subscribe([("$share/g/feed/#", 1)]).rcs == [1]
    for i in range(6):
        bob.publish_acked("feed/%d" % i, b"x")
    assert sorted(p.topic for p in alice.publishes(6)) == ["feed/%d" % i for i in range(6)]
    bob.expect_nothing(0.3)


def test_sighup_reloads_the_password_file(broker_files):
    b, pw, _ = broker_files
    _, ack = login(b, "carol", "carol-pw", check=False)
    assert ack.rc == 0x86
    assert passwd(["--file", str(pw), "carol"], b"carol-pw\n").returncode == 0
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_event("passwd_reloaded")["users"] == 3
    _, ack = login(b, "carol", "carol-pw")
    assert ack.rc == 0


def test_identities_are_known_to_the_acl_by_their_id_and_keep_their_id_topics(start_broker,
                                                                              files):
    pw, acl = files
    b = start_broker(extra_args=["--acl-file", str(acl), "--password-file", str(pw), "--http",
                                 "127.0.0.1:0"])
    ident = lc.Identity()
    token = lc.login(b.events("ready")[-1]["http"][0], ident)
    c, ack = login(b, ident.id, token, client_id="ident")
    assert ack.rc == 0
    ack = c.subscribe([("users/%s/#" % ident.id, 1), ("users/alice/#", 1),
                       ("id/%s/inbox" % ident.id, 1)])
    assert ack.rcs == [1, 1, 1], ack  # granted; id/ topics follow the identity rules
    assert c.publish_acked("users/%s/x" % ident.id, b"mine").rc < 0x80
    assert c.expect_publish().payload == b"mine"
    alice, _ = login(b, "alice", "alice-pw", client_id="c-alice")
    alice.publish_acked("users/alice/x", b"alice's")  # the identity may not read it
    c.expect_nothing(0.3)


# ------------------------------------------------------------------ startup errors
@pytest.mark.parametrize("which", ["password", "acl"])
def test_missing_or_broken_files_stop_the_start_with_one_line(start_broker, tmp_path, which):
    flag = "--password-file" if which == "password" else "--acl-file"
    b = start_broker(extra_args=[flag, str(tmp_path / "missing")], expect_exit=1,
                     wait_ready=False)
    b.wait_exit(1)
    lines = [l for l in b.stderr_lines() if l.strip()]
    assert len(lines) == 1 and "cannot read" in lines[0] and "missing" in lines[0], lines
    broken = tmp_path / "broken"
    broken.write_text("alice\n" if which == "password" else "topic maybe a b\n")
    b = start_broker(config_text="[auth]\n%s_file = %s\n" % (which, broken), expect_exit=1,
                     wait_ready=False)
    b.wait_exit(1)
    lines = [json.loads(l) for l in b.stderr_lines() if l.strip()]
    assert len(lines) == 1 and lines[0]["event"] == "start_failed", lines
    assert "line 1" in lines[0]["msg"], lines
