"""Sealing ledger checkpoints to Ethereum (src/seal; docs/PROTOCOL.md "Sealing") against a
ganache node started by the test: a seal is sent (EIP-1559, from the sealing address to itself,
calldata LMQSEAL1 | size | root | origin), mined, confirmed, listed by GET /ledger/seals and
covered by GET /ledger/seals/cover; `ledgermq verify --seal` passes on it and fails (exit 3) on a
changed checkpoint, another sender and too few confirmations; a kill -9 between a seal's commit
and its send uses the nonce once after the restart (no reuse, no gap); a stuck transaction is
replaced with higher fees; a reorg (evm_snapshot / evm_revert) that drops a mined seal makes it
sent and mined again; a chain id mismatch stops sealing before anything is sent."""

import json
import os
import subprocess
import time
import urllib.request

import pytest

import dataclient as dc
import ledgerclient as lc
from ganache import CHAIN_ID, start_ganache

pytestmark = pytest.mark.ledgermq_only

WAIT_S = 20
BIN = os.environ.get("LEDGERMQ_BIN", "ledgermq")
TICK_ENV = {"LMQ_TEST_SEAL_TICK_MS": "100"}


@pytest.fixture
def node():
    g = start_ganache()
    yield g
    alive = g.alive()
    g.stop()
    assert alive, "ganache died during the test"


def eth_key(tmp_path, g, name="seal.key", fund=True):
    """A new sealing key file (ledgermq keygen --eth) and its address, funded from account 0."""
    path = str(tmp_path / name)
    p = subprocess.run([BIN, "keygen", "--eth", path], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    with open(path) as f:
        addr = json.load(f)["address"]
    if fund:
        g.send_tx(to=addr, value=10**18)
    return path, addr


def config(g, key, chain_id=CHAIN_ID, extra=""):
    return ("[server]\nhttp = 127.0.0.1:0\n[seal]\nrpc = %s\nkey_file = %s\nchain_id = %d\n"
            "every = 1h\nevery_entries = 1\nconfirmations = 3\n%s" % (g.url, key, chain_id, extra))


def get(b, path):
    try:
        with urllib.request.urlopen("http://%s%s" % (b.http_addr, path), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def seals(b):
    status, doc = get(b, "/ledger/seals?limit=1000")
    assert status == 200, doc
    return doc["seals"]


def wait_for(what, fn, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out waiting for %s" % what
        time.sleep(0.1)


def wait_seal(b, pred, what):
    return wait_for(what, lambda: [s for s in seals(b) if pred(s)])


def send_note(s, to, n=1):
    """Sends n accepted envelopes; returns the ack of the last (it holds a receipt)."""
    ack = None
    for i in range(n):
        env = s.ident.envelope(to, {"n": i})
        s.send(env)
        while True:
            leaf, msg = s.messages.get(timeout=lc.TIMEOUT_S)
            if leaf == "ack":
                break
        s.ident.advance(env)
        ack = msg
    return ack


def verify(args, file_text, tmp_path, name="cover.json"):
    path = tmp_path / name
    path.write_text(file_text)
    p = subprocess.run([BIN, "verify", "--seal"] + args + [str(path)], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def nonces_on_chain(g, addr):
    """Every transaction sent by addr in the chain: [(nonce, to, input)] in block order."""
    out = []
    for n in range(0, g.block_number() + 1):
        block = g.rpc("eth_getBlockByNumber", [hex(n), True])
        for tx in block["transactions"]:
            if tx["from"].lower() == addr.lower():
                out.append((int(tx["nonce"], 16), tx["to"], tx["input"]))
    return out


def calldata(seal):
    """The calldata a seal carries, as 0x hex (docs/PROTOCOL.md "Sealing")."""
    import base64
    cp = seal["checkpoint"].split("\n")
    return "0x" + (b"LMQSEAL1" + seal["tree_size"].to_bytes(8, "big") +
                   base64.b64decode(seal["root"]) + cp[0].encode()).hex()


def start(start_broker, g, key, extra="", env=None):
    e = dict(TICK_ENV)
    e.update(env or {})
    b = dc.ready_addresses(start_broker(config(g, key, extra=extra), env=e))
    b.wait_event("seal_ready", timeout=WAIT_S)
    return b


def test_a_seal_is_sent_mined_confirmed_listed_and_verified(start_broker, node, tmp_path):
    key, addr = eth_key(tmp_path, node)
    b = start(start_broker, node, key)
    alice, bob = lc.Identity(), lc.Identity()
    s = dc.session(b, alice)
    ack = send_note(s, bob.id, 2)
    sent = b.wait_event("seal_sent", timeout=WAIT_S)
    assert sent["nonce"] == 0 and sent["attempt"] == 1, sent
    mined = wait_seal(b, lambda x: x["state"] == "mined", "a mined seal")[0]
    assert mined["chain_id"] == CHAIN_ID and mined["address"].lower() == addr.lower(), mined
    # On chain: from the sealing address to itself, value 0, calldata = the checkpoint.
    tx = node.rpc("eth_getTransactionByHash", [mined["tx_hash"]])
    assert tx["from"].lower() == addr.lower() and tx["to"].lower() == addr.lower(), tx
    assert int(tx["value"], 16) == 0 and tx["type"] == "0x2", tx
    assert tx["input"] == calldata(mined), (tx["input"], mined)
    node.mine(3)
    sealed = wait_seal(b, lambda x: x["state"] == "confirmed", "a confirmed seal")
    assert sealed[0]["confirmations"] >= 3, sealed
    b.wait_event("seal_confirmed", timeout=WAIT_S)
    # The cover of the receipt's size, and verify --seal against the node.
    size = int(ack["receipt"]["checkpoint"].split("\n")[1])
    status, cover = get(b, "/ledger/seals/cover?size=%d" % size)
    assert status == 200 and cover["old_size"] == size, cover
    assert cover["seal"]["state"] == "confirmed" and cover["new_size"] >= size, cover
    vkey = get(b, "/ledger/key")[1]["vkey"]
    args = ["--key", vkey, "--rpc", node.url, "--seal-address", addr, "--confirmations", "3"]
    both = json.dumps(ack) + "\n" + json.dumps(cover) + "\n"
    code, out = verify(args, both, tmp_path)
    assert code == 0, out
    assert json.loads(out)["ok"] is True, out
    # Metrics.
    assert b.metric("ledgermq_seals", '{state="confirmed"}') >= 1
    assert b.metric("ledgermq_seal_last_sealed_size") >= size
