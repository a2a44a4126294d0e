"""Security findings about sessions (docs/SECURITY.md, "Sessions"): a session belongs to the
principal that created it (finding 3); per-principal and per-address quotas on persistent
sessions and a finite default expiry (finding 4); a shared subscription can't reach another
identity's topics (finding 9)."""

import os
import socket
import subprocess
import time

import pytest

import ledgerclient as lc
import mqttraw as m

pytestmark = pytest.mark.ledgermq_only


def binary():
    return os.environ["LEDGERMQ_BIN"]


@pytest.fixture
def pwfile(tmp_path):
    pw = tmp_path / "passwd"
    for user in ("alice", "bob", "mallory"):
        r = subprocess.run([binary(), "passwd", "--file", str(pw), user],
                           input=(user + "-pw\n").encode(), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
    return pw


def start(start_broker, pwfile, config=None):
    b = start_broker(config, extra_args=["--password-file", str(pwfile), "--http", "127.0.0.1:0"])
    b.http_addr = b.events("ready")[-1]["http"][0]
    return b


def raw_from(b, version, source="127.0.0.1"):
    """A raw client whose TCP connection comes from `source` (another loopback address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(m.DEFAULT_TIMEOUT_S)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", b.port))
    c = m.RawClient(None, version=version, sock=sock)
    b._clients.append(c)
    return c


def connect(b, client_id, version, user=None, persistent=True, source="127.0.0.1", check=True,
            **kw):
    c = raw_from(b, version, source)
    props = {"session_expiry_interval": 3600} if version == 5 and persistent else None
    creds = {}
    if user is not None:
        creds = {"username": user, "password": (user + "-pw").encode()}
    ack = c.connect(client_id, clean=not persistent, props=props, check=check, **creds, **kw)
    return c, ack


def refused(version):
    return 0x87 if version == 5 else 0x05


def quota(version):
    return 0x97 if version == 5 else 0x03


# ---------------------------------------------------------------- finding 3: takeover
def test_another_principal_cannot_take_over_a_password_users_session(start_broker, pwfile,
                                                                     version):
    b = start(start_broker, pwfile)
    alice, _ = connect(b, "phone", version, "alice")
    alice.subscribe([("users/alice/#", 1)])
    alice.disconnect()
    pub, _ = connect(b, "pub", version, "alice", persistent=False)
    pub.publish_acked("users/alice/pay", b"private", qos=1)
    # Bob, an anonymous client, and a clean start by either: all refused, nothing changes.
    for user in ("bob", None):
        for persistent in (True, False):
            c, ack = connect(b, "phone", version, user, persistent=persistent, check=False)
            assert ack.rc == refused(version), (user, persistent, ack)
            c.expect_close()
    alice, ack = connect(b, "phone", version, "alice")
    assert ack.session_present is True
    assert alice.expect_publish().payload == b"private"
    b.wait_event("security", pred=lambda e: e.get("kind") == "session_owner")


def test_an_anonymous_session_is_not_taken_by_a_password_user(start_broker, pwfile):
    b = start(start_broker, pwfile)
    anon, _ = connect(b, "kiosk", 5)
    anon.subscribe([("kiosk/#", 1)])
    c, ack = connect(b, "kiosk", 5, "mallory", check=False)
    assert ack.rc == 0x87
    # The anonymous owner is still connected and subscribed.
    p, _ = connect(b, "p", 5, persistent=False)
    p.publish_acked("kiosk/x", b"still mine", qos=1)
    assert anon.expect_publish().payload == b"still mine"


def test_session_ownership_survives_a_restart(start_broker, pwfile):
    b = start(start_broker, pwfile)
    alice, _ = connect(b, "laptop", 5, "alice")
    alice.disconnect()
    b.terminate()
    b.restart()
    c, ack = connect(b, "laptop", 5, "bob", check=False)
    assert ack.rc == 0x87
    c, ack = connect(b, "laptop", 5, "alice")
    assert ack.session_present is True


def test_identity_session_is_not_taken_over_by_a_password_user(start_broker, pwfile):
    b = start(start_broker, pwfile)
    me = lc.Identity()
    c = b.raw(5)
    c.connect("wallet", clean=False, props={"session_expiry_interval": 3600}, username=me.id,
              password=lc.login(b.http_addr, me).encode())
    c.disconnect()
    c2, ack = connect(b, "wallet", 5, "mallory", check=False)
    assert ack.rc == 0x87


# ---------------------------------------------------------------- finding 4: exhaustion
def test_session_quota_per_principal_refuses_only_that_principal(start_broker, pwfile, version):
    b = start(start_broker, pwfile, "[limits]\nmax_sessions_per_principal = 3\n")
    for i in range(3):
        c, _ = connect(b, "m%d" % i, version, "mallory")
        c.disconnect()
    c, ack = connect(b, "m3", version, "mallory", check=False)
    assert ack.rc == quota(version), ack
    # Her existing sessions still resume, and a clean session still works.
    c, ack = connect(b, "m0", version, "mallory")
    assert ack.session_present is True
    c.disconnect()
    connect(b, "m-clean", version, "mallory", persistent=False)[0].disconnect()
    # Others are not affected.
    c, ack = connect(b, "a0", version, "alice")
    assert ack.rc == 0
    # After a restart the count is rebuilt from the store.
    b.terminate()
    b.restart()
    c, ack = connect(b, "m4", version, "mallory", check=False)
    assert ack.rc == quota(version), ack
    b.wait_event("security", pred=lambda e: e.get("kind") == "session_quota")


def test_sessions_of_an_older_store_are_claimed_within_the_quota(start_broker, pwfile):
    # Rows written before owners were recorded for every principal have an empty owner: the
    # first principal to resume one claims it, and it then counts against its quota.
    import sqlite3
    b = start(start_broker, pwfile, "[limits]\nmax_sessions_per_principal = 1\n")
    b.terminate()
    db = sqlite3.connect(os.path.join(b.data_dir, "ledgermq.db"))
    for cid in (b"legacy1", b"legacy2"):
        db.execute("INSERT INTO sessions(client_id, expiry_s, owner) VALUES(?, 3600, '')", (cid,))
    db.commit()
    db.close()
    b.restart()
    c, ack = connect(b, "legacy1", 5, "alice")
    assert ack.rc == 0 and ack.session_present is True
    c.disconnect()
    c, ack = connect(b, "legacy2", 5, "alice", check=False)
    assert ack.rc == 0x97, ack  # alice holds her one session already
    c, ack = connect(b, "legacy1", 5, "bob", check=False)
    assert ack.rc == 0x87, ack  # claimed: alice's now
    c, ack = connect(b, "legacy2", 5, "bob")
    assert ack.session_present is True


def test_session_quota_per_address_holds_anonymous_clients(start_broker, pwfile):
    b = start(start_broker, pwfile, "[limits]\nmax_sessions_per_address = 5\n")
    for i in range(5):
        connect(b, "x%d" % i, 5, source="127.0.0.2")[0].disconnect()
    c, ack = connect(b, "x5", 5, source="127.0.0.2", check=False)
    assert ack.rc == 0x97
    # Another address (the legitimate user) still gets persistent sessions.
    c, ack = connect(b, "legit", 5, source="127.0.0.1")
    assert ack.rc == 0


def test_a_flood_of_persistent_sessions_leaves_other_principals_served(start_broker, pwfile):
    # The attack of finding 4 scaled down: one principal opens sessions as fast as it can;
    # afterwards every other principal, persistent or clean, still connects.
    b = start(start_broker, pwfile,
              "[limits]\nmax_sessions = 200\nmax_sessions_per_principal = 50\n")
    refused_count = 0
    for i in range(150):
        c, ack = connect(b, "flood%d" % i, 5, "mallory", check=False)
        refused_count += ack.rc == 0x97
        c.close()
    assert refused_count == 100
    for user in ("alice", "bob", None):
        for persistent in (True, False):
            c, ack = connect(b, "ok-%s-%s" % (user, persistent), 5, user, persistent=persistent)
            assert ack.rc == 0


def test_a_311_persistent_session_expires_after_default_session_expiry(start_broker, pwfile):
    b = start(start_broker, pwfile, "[limits]\ndefault_session_expiry = 1\n")
    c, _ = connect(b, "old-device", 4, "alice")
    c.subscribe([("users/alice/x", 1)])
    c.disconnect()
    time.sleep(2.5)
    c, ack = connect(b, "old-device", 4, "alice")
    assert ack.session_present is False


def test_anonymous_sessions_get_at_most_the_default_expiry(start_broker, pwfile):
    b = start(start_broker, pwfile, "[limits]\ndefault_session_expiry = 600\n")
    c = b.raw(5)
    ack = c.connect("anon-never", clean=True, props={"session_expiry_interval": 0xFFFFFFFF})
    assert ack.props.get("session_expiry_interval") == 600, ack
    c2 = b.raw(5)
    ack = c2.connect("alice-never", props={"session_expiry_interval": 0xFFFFFFFF},
                     username="alice", password=b"alice-pw")
    assert ack.props.get("session_expiry_interval") is None, ack  # granted as asked


def test_anonymous_client_cannot_raise_its_expiry_at_disconnect(start_broker, pwfile):
    # A v5 DISCONNECT may change the session expiry: for an anonymous client it is capped like
    # at CONNECT, so "never" at DISCONNECT still ends after default_session_expiry.
    b = start(start_broker, pwfile, "[limits]\ndefault_session_expiry = 1\n")
    c = b.raw(5)
    c.connect("anon-raise", clean=True, props={"session_expiry_interval": 1})
    c.subscribe([("raise/t", 1)])
    c.disconnect(props={"session_expiry_interval": 0xFFFFFFFF})
    time.sleep(2.5)
    c2 = b.raw(5)
    ack = c2.connect("anon-raise", clean=False, props={"session_expiry_interval": 1})
    assert ack.session_present is False


# ---------------------------------------------------------------- finding 9: $share
def test_shared_subscription_to_another_identitys_inbox_is_refused(start_broker, pwfile):
    b = start(start_broker, pwfile)
    alice, mallory = lc.Identity(), lc.Identity()

    def ident_client(ident, cid):
        c = b.raw(5)
        c.connect(cid, username=ident.id, password=lc.login(b.http_addr, ident).encode())
        return c

    a = ident_client(alice, "alice-share")
    x = ident_client(mallory, "mallory-share")
    anon = b.connect("anon-share", version=5)
    victim_inbox = "$share/g/id/%s/inbox" % alice.id
    assert x.subscribe([(victim_inbox, 1)]).rcs == [0x87]
    assert anon.subscribe([(victim_inbox, 1), ("$share/g/id/%s/#" % alice.id, 1)]).rcs == \
        [0x87, 0x87]
    old = b.raw(4)
    old.connect("anon-share-311")
    assert old.subscribe([(victim_inbox, 1)]).rcs == [0x80]
    # The owner may share her own inbox between her sessions.
    assert a.subscribe([(victim_inbox, 1)]).rcs == [1]
