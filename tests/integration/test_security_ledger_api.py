"""Security finding 6 (docs/SECURITY.md "The ledger API"): the public ledger API served every
envelope (amounts, IBANs, memos, sender and recipient, time) to anyone who could reach the HTTP
port, and a page over 4 MiB answered 500. Now: the public API serves leaves (index and link)
and proofs only; GET /ledger/envelopes answers a bearer token's identity with its own
envelopes, and an [auth] auditors identity with all; pages stop before a byte cap."""

import base64
import json
import os
import signal
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization

import httpattack as ha
import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

MEMO = "rent december flat 4b"
IBAN = "DE44500105175407324931"
PAGE_CAP_BYTES = 1048576  # [limits] ledger_page_max_bytes default


def start(start_broker, auditors=(), extra=""):
    cfg = "[auth]\nauditors = %s\n%s" % (",".join(a.id for a in auditors), extra)
    b = start_broker(cfg, extra_args=["--http", "127.0.0.1:0"])
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])
    return b


def send(b, sender, to, bodies):
    """Sends each body as one envelope, waiting for its ack: the envelopes."""
    s = lc.Session(b.mqtt_port, sender, lc.login(b.http_addr, sender))
    envs = []
    for body in bodies:
        env = sender.envelope(to.id, body)
        s.send(env)
        ack = s.expect("ack", timeout=30)
        assert ack["link"] == lc.link(env), ack
        sender.advance(env)
        envs.append(env)
    s.close()
    return envs


def wait_checkpoint(b, size):
    deadline = time.time() + 10
    while time.time() < deadline:
        status, cp = lc.http_json(b.http_addr, "/ledger/checkpoint")
        if status == 200 and cp["size"] >= size:
            return cp
        time.sleep(0.05)
    raise AssertionError("no checkpoint of %d entries" % size)


@pytest.fixture
def ledger(start_broker):
    """alice -> bob (memo, IBAN), bob -> alice, mallory -> dave; one auditor."""
    alice, bob, mallory, dave, auditor = (lc.Identity() for _ in range(5))
    b = start(start_broker, auditors=[auditor])
    sent = {}
    sent["ab"] = send(b, alice, bob, [{"amount": 1200 + i, "iban": IBAN, "memo": MEMO}
                                      for i in range(3)])
    sent["ba"] = send(b, bob, alice, [{"amount": 5, "memo": "thanks"}])
    sent["md"] = send(b, mallory, dave, [{"amount": 1, "memo": "mallory's own"}])
    wait_checkpoint(b, 5)
    order = sent["ab"] + sent["ba"] + sent["md"]  # one sender at a time: ledger order
    return b, dict(alice=alice, bob=bob, mallory=mallory, dave=dave, auditor=auditor), sent, order


def secrets_of(envs):
    """Strings that must not leak: the memo, the IBAN, the parties, the times, the signatures."""
    out = {MEMO, IBAN}
    for e in envs:
        out |= {e["from"], e["to"], e["time"], e["sig"], e["key"]}
    return out


def assert_no_secret(raw, secrets):
    text = raw.decode()
    leaked = [s for s in secrets if s in text]
    assert not leaked, "leaked %r in %s" % (leaked, text[:300])


def test_anonymous_public_api_serves_leaves_and_proofs_without_envelope_data(ledger):
    b, ids, sent, order = ledger
    secrets = secrets_of(order)
    # The attack of the finding: one anonymous GET of the old API.
    status, raw, _ = lc.http_get(b.http_addr, "/ledger/entries?start=0&count=1000")
    assert status == 200
    assert_no_secret(raw, secrets)
    page = json.loads(raw)
    assert set(page) == {"entries", "next", "size"}, page
    assert page["next"] == page["size"] == len(order)
    for e in page["entries"]:
        assert set(e) == {"index", "link"}, e
    assert [e["link"] for e in page["entries"]] == [lc.link(e) for e in order]
    # Nothing else public carries an envelope either.
    for path in ("/ledger/checkpoint", "/ledger/key", "/ledger/proof/inclusion?index=0",
                 "/ledger/proof/consistency?old=2", "/ledger/entries?start=2&count=1",
                 "/ledger/envelopes?start=0&count=1000"):
        status, raw, _ = lc.http_get(b.http_addr, path)
        assert_no_secret(raw, secrets)
    # The private API needs a token: 401 with a JSON error and the challenge header.
    status, raw, headers = lc.http_get(b.http_addr, "/ledger/envelopes")
    assert status == 401 and json.loads(raw)["error"] == 401, raw
    assert headers["WWW-Authenticate"].startswith("Bearer"), headers


