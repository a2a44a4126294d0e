"""The verifiable ledger (docs/PROTOCOL.md "Verifiable ledger"): checkpoints, proofs and receipts
checked by an independent Python implementation of RFC 9162 and C2SP signed notes, the
`ledgermq verify` command, tampering with the database, a rewritten history, and kill -9 during
appends."""

import base64
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.request

import pytest

import ledgerclient as lc

pytestmark = pytest.mark.ledgermq_only

BIN = os.environ.get("LEDGERMQ_BIN", "")


def start(start_broker, data_dir=None):
    b = start_broker(None, extra_args=["--http", "127.0.0.1:0"], data_dir=data_dir)
    _addresses(b)
    return b


def _addresses(b):
    ready = b.events("ready")[-1]
    b.http_addr = ready["http"][0]
    b.mqtt_port = int(ready["mqtt"][0].rsplit(":", 1)[1])


def get(b, path):
    return lc.http_json(b.http_addr, path)


def mth(leaves):
    """RFC 9162 §2.1.1 Merkle Tree Hash, straight from the definition."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return lc.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def send_many(b, sender, to, count, session=None):
    s = session or lc.Session(b.mqtt_port, sender, lc.login(b.http_addr, sender))
    acks, envs = [], []
    for i in range(count):
        env = sender.envelope(to.id, {"n": sender.seq + 1})
        s.send(env)
        acks.append(s.expect("ack"))
        envs.append(env)
        sender.advance(env)
    if session is None:
        s.close()
    return acks, envs


def checkpoint(b):
    status, cp = get(b, "/ledger/checkpoint")
    assert status == 200, cp
    return cp


def all_links(b):
    """The public leaves' links, in index order."""
    return [link for _, link in lc.ledger_leaves(b.http_addr)]


def test_checkpoints_and_proofs_verify_with_an_independent_implementation(start_broker):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    acks, envs = send_many(b, alice, bob, 7)
    name, pub = lc.server_key(b.http_addr)
    cp = checkpoint(b)
    origin, size, root = lc.parse_checkpoint(cp["checkpoint"], name, pub)
    assert size == cp["size"] == 7 and origin == name
    links = all_links(b)
    assert links == [lc.link(e) for e in envs]
    # The envelopes themselves only for their sender (or recipient, or an auditor).
    items = lc.ledger_envelopes(b.http_addr, lc.login(b.http_addr, alice))
    assert [it["envelope"] for it in items] == envs
    assert [it["link"] for it in items] == links
    leaves = [lc.leaf_hash(l) for l in links]
    assert mth(leaves) == root
    for i in range(7):
        status, p = get(b, "/ledger/proof/inclusion?index=%d&size=7" % i)
        assert status == 200, p
        proof = [base64.b64decode(h) for h in p["proof"]]
        assert lc.root_from_inclusion(leaves[i], i, 7, proof) == root
        # The same proof fails for another leaf.
        assert lc.root_from_inclusion(leaves[(i + 1) % 7], i, 7, proof) != root
    for old in range(1, 7):
        status, p = get(b, "/ledger/proof/consistency?old=%d&new=7" % old)
        assert status == 200, p
        proof = [base64.b64decode(h) for h in p["proof"]]
        assert lc.root_from_consistency(old, 7, mth(leaves[:old]), proof) == root
    for bad in ("/ledger/proof/inclusion?index=7&size=7", "/ledger/proof/inclusion?size=3",
                "/ledger/proof/consistency?old=5&new=99", "/ledger/entries?count=5000",
                "/ledger/entries?start=x"):
        status, err = get(b, bad)
        assert status == 400 and err["error"] == 400, (bad, err)
    # Every ack's receipt verifies against a checkpoint that covers it.
    for ack in acks:
        lc.check_receipt(ack, name, pub)


def run_verify(*args):
    return subprocess.run([BIN, "verify", *args], capture_output=True, text=True, timeout=60)