def test_a_third_identity_cannot_read_alice_and_bobs_envelopes(ledger):
    b, ids, sent, order = ledger
    token = lc.login(b.http_addr, ids["mallory"])
    secrets = secrets_of(sent["ab"] + sent["ba"])
    # Its own envelope only, from any start and for any count.
    for start, count in ((0, 1000), (0, 1), (1, 1), (2, 3), (4, 1), (5, 10), (10 ** 18, 5)):
        status, raw, headers = lc.http_get(
            b.http_addr, "/ledger/envelopes?start=%d&count=%d" % (start, count), token)
        assert status == 200, raw
        assert headers["Cache-Control"] == "no-store"
        assert_no_secret(raw, secrets)
        page = json.loads(raw)
        assert set(page) == {"envelopes", "next", "size"}
        assert [i["envelope"] for i in page["envelopes"]] == \
            ([sent["md"][0]] if start <= 4 else []), (start, count, page)
    items = lc.ledger_envelopes(b.http_addr, token, count=1)
    assert [(i["index"], i["envelope"]) for i in items] == [(4, sent["md"][0])]
    # dave, the recipient, reads it too.
    items = lc.ledger_envelopes(b.http_addr, lc.login(b.http_addr, ids["dave"]))
    assert [i["envelope"] for i in items] == sent["md"]


def test_sender_and_recipient_read_their_envelopes_and_an_auditor_reads_all(ledger):
    b, ids, sent, order = ledger
    links = [link for _, link in lc.ledger_leaves(b.http_addr)]
    for who in ("alice", "bob"):
        for count in (1, 2, 1000):
            items = lc.ledger_envelopes(b.http_addr, lc.login(b.http_addr, ids[who]), count)
            assert [i["envelope"] for i in items] == sent["ab"] + sent["ba"], who
            assert [i["index"] for i in items] == [0, 1, 2, 3]
            for i in items:  # each is the public leaf at its index
                assert i["link"] == lc.link(i["envelope"]) == links[i["index"]]
                lc.verify(i["envelope"])
    token = lc.login(b.http_addr, ids["auditor"])
    items = lc.ledger_envelopes(b.http_addr, token, count=2)
    assert [i["envelope"] for i in items] == order
    assert [i["index"] for i in items] == list(range(len(order)))
    assert b.wait_event("auditor_read")["identity"] == ids["auditor"].id


def test_an_auditor_removed_on_sighup_reads_only_its_own(ledger):
    b, ids, sent, order = ledger
    token = lc.login(b.http_addr, ids["auditor"])
    assert len(lc.ledger_envelopes(b.http_addr, token)) == len(order)
    with open(os.path.join(b.workdir, "ledgermq.ini"), "w") as f:
        f.write("[auth]\nauditors =\n")
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_event("reload")["auditors"] == 0
    assert lc.ledger_envelopes(b.http_addr, token) == []


def raw_seed(ident):
    return ident.key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption())


def server_seed(b):
    with open(os.path.join(b.data_dir, "server.key.json")) as f:
        return lc.b64url_decode(json.load(f)["d"])


def test_missing_garbage_forged_and_expired_tokens_get_401(ledger):
    b, ids, sent, order = ledger
    secrets = secrets_of(order)
    now = int(time.time())
    seed = server_seed(b)
    auditor_id = ids["auditor"].id
    good = lc.login(b.http_addr, ids["alice"])
    h, c, s = good.split(".")
    claims = json.loads(lc.b64url_decode(c))
    claims["sub"] = auditor_id  # alice claims to be the auditor, keeping the server's signature
    tampered = h + "." + lc.b64url(json.dumps(claims).encode()) + "." + s
    none_alg = lc.b64url(b'{"alg":"none","typ":"JWT"}') + "." + lc.b64url(
        json.dumps({"sub": auditor_id, "iat": now, "exp": now + 600, "jti": "A" * 22}).encode()) + "."
    cases = {
        "missing": None,
        "empty": "",
        "garbage": "not-a-token",
        "tampered": tampered,
        "alg none": none_alg,
        # Signed by alice's own key, not the server's.
        "self-signed": lc.jwt(raw_seed(ids["alice"]), auditor_id, now, now + 600),
        # Signed by the server, expired long before any leeway.
        "expired": lc.jwt(seed, auditor_id, now - 7200, now - 3600),
        # Signed by the server, but its subject is no identity.
        "bad subject": lc.jwt(seed, "admin", now, now + 600),
    }
    for name, token in cases.items():
        status, raw, _ = lc.http_get(b.http_addr, "/ledger/envelopes?start=0&count=1000", token)
        assert status == 401, (name, status, raw[:200])
        body = json.loads(raw)
        assert body["error"] == 401 and body["reason"], (name, body)
        assert_no_secret(raw, secrets)
    assert "expired" in json.loads(lc.http_get(
        b.http_addr, "/ledger/envelopes", cases["expired"])[1])["reason"]
    kinds = {e["kind"] for e in b.events("security")}
    assert {"bad_token", "expired_token"} <= kinds, kinds
    # The same server-signed form with a live time is accepted: the test forges nothing else.
    assert lc.http_get(b.http_addr, "/ledger/envelopes",
                       lc.jwt(seed, auditor_id, now, now + 600))[0] == 200
    # Malformed paging is 400, after the token.
    status, raw, _ = lc.http_get(b.http_addr, "/ledger/envelopes?count=0", good)
    assert status == 400 and json.loads(raw)["error"] == 400