def test_ledgermq_verify_checks_receipts_checkpoints_and_consistency(start_broker, tmp_path):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    acks, envs = send_many(b, alice, bob, 3)
    status, key = get(b, "/ledger/key")
    vkey = key["vkey"]
    (tmp_path / "vkey").write_text(vkey + "\n")
    (tmp_path / "ack.json").write_text(json.dumps(acks[1]))
    (tmp_path / "env.json").write_text(json.dumps(envs[1]))
    (tmp_path / "other.json").write_text(json.dumps(envs[2]))
    cp3 = checkpoint(b)
    (tmp_path / "cp3").write_text(cp3["checkpoint"])
    ok = run_verify("--key", vkey, "--receipt", str(tmp_path / "ack.json"), "--envelope",
                    str(tmp_path / "env.json"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["index"] == 1
    assert run_verify("--key", "@" + str(tmp_path / "vkey"), "--checkpoint",
                      str(tmp_path / "cp3")).returncode == 0
    wrong_env = run_verify("--key", vkey, "--receipt", str(tmp_path / "ack.json"), "--envelope",
                           str(tmp_path / "other.json"))
    assert wrong_env.returncode == 3 and "link" in wrong_env.stderr, wrong_env.stderr
    forged = dict(acks[1])
    forged["receipt"] = dict(forged["receipt"])
    proof = list(forged["receipt"]["proof"])
    raw = bytearray(base64.b64decode(proof[0]))
    raw[0] ^= 1
    proof[0] = base64.b64encode(bytes(raw)).decode()
    forged["receipt"]["proof"] = proof
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    bad = run_verify("--key", vkey, "--receipt", str(tmp_path / "forged.json"))
    assert bad.returncode == 3 and "inclusion proof" in bad.stderr, bad.stderr
    (tmp_path / "cp-bad").write_text(cp3["checkpoint"].replace("\n3\n", "\n4\n", 1))
    bad = run_verify("--key", vkey, "--checkpoint", str(tmp_path / "cp-bad"))
    assert bad.returncode == 3 and "bad signature" in bad.stderr, bad.stderr
    send_many(b, alice, bob, 4)
    cp7 = checkpoint(b)
    (tmp_path / "cp7").write_text(cp7["checkpoint"])
    status, p = get(b, "/ledger/proof/consistency?old=3&new=7")
    (tmp_path / "proof").write_text(json.dumps(p))
    ok = run_verify("--key", vkey, "--old-checkpoint", str(tmp_path / "cp3"), "--checkpoint",
                    str(tmp_path / "cp7"), "--proof", str(tmp_path / "proof"))
    assert ok.returncode == 0, ok.stderr
    status, p2 = get(b, "/ledger/proof/consistency?old=2&new=7")
    (tmp_path / "proof2").write_text(json.dumps(p2))
    bad = run_verify("--key", vkey, "--old-checkpoint", str(tmp_path / "cp3"), "--checkpoint",
                     str(tmp_path / "cp7"), "--proof", str(tmp_path / "proof2"))
    assert bad.returncode == 3 and "not a prefix" in bad.stderr, bad.stderr
    assert run_verify("--checkpoint", "x").returncode == 1
    assert run_verify("--bogus", "1").returncode == 1


def test_tampering_with_the_database_is_detected(start_broker, tmp_path):
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    send_many(b, alice, bob, 5)
    data = b.data_dir
    b.terminate()
    ok = run_verify("--data", data)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["entries"] == 5
    db_path = os.path.join(data, "ledgermq.db")
    pristine = str(tmp_path / "pristine.db")
    shutil.copy(db_path, pristine)
    # An envelope's body changed in place: its signature no longer verifies.
    db = sqlite3.connect(db_path)
    env = json.loads(db.execute("SELECT envelope FROM ledger WHERE idx = 2").fetchone()[0])
    env["body"]["n"] = 999
    db.execute("UPDATE ledger SET envelope = ? WHERE idx = 2", (lc.canonical(env).encode(),))
    db.commit()
    db.close()
    bad = run_verify("--data", data)
    assert bad.returncode == 3 and "index 2" in bad.stderr and "bad_signature" in bad.stderr, \
        bad.stderr
    # A stored tree node changed: the rebuilt tree disagrees.
    shutil.copy(pristine, db_path)
    db = sqlite3.connect(db_path)
    db.execute("UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 1")
    db.commit()
    db.close()
    bad = run_verify("--data", data)
    assert bad.returncode == 3 and "Merkle node (level 1, index 1)" in bad.stderr, bad.stderr
    # A row removed from the middle: a gap.
    shutil.copy(pristine, db_path)
    db = sqlite3.connect(db_path)
    db.execute("DELETE FROM ledger WHERE idx = 1")
    db.commit()
    db.close()
    bad = run_verify("--data", data)
    assert bad.returncode == 3 and "gap" in bad.stderr, bad.stderr


def test_verify_data_refuses_a_schema_version_it_does_not_know(start_broker, tmp_path):
    """`verify --data` reads the schema version before anything else and refuses a database of
    another version (newer: written by a later ledgermq; older: not migrated yet) with one line
    and exit 1, rather than auditing tables that may mean something else."""
    b = start(start_broker)
    alice, bob = lc.Identity(), lc.Identity()
    send_many(b, alice, bob, 2)
    data = b.data_dir
    b.terminate()
    ok = run_verify("--data", data)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["entries"] == 2
    src = sqlite3.connect(os.path.join(data, "ledgermq.db"))
    version = src.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    assert version >= 2
    for other, word in ((version + 1, "newer"), (version - 1, "older")):
        copy_dir = tmp_path / ("schema%d" % other)
        copy_dir.mkdir()
        dst = sqlite3.connect(str(copy_dir / "ledgermq.db"))
        src.backup(dst)
        dst.execute("UPDATE schema_version SET version = ?", (other,))
        if word == "newer":
            # Not read at all: a ledger this binary cannot audit does not even have to exist.
            dst.execute("DROP TABLE ledger")
        dst.commit()
        dst.close()
        bad = run_verify("--data", str(copy_dir))
        assert bad.returncode == 1, (bad.returncode, bad.stdout, bad.stderr)
        assert bad.stdout == "", bad.stdout
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1, bad.stderr
        assert ("schema version %d is %s than this binary's %d" % (other, word, version)
                in lines[0]), bad.stderr
    src.close()
    again = run_verify("--data", data)
    assert again.returncode == 0 and json.loads(again.stdout)["entries"] == 2, again.stderr


def test_a_rewritten_history_fails_the_consistency_check(start_broker, tmp_path):
    data = str(tmp_path / "data")
    b = start(start_broker, data_dir=data)
    alice, bob = lc.Identity(), lc.Identity()
    send_many(b, alice, bob, 3)
    b.terminate()
    saved = str(tmp_path / "saved")
    shutil.copytree(data, saved)
    b.restart()
    _addresses(b)
    send_many(b, alice, bob, 3)
    name, pub = lc.server_key(b.http_addr)
    seen = checkpoint(b)  # what a client saw: size 6
    _, size6, root6 = lc.parse_checkpoint(seen["checkpoint"], name, pub)
    b.terminate()
    # The operator restores the old database and the server carries on with other envelopes.
    shutil.rmtree(data)
    shutil.copytree(saved, data)
    b.restart()
    _addresses(b)
    mallory_chain = lc.Identity()
    send_many(b, mallory_chain, bob, 4)
    now = checkpoint(b)
    _, size7, root7 = lc.parse_checkpoint(now["checkpoint"], name, pub)  # still validly signed
    assert (size6, size7) == (6, 7)
    status, p = get(b, "/ledger/proof/consistency?old=6&new=7")
    assert status == 200
    proof = [base64.b64decode(h) for h in p["proof"]]
    assert lc.root_from_consistency(6, 7, root6, proof) != root7, "the rewrite went unnoticed"
    (tmp_path / "cp6").write_text(seen["checkpoint"])
    (tmp_path / "cp7").write_text(now["checkpoint"])
    (tmp_path / "proof").write_text(json.dumps(p))
    bad = run_verify("--key", get(b, "/ledger/key")[1]["vkey"], "--old-checkpoint",
                     str(tmp_path / "cp6"), "--checkpoint", str(tmp_path / "cp7"), "--proof",
                     str(tmp_path / "proof"))
    assert bad.returncode == 3 and "history was rewritten" in bad.stderr, bad.stderr


def test_kill_9_during_appends_never_leaves_the_tree_disagreeing_with_its_leaves(start_broker):
    b = start(start_broker)
    rng = random.Random(7)
    senders = [lc.Identity() for _ in range(2)]
    bob = lc.Identity()
    for cycle in range(4):
        stop = threading.Event()

        def pump(ident):
            try:
                s = lc.Session(b.mqtt_port, ident, lc.login(b.http_addr, ident))
                while not stop.is_set():
                    env = ident.envelope(bob.id, {"c": cycle})
                    s.send(env, qos=1)
                    try:
                        ack = s.expect("ack", timeout=5)
                    except Exception:
                        return
                    if ack.get("link") == lc.link(env):
                        ident.advance(env)
            except Exception:
                return

        threads = [threading.Thread(target=pump, args=(i,), daemon=True) for i in senders]
        for t in threads:
            t.start()
        time.sleep(0.3 + rng.random() * 0.7)
        b.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        for ident in senders:  # resync the client's chain with what the server kept
            ident.seq, ident.prev = 0, ""
        ok = run_verify("--data", b.data_dir)
        assert ok.returncode == 0, ok.stderr
        entries = json.loads(ok.stdout)["entries"]
        b.restart()
        _addresses(b)
        cp = checkpoint(b)
        assert cp["size"] == entries
        links = all_links(b)
        assert len(links) == entries
        assert base64.b64encode(mth([lc.leaf_hash(l) for l in links])).decode() == cp["root"]
        # The chains continue where the ledger says they are (each sender reads its own).
        for ident in senders:
            items = lc.ledger_envelopes(b.http_addr, lc.login(b.http_addr, ident))
            mine = [e for e in items if e["envelope"]["from"] == ident.id]
            if mine:
                ident.seq = mine[-1]["envelope"]["seq"]
                ident.prev = mine[-1]["link"]
    assert checkpoint(b)["size"] > 0