def test_pages_stop_before_the_byte_cap_and_chain_to_every_big_envelope(start_broker):
    alice, bob, auditor = lc.Identity(), lc.Identity(), lc.Identity()
    b = start(start_broker, auditors=[auditor])
    # 72 envelopes near the 64 KiB envelope limit: about 4.5 MB, past the old 4 MiB failure.
    bodies = [{"memo": ("%02d" % i) * 31000 + MEMO} for i in range(72)]
    envs = send(b, alice, bob, bodies)
    assert sum(len(lc.canonical(e)) for e in envs) > 4 * 1024 * 1024
    wait_checkpoint(b, len(envs))
    for ident, count in ((auditor, 1000), (bob, 1000), (alice, 7)):
        token = lc.login(b.http_addr, ident)
        got, pages = [], 0
        for raw, page in lc.ledger_pages(b.http_addr, "/ledger/envelopes", token, count):
            assert len(raw) <= PAGE_CAP_BYTES, len(raw)
            assert 1 <= len(page["envelopes"]) <= count
            if page["next"] < page["size"]:  # a page cut by bytes says where to go on
                assert page["next"] == page["envelopes"][-1]["index"] + 1
            got += page["envelopes"]
            pages += 1
        assert [i["envelope"] for i in got] == envs
        assert pages >= (5 if count == 1000 else 10), pages
    # The public leaves of the same ledger: one small page.
    raw_pages = list(lc.ledger_pages(b.http_addr, "/ledger/entries"))
    assert len(raw_pages) == 1 and len(raw_pages[0][0]) < 16384
    assert [e["link"] for e in raw_pages[0][1]["entries"]] == [lc.link(e) for e in envs]


def test_proofs_verify_from_the_public_leaves_alone(ledger):
    b, ids, sent, order = ledger
    name, pub = lc.server_key(b.http_addr)
    status, cp = lc.http_json(b.http_addr, "/ledger/checkpoint")
    _, size, root = lc.parse_checkpoint(cp["checkpoint"], name, pub)
    leaves = [lc.leaf_hash(link) for _, link in lc.ledger_leaves(b.http_addr)]
    assert len(leaves) == size == len(order)
    # alice checks her envelope's inclusion with nothing but her own envelope and public data.
    mine = lc.ledger_envelopes(b.http_addr, lc.login(b.http_addr, ids["alice"]))[1]
    status, p = lc.http_json(b.http_addr, "/ledger/proof/inclusion?index=%d&size=%d"
                             % (mine["index"], size))
    proof = [base64.b64decode(h) for h in p["proof"]]
    assert lc.root_from_inclusion(lc.leaf_hash(lc.link(mine["envelope"])), mine["index"], size,
                                  proof) == root
    for i in range(size):
        status, p = lc.http_json(b.http_addr, "/ledger/proof/inclusion?index=%d&size=%d"
                                 % (i, size))
        proof = [base64.b64decode(h) for h in p["proof"]]
        assert lc.root_from_inclusion(leaves[i], i, size, proof) == root
    old_root = lc.leaf_hash(lc.link(order[0]))  # a tree of one leaf
    status, p = lc.http_json(b.http_addr, "/ledger/proof/consistency?old=1&new=%d" % size)
    proof = [base64.b64decode(h) for h in p["proof"]]
    assert lc.root_from_consistency(1, size, old_root, proof) == root


def test_the_page_cap_is_configurable(start_broker):
    alice, bob = lc.Identity(), lc.Identity()
    b = start(start_broker, extra="[limits]\nledger_page_max_bytes = 131072\n")
    envs = send(b, alice, bob, [{"memo": ("%02d" % i) * 31000} for i in range(6)])
    wait_checkpoint(b, len(envs))
    pages = list(lc.ledger_pages(b.http_addr, "/ledger/envelopes", lc.login(b.http_addr, bob)))
    assert all(len(raw) <= 131072 for raw, _ in pages)
    assert [len(p["envelopes"]) for _, p in pages] == [2, 2, 2]
    assert [i["envelope"] for _, p in pages for i in p["envelopes"]] == envs


def test_a_flood_of_bad_tokens_from_one_address_leaves_others_served(ledger):
    """/ledger/envelopes and /auth/revoke take a bearer token: one address pipelining bad ones
    gets 401 for each, and an identity on another address still reads its envelopes."""
    b, ids, sent, order = ledger
    host, port = ha.listener(b, "http")
    bogus = b"Authorization: Bearer eyJhbGciOiJFZERTQSJ9.e30.AAAA\r\n"
    batch = (b"GET /ledger/envelopes?start=0&count=1000 HTTP/1.1\r\nHost: x\r\n" + bogus +
             b"\r\nPOST /auth/revoke HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + bogus +
             b"\r\n") * 500
    result = {}
    flood = threading.Thread(target=lambda: result.update(
        ha.pipeline_flood(host, port, batch, 1000, connections=4)))
    flood.start()
    token = lc.login(b.http_addr, ids["alice"])
    ok = 0
    for _ in range(20):
        try:
            ok += len(lc.ledger_envelopes(b.http_addr, token)) == 4
        except (OSError, AssertionError):
            pass
    flood.join(timeout=60)
    assert result.get(401, 0) >= 3900 and set(result) == {401}, result
    assert ok >= 19, ok
